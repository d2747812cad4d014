//! Eviction order: an LRU of device-resident pages updated on *access*.
//!
//! UVM orders its eviction list by allocation time. Here every device fault that finds
//! or brings a page touches it, and before choosing victims the manager asks devices
//! that report accessed bits ([`Hooks::ACCESSED_BITS`](crate::Hooks::ACCESSED_BITS)) which of the oldest candidates
//! were used since the last look: those get a second chance (CLOCK). Victims never
//! include pages of the batch in progress (`exclude`) or pages mid-migration; pages
//! whose preferred location is this device go last.
//!
//! The list is intrusive and indexed by device frame number: one 24-byte node per
//! device frame, allocated at registration, O(1) touch/remove without hashing. It is
//! kept outside the logical page table (whose budget is per tracked page).

use std::collections::VecDeque;

use crate::hash::FastSet;
use crate::mmu::PAGES_PER_HUGE;
use crate::page_table::{PageEntry, PageFlags};
use crate::types::{DeviceId, PageKey};

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

/// What victim selection needs to know of the manager's tables. The manager implements
/// it over its state (`crate::state::DeviceTables`); the tests below over a few maps.
pub(crate) trait EvictView {
    /// The logical page-table entry of `page`; `None` when its space is gone.
    fn entry(&self, page: PageKey) -> Option<PageEntry>;
    /// Whether `page`'s preferred location (`hmadvise`) is device `dev`.
    fn prefers(&self, page: PageKey, dev: DeviceId) -> bool;
    /// Which of `pages` device `dev` accessed since the last look, clearing the bits;
    /// `None` when the device does not report accessed bits.
    fn accessed(&self, dev: DeviceId, pages: &[PageKey]) -> Option<FastSet<PageKey>>;
    /// Pages of 2 MiB chunk `chunk` of space `s` on a device; `None` when the space is gone.
    fn chunk_on_device(&self, s: u32, chunk: u64) -> Option<u32>;
}

/// How many broken-up full chunks [`RecentFull`] remembers.
pub(crate) const RECENT_FULL: usize = 64;

/// (space, 2 MiB chunk) pairs that were wholly on a device when eviction broke them up,
/// newest last (at most [`RECENT_FULL`]): the prefetcher's stream rule treats them as
/// full, so a stream under oversubscription still moves chunk by chunk.
#[derive(Debug, Default)]
pub(crate) struct RecentFull(VecDeque<(u32, u64)>);

impl RecentFull {
    /// Remember the chunks of `victims` that are wholly on a device now (before eviction
    /// breaks them up).
    pub(crate) fn note(&mut self, view: &impl EvictView, victims: &[PageKey]) {
        for &(s, vpn) in victims {
            let key = (s, vpn / PAGES_PER_HUGE);
            let full = view.chunk_on_device(s, key.1).is_some_and(|n| u64::from(n) == PAGES_PER_HUGE);
            if full && !self.0.contains(&key) {
                if self.0.len() == RECENT_FULL {
                    self.0.pop_front();
                }
                self.0.push_back(key);
            }
        }
    }

    /// Whether chunk `chunk` of space `s` is remembered.
    pub(crate) fn contains(&self, s: u32, chunk: u64) -> bool {
        self.0.contains(&(s, chunk))
    }
}

/// Whether `page`, found in frame `pfn` of `dev`'s LRU, may leave the device now.
fn evictable(e: &PageEntry, dev: Option<DeviceId>, pfn: u32) -> bool {
    // Poisoned pages never leave the device (the copy back is what failed).
    e.on_device()
        && e.pfn == pfn
        && dev.is_none_or(|d| e.dev == d.0)
        && !e.flags.intersects(PageFlags::MIGRATING | PageFlags::POISONED)
}

