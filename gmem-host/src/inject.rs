//! Fault injection: one interface that makes any device hook, transport operation or
//! device error-injection site fail — by count, by seeded probability, or by address
//! range — so every recovery path can be exercised deterministically.
//!
//! An [`Injector`] is a cheap, cloneable handle on a set of [`Rule`]s. Layers consult it
//! at their *sites*, named `"<layer>:<operation>"`. Each layer names its own sites and
//! registers them with [`Injector::register`]; a rule for a site no layer registered is
//! refused. This crate owns the `hook:` sites:
//!
//! | layer | sites | address passed to [`Trigger::Range`] |
//! |---|---|---|
//! | `hook:` (any [`GmMmu`], through [`FaultyMmu`]) | [`HOOK_SITES`] | VA for page-table hooks, device address for frame hooks, first destination for `copy_batch` |
//!
//! Device crates add theirs (a transport's operations, the device's own error-injection
//! registers) and document them where they are consulted.
//!
//! Every decision is counted per site ([`Injector::counts`]); the same seed and the same
//! sequence of consultations give the same failures.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::mmu::{
    Asid, CopyOp, CopyTicket, DeviceInfo, GmMmu, HostRegion, HostRegionId, MemAddr, MmuError, PageSize, PeerMapOp,
    Prepare, Prot, TlbFlush, VaRange,
};

/// When a rule fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Let `skip` consultations pass, then fail the next `times`.
    Count {
        /// Consultations to let pass first.
        skip: u64,
        /// Failures to inject after that.
        times: u64,
    },
    /// Fail each consultation with probability `per_million` / 10⁶ (seeded).
    Rate {
        /// Probability in parts per million.
        per_million: u32,
    },
    /// Fail every consultation whose address lies in `[lo, hi)`.
    Range {
        /// First address.
        lo: u64,
        /// End (exclusive).
        hi: u64,
    },
}

/// One site and its trigger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Site name, e.g. `"hook:copy_batch"`.
    pub site: String,
    /// When it fires.
    pub trigger: Trigger,
}

/// A rule the injector cannot take.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InjectError {
    /// The site is not one any layer registered.
    #[error("unknown injection site `{site}` (known: {known})")]
    UnknownSite {
        /// The site named by the rule.
        site: String,
        /// The registered sites, space-separated.
        known: String,
    },
    /// The rule text does not parse.
    #[error("bad injection rule `{0}`: expected SITE=count:SKIP:TIMES, SITE=rate:PPM or SITE=range:LO:HI")]
    BadRule(String),
}

/// The `GmMmu` hooks [`FaultyMmu`] can fail.
pub const HOOK_SITES: &[&str] = &[
    "hook:pmap_create",
    "hook:pmap_destroy",
    "hook:pmap_enter",
    "hook:pmap_release",
    "hook:pmap_protect",
    "hook:tlb_invl",
    "hook:prepare_page",
    "hook:copy_batch",
    "hook:peer_va_alloc_fixed",
    "hook:peer_va_free",
    "hook:alloc_page",
    "hook:peer_map",
    "hook:peer_unmap",
    "hook:dma_map_host",
    "hook:dma_unmap_host",
    "hook:test_and_clear_accessed",
];

#[derive(Debug)]
struct ArmedRule {
    rule: Rule,
    seen: u64,
    fired: u64,
}

/// splitmix64: the small seeded generator behind [`Trigger::Rate`], also used by the
/// soak to draw its operations (same seed, same sequence, on every machine).
#[derive(Clone, Debug, Default)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[0, n)` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<ArmedRule>,
    rng: SplitMix64,
    counts: BTreeMap<String, u64>,
    paused: u32,
    /// Sites some layer registered (rules may name only these).
    sites: BTreeSet<&'static str>,
}

/// A shared set of injection rules (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct Injector {
    state: Arc<Mutex<State>>,
}

impl Injector {
    /// An injector with no rules that knows this crate's [`HOOK_SITES`]; `seed` drives
    /// [`Trigger::Rate`].
    pub fn new(seed: u64) -> Self {
        let inj = Injector { state: Arc::new(Mutex::new(State { rng: SplitMix64::new(seed), ..State::default() })) };
        inj.register(HOOK_SITES);
        inj
    }

