//! The model of everything outside the RTL, in one place: the system the NPU sits in.
//!
//! Inside the RTL every cycle is exact. Outside it the bridge models, deterministically:
//! - the **host link** behind the host-memory port: either `ideal` (a read latency, a
//!   write-response latency and a payload cap of 64 B/cycle, no protocol cost — the
//!   model of RTL-only studies) or a **PCIe link** at the protocol level
//!   ([`PcieLink`]: lane rate, encoding, TLP headers, MPS/MRRS/completion splitting,
//!   tags, latency with seeded jitter);
//! - the **device memory** behind the device-memory port: `ideal` (fixed latencies, one
//!   beat per cycle) or a half-duplex DRAM ([`DramModel`]: DDR4 or HBM);
//! - **MMIO**: a CSR read is a non-posted round trip, a CSR write a posted write that
//!   reaches the device some time after the host issued it;
//! - **interrupts**: MSI-X delivery plus the host's wake-up between the line rising and
//!   the driver's wait returning;
//! - optional seeded stalls on both ports for back-pressure tests.
//!
//! Host software time is charged by the driver (`npu::HostTime`), or measured by the
//! bridge when [`crate::SimConfig::measure_host_time`] is set. Every figure names the
//! whole model ([`TimingModel::describe`], [`TimingModel::to_json`]); the parameters,
//! their defaults and sources are in docs/performance-model.md.

use crate::dram::DramModel;
use crate::pcie::{PcieGen, PcieLink};

/// Nominal device clock of the co-simulation (cycles → nanoseconds): the NPU's.
pub use npu::NOMINAL_HZ;

/// AXI-side limits of one memory port, and the latencies of its `ideal` model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortTiming {
    /// Ideal model: cycles from an accepted read burst to its first data beat.
    pub read_latency: u64,
    /// Ideal model: cycles from a burst's last write beat to its write response.
    pub write_latency: u64,
    /// Ideal model: bandwidth cap per direction in bytes per cycle (≤ the data width, 64).
    pub bytes_per_cycle: u64,
    /// Bursts the port accepts before it back-pressures AR/AW (every model).
    pub max_outstanding: usize,
}

/// Seeded random stalls on a port's handshakes (for back-pressure tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StallPattern {
    /// PRNG seed.
    pub seed: u64,
    /// Probability in percent (0..=100) that a ready/valid the port drives is withheld
    /// in a given cycle.
    pub percent: u8,
}

/// What serves the host-memory port.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HostLink {
    /// [`PortTiming`] latencies and payload cap, no protocol cost.
    Ideal,
    /// A PCIe link at the protocol level.
    Pcie(PcieLink),
}

/// What serves the device-memory port.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DevMem {
    /// [`PortTiming`] latencies, one beat per cycle each way at once.
    Ideal,
    /// A half-duplex DRAM bus.
    Dram(DramModel),
}

/// Cost of host accesses to the CSRs, and of interrupts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MmioCost {
    /// A CSR read: the non-posted round trip the host waits for.
    pub read_ns: u64,
    /// A CSR write: how long after the host issued it the posted write reaches the
    /// device (the host does not wait for it to arrive).
    pub write_ns: u64,
    /// Least time between two CSR writes leaving the host. A register BAR is mapped
    /// uncached (VFIO, `ioremap`), and x86 sends uncached stores out one at a time,
    /// each after the one before was accepted: a burst of writes (a pushed descriptor
    /// or command, 4 words each) leaves at this spacing. The host waits before each
    /// store until the one before has left, and before a CSR read until the last one
    /// has (an uncached read does not pass them); the wait for the last store of a
    /// burst is charged only to what comes next. 0: any number at once.
    pub write_gap_ns: u64,
    /// From an interrupt line rising to the driver's wait returning (MSI-X write,
    /// interrupt entry, eventfd, thread wake-up).
    pub irq_ns: u64,
}

