//! The device behind the protocol: region accesses, DMA maps and interrupt eventfds
//! applied to the [`SimDevice`], plus the clock that lets the RTL run between messages.

use crate::config::{BAR_BYTES, PciConfig};
use crate::dma::{DmaRange, FdMapping};
use crate::irq::Irqs;
use crate::protocol::Handler;
use crate::{MAX_DMA_MAPS, VfioUserError};
use sim_bridge::{SimDevice, SimError};
use std::collections::BTreeMap;
use std::fs::File;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use vfio_bindings::bindings::vfio::{
    VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_BAR2_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX,
};

/// Cycles the RTL runs after any message even when it looks idle (a register write
/// taking effect), and after the busy bits drop (a completion's interrupt follows its
/// record by a few cycles; a waiting client sends no message to get it).
const GRANT_CYCLES: u64 = 256;
const TAIL_CYCLES: u64 = 2_048;
/// Cycles stepped per turn of the clock thread while holding the device.
const CHUNK_CYCLES: u64 = 256;
/// STATUS bits meaning "work is queued or running": CMDQ_BUSY, DMA_BUSY, CU_BUSY.
const BUSY_BITS: u32 = 0b111;
/// STATUS bit FAULTS_PENDING: the device waits for the host, stepping is pointless.
const FAULTS_PENDING: u32 = 1 << 3;

/// What the server did, reported when the client disconnects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServeStats {
    /// Device cycles since the last reset.
    pub cycles: u64,
    /// BAR0 reads and writes (CSR transactions on the RTL).
    pub csr_reads: u64,
    /// See `csr_reads`.
    pub csr_writes: u64,
    /// DMA_MAP / DMA_UNMAP messages applied.
    pub dma_maps: u64,
    /// See `dma_maps`.
    pub dma_unmaps: u64,
    /// Interrupt messages sent (eventfd writes), MSI-X, MSI and INTx together.
    pub irqs_signalled: u64,
    /// Function resets (FLR through the PCIe capability, or DEVICE_RESET messages).
    pub resets: u64,
    /// Host-port bursts answered with an error: DMA to an unmapped IOVA (IOMMU faults).
    pub dma_faults: u64,
    /// Host-memory bytes the RTL read and wrote (beats × 64).
    pub host_bytes: u64,
}

/// Server state; one lock guards all of it (the protocol thread and the clock thread).
pub(crate) struct State {
    /// The RTL. Declared before `dma`: it holds raw pointers into those mappings.
    pub(crate) dev: SimDevice,
    /// The client's DMA ranges by IOVA (each also mapped into `dev`).
    dma: BTreeMap<u64, DmaRange>,
    cfg: PciConfig,
    /// The client's interrupt set-up and delivery state.
    irqs: Irqs,
    /// Cycles still to run regardless of STATUS.
    grant: u64,
    /// Set when the protocol loop ended: the clock thread exits.
    stop: bool,
    stats: ServeStats,
}

/// The shared state and the condition the clock thread sleeps on.
pub(crate) type Shared = Arc<(Mutex<State>, Condvar)>;

impl State {
    pub(crate) fn new(dev: SimDevice) -> Self {
        Self {
            dev,
            dma: BTreeMap::new(),
            cfg: PciConfig::new(),
            irqs: Irqs::new(),
            grant: 0,
            stop: false,
            stats: ServeStats::default(),
        }
    }

    /// Statistics so far.
    pub(crate) fn stats(&self) -> ServeStats {
        let (host, _) = self.dev.port_stats();
        ServeStats {
            cycles: self.dev.cycles(),
            dma_faults: host.error_bursts,
            host_bytes: (host.read_beats + host.write_beats) * 64,
            irqs_signalled: self.irqs.signalled,
            ..self.stats
        }
    }

    /// Delivers interrupts for the current line levels (edges for MSI-X/MSI, level
    /// for INTx).
    fn signal_edges(&mut self) {
        let now = self.dev.irq_lines();
        self.irqs.deliver(now, &mut self.cfg);
    }

