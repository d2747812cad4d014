//! `NpuDevice`: the NPU as a GMEM device — [`GmMmu`] over any [`DeviceIo`] transport.
//!
//! The same driver runs on the Verilated RTL, the reference model and a board:
//! - **page tables** are Sv39 tables in device memory, one root per ASID; the driver
//!   edits a shadow copy and writes the changed PTEs with the DMA engine (the host has
//!   no window onto device memory), zero-filling new table pages first;
//! - **TLB invalidation** goes through the command queue (INVAL per range, one FENCE
//!   per call, so a coalesced batch costs one round trip);
//! - **migration, eviction, swap and `prepare_page`** are batches of DMA descriptors,
//!   host→device on channel 0, device→host on channel 1, device→device on channel 2,
//!   all channels at once; zero-fill uses the engine's ZERO_FILL;
//! - **device faults**: [`NpuDevice::service_faults`] reads the fault-queue batch,
//!   hands it to [`Gmem::dev_fault`] and answers each record with REPLAY RETRY or ABORT;
//! - **kernels**: [`NpuDevice::launch`] submits a kernel and services its faults until
//!   its completion arrives;
//! - **recovery**: [`NpuDevice::recover`] soft-resets the device and re-synchronises
//!   the queues; device memory (page tables and resident data) survives a soft reset.
//!
//! Device memory is split: the top `table_bytes` hold page tables (never handed to the
//! manager), the rest is the manager's (`DeviceInfo::mem_ranges`).

mod copies;
mod early;
mod holds;
mod op_error;
mod pte_flush;
mod read_back;
mod shadow;
mod wake_mask;

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

use gmem_host::{
    Access as GmAccess, Asid, CopyOp, CopyTicket, DeviceFault, DeviceId, DeviceInfo, GmMmu, Gmem, Hooks, HostRegion,
    HostRegionId, MemAddr, MmuError, PageSize, Prepare, Prot, TlbFlush, VaRange,
};

use crate::cmdq::{CmdQueue, CmdqError, Command, InvalScope};
use crate::dma::{Dma, DmaAddr, DmaDesc, DmaError, DmaStatus};
use crate::fault::{FaultError, FaultQueue, FaultRecord};
use crate::host_time::{HostCosts, HostTime};
use crate::kernel::{Kernel, KernelCompletion, KernelError, KernelQueue, KernelStatus};
use crate::ring::QUIET_NS;
use crate::sv39::{self, HUGE, PAGE, Pte, TableBuilder};
use crate::{DeviceIo, DmaBuffer, IoError, regs};
use holds::{HoldError, HostHolds};
use op_error::OpError;
use shadow::{Changes, Shadow};
use wake_mask::{WAKE, WakeMask};

/// Device-physical base of the host window (PTE targets in host memory).
const HOST_WINDOW: u64 = 1 << 40;
/// ASIDs the v1 device has (PTROOT elements); ASID 0 is left unused.
const ASIDS: usize = 16;
/// PTE writes staged per DMA batch (one 4 KiB staging page of 8-byte PTEs).
const STAGED_PTES: usize = 512;
/// Largest DMA descriptor (16 MiB, docs/device.md 9.2).
const MAX_DESC: u64 = 1 << 24;

/// Descriptors a channel takes per round of a DMA run (half its ring).
const DMA_ROUND: usize = 128;

