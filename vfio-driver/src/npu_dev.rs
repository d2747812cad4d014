//! The NPU on a PCIe board: [`npu::DeviceIo`] on top of the generic [`VfioPci`] layer.
//!
//! On top of the generic open this checks that BAR0 holds the whole register map and
//! that the ID and VERSION registers name a bitstream this driver knows, and sets up one
//! interrupt vector per cause (MSI-X vector i = INT_STATUS bit i, `docs/device.md` §11).
//! MSI with seven or more vectors works the same way (the device sends line i on
//! vector i). With fewer vectors (single MSI or INTx) all causes share vector 0 and
//! [`DeviceIo::wait_irq`] tells them apart by reading INT_STATUS, so callers see the
//! same per-cause bits. `GMEM_VFIO_IRQ=msix|msi|intx|off` forces one mechanism
//! (default `auto`: MSI-X, else MSI, else INTx, else polling).

use std::collections::BTreeMap;
use std::time::Duration;

use npu::{Clock, DeviceIo, IoError, regs};

use crate::bdf::Bdf;
use crate::error::VfioError;
use crate::pci::{IrqKind, IrqMode, OpenOptions, VfioPci};
use crate::wait;

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

/// [`npu_open_options`] with the interrupt mode `GMEM_VFIO_IRQ` names, if set.
pub fn npu_open_options_from_env() -> Result<OpenOptions, VfioError> {
    let mut o = npu_open_options();
    if let Some(v) = std::env::var_os("GMEM_VFIO_IRQ") {
        o.irq = v.to_string_lossy().parse()?;
    }
    Ok(o)
}

/// What the NPU's interrupt wait needs underneath; [`VfioDevice`] provides it over VFIO
/// and the unit tests over a scripted fake.
trait IrqSource {
    /// Reads a CSR.
    fn csr(&mut self, offset: u32) -> Result<u32, IoError>;
    /// Interrupt mechanism and vector count, None when polling.
    fn irq(&self) -> Option<(IrqKind, u32)>;
    /// Waits for any of `vectors` (0 = just wait) for at most `timeout`.
    fn wait_vectors(&mut self, vectors: u32, timeout: Duration) -> Result<u32, IoError>;
    /// Device time, nanoseconds.
    fn now(&self) -> u64;
}

/// How long a polling wait (no interrupts) waits between status reads. Shorter than
/// [`wait::SPIN_BELOW`], so the wait spins: a polling `wait_irq` keeps one core busy and
/// sees a cause within 10 µs plus one CSR read.
const POLL: Duration = Duration::from_micros(10);

/// `DeviceIo::wait_irq` for the NPU: waits until `INT_STATUS & INT_MASK & mask` is
/// non-zero or `budget_ns` passes, and returns those causes.
///
/// Level semantics, as in simulation: a cause already pending counts even if its
/// message was consumed earlier. With one MSI-X vector per cause it waits on exactly the
/// vectors in `mask`; with a shared vector (MSI, INTx) on vector 0, unless another cause
/// already holds that vector asserted; with no interrupts (or that busy shared vector) it
/// polls INT_STATUS every [`POLL`], spinning in between. A wake-up for another cause
/// only re-checks the level.
fn wait_causes(src: &mut impl IrqSource, mask: u32, budget_ns: u64) -> Result<u32, IoError> {
    let deadline = src.now().saturating_add(budget_ns);
    let per_cause = matches!(src.irq(), Some((IrqKind::MsiX | IrqKind::Msi, n)) if n >= NPU_VECTORS);
    loop {
        let asserted = src.csr(regs::INT_STATUS.offset)? & src.csr(regs::INT_MASK.offset)?;
        if asserted & mask != 0 {
            return Ok(asserted & mask);
        }
        let now = src.now();
        if now >= deadline {
            return Ok(0);
        }
        let left = Duration::from_nanos(deadline - now);
        // A shared vector held up by a cause outside `mask` sends no new message when a
        // wanted cause arrives (one message per rising edge): poll until it drops.
        let line_busy = !per_cause && asserted != 0;
        match src.irq() {
            Some(_) if !line_busy => src.wait_vectors(if per_cause { mask } else { 1 }, left)?,
            _ => src.wait_vectors(0, left.min(POLL))?,
        };
    }
}

