//! `gmem profile dma`: DMA throughput of the RTL engine against the modelled link.
//!
//! For each direction and transfer size the profiler queues enough descriptors of that
//! size to move about 4 MiB (at most 500 descriptors, at least one), rings the doorbell once and counts device
//! cycles until the driver sees the last completion in host memory (it polls the
//! completion rings as the NPU driver does; no interrupt).
//! Throughput is bytes per cycle; efficiency divides it by the payload rate of what
//! limits the direction in the system model: the link's payload rate per direction for
//! H2D/D2H (after TLP headers and completion splitting on PCIe); for both at once the
//! sum, or the device memory's bus if that is less (a half-duplex DRAM carries both
//! directions' device side); for D2D the device memory's copy rate (half the bus of a
//! half-duplex DRAM, which reads and writes in turn). All measured in one run.
//!
//! The `h2d_lone` rows time one descriptor alone, from the doorbell until the driver
//! sees the completion record in host memory (`Dma::wait_idle`, which polls the ring):
//! the fixed costs of a transfer (doorbell flight, first read's round trip, the record's
//! flight back) against the same H2D payload rate. The descriptor is pushed through BAR0
//! (DMA_PUSH), as the NPU driver does on an idle channel with `--push`; the
//! `h2d_lone_ring` rows fetch it from the ring, as the driver does by default, so the
//! fetch's round trip and the push's uncached stores show side by side. The other rows
//! push their first descriptor only with `--push`. Every case starts once the previous
//! one's last CSR write has left (`--mmio-write-gap`).

use npu::dma::{Dma, DmaAddr, DmaDesc, DmaStatus};
use npu::{DeviceIo, DmaBuffer};
use serde::Serialize;
use sim_bridge::{NOMINAL_HZ, SimDevice};

/// Transfer directions profiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Host memory → device memory (channel 0).
    H2d,
    /// Device memory → host memory (channel 1).
    D2h,
    /// Device memory → device memory (channel 2).
    D2d,
    /// H2D and D2H at once (channels 0 and 1).
    Both,
    /// One host → device descriptor alone, from its doorbell until the driver sees its
    /// completion in host memory (what a migration of one buffer costs, fixed costs
    /// included).
    #[serde(rename = "h2d_lone")]
    H2dLone,
    /// The same lone descriptor fetched from the ring (not pushed through BAR0): the
    /// descriptor fetch's round trip shows against `h2d_lone`.
    #[serde(rename = "h2d_lone_ring")]
    H2dLoneRing,
}

impl Direction {
    /// Name in text reports (as in JSON).
    pub fn name(self) -> &'static str {
        match self {
            Direction::H2d => "h2d",
            Direction::D2h => "d2h",
            Direction::D2d => "d2d",
            Direction::Both => "both",
            Direction::H2dLone => "h2d_lone",
            Direction::H2dLoneRing => "h2d_lone_ring",
        }
    }
}

/// One measured case.
#[derive(Clone, Debug, Serialize)]
pub struct DmaCase {
    /// Direction.
    pub direction: Direction,
    /// Bytes per descriptor.
    pub size_bytes: u64,
    /// Descriptors queued.
    pub descriptors: u64,
    /// Bytes moved in total.
    pub bytes: u64,
    /// Device cycles from the doorbell until the driver sees the last completion.
    pub cycles: u64,
    /// bytes / cycles.
    pub bytes_per_cycle: f64,
    /// Payload rate of what limits this direction in the model, bytes per cycle.
    pub link_peak_bytes_per_cycle: f64,
    /// bytes_per_cycle / link peak.
    pub efficiency: f64,
    /// Throughput at the nominal 250 MHz clock, 10^9 bytes per second.
    pub gigabytes_per_s: f64,
}

