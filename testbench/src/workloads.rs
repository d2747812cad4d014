//! `gmem run`: unified-memory workloads on an NPU session, with a summary.
//!
//! Each workload allocates `PEER_SHARED` memory, lets the CPU write inputs, runs
//! kernels on the NPU (whose faults the manager resolves by migrating pages), checks
//! the results on the CPU (pages fault back through userfaultfd) and reports what it
//! cost in the device's time domain.

use gmem_host::{Hint, Node};
use indicatif::{ProgressBar, ProgressStyle};
use npu::DeviceIo;
use npu::kernel::Kernel;
use npu::session::Session;
use serde::Serialize;

use crate::provenance::ClockDomain;

/// The workloads of `gmem run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Sequential copy of host-written data (a -> c), then CPU check of c.
    Stream,
    /// c = a + b over three arrays of --size/3 (a multiple of 24K): the CPU writes a
    /// and b, the NPU adds, the CPU checks c (the demo's sharing scenario).
    Add,
    /// c[i] = a[idx[i]] with random indices over a.
    Gather,
    /// Stream with a working set larger than the device memory (evictions).
    Oversubscribe,
    /// CPU and NPU take turns writing one word per page, no hints.
    Pingpong,
    /// PREFETCH hint, then a streaming reduction: no device fault during the kernel.
    Prefetch,
    /// Ping-pong with thrashing control: pages that bounce get pinned and mapped remotely.
    Thrash,
}

impl Workload {
    /// The name on the command line (`stream`, `oversubscribe`, …).
    pub fn name(self) -> String {
        format!("{self:?}").to_lowercase()
    }

    /// The default `--size` where a command's is `base`: three quarters of it for
    /// `add`, whose three arrays need a multiple of 24K (4M gives 3M, 64K gives 48K).
    pub fn default_size(self, base: u64) -> u64 {
        if self == Workload::Add { base / 4 * 3 } else { base }
    }
}

/// What a run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Workload name.
    pub workload: String,
    /// Bytes of managed memory the workload touched.
    pub size_bytes: u64,
    /// Kernels run.
    pub kernels: u64,
    /// Elements processed.
    pub elements: u64,
    /// Device time of the whole run, ns.
    pub device_ns: u64,
    /// `device_ns` in cycles of the nominal clock.
    pub cycles: u64,
    /// What `device_ns` was counted in: `simulated` (the co-simulation's device
    /// cycles), `virtual` (the untimed reference model) or `wall` (a board). In JSON
    /// it is the provenance's `clock_domain`.
    #[serde(skip)]
    pub clock: ClockDomain,
    /// Device faults, fault batches, aborted faults.
    pub faults: u64,
    /// Fault batches.
    pub batches: u64,
    /// Faults the manager aborted.
    pub aborted: u64,
    /// Faults the driver answered before their batch ended, while a later part of its
    /// migration still copied (early replays, docs/architecture.md).
    pub early_replays: u64,
    /// Pages migrated host -> device.
    pub pages_h2d: u64,
    /// Pages migrated device -> host.
    pub pages_d2h: u64,
    /// Pages evicted from the device.
    pub evictions: u64,
    /// Pages prefetched by the manager.
    pub prefetched: u64,
    /// Pages mapped remotely (through the host window).
    pub remote_maps: u64,
    /// CPU faults (pages brought back by userfaultfd).
    pub cpu_faults: u64,
    /// DMA bytes moved by migrations.
    pub dma_bytes: u64,
    /// Page-table entries the driver wrote.
    pub pte_writes: u64,
    /// TLB invalidations the driver issued.
    pub tlb_invalidations: u64,
    /// Faults during the kernel phase of `prefetch` (0 expected); null for the others.
    pub faults_during_kernels: Option<u64>,
    /// Every checked element was right.
    pub correct: bool,
}

/// Why a workload failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The size cannot work.
    #[error("{0}")]
    Size(String),
    /// The manager or the device failed.
    #[error("{0}")]
    Run(String),
    /// A result element was wrong.
    #[error("{workload}: element {index} is {got:#x}, expected {want:#x}")]
    Wrong {
        /// Workload.
        workload: &'static str,
        /// Element.
        index: usize,
        /// Read by the CPU.
        got: u32,
        /// Expected.
        want: u32,
    },
}

fn run_err(e: impl std::fmt::Display) -> WorkloadError {
    WorkloadError::Run(e.to_string())
}

/// Elements per kernel launch (progress granularity).
const CHUNK: usize = 16 * 1024;
const PAGE: u64 = 4096;

/// splitmix64 for seeded inputs.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn value(seed: u64, i: usize) -> u32 {
    mix(seed ^ i as u64) as u32
}

fn write(p: *mut u32, n: usize, f: impl Fn(usize) -> u32) {
    for i in 0..n {
        // SAFETY: callers pass a managed region of at least n words.
        unsafe { p.add(i).write(f(i)) };
    }
}

