//! `gmem soak`: random operations on the Verilated RTL and on the reference model side
//! by side, with fault injection on every layer, checking data after every step.
//!
//! Both stacks get the same operation sequence (seeded): CPU writes, kernels (COPY,
//! FILL, ADD, SCALE between distinct regions, so a kernel can be re-run), and hints
//! (prefetch to the NPU or the CPU, DONTNEED). Each stack has its own
//! [`Injector`] with the same seed and rules. An operation that fails is *recovered*:
//! the NPU is soft-reset when the failure came from the device, then the operation runs
//! again with injection paused. After every step every byte of every region is
//! compared with the expected contents on both stacks *where it lives*: pages on the
//! CPU through their host mapping, pages on the NPU in device memory through the test
//! backdoor — so checking moves nothing and costs no device time. CPU reads that fault
//! pages back are operations of their own (`Read`), and the end of the run reads
//! everything through the CPU.
//!
//! A *mismatch* is a wrong byte on either stack; a *hang* is an operation that still
//! fails after recovery. Both must stay 0; the first hang is reported with its op
//! number and error, so `--seed` and `--ops` reproduce it.
//!
//! The soak's own CPU accesses never fault a page back implicitly: before the CPU
//! writes or reads a range it calls [`gmem_host::Gmem::cpu_access`], which returns a
//! failed fault-back as an error (recovered like any other) instead of leaving it to
//! the userfaultfd handler, which would poison the page and end the process with
//! SIGBUS. A poisoned page (`poisoned_pages`) is never touched by the CPU; it is
//! compared where it lives, on the device.
//!
//! The RTL runs behind a short link by default ([`Link::Short`]: host latency 16
//! cycles instead of 250), which does the same work in about a quarter of the cycles;
//! `--link nominal` soaks with the default PCIe timing.
//!
//! The stack under test need not be the in-process RTL: [`run_segment`] takes any
//! transport (`gmem soak --backend vfio:BDF`: a board, or the RTL behind a VMM's
//! vfio-user client). A board has no backdoor into device memory, so there its
//! device-resident pages are checked by reading them back with the DMA engine
//! ([`DeviceCheck::Dma`], [`npu::NpuDevice::read_device_mem`]: device→host into the
//! driver's staging page, nothing moves), with injection paused; that costs device
//! time, so the default in-process soak keeps the backdoor. Injection works the same
//! on every transport: `hook:` and `io:` sites are host software, and `rtl:` sites
//! write the device's own error-injection registers over MMIO (device.md §12).

use std::time::Instant;

use gmem_host::inject::{HOOK_SITES, Injector, SplitMix64};
use gmem_host::{Hint, Node, Residency};
use npu::inject::{FaultyIo, RTL_SITES};
use npu::kernel::Kernel;
use npu::session::Session;
use npu::{DeviceIo, NpuConfig};
use serde::{Deserialize, Serialize};
use sim_bridge::{DevMemBackdoor, TimingModel};

use crate::info::Backend;

/// Soak parameters.
#[derive(Clone, Debug)]
pub struct SoakConfig {
    /// Operations to run.
    pub ops: u64,
    /// Seed of the operation sequence and of the injectors.
    pub seed: u64,
    /// Failure probability per consultation of every injection site, per million.
    pub inject_ppm: u32,
    /// Extra injection rules (`SITE=count:SKIP:TIMES` …, see `gmem_host::inject`).
    pub rules: Vec<String>,
    /// Timing of the RTL's memory ports.
    pub link: Link,
}

/// Largest injection rate: every consultation fails.
pub const MAX_PPM: u64 = 1_000_000;

/// Checks `--inject` and the rates of `--rule SITE=rate:PPM` (0–1 000 000) and that
/// every rule parses; the error names the flag and the accepted range.
pub fn validate(inject_ppm: u64, rules: &[String]) -> Result<(), String> {
    if inject_ppm > MAX_PPM {
        return Err(format!(
            "--inject {inject_ppm} is out of range: a rate in parts per million, 0 to {MAX_PPM} (100 %)"
        ));
    }
    for r in rules {
        let rate = r.split_once('=').and_then(|(_, t)| t.strip_prefix("rate:"));
        if let Some(ppm) = rate.and_then(|p| p.parse::<u64>().ok()).filter(|&p| p > MAX_PPM) {
            return Err(format!("--rule {r}: rate {ppm} is out of range: parts per million, 0 to {MAX_PPM} (100 %)"));
        }
        npu::inject::injector(0).add_text(r).map_err(|e| format!("--rule {r}: {e}"))?;
    }
    Ok(())
}

