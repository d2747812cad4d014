//! The NPU's reference model: [`ModelDevice`], an untimed, transaction-level Rust model
//! of the whole NPU — CSR block, command queue, MMU, fault queue, compute unit and DMA
//! engine — behind the same [`npu::DeviceIo`] transport as the RTL.
//!
//! It exists for differential testing against the co-simulated RTL (`sim-bridge`'s
//! `SimDevice`) and for fast tests of the layers above — never as a substitute where the RTL is claimed. Same register
//! semantics (decode, masks, SLVERR on holes, `wo` pulses, error-injection counters,
//! INT_STATUS/MASK/ACK level semantics, soft reset), same results (memory contents,
//! records, ring indices, HALTED/RESUME, ERR_INFO, interrupt causes), but no timing:
//! work runs when device time is let pass ([`DeviceIo::advance`],
//! [`DeviceIo::wait_irq`]), in zero time, so a doorbell write alone changes nothing
//! until then. Each unit lives in its own module, whose documentation gives its rules
//! and the conventions it picks where the RTL's outcome is timing-dependent: `cmdq`
//! (§8), `mmu` (§6, Sv39 walk and A/D update), `fq` (§7), `cu` (§10, groups, slots,
//! replays), `dma` (§9). Device errors of every unit latch ERR_INFO through one path
//! (§12.3; INT_STATUS.ERROR for the first).
//!
//! **Time.** `now_ns` is a virtual clock that only `advance` and `wait_irq` move
//! (`wait_irq` returns at once, without moving the clock, when a vector is already
//! pending after running the work; otherwise it moves the clock by the whole budget).
//! Same calls, same answers.
//!
//! **Approximate.**
//! - No TLB: every compute-unit request walks the page tables. Results differ from the
//!   RTL's only for software that edits PTEs without the invalidation §6.3 requires;
//!   but ERRINJ_PTW events are consumed by every walk here, by TLB misses only in the
//!   RTL, and INVAL has nothing to act on.
//! - Timing-dependent outcomes follow one deterministic schedule (`cu`): which groups
//!   complete after a kernel's first failure (DONE), and the order of the fault records
//!   of slots that stall together (slot order here; records of later stalls follow in
//!   stall order; compare batches as sets, sorted by REQID with SEQ renumbered). A
//!   REPLAY reaches only a stall whose record has been written.
//! - Performance counters: CYCLES is virtual time at the nominal clock;
//!   DMAc_BYTES and HOST_/DEV_ RD/WR_BYTES (whole beats of data, descriptor fetches and
//!   completions) equal the RTL's while descriptors complete OK (the differential test
//!   checks it) and differ after failures, where the RTL's in-flight work depends on
//!   timing; device-port bytes also count a walk per request (no TLB); CMDS, REPLAYS,
//!   FAULTS and PTW_WALKS (one per walk) count events; CSR_ACCESSES counts every
//!   access; TLB_HITS/MISSES, PTW_CYCLES, KERNEL_BUSY/STALL and the DMAc BUSY/STALL
//!   counters stay 0 (they measure timing or the TLB).
//! - Where the RTL's outcome of a DMA failure depends on timing (BYTES and the partly
//!   written destination of a descriptor that fails after some of its writes, data of
//!   discarded later descriptors), the model follows the convention documented in its
//!   `dma` module.
//!
//! **Checked against the RTL.** sim-bridge's differential tests (`tests/model_diff.rs`
//! for the CSR block and the DMA engine, `tests/mmu_diff.rs` for the MMU, command queue,
//! fault queue and compute unit, `tests/cmd_fuzz.rs` for the command queue) run the same
//! driver calls on both devices and require the same results within the approximations
//! above — among them RESET.SOFT clearing INT_STATUS, a write error reported in a B
//! response discarding the later descriptors, and RESUME taking effect after the
//! error completion is visible.

mod cmdq;
mod csr;
mod cu;
mod dma;
mod fq;
mod mem;
mod mmu;

