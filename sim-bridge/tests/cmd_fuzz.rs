//! Command-format fuzzing, RTL against the reference model: seeded random command
//! records — valid ones with random fields, unknown opcodes, reserved flag bits,
//! misaligned and unmapped FENCE addresses, PTE_WRITEs inside and beyond device memory
//! or with stray FLAGS/ASID — go through the command queue one at a time, half of them
//! also pushed through CMDQ_PUSH (docs/device.md 8) before the doorbell. After each,
//! both devices must agree on everything visible: queue head, error status, ERR_INFO,
//! interrupt causes, the FENCE target's bytes and the PTE_WRITE target page. A device error is
//! cleared by a soft reset and the queue set up again, as the driver does.
//! `CMD_FUZZ_CASES=n` runs longer (default 600 records).

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

mod common;

use common::Rng;
use npu::backdoor::DevMemBackdoor;
use npu::{DeviceIo, DmaBuffer, regs};
use npu_refmodel::ModelDevice;
use sim_bridge::{SimConfig, SimDevice};

const RING_LOG2: u32 = 4;
/// The device page PTE_WRITEs aim at (inside device memory).
const PTE_PAGE: u64 = 0x40_0000;

/// A raw command ring on `io` (what `npu::cmdq::CmdQueue` does, without its checks).
struct Ring {
    ring: DmaBuffer,
    target: DmaBuffer,
    target_iova: u64,
    tail: u32,
}

fn setup<T: DeviceIo>(io: &mut T) -> Ring {
    let ring = DmaBuffer::new((1 << RING_LOG2) * regs::cmd::SIZE).unwrap();
    let target = DmaBuffer::new(4096).unwrap();
    let ring_iova = io.dma_map(&ring).unwrap();
    let target_iova = io.dma_map(&target).unwrap();
    io.write64(regs::CMDQ_BASE_LO.offset, ring_iova).unwrap();
    io.write32(regs::CMDQ_SIZE_LOG2.offset, RING_LOG2).unwrap();
    let tail = io.read32(regs::CMDQ_HEAD.offset).unwrap();
    io.write32(regs::CMDQ_TAIL.offset, tail).unwrap();
    let ctrl = io.read32(regs::CTRL.offset).unwrap();
    io.write32(regs::CTRL.offset, regs::ctrl::CMDQ_EN.put32(ctrl, 1)).unwrap();
    io.write32(regs::INT_MASK.offset, u32::MAX).unwrap();
    Ring { ring, target, target_iova, tail }
}

/// One random command record; FENCE addresses relative to `target` (mapped) or not.
fn record(g: &mut Rng, target: u64) -> [u8; 16] {
    let r = g.next();
    let opcode = match r % 10 {
        0..=2 => regs::cmd_opcode::INVAL,
        3..=5 => regs::cmd_opcode::FENCE,
        6 => regs::cmd_opcode::REPLAY,
        7 | 8 => return pte_write(g),
        _ => g.next() & 0xff,
    };
    let flags = if g.next() % 4 == 0 { g.next() & 0xff } else { g.next() % 4 };
    let addr = match g.next() % 6 {
        0..=2 => target + (g.next() % 1024) * 4,
        3 => target + (g.next() % 4096),
        4 => 0x7_0000_0000 + (g.next() & 0xffc),
        _ => g.next() & !0xfff,
    };
    let word0 = opcode | flags << 8 | (g.next() & 0xffff) << 16 | (g.next() & 0xffff_ffff) << 32;
    let mut rec = [0u8; 16];
    rec[..8].copy_from_slice(&word0.to_le_bytes());
    rec[8..].copy_from_slice(&addr.to_le_bytes());
    rec
}

/// A PTE_WRITE: mostly well-formed into [`PTE_PAGE`], sometimes beyond device memory
/// (256 MiB) or with non-zero FLAGS or ASID.
fn pte_write(g: &mut Rng) -> [u8; 16] {
    let index = match g.next() % 8 {
        0 => (256 << 20) / 8 + g.next() % 4, // just beyond device memory
        1 => (256 << 20) / 8 - 1,            // the last PTE of device memory
        _ => PTE_PAGE / 8 + g.next() % 512,  // inside the target page
    };
    let flags = if g.next() % 6 == 0 { 1 + g.next() % 255 } else { 0 };
    let asid = if g.next() % 6 == 0 { 1 + g.next() % 0xffff } else { 0 };
    let word0 = regs::cmd_opcode::PTE_WRITE | flags << 8 | asid << 16 | index << 32;
    let mut rec = [0u8; 16];
    rec[..8].copy_from_slice(&word0.to_le_bytes());
    rec[8..].copy_from_slice(&g.next().to_le_bytes());
    rec
}

/// What software can see after a command settled.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    head: u32,
    error: u32,
    err_info: u32,
    int_status: u32,
    target: Vec<u8>,
    /// Device memory at [`PTE_PAGE`] (read through the backdoor).
    ptes: Vec<u8>,
    /// The record was pushed too.
    pushed: bool,
    /// Host-port bytes read for it (PERF HOST_RD_BYTES): the fetch's beat, or none when
    /// the engine took the push.
    host_rd: u64,
}

