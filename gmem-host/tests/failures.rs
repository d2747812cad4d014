//! Hook failures (each hook made to fail in turn) and bad input: typed errors, no data
//! lost, no device memory leaked, state unchanged, and a retry succeeds.

mod common;

use common::*;
use gmem_host::softdev::SoftConfig;
use gmem_host::{
    Access, Asid, Config, DeviceFault, DeviceId, FaultError, FaultResolution, GmemError, Hint, Hooks, MapFlags,
    MigrateError, MmuError, Node, Residency, SpaceId,
};

const PAGES: u64 = 8;

fn setup(hooks: Hooks) -> (Rig, *mut u8) {
    let r = rig_with(Config::default(), SoftConfig { mem_bytes: 64 * 4096, hooks, ..Default::default() });
    let p = r.gm.mmap(r.space, PAGES * 4096, MapFlags::PEER_SHARED).expect("mmap");
    for pg in 0..PAGES {
        cpu_write(p, (pg * 4096) as usize, 0x40 + pg as u8);
    }
    (r, p)
}

fn fault(r: &Rig, va: u64, access: Access) -> FaultResolution {
    r.gm.dev_fault(r.id, &[DeviceFault { asid: r.asid, va, access, tag: 7 }]).remove(0)
}

fn on_device(r: &Rig, va: u64) -> u64 {
    (0..PAGES)
        .filter(|i| r.gm.page_info(r.space, va + i * 4096).is_some_and(|p| p.residency == Residency::Device))
        .count() as u64
}

fn assert_balanced(r: &Rig, va: u64) {
    let (free, total) = r.gm.device_pages(r.id).expect("dev");
    assert_eq!(free + on_device(r, va), total, "device memory accounting");
    assert_eq!(r.dev.stale_tlb_entries(), 0);
}

fn assert_data(r: &Rig, p: *mut u8) {
    for pg in 0..PAGES {
        assert_eq!(cpu_read(p, (pg * 4096) as usize), 0x40 + pg as u8, "page {pg}");
    }
    let _ = r;
}

fn expect_abort(res: FaultResolution, va: u64) -> MigrateError {
    match res {
        FaultResolution::Abort(FaultError::Migration { va: got, source }) => {
            assert_eq!(got, va);
            std::sync::Arc::try_unwrap(source).unwrap_or_else(|a| panic!("shared error {a:?}"))
        }
        other => panic!("expected a migration abort, got {other:?}"),
    }
}

#[test]
fn a_refused_frame_is_swapped_for_another_at_once() {
    let (r, p) = setup(Hooks::all());
    let va = p as u64 + 4096;
    r.dev.inject_failure("alloc_page", 0, 1);
    assert!(fault(&r, va + 5, Access::Write).is_retry());
    assert_eq!(r.gm.page_info(r.space, va).expect("info").residency, Residency::Device);
    assert_eq!((r.gm.counters().dma_retries, r.gm.counters().hook_errors), (0, 1));
    assert_balanced(&r, p as u64);
    assert_data(&r, p);
}

#[test]
fn device_fault_hooks_fail_then_retry() {
    for hook in ["copy_batch", "pmap_enter"] {
        let (r, p) = setup(Hooks::all());
        let va = p as u64 + 4096;
        r.dev.inject_failure(hook, 0, 1);
        // The failed migration rolls back and the fault is answered retry.
        assert!(fault(&r, va + 5, Access::Write).is_retry(), "{hook}");
        assert_eq!(r.gm.page_info(r.space, va).expect("info").residency, Residency::Cpu, "{hook}");
        assert_eq!((r.gm.counters().dma_retries, r.gm.counters().hook_errors), (1, 1), "{hook}");
        assert_balanced(&r, p as u64);
        // The device's replay faults again, and this time the page moves.
        assert!(fault(&r, va + 5, Access::Write).is_retry(), "{hook}: retry");
        assert_eq!(r.gm.page_info(r.space, va).expect("info").residency, Residency::Device);
        assert_balanced(&r, p as u64);
        assert_data(&r, p);
        assert_balanced(&r, p as u64);
    }
}

