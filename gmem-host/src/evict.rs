//! Eviction order: an LRU of device-resident pages updated on *access*.
//!
//! UVM orders its eviction list by allocation time. Here every device fault that finds
//! or brings a page touches it, and before choosing victims the manager asks devices
//! that report accessed bits ([`Hooks::ACCESSED_BITS`]) which of the oldest candidates
//! were used since the last look: those get a second chance (CLOCK). Victims never
//! include pages of the batch in progress (`exclude`) or pages mid-migration; pages
//! whose preferred location is this device go last.
//!
//! The list is intrusive and indexed by device frame number: one 24-byte node per
//! device frame, allocated at registration, O(1) touch/remove without hashing. It is
//! kept outside the logical page table (whose budget is per tracked page).

use std::collections::BTreeMap;

use crate::attrs::{DeviceId, Node};
use crate::hash::FastSet;
use crate::mmu::{Hooks, PAGE_SIZE};
use crate::page_table::PageFlags;
use crate::state::State;

/// A page: (space, virtual page number).
pub(crate) type PageKey = (u32, u64);

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct LruNode {
    prev: u32,
    next: u32,
    space: u32,
    linked: bool,
    vpn: u64,
}

/// Access-ordered list of device frames (head = least recently used).
#[derive(Debug)]
pub(crate) struct Lru {
    nodes: Vec<LruNode>,
    head: u32,
    tail: u32,
    len: usize,
}

impl Lru {
    /// A list for frames `0..frames`; `None` if the host cannot allocate it.
    pub(crate) fn new(frames: u64) -> Option<Self> {
        let node = LruNode { prev: NIL, next: NIL, space: 0, linked: false, vpn: 0 };
        let mut nodes = Vec::new();
        nodes.try_reserve_exact(usize::try_from(frames).ok()?).ok()?;
        nodes.resize(frames as usize, node);
        Some(Lru { nodes, head: NIL, tail: NIL, len: 0 })
    }

