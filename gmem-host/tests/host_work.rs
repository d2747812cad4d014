//! What the manager reports as host work (`GmMmu::host_work`). The co-simulation charges
//! it as device time, so every migration round must report each page it copied, and an
//! operation that copies nothing must not report a round.

mod common;

use common::*;
use gmem_host::{Access, DeviceFault, Hint, HostWork, MapFlags, Node};

const PAGE: u64 = 4096;

/// Pages the reported rounds copied, (to device, to host).
fn copied(work: &[HostWork]) -> (u64, u64) {
    work.iter().fold((0, 0), |(d, h), w| match w {
        HostWork::Migration { to_device, to_host } | HostWork::MigrationPart { to_device, to_host } => {
            (d + to_device, h + to_host)
        }
        _ => (d, h),
    })
}

#[test]
fn a_prefetch_reports_one_round_with_every_page_it_copied_and_a_second_one_none() {
    let r = rig(64);
    let p = r.gm.mmap(r.space, 16 * PAGE, MapFlags::PEER_SHARED).expect("mmap");
    r.gm.cpu_access(p as u64, 16 * PAGE, true).expect("populate");
    r.dev.take_host_work();

    r.gm.hmadvise(r.space, Node::Device(r.id), p as u64, 16 * PAGE, Hint::Prefetch).expect("prefetch");
    // The hint walks the range's 16 entries.
    let hint = HostWork::Hint { pages: 16 };
    assert_eq!(r.dev.take_host_work(), [hint, HostWork::Migration { to_device: 16, to_host: 0 }]);

    r.gm.hmadvise(r.space, Node::Device(r.id), p as u64, 16 * PAGE, Hint::Prefetch).expect("again");
    assert_eq!(r.dev.take_host_work(), [hint], "nothing left to copy");

    // An attribute hint walks nothing.
    r.gm.hmadvise(r.space, Node::Device(r.id), p as u64, 16 * PAGE, Hint::AccessedBy).expect("accessed_by");
    assert_eq!(r.dev.take_host_work(), [HostWork::Hint { pages: 0 }]);
}

#[test]
fn a_cpu_fault_reports_the_pages_it_brought_back_before_the_toucher_runs_on() {
    let r = rig(64);
    let p = r.gm.mmap(r.space, 32 * PAGE, MapFlags::PEER_SHARED).expect("mmap");
    r.gm.cpu_access(p as u64, 32 * PAGE, true).expect("populate");
    r.gm.hmadvise(r.space, Node::Device(r.id), p as u64, 32 * PAGE, Hint::Prefetch).expect("to the device");
    let before = r.gm.counters().pages_d2h;
    r.dev.take_host_work();

    cpu_read(p, 0);
    let work = r.dev.take_host_work();
    let back = r.gm.counters().pages_d2h - before;
    assert!(back > 1, "the fault brings pages after the faulted one back too ({back})");
    assert_eq!(work, [HostWork::CpuFault, HostWork::Migration { to_device: 0, to_host: back }]);
}

#[test]
fn a_fault_batch_reports_what_it_copied_and_first_touches_copy_nothing() {
    let r = rig(256);
    let faults = |va: u64, n: u64, access| -> Vec<DeviceFault> {
        (0..n).map(|i| DeviceFault { asid: r.asid, va: va + i * PAGE, access, tag: i }).collect()
    };
    // CPU-resident pages: the batch copies them (and whatever it prefetches).
    let p = r.gm.mmap(r.space, 64 * PAGE, MapFlags::PEER_SHARED).expect("mmap");
    r.gm.cpu_access(p as u64, 64 * PAGE, true).expect("populate");
    let c0 = r.gm.counters();
    r.dev.take_host_work();
    assert!(r.gm.dev_fault(r.id, &faults(p as u64, 4, Access::Read)).iter().all(|a| a.is_retry()));
    let work = r.dev.take_host_work();
    let c1 = r.gm.counters();
    assert_eq!(work.last(), Some(&HostWork::FaultBatch { faults: 4 }), "{work:?}");
    assert_eq!(copied(&work), (c1.pages_h2d - c0.pages_h2d, c1.pages_d2h - c0.pages_d2h), "{work:?}");
    assert!(copied(&work).0 >= 4, "{work:?}");

    // Never-touched pages are zero-filled on the device: no page is copied, no round.
    let q = r.gm.mmap(r.space, 4 * PAGE, MapFlags::PEER_SHARED).expect("mmap");
    assert!(r.gm.dev_fault(r.id, &faults(q as u64, 4, Access::Write)).iter().all(|a| a.is_retry()));
    assert_eq!(r.dev.take_host_work(), [HostWork::FaultBatch { faults: 4 }]);
}
