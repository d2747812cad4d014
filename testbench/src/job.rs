//! `gmem run` and `gmem pte dump`: a workload on a unified-memory session opened on the
//! chosen backend. Every check on the flags runs before anything is printed.

use crate::cli::{MAX_DEVICE_MEM, ThrashArgs, WaveArgs};
use crate::info::Backend;
use crate::provenance::{ClockDomain, Provenance};
use crate::{Exit, demo, pte, system, workloads};
use npu::regs;
use serde_json::json;
use std::path::Path;

/// Wall-clock budget of one kernel on a VFIO device: a board needs far less, but the
/// RTL behind QEMU's vfio-user (every fault round trip through a software CPU) more
/// than the 1 s default.
pub const VFIO_BUDGET_NS: u64 = 120_000_000_000;

/// What to run: the workload and its memory.
#[derive(Clone, Copy, Debug)]
pub struct Work {
    /// The workload.
    pub workload: workloads::Workload,
    /// Bytes it uses.
    pub size: u64,
    /// Device memory the manager may use.
    pub device_mem: u64,
    /// Seed of its data.
    pub seed: u64,
    /// Thrashing-control parameters given on the command line.
    pub thrash: ThrashArgs,
}

/// What `gmem run` / `gmem pte dump` do after the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    /// Summarise the run.
    Run,
    /// Dump the page tables of `asid` (default: the run's).
    Dump {
        /// ASID to dump.
        asid: Option<u32>,
        /// Unredacted frame numbers and IOVAs.
        raw: bool,
        /// Also the manager's logical page table of the space.
        manager: bool,
    },
}

/// Checks the flags together, before any output: waveform options, and the workload's
/// size against the device memory.
pub fn check(work: &Work, backend: &Backend, waves: &WaveArgs) -> Result<(), Exit> {
    if let Some(w) = &waves.waves {
        if *backend != Backend::Rtl {
            return Err(Exit::Usage(format!(
                "--waves needs --backend rtl (only the co-simulation has waveforms; this is {backend})"
            )));
        }
        if let (Some(from), Some(to)) = (waves.waves_from, waves.waves_to)
            && from > to
        {
            return Err(Exit::Usage(format!("--waves-from {from} is after --waves-to {to} (cycles)")));
        }
        std::fs::File::create(w).map_err(|e| {
            Exit::Usage(format!("--waves {}: cannot write the waveform file: {e}; pick a writable path", w.display()))
        })?;
    }
    if work.device_mem > MAX_DEVICE_MEM {
        return Err(Exit::Usage(format!("--device-mem {} is more than {} MiB", work.device_mem, MAX_DEVICE_MEM >> 20)));
    }
    if work.workload == workloads::Workload::Add && work.size % (24 << 10) != 0 {
        return Err(Exit::Usage(format!(
            "--size {}: add splits it into three arrays; accepted: a multiple of 24K",
            work.size
        )));
    }
    if work.workload == workloads::Workload::Oversubscribe && work.size <= work.device_mem {
        return Err(Exit::Usage(format!(
            "oversubscribe needs --size ({} KiB) larger than --device-mem ({} KiB); e.g. --size 2M --device-mem 1M",
            work.size >> 10,
            work.device_mem >> 10
        )));
    }
    Ok(())
}

/// The result of a job: what to print, as text and as JSON.
struct Outcome {
    text: String,
    json: serde_json::Value,
}