/// Errors of the NPU driver outside the `GmMmu` hooks.
#[derive(Debug, thiserror::Error)]
pub enum NpuError {
    /// The transport failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The identification register does not name an NPU.
    #[error("device ID {found:#010x} is not an NPU (expected {expected:#010x})")]
    NotAnNpu {
        /// ID read.
        found: u32,
        /// ID expected.
        expected: u32,
    },
    /// The device has less memory than the page-table region needs.
    #[error("device memory {dev_mem:#x} is too small for a {tables:#x}-byte page-table region")]
    TooSmall {
        /// Device memory bytes.
        dev_mem: u64,
        /// Page-table region bytes.
        tables: u64,
    },
    /// A queue driver failed.
    #[error("command queue: {0}")]
    Cmdq(#[from] CmdqError),
    /// A queue driver failed.
    #[error("fault queue: {0}")]
    Fault(#[from] FaultError),
    /// A queue driver failed.
    #[error("kernel queue: {0}")]
    Kernel(#[from] KernelError),
    /// A queue driver failed.
    #[error("DMA: {0}")]
    Dma(#[from] DmaError),
    /// A buffer could not be allocated.
    #[error("host buffer: {0}")]
    Buffer(#[from] crate::DmaBufError),
    /// A kernel ended because a fault was aborted; `reason` is the manager's verdict.
    #[error("kernel aborted at VA {va:#x}: {reason}")]
    KernelAborted {
        /// Faulting VA.
        va: u64,
        /// Why the manager refused the access.
        reason: String,
    },
    /// A kernel's data access failed after translation.
    #[error("kernel memory error at VA {va:#x}")]
    KernelMemError {
        /// VA of the failed access.
        va: u64,
    },
    /// A kernel descriptor was refused by the device.
    #[error("kernel descriptor refused by the device (BAD_DESC)")]
    KernelBadDesc,
    /// Writing page tables to the device failed.
    #[error("page-table write failed: {reason}")]
    PageTables {
        /// Why.
        reason: String,
    },
    /// No completion within the budget (device time).
    #[error("no kernel completion within {budget_ns} ns of device time")]
    Timeout {
        /// The budget.
        budget_ns: u64,
    },
    /// A soft reset (another thread's [`NpuDevice::recover`]) forgot the kernel before it
    /// completed; launch it again.
    #[error("the kernel was forgotten by a soft reset before it completed")]
    KernelForgotten,
    /// The device was declared lost ([`NpuDevice::mark_lost`]): its reset failed and
    /// nothing is sent to it any more.
    #[error("the NPU is lost: it stopped answering and could not be reset")]
    Lost,
    /// [`NpuDevice::read_device_mem`] was asked for bytes outside device memory.
    #[error("device read of {len:#x} bytes at {pa:#x} is outside device memory ({dev_mem:#x} bytes)")]
    BeyondDeviceMemory {
        /// Device-physical start.
        pa: u64,
        /// Bytes asked for.
        len: u64,
        /// Bytes of device memory.
        dev_mem: u64,
    },
    /// A read of device memory through the DMA engine failed.
    #[error("reading device memory at {pa:#x} by DMA failed: {reason}")]
    ReadBack {
        /// Device-physical address of the read.
        pa: u64,
        /// Why.
        reason: String,
    },
}

/// How to set up an [`NpuDevice`].
#[derive(Clone, Debug)]
pub struct NpuConfig {
    /// Name in events and errors.
    pub name: String,
    /// Bytes at the top of device memory reserved for page tables.
    pub table_bytes: u64,
    /// Bytes of device memory handed to the manager (from 0); `None` = all below the
    /// page-table region.
    pub managed_bytes: Option<u64>,
    /// Device-time budget of one wait (a DMA batch, a FENCE, a kernel).
    pub budget_ns: u64,
    /// Host software time in device time (see [`crate::host_time`]): charged per fault
    /// batch and fault, CPU fault, hint and launch when the clock is simulated. In
    /// co-simulation it also guarantees progress when the manager answers a batch
    /// without changing anything (throttling): the device cannot re-fault in zero time.
    pub host_time: HostTime,
    /// How long the driver waits for more fault records after the first one of a batch
    /// (UVM gathers a batch the same way): the compute unit's other requests usually
    /// fault within a few walks of each other, and a record that arrives after the batch
    /// was answered costs a whole second round trip (its page is already mapped). The
    /// wait ends early once every in-flight request of the CU (CAPS1.CU_INFLIGHT) has
    /// reported, or after one quiet step of [`FAULT_COALESCE_STEP_NS`]. The MMU writes
    /// one record per host write response (40 ns after the write on the gen3x16 model,
    /// which acknowledges posted writes at once), so the records of one burst of faults
    /// land within a step: three steps gave the same batches on the stream, gather and
    /// oversubscribe workloads and cost an isolated fault 0.5 µs more.
    pub fault_coalesce_ns: u64,
    /// Push small submissions through BAR0 (DMA_PUSH, CMDQ_PUSH: a DMA channel's first
    /// descriptor, a command submission of up to four) so the device starts them without
    /// fetching them from its ring. Off by default: a register BAR is mapped uncached and
    /// every 32-bit store of a push waits for the one before (`MmioCost::write_gap_ns`,
    /// 150 ns on the PCIe presets), so a push costs the host more than the device's fetch
    /// saves. It pays on a host whose stores to the windows are cheap (docs/device.md 8).
    pub push: bool,
}

impl Default for NpuConfig {
    fn default() -> Self {
        Self {
            name: "npu0".into(),
            table_bytes: 8 << 20,
            managed_bytes: None,
            budget_ns: 1_000_000_000,
            host_time: HostTime::default(),
            fault_coalesce_ns: 2_000,
            push: false,
        }
    }
}

/// Counters of the driver's own work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NpuStats {
    /// Fault records read.
    pub faults: u64,
    /// Fault batches handed to the manager.
    pub batches: u64,
    /// Faults the manager aborted.
    pub aborted: u64,
    /// DMA bytes moved by `copy_batch` and `prepare_page`.
    pub dma_bytes: u64,
    /// PTEs written.
    pub pte_writes: u64,
    /// Of [`NpuStats::pte_writes`], those written by PTE_WRITE commands.
    pub pte_commands: u64,
    /// DMA runs (doorbell to last completion) that zeroed table pages or wrote PTEs.
    pub table_dma_runs: u64,
    /// INVAL commands sent.
    pub invalidations: u64,
    /// Kernels completed.
    pub kernels: u64,
    /// Soft resets (hang or error recovery).
    pub recoveries: u64,
    /// Waits for a fault or a kernel completion that polled host memory for
    /// [`QUIET_NS`] in vain and then slept on the interrupt.
    pub irq_waits: u64,
    /// Where fault service spends device time (ns), from the moment a batch's first record
    /// is read to the moment its commands are submitted (`fault_service_ns`); of that:
    /// gathering the rest of the batch, DMA runs, and modelled host time.
    pub fault_service_ns: u64,
    /// Of [`NpuStats::fault_service_ns`]: waiting for more records of the batch.
    pub fault_gather_ns: u64,
    /// Of [`NpuStats::fault_service_ns`]: DMA runs, doorbell to last completion.
    pub fault_dma_ns: u64,
    /// Of [`NpuStats::fault_service_ns`]: modelled host time charged.
    pub fault_host_ns: u64,
    /// Faults answered before their batch ended, while a later part of its migration
    /// still copied ([`gmem_host::GmMmu::faults_resolved`]).
    pub early_replays: u64,
}

struct Inner<T: DeviceIo> {
    io: T,
    cmdq: CmdQueue,
    fq: FaultQueue,
    kq: KernelQueue,
    dma: Dma,
    shadow: Shadow,
    roots: [Option<u64>; ASIDS],
    hosts: HashMap<HostRegionId, (u64, u64)>,
    /// Host pages mapped for remote PTEs and copies on a pinning transport (holds.rs).
    holds: HostHolds,
    staging: DmaBuffer,
    staging_iova: u64,
    /// Table edits not yet written to the device (see [`Inner::flush_ptes`]).
    pending: Changes,
    /// PTEs sent as PTE_WRITE commands since the last completed FENCE (pte_flush.rs).
    unfenced_ptes: std::collections::BTreeMap<u64, u64>,
    stats: NpuStats,
    /// The thread serving a fault batch: its DMA and host time count in the stats (not
    /// another thread's, such as the manager's CPU-fault handler, meanwhile).
    serving: Option<std::thread::ThreadId>,
    /// Why the manager aborted the last faults, by VA page (for kernel errors).
    aborts: HashMap<u64, String>,
    /// [`NpuConfig::budget_ns`], for the waits inside hooks.
    budget_ns: u64,
    /// Declared lost ([`NpuDevice::mark_lost`]): kernels are refused.
    lost: bool,
    /// INT_MASK: FAULT and KERNEL unmasked only while the driver sleeps on them.
    wake_mask: WakeMask,
    /// The copy `GmMmu::copy_start` started, and the results of those that ended.
    copies: copies::Copies,
    /// The fault batch being served, for early REPLAYs (early.rs).
    batch: Option<early::Batch>,
    /// Set while table edits are flushed beside a copy in flight (early.rs): every table
    /// DMA runs on this channel, which the copy does not use, without waiting for it.
    table_channel: Option<usize>,
    /// Soft resets tried, successful or not (early.rs; a launch whose kernel a reset
    /// forgot).
    reset_attempts: u64,
    /// Launches so far: each launch's number names its kernel until it is claimed.
    launches: u64,
    /// The launch number of each kernel in the KQ, by ring index (indices are reused
    /// as soon as a completion is collected, maybe before its launcher claims it).
    launched: HashMap<u16, u64>,
    /// Kernel completions collected but not yet claimed by their launcher, by launch
    /// number: launches from several threads each wait for their own, also across
    /// another thread's reset.
    finished: HashMap<u64, KernelCompletion>,
    /// Threads serving a fault batch outside the lock (in `Gmem::dev_fault`).
    in_service: usize,
}

/// Polling step while a fault batch is gathered (see [`NpuConfig::fault_coalesce_ns`]).
pub const FAULT_COALESCE_STEP_NS: u64 = 250;

/// Longest sleep on the interrupt before the driver polls again, ns.
const IRQ_WAIT_NS: u64 = 1_000_000;

/// The NPU as a GMEM device (see the module docs).
pub struct NpuDevice<T: DeviceIo> {
    cfg: NpuConfig,
    dev_mem: u64,
    table_base: u64,
    cu_inflight: usize,
    inner: Mutex<Inner<T>>,
    /// Signalled when a thread ends serving a fault batch (launchers wait on it).
    served: Condvar,
}

/// Ends a fault service that unwinds out of `Gmem::dev_fault` (a panic), so launchers
/// waiting for it are not left waiting for good; forgotten on the normal path, which
/// ends the service under the lock it answers the batch with.
struct InService<'a, T: DeviceIo> {
    dev: &'a NpuDevice<T>,
}

impl<T: DeviceIo> Drop for InService<'_, T> {
    fn drop(&mut self) {
        self.dev.lock().in_service -= 1;
        self.dev.served.notify_all();
    }
}

fn mmu_err(hook: &'static str) -> impl Fn(OpError) -> MmuError {
    move |e| MmuError::Device { hook, reason: e.to_string() }
}

/// A failed page-table flush as the driver reports it.
fn tables_err(e: OpError) -> NpuError {
    NpuError::PageTables { reason: e.to_string() }
}

/// The error of a fenced command batch run by `hook`: a fence that never completed is
/// the device timing out; anything else (transport, device error) is a device failure.
fn fence_err(hook: &'static str) -> impl Fn(CmdqError) -> MmuError {
    move |e| match e {
        CmdqError::FenceTimeout { .. } => MmuError::Timeout { hook },
        e => MmuError::Device { hook, reason: e.to_string() },
    }
}

/// `descs` on the channels their directions select: host→device 0, device→host 1,
/// device→device 2.
fn per_channel(descs: &[(DmaDesc, usize)]) -> [Vec<DmaDesc>; 3] {
    let mut per: [Vec<DmaDesc>; 3] = Default::default();
    for &(d, _) in descs {
        let ch = match (d.src, d.dst) {
            (DmaAddr::Host(_), DmaAddr::Device(_)) => 0,
            (DmaAddr::Device(_), DmaAddr::Device(_)) => 2,
            _ => 1,
        };
        per[ch].push(d);
    }
    per
}

/// A host-page hold that failed: out of IOMMU mappings, or the transport refused.
fn hold_err(hook: &'static str, va: u64) -> impl Fn(HoldError) -> MmuError {
    move |e| match e {
        HoldError::TooMany { .. } => MmuError::NoResources { what: "IOMMU mappings for host pages" },
        e => {
            let why = std::error::Error::source(&e).map(|s| format!(": {s}")).unwrap_or_default();
            MmuError::Device { hook, reason: format!("host pages at VA {va:#x}: {e}{why}") }
        }
    }
}

impl<T: DeviceIo> NpuDevice<T> {
    /// Identifies the device, sets up every queue and enables the MMU.
    pub fn open(mut io: T, cfg: NpuConfig) -> Result<Self, NpuError> {
        let id = io.read32(regs::ID.offset)?;
        if id != regs::ID.reset {
            return Err(NpuError::NotAnNpu { found: id, expected: regs::ID.reset });
        }
        let caps1 = io.read32(regs::CAPS1.offset)?;
        let dev_mem = u64::from(regs::caps1::DEV_MEM_MIB.get32(caps1)) << 20;
        let cu_inflight = regs::caps1::CU_INFLIGHT.get32(caps1).max(1) as usize;
        if dev_mem <= cfg.table_bytes {
            return Err(NpuError::TooSmall { dev_mem, tables: cfg.table_bytes });
        }
        let table_base = dev_mem - cfg.table_bytes;
        let mut dma = Dma::init(&mut io, 8)?;
        dma.set_push(cfg.push);
        let mut cmdq = CmdQueue::init(&mut io, 8)?;
        cmdq.set_push(cfg.push);
        let fq = FaultQueue::init(&mut io, 9)?;
        let kq = KernelQueue::init(&mut io, 4)?;
        crate::device_io::set_ctrl_bit(&mut io, regs::ctrl::MMU_EN, true)?;
        // Faults and kernel completions are polled in host memory; their interrupts are
        // unmasked only while the driver sleeps on them (Inner::wait_fault_or_kernel).
        let polling = io.read32(regs::INT_MASK.offset)?;
        let wake_mask = WakeMask::init(&mut io, polling)?;
        let staging = DmaBuffer::new(STAGED_PTES * 8)?;
        let staging_iova = io.dma_map(&staging)?;
        let inner = Inner {
            io,
            cmdq,
            fq,
            kq,
            dma,
            shadow: Shadow::new(table_base, cfg.table_bytes),
            roots: [None; ASIDS],
            hosts: HashMap::new(),
            holds: HostHolds::default(),
            staging,
            staging_iova,
            pending: Changes::default(),
            unfenced_ptes: Default::default(),
            stats: NpuStats::default(),
            serving: None,
            aborts: HashMap::new(),
            budget_ns: cfg.budget_ns,
            lost: false,
            wake_mask,
            copies: Default::default(),
            batch: None,
            table_channel: None,
            reset_attempts: 0,
            launches: 0,
            launched: HashMap::new(),
            finished: HashMap::new(),
            in_service: 0,
        };
        Ok(Self { cfg, dev_mem, table_base, cu_inflight, inner: Mutex::new(inner), served: Condvar::new() })
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // A panic while holding the lock leaves the device in an unknown state; the
        // data is still the driver's best knowledge, so keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` with the transport (for counters, waveforms, backdoors in tests).
    pub fn with_io<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.lock().io)
    }

    /// The modelled host costs to charge on `io`: `None` in measured mode or on a
    /// transport whose clock is the wall clock (a board: the time really passes).
    fn modelled_host_costs(&self, io: &T) -> Option<HostCosts> {
        match (self.cfg.host_time, io.clock()) {
            (HostTime::Model(c), crate::Clock::Simulated { .. }) => Some(c),
            _ => None,
        }
    }

    /// Writes the page-table edits staged so far to device memory (a launch does this
    /// itself; a profiler that times a hint calls it inside the timed window).
    pub fn flush_page_tables(&self) -> Result<(), NpuError> {
        self.lock().flush_ptes().map_err(tables_err)
    }

    /// The command ring slot the next command goes to. The engine fetches commands a
    /// 64-byte beat (four commands) at a time, so where a batch starts in its beat
    /// decides how many host reads it costs (measurements align to it).
    pub fn command_ring_tail(&self) -> u16 {
        self.lock().cmdq.tail()
    }

    /// Driver counters.
    pub fn stats(&self) -> NpuStats {
        self.lock().stats
    }

    /// Bytes of device memory.
    pub fn dev_mem_bytes(&self) -> u64 {
        self.dev_mem
    }

    /// Reads the fault-queue batch, hands it to the manager and answers every record
    /// with REPLAY (RETRY, or ABORT when the manager refused the access). Returns the
    /// number of records served.
    pub fn service_faults(&self, gm: &Gmem, id: DeviceId) -> Result<usize, NpuError> {
        let (records, seen, resets) = {
            let mut g = self.lock();
            let g = &mut *g;
            let resets = g.reset_attempts;
            let start = g.io.now_ns();
            let records = g.gather_faults(start, self.cu_inflight, self.cfg.fault_coalesce_ns)?;
            g.stats.fault_gather_ns += g.io.now_ns() - start;
            // The batch is answered early (early.rs) unless another thread's batch is
            // being served: that one keeps the slot until its end.
            if !records.is_empty() && g.batch.is_none() {
                g.serving = Some(std::thread::current().id());
                g.batch = Some(early::Batch::new(&records));
            }
            if !records.is_empty() {
                g.in_service += 1;
            }
            (records, start, resets)
        };
        if records.is_empty() {
            return Ok(0);
        }
        let faults: Vec<DeviceFault> = records.iter().map(to_device_fault).collect();
        // The manager calls back into our hooks: the lock must not be held here.
        let unwinding = InService { dev: self };
        let answers = gm.dev_fault(id, &faults);
        std::mem::forget(unwinding);
        let mut g = self.lock();
        let g = &mut *g;
        g.in_service -= 1;
        self.served.notify_all();
        let replayed = match g.serving_here() {
            true => {
                g.serving = None;
                g.batch.take().map(|b| b.replayed).unwrap_or_default()
            }
            false => Vec::new(),
        };
        let served = g.serve_batch(&records, &replayed, &answers, &self.cfg.name, resets);
        g.stats.fault_service_ns += g.io.now_ns() - seen;
        served
    }

    /// Runs `kernel` on the compute unit, serving its device faults through `gm`, and
    /// returns its completion. A kernel whose fault the manager aborted, or whose data
    /// access failed, is an error naming the VA. Threads may launch on one NPU at once:
    /// the compute unit runs the kernels in submission order, every launcher serves the
    /// faults that arrive, and each returns with its own kernel's completion.
    pub fn launch(&self, gm: &Gmem, id: DeviceId, kernel: Kernel) -> Result<KernelCompletion, NpuError> {
        let (key, epoch, start) = {
            let mut g = self.lock();
            let g = &mut *g;
            if g.lost {
                return Err(NpuError::Lost);
            }
            g.flush_ptes().map_err(tables_err)?;
            if let Some(c) = self.modelled_host_costs(&g.io) {
                g.io.advance(c.launch_ns)?;
            }
            let index = g.kq.submit(&mut g.io, &[kernel.with_irq()])?[0];
            let key = g.launches;
            g.launches += 1;
            g.launched.insert(index, key);
            (key, g.reset_attempts, g.io.now_ns())
        };
        loop {
            let done = {
                // While another thread serves a fault batch the device waits for its
                // answer: sleeping here with the lock held would keep that thread's
                // hooks out. Wait for it to end instead.
                let guard = self.lock();
                let mut g = self
                    .served
                    .wait_while(guard, |g| g.in_service > 0 && !g.finished.contains_key(&key))
                    .unwrap_or_else(|e| e.into_inner());
                let g = &mut *g;
                // A completion collected before another thread's reset is still ours.
                if !g.finished.contains_key(&key) {
                    if g.reset_attempts != epoch {
                        return Err(NpuError::KernelForgotten);
                    }
                    g.wait_fault_or_kernel()?;
                    for c in g.kq.completions(&mut g.io)? {
                        if let Some(n) = g.launched.remove(&c.index) {
                            g.finished.insert(n, c);
                        }
                    }
                }
                let mine = g.finished.remove(&key);
                if mine.is_none() && g.io.now_ns().saturating_sub(start) > self.cfg.budget_ns {
                    // Given up: a completion arriving later is nobody's.
                    g.launched.retain(|_, n| *n != key);
                    g.log_queue_state();
                    return Err(NpuError::Timeout { budget_ns: self.cfg.budget_ns });
                }
                mine
            };
            if let Some(c) = done {
                let mut g = self.lock();
                g.stats.kernels += 1;
                return match c.status {
                    KernelStatus::Ok => Ok(c),
                    KernelStatus::FaultAbort => {
                        let reason =
                            g.aborts.get(&(c.fault_va & !(PAGE - 1))).cloned().unwrap_or_else(|| "aborted".into());
                        Err(NpuError::KernelAborted { va: c.fault_va, reason })
                    }
                    KernelStatus::MemError => Err(NpuError::KernelMemError { va: c.fault_va }),
                    KernelStatus::BadDesc => Err(NpuError::KernelBadDesc),
                };
            }
            self.service_faults(gm, id)?;
        }
    }

    /// Soft-resets the device after an unrecoverable error and re-synchronises the
    /// queues. Page tables and resident data in device memory survive.
    pub fn recover(&self) -> Result<(), NpuError> {
        let mut g = self.lock();
        if g.lost {
            return Err(NpuError::Lost);
        }
        match g.soft_reset() {
            Ok(()) => {
                tracing::warn!(target: "npu", device = %self.cfg.name, "soft reset: engines drained, queues re-synchronised");
                Ok(())
            }
            Err(e) => {
                tracing::error!(target: "npu", device = %self.cfg.name, error = %e, "soft reset failed");
                Err(e)
            }
        }
    }

    /// Stops using the device for good (its reset failed): kernels and recovery are
    /// refused with [`NpuError::Lost`] from now on. The manager is told separately
    /// ([`gmem_host::Gmem::device_lost`]; [`crate::session::Session::recover`] does both).
    pub fn mark_lost(&self) {
        tracing::error!(target: "npu", device = %self.cfg.name, "device lost: kernels and recovery refused from now on");
        self.lock().lost = true;
    }

    /// Whether [`NpuDevice::mark_lost`] was called.
    pub fn is_lost(&self) -> bool {
        self.lock().lost
    }

    /// The page tables of `asid` as they are *in device memory* (read back with the
    /// DMA engine), rendered as sorted text: VA range, level, flags, target kind. Device
    /// frame numbers and host addresses are redacted unless `raw`.
    pub fn pte_dump(&self, asid: Asid, raw: bool) -> Result<String, MmuError> {
        let mut g = self.lock();
        let g = &mut *g;
        let Some(root) = g.roots.get(asid.0 as usize).copied().flatten() else {
            return Err(MmuError::UnknownAsid(asid.0));
        };
        g.flush_ptes().map_err(mmu_err("pte_dump"))?;
        // Read every table page the shadow knows under this root from the device.
        let mut pages: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut stack = vec![root];
        while let Some(t) = stack.pop() {
            let bytes = g.read_device(t, PAGE as usize).map_err(mmu_err("pte_dump"))?;
            for i in 0..512 {
                let p = Pte(u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8])));
                if p.valid() && p.is_pointer() && !pages.contains_key(&p.target()) {
                    stack.push(p.target());
                }
            }
            pages.insert(t, bytes);
        }
        let mem = ReadBack(pages);
        let maps = sv39::dump(&mem, root)
            .map_err(|_| MmuError::Device { hook: "pte_dump", reason: "table outside the read-back".into() })?;
        let mut out = String::new();
        for m in maps {
            let p = m.pte;
            let flags: String = ["V", "R", "W", "X", "U", "G", "A", "D"]
                .iter()
                .enumerate()
                .map(|(i, f)| if p.0 >> i & 1 == 1 { *f } else { "-" })
                .collect();
            let target = if p.target() >= HOST_WINDOW {
                if raw { format!("host iova {:#x}", p.target() - HOST_WINDOW) } else { "host page".into() }
            } else if raw {
                format!("device {:#x}", p.target())
            } else {
                "device frame".into()
            };
            let size = if m.size == HUGE { "2M" } else { "4K" };
            out += &format!("{:#014x}..{:#014x} L{} {size} {flags} -> {target}\n", m.va, m.va + m.size, m.level);
        }
        Ok(out)
    }
}

