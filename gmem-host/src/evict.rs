//! Eviction order: an LRU of device-resident pages updated on *access*.
//!
//! UVM orders its eviction list by allocation time. Here every device fault that finds
//! or brings a page touches it, and before choosing victims the manager asks devices
//! that report accessed bits ([`Hooks::ACCESSED_BITS`]) which of the oldest candidates
//! were used since the last look: those get a second chance. Victims never include pages
//! of the batch in progress (`exclude`) or pages mid-migration; pages whose preferred
//! location is this device go last. Cost: one hash-map entry and one ordered-map entry
//! per device-resident page (kept outside the logical page table).

use std::collections::BTreeMap;

use crate::hash::{FastMap, FastSet};

use crate::attrs::{DeviceId, Node};
use crate::state::State;
use crate::mmu::{Hooks, PAGE_SIZE};
use crate::page_table::PageFlags;

/// A page: (space, virtual page number).
pub(crate) type PageKey = (u32, u64);

/// Access-ordered set of pages.
#[derive(Debug, Default)]
pub(crate) struct Lru {
    clock: u64,
    stamp: FastMap<PageKey, u64>,
    order: BTreeMap<u64, PageKey>,
}

impl Lru {
    /// Mark `page` most recently used (inserting it if absent).
    pub(crate) fn touch(&mut self, page: PageKey) {
        self.clock += 1;
        if let Some(old) = self.stamp.insert(page, self.clock) {
            self.order.remove(&old);
        }
        self.order.insert(self.clock, page);
    }

    /// Forget `page`.
    pub(crate) fn remove(&mut self, page: PageKey) {
        if let Some(old) = self.stamp.remove(&page) {
            self.order.remove(&old);
        }
    }

    /// Pages tracked.
    pub(crate) fn len(&self) -> usize {
        self.stamp.len()
    }

    /// Whether `page` is tracked.
    #[cfg(test)]
    pub(crate) fn contains(&self, page: PageKey) -> bool {
        self.stamp.contains_key(&page)
    }

    fn oldest(&self, n: usize) -> Vec<PageKey> {
        self.order.values().take(n).copied().collect()
    }
}

/// Choose up to `n` victims on `dev`.
pub(crate) fn pick_victims(g: &mut State, dev: DeviceId, n: usize, exclude: &FastSet<PageKey>) -> Vec<PageKey> {
    let window = (2 * n + 16).min(g.devices[dev.0 as usize].lru.len());
    let mut cands = g.devices[dev.0 as usize].lru.oldest(window);
    // Second chance from accessed bits.
    let slot = &g.devices[dev.0 as usize];
    if slot.info.hooks.contains(Hooks::ACCESSED_BITS) && !cands.is_empty() {
        let mut by_space: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for &(s, v) in &cands {
            by_space.entry(s).or_default().push(v);
        }
        let mut used = FastSet::default();
        for (s, vpns) in by_space {
            let Some(asid) = g.spaces.get(&s).and_then(|sp| sp.asid_of(dev)) else { continue };
            let vas: Vec<u64> = vpns.iter().map(|v| v * PAGE_SIZE).collect();
            let mut out = vec![false; vas.len()];
            if slot.mmu.test_and_clear_accessed(asid, &vas, &mut out).is_ok() {
                for (v, a) in vpns.iter().zip(out) {
                    if a {
                        used.insert((s, *v));
                    }
                }
            }
        }
        // Second chance, keeping the candidates' relative (LRU) order.
        let lru = &mut g.devices[dev.0 as usize].lru;
        for p in cands.iter().filter(|p| used.contains(*p)) {
            lru.touch(*p);
        }
        // Accessed pages move to the back; try the rest first.
        cands.sort_by_key(|p| used.contains(p));
    }
    let mut first = Vec::new();
    let mut later = Vec::new();
    for p in cands {
        if exclude.contains(&p) {
            continue;
        }
        let Some(sp) = g.spaces.get(&p.0) else { continue };
        let e = sp.pt.get(p.1);
        if e.flags.contains(PageFlags::MIGRATING) || !e.on_device() || e.dev != dev.0 {
            continue;
        }
        if sp.attrs.get(p.1 * PAGE_SIZE).preferred == Some(Node::Device(dev)) {
            later.push(p);
        } else {
            first.push(p);
        }
    }
    first.extend(later);
    first.truncate(n);
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_orders_by_touch() {
        let mut l = Lru::default();
        l.touch((1, 1));
        l.touch((1, 2));
        l.touch((1, 3));
        l.touch((1, 1));
        assert_eq!(l.oldest(3), vec![(1, 2), (1, 3), (1, 1)]);
        l.remove((1, 3));
        assert_eq!(l.oldest(3), vec![(1, 2), (1, 1)]);
        assert!(l.contains((1, 1)));
        assert_eq!(l.len(), 2);
    }
}
