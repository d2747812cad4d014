//! End-to-end basics: CPU writes, device reads and writes, CPU reads back via userfaultfd.

mod common;

use common::*;
use gmem_host::{MapFlags, Residency};

#[test]
fn cpu_device_roundtrip_through_userfaultfd() {
    let r = rig(256);
    assert!(r.gm.uses_userfaultfd());
    let len = 64 * 4096u64;
    let p = r.gm.mmap(r.space, len, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    for i in 0..64 {
        cpu_write(p, i * 4096 + 7, i as u8 + 1);
    }
    let mut buf = [0u8; 1];
    for i in 0..64u64 {
        r.dev.load(&r.gm, r.id, r.asid, va + i * 4096 + 7, &mut buf).expect("load");
        assert_eq!(buf[0], i as u8 + 1);
    }
    let info = r.gm.page_info(r.space, va).expect("info");
    assert_eq!(info.residency, Residency::Device);
    for i in 0..64u64 {
        r.dev.store(&r.gm, r.id, r.asid, va + i * 4096 + 9, &[0xA0 + i as u8]).expect("store");
    }
    for i in 0..64usize {
        assert_eq!(cpu_read(p, i * 4096 + 9), 0xA0 + i as u8);
        assert_eq!(cpu_read(p, i * 4096 + 7), i as u8 + 1);
    }
    assert_eq!(r.gm.page_info(r.space, va).expect("info").residency, Residency::Cpu);
    assert_eq!(r.dev.stale_tlb_entries(), 0);
    // Put half the pages back on the device, then unmap: one batched peer_unmap.
    for i in 0..32u64 {
        r.dev.store(&r.gm, r.id, r.asid, va + i * 4096, &[1]).expect("store");
    }
    r.gm.munmap(r.space, p, len).expect("munmap");
    assert_eq!(r.dev.calls("peer_unmap"), 1);
    assert_eq!(r.gm.device_pages(r.id), Some((256, 256)));
    assert_eq!(r.dev.mappings(r.asid), 0);
}
