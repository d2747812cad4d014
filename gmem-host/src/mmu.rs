//! The `GmMmu` trait: what the generic manager needs of a device.
//!
//! The trait is written from the manager's side (the consumer). A device crate
//! (the NPU over co-simulation or VFIO, or the in-crate [`SoftDevice`](crate::softdev::SoftDevice))
//! implements it. Hooks come in two kinds:
//!
//! * **required** hooks have no default body, so the compiler enforces them:
//!   [`GmMmu::info`], [`GmMmu::pmap_create`], [`GmMmu::pmap_destroy`], [`GmMmu::pmap_enter`],
//!   [`GmMmu::pmap_release`], [`GmMmu::pmap_protect`], [`GmMmu::tlb_invl`],
//!   [`GmMmu::prepare_page`] and [`GmMmu::copy_batch`];
//! * **optional** hooks have a default body and must be *declared* in
//!   [`DeviceInfo::hooks`] ([`Hooks`]). The manager only calls an optional hook the device
//!   declared, and [`Gmem::register_device`](crate::Gmem::register_device) rejects a device
//!   that lacks a hook the manager's [`Config::require_hooks`](crate::Config) asks for.
//!
//! # Addresses
//! * Virtual addresses are the *host* virtual addresses of `PEER_SHARED` regions: the
//!   manager places every region inside the VA window every attached device can
//!   translate ([`DeviceInfo::va_bits`]), so one pointer means the same bytes on the CPU
//!   and on the device.
//! * Device physical addresses are `u64` byte offsets into the device's memory
//!   ([`MemAddr::Device`]). The manager owns the allocator (a buddy allocator over the
//!   ranges in [`DeviceInfo::mem_ranges`]); the device never allocates on its own.
//! * Host memory is named as [`MemAddr::Host`]: a *registered host region* plus an
//!   offset. Before naming any byte of host memory in a copy or a mapping, the manager
//!   registers the region with [`GmMmu::dma_map_host`] (when the device declares
//!   [`Hooks::DMA_MAP_HOST`]). Two kinds exist:
//!   - the manager-owned **staging pool** ([`HostRegionKind::Staging`]): page-aligned,
//!     present and never moved while registered. A device may map it for DMA eagerly
//!     (IOMMU map / pin at registration). All device→host traffic lands here first, then
//!     the manager installs the page into the CPU mapping atomically (UFFDIO_COPY).
//!   - a **`PEER_SHARED` region** ([`HostRegionKind::PeerShared`]): the CPU's own pages of a
//!     managed range. They are *not* all present (pages that live on a device are holes
//!     served by userfaultfd), so a device must not pin the whole region at registration;
//!     it should map the pages it is handed lazily. The manager only names such a page
//!     (as a copy source or a remote-mapping target) while the page is present and
//!     CPU-owned, and keeps it present until the copy returned or the mapping was released
//!     and its TLB flush completed. A pin or IOMMU mapping a device takes for such a
//!     page must be dropped by then too (when `copy_batch` or `copy_finish` returns; in
//!     `pmap_release` for a remote mapping): the manager may drop the CPU page right
//!     afterwards, and a pin would keep the old physical page alive behind the process's
//!     back.

use std::fmt;

use bitflags::bitflags;

/// Size of a base page, in bytes.
pub const PAGE_SIZE: u64 = 4096;
/// Size of a huge page (a Sv39 megapage), in bytes.
pub const HUGE_PAGE_SIZE: u64 = 2 << 20;
/// Base pages per huge page.
pub const PAGES_PER_HUGE: u64 = HUGE_PAGE_SIZE / PAGE_SIZE;

/// An address-space identifier chosen by the device in [`GmMmu::pmap_create`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Asid(pub u32);

/// Identifies a host region registered with [`GmMmu::dma_map_host`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostRegionId(pub u32);

