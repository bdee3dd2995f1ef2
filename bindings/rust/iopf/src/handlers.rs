//! The closures a context calls (handlers, the batch handler, the cancel
//! callback) and when they go: each is set with a destroy callback
//! (`iopf_ctx_set_*_full`, libiopf 1.3), which drops it exactly once,
//! when it has been replaced or removed and its last running call has
//! returned.

use std::io;
use std::os::raw::{c_int, c_void};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::{Arc, Mutex};

use iopf_sys as sys;

use crate::context::Context;
use crate::group::{pasid_raw, Answer, Cancelled, Group};
use crate::serial::Serial;
use crate::shared::{check, err, lock, CallbackGuard, Shared};

/// A handler closure, called once per group.
pub type Handler = Box<dyn FnMut(&Group) -> Answer + Send>;

/// A batch handler closure: sets `answers[i]` for `groups[i]` (each
/// starts as [`Answer::Invalid`]).
pub type BatchHandler = Box<dyn FnMut(&[Group], &mut [Answer]) + Send>;

/// A cancel closure: told of each group dropped in a handler's hands
/// because its device went away.
pub type CancelFn = Box<dyn FnMut(&Cancelled) + Send>;

/// What libiopf holds as userdata: a closure and its context's state.
trait Userdata: Send + Sync + 'static {
    fn shared(&self) -> *const Shared;
}

/// libiopf's destroy callback: the closure can no longer run. Called once,
/// on the thread of its last call or of the setter, or in iopf_ctx_free().
unsafe extern "C" fn destroy_tramp<C: Userdata>(ud: *mut c_void) {
    let cell = Box::from_raw(ud as *mut C);
    // SAFETY: destroy runs before iopf_ctx_free() returns, and the Shared
    // it is called under outlives that (Shared::free borrows it).
    let shared = &*cell.shared();
    shared.dispose(cell);
}

/// A handler as userdata. The mutex keeps an FnMut from running on two
/// worker threads at once (a handler never runs inside itself: it may
/// not dispatch).
struct HandlerCell {
    shared: *const Shared,
    f: Mutex<Handler>,
}

/// The batch handler as userdata; as HandlerCell.
struct BatchCell {
    shared: *const Shared,
    f: Mutex<BatchHandler>,
}

/// The cancel closure as userdata. Its callback comes from whichever
/// thread learns of a removal, also from inside the closure itself (it
/// may call device_gone()): a Serial, never a mutex that could deadlock.
struct CancelCell {
    shared: *const Shared,
    serial: Serial<Cancelled>,
}

// SAFETY: `shared` is only dereferenced inside callbacks, while alive;
// the closures are Send and behind mutexes.
unsafe impl Send for HandlerCell {}
unsafe impl Sync for HandlerCell {}
unsafe impl Send for BatchCell {}
unsafe impl Sync for BatchCell {}
unsafe impl Send for CancelCell {}
unsafe impl Sync for CancelCell {}

impl Userdata for HandlerCell {
    fn shared(&self) -> *const Shared {
        self.shared
    }
}
impl Userdata for BatchCell {
    fn shared(&self) -> *const Shared {
        self.shared
    }
}
impl Userdata for CancelCell {
    fn shared(&self) -> *const Shared {
        self.shared
    }
}

unsafe extern "C" fn handler_tramp(g: *mut sys::iopf_group, ud: *mut c_void) -> c_int {
    let cell = &*(ud as *const HandlerCell);
    let _cb = CallbackGuard::enter(cell.shared);
    let group = Group::new(g, cell.shared);
    // Unwinding into C is undefined: a panic answers INVALID instead.
    match panic::catch_unwind(AssertUnwindSafe(|| (lock(&cell.f))(&group))) {
        Ok(a) => a.raw(),
        Err(_) => {
            crate::warn("a handler panicked: its group is answered INVALID");
            Answer::Invalid.raw()
        }
    }
}

/// Most groups libiopf hands a batch handler at once (iopf.h: 64); more
/// would still work, through the heap.
const BATCH: usize = 64;

