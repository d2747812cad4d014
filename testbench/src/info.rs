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

impl Backend {
    /// What the backend is, for report headers.
    pub fn describe(&self) -> String {
        match self {
            Backend::Rtl => "the Verilated RTL".into(),
            Backend::Model => "the untimed reference model".into(),
            Backend::Vfio(bdf) => format!("the board at {bdf} (VFIO)"),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Rtl => f.write_str("rtl"),
            Backend::Model => f.write_str("model"),
            Backend::Vfio(bdf) => write!(f, "vfio:{bdf}"),
        }
    }
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

/// Everything `gmem info` reports, read from the device.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DeviceInfo {
    /// The transport's name for the device.
    pub device: String,
    /// ID register.
    pub id: u32,
    /// The ID as ASCII ("NPU1").
    pub id_ascii: String,
    /// Whether the ID is this project's NPU.
    pub id_ok: bool,
    /// VERSION register as major.minor.patch.
    pub version: String,
    /// DMA channels.
    pub dma_channels: u32,
    /// Address-space IDs.
    pub asids: u32,
    /// TLB entries.
    pub tlb_entries: u32,
    /// Data path width, bits.
    pub data_path_bits: u32,
    /// Device memory, MiB.
    pub device_memory_mib: u32,
    /// The host window starts at 2^this device-physical address.
    pub host_window_shift: u32,
    /// STATUS register.
    pub status: u32,
    /// ERR_INFO register when STATUS latched an error.
    pub err_info: Option<u32>,
    /// Device time now, ns, in [`crate::provenance::ClockDomain::of`] the backend.
    pub device_time_ns: u64,
    /// What device time is counted in.
    pub clock_domain: crate::provenance::ClockDomain,
    /// Performance counters by name (`cycles`, `dma0_bytes`, …), in register order; a
    /// JSON object.
    #[serde(serialize_with = "as_map")]
    pub counters: Vec<(&'static str, u64)>,
}

fn as_map<S: serde::Serializer>(pairs: &[(&'static str, u64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

/// Reads everything `gmem info` reports from the device on `backend`.
pub fn report<T: DeviceIo + ?Sized>(io: &mut T, backend: &Backend) -> Result<DeviceInfo, npu::IoError> {
    let id = io.read32(regs::ID.offset)?;
    let version = io.read32(regs::VERSION.offset)?;
    let caps0 = io.read32(regs::CAPS0.offset)?;
    let caps1 = io.read32(regs::CAPS1.offset)?;
    let status = io.read32(regs::STATUS.offset)?;
    let err_info = io.read32(regs::ERR_INFO.offset)?;
    let mut counters = Vec::new();
    for (name, idx) in [
        ("cycles", regs::perf_ctr::CYCLES),
        ("dma0_bytes", regs::perf_ctr::DMA0_BYTES),
        ("dma1_bytes", regs::perf_ctr::DMA1_BYTES),
        ("dma2_bytes", regs::perf_ctr::DMA2_BYTES),
        ("host_rd_bytes", regs::perf_ctr::HOST_RD_BYTES),
        ("host_wr_bytes", regs::perf_ctr::HOST_WR_BYTES),
        ("dev_rd_bytes", regs::perf_ctr::DEV_RD_BYTES),
        ("dev_wr_bytes", regs::perf_ctr::DEV_WR_BYTES),
        ("csr_accesses", regs::perf_ctr::CSR_ACCESSES),
    ] {
        // PERF_HI[i] follows PERF_LO[i]: one LO-then-HI pair, as the latch expects.
        counters.push((name, io.read64(regs::PERF_LO.at(idx as u32).unwrap_or(regs::PERF_LO.offset))?));
    }
    Ok(DeviceInfo {
        device: io.name().to_string(),
        id,
        id_ascii: id_string(id),
        id_ok: id == regs::NPU_ID,
        version: version_string(version),
        dma_channels: regs::caps0::DMA_CHANNELS.get32(caps0),
        asids: regs::caps0::ASIDS.get32(caps0),
        tlb_entries: regs::caps0::TLB_ENTRIES.get32(caps0),
        data_path_bits: 8u32 << regs::caps0::DATA_BYTES_LOG2.get32(caps0),
        device_memory_mib: regs::caps1::DEV_MEM_MIB.get32(caps1),
        host_window_shift: regs::caps1::HOST_WINDOW_SHIFT.get32(caps1),
        status,
        err_info: (regs::status::ERROR.get32(status) == 1).then_some(err_info),
        device_time_ns: io.now_ns(),
        clock_domain: crate::provenance::ClockDomain::of(backend),
        counters,
    })
}

impl DeviceInfo {
    /// The text report.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        writeln!(s, "device        {}", self.device).ok();
        writeln!(
            s,
            "ID            {:#010x} \"{}\"{}",
            self.id,
            self.id_ascii,
            if self.id_ok { "" } else { "  (not an NPU of this project: wrong bitstream?)" }
        )
        .ok();
        writeln!(s, "version       {}", self.version).ok();
        writeln!(
            s,
            "capabilities  {} DMA channels, {} ASIDs, {} TLB entries, {}-bit data path, {} MiB device memory, host window at 2^{}",
            self.dma_channels,
            self.asids,
            self.tlb_entries,
            self.data_path_bits,
            self.device_memory_mib,
            self.host_window_shift
        )
        .ok();
        let err = self.err_info.map_or(String::new(), |e| format!("  ERROR latched: ERR_INFO {e:#010x}"));
        writeln!(s, "status        {:#010x}{err}", self.status).ok();
        writeln!(s, "clock         {}; device time {} ns", self.clock_domain.describe(), self.device_time_ns).ok();
        writeln!(s, "counters").ok();
        for (name, value) in &self.counters {
            writeln!(s, "  {name:<14}{value}").ok();
        }
        s
    }
}
