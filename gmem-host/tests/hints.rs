//! Hints that move pages are all or nothing and report what they did: a refused frame
//! is swapped for another, a failure that persists puts the range back as it was
//! (residency, device mappings, frames, data), and every hint returns a `HintReport`.

mod common;

use std::sync::Arc;

use common::*;
use gmem_host::inject::{FaultyMmu, Injector, Trigger};
use gmem_host::softdev::{SoftConfig, SoftDevice};
use gmem_host::{
    Asid, Config, DeviceId, FaultError, Gmem, GmemError, Hint, HintReport, MapFlags, MemAddr, MigrateError, Node,
    PageInfo, Prot, Residency, SpaceId,
};

const PAGES: u64 = 16;

/// A manager over a software device wrapped in a fault injector (no 2 MiB mappings, so
/// one page's mapping can fail alone).
struct Faulty {
    gm: Gmem,
    dev: Arc<SoftDevice>,
    inj: Injector,
    id: DeviceId,
    space: SpaceId,
    asid: Asid,
}

fn faulty() -> Faulty {
    faulty_with(Config::default())
}

fn faulty_with(cfg: Config) -> Faulty {
    let gm = Gmem::new(cfg).expect("manager");
    let dev = Arc::new(SoftDevice::new(SoftConfig { mem_bytes: 64 * 4096, huge_pages: false, ..Default::default() }));
    let inj = Injector::new(1);
    let id = gm.register_device(Arc::new(FaultyMmu::new(dev.clone(), inj.clone()))).expect("register");
    let space = gm.create_space();
    let asid = gm.attach(space, id).expect("attach");
    Faulty { gm, dev, inj, id, space, asid }
}

/// Everything a hint could change about the range: the manager's view of each page, the
/// device's translation of it, and the device's free frames.
type View = (Vec<PageInfo>, Vec<Option<(MemAddr, Prot)>>, Option<(u64, u64)>);

fn view(f: &Faulty, va: u64) -> View {
    let pages = (0..PAGES).map(|i| va + i * 4096);
    (
        pages.clone().map(|v| f.gm.page_info(f.space, v).expect("managed")).collect(),
        pages.map(|v| f.dev.translate(f.asid, v)).collect(),
        f.gm.device_pages(f.id),
    )
}