use cmdq::CmdQueue;
use cu::ComputeUnit;
use dma::{CHANNELS, Channel};
use fq::FaultQueue;
use mem::DevMem;
use npu::backdoor::DevMemBackdoor;
use npu::host_map::HostMap;
use npu::{Clock, DeviceIo, IoError, NOMINAL_HZ, regs};

const NS_PER_CYCLE: u64 = 1_000_000_000 / NOMINAL_HZ;
/// Bytes of one data beat of the memory ports.
const BEAT: u64 = 1 << csr::DATA_BYTES_LOG2;

/// Errors of the model's backdoor accesses.
#[derive(Debug, thiserror::Error)]
pub enum RefModelError {
    /// A backdoor access fell outside device memory.
    #[error("device memory access [{addr:#x}, +{len:#x}) is outside the {size:#x}-byte device memory")]
    DeviceMemoryRange {
        /// Start.
        addr: u64,
        /// Length.
        len: usize,
        /// Device memory size.
        size: u64,
    },
}

/// How to build a model device.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// Bytes of device memory (a multiple of 1 MiB; the RTL default is 256 MiB).
    pub dev_mem_bytes: u64,
    /// Compute-unit request slots, 1..=255 (RTL parameter `CuInflight`, reported in
    /// CAPS1.CU_INFLIGHT; the RTL default is 4).
    pub cu_inflight: u32,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self { dev_mem_bytes: 256 << 20, cu_inflight: 4 }
    }
}

/// The NPU as an untimed Rust model (see the module documentation).
pub struct ModelDevice {
    cfg: ModelConfig,
    rw: csr::RwStore,
    host: HostMap,
    dev: DevMem,
    iova: npu::IovaAllocator,
    chans: [Channel; CHANNELS],
    cmdq: CmdQueue,
    fq: FaultQueue,
    cu: ComputeUnit,
    /// Remaining events of ERRINJ_HOST_RD .. ERRINJ_POISON.
    errinj: [u32; 6],
    int_status: u32,
    err_info: u32,
    perf: [u64; regs::PERF_LO.count as usize],
    perf_hi_shadow: u32,
    /// Virtual time of the last reset or PERF_CTRL.CLEAR (for the CYCLES counter).
    perf_epoch_ns: u64,
    now_ns: u64,
    /// Buffers mapped by `dma_map`, kept alive until their unmap.
    owners: npu::DmaOwners,
}

impl ModelDevice {
    /// A device after reset.
    ///
    /// # Panics
    /// If `cfg.cu_inflight` is outside 1..=255 (an RTL elaboration error).
    pub fn new(cfg: ModelConfig) -> Self {
        assert!((1..=255).contains(&cfg.cu_inflight), "CuInflight {} is outside 1..=255", cfg.cu_inflight);
        Self {
            rw: csr::RwStore::new(),
            host: HostMap::default(),
            dev: DevMem::new(cfg.dev_mem_bytes),
            iova: npu::IovaAllocator::npu_default(),
            chans: Default::default(),
            cmdq: CmdQueue::default(),
            fq: FaultQueue::default(),
            cu: ComputeUnit::new(cfg.cu_inflight),
            errinj: [0; 6],
            int_status: 0,
            err_info: 0,
            perf: [0; regs::PERF_LO.count as usize],
            perf_hi_shadow: 0,
            perf_epoch_ns: 0,
            now_ns: 0,
            cfg,
            owners: npu::DmaOwners::default(),
        }
    }

    /// Level of the interrupt vectors (bit i = vector i): INT_STATUS & INT_MASK.
    pub fn irq_lines(&self) -> u32 {
        self.int_status & self.rw.get(regs::INT_MASK, 0)
    }

    /// Executes all work the device can do now: every unit in turn until none can make
    /// progress (the order only matters where the RTL's outcome is timing-dependent).
    fn run(&mut self) {
        loop {
            let mut progress = self.run_dma();
            progress |= self.run_cmdq();
            progress |= self.run_cu();
            progress |= self.run_fq();
            if !progress {
                return;
            }
        }
    }

