//! The model's two memories: host memory reached through the IOVA map, and sparse
//! device memory.
//!
//! Both are accessed with byte ranges that the DMA engine has already cut the way the
//! RTL's bursts are cut (never across 4 KiB), so a range is either wholly reachable or
//! fails as a whole, like a burst answered with SLVERR.

use std::collections::BTreeMap;

/// An access that the memory answers with an error response (unmapped IOVA, or a
/// device address beyond device memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unreachable;

/// Host memory as the device sees it: IOVA ranges mapped to host virtual memory, like
/// an IOMMU. An access outside every mapping fails instead of touching memory.
#[derive(Default)]
pub(crate) struct HostMap {
    /// IOVA start → (host address, length). Ranges never overlap.
    map: BTreeMap<u64, (usize, usize)>,
}

impl HostMap {
    /// Adds a mapping.
    ///
    /// # Safety
    /// `host..host+len` must stay valid for reads and writes until [`Self::unmap`].
    pub(crate) unsafe fn map(&mut self, iova: u64, host: *mut u8, len: usize) {
        self.map.insert(iova, (host as usize, len));
    }

    /// Removes the mapping starting at `iova`; false if there was none.
    pub(crate) fn unmap(&mut self, iova: u64) -> bool {
        self.map.remove(&iova).is_some()
    }

    /// Host address of `[iova, iova+len)` if one mapping covers all of it.
    fn lookup(&self, iova: u64, len: usize) -> Result<*mut u8, Unreachable> {
        let (&start, &(host, size)) = self.map.range(..=iova).next_back().ok_or(Unreachable)?;
        let off = usize::try_from(iova - start).map_err(|_| Unreachable)?;
        if off.checked_add(len).is_none_or(|end| end > size) {
            return Err(Unreachable);
        }
        Ok((host + off) as *mut u8)
    }

    /// True if `[iova, iova+len)` lies in one mapping.
    pub(crate) fn reachable(&self, iova: u64, len: usize) -> bool {
        self.lookup(iova, len).is_ok()
    }

    /// Copies `out.len()` bytes from IOVA `iova`.
    pub(crate) fn read(&self, iova: u64, out: &mut [u8]) -> Result<(), Unreachable> {
        let p = self.lookup(iova, out.len())?;
        // SAFETY: `lookup` checked that the range lies in a mapping which the `map`
        // contract keeps valid; only raw copies touch it (no references are made).
        unsafe { std::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Copies `data` to IOVA `iova`.
    pub(crate) fn write(&self, iova: u64, data: &[u8]) -> Result<(), Unreachable> {
        let p = self.lookup(iova, data.len())?;
        // SAFETY: as in `read`; the mapping is writable by the `map` contract.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
        Ok(())
    }
}

const PAGE: u64 = 4096;

/// Device memory: `size` bytes, stored as 4 KiB pages created on first write; pages
/// never written read as zero (like the bridge's anonymous mapping).
pub(crate) struct DevMem {
    size: u64,
    pages: BTreeMap<u64, Box<[u8; PAGE as usize]>>,
}

impl DevMem {
    pub(crate) fn new(size: u64) -> Self {
        Self { size, pages: BTreeMap::new() }
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    fn check(&self, addr: u64, len: usize) -> Result<(), Unreachable> {
        let end = addr.checked_add(len as u64).ok_or(Unreachable)?;
        if end > self.size { Err(Unreachable) } else { Ok(()) }
    }

    /// Reads `out.len()` bytes at `addr`.
    pub(crate) fn read(&self, addr: u64, out: &mut [u8]) -> Result<(), Unreachable> {
        self.check(addr, out.len())?;
        let mut done = 0usize;
        while done < out.len() {
            let a = addr + done as u64;
            let off = (a % PAGE) as usize;
            let n = (PAGE as usize - off).min(out.len() - done);
            match self.pages.get(&(a / PAGE)) {
                Some(p) => out[done..done + n].copy_from_slice(&p[off..off + n]),
                None => out[done..done + n].fill(0),
            }
            done += n;
        }
        Ok(())
    }

    /// Writes `data` at `addr`.
    pub(crate) fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), Unreachable> {
        self.check(addr, data.len())?;
        let mut done = 0usize;
        while done < data.len() {
            let a = addr + done as u64;
            let off = (a % PAGE) as usize;
            let n = (PAGE as usize - off).min(data.len() - done);
            let page = self.pages.entry(a / PAGE).or_insert_with(|| Box::new([0u8; PAGE as usize]));
            page[off..off + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_memory_is_sparse_zeroed_and_bounded() {
        let mut m = DevMem::new(3 * PAGE);
        let mut buf = [0xFFu8; 10];
        m.read(PAGE - 5, &mut buf).unwrap();
        assert_eq!(buf, [0; 10]);
        m.write(PAGE - 5, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).unwrap();
        m.read(PAGE - 5, &mut buf).unwrap();
        assert_eq!(buf, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(m.pages.len(), 2, "only touched pages exist");
        assert_eq!(m.write(3 * PAGE - 1, &[0, 0]), Err(Unreachable));
        assert_eq!(m.read(u64::MAX, &mut buf), Err(Unreachable));
    }

    #[test]
    fn host_map_refuses_ranges_outside_one_mapping() {
        let mut backing = vec![0u8; 2 * PAGE as usize];
        let mut h = HostMap::default();
        // SAFETY: `backing` outlives `h`'s use below and is only touched by raw copies.
        unsafe { h.map(0x1000, backing.as_mut_ptr(), PAGE as usize) };
        h.write(0x1FFE, &[7, 8]).unwrap();
        assert_eq!(h.write(0x1FFF, &[1, 2]), Err(Unreachable), "crosses the end of the mapping");
        assert_eq!(h.read(0x0FFF, &mut [0u8; 1]), Err(Unreachable), "below the mapping");
        assert!(h.unmap(0x1000));
        assert_eq!(h.read(0x1FFE, &mut [0u8; 2]), Err(Unreachable), "unmapped");
        assert_eq!(&backing[PAGE as usize - 2..PAGE as usize], &[7, 8]);
    }
}
