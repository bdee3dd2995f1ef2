//! The state every handle of one context shares: the C context pointer,
//! freed once under a write lock, and the closures the C side holds as
//! userdata that must wait for it (producers' respond closures, closures
//! whose destroy callback came while the context was being freed).

use std::any::Any;
use std::cell::RefCell;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use iopf_sys as sys;

pub(crate) struct Shared {
    /// The context; null once freed. Calls made from threads the Context
    /// does not borrow (Deferred, Responder, Producer, FaultQueue) hold the
    /// read lock; freeing holds the write lock, so no call ever reaches a
    /// freed context: it gets ESHUTDOWN instead.
    ctx: RwLock<*mut sys::iopf_ctx>,
    /// The same pointer, never cleared: used only inside this context's
    /// own callbacks, where the lock must not be taken (see `with`).
    raw: *mut sys::iopf_ctx,
    /// Userdata freed with the context: producers' respond closures
    /// (libiopf cannot say when a closed producer's last answer has been
    /// delivered), and closures whose destroy callback ran inside
    /// iopf_ctx_free(), where dropping them could call libiopf.
    kept: Mutex<Vec<Box<dyn Any + Send + Sync>>>,
    /// Set once `free` starts: destroy callbacks from then on park their
    /// closure in `kept` (see `dispose`).
    freeing: AtomicBool,
}

// SAFETY: libiopf's functions may be called from any thread (iopf.h), the
// pointer is only freed under the write lock, and `kept` holds Send + Sync
// values only.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

thread_local! {
    /// The contexts whose callbacks this thread is running, innermost last.
    static IN_CALLBACK: RefCell<Vec<*const Shared>> = const { RefCell::new(Vec::new()) };
}

/// Marks the current thread as inside a callback of a context while alive.
pub(crate) struct CallbackGuard;

impl CallbackGuard {
    pub(crate) fn enter(shared: *const Shared) -> CallbackGuard {
        IN_CALLBACK.with(|v| v.borrow_mut().push(shared));
        CallbackGuard
    }
}

impl Drop for CallbackGuard {
    fn drop(&mut self) {
        IN_CALLBACK.with(|v| {
            v.borrow_mut().pop();
        });
    }
}

/// Is this thread inside any libiopf callback? (iopf_ctx_free() refuses.)
pub(crate) fn in_any_callback() -> bool {
    IN_CALLBACK.with(|v| !v.borrow().is_empty())
}

fn in_callback_of(shared: *const Shared) -> bool {
    IN_CALLBACK.with(|v| v.borrow().contains(&shared))
}

pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A closure that panicked was answered for; its state is still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A negative errno from libiopf as an io::Error.
pub(crate) fn err(rc: i32) -> io::Error {
    io::Error::from_raw_os_error(-rc)
}

/// libiopf's int convention: >= 0 is a count, < 0 a negative errno.
pub(crate) fn check(rc: i32) -> io::Result<usize> {
    if rc < 0 {
        Err(err(rc))
    } else {
        Ok(rc as usize)
    }
}

pub(crate) fn shutdown() -> io::Error {
    io::Error::from_raw_os_error(libc::ESHUTDOWN)
}

impl Shared {
    pub(crate) fn new(ctx: *mut sys::iopf_ctx) -> Shared {
        Shared {
            ctx: RwLock::new(ctx),
            raw: ctx,
            kept: Mutex::new(Vec::new()),
            freeing: AtomicBool::new(false),
        }
    }

    /// Run `f` on the live context, or give None once it is freed.
    ///
    /// Inside one of this context's callbacks the context is alive (it is
    /// never freed under its own callbacks, and freeing waits for its
    /// workers), so no lock is taken there: taking the read lock again
    /// could deadlock with a waiting writer.
    pub(crate) fn with<R>(&self, f: impl FnOnce(*mut sys::iopf_ctx) -> R) -> Option<R> {
        if in_callback_of(self) {
            return Some(f(self.raw));
        }
        let g = self.ctx.read().unwrap_or_else(PoisonError::into_inner);
        if g.is_null() {
            None
        } else {
            Some(f(*g))
        }
    }

    /// Drop a closure libiopf let go of (its destroy callback: no thread
    /// can run it any more). Its captures may call libiopf as they go (a
    /// Deferred answers INVALID, a Context is freed): as inside a callback,
    /// which is where libiopf calls destroy. While the context is being
    /// freed they wait in `kept` until it is gone, so that they get
    /// ESHUTDOWN instead of reaching a half-freed context.
    pub(crate) fn dispose(&self, v: Box<dyn Any + Send + Sync>) {
        if self.freeing.load(Ordering::SeqCst) {
            lock(&self.kept).push(v);
            return;
        }
        let _cb = CallbackGuard::enter(self);
        if panic::catch_unwind(AssertUnwindSafe(move || drop(v))).is_err() {
            crate::warn("a closure panicked while dropped");
        }
    }

    /// Free the context (answering every outstanding group INVALID), then
    /// the closures it held. Must not run inside a callback.
    pub(crate) fn free(&self) {
        self.freeing.store(true, Ordering::SeqCst);
        let mut g = self.ctx.write().unwrap_or_else(PoisonError::into_inner);
        if !g.is_null() {
            // SAFETY: not in a callback (checked by the caller), and the
            // write lock keeps every other call out.
            unsafe { sys::iopf_ctx_free(*g) };
            *g = ptr::null_mut();
        }
        drop(g);
        let kept = std::mem::take(&mut *lock(&self.kept));
        drop(kept);
    }
}
