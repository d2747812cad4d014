//! A device in software: a [`GmMmu`] over host memory, with a page table, a TLB that
//! keeps stale entries until invalidated, a "DMA engine" (memcpy), accessed bits, and
//! injectable hook failures.
//!
//! The tests and benchmarks drive the manager with it, and it is a compact reference for
//! what a device crate implements. Its loads and stores go through the TLB first, so a
//! manager that forgets an invalidation reads stale data, exactly like hardware would.

use std::collections::{BTreeMap, HashMap};

use crate::hash::{FastMap, FastSet};
use std::sync::Mutex;

use crate::attrs::DeviceId;
use crate::fault::{Access, DeviceFault, FaultError, FaultResolution};
use crate::manager::Gmem;
use crate::mmu::{
    Asid, CopyOp, CopyTicket, DeviceInfo, GmMmu, HUGE_PAGE_SIZE, Hooks, HostRegion, HostRegionId, HostWork, MemAddr,
    MmuError, PAGE_SIZE, PageSize, PeerMapOp, Prepare, Prot, TlbFlush, VaRange,
};

impl Dev {
    /// Keeps `e`, dropping the oldest event beyond [`HOST_WORK_KEPT`].
    fn log(&mut self, e: SoftEvent) {
        if self.events.len() == HOST_WORK_KEPT {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }
}

/// Copies `ops` (checked) in device memory and registered host memory.
fn copy_now(d: &mut Dev, ops: &[CopyOp]) -> Result<(), MmuError> {
    for (index, op) in ops.iter().enumerate() {
        let err = |reason: String| MmuError::Dma { index, src: op.src, dst: op.dst, reason };
        let src = raw_at(d, op.src, op.len).map_err(err)?;
        let dst = raw_at(d, op.dst, op.len).map_err(err)?;
        // SAFETY: both ranges are in bounds (checked by raw_at); the manager never
        // passes overlapping source and destination.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, op.len as usize) };
    }
    Ok(())
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Pte {
    target: MemAddr,
    size: PageSize,
    prot: Prot,
}

#[derive(Default)]
struct Space {
    /// Keyed by the mapping's first VA.
    ptes: BTreeMap<u64, Pte>,
    reserved: Vec<(u64, u64)>,
}

/// Events a [`SoftDevice`] keeps ([`SoftDevice::take_host_work`], [`SoftDevice::take_events`]).
const HOST_WORK_KEPT: usize = 4096;

struct Dev {
    mem: Vec<u8>,
    spaces: HashMap<Asid, Space>,
    /// (asid, 4 KiB VA) -> (translated base address, prot)
    tlb: FastMap<(Asid, u64), (MemAddr, Prot)>,
    host: HashMap<HostRegionId, HostRegion>,
    next_asid: u32,
    /// hook -> (calls to let pass, failures to inject)
    inject: HashMap<&'static str, (u32, u32)>,
    calls: FastMap<&'static str, u64>,
    accessed: FastSet<(Asid, u64)>,
    /// What the manager said it did ([`GmMmu::host_work`]) and the copies it started and
    /// finished, oldest first; the last [`HOST_WORK_KEPT`] only, so a long run does not
    /// grow it without bound.
    events: std::collections::VecDeque<SoftEvent>,
    /// Copies [`GmMmu::copy_start`] started (they run in [`GmMmu::copy_finish`]).
    started: Vec<(u64, Vec<CopyOp>)>,
    /// Number of the last copy ticket handed out.
    last_ticket: u64,
}

/// What a [`SoftDevice`] saw of the manager's host work and copies, in order
/// ([`SoftDevice::take_events`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SoftEvent {
    /// [`GmMmu::host_work`].
    HostWork(HostWork),
    /// [`GmMmu::copy_start`] of `bytes` handed out `ticket`.
    CopyStarted {
        /// The ticket's number.
        ticket: u64,
        /// Bytes of the batch.
        bytes: u64,
    },
    /// [`GmMmu::copy_finish`] of `ticket` copied its batch.
    CopyFinished {
        /// The ticket's number.
        ticket: u64,
    },
    /// [`GmMmu::faults_resolved`] with these faults of the batch (calls naming none are
    /// not logged).
    FaultsResolved(Vec<usize>),
}

/// Configuration of a [`SoftDevice`].
#[derive(Clone, Debug)]
pub struct SoftConfig {
    /// Device memory bytes (multiple of 4 KiB).
    pub mem_bytes: u64,
    /// VA bits.
    pub va_bits: u8,
    /// Optional hooks to declare.
    pub hooks: Hooks,
    /// 2 MiB mappings.
    pub huge_pages: bool,
}

impl Default for SoftConfig {
    fn default() -> Self {
        SoftConfig { mem_bytes: 16 << 20, va_bits: 39, hooks: Hooks::all(), huge_pages: true }
    }
}

/// A callback run at the start of the next `copy_batch` (outside the device lock).
pub type CopyHook = Box<dyn FnOnce() + Send>;

/// The software device.
pub struct SoftDevice {
    cfg: SoftConfig,
    dev: Mutex<Dev>,
    copy_hook: Mutex<Option<CopyHook>>,
}

/// Why [`SoftDevice::run`] (and `load`/`store`) gave up.
#[derive(Debug, thiserror::Error, Clone)]
pub enum SoftError {
    /// The manager aborted the access.
    #[error(transparent)]
    Fault(#[from] FaultError),
    /// The access kept faulting although the manager answered retry every time.
    #[error("no progress at {va:#x} after {replays} replays")]
    NoProgress {
        /// Faulting address.
        va: u64,
        /// Replays attempted.
        replays: u32,
    },
}

/// A device access that faulted.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SoftFault {
    /// Address.
    pub va: u64,
    /// Access.
    pub access: Access,
}

impl SoftDevice {
    /// A device with `cfg`.
    pub fn new(cfg: SoftConfig) -> Self {
        let mem = vec![0u8; cfg.mem_bytes as usize];
        SoftDevice {
            cfg,
            dev: Mutex::new(Dev {
                mem,
                spaces: HashMap::new(),
                tlb: FastMap::default(),
                host: HashMap::new(),
                next_asid: 1,
                inject: HashMap::new(),
                calls: FastMap::default(),
                accessed: FastSet::default(),
                events: Default::default(),
                started: Vec::new(),
                last_ticket: 0,
            }),
            copy_hook: Mutex::new(None),
        }
    }

