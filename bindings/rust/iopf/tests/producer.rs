//! Producer-driven tests (no kernel): every group gets exactly one answer,
//! whoever gives it, from whichever thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use iopf::{Answer, Code, Context, Deferred, Options, Pasids, Producer, Request, Submitted};

mod common;
use common::{dispatch_until, dispatch_until_handled, errno, recording_producer, total, Answers, Key};

fn key_of(i: u32) -> Key {
    let dev = 1 + i % 4;
    let pasid = if i % 5 == 0 { None } else { Some(i % 7) };
    (dev, pasid, i)
}

/// Submit group i: 1 to 4 requests, the last one LAST.
fn submit_group(p: &Producer, i: u32) {
    let (dev_id, pasid, prgi) = key_of(i);
    let n = 1 + i % 4;
    for j in 0..n {
        let r = Request {
            dev_id,
            pasid,
            prgi,
            perm: iopf::PERM_READ,
            addr: (u64::from(i) << 20) + u64::from(j) * 4096,
            last: j + 1 == n,
        };
        let want = if r.last {
            Submitted::Queued
        } else {
            Submitted::Held
        };
        assert_eq!(p.submit(&r).unwrap(), want);
    }
}

fn expected(i: u32) -> Code {
    match i % 3 {
        1 => Code::Invalid,
        _ => Code::Success,
    }
}

/// Answer now (SUCCESS or INVALID) or defer to a "guest" thread.
fn mixed_handler(
    tx: mpsc::Sender<Deferred>,
    seen: Arc<AtomicUsize>,
) -> impl FnMut(&iopf::Group) -> Answer + Send {
    move |g| {
        seen.fetch_add(1, Ordering::Relaxed);
        let n = g.records().len() as u32;
        assert_eq!(n, 1 + g.prgi() % 4, "records of group {}", g.prgi());
        assert!(g.records().last().unwrap().flags & iopf::F_LAST_PAGE != 0);
        assert_eq!(key_of(g.prgi()), (g.dev_id(), g.pasid(), g.prgi()));
        match g.prgi() % 3 {
            0 => {
                tx.send(g.defer()).unwrap();
                Answer::Defer
            }
            1 => Answer::Invalid,
            _ => Answer::Success,
        }
    }
}

fn guest(rx: mpsc::Receiver<Deferred>) -> thread::JoinHandle<usize> {
    thread::spawn(move || {
        let mut n = 0;
        for d in rx {
            d.respond(Code::Success).unwrap();
            n += 1;
        }
        n
    })
}

fn check_once(a: &Answers, groups: u32) {
    let a = a.lock().unwrap();
    assert_eq!(a.len(), groups as usize);
    for i in 0..groups {
        assert_eq!(
            a.get(&key_of(i)).map(Vec::as_slice),
            Some(&[expected(i)][..]),
            "group {i}"
        );
    }
}

#[test]
fn each_group_answered_exactly_once() {
    const N: u32 = 3000;
    let ctx = Context::new().unwrap();
    let (p, answers) = recording_producer(&ctx);
    let (tx, rx) = mpsc::channel();
    let seen = Arc::new(AtomicUsize::new(0));
    ctx.set_handler(mixed_handler(tx, seen.clone())).unwrap();
    let g = guest(rx);
    for i in 0..N {
        submit_group(&p, i);
    }
    dispatch_until(&ctx, &answers, N as usize);
    check_once(&answers, N);
    assert_eq!(seen.load(Ordering::Relaxed), N as usize);
    let st = ctx.stats().unwrap();
    assert_eq!(st.groups, u64::from(N));
    assert_eq!(st.answers_success + st.answers_invalid, u64::from(N));
    assert_eq!(st.refused_answers, 0);
    assert_eq!(st.outstanding, 0);
    drop(ctx); // closes the handler's Sender: the guest ends
    assert_eq!(g.join().unwrap(), N.div_ceil_compat(3));
}

trait DivCeil {
    fn div_ceil_compat(self, d: u32) -> usize;
}
impl DivCeil for u32 {
    fn div_ceil_compat(self, d: u32) -> usize {
        ((self + d - 1) / d) as usize
    }
}

