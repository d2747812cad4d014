//! The commands that need no unified-memory session: `info`, `soak` and `profile`.

use crate::info::Backend;
use crate::provenance::Provenance;
use crate::{Exit, info, plot, profile_dma, profile_faults, profile_host, soak, soak_merge, soak_shard, system};
use std::path::PathBuf;

/// `gmem profile dma`.
pub fn run_profile_dma(
    json: bool,
    plot: Option<PathBuf>,
    sizes: Option<Vec<u64>>,
    sys: &system::System,
) -> Result<(), Exit> {
    let sizes = sizes.unwrap_or_else(|| profile_dma::DEFAULT_SIZES.to_vec());
    if let Some(bad) = sizes.iter().find(|&&s| s > profile_dma::MAX_SIZE) {
        return Err(Exit::Usage(format!(
            "--sizes: {bad} is larger than the profiler's {} MiB buffers; accepted: 1 byte to 4M",
            profile_dma::MAX_SIZE >> 20
        )));
    }
    if let Some(p) = &plot {
        plot::check_path(p)?;
    }
    if !json {
        println!("DMA profile on the Verilated RTL — model: {}", sys.describe());
        println!(
            "{:<13} {:>10} {:>6} {:>10} {:>9} {:>6} {:>10}",
            "dir", "size", "descs", "cycles", "B/cycle", "eff", "GB/s@250M"
        );
    }
    let prov = Provenance::new("profile dma", &Backend::Rtl, Some(sys));
    let cases = profile_dma::sweep(&sizes, sys, |c| {
        if json {
            println!("{}", prov.stamp(c));
        } else {
            println!(
                "{:<13} {:>10} {:>6} {:>10} {:>9.2} {:>6.3} {:>10.2}",
                c.direction.name(),
                c.size_bytes,
                c.descriptors,
                c.cycles,
                c.bytes_per_cycle,
                c.efficiency,
                c.gigabytes_per_s
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

/// `gmem profile faults`.
pub fn run_profile_faults(json: bool, plot: Option<PathBuf>, size: u64, sys: &system::System) -> Result<(), Exit> {
    if size % (64 << 10) != 0 || size > (32 << 20) {
        return Err(Exit::Usage(format!("--size {size}: accepted: a multiple of 64K from 64K to 32M")));
    }
    if let Some(p) = &plot {
        plot::check_path(p)?;
    }
    if !json {
        println!("unified-memory profile on the Verilated RTL — model: {}", sys.describe());
        println!("{:<26} {:>9}  {:<9} anchor", "figure", "value", "target");
    }
    let prov = Provenance::new("profile faults", &Backend::Rtl, Some(sys));
    let figures = profile_faults::run(size, sys, |f| {
        if json {
            let mut line = prov.stamp(f);
            line["size_bytes"] = size.into();
            println!("{line}");
        } else {
            println!("{:<26} {:>9.3}  {:<9} {}", f.name, f.value, f.target, f.anchor);
            println!("{:<26} {}", "", f.how);
        }
    })?;
    if let Some(p) = plot {
        plot::fault_figures(&figures, &sys.describe(), &p)?;
        if !json {
            println!("plot: {}", p.display());
        }
    }
    Ok(())
}

/// `gmem profile host`: the host-time model's costs measured on this machine.
pub fn run_profile_host(json: bool, samples: u32) -> Result<(), Exit> {
    let cal = profile_host::run(samples as usize).map_err(Exit::Error)?;
    let pinned = cal.cpu.map_or("unpinned (pinning refused)".to_string(), |c| format!("pinned to CPU {c}"));
    if json {
        let prov = Provenance {
            gmem_version: crate::provenance::VERSION,
            command: "profile host",
            backend: "null".into(),
            clock_domain: crate::provenance::ClockDomain::Wall,
            clock_hz: None,
            model: None,
        };
        for c in &cal.costs {
            println!("{}", prov.stamp(c));
        }
        for c in &cal.checks {
            println!("{}", prov.stamp(c));
        }
        let flags = serde_json::json!({ "name": "flags", "value": cal.flags(), "cpu": cal.cpu, "samples": samples });
        println!("{}", prov.stamp(flags));
        return Ok(());
    }
    println!(
        "host-time costs of this machine: the manager on a null device (its own work and system calls), {pinned}, medians of {samples}"
    );
    println!("{:<10} {:>8} {:>8}  from", "cost", "ns", "default");
    for c in &cal.costs {
        println!("{:<10} {:>8} {:>8}  {}", c.name, c.value, c.default, c.how);
    }
    println!("check: each measurement, and what the fitted model charges for it");
    for c in &cal.checks {
        println!("  {:<44} {:>9.2} us   model {:>9.2} us", c.what, c.measured_us, c.model_us);
    }
    println!("flags: {}", cal.flags());
    Ok(())
}

/// `gmem soak`, its flags checked: this process's segments of the run on `threads`
/// worker threads (default: one per core, at most one per segment), the stack under
/// test on `backend` with its device pages checked by `check` ([`soak::dut_options`]
/// chose it), the reference model beside it. A VFIO device is opened once per segment,
/// so it runs on one thread.
pub fn run_soak(
    cfg: soak::SoakConfig,
    plan: soak_shard::Plan,
    threads: Option<u64>,
    backend: &Backend,
    check: soak::DeviceCheck,
    json: bool,
) -> Result<(), Exit> {
    use soak::Dut;
    let segments = plan.shard_segments().count().max(1);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = match backend {
        Backend::Vfio(_) => 1,
        _ => threads.map_or(cores, |t| t as usize).min(segments),
    };
    let ops: u64 = plan.shard_segments().map(|k| plan.segment(cfg.seed, k).ops).sum();
    let bar = if json || ops < 512 { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(ops) };
    let progress = |n| bar.set_position(n);
    let model = npu_refmodel::ModelDevice::default;
    let part = match backend {
        Backend::Rtl => {
            let dut = || {
                let sim = sim_bridge::SimConfig { timing: cfg.link.timing(), ..Default::default() };
                let rtl = sim_bridge::SimDevice::new(sim).map_err(|e| e.to_string())?;
                Ok(Dut::in_process(rtl, "RTL", check, &cfg, cfg.link.timing().describe()))
            };
            soak_shard::run(&cfg, plan, threads, dut, model, progress)?
        }
        Backend::Model => {
            let dut = || {
                let under_test = npu_refmodel::ModelDevice::default();
                Ok(Dut::in_process(under_test, "model under test", check, &cfg, "untimed reference model".into()))
            };
            soak_shard::run(&cfg, plan, threads, dut, model, progress)?
        }
        Backend::Vfio(bdf) => {
            let dut = || {
                let mut dev = vfio_driver::VfioDevice::open(bdf).map_err(|e| e.to_string())?;
                crate::demo::quiesce(&mut dev).map_err(|e| e.to_string())?;
                let name = format!("device at {backend}");
                Ok(Dut::dma(dev, &name, crate::job::VFIO_BUDGET_NS, format!("the device's own ({backend})")))
            };
            soak_shard::run(&cfg, plan, threads, dut, model, progress)?
        }
    };
    bar.finish_and_clear();
    let mut v = Provenance::new("soak", backend, None).stamp(&part);
    v["backend"] = format!("{backend}+model").into();
    if *backend == Backend::Rtl {
        v["model"] = cfg.link.timing().to_json();
    }
    let sides = match (backend, check) {
        (Backend::Rtl, soak::DeviceCheck::Backdoor) => "RTL and reference model side by side".to_string(),
        (_, c) => format!("{backend} and reference model side by side; {}", c.describe()),
    };
    print_soak(&part, &v, &sides, json)
}

/// `gmem soak --merge FILE...`.
pub fn run_soak_merge(files: &[PathBuf], json: bool) -> Result<(), Exit> {
    let (part, first) = soak_merge::merge_files(files).map_err(|e| Exit::Usage(e.to_string()))?;
    let mut v = Provenance::new("soak", &Backend::Rtl, None).stamp(&part);
    for key in ["gmem_version", "backend", "clock_domain", "clock_hz", "model"] {
        v[key] = first[key].clone();
    }
    let backend = first["backend"].as_str().unwrap_or("rtl+model");
    let dut = backend.strip_suffix("+model").unwrap_or(backend);
    let sides = format!("{dut} and reference model side by side; {}", part.report.device_check.describe());
    print_soak(&part, &v, &sides, json)
}

/// Prints a soak's report (`v`: it as JSON with its provenance; `sides`: the stacks
/// compared, in words); exit 3 on FAIL.
fn print_soak(part: &soak_shard::PartReport, v: &serde_json::Value, sides: &str, json: bool) -> Result<(), Exit> {
    let rep = &part.report;
    if json {
        println!("{v}");
    } else {
        let rules = if rep.rules.is_empty() { String::new() } else { format!(", rules {}", rep.rules.join(" ")) };
        println!("soak: seed {}, inject {} ppm{rules}, {sides}", rep.seed, rep.inject_ppm);
        print!("{}", rep.table());
        println!("  {:<18} {}", "segments", part.describe());
    }
    if !rep.passed() {
        return Err(Exit::Failed(format!("soak failed: {} data mismatches, {} hangs", rep.data_mismatches, rep.hangs)));
    }
    Ok(())
}

/// `gmem info`.
pub fn run_info(backend: &Backend, json: bool, sys: &system::System) -> Result<(), String> {
    let rep = match backend {
        Backend::Rtl => {
            let mut dev = sim_bridge::SimDevice::new(sys.sim_config()).map_err(|e| e.to_string())?;
            info::report(&mut dev, backend).map_err(|e| e.to_string())?
        }
        Backend::Model => {
            let mut dev = npu_refmodel::ModelDevice::default();
            info::report(&mut dev, backend).map_err(|e| e.to_string())?
        }
        Backend::Vfio(bdf) => {
            let mut dev = vfio_driver::VfioDevice::open(bdf).map_err(|e| e.to_string())?;
            info::report(&mut dev, backend).map_err(|e| e.to_string())?
        }
    };
    if json {
        println!("{}", Provenance::new("info", backend, Some(sys)).stamp(&rep));
    } else {
        print!("{}", rep.text());
        if *backend == Backend::Rtl {
            println!("model         {}", sys.describe());
        }
    }
    Ok(())
}
