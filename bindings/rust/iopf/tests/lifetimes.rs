//! When closures go (libiopf 1.3 destroy callbacks): a replaced or removed
//! handler, batch handler or cancel closure is dropped exactly once, once
//! no thread can run it any more; quiesce() waits for that.

mod common;

use std::sync::{mpsc, Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use iopf::{Answer, Code, Context, Deferred, Options};

#[test]
fn replaced_closures_are_dropped_at_once_and_once() {
    let ctx = Context::new().unwrap();
    let (p, answers) = recording_producer(&ctx);
    let me = thread::current().id();

    let (a, a_drops, a_threads) = Counted::new();
    ctx.set_handler(move |_| {
        let _ = &a;
        Answer::Invalid
    })
    .unwrap();
    let (b, b_drops, _) = Counted::new();
    ctx.set_handler(move |_| {
        let _ = &b;
        Answer::Success
    })
    .unwrap();
    assert_eq!(count(&a_drops), 1, "replaced, never run: dropped by the setter");
    assert_eq!(*a_threads.lock().unwrap(), vec![me]);

    let (c, c_drops, _) = Counted::new();
    ctx.set_device_handler(9, move |_| {
        let _ = &c;
        Answer::Invalid
    })
    .unwrap();
    ctx.clear_device_handler(9).unwrap();
    assert_eq!(count(&c_drops), 1, "removed");

    let (d, d_drops, _) = Counted::new();
    ctx.set_pasid_handler(9, Some(3), move |_| {
        let _ = &d;
        Answer::Invalid
    })
    .unwrap();
    let (e, e_drops, _) = Counted::new();
    ctx.set_pasid_handler(9, Some(3), move |_| {
        let _ = &e;
        Answer::Invalid
    })
    .unwrap();
    assert_eq!((count(&d_drops), count(&e_drops)), (1, 0));
    ctx.clear_pasid_handler(9, Some(3)).unwrap();
    assert_eq!(count(&e_drops), 1);

    let (f, f_drops, _) = Counted::new();
    ctx.set_batch_handler(move |_, _| {
        let _ = &f;
    })
    .unwrap();
    ctx.clear_batch_handler().unwrap();
    assert_eq!(count(&f_drops), 1, "batch handler removed");

    let (g, g_drops, _) = Counted::new();
    ctx.set_cancel_handler(move |_| {
        let _ = &g;
    })
    .unwrap();
    let (h, h_drops, _) = Counted::new();
    ctx.set_cancel_handler(move |_| {
        let _ = &h;
    })
    .unwrap();
    assert_eq!(
        (count(&g_drops), count(&h_drops)),
        (1, 0),
        "cancel closure replaced"
    );

    submit(&p, (1, None, 1), 1);
    dispatch_until(&ctx, &answers, 1);
    assert_eq!(
        answers.lock().unwrap()[&(1, None, 1)],
        vec![Code::Success],
        "the last one set runs"
    );
    ctx.quiesce().unwrap(); // nothing to wait for
    assert_eq!(count(&b_drops), 0, "installed: kept");
    drop(ctx);
    for (n, c) in [
        &a_drops, &b_drops, &c_drops, &d_drops, &e_drops, &f_drops, &g_drops, &h_drops,
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(count(c), 1, "closure {n} dropped once");
    }
}

#[test]
fn a_closure_running_on_a_worker_is_dropped_after_its_last_call() {
    let ctx = Context::with_options(&Options {
        workers: 1,
        ..Default::default()
    })
    .unwrap();
    let (p, answers) = recording_producer(&ctx);
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (a, a_drops, a_threads) = Counted::new();
    let worker = Arc::new(Mutex::new(None));
    let w = worker.clone();
    ctx.set_handler(move |_| {
        let _ = &a;
        *w.lock().unwrap() = Some(thread::current().id());
        started_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        Answer::Success
    })
    .unwrap();
    submit(&p, (1, None, 1), 1);
    ctx.dispatch().unwrap(); // to the worker
    started_rx.recv_timeout(Duration::from_secs(10)).unwrap();

    ctx.set_handler(|_| Answer::Invalid).unwrap();
    thread::sleep(Duration::from_millis(50));
    assert_eq!(count(&a_drops), 0, "replaced while running: kept");

    let release = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        release_tx.send(()).unwrap();
    });
    let t0 = Instant::now();
    ctx.quiesce().unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(50),
        "quiesce waited for the call"
    );
    assert_eq!(count(&a_drops), 1, "dropped once its call returned");
    // By the worker once its call returned, or by quiesce() itself if it
    // got there first (libiopf reaps on whichever thread comes).
    let worker = worker.lock().unwrap().unwrap();
    let by = a_threads.lock().unwrap()[0];
    assert!(by == worker || by == thread::current().id(), "dropped on {by:?}");
    release.join().unwrap();

    dispatch_until(&ctx, &answers, 1);
    assert_eq!(
        answers.lock().unwrap()[&(1, None, 1)],
        vec![Code::Success],
        "its answer stands"
    );
    submit(&p, (1, None, 2), 1);
    dispatch_until(&ctx, &answers, 2);
    assert_eq!(
        answers.lock().unwrap()[&(1, None, 2)],
        vec![Code::Invalid],
        "the new one runs"
    );
    drop(ctx);
    assert_eq!(count(&a_drops), 1);
}

