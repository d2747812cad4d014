//! The RTL DMA engine through the bridge: data, alignment, guards, errors, timing.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use npu::dma::{Dma, DmaAddr, DmaDesc, DmaStatus};
use npu::{DeviceIo, DmaBuffer, regs};
use sim_bridge::{SimConfig, SimDevice, StallPattern, TimingModel};

const GUARD: u8 = 0xA5;
const BUDGET_NS: u64 = 50_000_000;

fn device(timing: TimingModel) -> SimDevice {
    SimDevice::new(SimConfig { timing, ..SimConfig::default() }).expect("model builds")
}

/// Deterministic pattern byte for position `i` of buffer `seed`.
fn pattern(seed: u64, i: usize) -> u8 {
    let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    (x >> 29) as u8
}

struct Rig {
    dev: SimDevice,
    dma: npu::dma::Dma,
    _src: DmaBuffer,
    src_iova: u64,
    dst: DmaBuffer,
    dst_iova: u64,
}

const BUF: usize = 5 << 20;

fn rig(timing: TimingModel) -> Rig {
    let mut dev = device(timing);
    let dma = npu::dma::Dma::init(&mut dev, 8).unwrap();
    let src = DmaBuffer::new(BUF).unwrap();
    let dst = DmaBuffer::new(BUF).unwrap();
    let fill: Vec<u8> = (0..BUF).map(|i| pattern(1, i)).collect();
    src.write(0, &fill).unwrap();
    dst.write(0, &vec![GUARD; BUF]).unwrap();
    let src_iova = dev.dma_map(&src).unwrap();
    let dst_iova = dev.dma_map(&dst).unwrap();
    Rig { dev, dma, _src: src, src_iova, dst, dst_iova }
}

impl Rig {
    fn run(&mut self, ch: usize, descs: &[DmaDesc]) -> Vec<npu::dma::DmaCompletion> {
        self.dma.submit(&mut self.dev, ch, descs).unwrap();
        self.dma.wait_idle(&mut self.dev, &[ch], BUDGET_NS).unwrap()
    }

    /// Host → device → host round trip of `len` bytes through device memory, with
    /// chosen offsets, then checks every byte of the destination buffer.
    fn round_trip(&mut self, src_off: usize, dev_addr: u64, dst_off: usize, len: usize) {
        let h2d =
            DmaDesc::copy(DmaAddr::Host(self.src_iova + src_off as u64), DmaAddr::Device(dev_addr), len as u32, 1);
        let c = self.run(0, &[h2d]);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].status, c[0].bytes, c[0].tag), (DmaStatus::Ok, len as u32, 1), "H2D len {len}");
        let d2h =
            DmaDesc::copy(DmaAddr::Device(dev_addr), DmaAddr::Host(self.dst_iova + dst_off as u64), len as u32, 2);
        let c = self.run(1, &[d2h]);
        assert_eq!((c[0].status, c[0].bytes, c[0].tag), (DmaStatus::Ok, len as u32, 2), "D2H len {len}");
        let mut got = vec![0u8; BUF];
        self.dst.read(0, &mut got).unwrap();
        for (i, &b) in got.iter().enumerate() {
            let want = if i >= dst_off && i < dst_off + len { pattern(1, i - dst_off + src_off) } else { GUARD };
            assert_eq!(b, want, "byte {i} (src_off {src_off}, dev {dev_addr:#x}, dst_off {dst_off}, len {len})");
        }
        // Restore the guard for the next case.
        self.dst.write(dst_off, &vec![GUARD; len]).unwrap();
    }
}

/// (source offset, device address, destination offset, length): 1 byte, beat and
/// 4 KiB boundaries, unaligned heads and tails, multi-MiB.
const CASES: &[(usize, u64, usize, usize)] = &[
    (0, 0, 0, 1),
    (0, 0, 0, 64),
    (3, 0x1000, 5, 1),
    (63, 0x2001, 1, 2),
    (0, 0x3000, 0, 4096),
    (1, 0x5003, 4095, 4096),
    (4000, 0x7FF0, 100, 200),
    (17, 0x1_0000 + 45, 33, 3 * 4096 + 77),
    (0, 0x20_0000, 0, 64 * 1024),
    (4095, 0x40_0001, 2, 2 * 1024 * 1024 + 3),
];

