//! Introspection for tests, reports and the CLI: per-page state, attributes, device
//! memory, metadata size, and a stable text dump of a space.

use crate::attrs::{DeviceId, RangeAttrs};
use crate::manager::{Gmem, GmemError, PageInfo, Placement, SpaceId};
use crate::mmu::{PAGE_SIZE, Prot};
use crate::page_table::{PageFlags, Residency};
use crate::state::Region;

impl Gmem {
    /// A text rendering of a space's logical page table and attributes, for reports
    /// and snapshot tests: one line per run of pages in the same state (device frames
    /// contiguous), addresses as offsets from their region so the text is stable
    /// across runs. Untouched pages are omitted.
    pub fn dump_space(&self, space: SpaceId) -> Result<String, GmemError> {
        use std::fmt::Write as _;
        let g = self.inner.lock();
        let sp = g.space(space)?;
        let mut out = String::new();
        for (i, r) in sp.regions.values().enumerate() {
            let _ = writeln!(out, "region {i}: {:#x} bytes", r.len);
            let describe = |e: &crate::page_table::PageEntry| -> String {
                let mut d = match e.state {
                    Residency::Unpopulated => "unpopulated".to_string(),
                    Residency::Cpu => "cpu".to_string(),
                    Residency::Device => format!("dev{}", e.dev),
                    Residency::Dup => format!("cpu+dev{} (dup)", e.dev),
                };
                if e.prot != 0 {
                    let p = e.prot();
                    let _ = write!(
                        d,
                        " map={}{}{}",
                        if p.contains(Prot::READ) { "r" } else { "-" },
                        if p.contains(Prot::WRITE) { "w" } else { "-" },
                        if p.contains(Prot::EXEC) { "x" } else { "-" }
                    );
                }
                for (flag, name) in [
                    (PageFlags::REMOTE, " remote"),
                    (PageFlags::PINNED, " pinned"),
                    (PageFlags::HUGE, " 2M"),
                    (PageFlags::MIGRATING, " migrating"),
                ] {
                    if e.flags.contains(flag) {
                        d.push_str(name);
                    }
                }
                d
            };
            let pages = sp.pt.touched(r.start / PAGE_SIZE, r.len / PAGE_SIZE);
            let mut run: Option<(u64, u64, String, Option<u64>)> = None; // start vpn, count, text, first pfn
            let flush = |out: &mut String, run: &Option<(u64, u64, String, Option<u64>)>| {
                if let Some((v, n, text, pfn)) = run {
                    let off = v * PAGE_SIZE - r.start;
                    let frames = pfn.map(|p| format!(" frames {:#x}..{:#x}", p * PAGE_SIZE, (p + n) * PAGE_SIZE));
                    let _ = writeln!(out, "  +{off:#08x} {n:>4} x {text}{}", frames.unwrap_or_default());
                }
            };
            for (vpn, e) in pages {
                if e.state == Residency::Unpopulated && e.flags.is_empty() {
                    flush(&mut out, &run);
                    run = None;
                    continue;
                }
                let text = describe(&e);
                let pfn = e.on_device().then_some(u64::from(e.pfn));
                let extends =
                    run.as_ref().is_some_and(|(v, n, t, p)| *v + *n == vpn && *t == text && p.map(|p| p + *n) == pfn);
                if extends {
                    if let Some(r) = run.as_mut() {
                        r.1 += 1;
                    }
                } else {
                    flush(&mut out, &run);
                    run = Some((vpn, 1, text, pfn));
                }
            }
            flush(&mut out, &run);
            for (s, e, a) in sp.attrs.ranges() {
                if s >= r.start && e <= r.start + r.len {
                    let _ = writeln!(out, "  attrs +{:#08x}..+{:#08x} {a:?}", s - r.start, e - r.start);
                }
            }
        }
        Ok(out)
    }

    /// What the manager knows about the page holding `va` (`None` outside a region: a
    /// hole). Nothing faults or moves.
    pub fn page_info(&self, space: SpaceId, va: u64) -> Option<PageInfo> {
        let g = self.inner.lock();
        let sp = g.spaces.get(&space.0)?;
        sp.region_of(va)?;
        let e = sp.pt.get(va / PAGE_SIZE);
        let holds = e.on_device() || e.flags.contains(PageFlags::REMOTE);
        let zero = match e.state {
            Residency::Unpopulated => true,
            Residency::Cpu => self.inner.cpu.is_zero_page(va),
            _ => false,
        };
        Some(PageInfo {
            protection: sp.attrs.get(va).prot,
            zero,
            residency: e.state,
            device: holds.then_some(DeviceId(e.dev)),
            device_pa: e.on_device().then(|| e.pa()),
            prot: e.prot(),
            remote: e.flags.contains(PageFlags::REMOTE),
            pinned: e.flags.contains(PageFlags::PINNED),
            huge: e.flags.contains(PageFlags::HUGE),
            poisoned: e.flags.contains(PageFlags::POISONED),
        })
    }

    /// Where device `dev` finds the page holding `va` (`None` outside a region or for an
    /// unknown space). Nothing faults or moves.
    pub fn placement(&self, space: SpaceId, va: u64, dev: DeviceId) -> Option<Placement> {
        let g = self.inner.lock();
        let sp = g.spaces.get(&space.0)?;
        sp.region_of(va)?;
        let e = sp.pt.get(va / PAGE_SIZE);
        let mine = e.dev == dev.0;
        Some(match e.state {
            Residency::Unpopulated => Placement::Untouched,
            Residency::Device | Residency::Dup if mine => {
                Placement::Local { prot: e.prot(), huge: e.flags.contains(PageFlags::HUGE) }
            }
            Residency::Device => Placement::OtherDevice(DeviceId(e.dev)),
            _ if mine && e.flags.contains(PageFlags::REMOTE) => Placement::Remote { prot: e.prot() },
            _ => Placement::Host,
        })
    }

    /// The hint attributes in force at `va`.
    pub fn range_attrs(&self, space: SpaceId, va: u64) -> Option<RangeAttrs> {
        let g = self.inner.lock();
        g.spaces.get(&space.0).map(|sp| sp.attrs.get(va))
    }

    /// Free and total 4 KiB frames of a device.
    pub fn device_pages(&self, dev: DeviceId) -> Option<(u64, u64)> {
        let g = self.inner.lock();
        g.devices.get(dev.0 as usize).map(|s| (s.buddy.free_pages(), s.buddy.total_pages()))
    }

    /// Heap bytes of the space's logical page table and attribute tree (for the
    /// bytes-per-page budget).
    pub fn metadata_bytes(&self, space: SpaceId) -> Option<usize> {
        let g = self.inner.lock();
        let sp = g.spaces.get(&space.0)?;
        Some(sp.pt.heap_bytes() + sp.attrs.ranges().len() * 48 + sp.regions.len() * std::mem::size_of::<Region>())
    }
}
