//! A scripted transport: registers are a map, "device writes" into host memory are done
//! by the test, time advances only when asked. It lets unit tests play a misbehaving
//! device (records the RTL would never write) against the host code, and lets
//! `gmem profile host` time the driver's own work with no device behind it.

use crate::device_io::{Clock, DeviceIo, IoError};
use crate::iova::IovaAllocator;
use std::collections::{BTreeMap, HashMap};

/// One CSR access, as the driver made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CsrOp {
    Read(u32),
    Write(u32, u32),
}

/// The fake device: no device answers, nothing is charged for an access.
pub struct FakeIo {
    pub(crate) regs: HashMap<u32, u32>,
    /// Every CSR access in program order (for protocol-order tests).
    pub(crate) log: Vec<CsrOp>,
    maps: BTreeMap<u64, (usize, usize)>,
    iova: IovaAllocator,
    now: u64,
    owners: crate::DmaOwners,
}

impl Default for FakeIo {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeIo {
    /// Registers all 0, nothing mapped, time 0.
    pub fn new() -> Self {
        Self {
            regs: HashMap::new(),
            log: Vec::new(),
            maps: BTreeMap::new(),
            iova: IovaAllocator::npu_default(),
            now: 0,
            owners: Default::default(),
        }
    }

    /// Forgets the CSR accesses logged so far (a long timing loop).
    pub fn clear_log(&mut self) {
        self.log.clear();
    }

    #[cfg(test)]
    /// Writes `data` at `iova` as the device would (through the DMA mapping).
    pub(crate) fn device_write(&self, iova: u64, data: &[u8]) {
        let (&start, &(host, len)) = self.maps.range(..=iova).next_back().expect("IOVA is mapped");
        let off = (iova - start) as usize;
        assert!(off + data.len() <= len, "device write inside the mapping");
        // SAFETY: the range lies inside a live mapping whose memory the DeviceIo contract
        // keeps valid until dma_unmap; tests never hold references into it.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), (host + off) as *mut u8, data.len()) };
    }
}

impl DeviceIo for FakeIo {
    fn name(&self) -> String {
        "fake".into()
    }
    fn read32(&mut self, offset: u32) -> Result<u32, IoError> {
        self.log.push(CsrOp::Read(offset));
        Ok(*self.regs.get(&offset).unwrap_or(&0))
    }
    fn write32(&mut self, offset: u32, value: u32) -> Result<(), IoError> {
        self.log.push(CsrOp::Write(offset, value));
        self.regs.insert(offset, value);
        Ok(())
    }
    unsafe fn dma_map_raw(&mut self, host: *mut u8, len: usize) -> Result<u64, IoError> {
        let iova = self.iova.alloc(len as u64)?;
        self.maps.insert(iova, (host as usize, len));
        Ok(iova)
    }
    fn dma_keep(&mut self, iova: u64, owner: crate::DmaBuffer) {
        self.owners.keep(iova, owner);
    }
    fn dma_unmap(&mut self, iova: u64) -> Result<(), IoError> {
        self.maps.remove(&iova).ok_or(IoError::NotMapped { iova })?;
        self.iova.free(iova)?;
        self.owners.release(iova);
        Ok(())
    }
    fn wait_irq(&mut self, _mask: u32, budget_ns: u64) -> Result<u32, IoError> {
        self.now += budget_ns;
        Ok(0)
    }
    fn now_ns(&self) -> u64 {
        self.now
    }
    fn advance(&mut self, ns: u64) -> Result<(), IoError> {
        self.now += ns;
        Ok(())
    }
    fn clock(&self) -> Clock {
        Clock::Wall
    }
    fn reset(&mut self) -> Result<(), IoError> {
        self.regs.clear();
        Ok(())
    }
}