#[test]
fn copies_of_many_sizes_and_alignments_keep_guards() {
    let mut r = rig(TimingModel::default());
    for &(s, d, o, l) in CASES {
        r.round_trip(s, d, o, l);
    }
    let (host, dev) = r.dev.port_stats();
    assert_eq!((host.error_bursts, dev.error_bursts), (0, 0));
    assert_eq!((host.protocol_violations, dev.protocol_violations), (0, 0), "INCR, full beats, no 4 KiB crossing");
}

#[test]
fn device_to_device_and_zero_fill() {
    let mut r = rig(TimingModel::default());
    let len = 10_000usize;
    r.run(0, &[DmaDesc::copy(DmaAddr::Host(r.src_iova), DmaAddr::Device(0x1000), len as u32, 1)]);
    // D2D to an unaligned spot, then zero a hole in it.
    r.run(2, &[DmaDesc::copy(DmaAddr::Device(0x1000), DmaAddr::Device(0x9_0007), len as u32, 2)]);
    r.run(2, &[DmaDesc::zero(DmaAddr::Device(0x9_0007 + 100), 50, 3)]);
    let mut got = vec![0u8; len + 2];
    r.dev.dev_mem_read(0x9_0006, &mut got).unwrap();
    assert_eq!(got[0], 0, "byte before the copy untouched (device memory starts zeroed)");
    assert_eq!(got[len + 1], 0, "byte after the copy untouched");
    for i in 0..len {
        let want = if (100..150).contains(&i) { 0 } else { pattern(1, i) };
        assert_eq!(got[i + 1], want, "byte {i}");
    }
    // Zero-fill into host memory.
    let c = r.run(1, &[DmaDesc::zero(DmaAddr::Host(r.dst_iova + 7), 129, 4)]);
    assert_eq!((c[0].status, c[0].bytes), (DmaStatus::Ok, 129));
    let mut host = vec![0u8; 140];
    r.dst.read(0, &mut host).unwrap();
    assert!(
        host[..7].iter().all(|&b| b == GUARD)
            && host[7..136].iter().all(|&b| b == 0)
            && host[136..].iter().all(|&b| b == GUARD)
    );
}

#[test]
fn concurrent_h2d_and_d2h_on_two_channels() {
    let mut r = rig(TimingModel::default());
    let len = 256 * 1024u32;
    // Stage data in device memory for the D2H direction first.
    r.run(0, &[DmaDesc::copy(DmaAddr::Host(r.src_iova + (1 << 20)), DmaAddr::Device(0x100_0000), len, 9)]);
    r.dma.submit(&mut r.dev, 0, &[DmaDesc::copy(DmaAddr::Host(r.src_iova), DmaAddr::Device(0), len, 1)]).unwrap();
    r.dma
        .submit(&mut r.dev, 1, &[DmaDesc::copy(DmaAddr::Device(0x100_0000), DmaAddr::Host(r.dst_iova), len, 2)])
        .unwrap();
    let c = r.dma.wait_idle(&mut r.dev, &[0, 1], BUDGET_NS).unwrap();
    assert_eq!(c.len(), 2);
    assert!(c.iter().all(|c| c.status == DmaStatus::Ok && c.bytes == len));
    let mut dev_copy = vec![0u8; len as usize];
    r.dev.dev_mem_read(0, &mut dev_copy).unwrap();
    assert!(dev_copy.iter().enumerate().all(|(i, &b)| b == pattern(1, i)));
    let mut host = vec![0u8; len as usize];
    r.dst.read(0, &mut host).unwrap();
    assert!(host.iter().enumerate().all(|(i, &b)| b == pattern(1, i + (1 << 20))));
}

#[test]
fn copies_survive_random_stalls_on_both_ports() {
    for seed in [1u64, 2] {
        let timing = TimingModel {
            host_stalls: Some(StallPattern { seed, percent: 30 }),
            dev_stalls: Some(StallPattern { seed: seed + 100, percent: 45 }),
            ..TimingModel::default()
        };
        let mut r = rig(timing);
        for &(s, d, o, l) in CASES {
            r.round_trip(s, d, o, l);
        }
        let (host, dev) = r.dev.port_stats();
        assert_eq!((host.protocol_violations, dev.protocol_violations), (0, 0));
    }
}

