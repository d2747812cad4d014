//! Guest memory the client shares for DMA: one `mmap` of the client's file descriptor
//! per DMA_MAP message, unmapped when the range is unmapped or the server stops.

use crate::VfioUserError;
use std::fs::File;
use std::os::fd::AsRawFd;

/// One DMA_MAP range: shared memory the RTL reaches, or (no file descriptor: ROM
/// and other memory a VMM cannot share) a range recorded only for the protocol's
/// overlap and unmap rules, where the RTL's accesses fault as at an unmapped IOVA.
pub(crate) struct DmaRange {
    /// Bytes.
    pub(crate) len: u64,
    /// The mapping, if the client sent a file descriptor.
    pub(crate) shared: Option<FdMapping>,
}

/// One client range mapped into this process.
pub(crate) struct FdMapping {
    /// Start of the `mmap` (page aligned, at or before `ptr`).
    base: *mut libc::c_void,
    /// Length of the `mmap`.
    map_len: usize,
    /// First byte of the client's range.
    pub(crate) ptr: *mut u8,
    /// Bytes of the client's range.
    pub(crate) len: usize,
}

impl FdMapping {
    /// Maps `size` bytes of `fd` from `offset` (need not be page aligned) read-write
    /// and shared, so the device's writes land in the client's memory.
    ///
    /// The range must lie inside the file (a regular file or memfd, as QEMU's guest
    /// RAM is): a page of a shared mapping past the end of its file raises SIGBUS when
    /// touched, which would take the whole co-simulation down at the RTL's first beat
    /// there. (A client that shrinks the file afterwards can still do that; the server
    /// does not seal files it does not own.)
    pub(crate) fn new(fd: &File, offset: u64, iova: u64, size: u64) -> Result<Self, VfioUserError> {
        let err = |source| VfioUserError::DmaMmap { iova, size, offset, source };
        let meta = fd.metadata().map_err(err)?;
        if !meta.file_type().is_file() {
            return Err(err(std::io::Error::other("the descriptor is not a regular file or memfd")));
        }
        if offset.checked_add(size).is_none_or(|end| end > meta.len()) {
            return Err(VfioUserError::DmaBadRange { iova, size });
        }
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
        let delta = offset % page;
        let len = usize::try_from(size).map_err(|_| VfioUserError::DmaBadRange { iova, size })?;
        let map_len = len.checked_add(delta as usize).ok_or(VfioUserError::DmaBadRange { iova, size })?;
        if len == 0 {
            return Err(VfioUserError::DmaBadRange { iova, size });
        }
        let file_off = libc::off_t::try_from(offset - delta).map_err(|_| VfioUserError::DmaBadRange { iova, size })?;
        // SAFETY: a fresh shared mapping at an address the kernel chooses; it aliases no
        // Rust object. Validity of fd/offset/len is checked by the kernel (error below).
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                file_off,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(err(std::io::Error::last_os_error()));
        }
        // SAFETY: delta < page <= map_len, so the pointer stays inside the mapping.
        let ptr = unsafe { base.cast::<u8>().add(delta as usize) };
        Ok(Self { base, map_len, ptr, len })
    }
}

impl Drop for FdMapping {
    fn drop(&mut self) {
        // SAFETY: `base`/`map_len` are exactly the mapping made in `new`, unmapped once;
        // the device's IOVA map stopped pointing here before the owner dropped it.
        unsafe { libc::munmap(self.base, self.map_len) };
    }
}

// SAFETY: the mapping is plain shared memory owned by this value; only raw copies touch it.
unsafe impl Send for FdMapping {}
