//! Device memory seen from outside the device, for tests, set-up and dumps.
//!
//! The simulated devices (the Verilated RTL in `sim-bridge`, the reference model in
//! `npu-refmodel`) keep device memory in the host process, so a test can read and write
//! it without spending device time — to build page tables before a run, to check
//! results after it, and to compare two devices byte for byte. Real boards have no such
//! window (BAR0 holds only CSRs); their software writes device memory with the DMA
//! engine.

use crate::sv39::TableMemory;

/// Backdoor access to a device's memory (no device time passes).
pub trait DevMemBackdoor {
    /// The device's error for an access outside device memory.
    type Error: std::fmt::Debug + std::fmt::Display;
    /// Bytes of device memory.
    fn dev_mem_size(&self) -> u64;
    /// Reads `out.len()` bytes at device-physical `addr`.
    fn backdoor_read(&self, addr: u64, out: &mut [u8]) -> Result<(), Self::Error>;
    /// Writes `data` at device-physical `addr`.
    fn backdoor_write(&mut self, addr: u64, data: &[u8]) -> Result<(), Self::Error>;
}

/// Page tables in a device's memory, through the backdoor (for [`crate::sv39`]).
pub struct BackdoorTables<'a, D: DevMemBackdoor>(pub &'a mut D);

impl<D: DevMemBackdoor> TableMemory for BackdoorTables<'_, D> {
    type Error = D::Error;
    fn read_pte(&self, pa: u64) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.0.backdoor_read(pa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn write_pte(&mut self, pa: u64, pte: u64) -> Result<(), Self::Error> {
        self.0.backdoor_write(pa, &pte.to_le_bytes())
    }
}