impl MmioCost {
    /// No cost: the RTL-only view.
    pub const FREE: Self = Self { read_ns: 0, write_ns: 0, write_gap_ns: 0, irq_ns: 0 };
    /// A PCIe board: ~1 µs non-posted read, ~0.4 µs posted-write flight, uncached
    /// stores 150 ns apart, ~3 µs from an MSI-X to a woken user-space thread
    /// (docs/performance-model.md gives the sources).
    pub const PCIE: Self = Self { read_ns: 1_000, write_ns: 400, write_gap_ns: 150, irq_ns: 3_000 };
}

/// Named link presets of the command line (`--link`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkPreset {
    /// PCIe Gen3 x16 (the board the NPU is paired with): the default of `gmem`.
    Gen3x16,
    /// PCIe Gen4 x16.
    Gen4x16,
    /// PCIe Gen5 x16.
    Gen5x16,
    /// The idealised port of RTL-only studies (1 µs read latency, 16 GB/s, free MMIO).
    Ideal,
    /// The soak's short ideal link (host latency 16 cycles).
    Short,
}

impl LinkPreset {
    /// Every preset, for help texts.
    pub const ALL: [LinkPreset; 5] =
        [LinkPreset::Gen3x16, LinkPreset::Gen4x16, LinkPreset::Gen5x16, LinkPreset::Ideal, LinkPreset::Short];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            LinkPreset::Gen3x16 => "gen3x16",
            LinkPreset::Gen4x16 => "gen4x16",
            LinkPreset::Gen5x16 => "gen5x16",
            LinkPreset::Ideal => "ideal",
            LinkPreset::Short => "short",
        }
    }
}

/// Finds the preset called `s` among `all`, or names every choice.
fn by_name<T: Copy>(s: &str, all: &[T], name: fn(T) -> &'static str, what: &str) -> Result<T, String> {
    all.iter().copied().find(|&p| name(p) == s).ok_or_else(|| {
        let names: Vec<_> = all.iter().map(|&p| name(p)).collect();
        format!("unknown {what} '{s}': expected one of {}", names.join(", "))
    })
}

impl std::str::FromStr for LinkPreset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        by_name(s, &Self::ALL, Self::name, "link")
    }
}

/// Named device-memory presets of the command line (`--dev-mem-model`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevMemPreset {
    /// One DDR4-2400 channel: the default of `gmem`.
    Ddr4,
    /// Two HBM2 pseudo-channels.
    Hbm,
    /// The idealised port (160 ns read latency, full duplex, 16 GB/s each way).
    Ideal,
}

impl DevMemPreset {
    /// Every preset, for help texts.
    pub const ALL: [DevMemPreset; 3] = [DevMemPreset::Ddr4, DevMemPreset::Hbm, DevMemPreset::Ideal];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            DevMemPreset::Ddr4 => "ddr4",
            DevMemPreset::Hbm => "hbm",
            DevMemPreset::Ideal => "ideal",
        }
    }
}

impl std::str::FromStr for DevMemPreset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        by_name(s, &Self::ALL, Self::name, "device memory")
    }
}

/// The whole model of the system around the RTL.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimingModel {
    /// Name of the link preset this model was built from (for reports).
    pub link_name: &'static str,
    /// Host-memory port: AXI limits, and the latencies of the ideal link.
    pub host: PortTiming,
    /// Device-memory port: AXI limits, and the latencies of the ideal memory.
    pub dev: PortTiming,
    /// What serves the host-memory port.
    pub link: HostLink,
    /// What serves the device-memory port.
    pub dev_mem: DevMem,
    /// MMIO and interrupt costs.
    pub mmio: MmioCost,
    /// Random stalls on the host port.
    pub host_stalls: Option<StallPattern>,
    /// Random stalls on the device port.
    pub dev_stalls: Option<StallPattern>,
}

/// The ideal model (`--link ideal --dev-mem-model ideal`): the RTL-only view that unit
/// and differential tests use. The command line's default is [`TimingModel::board`].
impl Default for TimingModel {
    fn default() -> Self {
        Self {
            link_name: "ideal",
            host: PortTiming { read_latency: 250, write_latency: 125, bytes_per_cycle: 64, max_outstanding: 64 },
            dev: PortTiming { read_latency: 40, write_latency: 20, bytes_per_cycle: 64, max_outstanding: 64 },
            link: HostLink::Ideal,
            dev_mem: DevMem::Ideal,
            mmio: MmioCost::FREE,
            host_stalls: None,
            dev_stalls: None,
        }
    }
}

