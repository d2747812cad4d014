//! The userfaultfd system interface: every ioctl in one small module.
//!
//! Written against the kernel UAPI (`linux/userfaultfd.h`) directly rather than through
//! the `userfaultfd` crate, whose `-sys` build needs libclang at build time.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const UFFD_API: u64 = 0xAA;
const UFFDIO_API: libc::c_ulong = 0xc018_aa3f;
const UFFDIO_REGISTER: libc::c_ulong = 0xc020_aa00;
const UFFDIO_UNREGISTER: libc::c_ulong = 0x8010_aa01;
const UFFDIO_WAKE: libc::c_ulong = 0x8010_aa02;
const UFFDIO_COPY: libc::c_ulong = 0xc028_aa03;
const UFFDIO_ZEROPAGE: libc::c_ulong = 0xc020_aa04;
const UFFDIO_WRITEPROTECT: libc::c_ulong = 0xc018_aa06;
const USERFAULTFD_IOC_NEW: libc::c_ulong = 0xaa00;
const UFFD_USER_MODE_ONLY: libc::c_int = 1;

/// Register for missing-page faults.
pub(crate) const MODE_MISSING: u64 = 1;
/// Register for write-protect faults.
pub(crate) const MODE_WP: u64 = 2;
const COPY_MODE_DONTWAKE: u64 = 1;
const WP_MODE_WP: u64 = 1;
const EVENT_PAGEFAULT: u8 = 0x12;
const PAGEFAULT_FLAG_WRITE: u64 = 1;
const PAGEFAULT_FLAG_WP: u64 = 2;

