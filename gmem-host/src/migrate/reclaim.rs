//! Eviction entry points: victims chosen by the [`crate::evict`] policy (through
//! [`State::victims`](crate::state::State::victims)) move to the host.

use super::to_host::{Cause, to_host};
use crate::error::GmemError;
use crate::hash::FastSet;
use crate::state::{Inner, Victims};
use crate::types::{DeviceId, PageKey};

/// Evict up to `n` LRU pages from `dev`, never those in `exclude`.
pub(crate) fn evict(inner: &Inner, dev: DeviceId, n: usize, exclude: &FastSet<PageKey>) -> Result<usize, GmemError> {
    let victims = {
        let mut g = inner.lock();
        g.live_dev(dev)?;
        g.victims(dev, Victims::Pages(n), exclude)
    };
    if victims.is_empty() {
        return Ok(0);
    }
    let moved = to_host(inner, &victims, Cause::Evict)?;
    tracing::info!(target: "gmem", dev = dev.0, asked = n, moved, "eviction");
    Ok(moved)
}

/// Evict whole 2 MiB blocks of `dev`'s memory (see [`crate::evict::pick_victim_blocks`]);
/// returns the pages moved.
pub(crate) fn evict_blocks(
    inner: &Inner,
    dev: DeviceId,
    blocks: usize,
    exclude: &FastSet<PageKey>,
) -> Result<usize, GmemError> {
    let victims = inner.lock().victims(dev, Victims::Blocks(blocks), exclude);
    if victims.is_empty() {
        return Ok(0);
    }
    let moved = to_host(inner, &victims, Cause::Evict)?;
    tracing::info!(target: "gmem", dev = dev.0, blocks, moved, "eviction");
    Ok(moved)
}
