//! Host → device migration of a planned set of pages (the device fault path,
//! [`crate::fault`], decides which), one function per phase:
//! 1. **collect** ([`collect`], lock held): allocate frames (a 2 MiB block for a whole
//!    chunk, [`allocate`]), write-protect the CPU pages ([`protect_cpu_copies`]), mark them
//!    `MIGRATING | FROM_CPU`, record sequence numbers; first-touch pages on a device with
//!    [`Hooks::PEER_MAP`] are zero-filled, mapped and committed right here in one call
//!    ([`peer_map_first_touch`]);
//! 2. **copy** ([`copy_start`], [`copy_finish`], [`zero_fill`], lock dropped): one
//!    [`GmMmu::copy_start`](crate::GmMmu::copy_start) of coalesced runs, zero-fill for
//!    first-touch pages;
//! 3. **commit** ([`commit`]: [`check_commits`], [`map_huge`], [`map_base`],
//!    [`drop_cpu_copies`], [`commit_page`], lock held): re-check each sequence number (a
//!    CPU write during the copy bumped it: that page rolls back and is retried), map on
//!    the device (one 2 MiB mapping for a whole chunk), drop the CPU copies;
//! 4. **finalize or roll back** ([`roll_back`]): clear flags, free frames of failed
//!    pages, wake waiters.
//!
//! Phases 2-4 run once per part of the plan ([`parts`]): on a device with
//! [`Hooks::ASYNC_COPY`], a plan of 128 pages or more is pipelined, the copy of part k+1
//! running on the device while the host does part k's work and commit. A 2 MiB
//! block cut by parts has its pages committed as their parts end, unmapped and still
//! `MIGRATING` ([`stage_page`]), and is mapped whole by the part holding its last page.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::early::EarlyAnswers;
use super::mapping::{coalesce, free_frame, parts, start_copy, tell_part};
use crate::error::MigrateError;
use crate::events::add;
use crate::hash::{FastMap, FastSet};
use crate::mmu::{
    CopyTicket, GmMmu, HUGE_PAGE_SIZE, Hooks, HostRegionId, MemAddr, MmuError, PAGE_SIZE, PAGES_PER_HUGE, PageSize,
    PeerMapOp, Prepare, Prot, RO, RW,
};
use crate::page_table::{PageFlags, Residency};
use crate::prefetch::Mig;
use crate::state::{DeviceSlot, Inner, Space, State};
use crate::types::{DeviceId, PageKey};

/// What became of one page of a device fault's plan.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// On the device and mapped.
    Done,
    /// Not now (busy, raced, out of memory for the moment): the device faults again.
    Retry,
    /// Failed; the data is intact where it was.
    Abort(Arc<MigrateError>),
    /// Not in a live region.
    NotManaged,
    /// The range's protection does not allow the access (it allows this much); nothing
    /// moved.
    Denied(Prot),
}

/// A page collected for migration to the device.
pub(crate) struct Planned {
    mig: Mig,
    pa: u64,
    seq: u32,
    from_cpu: bool,
    zero: bool,
    huge: bool,
    /// Rights of its device mapping: read-only for a read duplicate, never beyond the
    /// range's protection.
    prot: Prot,
    /// Zero-filled, mapped and committed in phase 1 by `peer_map` (then dropped from
    /// the plan).
    done_under_lock: bool,
}

/// Phase 1: frames, CPU write protection, MIGRATING marks; first-touch pages with
/// `peer_map` finish here.
pub(crate) fn collect(
    inner: &Inner,
    g: &mut State,
    dev: DeviceId,
    migrate: &[Mig],
    outcome: &mut FastMap<PageKey, Outcome>,
) -> Vec<Planned> {
    let mut planned = allocate(inner, g, dev, migrate, outcome);
    protect_cpu_copies(inner, g, dev, &mut planned, outcome);
    if g.devices[dev.0 as usize].info.hooks.contains(Hooks::PEER_MAP) {
        peer_map_first_touch(inner, g, dev, &mut planned, outcome);
    }
    planned.retain(|p| !p.done_under_lock);
    planned
}

/// Phase 1: a frame for every page (a whole 2 MiB block for a chunk migrating whole on a
/// device with huge pages), then [`plan_page`]. A page without a frame is answered retry.
fn allocate(
    inner: &Inner,
    g: &mut State,
    dev: DeviceId,
    migrate: &[Mig],
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
            planned.extend(plan_page(inner, slot, sp, dev, m, (pa, block.is_some()), outcome));
        }
    }
    planned
}

