//! The context: handlers as closures, dispatch, answers, statistics.

use std::io;
use std::os::raw::c_int;
use std::os::unix::io::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

use iopf_sys as sys;

use crate::group::{pasid_raw, Code, Handle};
use crate::shared::{check, err, in_any_callback, shutdown, Shared};
use crate::stats::Stats;

/// Options of [`Context::with_options`]; `Default` gives libiopf's defaults.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Worker threads calling handlers in parallel; 0: handlers run in the
    /// thread that dispatches. (One closure is never run by two threads at
    /// once: give devices handlers of their own to use the workers.)
    pub workers: u32,
    /// Most answers per write() to a fault fd; 0: 1024.
    pub batch_max: u32,
    /// Most groups outstanding; 0: no cap.
    pub max_outstanding: u32,
    /// Answer INVALID any group outstanding longer than this.
    pub deadline: Option<Duration>,
    /// Log to stderr ("libiopf: ...") at `log_level` and below.
    pub log_stderr: bool,
    /// Most verbose syslog level logged (0: 4, warning).
    pub log_level: i32,
    /// Most groups one [`dispatch`](Context::dispatch) hands out (the rest
    /// stay ready, the fd readable); 0: no limit. Since 1.3.
    pub dispatch_max_groups: u32,
    /// Time budget of one dispatch: no handler is started once it is
    /// spent (to the microsecond, at least 1). None: no limit. Since 1.3.
    pub dispatch_max_time: Option<Duration>,
    /// Keep counters per (device, PASID) too, for
    /// [`pasid_stats`](Context::pasid_stats). Since 1.3.
    pub pasid_stats: bool,
    /// Debug mode (`IOPF_CTX_POISON`): ended groups are poisoned, their
    /// slots reused late. For tests; costs speed. Since 1.3.
    pub poison: bool,
}

/// A duration in whole microseconds for libiopf: 0 stays 0 only for None
/// (0 means "no limit" or "the default" there); `EINVAL` past u32.
pub(crate) fn micros(d: Option<Duration>) -> io::Result<u32> {
    match d {
        None => Ok(0),
        Some(d) => {
            u32::try_from(d.as_micros().max(1)).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
        }
    }
}

/// Which PASIDs of a device a reset, drain or detach covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pasids {
    /// The device's groups without PASID.
    NoPasid,
    /// One PASID.
    One(u32),
    /// Every PASID, and the groups without one.
    All,
}

impl Pasids {
    pub(crate) fn raw(self) -> (u32, u32) {
        match self {
            Pasids::NoPasid => (sys::IOPF_NO_PASID, 0),
            Pasids::One(p) => (p, 0),
            Pasids::All => (sys::IOPF_NO_PASID, sys::IOPF_ALL_PASIDS),
        }
    }
}

/// A libiopf context: handlers, sources, outstanding groups, one pollable
/// fd. `Send + Sync`: calls may come from any thread, except that one
/// thread at a time dispatches (others get `EBUSY`).
///
/// Dropping it stops its workers, answers every outstanding group INVALID
/// (deferred ones included: their [`Deferred`](crate::Deferred) then gets
/// `ESHUTDOWN`), closes its sources and frees its closures.
pub struct Context {
    shared: Arc<Shared>,
    raw: *mut sys::iopf_ctx,
}

// SAFETY: libiopf contexts may be used from any thread (iopf.h); the
// pointer stays valid until Drop, which has the Context to itself.
unsafe impl Send for Context {}
unsafe impl Sync for Context {}

impl Context {
    /// A context with default options.
    pub fn new() -> io::Result<Context> {
        Context::with_options(&Options::default())
    }

