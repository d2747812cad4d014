//! The IOVA allocator shared by every transport.
//!
//! Host buffers that the device may DMA into are given I/O virtual addresses from
//! one allocator, whatever the transport: the co-simulation's IOVA map and a board's
//! IOMMU (VFIO) see the same addresses for the same sequence of mappings, which keeps
//! runs comparable and snapshots identical across transports.

use std::collections::BTreeMap;

/// IOVA allocation errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IovaError {
    /// Zero-length or unaligned request.
    #[error("IOVA request of {len:#x} bytes is not a non-zero multiple of the {align:#x}-byte page")]
    BadLength {
        /// Requested length.
        len: u64,
        /// Required granularity.
        align: u64,
    },
    /// A reservation overlaps a live allocation or leaves the managed range.
    #[error(
        "IOVA range [{start:#x}, {end:#x}) cannot be reserved: it overlaps an allocation or leaves the managed range"
    )]
    Unavailable {
        /// Start of the requested range.
        start: u64,
        /// End of the requested range.
        end: u64,
    },
    /// No hole large enough remains.
    #[error("IOVA space exhausted: no free range of {len:#x} bytes in [{start:#x}, {end:#x})")]
    Exhausted {
        /// Requested length.
        len: u64,
        /// Start of the managed range.
        start: u64,
        /// End of the managed range.
        end: u64,
    },
    /// Free of an address that is not the start of a live allocation.
    #[error("IOVA {iova:#x} is not the start of a live allocation")]
    NotAllocated {
        /// The address.
        iova: u64,
    },
}

/// First-fit allocator of page-granular IOVA ranges in `[start, end)`.
///
/// IOVA 0 is never handed out (some IOMMU drivers reserve it), so a zero IOVA in a
/// record always means "none".
#[derive(Debug, Clone)]
pub struct IovaAllocator {
    start: u64,
    end: u64,
    /// Live allocations: start → length.
    live: BTreeMap<u64, u64>,
}

/// Allocation granularity.
pub const IOVA_PAGE: u64 = 4096;

impl IovaAllocator {
    /// Manages `[start, end)`; `start` is rounded up past 0 and to a page.
    pub fn new(start: u64, end: u64) -> Self {
        let start = start.max(IOVA_PAGE).next_multiple_of(IOVA_PAGE);
        Self { start, end, live: BTreeMap::new() }
    }

    /// The default range: [4 KiB, 2^40), the host window of the NPU.
    pub fn npu_default() -> Self {
        Self::new(IOVA_PAGE, 1 << 40)
    }

    /// Allocates `len` bytes (a non-zero multiple of 4 KiB), lowest address first.
    pub fn alloc(&mut self, len: u64) -> Result<u64, IovaError> {
        if len == 0 || len % IOVA_PAGE != 0 {
            return Err(IovaError::BadLength { len, align: IOVA_PAGE });
        }
        let mut cursor = self.start;
        for (&s, &l) in &self.live {
            if s.saturating_sub(cursor) >= len {
                break;
            }
            cursor = cursor.max(s + l);
        }
        if self.end.saturating_sub(cursor) < len {
            return Err(IovaError::Exhausted { len, start: self.start, end: self.end });
        }
        self.live.insert(cursor, len);
        Ok(cursor)
    }

    /// Takes `[start, end)` out of circulation (e.g. an IOMMU hole such as the x86 MSI
    /// window) so no allocation ever returns it. Page granular.
    pub fn reserve(&mut self, start: u64, end: u64) -> Result<(), IovaError> {
        let bad = IovaError::Unavailable { start, end };
        if start % IOVA_PAGE != 0 || end % IOVA_PAGE != 0 || start >= end || start < self.start || end > self.end {
            return Err(bad);
        }
        let overlaps = self.live.range(..end).next_back().is_some_and(|(&s, &l)| s + l > start);
        if overlaps {
            return Err(bad);
        }
        self.live.insert(start, end - start);
        Ok(())
    }

    /// Frees the allocation starting at `iova`, returning its length.
    pub fn free(&mut self, iova: u64) -> Result<u64, IovaError> {
        self.live.remove(&iova).ok_or(IovaError::NotAllocated { iova })
    }

    /// Bytes currently allocated.
    pub fn allocated(&self) -> u64 {
        self.live.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fit_reuses_holes_and_never_returns_zero() {
        let mut a = IovaAllocator::new(0, 1 << 20);
        let x = a.alloc(0x2000).unwrap();
        let y = a.alloc(0x1000).unwrap();
        assert_eq!(x, 0x1000, "IOVA 0 is skipped");
        assert_eq!(y, 0x3000);
        assert_eq!(a.free(x).unwrap(), 0x2000);
        assert_eq!(a.alloc(0x1000).unwrap(), 0x1000, "the hole is reused");
        assert_eq!(a.alloc(0x2000).unwrap(), 0x4000, "too big for the remaining hole");
        assert_eq!(a.allocated(), 0x4000);
    }

    #[test]
    fn reserved_ranges_are_never_handed_out() {
        let mut a = IovaAllocator::new(0, 0x10_0000);
        a.reserve(0x2000, 0x4000).unwrap();
        assert_eq!(a.alloc(0x1000).unwrap(), 0x1000);
        assert_eq!(a.alloc(0x1000).unwrap(), 0x4000, "skips the reserved hole");
        assert_eq!(a.alloc(0x3000).unwrap(), 0x5000);
        assert_eq!(
            a.reserve(0x6000, 0x7000),
            Err(IovaError::Unavailable { start: 0x6000, end: 0x7000 }),
            "overlaps an allocation"
        );
        assert_eq!(
            a.reserve(0x8000, 0x8800),
            Err(IovaError::Unavailable { start: 0x8000, end: 0x8800 }),
            "not page granular"
        );
        assert_eq!(
            a.reserve(0xF_F000, 0x20_0000),
            Err(IovaError::Unavailable { start: 0xF_F000, end: 0x20_0000 }),
            "outside"
        );
    }

    #[test]
    fn bad_requests_are_typed_errors() {
        let mut a = IovaAllocator::new(0, 0x3000);
        assert_eq!(a.alloc(0), Err(IovaError::BadLength { len: 0, align: IOVA_PAGE }));
        assert_eq!(a.alloc(100), Err(IovaError::BadLength { len: 100, align: IOVA_PAGE }));
        assert!(matches!(a.alloc(0x3000), Err(IovaError::Exhausted { .. })));
        assert_eq!(a.free(0x5000), Err(IovaError::NotAllocated { iova: 0x5000 }));
        assert_eq!(a.allocated(), 0, "failed calls change nothing");
    }
}
