//! The generic layer: any PCI function through VFIO (QEMU's `edu`, the NPU, ...).
//!
//! [`VfioPci`] opens a function by address after the sysfs pre-flight, maps its memory
//! BARs, enables memory decoding and bus mastering, maps host memory for DMA at IOVAs
//! from an [`IovaAllocator`] restricted to the IOMMU's usable ranges, and delivers
//! interrupts (MSI-X, else MSI, else INTx) through one eventfd per vector.

use std::collections::BTreeMap;
use std::io;
use std::ops::Range;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use npu::{IOVA_PAGE, IovaAllocator};
use pci_driver::backends::vfio::VfioPciDevice;
use pci_driver::device::PciDevice;
use pci_driver::regions::{MappedOwningPciRegion, PciRegion, Permissions};

use crate::bdf::Bdf;
use crate::error::VfioError;
use crate::sys::{self, IovaRange, VfioFds};
use crate::sysfs::{Credentials, DeviceInfo, HostPaths, preflight};
use crate::wait;

/// Interrupt mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqKind {
    /// MSI-X: up to 2048 vectors, one message each.
    MsiX,
    /// MSI: up to 32 vectors.
    Msi,
    /// Legacy level-triggered INTx: one vector, masked by VFIO when it fires.
    Intx,
}

/// Which interrupts to set up at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqMode {
    /// None (poll only).
    Off,
    /// The best the device offers: MSI-X, else MSI, else INTx, else none (poll).
    Auto,
    /// Exactly this mechanism, or fail.
    Only(IrqKind),
}

impl std::str::FromStr for IrqMode {
    type Err = VfioError;

    /// `auto`, `msix`, `msi`, `intx` or `off` (poll), as `GMEM_VFIO_IRQ` takes them.
    fn from_str(s: &str) -> Result<Self, VfioError> {
        Ok(match s {
            "auto" => IrqMode::Auto,
            "msix" => IrqMode::Only(IrqKind::MsiX),
            "msi" => IrqMode::Only(IrqKind::Msi),
            "intx" => IrqMode::Only(IrqKind::Intx),
            "off" => IrqMode::Off,
            _ => return Err(VfioError::BadIrqMode { value: s.into() }),
        })
    }
}

/// How to open a device.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// sysfs and /dev roots (the real ones unless testing).
    pub paths: HostPaths,
    /// IOVA window to allocate from; it is intersected with the IOMMU's usable ranges.
    pub iova_window: Range<u64>,
    /// Interrupt setup.
    pub irq: IrqMode,
    /// Vectors wanted (capped at what the device offers).
    pub vectors: u32,
    /// BARs to map at open.
    pub map_bars: Vec<usize>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            paths: HostPaths::default(),
            iova_window: IOVA_PAGE..1 << 40,
            irq: IrqMode::Auto,
            vectors: 1,
            map_bars: vec![0],
        }
    }
}

struct Irqs {
    kind: IrqKind,
    fds: Vec<OwnedFd>,
    /// INTx only: VFIO masked the line when it fired and it must be unmasked before
    /// the next wait.
    intx_masked: bool,
}

/// A PCI function opened through VFIO.
pub struct VfioPci {
    info: DeviceInfo,
    // Field order is drop order: BAR mappings before the device that owns them.
    bars: BTreeMap<usize, MappedOwningPciRegion>,
    irqs: Option<Irqs>,
    dev: VfioPciDevice,
    fds: VfioFds,
    ranges: Vec<IovaRange>,
    iova: IovaAllocator,
    /// The usable parts of the IOVA window.
    iova_pieces: Vec<Range<u64>>,
    /// Live DMA mappings: IOVA → length.
    maps: BTreeMap<u64, usize>,
    epoch: Instant,
}

fn open_error(e: io::Error, what: &str, info: &DeviceInfo, paths: &HostPaths) -> VfioError {
    // pci-driver reports a non-viable group (VFIO_GROUP_GET_STATUS) as text only. The
    // kernel judged differently from the sysfs rules: name every other group member.
    if e.raw_os_error().is_none() && e.to_string().contains("not viable") {
        let others = crate::sysfs::group_members(paths, info.group, &info.bdf);
        return VfioError::GroupNotViable { group: info.group, bdf: info.bdf, others };
    }
    match e.raw_os_error() {
        Some(libc::EACCES) => VfioError::PermissionDenied {
            path: format!("/dev/vfio/{}", info.group).into(),
            uid: Credentials::current().uid,
        },
        // Type1 answers VFIO_SET_IOMMU with EPERM when interrupts cannot be remapped.
        Some(libc::EPERM) => VfioError::NoInterruptRemapping,
        Some(libc::EBUSY) => VfioError::GroupBusy { group: info.group },
        _ => VfioError::os(format!("{what} {} (IOMMU group {})", info.bdf, info.group), e),
    }
}

