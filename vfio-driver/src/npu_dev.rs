//! The NPU on a PCIe board: [`npu::DeviceIo`] on top of the generic [`VfioPci`] layer.
//!
//! On top of the generic open this checks that BAR0 holds the whole register map and
//! that the ID and VERSION registers name a bitstream this driver knows, and sets up one
//! interrupt vector per cause (MSI-X vector i = INT_STATUS bit i, `docs/device.md` §11).
//! With fewer vectors (MSI or INTx) all causes share vector 0 and [`DeviceIo::wait_irq`]
//! tells them apart by reading INT_STATUS, so callers see the same per-cause bits.

use std::time::Duration;

use npu::{Clock, DeviceIo, IoError, regs};

use crate::bdf::Bdf;
use crate::error::VfioError;
use crate::pci::{IrqKind, IrqMode, OpenOptions, VfioPci};

/// BAR holding the CSRs.
pub const CSR_BAR: usize = 0;
/// Interrupt causes of the NPU (INT_STATUS bits), one MSI-X vector each.
pub const NPU_VECTORS: u32 = 7;
/// The specification major version this driver implements.
pub const KNOWN_MAJOR: u32 = 1;

/// Checks what BAR0's size and the ID/VERSION registers say about the bitstream.
pub fn check_identity(bdf: Bdf, bar0_size: u64, id: u32, version: u32) -> Result<(), VfioError> {
    let need = u64::from(regs::CSR_BYTES);
    if bar0_size < need {
        return Err(VfioError::BarTooSmall { bdf, bar: CSR_BAR, size: bar0_size, need });
    }
    if id != regs::NPU_ID {
        return Err(VfioError::IdMismatch { bdf, expected: regs::NPU_ID, found: id });
    }
    let major = version >> regs::version::MAJOR.lsb;
    if major != KNOWN_MAJOR {
        return Err(VfioError::VersionMismatch { bdf, found: major, known: KNOWN_MAJOR });
    }
    Ok(())
}

/// Default open options for the NPU: BAR0, seven vectors, the NPU's host window.
pub fn npu_open_options() -> OpenOptions {
    OpenOptions { irq: IrqMode::Auto, vectors: NPU_VECTORS, map_bars: vec![CSR_BAR], ..OpenOptions::default() }
}

/// The NPU behind VFIO.
pub struct VfioDevice {
    pci: VfioPci,
    name: String,
}

impl VfioDevice {
    /// Opens the NPU at `bdf` with [`npu_open_options`].
    pub fn open(bdf: &str) -> Result<Self, VfioError> {
        Self::open_with(bdf, &npu_open_options())
    }

    /// Opens the NPU at `bdf` with explicit options (BAR0 is always mapped).
    pub fn open_with(bdf: &str, opts: &OpenOptions) -> Result<Self, VfioError> {
        let mut pci = VfioPci::open(bdf, &OpenOptions { map_bars: vec![], ..opts.clone() })?;
        let b = pci.info().bdf;
        let size = pci.bar_size(CSR_BAR).ok_or(VfioError::BarUnusable { bdf: b, bar: CSR_BAR, problem: "absent" })?;
        let need = u64::from(regs::CSR_BYTES);
        if size < need {
            return Err(VfioError::BarTooSmall { bdf: b, bar: CSR_BAR, size, need });
        }
        pci.map_bar(CSR_BAR)?;
        let id = pci.read32(CSR_BAR, u64::from(regs::ID.offset))?;
        let version = pci.read32(CSR_BAR, u64::from(regs::VERSION.offset))?;
        check_identity(b, size, id, version)?;
        Ok(Self { name: format!("vfio {b}"), pci })
    }

    /// The generic layer underneath (IOVA ranges, interrupt kind, raw BAR access).
    pub fn pci(&self) -> &VfioPci {
        &self.pci
    }

    /// Mutable access to the generic layer.
    pub fn pci_mut(&mut self) -> &mut VfioPci {
        &mut self.pci
    }

    fn check_csr(offset: u32) -> Result<(), IoError> {
        if offset >= regs::CSR_BYTES || offset % 4 != 0 {
            return Err(IoError::CsrOutOfRange { offset, size: regs::CSR_BYTES });
        }
        Ok(())
    }

    fn csr_err(kind: &'static str, offset: u32, e: VfioError) -> IoError {
        IoError::Csr { kind, offset, reason: e.to_string() }
    }

    /// Causes pending and enabled (INT_STATUS & INT_MASK): the level of the lines.
    fn pending(&mut self) -> Result<u32, IoError> {
        let s = self.read32(regs::INT_STATUS.offset)?;
        let m = self.read32(regs::INT_MASK.offset)?;
        Ok(s & m)
    }
}

impl DeviceIo for VfioDevice {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn read32(&mut self, offset: u32) -> Result<u32, IoError> {
        Self::check_csr(offset)?;
        self.pci.read32(CSR_BAR, u64::from(offset)).map_err(|e| Self::csr_err("read", offset, e))
    }

