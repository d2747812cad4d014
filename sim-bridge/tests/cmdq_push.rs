//! Pushed commands (CMDQ_PUSH, CMDQ_PUSH_COMMIT; docs/device.md 8) on the RTL and on the
//! reference model: a pushed command runs without a command fetch; a malformed pushed
//! command stops the queue like a malformed ring entry (nothing written); an uncommitted
//! window, a push forgotten by a window write, by CMDQ_EN off or by a soft reset is
//! never used; a push stands only for entries below TAIL and before the ring's end.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use npu::cmdq::{CmdQueue, Command};
use npu::{DeviceIo, DmaBuffer, regs};
use npu_refmodel::ModelDevice;
use sim_bridge::{SimConfig, SimDevice};

const BUDGET_NS: u64 = 10_000_000;

struct Rig<D: DeviceIo> {
    io: D,
    q: CmdQueue,
    /// Words the test's FENCEs write (word i at `iova + 4i`).
    words: DmaBuffer,
    iova: u64,
}

fn rig<D: DeviceIo>(mut io: D, size_log2: u32) -> Rig<D> {
    let q = CmdQueue::init(&mut io, size_log2).unwrap();
    let words = DmaBuffer::new(4096).unwrap();
    let iova = io.dma_map(&words).unwrap();
    Rig { io, q, words, iova }
}

fn rtl(size_log2: u32) -> Rig<SimDevice> {
    rig(SimDevice::new(SimConfig::default()).unwrap(), size_log2)
}

fn model(size_log2: u32) -> Rig<ModelDevice> {
    rig(ModelDevice::new(Default::default()), size_log2)
}

impl<D: DeviceIo> Rig<D> {
    /// A FENCE writing `data` to word `i`.
    fn fence(&self, i: u64, data: u32) -> Command {
        Command::Fence { data, addr: self.iova + 4 * i, irq: false }
    }

    fn word(&self, i: usize) -> u32 {
        self.words.read_u32(4 * i).unwrap()
    }

    /// Submits `cmds` and waits until word `i` reads `data`.
    fn run_until(&mut self, cmds: &[Command], i: usize, data: u32, what: &str) {
        self.q.submit(&mut self.io, cmds).unwrap();
        let words = &self.words;
        let landed = self.io.wait_host(BUDGET_NS, &mut || words.read_u32(4 * i).is_ok_and(|v| v == data)).unwrap();
        assert!(landed, "{what}: word {i} never read {data:#x} (it reads {:#x})", self.word(i));
    }

    /// Lets the device run for `ns` of device time with nothing to wait for.
    fn settle(&mut self, ns: u64) {
        self.io.wait_host(ns, &mut || false).unwrap();
    }

    fn host_reads(&mut self) -> u64 {
        self.io.read64(regs::PERF_LO.at(regs::perf_ctr::HOST_RD_BYTES as u32).unwrap()).unwrap()
    }

    fn clear_counters(&mut self) {
        self.io.write32(regs::PERF_CTRL.offset, 1 << regs::perf_ctrl::CLEAR.lsb).unwrap();
    }

    /// Writes `cmds` into the CMDQ_PUSH window by hand and, if `commit`, commits them.
    fn push_by_hand(&mut self, cmds: &[Command], commit: bool) {
        for (k, c) in cmds.iter().enumerate() {
            for (i, w) in c.encode().chunks_exact(4).enumerate() {
                let v = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                self.io.write32(regs::CMDQ_PUSH.at((4 * k + i) as u32).unwrap(), v).unwrap();
            }
        }
        if commit {
            let count = regs::cmdq_push_commit::COUNT.put32(0, cmds.len() as u32 - 1);
            self.io.write32(regs::CMDQ_PUSH_COMMIT.offset, count).unwrap();
        }
    }

    fn soft_reset(&mut self) {
        self.io.write32(regs::RESET.offset, 1 << regs::reset::SOFT.lsb).unwrap();
        self.settle(20_000);
        self.q.after_soft_reset();
    }

    fn device_error(&mut self) -> u32 {
        for _ in 0..100 {
            let status = self.io.read32(regs::STATUS.offset).unwrap();
            if regs::status::ERROR.get32(status) == 1 {
                return self.io.read32(regs::ERR_INFO.offset).unwrap();
            }
            self.settle(10_000);
        }
        panic!("no device error");
    }
}

fn pushed_command_runs_without_a_fetch<D: DeviceIo>(mut r: Rig<D>, name: &str) {
    // Pushed (the driver's default for a small submission): no host read at all.
    r.clear_counters();
    let cmds = [r.fence(0, 0x11), r.fence(1, 0x12)];
    r.run_until(&cmds, 1, 0x12, name);
    assert_eq!(r.word(0), 0x11, "{name}: the first pushed command ran too");
    assert_eq!(r.host_reads(), 0, "{name}: no command fetch");
    // From the ring: one beat fetched.
    r.q.set_push(false);
    r.clear_counters();
    let cmds = [r.fence(2, 0x13)];
    r.run_until(&cmds, 2, 0x13, name);
    assert_eq!(r.host_reads(), 64, "{name}: the fetch is one beat");
}

