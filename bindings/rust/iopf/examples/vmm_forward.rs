//! The VMM pattern, as a cloud-hypervisor or crosvm device thread would do
//! it: an epoll loop on the libiopf context fd, each page request group
//! forwarded to a "guest" thread over a channel, the guest answering by
//! (device, PASID, PRG index) as a guest's page group response does, or by
//! the group's handle, with a misbehaving guest answering some groups
//! twice. Emulated PRI devices feed a producer, so no hardware is needed.
//!
//!     cargo run --example vmm_forward -- [--groups N] [--devices D] [--workers W]
//!
//! Exits non-zero unless every group got exactly one answer.

use std::collections::HashMap;
use std::io;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use iopf::{Answer, Code, Context, Deferred, Options, Request, Responder, Response};

type Key = (u32, Option<u32>, u32);

/// What the guest's page request queue gets for one group.
struct Entry {
    key: Key,
    addrs: Vec<u64>,
    /// Some: answered through the handle; None: by PRG index.
    deferred: Option<Deferred>,
}

/// The devices' side: groups in flight per key, and what came back.
#[derive(Default)]
struct Ledger {
    in_flight: HashMap<Key, u32>,
    answered: u64,
    success: u64,
    invalid: u64,
    duplicates: u64,
}

struct Devices {
    ledger: Mutex<Ledger>,
    cv: Condvar,
}

impl Devices {
    /// A device answer arrived (the producer's respond closure).
    fn answer(&self, r: &Response) {
        let mut l = self.ledger.lock().unwrap();
        let key = (r.dev_id, r.pasid, r.prgi);
        match l.in_flight.get_mut(&key) {
            Some(n) if *n > 0 => *n -= 1,
            _ => l.duplicates += 1,
        }
        l.answered += 1;
        match r.code {
            Code::Success => l.success += 1,
            Code::Invalid => l.invalid += 1,
        }
        self.cv.notify_all();
    }
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: not a number: {v}")))
        .unwrap_or(default)
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("usage: vmm_forward [--groups N] [--devices D] [--workers W]");
        return Ok(());
    }
    let groups = arg(&args, "--groups", 20000);
    let ndev = arg(&args, "--devices", 4).max(1) as u32;
    let workers = arg(&args, "--workers", 0) as u32;

    let ctx = Context::with_options(&Options {
        workers,
        ..Default::default()
    })?;
    let devices = Arc::new(Devices {
        ledger: Mutex::default(),
        cv: Condvar::new(),
    });
    let d = devices.clone();
    let producer = Arc::new(ctx.producer(move |r| d.answer(r))?);

    // The handler forwards; the guest answers. Every fourth group goes
    // with its Deferred (answered by handle), the others by PRG index.
    let (to_guest, guest_queue) = mpsc::channel::<Entry>();
    let to_guest = Mutex::new(to_guest);
    ctx.set_handler(move |g| {
        let key = (g.dev_id(), g.pasid(), g.prgi());
        let deferred = if g.prgi() % 4 == 0 { Some(g.defer()) } else { None };
        let addrs = g.records().iter().map(|r| r.addr).collect();
        match to_guest.lock().unwrap().send(Entry { key, addrs, deferred }) {
            Ok(()) => Answer::Defer,
            Err(_) => Answer::Invalid, // the guest is gone
        }
    })?;

    let refused = Arc::new(AtomicU64::new(0));
    let guest = spawn_guest(guest_queue, ctx.responder(), refused.clone());
    let feeder = spawn_devices(producer.clone(), devices.clone(), groups, ndev);

    // The device thread's loop: wait on the context fd, dispatch.
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let vmm = {
        let stop = stop.clone();
        thread::spawn(move || -> io::Result<Context> {
            event_loop(&ctx, &stop)?;
            Ok(ctx)
        })
    };

    feeder.join().expect("device thread");
    {
        let mut l = devices.ledger.lock().unwrap();
        while l.answered < groups {
            let (g, timeout) = devices.cv.wait_timeout(l, Duration::from_secs(30)).unwrap();
            l = g;
            if timeout.timed_out() {
                eprintln!("FAIL: {} of {groups} groups answered after 30 s", l.answered);
                std::process::exit(1);
            }
        }
    }
    let elapsed = t0.elapsed();
    stop.store(true, Ordering::SeqCst);
    let ctx = vmm.join().expect("vmm thread")?;
    let st = ctx.stats()?;
    let mut per_dev = Vec::new();
    for dev in ctx.devices()? {
        per_dev.push(ctx.device_stats(dev)?);
    }
    per_dev.sort_by_key(|d| d.dev_id);
    drop(ctx); // the handler's Sender goes with it: the guest stops
    let guest_seen = guest.join().expect("guest thread");

    let l = devices.ledger.lock().unwrap();
    let lost: u32 = l.in_flight.values().sum();
    println!("groups submitted      {groups}");
    println!("forwarded to guest    {guest_seen}");
    println!(
        "answers to devices    {} ({} success, {} invalid)",
        l.answered, l.success, l.invalid
    );
    println!(
        "guest answers refused {} (duplicates the guest sent)",
        refused.load(Ordering::Relaxed)
    );
    println!(
        "libiopf refused       {} (unmatched by PRG index: {})",
        st.refused_answers, st.unmatched_answers
    );
    println!(
        "latency p50 / p99     {} / {} ns",
        st.latency_ns(0.5),
        st.latency_ns(0.99)
    );
    for d in &per_dev {
        println!(
            "  device {:<14} {} groups, p99 {} ns",
            d.dev_id,
            d.groups,
            d.latency_ns(0.99)
        );
    }
    println!("bounded dispatch cut  {} times", st.dispatch_slices);
    println!(
        "time                  {:.3} s ({:.0} groups/s)",
        elapsed.as_secs_f64(),
        groups as f64 / elapsed.as_secs_f64()
    );
    if lost != 0 || l.duplicates != 0 || l.answered != groups {
        println!("FAIL: {lost} groups unanswered, {} answered twice", l.duplicates);
        std::process::exit(1);
    }
    println!("OK: every group answered exactly once");
    Ok(())
}

