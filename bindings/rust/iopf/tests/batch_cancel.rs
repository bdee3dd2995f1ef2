//! The batch handler (many groups a call) and the cancel closure (groups
//! dropped in a handler's hands when their device went away).

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex, Weak};
use std::thread;
use std::time::Duration;

use common::*;
use iopf::{Answer, Cancelled, Code, Context, Deferred, Handle, Options};

fn key(i: u32) -> Key {
    (1 + i % 4, if i % 5 == 0 { None } else { Some(i % 7) }, i)
}

fn want(k: &Key) -> Code {
    match k.2 % 3 {
        1 => Code::Invalid,
        _ => Code::Success,
    }
}

#[test]
fn batch_handler_answers_each_group_once() {
    const N: u32 = 600;
    let ctx = Context::new().unwrap();
    let (p, answers) = recording_producer(&ctx);
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel::<Deferred>();
    let sz = sizes.clone();
    ctx.set_batch_handler(move |groups, answers| {
        assert_eq!(groups.len(), answers.len());
        assert!(
            answers.iter().all(|a| *a == Answer::Invalid),
            "answers start INVALID"
        );
        sz.lock().unwrap().push(groups.len());
        for (g, a) in groups.iter().zip(answers.iter_mut()) {
            assert_ne!(g.dev_id(), 4, "device 4 has a handler of its own");
            assert_eq!(g.records().len() as u32, 1 + g.prgi() % 3);
            *a = match g.prgi() % 3 {
                0 => {
                    tx.send(g.defer()).unwrap();
                    Answer::Defer
                }
                1 => Answer::Invalid,
                _ => Answer::Success,
            };
        }
    })
    .unwrap();
    let dev4 = Arc::new(AtomicUsize::new(0));
    let d4 = dev4.clone();
    ctx.set_device_handler(4, move |g| {
        d4.fetch_add(1, Ordering::SeqCst);
        want(&(g.dev_id(), g.pasid(), g.prgi())).into()
    })
    .unwrap();
    let guest = thread::spawn(move || rx.iter().map(|d| d.respond(Code::Success).unwrap()).count());
    let keys: Vec<Key> = (0..N).map(key).collect();
    for k in &keys {
        submit(&p, *k, 1 + k.2 % 3);
    }
    dispatch_until(&ctx, &answers, N as usize);
    check_once(&answers, &keys, want);
    let sizes = sizes.lock().unwrap();
    assert_eq!(sizes.iter().sum::<usize>() + count(&dev4), N as usize);
    assert_eq!(count(&dev4), (N / 4) as usize);
    assert!(sizes.iter().all(|&n| (1..=64).contains(&n)), "{sizes:?}");
    assert!(sizes.iter().any(|&n| n > 1), "groups come in batches");
    assert_eq!(ctx.stats().unwrap().refused_answers, 0);
    drop(ctx); // drops the batch handler's Sender
    let deferred = keys.iter().filter(|k| k.2 % 3 == 0 && k.0 != 4).count();
    assert_eq!(guest.join().unwrap(), deferred);
}

#[test]
fn a_panicking_batch_handler_answers_its_batch_invalid() {
    let ctx = Context::new().unwrap();
    let (p, answers) = recording_producer(&ctx);
    let panicked: Arc<Mutex<Vec<u32>>> = Arc::default();
    let pb = panicked.clone();
    ctx.set_batch_handler(move |groups, answers| {
        answers.iter_mut().for_each(|a| *a = Answer::Success);
        if groups.iter().any(|g| g.prgi() == 5) {
            pb.lock().unwrap().extend(groups.iter().map(|g| g.prgi()));
            panic!("batch handler panics on purpose");
        }
    })
    .unwrap();
    let keys: Vec<Key> = (0..10).map(|i| (1, None, i)).collect();
    for k in &keys {
        submit(&p, *k, 1);
    }
    dispatch_until(&ctx, &answers, 10);
    let bad: HashSet<u32> = panicked.lock().unwrap().iter().copied().collect();
    assert!(bad.contains(&5));
    check_once(&answers, &keys, |k| {
        if bad.contains(&k.2) {
            Code::Invalid
        } else {
            Code::Success
        }
    });
    // Still installed and usable.
    submit(&p, (1, None, 11), 1);
    dispatch_until(&ctx, &answers, 11);
    assert_eq!(answers.lock().unwrap()[&(1, None, 11)], vec![Code::Success]);
}

