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

/// `gmem soak`, its flags checked: the stack under test on `backend`, its device pages
/// checked by `check` ([`soak::dut_options`] chose it), the reference model beside it.
pub fn run_soak(cfg: soak::SoakConfig, backend: &Backend, check: soak::DeviceCheck, json: bool) -> Result<(), Exit> {
    use soak::{DeviceCheck, Dut};
    let bar =
        if json || cfg.ops < 512 { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(cfg.ops) };
    let progress = |r: &soak::SoakReport| {
        bar.set_position(r.ops);
        bar.set_message(format!("{} injected, {} mismatches", r.injected_rtl + r.injected_model, r.data_mismatches));
    };
    let model = npu_refmodel::ModelDevice::default();
    let rep = match backend {
        Backend::Rtl => {
            let sim = sim_bridge::SimConfig { timing: cfg.link.timing(), ..Default::default() };
            let rtl = sim_bridge::SimDevice::new(sim).map_err(|e| e.to_string())?;
            match check {
                DeviceCheck::Backdoor => soak::run(rtl, model, &cfg, progress)?,
                DeviceCheck::Dma => {
                    let dut = Dut::in_process(rtl, "RTL", check, &cfg, cfg.link.timing().describe());
                    soak::run_on(dut, model, &cfg, progress)?
                }
            }
        }
        Backend::Model => {
            let under_test = npu_refmodel::ModelDevice::default();
            let dut = Dut::in_process(under_test, "model under test", check, &cfg, "untimed reference model".into());
            soak::run_on(dut, model, &cfg, progress)?
        }
        Backend::Vfio(bdf) => {
            let mut dev = vfio_driver::VfioDevice::open(bdf).map_err(|e| e.to_string())?;
            crate::demo::quiesce(&mut dev).map_err(|e| e.to_string())?;
            let name = format!("device at {backend}");
            let dut = Dut::dma(dev, &name, crate::job::VFIO_BUDGET_NS, format!("the device's own ({backend})"));
            soak::run_on(dut, model, &cfg, progress)?
        }
    };
    bar.finish_and_clear();
    if json {
        let mut v = Provenance::new("soak", backend, None).stamp(&rep);
        v["backend"] = format!("{backend}+model").into();
        if *backend == Backend::Rtl {
            v["model"] = cfg.link.timing().to_json();
        }
        println!("{v}");
    } else {
        let rules = if cfg.rules.is_empty() { String::new() } else { format!(", rules {}", cfg.rules.join(" ")) };
        let (dut, how) = match (backend, check) {
            (Backend::Rtl, DeviceCheck::Backdoor) => ("RTL".to_string(), String::new()),
            (_, c) => (backend.to_string(), format!("; {}", c.describe())),
        };
        println!(
            "soak: seed {}, inject {} ppm{rules}, {dut} and reference model side by side{how}",
            cfg.seed, cfg.inject_ppm
        );
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