#[test]
fn a_pushed_command_runs_without_a_command_fetch() {
    pushed_command_runs_without_a_fetch(rtl(4), "rtl");
    pushed_command_runs_without_a_fetch(model(4), "model");
}

fn malformed_push_writes_nothing<D: DeviceIo>(mut r: Rig<D>, name: &str) {
    // A FENCE to a misaligned address, then a good one, pushed: BAD_DESC, the queue
    // stops, neither word is written.
    let bad = Command::Fence { data: 0x21, addr: r.iova + 1, irq: false };
    let good = r.fence(1, 0x22);
    r.q.submit(&mut r.io, &[bad, good]).unwrap();
    let err = r.device_error();
    assert_eq!(
        (regs::err_info::CODE.get32(err), regs::err_info::UNIT.get32(err)),
        (regs::dma_error::BAD_DESC as u32, 0),
        "{name}: ERR_INFO {err:#x}"
    );
    r.settle(20_000);
    assert_eq!((r.word(0), r.word(1)), (0, 0), "{name}: nothing written");
    // After a soft reset the queue works again, pushed.
    r.soft_reset();
    let cmds = [r.fence(2, 0x23)];
    r.run_until(&cmds, 2, 0x23, name);
}

#[test]
fn a_malformed_pushed_command_stops_the_queue_and_writes_nothing() {
    malformed_push_writes_nothing(rtl(4), "rtl");
    malformed_push_writes_nothing(model(4), "model");
}

fn unused_pushes<D: DeviceIo>(mut r: Rig<D>, name: &str) {
    r.q.set_push(false);
    let decoy = r.fence(0, 0xDEC0);
    // Committed at index 0, then a soft reset (rings back to index 0, the push
    // forgotten): the ring's command at index 0 runs, not the decoy.
    r.push_by_hand(&[decoy], true);
    r.soft_reset();
    let cmds = [r.fence(0, 0x30)];
    r.run_until(&cmds, 0, 0x30, &format!("{name}: forgotten by a soft reset"));
    r.settle(20_000);
    assert_eq!(r.word(0), 0x30, "{name}: the decoy never ran");
    // A window written but never committed: the ring's command runs.
    r.push_by_hand(&[decoy], false);
    let cmds = [r.fence(0, 0x31)];
    r.run_until(&cmds, 0, 0x31, &format!("{name}: uncommitted"));
    // Committed, then forgotten by a write of another word of the window.
    r.push_by_hand(&[decoy], true);
    r.io.write32(regs::CMDQ_PUSH.at(9).unwrap(), 0).unwrap();
    let cmds = [r.fence(0, 0x32)];
    r.run_until(&cmds, 0, 0x32, &format!("{name}: forgotten by a window write"));
    // Committed, then the queue turned off and on again.
    r.push_by_hand(&[decoy], true);
    let ctrl = r.io.read32(regs::CTRL.offset).unwrap();
    r.io.write32(regs::CTRL.offset, ctrl & !(1 << regs::ctrl::CMDQ_EN.lsb)).unwrap();
    r.io.write32(regs::CTRL.offset, ctrl).unwrap();
    let cmds = [r.fence(0, 0x33)];
    r.run_until(&cmds, 0, 0x33, &format!("{name}: forgotten by CMDQ_EN off"));
    r.settle(20_000);
    assert_eq!(r.word(0), 0x33, "{name}: the decoy never ran");
}

#[test]
fn an_uncommitted_forgotten_disabled_or_reset_push_is_never_used() {
    unused_pushes(rtl(4), "rtl");
    unused_pushes(model(4), "model");
}

fn push_bounds<D: DeviceIo>(mut r: Rig<D>, name: &str) {
    r.q.set_push(false);
    // Bounded by TAIL: two commands committed, one rung. The first is taken from the
    // push (no fetch), the second never: the ring's own entry at its index runs later.
    let (a1, b2, b3) = (r.fence(0, 0x41), r.fence(1, 0x42), r.fence(1, 0x43));
    r.push_by_hand(&[a1, b2], true);
    r.clear_counters();
    r.run_until(&[a1], 0, 0x41, name);
    r.settle(20_000);
    assert_eq!((r.word(1), r.host_reads()), (0, 0), "{name}: only the rung command ran, from the push");
    r.run_until(&[b3], 1, 0x43, name);
    // Bounded by the ring's end (4 entries; TAIL now 2): one filler, then two committed
    // at index 3, rung as index 3 and index 0. The second comes from the ring.
    let filler = r.fence(2, 0x44);
    r.run_until(&[filler], 2, 0x44, name);
    assert_eq!(r.q.tail(), 3, "{name}");
    let (c5, d6, d7) = (r.fence(3, 0x45), r.fence(4, 0x46), r.fence(4, 0x47));
    r.push_by_hand(&[c5, d6], true);
    r.clear_counters();
    r.run_until(&[c5, d7], 4, 0x47, name);
    assert_eq!(r.word(3), 0x45, "{name}");
    assert_eq!(r.host_reads(), 64, "{name}: index 0 fetched from the ring");
}

#[test]
fn a_push_stands_only_for_entries_below_tail_and_before_the_ring_end() {
    push_bounds(rtl(2), "rtl");
    push_bounds(model(2), "model");
}
