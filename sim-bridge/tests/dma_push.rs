//! Pushed descriptors (DMA_PUSH, docs/device.md 9.3) on the RTL and on the reference
//! model: a pushed entry runs without a descriptor fetch and with the ring's results; a
//! malformed push is refused like a malformed ring entry (nothing written); an
//! uncommitted window and a push before a soft reset are never used; a failed data read
//! of a pushed descriptor is reported and recovered like any other.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use npu::dma::{Dma, DmaAddr, DmaCompletion, DmaDesc, DmaStatus};
use npu::{DeviceIo, DmaBuffer, regs};
use npu_refmodel::ModelDevice;
use sim_bridge::{SimConfig, SimDevice};

const BUDGET_NS: u64 = 20_000_000;
const LEN: u32 = 4096;
const DEV: u64 = 0x10_0000;

struct Rig<D: DeviceIo> {
    io: D,
    dma: Dma,
    src: DmaBuffer,
    src_iova: u64,
    dst: DmaBuffer,
    dst_iova: u64,
}

fn rig<D: DeviceIo>(mut io: D) -> Rig<D> {
    let dma = Dma::init(&mut io, 4).unwrap();
    let src = DmaBuffer::new(4 * LEN as usize).unwrap();
    let dst = DmaBuffer::new(4 * LEN as usize).unwrap();
    src.write(0, &(0..4 * LEN).map(|i| (i * 7 + 3) as u8).collect::<Vec<_>>()).unwrap();
    let src_iova = io.dma_map(&src).unwrap();
    let dst_iova = io.dma_map(&dst).unwrap();
    Rig { io, dma, src, src_iova, dst, dst_iova }
}

impl<D: DeviceIo> Rig<D> {
    fn run(&mut self, ch: usize, descs: &[DmaDesc]) -> Vec<DmaCompletion> {
        self.dma.submit(&mut self.io, ch, descs).unwrap();
        self.dma.wait_idle(&mut self.io, &[ch], BUDGET_NS).unwrap()
    }

    fn counter(&mut self, i: u64) -> u64 {
        self.io.read64(regs::PERF_LO.at(i as u32).unwrap()).unwrap()
    }

    fn clear_counters(&mut self) {
        self.io.write32(regs::PERF_CTRL.offset, 1 << regs::perf_ctrl::CLEAR.lsb).unwrap();
    }

    /// Writes `rec` into channel `ch`'s DMA_PUSH window, words `0..words`.
    fn push_words(&mut self, ch: u32, rec: &[u8; 32], words: usize) {
        for (i, w) in rec.chunks_exact(4).enumerate().take(words) {
            let v = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            self.io.write32(regs::DMA_PUSH.at(ch * 8 + i as u32).unwrap(), v).unwrap();
        }
    }

    /// Device memory at `at` (`len` bytes), read back by a ring-fetched D2H descriptor.
    fn device_bytes(&mut self, at: u64, len: u32) -> Vec<u8> {
        self.dma.set_push(false);
        let c = self.run(1, &[DmaDesc::copy(DmaAddr::Device(at), DmaAddr::Host(self.dst_iova), len, 9)]);
        assert_eq!(c[0].status, DmaStatus::Ok);
        self.dma.set_push(true);
        let mut out = vec![0u8; len as usize];
        self.dst.read(0, &mut out).unwrap();
        out
    }

    /// Checks that the LEN bytes at device address `dev` are the source's from `src_off`.
    fn assert_landed(&mut self, dev: u64, src_off: usize, what: &str) {
        let mut want = vec![0u8; LEN as usize];
        self.src.read(src_off, &mut want).unwrap();
        assert_eq!(self.device_bytes(dev, LEN), want, "{what}");
    }

    fn h2d(&self, off: u64, dev: u64, tag: u16) -> DmaDesc {
        DmaDesc::copy(DmaAddr::Host(self.src_iova + off), DmaAddr::Device(dev), LEN, tag)
    }
}

fn rtl() -> Rig<SimDevice> {
    rig(SimDevice::new(SimConfig::default()).unwrap())
}

fn model() -> Rig<ModelDevice> {
    rig(ModelDevice::new(Default::default()))
}

