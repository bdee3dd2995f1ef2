//! Sources: fault queues (iommufd fault objects) and one-at-a-time
//! producers.

use std::io;
use std::os::raw::c_void;
use std::os::unix::io::{AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use iopf_sys as sys;

use crate::context::{Context, Pasids};
use crate::group::{pasid_opt, Code};
use crate::serial::Serial;
use crate::shared::{check, shutdown, CallbackGuard, Shared};

/// Options of the fault queue constructors; `Default`: libiopf's.
#[derive(Clone, Debug, Default)]
pub struct FaultQueueOptions {
    /// First read buffer size in records; 0: 256.
    pub read_records: u32,
    /// Read buffer growth cap; 0: 65536.
    pub max_read_records: u32,
}

impl FaultQueueOptions {
    fn raw(&self, flags: u32) -> sys::iopf_fault_queue_opts {
        // Zeroed first: fields a newer header appends take their defaults.
        let mut o: sys::iopf_fault_queue_opts = unsafe { std::mem::zeroed() };
        o.sz = std::mem::size_of::<sys::iopf_fault_queue_opts>();
        o.flags = flags;
        o.read_records = self.read_records;
        o.max_read_records = self.max_read_records;
        o
    }
}

/// A source, closed on drop (its outstanding groups answered INVALID)
/// unless the context was freed first (which closed it).
struct Source {
    shared: Arc<Shared>,
    raw: *mut sys::iopf_source,
}

// SAFETY: sources may be used from any thread (iopf.h); every use goes
// through Shared::with, so none reaches a source its context freed.
unsafe impl Send for Source {}
unsafe impl Sync for Source {}

impl Source {
    fn call(&self, f: impl FnOnce(*mut sys::iopf_source) -> i32) -> io::Result<usize> {
        let raw = self.raw;
        match self.shared.with(|_| f(raw)) {
            Some(rc) => check(rc),
            None => Err(shutdown()),
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        let raw = self.raw;
        self.shared.with(|_| unsafe { sys::iopf_source_close(raw) });
    }
}

/// A fault queue: an iommufd fault object's fd, read by the context.
pub struct FaultQueue {
    src: Source,
}

impl FaultQueue {
    /// The fault fd (owned by the queue), or `EINVAL` once closed.
    pub fn fd(&self) -> io::Result<RawFd> {
        self.src
            .call(|s| unsafe { sys::iopf_source_get_fd(s) })
            .map(|fd| fd as RawFd)
    }

    /// The fault object id (0 if unknown).
    pub fn fault_id(&self) -> u32 {
        let raw = self.src.raw;
        self.src
            .shared
            .with(|_| unsafe { sys::iopf_source_get_fault_id(raw) })
            .unwrap_or(0)
    }

    /// Tell libiopf a device (and PASIDs) was detached from, or replaced
    /// on, its fault-capable table: the kernel answered its groups. Call it
    /// right after the ioctl. Returns how many groups were dropped.
    pub fn detach(&self, dev_id: u32, pasids: Pasids) -> io::Result<usize> {
        let (pasid, flags) = pasids.raw();
        self.src
            .call(|s| unsafe { sys::iopf_source_detach(s, dev_id, pasid, flags) })
    }
}

impl std::fmt::Debug for FaultQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultQueue")
            .field("fault_id", &self.fault_id())
            .finish()
    }
}

impl Context {
    /// Allocate a fault queue on an iommufd (IOMMU_FAULT_QUEUE_ALLOC);
    /// returns it and the fault object id for IOMMU_HWPT_ALLOC. Errors:
    /// `EINVAL`, `ENOMEM`, the ioctl's (`ENOTTY`: no fault queues).
    pub fn fault_queue_alloc(
        &self,
        iommufd: BorrowedFd<'_>,
        opts: &FaultQueueOptions,
    ) -> io::Result<(FaultQueue, u32)> {
        let o = opts.raw(0);
        let mut id = 0u32;
        let raw = unsafe { sys::iopf_fault_queue_alloc(self.raw(), iommufd.as_raw_fd(), &o, &mut id) };
        if raw.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok((
            FaultQueue {
                src: Source {
                    shared: self.shared().clone(),
                    raw,
                },
            },
            id,
        ))
    }

    /// Adopt a fault fd you have (a VMM's); the queue owns it from now on
    /// and closes it. Errors: `EINVAL`, `EBADF`, `ENOMEM` (the fd is then
    /// closed).
    pub fn fault_queue_adopt(
        &self,
        fd: OwnedFd,
        fault_id: u32,
        opts: &FaultQueueOptions,
    ) -> io::Result<FaultQueue> {
        let o = opts.raw(sys::IOPF_FQ_CLOSE_FD);
        let fd = fd.into_raw_fd();
        let raw = unsafe { sys::iopf_fault_queue_adopt(self.raw(), fd, fault_id, &o) };
        if raw.is_null() {
            let e = io::Error::last_os_error();
            unsafe { libc::close(fd) };
            return Err(e);
        }
        Ok(FaultQueue {
            src: Source {
                shared: self.shared().clone(),
                raw,
            },
        })
    }

    /// A producer of page requests seen one at a time (an emulated PRI
    /// device); `respond` gets the answer of each of its groups exactly
    /// once, whatever ended it.
    pub fn producer<F>(&self, respond: F) -> io::Result<Producer>
    where
        F: FnMut(&Response) + Send + 'static,
    {
        self.producer_with(&ProducerOptions::default(), respond)
    }

