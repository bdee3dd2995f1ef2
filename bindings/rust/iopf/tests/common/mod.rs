//! Helpers of the 1.3 tests: a producer recording every answer, one-record
//! groups, dispatching until answered, drop counters.
#![allow(dead_code)] // each test file uses some

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use iopf::{Code, Context, Producer, Request, Response};

pub type Key = (u32, Option<u32>, u32);
pub type Answers = Arc<Mutex<HashMap<Key, Vec<Code>>>>;

pub fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// A producer whose respond closure records every answer by group key.
pub fn recording_producer(ctx: &Context) -> (Producer, Answers) {
    let answers: Answers = Arc::default();
    let a = answers.clone();
    let p = ctx
        .producer(move |r: &Response| {
            a.lock()
                .unwrap()
                .entry((r.dev_id, r.pasid, r.prgi))
                .or_default()
                .push(r.code)
        })
        .unwrap();
    (p, answers)
}

/// Submit a group of `n` records (the last LAST) at address prgi << 20.
pub fn submit(p: &Producer, (dev_id, pasid, prgi): Key, n: u32) {
    for j in 0..n {
        p.submit(&Request {
            dev_id,
            pasid,
            prgi,
            perm: iopf::PERM_READ | iopf::PERM_WRITE,
            addr: (u64::from(prgi) << 20) + u64::from(j) * 4096,
            last: j + 1 == n,
        })
        .unwrap();
    }
}

pub fn total(a: &Answers) -> usize {
    a.lock().unwrap().values().map(Vec::len).sum()
}

/// Dispatch until `n` answers arrived (or fail after 20 s).
pub fn dispatch_until(ctx: &Context, a: &Answers, n: usize) {
    let t0 = Instant::now();
    while total(a) < n {
        match ctx.dispatch() {
            Ok(_) => {}
            Err(e) if errno(&e) == libc::EBUSY => {}
            Err(e) => panic!("dispatch: {e}"),
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "answers: {} of {n}",
            total(a)
        );
        thread::yield_now();
    }
}

/// Dispatch until `n` groups were handed out and nothing is left.
pub fn dispatch_until_handled(ctx: &Context, n: u64) {
    let t0 = Instant::now();
    while ctx.stats().unwrap().groups < n || ctx.dispatch().unwrap() > 0 {
        assert!(t0.elapsed() < Duration::from_secs(20));
    }
}

/// Every group answered exactly once, with `want(key)`.
pub fn check_once(a: &Answers, keys: &[Key], want: impl Fn(&Key) -> Code) {
    let a = a.lock().unwrap();
    assert_eq!(a.len(), keys.len(), "groups answered");
    for k in keys {
        assert_eq!(a.get(k).map(Vec::as_slice), Some(&[want(k)][..]), "group {k:?}");
    }
}

/// Counts its drops, and says on which thread they happened.
pub struct Counted {
    drops: Arc<AtomicUsize>,
    threads: Arc<Mutex<Vec<ThreadId>>>,
}

impl Counted {
    pub fn new() -> (Counted, Arc<AtomicUsize>, Arc<Mutex<Vec<ThreadId>>>) {
        let drops = Arc::new(AtomicUsize::new(0));
        let threads = Arc::new(Mutex::new(Vec::new()));
        (
            Counted {
                drops: drops.clone(),
                threads: threads.clone(),
            },
            drops,
            threads,
        )
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.threads.lock().unwrap().push(thread::current().id());
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

pub fn count(c: &AtomicUsize) -> usize {
    c.load(Ordering::SeqCst)
}
