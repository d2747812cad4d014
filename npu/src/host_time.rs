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
    /// Per device-fault batch: the records, the manager's planning and the answers
    /// (its migrations are charged apart: [`HostCosts::migration_ns`]).
    pub fault_batch_ns: u64,
    /// Per fault in a batch: lookup, policy, duplicate removal.
    pub per_fault_ns: u64,
    /// Per migration round that copies pages: the system calls that protect and drop
    /// the CPU copies (or install them), the copies' set-up, the commit.
    pub migration_ns: u64,
    /// Per later part of a migration round pipelined in parts (`HostWork::MigrationPart`):
    /// its commit under the manager's lock and the system calls of its runs; the round's
    /// set-up was its first part's ([`HostCosts::migration_ns`]).
    pub part_ns: u64,
    /// Per page a migration copies host -> device (write-protect, page-table updates,
    /// `MADV_DONTNEED` of the CPU copy: the kernel unmaps and frees each 4 KiB page).
    pub page_in_ns: u64,
    /// Per page a migration copies device -> host (`UFFDIO_COPY` allocates and fills a
    /// CPU page, page-table updates, the device frame freed).
    pub page_out_ns: u64,
    /// Per CPU fault: kernel fault entry, userfaultfd message, handler wake-up, waking
    /// the toucher (its migration is charged apart).
    pub cpu_fault_ns: u64,
    /// Per `hmadvise` call (its migrations are charged apart).
    pub hint_ns: u64,
    /// Per entry of the logical page table a `PREFETCH` or `DONTNEED` hint walks (the
    /// range's touched 2 MiB chunks; its migrations are charged apart).
    pub hint_page_ns: u64,
    /// Per kernel launch: the driver's lock, the descriptor written into the ring, the
    /// doorbell store (its flight to the device is the MMIO model's).
    pub launch_ns: u64,
}

/// Calibrated with `taskset -c 0 cargo bench -p gmem-host --bench faults --
/// "fault_batch_sizes|hint_sizes|cpu_fault_back_256/uffd_nulldev"` (the manager on a
/// null device: its own work and system calls only) on the 2-core development VM, on
/// one CPU (docs/performance-model.md keeps the output and the fit):
/// - `hmadvise(PREFETCH)` of 16, 256, 1024 CPU-resident pages took 12.7, 115.6, 449.2 µs:
///   430 ns per page moved in on top of a round's fixed cost;
/// - `Gmem::dev_fault` of 1, 4, 16 faults (a page each) took 3.54, 5.10, 11.79 µs:
///   a round (3 µs) + 430 ns per page + about 100 ns per fault;
/// - an `ACCESSED_BY` hint took 0.19 µs, whatever its length; a `DONTNEED` that moves
///   nothing walks the range's entries at 21–22 ns each (`gmem profile host`);
/// - a CPU fault bringing back 1 or 16 pages took 7.6 or 23.6 µs: 1.07 µs per page out,
///   6.5 µs for the fault and its round.
///
/// Unpinned, a CPU fault costs about 50 µs here: this VM's cross-CPU wake-up alone is
/// 36 µs (a pipe round trip between two threads; 5 µs on one CPU), which a bare-metal
/// host does not pay. A launch (the driver's lock and `KernelQueue::submit` of one
/// kernel, `gmem profile host` on a transport with no device) took 34–35 ns: 40 ns.
/// [`HostCosts::hint_page_ns`] by default.
pub const HINT_PAGE_NS: u64 = 22;

/// [`HostCosts::part_ns`] by default: `gmem profile host` times a `PREFETCH` of 256
/// CPU-resident pages pipelined in 4 parts (a null device declaring `ASYNC_COPY`) next
/// to the same `PREFETCH` in one round; the difference per extra part
/// (docs/performance-model.md).
pub const PART_NS: u64 = 3_000;

impl Default for HostCosts {
    fn default() -> Self {
        Self {
            fault_batch_ns: 200,
            per_fault_ns: 100,
            migration_ns: 3_000,
            part_ns: PART_NS,
            page_in_ns: 430,
            page_out_ns: 1_070,
            cpu_fault_ns: 3_500,
            hint_ns: 200,
            hint_page_ns: HINT_PAGE_NS,
            launch_ns: 40,
        }
    }
}

impl HostCosts {
    /// 1 µs per fault batch and nothing else: the least that guarantees progress when
    /// the manager answers a batch without changing anything (throttling). For
    /// correctness runs (the soak), whose hang budgets are calibrated on it; not for
    /// figures.
    pub fn progress_only() -> Self {
        Self {
            fault_batch_ns: 1_000,
            per_fault_ns: 0,
            migration_ns: 0,
            part_ns: 0,
            page_in_ns: 0,
            page_out_ns: 0,
            cpu_fault_ns: 0,
            hint_ns: 0,
            hint_page_ns: 0,
            launch_ns: 0,
        }
    }

