//! `gmem`: the command-line face of the project.
//!
//! It runs workloads on the unified-memory manager against a device — by default the
//! Verilator co-simulation of the NPU RTL, no board needed — and reports what the
//! device did: identification, cycles, faults, migrations. `gmem demo` is the main job
//! of the README's quick start.

mod demo;
mod info;
mod plot;
mod profile_dma;
mod profile_faults;
mod serve;
mod sigbus;
mod soak;
mod system;
mod workloads;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// GMEM co-simulation driver: unified CPU/NPU memory, checked against cycle-accurate RTL.
#[derive(Parser)]
#[command(name = "gmem", version, about, long_about = None)]
struct Cli {
    /// More log output on stderr: -v info, -vv debug, -vvv trace (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

/// Installs the log subscriber: the manager's and driver's events (`tracing`) on
/// stderr. Default level: warnings and errors (lost and poisoned pages are errors); the
/// soak, whose injected failures are expected, logs only with -v or RUST_LOG.
fn init_logging(verbose: u8, quiet: bool, soak: bool) {
    let level = match (quiet, verbose, soak) {
        (true, _, _) => "error",
        (false, 0, true) => "off",
        (false, 0, false) => "warn",
        (false, 1, _) => "info",
        (false, 2, _) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    use std::io::IsTerminal;
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(color).init();
}

#[derive(Subcommand)]
enum Command {
    /// The main job: the co-simulated NPU sharing memory with the CPU.
    ///
    /// Builds the Verilated RTL model and talks to it only through its AXI4-Lite CSR
    /// port and rings in host memory, exactly as a driver talks to a board: reads the
    /// identification, then runs two scenarios through the GMEM manager — the CPU and
    /// the NPU sharing a `PEER_SHARED` region (c = a + b), and a copy whose working set
    /// is 4x the device memory — and reports faults, migrations, evictions, DMA bytes
    /// and cycles.
    Demo {
        /// Write an FST waveform of the run (open with GTKWave or Surfer).
        #[arg(long, value_name = "FILE")]
        waves: Option<PathBuf>,
        /// `rtl` (Verilator co-simulation), `model` or `vfio:<PCI address>` (a board, or
        /// the RTL behind QEMU's vfio-user client).
        #[arg(long, default_value = "rtl")]
        backend: info::Backend,
        #[command(flatten)]
        sys: system::SystemArgs,
    },
    /// Identification, capabilities, status and counters of a device.
    ///
    /// Reads everything through the transport, exactly as the driver does: the
    /// co-simulated RTL by default, or a board with `--backend vfio:0000:01:00.0`
    /// (bound to vfio-pci; see docs/board.md).
    Info {
        /// `rtl` (Verilator co-simulation), `model` (Rust reference model) or
        /// `vfio:<PCI address>`.
        #[arg(long, default_value = "rtl")]
        backend: info::Backend,
        #[command(flatten)]
        sys: system::SystemArgs,
    },
    /// Run a unified-memory workload on the NPU and summarise what it cost.
    ///
    /// The CPU writes inputs into `PEER_SHARED` memory, the NPU runs kernels on it (its
    /// page faults are resolved by the GMEM manager migrating pages with the DMA
    /// engine), and the CPU checks every result (pages come back through userfaultfd).
    /// The summary gives device time, faults, migrations, evictions and DMA bytes.
    ///
    /// Example: `gmem run --workload oversubscribe --device-mem 4M --size 16M`
    Run {
        /// stream | gather | oversubscribe | pingpong | prefetch | thrash
        #[arg(long, value_enum)]
        workload: workloads::Workload,
        /// `rtl` (Verilator co-simulation), `model` (Rust reference model) or
        /// `vfio:<PCI address>`.
        #[arg(long, default_value = "rtl")]
        backend: info::Backend,
        /// Device memory the manager may use (K/M/G suffixes).
        #[arg(long, default_value = "16M", value_parser = parse_size)]
        device_mem: u64,
        /// Bytes of managed memory the workload uses (K/M/G suffixes).
        #[arg(long, default_value = "4M", value_parser = parse_size)]
        size: u64,
        /// Seed of the input data and indices.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write an FST waveform of the run (rtl backend only).
        #[arg(long, value_name = "FILE")]
        waves: Option<PathBuf>,
        /// One JSON object on stdout instead of the table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        sys: system::SystemArgs,
    },
    /// Random operations on the RTL and the reference model side by side, with fault
    /// injection, checking data after every step.
    ///
    /// Both stacks (manager + NPU driver + device) run the same seeded sequence of CPU
    /// writes, kernels and hints over 6 regions of 64 KiB with 256 KiB of device memory
    /// (so pages are evicted). `--inject PPM` makes every hook and every device error
    /// site fail with that probability per million; failed operations are recovered
    /// (device reset, then a re-run). Prints ops, injected faults, recoveries, data
    /// mismatches and hangs; exits non-zero unless both of the last are 0.
    ///
    /// Example: `gmem soak --ops 1000000 --seed 1 --inject 2000`
    Soak {
        /// Operations to run.
        #[arg(long, default_value_t = 20_000)]
        ops: u64,
        /// Seed of the operations and of the injectors.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Failure probability per injection-site consultation, in parts per million
        /// (0 to 1000000).
        #[arg(long, default_value_t = 0)]
        inject: u64,
        /// Extra rule SITE=count:SKIP:TIMES | SITE=rate:PPM | SITE=range:LO:HI
        /// (sites: hook:<GmMmu hook>, io:read32|write32|dma_map|dma_unmap|dma_hold|dma_release|wait_irq|advance|reset,
        /// rtl:host_rd|host_wr|dev_rd|dev_wr|walk|poison|hang_dma|hang_cu). Repeatable.
        #[arg(long = "rule", value_name = "RULE")]
        rules: Vec<String>,
        /// Timing of the RTL's memory ports: `short` (host latency 16 cycles, about 4×
        /// the operations per second) or `nominal` (250 cycles, as in the demo).
        #[arg(long, value_enum, default_value = "short")]
        link: soak::Link,
        /// One JSON object on stdout instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Device page tables.
    #[command(subcommand)]
    Pte(PteCmd),
    /// Serve the co-simulated NPU to a VMM as a PCI device over vfio-user.
    ///
    /// Example: `gmem serve --vfio-user /tmp/npu.sock`, then QEMU with
    /// `-device vfio-user-pci,socket=/tmp/npu.sock` (see docs/vfio-user.md).
    Serve {
        /// UNIX socket to listen on (must not exist).
        #[arg(long, value_name = "SOCKET")]
        vfio_user: PathBuf,
        /// Write an FST waveform of the run.
        #[arg(long, value_name = "FILE")]
        waves: Option<PathBuf>,
    },
    /// Measure device performance in the co-simulation's cycle domain.
    #[command(subcommand)]
    Profile(ProfileCmd),
}

#[derive(Subcommand)]
enum PteCmd {
    /// Run a workload, then print the NPU's page tables as they are in device memory.
    ///
    /// The tables are read back with the DMA engine and rendered sorted by VA: range,
    /// level, size, flags (V R W X U G A D) and target (device frame or host page).
    /// Frame numbers and host addresses are redacted unless `--raw`.
    Dump {
        /// The workload to run first.
        #[arg(long, value_enum, default_value = "stream")]
        workload: workloads::Workload,
        /// Bytes the workload uses.
        #[arg(long, default_value = "64K", value_parser = parse_size)]
        size: u64,
        /// `rtl`, `model` or `vfio:<PCI address>`.
        #[arg(long, default_value = "rtl")]
        backend: info::Backend,
        /// ASID to dump (default: the workload's address space).
        #[arg(long)]
        asid: Option<u32>,
        /// Show device frame numbers and host IOVAs.
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        sys: system::SystemArgs,
    },
}

#[derive(Subcommand)]
enum ProfileCmd {
    /// DMA throughput of the RTL engine vs the modelled link, per direction and size.
    ///
    /// Sweeps transfer sizes from 4 KiB to 2 MiB for host→device, device→host,
    /// device→device and both directions at once. Each case queues about 4 MiB of
    /// descriptors, rings one doorbell and counts device cycles to the last completion
    /// interrupt. Efficiency = achieved bytes/cycle ÷ the payload rate of what limits
    /// the direction in the system model (PCIe payload after TLP overheads per
    /// direction, device memory for D2D), which every line names.
    Dma {
        /// One JSON object per case on stdout instead of a table.
        #[arg(long)]
        json: bool,
        /// Also draw efficiency vs size as an SVG.
        #[arg(long, value_name = "FILE")]
        plot: Option<PathBuf>,
        /// Transfer sizes to sweep (bytes; K/M suffixes allowed), comma separated.
        #[arg(long, value_delimiter = ',', value_parser = parse_size)]
        sizes: Option<Vec<u64>>,
        #[command(flatten)]
        sys: system::SystemArgs,
    },
    /// Unified-memory figures on the RTL: fault-driven streaming, prefetch, CPU
    /// fault-back, oversubscription, ping-pong hints, thrashing control, host cost.
    ///
    /// Every figure is measured in this run, in the co-simulation's cycle domain, and
    /// printed next to its target and the CUDA unified-memory anchor it competes with.
    /// Efficiencies divide a fault-driven rate by the explicit DMA copy rate measured in
    /// the same run on the same model (printed). `host_us_per_fault` is host wall time of
    /// the manager at batch sizes 1, 4, 16 and 256.
    Faults {
        /// One JSON object per figure on stdout instead of a table.
        #[arg(long)]
        json: bool,
        /// Also draw the efficiencies as an SVG.
        #[arg(long, value_name = "FILE")]
        plot: Option<PathBuf>,
        /// Bytes per measured stream (K/M suffixes).
        #[arg(long, default_value = "4M", value_parser = parse_size)]
        size: u64,
        #[command(flatten)]
        sys: system::SystemArgs,
    },
    /// Speed of the co-simulation itself: the Rust bridge vs a bare C++ harness.
    ///
    /// Runs the same DMA workload (host→device and device→host copies at once) on the
    /// same Verilated RTL twice: through the Rust bridge (`SimDevice`, the path every
    /// test and workload uses) and through a bare C++ driver loop built only for this
    /// comparison. Both simulate the same cycles; `ratio` = bridge cycles/s ÷ bare
    /// cycles/s.
    Cosim {
        /// One JSON object on stdout instead of a table.
        #[arg(long)]
        json: bool,
        /// Bytes per copy.
        #[arg(long, default_value = "1M", value_parser = parse_size)]
        size: u64,
        /// Rounds (each round: one copy per direction).
        #[arg(long, default_value_t = 8)]
        rounds: u32,
    },
}

/// Wall-clock budget of one kernel on a VFIO device: a board needs far less, but the
/// RTL behind QEMU's vfio-user (every fault round trip through a software CPU) more
/// than the 1 s default.
const VFIO_BUDGET_NS: u64 = 120_000_000_000;

/// Parses "4096", "64K", "2M".
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a size (examples: 4096, 64K, 2M)"))?;
    n.checked_mul(mult).filter(|&v| v > 0).ok_or_else(|| format!("`{s}` is zero or too large"))
}

fn run_profile_dma(
    json: bool,
    plot: Option<PathBuf>,
    sizes: Option<Vec<u64>>,
    sys: &system::System,
) -> Result<(), String> {
    let sizes = sizes.unwrap_or_else(|| profile_dma::DEFAULT_SIZES.to_vec());
    if let Some(bad) = sizes.iter().find(|&&s| s > profile_dma::MAX_SIZE) {
        return Err(format!(
            "size {bad} is larger than the profiler's {} MiB buffers; pick sizes up to 4M",
            profile_dma::MAX_SIZE >> 20
        ));
    }
    if !json {
        println!("DMA profile on the Verilated RTL — model: {}", sys.describe());
        println!(
            "{:>6} {:>10} {:>6} {:>10} {:>9} {:>6} {:>10}",
            "dir", "size", "descs", "cycles", "B/cycle", "eff", "GB/s@250M"
        );
    }
    let model = sys.to_json();
    let cases = profile_dma::sweep(&sizes, sys, |c| {
        if json {
            let mut line = serde_json::to_value(c).unwrap_or_default();
            line["model"] = model.clone();
            println!("{line}");
        } else {
            println!(
                "{:>6} {:>10} {:>6} {:>10} {:>9.2} {:>6.3} {:>10.2}",
                format!("{:?}", c.direction).to_lowercase(),
                c.size_bytes,
                c.descriptors,
                c.cycles,
                c.bytes_per_cycle,
                c.efficiency,
                c.gbps
            );
        }
    })
    .map_err(|e| e.to_string())?;
    if let Some(path) = plot {
        plot::dma_efficiency(&cases, &sys.describe(), &path)?;
        if !json {
            println!("plot: {}", path.display());
        }
    }
    Ok(())
}

fn run_profile_faults(json: bool, plot: Option<PathBuf>, size: u64, sys: &system::System) -> Result<(), String> {
    if size % (64 << 10) != 0 || size > (32 << 20) {
        return Err(format!("--size {size} must be a multiple of 64K up to 32M"));
    }
    if let Some(p) = &plot {
        std::fs::File::create(p)
            .map_err(|e| format!("cannot write the plot {}: {e}; pick a writable path", p.display()))?;
    }
    if !json {
        println!("unified-memory profile on the Verilated RTL — model: {}", sys.describe());
        println!("{:<26} {:>9}  {:<9} anchor", "figure", "value", "target");
    }
    let model = sys.to_json();
    let figures = profile_faults::run(size, sys, |f| {
        if json {
            let mut line = serde_json::to_value(f).unwrap_or_default();
            line["model"] = model.clone();
            println!("{line}");
        } else {
            println!("{:<26} {:>9.3}  {:<9} {}", f.name, f.value, f.target, f.anchor);
            println!("{:<26} {}", "", f.how);
        }
    })?;
    if let Some(p) = plot {
        plot::fault_figures(&figures, &p)?;
        if !json {
            println!("plot: {}", p.display());
        }
    }
    Ok(())
}

fn run_soak(cfg: soak::SoakConfig, json: bool) -> Result<(), Exit> {
    let sim = sim_bridge::SimConfig { timing: cfg.link.timing(), ..Default::default() };
    let rtl = sim_bridge::SimDevice::new(sim).map_err(|e| e.to_string())?;
    let bar =
        if json || cfg.ops < 512 { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(cfg.ops) };
    let rep = soak::run(rtl, sim_bridge::ModelDevice::default(), &cfg, |r| {
        bar.set_position(r.ops);
        bar.set_message(format!("{} injected, {} mismatches", r.injected_rtl + r.injected_model, r.data_mismatches));
    })?;
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string(&rep).unwrap_or_default());
    } else {
        let rules = if cfg.rules.is_empty() { String::new() } else { format!(", rules {}", cfg.rules.join(" ")) };
        println!("soak: seed {}, inject {} ppm{rules}, RTL and reference model side by side", cfg.seed, cfg.inject_ppm);
        print!("{}", rep.table());
    }
    if !rep.passed() {
        return Err(Exit::Failed(format!("soak failed: {} data mismatches, {} hangs", rep.data_mismatches, rep.hangs)));
    }
    Ok(())
}