#[test]
fn device_fault_whose_migration_keeps_failing_falls_back_to_a_remote_mapping_or_aborts() {
    for remote in [true, false] {
        let hooks = if remote { Hooks::all() } else { Hooks::all() - Hooks::HOST_MAPPING };
        let (r, p) = setup(hooks);
        let va = p as u64 + 4096;
        r.dev.inject_failure("copy_batch", 0, 1000);
        let retries = Config::default().dev_fault_dma_retries;
        for n in 1..=retries {
            assert!(fault(&r, va, Access::Read).is_retry(), "remote={remote}: attempt {n}");
        }
        let info = r.gm.page_info(r.space, va).expect("info");
        assert_eq!((info.residency, info.remote), (Residency::Cpu, false), "still on the CPU, untouched");
        let res = fault(&r, va, Access::Read);
        if remote {
            // The next fault maps the CPU page in place: the data never moved.
            assert!(res.is_retry());
            assert_eq!(r.gm.counters().dma_fallbacks, 1);
            assert!(fault(&r, va, Access::Read).is_retry());
            let info = r.gm.page_info(r.space, va).expect("info");
            assert_eq!((info.residency, info.remote), (Residency::Cpu, true), "{info:?}");
            let mut b = [0u8; 1];
            r.dev.load(&r.gm, r.id, r.asid, va, &mut b).expect("remote load");
            assert_eq!(b[0], 0x41);
        } else {
            let err = expect_abort(res, va);
            assert!(matches!(err, MigrateError::Copy { .. }), "{err:?}");
            assert_eq!(r.gm.counters().dma_fallbacks, 0);
            // An abort starts the count again: the next kernel gets retries of its own.
            assert!(fault(&r, va, Access::Read).is_retry());
        }
        assert_balanced(&r, p as u64);
        r.dev.inject_failure("copy_batch", 0, 0);
        assert_data(&r, p);
    }
}

