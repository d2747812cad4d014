//! The Verilated NPU as a PCI device over **vfio-user**, for a VMM such as QEMU.
//!
//! vfio-user carries the VFIO device API over a UNIX socket: the client (QEMU's
//! `vfio-user-pci`) asks for the device's regions and interrupts, reads and writes
//! them with messages, shares its guest memory for DMA by passing a file descriptor
//! and offset per IOVA range (DMA_MAP), and hands over one eventfd per interrupt
//! vector (SET_IRQS). A guest kernel then sees an ordinary PCI device that it can bind
//! to vfio-pci behind its (emulated) IOMMU, so the same `vfio-driver` that drives a
//! board drives the RTL.
//!
//! Mapping onto [`SimDevice`]: the configuration space ([`config`]) carries the board's
//! IDs; BAR0 accesses become AXI4-Lite CSR transactions (32-bit only, as on the board);
//! DMA_MAP ranges are `mmap`ed and entered into the IOVA map behind the RTL's
//! host-memory port ([`SimDevice::map_host_region`]), DMA_UNMAP removes them, after
//! which the RTL's accesses there get error responses, as behind an IOMMU; rising edges
//! of the `irq_o` lines are written to the MSI-X vectors' eventfds. The protocol itself
//! is the rust-vmm `vfio_user` crate's server. A clock thread runs the RTL whenever it
//! has work (STATUS busy bits) and for a short grant after every message, so the device
//! advances while the guest polls; cycle counts therefore depend on the guest's
//! timing, unlike the in-process co-simulation.

mod backend;
pub mod config;
mod dma;

