//! The commands that need no unified-memory session: `info`, `soak` and `profile`.

use crate::{Exit, info, plot, profile_dma, profile_faults, soak, system};
use std::path::PathBuf;

pub fn run_profile_dma(
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

pub fn run_profile_faults(json: bool, plot: Option<PathBuf>, size: u64, sys: &system::System) -> Result<(), String> {
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

pub fn run_soak(cfg: soak::SoakConfig, json: bool) -> Result<(), Exit> {
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

pub fn run_info(backend: &info::Backend, sys: &system::System) -> Result<(), String> {
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

pub fn run_profile_cosim(json: bool, size: u64, rounds: u32) -> Result<(), String> {
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
