//! The logical page table: where each page of an address space lives.
//!
//! This is the manager's own record, not a hardware page table. One [`PageEntry`] (12
//! bytes) per 4 KiB page, stored in chunks of 512 entries (one chunk per 2 MiB of VA)
//! that are allocated on the first change inside the chunk. A reservation that is never
//! touched therefore costs nothing here; a touched 2 MiB costs one 6 KiB chunk plus one
//! ordered-map entry.
//!
//! Every change goes through [`PageTable::update`], which bumps the page's sequence
//! number: a migration records the number when it collects a page and re-checks it at
//! commit, so any change that raced the copy is noticed (the HMM habit).

use std::collections::BTreeMap;

use bitflags::bitflags;

use crate::mmu::{PAGES_PER_HUGE, Prot};

/// Where the authoritative copy of a page is.
#[repr(u8)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Residency {
    /// Never written anywhere: reads as zeros; no CPU page, no device frame.
    #[default]
    Unpopulated = 0,
    /// The CPU page is present and authoritative. A device may map it remotely
    /// ([`PageFlags::REMOTE`]).
    Cpu = 1,
    /// Only device `dev` has the data, in frame `pfn`; the CPU page is a hole.
    Device = 2,
    /// Read-duplicated: the CPU page is present and write-protected, device `dev` holds
    /// an identical read-only copy in `pfn`.
    Dup = 3,
}

bitflags! {
    /// Per-page flags.
    #[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
    pub struct PageFlags: u8 {
        /// A migration of this page is between collect and finalize.
        const MIGRATING = 1 << 0;
        /// ... and its source is the CPU page (a CPU write invalidates it instead of waiting).
        const FROM_CPU = 1 << 1;
        /// Pinned on the CPU by the thrashing detector; devices map it remotely.
        const PINNED = 1 << 2;
        /// Device `dev` maps the CPU page remotely (in place over the host port).
        const REMOTE = 1 << 3;
        /// The device mapping is part of a 2 MiB mapping (all 512 pages of the chunk).
        const HUGE = 1 << 4;
        /// The manager write-protected the CPU page (userfaultfd WP).
        const CPU_WP = 1 << 5;
        /// Poisoned: the CPU gave up bringing the page back from device `dev` (the copy
        /// kept failing). The data stays on the device, which keeps its mapping; CPU
        /// touches raise SIGBUS at the page and migrations off the device are refused,
        /// until the region is unmapped.
        const POISONED = 1 << 6;
    }
}

/// One page's record: 12 bytes.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PageEntry {
    /// Device frame number (device byte address / 4 KiB) when `state` is Device or Dup.
    pub pfn: u32,
    /// Sequence number, bumped by every [`PageTable::update`].
    pub seq: u32,
    /// Residency.
    pub state: Residency,
    /// Device index (Device, Dup, or REMOTE mapping).
    pub dev: u8,
    /// Flags.
    pub flags: PageFlags,
    /// Rights of the device mapping (`Prot::empty()` = not mapped on the device).
    pub prot: u8,
}

impl PageEntry {
    /// Rights of the device mapping.
    pub fn prot(&self) -> Prot {
        Prot::from_bits_truncate(self.prot)
    }

    /// Whether some device holds a frame with this page's data.
    pub fn on_device(&self) -> bool {
        matches!(self.state, Residency::Device | Residency::Dup)
    }

    /// The device that holds this page's frame or maps it remotely, if any.
    pub fn holder(&self) -> Option<crate::types::DeviceId> {
        (self.on_device() || self.flags.contains(PageFlags::REMOTE)).then_some(crate::types::DeviceId(self.dev))
    }

    /// Device byte address of the frame.
    pub fn pa(&self) -> u64 {
        u64::from(self.pfn) * crate::mmu::PAGE_SIZE
    }
}

const CHUNK: usize = PAGES_PER_HUGE as usize;

#[derive(Debug)]
struct Chunk {
    entries: [PageEntry; CHUNK],
    /// Entries in state Device or Dup.
    on_device: u16,
}

/// A sparse logical page table (one per address space), keyed by virtual page number.
#[derive(Debug, Default)]
pub struct PageTable {
    chunks: BTreeMap<u64, Box<Chunk>>,
}

impl PageTable {
    /// Empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The entry of `vpn` (a default, Unpopulated entry when never touched).
    pub fn get(&self, vpn: u64) -> PageEntry {
        self.chunks.get(&(vpn / CHUNK as u64)).map(|c| c.entries[(vpn % CHUNK as u64) as usize]).unwrap_or_default()
    }

    /// Change the entry of `vpn`; bumps its sequence number. Returns the new entry.
    pub fn update(&mut self, vpn: u64, f: impl FnOnce(&mut PageEntry)) -> PageEntry {
        let chunk = self
            .chunks
            .entry(vpn / CHUNK as u64)
            .or_insert_with(|| Box::new(Chunk { entries: [PageEntry::default(); CHUNK], on_device: 0 }));
        let e = &mut chunk.entries[(vpn % CHUNK as u64) as usize];
        let was = e.on_device();
        f(e);
        e.seq = e.seq.wrapping_add(1);
        let now = e.on_device();
        let out = *e;
        match (was, now) {
            (false, true) => chunk.on_device += 1,
            (true, false) => chunk.on_device -= 1,
            _ => {}
        }
        out
    }

