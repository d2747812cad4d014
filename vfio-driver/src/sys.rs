//! Raw VFIO ioctls and OS calls that `pci-driver` 0.1.4 does not offer.
//!
//! Every `unsafe` OS call of the crate lives here. What pci-driver lacks:
//! - INTx unmask (`VFIO_DEVICE_SET_IRQS` with `ACTION_UNMASK`): VFIO masks a level
//!   interrupt when it fires, and only the user can unmask it;
//! - the IOMMU's usable IOVA ranges with the kernel's inclusive ends (pci-driver drops
//!   IOVA 0 and reads the ends as exclusive);
//! - whether the device supports `VFIO_DEVICE_RESET`;
//! - DMA map/unmap that keep the errno (pci-driver wraps it into text, which hides the
//!   ENOMEM of an exhausted locked-memory limit);
//! - eventfds and waiting on them with a nanosecond timeout;
//! - the calling thread's timer slack (`prctl` `PR_SET_TIMERSLACK`/`PR_GET_TIMERSLACK`);
//! - volatile 32/64-bit MMIO accessors.
//!
//! pci-driver keeps its VFIO file descriptors private, so [`capture_vfio_fds`] finds the
//! ones it opened by comparing `/proc/self/fd` before and after the open, and keeps
//! duplicates of them.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::time::Duration;

// VFIO ioctl numbers: _IO(';', 100 + n), <linux/vfio.h>.
const fn vfio_io(n: libc::c_ulong) -> libc::c_ulong {
    ((b';' as libc::c_ulong) << 8) | (100 + n)
}
const VFIO_DEVICE_GET_INFO: libc::c_ulong = vfio_io(7);
const VFIO_DEVICE_SET_IRQS: libc::c_ulong = vfio_io(10);
const VFIO_IOMMU_GET_INFO: libc::c_ulong = vfio_io(12);
const VFIO_IOMMU_MAP_DMA: libc::c_ulong = vfio_io(13);
const VFIO_IOMMU_UNMAP_DMA: libc::c_ulong = vfio_io(14);
const VFIO_DMA_MAP_FLAG_READ: u32 = 1 << 0;
const VFIO_DMA_MAP_FLAG_WRITE: u32 = 1 << 1;

const VFIO_DEVICE_FLAGS_RESET: u32 = 1 << 0;
const VFIO_IRQ_SET_DATA_NONE: u32 = 1 << 0;
const VFIO_IRQ_SET_ACTION_UNMASK: u32 = 1 << 4;
/// VFIO's IRQ index of INTx.
pub const VFIO_PCI_INTX_IRQ_INDEX: u32 = 0;
const VFIO_IOMMU_INFO_CAPS: u32 = 1 << 1;
const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE: u16 = 1;

#[repr(C)]
struct VfioDeviceInfo {
    argsz: u32,
    flags: u32,
    num_regions: u32,
    num_irqs: u32,
    cap_offset: u32,
    pad: u32,
}

#[repr(C)]
struct VfioIrqSet {
    argsz: u32,
    flags: u32,
    index: u32,
    start: u32,
    count: u32,
}

#[repr(C)]
struct VfioDmaMap {
    argsz: u32,
    flags: u32,
    vaddr: u64,
    iova: u64,
    size: u64,
}

#[repr(C)]
struct VfioDmaUnmap {
    argsz: u32,
    flags: u32,
    iova: u64,
    size: u64,
}

#[repr(C)]
struct VfioIommuType1Info {
    argsz: u32,
    flags: u32,
    iova_pgsizes: u64,
    cap_offset: u32,
    pad: u32,
}

/// One usable IOVA range of the IOMMU, both ends inclusive (as the kernel reports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IovaRange {
    /// First usable IOVA.
    pub first: u64,
    /// Last usable IOVA (inclusive).
    pub last: u64,
}

/// The VFIO descriptors pci-driver opened for one device (our own duplicates).
#[derive(Debug)]
pub struct VfioFds {
    /// The container (`/dev/vfio/vfio`).
    pub container: OwnedFd,
    /// The device (`anon_inode:[vfio-device]`).
    pub device: OwnedFd,
}

/// Serialises opens, so the `/proc/self/fd` difference belongs to one open.
static OPEN_LOCK: Mutex<()> = Mutex::new(());

