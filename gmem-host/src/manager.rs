//! The manager: devices, address spaces, `PEER_SHARED` regions and hints.
//!
//! # Locking
//! One mutex (`Inner::state`, "the invalidation lock") guards every table: devices,
//! spaces, logical page tables, attributes, LRUs, the staging pool. Migrations drop it
//! while the device copies (phase 2) and re-take it to commit, re-checking each page's
//! sequence number. A page being migrated carries `MIGRATING`: a CPU write to a page
//! being copied *out* of the CPU invalidates the migration (sequence bump, the commit
//! rolls back and retries); anything else that needs such a page waits on
//! `Inner::cv` (CPU faults on pages coming back) or answers retry (device faults).
//! `munmap` waits until no migration touches the region, so nothing is freed under a
//! DMA in flight.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex};

use mmap_rs::MmapOptions;

use crate::attrs::{AttrTree, RangeAttrs};
use crate::buddy::Buddy;
use crate::cpu::{CpuSide, Handler};
use crate::events::{CounterSnapshot, Counters};
use crate::evict::Lru;
use crate::fault::{DeviceFault, FaultResolution};
use crate::lost::LossReport;
use crate::mmu::{Asid, GmMmu, Hooks, HostRegion, HostRegionId, HostRegionKind, HostWork, PAGE_SIZE, Prot};
use crate::page_table::{PageFlags, PageTable, Residency};
use crate::region::{place_region, region_off_device, region_on_device};
use crate::state::{DeviceSlot, HostMapping, Inner, Region, STAGING_ID, Space, Staging, State};
use crate::thrash::ThrashTracker;
use crate::types::{DeviceId, HintReport, Node};

pub use crate::config::{Clock, Config};
pub use crate::error::GmemError;
pub use crate::types::{Hint, MapFlags, SpaceId};

/// What the manager knows about one page, for tests and the CLI.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PageInfo {
    /// Residency.
    pub residency: Residency,
    /// The device holding (or remotely mapping) it.
    pub device: Option<DeviceId>,
    /// Its device frame, when on a device.
    pub device_pa: Option<u64>,
    /// Rights of the device mapping (empty = unmapped).
    pub prot: Prot,
    /// Mapped remotely by `device`.
    pub remote: bool,
    /// Pinned on the CPU by the thrashing detector.
    pub pinned: bool,
    /// Part of a 2 MiB device mapping.
    pub huge: bool,
    /// Poisoned: the CPU could not get it back from `device` (touches raise SIGBUS).
    pub poisoned: bool,
    /// The range's protection ([`Gmem::mprotect`]), for the CPU and every device.
    pub protection: Prot,
    /// The page reads as zeros and holds no data: never written anywhere
    /// ([`Residency::Unpopulated`]), or a CPU page that maps the kernel's zero page (read,
    /// never written; seen only where `/proc/self/pagemap` shows frame numbers).
    pub zero: bool,
}

/// Where one device finds a page ([`Gmem::placement`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Never written: reads as zeros, nothing allocated anywhere.
    Untouched,
    /// In host memory, not mapped by the device.
    Host,
    /// In host memory, mapped by the device remotely with these rights.
    Remote {
        /// Rights of the device's mapping.
        prot: Prot,
    },
    /// In the device's own memory (a read duplicate too: the host has a copy).
    Local {
        /// Rights of the device's mapping (empty: not mapped now; its next access
        /// faults and maps it again).
        prot: Prot,
        /// Mapped as part of a 2 MiB mapping.
        huge: bool,
    },
    /// Only in another device's memory.
    OtherDevice(DeviceId),
}

/// A change to the attributes of a range.
type AttrEdit = Box<dyn Fn(&mut RangeAttrs)>;

/// The generic unified-memory manager. Cheap to share: all methods take `&self`.
pub struct Gmem {
    pub(crate) inner: Arc<Inner>,
    _handler: Option<Handler>,
}

