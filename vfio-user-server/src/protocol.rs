//! The vfio-user wire protocol, server side, for a client that may be hostile.
//!
//! Every message is a 16-byte header (message id, command, total size, flags, error
//! number) and a body whose layout the command fixes. The client is a separate
//! process (a VMM), so nothing in a message is trusted: the connection loop checks the
//! announced size against [`MAX_MESSAGE_BYTES`] before it reads or allocates anything
//! and hands [`Session::handle`] the whole message as a byte slice; the parser reads
//! fields only from that slice, refuses bodies shorter than their command's layout,
//! data counts that disagree with the size or exceed [`MAX_DATA_XFER`], and any command
//! before version negotiation. A refused request gets an error reply carrying an
//! errno ([`VfioUserError::errno`]); the connection goes on. Layouts follow the
//! vfio-user specification (as QEMU's `vfio-user-pci` and rust-vmm's client send them).

use crate::VfioUserError;
use std::fs::File;

/// Bytes of the message header.
pub const HEADER_BYTES: usize = 16;
/// Largest data transfer offered to the client (`max_data_xfer_size`).
pub const MAX_DATA_XFER: u32 = 1 << 20;
/// File descriptors per message the client is told to send at most (it then sends
/// SET_IRQS one vector per message, as QEMU does); up to [`crate::socket::MAX_FDS`]
/// are received.
pub const MAX_MSG_FDS: u32 = 1;
/// Largest message accepted: a region write of [`MAX_DATA_XFER`] bytes with its
/// headers. A larger announced size ends the connection (the stream cannot be
/// resynchronised) after an error reply.
pub const MAX_MESSAGE_BYTES: u32 = (HEADER_BYTES + REGION_ACCESS_BYTES) as u32 + MAX_DATA_XFER;

/// Command numbers (vfio-user specification, table "Commands").
pub mod cmd {
    /// Version and capability negotiation; must come first.
    pub const VERSION: u16 = 1;
    /// Share a range of client memory (with a file descriptor) for DMA.
    pub const DMA_MAP: u16 = 2;
    /// Withdraw a DMA range.
    pub const DMA_UNMAP: u16 = 3;
    /// Device flags, region and IRQ counts.
    pub const DEVICE_GET_INFO: u16 = 4;
    /// One region's size and flags.
    pub const DEVICE_GET_REGION_INFO: u16 = 5;
    /// One IRQ index's vector count.
    pub const DEVICE_GET_IRQ_INFO: u16 = 7;
    /// Eventfds or masking for a range of vectors.
    pub const DEVICE_SET_IRQS: u16 = 8;
    /// Read from a region.
    pub const REGION_READ: u16 = 9;
    /// Write to a region.
    pub const REGION_WRITE: u16 = 10;
    /// Function reset.
    pub const DEVICE_RESET: u16 = 13;
}

const FLAG_TYPE_MASK: u32 = 0xf;
const FLAG_REPLY: u32 = 1;
const FLAG_NO_REPLY: u32 = 1 << 4;
const FLAG_ERROR: u32 = 1 << 5;
/// DMA_UNMAP flags: report dirty pages (not offered), unmap everything.
const UNMAP_GET_DIRTY: u32 = 1 << 1;
const UNMAP_ALL: u32 = 1 << 2;
/// VFIO_IRQ_SET_DATA_BOOL: masking by a bool array in the message (not offered).
const IRQ_DATA_BOOL: u32 = 1 << 1;
/// VFIO_DEVICE_FLAGS_PCI and VFIO_DEVICE_FLAGS_RESET.
const DEVICE_FLAGS_PCI: u32 = 1 << 1;
const DEVICE_FLAGS_RESET: u32 = 1 << 0;

/// Body bytes (after the header) of each fixed-layout command.
const VERSION_BYTES: usize = 4;
const DMA_MAP_BYTES: usize = 32;
const DMA_UNMAP_BYTES: usize = 24;
const DEVICE_INFO_BYTES: usize = 16;
const REGION_INFO_BYTES: usize = 32;
const IRQ_INFO_BYTES: usize = 16;
const SET_IRQS_BYTES: usize = 20;
const REGION_ACCESS_BYTES: usize = 16;

