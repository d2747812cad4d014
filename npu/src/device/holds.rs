//! Host pages the NPU reaches through remote PTEs (`ACCESSED_BY` hints, thrashing pins)
//! and through copies, as mappings of a pinning transport, counted per page.
//!
//! On a transport that pins (VFIO), a `PEER_SHARED` region's IOVA range is only
//! reserved ([`DeviceIo::dma_map_lazy`]); a page is mapped in the IOMMU while something
//! on the device may use it: a copy, for its duration, or a remote PTE, from
//! `pmap_enter` until the TLB invalidation after its `pmap_release` (so a stale TLB
//! entry never reaches an unmapped IOVA). Both kinds go through [`HostHolds`], which
//! counts users per page: a page a PTE and a copy use at once is mapped once and
//! unmapped when the last user goes. A request's unmapped pages are mapped in
//! contiguous runs (a 2 MiB remote page is one IOMMU mapping, not 512), page aligned
//! (the IOMMU's smallest page, [`IOVA_PAGE`]); a transport mapping is only ever
//! removed whole, as VFIO type 1 refuses to split one. The number of live transport
//! mappings is bounded ([`MAX_PIECES`]: VFIO type 1 allows 65 535 per container by
//! default, shared with the rings and buffers); a hold beyond it is refused and the
//! hook reports `NoResources`. On the co-simulation holds cost nothing (the region is
//! mapped whole and `dma_hold` is a no-op), but the same counting and limits apply, so
//! both paths accept and refuse the same mappings.

use std::collections::{BTreeMap, HashMap};

use crate::{DeviceIo, IOVA_PAGE, IoError};

/// Transport mappings held at once at most.
pub(crate) const MAX_PIECES: usize = 32_768;

/// Why a hold failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HoldError {
    /// [`MAX_PIECES`] transport mappings are live already.
    #[error("{max} host mappings are live (the IOMMU's mapping budget)")]
    TooMany {
        /// The limit.
        max: usize,
    },
    /// An empty or wrapping range.
    #[error("host range {iova:#x} (+{len:#x}) is empty or wraps")]
    BadRange {
        /// IOVA.
        iova: u64,
        /// Bytes.
        len: u64,
    },
    /// The transport refused to map or unmap.
    #[error("transport")]
    Io(#[source] IoError),
}

/// What [`HostHolds`] needs of a transport; every [`DeviceIo`] provides it.
pub(crate) trait Pinner {
    /// Maps `[iova, iova + len)` (page aligned), device-writable if `write`.
    fn hold(&mut self, iova: u64, len: u64, write: bool) -> Result<(), IoError>;
    /// Unmaps exactly a range `hold` mapped.
    fn release(&mut self, iova: u64, len: u64) -> Result<(), IoError>;
}

impl<T: DeviceIo + ?Sized> Pinner for T {
    fn hold(&mut self, iova: u64, len: u64, write: bool) -> Result<(), IoError> {
        self.dma_hold(iova, len, write)
    }
    fn release(&mut self, iova: u64, len: u64) -> Result<(), IoError> {
        self.dma_release(iova, len)
    }
}

/// Page-aligned cover of `[iova, iova + len)`.
fn pages(iova: u64, len: u64) -> Result<(u64, u64), HoldError> {
    let end = iova.checked_add(len).filter(|_| len > 0).ok_or(HoldError::BadRange { iova, len })?;
    let start = iova - iova % IOVA_PAGE;
    let end = end.checked_next_multiple_of(IOVA_PAGE).ok_or(HoldError::BadRange { iova, len })?;
    Ok((start, end))
}

/// Users per host page, the transport mappings, and the remote PTEs that hold pages.
#[derive(Debug, Default)]
pub(crate) struct HostHolds {
    /// Users per page (IOVA of the page); absent = 0.
    users: BTreeMap<u64, u32>,
    /// Live transport mappings: IOVA → (bytes, device-writable).
    pieces: BTreeMap<u64, (u64, bool)>,
    /// Remote PTEs: (ASID, VA) → (IOVA, bytes).
    remote: HashMap<(u32, u64), (u64, u64)>,
    /// Remote PTEs released whose pages stay held until the ASID's next invalidation.
    deferred: Vec<(u32, u64, u64)>,
}

