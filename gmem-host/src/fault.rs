//! Device fault batches and host → device migration.
//!
//! A device hands [`Gmem::dev_fault`](crate::Gmem::dev_fault) a batch of
//! [`DeviceFault`]s (what its fault queue holds: ASID, VA, access, requester tag) and gets
//! one [`FaultResolution`] per fault, in the same order, to put in its replay command.
//!
//! The batch is validated, de-duplicated (one representative per page, the strongest
//! access wins), sorted by address and processed in slices no larger than half the
//! device memory so that a batch larger than the device still completes. For each
//! slice the pages are classified (already mapped, collapse a read duplicate, map
//! remotely, migrate, fetch from another device), dense 2 MiB chunks gain prefetches,
//! device memory is made by evicting LRU pages outside the batch, and the migration runs
//! in phases:
//! 1. **collect/unmap** (lock held): allocate frames (a 2 MiB block for a whole chunk),
//!    write-protect the CPU pages, mark them `MIGRATING | FROM_CPU`, record sequence numbers;
//!    first-touch pages on a device with [`Hooks::PEER_MAP`] are zero-filled and mapped
//!    right here in one call;
//! 2. **copy** (lock dropped): one [`GmMmu::copy_batch`](crate::GmMmu::copy_batch) of
//!    coalesced runs, zero-fill for first-touch pages;
//! 3. **commit** (lock held): re-check each sequence number (a CPU write during the copy
//!    bumped it: that page rolls back and is retried), map on the device (one 2 MiB
//!    mapping for a whole chunk), drop the CPU copies;
//! 4. **finalize or roll back**: clear flags, free frames of failed pages, wake waiters.

use crate::hash::{FastMap, FastSet};
use std::sync::Arc;

use crate::attrs::{DeviceId, Node};
use crate::events::add;
use crate::evict::PageKey;
use crate::manager::GmemError;
use crate::migrate::{Batches, Cause, MigrateError, evict, evict_blocks, flush_all, to_host};
use crate::migrate_in::{collect, copy_and_commit};
use crate::mmu::{Asid, HUGE_PAGE_SIZE, Hooks, MemAddr, PAGE_SIZE, PageSize, Prot};
use crate::page_table::{PageFlags, Residency};
use crate::prefetch::{Mig, expand, expand_blocks, expand_tree};
use crate::state::{Inner, State};
use crate::thrash::Verdict;

/// The access that faulted.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Load.
    Read,
    /// Store (or atomic).
    Write,
    /// Instruction fetch.
    Exec,
}

/// One record of a device fault queue.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct DeviceFault {
    /// Address space, as returned by [`GmMmu::pmap_create`](crate::GmMmu::pmap_create).
    pub asid: Asid,
    /// Faulting virtual address (any byte of the page).
    pub va: u64,
    /// Access type.
    pub access: Access,
    /// Requester tag, echoed in the replay (opaque to the manager).
    pub tag: u64,
}

/// Why a fault is aborted. Every variant names the faulting address.
#[derive(Debug, thiserror::Error, Clone)]
pub enum FaultError {
    /// The device is not registered.
    #[error("fault at {va:#x}: unknown device {dev}")]
    UnknownDevice {
        /// Address.
        va: u64,
        /// Device.
        dev: u8,
    },
    /// The ASID is not attached to any space.
    #[error("fault at {va:#x}: unknown ASID {asid}")]
    UnknownAsid {
        /// Address.
        va: u64,
        /// ASID.
        asid: u32,
    },
    /// The address is not in a `PEER_SHARED` region (use-after-unmap, wild pointer).
    #[error("fault at {va:#x}: address not managed")]
    NotManaged {
        /// Address.
        va: u64,
    },
    /// The device was declared lost ([`crate::Gmem::device_lost`]).
    #[error("fault at {va:#x}: device {dev} is lost")]
    DeviceLost {
        /// Address.
        va: u64,
        /// Device.
        dev: u8,
    },
    /// Resolving the fault failed; the page's data is intact where it was.
    #[error("fault at {va:#x}: migration failed")]
    Migration {
        /// Address.
        va: u64,
        /// The migration error.
        #[source]
        source: Arc<MigrateError>,
    },
}

/// The answer for one fault.
#[derive(Debug, Clone)]
pub enum FaultResolution {
    /// Replay the access (resolved, or transiently busy: the device will fault again).
    Retry,
    /// Terminate the access with an error.
    Abort(FaultError),
}

