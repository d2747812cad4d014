//! The fault path on the board-like model does no MMIO read: fault records, kernel
//! completions and DMA completions are polled in host memory, ring heads are posted
//! writes (issue #22, point 3).

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use gmem_host::MapFlags;
use npu::NpuConfig;
use npu::kernel::Kernel;
use npu::session::{Session, manager_config};
use sim_bridge::{SimConfig, SimDevice, TimingModel};

#[test]
fn serving_device_faults_reads_no_register() {
    let dev = SimDevice::new(SimConfig { timing: TimingModel::board(), ..SimConfig::default() }).unwrap();
    let s = Session::open(dev, NpuConfig::default(), manager_config()).unwrap();
    let words = 64 * 1024; // 256 KiB: 64 pages, each faulted in by the copy
    let a = s.gm.mmap(s.space, words * 4, MapFlags::PEER_SHARED).unwrap() as *mut u32;
    let c = s.gm.mmap(s.space, words * 4, MapFlags::PEER_SHARED).unwrap() as *mut u32;
    for i in 0..words as usize {
        // SAFETY: a is a managed region of `words` words.
        unsafe { a.add(i).write(i as u32 ^ 0x5A5A) };
    }
    let io0 = s.npu.with_io(|io| io.transport_stats());
    let npu0 = s.npu.stats();
    s.launch(Kernel::copy(s.asid, a as u64, c as u64, words as u32)).unwrap();
    let io1 = s.npu.with_io(|io| io.transport_stats());
    let npu1 = s.npu.stats();
    let (faults, batches) = (npu1.faults - npu0.faults, npu1.batches - npu0.batches);
    assert!(faults >= 8 && batches >= 2, "the copy faulted ({faults} faults in {batches} batches)");
    assert!(npu1.dma_bytes > npu0.dma_bytes, "pages moved by DMA");
    assert!(io1.host_waits > io0.host_waits, "the driver polled host memory");
    // Only a sleep on the interrupt reads a register (the read that flushes its arming).
    let sleeps = npu1.irq_waits - npu0.irq_waits;
    assert_eq!(io1.csr_reads - io0.csr_reads, sleeps, "MMIO reads on the hot path: {io0:?} -> {io1:?}");
    assert_eq!(io1.irq_waits - io0.irq_waits, sleeps);
    for i in (0..words as usize).step_by(511) {
        // SAFETY: c is a managed region of `words` words; the CPU faults it back.
        assert_eq!(unsafe { c.add(i).read() }, i as u32 ^ 0x5A5A, "element {i}");
    }
}