fn run_info(backend: &info::Backend, sys: &system::System) -> Result<(), String> {
    let text = match backend {
        info::Backend::Rtl => {
            let mut dev = sim_bridge::SimDevice::new(sys.sim_config()).map_err(|e| e.to_string())?;
            let mut t = info::report(&mut dev).map_err(|e| e.to_string())?;
            t.push_str(&format!("model         {}\n", sys.describe()));
            t
        }
        info::Backend::Model => {
            let mut dev = sim_bridge::ModelDevice::default();
            info::report(&mut dev).map_err(|e| e.to_string())?
        }
        info::Backend::Vfio(bdf) => {
            let mut dev = vfio_driver::VfioDevice::open(bdf).map_err(|e| e.to_string())?;
            info::report(&mut dev).map_err(|e| e.to_string())?
        }
    };
    print!("{text}");
    Ok(())
}

fn run_profile_cosim(json: bool, size: u64, rounds: u32) -> Result<(), String> {
    use sim_bridge::cosim;
    let timing = sim_bridge::TimingModel::default();
    // Warm both paths once (page faults, caches), then measure.
    cosim::bare_dma(size.min(64 << 10), 1, &timing).map_err(|e| e.to_string())?;
    let bare = cosim::bare_dma(size, rounds, &timing).map_err(|e| e.to_string())?;
    let bridge = cosim::bridge_dma(size, rounds, &timing).map_err(|e| e.to_string())?;
    let ratio = bridge.cycles_per_second() / bare.cycles_per_second();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "workload": format!("{rounds} x (H2D + D2H) of {size} bytes"),
                "bridge_cycles": bridge.cycles,
                "bare_cycles": bare.cycles,
                "bridge_cycles_per_second": bridge.cycles_per_second(),
                "bare_cycles_per_second": bare.cycles_per_second(),
                "ratio": ratio,
                "timing": timing.describe(),
            })
        );
    } else {
        println!("co-simulation speed, {rounds} x (H2D + D2H) of {size} bytes — {}", timing.describe());
        println!(
            "  Rust bridge   {:>10} cycles  {:>8.3} s  {:>12.0} cycles/s",
            bridge.cycles,
            bridge.wall.as_secs_f64(),
            bridge.cycles_per_second()
        );
        println!(
            "  bare C++      {:>10} cycles  {:>8.3} s  {:>12.0} cycles/s",
            bare.cycles,
            bare.wall.as_secs_f64(),
            bare.cycles_per_second()
        );
        println!("  ratio (bridge / bare)  {ratio:.3}   (target >= 0.90)");
    }
    if bare.cycles != bridge.cycles {
        return Err(format!(
            "the two runs simulated different cycle counts ({} vs {}): not the same workload",
            bridge.cycles, bare.cycles
        ));
    }
    Ok(())
}

