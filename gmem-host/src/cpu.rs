//! The CPU side of `PEER_SHARED` regions: userfaultfd.
//!
//! A region is ordinary anonymous memory registered with a userfaultfd in *missing* and
//! *write-protect* modes. Pages that live on a device are holes in the CPU mapping
//! (`MADV_DONTNEED`); a CPU touch blocks the touching thread in the kernel and queues an
//! event that the handler thread (started by [`Gmem::new`](crate::Gmem::new)) reads and
//! hands to the manager, which brings the page back through the staging pool and
//! installs it atomically with `UFFDIO_COPY` (waking the thread). Pages the manager is
//! copying out, and read-duplicated pages, are write-protected (`UFFDIO_WRITEPROTECT`), so
//! a CPU write is noticed too. No signal handler is installed.
//!
//! A page the manager cannot bring back (its device keeps failing) is *poisoned*: its
//! CPU page is replaced by a shared mapping of an empty memfd, so any touch raises a
//! kernel SIGBUS (`BUS_ADRERR`, `si_addr` = the touched address) in the touching thread,
//! as a hardware memory error would. Unmapping the region removes it.
//!
//! [`CpuMode::Manual`] replaces the userfaultfd with explicit calls
//! ([`Gmem::cpu_access`](crate::Gmem::cpu_access)) for hosts without userfaultfd; the
//! manager's logic is the same.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use crate::mmu::{PAGE_SIZE, Prot};
use crate::uffd::{MODE_MISSING, MODE_WP, Uffd};

pub use crate::config::CpuMode;
pub use crate::error::CpuError;

/// The CPU-side primitive operations, over userfaultfd or plain memory.
#[derive(Debug)]
pub(crate) struct CpuSide {
    uffd: Option<Uffd>,
    /// Whether write-protect mode registered successfully (kernel ≥ 5.7, anonymous memory).
    wp: AtomicBool,
}

impl CpuSide {
    pub(crate) fn new(mode: CpuMode) -> Result<Self, CpuError> {
        match mode {
            CpuMode::Manual => Ok(CpuSide { uffd: None, wp: AtomicBool::new(false) }),
            CpuMode::Userfaultfd => match Uffd::open() {
                Ok(u) => Ok(CpuSide { uffd: Some(u), wp: AtomicBool::new(true) }),
                Err((dev, syscall)) => Err(CpuError::Unavailable { dev, syscall }),
            },
        }
    }

    fn wp(&self) -> bool {
        self.wp.load(Ordering::Relaxed)
    }

    pub(crate) fn is_uffd(&self) -> bool {
        self.uffd.is_some()
    }

    pub(crate) fn raw_fd(&self) -> Option<RawFd> {
        self.uffd.as_ref().map(|u| u.raw_fd())
    }

