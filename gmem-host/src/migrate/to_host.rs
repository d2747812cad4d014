//! Device → host migration (eviction, CPU faults, `DONTNEED`, prefetch to the CPU), one
//! function per phase:
//! 1. **collect/unmap** ([`collect`], lock held): release or narrow the device mapping,
//!    collect the TLB tokens and flush them coalesced, take a staging slot, mark the page
//!    `MIGRATING`, record its sequence number;
//! 2. **copy** ([`copy_out_start`], [`copy_out_finish`], lock dropped): one copy per
//!    device into the staging pool;
//! 3. **commit** ([`committable`], [`install_run`], lock held): re-check the sequence
//!    number, install the page into the CPU mapping atomically (`UFFDIO_COPY`), free the
//!    device frame;
//! 4. **finalize or roll back** ([`finalize`]): clear `MIGRATING`, wake waiters. A failed
//!    copy or install rolls the page back: its data stays in the device frame (unmapped;
//!    the next device fault maps it again), so nothing is lost.
//!
//! Pages are installed in runs ([`runs`]: contiguous addresses and staging slots share one
//! `UFFDIO_COPY` and one wake). From a device with [`Hooks::ASYNC_COPY`] a round of
//! 128 pages or more goes in parts ([`parts`]): the next part's copy runs while this
//! part is installed.

use std::collections::HashSet;
use std::sync::Arc;

use super::mapping::{
    Batches, coalesce, drop_dup_copy, flush_all, free_frame, narrow_to_read, parts, release_mapping, start_copy,
    tell_part,
};
use crate::error::{GmemError, MigrateError};
use crate::events::add;
use crate::mmu::{CopyTicket, GmMmu, Hooks, MemAddr, MmuError, PAGE_SIZE};
use crate::page_table::{PageEntry, PageFlags, Residency};
use crate::state::{Inner, STAGING_ID, State};
use crate::types::{DeviceId, PageKey};

/// Why a page goes to the host.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    /// A CPU touch; `dup` keeps a read-only device copy (read-mostly pages).
    CpuFault {
        /// Read-duplicate instead of moving.
        dup: bool,
    },
    /// Device memory pressure.
    Evict,
    /// `hmadvise`.
    Advise,
}

/// A page on its way from a device frame to the CPU, through a staging slot.
struct Out {
    key: PageKey,
    dev: u8,
    pa: u64,
    slot: u32,
    seq: u32,
    dup: bool,
}

/// What phase 1 gathered.
#[derive(Default)]
struct Collected {
    /// Invalidations of the released or narrowed mappings.
    batches: Batches,
    /// Pages to copy.
    outs: Vec<Out>,
    /// Read duplicates whose device copy is dropped once the flush succeeded.
    dup_frees: Vec<(PageKey, u8, u64)>,
    /// Pages that left a device without a copy (remote mappings released).
    moved: Vec<PageKey>,
    /// The error that stopped the collection, or the last poisoned page met.
    err: Option<MigrateError>,
}

/// Move `pages` to the host (see the module docs). Pages that are not on a device are
/// skipped; pages mid-migration are skipped. Returns how many pages left a device.
pub(crate) fn to_host(inner: &Inner, pages: &[PageKey], cause: Cause) -> Result<usize, MigrateError> {
    to_host_keys(inner, pages, cause).map(|k| k.len())
}

