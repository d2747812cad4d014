//! Copies that run while the manager works ([`GmMmu::copy_start`] /
//! [`GmMmu::copy_finish`], `Hooks::ASYNC_COPY`): `copy_start` maps the host pages and
//! submits the batch's descriptors, and returns; `copy_finish` waits for their
//! completions, as `copy_batch` does after its submission.
//!
//! One copy runs at a time, on channels that were idle. Anything else that uses the DMA
//! engine (`Inner::run_dma`: another copy, a PTE flush, a read-back, `prepare_page`) and
//! the next `copy_start` first wait for it ([`Inner::settle_copy`]) and keep its result
//! for its `copy_finish`; a soft reset voids it (its result is then an error). A batch
//! larger than one round of descriptors per channel is copied in `copy_start`. The one
//! exception is an early replay's PTE flush (early.rs), which runs on a channel the copy
//! does not use ([`Copies::beside`]) and waits only for that channel.
//!
//! [`GmMmu::copy_start`]: gmem_host::GmMmu::copy_start
//! [`GmMmu::copy_finish`]: gmem_host::GmMmu::copy_finish

use gmem_host::{CopyOp, CopyTicket, MemAddr, MmuError};

use super::holds::HoldError;
use super::op_error::OpError;
use super::{DMA_ROUND, Inner, MAX_DESC, per_channel};
use crate::DeviceIo;
use crate::dma::{DmaAddr, DmaDesc};

/// A host IOVA range a copy touches: (IOVA, length, written).
type Span = (u64, u64, bool);

/// The copy in flight and the results of those that ended before their `copy_finish`.
#[derive(Default)]
pub(super) struct Copies {
    /// Number of the last ticket handed out.
    last: u64,
    running: Option<Running>,
    ended: Vec<(u64, Result<(), MmuError>)>,
}

/// A submitted copy.
struct Running {
    id: u64,
    ops: Vec<CopyOp>,
    held: Vec<Span>,
    channels: Vec<usize>,
}

/// The DMA engine's channels as a copy in flight leaves them.
pub(super) enum Beside {
    /// No copy is running: any DMA may run (after nothing).
    NoCopy,
    /// A channel the running copy does not use.
    Channel(usize),
    /// The running copy uses every channel.
    Busy,
}

impl Copies {
    /// A channel other DMA may use without waiting for the copy in flight (the device-
    /// to-device channel first, it is the least used).
    pub(super) fn beside(&self) -> Beside {
        match &self.running {
            None => Beside::NoCopy,
            Some(r) => [2, 1, 0].into_iter().find(|c| !r.channels.contains(c)).map_or(Beside::Busy, Beside::Channel),
        }
    }
}