impl HostHolds {
    /// The live transport mapping containing `page`, if any.
    fn piece_of(&self, page: u64) -> Option<(u64, u64, bool)> {
        self.pieces.range(..=page).next_back().filter(|(s, (l, _))| page < **s + *l).map(|(&s, &(l, w))| (s, l, w))
    }

    /// Adds a user to every page of `[iova, iova + len)`, mapping the pages nobody
    /// used yet (in contiguous runs) and making read-only mappings writable if `write`.
    pub(crate) fn hold(&mut self, io: &mut impl Pinner, iova: u64, len: u64, write: bool) -> Result<(), HoldError> {
        let (start, end) = pages(iova, len)?;
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut upgrades: Vec<(u64, u64)> = Vec::new();
        let mut p = start;
        while p < end {
            match self.piece_of(p) {
                Some((s, l, w)) => {
                    if write && !w && upgrades.last() != Some(&(s, l)) {
                        upgrades.push((s, l));
                    }
                    p = s + l;
                }
                None => {
                    match runs.last_mut() {
                        Some((rs, rl)) if *rs + *rl == p => *rl += IOVA_PAGE,
                        _ => runs.push((p, IOVA_PAGE)),
                    }
                    p += IOVA_PAGE;
                }
            }
        }
        if self.pieces.len() + runs.len() > MAX_PIECES {
            return Err(HoldError::TooMany { max: MAX_PIECES });
        }
        for (k, &(s, l)) in runs.iter().enumerate() {
            if let Err(e) = io.hold(s, l, write) {
                for &(s, l) in &runs[..k] {
                    let _ = io.release(s, l);
                    self.pieces.remove(&s);
                }
                return Err(HoldError::Io(e));
            }
            self.pieces.insert(s, (l, write));
        }
        for (s, l) in upgrades {
            io.release(s, l).map_err(HoldError::Io)?;
            if let Err(e) = io.hold(s, l, true) {
                // Put the read-only mapping back; the writer gets the error.
                let back = io.hold(s, l, false);
                if back.is_err() {
                    self.pieces.remove(&s);
                }
                for &(s, l) in &runs {
                    let _ = io.release(s, l);
                    self.pieces.remove(&s);
                }
                return Err(HoldError::Io(e));
            }
            self.pieces.insert(s, (l, true));
        }
        for page in (start..end).step_by(IOVA_PAGE as usize) {
            *self.users.entry(page).or_insert(0) += 1;
        }
        Ok(())
    }

    /// Removes a user from every page of `[iova, iova + len)` and unmaps each
    /// transport mapping none of whose pages has a user left.
    pub(crate) fn release(&mut self, io: &mut impl Pinner, iova: u64, len: u64) -> Result<(), HoldError> {
        let (start, end) = pages(iova, len)?;
        for page in (start..end).step_by(IOVA_PAGE as usize) {
            if let Some(n) = self.users.get_mut(&page) {
                *n -= 1;
                if *n == 0 {
                    self.users.remove(&page);
                }
            }
        }
        let mut p = start;
        let mut first_err = None;
        while p < end {
            let Some((s, l, _)) = self.piece_of(p) else {
                p += IOVA_PAGE;
                continue;
            };
            if self.users.range(s..s + l).next().is_none() {
                self.pieces.remove(&s);
                if let Err(e) = io.release(s, l) {
                    first_err.get_or_insert(HoldError::Io(e));
                }
            }
            p = s + l;
        }
        first_err.map_or(Ok(()), Err)
    }

    /// A remote PTE at `va` of `asid` now names `[iova, iova + len)`: holds those
    /// pages (writable if `write`) for as long as it lives. A PTE it replaces keeps its
    /// pages until the next invalidation.
    pub(crate) fn enter_remote(
        &mut self,
        io: &mut impl Pinner,
        asid: u32,
        va: u64,
        iova: u64,
        len: u64,
        write: bool,
    ) -> Result<(), HoldError> {
        self.hold(io, iova, len, write)?;
        if let Some((old, l)) = self.remote.insert((asid, va), (iova, len)) {
            self.deferred.push((asid, old, l));
        }
        Ok(())
    }