impl TimingModel {
    /// The model of a link preset and a device-memory preset.
    pub fn new(link: LinkPreset, mem: DevMemPreset) -> Self {
        let ideal = Self::default();
        let pcie = |generation| Self {
            link_name: link.name(),
            link: HostLink::Pcie(PcieLink::new(generation, 16)),
            mmio: MmioCost::PCIE,
            ..ideal
        };
        let base = match link {
            LinkPreset::Gen3x16 => pcie(PcieGen::Gen3),
            LinkPreset::Gen4x16 => pcie(PcieGen::Gen4),
            LinkPreset::Gen5x16 => pcie(PcieGen::Gen5),
            LinkPreset::Ideal => ideal,
            LinkPreset::Short => Self::short_link(),
        };
        let dev_mem = match mem {
            DevMemPreset::Ddr4 => DevMem::Dram(DramModel::ddr4()),
            DevMemPreset::Hbm => DevMem::Dram(DramModel::hbm()),
            DevMemPreset::Ideal => DevMem::Ideal,
        };
        Self { dev_mem, ..base }
    }

    /// The board-like default of `gmem`: PCIe Gen3 x16 (what an XDMA Gen3 x16 bridge with
    /// a 512-bit AXI at 250 MHz presents) and one DDR4 channel.
    pub fn board() -> Self {
        Self::new(LinkPreset::Gen3x16, DevMemPreset::Ddr4)
    }

    /// A short link for correctness runs (the soak): host read 16 / write 8 cycles,
    /// device read 8 / write 4, bandwidth and outstanding limits as the ideal model, free
    /// MMIO. The RTL does the same work in about a quarter of the cycles, so a soak runs
    /// four times more operations in the same wall time. Not for performance figures.
    pub fn short_link() -> Self {
        let d = Self::default();
        Self {
            link_name: "short",
            host: PortTiming { read_latency: 16, write_latency: 8, ..d.host },
            dev: PortTiming { read_latency: 8, write_latency: 4, ..d.dev },
            ..d
        }
    }

    /// Payload rate of device reads from host memory (host→device), bytes per second.
    pub fn h2d_payload_bytes_per_s(&self) -> f64 {
        match &self.link {
            HostLink::Ideal => self.ideal_host_bytes_per_s(),
            HostLink::Pcie(l) => l.read_payload_bytes_per_s().min(axi_bytes_per_s()),
        }
    }

    /// Payload rate of device writes to host memory (device→host), bytes per second.
    pub fn d2h_payload_bytes_per_s(&self) -> f64 {
        match &self.link {
            HostLink::Ideal => self.ideal_host_bytes_per_s(),
            HostLink::Pcie(l) => l.write_payload_bytes_per_s().min(axi_bytes_per_s()),
        }
    }

    /// Raw link rate per direction (after line encoding), bytes per second.
    pub fn raw_bytes_per_s(&self) -> f64 {
        match &self.link {
            HostLink::Ideal => self.ideal_host_bytes_per_s(),
            HostLink::Pcie(l) => l.raw_bytes_per_s(),
        }
    }

    /// Device-memory rate of both directions together: the ideal port reads and writes
    /// 64 B/cycle each at once; a DRAM shares one bus (which the port's separate read
    /// and write channels, 64 B/cycle each, do not limit).
    pub fn dev_mem_total_bytes_per_s(&self) -> f64 {
        match &self.dev_mem {
            DevMem::Ideal => 2.0 * self.dev_mem_bytes_per_s(),
            DevMem::Dram(d) => d.bytes_per_cycle() * NOMINAL_HZ as f64,
        }
    }

    /// Device-memory rate (each way for ideal, shared for DRAM), bytes per second.
    pub fn dev_mem_bytes_per_s(&self) -> f64 {
        match &self.dev_mem {
            DevMem::Ideal => (self.dev.bytes_per_cycle * NOMINAL_HZ) as f64,
            DevMem::Dram(d) => (d.bytes_per_cycle() * NOMINAL_HZ as f64).min(axi_bytes_per_s()),
        }
    }

