//! The command line of `gmem`: every subcommand, flag and help text (clap), and the
//! parsers of sizes. Checks that need more than one flag live with their command.

use crate::{info, soak, soak_shard, system, workloads};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// GMEM co-simulation driver: unified CPU/NPU memory, checked against cycle-accurate RTL.
///
/// Runs workloads on the GMEM unified-memory manager against the NPU — by default its
/// Verilator co-simulation (no board needed), or the untimed reference model, or a
/// board through VFIO — and reports faults, migrations, evictions, DMA bytes and
/// device time under a named system model. Start with `gmem demo`.
#[derive(Parser)]
#[command(
    name = "gmem",
    version = crate::provenance::VERSION,
    after_long_help = EXIT_CODES
)]
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
        #[command(flatten)]
        waves: WaveArgs,
        /// `rtl` (Verilator co-simulation), `model` (the untimed Rust reference model) or
        /// `vfio:<PCI address>` (a board, or the RTL behind QEMU's vfio-user client).
        #[arg(long, default_value = "rtl")]
        backend: info::Backend,
        /// One JSON object per scenario on stdout instead of the report.
        #[arg(long)]
        json: bool,
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
        /// One JSON object on stdout instead of the report.
        #[arg(long)]
        json: bool,
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
        #[command(flatten)]
        mem: MemArgs,
        #[command(flatten)]
        waves: WaveArgs,
        #[command(flatten)]
        thrash: ThrashArgs,
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
    /// mismatches, hangs and the verdict: PASS (exit 0) when the last two are 0, else
    /// FAIL (exit 3). The soak never dies silently: its CPU accesses ask the manager
    /// for the pages first, so a page that cannot come back is an error it recovers.
    ///
    /// With `--backend vfio:BDF` the same soak drives a board (or the RTL behind a
    /// VMM) through VFIO; its device pages are then checked by DMA read-back.
    ///
    /// Both cores: the run is cut into segments (--segment-ops) spread over worker
    /// threads (--threads); many machines: each runs one --shard I/N with --json, then
    /// `gmem soak --merge` joins the reports.
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
        /// Extra rule SITE=count:SKIP:TIMES | SITE=rate:PPM (0 to 1000000) |
        /// SITE=range:LO:HI (sites: hook:<GmMmu hook>,
        /// io:read32|write32|dma_map|dma_unmap|dma_hold|dma_release|wait_irq|wait_host|advance|reset,
        /// rtl:host_rd|host_wr|dev_rd|dev_wr|walk|poison|hang_dma|hang_cu). Repeatable.
        #[arg(long = "rule", value_name = "RULE")]
        rules: Vec<String>,
        /// Timing of the RTL's memory ports: `short` (host latency 16 cycles, about 4×
        /// the operations per second; the default) or `nominal` (250 cycles, as in the
        /// demo). `--backend rtl` only.
        #[arg(long, value_enum)]
        link: Option<soak::Link>,
        /// The stack under test: `rtl` (in-process Verilator co-simulation), `model`, or
        /// `vfio:<PCI address>` (a board, or the RTL behind a VMM's vfio-user client);
        /// the reference model always runs beside it in-process.
        #[arg(long, default_value = "rtl")]
        backend: info::Backend,
        /// How the device-resident pages of the stack under test are checked after
        /// every step: `backdoor` (in-process devices, no device time; the default there)
        /// or `dma` (read back by device-to-host DMA; the only check on vfio).
        #[arg(long, value_enum)]
        device_check: Option<soak::DeviceCheck>,
        /// One JSON object on stdout instead of the table.
        #[arg(long)]
        json: bool,
        /// Worker threads, each with its own RTL and reference model (default: one
        /// per core). The report does not depend on it.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=256))]
        threads: Option<u64>,
        /// Operations per segment: the run is cut into segments of this many ops, each
        /// on fresh stacks with its own seed (segment 0 keeps --seed). The report
        /// depends on it.
        #[arg(long, value_name = "OPS", default_value_t = soak_shard::DEFAULT_SEGMENT_OPS,
              value_parser = clap::value_parser!(u64).range(1..))]
        segment_ops: u64,
        /// Run only segments I, I+N, I+2N, … of the run (one runner of N); merge the
        /// --json reports of all N with --merge.
        #[arg(long, value_name = "I/N")]
        shard: Option<soak_shard::Shard>,
        /// Merge the --json reports of every shard of one run into the whole run's
        /// report (refused, exit 2, when they are of different runs or a shard is
        /// missing or given twice).
        #[arg(long, value_name = "FILE", num_args = 1..,
              conflicts_with_all = ["ops", "seed", "inject", "rules", "link", "backend", "device_check", "threads", "segment_ops", "shard"])]
        merge: Vec<PathBuf>,
    },
    /// Device page tables.
    #[command(subcommand)]
    Pte(PteCmd),
    /// Serve the co-simulated NPU to a VMM as a PCI device over vfio-user.
    ///
    /// Example: `gmem serve --vfio-user /tmp/npu.sock`, then QEMU with
    /// `-device vfio-user-pci,socket=/tmp/npu.sock` (see docs/vfio-user.md). The socket
    /// is removed on exit and on Ctrl-C or SIGTERM; a stale one (its server gone) is
    /// reused. `GMEM_SERVE_TRACE=1` logs every DMA map and unmap of the client.
    Serve {
        /// UNIX socket to listen on (absent, or left by a server that is gone).
        #[arg(long, value_name = "SOCKET")]
        vfio_user: PathBuf,
        /// Write an FST waveform of the run.
        #[arg(long, value_name = "FILE")]
        waves: Option<PathBuf>,
    },
    /// Measure device performance in the co-simulation's cycle domain.
    #[command(subcommand)]
    Profile(ProfileCmd),
    /// Print a shell completion script.
    ///
    /// Example: `gmem completions bash > ~/.local/share/bash-completion/completions/gmem`
    /// (zsh: a file `_gmem` on `$fpath`; fish: `~/.config/fish/completions/gmem.fish`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout, or with --dir write it and one page per
    /// subcommand (`gmem-run.1`, `gmem-pte-dump.1`, …) there; `cargo run -p xtask --
    /// man` writes them to testbench/man/.
    #[command(hide = true)]
    Manpage {
        /// Directory to write every page into.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// Exit codes, printed under `gmem --help` (docs/cli.md has the JSON schemas too).
const EXIT_CODES: &str = "\
Exit codes:
  0    success (a soak: verdict PASS)
  1    the run failed (device, simulation, I/O, a wrong result)
  2    bad input, refused before any work (clap's usage errors too)
  3    a soak ran to the end with verdict FAIL (data mismatches or hangs)
  135  SIGBUS: the CPU touched a poisoned page (reported on stderr first)

Logs go to stderr (-v, -vv, -q, RUST_LOG); results to stdout; --json gives one JSON
object per line (JSON lines), each with gmem_version, command, backend, clock_domain,
clock_hz and model. See docs/cli.md.";

/// `--device-mem`, `--size` and `--seed` of a workload.
#[derive(Clone, Debug, clap::Args)]
pub struct MemArgs {
    /// Device memory the manager may use: a multiple of 4K from 4K to 247M (default
    /// 16M; for `oversubscribe`, half of --size).
    #[arg(long, value_parser = parse_device_mem)]
    pub device_mem: Option<u64>,
    /// Bytes of managed memory the workload uses: a multiple of 8K from 8K to 1G
    /// (default 4M; for `add`, whose three arrays need a multiple of 24K, 3M).
    #[arg(long, value_parser = parse_workload_size)]
    pub size: Option<u64>,
    /// Seed of the input data and indices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl MemArgs {
    /// `--size`, or its default for `workload` (4M, 3M for `add`).
    pub fn size(&self, workload: workloads::Workload) -> u64 {
        self.size.unwrap_or_else(|| workload.default_size(4 << 20))
    }

    /// `--device-mem`, or its default for `workload`.
    pub fn device_mem(&self, workload: workloads::Workload) -> u64 {
        self.device_mem.unwrap_or(match workload {
            workloads::Workload::Oversubscribe => (self.size(workload) / 2).max(4 << 10),
            _ => DEFAULT_DEVICE_MEM,
        })
    }
}

/// The thrashing-control parameters of `gmem run` and `gmem pte dump` (UVM's
/// `uvm_perf_thrashing_lapse_usec` and friends). Their time is the device's clock:
/// simulated time in co-simulation, wall time through VFIO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct ThrashArgs {
    /// Thrashing detection window, µs: a page with `--thrash-threshold` events within it
    /// is pinned on the CPU and mapped remotely (default 5000). Widen it on a slow host
    /// (a VMM under TCG) so that detection does not depend on how fast the CPU runs.
    #[arg(long, value_name = "US", value_parser = clap::value_parser!(u64).range(1..=MAX_THRASH_US))]
    pub thrash_window_us: Option<u64>,
    /// Events within the window that pin a page (default 2: one round trip). An event
    /// is a CPU fault taking the page from the device, or a device fault taking back a
    /// page the CPU took recently.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_THRASH_EVENTS))]
    pub thrash_threshold: Option<u32>,
    /// Quiet time after which a pinned page is unpinned, µs (default 100000).
    #[arg(long, value_name = "US", value_parser = clap::value_parser!(u64).range(1..=MAX_THRASH_US))]
    pub thrash_unpin_us: Option<u64>,
}

/// Longest thrashing window or unpin time: one hour.
const MAX_THRASH_US: u64 = 3_600_000_000;

/// Largest `--thrash-threshold`.
const MAX_THRASH_EVENTS: i64 = 1000;

impl ThrashArgs {
    /// `cfg` with the parameters given on the command line.
    pub fn apply(self, cfg: gmem_host::ThrashConfig) -> gmem_host::ThrashConfig {
        gmem_host::ThrashConfig {
            window_ns: self.thrash_window_us.map_or(cfg.window_ns, |us| us * 1000),
            threshold: self.thrash_threshold.unwrap_or(cfg.threshold),
            unpin_after_ns: self.thrash_unpin_us.map_or(cfg.unpin_after_ns, |us| us * 1000),
            ..cfg
        }
    }
}

/// Default `--device-mem`.
const DEFAULT_DEVICE_MEM: u64 = 16 << 20;

/// `--waves` and what to put in the file.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct WaveArgs {
    /// Write an FST waveform of the run (rtl backend only; open with GTKWave or
    /// Surfer). Timescale 1 ps, one cycle = 4 ns at the 250 MHz clock, one top scope
    /// `npu_top`. Its path and size are printed at the end.
    #[arg(long, value_name = "FILE")]
    pub waves: Option<PathBuf>,
    /// Hierarchy levels to record from `npu_top` (1: its ports and own signals).
    /// Default: all.
    #[arg(long, value_name = "N", requires = "waves", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub waves_depth: Option<u32>,
    /// First cycle to record: a cycle count (`1000`) or a device time (`4us`, `250ns`,
    /// `1ms`; 4 ns per cycle).
    #[arg(long, value_name = "CYCLE|TIME", requires = "waves", value_parser = parse_cycle)]
    pub waves_from: Option<u64>,
    /// Last cycle to record (cycles or time, as --waves-from).
    #[arg(long, value_name = "CYCLE|TIME", requires = "waves", value_parser = parse_cycle)]
    pub waves_to: Option<u64>,
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
        /// Device memory the manager may use: a multiple of 4K from 4K to 247M (default
        /// 16M; for `oversubscribe`, half of --size).
        #[arg(long, value_parser = parse_device_mem)]
        device_mem: Option<u64>,
        /// Bytes the workload uses: a multiple of 8K from 8K to 1G (default 64K; for
        /// `add`, whose three arrays need a multiple of 24K, 48K).
        #[arg(long, value_parser = parse_workload_size)]
        size: Option<u64>,
        /// Seed of the input data and indices.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// `rtl`, `model` or `vfio:<PCI address>`.
        #[arg(long, default_value = "rtl")]
        backend: info::Backend,
        /// ASID to dump (default: the workload's address space).
        #[arg(long)]
        asid: Option<u32>,
        /// Show device frame numbers and host IOVAs (runs are then folded only where
        /// the targets are contiguous).
        #[arg(long)]
        raw: bool,
        /// Also print the manager's logical page table of the space (residency, device
        /// mapping rights, remote/pinned/2M flags, range attributes including
        /// protection), read without faulting or migrating anything.
        #[arg(long)]
        manager: bool,
        #[command(flatten)]
        thrash: ThrashArgs,
        /// One JSON object on stdout instead of the listing.
        #[arg(long)]
        json: bool,
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
        /// Also draw efficiency vs size: `.svg` (checked writable before the run).
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
        /// Also draw the efficiencies: `.svg` (checked writable before the run).
        #[arg(long, value_name = "FILE")]
        plot: Option<PathBuf>,
        /// Bytes per measured stream (K/M suffixes).
        #[arg(long, default_value = "4M", value_parser = parse_size)]
        size: u64,
        #[command(flatten)]
        sys: system::SystemArgs,
    },
    /// The host-time model's costs measured on this machine, as `--host-cost` flags.
    ///
    /// The co-simulation charges host software time from fixed costs measured on the
    /// project's development VM (`--host-time model`). This measures the same operations
    /// here: the manager on a null device (its own work and its userfaultfd/madvise
    /// system calls, no device work), pinned to the CPU it starts on, fault batches of
    /// 1, 4 and 16, PREFETCH of 1 to 1024 pages, CPU faults bringing back 1 and 16
    /// pages, an attribute hint. It fits the model's costs to the medians, prints each
    /// measurement next to the fitted model's charge, and ends with the flags to pass.
    /// The launch cost is the driver's kernel submission on a transport with no device.
    /// Host wall time: the figures vary with load and from machine to machine.
    Host {
        /// One JSON object per cost and per check on stdout, then one with the flags.
        #[arg(long)]
        json: bool,
        /// Samples per measurement (the median counts), 3 to 10000.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(3..=10_000))]
        samples: u32,
    },
    /// Speed of the co-simulation: simulated cycles per second per build of the model.
    ///
    /// Runs the demo's two scenarios (`add` on 3 MiB of shared memory, `oversubscribe`
    /// of 16 MiB on 4 MiB of device memory) on the shipped build of the Verilated RTL and
    /// on the plain build (`verilator --cc`, C++ -O2; in gmem only when built with
    /// `--features plain-model`), and a DMA copy workload through the Rust bridge and
    /// through a bare C++ harness. The configurations alternate, one run each per round,
    /// so load from other processes falls on all alike. Prints the median, minimum and
    /// maximum of the rounds in cycles per wall second and per CPU second, and
    /// `speedup_vs_plain` and `bridge_vs_bare`: medians of the per-round ratios.
    Cosim {
        /// One JSON object per figure on stdout (`name`, `value`, `unit`, …).
        #[arg(long)]
        json: bool,
        /// Rounds (each runs every configuration once), 1 to 100; 5 or more for a spread.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
        runs: u32,
        /// Run the workloads at 1/N of their sizes (1, 2, 4, … 64), for a quick check.
        #[arg(long, default_value_t = 1, value_parser = crate::profile_cosim::parse_shrink)]
        shrink: u64,
        #[command(flatten)]
        sys: system::SystemArgs,
    },
}