impl IrqSource for VfioDevice {
    fn csr(&mut self, offset: u32) -> Result<u32, IoError> {
        self.read32(offset)
    }
    fn irq(&self) -> Option<(IrqKind, u32)> {
        self.pci.irq_kind()
    }
    fn wait_vectors(&mut self, vectors: u32, timeout: Duration) -> Result<u32, IoError> {
        if vectors == 0 {
            wait::wait_for(timeout);
            return Ok(0);
        }
        Ok(self.pci.wait_irq(vectors, timeout)?)
    }
    fn now(&self) -> u64 {
        self.pci.now_ns()
    }
}

/// The NPU behind VFIO.
#[derive(Debug)]
pub struct VfioDevice {
    pci: VfioPci,
    name: String,
    /// Ranges of `dma_map_lazy`: IOVA start -> (host address, length). Only their
    /// IOVA is reserved; `dma_hold` maps pieces while a DMA runs.
    lazy: BTreeMap<u64, (usize, u64)>,
    /// Buffers mapped by `dma_map`; declared last, so they are freed only after the
    /// IOMMU mappings are gone with `pci`.
    owners: npu::DmaOwners,
}

impl VfioDevice {
    /// Opens the NPU at `bdf` with [`npu_open_options_from_env`].
    pub fn open(bdf: &str) -> Result<Self, VfioError> {
        Self::open_with(bdf, &npu_open_options_from_env()?)
    }