/// Errors of the profiler.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Simulation failure.
    #[error(transparent)]
    Sim(#[from] sim_bridge::SimError),
    /// Transport failure.
    #[error(transparent)]
    Io(#[from] npu::IoError),
    /// DMA driver failure.
    #[error(transparent)]
    Dma(#[from] npu::dma::DmaError),
    /// Host buffer failure.
    #[error(transparent)]
    Buffer(#[from] npu::DmaBufError),
    /// A descriptor did not complete OK.
    #[error("DMA {direction:?} {size} B: descriptor {tag} completed with {status:?}")]
    Failed {
        /// Direction.
        direction: Direction,
        /// Size.
        size: u64,
        /// Tag.
        tag: u16,
        /// Status.
        status: DmaStatus,
    },
}

/// Sizes of the default sweep.
pub const DEFAULT_SIZES: &[u64] = &[4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 2 << 20];

const TOTAL: u64 = 4 << 20;
/// Largest transfer size the profiler's buffers allow.
pub const MAX_SIZE: u64 = 4 << 20;
const BUF: usize = 8 << 20;

struct Bench {
    dev: SimDevice,
    dma: Dma,
    /// `--push`: the first descriptor of a submission on an idle channel is pushed.
    push: bool,
    _src: DmaBuffer,
    _dst: DmaBuffer,
    src_iova: u64,
    dst_iova: u64,
}

impl Bench {
    fn new(sys: &crate::system::System) -> Result<Self, ProfileError> {
        let mut dev = SimDevice::new(sys.sim_config())?;
        let mut dma = Dma::init(&mut dev, 9)?;
        dma.set_push(sys.push);
        let src = DmaBuffer::new(BUF)?;
        let dst = DmaBuffer::new(BUF)?;
        let src_iova = dev.dma_map(&src)?;
        let dst_iova = dev.dma_map(&dst)?;
        Ok(Self { dev, dma, push: sys.push, _src: src, _dst: dst, src_iova, dst_iova })
    }

    /// The device cycle a case starts at, once the last CSR write of the one before has
    /// left the host (its completion-ring HEAD): no case pays for another's store.
    fn start(&mut self) -> Result<u64, ProfileError> {
        let gap_ns = self.dev.timing().mmio.write_gap_ns;
        DeviceIo::advance(&mut self.dev, gap_ns)?;
        Ok(self.dev.cycles())
    }

    fn descs(&self, ch: usize, size: u64, count: u64) -> Vec<DmaDesc> {
        (0..count)
            .map(|i| {
                let off = (i * size) % (BUF as u64 / 2);
                let (src, dst) = match ch {
                    0 => (DmaAddr::Host(self.src_iova + off), DmaAddr::Device(off)),
                    1 => (DmaAddr::Device(off + (64 << 20)), DmaAddr::Host(self.dst_iova + off)),
                    _ => (DmaAddr::Device(off), DmaAddr::Device(off + (128 << 20))),
                };
                DmaDesc::copy(src, dst, size as u32, i as u16)
            })
            .collect()
    }

    /// One H2D descriptor of `size` (pushed through BAR0 for `H2dLone`, from the ring
    /// for `H2dLoneRing`): cycles from the doorbell to the driver seeing its completion.
    fn lone(&mut self, direction: Direction, size: u64) -> Result<u64, ProfileError> {
        let d = self.descs(0, size, 1);
        self.dma.set_push(direction == Direction::H2dLone);
        let start = self.start()?;
        let submitted = self.dma.submit(&mut self.dev, 0, &d);
        self.dma.set_push(self.push);
        submitted?;
        let done = self.dma.wait_idle(&mut self.dev, &[0], 1_000_000_000)?;
        if let Some(bad) = done.iter().find(|c| c.status != DmaStatus::Ok) {
            return Err(ProfileError::Failed { direction, size, tag: bad.tag, status: bad.status });
        }
        Ok(self.dev.cycles() - start)
    }

    fn case(&mut self, direction: Direction, size: u64) -> Result<DmaCase, ProfileError> {
        if matches!(direction, Direction::H2dLone | Direction::H2dLoneRing) {
            let cycles = self.lone(direction, size)?.max(1);
            return Ok(self.report(direction, size, 1, cycles));
        }
        let count = (TOTAL / size).clamp(1, 500);
        let channels: &[usize] = match direction {
            Direction::H2d | Direction::H2dLone | Direction::H2dLoneRing => &[0],
            Direction::D2h => &[1],
            Direction::D2d => &[2],
            Direction::Both => &[0, 1],
        };
        let batches: Vec<Vec<DmaDesc>> = channels.iter().map(|&c| self.descs(c, size, count)).collect();
        let start = self.start()?;
        for (&c, b) in channels.iter().zip(&batches) {
            self.dma.submit(&mut self.dev, c, b)?;
        }
        let done = self.dma.wait_idle(&mut self.dev, channels, 1_000_000_000)?;
        let end = self.dev.cycles();
        if let Some(bad) = done.iter().find(|c| c.status != DmaStatus::Ok) {
            return Err(ProfileError::Failed { direction, size, tag: bad.tag, status: bad.status });
        }
        Ok(self.report(direction, size, count * channels.len() as u64, (end - start).max(1)))
    }

    /// The case's figures: `descriptors` of `size` bytes in `cycles`.
    fn report(&self, direction: Direction, size: u64, descriptors: u64, cycles: u64) -> DmaCase {
        let bytes = size * descriptors;
        let t = *self.dev.timing();
        let peak = match direction {
            Direction::H2d | Direction::H2dLone | Direction::H2dLoneRing => t.h2d_payload_bytes_per_s(),
            Direction::D2h => t.d2h_payload_bytes_per_s(),
            Direction::Both => {
                (t.h2d_payload_bytes_per_s() + t.d2h_payload_bytes_per_s()).min(t.dev_mem_total_bytes_per_s())
            }
            Direction::D2d => t.d2d_copy_bytes_per_s(),
        } / NOMINAL_HZ as f64;
        let bpc = bytes as f64 / cycles as f64;
        DmaCase {
            direction,
            size_bytes: size,
            descriptors,
            bytes,
            cycles,
            bytes_per_cycle: bpc,
            link_peak_bytes_per_cycle: peak,
            efficiency: bpc / peak,
            gigabytes_per_s: bpc * NOMINAL_HZ as f64 / 1e9,
        }
    }
}

/// Explicit-copy throughput of `direction` in 64 KiB descriptors over about 4 MiB, in
/// GB/s: the reference the unified-memory figures divide by.
pub fn copy_gbps(sys: &crate::system::System, direction: Direction) -> Result<f64, ProfileError> {
    Ok(Bench::new(sys)?.case(direction, 64 << 10)?.gigabytes_per_s)
}

/// Runs the sweep: every direction × every size, on one simulated device.
pub fn sweep(
    sizes: &[u64],
    sys: &crate::system::System,
    mut progress: impl FnMut(&DmaCase),
) -> Result<Vec<DmaCase>, ProfileError> {
    let mut bench = Bench::new(sys)?;
    let mut out = Vec::new();
    for direction in
        [Direction::H2d, Direction::D2h, Direction::D2d, Direction::Both, Direction::H2dLone, Direction::H2dLoneRing]
    {
        for &size in sizes {
            let case = bench.case(direction, size)?;
            progress(&case);
            out.push(case);
        }
    }
    Ok(out)
}