struct ReadBack(HashMap<u64, Vec<u8>>);

impl sv39::TableMemory for ReadBack {
    type Error = ();
    fn read_pte(&self, pa: u64) -> Result<u64, ()> {
        let page = self.0.get(&(pa & !(PAGE - 1))).ok_or(())?;
        let i = (pa & (PAGE - 1)) as usize;
        Ok(u64::from_le_bytes(page[i..i + 8].try_into().map_err(|_| ())?))
    }
    fn write_pte(&mut self, _: u64, _: u64) -> Result<(), ()> {
        Err(())
    }
}

fn to_device_fault(r: &FaultRecord) -> DeviceFault {
    DeviceFault {
        asid: Asid(u32::from(r.asid)),
        va: r.va,
        access: if r.write { GmAccess::Write } else { GmAccess::Read },
        tag: u64::from(r.reqid),
    }
}

impl<T: DeviceIo> Inner<T> {
    /// The records of one fault batch (see NpuConfig::fault_coalesce_ns): those in the
    /// fault queue now and, while some arrived and fewer than `inflight` (the compute
    /// unit's requests in flight), each that follows within a step of
    /// [`FAULT_COALESCE_STEP_NS`], for at most `window_ns` from `start`. On an error the
    /// records gathered so far go back to the queue, handed out first by the next drain
    /// (they were consumed from the ring: dropped here, they would never be answered).
    fn gather_faults(&mut self, start: u64, inflight: usize, window_ns: u64) -> Result<Vec<FaultRecord>, NpuError> {
        let mut records = self.fq.drain(&mut self.io)?;
        match self.gather_more(&mut records, start, inflight, window_ns) {
            Ok(()) => Ok(records),
            Err(e) => {
                self.fq.put_back(records);
                Err(e)
            }
        }
    }

