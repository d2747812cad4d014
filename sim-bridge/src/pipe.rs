//! A serial resource that carries bytes at a fixed rate: one direction of a PCIe link,
//! or a DRAM data bus. Time is kept in fixed point (1/2^20 of a device cycle) so rates
//! that are not whole bytes per cycle (63.0 B/cycle for Gen3 x16) add up exactly enough
//! and every run is deterministic.

/// Fractional bits of [`Fixed`] time.
const FRAC: u32 = 20;

/// Device time in 1/2^20 cycles.
pub(crate) type Fixed = u64;

/// `cycles` as fixed-point time.
pub(crate) const fn fixed(cycles: u64) -> Fixed {
    cycles << FRAC
}

/// The first whole cycle at or after `t`.
pub(crate) const fn ceil_cycles(t: Fixed) -> u64 {
    t.div_ceil(1 << FRAC)
}

/// Nanoseconds at the nominal clock as fixed-point time.
pub(crate) fn fixed_ns(ns: u64) -> Fixed {
    let ns_per_cycle = 1_000_000_000 / crate::timing::NOMINAL_HZ;
    (ns << FRAC) / ns_per_cycle
}

/// One serial resource; whatever is sent waits for what was sent before it (FIFO).
#[derive(Clone, Debug)]
pub(crate) struct Pipe {
    free_at: Fixed,
    per_byte: Fixed,
}

impl Pipe {
    /// A pipe that carries `bytes_per_cycle` bytes each device cycle.
    pub(crate) fn new(bytes_per_cycle: f64) -> Self {
        let per_byte = ((1u64 << FRAC) as f64 / bytes_per_cycle).round() as Fixed;
        Self { free_at: 0, per_byte: per_byte.max(1) }
    }

    /// Sends `bytes` starting no earlier than `at`; returns when the last byte is through.
    pub(crate) fn send(&mut self, at: Fixed, bytes: u64) -> Fixed {
        let start = self.free_at.max(at);
        self.free_at = start + bytes * self.per_byte;
        self.free_at
    }

    /// When the pipe has sent everything queued so far.
    pub(crate) fn free_at(&self) -> Fixed {
        self.free_at
    }

    /// Delays the pipe's next use until `at` at the earliest (a bus turnaround).
    pub(crate) fn hold_until(&mut self, at: Fixed) {
        self.free_at = self.free_at.max(at);
    }

    /// Forgets everything queued (reset).
    pub(crate) fn clear(&mut self) {
        self.free_at = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_serialises_at_its_rate() {
        let mut p = Pipe::new(63.0);
        // 6300 bytes at 63 B/cycle: 100 cycles, back to back from cycle 10.
        let mut done = 0;
        for _ in 0..100 {
            done = p.send(fixed(10), 63);
        }
        assert_eq!(ceil_cycles(done), 110);
        // Idle gap: the next send starts when asked, not when the pipe went free.
        assert_eq!(ceil_cycles(p.send(fixed(500), 126)), 502);
    }

    #[test]
    fn nanoseconds_convert_at_the_nominal_clock() {
        assert_eq!(ceil_cycles(fixed_ns(1000)), 250);
        assert_eq!(fixed_ns(4), fixed(1));
    }
}