impl std::fmt::Debug for Gmem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.inner.lock();
        f.debug_struct("Gmem")
            .field("devices", &g.devices.iter().map(|d| d.info.name.as_str()).collect::<Vec<_>>())
            .field("spaces", &g.spaces.len())
            .field("regions", &g.by_va.len())
            .field("userfaultfd", &self.inner.cpu.is_uffd())
            .finish()
    }
}

pub(crate) fn check_range(va: u64, len: u64) -> Result<(), GmemError> {
    if len == 0 {
        return Err(GmemError::ZeroLength { va });
    }
    if va % PAGE_SIZE != 0 || len % PAGE_SIZE != 0 {
        return Err(GmemError::Unaligned { va, len });
    }
    if va.checked_add(len).is_none() {
        return Err(GmemError::Overflow { va, len });
    }
    Ok(())
}

/// Every page of `[va, va+len)` must lie in a live region of `sp` (space `space`).
pub(crate) fn check_managed(sp: &Space, space: SpaceId, va: u64, len: u64) -> Result<(), GmemError> {
    let mut at = va;
    while at < va + len {
        match sp.region_of(at) {
            Some(r) if !r.dying => at = r.start + r.len,
            _ => return Err(GmemError::NotManaged { va: at, space: space.0 }),
        }
    }
    Ok(())
}

impl Gmem {
    /// A manager with no devices. With [`CpuMode::Userfaultfd`](crate::CpuMode::Userfaultfd) this opens the
    /// userfaultfd and starts the handler thread, or fails with
    /// [`CpuError::Unavailable`](crate::CpuError::Unavailable).
    pub fn new(cfg: Config) -> Result<Self, GmemError> {
        let cpu = CpuSide::new(cfg.cpu)?;
        let pages = cfg.staging_pages.max(1);
        let map = MmapOptions::new(pages * PAGE_SIZE as usize)
            .and_then(|o| o.map_mut())
            .map_err(|e| GmemError::HostMap { len: pages as u64 * PAGE_SIZE, reason: e.to_string() })?;
        let staging = Staging { map, free: (0..pages as u32).collect() };
        let state = State {
            devices: Vec::new(),
            spaces: BTreeMap::new(),
            next_space: 1,
            next_host: 1,
            by_va: BTreeMap::new(),
            staging,
            thrash: ThrashTracker::new(cfg.thrash),
            dma_failures: Default::default(),
            recent_full: Default::default(),
            quarantined_va: Vec::new(),
        };
        let inner =
            Arc::new(Inner { state: Mutex::new(state), cv: Condvar::new(), cfg, counters: Counters::default(), cpu });
        let handler = match inner.cpu.raw_fd() {
            Some(fd) => Some(Handler::start(inner.clone(), fd)?),
            None => None,
        };
        Ok(Gmem { inner, _handler: handler })
    }

    /// Whether CPU faults are served by userfaultfd.
    pub fn uses_userfaultfd(&self) -> bool {
        self.inner.cpu.is_uffd()
    }

