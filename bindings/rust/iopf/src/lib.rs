//! Safe Rust API for libiopf: I/O page faults from iommufd fault objects
//! (or from an emulated device, through a producer) handled in user space,
//! every Page Request Group answered exactly once.
//!
//! ```no_run
//! use iopf::{Answer, Context};
//!
//! let ctx = Context::new()?;
//! ctx.set_handler(|g| {
//!     for r in g.records() {
//!         // make r.addr resident ...
//!         let _ = r;
//!     }
//!     Answer::Success // or let d = g.defer(); ...; Answer::Defer
//! })?;
//! // poll ctx.as_raw_fd() in your event loop, then:
//! ctx.dispatch()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Errors are `std::io::Error`s made from libiopf's negative errno
//! (`e.raw_os_error()` gives it); see `iopf.h` for each call's.
//!
//! Threads: [`Context`], [`Responder`], [`Producer`] and [`FaultQueue`] are
//! `Send + Sync`; a [`Deferred`] is `Send`; a [`Group`] stays in its
//! handler. Handlers and respond closures must be `Send`: with workers
//! they run on libiopf's threads.
//!
//! A handler that is not `Send` does not compile:
//! ```compile_fail
//! let ctx = iopf::Context::new().unwrap();
//! let not_send = std::rc::Rc::new(0);
//! ctx.set_handler(move |_| { let _ = &not_send; iopf::Answer::Success }).unwrap();
//! ```
//! (while the same with `Arc` does:)
//! ```no_run
//! let ctx = iopf::Context::new().unwrap();
//! let shared = std::sync::Arc::new(0);
//! ctx.set_handler(move |_| { let _ = &shared; iopf::Answer::Success }).unwrap();
//! ```
//!
//! The same holds for the batch handler and the cancel closure:
//! ```compile_fail
//! let ctx = iopf::Context::new().unwrap();
//! let not_send = std::rc::Rc::new(0);
//! ctx.set_cancel_handler(move |_| { let _ = &not_send; }).unwrap();
//! ```
//! ```compile_fail
//! let ctx = iopf::Context::new().unwrap();
//! let not_send = std::rc::Rc::new(0);
//! ctx.set_batch_handler(move |_, _| { let _ = &not_send; }).unwrap();
//! ```
//!
//! A handler, batch handler or cancel closure that is replaced or removed
//! is dropped exactly once, when no thread can run it any more: at once if
//! none runs it, else after its last running call returns
//! ([`Context::quiesce`] waits for that). A producer's respond closure is
//! dropped once the producer is closed and its last answer delivered
//! (`iopf_producer_opts.destroy`, libiopf 1.3).

mod context;
mod group;
mod handlers;
mod probe;
mod serial;
mod shared;
mod source;
mod stats;

pub use context::{Context, Options, Pasids, Responder};
pub use group::{Answer, Cancelled, Code, Deferred, Group, Handle, Record, RecordInfo};
pub use handlers::{BatchHandler, CancelFn, Handler};
pub use probe::{probe, ProbeInfo};
pub use source::{
    FaultQueue, FaultQueueOptions, Producer, ProducerOptions, Request, RespondFn, Response, Submitted,
};
pub use stats::{DeviceStats, Stats};

/// The raw bindings, for what this crate does not wrap.
pub use iopf_sys as sys;

/// Record flag: the PASID field is valid.
pub const F_PASID_VALID: u32 = sys::IOPF_F_PASID_VALID;
/// Record flag: the last request of its group.
pub const F_LAST_PAGE: u32 = sys::IOPF_F_LAST_PAGE;
/// Record permission: read.
pub const PERM_READ: u32 = sys::IOPF_PERM_READ;
/// Record permission: write.
pub const PERM_WRITE: u32 = sys::IOPF_PERM_WRITE;
/// Record permission: execute.
pub const PERM_EXEC: u32 = sys::IOPF_PERM_EXEC;
/// Record permission: privileged.
pub const PERM_PRIV: u32 = sys::IOPF_PERM_PRIV;
/// Group flag: some partial requests of the group were dropped.
pub const GROUP_TRUNCATED: u32 = sys::IOPF_GROUP_TRUNCATED;

/// Device flag ([`Context::set_device_flags`]): a guest answer without
/// PASID matches the oldest outstanding group of its PRG index whatever
/// that group's PASID (a function whose responses carry none).
pub const DEV_PRG_PASID_OPTIONAL: u32 = sys::IOPF_DEV_PRG_PASID_OPTIONAL;
/// Device flag ([`Context::set_device_flags`]): log the first guest answer
/// of the device that matches no outstanding group.
pub const DEV_LOG_UNMATCHED: u32 = sys::IOPF_DEV_LOG_UNMATCHED;

/// The library's version ("MAJOR.MINOR.PATCH") as loaded at run time.
pub fn version() -> &'static str {
    // SAFETY: a static NUL-terminated ASCII string.
    let s = unsafe { std::ffi::CStr::from_ptr(sys::iopf_version()) };
    s.to_str().unwrap_or("?")
}

/// Said on stderr where nothing can be returned (a closure panicked).
pub(crate) fn warn(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "iopf: {msg}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send<T: Send>() {}
    fn sync<T: Sync>() {}

    #[test]
    fn bounds() {
        send::<Context>();
        sync::<Context>();
        send::<Responder>();
        sync::<Responder>();
        send::<Producer>();
        sync::<Producer>();
        send::<FaultQueue>();
        sync::<FaultQueue>();
        send::<Deferred>();
        send::<Handler>();
        send::<BatchHandler>();
        send::<CancelFn>();
        send::<Cancelled>();
    }
}