/// How the soak reads the device-resident pages of the stack under test.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DeviceCheck {
    /// Device memory through the test backdoor: no device time passes; in-process
    /// devices only.
    #[default]
    Backdoor,
    /// Device→host DMA into the driver's staging page: works on a board; costs device
    /// time (one descriptor per 4 KiB page).
    Dma,
}

impl DeviceCheck {
    /// One phrase for the report.
    pub fn describe(self) -> &'static str {
        match self {
            DeviceCheck::Backdoor => "device pages read through the test backdoor",
            DeviceCheck::Dma => "device pages read back by device-to-host DMA",
        }
    }
}

/// Soak options that do not apply to the stack under test.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DutError {
    /// `--device-check backdoor` on a device without a backdoor.
    #[error(
        "--device-check backdoor needs an in-process device (rtl or model); {backend} has no backdoor into device memory: use --device-check dma"
    )]
    NoBackdoor {
        /// The backend.
        backend: String,
    },
    /// `--link` on a device whose ports are not simulated here.
    #[error(
        "--link sets the port timing of the in-process RTL; {backend} has its own (drop --link or use --backend rtl)"
    )]
    LinkNotSimulated {
        /// The backend.
        backend: String,
    },
}

/// Checks the soak options that depend on the stack under test (`--backend`) and
/// returns the device check to use: the backdoor in-process unless `--device-check dma`,
/// DMA read-back on VFIO; `--link` only on the in-process RTL.
pub fn dut_options(backend: &Backend, link: Option<Link>, check: Option<DeviceCheck>) -> Result<DeviceCheck, DutError> {
    let in_process = !matches!(backend, Backend::Vfio(_));
    if link.is_some() && *backend != Backend::Rtl {
        return Err(DutError::LinkNotSimulated { backend: backend.to_string() });
    }
    match check {
        Some(DeviceCheck::Backdoor) if !in_process => Err(DutError::NoBackdoor { backend: backend.to_string() }),
        Some(c) => Ok(c),
        None if in_process => Ok(DeviceCheck::Backdoor),
        None => Ok(DeviceCheck::Dma),
    }
}

/// Reads `len` bytes of a stack's device memory at a device-physical address.
type ReadDevice<T> = fn(&Stack<T>, u64, &mut [u8]) -> Result<(), String>;

/// The stack under test: its transport and how its device-resident pages are checked.
pub struct Dut<T: DeviceIo + Send + 'static> {
    io: T,
    check: DeviceCheck,
    read: ReadDevice<T>,
    /// Device-time budget of one wait.
    budget_ns: u64,
    /// What the stack is, in the report ("RTL", "vfio:0000:00:03.0").
    name: String,
    /// Its timing, for the report.
    timing: String,
}

impl<T: DeviceIo + DevMemBackdoor + Send + 'static> Dut<T> {
    /// An in-process device checked through its backdoor (the default soak).
    pub fn backdoor(io: T, name: &str, cfg: &SoakConfig) -> Self {
        Dut::in_process(io, name, DeviceCheck::Backdoor, cfg, cfg.link.timing().describe())
    }

    /// An in-process device, its pages checked by `check`, `timing` as reported.
    pub fn in_process(io: T, name: &str, check: DeviceCheck, cfg: &SoakConfig, timing: String) -> Self {
        let mut d = Dut::dma(io, name, cfg.link.budget_ns(), timing);
        if check == DeviceCheck::Backdoor {
            d.check = check;
            d.read = |st, pa, out| st.s.npu.with_io(|io| io.inner().backdoor_read(pa, out)).map_err(|e| e.to_string());
        }
        d
    }
}

impl<T: DeviceIo + Send + 'static> Dut<T> {
    /// A device checked by DMA read-back, `budget_ns` per wait, `timing` as reported.
    pub fn dma(io: T, name: &str, budget_ns: u64, timing: String) -> Self {
        Dut { io, check: DeviceCheck::Dma, read: read_by_dma::<T>, budget_ns, name: name.into(), timing }
    }
}

/// [`DeviceCheck::Dma`], injection paused. An error armed earlier in the device's
/// error-injection registers (`rtl:` sites count bursts) can meet the check's own
/// descriptor: the device is then reset and read once more.
fn read_by_dma<T: DeviceIo + Send + 'static>(st: &Stack<T>, pa: u64, out: &mut [u8]) -> Result<(), String> {
    st.inj.paused(|| {
        st.s.npu.read_device_mem(pa, out).or_else(|first| {
            st.s.npu.recover().map_err(|e| format!("{first}; the reset before reading again failed: {e}"))?;
            st.s.npu.read_device_mem(pa, out).map_err(|e| e.to_string())
        })
    })
}