fn check(workload: &'static str, p: *const u32, n: usize, want: impl Fn(usize) -> u32) -> Result<(), WorkloadError> {
    for index in 0..n {
        // SAFETY: callers pass a managed region of at least n words.
        let got = unsafe { p.add(index).read() };
        if got != want(index) {
            return Err(WorkloadError::Wrong { workload, index, got, want: want(index) });
        }
    }
    Ok(())
}

fn progress(len: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("  {bar:40} {pos}/{len} elements {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

/// Runs `make(byte offset, count)` kernels over `n` elements in chunks.
fn chunked<T: DeviceIo + Send>(
    s: &Session<T>,
    n: usize,
    bar: &ProgressBar,
    sum: &mut Summary,
    make: impl Fn(u64, u32) -> Kernel,
) -> Result<u64, WorkloadError> {
    let mut result = 0u64;
    for first in (0..n).step_by(CHUNK) {
        let count = CHUNK.min(n - first);
        let c = s.launch(make(first as u64 * 4, count as u32)).map_err(run_err)?;
        result = result.wrapping_add(c.result);
        sum.kernels += 1;
        sum.elements += count as u64;
        bar.inc(count as u64);
    }
    bar.finish_and_clear();
    Ok(result)
}

/// Runs `w` over `size` bytes on `s`; `quiet` hides the progress bar.
pub fn run<T: DeviceIo + Send>(
    s: &Session<T>,
    w: Workload,
    size: u64,
    device_mem: u64,
    seed: u64,
    quiet: bool,
) -> Result<Summary, WorkloadError> {
    let mut sum = Summary { workload: w.name(), size_bytes: size, correct: true, ..Summary::default() };
    if size < 2 * PAGE || size % (2 * PAGE) != 0 {
        return Err(WorkloadError::Size(format!("--size {size} must be a non-zero multiple of 8 KiB")));
    }
    if w == Workload::Add && size % (3 * 2 * PAGE) != 0 {
        return Err(WorkloadError::Size(format!("add needs --size {size} to be a multiple of 24K (three arrays)")));
    }
    if w == Workload::Oversubscribe && size <= device_mem {
        return Err(WorkloadError::Size(format!(
            "oversubscribe needs --size ({} MiB) larger than --device-mem ({} MiB)",
            size >> 20,
            device_mem >> 20
        )));
    }
    let start_ns = s.now_ns();
    let k0 = s.gm.counters();
    let st0 = s.npu.stats();
    let asid = s.asid;
    match w {
        Workload::Stream | Workload::Oversubscribe => {
            let n = (size / 8) as usize;
            let a = s.alloc(size / 2).map_err(run_err)?;
            let c = s.alloc(size / 2).map_err(run_err)?;
            write(a, n, |i| value(seed, i));
            let bar = progress(n as u64, quiet);
            chunked(s, n, &bar, &mut sum, |off, count| Kernel::copy(asid, a as u64 + off, c as u64 + off, count))?;
            check("stream", c, n, |i| value(seed, i))?;
        }
        Workload::Add => {
            let n = (size / 12) as usize;
            let [a, b, c] = [0; 3].map(|_| s.alloc(size / 3));
            let (a, b, c) = (a.map_err(run_err)?, b.map_err(run_err)?, c.map_err(run_err)?);
            let second = seed ^ 0x0b0b;
            write(a, n, |i| value(seed, i));
            write(b, n, |i| value(second, i));
            let bar = progress(n as u64, quiet);
            chunked(s, n, &bar, &mut sum, |off, count| {
                Kernel::add(asid, a as u64 + off, b as u64 + off, c as u64 + off, count)
            })?;
            check("add", c, n, |i| value(seed, i).wrapping_add(value(second, i)))?;
        }
        Workload::Gather => {
            let n = (size / 8) as usize;
            let a = s.alloc(size / 2).map_err(run_err)?;
            let lookups = n.min(64 * 1024);
            let idx = s.alloc((lookups as u64 * 4).next_multiple_of(PAGE)).map_err(run_err)?;
            let out = s.alloc((lookups as u64 * 4).next_multiple_of(PAGE)).map_err(run_err)?;
            write(a, n, |i| value(seed, i));
            write(idx, lookups, |i| (mix(seed.wrapping_add(i as u64)) % n as u64) as u32);
            let bar = progress(lookups as u64, quiet);
            chunked(s, lookups, &bar, &mut sum, |off, count| {
                Kernel::gather(asid, a as u64, idx as u64 + off, out as u64 + off, count)
            })?;
            check("gather", out, lookups, |i| value(seed, (mix(seed.wrapping_add(i as u64)) % n as u64) as usize))?;
        }
        Workload::Prefetch => {
            let n = (size / 4) as usize;
            let a = s.alloc(size).map_err(run_err)?;
            write(a, n, |i| value(seed, i));
            s.gm.hmadvise(s.space, Node::Device(s.id), a as u64, size, Hint::Prefetch).map_err(run_err)?;
            let before = s.npu.stats().faults;
            let bar = progress(n as u64, quiet);
            let got = chunked(s, n, &bar, &mut sum, |off, count| Kernel::reduce_sum(asid, a as u64 + off, 0, count))?;
            sum.faults_during_kernels = Some(s.npu.stats().faults - before);
            let want = (0..n).fold(0u64, |acc, i| acc.wrapping_add(u64::from(value(seed, i))));
            if got != want {
                return Err(WorkloadError::Run(format!("prefetch: sum {got:#x}, expected {want:#x}")));
            }
        }
        Workload::Pingpong | Workload::Thrash => {
            let pages = (size / PAGE) as usize;
            let p = s.alloc(size).map_err(run_err)?;
            let rounds = 8u32;
            let bar = progress(u64::from(rounds) * pages as u64, quiet);
            for round in 0..rounds {
                write(p, pages * 1024, |i| if i % 1024 == 0 { round } else { 0 });
                let k = Kernel::strided_touch(asid, p as u64, PAGE as u32, pages as u32, Some(round + 100));
                s.launch(k).map_err(run_err)?;
                sum.kernels += 1;
                sum.elements += pages as u64;
                bar.inc(pages as u64);
                for page in 0..pages {
                    // SAFETY: page < pages: word 0 of a page inside the region.
                    let got = unsafe { p.add(page * 1024).read() };
                    if got != round + 100 {
                        return Err(WorkloadError::Wrong {
                            workload: "pingpong",
                            index: page * 1024,
                            got,
                            want: round + 100,
                        });
                    }
                }
            }
            bar.finish_and_clear();
        }
    }
    let k = s.gm.counters();
    let st = s.npu.stats();
    sum.device_ns = s.now_ns() - start_ns;
    sum.cycles = sum.device_ns * sim_bridge::NOMINAL_HZ / 1_000_000_000;
    sum.clock = match s.npu.with_io(|io| io.clock()) {
        npu::Clock::Simulated { .. } => ClockDomain::Simulated,
        npu::Clock::Wall => ClockDomain::Wall,
    };
    sum.faults = st.faults - st0.faults;
    sum.batches = st.batches - st0.batches;
    sum.aborted = st.aborted - st0.aborted;
    sum.early_replays = st.early_replays - st0.early_replays;
    sum.dma_bytes = st.dma_bytes - st0.dma_bytes;
    sum.pte_writes = st.pte_writes - st0.pte_writes;
    sum.tlb_invalidations = st.invalidations - st0.invalidations;
    sum.pages_h2d = k.pages_h2d - k0.pages_h2d;
    sum.pages_d2h = k.pages_d2h - k0.pages_d2h;
    sum.evictions = k.evictions - k0.evictions;
    sum.prefetched = k.prefetched - k0.prefetched;
    sum.remote_maps = k.remote_maps - k0.remote_maps;
    sum.cpu_faults = k.cpu_faults - k0.cpu_faults;
    Ok(sum)
}

impl Summary {
    /// The end-of-run table.
    pub fn table(&self) -> String {
        let ms = self.device_ns as f64 / 1e6;
        let mut rows: Vec<(&str, String)> = vec![
            ("workload", self.workload.clone()),
            ("size", format!("{} KiB", self.size_bytes >> 10)),
            ("kernels", format!("{} ({} elements)", self.kernels, self.elements)),
            ("result", if self.correct { "correct (checked on the CPU)".into() } else { "WRONG".into() }),
            (
                "device time",
                match self.clock {
                    ClockDomain::Wall => format!("{ms:.3} ms (wall clock)"),
                    ClockDomain::Virtual => format!("{ms:.3} ms of virtual time (untimed model: not a prediction)"),
                    ClockDomain::Simulated => {
                        format!("{ms:.3} ms ({} cycles at {} MHz)", self.cycles, sim_bridge::NOMINAL_HZ / 1_000_000)
                    }
                },
            ),
            (
                "device faults",
                format!(
                    "{} in {} batches, {} aborted, {} replayed early",
                    self.faults, self.batches, self.aborted, self.early_replays
                ),
            ),
        ];
        if let Some(n) = self.faults_during_kernels {
            rows.push(("faults in kernels", format!("{n} (after the PREFETCH hint; 0 expected)")));
        }
        rows.extend([
            ("pages host->dev", self.pages_h2d.to_string()),
            ("pages dev->host", self.pages_d2h.to_string()),
            ("evictions", self.evictions.to_string()),
            ("prefetched", self.prefetched.to_string()),
            ("remote maps", self.remote_maps.to_string()),
            (
                "cpu faults",
                format!("{} (userfaultfd); DMA {:.1} MiB", self.cpu_faults, self.dma_bytes as f64 / (1 << 20) as f64),
            ),
        ]);
        rows.iter().map(|(k, v)| format!("  {k:<18} {v}\n")).collect()
    }
}
