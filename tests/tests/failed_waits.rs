//! A failed wait for host memory (`DeviceIo::wait_host`, the driver's poll of its rings)
//! loses nothing and leaves the stack able to go on:
//! - a fault batch whose gathering fails hands the records it already took back to the
//!   fault queue, so the kernel that raised them completes;
//! - wherever in a kernel's launch the wait fails (the driver then soft-resets the device
//!   if a DMA wait failed), the next launch runs and its data is right. The driver
//!   restarts its rings when it sends the reset, but a DMA completion the device wrote
//!   just before the reset reached it is still on its way to host memory (here the
//!   ideal link's write latency; on a board also the RESET write's own flight): freed
//!   again once the drain ended, it is not taken for the first completion after it.
//!
//! On the RTL, whose compute unit reports its faults one record at a time and whose
//! timing makes the windows real (the reference model delivers a kernel's faults at once).

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use gmem_host::MapFlags;
use gmem_host::inject::Injector;
use npu::kernel::Kernel;
use npu::session::{Session, manager_config};
use npu::{DeviceIo, NpuConfig, NpuError, regs};

const N: usize = 8 * 1024; // words: 8 pages
const LEN: u64 = (N * 4) as u64;

/// A session whose transport fails as `inj` says; a lost record or completion stalls
/// for good, and 5 ms of device time tells it quickly.
fn session(inj: &Injector) -> Session<npu::inject::FaultyIo<sim_bridge::SimDevice>> {
    let io = sim_bridge::SimDevice::new(Default::default()).unwrap();
    let cfg = NpuConfig { budget_ns: 5_000_000, ..NpuConfig::default() };
    Session::open_faulty(io, cfg, manager_config(), inj).unwrap()
}

#[test]
fn rtl_records_taken_before_a_failed_gathering_wait_are_served_later() {
    let inj = Injector::new(1);
    let s = session(&inj);
    let p = s.gm.mmap(s.space, LEN, MapFlags::PEER_SHARED).unwrap() as *mut u32;
    // A launch waits for host memory first for the kernel's first fault record, then
    // (the batch has fewer records than the compute unit has requests in flight) for
    // the next record of the batch: that second wait fails.
    inj.add_text("io:wait_host=count:1:1").unwrap();
    let err = s.launch(Kernel::fill(s.asid, p as u64, N as u32, 7)).unwrap_err();
    inj.clear();
    assert!(matches!(err, NpuError::Io(_)), "{err}");
    let head = s.npu.with_io(|io| io.read32(regs::FQ_HEAD.offset)).unwrap();
    assert_ne!(head, 0, "the failed wait came after a record was taken from the fault queue");
    assert_eq!(s.npu.stats().batches, 0, "and before the batch was served");
    // The next launch serves the held records first: the first kernel completes, then
    // this one (the compute unit runs kernels in order).
    s.launch(Kernel::fill(s.asid, p as u64, N as u32, 9)).unwrap();
    for i in 0..N {
        // SAFETY: i < N, inside p; device pages fault back to the CPU.
        assert_eq!(unsafe { p.add(i).read() }, 9, "p[{i}]");
    }
}

#[test]
fn rtl_a_launch_whose_wait_fails_anywhere_leaves_the_next_one_running() {
    // The first launch's waits for host memory, one at a time: a fault record, the
    // batch's gathering, the PTE flush's and the copies' DMA completions, the kernel.
    let mut failed = 0;
    for skip in 0..40 {
        let inj = Injector::new(1);
        let s = session(&inj);
        let p = s.gm.mmap(s.space, LEN, MapFlags::PEER_SHARED).unwrap() as *mut u32;
        inj.add_text(&format!("io:wait_host=count:{skip}:1")).unwrap();
        let first = s.launch(Kernel::fill(s.asid, p as u64, N as u32, 7));
        inj.clear();
        failed += usize::from(first.is_err());
        s.launch(Kernel::fill(s.asid, p as u64, N as u32, 9))
            .unwrap_or_else(|e| panic!("wait {skip} failed ({first:?}), then the next launch: {e}"));
        for i in 0..N {
            // SAFETY: i < N, inside p; device pages fault back to the CPU.
            assert_eq!(unsafe { p.add(i).read() }, 9, "wait {skip} failed, then p[{i}]");
        }
    }
    assert!(failed >= 10, "the injected failure hit {failed} launches: the sweep covers too few of the waits");
}