    /// Register a device: validate its info and hooks, build the buddy allocator over its
    /// memory, and map the staging pool for its DMA.
    pub fn register_device(&self, mmu: Arc<dyn GmMmu>) -> Result<DeviceId, GmemError> {
        let info = mmu.info();
        let missing = self.inner.cfg.require_hooks - info.hooks;
        if !missing.is_empty() {
            return Err(GmemError::MissingHooks { name: info.name, missing });
        }
        if !(32..=64).contains(&info.va_bits) {
            return Err(GmemError::BadDeviceInfo {
                name: info.name,
                reason: format!("va_bits {} outside 32..=64", info.va_bits),
            });
        }
        if info.mem_ranges.iter().any(|r| r.end / PAGE_SIZE > u64::from(u32::MAX)) {
            return Err(GmemError::BadDeviceInfo { name: info.name, reason: "device memory above 16 TiB".into() });
        }
        let buddy = Buddy::new(&info.mem_ranges)?;
        let frames = info.mem_ranges.iter().map(|r| r.end / PAGE_SIZE).max().unwrap_or(0);
        let Some(lru) = Lru::new(frames) else {
            return Err(GmemError::BadDeviceInfo {
                name: info.name,
                reason: format!("cannot allocate eviction state for {frames} frames"),
            });
        };
        let mut g = self.inner.lock();
        if g.devices.len() >= 32 {
            return Err(GmemError::TooManyDevices);
        }
        let id = DeviceId(g.devices.len() as u8);
        if info.hooks.contains(Hooks::DMA_MAP_HOST) {
            let region = HostRegion {
                id: STAGING_ID,
                kind: HostRegionKind::Staging,
                va: g.staging.base(),
                len: g.staging.map.size() as u64,
            };
            // SAFETY: the staging pool is the manager's own mapping and lives as long as
            // the manager, which outlives every registered device.
            unsafe { mmu.dma_map_host(&region) }.map_err(|source| GmemError::Hook {
                dev: id.0,
                hook: "dma_map_host",
                source,
            })?;
        }
        tracing::info!(target: "gmem", dev = id.0, name = %info.name, pages = buddy.total_pages(), "device registered");
        g.devices.push(DeviceSlot {
            mmu,
            info,
            buddy,
            lru,
            asids: HashMap::new(),
            lost: false,
            owed_invalidations: Vec::new(),
        });
        Ok(id)
    }

    /// Create an empty address space.
    pub fn create_space(&self) -> SpaceId {
        let mut g = self.inner.lock();
        let id = g.next_space;
        g.next_space += 1;
        g.spaces.insert(
            id,
            Space {
                pt: PageTable::new(),
                attrs: AttrTree::new(),
                regions: BTreeMap::new(),
                devices: Vec::new(),
                cpu_window: (0, 0),
            },
        );
        SpaceId(id)
    }