#[test]
fn unmapped_iova_is_an_error_completion_and_later_descriptors_complete() {
    let mut r = rig(TimingModel::default());
    let bogus = 0xF_0000_0000u64;
    let bad = DmaDesc::copy(DmaAddr::Host(bogus), DmaAddr::Device(0), 4096, 7);
    let c = r.run(0, &[bad]);
    assert_eq!((c[0].tag, c[0].status, c[0].bytes), (7, DmaStatus::HostRead, 0));
    let st = r.dev.read32(regs::DMA_CH_STATUS.at(0).unwrap()).unwrap();
    assert_eq!(regs::dma_ch_status::HALTED.get32(st), 1, "halted after an error");
    // A write to an unmapped IOVA is refused too; nothing lands in real memory.
    r.dma.resume(&mut r.dev, 0).unwrap();
    let c = r.run(1, &[DmaDesc::copy(DmaAddr::Device(0), DmaAddr::Host(bogus), 100, 8)]);
    assert_eq!((c[0].tag, c[0].status), (8, DmaStatus::HostWrite));
    r.dma.resume(&mut r.dev, 1).unwrap();
    r.round_trip(0, 0x8000, 0, 5000);
}

#[test]
fn injected_host_read_error_fails_one_descriptor_with_its_tag() {
    let mut r = rig(TimingModel::default());
    r.dev.write32(regs::ERRINJ_HOST_RD.offset, 1).unwrap();
    let descs: Vec<DmaDesc> = (0..3)
        .map(|i| DmaDesc::copy(DmaAddr::Host(r.src_iova + i * 8192), DmaAddr::Device(i * 8192), 8192, 10 + i as u16))
        .collect();
    r.dma.submit(&mut r.dev, 0, &descs).unwrap();
    let first = r.dma.wait_idle(&mut r.dev, &[0], BUDGET_NS).unwrap();
    assert_eq!(first.len(), 1, "the channel halts after the failed descriptor");
    assert_eq!((first[0].tag, first[0].status, first[0].bytes), (10, DmaStatus::HostRead, 0));
    let mut untouched = vec![0u8; 8192];
    r.dev.dev_mem_read(0, &mut untouched).unwrap();
    assert!(untouched.iter().all(|&b| b == 0), "nothing written for the failed descriptor");
    r.dev.advance(100_000).unwrap();
    assert!(r.dma.completions(&mut r.dev, 0).unwrap().is_empty(), "halted: nothing more until RESUME");
    assert_eq!(r.dev.read32(regs::ERRINJ_HOST_RD.offset).unwrap(), 0, "the injection was consumed");
    r.dma.resume(&mut r.dev, 0).unwrap();
    let rest = r.dma.wait_idle(&mut r.dev, &[0], BUDGET_NS).unwrap();
    assert_eq!(rest.iter().map(|c| (c.tag, c.status)).collect::<Vec<_>>(), [(11, DmaStatus::Ok), (12, DmaStatus::Ok)]);
    let mut back = vec![0u8; 8192];
    r.dev.dev_mem_read(8192, &mut back).unwrap();
    assert!(back.iter().enumerate().all(|(i, &b)| b == pattern(1, i + 8192)), "later descriptors moved their data");
}

#[test]
fn same_seed_same_cycles() {
    let run = || {
        let timing = TimingModel { host_stalls: Some(StallPattern { seed: 5, percent: 20 }), ..TimingModel::default() };
        let mut r = rig(timing);
        r.round_trip(3, 0x1000, 9, 40_000);
        r.dev.cycles()
    };
    assert_eq!(run(), run());
}

#[test]
fn bridge_and_bare_harness_simulate_the_same_cycles() {
    let t = TimingModel::default();
    let bare = sim_bridge::cosim::bare_dma(64 * 1024, 2, &t).unwrap();
    let bridge = sim_bridge::cosim::bridge_dma(64 * 1024, 2, &t).unwrap();
    assert_eq!(bare.cycles, bridge.cycles, "same RTL, same workload, same timing model");
    assert!(bare.cycles > 2 * 1024, "64 KiB at most 64 B/cycle takes over 1024 cycles per round");
}