/// What `gmem run` / `gmem pte dump` do with an open session.
enum Job {
    Run { workload: workloads::Workload, size: u64, device_mem: u64, seed: u64, json: bool },
    Dump { workload: workloads::Workload, size: u64, asid: Option<u32>, raw: bool },
}

fn job_on<T: npu::DeviceIo + Send + 'static>(
    s: &npu::session::Session<T>,
    job: &Job,
    backend: &str,
    sys: Option<&system::System>,
) -> Result<(), String> {
    match *job {
        Job::Run { workload, size, device_mem, seed, json } => {
            if !json {
                println!(
                    "gmem run: {workload:?} over {} KiB on {backend} (device memory {} KiB, seed {seed})",
                    size >> 10,
                    device_mem >> 10
                );
            }
            let sum = workloads::run(s, workload, size, device_mem, seed, json).map_err(|e| e.to_string())?;
            if json {
                let mut line = serde_json::to_value(&sum).map_err(|e| e.to_string())?;
                line["model"] = sys.map(|s| s.to_json()).unwrap_or(serde_json::json!({ "backend": backend }));
                println!("{line}");
            } else {
                print!("{}", sum.table());
                match sys {
                    Some(sys) => println!("  model              {}", sys.describe()),
                    None => println!("  model              none: {backend} (device time is its own clock)"),
                }
            }
        }
        Job::Dump { workload, size, asid, raw } => {
            workloads::run(s, workload, size, u64::MAX, 1, true).map_err(|e| e.to_string())?;
            let asid = gmem_host::Asid(asid.unwrap_or(u32::from(s.asid)));
            let text =
                s.npu.pte_dump(asid, raw).map_err(|e| format!("{e} (this run's address space is ASID {})", s.asid))?;
            print!("{text}");
        }
    }
    Ok(())
}