    /// Destroy a space: unmap every region (bringing nothing back: the memory goes away),
    /// then destroy each device's page table. Unknown spaces are a typed error.
    pub fn destroy_space(&self, space: SpaceId) -> Result<(), GmemError> {
        let regions: Vec<(u64, u64)> = {
            let g = self.inner.lock();
            g.space(space)?.regions.values().map(|r| (r.start, r.len)).collect()
        };
        for (va, len) in regions {
            self.munmap(space, va as *mut u8, len)?;
        }
        let mut g = self.inner.lock();
        let Some(sp) = g.spaces.remove(&space.0) else { return Ok(()) };
        let mut first = None;
        for (d, asid) in sp.devices {
            let slot = &mut g.devices[d.0 as usize];
            slot.asids.remove(&asid);
            if slot.lost {
                continue;
            }
            if let Err(source) = slot.mmu.pmap_destroy(asid) {
                first.get_or_insert(GmemError::Hook { dev: d.0, hook: "pmap_destroy", source });
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Attach a device to a space: create its page table (ASID) and make every existing
    /// region reachable on it. Returns the ASID the device chose.
    pub fn attach(&self, space: SpaceId, dev: DeviceId) -> Result<Asid, GmemError> {
        let mut g = self.inner.lock();
        let slot = g.live_dev(dev)?;
        let (mmu, info) = (slot.mmu.clone(), slot.info.clone());
        let sp = g.space(space)?;
        if sp.asid_of(dev).is_some() {
            return Err(GmemError::AlreadyAttached { dev: dev.0, space: space.0 });
        }
        let limit = 1u64.checked_shl(u32::from(info.va_bits)).unwrap_or(u64::MAX);
        if let Some(r) = sp.regions.values().find(|r| r.start + r.len > limit) {
            return Err(GmemError::VaWindow { va: r.start, dev: dev.0, bits: info.va_bits });
        }
        let regions: Vec<(u64, u64, HostRegionId)> = sp.regions.values().map(|r| (r.start, r.len, r.host)).collect();
        let hook = |hook: &'static str| move |source| GmemError::Hook { dev: dev.0, hook, source };
        let asid = mmu.pmap_create().map_err(hook("pmap_create"))?;
        let mut done = Vec::new();
        let mut fail = None;
        for &(va, len, host) in &regions {
            if let Err(e) = region_on_device(&mmu, &info, asid, va, len, host, dev) {
                fail = Some(e);
                break;
            }
            done.push((va, len, host));
        }
        if let Some(e) = fail {
            for (va, len, host) in done {
                let _ = region_off_device(&mmu, &info, asid, va, len, host);
            }
            let _ = mmu.pmap_destroy(asid);
            return Err(e);
        }
        g.devices[dev.0 as usize].asids.insert(asid, space.0);
        if let Some(sp) = g.spaces.get_mut(&space.0) {
            sp.devices.push((dev, asid));
        }
        Ok(asid)
    }

    /// Detach a device from a space: its pages come back to the host (data kept), its
    /// remote mappings go, the regions are unregistered from it and its page table is
    /// destroyed. The space and its regions stay usable by the CPU and other devices.
    pub fn detach(&self, space: SpaceId, dev: DeviceId) -> Result<(), GmemError> {
        let (regions, lost): (Vec<(u64, u64)>, bool) = {
            let g = self.inner.lock();
            let lost = g.dev(dev)?.lost;
            let sp = g.space(space)?;
            if sp.asid_of(dev).is_none() {
                return Err(GmemError::NotAttached { dev: dev.0, space: space.0 });
            }
            (sp.regions.values().map(|r| (r.start, r.len)).collect(), lost)
        };
        if lost {
            // Nothing comes back from a lost device and nothing is asked of it: only the
            // bookkeeping goes (its lost pages stay SIGBUS pages until munmap).
            let mut g = self.inner.lock();
            if let Some(sp) = g.spaces.get_mut(&space.0)
                && let Some(i) = sp.devices.iter().position(|(d, _)| *d == dev)
            {
                let (_, asid) = sp.devices.remove(i);
                g.devices[dev.0 as usize].asids.remove(&asid);
            }
            return Ok(());
        }
        for &(va, len) in &regions {
            crate::migrate::to_host::range_to_host(&self.inner, space.0, Some(dev), va, len)?;
        }
        let mut g = self.inner.lock();
        let Some(sp) = g.spaces.get(&space.0) else { return Err(GmemError::UnknownSpace(space.0)) };
        let Some(asid) = sp.asid_of(dev) else { return Err(GmemError::NotAttached { dev: dev.0, space: space.0 }) };
        // Anything still held (mid-migration by another thread) makes this a retryable error.
        for &(va, len) in &regions {
            let busy = sp
                .pt
                .touched(va / PAGE_SIZE, len / PAGE_SIZE)
                .into_iter()
                .find(|(_, e)| e.dev == dev.0 && (e.on_device() || e.flags.contains(PageFlags::REMOTE)));
            if let Some((vpn, _)) = busy {
                return Err(GmemError::Busy { va: vpn * PAGE_SIZE });
            }
        }
        let hosts: Vec<(u64, u64, HostRegionId)> = sp.regions.values().map(|r| (r.start, r.len, r.host)).collect();
        let slot = &g.devices[dev.0 as usize];
        let (mmu, info) = (slot.mmu.clone(), slot.info.clone());
        let mut quarantined = Vec::new();
        for (va, len, host) in hosts {
            if !region_off_device(&mmu, &info, asid, va, len, host) {
                quarantined.push((va, va + len));
            }
        }
        if let Some(sp) = g.spaces.get_mut(&space.0) {
            for &(va, _) in &quarantined {
                if let Some(r) = sp.regions.get_mut(&va) {
                    r.device_kept = true;
                }
            }
        }
        g.quarantined_va.extend(quarantined);
        g.devices[dev.0 as usize].asids.remove(&asid);
        if let Some(sp) = g.spaces.get_mut(&space.0) {
            sp.devices.retain(|(d, _)| *d != dev);
        }
        mmu.pmap_destroy(asid).map_err(|source| GmemError::Hook { dev: dev.0, hook: "pmap_destroy", source })
    }

    /// Map `len` bytes of managed memory (rounded up to pages) and return a host pointer
    /// the CPU uses directly. The same address is the device virtual address.
    pub fn mmap(&self, space: SpaceId, len: u64, flags: MapFlags) -> Result<*mut u8, GmemError> {
        if !flags.contains(MapFlags::PEER_SHARED) {
            return Err(GmemError::Flags(flags));
        }
        if len == 0 {
            return Err(GmemError::ZeroLength { va: 0 });
        }
        let len = len.checked_add(PAGE_SIZE - 1).ok_or(GmemError::Overflow { va: 0, len })? & !(PAGE_SIZE - 1);
        let mut g = self.inner.lock();
        let sp = g.space(space)?;
        let mut limit = 1u64 << 47;
        let devs: Vec<(DeviceId, Asid)> = sp.devices.clone();
        for (d, _) in &devs {
            let bits = g.devices[d.0 as usize].info.va_bits;
            limit = limit.min(1u64.checked_shl(u32::from(bits)).unwrap_or(u64::MAX));
        }
        let map = place_region(&g.by_va, &g.quarantined_va, self.inner.cfg.va_base, limit, len)?;
        let va = map.as_ptr() as u64;
        let host = HostRegionId(g.next_host);
        // Register with the CPU side, then every attached device; undo on failure.
        self.inner.cpu.register_shared(va, len)?;
        let mut done: Vec<(DeviceId, Asid)> = Vec::new();
        for &(d, asid) in &devs {
            let slot = &g.devices[d.0 as usize];
            if let Err(e) = region_on_device(&slot.mmu, &slot.info, asid, va, len, host, d) {
                for &(d2, a2) in &done {
                    let s2 = &g.devices[d2.0 as usize];
                    let _ = region_off_device(&s2.mmu, &s2.info, a2, va, len, host);
                }
                self.inner.cpu.unregister(va, len);
                return Err(e);
            }
            done.push((d, asid));
        }
        g.next_host += 1;
        g.by_va.insert(va, (space.0, va + len));
        let region = Region {
            start: va,
            len,
            host,
            map: HostMapping::adopt(map),
            inflight: 0,
            dying: false,
            device_kept: false,
        };
        if let Some(sp) = g.spaces.get_mut(&space.0) {
            sp.regions.insert(va, region);
        }
        tracing::debug!(target: "gmem", space = space.0, va = format_args!("{va:#x}"), len, "mmap");
        Ok(va as *mut u8)
    }

    /// Unmap `[ptr, ptr+len)`: a whole region, or part of one (its start, middle or end:
    /// the region is split first, see `crate::remap`). Waits for migrations touching the
    /// region, releases every device mapping and frame of the range, then drops its host
    /// memory. A range reaching past its region's end is [`GmemError::PartialUnmap`].
    pub fn munmap(&self, space: SpaceId, ptr: *mut u8, len: u64) -> Result<(), GmemError> {
        let va = ptr as u64;
        check_range(va, len)?;
        let mut g = self.inner.lock();
        let (start, end) = {
            let sp = g.space(space)?;
            let r = sp.region_of(va).filter(|r| !r.dying).ok_or(GmemError::NotManaged { va, space: space.0 })?;
            (r.start, r.start + r.len)
        };
        if va + len > end {
            return Err(GmemError::PartialUnmap { va, len });
        }
        if (start, end) != (va, va + len) {
            // Part of a region: split it at the range's edges, then unmap the middle piece.
            let cuts: Vec<u64> = [va, va + len].into_iter().filter(|&c| start < c && c < end).collect();
            g = crate::migrate::resize::split(&self.inner, g, space.0, va, &cuts)?;
        }
        if let Some(r) = g.spaces.get_mut(&space.0).and_then(|s| s.regions.get_mut(&va)) {
            r.dying = true;
        }
        loop {
            let busy = g.spaces.get(&space.0).and_then(|s| s.regions.get(&va)).map_or(0, |r| r.inflight);
            if busy == 0 {
                break;
            }
            g = self.inner.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        crate::migrate::teardown::teardown_range(&self.inner, &mut g, space.0, va, len);
        let Some(sp) = g.spaces.get_mut(&space.0) else { return Ok(()) };
        let Some(region) = sp.regions.remove(&va) else { return Ok(()) };
        let devs = sp.devices.clone();
        sp.pt.remove(va / PAGE_SIZE, len / PAGE_SIZE);
        sp.attrs.clear(va, va + len);
        g.by_va.remove(&va);
        let mut quarantine = region.device_kept;
        for (d, asid) in devs {
            let slot = &g.devices[d.0 as usize];
            if !slot.lost && !region_off_device(&slot.mmu, &slot.info, asid, va, len, region.host) {
                quarantine = true;
            }
        }
        self.inner.cpu.unregister(va, len);
        if quarantine {
            // A device kept its DMA mapping of this memory: keep the memory mapped for
            // the life of the process (dma_map_host's contract) and never reuse the VA.
            g.quarantined_va.push((va, va + len));
            std::mem::forget(region);
            return Ok(());
        }
        drop(g);
        drop(region);
        Ok(())
    }

    /// Memory hints (RFC `hmadvise`). Validates the range and node first. `PREFETCH` and
    /// `DONTNEED` are all or nothing: a page whose migration fails with a device error is
    /// tried again (a frame the device refuses is swapped for another), and if the hint
    /// still fails, every page of the range is put back where it was — residency, device
    /// mappings and attributes as before the call — and the error is returned (see
    /// `crate::hint`). Returns what the hint did ([`HintReport`]).
    pub fn hmadvise(&self, space: SpaceId, node: Node, va: u64, len: u64, hint: Hint) -> Result<HintReport, GmemError> {
        check_range(va, len)?;
        let g = self.inner.lock();
        let sp = g.space(space)?;
        if let Node::Device(d) = node {
            g.live_dev(d)?;
            if sp.asid_of(d).is_none() {
                return Err(GmemError::NotAttached { dev: d.0, space: space.0 });
            }
        }
        check_managed(sp, space, va, len)?;
        let dev_node = |hint| match node {
            Node::Device(d) => Ok(d),
            Node::Cpu => Err(GmemError::HintNode { hint, node }),
        };
        let attr_change: Option<AttrEdit> = match hint {
            Hint::PreferredLocation => Some(Box::new(move |a| a.preferred = Some(node))),
            Hint::UnsetPreferredLocation => Some(Box::new(|a| a.preferred = None)),
            Hint::AccessedBy => {
                let d = dev_node(hint)?;
                Some(Box::new(move |a| a.accessed_by |= 1 << d.0))
            }
            Hint::UnsetAccessedBy => {
                let d = dev_node(hint)?;
                Some(Box::new(move |a| a.accessed_by &= !(1 << d.0)))
            }
            Hint::ReadMostly => Some(Box::new(|a| a.read_mostly = true)),
            Hint::UnsetReadMostly => Some(Box::new(|a| a.read_mostly = false)),
            Hint::Prefetch | Hint::DontNeed => None,
        };
        let walked = if attr_change.is_some() { 0 } else { sp.pt.touched_len(va / PAGE_SIZE, len / PAGE_SIZE) };
        drop(g);
        self.inner.host_work(HostWork::Hint { pages: walked });
        if let Some(f) = attr_change {
            let mut g = self.inner.lock();
            if let Some(sp) = g.spaces.get_mut(&space.0) {
                sp.attrs.apply(va, va + len, f);
            }
            return Ok(HintReport { pages_changed: len / PAGE_SIZE, ..HintReport::default() });
        }
        match (hint, node) {
            (Hint::Prefetch, Node::Device(d)) => crate::hint::prefetch_to_device(&self.inner, space.0, d, va, len),
            (Hint::Prefetch, Node::Cpu) | (Hint::DontNeed, Node::Cpu) => {
                crate::hint::range_home(&self.inner, space.0, None, va, len)
            }
            (Hint::DontNeed, Node::Device(d)) => crate::hint::range_home(&self.inner, space.0, Some(d), va, len),
            _ => Ok(HintReport::default()),
        }
    }

    /// Manual CPU coherence ([`CpuMode::Manual`](crate::CpuMode::Manual), or to pre-fault a range): make
    /// `[va, va+len)` CPU-accessible (for writing if `write`), as the userfaultfd handler
    /// would on a touch.
    pub fn cpu_access(&self, va: u64, len: u64, write: bool) -> Result<(), GmemError> {
        let start = va & !(PAGE_SIZE - 1);
        let end = va.checked_add(len).ok_or(GmemError::Overflow { va, len })?;
        if len == 0 {
            return Err(GmemError::ZeroLength { va });
        }
        let mut p = start;
        while p < end {
            crate::cpu_fault::resolve(&self.inner, p, write)?;
            p += PAGE_SIZE;
        }
        Ok(())
    }

    /// Handle a batch of device faults; see [`crate::fault`].
    pub fn dev_fault(&self, dev: DeviceId, faults: &[DeviceFault]) -> Vec<FaultResolution> {
        let answers = crate::fault::handle_batch(&self.inner, dev, faults);
        self.inner.host_work(HostWork::FaultBatch { faults: faults.len() });
        answers
    }

    /// Evict `pages` pages from `dev` to the host by its LRU (what device-memory
    /// pressure does), in as many staging rounds as that takes; returns how many were
    /// evicted: `pages`, or fewer only when nothing more was evictable (every page left
    /// is pinned, poisoned or mid-migration).
    pub fn evict(&self, dev: DeviceId, pages: usize) -> Result<usize, GmemError> {
        let mut moved = 0;
        while moved < pages {
            let n = crate::migrate::reclaim::evict(&self.inner, dev, pages - moved, &Default::default())?;
            if n == 0 {
                break;
            }
            moved += n;
        }
        Ok(moved)
    }

    /// Unpin pages whose thrashing went quiet; call periodically (fault handling does it
    /// lazily per page too). Returns how many were unpinned.
    pub fn maintenance(&self) -> usize {
        crate::migrate::mapping::unpin_quiet(&self.inner)
    }

    /// Declare device `dev` lost: it stopped answering and its driver could not reset
    /// it. The device is never called again; read-duplicated pages fall back to their
    /// CPU copy, pages that lived only on the device become SIGBUS pages, and the
    /// report names them (see [`crate::lost`]). Call it outside the device's hooks.
    pub fn device_lost(&self, dev: DeviceId) -> Result<LossReport, GmemError> {
        crate::lost::device_lost(&self.inner, dev)
    }

    /// Counters.
    pub fn counters(&self) -> CounterSnapshot {
        self.inner.counters.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn manager_is_shareable_across_threads() {
        send_sync::<Gmem>();
    }

    #[test]
    fn range_checks() {
        assert!(matches!(check_range(0x1000, 0), Err(GmemError::ZeroLength { va: 0x1000 })));
        assert!(matches!(check_range(0x1001, 0x1000), Err(GmemError::Unaligned { .. })));
        assert!(matches!(check_range(u64::MAX - 0xfff, 0x2000), Err(GmemError::Overflow { .. })));
        assert!(check_range(0x1000, 0x1000).is_ok());
        let e = GmemError::NotManaged { va: 0xdead_b000, space: 3 };
        assert_eq!(e.to_string(), "address 0xdeadb000 is not in a PEER_SHARED region of space 3");
    }
}