    /// The PTE at `va` of `asid` was released (or replaced by a device page): its
    /// pages are let go after the ASID's next TLB invalidation.
    pub(crate) fn leave(&mut self, asid: u32, va: u64) {
        if let Some((iova, len)) = self.remote.remove(&(asid, va)) {
            self.deferred.push((asid, iova, len));
        }
    }

    /// The remote PTE at `va` of `asid` became writable: its mapping must be too.
    pub(crate) fn make_writable(&mut self, io: &mut impl Pinner, asid: u32, va: u64) -> Result<(), HoldError> {
        let Some(&(iova, len)) = self.remote.get(&(asid, va)) else { return Ok(()) };
        self.hold(io, iova, len, true)?;
        self.release(io, iova, len)
    }

    /// The TLB of `asid` was invalidated: pages of its released PTEs are let go.
    pub(crate) fn after_invalidate(&mut self, io: &mut impl Pinner, asid: u32) -> Result<(), HoldError> {
        let (now, later): (Vec<_>, Vec<_>) = self.deferred.drain(..).partition(|d| d.0 == asid);
        self.deferred = later;
        now.into_iter().try_for_each(|(_, iova, len)| self.release(io, iova, len))
    }

    /// `asid` is gone: every page its PTEs held is let go.
    pub(crate) fn drop_asid(&mut self, io: &mut impl Pinner, asid: u32) -> Result<(), HoldError> {
        let gone: Vec<(u32, u64)> = self.remote.keys().filter(|k| k.0 == asid).copied().collect();
        for k in gone {
            self.leave(k.0, k.1);
        }
        self.after_invalidate(io, asid)
    }

