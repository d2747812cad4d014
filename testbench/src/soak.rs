//! `gmem soak`: random operations on the Verilated RTL and on the reference model side
//! by side, with fault injection on every layer, checking data after every step.
//!
//! Both stacks get the same operation sequence (seeded): CPU writes, kernels (COPY,
//! FILL, ADD, SCALE between distinct regions, so a kernel can be re-run), and hints
//! (prefetch to the NPU or the CPU, DONTNEED). Each stack has its own
//! [`Injector`] with the same seed and rules. An operation that fails is *recovered*:
//! the NPU is soft-reset when the failure came from the device, then the operation runs
//! again with injection paused. After every step the bytes the step wrote are read
//! back on both stacks (through the CPU, so pages fault back) and compared with the
//! expected contents; every 64 steps every region is compared whole.
//!
//! A *mismatch* is a wrong byte on either stack; a *hang* is an operation that still
//! fails after recovery. Both must stay 0.

use std::time::Instant;

use gmem_host::inject::{HOOK_SITES, Injector, RTL_SITES};
use gmem_host::{Hint, Node};
use npu::inject::FaultyIo;
use npu::kernel::Kernel;
use npu::session::Session;
use npu::{DeviceIo, NpuConfig};
use serde::Serialize;

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
}

/// What a soak did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SoakReport {
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
    /// Wrong bytes found (must be 0).
    pub data_mismatches: u64,
    /// Operations that failed even after recovery (must be 0).
    pub hangs: u64,
    /// RTL device cycles at the nominal clock.
    pub rtl_cycles: u64,
    /// Wall time, seconds.
    pub wall_s: f64,
}

const REGIONS: usize = 6;
const REGION_WORDS: usize = 16 * 1024; // 64 KiB
/// Device memory handed to the manager: less than the working set (evictions).
const DEVICE_MEM: u64 = 256 << 10;

/// Injection sites of `--inject`: every hook and every device error. Transport
/// (`io:`) sites are opt-in through `--rule`: a failed CSR access in the middle of a
/// queue protocol is the one failure the driver answers with a device reset only.
fn default_sites() -> Vec<&'static str> {
    HOOK_SITES.iter().chain(RTL_SITES).copied().filter(|s| !matches!(*s, "hook:pmap_create" | "hook:dma_map_host")).collect()
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
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
}

impl Op {
    fn random(g: &mut Rng) -> Op {
        // Mostly short spans (the Verilated NPU runs ~150 k cycles/s; a soak step should
        // cost a few thousand cycles), now and then a long one crossing many pages.
        let span = |g: &mut Rng| {
            let max = if g.below(16) == 0 { REGION_WORDS } else { 384 };
            let n = 1 + g.below(max as u64) as usize;
            let at = g.below((REGION_WORDS - n + 1) as u64) as usize;
            (at, n)
        };
        let three = |g: &mut Rng| {
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
                Op::Write { r: g.below(REGIONS as u64) as usize, at, n, base: g.next() as u32 }
            }
            30..45 => {
                let (a, _, c) = three(g);
                let (at, n) = span(g);
                Op::Copy { a, c, at, n }
            }
            45..55 => {
                let (at, n) = span(g);
                Op::Fill { c: g.below(REGIONS as u64) as usize, at, n, v: g.next() as u32 }
            }
            55..70 => {
                let (a, b, c) = three(g);
                let (at, n) = span(g);
                Op::Add { a, b, c, at, n }
            }
            70..85 => {
                let (a, _, c) = three(g);
                let (at, n) = span(g);
                Op::Scale { a, c, at, n, k: g.next() as u32 | 1 }
            }
            _ => Op::Hint { r: g.below(REGIONS as u64) as usize, which: g.below(3) as u8 },
        }
    }

    /// Applies the op to the expected contents; returns the region and span it wrote.
    fn expect(&self, m: &mut [Vec<u32>]) -> Option<(usize, usize, usize)> {
        match *self {
            Op::Write { r, at, n, base } => {
                (0..n).for_each(|i| m[r][at + i] = base.wrapping_add(i as u32));
                Some((r, at, n))
            }
            Op::Copy { a, c, at, n } => {
                (at..at + n).for_each(|i| m[c][i] = m[a][i]);
                Some((c, at, n))
            }
            Op::Fill { c, at, n, v } => {
                m[c][at..at + n].fill(v);
                Some((c, at, n))
            }
            Op::Add { a, b, c, at, n } => {
                (at..at + n).for_each(|i| m[c][i] = m[a][i].wrapping_add(m[b][i]));
                Some((c, at, n))
            }
            Op::Scale { a, c, at, n, k } => {
                (at..at + n).for_each(|i| m[c][i] = m[a][i].wrapping_mul(k));
                Some((c, at, n))
            }
            Op::Hint { .. } => None,
        }
    }
}

/// One stack under test: a session with injection and its regions.
struct Stack<T: DeviceIo + Send + 'static> {
    s: Session<FaultyIo<T>>,
    inj: Injector,
    regions: Vec<*mut u32>,
}