    /// Adds to `records` what [`Inner::gather_faults`] waits for after its first drain.
    fn gather_more(
        &mut self,
        records: &mut Vec<FaultRecord>,
        start: u64,
        inflight: usize,
        window_ns: u64,
    ) -> Result<(), NpuError> {
        while !records.is_empty() && records.len() < inflight {
            let waited = self.io.now_ns().saturating_sub(start);
            let quiet = FAULT_COALESCE_STEP_NS.min(window_ns.saturating_sub(waited));
            let fq = &self.fq;
            if quiet == 0 || !self.io.wait_host(quiet, &mut || fq.has_record())? {
                break;
            }
            records.extend(self.fq.drain(&mut self.io)?);
        }
        Ok(())
    }

    /// Waits until a fault record or a kernel completion is in host memory: polls for
    /// [`QUIET_NS`] (no MMIO), then sleeps on interrupt FAULT | KERNEL for up to
    /// [`IRQ_WAIT_NS`]. The interrupt is armed without a lost wake-up: acknowledge,
    /// unmask, an MMIO read that flushes both posted writes to the device, a last look
    /// at host memory, then the sleep; masked again afterwards. Returns with nothing
    /// new when the sleep ends empty (the caller checks its budget).
    fn wait_fault_or_kernel(&mut self) -> Result<(), IoError> {
        let Inner { io, fq, kq, stats, wake_mask, .. } = self;
        // Masked again first if an earlier sleep could not mask them.
        wake_mask.lower_if_raised(io)?;
        let ready = &mut || fq.has_record() || kq.has_record();
        if io.wait_host(QUIET_NS, ready)? {
            return Ok(());
        }
        stats.irq_waits += 1;
        io.write32(regs::INT_ACK.offset, WAKE)?;
        wake_mask.raise(io)?;
        let slept = io.read32(regs::INT_STATUS.offset).and_then(|_| {
            if !ready() {
                io.wait_irq(WAKE, IRQ_WAIT_NS)?;
            }
            Ok(())
        });
        // Masked again whether or not the sleep failed.
        let lowered = wake_mask.lower(io);
        slept.and(lowered)
    }

