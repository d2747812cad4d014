//! Hints and policies: read duplication, remote mapping, thrashing, prefetch and huge
//! mappings, DONTNEED/PREFETCH, invalidation coalescing, and the sequence-number retry.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use gmem_host::softdev::SoftConfig;
use gmem_host::{Access, Config, DeviceFault, Hint, Hooks, MapFlags, Node, Residency, ThrashConfig};

fn resident(va: u64) -> bool {
    let mut v = 0u8;
    // SAFETY: `va` is a page of a live mapping; mincore only reads residency.
    let rc = unsafe { libc::mincore(va as *mut libc::c_void, 4096, &mut v) };
    assert_eq!(rc, 0);
    v & 1 == 1
}

#[test]
fn read_mostly_duplicates_and_writes_collapse() {
    let r = rig(64);
    let p = r.gm.mmap(r.space, 4 * 4096, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    r.gm.hmadvise(r.space, Node::Cpu, va, 4 * 4096, Hint::ReadMostly).expect("advise");
    cpu_write(p, 0, 11);
    let mut b = [0u8; 1];
    r.dev.load(&r.gm, r.id, r.asid, va, &mut b).expect("load");
    assert_eq!(b[0], 11);
    let i = r.gm.page_info(r.space, va).expect("info");
    assert_eq!((i.residency, i.prot), (Residency::Dup, gmem_host::mmu::RO));
    let faults = r.gm.counters().cpu_faults;
    assert_eq!(cpu_read(p, 0), 11);
    assert_eq!(r.gm.counters().cpu_faults, faults, "a duplicated page reads without faulting");
    // CPU write collapses to the CPU.
    cpu_write(p, 0, 12);
    let i = r.gm.page_info(r.space, va).expect("info");
    assert_eq!(i.residency, Residency::Cpu);
    assert!(r.dev.translate(r.asid, va).is_none());
    // Duplicate again, then a device write collapses to the device.
    r.dev.load(&r.gm, r.id, r.asid, va, &mut b).expect("load");
    assert_eq!(b[0], 12);
    r.dev.store(&r.gm, r.id, r.asid, va, &[13]).expect("store");
    let i = r.gm.page_info(r.space, va).expect("info");
    assert_eq!((i.residency, i.prot), (Residency::Device, gmem_host::mmu::RW));
    assert!(!resident(va), "CPU copy dropped");
    // A CPU read brings it back as a duplicate (read-mostly), data intact.
    assert_eq!(cpu_read(p, 0), 13);
    assert_eq!(r.gm.page_info(r.space, va).expect("info").residency, Residency::Dup);
    assert!(r.gm.counters().collapses >= 2);
    assert_eq!(r.dev.stale_tlb_entries(), 0);
}

#[test]
fn accessed_by_and_preferred_cpu_map_remotely() {
    for hint in [Hint::AccessedBy, Hint::PreferredLocation] {
        let r = rig(64);
        let p = r.gm.mmap(r.space, 2 * 4096, MapFlags::PEER_SHARED).expect("mmap");
        let va = p as u64;
        let node = if hint == Hint::AccessedBy { Node::Device(r.id) } else { Node::Cpu };
        r.gm.hmadvise(r.space, node, va, 2 * 4096, hint).expect("advise");
        cpu_write(p, 5, 77);
        let mut b = [0u8; 1];
        r.dev.load(&r.gm, r.id, r.asid, va + 5, &mut b).expect("load");
        assert_eq!(b[0], 77);
        let i = r.gm.page_info(r.space, va).expect("info");
        assert!(i.remote && i.residency == Residency::Cpu, "{hint:?}: {i:?}");
        r.dev.store(&r.gm, r.id, r.asid, va + 6, &[78]).expect("store");
        let faults = r.gm.counters().cpu_faults;
        assert_eq!(cpu_read(p, 6), 78, "device store visible in place");
        assert_eq!(r.gm.counters().cpu_faults, faults);
        assert_eq!(r.gm.counters().pages_h2d, 0);
        // Untouched page: zero-filled on the CPU, then mapped remotely.
        r.dev.load(&r.gm, r.id, r.asid, va + 4096, &mut b).expect("load");
        assert_eq!(b[0], 0);
        assert!(r.gm.page_info(r.space, va + 4096).expect("info").remote);
        r.gm.munmap(r.space, p, 2 * 4096).expect("munmap");
        assert_eq!(r.dev.mappings(r.asid), 0);
    }
}

/// A manager on a fake clock with UVM's thrashing parameters, one page of `PEER_SHARED`
/// memory the CPU wrote, and a software device declaring `hooks`.
fn thrash_rig(hooks: Hooks) -> (Rig, Arc<AtomicU64>, *mut u8) {
    let now = Arc::new(AtomicU64::new(0));
    let c = now.clone();
    let cfg = Config {
        clock: Arc::new(move || c.load(Ordering::Relaxed)),
        thrash: ThrashConfig {
            window_ns: 500_000,
            throttle_ns: 1_000_000,
            unpin_after_ns: 100_000_000,
            ..Default::default()
        },
        ..Default::default()
    };
    let r = rig_with(cfg, SoftConfig { mem_bytes: 64 * 4096, hooks, ..Default::default() });
    let p = r.gm.mmap(r.space, 4096, MapFlags::PEER_SHARED).expect("mmap");
    cpu_write(p, 0, 1);
    (r, now, p)
}

fn dev_write(r: &Rig, va: u64) -> bool {
    r.gm.dev_fault(r.id, &[DeviceFault { asid: r.asid, va, access: Access::Write, tag: 0 }])[0].is_retry()
}

#[test]
fn thrashing_pins_at_first_detection_on_a_device_that_maps_host_memory() {
    let (r, now, p) = thrash_rig(Hooks::all());
    let va = p as u64;
    let at = |t: u64| now.store(t, Ordering::Relaxed);
    let state = || r.gm.page_info(r.space, va).expect("info");
    at(0);
    assert!(dev_write(&r, va)); // first placement: not a bounce
    assert_eq!(state().residency, Residency::Device);
    at(5_000);
    cpu_write(p, 0, 2); // bounce 1 (CPU takes it back)
    at(10_000);
    assert!(dev_write(&r, va)); // bounce 2
    assert_eq!(state().residency, Residency::Device);
    at(15_000);
    cpu_write(p, 0, 3); // bounce 3: detected; the CPU side is never delayed
    assert_eq!(r.gm.counters().pins, 1);
    at(20_000);
    assert!(dev_write(&r, va));
    let s = state();
    assert!(s.pinned && s.remote && s.residency == Residency::Cpu, "{s:?}");
    assert_eq!(r.gm.counters().throttled, 0, "no throttle when the page can be shared in place");
    // Pinned: device and CPU share the page in place, no more migrations.
    let h2d = r.gm.counters().pages_h2d;
    r.dev.store(&r.gm, r.id, r.asid, va, &[9]).expect("store");
    assert_eq!(cpu_read(p, 0), 9);
    assert_eq!(r.gm.counters().pages_h2d, h2d);
    // Quiet for the unpin period: maintenance unpins and drops the remote mapping.
    at(200_000_000);
    assert_eq!(r.gm.maintenance(), 1);
    let s = state();
    assert!(!s.pinned && !s.remote);
    assert!(r.dev.translate(r.asid, va).is_none());
    r.dev.store(&r.gm, r.id, r.asid, va, &[10]).expect("store");
    assert_eq!(state().residency, Residency::Device);
    assert_eq!(cpu_read(p, 0), 10);
}

#[test]
fn thrashing_throttles_first_on_a_device_without_host_mapping() {
    let (r, now, p) = thrash_rig(Hooks::all() - Hooks::HOST_MAPPING);
    let va = p as u64;
    let at = |t: u64| now.store(t, Ordering::Relaxed);
    let state = || r.gm.page_info(r.space, va).expect("info");
    at(0);
    assert!(dev_write(&r, va));
    at(5_000);
    cpu_write(p, 0, 2); // bounce 1
    at(10_000);
    assert!(dev_write(&r, va)); // bounce 2
    at(15_000);
    cpu_write(p, 0, 2); // bounce 3: detected
    at(20_000);
    assert!(dev_write(&r, va)); // throttled: the device is told to retry
    assert_eq!(state().residency, Residency::Cpu);
    at(30_000);
    dev_write(&r, va);
    assert_eq!(state().residency, Residency::Cpu, "still throttled");
    assert!(r.gm.counters().throttled >= 2);
    at(2_000_000);
    dev_write(&r, va);
    assert_eq!(state().residency, Residency::Device, "throttle over");
    at(2_010_000);
    assert_eq!(cpu_read(p, 0), 2);
    cpu_write(p, 0, 3);
    at(2_020_000);
    assert!(dev_write(&r, va)); // second detection: pinned, but it cannot be mapped remotely
    let s = state();
    assert!(s.pinned && !s.remote, "{s:?}");
    assert_eq!(r.gm.counters().pins, 1);
}

#[test]
fn dense_chunk_is_prefetched_and_mapped_huge_then_demoted() {
    let r = rig(2048);
    let len = 4u64 << 20;
    let p = r.gm.mmap(r.space, len, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    assert_eq!(va % (2 << 20), 0, "regions are 2 MiB-aligned");
    for pg in 0..512u64 {
        cpu_write(p, (pg * 4096) as usize, pg as u8 ^ 0x5a);
    }
    // 256 of 512 pages = 50 %: no prefetch.
    let half: Vec<DeviceFault> =
        (0..256).map(|pg| DeviceFault { asid: r.asid, va: va + pg * 4096, access: Access::Read, tag: pg }).collect();
    assert!(r.gm.dev_fault(r.id, &half).iter().all(|x| x.is_retry()));
    assert_eq!(r.gm.counters().prefetched, 0);
    // 44 more (> 51 %): the rest of the chunk comes along.
    let more: Vec<DeviceFault> =
        (256..300).map(|pg| DeviceFault { asid: r.asid, va: va + pg * 4096, access: Access::Read, tag: pg }).collect();
    assert!(r.gm.dev_fault(r.id, &more).iter().all(|x| x.is_retry()));
    assert_eq!(r.gm.counters().prefetched, 212);
    for pg in 0..512u64 {
        let mut b = [0u8; 1];
        r.dev.load(&r.gm, r.id, r.asid, va + pg * 4096, &mut b).expect("load");
        assert_eq!(b[0], pg as u8 ^ 0x5a);
    }
    // A chunk brought in whole by one fault batch gets a single 2 MiB mapping.
    let q = r.gm.mmap(r.space, 2 << 20, MapFlags::PEER_SHARED).expect("mmap");
    let qa = q as u64;
    let all: Vec<DeviceFault> =
        (0..512).map(|pg| DeviceFault { asid: r.asid, va: qa + pg * 4096, access: Access::Write, tag: pg }).collect();
    let mappings = r.dev.mappings(r.asid);
    assert!(r.gm.dev_fault(r.id, &all).iter().all(|x| x.is_retry()));
    assert_eq!(r.gm.counters().huge_maps, 1);
    assert_eq!(r.dev.mappings(r.asid), mappings + 1);
    assert!(r.gm.page_info(r.space, qa).expect("info").huge);
    r.dev.store(&r.gm, r.id, r.asid, qa + 7 * 4096, &[42]).expect("store");
    // CPU touch of one page demotes the 2 MiB mapping into base mappings; the touched
    // page and the fault-ahead window behind it (15 pages by default) come back.
    assert_eq!(cpu_read(q, 7 * 4096), 42);
    assert!(!r.gm.page_info(r.space, qa).expect("info").huge);
    let ahead = Config::default().cpu_fault_ahead;
    assert_eq!(r.dev.mappings(r.asid), mappings + 511 - ahead);
    assert_eq!(r.gm.page_info(r.space, qa + (8 + ahead as u64) * 4096).expect("info").residency, Residency::Device);
    assert_eq!(r.gm.page_info(r.space, qa + (7 + ahead as u64) * 4096).expect("info").residency, Residency::Cpu);
    let mut b = [1u8; 1];
    r.dev.load(&r.gm, r.id, r.asid, qa + 8 * 4096, &mut b).expect("load");
    assert_eq!(b[0], 0);
    assert_eq!(r.dev.stale_tlb_entries(), 0);
    r.gm.munmap(r.space, q, 2 << 20).expect("munmap");
    r.gm.munmap(r.space, p, len).expect("munmap");
    assert_eq!(r.gm.device_pages(r.id), Some((2048, 2048)));
}

#[test]
fn prefetch_and_dontneed_hints_with_coalesced_invalidation() {
    let r = rig(256);
    let n = 64u64;
    let p = prefetched(&r, n);
    let va = p as u64;
    for pg in 0..n {
        assert_eq!(r.gm.page_info(r.space, va + pg * 4096).expect("info").residency, Residency::Device);
    }
    assert_eq!(r.gm.counters().advised_prefetch, n);
    let calls = r.dev.calls("tlb_invl_coalesced");
    let before = r.gm.counters();
    r.gm.hmadvise(r.space, Node::Cpu, va, n * 4096, Hint::DontNeed).expect("dontneed");
    let after = r.gm.counters();
    assert_eq!(r.dev.calls("tlb_invl_coalesced") - calls, 1, "one invalidation call");
    assert_eq!(after.tlb_ranges - before.tlb_ranges, 1, "64 pages coalesced into one range");
    assert_eq!(after.tlb_tokens - before.tlb_tokens, n);
    for pg in 0..n {
        assert_eq!(r.gm.page_info(r.space, va + pg * 4096).expect("info").residency, Residency::Cpu);
        assert_eq!(cpu_read(p, (pg * 4096) as usize), pg as u8);
    }
    assert_eq!(r.gm.device_pages(r.id), Some((256, 256)));
}

#[test]
fn cpu_write_during_copy_rolls_back_and_retries() {
    let r = Arc::new(rig(64));
    let p = r.gm.mmap(r.space, 4096, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    cpu_write(p, 0, 1);
    let addr = p as usize;
    // While the device copies the page out, the CPU writes it: the write-protect fault
    // invalidates the migration (sequence bump), the commit rolls back and retries.
    r.dev.on_next_copy(Box::new(move || cpu_write(addr as *mut u8, 0, 2)));
    let res = r.gm.dev_fault(r.id, &[DeviceFault { asid: r.asid, va, access: Access::Read, tag: 0 }]);
    assert!(res[0].is_retry());
    assert_eq!(r.gm.counters().seq_retries, 1);
    let mut b = [0u8; 1];
    r.dev.load(&r.gm, r.id, r.asid, va, &mut b).expect("load");
    assert_eq!(b[0], 2, "the CPU's racing write is not lost");
    assert_eq!(r.gm.page_info(r.space, va).expect("info").residency, Residency::Device);
    assert_eq!(cpu_read(p, 0), 2);
}

#[test]
fn manual_mode_without_userfaultfd() {
    let r = manual_rig(64);
    assert!(!r.gm.uses_userfaultfd());
    let p = r.gm.mmap(r.space, 4 * 4096, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    r.gm.cpu_access(va, 4096, true).expect("access");
    cpu_write(p, 0, 5);
    r.dev.store(&r.gm, r.id, r.asid, va + 1, &[6]).expect("store");
    assert_eq!(r.gm.page_info(r.space, va).expect("info").residency, Residency::Device);
    r.gm.cpu_access(va, 2, false).expect("access");
    assert_eq!((cpu_read(p, 0), cpu_read(p, 1)), (5, 6));
}

#[test]
fn prefetching_a_read_mostly_range_duplicates_it() {
    let r = rig(64);
    let p = r.gm.mmap(r.space, 4 * 4096, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    for pg in 0..4usize {
        cpu_write(p, pg * 4096, pg as u8 + 1);
    }
    r.gm.hmadvise(r.space, Node::Cpu, va, 4 * 4096, Hint::ReadMostly).expect("advise");
    r.gm.hmadvise(r.space, Node::Device(r.id), va, 4 * 4096, Hint::Prefetch).expect("prefetch");
    for pg in 0..4u64 {
        assert_eq!(r.gm.page_info(r.space, va + pg * 4096).expect("info").residency, Residency::Dup);
        assert!(resident(va + pg * 4096), "CPU copy kept");
    }
    let faults = r.gm.counters().faults;
    let mut b = [0u8; 1];
    r.dev.load(&r.gm, r.id, r.asid, va + 2 * 4096, &mut b).expect("load");
    assert_eq!((b[0], r.gm.counters().faults), (3, faults), "device reads its copy without faulting");
}

/// A region of `n` pages the CPU wrote (byte 0 of page `pg` is `pg as u8`), then
/// prefetched to the device.
fn prefetched(r: &Rig, n: u64) -> *mut u8 {
    let p = r.gm.mmap(r.space, n * 4096, MapFlags::PEER_SHARED).expect("mmap");
    for pg in 0..n {
        cpu_write(p, (pg * 4096) as usize, pg as u8);
    }
    r.gm.hmadvise(r.space, Node::Device(r.id), p as u64, n * 4096, Hint::Prefetch).expect("prefetch");
    p
}

/// Where the pages of a 256-page region are after the CPU read the pages `reads` in
/// turn, the region having been prefetched to the device: the first page left on the
/// device after each read's window.
fn cpu_windows(cfg: Config, reads: &[u64]) -> Vec<u64> {
    let r = rig_with(cfg, SoftConfig { mem_bytes: 1024 * 4096, ..Default::default() });
    let n = 256u64;
    let p = prefetched(&r, n);
    let va = p as u64;
    let on_device = |pg: u64| r.gm.page_info(r.space, va + pg * 4096).expect("info").residency == Residency::Device;
    reads
        .iter()
        .map(|&pg| {
            assert!(on_device(pg), "page {pg} still on the device");
            assert_eq!(cpu_read(p, (pg * 4096) as usize), pg as u8, "page {pg} back with its data");
            (pg..n).find(|&q| on_device(q)).unwrap_or(n)
        })
        .collect()
}

#[test]
fn sequential_cpu_faults_double_their_window_up_to_the_maximum() {
    let ramp = Config { cpu_fault_ahead_max: 64, ..Config::default() };
    // Windows of 16, 32, 64, 64, then what is left; a fault elsewhere starts again at 16.
    assert_eq!(cpu_windows(ramp.clone(), &[0, 16, 48, 112, 176, 240]), [16, 48, 112, 176, 240, 256]);
    assert_eq!(cpu_windows(ramp.clone(), &[0, 16, 100, 116]), [16, 48, 116, 148]);
    // The default keeps the window at 16 pages, as does a `cpu_fault_ahead` of 0 at 1.
    assert_eq!(cpu_windows(Config::default(), &[0, 16, 32]), [16, 32, 48]);
    assert_eq!(cpu_windows(Config { cpu_fault_ahead: 0, ..ramp.clone() }, &[0, 1, 2]), [1, 2, 3]);
    // At most half the staging pool.
    let small_pool = Config { staging_pages: 64, cpu_fault_ahead_max: 256, ..Config::default() };
    assert_eq!(cpu_windows(small_pool, &[0, 16, 48, 80]), [16, 48, 80, 112]);
}