    /// Bytes per second a device→device copy can move: the ideal port reads and writes
    /// at once; a half-duplex DRAM carries each byte twice on one bus.
    pub fn d2d_copy_bytes_per_s(&self) -> f64 {
        match &self.dev_mem {
            DevMem::Ideal => self.dev_mem_bytes_per_s(),
            DevMem::Dram(d) => (d.bytes_per_cycle() * NOMINAL_HZ as f64 / 2.0).min(axi_bytes_per_s()),
        }
    }

    fn ideal_host_bytes_per_s(&self) -> f64 {
        (self.host.bytes_per_cycle * NOMINAL_HZ) as f64
    }

    /// One line naming every parameter, for reports.
    pub fn describe(&self) -> String {
        let gbps = |b: f64| format!("{:.2}", b / 1e9);
        let link = match &self.link {
            HostLink::Ideal => format!(
                "{}[rd_lat={} wr_lat={} bw={}B/cyc]",
                self.link_name, self.host.read_latency, self.host.write_latency, self.host.bytes_per_cycle
            ),
            HostLink::Pcie(l) => format!(
                "{}[raw={}GB/s payload h2d={} d2h={}GB/s mps={} mrrs={} cpl={} tags={} lat={}+0..{}ns seed={}]",
                self.link_name,
                gbps(l.raw_bytes_per_s()),
                gbps(self.h2d_payload_bytes_per_s()),
                gbps(self.d2h_payload_bytes_per_s()),
                l.mps,
                l.mrrs,
                l.completion_bytes,
                l.tags,
                l.read_latency_ns,
                l.jitter_ns,
                l.seed
            ),
        };
        let mem = match &self.dev_mem {
            DevMem::Ideal => format!("ideal[rd_lat={} wr_lat={}]", self.dev.read_latency, self.dev.write_latency),
            DevMem::Dram(d) => format!(
                "{}[{}GB/s half-duplex turnaround={}ns rd_lat={}ns]",
                d.name,
                gbps(self.dev_mem_bytes_per_s()),
                d.turnaround_ns,
                d.read_latency_ns
            ),
        };
        let stalls = |s: &Option<StallPattern>| match s {
            Some(s) => format!(" stalls={}%@seed{}", s.percent, s.seed),
            None => String::new(),
        };
        format!(
            "clock={}MHz link={}{} dev_mem={}{} mmio[rd={}ns wr={}ns gap={}ns] irq={}ns outstanding={}",
            NOMINAL_HZ / 1_000_000,
            link,
            stalls(&self.host_stalls),
            mem,
            stalls(&self.dev_stalls),
            self.mmio.read_ns,
            self.mmio.write_ns,
            self.mmio.write_gap_ns,
            self.mmio.irq_ns,
            self.host.max_outstanding
        )
    }

    /// The model as a JSON object (the `model` of every `--json` line, with the host-time
    /// part added by the driver).
    pub fn to_json(self) -> serde_json::Value {
        let link = match &self.link {
            HostLink::Ideal => serde_json::json!({
                "kind": "ideal",
                "read_latency_cycles": self.host.read_latency,
                "write_latency_cycles": self.host.write_latency,
                "bytes_per_cycle": self.host.bytes_per_cycle,
            }),
            HostLink::Pcie(l) => serde_json::json!({ "kind": "pcie", "params": l }),
        };
        let mem = match &self.dev_mem {
            DevMem::Ideal => serde_json::json!({
                "kind": "ideal",
                "read_latency_cycles": self.dev.read_latency,
                "write_latency_cycles": self.dev.write_latency,
            }),
            DevMem::Dram(d) => serde_json::json!({ "kind": "dram", "params": d }),
        };
        serde_json::json!({
            "clock_hz": NOMINAL_HZ,
            "link_preset": self.link_name,
            "link": link,
            "raw_gbps": self.raw_bytes_per_s() / 1e9,
            "payload_gbps": { "h2d": self.h2d_payload_bytes_per_s() / 1e9, "d2h": self.d2h_payload_bytes_per_s() / 1e9 },
            "dev_mem": mem,
            "dev_mem_gbps": self.dev_mem_bytes_per_s() / 1e9,
            "mmio": self.mmio,
            "max_outstanding_bursts": self.host.max_outstanding,
            "stalls": self.host_stalls.is_some() || self.dev_stalls.is_some(),
        })
    }
}

