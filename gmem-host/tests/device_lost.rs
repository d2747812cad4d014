//! A device declared lost (`Gmem::device_lost`): read-duplicated pages fall back to their
//! CPU copy, pages only the device held are reported and become SIGBUS pages, remote
//! mappings are forgotten, the device is never called again, and the CPU and other
//! devices carry on.

mod common;

use std::sync::Arc;

use common::*;
use gmem_host::softdev::{SoftConfig, SoftDevice, SoftError};
use gmem_host::{
    Access, DeviceFault, FaultError, FaultResolution, GmemError, Hint, LostRange, MapFlags, MigrateError, Node,
    Residency,
};

const PAGES: u64 = 8;
const LEN: u64 = PAGES * 4096;

const HOOKS: [&str; 18] = [
    "alloc_page",
    "copy_batch",
    "dma_map_host",
    "dma_unmap_host",
    "peer_map",
    "peer_unmap",
    "peer_va_alloc_fixed",
    "peer_va_free",
    "pmap_create",
    "pmap_destroy",
    "pmap_enter",
    "pmap_protect",
    "pmap_release",
    "prepare_page",
    "test_and_clear_accessed",
    "tlb_invl",
    "tlb_invl_coalesced",
    "free_page",
];

fn hook_calls(dev: &SoftDevice) -> Vec<u64> {
    HOOKS.iter().map(|h| dev.calls(h)).collect()
}

fn fill(p: *mut u8, seed: u8) {
    for pg in 0..PAGES as usize {
        cpu_write(p, pg * 4096, seed + pg as u8);
        cpu_write(p, pg * 4096 + 4095, !(seed + pg as u8));
    }
}

fn assert_filled(p: *mut u8, seed: u8) {
    for pg in 0..PAGES as usize {
        assert_eq!(cpu_read(p, pg * 4096), seed + pg as u8, "page {pg}");
        assert_eq!(cpu_read(p, pg * 4096 + 4095), !(seed + pg as u8), "page {pg} last byte");
    }
}

fn touch(r: &Rig, p: *mut u8, access: Access) {
    let faults: Vec<DeviceFault> =
        (0..PAGES).map(|i| DeviceFault { asid: r.asid, va: p as u64 + i * 4096, access, tag: i }).collect();
    assert!(r.gm.dev_fault(r.id, &faults).iter().all(|x| x.is_retry()));
}

