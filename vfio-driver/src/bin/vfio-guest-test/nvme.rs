//! MSI-X check with QEMU's NVMe controller (`-device nvme`): the generic layer picks
//! MSI-X on its own, brings the controller up through 32/64-bit registers, and runs one
//! real admin command (IDENTIFY controller) whose submission queue the device reads and
//! whose completion and data it writes by DMA; the completion raises MSI-X vector 0.

use std::time::{Duration, Instant};

use npu::DmaBuffer;
use vfio_driver::{IrqKind, IrqMode, OpenOptions, VfioPci};

use crate::Checks;

pub const VENDOR: u16 = 0x1b36;
pub const DEVICE: u16 = 0x0010;
/// Serial number the harness gives the controller (`-device nvme,serial=...`).
pub const SERIAL: &str = "vfio-guest";

const CAP: u64 = 0x00;
const VS: u64 = 0x08;
const CC: u64 = 0x14;
const CSTS: u64 = 0x1c;
const AQA: u64 = 0x24;
const ASQ: u64 = 0x28;
const ACQ: u64 = 0x30;
const DOORBELLS: u64 = 0x1000;
const QUEUE_ENTRIES: u32 = 8;
/// CC: enable, NVM command set, 4 KiB pages, 64-byte SQ and 16-byte CQ entries.
const CC_ENABLE: u32 = 1 | (6 << 16) | (4 << 20);
const OPC_IDENTIFY: u8 = 0x06;
const CNS_CONTROLLER: u32 = 1;
const CID: u16 = 0x2a;

type R = Result<String, String>;

