//! Direct tests of the model through its `DeviceIo` face and its device-memory
//! backdoor: the DMA engine with the driver's rings here, the other units in the
//! submodules with local ring helpers ([`rig`]).

mod commands;
mod faults;
mod kernels;
mod mmu;
mod rig;

use super::*;
use npu::DmaBuffer;
use npu::dma::{Dma, DmaAddr, DmaDesc, DmaStatus};

const BUDGET: u64 = 1_000_000;

fn pattern(i: usize) -> u8 {
    (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) as u8
}

struct Rig {
    dev: ModelDevice,
    dma: Dma,
    _src: DmaBuffer,
    src_iova: u64,
    dst: DmaBuffer,
    dst_iova: u64,
}

fn rig() -> Rig {
    let mut dev = ModelDevice::default();
    let dma = Dma::init(&mut dev, 4).unwrap();
    let src = DmaBuffer::new(64 << 10).unwrap();
    let dst = DmaBuffer::new(64 << 10).unwrap();
    src.write(0, &(0..64 << 10).map(pattern).collect::<Vec<_>>()).unwrap();
    dst.write(0, &vec![0xA5; 64 << 10]).unwrap();
    let src_iova = dev.dma_map(&src).unwrap();
    let dst_iova = dev.dma_map(&dst).unwrap();
    Rig { dev, dma, _src: src, src_iova, dst, dst_iova }
}

impl Rig {
    fn run(&mut self, ch: usize, descs: &[DmaDesc]) -> Vec<(u16, DmaStatus, u32, u16)> {
        self.dma.submit(&mut self.dev, ch, descs).unwrap();
        let c = self.dma.wait_idle(&mut self.dev, &[ch], BUDGET).unwrap();
        c.iter().map(|c| (c.tag, c.status, c.bytes, c.index)).collect()
    }
}

#[test]
fn identity_and_register_access_kinds() {
    let mut d = ModelDevice::default();
    assert_eq!(d.read32(regs::ID.offset).unwrap(), regs::NPU_ID);
    assert_eq!(d.read32(regs::VERSION.offset).unwrap(), regs::NPU_VERSION);
    assert_eq!(d.read32(regs::CAPS0.offset).unwrap(), 0x0620_1003);
    assert_eq!(d.read32(regs::CAPS1.offset).unwrap(), 0x2804_0100);
    d.write32(regs::ID.offset, 0).unwrap();
    assert_eq!(d.read32(regs::ID.offset).unwrap(), regs::NPU_ID, "const ignores writes");
    d.write32(regs::CTRL.offset, 0xFFFF_FFFF).unwrap();
    assert_eq!(d.read32(regs::CTRL.offset).unwrap(), 0x1F, "rw keeps its mask only");
    d.write32(regs::DMA_CPL_BASE_LO.at(1).unwrap(), 0xFFFF_FFFF).unwrap();
    assert_eq!(d.read32(regs::DMA_CPL_BASE_LO.at(1).unwrap()).unwrap(), 0xFFFF_FFF0);
    assert_eq!(d.read32(regs::INT_ACK.offset).unwrap(), 0, "wo reads 0");
    d.write32(regs::ERRINJ_POISON.offset, 7).unwrap();
    assert_eq!(d.read32(regs::ERRINJ_POISON.offset).unwrap(), 7, "hwext reads the count");
    assert!(matches!(d.read32(0x030), Err(IoError::Csr { kind: "read", offset: 0x030, .. })));
    assert!(matches!(d.write32(0x013, 1), Err(IoError::Csr { kind: "write", offset: 0x013, .. })));
    assert!(matches!(d.read32(0x1000), Err(IoError::CsrOutOfRange { offset: 0x1000, .. })));
}

