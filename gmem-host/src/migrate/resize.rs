//! Splitting, growing and moving `PEER_SHARED` regions: the work behind partial
//! `munmap` and [`Gmem::mremap`](crate::Gmem::mremap) (see `crate::remap` for the
//! behaviour), under the lock.

use std::sync::MutexGuard;

use super::mapping::{Batches, drop_dup_copy, flush_all, release_mapping};
use crate::error::{GmemError, MigrateError};
use crate::events::add;
use crate::hash::FastSet;
use crate::mmu::{HUGE_PAGE_SIZE, HostRegionId, PAGE_SIZE, PAGES_PER_HUGE, PageSize};
use crate::page_table::{PageFlags, Residency};
use crate::region::{region_off_device, region_on_device};
use crate::state::{HostMapping, Inner, Region, State};
use crate::types::{DeviceId, SpaceId};

pub(crate) type Guard<'a> = MutexGuard<'a, State>;

/// Wait (lock held on return) until no migration touches the live region holding `va`;
/// returns the guard and the region's start and length.
pub(crate) fn quiesce<'a>(
    inner: &'a Inner,
    mut g: Guard<'a>,
    s: u32,
    va: u64,
) -> Result<(Guard<'a>, u64, u64), GmemError> {
    loop {
        let sp = g.space(SpaceId(s))?;
        let r = sp.region_of(va).filter(|r| !r.dying).ok_or(GmemError::NotManaged { va, space: s })?;
        if r.inflight == 0 {
            let (start, len) = (r.start, r.len);
            return Ok((g, start, len));
        }
        g = inner.cv.wait(g).unwrap_or_else(|p| p.into_inner());
    }
}

/// Release every device mapping of `[va, va+len)` (2 MiB mappings whole) and flush; the
/// data stays in place (lock held).
pub(crate) fn unmap_all(inner: &Inner, st: &mut State, s: u32, va: u64, len: u64) -> Result<(), MigrateError> {
    let Some(touched) = st.spaces.get(&s).map(|sp| sp.pt.touched(va / PAGE_SIZE, len / PAGE_SIZE)) else {
        return Ok(());
    };
    let mut batches = Batches::new();
    let mut huge_done: FastSet<u64> = FastSet::default();
    for (vpn, e) in touched {
        if e.prot == 0 {
            continue;
        }
        if !e.flags.contains(PageFlags::HUGE) {
            release_mapping(inner, st, s, vpn, &mut batches)?;
            continue;
        }
        let chunk = vpn / PAGES_PER_HUGE;
        if !huge_done.insert(chunk) {
            continue;
        }
        let State { devices, spaces, .. } = st;
        let Some(sp) = spaces.get_mut(&s) else { continue };
        if let Some(asid) = sp.asid_of(DeviceId(e.dev)) {
            let at = chunk * HUGE_PAGE_SIZE;
            let tok = devices[e.dev as usize].mmu.pmap_release(asid, at, PageSize::Huge).map_err(|source| {
                add(&inner.counters.hook_errors, 1);
                MigrateError::Unmap { va: at, dev: e.dev, source }
            })?;
            batches.entry(e.dev).or_default().push(tok);
        }
        for v in chunk * PAGES_PER_HUGE..(chunk + 1) * PAGES_PER_HUGE {
            sp.pt.update(v, |e| {
                e.prot = 0;
                e.flags.remove(PageFlags::HUGE);
            });
        }
    }
    flush_all(inner, st, batches)
}

/// Register `pieces` (start, length, host id) on every attached device in place of the
/// region `old`; returns whether a device kept its DMA mapping of `old` (its memory must
/// then never be unmapped). On error the devices hold `old` again.
pub(crate) fn reregister(
    st: &State,
    s: u32,
    old: (u64, u64, HostRegionId),
    pieces: &[(u64, u64, HostRegionId)],
) -> Result<bool, GmemError> {
    let Some(sp) = st.spaces.get(&s) else { return Ok(false) };
    let mut kept = false;
    let live: Vec<(DeviceId, crate::mmu::Asid)> =
        sp.devices.iter().copied().filter(|(d, _)| !st.devices[d.0 as usize].lost).collect();
    for &(d, asid) in &live {
        let slot = &st.devices[d.0 as usize];
        kept |= !region_off_device(&slot.mmu, &slot.info, asid, old.0, old.1, old.2);
    }
    let mut done: Vec<(DeviceId, crate::mmu::Asid, (u64, u64, HostRegionId))> = Vec::new();
    for &(d, asid) in &live {
        let slot = &st.devices[d.0 as usize];
        for &p in pieces {
            if let Err(e) = region_on_device(&slot.mmu, &slot.info, asid, p.0, p.1, p.2, d) {
                for (d2, a2, q) in done {
                    let s2 = &st.devices[d2.0 as usize];
                    region_off_device(&s2.mmu, &s2.info, a2, q.0, q.1, q.2);
                }
                for &(d2, a2) in &live {
                    let s2 = &st.devices[d2.0 as usize];
                    let _ = region_on_device(&s2.mmu, &s2.info, a2, old.0, old.1, old.2, d2);
                }
                return Err(e);
            }
            done.push((d, asid, p));
        }
    }
    Ok(kept)
}

