//! `Gmem::mprotect`: one protection for the CPU and the devices. A device write to
//! read-only memory and any device access to no-access memory are aborted with a typed
//! reason naming the address, nothing moves or is zero-filled, the software device never
//! touches the memory, and CPU access keeps working through userfaultfd.

mod common;

use common::*;
use gmem_host::mmu::RW;
use gmem_host::softdev::SoftError;
use gmem_host::{FaultError, GmemError, Hint, MapFlags, Node, Prot, Residency};

const PAGES: u64 = 8;

fn region(r: &Rig) -> *mut u8 {
    let p = r.gm.mmap(r.space, PAGES * 4096, MapFlags::PEER_SHARED).expect("mmap");
    for pg in 0..PAGES {
        cpu_write(p, (pg * 4096) as usize, 0x50 + pg as u8);
    }
    p
}

fn dev_read(r: &Rig, va: u64) -> Result<u8, SoftError> {
    let mut b = [0u8; 1];
    r.dev.load(&r.gm, r.id, r.asid, va, &mut b).map(|()| b[0])
}

fn dev_write(r: &Rig, va: u64, v: u8) -> Result<(), SoftError> {
    r.dev.store(&r.gm, r.id, r.asid, va, &[v])
}

fn denied(res: Result<impl std::fmt::Debug, SoftError>, at: u64, write: bool, allowed: Prot) {
    match res {
        Err(SoftError::Fault(FaultError::Protection { va, write: w, allowed: a })) => {
            assert_eq!((va, w, a), (at, write, allowed));
        }
        other => panic!("expected a protection abort at {at:#x}, got {other:?}"),
    }
}

#[test]
fn a_device_write_to_read_only_memory_is_aborted_and_changes_nothing() {
    let r = rig(64);
    let p = region(&r);
    let va = p as u64;
    // Page 1 on the device (writable), page 2 on the CPU.
    dev_write(&r, va + 4096, 0x61).expect("device write");
    r.gm.mprotect(r.space, va, PAGES * 4096, Prot::READ).expect("read-only");
    let info = r.gm.page_info(r.space, va + 4096).expect("managed");
    assert_eq!((info.residency, info.prot), (Residency::Device, Prot::READ), "the device mapping narrowed");
    assert_eq!(r.dev.translate(r.asid, va + 4096).map(|(_, prot)| prot), Some(Prot::READ));
    assert_eq!(r.dev.stale_tlb_entries(), 0);
    denied(dev_write(&r, va + 4096 + 9, 1), va + 4096 + 9, true, Prot::READ);
    denied(dev_write(&r, va + 2 * 4096, 1), va + 2 * 4096, true, Prot::READ);
    assert_eq!(r.gm.page_info(r.space, va + 2 * 4096).expect("managed").residency, Residency::Cpu, "nothing moved");
    // Reads work, on the device and on the CPU (the device page comes back through
    // userfaultfd into the read-only mapping).
    assert_eq!(dev_read(&r, va + 3 * 4096).expect("device read"), 0x53);
    assert_eq!(cpu_read(p, 4096), 0x61);
    assert_eq!(cpu_read(p, 2 * 4096), 0x52);
    assert_eq!(r.gm.counters().fault_aborts, 2);
    // Writable again: the device's next write widens its mapping.
    r.gm.mprotect(r.space, va, PAGES * 4096, RW).expect("read-write");
    dev_write(&r, va + 2 * 4096, 0x72).expect("device write");
    assert_eq!(cpu_read(p, 2 * 4096), 0x72);
    cpu_write(p, 5 * 4096, 0x75);
    assert_eq!(dev_read(&r, va + 5 * 4096).expect("device read"), 0x75);
}

