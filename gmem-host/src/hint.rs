//! The hints that move pages (`hmadvise` `PREFETCH` and `DONTNEED`): all or nothing, and
//! a [`HintReport`] of what they did.
//!
//! A hint first records the range's logical page-table entries (a [`Snapshot`]), then
//! moves pages: toward a device through the device fault path's migration
//! ([`crate::fault::to_device`]), toward the host through
//! [`crate::migrate::to_host::range_to_host`]. A page whose migration fails with a device
//! error is tried again, like a device fault is replayed (and a refused frame is swapped
//! for another one at once, see `migrate::to_device`), up to
//! [`Config::dev_fault_dma_retries`](crate::Config) times. If the hint still fails,
//! [`restore`] puts every page of the range back where the snapshot had it — pages that
//! arrived on a device go back (to the host, to their previous device, or back to
//! untouched), mappings the hint made are released, pages that left a device return to
//! it — and the hint's error is returned. The report compares the snapshot with the
//! range afterwards.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{FaultError, GmemError, MigrateError};
use crate::events::add;
use crate::fault::{Item, device_error, to_device};
use crate::migrate::mapping::{Batches, flush_all, free_frame, release_mapping};
use crate::migrate::to_device::Outcome;
use crate::migrate::to_host::{Cause, range_to_host, to_host_keys};
use crate::mmu::{MemAddr, PAGE_SIZE, PageSize, Prot};
use crate::page_table::{PageEntry, PageFlags, Residency};
use crate::state::{Inner, State};
use crate::types::{DeviceId, HintReport, PageKey};

/// The entries of a range that differ from an untouched page, sorted by page number
/// (as the page table hands them out: no hashing per page).
#[derive(Default)]
pub(crate) struct Snapshot(Vec<(u64, PageEntry)>);

impl Snapshot {
    /// Page `vpn`'s entry (an untouched page's if the snapshot does not hold it).
    fn get(&self, vpn: u64) -> PageEntry {
        self.0.binary_search_by_key(&vpn, |&(v, _)| v).map_or_else(|_| PageEntry::default(), |i| self.0[i].1)
    }

    /// Its pages with their entries, in page order.
    fn iter(&self) -> impl Iterator<Item = (u64, PageEntry)> + '_ {
        self.0.iter().copied()
    }
}

/// The range's entries now (lock taken inside).
pub(crate) fn snapshot(inner: &Inner, s: u32, va: u64, len: u64) -> Snapshot {
    let g = inner.lock();
    g.spaces.get(&s).map_or_else(Snapshot::default, |sp| {
        Snapshot(
            sp.pt
                .touched_iter(va / PAGE_SIZE, len / PAGE_SIZE)
                .filter(|(_, e)| e.state != Residency::Unpopulated || e.prot != 0 || !e.flags.is_empty())
                .collect(),
        )
    })
}

/// hmadvise(PREFETCH, device): migrate `[va, va+len)` to `dev`, all or nothing.
pub(crate) fn prefetch_to_device(
    inner: &Inner,
    s: u32,
    dev: DeviceId,
    va: u64,
    len: u64,
) -> Result<HintReport, GmemError> {
    let before = snapshot(inner, s, va, len);
    if let Err(e) = prefetch_pages(inner, s, dev, va, len) {
        if let Err(r) = restore(inner, s, &before, va, len) {
            tracing::error!(target: "gmem", error = %r, "prefetch hint: rolling back failed");
        }
        return Err(e);
    }
    add(&inner.counters.advised_prefetch, len / PAGE_SIZE);
    let after = snapshot(inner, s, va, len);
    let here = |e: &PageEntry| e.on_device() && e.dev == dev.0;
    let remote = |e: &PageEntry| e.flags.contains(PageFlags::REMOTE) && e.dev == dev.0;
    let moved = after.iter().filter(|(v, e)| here(e) && !here(&before.get(*v))).count() as u64;
    Ok(HintReport {
        pages_moved: moved,
        bytes_moved: moved * PAGE_SIZE,
        already_in_place: before.iter().filter(|(_, e)| here(e)).count() as u64,
        mapped_remotely: after.iter().filter(|(v, e)| remote(e) && !remote(&before.get(*v))).count() as u64,
        pages_changed: 0,
    })
}

