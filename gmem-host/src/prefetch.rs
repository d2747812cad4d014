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
use crate::state::State;
use crate::mmu::{PAGE_SIZE, PAGES_PER_HUGE};
use crate::page_table::{PageFlags, Residency};

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
    for ((s, chunk), faulted) in per_chunk {
        let Some(sp) = st.spaces.get(&s) else { continue };
        let dense = u64::from(sp.pt.chunk_on_device(chunk)) + faulted;
        if dense * 100 <= u64::from(pct) * PAGES_PER_HUGE || dense >= PAGES_PER_HUGE {
            continue;
        }
        let base = chunk * PAGES_PER_HUGE;
        for vpn in base..base + PAGES_PER_HUGE {
            let key = (s, vpn);
            let va = vpn * PAGE_SIZE;
            if taken.contains(&key) {
                continue;
            }
            let Some(r) = sp.region_of(va) else { continue };
            if r.dying {
                continue;
            }
            let e = sp.pt.get(vpn);
            if !matches!(e.state, Residency::Cpu | Residency::Unpopulated)
                || e.flags.intersects(PageFlags::MIGRATING | PageFlags::PINNED | PageFlags::REMOTE)
            {
                continue;
            }
            let a = sp.attrs.get(va);
            if a.preferred == Some(Node::Cpu) || a.accessed_by(dev) {
                continue;
            }
            migrate.push(Mig { key, dup: a.read_mostly && e.state == Residency::Cpu, prefetch: true });
        }
    }
}
