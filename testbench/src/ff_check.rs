//! The fast-forward differential test: the demo's scenarios with fast-forward on and
//! off must be indistinguishable (cycles, every performance counter read through the
//! CSRs, device memory, page-table dumps, fault and migration counts), and the on-run
//! must really skip.

#![cfg(test)]
#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use crate::profile_cosim::demo_scenarios;
use crate::system::System;
use crate::workloads;
use npu::NpuConfig;
use npu::session::{Session, manager_config};
use sim_bridge::{FastForwardStats, SimConfig, SimDevice};
use std::fmt::Write;

/// Performance counters of spec v1 (PERF_CTR_*).
const COUNTERS: u32 = 24;

/// Lowest VA of this test's regions: 192 GiB, above the manager's default base (64 GiB)
/// and the soak's segment windows (up to 128 GiB), below Sv39's 256 GiB.
const VA_BASE: u64 = 192 << 30;

/// Everything observable after one demo scenario, and fast-forward's statistics.
fn fingerprint(ff: bool, scenario: usize, shrink: u64) -> (String, FastForwardStats) {
    let sys = System { timing: Default::default(), host_time: Default::default(), push: false };
    let (workload, size, device_mem, managed) = demo_scenarios(shrink)[scenario];
    let dev = SimDevice::new(SimConfig { fast_forward: ff, ..sys.sim_config() }).unwrap();
    let npu = sys.npu(NpuConfig { managed_bytes: managed, ..NpuConfig::default() });
    // Regions in a VA window of their own: other tests of this binary map memory at the
    // same time, and the page-table dump names virtual addresses.
    let cfg = gmem_host::Config { va_base: VA_BASE, ..manager_config() };
    let s = Session::open(dev, npu, cfg).unwrap();
    let sum = workloads::run(&s, workload, size, device_mem, 1, true).unwrap();
    let mut out = format!(
        "cycles {} kernels {} elements {} faults {} batches {} aborted {} h2d {} correct {}\n",
        sum.cycles, sum.kernels, sum.elements, sum.faults, sum.batches, sum.aborted, sum.pages_h2d, sum.correct
    );
    writeln!(out, "manager {:?}", s.gm.counters()).unwrap();
    out += &s.npu.pte_dump(gmem_host::Asid(u32::from(s.asid)), true).unwrap();
    let stats = s.npu.with_io(|d| {
        for i in 0..COUNTERS {
            writeln!(out, "perf[{i}] {}", d.perf_counter(i).unwrap()).unwrap();
        }
        let mut mem = vec![0u8; device_mem as usize];
        d.dev_mem_read(0, &mut mem).unwrap();
        writeln!(out, "device memory fnv {:#018x}", fnv(&mem)).unwrap();
        writeln!(out, "cycles after readout {}", d.cycles()).unwrap();
        assert_eq!(d.fast_forward_on(), ff);
        d.fast_forward_stats()
    });
    (out, stats)
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Both demo scenarios (at 1/16 size) give the same observations with and without
/// fast-forward, and the fast-forward run skips a tenth of its cycles or more (about a
/// quarter in this model), some of them at fixed points found by probes (a busy design
/// waiting for a memory response or the host), not only in quiescent stretches.
#[test]
fn demo_scenarios_are_identical_with_and_without_fast_forward() {
    for scenario in 0..2 {
        let (plain, none) = fingerprint(false, scenario, 16);
        let (fast, stats) = fingerprint(true, scenario, 16);
        assert_eq!(none, FastForwardStats::default());
        assert_eq!(plain, fast, "scenario {scenario}");
        let cycles: u64 = plain.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(stats.skipped_cycles * 10 >= cycles, "scenario {scenario}: {stats:?} of {cycles} cycles");
        assert!(stats.probe_hits > 0 && stats.probe_hits <= stats.probes, "scenario {scenario}: {stats:?}");
        eprintln!("scenario {scenario}: {cycles} cycles, {stats:?}");
    }
}
