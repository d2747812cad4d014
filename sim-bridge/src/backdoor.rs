//! The co-simulated device's memory through the backdoor ([`npu::backdoor`]): device
//! memory lives in this process, so tests read and write it without device time.

use npu::backdoor::DevMemBackdoor;

impl DevMemBackdoor for crate::SimDevice {
    type Error = crate::SimError;
    fn dev_mem_size(&self) -> u64 {
        self.dev_mem_bytes()
    }
    fn backdoor_read(&self, addr: u64, out: &mut [u8]) -> Result<(), Self::Error> {
        self.dev_mem_read(addr, out)
    }
    fn backdoor_write(&mut self, addr: u64, data: &[u8]) -> Result<(), Self::Error> {
        self.dev_mem_write(addr, data)
    }
}
