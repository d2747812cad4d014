//! Checks of the NPU over VFIO that need the RTL behind the guest's vfio-pci.
//!
//! `--remote BDF`: remote mappings through a real IOMMU. A 64-page `PEER_SHARED` region
//! with `ACCESSED_BY` for the NPU, then 16 rounds of the CPU and the NPU each writing one
//! word per page: the NPU reaches the CPU's pages through remote PTEs, whose pages
//! `VfioDevice` maps in the IOMMU only while the PTEs live (`npu/src/device/holds.rs`).
//! Passes if every word is right, pages were mapped remotely and no fault was aborted
//! (an access to an IOVA the IOMMU has not mapped ends the kernel with an error).
//! `scripts/vfio-user-test.sh` runs it in the guest (the thrash workload maps remotely by
//! pinning there, with its detection window widened to a minute of wall time).

use gmem_host::{Hint, Node};
use npu::NpuConfig;
use npu::kernel::Kernel;
use npu::session::Session;
use std::process::ExitCode;
use vfio_driver::VfioDevice;

/// A kernel's wall-clock budget on a software CPU (as `gmem` uses on VFIO).
const BUDGET_NS: u64 = 120_000_000_000;
const PAGES: usize = 64;
const ROUNDS: u32 = 16;

fn ping_pong(bdf: &str) -> Result<String, String> {
    let dev = VfioDevice::open(bdf).map_err(|e| e.to_string())?;
    let cfg = NpuConfig { budget_ns: BUDGET_NS, ..NpuConfig::default() };
    let s = Session::open(dev, cfg, npu::session::manager_config()).map_err(|e| e.to_string())?;
    let bytes = PAGES as u64 * 4096;
    let p = s.alloc(bytes).map_err(|e| e.to_string())?;
    s.gm.hmadvise(s.space, Node::Device(s.id), p as u64, bytes, Hint::AccessedBy).map_err(|e| e.to_string())?;
    let k0 = s.gm.counters();
    let st0 = s.npu.stats();
    for round in 0..ROUNDS {
        for page in 0..PAGES {
            // SAFETY: word 0 of page `page` of the region `alloc` returned.
            unsafe { p.add(page * 1024).write(round) };
        }
        s.launch(Kernel::strided_touch(s.asid, p as u64, 4096, PAGES as u32, Some(round + 100)))
            .map_err(|e| format!("round {round}: {e}"))?;
        for page in 0..PAGES {
            // SAFETY: as above.
            let got = unsafe { p.add(page * 1024).read() };
            if got != round + 100 {
                return Err(format!("round {round}, page {page}: {got}, want {}", round + 100));
            }
        }
    }
    let (k, st) = (s.gm.counters(), s.npu.stats());
    let remote = k.remote_maps - k0.remote_maps;
    let aborted = st.aborted - st0.aborted;
    let summary = format!(
        "{remote} remote maps, {} device faults, {} CPU faults, {aborted} aborted",
        st.faults - st0.faults,
        k.cpu_faults - k0.cpu_faults
    );
    if remote == 0 || aborted != 0 {
        return Err(summary);
    }
    Ok(summary)
}

/// Runs the check and prints its verdict.
pub fn run(bdf: &str) -> ExitCode {
    match ping_pong(bdf) {
        Ok(s) => {
            println!("ACCESSED_BY ping-pong over VFIO: {ROUNDS} rounds x {PAGES} pages correct; {s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("ACCESSED_BY ping-pong over VFIO failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--reset BDF`: `DeviceIo::reset` on the NPU over VFIO (a function-level reset the
/// device advertises): SCRATCH back at its reset value, the ID register readable after.
pub fn reset(bdf: &str) -> ExitCode {
    use npu::{DeviceIo, regs};
    let r = (|| -> Result<String, String> {
        let mut d = VfioDevice::open(bdf).map_err(|e| e.to_string())?;
        if !d.pci().reset_supported() {
            return Err("VFIO reports no reset for the device".into());
        }
        d.write32(regs::SCRATCH.offset, 0x5a5a_1234).map_err(|e| e.to_string())?;
        d.reset().map_err(|e| e.to_string())?;
        let scratch = d.read32(regs::SCRATCH.offset).map_err(|e| e.to_string())?;
        if scratch != regs::SCRATCH.reset {
            return Err(format!("SCRATCH reads {scratch:#x} after the reset, want {:#x}", regs::SCRATCH.reset));
        }
        Ok(format!("SCRATCH {scratch:#x} after the reset"))
    })();
    match r {
        Ok(s) => {
            println!("DeviceIo::reset over VFIO (FLR): {s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("DeviceIo::reset over VFIO failed: {e}");
            ExitCode::FAILURE
        }
    }
}