#[test]
fn many_random_descriptors_in_flight_move_every_byte() {
    let mut r = rig(TimingModel::default());
    let mut rng = 0x1234_5678_9ABC_DEF0u64;
    let mut next = |m: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % m
    };
    // 120 transfers of random size and alignment: host → device regions 64 KiB apart.
    let cases: Vec<(u64, u64, u32)> =
        (0..120u64).map(|i| (next(40_000), i * 65536 + next(3000), 1 + next(20_000) as u32)).collect();
    let descs: Vec<DmaDesc> = cases
        .iter()
        .enumerate()
        .map(|(i, &(s, d, l))| DmaDesc::copy(DmaAddr::Host(r.src_iova + s), DmaAddr::Device(d), l, i as u16))
        .collect();
    for chunk in descs.chunks(100) {
        r.dma.submit(&mut r.dev, 0, chunk).unwrap();
        let done = r.dma.wait_idle(&mut r.dev, &[0], BUDGET_NS).unwrap();
        assert_eq!(done.len(), chunk.len());
        for (c, d) in done.iter().zip(chunk) {
            assert_eq!(
                (c.tag, c.status, c.bytes),
                (d.tag, DmaStatus::Ok, d.len),
                "completions in order with full byte counts"
            );
        }
    }
    for (i, &(s, d, l)) in cases.iter().enumerate() {
        let mut got = vec![0u8; l as usize + 2];
        r.dev.dev_mem_read(d - 1, &mut got).unwrap();
        assert_eq!(got[0], 0, "case {i}: byte before untouched");
        assert_eq!(got[l as usize + 1], 0, "case {i}: byte after untouched");
        assert!(got[1..=l as usize].iter().enumerate().all(|(k, &b)| b == pattern(1, s as usize + k)), "case {i} data");
    }
}

#[test]
fn bad_descriptor_halts_discards_the_rest_and_rewinds_head() {
    let mut r = rig(TimingModel::default());
    let ok = |t: u16| DmaDesc::copy(DmaAddr::Host(r.src_iova), DmaAddr::Device(u64::from(t) * 4096), 4096, t);
    let beyond = DmaDesc::copy(DmaAddr::Host(r.src_iova), DmaAddr::Device((256 << 20) - 100), 4096, 2);
    r.dma.submit(&mut r.dev, 0, &[ok(1), beyond, ok(3), ok(4)]).unwrap();
    let c = r.dma.wait_idle(&mut r.dev, &[0], BUDGET_NS).unwrap();
    assert_eq!(c.iter().map(|c| (c.tag, c.status)).collect::<Vec<_>>(), [(1, DmaStatus::Ok), (2, DmaStatus::BadDesc)]);
    let head = r.dev.read32(regs::DMA_DESC_HEAD.at(0).unwrap()).unwrap();
    assert_eq!(head, 2, "HEAD points after the failed descriptor");
    let mut untouched = vec![0u8; 8192];
    r.dev.dev_mem_read(3 * 4096, &mut untouched).unwrap();
    assert!(untouched.iter().all(|&b| b == 0), "descriptors after the failure did not run yet");
    r.dma.resume(&mut r.dev, 0).unwrap();
    let c = r.dma.wait_idle(&mut r.dev, &[0], BUDGET_NS).unwrap();
    assert_eq!(c.iter().map(|c| (c.tag, c.status)).collect::<Vec<_>>(), [(3, DmaStatus::Ok), (4, DmaStatus::Ok)]);
}

#[test]
fn poisoned_and_write_failed_transfers_report_and_write_nothing_bad() {
    let mut r = rig(TimingModel::default());
    r.dev.write32(regs::ERRINJ_POISON.offset, 1).unwrap();
    let c = r.run(0, &[DmaDesc::copy(DmaAddr::Host(r.src_iova), DmaAddr::Device(0x5000), 4096, 5)]);
    assert_eq!((c[0].tag, c[0].status, c[0].bytes), (5, DmaStatus::Poison, 0));
    let mut dev = vec![0u8; 4096];
    r.dev.dev_mem_read(0x5000, &mut dev).unwrap();
    assert!(dev.iter().all(|&b| b == 0), "poisoned data is never written");
    r.dma.resume(&mut r.dev, 0).unwrap();
    r.dev.write32(regs::ERRINJ_DEV_WR.offset, 1).unwrap();
    let c = r.run(0, &[DmaDesc::copy(DmaAddr::Host(r.src_iova), DmaAddr::Device(0x9000), 8192, 6)]);
    assert_eq!((c[0].tag, c[0].status), (6, DmaStatus::DevWrite));
    assert!(c[0].bytes < 8192, "BYTES counts only acknowledged chunks: {}", c[0].bytes);
    r.dma.resume(&mut r.dev, 0).unwrap();
    r.round_trip(0, 0x9000, 0, 8192);
}