    /// Whether this thread is serving a fault batch (its time counts in the stats).
    fn serving_here(&self) -> bool {
        self.serving == Some(std::thread::current().id())
    }

    /// Answers a batch the manager handled: its PTEs, then a REPLAY per record not
    /// `replayed` early. Records whose REPLAY could not be submitted are queued again
    /// for the next batch (unless a soft reset since they were read at `resets`
    /// attempts forgot their requests).
    fn serve_batch(
        &mut self,
        records: &[FaultRecord],
        replayed: &[bool],
        answers: &[gmem_host::FaultResolution],
        device: &str,
        resets: u64,
    ) -> Result<usize, NpuError> {
        let unanswered = |replayed: &[bool]| -> Vec<FaultRecord> {
            let done = |i: usize| replayed.get(i).copied().unwrap_or(false);
            records.iter().enumerate().filter(|&(i, _)| !done(i)).map(|(_, r)| *r).collect()
        };
        // A few PTEs go as commands ahead of the REPLAYs (in order: the retry's walk
        // finds them); more, or a new table page, by DMA first.
        let ptes = match self.pte_commands_or_flush() {
            Ok(c) => c,
            Err(e) => {
                self.give_back(unanswered(replayed), resets);
                return Err(tables_err(e));
            }
        };
        let mut replays = Vec::with_capacity(records.len());
        for (i, (r, a)) in records.iter().zip(answers).enumerate() {
            if replayed.get(i).copied().unwrap_or(false) {
                // Answered early; the manager answers it retry (`GmMmu::faults_resolved`).
                continue;
            }
            let abort = !a.is_retry();
            if let gmem_host::FaultResolution::Abort(e) = a {
                tracing::warn!(target: "npu", device, va = format_args!("{:#x}", r.va), error = %e, "device fault aborted");
                self.aborts.insert(r.va & !(PAGE - 1), e.to_string());
                self.stats.aborted += 1;
            }
            replays.push(r.replay(abort));
        }
        if let Err((sent, e)) = self.submit_after_ptes(ptes, replays, 64, false) {
            // The REPLAYs not submitted leave their records to the next batch (their
            // PTEs are queued again).
            let left: Vec<FaultRecord> = unanswered(replayed).into_iter().skip(sent).collect();
            self.give_back(left, resets);
            return Err(e.into());
        }
        self.stats.faults += records.len() as u64;
        self.stats.batches += 1;
        Ok(records.len())
    }