/// Frames [`plan_page`] offers a device that keeps refusing them before the page is
/// aborted.
const FRAME_TRIES: usize = 3;

/// Phase 1 for one page given frame `pa` (`huge`: of a 2 MiB block): a device that is told of frames
/// ([`Hooks::PAGE_NOTIFY`]) may refuse it: another frame is tried (up to
/// [`FRAME_TRIES`]), then the page is aborted; then the page is marked
/// `MIGRATING | FROM_CPU` (and `CPU_WP` when its data is on the CPU), its sequence number
/// recorded and its region's migration count raised.
fn plan_page(
    inner: &Inner,
    slot: &mut DeviceSlot,
    sp: &mut Space,
    dev: DeviceId,
    m: &Mig,
    (mut pa, mut huge): (u64, bool),
    outcome: &mut FastMap<PageKey, Outcome>,
) -> Option<Planned> {
    if slot.info.hooks.contains(Hooks::PAGE_NOTIFY) {
        // A refused frame is held aside (so the allocator cannot hand it out again) while
        // another one is tried, up to FRAME_TRIES frames; then all go back.
        let mut refused = Vec::new();
        let mut last = None;
        while refused.len() < FRAME_TRIES {
            match slot.mmu.alloc_page(pa, PageSize::Base) {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(source) => {
                    add(&inner.counters.hook_errors, 1);
                    refused.push(pa);
                    last = Some(MigrateError::AllocPage { dev: dev.0, pa, source });
                    match slot.buddy.alloc(0).filter(|_| refused.len() < FRAME_TRIES) {
                        Some(other) => (pa, huge) = (other, false),
                        None => break,
                    }
                }
            }
        }
        for r in refused {
            let _ = slot.buddy.free(r, 0);
        }
        if let Some(e) = last {
            outcome.insert(m.key, Outcome::Abort(Arc::new(e)));
            return None;
        }
    }
    let vpn = m.key.1;
    let from_cpu = sp.pt.get(vpn).state == Residency::Cpu;
    let prot = (if m.dup { RO } else { RW }) & sp.attrs.get(vpn * PAGE_SIZE).prot;
    let ne = sp.pt.update(vpn, |e| {
        e.flags.insert(PageFlags::MIGRATING | PageFlags::FROM_CPU);
        if from_cpu {
            e.flags.insert(PageFlags::CPU_WP);
        }
    });
    if let Some(r) = sp.region_of_mut(vpn * PAGE_SIZE) {
        r.inflight += 1;
    }
    Some(Planned { mig: *m, pa, seq: ne.seq, from_cpu, zero: !from_cpu, huge, prot, done_under_lock: false })
}

