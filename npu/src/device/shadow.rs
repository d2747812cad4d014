//! The driver's copy of the device page tables.
//!
//! Page tables live in device memory, which the host reaches only through the DMA
//! engine. The driver therefore keeps a shadow of every table page it owns, edits the
//! shadow with [`crate::sv39::TableBuilder`], and writes each changed PTE to the device
//! (after zero-filling the table pages it allocated) — see [`Shadow::edit`]. The
//! hardware walker sets A/D bits in device memory only; the shadow never reads them
//! back (leaves are written with A, and D when writable, already set).
//!
//! A new table page must read as zeros on the device before a pointer names it. Pages
//! are taken first from those freed (zeroed by DMA when reused), then from a bump
//! range whose start is zeroed *ahead*: a flush that runs DMA anyway also zero-fills the
//! next [`ZERO_AHEAD`] bytes ([`Shadow::zero_ahead`]), so a fault that needs a new table
//! finds one already zero and its few PTEs can go as commands, without a DMA round trip.

use std::collections::HashMap;

use crate::sv39::{PAGE, TableMemory};

/// Bytes of table pages zeroed ahead at once (16 pages).
pub(crate) const ZERO_AHEAD: u64 = 16 * PAGE;

/// Table pages and their allocator (a region of device memory the manager never uses).
pub(crate) struct Shadow {
    pages: HashMap<u64, Box<[u64; 512]>>,
    /// Freed table pages (their old entries are still in device memory).
    free: Vec<u64>,
    /// The bump range: `[next, end)` never used; `[next, zeroed)` known zero on the device.
    next: u64,
    zeroed: u64,
    end: u64,
}

/// Takes a table page: a freed one (to zero), else the next of the bump range (to zero
/// unless below `zeroed`). Returns the page and whether it must be zeroed.
fn take(free: &mut Vec<u64>, next: &mut u64, zeroed: u64, end: u64) -> Option<(u64, bool)> {
    if let Some(pa) = free.pop() {
        return Some((pa, true));
    }
    (*next < end).then(|| {
        *next += PAGE;
        (*next - PAGE, *next > zeroed)
    })
}

/// What one edit changed: new table pages to zero on the device first (those not
/// zeroed ahead) and PTE writes.
#[derive(Default)]
pub(crate) struct Changes {
    pub(crate) new_tables: Vec<u64>,
    pub(crate) writes: Vec<(u64, u64)>,
}

impl Changes {
    /// The last value written to each changed PTE, by device address.
    pub(crate) fn latest(&self) -> std::collections::BTreeMap<u64, u64> {
        self.writes.iter().copied().collect()
    }
}

/// The table memory one edit works on.
pub(crate) struct EditView<'a> {
    pages: &'a mut HashMap<u64, Box<[u64; 512]>>,
    changes: &'a mut Changes,
}

impl TableMemory for EditView<'_> {
    type Error = std::convert::Infallible;
    fn read_pte(&self, pa: u64) -> Result<u64, Self::Error> {
        Ok(self.pages.get(&(pa & !(PAGE - 1))).map_or(0, |t| t[((pa & (PAGE - 1)) / 8) as usize]))
    }
    fn write_pte(&mut self, pa: u64, pte: u64) -> Result<(), Self::Error> {
        let t = self.pages.entry(pa & !(PAGE - 1)).or_insert_with(|| Box::new([0; 512]));
        t[((pa & (PAGE - 1)) / 8) as usize] = pte;
        self.changes.writes.push((pa, pte));
        Ok(())
    }
}

impl Shadow {
    /// Table pages come from `[base, base + len)`.
    pub(crate) fn new(base: u64, len: u64) -> Self {
        Self { pages: HashMap::new(), free: Vec::new(), next: base, zeroed: base, end: base + len }
    }

    /// A fresh table page and whether it must be zeroed on the device, or `None` when
    /// the region is used up.
    pub(crate) fn alloc(&mut self) -> Option<(u64, bool)> {
        let (pa, dirty) = take(&mut self.free, &mut self.next, self.zeroed, self.end)?;
        self.pages.insert(pa, Box::new([0; 512]));
        Some((pa, dirty))
    }

    /// The range to zero-fill ahead, if fewer than half of [`ZERO_AHEAD`] bytes of the
    /// bump range are known zero: `(start, len)`. Call [`Shadow::zeroed_to`] once the
    /// fill has completed.
    pub(crate) fn zero_ahead(&self) -> Option<(u64, u64)> {
        let from = self.zeroed.max(self.next);
        (from - self.next < ZERO_AHEAD / 2 && from < self.end).then(|| (from, ZERO_AHEAD.min(self.end - from)))
    }

    /// Device memory below `until` in the bump range now reads as zeros.
    pub(crate) fn zeroed_to(&mut self, until: u64) {
        self.zeroed = self.zeroed.max(until);
    }

    /// Returns the table pages under `root` (root included) to the allocator.
    pub(crate) fn free_tree(&mut self, root: u64) {
        let mut stack = vec![(root, 2u8)];
        while let Some((table, level)) = stack.pop() {
            if let Some(t) = self.pages.remove(&table) {
                if level > 0 {
                    for &pte in t.iter() {
                        let p = crate::sv39::Pte(pte);
                        if p.valid() && p.is_pointer() {
                            stack.push((p.target(), level - 1));
                        }
                    }
                }
            }
            self.free.push(table);
        }
    }

    /// Runs `f` on the tables, with new table pages taken from the allocator; returns
    /// its result and what changed.
    pub(crate) fn edit<R>(
        &mut self,
        f: impl FnOnce(&mut EditView<'_>, &mut dyn FnMut() -> Option<u64>) -> R,
    ) -> (R, Changes) {
        let mut changes = Changes::default();
        let mut fresh = Vec::new();
        let mut dirty = Vec::new();
        let (free, next, zeroed, end) = (&mut self.free, &mut self.next, self.zeroed, self.end);
        let mut alloc = || {
            let (pa, to_zero) = take(free, next, zeroed, end)?;
            fresh.push(pa);
            if to_zero {
                dirty.push(pa);
            }
            Some(pa)
        };
        let r = {
            let mut view = EditView { pages: &mut self.pages, changes: &mut changes };
            f(&mut view, &mut alloc)
        };
        for &pa in &fresh {
            self.pages.entry(pa).or_insert_with(|| Box::new([0; 512]));
        }
        changes.new_tables = dirty;
        (r, changes)
    }

    /// The PTE at `pa` as the driver last wrote it.
    pub(crate) fn pte(&self, pa: u64) -> u64 {
        self.pages.get(&(pa & !(PAGE - 1))).map_or(0, |t| t[((pa & (PAGE - 1)) / 8) as usize])
    }

    /// Address of the leaf PTE mapping `va` under `root`, with its level.
    pub(crate) fn leaf(&self, root: u64, va: u64) -> Option<(u64, u8)> {
        let mut table = root;
        for level in (0..=2u8).rev() {
            let at = table + ((va >> (12 + 9 * u32::from(level))) & 0x1FF) * 8;
            let p = crate::sv39::Pte(self.pte(at));
            if !p.valid() {
                return None;
            }
            if !p.is_pointer() {
                return Some((at, level));
            }
            table = p.target();
        }
        None
    }
}