impl<T: DeviceIo + Send + 'static> Stack<T> {
    fn open(io: T, cfg: &SoakConfig) -> Result<Self, String> {
        let inj = Injector::new(cfg.seed);
        let npu = NpuConfig { managed_bytes: Some(DEVICE_MEM), budget_ns: 4_000_000, ..Default::default() };
        let s = Session::open_faulty(io, npu, npu::session::manager_config(), &inj).map_err(|e| e.to_string())?;
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
        Ok(Stack { s, inj, regions })
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
                self.s.gm.hmadvise(self.s.space, node, va, len, hint).map_err(|e| e.to_string())
            }
            _ => Ok(()),
        }
    }

    /// Runs `op`, recovering from failures; returns (recovered, hung).
    fn run(&self, op: &Op) -> (bool, bool) {
        if self.try_op(op).is_ok() {
            return (false, false);
        }
        // Recover: reset the device (clears hangs and halted engines), then run the
        // operation again with injection paused.
        let ok = self.inj.paused(|| {
            let _ = self.s.npu.recover();
            self.try_op(op).is_ok()
        });
        (true, !ok)
    }

    /// Wrong words in `[at, at+n)` of region `r`.
    fn mismatches(&self, want: &[u32], r: usize, at: usize, n: usize) -> u64 {
        (at..at + n)
            .filter(|&i| {
                // SAFETY: i < REGION_WORDS.
                unsafe { self.regions[r].add(i).read() != want[i] }
            })
            .count() as u64
    }
}

/// Runs the soak; `progress` is called every 256 operations with the report so far.
pub fn run<A, B>(rtl: A, model: B, cfg: &SoakConfig, mut progress: impl FnMut(&SoakReport)) -> Result<SoakReport, String>
where
    A: DeviceIo + Send + 'static,
    B: DeviceIo + Send + 'static,
{
    let t0 = Instant::now();
    let a = Stack::open(rtl, cfg)?;
    let b = Stack::open(model, cfg)?;
    let mut want = vec![vec![0u32; REGION_WORDS]; REGIONS];
    let mut g = Rng(cfg.seed ^ 0x50a6);
    let mut rep = SoakReport::default();
    let c0 = a.s.now_ns();
    for step in 0..cfg.ops {
        let op = Op::random(&mut g);
        let wrote = op.expect(&mut want);
        if matches!(op, Op::Copy { .. } | Op::Fill { .. } | Op::Add { .. } | Op::Scale { .. }) {
            rep.kernels += 1;
        }
        for (recovered, hung) in [a.run(&op), b.run(&op)] {
            rep.recoveries += u64::from(recovered);
            rep.hangs += u64::from(hung);
        }
        if let Some((r, at, n)) = wrote {
            rep.data_mismatches += a.mismatches(&want[r], r, at, n) + b.mismatches(&want[r], r, at, n);
        }
        if step % 64 == 63 {
            for (r, w) in want.iter().enumerate() {
                rep.data_mismatches += a.mismatches(w, r, 0, REGION_WORDS) + b.mismatches(w, r, 0, REGION_WORDS);
            }
        }
        rep.ops = step + 1;
        if step % 256 == 255 {
            fill_counts(&mut rep, &a, &b, c0, t0);
            progress(&rep);
        }
    }
    for (r, w) in want.iter().enumerate() {
        rep.data_mismatches += a.mismatches(w, r, 0, REGION_WORDS) + b.mismatches(w, r, 0, REGION_WORDS);
    }
    fill_counts(&mut rep, &a, &b, c0, t0);
    Ok(rep)
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
    rep.device_resets = a.s.npu.stats().recoveries + b.s.npu.stats().recoveries;
    rep.rtl_cycles = (a.s.now_ns() - c0) * sim_bridge::NOMINAL_HZ / 1_000_000_000;
    rep.wall_s = t0.elapsed().as_secs_f64();
}

impl SoakReport {
    /// The end-of-run table.
    pub fn table(&self) -> String {
        let rows: [(&str, String); 9] = [
            ("ops", format!("{} ({} kernels)", self.ops, self.kernels)),
            ("injected faults", format!("{} on the RTL, {} on the model", self.injected_rtl, self.injected_model)),
            ("recoveries", format!("{} ({} device resets)", self.recoveries, self.device_resets)),
            ("data mismatches", self.data_mismatches.to_string()),
            ("hangs", self.hangs.to_string()),
            ("RTL cycles", self.rtl_cycles.to_string()),
            ("wall time", format!("{:.1} s", self.wall_s)),
            ("ops/s", format!("{:.0}", self.ops as f64 / self.wall_s.max(1e-9))),
            ("verdict", if self.data_mismatches == 0 && self.hangs == 0 { "PASS".into() } else { "FAIL".into() }),
        ];
        rows.iter().map(|(k, v)| format!("  {k:<18} {v}\n")).collect()
    }
}
