//! Writing the driver's table edits to device memory: by DMA of staged PTEs, or as
//! PTE_WRITE commands ahead of the commands that need them (docs/device.md §8).
//!
//! Table edits are queued ([`Inner::stage`]) and written before anything the device may
//! do with them. A fault batch with few PTE changes and no new table page sends them as
//! PTE_WRITE commands in front of its REPLAYs, and a TLB invalidation in front of its
//! INVALs: the command queue executes in order, so the REPLAY or INVAL finds the entry
//! written, and no DMA round trip is spent on the PTEs. Anything else goes by DMA
//! ([`Inner::flush_ptes`]).
//!
//! The command queue and the DMA engine are independent, so a DMA write of a PTE could
//! overtake an older PTE_WRITE of the same entry. The PTEs sent as commands since the
//! last completed FENCE are therefore remembered: a DMA of table memory (a PTE flush, a
//! read-back) fences first, and a soft reset, which drops unexecuted commands, queues
//! them again.

use crate::DeviceIo;

use crate::cmdq::Command;
use crate::dma::{DmaAddr, DmaDesc};
use crate::sv39::PAGE;

use super::op_error::OpError;
use super::shadow::Changes;
use super::{Inner, STAGED_PTES};

/// Most PTE changes a fault batch or an invalidation sends as commands; more go by DMA.
/// The queue fetches four commands per host read round trip, a DMA moves 64 PTEs per
/// beat after its descriptor fetch: past two beats of commands the DMA is as quick
/// (`gmem profile faults`: `cpu_fault_us` 8.7 → 6.1 with 2 to 8, 16 slows faultback).
pub(super) const PTE_COMMANDS_MAX: usize = 8;

/// PTEs sent as commands that may stay unfenced; past this many the next batch fences
/// first, so the set stays small.
const UNFENCED_MAX: usize = 1024;

/// PTE_WRITE commands taken from the queued table edits ([`Inner::pte_commands`]). Only
/// [`Inner::submit_after_ptes`] sends them, and it queues their edits again when they
/// may not have reached the device, so no caller can lose a PTE.
#[must_use = "the table edits were taken from the queue: send them with Inner::submit_after_ptes"]
pub(super) struct PteWrites(Vec<Command>);

impl PteWrites {
    /// No PTE to write (the edits went by DMA, or there were none).
    pub(super) fn none() -> Self {
        Self(Vec::new())
    }
}

impl<T: DeviceIo> Inner<T> {
    /// The queued table edits, written before the commands that need them: as
    /// PTE_WRITE commands to put in front of those (see [`Inner::pte_commands`]), or, if
    /// they do not qualify, by DMA now (no command returned).
    pub(super) fn pte_commands_or_flush(&mut self) -> Result<PteWrites, OpError> {
        match self.pte_commands()? {
            Some(ptes) => Ok(ptes),
            None => self.flush_ptes().map(|()| PteWrites::none()),
        }
    }

    /// Submits `ptes` followed by `rest`, `chunk` commands per submission, each followed
    /// by a FENCE waited for if `fenced`. If a submission fails, the PTE_WRITEs from it
    /// on may not have reached the device: their entries are queued again with the
    /// shadow's value (the newest; writing an entry again is harmless if the command did
    /// go out; they stay among the unfenced ones, which costs at most a FENCE not
    /// needed), and the error comes with how many of `rest` went out before it.
    pub(super) fn submit_after_ptes(
        &mut self,
        ptes: PteWrites,
        rest: Vec<Command>,
        chunk: usize,
        fenced: bool,
    ) -> Result<(), (usize, crate::cmdq::CmdqError)> {
        let (n_ptes, chunk) = (ptes.0.len(), chunk.max(1));
        let cmds: Vec<Command> = ptes.0.into_iter().chain(rest).collect();
        for (i, part) in cmds.chunks(chunk).enumerate() {
            let sent = if fenced { self.run_fenced(part).map(|_| ()) } else { self.cmdq.submit(&mut self.io, part) };
            if let Err(e) = sent {
                let from = i * chunk;
                self.take_back_pte_commands(&cmds[from..]);
                return Err((from.saturating_sub(n_ptes), e));
            }
        }
        Ok(())
    }

