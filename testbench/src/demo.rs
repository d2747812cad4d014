//! `gmem demo`: first light of the co-simulated NPU — its identification over the CSR
//! port, then two [`workloads`] (`add` on shared memory, `oversubscribe`) reported in
//! a few lines each.

use crate::Exit;
use crate::cli::WaveArgs;
use crate::info::Backend;
use crate::info::{id_string, version_string};
use crate::job::Work;
use crate::provenance::{ClockDomain, Provenance};
use crate::workloads::{self, Workload};
use npu::session::{Session, manager_config};
use npu::{DeviceIo, NpuConfig, regs};
use sim_bridge::{NOMINAL_HZ, SimDevice, SimError};

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The simulation itself failed.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// The RTL answered with another device's ID: wrong or stale model.
    #[error("the device reports ID {found:#010x}, expected {expected:#010x} (stale or wrong RTL model)")]
    WrongId {
        /// What the ID register said.
        found: u32,
        /// `regs::NPU_ID`.
        expected: u32,
    },
    /// A transport, DMA or buffer operation failed.
    #[error("{0}")]
    Device(String),
    /// An element of a result differs from what the CPU computes.
    #[error("{scenario}: element {index} is {got:#x}, expected {want:#x}")]
    Corrupt {
        /// Which scenario.
        scenario: &'static str,
        /// Element index.
        index: usize,
        /// Value read by the CPU.
        got: u32,
        /// Expected value.
        want: u32,
    },
    /// The scratch register did not keep what was written.
    #[error("scratch register read back {read:#010x} after writing {wrote:#010x}")]
    Scratch {
        /// Written.
        wrote: u32,
        /// Read back.
        read: u32,
    },
}

/// Runs the demo: identification over the CSR port, then the two unified-memory
/// scenarios as [`workloads`] runs (`add` on shared memory, then `oversubscribe`);
/// prints a short report of each, or one JSON object per scenario.
pub fn run(waves: &WaveArgs, backend: &Backend, json: bool, sys: &crate::system::System) -> Result<(), Exit> {
    let work = |workload, size, device_mem| Work { workload, size, device_mem, seed: 1, thrash: Default::default() };
    let sharing = work(Workload::Add, SHARING_BYTES, SHARING_DEVICE_BYTES);
    let oversub = work(Workload::Oversubscribe, 2 * OVERSUB_ARRAY_BYTES, OVERSUB_DEVICE_BYTES);
    crate::job::check(&sharing, backend, waves)?;
    let fail = |e: DemoError| Exit::Error(crate::serve::chain(&e));
    let prov = Provenance::new("demo", backend, Some(sys));
    match backend {
        Backend::Rtl => {
            let mut dev = SimDevice::new(crate::job::wave_config(waves, sys)).map_err(|e| fail(e.into()))?;
            let title = format!("NPU co-simulation (Verilated RTL, nominal clock {} MHz)", NOMINAL_HZ / 1_000_000);
            identify(&mut dev, &title, |d| Some(d.cycles()), json.then_some(&prov)).map_err(fail)?;
            if !json {
                println!("model: {}", sys.describe());
            }
            scenario(stack(sys.npu(NpuConfig::default()), dev).map_err(fail)?, &sharing, &prov, json, |s| {
                s.npu.with_io(SimDevice::finish)
            })
            .map_err(fail)?;
            let dev = SimDevice::new(sys.sim_config()).map_err(|e| fail(e.into()))?;
            scenario(stack(sys.npu(oversub_cfg()), dev).map_err(fail)?, &oversub, &prov, json, |_| ()).map_err(fail)?;
            if let (Some(p), false) = (&waves.waves, json) {
                println!("\n{}", crate::job::wave_report(p, waves).0);
            }
            Ok(())
        }
        Backend::Model => {
            let mut dev = npu_refmodel::ModelDevice::default();
            identify(&mut dev, "NPU reference model (untimed)", |_| None, json.then_some(&prov)).map_err(fail)?;
            scenario(stack(NpuConfig::default(), dev).map_err(fail)?, &sharing, &prov, json, |_| ()).map_err(fail)?;
            let dev = npu_refmodel::ModelDevice::default();
            scenario(stack(oversub_cfg(), dev).map_err(fail)?, &oversub, &prov, json, |_| ()).map_err(fail)
        }
        Backend::Vfio(bdf) => {
            let open = || {
                let mut d = vfio_driver::VfioDevice::open(bdf).map_err(dev_err)?;
                quiesce(&mut d).map_err(dev_err)?;
                Ok::<_, DemoError>(d)
            };
            let mut dev = open().map_err(fail)?;
            identify(&mut dev, &format!("NPU at {bdf} (VFIO)"), |_| None, json.then_some(&prov)).map_err(fail)?;
            let slow = |c: NpuConfig| NpuConfig { budget_ns: crate::job::VFIO_BUDGET_NS, push: sys.push, ..c };
            scenario(stack(slow(NpuConfig::default()), dev).map_err(fail)?, &sharing, &prov, json, |_| ())
                .map_err(fail)?;
            let dev = open().map_err(fail)?;
            scenario(stack(slow(oversub_cfg()), dev).map_err(fail)?, &oversub, &prov, json, |_| ()).map_err(fail)
        }
    }
}

