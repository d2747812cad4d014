//! `gmem demo`: first light of the co-simulated NPU.

use npu::regs;
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
    /// The scratch register did not keep what was written.
    #[error("scratch register read back {read:#010x} after writing {wrote:#010x}")]
    Scratch {
        /// Written.
        wrote: u32,
        /// Read back.
        read: u32,
    },
}

fn version_string(v: u32) -> String {
    format!(
        "{}.{}.{}",
        regs::version::MAJOR.get32(v),
        regs::version::MINOR.get32(v),
        regs::version::PATCH.get32(v)
    )
}

fn id_string(id: u32) -> String {
    id.to_le_bytes().iter().map(|&b| if b.is_ascii_graphic() { b as char } else { '.' }).collect()
}

/// Runs the demo; prints a short report.
pub fn run(waves: Option<PathBuf>) -> Result<(), DemoError> {
    let mut dev = SimDevice::new(SimConfig { waves: waves.clone(), ..SimConfig::default() })?;
    let id = dev.csr_read32(regs::ID.offset)?;
    let version = dev.csr_read32(regs::VERSION.offset)?;
    let caps0 = dev.csr_read32(regs::CAPS0.offset)?;
    let caps1 = dev.csr_read32(regs::CAPS1.offset)?;
    let probe = 0x6D65_6D67; // "gmem"
    dev.csr_write32(regs::SCRATCH.offset, probe)?;
    let echoed = dev.csr_read32(regs::SCRATCH.offset)?;
    let cycles = dev.perf_counter(regs::perf_ctr::CYCLES as u32)?;
    dev.finish();

    println!("NPU co-simulation (Verilated RTL, nominal clock 250 MHz)");
    println!("  ID             {id:#010x} \"{}\"{}", id_string(id), if id == regs::NPU_ID { "" } else { "  (UNEXPECTED)" });
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
    println!("  cycles         {} (bridge clock), {} (device CYCLES counter)", dev.cycles(), cycles);
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
