//! Kernels launched on one NPU from several threads at once: the compute unit runs them
//! in submission order, every launcher serves the device faults that arrive (whoever's
//! kernel raised them), and each launch returns with its own kernel's completion, never
//! another's. Runs on the RTL and on the model.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use npu::kernel::Kernel;
use npu::{DeviceIo, NpuConfig};
use tests::Stack;

const WORDS: usize = 16 * 1024; // 64 KiB per region: faults in every kernel
const THREADS: usize = 3;
const ROUNDS: u32 = 6;

fn concurrent_launches<T: DeviceIo + Send + 'static>(s: Stack<T>) {
    // Addresses as integers so the threads' closures are Send.
    let regions: Vec<(u64, u64)> = (0..THREADS)
        .map(|_| (s.alloc((WORDS * 4) as u64).unwrap() as u64, s.alloc((WORDS * 4) as u64).unwrap() as u64))
        .collect();
    std::thread::scope(|scope| {
        for (t, &(a, c)) in regions.iter().enumerate() {
            let s = &s;
            scope.spawn(move || {
                for round in 0..ROUNDS {
                    let v = (t as u32) << 16 | round;
                    // Different lengths, so the kernels end at different times.
                    let n = (WORDS - t * 1000) as u32;
                    let done = s.launch(Kernel::fill(s.asid, a, n, v)).unwrap();
                    assert_eq!(done.done, n, "thread {t} round {round}: its own kernel's completion");
                    s.launch(Kernel::scale(s.asid, a, c, n, 3)).unwrap();
                    for i in [0, n as usize / 2, n as usize - 1] {
                        // SAFETY: i < n <= WORDS, inside the region; device pages fault
                        // back to the CPU.
                        let got = unsafe { (c as *const u32).add(i).read() };
                        assert_eq!(got, v.wrapping_mul(3), "thread {t} round {round} c[{i}]: the kernel had ended");
                    }
                }
            });
        }
    });
    assert_eq!(s.npu.stats().kernels, (2 * THREADS as u32 * ROUNDS) as u64);
}

#[test]
fn rtl_threads_launch_on_one_npu_at_once() {
    concurrent_launches(tests::rtl(NpuConfig::default()));
}

#[test]
fn model_threads_launch_on_one_npu_at_once() {
    concurrent_launches(tests::model(NpuConfig::default()));
}
