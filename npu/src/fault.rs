//! Driver of the NPU's fault queue: replayable MMU faults reported to the host.
//!
//! A compute-unit request whose translation fails does not fail: it stalls in its slot
//! and the MMU writes a 32-byte `FAULT` record into the fault queue (FQ) in host memory,
//! advances `FQ_TAIL` and raises interrupt FAULT (docs/device.md §7). Software fixes the
//! page tables (or gives up) and answers every record with exactly one REPLAY command
//! quoting its REQID ([`FaultRecord::replay`], sent through the command queue). Records
//! carry a running SEQ number; [`FaultQueue::drain`] checks that none was lost or
//! repeated, because a missed record leaves a request stalled forever and a repeated one
//! would be answered twice.

use crate::cmdq::Command;
use crate::device_io::{DeviceIo, IoError};
use crate::dma_buf::DmaBufError;
use crate::record::{RecordError, check_len, check_reserved, get};
use crate::regmap::Field;
use crate::regs;
use crate::ring::{Producer, Ring, RingRegs, Verdict, marker};

/// REQID bits 15:8 of a compute-unit request (§7).
pub const REQID_UNIT_CU: u8 = 1;

/// Why a translation failed (FAULT_CAUSE, RISC-V IOMMU numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum FaultCause {
    /// Walk error on a read (PTE fetch error, table outside device memory, injected).
    ReadAccess = regs::fault_cause::READ_ACCESS as u16,
    /// Walk error on a write.
    WriteAccess = regs::fault_cause::WRITE_ACCESS as u16,
    /// Read page fault: invalid or ill-formed PTE, missing R, non-canonical VA.
    ReadPage = regs::fault_cause::READ_PAGE as u16,
    /// Write page fault: invalid or ill-formed PTE, missing W, non-canonical VA.
    WritePage = regs::fault_cause::WRITE_PAGE as u16,
    /// The ASID has no valid PTROOT, or CTRL.MMU_EN is 0.
    AsidInvalid = regs::fault_cause::ASID_INVALID as u16,
}

impl FaultCause {
    const ALL: [FaultCause; 5] =
        [Self::ReadAccess, Self::WriteAccess, Self::ReadPage, Self::WritePage, Self::AsidInvalid];

    /// The FAULT.CAUSE value.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The cause of a FAULT.CAUSE value.
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The access type the cause implies: `Some(true)` for a write, `Some(false)` for a
    /// read, `None` for AsidInvalid (either).
    pub fn implies_write(self) -> Option<bool> {
        match self {
            Self::ReadAccess | Self::ReadPage => Some(false),
            Self::WriteAccess | Self::WritePage => Some(true),
            Self::AsidInvalid => None,
        }
    }
}

/// A validated fault record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultRecord {
    /// Why the translation failed.
    pub cause: FaultCause,
    /// The request was a store.
    pub write: bool,
    /// Walk level at which the walk stopped (2 = root).
    pub level: u8,
    /// Address space of the request.
    pub asid: u16,
    /// Requester ID of the stalled request (unit 1 = compute unit, slot in bits 7:0).
    pub reqid: u16,
    /// Running fault number (wraps).
    pub seq: u32,
    /// Faulting virtual address (first byte of the access).
    pub va: u64,
    /// PTE read at `level` (0 if none was read).
    pub pte: u64,
}

/// FAULT fields, for the reserved-bit check.
const FAULT_FIELDS: [Field; 8] = {
    use regs::fault::*;
    [CAUSE, ACCESS, LEVEL, ASID, REQID, SEQ, VA, PTE]
};