fn job_on<T: npu::DeviceIo + Send + 'static>(
    s: &npu::session::Session<T>,
    work: &Work,
    job: Job,
    backend: &Backend,
    quiet: bool,
) -> Result<Outcome, String> {
    let Work { workload, size, device_mem, seed, .. } = *work;
    let mut sum = workloads::run(s, workload, size, device_mem, seed, quiet).map_err(|e| e.to_string())?;
    sum.clock = ClockDomain::of(backend);
    let common = json!({ "seed": seed, "device_mem_bytes": device_mem });
    match job {
        Job::Run => {
            let mut v = serde_json::to_value(&sum).map_err(|e| e.to_string())?;
            merge(&mut v, common);
            Ok(Outcome { text: sum.table(), json: v })
        }
        Job::Dump { asid, raw, manager } => {
            let asid = asid.unwrap_or(u32::from(s.asid));
            let text = s
                .npu
                .pte_dump(gmem_host::Asid(asid), raw)
                .map_err(|e| format!("{e} (this run's address space is ASID {})", s.asid))?;
            let runs = pte::fold(pte::parse(&text).map_err(|e| e.to_string())?);
            let counts = pte::counts(&runs);
            let root = regs::PTROOT.at(asid).and_then(|o| s.npu.with_io(|io| io.read32(o)).ok()).unwrap_or(0);
            let root_pa = u64::from(regs::ptroot::PPN.get32(root)) << 12;
            let plural = |n: u64, one: &str| if n == 1 { format!("1 {one}") } else { format!("{n} {one}s") };
            let head = format!(
                "ASID {asid}, root table at device {root_pa:#x}; {} ({} × 4K, {} × 2M; {} to device memory, {} to host pages) in {}\n",
                plural(counts.mappings, "mapping"),
                counts.pages_4k,
                counts.pages_2m,
                counts.to_device,
                counts.to_host,
                plural(counts.runs, "line")
            );
            let empty = if runs.is_empty() {
                "(nothing is mapped on the device: the workload's last step brought every page back to the CPU)\n"
            } else {
                ""
            };
            let mut v = json!({
                "workload": sum.workload,
                "size_bytes": size,
                "asid": asid,
                "root_device_pa": root_pa,
                "counts": counts,
                "mappings": runs,
            });
            merge(&mut v, common);
            let mut text = format!("{head}{}{empty}", pte::render(&runs));
            if manager {
                let view = s.gm.dump_space(s.space).map_err(|e| e.to_string())?;
                text.push_str("\nmanager's logical page table (read without faulting or moving anything):\n");
                text.push_str(&view);
                let regions = s.gm.space_runs(s.space).map_err(|e| e.to_string())?;
                merge(&mut v, json!({ "manager": manager_json(&regions) }));
            }
            Ok(Outcome { text, json: v })
        }
    }
}

/// The manager's logical page table as JSON: per region its length, runs of pages
/// (offset, pages, state, device mapping) and attribute ranges.
fn manager_json(regions: &[gmem_host::RegionRuns]) -> serde_json::Value {
    let run = |r: &gmem_host::PageRun| {
        json!({
            "offset": r.offset,
            "pages": r.pages,
            "residency": format!("{:?}", r.residency).to_lowercase(),
            "device": r.device.map(|d| d.0),
            "map": r.map_rights(),
            "remote": r.remote,
            "pinned": r.pinned,
            "huge": r.huge,
            "migrating": r.migrating,
            "frame_pa": r.frame_pa,
            "state": r.describe(),
        })
    };
    let attrs = |a: &gmem_host::AttrRun| json!({ "offset": a.offset, "end": a.end, "attrs": format!("{:?}", a.attrs) });
    regions
        .iter()
        .map(|g| {
            json!({
                "len": g.len,
                "runs": g.runs.iter().map(run).collect::<Vec<_>>(),
                "attrs": g.attrs.iter().map(attrs).collect::<Vec<_>>(),
            })
        })
        .collect()
}