    /// The names [`HostCosts::set`] takes, in the order reports print them.
    pub const NAMES: [&'static str; 10] =
        ["batch", "per_fault", "migration", "part", "page_in", "page_out", "cpu_fault", "hint", "hint_page", "launch"];

    /// Longest cost [`HostCosts::set`] accepts: 1 s.
    pub const MAX_NS: u64 = 1_000_000_000;

    /// Sets the cost called `name` (one of [`HostCosts::NAMES`]) to `ns` nanoseconds: a
    /// host measured with `gmem profile host` (docs/performance-model.md).
    pub fn set(&mut self, name: &str, ns: u64) -> Result<(), HostCostError> {
        if ns > Self::MAX_NS {
            return Err(HostCostError::TooLong { name: name.into(), ns });
        }
        let field = match name {
            "batch" => &mut self.fault_batch_ns,
            "per_fault" => &mut self.per_fault_ns,
            "migration" => &mut self.migration_ns,
            "part" => &mut self.part_ns,
            "page_in" => &mut self.page_in_ns,
            "page_out" => &mut self.page_out_ns,
            "cpu_fault" => &mut self.cpu_fault_ns,
            "hint" => &mut self.hint_ns,
            "hint_page" => &mut self.hint_page_ns,
            "launch" => &mut self.launch_ns,
            _ => return Err(HostCostError::UnknownName { name: name.into() }),
        };
        *field = ns;
        Ok(())
    }

    /// The cost of `work`.
    pub fn of(&self, work: HostWork) -> u64 {
        match work {
            HostWork::FaultBatch { faults } => self.fault_batch_ns + self.per_fault_ns * faults as u64,
            HostWork::CpuFault => self.cpu_fault_ns,
            HostWork::Hint { pages } => self.hint_ns + self.hint_page_ns * pages,
            HostWork::Migration { to_device, to_host } => {
                self.migration_ns + self.page_in_ns * to_device + self.page_out_ns * to_host
            }
            HostWork::MigrationPart { to_device, to_host } => {
                self.part_ns + self.page_in_ns * to_device + self.page_out_ns * to_host
            }
        }
    }
}

/// A host cost [`HostCosts::set`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostCostError {
    /// Not one of [`HostCosts::NAMES`].
    #[error("unknown host cost {name:?} (known: {})", HostCosts::NAMES.join(", "))]
    UnknownName {
        /// The name given.
        name: String,
    },
    /// Above [`HostCosts::MAX_NS`].
    #[error("host cost {name}={ns} ns is longer than {} ns", HostCosts::MAX_NS)]
    TooLong {
        /// The cost's name.
        name: String,
        /// The value given.
        ns: u64,
    },
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
                "host_time=model[batch={}ns+{}ns/fault migration={}ns+{}ns/part+{}ns/page-in+{}ns/page-out cpu_fault={}ns hint={}ns+{}ns/page launch={}ns]",
                c.fault_batch_ns,
                c.per_fault_ns,
                c.migration_ns,
                c.part_ns,
                c.page_in_ns,
                c.page_out_ns,
                c.cpu_fault_ns,
                c.hint_ns,
                c.hint_page_ns,
                c.launch_ns
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
        assert_eq!(c.of(HostWork::FaultBatch { faults: 4 }), 200 + 4 * 100);
        assert_eq!(c.of(HostWork::CpuFault), 3_500);
        assert_eq!(c.of(HostWork::Hint { pages: 0 }), 200, "an attribute hint");
        assert_eq!(c.of(HostWork::Hint { pages: 1024 }), 200 + 1024 * HINT_PAGE_NS);
        assert_eq!(c.of(HostWork::Migration { to_device: 512, to_host: 2 }), 3_000 + 512 * 430 + 2 * 1_070);
        let part = HostWork::MigrationPart { to_device: 64, to_host: 0 };
        assert_eq!(c.of(part), PART_NS + 64 * 430, "a later part pays its own commit, not a round");
        let describe = HostTime::default().describe();
        assert!(
            describe.starts_with(&format!(
                "host_time=model[batch=200ns+100ns/fault migration=3000ns+{PART_NS}ns/part+430ns/page-in"
            )),
            "{describe}"
        );
        assert_eq!(HostTime::Measured.to_json()["deterministic"], false);
    }

    #[test]
    fn each_named_cost_can_be_set_and_bad_ones_are_refused() {
        let mut c = HostCosts::default();
        for (i, name) in HostCosts::NAMES.iter().enumerate() {
            c.set(name, 10 + i as u64).unwrap();
        }
        assert_eq!(c.of(HostWork::FaultBatch { faults: 2 }), 10 + 2 * 11);
        assert_eq!(c.of(HostWork::Migration { to_device: 1, to_host: 1 }), 12 + 14 + 15);
        assert_eq!(c.of(HostWork::MigrationPart { to_device: 1, to_host: 1 }), 13 + 14 + 15);
        assert_eq!((c.of(HostWork::CpuFault), c.of(HostWork::Hint { pages: 2 }), c.launch_ns), (16, 17 + 2 * 18, 19));
        let before = c;
        assert_eq!(c.set("page", 1), Err(HostCostError::UnknownName { name: "page".into() }));
        assert!(c.set("hint", HostCosts::MAX_NS + 1).unwrap_err().to_string().contains("longer than"));
        assert_eq!(c, before, "a refused cost changes nothing");
    }
}