/// Phase 1: write-protect the CPU copies being copied out, in runs (one ioctl per run).
/// The pages of a run that cannot be protected are aborted and leave the plan.
fn protect_cpu_copies(
    inner: &Inner,
    g: &mut State,
    dev: DeviceId,
    planned: &mut Vec<Planned>,
    outcome: &mut FastMap<PageKey, Outcome>,
) {
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
    let State { devices, spaces, .. } = g;
    let slot = &mut devices[dev.0 as usize];
    let mut dropped: FastSet<usize> = FastSet::default();
    for (s, start, n, idx) in runs {
        let Err(source) = inner.cpu.protect(start * PAGE_SIZE, n * PAGE_SIZE) else { continue };
        let err = Arc::new(MigrateError::Install { va: start * PAGE_SIZE, source });
        // One UFFDIO_WRITEPROTECT cannot cross a mapping boundary (an `mprotect` splits
        // the region's mapping): a longer run is protected page by page, and only the
        // pages that still fail are aborted.
        let failing: Vec<usize> = if n > 1 {
            idx.into_iter()
                .filter(|&i| inner.cpu.protect(planned[i].mig.key.1 * PAGE_SIZE, PAGE_SIZE).is_err())
                .collect()
        } else {
            idx
        };
        for i in failing {
            let p = &planned[i];
            free_frame(slot, p.pa);
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
    if !dropped.is_empty() {
        let mut i = 0;
        planned.retain(|_| {
            i += 1;
            !dropped.contains(&(i - 1))
        });
    }
}

/// Phase 1, on a device with [`Hooks::PEER_MAP`]: first-touch pages (not part of a 2 MiB
/// block) are zero-filled and mapped in one `peer_map` call per space, under the lock (no
/// other copy can race), and committed at once. On failure they go the long way
/// (prepare + enter in phases 2 and 3).
fn peer_map_first_touch(
    inner: &Inner,
    g: &mut State,
    dev: DeviceId,
    planned: &mut [Planned],
    outcome: &mut FastMap<PageKey, Outcome>,
) {
    let State { devices, spaces, .. } = g;
    let slot = &mut devices[dev.0 as usize];
    let mut by_space: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, p) in planned.iter().enumerate() {
        if p.zero && !p.huge {
            by_space.entry(p.mig.key.0).or_default().push(i);
        }
    }
    for (s, idx) in by_space {
        let Some(sp) = spaces.get_mut(&s) else { continue };
        let Some(asid) = sp.asid_of(dev) else { continue };
        let ops: Vec<PeerMapOp> = idx
            .iter()
            .map(|&i| PeerMapOp {
                va: planned[i].mig.key.1 * PAGE_SIZE,
                pa: planned[i].pa,
                size: PageSize::Base,
                prot: planned[i].prot,
                fill: Prepare::Zero,
            })
            .collect();
        if let Err(e) = slot.mmu.peer_map(asid, &ops) {
            add(&inner.counters.hook_errors, 1);
            tracing::warn!(target: "gmem", error = %e, "peer_map failed; falling back to prepare+enter");
            continue;
        }
        // Mapped and visible: commit now, under the same lock hold, so no CPU touch can
        // slip between the mapping and the commit.
        for &i in &idx {
            let p = &mut planned[i];
            p.done_under_lock = true;
            let (_, vpn) = p.mig.key;
            sp.pt.update(vpn, |e| {
                e.state = Residency::Device;
                e.dev = dev.0;
                e.pfn = (p.pa / PAGE_SIZE) as u32;
                e.prot = p.prot.bits();
                e.flags.remove(PageFlags::MIGRATING | PageFlags::FROM_CPU | PageFlags::HUGE);
            });
            if let Some(r) = sp.region_of_mut(vpn * PAGE_SIZE) {
                r.inflight = r.inflight.saturating_sub(1);
            }
            slot.lru.touch(p.mig.key, (p.pa / PAGE_SIZE) as u32);
            add(&inner.counters.zero_fills, 1);
            outcome.insert(p.mig.key, Outcome::Done);
        }
    }
}

/// Phases 2-4. Returns the pages to retry (sequence number changed).
///
/// On a device with [`Hooks::ASYNC_COPY`] a plan of more than one part ([`parts`]) runs
/// as a pipeline: the next part's copy starts before this part's host work and commit, so
/// the device moves data while the host commits. A 2 MiB block cut by a part boundary is
/// committed part by part without a device mapping ([`stage_page`]) and mapped whole by
/// the part holding its last page.
///
/// With `early` (a device fault batch), the faults each part resolves are reported to the
/// device while the next part copies ([`GmMmu::faults_resolved`]).
pub(crate) fn copy_and_commit(
    inner: &Inner,
    dev: DeviceId,
    planned: Vec<Planned>,
    outcome: &mut FastMap<PageKey, Outcome>,
    mut early: Option<&mut EarlyAnswers>,
) -> FastSet<PageKey> {
    if planned.is_empty() {
        return FastSet::default();
    }
    let (mmu, hosts, pipelined) = {
        let g = inner.lock();
        let hosts: Vec<Option<(HostRegionId, u64)>> = planned
            .iter()
            .map(|p| {
                let va = p.mig.key.1 * PAGE_SIZE;
                g.spaces.get(&p.mig.key.0).and_then(|sp| sp.region_of(va)).map(|r| (r.host, va - r.start))
            })
            .collect();
        let slot = &g.devices[dev.0 as usize];
        (slot.mmu.clone(), hosts, slot.info.hooks.contains(Hooks::ASYNC_COPY))
    };
    let parts = parts(inner, planned.len(), pipelined);
    let start = |part: &std::ops::Range<usize>| {
        copy_start(mmu.as_ref(), pipelined, &planned[part.clone()], &hosts[part.clone()])
    };
    let mut round =
        Round { inner, dev, planned: &planned, blocks: Blocks::of(&planned), outcome, retry: FastSet::default() };
    let mut started = start(&parts[0]);
    let mut round_told = false;
    for (k, part) in parts.iter().enumerate() {
        let pages = &planned[part.clone()];
        // Phase 2: this part's copy ends (lock dropped), its first-touch frames are
        // zero-filled, and the next part's copy starts.
        let copy_err = copy_finish(inner, dev, mmu.as_ref(), started, pages);
        let prep_err = zero_fill(inner, dev, mmu.as_ref(), &planned, part.clone(), &mut round.blocks);
        started = parts.get(k + 1).and_then(start);
        let copied = pages.iter().filter(|p| p.from_cpu).count() as u64;
        if copied > 0 {
            tell_part(inner, &mut round_told, copied, 0);
        }
        let errs = Errors { copy: copy_err, prep: prep_err };
        // A later part still copies: the faults this part resolved are answered now.
        let report = early.as_deref_mut().filter(|_| k + 1 < parts.len());
        if let Some(resolved) = round.commit(part.clone(), errs, report) {
            mmu.faults_resolved(&resolved);
        }
    }
    inner.cv.notify_all();
    round.retry
}

/// One migration round across its parts: the plan, its 2 MiB blocks, and what became of
/// each page.
struct Round<'a> {
    inner: &'a Inner,
    dev: DeviceId,
    planned: &'a [Planned],
    blocks: Blocks,
    outcome: &'a mut FastMap<PageKey, Outcome>,
    /// Pages whose commit raced a change: the caller plans them again.
    retry: FastSet<PageKey>,
}

