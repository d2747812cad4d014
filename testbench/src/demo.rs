//! `gmem demo`: first light of the co-simulated NPU.

use indicatif::{ProgressBar, ProgressStyle};
use npu::dma::{Dma, DmaAddr, DmaDesc, DmaStatus};
use crate::info::{id_string, version_string};
use npu::{DeviceIo, DmaBuffer, regs};
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
    /// A page came back different from what was sent.
    #[error("page {page} differs after the host → device → host round trip")]
    Corrupt {
        /// Page index.
        page: usize,
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

/// Runs the demo: identification over the CSR port, then a page-migration round trip
/// through the DMA engine; prints a short report.
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
    migrate_pages(&mut dev)?;
    dev.finish();
    Ok(())
}

/// Pages moved by the demo's round trip (8 MiB).
const PAGES: usize = 2048;
const PAGE: usize = 4096;

fn dev_err(e: impl std::fmt::Display) -> DemoError {
    DemoError::Device(e.to_string())
}

/// Moves `PAGES` pages host → device, device → device and device → host with the RTL
/// DMA engine, one 4 KiB descriptor per page as page migration does, and checks every
/// byte on the way back.
fn migrate_pages(dev: &mut SimDevice) -> Result<(), DemoError> {
    let bytes = PAGES * PAGE;
    let src = DmaBuffer::new(bytes).map_err(dev_err)?;
    let dst = DmaBuffer::new(bytes).map_err(dev_err)?;
    let data: Vec<u8> = (0..bytes).map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8).collect();
    src.write(0, &data).map_err(dev_err)?;
    let src_iova = dev.dma_map(&src).map_err(dev_err)?;
    let dst_iova = dev.dma_map(&dst).map_err(dev_err)?;
    let mut dma = Dma::init(dev, 9).map_err(dev_err)?;
    let second_copy = (bytes as u64).next_multiple_of(1 << 21);

    println!("\npage migration through the RTL DMA engine ({PAGES} pages of 4 KiB, one descriptor each)");
    println!("  timing model   {}", dev.timing().describe());
    let bar = ProgressBar::new(3 * PAGES as u64);
    bar.set_style(
        ProgressStyle::with_template("  {bar:40} {pos}/{len} pages {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let legs: [(&str, usize, DmaAddr, DmaAddr); 3] = [
        ("host → device  ", 0, DmaAddr::Host(src_iova), DmaAddr::Device(0)),
        ("device → device", 2, DmaAddr::Device(0), DmaAddr::Device(second_copy)),
        ("device → host  ", 1, DmaAddr::Device(second_copy), DmaAddr::Host(dst_iova)),
    ];
    let mut lines = Vec::new();
    for (name, ch, from, to) in legs {
        bar.set_message(name.trim().to_string());
        let start = dev.cycles();
        for batch in (0..PAGES).collect::<Vec<_>>().chunks(500) {
            let descs: Vec<DmaDesc> = batch
                .iter()
                .map(|&p| {
                    let off = (p * PAGE) as u64;
                    let at = |a: DmaAddr| match a {
                        DmaAddr::Host(x) => DmaAddr::Host(x + off),
                        DmaAddr::Device(x) => DmaAddr::Device(x + off),
                    };
                    DmaDesc::copy(at(from), at(to), PAGE as u32, p as u16)
                })
                .collect();
            dma.submit(dev, ch, &descs).map_err(dev_err)?;
            let done = dma.wait_idle(dev, &[ch], 1_000_000_000).map_err(dev_err)?;
            if let Some(bad) = done.iter().find(|c| c.status != DmaStatus::Ok) {
                return Err(DemoError::Device(format!("{name}: page {} completed with {:?}", bad.tag, bad.status)));
            }
            bar.inc(batch.len() as u64);
        }
        let cycles = dev.cycles() - start;
        let bpc = bytes as f64 / cycles as f64;
        lines.push(format!(
            "  {name} {cycles:>8} cycles  {bpc:>5.1} B/cycle = {:>5.2} GB/s at 250 MHz",
            bpc * sim_bridge::NOMINAL_HZ as f64 / 1e9
        ));
    }
    bar.finish_and_clear();
    for l in lines {
        println!("{l}");
    }
    let mut back = vec![0u8; bytes];
    dst.read(0, &mut back).map_err(dev_err)?;
    if let Some(page) = (0..PAGES).find(|&p| back[p * PAGE..(p + 1) * PAGE] != data[p * PAGE..(p + 1) * PAGE]) {
        return Err(DemoError::Corrupt { page });
    }
    let (host, devp) = dev.port_stats();
    println!("  result         all {PAGES} pages byte-exact after the round trip");
    println!(
        "  port traffic   host {} MiB read, {} MiB written; device {} MiB read, {} MiB written",
        (host.read_beats * 64) >> 20,
        (host.write_beats * 64) >> 20,
        (devp.read_beats * 64) >> 20,
        (devp.write_beats * 64) >> 20
    );
    dma.release(dev).map_err(dev_err)?;
    dev.dma_unmap(src_iova).map_err(dev_err)?;
    dev.dma_unmap(dst_iova).map_err(dev_err)?;
    Ok(())
}
