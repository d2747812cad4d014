//! Introspection for tests, reports and the CLI: per-page state, attributes, device
//! memory, metadata size, and a stable text dump of a space.

use crate::attrs::{DeviceId, RangeAttrs};
use crate::manager::{Gmem, GmemError, PageInfo, Placement, SpaceId};
use crate::mmu::{PAGE_SIZE, Prot};
use crate::page_table::{PageFlags, Residency};
use crate::state::Region;

impl Gmem {
    /// A space's logical page table and attributes as data, for reports and the CLI's
    /// JSON: per region, runs of pages in the same state (device frames contiguous),
    /// with offsets from the region's start so the result is stable across runs.
    /// Untouched pages are omitted. Nothing faults or moves.
    pub fn space_runs(&self, space: SpaceId) -> Result<Vec<RegionRuns>, GmemError> {
        let g = self.inner.lock();
        let sp = g.space(space)?;
        let mut out = Vec::new();
        for r in sp.regions.values() {
            let mut runs: Vec<PageRun> = Vec::new();
            for (vpn, e) in sp.pt.touched(r.start / PAGE_SIZE, r.len / PAGE_SIZE) {
                if e.state == Residency::Unpopulated && e.flags.is_empty() {
                    continue;
                }
                let page = PageRun::of(vpn * PAGE_SIZE - r.start, &e);
                match runs.last_mut() {
                    Some(last) if last.extended_by(&page) => last.pages += 1,
                    _ => runs.push(page),
                }
            }
            let attrs = sp
                .attrs
                .ranges()
                .into_iter()
                .filter(|&(s, e, _)| s >= r.start && e <= r.start + r.len)
                .map(|(s, e, attrs)| AttrRun { offset: s - r.start, end: e - r.start, attrs })
                .collect();
            out.push(RegionRuns { len: r.len, runs, attrs });
        }
        Ok(out)
    }

    /// [`Gmem::space_runs`] as stable text, for snapshot tests and reports: one line per
    /// run of pages, then the region's attribute ranges.
    pub fn dump_space(&self, space: SpaceId) -> Result<String, GmemError> {
        use std::fmt::Write as _;
        let mut out = String::new();
        for (i, region) in self.space_runs(space)?.iter().enumerate() {
            let _ = writeln!(out, "region {i}: {:#x} bytes", region.len);
            for run in &region.runs {
                let frames = run
                    .frame_pa
                    .map(|pa| format!(" frames {pa:#x}..{:#x}", pa + run.pages * PAGE_SIZE))
                    .unwrap_or_default();
                let _ = writeln!(out, "  +{:#08x} {:>4} x {}{frames}", run.offset, run.pages, run.describe());
            }
            for a in &region.attrs {
                let _ = writeln!(out, "  attrs +{:#08x}..+{:#08x} {:?}", a.offset, a.end, a.attrs);
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
        let zero = match e.state {
            Residency::Unpopulated => true,
            Residency::Cpu => self.inner.cpu.is_zero_page(va),
            _ => false,
        };
        Some(PageInfo {
            protection: sp.attrs.get(va).prot,
            zero,
            residency: e.state,
            device: e.holder(),
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

/// One region of [`Gmem::space_runs`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionRuns {
    /// The region's length in bytes.
    pub len: u64,
    /// Runs of touched pages in the same state, in address order.
    pub runs: Vec<PageRun>,
    /// Attribute ranges inside the region, in address order.
    pub attrs: Vec<AttrRun>,
}

/// Pages in the same state with contiguous device frames (if any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRun {
    /// Bytes from the region's start to the first page.
    pub offset: u64,
    /// Pages in the run.
    pub pages: u64,
    /// Where the authoritative copy is.
    pub residency: Residency,
    /// The device holding, duplicating or remotely mapping the pages.
    pub device: Option<DeviceId>,
    /// Rights of the device mapping (`None`: not mapped on a device).
    pub map: Option<Prot>,
    /// Mapped on the device to host pages through the host window.
    pub remote: bool,
    /// Pinned where they are (thrashing control).
    pub pinned: bool,
    /// Part of a 2 MiB device mapping.
    pub huge: bool,
    /// A migration is in flight.
    pub migrating: bool,
    /// Device address of the first page's frame (Device and Dup only).
    pub frame_pa: Option<u64>,
}

impl PageRun {
    fn of(offset: u64, e: &crate::page_table::PageEntry) -> Self {
        PageRun {
            offset,
            pages: 1,
            residency: e.state,
            device: e.holder(),
            map: (e.prot != 0).then(|| e.prot()),
            remote: e.flags.contains(PageFlags::REMOTE),
            pinned: e.flags.contains(PageFlags::PINNED),
            huge: e.flags.contains(PageFlags::HUGE),
            migrating: e.flags.contains(PageFlags::MIGRATING),
            frame_pa: e.on_device().then(|| e.pa()),
        }
    }

    /// Whether `next` (one page) continues this run: adjacent, same state, next frame.
    fn extended_by(&self, next: &PageRun) -> bool {
        let same = PageRun { offset: next.offset, pages: 1, frame_pa: next.frame_pa, ..self.clone() };
        self.offset + self.pages * PAGE_SIZE == next.offset
            && same == *next
            && self.frame_pa.map(|pa| pa + self.pages * PAGE_SIZE) == next.frame_pa
    }

    /// Rights of the device mapping as `rwx` with `-` for a missing right (`None`: not
    /// mapped on a device).
    pub fn map_rights(&self) -> Option<String> {
        self.map.map(|p| {
            [(Prot::READ, 'r'), (Prot::WRITE, 'w'), (Prot::EXEC, 'x')]
                .iter()
                .map(|&(bit, c)| if p.contains(bit) { c } else { '-' })
                .collect()
        })
    }

    /// The run's state in words: `cpu`, `dev0`, `cpu+dev0 (dup)`, then the device
    /// mapping's rights and flags (`map=rw- remote pinned 2M migrating`).
    pub fn describe(&self) -> String {
        let dev = self.device.map_or(0, |d| d.0);
        let mut d = match self.residency {
            Residency::Unpopulated => "unpopulated".to_string(),
            Residency::Cpu => "cpu".to_string(),
            Residency::Device => format!("dev{dev}"),
            Residency::Dup => format!("cpu+dev{dev} (dup)"),
        };
        if let Some(rights) = self.map_rights() {
            d.push_str(" map=");
            d.push_str(&rights);
        }
        for (set, name) in
            [(self.remote, " remote"), (self.pinned, " pinned"), (self.huge, " 2M"), (self.migrating, " migrating")]
        {
            if set {
                d.push_str(name);
            }
        }
        d
    }
}

/// An attribute range inside a region of [`Gmem::space_runs`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttrRun {
    /// Bytes from the region's start to the range's start.
    pub offset: u64,
    /// Bytes from the region's start to the range's end (exclusive).
    pub end: u64,
    /// The hint attributes in force.
    pub attrs: RangeAttrs,
}