/// [`to_host`], returning the pages that left a device (or lost a remote mapping).
pub(crate) fn to_host_keys(inner: &Inner, pages: &[PageKey], cause: Cause) -> Result<Vec<PageKey>, MigrateError> {
    let mut g = inner.lock();
    let Collected { mut batches, outs, dup_frees, mut moved, mut err } = collect(inner, &mut g, pages, cause);
    // The devices whose frames this frees: what they owe must go out first.
    for d in outs.iter().map(|o| o.dev).chain(dup_frees.iter().map(|&(_, d, _)| d)) {
        batches.entry(d).or_default();
    }
    if let Err(x) = flush_all(inner, &mut g, batches) {
        // Mappings are gone from the page tables but maybe not the TLBs: keep the data on
        // the device and give up this round.
        for o in &outs {
            finalize(&mut g, o);
        }
        inner.cv.notify_all();
        return Err(err.unwrap_or(x));
    }
    for ((s, vpn), dev, pa) in dup_frees {
        drop_dup_copy(inner, &mut g, s, vpn, dev, pa);
        moved.push((s, vpn));
    }
    if outs.is_empty() {
        return err.map_or(Ok(moved), Err);
    }
    let staging = g.staging.base();
    let devs = devices_of(&g, &outs);
    drop(g);

    // Phases 2-4 per part: the next part's copy runs while this one is installed.
    let parts = parts(inner, outs.len(), devs.iter().any(|d| d.2));
    let mut round_told = false;
    let mut started = copy_out_start(&devs, &outs[parts[0].clone()]);
    for (k, part) in parts.iter().enumerate() {
        let part_outs = &outs[part.clone()];
        let failed = copy_out_finish(inner, started, part_outs, &mut err);
        started = parts.get(k + 1).map(|n| copy_out_start(&devs, &outs[n.clone()])).unwrap_or_default();
        tell_part(inner, &mut round_told, 0, part_outs.len() as u64);
        let mut g = inner.lock();
        let ok = committable(inner, &mut g, part_outs, &failed);
        for run in runs(&ok) {
            install_run(inner, &mut g, run, staging, cause, &mut moved, &mut err);
        }
    }
    inner.cv.notify_all();
    tracing::debug!(target: "gmem", ?cause, pages = outs.len(), moved = moved.len(), "migrate to host");
    match err {
        Some(e) if moved.is_empty() => Err(e),
        Some(e) => {
            tracing::warn!(target: "gmem", error = %e, "partial migration to host");
            Ok(moved)
        }
        None => Ok(moved),
    }
}

/// Phase 1 (lock held): release remote mappings and the mappings of read duplicates,
/// unmap (or narrow) device-resident pages into staging slots. Stops at the first
/// failing hook or when the staging pool is empty.
fn collect(inner: &Inner, g: &mut State, pages: &[PageKey], cause: Cause) -> Collected {
    let mut c = Collected::default();
    for &(s, vpn) in pages {
        let Some(e) = g.spaces.get(&s).filter(|sp| sp.region_of(vpn * PAGE_SIZE).is_some()).map(|sp| sp.pt.get(vpn))
        else {
            continue;
        };
        if e.flags.contains(PageFlags::MIGRATING) {
            continue;
        }
        let r = match e.state {
            Residency::Cpu if e.flags.contains(PageFlags::REMOTE) => {
                release_mapping(inner, g, s, vpn, &mut c.batches).map(|()| c.moved.push((s, vpn)))
            }
            Residency::Dup => {
                release_mapping(inner, g, s, vpn, &mut c.batches).map(|()| c.dup_frees.push(((s, vpn), e.dev, e.pa())))
            }
            Residency::Device if e.flags.contains(PageFlags::POISONED) => {
                c.err.get_or_insert(MigrateError::Poisoned { va: vpn * PAGE_SIZE, dev: e.dev });
                Ok(())
            }
            Residency::Device => {
                let Some(slot) = g.staging.free.pop_first() else { break };
                unmap_outbound(inner, g, (s, vpn), e, slot, cause, &mut c.batches).map(|o| c.outs.extend(o))
            }
            _ => Ok(()),
        };
        if let Err(x) = r {
            c.err = Some(x);
            break;
        }
    }
    c
}

/// Phase 1 for one device-resident page: release its device mapping (narrow it to
/// read-only for a read duplicate), mark it `MIGRATING` into staging slot `slot` and
/// count it in its region's migrations. The slot goes back to the pool on failure.
fn unmap_outbound(
    inner: &Inner,
    g: &mut State,
    (s, vpn): PageKey,
    e: PageEntry,
    slot: u32,
    cause: Cause,
    batches: &mut Batches,
) -> Result<Option<Out>, MigrateError> {
    let dup = matches!(cause, Cause::CpuFault { dup: true });
    let r = if dup && e.prot != 0 && !e.flags.contains(PageFlags::HUGE) {
        narrow_to_read(inner, g, s, vpn, batches)
    } else {
        release_mapping(inner, g, s, vpn, batches)
    };
    let Some(sp) = g.spaces.get_mut(&s).filter(|_| r.is_ok()) else {
        g.staging.free.insert(slot);
        return r.map(|()| None);
    };
    let ne = sp.pt.update(vpn, |e| e.flags.insert(PageFlags::MIGRATING));
    if let Some(r) = sp.region_of_mut(vpn * PAGE_SIZE) {
        r.inflight += 1;
    }
    Ok(Some(Out { key: (s, vpn), dev: e.dev, pa: e.pa(), slot, seq: ne.seq, dup }))
}