#[test]
fn perf_hi_is_a_shadow_latched_by_perf_lo() {
    let mut d = ModelDevice::default();
    d.advance(4 * (1 << 33)).unwrap();
    let lo = d.read32(regs::PERF_LO.at(0).unwrap()).unwrap();
    let hi = d.read32(regs::PERF_HI.at(5).unwrap()).unwrap();
    assert_eq!((u64::from(hi) << 32) | u64::from(lo), 1 << 33, "CYCLES counts virtual cycles");
    let csr = d.read64(regs::PERF_LO.at(regs::perf_ctr::CSR_ACCESSES as u32).unwrap()).unwrap();
    assert_eq!(csr, 2, "accesses before this one");
    d.write32(regs::PERF_CTRL.offset, 1).unwrap();
    assert_eq!(d.read64(regs::PERF_LO.at(0).unwrap()).unwrap(), 0);
}

#[test]
fn copies_in_every_direction_with_guards() {
    let mut r = rig();
    let (s, t) = (r.src_iova, r.dst_iova);
    let c = r.run(
        0,
        &[
            DmaDesc::copy(DmaAddr::Host(s + 3), DmaAddr::Device(0x1FFF), 9000, 1),
            DmaDesc::copy(DmaAddr::Device(0x1FFF), DmaAddr::Device(0x10_0001), 9000, 2),
            DmaDesc::copy(DmaAddr::Device(0x10_0001), DmaAddr::Host(t + 4095), 9000, 3),
            DmaDesc::copy(DmaAddr::Host(s), DmaAddr::Host(t + 20_000), 1, 4),
            DmaDesc::zero(DmaAddr::Host(t + 4095 + 100), 10, 5),
        ],
    );
    assert_eq!(
        c,
        [
            (1, DmaStatus::Ok, 9000, 0),
            (2, DmaStatus::Ok, 9000, 1),
            (3, DmaStatus::Ok, 9000, 2),
            (4, DmaStatus::Ok, 1, 3),
            (5, DmaStatus::Ok, 10, 4)
        ]
    );
    let mut got = vec![0u8; 64 << 10];
    r.dst.read(0, &mut got).unwrap();
    for (i, &b) in got.iter().enumerate() {
        let want = match i {
            4195..4205 => 0,
            4095..13095 => pattern(i - 4095 + 3),
            20_000 => pattern(0),
            _ => 0xA5,
        };
        assert_eq!(b, want, "byte {i}");
    }
    assert_eq!(r.dev.read64(regs::PERF_LO.at(regs::perf_ctr::DMA0_BYTES as u32).unwrap()).unwrap(), 27_011);
}

#[test]
fn bad_descriptor_halts_and_resume_continues_after_it() {
    let mut r = rig();
    let s = r.src_iova;
    let mut irq = 0;
    r.dev.write32(regs::INT_MASK.offset, 0x7F).unwrap();
    let c = r.run(
        2,
        &[
            DmaDesc::copy(DmaAddr::Host(s), DmaAddr::Device(0), 100, 1),
            DmaDesc::copy(DmaAddr::Host(s), DmaAddr::Device((256 << 20) - 99), 100, 2),
            DmaDesc::copy(DmaAddr::Host(s), DmaAddr::Device(200), 100, 3),
        ],
    );
    assert_eq!(c, [(1, DmaStatus::Ok, 100, 0), (2, DmaStatus::BadDesc, 0, 1)]);
    irq |= r.dev.wait_irq(0x7F, 1000).unwrap();
    assert_eq!(irq, 1 << 4, "DMA2 for the error completion");
    let st = r.dev.read32(regs::DMA_CH_STATUS.at(2).unwrap()).unwrap();
    assert_eq!(st, 0b10, "halted, not busy");
    assert_eq!(r.dev.read32(regs::DMA_DESC_HEAD.at(2).unwrap()).unwrap(), 2, "HEAD after the failed one");
    r.dev.write32(regs::INT_ACK.offset, 1 << 4).unwrap();
    assert_eq!(r.dev.wait_irq(0x7F, 1000).unwrap(), 0, "acknowledged");
    r.dma.resume(&mut r.dev, 2).unwrap();
    let c = r.dma.wait_idle(&mut r.dev, &[2], BUDGET).unwrap();
    assert_eq!((c[0].tag, c[0].status, c[0].index), (3, DmaStatus::Ok, 2));
}

