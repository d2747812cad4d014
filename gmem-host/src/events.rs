//! Structured events and counters.
//!
//! Every notable manager action emits a `tracing` event under the target `gmem` (fault
//! batch, migration, eviction, prefetch, thrash, invalidation, CPU fault) and bumps a
//! counter. [`Counters::snapshot`] gives a plain copy the CLI can print or diff.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($( $(#[$m:meta])* $name:ident ),* $(,)?) => {
        /// Live counters (relaxed atomics; read with [`Counters::snapshot`]).
        #[derive(Debug, Default)]
        pub struct Counters { $( $(#[$m])* pub $name: AtomicU64, )* }

        /// A copy of the counters at one moment.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct CounterSnapshot { $( $(#[$m])* pub $name: u64, )* }

        impl Counters {
            /// Copy every counter.
            pub fn snapshot(&self) -> CounterSnapshot {
                CounterSnapshot { $( $name: self.$name.load(Ordering::Relaxed), )* }
            }
        }

        impl std::fmt::Display for CounterSnapshot {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                for (name, v) in self.pairs() {
                    if v != 0 {
                        writeln!(f, "{name:>18} {v}")?;
                    }
                }
                Ok(())
            }
        }

        impl CounterSnapshot {
            /// `(name, value)` pairs in declaration order, for printing.
            pub fn pairs(&self) -> Vec<(&'static str, u64)> {
                vec![ $( (stringify!($name), self.$name), )* ]
            }
        }
    };
}

counters! {
    /// Device fault batches handled.
    fault_batches,
    /// Device faults received (before de-duplication).
    faults,
    /// Faults dropped as duplicates of another fault on the same page in the batch.
    duplicate_faults,
    /// Faults answered with abort.
    fault_aborts,
    /// Pages copied host -> device.
    pages_h2d,
    /// Pages copied device -> host.
    pages_d2h,
    /// Device frames zero-filled for first-touch pages.
    zero_fills,
    /// Pages read-duplicated (CPU and device both hold a read-only copy).
    read_dups,
    /// Read-duplicated pages collapsed to a single writable owner.
    collapses,
    /// Pages mapped remotely (device accesses host memory in place).
    remote_maps,
    /// Pages evicted from device memory.
    evictions,
    /// Pages migrated by the prefetch heuristic.
    prefetched,
    /// Pages migrated by hmadvise(PREFETCH).
    advised_prefetch,
    /// Thrashing detections.
    thrash_events,
    /// Faults throttled (answered retry without migrating) by the thrashing detector.
    throttled,
    /// Pages pinned to the CPU by the thrashing detector.
    pins,
    /// Pages unpinned after a quiet period.
    unpins,
    /// Ranges passed to tlb_invl_coalesced.
    tlb_ranges,
    /// TLB tokens collected (before coalescing).
    tlb_tokens,
    /// CPU faults served (userfaultfd or manual).
    cpu_faults,
    /// Page commits rolled back because the sequence number changed during the copy.
    seq_retries,
    /// Device hook calls that returned an error.
    hook_errors,
    /// Parts of the migrations that were pipelined ([`crate::Config::part_pages`]; a
    /// migration in one part counts none).
    pipelined_parts,
    /// Huge (2 MiB) device mappings created.
    huge_maps,
    /// Device faults answered retry after their migration failed with a device error.
    dma_retries,
    /// Pages mapped remotely because their migration kept failing.
    dma_fallbacks,
    /// Pages poisoned: a CPU fault gave up bringing them back from their device after
    /// [`crate::Config::cpu_fault_attempts`] failed attempts; the toucher got SIGBUS.
    poisoned,
    /// Devices declared lost ([`crate::Gmem::device_lost`]).
    devices_lost,
    /// Pages whose only copy was on a lost device (now SIGBUS pages).
    pages_lost,
    /// Read-duplicated pages of a lost device served by their CPU copy from then on.
    pages_recovered,
}

/// Add `n` to a counter.
pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reads_back() {
        let c = Counters::default();
        add(&c.faults, 3);
        let s = c.snapshot();
        assert_eq!(s.faults, 3);
        assert!(s.pairs().contains(&("faults", 3)));
    }
}
