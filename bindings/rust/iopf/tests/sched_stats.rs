//! Bounded and fair dispatch, per-device counters, every field of a
//! record, and the kernel probe's errors (libiopf 1.3).

mod common;

use std::fs::File;
use std::os::unix::io::{AsFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::*;
use iopf::{Answer, Code, Context, Options, RecordInfo};

/// A handler answering SUCCESS that notes who it was handed, in order.
fn recording_handler(ctx: &Context) -> Arc<Mutex<Vec<(u32, u32)>>> {
    let order: Arc<Mutex<Vec<(u32, u32)>>> = Arc::default();
    let o = order.clone();
    ctx.set_handler(move |g| {
        o.lock().unwrap().push((g.dev_id(), g.prgi()));
        Answer::Success
    })
    .unwrap();
    order
}

#[test]
fn dispatch_bounded_by_groups() {
    let ctx = Context::new().unwrap();
    let (p, answers) = recording_producer(&ctx);
    let order = recording_handler(&ctx);
    for i in 0..10 {
        submit(&p, (1, None, i), 1);
    }
    assert_eq!(ctx.dispatch_bounded(3, None).unwrap(), 3);
    assert_eq!(total(&answers), 3, "this slice's answers are out");
    assert_eq!(ctx.stats().unwrap().dispatch_slices, 1);
    let mut calls = 1;
    while total(&answers) < 10 {
        assert!(ctx.dispatch_bounded(3, None).unwrap() <= 3);
        calls += 1;
        assert!(calls < 10);
    }
    assert_eq!(calls, 4);
    assert_eq!(order.lock().unwrap().len(), 10);
}

#[test]
fn options_bound_every_dispatch() {
    let ctx = Context::with_options(&Options {
        dispatch_max_groups: 4,
        ..Default::default()
    })
    .unwrap();
    let (p, answers) = recording_producer(&ctx);
    let _order = recording_handler(&ctx);
    for i in 0..10 {
        submit(&p, (1, None, i), 1);
    }
    assert_eq!(ctx.dispatch().unwrap(), 4);
    assert_eq!(
        ctx.dispatch_bounded(1, None).unwrap(),
        1,
        "an argument beats the option"
    );
    dispatch_until(&ctx, &answers, 10);
}

#[test]
fn dispatch_bounded_by_time() {
    let ctx = Context::new().unwrap();
    let (p, answers) = recording_producer(&ctx);
    ctx.set_handler(|_| {
        thread::sleep(Duration::from_millis(5));
        Answer::Success
    })
    .unwrap();
    for i in 0..10 {
        submit(&p, (1, None, i), 1);
    }
    let n = ctx.dispatch_bounded(0, Some(Duration::from_millis(2))).unwrap();
    assert!(n <= 1, "no handler started past the budget: {n}");
    assert_eq!(ctx.stats().unwrap().dispatch_slices, 1);
    let too_long = ctx
        .dispatch_bounded(0, Some(Duration::from_secs(5000)))
        .unwrap_err();
    assert_eq!(errno(&too_long), libc::EINVAL, "past u32 microseconds");
    let e = Context::with_options(&Options {
        dispatch_max_time: Some(Duration::from_secs(5000)),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(errno(&e), libc::EINVAL);
    dispatch_until(&ctx, &answers, 10);
}

#[test]
fn weights_and_priority() {
    let ctx = Context::new().unwrap();
    let (p, answers) = recording_producer(&ctx);
    let order = recording_handler(&ctx);
    ctx.set_device_sched(1, 3, false).unwrap();
    assert_eq!(
        errno(&ctx.set_device_sched(1, 65537, false).unwrap_err()),
        libc::EINVAL
    );
    for i in 0..6 {
        submit(&p, (1, None, i), 1);
    }
    for i in 0..3 {
        submit(&p, (2, None, 10 + i), 1);
    }
    dispatch_until(&ctx, &answers, 9);
    let devs: Vec<u32> = order.lock().unwrap().iter().map(|o| o.0).collect();
    assert_eq!(devs, vec![1, 1, 1, 2, 1, 1, 1, 2, 2], "three of device 1 a turn");

    order.lock().unwrap().clear();
    ctx.set_device_sched(1, 1, false).unwrap();
    ctx.set_device_sched(3, 0, true).unwrap();
    for i in 0..3 {
        submit(&p, (1, None, 20 + i), 1);
        submit(&p, (3, None, 20 + i), 1);
    }
    dispatch_until(&ctx, &answers, 15);
    let devs: Vec<u32> = order.lock().unwrap().iter().map(|o| o.0).collect();
    assert_eq!(devs, vec![3, 3, 3, 1, 1, 1], "a priority device first");
}

#[test]
fn device_and_pasid_counters() {
    let ctx = Context::with_options(&Options {
        pasid_stats: true,
        ..Default::default()
    })
    .unwrap();
    let (p, answers) = recording_producer(&ctx);
    ctx.set_handler(|g| {
        if g.pasid() == Some(5) {
            Answer::Invalid
        } else {
            Answer::Success
        }
    })
    .unwrap();
    assert!(ctx.devices().unwrap().is_empty());
    for i in 0..4 {
        submit(&p, (1, None, i), 2);
        submit(&p, (1, Some(5), i), 1);
    }
    for i in 0..20 {
        submit(&p, (2 + i, None, i), 1);
    }
    dispatch_until(&ctx, &answers, 28);

    let mut devs = ctx.devices().unwrap();
    devs.sort_unstable();
    assert_eq!(devs, (1..=21).collect::<Vec<u32>>(), "more than one call's room");
    let d1 = ctx.device_stats(1).unwrap();
    assert_eq!((d1.dev_id, d1.pasid()), (1, None));
    assert_eq!((d1.groups, d1.records), (8, 12));
    assert_eq!((d1.answers_success, d1.answers_invalid), (4, 4));
    assert_eq!((d1.outstanding, d1.ready), (0, 0));
    assert!(d1.latency_ns(0.5) > 0);
    let p5 = ctx.pasid_stats(1, Some(5)).unwrap();
    assert_eq!((p5.pasid(), p5.groups, p5.answers_invalid), (Some(5), 4, 4));
    let none = ctx.pasid_stats(1, None).unwrap();
    assert_eq!((none.groups, none.records), (4, 8));
    assert_eq!(errno(&ctx.device_stats(99).unwrap_err()), libc::ENOENT);
    assert!(format!("{d1:?}").contains("groups: 8"));

    let plain = Context::new().unwrap();
    assert_eq!(errno(&plain.pasid_stats(1, None).unwrap_err()), libc::EOPNOTSUPP);
}

#[test]
fn record_info_has_every_field() {
    let ctx = Context::with_options(&Options {
        poison: true, // and the debug mode works through the binding
        ..Default::default()
    })
    .unwrap();
    let (p, answers) = recording_producer(&ctx);
    let infos: Arc<Mutex<Vec<RecordInfo>>> = Arc::default();
    let errs = Arc::new(Mutex::new(Vec::new()));
    let (i2, e2) = (infos.clone(), errs.clone());
    ctx.set_handler(move |g| {
        for i in 0..g.records().len() {
            i2.lock().unwrap().push(g.record_info(i).unwrap());
        }
        e2.lock()
            .unwrap()
            .push(errno(&g.record_info(g.records().len()).unwrap_err()));
        Answer::Success
    })
    .unwrap();
    submit(&p, (4, Some(9), 33), 2);
    dispatch_until(&ctx, &answers, 1);
    assert_eq!(answers.lock().unwrap()[&(4, Some(9), 33)], vec![Code::Success]);
    let infos = infos.lock().unwrap();
    assert_eq!(infos.len(), 2);
    for (i, ri) in infos.iter().enumerate() {
        let last = if i == 1 { iopf::F_LAST_PAGE } else { 0 };
        assert_eq!(
            *ri,
            RecordInfo {
                flags: iopf::F_PASID_VALID | last,
                dev_id: 4,
                pasid: Some(9),
                prgi: 33,
                perm: iopf::PERM_READ | iopf::PERM_WRITE,
                length: 0,
                addr: (33 << 20) + i as u64 * 4096,
                cookie: 0,
                raw_perm: iopf::PERM_READ | iopf::PERM_WRITE,
            }
        );
    }
    assert_eq!(*errs.lock().unwrap(), vec![libc::ERANGE]);
}

#[test]
fn probe_refuses_what_is_not_an_iommufd() {
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (r, _w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    assert_eq!(errno(&iopf::probe(r.as_fd(), None).unwrap_err()), libc::ENOTTY);
    // Where /dev/iommu can be opened, it answers without a device (what
    // needs one stays false).
    if let Ok(f) = File::options().read(true).write(true).open("/dev/iommu") {
        let info = iopf::probe(f.as_fd(), None).unwrap();
        assert_eq!((info.record_size, info.response_size), (40, 8));
        assert!(!info.nested_fault() && !info.paging_fault() && !info.pasid_attach());
    }
}

#[test]
fn a_device_whose_answers_carry_no_pasid() {
    let ctx = Context::new().unwrap();
    let (p, answers) = recording_producer(&ctx);
    ctx.set_handler(|_| Answer::Defer).unwrap(); // answered by PRG index
    submit(&p, (1, Some(5), 7), 1);
    submit(&p, (1, Some(6), 7), 1);
    dispatch_until_handled(&ctx, 2);
    let r = ctx.responder();
    let e = r.respond_prg(1, None, 7, Code::Success).unwrap_err();
    assert_eq!(errno(&e), libc::ENOENT, "exact by default");
    ctx.set_device_flags(1, iopf::DEV_PRG_PASID_OPTIONAL).unwrap();
    r.respond_prg(1, None, 7, Code::Success).unwrap();
    r.respond_prg(1, None, 7, Code::Invalid).unwrap();
    ctx.flush().unwrap();
    let a = answers.lock().unwrap();
    assert_eq!(a[&(1, Some(5), 7)], vec![Code::Success], "the oldest first");
    assert_eq!(a[&(1, Some(6), 7)], vec![Code::Invalid]);
    assert_eq!(
        errno(&ctx.set_device_flags(1, 1 << 30).unwrap_err()),
        libc::EINVAL
    );
}
