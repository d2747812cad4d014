//! The manager's internal state and its lock, and the narrow views the policies see of it.
//!
//! See [`crate::manager`] for the locking rules: one mutex ([`Inner::state`]) guards
//! every table here. The policies ([`crate::prefetch`], [`crate::evict`]) never see
//! [`State`]: they read it through [`PrefetchView`] (implemented by `State`) and
//! [`EvictView`] (implemented by [`DeviceTables`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use mmap_rs::MmapMut;

use crate::attrs::{AttrTree, RangeAttrs};
use crate::buddy::Buddy;
use crate::config::Config;
use crate::cpu::CpuSide;
use crate::error::GmemError;
use crate::events::Counters;
use crate::evict::{EvictView, Lru, RecentFull};
use crate::hash::{FastMap, FastSet};
use crate::mmu::{Asid, DeviceInfo, GmMmu, Hooks, HostRegionId, PAGE_SIZE, VaRange};
use crate::page_table::{PageEntry, PageTable};
use crate::prefetch::PrefetchView;
use crate::thrash::ThrashTracker;
use crate::types::{DeviceId, Node, PageKey, SpaceId};

pub(crate) struct DeviceSlot {
    pub(crate) mmu: Arc<dyn GmMmu>,
    pub(crate) info: DeviceInfo,
    pub(crate) buddy: Buddy,
    pub(crate) lru: Lru,
    pub(crate) asids: HashMap<Asid, u32>,
    /// Declared lost ([`crate::Gmem::device_lost`]): never called again.
    pub(crate) lost: bool,
    /// Invalidations that failed: the ranges' mappings are gone from the page tables
    /// but maybe not from the TLB. Every later flush sends them first
    /// ([`crate::migrate::mapping::flush_all`]), so no frame is freed behind them.
    pub(crate) owed_invalidations: Vec<(Asid, Vec<VaRange>)>,
}

pub(crate) struct Region {
    pub(crate) start: u64,
    pub(crate) len: u64,
    pub(crate) host: HostRegionId,
    /// Owns the host mapping; only raw pointers into it are ever formed.
    pub(crate) map: HostMapping,
    /// Migrations touching the region (munmap waits for zero).
    pub(crate) inflight: u32,
    pub(crate) dying: bool,
    /// A device kept its DMA mapping of this memory (its `dma_unmap_host` failed at
    /// detach): munmap must keep the memory mapped for the life of the process.
    pub(crate) device_kept: bool,
}

/// A region's host memory, owned: unmapped when dropped. Only raw pointers into it are
/// ever formed. Unlike an `MmapMut` it can be split (partial munmap) and re-pointed
/// (mremap).
pub(crate) struct HostMapping {
    pub(crate) va: u64,
    pub(crate) len: u64,
}

impl HostMapping {
    /// Take over the mapping of `m`.
    pub(crate) fn adopt(m: MmapMut) -> Self {
        let (va, len) = (m.as_ptr() as u64, m.size() as u64);
        std::mem::forget(m);
        HostMapping { va, len }
    }

    /// Keep `[va, va+at)`; return the rest as its own mapping.
    pub(crate) fn split_off(&mut self, at: u64) -> HostMapping {
        let rest = HostMapping { va: self.va + at, len: self.len - at };
        self.len = at;
        rest
    }
}

impl Drop for HostMapping {
    fn drop(&mut self) {
        // SAFETY: the manager owns [va, va+len) (adopted from a mapping it made, or moved
        // there by mremap); nothing references it any more once its region is dropped.
        if unsafe { libc::munmap(self.va as *mut libc::c_void, self.len as usize) } != 0 {
            tracing::error!(target: "gmem", va = format_args!("{:#x}", self.va), "munmap of a region failed");
        }
    }
}

pub(crate) struct Space {
    pub(crate) pt: PageTable,
    pub(crate) attrs: AttrTree,
    pub(crate) regions: BTreeMap<u64, Region>,
    pub(crate) devices: Vec<(DeviceId, Asid)>,
    /// The last CPU fault's window: the page after it and its size in pages
    /// ([`crate::Config::cpu_fault_ahead_max`]).
    pub(crate) cpu_window: (u64, usize),
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
    pub(crate) dma_failures: FastMap<PageKey, u32>,
    /// Full chunks eviction broke up, for the prefetcher's stream rule.
    pub(crate) recent_full: RecentFull,
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

impl PrefetchView for State {
    fn entry(&self, (s, vpn): PageKey) -> PageEntry {
        self.spaces.get(&s).map(|sp| sp.pt.get(vpn)).unwrap_or_default()
    }