#[test]
fn workers_and_device_handlers_answer_exactly_once() {
    const N: u32 = 4000;
    let ctx = Context::with_options(&Options {
        workers: 3,
        ..Default::default()
    })
    .unwrap();
    let (p, answers) = recording_producer(&ctx);
    let (tx, rx) = mpsc::channel();
    let seen = Arc::new(AtomicUsize::new(0));
    for dev in 1..=4 {
        ctx.set_device_handler(dev, mixed_handler(tx.clone(), seen.clone()))
            .unwrap();
    }
    drop(tx);
    let g = guest(rx);
    // Submitted from two threads at once while this one dispatches.
    let p = Arc::new(p);
    let subs: Vec<_> = (0..2)
        .map(|t| {
            let p = p.clone();
            thread::spawn(move || (t..N).step_by(2).for_each(|i| submit_group(&p, i)))
        })
        .collect();
    dispatch_until(&ctx, &answers, N as usize);
    subs.into_iter().for_each(|s| s.join().unwrap());
    check_once(&answers, N);
    assert_eq!(ctx.stats().unwrap().refused_answers, 0);
    drop(ctx);
    assert_eq!(g.join().unwrap(), N.div_ceil_compat(3));
}

#[test]
fn deferred_dropped_unanswered_answers_invalid() {
    let ctx = Context::new().unwrap();
    let (p, answers) = recording_producer(&ctx);
    let (tx, rx) = mpsc::channel();
    ctx.set_handler(move |g| {
        tx.send(g.defer()).unwrap();
        Answer::Defer
    })
    .unwrap();
    submit_group(&p, 2);
    dispatch_until_handled(&ctx, 1);
    let d = rx.recv().unwrap();
    assert_eq!((d.dev_id(), d.pasid(), d.prgi()), key_of(2));
    assert!(answers.lock().unwrap().is_empty(), "not answered while held");
    thread::spawn(move || drop(d)).join().unwrap();
    dispatch_until(&ctx, &answers, 1);
    assert_eq!(answers.lock().unwrap()[&key_of(2)], vec![Code::Invalid]);
    let st = ctx.stats().unwrap();
    assert_eq!((st.answers_invalid, st.refused_answers), (1, 0));
}

#[test]
fn second_answers_are_refused_and_counted() {
    let ctx = Context::new().unwrap();
    let (p, answers) = recording_producer(&ctx);
    let (tx, rx) = mpsc::channel();
    ctx.set_handler(move |g| {
        tx.send(g.defer()).unwrap();
        Answer::Defer
    })
    .unwrap();
    submit_group(&p, 7);
    dispatch_until_handled(&ctx, 1);
    let d = rx.recv().unwrap();
    let h = d.handle();
    d.respond(Code::Success).unwrap();
    dispatch_until(&ctx, &answers, 1);
    let r = ctx.responder();
    assert_eq!(errno(&r.respond(h, Code::Invalid).unwrap_err()), libc::EALREADY);
    let (dev, pasid, prgi) = key_of(7);
    assert_eq!(
        errno(&r.respond_prg(dev, pasid, prgi, Code::Invalid).unwrap_err()),
        libc::ENOENT
    );
    assert_eq!(answers.lock().unwrap()[&key_of(7)], vec![Code::Success]);
    let st = ctx.stats().unwrap();
    assert_eq!(st.refused_answers, 2, "both refusals counted");
    assert_eq!(st.unmatched_answers, 1, "the one by PRG index");
}

#[test]
fn guest_answers_by_prg_index_and_handle() {
    let ctx = Context::new().unwrap();
    let (p, answers) = recording_producer(&ctx);
    let (tx, rx) = mpsc::channel();
    ctx.set_handler(move |g| {
        tx.send((g.dev_id(), g.pasid(), g.prgi(), g.handle())).unwrap();
        Answer::Defer // no Deferred taken: answered by key or handle
    })
    .unwrap();
    let r = ctx.responder();
    let guest = thread::spawn(move || {
        let mut many = Vec::new();
        let mut prg_many = Vec::new();
        for (dev, pasid, prgi, h) in rx.iter().take(100) {
            let code = expected(prgi);
            match prgi % 4 {
                0 => r.respond_prg(dev, pasid, prgi, code).unwrap(),
                1 => r.respond(h, code).unwrap(),
                2 => many.push((h, code)),
                _ => prg_many.push((dev, pasid, prgi, code)),
            }
        }
        assert!(r.respond_many(&many).unwrap().iter().all(Result::is_ok));
        assert!(!prg_many.is_empty());
        assert!(r.respond_prg_many(&prg_many).unwrap().iter().all(Result::is_ok));
        let late = r.respond_prg_many(&prg_many[..1]).unwrap();
        assert_eq!(errno(late[0].as_ref().unwrap_err()), libc::ENOENT);
    });
    for i in 0..100 {
        submit_group(&p, i);
    }
    dispatch_until(&ctx, &answers, 100);
    guest.join().unwrap();
    check_once(&answers, 100);
}

