//! A soak split into segments, so it can use every core (`--threads`) and every
//! runner of a CI matrix (`--shard I/N`, then `--merge`).
//!
//! The op stream of a run is cut into fixed segments: segment `k` is ops
//! `[k*S, min((k+1)*S, ops))` with `S = --segment-ops`, run on fresh stacks (a new
//! manager, driver and device on each side) from a seed derived from the run's seed and
//! `k` — segment 0 uses the run's seed itself, so a run of at most `S` ops is exactly
//! the unsegmented soak. A segment's report is a function of (seed, ops, S, injection,
//! link) only; the run's report is the segments' reports merged in segment order. So the
//! thread count changes the wall time and nothing else, and shards merged give the
//! report of the whole run.
//!
//! Each segment's regions get their own host virtual-address window
//! ([`segment_va_base`]), so segments running at once in one process never place each
//! other's regions, and a segment's addresses are the same whichever thread runs it.

use crate::soak::{self, SoakConfig, SoakReport};
use crossbeam::channel;
use gmem_host::inject::SplitMix64;
use npu::DeviceIo;
use serde::{Deserialize, Serialize};
use sim_bridge::DevMemBackdoor;
use std::collections::BTreeMap;
use std::time::Instant;

/// Default `--segment-ops`: 100 segments in a 10⁶-op run, so two threads stay evenly
/// busy to the end; the default 20 000-op soak has 2.
pub const DEFAULT_SEGMENT_OPS: u64 = 10_000;

/// Host VA windows segments cycle through, and the size of one (both stacks' six 64 KiB
/// regions, each in its own 2 MiB slot, take 24 MiB).
const VA_WINDOWS: u64 = 256;
const VA_WINDOW: u64 = 256 << 20;

/// `--shard I/N`: this runner's part of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// `I`, from 0.
    pub index: u64,
    /// `N`, at least 1.
    pub count: u64,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}': expected I/N with 0 <= I < N, e.g. 0/2");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (i.trim().parse::<u64>().map_err(|_| bad())?, n.trim().parse::<u64>().map_err(|_| bad())?);
        if index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// How a run is cut and which part of it this process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Operations of the whole run (`--ops`).
    pub run_ops: u64,
    /// Operations per segment (`--segment-ops`, at least 1).
    pub segment_ops: u64,
    /// The segments this process runs: those whose index is `shard.index` modulo
    /// `shard.count`.
    pub shard: Shard,
}

impl Plan {
    /// Segments in the whole run.
    pub fn segment_count(&self) -> u64 {
        self.run_ops.div_ceil(self.segment_ops)
    }

    /// The indexes of this shard's segments, in order.
    pub fn shard_segments(&self) -> impl Iterator<Item = u64> + use<> {
        (self.shard.index..self.segment_count()).step_by(self.shard.count as usize)
    }

    /// Segment `k` of the run seeded `seed`.
    pub fn segment(&self, seed: u64, k: u64) -> soak::Segment {
        let first_op = k * self.segment_ops;
        soak::Segment {
            seed: segment_seed(seed, k),
            first_op,
            ops: self.segment_ops.min(self.run_ops - first_op),
            va_base: segment_va_base(k),
        }
    }
}

/// Seed of segment `k`: the run's own for segment 0, a SplitMix64 step of the run's
/// seed and `k` for the others.
pub fn segment_seed(seed: u64, k: u64) -> u64 {
    if k == 0 { seed } else { SplitMix64::new(seed ^ k.wrapping_mul(0xA076_1D64_78BD_642F)).next_u64() }
}

/// Lowest host VA of segment `k`'s regions: segment 0 at the manager's default base, the
/// others in windows of 256 MiB above it (cycling after 256 windows, 64 GiB).
pub fn segment_va_base(k: u64) -> u64 {
    npu::session::manager_config().va_base + (k % VA_WINDOWS) * VA_WINDOW
}

