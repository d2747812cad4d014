//! Driver of the NPU's command queue: TLB invalidations, fences and fault replays.
//!
//! Commands are 16-byte `CMD` records in a ring in DMA-mapped host memory; the device
//! executes them in order. A FENCE completes only after every earlier command took
//! effect and then writes a 32-bit value to host memory — [`CmdQueue::fence`] uses a
//! fresh sequence number each time and waits (in device time) until it appears.

use crate::device_io::{DeviceIo, IoError};
use crate::dma_buf::{DmaBufError, DmaBuffer};
use crate::regs;
use crate::ring::{Producer, QUIET_NS, Ring, RingRegs};

/// Which TLB entries an invalidation drops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalScope {
    /// Every entry of every ASID.
    All,
    /// Every entry of one ASID.
    Asid(u16),
    /// Entries of one ASID overlapping `pages` 4 KiB pages from `va`.
    Range {
        /// Address space.
        asid: u16,
        /// First virtual address (page aligned).
        va: u64,
        /// Number of 4 KiB pages (≥ 1).
        pages: u32,
    },
}

/// One command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// TLB invalidation.
    Inval(InvalScope),
    /// Completion barrier: writes `data` to IOVA `addr` (4-byte aligned).
    Fence {
        /// Value written.
        data: u32,
        /// Host IOVA of the 32-bit word.
        addr: u64,
        /// Raise interrupt cause CMD when done.
        irq: bool,
    },
    /// Resume (retry) or fail (abort) the faulting request `reqid`.
    Replay {
        /// Requester ID from the fault record.
        reqid: u16,
        /// Fail the request instead of retrying it.
        abort: bool,
    },
    /// Write one page-table entry into device memory; done before the next command.
    PteWrite {
        /// Device-physical address of the PTE (8-byte aligned).
        pa: u64,
        /// The PTE.
        value: u64,
    },
}

impl Command {
    /// The 16-byte record.
    pub fn encode(&self) -> [u8; regs::cmd::SIZE] {
        let mut rec = [0u8; regs::cmd::SIZE];
        let (op, flags, asid, arg, addr) = match *self {
            Command::Inval(InvalScope::All) => (regs::cmd_opcode::INVAL, regs::inval_scope::ALL, 0, 0, 0),
            Command::Inval(InvalScope::Asid(a)) => (regs::cmd_opcode::INVAL, regs::inval_scope::ASID, a, 0, 0),
            Command::Inval(InvalScope::Range { asid, va, pages }) => {
                (regs::cmd_opcode::INVAL, regs::inval_scope::RANGE, asid, u64::from(pages), va)
            }
            Command::Fence { data, addr, irq } => (regs::cmd_opcode::FENCE, u64::from(irq), 0, u64::from(data), addr),
            Command::Replay { reqid, abort } => {
                let action = if abort { regs::replay_action::ABORT } else { regs::replay_action::RETRY };
                (regs::cmd_opcode::REPLAY, action, 0, u64::from(reqid), 0)
            }
            Command::PteWrite { pa, value } => (regs::cmd_opcode::PTE_WRITE, 0, 0, pa / 8, value),
        };
        regs::cmd::OPCODE.set(&mut rec, op);
        regs::cmd::FLAGS.set(&mut rec, flags);
        regs::cmd::ASID.set(&mut rec, u64::from(asid));
        regs::cmd::ARG.set(&mut rec, arg);
        regs::cmd::ADDR.set(&mut rec, addr);
        rec
    }
}