    /// Run `f` at the start of the next `copy_batch`, while the manager's lock is
    /// dropped (to race a CPU write against a migration).
    pub fn on_next_copy(&self, f: CopyHook) {
        *self.copy_hook.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    /// The callback of [`SoftDevice::on_next_copy`], if one is set (outside the lock).
    fn run_copy_hook(&self) {
        let hook = self.copy_hook.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(f) = hook {
            f();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Dev> {
        self.dev.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Make the next `count` calls of `hook` fail (after letting `skip` calls pass).
    pub fn inject_failure(&self, hook: &'static str, skip: u32, count: u32) {
        self.lock().inject.insert(hook, (skip, count));
    }

    /// Calls made to `hook` so far.
    pub fn calls(&self, hook: &'static str) -> u64 {
        self.lock().calls.get(hook).copied().unwrap_or(0)
    }

    /// The host work the manager has reported so far (the last 4096 reports), oldest
    /// first, and forget it.
    pub fn take_host_work(&self) -> Vec<HostWork> {
        let events = std::mem::take(&mut self.lock().events);
        events
            .into_iter()
            .filter_map(|e| match e {
                SoftEvent::HostWork(w) => Some(w),
                _ => None,
            })
            .collect()
    }

    /// Host work and copies as the manager reported and made them (the last 4096),
    /// oldest first, and forget them.
    pub fn take_events(&self) -> Vec<SoftEvent> {
        std::mem::take(&mut self.lock().events).into()
    }

    /// Copies started and not finished.
    pub fn copies_in_flight(&self) -> usize {
        self.lock().started.len()
    }

    /// Translate through the page table only (no TLB): target byte address and rights.
    pub fn translate(&self, asid: Asid, va: u64) -> Option<(MemAddr, Prot)> {
        let d = self.lock();
        walk(&d, asid, va)
    }

    /// Valid mappings in `asid` (a huge mapping counts once).
    pub fn mappings(&self, asid: Asid) -> usize {
        self.lock().spaces.get(&asid).map_or(0, |s| s.ptes.len())
    }

    /// TLB entries that disagree with the page table (must be 0 after every manager call).
    pub fn stale_tlb_entries(&self) -> usize {
        let d = self.lock();
        d.tlb.iter().filter(|((a, va), t)| walk(&d, *a, *va) != Some(**t)).count()
    }

    /// Perform a load (`data = None`, result in `buf`) or store of `buf.len()` bytes at
    /// `va`, one page at a time; returns the first fault.
    pub fn access(&self, asid: Asid, va: u64, buf: &mut [u8], write: bool) -> Result<(), SoftFault> {
        let mut d = self.lock();
        let mut done = 0usize;
        while done < buf.len() {
            let a = va + done as u64;
            let page = a & !(PAGE_SIZE - 1);
            let n = ((page + PAGE_SIZE - a) as usize).min(buf.len() - done);
            let access = if write { Access::Write } else { Access::Read };
            let need = if write { Prot::WRITE } else { Prot::READ };
            let hit = d.tlb.get(&(asid, page)).copied();
            let (base, prot) = match hit {
                Some(t) => t,
                None => match walk(&d, asid, page) {
                    Some(t) => {
                        d.tlb.insert((asid, page), t);
                        t
                    }
                    None => return Err(SoftFault { va: a, access }),
                },
            };
            if !prot.contains(need) {
                return Err(SoftFault { va: a, access });
            }
            d.accessed.insert((asid, page));
            let off = a - page;
            let chunk = &mut buf[done..done + n];
            match base {
                MemAddr::Device(pa) => {
                    let at = (pa + off) as usize;
                    if write {
                        d.mem[at..at + n].copy_from_slice(chunk);
                    } else {
                        chunk.copy_from_slice(&d.mem[at..at + n]);
                    }
                }
                MemAddr::Host { region, offset } => {
                    let Some(p) = host_ptr(&d, region, offset + off, n as u64) else {
                        return Err(SoftFault { va: a, access });
                    };
                    // SAFETY: `p` points into a registered host region, `n` bytes in
                    // bounds; the manager keeps remotely mapped pages present.
                    unsafe {
                        if write {
                            std::ptr::copy_nonoverlapping(chunk.as_ptr(), p, n);
                        } else {
                            std::ptr::copy_nonoverlapping(p, chunk.as_mut_ptr(), n);
                        }
                    }
                }
            }
            done += n;
        }
        Ok(())
    }

    /// Run an access to completion the way hardware would: on a fault, hand it to the
    /// manager and replay; an abort is returned.
    pub fn run(
        &self,
        gm: &Gmem,
        dev: DeviceId,
        asid: Asid,
        va: u64,
        buf: &mut [u8],
        write: bool,
    ) -> Result<(), SoftError> {
        let mut spins = 0u32;
        loop {
            match self.access(asid, va, buf, write) {
                Ok(()) => return Ok(()),
                Err(f) => {
                    let r = gm.dev_fault(dev, &[DeviceFault { asid, va: f.va, access: f.access, tag: 0 }]);
                    if let Some(FaultResolution::Abort(e)) = r.into_iter().next() {
                        return Err(SoftError::Fault(e));
                    }
                    spins += 1;
                    if spins > 64 {
                        std::thread::yield_now();
                    }
                    if spins > 100_000 {
                        return Err(SoftError::NoProgress { va: f.va, replays: spins });
                    }
                }
            }
        }
    }

    /// Load `buf.len()` bytes at `va`, resolving faults through `gm`.
    pub fn load(&self, gm: &Gmem, dev: DeviceId, asid: Asid, va: u64, buf: &mut [u8]) -> Result<(), SoftError> {
        self.run(gm, dev, asid, va, buf, false)
    }

    /// Store `data` at `va`, resolving faults through `gm`.
    pub fn store(&self, gm: &Gmem, dev: DeviceId, asid: Asid, va: u64, data: &[u8]) -> Result<(), SoftError> {
        let mut buf = data.to_vec();
        self.run(gm, dev, asid, va, &mut buf, true)
    }

    fn enter(&self, hook: &'static str) -> Result<std::sync::MutexGuard<'_, Dev>, MmuError> {
        let mut d = self.lock();
        *d.calls.entry(hook).or_default() += 1;
        if d.inject.is_empty() {
            return Ok(d);
        }
        let (mut fail, mut done) = (false, false);
        if let Some((skip, count)) = d.inject.get_mut(hook) {
            if *skip > 0 {
                *skip -= 1;
            } else if *count > 0 {
                *count -= 1;
                fail = true;
                done = *count == 0;
            }
        }
        if done {
            d.inject.remove(hook);
        }
        if fail {
            return Err(MmuError::Injected { hook });
        }
        Ok(d)
    }

    fn check_frame(&self, pa: u64, size: PageSize) -> Result<(), MmuError> {
        if pa % size.bytes() != 0 || pa + size.bytes() > self.cfg.mem_bytes {
            return Err(MmuError::PageTable { va: pa, reason: format!("bad frame {pa:#x}") });
        }
        Ok(())
    }
}

fn walk(d: &Dev, asid: Asid, va: u64) -> Option<(MemAddr, Prot)> {
    let sp = d.spaces.get(&asid)?;
    let page = va & !(PAGE_SIZE - 1);
    if let Some(p) = sp.ptes.get(&page).filter(|p| p.size == PageSize::Base) {
        return Some((p.target, p.prot));
    }
    let huge = va & !(HUGE_PAGE_SIZE - 1);
    let p = sp.ptes.get(&huge).filter(|p| p.size == PageSize::Huge)?;
    let off = page - huge;
    let t = match p.target {
        MemAddr::Device(pa) => MemAddr::Device(pa + off),
        MemAddr::Host { region, offset } => MemAddr::Host { region, offset: offset + off },
    };
    Some((t, p.prot))
}

fn host_ptr(d: &Dev, region: HostRegionId, offset: u64, len: u64) -> Option<*mut u8> {
    let r = d.host.get(&region)?;
    (offset + len <= r.len).then(|| (r.va + offset) as *mut u8)
}

/// A raw pointer to `len` bytes at `a` (device memory or a registered host region).
fn raw_at(d: &mut Dev, a: MemAddr, len: u64) -> Result<*mut u8, String> {
    match a {
        MemAddr::Device(pa) => {
            if pa.checked_add(len).is_none_or(|e| e > d.mem.len() as u64) {
                return Err(format!("device range {pa:#x}+{len:#x} out of range"));
            }
            // SAFETY: in bounds of `mem`, checked above.
            Ok(unsafe { d.mem.as_mut_ptr().add(pa as usize) })
        }
        MemAddr::Host { region, offset } => {
            host_ptr(d, region, offset, len).ok_or_else(|| format!("host {a} not registered"))
        }
    }
}

fn read_at(d: &Dev, a: MemAddr, len: u64) -> Result<Vec<u8>, String> {
    match a {
        MemAddr::Device(pa) => d
            .mem
            .get(pa as usize..(pa + len) as usize)
            .map(|s| s.to_vec())
            .ok_or_else(|| format!("device read {pa:#x} out of range")),
        MemAddr::Host { region, offset } => {
            let p = host_ptr(d, region, offset, len).ok_or_else(|| format!("host {a} not registered"))?;
            let mut v = vec![0u8; len as usize];
            // SAFETY: `p` is in bounds of a registered region (checked by host_ptr); the
            // manager only names present pages.
            unsafe { std::ptr::copy_nonoverlapping(p, v.as_mut_ptr(), len as usize) };
            Ok(v)
        }
    }
}

fn write_at(d: &mut Dev, a: MemAddr, data: &[u8]) -> Result<(), String> {
    match a {
        MemAddr::Device(pa) => {
            let s = d
                .mem
                .get_mut(pa as usize..pa as usize + data.len())
                .ok_or_else(|| format!("device write {pa:#x} out of range"))?;
            s.copy_from_slice(data);
            Ok(())
        }
        MemAddr::Host { region, offset } => {
            let p = host_ptr(d, region, offset, data.len() as u64).ok_or_else(|| format!("host {a} not registered"))?;
            // SAFETY: in bounds of a registered region (checked by host_ptr).
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
            Ok(())
        }
    }
}

impl GmMmu for SoftDevice {
    #[allow(clippy::single_range_in_vec_init)] // one contiguous memory range
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            name: "softdev".into(),
            mem_ranges: vec![0..self.cfg.mem_bytes],
            va_bits: self.cfg.va_bits,
            huge_pages: self.cfg.huge_pages,
            hooks: self.cfg.hooks,
        }
    }

    fn pmap_create(&self) -> Result<Asid, MmuError> {
        let mut d = self.enter("pmap_create")?;
        let a = Asid(d.next_asid);
        d.next_asid += 1;
        d.spaces.insert(a, Space::default());
        Ok(a)
    }

    fn pmap_destroy(&self, asid: Asid) -> Result<(), MmuError> {
        let mut d = self.enter("pmap_destroy")?;
        d.spaces.remove(&asid).ok_or(MmuError::UnknownAsid(asid.0))?;
        d.tlb.retain(|(a, _), _| *a != asid);
        Ok(())
    }

    fn pmap_enter(&self, asid: Asid, va: u64, target: MemAddr, size: PageSize, prot: Prot) -> Result<(), MmuError> {
        if let MemAddr::Device(pa) = target {
            self.check_frame(pa, size)?;
        } else if !self.cfg.hooks.contains(Hooks::HOST_MAPPING) {
            return Err(MmuError::Unsupported { hook: "pmap_enter(host)" });
        }
        let peer_va = self.cfg.hooks.contains(Hooks::PEER_VA);
        let mut d = self.enter("pmap_enter")?;
        if va % size.bytes() != 0 {
            return Err(MmuError::PageTable { va, reason: "misaligned".into() });
        }
        if walk(&d, asid, va).is_some()
            || (size == PageSize::Huge && {
                let sp = d.spaces.get(&asid);
                sp.is_some_and(|s| s.ptes.range(va..va + HUGE_PAGE_SIZE).next().is_some())
            })
        {
            return Err(MmuError::PageTable { va, reason: "already mapped".into() });
        }
        let sp = d.spaces.get_mut(&asid).ok_or(MmuError::UnknownAsid(asid.0))?;
        if peer_va && !sp.reserved.iter().any(|&(s, l)| s <= va && va + size.bytes() <= s + l) {
            return Err(MmuError::PageTable { va, reason: "outside reserved VA".into() });
        }
        sp.ptes.insert(va, Pte { target, size, prot });
        Ok(())
    }

    fn pmap_release(&self, asid: Asid, va: u64, size: PageSize) -> Result<TlbFlush, MmuError> {
        let mut d = self.enter("pmap_release")?;
        let sp = d.spaces.get_mut(&asid).ok_or(MmuError::UnknownAsid(asid.0))?;
        match sp.ptes.get(&va) {
            Some(p) if p.size == size => {
                sp.ptes.remove(&va);
                Ok(TlbFlush::new(asid, va, size.bytes()))
            }
            _ => Ok(TlbFlush::none(asid)),
        }
    }

    fn pmap_protect(&self, asid: Asid, va: u64, size: PageSize, prot: Prot) -> Result<TlbFlush, MmuError> {
        let mut d = self.enter("pmap_protect")?;
        let sp = d.spaces.get_mut(&asid).ok_or(MmuError::UnknownAsid(asid.0))?;
        let p = sp
            .ptes
            .get_mut(&va)
            .filter(|p| p.size == size)
            .ok_or_else(|| MmuError::PageTable { va, reason: "protect of unmapped page".into() })?;
        // The TLB caches rights too, and this device does not re-walk on a permission
        // fault: any change needs an invalidation.
        let changed = prot != p.prot;
        p.prot = prot;
        Ok(if changed { TlbFlush::new(asid, va, size.bytes()) } else { TlbFlush::none(asid) })
    }

    fn tlb_invl(&self, asid: Asid, range: VaRange) -> Result<(), MmuError> {
        let mut d = self.enter("tlb_invl")?;
        d.tlb.retain(|(a, va), _| !(*a == asid && *va >= range.start && *va < range.end()));
        Ok(())
    }

    fn tlb_invl_coalesced(&self, asid: Asid, ranges: &[VaRange]) -> Result<(), MmuError> {
        let mut d = self.enter("tlb_invl_coalesced")?;
        d.tlb.retain(|(a, va), _| !(*a == asid && ranges.iter().any(|r| *va >= r.start && *va < r.end())));
        Ok(())
    }

    fn prepare_page(&self, pa: u64, size: PageSize, how: Prepare) -> Result<(), MmuError> {
        self.check_frame(pa, size)?;
        let mut d = self.enter("prepare_page")?;
        let data = match how {
            Prepare::Zero => {
                d.mem[pa as usize..(pa + size.bytes()) as usize].fill(0);
                return Ok(());
            }
            Prepare::CopyFrom(src) => read_at(&d, src, size.bytes()).map_err(|reason| MmuError::Dma {
                index: 0,
                src,
                dst: MemAddr::Device(pa),
                reason,
            })?,
        };
        write_at(&mut d, MemAddr::Device(pa), &data).map_err(|reason| MmuError::Dma {
            index: 0,
            src: MemAddr::Device(pa),
            dst: MemAddr::Device(pa),
            reason,
        })
    }

    fn copy_batch(&self, ops: &[CopyOp]) -> Result<(), MmuError> {
        self.run_copy_hook();
        let mut d = self.enter("copy_batch")?;
        copy_now(&mut d, ops)
    }

    /// Checks and records the batch; the bytes move in [`GmMmu::copy_finish`], so a
    /// manager that commits before finishing finds its pages without their data.
    fn copy_start(&self, ops: &[CopyOp]) -> Result<CopyTicket, MmuError> {
        let mut d = self.enter("copy_batch")?;
        for (index, op) in ops.iter().enumerate() {
            let err = |reason: String| MmuError::Dma { index, src: op.src, dst: op.dst, reason };
            raw_at(&mut d, op.src, op.len).map_err(err)?;
            raw_at(&mut d, op.dst, op.len).map_err(err)?;
        }
        d.last_ticket += 1;
        let ticket = d.last_ticket;
        d.started.push((ticket, ops.to_vec()));
        let bytes = ops.iter().map(|o| o.len).sum();
        d.log(SoftEvent::CopyStarted { ticket, bytes });
        Ok(CopyTicket::new(ticket))
    }

    fn copy_finish(&self, ticket: CopyTicket) -> Result<(), MmuError> {
        if ticket == CopyTicket::DONE {
            return Ok(());
        }
        self.run_copy_hook();
        let mut d = self.lock();
        let Some(i) = d.started.iter().position(|(t, _)| *t == ticket.id()) else {
            return Err(MmuError::Device { hook: "copy_finish", reason: format!("no copy {} in flight", ticket.id()) });
        };
        let (_, ops) = d.started.swap_remove(i);
        copy_now(&mut d, &ops)?;
        d.log(SoftEvent::CopyFinished { ticket: ticket.id() });
        Ok(())
    }

    fn faults_resolved(&self, faults: &[usize]) {
        if !faults.is_empty() {
            self.lock().log(SoftEvent::FaultsResolved(faults.to_vec()));
        }
    }

    fn peer_va_alloc_fixed(&self, asid: Asid, va: u64, len: u64) -> Result<(), MmuError> {
        let mut d = self.enter("peer_va_alloc_fixed")?;
        let sp = d.spaces.get_mut(&asid).ok_or(MmuError::UnknownAsid(asid.0))?;
        if sp.reserved.iter().any(|&(s, l)| va < s + l && s < va + len) {
            return Err(MmuError::PageTable { va, reason: "VA already reserved".into() });
        }
        sp.reserved.push((va, len));
        Ok(())
    }

    fn peer_va_free(&self, asid: Asid, va: u64, len: u64) -> Result<(), MmuError> {
        let mut d = self.enter("peer_va_free")?;
        let sp = d.spaces.get_mut(&asid).ok_or(MmuError::UnknownAsid(asid.0))?;
        if sp.ptes.range(va..va + len).next().is_some() {
            return Err(MmuError::PageTable { va, reason: "freeing VA with live mappings".into() });
        }
        sp.reserved.retain(|&(s, l)| (s, l) != (va, len));
        Ok(())
    }

    fn alloc_page(&self, _pa: u64, _size: PageSize) -> Result<(), MmuError> {
        self.enter("alloc_page").map(|_| ())
    }

    fn free_page(&self, _pa: u64, _size: PageSize) {
        let mut d = self.lock();
        *d.calls.entry("free_page").or_default() += 1;
    }

    fn peer_map(&self, asid: Asid, ops: &[PeerMapOp]) -> Result<(), MmuError> {
        drop(self.enter("peer_map")?);
        for (i, op) in ops.iter().enumerate() {
            let r = self
                .prepare_page(op.pa, op.size, op.fill)
                .and_then(|_| self.pmap_enter(asid, op.va, MemAddr::Device(op.pa), op.size, op.prot));
            if let Err(e) = r {
                for done in &ops[..i] {
                    let _ = self.pmap_release(asid, done.va, done.size).map(TlbFlush::ignore);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    fn peer_unmap(&self, asid: Asid, pages: &[(u64, PageSize)]) -> Result<Vec<TlbFlush>, MmuError> {
        // One page-table update for the whole batch: all or nothing.
        let mut d = self.enter("peer_unmap")?;
        let sp = d.spaces.get_mut(&asid).ok_or(MmuError::UnknownAsid(asid.0))?;
        Ok(pages
            .iter()
            .map(|&(va, size)| match sp.ptes.get(&va) {
                Some(p) if p.size == size => {
                    sp.ptes.remove(&va);
                    TlbFlush::new(asid, va, size.bytes())
                }
                _ => TlbFlush::none(asid),
            })
            .collect())
    }

    unsafe fn dma_map_host(&self, region: &HostRegion) -> Result<(), MmuError> {
        let mut d = self.enter("dma_map_host")?;
        d.host.insert(region.id, *region);
        Ok(())
    }

    fn dma_unmap_host(&self, id: HostRegionId) -> Result<(), MmuError> {
        let mut d = self.enter("dma_unmap_host")?;
        d.host.remove(&id);
        Ok(())
    }

    fn test_and_clear_accessed(&self, asid: Asid, vas: &[u64], out: &mut [bool]) -> Result<(), MmuError> {
        let mut d = self.enter("test_and_clear_accessed")?;
        for (va, o) in vas.iter().zip(out.iter_mut()) {
            *o = d.accessed.remove(&(asid, *va & !(PAGE_SIZE - 1)));
        }
        Ok(())
    }

    fn host_work(&self, work: HostWork) {
        self.lock().log(SoftEvent::HostWork(work));
    }
}
