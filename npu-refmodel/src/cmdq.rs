//! The model's command queue engine (spec §8, `rtl/npu_cmdq.sv`): INVAL, FENCE, REPLAY
//! and PTE_WRITE, one at a time in ring order.
//!
//! Each command is fetched as one host-port beat; CMDQ_HEAD advances when it arrives,
//! also when the fetch fails. Validation is the RTL's: INVAL needs FLAGS[7:2] = 0 and a
//! scope other than 3, FENCE needs FLAGS[7:1] = 0 and a 4-byte aligned ADDR, REPLAY
//! needs FLAGS[7:1] = 0, PTE_WRITE needs FLAGS = 0, ASID = 0 and its PTE (ARG * 8) inside
//! device memory; anything else (unknown opcode included) is {BAD_DESC, 0}; a
//! failed fetch is {DESC_FETCH, 0} and a failed FENCE write {CPL_WRITE, 0}. After such
//! a device error the queue fetches nothing until soft reset.
//!
//! INVAL has nothing to act on (the model's MMU has no TLB, see [`super::mmu`]); FENCE
//! waits for nothing because earlier commands and data accesses take effect at once.
//! REPLAY reaches the slot it names only if that slot is stalled on a fault whose record
//! has been written (a REPLAY for anything else is ignored, spec §7); the retry walks
//! when the compute unit next runs. Each executed command counts in PERF CMDS, each
//! REPLAY also in PERF REPLAYS.
//!
//! A push (CMDQ_PUSH, CMDQ_PUSH_COMMIT) stands for the ring entries from the TAIL of its
//! commit on; the engine takes its commands instead of fetching when it reaches that
//! entry (this sequential model always reaches it idle, as the RTL does when the driver
//! pushes behind a drained queue), at most as many as lie before the ring's end and
//! below TAIL. Any fetch, a write of the window, CMDQ_EN off and soft reset forget it
//! (the window's words survive soft reset, as in the RTL).

use std::collections::VecDeque;

use super::ModelDevice;
use npu::regs::{self, cmd, cmd_opcode as op, dma_error as e};

/// The engine's state.
#[derive(Default)]
pub(crate) struct CmdQueue {
    /// CMDQ_HEAD.
    pub(crate) head: u16,
    /// Stopped by a device error until soft reset.
    stopped: bool,
    /// The CMDQ_PUSH window's words.
    push_words: [u32; PUSH_WORDS],
    /// A committed push: the CMDQ_TAIL of its commit and its command count.
    push: Option<(u16, u16)>,
    /// Commands of a taken push not yet executed (the RTL's kept commands).
    kept: VecDeque<[u8; cmd::SIZE]>,
}

impl CmdQueue {
    /// The engine after a soft reset: HEAD 0, running, nothing kept or committed; the
    /// window's words stay (the RTL does not clear them).
    pub(crate) fn after_soft_reset(&self) -> Self {
        Self { push_words: self.push_words, ..Self::default() }
    }
}

/// Words of the CMDQ_PUSH window: four 16-byte commands, as many as a 512-bit beat holds.
const PUSH_WORDS: usize = 16;

impl ModelDevice {
    fn cmdq_ring(&self) -> Option<(u64, u16)> {
        self.ctrl(regs::ctrl::CMDQ_EN)
            .then(|| self.ring(regs::CMDQ_BASE_LO, regs::CMDQ_BASE_HI, regs::CMDQ_SIZE_LOG2))
            .flatten()
    }

    fn cmdq_pending(&self, mask: u16) -> bool {
        self.cmdq.head & mask != self.rw.get(regs::CMDQ_TAIL, 0) as u16 & mask
    }

    /// STATUS.CMDQ_BUSY: unfetched commands while enabled. Like the RTL, a queue stopped
    /// by a device error still reads busy while commands remain.
    pub(crate) fn cmdq_busy(&self) -> bool {
        self.cmdq_ring().is_some_and(|(_, mask)| self.cmdq_pending(mask))
    }

    /// A write of word `word` of the CMDQ_PUSH window: it forgets a committed push.
    pub(crate) fn cmdq_push_word(&mut self, word: usize, value: u32) {
        self.cmdq.push_words[word] = value;
        self.cmdq.push = None;
    }

