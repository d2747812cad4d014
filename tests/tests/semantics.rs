//! Unified-memory semantics on the NPU (RTL and reference model): protection honoured by
//! device faults (a store to read-only memory and a load of no-access memory abort the
//! kernel at the VA, data unchanged), hint reports, a partial munmap under pages on the
//! device, an mremap that moves a region whose pages are on the device, and protection
//! changed back and forth while kernels run.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use gmem_host::{Hint, HintReport, Node, Placement, Prot};
use npu::kernel::Kernel;
use npu::{DeviceIo, NpuConfig, NpuError};
use tests::Stack;

const WORDS: usize = 4096; // 16 KiB per region
const BYTES: u64 = (WORDS * 4) as u64;
const PAGES: u64 = BYTES / 4096;

fn fill(p: *mut u32, f: impl Fn(usize) -> u32) {
    for i in 0..WORDS {
        // SAFETY: callers pass regions of WORDS words.
        unsafe { p.add(i).write(f(i)) };
    }
}

fn check(p: *mut u32, words: usize, what: &str, f: impl Fn(usize) -> u32) {
    for i in 0..words {
        // SAFETY: callers pass live regions of at least `words` words; device-resident
        // pages fault back.
        let v = unsafe { p.add(i).read() };
        assert_eq!(v, f(i), "{what}: word {i}");
    }
}

fn aborted_in(r: Result<npu::kernel::KernelCompletion, NpuError>, lo: u64, what: &str) {
    match r {
        Err(NpuError::KernelAborted { va, reason }) => {
            assert!((lo..lo + BYTES).contains(&va), "{what}: abort at {va:#x}, outside the region ({reason})");
        }
        other => panic!("{what}: expected an abort in [{lo:#x}, +{BYTES:#x}), got {other:?}"),
    }
}

/// A kernel's outcome under protection that may change while it runs: it completed, or
/// it was aborted by the protection at a VA of the destination `[lo, lo + BYTES)`.
fn completed_or_protection_abort(r: Result<npu::kernel::KernelCompletion, NpuError>, lo: u64, what: &str) -> bool {
    match r {
        Ok(_) => true,
        Err(NpuError::KernelAborted { va, reason }) => {
            assert!((lo..lo + BYTES).contains(&va), "{what}: abort at {va:#x}, outside the destination ({reason})");
            assert!(
                reason.contains("not allowed by the range's protection"),
                "{what}: not a protection abort: {reason}"
            );
            false
        }
        Err(e) => panic!("{what}: expected completion or a protection abort, got {e:?}"),
    }
}

/// Each kernel `i` writes `src * factor(i)` to the destination; factors differ, so a
/// destination word tells which kernel wrote it.
fn factor(i: usize) -> u32 {
    i as u32 + 2
}

