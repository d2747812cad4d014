//! Early REPLAYs: the faults of the batch being served that the manager resolved while a
//! later part of its migration still copies ([`gmem_host::GmMmu::faults_resolved`]) are
//! answered at once, so the compute unit's requesters go on while the rest of the batch
//! moves (#22, pipelined fault service).
//!
//! The table edits made so far are written first: as PTE_WRITE commands in front of the
//! REPLAYs when they qualify (pte_flush.rs; the command queue executes in order, so a
//! REPLAY's retried walk finds its PTE written), else by DMA on a channel the copy in
//! flight does not use (the device-to-device one), waiting only for that channel; a
//! flush on the copy's own channel would wait for the copy, which is what early answers
//! avoid. The manager reports a fault only after its page's data has arrived and been
//! committed, so no PTE names data still on the way. If the copy uses every channel, or
//! the flush or the command queue fails, the faults are answered with the batch as
//! before.

use crate::DeviceIo;
use crate::cmdq::Command;
use crate::fault::FaultRecord;
use crate::sv39::Pte;

use super::Inner;
use super::copies::Beside;
use super::op_error::OpError;
use super::pte_flush::PteWrites;

/// The batch [`super::NpuDevice::service_faults`] is serving.
pub(super) struct Batch {
    pub(super) records: Vec<FaultRecord>,
    /// Answered already (by an early REPLAY).
    pub(super) replayed: Vec<bool>,
}

impl Batch {
    pub(super) fn new(records: &[FaultRecord]) -> Self {
        Self { records: records.to_vec(), replayed: vec![false; records.len()] }
    }
}

impl<T: DeviceIo> Inner<T> {
    /// Writes the queued table edits by DMA on a channel the copy in flight does not use,
    /// so the copy keeps running (a flush on its channel would wait for it). False, with
    /// nothing written, if the copy uses every channel. A failed flush leaves the edits
    /// queued (`flush_ptes`).
    fn flush_ptes_beside_copy(&mut self) -> Result<bool, OpError> {
        let ch = match self.copies.beside() {
            Beside::NoCopy => None,
            Beside::Channel(ch) => Some(ch),
            Beside::Busy => return Ok(false),
        };
        self.table_channel = ch;
        let flushed = self.flush_ptes();
        self.table_channel = None;
        flushed.map(|()| true)
    }

    /// After a part of the batch's migration committed: writes the table edits queued
    /// so far, then sends a REPLAY RETRY for each of `faults` (indices of the batch) not
    /// answered yet, and for each record that arrived since the batch began whose page
    /// the tables now map as its access needs (its requester waited on a part that has
    /// committed). The other new records stay queued for the next batch.
    pub(super) fn replay_early(&mut self, faults: &[usize]) {
        // Only the thread serving the batch: a `Gmem::dev_fault` of another thread
        // reports indices of its own batch.
        if !self.serving_here() {
            return;
        }
        let Some(batch) = self.batch.as_ref() else { return };
        let due: Vec<usize> =
            faults.iter().copied().filter(|&i| batch.replayed.get(i).is_some_and(|done| !done)).collect();
        let due_replays: Vec<Command> = due.iter().map(|&i| batch.records[i].replay(false)).collect();
        let resets = self.reset_attempts;
        // A failed read leaves the records queued: the next batch meets the error.
        let arrived = if self.fq.has_record() { self.fq.drain(&mut self.io).unwrap_or_default() } else { Vec::new() };
        if due.is_empty() && arrived.is_empty() {
            return;
        }
        let Some(ptes) = self.write_ptes_early() else {
            self.give_back(arrived, resets);
            return;
        };
        let (mapped, later): (Vec<FaultRecord>, Vec<FaultRecord>) = arrived.into_iter().partition(|r| self.maps(r));
        let mut cmds = due_replays;
        cmds.extend(mapped.iter().map(|r| r.replay(false)));
        // One submission; if it fails, the PTEs are queued again for the batch's end.
        if let Err((_, e)) = self.submit_after_ptes(ptes, cmds, usize::MAX, false) {
            tracing::debug!(target: "npu", error = %e, "early replay not sent; the batch's end answers");
            self.give_back(mapped.into_iter().chain(later).collect(), resets);
            return;
        }
        self.fq.put_back(later);
        if let Some(batch) = self.batch.as_mut() {
            for &i in &due {
                batch.replayed[i] = true;
            }
        }
        self.stats.faults += mapped.len() as u64;
        self.stats.early_replays += (due.len() + mapped.len()) as u64;
    }

    /// The queued table edits as PTE_WRITE commands to send ahead of the REPLAYs, or, if
    /// they do not qualify, written now by DMA beside the copy in flight (no command).
    /// `None` if neither can be done now (the copy uses every channel, or a flush or
    /// FENCE failed): the batch's end answers its faults then.
    fn write_ptes_early(&mut self) -> Option<PteWrites> {
        let written = match self.pte_commands() {
            Ok(Some(ptes)) => return Some(ptes),
            Ok(None) => self.flush_ptes_beside_copy(),
            Err(e) => Err(e),
        };
        match written {
            Ok(true) => Some(PteWrites::none()),
            Ok(false) => None,
            Err(e) => {
                tracing::debug!(target: "npu", error = %e, "early PTE write failed; the batch's end answers");
                None
            }
        }
    }

    /// Queues `records` again for the next batch, unless a soft reset was tried (a DMA
    /// that timed out) since they were read at `resets` attempts: the device has then
    /// forgotten their requests, and their REPLAYs would name none.
    pub(super) fn give_back(&mut self, records: Vec<FaultRecord>, resets: u64) {
        if self.reset_attempts == resets {
            self.fq.put_back(records);
        }
    }

    /// Whether the tables map `r`'s page as its access needs (the shadow, which the
    /// device holds once the queued edits are written).
    fn maps(&self, r: &FaultRecord) -> bool {
        let Some(root) = self.roots.get(usize::from(r.asid)).copied().flatten() else { return false };
        let Some((at, _)) = self.shadow.leaf(root, r.va) else { return false };
        let pte = Pte(self.shadow.pte(at));
        pte.readable() && (pte.writable() || !r.write)
    }
}