/// Migrate the pages in slices of at most half the device memory; a page whose
/// migration failed with a device error is tried again up to
/// [`Config::dev_fault_dma_retries`](crate::Config) times.
fn prefetch_pages(inner: &Inner, s: u32, dev: DeviceId, va: u64, len: u64) -> Result<(), GmemError> {
    let cap = {
        let g = inner.lock();
        (g.live_dev(dev)?.buddy.total_pages() as usize / 2).clamp(1, 4096)
    };
    let retries = inner.cfg.dev_fault_dma_retries;
    // Read access: pages migrate with full rights, except read-mostly ones, which are
    // duplicated. Slices are built lazily: a huge range never materialises a page list.
    let (first, end) = (va / PAGE_SIZE, (va + len) / PAGE_SIZE);
    let mut at = first;
    while at < end {
        let stop = (at + cap as u64).min(end);
        let slice: Vec<Item> = (at..stop).map(|v| ((s, v), false)).collect();
        let mut failures = vec![0u32; slice.len()];
        // Eight rounds for pages answered retry (busy, throttled), one more per round
        // that a device error cost.
        let mut rounds = 8;
        while rounds > 0 {
            rounds -= 1;
            let outs = to_device(inner, dev, &slice, false, None);
            let mut failed = false;
            for (i, o) in outs.iter().enumerate() {
                let Outcome::Abort(e) = o else { continue };
                failures[i] += 1;
                if !device_error(e) || failures[i] > retries {
                    let va = slice[i].0.1 * PAGE_SIZE;
                    return Err(GmemError::Fault(FaultError::Migration { va, source: e.clone() }));
                }
                add(&inner.counters.dma_retries, 1);
                failed = true;
            }
            rounds += u32::from(failed);
            // Pages the range's protection keeps off devices stay where they are.
            if outs.iter().all(|o| matches!(o, Outcome::Done | Outcome::Denied(_))) {
                break;
            }
        }
        at = stop;
    }
    Ok(())
}

/// hmadvise(PREFETCH or DONTNEED, CPU) and DONTNEED(device): every page of the range on
/// `only` (or on any device) comes to the host, all or nothing.
pub(crate) fn range_home(
    inner: &Inner,
    s: u32,
    only: Option<DeviceId>,
    va: u64,
    len: u64,
) -> Result<HintReport, GmemError> {
    let before = snapshot(inner, s, va, len);
    if let Err(e) = range_to_host(inner, s, only, va, len) {
        if let Err(r) = restore(inner, s, &before, va, len) {
            tracing::error!(target: "gmem", error = %r, "hint to the host: rolling back failed");
        }
        return Err(e);
    }
    let after = snapshot(inner, s, va, len);
    let held =
        |e: &PageEntry| (e.on_device() || e.flags.contains(PageFlags::REMOTE)) && only.is_none_or(|d| d.0 == e.dev);
    let before_held = before.iter().filter(|(_, e)| held(e)).count() as u64;
    let moved = before.iter().filter(|(v, e)| held(e) && !held(&after.get(*v))).count() as u64;
    Ok(HintReport {
        pages_moved: moved,
        bytes_moved: moved * PAGE_SIZE,
        already_in_place: len / PAGE_SIZE - before_held,
        mapped_remotely: 0,
        pages_changed: 0,
    })
}