    /// Function-level reset: the RTL through its reset (CSRs, rings, queues, engines)
    /// and the interrupt state; DMA mappings and eventfds stay, as VFIO keeps them.
    pub(crate) fn function_reset(&mut self) {
        // scripts/vfio-user-test.sh reads these lines: one per guest process's device use.
        eprintln!("gmem serve: function reset after {} device cycles", self.dev.cycles());
        self.dev.reset();
        self.irqs.reset();
        self.stats.resets += 1;
    }

    /// Runs the clock for `cycles` and then signals interrupt edges. Idle stretches are
    /// fast-forwarded (`SimDevice::advance`). The interrupt lines are levels that stay
    /// high until the host acknowledges (device.md §11), so checking them once per chunk
    /// misses no edge; it delays a message by at most [`CHUNK_CYCLES`].
    fn run(&mut self, cycles: u64) {
        if let Err(e) = self.dev.advance(cycles) {
            eprintln!("gmem serve: clock: {e}");
        }
        self.signal_edges();
    }

    /// True if the RTL has work of its own (STATUS busy and not waiting for the host).
    fn busy(&mut self) -> Result<bool, SimError> {
        let st = self.dev.csr_read32(npu::regs::STATUS.offset)?;
        Ok(st & BUSY_BITS != 0 && st & FAULTS_PENDING == 0)
    }

    /// A 32-bit BAR0 access: one CSR transaction.
    pub(crate) fn bar0(&mut self, offset: u64, data: Access<'_>) -> Result<(), VfioUserError> {
        let len = data.len();
        if len != 4 || offset % 4 != 0 || offset.checked_add(4).is_none_or(|end| end > u64::from(BAR_BYTES)) {
            return Err(VfioUserError::BadAccess {
                region: 0,
                offset,
                len,
                reason: "BAR0 takes aligned 32-bit accesses",
            });
        }
        let off = offset as u32;
        let r = match data {
            Access::Read(out) => self.dev.csr_read32(off).map(|v| {
                out.copy_from_slice(&v.to_le_bytes());
                self.stats.csr_reads += 1;
            }),
            Access::Write(bytes) => {
                let mut w = [0u8; 4];
                w.copy_from_slice(bytes);
                self.stats.csr_writes += 1;
                self.dev.csr_write32(off, u32::from_le_bytes(w))
            }
        };
        self.signal_edges();
        r.map_err(|source| VfioUserError::Csr { offset, source })
    }

    /// DMA_MAP: maps the client's fd range and adds it to the RTL's IOVA map; a range
    /// without a descriptor (QEMU's ROMs) is only recorded (see [`DmaRange`]).
    pub(crate) fn dma_map(&mut self, iova: u64, size: u64, offset: u64, fd: Option<File>) -> Result<(), VfioUserError> {
        if std::env::var_os("GMEM_SERVE_TRACE").is_some() {
            eprintln!("gmem serve: DMA_MAP {iova:#x} +{size:#x} fd {} offset {offset:#x}", fd.is_some());
        }
        if self.dma.len() >= MAX_DMA_MAPS {
            return Err(VfioUserError::TooManyDmaMaps { iova });
        }
        if size == 0 || iova.checked_add(size).is_none() {
            return Err(VfioUserError::DmaBadRange { iova, size });
        }
        if self.dev_overlaps(iova, size) {
            return Err(VfioUserError::DmaConflict { iova, size });
        }
        let shared = match fd {
            Some(fd) => {
                let m = FdMapping::new(&fd, offset, iova, size)?;
                // SAFETY: `m` stays in `self.dma` until `dma_unmap` removes the device
                // mapping first; `dev` is dropped before `dma` (field order).
                unsafe { self.dev.map_host_region(iova, m.ptr, m.len) }
                    .map_err(|_| VfioUserError::DmaConflict { iova, size })?;
                Some(m)
            }
            None => None,
        };
        self.dma.insert(iova, DmaRange { len: size, shared });
        self.stats.dma_maps += 1;
        Ok(())
    }

    /// True if `[iova, iova + size)` meets an existing mapping.
    fn dev_overlaps(&self, iova: u64, size: u64) -> bool {
        let end = iova.saturating_add(size);
        let before = self.dma.range(..=iova).next_back().is_some_and(|(&s, m)| s.saturating_add(m.len) > iova);
        before || self.dma.range(iova..end).next().is_some()
    }

