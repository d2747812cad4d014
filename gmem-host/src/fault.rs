//! Device fault batches: what to do with each faulted page, and the host → device
//! migration that follows.
//!
//! A device hands [`Gmem::dev_fault`](crate::Gmem::dev_fault) a batch of
//! [`DeviceFault`]s (what its fault queue holds: ASID, VA, access, requester tag) and gets
//! one [`FaultResolution`] per fault, in the same order, to put in its replay command.
//!
//! The batch is validated, de-duplicated (one representative per page, the strongest
//! access wins), sorted by address and processed in slices no larger than half the
//! device memory so that a batch larger than the device still completes. For each
//! slice the pages are classified (already mapped, collapse a read duplicate, map
//! remotely, migrate, fetch from another device; the thrashing detector may throttle or
//! pin), dense 2 MiB chunks gain prefetches ([`crate::prefetch`]), device memory is made
//! by evicting LRU pages outside the batch ([`crate::evict`]), and the migration runs in
//! the phases of `migrate::to_device`:
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

use std::sync::{Arc, MutexGuard};

use crate::error::MigrateError;
use crate::events::add;
use crate::hash::{FastMap, FastSet};
use crate::migrate::early::EarlyAnswers;
use crate::migrate::mapping::{Batches, flush_all};
use crate::migrate::reclaim::{evict, evict_blocks};
use crate::migrate::to_device::{Outcome, collect, copy_and_commit};
use crate::migrate::to_host::{Cause, to_host};
use crate::mmu::{Asid, HUGE_PAGE_SIZE, Hooks, MemAddr, PAGE_SIZE, PAGES_PER_HUGE, PageSize, Prot, RO, RW, TlbFlush};
use crate::page_table::{PageFlags, Residency};
use crate::prefetch::{Mig, expand, expand_blocks, expand_tree};
use crate::state::{Inner, State};
use crate::thrash::Verdict;
use crate::types::{DeviceId, Node, PageKey};

pub use crate::error::FaultError;

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

/// A faulted page and whether a fault on it writes.
pub(crate) type Item = (PageKey, bool);

/// Handle one batch (see the module docs).
pub(crate) fn handle_batch(inner: &Inner, dev: DeviceId, faults: &[DeviceFault]) -> Vec<FaultResolution> {
    add(&inner.counters.fault_batches, 1);
    add(&inner.counters.faults, faults.len() as u64);
    let mut res = vec![FaultResolution::Retry; faults.len()];
    let Some((mut recs, cap)) = validate(inner, dev, faults, &mut res) else { return res };
    recs.sort_unstable();
    let (items, groups) = representatives(&recs, faults);
    add(&inner.counters.duplicate_faults, (recs.len() - items.len()) as u64);
    tracing::debug!(target: "gmem", dev = dev.0, faults = faults.len(), pages = items.len(), "fault batch");
    let needs = |i: usize| if faults[i].access == Access::Write { Prot::WRITE } else { Prot::READ };
    let mut early = EarlyAnswers::new(recs.iter().map(|&(key, i)| (key, needs(i as usize), i as usize)).collect());
    for (slice, gslice) in items.chunks(cap).zip(groups.chunks(cap)) {
        let outcomes = retry_or_fall_back(inner, dev, slice, to_device(inner, dev, slice, true, Some(&mut early)));
        for (&(from, to), out) in gslice.iter().zip(outcomes) {
            for &(_, i) in &recs[from..to] {
                let i = i as usize;
                // Report the faulting address exactly as the device gave it.
                let va = faults[i].va;
                res[i] = match &out {
                    Outcome::Done | Outcome::Retry => FaultResolution::Retry,
                    Outcome::NotManaged => FaultResolution::Abort(FaultError::NotManaged { va }),
                    // A read sharing the page with a refused write is replayed on its own.
                    Outcome::Denied(allowed) if faults[i].access != Access::Write && allowed.contains(Prot::READ) => {
                        FaultResolution::Retry
                    }
                    Outcome::Denied(allowed) => FaultResolution::Abort(FaultError::Protection {
                        va,
                        write: faults[i].access == Access::Write,
                        allowed: *allowed,
                    }),
                    Outcome::Abort(source) => {
                        FaultResolution::Abort(FaultError::Migration { va, source: source.clone() })
                    }
                };
            }
        }
    }
    for &i in early.reported() {
        res[i] = FaultResolution::Retry;
    }
    let aborts = res.iter().filter(|r| !r.is_retry()).count();
    add(&inner.counters.fault_aborts, aborts as u64);
    res
}