fn run_job(
    backend: &info::Backend,
    device_mem: u64,
    waves: Option<PathBuf>,
    job: Job,
    sys: &system::System,
) -> Result<(), String> {
    use npu::session::Session;
    if let Some(w) = &waves {
        if !matches!(backend, info::Backend::Rtl) {
            return Err("--waves needs the rtl backend (only the co-simulation has waveforms)".into());
        }
        std::fs::File::create(w)
            .map_err(|e| format!("cannot write the waveform file {}: {e}; pick a writable path", w.display()))?;
    }
    let dev_limit = 256u64 << 20;
    if device_mem >= dev_limit - (8 << 20) {
        return Err(format!(
            "--device-mem {} MiB does not fit: the NPU has {} MiB, 8 MiB of which hold page tables",
            device_mem >> 20,
            dev_limit >> 20
        ));
    }
    let thrash = matches!(job, Job::Run { workload: workloads::Workload::Thrash, .. });
    let gm_cfg = npu::session::manager_config_thrashing(thrash);
    let npu_cfg = sys.npu(npu::NpuConfig { managed_bytes: Some(device_mem), ..Default::default() });
    match backend {
        info::Backend::Rtl => {
            let dev = sim_bridge::SimDevice::new(sim_bridge::SimConfig { waves, ..sys.sim_config() })
                .map_err(|e| e.to_string())?;
            let s = Session::open(dev, npu_cfg, gm_cfg).map_err(|e| e.to_string())?;
            job_on(&s, &job, "the Verilated RTL", Some(sys))
        }
        info::Backend::Model => {
            let s = Session::open(sim_bridge::ModelDevice::default(), npu_cfg, gm_cfg).map_err(|e| e.to_string())?;
            job_on(&s, &job, "the reference model", None)
        }
        info::Backend::Vfio(bdf) => {
            let mut dev = vfio_driver::VfioDevice::open(bdf).map_err(|e| e.to_string())?;
            demo::quiesce(&mut dev).map_err(|e| e.to_string())?;
            let npu_cfg = npu::NpuConfig { budget_ns: VFIO_BUDGET_NS, ..npu_cfg };
            let s = Session::open(dev, npu_cfg, gm_cfg).map_err(|e| e.to_string())?;
            job_on(&s, &job, bdf, None)
        }
    }
}