/// Timing of the RTL's memory ports during a soak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Link {
    /// Host latency 16 cycles: about 4× the operations per second of `nominal`.
    #[default]
    Short,
    /// Host latency 250 cycles (1 µs), the ideal link of the profilers.
    Nominal,
}

impl Link {
    /// The RTL's port timing.
    pub fn timing(self) -> TimingModel {
        match self {
            Link::Short => TimingModel::short_link(),
            Link::Nominal => TimingModel::default(),
        }
    }

    /// The RTL's port timing, the host-time model and the driver's pushes (always on in
    /// a soak, so their paths run under injection), for the report.
    pub fn describe(self) -> String {
        let host = npu::HostTime::Model(npu::HostCosts::progress_only()).describe();
        format!("{} {host} push=on", self.timing().describe())
    }

    /// Device-time budget of one wait: a hung engine is detected after this long. On the
    /// short link, 2.5× the slowest whole operation of a 10⁶-op soak (`max_op_cycles`
    /// 40 060 cycles = 160 µs; one wait is only part of an operation).
    fn budget_ns(self) -> u64 {
        match self {
            Link::Short => 400_000,
            Link::Nominal => 4_000_000,
        }
    }
}

/// What a soak did (or one segment or shard of it: `crate::soak_shard` merges them).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SoakReport {
    /// Seed of the operations and injectors (`--seed`).
    pub seed: u64,
    /// `--inject`, parts per million.
    pub inject_ppm: u32,
    /// `--rule`s.
    pub rules: Vec<String>,
    /// Operations run (on each stack).
    pub ops: u64,
    /// Kernels among them.
    pub kernels: u64,
    /// Failures injected on the RTL stack and on the model stack.
    pub injected_rtl: u64,
    /// Failures injected on the model stack.
    pub injected_model: u64,
    /// Operations that failed and were recovered (both stacks).
    pub recoveries: u64,
    /// Soft resets of the NPUs (both stacks).
    pub device_resets: u64,
    /// Parts of pipelined migrations, both stacks (4 pages a part in the soak).
    pub pipelined_parts: u64,
    /// Device faults the NPU drivers replayed while their batch's later parts still
    /// copied (both stacks).
    pub early_replays: u64,
    /// Wrong bytes found (must be 0).
    pub data_mismatches: u64,
    /// Operations that failed even after recovery (must be 0).
    pub hangs: u64,
    /// The first of them: op number (0-based), the op, the stack and the error.
    pub first_hang: Option<String>,
    /// The op number of `first_hang` (the end-of-segment reads count as the op after
    /// the segment's last).
    pub first_hang_op: Option<u64>,
    /// Pages poisoned on either stack (the CPU could not get them back); the soak
    /// never touches them from the CPU.
    pub poisoned_pages: u64,
    /// `PASS` when data mismatches and hangs are both 0, else `FAIL` (recomputed, not
    /// read, from a JSON report).
    #[serde(skip_deserializing)]
    pub verdict: &'static str,
    /// RTL device cycles at the nominal clock.
    pub rtl_cycles: u64,
    /// RTL cycles of the slowest operation during which no fault was injected on the
    /// RTL stack (what the wait budget must cover).
    pub max_op_cycles: u64,
    /// The RTL's port timing ([`TimingModel::describe`]); in JSON the structured
    /// `model` of the provenance replaces it.
    #[serde(skip)]
    pub timing: String,
    /// Device memory each stack's manager may use, bytes.
    pub device_mem_bytes: u64,
    /// Managed bytes the soak works on (regions × region size).
    pub size_bytes: u64,
    /// Wall time, seconds.
    pub wall_s: f64,
    /// How the stack under test's device-resident pages were checked.
    pub device_check: DeviceCheck,
    /// Device time of the stack under test when its clock is the wall clock (a board):
    /// `rtl_cycles` and `max_op_cycles` are 0 then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_wall_s: Option<f64>,
    /// The stack under test in the report's text ("RTL", "vfio:0000:00:03.0").
    #[serde(skip)]
    pub dut: String,
}

const REGIONS: usize = 6;
const REGION_WORDS: usize = 16 * 1024; // 64 KiB
/// Device memory handed to the manager: less than the working set (evictions).
const DEVICE_MEM: u64 = 256 << 10;
/// Pages a part of a pipelined migration holds (`gmem_host::Config::part_pages`): small,
/// so that the 64 KiB regions' migrations and evictions are pipelined and their faults
/// replayed early, as a long stream's are.
const PART_PAGES: usize = 4;

