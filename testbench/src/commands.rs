//! The commands that need no unified-memory session: `info`, `soak` and `profile`.

use crate::info::Backend;
use crate::provenance::Provenance;
use crate::{Exit, info, plot, profile_dma, profile_faults, soak, system};
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

/// `gmem soak`, its flags checked.
pub fn run_soak(cfg: soak::SoakConfig, json: bool) -> Result<(), Exit> {
    let sim = sim_bridge::SimConfig { timing: cfg.link.timing(), ..Default::default() };
    let rtl = sim_bridge::SimDevice::new(sim).map_err(|e| e.to_string())?;
    let bar =
        if json || cfg.ops < 512 { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(cfg.ops) };
    let rep = soak::run(rtl, npu_refmodel::ModelDevice::default(), &cfg, |r| {
        bar.set_position(r.ops);
        bar.set_message(format!("{} injected, {} mismatches", r.injected_rtl + r.injected_model, r.data_mismatches));
    })?;
    bar.finish_and_clear();
    if json {
        let mut v = Provenance::new("soak", &Backend::Rtl, None).stamp(&rep);
        v["backend"] = "rtl+model".into();
        v["model"] = cfg.link.timing().to_json();
        println!("{v}");
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
