//! A ready-to-use unified-memory session: a GMEM manager with one NPU registered and
//! attached to a fresh address space — what workloads, demos and tests start from.

use std::sync::Arc;

use gmem_host::inject::{FaultyMmu, Injector};
use gmem_host::{Config, DeviceId, GmMmu, Gmem, GmemError, LossReport, MapFlags, SpaceId, ThrashConfig};

use crate::inject::FaultyIo;
use crate::kernel::{Kernel, KernelCompletion};
use crate::{DeviceIo, NpuConfig, NpuDevice, NpuError};

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The manager refused (userfaultfd unavailable, registration rejected, ...).
    #[error("manager: {0}")]
    Manager(#[from] GmemError),
    /// The NPU could not be opened.
    #[error("NPU: {0}")]
    Npu(#[from] NpuError),
}

/// The manager configuration the NPU stack uses by default: [`Config::default`] with
/// device faults migrating whole 64 KiB blocks (`dev_fault_block_pages` = 16), the
/// density prefetch tree (`prefetch_tree`) and read-ahead of the next 2 MiB chunk
/// (`stream_readahead`). The NPU's compute unit keeps only a few requests in flight,
/// all usually on one page, so without fault-ahead a stream migrates one page per fault
/// round trip; the tree then doubles the step, and once a chunk is complete the next
/// one copies while the host commits it (the NPU pipelines copies). Sequential CPU
/// faults double their window of pages brought back, from 16 up to 256 (1 MiB, half the
/// staging pool; `cpu_fault_ahead_max`): a CPU fault costs 6.5 µs of host time before
/// its pages' 1.07 µs each, and from 128 pages on a window's parts are pipelined.
///
/// Thrashing detection departs from UVM's "3 events in 500 µs" twice:
/// - the window is 5 ms of device time: at 250 MHz one round of a 4 MiB CPU/NPU
///   ping-pong takes about 1.4 ms here, so a page that bounces every round would never
///   be seen within 500 µs;
/// - 2 events pin (one round trip: a CPU fault taking the page back, then a device
///   fault taking it again). With the host's time charged per page moved, a bounce
///   costs about 7 times a round on a remote mapping (`gmem profile faults`,
///   `pingpong_hint_speedup`), and waiting for a third event costs another CPU
///   fault-back. A page pinned wrongly is accessed remotely until it has been quiet for
///   `unpin_after_ns` (100 ms).
pub fn manager_config() -> Config {
    let thrash = ThrashConfig { threshold: 2, window_ns: 5_000_000, ..ThrashConfig::default() };
    Config {
        dev_fault_block_pages: 16,
        prefetch_tree: true,
        stream_readahead: true,
        cpu_fault_ahead_max: 256,
        thrash,
        ..Config::default()
    }
}

/// [`manager_config`] with thrashing control switched on or off.
pub fn manager_config_thrashing(enabled: bool) -> Config {
    let base = manager_config();
    Config { thrash: ThrashConfig { enabled, ..base.thrash }, ..base }
}

/// A manager, one NPU on transport `T`, and an address space the NPU is attached to.
pub struct Session<T: DeviceIo + Send + 'static> {
    /// The manager.
    pub gm: Gmem,
    /// The NPU (also registered with the manager).
    pub npu: Arc<NpuDevice<T>>,
    /// The NPU's id in the manager.
    pub id: DeviceId,
    /// The address space.
    pub space: SpaceId,
    /// The NPU's ASID for the space.
    pub asid: u16,
}