bitflags! {
    /// Access rights of a device mapping.
    #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
    pub struct Prot: u8 {
        /// Loads allowed.
        const READ = 1;
        /// Stores allowed.
        const WRITE = 2;
        /// Instruction fetch allowed.
        const EXEC = 4;
    }
}

bitflags! {
    /// The optional hooks a device implements. Declared in [`DeviceInfo::hooks`].
    #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
    pub struct Hooks: u32 {
        /// [`GmMmu::peer_va_alloc_fixed`] and [`GmMmu::peer_va_free`].
        const PEER_VA = 1 << 0;
        /// [`GmMmu::alloc_page`] and [`GmMmu::free_page`].
        const PAGE_NOTIFY = 1 << 1;
        /// A native [`GmMmu::tlb_invl_coalesced`] (otherwise the default loops over `tlb_invl`).
        const TLB_COALESCED = 1 << 2;
        /// [`GmMmu::peer_map`] and [`GmMmu::peer_unmap`].
        const PEER_MAP = 1 << 3;
        /// [`GmMmu::dma_map_host`] and [`GmMmu::dma_unmap_host`].
        const DMA_MAP_HOST = 1 << 4;
        /// [`GmMmu::test_and_clear_accessed`].
        const ACCESSED_BITS = 1 << 5;
        /// The device can map host memory ([`MemAddr::Host`]) in its page tables, which
        /// remote mappings (ACCESSED_BY, thrashing pins) need.
        const HOST_MAPPING = 1 << 6;
        /// A native [`GmMmu::copy_start`] and [`GmMmu::copy_finish`]: a started copy runs
        /// while the manager does other work (otherwise the defaults copy in `copy_start`,
        /// and the manager does not split a migration into pipelined parts).
        const ASYNC_COPY = 1 << 7;
    }
}

/// Rights of the manager's writable device mappings. Managed memory is data; it is
/// mapped executable too because the device's fetches (kernel descriptors) are
/// ordinary reads of shared memory, and an exec fault must not livelock.
pub const RW: Prot = Prot::READ.union(Prot::WRITE).union(Prot::EXEC);
/// Rights of read-only (read-duplicated) device mappings.
pub const RO: Prot = Prot::READ.union(Prot::EXEC);

/// A page size the device MMU maps.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum PageSize {
    /// 4 KiB.
    Base,
    /// 2 MiB, naturally aligned in VA and in device memory.
    Huge,
}

impl PageSize {
    /// Bytes in one page of this size.
    pub const fn bytes(self) -> u64 {
        match self {
            PageSize::Base => PAGE_SIZE,
            PageSize::Huge => HUGE_PAGE_SIZE,
        }
    }
}

/// Where a copy reads or writes, or what a mapping points at.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum MemAddr {
    /// Byte offset in the device's memory.
    Device(u64),
    /// Byte offset inside a registered host region.
    Host {
        /// The region, registered with [`GmMmu::dma_map_host`].
        region: HostRegionId,
        /// Byte offset inside it.
        offset: u64,
    },
}

impl fmt::Display for MemAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemAddr::Device(pa) => write!(f, "dev:{pa:#x}"),
            MemAddr::Host { region, offset } => write!(f, "host{}:{offset:#x}", region.0),
        }
    }
}

/// A half-open range of virtual addresses.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VaRange {
    /// First byte.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
}

impl VaRange {
    /// One past the last byte.
    pub const fn end(&self) -> u64 {
        self.start + self.len
    }
}

impl fmt::Display for VaRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}, {:#x})", self.start, self.end())
    }
}

/// One element of a [`GmMmu::copy_batch`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CopyOp {
    /// Source.
    pub src: MemAddr,
    /// Destination.
    pub dst: MemAddr,
    /// Bytes; a multiple of [`PAGE_SIZE`], never crossing the end of either side.
    pub len: u64,
}

