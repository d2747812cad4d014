//! Backing stores behind the two memory ports: host memory through the IOVA map, and
//! the device memory as a sparse anonymous mapping.

use mmap_rs::{MmapMut, MmapOptions};
use npu::host_map::HostMap;

/// Bytes per data beat (512-bit data path).
pub(crate) const BEAT: usize = 64;

/// Why a beat access failed (becomes an AXI SLVERR).
pub(crate) use npu::host_map::Unmapped;

/// Host memory as the device's host port sees it: the shared IOVA map
/// ([`npu::host_map::HostMap`], which the reference model uses too), in beats.
#[derive(Default)]
pub(crate) struct HostMemory {
    pub(crate) map: HostMap,
}

impl HostMemory {
    /// Adds a mapping.
    ///
    /// # Safety
    /// As for [`HostMap::map`]: `host..host+len` stays valid for reads and writes, and
    /// is touched only through raw pointers, until [`Self::unmap`].
    pub(crate) unsafe fn map(&mut self, iova: u64, host: *mut u8, len: usize) {
        // SAFETY: the caller's contract is HostMap::map's.
        unsafe { self.map.map(iova, host, len) }
    }

    /// Removes the mapping starting at `iova`; false if there was none.
    pub(crate) fn unmap(&mut self, iova: u64) -> bool {
        self.map.unmap(iova)
    }

    /// True if `[iova, iova+len)` intersects a mapping.
    pub(crate) fn overlaps(&self, iova: u64, len: usize) -> bool {
        self.map.overlaps(iova, len)
    }

    /// Reads one beat at the (beat-aligned) IOVA.
    pub(crate) fn read_beat(&self, iova: u64) -> Result<[u8; BEAT], Unmapped> {
        let mut out = [0u8; BEAT];
        self.map.read(iova, &mut out)?;
        Ok(out)
    }

    /// Writes the bytes of one beat selected by `strb` (bit i = byte i): each run of
    /// enabled bytes is one copy; the whole beat must be mapped.
    pub(crate) fn write_beat(&self, iova: u64, data: &[u8; BEAT], strb: u64) -> Result<(), Unmapped> {
        if strb == u64::MAX {
            return self.map.write(iova, data);
        }
        if !self.map.reachable(iova, BEAT) {
            return Err(Unmapped);
        }
        let mut i = 0;
        while i < BEAT {
            if strb >> i & 1 == 0 {
                i += 1;
                continue;
            }
            let run = ((strb >> i).trailing_ones() as usize).min(BEAT - i);
            self.map.write(iova + i as u64, &data[i..i + run])?;
            i += run;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strobed_beats_write_only_enabled_bytes_of_a_wholly_mapped_beat() {
        let buf = npu::DmaBuffer::new(4096).expect("buffer");
        let mut h = HostMemory::default();
        // SAFETY: `buf` outlives `h` and is only touched by raw copies.
        unsafe { h.map(0x1000, buf.as_ptr(), 4096) };
        let data: [u8; BEAT] = std::array::from_fn(|i| i as u8 + 1);
        h.write_beat(0x1000, &[0xEE; BEAT], u64::MAX).expect("full beat");
        h.write_beat(0x1000, &data, 0b1101 | 1 << 63).expect("strobed beat");
        let got = h.read_beat(0x1000).expect("read back");
        let want: [u8; BEAT] = std::array::from_fn(|i| if [0, 2, 3, 63].contains(&i) { data[i] } else { 0xEE });
        assert_eq!(got, want);
        assert_eq!(h.write_beat(0x1000 + 4096 - 32, &data, 1), Err(Unmapped), "the beat crosses the mapping's end");
        assert_eq!(h.write_beat(0x4000, &data, 1), Err(Unmapped));
    }
}