    /// Submits `cmds` and a FENCE and waits for it (`CmdQueue::run_fenced`); every
    /// PTE_WRITE sent before it has then taken effect.
    pub(super) fn run_fenced(&mut self, cmds: &[Command]) -> Result<u32, crate::cmdq::CmdqError> {
        let budget = self.budget();
        let seq = self.cmdq.run_fenced(&mut self.io, cmds, budget)?;
        self.unfenced_ptes.clear();
        Ok(seq)
    }

    /// The queued table edits as PTE_WRITE commands (the last value of each PTE), if
    /// they allocate no table page (a new table must be zeroed, by DMA) and change at
    /// most [`PTE_COMMANDS_MAX`] entries; the queue is then empty. `None` leaves the
    /// edits queued for [`Inner::flush_ptes`].
    pub(super) fn pte_commands(&mut self) -> Result<Option<PteWrites>, OpError> {
        if !self.pending.new_tables.is_empty() {
            return Ok(None);
        }
        let latest = self.pending.latest();
        if latest.len() > PTE_COMMANDS_MAX {
            return Ok(None);
        }
        if self.unfenced_ptes.len() >= UNFENCED_MAX {
            self.settle_pte_commands()?;
        }
        self.pending.writes.clear();
        self.stats.pte_writes += latest.len() as u64;
        self.stats.pte_commands += latest.len() as u64;
        self.unfenced_ptes.extend(&latest);
        Ok(Some(PteWrites(latest.into_iter().map(|(pa, value)| Command::PteWrite { pa, value }).collect())))
    }

    /// The PTE_WRITE commands among `cmds` may not have reached the device: their
    /// entries are queued again with the shadow's value and no longer counted as written
    /// ([`Inner::submit_after_ptes`]).
    fn take_back_pte_commands(&mut self, cmds: &[Command]) {
        let writes: Vec<(u64, u64)> = cmds
            .iter()
            .filter_map(|c| match *c {
                Command::PteWrite { pa, .. } => Some((pa, self.shadow.pte(pa))),
                _ => None,
            })
            .collect();
        let n = writes.len() as u64;
        self.stats.pte_writes = self.stats.pte_writes.saturating_sub(n);
        self.stats.pte_commands = self.stats.pte_commands.saturating_sub(n);
        self.stage(Changes { new_tables: Vec::new(), writes });
    }

    /// Waits until every PTE_WRITE command sent so far has taken effect (a FENCE).
    pub(super) fn settle_pte_commands(&mut self) -> Result<(), OpError> {
        if !self.unfenced_ptes.is_empty() {
            self.run_fenced(&[])?;
        }
        Ok(())
    }

    /// Whether a PTE_WRITE command not known to be done writes into `[pa, pa + len)`.
    pub(super) fn pte_commands_touch(&self, pa: u64, len: u64) -> bool {
        self.unfenced_ptes.range(pa..pa.saturating_add(len)).next().is_some()
    }

    /// A soft reset dropped the commands not yet executed: the PTEs sent as commands
    /// since the last FENCE are queued again, with the shadow's value (the newest).
    pub(super) fn requeue_pte_commands(&mut self) {
        let unfenced = std::mem::take(&mut self.unfenced_ptes);
        let writes = unfenced.into_keys().map(|pa| (pa, self.shadow.pte(pa))).collect();
        self.stage(Changes { new_tables: Vec::new(), writes });
    }

    /// Queues table edits; they reach the device at the next [`Inner::flush_ptes`].
    pub(super) fn stage(&mut self, changes: Changes) {
        self.pending.new_tables.extend(changes.new_tables);
        self.pending.writes.extend(changes.writes);
    }