/// A copy [`GmMmu::copy_start`] started; [`GmMmu::copy_finish`] waits for it. The
/// number is the device's own (0: the copy already ended in `copy_start`).
#[must_use = "a started copy must be finished with GmMmu::copy_finish"]
#[derive(Debug, PartialEq, Eq)]
pub struct CopyTicket(u64);

impl CopyTicket {
    /// A copy that ended in [`GmMmu::copy_start`] (what the default returns).
    pub const DONE: CopyTicket = CopyTicket(0);

    /// Ticket number `id` of a device's own numbering (0 means [`CopyTicket::DONE`]).
    pub const fn new(id: u64) -> Self {
        CopyTicket(id)
    }

    /// The ticket's number.
    pub const fn id(&self) -> u64 {
        self.0
    }
}

/// How [`GmMmu::prepare_page`] fills a freshly allocated frame.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Prepare {
    /// Fill with zeros.
    Zero,
    /// Copy the same number of bytes from this address.
    CopyFrom(MemAddr),
}

/// One element of a [`GmMmu::peer_map`]: prepare a frame and map it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PeerMapOp {
    /// Virtual address to map.
    pub va: u64,
    /// Device frame.
    pub pa: u64,
    /// Page size.
    pub size: PageSize,
    /// Rights of the new mapping.
    pub prot: Prot,
    /// How to fill the frame before it becomes visible.
    pub fill: Prepare,
}

/// The kind of a registered host region; see the module docs.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum HostRegionKind {
    /// The manager's staging pool: always present, never moved.
    Staging,
    /// A `PEER_SHARED` region of an address space: pages may be absent.
    PeerShared,
}

/// A host region the device may be asked to reach by DMA or map.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct HostRegion {
    /// Its identifier in [`MemAddr::Host`].
    pub id: HostRegionId,
    /// Kind.
    pub kind: HostRegionKind,
    /// Host virtual address of its first byte (page-aligned).
    pub va: u64,
    /// Length in bytes (page multiple).
    pub len: u64,
}

/// What a device tells the manager about itself at registration.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// Human-readable name, used in events and errors.
    pub name: String,
    /// Device-memory ranges the manager may allocate from (the device keeps its page
    /// tables and rings outside them). Each range must be 4 KiB-aligned.
    pub mem_ranges: Vec<std::ops::Range<u64>>,
    /// Virtual-address bits the device MMU translates (39 for Sv39).
    pub va_bits: u8,
    /// Whether [`PageSize::Huge`] mappings are supported.
    pub huge_pages: bool,
    /// The optional hooks this device implements.
    pub hooks: Hooks,
}

/// The error every hook returns.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MmuError {
    /// The hook is not implemented (an optional hook the device did not declare).
    #[error("hook `{hook}` is not supported by this device")]
    Unsupported {
        /// Hook name.
        hook: &'static str,
    },
    /// The device ran out of a resource (page-table memory, ASIDs, queue slots).
    #[error("device out of {what}")]
    NoResources {
        /// What ran out.
        what: &'static str,
    },
    /// A DMA transfer failed; `index` is the failing element of the batch.
    #[error("DMA failed at batch element {index} ({src} -> {dst}): {reason}")]
    Dma {
        /// Index into the batch.
        index: usize,
        /// Its source.
        src: MemAddr,
        /// Its destination.
        dst: MemAddr,
        /// Device-reported reason.
        reason: String,
    },
    /// The device could not update its page table at `va`.
    #[error("page-table update failed at va {va:#x}: {reason}")]
    PageTable {
        /// Virtual address.
        va: u64,
        /// Device-reported reason.
        reason: String,
    },
    /// The device or its transport failed in `hook` outside any one page (a queue, a
    /// DMA mapping of host memory, a register write).
    #[error("device failure in `{hook}`: {reason}")]
    Device {
        /// Hook name.
        hook: &'static str,
        /// What failed.
        reason: String,
    },
    /// An unknown ASID was passed.
    #[error("unknown ASID {0}")]
    UnknownAsid(u32),
    /// The device did not answer in time (time is the transport's, not the wall clock).
    #[error("device timed out in `{hook}`")]
    Timeout {
        /// Hook name.
        hook: &'static str,
    },
    /// A failure injected by a test harness.
    #[error("injected failure in `{hook}`")]
    Injected {
        /// Hook name.
        hook: &'static str,
    },
}