#[test]
fn injected_errors_count_bursts_not_descriptors() {
    let mut r = rig();
    let s = r.src_iova;
    // A 4 KiB copy from an offset of 1 is two read bursts and two write bursts.
    r.dev.write32(regs::ERRINJ_HOST_RD.offset, 3).unwrap();
    let c = r.run(0, &[DmaDesc::copy(DmaAddr::Host(s + 1), DmaAddr::Device(0x1001), 4096, 1)]);
    assert_eq!(c, [(1, DmaStatus::HostRead, 0, 0)]);
    assert_eq!(r.dev.read32(regs::ERRINJ_HOST_RD.offset).unwrap(), 2, "the first burst failed, nothing more issued");
    r.dev.write32(regs::ERRINJ_HOST_RD.offset, 0).unwrap();
    r.dma.resume(&mut r.dev, 0).unwrap();
    let c = r.run(0, &[DmaDesc::copy(DmaAddr::Host(s + 1), DmaAddr::Device(0x1001), 4096, 2)]);
    assert_eq!(c, [(2, DmaStatus::Ok, 4096, 1)]);
    // Destination 0x3001 + 4096 crosses one 4 KiB line: two write bursts; the first fails.
    r.dev.write32(regs::ERRINJ_DEV_WR.offset, 2).unwrap();
    let c = r.run(0, &[DmaDesc::copy(DmaAddr::Host(s), DmaAddr::Device(0x3001), 4096, 3)]);
    assert_eq!(c, [(3, DmaStatus::DevWrite, 0, 2)]);
    assert_eq!(r.dev.read32(regs::ERRINJ_DEV_WR.offset).unwrap(), 1, "no burst after the failed one");
    r.dev.write32(regs::ERRINJ_DEV_WR.offset, 0).unwrap();
    r.dev.write32(regs::ERRINJ_POISON.offset, 1).unwrap();
    r.dma.resume(&mut r.dev, 0).unwrap();
    let c = r.run(0, &[DmaDesc::copy(DmaAddr::Host(s), DmaAddr::Device(0x5000), 64, 4)]);
    assert_eq!(c, [(4, DmaStatus::Poison, 0, 3)]);
    let mut z = [1u8; 64];
    r.dev.backdoor_read(0x5000, &mut z).unwrap();
    assert_eq!(z, [0; 64], "poisoned data is never written");
}

#[test]
fn write_error_counts_the_chunks_before_it() {
    let mut d = ModelDevice::default();
    let mut dma = Dma::init(&mut d, 4).unwrap();
    let buf = DmaBuffer::new(8192).unwrap();
    buf.write(0, &[0xA5; 8192]).unwrap();
    let iova = d.dma_map(&buf).unwrap();
    d.backdoor_write(0, &(0..8192).map(pattern).collect::<Vec<_>>()).unwrap();
    // Chunks of [iova + 0xFF0, +4128): 16 bytes, 4096 bytes, then 16 bytes past the mapping.
    let desc = DmaDesc::copy(DmaAddr::Device(0), DmaAddr::Host(iova + 0xFF0), 4128, 7);
    d.write32(regs::ERRINJ_HOST_WR.offset, 1).unwrap();
    dma.submit(&mut d, 1, &[desc]).unwrap();
    let c = dma.wait_idle(&mut d, &[1], BUDGET).unwrap();
    assert_eq!((c[0].status, c[0].bytes), (DmaStatus::HostWrite, 0), "the first chunk's burst was injected");
    let mut got = vec![0u8; 8192];
    buf.read(0, &mut got).unwrap();
    assert!(got.iter().all(|&b| b == 0xA5), "an injected write burst modifies nothing, and nothing follows it");
    dma.resume(&mut d, 1).unwrap();
    dma.submit(&mut d, 1, &[desc]).unwrap();
    let c = dma.wait_idle(&mut d, &[1], BUDGET).unwrap();
    assert_eq!((c[0].status, c[0].bytes, c[0].index), (DmaStatus::HostWrite, 4112, 1), "two chunks acknowledged");
    buf.read(0, &mut got).unwrap();
    for (i, &b) in got.iter().enumerate() {
        let want = if i >= 0xFF0 { pattern(i - 0xFF0) } else { 0xA5 };
        assert_eq!(b, want, "byte {i}");
    }
}

