//! `gmem profile cosim`: the speed of the co-simulation itself, in simulated device
//! cycles per second, per build of the Verilated model and per harness.
//!
//! Configurations: the demo's two scenarios on the shipped build and on the plain
//! reference build of the same RTL (`speedup_vs_plain`), and a DMA copy workload
//! through the Rust bridge and through the bare C++ harness (`bridge_vs_bare`). They
//! run in alternation, one run of each per round (A B C D A B C D …), so load from
//! other processes on a shared machine falls on all of them alike; every figure is the
//! median of the rounds with its minimum and maximum, and each ratio the median of the
//! per-round ratios. Cycles per CPU second (the process's CPU time) are printed next to
//! cycles per wall second: on a loaded machine they move less.

use crate::info::Backend;
use crate::provenance::Provenance;
use crate::system::System;
use crate::workloads::{self, Workload};
use npu::NpuConfig;
use npu::session::{Session, manager_config};
use serde::Serialize;
use sim_bridge::{ModelBuild, SimConfig, SimDevice, TimingModel, cosim};
use std::time::{Duration, Instant};

/// Bytes per copy of the DMA workload (before `--shrink`) and its rounds.
const DMA_BYTES: u64 = 1 << 20;
const DMA_ROUNDS: u32 = 4;

/// Why the profile failed.
#[derive(Debug, thiserror::Error)]
pub enum CosimProfileError {
    /// A run failed.
    #[error("{config} run: {reason}")]
    Run {
        /// Configuration.
        config: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// A configuration simulated another number of cycles than in its first round.
    #[error(
        "{config} simulated {got} cycles in round {round}, {first} in round 1: the co-simulation is not deterministic"
    )]
    NotDeterministic {
        /// Configuration.
        config: &'static str,
        /// Round (from 1).
        round: u32,
        /// Cycles of this round.
        got: u64,
        /// Cycles of round 1.
        first: u64,
    },
    /// Two configurations that must simulate the same cycles did not.
    #[error("{a} simulated {a_cycles} cycles, {b} {b_cycles}: not the same workload")]
    Mismatch {
        /// First configuration.
        a: &'static str,
        /// Its cycles.
        a_cycles: u64,
        /// Second configuration.
        b: &'static str,
        /// Its cycles.
        b_cycles: u64,
    },
}

/// `--shrink`: a power of two from 1 to 64.
pub fn parse_shrink(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if n.is_power_of_two() && n <= 64 => Ok(n),
        _ => Err(format!("accepted: 1, 2, 4, 8, 16, 32 or 64 (`{s}`)")),
    }
}

/// One measured run.
#[derive(Clone, Copy, Debug)]
struct Sample {
    cycles: u64,
    wall: Duration,
    cpu: Duration,
}

impl Sample {
    fn per_wall_s(&self) -> f64 {
        self.cycles as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    fn per_cpu_s(&self) -> f64 {
        self.cycles as f64 / self.cpu.as_secs_f64().max(1e-9)
    }
}

/// The 1-minute load average (`/proc/loadavg`), if readable.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// Times `f`, which returns the cycles it simulated.
fn timed(f: impl FnOnce() -> Result<u64, String>) -> Result<Sample, String> {
    let (t0, c0) = (Instant::now(), cosim::cpu_time());
    let cycles = f()?;
    Ok(Sample { cycles, wall: t0.elapsed(), cpu: cosim::cpu_time().saturating_sub(c0) })
}

/// The demo's scenarios (`gmem demo`) at 1/`shrink` of their size: workload, bytes,
/// device memory for the workload, device memory the driver manages (None: all).
pub(crate) fn demo_scenarios(shrink: u64) -> [(Workload, u64, u64, Option<u64>); 2] {
    use crate::demo::{OVERSUB_ARRAY_BYTES, OVERSUB_DEVICE_BYTES, SHARING_BYTES, SHARING_DEVICE_BYTES};
    let (sharing, sharing_mem) = (SHARING_BYTES, SHARING_DEVICE_BYTES);
    let (oversub, oversub_mem) = (2 * OVERSUB_ARRAY_BYTES, OVERSUB_DEVICE_BYTES);
    [
        (Workload::Add, sharing / shrink, sharing_mem / shrink, None),
        (Workload::Oversubscribe, oversub / shrink, oversub_mem / shrink, Some(oversub_mem / shrink)),
    ]
}

/// Both demo scenarios on `build`, each on a fresh device; returns the cycles simulated
/// and adds those fast-forward skipped to `skipped`.
fn demo_run(build: ModelBuild, sys: &System, shrink: u64, skipped: &mut u64) -> Result<u64, String> {
    let mut cycles = 0;
    for (workload, size, device_mem, managed) in demo_scenarios(shrink) {
        // The plain side is "no PGO, no fast-forward" (issue 23): only the shipped
        // build skips quiescent stretches.
        let fast_forward = build == ModelBuild::Shipped;
        let dev =
            SimDevice::new(SimConfig { model: build, fast_forward, ..sys.sim_config() }).map_err(|e| e.to_string())?;
        let npu = sys.npu(NpuConfig { managed_bytes: managed, ..NpuConfig::default() });
        let s = Session::open(dev, npu, manager_config()).map_err(|e| e.to_string())?;
        workloads::run(&s, workload, size, device_mem, 1, true).map_err(|e| e.to_string())?;
        cycles += s.npu.with_io(|d| d.cycles());
        *skipped += s.npu.with_io(|d| d.fast_forward_stats().skipped_cycles);
    }
    Ok(cycles)
}

/// One configuration: what it runs and its samples.
struct Config {
    name: &'static str,
    workload: String,
    build: &'static str,
    samples: Vec<Sample>,
}

impl Config {
    fn new(name: &'static str, workload: String, build: ModelBuild) -> Self {
        Config { name, workload, build: build.flags(), samples: Vec::new() }
    }

