//! `DeviceIo` for the co-simulated NPU: the driver's transport contract over the RTL.

use crate::sim_device::{SimDevice, SimError};
use crate::timing::NOMINAL_HZ;
use npu::{Clock, DeviceIo, IoError};

const NS_PER_CYCLE: u64 = 1_000_000_000 / NOMINAL_HZ;

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
        Ok(self.csr_read32(offset)?)
    }

    fn write32(&mut self, offset: u32, value: u32) -> Result<(), IoError> {
        Ok(self.csr_write32(offset, value)?)
    }

    unsafe fn dma_map_raw(&mut self, host: *mut u8, len: usize) -> Result<u64, IoError> {
        let page = npu::IOVA_PAGE as usize;
        if len == 0 || len % page != 0 || (host as usize) % page != 0 {
            return Err(IoError::BadHostRange {
                addr: host as usize,
                len,
                reason: "must be a non-empty, page-aligned range",
            });
        }
        let iova = self.iova.alloc(len as u64)?;
        // SAFETY: the caller's contract (DeviceIo::dma_map_raw) keeps the range valid
        // until dma_unmap, which removes it from the map first.
        unsafe { self.host_mem.map(iova, host, len) };
        Ok(iova)
    }

    fn dma_keep(&mut self, iova: u64, owner: npu::DmaBuffer) {
        self.owners.keep(iova, owner);
    }

    fn dma_unmap(&mut self, iova: u64) -> Result<(), IoError> {
        if !self.host_mem.unmap(iova) {
            return Err(IoError::NotMapped { iova });
        }
        self.iova.free(iova)?;
        self.owners.release(iova);
        Ok(())
    }

    fn wait_irq(&mut self, mask: u32, budget_ns: u64) -> Result<u32, IoError> {
        let budget = budget_ns.div_ceil(NS_PER_CYCLE);
        for _ in 0..=budget {
            let fired = u32::from(self.irq_now()) & mask;
            if fired != 0 {
                return Ok(fired);
            }
            self.tick();
        }
        Ok(0)
    }

    fn now_ns(&self) -> u64 {
        self.cycles() * NS_PER_CYCLE
    }

    fn advance(&mut self, ns: u64) -> Result<(), IoError> {
        self.step(ns.div_ceil(NS_PER_CYCLE));
        Ok(())
    }

    fn clock(&self) -> Clock {
        Clock::Simulated { hz: NOMINAL_HZ }
    }

    fn reset(&mut self) -> Result<(), IoError> {
        SimDevice::reset(self);
        Ok(())
    }
}
