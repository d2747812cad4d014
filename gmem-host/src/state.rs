//! The manager's internal state and its lock, and region placement/registration.
//!
//! See [`crate::manager`] for the locking rules: one mutex ([`Inner::state`]) guards
//! every table here.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use mmap_rs::{MmapFlags, MmapMut, MmapOptions};

use crate::attrs::{AttrTree, DeviceId, Node};
use crate::buddy::Buddy;
use crate::cpu::{CpuError, CpuSide};
use crate::events::Counters;
use crate::evict::Lru;
use crate::manager::{Config, GmemError, SpaceId};
use crate::mmu::{Asid, DeviceInfo, GmMmu, HUGE_PAGE_SIZE, Hooks, HostRegion, HostRegionId, HostRegionKind};
use crate::page_table::PageTable;
use crate::thrash::ThrashTracker;

pub(crate) struct DeviceSlot {
    pub(crate) mmu: Arc<dyn GmMmu>,
    pub(crate) info: DeviceInfo,
    pub(crate) buddy: Buddy,
    pub(crate) lru: Lru,
    pub(crate) asids: HashMap<Asid, u32>,
    /// Declared lost ([`crate::Gmem::device_lost`]): never called again.
    pub(crate) lost: bool,
}

pub(crate) struct Region {
    pub(crate) start: u64,
    pub(crate) len: u64,
    pub(crate) host: HostRegionId,
    /// Owns the host mapping; only raw pointers into it are ever formed.
    pub(crate) _map: MmapMut,
    /// Migrations touching the region (munmap waits for zero).
    pub(crate) inflight: u32,
    pub(crate) dying: bool,
    /// A device kept its DMA mapping of this memory (its `dma_unmap_host` failed at
    /// detach): munmap must keep the memory mapped for the life of the process.
    pub(crate) device_kept: bool,
}

pub(crate) struct Space {
    pub(crate) pt: PageTable,
    pub(crate) attrs: AttrTree,
    pub(crate) regions: BTreeMap<u64, Region>,
    pub(crate) devices: Vec<(DeviceId, Asid)>,
}

impl Space {
    pub(crate) fn region_of(&self, va: u64) -> Option<&Region> {
        self.regions.range(..=va).next_back().map(|(_, r)| r).filter(|r| va < r.start + r.len)
    }

    pub(crate) fn region_of_mut(&mut self, va: u64) -> Option<&mut Region> {
        self.regions.range_mut(..=va).next_back().map(|(_, r)| r).filter(|r| va < r.start + r.len)
    }

    pub(crate) fn asid_of(&self, dev: DeviceId) -> Option<Asid> {
        self.devices.iter().find(|(d, _)| *d == dev).map(|(_, a)| *a)
    }
}

pub(crate) struct Staging {
    pub(crate) map: MmapMut,
    /// Free slots; lowest first, so a batch gets contiguous slots when it can.
    pub(crate) free: std::collections::BTreeSet<u32>,
}

impl Staging {
    pub(crate) fn base(&self) -> u64 {
        self.map.as_ptr() as u64
    }
}

/// The staging pool's host-region id.
pub(crate) const STAGING_ID: HostRegionId = HostRegionId(0);

pub(crate) struct State {
    pub(crate) devices: Vec<DeviceSlot>,
    pub(crate) spaces: BTreeMap<u32, Space>,
    pub(crate) next_space: u32,
    pub(crate) next_host: u32,
    /// Region start -> (space, end), over all spaces (the host VA space is one).
    pub(crate) by_va: BTreeMap<u64, (u32, u64)>,
    pub(crate) staging: Staging,
    pub(crate) thrash: ThrashTracker,
    /// Device faults in a row whose migration failed with a device error, per page
    /// (see [`crate::Config::dev_fault_dma_retries`]); cleared by a success.
    pub(crate) dma_failures: crate::hash::FastMap<crate::evict::PageKey, u32>,
    /// (space, 2 MiB chunk) pairs that were wholly on a device when eviction broke them
    /// up, newest last (at most [`crate::evict::RECENT_FULL`]): the stream rule treats
    /// them as full, so a stream under oversubscription still moves chunk by chunk.
    pub(crate) recent_full: std::collections::VecDeque<crate::evict::PageKey>,
    /// VA ranges a device refused to free (`peer_va_free`): never placed again.
    pub(crate) quarantined_va: Vec<(u64, u64)>,
}

impl State {
    pub(crate) fn space(&self, s: SpaceId) -> Result<&Space, GmemError> {
        self.spaces.get(&s.0).ok_or(GmemError::UnknownSpace(s.0))
    }

    pub(crate) fn dev(&self, d: DeviceId) -> Result<&DeviceSlot, GmemError> {
        self.devices.get(d.0 as usize).ok_or(GmemError::UnknownNode(Node::Device(d)))
    }

    /// Like [`State::dev`], refusing a device that was declared lost.
    pub(crate) fn live_dev(&self, d: DeviceId) -> Result<&DeviceSlot, GmemError> {
        let slot = self.dev(d)?;
        if slot.lost {
            return Err(GmemError::DeviceLost { dev: d.0 });
        }
        Ok(slot)
    }

    /// The space owning host address `va`.
    pub(crate) fn space_of_va(&self, va: u64) -> Option<u32> {
        self.by_va.range(..=va).next_back().filter(|(_, (_, end))| va < *end).map(|(_, (s, _))| *s)
    }
}

/// Shared manager state; see the module docs for locking.
pub(crate) struct Inner {
    /// The invalidation lock: guards all tables.
    pub(crate) state: Mutex<State>,
    /// Signalled whenever a migration finalizes.
    pub(crate) cv: Condvar,
    pub(crate) cfg: Config,
    pub(crate) counters: Counters,
    pub(crate) cpu: CpuSide,
}

impl Inner {
    /// Tells every live device that host software ran ([`GmMmu::host_work`]); the lock
    /// must not be held by the caller.
    pub(crate) fn host_work(&self, work: crate::mmu::HostWork) {
        let devices: Vec<Arc<dyn GmMmu>> =
            self.lock().devices.iter().filter(|d| !d.lost).map(|d| Arc::clone(&d.mmu)).collect();
        for d in devices {
            d.host_work(work);
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn now(&self) -> u64 {
        (self.cfg.clock)()
    }
}

pub(crate) fn cpu_register(cpu: &CpuSide, va: u64, len: u64) -> Result<(), CpuError> {
    cpu.register_shared(va, len)
}

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