    /// Register a region (missing + write-protect modes; missing only if WP is refused).
    pub(crate) fn register_shared(&self, va: u64, len: u64) -> Result<(), CpuError> {
        let Some(u) = &self.uffd else { return Ok(()) };
        match u.register(va, len, MODE_MISSING | MODE_WP) {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::warn!(target: "gmem", va, error = %e, "uffd WP mode refused; missing mode only");
                self.wp.store(false, Ordering::Relaxed);
                u.register(va, len, MODE_MISSING).map_err(|e| CpuError::Register { va, len, reason: e.to_string() })
            }
        }
    }

    pub(crate) fn unregister(&self, va: u64, len: u64) {
        if let Some(u) = &self.uffd {
            if let Err(e) = u.unregister(va, len) {
                tracing::warn!(target: "gmem", va, error = %e, "uffd unregister failed");
            }
        }
    }

    /// Set the CPU protection of `[va, va+len)` (`mprotect(2)`). With
    /// [`CpuMode::Manual`] the mapping stays read-write: the manager writes pages back
    /// into it directly, so only devices are held to the protection.
    pub(crate) fn set_prot(&self, va: u64, len: u64, prot: Prot) -> io::Result<()> {
        if self.uffd.is_none() {
            return Ok(());
        }
        let mut p = libc::PROT_NONE;
        for (bit, flag) in
            [(Prot::READ, libc::PROT_READ), (Prot::WRITE, libc::PROT_WRITE), (Prot::EXEC, libc::PROT_EXEC)]
        {
            if prot.contains(bit) {
                p |= flag;
            }
        }
        // SAFETY: [va, va+len) lies inside a region mapping the manager owns; changing its
        // protection creates no reference, and the manager itself only reaches it through
        // userfaultfd ioctls, which do not depend on it.
        let rc = unsafe { libc::mprotect(va as *mut libc::c_void, len as usize, p) };
        if rc != 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Whether the CPU page at `va` maps the kernel's shared zero page (it was read and
    /// never written), from `/proc/self/pagemap`, without touching it. `false` when the
    /// kernel hides frame numbers (no `CAP_SYS_ADMIN`).
    pub(crate) fn is_zero_page(&self, va: u64) -> bool {
        use std::os::unix::fs::FileExt;
        static PAGEMAP: OnceLock<Option<(std::fs::File, u64)>> = OnceLock::new();
        let Some((file, zero_pfn)) = PAGEMAP.get_or_init(open_pagemap) else { return false };
        let mut entry = [0u8; 8];
        if file.read_exact_at(&mut entry, va / PAGE_SIZE * 8).is_err() {
            return false;
        }
        pagemap_pfn(u64::from_ne_bytes(entry)) == Some(*zero_pfn)
    }

    /// Drop CPU pages: later touches fault (uffd) or read zeros (manual).
    pub(crate) fn zap(&self, va: u64, len: u64) -> Result<(), CpuError> {
        // SAFETY: [va, va+len) lies inside a region mapping the manager owns; discarding
        // its pages is the point, and no Rust reference to region memory exists.
        let rc = unsafe { libc::madvise(va as *mut libc::c_void, len as usize, libc::MADV_DONTNEED) };
        if rc != 0 {
            return Err(CpuError::Zap { va, source: io::Error::last_os_error() });
        }
        Ok(())
    }

    /// Install `len` bytes from `src` at the hole `va` and wake waiters; with `wp` the
    /// installed page is write-protected before anyone is woken.
    ///
    /// # Safety
    /// `src` must be readable for `len` bytes; `[va, va+len)` must lie in a registered
    /// region of the manager.
    ///
    /// With `wake` false, threads blocked on the range stay blocked until [`CpuSide::wake`].
    pub(crate) unsafe fn install(
        &self,
        va: u64,
        src: *const u8,
        len: u64,
        wp: bool,
        wake: bool,
    ) -> Result<(), CpuError> {
        match &self.uffd {
            Some(u) => {
                // SAFETY: the caller guarantees `src`.
                if let Err(e) = unsafe { u.copy(va, src, len) } {
                    return Err(CpuError::Install { va, reason: e.to_string() });
                }
                if wp && self.wp() {
                    u.write_protect(va, len, true).map_err(|e| CpuError::Protect { va, reason: e.to_string() })?;
                }
                if !wake {
                    return Ok(());
                }
                u.wake(va, len).map_err(|e| CpuError::Install { va, reason: e.to_string() })
            }
            None => {
                // SAFETY: the caller guarantees both ranges; they do not overlap (staging
                // pool vs region).
                unsafe { std::ptr::copy_nonoverlapping(src, va as *mut u8, len as usize) };
                Ok(())
            }
        }
    }

    /// Install zero pages at the hole `va`.
    ///
    /// # Safety
    /// `[va, va+len)` must lie in a registered region of the manager.
    pub(crate) unsafe fn install_zero(&self, va: u64, len: u64) -> Result<(), CpuError> {
        match &self.uffd {
            Some(u) => u.zeropage(va, len).map_err(|e| CpuError::Install { va, reason: e.to_string() }),
            None => {
                // SAFETY: the caller guarantees the range.
                unsafe { std::ptr::write_bytes(va as *mut u8, 0, len as usize) };
                Ok(())
            }
        }
    }

    /// Write-protect present pages (no-op without WP support).
    pub(crate) fn protect(&self, va: u64, len: u64) -> Result<(), CpuError> {
        match &self.uffd {
            Some(u) if self.wp() => {
                u.write_protect(va, len, true).map_err(|e| CpuError::Protect { va, reason: e.to_string() })
            }
            _ => Ok(()),
        }
    }

    /// Remove write protection and wake writers.
    pub(crate) fn unprotect(&self, va: u64, len: u64) -> Result<(), CpuError> {
        match &self.uffd {
            Some(u) if self.wp() => {
                u.write_protect(va, len, false).map_err(|e| CpuError::Protect { va, reason: e.to_string() })
            }
            _ => Ok(()),
        }
    }

    /// Wake threads blocked on `[va, va+len)` (after a fault that needed no install).
    pub(crate) fn wake(&self, va: u64, len: u64) {
        if let Some(u) = &self.uffd {
            let _ = u.wake(va, len);
        }
    }

    /// Replace the CPU page at `va` (a hole of a live region) with a page whose every
    /// access raises SIGBUS: a shared mapping of an empty memfd, past its end.
    pub(crate) fn poison(&self, va: u64) -> Result<(), CpuError> {
        let err = |source| CpuError::Poison { va, source };
        // SAFETY: memfd_create with a NUL-terminated name and valid flags.
        let fd = unsafe { libc::memfd_create(c"gmem-poison".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(err(io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a new descriptor we own; OwnedFd closes it once.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        // SAFETY: MAP_FIXED over one page of a region the manager owns and that holds no
        // data on the CPU (the page is device-resident, a hole); no Rust reference to
        // region memory exists. The mapping keeps the file alive after `fd` closes.
        let p = unsafe {
            libc::mmap(
                va as *mut libc::c_void,
                PAGE_SIZE as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(err(io::Error::last_os_error()));
        }
        Ok(())
    }
}

/// The frame number of a present `/proc/self/pagemap` entry (`None` when not present
/// or hidden as 0).
fn pagemap_pfn(entry: u64) -> Option<u64> {
    let pfn = entry & ((1 << 55) - 1);
    (entry >> 63 == 1 && pfn != 0).then_some(pfn)
}

/// `/proc/self/pagemap` and the zero page's frame number, found by reading a fresh
/// anonymous page (`None` when either is unavailable).
fn open_pagemap() -> Option<(std::fs::File, u64)> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open("/proc/self/pagemap").ok()?;
    let probe = mmap_rs::MmapOptions::new(PAGE_SIZE as usize).ok()?.map().ok()?;
    // SAFETY: a read of the first byte of a private mapping we own; it maps the zero page.
    let _ = unsafe { std::ptr::read_volatile(probe.as_ptr()) };
    let mut entry = [0u8; 8];
    file.read_exact_at(&mut entry, probe.as_ptr() as u64 / PAGE_SIZE * 8).ok()?;
    Some((file, pagemap_pfn(u64::from_ne_bytes(entry))?))
}

/// What the handler thread hands the CPU faults it reads to: the manager's CPU-fault
/// path ([`crate::cpu_fault`] implements it for the manager's state).
pub(crate) trait CpuFaultSink: Send + Sync {
    /// The CPU side whose userfaultfd the thread reads.
    fn cpu_side(&self) -> &CpuSide;
    /// Resolve a touch of page `va`: `write` for a write access, `missing` for a
    /// missing-page event (rather than a write-protect one).
    fn serve(&self, va: u64, write: bool, missing: bool);
}

/// The handler thread: polls the userfaultfd and a shutdown eventfd.
pub(crate) struct Handler {
    stop_fd: RawFd,
    join: Option<JoinHandle<()>>,
}

impl Handler {
    pub(crate) fn start(sink: Arc<dyn CpuFaultSink>, uffd_fd: RawFd) -> Result<Self, CpuError> {
        // SAFETY: eventfd(2) with valid flags returns a new descriptor or -1.
        let stop_fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if stop_fd < 0 {
            return Err(CpuError::Thread(io::Error::last_os_error()));
        }
        let join = std::thread::Builder::new()
            .name("gmem-uffd".into())
            .spawn(move || handler_loop(sink.as_ref(), uffd_fd, stop_fd))
            .map_err(CpuError::Thread)?;
        Ok(Handler { stop_fd, join: Some(join) })
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        let one: u64 = 1;
        // SAFETY: stop_fd is our eventfd; writing 8 bytes from a valid u64 is its protocol.
        unsafe { libc::write(self.stop_fd, (&one as *const u64).cast(), 8) };
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
        // SAFETY: we own stop_fd and close it once, after the thread stopped using it.
        unsafe { libc::close(self.stop_fd) };
    }
}

fn handler_loop(sink: &dyn CpuFaultSink, uffd_fd: RawFd, stop_fd: RawFd) {
    loop {
        let mut fds = [
            libc::pollfd { fd: uffd_fd, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: stop_fd, events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: `fds` is a valid array of two pollfd structures.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if rc < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            tracing::error!(target: "gmem", "uffd poll failed; handler exits");
            return;
        }
        if fds[1].revents != 0 {
            return;
        }
        let Some(uffd) = sink.cpu_side().uffd.as_ref() else { return };
        let mut faults = Vec::new();
        loop {
            faults.clear();
            if let Err(e) = uffd.read_faults(&mut faults) {
                tracing::error!(target: "gmem", error = %e, "uffd read failed");
                break;
            }
            if faults.is_empty() {
                break;
            }
            for f in &faults {
                let va = f.addr & !(PAGE_SIZE - 1);
                sink.serve(va, f.write || f.wp, !f.wp);
            }
        }
    }
}
