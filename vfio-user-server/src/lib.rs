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
//! of the `irq_o` lines are written to the MSI-X vectors' eventfds. The protocol is
//! parsed here ([`protocol`]), on the assumption that the client may be hostile: every
//! malformed, out-of-range or out-of-order message gets an error reply. A clock thread runs the RTL whenever it
//! has work (STATUS busy bits) and for a short grant after every message, so the device
//! advances while the guest polls; cycle counts therefore depend on the guest's
//! timing, unlike the in-process co-simulation.

mod backend;
pub mod config;
mod dma;
mod irq;
pub mod protocol;
mod socket;

pub use backend::ServeStats;
use backend::{Backend, State};
pub use protocol::{DeviceInfo, Handler, Header, Session};
use sim_bridge::{SimConfig, SimDevice, SimError};
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use vfio_bindings::bindings::vfio::{
    VFIO_IRQ_INFO_AUTOMASKED, VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_INFO_MASKABLE, VFIO_PCI_BAR0_REGION_INDEX,
    VFIO_PCI_BAR2_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_NUM_IRQS,
    VFIO_PCI_NUM_REGIONS, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
};

/// DMA mappings one client may hold at once (the kernel's `dma_entry_limit` default).
pub const MAX_DMA_MAPS: usize = 65_535;

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
    /// The connection failed (accept, read or write).
    #[error("vfio-user connection")]
    Connection(#[source] std::io::Error),
    /// A message whose announced size is below the header or above
    /// [`protocol::MAX_MESSAGE_BYTES`]: the stream cannot be resynchronised, the
    /// connection ends after an error reply.
    #[error("message announces {size} bytes (allowed {min}..={max}); connection closed", min = protocol::HEADER_BYTES, max = protocol::MAX_MESSAGE_BYTES)]
    Framing {
        /// The announced size.
        size: u32,
    },
    /// A message whose body does not fit its command.
    #[error("command {command} of {size} bytes is malformed: {reason}")]
    Malformed {
        /// Command number.
        command: u16,
        /// Announced message size.
        size: u32,
        /// Why.
        reason: &'static str,
    },
    /// A command the protocol state does not allow now.
    #[error("command {command} out of order: {reason}")]
    OutOfOrder {
        /// Command number.
        command: u16,
        /// Why.
        reason: &'static str,
    },
    /// A command or feature the server does not offer.
    #[error("command {command}: {what} not supported")]
    Unsupported {
        /// Command number.
        command: u16,
        /// What.
        what: &'static str,
    },
    /// A region or IRQ index the device does not have.
    #[error("command {command}: no index {index}")]
    NoSuchIndex {
        /// Command number.
        command: u16,
        /// The index asked for.
        index: u32,
    },
    /// More DMA mappings than the server keeps ([`MAX_DMA_MAPS`], the kernel's
    /// default `dma_entry_limit`).
    #[error("DMA map of IOVA {iova:#x}: {MAX_DMA_MAPS} mappings already exist")]
    TooManyDmaMaps {
        /// IOVA.
        iova: u64,
    },
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
    /// DMA_MAP of an empty, wrapping or unrepresentable range, or one past the end of
    /// the client's file.
    #[error("DMA map of IOVA {iova:#x} (+{size:#x}) is empty, wraps, or lies outside the client's file")]
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

impl VfioUserError {
    /// The errno an error reply carries for this refusal.
    pub fn errno(&self) -> u32 {
        let e = match self {
            Self::Unsupported { .. } => libc::ENOTSUP,
            Self::DmaConflict { .. } => libc::EEXIST,
            Self::TooManyDmaMaps { .. } => libc::ENOSPC,
            Self::DmaMmap { source, .. } => source.raw_os_error().unwrap_or(libc::EINVAL),
            Self::Csr { .. } | Self::Sim(_) | Self::Connection(_) | Self::Bind { .. } => libc::EIO,
            _ => libc::EINVAL,
        };
        e as u32
    }
}

/// Error text with its chain of causes (the error reply carries only an errno).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

/// A listening vfio-user socket in front of one simulated NPU.
pub struct NpuServer {
    listener: UnixListener,
    path: PathBuf,
    info: DeviceInfo,
    shared: backend::Shared,
}

impl NpuServer {
    /// Builds the device and listens on `socket` (which must not exist yet), owner-only.
    pub fn bind(socket: &Path, cfg: SimConfig) -> Result<Self, VfioUserError> {
        if socket.symlink_metadata().is_ok() {
            return Err(VfioUserError::SocketExists { path: socket.into() });
        }
        let dev = SimDevice::new(cfg).map_err(VfioUserError::Sim)?;
        let listener = socket::bind_private(socket)?;
        Ok(Self {
            listener,
            path: socket.into(),
            info: device_info(),
            shared: Arc::new((Mutex::new(State::new(dev)), Condvar::new())),
        })
    }

    /// Accepts one client and serves it until it disconnects; the RTL runs meanwhile.
    pub fn serve(&self) -> Result<ServeStats, VfioUserError> {
        let (stream, _) = self.listener.accept().map_err(VfioUserError::Connection)?;
        let clock = {
            let shared = self.shared.clone();
            std::thread::Builder::new().name("npu-clock".into()).spawn(move || backend::clock(shared))
        }
        .map_err(|source| VfioUserError::Bind { path: "(clock thread)".into(), source })?;
        let mut be = Backend { shared: self.shared.clone() };
        let r = serve_connection(&stream, &mut be, &self.info);
        backend::stop(&self.shared);
        let _ = clock.join();
        r?;
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

    /// The message handler without a socket: the device side of [`Session::handle`]
    /// (tests drive it with generated messages).
    pub fn handler(&self) -> impl Handler + '_ {
        Backend { shared: self.shared.clone() }
    }

    /// The device's regions and IRQ indices as the protocol reports them.
    pub fn device_info(&self) -> &DeviceInfo {
        &self.info
    }
}

impl Drop for NpuServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads, handles and answers messages until the client hangs up.
fn serve_connection(
    stream: &std::os::unix::net::UnixStream,
    be: &mut dyn Handler,
    info: &DeviceInfo,
) -> Result<(), VfioUserError> {
    let mut session = Session::new();
    let io = VfioUserError::Connection;
    while let Some(msg) = socket::recv_header(stream).map_err(io)? {
        let hdr = Header::parse(&msg.header);
        if (hdr.size as usize) < protocol::HEADER_BYTES || hdr.size > protocol::MAX_MESSAGE_BYTES {
            let e = VfioUserError::Framing { size: hdr.size };
            let _ = (&*stream).write_all(&protocol::reply_bytes(hdr, e.errno(), &[]));
            return Err(e);
        }
        let mut body = vec![0u8; hdr.size as usize - protocol::HEADER_BYTES];
        (&*stream).read_exact(&mut body).map_err(io)?;
        let reply = if msg.fds_truncated {
            let e =
                VfioUserError::Malformed { command: hdr.command, size: hdr.size, reason: "too many file descriptors" };
            eprintln!("gmem serve: request refused: {e}");
            Some(protocol::reply_bytes(hdr, e.errno(), &[]))
        } else {
            session.handle(be, info, hdr, &body, msg.fds)
        };
        if let Some(r) = reply {
            (&*stream).write_all(&r).map_err(io)?;
        }
    }
    Ok(())
}

fn region(size: u64) -> (u64, u32) {
    (size, if size > 0 { VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE } else { 0 })
}

/// BAR0 (CSRs), BAR2 (MSI-X table/PBA), configuration space, the rest empty; INTx
/// (maskable, automasked), MSI with eight vectors, MSI-X with one per interrupt line.
fn device_info() -> DeviceInfo {
    let regions = (0..VFIO_PCI_NUM_REGIONS)
        .map(|i| match i {
            VFIO_PCI_BAR0_REGION_INDEX | VFIO_PCI_BAR2_REGION_INDEX => region(u64::from(config::BAR_BYTES)),
            VFIO_PCI_CONFIG_REGION_INDEX => region(config::CONFIG_BYTES as u64),
            _ => region(0),
        })
        .collect();
    let irqs = (0..VFIO_PCI_NUM_IRQS)
        .map(|index| {
            let flags = if index == VFIO_PCI_INTX_IRQ_INDEX {
                VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED
            } else {
                VFIO_IRQ_INFO_EVENTFD
            };
            (flags, irq::vectors(index))
        })
        .collect();
    DeviceInfo { regions, irqs }
}
