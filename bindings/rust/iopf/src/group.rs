//! Groups as a handler sees them, and answers given later (`Deferred`).

use std::cell::Cell;
use std::io;
use std::marker::PhantomData;
use std::sync::Arc;

use iopf_sys as sys;

use crate::shared::{check, shutdown, Shared};

/// An answer code (the kernel ABI's values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// The pages are there: the device retries the access.
    Success,
    /// The request cannot be satisfied.
    Invalid,
}

impl Code {
    pub(crate) fn raw(self) -> sys::iopf_code {
        match self {
            Code::Success => sys::iopf_code_IOPF_CODE_SUCCESS,
            Code::Invalid => sys::iopf_code_IOPF_CODE_INVALID,
        }
    }

    pub(crate) fn from_raw(c: u32) -> Code {
        if c == sys::iopf_code_IOPF_CODE_SUCCESS {
            Code::Success
        } else {
            Code::Invalid
        }
    }
}

/// What a handler returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Answer {
    /// Answer SUCCESS now.
    Success,
    /// Answer INVALID now.
    Invalid,
    /// Answer later: through the [`Deferred`] from [`Group::defer`], by
    /// handle ([`Responder::respond`](crate::Responder::respond)) or by
    /// PRG index ([`Responder::respond_prg`](crate::Responder::respond_prg)).
    Defer,
}

impl Answer {
    pub(crate) fn raw(self) -> i32 {
        match self {
            Answer::Success => sys::iopf_code_IOPF_CODE_SUCCESS as i32,
            Answer::Invalid => sys::iopf_code_IOPF_CODE_INVALID as i32,
            Answer::Defer => sys::IOPF_DEFER as i32,
        }
    }
}

impl From<Code> for Answer {
    fn from(c: Code) -> Answer {
        match c {
            Code::Success => Answer::Success,
            Code::Invalid => Answer::Invalid,
        }
    }
}

/// A group's handle: reaches that group only, never another one that
/// reuses its slot or kernel cookie. Never 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle(pub u64);

/// One page request of a group (layout of `struct iopf_record`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Record {
    /// Faulting address.
    pub addr: u64,
    /// `PERM_*` bits.
    pub perm: u32,
    /// `F_*` bits ([`F_PASID_VALID`](crate::F_PASID_VALID), [`F_LAST_PAGE`](crate::F_LAST_PAGE), maybe unknown ones).
    pub flags: u32,
}

// Record is read in place from the C array: same size and alignment.
const _: () = assert!(std::mem::size_of::<Record>() == std::mem::size_of::<sys::iopf_record>());
const _: () = assert!(std::mem::align_of::<Record>() == std::mem::align_of::<sys::iopf_record>());

pub(crate) fn pasid_opt(p: u32) -> Option<u32> {
    if p == sys::IOPF_NO_PASID {
        None
    } else {
        Some(p)
    }
}

pub(crate) fn pasid_raw(p: Option<u32>) -> u32 {
    p.unwrap_or(sys::IOPF_NO_PASID)
}

/// Every field of one record ([`Group::record_info`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RecordInfo {
    /// The record's flags: `F_*` and any bits libiopf does not know.
    pub flags: u32,
    /// Device id.
    pub dev_id: u32,
    /// PASID, or None without [`F_PASID_VALID`](crate::F_PASID_VALID).
    pub pasid: Option<u32>,
    /// Page Request Group index (the kernel's grpid).
    pub prgi: u32,
    /// `PERM_*` bits.
    pub perm: u32,
    /// The kernel record's `length` field as given (0 from every kernel so
    /// far, 0 for producer requests).
    pub length: u32,
    /// Faulting address.
    pub addr: u64,
    /// The group's kernel cookie; 0 for producers.
    pub cookie: u32,
    /// The permission field as given, unknown bits too.
    pub raw_perm: u32,
}