    /// Writes the queued table edits to the device: zero-fills new table pages first (so
    /// a pointer never names an unzeroed table), then writes the changed PTEs, merged
    /// into runs of adjacent PTEs (one DMA descriptor per run, the last value of each
    /// PTE wins).
    ///
    /// Deferring the writes to here is what lets a fault batch, a prefetch or an
    /// eviction cost one DMA round trip instead of one per page. It is called before
    /// anything the device may do with the new tables: before REPLAY commands, before a
    /// kernel launch, before an INVAL (so a released PTE is gone from memory before its
    /// TLB entries are), before a dump, and when an ASID is destroyed.
    pub(super) fn flush_ptes(&mut self) -> Result<(), OpError> {
        let changes = std::mem::take(&mut self.pending);
        // On failure the edits stay queued (the shadow already holds them): the next
        // flush writes them again, so device tables never silently lag the shadow.
        let r = self.write_ptes(&changes);
        if r.is_err() {
            let later = std::mem::replace(&mut self.pending, changes);
            self.stage(later);
        }
        r
    }

    fn write_ptes(&mut self, changes: &Changes) -> Result<(), OpError> {
        if changes.new_tables.is_empty() && changes.writes.is_empty() {
            return Ok(());
        }
        // A PTE_WRITE still in the command queue must not land after this DMA's write of
        // the same entry.
        if changes.writes.iter().any(|&(pa, _)| self.pte_commands_touch(pa, 8)) {
            self.settle_pte_commands()?;
        }
        // The next table pages are zeroed ahead in this flush's last DMA run (beside its
        // PTE copies, on the device-to-device channel), off the path of a later fault.
        let ahead = self.shadow.zero_ahead();
        let ahead_desc = |(at, len): (u64, u64)| (DmaDesc::zero(DmaAddr::Device(at), len as u32, 0), 0);
        let mut zero: Vec<(DmaDesc, usize)> =
            changes.new_tables.iter().map(|&t| (DmaDesc::zero(DmaAddr::Device(t), PAGE as u32, 0), 0)).collect();
        let ahead_with_zero = ahead.filter(|_| changes.writes.is_empty());
        zero.extend(ahead_with_zero.map(ahead_desc));
        self.run_table_dma(&zero, ahead_with_zero)?;
        let mut runs: Vec<(u64, Vec<u64>)> = Vec::new();
        for (pa, pte) in changes.latest() {
            match runs.last_mut() {
                Some((start, vals)) if *start + 8 * vals.len() as u64 == pa && pa % PAGE != 0 => vals.push(pte),
                _ => runs.push((pa, vec![pte])),
            }
        }
        let mut used = 0usize;
        let mut descs = Vec::new();
        for (start, vals) in &runs {
            if used + vals.len() > STAGED_PTES {
                self.run_table_dma(&descs, None)?;
                descs.clear();
                used = 0;
            }
            let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
            self.staging.write(used * 8, &bytes)?;
            let src = DmaAddr::Host(self.staging_iova + used as u64 * 8);
            descs.push((DmaDesc::copy(src, DmaAddr::Device(*start), bytes.len() as u32, 0), 0));
            used += vals.len();
            self.stats.pte_writes += vals.len() as u64;
        }
        let ahead_with_ptes = ahead.filter(|_| !changes.writes.is_empty());
        descs.extend(ahead_with_ptes.map(ahead_desc));
        self.run_table_dma(&descs, ahead_with_ptes)
    }

    /// One DMA run of table memory (if any descriptor); `ahead`, zeroed by it, is then
    /// known zero.
    fn run_table_dma(&mut self, descs: &[(DmaDesc, usize)], ahead: Option<(u64, u64)>) -> Result<(), OpError> {
        if descs.is_empty() {
            return Ok(());
        }
        self.stats.table_dma_runs += 1;
        match self.table_channel {
            Some(ch) => self.run_dma_on(ch, descs),
            None => self.run_dma(descs),
        }
        .map_err(|(_, e)| e)?;
        if let Some((at, len)) = ahead {
            self.shadow.zeroed_to(at + len);
        }
        Ok(())
    }
}