impl<T: DeviceIo + Send + 'static> Session<T> {
    /// Opens the NPU on `io`, starts a manager with `gm_cfg`, registers the NPU and
    /// attaches a fresh address space. The manager's clock becomes the device's
    /// ([`DeviceIo::now_ns`]: cycles in co-simulation, wall time on a board), so its
    /// time windows (thrashing detection) are measured where the device runs.
    pub fn open(io: T, npu_cfg: NpuConfig, gm_cfg: Config) -> Result<Self, SessionError> {
        let npu = Arc::new(NpuDevice::open(io, npu_cfg)?);
        Self::assemble(npu.clone(), npu, gm_cfg)
    }

    /// Like [`Session::open`], with fault injection on every layer: the transport is
    /// wrapped in [`FaultyIo`] and the NPU is registered with the manager through
    /// [`FaultyMmu`], both consulting `inj` (see [`gmem_host::inject`]). Injection is
    /// paused while the session opens.
    pub fn open_faulty(
        io: T,
        npu_cfg: NpuConfig,
        gm_cfg: Config,
        inj: &Injector,
    ) -> Result<Session<FaultyIo<T>>, SessionError> {
        inj.paused(|| {
            let npu = Arc::new(NpuDevice::open(FaultyIo::new(io, inj.clone()), npu_cfg)?);
            let mmu = Arc::new(FaultyMmu::new(npu.clone(), inj.clone()));
            Session::assemble(npu, mmu, gm_cfg)
        })
    }

    /// A manager on the NPU's clock, `mmu` (the NPU, or a wrapper of it) registered, and
    /// a fresh address space attached.
    fn assemble(npu: Arc<NpuDevice<T>>, mmu: Arc<dyn GmMmu>, mut gm_cfg: Config) -> Result<Self, SessionError> {
        let clock = npu.clone();
        gm_cfg.clock = Arc::new(move || clock.with_io(|io| io.now_ns()));
        let gm = Gmem::new(gm_cfg)?;
        let id = gm.register_device(mmu)?;
        let space = gm.create_space();
        let asid = gm.attach(space, id)?;
        Ok(Self { gm, npu, id, space, asid: asid.0 as u16 })
    }

    /// A `PEER_SHARED` region of `bytes`: a real host pointer the NPU translates too.
    pub fn alloc(&self, bytes: u64) -> Result<*mut u32, GmemError> {
        Ok(self.gm.mmap(self.space, bytes, MapFlags::PEER_SHARED)? as *mut u32)
    }

    /// Runs a kernel, serving its faults (see [`NpuDevice::launch`]).
    pub fn launch(&self, kernel: Kernel) -> Result<KernelCompletion, NpuError> {
        self.npu.launch(&self.gm, self.id, kernel)
    }

    /// Device time now (ns).
    pub fn now_ns(&self) -> u64 {
        self.npu.with_io(|io| io.now_ns())
    }

    /// Brings the NPU back after an unrecoverable error (a hang, a timeout): a soft
    /// reset, which keeps device memory, so nothing is lost. A reset that fails is tried
    /// again ([`RESET_ATTEMPTS`] in all: one transient MMIO error must not cost the
    /// device); if every attempt fails (the device stopped answering), the NPU is
    /// declared lost to itself and to the manager, which recovers what has a good copy
    /// on the CPU and reports the rest ([`gmem_host::lost`]).
    pub fn recover(&self) -> Result<Recovery, SessionError> {
        let mut cause = None;
        for _ in 0..RESET_ATTEMPTS {
            match self.npu.recover() {
                Ok(()) => return Ok(Recovery::Reset),
                Err(e) => cause = Some(e),
            }
        }
        self.npu.mark_lost();
        let report = self.gm.device_lost(self.id)?;
        Ok(Recovery::Lost { cause: cause.unwrap_or(NpuError::Lost), report })
    }
}

/// Soft resets [`Session::recover`] tries before it declares the device lost.
pub const RESET_ATTEMPTS: usize = 3;

/// What [`Session::recover`] did.
#[derive(Debug)]
pub enum Recovery {
    /// The soft reset worked: device memory and every page in it survived.
    Reset,
    /// The reset failed: the device is lost and the manager settled its pages.
    Lost {
        /// Why the reset failed.
        cause: NpuError,
        /// Pages recovered from CPU copies and pages lost, by range.
        report: LossReport,
    },
}