/// The parts of `window` that the IOMMU can translate: its intersections with the
/// (inclusive) `ranges`, shrunk to whole pages, IOVA 0 excluded, in address order.
pub fn usable_pieces(window: &Range<u64>, ranges: &[IovaRange]) -> Vec<Range<u64>> {
    let clip = |r: &IovaRange| {
        let start = window.start.max(r.first).max(IOVA_PAGE).checked_next_multiple_of(IOVA_PAGE)?;
        let end = window.end.min(r.last.saturating_add(1)) & !(IOVA_PAGE - 1);
        (start < end).then_some(start..end)
    };
    let mut v: Vec<Range<u64>> = ranges.iter().filter_map(clip).collect();
    v.sort_by_key(|r| r.start);
    v
}

/// An [`IovaAllocator`] over `pieces` (from [`usable_pieces`]) that never hands out an
/// address in the gaps between them (e.g. the x86 MSI window 0xfee00000-0xfeefffff): the
/// gaps are reserved. Allocations start at the window's start, as in simulation.
pub fn iova_allocator(pieces: &[Range<u64>]) -> Option<IovaAllocator> {
    let (first, last) = (pieces.first()?, pieces.last()?);
    let mut a = IovaAllocator::new(first.start, last.end);
    for w in pieces.windows(2) {
        if w[1].start > w[0].end {
            a.reserve(w[0].end, w[1].start).ok()?;
        }
    }
    Some(a)
}

impl VfioPci {
    /// Opens the PCI function at `bdf` ("0000:01:00.0" or "01:00.0").
    pub fn open(bdf: &str, opts: &OpenOptions) -> Result<Self, VfioError> {
        let bdf: Bdf = bdf.parse()?;
        let info = preflight(&opts.paths, &bdf, &Credentials::current())?;
        let sysfs_dir = opts.paths.device_dir(&bdf);
        let (dev, fds) = sys::capture_vfio_fds(|| VfioPciDevice::open(&sysfs_dir))
            .map_err(|e| open_error(e, "cannot open", &info, &opts.paths))?;
        let (ranges, _pgsizes) =
            sys::iommu_iova_ranges(&fds.container).map_err(|e| VfioError::os("VFIO_IOMMU_GET_INFO", e))?;
        let pieces = usable_pieces(&opts.iova_window, &ranges);
        let iova = iova_allocator(&pieces).ok_or_else(|| VfioError::NoIovaWindow {
            start: opts.iova_window.start,
            end: opts.iova_window.end,
            ranges: ranges.iter().map(|r| format!("[{:#x}, {:#x}]", r.first, r.last)).collect::<Vec<_>>().join(" "),
        })?;
        let mut me = Self {
            info,
            bars: BTreeMap::new(),
            irqs: None,
            dev,
            fds,
            ranges,
            iova,
            iova_pieces: pieces,
            maps: BTreeMap::new(),
            epoch: Instant::now(),
        };
        let cmd = me.dev.config().command();
        cmd.memory_space_enable().write(true).map_err(|e| VfioError::os("enable memory decoding", e))?;
        cmd.bus_master_enable().write(true).map_err(|e| VfioError::os("enable bus mastering", e))?;
        for &b in &opts.map_bars {
            me.map_bar(b)?;
        }
        me.enable_irqs(opts.irq, opts.vectors)?;
        Ok(me)
    }

    /// What pre-flight found (address, IDs, IOMMU group).
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The underlying pci-driver device (configuration space, BARs, ...).
    pub fn device(&self) -> &VfioPciDevice {
        &self.dev
    }

    /// The IOMMU's usable IOVA ranges, ends inclusive.
    pub fn iova_ranges(&self) -> &[IovaRange] {
        &self.ranges
    }

    /// The parts of the IOVA window that DMA mappings are allocated from.
    pub fn iova_window(&self) -> &[Range<u64>] {
        &self.iova_pieces
    }

    /// Size of BAR `bar` in bytes (None if absent).
    pub fn bar_size(&self, bar: usize) -> Option<u64> {
        self.dev.bar(bar).map(|r| r.len())
    }