#[repr(C)]
struct Api {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Range {
    start: u64,
    len: u64,
}

#[repr(C)]
struct Register {
    range: Range,
    mode: u64,
    ioctls: u64,
}

#[repr(C)]
struct Copy {
    dst: u64,
    src: u64,
    len: u64,
    mode: u64,
    copy: i64,
}

#[repr(C)]
struct Zeropage {
    range: Range,
    mode: u64,
    zeropage: i64,
}

#[repr(C)]
struct WriteProtect {
    range: Range,
    mode: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Msg {
    event: u8,
    _r1: u8,
    _r2: u16,
    _r3: u32,
    flags: u64,
    address: u64,
    _tail: u64,
}

/// A page-fault event.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fault {
    /// Faulting address.
    pub(crate) addr: u64,
    /// A write access.
    pub(crate) write: bool,
    /// A write-protect fault (otherwise a missing-page fault).
    pub(crate) wp: bool,
}

/// An open, API-negotiated userfaultfd (non-blocking, close-on-exec).
#[derive(Debug)]
pub(crate) struct Uffd {
    fd: OwnedFd,
}

fn ioctl<T>(fd: RawFd, req: libc::c_ulong, arg: &mut T) -> io::Result<()> {
    // SAFETY: every caller passes the argument struct matching `req` in the kernel UAPI;
    // the kernel reads/writes only within it.
    let rc = unsafe { libc::ioctl(fd, req, arg as *mut T) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

impl Uffd {
    /// Open through `/dev/userfaultfd` (root, or the node's group), falling back to the
    /// `userfaultfd(2)` system call; each first with `UFFD_USER_MODE_ONLY` (what an
    /// unprivileged process may ask for) and then without it.
    pub(crate) fn open() -> Result<Self, (String, String)> {
        let flags = libc::O_CLOEXEC | libc::O_NONBLOCK;
        let dev_err = match Self::open_dev(flags) {
            Ok(u) => return Ok(u),
            Err(e) => e.to_string(),
        };
        let mut sys_err = String::new();
        for f in [flags | UFFD_USER_MODE_ONLY, flags] {
            // SAFETY: userfaultfd(2) takes one int and returns a new descriptor or -1.
            let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, f) };
            if fd < 0 {
                sys_err = io::Error::last_os_error().to_string();
                continue;
            }
            // SAFETY: `fd` is a fresh descriptor that nothing else owns.
            let owned = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
            match Self::handshake(owned) {
                Ok(u) => return Ok(u),
                Err(e) => sys_err = e.to_string(),
            }
        }
        Err((dev_err, sys_err))
    }

    fn open_dev(flags: libc::c_int) -> io::Result<Self> {
        let dev = std::fs::OpenOptions::new().read(true).write(true).open("/dev/userfaultfd")?;
        let mut last = io::Error::from_raw_os_error(libc::EINVAL);
        for f in [flags | UFFD_USER_MODE_ONLY, flags] {
            // SAFETY: USERFAULTFD_IOC_NEW takes the open flags by value and returns a new
            // descriptor or -1.
            let fd = unsafe { libc::ioctl(dev.as_raw_fd(), USERFAULTFD_IOC_NEW, f) };
            if fd < 0 {
                last = io::Error::last_os_error();
                continue;
            }
            // SAFETY: `fd` is a fresh descriptor that nothing else owns.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            return Self::handshake(owned);
        }
        Err(last)
    }

    fn handshake(fd: OwnedFd) -> io::Result<Self> {
        let mut api = Api { api: UFFD_API, features: 0, ioctls: 0 };
        ioctl(fd.as_raw_fd(), UFFDIO_API, &mut api)?;
        Ok(Uffd { fd })
    }

    /// The descriptor, for poll(2).
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// UFFDIO_REGISTER.
    pub(crate) fn register(&self, start: u64, len: u64, mode: u64) -> io::Result<()> {
        let mut r = Register { range: Range { start, len }, mode, ioctls: 0 };
        ioctl(self.raw_fd(), UFFDIO_REGISTER, &mut r)
    }

    /// UFFDIO_UNREGISTER.
    pub(crate) fn unregister(&self, start: u64, len: u64) -> io::Result<()> {
        let mut r = Range { start, len };
        ioctl(self.raw_fd(), UFFDIO_UNREGISTER, &mut r)
    }

    /// UFFDIO_WAKE.
    pub(crate) fn wake(&self, start: u64, len: u64) -> io::Result<()> {
        let mut r = Range { start, len };
        ioctl(self.raw_fd(), UFFDIO_WAKE, &mut r)
    }

    /// UFFDIO_COPY without waking (the caller wakes after optional write protection).
    ///
    /// # Safety
    /// `src` must be readable for `len` bytes.
    pub(crate) unsafe fn copy(&self, dst: u64, src: *const u8, len: u64) -> io::Result<()> {
        let mut c = Copy { dst, src: src as u64, len, mode: COPY_MODE_DONTWAKE, copy: 0 };
        ioctl(self.raw_fd(), UFFDIO_COPY, &mut c)
    }

    /// UFFDIO_ZEROPAGE, waking waiters.
    pub(crate) fn zeropage(&self, start: u64, len: u64) -> io::Result<()> {
        let mut z = Zeropage { range: Range { start, len }, mode: 0, zeropage: 0 };
        ioctl(self.raw_fd(), UFFDIO_ZEROPAGE, &mut z)
    }

    /// UFFDIO_WRITEPROTECT: set (`wp`) or clear (and wake) write protection.
    pub(crate) fn write_protect(&self, start: u64, len: u64, wp: bool) -> io::Result<()> {
        let mut w = WriteProtect { range: Range { start, len }, mode: if wp { WP_MODE_WP } else { 0 } };
        ioctl(self.raw_fd(), UFFDIO_WRITEPROTECT, &mut w)
    }

    /// Read pending events (non-blocking); page faults only.
    pub(crate) fn read_faults(&self, out: &mut Vec<Fault>) -> io::Result<()> {
        let mut msgs = [Msg { event: 0, _r1: 0, _r2: 0, _r3: 0, flags: 0, address: 0, _tail: 0 }; 16];
        let size = std::mem::size_of::<Msg>();
        // SAFETY: `msgs` is a writable buffer of 16 * 32 bytes; read(2) writes whole
        // uffd_msg records into it.
        let n = unsafe { libc::read(self.raw_fd(), msgs.as_mut_ptr().cast(), msgs.len() * size) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock { Ok(()) } else { Err(e) };
        }
        for m in &msgs[..n as usize / size] {
            if m.event == EVENT_PAGEFAULT {
                out.push(Fault {
                    addr: m.address,
                    write: m.flags & PAGEFAULT_FLAG_WRITE != 0,
                    wp: m.flags & PAGEFAULT_FLAG_WP != 0,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uapi_struct_sizes() {
        assert_eq!(std::mem::size_of::<Api>(), 24);
        assert_eq!(std::mem::size_of::<Register>(), 32);
        assert_eq!(std::mem::size_of::<Copy>(), 40);
        assert_eq!(std::mem::size_of::<Zeropage>(), 32);
        assert_eq!(std::mem::size_of::<WriteProtect>(), 24);
        assert_eq!(std::mem::size_of::<Msg>(), 32);
    }
}