    /// DMA_UNMAP: removes every mapping inside `[iova, iova+size)` (all with `all`),
    /// like the kernel's type-1 IOMMU: nothing there is not an error, cutting a mapping
    /// in two is.
    pub(crate) fn dma_unmap(&mut self, iova: u64, size: u64, all: bool) -> Result<(), VfioUserError> {
        if std::env::var_os("GMEM_SERVE_TRACE").is_some() {
            eprintln!("gmem serve: DMA_UNMAP {iova:#x} +{size:#x}{}", if all { " (all)" } else { "" });
        }
        let end = iova.saturating_add(size);
        let victims: Vec<u64> = if all {
            self.dma.keys().copied().collect()
        } else {
            let split = |s: u64, m: &DmaRange| VfioUserError::DmaSplit { iova, size, mapping: s, len: m.len };
            if let Some((&s, m)) = self.dma.range(..iova).next_back() {
                if s.saturating_add(m.len) > iova {
                    return Err(split(s, m));
                }
            }
            if let Some((&s, m)) = self.dma.range(iova..end).find(|(s, m)| s.saturating_add(m.len) > end) {
                return Err(split(s, m));
            }
            self.dma.range(iova..end).map(|(&s, _)| s).collect()
        };
        for s in victims {
            if self.dma.remove(&s).is_some_and(|r| r.shared.is_some()) {
                self.dev.unmap_host_region(s);
            }
            self.stats.dma_unmaps += 1;
        }
        Ok(())
    }

    /// SET_IRQS: see [`Irqs::set`]; a line already high is delivered at once.
    pub(crate) fn set_irqs(
        &mut self,
        index: u32,
        flags: u32,
        start: u32,
        count: u32,
        fds: Vec<File>,
    ) -> Result<(), VfioUserError> {
        self.irqs.set(index, flags, start, count, fds)?;
        self.signal_edges();
        Ok(())
    }

    /// A configuration-space access; a write that initiates an FLR resets the function.
    pub(crate) fn config(&mut self, offset: u64, data: Access<'_>) -> Result<(), VfioUserError> {
        let len = data.len();
        let ok = match data {
            Access::Read(out) => self.cfg.read(offset, out),
            Access::Write(bytes) => self.cfg.write(offset, bytes),
        };
        if self.cfg.take_flr() {
            self.function_reset();
        }
        self.signal_edges(); // mask or enable bits may have changed
        if ok {
            Ok(())
        } else {
            Err(VfioUserError::BadAccess {
                region: VFIO_PCI_CONFIG_REGION_INDEX,
                offset,
                len,
                reason: "outside configuration space",
            })
        }
    }
}

/// A region access: data to fill or data written.
pub(crate) enum Access<'a> {
    Read(&'a mut [u8]),
    Write(&'a [u8]),
}

impl Access<'_> {
    fn len(&self) -> usize {
        match self {
            Access::Read(b) => b.len(),
            Access::Write(b) => b.len(),
        }
    }
}

/// The protocol thread's view of the state: locks, applies, wakes the clock.
pub(crate) struct Backend {
    pub(crate) shared: Shared,
}

impl Backend {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in the clock thread poisons the lock; the state is still consistent
        // between cycles, so keep serving.
        self.shared.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with<R>(&mut self, f: impl FnOnce(&mut State) -> Result<R, VfioUserError>) -> Result<R, VfioUserError> {
        let mut st = self.lock();
        let r = f(&mut st);
        st.grant = st.grant.max(GRANT_CYCLES);
        drop(st);
        self.shared.1.notify_one();
        r
    }
}