    fn unlink(&mut self, f: u32) {
        let LruNode { prev, next, .. } = self.nodes[f as usize];
        match prev {
            NIL => self.head = next,
            p => self.nodes[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.nodes[n as usize].prev = prev,
        }
        self.nodes[f as usize].linked = false;
        self.len -= 1;
    }

    /// Mark the page in frame `pfn` most recently used (inserting it if absent).
    pub(crate) fn touch(&mut self, page: PageKey, pfn: u32) {
        let Some(n) = self.nodes.get(pfn as usize) else { return };
        if n.linked {
            self.unlink(pfn);
        }
        let tail = self.tail;
        self.nodes[pfn as usize] = LruNode { prev: tail, next: NIL, space: page.0, linked: true, vpn: page.1 };
        match tail {
            NIL => self.head = pfn,
            t => self.nodes[t as usize].next = pfn,
        }
        self.tail = pfn;
        self.len += 1;
    }

    /// Forget frame `pfn`.
    pub(crate) fn remove(&mut self, pfn: u32) {
        if self.nodes.get(pfn as usize).is_some_and(|n| n.linked) {
            self.unlink(pfn);
        }
    }

    /// Frames tracked.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The `n` least recently used (page, frame) pairs, oldest first.
    fn oldest(&self, n: usize) -> Vec<(PageKey, u32)> {
        let mut out = Vec::with_capacity(n.min(self.len));
        let mut f = self.head;
        while f != NIL && out.len() < n {
            let node = self.nodes[f as usize];
            out.push(((node.space, node.vpn), f));
            f = node.next;
        }
        out
    }
}

/// How many broken-up full chunks [`note_full_chunks`] remembers.
pub(crate) const RECENT_FULL: usize = 64;

/// Remember the chunks of `victims` that are wholly on a device now (before eviction
/// breaks them up), for the prefetcher's stream rule.
pub(crate) fn note_full_chunks(g: &mut State, victims: &[PageKey]) {
    let per = crate::mmu::PAGES_PER_HUGE;
    for &(s, vpn) in victims {
        let key = (s, vpn / per);
        let full = g.spaces.get(&s).is_some_and(|sp| u64::from(sp.pt.chunk_on_device(key.1)) == per);
        if full && !g.recent_full.contains(&key) {
            if g.recent_full.len() == RECENT_FULL {
                g.recent_full.pop_front();
            }
            g.recent_full.push_back(key);
        }
    }
}

/// Victims that empty up to `blocks` naturally aligned 2 MiB blocks of `dev`'s memory,
/// so that whole chunks can arrive as 2 MiB mappings (UVM evicts root chunks the same
/// way). Blocks are taken in the LRU order of their oldest page; a block holding a
/// page that cannot leave now (mid-migration, poisoned, in the batch) is passed over.
pub(crate) fn pick_victim_blocks(g: &State, dev: DeviceId, blocks: usize, exclude: &FastSet<PageKey>) -> Vec<PageKey> {
    let per = crate::mmu::PAGES_PER_HUGE as u32;
    let lru = &g.devices[dev.0 as usize].lru;
    let mut done: FastSet<u32> = FastSet::default();
    let mut out = Vec::new();
    for (_, f) in lru.oldest(lru.len()) {
        if done.len() == blocks {
            break;
        }
        let block = f / per;
        if !done.insert(block) {
            continue;
        }
        let mut pages = Vec::new();
        let movable = (block * per..(block + 1) * per).all(|pf| match lru.nodes.get(pf as usize) {
            Some(n) if n.linked => {
                let key = (n.space, n.vpn);
                let e = g.spaces.get(&n.space).map(|sp| sp.pt.get(n.vpn));
                pages.push(key);
                !exclude.contains(&key)
                    && e.is_some_and(|e| {
                        e.on_device() && e.pfn == pf && !e.flags.intersects(PageFlags::MIGRATING | PageFlags::POISONED)
                    })
            }
            _ => true,
        });
        if movable {
            out.extend(pages);
        } else {
            done.remove(&block);
        }
    }
    out
}

/// Choose up to `n` victims on `dev`.
pub(crate) fn pick_victims(g: &mut State, dev: DeviceId, n: usize, exclude: &FastSet<PageKey>) -> Vec<PageKey> {
    let window = (2 * n + 16).min(g.devices[dev.0 as usize].lru.len());
    let mut cands = g.devices[dev.0 as usize].lru.oldest(window);
    // Second chance from accessed bits.
    let slot = &g.devices[dev.0 as usize];
    if slot.info.hooks.contains(Hooks::ACCESSED_BITS) && !cands.is_empty() {
        let mut by_space: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for &((s, v), _) in &cands {
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
        for &(p, f) in cands.iter().filter(|(p, _)| used.contains(p)) {
            lru.touch(p, f);
        }
        // Accessed pages move to the back; try the rest first.
        cands.sort_by_key(|(p, _)| used.contains(p));
    }
    let mut first = Vec::new();
    let mut later = Vec::new();
    for (p, f) in cands {
        if exclude.contains(&p) {
            continue;
        }
        let Some(sp) = g.spaces.get(&p.0) else { continue };
        let e = sp.pt.get(p.1);
        // Poisoned pages never leave the device (the copy back is what failed).
        let stuck = e.flags.intersects(PageFlags::MIGRATING | PageFlags::POISONED);
        if stuck || !e.on_device() || e.dev != dev.0 || e.pfn != f {
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
        let mut l = Lru::new(8).expect("lru");
        l.touch((1, 10), 1);
        l.touch((1, 20), 2);
        l.touch((1, 30), 3);
        l.touch((1, 10), 1);
        assert_eq!(l.oldest(3), vec![((1, 20), 2), ((1, 30), 3), ((1, 10), 1)]);
        l.remove(3);
        assert_eq!(l.oldest(3), vec![((1, 20), 2), ((1, 10), 1)]);
        l.remove(3);
        assert_eq!(l.len(), 2);
        // A frame reused for another page.
        l.touch((2, 5), 2);
        assert_eq!(l.oldest(3), vec![((1, 10), 1), ((2, 5), 2)]);
        l.remove(1);
        l.remove(2);
        assert_eq!((l.len(), l.oldest(3)), (0, vec![]));
        l.touch((1, 1), 99); // out of range: ignored
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn node_is_24_bytes() {
        assert_eq!(std::mem::size_of::<LruNode>(), 24);
    }
}