fn fd_targets() -> io::Result<Vec<(RawFd, String)>> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc/self/fd")?.filter_map(Result::ok) {
        let Some(fd) = e.file_name().to_str().and_then(|s| s.parse::<RawFd>().ok()) else { continue };
        if let Ok(t) = fs::read_link(e.path()) {
            out.push((fd, t.to_string_lossy().into_owned()));
        }
    }
    Ok(out)
}

fn dup_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor number only creates a new descriptor; if
    // `fd` were closed meanwhile the call fails with EBADF, which we report.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Runs `open` (which opens one VFIO device through pci-driver) and returns its result
/// with duplicates of the container and device descriptors it created.
///
/// Opens are serialised by a crate-wide lock; a VFIO open racing in another thread
/// *outside* this crate could confuse the difference, which is why there must be
/// exactly one new device and one new container descriptor, or this fails.
pub fn capture_vfio_fds<T>(open: impl FnOnce() -> io::Result<T>) -> io::Result<(T, VfioFds)> {
    let _guard = OPEN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let before = fd_targets()?;
    let value = open()?;
    let new: Vec<(RawFd, String)> = fd_targets()?.into_iter().filter(|x| !before.contains(x)).collect();
    let pick = |name: &str| -> io::Result<OwnedFd> {
        let hits: Vec<RawFd> = new.iter().filter(|(_, t)| t == name).map(|(fd, _)| *fd).collect();
        match hits.as_slice() {
            [fd] => dup_fd(*fd),
            _ => Err(io::Error::other(format!(
                "expected one new {name} descriptor after the VFIO open, found {}",
                hits.len()
            ))),
        }
    };
    let fds = VfioFds { container: pick("/dev/vfio/vfio")?, device: pick("anon_inode:[vfio-device]")? };
    Ok((value, fds))
}

/// Does the device support `VFIO_DEVICE_RESET`?
pub fn device_reset_supported(device: &OwnedFd) -> io::Result<bool> {
    let mut info = VfioDeviceInfo {
        argsz: size_of::<VfioDeviceInfo>() as u32,
        flags: 0,
        num_regions: 0,
        num_irqs: 0,
        cap_offset: 0,
        pad: 0,
    };
    // SAFETY: VFIO_DEVICE_GET_INFO writes at most argsz bytes into `info`, which is a
    // live, correctly sized vfio_device_info.
    let r = unsafe { libc::ioctl(device.as_raw_fd(), VFIO_DEVICE_GET_INFO, &mut info) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info.flags & VFIO_DEVICE_FLAGS_RESET != 0)
}