    /// A context with the given options. Errors: `EINVAL`, `ENOMEM`, or
    /// those of epoll_create1(), eventfd(), timerfd_create(),
    /// pthread_create().
    pub fn with_options(o: &Options) -> io::Result<Context> {
        let deadline_ms = match o.deadline {
            None => 0,
            Some(d) => {
                u32::try_from(d.as_millis().max(1)).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?
            }
        };
        // Zeroed first: fields a newer header appends take their defaults
        // (and the crate still builds against it).
        let mut opts: sys::iopf_ctx_opts = unsafe { std::mem::zeroed() };
        opts.sz = std::mem::size_of::<sys::iopf_ctx_opts>();
        opts.workers = o.workers;
        opts.batch_max = o.batch_max;
        opts.max_outstanding = o.max_outstanding;
        opts.deadline_ms = deadline_ms;
        opts.log_fn = if o.log_stderr {
            Some(sys::iopf_log_stderr)
        } else {
            None
        };
        opts.log_userdata = ptr::null_mut();
        opts.log_level = o.log_level;
        opts.dispatch_max_groups = o.dispatch_max_groups;
        opts.dispatch_max_us = micros(o.dispatch_max_time)?;
        opts.flags = if o.pasid_stats {
            sys::IOPF_CTX_PASID_STATS
        } else {
            0
        } | if o.poison { sys::IOPF_CTX_POISON } else { 0 };
        let raw = unsafe { sys::iopf_ctx_new(&opts) };
        if raw.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(Context {
            shared: Arc::new(Shared::new(raw)),
            raw,
        })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn raw(&self) -> *mut sys::iopf_ctx {
        self.raw
    }

    /// A handle for answering this context's groups from other threads.
    pub fn responder(&self) -> Responder {
        Responder {
            shared: self.shared.clone(),
        }
    }

    /// Do all pending work without blocking; returns the number of groups
    /// handed to handlers. Errors: `EBUSY` (another thread dispatches),
    /// `EIO` (a fault fd failed; the others were served).
    pub fn dispatch(&self) -> io::Result<usize> {
        check(unsafe { sys::iopf_ctx_dispatch(self.raw) })
    }

    /// [`dispatch`](Context::dispatch) within a budget: hand out at most
    /// `max_groups` groups and start no handler once `max_time` has passed
    /// (a running one is not interrupted). What is left stays ready and
    /// the fd readable; this call's answers are written before it returns.
    /// `max_groups` 0 and `max_time` None take the context's options
    /// (`dispatch_max_groups`, `dispatch_max_time`; unset there: no
    /// limit). Errors: as `dispatch`, and `EINVAL` for a time past u32
    /// microseconds.
    pub fn dispatch_bounded(&self, max_groups: u32, max_time: Option<Duration>) -> io::Result<usize> {
        check(unsafe { sys::iopf_ctx_dispatch_bounded(self.raw, max_groups, micros(max_time)?) })
    }

    /// Set a device's share of dispatch: `weight` groups a turn (1 to
    /// 65536; 0: 1, the default), and `priority` to serve it before every
    /// device without. Errors: `EINVAL`, `ENOMEM`.
    pub fn set_device_sched(&self, dev_id: u32, weight: u32, priority: bool) -> io::Result<()> {
        let flags = if priority { sys::IOPF_SCHED_PRIORITY } else { 0 };
        check(unsafe { sys::iopf_ctx_set_device_sched(self.raw, dev_id, weight, flags) }).map(|_| ())
    }

    /// Set how guest answers by PRG index ([`respond_prg`](Responder::respond_prg))
    /// of a device are matched and reported: `DEV_*` flags, 0 for the
    /// default (exact (device, PASID, PRG index), oldest first). Errors:
    /// `EINVAL` (an unknown flag), `ENOMEM`. Since 1.3.
    pub fn set_device_flags(&self, dev_id: u32, flags: u32) -> io::Result<()> {
        check(unsafe { sys::iopf_ctx_set_device_flags(self.raw, dev_id, flags) }).map(|_| ())
    }

    /// Dispatch until [`stop`](Context::stop), blocking while idle.
    pub fn run(&self) -> io::Result<()> {
        check(unsafe { sys::iopf_ctx_run(self.raw) }).map(|_| ())
    }

    /// Make [`run`](Context::run) return (any thread).
    pub fn stop(&self) -> io::Result<()> {
        check(unsafe { sys::iopf_ctx_stop(self.raw) }).map(|_| ())
    }

    /// Write every answer gathered so far.
    pub fn flush(&self) -> io::Result<()> {
        check(unsafe { sys::iopf_ctx_flush(self.raw) }).map(|_| ())
    }

    /// Wait until every outstanding group of a device (and PASIDs) is
    /// answered and written; None: no time limit. Errors: `ETIMEDOUT`,
    /// `EMSGSIZE`.
    pub fn drain(&self, dev_id: u32, pasids: Pasids, timeout: Option<Duration>) -> io::Result<()> {
        let (pasid, flags) = pasids.raw();
        let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as c_int);
        check(unsafe { sys::iopf_ctx_drain(self.raw, dev_id, pasid, flags, ms) }).map(|_| ())
    }

