//! The fault path on the board-like model does no MMIO read: fault records, kernel
//! completions and DMA completions are polled in host memory, ring heads are posted
//! writes (issue #22, point 3).

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use gmem_host::MapFlags;
use npu::kernel::Kernel;
use npu::session::{Session, manager_config};
use npu::{DeviceIo, NpuConfig};
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

#[test]
fn an_isolated_fault_links_a_table_zeroed_ahead_and_writes_its_ptes_by_command() {
    let dev = SimDevice::new(SimConfig { timing: TimingModel::board(), ..SimConfig::default() }).unwrap();
    let s = Session::open(dev, NpuConfig::default(), manager_config()).unwrap();
    // A 4 MiB region the NPU fills: its faults flush tables by DMA, which zero table
    // pages ahead; the next region lies in another 2 MiB range (a new leaf table).
    let big = s.gm.mmap(s.space, 4 << 20, MapFlags::PEER_SHARED).unwrap();
    s.launch(Kernel::fill(s.asid, big as u64, 1 << 20, 7)).unwrap();
    let one = s.gm.mmap(s.space, 8192, MapFlags::PEER_SHARED).unwrap() as *mut u32;
    // SAFETY: one is a managed region of 2048 words.
    unsafe { one.write(0x1234) };
    let before = s.npu.stats();
    s.launch(Kernel::strided_touch(s.asid, one as u64, 4096, 1, None)).unwrap();
    let after = s.npu.stats();
    assert_eq!(after.faults - before.faults, 1, "{before:?} -> {after:?}");
    // Two leaves and the pointer to the new table, as commands ahead of the REPLAY;
    // no DMA of PTEs and none to zero the table.
    assert_eq!(after.pte_commands - before.pte_commands, 3, "{before:?} -> {after:?}");
    assert_eq!(after.table_dma_runs, before.table_dma_runs, "{before:?} -> {after:?}");
    // The commands landed: the device's own tables (read back by DMA) map both pages.
    let dump = s.npu.pte_dump(gmem_host::Asid(u32::from(s.asid)), false).unwrap();
    for page in [one as u64, one as u64 + 4096] {
        let line = format!("{page:#014x}..{:#014x} L0 4K VRW---AD -> device frame", page + 4096);
        assert!(dump.lines().any(|l| l == line), "no `{line}` in\n{dump}");
    }
    // SAFETY: as above; the CPU reads the page back.
    assert_eq!(unsafe { one.read() }, 0x1234);
}

#[test]
fn pte_commands_a_soft_reset_dropped_are_written_again() {
    let dev = SimDevice::new(SimConfig { timing: TimingModel::board(), ..SimConfig::default() }).unwrap();
    let cfg = NpuConfig { budget_ns: 200_000, ..NpuConfig::default() };
    let s = Session::open(dev, cfg, manager_config()).unwrap();
    let one = s.gm.mmap(s.space, 8192, MapFlags::PEER_SHARED).unwrap() as *mut u32;
    // SAFETY: one is a managed region of 2048 words.
    unsafe { one.write(0x55) };
    // The command queue stops fetching: the fault's PTE_WRITEs and REPLAY stay queued,
    // the kernel times out, and the soft reset forgets the commands.
    let ctrl = npu::regs::CTRL.offset;
    s.npu.with_io(|io| {
        let v = io.read32(ctrl).unwrap();
        io.write32(ctrl, npu::regs::ctrl::CMDQ_EN.put32(v, 0)).unwrap();
    });
    let before = s.npu.stats();
    let r = s.launch(Kernel::strided_touch(s.asid, one as u64, 4096, 1, None));
    assert!(r.is_err(), "the kernel cannot finish without its REPLAY");
    assert!(s.npu.stats().pte_commands > before.pte_commands, "the fault's PTEs went as commands");
    s.npu.recover().unwrap();
    // The driver wrote them again (by DMA): the device's tables map the pages.
    let dump = s.npu.pte_dump(gmem_host::Asid(u32::from(s.asid)), false).unwrap();
    let line = format!("{:#014x}..{:#014x} L0 4K VRW---AD -> device frame", one as u64, one as u64 + 4096);
    assert!(dump.lines().any(|l| l == line), "no `{line}` in\n{dump}");
}

/// The first kernel launch over `pages` CPU-resident pages: the transport's counters
/// before and after, and the words the kernel copied.
fn first_copy(cfg: NpuConfig, pages: u32) -> (sim_bridge::TransportStats, sim_bridge::TransportStats, Vec<u32>) {
    let dev = SimDevice::new(SimConfig { timing: TimingModel::board(), ..SimConfig::default() }).unwrap();
    let s = Session::open(dev, cfg, manager_config()).unwrap();
    let words = pages * 1024;
    let a = s.gm.mmap(s.space, u64::from(words) * 4, MapFlags::PEER_SHARED).unwrap() as *mut u32;
    let c = s.gm.mmap(s.space, u64::from(words) * 4, MapFlags::PEER_SHARED).unwrap() as *mut u32;
    for i in 0..words as usize {
        // SAFETY: a is a managed region of `words` words.
        unsafe { a.add(i).write(i as u32 * 3) };
    }
    let io0 = s.npu.with_io(|io| io.transport_stats());
    s.launch(Kernel::copy(s.asid, a as u64, c as u64, words)).unwrap();
    let io1 = s.npu.with_io(|io| io.transport_stats());
    // SAFETY: c is a managed region of `words` words; the CPU faults it back.
    let copied = (0..words as usize).map(|i| unsafe { c.add(i).read() }).collect();
    (io0, io1, copied)
}

#[test]
fn the_driver_pushes_through_bar0_only_when_configured_to() {
    // A push is four CSR writes per command (and eight per descriptor) on top of the
    // doorbells; without it the device fetches everything from the rings.
    let (off0, off1, off_data) = first_copy(NpuConfig::default(), 4);
    let (on0, on1, on_data) = first_copy(NpuConfig { push: true, ..NpuConfig::default() }, 4);
    let writes = |a: sim_bridge::TransportStats, b: sim_bridge::TransportStats| b.csr_writes - a.csr_writes;
    assert!(
        writes(on0, on1) >= writes(off0, off1) + 2 * 8,
        "pushed: {} CSR writes, not pushed: {}",
        writes(on0, on1),
        writes(off0, off1)
    );
    assert_eq!(on_data, off_data);
    assert!(off_data.iter().enumerate().all(|(i, &v)| v == i as u32 * 3));
    // Uncached stores leave 150 ns apart on the board-like model: a push's burst waits.
    assert!(on1.write_gap_cycles - on0.write_gap_cycles > off1.write_gap_cycles - off0.write_gap_cycles);
}
