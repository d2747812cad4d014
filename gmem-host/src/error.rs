//! The manager's error types: [`GmemError`] of the API, [`MigrateError`] of a migration,
//! [`FaultError`] of a device fault, [`CpuError`] of the CPU side.
//!
//! Imports only leaf modules ([`crate::types`], [`crate::mmu`], [`crate::buddy`]'s error).

use std::io;
use std::sync::Arc;

use crate::buddy::BuddyError;
use crate::mmu::{Hooks, MmuError, Prot};
use crate::types::{Hint, MapFlags, Node};

/// Errors of the manager's API. Every error leaves the manager's state unchanged.
#[derive(Debug, thiserror::Error)]
pub enum GmemError {
    /// Zero length.
    #[error("zero-length range at {va:#x}")]
    ZeroLength {
        /// Address.
        va: u64,
    },
    /// Address or length not page-aligned.
    #[error("range [{va:#x}, +{len:#x}) is not 4 KiB-aligned")]
    Unaligned {
        /// Address.
        va: u64,
        /// Length.
        len: u64,
    },
    /// `va + len` overflows.
    #[error("range {va:#x} + {len:#x} overflows")]
    Overflow {
        /// Address.
        va: u64,
        /// Length.
        len: u64,
    },
    /// Some page of the range is not in a `PEER_SHARED` region of the space.
    #[error("address {va:#x} is not in a PEER_SHARED region of space {space}")]
    NotManaged {
        /// First unmanaged address.
        va: u64,
        /// Space.
        space: u32,
    },
    /// `munmap` must stay inside one region; `mremap` must name a whole region.
    #[error("[{va:#x}, +{len:#x}) is not inside one region (munmap) or is not a whole region (mremap)")]
    PartialUnmap {
        /// Address.
        va: u64,
        /// Length.
        len: u64,
    },
    /// `mmap` without `PEER_SHARED`: only opt-in regions are managed.
    #[error("mmap flags {0:?} lack PEER_SHARED")]
    Flags(MapFlags),
    /// Unknown address space.
    #[error("unknown address space {0}")]
    UnknownSpace(u32),
    /// Unknown device / node.
    #[error("unknown node {0}")]
    UnknownNode(Node),
    /// The device is not attached to the space.
    #[error("device {dev} is not attached to space {space}")]
    NotAttached {
        /// Device.
        dev: u8,
        /// Space.
        space: u32,
    },
    /// A page is mid-migration; try again.
    #[error("page {va:#x} is busy (mid-migration); retry")]
    Busy {
        /// The page.
        va: u64,
    },
    /// The device is already attached.
    #[error("device {dev} is already attached to space {space}")]
    AlreadyAttached {
        /// Device.
        dev: u8,
        /// Space.
        space: u32,
    },
    /// The hint needs a device node.
    #[error("hint {hint:?} needs a device node, got {node}")]
    HintNode {
        /// Hint.
        hint: Hint,
        /// Node.
        node: Node,
    },
    /// No free virtual range of this length inside every attached device's VA window.
    #[error("no free virtual range of {len:#x} bytes below {limit:#x}")]
    NoVirtualSpace {
        /// Length.
        len: u64,
        /// Window end.
        limit: u64,
    },
    /// An existing region lies outside the attaching device's VA window.
    #[error("region at {va:#x} is outside device {dev}'s {bits}-bit VA window")]
    VaWindow {
        /// Region.
        va: u64,
        /// Device.
        dev: u8,
        /// Its VA bits.
        bits: u8,
    },
    /// Too many devices (the logical page table stores an 8-bit device index; masks 32).
    #[error("too many devices (max 32)")]
    TooManyDevices,
    /// A device lacks an optional hook the configuration requires.
    #[error("device `{name}` lacks required hooks {missing:?}")]
    MissingHooks {
        /// Device name.
        name: String,
        /// Missing hooks.
        missing: Hooks,
    },
    /// A device's info is unusable.
    #[error("device `{name}`: {reason}")]
    BadDeviceInfo {
        /// Device name.
        name: String,
        /// Reason.
        reason: String,
    },
    /// A device hook failed.
    #[error("device {dev} hook `{hook}` failed")]
    Hook {
        /// Device.
        dev: u8,
        /// Hook.
        hook: &'static str,
        /// The device's error.
        #[source]
        source: MmuError,
    },
    /// The page is poisoned: the CPU gave up bringing it back from its device.
    #[error("page {va:#x} is poisoned: its data could not be brought back from device {dev}")]
    Poisoned {
        /// Page.
        va: u64,
        /// The device holding the data.
        dev: u8,
    },
    /// The device was declared lost ([`Gmem::device_lost`](crate::Gmem::device_lost)): it is never called again.
    #[error("device {dev} is lost (it stopped answering and could not be reset)")]
    DeviceLost {
        /// Device.
        dev: u8,
    },
    /// `mprotect` with rights no mapping can have (write or execute without read).
    #[error("protection {0:?} is not one of none, read, read-write (execute only with read)")]
    BadProt(Prot),
    /// Changing the CPU protection of a range failed.
    #[error("mprotect of [{va:#x}, +{len:#x}) failed: {source}")]
    Mprotect {
        /// Start.
        va: u64,
        /// Length.
        len: u64,
        /// OS error.
        #[source]
        source: io::Error,
    },
    /// Host memory mapping failed.
    #[error("host mmap of {len:#x} bytes failed: {reason}")]
    HostMap {
        /// Length.
        len: u64,
        /// Reason.
        reason: String,
    },
    /// CPU side error.
    #[error(transparent)]
    Cpu(#[from] CpuError),
    /// Device memory description error.
    #[error(transparent)]
    Buddy(#[from] BuddyError),
    /// A migration failed (data was kept where it was).
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    /// A prefetch to a device failed for a page (data was kept where it was).
    #[error(transparent)]
    Fault(#[from] FaultError),
}

/// Errors of a migration. The data is always kept in its last good place.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// Releasing or narrowing a device mapping failed.
    #[error("unmapping {va:#x} on device {dev} failed")]
    Unmap {
        /// Page.
        va: u64,
        /// Device.
        dev: u8,
        /// Device error.
        #[source]
        source: MmuError,
    },
    /// The page is poisoned ([`crate::page_table::PageFlags::POISONED`]): it does not leave its device.
    #[error("page {va:#x} is poisoned on device {dev}")]
    Poisoned {
        /// Page.
        va: u64,
        /// Device.
        dev: u8,
    },
    /// A TLB invalidation failed.
    #[error("TLB invalidation on device {dev} failed")]
    Invalidate {
        /// Device.
        dev: u8,
        /// Device error.
        #[source]
        source: MmuError,
    },
    /// A DMA copy batch failed.
    #[error("copy of pages from {va:#x} on device {dev} failed")]
    Copy {
        /// First page of the batch.
        va: u64,
        /// Device.
        dev: u8,
        /// Device error.
        #[source]
        source: MmuError,
    },
    /// Zero-filling or preparing a frame failed.
    #[error("preparing the frame for {va:#x} on device {dev} failed")]
    Prepare {
        /// Page.
        va: u64,
        /// Device.
        dev: u8,
        /// Device error.
        #[source]
        source: MmuError,
    },
    /// Creating a device mapping failed.
    #[error("mapping {va:#x} on device {dev} failed")]
    Map {
        /// Page.
        va: u64,
        /// Device.
        dev: u8,
        /// Device error.
        #[source]
        source: MmuError,
    },
    /// The device refused a frame in `alloc_page`.
    #[error("device {dev} refused frame {pa:#x}")]
    AllocPage {
        /// Device.
        dev: u8,
        /// Frame.
        pa: u64,
        /// Device error.
        #[source]
        source: MmuError,
    },
    /// No device memory could be found or freed for `va`.
    #[error("device {dev} memory exhausted while placing {va:#x}")]
    NoDeviceMemory {
        /// Page.
        va: u64,
        /// Device.
        dev: u8,
    },
    /// Installing the page in the CPU mapping failed.
    #[error("installing CPU page {va:#x} failed")]
    Install {
        /// Page.
        va: u64,
        /// CPU-side error.
        #[source]
        source: CpuError,
    },
}

/// Why a fault is aborted. Every variant names the faulting address.
#[derive(Debug, thiserror::Error, Clone)]
pub enum FaultError {
    /// The device is not registered.
    #[error("fault at {va:#x}: unknown device {dev}")]
    UnknownDevice {
        /// Address.
        va: u64,
        /// Device.
        dev: u8,
    },
    /// The ASID is not attached to any space.
    #[error("fault at {va:#x}: unknown ASID {asid}")]
    UnknownAsid {
        /// Address.
        va: u64,
        /// ASID.
        asid: u32,
    },
    /// The address is not in a `PEER_SHARED` region (use-after-unmap, wild pointer).
    #[error("fault at {va:#x}: address not managed")]
    NotManaged {
        /// Address.
        va: u64,
    },
    /// The device was declared lost ([`crate::Gmem::device_lost`]).
    #[error("fault at {va:#x}: device {dev} is lost")]
    DeviceLost {
        /// Address.
        va: u64,
        /// Device.
        dev: u8,
    },
    /// The range's protection ([`crate::Gmem::mprotect`]) does not allow the access:
    /// nothing moved, nothing was zero-filled.
    #[error("fault at {va:#x}: {access} not allowed by the range's protection {allowed:?}", access = if *write { "write" } else { "read" })]
    Protection {
        /// Address.
        va: u64,
        /// A write access (otherwise a read or an instruction fetch).
        write: bool,
        /// What the range allows.
        allowed: Prot,
    },
    /// Resolving the fault failed; the page's data is intact where it was.
    #[error("fault at {va:#x}: migration failed")]
    Migration {
        /// Address.
        va: u64,
        /// The migration error.
        #[source]
        source: Arc<MigrateError>,
    },
}

/// Errors of the CPU side.
#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    /// Neither `/dev/userfaultfd` nor the `userfaultfd(2)` system call gave a descriptor
    /// (not root, `vm.unprivileged_userfaultfd = 0`, seccomp, or an old kernel). Use
    /// [`CpuMode::Manual`](crate::CpuMode::Manual) or run with `CAP_SYS_PTRACE`.
    #[error("userfaultfd is unavailable: /dev/userfaultfd: {dev}; userfaultfd(2): {syscall}")]
    Unavailable {
        /// Why the device node failed.
        dev: String,
        /// Why the system call failed.
        syscall: String,
    },
    /// Registering a region failed.
    #[error("userfaultfd registration of [{va:#x}, +{len:#x}) failed: {reason}")]
    Register {
        /// Start.
        va: u64,
        /// Length.
        len: u64,
        /// Reason.
        reason: String,
    },
    /// Installing a page failed.
    #[error("installing CPU page {va:#x} failed: {reason}")]
    Install {
        /// Page.
        va: u64,
        /// Reason.
        reason: String,
    },
    /// Changing write protection failed.
    #[error("write-protect change at {va:#x} failed: {reason}")]
    Protect {
        /// Page.
        va: u64,
        /// Reason.
        reason: String,
    },
    /// `madvise(MADV_DONTNEED)` failed.
    #[error("dropping CPU pages at {va:#x} failed: {source}")]
    Zap {
        /// Start.
        va: u64,
        /// OS error.
        #[source]
        source: io::Error,
    },
    /// Starting the handler thread failed.
    #[error("starting the userfaultfd handler thread failed: {0}")]
    Thread(#[source] io::Error),
    /// Replacing a CPU page with a SIGBUS page failed.
    #[error("poisoning CPU page {va:#x} failed: {source}")]
    Poison {
        /// Page.
        va: u64,
        /// OS error.
        #[source]
        source: io::Error,
    },
}