/// Parses "4096", "64K", "2M" (at least 1 byte).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a size (examples: 4096, 64K, 2M)"))?;
    match n.checked_mul(mult) {
        Some(0) => Err(format!("`{s}` is zero; a size is at least 1 byte")),
        Some(v) => Ok(v),
        None => Err(format!("`{s}` is too large (more than 2^64 bytes)")),
    }
}

/// A size that is a multiple of `unit` within `[min, max]`; the error names the range.
fn size_in(s: &str, unit: u64, min: u64, max: u64) -> Result<u64, String> {
    let v = parse_size(s)?;
    if v % unit != 0 || v < min || v > max {
        return Err(format!(
            "accepted: a multiple of {} from {} to {} (`{s}` is {v} bytes)",
            show(unit),
            show(min),
            show(max)
        ));
    }
    Ok(v)
}

/// 4096 → "4K", 1 << 30 → "1G".
fn show(v: u64) -> String {
    match v {
        v if v >= 1 << 30 && v % (1 << 30) == 0 => format!("{}G", v >> 30),
        v if v >= 1 << 20 && v % (1 << 20) == 0 => format!("{}M", v >> 20),
        v if v >= 1 << 10 && v % (1 << 10) == 0 => format!("{}K", v >> 10),
        v => v.to_string(),
    }
}

