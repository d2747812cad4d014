//! `gmem`: the command-line face of the project.
//!
//! It runs workloads on the unified-memory manager against a device — by default the
//! Verilator co-simulation of the NPU RTL, no board needed — and reports what the
//! device did: identification, cycles, faults, migrations. `gmem demo` is the main job
//! of the README's quick start.

mod demo;

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
    /// Bring up the co-simulated NPU and show what it reports about itself.
    ///
    /// Builds the Verilated RTL model, resets it, and talks to it only through its
    /// AXI4-Lite CSR port, exactly as a driver talks to a board through BAR0: reads the
    /// identification and capability registers, checks a scratch-register write, and
    /// prints the device clock cycles the exchange took.
    Demo {
        /// Write an FST waveform of the run (open with GTKWave or Surfer).
        #[arg(long, value_name = "FILE")]
        waves: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { waves } => demo::run(waves),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gmem: error: {e}");
            ExitCode::FAILURE
        }
    }
}
