//! Migration towards the host, in named phases, and the CPU fault path.
//!
//! Device → host (eviction, CPU faults, `DONTNEED`, prefetch to the CPU):
//! 1. **collect/unmap** (lock held): release or narrow the device mapping, collect the
//!    TLB tokens and flush them coalesced, take a staging slot, mark the page
//!    `MIGRATING`, record its sequence number;
//! 2. **copy** (lock dropped): one [`GmMmu::copy_batch`] per device into the staging pool;
//! 3. **commit** (lock held): re-check the sequence number, install the page into the CPU
//!    mapping atomically (`UFFDIO_COPY`), free the device frame;
//! 4. **finalize or roll back**: clear `MIGRATING`, wake waiters. A failed copy or install
//!    rolls the page back: its data stays in the device frame (unmapped; the next device
//!    fault maps it again), so nothing is lost.
//!
//! Pages are installed in runs (contiguous addresses and staging slots share one
//! `UFFDIO_COPY` and one wake), and a CPU fault brings back a window of following
//! device-resident pages with it ([`Config::cpu_fault_ahead`](crate::Config)), so a
//! sequential CPU read of device results faults once per window.
//!
//! Host → device migration lives in [`crate::fault`].

use std::collections::{HashMap, HashSet};

use crate::hash::FastSet;

use crate::attrs::DeviceId;
use crate::cpu::CpuError;
use crate::events::add;
use crate::evict::{PageKey, pick_victims};
use crate::manager::GmemError;
use crate::mmu::{CopyOp, GmMmu, Hooks, InvalidationBatch, MemAddr, MmuError, PAGE_SIZE, PageSize};
use crate::page_table::{PageFlags, Residency};
use crate::state::{DeviceSlot, Inner, STAGING_ID, State};
use crate::thrash::Verdict;

/// Errors of a migration. The data is always kept in its last good place.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// Releasing or narrowing a device mapping failed.
    #[error("unmapping {va:#x} on device {dev} failed")]
    Unmap {
        /// Page.
        va: u64,
        /// Device.
        dev: u8,
        /// Device error.
        #[source]
        source: MmuError,
    },
    /// The page is poisoned ([`crate::page_table::PageFlags::POISONED`]): it does not leave its device.
    #[error("page {va:#x} is poisoned on device {dev}")]
    Poisoned {
        /// Page.
        va: u64,
        /// Device.
        dev: u8,
    },
    /// A TLB invalidation failed.
    #[error("TLB invalidation on device {dev} failed")]
    Invalidate {
        /// Device.
        dev: u8,
        /// Device error.
        #[source]
        source: MmuError,
    },
    /// A DMA copy batch failed.
    #[error("copy of pages from {va:#x} on device {dev} failed")]
    Copy {
        /// First page of the batch.
        va: u64,
        /// Device.
        dev: u8,
        /// Device error.
        #[source]
        source: MmuError,
    },
    /// Zero-filling or preparing a frame failed.
    #[error("preparing the frame for {va:#x} on device {dev} failed")]
    Prepare {
        /// Page.
        va: u64,
        /// Device.
        dev: u8,
        /// Device error.
        #[source]
        source: MmuError,
    },
    /// Creating a device mapping failed.
    #[error("mapping {va:#x} on device {dev} failed")]
    Map {
        /// Page.
        va: u64,
        /// Device.
        dev: u8,
        /// Device error.
        #[source]
        source: MmuError,
    },
    /// The device refused a frame in `alloc_page`.
    #[error("device {dev} refused frame {pa:#x}")]
    AllocPage {
        /// Device.
        dev: u8,
        /// Frame.
        pa: u64,
        /// Device error.
        #[source]
        source: MmuError,
    },
    /// No device memory could be found or freed for `va`.
    #[error("device {dev} memory exhausted while placing {va:#x}")]
    NoDeviceMemory {
        /// Page.
        va: u64,
        /// Device.
        dev: u8,
    },
    /// Installing the page in the CPU mapping failed.
    #[error("installing CPU page {va:#x} failed")]
    Install {
        /// Page.
        va: u64,
        /// CPU-side error.
        #[source]
        source: CpuError,
    },
}