#[test]
fn with_workers_a_batch_is_one_group() {
    const N: u32 = 300;
    let ctx = Context::with_options(&Options {
        workers: 2,
        ..Default::default()
    })
    .unwrap();
    let (p, answers) = recording_producer(&ctx);
    let max = Arc::new(AtomicUsize::new(0));
    let m = max.clone();
    ctx.set_batch_handler(move |groups, answers| {
        m.fetch_max(groups.len(), Ordering::SeqCst);
        answers[0] = want(&(groups[0].dev_id(), groups[0].pasid(), groups[0].prgi())).into();
    })
    .unwrap();
    let keys: Vec<Key> = (0..N).map(key).collect();
    for k in &keys {
        submit(&p, *k, 1);
    }
    dispatch_until(&ctx, &answers, N as usize);
    check_once(&answers, &keys, want);
    assert_eq!(count(&max), 1);
}

/// A handler that defers every group into `held`.
fn holding_handler(ctx: &Context) -> Arc<Mutex<Vec<Deferred>>> {
    let held: Arc<Mutex<Vec<Deferred>>> = Arc::default();
    let h = held.clone();
    ctx.set_handler(move |g| {
        h.lock().unwrap().push(g.defer());
        Answer::Defer
    })
    .unwrap();
    held
}

#[test]
fn the_cancel_closure_gets_a_copy_of_each_held_group() {
    let ctx = Context::new().unwrap();
    let (p, answers) = recording_producer(&ctx);
    let held = holding_handler(&ctx);
    let got: Arc<Mutex<Vec<Cancelled>>> = Arc::default();
    let g2 = got.clone();
    ctx.set_cancel_handler(move |c| g2.lock().unwrap().push(c.clone()))
        .unwrap();
    for (i, k) in [(2, Some(5), 1), (2, None, 2), (2, Some(6), 3), (3, None, 4)]
        .iter()
        .enumerate()
    {
        submit(&p, *k, 1 + i as u32);
    }
    dispatch_until_handled(&ctx, 4);
    assert_eq!(ctx.device_gone(2).unwrap(), 3);
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 3, "before device_gone returned");
    let held: Vec<Deferred> = std::mem::take(&mut *held.lock().unwrap());
    // In the order they came in.
    assert_eq!(got.iter().map(|c| c.prgi).collect::<Vec<_>>(), vec![1, 2, 3]);
    for c in got.iter() {
        let d = held
            .iter()
            .find(|d| d.handle() == c.handle)
            .expect("a held group");
        assert_eq!((c.dev_id, c.pasid, c.prgi), (d.dev_id(), d.pasid(), d.prgi()));
        assert_eq!(c.records.len() as u32, c.prgi);
        assert_eq!(c.records[0].addr, u64::from(c.prgi) << 20);
        assert!(c.records.last().unwrap().flags & iopf::F_LAST_PAGE != 0);
        assert_eq!(c.cookie, 0, "a producer's group");
    }
    for d in held {
        let dev = d.dev_id();
        match d.respond(Code::Success) {
            Err(e) => assert_eq!((dev, errno(&e)), (2, libc::ENODEV)),
            Ok(()) => assert_eq!(dev, 3),
        }
    }
    // A producer's groups get their answer: INVALID for the gone ones.
    let a = answers.lock().unwrap();
    assert_eq!(a[&(2, Some(5), 1)], vec![Code::Invalid]);
    assert_eq!(a[&(3, None, 4)], vec![Code::Success]);
    assert_eq!(ctx.stats().unwrap().cancelled, 3);
}