/// Proof that a device mapping was removed or narrowed and its stale TLB entries must
/// be invalidated before the old frame or the old rights may be reused.
///
/// Returned by [`GmMmu::pmap_release`], [`GmMmu::pmap_protect`] and
/// [`GmMmu::peer_unmap`]. Consume it with [`TlbFlush::flush`], by adding it to an
/// [`InvalidationBatch`] (which coalesces ranges), or with [`TlbFlush::ignore`] when the
/// caller knows no TLB can hold the entry. Dropping it unconsumed is a bug and is
/// reported as a `tracing` error.
#[must_use = "the old translation stays in the device TLB until this is flushed"]
#[derive(Debug)]
pub struct TlbFlush {
    asid: Asid,
    range: Option<VaRange>,
    armed: bool,
}

impl TlbFlush {
    /// A flush of `len` bytes at `va` in `asid`.
    pub fn new(asid: Asid, va: u64, len: u64) -> Self {
        TlbFlush { asid, range: Some(VaRange { start: va, len }), armed: true }
    }

    /// Nothing to flush (the entry was not valid, so no TLB can hold it).
    pub fn none(asid: Asid) -> Self {
        TlbFlush { asid, range: None, armed: false }
    }

    /// The address space.
    pub fn asid(&self) -> Asid {
        self.asid
    }

    /// The range to invalidate, if any.
    pub fn range(&self) -> Option<VaRange> {
        self.range
    }

    /// Invalidate now, with a single [`GmMmu::tlb_invl`].
    pub fn flush(mut self, mmu: &dyn GmMmu) -> Result<(), MmuError> {
        self.armed = false;
        match self.range {
            Some(r) => mmu.tlb_invl(self.asid, r),
            None => Ok(()),
        }
    }

    /// Drop without invalidating. Only correct when no TLB can hold the old entry.
    pub fn ignore(mut self) {
        self.armed = false;
    }
}

impl Drop for TlbFlush {
    fn drop(&mut self) {
        if self.armed {
            tracing::error!(asid = self.asid.0, range = ?self.range, "TlbFlush dropped without flush");
        }
    }
}

/// Collects [`TlbFlush`] tokens of one operation and issues the fewest invalidations:
/// ranges are sorted and merged when they touch or overlap, then handed to
/// [`GmMmu::tlb_invl_coalesced`] once per address space.
#[derive(Debug, Default)]
#[must_use = "collected invalidations must be flushed"]
pub struct InvalidationBatch {
    ranges: Vec<(Asid, VaRange)>,
}

