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

use super::ModelDevice;
use npu::regs::{self, cmd, cmd_opcode as op, dma_error as e};

/// The engine's state.
#[derive(Default)]
pub(crate) struct CmdQueue {
    /// CMDQ_HEAD.
    pub(crate) head: u16,
    /// Stopped by a device error until soft reset.
    stopped: bool,
}

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
            let mut rec = [0u8; cmd::SIZE];
            let fetched = self.host_record_read(base.wrapping_add(u64::from(index) * cmd::SIZE as u64), &mut rec);
            self.cmdq.head = index.wrapping_add(1) & mask;
            let result = if fetched { self.execute_command(&rec) } else { Err(e::DESC_FETCH) };
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
