//! Several devices, eviction order, metadata budgets, and space teardown.

mod common;

use std::sync::Arc;

use common::*;
use gmem_host::softdev::{SoftConfig, SoftDevice};
use gmem_host::{Access, Config, DeviceFault, Gmem, GmemError, Hint, MapFlags, Node, Residency};

#[test]
fn two_devices_share_a_space() {
    let gm = Gmem::new(Config::default()).expect("gm");
    let d0 = Arc::new(SoftDevice::new(SoftConfig { mem_bytes: 64 * 4096, ..Default::default() }));
    let d1 = Arc::new(SoftDevice::new(SoftConfig { mem_bytes: 64 * 4096, ..Default::default() }));
    let i0 = gm.register_device(d0.clone()).expect("reg");
    let i1 = gm.register_device(d1.clone()).expect("reg");
    let s = gm.create_space();
    let a0 = gm.attach(s, i0).expect("attach");
    let p = gm.mmap(s, 8 * 4096, MapFlags::PEER_SHARED).expect("mmap");
    // Attaching after mmap makes the existing region reachable on the new device.
    let a1 = gm.attach(s, i1).expect("attach");
    let va = p as u64;
    cpu_write(p, 0, 1);
    d0.store(&gm, i0, a0, va, &[2]).expect("store on dev0");
    assert_eq!(gm.page_info(s, va).expect("info").device, Some(i0));
    // dev1 faults: the page goes dev0 -> host -> dev1; dev0's mapping is gone.
    let mut b = [0u8; 1];
    d1.load(&gm, i1, a1, va, &mut b).expect("load on dev1");
    assert_eq!(b[0], 2);
    assert_eq!(gm.page_info(s, va).expect("info").device, Some(i1));
    assert!(d0.translate(a0, va).is_none());
    assert_eq!(d0.stale_tlb_entries(), 0);
    d1.store(&gm, i1, a1, va, &[3]).expect("store on dev1");
    d0.load(&gm, i0, a0, va, &mut b).expect("load on dev0");
    assert_eq!(b[0], 3);
    assert_eq!(cpu_read(p, 0), 3);
    // Hints naming a device: DONTNEED on dev1 only touches dev1's pages.
    d1.store(&gm, i1, a1, va + 4096, &[4]).expect("store");
    d0.store(&gm, i0, a0, va + 2 * 4096, &[5]).expect("store");
    gm.hmadvise(s, Node::Device(i1), va, 8 * 4096, Hint::DontNeed).expect("dontneed");
    assert_eq!(gm.page_info(s, va + 4096).expect("info").residency, Residency::Cpu);
    assert_eq!(gm.page_info(s, va + 2 * 4096).expect("info").device, Some(i0));
    gm.destroy_space(s).expect("destroy");
    assert_eq!(gm.device_pages(i0), Some((64, 64)));
    assert_eq!(gm.device_pages(i1), Some((64, 64)));
    assert_eq!(d0.mappings(a0), 0);
    assert!(matches!(gm.destroy_space(s), Err(GmemError::UnknownSpace(_))));
    assert_eq!(d0.calls("pmap_destroy"), 1);
}

