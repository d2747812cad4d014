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

use crate::hash::FastSet;

use crate::attrs::{DeviceId, Node};
use crate::evict::PageKey;
use crate::mmu::{PAGE_SIZE, PAGES_PER_HUGE};
use crate::page_table::{PageFlags, Residency};
use crate::state::State;

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
pub(crate) fn expand(st: &State, dev: DeviceId, pct: u8, migrate: &mut Vec<Mig>, taken: &FastSet<PageKey>) {
    let mut per_chunk: BTreeMap<(u32, u64), u64> = BTreeMap::new();
    for m in migrate.iter() {
        *per_chunk.entry((m.key.0, m.key.1 / PAGES_PER_HUGE)).or_default() += 1;
    }
    let mut seen: FastSet<PageKey> = migrate.iter().map(|m| m.key).collect();
    for ((s, chunk), faulted) in per_chunk {
        let Some(sp) = st.spaces.get(&s) else { continue };
        let dense = u64::from(sp.pt.chunk_on_device(chunk)) + faulted;
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
pub(crate) fn expand_tree(st: &State, dev: DeviceId, pct: u8, migrate: &mut Vec<Mig>, taken: &FastSet<PageKey>) {
    let mut chunks: Vec<(u32, u64)> = migrate.iter().map(|m| (m.key.0, m.key.1 / PAGES_PER_HUGE)).collect();
    chunks.sort_unstable();
    chunks.dedup();
    let mut seen: FastSet<PageKey> = migrate.iter().map(|m| m.key).collect();
    for (s, chunk) in chunks {
        let Some(sp) = st.spaces.get(&s) else { continue };
        let base = chunk * PAGES_PER_HUGE;
        let n = PAGES_PER_HUGE as usize;
        let mut present: Vec<bool> =
            (0..n).map(|i| seen.contains(&(s, base + i as u64)) || sp.pt.get(base + i as u64).on_device()).collect();
        let batch: Vec<bool> = (0..n).map(|i| seen.contains(&(s, base + i as u64))).collect();
        // A stream that filled the previous chunk and enters this one takes it whole
        // (like readahead): one migration and one 2 MiB mapping instead of the doubling
        // steps, which pay a fault round trip each and leave 4 KiB mappings behind. A
        // previous chunk that eviction has since broken up still counts as filled.
        let prev_full = chunk > 0
            && (sp.pt.chunk_on_device(chunk - 1) == PAGES_PER_HUGE as u32 || st.recent_full.contains(&(s, chunk - 1)));
        let stream = prev_full
            && sp.pt.chunk_on_device(chunk) == 0
            && sp.region_of(base * PAGE_SIZE).is_some_and(|r| r.start < base * PAGE_SIZE);
        if stream {
            for vpn in base..base + PAGES_PER_HUGE {
                if !seen.contains(&(s, vpn))
                    && let Some(m) = candidate(st, s, dev, vpn, taken)
                {
                    seen.insert(m.key);
                    migrate.push(m);
                }
            }
            continue;
        }
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
                    if seen.contains(&key) {
                        continue;
                    }
                    if let Some(m) = candidate(st, s, dev, key.1, taken) {
                        seen.insert(key);
                        present[i] = true;
                        migrate.push(m);
                    }
                }
            }
            level *= 2;
        }
    }
}

/// Fault-ahead: every faulted page brings the migratable pages of its aligned block of
/// `block_pages` pages along (UVM's 64 KiB big-page granularity), so a stream of faults
/// on one page becomes one migration of the block.
pub(crate) fn expand_blocks(
    st: &State,
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
/// region, on the CPU or unpopulated, not migrating, pinned or mapped remotely, and
/// neither preferring the CPU nor accessed-by `dev`.
fn candidate(st: &State, s: u32, dev: DeviceId, vpn: u64, taken: &FastSet<PageKey>) -> Option<Mig> {
    let key = (s, vpn);
    let va = vpn * PAGE_SIZE;
    if taken.contains(&key) {
        return None;
    }
    let sp = st.spaces.get(&s)?;
    let r = sp.region_of(va)?;
    if r.dying {
        return None;
    }
    let e = sp.pt.get(vpn);
    if !matches!(e.state, Residency::Cpu | Residency::Unpopulated)
        || e.flags.intersects(PageFlags::MIGRATING | PageFlags::PINNED | PageFlags::REMOTE)
    {
        return None;
    }
    let a = sp.attrs.get(va);
    if a.preferred == Some(Node::Cpu) || a.accessed_by(dev) {
        return None;
    }
    Some(Mig { key, dup: a.read_mostly && e.state == Residency::Cpu, prefetch: true })
}
