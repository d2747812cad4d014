//! Device reset and re-initialisation after an unrecoverable device error: a hung
//! compute unit is detected by the transport's clock, soft-reset, and the next kernel
//! runs on the same data — nothing resident on the device or the host is lost.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use gmem_host::MapFlags;
use npu::kernel::Kernel;
use npu::{DeviceIo, NpuConfig, NpuError, regs};
use tests::Stack;

fn recovers_from_a_hang<T: DeviceIo + Send + 'static>(s: Stack<T>) {
    let n = 8192usize;
    let p = s.gm.mmap(s.space, n as u64 * 8, MapFlags::PEER_SHARED).unwrap() as *mut u32;
    // SAFETY: p holds 2n words.
    let q = unsafe { p.add(n) };
    for i in 0..n {
        // SAFETY: i < n, inside the region.
        unsafe { p.add(i).write(i as u32) };
    }
    let asid = s.asid;
    // c = a * 3 lands on the device; then the compute unit hangs.
    s.npu.launch(&s.gm, s.id, Kernel::scale(asid, p as u64, q as u64, n as u32, 3)).unwrap();
    s.npu.with_io(|io| io.write32(regs::ERRINJ_HANG.offset, 1 << regs::errinj_hang::CU.lsb)).unwrap();
    let err = s.npu.launch(&s.gm, s.id, Kernel::scale(asid, q as u64, q as u64, n as u32, 5)).unwrap_err();
    assert!(matches!(err, NpuError::Timeout { .. }), "{err}");
    s.npu.recover().unwrap();
    // The device works again, and the device-resident result survived the reset.
    s.npu.launch(&s.gm, s.id, Kernel::scale(asid, q as u64, q as u64, n as u32, 5)).unwrap();
    for i in 0..n {
        // SAFETY: i < n, inside the region; device pages fault back to the CPU.
        let (a, c) = unsafe { (p.add(i).read(), q.add(i).read()) };
        assert_eq!((a, c), (i as u32, i as u32 * 15), "element {i}");
    }
}

fn cfg() -> NpuConfig {
    NpuConfig { budget_ns: 2_000_000, ..Default::default() }
}

#[test]
fn rtl_recovers_from_a_hung_compute_unit() {
    recovers_from_a_hang(tests::rtl(cfg()));
}

#[test]
fn model_recovers_from_a_hung_compute_unit() {
    recovers_from_a_hang(tests::model(cfg()));
}