#[test]
fn zero_fill_prepare_failure() {
    // Without PEER_MAP, first-touch pages are zero-filled with prepare_page.
    let r = rig_with(
        Config::default(),
        SoftConfig { mem_bytes: 64 * 4096, hooks: Hooks::all() - Hooks::PEER_MAP, ..Default::default() },
    );
    let p = r.gm.mmap(r.space, 4096, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    r.dev.inject_failure("prepare_page", 0, 1);
    assert!(fault(&r, va, Access::Read).is_retry());
    assert_eq!(r.gm.counters().dma_retries, 1);
    assert_eq!(r.gm.device_pages(r.id), Some((64, 64)), "the frame went back");
    assert!(fault(&r, va, Access::Read).is_retry());
    let mut b = [1u8; 16];
    r.dev.load(&r.gm, r.id, r.asid, va, &mut b).expect("load");
    assert_eq!(b, [0u8; 16]);
}

#[test]
fn peer_map_failure_falls_back() {
    let r = rig(64);
    let p = r.gm.mmap(r.space, 4096, MapFlags::PEER_SHARED).expect("mmap");
    r.dev.inject_failure("peer_map", 0, 1);
    assert!(fault(&r, p as u64, Access::Write).is_retry());
    assert_eq!(r.gm.page_info(r.space, p as u64).expect("info").residency, Residency::Device);
    assert_eq!(r.gm.counters().hook_errors, 1);
    assert_eq!(r.dev.calls("prepare_page"), 1, "the fallback zero-fill");
}

#[test]
fn host_migration_hooks_fail_then_retry() {
    for hook in ["copy_batch", "pmap_release", "tlb_invl_coalesced"] {
        let (r, p) = setup(Hooks::all());
        let va = p as u64;
        for pg in 0..PAGES {
            assert!(fault(&r, va + pg * 4096, Access::Write).is_retry());
            // The device reads the page: its TLB holds the translation.
            r.dev.access(r.asid, va + pg * 4096, &mut [0u8; 8], false).expect("mapped");
        }
        assert_eq!(on_device(&r, va), PAGES);
        // Invalidations are retried three times before the operation gives up.
        r.dev.inject_failure(hook, 0, if hook == "tlb_invl_coalesced" { 3 } else { 1 });
        let e = r.gm.hmadvise(r.space, Node::Cpu, va, PAGES * 4096, Hint::DontNeed).expect_err(hook);
        let src = match e {
            GmemError::Migrate(MigrateError::Copy { source, .. })
            | GmemError::Migrate(MigrateError::Unmap { source, .. })
            | GmemError::Migrate(MigrateError::Invalidate { source, .. }) => source,
            other => panic!("{hook}: unexpected {other:?}"),
        };
        assert_eq!(src, MmuError::Injected { hook });
        assert_balanced_loose(&r, va);
        r.gm.hmadvise(r.space, Node::Cpu, va, PAGES * 4096, Hint::DontNeed).expect("retry");
        // The failed invalidation was owed: the retry sent it before freeing the frames.
        assert_eq!(r.dev.stale_tlb_entries(), 0, "{hook}: TLB entries reach freed frames");
        assert_eq!(on_device(&r, va), 0, "{hook}");
        assert_eq!(r.gm.device_pages(r.id), Some((64, 64)), "{hook}");
        assert_data(&r, p);
    }
}

#[test]
fn a_cpu_access_whose_invalidation_failed_invalidates_when_retried() {
    let (r, p) = setup(Hooks::all());
    let va = p as u64;
    for pg in 0..PAGES {
        assert!(fault(&r, va + pg * 4096, Access::Write).is_retry());
        r.dev.access(r.asid, va + pg * 4096, &mut [0u8; 8], false).expect("mapped");
    }
    r.dev.inject_failure("tlb_invl_coalesced", 0, 3);
    let e = r.gm.cpu_access(va, PAGES * 4096, true).expect_err("every attempt fails");
    assert!(matches!(e, GmemError::Migrate(MigrateError::Invalidate { .. })), "{e:?}");
    assert_eq!(on_device(&r, va), PAGES, "the data stays on the device");
    // The page tables no longer map the pages, so the retry has no mapping to release:
    // it must still send the invalidation it owes before it frees the frames.
    let before = r.dev.calls("tlb_invl_coalesced");
    r.gm.cpu_access(va, PAGES * 4096, true).expect("retry");
    assert_eq!(r.dev.calls("tlb_invl_coalesced"), before + 1, "the owed invalidation, once");
    assert_eq!(r.dev.stale_tlb_entries(), 0, "TLB entries reach freed frames");
    assert_balanced(&r, va);
    assert_data(&r, p);
    // Paid: the next flush owes nothing.
    r.gm.cpu_access(va, PAGES * 4096, true).expect("nothing to move");
    assert_eq!(r.dev.calls("tlb_invl_coalesced"), before + 1);
}

/// After a failed invalidation the TLB may legitimately hold entries for unmapped pages
/// until the retry; only the memory accounting is checked.
fn assert_balanced_loose(r: &Rig, va: u64) {
    let (free, total) = r.gm.device_pages(r.id).expect("dev");
    assert_eq!(free + on_device(r, va), total);
}

#[test]
fn cpu_fault_back_survives_a_failing_copy() {
    let (r, p) = setup(Hooks::all());
    let va = p as u64;
    assert!(fault(&r, va, Access::Write).is_retry());
    r.dev.inject_failure("copy_batch", 0, 2);
    // The userfaultfd handler retries with back-off; the CPU read just completes.
    assert_eq!(cpu_read(p, 0), 0x40);
    assert!(r.gm.counters().hook_errors >= 2);
    assert_balanced(&r, va);
}

#[test]
fn registration_hooks_fail_cleanly() {
    let r = rig(64);
    r.dev.inject_failure("dma_map_host", 0, 1);
    let e = r.gm.mmap(r.space, 4096, MapFlags::PEER_SHARED).expect_err("mmap");
    assert!(matches!(e, GmemError::Hook { hook: "dma_map_host", source: MmuError::Injected { .. }, .. }), "{e:?}");
    r.dev.inject_failure("peer_va_alloc_fixed", 0, 1);
    let e = r.gm.mmap(r.space, 4096, MapFlags::PEER_SHARED).expect_err("mmap");
    assert!(matches!(e, GmemError::Hook { hook: "peer_va_alloc_fixed", .. }), "{e:?}");
    let p = r.gm.mmap(r.space, 4096, MapFlags::PEER_SHARED).expect("retry");
    cpu_write(p, 0, 9);
    let s2 = r.gm.create_space();
    r.dev.inject_failure("pmap_create", 0, 1);
    assert!(matches!(r.gm.attach(s2, r.id), Err(GmemError::Hook { hook: "pmap_create", .. })));
    r.gm.attach(s2, r.id).expect("retry attach");
    r.gm.munmap(r.space, p, 4096).expect("munmap");
}

#[test]
fn bad_input_is_typed_and_changes_nothing() {
    let r = rig(64);
    let p = r.gm.mmap(r.space, 8 * 4096, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    cpu_write(p, 0, 1);
    assert!(fault(&r, va, Access::Write).is_retry());
    let before = (r.gm.counters(), r.gm.device_pages(r.id), r.gm.page_info(r.space, va));
    let sp = r.space;
    let m = |e: Result<(), GmemError>| e.expect_err("must fail");
    let mh = |e: Result<gmem_host::HintReport, GmemError>| e.expect_err("must fail");
    assert!(matches!(r.gm.mmap(sp, 0, MapFlags::PEER_SHARED), Err(GmemError::ZeroLength { .. })));
    assert!(matches!(r.gm.mmap(sp, 4096, MapFlags::empty()), Err(GmemError::Flags(_))));
    assert!(matches!(r.gm.mmap(sp, u64::MAX - 10, MapFlags::PEER_SHARED), Err(GmemError::Overflow { .. })));
    assert!(matches!(r.gm.mmap(SpaceId(999), 4096, MapFlags::PEER_SHARED), Err(GmemError::UnknownSpace(999))));
    assert!(matches!(m(r.gm.munmap(sp, p, 0)), GmemError::ZeroLength { .. }));
    assert!(matches!(m(r.gm.munmap(sp, p.wrapping_add(1), 4096)), GmemError::Unaligned { .. }));
    assert!(matches!(m(r.gm.munmap(sp, p, 4095)), GmemError::Unaligned { .. }));
    assert!(matches!(m(r.gm.munmap(sp, (u64::MAX - 4095) as *mut u8, 8192)), GmemError::Overflow { .. }));
    // Past the region's end (a partial munmap inside it is allowed: `remap.rs`).
    assert!(matches!(m(r.gm.munmap(sp, p.wrapping_add(4096), 8 * 4096)), GmemError::PartialUnmap { .. }));
    assert!(matches!(m(r.gm.munmap(sp, p.wrapping_add(16 << 20), 4096)), GmemError::NotManaged { .. }));
    let e = r.gm.mremap(sp, p, 4096, 8192, true).expect_err("not a whole region");
    assert!(matches!(e, GmemError::PartialUnmap { .. }), "{e:?}");
    let e = r.gm.mremap(sp, p, 8 * 4096, 0, true).expect_err("zero length");
    assert!(matches!(e, GmemError::ZeroLength { .. }), "{e:?}");
    let unknown = Node::Device(DeviceId(9));
    assert!(matches!(mh(r.gm.hmadvise(sp, unknown, va, 4096, Hint::Prefetch)), GmemError::UnknownNode(_)));
    assert!(matches!(mh(r.gm.hmadvise(sp, Node::Cpu, va + 1, 4096, Hint::Prefetch)), GmemError::Unaligned { .. }));
    assert!(matches!(mh(r.gm.hmadvise(sp, Node::Cpu, va, 0, Hint::Prefetch)), GmemError::ZeroLength { .. }));
    // Overlapping the end of the region.
    let e = mh(r.gm.hmadvise(sp, Node::Cpu, va + 4 * 4096, 8 * 4096, Hint::ReadMostly));
    assert!(matches!(e, GmemError::NotManaged { va: v, .. } if v == va + 8 * 4096), "{e:?}");
    assert!(matches!(mh(r.gm.hmadvise(sp, Node::Cpu, va, 4096, Hint::AccessedBy)), GmemError::HintNode { .. }));
    assert!(matches!(m(r.gm.attach(sp, r.id).map(|_| ())), GmemError::AlreadyAttached { .. }));
    assert!(matches!(m(r.gm.attach(sp, DeviceId(5)).map(|_| ())), GmemError::UnknownNode(_)));
    // Faults: unknown ASID, unmanaged address, unknown device.
    let bad = r.gm.dev_fault(
        r.id,
        &[
            DeviceFault { asid: Asid(77), va, access: Access::Read, tag: 1 },
            DeviceFault { asid: r.asid, va: 0x1000, access: Access::Read, tag: 2 },
        ],
    );
    assert!(matches!(bad[0], FaultResolution::Abort(FaultError::UnknownAsid { asid: 77, .. })));
    assert!(matches!(bad[1], FaultResolution::Abort(FaultError::NotManaged { va: 0x1000 })));
    let bad = r.gm.dev_fault(DeviceId(3), &[DeviceFault { asid: r.asid, va, access: Access::Read, tag: 1 }]);
    assert!(matches!(bad[0], FaultResolution::Abort(FaultError::UnknownDevice { dev: 3, .. })));
    let after = (r.gm.counters(), r.gm.device_pages(r.id), r.gm.page_info(r.space, va));
    assert_eq!(before.1, after.1);
    assert_eq!(before.2, after.2);
    assert_eq!(before.0.pages_h2d, after.0.pages_h2d);
    // Double munmap.
    r.gm.munmap(sp, p, 8 * 4096).expect("munmap");
    assert!(matches!(m(r.gm.munmap(sp, p, 8 * 4096)), GmemError::NotManaged { .. }));
    assert_eq!(r.gm.device_pages(r.id), Some((64, 64)));
    // Use after unmap: the device fault aborts naming the address.
    let res = fault(&r, va + 12, Access::Read);
    assert!(matches!(res, FaultResolution::Abort(FaultError::NotManaged { va: v }) if v == va + 12));
}

#[test]
fn missing_required_hook_rejected_at_registration() {
    let gm = gmem_host::Gmem::new(Config {
        require_hooks: Hooks::HOST_MAPPING,
        cpu: gmem_host::CpuMode::Manual,
        ..Default::default()
    })
    .expect("gm");
    let dev = std::sync::Arc::new(gmem_host::softdev::SoftDevice::new(SoftConfig {
        hooks: Hooks::all() - Hooks::HOST_MAPPING,
        ..Default::default()
    }));
    let e = gm.register_device(dev).expect_err("must be refused");
    assert!(matches!(e, GmemError::MissingHooks { missing, .. } if missing == Hooks::HOST_MAPPING), "{e:?}");
    let bad =
        std::sync::Arc::new(gmem_host::softdev::SoftDevice::new(SoftConfig { mem_bytes: 4095, ..Default::default() }));
    assert!(matches!(gm.register_device(bad), Err(GmemError::Buddy(_))));
}

#[test]
fn read_duplication_narrowing_failure_is_retried_by_the_handler() {
    let (r, p) = setup(Hooks::all());
    let va = p as u64;
    r.gm.hmadvise(r.space, Node::Cpu, va, PAGES * 4096, Hint::ReadMostly).expect("advise");
    r.dev.store(&r.gm, r.id, r.asid, va, &[0x77]).expect("store");
    assert_eq!(r.gm.page_info(r.space, va).expect("info").residency, Residency::Device);
    r.dev.inject_failure("pmap_protect", 0, 1);
    // The CPU read wants a read-only duplicate; narrowing fails once, the handler backs
    // off and retries; the reader just sees its data.
    assert_eq!(cpu_read(p, 0), 0x77);
    assert_eq!(r.gm.page_info(r.space, va).expect("info").residency, Residency::Dup);
    assert!(r.gm.counters().hook_errors >= 1);
    assert_eq!(r.dev.stale_tlb_entries(), 0);
}

#[test]
fn prefetch_hint_failure_is_retried_then_typed() {
    let (r, p) = setup(Hooks::all());
    let va = p as u64;
    // One failed copy: the hint tries again, as a replayed device fault would.
    r.dev.inject_failure("copy_batch", 0, 1);
    let got = r.gm.hmadvise(r.space, Node::Device(r.id), va, PAGES * 4096, Hint::Prefetch).expect("retried");
    assert_eq!(got.pages_moved, PAGES);
    assert_eq!(r.gm.counters().dma_retries, PAGES);
    r.gm.hmadvise(r.space, Node::Cpu, va, PAGES * 4096, Hint::DontNeed).expect("back");
    // Copies that keep failing: a typed error, nothing moved.
    r.dev.inject_failure("copy_batch", 0, 100);
    let e = r.gm.hmadvise(r.space, Node::Device(r.id), va, PAGES * 4096, Hint::Prefetch).expect_err("fails");
    assert!(
        matches!(&e, GmemError::Fault(FaultError::Migration { source, .. }) if matches!(**source, MigrateError::Copy { .. })),
        "{e:?}"
    );
    assert_eq!(on_device(&r, va), 0);
    assert_eq!(r.gm.device_pages(r.id), Some((64, 64)));
    r.dev.inject_failure("copy_batch", 0, 0);
    r.gm.hmadvise(r.space, Node::Device(r.id), va, PAGES * 4096, Hint::Prefetch).expect("retry");
    assert_eq!(on_device(&r, va), PAGES);
    assert_data(&r, p);
}

#[test]
fn accessed_bit_failure_does_not_stop_eviction() {
    let r = rig(4);
    let p = r.gm.mmap(r.space, 8 * 4096, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    r.dev.inject_failure("test_and_clear_accessed", 0, 10);
    for pg in 0..8u64 {
        r.dev.store(&r.gm, r.id, r.asid, va + pg * 4096, &[pg as u8]).expect("store");
    }
    for pg in 0..8usize {
        assert_eq!(cpu_read(p, pg * 4096), pg as u8);
    }
    assert!(r.gm.counters().evictions >= 4);
}