/// Injection sites of `--inject`: every hook and every device error. Transport
/// (`io:`) sites are opt-in through `--rule`: a failed CSR access in the middle of a
/// queue protocol is the one failure the driver often answers with a device reset only
/// (the default run's soak test adds `io:write32`).
fn default_sites() -> Vec<&'static str> {
    HOOK_SITES
        .iter()
        .chain(RTL_SITES)
        .copied()
        .filter(|s| !matches!(*s, "hook:pmap_create" | "hook:dma_map_host"))
        .collect()
}

/// One operation, applied identically to each stack.
#[derive(Clone, Copy, Debug)]
enum Op {
    Write { r: usize, at: usize, n: usize, base: u32 },
    Copy { a: usize, c: usize, at: usize, n: usize },
    Fill { c: usize, at: usize, n: usize, v: u32 },
    Add { a: usize, b: usize, c: usize, at: usize, n: usize },
    Scale { a: usize, c: usize, at: usize, n: usize, k: u32 },
    Hint { r: usize, which: u8 },
    Read { r: usize, at: usize, n: usize },
}

impl Op {
    fn random(g: &mut SplitMix64) -> Op {
        // Mostly short spans (the Verilated NPU runs ~150 k cycles/s; a soak step should
        // cost a few thousand cycles), now and then a long one crossing many pages.
        let span = |g: &mut SplitMix64| {
            let max = if g.below(32) == 0 { REGION_WORDS } else { 128 };
            let n = 1 + g.below(max as u64) as usize;
            let at = g.below((REGION_WORDS - n + 1) as u64) as usize;
            (at, n)
        };
        let three = |g: &mut SplitMix64| {
            let a = g.below(REGIONS as u64) as usize;
            let b = (a + 1 + g.below(REGIONS as u64 - 1) as usize) % REGIONS;
            let mut c = g.below(REGIONS as u64) as usize;
            while c == a || c == b {
                c = (c + 1) % REGIONS;
            }
            (a, b, c)
        };
        match g.below(100) {
            0..30 => {
                let (at, n) = span(g);
                Op::Write { r: g.below(REGIONS as u64) as usize, at, n, base: g.next_u64() as u32 }
            }
            30..45 => {
                let (a, _, c) = three(g);
                let (at, n) = span(g);
                Op::Copy { a, c, at, n }
            }
            45..55 => {
                let (at, n) = span(g);
                Op::Fill { c: g.below(REGIONS as u64) as usize, at, n, v: g.next_u64() as u32 }
            }
            55..70 => {
                let (a, b, c) = three(g);
                let (at, n) = span(g);
                Op::Add { a, b, c, at, n }
            }
            70..85 => {
                let (a, _, c) = three(g);
                let (at, n) = span(g);
                Op::Scale { a, c, at, n, k: g.next_u64() as u32 | 1 }
            }
            85..93 => Op::Hint { r: g.below(REGIONS as u64) as usize, which: g.below(3) as u8 },
            _ => {
                let (at, n) = span(g);
                Op::Read { r: g.below(REGIONS as u64) as usize, at, n }
            }
        }
    }

    /// Applies the op to the expected contents.
    fn expect(&self, m: &mut [Vec<u32>]) {
        match *self {
            Op::Write { r, at, n, base } => {
                (0..n).for_each(|i| m[r][at + i] = base.wrapping_add(i as u32));
            }
            Op::Copy { a, c, at, n } => {
                (at..at + n).for_each(|i| m[c][i] = m[a][i]);
            }
            Op::Fill { c, at, n, v } => {
                m[c][at..at + n].fill(v);
            }
            Op::Add { a, b, c, at, n } => {
                (at..at + n).for_each(|i| m[c][i] = m[a][i].wrapping_add(m[b][i]));
            }
            Op::Scale { a, c, at, n, k } => {
                (at..at + n).for_each(|i| m[c][i] = m[a][i].wrapping_mul(k));
            }
            Op::Hint { .. } | Op::Read { .. } => {}
        }
    }
}

/// One stack under test: a session with injection and its regions.
struct Stack<T: DeviceIo + Send + 'static> {
    s: Session<FaultyIo<T>>,
    inj: Injector,
    regions: Vec<*mut u32>,
    read: ReadDevice<T>,
}