#[test]
fn the_cancel_closure_may_call_device_gone() {
    // With a mutex around the closure this would deadlock: device_gone(3)
    // from inside it calls it again on the same thread.
    let ctx = Arc::new(Context::new().unwrap());
    let (p, _answers) = recording_producer(&ctx);
    let _held = holding_handler(&ctx);
    let weak: Weak<Context> = Arc::downgrade(&ctx);
    let seen: Arc<Mutex<Vec<(u32, u32)>>> = Arc::default();
    let depth = Arc::new(AtomicUsize::new(0));
    let max_depth = Arc::new(AtomicUsize::new(0));
    let inner_gone = Arc::new(AtomicUsize::new(usize::MAX));
    let (s, d, m, ig) = (seen.clone(), depth.clone(), max_depth.clone(), inner_gone.clone());
    ctx.set_cancel_handler(move |c| {
        let now = d.fetch_add(1, Ordering::SeqCst) + 1;
        m.fetch_max(now, Ordering::SeqCst);
        s.lock().unwrap().push((c.dev_id, c.prgi));
        if c.dev_id == 2 && c.prgi == 0 {
            let n = weak.upgrade().unwrap().device_gone(3).unwrap();
            ig.store(n, Ordering::SeqCst);
        }
        d.fetch_sub(1, Ordering::SeqCst);
    })
    .unwrap();
    for i in 0..3 {
        submit(&p, (2, None, i), 1);
        submit(&p, (3, None, 10 + i), 1);
    }
    dispatch_until_handled(&ctx, 6);
    assert_eq!(ctx.device_gone(2).unwrap(), 3);
    assert_eq!(count(&inner_gone), 3);
    assert_eq!(count(&max_depth), 1, "never run inside itself");
    let seen = seen.lock().unwrap();
    // Device 3's groups came while the closure ran: right after that call.
    assert_eq!(*seen, vec![(2, 0), (3, 10), (3, 11), (3, 12), (2, 1), (2, 2)]);
}

#[test]
fn cancels_from_two_threads_run_one_at_a_time() {
    const PER_DEV: u32 = 40;
    let ctx = Arc::new(Context::new().unwrap());
    let (p, _answers) = recording_producer(&ctx);
    let held = holding_handler(&ctx);
    let seen: Arc<Mutex<Vec<Handle>>> = Arc::default();
    let depth = Arc::new(AtomicUsize::new(0));
    let max_depth = Arc::new(AtomicUsize::new(0));
    let (s, d, m) = (seen.clone(), depth.clone(), max_depth.clone());
    ctx.set_cancel_handler(move |c| {
        let now = d.fetch_add(1, Ordering::SeqCst) + 1;
        m.fetch_max(now, Ordering::SeqCst);
        thread::sleep(Duration::from_micros(200));
        s.lock().unwrap().push(c.handle);
        d.fetch_sub(1, Ordering::SeqCst);
    })
    .unwrap();
    for i in 0..PER_DEV {
        submit(&p, (1, None, i), 1);
        submit(&p, (2, None, i), 1);
    }
    dispatch_until_handled(&ctx, u64::from(2 * PER_DEV));
    let go = Arc::new(Barrier::new(2));
    let threads: Vec<_> = [1, 2]
        .into_iter()
        .map(|dev| {
            let (ctx, go) = (ctx.clone(), go.clone());
            thread::spawn(move || {
                go.wait();
                ctx.device_gone(dev).unwrap()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), PER_DEV as usize);
    }
    assert_eq!(count(&max_depth), 1, "one thread at a time");
    let got: HashSet<Handle> = seen.lock().unwrap().iter().copied().collect();
    let want: HashSet<Handle> = held.lock().unwrap().iter().map(Deferred::handle).collect();
    assert_eq!(seen.lock().unwrap().len(), 2 * PER_DEV as usize, "each once");
    assert_eq!(got, want);
}