/// The devices `outs` come from, each once: id, hooks, and whether it copies
/// asynchronously ([`Hooks::ASYNC_COPY`]).
fn devices_of(g: &State, outs: &[Out]) -> Vec<Source> {
    let mut ds: Vec<u8> = outs.iter().map(|o| o.dev).collect();
    ds.sort_unstable();
    ds.dedup();
    ds.into_iter()
        .map(|d| {
            let slot = &g.devices[d as usize];
            (d, slot.mmu.clone(), slot.info.hooks.contains(Hooks::ASYNC_COPY))
        })
        .collect()
}

/// A device pages come from: id, hooks, asynchronous copies.
type Source = (u8, Arc<dyn GmMmu>, bool);

/// A part's copy from one device, started: id, hooks, ticket or error.
type Started = (u8, Arc<dyn GmMmu>, Result<CopyTicket, MmuError>);

/// Phase 2 (lock dropped): start one copy per device of the part into its staging
/// slots, contiguous runs merged ([`GmMmu::copy_start`] on a device with
/// [`Hooks::ASYNC_COPY`], else the whole [`GmMmu::copy_batch`] here).
fn copy_out_start(devs: &[Source], outs: &[Out]) -> Vec<Started> {
    let mut started = Vec::new();
    for (d, mmu, async_copy) in devs {
        let ops = coalesce(outs.iter().filter(|o| o.dev == *d).map(|o| {
            (MemAddr::Device(o.pa), MemAddr::Host { region: STAGING_ID, offset: u64::from(o.slot) * PAGE_SIZE })
        }));
        if ops.is_empty() {
            continue;
        }
        started.push((*d, mmu.clone(), start_copy(mmu.as_ref(), *async_copy, &ops)));
    }
    started
}

/// Phase 2: wait for the part's copies. Returns the devices whose copy failed (the first
/// failure goes to `err`, naming the part's first page of that device).
fn copy_out_finish(inner: &Inner, started: Vec<Started>, outs: &[Out], err: &mut Option<MigrateError>) -> HashSet<u8> {
    let mut failed: HashSet<u8> = HashSet::new();
    for (d, mmu, r) in started {
        if let Err(source) = r.and_then(|t| mmu.copy_finish(t)) {
            add(&inner.counters.hook_errors, 1);
            failed.insert(d);
            let va = outs.iter().find(|o| o.dev == d).map_or(0, |o| o.key.1 * PAGE_SIZE);
            err.get_or_insert(MigrateError::Copy { va, dev: d, source });
        }
    }
    failed
}

/// Phase 3, first half (lock held): pages whose copy failed or whose sequence number
/// moved during the copy roll back; the others, in order, may be installed.
fn committable<'a>(inner: &Inner, g: &mut State, outs: &'a [Out], failed: &HashSet<u8>) -> Vec<&'a Out> {
    let mut ok = Vec::new();
    for o in outs {
        let seq_ok = g.spaces.get(&o.key.0).is_some_and(|sp| sp.pt.get(o.key.1).seq == o.seq);
        if failed.contains(&o.dev) || !seq_ok {
            if !seq_ok {
                add(&inner.counters.seq_retries, 1);
            }
            finalize(g, o);
        } else {
            ok.push(o);
        }
    }
    ok
}

/// Split `ok` into runs of contiguous addresses and staging slots with the same
/// duplication: one `UFFDIO_COPY` and one wake each.
fn runs<'a, 'b>(ok: &'b [&'a Out]) -> Vec<&'b [&'a Out]> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=ok.len() {
        let breaks = i == ok.len() || {
            let (p, q) = (ok[i - 1], ok[i]);
            q.key != (p.key.0, p.key.1 + 1) || q.slot != p.slot + 1 || q.dup != p.dup
        };
        if breaks {
            runs.push(&ok[start..i]);
            start = i;
        }
    }
    runs
}

