//! munmap's teardown of a region: every device mapping and frame of the range released.

use std::collections::HashMap;

use super::mapping::{Batches, flush_all, free_frame};
use crate::events::add;
use crate::hash::FastSet;
use crate::mmu::{HUGE_PAGE_SIZE, Hooks, PAGE_SIZE, PAGES_PER_HUGE, PageSize};
use crate::page_table::PageFlags;
use crate::state::{Inner, State};
use crate::types::DeviceId;

/// munmap helper: release every mapping and frame of `[va, va+len)` (lock held, nothing
/// in flight). Base mappings go in one `peer_unmap` per device when it has one; a 2 MiB
/// mapping is released whole. A frame whose mapping could not be released is leaked
/// (kept allocated, never reused) rather than handed out while the device may reach it.
pub(crate) fn teardown_range(inner: &Inner, st: &mut State, s: u32, va: u64, len: u64) {
    let touched = match st.spaces.get(&s) {
        Some(sp) => sp.pt.touched(va / PAGE_SIZE, len / PAGE_SIZE),
        None => return,
    };
    let mut batches = Batches::new();
    let mut singles: Vec<(u8, u64, PageSize)> = Vec::new();
    let mut bulk: HashMap<u8, Vec<(u64, PageSize)>> = HashMap::new();
    let mut huge_done: FastSet<u64> = FastSet::default();
    for &(vpn, e) in &touched {
        if e.prot == 0 {
            continue;
        }
        if e.flags.contains(PageFlags::HUGE) {
            let chunk = vpn / PAGES_PER_HUGE;
            if huge_done.insert(chunk) {
                singles.push((e.dev, chunk * HUGE_PAGE_SIZE, PageSize::Huge));
            }
        } else if st.devices[e.dev as usize].info.hooks.contains(Hooks::PEER_MAP) {
            bulk.entry(e.dev).or_default().push((vpn * PAGE_SIZE, PageSize::Base));
        } else {
            singles.push((e.dev, vpn * PAGE_SIZE, PageSize::Base));
        }
    }
    let asid = |st: &State, d: u8| st.spaces.get(&s).and_then(|sp| sp.asid_of(DeviceId(d)));
    for (d, pages) in bulk {
        let Some(a) = asid(st, d) else { continue };
        match st.devices[d as usize].mmu.peer_unmap(a, &pages) {
            Ok(tokens) => tokens.into_iter().for_each(|t| batches.entry(d).or_default().push(t)),
            Err(e) => {
                add(&inner.counters.hook_errors, 1);
                tracing::warn!(target: "gmem", error = %e, "peer_unmap failed; releasing page by page");
                singles.extend(pages.into_iter().map(|(v, sz)| (d, v, sz)));
            }
        }
    }
    let mut leaked: FastSet<u64> = FastSet::default();
    for (d, v, size) in singles {
        let Some(a) = asid(st, d) else { continue };
        match st.devices[d as usize].mmu.pmap_release(a, v, size) {
            Ok(t) => batches.entry(d).or_default().push(t),
            Err(e) => {
                add(&inner.counters.hook_errors, 1);
                tracing::error!(target: "gmem", va = format_args!("{v:#x}"), error = %e, "munmap: release failed; frame leaked");
                let pages = size.bytes() / PAGE_SIZE;
                leaked.extend((0..pages).map(|i| v / PAGE_SIZE + i));
            }
        }
    }
    // The devices whose frames this frees: what they owe must go out first.
    for (_, e) in touched.iter().filter(|(_, e)| e.on_device()) {
        batches.entry(e.dev).or_default();
    }
    if let Err(e) = flush_all(inner, st, batches) {
        // Stale translations may still reach these frames: never hand them out again.
        tracing::error!(target: "gmem", error = %e, "munmap: TLB flush failed; frames quarantined");
        leaked.extend(touched.iter().filter(|(_, e)| e.on_device()).map(|(v, _)| *v));
    }
    for &(vpn, e) in &touched {
        if e.on_device() {
            let slot = &mut st.devices[e.dev as usize];
            slot.lru.remove(e.pfn);
            if !leaked.contains(&vpn) {
                free_frame(slot, e.pa());
            }
        }
        st.thrash.forget((s, vpn));
    }
    let (first, end) = (va / PAGE_SIZE, (va + len) / PAGE_SIZE);
    st.dma_failures.retain(|&(ks, v), _| ks != s || !(first..end).contains(&v));
}
