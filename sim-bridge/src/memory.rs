//! Backing stores behind the two memory ports: host memory through the IOVA map, and
//! the device memory as a sparse anonymous mapping.

use mmap_rs::{MmapMut, MmapOptions};
use std::collections::BTreeMap;

/// Bytes per data beat (512-bit data path).
pub(crate) const BEAT: usize = 64;

/// Why a beat access failed (becomes an AXI SLVERR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unmapped;

/// Host memory as the device sees it: IOVA ranges mapped to host virtual memory.
///
/// Like an IOMMU, an access to an IOVA outside every mapping fails instead of touching
/// memory.
#[derive(Default)]
pub(crate) struct HostMemory {
    /// IOVA start → (host address, length). Ranges never overlap.
    map: BTreeMap<u64, (usize, usize)>,
}

impl HostMemory {
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

    /// True if `[iova, iova+len)` intersects a mapping.
    pub(crate) fn overlaps(&self, iova: u64, len: usize) -> bool {
        let end = iova.saturating_add(len as u64);
        self.map.range(..end).next_back().is_some_and(|(&start, &(_, size))| start.saturating_add(size as u64) > iova)
    }

    /// Host address of `[iova, iova+len)` if one mapping covers it.
    fn lookup(&self, iova: u64, len: usize) -> Result<*mut u8, Unmapped> {
        let (&start, &(host, size)) = self.map.range(..=iova).next_back().ok_or(Unmapped)?;
        let off = usize::try_from(iova - start).map_err(|_| Unmapped)?;
        if off.checked_add(len).is_none_or(|end| end > size) {
            return Err(Unmapped);
        }
        Ok((host + off) as *mut u8)
    }

    /// Reads one beat at the (beat-aligned) IOVA.
    pub(crate) fn read_beat(&self, iova: u64) -> Result<[u8; BEAT], Unmapped> {
        let p = self.lookup(iova, BEAT)?;
        let mut out = [0u8; BEAT];
        // SAFETY: `lookup` checked the range lies in a mapping that the `map` contract
        // keeps valid; the host may write it concurrently only through raw copies too.
        unsafe { std::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), BEAT) };
        Ok(out)
    }

    /// Writes the bytes of one beat selected by `strb` (bit i = byte i).
    pub(crate) fn write_beat(&self, iova: u64, data: &[u8; BEAT], strb: u64) -> Result<(), Unmapped> {
        let p = self.lookup(iova, BEAT)?;
        for (i, b) in data.iter().enumerate() {
            if strb >> i & 1 == 1 {
                // SAFETY: as in `read_beat`; i < BEAT keeps the write in range.
                unsafe { p.add(i).write(*b) };
            }
        }
        Ok(())
    }
}

/// Device memory: `size` bytes of anonymous memory; pages never touched cost nothing.
pub(crate) struct DeviceMemory {
    map: MmapMut,
}

impl DeviceMemory {
    pub(crate) fn new(size: usize) -> Result<Self, mmap_rs::Error> {
        Ok(Self { map: MmapOptions::new(size)?.map_mut()? })
    }

    pub(crate) fn size(&self) -> usize {
        self.map.len()
    }

    fn range(&self, addr: u64, len: usize) -> Result<std::ops::Range<usize>, Unmapped> {
        let start = usize::try_from(addr).map_err(|_| Unmapped)?;
        let end = start.checked_add(len).ok_or(Unmapped)?;
        if end > self.map.len() { Err(Unmapped) } else { Ok(start..end) }
    }

    pub(crate) fn read_beat(&self, addr: u64) -> Result<[u8; BEAT], Unmapped> {
        let r = self.range(addr, BEAT)?;
        let mut out = [0u8; BEAT];
        out.copy_from_slice(&self.map[r]);
        Ok(out)
    }

    pub(crate) fn write_beat(&mut self, addr: u64, data: &[u8; BEAT], strb: u64) -> Result<(), Unmapped> {
        let r = self.range(addr, BEAT)?;
        let dst = &mut self.map[r];
        if strb == u64::MAX {
            dst.copy_from_slice(data);
        } else {
            for i in 0..BEAT {
                if strb >> i & 1 == 1 {
                    dst[i] = data[i];
                }
            }
        }
        Ok(())
    }

    /// Backdoor read for tests and debugging (not a device access).
    pub(crate) fn peek(&self, addr: u64, out: &mut [u8]) -> Result<(), Unmapped> {
        let r = self.range(addr, out.len())?;
        out.copy_from_slice(&self.map[r]);
        Ok(())
    }

    /// Backdoor write for tests and debugging (not a device access).
    pub(crate) fn poke(&mut self, addr: u64, data: &[u8]) -> Result<(), Unmapped> {
        let r = self.range(addr, data.len())?;
        self.map[r].copy_from_slice(data);
        Ok(())
    }
}