/// A report that says which part of which run it covers: what `--shard ... --json`
/// writes and `--merge` reads (provenance fields besides).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PartReport {
    /// The counts of the segments run.
    #[serde(flatten)]
    pub report: SoakReport,
    /// Operations of the whole run (`--ops`); `ops` counts the ones this part ran.
    pub run_ops: u64,
    /// `--segment-ops`.
    pub segment_ops: u64,
    /// Segments run.
    pub segments: u64,
    /// The part of the run: `0/1` for a whole run or a merge of every shard.
    pub shard: Shard,
    /// `--link`.
    pub link: soak::Link,
}

impl PartReport {
    /// One line for the text report: the segments and, for a shard, which.
    pub fn describe(&self) -> String {
        let whole = format!("{} of {} ops each, of a {}-op run", self.segments, self.segment_ops, self.run_ops);
        if self.shard.count > 1 { format!("{whole} (shard {})", self.shard) } else { whole }
    }
}

/// What a worker tells the main thread.
enum Msg {
    /// Segment `k` has run `ops` operations so far.
    Progress(u64, u64),
    /// Segment `k` is over.
    Done(u64, Box<Result<SoakReport, String>>),
}

/// Runs this process's segments of `plan` on `threads` worker threads, each segment on
/// a stack under test from `dut` and a reference model from `model`; `progress` gets the operations done so far. The
/// report is the segments' merged in segment order, whatever `threads` is.
pub fn run<A, B>(
    cfg: &SoakConfig,
    plan: Plan,
    threads: usize,
    dut: impl Fn() -> Result<soak::Dut<A>, String> + Sync,
    model: impl Fn() -> B + Sync,
    mut progress: impl FnMut(u64),
) -> Result<PartReport, String>
where
    A: DeviceIo + Send + 'static,
    B: DeviceIo + DevMemBackdoor + Send + 'static,
{
    let t0 = Instant::now();
    let (work_tx, work_rx) = channel::unbounded::<u64>();
    plan.shard_segments().for_each(|k| work_tx.send(k).unwrap_or(()));
    drop(work_tx);
    let (msg_tx, msg_rx) = channel::unbounded::<Msg>();
    let worker = |msg_tx: channel::Sender<Msg>| {
        for k in work_rx.iter() {
            let tx = msg_tx.clone();
            let seg = plan.segment(cfg.seed, k);
            let rep = dut().and_then(|a| {
                soak::run_segment(a, model(), cfg, seg, |r| tx.send(Msg::Progress(k, r.ops)).unwrap_or(()))
            });
            // A segment that could not run stops this worker; the others finish theirs.
            let failed = rep.is_err();
            msg_tx.send(Msg::Done(k, Box::new(rep))).unwrap_or(());
            if failed {
                break;
            }
        }
    };
    let mut done: BTreeMap<u64, Result<SoakReport, String>> = BTreeMap::new();
    crossbeam::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            let tx = msg_tx.clone();
            s.spawn(move |_| worker(tx));
        }
        drop(msg_tx);
        let (mut running, mut finished_ops) = (BTreeMap::new(), 0);
        for msg in msg_rx.iter() {
            match msg {
                Msg::Progress(k, ops) => {
                    running.insert(k, ops);
                }
                Msg::Done(k, rep) => {
                    running.remove(&k);
                    finished_ops += rep.as_ref().as_ref().map_or(0, |r| r.ops);
                    done.insert(k, *rep);
                }
            }
            progress(finished_ops + running.values().sum::<u64>());
        }
    })
    .map_err(|_| "a soak worker thread panicked".to_string())?;
    let mut reports = Vec::with_capacity(done.len());
    for (_, rep) in done {
        reports.push(rep?);
    }
    let expected = plan.shard_segments().count();
    if reports.len() != expected {
        return Err(format!("only {} of {expected} segments ran", reports.len()));
    }
    // A shard may have no segment (more shards than segments): its report is empty.
    let mut report = if reports.is_empty() { SoakReport::new(cfg) } else { merge_counts(&reports) };
    report.wall_s = t0.elapsed().as_secs_f64();
    Ok(PartReport {
        report,
        run_ops: plan.run_ops,
        segment_ops: plan.segment_ops,
        segments: expected as u64,
        shard: plan.shard,
        link: cfg.link,
    })
}