    /// [`producer`](Context::producer) with options.
    pub fn producer_with<F>(&self, opts: &ProducerOptions, respond: F) -> io::Result<Producer>
    where
        F: FnMut(&Response) + Send + 'static,
    {
        let shared = self.shared();
        let cell = Box::new(RespondCell {
            shared: Arc::as_ptr(shared),
            serial: Serial::new(Box::new(respond), "respond"),
        });
        // Dropped by libiopf's destroy callback (1.3) once the producer is
        // closed and its last answer delivered (respond_destroy).
        let ud = Box::into_raw(cell) as *mut c_void;
        // Zeroed first: fields a newer header appends take their defaults
        // (and the crate still builds against it).
        let mut o: sys::iopf_producer_opts = unsafe { std::mem::zeroed() };
        o.sz = std::mem::size_of::<sys::iopf_producer_opts>();
        o.respond = Some(respond_tramp);
        o.userdata = ud;
        o.partial_cap = opts.partial_cap;
        o.destroy = Some(respond_destroy);
        let raw = unsafe { sys::iopf_producer_new(self.raw(), &o) };
        if raw.is_null() {
            let e = io::Error::last_os_error();
            // refused: libiopf never calls destroy then
            drop(unsafe { Box::from_raw(ud as *mut RespondCell) });
            return Err(e);
        }
        Ok(Producer {
            src: Source {
                shared: shared.clone(),
                raw,
            },
        })
    }
}

/// Options of [`Context::producer_with`].
#[derive(Clone, Debug, Default)]
pub struct ProducerOptions {
    /// Partial requests held per device; past it they are dropped and the
    /// group flagged truncated. 0: 256.
    pub partial_cap: u32,
}

/// A page request for [`Producer::submit`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// Device id.
    pub dev_id: u32,
    /// PASID, or None.
    pub pasid: Option<u32>,
    /// Page Request Group index.
    pub prgi: u32,
    /// `PERM_*` bits.
    pub perm: u32,
    /// Faulting address.
    pub addr: u64,
    /// The last request of its group.
    pub last: bool,
}

/// The answer to one of a producer's groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Response {
    /// Device id.
    pub dev_id: u32,
    /// PASID, or None.
    pub pasid: Option<u32>,
    /// Page Request Group index.
    pub prgi: u32,
    /// The answer.
    pub code: Code,
}

/// What [`Producer::submit`] did with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// Held as a partial request until its group's LAST one.
    Held,
    /// Its group is complete and queued for dispatch.
    Queued,
}

/// A one-at-a-time producer: `Send + Sync`, submit from any thread.
pub struct Producer {
    src: Source,
}

impl Producer {
    /// Submit one page request. Errors: `ENOSPC` (partial dropped: cap),
    /// `ENOMEM` (for a LAST request the group was answered INVALID through
    /// respond), `EINVAL`, `ENODEV` (device gone), `ESHUTDOWN` (closed).
    pub fn submit(&self, r: &Request) -> io::Result<Submitted> {
        let mut flags = 0;
        if r.pasid.is_some() {
            flags |= sys::IOPF_F_PASID_VALID;
        }
        if r.last {
            flags |= sys::IOPF_F_LAST_PAGE;
        }
        let req = sys::iopf_request {
            flags,
            dev_id: r.dev_id,
            pasid: r.pasid.unwrap_or(0),
            prgi: r.prgi,
            perm: r.perm,
            reserved: 0,
            addr: r.addr,
        };
        self.src
            .call(|s| unsafe { sys::iopf_producer_submit(s, &req) })
            .map(|n| {
                if n == 0 {
                    Submitted::Held
                } else {
                    Submitted::Queued
                }
            })
    }

    /// Discard held partial requests of a device (None: of every device);
    /// returns how many.
    pub fn discard_partial(&self, dev_id: Option<u32>) -> io::Result<usize> {
        let (dev, flags) = match dev_id {
            Some(d) => (d, 0),
            None => (0, sys::IOPF_ALL_DEVICES),
        };
        self.src
            .call(|s| unsafe { sys::iopf_producer_discard_partial(s, dev, flags) })
    }

    /// Discard a PASID's partial requests and answer INVALID its
    /// outstanding groups (through respond); returns how many groups.
    pub fn flush_pasid(&self, dev_id: u32, pasid: Option<u32>) -> io::Result<usize> {
        let p = pasid.unwrap_or(sys::IOPF_NO_PASID);
        self.src
            .call(|s| unsafe { sys::iopf_producer_flush_pasid(s, dev_id, p) })
    }
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Producer")
    }
}

/// A producer's respond closure.
pub type RespondFn = Box<dyn FnMut(&Response) + Send>;

/// A respond closure as libiopf's userdata: libiopf may call it from
/// several threads at once and from inside itself, hence a [`Serial`].
struct RespondCell {
    shared: *const Shared,
    serial: Serial<Response>,
}

// SAFETY: `shared` is only dereferenced inside callbacks, while alive.
unsafe impl Send for RespondCell {}
unsafe impl Sync for RespondCell {}

/// libiopf's destroy callback of a producer's userdata: respond can run no
/// more (the producer is closed and its last answer delivered).
unsafe extern "C" fn respond_destroy(ud: *mut c_void) {
    let cell = Box::from_raw(ud as *mut RespondCell);
    // SAFETY: destroy runs before iopf_ctx_free() returns, and the Shared
    // outlives that (Shared::free borrows it).
    let shared = &*cell.shared;
    shared.dispose(cell);
}

unsafe extern "C" fn respond_tramp(r: *const sys::iopf_response, ud: *mut c_void) {
    let cell = &*(ud as *const RespondCell);
    let _cb = CallbackGuard::enter(cell.shared);
    let r = &*r;
    cell.serial.push(Response {
        dev_id: r.dev_id,
        pasid: pasid_opt(r.pasid),
        prgi: r.prgi,
        code: Code::from_raw(r.code),
    });
}
