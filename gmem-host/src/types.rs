//! Leaf types of the manager's API: identifiers, the page key, `mmap` flags and hints.
//!
//! This module imports nothing else of the crate; every other module may use it.

use std::fmt;

use bitflags::bitflags;

/// A device registered with the manager (index into its device table).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(pub u8);

/// A memory node: the CPU's DRAM or a device's memory.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    /// Host memory.
    Cpu,
    /// A device's memory.
    Device(DeviceId),
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Cpu => write!(f, "cpu"),
            Node::Device(d) => write!(f, "dev{}", d.0),
        }
    }
}

/// An address space (a process's unified VA space in the RFC).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpaceId(pub u32);

/// A page inside the manager: (space number, virtual page number).
pub(crate) type PageKey = (u32, u64);

bitflags! {
    /// Flags of [`Gmem::mmap`](crate::Gmem::mmap).
    #[derive(Copy, Clone, Debug, PartialEq, Eq)]
    pub struct MapFlags: u32 {
        /// The region is managed by GMEM (shared between CPU and devices). Required.
        const PEER_SHARED = 1;
    }
}

/// `hmadvise` hints.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Hint {
    /// Migrate the range to the node now.
    Prefetch,
    /// Drop device copies of the range (on `node`, or on every device for `Node::Cpu`),
    /// keeping the data correct (it moves to the CPU).
    DontNeed,
    /// Set the preferred location to the node.
    PreferredLocation,
    /// Clear the preferred location.
    UnsetPreferredLocation,
    /// Add the (device) node to the accessed-by set: it maps pages remotely.
    AccessedBy,
    /// Remove the node from the accessed-by set.
    UnsetAccessedBy,
    /// Mark read-mostly: device read faults duplicate pages.
    ReadMostly,
    /// Clear read-mostly.
    UnsetReadMostly,
}

/// What a [`Gmem::hmadvise`](crate::Gmem::hmadvise) call did to its range, counted by
/// comparing the range before and after the call.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct HintReport {
    /// Pages that arrived at the hint's node: for a device, pages now held by it that
    /// were not before (copied from the host, zero-filled, or fetched from another
    /// device); for the CPU (`PREFETCH`/`DONTNEED` to `Node::Cpu`, `DONTNEED` to a
    /// device), pages that left a device (data copied back, a read duplicate's device
    /// copy dropped, a remote mapping released).
    pub pages_moved: u64,
    /// The bytes of those pages (`pages_moved` × 4 KiB).
    pub bytes_moved: u64,
    /// Pages of the range that were already where the hint wanted them.
    pub already_in_place: u64,
    /// Pages a device now maps remotely (in host memory) instead of holding them:
    /// `PREFETCH` to a device over pages that prefer the CPU or are accessed-by it.
    pub mapped_remotely: u64,
    /// Pages whose attributes the hint set (attribute hints: every page of the range).
    pub pages_changed: u64,
}