/// The 2 MiB blocks of a plan (pages with `huge`, by block address): where each one
/// ends, its zero-fill, and the pages committed ahead of its mapping.
#[derive(Default)]
struct Blocks {
    /// Plan index of each block's last page.
    last: FastMap<u64, usize>,
    /// Pages of each block in the plan, and whether all of them are first-touch.
    pieces: FastMap<u64, (usize, bool)>,
    /// A whole first-touch block's zero-fill, once done.
    zeroed: FastMap<u64, Option<Arc<MigrateError>>>,
    /// Pages committed without a mapping ([`stage_page`]), with their sequence numbers
    /// then, waiting for their block's last part.
    staged: FastMap<u64, Vec<Staged>>,
}

impl Blocks {
    fn of(planned: &[Planned]) -> Self {
        let mut b = Blocks::default();
        for (i, p) in planned.iter().enumerate().filter(|(_, p)| p.huge) {
            let block = block_of(p);
            b.last.insert(block, i);
            let e = b.pieces.entry(block).or_insert((0, true));
            e.0 += 1;
            e.1 &= p.zero;
        }
        b
    }

    /// Page `i` is in a 2 MiB block whose last page comes after `part`.
    fn continues_after(&self, planned: &[Planned], i: usize, part: &std::ops::Range<usize>) -> bool {
        planned[i].huge && self.last.get(&block_of(&planned[i])).is_some_and(|&l| l >= part.end)
    }

    /// The staged pages of the blocks whose last page is in `part`.
    fn take_staged(&mut self, part: &std::ops::Range<usize>) -> Vec<Staged> {
        let ending: Vec<u64> = self.last.iter().filter(|(_, l)| part.contains(l)).map(|(&b, _)| b).collect();
        ending.iter().filter_map(|b| self.staged.remove(b)).flatten().collect()
    }
}

/// A staged page: its plan index and its sequence number when staged.
type Staged = (usize, u32);

/// The 2 MiB block a page's frame is in.
fn block_of(p: &Planned) -> u64 {
    p.pa & !(HUGE_PAGE_SIZE - 1)
}

/// A part's phase 2 failures: its copy's (for every copied page), and its zero-fills' by
/// plan index.
struct Errors {
    copy: Option<Arc<MigrateError>>,
    prep: HashMap<usize, Arc<MigrateError>>,
}