#[test]
fn dropping_the_context_answers_what_is_outstanding() {
    let ctx = Context::new().unwrap();
    let (p, answers) = recording_producer(&ctx);
    let (tx, rx) = mpsc::channel();
    ctx.set_handler(move |g| {
        tx.send(g.defer()).unwrap();
        Answer::Defer
    })
    .unwrap();
    for i in 0..10 {
        submit_group(&p, i);
    }
    dispatch_until_handled(&ctx, 10);
    submit_group(&p, 10); // queued, never dispatched
    let r = ctx.responder();
    let held: Vec<Deferred> = rx.try_iter().collect();
    assert_eq!(held.len(), 10);
    drop(ctx);
    {
        let a = answers.lock().unwrap();
        assert_eq!(a.len(), 11);
        assert!(a.values().all(|v| v == &[Code::Invalid]));
    }
    for d in held {
        assert_eq!(errno(&d.respond(Code::Success).unwrap_err()), libc::ESHUTDOWN);
    }
    assert_eq!(
        errno(&r.respond_prg(1, None, 0, Code::Success).unwrap_err()),
        libc::ESHUTDOWN
    );
    let e = p
        .submit(&Request {
            dev_id: 1,
            last: true,
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(errno(&e), libc::ESHUTDOWN);
    drop(p); // its source went with the context: not closed twice
    assert_eq!(total(&answers), 11);
}

#[test]
fn a_panicking_handler_answers_invalid() {
    let ctx = Context::new().unwrap();
    let (p, answers) = recording_producer(&ctx);
    ctx.set_handler(|g| {
        if g.prgi() == 1 {
            panic!("handler panics on purpose");
        }
        let _ = g.defer();
        let _ = g.defer(); // twice: panics too
        Answer::Defer
    })
    .unwrap();
    submit_group(&p, 1);
    submit_group(&p, 2);
    dispatch_until(&ctx, &answers, 2);
    let a = answers.lock().unwrap();
    assert_eq!(a[&key_of(1)], vec![Code::Invalid]);
    assert_eq!(a[&key_of(2)], vec![Code::Invalid]);
}

#[test]
fn respond_closure_may_answer_other_groups() {
    // Each answer's respond call answers the next held group: libiopf calls
    // the closure from inside itself; it must run once per group, in turn.
    const N: u32 = 200;
    let ctx = Context::new().unwrap();
    let held: Arc<Mutex<Vec<Deferred>>> = Arc::default();
    let answers: Answers = Arc::default();
    let (a, h) = (answers.clone(), held.clone());
    let depth = Arc::new(AtomicUsize::new(0));
    let max_depth = Arc::new(AtomicUsize::new(0));
    let (d2, m2) = (depth.clone(), max_depth.clone());
    let p = ctx
        .producer(move |r| {
            let now = d2.fetch_add(1, Ordering::SeqCst) + 1;
            m2.fetch_max(now, Ordering::SeqCst);
            a.lock()
                .unwrap()
                .entry((r.dev_id, r.pasid, r.prgi))
                .or_default()
                .push(r.code);
            let next = h.lock().unwrap().pop();
            if let Some(d) = next {
                d.respond(Code::Success).unwrap();
            }
            d2.fetch_sub(1, Ordering::SeqCst);
        })
        .unwrap();
    let h2 = held.clone();
    ctx.set_handler(move |g| {
        h2.lock().unwrap().push(g.defer());
        Answer::Defer
    })
    .unwrap();
    for i in 0..N {
        let (dev_id, pasid, prgi) = key_of(i);
        p.submit(&Request {
            dev_id,
            pasid,
            prgi,
            last: true,
            ..Default::default()
        })
        .unwrap();
    }
    dispatch_until_handled(&ctx, u64::from(N));
    let first = held.lock().unwrap().pop().unwrap();
    first.respond(Code::Success).unwrap();
    assert_eq!(total(&answers), N as usize);
    assert!(answers.lock().unwrap().values().all(|v| v == &[Code::Success]));
    assert_eq!(max_depth.load(Ordering::SeqCst), 1, "never run inside itself");
}

#[test]
fn reset_and_deadline_end_groups_with_their_errors() {
    let ctx = Context::with_options(&Options {
        deadline: Some(Duration::from_millis(50)),
        ..Default::default()
    })
    .unwrap();
    let (p, answers) = recording_producer(&ctx);
    let (tx, rx) = mpsc::channel();
    ctx.set_handler(move |g| {
        tx.send(g.defer()).unwrap();
        Answer::Defer
    })
    .unwrap();
    submit_group(&p, 1); // dev 2
    submit_group(&p, 2); // dev 3
    dispatch_until_handled(&ctx, 2);
    let mut d: Vec<Deferred> = rx.try_iter().collect();
    d.sort_by_key(|d| d.dev_id());
    assert_eq!(ctx.responder().answer_invalid(2, Pasids::All).unwrap(), 1);
    let t0 = Instant::now();
    while total(&answers) < 2 {
        ctx.dispatch().unwrap();
        thread::sleep(Duration::from_millis(5));
        assert!(t0.elapsed() < Duration::from_secs(10));
    }
    let d3 = d.pop().unwrap();
    assert_eq!(errno(&d3.respond(Code::Success).unwrap_err()), libc::ETIMEDOUT);
    let d2 = d.pop().unwrap();
    assert_eq!(errno(&d2.respond(Code::Success).unwrap_err()), libc::ESHUTDOWN);
    let st = ctx.stats().unwrap();
    assert_eq!((st.deadline_expired, st.answers_invalid), (1, 2));
}

#[test]
fn last_context_reference_dropped_in_a_handler() {
    // libiopf refuses iopf_ctx_free() from a callback: the binding frees
    // the context from a thread of its own once the handler returned.
    let ctx = Arc::new(
        Context::with_options(&Options {
            workers: 1,
            ..Default::default()
        })
        .unwrap(),
    );
    let (p, answers) = recording_producer(&ctx);
    let slot: Arc<Mutex<Option<Arc<Context>>>> = Arc::new(Mutex::new(Some(ctx.clone())));
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    let s = slot.clone();
    ctx.set_handler(move |_| {
        go_rx.lock().unwrap().recv().unwrap();
        drop(s.lock().unwrap().take()); // the last Arc<Context>
        Answer::Success
    })
    .unwrap();
    submit_group(&p, 3);
    ctx.dispatch().unwrap(); // handed to the worker, which waits for go
    drop(ctx);
    go_tx.send(()).unwrap();
    let t0 = Instant::now();
    while total(&answers) < 1 {
        assert!(t0.elapsed() < Duration::from_secs(10), "no answer");
        thread::sleep(Duration::from_millis(1));
    }
    // Freed: the producer's calls now get ESHUTDOWN.
    while p
        .submit(&Request {
            dev_id: 1,
            last: true,
            ..Default::default()
        })
        .is_ok()
    {
        assert!(t0.elapsed() < Duration::from_secs(10), "context not freed");
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(answers.lock().unwrap()[&key_of(3)].len(), 1, "one answer");
}

#[test]
fn a_device_gone_refuses_its_answers() {
    let ctx = Context::new().unwrap();
    let (p, answers) = recording_producer(&ctx);
    let (tx, rx) = mpsc::channel();
    ctx.set_handler(move |g| {
        tx.send(g.defer()).unwrap();
        Answer::Defer
    })
    .unwrap();
    submit_group(&p, 1); // device 2
    dispatch_until_handled(&ctx, 1);
    assert_eq!(ctx.device_gone(2).unwrap(), 1);
    // A producer's group has no kernel behind it: answered INVALID.
    assert_eq!(answers.lock().unwrap()[&key_of(1)], vec![Code::Invalid]);
    let d = rx.recv().unwrap();
    assert_eq!(errno(&d.respond(Code::Success).unwrap_err()), libc::ENODEV);
    let e = p
        .submit(&Request {
            dev_id: 2,
            last: true,
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(errno(&e), libc::ENODEV);
    // ENOENT; without libnl-3 EOPNOTSUPP; where uevent sockets are not
    // allowed, the socket's errno.
    let e = errno(&ctx.watch_device(2, "/sys/no/such/device").unwrap_err());
    assert!(
        [libc::ENOENT, libc::EOPNOTSUPP, libc::EPERM, libc::EPROTONOSUPPORT].contains(&e),
        "{e}"
    );
    assert_eq!(errno(&ctx.unwatch_device(77).unwrap_err()), libc::ENOENT);
}
