//! `vfio-npu-info BDF`: board bring-up check of an NPU bound to vfio-pci.
//!
//! Opens the NPU through [`vfio_driver::VfioDevice`] (sysfs pre-flight, BAR0, ID and
//! VERSION check, interrupts), prints what it reports about itself and what VFIO set
//! up, and checks that a SCRATCH write reads back. Any host misconfiguration comes out
//! as a typed error saying what to fix (see `docs/board.md`).

use std::process::ExitCode;

use npu::{DeviceIo, regs};
use vfio_driver::VfioDevice;

fn field(v: u32, f: npu::Field) -> u32 {
    (v >> f.lsb) & ((1u64 << f.width) - 1) as u32
}

fn run(bdf: &str) -> Result<(), String> {
    let mut d = VfioDevice::open(bdf).map_err(|e| e.to_string())?;
    let rd = |d: &mut VfioDevice, r: npu::Reg| d.read32(r.offset).map_err(|e| e.to_string());
    let id = rd(&mut d, regs::ID)?;
    let ver = rd(&mut d, regs::VERSION)?;
    let caps0 = rd(&mut d, regs::CAPS0)?;
    let caps1 = rd(&mut d, regs::CAPS1)?;
    let info = d.pci().info().clone();
    println!("NPU through VFIO at {} [{:04x}:{:04x}], IOMMU group {}", info.bdf, info.vendor, info.device, info.group);
    println!("  ID             {id:#010x} {:?}", String::from_utf8_lossy(&id.to_le_bytes()));
    println!(
        "  version        {}.{}.{}",
        field(ver, regs::version::MAJOR),
        field(ver, regs::version::MINOR),
        field(ver, regs::version::PATCH)
    );
    println!("  CAPS0/CAPS1    {caps0:#010x} {caps1:#010x}");
    println!("  BAR0           {:#x} bytes", d.pci().bar_size(0).unwrap_or(0));
    match d.pci().irq_kind() {
        Some((k, n)) => println!("  interrupts     {k:?}, {n} vector(s)"),
        None => println!("  interrupts     none (polling)"),
    }
    let w: Vec<String> = d.pci().iova_window().iter().map(|r| format!("[{:#x}, {:#x})", r.start, r.end)).collect();
    println!("  IOVA window    {}", w.join(" "));
    println!("  reset          {}", if d.pci().reset_supported() { "function reset supported" } else { "no function reset" });
    let probe = 0x6d65_6d67;
    d.write32(regs::SCRATCH.offset, probe).map_err(|e| e.to_string())?;
    let back = rd(&mut d, regs::SCRATCH)?;
    let ok = if back == probe { "ok" } else { "MISMATCH" };
    println!("  scratch        wrote {probe:#010x}, read {back:#010x}  {ok}");
    if back != probe {
        return Err("SCRATCH did not read back: CSR path broken".into());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bdf] = args.as_slice() else {
        eprintln!("usage: vfio-npu-info BDF   (e.g. 0000:01:00.0; see docs/board.md)");
        return ExitCode::from(2);
    };
    match run(bdf) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vfio-npu-info: {e}");
            ExitCode::FAILURE
        }
    }
}
