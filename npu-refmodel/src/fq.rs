//! The model's fault queue writer (spec §7): a FAULT record for each stalled request.
//!
//! A request that faults stalls in its compute-unit slot ([`super::cu`]); the writer
//! turns stalls into records while CTRL.FQ_EN = 1 and the ring has room, in the order
//! the stalls happened, like the RTL's walk FIFO (slots that stall in one pass of the
//! unit stall in slot order; in the RTL that order is timing-dependent, the set of
//! records is not). It never drops a record: a full ring leaves the request stalled without a
//! record until software moves FQ_HEAD. A record write that fails is a device error
//! {CPL_WRITE, 1}, after which the writer writes nothing until soft reset.

use super::ModelDevice;
use super::cu::Stall;
use npu::regs::{self, fault as rec};

/// The writer's state.
#[derive(Default)]
pub(crate) struct FaultQueue {
    /// FQ_TAIL.
    pub(crate) tail: u16,
    /// SEQ of the next record.
    seq: u32,
    /// A record write failed: stopped until soft reset.
    dev_err: bool,
}

/// REQID of compute-unit slot `slot` (unit 1).
pub(crate) fn reqid(slot: usize) -> u16 {
    0x100 | slot as u16
}

impl ModelDevice {
    /// Writes records for stalled requests while the ring allows; true if any was written
    /// (or the writer stopped).
    pub(crate) fn run_fq(&mut self) -> bool {
        let mut waiting: Vec<(u64, usize)> = self
            .cu
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.stall.filter(|s| !s.recorded).map(|s| (s.order, i)))
            .collect();
        waiting.sort_unstable();
        let mut progress = false;
        for (_, slot) in waiting {
            let Some(stall) = self.cu.slots[slot].stall else { continue };
            if self.fq.dev_err || !self.ctrl(regs::ctrl::FQ_EN) {
                return progress;
            }
            let Some((base, mask)) = self.ring(regs::FQ_BASE_LO, regs::FQ_BASE_HI, regs::FQ_SIZE_LOG2) else {
                return progress;
            };
            let tail = self.fq.tail & mask;
            if tail.wrapping_add(1) & mask == self.rw.get(regs::FQ_HEAD, 0) as u16 & mask {
                return progress;
            }
            progress = true;
            let record = self.fault_record(slot, &stall);
            if !self.host_record_write(base.wrapping_add(u64::from(tail) * rec::SIZE as u64), &record) {
                self.device_error(1, regs::dma_error::CPL_WRITE);
                self.fq.dev_err = true;
                return progress;
            }
            self.fq.tail = tail.wrapping_add(1) & mask;
            self.fq.seq = self.fq.seq.wrapping_add(1);
            self.cu.slots[slot].stall = Some(Stall { recorded: true, ..stall });
            self.perf_count(regs::perf_ctr::FAULTS);
            self.int_status |= 1 << regs::int_cause::FAULT;
        }
        progress
    }

    fn fault_record(&self, slot: usize, s: &Stall) -> [u8; rec::SIZE] {
        let mut r = [0u8; rec::SIZE];
        rec::CAUSE.set(&mut r, s.fault.cause);
        rec::ACCESS.set(&mut r, u64::from(s.write));
        rec::LEVEL.set(&mut r, u64::from(s.fault.level));
        rec::ASID.set(&mut r, u64::from(s.asid));
        rec::REQID.set(&mut r, u64::from(reqid(slot)));
        rec::SEQ.set(&mut r, u64::from(self.fq.seq));
        rec::VA.set(&mut r, s.va);
        rec::PTE.set(&mut r, s.fault.pte);
        r
    }
}