/// Split the region holding `va` at the addresses `cuts` (sorted, strictly inside it)
/// into regions of their own (see the module docs). Returns the guard, still held.
pub(crate) fn split<'a>(inner: &'a Inner, g: Guard<'a>, s: u32, va: u64, cuts: &[u64]) -> Result<Guard<'a>, GmemError> {
    let (mut g, start, len) = quiesce(inner, g, s, va)?;
    let st = &mut *g;
    unmap_all(inner, st, s, start, len)?;
    let Some(host) = st.spaces.get(&s).and_then(|sp| sp.regions.get(&start)).map(|r| r.host) else {
        return Err(GmemError::NotManaged { va, space: s });
    };
    let mut bounds = vec![start];
    bounds.extend_from_slice(cuts);
    bounds.push(start + len);
    let mut pieces = Vec::new();
    for (i, w) in bounds.windows(2).enumerate() {
        let id = if i == 0 {
            host
        } else {
            st.next_host += 1;
            HostRegionId(st.next_host - 1)
        };
        pieces.push((w[0], w[1] - w[0], id));
    }
    let kept = reregister(st, s, (start, len, host), &pieces)?;
    let Some(sp) = st.spaces.get_mut(&s) else { return Ok(g) };
    let Some(Region { mut map, device_kept, .. }) = sp.regions.remove(&start) else { return Ok(g) };
    let mut maps = Vec::new();
    for &(pva, _, _) in pieces.iter().skip(1).rev() {
        maps.push(map.split_off(pva - start));
    }
    maps.push(map);
    maps.reverse();
    st.by_va.remove(&start);
    for ((pva, plen, id), map) in pieces.into_iter().zip(maps) {
        let region = Region {
            start: pva,
            len: plen,
            host: id,
            map,
            inflight: 0,
            dying: false,
            device_kept: device_kept || kept,
        };
        if let Some(sp) = st.spaces.get_mut(&s) {
            sp.regions.insert(pva, region);
        }
        st.by_va.insert(pva, (s, pva + plen));
    }
    tracing::debug!(target: "gmem", space = s, va = format_args!("{start:#x}"), cuts = cuts.len(), "region split");
    Ok(g)
}

/// The end of the VA window every device attached to space `s` translates.
pub(crate) fn window(st: &State, s: u32) -> u64 {
    let mut limit = 1u64 << 47;
    for (d, _) in st.spaces.get(&s).map(|sp| sp.devices.as_slice()).unwrap_or_default() {
        let bits = st.devices[d.0 as usize].info.va_bits;
        limit = limit.min(1u64.checked_shl(u32::from(bits)).unwrap_or(u64::MAX));
    }
    limit
}

/// Whether no region of the manager and no quarantined range overlaps `[a, b)`.
pub(crate) fn free_range(st: &State, a: u64, b: u64) -> bool {
    let overlaps = |s: u64, e: u64| s < b && a < e;
    !st.by_va.iter().any(|(&s, &(_, e))| overlaps(s, e)) && !st.quarantined_va.iter().any(|&(s, e)| overlaps(s, e))
}

