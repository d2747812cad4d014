//! The CPU fault path: a CPU touch of a managed page, caught by the userfaultfd handler
//! thread ([`crate::cpu`]) or announced by [`Gmem::cpu_access`](crate::Gmem::cpu_access).
//!
//! The page is looked up under the lock, then:
//! * never populated: a zero page is installed;
//! * on the CPU: a write to a write-protected page lifts the protection; otherwise the
//!   toucher is only woken;
//! * being copied out of the CPU: the touch invalidates that migration (its commit sees
//!   the new sequence number and rolls back);
//! * mid-migration otherwise: wait for the finalize and look again;
//! * read-duplicated: a read is served by the CPU copy, a write collapses the duplicate;
//! * on a device: the page comes back ([`crate::migrate::to_host`]) with a window of
//!   following device-resident pages ([`Config::cpu_fault_ahead`](crate::Config); the
//!   window doubles while the faults are sequential, up to
//!   [`Config::cpu_fault_ahead_max`](crate::Config)), each recorded as a thrashing event;
//!   read-mostly pages are read-duplicated instead.
//!
//! A touch the manager cannot serve (the device keeps failing) is retried with back-off
//! and then poisoned: the toucher gets SIGBUS at the page ([`serve`]).

use std::sync::MutexGuard;
use std::time::Duration;

use crate::cpu::{CpuError, CpuFaultSink, CpuSide};
use crate::error::GmemError;
use crate::events::add;
use crate::migrate::to_host::{Cause, to_host, to_host_keys};
use crate::mmu::{Hooks, HostWork, PAGE_SIZE};
use crate::page_table::{PageEntry, PageFlags, Residency};
use crate::state::{Inner, State};
use crate::thrash::Verdict;
use crate::types::PageKey;

impl CpuFaultSink for Inner {
    fn cpu_side(&self) -> &CpuSide {
        &self.cpu
    }

    fn serve(&self, va: u64, write: bool, missing: bool) {
        serve(self, va, write, missing);
    }
}

/// Resolve a CPU touch of `va` (lock taken inside; may migrate).
pub(crate) fn resolve(inner: &Inner, va: u64, write: bool) -> Result<(), GmemError> {
    resolve_touch(inner, va, write, false)
}

/// The userfaultfd handler's entry: resolve, retrying with back-off on device errors
/// (the faulting thread stays blocked, its data safe on the device). After
/// [`crate::Config::cpu_fault_attempts`] failures the page is poisoned: the thread
/// is woken into a SIGBUS at the page, never left blocked for ever.
pub(crate) fn serve(inner: &Inner, va: u64, write: bool, missing: bool) {
    inner.host_work(HostWork::CpuFault);
    let attempts = inner.cfg.cpu_fault_attempts.max(1);
    for attempt in 0..attempts {
        match resolve_touch(inner, va, write, missing) {
            Ok(()) | Err(GmemError::NotManaged { .. }) => return,
            Err(GmemError::Poisoned { .. }) => {
                // Queued before the page was poisoned: the re-run touch hits SIGBUS.
                inner.cpu.wake(va & !(PAGE_SIZE - 1), PAGE_SIZE);
                return;
            }
            Err(e) => {
                tracing::error!(target: "gmem", va = format_args!("{va:#x}"), error = %e, attempt, "CPU fault failed; retrying");
                if attempt + 1 < attempts {
                    std::thread::sleep(Duration::from_millis(1u64 << attempt.min(7)));
                }
            }
        }
    }
    poison(inner, va & !(PAGE_SIZE - 1));
}

/// One touch, looked at again until it is served. `missing_event`: a missing-page event
/// of the userfaultfd (a hole the toucher is blocked on).
fn resolve_touch(inner: &Inner, va: u64, write: bool, missing_event: bool) -> Result<(), GmemError> {
    let page = va & !(PAGE_SIZE - 1);
    add(&inner.counters.cpu_faults, 1);
    // Thrashing events are recorded once per touch, not per look.
    let mut recorded = false;
    loop {
        let mut g = inner.lock();
        let Some((s, e)) = look_up(inner, &g, va, page)? else { return Ok(()) };
        let migrating = e.flags.contains(PageFlags::MIGRATING);
        let done = match e.state {
            // Copied out of the CPU: invalidate that migration (its commit sees the new seq).
            _ if migrating && e.flags.contains(PageFlags::FROM_CPU) => on_cpu(inner, &mut g, s, page, e, write, false)?,
            _ if migrating => {
                let _ = inner.cv.wait_timeout(g, Duration::from_millis(50));
                false
            }
            Residency::Unpopulated | Residency::Cpu => on_cpu(inner, &mut g, s, page, e, write, missing_event)?,
            Residency::Dup if !write => {
                inner.cpu.wake(page, PAGE_SIZE);
                true
            }
            Residency::Dup => {
                drop(g);
                collapse(inner, (s, page / PAGE_SIZE))?
            }
            Residency::Device => {
                let first = !std::mem::replace(&mut recorded, true);
                from_device(inner, g, s, page, e, write, first)?
            }
        };
        if done {
            return Ok(());
        }
    }
}

