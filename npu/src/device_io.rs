//! `DeviceIo`: what the NPU driver needs of a transport, written from the driver's side.
//!
//! A transport is one way of reaching the NPU: the Verilator co-simulation
//! (`sim-bridge`) or a PCIe board through VFIO (`vfio-driver`). The driver does every
//! device access through this trait — there are no raw pointers into device state —
//! so the same driver code runs on both, and the simulator sees every access.
//!
//! **Time is a service of the transport.** The driver never reads a wall clock: it asks
//! [`DeviceIo::now_ns`] and gives budgets in nanoseconds of *device time*. In
//! simulation that is the cycle count at the nominal clock (deterministic: same inputs,
//! same answers); on a board it is the wall clock. So timeouts need no "am I simulated?"
//! special cases.

use crate::dma_buf::DmaBuffer;
use crate::iova::IovaError;

/// Transport errors, common to every transport.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// A CSR access got an error response (no register there, unaligned, device error).
    #[error("CSR {kind} at offset {offset:#05x} failed: {reason}")]
    Csr {
        /// "read" or "write".
        kind: &'static str,
        /// Byte offset in BAR0.
        offset: u32,
        /// What the transport saw.
        reason: String,
    },
    /// The offset is outside the CSR space.
    #[error("CSR offset {offset:#x} is outside the {size:#x}-byte register space")]
    CsrOutOfRange {
        /// Offset.
        offset: u32,
        /// Size of BAR0's register space.
        size: u32,
    },
    /// An IOVA could not be allocated or freed.
    #[error(transparent)]
    Iova(#[from] IovaError),
    /// The host range to map is not page aligned or empty.
    #[error("host range at {addr:#x} of {len:#x} bytes cannot be DMA-mapped: {reason}")]
    BadHostRange {
        /// Host virtual address.
        addr: usize,
        /// Length.
        len: usize,
        /// Why.
        reason: &'static str,
    },
    /// Unmap of an IOVA that is not mapped.
    #[error("IOVA {iova:#x} is not mapped")]
    NotMapped {
        /// The IOVA.
        iova: u64,
    },
    /// The device (or the simulation) failed in a way the transport detected.
    #[error("device failure: {0}")]
    Device(String),
    /// An OS-level failure of the transport (VFIO ioctl, eventfd, mmap).
    #[error("{what}")]
    Os {
        /// What was attempted.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Nominal clock of the NPU, in Hz: simulated devices (the co-simulated RTL, the
/// reference model) count time in cycles of this clock ([`Clock::Simulated`]).
pub const NOMINAL_HZ: u64 = 250_000_000;

/// Polling step of the default [`DeviceIo::wait_host`], ns.
pub const POLL_STEP_NS: u64 = 100;

/// What kind of clock [`DeviceIo::now_ns`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Simulated device cycles at `hz` (nominal clock), converted to nanoseconds.
    Simulated {
        /// Nominal device clock frequency.
        hz: u64,
    },
    /// The host's monotonic wall clock.
    Wall,
}

/// Sets (`on`) or clears one enable bit of CTRL (`regs::ctrl::*_EN`), keeping the
/// others: a read, then a posted write. Set-up and tear-down only, never the hot path.
pub(crate) fn set_ctrl_bit<T: DeviceIo + ?Sized>(
    io: &mut T,
    bit: crate::regmap::Field,
    on: bool,
) -> Result<(), IoError> {
    let ctrl = io.read32(crate::regs::CTRL.offset)?;
    io.write32(crate::regs::CTRL.offset, bit.put32(ctrl, u32::from(on)))
}

/// Writes `record` (a whole number of 32-bit little-endian words) into the elements of
/// the write-only window `window` from element `first` on, one posted write per word:
/// a pushed DMA descriptor or command. An element past the window is refused before
/// anything is written.
pub(crate) fn write_window<T: DeviceIo + ?Sized>(
    io: &mut T,
    window: crate::regmap::Reg,
    first: u32,
    record: &[u8],
) -> Result<(), IoError> {
    let words = (record.len() / 4) as u32;
    let last = window.at(first + words.saturating_sub(1));
    let Some(start) = window.at(first).filter(|_| last.is_some() && record.len() % 4 == 0) else {
        let offset = window.offset + window.stride * (first + words);
        return Err(IoError::CsrOutOfRange { offset, size: window.offset + window.stride * window.count });
    };
    for (i, word) in record.chunks_exact(4).enumerate() {
        let at = start + window.stride * i as u32;
        io.write32(at, u32::from_le_bytes([word[0], word[1], word[2], word[3]]))?;
    }
    Ok(())
}

/// The transport contract the NPU driver is written against.
pub trait DeviceIo {
    /// Short name for reports ("rtl", "model", "vfio 0000:01:00.0").
    fn name(&self) -> String;

    /// Reads the 32-bit CSR at byte `offset` of BAR0.
    fn read32(&mut self, offset: u32) -> Result<u32, IoError>;

    /// Writes the 32-bit CSR at byte `offset` of BAR0.
    fn write32(&mut self, offset: u32, value: u32) -> Result<(), IoError>;

    /// Reads a 64-bit value as two 32-bit CSRs, low word first (the order the NPU's
    /// counters latch on).
    fn read64(&mut self, offset: u32) -> Result<u64, IoError> {
        let lo = self.read32(offset)?;
        let hi = self.read32(offset + 4)?;
        Ok((u64::from(hi) << 32) | u64::from(lo))
    }

    /// Writes a 64-bit value as two 32-bit CSRs, low word first.
    fn write64(&mut self, offset: u32, value: u64) -> Result<(), IoError> {
        self.write32(offset, value as u32)?;
        self.write32(offset + 4, (value >> 32) as u32)
    }

    /// Makes `len` bytes of host memory at `host` reachable by device DMA and returns
    /// their IOVA (from the shared [`IovaAllocator`](crate::IovaAllocator)).
    ///
    /// # Safety
    /// `host..host+len` must be page aligned, stay mapped and must not be freed until
    /// [`DeviceIo::dma_unmap`] of the returned IOVA; the device may read and write it at
    /// any time in between, so the caller must not hold Rust references into it.
    unsafe fn dma_map_raw(&mut self, host: *mut u8, len: usize) -> Result<u64, IoError>;

    /// Makes a [`DmaBuffer`] reachable by device DMA. The transport keeps a handle to
    /// the buffer until [`DeviceIo::dma_unmap`], so the memory stays valid for the
    /// device even if the caller drops its own handle first.
    fn dma_map(&mut self, buf: &DmaBuffer) -> Result<u64, IoError> {
        // SAFETY: a DmaBuffer is page aligned and only ever accessed through copies (no
        // Rust references into it); the clone kept below holds the memory until
        // `dma_unmap` has removed the mapping.
        let iova = unsafe { self.dma_map_raw(buf.as_ptr(), buf.len()) }?;
        self.dma_keep(iova, buf.clone());
        Ok(iova)
    }

    /// Makes host memory whose pages may be absent or replaced while it is registered
    /// (a `PEER_SHARED` region, see `gmem_host::mmu`) reachable by DMA and returns its
    /// IOVA. A transport that does not pin memory (simulation) maps it whole now, the
    /// default; one that pins (an IOMMU behind VFIO) only reserves the IOVA range and
    /// maps pages while a DMA uses them, between [`DeviceIo::dma_hold`] and
    /// [`DeviceIo::dma_release`]. [`DeviceIo::dma_unmap`] ends it either way.
    ///
    /// # Safety
    /// As [`DeviceIo::dma_map_raw`]; the pages of a held range must be present.
    unsafe fn dma_map_lazy(&mut self, host: *mut u8, len: usize) -> Result<u64, IoError> {
        // SAFETY: forwarded under the same contract.
        unsafe { self.dma_map_raw(host, len) }
    }

    /// Maps `[iova, iova+len)` of a [`DeviceIo::dma_map_lazy`] range for a DMA that is
    /// about to run, device-writable only if `write` (no-op where that range is mapped
    /// whole, and outside such ranges). Read-only matters: the manager write-protects a
    /// CPU page it is copying out, and a writable pin of it would fail.
    fn dma_hold(&mut self, iova: u64, len: u64, write: bool) -> Result<(), IoError> {
        let _ = (iova, len, write);
        Ok(())
    }

    /// Ends a [`DeviceIo::dma_hold`] once the DMA is over.
    fn dma_release(&mut self, iova: u64, len: u64) -> Result<(), IoError> {
        let _ = (iova, len);
        Ok(())
    }

    /// Keeps `owner` alive until `dma_unmap(iova)` (implementations hold it in a
    /// [`DmaOwners`](crate::DmaOwners) and release it after the mapping is gone).
    fn dma_keep(&mut self, iova: u64, owner: DmaBuffer);

    /// Removes the mapping at `iova`; later device accesses to it fail like an IOMMU
    /// fault (error response), never touch the old memory. A buffer kept for it by
    /// [`DeviceIo::dma_map`] is released afterwards.
    fn dma_unmap(&mut self, iova: u64) -> Result<(), IoError>;

    /// Waits until one of the interrupt vectors in `mask` is pending or `budget_ns` of
    /// device time passes; returns the pending vectors within `mask` (0 = the budget ran
    /// out). Vector i carries interrupt cause i and is pending while INT_STATUS[i] and
    /// INT_MASK[i] are both set (level semantics): the driver acknowledges a cause by
    /// writing INT_ACK, not by waiting. Simulated devices run while this waits.
    fn wait_irq(&mut self, mask: u32, budget_ns: u64) -> Result<u32, IoError>;

    /// Polls host memory the device writes (ring records, fence words): lets device
    /// time pass until `ready` returns true or `budget_ns` of device time passes, and
    /// returns whether `ready` held. No MMIO: `ready` reads the driver's own memory. It
    /// is asked at once and again whenever the device may have written host memory.
    ///
    /// A co-simulation calls it the moment a write becomes visible to the host (after
    /// the link's flight); a board spins, then sleeps between polls. The default asks
    /// every [`POLL_STEP_NS`] of [`DeviceIo::advance`].
    fn wait_host(&mut self, budget_ns: u64, ready: &mut dyn FnMut() -> bool) -> Result<bool, IoError> {
        let start = self.now_ns();
        loop {
            if ready() {
                return Ok(true);
            }
            let waited = self.now_ns().saturating_sub(start);
            if waited >= budget_ns {
                return Ok(false);
            }
            self.advance(POLL_STEP_NS.min(budget_ns - waited))?;
        }
    }

    /// Device time now, in nanoseconds (see [`Clock`]).
    fn now_ns(&self) -> u64;

    /// Lets `ns` of device time pass (a simulated device runs; a board's host sleeps).
    fn advance(&mut self, ns: u64) -> Result<(), IoError>;

    /// Which clock [`DeviceIo::now_ns`] reads.
    fn clock(&self) -> Clock;

    /// Hardware reset of the whole device (simulated reset line, or PCI function reset);
    /// CSR contents return to their reset values. DMA mappings stay.
    fn reset(&mut self) -> Result<(), IoError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_io::FakeIo;
    use crate::regs;

    #[test]
    fn a_record_is_written_word_by_word_and_one_past_the_window_writes_nothing() {
        let mut io = FakeIo::new();
        let record: Vec<u8> = (0u8..16).collect();
        write_window(&mut io, regs::CMDQ_PUSH, 12, &record).unwrap();
        let word = |io: &FakeIo, i: u32| io.regs[&regs::CMDQ_PUSH.at(i).unwrap()];
        assert_eq!(word(&io, 12), 0x0302_0100);
        assert_eq!(word(&io, 15), 0x0f0e_0d0c);
        let before = io.log.len();
        assert!(matches!(write_window(&mut io, regs::CMDQ_PUSH, 13, &record), Err(IoError::CsrOutOfRange { .. })));
        assert!(matches!(write_window(&mut io, regs::CMDQ_PUSH, 0, &record[..6]), Err(IoError::CsrOutOfRange { .. })));
        assert_eq!(io.log.len(), before, "nothing written");
    }
}
