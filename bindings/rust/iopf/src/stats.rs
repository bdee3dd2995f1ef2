//! Counters of a context, and of its devices.

use std::io;
use std::ops::Deref;

use iopf_sys as sys;

use crate::context::Context;
use crate::shared::check;

/// A copy of a context's counters: every field of `struct iopf_stats`
/// through `Deref` (`st.groups`, `st.refused_answers`, ...).
#[derive(Clone, Copy)]
pub struct Stats(pub(crate) sys::iopf_stats);

impl Stats {
    /// Read-to-answer latency quantile in ns (upper bound of the bucket
    /// holding quantile `q`, 0..=1); 0 if nothing was answered.
    pub fn latency_ns(&self, q: f64) -> u64 {
        unsafe { sys::iopf_stats_latency_ns(&self.0, q) }
    }
}

impl Deref for Stats {
    type Target = sys::iopf_stats;
    fn deref(&self) -> &sys::iopf_stats {
        &self.0
    }
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats")
            .field("groups", &self.0.groups)
            .field("answers_success", &self.0.answers_success)
            .field("answers_invalid", &self.0.answers_invalid)
            .field("auto_answers", &self.0.auto_answers)
            .field("refused_answers", &self.0.refused_answers)
            .field("outstanding", &self.0.outstanding)
            .field("dispatch_slices", &self.0.dispatch_slices)
            .finish_non_exhaustive()
    }
}

/// A copy of one device's counters, or one (device, PASID)'s: every field
/// of `struct iopf_device_stats` through `Deref` (`st.groups`,
/// `st.outstanding`, `st.ready`, ...). Since 1.3.
#[derive(Clone, Copy)]
pub struct DeviceStats(pub(crate) sys::iopf_device_stats);

impl DeviceStats {
    /// The PASID these counters are of (None: a device's groups without
    /// one, or its totals).
    pub fn pasid(&self) -> Option<u32> {
        crate::group::pasid_opt(self.0.pasid)
    }

    /// Read-to-answer latency quantile in ns, as [`Stats::latency_ns`].
    pub fn latency_ns(&self, q: f64) -> u64 {
        unsafe { sys::iopf_device_stats_latency_ns(&self.0, q) }
    }
}

impl Deref for DeviceStats {
    type Target = sys::iopf_device_stats;
    fn deref(&self) -> &sys::iopf_device_stats {
        &self.0
    }
}

impl std::fmt::Debug for DeviceStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceStats")
            .field("dev_id", &self.0.dev_id)
            .field("pasid", &self.pasid())
            .field("groups", &self.0.groups)
            .field("answers_success", &self.0.answers_success)
            .field("answers_invalid", &self.0.answers_invalid)
            .field("outstanding", &self.0.outstanding)
            .field("ready", &self.0.ready)
            .finish_non_exhaustive()
    }
}

impl Context {
    fn device_stats_raw(&self, dev_id: u32, pasid: u32, flags: u32) -> io::Result<DeviceStats> {
        let mut st = sys::iopf_device_stats {
            sz: std::mem::size_of::<sys::iopf_device_stats>(),
            ..Default::default()
        };
        check(unsafe { sys::iopf_ctx_get_device_stats(self.raw(), dev_id, pasid, flags, &mut st) })?;
        Ok(DeviceStats(st))
    }

    /// A copy of one device's counters (all its PASIDs). Errors: `ENOENT`
    /// (no group of it seen). Since 1.3.
    pub fn device_stats(&self, dev_id: u32) -> io::Result<DeviceStats> {
        self.device_stats_raw(dev_id, sys::IOPF_NO_PASID, sys::IOPF_ALL_PASIDS)
    }

    /// A copy of one (device, PASID)'s counters (None: its groups without
    /// PASID). Errors: `EOPNOTSUPP` (the context was made without
    /// [`Options::pasid_stats`](crate::Options::pasid_stats)), `ENOENT`.
    /// Since 1.3.
    pub fn pasid_stats(&self, dev_id: u32, pasid: Option<u32>) -> io::Result<DeviceStats> {
        self.device_stats_raw(dev_id, crate::group::pasid_raw(pasid), 0)
    }

    /// The devices that have counters, in no particular order. Since 1.3.
    pub fn devices(&self) -> io::Result<Vec<u32>> {
        let mut ids = Vec::new();
        loop {
            let room = ids.capacity();
            let n = check(unsafe { sys::iopf_ctx_list_devices(self.raw(), ids.as_mut_ptr(), room) })?;
            if n <= room {
                // SAFETY: libiopf wrote n ids.
                unsafe { ids.set_len(n) };
                return Ok(ids);
            }
            // More came than room: try again with enough (and some, as
            // devices may be added meanwhile).
            ids.reserve_exact(n + 8);
        }
    }
}
