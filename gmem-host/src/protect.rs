//! [`Gmem::mprotect`]: one protection for a range, on the CPU and on every device.
//!
//! The protection is a range attribute ([`RangeAttrs::prot`](crate::RangeAttrs::prot)),
//! split and merged like the hints' attributes. Setting it
//! 1. narrows every device mapping of the range that grants more (`pmap_protect`, or
//!    `pmap_release` when nothing readable is left; a 2 MiB mapping wholly inside the
//!    range is narrowed whole, one straddling its edge is split first), flushing the
//!    invalidations;
//! 2. bumps the sequence number of pages mid-migration, so the migration rolls back at
//!    commit and its retry maps under the new protection;
//! 3. then changes the CPU mapping (`mprotect(2)`; CPU touches of device-resident pages
//!    keep being served through userfaultfd, whose installs do not depend on it). In
//!    this order no device is left, even for a moment, with rights on host memory the
//!    CPU mapping no longer grants (a device reaching host memory through the CPU
//!    mapping, like the reference model, would take a SIGSEGV there).
//!
//! Widening maps nothing eagerly: the next device fault widens the mapping up to the
//! protection. Device faults check the protection before anything else
//! ([`crate::fault`]): a write to read-only memory and any access to no-access memory
//! are aborted with [`FaultError::Protection`](crate::FaultError::Protection) naming the
//! address; nothing moves and nothing is zero-filled, so no device ever copies from or
//! maps host memory the CPU may not read.

use crate::error::{GmemError, MigrateError};
use crate::events::add;
use crate::hash::FastSet;
use crate::manager::{Gmem, check_managed, check_range};
use crate::migrate::mapping::{Batches, demote_huge, flush_all, release_mapping};
use crate::mmu::{HUGE_PAGE_SIZE, PAGE_SIZE, PAGES_PER_HUGE, PageSize, Prot};
use crate::page_table::PageFlags;
use crate::state::{Inner, State};
use crate::types::{DeviceId, PageKey, SpaceId};

impl Gmem {
    /// Set the protection of `[va, va+len)` for the CPU and every device (see the module
    /// docs). `prot` is empty (no access), `READ`, or `READ | WRITE`, each optionally with
    /// `EXEC`. On error the range keeps its old protection (device mappings may have been
    /// narrowed further than needed; the next device fault widens them again).
    pub fn mprotect(&self, space: SpaceId, va: u64, len: u64, prot: Prot) -> Result<(), GmemError> {
        check_range(va, len)?;
        if !prot.is_empty() && !prot.contains(Prot::READ) {
            return Err(GmemError::BadProt(prot));
        }
        let inner = &self.inner;
        let mut g = inner.lock();
        check_managed(g.space(space)?, space, va, len)?;
        let st = &mut *g;
        // Devices first: a device that still maps host memory with more rights than the
        // new CPU protection would, in the window, access memory the CPU may not (with a
        // device that reaches host memory through the CPU mapping, a SIGSEGV).
        narrow_range(inner, st, space.0, va, len, prot)?;
        inner.cpu.set_prot(va, len, prot).map_err(|source| GmemError::Mprotect { va, len, source })?;
        if let Some(sp) = st.spaces.get_mut(&space.0) {
            sp.attrs.apply(va, va + len, |a| a.prot = prot);
        }
        tracing::debug!(target: "gmem", space = space.0, va = format_args!("{va:#x}"), len, ?prot, "mprotect");
        Ok(())
    }
}

/// Steps 2 and 3 of the module docs (lock held).
fn narrow_range(inner: &Inner, st: &mut State, s: u32, va: u64, len: u64, prot: Prot) -> Result<(), MigrateError> {
    let Some(touched) = st.spaces.get(&s).map(|sp| sp.pt.touched(va / PAGE_SIZE, len / PAGE_SIZE)) else {
        return Ok(());
    };
    let mut batches = Batches::new();
    let mut whole: FastSet<u64> = FastSet::default();
    let mut first = None;
    for (vpn, _) in touched {
        let Some(sp) = st.spaces.get_mut(&s) else { break };
        let e = sp.pt.get(vpn);
        if e.flags.contains(PageFlags::MIGRATING) {
            sp.pt.update(vpn, |_| {});
            continue;
        }
        let new = e.prot() & prot;
        if e.prot == 0 || new == e.prot() || whole.contains(&(vpn / PAGES_PER_HUGE)) {
            continue;
        }
        let r = if !new.contains(Prot::READ) {
            release_mapping(inner, st, s, vpn, &mut batches)
        } else {
            narrow_page(inner, st, (s, vpn), new, (va, va + len), &mut whole, &mut batches)
        };
        if let Err(x) = r {
            first.get_or_insert(x);
        }
    }
    let flushed = flush_all(inner, st, batches);
    first.map_or(flushed, Err)
}

/// Narrow the mapping of page `vpn` to `new`: its whole 2 MiB mapping when the chunk lies
/// inside `range` (recorded in `whole`), else its base mapping (a straddling 2 MiB
/// mapping is split first).
fn narrow_page(
    inner: &Inner,
    st: &mut State,
    (s, vpn): PageKey,
    new: Prot,
    range: (u64, u64),
    whole: &mut FastSet<u64>,
    batches: &mut Batches,
) -> Result<(), MigrateError> {
    let chunk = vpn / PAGES_PER_HUGE;
    let chunk_va = chunk * HUGE_PAGE_SIZE;
    let huge = st.spaces.get(&s).is_some_and(|sp| sp.pt.get(vpn).flags.contains(PageFlags::HUGE));
    let inside = range.0 <= chunk_va && chunk_va + HUGE_PAGE_SIZE <= range.1;
    if huge && !inside {
        demote_huge(inner, st, s, chunk, batches)?;
    }
    let State { devices, spaces, .. } = st;
    let Some(sp) = spaces.get_mut(&s) else { return Ok(()) };
    let e = sp.pt.get(vpn);
    if e.prot == 0 {
        return Ok(()); // the split left it unmapped
    }
    let Some(asid) = sp.asid_of(DeviceId(e.dev)) else { return Ok(()) };
    let (at, size) = if huge && inside { (chunk_va, PageSize::Huge) } else { (vpn * PAGE_SIZE, PageSize::Base) };
    let tok = devices[e.dev as usize].mmu.pmap_protect(asid, at, size, new).map_err(|source| {
        add(&inner.counters.hook_errors, 1);
        MigrateError::Unmap { va: at, dev: e.dev, source }
    })?;
    batches.entry(e.dev).or_default().push(tok);
    if size == PageSize::Huge {
        whole.insert(chunk);
        for v in chunk * PAGES_PER_HUGE..(chunk + 1) * PAGES_PER_HUGE {
            sp.pt.update(v, |e| e.prot = new.bits());
        }
    } else {
        sp.pt.update(vpn, |e| e.prot = new.bits());
    }
    Ok(())
}