impl InvalidationBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Take ownership of a token.
    pub fn push(&mut self, mut token: TlbFlush) {
        token.armed = false;
        if let Some(r) = token.range {
            self.ranges.push((token.asid, r));
        }
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The coalesced ranges, sorted, per ASID.
    pub fn coalesced(&self) -> Vec<(Asid, Vec<VaRange>)> {
        let mut v = self.ranges.clone();
        if !v.is_sorted() {
            v.sort_unstable();
        }
        let mut out: Vec<(Asid, Vec<VaRange>)> = Vec::new();
        for (asid, r) in v {
            match out.last_mut() {
                Some((a, rs)) if *a == asid => match rs.last_mut() {
                    Some(last) if r.start <= last.end() => {
                        let end = last.end().max(r.end());
                        last.len = end - last.start;
                    }
                    _ => rs.push(r),
                },
                _ => out.push((asid, vec![r])),
            }
        }
        out
    }

    /// Take the coalesced ranges out, leaving the batch empty (for callers that issue the
    /// invalidations themselves, e.g. with retries).
    pub fn take_coalesced(mut self) -> Vec<(Asid, Vec<VaRange>)> {
        let groups = self.coalesced();
        self.ranges.clear();
        groups
    }

    /// Issue the invalidations. On error the remaining ranges are still attempted and the
    /// first error is returned.
    pub fn flush(mut self, mmu: &dyn GmMmu) -> Result<usize, MmuError> {
        let groups = self.coalesced();
        self.ranges.clear();
        let mut first_err = None;
        let mut n = 0;
        for (asid, rs) in groups {
            n += rs.len();
            if let Err(e) = mmu.tlb_invl_coalesced(asid, &rs) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }
}

impl Drop for InvalidationBatch {
    fn drop(&mut self) {
        if !self.ranges.is_empty() {
            tracing::error!(n = self.ranges.len(), "InvalidationBatch dropped without flush");
        }
    }
}

/// Host software work the manager just did between device operations, for
/// [`GmMmu::host_work`]. A migration's work is its own item ([`HostWork::Migration`]),
/// told once its copies are done, before its pages are published (mapped on the
/// device, installed for the CPU, their waiters woken); the others do not include it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostWork {
    /// A batch of `faults` device faults was handled: the records, the planning and
    /// the answers.
    FaultBatch {
        /// Fault records in the batch.
        faults: usize,
    },
    /// One CPU fault (a userfaultfd event) was received and answered.
    CpuFault,
    /// A memory hint (`hmadvise`) was applied.
    Hint {
        /// Entries of the logical page table it walked: those of the range's touched
        /// 2 MiB chunks for `PREFETCH` and `DONTNEED`, 0 for an attribute hint.
        pages: u64,
    },
    /// One migration round copied pages between host and device memory: protecting or
    /// unmapping the sources, the copies' set-up, installing or dropping the CPU copies,
    /// page-table updates. Rounds without a copy (first-touch zero-fills, remote
    /// mappings) are not told.
    Migration {
        /// Pages copied host -> device.
        to_device: u64,
        /// Pages copied device -> host.
        to_host: u64,
    },
    /// A later part of a migration round pipelined in parts ([`Hooks::ASYNC_COPY`],
    /// [`Config::part_pages`](crate::Config)): its pages' work and its own commit (the
    /// lock, the system calls of its runs); the round's set-up was the first part's,
    /// told as [`HostWork::Migration`].
    MigrationPart {
        /// Pages copied host -> device.
        to_device: u64,
        /// Pages copied device -> host.
        to_host: u64,
    },
}

/// The device hooks. See the module docs for addresses and required/optional rules.
///
/// All hooks may be called from several threads (the manager's fault path, the
/// userfaultfd handler thread); the manager never calls two hooks for the *same page*
/// concurrently. Hooks must not call back into the manager.
///
/// Errors: every hook reports failure as an [`MmuError`] and must leave the device as if
/// the call had not happened (or, for batches, say which element failed). The manager
/// treats an error as "this step did not happen": it rolls the operation back, keeps the
/// data where it was, returns the frames it allocated, and reports a typed error to its
/// caller ([`FaultResolution::Abort`](crate::FaultResolution) naming the VA for a fault,
/// [`GmemError`](crate::GmemError) for API calls). Page-table and copy hooks are called
/// with the manager's lock held except [`GmMmu::copy_batch`], [`GmMmu::copy_start`],
/// [`GmMmu::copy_finish`] and zero-filling [`GmMmu::prepare_page`] (phase 2 of a
/// migration), so other faults never wait behind a slow DMA copy.
pub trait GmMmu: Send + Sync {
    /// Required. Static facts about the device; called once, at registration.
    fn info(&self) -> DeviceInfo;