impl<T: DeviceIo> Inner<T> {
    /// The descriptors of `ops` (each split at `MAX_DESC`; tag and index = element).
    pub(super) fn copy_descs(&self, ops: &[CopyOp]) -> Result<Vec<(DmaDesc, usize)>, MmuError> {
        let mut descs = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let err = |e: OpError| MmuError::Dma { index: i, src: op.src, dst: op.dst, reason: e.to_string() };
            let (s, d) = (self.dma_addr(op.src).map_err(err)?, self.dma_addr(op.dst).map_err(err)?);
            let mut off = 0;
            while off < op.len {
                let n = (op.len - off).min(MAX_DESC);
                let shift = |a: DmaAddr| match a {
                    DmaAddr::Host(x) => DmaAddr::Host(x + off),
                    DmaAddr::Device(x) => DmaAddr::Device(x + off),
                };
                descs.push((DmaDesc::copy(shift(s), shift(d), n as u32, i as u16), i));
                off += n;
            }
        }
        Ok(descs)
    }

    /// Maps the host pages `descs` touch on a pinning transport (`dma_map_lazy`), all or
    /// none. Counted with the remote PTEs' pages (holds.rs), so a page both use is
    /// mapped once.
    pub(super) fn hold_copy(&mut self, descs: &[(DmaDesc, usize)]) -> Result<Vec<Span>, MmuError> {
        let held = host_spans(descs);
        for (k, &(iova, len, write)) in held.iter().enumerate() {
            if let Err(e) = self.holds.hold(&mut self.io, iova, len, write) {
                held[..k].iter().for_each(|&(i, l, _)| drop(self.holds.release(&mut self.io, i, l)));
                let why = std::error::Error::source(&e).map(|s| format!(": {s}")).unwrap_or_default();
                return Err(MmuError::Device {
                    hook: "copy_batch",
                    reason: format!("map IOVA {iova:#x} (+{len:#x}): {e}{why}"),
                });
            }
        }
        Ok(held)
    }

    /// Releases `held` after the copies of `ops` ran (`ran`) and reports them as
    /// `copy_batch` does: the first failed element, else a failed release.
    pub(super) fn end_copy(
        &mut self,
        ops: &[CopyOp],
        ran: Result<(), (usize, OpError)>,
        held: &[Span],
    ) -> Result<(), MmuError> {
        let released: Result<(), HoldError> =
            held.iter().try_for_each(|&(i, l, _)| self.holds.release(&mut self.io, i, l));
        ran.map_err(|(index, e)| match ops.get(index) {
            Some(op) => MmuError::Dma { index, src: op.src, dst: op.dst, reason: e.to_string() },
            None => MmuError::Device { hook: "copy_batch", reason: format!("batch element {index}: {e}") },
        })?;
        released
            .map_err(|e| MmuError::Device { hook: "copy_batch", reason: format!("unmap after the copies: {e}") })?;
        self.stats.dma_bytes += ops.iter().map(|o| o.len).sum::<u64>();
        Ok(())
    }

    /// `GmMmu::copy_start`: submits `ops` and returns its ticket (a batch beyond one
    /// round per channel is copied here and returns `CopyTicket::DONE`).
    pub(super) fn start_copy(&mut self, ops: &[CopyOp]) -> Result<CopyTicket, MmuError> {
        self.settle_copy();
        let descs = self.copy_descs(ops)?;
        let held = self.hold_copy(&descs)?;
        let per = per_channel(&descs);
        if per.iter().any(|p| p.len() > DMA_ROUND) {
            let ran = self.run_dma(&descs);
            return self.end_copy(ops, ran, &held).map(|()| CopyTicket::DONE);
        }
        let mut channels = Vec::new();
        for (ch, d) in per.iter().enumerate().filter(|(_, d)| !d.is_empty()) {
            if let Err(e) = self.dma.submit(&mut self.io, ch, d) {
                // The channels already submitted run to their end before the error is
                // reported, so the rings stay consistent.
                let waited = self.wait_round(&channels, 0);
                let ran = waited.and(Err((0, e.into())));
                return self.end_copy(ops, ran, &held).map(|()| CopyTicket::DONE);
            }
            channels.push(ch);
        }
        self.copies.last += 1;
        let id = self.copies.last;
        self.copies.running = Some(Running { id, ops: ops.to_vec(), held, channels });
        Ok(CopyTicket::new(id))
    }

    /// Waits for the running copy, if any, and keeps its result for its `copy_finish`.
    /// Its wait counts as DMA time of the fault being served on this thread.
    pub(super) fn settle_copy(&mut self) {
        let Some(r) = self.copies.running.take() else { return };
        let start = self.io.now_ns();
        let ran = self.wait_round(&r.channels, 0);
        if self.serving_here() {
            self.stats.fault_dma_ns += self.io.now_ns() - start;
        }
        let result = self.end_copy(&r.ops, ran, &r.held);
        self.copies.ended.push((r.id, result));
    }

    /// `GmMmu::copy_finish`: the result of `ticket`'s copy, once it ended.
    pub(super) fn finish_copy(&mut self, ticket: CopyTicket) -> Result<(), MmuError> {
        if ticket == CopyTicket::DONE {
            return Ok(());
        }
        if self.copies.running.as_ref().is_some_and(|r| r.id == ticket.id()) {
            self.settle_copy();
        }
        match self.copies.ended.iter().position(|(id, _)| *id == ticket.id()) {
            Some(i) => self.copies.ended.swap_remove(i).1,
            None => Err(MmuError::Device {
                hook: "copy_finish",
                reason: format!("no copy with ticket {} was started or it was finished already", ticket.id()),
            }),
        }
    }

    /// After a soft reset: the running copy's descriptors are void; its host pages are
    /// released and its result is an error (the manager rolls its pages back).
    pub(super) fn void_copy(&mut self) {
        let Some(r) = self.copies.running.take() else { return };
        for &(iova, len, _) in &r.held {
            if let Err(e) = self.holds.release(&mut self.io, iova, len) {
                tracing::warn!(target: "npu", error = %e, "releasing a voided copy's host pages");
            }
        }
        let (src, dst) = r.ops.first().map_or((MemAddr::Device(0), MemAddr::Device(0)), |o| (o.src, o.dst));
        let err = MmuError::Dma { index: 0, src, dst, reason: "a soft reset discarded the copy in flight".into() };
        self.copies.ended.push((r.id, Err(err)));
    }
}

/// The host IOVA ranges `descs` touch as (IOVA, length, written), sorted, overlaps
/// merged (for `DeviceIo::dma_hold`; touching ranges stay apart, as they may belong to
/// different regions).
fn host_spans(descs: &[(DmaDesc, usize)]) -> Vec<Span> {
    let mut spans = Vec::new();
    for (d, _) in descs {
        for (a, write) in [(d.src, false), (d.dst, true)] {
            if let DmaAddr::Host(iova) = a {
                spans.push((iova, iova + u64::from(d.len), write));
            }
        }
    }
    spans.sort_unstable();
    let mut out: Vec<Span> = Vec::new();
    for (s, e, w) in spans {
        match out.last_mut() {
            Some(last) if s < last.1 => {
                last.1 = last.1.max(e);
                last.2 |= w;
            }
            _ => out.push((s, e, w)),
        }
    }
    out.into_iter().map(|(s, e, w)| (s, e - s, w)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_spans_merge_overlaps_keep_touching_ranges_apart_and_mark_writes() {
        let h2d = |src, len| (DmaDesc::copy(DmaAddr::Host(src), DmaAddr::Device(0), len, 0), 0);
        let d2h = |dst, len| (DmaDesc::copy(DmaAddr::Device(0), DmaAddr::Host(dst), len, 0), 0);
        let descs = [h2d(0x3000, 0x1000), h2d(0x1000, 0x2000), d2h(0x2000, 0x1000), h2d(0x8000, 0x1000)];
        assert_eq!(host_spans(&descs), vec![(0x1000, 0x2000, true), (0x3000, 0x1000, false), (0x8000, 0x1000, false)]);
        let d2d = (DmaDesc::copy(DmaAddr::Device(0), DmaAddr::Device(0x1000), 0x1000, 0), 0);
        assert!(host_spans(&[d2d]).is_empty());
    }
}