impl Round<'_> {
    /// Phase 3 (lock held) and 4 for one part (`part` of the plan): which pages may commit,
    /// their device mappings (2 MiB where a whole chunk migrated), the CPU copies dropped,
    /// the commits, then the roll-back of the failures. Pages of a block that continues in a
    /// later part are staged; the part holding a block's last page maps its staged pages too.
    /// With `early`, returns the batch's faults now resolved ([`EarlyAnswers::take_resolved`],
    /// under the same lock).
    fn commit(
        &mut self,
        part: std::ops::Range<usize>,
        errs: Errors,
        early: Option<&mut EarlyAnswers>,
    ) -> Option<Vec<usize>> {
        let Round { inner, dev, planned, blocks, outcome, retry } = self;
        let (inner, dev, planned) = (*inner, *dev, *planned);
        let mut g = inner.lock();
        let st = &mut *g;
        let (ok, mut failed) = check_commits(inner, st, planned, part.clone(), errs, retry);
        let (ahead, ok): (Vec<usize>, Vec<usize>) =
            ok.into_iter().partition(|&i| blocks.continues_after(planned, i, &part));
        drop_cpu_copies(inner, planned, &ahead);
        for &i in &ahead {
            let seq = stage_page(st, dev, &planned[i]);
            blocks.staged.entry(block_of(&planned[i])).or_default().push((i, seq));
        }
        // A staged page changed while it waited (an `mprotect` narrowing the range bumps the
        // sequence number of a page in migration): it commits unmapped, and the device's
        // next touch maps it as the range now allows.
        let (staged, changed): (Vec<Staged>, Vec<Staged>) =
            blocks.take_staged(&part).into_iter().partition(|&(i, seq)| seq_now(st, &planned[i]) == Some(seq));
        let staged: Vec<usize> = staged.into_iter().map(|(i, _)| i).collect();
        for &(i, _) in &changed {
            commit_page(inner, st, dev, &planned[i], Prot::empty(), false, outcome);
        }
        let all: Vec<usize> = staged.iter().chain(&ok).copied().collect();
        let mapped_huge = map_huge(inner, st, dev, planned, &all);
        let committed = map_base(inner, st, dev, planned, &ok, &mapped_huge, &mut failed);
        drop_cpu_copies(inner, planned, &committed);
        for &i in &staged {
            let huge = mapped_huge.contains(&i);
            let prot = if huge { planned[i].prot } else { map_staged(inner, st, dev, &planned[i]) };
            commit_page(inner, st, dev, &planned[i], prot, huge, outcome);
        }
        for &i in &committed {
            commit_page(inner, st, dev, &planned[i], planned[i].prot, mapped_huge.contains(&i), outcome);
        }
        roll_back(inner, st, dev, planned, failed, outcome);
        tracing::debug!(
            target: "gmem",
            dev = dev.0,
            pages = committed.len() + staged.len() + changed.len(),
            staged = ahead.len(),
            retry = retry.len(),
            "migrate to device"
        );
        early.map(|e| e.take_resolved(st, dev))
    }
}

/// Phase 3 for a page whose 2 MiB block continues in a later part: its data is on the
/// device (the CPU copy is dropped next), its entry says so, without a device mapping
/// yet; it stays `MIGRATING`, so a CPU touch waits for the block's last part. Returns its
/// new sequence number (0 when its space is gone).
fn stage_page(st: &mut State, dev: DeviceId, p: &Planned) -> u32 {
    let (s, vpn) = p.mig.key;
    let Some(sp) = st.spaces.get_mut(&s) else { return 0 };
    let e = sp.pt.update(vpn, |e| {
        e.state = Residency::Device;
        e.dev = dev.0;
        e.pfn = (p.pa / PAGE_SIZE) as u32;
        e.prot = 0;
        e.flags.remove(PageFlags::FROM_CPU | PageFlags::CPU_WP | PageFlags::REMOTE);
    });
    e.seq
}

/// The sequence number of a planned page's entry now (`None`: its space is gone).
fn seq_now(st: &State, p: &Planned) -> Option<u32> {
    st.spaces.get(&p.mig.key.0).map(|sp| sp.pt.get(p.mig.key.1).seq)
}

/// Phase 3: a base mapping for a staged page whose block did not map whole. Returns its
/// rights; none when the mapping failed (its data is on the device: it commits unmapped
/// and the device's next touch faults it in).
fn map_staged(inner: &Inner, st: &State, dev: DeviceId, p: &Planned) -> Prot {
    let (s, vpn) = p.mig.key;
    let Some(asid) = st.spaces.get(&s).and_then(|sp| sp.asid_of(dev)) else { return Prot::empty() };
    let mmu = &st.devices[dev.0 as usize].mmu;
    match mmu.pmap_enter(asid, vpn * PAGE_SIZE, MemAddr::Device(p.pa), PageSize::Base, p.prot) {
        Ok(()) => p.prot,
        Err(e) => {
            add(&inner.counters.hook_errors, 1);
            tracing::warn!(target: "gmem", error = %e, "mapping a staged page; left for the next device fault");
            Prot::empty()
        }
    }
}