/// The AXI data path's own limit: 64 bytes a cycle.
fn axi_bytes_per_s() -> f64 {
    (64 * NOMINAL_HZ) as f64
}

/// xorshift64* — small, fast, deterministic; enough for stall patterns and jitter.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// True with probability `percent`/100.
    pub(crate) fn chance(&mut self, percent: u8) -> bool {
        self.next() % 100 < u64::from(percent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_roughly_fair() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let hits = (0..10_000).filter(|_| a.chance(30)).count();
        assert!((2_700..3_300).contains(&hits), "{hits}");
        let mut a = Rng::new(7);
        assert!((0..100).all(|_| a.next() == b.next()));
    }

    #[test]
    fn short_link_only_shortens_latencies() {
        let (d, s) = (TimingModel::default(), TimingModel::short_link());
        assert!(s.host.read_latency < d.host.read_latency && s.dev.read_latency < d.dev.read_latency);
        assert_eq!((s.host.bytes_per_cycle, s.host.max_outstanding), (d.host.bytes_per_cycle, d.host.max_outstanding));
        assert_eq!((s.host_stalls, s.dev_stalls), (None, None));
        assert_eq!(TimingModel::new(LinkPreset::Short, DevMemPreset::Ideal), s);
    }

    #[test]
    fn presets_have_the_documented_payload_rates() {
        let b = TimingModel::board();
        assert!((b.h2d_payload_bytes_per_s() / 1e9 - 11.731).abs() < 0.001);
        assert!((b.d2h_payload_bytes_per_s() / 1e9 - 14.077).abs() < 0.001);
        // Gen4 and Gen5 outrun the 512-bit AXI at 250 MHz: 16 GB/s is the limit.
        let g5 = TimingModel::new(LinkPreset::Gen5x16, DevMemPreset::Ideal);
        assert_eq!(g5.d2h_payload_bytes_per_s(), 16e9);
        assert_eq!(TimingModel::new(LinkPreset::Ideal, DevMemPreset::Ideal), TimingModel::default());
        assert_eq!(b.mmio, MmioCost::PCIE);
        // Both directions at once share the DDR4 bus: 18.34 GB/s, not the 16 GB/s of one
        // AXI channel.
        assert!((b.dev_mem_total_bytes_per_s() / 1e9 - 18.338).abs() < 0.001);
        assert!((b.d2d_copy_bytes_per_s() / 1e9 - 9.169).abs() < 0.001);
        assert_eq!(TimingModel::default().mmio, MmioCost::FREE);
    }

    #[test]
    fn presets_parse_by_name_and_bad_names_list_the_choices() {
        for p in LinkPreset::ALL {
            assert_eq!(p.name().parse::<LinkPreset>(), Ok(p));
        }
        let e = "gen9".parse::<LinkPreset>().unwrap_err();
        assert!(e.contains("gen3x16, gen4x16, gen5x16, ideal, short"), "{e}");
        assert_eq!("hbm".parse::<DevMemPreset>(), Ok(DevMemPreset::Hbm));
    }

    #[test]
    fn description_and_json_name_the_whole_model() {
        let d = TimingModel::default().describe();
        assert!(d.contains("link=ideal[rd_lat=250 wr_lat=125 bw=64B/cyc]"), "{d}");
        assert!(d.contains("clock=250MHz"), "{d}");
        let b = TimingModel::board().describe();
        for part in ["link=gen3x16[raw=15.75GB/s payload h2d=11.73 d2h=14.08GB/s", "dev_mem=ddr4[", "mmio[rd=1000ns"] {
            assert!(b.contains(part), "{part} in {b}");
        }
        let j = TimingModel::board().to_json();
        assert_eq!(j["link"]["params"]["mps"], 256);
        assert_eq!(j["mmio"]["irq_ns"], 3000);
        assert_eq!(j["dev_mem"]["params"]["name"], "ddr4");
    }
}
