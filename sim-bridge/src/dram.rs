//! Device memory behind the NPU's device-memory port, as a DRAM controller presents it:
//! one half-duplex data bus that reads and writes take turns on, a read/write
//! turnaround each time the direction changes, and refresh as an efficiency factor of
//! the bus rate. The bus is scheduled in the order the AXI port accepts bursts and
//! beats (a controller that does not reorder), so the figures are conservative.

use crate::pipe::{Fixed, Pipe, ceil_cycles, fixed, fixed_ns};
use crate::timing::NOMINAL_HZ;

/// Parameters of a DRAM device memory. See docs/performance-model.md.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct DramModel {
    /// Preset name (`ddr4`, `hbm`).
    pub name: &'static str,
    /// Peak data-bus rate, bytes per second.
    pub peak_bytes_per_s: f64,
    /// Share of time the bus is not refreshing (1 − tRFC/tREFI).
    pub refresh_factor: f64,
    /// Bus idle time when the direction changes (write→read and read→write).
    pub turnaround_ns: u64,
    /// From a beat's slot on the bus to its data at the AXI port (controller pipeline
    /// and CAS latency).
    pub read_latency_ns: u64,
    /// From a write burst's last beat on the bus to the controller's B response.
    pub write_response_ns: u64,
}

impl DramModel {
    /// One DDR4-2400 channel, 64 data bits (an Alveo U250 has four): 19.2 GB/s peak;
    /// refresh tRFC 350 ns every tREFI 7.8 µs (8 Gb devices); ~15 ns turnaround
    /// (tWTR_L 7.5 ns plus bus turnaround on the read→write side).
    pub fn ddr4() -> Self {
        Self {
            name: "ddr4",
            peak_bytes_per_s: 19.2e9,
            refresh_factor: 1.0 - 350.0 / 7800.0,
            turnaround_ns: 15,
            read_latency_ns: 160,
            write_response_ns: 80,
        }
    }

    /// Two HBM2 pseudo-channels behind one 512-bit port (as an Alveo U55C's HBM switch
    /// presents them): 28.8 GB/s peak, shorter turnaround, per-bank refresh.
    pub fn hbm() -> Self {
        Self {
            name: "hbm",
            peak_bytes_per_s: 28.8e9,
            refresh_factor: 0.96,
            turnaround_ns: 8,
            read_latency_ns: 160,
            write_response_ns: 80,
        }
    }

    /// Bytes per device cycle the bus carries once refresh is taken off.
    pub fn bytes_per_cycle(&self) -> f64 {
        self.peak_bytes_per_s * self.refresh_factor / NOMINAL_HZ as f64
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Idle,
    Read,
    Write,
}

/// Cycles of write backlog the controller buffers before it withholds WREADY.
const W_BUFFER_CYCLES: u64 = 8;

/// A DRAM bus while it serves one AXI port.
pub(crate) struct DramState {
    bus: Pipe,
    last: Dir,
    turnaround: Fixed,
    read_latency: Fixed,
    write_response: Fixed,
}

impl DramState {
    pub(crate) fn new(m: DramModel) -> Self {
        Self {
            bus: Pipe::new(m.bytes_per_cycle()),
            last: Dir::Idle,
            turnaround: fixed_ns(m.turnaround_ns),
            read_latency: fixed_ns(m.read_latency_ns),
            write_response: fixed_ns(m.write_response_ns),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.bus.clear();
        self.last = Dir::Idle;
    }

    fn turn(&mut self, to: Dir, at: Fixed) {
        if self.last != to && self.last != Dir::Idle {
            let after = self.bus.free_at().max(at) + self.turnaround;
            self.bus.hold_until(after);
        }
        self.last = to;
    }

    /// Schedules a read burst accepted at `cycle`; pushes each beat's arrival cycle.
    pub(crate) fn read(&mut self, cycle: u64, bytes: u64, beat: u64, ready: &mut Vec<u64>) {
        let at = fixed(cycle);
        self.turn(Dir::Read, at);
        for _ in 0..bytes / beat {
            let done = self.bus.send(at, beat);
            ready.push(ceil_cycles(done + self.read_latency));
        }
    }

    /// True if the controller can take another W beat at `cycle`.
    pub(crate) fn w_ready(&self, cycle: u64) -> bool {
        self.bus.free_at() <= fixed(cycle + W_BUFFER_CYCLES)
    }

    /// Schedules one W beat accepted at `cycle`; returns when its B response may go.
    pub(crate) fn write(&mut self, cycle: u64, bytes: u64) -> u64 {
        let at = fixed(cycle);
        self.turn(Dir::Write, at);
        ceil_cycles(self.bus.send(at, bytes) + self.write_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddr4_rate_is_peak_less_refresh() {
        // 19.2 GB/s x (1 - 350/7800) = 18.34 GB/s = 73.35 B/cycle at 250 MHz.
        assert!((DramModel::ddr4().bytes_per_cycle() - 73.35).abs() < 0.01);
    }

    #[test]
    fn a_direction_change_costs_the_turnaround() {
        let m = DramModel::ddr4();
        let mut reads = DramState::new(m);
        let mut r = Vec::new();
        reads.read(0, 4096, 64, &mut r);
        reads.read(0, 4096, 64, &mut r);
        let same = r[127];
        let mut mixed = DramState::new(m);
        let mut r2 = Vec::new();
        mixed.read(0, 4096, 64, &mut r2);
        for _ in 0..64 {
            mixed.write(0, 64);
        }
        mixed.read(0, 4096, 64, &mut r2);
        // The second read waits for 4 KiB of writes plus two turnarounds (2 x 15 ns).
        let expect = same as f64 + 4096.0 / m.bytes_per_cycle() + 2.0 * 15.0 / 4.0;
        assert!((r2[127] as f64 - expect).abs() <= 1.0, "{} vs {expect}", r2[127]);
    }

    #[test]
    fn reads_arrive_after_the_latency_at_the_bus_rate() {
        let mut d = DramState::new(DramModel::ddr4());
        let mut r = Vec::new();
        d.read(100, 4096, 64, &mut r);
        // 160 ns = 40 cycles after the first beat's bus time (0.87 cycle).
        assert_eq!(r[0], 141);
        assert_eq!(r[63], 100 + 40 + (4096.0 / 73.35f64).ceil() as u64);
    }
}
