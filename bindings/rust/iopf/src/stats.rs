//! Counters of a context.

use std::ops::Deref;

use iopf_sys as sys;

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
            .finish_non_exhaustive()
    }
}