#[test]
fn soft_reset_in_the_middle_of_a_transfer_recovers() {
    let mut r = rig(TimingModel::default());
    r.dma.submit(&mut r.dev, 0, &[DmaDesc::copy(DmaAddr::Host(r.src_iova), DmaAddr::Device(0), 1 << 20, 1)]).unwrap();
    r.dev.advance(4_000).unwrap();
    r.dev.write32(regs::RESET.offset, 1).unwrap();
    let mut busy = true;
    for _ in 0..1000 {
        let st = r.dev.read32(regs::STATUS.offset).unwrap();
        busy = regs::status::DMA_BUSY.get32(st) == 1;
        if !busy {
            break;
        }
        r.dev.advance(1_000).unwrap();
    }
    assert!(!busy, "the engine drains and goes idle after a soft reset");
    assert!(r.dev.ports_idle(), "no burst left in flight on either port");
    assert_eq!(r.dev.read32(regs::DMA_DESC_HEAD.at(0).unwrap()).unwrap(), 0);
    // Rings restart from index 0: a fresh driver instance works.
    r.dma = npu::dma::Dma::init(&mut r.dev, 8).unwrap();
    r.round_trip(5, 0x10_0000, 3, 10_000);
}

#[test]
fn a_soft_reset_in_any_cycle_of_a_transfer_drains_and_the_engine_works_again() {
    // The reset lands in every cycle of two channels' transfers (a pushed descriptor and
    // a fetched one, their reads, chunk writes and completion writes): the engine drains
    // with no burst left on either port, no assertion fires, and the next transfer on
    // the restarted rings completes.
    let mut r = rig(TimingModel::default());
    let h2d = |at: u64, tag| DmaDesc::copy(DmaAddr::Host(r.src_iova + at), DmaAddr::Device(at), 4096, tag);
    let d2h = DmaDesc::copy(DmaAddr::Device(0x8000), DmaAddr::Host(r.dst_iova), 4096, 3);
    let (first, second, last) = (h2d(0, 1), h2d(4096, 2), h2d(0x4000, 4));
    for at in 0..800u64 {
        let case = format!("reset {at} cycles after the doorbells");
        r.dma.submit(&mut r.dev, 0, &[first, second]).unwrap();
        r.dma.submit(&mut r.dev, 1, &[d2h]).unwrap();
        r.dev.step(at);
        r.dev.write32(regs::RESET.offset, 1).unwrap();
        let drained = (0..100).any(|_| {
            r.dev.advance(100).unwrap_or_else(|e| panic!("{case}: {e}"));
            regs::status::DMA_BUSY.get32(r.dev.read32(regs::STATUS.offset).unwrap()) == 0
        });
        assert!(drained && r.dev.ports_idle(), "{case}: drained");
        r.dma.after_soft_reset();
        let c = r.run(0, &[last]);
        assert_eq!((c.len(), c[0].status, c[0].tag), (1, DmaStatus::Ok, 4), "{case}");
    }
}

#[test]
fn performance_counters_count_dma_bytes_and_port_traffic() {
    let mut r = rig(TimingModel::default());
    r.dev.write32(regs::PERF_CTRL.offset, 1).unwrap();
    let len = 100_000u32;
    r.run(0, &[DmaDesc::copy(DmaAddr::Host(r.src_iova + 3), DmaAddr::Device(0x1000), len, 1)]);
    let ctr = |r: &mut Rig, i: u64| r.dev.perf_counter(i as u32).unwrap();
    assert_eq!(ctr(&mut r, regs::perf_ctr::DMA0_BYTES), u64::from(len), "destination bytes written OK");
    assert_eq!(ctr(&mut r, regs::perf_ctr::DMA1_BYTES), 0);
    let busy = ctr(&mut r, regs::perf_ctr::DMA0_BUSY);
    let stall = ctr(&mut r, regs::perf_ctr::DMA0_STALL);
    assert!(busy > u64::from(len) / 64 && stall < busy, "busy {busy}, stall {stall}");
    let dev_wr = ctr(&mut r, regs::perf_ctr::DEV_WR_BYTES);
    assert_eq!(dev_wr, u64::from(len).div_ceil(64) * 64, "one 64-byte beat per destination beat");
    let host_rd = ctr(&mut r, regs::perf_ctr::HOST_RD_BYTES);
    assert!(host_rd >= u64::from(len), "source beats plus the descriptor fetch: {host_rd}");
}