    /// Required. Create an empty device page table (an address space) and return its
    /// ASID. Errors: [`MmuError::NoResources`] when ASIDs or page-table memory run out.
    fn pmap_create(&self) -> Result<Asid, MmuError>;

    /// Required. Destroy an address space. The manager has released every mapping in it
    /// and flushed the TLB first; the device frees its page-table memory.
    fn pmap_destroy(&self, asid: Asid) -> Result<(), MmuError>;

    /// Required. Map one page at `va` (aligned to `size`) to `target` with `prot`.
    /// May assume: no mapping exists at `va` (the manager releases first), `target` is a
    /// frame the manager allocated (or a registered host page when the device declared
    /// [`Hooks::HOST_MAPPING`]). Must guarantee: once it returns, a device access to `va`
    /// that `prot` allows succeeds without a fault. Adding rights needs no TLB flush.
    fn pmap_enter(&self, asid: Asid, va: u64, target: MemAddr, size: PageSize, prot: Prot) -> Result<(), MmuError>;

    /// Required. Remove the mapping of the page at `va` of `size`. Must guarantee: no new
    /// translation of `va` is created from the page table; stale TLB entries may remain
    /// until the returned token is flushed. Releasing an absent mapping returns
    /// [`TlbFlush::none`].
    fn pmap_release(&self, asid: Asid, va: u64, size: PageSize) -> Result<TlbFlush, MmuError>;

    /// Required. Change the rights of an existing mapping. Narrowing returns a token that
    /// must be flushed before the manager relies on the narrowed rights.
    fn pmap_protect(&self, asid: Asid, va: u64, size: PageSize, prot: Prot) -> Result<TlbFlush, MmuError>;

    /// Required. Invalidate TLB entries of `asid` overlapping `range` and wait until the
    /// invalidation completed (a fence): afterwards no access uses the old translation.
    fn tlb_invl(&self, asid: Asid, range: VaRange) -> Result<(), MmuError>;

    /// Required. Fill the frame at device address `pa` (zero-fill or copy in) before the
    /// manager maps it. Must guarantee: the contents are in place when it returns.
    fn prepare_page(&self, pa: u64, size: PageSize, how: Prepare) -> Result<(), MmuError>;

    /// Required. Move every element of `ops` with the device DMA engine (in any order or
    /// concurrently: the manager never passes overlapping destinations) and wait for
    /// completion. On failure returns [`MmuError::Dma`] naming the first failing element;
    /// destinations of failed elements have undefined contents, sources are untouched.
    fn copy_batch(&self, ops: &[CopyOp]) -> Result<(), MmuError>;

    /// Optional ([`Hooks::ASYNC_COPY`]). Start [`GmMmu::copy_batch`]'s work and return
    /// without waiting for it; [`GmMmu::copy_finish`] waits and reports the result.
    /// May assume: the manager leaves the sources unchanged and the destinations unused
    /// until `copy_finish` of the ticket returned, and finishes every ticket it started.
    /// Must guarantee: errors as `copy_batch`'s, from either call; a device may finish a
    /// started copy early (when another operation needs its engine), never lose its
    /// result. The default copies right here and returns [`CopyTicket::DONE`].
    fn copy_start(&self, ops: &[CopyOp]) -> Result<CopyTicket, MmuError> {
        self.copy_batch(ops).map(|()| CopyTicket::DONE)
    }

    /// Optional ([`Hooks::ASYNC_COPY`]). Wait until the copy of `ticket` ended, and
    /// report it as [`GmMmu::copy_batch`] would. The default has nothing to wait for.
    fn copy_finish(&self, ticket: CopyTicket) -> Result<(), MmuError> {
        let _ = ticket;
        Ok(())
    }

