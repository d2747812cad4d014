//! The timing model of everything outside the RTL, in one place.
//!
//! Inside the RTL every cycle is exact. Outside it — PCIe link and host memory, the
//! HBM/DDR controller — the bridge models each memory port with a read latency, a
//! write-response latency, a bandwidth cap and a limit on accepted bursts, plus an
//! optional seeded pattern of random stalls for back-pressure tests. Defaults are for
//! the nominal 250 MHz clock and a 512-bit data path:
//!
//! | port | read latency | write response | bandwidth cap |
//! |---|---|---|---|
//! | host (PCIe) | 250 cycles = 1 µs | 125 cycles = 0.5 µs | 64 B/cycle = 16 GB/s each way |
//! | device (HBM) | 40 cycles = 160 ns | 20 cycles = 80 ns | 64 B/cycle (one beat per cycle) |
//!
//! Every reported throughput names these parameters (see [`TimingModel::describe`]).

/// Nominal device clock of the co-simulation (cycles → nanoseconds).
pub const NOMINAL_HZ: u64 = 250_000_000;

/// Timing of one memory port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortTiming {
    /// Cycles from an accepted read burst to its first data beat.
    pub read_latency: u64,
    /// Cycles from a burst's last write beat to its write response.
    pub write_latency: u64,
    /// Bandwidth cap per direction in bytes per cycle (≤ the data width, 64).
    pub bytes_per_cycle: u64,
    /// Bursts the port accepts before it back-pressures AR/AW.
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

/// The whole timing model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimingModel {
    /// Host-memory port (PCIe link + host DRAM).
    pub host: PortTiming,
    /// Device-memory port (HBM/DDR controller).
    pub dev: PortTiming,
    /// Random stalls on the host port.
    pub host_stalls: Option<StallPattern>,
    /// Random stalls on the device port.
    pub dev_stalls: Option<StallPattern>,
}

impl Default for TimingModel {
    fn default() -> Self {
        Self {
            host: PortTiming { read_latency: 250, write_latency: 125, bytes_per_cycle: 64, max_outstanding: 64 },
            dev: PortTiming { read_latency: 40, write_latency: 20, bytes_per_cycle: 64, max_outstanding: 64 },
            host_stalls: None,
            dev_stalls: None,
        }
    }
}

impl TimingModel {
    /// A short link for correctness runs (the soak): host read 16 / write 8 cycles,
    /// device read 8 / write 4, bandwidth and outstanding limits as the default. The
    /// RTL does the same work in about a quarter of the cycles of the nominal PCIe
    /// latencies, so a soak runs four times more operations in the same wall time.
    /// Not for performance figures.
    pub fn short_link() -> Self {
        let d = Self::default();
        Self {
            host: PortTiming { read_latency: 16, write_latency: 8, ..d.host },
            dev: PortTiming { read_latency: 8, write_latency: 4, ..d.dev },
            ..d
        }
    }

    /// One line naming every parameter, for reports.
    pub fn describe(&self) -> String {
        let port = |p: &PortTiming| {
            format!(
                "rd_lat={} wr_lat={} bw={}B/cyc outstanding={}",
                p.read_latency, p.write_latency, p.bytes_per_cycle, p.max_outstanding
            )
        };
        let stalls = |s: &Option<StallPattern>| match s {
            Some(s) => format!(" stalls={}%@seed{}", s.percent, s.seed),
            None => String::new(),
        };
        format!(
            "clock={}MHz host[{}{}] dev[{}{}]",
            NOMINAL_HZ / 1_000_000,
            port(&self.host),
            stalls(&self.host_stalls),
            port(&self.dev),
            stalls(&self.dev_stalls)
        )
    }
}

/// xorshift64* — small, fast, deterministic; enough for stall patterns.
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
    }

    #[test]
    fn description_names_the_parameters() {
        let d = TimingModel::default().describe();
        assert!(d.contains("host[rd_lat=250 wr_lat=125 bw=64B/cyc"), "{d}");
        assert!(d.contains("clock=250MHz"), "{d}");
    }
}
