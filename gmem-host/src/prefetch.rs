//! Density prefetch: once a 2 MiB region is mostly on the device, bring the rest.
//!
//! UVM migrates the remainder of a 2 MiB region once more than 51 % of it is resident
//! on the faulting processor. Here the density of a chunk is the pages already on a
//! device plus the pages faulted in the current batch; above
//! [`Config::prefetch_threshold_pct`](crate::Config) the remaining migratable pages of the
//! chunk (inside the region, not pinned, not mapped remotely, not preferring the CPU or
//! accessed-by this device) join the batch as prefetches. A chunk brought in whole is
//! then eligible for a 2 MiB device mapping.

use std::collections::BTreeMap;

use crate::attrs::RangeAttrs;
use crate::hash::FastSet;
use crate::mmu::{PAGE_SIZE, PAGES_PER_HUGE, Prot};
use crate::page_table::{PageEntry, PageFlags, Residency};
use crate::types::{DeviceId, Node, PageKey};

/// What the prefetch heuristics need to know of the manager's tables. The manager
/// implements it over its state (`crate::state`); the tests below over a few maps.
pub(crate) trait PrefetchView {
    /// The logical page-table entry of `page` (a default, unpopulated entry when never
    /// touched or when its space is gone).
    fn entry(&self, page: PageKey) -> PageEntry;
    /// Pages of 2 MiB chunk `chunk` of space `s` on a device.
    fn chunk_on_device(&self, s: u32, chunk: u64) -> u32;
    /// The region of space `s` holding `va`: its start and whether it is being unmapped.
    fn region(&self, s: u32, va: u64) -> Option<(u64, bool)>;
    /// The range attributes at `va` in space `s`.
    fn attrs(&self, s: u32, va: u64) -> RangeAttrs;
    /// Whether eviction recently broke up chunk `chunk` of space `s` while it was wholly
    /// on a device ([`crate::evict::RecentFull`]).
    fn recently_full(&self, s: u32, chunk: u64) -> bool;
}

/// A page the batch will migrate to the device.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mig {
    /// The page.
    pub(crate) key: PageKey,
    /// Read-duplicate (keep the CPU copy, map read-only).
    pub(crate) dup: bool,
    /// Added by the prefetch heuristic (not faulted).
    pub(crate) prefetch: bool,
}

/// Add prefetch candidates for dense chunks to `migrate`.
pub(crate) fn expand(st: &impl PrefetchView, dev: DeviceId, pct: u8, migrate: &mut Vec<Mig>, taken: &FastSet<PageKey>) {
    let mut per_chunk: BTreeMap<(u32, u64), u64> = BTreeMap::new();
    for m in migrate.iter() {
        *per_chunk.entry((m.key.0, m.key.1 / PAGES_PER_HUGE)).or_default() += 1;
    }
    let mut seen: FastSet<PageKey> = migrate.iter().map(|m| m.key).collect();
    for ((s, chunk), faulted) in per_chunk {
        let dense = u64::from(st.chunk_on_device(s, chunk)) + faulted;
        if dense * 100 <= u64::from(pct) * PAGES_PER_HUGE || dense >= PAGES_PER_HUGE {
            continue;
        }
        let base = chunk * PAGES_PER_HUGE;
        for vpn in base..base + PAGES_PER_HUGE {
            if seen.contains(&(s, vpn)) {
                continue;
            }
            if let Some(m) = candidate(st, s, dev, vpn, taken) {
                seen.insert(m.key);
                migrate.push(m);
            }
        }
    }
}

