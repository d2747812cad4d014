//! A device whose hooks do nothing: it isolates the manager's own cost (its tables and
//! its userfaultfd/madvise system calls) from any device work. The host-time
//! calibration measures the manager on it (`gmem profile host`, the `faults` bench).

use crate::mmu::{
    Asid, CopyOp, DeviceInfo, GmMmu, Hooks, MemAddr, MmuError, PageSize, Prepare, Prot, TlbFlush, VaRange,
};

/// A device of `pages` frames whose hooks succeed without doing anything: its "copies"
/// move no data, so what the manager reads back from it is meaningless.
#[derive(Debug, Clone, Copy)]
pub struct NullDevice {
    /// Device memory, in 4 KiB frames.
    pub pages: u64,
    /// Optional hooks it declares: [`Hooks::ASYNC_COPY`] makes the manager pipeline its
    /// migrations in parts (its `copy_start` copies nothing, like `copy_batch`).
    pub hooks: Hooks,
}

impl NullDevice {
    /// A device of `pages` frames declaring no optional hook.
    pub const fn new(pages: u64) -> Self {
        NullDevice { pages, hooks: Hooks::empty() }
    }
}

impl GmMmu for NullDevice {
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            name: "null".into(),
            mem_ranges: std::iter::once(0..self.pages * 4096).collect(),
            va_bits: 39,
            huge_pages: false,
            hooks: self.hooks,
        }
    }
    fn pmap_create(&self) -> Result<Asid, MmuError> {
        Ok(Asid(1))
    }
    fn pmap_destroy(&self, _: Asid) -> Result<(), MmuError> {
        Ok(())
    }
    fn pmap_enter(&self, _: Asid, _: u64, _: MemAddr, _: PageSize, _: Prot) -> Result<(), MmuError> {
        Ok(())
    }
    fn pmap_release(&self, asid: Asid, va: u64, size: PageSize) -> Result<TlbFlush, MmuError> {
        Ok(TlbFlush::new(asid, va, size.bytes()))
    }
    fn pmap_protect(&self, asid: Asid, va: u64, size: PageSize, _: Prot) -> Result<TlbFlush, MmuError> {
        Ok(TlbFlush::new(asid, va, size.bytes()))
    }
    fn tlb_invl(&self, _: Asid, _: VaRange) -> Result<(), MmuError> {
        Ok(())
    }
    fn prepare_page(&self, _: u64, _: PageSize, _: Prepare) -> Result<(), MmuError> {
        Ok(())
    }
    fn copy_batch(&self, _: &[CopyOp]) -> Result<(), MmuError> {
        Ok(())
    }
}
