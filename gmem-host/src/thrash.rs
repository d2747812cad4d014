//! Thrashing detection: pages bouncing between the CPU and a device.
//!
//! An *event* is a fault that needs a page to cross between the CPU and a device (a
//! CPU fault on a device-resident page; a device fault on a CPU-resident page the CPU
//! took back recently — eviction churn does not count). When a
//! page collects [`ThrashConfig::threshold`] events within [`ThrashConfig::window_ns`]
//! (UVM: 3 in 500 µs) it is *detected*:
//!
//! 1. on a device that can map host memory ([`Hooks::HOST_MAPPING`](crate::Hooks::HOST_MAPPING)),
//!    the first detection **pins**: the page stays on the CPU and the device maps it
//!    remotely (access in place over the host port) — one remote access per touch is
//!    far cheaper than two migrations per round;
//! 2. otherwise the first detection **throttles** — for [`ThrashConfig::throttle_ns`]
//!    device faults on the page are answered *retry* without migrating, so the CPU side
//!    gets to finish — and a second detection before the page went quiet pins it (on
//!    the CPU, the device faulting it in each time it needs it);
//! 3. after [`ThrashConfig::unpin_after_ns`] without events the page is **unpinned**
//!    (lazily on the next fault, or by [`Gmem::maintenance`](crate::Gmem::maintenance),
//!    which also releases the remote mappings so the next device touch migrates again).
//!
//! Time comes from [`Config::clock`](crate::Config), so tests and co-simulation are
//! deterministic.

use std::collections::HashMap;

use crate::types::PageKey;

pub use crate::config::ThrashConfig;

/// What to do with the event just recorded.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Migrate as usual.
    Migrate,
    /// Don't migrate now (device faults answer retry).
    Throttle,
    /// Pin on the CPU and map remotely.
    Pin,
}

#[derive(Debug, Default, Clone, Copy)]
struct PageThrash {
    count: u32,
    window_start: u64,
    last_event: u64,
    throttled_until: u64,
    detections: u32,
}

/// Per-page event history (only pages with recent events have an entry).
#[derive(Debug)]
pub(crate) struct ThrashTracker {
    cfg: ThrashConfig,
    pages: HashMap<PageKey, PageThrash>,
    records: u64,
}

impl ThrashTracker {
    pub(crate) fn new(cfg: ThrashConfig) -> Self {
        ThrashTracker { cfg, pages: HashMap::new(), records: 0 }
    }

    /// Record an event on `page` at `now` and return the verdict. `cpu_side` says the
    /// event is a CPU fault taking the page from a device. A device fault only counts on
    /// a page the CPU took back recently (it has history here): a page that returns to
    /// the host by eviction and is faulted again is memory pressure, not ping-pong.
    /// `remote_ok` says the device involved can map the page remotely (pin at once).
    pub(crate) fn record(&mut self, page: PageKey, now: u64, cpu_side: bool, remote_ok: bool) -> Verdict {
        if !self.cfg.enabled || (!cpu_side && !self.pages.contains_key(&page)) {
            return Verdict::Migrate;
        }
        self.records += 1;
        if self.records % 4096 == 0 {
            let horizon = self.cfg.unpin_after_ns.max(self.cfg.window_ns);
            self.pages.retain(|_, p| now.saturating_sub(p.last_event) < horizon);
        }
        let cfg = self.cfg;
        let p = self.pages.entry(page).or_default();
        if now < p.throttled_until {
            p.last_event = now;
            return Verdict::Throttle;
        }
        if now.saturating_sub(p.last_event) > cfg.unpin_after_ns {
            p.detections = 0;
        }
        if p.count == 0 || now.saturating_sub(p.window_start) > cfg.window_ns {
            p.count = 0;
            p.window_start = now;
        }
        p.count += 1;
        p.last_event = now;
        if p.count < cfg.threshold {
            return Verdict::Migrate;
        }
        p.count = 0;
        p.detections += 1;
        if p.detections == 1 && !remote_ok {
            p.throttled_until = now + cfg.throttle_ns;
            Verdict::Throttle
        } else {
            Verdict::Pin
        }
    }