    /// Adds a sample, checking its cycles against round 1's.
    fn push(&mut self, s: Sample) -> Result<(), CosimProfileError> {
        if let Some(first) = self.samples.first()
            && first.cycles != s.cycles
        {
            let round = u32::try_from(self.samples.len() + 1).unwrap_or(u32::MAX);
            return Err(CosimProfileError::NotDeterministic {
                config: self.name,
                round,
                got: s.cycles,
                first: first.cycles,
            });
        }
        self.samples.push(s);
        Ok(())
    }

    fn cycles(&self) -> u64 {
        self.samples.first().map_or(0, |s| s.cycles)
    }
}

/// Median, minimum and maximum.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    /// Median (mean of the middle two for an even count).
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; None if empty.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = match n {
            0 => return None,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Some(Spread { median, min: v[0], max: v[n - 1] })
    }
}

/// One reported figure (one JSON line).
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    /// Stable name.
    pub name: &'static str,
    /// The median; None when not measured (see `note`).
    pub value: Option<f64>,
    /// Unit of `value`, `min` and `max` (`cycles/s`, `cycles/cpu-s`, `ratio`, `fraction`).
    pub unit: &'static str,
    /// Smallest of the rounds.
    pub min: Option<f64>,
    /// Largest of the rounds.
    pub max: Option<f64>,
    /// Rounds measured.
    pub runs: u32,
    /// Configuration (`shipped`, `plain`, `bridge`, `bare`, or `a/b` for a ratio).
    pub config: String,
    /// What was simulated.
    pub workload: String,
    /// Device cycles simulated per run.
    pub cycles: u64,
    /// Build(s) of the model, as their Verilator and C++ options.
    pub build: String,
    /// Why `value` is missing, if it is.
    pub note: Option<String>,
}

fn figure(name: &'static str, unit: &'static str, c: &Config, spread: Option<Spread>, runs: u32) -> Figure {
    Figure {
        name,
        value: spread.map(|s| s.median),
        unit,
        min: spread.map(|s| s.min),
        max: spread.map(|s| s.max),
        runs,
        config: c.name.to_string(),
        workload: c.workload.clone(),
        cycles: c.cycles(),
        build: c.build.to_string(),
        note: None,
    }
}

/// `a`'s rate over `b`'s, round by round.
fn ratio(name: &'static str, a: &Config, b: &Config, rate: fn(&Sample) -> f64, runs: u32) -> Figure {
    let spread = Spread::of(a.samples.iter().zip(&b.samples).map(|(x, y)| rate(x) / rate(y)));
    Figure {
        config: format!("{}/{}", a.name, b.name),
        build: format!("{} | {}", a.build, b.build),
        ..figure(name, "ratio", a, spread, runs)
    }
}

