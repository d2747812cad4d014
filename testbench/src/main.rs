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

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// GMEM co-simulation driver: unified CPU/NPU memory, checked against cycle-accurate RTL.
#[derive(Parser)]
#[command(name = "gmem", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    },
    /// Measure device performance in the co-simulation's cycle domain.
    #[command(subcommand)]
    Profile(ProfileCmd),
}

#[derive(Subcommand)]
enum ProfileCmd {
    /// DMA throughput of the RTL engine vs the modelled link, per direction and size.
    ///
    /// Sweeps transfer sizes from 4 KiB to 2 MiB for host→device, device→host,
    /// device→device and both directions at once. Each case queues about 4 MiB of
    /// descriptors, rings one doorbell and counts device cycles to the last completion
    /// interrupt. Efficiency = achieved bytes/cycle ÷ peak bytes/cycle of the limiting
    /// link in the timing model, which every line names.
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

fn run_profile_dma(json: bool, plot: Option<PathBuf>, sizes: Option<Vec<u64>>) -> Result<(), String> {
    let sizes = sizes.unwrap_or_else(|| profile_dma::DEFAULT_SIZES.to_vec());
    if let Some(bad) = sizes.iter().find(|&&s| s > profile_dma::MAX_SIZE) {
        return Err(format!("size {bad} is larger than the profiler's {} MiB buffers; pick sizes up to 4M", profile_dma::MAX_SIZE >> 20));
    }
    let timing = sim_bridge::TimingModel::default();
    if !json {
        println!("DMA profile on the Verilated RTL — timing model: {}", timing.describe());
        println!("{:>6} {:>10} {:>6} {:>10} {:>9} {:>6} {:>10}", "dir", "size", "descs", "cycles", "B/cycle", "eff", "GB/s@250M");
    }
    let cases = profile_dma::sweep(&sizes, timing, |c| {
        if json {
            println!("{}", serde_json::to_string(c).unwrap_or_default());
        } else {
            println!(
                "{:>6} {:>10} {:>6} {:>10} {:>9.2} {:>6.3} {:>10.2}",
                format!("{:?}", c.direction).to_lowercase(),
                c.size_bytes,
                c.descriptors,
                c.cycles,
                c.bytes_per_cycle,
                c.efficiency,
                c.gbps_at_nominal_clock
            );
        }
    })
    .map_err(|e| e.to_string())?;
    if let Some(path) = plot {
        plot::dma_efficiency(&cases, &path)?;
        if !json {
            println!("plot: {}", path.display());
        }
    }
    Ok(())
}

fn run_info(backend: &info::Backend) -> Result<(), String> {
    let text = match backend {
        info::Backend::Rtl => {
            let mut dev = sim_bridge::SimDevice::new(sim_bridge::SimConfig::default()).map_err(|e| e.to_string())?;
            let mut t = info::report(&mut dev).map_err(|e| e.to_string())?;
            t.push_str(&format!("timing model  {}\n", dev.timing().describe()));
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
        println!("  Rust bridge   {:>10} cycles  {:>8.3} s  {:>12.0} cycles/s", bridge.cycles, bridge.wall.as_secs_f64(), bridge.cycles_per_second());
        println!("  bare C++      {:>10} cycles  {:>8.3} s  {:>12.0} cycles/s", bare.cycles, bare.wall.as_secs_f64(), bare.cycles_per_second());
        println!("  ratio (bridge / bare)  {ratio:.3}   (target >= 0.90)");
    }
    if bare.cycles != bridge.cycles {
        return Err(format!("the two runs simulated different cycle counts ({} vs {}): not the same workload", bridge.cycles, bare.cycles));
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { waves } => demo::run(waves).map_err(|e| e.to_string()),
        Command::Info { backend } => run_info(&backend),
        Command::Profile(ProfileCmd::Dma { json, plot, sizes }) => run_profile_dma(json, plot, sizes),
        Command::Profile(ProfileCmd::Cosim { json, size, rounds }) => run_profile_cosim(json, size, rounds),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gmem: error: {e}");
            ExitCode::FAILURE
        }
    }
}