impl Handler for Backend {
    fn region_read(&mut self, region: u32, offset: u64, data: &mut [u8]) -> Result<(), VfioUserError> {
        self.with(|st| match region {
            VFIO_PCI_CONFIG_REGION_INDEX => st.config(offset, Access::Read(data)),
            VFIO_PCI_BAR0_REGION_INDEX => st.bar0(offset, Access::Read(data)),
            // BAR2 holds the MSI-X table and PBA, which the client emulates.
            VFIO_PCI_BAR2_REGION_INDEX if offset.saturating_add(data.len() as u64) <= u64::from(BAR_BYTES) => {
                data.fill(0);
                Ok(())
            }
            _ => Err(VfioUserError::BadAccess {
                region,
                offset,
                len: data.len(),
                reason: "no such region or outside it",
            }),
        })
    }

    fn region_write(&mut self, region: u32, offset: u64, data: &[u8]) -> Result<(), VfioUserError> {
        self.with(|st| match region {
            VFIO_PCI_CONFIG_REGION_INDEX => st.config(offset, Access::Write(data)),
            VFIO_PCI_BAR0_REGION_INDEX => st.bar0(offset, Access::Write(data)),
            VFIO_PCI_BAR2_REGION_INDEX if offset.saturating_add(data.len() as u64) <= u64::from(BAR_BYTES) => Ok(()),
            _ => Err(VfioUserError::BadAccess {
                region,
                offset,
                len: data.len(),
                reason: "no such region or outside it",
            }),
        })
    }

    fn dma_map(
        &mut self,
        _flags: u32,
        offset: u64,
        iova: u64,
        size: u64,
        fd: Option<File>,
    ) -> Result<(), VfioUserError> {
        self.with(|st| st.dma_map(iova, size, offset, fd))
    }

    fn dma_unmap(&mut self, iova: u64, size: u64, all: bool) -> Result<(), VfioUserError> {
        self.with(|st| st.dma_unmap(iova, size, all))
    }

    fn set_irqs(
        &mut self,
        index: u32,
        flags: u32,
        start: u32,
        count: u32,
        fds: Vec<File>,
    ) -> Result<(), VfioUserError> {
        self.with(|st| st.set_irqs(index, flags, start, count, fds))
    }

    fn reset(&mut self) -> Result<(), VfioUserError> {
        self.with(|st| {
            st.function_reset();
            Ok(())
        })
    }
}

/// The clock thread: runs the RTL while it has work or a grant, sleeps otherwise.
pub(crate) fn clock(shared: Shared) {
    let (lock, cv) = &*shared;
    let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
    while !st.stop {
        if st.busy().unwrap_or(false) {
            st.grant = st.grant.max(TAIL_CYCLES);
        }
        if st.grant > 0 {
            let n = st.grant.min(CHUNK_CYCLES);
            st.run(n);
            st.grant = st.grant.saturating_sub(n);
            // Let the protocol thread in between chunks.
            drop(st);
            std::thread::yield_now();
            st = lock.lock().unwrap_or_else(|p| p.into_inner());
        } else {
            st = cv.wait_timeout(st, Duration::from_millis(20)).map(|(g, _)| g).unwrap_or_else(|p| p.into_inner().0);
        }
    }
}

