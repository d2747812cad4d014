//! Cycle-exact fast-forward: one clock edge stands for a stretch in which nothing but the
//! performance counters would change.
//!
//! `npu_top` takes `ff_skip_i`: a nonzero value makes the next edge stand for
//! `ff_skip_i + 1` cycles (every performance counter whose increment is 1 adds that
//! many; nothing else in the RTL counts time). At a fixed point of the design (every
//! register, memory and net but the counters equal from one cycle to the next, every
//! increment 0 or 1) whose inputs do not change, skipping is exact. The inputs change
//! only at the bridge's own events: a CSR access (a posted write's arrival, a read), a
//! memory port's next read beat or write response, or the end of the caller's run.
//!
//! The bridge finds fixed points two ways:
//! - **Quiescence**: `npu_top` reports `quiescent_o` (a flop: no unit busy, no CSR
//!   access, interrupt cause, soft reset or memory-port valid/beat in the cycle before).
//!   It lags two cycles and some units settle a few cycles after their last input
//!   (status registers, interrupt levels), so the bridge skips after [`QUIET_CYCLES`]
//!   consecutive quiet cycles with idle memory ports ([`next_quiet_streak`],
//!   [`skip_window`]). Costs nothing per cycle.
//! - **Probes**: a busy design waiting for a memory response or the host (a kernel
//!   stalled on a fault, a DMA channel waiting for its first read beat) is not
//!   quiescent but often at a fixed point. When the memory ports can tell their next
//!   input change and it is at least [`PROBE_MIN_WINDOW`] cycles away, the bridge
//!   records the Verilated model's whole state (the shim's `ff_snapshot`), runs one
//!   cycle and compares (`ff_unchanged`, which also checks that every counter increment
//!   is 0 or 1). On a hit it skips to the next input change; after a miss it waits
//!   ([`next_backoff`]) before probing again. The probe names the model's counter
//!   members, so only the shipped build has it.
//!
//! Fast-forward is off while a waveform is recorded (every cycle is dumped) and with
//! seeded port stalls (their generator draws once per cycle); probes also wait while a
//! port answers out of order (its generator draws per pick).

/// Consecutive quiet cycles (quiescent RTL, idle memory ports, no CSR handshake) before
/// the bridge skips.
pub(crate) const QUIET_CYCLES: u32 = 16;

/// Most cycles one skip edge stands for: `ff_skip_i` is 16 bits and the CYCLES
/// counter's increment (`ff_skip_i + 1`) must fit 16 bits too.
pub(crate) const MAX_SKIP: u64 = 0xFFFF;

/// Fewest cycles a fixed-point probe must be able to skip to be tried: a probe copies
/// and compares the model's whole state (about 200 KiB), the cost of some ten cycles.
pub(crate) const PROBE_MIN_WINDOW: u64 = 16;

/// Cycles to wait before probing again after a probe found no fixed point, at first
/// and at most (the wait doubles after each miss, and starts over after a hit).
pub(crate) const PROBE_BACKOFF: (u64, u64) = (8, 128);

/// Cycles skipped by fast-forward since the device was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FastForwardStats {
    /// Device cycles that passed inside skip edges (each skip edge's extra cycles).
    pub skipped_cycles: u64,
    /// Skip edges taken.
    pub skips: u64,
    /// Fixed-point probes made (snapshot, one cycle, compare).
    pub probes: u64,
    /// Probes that found a fixed point (each followed by a skip edge).
    pub probe_hits: u64,
}

/// The wait before the next probe after a miss (`hit` false) or a hit.
pub(crate) fn next_backoff(backoff: u64, hit: bool) -> u64 {
    if hit { PROBE_BACKOFF.0 } else { (backoff * 2).clamp(PROBE_BACKOFF.0, PROBE_BACKOFF.1) }
}

/// The quiet streak after one more cycle: `quiet` is this cycle's verdict (RTL
/// quiescent, no memory burst outstanding on either port, no CSR request).
pub(crate) fn next_quiet_streak(streak: u32, quiet: bool) -> u32 {
    if quiet { streak.saturating_add(1) } else { 0 }
}

/// Cycles the next edge may stand for at `cycle`, given the quiet `streak`, the end of
/// the caller's run and the arrival of the next posted CSR write: never past either,
/// at most [`MAX_SKIP`]. Below 2 the bridge ticks normally.
pub(crate) fn skip_window(cycle: u64, streak: u32, end: u64, next_posted: Option<u64>) -> u64 {
    if streak < QUIET_CYCLES {
        return 0;
    }
    let target = next_posted.map_or(end, |due| due.min(end));
    target.saturating_sub(cycle).min(MAX_SKIP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_ends_at_the_run_end() {
        assert_eq!(skip_window(100, QUIET_CYCLES, 350, None), 250);
    }

    #[test]
    fn window_stops_at_the_next_posted_write() {
        assert_eq!(skip_window(100, QUIET_CYCLES, 350, Some(180)), 80);
        // A write arriving after the run's end does not extend the window.
        assert_eq!(skip_window(100, QUIET_CYCLES, 350, Some(900)), 250);
        // A write already due: no skip (it is delivered first).
        assert_eq!(skip_window(100, QUIET_CYCLES, 350, Some(100)), 0);
        assert_eq!(skip_window(100, QUIET_CYCLES, 350, Some(90)), 0);
    }

    #[test]
    fn probe_backoff_doubles_to_its_cap_and_restarts_after_a_hit() {
        let mut b = PROBE_BACKOFF.0;
        for _ in 0..20 {
            b = next_backoff(b, false);
        }
        assert_eq!(b, PROBE_BACKOFF.1);
        assert_eq!(next_backoff(b, true), PROBE_BACKOFF.0);
        assert_eq!(next_backoff(PROBE_BACKOFF.0, false), 2 * PROBE_BACKOFF.0);
    }

    #[test]
    fn window_is_capped_at_the_skip_port_width() {
        assert_eq!(skip_window(0, QUIET_CYCLES, 1 << 40, None), MAX_SKIP);
    }

    #[test]
    fn no_window_until_the_streak_is_long_enough() {
        assert_eq!(skip_window(100, QUIET_CYCLES - 1, 350, None), 0);
        assert_eq!(skip_window(100, 0, 350, None), 0);
    }

    #[test]
    fn outstanding_memory_or_csr_traffic_breaks_the_streak() {
        let mut s = 0;
        for _ in 0..QUIET_CYCLES {
            s = next_quiet_streak(s, true);
        }
        assert_eq!(s, QUIET_CYCLES);
        // One cycle with a burst outstanding (or a CSR request) starts over.
        s = next_quiet_streak(s, false);
        assert_eq!(s, 0);
        assert_eq!(skip_window(0, s, 1000, None), 0);
        assert_eq!(next_quiet_streak(u32::MAX, true), u32::MAX);
    }
}
