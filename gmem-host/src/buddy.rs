//! Buddy allocator over device memory: 4 KiB pages (order 0) up to 2 MiB blocks (order 9).
//!
//! Blocks of order `o` are `4 KiB << o` bytes, naturally aligned. Free blocks are kept in
//! one ordered set per order; freeing merges a block with its buddy while the buddy is
//! free. Any aligned piece of an allocated block may be freed on its own (a 2 MiB block
//! split into pages frees page by page and re-merges when the last page returns), which
//! is what demoting a huge mapping needs.

use std::collections::BTreeSet;
use std::ops::Range;

use crate::mmu::PAGE_SIZE;

/// Largest order: 2 MiB.
pub const MAX_ORDER: u8 = 9;

/// Errors of the buddy allocator.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BuddyError {
    /// A memory range is not 4 KiB-aligned or is empty.
    #[error("device memory range [{start:#x}, {end:#x}) is empty or not 4 KiB-aligned")]
    BadRange {
        /// Start.
        start: u64,
        /// End.
        end: u64,
    },
    /// Two memory ranges overlap.
    #[error("device memory ranges overlap at {at:#x}")]
    Overlap {
        /// First overlapping byte.
        at: u64,
    },
    /// Order above [`MAX_ORDER`].
    #[error("order {0} is above the maximum order 9")]
    BadOrder(u8),
    /// The block is not aligned or outside the managed memory.
    #[error("block {pa:#x} of order {order} is misaligned or outside device memory")]
    BadBlock {
        /// Address.
        pa: u64,
        /// Order.
        order: u8,
    },
    /// The block (or part of it) is already free.
    #[error("double free of block {pa:#x} of order {order}")]
    DoubleFree {
        /// Address.
        pa: u64,
        /// Order.
        order: u8,
    },
}

/// The allocator. Not thread-safe; the manager guards it with its state lock.
#[derive(Debug, Clone)]
pub struct Buddy {
    free: [BTreeSet<u64>; MAX_ORDER as usize + 1],
    ranges: Vec<Range<u64>>,
    total_pages: u64,
    free_pages: u64,
}

const fn block_bytes(order: u8) -> u64 {
    PAGE_SIZE << order
}

impl Buddy {
    /// An allocator owning `ranges` (4 KiB-aligned, disjoint).
    pub fn new(ranges: &[Range<u64>]) -> Result<Self, BuddyError> {
        let mut sorted: Vec<Range<u64>> = ranges.to_vec();
        sorted.sort_by_key(|r| r.start);
        for r in &sorted {
            if r.start >= r.end || r.start % PAGE_SIZE != 0 || r.end % PAGE_SIZE != 0 {
                return Err(BuddyError::BadRange { start: r.start, end: r.end });
            }
        }
        for w in sorted.windows(2) {
            if w[1].start < w[0].end {
                return Err(BuddyError::Overlap { at: w[1].start });
            }
        }
        let mut b = Buddy { free: Default::default(), ranges: sorted.clone(), total_pages: 0, free_pages: 0 };
        for r in &sorted {
            let mut at = r.start;
            while at < r.end {
                let mut order = MAX_ORDER;
                while at % block_bytes(order) != 0 || at + block_bytes(order) > r.end {
                    order -= 1;
                }
                b.free[order as usize].insert(at);
                b.free_pages += 1 << order;
                at += block_bytes(order);
            }
            b.total_pages += (r.end - r.start) / PAGE_SIZE;
        }
        Ok(b)
    }

    /// Pages managed in total.
    pub fn total_pages(&self) -> u64 {
        self.total_pages
    }

    /// Pages currently free.
    pub fn free_pages(&self) -> u64 {
        self.free_pages
    }

    /// Free blocks of exactly `order` (for [`MAX_ORDER`]: every free 2 MiB block).
    pub fn free_blocks(&self, order: u8) -> usize {
        self.free.get(order as usize).map_or(0, |s| s.len())
    }

