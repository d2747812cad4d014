//! The system model's charges show in cycle counts: a CSR read's round trip, a posted
//! write's flight, an interrupt's delivery, the host's modelled software time; and every
//! preset is deterministic.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use gmem_host::{GmMmu, HostWork};
use npu::dma::{Dma, DmaAddr, DmaDesc};
use npu::{DeviceIo, DmaBuffer, HostTime, NpuConfig, regs};
use sim_bridge::{DevMemPreset, LinkPreset, MmioCost, SimConfig, SimDevice, TimingModel};

fn device(mmio: MmioCost) -> SimDevice {
    let timing = TimingModel { mmio, ..TimingModel::default() };
    SimDevice::new(SimConfig { timing, ..SimConfig::default() }).unwrap()
}

/// Cycles one `read32` of SCRATCH takes through the transport.
fn read_cycles(dev: &mut SimDevice) -> u64 {
    let t0 = dev.cycles();
    dev.read32(regs::SCRATCH.offset).unwrap();
    dev.cycles() - t0
}

#[test]
fn a_csr_read_costs_its_non_posted_round_trip() {
    let free = read_cycles(&mut device(MmioCost::FREE));
    let board = read_cycles(&mut device(MmioCost { read_ns: 1_000, ..MmioCost::FREE }));
    assert_eq!(board - free, 250, "1 µs = 250 cycles at 250 MHz on top of the AXI4-Lite transaction");
}

#[test]
fn a_posted_write_lands_after_its_flight_and_a_read_never_passes_it() {
    let mut dev = device(MmioCost { write_ns: 400, ..MmioCost::FREE });
    let t0 = dev.cycles();
    dev.write32(regs::SCRATCH.offset, 0xC0FFEE).unwrap();
    assert_eq!(dev.cycles(), t0, "the host does not wait for a posted write");
    assert_eq!(dev.csr_read32(regs::SCRATCH.offset).unwrap(), 0, "not at the device yet");
    dev.advance(400).unwrap();
    assert_eq!(dev.csr_read32(regs::SCRATCH.offset).unwrap(), 0xC0FFEE, "arrived 100 cycles later");
    // A read right behind a write sees it (PCIe ordering: reads do not pass posted writes).
    dev.write32(regs::SCRATCH.offset, 7).unwrap();
    assert_eq!(dev.read32(regs::SCRATCH.offset).unwrap(), 7);
}

#[test]
fn uncached_writes_leave_one_at_a_time_and_the_host_waits_for_each() {
    // 400 ns flight, 148 ns between stores: 100 and 37 cycles at 250 MHz.
    let mut dev = device(MmioCost { write_ns: 400, write_gap_ns: 148, ..MmioCost::FREE });
    let t0 = dev.cycles();
    for v in 1..=4 {
        dev.write32(regs::SCRATCH.offset, v).unwrap();
    }
    assert_eq!(dev.cycles() - t0, 3 * 37, "the first store goes at once, each later one 37 cycles after it");
    assert_eq!(dev.transport_stats().write_gap_cycles, 3 * 37);
    // The last store left at t0 + 111 and flies 100 cycles: not there one cycle before.
    dev.advance(99).unwrap();
    assert_eq!(dev.csr_read32(regs::SCRATCH.offset).unwrap(), 3, "the third store arrived, the fourth not yet");
    dev.advance(1).unwrap();
    assert_eq!(dev.csr_read32(regs::SCRATCH.offset).unwrap(), 4);
    // Once the gap has passed, the next store goes at once; a read right behind it
    // waits until it has left.
    let t1 = dev.cycles();
    dev.write32(regs::SCRATCH.offset, 5).unwrap();
    assert_eq!(dev.cycles(), t1);
    // Without the gap the same read costs its transaction and the store's delivery
    // ahead of it (a read does not pass a posted write).
    let mut ungapped = device(MmioCost { write_ns: 400, ..MmioCost::FREE });
    ungapped.write32(regs::SCRATCH.offset, 5).unwrap();
    assert_eq!(read_cycles(&mut dev), 37 + read_cycles(&mut ungapped), "the read left after the store");
    assert_eq!(dev.transport_stats().write_gap_cycles, 4 * 37);
    // Without a gap any number leave at once.
    let mut free = device(MmioCost { write_ns: 400, ..MmioCost::FREE });
    let t2 = free.cycles();
    for v in 1..=4 {
        free.write32(regs::SCRATCH.offset, v).unwrap();
    }
    assert_eq!((free.cycles(), free.transport_stats().write_gap_cycles), (t2, 0));
}

/// Cycles from the doorbell of one 4 KiB H2D copy to `wait_irq` returning.
fn dma_irq_cycles(timing: TimingModel) -> u64 {
    let mut dev = SimDevice::new(SimConfig { timing, ..SimConfig::default() }).unwrap();
    let mut dma = Dma::init(&mut dev, 6).unwrap();
    let buf = DmaBuffer::new(1 << 16).unwrap();
    let iova = dev.dma_map(&buf).unwrap();
    dev.write32(regs::INT_MASK.offset, 1 << regs::int_cause::DMA0).unwrap();
    let mut d = DmaDesc::copy(DmaAddr::Host(iova), DmaAddr::Device(0), 4096, 1);
    d.irq = true;
    let t0 = dev.cycles();
    dma.submit(&mut dev, 0, &[d]).unwrap();
    assert_ne!(dev.wait_irq(1 << regs::int_cause::DMA0, 1_000_000).unwrap(), 0);
    dev.cycles() - t0
}