/// The destination toggled between read-write, read-only and no-access, first between
/// kernel launches (each outcome known in advance), then while kernels run back to back
/// on another thread (only invariants hold). The source never changes, the last kernel
/// (after the toggling ends read-write) completes, and no device frame leaks.
fn protection_toggled_while_kernels_run<T: DeviceIo + Send + 'static>(s: Stack<T>, toggles: usize) {
    const CYCLE: [Prot; 3] = [gmem_host::mmu::RW, Prot::READ, Prot::empty()];
    let free_at_start = s.gm.device_pages(s.id).unwrap();
    let (a, c) = (s.alloc(BYTES).unwrap(), s.alloc(BYTES).unwrap());
    fill(a, |i| i as u32 + 1);
    fill(c, |_| 0xc0c0);
    let (va_a, va_c, n, asid) = (a as u64, c as u64, WORDS as u32, s.asid);
    let scale = |i: usize| Kernel::scale(asid, va_a, va_c, n, factor(i));
    // Sequenced: read-write completes, read-only and no-access abort with nothing written.
    let mut last_written = None;
    for (i, prot) in CYCLE.iter().cycle().take(6).enumerate() {
        s.gm.mprotect(s.space, va_c, BYTES, *prot).unwrap();
        let what = format!("sequenced kernel {i} under {prot:?}");
        let done = completed_or_protection_abort(s.launch(scale(i)), va_c, &what);
        assert_eq!(done, *prot == gmem_host::mmu::RW, "{what}");
        if done {
            last_written = Some(i);
        }
        s.gm.mprotect(s.space, va_c, BYTES, Prot::READ).unwrap(); // the CPU may read it
        let m = last_written.map_or(0, factor);
        check(c, WORDS, &what, |j| if m == 0 { 0xc0c0 } else { (j as u32 + 1) * m });
    }
    // Concurrent: each toggle lands while a kernel runs (the toggler waits for a launch).
    let first = 6;
    let started = std::sync::atomic::AtomicUsize::new(first);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (completed, last_ok) = std::thread::scope(|sc| {
        let kernels = sc.spawn(|| {
            let (mut completed, mut last_ok) = (0, None);
            for i in first.. {
                if stop.load(std::sync::atomic::Ordering::Acquire) {
                    break;
                }
                started.store(i + 1, std::sync::atomic::Ordering::Release);
                if completed_or_protection_abort(s.launch(scale(i)), va_c, &format!("concurrent kernel {i}")) {
                    (completed, last_ok) = (completed + 1, Some(i));
                }
            }
            (completed, last_ok)
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        for t in 0..toggles {
            while started.load(std::sync::atomic::Ordering::Acquire) <= first + t && !kernels.is_finished() {
                assert!(std::time::Instant::now() < deadline, "kernels stalled");
                std::thread::yield_now();
            }
            s.gm.mprotect(s.space, va_c, BYTES, CYCLE[(t + 1) % 3]).unwrap();
        }
        s.gm.mprotect(s.space, va_c, BYTES, gmem_host::mmu::RW).unwrap();
        stop.store(true, std::sync::atomic::Ordering::Release);
        kernels.join().unwrap()
    });
    let end = started.into_inner();
    eprintln!("{toggles} toggles: {completed} of {} concurrent kernels completed", end - first);
    // Every destination word was last written by the last kernel that completed or by
    // a later one (an aborted kernel leaves the words it stored before the abort).
    let low = last_ok.or(last_written).unwrap();
    for j in 0..WORDS {
        // SAFETY: `c` is a live region of WORDS words, read-write again.
        let v = unsafe { c.add(j).read() };
        assert!(
            (low..end).any(|k| v == (j as u32 + 1) * factor(k)),
            "word {j} = {v:#x}: not written by kernels {low}..{end}"
        );
    }
    // Read-write for good: a kernel completes and its result is whole.
    s.launch(scale(end)).unwrap();
    check(c, WORDS, "after the last kernel", |j| (j as u32 + 1) * factor(end));
    check(a, WORDS, "the source", |j| j as u32 + 1);
    s.gm.munmap(s.space, a.cast(), BYTES).unwrap();
    s.gm.munmap(s.space, c.cast(), BYTES).unwrap();
    assert_eq!(s.gm.device_pages(s.id).unwrap(), free_at_start, "no device frame leaked");
}

fn protection<T: DeviceIo + Send + 'static>(s: Stack<T>) {
    let (a, c) = (s.alloc(BYTES).unwrap(), s.alloc(BYTES).unwrap());
    fill(a, |i| i as u32);
    fill(c, |_| 0xc0c0);
    let (va_a, va_c, n, asid) = (a as u64, c as u64, WORDS as u32, s.asid);
    // The destination read-only: the kernel's first store aborts, nothing is written.
    s.gm.mprotect(s.space, va_c, BYTES, Prot::READ).unwrap();
    aborted_in(s.launch(Kernel::copy(asid, va_a, va_c, n)), va_c, "a store to read-only memory");
    check(c, WORDS, "the read-only destination", |_| 0xc0c0);
    // The source no-access: the kernel's first load aborts, and the source never moves.
    s.gm.mprotect(s.space, va_c, BYTES, gmem_host::mmu::RW).unwrap();
    let moved_back = s.gm.hmadvise(s.space, Node::Cpu, va_a, BYTES, Hint::Prefetch).unwrap();
    assert_eq!(moved_back.pages_moved + moved_back.already_in_place, PAGES);
    s.gm.mprotect(s.space, va_a, BYTES, Prot::empty()).unwrap();
    let frames = s.gm.device_pages(s.id).unwrap();
    aborted_in(s.launch(Kernel::copy(asid, va_a, va_c, n)), va_a, "a load of no-access memory");
    for pg in 0..PAGES {
        let info = s.gm.page_info(s.space, va_a + pg * 4096).unwrap();
        assert_eq!(info.protection, Prot::empty());
        assert_eq!(s.gm.placement(s.space, va_a + pg * 4096, s.id), Some(Placement::Host), "page {pg} never moved");
    }
    assert_eq!(s.gm.device_pages(s.id).unwrap(), frames, "the source took no frame");
    // Read-write again: the kernel runs.
    s.gm.mprotect(s.space, va_a, BYTES, gmem_host::mmu::RW).unwrap();
    s.launch(Kernel::scale(asid, va_a, va_c, n, 5)).unwrap();
    check(c, WORDS, "the result", |i| 5 * i as u32);
    check(a, WORDS, "the source", |i| i as u32);
}

