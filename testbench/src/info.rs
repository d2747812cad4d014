//! `gmem info`: identification, capabilities, status and counters of a device, read
//! through the transport (`DeviceIo`) only, so it works the same on the co-simulation
//! and on a board.

use npu::{DeviceIo, regs};

/// Which device to talk to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The Verilated RTL (default).
    Rtl,
    /// The untimed Rust reference model of the device.
    Model,
    /// A board through VFIO, by PCI address.
    Vfio(String),
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rtl" => Ok(Self::Rtl),
            "model" => Ok(Self::Model),
            _ => match s.strip_prefix("vfio:") {
                Some(bdf) => {
                    bdf.parse::<vfio_driver::Bdf>().map_err(|e| format!("malformed PCI address in `{s}`: {e}"))?;
                    Ok(Self::Vfio(bdf.to_string()))
                }
                None => Err(format!(
                    "unknown backend `{s}`: use `rtl`, `model` or `vfio:<domain:bus:dev.fn>`, e.g. vfio:0000:01:00.0"
                )),
            },
        }
    }
}

/// "major.minor.patch" of a VERSION register value.
pub fn version_string(v: u32) -> String {
    format!("{}.{}.{}", regs::version::MAJOR.get32(v), regs::version::MINOR.get32(v), regs::version::PATCH.get32(v))
}

/// The ID register as the ASCII it spells ("NPU1").
pub fn id_string(id: u32) -> String {
    id.to_le_bytes().iter().map(|&b| if b.is_ascii_graphic() { b as char } else { '.' }).collect()
}

/// Everything `gmem info` prints, read from the device.
pub fn report<T: DeviceIo + ?Sized>(io: &mut T) -> Result<String, npu::IoError> {
    use std::fmt::Write;
    let id = io.read32(regs::ID.offset)?;
    let version = io.read32(regs::VERSION.offset)?;
    let caps0 = io.read32(regs::CAPS0.offset)?;
    let caps1 = io.read32(regs::CAPS1.offset)?;
    let status = io.read32(regs::STATUS.offset)?;
    let err_info = io.read32(regs::ERR_INFO.offset)?;
    let ascii = id_string(id);
    let mut s = String::new();
    writeln!(s, "device        {}", io.name()).ok();
    writeln!(
        s,
        "ID            {id:#010x} \"{ascii}\"{}",
        if id == regs::NPU_ID { "" } else { "  (not an NPU of this project: wrong bitstream?)" }
    )
    .ok();
    writeln!(s, "version       {}", version_string(version)).ok();
    writeln!(
        s,
        "capabilities  {} DMA channels, {} ASIDs, {} TLB entries, {}-bit data path, {} MiB device memory, host window at 2^{}",
        regs::caps0::DMA_CHANNELS.get32(caps0),
        regs::caps0::ASIDS.get32(caps0),
        regs::caps0::TLB_ENTRIES.get32(caps0),
        8u32 << regs::caps0::DATA_BYTES_LOG2.get32(caps0),
        regs::caps1::DEV_MEM_MIB.get32(caps1),
        regs::caps1::HOST_WINDOW_SHIFT.get32(caps1)
    )
    .ok();
    writeln!(
        s,
        "status        {status:#010x}{}",
        if regs::status::ERROR.get32(status) == 1 {
            format!("  ERROR latched: ERR_INFO {err_info:#010x}")
        } else {
            String::new()
        }
    )
    .ok();
    writeln!(s, "clock         {:?}, device time {} ns", io.clock(), io.now_ns()).ok();
    writeln!(s, "counters").ok();
    for (name, idx) in [
        ("cycles", regs::perf_ctr::CYCLES),
        ("DMA0 bytes", regs::perf_ctr::DMA0_BYTES),
        ("DMA1 bytes", regs::perf_ctr::DMA1_BYTES),
        ("DMA2 bytes", regs::perf_ctr::DMA2_BYTES),
        ("host rd bytes", regs::perf_ctr::HOST_RD_BYTES),
        ("host wr bytes", regs::perf_ctr::HOST_WR_BYTES),
        ("dev rd bytes", regs::perf_ctr::DEV_RD_BYTES),
        ("dev wr bytes", regs::perf_ctr::DEV_WR_BYTES),
        ("CSR accesses", regs::perf_ctr::CSR_ACCESSES),
    ] {
        // PERF_HI[i] follows PERF_LO[i]: one LO-then-HI pair, as the latch expects.
        let value = io.read64(regs::PERF_LO.at(idx as u32).unwrap_or(regs::PERF_LO.offset))?;
        writeln!(s, "  {name:<14}{value}").ok();
    }
    Ok(s)
}