/// Brings a device another process left configured back to its post-reset state: a
/// board (or the RTL behind vfio-user) outlives the process that drove it, and the
/// driver refuses queues that are still enabled. Disables every unit and address
/// space, soft-resets (device.md §13) and waits for the busy bits to clear.
pub fn quiesce<T: DeviceIo>(io: &mut T) -> Result<(), npu::IoError> {
    io.write32(regs::CTRL.offset, 0)?;
    io.write32(regs::INT_MASK.offset, 0)?;
    for asid in 0..regs::PTROOT.count {
        io.write32(regs::PTROOT.offset + regs::PTROOT.stride * asid, 0)?;
    }
    io.write32(regs::RESET.offset, regs::reset::SOFT.put32(0, 1))?;
    let deadline = io.now_ns() + 1_000_000_000;
    while io.read32(regs::STATUS.offset)? & 0b111 != 0 {
        if io.now_ns() > deadline {
            return Err(npu::IoError::Device("the soft reset did not finish within 1 s".into()));
        }
        io.advance(10_000)?;
    }
    Ok(())
}

fn oversub_cfg() -> NpuConfig {
    NpuConfig { managed_bytes: Some(OVERSUB_DEVICE_BYTES), ..NpuConfig::default() }
}

/// The device's own CYCLES counter (PERF_LO/HI 0), for transports without a bridge clock.
fn device_cycles<T: DeviceIo>(io: &mut T) -> u64 {
    let idx = regs::perf_ctr::CYCLES as u32;
    let rd = |io: &mut T, r: npu::Reg| r.at(idx).and_then(|o| io.read32(o).ok()).map_or(0, u64::from);
    let lo = rd(io, regs::PERF_LO);
    lo | rd(io, regs::PERF_HI) << 32
}

/// Identification over the CSR port: ID, version, capabilities, a scratch round trip.
fn identify<T: DeviceIo>(
    dev: &mut T,
    title: &str,
    bridge: impl Fn(&T) -> Option<u64>,
    json: Option<&Provenance>,
) -> Result<(), DemoError> {
    let id = dev.read32(regs::ID.offset).map_err(dev_err)?;
    let version = dev.read32(regs::VERSION.offset).map_err(dev_err)?;
    let caps0 = dev.read32(regs::CAPS0.offset).map_err(dev_err)?;
    let caps1 = dev.read32(regs::CAPS1.offset).map_err(dev_err)?;
    let probe = 0x6D65_6D67; // "gmem"
    dev.write32(regs::SCRATCH.offset, probe).map_err(dev_err)?;
    let echoed = dev.read32(regs::SCRATCH.offset).map_err(dev_err)?;
    let cycles = device_cycles(dev);
    let ok = echoed == probe;
    if id != regs::NPU_ID {
        return Err(DemoError::WrongId { found: id, expected: regs::NPU_ID });
    }
    if !ok {
        return Err(DemoError::Scratch { wrote: probe, read: echoed });
    }
    if let Some(prov) = json {
        let v = prov.stamp(serde_json::json!({
            "scenario": "identify",
            "id": id,
            "id_ascii": id_string(id),
            "version": version_string(version),
            "dma_channels": regs::caps0::DMA_CHANNELS.get32(caps0),
            "asids": regs::caps0::ASIDS.get32(caps0),
            "tlb_entries": regs::caps0::TLB_ENTRIES.get32(caps0),
            "data_path_bits": 8u32 << regs::caps0::DATA_BYTES_LOG2.get32(caps0),
            "device_memory_mib": regs::caps1::DEV_MEM_MIB.get32(caps1),
            "scratch_ok": ok,
            "bridge_cycles": bridge(dev),
            "device_cycles": cycles,
        }));
        println!("{v}");
        return Ok(());
    }
    println!("{title}");
    println!(
        "  ID             {id:#010x} \"{}\"{}",
        id_string(id),
        if id == regs::NPU_ID { "" } else { "  (UNEXPECTED)" }
    );
    println!("  version        {}", version_string(version));
    println!(
        "  DMA channels   {}    ASIDs {}    TLB entries {}    data path {} bit",
        regs::caps0::DMA_CHANNELS.get32(caps0),
        regs::caps0::ASIDS.get32(caps0),
        regs::caps0::TLB_ENTRIES.get32(caps0),
        8u32 << regs::caps0::DATA_BYTES_LOG2.get32(caps0)
    );
    println!(
        "  device memory  {} MiB    host window at 2^{}    compute requests in flight {}",
        regs::caps1::DEV_MEM_MIB.get32(caps1),
        regs::caps1::HOST_WINDOW_SHIFT.get32(caps1),
        regs::caps1::CU_INFLIGHT.get32(caps1)
    );
    println!("  scratch        wrote {probe:#010x}, read {echoed:#010x}  {}", if ok { "ok" } else { "MISMATCH" });
    match bridge(dev) {
        Some(b) => println!("  cycles         {b} (bridge clock), {cycles} (device CYCLES counter)"),
        None => println!("  cycles         {cycles} (device CYCLES counter)"),
    }
    Ok(())
}

