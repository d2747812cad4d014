//! The model's DMA engine: three channels, each a descriptor ring and a completion ring
//! in host memory (spec §9, `rtl/npu_dma_channel.sv`).
//!
//! The RTL pipelines up to 16 descriptors per channel; the model executes them one at a
//! time, in ring order, and keeps up to 16 executed descriptors waiting for room in the
//! completion ring, like the RTL's slots. The observable rules are the RTL's:
//! - BAD_DESC: LEN = 0 or > 16 MiB, a reserved FLAGS bit (15:4), a device range beyond
//!   device memory, a host range reaching 2^64 (SRC is not checked for ZERO_FILL);
//! - the source is read in bursts of whole 64-byte beats that never cross 4 KiB; each
//!   burst consumes one ERRINJ_HOST_RD/DEV_RD event (an injected burst is not sent and
//!   fails the descriptor) or else one ERRINJ_POISON event (the burst is sent, the
//!   descriptor fails with POISON); no burst is issued after the first failure;
//! - the destination is cut at every 4 KiB boundary; each chunk is one write burst that
//!   consumes one ERRINJ_HOST_WR/DEV_WR event; BYTES sums the chunks acknowledged OKAY;
//! - the completion {TAG (0 for DESC_FETCH), ERROR, BYTES, INDEX} is written in ring
//!   order; CPL_TAIL advances, then the channel's interrupt cause is set if FLAGS.IRQ or
//!   ERROR ≠ OK; after an error completion the channel halts with HEAD = index + 1 and
//!   waits for RESUME; a completion write that fails latches ERR_INFO {CPL_WRITE, 3+ch}
//!   and the channel stays halted until soft reset.
//!
//! Timing convention (the RTL's is timing-dependent here): a descriptor's source is
//! read completely before its first chunk is written, so after a read error or poison
//! nothing of it is written (BYTES = 0); after a write error the chunks before the
//! failing one are written and counted, the ones after it are not written.

use super::csr::Inj;
use super::mem::Unmapped;
use super::{BEAT, ModelDevice};
use npu::regs::{self, dma_error as e, dma_flag as f};
use std::collections::VecDeque;

/// DMA channels of the v1 device.
pub(crate) const CHANNELS: usize = 3;
/// Descriptors a channel holds between fetch and completion (the RTL's `Slots`).
const SLOTS: usize = 16;
const MAX_LEN: u64 = 1 << 24;

/// A descriptor that has been executed and awaits its completion write.
#[derive(Clone, Copy, Debug)]
struct Done {
    index: u16,
    tag: u16,
    flags: u16,
    err: u8,
    bytes: u32,
}

/// One channel's state (the RTL channel's registers that software can observe).
#[derive(Default)]
pub(crate) struct Channel {
    /// DMA_DESC_HEAD.
    pub(crate) head: u16,
    /// Ring index of the next descriptor to fetch.
    fidx: u16,
    /// DMA_CPL_TAIL.
    pub(crate) cpl_tail: u16,
    /// DMA_CH_STATUS.HALTED.
    pub(crate) halted: bool,
    /// A completion write failed: halted until soft reset.
    pub(crate) dev_err: bool,
    /// Executed descriptors, oldest first; at most one failed one, always last.
    done: VecDeque<Done>,
    /// The DMA_PUSH window's words.
    push_words: [u32; 8],
    /// A committed push: the ring index it stands for.
    push_idx: Option<u16>,
}

/// A descriptor as fetched.
struct Desc {
    src: u64,
    dst: u64,
    len: u64,
    flags: u16,
    tag: u16,
}

fn bit(flags: u16, b: u64) -> bool {
    flags >> b & 1 == 1
}

/// Pieces of `[addr, addr + len)` whose beat-aligned cover never crosses 4 KiB: for
/// each, (first byte, byte count, aligned burst address, burst bytes).
fn bursts(addr: u64, len: u64) -> Vec<(u64, u64, u64, u64)> {
    let mut out = Vec::new();
    let end = addr + len; // callers checked that this does not wrap
    let mut a = addr;
    while a < end {
        let page_end = (a & !4095).saturating_add(4096);
        let e = end.min(page_end);
        let burst = a & !(BEAT - 1);
        out.push((a, e - a, burst, (e - burst).next_multiple_of(BEAT)));
        a = e;
    }
    out
}

