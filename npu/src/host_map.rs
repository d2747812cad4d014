//! Host memory as a simulated device sees it: IOVA ranges mapped to host virtual
//! memory, checked like an IOMMU.
//!
//! The co-simulation (`sim-bridge`) and the reference model (`npu-refmodel`) both keep
//! the device's host-memory port in the host process: a DMA to an IOVA becomes a copy
//! to or from the host address it maps to, and an access outside every mapping fails
//! (the port answers with an error response) instead of touching memory. This module
//! is that map, its one unsafe copy path, and the `DeviceIo` map/unmap logic the two
//! simulated transports share.
//!
//! The device may write a mapped range while the host works on it, so no Rust
//! reference to mapped memory is ever made: data moves by raw copies only.

use std::collections::BTreeMap;

use crate::{DmaOwners, IOVA_PAGE, IoError, IovaAllocator};

/// An access outside every mapping (or, for device memory, beyond its end): the
/// memory answers it with an error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unmapped;

/// IOVA ranges mapped to host memory (see the module docs).
#[derive(Debug, Default)]
pub struct HostMap {
    /// IOVA start → (host address, length). Ranges never overlap.
    map: BTreeMap<u64, (usize, usize)>,
}

impl HostMap {
    /// Adds a mapping of `len` bytes at `host` to IOVA `iova`.
    ///
    /// # Safety
    /// `host..host+len` must stay valid for reads and writes until [`Self::unmap`]
    /// removes the mapping. Other code may access the memory meanwhile only through raw
    /// pointers (no Rust reference to it may exist while it is mapped). Callers keep
    /// mappings disjoint ([`Self::overlaps`]); an access where two overlap fails.
    pub unsafe fn map(&mut self, iova: u64, host: *mut u8, len: usize) {
        self.map.insert(iova, (host as usize, len));
    }

    /// Removes the mapping starting at `iova`; false if there was none.
    pub fn unmap(&mut self, iova: u64) -> bool {
        self.map.remove(&iova).is_some()
    }

    /// True if `[iova, iova+len)` intersects a mapping.
    pub fn overlaps(&self, iova: u64, len: usize) -> bool {
        let end = iova.saturating_add(len as u64);
        self.map.range(..end).next_back().is_some_and(|(&start, &(_, size))| start.saturating_add(size as u64) > iova)
    }

    /// True if `[iova, iova+len)` lies in one mapping.
    pub fn reachable(&self, iova: u64, len: usize) -> bool {
        self.lookup(iova, len).is_ok()
    }

    /// Host address of `[iova, iova+len)` if one mapping covers all of it.
    fn lookup(&self, iova: u64, len: usize) -> Result<*mut u8, Unmapped> {
        let (&start, &(host, size)) = self.map.range(..=iova).next_back().ok_or(Unmapped)?;
        let off = usize::try_from(iova - start).map_err(|_| Unmapped)?;
        if off.checked_add(len).is_none_or(|end| end > size) {
            return Err(Unmapped);
        }
        Ok((host + off) as *mut u8)
    }

    /// Copies `out.len()` bytes from IOVA `iova`.
    pub fn read(&self, iova: u64, out: &mut [u8]) -> Result<(), Unmapped> {
        let p = self.lookup(iova, out.len())?;
        // SAFETY: `lookup` checked that the range lies in one mapping, which the `map`
        // contract keeps valid for reads; only raw copies touch it (no references).
        unsafe { std::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Copies `data` to IOVA `iova`.
    pub fn write(&self, iova: u64, data: &[u8]) -> Result<(), Unmapped> {
        let p = self.lookup(iova, data.len())?;
        // SAFETY: as in `read`; the `map` contract keeps the mapping valid for writes.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
        Ok(())
    }

    /// [`DeviceIo::dma_map_raw`](crate::DeviceIo::dma_map_raw) of a simulated device:
    /// a fresh IOVA range from `iovas`, mapped to `host..host+len`.
    ///
    /// # Safety
    /// As for [`DeviceIo::dma_map_raw`](crate::DeviceIo::dma_map_raw): the range stays
    /// valid and is touched only by raw copies until [`Self::dma_unmap`].
    pub unsafe fn dma_map(&mut self, iovas: &mut IovaAllocator, host: *mut u8, len: usize) -> Result<u64, IoError> {
        let page = IOVA_PAGE as usize;
        if len == 0 || len % page != 0 || (host as usize) % page != 0 {
            return Err(IoError::BadHostRange {
                addr: host as usize,
                len,
                reason: "must be a non-empty, page-aligned range",
            });
        }
        let iova = iovas.alloc(len as u64)?;
        // SAFETY: the caller's contract keeps the range valid until `dma_unmap`, which
        // removes it from the map first.
        unsafe { self.map(iova, host, len) };
        Ok(iova)
    }

    /// [`DeviceIo::dma_unmap`](crate::DeviceIo::dma_unmap) of a simulated device: the
    /// mapping, its IOVA range and the buffer kept for it (if any) are released.
    pub fn dma_unmap(&mut self, iovas: &mut IovaAllocator, owners: &mut DmaOwners, iova: u64) -> Result<(), IoError> {
        if !self.unmap(iova) {
            return Err(IoError::NotMapped { iova });
        }
        iovas.free(iova)?;
        owners.release(iova);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;

    #[test]
    fn refuses_ranges_outside_one_mapping() {
        let mut backing = vec![0u8; 2 * PAGE];
        let mut h = HostMap::default();
        // SAFETY: `backing` outlives `h`'s use below and is only touched by raw copies
        // until the mapping is removed.
        unsafe { h.map(0x1000, backing.as_mut_ptr(), PAGE) };
        h.write(0x1FFE, &[7, 8]).unwrap();
        assert_eq!(h.write(0x1FFF, &[1, 2]), Err(Unmapped), "crosses the end of the mapping");
        assert_eq!(h.read(0x0FFF, &mut [0u8; 1]), Err(Unmapped), "below the mapping");
        assert!(h.overlaps(0x0800, 0x801) && !h.overlaps(0x0800, 0x800) && !h.overlaps(0x2000, 1));
        assert!(h.unmap(0x1000));
        assert_eq!(h.read(0x1FFE, &mut [0u8; 2]), Err(Unmapped), "unmapped");
        assert_eq!(&backing[PAGE - 2..PAGE], &[7, 8]);
    }

    #[test]
    fn dma_map_checks_the_range_and_unmap_releases_everything() {
        let buf = crate::DmaBuffer::new(2 * PAGE).unwrap();
        let (mut h, mut iovas, mut owners) = (HostMap::default(), IovaAllocator::npu_default(), DmaOwners::default());
        // SAFETY: `buf` lives to the end of the test; only raw copies touch it.
        let bad = unsafe { h.dma_map(&mut iovas, buf.as_ptr().wrapping_add(1), PAGE) };
        assert!(matches!(bad, Err(IoError::BadHostRange { len: PAGE, .. })), "{bad:?}");
        // SAFETY: as above.
        let iova = unsafe { h.dma_map(&mut iovas, buf.as_ptr(), 2 * PAGE) }.unwrap();
        h.write(iova + PAGE as u64, &[5]).unwrap();
        assert_eq!(buf.read_u32(PAGE).unwrap(), 5);
        owners.keep(iova, buf.clone());
        h.dma_unmap(&mut iovas, &mut owners, iova).unwrap();
        assert!(!h.reachable(iova, 1));
        assert!(matches!(h.dma_unmap(&mut iovas, &mut owners, iova), Err(IoError::NotMapped { iova: i }) if i == iova));
    }
}