/// Stops the clock thread.
pub(crate) fn stop(shared: &Shared) {
    shared.0.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
    shared.1.notify_all();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing
    use super::*;
    use sim_bridge::SimConfig;
    use std::os::fd::FromRawFd;
    use vfio_bindings::bindings::vfio::{
        VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_PCI_MSIX_IRQ_INDEX,
    };

    fn state() -> State {
        State::new(SimDevice::new(SimConfig::default()).unwrap())
    }

    fn memfd(len: u64) -> File {
        // SAFETY: a NUL-terminated name; the descriptor is ours.
        let f = unsafe { File::from_raw_fd(libc::memfd_create(c"t".as_ptr(), 0)) };
        f.set_len(len).unwrap();
        f
    }

    #[test]
    fn bar0_reads_the_id_and_refuses_other_sizes() {
        let mut st = state();
        let mut b = [0u8; 4];
        st.bar0(0, Access::Read(&mut b)).unwrap();
        assert_eq!(&b, b"NPU1");
        let mut b8 = [0u8; 8];
        assert!(matches!(st.bar0(0, Access::Read(&mut b8)), Err(VfioUserError::BadAccess { len: 8, .. })));
        assert!(matches!(st.bar0(2, Access::Read(&mut b)), Err(VfioUserError::BadAccess { offset: 2, .. })));
        assert!(matches!(st.bar0(4096, Access::Write(&[0; 4])), Err(VfioUserError::BadAccess { offset: 4096, .. })));
        assert!(matches!(st.config(255, Access::Read(&mut b)), Err(VfioUserError::BadAccess { region: 7, .. })));
    }

    #[test]
    fn dma_map_and_unmap_follow_the_iommu_rules() {
        let mut st = state();
        st.dma_map(0x1000, 0x1000, 0, None).unwrap(); // a ROM: recorded, not reachable
        assert!(matches!(st.dma_map(0x1000, 0x2000, 0, Some(memfd(0x2000))), Err(VfioUserError::DmaConflict { .. })));
        st.dma_unmap(0x1000, 0x1000, false).unwrap();
        st.dma_map(0x10000, 0x4000, 0x1000, Some(memfd(0x8000))).unwrap();
        assert!(matches!(
            st.dma_map(0x12000, 0x1000, 0, Some(memfd(0x1000))),
            Err(VfioUserError::DmaConflict { iova: 0x12000, .. })
        ));
        assert!(matches!(st.dma_map(0x20000, 0, 0, Some(memfd(0x1000))), Err(VfioUserError::DmaBadRange { .. })));
        assert!(matches!(
            st.dma_unmap(0x11000, 0x1000, false),
            Err(VfioUserError::DmaSplit { mapping: 0x10000, len: 0x4000, .. })
        ));
        assert!(matches!(st.dma_unmap(0x10000, 0x2000, false), Err(VfioUserError::DmaSplit { .. })));
        st.dma_unmap(0x40000, 0x1000, false).unwrap(); // nothing there: not an error
        st.dma_unmap(0x10000, 0x4000, false).unwrap();
        assert_eq!((st.stats.dma_maps, st.stats.dma_unmaps), (2, 2));
        st.dma_map(0x12000, 0x1000, 0, Some(memfd(0x1000))).unwrap();
        st.dma_map(0x30000, 0x1000, 0, Some(memfd(0x1000))).unwrap();
        st.dma_unmap(0, 0, true).unwrap();
        assert_eq!(st.stats.dma_unmaps, 4);
    }

    #[test]
    fn flr_through_the_pcie_capability_resets_the_rtl_and_keeps_dma_maps() {
        let mut st = state();
        st.dma_map(0x10000, 0x1000, 0, Some(memfd(0x1000))).unwrap();
        let scratch = u64::from(npu::regs::SCRATCH.offset);
        st.bar0(scratch, Access::Write(&0x1234_5678u32.to_le_bytes())).unwrap();
        let ctrl = u64::from(npu::regs::CTRL.offset);
        st.bar0(ctrl, Access::Write(&1u32.to_le_bytes())).unwrap();
        st.config(0x78, Access::Write(&0x0010u16.to_le_bytes())).unwrap();
        assert_eq!(st.stats.resets, 0, "other device-control bits do not reset");
        st.config(0x78, Access::Write(&0x8010u16.to_le_bytes())).unwrap();
        assert_eq!(st.stats.resets, 1);
        let mut b = [0u8; 4];
        st.bar0(scratch, Access::Read(&mut b)).unwrap();
        assert_eq!(u32::from_le_bytes(b), npu::regs::SCRATCH.reset, "SCRATCH back at its reset value");
        st.bar0(ctrl, Access::Read(&mut b)).unwrap();
        assert_eq!(u32::from_le_bytes(b), 0, "engines off");
        st.config(0x78, Access::Read(&mut b)).unwrap();
        assert_eq!(u32::from_le_bytes(b) & 0xffff, 0x0010, "FLR bit reads 0, the rest stays");
        assert!(
            matches!(st.dma_map(0x10000, 0x1000, 0, Some(memfd(0x1000))), Err(VfioUserError::DmaConflict { .. })),
            "the mapping survived the reset"
        );
        assert!(
            st.set_irqs(
                VFIO_PCI_MSIX_IRQ_INDEX,
                VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                0,
                1,
                vec![memfd(8)]
            )
            .is_ok()
        );
    }
}
