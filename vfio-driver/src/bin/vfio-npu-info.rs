//! `vfio-npu-info BDF [--dma BYTES]`: board bring-up check of an NPU bound to vfio-pci.
//!
//! Opens the NPU through [`vfio_driver::VfioDevice`] (sysfs pre-flight, BAR0, ID and
//! VERSION check, interrupts), prints what it reports about itself and what VFIO set
//! up, checks SCRATCH round trips, and with `--dma` runs a DMA loopback host → device
//! memory → host through the shell's PCIe bridge and memory controller
//! ([`vfio_driver::bringup`], the same code the tests run on the co-simulated RTL). Any
//! host misconfiguration comes out as a typed error saying what to fix
//! (`docs/board.md`).

use std::process::ExitCode;

use vfio_driver::VfioDevice;
use vfio_driver::bringup::{Identity, dma_loopback, scratch};

/// Device-physical address the loopback uses (1 MiB into device memory).
const LOOPBACK_DPA: u64 = 1 << 20;
/// Budget for each loopback direction.
const LOOPBACK_BUDGET_NS: u64 = 2_000_000_000;

fn run(bdf: &str, dma: Option<usize>) -> Result<(), String> {
    let mut d = VfioDevice::open(bdf).map_err(|e| e.to_string())?;
    let id = Identity::read(&mut d).map_err(|e| e.to_string())?;
    let info = d.pci().info().clone();
    println!("NPU through VFIO at {} [{:04x}:{:04x}], IOMMU group {}", info.bdf, info.vendor, info.device, info.group);
    println!("  ID             {:#010x} {:?}", id.id, String::from_utf8_lossy(&id.id.to_le_bytes()));
    println!("  version        {}.{}.{}", id.version.0, id.version.1, id.version.2);
    println!(
        "  DMA channels   {}    ASIDs {}    TLB entries {}    data path {} bit",
        id.dma_channels, id.asids, id.tlb_entries, id.data_bits
    );
    println!(
        "  device memory  {} MiB    host window at 2^{}    compute requests in flight {}",
        id.dev_mem_mib, id.host_window_shift, id.cu_inflight
    );
    println!("  BAR0           {:#x} bytes", d.pci().bar_size(0).unwrap_or(0));
    match d.pci().irq_kind() {
        Some((k, n)) => println!("  interrupts     {k:?}, {n} vector(s)"),
        None => println!("  interrupts     none (polling)"),
    }
    let w: Vec<String> = d.pci().iova_window().iter().map(|r| format!("[{:#x}, {:#x})", r.start, r.end)).collect();
    println!("  IOVA window    {}", w.join(" "));
    println!(
        "  reset          {}",
        if d.pci().reset_supported() { "function reset supported" } else { "no function reset" }
    );
    scratch(&mut d).map_err(|e| e.to_string())?;
    println!("  scratch        3 patterns read back  ok");
    if let Some(len) = dma {
        let lb = dma_loopback(&mut d, len, LOOPBACK_DPA, LOOPBACK_BUDGET_NS).map_err(|e| e.to_string())?;
        println!(
            "  DMA loopback   {len} bytes via DPA {LOOPBACK_DPA:#x}: H2D {:.2} GB/s, D2H {:.2} GB/s (wall clock)  ok",
            lb.gbps(lb.h2d_ns),
            lb.gbps(lb.d2h_ns)
        );
    }
    Ok(())
}

fn parse_len(s: &str) -> Option<usize> {
    let (num, mul) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        _ => (s, 1),
    };
    num.parse::<usize>().ok()?.checked_mul(mul).filter(|&n| n > 0 && n <= 16 << 20)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [bdf] => Some((bdf.as_str(), None)),
        [bdf, flag, len] if flag == "--dma" => parse_len(len).map(|n| (bdf.as_str(), Some(n))),
        _ => None,
    };
    let Some((bdf, dma)) = parsed else {
        eprintln!(
            "usage: vfio-npu-info BDF [--dma BYTES]   (e.g. 0000:01:00.0 --dma 1M, at most 16M; see docs/board.md)"
        );
        return ExitCode::from(2);
    };
    match run(bdf, dma) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vfio-npu-info: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_len;

    #[test]
    fn lengths_take_k_and_m_suffixes_within_one_descriptor() {
        assert_eq!(parse_len("4096"), Some(4096));
        assert_eq!(parse_len("64K"), Some(64 << 10));
        assert_eq!(parse_len("16M"), Some(16 << 20));
        assert_eq!(parse_len("17M"), None, "a DMA descriptor moves at most 16 MiB");
        assert_eq!(parse_len("0"), None);
        assert_eq!(parse_len("x"), None);
        assert_eq!(parse_len(""), None);
    }
}