/// A message header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Chosen by the sender; a reply carries its request's.
    pub id: u16,
    /// Command number ([`cmd`]).
    pub command: u16,
    /// Bytes of the whole message, header included.
    pub size: u32,
    /// Type (command/reply), no-reply and error bits.
    pub flags: u32,
    /// Errno of an error reply.
    pub error: u32,
}

impl Header {
    /// Decodes the 16 header bytes (little-endian fields).
    pub fn parse(b: &[u8; HEADER_BYTES]) -> Self {
        Self {
            id: u16::from_le_bytes([b[0], b[1]]),
            command: u16::from_le_bytes([b[2], b[3]]),
            size: u32_at(b, 4),
            flags: u32_at(b, 8),
            error: u32_at(b, 12),
        }
    }

    /// Encodes the header.
    pub fn to_bytes(self) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        b[0..2].copy_from_slice(&self.id.to_le_bytes());
        b[2..4].copy_from_slice(&self.command.to_le_bytes());
        b[4..8].copy_from_slice(&self.size.to_le_bytes());
        b[8..12].copy_from_slice(&self.flags.to_le_bytes());
        b[12..16].copy_from_slice(&self.error.to_le_bytes());
        b
    }

    /// True for an error reply.
    pub fn is_error(&self) -> bool {
        self.flags & FLAG_ERROR != 0
    }

    fn no_reply(&self) -> bool {
        self.flags & FLAG_NO_REPLY != 0
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | u64::from(u32_at(b, at + 4)) << 32
}

/// What the device behind the protocol does with each request.
pub trait Handler {
    /// Fills `data` from `region` at `offset`.
    fn region_read(&mut self, region: u32, offset: u64, data: &mut [u8]) -> Result<(), VfioUserError>;
    /// Writes `data` to `region` at `offset`.
    fn region_write(&mut self, region: u32, offset: u64, data: &[u8]) -> Result<(), VfioUserError>;
    /// Shares `size` bytes of the client's `fd` from `offset` at `iova`.
    fn dma_map(&mut self, flags: u32, offset: u64, iova: u64, size: u64, fd: Option<File>)
    -> Result<(), VfioUserError>;
    /// Withdraws the mappings inside `[iova, iova + size)`, or all of them.
    fn dma_unmap(&mut self, iova: u64, size: u64, all: bool) -> Result<(), VfioUserError>;
    /// Eventfds, masking or disabling for vectors `start..start + count` of `index`.
    fn set_irqs(&mut self, index: u32, flags: u32, start: u32, count: u32, fds: Vec<File>)
    -> Result<(), VfioUserError>;
    /// Function reset.
    fn reset(&mut self) -> Result<(), VfioUserError>;
}

/// The device's fixed description: regions (VFIO numbering) and IRQ indices.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// Size and VFIO region flags per region index.
    pub regions: Vec<(u64, u32)>,
    /// VFIO IRQ-info flags and vector count per IRQ index.
    pub irqs: Vec<(u32, u32)>,
}

/// One connection's protocol state.
#[derive(Debug, Default)]
pub struct Session {
    negotiated: bool,
}

impl Session {
    /// A connection before version negotiation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles one whole message (`body` is everything after the header, as many bytes
    /// as the header announced) and returns the reply to send, if any.
    pub fn handle(
        &mut self,
        dev: &mut dyn Handler,
        info: &DeviceInfo,
        hdr: Header,
        body: &[u8],
        fds: Vec<File>,
    ) -> Option<Vec<u8>> {
        match self.dispatch(dev, info, hdr, body, fds) {
            Ok(reply) if hdr.no_reply() => {
                drop(reply);
                None
            }
            Ok(reply) => Some(reply_bytes(hdr, 0, &reply)),
            Err(e) => {
                if std::env::var_os("GMEM_SERVE_TRACE").is_some() || !matches!(e, VfioUserError::Unsupported { .. }) {
                    eprintln!("gmem serve: request refused: {}", crate::error_chain(&e));
                }
                Some(reply_bytes(hdr, e.errno(), &[]))
            }
        }
    }

