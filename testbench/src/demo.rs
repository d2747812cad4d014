//! `gmem demo`: first light of the co-simulated NPU.

use crate::info::Backend;
use crate::info::{id_string, version_string};
use indicatif::{ProgressBar, ProgressStyle};
use npu::kernel::Kernel;
use npu::session::{Session, manager_config};
use npu::{DeviceIo, NpuConfig, regs};
use sim_bridge::{SimConfig, SimDevice, SimError};
use std::path::PathBuf;

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
/// scenarios through the manager; prints a short report of each. On the RTL (default)
/// cycles are the bridge clock; on another backend (e.g. `vfio:BDF`, the RTL behind
/// QEMU's vfio-user) they are the device's CYCLES counter.
pub fn run(waves: Option<PathBuf>, backend: &Backend, sys: &crate::system::System) -> Result<(), DemoError> {
    if waves.is_some() && !matches!(backend, Backend::Rtl) {
        return Err(DemoError::Device("--waves needs the rtl backend (only the co-simulation has waveforms)".into()));
    }
    match backend {
        Backend::Rtl => {
            let mut dev = SimDevice::new(SimConfig { waves: waves.clone(), ..sys.sim_config() })?;
            identify(
                &mut dev,
                "NPU co-simulation (Verilated RTL, nominal clock 250 MHz)",
                |d| Some(d.cycles()),
                waves,
            )?;
            println!("model: {}\n", sys.describe());
            sharing(stack(sys.npu(NpuConfig::default()), dev)?, |d| d.cycles())?;
            let dev = SimDevice::new(sys.sim_config())?;
            oversubscription(stack(sys.npu(oversub_cfg()), dev)?, |d| d.cycles())
        }
        Backend::Model => {
            let mut dev = sim_bridge::ModelDevice::default();
            identify(&mut dev, "NPU reference model", |_| None, None)?;
            sharing(stack(NpuConfig::default(), dev)?, device_cycles)?;
            oversubscription(stack(oversub_cfg(), sim_bridge::ModelDevice::default())?, device_cycles)
        }
        Backend::Vfio(bdf) => {
            let open = || {
                let mut d = vfio_driver::VfioDevice::open(bdf).map_err(dev_err)?;
                quiesce(&mut d).map_err(dev_err)?;
                Ok::<_, DemoError>(d)
            };
            let mut dev = open()?;
            identify(&mut dev, &format!("NPU at {bdf} (VFIO)"), |_| None, None)?;
            let slow = |c: NpuConfig| NpuConfig { budget_ns: crate::job::VFIO_BUDGET_NS, ..c };
            sharing(stack(slow(NpuConfig::default()), dev)?, device_cycles)?;
            oversubscription(stack(slow(oversub_cfg()), open()?)?, device_cycles)
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
    waves: Option<PathBuf>,
) -> Result<(), DemoError> {
    let id = dev.read32(regs::ID.offset).map_err(dev_err)?;
    let version = dev.read32(regs::VERSION.offset).map_err(dev_err)?;
    let caps0 = dev.read32(regs::CAPS0.offset).map_err(dev_err)?;
    let caps1 = dev.read32(regs::CAPS1.offset).map_err(dev_err)?;
    let probe = 0x6D65_6D67; // "gmem"
    dev.write32(regs::SCRATCH.offset, probe).map_err(dev_err)?;
    let echoed = dev.read32(regs::SCRATCH.offset).map_err(dev_err)?;
    let cycles = device_cycles(dev);

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
    let ok = echoed == probe;
    println!("  scratch        wrote {probe:#010x}, read {echoed:#010x}  {}", if ok { "ok" } else { "MISMATCH" });
    match bridge(dev) {
        Some(b) => println!("  cycles         {b} (bridge clock), {cycles} (device CYCLES counter)"),
        None => println!("  cycles         {cycles} (device CYCLES counter)"),
    }
    if let Some(w) = waves {
        println!("  waveform       {}", w.display());
    }
    if id != regs::NPU_ID {
        return Err(DemoError::WrongId { found: id, expected: regs::NPU_ID });
    }
    if !ok {
        return Err(DemoError::Scratch { wrote: probe, read: echoed });
    }
    Ok(())
}

fn dev_err(e: impl std::error::Error) -> DemoError {
    DemoError::Device(crate::serve::chain(&e))
}

/// Elements per array in scenario 1 (1 MiB each).
const SHARING_ELEMS: usize = 256 * 1024;
/// Scenario 2: managed device memory, and the array size (two arrays: 4× oversubscribed).
const OVERSUB_DEVICE_BYTES: u64 = 4 << 20;
const OVERSUB_ARRAY_BYTES: u64 = 8 << 20;
/// Elements per kernel launch (progress granularity).
const CHUNK: usize = 16 * 1024;

type Stack<T> = Session<T>;
/// How a scenario reads device cycles on its transport.
type Cycles<T> = fn(&mut T) -> u64;

fn stack<T: DeviceIo + Send + 'static>(npu_cfg: NpuConfig, dev: T) -> Result<Stack<T>, DemoError> {
    Session::open(dev, npu_cfg, manager_config()).map_err(dev_err)
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    let t = format!("  {{bar:40}} {{pos}}/{{len}} {what}");
    b.set_style(ProgressStyle::with_template(&t).unwrap_or_else(|_| ProgressStyle::default_bar()));
    b
}

/// Runs `make(first, count)` kernels over `n` elements in chunks, ticking `bar`.
fn run_chunked<T: DeviceIo + Send + 'static>(
    s: &Stack<T>,
    n: usize,
    bar: &ProgressBar,
    make: impl Fn(u64, u32) -> Kernel,
) -> Result<(), DemoError> {
    for first in (0..n).step_by(CHUNK) {
        let count = CHUNK.min(n - first);
        s.launch(make(first as u64 * 4, count as u32)).map_err(dev_err)?;
        bar.inc(count as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

fn report<T: DeviceIo + Send + 'static>(s: &Stack<T>, start_cycles: u64, cycles: Cycles<T>) {
    let k = s.gm.counters();
    let st = s.npu.stats();
    let cycles = s.npu.with_io(cycles).saturating_sub(start_cycles);
    println!("  device faults  {} in {} batches ({} aborted)", st.faults, st.batches, st.aborted);
    println!(
        "  pages moved    host→device {}, device→host {}, evictions {}, prefetched {}",
        k.pages_h2d, k.pages_d2h, k.evictions, k.prefetched
    );
    println!(
        "  DMA            {:.1} MiB moved, {} PTEs written, {} TLB invalidations",
        st.dma_bytes as f64 / (1 << 20) as f64,
        st.pte_writes,
        st.invalidations
    );
    println!("  cycles         {cycles} ({:.2} ms at 250 MHz)", cycles as f64 / sim_bridge::NOMINAL_HZ as f64 * 1e3);
}

fn check(scenario: &'static str, p: *const u32, n: usize, want: impl Fn(usize) -> u32) -> Result<(), DemoError> {
    for index in 0..n {
        // SAFETY: p is a managed region of at least n words; a CPU read of a device
        // page faults it back through userfaultfd.
        let got = unsafe { p.add(index).read() };
        if got != want(index) {
            return Err(DemoError::Corrupt { scenario, index, got, want: want(index) });
        }
    }
    Ok(())
}

/// Scenario 1: malloc-style sharing — the CPU fills a and b in a `PEER_SHARED` region,
/// the NPU computes c = a + b (its faults migrate pages with the RTL DMA engine), the CPU
/// reads c back through userfaultfd. No explicit copy anywhere.
fn sharing<T: DeviceIo + Send + 'static>(s: Stack<T>, cycles: Cycles<T>) -> Result<(), DemoError> {
    let start = s.npu.with_io(cycles);
    let n = SHARING_ELEMS;
    let bytes = n as u64 * 4;
    let p = s.alloc(3 * bytes).map_err(dev_err)?;
    // SAFETY: the region holds 3 arrays of n words.
    let (a, b, c) = unsafe { (p, p.add(n), p.add(2 * n)) };
    for i in 0..n {
        // SAFETY: i < n, inside a and b; the CPU owns these fresh pages.
        unsafe {
            a.add(i).write(i as u32);
            b.add(i).write(0x4000_0000 ^ (i as u32).wrapping_mul(31));
        }
    }
    println!(
        "\nscenario 1: malloc-style sharing (3 × {} KiB PEER_SHARED; CPU writes a, b; NPU c = a + b; CPU reads c)",
        bytes >> 10
    );
    let bar = bar(n as u64, "elements");
    run_chunked(&s, n, &bar, |off, count| Kernel::add(s.asid, a as u64 + off, b as u64 + off, c as u64 + off, count))?;
    check("sharing", c, n, |i| (i as u32).wrapping_add(0x4000_0000 ^ (i as u32).wrapping_mul(31)))?;
    println!("  result         c = a + b for all {n} elements, read back by the CPU (userfaultfd)");
    report(&s, start, cycles);
    Ok(())
}

/// Scenario 2: oversubscription — a copy streams two arrays, together 4× the device
/// memory the manager may use; pages are evicted to the host and faulted back.
fn oversubscription<T: DeviceIo + Send + 'static>(s: Stack<T>, cycles: Cycles<T>) -> Result<(), DemoError> {
    let start = s.npu.with_io(cycles);
    let n = (OVERSUB_ARRAY_BYTES / 4) as usize;
    let a = s.alloc(OVERSUB_ARRAY_BYTES).map_err(dev_err)?;
    let c = s.alloc(OVERSUB_ARRAY_BYTES).map_err(dev_err)?;
    for i in 0..n {
        // SAFETY: i < n, inside a.
        unsafe { a.add(i).write((i as u32).wrapping_mul(2_654_435_761)) };
    }
    println!(
        "\nscenario 2: oversubscription (device memory {} MiB, working set {} MiB: copy a -> c)",
        OVERSUB_DEVICE_BYTES >> 20,
        (2 * OVERSUB_ARRAY_BYTES) >> 20
    );
    let bar = bar(n as u64, "elements");
    run_chunked(&s, n, &bar, |off, count| Kernel::copy(s.asid, a as u64 + off, c as u64 + off, count))?;
    check("oversubscription", c, n, |i| (i as u32).wrapping_mul(2_654_435_761))?;
    println!("  result         every byte of c equals a ({} MiB), read back by the CPU", OVERSUB_ARRAY_BYTES >> 20);
    report(&s, start, cycles);
    Ok(())
}
