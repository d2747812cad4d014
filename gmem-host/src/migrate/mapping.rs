//! Mapping helpers of the migrations: releasing, narrowing and splitting device mappings,
//! flushing the invalidations they collect, freeing frames, coalescing copies; and
//! unpinning quiet pages (releasing their remote mappings).

use std::collections::HashMap;

use crate::error::MigrateError;
use crate::events::add;
use crate::mmu::{
    Asid, CopyOp, CopyTicket, GmMmu, Hooks, HostWork, InvalidationBatch, MemAddr, MmuError, PAGE_SIZE, PAGES_PER_HUGE,
    PageSize, RO, VaRange,
};
use crate::page_table::{PageFlags, Residency};
use crate::state::{DeviceSlot, Inner, State};
use crate::types::DeviceId;

/// Per-device invalidation batches of one operation.
pub(crate) type Batches = HashMap<u8, InvalidationBatch>;

/// Flush every batch, after the invalidations earlier flushes owe their device; the
/// first error wins (all are attempted). A group that keeps failing is owed from then on
/// ([`DeviceSlot::owed_invalidations`]).
///
/// A caller that frees frames of a device once this succeeds puts that device in
/// `batches` (an empty batch if it has nothing new to invalidate there): its owed
/// groups must then go out, so no TLB still reaches the frames. Other devices' owed
/// groups are tried once and do not fail the call, so one wedged device does not stop
/// the others' migrations.
pub(crate) fn flush_all(inner: &Inner, st: &mut State, batches: Batches) -> Result<(), MigrateError> {
    /// Attempts per coalesced group: an invalidation that keeps failing leaves stale
    /// translations, so it is retried before the caller has to give up.
    const ATTEMPTS: u32 = 3;
    let owing: Vec<u8> = (0..st.devices.len() as u8)
        .filter(|&d| !st.devices[d as usize].owed_invalidations.is_empty() && !batches.contains_key(&d))
        .collect();
    for d in owing {
        // Best effort: what fails stays owed.
        let _ = flush_device(inner, st, d, Vec::new(), 1);
    }
    let mut first = None;
    for (d, b) in batches {
        if let Err(e) = flush_device(inner, st, d, b.take_coalesced(), ATTEMPTS) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// Sends device `d`'s owed groups, then `groups`, each up to `attempts` times; the ones
/// that still fail are owed (merged per ASID). Nothing for a lost device.
fn flush_device(
    inner: &Inner,
    st: &mut State,
    d: u8,
    groups: Vec<(Asid, Vec<VaRange>)>,
    attempts: u32,
) -> Result<(), MigrateError> {
    let slot = &mut st.devices[d as usize];
    let owed = std::mem::take(&mut slot.owed_invalidations);
    if slot.lost {
        return Ok(());
    }
    let mmu = slot.mmu.clone();
    // A detached ASID's translations went with it (`pmap_destroy`).
    let groups: Vec<(Asid, Vec<VaRange>)> =
        owed.into_iter().filter(|(asid, _)| slot.asids.contains_key(asid)).chain(groups).collect();
    let (mut n, mut first) = (0, None);
    for (asid, ranges) in groups {
        n += ranges.len();
        let mut last = None;
        for _ in 0..attempts {
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
            tracing::warn!(target: "gmem", dev = d, ranges = ranges.len(), error = %source, "tlb invalidation failed; owed to the next flush");
            owe(&mut st.devices[d as usize], asid, ranges);
            first.get_or_insert(MigrateError::Invalidate { dev: d, source });
        }
    }
    if n > 0 {
        add(&inner.counters.tlb_ranges, n as u64);
        tracing::trace!(target: "gmem", dev = d, ranges = n, "tlb invalidation");
    }
    first.map_or(Ok(()), Err)
}

/// Adds `ranges` of `asid` to what `slot` owes, one group per ASID (a range owed twice
/// is sent once).
fn owe(slot: &mut DeviceSlot, asid: Asid, ranges: Vec<VaRange>) {
    match slot.owed_invalidations.iter_mut().find(|(a, _)| *a == asid) {
        Some((_, owed)) => {
            for r in ranges {
                if !owed.contains(&r) {
                    owed.push(r);
                }
            }
        }
        None => slot.owed_invalidations.push((asid, ranges)),
    }
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
    let base = chunk * PAGES_PER_HUGE;
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
    for i in 0..PAGES_PER_HUGE {
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
        demote_huge(inner, st, s, vpn / PAGES_PER_HUGE, batches)?;
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

/// Narrow a device mapping to read-only (read duplication).
pub(crate) fn narrow_to_read(
    inner: &Inner,
    st: &mut State,
    s: u32,
    vpn: u64,
    batches: &mut Batches,
) -> Result<(), MigrateError> {
    let State { devices, spaces, .. } = st;
    let Some(sp) = spaces.get_mut(&s) else { return Ok(()) };
    let e = sp.pt.get(vpn);
    let Some(asid) = sp.asid_of(DeviceId(e.dev)) else { return Ok(()) };
    let va = vpn * PAGE_SIZE;
    let tok = devices[e.dev as usize].mmu.pmap_protect(asid, va, PageSize::Base, RO).map_err(|source| {
        add(&inner.counters.hook_errors, 1);
        MigrateError::Unmap { va, dev: e.dev, source }
    })?;
    batches.entry(e.dev).or_default().push(tok);
    sp.pt.update(vpn, |e| e.prot = RO.bits());
    Ok(())
}

/// `n` pages cut into the parts a migration pipelines: even parts of `part_pages`
/// ([`Config::part_pages`](crate::Config)) or a little more (a plan shorter than two
/// parts is one); one part when not `pipelined` (no device of the migration declares
/// [`Hooks::ASYNC_COPY`]).
fn cut(n: usize, part_pages: usize, pipelined: bool) -> Vec<std::ops::Range<usize>> {
    let count = if pipelined { (n / part_pages.max(1)).max(1) } else { 1 };
    (0..count).map(|i| i * n / count..(i + 1) * n / count).collect()
}

/// The parts of a migration round of `n` pages ([`cut`] at the manager's
/// `Config::part_pages`), counted in `pipelined_parts` when there are several.
pub(crate) fn parts(inner: &Inner, n: usize, pipelined: bool) -> Vec<std::ops::Range<usize>> {
    let parts = cut(n, inner.cfg.part_pages, pipelined);
    if parts.len() > 1 {
        add(&inner.counters.pipelined_parts, parts.len() as u64);
    }
    parts
}

/// Tells the host work of a part of a migration round: the round's first part that
/// copies pays the round ([`HostWork::Migration`]), later ones their own commit
/// ([`HostWork::MigrationPart`]). `told`: whether the round was told already.
pub(crate) fn tell_part(inner: &Inner, told: &mut bool, to_device: u64, to_host: u64) {
    inner.host_work(match *told {
        false => HostWork::Migration { to_device, to_host },
        true => HostWork::MigrationPart { to_device, to_host },
    });
    *told = true;
}

/// Starts copying `ops` on `mmu`: [`GmMmu::copy_start`] on a device with
/// [`Hooks::ASYNC_COPY`] (`async_copy`), else the whole [`GmMmu::copy_batch`] here.
pub(crate) fn start_copy(mmu: &dyn GmMmu, async_copy: bool, ops: &[CopyOp]) -> Result<CopyTicket, MmuError> {
    if async_copy { mmu.copy_start(ops) } else { mmu.copy_batch(ops).map(|()| CopyTicket::DONE) }
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

/// Unpin every quiet pinned page and release its remote mappings.
pub(crate) fn unpin_quiet(inner: &Inner) -> usize {
    let now = inner.now();
    let mut g = inner.lock();
    let mut pinned = Vec::new();
    for (&s, sp) in &g.spaces {
        for r in sp.regions.values() {
            for (vpn, e) in sp.pt.touched(r.start / PAGE_SIZE, r.len / PAGE_SIZE) {
                if e.flags.contains(PageFlags::PINNED) && !e.flags.contains(PageFlags::MIGRATING) {
                    pinned.push((s, vpn, e));
                }
            }
        }
    }
    let mut n = 0;
    let st = &mut *g;
    let mut batches = Batches::new();
    for (s, vpn, e) in pinned {
        if !st.thrash.quiet((s, vpn), now) {
            continue;
        }
        let Some(sp) = st.spaces.get_mut(&s) else { continue };
        if e.flags.contains(PageFlags::REMOTE) {
            let slot = &st.devices[e.dev as usize];
            if let Some(asid) = sp.asid_of(DeviceId(e.dev)) {
                match slot.mmu.pmap_release(asid, vpn * PAGE_SIZE, PageSize::Base) {
                    Ok(t) => batches.entry(e.dev).or_default().push(t),
                    Err(_) => continue,
                }
            }
        }
        sp.pt.update(vpn, |e| {
            e.flags.remove(PageFlags::PINNED | PageFlags::REMOTE);
            e.prot = 0;
        });
        st.thrash.forget((s, vpn));
        n += 1;
    }
    for (d, b) in batches {
        let slot = &st.devices[d as usize];
        if let Err(e) = b.flush(slot.mmu.as_ref()) {
            tracing::warn!(target: "gmem", error = %e, "TLB flush after unpin failed");
        }
    }
    add(&inner.counters.unpins, n as u64);
    if n > 0 {
        tracing::info!(target: "gmem", pages = n, "thrash: unpinned");
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_even_and_hold_at_least_a_part_of_pages() {
        let one = |n: usize| vec![std::ops::Range { start: 0, end: n }];
        assert_eq!(cut(16, 64, true), one(16), "a small plan is one part");
        assert_eq!(cut(100, 64, true), one(100));
        assert_eq!(cut(150, 64, true), [0..75, 75..150]);
        assert_eq!(cut(256, 64, true), [0..64, 64..128, 128..192, 192..256]);
        assert_eq!(cut(0, 64, true), one(0));
        assert_eq!(cut(256, 64, false), one(256), "no pipeline: one part");
        assert_eq!(cut(9, 4, true), [0..4, 4..9], "small parts (tests, soaks)");
        assert_eq!(cut(3, 0, true), [0..1, 1..2, 2..3], "0 counts as 1");
    }
}