    /// Answer by handle; see [`Responder::respond`].
    pub fn respond(&self, h: Handle, code: Code) -> io::Result<()> {
        check(unsafe { sys::iopf_respond(self.raw, h.0, code.raw()) }).map(|_| ())
    }

    /// Answer by (device, PASID, PRG index); see [`Responder::respond_prg`].
    pub fn respond_prg(&self, dev_id: u32, pasid: Option<u32>, prgi: u32, code: Code) -> io::Result<()> {
        check(unsafe { sys::iopf_respond_prg(self.raw, dev_id, pasid_raw(pasid), prgi, code.raw()) })
            .map(|_| ())
    }

    /// Answer INVALID every outstanding group of a device (a guest reset);
    /// returns how many.
    pub fn answer_invalid(&self, dev_id: u32, pasids: Pasids) -> io::Result<usize> {
        let (pasid, flags) = pasids.raw();
        check(unsafe { sys::iopf_ctx_answer_invalid(self.raw, dev_id, pasid, flags) })
    }

    /// Mark a device gone (unplugged): its groups are dropped without a
    /// write, later answers get `ENODEV`. Returns how many were dropped.
    pub fn device_gone(&self, dev_id: u32) -> io::Result<usize> {
        check(unsafe { sys::iopf_ctx_device_gone(self.raw, dev_id) })
    }

    /// Tie an iommufd device id to its sysfs device (a path under /sys,
    /// a DEVPATH or a device name) and watch for its removal (uevents,
    /// read inside [`dispatch`](Context::dispatch)). Errors: `ENOENT`,
    /// `EOPNOTSUPP` (libiopf built without libnl-3), the socket's errno.
    pub fn watch_device(&self, dev_id: u32, sysdev: &str) -> io::Result<()> {
        let c = std::ffi::CString::new(sysdev).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        check(unsafe { sys::iopf_ctx_watch_device(self.raw, dev_id, c.as_ptr()) }).map(|_| ())
    }

    /// Forget a device id: no longer watched, no longer gone. Errors:
    /// `ENOENT`.
    pub fn unwatch_device(&self, dev_id: u32) -> io::Result<()> {
        check(unsafe { sys::iopf_ctx_unwatch_device(self.raw, dev_id) }).map(|_| ())
    }

    /// A copy of the counters.
    pub fn stats(&self) -> io::Result<Stats> {
        let mut st = sys::iopf_stats {
            sz: std::mem::size_of::<sys::iopf_stats>(),
            ..Default::default()
        };
        check(unsafe { sys::iopf_ctx_get_stats(self.raw, &mut st) })?;
        Ok(Stats(st))
    }
}

impl AsRawFd for Context {
    /// The context's pollable fd (owned by the context): readable when
    /// [`dispatch`](Context::dispatch) has work.
    fn as_raw_fd(&self) -> RawFd {
        unsafe { sys::iopf_ctx_get_fd(self.raw) }
    }
}

impl AsFd for Context {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd lives as long as the context, which outlives &self.
        unsafe { BorrowedFd::borrow_raw(self.as_raw_fd()) }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        if !in_any_callback() {
            self.shared.free();
            return;
        }
        // Dropped inside a callback (the last Arc<Context> let go in a
        // handler): libiopf refuses to free a context there, so a thread
        // of its own does it once the callback has returned.
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name("iopf-ctx-free".into())
            .spawn(move || shared.free());
        if spawned.is_err() {
            crate::warn("no thread to free a context dropped in a callback: leaked");
            std::mem::forget(self.shared.clone());
        }
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("fd", &self.as_raw_fd()).finish()
    }
}