/// Victims that empty up to `blocks` naturally aligned 2 MiB blocks of a device's
/// memory (its LRU `lru`), so that whole chunks can arrive as 2 MiB mappings (UVM evicts
/// root chunks the same way). Blocks are taken in the LRU order of their oldest page; a
/// block holding a page that cannot leave now (mid-migration, poisoned, in `exclude`) is
/// passed over.
pub(crate) fn pick_victim_blocks(
    lru: &Lru,
    view: &impl EvictView,
    blocks: usize,
    exclude: &FastSet<PageKey>,
) -> Vec<PageKey> {
    let per = PAGES_PER_HUGE as u32;
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
                pages.push(key);
                !exclude.contains(&key) && view.entry(key).is_some_and(|e| evictable(&e, None, pf))
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

/// Choose up to `n` victims on `dev` from its LRU `lru`: the oldest pages, after a second
/// chance for those the device reports accessed (they move to the back of the LRU),
/// pages preferring `dev` last, never a page of `exclude`.
pub(crate) fn pick_victims(
    lru: &mut Lru,
    view: &impl EvictView,
    dev: DeviceId,
    n: usize,
    exclude: &FastSet<PageKey>,
) -> Vec<PageKey> {
    let window = (2 * n + 16).min(lru.len());
    let mut cands = lru.oldest(window);
    if !cands.is_empty() {
        let keys: Vec<PageKey> = cands.iter().map(|&(p, _)| p).collect();
        if let Some(used) = view.accessed(dev, &keys) {
            // Second chance, keeping the candidates' relative (LRU) order.
            for &(p, f) in cands.iter().filter(|(p, _)| used.contains(p)) {
                lru.touch(p, f);
            }
            // Accessed pages move to the back; try the rest first.
            cands.sort_by_key(|(p, _)| used.contains(p));
        }
    }
    let mut first = Vec::new();
    let mut later = Vec::new();
    for (p, f) in cands {
        if exclude.contains(&p) || !view.entry(p).is_some_and(|e| evictable(&e, Some(dev), f)) {
            continue;
        }
        if view.prefers(p, dev) {
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
    use crate::page_table::Residency;

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

    const DEV: DeviceId = DeviceId(0);

    /// The tables as a few maps.
    #[derive(Default)]
    struct Fake {
        entries: std::collections::HashMap<PageKey, PageEntry>,
        preferred: FastSet<PageKey>,
        /// `None`: the device reports no accessed bits.
        accessed: Option<FastSet<PageKey>>,
        /// (space, chunk) pairs wholly on the device, whatever `entries` say.
        full: FastSet<(u32, u64)>,
    }

    impl Fake {
        /// `pages` on the device in frames `pfns`, touched in that order.
        fn resident(&mut self, lru: &mut Lru, pages: &[(PageKey, u32)]) {
            for &(p, pfn) in pages {
                self.entries.insert(p, PageEntry { pfn, state: Residency::Device, dev: DEV.0, ..Default::default() });
                lru.touch(p, pfn);
            }
        }

        fn flag(&mut self, p: PageKey, f: PageFlags) {
            self.entries.entry(p).or_default().flags.insert(f);
        }
    }

    impl EvictView for Fake {
        fn entry(&self, page: PageKey) -> Option<PageEntry> {
            Some(self.entries.get(&page).copied().unwrap_or_default())
        }
        fn prefers(&self, page: PageKey, dev: DeviceId) -> bool {
            dev == DEV && self.preferred.contains(&page)
        }
        fn accessed(&self, _dev: DeviceId, pages: &[PageKey]) -> Option<FastSet<PageKey>> {
            self.accessed.as_ref().map(|a| pages.iter().filter(|p| a.contains(p)).copied().collect())
        }
        fn chunk_on_device(&self, s: u32, chunk: u64) -> Option<u32> {
            if self.full.contains(&(s, chunk)) {
                return Some(PAGES_PER_HUGE as u32);
            }
            let n = self.entries.iter().filter(|((ps, v), e)| *ps == s && v / PAGES_PER_HUGE == chunk && e.on_device());
            Some(n.count() as u32)
        }
    }

    fn keys(vpns: &[u64]) -> Vec<PageKey> {
        vpns.iter().map(|&v| (1, v)).collect()
    }

    #[test]
    fn victims_are_the_oldest_pages_that_may_leave() {
        let mut lru = Lru::new(16).expect("lru");
        let mut v = Fake::default();
        v.resident(&mut lru, &[((1, 10), 1), ((1, 11), 2), ((1, 12), 3), ((1, 13), 4), ((1, 14), 5), ((1, 15), 6)]);
        v.flag((1, 11), PageFlags::MIGRATING);
        v.flag((1, 12), PageFlags::POISONED);
        // Frame 4 was reused: the page's entry names another frame now.
        v.entries.get_mut(&(1, 13)).expect("entry").pfn = 9;
        let exclude: FastSet<PageKey> = [(1, 15)].into_iter().collect();
        assert_eq!(pick_victims(&mut lru, &v, DEV, 8, &exclude), keys(&[10, 14]));
        assert_eq!(pick_victims(&mut lru, &v, DEV, 1, &exclude), keys(&[10]));
        // Another device's pages are never this device's victims.
        assert_eq!(pick_victims(&mut lru, &v, DeviceId(1), 8, &exclude), Vec::<PageKey>::new());
    }

    #[test]
    fn preferred_pages_go_last_and_accessed_pages_get_a_second_chance() {
        let mut lru = Lru::new(8).expect("lru");
        let mut v = Fake::default();
        v.resident(&mut lru, &[((1, 1), 1), ((1, 2), 2), ((1, 3), 3), ((1, 4), 4)]);
        v.preferred.insert((1, 2));
        assert_eq!(pick_victims(&mut lru, &v, DEV, 4, &FastSet::default()), keys(&[1, 3, 4, 2]));
        assert_eq!(pick_victims(&mut lru, &v, DEV, 2, &FastSet::default()), keys(&[1, 3]));
        // Page 1 was used since the last look: it goes to the back, of the answer and of
        // the LRU.
        v.preferred.clear();
        v.accessed = Some([(1, 1)].into_iter().collect());
        assert_eq!(pick_victims(&mut lru, &v, DEV, 4, &FastSet::default()), keys(&[2, 3, 4, 1]));
        let order: Vec<PageKey> = lru.oldest(4).into_iter().map(|(p, _)| p).collect();
        assert_eq!(order, keys(&[2, 3, 4, 1]));
    }

    #[test]
    fn whole_blocks_are_taken_in_lru_order_unless_a_page_is_stuck() {
        let per = PAGES_PER_HUGE as u32;
        let mut lru = Lru::new(3 * u64::from(per)).expect("lru");
        let mut v = Fake::default();
        v.resident(&mut lru, &[((1, 500), per), ((1, 0), 0), ((1, 900), 2 * per), ((1, 1), 1), ((1, 501), per + 1)]);
        // Block 1 (the oldest) holds a page mid-migration: passed over.
        v.flag((1, 501), PageFlags::MIGRATING);
        assert_eq!(pick_victim_blocks(&lru, &v, 2, &FastSet::default()), keys(&[0, 1, 900]));
        assert_eq!(pick_victim_blocks(&lru, &v, 1, &FastSet::default()), keys(&[0, 1]));
        // A page of the batch in progress blocks its block too.
        let exclude: FastSet<PageKey> = [(1, 1)].into_iter().collect();
        assert_eq!(pick_victim_blocks(&lru, &v, 2, &exclude), keys(&[900]));
    }

    #[test]
    fn recent_full_remembers_full_chunks_only_and_forgets_the_oldest() {
        let per = PAGES_PER_HUGE;
        let mut lru = Lru::new(per + 1).expect("lru");
        let mut v = Fake::default();
        let full: Vec<(PageKey, u32)> = (0..per).map(|i| ((1, i), i as u32)).collect();
        v.resident(&mut lru, &full);
        v.resident(&mut lru, &[((1, per), per as u32)]);
        let mut r = RecentFull::default();
        r.note(&v, &keys(&[3, 4, per]));
        assert!(r.contains(1, 0));
        assert!(!r.contains(1, 1));
        assert_eq!(r.0.len(), 1);
        // At most RECENT_FULL chunks, the oldest forgotten first.
        let chunks: Vec<PageKey> = (1..=RECENT_FULL as u64).map(|c| (2, c * per)).collect();
        v.full.extend(chunks.iter().map(|&(s, v)| (s, v / per)));
        r.note(&v, &chunks);
        assert_eq!(r.0.len(), RECENT_FULL);
        assert!(!r.contains(1, 0));
        assert!(r.contains(2, 1) && r.contains(2, RECENT_FULL as u64));
    }
}