    fn chunk_on_device(&self, s: u32, chunk: u64) -> u32 {
        self.spaces.get(&s).map_or(0, |sp| sp.pt.chunk_on_device(chunk))
    }

    fn region(&self, s: u32, va: u64) -> Option<(u64, bool)> {
        self.spaces.get(&s)?.region_of(va).map(|r| (r.start, r.dying))
    }

    fn attrs(&self, s: u32, va: u64) -> RangeAttrs {
        self.spaces.get(&s).map(|sp| sp.attrs.get(va)).unwrap_or_default()
    }

    fn recently_full(&self, s: u32, chunk: u64) -> bool {
        self.recent_full.contains(s, chunk)
    }
}

/// The spaces as eviction sees them, with one device's accessed-bit hook. Borrows only
/// `State::spaces` and parts of one device slot, so the caller can hold that device's
/// LRU mutably beside it (see [`State::victims`]).
pub(crate) struct DeviceTables<'a> {
    pub(crate) spaces: &'a BTreeMap<u32, Space>,
    pub(crate) mmu: &'a dyn GmMmu,
    pub(crate) hooks: Hooks,
}

impl EvictView for DeviceTables<'_> {
    fn entry(&self, (s, vpn): PageKey) -> Option<PageEntry> {
        self.spaces.get(&s).map(|sp| sp.pt.get(vpn))
    }

    fn prefers(&self, (s, vpn): PageKey, dev: DeviceId) -> bool {
        self.spaces.get(&s).is_some_and(|sp| sp.attrs.get(vpn * PAGE_SIZE).preferred == Some(Node::Device(dev)))
    }

    fn accessed(&self, dev: DeviceId, pages: &[PageKey]) -> Option<FastSet<PageKey>> {
        if !self.hooks.contains(Hooks::ACCESSED_BITS) {
            return None;
        }
        let mut by_space: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for &(s, v) in pages {
            by_space.entry(s).or_default().push(v);
        }
        let mut used = FastSet::default();
        for (s, vpns) in by_space {
            let Some(asid) = self.spaces.get(&s).and_then(|sp| sp.asid_of(dev)) else { continue };
            let vas: Vec<u64> = vpns.iter().map(|v| v * PAGE_SIZE).collect();
            let mut out = vec![false; vas.len()];
            if self.mmu.test_and_clear_accessed(asid, &vas, &mut out).is_ok() {
                used.extend(vpns.iter().zip(out).filter(|(_, a)| *a).map(|(v, _)| (s, *v)));
            }
        }
        Some(used)
    }

    fn chunk_on_device(&self, s: u32, chunk: u64) -> Option<u32> {
        self.spaces.get(&s).map(|sp| sp.pt.chunk_on_device(chunk))
    }
}

/// How [`State::victims`] chooses.
#[derive(Copy, Clone, Debug)]
pub(crate) enum Victims {
    /// Up to this many pages in LRU order ([`crate::evict::pick_victims`]).
    Pages(usize),
    /// The pages of up to this many whole 2 MiB blocks ([`crate::evict::pick_victim_blocks`]).
    Blocks(usize),
}

impl State {
    /// Eviction victims on `dev` (never in `exclude`), chosen by the [`crate::evict`]
    /// policy over [`DeviceTables`]; chunks they break up are remembered in
    /// [`State::recent_full`].
    pub(crate) fn victims(&mut self, dev: DeviceId, how: Victims, exclude: &FastSet<PageKey>) -> Vec<PageKey> {
        let State { devices, spaces, recent_full, .. } = self;
        let DeviceSlot { mmu, info, lru, .. } = &mut devices[dev.0 as usize];
        let view = DeviceTables { spaces, mmu: mmu.as_ref(), hooks: info.hooks };
        let v = match how {
            Victims::Pages(n) => crate::evict::pick_victims(lru, &view, dev, n, exclude),
            Victims::Blocks(n) => crate::evict::pick_victim_blocks(lru, &view, n, exclude),
        };
        recent_full.note(&view, &v);
        v
    }
}
