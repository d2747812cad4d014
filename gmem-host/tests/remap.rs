//! Partial munmap (start, middle, end; 2 MiB and 4 KiB device mappings) and mremap
//! (shrink, grow in place, move) keep device mappings, frames, data and attributes
//! consistent: pages on the device keep their data, no frame leaks, no stale TLB entry.

mod common;

use common::*;
use gmem_host::mmu::RW;
use gmem_host::{GmemError, Hint, MapFlags, Node, Prot, Residency};

const MIB: u64 = 1 << 20;

/// Whether `va` is mapped in the process (from `/proc/self/maps`).
fn mapped(va: u64) -> bool {
    std::fs::read_to_string("/proc/self/maps").expect("maps").lines().any(|l| {
        let r = l.split_whitespace().next().expect("range");
        let (a, b) = r.split_once('-').expect("range");
        (u64::from_str_radix(a, 16).expect("hex")..u64::from_str_radix(b, 16).expect("hex")).contains(&va)
    })
}

/// Device frames in use equal the pages the manager says are on the device, and the
/// device has no stale translation.
fn balanced(r: &Rig, regions: &[(u64, u64)]) {
    let on_device: u64 = regions
        .iter()
        .flat_map(|&(va, len)| (0..len / 4096).map(move |i| va + i * 4096))
        .filter(|&v| {
            r.gm.page_info(r.space, v).is_some_and(|p| matches!(p.residency, Residency::Device | Residency::Dup))
        })
        .count() as u64;
    let (free, total) = r.gm.device_pages(r.id).expect("device");
    assert_eq!(total - free, on_device, "no frame leaked");
    assert_eq!(r.dev.stale_tlb_entries(), 0);
}

fn dev_read(r: &Rig, va: u64) -> u8 {
    let mut b = [0u8; 1];
    r.dev.load(&r.gm, r.id, r.asid, va, &mut b).expect("device read");
    b[0]
}