/// Errors of the command queue driver.
#[derive(Debug, thiserror::Error)]
pub enum CmdqError {
    /// Transport failure.
    #[error(transparent)]
    Io(#[from] IoError),
    /// Ring memory could not be allocated.
    #[error(transparent)]
    Buffer(#[from] DmaBufError),
    /// Ring size outside 1 ..= 16 (log2 of the entry count).
    #[error("command queue size_log2 {size_log2} is outside 1..=16")]
    RingSize {
        /// Requested.
        size_log2: u32,
    },
    /// Not enough free entries; wait for the device to consume some.
    #[error("command queue full: {needed} entries needed, {free} free")]
    Full {
        /// Entries asked for.
        needed: usize,
        /// Entries free.
        free: usize,
    },
    /// A fence did not complete within the budget.
    #[error("FENCE {seq} did not complete within {budget_ns} ns of device time")]
    FenceTimeout {
        /// Sequence number of the fence.
        seq: u32,
        /// Budget.
        budget_ns: u64,
    },
    /// The device stopped the queue with a device error.
    #[error("the command queue stopped with a device error (ERR_INFO {err_info:#010x})")]
    DeviceError {
        /// ERR_INFO register.
        err_info: u32,
    },
}

/// The command queue ring, set up on a device.
pub struct CmdQueue {
    /// The ring; its index is the host's CMDQ_TAIL.
    ring: Ring,
    fence: DmaBuffer,
    fence_iova: u64,
    seq: u32,
    /// CMDQ_HEAD as last learnt (read, or implied by a completed fence): the device has
    /// consumed at least up to it, so the room it leaves is a safe lower bound.
    head_seen: u16,
    /// Whether small submissions are pushed through CMDQ_PUSH ([`CmdQueue::set_push`]).
    push: bool,
    /// The device holds a push committed for the slot at the ring's tail by a
    /// submission whose doorbell then failed: it must be forgotten (a write of the
    /// window) before that slot is rung with other commands.
    stale_push: bool,
}

/// Most commands one push carries: the CMDQ_PUSH window's four records (a 512-bit beat).
pub const PUSH_MAX: usize = (regs::CMDQ_PUSH.count as usize) / 4;

const CMDQ_REGS: RingRegs = RingRegs {
    base: regs::CMDQ_BASE_LO.offset,
    size_log2: regs::CMDQ_SIZE_LOG2.offset,
    head: regs::CMDQ_HEAD.offset,
    tail: regs::CMDQ_TAIL.offset,
};

impl CmdQueue {
    /// Allocates a ring of 2^`size_log2` entries and a fence word, programs the
    /// registers and enables the queue (CTRL.CMDQ_EN).
    pub fn init<T: DeviceIo + ?Sized>(io: &mut T, size_log2: u32) -> Result<Self, CmdqError> {
        if !crate::ring::SIZE_LOG2.contains(&size_log2) {
            return Err(CmdqError::RingSize { size_log2 });
        }
        let ring = Ring::set_up::<_, CmdqError>(io, CMDQ_REGS, size_log2, regs::cmd::SIZE, Producer::Host)?;
        let fence = DmaBuffer::new(4096)?;
        let fence_iova = io.dma_map(&fence)?;
        crate::device_io::set_ctrl_bit(io, regs::ctrl::CMDQ_EN, true)?;
        let head_seen = ring.index;
        Ok(Self { ring, fence, fence_iova, seq: 0, head_seen, push: true, stale_push: false })
    }

    /// Whether a submission of at most [`PUSH_MAX`] commands that does not wrap the
    /// ring is also pushed through BAR0 (CMDQ_PUSH), so an idle engine starts it without
    /// a host read (docs/device.md 8). On after [`CmdQueue::init`]; the NPU driver sets
    /// it from `NpuConfig::push` (off by default: the uncached stores cost a board more
    /// than the fetch).
    pub fn set_push(&mut self, on: bool) {
        self.push = on;
    }

    /// The ring slot the next command goes to (the host's CMDQ_TAIL).
    pub fn tail(&self) -> u16 {
        self.ring.index
    }

    /// Entries free if the device has consumed only up to `head`.
    fn free_after(&self, head: u16) -> usize {
        let used = self.ring.index.wrapping_sub(head) & self.mask();
        usize::from(self.mask() - used)
    }

    fn mask(&self) -> u16 {
        self.ring.mask
    }

    /// Entries the ring can take now.
    pub fn free<T: DeviceIo + ?Sized>(&mut self, io: &mut T) -> Result<usize, CmdqError> {
        self.head_seen = io.read32(regs::CMDQ_HEAD.offset)? as u16 & self.mask();
        Ok(self.free_after(self.head_seen))
    }

    /// Writes the commands and rings the doorbell once. CMDQ_HEAD is read (an MMIO
    /// read) only when the room last learnt is not enough. On an error nothing was
    /// submitted: the ring's tail stays where it was, so the next submission writes over
    /// these entries and its doorbell never hands them to the device.
    pub fn submit<T: DeviceIo + ?Sized>(&mut self, io: &mut T, cmds: &[Command]) -> Result<(), CmdqError> {
        let mut free = self.free_after(self.head_seen);
        if cmds.len() > free {
            free = self.free(io)?;
        }
        if cmds.len() > free {
            return Err(CmdqError::Full { needed: cmds.len(), free });
        }
        let tail = self.ring.index;
        let rang = self.write_and_ring(io, cmds);
        if rang.is_err() {
            self.ring.index = tail;
        }
        rang
    }

    fn write_and_ring<T: DeviceIo + ?Sized>(&mut self, io: &mut T, cmds: &[Command]) -> Result<(), CmdqError> {
        let first = usize::from(self.ring.index & self.mask());
        for c in cmds {
            let slot = usize::from(self.ring.index & self.mask());
            self.ring.buf.write(slot * regs::cmd::SIZE, &c.encode())?;
            self.ring.index = self.ring.index.wrapping_add(1) & self.mask();
        }
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        let fits = !cmds.is_empty() && cmds.len() <= PUSH_MAX && first + cmds.len() <= usize::from(self.mask()) + 1;
        // A failed push falls back to the ring: the doorbell hands the device the same
        // commands to fetch.
        let pushed = self.push && fits && {
            let push = self.push_commands(io, cmds);
            if let Err(e) = &push {
                tracing::debug!(target: "npu", error = %e, "command push failed; the ring serves");
            }
            push.is_ok()
        };
        if self.stale_push && !pushed {
            // Any write of the window forgets a committed push (docs/device.md 8).
            io.write32(regs::CMDQ_PUSH.offset, 0)?;
            self.stale_push = false;
        }
        io.write32(regs::CMDQ_TAIL.offset, u32::from(self.ring.index))?;
        self.stale_push = false;
        Ok(())
    }

    /// Writes `cmds` into the CMDQ_PUSH window and commits them: the push then stands
    /// for the ring's slots from its tail on until the doorbell. It is marked stale from
    /// the commit write on (before it: a commit reported failed may have landed), until
    /// a doorbell or a write of the window forgets it.
    fn push_commands<T: DeviceIo + ?Sized>(&mut self, io: &mut T, cmds: &[Command]) -> Result<(), IoError> {
        for (k, c) in cmds.iter().enumerate() {
            crate::device_io::write_window(io, regs::CMDQ_PUSH, 4 * k as u32, &c.encode())?;
        }
        let count = regs::cmdq_push_commit::COUNT.put32(0, cmds.len() as u32 - 1);
        self.stale_push = true;
        io.write32(regs::CMDQ_PUSH_COMMIT.offset, count)?;
        Ok(())
    }

    /// Submits `cmds` followed by a FENCE and waits until the fence has completed, i.e.
    /// until every command took effect. Returns the fence's sequence number.
    pub fn run_fenced<T: DeviceIo + ?Sized>(
        &mut self,
        io: &mut T,
        cmds: &[Command],
        budget_ns: u64,
    ) -> Result<u32, CmdqError> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let seq = self.seq;
        let mut all = cmds.to_vec();
        all.push(Command::Fence { data: seq, addr: self.fence_iova, irq: false });
        self.submit(io, &all)?;
        let start = io.now_ns();
        let fence = &self.fence;
        loop {
            let waited = io.now_ns().saturating_sub(start);
            let slice = budget_ns.saturating_sub(waited).min(QUIET_NS);
            if io.wait_host(slice, &mut || fence.read_u32(0).is_ok_and(|v| v == seq))? {
                // The device has consumed every command up to the fence.
                self.head_seen = self.ring.index;
                return Ok(seq);
            }
            // Quiet for a while: a device error stops the queue (the only MMIO reads).
            let status = io.read32(regs::STATUS.offset)?;
            if regs::status::ERROR.get32(status) == 1 {
                return Err(CmdqError::DeviceError { err_info: io.read32(regs::ERR_INFO.offset)? });
            }
            if io.now_ns().saturating_sub(start) >= budget_ns {
                return Err(CmdqError::FenceTimeout { seq, budget_ns });
            }
        }
    }

    /// After a soft reset (§13) the device has zeroed CMDQ_HEAD and CMDQ_TAIL and
    /// forgotten unexecuted commands: start again at index 0.
    pub fn after_soft_reset(&mut self) {
        self.ring.restart();
        self.head_seen = 0;
        // A soft reset forgets committed pushes (docs/device.md 8).
        self.stale_push = false;
    }

    /// IOVA of the fence word (for fences written by hand).
    pub fn fence_iova(&self) -> u64 {
        self.fence_iova
    }

    /// Unmaps the ring (disable the queue first if the device stays in use).
    pub fn release<T: DeviceIo + ?Sized>(self, io: &mut T) -> Result<(), CmdqError> {
        crate::device_io::set_ctrl_bit(io, regs::ctrl::CMDQ_EN, false)?;
        io.dma_unmap(self.ring.iova)?;
        io.dma_unmap(self.fence_iova)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_sizes_outside_the_spec_are_refused() {
        let mut io = crate::fake_io::FakeIo::new();
        for size_log2 in [0, 17] {
            let r = CmdQueue::init(&mut io, size_log2);
            assert!(matches!(r, Err(CmdqError::RingSize { size_log2: s }) if s == size_log2));
        }
    }

    /// A queue on a fake device behind a transport whose CMDQ_TAIL writes fail (after
    /// the set-up) while `inj` holds the rule.
    fn failing_doorbells() -> (crate::inject::FaultyIo<crate::fake_io::FakeIo>, CmdQueue, gmem_host::inject::Injector) {
        let inj = gmem_host::inject::Injector::new(1);
        let mut io = crate::inject::FaultyIo::new(crate::fake_io::FakeIo::new(), inj.clone());
        let q = CmdQueue::init(&mut io, 4).unwrap();
        let tail = u64::from(regs::CMDQ_TAIL.offset);
        inj.add("io:write32", gmem_host::inject::Trigger::Range { lo: tail, hi: tail + 4 }).unwrap();
        (io, q, inj)
    }

    /// The CSR writes logged since entry `from`, as (offset, value).
    fn writes_since(io: &mut crate::inject::FaultyIo<crate::fake_io::FakeIo>, from: usize) -> Vec<(u32, u32)> {
        let log = &io.inner().log[from..];
        log.iter()
            .filter_map(|op| match op {
                crate::fake_io::CsrOp::Write(at, v) => Some((*at, *v)),
                crate::fake_io::CsrOp::Read(_) => None,
            })
            .collect()
    }

    #[test]
    fn a_failed_doorbell_submits_nothing_and_the_next_submission_takes_its_slots() {
        let (mut io, mut q, inj) = failing_doorbells();
        let stale = [Command::Replay { reqid: 0x101, abort: false }, Command::Replay { reqid: 0x102, abort: false }];
        let before = io.inner().log.len();
        assert!(q.submit(&mut io, &stale).is_err());
        assert_eq!(q.ring.index, 0, "the tail did not move");
        let commit = regs::CMDQ_PUSH_COMMIT.offset;
        assert!(writes_since(&mut io, before).contains(&(commit, 1)), "the two were pushed and committed");
        // The next submission, even unpushed, first forgets the committed push of the
        // stale two (a write of the window), then rings its own command alone.
        inj.clear();
        q.set_push(false);
        let fresh = Command::Replay { reqid: 0x103, abort: true };
        let before = io.inner().log.len();
        q.submit(&mut io, &[fresh]).unwrap();
        let tail = regs::CMDQ_TAIL.offset;
        assert_eq!(
            writes_since(&mut io, before),
            [(regs::CMDQ_PUSH.offset, 0), (tail, 1)],
            "forget, then the doorbell"
        );
        assert_eq!(q.ring.index, 1, "the doorbell hands the device one command, not the stale two");
        let mut slot0 = [0u8; regs::cmd::SIZE];
        q.ring.buf.read(0, &mut slot0).unwrap();
        assert_eq!(slot0, fresh.encode(), "the fresh command overwrote the stale one");
        // Once a doorbell went out, nothing is left to forget: a doorbell alone.
        let before = io.inner().log.len();
        q.submit(&mut io, &[fresh]).unwrap();
        assert_eq!(writes_since(&mut io, before), [(tail, 2)]);
    }

    #[test]
    fn a_small_submission_is_pushed_whole_and_a_large_or_wrapping_one_is_not() {
        let mut io = crate::fake_io::FakeIo::new();
        let mut q = CmdQueue::init(&mut io, 3).unwrap();
        let r = |reqid| Command::Replay { reqid, abort: false };
        let commits = |io: &crate::fake_io::FakeIo, from: usize| -> Vec<u32> {
            let at = regs::CMDQ_PUSH_COMMIT.offset;
            io.log[from..]
                .iter()
                .filter_map(|op| match op {
                    crate::fake_io::CsrOp::Write(a, v) if *a == at => Some(*v),
                    _ => None,
                })
                .collect()
        };
        let before = io.log.len();
        q.submit(&mut io, &[r(1), r(2), r(3), r(4)]).unwrap();
        assert_eq!(commits(&io, before), [3], "four commands: one push of four (COUNT 3)");
        let word0 = |c: Command| u32::from_le_bytes(c.encode()[..4].try_into().unwrap());
        assert_eq!(io.regs[&regs::CMDQ_PUSH.at(12).unwrap()], word0(r(4)), "the fourth is command 3 of the window");
        let before = io.log.len();
        q.submit(&mut io, &[r(5), r(6)]).unwrap();
        assert_eq!(commits(&io, before), [1], "two commands: pushed");
        // Slots 6, 7 and 0 wrap the ring's end: not pushed; nor are five commands.
        io.regs.insert(regs::CMDQ_HEAD.offset, 6);
        let before = io.log.len();
        q.submit(&mut io, &[r(7), r(8), r(9)]).unwrap();
        assert_eq!(q.ring.index, 1);
        assert!(commits(&io, before).is_empty(), "a wrapping submission goes by the ring");
        io.regs.insert(regs::CMDQ_HEAD.offset, 1);
        let before = io.log.len();
        q.submit(&mut io, &[r(10), r(11), r(12), r(13), r(14)]).unwrap();
        assert!(commits(&io, before).is_empty(), "five commands go by the ring");
    }

    #[test]
    fn commands_encode_per_the_record_layout() {
        let r = Command::Inval(InvalScope::Range { asid: 7, va: 0x4000_0000, pages: 3 }).encode();
        assert_eq!(r[0], 1, "INVAL");
        assert_eq!(r[1], 2, "scope RANGE");
        assert_eq!(u16::from_le_bytes([r[2], r[3]]), 7);
        assert_eq!(u32::from_le_bytes(r[4..8].try_into().unwrap()), 3);
        assert_eq!(u64::from_le_bytes(r[8..16].try_into().unwrap()), 0x4000_0000);
        let f = Command::Fence { data: 0xAB, addr: 0x1_0004, irq: true }.encode();
        assert_eq!((f[0], f[1]), (2, 1));
        assert_eq!(u32::from_le_bytes(f[4..8].try_into().unwrap()), 0xAB);
        let p = Command::Replay { reqid: 0x103, abort: true }.encode();
        assert_eq!((p[0], p[1]), (3, 1));
        assert_eq!(u32::from_le_bytes(p[4..8].try_into().unwrap()), 0x103);
        let w = Command::PteWrite { pa: 0xF80_0018, value: 0x2000_00CF }.encode();
        assert_eq!((w[0], w[1], w[2], w[3]), (4, 0, 0, 0), "PTE_WRITE, no flags, no ASID");
        assert_eq!(u32::from_le_bytes(w[4..8].try_into().unwrap()), 0xF80_0018 / 8, "ARG = PA / 8");
        assert_eq!(u64::from_le_bytes(w[8..16].try_into().unwrap()), 0x2000_00CF, "ADDR = the PTE");
    }
}