fn pushed_entry_runs_without_a_fetch<D: DeviceIo>(mut r: Rig<D>, name: &str) {
    let host_rd = regs::perf_ctr::HOST_RD_BYTES;
    // Pushed (the channel is idle): the source's 4096 bytes are the only host reads.
    r.clear_counters();
    let h2d = r.h2d(0, DEV, 1);
    let c = r.run(0, &[h2d]);
    assert_eq!((c[0].status, c[0].bytes, c[0].tag), (DmaStatus::Ok, LEN, 1), "{name}");
    assert_eq!(r.counter(host_rd), u64::from(LEN), "{name}: no descriptor fetch");
    r.assert_landed(DEV, 0, name);
    // From the ring: one more beat, the fetch.
    r.dma.set_push(false);
    r.clear_counters();
    let h2d = r.h2d(u64::from(LEN), DEV, 2);
    let c = r.run(0, &[h2d]);
    assert_eq!((c[0].status, c[0].tag), (DmaStatus::Ok, 2), "{name}");
    assert_eq!(r.counter(host_rd), u64::from(LEN) + 64, "{name}: the fetch is one beat");
    r.assert_landed(DEV, LEN as usize, name);
}

#[test]
fn a_pushed_descriptor_runs_without_a_descriptor_fetch() {
    pushed_entry_runs_without_a_fetch(rtl(), "rtl");
    pushed_entry_runs_without_a_fetch(model(), "model");
}

fn malformed_push_writes_nothing<D: DeviceIo>(mut r: Rig<D>, name: &str) {
    // A destination beyond device memory: BAD_DESC, the channel halts, nothing written
    // (the device page the first half would have reached keeps its zeros).
    let dev_size = 256u64 << 20;
    let bad = DmaDesc::copy(DmaAddr::Host(r.src_iova), DmaAddr::Device(dev_size - 2048), LEN, 3);
    let c = r.run(0, &[bad]);
    assert_eq!((c[0].status, c[0].tag, c[0].bytes), (DmaStatus::BadDesc, 3, 0), "{name}");
    r.dma.resume(&mut r.io, 0).unwrap();
    assert_eq!(r.device_bytes(dev_size - 4096, 4096), vec![0u8; 4096], "{name}: nothing written");
    // The channel goes on: the next pushed entry runs.
    let h2d = r.h2d(0, DEV, 4);
    assert_eq!(r.run(0, &[h2d])[0].status, DmaStatus::Ok, "{name}");
}

#[test]
fn a_malformed_pushed_descriptor_is_refused_and_writes_nothing() {
    malformed_push_writes_nothing(rtl(), "rtl");
    malformed_push_writes_nothing(model(), "model");
}

fn uncommitted_and_reset_pushes_are_not_used<D: DeviceIo>(mut r: Rig<D>, name: &str) {
    let decoy = DmaDesc::zero(DmaAddr::Device(DEV), LEN, 7).encode();
    // Seven words of a decoy, never committed: the ring's entry runs.
    r.push_words(0, &decoy, 7);
    r.dma.set_push(false);
    let h2d = r.h2d(0, DEV, 5);
    assert_eq!(r.run(0, &[h2d])[0].tag, 5, "{name}");
    r.assert_landed(DEV, 0, &format!("{name}: not zeroed by the decoy"));
    // A committed decoy, then a soft reset (rings back to index 0, the push forgotten):
    // the ring's entry at the decoy's index runs.
    r.push_words(0, &decoy, 8);
    r.io.write32(regs::RESET.offset, 1 << regs::reset::SOFT.lsb).unwrap();
    r.dma.after_soft_reset();
    let h2d = r.h2d(u64::from(LEN), DEV, 6);
    assert_eq!(r.run(0, &[h2d])[0].tag, 6, "{name}");
    r.assert_landed(DEV, LEN as usize, &format!("{name}: not zeroed by the decoy"));
}

#[test]
fn an_uncommitted_push_or_one_before_a_soft_reset_is_never_used() {
    uncommitted_and_reset_pushes_are_not_used(rtl(), "rtl");
    uncommitted_and_reset_pushes_are_not_used(model(), "model");
}

fn failed_read_of_a_pushed_descriptor<D: DeviceIo>(mut r: Rig<D>, name: &str) {
    // The pushed descriptor's source read fails once (ERRINJ_HOST_RD): HOST_RD status,
    // the channel halts; after RESUME the same transfer, pushed again, succeeds.
    r.io.write32(regs::ERRINJ_HOST_RD.offset, 1).unwrap();
    let h2d = r.h2d(0, DEV + 0x4000, 8);
    let c = r.run(0, &[h2d]);
    assert_eq!((c[0].status, c[0].tag), (DmaStatus::HostRead, 8), "{name}");
    r.dma.resume(&mut r.io, 0).unwrap();
    assert_eq!(r.run(0, &[h2d])[0].status, DmaStatus::Ok, "{name}");
    r.assert_landed(DEV + 0x4000, 0, name);
}

#[test]
fn a_failed_read_of_a_pushed_descriptor_halts_and_resumes() {
    failed_read_of_a_pushed_descriptor(rtl(), "rtl");
    failed_read_of_a_pushed_descriptor(model(), "model");
}