/// Largest `--device-mem`: the NPU's 256 MiB less the 8 MiB that hold page tables,
/// in whole MiB below that bound.
pub const MAX_DEVICE_MEM: u64 = 247 << 20;

/// `--device-mem`: a multiple of 4K from 4K to [`MAX_DEVICE_MEM`].
pub fn parse_device_mem(s: &str) -> Result<u64, String> {
    size_in(s, 4 << 10, 4 << 10, MAX_DEVICE_MEM)
}

/// `--size` of a workload: a multiple of 8K from 8K to 1G (two pages per element pair).
pub fn parse_workload_size(s: &str) -> Result<u64, String> {
    size_in(s, 8 << 10, 8 << 10, 1 << 30)
}

/// A cycle count (`1000`) or a device time at the nominal clock (`250ns`, `4us`, `1ms`).
pub fn parse_cycle(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let ns_per_cycle = 1_000_000_000 / sim_bridge::NOMINAL_HZ;
    let (num, unit_ns) = if let Some(n) = t.strip_suffix("ns") {
        (n, 1)
    } else if let Some(n) = t.strip_suffix("us") {
        (n, 1_000)
    } else if let Some(n) = t.strip_suffix("ms") {
        (n, 1_000_000)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1_000_000_000)
    } else {
        return t.parse().map_err(|_| format!("`{s}` is neither a cycle count (1000) nor a time (250ns, 4us, 1ms)"));
    };
    let n: u64 = num.trim().parse().map_err(|_| format!("`{s}` is not a time (examples: 250ns, 4us, 1ms)"))?;
    n.checked_mul(unit_ns).map(|ns| ns / ns_per_cycle).ok_or_else(|| format!("`{s}` is too long (more than 2^64 ns)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_name_their_accepted_range() {
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("0"), Err("`0` is zero; a size is at least 1 byte".into()));
        assert!(parse_size("99999999999G").unwrap_err().contains("too large"));
        assert_eq!(
            parse_workload_size("4097"),
            Err("accepted: a multiple of 8K from 8K to 1G (`4097` is 4097 bytes)".into())
        );
        assert_eq!(
            parse_device_mem("1000"),
            Err("accepted: a multiple of 4K from 4K to 247M (`1000` is 1000 bytes)".into())
        );
        assert_eq!(parse_device_mem("247M"), Ok(247 << 20));
        assert!(parse_device_mem("248M").is_err());
    }

    #[test]
    fn waveform_bounds_take_cycles_or_time_at_4_ns_per_cycle() {
        assert_eq!(parse_cycle("1000"), Ok(1000));
        assert_eq!(parse_cycle("4us"), Ok(1000));
        assert_eq!(parse_cycle("250ns"), Ok(62));
        assert_eq!(parse_cycle("1ms"), Ok(250_000));
        assert!(parse_cycle("soon").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