/// Runs `cases` records through `io`; returns what was seen after each.
fn run<T: DeviceIo + DevMemBackdoor>(mut io: T, seed: u64, cases: usize) -> Vec<Seen> {
    let mut g = Rng(seed);
    // Push decisions from their own stream, so the records are those of the seed alone.
    let mut push = Rng(seed ^ 0x5055_5348);
    let mut q = setup(&mut io);
    let mut out = Vec::new();
    for _ in 0..cases {
        let rec = record(&mut g, q.target_iova);
        let mask = (1u32 << RING_LOG2) - 1;
        q.ring.write((q.tail & mask) as usize * regs::cmd::SIZE, &rec).unwrap();
        let host_rd = regs::PERF_LO.at(regs::perf_ctr::HOST_RD_BYTES as u32).unwrap();
        let rd_before = io.read64(host_rd).unwrap();
        let pushed = push.chance(50);
        if pushed {
            for (i, w) in rec.chunks_exact(4).enumerate() {
                let v = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                io.write32(regs::CMDQ_PUSH.at(i as u32).unwrap(), v).unwrap();
            }
            io.write32(regs::CMDQ_PUSH_COMMIT.offset, 0).unwrap();
        }
        q.tail = (q.tail + 1) & mask;
        io.write32(regs::CMDQ_TAIL.offset, q.tail).unwrap();
        // Let it settle: executed (head caught up) or stopped on a device error.
        let mut status = 0;
        for _ in 0..200 {
            io.advance(200).unwrap();
            status = io.read32(regs::STATUS.offset).unwrap();
            let idle = regs::status::CMDQ_BUSY.get32(status) == 0;
            if regs::status::ERROR.get32(status) == 1 || idle && io.read32(regs::CMDQ_HEAD.offset).unwrap() == q.tail {
                break;
            }
        }
        let mut target = vec![0u8; 4096];
        q.target.read(0, &mut target).unwrap();
        let mut ptes = vec![0u8; 4096];
        io.backdoor_read(PTE_PAGE, &mut ptes).unwrap();
        let seen = Seen {
            head: io.read32(regs::CMDQ_HEAD.offset).unwrap(),
            error: regs::status::ERROR.get32(status),
            err_info: io.read32(regs::ERR_INFO.offset).unwrap(),
            int_status: io.read32(regs::INT_STATUS.offset).unwrap(),
            target,
            ptes,
            pushed,
            host_rd: io.read64(host_rd).unwrap() - rd_before,
        };
        io.write32(regs::INT_ACK.offset, seen.int_status).unwrap();
        let failed = seen.error == 1;
        out.push(seen);
        if failed {
            // As the driver recovers: soft reset, then the queue from scratch.
            io.write32(regs::RESET.offset, 1 << regs::reset::SOFT.lsb).unwrap();
            io.advance(2_000).unwrap();
            q = setup(&mut io);
        }
    }
    out
}

#[test]
fn random_command_records_behave_the_same_on_the_rtl_and_the_model() {
    let cases = std::env::var("CMD_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(600);
    let seed = 0xc0ffee;
    let rtl = run(SimDevice::new(SimConfig::default()).unwrap(), seed, cases);
    let model = run(ModelDevice::new(Default::default()), seed, cases);
    for (i, (a, b)) in rtl.iter().zip(&model).enumerate() {
        assert_eq!(a, b, "record {i}: RTL (left) and model (right) disagree");
    }
    let errors = rtl.iter().filter(|s| s.error == 1).count();
    let fences = rtl.iter().filter(|s| s.int_status & (1 << regs::int_cause::CMD) != 0).count();
    // The generator reaches both outcomes often: the comparison is not vacuous.
    assert!(errors > cases / 10 && errors < cases * 9 / 10, "{errors} device errors in {cases} records");
    assert!(fences > cases / 50, "{fences} fence interrupts in {cases} records");
    assert!(rtl.iter().any(|s| s.target.iter().any(|&b| b != 0)), "some FENCE wrote its target");
    assert!(rtl.iter().any(|s| s.ptes.iter().any(|&b| b != 0)), "some PTE_WRITE wrote its PTE");
    // A malformed PTE_WRITE (beyond device memory, stray FLAGS/ASID) is {BAD_DESC, 0}.
    let bad_desc = regs::dma_error::BAD_DESC as u32;
    assert!(rtl.iter().any(|s| s.error == 1 && s.err_info & 0xff == bad_desc), "malformed commands refused");
    // Pushed records reach both outcomes too.
    let pushed = rtl.iter().filter(|s| s.pushed).count();
    assert!(pushed > cases / 4 && pushed < cases * 3 / 4, "{pushed} of {cases} records pushed");
    assert!(rtl.iter().any(|s| s.pushed && s.error == 1 && s.err_info & 0xff == bad_desc), "malformed pushes refused");
    assert!(rtl.iter().any(|s| s.pushed && s.error == 0), "well-formed pushes executed");
    // ... taken from the window, not fetched; the others are fetched.
    assert!(rtl.iter().all(|s| s.host_rd == if s.pushed { 0 } else { 64 }), "pushed records are not fetched");
}