/// Per-device invalidation batches of one operation.
pub(crate) type Batches = HashMap<u8, InvalidationBatch>;

/// Flush every batch; the first error wins (all are attempted).
pub(crate) fn flush_all(inner: &Inner, st: &State, batches: Batches) -> Result<(), MigrateError> {
    /// Attempts per coalesced group: an invalidation that keeps failing leaves stale
    /// translations, so it is retried before the caller has to give up.
    const ATTEMPTS: u32 = 3;
    let mut first = None;
    for (d, b) in batches {
        let mmu = st.devices[d as usize].mmu.as_ref();
        let mut n = 0;
        for (asid, ranges) in b.take_coalesced() {
            n += ranges.len();
            let mut last = None;
            for _ in 0..ATTEMPTS {
                match mmu.tlb_invl_coalesced(asid, &ranges) {
                    Ok(()) => {
                        last = None;
                        break;
                    }
                    Err(e) => {
                        add(&inner.counters.hook_errors, 1);
                        last = Some(e);
                    }
                }
            }
            if let Some(source) = last {
                first.get_or_insert(MigrateError::Invalidate { dev: d, source });
            }
        }
        if n > 0 {
            add(&inner.counters.tlb_ranges, n as u64);
            tracing::trace!(target: "gmem", dev = d, ranges = n, "tlb invalidation");
        }
    }
    first.map_or(Ok(()), Err)
}

/// A read-duplicated page (device mapping already gone) keeps only its CPU copy: the
/// device frame is freed, the page becomes CPU-resident and writable again.
pub(crate) fn drop_dup_copy(inner: &Inner, st: &mut State, s: u32, vpn: u64, dev: u8, pa: u64) {
    let slot = &mut st.devices[dev as usize];
    free_frame(slot, pa);
    slot.lru.remove((pa / PAGE_SIZE) as u32);
    if let Some(sp) = st.spaces.get_mut(&s) {
        sp.pt.update(vpn, |e| {
            e.state = Residency::Cpu;
            e.flags.remove(PageFlags::CPU_WP);
        });
    }
    if let Err(e) = inner.cpu.unprotect(vpn * PAGE_SIZE, PAGE_SIZE) {
        tracing::warn!(target: "gmem", error = %e, "unprotect after dup drop");
    }
}

/// Return a frame to the allocator (and tell the device).
pub(crate) fn free_frame(slot: &mut DeviceSlot, pa: u64) {
    if let Err(e) = slot.buddy.free(pa, 0) {
        tracing::error!(target: "gmem", error = %e, "freeing device frame");
        return;
    }
    if slot.info.hooks.contains(Hooks::PAGE_NOTIFY) && !slot.lost {
        slot.mmu.free_page(pa, PageSize::Base);
    }
}