/// Tree density prefetch (UVM's prefetch tree): inside each 2 MiB chunk of the batch,
/// every naturally aligned subregion of 32 .. 512 pages that holds a page of the batch
/// and is more than `pct` % present (on a device, or migrating in this batch — counting
/// what smaller levels already added) is brought in whole. A stream therefore migrates
/// in doubling steps instead of block by block.
///
/// Read-ahead (`readahead`: device pages the batch may still fill when this is called,
/// `None`: off): a chunk the batch leaves whole, that either had pages on the device
/// before (a ramp of doubling steps ends) or was taken whole as a stream, brings the
/// next chunk of its region whole too ([`Growth::read_ahead`]), if it fits in what is left of
/// `readahead` after every page this call added.
pub(crate) fn expand_tree(
    st: &impl PrefetchView,
    dev: DeviceId,
    pct: u8,
    migrate: &mut Vec<Mig>,
    taken: &FastSet<PageKey>,
    readahead: Option<u64>,
) {
    let start = migrate.len();
    let mut chunks: Vec<(u32, u64)> = migrate.iter().map(|m| (m.key.0, m.key.1 / PAGES_PER_HUGE)).collect();
    chunks.sort_unstable();
    chunks.dedup();
    let seen: FastSet<PageKey> = migrate.iter().map(|m| m.key).collect();
    let mut g = Growth { st, dev, taken, seen, migrate };
    for (s, chunk) in chunks {
        let base = chunk * PAGES_PER_HUGE;
        let n = PAGES_PER_HUGE as usize;
        let mut present: Vec<bool> = (0..n)
            .map(|i| g.seen.contains(&(s, base + i as u64)) || st.entry((s, base + i as u64)).on_device())
            .collect();
        let batch: Vec<bool> = (0..n).map(|i| g.seen.contains(&(s, base + i as u64))).collect();
        // A stream that filled the previous chunk and enters this one takes it whole
        // (like readahead): one migration and one 2 MiB mapping instead of the doubling
        // steps, which pay a fault round trip each and leave 4 KiB mappings behind. A
        // previous chunk that eviction has since broken up still counts as filled.
        let prev_full =
            chunk > 0 && (st.chunk_on_device(s, chunk - 1) == PAGES_PER_HUGE as u32 || st.recently_full(s, chunk - 1));
        let had_pages = st.chunk_on_device(s, chunk) > 0;
        let stream = prev_full
            && !had_pages
            && st.region(s, base * PAGE_SIZE).is_some_and(|(start, _)| start < base * PAGE_SIZE);
        if stream {
            let taken_now = g.take_all(s, base..base + PAGES_PER_HUGE, u64::MAX);
            mark(&mut present, base, &taken_now);
        } else {
            g.grow_levels(pct, s, base, &batch, &mut present);
        }
        // What is left of `readahead` after every page this call added.
        let room = |g: &Growth<'_, _>| readahead.map(|budget| budget.saturating_sub((g.migrate.len() - start) as u64));
        // A stream never had pages here.
        if let Some(room) = room(&g)
            && had_pages
        {
            g.complete_ramp(s, base, room, &mut present);
        }
        if let Some(room) = room(&g)
            && (stream || had_pages)
            && present.iter().all(|&p| p)
        {
            g.read_ahead(s, chunk, room);
        }
    }
}

/// What [`expand_tree`] grows: the batch's pages to migrate (`migrate`, and `seen`, their
/// keys), for device `dev`, never taking a page of `taken`.
struct Growth<'a, V: PrefetchView> {
    st: &'a V,
    dev: DeviceId,
    taken: &'a FastSet<PageKey>,
    seen: FastSet<PageKey>,
    migrate: &'a mut Vec<Mig>,
}