impl ModelDevice {
    fn ring_reg(&self, r: npu::Reg, ch: usize) -> u32 {
        self.rw.get(r, ch as u32)
    }

    fn rings_ok(&self, ch: usize) -> bool {
        let ok = |v: u32| (1..=16).contains(&v);
        ok(self.ring_reg(regs::DMA_DESC_SIZE_LOG2, ch)) && ok(self.ring_reg(regs::DMA_CPL_SIZE_LOG2, ch))
    }

    fn masks(&self, ch: usize) -> (u16, u16) {
        let m = |v: u32| ((1u32 << v.min(16)) - 1) as u16;
        (m(self.ring_reg(regs::DMA_DESC_SIZE_LOG2, ch)), m(self.ring_reg(regs::DMA_CPL_SIZE_LOG2, ch)))
    }

    fn dma_enabled(&self) -> bool {
        regs::ctrl::DMA_EN.get32(self.rw.get(regs::CTRL, 0)) == 1
    }

    fn dma_hung(&self) -> bool {
        regs::errinj_hang::DMA.get32(self.rw.get(regs::ERRINJ_HANG, 0)) == 1
    }

    fn fetch_pending(&self, ch: usize) -> bool {
        let (dmask, _) = self.masks(ch);
        let tail = self.ring_reg(regs::DMA_DESC_TAIL, ch) as u16;
        self.chans[ch].fidx & dmask != tail & dmask
    }

    /// DMA_CH_STATUS.BUSY: descriptors executed but not completed, or descriptors to
    /// fetch while enabled and not halted.
    pub(crate) fn channel_busy(&self, ch: usize) -> bool {
        let c = &self.chans[ch];
        !c.done.is_empty() || (self.dma_enabled() && self.rings_ok(ch) && self.fetch_pending(ch) && !c.halted)
    }

    /// DMA_CH_CTRL.RESUME.
    pub(crate) fn resume(&mut self, ch: usize) {
        let c = &mut self.chans[ch];
        if c.halted && !c.dev_err {
            c.halted = false;
        }
    }

    /// Soft reset of the engine: every transfer forgotten, indices 0, HALTED cleared.
    pub(crate) fn dma_soft_reset(&mut self) {
        for c in &mut self.chans {
            *c = Channel::default();
        }
    }

    /// Runs every channel until none can make progress; true if any did.
    pub(crate) fn run_dma(&mut self) -> bool {
        let mut any = false;
        loop {
            let mut progress = false;
            for ch in 0..CHANNELS {
                progress |= self.step_channel(ch);
            }
            if !progress {
                return any;
            }
            any = true;
        }
    }

    /// One step of a channel: write a completion, or fetch and execute a descriptor.
    fn step_channel(&mut self, ch: usize) -> bool {
        if self.dma_hung() || self.chans[ch].halted {
            return false;
        }
        let (dmask, cmask) = self.masks(ch);
        // Completion stage.
        if let Some(&d) = self.chans[ch].done.front() {
            let c = &self.chans[ch];
            let head = self.ring_reg(regs::DMA_CPL_HEAD, ch) as u16;
            if (c.cpl_tail.wrapping_add(1) & cmask) != head & cmask {
                self.write_completion(ch, d, dmask, cmask);
                return true;
            }
        }
        // Fetch and execute.
        let c = &self.chans[ch];
        let failed = c.done.back().is_some_and(|d| d.err != e::OK as u8);
        if failed || c.done.len() >= SLOTS || !self.dma_enabled() || !self.rings_ok(ch) || !self.fetch_pending(ch) {
            return false;
        }
        let index = c.fidx & dmask;
        let done = self.fetch_and_execute(ch, index);
        let c = &mut self.chans[ch];
        c.head = index.wrapping_add(1) & dmask;
        c.fidx = c.head;
        c.done.push_back(done);
        true
    }

