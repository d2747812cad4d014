//! What every queue driver does the same way with its rings (docs/device.md §4): set a
//! ring up on the device, and consume the records the device writes into one.
//!
//! A ring is `BASE`, `SIZE_LOG2`, `HEAD` and `TAIL` registers over 2^SIZE_LOG2 entries in
//! host memory. The producer owns TAIL, the consumer HEAD; indices are taken modulo the
//! ring size. The device keeps its own index across reprogramming (only a reset clears
//! it), so a ring set up again starts where the device stands, empty.
//!
//! Records the device writes are found in host memory, not through its TAIL register
//! (an MMIO read is a ~1 µs round trip on a board): every device record has a reserved
//! byte the device writes as 0 (its *free marker*), the host sets it to [`FREE`] in each
//! entry it has not seen written (at set-up and after consuming one), and an entry whose
//! marker reads 0 holds a new record — the DD-bit scheme of Intel NICs. The record is
//! one write burst, so the marker and the fields arrive together.

use std::sync::atomic::{Ordering, fence};

use crate::device_io::{DeviceIo, IoError};
use crate::dma_buf::{DmaBufError, DmaBuffer};

/// Ring sizes the device takes, as log2 of the entry count (§4).
pub(crate) const SIZE_LOG2: std::ops::RangeInclusive<u32> = 1..=16;

/// Largest record a device writes (FAULT and KCPL are 32 bytes, DMA_CPL 16).
const MAX_RECORD: usize = 32;

/// Register offsets of one ring.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RingRegs {
    /// BASE_LO (BASE_HI follows it).
    pub(crate) base: u32,
    /// SIZE_LOG2.
    pub(crate) size_log2: u32,
    /// HEAD (the consumer's index).
    pub(crate) head: u32,
    /// TAIL (the producer's index).
    pub(crate) tail: u32,
}

/// Longest a driver polls host memory for a record before it reads STATUS (an MMIO
/// read) to learn whether a device error stopped the producer, ns.
pub(crate) const QUIET_NS: u64 = 20_000;

/// What a free entry's marker byte holds; the device always writes it as 0.
pub(crate) const FREE: u8 = 0xFF;

/// Free markers: a byte of each device record that no field covers (docs/device.md §14).
pub(crate) mod marker {
    /// FAULT bits 103:96 (bits 127:96 are reserved).
    pub(crate) const FAULT: usize = 12;
    /// KCPL bits 31:24 (reserved between STATUS and ASID).
    pub(crate) const KCPL: usize = 3;
    /// DMA_CPL bits 31:24 (reserved between ERROR and BYTES).
    pub(crate) const DMA_CPL: usize = 3;
}

/// Who writes a ring's entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Producer {
    /// The host writes entries and TAIL; the device consumes (commands, kernels, DMA
    /// descriptors).
    Host,
    /// The device writes records and TAIL; the host consumes (faults, completions).
    /// `marker`: offset in the record of a reserved byte the device writes as 0.
    Device { marker: usize },
}

/// A ring in host memory, mapped and programmed on the device.
pub(crate) struct Ring {
    /// The entries.
    pub(crate) buf: DmaBuffer,
    /// IOVA of `buf`.
    pub(crate) iova: u64,
    /// Bytes per entry.
    entry: usize,
    /// Entries − 1.
    pub(crate) mask: u16,
    /// The host's own index: TAIL of a host-produced ring, HEAD of a device-produced one.
    pub(crate) index: u16,
    regs: RingRegs,
    /// Offset of the free marker in a device record (`None` for a host-produced ring).
    marker: Option<usize>,
    /// The write of HEAD after consumed records failed: the device still counts them as
    /// used, so the next [`Ring::consume`] writes HEAD even if it takes none.
    head_behind: bool,
}

/// What a consumer does with one record ([`Ring::consume`]).
pub(crate) enum Verdict<E> {
    /// Consumed; go on with the next record.
    Take,
    /// Stop with an error; the record stays in the ring for the next call.
    Keep(E),
    /// Stop with an error; the record is consumed and dropped.
    Drop(E),
}

impl Ring {
    /// Allocates 2^`size_log2` entries of `entry` bytes, maps them, programs BASE and
    /// SIZE_LOG2, and sets the host's index to the device's, so the ring starts empty.
    /// `size_log2` must be in [`SIZE_LOG2`] (the caller checks it with its own error).
    pub(crate) fn set_up<T: DeviceIo + ?Sized, E: From<IoError> + From<DmaBufError>>(
        io: &mut T,
        regs: RingRegs,
        size_log2: u32,
        entry: usize,
        producer: Producer,
    ) -> Result<Self, E> {
        debug_assert!(SIZE_LOG2.contains(&size_log2), "ring size_log2 {size_log2}");
        let marker = match producer {
            Producer::Host => None,
            Producer::Device { marker } => Some(marker),
        };
        debug_assert!(
            marker.is_none_or(|m| entry <= MAX_RECORD && m < entry),
            "{entry}-byte records, marker {marker:?}"
        );
        let entries = 1usize << size_log2;
        let mask = (entries - 1) as u16;
        let buf = DmaBuffer::new(entries * entry)?;
        let iova = io.dma_map(&buf)?;
        io.write64(regs.base, iova)?;
        io.write32(regs.size_log2, size_log2)?;
        let (device_index, host_index) = match producer {
            Producer::Host => (regs.head, regs.tail),
            Producer::Device { .. } => (regs.tail, regs.head),
        };
        let index = (io.read32(device_index)? & u32::from(mask)) as u16;
        io.write32(host_index, u32::from(index))?;
        let ring = Self { buf, iova, entry, mask, index, regs, marker, head_behind: false };
        for slot in 0..=mask {
            ring.mark_free(slot);
        }
        Ok(ring)
    }