impl<T: DeviceIo + Send + 'static> Stack<T> {
    fn open(dut: Dut<T>, cfg: &SoakConfig, va_base: u64) -> Result<Self, String> {
        let Dut { io, read, budget_ns, .. } = dut;
        let inj = Injector::new(cfg.seed);
        // Correctness, not figures: host time only as much as progress needs, as the
        // budgets (Link::budget_ns) were calibrated.
        let npu = NpuConfig {
            managed_bytes: Some(DEVICE_MEM),
            budget_ns,
            host_time: npu::HostTime::Model(npu::HostCosts::progress_only()),
            // The pushed paths (off by default: they cost more than they save on a board
            // link) are exercised here, under injection.
            push: true,
            ..Default::default()
        };
        let gm = gmem_host::Config { va_base, part_pages: PART_PAGES, ..npu::session::manager_config() };
        let s = Session::open_faulty(io, npu, gm, &inj).map_err(|e| e.to_string())?;
        let regions = (0..REGIONS)
            .map(|_| s.alloc((REGION_WORDS * 4) as u64).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        for &p in &regions {
            (0..REGION_WORDS).for_each(|i| {
                // SAFETY: i < REGION_WORDS, inside the region.
                unsafe { p.add(i).write(0) }
            });
        }
        if cfg.inject_ppm > 0 {
            inj.add_rate_all(&default_sites(), cfg.inject_ppm).map_err(|e| e.to_string())?;
        }
        for r in &cfg.rules {
            inj.add_text(r).map_err(|e| e.to_string())?;
        }
        Ok(Stack { s, inj, regions, read })
    }

    fn kernel(&self, op: &Op) -> Option<Kernel> {
        let (asid, at) = (self.s.asid, |r: usize, at: usize| self.regions[r] as u64 + at as u64 * 4);
        Some(match *op {
            Op::Copy { a, c, at: o, n } => Kernel::copy(asid, at(a, o), at(c, o), n as u32),
            Op::Fill { c, at: o, n, v } => Kernel::fill(asid, at(c, o), n as u32, v),
            Op::Add { a, b, c, at: o, n } => Kernel::add(asid, at(a, o), at(b, o), at(c, o), n as u32),
            Op::Scale { a, c, at: o, n, k } => Kernel::scale(asid, at(a, o), at(c, o), n as u32, k),
            _ => return None,
        })
    }

    /// Runs `op` once; Err is the failure text.
    fn try_op(&self, op: &Op) -> Result<(), String> {
        if let Some(k) = self.kernel(op) {
            return self.s.launch(k).map(|_| ()).map_err(|e| e.to_string());
        }
        match *op {
            Op::Write { r, at, n, base } => {
                self.cpu_access(r, at, n, true)?;
                (0..n).for_each(|i| {
                    // SAFETY: at + n <= REGION_WORDS.
                    unsafe { self.regions[r].add(at + i).write(base.wrapping_add(i as u32)) }
                });
                Ok(())
            }
            Op::Hint { r, which } => {
                let (va, len) = (self.regions[r] as u64, (REGION_WORDS * 4) as u64);
                let (node, hint) = match which {
                    0 => (Node::Device(self.s.id), Hint::Prefetch),
                    1 => (Node::Cpu, Hint::Prefetch),
                    _ => (Node::Device(self.s.id), Hint::DontNeed),
                };
                self.s.gm.hmadvise(self.s.space, node, va, len, hint).map(drop).map_err(|e| e.to_string())
            }
            // The caller compares what the CPU reads (it has the expected contents).
            Op::Read { r, at, n } => self.cpu_access(r, at, n, false),
            // Kernels ran above.
            _ => Ok(()),
        }
    }

    /// Brings words `[at, at+n)` of region `r` to the CPU (for writing if `write`)
    /// through the manager, so a failure is an error here and never a SIGBUS later.
    fn cpu_access(&self, r: usize, at: usize, n: usize, write: bool) -> Result<(), String> {
        let va = self.regions[r] as u64 + at as u64 * 4;
        self.s.gm.cpu_access(va, n as u64 * 4, write).map_err(|e| e.to_string())
    }

    /// Runs `op`, recovering from failures; returns whether it was recovered, and the
    /// error if it still failed after recovery (a hang).
    fn run(&self, op: &Op) -> (bool, Option<String>) {
        if self.try_op(op).is_ok() {
            return (false, None);
        }
        // Recover: reset the device (clears hangs and halted engines), then run the
        // operation again with injection paused.
        let retry = self.inj.paused(|| {
            let _ = self.s.npu.recover();
            self.try_op(op)
        });
        (true, retry.err())
    }

    /// Region `r` as it is now, read where each page lives without moving it.
    fn peek(&self, r: usize) -> Result<Vec<u32>, String> {
        let mut out = vec![0u32; REGION_WORDS];
        let base = self.regions[r] as u64;
        for (page, words) in out.chunks_mut(1024).enumerate() {
            let va = base + page as u64 * 4096;
            let info = self.s.gm.page_info(self.s.space, va).ok_or_else(|| format!("{va:#x} is not managed"))?;
            let mut bytes = [0u8; 4096];
            match (info.residency, info.device_pa) {
                (Residency::Device, Some(pa)) => {
                    (self.read)(self, pa, &mut bytes)?;
                }
                (Residency::Device, None) => return Err(format!("{va:#x} on the device without a frame")),
                (Residency::Unpopulated, _) => {}
                // SAFETY: the page is present on the CPU (CPU-resident or a read
                // duplicate): reading it through the region does not fault.
                _ => unsafe { std::ptr::copy_nonoverlapping(va as *const u8, bytes.as_mut_ptr(), 4096) },
            }
            for (w, b) in words.iter_mut().zip(bytes.chunks_exact(4)) {
                *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        Ok(out)
    }

    /// Wrong words of every region, read where they live.
    fn peek_mismatches(&self, want: &[Vec<u32>]) -> Result<u64, String> {
        let mut bad = 0;
        for (r, w) in want.iter().enumerate() {
            bad += self.peek(r)?.iter().zip(w).filter(|(a, b)| a != b).count() as u64;
        }
        Ok(bad)
    }

    /// Wrong words in `[at, at+n)` of region `r`, read through the CPU; only after a
    /// successful [`Op::Read`] of that range (the pages are on the CPU).
    fn mismatches(&self, want: &[u32], r: usize, at: usize, n: usize) -> u64 {
        (at..at + n)
            .filter(|&i| {
                // SAFETY: i < REGION_WORDS.
                unsafe { self.regions[r].add(i).read() != want[i] }
            })
            .count() as u64
    }
}

/// A stretch of a soak's operations run on fresh stacks: ops `[first_op, first_op +
/// ops)` of the run, generated and injected from `seed` (`crate::soak_shard` derives
/// it from the run's seed and the segment's index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Seed of this segment's operations and injectors.
    pub seed: u64,
    /// Number of the segment's first op in the whole run.
    pub first_op: u64,
    /// Operations in the segment.
    pub ops: u64,
    /// Lowest host virtual address of both stacks' regions.
    pub va_base: u64,
}

/// Runs one segment of the soak of `cfg` (whose `ops` is the whole run's; the whole
/// run is `crate::soak_shard::run`) with `dut` as the stack under test (a board:
/// [`Dut::dma`]) and `model` beside it; the report names the run's seed and numbers
/// ops as in the whole run. `progress` is called every 256 operations with the report
/// so far.
pub fn run_segment<A, B>(
    dut: Dut<A>,
    model: B,
    cfg: &SoakConfig,
    seg: Segment,
    mut progress: impl FnMut(&SoakReport),
) -> Result<SoakReport, String>
where
    A: DeviceIo + Send + 'static,
    B: DeviceIo + DevMemBackdoor + Send + 'static,
{
    let t0 = Instant::now();
    let run_cfg = cfg;
    let cfg = &SoakConfig { seed: seg.seed, ops: seg.ops, ..cfg.clone() };
    let mut rep = SoakReport::new(run_cfg).under_test(&dut);
    let a = Stack::open(dut, cfg, seg.va_base)?;
    let b = Stack::open(Dut::backdoor(model, "model", cfg), cfg, seg.va_base)?;
    let mut want = vec![vec![0u32; REGION_WORDS]; REGIONS];
    let mut g = SplitMix64::new(cfg.seed ^ 0x50a6);
    let c0 = a.s.now_ns();
    let wall = a.s.npu.with_io(|io| io.clock()) == npu::Clock::Wall;
    for step in 0..cfg.ops {
        let op = Op::random(&mut g);
        op.expect(&mut want);
        if matches!(op, Op::Copy { .. } | Op::Fill { .. } | Op::Add { .. } | Op::Scale { .. }) {
            rep.kernels += 1;
        }
        let step = seg.first_op + step;
        crate::sigbus::set_soak_op(run_cfg.seed, step);
        let (before, injected) = (a.s.now_ns(), a.inj.total());
        let results = [a.run(&op), b.run(&op)];
        if a.inj.total() == injected && !wall {
            rep.max_op_cycles = rep.max_op_cycles.max(ns_to_cycles(a.s.now_ns() - before));
        }
        for ((recovered, hung), (stack, name)) in
            results.iter().zip([(&a as &dyn Check, rep.dut.clone()), (&b, "model".into())])
        {
            rep.recoveries += u64::from(*recovered);
            match hung {
                Some(e) => rep.hang(step, &op, &name, e),
                // A read the CPU could not be given is a hang, not a read.
                None => {
                    if let Op::Read { r, at, n } = op {
                        rep.data_mismatches += stack.mismatches(&want[r], r, at, n);
                    }
                }
            }
        }
        rep.data_mismatches += a.peek_mismatches(&want)? + b.peek_mismatches(&want)?;
        rep.ops = step + 1 - seg.first_op;
        if rep.ops % 256 == 0 {
            fill_counts(&mut rep, &a, &b, c0, t0);
            progress(&rep);
        }
    }
    // The end of the run reads everything through the CPU, as an operation of its own
    // (recovered like any other) per region and stack.
    for (r, w) in want.iter().enumerate() {
        let read = Op::Read { r, at: 0, n: REGION_WORDS };
        for (stack, name) in [(&a as &dyn Check, rep.dut.clone()), (&b, "model".into())] {
            let (recovered, hung) = stack.run_op(&read);
            rep.recoveries += u64::from(recovered);
            match hung {
                Some(e) => rep.hang(seg.first_op + seg.ops, &read, &name, &e),
                None => rep.data_mismatches += stack.mismatches(w, r, 0, REGION_WORDS),
            }
        }
    }
    crate::sigbus::clear_soak_op();
    fill_counts(&mut rep, &a, &b, c0, t0);
    Ok(rep)
}

/// What the soak loop needs of a stack whatever its device type.
trait Check {
    fn run_op(&self, op: &Op) -> (bool, Option<String>);
    fn mismatches(&self, want: &[u32], r: usize, at: usize, n: usize) -> u64;
}

impl<T: DeviceIo + Send + 'static> Check for Stack<T> {
    fn run_op(&self, op: &Op) -> (bool, Option<String>) {
        self.run(op)
    }
    fn mismatches(&self, want: &[u32], r: usize, at: usize, n: usize) -> u64 {
        Stack::mismatches(self, want, r, at, n)
    }
}

