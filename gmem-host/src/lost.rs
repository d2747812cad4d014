//! Losing a device: what the manager does when a device stops answering for good.
//!
//! A driver first tries to bring a hung device back (a soft reset keeps device memory,
//! so nothing is lost). When that fails too — the device no longer answers MMIO, its
//! reset never completes, a board fell off the bus — the driver declares it lost with
//! [`crate::Gmem::device_lost`]. The device is never called again; the manager alone
//! puts every page it held in a defined state, and reports what happened:
//! * a read-duplicated page has its last good copy on the CPU: it becomes a plain,
//!   writable CPU page (**recovered**);
//! * a page whose only copy was on the device is **lost**: its CPU page becomes a
//!   SIGBUS page (like a machine-check on a dead memory module, the same mechanism as
//!   [`crate::page_table::PageFlags::POISONED`]) and the report names its range — never
//!   silently zeros;
//! * a remote mapping of a CPU page by the device is simply forgotten (the data never
//!   left the CPU).
//!
//! From then on faults from the device are aborted, hints and attaches naming it fail
//! with [`crate::GmemError::DeviceLost`], and munmap releases its frames without calling
//! it. Other devices and the CPU carry on.

use crate::error::GmemError;
use crate::events::add;
use crate::migrate::mapping::drop_dup_copy;
use crate::mmu::PAGE_SIZE;
use crate::page_table::{PageEntry, PageFlags, Residency};
use crate::state::{Inner, State};
use crate::types::{DeviceId, Node, PageKey, SpaceId};

/// A range of an address space whose data was only on a lost device.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LostRange {
    /// Address space.
    pub space: SpaceId,
    /// First byte (page-aligned).
    pub va: u64,
    /// Length in bytes (whole pages).
    pub len: u64,
}

impl std::fmt::Display for LostRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "space {} [{:#x}, {:#x})", self.space.0, self.va, self.va + self.len)
    }
}

/// What [`crate::Gmem::device_lost`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LossReport {
    /// Read-duplicated pages now served by their CPU copy.
    pub recovered_pages: u64,
    /// Pages whose only copy was on the device (now SIGBUS pages).
    pub lost_pages: u64,
    /// Remote mappings of CPU pages dropped (no data involved).
    pub remote_dropped: u64,
    /// The lost pages as maximal ranges, sorted by space and address.
    pub lost: Vec<LostRange>,
}

/// See [`crate::Gmem::device_lost`].
pub(crate) fn device_lost(inner: &Inner, dev: DeviceId) -> Result<LossReport, GmemError> {
    let mut g = inner.lock();
    match g.devices.get(dev.0 as usize) {
        None => return Err(GmemError::UnknownNode(Node::Device(dev))),
        Some(slot) if slot.lost => return Err(GmemError::DeviceLost { dev: dev.0 }),
        Some(_) => {}
    }
    // From here on no new work reaches the device (every entry point checks `lost`).
    g.devices[dev.0 as usize].lost = true;
    add(&inner.counters.devices_lost, 1);
    let spaces: Vec<u32> = g.spaces.iter().filter(|(_, sp)| sp.asid_of(dev).is_some()).map(|(s, _)| *s).collect();
    // Migrations already under way finish or roll back first (their hooks fail fast on a
    // dead device); the state they leave is then settled here, under one lock hold.
    loop {
        let busy = spaces.iter().filter_map(|s| g.spaces.get(s)).any(|sp| sp.regions.values().any(|r| r.inflight > 0));
        if !busy {
            break;
        }
        g = inner.cv.wait(g).unwrap_or_else(|p| p.into_inner());
    }
    let mut rep = LossReport::default();
    let st = &mut *g;
    for s in spaces {
        let Some(sp) = st.spaces.get(&s) else { continue };
        let held: Vec<(u64, PageEntry)> = sp
            .regions
            .values()
            .flat_map(|r| sp.pt.touched(r.start / PAGE_SIZE, r.len / PAGE_SIZE))
            .filter(|(_, e)| e.dev == dev.0)
            .collect();
        for (vpn, e) in held {
            settle(inner, st, dev, (s, vpn), e, &mut rep);
        }
    }
    add(&inner.counters.pages_lost, rep.lost_pages);
    add(&inner.counters.pages_recovered, rep.recovered_pages);
    for r in &rep.lost {
        tracing::error!(target: "gmem", dev = dev.0, range = %r, "device lost: data in this range was only on the device; CPU touches get SIGBUS");
    }
    tracing::error!(target: "gmem", dev = dev.0, recovered = rep.recovered_pages, lost = rep.lost_pages,
        remote = rep.remote_dropped, "device lost");
    drop(g);
    // Wake CPU touches waiting on pages of the device: they re-run into the new state
    // (a lost page's touch now raises SIGBUS).
    inner.cv.notify_all();
    for r in &rep.lost {
        inner.cpu.wake(r.va, r.len);
    }
    Ok(rep)
}

/// Put page `key` (entry `e`, held by the lost device `dev`) in its defined state and
/// account for it in `rep` (see the module docs).
fn settle(inner: &Inner, st: &mut State, dev: DeviceId, (s, vpn): PageKey, e: PageEntry, rep: &mut LossReport) {
    let page = vpn * PAGE_SIZE;
    // Whatever the page was, the device no longer maps it.
    if let Some(sp) = st.spaces.get_mut(&s) {
        sp.pt.update(vpn, |e| {
            e.prot = 0;
            e.flags.remove(PageFlags::HUGE | PageFlags::REMOTE);
        });
    }
    match e.state {
        // The CPU copy is identical and authoritative from now on.
        Residency::Dup => {
            drop_dup_copy(inner, st, s, vpn, dev.0, e.pa());
            rep.recovered_pages += 1;
        }
        Residency::Device => {
            if !e.flags.contains(PageFlags::POISONED)
                && let Err(err) = inner.cpu.poison(page)
            {
                tracing::error!(target: "gmem", va = format_args!("{page:#x}"), error = %err, "device lost: poisoning failed");
            }
            st.devices[dev.0 as usize].lru.remove(e.pfn);
            if let Some(sp) = st.spaces.get_mut(&s) {
                sp.pt.update(vpn, |e| e.flags.insert(PageFlags::POISONED));
            }
            rep.lost_pages += 1;
            match rep.lost.last_mut() {
                Some(r) if r.space.0 == s && r.va + r.len == page => r.len += PAGE_SIZE,
                _ => rep.lost.push(LostRange { space: SpaceId(s), va: page, len: PAGE_SIZE }),
            }
        }
        Residency::Cpu | Residency::Unpopulated if e.flags.contains(PageFlags::REMOTE) => rep.remote_dropped += 1,
        Residency::Cpu | Residency::Unpopulated => {}
    }
}