    /// Whether `page` is in its throttle period.
    #[cfg(test)]
    pub(crate) fn throttled(&self, page: PageKey, now: u64) -> bool {
        self.pages.get(&page).is_some_and(|p| now < p.throttled_until)
    }

    /// Whether `page` had no event for the unpin period.
    pub(crate) fn quiet(&self, page: PageKey, now: u64) -> bool {
        self.pages.get(&page).is_none_or(|p| now.saturating_sub(p.last_event) >= self.cfg.unpin_after_ns)
    }

    /// Forget `page`'s history (after unpinning or unmapping).
    pub(crate) fn forget(&mut self, page: PageKey) {
        self.pages.remove(&page);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_throttle_then_pin_then_quiet() {
        let cfg = ThrashConfig { window_ns: 100, throttle_ns: 50, unpin_after_ns: 1000, ..Default::default() };
        let mut t = ThrashTracker::new(cfg);
        let p = (1, 7);
        // Device faults on a page the CPU never took back are not events.
        for i in 0..5 {
            assert_eq!(t.record(p, i, false, false), Verdict::Migrate);
        }
        assert_eq!(t.record(p, 0, true, false), Verdict::Migrate);
        assert_eq!(t.record(p, 10, false, false), Verdict::Migrate);
        assert_eq!(t.record(p, 20, true, false), Verdict::Throttle);
        assert!(t.throttled(p, 30));
        assert_eq!(t.record(p, 40, false, false), Verdict::Throttle);
        assert!(!t.throttled(p, 70));
        assert_eq!(t.record(p, 80, false, false), Verdict::Migrate);
        assert_eq!(t.record(p, 90, true, false), Verdict::Migrate);
        assert_eq!(t.record(p, 100, false, false), Verdict::Pin);
        assert!(!t.quiet(p, 500));
        assert!(t.quiet(p, 1100));
        // A device that maps host memory pins at the first detection.
        let r = (1, 9);
        assert_eq!(t.record(r, 0, true, true), Verdict::Migrate);
        assert_eq!(t.record(r, 10, false, true), Verdict::Migrate);
        assert_eq!(t.record(r, 20, true, true), Verdict::Pin);
        // Events spread wider than the window never detect.
        let q = (1, 8);
        for i in 0..10 {
            assert_eq!(t.record(q, i * 200, i % 2 == 0, false), Verdict::Migrate);
        }
    }

    #[test]
    fn a_threshold_of_two_pins_after_one_round_trip() {
        let mut t = ThrashTracker::new(ThrashConfig { threshold: 2, window_ns: 100, ..Default::default() });
        let p = (1, 3);
        // On the device first (no history): no event. The CPU takes it back (event 1),
        // the device takes it again (event 2): one round trip pins.
        assert_eq!(t.record(p, 0, false, true), Verdict::Migrate);
        assert_eq!(t.record(p, 10, true, true), Verdict::Migrate);
        assert_eq!(t.record(p, 20, false, true), Verdict::Pin);
        // The same round trip stretched beyond the window does not.
        let q = (1, 4);
        assert_eq!(t.record(q, 0, true, true), Verdict::Migrate);
        assert_eq!(t.record(q, 200, false, true), Verdict::Migrate);
    }

    #[test]
    fn disabled_never_detects_and_forget_restarts_the_count() {
        let mut t = ThrashTracker::new(ThrashConfig { enabled: false, ..Default::default() });
        for i in 0..10 {
            assert_eq!(t.record((1, 1), i, true, true), Verdict::Migrate);
        }
        let mut t = ThrashTracker::new(ThrashConfig { window_ns: 100, ..Default::default() });
        let p = (1, 1);
        assert!(t.quiet(p, 0), "no history is quiet");
        assert_eq!(t.record(p, 0, true, true), Verdict::Migrate);
        assert_eq!(t.record(p, 1, true, true), Verdict::Migrate);
        t.forget(p);
        // Forgotten: a device fault is no event again, and the count starts over.
        assert_eq!(t.record(p, 2, false, true), Verdict::Migrate);
        assert_eq!(t.record(p, 3, true, true), Verdict::Migrate);
        assert_eq!(t.record(p, 4, true, true), Verdict::Migrate);
        assert_eq!(t.record(p, 5, true, true), Verdict::Pin);
    }
}