fn fill_counts<A: DeviceIo + Send + 'static, B: DeviceIo + Send + 'static>(
    rep: &mut SoakReport,
    a: &Stack<A>,
    b: &Stack<B>,
    c0: u64,
    t0: Instant,
) {
    rep.injected_rtl = a.inj.total();
    rep.injected_model = b.inj.total();
    let (sa, sb) = (a.s.npu.stats(), b.s.npu.stats());
    rep.device_resets = sa.recoveries + sb.recoveries;
    rep.early_replays = sa.early_replays + sb.early_replays;
    rep.pipelined_parts = a.s.gm.counters().pipelined_parts + b.s.gm.counters().pipelined_parts;
    if a.s.npu.with_io(|io| io.clock()) == npu::Clock::Wall {
        rep.device_wall_s = Some((a.s.now_ns() - c0) as f64 * 1e-9);
    } else {
        rep.rtl_cycles = ns_to_cycles(a.s.now_ns() - c0);
    }
    rep.wall_s = t0.elapsed().as_secs_f64();
    rep.poisoned_pages = a.s.gm.counters().poisoned + b.s.gm.counters().poisoned;
    rep.verdict = if rep.passed() { "PASS" } else { "FAIL" };
}

fn ns_to_cycles(ns: u64) -> u64 {
    ns * sim_bridge::NOMINAL_HZ / 1_000_000_000
}

