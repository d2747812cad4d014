//! `DeviceIo` for the co-simulated NPU: the driver's transport contract over the RTL.

//!
//! Here the bridge charges what a board would: a CSR read waits for a non-posted round
//! trip (half before the device sees it, half after), a CSR write is posted (it reaches
//! the device later while the host goes on; a read never passes it), an interrupt wakes
//! the driver some time after the line rose, and with `measure_host_time` the host's own
//! wall time between calls passes as device time.

use crate::sim_device::{MAX_HOST_GAP_NS, SimDevice, SimError};
use crate::timing::NOMINAL_HZ;
use npu::{Clock, DeviceIo, IoError};
use std::time::Instant;

const NS_PER_CYCLE: u64 = 1_000_000_000 / NOMINAL_HZ;

fn cycles(ns: u64) -> u64 {
    ns.div_ceil(NS_PER_CYCLE)
}

impl SimDevice {
    /// The host enters the transport: with `measure_host_time`, the wall time since it
    /// left passes as device time.
    fn host_enters(&mut self) -> Result<(), SimError> {
        if let Some(left) = self.host_left.take() {
            let gap = u64::try_from(left.elapsed().as_nanos()).unwrap_or(u64::MAX);
            if gap > MAX_HOST_GAP_NS {
                self.host_time.clamped_gaps += 1;
            }
            let gap = gap.min(MAX_HOST_GAP_NS);
            self.host_time.charged_ns += gap;
            self.run(cycles(gap))?;
        }
        Ok(())
    }

    /// The host leaves the transport.
    fn host_leaves(&mut self) {
        if self.config().measure_host_time {
            self.host_left = Some(Instant::now());
        }
    }

    fn mmio_read(&mut self, offset: u32) -> Result<u32, SimError> {
        self.wait_writes_gone()?;
        let round_trip = cycles(self.timing().mmio.read_ns);
        self.run(round_trip / 2)?;
        self.deliver_posted(true)?;
        let v = self.csr_read32(offset)?;
        // The completion may not pass the device's earlier posted writes to host memory.
        let ahead = self.host_port.beats_in_flight();
        self.run(round_trip - round_trip / 2)?;
        self.host_port.land_first(ahead, &mut self.host_mem);
        Ok(v)
    }

    /// Uncached stores leave the host one at a time (`MmioCost::write_gap_ns`): the host
    /// waits, the device running, until the write before this one has gone.
    fn wait_write_slot(&mut self) -> Result<(), SimError> {
        let gap = cycles(self.timing().mmio.write_gap_ns);
        if gap == 0 {
            return Ok(());
        }
        self.wait_writes_gone()?;
        self.next_write_at = self.cycles() + gap;
        Ok(())
    }

    /// Waits, the device running, until the last CSR write has left the host: an
    /// uncached read does not leave before the uncached stores ahead of it.
    fn wait_writes_gone(&mut self) -> Result<(), SimError> {
        let wait = self.next_write_at.saturating_sub(self.cycles());
        if wait > 0 {
            self.transport.write_gap_cycles += wait;
            self.run(wait)?;
        }
        Ok(())
    }

    fn irq_wait(&mut self, mask: u32, budget_ns: u64) -> Result<u32, SimError> {
        // The line is sampled after every cycle of the budget; while the device is
        // quiet its lines cannot change before the next posted write, so fast-forward
        // jumps to that (or the budget's end) and samples once.
        let end = self.cycles() + budget_ns.div_ceil(NS_PER_CYCLE) + 1;
        while self.cycles() < end {
            let fired = u32::from(self.irq_now()) & mask;
            if fired != 0 {
                // The interrupt message may not pass the writes before it either.
                let ahead = self.host_port.beats_in_flight();
                self.run(cycles(self.timing().mmio.irq_ns))?;
                self.host_port.land_first(ahead, &mut self.host_mem);
                return Ok(fired);
            }
            // At a fixed point the lines cannot change either: one probe cycle, then a
            // skip to the next input change, then the lines are sampled again.
            self.step_towards(end)?;
            self.host_port.land(self.cycles(), &mut self.host_mem);
        }
        Ok(0)
    }
}

impl From<SimError> for IoError {
    fn from(e: SimError) -> Self {
        match e {
            SimError::CsrError { kind, offset, resp } => {
                IoError::Csr { kind, offset, reason: format!("AXI response {resp:#04b}") }
            }
            SimError::CsrTimeout { kind, offset, cycles } => {
                IoError::Csr { kind, offset, reason: format!("no response within {cycles} cycles") }
            }
            SimError::CsrOutOfRange { offset, size } => IoError::CsrOutOfRange { offset, size },
            other => IoError::Device(other.to_string()),
        }
    }
}

impl DeviceIo for SimDevice {
    fn name(&self) -> String {
        "rtl".into()
    }

    fn read32(&mut self, offset: u32) -> Result<u32, IoError> {
        self.transport.csr_reads += 1;
        self.host_enters()?;
        let v = self.mmio_read(offset)?;
        self.host_leaves();
        Ok(v)
    }

    fn write32(&mut self, offset: u32, value: u32) -> Result<(), IoError> {
        self.transport.csr_writes += 1;
        self.host_enters()?;
        self.wait_write_slot()?;
        let flight = cycles(self.timing().mmio.write_ns);
        self.post_write32(offset, value, flight)?;
        self.host_leaves();
        Ok(())
    }

    unsafe fn dma_map_raw(&mut self, host: *mut u8, len: usize) -> Result<u64, IoError> {
        // SAFETY: the caller's contract (DeviceIo::dma_map_raw) is HostMap::dma_map's.
        unsafe { self.host_mem.map.dma_map(&mut self.iova, host, len) }
    }

    fn dma_keep(&mut self, iova: u64, owner: npu::DmaBuffer) {
        self.owners.keep(iova, owner);
    }

    fn dma_unmap(&mut self, iova: u64) -> Result<(), IoError> {
        self.host_mem.map.dma_unmap(&mut self.iova, &mut self.owners, iova)
    }

    fn wait_irq(&mut self, mask: u32, budget_ns: u64) -> Result<u32, IoError> {
        self.transport.irq_waits += 1;
        self.host_enters()?;
        let fired = self.irq_wait(mask, budget_ns)?;
        self.host_leaves();
        Ok(fired)
    }

    fn wait_host(&mut self, budget_ns: u64, ready: &mut dyn FnMut() -> bool) -> Result<bool, IoError> {
        self.transport.host_waits += 1;
        self.host_enters()?;
        let end = self.cycles() + cycles(budget_ns);
        let seen = self.run_until_host_sees(end, ready)?;
        self.host_leaves();
        Ok(seen)
    }

    fn now_ns(&self) -> u64 {
        self.cycles() * NS_PER_CYCLE
    }

    fn advance(&mut self, ns: u64) -> Result<(), IoError> {
        self.host_enters()?;
        self.run(cycles(ns))?;
        self.host_leaves();
        Ok(())
    }

    fn clock(&self) -> Clock {
        Clock::Simulated { hz: NOMINAL_HZ }
    }

    fn reset(&mut self) -> Result<(), IoError> {
        SimDevice::reset(self);
        self.host_left = None;
        Ok(())
    }
}