    /// After a soft reset (§13): the device's index is 0 again and the records not yet
    /// consumed are void, so every entry is free and the host's index is 0.
    pub(crate) fn restart(&mut self) {
        self.index = 0;
        self.head_behind = false;
        for slot in 0..=self.mask {
            self.mark_free(slot);
        }
    }

    /// Sets the free marker of entry `slot` (a device-produced ring; nothing for a
    /// host-produced one).
    fn mark_free(&self, slot: u16) {
        if let Some(m) = self.marker {
            // In range by construction: the buffer holds size × entry bytes, slot ≤ mask
            // and marker < entry, so the write cannot fail.
            let _ = self.buf.write(usize::from(slot & self.mask) * self.entry + m, &[FREE]);
        }
    }

    /// True if the entry at the host's index holds a record the host has not consumed.
    pub(crate) fn has_record(&self) -> bool {
        self.marker.is_some_and(|m| matches!(self.buf.load_u8(usize::from(self.index) * self.entry + m), Ok(0)))
    }

    /// Consumes the records the device has written, found in host memory by their free
    /// markers: hands each record from HEAD on to `take` until an entry is free or
    /// `take` stops, marks each consumed entry free again, and writes HEAD (a posted
    /// write) once if it moved, or if the last call's write of it failed (a failed HEAD
    /// write is not an error: the records were taken). No MMIO read: the device's TAIL is
    /// not consulted.
    pub(crate) fn consume<T: DeviceIo + ?Sized, E: From<IoError> + From<DmaBufError>>(
        &mut self,
        io: &mut T,
        mut take: impl FnMut(u16, &[u8]) -> Verdict<E>,
    ) -> Result<(), E> {
        let start = self.index;
        let mut buf = [0u8; MAX_RECORD];
        let rec = &mut buf[..self.entry];
        let mut result = Ok(());
        while self.has_record() {
            // The marker was seen written: the rest of the record came with it.
            fence(Ordering::Acquire);
            let slot = self.index;
            if let Err(e) = self.buf.read(usize::from(slot) * self.entry, rec) {
                result = Err(e.into());
                break;
            }
            match take(slot, rec) {
                Verdict::Take => self.release(slot),
                Verdict::Keep(e) => {
                    result = Err(e);
                    break;
                }
                Verdict::Drop(e) => {
                    self.release(slot);
                    result = Err(e);
                    break;
                }
            }
        }
        if self.index != start || self.head_behind {
            // The records were taken either way; a HEAD the device did not get is
            // written again by the next call.
            self.head_behind = io.write32(self.regs.head, u32::from(self.index)).is_err();
            if self.head_behind {
                tracing::debug!(target: "npu", head = self.regs.head, "ring HEAD write failed; written again next time");
            }
        }
        result
    }

    /// Marks the consumed entry `slot` free and moves the host's index past it.
    fn release(&mut self, slot: u16) {
        self.mark_free(slot);
        self.index = slot.wrapping_add(1) & self.mask;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regs::{dma_cpl, fault, kcpl};
    use crate::{Field, regs};

    /// True if no field covers any bit of byte `marker`.
    fn free_byte(marker: usize, fields: &[Field]) -> bool {
        let (lo, hi) = (marker as u32 * 8, marker as u32 * 8 + 8);
        fields.iter().all(|f| f.lsb + f.width <= lo || f.lsb >= hi)
    }

    #[test]
    fn every_free_marker_is_a_byte_no_field_covers() {
        let fault_fields =
            [fault::CAUSE, fault::ACCESS, fault::LEVEL, fault::ASID, fault::REQID, fault::SEQ, fault::VA, fault::PTE];
        assert!(free_byte(marker::FAULT, &fault_fields) && marker::FAULT < fault::SIZE);
        let kcpl_fields = [kcpl::TAG, kcpl::STATUS, kcpl::ASID, kcpl::RESULT, kcpl::FAULT_VA, kcpl::DONE];
        assert!(free_byte(marker::KCPL, &kcpl_fields) && marker::KCPL < kcpl::SIZE);
        let cpl_fields = [dma_cpl::TAG, dma_cpl::ERROR, dma_cpl::BYTES, dma_cpl::INDEX];
        assert!(free_byte(marker::DMA_CPL, &cpl_fields) && marker::DMA_CPL < dma_cpl::SIZE);
        // The check itself can fail: byte 0 of a FAULT record is CAUSE.
        assert!(!free_byte(0, &fault_fields));
        assert!(!free_byte(1, &[regs::fault::CAUSE]), "CAUSE's bits 11:8 are in byte 1");
    }
}
