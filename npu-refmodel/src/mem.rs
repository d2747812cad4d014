//! The model's device memory, sparse; host memory is reached through
//! [`npu::host_map::HostMap`], the IOVA map the co-simulation uses too.
//!
//! Both memories are accessed with byte ranges that the DMA engine has already cut the way the
//! RTL's bursts are cut (never across 4 KiB), so a range is either wholly reachable or
//! fails as a whole, like a burst answered with SLVERR.

use std::collections::BTreeMap;

pub(crate) use npu::host_map::Unmapped;

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

    fn check(&self, addr: u64, len: usize) -> Result<(), Unmapped> {
        let end = addr.checked_add(len as u64).ok_or(Unmapped)?;
        if end > self.size { Err(Unmapped) } else { Ok(()) }
    }

    /// Reads `out.len()` bytes at `addr`.
    pub(crate) fn read(&self, addr: u64, out: &mut [u8]) -> Result<(), Unmapped> {
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
    pub(crate) fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), Unmapped> {
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
        assert_eq!(m.write(3 * PAGE - 1, &[0, 0]), Err(Unmapped));
        assert_eq!(m.read(u64::MAX, &mut buf), Err(Unmapped));
    }
}