    /// A host region `[iova, iova + len)` is being unregistered: every remote PTE and
    /// transport mapping inside it is dropped (the manager has unmapped its pages).
    pub(crate) fn drop_range(&mut self, io: &mut impl Pinner, iova: u64, len: u64) -> Result<(), HoldError> {
        let end = iova.saturating_add(len);
        self.remote.retain(|_, (i, _)| *i < iova || *i >= end);
        self.deferred.retain(|(_, i, _)| *i < iova || *i >= end);
        let used: Vec<u64> = self.users.range(iova..end).map(|(&p, _)| p).collect();
        for p in used {
            self.users.remove(&p);
        }
        let inside: Vec<(u64, u64)> = self.pieces.range(iova..end).map(|(&s, &(l, _))| (s, l)).collect();
        let mut first_err = None;
        for (s, l) in inside {
            self.pieces.remove(&s);
            if let Err(e) = io.release(s, l) {
                first_err.get_or_insert(HoldError::Io(e));
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Live transport mappings.
    #[cfg(test)]
    pub(crate) fn pieces(&self) -> usize {
        self.pieces.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transport that records its mappings and refuses overlaps, as VFIO does.
    #[derive(Default)]
    struct Iommu {
        maps: BTreeMap<u64, (u64, bool)>,
        calls: Vec<String>,
        refuse_write: bool,
    }

    impl Pinner for Iommu {
        fn hold(&mut self, iova: u64, len: u64, write: bool) -> Result<(), IoError> {
            self.calls.push(format!("map {iova:#x}+{len:#x}{}", if write { " w" } else { "" }));
            let overlap = self.maps.range(..iova + len).next_back().is_some_and(|(s, (l, _))| s + l > iova);
            if overlap || (write && self.refuse_write) {
                return Err(IoError::Device("refused".into()));
            }
            self.maps.insert(iova, (len, write));
            Ok(())
        }
        fn release(&mut self, iova: u64, len: u64) -> Result<(), IoError> {
            self.calls.push(format!("unmap {iova:#x}+{len:#x}"));
            match self.maps.remove(&iova) {
                Some((l, _)) if l == len => Ok(()),
                _ => Err(IoError::Device("not a mapping".into())),
            }
        }
    }

    const P: u64 = IOVA_PAGE;

    #[test]
    fn a_huge_remote_page_is_one_mapping_and_lives_until_the_invalidation() {
        let (mut io, mut h) = (Iommu::default(), HostHolds::default());
        h.enter_remote(&mut io, 1, 0x20_0000, 0x40_0000, 512 * P, false).unwrap();
        assert_eq!(io.calls, ["map 0x400000+0x200000"]);
        h.leave(1, 0x20_0000);
        assert_eq!(io.maps.len(), 1, "still mapped: the TLB may hold the PTE");
        h.after_invalidate(&mut io, 2).unwrap();
        assert_eq!(io.maps.len(), 1, "another ASID's invalidation does not count");
        h.after_invalidate(&mut io, 1).unwrap();
        assert!(io.maps.is_empty());
        assert_eq!(h.pieces(), 0);
    }

    #[test]
    fn a_page_used_by_a_pte_and_a_copy_is_mapped_once() {
        let (mut io, mut h) = (Iommu::default(), HostHolds::default());
        h.enter_remote(&mut io, 1, 0x1000, 0x10_0000, P, false).unwrap();
        // A copy over that page and the next two: only the new pages are mapped.
        h.hold(&mut io, 0x10_0000, 3 * P, false).unwrap();
        assert_eq!(io.calls, ["map 0x100000+0x1000", "map 0x101000+0x2000"]);
        h.release(&mut io, 0x10_0000, 3 * P).unwrap();
        assert_eq!(io.maps.keys().copied().collect::<Vec<_>>(), [0x10_0000], "the PTE's page stays");
        h.leave(1, 0x1000);
        h.after_invalidate(&mut io, 1).unwrap();
        assert!(io.maps.is_empty());
    }

    #[test]
    fn a_mapping_is_unmapped_whole_only_when_all_its_pages_are_free() {
        let (mut io, mut h) = (Iommu::default(), HostHolds::default());
        h.hold(&mut io, 0, 4 * P, true).unwrap();
        h.hold(&mut io, 2 * P, P, true).unwrap();
        h.release(&mut io, 0, 4 * P).unwrap();
        assert_eq!(io.maps.len(), 1, "page 2 still used: the 4-page mapping stays (no split)");
        h.release(&mut io, 2 * P, P).unwrap();
        assert!(io.maps.is_empty());
        assert_eq!(io.calls.last().unwrap(), "unmap 0x0+0x4000");
    }

    #[test]
    fn write_upgrades_a_read_only_mapping_and_a_refusal_keeps_the_old_one() {
        let (mut io, mut h) = (Iommu::default(), HostHolds::default());
        h.enter_remote(&mut io, 3, 0x5000, 0x8000, P, false).unwrap();
        h.make_writable(&mut io, 3, 0x5000).unwrap();
        assert_eq!(io.maps[&0x8000], (P, true));
        h.enter_remote(&mut io, 3, 0x6000, 0x9000, P, false).unwrap();
        io.refuse_write = true;
        assert!(matches!(h.make_writable(&mut io, 3, 0x6000), Err(HoldError::Io(_))));
        assert_eq!(io.maps[&0x9000], (P, false), "read-only mapping restored");
        h.drop_asid(&mut io, 3).unwrap();
        assert!(io.maps.is_empty());
    }

    #[test]
    fn the_mapping_budget_is_enforced_and_bad_ranges_refused() {
        let (mut io, mut h) = (Iommu::default(), HostHolds::default());
        for i in 0..MAX_PIECES as u64 {
            h.hold(&mut io, i * 2 * P, P, false).unwrap();
        }
        assert!(matches!(h.hold(&mut io, 1 << 40, P, false), Err(HoldError::TooMany { .. })));
        h.hold(&mut io, 0, P, false).unwrap(); // already mapped: no new mapping needed
        assert!(matches!(h.hold(&mut io, 0, 0, false), Err(HoldError::BadRange { .. })));
        assert!(matches!(h.hold(&mut io, u64::MAX - 5, 10, false), Err(HoldError::BadRange { .. })));
        h.drop_range(&mut io, 0, 1 << 30).unwrap();
        assert!(io.maps.is_empty() && h.pieces() == 0);
    }

    #[test]
    fn a_failed_map_leaves_nothing_behind() {
        let (mut io, mut h) = (Iommu::default(), HostHolds::default());
        h.hold(&mut io, 2 * P, P, false).unwrap();
        io.maps.insert(5 * P, (P, false)); // someone else's mapping: the second run fails
        assert!(matches!(h.hold(&mut io, 0, 6 * P, false), Err(HoldError::Io(_))));
        assert_eq!(io.maps.keys().copied().collect::<Vec<_>>(), [2 * P, 5 * P], "first run rolled back");
        assert_eq!(h.pieces(), 1);
    }
}