/// 4 MiB: chunk 0 on the device as one 2 MiB mapping, chunk 1 written by the CPU with
/// every 16th page moved to the device by a device write.
fn two_chunks(r: &Rig) -> *mut u8 {
    let p = r.gm.mmap(r.space, 4 * MIB, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    for pg in 0..1024u64 {
        cpu_write(p, (pg * 4096) as usize, (pg % 251) as u8);
    }
    r.gm.hmadvise(r.space, Node::Device(r.id), va, 2 * MIB, Hint::Prefetch).expect("chunk 0");
    assert!(r.gm.page_info(r.space, va).expect("managed").huge);
    for pg in (512..1024u64).step_by(16) {
        r.dev.store(&r.gm, r.id, r.asid, va + pg * 4096 + 1, &[0xEE]).expect("device write");
    }
    p
}

#[test]
fn munmap_of_the_start_middle_and_end_of_a_region() {
    let r = rig(2048);
    let p = two_chunks(&r);
    let va = p as u64;
    // The middle: half of the 2 MiB mapping and half of the small-page chunk.
    r.gm.munmap(r.space, (va + MIB) as *mut u8, 2 * MIB).expect("middle");
    // The start and the end.
    r.gm.munmap(r.space, p, 256 * 1024).expect("start");
    r.gm.munmap(r.space, (va + 4 * MIB - 256 * 1024) as *mut u8, 256 * 1024).expect("end");
    let left = [(va + 256 * 1024, MIB - 256 * 1024), (va + 3 * MIB, MIB - 256 * 1024)];
    for gone in [va, va + MIB, va + 2 * MIB + 4096, va + 4 * MIB - 4096] {
        assert_eq!(r.gm.page_info(r.space, gone), None, "{gone:#x} unmapped");
        assert!(!mapped(gone), "{gone:#x} gone from the process");
        assert_eq!(r.dev.translate(r.asid, gone), None);
    }
    balanced(&r, &left);
    // What is left keeps its data, on the device and on the CPU.
    for pg in [64u64, 200, 255] {
        assert_eq!(dev_read(&r, va + pg * 4096), (pg % 251) as u8, "chunk 0 page {pg} on the device");
    }
    for pg in [768u64, 784, 800, 959] {
        let want = (pg % 251) as u8;
        assert_eq!(cpu_read(p, (pg * 4096) as usize), want, "chunk 1 page {pg}");
        if pg % 16 == 0 {
            assert_eq!(cpu_read(p, (pg * 4096 + 1) as usize), 0xEE, "device write kept");
        }
    }
    // Unmapping a range that reaches past its piece is refused; the pieces go one by one.
    let e = r.gm.munmap(r.space, (va + 256 * 1024) as *mut u8, MIB).expect_err("past the piece");
    assert!(matches!(e, GmemError::PartialUnmap { .. }), "{e:?}");
    for (a, len) in left {
        r.gm.munmap(r.space, a as *mut u8, len).expect("piece");
    }
    assert_eq!(r.gm.device_pages(r.id), Some((2048, 2048)), "every frame back");
}

#[test]
fn mremap_shrinks_and_grows_in_place() {
    let r = rig(256);
    let p = r.gm.mmap(r.space, 32 * 4096, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    for pg in 0..32u64 {
        cpu_write(p, (pg * 4096) as usize, pg as u8 + 1);
    }
    r.gm.hmadvise(r.space, Node::Device(r.id), va, 32 * 4096, Hint::Prefetch).expect("prefetch");
    assert_eq!(r.gm.mremap(r.space, p, 32 * 4096, 16 * 4096, false).expect("shrink"), p);
    assert_eq!(r.gm.page_info(r.space, va + 16 * 4096), None);
    assert_eq!(r.gm.device_pages(r.id), Some((256 - 16, 256)), "the tail's frames are free");
    // Grow back, in place: the new pages are untouched, the old ones still on the device.
    assert_eq!(r.gm.mremap(r.space, p, 16 * 4096, 48 * 4096, false).expect("grow"), p);
    let info = r.gm.page_info(r.space, va + 40 * 4096).expect("managed");
    assert_eq!(info.residency, Residency::Unpopulated);
    r.dev.store(&r.gm, r.id, r.asid, va + 40 * 4096, &[0x40]).expect("device write to the new part");
    assert_eq!(cpu_read(p, 40 * 4096), 0x40);
    for pg in 0..16u64 {
        assert_eq!(r.gm.page_info(r.space, va + pg * 4096).expect("managed").residency, Residency::Device);
        assert_eq!(dev_read(&r, va + pg * 4096), pg as u8 + 1, "page {pg}");
    }
    balanced(&r, &[(va, 48 * 4096)]);
    assert_eq!(cpu_read(p, 5 * 4096), 6);
}

/// A plain anonymous mapping the test owns, unmapped on drop.
struct Guard {
    va: u64,
    len: u64,
}

impl Guard {
    /// Map `len` bytes exactly at `va`, never over an existing mapping.
    fn at(va: u64, len: u64) -> Option<Guard> {
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; the result is
        // checked before it is used and never dereferenced.
        let p = unsafe {
            libc::mmap(
                va as *mut libc::c_void,
                len as usize,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        let g = Guard { va: p as u64, len };
        (g.va == va).then_some(g)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `Guard::at` and nothing else refers to it.
        unsafe { libc::munmap(self.va as *mut libc::c_void, self.len as usize) };
    }
}

/// A managed region of `len` bytes with a guard mapping right after it, so it cannot
/// grow in place. Other tests of this binary map memory concurrently, so the address
/// after a fresh region may be taken between two calls: retry until the guard is ours.
fn region_with_guard_after(r: &Rig, len: u64) -> (*mut u8, Guard) {
    for _ in 0..16 {
        let a = r.gm.mmap(r.space, len, MapFlags::PEER_SHARED).expect("mmap");
        if let Some(g) = Guard::at(a as u64 + len, len) {
            return (a, g);
        }
        r.gm.munmap(r.space, a, len).expect("munmap");
    }
    panic!("no region with a free range after it in 16 tries");
}

#[test]
fn mremap_moves_a_region_with_its_device_pages_and_attributes() {
    let r = rig(2048);
    let (a, _guard) = region_with_guard_after(&r, 2 * MIB);
    let b = r.gm.mmap(r.space, 2 * MIB, MapFlags::PEER_SHARED).expect("mmap b");
    let va = a as u64;
    for pg in 0..512u64 {
        cpu_write(a, (pg * 4096) as usize, (pg % 199) as u8);
    }
    // Pages 0..256 on the device, 300 read-duplicated, 400..404 read-only.
    r.gm.hmadvise(r.space, Node::Device(r.id), va, 256 * 4096, Hint::Prefetch).expect("prefetch");
    r.gm.hmadvise(r.space, Node::Cpu, va + 300 * 4096, 4096, Hint::ReadMostly).expect("read-mostly");
    dev_read(&r, va + 300 * 4096);
    assert_eq!(r.gm.page_info(r.space, va + 300 * 4096).expect("managed").residency, Residency::Dup);
    r.gm.mprotect(r.space, va + 400 * 4096, 4 * 4096, Prot::READ).expect("read-only");
    let e = r.gm.mremap(r.space, a, 2 * MIB, 4 * MIB, false).expect_err("no room in place");
    assert!(matches!(e, GmemError::NoVirtualSpace { .. }), "{e:?}");
    let n = r.gm.mremap(r.space, a, 2 * MIB, 4 * MIB, true).expect("move");
    let nva = n as u64;
    assert_ne!(nva, va);
    assert_eq!(r.gm.page_info(r.space, va), None, "the old addresses are not managed");
    assert!(!mapped(va), "nor mapped");
    // Device pages kept their frames and data at the new address.
    assert_eq!(r.gm.page_info(r.space, nva + 7 * 4096).expect("managed").residency, Residency::Device);
    balanced(&r, &[(nva, 4 * MIB), (b as u64, 2 * MIB)]);
    for pg in [0u64, 7, 255] {
        assert_eq!(dev_read(&r, nva + pg * 4096), (pg % 199) as u8, "device page {pg}");
    }
    // Attributes and protection moved with their pages.
    let attrs = |pg: u64| r.gm.range_attrs(r.space, nva + pg * 4096).expect("space");
    assert!(attrs(300).read_mostly);
    assert_eq!((attrs(400).prot, attrs(404).prot), (Prot::READ, RW));
    assert!(!r.gm.range_attrs(r.space, va + 300 * 4096).expect("space").read_mostly, "nothing left behind");
    // The CPU reads everything at the new address (device pages come back).
    for pg in [3u64, 255, 256, 300, 401, 511] {
        assert_eq!(cpu_read(n, (pg * 4096) as usize), (pg % 199) as u8, "page {pg}");
    }
    cpu_write(n, 300 * 4096, 0x33);
    assert_eq!(dev_read(&r, nva + 300 * 4096), 0x33, "the collapsed duplicate takes writes");
    assert_eq!(cpu_read(n, (3 * MIB) as usize), 0, "the grown part reads zero");
    r.gm.munmap(r.space, n, 4 * MIB).expect("munmap");
    r.gm.munmap(r.space, b, 2 * MIB).expect("munmap");
    assert_eq!(r.gm.device_pages(r.id), Some((2048, 2048)));
}

#[test]
fn device_accesses_racing_partial_munmaps_keep_working_on_what_is_left() {
    let r = std::sync::Arc::new(rig(256));
    let p = r.gm.mmap(r.space, 64 * 4096, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    for pg in 0..64u64 {
        cpu_write(p, (pg * 4096) as usize, pg as u8 + 9);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (r, stop) = (r.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || reads == 0 {
                for pg in 0..8u64 {
                    assert_eq!(dev_read(&r, va + pg * 4096), pg as u8 + 9, "page {pg}");
                }
                reads += 1;
            }
            reads
        })
    };
    for pg in (8..64u64).rev() {
        r.gm.munmap(r.space, (va + pg * 4096) as *mut u8, 4096).expect("tail page");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().expect("reader") > 0);
    balanced(&r, &[(va, 8 * 4096)]);
    r.gm.munmap(r.space, p, 8 * 4096).expect("the rest");
    assert_eq!(r.gm.device_pages(r.id), Some((256, 256)));
}
