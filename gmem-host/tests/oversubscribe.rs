//! Device memory a quarter of the working set: every byte stays correct, and a fault
//! batch larger than device memory still completes.

mod common;

use common::*;
use gmem_host::{Access, DeviceFault, MapFlags, Residency};

fn pattern(page: u64, round: u8) -> Vec<u8> {
    (0..4096u64).map(|i| (page.wrapping_mul(31) ^ i.wrapping_mul(7) ^ u64::from(round)) as u8).collect()
}

fn on_device_pages(r: &Rig, va: u64, pages: u64) -> u64 {
    (0..pages)
        .filter(|i| {
            r.gm.page_info(r.space, va + i * 4096)
                .is_some_and(|p| matches!(p.residency, Residency::Device | Residency::Dup))
        })
        .count() as u64
}

#[test]
fn four_times_oversubscribed_every_byte_correct() {
    let dev_pages = 64u64;
    let pages = 4 * dev_pages;
    let r = rig(dev_pages);
    let len = pages * 4096;
    let p = r.gm.mmap(r.space, len, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    // CPU initialises everything.
    for pg in 0..pages {
        let d = pattern(pg, 0);
        for (i, b) in d.iter().enumerate() {
            cpu_write(p, (pg * 4096) as usize + i, *b);
        }
    }
    // Device rewrites every page, reading the old contents first (two passes).
    for round in 1..=2u8 {
        for pg in 0..pages {
            let mut buf = vec![0u8; 4096];
            r.dev.load(&r.gm, r.id, r.asid, va + pg * 4096, &mut buf).expect("load");
            assert_eq!(buf, pattern(pg, round - 1), "page {pg} round {round}");
            r.dev.store(&r.gm, r.id, r.asid, va + pg * 4096, &pattern(pg, round)).expect("store");
            let (free, total) = r.gm.device_pages(r.id).expect("dev");
            assert_eq!(free + on_device_pages(&r, va, pages), total, "accounting after page {pg}");
        }
    }
    assert!(r.gm.counters().evictions >= pages, "{:?}", r.gm.counters());
    // CPU reads everything back (device-resident pages fault back through userfaultfd).
    for pg in 0..pages {
        let want = pattern(pg, 2);
        for (i, b) in want.iter().enumerate() {
            assert_eq!(cpu_read(p, (pg * 4096) as usize + i), *b, "page {pg} byte {i}");
        }
    }
    assert_eq!(r.dev.stale_tlb_entries(), 0);
    r.gm.munmap(r.space, p, len).expect("munmap");
    assert_eq!(r.gm.device_pages(r.id), Some((dev_pages, dev_pages)));
}

#[test]
fn batch_larger_than_device_memory_completes() {
    let dev_pages = 32u64;
    let pages = 4 * dev_pages;
    let r = rig(dev_pages);
    let len = pages * 4096;
    let p = r.gm.mmap(r.space, len, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    for pg in 0..pages {
        cpu_write(p, (pg * 4096) as usize, pg as u8);
    }
    // One batch naming every page twice (duplicates), in reverse order.
    let faults: Vec<DeviceFault> = (0..pages)
        .rev()
        .flat_map(|pg| {
            [Access::Read, Access::Write].map(|access| DeviceFault {
                asid: r.asid,
                va: va + pg * 4096 + 8,
                access,
                tag: pg,
            })
        })
        .collect();
    let res = r.gm.dev_fault(r.id, &faults);
    assert_eq!(res.len(), faults.len());
    assert!(res.iter().all(|x| x.is_retry()), "{res:?}");
    let c = r.gm.counters();
    assert_eq!(c.duplicate_faults, pages);
    // Every page is then reachable, page by page, with its data.
    for pg in 0..pages {
        let mut b = [0u8; 1];
        r.dev.load(&r.gm, r.id, r.asid, va + pg * 4096, &mut b).expect("load");
        assert_eq!(b[0], pg as u8);
    }
    let (free, total) = r.gm.device_pages(r.id).expect("dev");
    assert_eq!(free + on_device_pages(&r, va, pages), total);
    r.gm.munmap(r.space, p, len).expect("munmap");
}

#[test]
fn huge_mapped_chunks_under_pressure() {
    let r = rig(1024); // two 2 MiB blocks of device memory
    let chunks = 4u64;
    let len = chunks * (2 << 20);
    let p = r.gm.mmap(r.space, len, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    for pg in 0..chunks * 512 {
        cpu_write(p, (pg * 4096) as usize + 3, pg as u8 ^ 0x33);
    }
    for round in 0..2u64 {
        for c in 0..chunks {
            let f: Vec<DeviceFault> = (0..512)
                .map(|i| DeviceFault { asid: r.asid, va: va + (c * 512 + i) * 4096, access: Access::Write, tag: i })
                .collect();
            assert!(r.gm.dev_fault(r.id, &f).iter().all(|x| x.is_retry()), "round {round} chunk {c}");
            let mut b = [0u8; 1];
            r.dev.load(&r.gm, r.id, r.asid, va + c * (2 << 20) + 3, &mut b).expect("load");
            assert_eq!(b[0], (c * 512) as u8 ^ 0x33);
            let (free, total) = r.gm.device_pages(r.id).expect("dev");
            assert_eq!(free + on_device_pages(&r, va, chunks * 512), total);
            assert_eq!(r.dev.stale_tlb_entries(), 0);
        }
    }
    assert!(r.gm.counters().huge_maps >= 2, "{:?}", r.gm.counters());
    for pg in 0..chunks * 512 {
        assert_eq!(cpu_read(p, (pg * 4096) as usize + 3), pg as u8 ^ 0x33, "page {pg}");
    }
    r.gm.munmap(r.space, p, len).expect("munmap");
    assert_eq!(r.gm.device_pages(r.id), Some((1024, 1024)));
}