/// Phase 3, second half, and phase 4 (lock held): install `run` from the staging pool
/// into the CPU mapping and commit its pages (free the device frames of moved pages),
/// or roll them all back when the install fails.
fn install_run(
    inner: &Inner,
    g: &mut State,
    run: &[&Out],
    staging: u64,
    cause: Cause,
    moved: &mut Vec<PageKey>,
    err: &mut Option<MigrateError>,
) {
    let first = run[0];
    let va = first.key.1 * PAGE_SIZE;
    let src = (staging + u64::from(first.slot) * PAGE_SIZE) as *const u8;
    let len = run.len() as u64 * PAGE_SIZE;
    // A CPU fault wakes its toucher itself, after its bookkeeping (see `crate::cpu_fault`).
    let wake = !matches!(cause, Cause::CpuFault { .. });
    // SAFETY: `src` covers staging slots this call owns (contiguous, checked by `runs`);
    // `[va, va+len)` are holes of a live region (munmap waits for inflight == 0).
    if let Err(source) = unsafe { inner.cpu.install(va, src, len, first.dup, wake) } {
        if run.len() > 1 {
            // One UFFDIO_COPY cannot cross a mapping boundary (an `mprotect` or a partial
            // munmap splits the region's mapping): install page by page.
            for one in run.chunks(1) {
                install_run(inner, g, one, staging, cause, moved, err);
            }
            return;
        }
        err.get_or_insert(MigrateError::Install { va, source });
        for o in run {
            finalize(g, o);
        }
        return;
    }
    for o in run {
        let (s, vpn) = o.key;
        if let Some(sp) = g.spaces.get_mut(&s) {
            sp.pt.update(vpn, |e| {
                if o.dup {
                    e.state = Residency::Dup;
                    e.flags.insert(PageFlags::CPU_WP);
                } else {
                    e.state = Residency::Cpu;
                    e.prot = 0;
                    e.flags.remove(PageFlags::HUGE | PageFlags::CPU_WP);
                }
            });
        }
        if o.dup {
            add(&inner.counters.read_dups, 1);
        } else {
            let slot = &mut g.devices[o.dev as usize];
            free_frame(slot, o.pa);
            slot.lru.remove((o.pa / PAGE_SIZE) as u32);
        }
        add(&inner.counters.pages_d2h, 1);
        if cause == Cause::Evict {
            add(&inner.counters.evictions, 1);
        }
        finalize(g, o);
        moved.push(o.key);
    }
}

/// Phase 4: clear `MIGRATING`, give back the staging slot and the region's migration
/// count (whether the page was committed or rolled back).
fn finalize(g: &mut State, o: &Out) {
    g.staging.free.insert(o.slot);
    if let Some(sp) = g.spaces.get_mut(&o.key.0) {
        sp.pt.update(o.key.1, |e| e.flags.remove(PageFlags::MIGRATING | PageFlags::FROM_CPU));
        if let Some(r) = sp.region_of_mut(o.key.1 * PAGE_SIZE) {
            r.inflight = r.inflight.saturating_sub(1);
        }
    }
}

/// Move every device page of `[va, va+len)` (on `only`, or on any device) to the host.
///
/// Moves every page at any size: each round moves what the staging pool holds, and
/// rounds go on while they make progress. Pages held by other threads' migrations are
/// waited for (10 ms steps, [`WAIT_ROUNDS`] in a row at most); if they are still busy
/// then, the call fails with [`GmemError::Busy`] naming the first page left. So does a
/// range that devices keep pulling back faster than it drains (more productive rounds
/// than it had pages at the start).
pub(crate) fn range_to_host(inner: &Inner, s: u32, only: Option<DeviceId>, va: u64, len: u64) -> Result<(), GmemError> {
    let (mut idle_rounds, mut rounds, mut max_rounds) = (0, 0usize, None);
    loop {
        let pages: Vec<PageKey> = {
            let g = inner.lock();
            let Some(sp) = g.spaces.get(&s) else { return Ok(()) };
            sp.pt
                .touched_iter(va / PAGE_SIZE, len / PAGE_SIZE)
                .filter(|(_, e)| {
                    (e.on_device() || e.flags.contains(PageFlags::REMOTE)) && only.is_none_or(|d| d.0 == e.dev)
                })
                .map(|(v, _)| (s, v))
                .collect()
        };
        if pages.is_empty() {
            return Ok(());
        }
        let limit = *max_rounds.get_or_insert(pages.len());
        if rounds >= limit {
            return Err(GmemError::Busy { va: pages[0].1 * PAGE_SIZE });
        }
        let n = to_host(inner, &pages, Cause::Advise)?;
        if n > 0 {
            rounds += 1;
            idle_rounds = 0;
            continue;
        }
        idle_rounds += 1;
        if idle_rounds > WAIT_ROUNDS {
            return Err(GmemError::Busy { va: pages[0].1 * PAGE_SIZE });
        }
        // Everything left is mid-migration elsewhere: wait for a finalize.
        let g = inner.lock();
        let _ = inner.cv.wait_timeout(g, std::time::Duration::from_millis(10));
    }
}

/// Rounds in a row without progress that [`range_to_host`] waits (10 ms each) for other
/// threads' migrations before it gives up.
const WAIT_ROUNDS: u32 = 500;
