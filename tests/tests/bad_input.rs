//! Hostile input to the whole stack (manager + NPU driver + device): every refusal is a
//! typed error naming what was wrong, and nothing the program owns changes — the data
//! of its regions, the device frames in use, and the next kernel's ability to run.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

mod common;

use common::{WORDS, aborted_at, check, fill};
use gmem_host::{GmemError, Hint, MapFlags, Node};
use npu::kernel::{Kernel, KernelError};
use npu::{DeviceIo, NpuConfig, NpuError};
use tests::Stack;

fn bad_input<T: DeviceIo + Send + 'static>(s: Stack<T>) {
    let bytes = (WORDS * 4) as u64;
    let (a, c) = (s.alloc(bytes).unwrap(), s.alloc(bytes).unwrap());
    // SAFETY: a live region of WORDS words, referenced nowhere else.
    unsafe { fill(a, |i| i as u32) };
    // SAFETY: a live region of WORDS words, referenced nowhere else.
    unsafe { fill(c, |_| 0xc0c0) };
    let asid = s.asid;
    let (va_a, va_c, n) = (a as u64, c as u64, WORDS as u32);
    let frames = s.gm.device_pages(s.id).unwrap();

    // Refused before submission, with the operand named.
    let e = s.launch(Kernel::copy(asid, va_a + 2, va_c, n)).unwrap_err();
    assert!(matches!(e, NpuError::Kernel(KernelError::Misaligned { operand: 'A', va, .. }) if va == va_a + 2), "{e}");
    let e = s.launch(Kernel::copy(asid, va_a, va_c + 1, n)).unwrap_err();
    assert!(matches!(e, NpuError::Kernel(KernelError::Misaligned { operand: 'C', .. })), "{e}");
    let e = s.launch(Kernel::strided_touch(asid, va_a, 6, 4, None)).unwrap_err();
    assert!(matches!(e, NpuError::Kernel(KernelError::BadStride { stride: 6, .. })), "{e}");
    assert_eq!(s.gm.device_pages(s.id).unwrap(), frames, "a refused kernel moves nothing");

    // Refused by the manager at the first page outside the program's memory.
    assert!(s.gm.page_info(s.space, va_a + bytes).is_none(), "regions are not adjacent");
    aborted_at(s.launch(Kernel::copy(asid, va_a, va_c, 2 * n)), va_a + bytes, "copy running off the end of its source");
    aborted_at(s.launch(Kernel::fill(asid, 0, 16, 1)), 0, "a null pointer");
    aborted_at(s.launch(Kernel::fill(asid, 1 << 38, 16, 1)), 1 << 38, "a wild pointer");
    aborted_at(s.launch(Kernel::copy(asid ^ 0x55, va_a, va_c, n)), va_a, "an ASID nobody attached");
    // SAFETY: a live region of WORDS words, referenced nowhere else.
    unsafe { check(a, "the source after every refusal", |i| i as u32) };

    // Hints and mappings: typed, and nothing moves.
    let before = s.gm.page_info(s.space, va_a).unwrap();
    let e = s.gm.hmadvise(s.space, Node::Device(s.id), va_a + 4, 4096, Hint::Prefetch).unwrap_err();
    assert!(matches!(e, GmemError::Unaligned { .. }), "{e}");
    let e = s.gm.hmadvise(s.space, Node::Device(s.id), va_a, 2 * bytes + 4096 * 64, Hint::Prefetch).unwrap_err();
    assert!(matches!(e, GmemError::NotManaged { .. }), "{e}");
    assert_eq!(s.gm.page_info(s.space, va_a).unwrap(), before, "a refused hint moves nothing");
    assert!(matches!(s.gm.mmap(s.space, 0, MapFlags::PEER_SHARED), Err(GmemError::ZeroLength { .. })));
    let e = s.gm.mmap(s.space, 1 << 60, MapFlags::PEER_SHARED).unwrap_err();
    assert!(matches!(e, GmemError::NoVirtualSpace { .. } | GmemError::HostMap { .. }), "{e}");

    // Everything still works, and nothing leaked.
    s.launch(Kernel::scale(asid, va_a, va_c, n, 3)).unwrap();
    // SAFETY: a live region of WORDS words, referenced nowhere else.
    unsafe { check(c, "the next kernel's result", |i| 3 * i as u32) };
    // SAFETY: a live region of WORDS words, referenced nowhere else.
    unsafe { check(a, "the source at the end", |i| i as u32) };
}

#[test]
fn rtl_refuses_bad_input_with_typed_errors_and_loses_nothing() {
    bad_input(tests::rtl(NpuConfig::default()));
}

#[test]
fn model_refuses_bad_input_with_typed_errors_and_loses_nothing() {
    bad_input(tests::model(NpuConfig::default()));
}