    fn dispatch(
        &mut self,
        dev: &mut dyn Handler,
        info: &DeviceInfo,
        hdr: Header,
        body: &[u8],
        fds: Vec<File>,
    ) -> Result<Vec<u8>, VfioUserError> {
        let malformed = |reason| VfioUserError::Malformed { command: hdr.command, size: hdr.size, reason };
        if hdr.flags & FLAG_TYPE_MASK != 0 {
            return Err(malformed("a reply where a command was expected"));
        }
        if hdr.command != cmd::VERSION && !self.negotiated {
            return Err(VfioUserError::OutOfOrder { command: hdr.command, reason: "before version negotiation" });
        }
        let need =
            |n: usize| if body.len() < n { Err(malformed("body shorter than the command's layout")) } else { Ok(()) };
        let no_fds = |fds: &[File]| {
            if fds.is_empty() { Ok(()) } else { Err(malformed("file descriptors with a command that takes none")) }
        };
        match hdr.command {
            cmd::VERSION => {
                need(VERSION_BYTES)?;
                no_fds(&fds)?;
                if self.negotiated {
                    return Err(VfioUserError::OutOfOrder { command: hdr.command, reason: "version negotiated twice" });
                }
                let major = u16::from_le_bytes([body[0], body[1]]);
                if major != 0 {
                    return Err(malformed("protocol major version is not 0"));
                }
                // The client's capability string (JSON, NUL-terminated) is optional; the
                // server needs nothing from it, but a present one must be terminated.
                let caps = &body[VERSION_BYTES..];
                if !caps.is_empty() && caps.last() != Some(&0) {
                    return Err(malformed("capability string not NUL-terminated"));
                }
                self.negotiated = true;
                let mut out = vec![0u8; VERSION_BYTES]; // major 0, minor 0
                out.extend_from_slice(server_capabilities().as_bytes());
                out.push(0);
                Ok(out)
            }
            cmd::DMA_MAP => {
                need(DMA_MAP_BYTES)?;
                if fds.len() > 1 {
                    return Err(malformed("DMA_MAP takes at most one file descriptor"));
                }
                let (flags, offset, iova, size) =
                    (u32_at(body, 4), u64_at(body, 8), u64_at(body, 16), u64_at(body, 24));
                dev.dma_map(flags, offset, iova, size, fds.into_iter().next())?;
                Ok(Vec::new())
            }
            cmd::DMA_UNMAP => {
                need(DMA_UNMAP_BYTES)?;
                no_fds(&fds)?;
                let (flags, iova, size) = (u32_at(body, 4), u64_at(body, 8), u64_at(body, 16));
                if flags & UNMAP_GET_DIRTY != 0 {
                    return Err(VfioUserError::Unsupported { command: hdr.command, what: "dirty-page bitmaps" });
                }
                if flags & !(UNMAP_GET_DIRTY | UNMAP_ALL) != 0 {
                    return Err(malformed("unknown DMA_UNMAP flags"));
                }
                dev.dma_unmap(iova, size, flags & UNMAP_ALL != 0)?;
                Ok(body[..DMA_UNMAP_BYTES].to_vec())
            }
            cmd::DEVICE_GET_INFO => {
                need(DEVICE_INFO_BYTES)?;
                no_fds(&fds)?;
                let mut out = Vec::with_capacity(DEVICE_INFO_BYTES);
                for v in [
                    DEVICE_INFO_BYTES as u32,
                    DEVICE_FLAGS_PCI | DEVICE_FLAGS_RESET,
                    info.regions.len() as u32,
                    info.irqs.len() as u32,
                ] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                Ok(out)
            }
            cmd::DEVICE_GET_REGION_INFO => {
                need(REGION_INFO_BYTES)?;
                no_fds(&fds)?;
                let index = u32_at(body, 8);
                let &(size, flags) = info
                    .regions
                    .get(index as usize)
                    .ok_or(VfioUserError::NoSuchIndex { command: hdr.command, index })?;
                let mut out = Vec::with_capacity(REGION_INFO_BYTES);
                for v in [REGION_INFO_BYTES as u32, flags, index, 0] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                out.extend_from_slice(&size.to_le_bytes());
                out.extend_from_slice(&0u64.to_le_bytes()); // offset: regions are not mmapped
                Ok(out)
            }
            cmd::DEVICE_GET_IRQ_INFO => {
                need(IRQ_INFO_BYTES)?;
                no_fds(&fds)?;
                let index = u32_at(body, 8);
                let &(flags, count) =
                    info.irqs.get(index as usize).ok_or(VfioUserError::NoSuchIndex { command: hdr.command, index })?;
                let mut out = Vec::with_capacity(IRQ_INFO_BYTES);
                for v in [IRQ_INFO_BYTES as u32, flags, index, count] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                Ok(out)
            }
            cmd::DEVICE_SET_IRQS => {
                need(SET_IRQS_BYTES)?;
                let (flags, index, start, count) =
                    (u32_at(body, 4), u32_at(body, 8), u32_at(body, 12), u32_at(body, 16));
                if index as usize >= info.irqs.len() {
                    return Err(VfioUserError::NoSuchIndex { command: hdr.command, index });
                }
                if flags & IRQ_DATA_BOOL != 0 {
                    return Err(VfioUserError::Unsupported { command: hdr.command, what: "masking by a bool array" });
                }
                dev.set_irqs(index, flags, start, count, fds)?;
                Ok(Vec::new())
            }
            cmd::REGION_READ | cmd::REGION_WRITE => {
                need(REGION_ACCESS_BYTES)?;
                no_fds(&fds)?;
                let (offset, region, count) = (u64_at(body, 0), u32_at(body, 8), u32_at(body, 12));
                if count > MAX_DATA_XFER {
                    return Err(malformed("data count above max_data_xfer_size"));
                }
                let mut out = body[..REGION_ACCESS_BYTES].to_vec();
                if hdr.command == cmd::REGION_READ {
                    if body.len() != REGION_ACCESS_BYTES {
                        return Err(malformed("REGION_READ with data"));
                    }
                    let mut data = vec![0u8; count as usize];
                    dev.region_read(region, offset, &mut data)?;
                    out.extend_from_slice(&data);
                } else {
                    let data = &body[REGION_ACCESS_BYTES..];
                    if data.len() != count as usize {
                        return Err(malformed("REGION_WRITE count differs from the data sent"));
                    }
                    dev.region_write(region, offset, data)?;
                }
                Ok(out)
            }
            cmd::DEVICE_RESET => {
                no_fds(&fds)?;
                dev.reset()?;
                Ok(Vec::new())
            }
            other => Err(VfioUserError::Unsupported { command: other, what: "command" }),
        }
    }
}

/// A reply to `req`: its id and command, the reply type, `errno` if non-zero.
pub fn reply_bytes(req: Header, errno: u32, payload: &[u8]) -> Vec<u8> {
    let flags = FLAG_REPLY | if errno != 0 { FLAG_ERROR } else { 0 };
    let size = (HEADER_BYTES + payload.len()) as u32;
    let hdr = Header { id: req.id, command: req.command, size, flags, error: errno };
    let mut out = Vec::with_capacity(size as usize);
    out.extend_from_slice(&hdr.to_bytes());
    out.extend_from_slice(payload);
    out
}

/// The server's capabilities as the VERSION reply carries them (JSON).
fn server_capabilities() -> String {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    format!(
        r#"{{"capabilities":{{"max_msg_fds":{MAX_MSG_FDS},"max_data_xfer_size":{MAX_DATA_XFER},"migration":{{"pgsize":{page}}}}}}}"#
    )
}
