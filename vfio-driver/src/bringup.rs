//! Board bring-up checks, written against [`DeviceIo`] only.
//!
//! A new bitstream is brought up in three steps, each exercising one more interface of
//! the shell: identification and a SCRATCH round trip (the CSR path through BAR0), then
//! a DMA loopback host → device memory → host (the host-memory master through the PCIe
//! bridge and the IOMMU, the device-memory master through the HBM/DDR controller, and
//! the completion rings). Because they only use `DeviceIo`, the same checks run against
//! the co-simulation in this crate's tests and against a board in `vfio-npu-info`.

use npu::dma::{Dma, DmaAddr, DmaDesc, DmaError, DmaStatus};
use npu::{Clock, DeviceIo, DmaBufError, DmaBuffer, IoError, regs};

/// Bring-up failures.
#[derive(Debug, thiserror::Error)]
pub enum BringupError {
    /// A transport error.
    #[error(transparent)]
    Io(#[from] IoError),
    /// A DMA driver error.
    #[error(transparent)]
    Dma(#[from] DmaError),
    /// A host buffer could not be made.
    #[error(transparent)]
    Buffer(#[from] DmaBufError),
    /// SCRATCH did not read back what was written: the CSR path is broken.
    #[error("SCRATCH read {read:#010x} after writing {wrote:#010x}: the CSR path (BAR0 → AXI4-Lite) is broken")]
    Scratch {
        /// Written.
        wrote: u32,
        /// Read back.
        read: u32,
    },
    /// A DMA completed with an error or wrong byte count.
    #[error("{what} DMA completed with {status:?}, {bytes:#x} of {len:#x} bytes")]
    Completion {
        /// "H2D" or "D2H".
        what: &'static str,
        /// Status reported.
        status: DmaStatus,
        /// Bytes reported.
        bytes: u32,
        /// Bytes requested.
        len: u32,
    },
    /// The looped-back data differs.
    #[error("loopback data differs at byte {offset:#x}: wrote {wrote:#04x}, read {read:#04x}")]
    Data {
        /// First differing offset.
        offset: usize,
        /// Expected byte.
        wrote: u8,
        /// Byte read.
        read: u8,
    },
    /// The device wrote past the end of the destination.
    #[error("guard byte at {offset:#x} after the {len:#x}-byte destination was overwritten")]
    Guard {
        /// Offset of the first overwritten guard byte.
        offset: usize,
        /// Transfer length.
        len: usize,
    },
}

/// What the device says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// ID register.
    pub id: u32,
    /// (major, minor, patch).
    pub version: (u32, u32, u32),
    /// DMA channels.
    pub dma_channels: u32,
    /// Address-space IDs.
    pub asids: u32,
    /// TLB entries.
    pub tlb_entries: u32,
    /// Memory-port data width in bits.
    pub data_bits: u32,
    /// Device memory in MiB.
    pub dev_mem_mib: u32,
    /// Compute-unit requests in flight.
    pub cu_inflight: u32,
    /// log2 of the host window's base in the device-physical map.
    pub host_window_shift: u32,
}

fn field(v: u32, f: npu::Field) -> u32 {
    f.get(&v.to_le_bytes()).unwrap_or(0) as u32
}

impl Identity {
    /// Reads ID, VERSION, CAPS0 and CAPS1.
    pub fn read<T: DeviceIo + ?Sized>(io: &mut T) -> Result<Self, IoError> {
        let id = io.read32(regs::ID.offset)?;
        let v = io.read32(regs::VERSION.offset)?;
        let c0 = io.read32(regs::CAPS0.offset)?;
        let c1 = io.read32(regs::CAPS1.offset)?;
        Ok(Self {
            id,
            version: (field(v, regs::version::MAJOR), field(v, regs::version::MINOR), field(v, regs::version::PATCH)),
            dma_channels: field(c0, regs::caps0::DMA_CHANNELS),
            asids: field(c0, regs::caps0::ASIDS),
            tlb_entries: field(c0, regs::caps0::TLB_ENTRIES),
            data_bits: 8 << field(c0, regs::caps0::DATA_BYTES_LOG2),
            dev_mem_mib: field(c1, regs::caps1::DEV_MEM_MIB),
            cu_inflight: field(c1, regs::caps1::CU_INFLIGHT),
            host_window_shift: field(c1, regs::caps1::HOST_WINDOW_SHIFT),
        })
    }
}

/// Writes three patterns to SCRATCH and reads each back; restores the old value.
pub fn scratch<T: DeviceIo + ?Sized>(io: &mut T) -> Result<(), BringupError> {
    let old = io.read32(regs::SCRATCH.offset)?;
    for wrote in [0x6d65_6d67, 0xa5a5_5a5a, !old] {
        io.write32(regs::SCRATCH.offset, wrote)?;
        let read = io.read32(regs::SCRATCH.offset)?;
        if read != wrote {
            return Err(BringupError::Scratch { wrote, read });
        }
    }
    io.write32(regs::SCRATCH.offset, old)?;
    Ok(())
}

/// Result of a DMA loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loopback {
    /// Bytes moved each way.
    pub bytes: usize,
    /// Device time of the host → device transfer (submit to completion collected).
    pub h2d_ns: u64,
    /// Device time of the device → host transfer.
    pub d2h_ns: u64,
    /// The clock those times are in.
    pub clock: Clock,
}

impl Loopback {
    /// Throughput of a direction in GB/s (10^9 bytes per second of device time).
    pub fn gbps(&self, ns: u64) -> f64 {
        if ns == 0 { 0.0 } else { self.bytes as f64 / ns as f64 }
    }
}

fn pattern(i: usize) -> u8 {
    ((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8
}

const GUARD: u8 = 0xa5;

/// Copies `len` bytes host → device memory at `dev_addr` (channel 0) and back to a
/// second host buffer (channel 1), then checks every byte and the guard page after it.
/// Uses rings of 2^4 entries; maps and unmaps its own buffers.
pub fn dma_loopback<T: DeviceIo + ?Sized>(
    io: &mut T,
    len: usize,
    dev_addr: u64,
    budget_ns: u64,
) -> Result<Loopback, BringupError> {
    let page = npu::IOVA_PAGE as usize;
    let src = DmaBuffer::new(len)?;
    let dst = DmaBuffer::new(len.next_multiple_of(page) + page)?;
    let data: Vec<u8> = (0..len).map(pattern).collect();
    src.write(0, &data)?;
    dst.write(0, &vec![GUARD; dst.len()])?;
    let mut dma = Dma::init(io, 4)?;
    let src_iova = io.dma_map(&src)?;
    let dst_iova = io.dma_map(&dst)?;
    let run = |io: &mut T, dma: &mut Dma, ch: usize, d: DmaDesc, what: &'static str| -> Result<u64, BringupError> {
        let t = io.now_ns();
        dma.submit(io, ch, &[d])?;
        let c = dma.wait_idle(io, &[ch], budget_ns)?;
        let ns = io.now_ns().saturating_sub(t);
        match c.as_slice() {
            [c] if c.status == DmaStatus::Ok && c.bytes as usize == len => Ok(ns),
            [c] => {
                // An error completion halts the channel (device.md §9.4): resume it so
                // the device is left usable.
                dma.resume(io, ch)?;
                Err(BringupError::Completion { what, status: c.status, bytes: c.bytes, len: len as u32 })
            }
            _ => Err(BringupError::Completion { what, status: DmaStatus::BadDesc, bytes: 0, len: len as u32 }),
        }
    };
    let result = (|| {
        let h2d_ns = run(
            io,
            &mut dma,
            0,
            DmaDesc::copy(DmaAddr::Host(src_iova), DmaAddr::Device(dev_addr), len as u32, 1),
            "H2D",
        )?;
        let d2h_ns = run(
            io,
            &mut dma,
            1,
            DmaDesc::copy(DmaAddr::Device(dev_addr), DmaAddr::Host(dst_iova), len as u32, 2),
            "D2H",
        )?;
        let mut got = vec![0u8; dst.len()];
        dst.read(0, &mut got)?;
        if let Some(offset) = (0..len).find(|&i| got[i] != data[i]) {
            return Err(BringupError::Data { offset, wrote: data[offset], read: got[offset] });
        }
        if let Some(i) = got[len..].iter().position(|&b| b != GUARD) {
            return Err(BringupError::Guard { offset: len + i, len });
        }
        Ok(Loopback { bytes: len, h2d_ns, d2h_ns, clock: io.clock() })
    })();
    // Unmap whatever happened: the buffers are dropped when this function returns.
    let unmapped = io.dma_unmap(src_iova).and(io.dma_unmap(dst_iova));
    let released = dma.release(io);
    let r = result?;
    unmapped?;
    released?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim_bridge::{SimConfig, SimDevice};

    fn rtl() -> SimDevice {
        SimDevice::new(SimConfig::default()).unwrap()
    }

    #[test]
    fn bringup_passes_on_the_co_simulated_rtl() {
        let mut dev = rtl();
        let id = Identity::read(&mut dev).unwrap();
        assert_eq!((id.id, id.version), (regs::NPU_ID, (1, 0, 0)));
        assert_eq!((id.dma_channels, id.data_bits, id.dev_mem_mib, id.host_window_shift), (3, 512, 256, 40));
        scratch(&mut dev).unwrap();
        let lb = dma_loopback(&mut dev, 64 << 10, 0x10_0000, 50_000_000).unwrap();
        assert_eq!(lb.bytes, 64 << 10);
        assert!(matches!(lb.clock, Clock::Simulated { .. }));
        assert!(lb.h2d_ns > 0 && lb.d2h_ns > 0, "{lb:?}");
        assert!(lb.gbps(lb.h2d_ns) > 0.1, "{lb:?}");
    }

    #[test]
    fn a_loopback_outside_device_memory_reports_the_completion_error() {
        let mut dev = rtl();
        let e = dma_loopback(&mut dev, 4096, 256 << 20, 50_000_000).unwrap_err();
        assert!(matches!(e, BringupError::Completion { what: "H2D", status: DmaStatus::BadDesc, .. }), "{e}");
        // Everything was unmapped and released and the channel resumed: the device works.
        assert_eq!(dma_loopback(&mut dev, 4096, 0, 50_000_000).unwrap().bytes, 4096);
    }
}