/// Turn the 2 MiB mapping covering chunk `chunk` into base mappings.
pub(crate) fn demote_huge(
    inner: &Inner,
    st: &mut State,
    s: u32,
    chunk: u64,
    batches: &mut Batches,
) -> Result<(), MigrateError> {
    let State { devices, spaces, .. } = st;
    let Some(sp) = spaces.get_mut(&s) else { return Ok(()) };
    let base = chunk * crate::mmu::PAGES_PER_HUGE;
    let first = sp.pt.get(base);
    let dev = first.dev;
    let slot = &devices[dev as usize];
    let Some(asid) = sp.asid_of(DeviceId(dev)) else { return Ok(()) };
    let va = base * PAGE_SIZE;
    let tok = slot.mmu.pmap_release(asid, va, PageSize::Huge).map_err(|source| {
        add(&inner.counters.hook_errors, 1);
        MigrateError::Unmap { va, dev, source }
    })?;
    batches.entry(dev).or_default().push(tok);
    for i in 0..crate::mmu::PAGES_PER_HUGE {
        let e = sp.pt.get(base + i);
        if !e.flags.contains(PageFlags::HUGE) {
            continue;
        }
        let mut prot = e.prot;
        if prot != 0 && e.on_device() {
            let r =
                slot.mmu.pmap_enter(asid, (base + i) * PAGE_SIZE, MemAddr::Device(e.pa()), PageSize::Base, e.prot());
            if r.is_err() {
                add(&inner.counters.hook_errors, 1);
                prot = 0; // left unmapped: the next device fault maps it again
            }
        }
        sp.pt.update(base + i, |e| {
            e.flags.remove(PageFlags::HUGE);
            e.prot = prot;
        });
    }
    Ok(())
}

/// Release the device mapping of one page (local or remote), collecting its token.
pub(crate) fn release_mapping(
    inner: &Inner,
    st: &mut State,
    s: u32,
    vpn: u64,
    batches: &mut Batches,
) -> Result<(), MigrateError> {
    let e = match st.spaces.get(&s) {
        Some(sp) => sp.pt.get(vpn),
        None => return Ok(()),
    };
    if e.prot == 0 {
        return Ok(());
    }
    if e.flags.contains(PageFlags::HUGE) {
        demote_huge(inner, st, s, vpn / crate::mmu::PAGES_PER_HUGE, batches)?;
    }
    let State { devices, spaces, .. } = st;
    let Some(sp) = spaces.get_mut(&s) else { return Ok(()) };
    let e = sp.pt.get(vpn);
    if e.prot != 0 {
        if let Some(asid) = sp.asid_of(DeviceId(e.dev)) {
            let va = vpn * PAGE_SIZE;
            let tok = devices[e.dev as usize].mmu.pmap_release(asid, va, PageSize::Base).map_err(|source| {
                add(&inner.counters.hook_errors, 1);
                MigrateError::Unmap { va, dev: e.dev, source }
            })?;
            batches.entry(e.dev).or_default().push(tok);
            add(&inner.counters.tlb_tokens, 1);
        }
    }
    sp.pt.update(vpn, |e| {
        e.prot = 0;
        e.flags.remove(PageFlags::REMOTE);
    });
    Ok(())
}

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

struct Out {
    key: PageKey,
    dev: u8,
    pa: u64,
    slot: u32,
    seq: u32,
    dup: bool,
}

/// Move `pages` to the host (see the module docs). Pages that are not on a device are
/// skipped; pages mid-migration are skipped. Returns how many pages left a device.
pub(crate) fn to_host(inner: &Inner, pages: &[PageKey], cause: Cause) -> Result<usize, MigrateError> {
    to_host_keys(inner, pages, cause).map(|k| k.len())
}