    fn write32(&mut self, offset: u32, value: u32) -> Result<(), IoError> {
        Self::check_csr(offset)?;
        self.pci.write32(CSR_BAR, u64::from(offset), value).map_err(|e| Self::csr_err("write", offset, e))
    }

    // read64/write64: the trait's two 32-bit accesses, low word first, are what the
    // NPU's AXI4-Lite port and its counter latch expect (docs/device.md §2.3).

    unsafe fn dma_map_raw(&mut self, host: *mut u8, len: usize) -> Result<u64, IoError> {
        // SAFETY: the caller upholds DeviceIo::dma_map_raw's contract, which is the
        // same as VfioPci::dma_map_raw's.
        unsafe { self.pci.dma_map_raw(host, len) }
    }

    fn dma_unmap(&mut self, iova: u64) -> Result<(), IoError> {
        self.pci.dma_unmap(iova)
    }

    fn wait_irq(&mut self, mask: u32, budget_ns: u64) -> Result<u32, IoError> {
        let deadline = self.pci.now_ns().saturating_add(budget_ns);
        let per_cause = matches!(self.pci.irq_kind(), Some((IrqKind::MsiX, n)) if n >= NPU_VECTORS);
        loop {
            // Level semantics, as in simulation: a cause already pending counts even
            // if its message was consumed by an earlier wait.
            let level = self.pending()? & mask;
            if level != 0 {
                return Ok(level);
            }
            let now = self.pci.now_ns();
            if now >= deadline {
                return Ok(0);
            }
            let left = Duration::from_nanos(deadline - now);
            if self.pci.irq_kind().is_none() {
                // No interrupts: poll the status register every 10 µs.
                std::thread::sleep(left.min(Duration::from_micros(10)));
                continue;
            }
            let vectors = if per_cause { mask } else { 1 };
            self.pci.wait_irq(vectors, left)?;
        }
    }

    fn now_ns(&self) -> u64 {
        self.pci.now_ns()
    }

    fn advance(&mut self, ns: u64) -> Result<(), IoError> {
        std::thread::sleep(Duration::from_nanos(ns));
        Ok(())
    }

    fn clock(&self) -> Clock {
        Clock::Wall
    }

    fn reset(&mut self) -> Result<(), IoError> {
        self.pci.reset()?;
        let id = self.read32(regs::ID.offset)?;
        if id != regs::NPU_ID {
            return Err(IoError::Device(format!("after reset the ID register reads {id:#010x}, expected {:#010x}", regs::NPU_ID)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bdf() -> Bdf {
        "0000:01:00.0".parse().unwrap()
    }

    #[test]
    fn identity_checks_bar_size_then_id_then_major_version() {
        assert!(check_identity(bdf(), 4096, regs::NPU_ID, regs::NPU_VERSION).is_ok());
        assert!(check_identity(bdf(), 1 << 20, regs::NPU_ID, regs::NPU_VERSION | 0x0305).is_ok(), "minor/patch are compatible");
        let e = check_identity(bdf(), 2048, regs::NPU_ID, regs::NPU_VERSION).unwrap_err();
        assert!(matches!(e, VfioError::BarTooSmall { bar: 0, size: 2048, need: 4096, .. }), "{e}");
        assert!(e.to_string().contains("0x800 bytes, smaller than the 0x1000-byte register map"), "{e}");
        let e = check_identity(bdf(), 4096, 0x010000ed, regs::NPU_VERSION).unwrap_err();
        assert!(matches!(e, VfioError::IdMismatch { found: 0x010000ed, expected: 0x3155504e, .. }), "{e}");
        assert!(e.to_string().contains("wrong bitstream"), "{e}");
        let e = check_identity(bdf(), 4096, u32::MAX, 0).unwrap_err();
        assert!(e.to_string().contains("device is dead"), "{e}");
        let e = check_identity(bdf(), 4096, regs::NPU_ID, 0x0002_0000).unwrap_err();
        assert!(matches!(e, VfioError::VersionMismatch { found: 2, known: 1, .. }), "{e}");
    }

    #[test]
    fn typed_errors_become_transport_errors_with_their_message() {
        let e: IoError = VfioError::NoInterruptRemapping.into();
        assert!(matches!(&e, IoError::Device(m) if m.contains("allow_unsafe_interrupts")), "{e}");
        let e: IoError = VfioError::os("mmap BAR0", std::io::Error::from_raw_os_error(libc::EINVAL)).into();
        assert!(matches!(&e, IoError::Os { what, .. } if what == "mmap BAR0"), "{e}");
    }

    #[test]
    fn open_reports_missing_devices_before_touching_vfio() {
        let mut opts = npu_open_options();
        opts.paths = crate::sysfs::HostPaths { sysfs: "/nonexistent".into(), dev: "/nonexistent".into() };
        let e = VfioDevice::open_with("0000:65:00.0", &opts).err().unwrap();
        assert!(matches!(e, VfioError::NoDevice { .. }), "{e}");
        assert!(e.to_string().contains("lspci -D"), "{e}");
    }
}