unsafe extern "C" fn batch_tramp(
    gs: *const *mut sys::iopf_group,
    codes: *mut c_int,
    n: usize,
    ud: *mut c_void,
) {
    let cell = &*(ud as *const BatchCell);
    let _cb = CallbackGuard::enter(cell.shared);
    if n == 0 {
        return;
    }
    let raw = std::slice::from_raw_parts(gs, n);
    let codes = std::slice::from_raw_parts_mut(codes, n);
    let mut run = |groups: &[Group], answers: &mut [Answer]| {
        let ok = panic::catch_unwind(AssertUnwindSafe(|| (lock(&cell.f))(groups, answers))).is_ok();
        if !ok {
            crate::warn("a batch handler panicked: its groups are answered INVALID");
        }
        for (c, a) in codes.iter_mut().zip(answers.iter()) {
            *c = if ok { a.raw() } else { Answer::Invalid.raw() };
        }
    };
    if n <= BATCH {
        // No allocation on the hot path: the unused tail is never read.
        let groups: [Group; BATCH] =
            std::array::from_fn(|i| Group::new(if i < n { raw[i] } else { ptr::null_mut() }, cell.shared));
        let mut answers = [Answer::Invalid; BATCH];
        run(&groups[..n], &mut answers[..n]);
    } else {
        let groups: Vec<Group> = raw.iter().map(|&g| Group::new(g, cell.shared)).collect();
        let mut answers = vec![Answer::Invalid; n];
        run(&groups, &mut answers);
    }
}

unsafe extern "C" fn cancel_tramp(g: *mut sys::iopf_group, ud: *mut c_void) {
    let cell = &*(ud as *const CancelCell);
    let _cb = CallbackGuard::enter(cell.shared);
    // A copy: the closure may run on another thread after this returns,
    // when the group is gone.
    let c = Cancelled::of(&Group::new(g, cell.shared));
    cell.serial.push(c);
}

impl Context {
    fn shared_ptr(&self) -> *const Shared {
        Arc::as_ptr(self.shared())
    }

    /// Hand `cell` to a `_full` setter with its destroy callback; on
    /// failure libiopf did not take it (nor call destroy): dropped here.
    fn install<C: Userdata>(
        &self,
        cell: C,
        set: impl FnOnce(*mut c_void, sys::iopf_destroy_fn) -> c_int,
    ) -> io::Result<()> {
        let ud = Box::into_raw(Box::new(cell));
        let rc = set(ud as *mut c_void, Some(destroy_tramp::<C>));
        if rc < 0 {
            // SAFETY: refused, so still ours alone.
            drop(unsafe { Box::from_raw(ud) });
            return Err(err(rc));
        }
        Ok(())
    }

    fn handler_cell<F>(&self, f: F) -> HandlerCell
    where
        F: FnMut(&Group) -> Answer + Send + 'static,
    {
        HandlerCell {
            shared: self.shared_ptr(),
            f: Mutex::new(Box::new(f)),
        }
    }

    /// Set the default handler: for groups no device or PASID handler
    /// takes. Without any handler, groups are answered INVALID.
    ///
    /// A closure replaced (or removed) is dropped once no thread runs it:
    /// at once if none does, else by the thread whose call of it returns
    /// last; [`quiesce`](Context::quiesce) waits for that. Errors: `ENOMEM`.
    pub fn set_handler<F>(&self, f: F) -> io::Result<()>
    where
        F: FnMut(&Group) -> Answer + Send + 'static,
    {
        let raw = self.raw();
        self.install(self.handler_cell(f), |ud, d| unsafe {
            sys::iopf_ctx_set_handler_full(raw, Some(handler_tramp), ud, d)
        })
    }

    /// Remove the default handler (dropped as for a replaced one).
    pub fn clear_handler(&self) -> io::Result<()> {
        check(unsafe { sys::iopf_ctx_set_handler_full(self.raw(), None, ptr::null_mut(), None) }).map(|_| ())
    }

    /// Set the handler of one device (all its PASIDs). Errors: `ENOMEM`.
    pub fn set_device_handler<F>(&self, dev_id: u32, f: F) -> io::Result<()>
    where
        F: FnMut(&Group) -> Answer + Send + 'static,
    {
        let raw = self.raw();
        self.install(self.handler_cell(f), |ud, d| unsafe {
            sys::iopf_ctx_set_device_handler_full(raw, dev_id, Some(handler_tramp), ud, d)
        })
    }

    /// Remove the handler of one device.
    pub fn clear_device_handler(&self, dev_id: u32) -> io::Result<()> {
        check(unsafe {
            sys::iopf_ctx_set_device_handler_full(self.raw(), dev_id, None, ptr::null_mut(), None)
        })
        .map(|_| ())
    }