#[test]
fn a_handler_replacing_itself_goes_when_it_returns() {
    let ctx = Arc::new(Context::new().unwrap());
    let (p, answers) = recording_producer(&ctx);
    let weak: Weak<Context> = Arc::downgrade(&ctx);
    let (a, a_drops, a_threads) = Counted::new();
    let a_drops2 = a_drops.clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    ctx.set_handler(move |_| {
        let _ = &a;
        let ctx = weak.upgrade().unwrap();
        ctx.set_handler(|_| Answer::Invalid).unwrap();
        // Still running: not dropped under our feet.
        s.lock().unwrap().push(count(&a_drops2));
        let q = ctx.quiesce().unwrap_err();
        s.lock().unwrap().push(errno(&q) as usize);
        Answer::Success
    })
    .unwrap();
    submit(&p, (1, None, 1), 1);
    dispatch_until(&ctx, &answers, 1);
    submit(&p, (1, None, 2), 1);
    dispatch_until(&ctx, &answers, 2);
    assert_eq!(*seen.lock().unwrap(), vec![0, libc::EDEADLK as usize]);
    assert_eq!(count(&a_drops), 1);
    assert_eq!(
        *a_threads.lock().unwrap(),
        vec![thread::current().id()],
        "the dispatching thread"
    );
    let a = answers.lock().unwrap();
    assert_eq!(a[&(1, None, 1)], vec![Code::Success]);
    assert_eq!(
        a[&(1, None, 2)],
        vec![Code::Invalid],
        "the next group had the new one"
    );
}

#[test]
fn a_deferred_captured_by_a_dropped_closure_answers_invalid() {
    let ctx = Context::new().unwrap();
    let (p, answers) = recording_producer(&ctx);
    let (tx, rx) = mpsc::channel();
    ctx.set_handler(move |g| {
        tx.send(g.defer()).unwrap();
        Answer::Defer
    })
    .unwrap();
    submit(&p, (1, None, 1), 1);
    submit(&p, (1, None, 2), 1);
    dispatch_until_handled(&ctx, 2);
    let d1: Deferred = rx.recv().unwrap();
    let d2: Deferred = rx.recv().unwrap();
    // The handler holding the Sender goes; this one holds d1.
    ctx.set_handler(move |_| {
        let _ = &d1;
        Answer::Success
    })
    .unwrap();
    assert!(answers.lock().unwrap().is_empty());
    // Replacing it drops d1: it answers INVALID from the destroy callback.
    ctx.set_handler(|_| Answer::Success).unwrap();
    ctx.flush().unwrap();
    assert_eq!(answers.lock().unwrap()[&(1, None, 1)], vec![Code::Invalid]);
    // One installed when the context goes: its Deferred waits until the
    // context is freed, then gets ESHUTDOWN (the group went INVALID).
    ctx.set_handler(move |_| {
        let _ = &d2;
        Answer::Success
    })
    .unwrap();
    drop(ctx);
    assert_eq!(answers.lock().unwrap()[&(1, None, 2)], vec![Code::Invalid]);
    assert_eq!(total(&answers), 2);
}

#[test]
fn a_closed_producers_respond_closure_is_dropped_after_its_last_answer() {
    let ctx = Context::new().unwrap();
    let (c, drops, _) = Counted::new();
    let answers = Arc::new(Mutex::new(0usize));
    let a = answers.clone();
    let p = ctx
        .producer(move |_r| {
            let _keep = &c; // the closure owns the counter
            *a.lock().unwrap() += 1;
        })
        .unwrap();
    let (tx, rx) = mpsc::channel();
    ctx.set_handler(move |g| {
        tx.send(g.defer()).unwrap();
        Answer::Defer
    })
    .unwrap();
    submit(&p, (1, None, 3), 1);
    dispatch_until_handled(&ctx, 1);
    let d = rx.recv().unwrap();
    assert_eq!(count(&drops), 0, "alive while its producer is open");
    drop(p); // closes it: the deferred group is answered INVALID through respond
    assert_eq!(*answers.lock().unwrap(), 1);
    assert_eq!(count(&drops), 1, "dropped once its last answer went");
    drop(d); // its group was answered by the close: refused, no answer
    drop(ctx);
    assert_eq!(count(&drops), 1);
}