    fn write_completion(&mut self, ch: usize, d: Done, dmask: u16, cmask: u16) {
        let mut rec = [0u8; regs::dma_cpl::SIZE];
        let tag = if d.err == e::DESC_FETCH as u8 { 0 } else { d.tag };
        regs::dma_cpl::TAG.set(&mut rec, u64::from(tag));
        regs::dma_cpl::ERROR.set(&mut rec, u64::from(d.err));
        regs::dma_cpl::BYTES.set(&mut rec, u64::from(d.bytes));
        regs::dma_cpl::INDEX.set(&mut rec, u64::from(d.index));
        let base = self.rw.get64(regs::DMA_CPL_BASE_LO, regs::DMA_CPL_BASE_HI, ch as u32);
        let addr = base.wrapping_add(u64::from(self.chans[ch].cpl_tail & cmask) * regs::dma_cpl::SIZE as u64);
        // The RTL writes the record as one beat with byte strobes; the IOMMU checks the beat.
        let ok = self.host.reachable(addr & !(BEAT - 1), BEAT as usize) && self.host.write(addr, &rec).is_ok();
        self.perf_port(false, true, BEAT);
        let c = &mut self.chans[ch];
        c.done.pop_front();
        if !ok {
            self.chans[ch].dev_err = true;
            self.halt(ch, d.index, dmask);
            self.device_error(3 + ch as u32, e::CPL_WRITE);
            return;
        }
        c.cpl_tail = c.cpl_tail.wrapping_add(1) & cmask;
        if bit(d.flags, f::IRQ) || d.err != e::OK as u8 {
            self.int_status |= 1 << (regs::int_cause::DMA0 + ch as u64);
        }
        if d.err != e::OK as u8 {
            self.halt(ch, d.index, dmask);
        }
    }

    /// Halts after the descriptor at ring index `index`: later work is discarded and
    /// HEAD rewinds to the next index.
    fn halt(&mut self, ch: usize, index: u16, dmask: u16) {
        let c = &mut self.chans[ch];
        c.halted = true;
        c.done.clear();
        c.head = index.wrapping_add(1) & dmask;
        c.fidx = c.head;
    }

    /// A write of word `word` of channel `ch`'s DMA_PUSH window: word 7 commits the
    /// window as the entry at DMA_DESC_TAIL, any other word begins a new push.
    pub(crate) fn dma_push(&mut self, ch: usize, word: usize, value: u32) {
        let tail = self.ring_reg(regs::DMA_DESC_TAIL, ch) as u16;
        let c = &mut self.chans[ch];
        c.push_words[word] = value;
        c.push_idx = (word == 7).then_some(tail);
    }

