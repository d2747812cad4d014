//! The bridge's own overhead: the same DMA workload through the Rust bridge and
//! through a bare C++ harness of the same RTL (`csrc/bare_harness.cpp`).
//!
//! Workload: `rounds` times, one `bytes`-long host→device copy on channel 0 and one
//! device→host copy on channel 1 at once, each round waited for by interrupt. Both
//! sides issue the same CSR writes in the same order and model the memory ports with
//! the same [`TimingModel`], so they simulate the same number of cycles — which the
//! caller can check — and the ratio of cycles per wall second measures the bridge.

use crate::ffi;
use crate::sim_device::{SimConfig, SimDevice, SimError};
use crate::timing::TimingModel;
use npu::{DeviceIo, DmaBuffer, IoError, regs};
use std::time::{Duration, Instant};

/// One measured run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CosimRun {
    /// Device cycles simulated in the copy phase.
    pub cycles: u64,
    /// Wall time of the copy phase.
    pub wall: Duration,
    /// CPU time of the process (all threads) during the copy phase.
    pub cpu: Duration,
}

impl CosimRun {
    /// Simulated cycles per wall-clock second.
    pub fn cycles_per_second(&self) -> f64 {
        self.cycles as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Errors of the comparison.
#[derive(Debug, thiserror::Error)]
pub enum CosimError {
    /// The bridge run failed.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// Transport failure in the bridge run.
    #[error(transparent)]
    Io(#[from] IoError),
    /// Host buffer failure.
    #[error(transparent)]
    Buffer(#[from] npu::DmaBufError),
    /// A copy did not complete.
    #[error("the {side} run did not complete its copies")]
    Incomplete {
        /// "bare C++" or "Rust bridge".
        side: &'static str,
    },
    /// Bad workload parameters.
    #[error("workload bytes must be a multiple of 64 in 64 B ..= 16 MiB, got {0}")]
    BadSize(u64),
}

/// CPU time of this process, all threads (zero if the clock cannot be read).
pub fn cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock id exists on Linux.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(u64::try_from(ts.tv_sec).unwrap_or(0), u32::try_from(ts.tv_nsec).unwrap_or(0))
}

fn check(bytes: u64) -> Result<(), CosimError> {
    if bytes == 0 || bytes % 64 != 0 || bytes > 1 << 24 { Err(CosimError::BadSize(bytes)) } else { Ok(()) }
}

/// Runs the workload in the bare C++ harness.
pub fn bare_dma(bytes: u64, rounds: u32, t: &TimingModel) -> Result<CosimRun, CosimError> {
    check(bytes)?;
    // SAFETY: npu_bare_dma_run only reads its scalar arguments and owns all its state.
    let r = unsafe {
        ffi::npu_bare_dma_run(
            bytes,
            rounds,
            t.host.read_latency,
            t.host.write_latency,
            t.host.bytes_per_cycle,
            t.dev.read_latency,
            t.dev.write_latency,
            t.dev.bytes_per_cycle,
        )
    };
    if r.ok != 1 {
        return Err(CosimError::Incomplete { side: "bare C++" });
    }
    Ok(CosimRun { cycles: r.cycles, wall: Duration::from_nanos(r.wall_ns), cpu: Duration::from_nanos(r.cpu_ns) })
}

/// Runs the same workload through the Rust bridge (`SimDevice` as `DeviceIo`).
pub fn bridge_dma(bytes: u64, rounds: u32, t: &TimingModel) -> Result<CosimRun, CosimError> {
    check(bytes)?;
    let mut timing = *t;
    timing.host.max_outstanding = 64;
    timing.dev.max_outstanding = 64;
    let mut dev =
        SimDevice::new(SimConfig { timing, dev_mem_bytes: (2 * bytes + 0x1000) as usize, ..SimConfig::default() })?;
    let host = DmaBuffer::new((4 * bytes + 0x10_0000) as usize)?;
    let base = dev.dma_map(&host)?;
    let ring = |c: u64| base + 0x1000 * c;
    let cpl = |c: u64| base + 0x4000 + 0x1000 * c;
    let h2d_src = base + 0x10000;
    let d2h_dst = h2d_src + 2 * bytes;
    for c in 0..2u32 {
        let at = |r: npu::Reg| r.at(c).unwrap_or(r.offset);
        dev.write64(at(regs::DMA_DESC_BASE_LO), ring(u64::from(c)))?;
        dev.write32(at(regs::DMA_DESC_SIZE_LOG2), 6)?;
        dev.write64(at(regs::DMA_CPL_BASE_LO), cpl(u64::from(c)))?;
        dev.write32(at(regs::DMA_CPL_SIZE_LOG2), 6)?;
    }
    dev.write32(regs::INT_MASK.offset, 0b01100)?;
    dev.write32(regs::CTRL.offset, 1 << 2)?;
    let put = |c: u64, slot: u64, src: u64, dst: u64, flags: u16| -> Result<(), CosimError> {
        let mut d = [0u8; 32];
        d[0..8].copy_from_slice(&src.to_le_bytes());
        d[8..16].copy_from_slice(&dst.to_le_bytes());
        d[16..20].copy_from_slice(&(bytes as u32).to_le_bytes());
        d[20..22].copy_from_slice(&flags.to_le_bytes());
        host.write((ring(c) - base + 32 * slot) as usize, &d)?;
        Ok(())
    };
    let (start_wall, start_cpu) = (Instant::now(), cpu_time());
    let start = dev.cycles();
    for r in 0..u64::from(rounds) {
        let slot = r % 63;
        put(0, slot, h2d_src, 0, 0b0110)?;
        put(1, slot, bytes, d2h_dst, 0b1010)?;
        let next = ((slot + 1) % 64) as u32;
        dev.write32(regs::DMA_DESC_TAIL.offset, next)?;
        dev.write32(regs::DMA_DESC_TAIL.offset + regs::DMA_DESC_TAIL.stride, next)?;
        let mut seen = 0u32;
        let budget_ns = (100 * bytes + 100_000) * 4;
        while seen != 0b1100 {
            let fired = dev.wait_irq(0b1100 & !seen, budget_ns)?;
            if fired == 0 {
                return Err(CosimError::Incomplete { side: "Rust bridge" });
            }
            seen |= fired;
        }
        dev.write32(regs::INT_ACK.offset, 0b01100)?;
        dev.write32(regs::DMA_CPL_HEAD.offset, next)?;
        dev.write32(regs::DMA_CPL_HEAD.offset + regs::DMA_CPL_HEAD.stride, next)?;
    }
    let run = CosimRun {
        cycles: dev.cycles() - start,
        wall: start_wall.elapsed(),
        cpu: cpu_time().saturating_sub(start_cpu),
    };
    dev.dma_unmap(base)?;
    Ok(run)
}
