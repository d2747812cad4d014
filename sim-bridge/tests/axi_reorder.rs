//! The memory ports answering different AXI IDs out of order (and interleaving R beats
//! of different IDs), seeded: the RTL's ID routing must keep every byte in place, the
//! protocol checker must see no violation, and the same seed must give the same run.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use npu::dma::{Dma, DmaAddr, DmaDesc, DmaStatus};
use npu::{DeviceIo, DmaBuffer};
use sim_bridge::{MmioCost, PortStats, SimConfig, SimDevice, StallPattern, TimingModel};

const BUDGET_NS: u64 = 50_000_000;
const LEN: usize = 192 * 1024;

fn pattern(i: usize) -> u8 {
    ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 29) as u8
}

/// Result of one run: device cycles, (host, device) port statistics.
type Run = (u64, PortStats, PortStats);

/// All three DMA channels at once, so both ports carry bursts of several IDs together:
/// channel 0 host → device, channel 1 device → host, channel 2 alternating host → device
/// and device → device (two readers on each port, writers of several IDs on both).
fn three_channels(axi_reorder: Option<u64>, timing: TimingModel) -> Run {
    let mut dev = SimDevice::new(SimConfig { timing, axi_reorder, ..SimConfig::default() }).unwrap();
    let mut dma = Dma::init(&mut dev, 8).unwrap();
    let src = DmaBuffer::new(LEN).unwrap();
    let dst = DmaBuffer::new(LEN).unwrap();
    let data: Vec<u8> = (0..LEN).map(pattern).collect();
    src.write(0, &data).unwrap();
    let (s, d) = (dev.dma_map(&src).unwrap(), dev.dma_map(&dst).unwrap());
    const STAGED: u64 = 0x40_0000;
    dev.dev_mem_write(STAGED, &data).unwrap();
    let step = LEN / 4;
    let copy = |k: usize, src: DmaAddr, dst: DmaAddr, tag: u16| {
        let off = (k * step) as u64;
        let at = |a: DmaAddr| match a {
            DmaAddr::Host(x) => DmaAddr::Host(x + off),
            DmaAddr::Device(x) => DmaAddr::Device(x + off),
        };
        DmaDesc::copy(at(src), at(dst), step as u32, tag + k as u16)
    };
    let h2d: Vec<_> = (0..4).map(|k| copy(k, DmaAddr::Host(s), DmaAddr::Device(0), 10)).collect();
    let d2h: Vec<_> = (0..4).map(|k| copy(k, DmaAddr::Device(STAGED), DmaAddr::Host(d), 20)).collect();
    let mixed: Vec<_> = (0..4)
        .map(|k| {
            let from = if k % 2 == 0 { DmaAddr::Host(s) } else { DmaAddr::Device(STAGED) };
            copy(k, from, DmaAddr::Device(0x80_0000), 30)
        })
        .collect();
    dma.submit(&mut dev, 0, &h2d).unwrap();
    dma.submit(&mut dev, 1, &d2h).unwrap();
    dma.submit(&mut dev, 2, &mixed).unwrap();
    let c = dma.wait_idle(&mut dev, &[0, 1, 2], BUDGET_NS).unwrap();
    assert_eq!(c.len(), 12);
    assert!(c.iter().all(|c| c.status == DmaStatus::Ok && c.bytes == (LEN / 4) as u32), "{c:?}");
    let mut got = vec![0u8; LEN];
    dst.read(0, &mut got).unwrap();
    assert!(got == data, "D2H bytes");
    for base in [0u64, 0x80_0000] {
        dev.dev_mem_read(base, &mut got).unwrap();
        assert!(got == data, "device bytes at {base:#x}");
    }
    assert_eq!(dev.axi_violation(), None);
    let (host, devp) = dev.port_stats();
    (dev.cycles(), host, devp)
}

#[test]
fn out_of_order_answers_keep_every_byte_and_the_protocol() {
    let (_, host, dev) = three_channels(Some(1), TimingModel::default());
    assert!(host.reordered > 0 && dev.reordered > 0, "answers really were out of order: {host:?} {dev:?}");
    assert_eq!((host.protocol_violations, dev.protocol_violations), (0, 0));
}

#[test]
fn out_of_order_answers_under_stalls_and_timed_links() {
    let stalls = TimingModel {
        host_stalls: Some(StallPattern { seed: 7, percent: 30 }),
        dev_stalls: Some(StallPattern { seed: 8, percent: 40 }),
        ..TimingModel::default()
    };
    // PCIe Gen3 x16 on the host port, DDR4 device memory; the three doorbells leave
    // together (no uncached-store spacing), so the channels' device reads overlap.
    let board = TimingModel::board();
    let board = TimingModel { mmio: MmioCost { write_gap_ns: 0, ..board.mmio }, ..board };
    let (_, host, dev) = three_channels(Some(2), stalls);
    assert!(host.reordered > 0 && dev.reordered > 0, "{host:?} {dev:?}");
    // The PCIe model delivers read completions serially in request order, so host-port
    // beats are due one burst after another and only the device port reorders reads.
    let (_, host, dev) = three_channels(Some(2), board);
    assert!(dev.reordered > 0, "{host:?} {dev:?}");
}

#[test]
fn in_order_mode_never_reorders() {
    let (_, host, dev) = three_channels(None, TimingModel::default());
    assert_eq!((host.reordered, dev.reordered), (0, 0));
}

#[test]
fn same_seed_same_order_and_cycles() {
    let a = three_channels(Some(5), TimingModel::default());
    assert_eq!(three_channels(Some(5), TimingModel::default()), a);
    assert_ne!(three_channels(Some(6), TimingModel::default()), a, "another seed, another order");
}
