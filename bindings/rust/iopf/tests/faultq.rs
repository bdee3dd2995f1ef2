//! A fault queue adopted from one end of a SOCK_SEQPACKET socketpair: the
//! test plays the kernel on the other end (40-byte iommu_hwpt_pgfault
//! records in, 8-byte iommu_hwpt_page_response answers out), no iommufd.

use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use iopf::{Answer, Code, Context, FaultQueueOptions, Pasids};

fn seqpacket_pair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(rc, 0, "socketpair: {}", std::io::Error::last_os_error());
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// One group as the kernel hands it out: its records share the cookie.
fn send_group(k: &OwnedFd, dev: u32, pasid: Option<u32>, grpid: u32, cookie: u32, addrs: &[u64]) {
    let mut buf = Vec::new();
    for (i, a) in addrs.iter().enumerate() {
        let mut flags = 0u32;
        if pasid.is_some() {
            flags |= 1;
        }
        if i + 1 == addrs.len() {
            flags |= 2;
        }
        for w in [
            flags,
            dev,
            pasid.unwrap_or(0),
            grpid,
            iopf::PERM_READ | iopf::PERM_WRITE,
            0,
        ] {
            buf.extend_from_slice(&w.to_ne_bytes());
        }
        buf.extend_from_slice(&a.to_ne_bytes());
        buf.extend_from_slice(&4096u32.to_ne_bytes());
        buf.extend_from_slice(&cookie.to_ne_bytes());
    }
    assert_eq!(buf.len(), 40 * addrs.len());
    let n = unsafe { libc::write(k.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    assert_eq!(n, buf.len() as isize);
}

/// Every (cookie, code) answer written so far.
fn read_answers(k: &OwnedFd) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    loop {
        let mut buf = [0u8; 8 * 1024];
        let n = unsafe {
            libc::recv(
                k.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n <= 0 {
            return out;
        }
        for c in buf[..n as usize].chunks_exact(8) {
            let w = |i: usize| u32::from_ne_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
            out.push((w(0), w(4)));
        }
    }
}

#[test]
fn adopted_fault_fd_each_cookie_answered_once() {
    let (lib_end, kernel) = seqpacket_pair();
    let ctx = Context::new().unwrap();
    let fq = ctx
        .fault_queue_adopt(lib_end, 42, &FaultQueueOptions::default())
        .unwrap();
    assert_eq!(fq.fault_id(), 42);
    assert!(fq.fd().unwrap() >= 0);
    ctx.set_handler(|g| {
        assert_eq!(g.records().len(), (g.prgi() % 3 + 1) as usize);
        assert_eq!(g.cookie(), 1000 + g.prgi());
        assert_eq!(g.records()[0].addr, u64::from(g.prgi()) << 12);
        if g.prgi() % 2 == 0 {
            Answer::Success
        } else {
            Answer::Invalid
        }
    })
    .unwrap();
    const N: u32 = 100;
    for i in 0..N {
        let addrs: Vec<u64> = (0..=u64::from(i % 3))
            .map(|j| (u64::from(i) << 12) + (j << 24))
            .collect();
        send_group(
            &kernel,
            5,
            if i % 4 == 0 { None } else { Some(3) },
            i,
            1000 + i,
            &addrs,
        );
    }
    let mut answers = Vec::new();
    let t0 = Instant::now();
    while answers.len() < N as usize {
        ctx.dispatch().unwrap();
        answers.extend(read_answers(&kernel));
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{} answers",
            answers.len()
        );
    }
    answers.sort_unstable();
    let want: Vec<(u32, u32)> = (0..N).map(|i| (1000 + i, i % 2)).collect();
    assert_eq!(answers, want);
    let st = ctx.stats().unwrap();
    assert_eq!(
        (st.groups, st.records),
        (u64::from(N), (0..N).map(|i| u64::from(i % 3 + 1)).sum())
    );
    assert_eq!(st.answers_success, u64::from(N / 2));
}

#[test]
fn closing_the_queue_answers_deferred_groups_and_detach_does_not() {
    let (lib_end, kernel) = seqpacket_pair();
    let ctx = Context::new().unwrap();
    let fq = ctx
        .fault_queue_adopt(lib_end, 0, &FaultQueueOptions::default())
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    ctx.set_handler(move |g| {
        tx.send(g.defer()).unwrap();
        Answer::Defer
    })
    .unwrap();
    send_group(&kernel, 1, None, 1, 7, &[0x1000]);
    send_group(&kernel, 2, None, 2, 8, &[0x2000]);
    let t0 = Instant::now();
    while ctx.stats().unwrap().groups < 2 {
        ctx.dispatch().unwrap();
        assert!(t0.elapsed() < Duration::from_secs(10));
    }
    let mut held: Vec<_> = rx.try_iter().collect();
    held.sort_by_key(|d| d.dev_id());
    // Device 1 detached: the kernel answered it, nothing is written.
    assert_eq!(fq.detach(1, Pasids::All).unwrap(), 1);
    let d2 = held.pop().unwrap();
    let d1 = held.pop().unwrap();
    assert_eq!(
        d1.respond(Code::Success).unwrap_err().raw_os_error(),
        Some(libc::ESHUTDOWN)
    );
    drop(fq); // device 2's group answered INVALID on close
    assert_eq!(read_answers(&kernel), vec![(8, 1)]);
    assert_eq!(
        d2.respond(Code::Success).unwrap_err().raw_os_error(),
        Some(libc::ESHUTDOWN)
    );
    assert_eq!(ctx.stats().unwrap().kernel_answered, 1);
}

/// One raw kernel record (iommu_hwpt_pgfault), any bits.
fn kernel_record(
    flags: u32,
    dev: u32,
    pasid: u32,
    grpid: u32,
    perm: u32,
    addr: u64,
    length: u32,
    cookie: u32,
) -> Vec<u8> {
    let mut b = Vec::new();
    for w in [flags, dev, pasid, grpid, perm, 0] {
        b.extend_from_slice(&w.to_ne_bytes());
    }
    b.extend_from_slice(&addr.to_ne_bytes());
    b.extend_from_slice(&length.to_ne_bytes());
    b.extend_from_slice(&cookie.to_ne_bytes());
    b
}

#[test]
fn record_info_gives_what_record_does_not() {
    let (lib_end, kernel) = seqpacket_pair();
    let ctx = Context::new().unwrap();
    let _fq = ctx
        .fault_queue_adopt(lib_end, 1, &FaultQueueOptions::default())
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    ctx.set_handler(move |g| {
        let infos: Vec<_> = (0..g.records().len())
            .map(|i| g.record_info(i).unwrap())
            .collect();
        tx.send(infos).unwrap();
        Answer::Success
    })
    .unwrap();
    // Two records, an unknown flag bit (1 << 5) and permission bit (1 << 7).
    let mut buf = kernel_record(1 | 1 << 5, 7, 3, 9, 0x81, 0x5000, 4096, 77);
    buf.extend(kernel_record(1 | 2, 7, 3, 9, 0x02, 0x6000, 8192, 77));
    let n = unsafe { libc::write(kernel.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    assert_eq!(n, 80);
    let t0 = Instant::now();
    let infos = loop {
        ctx.dispatch().unwrap();
        if let Ok(i) = rx.try_recv() {
            break i;
        }
        assert!(t0.elapsed() < Duration::from_secs(10));
    };
    assert_eq!(infos.len(), 2);
    let (a, b) = (infos[0], infos[1]);
    assert_eq!((a.flags, a.perm, a.raw_perm), (1 | 1 << 5, iopf::PERM_READ, 0x81));
    assert_eq!((a.length, b.length, a.cookie, b.cookie), (4096, 8192, 77, 77));
    assert_eq!((a.dev_id, a.pasid, a.prgi, a.addr), (7, Some(3), 9, 0x5000));
    assert_eq!((b.flags, b.perm, b.addr), (1 | 2, iopf::PERM_WRITE, 0x6000));
    assert_eq!(ctx.stats().unwrap().unknown_flags, 1);
    ctx.flush().unwrap();
    assert_eq!(read_answers(&kernel), vec![(77, 0)]);
}