impl FaultRecord {
    /// Decodes and validates a 32-byte FAULT record: known cause, ACCESS consistent
    /// with the cause (READ_* ⇒ read, WRITE_* ⇒ write), LEVEL ≤ 2, reserved bits 0,
    /// REQID naming the compute unit.
    pub fn decode(rec: &[u8]) -> Result<Self, RecordError> {
        use regs::fault as f;
        check_len("FAULT", rec, f::SIZE)?;
        let code = get(rec, f::CAUSE) as u16;
        let cause = FaultCause::from_code(code).ok_or(RecordError::UnknownCause { cause: code })?;
        let write = get(rec, f::ACCESS) == regs::access::WRITE;
        if cause.implies_write().is_some_and(|w| w != write) {
            return Err(RecordError::AccessMismatch { cause, write });
        }
        let level = get(rec, f::LEVEL) as u8;
        if level > 2 {
            return Err(RecordError::BadLevel { level });
        }
        check_reserved("FAULT", rec, &FAULT_FIELDS)?;
        let reqid = get(rec, f::REQID) as u16;
        if (reqid >> 8) as u8 != REQID_UNIT_CU {
            return Err(RecordError::BadRequester { reqid });
        }
        Ok(Self {
            cause,
            write,
            level,
            asid: get(rec, f::ASID) as u16,
            reqid,
            seq: get(rec, f::SEQ) as u32,
            va: get(rec, f::VA),
            pte: get(rec, f::PTE),
        })
    }

    /// The 32-byte record as the MMU writes it (for models and tests).
    pub fn encode(&self) -> [u8; regs::fault::SIZE] {
        use regs::fault as f;
        let mut rec = [0u8; f::SIZE];
        let access = if self.write { regs::access::WRITE } else { regs::access::READ };
        for (field, v) in [
            (f::CAUSE, u64::from(self.cause.code())),
            (f::ACCESS, access),
            (f::LEVEL, u64::from(self.level)),
            (f::ASID, u64::from(self.asid)),
            (f::REQID, u64::from(self.reqid)),
            (f::SEQ, u64::from(self.seq)),
            (f::VA, self.va),
            (f::PTE, self.pte),
        ] {
            field.set(&mut rec, v);
        }
        rec
    }

    /// The compute-unit slot of the stalled request (REQID bits 7:0).
    pub fn slot(&self) -> u8 {
        self.reqid as u8
    }

    /// The REPLAY command that answers this record: retry the request, or fail it
    /// (`abort`; its kernel completes with FaultAbort).
    pub fn replay(&self, abort: bool) -> Command {
        Command::Replay { reqid: self.reqid, abort }
    }
}

