//! Placing `PEER_SHARED` regions in the host VA space and registering them with devices.
//!
//! Free functions over plain arguments (no manager state), used by [`crate::manager`]'s
//! `mmap`, `attach`, `detach` and `munmap`.

use std::collections::BTreeMap;
use std::sync::Arc;

use mmap_rs::{MmapFlags, MmapMut, MmapOptions};

use crate::error::GmemError;
use crate::mmu::{Asid, DeviceInfo, GmMmu, HUGE_PAGE_SIZE, Hooks, HostRegion, HostRegionId, HostRegionKind};
use crate::types::DeviceId;

/// Reserve the VA on the device and make the region reachable for its DMA.
pub(crate) fn region_on_device(
    mmu: &Arc<dyn GmMmu>,
    info: &DeviceInfo,
    asid: Asid,
    va: u64,
    len: u64,
    host: HostRegionId,
    dev: DeviceId,
) -> Result<(), GmemError> {
    if info.hooks.contains(Hooks::PEER_VA) {
        mmu.peer_va_alloc_fixed(asid, va, len).map_err(|source| GmemError::Hook {
            dev: dev.0,
            hook: "peer_va_alloc_fixed",
            source,
        })?;
    }
    if info.hooks.contains(Hooks::DMA_MAP_HOST) {
        let r = HostRegion { id: host, kind: HostRegionKind::PeerShared, va, len };
        // SAFETY: the region's mapping (`Region::map`) lives until munmap, which calls
        // `region_off_device` first and keeps the mapping for ever if the device did
        // not let go of it (see `Gmem::munmap`).
        if let Err(source) = unsafe { mmu.dma_map_host(&r) } {
            if info.hooks.contains(Hooks::PEER_VA) {
                let _ = mmu.peer_va_free(asid, va, len);
            }
            return Err(GmemError::Hook { dev: dev.0, hook: "dma_map_host", source });
        }
    }
    Ok(())
}

/// Undo [`region_on_device`]. Each hook is tried a few times; returns `false` when the
/// device kept something: its DMA mapping of the memory or the VA reservation. The
/// caller then never reuses the VA range and never unmaps the memory (the device may
/// still reach it: `GmMmu::dma_map_host`'s contract).
pub(crate) fn region_off_device(
    mmu: &Arc<dyn GmMmu>,
    info: &DeviceInfo,
    asid: Asid,
    va: u64,
    len: u64,
    host: HostRegionId,
) -> bool {
    const ATTEMPTS: usize = 3;
    let mut released = true;
    if info.hooks.contains(Hooks::DMA_MAP_HOST) {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            match mmu.dma_unmap_host(host) {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            tracing::error!(target: "gmem", va = format_args!("{va:#x}"), len, error = %e,
                "dma_unmap_host keeps failing; the memory stays mapped and its VA range quarantined");
            released = false;
        }
    }
    if info.hooks.contains(Hooks::PEER_VA) && !(0..ATTEMPTS).any(|_| mmu.peer_va_free(asid, va, len).is_ok()) {
        tracing::error!(target: "gmem", va = format_args!("{va:#x}"), len, "peer_va_free keeps failing; VA range quarantined");
        released = false;
    }
    released
}

/// The process's mapped ranges, from `/proc/self/maps` (empty if unreadable).
fn process_maps() -> Vec<(u64, u64)> {
    let Ok(text) = std::fs::read_to_string("/proc/self/maps") else { return Vec::new() };
    text.lines()
        .filter_map(|l| {
            let r = l.split_whitespace().next()?;
            let (a, b) = r.split_once('-')?;
            Some((u64::from_str_radix(a, 16).ok()?, u64::from_str_radix(b, 16).ok()?))
        })
        .collect()
}

/// Find a 2 MiB-aligned free range of `len` bytes in `[base, limit)` — free both of this
/// manager's regions and of every other mapping of the process — and map it there. The
/// address is only a hint to the kernel (no `MAP_FIXED`: never clobber a mapping); if
/// another thread took the gap meanwhile, the search runs again.
pub(crate) fn place_region(
    by_va: &BTreeMap<u64, (u32, u64)>,
    quarantined: &[(u64, u64)],
    base: u64,
    limit: u64,
    len: u64,
) -> Result<MmapMut, GmemError> {
    let align = |x: u64| x.div_ceil(HUGE_PAGE_SIZE) * HUGE_PAGE_SIZE;
    for _ in 0..8 {
        let mut taken = process_maps();
        taken.extend(by_va.iter().map(|(&s, &(_, e))| (s, e)));
        taken.extend_from_slice(quarantined);
        taken.sort_unstable();
        let mut at = align(base);
        for &(s, e) in &taken {
            if e <= at {
                continue;
            }
            if s >= at.saturating_add(len) {
                break;
            }
            at = align(e);
        }
        let Some(end) = at.checked_add(len) else { break };
        if end > limit {
            break;
        }
        let opts = MmapOptions::new(len as usize)
            .map_err(|e| GmemError::HostMap { len, reason: e.to_string() })?
            .with_address(at as usize)
            .with_flags(MmapFlags::NO_RESERVE);
        match opts.map_mut() {
            Ok(m) if m.as_ptr() as u64 == at => return Ok(m),
            Ok(_) => continue,
            Err(e) => return Err(GmemError::HostMap { len, reason: e.to_string() }),
        }
    }
    Err(GmemError::NoVirtualSpace { len, limit })
}