    /// Set the handler of one device and PASID (None: its groups without
    /// PASID); it takes precedence over the device handler.
    pub fn set_pasid_handler<F>(&self, dev_id: u32, pasid: Option<u32>, f: F) -> io::Result<()>
    where
        F: FnMut(&Group) -> Answer + Send + 'static,
    {
        let raw = self.raw();
        self.install(self.handler_cell(f), |ud, d| unsafe {
            sys::iopf_ctx_set_pasid_handler_full(raw, dev_id, pasid_raw(pasid), Some(handler_tramp), ud, d)
        })
    }

    /// Remove the handler of one device and PASID.
    pub fn clear_pasid_handler(&self, dev_id: u32, pasid: Option<u32>) -> io::Result<()> {
        check(unsafe {
            sys::iopf_ctx_set_pasid_handler_full(
                self.raw(),
                dev_id,
                pasid_raw(pasid),
                None,
                ptr::null_mut(),
                None,
            )
        })
        .map(|_| ())
    }

    /// Set the batch handler, used instead of the default handler for the
    /// groups no device or PASID handler takes: many groups a call (up to
    /// 64 of one dispatch round; one at a time with workers). It sets
    /// `answers[i]` for `groups[i]`: each starts as `Answer::Invalid`;
    /// `Answer::Defer` with [`Group::defer`] answers later. A panic
    /// answers the whole batch INVALID. Dropped as a replaced handler is.
    ///
    /// ```no_run
    /// # let ctx = iopf::Context::new()?;
    /// ctx.set_batch_handler(|groups, answers| {
    ///     for (g, a) in groups.iter().zip(answers.iter_mut()) {
    ///         *a = if g.records().len() < 16 { iopf::Answer::Success } else { iopf::Answer::Invalid };
    ///     }
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_batch_handler<F>(&self, f: F) -> io::Result<()>
    where
        F: FnMut(&[Group], &mut [Answer]) + Send + 'static,
    {
        let raw = self.raw();
        let cell = BatchCell {
            shared: self.shared_ptr(),
            f: Mutex::new(Box::new(f)),
        };
        self.install(cell, |ud, d| unsafe {
            sys::iopf_ctx_set_batch_handler_full(raw, Some(batch_tramp), ud, d)
        })
    }

    /// Remove the batch handler: the default handler takes its groups.
    pub fn clear_batch_handler(&self) -> io::Result<()> {
        check(unsafe { sys::iopf_ctx_set_batch_handler_full(self.raw(), None, ptr::null_mut(), None) })
            .map(|_| ())
    }

    /// Set the cancel closure: told of each group a handler held
    /// (deferred or still running) that was dropped because its device
    /// went away ([`device_gone`](Context::device_gone), a watched
    /// device's removal). It gets a copy of the group ([`Cancelled`]);
    /// answering its handle now gets `ENODEV`.
    ///
    /// It cannot deadlock: it may call anything a handler may, including
    /// `device_gone()` for another device. Calls are queued and made one
    /// at a time, never inside one another: normally before
    /// `device_gone()` returns, but a cancellation that comes while
    /// another thread (or an outer call) runs the closure is handed to
    /// that thread, which makes it right after its current call.
    pub fn set_cancel_handler<F>(&self, f: F) -> io::Result<()>
    where
        F: FnMut(&Cancelled) + Send + 'static,
    {
        let raw = self.raw();
        let cell = CancelCell {
            shared: self.shared_ptr(),
            serial: Serial::new(Box::new(f), "cancel"),
        };
        self.install(cell, |ud, d| unsafe {
            sys::iopf_ctx_set_cancel_handler_full(raw, Some(cancel_tramp), ud, d)
        })
    }

    /// Remove the cancel closure.
    pub fn clear_cancel_handler(&self) -> io::Result<()> {
        check(unsafe { sys::iopf_ctx_set_cancel_handler_full(self.raw(), None, ptr::null_mut(), None) })
            .map(|_| ())
    }

    /// Wait until no thread runs a closure that was replaced or removed,
    /// and every such closure has been dropped. Errors: `EDEADLK` (called
    /// from a callback, which could be the one waited for).
    pub fn quiesce(&self) -> io::Result<()> {
        check(unsafe { sys::iopf_ctx_quiesce(self.raw()) }).map(|_| ())
    }
}