    /// On a kernel timeout: what each queue holds, for the log (where a hang stopped).
    fn log_queue_state(&mut self) {
        let regs = [
            ("STATUS", regs::STATUS.offset),
            ("ERR_INFO", regs::ERR_INFO.offset),
            ("CMDQ_HEAD", regs::CMDQ_HEAD.offset),
            ("CMDQ_TAIL", regs::CMDQ_TAIL.offset),
            ("FQ_HEAD", regs::FQ_HEAD.offset),
            ("FQ_TAIL", regs::FQ_TAIL.offset),
            ("KQ_HEAD", regs::KQ_HEAD.offset),
            ("KQ_TAIL", regs::KQ_TAIL.offset),
            ("INT_STATUS", regs::INT_STATUS.offset),
        ];
        let values: Vec<String> = regs
            .iter()
            .map(|&(name, off)| match self.io.read32(off) {
                Ok(v) => format!("{name}={v:#x}"),
                Err(e) => format!("{name}=? ({e})"),
            })
            .collect();
        tracing::error!(target: "npu", state = %values.join(" "), "kernel timed out");
    }

    fn budget(&self) -> u64 {
        self.budget_ns
    }

    /// RESET.SOFT, wait for every engine to drain, and re-synchronise the queues.
    fn soft_reset(&mut self) -> Result<(), NpuError> {
        self.io.write32(regs::RESET.offset, 1 << regs::reset::SOFT.lsb)?;
        // Counted once the write went out: only then may the device forget work.
        self.reset_attempts += 1;
        // From here the device has forgotten its queues whether or not the drain below
        // can be watched to its end (a STATUS read may fail): the host's side follows
        // whatever the drain's outcome, or the next doorbell would hand the device old
        // commands again (stale PTE_WRITEs) and the PTE_WRITEs it dropped would never be
        // written. (During the drain the device writes nothing into host memory: its
        // bursts complete with zero strobes.)
        self.cmdq.after_soft_reset();
        self.requeue_pte_commands();
        self.launched.clear();
        self.void_copy();
        let drained = self.wait_drained();
        // The device-written rings restart after the drain: the device saw the RESET
        // write only after its flight and worked on meanwhile, and the records it wrote
        // then (a DMA completion, a fault record, a kernel completion) are void (its
        // indices are 0). The STATUS read that saw the drain end cannot pass them, so
        // they are all in host memory now; restarted before, a ring would take one for
        // the first record after the reset. If the drain could not be watched to its
        // end, the records that landed by then are freed all the same.
        self.dma.after_soft_reset();
        self.fq.after_soft_reset();
        self.kq.after_soft_reset();
        drained?;
        self.stats.recoveries += 1;
        Ok(())
    }

    /// Reads STATUS until no engine is busy (a soft reset's drain), letting device time
    /// pass between reads, for at most the budget.
    fn wait_drained(&mut self) -> Result<(), NpuError> {
        let start = self.io.now_ns();
        loop {
            let s = self.io.read32(regs::STATUS.offset)?;
            let busy =
                regs::status::CMDQ_BUSY.get32(s) | regs::status::DMA_BUSY.get32(s) | regs::status::CU_BUSY.get32(s);
            if busy == 0 {
                return Ok(());
            }
            if self.io.now_ns() - start > self.budget_ns {
                return Err(NpuError::Timeout { budget_ns: self.budget_ns });
            }
            self.io.advance(1_000)?;
        }
    }

    /// The DMA address of `a`.
    fn dma_addr(&self, a: MemAddr) -> Result<DmaAddr, OpError> {
        match a {
            MemAddr::Device(pa) => Ok(DmaAddr::Device(pa)),
            MemAddr::Host { region, offset } => {
                let (iova, len) = self.hosts.get(&region).ok_or(OpError::UnknownRegion { region: region.0 })?;
                if offset >= *len {
                    return Err(OpError::BeyondRegion { region: region.0, offset });
                }
                Ok(DmaAddr::Host(iova + offset))
            }
        }
    }

    /// The PTE target (device-physical or host window) of `a`.
    fn pte_target(&self, a: MemAddr) -> Result<u64, OpError> {
        match self.dma_addr(a)? {
            DmaAddr::Device(pa) => Ok(pa),
            DmaAddr::Host(iova) => Ok(HOST_WINDOW + iova),
        }
    }

    /// Runs descriptors on the channels their directions select, all at once, and
    /// waits; the error names the first failed element (`tag` = index in `descs`).
    fn run_dma(&mut self, descs: &[(DmaDesc, usize)]) -> Result<(), (usize, OpError)> {
        // The engine's channels are idle between runs: a copy still running ends first.
        self.settle_copy();
        self.run_dma_rounds(per_channel(descs), descs)
    }

    /// Runs `descs` in order on channel `ch` alone, leaving a copy in flight on the other
    /// channels running (early.rs).
    fn run_dma_on(&mut self, ch: usize, descs: &[(DmaDesc, usize)]) -> Result<(), (usize, OpError)> {
        let mut per: [Vec<DmaDesc>; 3] = Default::default();
        per[ch] = descs.iter().map(|&(d, _)| d).collect();
        self.run_dma_rounds(per, descs)
    }

    /// Runs `per` (the descriptors of `descs` by channel) to completion, counting its
    /// time as fault service when this thread serves a batch.
    fn run_dma_rounds(&mut self, per: [Vec<DmaDesc>; 3], descs: &[(DmaDesc, usize)]) -> Result<(), (usize, OpError)> {
        let start = self.io.now_ns();
        let ran = self.run_rounds(&per, descs.first().map_or(0, |d| d.1));
        if self.serving_here() {
            self.stats.fault_dma_ns += self.io.now_ns() - start;
        }
        ran
    }

    fn run_rounds(&mut self, per: &[Vec<DmaDesc>; 3], first: usize) -> Result<(), (usize, OpError)> {
        // Rounds of up to DMA_ROUND descriptors per channel, all channels running at once.
        let mut offset = [0usize; 3];
        loop {
            let mut active = Vec::new();
            for ch in 0..3 {
                let rest = &per[ch][offset[ch]..];
                if rest.is_empty() {
                    continue;
                }
                let n = rest.len().min(DMA_ROUND);
                if let Err(e) = self.dma.submit(&mut self.io, ch, &rest[..n]) {
                    // The channels already rung run on: the caller may only release
                    // their buffers and frames once they ended.
                    if !active.is_empty() {
                        let _ = self.wait_round(&active, first);
                    }
                    return Err((first, e.into()));
                }
                offset[ch] += n;
                active.push(ch);
            }
            if active.is_empty() {
                return Ok(());
            }
            self.wait_round(&active, first)?;
        }
    }