    /// Allocate a block of `order`; `None` when no block that large is free.
    pub fn alloc(&mut self, order: u8) -> Option<u64> {
        if order > MAX_ORDER {
            return None;
        }
        let mut o = order;
        let pa = loop {
            if let Some(pa) = self.free[o as usize].pop_first() {
                break pa;
            }
            if o == MAX_ORDER {
                return None;
            }
            o += 1;
        };
        // Split down, returning the upper halves.
        while o > order {
            o -= 1;
            self.free[o as usize].insert(pa + block_bytes(o));
        }
        self.free_pages -= 1 << order;
        Some(pa)
    }

    /// Free a block (or an aligned piece of a larger allocated block).
    pub fn free(&mut self, pa: u64, order: u8) -> Result<(), BuddyError> {
        if order > MAX_ORDER {
            return Err(BuddyError::BadOrder(order));
        }
        let size = block_bytes(order);
        if pa % size != 0 || !self.ranges.iter().any(|r| r.start <= pa && pa + size <= r.end) {
            return Err(BuddyError::BadBlock { pa, order });
        }
        // Already free as part of a larger or equal block?
        for o in order..=MAX_ORDER {
            let parent = pa & !(block_bytes(o) - 1);
            if self.free[o as usize].contains(&parent) {
                return Err(BuddyError::DoubleFree { pa, order });
            }
        }
        // Any smaller piece already free?
        for o in 0..order {
            if self.free[o as usize].range(pa..pa + size).next().is_some() {
                return Err(BuddyError::DoubleFree { pa, order });
            }
        }
        self.free_pages += 1 << order;
        let mut pa = pa;
        let mut o = order;
        while o < MAX_ORDER {
            let buddy = pa ^ block_bytes(o);
            if self.free[o as usize].remove(&buddy) {
                pa = pa.min(buddy);
                o += 1;
            } else {
                break;
            }
        }
        self.free[o as usize].insert(pa);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one memory range is the common case
mod tests {
    use super::*;

    #[test]
    fn split_and_merge_back() {
        let mut b = Buddy::new(&[0..(4 << 20)]).expect("buddy");
        assert_eq!(b.total_pages(), 1024);
        let p = b.alloc(0).expect("page");
        assert_eq!(p, 0);
        assert_eq!(b.free_pages(), 1023);
        let h = b.alloc(MAX_ORDER).expect("huge");
        assert_eq!(h, 2 << 20);
        assert_eq!(b.alloc(MAX_ORDER), None);
        b.free(p, 0).expect("free");
        assert_eq!(b.alloc(MAX_ORDER), Some(0));
        // free the huge block page by page; it re-merges
        for i in 0..512 {
            b.free(h + i * PAGE_SIZE, 0).expect("free piece");
        }
        b.free(0, MAX_ORDER).expect("free");
        assert_eq!(b.free_pages(), 1024);
        assert_eq!(b.alloc(MAX_ORDER), Some(0));
        assert_eq!(b.alloc(MAX_ORDER), Some(2 << 20));
    }

    #[test]
    fn typed_errors() {
        assert_eq!(Buddy::new(&[1..4096]).err(), Some(BuddyError::BadRange { start: 1, end: 4096 }));
        assert_eq!(Buddy::new(&[0..8192, 4096..12288]).err(), Some(BuddyError::Overlap { at: 4096 }));
        let mut b = Buddy::new(&[0..8192]).expect("buddy");
        assert_eq!(b.free(0, 0), Err(BuddyError::DoubleFree { pa: 0, order: 0 }));
        assert_eq!(b.free(8192, 0), Err(BuddyError::BadBlock { pa: 8192, order: 0 }));
        assert_eq!(b.free(0, 10), Err(BuddyError::BadOrder(10)));
        let p = b.alloc(1).expect("two pages");
        b.free(p, 0).expect("piece");
        assert_eq!(b.free(p, 1), Err(BuddyError::DoubleFree { pa: p, order: 1 }));
    }

    #[test]
    fn odd_ranges_decompose() {
        let b = Buddy::new(&[4096..(3 << 20)]).expect("buddy");
        assert_eq!(b.total_pages(), (3 << 20) / 4096 - 1);
        assert_eq!(b.free_pages(), b.total_pages());
    }
}
