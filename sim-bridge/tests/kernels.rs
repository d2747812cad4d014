//! The RTL compute unit through the RTL MMU: every kernel operation, translations
//! against the software walker, faults, replays, invalidation, isolation and the host
//! window. The same scenarios run on the reference model in `model_mmu.rs`.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

mod common;

use common::{Reply, Rig, put_words, words};
use npu::kernel::{Kernel, KernelStatus};
use sim_bridge::{SimConfig, SimDevice};

fn rig() -> Rig<SimDevice> {
    Rig::new(SimDevice::new(SimConfig::default()).unwrap())
}

#[test]
fn add_over_mapped_pages_is_exact() {
    let mut r = rig();
    let (a, b, c) = (0x10_0000u64, 0x20_0000u64, 0x30_0000u64);
    r.map_range(1, a, 0x100_0000, 2, false);
    r.map_range(1, b, 0x110_0000, 2, false);
    r.map_range(1, c, 0x120_0000, 2, true);
    let n = 1500usize;
    let av: Vec<u32> = (0..n as u32).map(|i| i.wrapping_mul(7919)).collect();
    let bv: Vec<u32> = (0..n as u32).map(|i| 0xFFFF_0000u32.wrapping_add(i)).collect();
    put_words(&mut r.dev, 0x100_0000, &av);
    put_words(&mut r.dev, 0x110_0000, &bv);
    let cpl = r.run_clean(Kernel::add(1, a, b, c, n as u32));
    assert_eq!(cpl.status, KernelStatus::Ok, "{cpl:?}");
    assert_eq!(cpl.done, n as u32);
    let got = words(&r.dev, 0x120_0000, n + 1);
    for i in 0..n {
        assert_eq!(got[i], av[i].wrapping_add(bv[i]), "element {i}");
    }
    assert_eq!(got[n], 0, "nothing written past the end");
}

#[test]
fn a_missing_page_faults_and_retry_after_mapping_completes() {
    let mut r = rig();
    r.settle_ns = 4_000;
    r.map_range(1, 0x10_0000, 0x100_0000, 1, false);
    put_words(&mut r.dev, 0x100_0000, &[5; 64]);
    let (cpl, batches) = r.run(Kernel::copy(1, 0x10_0000, 0x30_0000, 64), &mut |dev, t, batch| {
        for f in batch {
            assert_eq!(f.va, 0x30_0000 + (u64::from(f.slot()) * 64), "{f:?}");
        }
        t.map(dev, 1, 0x30_0000, 0x120_0000, 4096, true);
        Reply::Retry
    });
    assert_eq!(cpl.status, KernelStatus::Ok, "{cpl:?}");
    assert_eq!(batches.len(), 1, "{batches:#?}");
    assert_eq!(batches[0].len(), 4, "four slots fault on the unmapped c page at once: {batches:#?}");
    assert_eq!(words(&r.dev, 0x120_0000, 64), vec![5; 64]);
}

#[test]
fn abort_ends_the_kernel_with_the_faulting_va() {
    let mut r = rig();
    let (cpl, faults) = r.run(Kernel::fill(2, 0x40_0000, 16, 9), &mut |_, _, _| Reply::Abort);
    assert_eq!(cpl.status, KernelStatus::FaultAbort);
    assert_eq!(cpl.fault_va, 0x40_0000);
    assert_eq!(faults.concat().len(), 1);
    assert_eq!(cpl.done, 0);
}
