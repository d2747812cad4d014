//! `gmem run` and `gmem pte dump`: a workload on a unified-memory session opened on the
//! chosen backend.

use crate::{demo, info, system, workloads};
use std::path::PathBuf;

/// Wall-clock budget of one kernel on a VFIO device: a board needs far less, but the
/// RTL behind QEMU's vfio-user (every fault round trip through a software CPU) more
/// than the 1 s default.
pub const VFIO_BUDGET_NS: u64 = 120_000_000_000;

/// What `gmem run` / `gmem pte dump` do with an open session.
pub enum Job {
    Run { workload: workloads::Workload, size: u64, device_mem: u64, seed: u64, json: bool },
    Dump { workload: workloads::Workload, size: u64, asid: Option<u32>, raw: bool },
}

fn job_on<T: npu::DeviceIo + Send + 'static>(
    s: &npu::session::Session<T>,
    job: &Job,
    backend: &str,
    sys: Option<&system::System>,
) -> Result<(), String> {
    match *job {
        Job::Run { workload, size, device_mem, seed, json } => {
            if !json {
                println!(
                    "gmem run: {workload:?} over {} KiB on {backend} (device memory {} KiB, seed {seed})",
                    size >> 10,
                    device_mem >> 10
                );
            }
            let sum = workloads::run(s, workload, size, device_mem, seed, json).map_err(|e| e.to_string())?;
            if json {
                let mut line = serde_json::to_value(&sum).map_err(|e| e.to_string())?;
                line["model"] = sys.map(|s| s.to_json()).unwrap_or(serde_json::json!({ "backend": backend }));
                println!("{line}");
            } else {
                print!("{}", sum.table());
                match sys {
                    Some(sys) => println!("  model              {}", sys.describe()),
                    None => println!("  model              none: {backend} (device time is its own clock)"),
                }
            }
        }
        Job::Dump { workload, size, asid, raw } => {
            workloads::run(s, workload, size, u64::MAX, 1, true).map_err(|e| e.to_string())?;
            let asid = gmem_host::Asid(asid.unwrap_or(u32::from(s.asid)));
            let text =
                s.npu.pte_dump(asid, raw).map_err(|e| format!("{e} (this run's address space is ASID {})", s.asid))?;
            print!("{text}");
        }
    }
    Ok(())
}

pub fn run_job(
    backend: &info::Backend,
    device_mem: u64,
    waves: Option<PathBuf>,
    job: Job,
    sys: &system::System,
) -> Result<(), String> {
    use npu::session::Session;
    if let Some(w) = &waves {
        if !matches!(backend, info::Backend::Rtl) {
            return Err("--waves needs the rtl backend (only the co-simulation has waveforms)".into());
        }
        std::fs::File::create(w)
            .map_err(|e| format!("cannot write the waveform file {}: {e}; pick a writable path", w.display()))?;
    }
    let dev_limit = 256u64 << 20;
    if device_mem >= dev_limit - (8 << 20) {
        return Err(format!(
            "--device-mem {} MiB does not fit: the NPU has {} MiB, 8 MiB of which hold page tables",
            device_mem >> 20,
            dev_limit >> 20
        ));
    }
    let thrash = matches!(job, Job::Run { workload: workloads::Workload::Thrash, .. });
    let gm_cfg = npu::session::manager_config_thrashing(thrash);
    let npu_cfg = sys.npu(npu::NpuConfig { managed_bytes: Some(device_mem), ..Default::default() });
    match backend {
        info::Backend::Rtl => {
            let dev = sim_bridge::SimDevice::new(sim_bridge::SimConfig { waves, ..sys.sim_config() })
                .map_err(|e| e.to_string())?;
            let s = Session::open(dev, npu_cfg, gm_cfg).map_err(|e| e.to_string())?;
            job_on(&s, &job, "the Verilated RTL", Some(sys))
        }
        info::Backend::Model => {
            let s = Session::open(sim_bridge::ModelDevice::default(), npu_cfg, gm_cfg).map_err(|e| e.to_string())?;
            job_on(&s, &job, "the reference model", None)
        }
        info::Backend::Vfio(bdf) => {
            let mut dev = vfio_driver::VfioDevice::open(bdf).map_err(|e| e.to_string())?;
            demo::quiesce(&mut dev).map_err(|e| e.to_string())?;
            let npu_cfg = npu::NpuConfig { budget_ns: VFIO_BUDGET_NS, ..npu_cfg };
            let s = Session::open(dev, npu_cfg, gm_cfg).map_err(|e| e.to_string())?;
            job_on(&s, &job, bdf, None)
        }
    }
}
