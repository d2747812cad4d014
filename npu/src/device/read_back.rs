//! Device memory read back through the DMA engine, for checks that must not move a
//! page: a board has no backdoor into device memory (BAR0 holds only CSRs), so a test
//! that wants to see a device-resident page where it lives copies it device→host into
//! the driver's staging page. Nothing changes residency, no mapping changes; it costs
//! device time (one descriptor per 4 KiB) and takes the driver's lock.

use super::{NpuDevice, NpuError};
use crate::DeviceIo;

impl<T: DeviceIo> NpuDevice<T> {
    /// Reads `out.len()` bytes of device memory at device-physical `pa` with D2H DMA
    /// (see the module docs). The range must lie inside device memory; a lost device
    /// is not read.
    pub fn read_device_mem(&self, pa: u64, out: &mut [u8]) -> Result<(), NpuError> {
        let len = out.len() as u64;
        if pa.checked_add(len).is_none_or(|end| end > self.dev_mem) {
            return Err(NpuError::BeyondDeviceMemory { pa, len, dev_mem: self.dev_mem });
        }
        let mut g = self.lock();
        if g.lost {
            return Err(NpuError::Lost);
        }
        let bytes = g.read_device(pa, out.len()).map_err(|e| NpuError::ReadBack { pa, reason: e.to_string() })?;
        out.copy_from_slice(&bytes);
        Ok(())
    }
}