/// Unmasks INTx, which VFIO masked when it last fired.
pub fn intx_unmask(device: &OwnedFd) -> io::Result<()> {
    let set = VfioIrqSet {
        argsz: size_of::<VfioIrqSet>() as u32,
        flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
        index: VFIO_PCI_INTX_IRQ_INDEX,
        start: 0,
        count: 1,
    };
    // SAFETY: VFIO_DEVICE_SET_IRQS reads argsz bytes of `set`; with DATA_NONE there is
    // no trailing data, so the header is the whole argument.
    let r = unsafe { libc::ioctl(device.as_raw_fd(), VFIO_DEVICE_SET_IRQS, &set) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Maps `size` bytes of this process at `vaddr` to `iova` for device reads and writes.
///
/// # Safety
/// The host range must stay mapped (and must not be reused for anything the device may
/// not touch) until [`dma_unmap`] of the same IOVA range: the device can access it at
/// any time in between.
pub unsafe fn dma_map(container: &OwnedFd, vaddr: usize, iova: u64, size: u64) -> io::Result<()> {
    // SAFETY: forwarded under the same contract.
    unsafe { dma_map_prot(container, vaddr, iova, size, true) }
}

/// [`dma_map`], device-writable only if `write` (a read-only mapping pins without
/// FOLL_WRITE, so pages the process keeps write-protected can be mapped).
///
/// # Safety
/// As [`dma_map`].
pub unsafe fn dma_map_prot(container: &OwnedFd, vaddr: usize, iova: u64, size: u64, write: bool) -> io::Result<()> {
    let m = VfioDmaMap {
        argsz: size_of::<VfioDmaMap>() as u32,
        flags: VFIO_DMA_MAP_FLAG_READ | if write { VFIO_DMA_MAP_FLAG_WRITE } else { 0 },
        vaddr: vaddr as u64,
        iova,
        size,
    };
    // SAFETY: the kernel reads argsz bytes of `m`; it pins the pages of the host range,
    // whose lifetime the caller guarantees.
    let r = unsafe { libc::ioctl(container.as_raw_fd(), VFIO_IOMMU_MAP_DMA, &m) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Removes the mappings in `[iova, iova + size)`; returns the bytes unmapped.
pub fn dma_unmap(container: &OwnedFd, iova: u64, size: u64) -> io::Result<u64> {
    let mut u = VfioDmaUnmap { argsz: size_of::<VfioDmaUnmap>() as u32, flags: 0, iova, size };
    // SAFETY: the kernel reads and writes back (size) argsz bytes of `u`.
    let r = unsafe { libc::ioctl(container.as_raw_fd(), VFIO_IOMMU_UNMAP_DMA, &mut u) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(u.size) }
}

/// Reads the IOMMU's usable IOVA ranges (sorted, ends inclusive) and its page sizes.
pub fn iommu_iova_ranges(container: &OwnedFd) -> io::Result<(Vec<IovaRange>, u64)> {
    let hdr = size_of::<VfioIommuType1Info>();
    // First call: learn how large the capability chain is (the kernel raises argsz).
    let mut argsz = hdr as u32;
    let mut tries = 0;
    let buf = loop {
        tries += 1;
        let mut buf: Vec<u64> = vec![0; (argsz as usize).div_ceil(8)];
        let info = buf.as_mut_ptr().cast::<VfioIommuType1Info>();
        // SAFETY: buf is 8-aligned and at least `argsz` ≥ sizeof(info) bytes long.
        unsafe { (*info).argsz = argsz };
        // SAFETY: the kernel writes at most argsz bytes into buf, which has that room.
        let r = unsafe { libc::ioctl(container.as_raw_fd(), VFIO_IOMMU_GET_INFO, info) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the header lies in buf and was just written by the kernel.
        let want = unsafe { (*info).argsz };
        if want <= argsz || tries == 2 {
            break buf;
        }
        argsz = want;
    };
    let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
    Ok(parse_iommu_info(&bytes))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// Parses a `vfio_iommu_type1_info` with its capability chain (kept separate from the
/// ioctl so it is testable). Returns (ranges, page-size bitmap).
pub(crate) fn parse_iommu_info(b: &[u8]) -> (Vec<IovaRange>, u64) {
    let flags = u32_at(b, 4).unwrap_or(0);
    let pgsizes = u64_at(b, 8).unwrap_or(0);
    let mut ranges = Vec::new();
    let mut off = if flags & VFIO_IOMMU_INFO_CAPS != 0 { u32_at(b, 16).unwrap_or(0) as usize } else { 0 };
    let mut hops = 0;
    while off != 0 && hops < 64 {
        hops += 1;
        let Some(head) = u32_at(b, off) else { break };
        let id = (head & 0xffff) as u16;
        let next = u32_at(b, off + 4).unwrap_or(0) as usize;
        if id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE {
            let n = u32_at(b, off + 8).unwrap_or(0) as usize;
            for i in 0..n {
                let base = off + 16 + i * 16;
                if let (Some(first), Some(last)) = (u64_at(b, base), u64_at(b, base + 8)) {
                    ranges.push(IovaRange { first, last });
                }
            }
        }
        off = next;
    }
    ranges.sort_by_key(|r| r.first);
    (ranges, pgsizes)
}

/// A non-blocking, close-on-exec eventfd.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes no pointers; a negative return is an error.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads and clears an eventfd's counter; 0 if it was not signalled.
pub fn eventfd_take(fd: &OwnedFd) -> io::Result<u64> {
    let mut v = 0u64;
    // SAFETY: reads exactly 8 bytes into a live u64.
    let r = unsafe { libc::read(fd.as_raw_fd(), (&raw mut v).cast(), 8) };
    if r == 8 {
        return Ok(v);
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::WouldBlock { Ok(0) } else { Err(e) }
}

/// Adds 1 to an eventfd's counter (tests and self-wakeups).
pub fn eventfd_signal(fd: &OwnedFd) -> io::Result<()> {
    let v = 1u64;
    // SAFETY: writes exactly 8 bytes from a live u64.
    let r = unsafe { libc::write(fd.as_raw_fd(), (&raw const v).cast(), 8) };
    if r == 8 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Waits until one of `fds` is readable or `timeout` passes; returns a bitmask of the
/// readable ones (bit i = `fds[i]`). Retries on EINTR with the remaining time.
pub fn poll_readable(fds: &[&OwnedFd], timeout: Duration) -> io::Result<u64> {
    let deadline = std::time::Instant::now() + timeout;
    let mut pfds: Vec<libc::pollfd> =
        fds.iter().map(|f| libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ts =
            libc::timespec { tv_sec: left.as_secs() as libc::time_t, tv_nsec: left.subsec_nanos() as libc::c_long };
        // SAFETY: pfds is a live array of pfds.len() pollfds; ts lives across the call;
        // a null sigmask leaves the signal mask alone.
        let r = unsafe { libc::ppoll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, &ts, std::ptr::null()) };
        if r >= 0 {
            let mut mask = 0;
            for (i, p) in pfds.iter().enumerate() {
                if p.revents & libc::POLLIN != 0 {
                    mask |= 1 << i;
                }
            }
            return Ok(mask);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The calling process's effective uid, and its effective gid followed by its
/// supplementary groups (at most 256 of them).
pub fn credentials() -> (u32, Vec<u32>) {
    // SAFETY: geteuid/getegid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let mut gids = vec![gid];
    let mut buf = [0 as libc::gid_t; 256];
    // SAFETY: buf has room for 256 gids, and that size is what we pass.
    let n = unsafe { libc::getgroups(buf.len() as libc::c_int, buf.as_mut_ptr()) };
    if n > 0 {
        gids.extend_from_slice(&buf[..n as usize]);
    }
    (uid, gids)
}

/// Sets the calling thread's timer slack (`PR_SET_TIMERSLACK`) to `ns` nanoseconds.
///
/// The slack is how late the kernel may fire a sleeping thread's timer so it can batch
/// wake-ups (50 µs by default for a normal thread; real-time threads have none). It is a
/// per-thread attribute: other threads of the process keep theirs, and threads created
/// later by this one inherit it. `ns` = 0 restores the value the thread started with.
pub fn set_timer_slack(ns: u64) -> io::Result<()> {
    let ns = libc::c_ulong::try_from(ns).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: PR_SET_TIMERSLACK reads its second argument as an integer and no pointer;
    // the unused arguments are 0, as prctl(2) asks. It affects only the calling thread.
    let r =
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns, 0 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// The calling thread's timer slack in nanoseconds (`PR_GET_TIMERSLACK`).
pub fn timer_slack() -> io::Result<u64> {
    // SAFETY: PR_GET_TIMERSLACK takes no pointer and returns the slack as the result.
    let r = unsafe {
        libc::prctl(
            libc::PR_GET_TIMERSLACK,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    u64::try_from(r).map_err(|_| io::Error::last_os_error())
}

/// Volatile MMIO read of a `T` at `ptr`.
///
/// # Safety
/// `ptr` must be valid for reads of `T` and aligned to its size (a mapped BAR).
pub unsafe fn mmio_read<T: Copy>(ptr: *const T) -> T {
    // SAFETY: guaranteed by the caller. On x86-64 an aligned 4- or 8-byte volatile read
    // compiles to one load instruction, i.e. one PCIe read of that size.
    unsafe { std::ptr::read_volatile(ptr) }
}

/// Volatile MMIO write of a `T` at `ptr`.
///
/// # Safety
/// `ptr` must be valid for writes of `T` and aligned to its size (a mapped BAR).
pub unsafe fn mmio_write<T: Copy>(ptr: *mut T, value: T) {
    // SAFETY: guaranteed by the caller; one store instruction, one posted PCIe write.
    unsafe { std::ptr::write_volatile(ptr, value) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_linux_vfio_h() {
        assert_eq!(VFIO_DEVICE_GET_INFO, 0x3b6b);
        assert_eq!(VFIO_DEVICE_SET_IRQS, 0x3b6e);
        assert_eq!(VFIO_IOMMU_GET_INFO, 0x3b70);
        assert_eq!((VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA), (0x3b71, 0x3b72));
        assert_eq!((size_of::<VfioDmaMap>(), size_of::<VfioDmaUnmap>()), (32, 24));
        assert_eq!(size_of::<VfioIommuType1Info>(), 24);
        assert_eq!(size_of::<VfioIrqSet>(), 20);
    }

    #[test]
    fn parses_the_iova_range_capability_with_inclusive_ends() {
        // Header (24 bytes) + DMA_AVAIL cap (id 3) at 24 + IOVA_RANGE cap (id 1) at 40.
        let mut b = vec![0u8; 40 + 16 + 2 * 16];
        let n = b.len() as u32;
        b[0..4].copy_from_slice(&n.to_ne_bytes());
        b[4..8].copy_from_slice(&(VFIO_IOMMU_INFO_CAPS | 1).to_ne_bytes());
        b[8..16].copy_from_slice(&0x4020_1000u64.to_ne_bytes());
        b[16..20].copy_from_slice(&24u32.to_ne_bytes());
        b[24..28].copy_from_slice(&(3u32 | (1 << 16)).to_ne_bytes());
        b[28..32].copy_from_slice(&40u32.to_ne_bytes());
        b[40..44].copy_from_slice(&(1u32 | (1 << 16)).to_ne_bytes());
        b[48..52].copy_from_slice(&2u32.to_ne_bytes());
        // Deliberately out of order: the parser sorts.
        b[56..64].copy_from_slice(&0xfef0_0000u64.to_ne_bytes());
        b[64..72].copy_from_slice(&0x7f_ffff_ffffu64.to_ne_bytes());
        b[72..80].copy_from_slice(&0u64.to_ne_bytes());
        b[80..88].copy_from_slice(&0xfedf_ffffu64.to_ne_bytes());
        let (ranges, pg) = parse_iommu_info(&b);
        assert_eq!(pg, 0x4020_1000);
        assert_eq!(
            ranges,
            [IovaRange { first: 0, last: 0xfedf_ffff }, IovaRange { first: 0xfef0_0000, last: 0x7f_ffff_ffff }]
        );
        // A truncated buffer or no CAPS flag yields no ranges rather than garbage.
        assert_eq!(parse_iommu_info(&b[..60]).0, [] as [IovaRange; 0]);
        b[4..8].copy_from_slice(&1u32.to_ne_bytes());
        assert!(parse_iommu_info(&b).0.is_empty());
    }

    #[test]
    fn eventfds_poll_and_take() {
        let a = eventfd().unwrap();
        let b = eventfd().unwrap();
        assert_eq!(poll_readable(&[&a, &b], Duration::from_millis(1)).unwrap(), 0, "nothing signalled");
        eventfd_signal(&b).unwrap();
        eventfd_signal(&b).unwrap();
        assert_eq!(poll_readable(&[&a, &b], Duration::from_secs(5)).unwrap(), 0b10);
        assert_eq!(eventfd_take(&b).unwrap(), 2, "counts accumulate until read");
        assert_eq!(eventfd_take(&b).unwrap(), 0);
        assert_eq!(eventfd_take(&a).unwrap(), 0);
    }

    #[test]
    fn the_timer_slack_reads_back_as_set_and_zero_restores_the_threads_start_value() {
        let (set, restored, start) = std::thread::spawn(|| {
            let start = timer_slack().unwrap();
            set_timer_slack(1_234).unwrap();
            let set = timer_slack().unwrap();
            set_timer_slack(0).unwrap();
            (set, timer_slack().unwrap(), start)
        })
        .join()
        .unwrap();
        assert_eq!(set, 1_234);
        assert_eq!(restored, start);
    }

    #[test]
    fn capture_fails_cleanly_when_the_open_creates_no_vfio_descriptors() {
        let e = capture_vfio_fds(|| Ok(eventfd())).unwrap_err();
        assert!(e.to_string().contains("expected one new /dev/vfio/vfio descriptor"), "{e}");
        let e = capture_vfio_fds::<()>(|| Err(io::Error::from_raw_os_error(libc::ENOENT))).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "the open's own error passes through");
    }
}