/// epoll on the context fd, as a VMM's device thread does on its fds.
fn event_loop(ctx: &Context, stop: &AtomicBool) -> io::Result<()> {
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: 0,
    };
    if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, ctx.as_raw_fd(), &mut ev) } < 0 {
        let e = io::Error::last_os_error();
        unsafe { libc::close(ep) };
        return Err(e);
    }
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
    let mut result = Ok(());
    while !stop.load(Ordering::SeqCst) {
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 50) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            result = Err(e);
            break;
        }
        if n > 0 {
            // A slice at a time (libiopf 1.3): a device thread serving
            // other fds too never spends more than about a millisecond
            // here; what is left keeps the fd readable for the next turn.
            if let Err(e) = ctx.dispatch_bounded(256, Some(Duration::from_millis(1))) {
                result = Err(e);
                break;
            }
        }
    }
    unsafe { libc::close(ep) };
    result
}

/// Emulated PRI devices: groups of 1 to 3 requests, PRG indexes reused
/// only once answered, as the PCIe spec asks.
fn spawn_devices(
    p: Arc<iopf::Producer>,
    devs: Arc<Devices>,
    groups: u64,
    ndev: u32,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for i in 0..groups {
            let dev_id = 1 + (i % u64::from(ndev)) as u32;
            let pasid = if i % 8 == 0 {
                None
            } else {
                Some((i % 3) as u32 + 1)
            };
            let prgi = ((i / u64::from(ndev)) % 256) as u32;
            let key = (dev_id, pasid, prgi);
            {
                let mut l = devs.ledger.lock().unwrap();
                while l.in_flight.get(&key).copied().unwrap_or(0) > 0 {
                    l = devs.cv.wait(l).unwrap();
                }
                *l.in_flight.entry(key).or_default() += 1;
            }
            let n = 1 + i % 3;
            for j in 0..n {
                let r = Request {
                    dev_id,
                    pasid,
                    prgi,
                    perm: iopf::PERM_READ | iopf::PERM_WRITE,
                    addr: 0x1_0000_0000 + ((i * 3 + j) << 12),
                    last: j + 1 == n,
                };
                p.submit(&r).expect("submit");
            }
        }
    })
}

/// The guest: resolves each group (addresses in a bad range fail) and
/// answers it; every 50th group it answers twice, as a buggy driver might.
fn spawn_guest(
    queue: mpsc::Receiver<Entry>,
    r: Responder,
    refused: Arc<AtomicU64>,
) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let mut seen = 0u64;
        for e in queue {
            seen += 1;
            let ok = e.addrs.iter().all(|a| (a >> 12) % 97 != 0);
            let code = if ok { Code::Success } else { Code::Invalid };
            let (dev, pasid, prgi) = e.key;
            let first = match e.deferred {
                Some(d) => d.respond(code),
                None => r.respond_prg(dev, pasid, prgi, code),
            };
            first.expect("first answer");
            if seen % 50 == 0 && r.respond_prg(dev, pasid, prgi, code).is_err() {
                refused.fetch_add(1, Ordering::Relaxed);
            }
        }
        seen
    })
}