    /// Opens the NPU at `bdf` with explicit options (BAR0 is always mapped).
    pub fn open_with(bdf: &str, opts: &OpenOptions) -> Result<Self, VfioError> {
        // Identity first: no interrupts are set up for a wrong bitstream.
        let mut pci = VfioPci::open(bdf, &OpenOptions { map_bars: vec![], irq: IrqMode::Off, ..opts.clone() })?;
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
        pci.enable_irqs(opts.irq, opts.vectors)?;
        Ok(Self { name: format!("vfio {b}"), pci, lazy: BTreeMap::new(), owners: npu::DmaOwners::default() })
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

    fn dma_keep(&mut self, iova: u64, owner: npu::DmaBuffer) {
        self.owners.keep(iova, owner);
    }

    unsafe fn dma_map_lazy(&mut self, host: *mut u8, len: usize) -> Result<u64, IoError> {
        if len == 0 || len % npu::IOVA_PAGE as usize != 0 || host as usize % npu::IOVA_PAGE as usize != 0 {
            return Err(IoError::BadHostRange {
                addr: host as usize,
                len,
                reason: "must be a non-empty, page-aligned range",
            });
        }
        let iova = self.pci.iova_reserve(len as u64)?;
        self.lazy.insert(iova, (host as usize, len as u64));
        Ok(iova)
    }

    fn dma_hold(&mut self, iova: u64, len: u64, write: bool) -> Result<(), IoError> {
        let Some((&base, &(host, size))) = self.lazy.range(..=iova).next_back() else { return Ok(()) };
        if iova >= base + size {
            return Ok(()); // not a lazy range: mapped whole already
        }
        if iova + len > base + size {
            return Err(IoError::BadHostRange {
                addr: host,
                len: len as usize,
                reason: "DMA hold beyond its lazily mapped region",
            });
        }
        let at = (host + (iova - base) as usize) as *mut u8;
        // SAFETY: the dma_map_lazy contract keeps the region mapped and the pages of a
        // held range present until dma_release, which unmaps exactly this piece.
        unsafe { self.pci.dma_map_at(at, iova, len, write) }
    }

    fn dma_release(&mut self, iova: u64, len: u64) -> Result<(), IoError> {
        match self.lazy.range(..=iova).next_back() {
            Some((&base, &(_, size))) if iova < base + size => self.pci.dma_unmap_at(iova, len),
            _ => Ok(()),
        }
    }

    fn dma_unmap(&mut self, iova: u64) -> Result<(), IoError> {
        if self.lazy.remove(&iova).is_some() {
            return self.pci.iova_free(iova);
        }
        self.pci.dma_unmap(iova)?;
        self.owners.release(iova);
        Ok(())
    }

    fn wait_irq(&mut self, mask: u32, budget_ns: u64) -> Result<u32, IoError> {
        wait_causes(self, mask, budget_ns)
    }

    /// Polls the driver's own memory: spins through the first [`wait::SPIN_BELOW`]
    /// ([`wait::poll_until`]); past that, every poll also reads STATUS and then sleeps
    /// [`wait::SPIN_BELOW`]. The read may not pass the host's earlier posted writes, so
    /// a doorbell still held in a write buffer, or in a VMM's queue of posted region
    /// writes, reaches the device (and a VMM that runs the device only on demand sees
    /// the host again); it is one non-posted read per 50 µs of a long wait.
    fn wait_host(&mut self, budget_ns: u64, ready: &mut dyn FnMut() -> bool) -> Result<bool, IoError> {
        let start = std::time::Instant::now();
        let budget = Duration::from_nanos(budget_ns);
        if wait::poll_until(budget.min(wait::SPIN_BELOW), ready) {
            return Ok(true);
        }
        loop {
            self.read32(regs::STATUS.offset)?;
            if ready() {
                return Ok(true);
            }
            let waited = start.elapsed();
            if waited >= budget {
                return Ok(false);
            }
            wait::lower_timer_slack();
            std::thread::sleep(wait::SPIN_BELOW.min(budget - waited));
        }
    }

    fn now_ns(&self) -> u64 {
        self.pci.now_ns()
    }

    /// Waits `ns` of wall-clock time: a spin below [`wait::SPIN_BELOW`], else a sleep
    /// (timer slack lowered) that ends in a spin; see [`wait::wait_for`].
    fn advance(&mut self, ns: u64) -> Result<(), IoError> {
        wait::wait_for(Duration::from_nanos(ns));
        Ok(())
    }

    fn clock(&self) -> Clock {
        Clock::Wall
    }

    fn reset(&mut self) -> Result<(), IoError> {
        self.pci.reset()?;
        let id = self.read32(regs::ID.offset)?;
        if id != regs::NPU_ID {
            return Err(IoError::Device(format!(
                "after reset the ID register reads {id:#010x}, expected {:#010x}",
                regs::NPU_ID
            )));
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
        assert!(
            check_identity(bdf(), 1 << 20, regs::NPU_ID, regs::NPU_VERSION | 0x0305).is_ok(),
            "minor/patch are compatible"
        );
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

    /// Scripted device: INT_STATUS bits appear at given times and signal a vector.
    struct Fake {
        now: u64,
        status: u32,
        mask_reg: u32,
        irq: Option<(IrqKind, u32)>,
        /// (time, cause): at `time` cause bit is set and its vector fires.
        events: Vec<(u64, u32)>,
        /// Vector masks waited on.
        waits: Vec<u32>,
    }

    impl Fake {
        fn new(irq: Option<(IrqKind, u32)>, events: &[(u64, u32)]) -> Self {
            Self { now: 0, status: 0, mask_reg: 0x7f, irq, events: events.to_vec(), waits: Vec::new() }
        }
    }

    impl IrqSource for Fake {
        fn csr(&mut self, offset: u32) -> Result<u32, IoError> {
            match offset {
                o if o == regs::INT_STATUS.offset => Ok(self.status),
                o if o == regs::INT_MASK.offset => Ok(self.mask_reg),
                _ => Err(IoError::CsrOutOfRange { offset, size: 0 }),
            }
        }
        fn irq(&self) -> Option<(IrqKind, u32)> {
            self.irq
        }
        fn wait_vectors(&mut self, vectors: u32, timeout: Duration) -> Result<u32, IoError> {
            self.waits.push(vectors);
            let end = self.now + timeout.as_nanos() as u64;
            let shared = !matches!(self.irq, Some((IrqKind::MsiX | IrqKind::Msi, n)) if n >= NPU_VECTORS);
            self.events.sort();
            if let Some(i) = self.events.iter().position(|&(t, _)| t <= end) {
                let (t, cause) = self.events.remove(i);
                self.now = self.now.max(t);
                self.status |= 1 << cause;
                let vector = if shared { 0 } else { cause };
                return Ok((1 << vector) & vectors);
            }
            self.now = end;
            Ok(0)
        }
        fn now(&self) -> u64 {
            self.now
        }
    }

    const MSIX: Option<(IrqKind, u32)> = Some((IrqKind::MsiX, NPU_VECTORS));

    #[test]
    fn a_pending_enabled_cause_returns_at_once_and_a_masked_one_never() {
        let mut f = Fake::new(MSIX, &[]);
        f.status = 1 << 2 | 1 << 4;
        f.mask_reg = 1 << 2;
        assert_eq!(wait_causes(&mut f, 0x7f, 1_000).unwrap(), 1 << 2, "level: no message needed");
        assert!(f.waits.is_empty());
        assert_eq!(wait_causes(&mut f, 1 << 4, 5_000).unwrap(), 0, "INT_MASK gates the line");
        assert_eq!(f.now, 5_000, "the whole budget passed");
    }

    #[test]
    fn msix_and_multi_vector_msi_wait_on_the_asked_vectors_and_ignore_other_causes() {
        for irq in [MSIX, Some((IrqKind::Msi, 8))] {
            let mut f = Fake::new(irq, &[(300, 0), (800, 3)]);
            assert_eq!(wait_causes(&mut f, 1 << 3, 10_000).unwrap(), 1 << 3);
            assert_eq!(f.now, 800);
            assert_eq!(
                f.waits,
                [1 << 3, 1 << 3],
                "{irq:?}: cause 0's vector was not asked for; its wake-up only re-checked"
            );
            assert_eq!(wait_causes(&mut f, 1 << 0, 10).unwrap(), 1, "cause 0 stayed pending (level)");
        }
    }

    #[test]
    fn irq_mode_names() {
        assert_eq!("msi".parse::<IrqMode>().unwrap(), IrqMode::Only(IrqKind::Msi));
        assert_eq!("intx".parse::<IrqMode>().unwrap(), IrqMode::Only(IrqKind::Intx));
        assert_eq!("auto".parse::<IrqMode>().unwrap(), IrqMode::Auto);
        assert!(matches!("MSI".parse::<IrqMode>(), Err(VfioError::BadIrqMode { value }) if value == "MSI"));
    }

    #[test]
    fn a_shared_vector_is_demultiplexed_through_int_status() {
        for irq in
            [Some((IrqKind::Msi, 1)), Some((IrqKind::Intx, 1)), Some((IrqKind::MsiX, 2)), Some((IrqKind::Msi, 4))]
        {
            let mut f = Fake::new(irq, &[(50, 1), (70, 5)]);
            assert_eq!(wait_causes(&mut f, 1 << 5, 1_000).unwrap(), 1 << 5, "{irq:?}");
            assert_eq!(f.waits[0], 1, "{irq:?} blocks on vector 0 while the line is low");
            assert!(f.waits[1..].iter().all(|&v| v == 0), "{irq:?} polls once cause 1 holds the line: {:?}", f.waits);
        }
    }

    #[test]
    fn a_shared_vector_held_by_another_cause_is_polled_not_waited_on() {
        let mut f = Fake::new(Some((IrqKind::Msi, 1)), &[(40_000, 3)]);
        f.status = 1 << 0; // cause 0 pending and enabled: the shared line is high
        assert_eq!(wait_causes(&mut f, 1 << 3, 1_000_000).unwrap(), 1 << 3);
        assert!(f.waits.iter().all(|&v| v == 0), "no blocking wait for an edge that cannot come: {:?}", f.waits);
        assert!(f.now < 40_000 + POLL.as_nanos() as u64, "found within one poll period");
        let mut f = Fake::new(MSIX, &[(40_000, 3)]);
        f.status = 1 << 0;
        assert_eq!(wait_causes(&mut f, 1 << 3, 1_000_000).unwrap(), 1 << 3);
        assert_eq!(f.waits, [1 << 3], "per-cause vectors have their own edges");
    }

    #[test]
    fn without_interrupts_it_polls_and_times_out_on_budget() {
        let mut f = Fake::new(None, &[(25_000, 6)]);
        assert_eq!(wait_causes(&mut f, 1 << 6, 1_000_000).unwrap(), 1 << 6);
        assert!(f.waits.iter().all(|&v| v == 0), "polling sleeps, it waits on no vector");
        assert!(f.now >= 25_000 && f.now < 25_000 + POLL.as_nanos() as u64);
        let mut f = Fake::new(None, &[]);
        assert_eq!(wait_causes(&mut f, 0x7f, 35_000).unwrap(), 0);
        assert_eq!(f.now, 35_000);
        assert_eq!(f.waits.len(), 4, "10 µs polls: 10+10+10+5");
        assert_eq!(wait_causes(&mut f, 0x7f, 0).unwrap(), 0, "zero budget checks once");
    }

    #[test]
    fn the_transport_can_move_between_threads() {
        fn send<T: Send>() {}
        send::<VfioDevice>();
        send::<crate::VfioPci>();
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