#[test]
fn an_interrupt_reaches_the_driver_after_its_delivery_time() {
    let free = dma_irq_cycles(TimingModel::default());
    let irq = TimingModel { mmio: MmioCost { irq_ns: 3_000, ..MmioCost::FREE }, ..TimingModel::default() };
    assert_eq!(dma_irq_cycles(irq) - free, 750, "3 µs of MSI-X delivery and wake-up");
}

#[test]
fn modelled_host_time_advances_a_simulated_clock_and_measured_mode_leaves_it_to_the_bridge() {
    let open = |host_time| {
        let dev = SimDevice::new(SimConfig::default()).unwrap();
        npu::session::Session::open(
            dev,
            NpuConfig { host_time, ..NpuConfig::default() },
            npu::session::manager_config(),
        )
        .unwrap()
    };
    let s = open(HostTime::default());
    let t0 = s.now_ns();
    s.npu.host_work(HostWork::FaultBatch { faults: 4 });
    assert_eq!(s.now_ns() - t0, 200 + 4 * 100, "one batch plus four faults at the default costs");
    let t0 = s.now_ns();
    s.npu.host_work(HostWork::Migration { to_device: 16, to_host: 2 });
    assert_eq!(s.now_ns() - t0, 3_000 + 16 * 430 + 2 * 1_070, "a round, 16 pages in and two out");
    let t0 = s.now_ns();
    s.npu.host_work(HostWork::CpuFault);
    assert_eq!(s.now_ns() - t0, 3_500);
    drop(s);
    let m = open(HostTime::Measured);
    let t0 = m.now_ns();
    m.npu.host_work(HostWork::Hint { pages: 16 });
    assert_eq!(m.now_ns(), t0, "measured mode: the driver charges nothing itself");
}

#[test]
fn every_preset_is_deterministic_and_slower_links_cost_more() {
    let mut last = 0;
    for (link, mem) in [
        (LinkPreset::Short, DevMemPreset::Ideal),
        (LinkPreset::Ideal, DevMemPreset::Ideal),
        (LinkPreset::Gen5x16, DevMemPreset::Hbm),
        (LinkPreset::Gen3x16, DevMemPreset::Ddr4),
    ] {
        let t = TimingModel::new(link, mem);
        let (a, b) = (dma_irq_cycles(t), dma_irq_cycles(t));
        assert_eq!(a, b, "{} is deterministic", t.describe());
        assert!(a > last, "{}: {a} cycles after {last}", t.describe());
        last = a;
    }
}

/// A board-like device with DMA set up and a 4 KiB host buffer filled with 0xAA; a
/// zero-fill of its first 64 bytes is submitted on channel 1 (device → host).
fn zero_fill_to_host() -> (SimDevice, Dma, DmaBuffer) {
    let timing = TimingModel::board();
    let mut dev = SimDevice::new(SimConfig { timing, ..SimConfig::default() }).unwrap();
    let mut dma = Dma::init(&mut dev, 6).unwrap();
    dma.set_push(false); // from the ring: the descriptor fetch is part of the path
    let buf = DmaBuffer::new(4096).unwrap();
    buf.write(0, &[0xAA; 64]).unwrap();
    let iova = dev.dma_map(&buf).unwrap();
    dma.submit(&mut dev, 1, &[DmaDesc::zero(DmaAddr::Host(iova), 64, 1)]).unwrap();
    (dev, dma, buf)
}

#[test]
fn wait_host_sees_a_device_write_in_the_cycle_it_becomes_visible() {
    // Reference: look after every single cycle.
    let (mut dev, _dma, buf) = zero_fill_to_host();
    let t0 = dev.cycles();
    while buf.read_u32(0).unwrap() != 0 {
        dev.advance(4).unwrap();
        assert!(dev.cycles() - t0 < 10_000, "the zero-fill never became visible");
    }
    let polled = dev.cycles() - t0;
    drop(dev); // one Verilated model per process at a time
    // The same run waiting in wait_host: neither earlier nor later.
    let (mut dev, _dma, buf) = zero_fill_to_host();
    let t0 = dev.cycles();
    assert!(dev.wait_host(1_000_000, &mut || buf.read_u32(0).unwrap() == 0).unwrap());
    assert_eq!(dev.cycles() - t0, polled);
    // Doorbell flight (100 cycles), descriptor fetch (a read round trip, > 200 cycles),
    // then the write's flight to host memory (100 cycles) at the least.
    assert!(polled > 400, "visible after {polled} cycles: sooner than a board could");
    assert!(!dev.wait_host(1_000, &mut || false).unwrap(), "a predicate that never holds times out");
}

#[test]
fn a_csr_read_that_shows_a_completion_shows_its_data_and_record_too() {
    let (mut dev, mut dma, buf) = zero_fill_to_host();
    let tail = regs::DMA_CPL_TAIL.at(1).unwrap();
    while dev.read32(tail).unwrap() == 0 {}
    // The read's completion could not pass the device's posted writes before it.
    assert_eq!(buf.read_u32(0).unwrap(), 0, "the data landed");
    let done = dma.completions(&mut dev, 1).unwrap();
    assert_eq!(done.len(), 1, "the completion record landed");
}
