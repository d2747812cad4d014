//! Migration toward the host finishes every page at any size: a hint or DONTNEED over
//! more pages than many rounds of the staging pool leaves nothing on the device.

mod common;

use common::*;
use gmem_host::softdev::SoftConfig;
use gmem_host::{Config, Hint, MapFlags, Node, Residency};

fn on_device(r: &Rig, va: u64, pages: u64) -> u64 {
    (0..pages)
        .filter(|i| r.gm.page_info(r.space, va + i * 4096).is_some_and(|p| p.residency == Residency::Device))
        .count() as u64
}

/// `pages` written by the CPU, prefetched to the device, then sent back with `hint`.
fn round_trip(staging_pages: usize, pages: u64, hint: Hint) {
    let cfg = Config { staging_pages, ..Config::default() };
    let r = rig_with(cfg, SoftConfig { mem_bytes: (pages + 64) * 4096, ..Default::default() });
    let len = pages * 4096;
    let p = r.gm.mmap(r.space, len, MapFlags::PEER_SHARED).expect("mmap");
    for i in 0..pages {
        // SAFETY: one byte of page i of the managed region.
        unsafe { p.add((i * 4096) as usize).write(i as u8 ^ 0x5A) };
    }
    r.gm.hmadvise(r.space, Node::Device(r.id), p as u64, len, Hint::Prefetch).expect("to device");
    assert_eq!(on_device(&r, p as u64, pages), pages);
    r.gm.hmadvise(r.space, Node::Cpu, p as u64, len, hint).expect("to host");
    assert_eq!(
        on_device(&r, p as u64, pages),
        0,
        "{pages} pages, staging pool of {staging_pages}: nothing left behind"
    );
    for i in 0..pages {
        // SAFETY: as above; the page is CPU-resident again.
        assert_eq!(unsafe { p.add((i * 4096) as usize).read() }, i as u8 ^ 0x5A, "page {i}");
    }
    r.gm.detach(r.space, r.id).expect("detach: nothing is busy");
}

#[test]
fn a_one_page_staging_pool_brings_back_65_pages() {
    round_trip(1, 65, Hint::DontNeed);
}

#[test]
fn more_than_64_rounds_of_the_staging_pool_come_back() {
    // 64 rounds of 8 pages were the old limit: 1024 pages is twice that.
    round_trip(8, 1024, Hint::Prefetch);
    round_trip(8, 1024, Hint::DontNeed);
}

#[test]
fn evict_moves_as_many_pages_as_asked_through_a_small_staging_pool() {
    let cfg = Config { staging_pages: 8, ..Config::default() };
    let r = rig_with(cfg, SoftConfig { mem_bytes: 512 * 4096, ..Default::default() });
    let len = 256 * 4096;
    let p = r.gm.mmap(r.space, len, MapFlags::PEER_SHARED).expect("mmap");
    r.gm.hmadvise(r.space, Node::Device(r.id), p as u64, len, Hint::Prefetch).expect("to device");
    assert_eq!(r.gm.evict(r.id, 100).expect("evict"), 100, "100 pages through an 8-page pool");
    assert_eq!(on_device(&r, p as u64, 256), 156);
    assert_eq!(r.gm.evict(r.id, 1000).expect("evict"), 156, "every evictable page, and says how many");
    assert_eq!(on_device(&r, p as u64, 256), 0);
}