    /// Maps BAR `bar` whole (memory BARs only); later accesses go through the mapping.
    pub fn map_bar(&mut self, bar: usize) -> Result<usize, VfioError> {
        if let Some(m) = self.bars.get(&bar) {
            return Ok(m.len());
        }
        let bdf = self.info.bdf;
        let region = self.dev.bar(bar).ok_or(VfioError::BarUnusable { bdf, bar, problem: "absent" })?;
        if !region.is_mappable() {
            return Err(VfioError::BarUnusable { bdf, bar, problem: "not mappable (an I/O-space BAR?)" });
        }
        let m =
            region.map(.., Permissions::ReadWrite).map_err(|e| VfioError::os(format!("mmap BAR{bar} of {bdf}"), e))?;
        let len = m.len();
        self.bars.insert(bar, m);
        Ok(len)
    }

    fn mmio_ptr(&self, bar: usize, offset: u64, size: usize) -> Result<*mut u8, VfioError> {
        let m = self.bars.get(&bar);
        let len = m.map_or(0, |m| m.len());
        let ok = offset % size as u64 == 0 && offset.checked_add(size as u64).is_some_and(|end| end <= len as u64);
        match m {
            // SAFETY: offset + size ≤ len was checked, so the result stays in the mapping.
            Some(m) if ok => Ok(unsafe { m.as_mut_ptr().add(offset as usize) }),
            _ => Err(VfioError::MmioOutOfRange { bar, offset, size, len }),
        }
    }

    /// 32-bit MMIO read.
    pub fn read32(&self, bar: usize, offset: u64) -> Result<u32, VfioError> {
        let p = self.mmio_ptr(bar, offset, 4)?;
        // SAFETY: p is inside a live BAR mapping and 4-byte aligned (checked by mmio_ptr).
        Ok(u32::from_le(unsafe { sys::mmio_read(p.cast::<u32>()) }))
    }

    /// 32-bit MMIO write.
    pub fn write32(&self, bar: usize, offset: u64, value: u32) -> Result<(), VfioError> {
        let p = self.mmio_ptr(bar, offset, 4)?;
        // SAFETY: as in read32.
        unsafe { sys::mmio_write(p.cast::<u32>(), value.to_le()) };
        Ok(())
    }

    /// 64-bit MMIO read (one 8-byte access).
    pub fn read64(&self, bar: usize, offset: u64) -> Result<u64, VfioError> {
        let p = self.mmio_ptr(bar, offset, 8)?;
        // SAFETY: p is inside a live BAR mapping and 8-byte aligned (checked by mmio_ptr).
        Ok(u64::from_le(unsafe { sys::mmio_read(p.cast::<u64>()) }))
    }

    /// 64-bit MMIO write (one 8-byte access).
    pub fn write64(&self, bar: usize, offset: u64, value: u64) -> Result<(), VfioError> {
        let p = self.mmio_ptr(bar, offset, 8)?;
        // SAFETY: as in read64.
        unsafe { sys::mmio_write(p.cast::<u64>(), value.to_le()) };
        Ok(())
    }

    /// Sets up interrupts (replacing any earlier setup).
    pub fn enable_irqs(&mut self, mode: IrqMode, vectors: u32) -> Result<Option<IrqKind>, VfioError> {
        self.disable_irqs()?;
        let order: &[IrqKind] = match mode {
            IrqMode::Off => return Ok(None),
            IrqMode::Auto => &[IrqKind::MsiX, IrqKind::Msi, IrqKind::Intx],
            IrqMode::Only(IrqKind::MsiX) => &[IrqKind::MsiX],
            IrqMode::Only(IrqKind::Msi) => &[IrqKind::Msi],
            IrqMode::Only(IrqKind::Intx) => &[IrqKind::Intx],
        };
        let ints = self.dev.interrupts();
        for &kind in order {
            let mech = match kind {
                IrqKind::MsiX => ints.msi_x(),
                IrqKind::Msi => ints.msi(),
                IrqKind::Intx => ints.intx(),
            };
            let n = mech.max().min(vectors.max(1) as usize);
            if n == 0 {
                continue;
            }
            let make = |n: usize| -> Result<Vec<OwnedFd>, VfioError> {
                (0..n).map(|_| sys::eventfd()).collect::<io::Result<_>>().map_err(|e| VfioError::os("eventfd", e))
            };
            let enable =
                |fds: &[OwnedFd]| mech.enable(&fds.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect::<Vec<i32>>());
            let mut fds = make(n)?;
            if let Err(e) = enable(&fds) {
                // The platform may grant fewer vectors than the device offers (multi-MSI
                // without interrupt remapping: ENOSPC); one shared vector still works.
                if n == 1 {
                    return Err(VfioError::os(format!("enable {kind:?} interrupts (1 vector)"), e));
                }
                fds = make(1)?;
                enable(&fds).map_err(|e| VfioError::os(format!("enable {kind:?} interrupts ({n} or 1 vectors)"), e))?;
            }
            self.irqs = Some(Irqs { kind, fds, intx_masked: false });
            return Ok(Some(kind));
        }
        let wanted = match mode {
            IrqMode::Only(IrqKind::MsiX) => "MSI-X",
            IrqMode::Only(IrqKind::Msi) => "MSI",
            IrqMode::Only(IrqKind::Intx) => "INTx",
            // Auto on a device without interrupts: callers poll.
            _ => return Ok(None),
        };
        Err(VfioError::NoInterrupts { bdf: self.info.bdf, wanted })
    }