/// Reports of disjoint parts of one run, merged: counts added, the slowest op the
/// slowest of all, the first hang the one with the lowest op number. Settings (seed,
/// injection, sizes, timing) are the first report's; wall time the longest.
pub fn merge_counts(parts: &[SoakReport]) -> SoakReport {
    let mut out = parts.first().cloned().unwrap_or_default();
    for p in parts.iter().skip(1) {
        out.ops += p.ops;
        out.kernels += p.kernels;
        out.injected_rtl += p.injected_rtl;
        out.injected_model += p.injected_model;
        out.recoveries += p.recoveries;
        out.device_resets += p.device_resets;
        out.pipelined_parts += p.pipelined_parts;
        out.early_replays += p.early_replays;
        out.data_mismatches += p.data_mismatches;
        out.hangs += p.hangs;
        out.poisoned_pages += p.poisoned_pages;
        out.rtl_cycles += p.rtl_cycles;
        out.max_op_cycles = out.max_op_cycles.max(p.max_op_cycles);
        out.wall_s = out.wall_s.max(p.wall_s);
        if p.first_hang_op < out.first_hang_op.or(Some(u64::MAX)) && p.first_hang_op.is_some() {
            out.first_hang.clone_from(&p.first_hang);
            out.first_hang_op = p.first_hang_op;
        }
    }
    out.verdict = if out.passed() { "PASS" } else { "FAIL" };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(run_ops: u64, segment_ops: u64, shard: &str) -> Plan {
        Plan { run_ops, segment_ops, shard: shard.parse().unwrap_or_default() }
    }

    #[test]
    fn shards_cover_every_segment_once_and_the_last_segment_is_short() {
        let whole = plan(25, 10, "0/1");
        assert_eq!(whole.shard_segments().collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(whole.segment(9, 2).ops, 5);
        let (a, b) = (plan(25, 10, "0/2"), plan(25, 10, "1/2"));
        assert_eq!(a.shard_segments().chain(b.shard_segments()).collect::<Vec<_>>(), [0, 2, 1]);
        assert_eq!(plan(5, 10, "3/4").shard_segments().count(), 0);
    }

    #[test]
    fn segment_zero_is_the_unsegmented_run_and_the_others_differ() {
        let p = plan(30, 10, "0/1");
        assert_eq!(p.segment(7, 0).seed, 7);
        assert_eq!(p.segment(7, 0).va_base, npu::session::manager_config().va_base);
        let seeds: std::collections::BTreeSet<u64> = (0..3).map(|k| p.segment(7, k).seed).collect();
        assert_eq!(seeds.len(), 3);
        assert_ne!(p.segment(7, 1).va_base, p.segment(7, 2).va_base);
    }

    #[test]
    fn bad_shards_are_refused_with_the_accepted_form() {
        for bad in ["2/2", "1", "a/2", "0/0", "-1/2"] {
            let err = bad.parse::<Shard>().unwrap_err();
            assert!(err.contains("I/N"), "{bad}: {err}");
        }
        assert_eq!("1/3".parse::<Shard>(), Ok(Shard { index: 1, count: 3 }));
    }

    #[test]
    fn merged_counts_add_up_and_keep_the_earliest_hang() {
        let a = SoakReport {
            ops: 10,
            hangs: 1,
            first_hang: Some("op 7".into()),
            first_hang_op: Some(7),
            max_op_cycles: 5,
            ..Default::default()
        };
        let b = SoakReport {
            ops: 10,
            hangs: 1,
            first_hang: Some("op 3".into()),
            first_hang_op: Some(3),
            max_op_cycles: 9,
            ..Default::default()
        };
        let c = SoakReport { ops: 4, ..Default::default() };
        let m = merge_counts(&[a, b, c]);
        assert_eq!((m.ops, m.hangs, m.max_op_cycles, m.first_hang_op), (24, 2, 9, Some(3)));
        assert_eq!((m.first_hang.as_deref(), m.verdict), (Some("op 3"), "FAIL"));
        assert_eq!(merge_counts(&[SoakReport { ops: 2, ..Default::default() }]).verdict, "PASS");
    }
}