fn e2s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn wait_ready(d: &VfioPci, want: bool, timeout: Duration) -> Result<Duration, String> {
    let t = Instant::now();
    loop {
        let csts = d.read32(0, CSTS).map_err(e2s)?;
        if csts & 2 != 0 {
            return Err(format!("controller fatal status (CSTS {csts:#x})"));
        }
        if (csts & 1 != 0) == want {
            return Ok(t.elapsed());
        }
        if t.elapsed() > timeout {
            return Err(format!("CSTS.RDY did not become {} within {timeout:?}", u8::from(want)));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The IDENTIFY round trip; `sq`, `cq`, `id` are mapped at `iovas`.
fn identify(d: &mut VfioPci, bufs: [&DmaBuffer; 3], iovas: [u64; 3]) -> R {
    let [sq, cq, id] = bufs;
    // Fresh queues: a controller (re)start expects an empty CQ with phase 0 entries.
    for b in bufs {
        b.write(0, &[0; 4096]).map_err(e2s)?;
    }
    let cap = d.read64(0, CAP).map_err(e2s)?;
    let vs = d.read32(0, VS).map_err(e2s)?;
    let stride = 4u64 << ((cap >> 32) & 0xf);
    let timeout = Duration::from_millis(500 * ((cap >> 24) & 0xff).max(1));
    d.write32(0, CC, 0).map_err(e2s)?;
    wait_ready(d, false, timeout)?;
    let q = QUEUE_ENTRIES - 1;
    d.write32(0, AQA, (q << 16) | q).map_err(e2s)?;
    d.write64(0, ASQ, iovas[0]).map_err(e2s)?;
    d.write64(0, ACQ, iovas[1]).map_err(e2s)?;
    let asq = d.read64(0, ASQ).map_err(e2s)?;
    if asq != iovas[0] {
        return Err(format!("ASQ reads {asq:#x} after writing {:#x} (64-bit MMIO)", iovas[0]));
    }
    d.write32(0, CC, CC_ENABLE).map_err(e2s)?;
    let up = wait_ready(d, true, timeout)?;
    // Submission queue entry 0: IDENTIFY controller into `id`.
    let mut cmd = [0u8; 64];
    cmd[0] = OPC_IDENTIFY;
    cmd[2..4].copy_from_slice(&CID.to_le_bytes());
    cmd[24..32].copy_from_slice(&iovas[2].to_le_bytes());
    cmd[40..44].copy_from_slice(&CNS_CONTROLLER.to_le_bytes());
    sq.write(0, &cmd).map_err(e2s)?;
    let t = Instant::now();
    d.write32(0, DOORBELLS, 1).map_err(e2s)?; // SQ0 tail = 1
    let fired = d.wait_irq(1, Duration::from_secs(10)).map_err(e2s)?;
    let irq_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut cqe = [0u8; 16];
    cq.read(0, &mut cqe).map_err(e2s)?;
    let dw3 = u32::from_le_bytes([cqe[12], cqe[13], cqe[14], cqe[15]]);
    d.write32(0, DOORBELLS + stride, 1).map_err(e2s)?; // CQ0 head = 1
    if fired != 1 {
        return Err(format!("no MSI-X vector 0 within 10 s (CQE dw3 {dw3:#x})"));
    }
    let (cid, phase, status) = (dw3 & 0xffff, (dw3 >> 16) & 1, dw3 >> 17);
    if cid != u32::from(CID) || phase != 1 || status != 0 {
        return Err(format!("completion cid {cid:#x} phase {phase} status {status:#x}"));
    }
    let mut ident = [0u8; 64];
    id.read(0, &mut ident).map_err(e2s)?;
    let vid = u16::from_le_bytes([ident[0], ident[1]]);
    let sn = String::from_utf8_lossy(&ident[4..24]).trim().to_owned();
    let mn = String::from_utf8_lossy(&ident[24..64]).trim().to_owned();
    if vid != VENDOR || sn != SERIAL {
        return Err(format!("identify data: VID {vid:#06x}, serial {sn:?}"));
    }
    d.write32(0, CC, 0).map_err(e2s)?;
    wait_ready(d, false, timeout)?;
    Ok(format!(
        "NVMe {}.{}, ready in {:.1} ms, completion + MSI-X vector 0 after {irq_ms:.1} ms, {mn:?} serial {sn:?}",
        vs >> 16,
        (vs >> 8) & 0xff,
        up.as_secs_f64() * 1e3
    ))
}

/// Runs the NVMe checks on the controller at `bdf` (bound to vfio-pci).
pub fn run(c: &mut Checks, bdf: &str) {
    let opts = OpenOptions { irq: IrqMode::Auto, vectors: 4, map_bars: vec![0], ..OpenOptions::default() };
    let mut d = match VfioPci::open(bdf, &opts) {
        Ok(d) => d,
        Err(e) => return c.fail("NVMe: open with interrupts on Auto", e.to_string()),
    };
    c.check(
        "NVMe: Auto picks MSI-X, 4 vectors",
        match d.irq_kind() {
            Some((IrqKind::MsiX, 4)) => Ok("MsiX x4".into()),
            other => Err(format!("{other:?}")),
        },
    );
    let bufs: Vec<DmaBuffer> = match (0..3).map(|_| DmaBuffer::new(4096)).collect() {
        Ok(b) => b,
        Err(e) => return c.fail("NVMe: DMA buffers", e2s(e)),
    };
    let mut iovas = Vec::new();
    for b in &bufs {
        // SAFETY: `bufs` outlives the mappings: all are removed before this function
        // returns, after the controller was disabled (CC.EN = 0, CSTS.RDY = 0).
        match unsafe { d.dma_map_raw(b.as_ptr(), b.len()) } {
            Ok(i) => iovas.push(i),
            Err(e) => c.fail("NVMe: DMA map", e2s(e)),
        }
    }
    if iovas.len() == 3 {
        let (b3, i3) = ([&bufs[0], &bufs[1], &bufs[2]], [iovas[0], iovas[1], iovas[2]]);
        c.check("NVMe: IDENTIFY by DMA, completion through MSI-X eventfd", identify(&mut d, b3, i3));
        c.check(
            "NVMe: function reset (FLR) through VFIO, then IDENTIFY again",
            (|| {
                if !d.reset_supported() {
                    return Err("VFIO reports no reset for the NVMe controller".into());
                }
                d.write32(0, CC, CC_ENABLE).map_err(e2s)?;
                wait_ready(&d, true, Duration::from_secs(2))?;
                d.reset().map_err(e2s)?;
                let (cc, csts) = (d.read32(0, CC).map_err(e2s)?, d.read32(0, CSTS).map_err(e2s)?);
                if cc != 0 || csts & 1 != 0 {
                    return Err(format!("after reset CC {cc:#x} CSTS {csts:#x}: the controller was not reset"));
                }
                let r = identify(&mut d, b3, i3).map_err(|e| format!("after reset: {e}"))?;
                Ok(format!(
                    "CC.EN 1 -> 0; BAR, DMA maps and MSI-X survive: {}",
                    r.split(", completion").nth(1).unwrap_or(&r).trim_start_matches(" + ")
                ))
            })(),
        );
    }
    // Make sure the controller is off before its queues go away, even after a failure.
    let _ = d.write32(0, CC, 0);
    let _ = wait_ready(&d, false, Duration::from_secs(2));
    for i in iovas {
        let _ = d.dma_unmap(i);
    }
    c.check(
        "NVMe: other vectors stay quiet",
        match d.wait_irq(0b1110, Duration::from_millis(20)) {
            Ok(0) => Ok("vectors 1-3: none".into()),
            other => Err(format!("{other:?}")),
        },
    );
}