fn dev_err(e: impl std::error::Error) -> DemoError {
    DemoError::Device(crate::serve::chain(&e))
}

/// Scenario 1: three arrays of 1 MiB (a, b, c), and the device memory it may use.
pub(crate) const SHARING_BYTES: u64 = 3 << 20;
pub(crate) const SHARING_DEVICE_BYTES: u64 = 16 << 20;
/// Scenario 2: managed device memory, and the array size (two arrays: 4× oversubscribed).
pub(crate) const OVERSUB_DEVICE_BYTES: u64 = 4 << 20;
pub(crate) const OVERSUB_ARRAY_BYTES: u64 = 8 << 20;

fn stack<T: DeviceIo + Send + 'static>(npu_cfg: NpuConfig, dev: T) -> Result<Session<T>, DemoError> {
    Session::open(dev, npu_cfg, manager_config()).map_err(dev_err)
}

/// Runs one scenario as a workload and reports it; `finish` runs on the session
/// before it closes (the RTL flushes its waveform there).
fn scenario<T: DeviceIo + Send + 'static>(
    s: Session<T>,
    work: &Work,
    prov: &Provenance,
    json: bool,
    finish: impl FnOnce(&Session<T>),
) -> Result<(), DemoError> {
    let n = work.size / 12;
    if !json {
        match work.workload {
            Workload::Add => println!(
                "\nscenario 1: malloc-style sharing (3 × {} KiB PEER_SHARED; CPU writes a, b; NPU c = a + b; CPU reads c)",
                (work.size / 3) >> 10
            ),
            _ => println!(
                "\nscenario 2: oversubscription (device memory {} MiB, working set {} MiB: copy a -> c)",
                work.device_mem >> 20,
                work.size >> 20
            ),
        }
    }
    let sum = workloads::run(&s, work.workload, work.size, work.device_mem, work.seed, json).map_err(|e| match e {
        workloads::WorkloadError::Wrong { workload, index, got, want } => {
            DemoError::Corrupt { scenario: workload, index, got, want }
        }
        e => DemoError::Device(e.to_string()),
    })?;
    finish(&s);
    if json {
        let mut v = prov.stamp(&sum);
        v["scenario"] = if work.workload == Workload::Add { "sharing" } else { "oversubscription" }.into();
        v["seed"] = work.seed.into();
        v["device_mem_bytes"] = work.device_mem.into();
        println!("{v}");
        return Ok(());
    }
    match work.workload {
        Workload::Add => {
            println!("  result         c = a + b for all {n} elements, read back by the CPU (userfaultfd)")
        }
        _ => {
            println!("  result         every byte of c equals a ({} MiB), read back by the CPU", (work.size / 2) >> 20)
        }
    }
    println!("  device faults  {} in {} batches ({} aborted)", sum.faults, sum.batches, sum.aborted);
    println!(
        "  pages moved    host→device {}, device→host {}, evictions {}, prefetched {}",
        sum.pages_h2d, sum.pages_d2h, sum.evictions, sum.prefetched
    );
    println!(
        "  DMA            {:.1} MiB moved, {} PTEs written, {} TLB invalidations",
        sum.dma_bytes as f64 / (1 << 20) as f64,
        sum.pte_writes,
        sum.tlb_invalidations
    );
    let ms = sum.device_ns as f64 / 1e6;
    match sum.clock {
        ClockDomain::Simulated => {
            println!("  cycles         {} ({ms:.2} ms at {} MHz)", sum.cycles, NOMINAL_HZ / 1_000_000)
        }
        other => println!("  device time    {ms:.2} ms ({})", other.describe()),
    }
    Ok(())
}