/// Map `len` bytes of fresh anonymous memory exactly at `va`, never over an existing
/// mapping (`MAP_FIXED_NOREPLACE`).
pub(crate) fn map_fixed(va: u64, len: u64) -> Option<HostMapping> {
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; the result is
    // checked before it is used.
    let p = unsafe {
        libc::mmap(
            va as *mut libc::c_void,
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    if p as u64 != va {
        // An old kernel that takes the flag as a hint: give the memory back.
        drop(HostMapping { va: p as u64, len });
        return None;
    }
    Some(HostMapping { va, len })
}

/// Grow the region at `start` by `tail` (mapped right after it).
pub(crate) fn grow_in_place(
    inner: &Inner,
    st: &mut State,
    s: u32,
    start: u64,
    tail: HostMapping,
) -> Result<(), GmemError> {
    let Some((len, host)) = st.spaces.get(&s).and_then(|sp| sp.regions.get(&start)).map(|r| (r.len, r.host)) else {
        return Err(GmemError::NotManaged { va: start, space: s });
    };
    inner.cpu.register_shared(tail.va, tail.len)?;
    let new_len = len + tail.len;
    unmap_all(inner, st, s, start, len)?;
    if let Err(e) = reregister(st, s, (start, len, host), &[(start, new_len, host)]) {
        inner.cpu.unregister(tail.va, tail.len);
        return Err(e);
    }
    if let Some(r) = st.spaces.get_mut(&s).and_then(|sp| sp.regions.get_mut(&start)) {
        r.len = new_len;
        r.map.len += tail.len;
        std::mem::forget(tail); // now part of the region's mapping
    }
    st.by_va.insert(start, (s, start + new_len));
    Ok(())
}

/// Move the region at `start` to a new place of `new_len` bytes (see the module docs).
pub(crate) fn move_region(
    inner: &Inner,
    st: &mut State,
    s: u32,
    start: u64,
    new_len: u64,
    limit: u64,
) -> Result<*mut u8, GmemError> {
    let Some((len, host)) = st.spaces.get(&s).and_then(|sp| sp.regions.get(&start)).map(|r| (r.len, r.host)) else {
        return Err(GmemError::NotManaged { va: start, space: s });
    };
    let target = HostMapping::adopt(crate::region::place_region(
        &st.by_va,
        &st.quarantined_va,
        inner.cfg.va_base,
        limit,
        new_len,
    )?);
    let to = target.va;
    unmap_all(inner, st, s, start, len)?;
    collapse_dups(inner, st, s, start, len);
    reregister(st, s, (start, len, host), &[(to, new_len, host)])?;
    inner.cpu.unregister(start, len);
    let moved = move_pages(start, to, len);
    if let Err(err) = moved {
        // Put everything back: the old range is still mapped and holds its pages.
        let _ = reregister(st, s, (to, new_len, host), &[(start, len, host)]);
        let _ = inner.cpu.register_shared(start, len);
        return Err(GmemError::HostMap { len: new_len, reason: format!("mremap: {err}") });
    }
    // The moved pages keep no userfaultfd registration: register the whole target.
    inner.cpu.register_shared(to, new_len)?;
    move_entries(st, s, start, to, len);
    let Some(sp) = st.spaces.get_mut(&s) else { return Ok(to as *mut u8) };
    if let Some(mut r) = sp.regions.remove(&start) {
        std::mem::forget(std::mem::replace(&mut r.map, target)); // the old range is gone
        r.start = to;
        r.len = new_len;
        sp.regions.insert(to, r);
    }
    st.by_va.remove(&start);
    st.by_va.insert(to, (s, to + new_len));
    tracing::debug!(target: "gmem", space = s, from = format_args!("{start:#x}"), to = format_args!("{to:#x}"), "region moved");
    Ok(to as *mut u8)
}

/// Drop the device copy of every read duplicate of the range (mappings already released).
pub(crate) fn collapse_dups(inner: &Inner, st: &mut State, s: u32, va: u64, len: u64) {
    let Some(touched) = st.spaces.get(&s).map(|sp| sp.pt.touched(va / PAGE_SIZE, len / PAGE_SIZE)) else { return };
    for (vpn, e) in touched {
        if e.state == Residency::Dup {
            drop_dup_copy(inner, st, s, vpn, e.dev, e.pa());
        }
    }
}

/// Move the logical page-table entries, LRU keys, attributes and per-page trackers of
/// `[from, from+len)` to `to`.
pub(crate) fn move_entries(st: &mut State, s: u32, from: u64, to: u64, len: u64) {
    let State { devices, spaces, thrash, dma_failures, .. } = st;
    let Some(sp) = spaces.get_mut(&s) else { return };
    let (fv, tv, n) = (from / PAGE_SIZE, to / PAGE_SIZE, len / PAGE_SIZE);
    for (vpn, e) in sp.pt.touched(fv, n) {
        let nv = tv + (vpn - fv);
        sp.pt.update(nv, |x| {
            let seq = x.seq;
            *x = e;
            x.seq = seq;
        });
        if e.on_device() {
            let lru = &mut devices[e.dev as usize].lru;
            lru.remove(e.pfn);
            lru.touch((s, nv), e.pfn);
        }
        thrash.forget((s, vpn));
    }
    sp.pt.remove(fv, n);
    dma_failures.retain(|&(ks, v), _| ks != s || !(fv..fv + n).contains(&v));
    for (a, b, attrs) in sp.attrs.ranges() {
        let (a, b) = (a.max(from), b.min(from + len));
        if a < b {
            sp.attrs.apply(to + (a - from), to + (b - from), |x| *x = attrs);
        }
    }
    sp.attrs.clear(from, from + len);
}

/// `mremap(2)` the pages of `[from, from+len)` onto `[to, to+len)` (mapped by the
/// manager; replaced). Kernels before 6.17 move only within one VMA, and `mprotect` or a
/// poisoned page splits a region into several: then the pages move one by one, and
/// back again if one of them cannot.
fn move_pages(from: u64, to: u64, len: u64) -> std::io::Result<()> {
    let remap = |a: u64, b: u64, n: u64| {
        // SAFETY: moves pages of a region the manager owns onto memory it owns
        // (MREMAP_FIXED replaces it); nothing references either range.
        let p = unsafe {
            libc::mremap(
                a as *mut libc::c_void,
                n as usize,
                n as usize,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                b as *mut libc::c_void,
            )
        };
        if p == libc::MAP_FAILED { Err(std::io::Error::last_os_error()) } else { Ok(()) }
    };
    if remap(from, to, len).is_ok() {
        return Ok(());
    }
    for off in (0..len).step_by(PAGE_SIZE as usize) {
        if let Err(e) = remap(from + off, to + off, PAGE_SIZE) {
            for back in (0..off).step_by(PAGE_SIZE as usize) {
                let _ = remap(to + back, from + back, PAGE_SIZE);
            }
            return Err(e);
        }
    }
    Ok(())
}