    /// Tears down interrupts.
    pub fn disable_irqs(&mut self) -> Result<(), VfioError> {
        if let Some(irqs) = self.irqs.take() {
            let ints = self.dev.interrupts();
            let mech = match irqs.kind {
                IrqKind::MsiX => ints.msi_x(),
                IrqKind::Msi => ints.msi(),
                IrqKind::Intx => ints.intx(),
            };
            mech.disable().map_err(|e| VfioError::os(format!("disable {:?} interrupts", irqs.kind), e))?;
        }
        Ok(())
    }

    /// Interrupt mechanism and vector count in use.
    pub fn irq_kind(&self) -> Option<(IrqKind, u32)> {
        self.irqs.as_ref().map(|i| (i.kind, i.fds.len() as u32))
    }

    /// Waits until a vector in `mask` fires or `timeout` passes; returns the vectors
    /// that fired (bit i = vector i; 0 on timeout). Vectors outside `mask` stay pending.
    ///
    /// It blocks in `ppoll` on the vectors' eventfds, with the thread's timer slack
    /// lowered ([`wait::lower_timer_slack`]); with no vector in `mask` it only waits
    /// ([`wait::wait_for`]).
    ///
    /// INTx is level-triggered and VFIO masks it when it fires: it is unmasked at the
    /// start of the next wait, by when the caller has acknowledged the device. If the
    /// device still asserts the line, it fires again at once.
    pub fn wait_irq(&mut self, mask: u32, timeout: Duration) -> Result<u32, VfioError> {
        let Some(irqs) = self.irqs.as_mut() else {
            return Err(VfioError::NoInterrupts { bdf: self.info.bdf, wanted: "any (interrupts are off)" });
        };
        if irqs.kind == IrqKind::Intx && irqs.intx_masked {
            sys::intx_unmask(&self.fds.device).map_err(|e| VfioError::os("unmask INTx", e))?;
            irqs.intx_masked = false;
        }
        let picked: Vec<(u32, &OwnedFd)> = irqs
            .fds
            .iter()
            .enumerate()
            .filter(|(i, _)| *i < 32 && mask & (1 << i) != 0)
            .map(|(i, f)| (i as u32, f))
            .collect();
        if picked.is_empty() {
            wait::wait_for(timeout);
            return Ok(0);
        }
        // The poll blocks until a vector fires; its timeout may expire up to the thread's
        // timer slack late, so the slack is lowered from Linux's 50 µs (once per thread).
        wait::lower_timer_slack();
        let list: Vec<&OwnedFd> = picked.iter().map(|(_, f)| *f).collect();
        let ready = sys::poll_readable(&list, timeout).map_err(|e| VfioError::os("poll interrupt eventfds", e))?;
        let mut fired = 0;
        for (k, (vec, fd)) in picked.iter().enumerate() {
            if ready & (1 << k) != 0 && sys::eventfd_take(fd).map_err(|e| VfioError::os("read eventfd", e))? > 0 {
                fired |= 1 << vec;
            }
        }
        if irqs.kind == IrqKind::Intx && fired != 0 {
            irqs.intx_masked = true;
        }
        Ok(fired)
    }