impl FaultResolution {
    /// Whether this is [`FaultResolution::Retry`].
    pub fn is_retry(&self) -> bool {
        matches!(self, FaultResolution::Retry)
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    Done,
    Retry,
    Abort(Arc<MigrateError>),
    NotManaged,
}

/// Handle one batch (see the module docs).
pub(crate) fn handle_batch(inner: &Inner, dev: DeviceId, faults: &[DeviceFault]) -> Vec<FaultResolution> {
    add(&inner.counters.fault_batches, 1);
    add(&inner.counters.faults, faults.len() as u64);
    let mut res = vec![FaultResolution::Retry; faults.len()];
    // (page, fault index) for every valid fault; sorted, equal pages are duplicates.
    let mut recs: Vec<(PageKey, u32)> = Vec::with_capacity(faults.len());
    let cap;
    {
        let g = inner.lock();
        let Some(slot) = g.devices.get(dev.0 as usize) else {
            for (r, f) in res.iter_mut().zip(faults) {
                *r = FaultResolution::Abort(FaultError::UnknownDevice { va: f.va, dev: dev.0 });
            }
            return res;
        };
        if slot.lost {
            for (r, f) in res.iter_mut().zip(faults) {
                *r = FaultResolution::Abort(FaultError::DeviceLost { va: f.va, dev: dev.0 });
            }
            return res;
        }
        cap = (slot.buddy.total_pages() as usize / 2).clamp(1, 4096);
        for (i, f) in faults.iter().enumerate() {
            let Some(&s) = slot.asids.get(&f.asid) else {
                res[i] = FaultResolution::Abort(FaultError::UnknownAsid { va: f.va, asid: f.asid.0 });
                continue;
            };
            let managed = g.spaces.get(&s).and_then(|sp| sp.region_of(f.va)).is_some_and(|r| !r.dying);
            if !managed {
                res[i] = FaultResolution::Abort(FaultError::NotManaged { va: f.va });
                continue;
            }
            recs.push(((s, f.va / PAGE_SIZE), i as u32));
        }
    }
    recs.sort_unstable();
    // One representative per page (the strongest access wins); `groups[k]` is the range
    // of `recs` behind `items[k]`.
    let mut items: Vec<(PageKey, bool)> = Vec::with_capacity(recs.len());
    let mut groups: Vec<(usize, usize)> = Vec::with_capacity(recs.len());
    for (j, &(key, i)) in recs.iter().enumerate() {
        let write = faults[i as usize].access == Access::Write;
        match items.last_mut() {
            Some((k, w)) if *k == key => {
                *w |= write;
                if let Some(g) = groups.last_mut() {
                    g.1 = j + 1;
                }
            }
            _ => {
                items.push((key, write));
                groups.push((j, j + 1));
            }
        }
    }
    add(&inner.counters.duplicate_faults, (recs.len() - items.len()) as u64);
    tracing::debug!(target: "gmem", dev = dev.0, faults = faults.len(), pages = items.len(), "fault batch");
    for (slice, gslice) in items.chunks(cap).zip(groups.chunks(cap)) {
        let outcomes = retry_or_fall_back(inner, dev, slice, to_device(inner, dev, slice, true));
        for (&(from, to), out) in gslice.iter().zip(outcomes) {
            for &(_, i) in &recs[from..to] {
                let i = i as usize;
                // Report the faulting address exactly as the device gave it.
                let va = faults[i].va;
                res[i] = match &out {
                    Outcome::Done | Outcome::Retry => FaultResolution::Retry,
                    Outcome::NotManaged => FaultResolution::Abort(FaultError::NotManaged { va }),
                    Outcome::Abort(source) => {
                        FaultResolution::Abort(FaultError::Migration { va, source: source.clone() })
                    }
                };
            }
        }
    }
    let aborts = res.iter().filter(|r| !r.is_retry()).count();
    add(&inner.counters.fault_aborts, aborts as u64);
    res
}

/// Chunks of which `migrate` moves all 512 pages (none duplicated): each wants a free
/// 2 MiB block (see `migrate_in::collect`).
fn whole_chunks(migrate: &[Mig]) -> usize {
    let mut per_chunk: FastMap<(u32, u64), u64> = FastMap::default();
    for m in migrate.iter().filter(|m| !m.dup) {
        *per_chunk.entry((m.key.0, m.key.1 / crate::mmu::PAGES_PER_HUGE)).or_default() += 1;
    }
    per_chunk.values().filter(|&&n| n == crate::mmu::PAGES_PER_HUGE).count()
}

/// Whether a failed migration is the device's doing (worth another try).
fn device_error(e: &MigrateError) -> bool {
    matches!(
        e,
        MigrateError::Copy { .. }
            | MigrateError::Map { .. }
            | MigrateError::Prepare { .. }
            | MigrateError::AllocPage { .. }
            | MigrateError::Unmap { .. }
            | MigrateError::Invalidate { .. }
    )
}

/// A device fault whose migration failed with a device error is answered retry (the
/// page is still valid where it was) up to [`crate::Config::dev_fault_dma_retries`]
/// times in a row; then it falls back to a remote mapping on a device that maps host
/// memory (the next fault takes it, see `to_device`), or is aborted.
fn retry_or_fall_back(inner: &Inner, dev: DeviceId, items: &[(PageKey, bool)], mut outs: Vec<Outcome>) -> Vec<Outcome> {
    let mut g = inner.lock();
    let remote_ok = g.devices[dev.0 as usize].info.hooks.contains(Hooks::HOST_MAPPING);
    let retries = inner.cfg.dev_fault_dma_retries;
    for ((key, _), out) in items.iter().zip(outs.iter_mut()) {
        match out {
            Outcome::Done => {
                g.dma_failures.remove(key);
            }
            Outcome::Abort(e) if device_error(e) => {
                let n = g.dma_failures.entry(*key).or_insert(0);
                *n += 1;
                let fall_back = *n == retries + 1 && remote_ok;
                if *n <= retries || fall_back {
                    add(&inner.counters.dma_retries, 1);
                    add(&inner.counters.dma_fallbacks, u64::from(fall_back));
                    tracing::warn!(target: "gmem", va = format_args!("{:#x}", key.1 * PAGE_SIZE), error = %e, fall_back, "device fault: migration failed; retry");
                    *out = Outcome::Retry;
                } else {
                    g.dma_failures.remove(key);
                }
            }
            _ => {}
        }
    }
    outs
}

/// hmadvise(PREFETCH, device): migrate `[va, va+len)` to `dev`.
pub(crate) fn prefetch_to_device(inner: &Inner, s: u32, dev: DeviceId, va: u64, len: u64) -> Result<(), GmemError> {
    let cap = {
        let g = inner.lock();
        (g.live_dev(dev)?.buddy.total_pages() as usize / 2).clamp(1, 4096)
    };
    // Read access: pages migrate with full rights, except read-mostly ones, which are
    // duplicated. Slices are built lazily: a huge range never materialises a page list.
    let (first, end) = (va / PAGE_SIZE, (va + len) / PAGE_SIZE);
    let mut at = first;
    while at < end {
        let stop = (at + cap as u64).min(end);
        let slice: Vec<(PageKey, bool)> = (at..stop).map(|v| ((s, v), false)).collect();
        for _ in 0..8 {
            let outs = to_device(inner, dev, &slice, false);
            if let Some((i, Outcome::Abort(e))) = outs.iter().enumerate().find(|(_, o)| matches!(o, Outcome::Abort(_)))
            {
                let va = slice[i].0.1 * PAGE_SIZE;
                return Err(GmemError::Fault(FaultError::Migration { va, source: e.clone() }));
            }
            if outs.iter().all(|o| matches!(o, Outcome::Done)) {
                break;
            }
        }
        at = stop;
    }
    add(&inner.counters.advised_prefetch, len / PAGE_SIZE);
    Ok(())
}

/// Bring `items` to `dev` (see the module docs). One outcome per item.
fn to_device(inner: &Inner, dev: DeviceId, items: &[(PageKey, bool)], allow_prefetch: bool) -> Vec<Outcome> {
    let mut outcome: FastMap<PageKey, Outcome> = items.iter().map(|(k, _)| (*k, Outcome::Retry)).collect();
    let mut pending: Vec<(PageKey, bool)> = items.to_vec();
    // Commit retries, plus the re-plans that make no commit attempt: pages first fetched
    // back from another device, one whole-block eviction, an eviction to make room and a
    // wait for frames in flight. Each can happen once per call in practice; the bound
    // only keeps a pathological device from looping for ever.
    let attempts = inner.cfg.max_commit_retries + 4;
    let mut allow_prefetch = allow_prefetch;
    // Thrashing events are counted once per page per call, not per re-plan.
    let mut recorded: FastSet<PageKey> = FastSet::default();
    let mut blocks_tried = false;
    for _attempt in 0..attempts {
        if pending.is_empty() {
            break;
        }
        let mut g = inner.lock();
        let now = inner.now();
        let mut migrate: Vec<Mig> = Vec::new();
        let mut remote: Vec<(PageKey, bool)> = Vec::new();
        let mut fix: Vec<(PageKey, bool)> = Vec::new();
        let mut other: Vec<PageKey> = Vec::new();
        let mut writes: FastSet<PageKey> = FastSet::default();
        let mut spurious: Vec<PageKey> = Vec::new();
        let hooks = g.devices[dev.0 as usize].info.hooks;
        for &(key, write) in &pending {
            let (s, vpn) = key;
            let va = vpn * PAGE_SIZE;
            let st = &mut *g;
            let Some(sp) = st.spaces.get_mut(&s) else {
                outcome.insert(key, Outcome::NotManaged);
                continue;
            };
            if sp.region_of(va).is_none_or(|r| r.dying) {
                outcome.insert(key, Outcome::NotManaged);
                continue;
            }
            let e = sp.pt.get(vpn);
            if e.flags.contains(PageFlags::MIGRATING) {
                outcome.insert(key, Outcome::Retry);
                continue;
            }
            let need = if write { Prot::READ | Prot::WRITE } else { Prot::READ };
            let mine = e.dev == dev.0 && (e.on_device() || e.flags.contains(PageFlags::REMOTE));
            if mine && e.prot().contains(need) {
                // Spurious: the device TLB may hold an older, narrower entry.
                spurious.push(key);
                if e.on_device() {
                    st.devices[dev.0 as usize].lru.touch(key, e.pfn);
                }
                outcome.insert(key, Outcome::Done);
                continue;
            }
            if !mine && (e.on_device() || e.flags.contains(PageFlags::REMOTE)) {
                other.push(key);
                continue;
            }
            if mine {
                fix.push((key, write));
                continue;
            }
            // CPU-resident or never touched.
            let a = sp.attrs.get(va);
            let mut pinned = e.flags.contains(PageFlags::PINNED);
            if pinned && st.thrash.quiet(key, now) {
                sp.pt.update(vpn, |e| e.flags.remove(PageFlags::PINNED));
                st.thrash.forget(key);
                add(&inner.counters.unpins, 1);
                pinned = false;
            }
            let can_remote = hooks.contains(Hooks::HOST_MAPPING);
            let failing = st.dma_failures.get(&key).is_some_and(|&n| n > inner.cfg.dev_fault_dma_retries);
            if can_remote && (pinned || failing || a.preferred == Some(Node::Cpu) || a.accessed_by(dev)) {
                remote.push((key, write));
                continue;
            }
            if e.state == Residency::Cpu && recorded.insert(key) {
                match st.thrash.record(key, now, false, can_remote) {
                    Verdict::Migrate => {}
                    Verdict::Throttle => {
                        add(&inner.counters.throttled, 1);
                        outcome.insert(key, Outcome::Retry);
                        continue;
                    }
                    Verdict::Pin => {
                        add(&inner.counters.thrash_events, 1);
                        add(&inner.counters.pins, 1);
                        tracing::info!(target: "gmem", va = format_args!("{va:#x}"), "thrash: pinned to CPU");
                        sp.pt.update(vpn, |e| e.flags.insert(PageFlags::PINNED));
                        if can_remote {
                            remote.push((key, write));
                            continue;
                        }
                    }
                }
            }
            if write {
                writes.insert(key);
            }
            migrate.push(Mig { key, dup: !write && a.read_mostly && e.state == Residency::Cpu, prefetch: false });
        }
        // Pages on another device come to the host first, then get re-planned.
        if !other.is_empty() {
            drop(g);
            if let Err(e) = to_host(inner, &other, Cause::Advise) {
                let e = Arc::new(e);
                for k in &other {
                    outcome.insert(*k, Outcome::Abort(e.clone()));
                }
                pending.retain(|(k, _)| !other.contains(k));
            }
            continue;
        }
        let mut batches = Batches::new();
        for &(s, vpn) in &spurious {
            if let Some(asid) = g.spaces.get(&s).and_then(|sp| sp.asid_of(dev)) {
                batches.entry(dev.0).or_default().push(crate::mmu::TlbFlush::new(asid, vpn * PAGE_SIZE, PAGE_SIZE));
            }
        }
        for (key, write) in remote {
            let r = map_remote(inner, &mut g, dev, key, write);
            outcome.insert(key, r.map_or_else(|e| Outcome::Abort(Arc::new(e)), |_| Outcome::Done));
        }
        for (key, write) in fix {
            let r = fix_local(inner, &mut g, dev, key, write, &mut batches);
            outcome.insert(key, r.map_or_else(|e| Outcome::Abort(Arc::new(e)), |_| Outcome::Done));
        }
        if let Err(e) = flush_all(inner, &g, batches) {
            tracing::warn!(target: "gmem", error = %e, "flush after collapse failed");
        }
        let cap = (g.devices[dev.0 as usize].buddy.total_pages() as usize / 2).max(1);
        if allow_prefetch && !migrate.is_empty() {
            let taken: FastSet<PageKey> = pending.iter().map(|(k, _)| *k).collect();
            let faulted = migrate.len();
            let block = inner.cfg.dev_fault_block_pages.clamp(1, crate::mmu::PAGES_PER_HUGE).next_power_of_two();
            if block > 1 {
                expand_blocks(&g, dev, block, &mut migrate, &taken);
                migrate.truncate(cap.max(faulted));
            }
            if let Some(pct) = inner.cfg.prefetch_threshold_pct {
                let before = migrate.len();
                if inner.cfg.prefetch_tree {
                    expand_tree(&g, dev, pct, &mut migrate, &taken);
                } else {
                    expand(&g, dev, pct, &mut migrate, &taken);
                }
                if migrate.len() > before {
                    tracing::debug!(target: "gmem", dev = dev.0, pages = migrate.len() - before, "prefetch");
                }
                if migrate.len() > cap.max(before) {
                    migrate.truncate(cap.max(before));
                }
            }
        }
        if migrate.is_empty() {
            pending.clear();
            break;
        }
        // Everything else in `pending` is settled for this call; re-plans only revisit
        // the pages still to migrate.
        let to_migrate: FastSet<PageKey> = migrate.iter().filter(|m| !m.prefetch).map(|m| m.key).collect();
        pending.retain(|(k, _)| to_migrate.contains(k));
        // Whole chunks arrive as 2 MiB mappings only into free 2 MiB blocks: if short,
        // evict whole blocks once per call (page-granular eviction below would leave
        // every block partly used when two streams share device memory).
        let slot = &g.devices[dev.0 as usize];
        let whole = if slot.info.huge_pages && !blocks_tried { whole_chunks(&migrate) } else { 0 };
        let free_blocks = slot.buddy.free_blocks(crate::buddy::MAX_ORDER);
        if whole > free_blocks {
            blocks_tried = true;
            let exclude: FastSet<PageKey> =
                pending.iter().map(|(k, _)| *k).chain(migrate.iter().map(|m| m.key)).collect();
            drop(g);
            if evict_blocks(inner, dev, whole - free_blocks, &exclude).unwrap_or(0) > 0 {
                continue;
            }
            g = inner.lock();
        }
        // Device memory: evict LRU pages outside this batch if short.
        let free = g.devices[dev.0 as usize].buddy.free_pages() as usize;
        if migrate.len() > free {
            let exclude: FastSet<PageKey> =
                pending.iter().map(|(k, _)| *k).chain(migrate.iter().map(|m| m.key)).collect();
            let want = migrate.len() - free;
            drop(g);
            let got = evict(inner, dev, want, &exclude).unwrap_or(0);
            // The lock was dropped: the plan is stale either way, so re-plan.
            allow_prefetch = false;
            if got > 0 {
                continue;
            }
            // Nothing could be evicted. Victims exist unless every frame is in flight
            // (another thread's migration): wait for a finalize and re-plan. Only a
            // device with nothing evictable and nothing in flight can never progress.
            let g = inner.lock();
            let slot = &g.devices[dev.0 as usize];
            let inflight = g.spaces.values().any(|sp| sp.regions.values().any(|r| r.inflight > 0));
            if slot.lru.len() == 0 && !inflight && slot.buddy.free_pages() == 0 {
                let err = Arc::new(MigrateError::NoDeviceMemory { va: pending[0].0.1 * PAGE_SIZE, dev: dev.0 });
                for (k, _) in &pending {
                    if matches!(outcome.get(k), Some(Outcome::Retry)) {
                        outcome.insert(*k, Outcome::Abort(err.clone()));
                    }
                }
                break;
            }
            let _ = inner.cv.wait_timeout(g, std::time::Duration::from_millis(2));
            continue;
        }
        let planned = collect(inner, &mut g, dev, &migrate, &writes, &mut outcome);
        drop(g);
        let retry = copy_and_commit(inner, dev, planned, &mut outcome);
        pending.retain(|(k, _)| retry.contains(k));
    }
    items.iter().map(|(k, _)| outcome.get(k).cloned().unwrap_or(Outcome::Retry)).collect()
}

/// Map a CPU-resident page remotely on `dev`.
fn map_remote(inner: &Inner, st: &mut State, dev: DeviceId, key: PageKey, _write: bool) -> Result<(), MigrateError> {
    let (s, vpn) = key;
    let va = vpn * PAGE_SIZE;
    let State { devices, spaces, .. } = st;
    let Some(sp) = spaces.get_mut(&s) else { return Ok(()) };
    let Some(r) = sp.region_of(va) else { return Ok(()) };
    let target = MemAddr::Host { region: r.host, offset: va - r.start };
    let Some(asid) = sp.asid_of(dev) else { return Ok(()) };
    let e = sp.pt.get(vpn);
    if e.state == Residency::Unpopulated {
        // SAFETY: `va` is a page of a live registered region (checked under the lock).
        match unsafe { inner.cpu.install_zero(va, PAGE_SIZE) } {
            Ok(()) | Err(crate::cpu::CpuError::Install { .. }) => {}
            Err(source) => return Err(MigrateError::Install { va, source }),
        }
        sp.pt.update(vpn, |e| e.state = Residency::Cpu);
    }
    let prot = crate::mmu::RW;
    devices[dev.0 as usize].mmu.pmap_enter(asid, va, target, PageSize::Base, prot).map_err(|source| {
        add(&inner.counters.hook_errors, 1);
        MigrateError::Map { va, dev: dev.0, source }
    })?;
    sp.pt.update(vpn, |e| {
        e.flags.insert(PageFlags::REMOTE);
        e.dev = dev.0;
        e.prot = prot.bits();
    });
    add(&inner.counters.remote_maps, 1);
    Ok(())
}

/// The page is on `dev` but mapped without enough rights: collapse a read duplicate on a
/// write, or (re)map.
fn fix_local(
    inner: &Inner,
    st: &mut State,
    dev: DeviceId,
    key: PageKey,
    write: bool,
    batches: &mut Batches,
) -> Result<(), MigrateError> {
    let (s, vpn) = key;
    let va = vpn * PAGE_SIZE;
    let State { devices, spaces, .. } = st;
    let slot = &mut devices[dev.0 as usize];
    let Some(sp) = spaces.get_mut(&s) else { return Ok(()) };
    let Some(asid) = sp.asid_of(dev) else { return Ok(()) };
    let e = sp.pt.get(vpn);
    let map_err = |source| MigrateError::Map { va, dev: dev.0, source };
    if e.flags.contains(PageFlags::REMOTE) {
        let prot = crate::mmu::RW;
        let t = slot.mmu.pmap_protect(asid, va, PageSize::Base, prot).map_err(map_err)?;
        batches.entry(dev.0).or_default().push(t);
        sp.pt.update(vpn, |e| e.prot = prot.bits());
        return Ok(());
    }
    let collapse = e.state == Residency::Dup && write;
    let prot = if e.state == Residency::Dup && !write { crate::mmu::RO } else { crate::mmu::RW };
    if e.prot == 0 {
        let size = PageSize::Base;
        if e.flags.contains(PageFlags::HUGE) {
            sp.pt.update(vpn, |e| e.flags.remove(PageFlags::HUGE));
        }
        slot.mmu.pmap_enter(asid, va, MemAddr::Device(e.pa()), size, prot).map_err(|source| {
            add(&inner.counters.hook_errors, 1);
            map_err(source)
        })?;
    } else {
        let size = if e.flags.contains(PageFlags::HUGE) { PageSize::Huge } else { PageSize::Base };
        let at = if size == PageSize::Huge { va & !(HUGE_PAGE_SIZE - 1) } else { va };
        let t = slot.mmu.pmap_protect(asid, at, size, prot).map_err(|source| {
            add(&inner.counters.hook_errors, 1);
            map_err(source)
        })?;
        batches.entry(dev.0).or_default().push(t);
    }
    if collapse {
        inner.cpu.zap(va, PAGE_SIZE).map_err(|source| MigrateError::Install { va, source })?;
        add(&inner.counters.collapses, 1);
    }
    sp.pt.update(vpn, |e| {
        e.prot = prot.bits();
        if collapse {
            e.state = Residency::Device;
            e.flags.remove(PageFlags::CPU_WP);
        }
    });
    slot.lru.touch(key, e.pfn);
    Ok(())
}