    /// Waits until every descriptor submitted on `active` has completed. A failed
    /// descriptor halts its channel and discards the later ones; RESUME runs those again,
    /// so every descriptor ends with a completion and the rings stay consistent for the
    /// next batch. The error names the first failed element (`first` when the engine
    /// stopped answering).
    fn wait_round(&mut self, active: &[usize], first: usize) -> Result<(), (usize, OpError)> {
        let budget = self.budget();
        let mut failed = None;
        loop {
            let cpls = match self.dma.wait_idle(&mut self.io, active, budget) {
                Ok(c) => c,
                Err(e) => {
                    // No completion within the budget: the engine stopped answering.
                    // Reset it so the rings are consistent again, and fail the batch
                    // (the manager rolls it back; the data is still at the source).
                    tracing::warn!(target: "npu", error = %e, "DMA wait failed: soft reset");
                    return Err((
                        first,
                        match self.soft_reset() {
                            Ok(()) => e.into(),
                            Err(r) => OpError::ResetFailed { source: e, reset: Box::new(r) },
                        },
                    ));
                }
            };
            for bad in cpls.iter().filter(|c| c.status != DmaStatus::Ok) {
                tracing::warn!(target: "npu", channel = bad.channel, tag = bad.tag, status = ?bad.status, "DMA descriptor failed");
                failed.get_or_insert((usize::from(bad.tag), OpError::Failed { status: bad.status }));
                self.dma.resume(&mut self.io, bad.channel).map_err(|e| (first, e.into()))?;
            }
            if active.iter().all(|&c| self.dma.in_flight(c) == 0) {
                return failed.map_or(Ok(()), Err);
            }
        }
    }

    /// Reads `len` bytes of device memory through the staging page.
    fn read_device(&mut self, pa: u64, len: usize) -> Result<Vec<u8>, OpError> {
        if self.pte_commands_touch(pa, len as u64) {
            self.settle_pte_commands()?;
        }
        let mut out = vec![0u8; len];
        for (i, chunk) in out.chunks_mut(STAGED_PTES * 8).enumerate() {
            let at = pa + (i * STAGED_PTES * 8) as u64;
            let d = DmaDesc::copy(DmaAddr::Device(at), DmaAddr::Host(self.staging_iova), chunk.len() as u32, 0);
            self.run_dma(&[(d, 0)]).map_err(|(_, e)| e)?;
            self.staging.read(0, chunk)?;
        }
        Ok(out)
    }

    fn root(&self, asid: Asid) -> Result<u64, MmuError> {
        self.roots.get(asid.0 as usize).copied().flatten().ok_or(MmuError::UnknownAsid(asid.0))
    }

    /// One INVAL per range, then one FENCE.
    fn invalidate(&mut self, asid: Asid, ranges: &[VaRange]) -> Result<(), MmuError> {
        // The released PTEs must be gone from memory before their TLB entries are: a few
        // go as commands ahead of the INVALs, more by DMA first.
        let ptes = self.pte_commands_or_flush().map_err(mmu_err("tlb_invl"))?;
        let invals = ranges
            .iter()
            .map(|r| {
                Command::Inval(InvalScope::Range {
                    asid: asid.0 as u16,
                    va: r.start,
                    pages: r.len.div_ceil(PAGE).min(u64::from(u32::MAX)) as u32,
                })
            })
            .collect::<Vec<Command>>();
        let n = invals.len() as u64;
        // On a failure the released PTEs are queued again, so a retried invalidation
        // writes them (the INVALs alone would let a walk refill the TLB from the stale
        // entry).
        self.submit_after_ptes(ptes, invals, 128, true).map_err(|(_, e)| fence_err("tlb_invl")(e))?;
        self.stats.invalidations += n;
        self.holds.after_invalidate(&mut self.io, asid.0).map_err(hold_err("tlb_invl", 0))
    }
}

impl<T: DeviceIo + Send> GmMmu for NpuDevice<T> {
    fn info(&self) -> DeviceInfo {
        let managed = self.cfg.managed_bytes.unwrap_or(self.table_base).min(self.table_base);
        DeviceInfo {
            name: self.cfg.name.clone(),
            mem_ranges: std::iter::once(0..managed).collect(),
            va_bits: 39,
            huge_pages: true,
            hooks: Hooks::TLB_COALESCED | Hooks::DMA_MAP_HOST | Hooks::HOST_MAPPING | Hooks::ASYNC_COPY,
        }
    }

    fn pmap_create(&self) -> Result<Asid, MmuError> {
        let mut g = self.lock();
        let g = &mut *g;
        let asid = (1..ASIDS).find(|&a| g.roots[a].is_none()).ok_or(MmuError::NoResources { what: "ASIDs" })?;
        let (root, dirty) = g.shadow.alloc().ok_or(MmuError::NoResources { what: "page-table memory" })?;
        g.stage(Changes { new_tables: if dirty { vec![root] } else { Vec::new() }, writes: Vec::new() });
        g.flush_ptes().map_err(mmu_err("pmap_create"))?;
        let v = regs::ptroot::VALID.put32(regs::ptroot::PPN.put32(0, (root >> 12) as u32), 1);
        g.io.write32(regs::PTROOT.offset + 4 * asid as u32, v)
            .map_err(|e| MmuError::Device { hook: "pmap_create", reason: e.to_string() })?;
        g.roots[asid] = Some(root);
        Ok(Asid(asid as u32))
    }

    fn pmap_destroy(&self, asid: Asid) -> Result<(), MmuError> {
        let mut g = self.lock();
        let g = &mut *g;
        let root = g.root(asid)?;
        g.flush_ptes().map_err(mmu_err("pmap_destroy"))?;
        g.io.write32(regs::PTROOT.offset + 4 * asid.0, 0)
            .map_err(|e| MmuError::Device { hook: "pmap_destroy", reason: e.to_string() })?;
        g.run_fenced(&[Command::Inval(InvalScope::Asid(asid.0 as u16))]).map_err(fence_err("pmap_destroy"))?;
        g.shadow.free_tree(root);
        g.roots[asid.0 as usize] = None;
        g.holds.drop_asid(&mut g.io, asid.0).map_err(hold_err("pmap_destroy", 0))
    }

    fn pmap_enter(&self, asid: Asid, va: u64, target: MemAddr, size: PageSize, prot: Prot) -> Result<(), MmuError> {
        let mut g = self.lock();
        let g = &mut *g;
        let root = g.root(asid)?;
        let pa = g.pte_target(target).map_err(|e| MmuError::PageTable { va, reason: e.to_string() })?;
        let write = prot.contains(Prot::WRITE);
        // A remote PTE's host pages stay mapped while it lives; a device page replacing
        // one lets them go at the next invalidation.
        if let MemAddr::Host { .. } = target {
            g.holds
                .enter_remote(&mut g.io, asid.0, va, pa - HOST_WINDOW, size.bytes(), write)
                .map_err(hold_err("pmap_enter", va))?;
        } else {
            g.holds.leave(asid.0, va);
        }
        let (r, changes) =
            g.shadow.edit(|mem, alloc| TableBuilder { mem, root }.map(va, pa, size.bytes(), write, alloc));
        if r.is_err() {
            g.holds.leave(asid.0, va); // no PTE names the pages: let them go
        }
        r.map_err(|e| match e {
            sv39::MapError::NoTableMemory => MmuError::NoResources { what: "page-table memory" },
            e => MmuError::PageTable { va, reason: e.to_string() },
        })?;
        g.stage(changes);
        Ok(())
    }

