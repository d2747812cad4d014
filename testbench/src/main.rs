//! `gmem`: the command-line face of the project.
//!
//! It runs workloads on the unified-memory manager against a device — by default the
//! Verilator co-simulation of the NPU RTL, no board needed — and reports what the
//! device did: identification, cycles, faults, migrations. `gmem demo` is the main job
//! of the README's quick start.

mod cli;
mod commands;
mod demo;
mod ff_check;
mod info;
mod job;
mod man;
mod plot;
mod profile_cosim;
mod profile_dma;
mod profile_faults;
mod profile_host;
mod provenance;
mod pte;
mod serve;
mod sigbus;
mod soak;
mod soak_merge;
mod soak_shard;
mod system;
mod workloads;

use clap::Parser;
use cli::{Cli, Command, ProfileCmd, PteCmd};
use commands::{run_info, run_profile_dma, run_profile_faults, run_profile_host, run_soak};
use job::{Job, Work, run_job};
use std::process::ExitCode;

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

/// Restores the default action of SIGPIPE (Rust ignores it): `gmem … | head` then ends
/// quietly when `head` closes the pipe, as other command-line tools do, instead of
/// panicking on the next line it prints.
fn end_quietly_on_closed_pipe() {
    // SAFETY: setting a standard signal's disposition to SIG_DFL installs no handler
    // and runs before any thread is started.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

fn main() -> ExitCode {
    end_quietly_on_closed_pipe();
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

/// The model `sys` names; a contradiction among its options is a usage error.
fn system(sys: &system::SystemArgs) -> Result<system::System, Exit> {
    sys.system().map_err(Exit::Usage)
}

/// Runs one command.
fn dispatch(command: Command) -> Result<(), Exit> {
    match command {
        Command::Demo { waves, backend, json, sys } => demo::run(&waves, &backend, json, &system(&sys)?),
        Command::Info { backend, json, sys } => Ok(run_info(&backend, json, &system(&sys)?)?),
        Command::Run { workload, backend, mem, waves, thrash, json, sys } => {
            let size = mem.size(workload);
            let work = Work { workload, size, device_mem: mem.device_mem(workload), seed: mem.seed, thrash };
            run_job(&backend, work, &waves, Job::Run, json, &system(&sys)?)
        }
        Command::Pte(PteCmd::Dump {
            workload,
            device_mem,
            size,
            seed,
            backend,
            asid,
            raw,
            manager,
            thrash,
            json,
            sys,
        }) => {
            let size = size.unwrap_or_else(|| workload.default_size(64 << 10));
            let mem = cli::MemArgs { device_mem, size: Some(size), seed };
            let work = Work { workload, size, device_mem: mem.device_mem(workload), seed, thrash };
            run_job(&backend, work, &cli::WaveArgs::default(), Job::Dump { asid, raw, manager }, json, &system(&sys)?)
        }
        Command::Serve { vfio_user, waves } => Ok(serve::run(&vfio_user, waves)?),
        Command::Soak { json, merge, .. } if !merge.is_empty() => commands::run_soak_merge(&merge, json),
        Command::Soak {
            ops,
            seed,
            inject,
            rules,
            link,
            backend,
            device_check,
            json,
            threads,
            segment_ops,
            shard,
            ..
        } => {
            let plan = soak_shard::Plan { run_ops: ops, segment_ops, shard: shard.unwrap_or_default() };
            soak::validate(inject, &rules).map_err(Exit::Usage).and_then(|()| {
                let check = soak::dut_options(&backend, link, device_check).map_err(|e| Exit::Usage(e.to_string()))?;
                let cfg =
                    soak::SoakConfig { ops, seed, inject_ppm: inject as u32, rules, link: link.unwrap_or_default() };
                run_soak(cfg, plan, threads, &backend, check, json)
            })
        }
        Command::Profile(ProfileCmd::Dma { json, plot, sizes, sys }) => {
            run_profile_dma(json, plot, sizes, &system(&sys)?)
        }
        Command::Profile(ProfileCmd::Cosim { json, runs, shrink, sys }) => {
            Ok(profile_cosim::print(runs, shrink, json, &system(&sys)?)?)
        }
        Command::Profile(ProfileCmd::Host { json, samples }) => run_profile_host(json, samples),
        Command::Profile(ProfileCmd::Faults { json, plot, size, sys }) => {
            run_profile_faults(json, plot, size, &system(&sys)?)
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "gmem", &mut std::io::stdout());
            Ok(())
        }
        Command::Manpage { dir } => man::write(dir.as_deref()).map_err(Exit::Error),
    }
}