    /// Makes `sites` known: a layer that consults the injector registers the sites it
    /// consults (again is harmless), and only then may rules name them.
    pub fn register(&self, sites: &[&'static str]) {
        self.lock().sites.extend(sites);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a rule for `site`.
    pub fn add(&self, site: &str, trigger: Trigger) -> Result<(), InjectError> {
        let mut g = self.lock();
        if !g.sites.contains(site) {
            let known = g.sites.iter().copied().collect::<Vec<_>>().join(" ");
            return Err(InjectError::UnknownSite { site: site.to_string(), known });
        }
        g.rules.push(ArmedRule { rule: Rule { site: site.to_string(), trigger }, seen: 0, fired: 0 });
        Ok(())
    }

    /// Parses and adds `SITE=count:SKIP:TIMES`, `SITE=rate:PPM` or `SITE=range:LO:HI`
    /// (numbers decimal or `0x` hex) — the command-line form.
    pub fn add_text(&self, text: &str) -> Result<(), InjectError> {
        let bad = || InjectError::BadRule(text.to_string());
        let (site, spec) = text.split_once('=').ok_or_else(bad)?;
        let num = |s: &str| -> Result<u64, InjectError> {
            let s = s.trim();
            let v = match s.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => s.parse(),
            };
            v.map_err(|_| bad())
        };
        let parts: Vec<&str> = spec.split(':').collect();
        let trigger = match parts.as_slice() {
            ["count", skip, times] => Trigger::Count { skip: num(skip)?, times: num(times)? },
            ["rate", ppm] => Trigger::Rate { per_million: u32::try_from(num(ppm)?).map_err(|_| bad())?.min(1_000_000) },
            ["range", lo, hi] if num(lo)? < num(hi)? => Trigger::Range { lo: num(lo)?, hi: num(hi)? },
            _ => return Err(bad()),
        };
        self.add(site.trim(), trigger)
    }

    /// Adds `Rate { per_million }` for every site in `sites`.
    pub fn add_rate_all(&self, sites: &[&str], per_million: u32) -> Result<(), InjectError> {
        sites.iter().try_for_each(|s| self.add(s, Trigger::Rate { per_million }))
    }

    /// Removes every rule (counts are kept).
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// Whether the operation at `site` (touching `addr`, if it has one) must fail now.
    pub fn fire(&self, site: &str, addr: Option<u64>) -> bool {
        let mut g = self.lock();
        if g.paused > 0 {
            return false;
        }
        let mut hit = false;
        for i in 0..g.rules.len() {
            if g.rules[i].rule.site != site {
                continue;
            }
            let fires = match g.rules[i].rule.trigger {
                Trigger::Count { skip, times } => {
                    let r = &mut g.rules[i];
                    r.seen += 1;
                    r.seen > skip && r.fired < times
                }
                Trigger::Rate { per_million } => g.rng.below(1_000_000) < u64::from(per_million),
                Trigger::Range { lo, hi } => addr.is_some_and(|a| (lo..hi).contains(&a)),
            };
            if fires {
                g.rules[i].fired += 1;
                hit = true;
            }
        }
        if hit {
            *g.counts.entry(site.to_string()).or_default() += 1;
        }
        hit
    }

    /// Runs `f` with injection suspended (recovery code re-synchronising a device must
    /// not be failed itself, or no recovery could be tested to completion).
    pub fn paused<R>(&self, f: impl FnOnce() -> R) -> R {
        self.lock().paused += 1;
        let r = f();
        self.lock().paused -= 1;
        r
    }

    /// Failures injected so far, per site.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.lock().counts.clone()
    }

    /// Total failures injected so far.
    pub fn total(&self) -> u64 {
        self.lock().counts.values().sum()
    }
}

/// A [`GmMmu`] whose hooks fail when the [`Injector`] says so (with
/// [`MmuError::Injected`], before the wrapped device is called: the device is left as if
/// the call never happened, as the hook contract requires of a failure).
pub struct FaultyMmu<M: ?Sized> {
    inner: Arc<M>,
    inj: Injector,
}

impl<M: GmMmu + ?Sized> FaultyMmu<M> {
    /// Wraps `inner`.
    pub fn new(inner: Arc<M>, inj: Injector) -> Self {
        FaultyMmu { inner, inj }
    }