/// Pages 0..4 on the device, 4..12 written by the CPU (6 and 7 read-mostly), 12..16
/// never touched.
fn mixed(f: &Faulty) -> *mut u8 {
    let p = f.gm.mmap(f.space, PAGES * 4096, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    for pg in 0..12 {
        cpu_write(p, (pg * 4096) as usize, 0x30 + pg as u8);
    }
    f.gm.hmadvise(f.space, Node::Device(f.id), va, 4 * 4096, Hint::Prefetch).expect("first four");
    f.gm.hmadvise(f.space, Node::Cpu, va + 6 * 4096, 2 * 4096, Hint::ReadMostly).expect("read-mostly");
    p
}

#[test]
fn a_failing_prefetch_puts_the_range_back_as_it_was() {
    let f = faulty();
    let p = mixed(&f);
    let va = p as u64;
    let before = view(&f, va);
    // The device can never map page 9: every other page of the range moves first.
    f.inj.add("hook:pmap_enter", Trigger::Range { lo: va + 9 * 4096, hi: va + 10 * 4096 }).expect("rule");
    let e = f.gm.hmadvise(f.space, Node::Device(f.id), va, PAGES * 4096, Hint::Prefetch).expect_err("page 9");
    match &e {
        GmemError::Fault(FaultError::Migration { va: at, source }) => {
            assert_eq!(*at, va + 9 * 4096);
            assert!(matches!(**source, MigrateError::Map { .. }), "{source:?}");
        }
        other => panic!("expected page 9's mapping failure, got {other:?}"),
    }
    assert_eq!(view(&f, va), before, "residency, device mappings and free frames as before the hint");
    assert_eq!(f.dev.stale_tlb_entries(), 0);
    // The same hint without the failure moves the 12 pages not yet there.
    f.inj.clear();
    let r = f.gm.hmadvise(f.space, Node::Device(f.id), va, PAGES * 4096, Hint::Prefetch).expect("prefetch");
    assert_eq!(
        r,
        HintReport { pages_moved: 12, bytes_moved: 12 * 4096, already_in_place: 4, ..Default::default() },
        "pages 0..4 were already there"
    );
    for pg in 0..12 {
        assert_eq!(cpu_read(p, (pg * 4096) as usize), 0x30 + pg as u8, "page {pg}");
    }
    assert_eq!(cpu_read(p, 13 * 4096), 0, "an untouched page reads zero");
}

#[test]
fn a_refused_frame_is_swapped_for_another() {
    let f = faulty();
    let p = f.gm.mmap(f.space, PAGES * 4096, MapFlags::PEER_SHARED).expect("mmap");
    for pg in 0..PAGES {
        cpu_write(p, (pg * 4096) as usize, pg as u8 + 1);
    }
    // The device refuses its first free frame for good.
    let (free, _) = f.gm.device_pages(f.id).expect("device");
    assert_eq!(free, 64);
    f.inj.add("hook:alloc_page", Trigger::Range { lo: 0, hi: 4096 }).expect("rule");
    let r = f.gm.hmadvise(f.space, Node::Device(f.id), p as u64, PAGES * 4096, Hint::Prefetch).expect("falls back");
    assert_eq!(r.pages_moved, PAGES);
    for pg in 0..PAGES {
        let info = f.gm.page_info(f.space, p as u64 + pg * 4096).expect("managed");
        assert_eq!(info.residency, Residency::Device, "page {pg}");
        assert_ne!(info.device_pa, Some(0), "the refused frame is never used");
    }
    assert_eq!(f.gm.device_pages(f.id), Some((64 - PAGES, 64)), "the refused frame went back to the allocator");
    for pg in 0..PAGES {
        assert_eq!(cpu_read(p, (pg * 4096) as usize), pg as u8 + 1, "page {pg}");
    }
}

/// One page's residency, holder, mapping rights, remote flag and the device's rights.
type Placement = (Residency, Option<DeviceId>, Prot, bool, Option<Prot>);

/// Where each page is and how the device maps it (frames may differ).
fn placement(f: &Faulty, va: u64) -> Vec<Placement> {
    (0..PAGES)
        .map(|i| {
            let info = f.gm.page_info(f.space, va + i * 4096).expect("managed");
            let mapped = f.dev.translate(f.asid, va + i * 4096).map(|(_, prot)| prot);
            (info.residency, info.device, info.prot, info.remote, mapped)
        })
        .collect()
}

#[test]
fn a_hint_to_the_host_that_fails_midway_puts_the_pages_back_on_the_device() {
    // A 4-page staging pool: the range comes back in rounds. The second round's copy
    // fails (its read duplicates' device copies are dropped: progress, so the hint goes
    // on), and so does the third's (no progress: the hint fails). The rollback's own
    // copies succeed.
    let f = faulty_with(Config { staging_pages: 4, ..Config::default() });
    let p = mixed(&f);
    let va = p as u64;
    f.gm.hmadvise(f.space, Node::Device(f.id), va, PAGES * 4096, Hint::Prefetch).expect("all on the device");
    let before = placement(&f, va);
    let frames = f.gm.device_pages(f.id);
    f.inj.add("hook:copy_batch", Trigger::Count { skip: 1, times: 2 }).expect("rule");
    let e = f.gm.hmadvise(f.space, Node::Cpu, va, PAGES * 4096, Hint::DontNeed).expect_err("copies fail");
    assert!(matches!(e, GmemError::Migrate(MigrateError::Copy { .. })), "{e:?}");
    assert_eq!(f.inj.total(), 2);
    assert_eq!(placement(&f, va), before, "every page back on the device, mapped as before");
    assert_eq!(f.gm.device_pages(f.id), frames, "no frame leaked");
    assert_eq!(f.dev.stale_tlb_entries(), 0);
    let r = f.gm.hmadvise(f.space, Node::Cpu, va, PAGES * 4096, Hint::DontNeed).expect("to the host");
    assert_eq!((r.pages_moved, r.bytes_moved, r.already_in_place), (PAGES, PAGES * 4096, 0));
    for pg in 0..12 {
        assert_eq!(cpu_read(p, (pg * 4096) as usize), 0x30 + pg as u8, "page {pg}");
    }
}

#[test]
fn every_hint_reports_what_it_did() {
    let r = rig(64);
    let p = r.gm.mmap(r.space, 8 * 4096, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    for pg in 0..4 {
        cpu_write(p, (pg * 4096) as usize, 7);
    }
    let dev = Node::Device(r.id);
    // Four pages with data, four never touched: all eight arrive.
    let got = r.gm.hmadvise(r.space, dev, va, 8 * 4096, Hint::Prefetch).expect("prefetch");
    assert_eq!(got, HintReport { pages_moved: 8, bytes_moved: 8 * 4096, ..Default::default() });
    let got = r.gm.hmadvise(r.space, dev, va, 8 * 4096, Hint::Prefetch).expect("again");
    assert_eq!(got, HintReport { already_in_place: 8, ..Default::default() }, "nothing left to move");
    let got = r.gm.hmadvise(r.space, Node::Cpu, va, 2 * 4096, Hint::DontNeed).expect("dontneed");
    assert_eq!(got, HintReport { pages_moved: 2, bytes_moved: 2 * 4096, ..Default::default() });
    let got = r.gm.hmadvise(r.space, Node::Cpu, va, 4 * 4096, Hint::Prefetch).expect("to the host");
    assert_eq!(got, HintReport { pages_moved: 2, bytes_moved: 2 * 4096, already_in_place: 2, ..Default::default() });
    let got = r.gm.hmadvise(r.space, Node::Cpu, va, 8 * 4096, Hint::ReadMostly).expect("attribute");
    assert_eq!(got, HintReport { pages_changed: 8, ..Default::default() });
    // Pages that prefer the CPU are mapped remotely, not moved.
    r.gm.hmadvise(r.space, Node::Cpu, va, 4 * 4096, Hint::PreferredLocation).expect("prefer the CPU");
    let got = r.gm.hmadvise(r.space, dev, va, 4 * 4096, Hint::Prefetch).expect("prefetch");
    assert_eq!(got, HintReport { mapped_remotely: 4, ..Default::default() });
}