    /// Maps `len` bytes of host memory at `host` for device DMA (read and write) and
    /// returns the IOVA.
    ///
    /// # Safety
    /// `host..host+len` must stay mapped and must not be freed or reused until
    /// [`VfioPci::dma_unmap`] of the returned IOVA; the device may access it at any time
    /// in between, so the caller must not hold Rust references into it.
    pub unsafe fn dma_map_raw(&mut self, host: *mut u8, len: usize) -> Result<u64, npu::IoError> {
        let align = self.dev.iommu().alignment().max(IOVA_PAGE as usize);
        if len == 0 || len % align != 0 || host as usize % align != 0 {
            return Err(npu::IoError::BadHostRange {
                addr: host as usize,
                len,
                reason: "must be non-empty and aligned to the IOMMU page size",
            });
        }
        let iova = self.iova.alloc(len as u64)?;
        // SAFETY: the range is page aligned and the caller keeps it alive until unmap
        // (this function's contract); the IOVA range is freshly allocated, so it
        // overlaps no live mapping.
        let r = unsafe { sys::dma_map(&self.fds.container, host as usize, iova, len as u64) };
        if let Err(e) = r {
            let _ = self.iova.free(iova);
            let hint = if e.raw_os_error() == Some(libc::ENOMEM) {
                " (locked-memory limit exhausted? raise `ulimit -l`)"
            } else {
                ""
            };
            return Err(npu::IoError::Os {
                what: format!(
                    "VFIO_IOMMU_MAP_DMA of {len:#x} bytes at host {:#x} to IOVA {iova:#x}{hint}",
                    host as usize
                ),
                source: e,
            });
        }
        self.maps.insert(iova, len);
        Ok(iova)
    }

    /// Removes the DMA mapping that starts at `iova`.
    pub fn dma_unmap(&mut self, iova: u64) -> Result<(), npu::IoError> {
        let len = *self.maps.get(&iova).ok_or(npu::IoError::NotMapped { iova })?;
        let what = || format!("VFIO_IOMMU_UNMAP_DMA of IOVA {iova:#x} ({len:#x} bytes)");
        let done = sys::dma_unmap(&self.fds.container, iova, len as u64)
            .map_err(|source| npu::IoError::Os { what: what(), source })?;
        if done != len as u64 {
            return Err(npu::IoError::Device(format!("{}: the kernel unmapped {done:#x} bytes", what())));
        }
        self.maps.remove(&iova);
        self.iova.free(iova)?;
        Ok(())
    }

    /// Reserves `len` bytes of IOVA space without mapping anything (for ranges mapped
    /// piecewise with [`VfioPci::dma_map_at`]); [`VfioPci::iova_free`] returns it.
    pub fn iova_reserve(&mut self, len: u64) -> Result<u64, npu::IoError> {
        Ok(self.iova.alloc(len)?)
    }

    /// Returns IOVA space from [`VfioPci::iova_reserve`] (unmap its pieces first).
    pub fn iova_free(&mut self, iova: u64) -> Result<(), npu::IoError> {
        self.iova.free(iova)?;
        Ok(())
    }

    /// Maps `len` bytes at `host` to `iova` (device-writable if `write`), inside a range
    /// from [`VfioPci::iova_reserve`] that has nothing mapped there;
    /// [`VfioPci::dma_unmap_at`] removes it.
    ///
    /// # Safety
    /// As [`VfioPci::dma_map_raw`], until `dma_unmap_at(iova, len)`.
    pub unsafe fn dma_map_at(&mut self, host: *mut u8, iova: u64, len: u64, write: bool) -> Result<(), npu::IoError> {
        // SAFETY: the caller's contract; the IOVA range is reserved and unmapped.
        unsafe { sys::dma_map_prot(&self.fds.container, host as usize, iova, len, write) }.map_err(|source| {
            npu::IoError::Os {
                what: format!(
                    "VFIO_IOMMU_MAP_DMA of {len:#x} bytes at host {:#x} to IOVA {iova:#x} (device {})",
                    host as usize,
                    if write { "read/write" } else { "read-only" }
                ),
                source,
            }
        })
    }

    /// Removes a mapping made by [`VfioPci::dma_map_at`] (the IOVA stays reserved).
    pub fn dma_unmap_at(&mut self, iova: u64, len: u64) -> Result<(), npu::IoError> {
        let what = || format!("VFIO_IOMMU_UNMAP_DMA of IOVA {iova:#x} ({len:#x} bytes)");
        let done = sys::dma_unmap(&self.fds.container, iova, len)
            .map_err(|source| npu::IoError::Os { what: what(), source })?;
        if done != len {
            return Err(npu::IoError::Device(format!("{}: the kernel unmapped {done:#x} bytes", what())));
        }
        Ok(())
    }

    /// Live DMA mappings as (IOVA, length), in IOVA order.
    pub fn dma_mappings(&self) -> Vec<(u64, usize)> {
        self.maps.iter().map(|(&i, &l)| (i, l)).collect()
    }