/// Put every page of `[va, va+len)` back where `before` had it (see the module docs).
/// Pages mid-migration elsewhere are left alone. Returns the first error met; the
/// other pages are still restored.
pub(crate) fn restore(inner: &Inner, s: u32, before: &Snapshot, va: u64, len: u64) -> Result<(), GmemError> {
    let now = snapshot(inner, s, va, len);
    let vpns: BTreeSet<u64> = before.iter().chain(now.iter()).map(|(v, _)| v).collect();
    let mut home: Vec<PageKey> = Vec::new();
    let mut back: BTreeMap<u8, Vec<Item>> = BTreeMap::new();
    let mut first_err: Option<GmemError> = None;
    {
        let mut g = inner.lock();
        let st = &mut *g;
        let mut batches = Batches::new();
        // Frames of forgotten pages, freed once the invalidation went out.
        let mut forgotten: Vec<(u8, u64)> = Vec::new();
        for vpn in vpns {
            let b = before.get(vpn);
            let Some(e) = st.spaces.get(&s).map(|sp| sp.pt.get(vpn)) else { return Ok(()) };
            if e.flags.contains(PageFlags::MIGRATING) {
                continue;
            }
            let held_by = |x: &PageEntry, d: u8| x.on_device() && x.dev == d;
            let remote_on = |x: &PageEntry, d: u8| x.flags.contains(PageFlags::REMOTE) && x.dev == d;
            let r = if e.on_device() && !held_by(&b, e.dev) {
                // Arrived on a device.
                if b.state == Residency::Unpopulated {
                    forget_frame(inner, st, s, vpn, &mut batches, &mut forgotten)
                } else {
                    home.push((s, vpn));
                    Ok(())
                }
            } else if remote_on(&e, e.dev) && !remote_on(&b, e.dev) {
                // Mapped remotely by the hint (a zero page installed for it goes too).
                release_mapping(inner, st, s, vpn, &mut batches).map_err(GmemError::from).and_then(|()| {
                    if b.state != Residency::Unpopulated || e.state != Residency::Cpu {
                        return Ok(());
                    }
                    inner.cpu.zap(vpn * PAGE_SIZE, PAGE_SIZE)?;
                    if let Some(sp) = st.spaces.get_mut(&s) {
                        sp.pt.update(vpn, |e| e.state = Residency::Unpopulated);
                    }
                    Ok(())
                })
            } else if e.on_device() && e.prot != 0 && b.prot == 0 {
                // Mapped by the hint where it had no mapping.
                release_mapping(inner, st, s, vpn, &mut batches).map_err(GmemError::from)
            } else if e.on_device() && held_by(&b, e.dev) && e.pfn == b.pfn && e.prot == 0 && b.prot != 0 {
                // Unmapped by a migration that rolled back: its mapping comes back.
                remap(inner, st, s, vpn, b.prot())
            } else {
                Ok(())
            };
            if let Err(x) = r {
                first_err.get_or_insert(x);
            }
            let left = b.on_device() && !held_by(&e, b.dev);
            let unmapped = remote_on(&b, b.dev) && !remote_on(&e, b.dev);
            if left || unmapped {
                back.entry(b.dev).or_default().push(((s, vpn), b.prot().contains(Prot::WRITE)));
            }
            if e.flags.contains(PageFlags::PINNED) && !b.flags.contains(PageFlags::PINNED) {
                if let Some(sp) = st.spaces.get_mut(&s) {
                    sp.pt.update(vpn, |e| e.flags.remove(PageFlags::PINNED));
                }
                st.thrash.forget((s, vpn));
            }
        }
        for &(d, _) in &forgotten {
            batches.entry(d).or_default();
        }
        match flush_all(inner, st, batches) {
            Ok(()) => {
                for (d, pa) in forgotten {
                    free_frame(&mut st.devices[d as usize], pa);
                }
            }
            Err(x) => {
                // A stale translation may still reach them: never hand them out again.
                tracing::error!(target: "gmem", frames = forgotten.len(), error = %x, "hint rollback: TLB flush failed; frames quarantined");
                first_err.get_or_insert(x.into());
            }
        }
    }
    // Pages that arrived from the host or another device go back to the host first.
    while !home.is_empty() {
        match to_host_keys(inner, &home, Cause::Advise) {
            Ok(moved) if !moved.is_empty() => home.retain(|k| !moved.contains(k)),
            Ok(_) => break,
            Err(x) => {
                first_err.get_or_insert(x.into());
                break;
            }
        }
    }
    for (d, items) in back {
        let outs = to_device(inner, DeviceId(d), &items, false, None);
        if let Some((i, _)) = outs.iter().enumerate().find(|(_, o)| !matches!(o, Outcome::Done)) {
            first_err.get_or_insert(GmemError::Busy { va: items[i].0.1 * PAGE_SIZE });
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// A page that was untouched before the hint and got a device frame (zero-filled):
/// its mapping goes, and it is untouched again (lock held). Its frame is pushed on
/// `freed`, to be freed once the batch's invalidation went out.
fn forget_frame(
    inner: &Inner,
    st: &mut State,
    s: u32,
    vpn: u64,
    batches: &mut Batches,
    freed: &mut Vec<(u8, u64)>,
) -> Result<(), GmemError> {
    release_mapping(inner, st, s, vpn, batches)?;
    let Some(e) = st.spaces.get(&s).map(|sp| sp.pt.get(vpn)) else { return Ok(()) };
    st.devices[e.dev as usize].lru.remove(e.pfn);
    freed.push((e.dev, e.pa()));
    if let Some(sp) = st.spaces.get_mut(&s) {
        sp.pt.update(vpn, |x| {
            x.state = Residency::Unpopulated;
            x.pfn = 0;
            x.prot = 0;
            x.flags = PageFlags::empty();
        });
    }
    Ok(())
}

/// Map page `vpn` (on its device, unmapped) again with `prot` (lock held).
fn remap(inner: &Inner, st: &mut State, s: u32, vpn: u64, prot: Prot) -> Result<(), GmemError> {
    let State { devices, spaces, .. } = st;
    let Some(sp) = spaces.get_mut(&s) else { return Ok(()) };
    let e = sp.pt.get(vpn);
    let Some(asid) = sp.asid_of(DeviceId(e.dev)) else { return Ok(()) };
    let va = vpn * PAGE_SIZE;
    devices[e.dev as usize].mmu.pmap_enter(asid, va, MemAddr::Device(e.pa()), PageSize::Base, prot).map_err(
        |source| {
            add(&inner.counters.hook_errors, 1);
            MigrateError::Map { va, dev: e.dev, source }
        },
    )?;
    sp.pt.update(vpn, |e| e.prot = prot.bits());
    Ok(())
}
