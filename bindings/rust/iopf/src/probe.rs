//! What the running kernel's iommufd allows, found by trying (iopf_probe).

use std::io;
use std::os::unix::io::{AsRawFd, BorrowedFd};

use iopf_sys as sys;

use crate::shared::check;

/// What [`probe`] found. Since 1.3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ProbeInfo {
    /// `IOPF_PROBE_*` bits, as libiopf gave them (the methods read them).
    pub flags: u64,
    /// Bytes of one fault record read (40).
    pub record_size: u32,
    /// Bytes of one answer written (8).
    pub response_size: u32,
}

impl ProbeInfo {
    fn has(&self, bit: u32) -> bool {
        self.flags & u64::from(bit) != 0
    }
    /// IOMMU_FAULT_QUEUE_ALLOC works (Linux 6.11+).
    pub fn fault_queue(&self) -> bool {
        self.has(sys::IOPF_PROBE_FAULT_QUEUE)
    }
    /// A fault id is accepted on a nested page table (6.11+, an IOMMU that
    /// nests). Tried only with a device.
    pub fn nested_fault(&self) -> bool {
        self.has(sys::IOPF_PROBE_NESTED_FAULT)
    }
    /// A fault id is accepted on a plain paging table (6.13+): faults
    /// without nesting, for mapping on demand. Tried only with a device.
    pub fn paging_fault(&self) -> bool {
        self.has(sys::IOPF_PROBE_PAGING_FAULT)
    }
    /// PASID-capable page tables are accepted for the device (6.15+).
    /// Tried only with a device.
    pub fn pasid_attach(&self) -> bool {
        self.has(sys::IOPF_PROBE_PASID_ATTACH)
    }
    /// The kernel knows vIOMMU event queues (6.15+).
    pub fn veventq(&self) -> bool {
        self.has(sys::IOPF_PROBE_VEVENTQ)
    }
}

/// Find out what the kernel's iommufd allows, by trying: it makes an IOAS,
/// a fault object and page tables on `iommufd` and destroys them all
/// before it returns; nothing is attached. With `dev_id` None (no device
/// bound yet), what needs a device is not tried and reads false.
///
/// Errors: `EBADF`, `ENOTTY` (not an iommufd), `ENOENT` (`dev_id` is no
/// device of this iommufd), another errno of IOMMU_IOAS_ALLOC. Any thread.
/// Since 1.3.
pub fn probe(iommufd: BorrowedFd<'_>, dev_id: Option<u32>) -> io::Result<ProbeInfo> {
    let mut info = sys::iopf_probe_info {
        sz: std::mem::size_of::<sys::iopf_probe_info>(),
        ..Default::default()
    };
    let dev = dev_id.unwrap_or(sys::IOPF_NO_DEV);
    check(unsafe { sys::iopf_probe(iommufd.as_raw_fd(), dev, &mut info) })?;
    Ok(ProbeInfo {
        flags: info.flags,
        record_size: info.record_size,
        response_size: info.response_size,
    })
}