/// Answers groups of one context from any thread (a guest's vCPU or queue
/// thread): cheap to clone, `Send + Sync`. Once the context is dropped,
/// every call gets `ESHUTDOWN`.
#[derive(Clone, Debug)]
pub struct Responder {
    shared: Arc<Shared>,
}

impl Responder {
    fn call(&self, f: impl FnOnce(*mut sys::iopf_ctx) -> c_int) -> io::Result<usize> {
        match self.shared.with(f) {
            Some(rc) => check(rc),
            None => Err(shutdown()),
        }
    }

    /// Answer a group by handle. Errors (refused, counted, nothing sent):
    /// `EALREADY`, `ESHUTDOWN`, `ETIMEDOUT`, `ENODEV`, `ENOENT`.
    pub fn respond(&self, h: Handle, code: Code) -> io::Result<()> {
        self.call(|c| unsafe { sys::iopf_respond(c, h.0, code.raw()) })
            .map(|_| ())
    }

    /// Answer the oldest outstanding group of (device, PASID, PRG index):
    /// a guest's page group response. Errors: `ENOENT` (none outstanding: a
    /// late or duplicate answer; counted), `ENODEV`, `ENOMEM`.
    pub fn respond_prg(&self, dev_id: u32, pasid: Option<u32>, prgi: u32, code: Code) -> io::Result<()> {
        self.call(|c| unsafe { sys::iopf_respond_prg(c, dev_id, pasid_raw(pasid), prgi, code.raw()) })
            .map(|_| ())
    }

    /// Answer many groups by handle under one take of the lock; returns
    /// what [`respond`](Responder::respond) would have returned for each.
    pub fn respond_many(&self, answers: &[(Handle, Code)]) -> io::Result<Vec<io::Result<()>>> {
        let handles: Vec<u64> = answers.iter().map(|a| a.0 .0).collect();
        let codes: Vec<c_int> = answers.iter().map(|a| a.1.raw() as c_int).collect();
        let mut res = vec![0 as c_int; answers.len()];
        self.call(|c| unsafe {
            sys::iopf_respond_many(
                c,
                handles.as_ptr(),
                codes.as_ptr(),
                answers.len(),
                res.as_mut_ptr(),
            )
        })?;
        Ok(res
            .into_iter()
            .map(|r| if r < 0 { Err(err(r)) } else { Ok(()) })
            .collect())
    }

    /// Answer many guest answers, each `(dev_id, pasid, prgi, code)`, under
    /// one take of the lock, in order (a key twice reaches its two oldest
    /// groups); returns what [`respond_prg`](Responder::respond_prg) would
    /// have returned for each.
    pub fn respond_prg_many(&self, answers: &[(u32, Option<u32>, u32, Code)]) -> io::Result<Vec<io::Result<()>>> {
        let raw: Vec<sys::iopf_prg_answer> = answers
            .iter()
            .map(|&(dev_id, pasid, prgi, code)| sys::iopf_prg_answer {
                dev_id,
                pasid: pasid_raw(pasid),
                prgi,
                code: code.raw() as i32,
            })
            .collect();
        let mut res = vec![0 as c_int; answers.len()];
        self.call(|c| unsafe { sys::iopf_respond_prg_many(c, raw.as_ptr(), raw.len(), res.as_mut_ptr()) })?;
        Ok(res
            .into_iter()
            .map(|r| if r < 0 { Err(err(r)) } else { Ok(()) })
            .collect())
    }

    /// Answer INVALID every outstanding group of a device (a guest reset).
    pub fn answer_invalid(&self, dev_id: u32, pasids: Pasids) -> io::Result<usize> {
        let (pasid, flags) = pasids.raw();
        self.call(|c| unsafe { sys::iopf_ctx_answer_invalid(c, dev_id, pasid, flags) })
    }
}