#[test]
fn a_hung_engine_is_detected_by_timeout_and_recovered_by_soft_reset() {
    let mut r = rig(TimingModel::default());
    r.dev.write32(regs::ERRINJ_HANG.offset, 1 << regs::errinj_hang::DMA.lsb).unwrap();
    r.dma.submit(&mut r.dev, 0, &[DmaDesc::copy(DmaAddr::Host(r.src_iova), DmaAddr::Device(0), 4096, 1)]).unwrap();
    let err = r.dma.wait_idle(&mut r.dev, &[0], 200_000).unwrap_err();
    assert!(matches!(err, npu::dma::DmaError::Timeout { channel: 0, missing: 1, budget_ns: 200_000 }), "{err}");
    // Soft reset clears the hang and the rings; the data path works again.
    r.dev.write32(regs::RESET.offset, 1).unwrap();
    r.dev.advance(1_000).unwrap();
    assert_eq!(r.dev.read32(regs::ERRINJ_HANG.offset).unwrap(), 0, "soft reset clears ERRINJ_HANG");
    r.dma = npu::dma::Dma::init(&mut r.dev, 8).unwrap();
    r.round_trip(0, 0x2000, 0, 4096);
}

#[test]
fn zero_fills_between_copies_on_one_channel() {
    let mut r = rig(TimingModel::default());
    for (a, z, b) in [(5000u32, 3000u32, 7000u32), (64, 1, 64), (40_000, 100, 33_000), (4096, 4096, 4096)] {
        let descs = [
            DmaDesc::copy(DmaAddr::Host(r.src_iova + 3), DmaAddr::Device(0x10_0000), a, 1),
            DmaDesc::zero(DmaAddr::Device(0x20_0005), z, 2),
            DmaDesc::copy(DmaAddr::Host(r.src_iova + 100_000), DmaAddr::Device(0x30_0007), b, 3),
        ];
        let c = r.run(0, &descs);
        assert_eq!(
            c.iter().map(|c| (c.tag, c.status, c.bytes)).collect::<Vec<_>>(),
            [(1, DmaStatus::Ok, a), (2, DmaStatus::Ok, z), (3, DmaStatus::Ok, b)]
        );
        let mut got = vec![0u8; b as usize];
        r.dev.dev_mem_read(0x30_0007, &mut got).unwrap();
        assert!(got.iter().enumerate().all(|(i, &x)| x == pattern(1, 100_000 + i)), "copy after the zero-fill");
    }
}

#[test]
fn one_channel_alternating_ports_keeps_every_byte_in_order() {
    let mut r = rig(TimingModel::default());
    // Stage a device-resident source first.
    r.run(2, &[DmaDesc::copy(DmaAddr::Host(r.src_iova + 500_000), DmaAddr::Device(0x80_0000), 100_000, 9)]);
    let descs = [
        DmaDesc::copy(DmaAddr::Host(r.src_iova + 1), DmaAddr::Device(0x10_0000), 30_000, 1),
        DmaDesc::copy(DmaAddr::Device(0x80_0000), DmaAddr::Host(r.dst_iova + 3), 20_000, 2),
        DmaDesc::copy(DmaAddr::Host(r.src_iova + 7), DmaAddr::Host(r.dst_iova + 40_000), 9_000, 3),
        DmaDesc::copy(DmaAddr::Device(0x80_0000 + 5), DmaAddr::Device(0x20_0000), 50_000, 4),
    ];
    let c = r.run(0, &descs);
    assert!(c.iter().all(|c| c.status == DmaStatus::Ok), "{c:?}");
    let mut dev = vec![0u8; 50_000];
    r.dev.dev_mem_read(0x10_0000, &mut dev[..30_000]).unwrap();
    assert!(dev[..30_000].iter().enumerate().all(|(i, &b)| b == pattern(1, 1 + i)), "host → device");
    r.dev.dev_mem_read(0x20_0000, &mut dev).unwrap();
    assert!(dev.iter().enumerate().all(|(i, &b)| b == pattern(1, 500_005 + i)), "device → device");
    let mut host = vec![0u8; 50_000];
    r.dst.read(0, &mut host).unwrap();
    assert!(host[3..20_003].iter().enumerate().all(|(i, &b)| b == pattern(1, 500_000 + i)), "device → host");
    assert!(host[40_000..49_000].iter().enumerate().all(|(i, &b)| b == pattern(1, 7 + i)), "host → host");
}