/// Check the batch: an unknown or lost device aborts every fault (`None`); a fault with
/// an unknown ASID or outside a live region is aborted in `res`. Returns (page, fault
/// index) for every valid fault, and the slice size (half the device memory, at most
/// 4096 pages).
fn validate(
    inner: &Inner,
    dev: DeviceId,
    faults: &[DeviceFault],
    res: &mut [FaultResolution],
) -> Option<(Vec<(PageKey, u32)>, usize)> {
    let g = inner.lock();
    let Some(slot) = g.devices.get(dev.0 as usize) else {
        for (r, f) in res.iter_mut().zip(faults) {
            *r = FaultResolution::Abort(FaultError::UnknownDevice { va: f.va, dev: dev.0 });
        }
        return None;
    };
    if slot.lost {
        for (r, f) in res.iter_mut().zip(faults) {
            *r = FaultResolution::Abort(FaultError::DeviceLost { va: f.va, dev: dev.0 });
        }
        return None;
    }
    let cap = (slot.buddy.total_pages() as usize / 2).clamp(1, 4096);
    let mut recs: Vec<(PageKey, u32)> = Vec::with_capacity(faults.len());
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
    Some((recs, cap))
}

/// One representative per page of the sorted `recs` (the strongest access wins), and
/// for each the range of `recs` behind it.
fn representatives(recs: &[(PageKey, u32)], faults: &[DeviceFault]) -> (Vec<Item>, Vec<(usize, usize)>) {
    let mut items: Vec<Item> = Vec::with_capacity(recs.len());
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
    (items, groups)
}

/// Chunks of which `migrate` moves all 512 pages (none duplicated): each wants a free
/// 2 MiB block (see `crate::migrate::to_device::allocate`).
fn whole_chunks(migrate: &[Mig]) -> usize {
    let mut per_chunk: FastMap<(u32, u64), u64> = FastMap::default();
    for m in migrate.iter().filter(|m| !m.dup) {
        *per_chunk.entry((m.key.0, m.key.1 / PAGES_PER_HUGE)).or_default() += 1;
    }
    per_chunk.values().filter(|&&n| n == PAGES_PER_HUGE).count()
}