/// The space and entry of `page` (lock held). An address outside a live region is an
/// error, after waking the toucher (its re-run touch gets the kernel's answer); so is a
/// poisoned page. `None`: the space went away.
fn look_up(inner: &Inner, g: &State, va: u64, page: u64) -> Result<Option<(u32, PageEntry)>, GmemError> {
    let Some(s) = g.space_of_va(page) else {
        inner.cpu.wake(page, PAGE_SIZE);
        return Err(GmemError::NotManaged { va, space: 0 });
    };
    let Some(sp) = g.spaces.get(&s) else { return Ok(None) };
    if sp.region_of(page).is_none_or(|r| r.dying) {
        inner.cpu.wake(page, PAGE_SIZE);
        return Err(GmemError::NotManaged { va, space: s });
    }
    let e = sp.pt.get(page / PAGE_SIZE);
    if e.flags.contains(PageFlags::POISONED) {
        return Err(GmemError::Poisoned { va: page, dev: e.dev });
    }
    Ok(Some((s, e)))
}

/// A touch of a page whose data is on the CPU (or nowhere yet), or being copied out of
/// it (`MIGRATING | FROM_CPU`: the update here bumps the sequence number, so that
/// migration rolls back). With `missing_event`, a hole where the table says present is
/// refilled. Always done (`true`).
fn on_cpu(
    inner: &Inner,
    g: &mut State,
    s: u32,
    page: u64,
    e: PageEntry,
    write: bool,
    missing_event: bool,
) -> Result<bool, GmemError> {
    let outbound = e.flags.contains(PageFlags::MIGRATING);
    match e.state {
        Residency::Unpopulated => {
            install_zero(inner, page)?;
            update(g, (s, page / PAGE_SIZE), |e| e.state = Residency::Cpu);
        }
        _ if write && (outbound || e.flags.contains(PageFlags::CPU_WP)) => {
            inner.cpu.unprotect(page, PAGE_SIZE)?;
            update(g, (s, page / PAGE_SIZE), |e| e.flags.remove(PageFlags::CPU_WP));
        }
        _ if missing_event => {
            // A hole where the table says present would be a bug; refill (EEXIST means
            // the event was merely stale).
            // SAFETY: `page` is a page of a live registered region (checked under the lock).
            if unsafe { inner.cpu.install_zero(page, PAGE_SIZE) }.is_ok() {
                tracing::error!(target: "gmem", va = format_args!("{page:#x}"), "CPU hole on a CPU-resident page");
            }
        }
        _ => inner.cpu.wake(page, PAGE_SIZE),
    }
    Ok(true)
}

/// A write to a read-duplicated page: the device copy goes, the CPU copy becomes the
/// only, writable one. `false` when another thread got there first (look again).
fn collapse(inner: &Inner, key: PageKey) -> Result<bool, GmemError> {
    if to_host(inner, &[key], Cause::Advise)? > 0 {
        add(&inner.counters.collapses, 1);
        return Ok(true);
    }
    Ok(false)
}

/// A touch of a device-resident page: record the bounce (`first` look of this touch
/// only), bring the page back with its fault-ahead window and wake the touchers. `false`
/// when the page did not come back (staging pool exhausted or raced): look again after
/// a finalize.
fn from_device(
    inner: &Inner,
    mut g: MutexGuard<'_, State>,
    s: u32,
    page: u64,
    e: PageEntry,
    write: bool,
    first: bool,
) -> Result<bool, GmemError> {
    let key = (s, page / PAGE_SIZE);
    let now = inner.now();
    if first {
        let verdict = record_bounce(&mut g, key, e.dev, now);
        if verdict != Verdict::Migrate {
            add(&inner.counters.thrash_events, 1);
            tracing::info!(target: "gmem", va = format_args!("{page:#x}"), ?verdict, "thrashing (cpu side)");
        }
        if verdict == Verdict::Pin {
            pin(inner, &mut g, key);
        }
    }
    let dup = !write && g.spaces.get(&s).is_some_and(|sp| sp.attrs.get(page).read_mostly);
    let pages = if dup { vec![key] } else { fault_ahead(inner, &mut g, key, e.dev) };
    drop(g);
    // Installed without waking: the toucher (and any thread blocked on a page that came
    // along) runs on only once the bounces are recorded, so what it does next never
    // races this thread's bookkeeping.
    let moved = to_host_keys(inner, &pages, Cause::CpuFault { dup })?;
    if pages.len() > 1 {
        // The pages that came along bounced as much as the faulted one.
        let mut g = inner.lock();
        for &other in moved.iter().filter(|&&k| k != key) {
            if record_bounce(&mut g, other, e.dev, now) == Verdict::Pin && g.spaces.contains_key(&other.0) {
                pin(inner, &mut g, other);
                add(&inner.counters.thrash_events, 1);
            }
        }
    }
    let mut vpns: Vec<u64> = moved.iter().map(|&(_, v)| v).collect();
    vpns.sort_unstable();
    for run in vpns.chunk_by(|a, b| b == &(a + 1)) {
        inner.cpu.wake(run[0] * PAGE_SIZE, run.len() as u64 * PAGE_SIZE);
    }
    if moved.contains(&key) {
        // Installed under the commit lock and woken: done. Not looking again avoids
        // acting on a state the woken thread already changed.
        return Ok(true);
    }
    let g = inner.lock();
    let _ = inner.cv.wait_timeout(g, Duration::from_millis(5));
    Ok(false)
}

