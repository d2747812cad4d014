//! Range attributes kept outside the mappings (the `hmadvise` hints that persist).
//!
//! An [`AttrTree`] stores non-default attributes as disjoint half-open ranges. Setting an
//! attribute on part of a range splits it; equal neighbours are merged back, so the tree
//! stays as small as the user's distinct hints.

use std::collections::BTreeMap;

use crate::mmu::{Prot, RW};
pub use crate::types::{DeviceId, Node};

/// The persistent attributes of a range. Its `Debug` form shows `prot` only when it is
/// not the default (so dumps of unprotected spaces read as they always did).
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct RangeAttrs {
    /// PREFERRED_LOCATION: where pages should live. `Cpu` makes devices map the pages
    /// remotely instead of migrating them; a device makes its pages the last to be evicted.
    pub preferred: Option<Node>,
    /// ACCESSED_BY: bit `d` set = device `d` maps CPU-resident pages remotely rather
    /// than migrating them.
    pub accessed_by: u32,
    /// READ_MOSTLY: read faults duplicate the page read-only; a write collapses copies.
    pub read_mostly: bool,
    /// The range's protection ([`Gmem::mprotect`](crate::Gmem::mprotect)), for the CPU
    /// and every device: device mappings never grant more, and a device access it does
    /// not allow is aborted. Read, write and execute by default.
    pub prot: Prot,
}

impl std::fmt::Debug for RangeAttrs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("RangeAttrs");
        d.field("preferred", &self.preferred).field("accessed_by", &self.accessed_by);
        d.field("read_mostly", &self.read_mostly);
        if self.prot != RW {
            d.field("prot", &self.prot);
        }
        d.finish()
    }
}

impl Default for RangeAttrs {
    fn default() -> Self {
        RangeAttrs { preferred: None, accessed_by: 0, read_mostly: false, prot: RW }
    }
}

impl RangeAttrs {
    /// Whether `dev` is in the accessed-by set.
    pub fn accessed_by(&self, dev: DeviceId) -> bool {
        self.accessed_by & (1 << dev.0) != 0
    }
}

/// Disjoint ranges with non-default attributes.
#[derive(Debug, Default, Clone)]
pub struct AttrTree {
    /// start -> (end, attrs); never holds default attrs; never two equal touching neighbours.
    map: BTreeMap<u64, (u64, RangeAttrs)>,
}

impl AttrTree {
    /// Empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Attributes at `va`.
    pub fn get(&self, va: u64) -> RangeAttrs {
        match self.map.range(..=va).next_back() {
            Some((_, &(end, a))) if va < end => a,
            _ => RangeAttrs::default(),
        }
    }

    /// All stored ranges, sorted: (start, end, attrs).
    pub fn ranges(&self) -> Vec<(u64, u64, RangeAttrs)> {
        self.map.iter().map(|(&s, &(e, a))| (s, e, a)).collect()
    }

    fn split_at(&mut self, at: u64) {
        if let Some((&s, &(e, a))) = self.map.range(..at).next_back() {
            if s < at && at < e {
                self.map.insert(s, (at, a));
                self.map.insert(at, (e, a));
            }
        }
    }

    /// Apply `f` to the attributes of every byte of `[start, end)`.
    pub fn apply(&mut self, start: u64, end: u64, f: impl Fn(&mut RangeAttrs)) {
        if start >= end {
            return;
        }
        self.split_at(start);
        self.split_at(end);
        // Pieces inside, gaps included.
        let inside: Vec<(u64, (u64, RangeAttrs))> = self.map.range(start..end).map(|(&s, &v)| (s, v)).collect();
        let mut pieces = Vec::new();
        let mut at = start;
        for (s, (e, a)) in inside {
            self.map.remove(&s);
            if at < s {
                pieces.push((at, s, RangeAttrs::default()));
            }
            pieces.push((s, e, a));
            at = e;
        }
        if at < end {
            pieces.push((at, end, RangeAttrs::default()));
        }
        for (s, e, mut a) in pieces {
            f(&mut a);
            if a != RangeAttrs::default() {
                self.map.insert(s, (e, a));
            }
        }
        self.merge_around(start, end);
    }

    /// Reset `[start, end)` to defaults (used by munmap).
    pub fn clear(&mut self, start: u64, end: u64) {
        self.apply(start, end, |a| *a = RangeAttrs::default());
    }

    fn merge_around(&mut self, start: u64, end: u64) {
        let from = self.map.range(..start).next_back().map_or(start, |(&s, _)| s);
        let keys: Vec<u64> = self.map.range(from..=end).map(|(&s, _)| s).collect();
        let mut prev: Option<u64> = None;
        for k in keys {
            let Some(&(ke, ka)) = self.map.get(&k) else { continue };
            if let Some(p) = prev {
                if let Some(&(pe, pa)) = self.map.get(&p) {
                    if pe == k && pa == ka {
                        self.map.insert(p, (ke, ka));
                        self.map.remove(&k);
                        continue;
                    }
                }
            }
            prev = Some(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rm() -> impl Fn(&mut RangeAttrs) {
        |a| a.read_mostly = true
    }

    #[test]
    fn split_then_merge() {
        let mut t = AttrTree::new();
        t.apply(0x1000, 0x5000, rm());
        t.apply(0x2000, 0x3000, |a| a.preferred = Some(Node::Cpu));
        assert_eq!(t.ranges().len(), 3);
        assert!(t.get(0x2800).read_mostly);
        assert_eq!(t.get(0x2800).preferred, Some(Node::Cpu));
        assert_eq!(t.get(0x3000).preferred, None);
        t.apply(0x2000, 0x3000, |a| a.preferred = None);
        assert_eq!(t.ranges(), vec![(0x1000, 0x5000, RangeAttrs { read_mostly: true, ..Default::default() })]);
        // adjacent equal ranges set separately merge
        t.apply(0x5000, 0x6000, rm());
        assert_eq!(t.ranges().len(), 1);
        t.clear(0x0, 0x10000);
        assert!(t.ranges().is_empty());
        assert_eq!(t.get(0x1000), RangeAttrs::default());
    }

    #[test]
    fn gaps_are_filled() {
        let mut t = AttrTree::new();
        t.apply(0x1000, 0x2000, |a| a.accessed_by |= 1);
        t.apply(0x3000, 0x4000, |a| a.accessed_by |= 1);
        t.apply(0x0, 0x5000, |a| a.accessed_by |= 2);
        let r = t.ranges();
        assert_eq!(r.len(), 5);
        assert_eq!(t.get(0x2000).accessed_by, 2);
        assert_eq!(t.get(0x1000).accessed_by, 3);
        t.apply(0x0, 0x5000, |a| a.accessed_by &= !1);
        assert_eq!(t.ranges(), vec![(0, 0x5000, RangeAttrs { accessed_by: 2, ..Default::default() })]);
    }
}