#[test]
fn a_lost_device_keeps_every_page_defined_and_is_never_called_again() {
    let r = rig(256);
    let map = || r.gm.mmap(r.space, LEN, MapFlags::PEER_SHARED).expect("mmap");
    let (dup, only, remote, cpu) = (map(), map(), map(), map());
    for (p, seed) in [(dup, 0x10), (only, 0x30), (remote, 0x50), (cpu, 0x70)] {
        fill(p, seed);
    }
    let dev = Node::Device(r.id);
    r.gm.hmadvise(r.space, dev, dup as u64, LEN, Hint::ReadMostly).expect("read-mostly");
    r.gm.hmadvise(r.space, dev, remote as u64, LEN, Hint::AccessedBy).expect("accessed-by");
    r.gm.hmadvise(r.space, dev, remote as u64, LEN, Hint::PreferredLocation).expect("preferred");
    r.gm.hmadvise(r.space, Node::Cpu, remote as u64, LEN, Hint::PreferredLocation).expect("preferred cpu");
    touch(&r, dup, Access::Read);
    touch(&r, only, Access::Write);
    touch(&r, remote, Access::Read);
    let info = |p: *mut u8, i: u64| r.gm.page_info(r.space, p as u64 + i * 4096).expect("managed");
    assert_eq!(info(dup, 0).residency, Residency::Dup);
    assert_eq!(info(only, 0).residency, Residency::Device);
    assert!(info(remote, 0).remote, "{:?}", info(remote, 0));

    let before = hook_calls(&r.dev);
    let rep = r.gm.device_lost(r.id).expect("device_lost");
    assert_eq!(rep.recovered_pages, PAGES);
    assert_eq!(rep.lost_pages, PAGES);
    assert_eq!(rep.remote_dropped, PAGES);
    assert_eq!(rep.lost, [LostRange { space: r.space, va: only as u64, len: LEN }]);
    let c = r.gm.counters();
    assert_eq!((c.devices_lost, c.pages_lost, c.pages_recovered), (1, PAGES, PAGES));

    // Recovered duplicates are plain writable CPU pages with their data.
    for i in 0..PAGES {
        let pi = info(dup, i);
        assert_eq!((pi.residency, pi.device, pi.poisoned), (Residency::Cpu, None, false), "{pi:?}");
        assert!(!info(remote, i).remote);
        let lost = info(only, i);
        assert!(lost.poisoned && lost.residency == Residency::Device, "{lost:?}");
    }
    assert_filled(dup, 0x10);
    assert_filled(remote, 0x50);
    assert_filled(cpu, 0x70);
    cpu_write(dup, 17, 0xee);
    assert_eq!(cpu_read(dup, 17), 0xee, "the recovered copy is writable");
    // The lost range refuses CPU access, typed and naming the page.
    let e = r.gm.cpu_access(only as u64 + 4096, 1, false).unwrap_err();
    assert!(matches!(e, GmemError::Poisoned { va, .. } if va == only as u64 + 4096), "{e:?}");

    // Everything naming the device is refused; nothing reaches it.
    let va = cpu as u64 + 8;
    let res = r.gm.dev_fault(r.id, &[DeviceFault { asid: r.asid, va, access: Access::Read, tag: 0 }]);
    assert!(matches!(&res[0], FaultResolution::Abort(FaultError::DeviceLost { va: v, dev: 0 }) if *v == va), "{res:?}");
    let lost = |e: GmemError| matches!(e, GmemError::DeviceLost { dev: 0 });
    assert!(lost(r.gm.hmadvise(r.space, dev, cpu as u64, LEN, Hint::Prefetch).unwrap_err()));
    assert!(lost(r.gm.hmadvise(r.space, dev, cpu as u64, LEN, Hint::AccessedBy).unwrap_err()));
    assert!(lost(r.gm.evict(r.id, 1).unwrap_err()));
    assert!(lost(r.gm.attach(r.gm.create_space(), r.id).unwrap_err()));
    assert!(lost(r.gm.device_lost(r.id).unwrap_err()));
    let e = r.gm.device_lost(gmem_host::DeviceId(9)).unwrap_err();
    assert!(matches!(e, GmemError::UnknownNode(Node::Device(gmem_host::DeviceId(9)))), "{e:?}");

    // Another device carries on with the same space.
    let dev2 = Arc::new(SoftDevice::new(SoftConfig { mem_bytes: 64 * 4096, ..Default::default() }));
    let id2 = r.gm.register_device(dev2.clone()).expect("register");
    let asid2 = r.gm.attach(r.space, id2).expect("attach");
    let mut buf = [0u8; 1];
    dev2.load(&r.gm, id2, asid2, dup as u64 + 17, &mut buf).expect("device 2 reads the recovered page");
    assert_eq!(buf[0], 0xee);
    // A lost page does not move to another device: its fault is aborted, naming it.
    let e = dev2.load(&r.gm, id2, asid2, only as u64, &mut buf).unwrap_err();
    let SoftError::Fault(FaultError::Migration { va, source }) = e else { panic!("{e:?}") };
    assert_eq!(va, only as u64);
    assert!(matches!(*source, MigrateError::Poisoned { va, dev: 0 } if va == only as u64), "{source:?}");

    // Detach and munmap release everything without calling the lost device.
    r.gm.detach(r.space, r.id).expect("detach");
    for p in [dup, only, remote, cpu] {
        r.gm.munmap(r.space, p, LEN).expect("munmap");
    }
    assert_eq!(hook_calls(&r.dev), before, "a lost device is never called");
    let (free, total) = r.gm.device_pages(r.id).expect("slot");
    assert_eq!(free, total, "the lost device's frames are all accounted for");
}