#[test]
fn completion_ring_full_waits_and_failed_completion_latches_err_info() {
    let mut d = ModelDevice::default();
    let mut dma = Dma::init(&mut d, 2).unwrap();
    // Move CPL_HEAD so that the ring has room for one completion only.
    let descs: Vec<DmaDesc> = (0..3).map(|i| DmaDesc::zero(DmaAddr::Device(i * 64), 64, i as u16)).collect();
    dma.submit(&mut d, 0, &descs).unwrap();
    d.advance(1000).unwrap();
    assert_eq!(d.read32(regs::DMA_CPL_TAIL.at(0).unwrap()).unwrap(), 3, "three fit a 4-entry ring");
    let c = dma.completions(&mut d, 0).unwrap();
    assert_eq!(c.len(), 3);
    // Unmap channel 1's completion ring: the completion cannot be written.
    let base = d.read64(regs::DMA_CPL_BASE_LO.at(1).unwrap()).unwrap();
    d.dma_unmap(base).unwrap();
    d.write32(regs::INT_MASK.offset, 0x7F).unwrap();
    dma.submit(&mut d, 1, &[DmaDesc::zero(DmaAddr::Device(0), 1, 1), DmaDesc::zero(DmaAddr::Device(1), 1, 2)]).unwrap();
    assert_eq!(d.wait_irq(0x7F, 10_000).unwrap(), 1 << regs::int_cause::ERROR);
    assert_eq!(d.read32(regs::ERR_INFO.offset).unwrap(), (4 << 8) | regs::dma_error::CPL_WRITE as u32);
    assert_eq!(d.read32(regs::STATUS.offset).unwrap(), 1 << regs::status::ERROR.lsb);
    assert_eq!(d.read32(regs::DMA_CH_STATUS.at(1).unwrap()).unwrap(), 0b10);
    d.write32(regs::DMA_CH_CTRL.at(1).unwrap(), 1).unwrap();
    assert_eq!(d.read32(regs::DMA_CH_STATUS.at(1).unwrap()).unwrap(), 0b10, "RESUME ignored until soft reset");
    d.write32(regs::RESET.offset, 1).unwrap();
    for r in [regs::ERR_INFO, regs::STATUS, regs::INT_STATUS] {
        assert_eq!(d.read32(r.offset).unwrap(), 0, "{} after soft reset", r.name);
    }
    assert_eq!(d.read32(regs::DMA_CH_STATUS.at(1).unwrap()).unwrap(), 0);
    assert_eq!(d.read32(regs::DMA_DESC_TAIL.at(0).unwrap()).unwrap(), 0, "host-owned index cleared");
    assert_ne!(d.read32(regs::DMA_DESC_BASE_LO.at(0).unwrap()).unwrap(), 0, "bases kept");
    assert_eq!(d.read32(regs::CTRL.offset).unwrap(), 1 << regs::ctrl::DMA_EN.lsb, "CTRL kept");
}

#[test]
fn hang_stops_the_engine_and_time_is_virtual() {
    let mut d = ModelDevice::default();
    let mut dma = Dma::init(&mut d, 2).unwrap();
    d.write32(regs::ERRINJ_HANG.offset, 1).unwrap();
    dma.submit(&mut d, 0, &[DmaDesc::zero(DmaAddr::Device(0), 8, 1)]).unwrap();
    let t0 = d.now_ns();
    assert!(matches!(dma.wait_idle(&mut d, &[0], 10_000), Err(npu::dma::DmaError::Timeout { .. })));
    assert!(d.now_ns() - t0 > 10_000, "the budget passed in device time");
    assert_eq!(d.read32(regs::DMA_CH_STATUS.at(0).unwrap()).unwrap(), 1, "busy while hung");
    d.write32(regs::ERRINJ_HANG.offset, 0).unwrap();
    assert_eq!(dma.wait_idle(&mut d, &[0], 10_000).unwrap()[0].status, DmaStatus::Ok);
}