/// The faulted page `key` and the device-resident pages that follow it in its region on
/// the same device `dev`: they come back in the same copy batch, so sequential CPU reads
/// of device results fault once per window, not once per page. The window is
/// [`Config::cpu_fault_ahead`](crate::Config) + 1 pages, doubled (up to
/// [`Config::cpu_fault_ahead_max`](crate::Config), at most half the staging pool) when
/// `key` is the page right after the space's previous window.
fn fault_ahead(inner: &Inner, g: &mut State, key: PageKey, dev: u8) -> Vec<PageKey> {
    let (s, vpn) = key;
    let mut pages = vec![key];
    let Some(sp) = g.spaces.get_mut(&s) else { return pages };
    let base = inner.cfg.cpu_fault_ahead + 1;
    let max = if inner.cfg.cpu_fault_ahead == 0 {
        base
    } else {
        inner.cfg.cpu_fault_ahead_max.min(inner.cfg.staging_pages / 2).max(base)
    };
    let (next, last) = sp.cpu_window;
    let window = if next == vpn && last > 0 { (last * 2).min(max) } else { base };
    let page = vpn * PAGE_SIZE;
    let end = sp.region_of(page).map_or(page, |r| r.start + r.len) / PAGE_SIZE;
    for v in vpn + 1..(vpn + window as u64).min(end) {
        let n = sp.pt.get(v);
        if n.state != Residency::Device || n.dev != dev || n.flags.contains(PageFlags::MIGRATING) {
            break;
        }
        pages.push((s, v));
    }
    sp.cpu_window = (vpn + pages.len() as u64, window);
    pages
}

/// Record a CPU-side thrashing event on `key`, whose data is on device `dev`.
fn record_bounce(g: &mut State, key: PageKey, dev: u8, now: u64) -> Verdict {
    // A device that maps host memory pins at once (see `crate::thrash`).
    let remote_ok = g.devices.get(dev as usize).is_some_and(|d| d.info.hooks.contains(Hooks::HOST_MAPPING));
    g.thrash.record(key, now, true, remote_ok)
}

/// Pin `key` on the CPU (the thrashing detector's verdict).
fn pin(inner: &Inner, g: &mut State, key: PageKey) {
    update(g, key, |e| e.flags.insert(PageFlags::PINNED));
    add(&inner.counters.pins, 1);
}

/// Change the entry of `key`, if its space still exists.
fn update(g: &mut State, (s, vpn): PageKey, f: impl FnOnce(&mut PageEntry)) {
    if let Some(sp) = g.spaces.get_mut(&s) {
        sp.pt.update(vpn, f);
    }
}

fn install_zero(inner: &Inner, page: u64) -> Result<(), CpuError> {
    // SAFETY: `page` is a page of a live registered region (checked under the lock).
    match unsafe { inner.cpu.install_zero(page, PAGE_SIZE) } {
        Ok(()) => Ok(()),
        // Already present (a manual-mode user touched it): keep its bytes.
        Err(CpuError::Install { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Poison a device-resident page the CPU could not get back: its CPU page becomes a
/// SIGBUS page and the blocked toucher is woken into it. A page that left the device
/// meanwhile is only woken (its next touch faults normally).
fn poison(inner: &Inner, page: u64) {
    let mut g = inner.lock();
    let vpn = page / PAGE_SIZE;
    let space = g.space_of_va(page);
    if let Some(sp) = space.and_then(|s| g.spaces.get_mut(&s)) {
        let e = sp.pt.get(vpn);
        if e.state == Residency::Device && !e.flags.intersects(PageFlags::MIGRATING | PageFlags::POISONED) {
            match inner.cpu.poison(page) {
                Ok(()) => {
                    sp.pt.update(vpn, |e| e.flags.insert(PageFlags::POISONED));
                    add(&inner.counters.poisoned, 1);
                    tracing::error!(target: "gmem", va = format_args!("{page:#x}"), dev = e.dev,
                        "page poisoned: its data could not be brought back from the device; CPU touches get SIGBUS");
                }
                Err(err) => {
                    tracing::error!(target: "gmem", va = format_args!("{page:#x}"), error = %err, "poisoning failed")
                }
            }
        }
    }
    drop(g);
    inner.cpu.wake(page, PAGE_SIZE);
}