/// [`to_host`], returning the pages that left a device (or lost a remote mapping).
pub(crate) fn to_host_keys(inner: &Inner, pages: &[PageKey], cause: Cause) -> Result<Vec<PageKey>, MigrateError> {
    let mut g = inner.lock();
    let mut batches = Batches::new();
    let mut outs: Vec<Out> = Vec::new();
    let mut dup_frees: Vec<(PageKey, u8, u64)> = Vec::new();
    let mut moved: Vec<PageKey> = Vec::new();
    let mut err = None;
    // Phase 1: collect/unmap.
    for &(s, vpn) in pages {
        let Some(e) = g.spaces.get(&s).filter(|sp| sp.region_of(vpn * PAGE_SIZE).is_some()).map(|sp| sp.pt.get(vpn))
        else {
            continue;
        };
        if e.flags.contains(PageFlags::MIGRATING) {
            continue;
        }
        match e.state {
            Residency::Cpu if e.flags.contains(PageFlags::REMOTE) => {
                if let Err(x) = release_mapping(inner, &mut g, s, vpn, &mut batches) {
                    err = Some(x);
                    break;
                }
                moved.push((s, vpn));
            }
            Residency::Dup => {
                if let Err(x) = release_mapping(inner, &mut g, s, vpn, &mut batches) {
                    err = Some(x);
                    break;
                }
                dup_frees.push(((s, vpn), e.dev, e.pa()));
            }
            Residency::Device if e.flags.contains(PageFlags::POISONED) => {
                err.get_or_insert(MigrateError::Poisoned { va: vpn * PAGE_SIZE, dev: e.dev });
            }
            Residency::Device => {
                let dup = matches!(cause, Cause::CpuFault { dup: true });
                let Some(slot) = g.staging.free.pop_first() else { break };
                let r = if dup && e.prot != 0 && !e.flags.contains(PageFlags::HUGE) {
                    narrow_to_read(inner, &mut g, s, vpn, &mut batches)
                } else {
                    release_mapping(inner, &mut g, s, vpn, &mut batches)
                };
                if let Err(x) = r {
                    g.staging.free.insert(slot);
                    err = Some(x);
                    break;
                }
                let Some(sp) = g.spaces.get_mut(&s) else { continue };
                let ne = sp.pt.update(vpn, |e| e.flags.insert(PageFlags::MIGRATING));
                if let Some(r) = sp.region_of_mut(vpn * PAGE_SIZE) {
                    r.inflight += 1;
                }
                outs.push(Out { key: (s, vpn), dev: e.dev, pa: e.pa(), slot, seq: ne.seq, dup });
            }
            _ => {}
        }
    }
    if let Err(x) = flush_all(inner, &g, batches) {
        // Mappings are gone from the page tables but maybe not the TLBs: keep the data on
        // the device and give up this round.
        err.get_or_insert(x);
        for o in &outs {
            finalize(&mut g, o, false);
        }
        inner.cv.notify_all();
        return Err(err.unwrap_or(MigrateError::NoDeviceMemory { va: 0, dev: 0 }));
    }
    for ((s, vpn), dev, pa) in dup_frees {
        drop_dup_copy(inner, &mut g, s, vpn, dev, pa);
        moved.push((s, vpn));
    }
    if outs.is_empty() {
        return err.map_or(Ok(moved), Err);
    }
    let staging = g.staging.base();
    let devs: Vec<(u8, std::sync::Arc<dyn GmMmu>)> = {
        let mut ds: Vec<u8> = outs.iter().map(|o| o.dev).collect();
        ds.sort_unstable();
        ds.dedup();
        ds.into_iter().map(|d| (d, g.devices[d as usize].mmu.clone())).collect()
    };
    drop(g);

    // Phase 2: copy, one batch per device, contiguous runs merged.
    let mut failed: HashSet<u8> = HashSet::new();
    for (d, mmu) in &devs {
        let ops = coalesce(outs.iter().filter(|o| o.dev == *d).map(|o| {
            (MemAddr::Device(o.pa), MemAddr::Host { region: STAGING_ID, offset: u64::from(o.slot) * PAGE_SIZE })
        }));
        if let Err(source) = mmu.copy_batch(&ops) {
            add(&inner.counters.hook_errors, 1);
            failed.insert(*d);
            let va = outs.iter().find(|o| o.dev == *d).map_or(0, |o| o.key.1 * PAGE_SIZE);
            err.get_or_insert(MigrateError::Copy { va, dev: *d, source });
        }
    }

    // Phase 3: commit. Pages whose sequence number moved (or whose copy failed) roll
    // back; the rest are installed in runs (contiguous VA and staging slots: one
    // UFFDIO_COPY and one wake per run).
    let mut g = inner.lock();
    let mut ok: Vec<&Out> = Vec::new();
    for o in &outs {
        let seq_ok = g.spaces.get(&o.key.0).is_some_and(|sp| sp.pt.get(o.key.1).seq == o.seq);
        if failed.contains(&o.dev) || !seq_ok {
            if !seq_ok {
                add(&inner.counters.seq_retries, 1);
            }
            finalize(&mut g, o, false);
        } else {
            ok.push(o);
        }
    }
    let mut runs: Vec<&[&Out]> = Vec::new();
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
    for run in runs {
        let first = run[0];
        let va = first.key.1 * PAGE_SIZE;
        let src = (staging + u64::from(first.slot) * PAGE_SIZE) as *const u8;
        let len = run.len() as u64 * PAGE_SIZE;
        // A CPU fault wakes its toucher itself, after its bookkeeping (see `cpu_fault_inner`).
        let wake = !matches!(cause, Cause::CpuFault { .. });
        // SAFETY: `src` covers staging slots this call owns (contiguous, checked above);
        // `[va, va+len)` are holes of a live region (munmap waits for inflight == 0).
        if let Err(source) = unsafe { inner.cpu.install(va, src, len, first.dup, wake) } {
            err.get_or_insert(MigrateError::Install { va, source });
            for o in run {
                finalize(&mut g, o, false);
            }
            continue;
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
            finalize(&mut g, o, true);
            moved.push(o.key);
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

/// Narrow a device mapping to read-only (read duplication).
fn narrow_to_read(inner: &Inner, st: &mut State, s: u32, vpn: u64, batches: &mut Batches) -> Result<(), MigrateError> {
    let State { devices, spaces, .. } = st;
    let Some(sp) = spaces.get_mut(&s) else { return Ok(()) };
    let e = sp.pt.get(vpn);
    let Some(asid) = sp.asid_of(DeviceId(e.dev)) else { return Ok(()) };
    let va = vpn * PAGE_SIZE;
    let tok = devices[e.dev as usize].mmu.pmap_protect(asid, va, PageSize::Base, crate::mmu::RO).map_err(|source| {
        add(&inner.counters.hook_errors, 1);
        MigrateError::Unmap { va, dev: e.dev, source }
    })?;
    batches.entry(e.dev).or_default().push(tok);
    sp.pt.update(vpn, |e| e.prot = crate::mmu::RO.bits());
    Ok(())
}

/// Clear MIGRATING, give back the staging slot and the region's inflight count.
fn finalize(g: &mut State, o: &Out, _ok: bool) {
    g.staging.free.insert(o.slot);
    if let Some(sp) = g.spaces.get_mut(&o.key.0) {
        sp.pt.update(o.key.1, |e| e.flags.remove(PageFlags::MIGRATING | PageFlags::FROM_CPU));
        if let Some(r) = sp.region_of_mut(o.key.1 * PAGE_SIZE) {
            r.inflight = r.inflight.saturating_sub(1);
        }
    }
}

/// Merge (src, dst) page pairs into runs where both sides are contiguous.
pub(crate) fn coalesce(pairs: impl Iterator<Item = (MemAddr, MemAddr)>) -> Vec<CopyOp> {
    fn next(a: MemAddr, by: u64) -> MemAddr {
        match a {
            MemAddr::Device(p) => MemAddr::Device(p + by),
            MemAddr::Host { region, offset } => MemAddr::Host { region, offset: offset + by },
        }
    }
    let mut ops: Vec<CopyOp> = Vec::new();
    for (src, dst) in pairs {
        if let Some(last) = ops.last_mut() {
            if next(last.src, last.len) == src && next(last.dst, last.len) == dst {
                last.len += PAGE_SIZE;
                continue;
            }
        }
        ops.push(CopyOp { src, dst, len: PAGE_SIZE });
    }
    ops
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
                .touched(va / PAGE_SIZE, len / PAGE_SIZE)
                .into_iter()
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

/// Evict up to `n` LRU pages from `dev`, never those in `exclude`.
pub(crate) fn evict(inner: &Inner, dev: DeviceId, n: usize, exclude: &FastSet<PageKey>) -> Result<usize, GmemError> {
    let victims = {
        let mut g = inner.lock();
        g.live_dev(dev)?;
        let v = pick_victims(&mut g, dev, n, exclude);
        crate::evict::note_full_chunks(&mut g, &v);
        v
    };
    if victims.is_empty() {
        return Ok(0);
    }
    let moved = to_host(inner, &victims, Cause::Evict)?;
    tracing::debug!(target: "gmem", dev = dev.0, asked = n, moved, "eviction");
    Ok(moved)
}

/// Evict whole 2 MiB blocks of `dev`'s memory (see [`crate::evict::pick_victim_blocks`]);
/// returns the pages moved.
pub(crate) fn evict_blocks(
    inner: &Inner,
    dev: DeviceId,
    blocks: usize,
    exclude: &FastSet<PageKey>,
) -> Result<usize, GmemError> {
    let victims = {
        let mut g = inner.lock();
        let v = crate::evict::pick_victim_blocks(&g, dev, blocks, exclude);
        crate::evict::note_full_chunks(&mut g, &v);
        v
    };
    if victims.is_empty() {
        return Ok(0);
    }
    let moved = to_host(inner, &victims, Cause::Evict)?;
    tracing::debug!(target: "gmem", dev = dev.0, blocks, moved, "eviction");
    Ok(moved)
}

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
            let chunk = vpn / crate::mmu::PAGES_PER_HUGE;
            if huge_done.insert(chunk) {
                singles.push((e.dev, chunk * crate::mmu::HUGE_PAGE_SIZE, PageSize::Huge));
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

/// Whether device slot `dev` can map host pages remotely (thrashing pins at once).
fn remote_capable(devices: &[crate::state::DeviceSlot], dev: u8) -> bool {
    devices.get(dev as usize).is_some_and(|d| d.info.hooks.contains(crate::Hooks::HOST_MAPPING))
}

impl Inner {
    /// Resolve a CPU touch of `va` (lock taken inside; may migrate).
    pub(crate) fn cpu_fault(&self, va: u64, write: bool) -> Result<(), GmemError> {
        self.cpu_fault_inner(va, write, false)
    }

    fn cpu_fault_inner(&self, va: u64, write: bool, missing_event: bool) -> Result<(), GmemError> {
        let page = va & !(PAGE_SIZE - 1);
        let vpn = page / PAGE_SIZE;
        add(&self.counters.cpu_faults, 1);
        let mut recorded = false;
        loop {
            let mut g = self.lock();
            let Some(s) = g.space_of_va(page) else {
                self.cpu.wake(page, PAGE_SIZE);
                return Err(GmemError::NotManaged { va, space: 0 });
            };
            let now = self.now();
            let st = &mut *g;
            let Some(sp) = st.spaces.get_mut(&s) else { return Ok(()) };
            if sp.region_of(page).is_none_or(|r| r.dying) {
                self.cpu.wake(page, PAGE_SIZE);
                return Err(GmemError::NotManaged { va, space: s });
            }
            let e = sp.pt.get(vpn);
            if e.flags.contains(PageFlags::POISONED) {
                return Err(GmemError::Poisoned { va: page, dev: e.dev });
            }
            let read_mostly = sp.attrs.get(page).read_mostly;
            if e.flags.contains(PageFlags::MIGRATING) {
                if e.flags.contains(PageFlags::FROM_CPU) {
                    // Invalidate the outbound migration: its commit sees the new seq.
                    match e.state {
                        Residency::Unpopulated => {
                            self.install_zero(page)?;
                            sp.pt.update(vpn, |e| e.state = Residency::Cpu);
                        }
                        _ if write => {
                            self.cpu.unprotect(page, PAGE_SIZE)?;
                            sp.pt.update(vpn, |e| e.flags.remove(PageFlags::CPU_WP));
                        }
                        _ => self.cpu.wake(page, PAGE_SIZE),
                    }
                    return Ok(());
                }
                let _ = self.cv.wait_timeout(g, std::time::Duration::from_millis(50));
                continue;
            }
            match e.state {
                Residency::Unpopulated => {
                    self.install_zero(page)?;
                    sp.pt.update(vpn, |e| e.state = Residency::Cpu);
                    return Ok(());
                }
                Residency::Cpu => {
                    if write && e.flags.contains(PageFlags::CPU_WP) {
                        self.cpu.unprotect(page, PAGE_SIZE)?;
                        sp.pt.update(vpn, |e| e.flags.remove(PageFlags::CPU_WP));
                    } else if missing_event {
                        // A hole where the table says present would be a bug; refill
                        // (EEXIST means the event was merely stale).
                        // SAFETY: `page` is a page of a live registered region.
                        if unsafe { self.cpu.install_zero(page, PAGE_SIZE) }.is_ok() {
                            tracing::error!(target: "gmem", va = format_args!("{page:#x}"), "CPU hole on a CPU-resident page");
                        }
                    } else {
                        self.cpu.wake(page, PAGE_SIZE);
                    }
                    return Ok(());
                }
                Residency::Dup if !write => {
                    self.cpu.wake(page, PAGE_SIZE);
                    return Ok(());
                }
                Residency::Dup => {
                    drop(g);
                    if to_host(self, &[(s, vpn)], Cause::Advise)? > 0 {
                        add(&self.counters.collapses, 1);
                        return Ok(());
                    }
                    continue;
                }
                Residency::Device => {
                    let remote_ok = remote_capable(&st.devices, e.dev);
                    let verdict =
                        if recorded { Verdict::Migrate } else { st.thrash.record((s, vpn), now, true, remote_ok) };
                    recorded = true;
                    if verdict != Verdict::Migrate {
                        add(&self.counters.thrash_events, 1);
                        tracing::info!(target: "gmem", va = format_args!("{page:#x}"), ?verdict, "thrashing (cpu side)");
                    }
                    if verdict == Verdict::Pin {
                        sp.pt.update(vpn, |e| e.flags.insert(PageFlags::PINNED));
                        add(&self.counters.pins, 1);
                    }
                    let dup = read_mostly && !write;
                    // Fault-ahead: the following device-resident pages of the region on the
                    // same device come along in the same copy batch (sequential CPU reads
                    // of device results then fault once per window, not once per page).
                    let mut pages = vec![(s, vpn)];
                    if !dup {
                        let end = sp.region_of(page).map_or(page, |r| r.start + r.len) / PAGE_SIZE;
                        for v in vpn + 1..(vpn + 1 + self.cfg.cpu_fault_ahead as u64).min(end) {
                            let n = sp.pt.get(v);
                            if n.state != Residency::Device || n.dev != e.dev || n.flags.contains(PageFlags::MIGRATING)
                            {
                                break;
                            }
                            pages.push((s, v));
                        }
                    }
                    drop(g);
                    // Installed without waking: the toucher (and any thread blocked on a
                    // page that came along) runs on only once the bounces are recorded, so
                    // what it does next never races this thread's bookkeeping.
                    let moved = to_host_keys(self, &pages, Cause::CpuFault { dup })?;
                    if pages.len() > 1 {
                        // The pages that came along bounced as much as the faulted one.
                        let mut g = self.lock();
                        let st = &mut *g;
                        let remote_ok = remote_capable(&st.devices, e.dev);
                        for &key in moved.iter().filter(|&&k| k != (s, vpn)) {
                            if st.thrash.record(key, now, true, remote_ok) == Verdict::Pin
                                && let Some(sp) = st.spaces.get_mut(&key.0)
                            {
                                sp.pt.update(key.1, |e| e.flags.insert(PageFlags::PINNED));
                                add(&self.counters.pins, 1);
                                add(&self.counters.thrash_events, 1);
                            }
                        }
                    }
                    let mut vpns: Vec<u64> = moved.iter().map(|&(_, v)| v).collect();
                    vpns.sort_unstable();
                    for run in vpns.chunk_by(|a, b| b == &(a + 1)) {
                        self.cpu.wake(run[0] * PAGE_SIZE, run.len() as u64 * PAGE_SIZE);
                    }
                    if moved.contains(&(s, vpn)) {
                        // Installed under the commit lock and woken: done. Not looping
                        // avoids acting on a state the woken thread already changed.
                        return Ok(());
                    }
                    // Staging pool exhausted or raced: wait for a finalize and retry.
                    let g = self.lock();
                    let _ = self.cv.wait_timeout(g, std::time::Duration::from_millis(5));
                    continue;
                }
            }
        }
    }

    fn install_zero(&self, page: u64) -> Result<(), CpuError> {
        // SAFETY: `page` is a page of a live registered region (checked under the lock).
        match unsafe { self.cpu.install_zero(page, PAGE_SIZE) } {
            Ok(()) => Ok(()),
            // Already present (a manual-mode user touched it): keep its bytes.
            Err(CpuError::Install { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The userfaultfd handler's entry: resolve, retrying with back-off on device errors
    /// (the faulting thread stays blocked, its data safe on the device). After
    /// [`crate::Config::cpu_fault_attempts`] failures the page is poisoned: the thread
    /// is woken into a SIGBUS at the page, never left blocked for ever.
    pub(crate) fn serve_cpu_fault(&self, va: u64, write: bool, missing: bool) {
        self.host_work(crate::mmu::HostWork::CpuFault);
        let attempts = self.cfg.cpu_fault_attempts.max(1);
        for attempt in 0..attempts {
            match self.cpu_fault_inner(va, write, missing) {
                Ok(()) | Err(GmemError::NotManaged { .. }) => return,
                Err(GmemError::Poisoned { .. }) => {
                    // Queued before the page was poisoned: the re-run touch hits SIGBUS.
                    self.cpu.wake(va & !(PAGE_SIZE - 1), PAGE_SIZE);
                    return;
                }
                Err(e) => {
                    tracing::error!(target: "gmem", va = format_args!("{va:#x}"), error = %e, attempt, "CPU fault failed; retrying");
                    if attempt + 1 < attempts {
                        std::thread::sleep(std::time::Duration::from_millis(1u64 << attempt.min(7)));
                    }
                }
            }
        }
        self.poison(va & !(PAGE_SIZE - 1));
    }

    /// Poison a device-resident page the CPU could not get back: its CPU page becomes a
    /// SIGBUS page and the blocked toucher is woken into it. A page that left the
    /// device meanwhile is only woken (its next touch faults normally).
    fn poison(&self, page: u64) {
        let mut g = self.lock();
        let vpn = page / PAGE_SIZE;
        let space = g.space_of_va(page);
        if let Some(sp) = space.and_then(|s| g.spaces.get_mut(&s)) {
            let e = sp.pt.get(vpn);
            if e.state == Residency::Device && !e.flags.intersects(PageFlags::MIGRATING | PageFlags::POISONED) {
                match self.cpu.poison(page) {
                    Ok(()) => {
                        sp.pt.update(vpn, |e| e.flags.insert(PageFlags::POISONED));
                        add(&self.counters.poisoned, 1);
                        tracing::error!(target: "gmem", va = format_args!("{page:#x}"), dev = e.dev,
                            "page poisoned: its data could not be brought back from the device; CPU touches get SIGBUS");
                    }
                    Err(err) => {
                        tracing::error!(target: "gmem", va = format_args!("{page:#x}"), error = %err, "poisoning failed")
                    }
                }
            }
        }
        drop(g);
        self.cpu.wake(page, PAGE_SIZE);
    }
}
