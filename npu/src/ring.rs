//! What every queue driver does the same way with its rings (docs/device.md §4): set a
//! ring up on the device, and consume the records the device writes into one.
//!
//! A ring is `BASE`, `SIZE_LOG2`, `HEAD` and `TAIL` registers over 2^SIZE_LOG2 entries in
//! host memory. The producer owns TAIL, the consumer HEAD; indices are taken modulo the
//! ring size. The device keeps its own index across reprogramming (only a reset clears
//! it), so a ring set up again starts where the device stands, empty.

use std::sync::atomic::{Ordering, fence};

use crate::device_io::{DeviceIo, IoError};
use crate::dma_buf::{DmaBufError, DmaBuffer};
use crate::regs;

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

/// Who writes a ring's entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Producer {
    /// The host writes entries and TAIL; the device consumes (commands, kernels, DMA
    /// descriptors).
    Host,
    /// The device writes records and TAIL; the host consumes (faults, completions).
    Device,
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
        debug_assert!(producer == Producer::Host || entry <= MAX_RECORD, "{entry}-byte records");
        let entries = 1usize << size_log2;
        let mask = (entries - 1) as u16;
        let buf = DmaBuffer::new(entries * entry)?;
        let iova = io.dma_map(&buf)?;
        io.write64(regs.base, iova)?;
        io.write32(regs.size_log2, size_log2)?;
        let (device_index, host_index) = match producer {
            Producer::Host => (regs.head, regs.tail),
            Producer::Device => (regs.tail, regs.head),
        };
        let index = (io.read32(device_index)? & u32::from(mask)) as u16;
        io.write32(host_index, u32::from(index))?;
        Ok(Self { buf, iova, entry, mask, index, regs })
    }

    /// Entries in the ring.
    pub(crate) fn size(&self) -> u32 {
        u32::from(self.mask) + 1
    }

    /// Consumes the records the device has written, following the handler protocol of
    /// §11: acknowledge interrupt `cause`, read TAIL (`bad_tail(tail, size)` if it is
    /// outside the ring), then hand each record from HEAD up to that TAIL to `take`
    /// until it stops, and write HEAD once if it moved. A record arriving after the TAIL
    /// read raises the interrupt again, so no wake-up is lost.
    pub(crate) fn consume<T: DeviceIo + ?Sized, E: From<IoError> + From<DmaBufError>>(
        &mut self,
        io: &mut T,
        cause: u64,
        bad_tail: impl FnOnce(u32, u32) -> E,
        mut take: impl FnMut(u16, &[u8]) -> Verdict<E>,
    ) -> Result<(), E> {
        io.write32(regs::INT_ACK.offset, 1 << cause)?;
        let size = self.size();
        let tail = io.read32(self.regs.tail)?;
        if tail >= size {
            return Err(bad_tail(tail, size));
        }
        fence(Ordering::Acquire);
        let start = self.index;
        let mut buf = [0u8; MAX_RECORD];
        let rec = &mut buf[..self.entry];
        let mut result = Ok(());
        while u32::from(self.index) != tail {
            let slot = self.index;
            if let Err(e) = self.buf.read(usize::from(slot) * self.entry, rec) {
                result = Err(e.into());
                break;
            }
            match take(slot, rec) {
                Verdict::Take => self.index = slot.wrapping_add(1) & self.mask,
                Verdict::Keep(e) => {
                    result = Err(e);
                    break;
                }
                Verdict::Drop(e) => {
                    self.index = slot.wrapping_add(1) & self.mask;
                    result = Err(e);
                    break;
                }
            }
        }
        if self.index != start {
            io.write32(self.regs.head, u32::from(self.index))?;
        }
        result
    }
}