    /// CMDQ_PUSH_COMMIT: the window's first COUNT + 1 commands stand for the entries
    /// from CMDQ_TAIL on (compared with HEAD under the ring's mask, as the RTL does).
    pub(crate) fn cmdq_push_commit(&mut self, value: u32) {
        let n = regs::cmdq_push_commit::COUNT.get32(value) as u16 + 1;
        let enabled = self.ctrl(regs::ctrl::CMDQ_EN);
        self.cmdq.push = enabled.then_some((self.rw.get(regs::CMDQ_TAIL, 0) as u16, n));
    }

    /// The command at `index`: a kept one of a taken push, the push itself if it starts
    /// there, or else a fetch from the ring (which forgets the push); None if the fetch
    /// failed.
    fn next_command(&mut self, base: u64, index: u16, mask: u16) -> Option<[u8; cmd::SIZE]> {
        if let Some(rec) = self.cmdq.kept.pop_front() {
            return Some(rec);
        }
        match self.cmdq.push.take() {
            Some((at, n)) if at & mask == index => {
                let tail = self.rw.get(regs::CMDQ_TAIL, 0) as u16;
                let to_ring = u32::from(mask) + 1 - u32::from(index);
                let to_tail = u32::from(tail.wrapping_sub(index) & mask);
                let keep = u32::from(n).min(to_ring).min(to_tail) as usize;
                let w = &self.cmdq.push_words;
                self.cmdq.kept = (0..keep)
                    .map(|k| {
                        let mut rec = [0u8; cmd::SIZE];
                        for (i, word) in w[4 * k..4 * k + 4].iter().enumerate() {
                            rec[4 * i..4 * i + 4].copy_from_slice(&word.to_le_bytes());
                        }
                        rec
                    })
                    .collect();
                self.cmdq.kept.pop_front()
            }
            _ => {
                // A fetched beat: a push committed at another index is forgotten too.
                let mut rec = [0u8; cmd::SIZE];
                let at = base.wrapping_add(u64::from(index) * cmd::SIZE as u64);
                self.host_record_read(at, &mut rec).then_some(rec)
            }
        }
    }

    /// CMDQ_EN written 0: the kept commands and the push are dropped (the ring may change).
    pub(crate) fn cmdq_off(&mut self) {
        self.cmdq.push = None;
        self.cmdq.kept.clear();
    }

    /// Fetches and executes commands until the ring is empty or the queue stops; true if
    /// any command was fetched.
    pub(crate) fn run_cmdq(&mut self) -> bool {
        let mut progress = false;
        while let Some((base, mask)) = self.cmdq_ring() {
            if self.cmdq.stopped || !self.cmdq_pending(mask) {
                break;
            }
            progress = true;
            let index = self.cmdq.head & mask;
            let fetched = self.next_command(base, index, mask);
            self.cmdq.head = index.wrapping_add(1) & mask;
            let result = match fetched {
                Some(rec) => self.execute_command(&rec),
                None => Err(e::DESC_FETCH),
            };
            match result {
                Ok(()) => self.perf_count(regs::perf_ctr::CMDS),
                Err(code) => {
                    self.device_error(0, code);
                    self.cmdq.stopped = true;
                }
            }
        }
        progress
    }

    /// Executes one command; the error is the ERR_INFO code of a device error.
    fn execute_command(&mut self, rec: &[u8; cmd::SIZE]) -> Result<(), u64> {
        let field = |f: npu::Field| f.get(rec).unwrap_or(0);
        let (opcode, flags, arg, addr) = (field(cmd::OPCODE), field(cmd::FLAGS), field(cmd::ARG), field(cmd::ADDR));
        match opcode {
            op::INVAL if flags >> 2 == 0 && flags != 3 => Ok(()),
            op::FENCE if flags >> 1 == 0 && addr % 4 == 0 => {
                if !self.host_record_write(addr, &(arg as u32).to_le_bytes()) {
                    return Err(e::CPL_WRITE);
                }
                if flags == 1 {
                    self.int_status |= 1 << regs::int_cause::CMD;
                }
                Ok(())
            }
            op::PTE_WRITE if flags == 0 && field(cmd::ASID) == 0 && (arg + 1) * 8 <= self.dev.size() => {
                // One beat on the device port, like the RTL's (ERRINJ does not reach it).
                self.perf_port(false, false, 64);
                self.dev.write(arg * 8, &addr.to_le_bytes()).map_err(|_| e::DEV_WR)
            }
            op::REPLAY if flags >> 1 == 0 => {
                self.perf_count(regs::perf_ctr::REPLAYS);
                self.replay(arg as u16, flags == regs::replay_action::ABORT);
                Ok(())
            }
            _ => Err(e::BAD_DESC),
        }
    }
}