/// A copy of a group dropped in a handler's hands because its device went
/// away, given to the cancel closure
/// ([`Context::set_cancel_handler`](crate::Context::set_cancel_handler)).
/// A copy, not a [`Group`]: the closure may run after libiopf let the
/// group go. Answering its handle gets `ENODEV`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cancelled {
    /// The handle the group had (a [`Deferred`] holds the same).
    pub handle: Handle,
    /// Device id.
    pub dev_id: u32,
    /// PASID, or None.
    pub pasid: Option<u32>,
    /// Page Request Group index.
    pub prgi: u32,
    /// `GROUP_*` flags.
    pub flags: u32,
    /// The kernel cookie; 0 for producer groups.
    pub cookie: u32,
    /// Its records.
    pub records: Vec<Record>,
}

impl Cancelled {
    pub(crate) fn of(g: &Group) -> Cancelled {
        Cancelled {
            handle: g.handle(),
            dev_id: g.dev_id(),
            pasid: g.pasid(),
            prgi: g.prgi(),
            flags: g.flags(),
            cookie: g.cookie(),
            records: g.records().to_vec(),
        }
    }
}

/// A Page Request Group, lent to a handler for the length of its call.
///
/// Neither `Send` nor `Sync`, and only ever seen through `&Group`: the C
/// group is valid until the handler returns. To answer later, take a
/// [`Deferred`] with [`defer`](Group::defer) (or note the [`handle`](Group::handle)).
///
/// ```compile_fail
/// fn must_be_send<T: Send>() {}
/// must_be_send::<iopf::Group>();
/// ```
/// (while `must_be_send::<iopf::Deferred>()` compiles:)
/// ```
/// fn must_be_send<T: Send>() {}
/// must_be_send::<iopf::Deferred>();
/// ```
pub struct Group {
    raw: *mut sys::iopf_group,
    shared: *const Shared,
    deferred: Cell<bool>,
    _not_send: PhantomData<*mut ()>,
}

impl Group {
    /// # Safety
    /// `raw` is a group lent to a callback of the context `shared` belongs
    /// to, and the Group does not outlive that call.
    pub(crate) unsafe fn new(raw: *mut sys::iopf_group, shared: *const Shared) -> Group {
        Group {
            raw,
            shared,
            deferred: Cell::new(false),
            _not_send: PhantomData,
        }
    }

    /// Device id (the iommufd device object id).
    pub fn dev_id(&self) -> u32 {
        unsafe { sys::iopf_group_dev_id(self.raw) }
    }

    /// PASID, or None for a group without one.
    pub fn pasid(&self) -> Option<u32> {
        pasid_opt(unsafe { sys::iopf_group_pasid(self.raw) })
    }

    /// Page Request Group index.
    pub fn prgi(&self) -> u32 {
        unsafe { sys::iopf_group_prgi(self.raw) }
    }

    /// `GROUP_*` flags.
    pub fn flags(&self) -> u32 {
        unsafe { sys::iopf_group_flags(self.raw) }
    }

    /// Some partial requests of this group were dropped.
    pub fn truncated(&self) -> bool {
        self.flags() & sys::IOPF_GROUP_TRUNCATED != 0
    }

    /// The kernel cookie (fault queues); 0 for producer groups.
    pub fn cookie(&self) -> u32 {
        unsafe { sys::iopf_group_cookie(self.raw) }
    }

    /// The group's handle, for answering from any thread later.
    pub fn handle(&self) -> Handle {
        Handle(unsafe { sys::iopf_group_handle(self.raw) })
    }

    /// The records in arrival order, the LAST one last (at least one).
    pub fn records(&self) -> &[Record] {
        let mut n = 0usize;
        let p = unsafe { sys::iopf_group_records(self.raw, &mut n) };
        if p.is_null() || n == 0 {
            return &[];
        }
        // SAFETY: libiopf gives n records valid until the handler returns,
        // which &self cannot outlive; Record has their layout.
        unsafe { std::slice::from_raw_parts(p as *const Record, n) }
    }