impl<V: PrefetchView> Growth<'_, V> {
    /// The levels of [`expand_tree`] for one chunk of space `s` (at `base`) that is not
    /// a stream: every aligned subregion of 32 .. 512 pages holding a page of the batch
    /// and more than `pct` % `present` comes in whole (`present` grows with what joins).
    fn grow_levels(&mut self, pct: u8, s: u32, base: u64, batch: &[bool], present: &mut [bool]) {
        let n = PAGES_PER_HUGE as usize;
        let mut level = 32usize;
        while level <= n {
            for sub in (0..n).step_by(level) {
                let range = sub..sub + level;
                if !batch[range.clone()].iter().any(|&b| b) {
                    continue;
                }
                let dense = present[range.clone()].iter().filter(|&&p| p).count();
                if dense * 100 <= usize::from(pct) * level || dense == level {
                    continue;
                }
                for i in range {
                    let key = (s, base + i as u64);
                    if self.seen.contains(&key) {
                        continue;
                    }
                    if let Some(m) = candidate(self.st, s, self.dev, key.1, self.taken) {
                        self.seen.insert(key);
                        present[i] = true;
                        self.migrate.push(m);
                    }
                }
            }
            level *= 2;
        }
    }

    /// With read-ahead, in a chunk of space `s` (at `base`) that is not a stream: when
    /// the chunk's present pages (`present`: on the device or in the batch) are one run
    /// of at least [`RAMP_COMPLETE_PAGES`] from its first page in the region, a
    /// sequential ramp is under way and the rest of the chunk in that region comes whole
    /// (when its migratable pages fit in `room`) instead of in more doubling steps, each
    /// of which costs a fault round trip; the chunk then being whole,
    /// [`Growth::read_ahead`] may bring the next one.
    fn complete_ramp(&mut self, s: u32, base: u64, room: u64, present: &mut [bool]) {
        let st = self.st;
        let region = |i: usize| st.region(s, (base + i as u64) * PAGE_SIZE).map(|(start, _)| start);
        let Some(first) = present.iter().position(|&p| p) else { return };
        let run = present[first..].iter().take_while(|&&p| p).count();
        let from_start = first == 0 || region(first) != region(first - 1);
        if !from_start || run < RAMP_COMPLETE_PAGES || present[first + run..].iter().any(|&p| p) {
            return;
        }
        let rest = (first + run..present.len()).take_while(|&i| region(i) == region(first)).map(|i| base + i as u64);
        let taken_now = self.take_all(s, rest, room);
        mark(present, base, &taken_now);
    }

    /// The read-ahead of [`expand_tree`] after chunk `chunk` of space `s`: the next chunk
    /// comes whole when it lies in the same region, has no page on a device or in the
    /// batch, and its migratable pages fit in `room`.
    fn read_ahead(&mut self, s: u32, chunk: u64, room: u64) {
        let next = (chunk + 1) * PAGES_PER_HUGE;
        let region = |vpn: u64| self.st.region(s, vpn * PAGE_SIZE).map(|(start, _)| start);
        let pages = next..next + PAGES_PER_HUGE;
        if region(next).is_none()
            || region(next) != region(next - 1)
            || self.st.chunk_on_device(s, chunk + 1) > 0
            || pages.clone().any(|v| self.seen.contains(&(s, v)))
        {
            return;
        }
        self.take_all(s, pages, room);
    }

    /// Adds the migratable pages among `pages` of space `s` not in the batch yet to it,
    /// all of them or, when they are more than `room`, none. Returns the pages added.
    fn take_all(&mut self, s: u32, pages: impl Iterator<Item = u64>, room: u64) -> Vec<u64> {
        let all: Vec<Mig> = pages
            .filter(|&v| !self.seen.contains(&(s, v)))
            .filter_map(|v| candidate(self.st, s, self.dev, v, self.taken))
            .collect();
        if all.len() as u64 > room {
            return Vec::new();
        }
        self.seen.extend(all.iter().map(|m| m.key));
        self.migrate.extend(&all);
        all.iter().map(|m| m.key.1).collect()
    }
}

/// Pages of a chunk a ramp of doubling steps must have brought in, as one run from the
/// chunk's (or its region's) first page, before [`Growth::complete_ramp`] takes the rest.
const RAMP_COMPLETE_PAGES: usize = 128;

/// Marks `pages` of the chunk at `base` present.
fn mark(present: &mut [bool], base: u64, pages: &[u64]) {
    for &v in pages {
        present[(v - base) as usize] = true;
    }
}

/// Fault-ahead: every faulted page brings the migratable pages of its aligned block of
/// `block_pages` pages along (UVM's 64 KiB big-page granularity), so a stream of faults
/// on one page becomes one migration of the block.
pub(crate) fn expand_blocks(
    st: &impl PrefetchView,
    dev: DeviceId,
    block_pages: u64,
    migrate: &mut Vec<Mig>,
    taken: &FastSet<PageKey>,
) {
    let mut blocks: Vec<(u32, u64)> =
        migrate.iter().filter(|m| !m.prefetch).map(|m| (m.key.0, m.key.1 / block_pages)).collect();
    blocks.sort_unstable();
    blocks.dedup();
    let mut seen: FastSet<PageKey> = migrate.iter().map(|m| m.key).collect();
    for (s, block) in blocks {
        for vpn in block * block_pages..(block + 1) * block_pages {
            if seen.contains(&(s, vpn)) {
                continue;
            }
            if let Some(m) = candidate(st, s, dev, vpn, taken) {
                seen.insert(m.key);
                migrate.push(m);
            }
        }
    }
}