#[test]
fn no_access_memory_is_never_moved_zero_filled_or_touched_by_a_device() {
    let r = rig(64);
    let p = r.gm.mmap(r.space, PAGES * 4096, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    cpu_write(p, 0, 0x11); // page 0 on the CPU
    cpu_write(p, 4096, 0x22);
    dev_read(&r, va + 4096).expect("page 1 on the device");
    // pages 2.. never touched
    let free = r.gm.device_pages(r.id);
    r.gm.mprotect(r.space, va, PAGES * 4096, Prot::empty()).expect("no access");
    assert_eq!(r.dev.translate(r.asid, va + 4096), None, "the device mapping is gone");
    for (pg, residency) in [(0, Residency::Cpu), (1, Residency::Device), (2, Residency::Unpopulated)] {
        let at = va + pg * 4096 + 8;
        denied(dev_read(&r, at), at, false, Prot::empty());
        denied(dev_write(&r, at, 1), at, true, Prot::empty());
        assert_eq!(r.gm.page_info(r.space, at).expect("managed").residency, residency, "page {pg}");
    }
    assert_eq!(r.gm.device_pages(r.id), free, "nothing zero-filled or moved");
    // A prefetch hint leaves no-access pages where they are.
    let got = r.gm.hmadvise(r.space, Node::Device(r.id), va, PAGES * 4096, Hint::Prefetch).expect("hint");
    assert_eq!(got.pages_moved, 0);
    // The data survives: eviction brings the device page home into the no-access
    // mapping, and read-write access finds everything.
    assert_eq!(r.gm.evict(r.id, 1).expect("evict"), 1);
    r.gm.mprotect(r.space, va, PAGES * 4096, RW).expect("read-write");
    assert_eq!((cpu_read(p, 0), cpu_read(p, 4096), cpu_read(p, 2 * 4096)), (0x11, 0x22, 0));
    assert_eq!(dev_read(&r, va + 8).expect("device read"), 0);
}

#[test]
fn protection_is_a_range_attribute_split_and_merged() {
    let r = rig(64);
    let p = region(&r);
    let va = p as u64;
    r.gm.hmadvise(r.space, Node::Cpu, va, PAGES * 4096, Hint::ReadMostly).expect("read-mostly");
    r.gm.mprotect(r.space, va + 2 * 4096, 2 * 4096, Prot::READ).expect("read-only");
    r.gm.mprotect(r.space, va + 3 * 4096, 4096, Prot::empty()).expect("no access");
    let prot = |pg: u64| r.gm.range_attrs(r.space, va + pg * 4096).expect("space").prot;
    assert_eq!((prot(1), prot(2), prot(3), prot(4)), (RW, Prot::READ, Prot::empty(), RW));
    assert!(r.gm.range_attrs(r.space, va + 3 * 4096).expect("space").read_mostly, "other attributes kept");
    r.gm.mprotect(r.space, va, PAGES * 4096, RW).expect("read-write");
    assert_eq!((prot(2), prot(3)), (RW, RW));
    // Bad input is typed.
    let e = r.gm.mprotect(r.space, va, 4096, Prot::WRITE).expect_err("write without read");
    assert!(matches!(e, GmemError::BadProt(_)), "{e:?}");
    let e = r.gm.mprotect(r.space, va + PAGES * 4096, 4096, Prot::READ).expect_err("outside");
    assert!(matches!(e, GmemError::NotManaged { .. }), "{e:?}");
}

#[test]
fn a_huge_mapping_is_narrowed_whole_or_split_at_the_range_edge() {
    let r = rig(2048);
    let len = 4u64 << 20;
    let p = r.gm.mmap(r.space, len, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    r.gm.hmadvise(r.space, Node::Device(r.id), va, len, Hint::Prefetch).expect("prefetch");
    assert!(r.gm.page_info(r.space, va).expect("managed").huge);
    // Chunk 0 wholly read-only; chunk 1 read-only in its first half only.
    r.gm.mprotect(r.space, va, (2 << 20) + (1 << 20), Prot::READ).expect("read-only");
    let info = |off: u64| r.gm.page_info(r.space, va + off).expect("managed");
    assert!(info(0).huge && info(0).prot == Prot::READ, "chunk 0 stays one 2 MiB mapping");
    assert!(!info(2 << 20).huge, "chunk 1 was split");
    assert_eq!((info(2 << 20).prot, info(3 << 20).prot), (Prot::READ, RW));
    assert_eq!(r.dev.stale_tlb_entries(), 0);
    denied(dev_write(&r, va + (2 << 20), 1), va + (2 << 20), true, Prot::READ);
    dev_write(&r, va + (3 << 20), 9).expect("the writable half");
}

#[test]
fn pages_coming_back_across_a_protection_boundary_are_installed() {
    // mprotect splits the region's mapping: one CPU fault bringing back pages on both
    // sides of the split cannot install them in one UFFDIO_COPY.
    let r = rig(64);
    let p = r.gm.mmap(r.space, 12 * 4096, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    dev_write(&r, va + 9 * 4096 + 1, 135).expect("page 9 on the device");
    r.gm.mprotect(r.space, va + 10 * 4096, 2 * 4096, Prot::READ).expect("read-only");
    assert_eq!(dev_read(&r, va + 10 * 4096 + 5).expect("page 10 on the device"), 0);
    r.gm.mprotect(r.space, va + 10 * 4096, 2 * 4096, RW).expect("read-write");
    cpu_write(p, 9 * 4096 + 2, 1);
    assert_eq!((cpu_read(p, 9 * 4096 + 1), cpu_read(p, 10 * 4096 + 5)), (135, 0));
    assert_eq!(r.gm.counters().poisoned, 0);
}

#[test]
fn protection_changed_back_and_forth_while_a_device_works() {
    let r = std::sync::Arc::new(rig(64));
    let p = region(&r);
    let va = p as u64;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let worker = {
        let (r, stop) = (r.clone(), stop.clone());
        std::thread::spawn(move || {
            // The device writes its counter to page 3 and reads it back; a refused write
            // leaves the last written value in place.
            // It works until the toggling is over and one write went through after it.
            let (mut written, mut last) = (0u32, 0x53u8);
            let mut after_stop = 0u32;
            for i in 0..u32::MAX {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if after_stop > 0 {
                        break;
                    }
                    after_stop += 1;
                }
                let v = (i % 200) as u8 + 1;
                match dev_write(&r, va + 3 * 4096, v) {
                    Ok(()) => (written, last) = (written + 1, v),
                    Err(e) if after_stop > 0 => panic!("a write after the toggling was refused: {e:?}"),
                    Err(SoftError::Fault(FaultError::Protection { va: at, write: true, .. })) => {
                        assert_eq!(at, va + 3 * 4096);
                    }
                    Err(e) => panic!("unexpected device error {e:?}"),
                }
                assert_eq!(dev_read(&r, va + 3 * 4096).expect("reads always allowed"), last);
            }
            (written, last)
        })
    };
    for i in 0..200 {
        let prot = if i % 2 == 0 { Prot::READ } else { RW };
        r.gm.mprotect(r.space, va, PAGES * 4096, prot).expect("mprotect");
        std::thread::yield_now();
    }
    r.gm.mprotect(r.space, va, PAGES * 4096, RW).expect("read-write");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (written, last) = worker.join().expect("worker");
    assert!(written > 0, "some writes went through ({written}, {last})");
    assert_eq!(cpu_read(p, 3 * 4096), last, "the CPU sees the last accepted write");
    assert_eq!(r.dev.stale_tlb_entries(), 0);
}