fn merge(v: &mut serde_json::Value, extra: serde_json::Value) {
    if let (Some(o), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
}

/// Opens a session on `backend`, runs `work` and then `job`, prints the result.
pub fn run_job(
    backend: &Backend,
    work: Work,
    waves: &WaveArgs,
    job: Job,
    json: bool,
    sys: &system::System,
) -> Result<(), Exit> {
    use npu::session::Session;
    check(&work, backend, waves)?;
    let command = if matches!(job, Job::Run) { "run" } else { "pte dump" };
    if !json {
        // The dump's header names no backend: scripts/vfio-user-test.sh compares the
        // dump through a VMM with the in-process one byte for byte.
        let on = if job == Job::Run { format!(" on {}", backend.describe()) } else { String::new() };
        println!(
            "gmem {command}: {} over {} KiB{on} (device memory {} KiB, seed {})",
            work.workload.name(),
            work.size >> 10,
            work.device_mem >> 10,
            work.seed
        );
    }
    let thrash = work.workload == workloads::Workload::Thrash;
    let gm_cfg = npu::session::manager_config_thrashing(thrash);
    let gm_cfg = gmem_host::Config { thrash: work.thrash.apply(gm_cfg.thrash), ..gm_cfg };
    let npu_cfg = sys.npu(npu::NpuConfig { managed_bytes: Some(work.device_mem), ..Default::default() });
    let quiet = json || matches!(job, Job::Dump { .. });
    let out = match backend {
        Backend::Rtl => {
            let dev = sim_bridge::SimDevice::new(wave_config(waves, sys)).map_err(|e| e.to_string())?;
            let s = Session::open(dev, npu_cfg, gm_cfg).map_err(|e| e.to_string())?;
            let out = job_on(&s, &work, job, backend, quiet)?;
            s.npu.with_io(sim_bridge::SimDevice::finish);
            out
        }
        Backend::Model => {
            let s = Session::open(npu_refmodel::ModelDevice::default(), npu_cfg, gm_cfg).map_err(|e| e.to_string())?;
            job_on(&s, &work, job, backend, quiet)?
        }
        Backend::Vfio(bdf) => {
            let mut dev = vfio_driver::VfioDevice::open(bdf).map_err(|e| e.to_string())?;
            demo::quiesce(&mut dev).map_err(|e| e.to_string())?;
            let npu_cfg = npu::NpuConfig { budget_ns: VFIO_BUDGET_NS, ..npu_cfg };
            let s = Session::open(dev, npu_cfg, gm_cfg).map_err(|e| e.to_string())?;
            job_on(&s, &work, job, backend, quiet)?
        }
    };
    let wave = waves.waves.as_ref().map(|p| wave_report(p, waves));
    if json {
        let mut v = Provenance::new(command, backend, Some(sys)).stamp(out.json);
        if let Some((_, w)) = wave {
            v["waves"] = w;
        }
        println!("{v}");
    } else {
        print!("{}", out.text);
        if job == Job::Run {
            println!("  {:<18} {}", "clock", ClockDomain::of(backend).describe());
            match backend {
                Backend::Rtl => println!("  {:<18} {}", "model", sys.describe()),
                _ => println!("  {:<18} none on {backend} (no system model applies)", "model"),
            }
        }
        if let Some((line, _)) = wave {
            println!("{line}");
        }
    }
    Ok(())
}

/// The co-simulation's configuration with the waveform options.
pub fn wave_config(waves: &WaveArgs, sys: &system::System) -> sim_bridge::SimConfig {
    sim_bridge::SimConfig {
        waves: waves.waves.clone(),
        waves_depth: waves.waves_depth.unwrap_or(0),
        waves_cycles: waves.waves_from.unwrap_or(0)..=waves.waves_to.unwrap_or(u64::MAX),
        ..sys.sim_config()
    }
}

/// Where the waveform went, how big it is and what it holds: a text line and JSON.
pub fn wave_report(path: &Path, waves: &WaveArgs) -> (String, serde_json::Value) {
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let ns = 1_000_000_000 / sim_bridge::NOMINAL_HZ;
    let window = match (waves.waves_from, waves.waves_to) {
        (None, None) => "every cycle".to_string(),
        (from, to) => format!("cycles {}..={}", from.unwrap_or(0), to.map_or("end".to_string(), |t| t.to_string())),
    };
    let depth = waves.waves_depth.map_or("all of npu_top".to_string(), |d| format!("npu_top to depth {d}"));
    let size = if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    };
    let line = format!("waveform: {} ({size}; {window}, {depth}; timescale 1 ps, {ns} ns per cycle)", path.display());
    let v = json!({
        "path": path.display().to_string(),
        "bytes": bytes,
        "depth": waves.waves_depth,
        "from_cycle": waves.waves_from,
        "to_cycle": waves.waves_to,
        "ns_per_cycle": ns,
    });
    (line, v)
}