    fn fetch_and_execute(&mut self, ch: usize, index: u16) -> Done {
        // The pushed entry stands in for its fetch (the RTL takes it when no fetch is
        // outstanding, which this sequential model always is); any fetch forgets it.
        let (dmask, _) = self.masks(ch);
        let c = &mut self.chans[ch];
        let pushed = c.push_idx.take().filter(|&i| i & dmask == index);
        let mut rec = [0u8; regs::dma_desc::SIZE];
        if pushed.is_some() {
            for (i, w) in c.push_words.iter().enumerate() {
                rec[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
            }
        } else {
            let base = self.rw.get64(regs::DMA_DESC_BASE_LO, regs::DMA_DESC_BASE_HI, ch as u32);
            let addr = base.wrapping_add(u64::from(index) * regs::dma_desc::SIZE as u64);
            let fetched =
                self.host.reachable(addr & !(BEAT - 1), BEAT as usize) && self.host.read(addr, &mut rec).is_ok();
            self.perf_port(true, true, BEAT);
            if !fetched {
                return Done { index, tag: 0, flags: 0, err: e::DESC_FETCH as u8, bytes: 0 };
            }
        }
        let field = |fl: npu::Field| fl.get(&rec).unwrap_or(0);
        let d = Desc {
            src: field(regs::dma_desc::SRC),
            dst: field(regs::dma_desc::DST),
            len: field(regs::dma_desc::LEN),
            flags: field(regs::dma_desc::FLAGS) as u16,
            tag: field(regs::dma_desc::TAG) as u16,
        };
        let (err, bytes) = self.execute(ch, &d);
        Done { index, tag: d.tag, flags: d.flags, err, bytes }
    }

    fn range_bad(&self, addr: u64, len: u64, host: bool) -> bool {
        let end = u128::from(addr) + u128::from(len);
        if host { end >> 64 != 0 } else { end > u128::from(self.dev.size()) }
    }

    /// Moves the data of one descriptor; returns (error code, BYTES).
    fn execute(&mut self, ch: usize, d: &Desc) -> (u8, u32) {
        let zero = bit(d.flags, f::ZERO_FILL);
        let src_host = bit(d.flags, f::SRC_HOST);
        let dst_host = bit(d.flags, f::DST_HOST);
        if d.len == 0
            || d.len > MAX_LEN
            || d.flags >> 4 != 0
            || (!zero && self.range_bad(d.src, d.len, src_host))
            || self.range_bad(d.dst, d.len, dst_host)
        {
            return (e::BAD_DESC as u8, 0);
        }
        // Read stage: every burst is issued before any data returns.
        let mut data = vec![0u8; d.len as usize];
        if !zero {
            let (inj, code) = if src_host { (Inj::HostRd, e::HOST_RD) } else { (Inj::DevRd, e::DEV_RD) };
            let pieces = bursts(d.src, d.len);
            let mut issued = 0;
            for &(_, _, _, burst_bytes) in &pieces {
                if self.inject(inj) {
                    return (code as u8, 0);
                }
                self.perf_port(true, src_host, burst_bytes);
                if self.inject(Inj::Poison) {
                    return (e::POISON as u8, 0);
                }
                issued += 1;
            }
            debug_assert_eq!(issued, pieces.len());
            // Data returns in order; an error response fails the descriptor.
            for &(a, n, burst, burst_bytes) in &pieces {
                let off = (a - d.src) as usize;
                let out = &mut data[off..off + n as usize];
                let r = if src_host {
                    if self.host.reachable(burst, burst_bytes as usize) {
                        self.host.read(a, out)
                    } else {
                        Err(Unmapped)
                    }
                } else {
                    self.dev.read(a, out)
                };
                if r.is_err() {
                    return (code as u8, 0);
                }
            }
        }
        // Write stage: one burst per 4 KiB piece of the destination.
        let (inj, code) = if dst_host { (Inj::HostWr, e::HOST_WR) } else { (Inj::DevWr, e::DEV_WR) };
        let mut bytes = 0u32;
        for (a, n, burst, burst_bytes) in bursts(d.dst, d.len) {
            if self.inject(inj) {
                return (code as u8, bytes);
            }
            self.perf_port(false, dst_host, burst_bytes);
            let off = (a - d.dst) as usize;
            let src = &data[off..off + n as usize];
            let r = if dst_host {
                if self.host.reachable(burst, burst_bytes as usize) { self.host.write(a, src) } else { Err(Unmapped) }
            } else {
                self.dev.write(a, src)
            };
            if r.is_err() {
                return (code as u8, bytes);
            }
            bytes += n as u32;
            self.perf_dma_bytes(ch, n);
        }
        (e::OK as u8, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_split_at_4k_and_cover_whole_beats() {
        assert_eq!(bursts(0x1003, 1), vec![(0x1003, 1, 0x1000, 64)]);
        assert_eq!(bursts(0xFFF, 2), vec![(0xFFF, 1, 0xFC0, 64), (0x1000, 1, 0x1000, 64)]);
        assert_eq!(bursts(0x2000, 4096), vec![(0x2000, 4096, 0x2000, 4096)]);
        let b = bursts(0x10, 8192);
        assert_eq!(b.len(), 3);
        assert_eq!(b.iter().map(|p| p.1).sum::<u64>(), 8192);
        assert_eq!(b[2], (0x2000, 0x10, 0x2000, 64));
    }
}