/// The page `vpn` of space `s` as a prefetch, if it may move to `dev`: inside a live
/// region, on the CPU or unpopulated, not migrating, pinned or mapped remotely, neither
/// preferring the CPU nor accessed-by `dev`, and readable (not `PROT_NONE`).
fn candidate(st: &impl PrefetchView, s: u32, dev: DeviceId, vpn: u64, taken: &FastSet<PageKey>) -> Option<Mig> {
    let key = (s, vpn);
    let va = vpn * PAGE_SIZE;
    if taken.contains(&key) {
        return None;
    }
    let (_, dying) = st.region(s, va)?;
    if dying {
        return None;
    }
    let e = st.entry(key);
    if !matches!(e.state, Residency::Cpu | Residency::Unpopulated)
        || e.flags.intersects(PageFlags::MIGRATING | PageFlags::PINNED | PageFlags::REMOTE)
    {
        return None;
    }
    let a = st.attrs(s, va);
    if a.preferred == Some(Node::Cpu) || a.accessed_by(dev) || !a.prot.contains(Prot::READ) {
        return None;
    }
    Some(Mig { key, dup: a.read_mostly && e.state == Residency::Cpu, prefetch: true })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const DEV: DeviceId = DeviceId(0);
    const S: u32 = 1;
    const N: u64 = PAGES_PER_HUGE;

    /// The tables as a few maps: one region `[start, start + len)` of space `S`.
    struct Fake {
        entries: HashMap<u64, PageEntry>,
        attrs: HashMap<u64, RangeAttrs>,
        region: (u64, u64, bool),
        recent: Vec<u64>,
    }

    impl Fake {
        /// A live region of `chunks` 2 MiB chunks from VA 0.
        fn new(chunks: u64) -> Self {
            Fake { entries: HashMap::new(), attrs: HashMap::new(), region: (0, chunks * N, false), recent: Vec::new() }
        }

        fn set(&mut self, vpns: impl IntoIterator<Item = u64>, e: PageEntry) {
            self.entries.extend(vpns.into_iter().map(|v| (v, e)));
        }
    }

    impl PrefetchView for Fake {
        fn entry(&self, (s, vpn): PageKey) -> PageEntry {
            if s == S { self.entries.get(&vpn).copied().unwrap_or_default() } else { PageEntry::default() }
        }
        fn chunk_on_device(&self, s: u32, chunk: u64) -> u32 {
            (chunk * N..(chunk + 1) * N).filter(|&v| self.entry((s, v)).on_device()).count() as u32
        }
        fn region(&self, s: u32, va: u64) -> Option<(u64, bool)> {
            let (start, pages, dying) = self.region;
            (s == S && (start..start + pages * PAGE_SIZE).contains(&va)).then_some((start, dying))
        }
        fn attrs(&self, _s: u32, va: u64) -> RangeAttrs {
            self.attrs.get(&(va / PAGE_SIZE)).copied().unwrap_or_default()
        }
        fn recently_full(&self, s: u32, chunk: u64) -> bool {
            s == S && self.recent.contains(&chunk)
        }
    }

    fn on_device() -> PageEntry {
        PageEntry { state: Residency::Device, ..Default::default() }
    }

    fn cpu(flags: PageFlags) -> PageEntry {
        PageEntry { state: Residency::Cpu, flags, ..Default::default() }
    }

    fn faulted(vpns: impl IntoIterator<Item = u64>) -> Vec<Mig> {
        vpns.into_iter().map(|v| Mig { key: (S, v), dup: false, prefetch: false }).collect()
    }

    fn added(migrate: &[Mig]) -> Vec<u64> {
        migrate.iter().filter(|m| m.prefetch).map(|m| m.key.1).collect()
    }

    #[test]
    fn a_dense_chunk_brings_the_pages_that_may_move() {
        let mut v = Fake::new(1);
        v.set(0..200, on_device());
        v.set([400], cpu(PageFlags::PINNED));
        v.set([401], cpu(PageFlags::REMOTE));
        v.set([402], cpu(PageFlags::MIGRATING));
        v.attrs.insert(403, RangeAttrs { preferred: Some(Node::Cpu), ..Default::default() });
        v.attrs.insert(404, RangeAttrs { accessed_by: 1 << DEV.0, ..Default::default() });
        v.set([405, 406], cpu(PageFlags::empty()));
        v.attrs.insert(405, RangeAttrs { read_mostly: true, ..Default::default() });
        v.attrs.insert(407, RangeAttrs { read_mostly: true, ..Default::default() });
        let taken: FastSet<PageKey> = [(S, 408)].into_iter().collect();
        // 200 on the device + 100 faulted = 58 % > 51 %.
        let mut migrate = faulted(200..300);
        expand(&v, DEV, 51, &mut migrate, &taken);
        let got = added(&migrate);
        let excluded = [400, 401, 402, 403, 404, 408];
        assert_eq!(got, (300..N).filter(|v| !excluded.contains(v)).collect::<Vec<_>>());
        // Read-mostly pages are duplicated when their data is on the CPU, not when untouched.
        let dup = |vpn| migrate.iter().find(|m| m.key.1 == vpn).map(|m| m.dup);
        assert_eq!((dup(405), dup(406), dup(407)), (Some(true), Some(false), Some(false)));
    }

    #[test]
    fn sparse_full_and_dying_chunks_are_left_alone() {
        let mut v = Fake::new(1);
        v.set(0..100, on_device());
        // 100 + 150 = 48 % <= 51 %.
        let mut migrate = faulted(100..250);
        expand(&v, DEV, 51, &mut migrate, &FastSet::default());
        assert_eq!(added(&migrate), Vec::<u64>::new());
        // Everything already there or faulted: nothing left to add.
        let mut migrate = faulted(100..N);
        expand(&v, DEV, 51, &mut migrate, &FastSet::default());
        assert_eq!(added(&migrate), Vec::<u64>::new());
        // A region being unmapped is never prefetched into.
        v.region.2 = true;
        let mut migrate = faulted(100..300);
        expand(&v, DEV, 51, &mut migrate, &FastSet::default());
        assert_eq!(added(&migrate), Vec::<u64>::new());
    }

    #[test]
    fn the_tree_doubles_a_dense_subregion() {
        let v = Fake::new(1);
        // 17 of the first 32 pages (53 %): the 32-page subregion comes whole; the
        // 64-page one is then exactly half present, not more, and stays.
        let mut migrate = faulted(0..17);
        expand_tree(&v, DEV, 51, &mut migrate, &FastSet::default(), None);
        assert_eq!(added(&migrate), (17..32).collect::<Vec<_>>());
        // One more page makes the 64-page level dense too, and so on up the tree.
        let mut migrate = faulted(0..17);
        migrate.extend(faulted([32]));
        expand_tree(&v, DEV, 51, &mut migrate, &FastSet::default(), None);
        assert_eq!(added(&migrate), (17..32).chain(33..64).collect::<Vec<_>>());
    }

    #[test]
    fn a_stream_entering_a_chunk_takes_it_whole() {
        let mut v = Fake::new(3);
        v.set(0..N, on_device());
        let mut migrate = faulted([N]);
        expand_tree(&v, DEV, 51, &mut migrate, &FastSet::default(), None);
        assert_eq!(added(&migrate), (N + 1..2 * N).collect::<Vec<_>>());
        // The previous chunk counts as full after eviction broke it up, too.
        v.entries.clear();
        v.recent.push(1);
        let mut migrate = faulted([2 * N + 7]);
        expand_tree(&v, DEV, 51, &mut migrate, &FastSet::default(), None);
        assert_eq!(added(&migrate).len() as u64, N - 1);
        // Not when the region starts at the chunk: that is no stream.
        v.region = (2 * N * PAGE_SIZE, N, false);
        let mut migrate = faulted([2 * N + 7]);
        expand_tree(&v, DEV, 51, &mut migrate, &FastSet::default(), None);
        assert_eq!(added(&migrate), Vec::<u64>::new());
    }

    #[test]
    fn a_chunk_completed_by_a_ramp_or_a_stream_reads_the_next_one_ahead() {
        // 300 pages of chunk 0 on the device; the batch's tree completes it: chunk 1 too.
        let mut v = Fake::new(3);
        v.set(0..300, on_device());
        let mut migrate = faulted([300]);
        expand_tree(&v, DEV, 51, &mut migrate, &FastSet::default(), Some(211 + N));
        assert_eq!(added(&migrate), (301..2 * N).collect::<Vec<_>>(), "exactly room for both");
        // A stream entering chunk 1 takes it and reads chunk 2 ahead; not beyond the region.
        v.set(0..N, on_device());
        let mut migrate = faulted([N]);
        expand_tree(&v, DEV, 51, &mut migrate, &FastSet::default(), Some(2 * N));
        assert_eq!(added(&migrate), (N + 1..3 * N).collect::<Vec<_>>());
        v.set(N..2 * N, on_device());
        let mut migrate = faulted([2 * N]);
        expand_tree(&v, DEV, 51, &mut migrate, &FastSet::default(), Some(2 * N));
        assert_eq!(added(&migrate), (2 * N + 1..3 * N).collect::<Vec<_>>(), "the region ends at chunk 3");
    }

    #[test]
    fn no_read_ahead_without_room_history_or_the_same_region() {
        let mut v = Fake::new(3);
        v.set(0..300, on_device());
        let ramp = || faulted([300]);
        let chunk0 = (301..N).collect::<Vec<_>>();
        // Off, or the next chunk does not fit the free device memory: room for chunk 0's
        // rest (211 pages) and chunk 1 is 723 pages.
        for room in [None, Some(N - 1), Some(211 + N - 1)] {
            let mut migrate = ramp();
            expand_tree(&v, DEV, 51, &mut migrate, &FastSet::default(), room);
            assert_eq!(added(&migrate), chunk0, "{room:?}");
        }
        // The next chunk has a page on the device already, or is in the batch.
        v.set([N + 9], on_device());
        let mut migrate = ramp();
        expand_tree(&v, DEV, 51, &mut migrate, &FastSet::default(), Some(2 * N));
        assert_eq!(added(&migrate), chunk0);
        v.entries.remove(&(N + 9));
        // The region ends with chunk 0.
        v.region.1 = N;
        let mut migrate = ramp();
        expand_tree(&v, DEV, 51, &mut migrate, &FastSet::default(), Some(2 * N));
        assert_eq!(added(&migrate), chunk0);
        // A chunk the batch fills from nothing is no sign of a stream.
        let fresh = Fake::new(3);
        let mut migrate = faulted(0..300);
        expand_tree(&fresh, DEV, 51, &mut migrate, &FastSet::default(), Some(2 * N));
        assert_eq!(added(&migrate), (300..N).collect::<Vec<_>>());
    }

    #[test]
    fn a_ramp_that_reached_a_quarter_of_its_chunk_takes_the_rest() {
        // 64 pages on the device, 4 faulted above them: the tree takes 68..128, a run of
        // 128 from the chunk's start: the rest (384 pages) comes too if it fits.
        let mut v = Fake::new(3);
        v.set(0..64, on_device());
        let step = (68..128).collect::<Vec<_>>();
        for (room, want) in [(None, step.clone()), (Some(60 + 383), step.clone()), (Some(60 + 384), (68..N).collect())]
        {
            let mut migrate = faulted(64..68);
            expand_tree(&v, DEV, 51, &mut migrate, &FastSet::default(), room);
            assert_eq!(added(&migrate), want, "{room:?}");
        }
        // With room for the next chunk as well, it is read ahead.
        let mut migrate = faulted(64..68);
        expand_tree(&v, DEV, 51, &mut migrate, &FastSet::default(), Some(60 + 384 + N));
        assert_eq!(added(&migrate), (68..2 * N).collect::<Vec<_>>());
        // A shorter ramp keeps doubling.
        let mut v = Fake::new(3);
        v.set(0..32, on_device());
        let mut migrate = faulted(32..36);
        expand_tree(&v, DEV, 51, &mut migrate, &FastSet::default(), Some(4 * N));
        assert_eq!(added(&migrate), (36..64).collect::<Vec<_>>());
    }

    #[test]
    fn only_a_run_from_the_chunks_first_page_in_the_region_completes_a_ramp() {
        let room = Some(4 * N);
        // The run starts inside the chunk while the region starts before it.
        let mut v = Fake::new(3);
        v.set(136..264, on_device());
        let mut migrate = faulted(264..268);
        expand_tree(&v, DEV, 51, &mut migrate, &FastSet::default(), room);
        assert_eq!(added(&migrate), Vec::<u64>::new(), "a run of 132 pages from page 136");
        // The region starts inside the chunk, with the run.
        let mut v = Fake::new(3);
        v.region = (8 * PAGE_SIZE, 3 * N - 8, false);
        v.set(8..136, on_device());
        let mut migrate = faulted(136..140);
        expand_tree(&v, DEV, 51, &mut migrate, &FastSet::default(), room);
        assert!(added(&migrate).contains(&(N - 1)), "the rest of chunk 0: {:?}", added(&migrate).len());
        // A page beyond the run is present: not a plain ramp.
        let mut v = Fake::new(3);
        v.set(0..64, on_device());
        v.set([400], on_device());
        let mut migrate = faulted(64..68);
        expand_tree(&v, DEV, 51, &mut migrate, &FastSet::default(), room);
        assert_eq!(added(&migrate), (68..128).collect::<Vec<_>>());
    }

    #[test]
    fn a_faulted_page_brings_its_block() {
        let mut v = Fake::new(1);
        v.set([20], cpu(PageFlags::PINNED));
        let mut migrate = faulted([5, 21]);
        expand_blocks(&v, DEV, 16, &mut migrate, &FastSet::default());
        let want: Vec<u64> = (0..16).filter(|&p| p != 5).chain((16..32).filter(|&p| p != 20 && p != 21)).collect();
        assert_eq!(added(&migrate), want);
    }
}