    /// Fails with [`MmuError::Injected`] when the injector fires for `site` (`"hook:<name>"`).
    fn check(&self, site: &'static str, addr: Option<u64>) -> Result<(), MmuError> {
        debug_assert!(HOOK_SITES.contains(&site), "{site} missing from HOOK_SITES");
        let hook = site.strip_prefix("hook:").unwrap_or(site);
        if self.inj.fire(site, addr) { Err(MmuError::Injected { hook }) } else { Ok(()) }
    }
}

fn mem_addr(a: &MemAddr) -> Option<u64> {
    match a {
        MemAddr::Device(pa) => Some(*pa),
        _ => None,
    }
}

// Every hook, optional ones included, is forwarded: a default method here would hide the
// wrapped device's own (an early answer, a coalesced flush) behind the trait's fallback.
#[deny(clippy::missing_trait_methods)]
impl<M: GmMmu + ?Sized> GmMmu for FaultyMmu<M> {
    fn info(&self) -> DeviceInfo {
        self.inner.info()
    }
    fn pmap_create(&self) -> Result<Asid, MmuError> {
        self.check("hook:pmap_create", None)?;
        self.inner.pmap_create()
    }
    fn pmap_destroy(&self, asid: Asid) -> Result<(), MmuError> {
        self.check("hook:pmap_destroy", None)?;
        self.inner.pmap_destroy(asid)
    }
    fn pmap_enter(&self, asid: Asid, va: u64, target: MemAddr, size: PageSize, prot: Prot) -> Result<(), MmuError> {
        self.check("hook:pmap_enter", Some(va))?;
        self.inner.pmap_enter(asid, va, target, size, prot)
    }
    fn pmap_release(&self, asid: Asid, va: u64, size: PageSize) -> Result<TlbFlush, MmuError> {
        self.check("hook:pmap_release", Some(va))?;
        self.inner.pmap_release(asid, va, size)
    }
    fn pmap_protect(&self, asid: Asid, va: u64, size: PageSize, prot: Prot) -> Result<TlbFlush, MmuError> {
        self.check("hook:pmap_protect", Some(va))?;
        self.inner.pmap_protect(asid, va, size, prot)
    }
    fn tlb_invl(&self, asid: Asid, range: VaRange) -> Result<(), MmuError> {
        self.check("hook:tlb_invl", Some(range.start))?;
        self.inner.tlb_invl(asid, range)
    }
    fn prepare_page(&self, pa: u64, size: PageSize, how: Prepare) -> Result<(), MmuError> {
        self.check("hook:prepare_page", Some(pa))?;
        self.inner.prepare_page(pa, size, how)
    }
    fn copy_batch(&self, ops: &[CopyOp]) -> Result<(), MmuError> {
        self.check("hook:copy_batch", ops.first().and_then(|o| mem_addr(&o.dst)))?;
        self.inner.copy_batch(ops)
    }
    fn copy_start(&self, ops: &[CopyOp]) -> Result<CopyTicket, MmuError> {
        self.check("hook:copy_batch", ops.first().and_then(|o| mem_addr(&o.dst)))?;
        self.inner.copy_start(ops)
    }
    fn copy_finish(&self, ticket: CopyTicket) -> Result<(), MmuError> {
        self.inner.copy_finish(ticket)
    }
    fn tlb_invl_coalesced(&self, asid: Asid, ranges: &[VaRange]) -> Result<(), MmuError> {
        self.check("hook:tlb_invl", ranges.first().map(|r| r.start))?;
        self.inner.tlb_invl_coalesced(asid, ranges)
    }
    fn peer_va_alloc_fixed(&self, asid: Asid, va: u64, len: u64) -> Result<(), MmuError> {
        self.check("hook:peer_va_alloc_fixed", Some(va))?;
        self.inner.peer_va_alloc_fixed(asid, va, len)
    }
    fn peer_va_free(&self, asid: Asid, va: u64, len: u64) -> Result<(), MmuError> {
        self.check("hook:peer_va_free", Some(va))?;
        self.inner.peer_va_free(asid, va, len)
    }
    fn alloc_page(&self, pa: u64, size: PageSize) -> Result<(), MmuError> {
        self.check("hook:alloc_page", Some(pa))?;
        self.inner.alloc_page(pa, size)
    }
    fn free_page(&self, pa: u64, size: PageSize) {
        self.inner.free_page(pa, size)
    }
    fn peer_map(&self, asid: Asid, ops: &[PeerMapOp]) -> Result<(), MmuError> {
        self.check("hook:peer_map", ops.first().map(|o| o.va))?;
        self.inner.peer_map(asid, ops)
    }
    fn peer_unmap(&self, asid: Asid, pages: &[(u64, PageSize)]) -> Result<Vec<TlbFlush>, MmuError> {
        self.check("hook:peer_unmap", pages.first().map(|p| p.0))?;
        self.inner.peer_unmap(asid, pages)
    }
    unsafe fn dma_map_host(&self, region: &HostRegion) -> Result<(), MmuError> {
        self.check("hook:dma_map_host", None)?;
        // SAFETY: forwarded under our caller's contract, unchanged.
        unsafe { self.inner.dma_map_host(region) }
    }
    fn dma_unmap_host(&self, id: HostRegionId) -> Result<(), MmuError> {
        self.check("hook:dma_unmap_host", None)?;
        self.inner.dma_unmap_host(id)
    }
    fn test_and_clear_accessed(&self, asid: Asid, vas: &[u64], out: &mut [bool]) -> Result<(), MmuError> {
        self.check("hook:test_and_clear_accessed", vas.first().copied())?;
        self.inner.test_and_clear_accessed(asid, vas, out)
    }
    fn host_work(&self, work: crate::mmu::HostWork) {
        self.inner.host_work(work);
    }
    fn faults_resolved(&self, faults: &[usize]) {
        self.inner.faults_resolved(faults);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sites a device layer would register.
    const DEVICE_SITES: &[&str] = &["io:read32", "io:write32", "rtl:walk"];

    #[test]
    fn count_rate_and_range_triggers() {
        let inj = Injector::new(7);
        inj.register(DEVICE_SITES);
        inj.add("hook:copy_batch", Trigger::Count { skip: 2, times: 2 }).unwrap();
        let got: Vec<bool> = (0..6).map(|_| inj.fire("hook:copy_batch", None)).collect();
        assert_eq!(got, [false, false, true, true, false, false]);
        inj.add("io:read32", Trigger::Range { lo: 0x100, hi: 0x200 }).unwrap();
        assert!(inj.fire("io:read32", Some(0x1fc)));
        assert!(!inj.fire("io:read32", Some(0x200)));
        assert!(!inj.fire("io:read32", None));
        inj.add("rtl:walk", Trigger::Rate { per_million: 250_000 }).unwrap();
        let n = (0..10_000).filter(|_| inj.fire("rtl:walk", None)).count();
        assert!((2_000..3_000).contains(&n), "{n} of 10000 at 25 %");
        assert_eq!(inj.counts()["hook:copy_batch"], 2);
        assert_eq!(inj.counts()["io:read32"], 1);
        assert_eq!(inj.total(), 3 + n as u64);
    }

    #[test]
    fn same_seed_same_failures_and_pause_suspends() {
        let run = |seed| {
            let inj = Injector::new(seed);
            inj.add("hook:pmap_enter", Trigger::Rate { per_million: 100_000 }).unwrap();
            (0..500).map(|_| inj.fire("hook:pmap_enter", None)).collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
        let inj = Injector::new(1);
        inj.register(DEVICE_SITES);
        inj.add("io:write32", Trigger::Count { skip: 0, times: 5 }).unwrap();
        assert!(!inj.paused(|| inj.fire("io:write32", None)));
        assert!(inj.fire("io:write32", None));
    }

    #[test]
    fn rule_text_is_parsed_and_checked() {
        let inj = Injector::new(0);
        inj.add_text("hook:copy_batch=count:1:3").unwrap();
        assert!(
            matches!(inj.add_text("rtl:walk=rate:5000"), Err(InjectError::UnknownSite { site, .. }) if site == "rtl:walk")
        );
        inj.register(DEVICE_SITES);
        inj.add_text("rtl:walk=rate:5000").unwrap();
        inj.add_text("io:read32=range:0x1000:0x2000").unwrap();
        let unknown = inj.add_text("hook:nope=rate:1").unwrap_err();
        assert!(unknown.to_string().contains("known: hook:alloc_page"), "{unknown}");
        assert!(matches!(unknown, InjectError::UnknownSite { site, .. } if site == "hook:nope"));
        for bad in ["hook:copy_batch", "hook:copy_batch=count:1", "io:read32=range:9:3", "rtl:walk=rate:x"] {
            assert!(matches!(inj.add_text(bad), Err(InjectError::BadRule(_))), "{bad}");
        }
    }
}
