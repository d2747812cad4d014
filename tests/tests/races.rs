//! munmap and DONTNEED racing in-flight migrations and device faults (a KFD field
//! failure: a range unmapped under DMA made the next fault fatal). Defined behaviour
//! here: the racing kernel either completes or aborts naming a VA of the unmapped
//! range; nothing panics; no device frame leaks; the next kernel runs normally.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use std::sync::atomic::{AtomicBool, Ordering};

use gmem_host::{Hint, Node};
use npu::kernel::Kernel;
use npu::{DeviceIo, NpuConfig, NpuError};
use tests::Stack;

const WORDS: usize = 256 * 1024; // 1 MiB

fn fill(p: *mut u32, n: usize, f: impl Fn(usize) -> u32) {
    for i in 0..n {
        // SAFETY: callers pass regions of at least n words.
        unsafe { p.add(i).write(f(i)) };
    }
}

/// Addresses as integers so the racing closures are Send.
fn race<T: DeviceIo + Send + 'static>(s: Stack<T>, dontneed: bool) {
    let bytes = (WORDS * 4) as u64;
    let (_, total) = s.gm.device_pages(s.id).unwrap();
    for round in 0..3u32 {
        let a = s.alloc(bytes).unwrap() as u64;
        let c = s.alloc(bytes).unwrap() as u64;
        fill(a as *mut u32, WORDS, |i| i as u32 ^ round);
        let started = AtomicBool::new(false);
        let batches0 = s.npu.stats().batches;
        let result = std::thread::scope(|scope| {
            let kernel = scope.spawn(|| {
                started.store(true, Ordering::SeqCst);
                s.launch(Kernel::copy(s.asid, a, c, WORDS as u32))
            });
            // Strike while the kernel is faulting its way through `a` (its first fault
            // batch has been served), or right away in the last round.
            while round < 2 && !kernel.is_finished() && s.npu.stats().batches <= batches0 + round as u64 {
                std::thread::yield_now();
            }
            assert!(started.load(Ordering::SeqCst) || round == 2);
            if dontneed {
                s.gm.hmadvise(s.space, Node::Device(s.id), a, bytes, Hint::DontNeed).unwrap();
            } else {
                s.gm.munmap(s.space, a as *mut u8, bytes).unwrap();
            }
            kernel.join().unwrap()
        });
        match result {
            Ok(_) => {}
            Err(NpuError::KernelAborted { va, .. }) => {
                assert!(!dontneed, "DONTNEED keeps the data reachable: no abort");
                assert!((a..a + bytes).contains(&va), "round {round}: abort names {va:#x}, outside the unmapped range");
            }
            Err(e) => panic!("round {round}: {e}"),
        }
        if dontneed {
            // The data stayed correct wherever it went, and the kernel copied it.
            for i in (0..WORDS).step_by(1021) {
                // SAFETY: i < WORDS inside a and c.
                let (x, y) = unsafe { ((a as *const u32).add(i).read(), (c as *const u32).add(i).read()) };
                assert_eq!((x, y), (i as u32 ^ round, i as u32 ^ round), "round {round} word {i}");
            }
            s.gm.munmap(s.space, a as *mut u8, bytes).unwrap();
        }
        s.gm.munmap(s.space, c as *mut u8, bytes).unwrap();
        // Everything unmapped: every frame is back.
        let (free, _) = s.gm.device_pages(s.id).unwrap();
        assert_eq!(free, total, "round {round}: device frames leaked");
    }
    // The next kernel runs normally.
    let p = s.alloc(64 << 10).unwrap();
    s.launch(Kernel::fill(s.asid, p as u64, 16 * 1024, 0x600d)).unwrap();
    // SAFETY: word 100 of a 64 KiB region.
    assert_eq!(unsafe { p.add(100).read() }, 0x600d);
}

#[test]
fn rtl_munmap_racing_a_faulting_kernel() {
    race(tests::rtl(NpuConfig::default()), false);
}

#[test]
fn model_munmap_racing_a_faulting_kernel() {
    race(tests::model(NpuConfig::default()), false);
}

#[test]
fn rtl_dontneed_racing_a_faulting_kernel() {
    race(tests::rtl(NpuConfig::default()), true);
}

#[test]
fn model_dontneed_racing_a_faulting_kernel() {
    race(tests::model(NpuConfig::default()), true);
}
