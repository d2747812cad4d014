//! Faults of a device's batch answered before the batch ends. Once a part of a pipelined
//! migration has committed, a fault whose page is now mapped on the device as its access
//! needs can be replayed while the later parts still copy ([`GmMmu::faults_resolved`]):
//! the device's requesters go on instead of waiting for the whole batch.
//!
//! [`GmMmu::faults_resolved`]: crate::mmu::GmMmu::faults_resolved

use crate::mmu::Prot;
use crate::page_table::PageFlags;
use crate::state::State;
use crate::types::{DeviceId, PageKey};

/// The faults of one batch not yet reported resolved.
pub(crate) struct EarlyAnswers {
    /// (page, rights its access needs, index of the fault in the batch).
    waiting: Vec<(PageKey, Prot, usize)>,
    /// Indices reported resolved so far.
    reported: Vec<usize>,
}

impl EarlyAnswers {
    pub(crate) fn new(waiting: Vec<(PageKey, Prot, usize)>) -> Self {
        Self { waiting, reported: Vec::new() }
    }

    /// The faults reported resolved: the device may have replayed them, so their answer
    /// is retry whatever happened to their pages since (a racing `munmap` or `mprotect`
    /// makes the retried access fault again, and that fault is aborted).
    pub(crate) fn reported(&self) -> &[usize] {
        &self.reported
    }

    /// The waiting faults whose page `dev` now maps with the rights they need (lock
    /// held), in batch order; they leave the waiting list.
    pub(crate) fn take_resolved(&mut self, st: &State, dev: DeviceId) -> Vec<usize> {
        let mut resolved = Vec::new();
        self.waiting.retain(|&(key, needs, i)| {
            let mapped = st.spaces.get(&key.0).is_some_and(|sp| {
                let e = sp.pt.get(key.1);
                e.on_device() && e.dev == dev.0 && !e.flags.contains(PageFlags::MIGRATING) && e.prot().contains(needs)
            });
            if mapped {
                resolved.push(i);
            }
            !mapped
        });
        resolved.sort_unstable();
        self.reported.extend(&resolved);
        resolved
    }
}