impl SoakReport {
    /// The report of no operations of the soak of `cfg`, the RTL under test with its
    /// backdoor (see [`SoakReport::under_test`]).
    pub fn new(cfg: &SoakConfig) -> Self {
        SoakReport {
            seed: cfg.seed,
            inject_ppm: cfg.inject_ppm,
            rules: cfg.rules.clone(),
            timing: cfg.link.describe(),
            dut: "RTL".into(),
            device_mem_bytes: DEVICE_MEM,
            size_bytes: (REGIONS * REGION_WORDS * 4) as u64,
            verdict: "PASS",
            ..Default::default()
        }
    }

    /// This report with `dut` as the stack under test: its name, timing and check.
    pub fn under_test<T: DeviceIo + Send + 'static>(mut self, dut: &Dut<T>) -> Self {
        let host = npu::HostTime::Model(npu::HostCosts::progress_only()).describe();
        self.timing = format!("{} {host}", dut.timing);
        self.device_check = dut.check;
        self.dut.clone_from(&dut.name);
        self
    }

    /// No wrong byte and no operation that failed after recovery.
    pub fn passed(&self) -> bool {
        self.data_mismatches == 0 && self.hangs == 0
    }

    fn hang(&mut self, step: u64, op: &Op, stack: &str, error: &str) {
        self.hangs += 1;
        if self.first_hang.is_none() {
            self.first_hang = Some(format!("op {step} {op:?} on the {stack}: {error}"));
            self.first_hang_op = Some(step);
        }
    }

    /// The end-of-run table.
    pub fn table(&self) -> String {
        let mut rows: Vec<(&str, String)> = vec![
            ("ops", format!("{} ({} kernels)", self.ops, self.kernels)),
            (
                "injected faults",
                format!("{} on the {}, {} on the model", self.injected_rtl, self.dut, self.injected_model),
            ),
            ("recoveries", format!("{} ({} device resets)", self.recoveries, self.device_resets)),
            (
                "pipelined",
                format!("{} migration parts, {} faults replayed early", self.pipelined_parts, self.early_replays),
            ),
            ("data mismatches", self.data_mismatches.to_string()),
            (
                "hangs",
                match &self.first_hang {
                    Some(first) => format!("{} (first: {first})", self.hangs),
                    None => "0".into(),
                },
            ),
            ("poisoned pages", format!("{} (never touched by the CPU)", self.poisoned_pages)),
        ];
        match self.device_wall_s {
            // A board's clock is the wall clock: no cycle counts, no port model.
            Some(s) => rows.extend([
                ("device time", format!("{s:.1} s (wall clock of the {})", self.dut)),
                ("device check", self.device_check.describe().into()),
            ]),
            None => rows.extend([
                ("RTL cycles", self.rtl_cycles.to_string()),
                ("slowest clean op", format!("{} cycles", self.max_op_cycles)),
                ("RTL port timing", self.timing.clone()),
            ]),
        }
        rows.extend([
            ("wall time", format!("{:.1} s", self.wall_s)),
            ("ops/s", format!("{:.0}", self.ops as f64 / self.wall_s.max(1e-9))),
            ("verdict", self.verdict.into()),
        ]);
        rows.iter().map(|(k, v)| format!("  {k:<18} {v}\n")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The DMA check reads device-resident pages where they live: a byte changed in
    /// device memory behind the driver's back is seen, and nothing moves.
    #[test]
    fn the_dma_check_sees_device_memory_without_moving_pages() {
        let cfg = SoakConfig { ops: 0, seed: 1, inject_ppm: 0, rules: vec![], link: Link::Short };
        let sim = sim_bridge::SimConfig { timing: cfg.link.timing(), ..Default::default() };
        let rtl = sim_bridge::SimDevice::new(sim).expect("the RTL model builds");
        let dut = Dut::dma(rtl, "RTL", cfg.link.budget_ns(), cfg.link.timing().describe());
        let st = Stack::open(dut, &cfg, npu::session::manager_config().va_base).expect("a session on the RTL");
        let mut want = vec![vec![0u32; REGION_WORDS]; REGIONS];
        let write = Op::Write { r: 0, at: 0, n: 2048, base: 7 };
        write.expect(&mut want);
        assert_eq!(st.run(&write), (false, None));
        assert_eq!(st.run(&Op::Hint { r: 0, which: 0 }), (false, None), "prefetch to the NPU");
        let va = st.regions[0] as u64;
        let info = st.s.gm.page_info(st.s.space, va).expect("managed");
        let pa = match (info.residency, info.device_pa) {
            (Residency::Device, Some(pa)) => pa,
            other => panic!("the prefetched page is not on the device: {other:?}"),
        };
        assert_eq!(st.peek_mismatches(&want), Ok(0), "the DMA read-back equals what the CPU wrote");
        st.s.npu.with_io(|io| io.inner().backdoor_write(pa + 8, &[0xff; 4])).expect("backdoor write");
        assert_eq!(st.peek_mismatches(&want), Ok(1), "one word changed in device memory");
        let after = st.s.gm.page_info(st.s.space, va).expect("managed");
        assert_eq!((after.residency, after.device_pa), (Residency::Device, Some(pa)), "checking moved nothing");
    }

    #[test]
    fn options_that_need_the_in_process_rtl_are_refused_elsewhere() {
        let vfio = Backend::Vfio("0000:01:00.0".into());
        assert_eq!(dut_options(&Backend::Rtl, None, None), Ok(DeviceCheck::Backdoor));
        assert_eq!(dut_options(&Backend::Model, None, Some(DeviceCheck::Dma)), Ok(DeviceCheck::Dma));
        assert_eq!(dut_options(&vfio, None, None), Ok(DeviceCheck::Dma));
        assert_eq!(
            dut_options(&vfio, None, Some(DeviceCheck::Backdoor)),
            Err(DutError::NoBackdoor { backend: "vfio:0000:01:00.0".into() })
        );
        assert_eq!(
            dut_options(&Backend::Model, Some(Link::Short), None),
            Err(DutError::LinkNotSimulated { backend: "model".into() })
        );
        assert_eq!(dut_options(&Backend::Rtl, Some(Link::Nominal), Some(DeviceCheck::Dma)), Ok(DeviceCheck::Dma));
    }
}
