//! Short waits on a board: spin below the kernel's timer slack, sleep above it.
//!
//! On the co-simulation `DeviceIo::advance(200)` costs 200 ns of device time; on a board
//! it is a wall-clock wait, and a plain sleep is the wrong tool for it. Linux fires a
//! normal thread's timer up to its *timer slack* late so that wake-ups can be batched
//! (50 µs by default), and the wake-up itself costs a few µs more: a 200 ns `nanosleep`
//! takes ~66 µs. The NPU driver polls its completion and fault rings (which the device
//! writes in host memory) through [`poll_until`], which spins for the first 50 µs, and
//! its remaining short waits (`DeviceIo::advance` of a few hundred ns on error paths)
//! would be 50–100× longer than the model charges if they slept.
//!
//! [`wait_for`] therefore spins (`std::hint::spin_loop` against [`Instant`]) through a
//! wait shorter than [`SPIN_BELOW`]. A longer wait sleeps for all but its last
//! [`SPIN_BELOW`] and spins the rest, so it ends on time without holding a core for its
//! whole length; before its first sleep a thread lowers its timer slack to
//! [`TIMER_SLACK`] (once per thread, [`lower_timer_slack`]). Blocking waits on interrupt
//! eventfds stay blocking and lower the slack the same way, so their timeouts expire
//! close to when they were asked to.
//!
//! The timer slack is a per-thread attribute (`prctl(2)`), not a process-wide one: only
//! the thread that waits has it lowered, threads it creates afterwards inherit the lowered
//! value, and every other thread of the process keeps its own. A thread that waits
//! through this module lowers its own slack the first time it sleeps.

use std::cell::Cell;
use std::hint::spin_loop;
use std::thread;
use std::time::{Duration, Instant};

use crate::sys;

/// Waits shorter than this spin instead of sleeping: Linux's default timer slack for a
/// normal thread is 50 µs (`current->timer_slack_ns`, `prctl(2)` PR_SET_TIMERSLACK), so
/// a sleep may end up to that much late; a spin of the same length costs one core for no
/// longer than the sleep's error would.
pub const SPIN_BELOW: Duration = Duration::from_micros(50);

/// The timer slack a thread sets before it sleeps in [`wait_for`] or blocks on an
/// interrupt eventfd: small enough that a sleep ends within ~1 µs of its timer (plus
/// the wake-up), large enough to leave the kernel some room to merge timers.
pub const TIMER_SLACK: Duration = Duration::from_micros(1);

thread_local! {
    /// Whether this thread has set its timer slack to [`TIMER_SLACK`] already.
    static SLACK_LOWERED: Cell<bool> = const { Cell::new(false) };
}

/// Lowers the calling thread's timer slack to [`TIMER_SLACK`], once per thread.
///
/// Best effort: if the kernel refuses (it does not for a thread's own slack), sleeps are
/// only less precise, so the error is dropped and not retried.
pub fn lower_timer_slack() {
    SLACK_LOWERED.with(|done| {
        if !done.replace(true) {
            let _ = sys::set_timer_slack(TIMER_SLACK.as_nanos() as u64);
        }
    });
}

/// The part of a wait of `d` that [`wait_for`] sleeps through; it spins the rest.
fn sleep_part(d: Duration) -> Duration {
    d.saturating_sub(SPIN_BELOW)
}

/// Waits at least `d` of wall-clock time, and not much longer: spins through waits
/// below [`SPIN_BELOW`]; sleeps through the part of a longer one above it (with the
/// thread's timer slack lowered) and spins the rest.
pub fn wait_for(d: Duration) {
    let Some(deadline) = Instant::now().checked_add(d) else {
        // Beyond the clock's range (centuries): precision is moot.
        lower_timer_slack();
        thread::sleep(d);
        return;
    };
    let sleep = sleep_part(d);
    if !sleep.is_zero() {
        lower_timer_slack();
        thread::sleep(sleep);
    }
    while Instant::now() < deadline {
        spin_loop();
    }
}

