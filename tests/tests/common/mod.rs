//! Helpers the isolation and bad-input scenarios share: regions of [`WORDS`] words
//! filled and checked word by word, and the check that a kernel was aborted at a VA.

use npu::NpuError;
use npu::kernel::KernelCompletion;

/// Words per region (16 KiB).
pub const WORDS: usize = 4096;

/// Writes `f(i)` to word `i` of the region at `p`.
///
/// # Safety
/// `p` must be a live region of at least [`WORDS`] words that nothing else references
/// (a manager region: device-resident pages fault back to the host).
pub unsafe fn fill(p: *mut u32, f: impl Fn(usize) -> u32) {
    for i in 0..WORDS {
        // SAFETY: i < WORDS, inside the region (the caller's contract).
        unsafe { p.add(i).write(f(i)) };
    }
}

/// Asserts that word `i` of the region at `p` is `f(i)`; `what` names the region.
///
/// # Safety
/// As for [`fill`].
pub unsafe fn check(p: *mut u32, what: &str, f: impl Fn(usize) -> u32) {
    for i in 0..WORDS {
        // SAFETY: as in `fill`.
        let v = unsafe { p.add(i).read() };
        assert_eq!(v, f(i), "{what}: word {i}");
    }
}

/// Asserts that `r` is a kernel abort naming the page of `va`.
pub fn aborted_at(r: Result<KernelCompletion, NpuError>, va: u64, what: &str) {
    match r {
        Err(NpuError::KernelAborted { va: got, reason }) => {
            assert_eq!(got & !0xfff, va & !0xfff, "{what}: the abort names the VA ({reason})");
        }
        other => panic!("{what}: expected an abort at {va:#x}, got {other:?}"),
    }
}
