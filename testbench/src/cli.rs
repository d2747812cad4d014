//! The command line of `gmem`: every subcommand, flag and help text (clap), and the
//! parsers of sizes. Checks that need more than one flag live with their command.

use crate::{info, soak, system, workloads};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// GMEM co-simulation driver: unified CPU/NPU memory, checked against cycle-accurate RTL.
#[derive(Parser)]
#[command(name = "gmem", version, about, long_about = None)]
pub struct Cli {
    /// More log output on stderr: -v info, -vv debug, -vvv trace (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
pub enum PteCmd {
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
pub enum ProfileCmd {
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

/// Parses "4096", "64K", "2M".
pub fn parse_size(s: &str) -> Result<u64, String> {
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