    /// Pages of the 2 MiB chunk `chunk_idx` that are on a device.
    pub fn chunk_on_device(&self, chunk_idx: u64) -> u32 {
        self.chunks.get(&chunk_idx).map_or(0, |c| u32::from(c.on_device))
    }

    /// Touched pages in `[vpn, vpn+count)`: every entry of an allocated chunk.
    pub fn touched(&self, vpn: u64, count: u64) -> Vec<(u64, PageEntry)> {
        self.touched_iter(vpn, count).collect()
    }

    /// How many entries [`PageTable::touched`] returns, without reading them.
    pub fn touched_len(&self, vpn: u64, count: u64) -> u64 {
        self.spans(vpn, count).map(|(_, c)| c.len() as u64).sum()
    }

    /// [`PageTable::touched`] one entry at a time, in page order, collecting nothing.
    pub fn touched_iter(&self, vpn: u64, count: u64) -> impl Iterator<Item = (u64, PageEntry)> + '_ {
        self.spans(vpn, count).flat_map(|(first, entries)| entries.iter().zip(first..).map(|(e, v)| (v, *e)))
    }

    /// The allocated chunks' parts inside `[vpn, vpn+count)`: (first page, entries).
    fn spans(&self, vpn: u64, count: u64) -> impl Iterator<Item = (u64, &[PageEntry])> + '_ {
        let end = vpn + count;
        let (first, last) = (vpn / CHUNK as u64, end.saturating_sub(1) / CHUNK as u64);
        let chunks = if count == 0 { self.chunks.range(1..1) } else { self.chunks.range(first..=last) };
        chunks.map(move |(&ci, c)| {
            let base = ci * CHUNK as u64;
            let lo = vpn.saturating_sub(base).min(CHUNK as u64) as usize;
            let hi = (end - base).min(CHUNK as u64) as usize;
            (base + lo as u64, &c.entries[lo..hi])
        })
    }

    /// Forget `[vpn, vpn+count)` (chunks entirely inside are freed).
    pub fn remove(&mut self, vpn: u64, count: u64) {
        let end = vpn + count;
        let first = vpn / CHUNK as u64;
        let last = (end - 1) / CHUNK as u64;
        let keys: Vec<u64> = self.chunks.range(first..=last).map(|(k, _)| *k).collect();
        for k in keys {
            let cs = k * CHUNK as u64;
            if cs >= vpn && cs + CHUNK as u64 <= end {
                self.chunks.remove(&k);
            } else if let Some(c) = self.chunks.get_mut(&k) {
                for i in 0..CHUNK {
                    let v = cs + i as u64;
                    if v >= vpn && v < end {
                        if c.entries[i].on_device() {
                            c.on_device -= 1;
                        }
                        c.entries[i] = PageEntry::default();
                    }
                }
            }
        }
    }

    /// Number of allocated chunks.
    pub fn chunks(&self) -> usize {
        self.chunks.len()
    }

    /// Approximate heap bytes used: chunks plus the ordered map's nodes (estimated as
    /// 2x the key and pointer size per chunk, a B-tree's worst fill).
    pub fn heap_bytes(&self) -> usize {
        self.chunks.len() * (std::mem::size_of::<Chunk>() + 2 * (8 + 8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_is_twelve_bytes() {
        assert_eq!(std::mem::size_of::<PageEntry>(), 12);
    }

    #[test]
    fn update_bumps_seq_and_counts() {
        let mut pt = PageTable::new();
        assert_eq!(pt.get(5), PageEntry::default());
        let e = pt.update(5, |e| {
            e.state = Residency::Device;
            e.pfn = 7;
        });
        assert_eq!(e.seq, 1);
        assert_eq!(pt.chunk_on_device(0), 1);
        pt.update(5, |e| e.state = Residency::Cpu);
        assert_eq!(pt.chunk_on_device(0), 0);
        assert_eq!(pt.get(5).seq, 2);
        pt.update(600, |e| e.state = Residency::Dup);
        assert_eq!(pt.touched(0, 1024).len(), 1024);
        pt.remove(0, 512);
        assert_eq!(pt.chunks(), 1);
        pt.remove(512, 50);
        assert_eq!(pt.get(600).state, Residency::Dup);
        assert_eq!(pt.chunk_on_device(1), 1);
        pt.remove(512, 512);
        assert_eq!(pt.chunks(), 0);
    }

    #[test]
    fn touched_ranges_cut_chunks_where_the_range_does() {
        let mut pt = PageTable::default();
        let c = CHUNK as u64;
        pt.update(3, |e| e.state = Residency::Cpu);
        pt.update(2 * c + 7, |e| e.state = Residency::Cpu);
        // Chunks 0 and 2 are allocated, chunk 1 is not: a range from page 5 of chunk 0
        // to page 9 of chunk 2 touches c - 5 + 10 entries.
        let (vpn, count) = (5, 2 * c + 10 - 5);
        let all = pt.touched(vpn, count);
        assert_eq!(all.len() as u64, c - 5 + 10);
        assert_eq!(pt.touched_len(vpn, count), all.len() as u64);
        assert_eq!((all[0].0, all.last().unwrap().0), (5, 2 * c + 9));
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "in page order");
        assert_eq!(
            all.iter().filter(|(_, e)| e.state == Residency::Cpu).map(|(v, _)| *v).collect::<Vec<_>>(),
            [2 * c + 7]
        );
        assert_eq!((pt.touched_len(vpn, 0), pt.touched(c, c).len()), (0, 0), "empty, and an untouched chunk");
    }
}