/// Polls `ready` until it returns true or `budget` passes; returns whether it held.
/// Adaptive: it spins through the first [`SPIN_BELOW`] (a device record usually lands
/// within microseconds), then sleeps [`SPIN_BELOW`] between polls (timer slack lowered),
/// so a long wait does not hold a core.
pub fn poll_until(budget: Duration, ready: &mut dyn FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if ready() {
            return true;
        }
        let waited = start.elapsed();
        if waited >= budget {
            return false;
        }
        if waited < SPIN_BELOW {
            spin_loop();
        } else {
            lower_timer_slack();
            thread::sleep(SPIN_BELOW.min(budget - waited));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: Duration = Duration::from_nanos(1);

    #[test]
    fn a_poll_ends_when_ready_holds_or_the_budget_is_spent() {
        let mut calls = 0;
        assert!(poll_until(Duration::from_millis(100), &mut || {
            calls += 1;
            calls == 3
        }));
        assert_eq!(calls, 3, "asked until it held, no more");
        let t = Instant::now();
        let budget = SPIN_BELOW * 3;
        assert!(!poll_until(budget, &mut || false));
        assert!(t.elapsed() >= budget, "gave up after {:?}", t.elapsed());
    }

    #[test]
    fn only_the_part_above_the_threshold_is_slept() {
        assert_eq!(sleep_part(Duration::ZERO), Duration::ZERO);
        assert_eq!(sleep_part(Duration::from_nanos(200)), Duration::ZERO, "a driver's ring poll spins");
        assert_eq!(sleep_part(SPIN_BELOW), Duration::ZERO);
        assert_eq!(sleep_part(SPIN_BELOW + NS), NS);
        assert_eq!(sleep_part(Duration::from_millis(1)), Duration::from_micros(950), "the last 50 µs spin");
    }

    #[test]
    fn a_wait_never_ends_early_below_at_or_above_the_threshold() {
        let us = Duration::from_micros;
        for d in [Duration::ZERO, NS, 200 * NS, us(1), us(10), SPIN_BELOW - NS, SPIN_BELOW, SPIN_BELOW + NS, us(120)]
            .into_iter()
            .chain([Duration::from_millis(2)])
        {
            let t = Instant::now();
            wait_for(d);
            let took = t.elapsed();
            assert!(took >= d, "wait_for({d:?}) returned after {took:?}");
        }
    }

    /// Runs `f` on a fresh thread whose timer slack starts at Linux's default (whatever
    /// the test harness's thread inherited) and returns its result.
    fn on_fresh_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        thread::spawn(move || {
            sys::set_timer_slack(50_000).unwrap();
            f()
        })
        .join()
        .unwrap()
    }

    #[test]
    fn a_sleeping_wait_lowers_the_threads_timer_slack_and_a_spin_leaves_it() {
        let (after_spin, after_sleep) = on_fresh_thread(|| {
            wait_for(SPIN_BELOW / 2);
            let after_spin = sys::timer_slack().unwrap();
            wait_for(SPIN_BELOW + Duration::from_micros(10));
            (after_spin, sys::timer_slack().unwrap())
        });
        assert_eq!(after_spin, 50_000, "a spin does not touch the slack");
        assert_eq!(after_sleep, TIMER_SLACK.as_nanos() as u64);
    }

    #[test]
    fn the_lowered_slack_belongs_to_the_waiting_thread_only() {
        let (waiter, other) = on_fresh_thread(|| {
            let waiter = thread::spawn(|| {
                wait_for(2 * SPIN_BELOW);
                sys::timer_slack().unwrap()
            })
            .join()
            .unwrap();
            (waiter, sys::timer_slack().unwrap())
        });
        assert_eq!(waiter, TIMER_SLACK.as_nanos() as u64);
        assert_eq!(other, 50_000, "the thread that did not wait keeps its slack");
    }
}