fn reports_and_partial_munmap<T: DeviceIo + Send + 'static>(s: Stack<T>) {
    let (a, c) = (s.alloc(BYTES).unwrap(), s.alloc(BYTES).unwrap());
    fill(a, |i| i as u32 ^ 0x5555);
    let (va_a, va_c, asid) = (a as u64, c as u64, s.asid);
    let dev = Node::Device(s.id);
    let got = s.gm.hmadvise(s.space, dev, va_a, BYTES, Hint::Prefetch).unwrap();
    assert_eq!(got, HintReport { pages_moved: PAGES, bytes_moved: BYTES, ..Default::default() });
    let got = s.gm.hmadvise(s.space, dev, va_a, BYTES, Hint::Prefetch).unwrap();
    assert_eq!(got, HintReport { already_in_place: PAGES, ..Default::default() });
    // Unmap the second half of the source while it is on the device.
    let half = BYTES / 2;
    s.gm.munmap(s.space, (va_a + half) as *mut u8, half).unwrap();
    assert!(s.gm.page_info(s.space, va_a + half).is_none());
    let words = (half / 4) as u32;
    s.launch(Kernel::copy(asid, va_a, va_c, words)).unwrap();
    check(c, words as usize, "the first half, copied", |i| i as u32 ^ 0x5555);
    aborted_in(s.launch(Kernel::copy(asid, va_a + half, va_c, words)), va_a, "the unmapped half");
    check(a, words as usize, "the first half, kept", |i| i as u32 ^ 0x5555);
}

fn mremap_with_pages_on_the_device<T: DeviceIo + Send + 'static>(s: Stack<T>) {
    let (a, c) = (s.alloc(BYTES).unwrap(), s.alloc(BYTES).unwrap());
    fill(a, |i| i as u32 * 7);
    let (va_a, va_c, n, asid) = (a as u64, c as u64, WORDS as u32, s.asid);
    s.gm.hmadvise(s.space, Node::Device(s.id), va_a, BYTES, Hint::Prefetch).unwrap();
    let frames = s.gm.device_pages(s.id).unwrap();
    // Growing to 4 MiB runs into the next region: the region moves, its device pages with it.
    let moved = s.gm.mremap(s.space, a.cast(), BYTES, 4 << 20, true).unwrap();
    let va_n = moved as u64;
    assert_ne!(va_n, va_a);
    assert!(s.gm.page_info(s.space, va_a).is_none());
    assert_eq!(s.gm.device_pages(s.id).unwrap(), frames, "the device pages kept their frames");
    assert!(matches!(s.gm.placement(s.space, va_n, s.id), Some(Placement::Local { .. })));
    s.launch(Kernel::copy(asid, va_n, va_c, n)).unwrap();
    check(c, WORDS, "copied from the moved region", |i| i as u32 * 7);
    aborted_in(s.launch(Kernel::copy(asid, va_a, va_c, n)), va_a, "the old addresses");
    // Shrink back: the tail goes, the data stays.
    assert_eq!(s.gm.mremap(s.space, moved, 4 << 20, BYTES, false).unwrap(), moved);
    check(moved.cast(), WORDS, "the moved region on the CPU", |i| i as u32 * 7);
}

#[test]
fn rtl_moves_a_region_with_its_device_pages() {
    mremap_with_pages_on_the_device(tests::rtl(NpuConfig::default()));
}

#[test]
fn model_moves_a_region_with_its_device_pages() {
    mremap_with_pages_on_the_device(tests::model(NpuConfig::default()));
}

#[test]
fn rtl_honours_protection() {
    protection(tests::rtl(NpuConfig::default()));
}

#[test]
fn model_honours_protection() {
    protection(tests::model(NpuConfig::default()));
}

#[test]
fn rtl_reports_hints_and_unmaps_part_of_a_region() {
    reports_and_partial_munmap(tests::rtl(NpuConfig::default()));
}

#[test]
fn model_reports_hints_and_unmaps_part_of_a_region() {
    reports_and_partial_munmap(tests::model(NpuConfig::default()));
}

#[test]
fn rtl_keeps_data_right_while_protection_toggles_under_kernels() {
    protection_toggled_while_kernels_run(tests::rtl(NpuConfig::default()), 50);
}

#[test]
fn model_keeps_data_right_while_protection_toggles_under_kernels() {
    protection_toggled_while_kernels_run(tests::model(NpuConfig::default()), 200);
}