/// The figures of both configurations of a pair (rates and ratios).
fn pair_figures(a: &Config, b: &Config, names: [&'static str; 6], runs: u32) -> Vec<Figure> {
    let wall = |c: &Config| Spread::of(c.samples.iter().map(Sample::per_wall_s));
    let cpu = |c: &Config| Spread::of(c.samples.iter().map(Sample::per_cpu_s));
    vec![
        figure(names[0], "cycles/s", a, wall(a), runs),
        figure(names[1], "cycles/s", b, wall(b), runs),
        ratio(names[2], a, b, Sample::per_wall_s, runs),
        figure(names[3], "cycles/cpu-s", a, cpu(a), runs),
        figure(names[4], "cycles/cpu-s", b, cpu(b), runs),
        ratio(names[5], a, b, Sample::per_cpu_s, runs),
    ]
}

const DEMO_NAMES: [&str; 6] = [
    "shipped_cycles_per_second",
    "plain_cycles_per_second",
    "speedup_vs_plain",
    "shipped_cycles_per_cpu_second",
    "plain_cycles_per_cpu_second",
    "speedup_vs_plain_cpu",
];
const DMA_NAMES: [&str; 6] = [
    "bridge_cycles_per_second",
    "bare_cycles_per_second",
    "bridge_vs_bare",
    "bridge_cycles_per_cpu_second",
    "bare_cycles_per_cpu_second",
    "bridge_vs_bare_cpu",
];

/// The measured figures and the machine's load around them.
pub struct Report {
    /// Figures of the demo workload (shipped vs plain).
    pub demo: Vec<Figure>,
    /// Figures of the DMA workload (bridge vs bare).
    pub dma: Vec<Figure>,
    /// 1-minute load average before and after.
    pub load: (Option<f64>, Option<f64>),
}

/// Runs `runs` rounds of every configuration.
pub fn run(runs: u32, shrink: u64, sys: &System) -> Result<Report, CosimProfileError> {
    let load_before = load_average();
    let plain_linked = ModelBuild::Plain.is_linked();
    let demo = demo_scenarios(shrink)
        .iter()
        .map(|(w, size, mem, _)| format!("{} {} KiB on {} KiB", w.name(), size >> 10, mem >> 10))
        .collect::<Vec<_>>()
        .join(" + ");
    let dma_bytes = DMA_BYTES / shrink;
    let dma = format!("{DMA_ROUNDS} x (H2D + D2H) of {} KiB", dma_bytes >> 10);
    let mut shipped = Config::new("shipped", demo.clone(), ModelBuild::Shipped);
    let mut plain = Config::new("plain", demo, ModelBuild::Plain);
    let mut bridge = Config::new("bridge", dma.clone(), ModelBuild::Shipped);
    let mut bare = Config::new("bare", dma, ModelBuild::Shipped);
    let t = TimingModel::default();
    let failed = |config| move |reason: String| CosimProfileError::Run { config, reason };
    let text = |e: cosim::CosimError| e.to_string();
    // Warm up once (page faults, caches); not counted.
    cosim::bare_dma(dma_bytes, 1, &t).map_err(text).map_err(failed("bare"))?;
    let (mut skipped, mut unused) = (0, 0);
    for _ in 0..runs {
        shipped.push(timed(|| demo_run(ModelBuild::Shipped, sys, shrink, &mut skipped)).map_err(failed("shipped"))?)?;
        if plain_linked {
            plain.push(timed(|| demo_run(ModelBuild::Plain, sys, shrink, &mut unused)).map_err(failed("plain"))?)?;
        }
        let b = cosim::bridge_dma(dma_bytes, DMA_ROUNDS, &t).map_err(text).map_err(failed("bridge"))?;
        bridge.push(Sample { cycles: b.cycles, wall: b.wall, cpu: b.cpu })?;
        let b = cosim::bare_dma(dma_bytes, DMA_ROUNDS, &t).map_err(text).map_err(failed("bare"))?;
        bare.push(Sample { cycles: b.cycles, wall: b.wall, cpu: b.cpu })?;
    }
    for (a, b) in [(&shipped, &plain), (&bridge, &bare)] {
        if !b.samples.is_empty() && a.cycles() != b.cycles() {
            return Err(CosimProfileError::Mismatch {
                a: a.name,
                a_cycles: a.cycles(),
                b: b.name,
                b_cycles: b.cycles(),
            });
        }
    }
    let mut demo = pair_figures(&shipped, &plain, DEMO_NAMES, runs);
    // Fast-forward (shipped side only): the share of device cycles it skipped, the
    // same in every round (the run is deterministic).
    let fraction = skipped as f64 / (shipped.cycles() * u64::from(runs)).max(1) as f64;
    let fraction = Spread { median: fraction, min: fraction, max: fraction };
    demo.push(figure("shipped_fast_forward_skipped", "fraction", &shipped, Some(fraction), runs));
    if !plain_linked {
        let note =
            "not measured: the plain build is not linked into this gmem (build it with `--features plain-model`)";
        for f in demo.iter_mut().filter(|f| f.config != "shipped") {
            f.note = Some(note.to_string());
            f.runs = 0;
            f.cycles = 0;
        }
    }
    Ok(Report { demo, dma: pair_figures(&bridge, &bare, DMA_NAMES, runs), load: (load_before, load_average()) })
}

/// `gmem profile cosim`.
pub fn print(runs: u32, shrink: u64, json: bool, sys: &System) -> Result<(), String> {
    let rep = run(runs, shrink, sys).map_err(|e| e.to_string())?;
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let dma_model = crate::system::System { timing: TimingModel::default(), ..*sys };
    if json {
        let stamp = |f: &Figure, model: &System| {
            let mut v = Provenance::new("profile cosim", &Backend::Rtl, Some(model)).stamp(f);
            v["load_average_before"] = rep.load.0.into();
            v["load_average_after"] = rep.load.1.into();
            v["cpus"] = cpus.into();
            v
        };
        for f in &rep.demo {
            println!("{}", stamp(f, sys));
        }
        for f in &rep.dma {
            println!("{}", stamp(f, &dma_model));
        }
        return Ok(());
    }
    let load = |l: Option<f64>| l.map_or("?".to_string(), |l| format!("{l:.2}"));
    println!(
        "co-simulation speed: {runs} alternating rounds; load average {} -> {} on {cpus} CPUs",
        load(rep.load.0),
        load(rep.load.1)
    );
    let table = |title: &str, model: &System, figs: &[Figure]| {
        println!("\n{title} — model: {}", model.describe());
        if let Some(f) = figs.first() {
            println!("  workload: {}, {} cycles per run", f.workload, f.cycles);
        }
        println!("  {:<30} {:>14} {:>14} {:>14}", "figure", "median", "min", "max");
        for f in figs.iter().filter(|f| f.note.is_none()) {
            let v = |x: Option<f64>| match x {
                Some(x) if f.unit == "ratio" || f.unit == "fraction" => format!("{x:.3}"),
                Some(x) => format!("{x:.0}"),
                None => "-".to_string(),
            };
            println!("  {:<30} {:>14} {:>14} {:>14}  {}", f.name, v(f.value), v(f.min), v(f.max), f.unit);
        }
        if let Some(note) = figs.iter().find_map(|f| f.note.as_ref()) {
            println!("  plain build {note}");
        }
    };
    table("demo workload, shipped vs plain build", sys, &rep.demo);
    table("DMA workload, Rust bridge vs bare C++ harness (shipped build)", &dma_model, &rep.dma);
    println!("\nbuilds:\n  shipped  {}\n  plain    {}", ModelBuild::Shipped.flags(), ModelBuild::Plain.flags());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_median_min_max() {
        assert_eq!(Spread::of([3.0, 1.0, 2.0]), Some(Spread { median: 2.0, min: 1.0, max: 3.0 }));
        assert_eq!(Spread::of([4.0, 1.0, 2.0, 3.0]), Some(Spread { median: 2.5, min: 1.0, max: 4.0 }));
        assert_eq!(Spread::of([]), None);
    }

    #[test]
    fn shrink_takes_powers_of_two_up_to_64() {
        assert_eq!(parse_shrink("64"), Ok(64));
        assert_eq!(parse_shrink("1"), Ok(1));
        for bad in ["0", "3", "128", "x"] {
            assert!(parse_shrink(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_changed_cycle_count_is_refused() {
        let mut c = Config::new("shipped", String::new(), ModelBuild::Shipped);
        let s = Sample { cycles: 10, wall: Duration::from_millis(1), cpu: Duration::from_millis(1) };
        assert!(c.push(s).is_ok());
        assert!(matches!(
            c.push(Sample { cycles: 11, ..s }),
            Err(CosimProfileError::NotDeterministic { round: 2, got: 11, first: 10, .. })
        ));
    }

    #[test]
    fn the_shrunk_demo_keeps_its_constraints() {
        for shrink in [1, 2, 4, 8, 16, 32, 64] {
            let [(_, add, add_mem, _), (_, over, over_mem, _)] = demo_scenarios(shrink);
            assert_eq!(add % (24 << 10), 0, "add needs three arrays of whole pages");
            assert!(add <= add_mem && over > over_mem, "{shrink}");
            assert_eq!(over_mem % (4 << 10), 0);
        }
    }
}