    /// Optional ([`Hooks::ASYNC_COPY`]). During [`crate::Gmem::dev_fault`], after each
    /// part of a pipelined migration that commits while a later part still copies: the
    /// faults at these indices of the batch (as passed to `dev_fault`; possibly none) are
    /// resolved, their pages mapped as their access needs, so the device may replay them
    /// now and its requesters go on while the rest of the batch moves. The device's
    /// tables hold every mapping made so far once its queued edits are written, so a
    /// device may also answer faults raised since the batch began on pages now mapped.
    /// Must guarantee: nothing; a device that does not replay early ignores the call.
    /// May assume: each index is reported at most once per batch, and `dev_fault` still
    /// returns a resolution for every fault ([`crate::FaultResolution::Retry`] for
    /// these); a device that replayed a fault here must not answer it again.
    fn faults_resolved(&self, faults: &[usize]) {
        let _ = faults;
    }

    /// Optional ([`Hooks::TLB_COALESCED`]). Invalidate several sorted, disjoint ranges with
    /// one fence. The default issues one [`GmMmu::tlb_invl`] per range.
    fn tlb_invl_coalesced(&self, asid: Asid, ranges: &[VaRange]) -> Result<(), MmuError> {
        for r in ranges {
            self.tlb_invl(asid, *r)?;
        }
        Ok(())
    }

    /// Optional ([`Hooks::PEER_VA`]). Reserve `[va, va+len)` in the device's VA space
    /// (the manager chose `va` so that the host mapping lives at the same address).
    fn peer_va_alloc_fixed(&self, asid: Asid, va: u64, len: u64) -> Result<(), MmuError> {
        let _ = (asid, va, len);
        Err(MmuError::Unsupported { hook: "peer_va_alloc_fixed" })
    }

    /// Optional ([`Hooks::PEER_VA`]). Undo [`GmMmu::peer_va_alloc_fixed`]; every mapping
    /// inside was released first.
    fn peer_va_free(&self, asid: Asid, va: u64, len: u64) -> Result<(), MmuError> {
        let _ = (asid, va, len);
        Err(MmuError::Unsupported { hook: "peer_va_free" })
    }

    /// Optional ([`Hooks::PAGE_NOTIFY`]). The manager took the frame `pa` from its
    /// allocator; the device may refuse it (e.g. a retired, poisoned frame), in which
    /// case the manager gives the frame back and fails the operation.
    fn alloc_page(&self, pa: u64, size: PageSize) -> Result<(), MmuError> {
        let _ = (pa, size);
        Err(MmuError::Unsupported { hook: "alloc_page" })
    }

    /// Optional ([`Hooks::PAGE_NOTIFY`]). The frame `pa` returns to the allocator; it is
    /// unmapped everywhere and its TLB entries were flushed.
    fn free_page(&self, pa: u64, size: PageSize) {
        let _ = (pa, size);
    }

    /// Optional ([`Hooks::PEER_MAP`]). Prepare and map a batch of pages in one device
    /// round trip. Used for first-touch (zero-fill) pages, where no other copy exists.
    /// On error, no page of the batch is mapped.
    fn peer_map(&self, asid: Asid, ops: &[PeerMapOp]) -> Result<(), MmuError> {
        let _ = (asid, ops);
        Err(MmuError::Unsupported { hook: "peer_map" })
    }

    /// Optional ([`Hooks::PEER_MAP`]). Release a batch of base-page mappings (the
    /// manager uses it when a region is unmapped); one token per page, which the manager
    /// coalesces before invalidating.
    fn peer_unmap(&self, asid: Asid, pages: &[(u64, PageSize)]) -> Result<Vec<TlbFlush>, MmuError> {
        let _ = (asid, pages);
        Err(MmuError::Unsupported { hook: "peer_unmap" })
    }

