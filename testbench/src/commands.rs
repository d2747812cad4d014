//! The commands that need no unified-memory session: `info`, `soak` and `profile`.

use crate::info::Backend;
use crate::provenance::Provenance;
use crate::{Exit, info, plot, profile_dma, profile_faults, soak, soak_merge, soak_shard, system};
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
            "{:>6} {:>10} {:>6} {:>10} {:>9} {:>6} {:>10}",
            "dir", "size", "descs", "cycles", "B/cycle", "eff", "GB/s@250M"
        );
    }
    let prov = Provenance::new("profile dma", &Backend::Rtl, Some(sys));
    let cases = profile_dma::sweep(&sizes, sys, |c| {
        if json {
            println!("{}", prov.stamp(c));
        } else {
            println!(
                "{:>6} {:>10} {:>6} {:>10} {:>9.2} {:>6.3} {:>10.2}",
                format!("{:?}", c.direction).to_lowercase(),
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

/// `gmem soak`, its flags checked: this process's segments of the run on `threads`
/// worker threads (default: one per core, at most one per segment).
pub fn run_soak(cfg: soak::SoakConfig, plan: soak_shard::Plan, threads: Option<u64>, json: bool) -> Result<(), Exit> {
    let segments = plan.shard_segments().count().max(1);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = threads.map_or(cores, |t| t as usize).min(segments);
    let ops: u64 = plan.shard_segments().map(|k| plan.segment(cfg.seed, k).ops).sum();
    let bar = if json || ops < 512 { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(ops) };
    let rtl = || {
        let sim = sim_bridge::SimConfig { timing: cfg.link.timing(), ..Default::default() };
        sim_bridge::SimDevice::new(sim).map_err(|e| e.to_string())
    };
    let part = soak_shard::run(&cfg, plan, threads, rtl, npu_refmodel::ModelDevice::default, |n| bar.set_position(n))?;
    bar.finish_and_clear();
    let mut v = Provenance::new("soak", &Backend::Rtl, None).stamp(&part);
    v["backend"] = "rtl+model".into();
    v["model"] = cfg.link.timing().to_json();
    print_soak(&part, &v, json)
}

/// `gmem soak --merge FILE...`.
pub fn run_soak_merge(files: &[PathBuf], json: bool) -> Result<(), Exit> {
    let (part, first) = soak_merge::merge_files(files).map_err(|e| Exit::Usage(e.to_string()))?;
    let mut v = Provenance::new("soak", &Backend::Rtl, None).stamp(&part);
    for key in ["gmem_version", "backend", "clock_domain", "clock_hz", "model"] {
        v[key] = first[key].clone();
    }
    print_soak(&part, &v, json)
}

/// Prints a soak's report (`v`: it as JSON with its provenance); exit 3 on FAIL.
fn print_soak(part: &soak_shard::PartReport, v: &serde_json::Value, json: bool) -> Result<(), Exit> {
    let rep = &part.report;
    if json {
        println!("{v}");
    } else {
        let rules = if rep.rules.is_empty() { String::new() } else { format!(", rules {}", rep.rules.join(" ")) };
        println!("soak: seed {}, inject {} ppm{rules}, RTL and reference model side by side", rep.seed, rep.inject_ppm);
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

/// `gmem profile cosim`.
pub fn run_profile_cosim(json: bool, size: u64, rounds: u32) -> Result<(), String> {
    use sim_bridge::cosim;
    let timing = sim_bridge::TimingModel::default();
    // Warm both paths once (page faults, caches), then measure.
    cosim::bare_dma(size.min(64 << 10), 1, &timing).map_err(|e| e.to_string())?;
    let bare = cosim::bare_dma(size, rounds, &timing).map_err(|e| e.to_string())?;
    let bridge = cosim::bridge_dma(size, rounds, &timing).map_err(|e| e.to_string())?;
    let ratio = bridge.cycles_per_second() / bare.cycles_per_second();
    if json {
        let mut v = Provenance::new("profile cosim", &Backend::Rtl, None).stamp(serde_json::json!({
            "workload": format!("{rounds} x (H2D + D2H) of {size} bytes"),
            "size_bytes": size,
            "rounds": rounds,
            "bridge_cycles": bridge.cycles,
            "bare_cycles": bare.cycles,
            "bridge_cycles_per_second": bridge.cycles_per_second(),
            "bare_cycles_per_second": bare.cycles_per_second(),
            "ratio": ratio,
        }));
        v["model"] = timing.to_json();
        println!("{v}");
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