    /// Whether VFIO can reset this function (FLR, PM or bus reset).
    pub fn reset_supported(&self) -> bool {
        sys::device_reset_supported(&self.fds.device).unwrap_or(false)
    }

    /// PCI function reset through VFIO; BAR mappings, DMA mappings and interrupt
    /// setup survive (vfio-pci saves and restores the configuration space).
    pub fn reset(&mut self) -> Result<(), VfioError> {
        if !self.reset_supported() {
            return Err(VfioError::ResetUnsupported { bdf: self.info.bdf });
        }
        self.dev.reset().map_err(|e| VfioError::os(format!("VFIO_DEVICE_RESET of {}", self.info.bdf), e))
    }

    /// Nanoseconds of the monotonic clock since the device was opened.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

impl std::fmt::Debug for VfioPci {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VfioPci")
            .field("bdf", &self.info.bdf.to_string())
            .field("ids", &format_args!("{:04x}:{:04x}", self.info.vendor, self.info.device))
            .field("group", &self.info.group)
            .field("bars", &self.bars.iter().map(|(b, m)| (*b, m.len())).collect::<Vec<_>>())
            .field("irq", &self.irq_kind())
            .field("iova_window", &self.iova_pieces)
            .field("dma_mappings", &self.maps.len())
            .finish()
    }
}

impl Drop for VfioPci {
    fn drop(&mut self) {
        // Best effort: closing the container drops every mapping anyway.
        let live: Vec<u64> = self.maps.keys().copied().collect();
        for iova in live {
            let _ = self.dma_unmap(iova);
        }
        let _ = self.disable_irqs();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // lists of pieces that hold one range
    fn the_iova_window_is_clipped_to_the_iommu_ranges_and_pages() {
        let r = [IovaRange { first: 0, last: 0xfedf_ffff }, IovaRange { first: 0xfef0_0000, last: (1 << 48) - 1 }];
        assert_eq!(
            usable_pieces(&(0..1 << 40), &r),
            [0x1000..0xfee0_0000, 0xfef0_0000..1 << 40],
            "IOVA 0 skipped, inclusive ends"
        );
        assert_eq!(usable_pieces(&(0x1000..1 << 28), &r), [0x1000..1 << 28], "edu's 28-bit DMA mask");
        assert_eq!(usable_pieces(&(0xff00_0000..1 << 40), &r), [0xff00_0000..1 << 40]);
        let full = [IovaRange { first: 0, last: u64::MAX }];
        assert_eq!(usable_pieces(&(0..u64::MAX), &full), [0x1000..!0xfff], "no overflow at the top");
        assert!(usable_pieces(&(0xfee0_0000..0xfef0_0000), &r).is_empty(), "inside the MSI hole");
        assert!(usable_pieces(&(0x1000..0x1800), &r).is_empty(), "less than a page");
        assert!(iova_allocator(&[]).is_none());
    }

    #[test]
    fn the_allocator_starts_at_the_window_and_never_enters_a_gap() {
        let pieces = [0x1000..0x5000, 0x8000..0x9000, 0xa000..0x10000];
        let mut a = iova_allocator(&pieces).unwrap();
        assert_eq!(a.alloc(0x1000).unwrap(), 0x1000, "same first IOVA as the simulation");
        assert_eq!(a.alloc(0x4000).unwrap(), 0xa000, "too big for [0x2000, 0x5000): skips both gaps");
        assert_eq!(a.alloc(0x3000).unwrap(), 0x2000);
        assert_eq!(a.alloc(0x1000).unwrap(), 0x8000, "the 1-page piece between the gaps");
        assert_eq!(a.alloc(0x2000).unwrap(), 0xe000);
        assert!(a.alloc(0x1000).is_err(), "full: nothing left outside the gaps");
        let one = 0x1000..0x3000;
        let mut single = iova_allocator(std::slice::from_ref(&one)).unwrap();
        assert_eq!(single.alloc(0x2000).unwrap(), 0x1000);
    }

    #[test]
    fn opening_a_device_that_is_not_there_is_a_typed_error() {
        let opts = OpenOptions {
            paths: HostPaths { sysfs: "/nonexistent/sys".into(), dev: "/nonexistent/dev".into() },
            ..OpenOptions::default()
        };
        assert!(matches!(VfioPci::open("0000:01:00.0", &opts), Err(VfioError::NoDevice { .. })));
        assert!(matches!(VfioPci::open("01:00", &opts), Err(VfioError::Bdf(_))));
    }
}