/// How `gmem` ends (docs/cli.md, "Exit codes").
#[derive(Debug)]
pub enum Exit {
    /// Bad input, refused before any work: exit 2 (as clap's own usage errors).
    Usage(String),
    /// The run could not be done (device, simulation, I/O): exit 1.
    Error(String),
    /// The run was done and its verdict is FAIL (soak mismatches or hangs): exit 3.
    Failed(String),
}

impl From<String> for Exit {
    fn from(e: String) -> Self {
        Exit::Error(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet, matches!(cli.command, Command::Soak { .. }));
    sigbus::report_and_exit();
    let result = dispatch(cli.command);
    let (code, text) = match result {
        Ok(()) => return ExitCode::SUCCESS,
        Err(Exit::Usage(e)) => (2, e),
        Err(Exit::Error(e)) => (1, e),
        Err(Exit::Failed(e)) => (3, e),
    };
    eprintln!("gmem: error: {text}");
    ExitCode::from(code)
}

/// Runs one command.
fn dispatch(command: Command) -> Result<(), Exit> {
    match command {
        Command::Demo { waves, backend, sys } => {
            demo::run(waves, &backend, &sys.system()).map_err(|e| Exit::Error(serve::chain(&e)))
        }
        Command::Info { backend, sys } => Ok(run_info(&backend, &sys.system())?),
        Command::Run { workload, backend, device_mem, size, seed, waves, json, sys } => Ok(run_job(
            &backend,
            device_mem,
            waves,
            Job::Run { workload, size, device_mem, seed, json },
            &sys.system(),
        )?),
        Command::Pte(PteCmd::Dump { workload, size, backend, asid, raw, sys }) => {
            Ok(run_job(&backend, 16 << 20, None, Job::Dump { workload, size, asid, raw }, &sys.system())?)
        }
        Command::Serve { vfio_user, waves } => Ok(serve::run(&vfio_user, waves)?),
        Command::Soak { ops, seed, inject, rules, link, json } => soak::validate(inject, &rules)
            .map_err(Exit::Usage)
            .and_then(|()| run_soak(soak::SoakConfig { ops, seed, inject_ppm: inject as u32, rules, link }, json)),
        Command::Profile(ProfileCmd::Dma { json, plot, sizes, sys }) => {
            Ok(run_profile_dma(json, plot, sizes, &sys.system())?)
        }
        Command::Profile(ProfileCmd::Cosim { json, size, rounds }) => Ok(run_profile_cosim(json, size, rounds)?),
        Command::Profile(ProfileCmd::Faults { json, plot, size, sys }) => {
            Ok(run_profile_faults(json, plot, size, &sys.system())?)
        }
    }
}