/// Phase 2: start copying the CPU-resident pages of `planned` (`hosts[i]`: page `i`'s
/// host region and offset) to their frames, as one batch of coalesced runs
/// ([`GmMmu::copy_start`] on a device with [`Hooks::ASYNC_COPY`], else the whole
/// [`GmMmu::copy_batch`] here). `None`: nothing to copy.
fn copy_start(
    mmu: &dyn GmMmu,
    async_copy: bool,
    planned: &[Planned],
    hosts: &[Option<(HostRegionId, u64)>],
) -> Option<Result<CopyTicket, MmuError>> {
    let ops =
        coalesce(
            planned.iter().zip(hosts).filter(|(p, _)| p.from_cpu).filter_map(|(p, h)| {
                h.map(|(region, offset)| (MemAddr::Host { region, offset }, MemAddr::Device(p.pa)))
            }),
        );
    (!ops.is_empty()).then(|| start_copy(mmu, async_copy, &ops))
}

/// Phase 2: wait for the copy [`copy_start`] started for `planned`; its error names the
/// part's first copied page.
fn copy_finish(
    inner: &Inner,
    dev: DeviceId,
    mmu: &dyn GmMmu,
    started: Option<Result<CopyTicket, MmuError>>,
    planned: &[Planned],
) -> Option<Arc<MigrateError>> {
    let result = match started? {
        Ok(ticket) => mmu.copy_finish(ticket),
        Err(e) => Err(e),
    };
    result.err().map(|source| {
        add(&inner.counters.hook_errors, 1);
        let va = planned.iter().find(|p| p.from_cpu).map_or(0, |p| p.mig.key.1 * PAGE_SIZE);
        Arc::new(MigrateError::Copy { va, dev: dev.0, source })
    })
}

/// Phase 2: zero-fill the first-touch frames of `part`: a whole 2 MiB block of them in
/// one call when all 512 pieces are in the plan (only then is every byte of the block ours
/// to clear), done by the first part that holds one of them. Returns the failures, by
/// plan index.
fn zero_fill(
    inner: &Inner,
    dev: DeviceId,
    mmu: &dyn GmMmu,
    planned: &[Planned],
    part: std::ops::Range<usize>,
    blocks: &mut Blocks,
) -> HashMap<usize, Arc<MigrateError>> {
    let mut prep_err: HashMap<usize, Arc<MigrateError>> = HashMap::new();
    for i in part {
        let p = &planned[i];
        if !p.zero {
            continue;
        }
        let va = p.mig.key.1 * PAGE_SIZE;
        let fail = |source| {
            add(&inner.counters.hook_errors, 1);
            Arc::new(MigrateError::Prepare { va, dev: dev.0, source })
        };
        let block = block_of(p);
        let whole = p.huge && blocks.pieces.get(&block) == Some(&(PAGES_PER_HUGE as usize, true));
        let err = if whole {
            blocks
                .zeroed
                .entry(block)
                .or_insert_with(|| mmu.prepare_page(block, PageSize::Huge, Prepare::Zero).err().map(fail))
                .clone()
        } else {
            mmu.prepare_page(p.pa, PageSize::Base, Prepare::Zero).err().map(fail)
        };
        if let Some(e) = err {
            prep_err.insert(i, e);
        }
    }
    prep_err
}

/// Pages of the plan (by index) that failed, with the error to answer (`None`: retry).
type Failed = Vec<(usize, Option<Arc<MigrateError>>)>;

