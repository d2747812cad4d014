//! Host software time in device time.
//!
//! On a board the device runs while the host's software does its part of every
//! operation (handling a fault batch, serving a CPU fault, applying a hint, launching a
//! kernel). In co-simulation the RTL is frozen while host code runs, so that time must
//! be charged explicitly or every figure flatters. Two modes:
//! - [`HostTime::Model`] (default): deterministic costs per operation, charged by the
//!   driver through [`crate::DeviceIo::advance`] when the transport's clock is simulated
//!   (a board's clock is the wall clock: its host time is real and nothing is charged);
//! - [`HostTime::Measured`]: the driver charges nothing; the co-simulation transport
//!   measures the wall time between transport calls instead (`sim_bridge::SimConfig::
//!   measure_host_time`). Not deterministic.
//!
//! The defaults and their sources are in docs/performance-model.md.

use gmem_host::HostWork;

/// Modelled host costs, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HostCosts {
    /// Per device-fault batch: fault-queue drain, the manager's batch set-up, the replay.
    pub fault_batch_ns: u64,
    /// Per fault in a batch: the manager's per-fault work (lookup, policy, migration
    /// set-up, PTE staging).
    pub per_fault_ns: u64,
    /// Per CPU fault: kernel fault entry, userfaultfd message, handler wake-up, the
    /// manager, UFFDIO_COPY or wake, return to the toucher.
    pub cpu_fault_ns: u64,
    /// Per `hmadvise` call.
    pub hint_ns: u64,
    /// Per base page in a hint's range.
    pub hint_page_ns: u64,
    /// Per kernel launch (descriptor write, doorbell path in the driver).
    pub launch_ns: u64,
}

/// Calibrated with `cargo bench -p gmem-host --bench faults -- "fault_batch_sizes|cpu_fault_back"`
/// on the 2-core development machine (docs/performance-model.md keeps the output):
/// `Gmem::dev_fault` of 1, 4, 16, 256 faults took 3.64, 5.07, 12.17, 119.3 µs, a line
/// of 3.07 µs + 0.57 µs per fault over the NPU's batch sizes (1–16); 256 CPU fault-backs
/// took 424 µs (1.66 µs each, including the software device's 4 KiB memcpy). Hint and
/// launch costs are estimates, not yet calibrated.
impl Default for HostCosts {
    fn default() -> Self {
        Self {
            fault_batch_ns: 3_000,
            per_fault_ns: 600,
            cpu_fault_ns: 1_500,
            hint_ns: 1_000,
            hint_page_ns: 20,
            launch_ns: 1_000,
        }
    }
}

impl HostCosts {
    /// 1 µs per fault batch and nothing else: the least that guarantees progress when
    /// the manager answers a batch without changing anything (throttling). For
    /// correctness runs (the soak), whose hang budgets are calibrated on it; not for
    /// figures.
    pub fn progress_only() -> Self {
        Self { fault_batch_ns: 1_000, per_fault_ns: 0, cpu_fault_ns: 0, hint_ns: 0, hint_page_ns: 0, launch_ns: 0 }
    }

    /// The cost of `work`.
    pub fn of(&self, work: HostWork) -> u64 {
        match work {
            HostWork::FaultBatch { faults } => self.fault_batch_ns + self.per_fault_ns * faults as u64,
            HostWork::CpuFault => self.cpu_fault_ns,
            HostWork::Hint { pages } => self.hint_ns + self.hint_page_ns * pages,
        }
    }
}

/// How host software time becomes device time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostTime {
    /// Deterministic modelled costs (the default).
    Model(HostCosts),
    /// The real wall time, measured by the transport (non-deterministic).
    Measured,
}

impl Default for HostTime {
    fn default() -> Self {
        HostTime::Model(HostCosts::default())
    }
}

impl HostTime {
    /// `model` or `measured`, for reports.
    pub fn name(&self) -> &'static str {
        match self {
            HostTime::Model(_) => "model",
            HostTime::Measured => "measured",
        }
    }

    /// The mode as JSON (the host-time part of a report's `model` object).
    pub fn to_json(self) -> serde_json::Value {
        match self {
            HostTime::Model(c) => serde_json::json!({ "mode": "model", "deterministic": true, "costs_ns": c }),
            HostTime::Measured => serde_json::json!({ "mode": "measured", "deterministic": false }),
        }
    }

    /// One line for text reports.
    pub fn describe(&self) -> String {
        match self {
            HostTime::Model(c) => format!(
                "host_time=model[batch={}ns+{}ns/fault cpu_fault={}ns hint={}ns+{}ns/page launch={}ns]",
                c.fault_batch_ns, c.per_fault_ns, c.cpu_fault_ns, c.hint_ns, c.hint_page_ns, c.launch_ns
            ),
            HostTime::Measured => "host_time=measured (wall time, not deterministic)".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_add_up_per_operation() {
        let c = HostCosts::default();
        assert_eq!(c.of(HostWork::FaultBatch { faults: 4 }), 3_000 + 4 * 600);
        assert_eq!(c.of(HostWork::CpuFault), 1_500);
        assert_eq!(c.of(HostWork::Hint { pages: 512 }), 1_000 + 512 * 20);
        assert!(HostTime::default().describe().starts_with("host_time=model[batch=3000ns+600ns/fault"));
        assert_eq!(HostTime::Measured.to_json()["deterministic"], false);
    }
}