#[test]
fn eviction_gives_accessed_pages_a_second_chance() {
    let r = rig(4);
    let p = r.gm.mmap(r.space, 8 * 4096, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    for pg in 0..4u64 {
        r.dev.store(&r.gm, r.id, r.asid, va + pg * 4096, &[pg as u8]).expect("store");
    }
    // Page 4 needs a frame: every bit is set (the faulting accesses), so the scan clears
    // them and the oldest, page 0, goes.
    r.dev.store(&r.gm, r.id, r.asid, va + 4 * 4096, &[4]).expect("store page 4");
    assert_eq!(r.gm.page_info(r.space, va).expect("info").residency, Residency::Cpu);
    // Page 1 is now the oldest fault, but the device keeps using it (TLB hits, no
    // faults): only its accessed bit says so.
    let faults = r.gm.counters().faults;
    let mut b = [0u8; 1];
    r.dev.load(&r.gm, r.id, r.asid, va + 4096, &mut b).expect("load");
    assert_eq!(r.gm.counters().faults, faults, "no fault: the LRU did not see this use");
    r.dev.store(&r.gm, r.id, r.asid, va + 5 * 4096, &[5]).expect("store page 5");
    assert_eq!(r.gm.page_info(r.space, va + 4096).expect("info").residency, Residency::Device, "page 1 kept");
    assert_eq!(r.gm.page_info(r.space, va + 2 * 4096).expect("info").residency, Residency::Cpu, "page 2 evicted");
    assert_eq!(cpu_read(p, 2 * 4096), 2);
    assert_eq!(cpu_read(p, 0), 0);
}

#[test]
fn preferred_device_pages_are_evicted_last() {
    let r = rig(4);
    let p = r.gm.mmap(r.space, 8 * 4096, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    r.gm.hmadvise(r.space, Node::Device(r.id), va, 2 * 4096, Hint::PreferredLocation).expect("advise");
    for pg in 0..6u64 {
        let f = DeviceFault { asid: r.asid, va: va + pg * 4096, access: Access::Write, tag: 0 };
        assert!(r.gm.dev_fault(r.id, &[f])[0].is_retry());
    }
    for pg in 0..2u64 {
        assert_eq!(r.gm.page_info(r.space, va + pg * 4096).expect("info").residency, Residency::Device);
    }
}

#[test]
fn metadata_budgets() {
    // <= 16 bytes per tracked page once touched; < 1 MiB for an untouched 1 TiB.
    // Above the 39-bit window the other tests of this process use.
    let cfg = Config { va_base: 1 << 42, ..Default::default() };
    let r = rig_with(cfg, SoftConfig { mem_bytes: 4096 * 4096, va_bits: 47, ..Default::default() });
    let before = r.gm.metadata_bytes(r.space).expect("space");
    let big = r.gm.mmap(r.space, 1 << 40, MapFlags::PEER_SHARED).expect("1 TiB");
    let reserved = r.gm.metadata_bytes(r.space).expect("space") - before;
    assert!(reserved < 1 << 20, "1 TiB reservation costs {reserved} bytes");
    let pages = 4096u64;
    let p = r.gm.mmap(r.space, pages * 4096, MapFlags::PEER_SHARED).expect("mmap");
    let base = r.gm.metadata_bytes(r.space).expect("space");
    let f: Vec<DeviceFault> = (0..pages)
        .map(|pg| DeviceFault { asid: r.asid, va: p as u64 + pg * 4096, access: Access::Write, tag: 0 })
        .collect();
    assert!(r.gm.dev_fault(r.id, &f).iter().all(|x| x.is_retry()));
    let per_page = (r.gm.metadata_bytes(r.space).expect("space") - base) as f64 / pages as f64;
    assert!(per_page <= 16.0, "{per_page} bytes per page");
    // Touching one page of the 1 TiB region costs one chunk, not a table for the region.
    cpu_write(big, 5 << 30, 1);
    let one = r.gm.metadata_bytes(r.space).expect("space");
    r.gm.munmap(r.space, big, 1 << 40).expect("munmap");
    assert!(one - r.gm.metadata_bytes(r.space).expect("space") < 16 << 10);
}

#[test]
fn munmap_waits_for_dma_in_flight() {
    let r = Arc::new(rig(64));
    let p = r.gm.mmap(r.space, 8 * 4096, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    for pg in 0..8usize {
        cpu_write(p, pg * 4096, 1);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    // The copy signals that it started, then takes its time.
    r.dev.on_next_copy(Box::new(move || {
        tx.send(()).expect("send");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }));
    let r2 = r.clone();
    let faulter = std::thread::spawn(move || {
        let f: Vec<DeviceFault> =
            (0..8).map(|pg| DeviceFault { asid: r2.asid, va: va + pg * 4096, access: Access::Read, tag: pg }).collect();
        r2.gm.dev_fault(r2.id, &f)
    });
    rx.recv().expect("copy started");
    let t = std::time::Instant::now();
    r.gm.munmap(r.space, p, 8 * 4096).expect("munmap");
    assert!(t.elapsed() >= std::time::Duration::from_millis(30), "munmap did not wait for the copy");
    let res = faulter.join().expect("faulter");
    assert_eq!(res.len(), 8);
    // Afterwards the range is gone for the device too, and nothing leaked.
    let again = r.gm.dev_fault(r.id, &[DeviceFault { asid: r.asid, va, access: Access::Read, tag: 0 }]);
    assert!(matches!(again[0], gmem_host::FaultResolution::Abort(gmem_host::FaultError::NotManaged { .. })));
    assert_eq!(r.gm.device_pages(r.id), Some((64, 64)));
    assert_eq!(r.dev.mappings(r.asid), 0);
    assert_eq!(r.dev.stale_tlb_entries(), 0);
}

#[test]
fn detach_brings_pages_home_and_keeps_the_space_usable() {
    let gm = Gmem::new(Config::default()).expect("gm");
    let d0 = Arc::new(SoftDevice::new(SoftConfig { mem_bytes: 64 * 4096, ..Default::default() }));
    let d1 = Arc::new(SoftDevice::new(SoftConfig { mem_bytes: 64 * 4096, ..Default::default() }));
    let i0 = gm.register_device(d0.clone()).expect("reg");
    let i1 = gm.register_device(d1.clone()).expect("reg");
    let s = gm.create_space();
    let a0 = gm.attach(s, i0).expect("attach");
    let a1 = gm.attach(s, i1).expect("attach");
    let p = gm.mmap(s, 8 * 4096, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    gm.hmadvise(s, Node::Device(i1), va + 4 * 4096, 4 * 4096, Hint::AccessedBy).expect("advise");
    for pg in 0..4u64 {
        d1.store(&gm, i1, a1, va + pg * 4096, &[pg as u8 + 1]).expect("store");
    }
    d1.store(&gm, i1, a1, va + 5 * 4096, &[9]).expect("remote store");
    d0.store(&gm, i0, a0, va + 6 * 4096, &[6]).expect("store");
    gm.detach(s, i1).expect("detach");
    assert_eq!(gm.device_pages(i1), Some((64, 64)));
    assert_eq!(d1.mappings(a1), 0);
    assert_eq!(d1.calls("pmap_destroy"), 1);
    for pg in 0..4usize {
        assert_eq!(cpu_read(p, pg * 4096), pg as u8 + 1);
    }
    assert_eq!(cpu_read(p, 5 * 4096), 9);
    // dev0 untouched; dev1's ASID is gone.
    assert_eq!(gm.page_info(s, va + 6 * 4096).expect("info").device, Some(i0));
    let res = gm.dev_fault(i1, &[DeviceFault { asid: a1, va, access: Access::Read, tag: 0 }]);
    assert!(matches!(res[0], gmem_host::FaultResolution::Abort(gmem_host::FaultError::UnknownAsid { .. })));
    assert!(matches!(gm.detach(s, i1), Err(GmemError::NotAttached { .. })));
    // Re-attaching works.
    let a1b = gm.attach(s, i1).expect("re-attach");
    let mut b = [0u8; 1];
    d1.load(&gm, i1, a1b, va + 4096, &mut b).expect("load");
    assert_eq!(b[0], 2);
}

#[test]
fn a_device_that_owes_an_invalidation_does_not_stop_another_devices_migrations() {
    let gm = Gmem::new(Config::default()).expect("gm");
    let d0 = Arc::new(SoftDevice::new(SoftConfig { mem_bytes: 64 * 4096, ..Default::default() }));
    let d1 = Arc::new(SoftDevice::new(SoftConfig { mem_bytes: 64 * 4096, ..Default::default() }));
    let i0 = gm.register_device(d0.clone()).expect("reg");
    let i1 = gm.register_device(d1.clone()).expect("reg");
    let s = gm.create_space();
    let (a0, a1) = (gm.attach(s, i0).expect("attach"), gm.attach(s, i1).expect("attach"));
    let p = gm.mmap(s, 8 * 4096, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    d0.store(&gm, i0, a0, va, &[1]).expect("store on dev0");
    // dev0 stops invalidating: the CPU cannot take its page back, and dev0 owes that
    // invalidation from now on.
    d0.inject_failure("tlb_invl_coalesced", 0, 1000);
    assert!(gm.cpu_access(va, 4096, true).is_err());
    assert_eq!(gm.page_info(s, va).expect("info").device, Some(i0), "the data stays on dev0");
    // dev1's pages still move: dev0's debt is not theirs.
    d1.store(&gm, i1, a1, va + 4096, &[2]).expect("store on dev1");
    gm.cpu_access(va + 4096, 4096, true).expect("dev1's page comes back");
    assert_eq!(cpu_read(p, 4096), 2);
    // Once dev0 invalidates again, its debt is paid before its frame is freed.
    d0.inject_failure("tlb_invl_coalesced", 0, 0);
    gm.cpu_access(va, 4096, true).expect("dev0's page comes back");
    assert_eq!((cpu_read(p, 0), d0.stale_tlb_entries()), (1, 0));
    assert_eq!(gm.device_pages(i0), Some((64, 64)));
}
