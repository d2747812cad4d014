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

use std::collections::{BTreeMap, HashMap};

use crate::hash::{FastMap, FastSet};
use std::sync::Arc;

use crate::attrs::{DeviceId, Node};
use crate::events::add;
use crate::evict::PageKey;
use crate::manager::{GmemError, Inner, State};
use crate::migrate::{Batches, Cause, MigrateError, coalesce, evict, flush_all, to_host};
use crate::mmu::{
    Asid, HUGE_PAGE_SIZE, Hooks, MemAddr, PAGE_SIZE, PAGES_PER_HUGE, PageSize, PeerMapOp, Prepare, Prot,
};
use crate::page_table::{PageFlags, Residency};
use crate::prefetch::{Mig, expand};
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
enum Outcome {
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
    let mut pages: BTreeMap<PageKey, (bool, Vec<usize>)> = BTreeMap::new();
    let cap;
    {
        let g = inner.lock();
        let Some(slot) = g.devices.get(dev.0 as usize) else {
            for (r, f) in res.iter_mut().zip(faults) {
                *r = FaultResolution::Abort(FaultError::UnknownDevice { va: f.va, dev: dev.0 });
            }
            return res;
        };
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
            let ent = pages.entry((s, f.va / PAGE_SIZE)).or_default();
            ent.0 |= f.access == Access::Write;
            ent.1.push(i);
        }
    }
    let valid: usize = pages.values().map(|(_, v)| v.len()).sum();
    add(&inner.counters.duplicate_faults, (valid - pages.len()) as u64);
    tracing::debug!(target: "gmem", dev = dev.0, faults = faults.len(), pages = pages.len(), "fault batch");
    let items: Vec<(PageKey, bool)> = pages.iter().map(|(k, (w, _))| (*k, *w)).collect();
    for slice in items.chunks(cap) {
        let outcomes = to_device(inner, dev, slice, true);
        for ((key, _), out) in slice.iter().zip(outcomes) {
            let va = key.1 * PAGE_SIZE;
            let r = match out {
                Outcome::Done | Outcome::Retry => FaultResolution::Retry,
                Outcome::NotManaged => FaultResolution::Abort(FaultError::NotManaged { va }),
                Outcome::Abort(source) => FaultResolution::Abort(FaultError::Migration { va, source }),
            };
            if let Some((_, idx)) = pages.get(key) {
                for &i in idx {
                    // Report the faulting address exactly as the device gave it.
                    res[i] = match &r {
                        FaultResolution::Abort(FaultError::NotManaged { .. }) => {
                            FaultResolution::Abort(FaultError::NotManaged { va: faults[i].va })
                        }
                        FaultResolution::Abort(FaultError::Migration { source, .. }) => {
                            FaultResolution::Abort(FaultError::Migration { va: faults[i].va, source: source.clone() })
                        }
                        other => other.clone(),
                    };
                }
            }
        }
    }
    let aborts = res.iter().filter(|r| !r.is_retry()).count();
    add(&inner.counters.fault_aborts, aborts as u64);
    res
}

/// hmadvise(PREFETCH, device): migrate `[va, va+len)` to `dev`.
pub(crate) fn prefetch_to_device(inner: &Inner, s: u32, dev: DeviceId, va: u64, len: u64) -> Result<(), GmemError> {
    let cap = {
        let g = inner.lock();
        (g.dev(dev)?.buddy.total_pages() as usize / 2).clamp(1, 4096)
    };
    let items: Vec<(PageKey, bool)> = (va / PAGE_SIZE..(va + len) / PAGE_SIZE).map(|v| ((s, v), true)).collect();
    for slice in items.chunks(cap) {
        for _ in 0..8 {
            let outs = to_device(inner, dev, slice, false);
            if let Some(Outcome::Abort(e)) = outs.iter().find(|o| matches!(o, Outcome::Abort(_))) {
                return Err(GmemError::Fault(FaultError::Migration { va, source: e.clone() }));
            }
            if outs.iter().all(|o| matches!(o, Outcome::Done)) {
                break;
            }
        }
    }
    add(&inner.counters.advised_prefetch, len / PAGE_SIZE);
    Ok(())
}