pub use backend::ServeStats;
use backend::{Backend, State};
use sim_bridge::{SimConfig, SimDevice, SimError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use vfio_bindings::bindings::vfio::{
    VFIO_IRQ_INFO_EVENTFD, VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_BAR2_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX,
    VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_NUM_IRQS, VFIO_PCI_NUM_REGIONS, VFIO_REGION_INFO_FLAG_READ,
    VFIO_REGION_INFO_FLAG_WRITE, vfio_region_info,
};
use vfio_user::{IrqInfo, Server, ServerRegion};

/// Errors of the vfio-user server.
#[derive(Debug, thiserror::Error)]
pub enum VfioUserError {
    /// Something already exists at the socket path.
    #[error("socket path {} already exists; remove it or pick another", path.display())]
    SocketExists {
        /// The path.
        path: PathBuf,
    },
    /// The socket could not be created.
    #[error("cannot listen on {}", path.display())]
    Bind {
        /// The path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The connection failed or the client broke the protocol.
    #[error("vfio-user protocol")]
    Protocol(#[source] vfio_user::Error),
    /// The simulated device could not be built.
    #[error("simulated device")]
    Sim(#[source] SimError),
    /// A region access of a size, alignment or place the device does not have.
    #[error("region {region} access at {offset:#x} of {len} bytes refused: {reason}")]
    BadAccess {
        /// Region index (VFIO numbering: 0-5 BARs, 7 configuration space).
        region: u32,
        /// Offset in the region.
        offset: u64,
        /// Bytes.
        len: usize,
        /// Why.
        reason: &'static str,
    },
    /// A CSR transaction on the RTL failed.
    #[error("CSR access at BAR0 offset {offset:#x}")]
    Csr {
        /// Offset in BAR0.
        offset: u64,
        /// What the RTL answered.
        #[source]
        source: SimError,
    },
    /// DMA_MAP without a file descriptor (the server cannot serve DMA by messages).
    #[error(
        "DMA map of IOVA {iova:#x} (+{size:#x}) came without a file descriptor; give the VM shareable memory (memory-backend-memfd,share=on)"
    )]
    DmaWithoutFd {
        /// IOVA.
        iova: u64,
        /// Bytes.
        size: u64,
    },
    /// DMA_MAP of an empty or unrepresentable range.
    #[error("DMA map of IOVA {iova:#x} (+{size:#x}) is empty or too large")]
    DmaBadRange {
        /// IOVA.
        iova: u64,
        /// Bytes.
        size: u64,
    },
    /// The client's file descriptor could not be mapped.
    #[error("cannot mmap the client's memory for IOVA {iova:#x} (+{size:#x}) at file offset {offset:#x}")]
    DmaMmap {
        /// IOVA.
        iova: u64,
        /// Bytes.
        size: u64,
        /// Offset in the client's file.
        offset: u64,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// DMA_MAP overlapping an existing mapping.
    #[error("DMA map of IOVA {iova:#x} (+{size:#x}) overlaps an existing mapping")]
    DmaConflict {
        /// IOVA.
        iova: u64,
        /// Bytes.
        size: u64,
    },
    /// DMA_UNMAP that would cut a mapping in two.
    #[error("DMA unmap of IOVA {iova:#x} (+{size:#x}) would split the mapping at {mapping:#x} (+{len:#x})")]
    DmaSplit {
        /// IOVA.
        iova: u64,
        /// Bytes.
        size: u64,
        /// The mapping it cuts.
        mapping: u64,
        /// Its length.
        len: u64,
    },
    /// A SET_IRQS request the device cannot honour.
    #[error("SET_IRQS index {index} flags {flags:#x} vectors {start}+{count}: {reason}")]
    BadIrqs {
        /// IRQ index (VFIO numbering, 2 = MSI-X).
        index: u32,
        /// Flags.
        flags: u32,
        /// First vector.
        start: u32,
        /// Vectors.
        count: u32,
        /// Why.
        reason: &'static str,
    },
}

/// A listening vfio-user socket in front of one simulated NPU.
pub struct NpuServer {
    server: Server,
    shared: backend::Shared,
}

impl NpuServer {
    /// Builds the device and listens on `socket` (which must not exist yet).
    pub fn bind(socket: &Path, cfg: SimConfig) -> Result<Self, VfioUserError> {
        if socket.exists() {
            return Err(VfioUserError::SocketExists { path: socket.into() });
        }
        let dev = SimDevice::new(cfg).map_err(VfioUserError::Sim)?;
        let server = Server::new(socket, true, irqs(), regions()).map_err(|e| match e {
            vfio_user::Error::SocketBind(source) => VfioUserError::Bind { path: socket.into(), source },
            vfio_user::Error::SocketPathExists => VfioUserError::SocketExists { path: socket.into() },
            other => VfioUserError::Protocol(other),
        })?;
        Ok(Self { server, shared: Arc::new((Mutex::new(State::new(dev)), Condvar::new())) })
    }

    /// Accepts one client and serves it until it disconnects; the RTL runs meanwhile.
    pub fn serve(&self) -> Result<ServeStats, VfioUserError> {
        let clock = {
            let shared = self.shared.clone();
            std::thread::Builder::new().name("npu-clock".into()).spawn(move || backend::clock(shared))
        }
        .map_err(|source| VfioUserError::Bind { path: "(clock thread)".into(), source })?;
        let mut be = Backend { shared: self.shared.clone() };
        let r = self.server.run(&mut be);
        backend::stop(&self.shared);
        let _ = clock.join();
        r.map_err(VfioUserError::Protocol)?;
        Ok(self.stats())
    }

    /// What the server did so far.
    pub fn stats(&self) -> ServeStats {
        Backend { shared: self.shared.clone() }.lock().stats()
    }

    /// Runs `f` on the device with the server's lock held (tests, diagnostics).
    pub fn with_device<R>(&self, f: impl FnOnce(&mut SimDevice) -> R) -> R {
        f(&mut Backend { shared: self.shared.clone() }.lock().dev)
    }
}

fn region(index: u32, size: u64) -> ServerRegion {
    let flags = if size > 0 { VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE } else { 0 };
    let info = vfio_region_info {
        argsz: std::mem::size_of::<vfio_region_info>() as u32,
        flags,
        index,
        cap_offset: 0,
        size,
        offset: 0,
    };
    ServerRegion { region_info: info, sparse_areas: Vec::new(), mmap_fd: None }
}

/// BAR0 (CSRs), BAR2 (MSI-X table/PBA), configuration space; the rest empty.
fn regions() -> Vec<ServerRegion> {
    (0..VFIO_PCI_NUM_REGIONS)
        .map(|i| match i {
            VFIO_PCI_BAR0_REGION_INDEX | VFIO_PCI_BAR2_REGION_INDEX => region(i, u64::from(config::BAR_BYTES)),
            VFIO_PCI_CONFIG_REGION_INDEX => region(i, config::CONFIG_BYTES as u64),
            _ => region(i, 0),
        })
        .collect()
}

/// MSI-X with one vector per interrupt line; no INTx, MSI, error or request IRQs.
fn irqs() -> Vec<IrqInfo> {
    (0..VFIO_PCI_NUM_IRQS)
        .map(|index| {
            let count = if index == VFIO_PCI_MSIX_IRQ_INDEX { u32::from(config::VECTORS) } else { 0 };
            IrqInfo { index, flags: VFIO_IRQ_INFO_EVENTFD, count }
        })
        .collect()
}
