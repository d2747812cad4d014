//! Partial `munmap` and [`Gmem::mremap`] of `PEER_SHARED` regions.
//!
//! Both start the same way, under the lock once no migration touches the region
//! (`crate::migrate::resize`): every device mapping of the region is released (`unmap_all`; the
//! data stays where it is — device frames keep theirs, the next device fault maps them
//! again) and the region is unregistered from every attached device. Then
//! * a partial munmap **splits** the region at the range's edges (`split`): each piece
//!   is registered on the devices as a region of its own, with its own host-region id,
//!   and the middle piece is unmapped whole by `munmap` (frames freed, nothing leaked);
//! * mremap **shrinks** by unmapping the tail, **grows in place** when the addresses
//!   after the region are free (a new mapping there, registered with userfaultfd and
//!   merged into the region), and otherwise **moves**: the CPU pages move with
//!   `mremap(2)`, the logical page-table entries, LRU keys and attributes move to the new
//!   addresses, device-resident pages keep their frames and their data. Read duplicates
//!   are collapsed first (their CPU copies would lose the userfaultfd write protection
//!   with the move).
//!
//! Device faults racing either see the region as it was (they wait for the lock) or as
//! it is after: an address no longer managed is aborted, like after a whole munmap.

use crate::error::GmemError;
use crate::manager::{Gmem, check_range};
use crate::migrate::resize::{free_range, grow_in_place, map_fixed, move_region, quiesce, window};
use crate::mmu::PAGE_SIZE;
use crate::types::SpaceId;

impl Gmem {
    /// Resize the region that starts at `ptr` and is `old_len` bytes long to `new_len`
    /// bytes (rounded up to pages), like `mremap(2)`; see the module docs. Shrinking
    /// unmaps the tail; growing extends in place when it can, else moves the region if
    /// `may_move` (otherwise [`GmemError::NoVirtualSpace`]). Returns the region's
    /// (possibly new) address. Pages on a device keep their data, attributes and
    /// protection move with their pages.
    pub fn mremap(
        &self,
        space: SpaceId,
        ptr: *mut u8,
        old_len: u64,
        new_len: u64,
        may_move: bool,
    ) -> Result<*mut u8, GmemError> {
        let va = ptr as u64;
        check_range(va, old_len)?;
        let new_len =
            new_len.checked_add(PAGE_SIZE - 1).ok_or(GmemError::Overflow { va, len: new_len })? & !(PAGE_SIZE - 1);
        if new_len == 0 {
            return Err(GmemError::ZeroLength { va });
        }
        {
            let g = self.inner.lock();
            let r = g.space(space)?.regions.get(&va).filter(|r| !r.dying);
            let r = r.ok_or(GmemError::NotManaged { va, space: space.0 })?;
            if r.len != old_len {
                return Err(GmemError::PartialUnmap { va, len: old_len });
            }
        }
        if new_len < old_len {
            self.munmap(space, (va + new_len) as *mut u8, old_len - new_len)?;
            return Ok(ptr);
        }
        if new_len == old_len {
            return Ok(ptr);
        }
        let g = self.inner.lock();
        let (mut g, start, _) = quiesce(&self.inner, g, space.0, va)?;
        let st = &mut *g;
        let limit = window(st, space.0);
        let grown = va
            .checked_add(new_len)
            .filter(|&end| end <= limit && free_range(st, va + old_len, end))
            .and_then(|_| map_fixed(va + old_len, new_len - old_len));
        match grown {
            Some(tail) => grow_in_place(&self.inner, st, space.0, start, tail)?,
            None if may_move => return move_region(&self.inner, st, space.0, start, new_len, limit),
            None => return Err(GmemError::NoVirtualSpace { len: new_len, limit }),
        }
        Ok(ptr)
    }
}