/// Whether a failed migration is the device's doing (worth another try).
pub(crate) fn device_error(e: &MigrateError) -> bool {
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
fn retry_or_fall_back(inner: &Inner, dev: DeviceId, items: &[Item], mut outs: Vec<Outcome>) -> Vec<Outcome> {
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

/// Bring `items` to `dev` (see the module docs). One outcome per item.
/// With `early` (a fault batch), faults a pipelined migration resolves part-way are
/// reported to the device as each part commits ([`crate::mmu::GmMmu::faults_resolved`]).
pub(crate) fn to_device(
    inner: &Inner,
    dev: DeviceId,
    items: &[Item],
    allow_prefetch: bool,
    mut early: Option<&mut EarlyAnswers>,
) -> Vec<Outcome> {
    let mut outcome: FastMap<PageKey, Outcome> = items.iter().map(|(k, _)| (*k, Outcome::Retry)).collect();
    let mut pending: Vec<Item> = items.to_vec();
    // Commit retries, plus the re-plans that make no commit attempt: pages first fetched
    // back from another device, one whole-block eviction, an eviction to make room and a
    // wait for frames in flight. Each can happen once per call in practice; the bound
    // only keeps a pathological device from looping for ever.
    let attempts = inner.cfg.max_commit_retries + 4;
    let mut allow_prefetch = allow_prefetch;
    // Thrashing events are counted once per page per call, not per re-plan.
    let mut recorded: FastSet<PageKey> = FastSet::with_capacity_and_hasher(items.len(), Default::default());
    let mut blocks_tried = false;
    for _attempt in 0..attempts {
        if pending.is_empty() {
            break;
        }
        let mut g = inner.lock();
        let Plan { mut migrate, remote, fix, other, spurious } =
            classify(inner, &mut g, dev, &pending, &mut recorded, &mut outcome);
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
        resolve_in_place(inner, &mut g, dev, &spurious, &remote, &fix, &mut outcome);
        if allow_prefetch && !migrate.is_empty() {
            add_prefetch(inner, &g, dev, &pending, &mut migrate);
        }
        if migrate.is_empty() {
            pending.clear();
            break;
        }
        // Everything else in `pending` is settled for this call; re-plans only revisit
        // the pages still to migrate.
        let mut to_migrate: FastSet<PageKey> = FastSet::with_capacity_and_hasher(migrate.len(), Default::default());
        to_migrate.extend(migrate.iter().filter(|m| !m.prefetch).map(|m| m.key));
        pending.retain(|(k, _)| to_migrate.contains(k));
        let mut g = match make_room(inner, g, dev, &migrate, &pending, &mut blocks_tried) {
            Room::Ready(g) => g,
            Room::Replan => continue,
            Room::Stale => {
                // The lock was dropped: the plan is stale either way, so re-plan.
                allow_prefetch = false;
                continue;
            }
            Room::Exhausted => {
                let err = Arc::new(MigrateError::NoDeviceMemory { va: pending[0].0.1 * PAGE_SIZE, dev: dev.0 });
                for (k, _) in &pending {
                    if matches!(outcome.get(k), Some(Outcome::Retry)) {
                        outcome.insert(*k, Outcome::Abort(err.clone()));
                    }
                }
                break;
            }
        };
        let planned = collect(inner, &mut g, dev, &migrate, &mut outcome);
        drop(g);
        let retry = copy_and_commit(inner, dev, planned, &mut outcome, early.as_deref_mut());
        pending.retain(|(k, _)| retry.contains(k));
    }
    items.iter().map(|(k, _)| outcome.get(k).cloned().unwrap_or(Outcome::Retry)).collect()
}

/// One planning round of [`to_device`]: what to do with each pending page.
#[derive(Default)]
struct Plan {
    /// Pages to migrate to the device (prefetches join later).
    migrate: Vec<Mig>,
    /// CPU-resident pages to map remotely (with the fault's write access).
    remote: Vec<Item>,
    /// Pages on this device mapped without enough rights.
    fix: Vec<Item>,
    /// Pages held by another device: they come to the host first.
    other: Vec<PageKey>,
    /// Pages already mapped as needed (a stale device TLB entry).
    spurious: Vec<PageKey>,
}

/// Where one pending page goes in a [`Plan`].
enum Class {
    /// Answered now.
    Settled(Outcome),
    /// See [`Plan::spurious`] (answered done).
    Spurious,
    /// See [`Plan::other`].
    Other,
    /// See [`Plan::fix`].
    Fix,
    /// See [`Plan::remote`].
    Remote,
    /// See [`Plan::migrate`].
    Migrate(Mig),
}

/// Classify every pending page (lock held).
fn classify(
    inner: &Inner,
    g: &mut State,
    dev: DeviceId,
    pending: &[Item],
    recorded: &mut FastSet<PageKey>,
    outcome: &mut FastMap<PageKey, Outcome>,
) -> Plan {
    let now = inner.now();
    let mut plan = Plan::default();
    for &(key, write) in pending {
        match classify_page(inner, g, dev, key, write, now, recorded) {
            Class::Settled(o) => {
                outcome.insert(key, o);
            }
            Class::Spurious => {
                plan.spurious.push(key);
                outcome.insert(key, Outcome::Done);
            }
            Class::Other => plan.other.push(key),
            Class::Fix => plan.fix.push((key, write)),
            Class::Remote => plan.remote.push((key, write)),
            Class::Migrate(m) => plan.migrate.push(m),
        }
    }
    plan
}

/// Where the page `key` is relative to `dev`: not managed, busy, already mapped as
/// needed, on another device, on `dev` with too few rights; a CPU-resident or untouched
/// page goes to [`cpu_page`].
fn classify_page(
    inner: &Inner,
    st: &mut State,
    dev: DeviceId,
    key: PageKey,
    write: bool,
    now: u64,
    recorded: &mut FastSet<PageKey>,
) -> Class {
    let (s, vpn) = key;
    let Some(sp) = st.spaces.get(&s) else { return Class::Settled(Outcome::NotManaged) };
    if sp.region_of(vpn * PAGE_SIZE).is_none_or(|r| r.dying) {
        return Class::Settled(Outcome::NotManaged);
    }
    let need = if write { Prot::READ | Prot::WRITE } else { Prot::READ };
    let allowed = sp.attrs.get(vpn * PAGE_SIZE).prot;
    if !allowed.contains(need) {
        return Class::Settled(Outcome::Denied(allowed));
    }
    let e = sp.pt.get(vpn);
    if e.flags.contains(PageFlags::MIGRATING) {
        return Class::Settled(Outcome::Retry);
    }
    let mine = e.dev == dev.0 && (e.on_device() || e.flags.contains(PageFlags::REMOTE));
    if mine && e.prot().contains(need) {
        // Spurious: the device TLB may hold an older, narrower entry.
        if e.on_device() {
            st.devices[dev.0 as usize].lru.touch(key, e.pfn);
        }
        return Class::Spurious;
    }
    if !mine && (e.on_device() || e.flags.contains(PageFlags::REMOTE)) {
        return Class::Other;
    }
    if mine {
        return Class::Fix;
    }
    cpu_page(inner, st, dev, key, write, now, recorded)
}

/// A CPU-resident or untouched page faulted by `dev`: map it remotely (pinned by the
/// thrashing detector, failing to migrate, preferring the CPU or accessed-by `dev`, on
/// a device that maps host memory), throttle it, or migrate it (read-duplicated when
/// read-mostly and read). A quiet pinned page is unpinned first; a bounce is recorded
/// once per page per call (`recorded`).
fn cpu_page(
    inner: &Inner,
    st: &mut State,
    dev: DeviceId,
    key: PageKey,
    write: bool,
    now: u64,
    recorded: &mut FastSet<PageKey>,
) -> Class {
    let State { devices, spaces, thrash, dma_failures, .. } = st;
    let Some(sp) = spaces.get_mut(&key.0) else { return Class::Settled(Outcome::NotManaged) };
    let e = sp.pt.get(key.1);
    let a = sp.attrs.get(key.1 * PAGE_SIZE);
    let mut pinned = e.flags.contains(PageFlags::PINNED);
    if pinned && thrash.quiet(key, now) {
        sp.pt.update(key.1, |e| e.flags.remove(PageFlags::PINNED));
        thrash.forget(key);
        add(&inner.counters.unpins, 1);
        pinned = false;
    }
    let can_remote = devices[dev.0 as usize].info.hooks.contains(Hooks::HOST_MAPPING);
    let failing = dma_failures.get(&key).is_some_and(|&n| n > inner.cfg.dev_fault_dma_retries);
    if can_remote && (pinned || failing || a.preferred == Some(Node::Cpu) || a.accessed_by(dev)) {
        return Class::Remote;
    }
    if e.state == Residency::Cpu && recorded.insert(key) {
        match thrash.record(key, now, false, can_remote) {
            Verdict::Migrate => {}
            Verdict::Throttle => {
                add(&inner.counters.throttled, 1);
                return Class::Settled(Outcome::Retry);
            }
            Verdict::Pin => {
                add(&inner.counters.thrash_events, 1);
                add(&inner.counters.pins, 1);
                tracing::info!(target: "gmem", va = format_args!("{:#x}", key.1 * PAGE_SIZE), "thrash: pinned to CPU");
                sp.pt.update(key.1, |e| e.flags.insert(PageFlags::PINNED));
                if can_remote {
                    return Class::Remote;
                }
            }
        }
    }
    Class::Migrate(Mig { key, dup: !write && a.read_mostly && e.state == Residency::Cpu, prefetch: false })
}

/// Pages answered without migrating (lock held): stale TLB entries of spurious faults
/// flushed, remote mappings made, too-narrow local mappings fixed.
fn resolve_in_place(
    inner: &Inner,
    g: &mut State,
    dev: DeviceId,
    spurious: &[PageKey],
    remote: &[Item],
    fix: &[Item],
    outcome: &mut FastMap<PageKey, Outcome>,
) {
    let mut batches = Batches::new();
    for &(s, vpn) in spurious {
        if let Some(asid) = g.spaces.get(&s).and_then(|sp| sp.asid_of(dev)) {
            batches.entry(dev.0).or_default().push(TlbFlush::new(asid, vpn * PAGE_SIZE, PAGE_SIZE));
        }
    }
    for &(key, _) in remote {
        let r = map_remote(inner, g, dev, key);
        outcome.insert(key, r.map_or_else(|e| Outcome::Abort(Arc::new(e)), |_| Outcome::Done));
    }
    for &(key, write) in fix {
        let r = fix_local(inner, g, dev, key, write, &mut batches);
        outcome.insert(key, r.map_or_else(|e| Outcome::Abort(Arc::new(e)), |_| Outcome::Done));
    }
    if let Err(e) = flush_all(inner, g, batches) {
        tracing::warn!(target: "gmem", error = %e, "flush after collapse failed");
    }
}

/// Let the prefetch policies ([`crate::prefetch`]) add pages to `migrate`: the rest of
/// each faulted block ([`Config::dev_fault_block_pages`](crate::Config)), then dense
/// regions; never beyond half the device memory.
fn add_prefetch(inner: &Inner, g: &State, dev: DeviceId, pending: &[Item], migrate: &mut Vec<Mig>) {
    let cap = (g.devices[dev.0 as usize].buddy.total_pages() as usize / 2).max(1);
    let taken: FastSet<PageKey> = pending.iter().map(|(k, _)| *k).collect();
    let faulted = migrate.len();
    let block = inner.cfg.dev_fault_block_pages.clamp(1, PAGES_PER_HUGE).next_power_of_two();
    if block > 1 {
        expand_blocks(g, dev, block, migrate, &taken);
        migrate.truncate(cap.max(faulted));
    }
    if let Some(pct) = inner.cfg.prefetch_threshold_pct {
        let before = migrate.len();
        if inner.cfg.prefetch_tree {
            let slot = &g.devices[dev.0 as usize];
            let room = (slot.buddy.free_pages().min(cap as u64)).saturating_sub(migrate.len() as u64);
            let room = inner.cfg.stream_readahead.then_some(room);
            expand_tree(g, dev, pct, migrate, &taken, room);
        } else {
            expand(g, dev, pct, migrate, &taken);
        }
        if migrate.len() > before {
            tracing::debug!(target: "gmem", dev = dev.0, pages = migrate.len() - before, "prefetch");
        }
        if migrate.len() > cap.max(before) {
            migrate.truncate(cap.max(before));
        }
    }
}

/// What [`make_room`] achieved.
enum Room<'a> {
    /// Enough free frames; the lock is still held.
    Ready(MutexGuard<'a, State>),
    /// Whole blocks were evicted: plan again.
    Replan,
    /// Pages were evicted, or frames are in flight elsewhere (waited for): plan again,
    /// without prefetch.
    Stale,
    /// Nothing is evictable and nothing in flight: the device can never take the pages.
    Exhausted,
}

/// Device memory for `migrate`, made by evicting pages outside the batch (lock held on
/// entry). Whole chunks arrive as 2 MiB mappings only into free 2 MiB blocks: if short,
/// whole blocks are evicted once per call (`blocks_tried`; page-granular eviction would
/// leave every block partly used when two streams share device memory). Then, if frames
/// are short, LRU pages.
fn make_room<'a>(
    inner: &'a Inner,
    mut g: MutexGuard<'a, State>,
    dev: DeviceId,
    migrate: &[Mig],
    pending: &[Item],
    blocks_tried: &mut bool,
) -> Room<'a> {
    let exclude =
        || -> FastSet<PageKey> { pending.iter().map(|(k, _)| *k).chain(migrate.iter().map(|m| m.key)).collect() };
    let slot = &g.devices[dev.0 as usize];
    let whole = if slot.info.huge_pages && !*blocks_tried { whole_chunks(migrate) } else { 0 };
    let free_blocks = slot.buddy.free_blocks(crate::buddy::MAX_ORDER);
    if whole > free_blocks {
        *blocks_tried = true;
        let exclude = exclude();
        drop(g);
        if evict_blocks(inner, dev, whole - free_blocks, &exclude).unwrap_or(0) > 0 {
            return Room::Replan;
        }
        g = inner.lock();
    }
    let free = g.devices[dev.0 as usize].buddy.free_pages() as usize;
    if migrate.len() <= free {
        return Room::Ready(g);
    }
    let exclude = exclude();
    let want = migrate.len() - free;
    drop(g);
    if evict(inner, dev, want, &exclude).unwrap_or(0) > 0 {
        return Room::Stale;
    }
    // Nothing could be evicted. Victims exist unless every frame is in flight (another
    // thread's migration): wait for a finalize and re-plan. Only a device with nothing
    // evictable and nothing in flight can never progress.
    let g = inner.lock();
    let slot = &g.devices[dev.0 as usize];
    let inflight = g.spaces.values().any(|sp| sp.regions.values().any(|r| r.inflight > 0));
    if slot.lru.len() == 0 && !inflight && slot.buddy.free_pages() == 0 {
        return Room::Exhausted;
    }
    let _ = inner.cv.wait_timeout(g, std::time::Duration::from_millis(2));
    Room::Stale
}

/// Map a CPU-resident page remotely on `dev`.
fn map_remote(inner: &Inner, st: &mut State, dev: DeviceId, key: PageKey) -> Result<(), MigrateError> {
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
            Ok(()) | Err(crate::error::CpuError::Install { .. }) => {}
            Err(source) => return Err(MigrateError::Install { va, source }),
        }
        sp.pt.update(vpn, |e| e.state = Residency::Cpu);
    }
    let prot = RW & sp.attrs.get(va).prot;
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
    let limit = sp.attrs.get(va).prot;
    if e.flags.contains(PageFlags::REMOTE) {
        let prot = RW & limit;
        let t = slot.mmu.pmap_protect(asid, va, PageSize::Base, prot).map_err(map_err)?;
        batches.entry(dev.0).or_default().push(t);
        sp.pt.update(vpn, |e| e.prot = prot.bits());
        return Ok(());
    }
    let collapse = e.state == Residency::Dup && write;
    let prot = (if e.state == Residency::Dup && !write { RO } else { RW }) & limit;
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
