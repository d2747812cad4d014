//! The NPU layer's success path on a real kernel VFIO stack, without an NPU: QEMU's
//! standard VGA has a 16 MiB RAM BAR0, so the test writes an NPU identity into it
//! (ID "NPU1", VERSION 1.0.0, CAPS) and then drives it as an NPU through
//! `vfio_driver::VfioDevice` and `npu::DeviceIo`: open and identity checks, CSR access
//! and range checks, DMA mapping, `wait_irq` in polling mode (VGA has no interrupts)
//! with a "device" thread that sets INT_STATUS through a second mapping of the BAR,
//! wall-clock time, and reset without FLR.

use std::time::{Duration, Instant};

use npu::{Clock, DeviceIo, DmaBuffer, IoError, regs};
use pci_driver::device::PciDevice;
use pci_driver::regions::{PciRegion, Permissions};
use vfio_driver::bringup::{Identity, scratch};
use vfio_driver::{IrqMode, VfioDevice, VfioPci};

use crate::Checks;

pub const VENDOR: u16 = 0x1234;
pub const DEVICE: u16 = 0x1111;
const CAPS0: u32 = 3 | (16 << 8) | (32 << 16) | (6 << 24);
const CAPS1: u32 = 256 | (4 << 16) | (40 << 24);

fn e2s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Runs the checks on the VGA at `bdf` (bound to vfio-pci).
pub fn run(c: &mut Checks, bdf: &str) {
    c.check(
        "NPU-shaped RAM BAR: write an NPU identity through the generic layer",
        (|| {
            let d = VfioPci::open(bdf, &vfio_driver::OpenOptions { irq: IrqMode::Off, ..Default::default() })
                .map_err(e2s)?;
            for (r, v) in [
                (regs::ID, regs::NPU_ID),
                (regs::VERSION, regs::NPU_VERSION),
                (regs::CAPS0, CAPS0),
                (regs::CAPS1, CAPS1),
            ] {
                d.write32(0, u64::from(r.offset), v).map_err(e2s)?;
            }
            for off in (regs::SCRATCH.offset..regs::CSR_BYTES).step_by(4) {
                d.write32(0, u64::from(off), 0).map_err(e2s)?;
            }
            Ok(format!("BAR0 {:#x} bytes of RAM", d.bar_size(0).unwrap_or(0)))
        })(),
    );
    let mut d = match VfioDevice::open(bdf) {
        Ok(d) => d,
        Err(e) => return c.fail("NPU layer: VfioDevice::open accepts it", e.to_string()),
    };
    c.check("NPU layer: VfioDevice::open accepts it (ID, VERSION, BAR0)", {
        let ok = d.name() == format!("vfio {bdf}") && d.clock() == Clock::Wall && d.pci().irq_kind().is_none();
        if ok { Ok(format!("{}, wall clock, no interrupts: polling", d.name())) } else { Err(format!("{d:?}")) }
    });
    c.check(
        "NPU layer: identity and SCRATCH through DeviceIo (bring-up code)",
        (|| {
            let id = Identity::read(&mut d).map_err(e2s)?;
            scratch(&mut d).map_err(e2s)?;
            let want = (3, 16, 32, 512, 256, 4, 40);
            let got = (
                id.dma_channels,
                id.asids,
                id.tlb_entries,
                id.data_bits,
                id.dev_mem_mib,
                id.cu_inflight,
                id.host_window_shift,
            );
            if id.version != (1, 0, 0) || got != want {
                return Err(format!("{id:?}"));
            }
            Ok(format!("v1.0.0, {} channels, {} bit", id.dma_channels, id.data_bits))
        })(),
    );
    c.check(
        "NPU layer: 64-bit CSR pairs low word first, range checks",
        (|| {
            let off = regs::DMA_DESC_BASE_LO.offset;
            d.write64(off, 0x1234_5678_9abc_def0).map_err(e2s)?;
            let (lo, hi) = (d.read32(off).map_err(e2s)?, d.read32(off + 4).map_err(e2s)?);
            if (lo, hi) != (0x9abc_def0, 0x1234_5678) || d.read64(off).map_err(e2s)? != 0x1234_5678_9abc_def0 {
                return Err(format!("lo {lo:#x} hi {hi:#x}"));
            }
            match (d.read32(regs::CSR_BYTES), d.write32(2, 0)) {
                (Err(IoError::CsrOutOfRange { .. }), Err(IoError::CsrOutOfRange { .. })) => {
                    Ok("pairs ok; 0x1000 and 0x2 refused".into())
                }
                other => Err(format!("{other:?}")),
            }
        })(),
    );
    c.check(
        "NPU layer: dma_map / dma_unmap through DeviceIo",
        (|| {
            let buf = DmaBuffer::new(8192).map_err(e2s)?;
            let iova = d.dma_map(&buf).map_err(e2s)?;
            let r = d.dma_unmap(iova).map_err(e2s);
            r?;
            match d.dma_unmap(iova) {
                Err(IoError::NotMapped { .. }) if iova == 0x1000 => {
                    Ok(format!("8 KiB at {iova:#x}, second unmap NotMapped"))
                }
                other => Err(format!("iova {iova:#x}, second unmap {other:?}")),
            }
        })(),
    );
    c.check("NPU layer: wait_irq polls INT_STATUS & INT_MASK (level), budget in wall time", (|| {
        // The device side: a second mapping of BAR0 through the same VFIO device (a sysfs
        // `resource0` mapping is revoked once vfio-pci claims the BAR).
        let bar = d.pci().device().bar(0).ok_or("no BAR0")?;
        let dev = bar.map(0..4096, Permissions::ReadWrite).map_err(e2s)?;
        let raise = |v: u32| dev.write_le_u32(u64::from(regs::INT_STATUS.offset), v).map_err(e2s);
        d.write32(regs::INT_MASK.offset, 0x7f).map_err(e2s)?;
        let t = Instant::now();
        let (fired, raised) = std::thread::scope(|s| {
            let device = s.spawn(|| {
                // The "device" raises cause 6 (ERROR) 30 ms into the wait.
                std::thread::sleep(Duration::from_millis(30));
                raise(1 << 6)
            });
            let fired = d.wait_irq(1 << 6, 2_000_000_000);
            (fired, device.join())
        });
        raised.map_err(|_| "device thread panicked".to_owned())??;
        let fired = fired.map_err(e2s)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if fired != 1 << 6 || ms < 25.0 {
            return Err(format!("returned {fired:#x} after {ms:.1} ms"));
        }
        let again = d.wait_irq(0x7f, 0).map_err(e2s)?;
        let t0 = d.now_ns();
        let other = d.wait_irq(1 << 2, 20_000_000).map_err(e2s)?;
        let waited = d.now_ns() - t0;
        d.write32(regs::INT_MASK.offset, 0).map_err(e2s)?;
        let masked = d.wait_irq(1 << 6, 5_000_000).map_err(e2s)?;
        raise(0)?;
        if again != 1 << 6 || other != 0 || waited < 20_000_000 || masked != 0 {
            return Err(format!("pending {again:#x}, other cause {other:#x} after {waited} ns, masked {masked:#x}"));
        }
        Ok(format!("cause 6 after {ms:.1} ms; still pending on re-wait; cause 2 timed out after {:.1} ms; masked cause ignored", waited as f64 / 1e6))
    })());
    c.check(
        "NPU layer: advance and reset without FLR",
        (|| {
            let t0 = d.now_ns();
            d.advance(2_000_000).map_err(e2s)?;
            let dt = d.now_ns() - t0;
            match d.reset() {
                Err(IoError::Device(m)) if m.contains("does not support a VFIO function reset") && dt >= 2_000_000 => {
                    Ok(format!("advance(2 ms) took {:.1} ms; reset: {m}", dt as f64 / 1e6))
                }
                other => Err(format!("advance took {dt} ns; reset {other:?}")),
            }
        })(),
    );
}
