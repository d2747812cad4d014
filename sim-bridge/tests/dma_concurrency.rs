//! Several DMA channels at once with DDR4 device memory, whose half-duplex bus holds a
//! channel's device writes back while reads (its own and other channels') go on: the
//! channel's beat FIFO fills to the last beat, and its read reservation must still count
//! a full FIFO as full. Every byte must land, no RTL assertion may fire and the protocol
//! checkers must see no violation, with the memory ports answering in order and
//! reordered.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use npu::dma::{Dma, DmaAddr, DmaDesc, DmaStatus};
use npu::{DeviceIo, DmaBuffer};
use sim_bridge::{DevMemPreset, LinkPreset, SimConfig, SimDevice, TimingModel};

const BUDGET_NS: u64 = 50_000_000;
/// Bytes each channel moves: more than a channel's 32 KiB beat FIFO holds.
const LEN: usize = 192 * 1024;
const DESCS: usize = 4;
/// Device-memory source of the device → host and device → device copies.
const DEV_SRC: u64 = 0x40_0000;

fn pattern(i: usize) -> u8 {
    ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 29) as u8
}

/// What one channel copies.
#[derive(Clone, Copy, Debug)]
enum Route {
    HostToDev,
    DevToHost,
    DevToDev,
}

/// Runs each `(channel, route)` at once and checks every destination byte, every
/// completion, and that the RTL and the protocol checkers found nothing.
fn copy_concurrently(routes: &[(usize, Route)], axi_reorder: Option<u64>, timing: TimingModel) {
    let mut dev = SimDevice::new(SimConfig { timing, axi_reorder, ..SimConfig::default() }).unwrap();
    let mut dma = Dma::init(&mut dev, 8).unwrap();
    let data: Vec<u8> = (0..LEN).map(pattern).collect();
    let src = DmaBuffer::new(LEN).unwrap();
    src.write(0, &data).unwrap();
    let s = dev.dma_map(&src).unwrap();
    dev.dev_mem_write(DEV_SRC, &data).unwrap();
    let host_dsts: Vec<DmaBuffer> = routes.iter().map(|_| DmaBuffer::new(LEN).unwrap()).collect();
    let step = LEN / DESCS;
    let mut channels = Vec::new();
    for (i, &(c, route)) in routes.iter().enumerate() {
        let dev_dst = 0x80_0000 * (c as u64 + 1);
        let (from, to) = match route {
            Route::HostToDev => (DmaAddr::Host(s), DmaAddr::Device(dev_dst)),
            Route::DevToHost => (DmaAddr::Device(DEV_SRC), DmaAddr::Host(dev.dma_map(&host_dsts[i]).unwrap())),
            Route::DevToDev => (DmaAddr::Device(DEV_SRC), DmaAddr::Device(dev_dst)),
        };
        let at = |a: DmaAddr, off: u64| match a {
            DmaAddr::Host(x) => DmaAddr::Host(x + off),
            DmaAddr::Device(x) => DmaAddr::Device(x + off),
        };
        let descs: Vec<DmaDesc> = (0..DESCS)
            .map(|k| {
                let off = (k * step) as u64;
                DmaDesc::copy(at(from, off), at(to, off), step as u32, (16 * c + k) as u16)
            })
            .collect();
        dma.submit(&mut dev, c, &descs).unwrap();
        channels.push(c);
    }
    let cpls = dma
        .wait_idle(&mut dev, &channels, BUDGET_NS)
        .unwrap_or_else(|e| panic!("{routes:?} reorder {axi_reorder:?}: {e}"));
    assert_eq!(cpls.len(), routes.len() * DESCS);
    assert!(cpls.iter().all(|c| c.status == DmaStatus::Ok && c.bytes == step as u32), "{cpls:?}");
    let mut got = vec![0u8; LEN];
    for (i, &(c, route)) in routes.iter().enumerate() {
        match route {
            Route::DevToHost => host_dsts[i].read(0, &mut got).unwrap(),
            Route::HostToDev | Route::DevToDev => dev.dev_mem_read(0x80_0000 * (c as u64 + 1), &mut got).unwrap(),
        }
        assert!(got == data, "channel {c} ({route:?}) bytes, reorder {axi_reorder:?}");
    }
    assert_eq!(dev.axi_violation(), None);
    let (host, devp) = dev.port_stats();
    assert_eq!((host.protocol_violations, devp.protocol_violations), (0, 0));
}

/// Channel 0 host → device beside channel 2 device → device.
const H2D_D2D: [(usize, Route); 2] = [(0, Route::HostToDev), (2, Route::DevToDev)];
/// All three channels, channel 1 device → host.
const ALL: [(usize, Route); 3] = [(0, Route::HostToDev), (1, Route::DevToHost), (2, Route::DevToDev)];

#[test]
fn host_to_dev_beside_dev_to_dev_on_the_board_in_order() {
    copy_concurrently(&H2D_D2D, None, TimingModel::board());
    copy_concurrently(&ALL, None, TimingModel::board());
}

#[test]
fn host_to_dev_beside_dev_to_dev_on_the_board_reordered() {
    copy_concurrently(&H2D_D2D, Some(3), TimingModel::board());
    copy_concurrently(&ALL, Some(4), TimingModel::board());
}

#[test]
fn ideal_link_with_ddr4_device_memory() {
    let timing = TimingModel::new(LinkPreset::Ideal, DevMemPreset::Ddr4);
    copy_concurrently(&H2D_D2D, None, timing);
    copy_concurrently(&ALL, Some(5), timing);
}
