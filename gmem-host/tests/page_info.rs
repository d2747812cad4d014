//! The residency snapshot of a mixed range: protection, untouched and zero pages, huge
//! mappings, and where each device finds a page — read without faulting or migrating.

mod common;

use std::sync::Arc;

use common::*;
use gmem_host::mmu::{RO, RW};
use gmem_host::softdev::{SoftConfig, SoftDevice};
use gmem_host::{Hint, MapFlags, Node, Placement, Prot, Residency};

#[test]
fn a_mixed_range_is_described_without_faulting() {
    let r = rig(1024);
    let other = Arc::new(SoftDevice::new(SoftConfig { mem_bytes: 64 * 4096, ..Default::default() }));
    let b = r.gm.register_device(other.clone()).expect("register");
    let asid_b = r.gm.attach(r.space, b).expect("attach");
    let p = r.gm.mmap(r.space, 8 * 4096, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    let page = |pg: u64| va + pg * 4096;
    for pg in [0, 2, 3, 5, 7] {
        cpu_write(p, (pg * 4096) as usize, 0x80 + pg as u8);
    }
    r.gm.hmadvise(r.space, Node::Device(r.id), page(7), 4096, Hint::AccessedBy).expect("accessed-by");
    let mut byte = [0u8; 1];
    r.dev.store(&r.gm, r.id, r.asid, page(4), &[0x84]).expect("page 4 on this device");
    other.load(&r.gm, b, asid_b, page(5), &mut byte).expect("page 5 on the other device");
    r.dev.load(&r.gm, r.id, r.asid, page(7), &mut byte).expect("page 7 mapped remotely");
    r.gm.mprotect(r.space, page(0), 4096, Prot::empty()).expect("no access");
    r.gm.mprotect(r.space, page(1), 2 * 4096, Prot::READ).expect("read-only");
    assert_eq!(cpu_read(p, 4096), 0, "page 1: read-only zero");

    let before = r.gm.counters();
    let info = |pg: u64| r.gm.page_info(r.space, page(pg)).expect("managed");
    let at = |pg: u64| r.gm.placement(r.space, page(pg), r.id).expect("managed");
    // No access: not mistaken for untouched.
    assert_eq!((info(0).residency, info(0).protection, info(0).zero), (Residency::Cpu, Prot::empty(), false));
    // Read-only zero and read-only data.
    assert_eq!((info(1).residency, info(1).protection), (Residency::Cpu, Prot::READ));
    assert!(info(1).zero, "page 1 maps the zero page");
    assert_eq!((info(2).protection, info(2).zero), (Prot::READ, false));
    // Writable data on the CPU.
    assert_eq!((info(3).residency, info(3).protection, at(3)), (Residency::Cpu, RW, Placement::Host));
    // On this device, on the other one, never touched, mapped remotely.
    assert_eq!(at(4), Placement::Local { prot: RW, huge: false });
    assert_eq!(r.gm.placement(r.space, page(4), b), Some(Placement::OtherDevice(r.id)));
    assert_eq!(at(5), Placement::OtherDevice(b));
    assert_eq!((info(6).residency, info(6).zero, at(6)), (Residency::Unpopulated, true, Placement::Untouched));
    assert_eq!(at(7), Placement::Remote { prot: RW });
    assert_eq!(r.gm.placement(r.space, page(7), b), Some(Placement::Host));
    // A hole between regions has no entry.
    assert_eq!(r.gm.page_info(r.space, page(8)), None);
    assert_eq!(r.gm.placement(r.space, page(8), r.id), None);
    // Looking moved nothing and faulted nothing.
    let after = r.gm.counters();
    assert_eq!(
        (after.faults, after.cpu_faults, after.pages_h2d, after.pages_d2h),
        (before.faults, before.cpu_faults, before.pages_h2d, before.pages_d2h)
    );
    assert_eq!(info(5).residency, Residency::Device);
    assert_eq!(cpu_read(p, 5 * 4096), 0x85);
}

#[test]
fn a_huge_mapping_and_a_read_duplicate_are_shown_per_device() {
    let r = rig(2048);
    let len = 2u64 << 20;
    let p = r.gm.mmap(r.space, len, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    r.gm.hmadvise(r.space, Node::Device(r.id), va, len, Hint::Prefetch).expect("prefetch");
    assert_eq!(r.gm.placement(r.space, va + 4096, r.id), Some(Placement::Local { prot: RW, huge: true }));
    assert!(r.gm.page_info(r.space, va).expect("managed").huge);
    let q = r.gm.mmap(r.space, 4096, MapFlags::PEER_SHARED).expect("mmap");
    cpu_write(q, 0, 3);
    r.gm.hmadvise(r.space, Node::Cpu, q as u64, 4096, Hint::ReadMostly).expect("read-mostly");
    let mut byte = [0u8; 1];
    r.dev.load(&r.gm, r.id, r.asid, q as u64, &mut byte).expect("duplicated");
    let info = r.gm.page_info(r.space, q as u64).expect("managed");
    assert_eq!(info.residency, Residency::Dup);
    assert_eq!(r.gm.placement(r.space, q as u64, r.id), Some(Placement::Local { prot: RO, huge: false }));
}