    fn pmap_release(&self, asid: Asid, va: u64, size: PageSize) -> Result<TlbFlush, MmuError> {
        let mut g = self.lock();
        let g = &mut *g;
        let root = g.root(asid)?;
        let (r, changes) = g.shadow.edit(|mem, _| TableBuilder { mem, root }.unmap(va));
        let old = r.map_err(|e| MmuError::PageTable { va, reason: e.to_string() })?;
        g.stage(changes);
        g.holds.leave(asid.0, va);
        Ok(match old {
            Some(_) => TlbFlush::new(asid, va, size.bytes()),
            None => TlbFlush::none(asid),
        })
    }

    fn pmap_protect(&self, asid: Asid, va: u64, size: PageSize, prot: Prot) -> Result<TlbFlush, MmuError> {
        let mut g = self.lock();
        let g = &mut *g;
        let root = g.root(asid)?;
        let Some((at, _)) = g.shadow.leaf(root, va) else {
            return Ok(TlbFlush::none(asid));
        };
        let old = g.shadow.pte(at);
        let w = 1u64 << regs::pte_bit::W;
        let d = 1u64 << regs::pte_bit::D;
        let new = if prot.contains(Prot::WRITE) { old | w | d } else { old & !w };
        if new == old {
            return Ok(TlbFlush::none(asid));
        }
        if new & w != 0 {
            g.holds.make_writable(&mut g.io, asid.0, va).map_err(hold_err("pmap_protect", va))?;
        }
        let (_, changes) = g.shadow.edit(|mem, _| sv39::TableMemory::write_pte(mem, at, new));
        g.stage(changes);
        Ok(if new & w == 0 { TlbFlush::new(asid, va, size.bytes()) } else { TlbFlush::none(asid) })
    }

    fn tlb_invl(&self, asid: Asid, range: VaRange) -> Result<(), MmuError> {
        self.lock().invalidate(asid, &[range])
    }

    fn tlb_invl_coalesced(&self, asid: Asid, ranges: &[VaRange]) -> Result<(), MmuError> {
        self.lock().invalidate(asid, ranges)
    }

    fn prepare_page(&self, pa: u64, size: PageSize, how: Prepare) -> Result<(), MmuError> {
        let mut g = self.lock();
        let g = &mut *g;
        let len = size.bytes();
        let d = match how {
            Prepare::Zero => DmaDesc::zero(DmaAddr::Device(pa), len as u32, 0),
            Prepare::CopyFrom(src) => {
                let s = g.dma_addr(src).map_err(|e| MmuError::Dma {
                    index: 0,
                    src,
                    dst: MemAddr::Device(pa),
                    reason: e.to_string(),
                })?;
                DmaDesc::copy(s, DmaAddr::Device(pa), len as u32, 0)
            }
        };
        let src = match how {
            Prepare::CopyFrom(s) => s,
            Prepare::Zero => MemAddr::Device(pa),
        };
        g.run_dma(&[(d, 0)]).map_err(|(_, e)| MmuError::Dma {
            index: 0,
            src,
            dst: MemAddr::Device(pa),
            reason: e.to_string(),
        })?;
        g.stats.dma_bytes += len;
        Ok(())
    }

    fn copy_batch(&self, ops: &[CopyOp]) -> Result<(), MmuError> {
        let mut g = self.lock();
        let g = &mut *g;
        let descs = g.copy_descs(ops)?;
        let held = g.hold_copy(&descs)?;
        let ran = g.run_dma(&descs);
        g.end_copy(ops, ran, &held)
    }

    fn copy_start(&self, ops: &[CopyOp]) -> Result<CopyTicket, MmuError> {
        self.lock().start_copy(ops)
    }

    fn copy_finish(&self, ticket: CopyTicket) -> Result<(), MmuError> {
        self.lock().finish_copy(ticket)
    }

    fn faults_resolved(&self, faults: &[usize]) {
        self.lock().replay_early(faults);
    }

    unsafe fn dma_map_host(&self, region: &HostRegion) -> Result<(), MmuError> {
        let mut g = self.lock();
        // SAFETY: our caller keeps the region mapped until `dma_unmap_host` (this fn's
        // contract) and names only present pages of it in copies and mappings.
        // A PEER_SHARED region's pages come and go: never pin it whole (dma_map_lazy).
        let iova = unsafe {
            match region.kind {
                gmem_host::HostRegionKind::PeerShared => g.io.dma_map_lazy(region.va as *mut u8, region.len as usize),
                gmem_host::HostRegionKind::Staging => g.io.dma_map_raw(region.va as *mut u8, region.len as usize),
            }
        }
        .map_err(|e| MmuError::Device {
            hook: "dma_map_host",
            reason: format!("map host region {:#x} (+{:#x}): {e}", region.va, region.len),
        })?;
        g.hosts.insert(region.id, (iova, region.len));
        Ok(())
    }

    fn dma_unmap_host(&self, id: HostRegionId) -> Result<(), MmuError> {
        let mut g = self.lock();
        let Some((iova, len)) = g.hosts.remove(&id) else {
            return Ok(());
        };
        let g = &mut *g;
        g.holds.drop_range(&mut g.io, iova, len).map_err(hold_err("dma_unmap_host", 0))?;
        g.io.dma_unmap(iova).map_err(|e| MmuError::Device { hook: "dma_unmap_host", reason: e.to_string() })
    }

    fn host_work(&self, work: gmem_host::HostWork) {
        let mut g = self.lock();
        let Some(costs) = self.modelled_host_costs(&g.io) else { return };
        if g.lost {
            return;
        }
        if g.serving_here() {
            g.stats.fault_host_ns += costs.of(work);
        }
        if let Err(e) = g.io.advance(costs.of(work)) {
            // Time could not pass (a failing transport): the next device operation will
            // report the same failure; nothing is lost by not charging this once.
            tracing::warn!(target: "npu", device = %self.cfg.name, error = %e, ?work, "host time not charged");
        }
    }
}

#[cfg(test)]
mod fence_err_tests {
    use super::*;

    #[test]
    fn a_fence_that_never_completes_is_a_timeout_and_anything_else_a_device_failure() {
        let timeout = fence_err("tlb_invl")(CmdqError::FenceTimeout { seq: 3, budget_ns: 10 });
        assert_eq!(timeout, MmuError::Timeout { hook: "tlb_invl" });
        let stopped = fence_err("pmap_destroy")(CmdqError::DeviceError { err_info: 0x0102 });
        assert!(matches!(&stopped, MmuError::Device { hook: "pmap_destroy", reason } if reason.contains("0x00000102")));
    }
}