    /// RESET.SOFT (spec §13), completed at once: transfers, commands, stalled requests,
    /// fault records not yet written and the current kernel forgotten, ring indices and
    /// SEQ 0, HALTED, INT_STATUS, ERR_INFO and the error-injection counters cleared;
    /// CTRL, masks, bases, sizes, roots, counters and device memory kept.
    fn soft_reset(&mut self) {
        self.dma_soft_reset();
        self.cmdq = self.cmdq.after_soft_reset();
        self.fq = FaultQueue::default();
        self.cu = ComputeUnit::new(self.cfg.cu_inflight);
        self.rw.soft_reset();
        self.errinj = [0; 6];
        self.int_status = 0;
        self.err_info = 0;
    }

    /// A device error of `unit` (spec §12.3): ERR_INFO latches {code, unit} if it is
    /// empty, and INT_STATUS.ERROR is set for the first one (the RTL raises it on the
    /// rising edge of "any unit in error", and every unit error also fills ERR_INFO).
    /// The caller stops its unit.
    fn device_error(&mut self, unit: u32, code: u64) {
        if self.err_info == 0 {
            self.err_info = regs::err_info::UNIT.put32(0, unit) | regs::err_info::CODE.put32(0, code as u32);
            self.int_status |= 1 << regs::int_cause::ERROR;
        }
    }

    /// A host ring (spec §4) as (base IOVA, index mask), or `None` if its SIZE_LOG2 is
    /// outside 1..16 (the ring then counts as disabled).
    fn ring(&self, base_lo: npu::Reg, base_hi: npu::Reg, size_log2: npu::Reg) -> Option<(u64, u16)> {
        let log2 = self.rw.get(size_log2, 0);
        (1..=16).contains(&log2).then(|| (self.rw.get64(base_lo, base_hi, 0), ((1u32 << log2) - 1) as u16))
    }

    fn ctrl(&self, enable: npu::Field) -> bool {
        enable.get32(self.rw.get(regs::CTRL, 0)) == 1
    }

    /// Reads a ring entry or record of up to one beat at `addr` over the host port (one
    /// beat of traffic; the IOMMU checks the whole beat). False on an error response.
    fn host_record_read(&mut self, addr: u64, out: &mut [u8]) -> bool {
        self.perf_port(true, true, BEAT);
        self.host.reachable(addr & !(BEAT - 1), BEAT as usize) && self.host.read(addr, out).is_ok()
    }

    /// Writes a record of up to one beat at `addr` over the host port (one beat with byte
    /// strobes). False on an error response.
    fn host_record_write(&mut self, addr: u64, rec: &[u8]) -> bool {
        self.perf_port(false, true, BEAT);
        self.host.reachable(addr & !(BEAT - 1), BEAT as usize) && self.host.write(addr, rec).is_ok()
    }

    fn perf_count(&mut self, ctr: u64) {
        self.perf[ctr as usize] += 1;
    }

    fn perf_csr_access(&mut self) {
        self.perf[regs::perf_ctr::CSR_ACCESSES as usize] += 1;
    }

    fn perf_value(&self, i: u32) -> u64 {
        if u64::from(i) == regs::perf_ctr::CYCLES {
            (self.now_ns - self.perf_epoch_ns) / NS_PER_CYCLE
        } else {
            self.perf[i as usize]
        }
    }

    fn perf_clear(&mut self) {
        self.perf = [0; regs::PERF_LO.count as usize];
        self.perf_epoch_ns = self.now_ns;
    }

    /// Port traffic of `bytes` (whole beats): read or write, host or device port.
    fn perf_port(&mut self, read: bool, host: bool, bytes: u64) {
        use regs::perf_ctr as p;
        let i = match (read, host) {
            (true, true) => p::HOST_RD_BYTES,
            (false, true) => p::HOST_WR_BYTES,
            (true, false) => p::DEV_RD_BYTES,
            (false, false) => p::DEV_WR_BYTES,
        };
        self.perf[i as usize] += bytes;
    }

