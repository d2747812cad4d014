//! Host memory that a device may DMA into.
//!
//! A device can write such memory at any time, so Rust never holds a reference
//! (`&[u8]`) to it: data moves in and out only by copies through raw pointers
//! ([`DmaBuffer::read`], [`DmaBuffer::write`]).

use mmap_rs::{MmapMut, MmapOptions};

/// Errors creating or accessing a DMA buffer.
#[derive(Debug, thiserror::Error)]
pub enum DmaBufError {
    /// Zero-length buffer requested.
    #[error("a DMA buffer must not be empty")]
    Empty,
    /// The anonymous mapping failed.
    #[error("cannot map {len:#x} bytes of host memory for DMA")]
    Map {
        /// Requested size.
        len: usize,
        /// Cause.
        #[source]
        source: mmap_rs::Error,
    },
    /// Access beyond the end of the buffer.
    #[error("access [{offset:#x}, {offset:#x}+{len:#x}) is outside the {size:#x}-byte DMA buffer")]
    OutOfRange {
        /// Offset of the access.
        offset: usize,
        /// Length of the access.
        len: usize,
        /// Buffer size.
        size: usize,
    },
}

/// Page-aligned, zero-initialised anonymous host memory for device DMA.
///
/// A `DmaBuffer` is a shared handle: clones name the same memory, which is unmapped
/// when the last handle goes. [`DeviceIo::dma_map`](crate::DeviceIo::dma_map) keeps a
/// handle until the matching `dma_unmap`, so dropping a buffer that a device still has
/// mapped cannot free memory the device may access.
#[derive(Clone)]
pub struct DmaBuffer {
    map: std::sync::Arc<MmapMut>,
    len: usize,
}

/// The buffers a transport keeps alive while they are mapped (by IOVA).
#[derive(Default)]
pub struct DmaOwners(std::collections::HashMap<u64, DmaBuffer>);

impl std::fmt::Debug for DmaOwners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DmaOwners({} buffers)", self.0.len())
    }
}

impl DmaOwners {
    /// Keeps `buf` alive until [`DmaOwners::release`] of `iova`.
    pub fn keep(&mut self, iova: u64, buf: DmaBuffer) {
        self.0.insert(iova, buf);
    }

    /// Drops the handle kept for `iova` (after the mapping is gone).
    pub fn release(&mut self, iova: u64) {
        self.0.remove(&iova);
    }
}

impl DmaBuffer {
    /// Maps `len` bytes (rounded up to whole pages), zero-filled.
    pub fn new(len: usize) -> Result<Self, DmaBufError> {
        if len == 0 {
            return Err(DmaBufError::Empty);
        }
        let page = MmapOptions::page_size();
        let rounded = len.next_multiple_of(page);
        let map = MmapOptions::new(rounded)
            .map_err(|source| DmaBufError::Map { len: rounded, source })?
            .map_mut()
            .map_err(|source| DmaBufError::Map { len: rounded, source })?;
        Ok(Self { map: std::sync::Arc::new(map), len: rounded })
    }

    /// Size in bytes (a multiple of the page size).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: buffers are never empty.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Start of the buffer, for transports that map it (IOMMU, simulated IOVA map).
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_ptr().cast_mut()
    }

    fn check(&self, offset: usize, len: usize) -> Result<(), DmaBufError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(DmaBufError::OutOfRange { offset, len, size: self.len }),
        }
    }

    /// Copies `out.len()` bytes from offset `offset` of the buffer.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), DmaBufError> {
        self.check(offset, out.len())?;
        // SAFETY: the range was checked to lie in the mapping, which lives as long as
        // self; `out` is a distinct Rust allocation, so the ranges cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(self.as_ptr().add(offset), out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Copies `data` into the buffer at `offset`.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), DmaBufError> {
        self.check(offset, data.len())?;
        // SAFETY: as in `read`, with source and destination swapped.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.as_ptr().add(offset), data.len()) };
        Ok(())
    }

    /// Reads the byte at `offset` with a volatile load: for polling a byte the device
    /// writes while the host watches it.
    pub fn load_u8(&self, offset: usize) -> Result<u8, DmaBufError> {
        self.check(offset, 1)?;
        // SAFETY: the byte was checked to lie in the mapping, which lives as long as self.
        Ok(unsafe { std::ptr::read_volatile(self.as_ptr().add(offset)) })
    }

    /// Reads a little-endian u64 at `offset`.
    pub fn read_u64(&self, offset: usize) -> Result<u64, DmaBufError> {
        let mut b = [0u8; 8];
        self.read(offset, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads a little-endian u32 at `offset`.
    pub fn read_u32(&self, offset: usize) -> Result<u32, DmaBufError> {
        let mut b = [0u8; 4];
        self.read(offset, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_pages_zero_fills_and_bounds_checks() {
        let b = DmaBuffer::new(100).unwrap();
        assert_eq!(b.len() % MmapOptions::page_size(), 0);
        assert_eq!(b.read_u64(0).unwrap(), 0);
        b.write(b.len() - 4, &[1, 2, 3, 4]).unwrap();
        assert_eq!(b.read_u32(b.len() - 4).unwrap(), 0x0403_0201);
        assert!(matches!(b.write(b.len() - 3, &[0; 4]), Err(DmaBufError::OutOfRange { .. })));
        assert!(matches!(b.read(usize::MAX, &mut [0; 2]), Err(DmaBufError::OutOfRange { .. })));
        assert!(matches!(DmaBuffer::new(0), Err(DmaBufError::Empty)));
    }
}