struct Planned {
    mig: Mig,
    write: bool,
    pa: u64,
    seq: u32,
    from_cpu: bool,
    zero: bool,
    huge: bool,
    done_under_lock: bool,
}

/// Bring `items` to `dev` (see the module docs). One outcome per item.
fn to_device(inner: &Inner, dev: DeviceId, items: &[(PageKey, bool)], allow_prefetch: bool) -> Vec<Outcome> {
    let mut outcome: FastMap<PageKey, Outcome> = items.iter().map(|(k, _)| (*k, Outcome::Retry)).collect();
    let mut pending: Vec<(PageKey, bool)> = items.to_vec();
    let attempts = inner.cfg.max_commit_retries + 4;
    let mut allow_prefetch = allow_prefetch;
    // Thrashing events are counted once per page per call, not per re-plan.
    let mut recorded: FastSet<PageKey> = FastSet::default();
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
        let mut spurious: Vec<u64> = Vec::new();
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
                spurious.push(va);
                if e.on_device() {
                    st.devices[dev.0 as usize].lru.touch(key);
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
            if can_remote && (pinned || a.preferred == Some(Node::Cpu) || a.accessed_by(dev)) {
                remote.push((key, write));
                continue;
            }
            if e.state == Residency::Cpu && recorded.insert(key) {
                match st.thrash.record(key, now) {
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
        if !spurious.is_empty() {
            // One range per space is enough: pending is sorted, all in one space per key.
            if let Some(asid) = g.spaces.get(&pending[0].0.0).and_then(|sp| sp.asid_of(dev)) {
                let b = batches.entry(dev.0).or_default();
                for va in &spurious {
                    b.push(crate::mmu::TlbFlush::new(asid, *va, PAGE_SIZE));
                }
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
            if let Some(pct) = inner.cfg.prefetch_threshold_pct {
                let taken: FastSet<PageKey> = pending.iter().map(|(k, _)| *k).collect();
                let before = migrate.len();
                expand(&g, dev, pct, &mut migrate, &taken);
                if migrate.len() > cap.max(before) {
                    migrate.truncate(cap.max(before));
                }
            }
        }
        if migrate.is_empty() {
            pending.clear();
            break;
        }
        // Device memory: evict LRU pages outside this batch if short.
        let free = g.devices[dev.0 as usize].buddy.free_pages() as usize;
        if migrate.len() > free {
            let exclude: FastSet<PageKey> =
                pending.iter().map(|(k, _)| *k).chain(migrate.iter().map(|m| m.key)).collect();
            let want = migrate.len() - free;
            drop(g);
            let got = evict(inner, dev, want, &exclude).unwrap_or(0);
            if got > 0 {
                continue;
            }
            g = inner.lock();
            let free = g.devices[dev.0 as usize].buddy.free_pages() as usize;
            migrate.retain(|m| !m.prefetch);
            allow_prefetch = false;
            if migrate.len() > free {
                // Keep what fits; the rest answer retry (the device replays them after
                // the pages it now has were used or evicted).
                for m in migrate.drain(free..) {
                    outcome.insert(m.key, Outcome::Retry);
                }
                if migrate.is_empty() {
                    let err = Arc::new(MigrateError::NoDeviceMemory { va: pending[0].0.1 * PAGE_SIZE, dev: dev.0 });
                    let inflight = g.spaces.values().any(|sp| sp.regions.values().any(|r| r.inflight > 0));
                    if !inflight {
                        for (k, _) in &pending {
                            if matches!(outcome.get(k), Some(Outcome::Retry)) {
                                outcome.insert(*k, Outcome::Abort(err.clone()));
                            }
                        }
                    }
                    break;
                }
            }
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
    let prot = Prot::READ | Prot::WRITE;
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
fn fix_local(inner: &Inner, st: &mut State, dev: DeviceId, key: PageKey, write: bool, batches: &mut Batches) -> Result<(), MigrateError> {
    let (s, vpn) = key;
    let va = vpn * PAGE_SIZE;
    let State { devices, spaces, .. } = st;
    let slot = &mut devices[dev.0 as usize];
    let Some(sp) = spaces.get_mut(&s) else { return Ok(()) };
    let Some(asid) = sp.asid_of(dev) else { return Ok(()) };
    let e = sp.pt.get(vpn);
    let map_err = |source| MigrateError::Map { va, dev: dev.0, source };
    if e.flags.contains(PageFlags::REMOTE) {
        let prot = Prot::READ | Prot::WRITE;
        let t = slot.mmu.pmap_protect(asid, va, PageSize::Base, prot).map_err(map_err)?;
        batches.entry(dev.0).or_default().push(t);
        sp.pt.update(vpn, |e| e.prot = prot.bits());
        return Ok(());
    }
    let collapse = e.state == Residency::Dup && write;
    let prot = if e.state == Residency::Dup && !write { Prot::READ } else { Prot::READ | Prot::WRITE };
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
    slot.lru.touch(key);
    Ok(())
}

/// Phase 1: frames, CPU write protection, MIGRATING marks; first-touch pages with
/// `peer_map` finish here.
fn collect(
    inner: &Inner,
    g: &mut State,
    dev: DeviceId,
    migrate: &[Mig],
    writes: &FastSet<PageKey>,
    outcome: &mut FastMap<PageKey, Outcome>,
) -> Vec<Planned> {
    let State { devices, spaces, .. } = g;
    let slot = &mut devices[dev.0 as usize];
    let huge_ok = slot.info.huge_pages;
    // Group by chunk to find whole chunks.
    let mut by_chunk: BTreeMap<(u32, u64), Vec<&Mig>> = BTreeMap::new();
    for m in migrate {
        by_chunk.entry((m.key.0, m.key.1 / PAGES_PER_HUGE)).or_default().push(m);
    }
    let mut planned = Vec::new();
    for ((s, _chunk), mut ms) in by_chunk {
        ms.sort_by_key(|m| m.key);
        let Some(sp) = spaces.get_mut(&s) else { continue };
        let whole = huge_ok && ms.len() as u64 == PAGES_PER_HUGE && ms.iter().all(|m| !m.dup);
        let block = if whole { slot.buddy.alloc(crate::buddy::MAX_ORDER) } else { None };
        for (i, m) in ms.iter().enumerate() {
            let (_, vpn) = m.key;
            let va = vpn * PAGE_SIZE;
            let pa = match block {
                Some(b) => b + i as u64 * PAGE_SIZE,
                None => match slot.buddy.alloc(0) {
                    Some(p) => p,
                    None => {
                        outcome.insert(m.key, Outcome::Retry);
                        continue;
                    }
                },
            };
            if slot.info.hooks.contains(Hooks::PAGE_NOTIFY) {
                if let Err(source) = slot.mmu.alloc_page(pa, PageSize::Base) {
                    add(&inner.counters.hook_errors, 1);
                    let _ = slot.buddy.free(pa, 0);
                    outcome.insert(m.key, Outcome::Abort(Arc::new(MigrateError::AllocPage { dev: dev.0, pa, source })));
                    continue;
                }
            }
            let e = sp.pt.get(vpn);
            let from_cpu = e.state == Residency::Cpu;
            let ne = sp.pt.update(vpn, |e| {
                e.flags.insert(PageFlags::MIGRATING | PageFlags::FROM_CPU);
                if from_cpu {
                    e.flags.insert(PageFlags::CPU_WP);
                }
            });
            if let Some(r) = sp.region_of_mut(va) {
                r.inflight += 1;
            }
            planned.push(Planned {
                mig: **m,
                write: writes.contains(&m.key),
                pa,
                seq: ne.seq,
                from_cpu,
                zero: !from_cpu,
                huge: block.is_some(),
                done_under_lock: false,
            });
        }
    }
    // Write-protect the CPU copies being copied out, in runs (one ioctl per run).
    let mut runs: Vec<(u32, u64, u64, Vec<usize>)> = Vec::new();
    for (i, p) in planned.iter().enumerate() {
        if !p.from_cpu {
            continue;
        }
        let (s, vpn) = p.mig.key;
        match runs.last_mut() {
            Some((rs, start, n, idx)) if *rs == s && *start + *n == vpn => {
                *n += 1;
                idx.push(i);
            }
            _ => runs.push((s, vpn, 1, vec![i])),
        }
    }
    let mut dropped: FastSet<usize> = FastSet::default();
    for (s, start, n, idx) in runs {
        if let Err(source) = inner.cpu.protect(start * PAGE_SIZE, n * PAGE_SIZE) {
            let err = Arc::new(MigrateError::Install { va: start * PAGE_SIZE, source });
            for i in idx {
                let p = &planned[i];
                crate::migrate::free_frame(slot, p.pa);
                if let Some(sp) = spaces.get_mut(&s) {
                    sp.pt.update(p.mig.key.1, |e| {
                        e.flags.remove(PageFlags::MIGRATING | PageFlags::FROM_CPU | PageFlags::CPU_WP)
                    });
                    if let Some(r) = sp.region_of_mut(p.mig.key.1 * PAGE_SIZE) {
                        r.inflight = r.inflight.saturating_sub(1);
                    }
                }
                outcome.insert(p.mig.key, Outcome::Abort(err.clone()));
                dropped.insert(i);
            }
        }
    }
    if !dropped.is_empty() {
        let mut i = 0;
        planned.retain(|_| {
            i += 1;
            !dropped.contains(&(i - 1))
        });
    }
    // First-touch pages: one peer_map call, under the lock (no other copy can race).
    if slot.info.hooks.contains(Hooks::PEER_MAP) {
        let mut by_space: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, p) in planned.iter().enumerate() {
            if p.zero && !p.huge {
                by_space.entry(p.mig.key.0).or_default().push(i);
            }
        }
        for (s, idx) in by_space {
            let Some(asid) = spaces.get(&s).and_then(|sp| sp.asid_of(dev)) else { continue };
            let ops: Vec<PeerMapOp> = idx
                .iter()
                .map(|&i| PeerMapOp {
                    va: planned[i].mig.key.1 * PAGE_SIZE,
                    pa: planned[i].pa,
                    size: PageSize::Base,
                    prot: Prot::READ | Prot::WRITE,
                    fill: Prepare::Zero,
                })
                .collect();
            match slot.mmu.peer_map(asid, &ops) {
                Ok(()) => idx.iter().for_each(|&i| planned[i].done_under_lock = true),
                Err(e) => {
                    add(&inner.counters.hook_errors, 1);
                    tracing::warn!(target: "gmem", error = %e, "peer_map failed; falling back to prepare+enter");
                }
            }
        }
    }
    planned
}

/// Phases 2-4. Returns the pages to retry (sequence number changed).
fn copy_and_commit(inner: &Inner, dev: DeviceId, planned: Vec<Planned>, outcome: &mut FastMap<PageKey, Outcome>) -> FastSet<PageKey> {
    let mut retry = FastSet::default();
    if planned.is_empty() {
        return retry;
    }
    // Phase 2: copy (lock dropped).
    let (mmu, hosts) = {
        let g = inner.lock();
        let mmu = g.devices[dev.0 as usize].mmu.clone();
        let hosts: Vec<Option<(crate::mmu::HostRegionId, u64)>> = planned
            .iter()
            .map(|p| {
                let va = p.mig.key.1 * PAGE_SIZE;
                g.spaces.get(&p.mig.key.0).and_then(|sp| sp.region_of(va)).map(|r| (r.host, va - r.start))
            })
            .collect();
        (mmu, hosts)
    };
    let ops = coalesce(planned.iter().zip(&hosts).filter(|(p, _)| p.from_cpu).filter_map(|(p, h)| {
        h.map(|(region, offset)| (MemAddr::Host { region, offset }, MemAddr::Device(p.pa)))
    }));
    let copy_err = if ops.is_empty() {
        None
    } else {
        mmu.copy_batch(&ops).err().map(|source| {
            add(&inner.counters.hook_errors, 1);
            let va = planned.iter().find(|p| p.from_cpu).map_or(0, |p| p.mig.key.1 * PAGE_SIZE);
            Arc::new(MigrateError::Copy { va, dev: dev.0, source })
        })
    };
    let mut prep_err: HashMap<usize, Arc<MigrateError>> = HashMap::new();
    let mut zeroed_huge: FastSet<u64> = FastSet::default();
    for (i, p) in planned.iter().enumerate() {
        if !p.zero || p.done_under_lock {
            continue;
        }
        let r = if p.huge {
            let block = p.pa & !(HUGE_PAGE_SIZE - 1);
            let all_zero = planned.iter().filter(|q| q.huge && q.pa & !(HUGE_PAGE_SIZE - 1) == block).all(|q| q.zero);
            if all_zero {
                if !zeroed_huge.insert(block) {
                    continue;
                }
                mmu.prepare_page(block, PageSize::Huge, Prepare::Zero)
            } else {
                mmu.prepare_page(p.pa, PageSize::Base, Prepare::Zero)
            }
        } else {
            mmu.prepare_page(p.pa, PageSize::Base, Prepare::Zero)
        };
        if let Err(source) = r {
            add(&inner.counters.hook_errors, 1);
            prep_err.insert(i, Arc::new(MigrateError::Prepare { va: p.mig.key.1 * PAGE_SIZE, dev: dev.0, source }));
        }
    }

    // Phase 3: commit.
    let mut g = inner.lock();
    let st = &mut *g;
    let mut ok: Vec<usize> = Vec::new();
    let mut failed: Vec<(usize, Option<Arc<MigrateError>>)> = Vec::new();
    for (i, p) in planned.iter().enumerate() {
        let (s, vpn) = p.mig.key;
        let cur = st.spaces.get(&s).map(|sp| sp.pt.get(vpn));
        let err = if p.from_cpu { copy_err.clone() } else { prep_err.get(&i).cloned() };
        if let Some(e) = err {
            failed.push((i, Some(e)));
        } else if cur.is_none_or(|c| c.seq != p.seq) {
            add(&inner.counters.seq_retries, 1);
            retry.insert(p.mig.key);
            failed.push((i, None));
        } else {
            ok.push(i);
        }
    }
    // Map: whole chunks with one huge mapping, the rest page by page.
    let mut huge_blocks: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for &i in &ok {
        if planned[i].huge {
            huge_blocks.entry(planned[i].pa & !(HUGE_PAGE_SIZE - 1)).or_default().push(i);
        }
    }
    let mut mapped_huge: FastSet<usize> = FastSet::default();
    let slot_mmu = st.devices[dev.0 as usize].mmu.clone();
    for (_, idx) in huge_blocks {
        if idx.len() as u64 != PAGES_PER_HUGE {
            continue;
        }
        let (s, vpn0) = planned[idx[0]].mig.key;
        let Some(asid) = st.spaces.get(&s).and_then(|sp| sp.asid_of(dev)) else { continue };
        let va = vpn0 * PAGE_SIZE & !(HUGE_PAGE_SIZE - 1);
        let pa = planned[idx[0]].pa & !(HUGE_PAGE_SIZE - 1);
        if slot_mmu.pmap_enter(asid, va, MemAddr::Device(pa), PageSize::Huge, Prot::READ | Prot::WRITE).is_ok() {
            mapped_huge.extend(idx);
            add(&inner.counters.huge_maps, 1);
        }
    }
    let mut committed = Vec::new();
    for &i in &ok {
        let p = &planned[i];
        let (s, vpn) = p.mig.key;
        let va = vpn * PAGE_SIZE;
        let prot = if p.mig.dup { Prot::READ } else { Prot::READ | Prot::WRITE };
        if !mapped_huge.contains(&i) && !p.done_under_lock {
            let Some(asid) = st.spaces.get(&s).and_then(|sp| sp.asid_of(dev)) else {
                failed.push((i, None));
                continue;
            };
            if let Err(source) = slot_mmu.pmap_enter(asid, va, MemAddr::Device(p.pa), PageSize::Base, prot) {
                add(&inner.counters.hook_errors, 1);
                failed.push((i, Some(Arc::new(MigrateError::Map { va, dev: dev.0, source }))));
                continue;
            }
        }
        committed.push(i);
    }
    // Drop the CPU copies of moved (not duplicated) pages, in runs.
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &i in &committed {
        let p = &planned[i];
        if p.from_cpu && !p.mig.dup {
            let va = p.mig.key.1 * PAGE_SIZE;
            match runs.last_mut() {
                Some((s, l)) if *s + *l == va => *l += PAGE_SIZE,
                _ => runs.push((va, PAGE_SIZE)),
            }
        }
    }
    for (va, len) in runs {
        if let Err(e) = inner.cpu.zap(va, len) {
            tracing::error!(target: "gmem", error = %e, "dropping CPU copies");
        }
    }
    let now = inner.now();
    let _ = now;
    for &i in &committed {
        let p = &planned[i];
        let (s, vpn) = p.mig.key;
        let huge = mapped_huge.contains(&i);
        let prot = if p.mig.dup { Prot::READ } else { Prot::READ | Prot::WRITE };
        if let Some(sp) = st.spaces.get_mut(&s) {
            sp.pt.update(vpn, |e| {
                e.state = if p.mig.dup { Residency::Dup } else { Residency::Device };
                e.dev = dev.0;
                e.pfn = (p.pa / PAGE_SIZE) as u32;
                e.prot = prot.bits();
                e.flags.remove(PageFlags::MIGRATING | PageFlags::FROM_CPU | PageFlags::REMOTE);
                e.flags.set(PageFlags::HUGE, huge);
                if !p.mig.dup {
                    e.flags.remove(PageFlags::CPU_WP);
                }
            });
            if let Some(r) = sp.region_of_mut(vpn * PAGE_SIZE) {
                r.inflight = r.inflight.saturating_sub(1);
            }
        }
        st.devices[dev.0 as usize].lru.touch(p.mig.key);
        if p.from_cpu {
            add(&inner.counters.pages_h2d, 1);
        } else {
            add(&inner.counters.zero_fills, 1);
        }
        if p.mig.dup {
            add(&inner.counters.read_dups, 1);
        }
        if p.mig.prefetch {
            add(&inner.counters.prefetched, 1);
        }
        let _ = p.write;
        outcome.insert(p.mig.key, Outcome::Done);
    }
    // Phase 4: roll back failures (data stays on the CPU; frames return).
    let mut batches = Batches::new();
    for (i, err) in failed {
        let p = &planned[i];
        let (s, vpn) = p.mig.key;
        let va = vpn * PAGE_SIZE;
        if p.done_under_lock {
            if let Some(asid) = st.spaces.get(&s).and_then(|sp| sp.asid_of(dev)) {
                if let Ok(t) = slot_mmu.pmap_release(asid, va, PageSize::Base) {
                    batches.entry(dev.0).or_default().push(t);
                }
            }
        }
        crate::migrate::free_frame(&mut st.devices[dev.0 as usize], p.pa);
        if let Some(sp) = st.spaces.get_mut(&s) {
            let e = sp.pt.get(vpn);
            let unprotect = e.flags.contains(PageFlags::CPU_WP) && e.state == Residency::Cpu;
            sp.pt.update(vpn, |e| {
                e.flags.remove(PageFlags::MIGRATING | PageFlags::FROM_CPU);
                if unprotect {
                    e.flags.remove(PageFlags::CPU_WP);
                }
            });
            if unprotect {
                if let Err(e) = inner.cpu.unprotect(va, PAGE_SIZE) {
                    tracing::error!(target: "gmem", error = %e, "rollback unprotect");
                }
            }
            if let Some(r) = sp.region_of_mut(va) {
                r.inflight = r.inflight.saturating_sub(1);
            }
        }
        if let Some(e) = err {
            outcome.insert(p.mig.key, Outcome::Abort(e));
        }
    }
    if let Err(e) = flush_all(inner, st, batches) {
        tracing::error!(target: "gmem", error = %e, "rollback flush");
    }
    inner.cv.notify_all();
    tracing::debug!(target: "gmem", dev = dev.0, pages = committed.len(), retry = retry.len(), "migrate to device");
    retry
}