    fn perf_dma_bytes(&mut self, ch: usize, bytes: u64) {
        let i = regs::perf_ctr::DMA0_BYTES + 3 * ch as u64;
        self.perf[i as usize] += bytes;
    }
}

impl Default for ModelDevice {
    fn default() -> Self {
        Self::new(ModelConfig::default())
    }
}

fn check_offset(offset: u32) -> Result<(), IoError> {
    if offset >= regs::CSR_BYTES {
        return Err(IoError::CsrOutOfRange { offset, size: regs::CSR_BYTES });
    }
    Ok(())
}

impl DeviceIo for ModelDevice {
    fn name(&self) -> String {
        "model".into()
    }

    fn read32(&mut self, offset: u32) -> Result<u32, IoError> {
        check_offset(offset)?;
        self.csr_read(offset).map_err(|csr::SlvErr| IoError::Csr {
            kind: "read",
            offset,
            reason: "AXI response 0b10".into(),
        })
    }

    fn write32(&mut self, offset: u32, value: u32) -> Result<(), IoError> {
        check_offset(offset)?;
        self.csr_write(offset, value).map_err(|csr::SlvErr| IoError::Csr {
            kind: "write",
            offset,
            reason: "AXI response 0b10".into(),
        })
    }

    unsafe fn dma_map_raw(&mut self, host: *mut u8, len: usize) -> Result<u64, IoError> {
        // SAFETY: the caller's contract (DeviceIo::dma_map_raw) is HostMap::dma_map's.
        unsafe { self.host.dma_map(&mut self.iova, host, len) }
    }

    fn dma_keep(&mut self, iova: u64, owner: npu::DmaBuffer) {
        self.owners.keep(iova, owner);
    }

    fn dma_unmap(&mut self, iova: u64) -> Result<(), IoError> {
        self.host.dma_unmap(&mut self.iova, &mut self.owners, iova)
    }

    fn wait_irq(&mut self, mask: u32, budget_ns: u64) -> Result<u32, IoError> {
        self.run();
        let fired = self.irq_lines() & mask;
        if fired == 0 {
            self.now_ns += budget_ns.div_ceil(NS_PER_CYCLE) * NS_PER_CYCLE;
        }
        Ok(fired)
    }

    fn now_ns(&self) -> u64 {
        self.now_ns
    }

    fn advance(&mut self, ns: u64) -> Result<(), IoError> {
        self.run();
        self.now_ns += ns.div_ceil(NS_PER_CYCLE) * NS_PER_CYCLE;
        Ok(())
    }

    fn clock(&self) -> Clock {
        Clock::Simulated { hz: NOMINAL_HZ }
    }

    fn reset(&mut self) -> Result<(), IoError> {
        let host = std::mem::take(&mut self.host);
        let iova = self.iova.clone();
        let size = self.dev.size();
        let dev = std::mem::replace(&mut self.dev, DevMem::new(size));
        *self = Self { host, iova, dev, ..Self::new(self.cfg.clone()) };
        Ok(())
    }
}

/// Device memory through the backdoor (no device time passes).
impl DevMemBackdoor for ModelDevice {
    type Error = RefModelError;
    fn dev_mem_size(&self) -> u64 {
        self.dev.size()
    }
    fn backdoor_read(&self, addr: u64, out: &mut [u8]) -> Result<(), Self::Error> {
        let size = self.dev.size();
        self.dev.read(addr, out).map_err(|_| RefModelError::DeviceMemoryRange { addr, len: out.len(), size })
    }
    fn backdoor_write(&mut self, addr: u64, data: &[u8]) -> Result<(), Self::Error> {
        let size = self.dev.size();
        self.dev.write(addr, data).map_err(|_| RefModelError::DeviceMemoryRange { addr, len: data.len(), size })
    }
}

#[cfg(test)]
mod tests;
