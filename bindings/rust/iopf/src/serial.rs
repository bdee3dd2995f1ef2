//! One FnMut fed from many threads and from inside itself, without ever
//! waiting for it: what respond and cancel closures need.

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, TryLockError};

use crate::shared::lock;

/// A closure run for items that may come from several threads at once,
/// and again from inside the closure (libiopf calls a respond callback
/// from an answer the callback makes, a cancel callback from a
/// device_gone() it calls). Items are queued; whichever thread holds the
/// closure runs it for all of them. So it runs on one thread at a time,
/// never inside itself, and no thread ever blocks on it: nothing can
/// deadlock on the closure. The price: an item queued while another
/// thread runs the closure is handled by that thread, maybe after its own
/// thread has gone on.
pub(crate) struct Serial<T> {
    queue: Mutex<VecDeque<T>>,
    f: Mutex<Box<dyn FnMut(&T) + Send>>,
    what: &'static str,
}

impl<T> Serial<T> {
    /// `what` names the closure in the warning a panic gives.
    pub(crate) fn new(f: Box<dyn FnMut(&T) + Send>, what: &'static str) -> Serial<T> {
        Serial {
            queue: Mutex::new(VecDeque::new()),
            f: Mutex::new(f),
            what,
        }
    }

    /// Queue `item`, then run the closure for every queued item unless
    /// another thread (or an outer call on this one) holds it: that one
    /// runs it for ours before letting it go.
    pub(crate) fn push(&self, item: T) {
        lock(&self.queue).push_back(item);
        loop {
            let mut f = match self.f.try_lock() {
                Ok(f) => f,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => return,
            };
            loop {
                let next = lock(&self.queue).pop_front();
                let item = match next {
                    Some(i) => i,
                    None => break,
                };
                // Unwinding into C is undefined: a panic is said and
                // the next item still delivered.
                if panic::catch_unwind(AssertUnwindSafe(|| (f)(&item))).is_err() {
                    crate::warn(&format!("a {} closure panicked", self.what));
                }
            }
            drop(f);
            // An item queued while we ran it, after our last look, whose
            // thread found the closure taken: ours to deliver.
            if lock(&self.queue).is_empty() {
                return;
            }
        }
    }
}