#[test]
fn errors_in_large_descriptors_complete_and_stop_later_ones() {
    let mut r = rig(TimingModel::default());
    for (inj, status) in [(regs::ERRINJ_HOST_RD, DmaStatus::HostRead), (regs::ERRINJ_DEV_WR, DmaStatus::DevWrite)] {
        r.dev.write32(inj.offset, 3).unwrap();
        let big = |t: u16| DmaDesc::copy(DmaAddr::Host(r.src_iova), DmaAddr::Device(0x40_0000), 256 * 1024, t);
        r.dma.submit(&mut r.dev, 0, &[big(1), big(2)]).unwrap();
        let c = r.dma.wait_idle(&mut r.dev, &[0], BUDGET_NS).unwrap();
        assert_eq!(c.last().map(|c| c.status), Some(status), "{c:?}");
        r.dev.write32(inj.offset, 0).unwrap();
        r.dma.resume(&mut r.dev, 0).unwrap();
        let rest = r.dma.wait_idle(&mut r.dev, &[0], BUDGET_NS).unwrap();
        assert!(rest.iter().all(|c| c.status == DmaStatus::Ok), "{rest:?}");
        assert_eq!(r.dma.in_flight(0), 0);
    }
    // A write error in a B response (unmapped host destination) halts the channel too.
    let bad = DmaDesc::copy(DmaAddr::Device(0), DmaAddr::Host(0x9_0000_0000), 8192, 5);
    let ok = DmaDesc::copy(DmaAddr::Device(0), DmaAddr::Host(r.dst_iova), 8192, 6);
    r.dma.submit(&mut r.dev, 1, &[bad, ok]).unwrap();
    let c = r.dma.wait_idle(&mut r.dev, &[1], BUDGET_NS).unwrap();
    assert_eq!(c.iter().map(|c| (c.tag, c.status)).collect::<Vec<_>>(), [(5, DmaStatus::HostWrite)]);
    assert_eq!(r.dev.read32(regs::DMA_DESC_HEAD.at(1).unwrap()).unwrap(), 1, "HEAD after the failed one");
    r.dma.resume(&mut r.dev, 1).unwrap();
    let c = r.dma.wait_idle(&mut r.dev, &[1], BUDGET_NS).unwrap();
    assert_eq!(c.iter().map(|c| (c.tag, c.status)).collect::<Vec<_>>(), [(6, DmaStatus::Ok)]);
}

/// A buffer whose handle is dropped while it is still mapped stays valid for the device
/// until the unmap (the transport keeps a handle): the DMA engine writing into it after
/// the drop neither crashes nor errors.
#[test]
fn a_mapped_buffer_outlives_its_dropped_handle() {
    let mut dev = SimDevice::new(SimConfig::default()).unwrap();
    let buf = DmaBuffer::new(1 << 20).unwrap();
    let iova = dev.dma_map(&buf).unwrap();
    drop(buf);
    let mut dma = Dma::init(&mut dev, 4).unwrap();
    dma.submit(&mut dev, 1, &[DmaDesc::zero(DmaAddr::Host(iova), 1 << 20, 1)]).unwrap();
    let cpls = dma.wait_idle(&mut dev, &[1], 10_000_000).unwrap();
    assert_eq!(cpls.len(), 1);
    assert_eq!(cpls[0].status, DmaStatus::Ok);
    dev.dma_unmap(iova).unwrap();
}