    /// Every field of record `idx` as the kernel (or the producer) gave
    /// it, what [`Record`] does not carry included: the `length` field, the
    /// cookie, unknown flag and permission bits. Errors: `ERANGE` (no such
    /// record). Since 1.3.
    pub fn record_info(&self, idx: usize) -> io::Result<RecordInfo> {
        let mut ri = sys::iopf_record_info {
            sz: std::mem::size_of::<sys::iopf_record_info>(),
            ..Default::default()
        };
        check(unsafe { sys::iopf_group_record_info(self.raw, idx, &mut ri) })?;
        Ok(RecordInfo {
            flags: ri.flags,
            dev_id: ri.dev_id,
            pasid: pasid_opt(ri.pasid),
            prgi: ri.prgi,
            perm: ri.perm,
            length: ri.length,
            addr: ri.addr,
            cookie: ri.cookie,
            raw_perm: ri.raw_perm,
        })
    }

    /// Take the right to answer this group later, from any thread. The
    /// handler then returns [`Answer::Defer`] (had it returned a code, that
    /// code answers and the Deferred's answer is refused).
    ///
    /// # Panics
    /// If called twice for one group: a group has one Deferred. (A panic in
    /// a handler answers its group INVALID.)
    pub fn defer(&self) -> Deferred {
        assert!(
            !self.deferred.replace(true),
            "Group::defer() called twice for one group"
        );
        // SAFETY: `shared` is alive while its context runs a callback: the
        // Context (or the thread freeing it) holds a reference.
        let shared = unsafe {
            Arc::increment_strong_count(self.shared);
            Arc::from_raw(self.shared)
        };
        Deferred {
            shared,
            handle: self.handle(),
            dev_id: self.dev_id(),
            pasid: self.pasid(),
            prgi: self.prgi(),
            answered: false,
        }
    }
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("dev_id", &self.dev_id())
            .field("pasid", &self.pasid())
            .field("prgi", &self.prgi())
            .field("flags", &self.flags())
            .field("records", &self.records().len())
            .finish()
    }
}

/// The answer a handler owes, to give later from any thread.
///
/// `respond` consumes it, so a Deferred answers at most once; dropped
/// unanswered, it answers INVALID, so it answers at least once. The group
/// may still be ended before by someone else (its deadline, a reset, the
/// context's end): the answer then gets the error libiopf gives.
///
/// A second answer does not compile:
/// ```compile_fail
/// fn twice(d: iopf::Deferred) {
///     let _ = d.respond(iopf::Code::Success);
///     let _ = d.respond(iopf::Code::Success); // use of moved value
/// }
/// ```
/// (while one answer compiles:)
/// ```
/// fn once(d: iopf::Deferred) {
///     let _ = d.respond(iopf::Code::Success);
/// }
/// ```
#[derive(Debug)]
pub struct Deferred {
    shared: Arc<Shared>,
    handle: Handle,
    dev_id: u32,
    pasid: Option<u32>,
    prgi: u32,
    answered: bool,
}

impl Deferred {
    /// Answer the group.
    ///
    /// Errors (refused, nothing sent): `EALREADY` (answered before),
    /// `ESHUTDOWN` (its source or context closed, or answered INVALID in
    /// bulk), `ETIMEDOUT` (its deadline passed), `ENODEV` (its device went
    /// away).
    pub fn respond(mut self, code: Code) -> io::Result<()> {
        self.answered = true;
        self.send(code)
    }

    fn send(&self, code: Code) -> io::Result<()> {
        let h = self.handle.0;
        match self
            .shared
            .with(|ctx| unsafe { sys::iopf_respond(ctx, h, code.raw()) })
        {
            Some(rc) => check(rc).map(|_| ()),
            None => Err(shutdown()),
        }
    }

    /// The group's handle.
    pub fn handle(&self) -> Handle {
        self.handle
    }
    /// The group's device id.
    pub fn dev_id(&self) -> u32 {
        self.dev_id
    }
    /// The group's PASID (None: no PASID).
    pub fn pasid(&self) -> Option<u32> {
        self.pasid
    }
    /// The group's PRG index.
    pub fn prgi(&self) -> u32 {
        self.prgi
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        if !self.answered {
            // Never leave a device waiting; a refusal means someone else
            // already answered.
            let _ = self.send(Code::Invalid);
        }
    }
}

// The shared state is Send + Sync (see shared.rs); the rest is plain data.
impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}
