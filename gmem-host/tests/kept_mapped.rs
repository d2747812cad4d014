//! `dma_map_host`'s contract seen from the process's address space: memory a device
//! still holds for DMA stays mapped, memory it released is unmapped. A test binary of its
//! own: it reads `/proc/self/maps`, so no other test may map or unmap memory meanwhile
//! (tests of one binary run as threads of one process, and an address the manager
//! unmapped may be handed to another test's mmap at once).

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

mod common;

use common::*;
use gmem_host::softdev::SoftConfig;
use gmem_host::{Config, Hooks, MapFlags};

const PAGES: u64 = 8;

/// True if `va` lies in a mapping of this process (`/proc/self/maps`).
fn mapped(va: u64) -> bool {
    std::fs::read_to_string("/proc/self/maps").expect("maps").lines().any(|l| {
        let range = l.split_whitespace().next().unwrap_or("");
        let (lo, hi) = range.split_once('-').unwrap_or(("0", "0"));
        let (lo, hi) = (u64::from_str_radix(lo, 16).unwrap_or(0), u64::from_str_radix(hi, 16).unwrap_or(0));
        (lo..hi).contains(&va)
    })
}

#[test]
fn memory_a_device_kept_mapped_for_dma_is_never_unmapped() {
    // dma_map_host's contract: the region stays mapped until the device let go of it.
    // Here it never does (every dma_unmap_host attempt at detach fails).
    let r = rig_with(Config::default(), SoftConfig { mem_bytes: 64 * 4096, hooks: Hooks::all(), ..Default::default() });
    let p = r.gm.mmap(r.space, PAGES * 4096, MapFlags::PEER_SHARED).expect("mmap");
    for pg in 0..PAGES {
        cpu_write(p, (pg * 4096) as usize, 0x40 + pg as u8);
    }
    let va = p as u64;
    r.dev.inject_failure("dma_unmap_host", 0, u32::MAX);
    r.gm.detach(r.space, r.id).expect("detach");
    r.gm.munmap(r.space, p, PAGES * 4096).expect("munmap");
    assert!(mapped(va), "the device may still DMA there: the memory must stay mapped");
    // A region the device released is unmapped as usual.
    let r2 =
        rig_with(Config::default(), SoftConfig { mem_bytes: 64 * 4096, hooks: Hooks::all(), ..Default::default() });
    let q = r2.gm.mmap(r2.space, 4096, MapFlags::PEER_SHARED).expect("mmap");
    r2.gm.munmap(r2.space, q, 4096).expect("munmap");
    assert!(!mapped(q as u64));
}
