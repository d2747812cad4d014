//! The manager's configuration: [`Config`] and the parameter types it holds.
//!
//! Imports only [`crate::mmu`] (for [`Hooks`]), which imports nothing of the crate.

use std::sync::Arc;

use crate::mmu::Hooks;

/// Monotonic time source, in nanoseconds. Tests pass a manual clock; co-simulation
/// passes the transport's cycle clock.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Manager configuration. Defaults follow NVIDIA UVM where UVM documents one.
#[derive(Clone)]
pub struct Config {
    /// How CPU touches of device-resident pages are caught.
    pub cpu: CpuMode,
    /// Pages in the DMA staging pool (device→host copies land there first).
    pub staging_pages: usize,
    /// Prefetch the rest of a 2 MiB region once more than this percentage of it is on the
    /// device or faulted in the batch (UVM: 51). `None` disables prefetch.
    pub prefetch_threshold_pct: Option<u8>,
    /// Thrashing detection parameters.
    pub thrash: ThrashConfig,
    /// Optional hooks a device must declare to be registered.
    pub require_hooks: Hooks,
    /// Lowest virtual address used for regions (regions live in `[va_base, 2^va_bits)`).
    pub va_base: u64,
    /// Commit attempts per page before a fault is answered retry without progress.
    pub max_commit_retries: u32,
    /// Density prefetch over a tree of aligned subregions (64 KiB .. 2 MiB, UVM's
    /// prefetch tree) instead of whole 2 MiB chunks only.
    pub prefetch_tree: bool,
    /// With [`Config::prefetch_tree`]: a device fault batch that completes a 2 MiB chunk
    /// the device had been filling (or that takes a chunk whole after a filled one) also
    /// brings the region's next chunk whole, when free device memory holds it without
    /// evicting anything. On a device with [`Hooks::ASYNC_COPY`] the next chunk copies
    /// while the host commits this one, and the stream's next fault round trip is saved.
    /// A ramp of doubling steps that has brought in a run of 128 pages from a chunk's
    /// first page (in its region) takes the rest of the chunk in the same batch, when
    /// it fits likewise, instead of paying a fault round trip per further doubling.
    pub stream_readahead: bool,
    /// On a device fault, migrate the whole aligned block of this many pages around the
    /// faulting page (the pages of it that may move), like UVM's 64 KiB big pages; 1
    /// migrates only faulted pages. Rounded up to a power of two, at most 512 (2 MiB).
    pub dev_fault_block_pages: u64,
    /// On a CPU fault, also bring back up to this many following device-resident pages
    /// of the region (same device) in the same copy batch. 0 disables.
    pub cpu_fault_ahead: usize,
    /// Sequential CPU read-ahead (Linux's on-demand readahead): a CPU fault on the page
    /// right after the previous fault's window in the same space doubles the window
    /// (from `cpu_fault_ahead` + 1 pages) up to this many pages, at most half the staging
    /// pool; any other fault starts again from `cpu_fault_ahead` + 1. 0 (the default), or
    /// a `cpu_fault_ahead` of 0, keeps the window fixed.
    pub cpu_fault_ahead_max: usize,
    /// Device faults in a row whose migration may fail with a device error (a failed
    /// copy, mapping or frame preparation) before the fault stops being answered retry.
    /// Then a device that maps host memory ([`Hooks::HOST_MAPPING`]) maps the page
    /// remotely — its data never left the CPU — and any other device's fault is aborted.
    pub dev_fault_dma_retries: u32,
    /// Attempts (with back-off 1, 2, 4 … 128 ms between them) to bring a page back for a
    /// CPU touch before the page is poisoned and the touching thread gets SIGBUS, like a
    /// hardware memory error (see [`crate::page_table::PageFlags::POISONED`]). At least 1.
    pub cpu_fault_attempts: u32,
    /// Pages a part of a pipelined migration holds at least (on a device with
    /// [`Hooks::ASYNC_COPY`], part k+1 copies while the host commits part k): each part
    /// pays a round of host work, and from about 64 pages on the overlap of its commit
    /// with the next part's copy outweighs that. A plan shorter than two parts is one.
    /// Small parts serve tests and soaks, which then pipeline small plans; 0 counts as 1.
    pub part_pages: usize,
    /// Time source.
    pub clock: Clock,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("cpu", &self.cpu)
            .field("staging_pages", &self.staging_pages)
            .field("prefetch_threshold_pct", &self.prefetch_threshold_pct)
            .field("thrash", &self.thrash)
            .field("require_hooks", &self.require_hooks)
            .field("va_base", &format_args!("{:#x}", self.va_base))
            .field("max_commit_retries", &self.max_commit_retries)
            .field("prefetch_tree", &self.prefetch_tree)
            .field("stream_readahead", &self.stream_readahead)
            .field("dev_fault_block_pages", &self.dev_fault_block_pages)
            .field("cpu_fault_ahead", &self.cpu_fault_ahead)
            .field("cpu_fault_ahead_max", &self.cpu_fault_ahead_max)
            .field("dev_fault_dma_retries", &self.dev_fault_dma_retries)
            .field("cpu_fault_attempts", &self.cpu_fault_attempts)
            .field("part_pages", &self.part_pages)
            .field("clock", &format_args!("<fn() -> ns>"))
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        let start = std::time::Instant::now();
        Config {
            cpu: CpuMode::Userfaultfd,
            staging_pages: 512,
            prefetch_threshold_pct: Some(51),
            thrash: ThrashConfig::default(),
            require_hooks: Hooks::empty(),
            va_base: 1 << 36,
            max_commit_retries: 4,
            cpu_fault_ahead: 15,
            cpu_fault_ahead_max: 0,
            cpu_fault_attempts: 12,
            dev_fault_dma_retries: 3,
            dev_fault_block_pages: 1,
            prefetch_tree: false,
            stream_readahead: false,
            part_pages: 64,
            clock: Arc::new(move || start.elapsed().as_nanos() as u64),
        }
    }
}

/// How CPU accesses to device-resident pages are caught.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CpuMode {
    /// A userfaultfd handler thread (the default). [`Gmem::new`](crate::Gmem::new) fails
    /// with [`CpuError::Unavailable`](crate::CpuError::Unavailable) when the kernel refuses a userfaultfd.
    Userfaultfd,
    /// No userfaultfd: the program calls [`Gmem::cpu_access`](crate::Gmem::cpu_access)
    /// before touching a range. Pages on a device read as zeros until then.
    Manual,
}

/// Thrashing parameters (defaults from UVM where it has one).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ThrashConfig {
    /// Off switch.
    pub enabled: bool,
    /// Events that make a detection (UVM: 3; the NPU stack uses 2, `npu::manager_config`).
    pub threshold: u32,
    /// Window the events must fall in, ns (UVM: 500 µs).
    pub window_ns: u64,
    /// Throttle duration after the first detection, ns.
    pub throttle_ns: u64,
    /// Quiet time after which a pinned page is unpinned, ns.
    pub unpin_after_ns: u64,
}

impl Default for ThrashConfig {
    fn default() -> Self {
        ThrashConfig {
            enabled: true,
            threshold: 3,
            window_ns: 500_000,
            throttle_ns: 1_000_000,
            unpin_after_ns: 100_000_000,
        }
    }
}