/// Errors of the fault queue driver.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// Transport failure.
    #[error(transparent)]
    Io(#[from] IoError),
    /// Ring memory could not be allocated or accessed.
    #[error(transparent)]
    Buffer(#[from] DmaBufError),
    /// Ring size outside 1 ..= 16 (log2 of the entry count).
    #[error("fault queue size_log2 {size_log2} is outside 1..=16")]
    RingSize {
        /// Requested.
        size_log2: u32,
    },
    /// CTRL.FQ_EN is already set: the ring must not be reprogrammed while enabled (§4).
    #[error("the fault queue is already enabled (CTRL.FQ_EN = 1); release the other queue first")]
    AlreadyEnabled,
    /// The device wrote a record that breaks the record rules.
    #[error("malformed fault record at FQ slot {slot}")]
    Malformed {
        /// FQ slot of the record.
        slot: u16,
        /// The rule it breaks.
        #[source]
        source: RecordError,
    },
    /// SEQ jumped forward: `seen − expected` records were lost.
    #[error("fault record at FQ slot {slot}: SEQ gap, expected {expected}, saw {seen}")]
    SeqGap {
        /// FQ slot of the record.
        slot: u16,
        /// SEQ the next record should carry.
        expected: u32,
        /// SEQ it carries.
        seen: u32,
    },
    /// SEQ did not advance: a record was written again.
    #[error("fault record at FQ slot {slot}: SEQ repeat, expected {expected}, saw {seen}")]
    SeqRepeat {
        /// FQ slot of the record.
        slot: u16,
        /// SEQ the next record should carry.
        expected: u32,
        /// SEQ it carries.
        seen: u32,
    },
}

/// The fault queue ring, set up on a device.
pub struct FaultQueue {
    /// The ring; its index is the host's FQ_HEAD.
    ring: Ring,
    /// SEQ the next record must carry; `None` until the first record after `init`
    /// (the device's count is unknown then).
    next_seq: Option<u32>,
    /// Records consumed but not yet handed out (a later record was bad); the next
    /// drain returns them first.
    carry: Vec<FaultRecord>,
}

const FQ_REGS: RingRegs = RingRegs {
    base: regs::FQ_BASE_LO.offset,
    size_log2: regs::FQ_SIZE_LOG2.offset,
    head: regs::FQ_HEAD.offset,
    tail: regs::FQ_TAIL.offset,
};

impl FaultQueue {
    /// Allocates and maps a ring of 2^`size_log2` records, programs FQ_* and sets
    /// CTRL.FQ_EN (other CTRL bits kept).
    pub fn init<T: DeviceIo + ?Sized>(io: &mut T, size_log2: u32) -> Result<Self, FaultError> {
        if !crate::ring::SIZE_LOG2.contains(&size_log2) {
            return Err(FaultError::RingSize { size_log2 });
        }
        if regs::ctrl::FQ_EN.get32(io.read32(regs::CTRL.offset)?) == 1 {
            return Err(FaultError::AlreadyEnabled);
        }
        let ring = Ring::set_up::<_, FaultError>(
            io,
            FQ_REGS,
            size_log2,
            regs::fault::SIZE,
            Producer::Device { marker: marker::FAULT },
        )?;
        crate::device_io::set_ctrl_bit(io, regs::ctrl::FQ_EN, true)?;
        Ok(Self { ring, next_seq: None, carry: Vec::new() })
    }

    /// Reads every new fault record from host memory (found by its free marker, no
    /// MMIO read; [`crate::ring`]), validates them and writes FQ_HEAD (posted).
    ///
    /// Errors leave nothing behind silently: records before the offending one are
    /// consumed and returned by the next call. A malformed record stays in the ring
    /// (the device needs a soft reset). On a SEQ gap the record stays in the ring and
    /// the expected SEQ moves to it, so the next call delivers it; on a SEQ repeat the
    /// duplicate is consumed and dropped, so it is never answered twice.
    pub fn drain<T: DeviceIo + ?Sized>(&mut self, io: &mut T) -> Result<Vec<FaultRecord>, FaultError> {
        let mut out = std::mem::take(&mut self.carry);
        let next_seq = &mut self.next_seq;
        let result = self.ring.consume(io, |slot, rec| {
            let r = match FaultRecord::decode(rec) {
                Ok(r) => r,
                Err(source) => return Verdict::Keep(FaultError::Malformed { slot, source }),
            };
            match *next_seq {
                // Forward distance less than half the SEQ space: records were lost.
                Some(expected) if r.seq != expected && (r.seq.wrapping_sub(expected) as i32) > 0 => {
                    *next_seq = Some(r.seq);
                    Verdict::Keep(FaultError::SeqGap { slot, expected, seen: r.seq })
                }
                Some(expected) if r.seq != expected => {
                    Verdict::Drop(FaultError::SeqRepeat { slot, expected, seen: r.seq })
                }
                _ => {
                    *next_seq = Some(r.seq.wrapping_add(1));
                    out.push(r);
                    Verdict::Take
                }
            }
        });
        match result {
            Ok(()) => Ok(out),
            Err(e) => {
                self.carry = out;
                Err(e)
            }
        }
    }

    /// Hands `records` (taken from [`FaultQueue::drain`] and not answered) out again,
    /// first, at the next `drain`.
    pub(crate) fn put_back(&mut self, mut records: Vec<FaultRecord>) {
        records.append(&mut self.carry);
        self.carry = records;
    }

    /// True if [`FaultQueue::drain`] has a record to hand out (one in host memory, or
    /// one held back by an earlier error). Reads host memory only.
    pub(crate) fn has_record(&self) -> bool {
        !self.carry.is_empty() || self.ring.has_record()
    }

    /// After a soft reset (§13) the device has forgotten every stalled request, zeroed
    /// FQ_HEAD/FQ_TAIL and restarted SEQ at 0: do the same here. Returns how many
    /// records were consumed but not yet handed out (now void).
    pub fn after_soft_reset(&mut self) -> usize {
        let lost = self.carry.len();
        self.carry.clear();
        self.ring.restart();
        self.next_seq = Some(0);
        lost
    }

    /// Clears CTRL.FQ_EN (other bits kept; later faults wait inside the MMU) and unmaps
    /// the ring.
    pub fn release<T: DeviceIo + ?Sized>(self, io: &mut T) -> Result<(), FaultError> {
        crate::device_io::set_ctrl_bit(io, regs::ctrl::FQ_EN, false)?;
        io.dma_unmap(self.ring.iova)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