/// Phase 3 (lock held): which pages of `part` may commit. A failed copy or zero-fill
/// fails the page; a sequence number that moved during the copy sends it to `retry`.
fn check_commits(
    inner: &Inner,
    st: &State,
    planned: &[Planned],
    part: std::ops::Range<usize>,
    errs: Errors,
    retry: &mut FastSet<PageKey>,
) -> (Vec<usize>, Failed) {
    let mut ok: Vec<usize> = Vec::new();
    let mut failed: Failed = Vec::new();
    for i in part {
        let p = &planned[i];
        let (s, vpn) = p.mig.key;
        let cur = st.spaces.get(&s).map(|sp| sp.pt.get(vpn));
        let err = if p.from_cpu { errs.copy.clone() } else { errs.prep.get(&i).cloned() };
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
    (ok, failed)
}

/// Phase 3: one 2 MiB mapping for every block whose 512 pages all may commit. Returns the
/// plan indices so mapped (a block that fails to map is mapped page by page).
fn map_huge(inner: &Inner, st: &State, dev: DeviceId, planned: &[Planned], ok: &[usize]) -> FastSet<usize> {
    let mut huge_blocks: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for &i in ok {
        // A block maps whole only with full rights on every page.
        if planned[i].huge && planned[i].prot == RW {
            huge_blocks.entry(planned[i].pa & !(HUGE_PAGE_SIZE - 1)).or_default().push(i);
        }
    }
    let mut mapped_huge: FastSet<usize> = FastSet::default();
    let mmu = &st.devices[dev.0 as usize].mmu;
    for (_, idx) in huge_blocks {
        if idx.len() as u64 != PAGES_PER_HUGE {
            continue;
        }
        let (s, vpn0) = planned[idx[0]].mig.key;
        let Some(asid) = st.spaces.get(&s).and_then(|sp| sp.asid_of(dev)) else { continue };
        let va = (vpn0 * PAGE_SIZE) & !(HUGE_PAGE_SIZE - 1);
        let pa = planned[idx[0]].pa & !(HUGE_PAGE_SIZE - 1);
        if mmu.pmap_enter(asid, va, MemAddr::Device(pa), PageSize::Huge, RW).is_ok() {
            mapped_huge.extend(idx);
            add(&inner.counters.huge_maps, 1);
        }
    }
    mapped_huge
}

/// Phase 3: a base mapping for every page of `ok` not in a 2 MiB mapping (read-only for
/// a read duplicate). Returns the pages that may commit; the others join `failed`.
fn map_base(
    inner: &Inner,
    st: &State,
    dev: DeviceId,
    planned: &[Planned],
    ok: &[usize],
    mapped_huge: &FastSet<usize>,
    failed: &mut Failed,
) -> Vec<usize> {
    let mmu = &st.devices[dev.0 as usize].mmu;
    let mut committed = Vec::new();
    for &i in ok {
        let p = &planned[i];
        let (s, vpn) = p.mig.key;
        let va = vpn * PAGE_SIZE;
        let prot = p.prot;
        if !mapped_huge.contains(&i) {
            let Some(asid) = st.spaces.get(&s).and_then(|sp| sp.asid_of(dev)) else {
                failed.push((i, None));
                continue;
            };
            if let Err(source) = mmu.pmap_enter(asid, va, MemAddr::Device(p.pa), PageSize::Base, prot) {
                add(&inner.counters.hook_errors, 1);
                failed.push((i, Some(Arc::new(MigrateError::Map { va, dev: dev.0, source }))));
                continue;
            }
        }
        committed.push(i);
    }
    committed
}

/// Phase 3: drop the CPU copies of moved (not duplicated) pages, in runs.
fn drop_cpu_copies(inner: &Inner, planned: &[Planned], committed: &[usize]) {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &i in committed {
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
}

/// Phase 3: commit one page mapped with `prot` (none: left unmapped): its entry names
/// the frame (`huge`: inside a 2 MiB mapping), the region's migration count drops, the
/// frame joins the LRU.
fn commit_page(
    inner: &Inner,
    st: &mut State,
    dev: DeviceId,
    p: &Planned,
    prot: Prot,
    huge: bool,
    outcome: &mut FastMap<PageKey, Outcome>,
) {
    let (s, vpn) = p.mig.key;
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
    st.devices[dev.0 as usize].lru.touch(p.mig.key, (p.pa / PAGE_SIZE) as u32);
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
    outcome.insert(p.mig.key, Outcome::Done);
}

/// Phase 4: roll back failures (data stays on the CPU; frames return). No failed page
/// was mapped (huge mappings are only made for blocks whose every page succeeded).
fn roll_back(
    inner: &Inner,
    st: &mut State,
    dev: DeviceId,
    planned: &[Planned],
    failed: Failed,
    outcome: &mut FastMap<PageKey, Outcome>,
) {
    for (i, err) in failed {
        let p = &planned[i];
        let (s, vpn) = p.mig.key;
        let va = vpn * PAGE_SIZE;
        free_frame(&mut st.devices[dev.0 as usize], p.pa);
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
}