    /// Optional ([`Hooks::DMA_MAP_HOST`]). Make `region` reachable by the device (IOMMU
    /// map). See the module docs for the staging/peer-shared difference.
    ///
    /// # Safety
    /// `region.va .. region.va + region.len` must be memory of this process that stays
    /// mapped (pages of a `PeerShared` region may be holes) until
    /// [`GmMmu::dma_unmap_host`] of `region.id` has returned `Ok`, and no Rust reference
    /// may exist to bytes the device may write. The manager keeps this contract for the
    /// regions it owns (a region whose unmap failed stays mapped for the life of the
    /// process); an implementor turns `region.va` into pointers relying on it.
    ///
    /// A safe caller cannot hand a device freed memory:
    /// ```compile_fail
    /// use gmem_host::{GmMmu, HostRegion, HostRegionId, HostRegionKind};
    /// fn misuse(dev: &dyn GmMmu) {
    ///     let freed = vec![0u8; 4096];
    ///     let r = HostRegion { id: HostRegionId(9), kind: HostRegionKind::Staging, va: freed.as_ptr() as u64, len: 4096 };
    ///     drop(freed);
    ///     let _ = dev.dma_map_host(&r); // error[E0133]: call to unsafe function
    /// }
    /// ```
    /// (The same code with the call in an `unsafe` block compiles; it is then the
    /// caller's promise that breaks:)
    /// ```no_run
    /// use gmem_host::{GmMmu, HostRegion, HostRegionId, HostRegionKind};
    /// fn misuse(dev: &dyn GmMmu) {
    ///     let freed = vec![0u8; 4096];
    ///     let r = HostRegion { id: HostRegionId(9), kind: HostRegionKind::Staging, va: freed.as_ptr() as u64, len: 4096 };
    ///     drop(freed);
    ///     // SAFETY: none — this is the misuse the contract forbids.
    ///     let _ = unsafe { dev.dma_map_host(&r) };
    /// }
    /// ```
    unsafe fn dma_map_host(&self, region: &HostRegion) -> Result<(), MmuError> {
        let _ = region;
        Err(MmuError::Unsupported { hook: "dma_map_host" })
    }

    /// Optional ([`Hooks::DMA_MAP_HOST`]). Undo [`GmMmu::dma_map_host`]; nothing in flight
    /// names the region any more.
    fn dma_unmap_host(&self, id: HostRegionId) -> Result<(), MmuError> {
        let _ = id;
        Err(MmuError::Unsupported { hook: "dma_unmap_host" })
    }

    /// Optional ([`Hooks::ACCESSED_BITS`]). For each `vas[i]` report in `out[i]` whether
    /// the device accessed it since the last call, and clear the bit.
    fn test_and_clear_accessed(&self, asid: Asid, vas: &[u64], out: &mut [bool]) -> Result<(), MmuError> {
        let _ = (asid, vas, out);
        Err(MmuError::Unsupported { hook: "test_and_clear_accessed" })
    }

    /// Optional (no flag needed; the default ignores it). The manager ran host software
    /// (`work`) between device operations. Host time passes for every device, so the
    /// manager tells each live one, without its lock held. A device on the wall clock
    /// ignores this (the time really passed); a co-simulated device advances its clock
    /// by the modelled cost, which is how a simulation charges host software time.
    fn host_work(&self, work: HostWork) {
        let _ = work;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_coalesces_adjacent_and_overlapping() {
        let mut b = InvalidationBatch::new();
        let a = Asid(1);
        b.push(TlbFlush::new(a, 0x3000, 0x1000));
        b.push(TlbFlush::new(a, 0x1000, 0x1000));
        b.push(TlbFlush::new(a, 0x2000, 0x1000));
        b.push(TlbFlush::new(a, 0x8000, 0x1000));
        b.push(TlbFlush::new(Asid(2), 0x1000, 0x1000));
        b.push(TlbFlush::none(a));
        let c = b.coalesced();
        assert_eq!(
            c,
            vec![
                (a, vec![VaRange { start: 0x1000, len: 0x3000 }, VaRange { start: 0x8000, len: 0x1000 }]),
                (Asid(2), vec![VaRange { start: 0x1000, len: 0x1000 }]),
            ]
        );
        b.ranges.clear();
    }
}
