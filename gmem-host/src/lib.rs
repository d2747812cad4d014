//! The generic unified-memory manager of GMEM, in user space.
//!
//! GMEM (Generalized Memory Management, LKML RFC Nov 2023) observes that every
//! accelerator driver re-implements the same memory manager: a unified virtual
//! address space shared by the CPU and the device, a logical page table saying
//! where each page lives, device page faults resolved by migrating pages, eviction
//! of device memory to host DRAM when it runs out, and memory hints. This crate is
//! that manager. It knows nothing of any particular device: everything
//! device-specific goes through the [`GmMmu`] trait of device hooks, so the same
//! fault handling, migration and swap code runs against a cycle-accurate RTL
//! co-simulation or a real board.
//!
//! # Model
//! * A device registers with its hooks ([`GmMmu`]) and its memory; the manager owns a
//!   buddy allocator over that memory ([`buddy`]).
//! * An address space ([`SpaceId`]) gets `PEER_SHARED` regions from [`Gmem::mmap`]: real
//!   host pointers the CPU uses directly, placed where every attached device can
//!   translate them, so a pointer means the same bytes everywhere.
//! * The logical page table ([`page_table`]) records where each page lives: nowhere yet,
//!   the CPU, one device, or both as read-only duplicates. Range attributes set by
//!   [`Gmem::hmadvise`] live beside it ([`attrs`]).
//! * Device faults arrive in batches ([`Gmem::dev_fault`], [`fault`]) and are resolved
//!   by phased migration ([`migrate`]); CPU touches of device-resident pages are caught
//!   by a userfaultfd handler thread ([`cpu`]) and brought back the same way.
//! * Device memory is oversubscribed by evicting pages to the host in access-LRU order
//!   ([`evict`]); dense 2 MiB regions are prefetched ([`prefetch`]); pages that bounce
//!   between CPU and device are throttled, then pinned and mapped remotely ([`thrash`]).
//! * Everything is observable as `tracing` events and counters ([`events`]).
//! * Hints that move pages are all or nothing and report what they did ([`HintReport`]);
//!   [`Gmem::mprotect`] sets one protection for the CPU and every device (device faults it
//!   does not allow are aborted with [`FaultError::Protection`]); [`Gmem::munmap`] takes
//!   any range inside a region and [`Gmem::mremap`] shrinks, grows or moves one;
//!   [`Gmem::page_info`] and [`Gmem::placement`] describe a page without touching it.
//!
//! # Layout
//! The modules form layers, each importing only the layers below it; there is no import
//! cycle among them (`scripts/check-module-cycles.py gmem-host/src` checks it in CI).
//! 1. **Leaf types and data structures**, importing nothing of the crate but each other:
//!    [`types`] (ids, the page key, [`MapFlags`], [`Hint`]), [`mmu`] (the device hooks),
//!    [`config`], [`error`], [`page_table`], [`attrs`], [`buddy`], [`events`].
//! 2. **Policies**, over narrow views of the tables that their unit tests implement with a
//!    few maps: [`prefetch`] (`PrefetchView`), [`evict`] (the LRU, `EvictView`), [`thrash`]
//!    (a per-page event tracker).
//! 3. **The CPU side and the state**: [`cpu`] (userfaultfd primitives and the handler
//!    thread, which hands faults to a `CpuFaultSink`); `state` (the tables behind the lock;
//!    it implements the policies' views).
//! 4. **Migration** ([`migrate`]): `to_host` and `to_device`, one function per phase;
//!    `reclaim` (eviction entry points), `teardown` (munmap), `mapping` (shared helpers).
//! 5. **The paths that drive it**: [`fault`] (device fault batches: classify, prefetch,
//!    make room, migrate), `cpu_fault` (CPU touches, the `CpuFaultSink`), [`lost`],
//!    `hint` (the hints that move pages: all or nothing, with a [`HintReport`]).
//! 6. **The API**: [`manager`] ([`Gmem`]; `region` places and registers regions), and on
//!    top of it `inspect`, `protect` ([`Gmem::mprotect`]), `remap` (partial munmap,
//!    [`Gmem::mremap`]) and [`softdev`].
//!
//! Items keep their historical public paths as re-exports (`manager::Config`,
//! `cpu::CpuError`, `migrate::MigrateError`, …).
//!
//! [`softdev`] is a device in software (page table, TLB, DMA over host memory, fault
//! injection) used by the tests and benchmarks, and a reference for device crates.
//!
//! # Using it
//! ```no_run
//! use std::sync::Arc;
//! use gmem_host::softdev::{SoftConfig, SoftDevice};
//! use gmem_host::{Access, Config, DeviceFault, Gmem, Hint, MapFlags, Node};
//!
//! let gm = Gmem::new(Config::default())?;             // starts the userfaultfd thread
//! let dev = Arc::new(SoftDevice::new(SoftConfig::default()));
//! let id = gm.register_device(dev.clone())?;          // hooks checked here
//! let space = gm.create_space();
//! let asid = gm.attach(space, id)?;                   // device page table
//! let p = gm.mmap(space, 1 << 20, MapFlags::PEER_SHARED)?;
//! unsafe { p.write(42) };                             // the CPU uses it directly
//! // The device faulted on `p`: hand the manager its fault queue, replay per answer.
//! let answers = gm.dev_fault(id, &[DeviceFault { asid, va: p as u64, access: Access::Read, tag: 0 }]);
//! assert!(answers[0].is_retry());
//! gm.hmadvise(space, Node::Cpu, p as u64, 1 << 20, Hint::DontNeed)?;
//! # Ok::<(), gmem_host::GmemError>(())
//! ```
//!
//! # Host memory a device reaches
//! Devices name host memory as a registered region plus an offset
//! ([`MemAddr::Host`]); see [`mmu`] for the two kinds (the manager's DMA staging pool,
//! mapped eagerly; `PEER_SHARED` regions, whose pages are only named while present).
//!
//! # Limits (today)
//! * A page's data lives on at most one device at a time (read duplication is CPU +
//!   one device); a fault from a second device moves the page through the host.
//! * Thrashing throttles device faults only; CPU faults are never delayed.
//! * With [`CpuMode::Manual`] [`Gmem::mprotect`] holds devices to the protection but
//!   leaves the CPU mapping read-write (the manager writes pages back into it directly).
//! * Without userfaultfd write-protect support (kernels < 5.7) a CPU write racing an
//!   outbound copy can be lost; registration logs a warning when WP is refused.
//! * Device memory above 16 TiB is refused (frame numbers are 32-bit in the 12-byte
//!   page entry); eviction state costs 24 bytes of host memory per device frame.
//! * A CPU fault whose page cannot be brought back (the device keeps failing) is retried
//!   with back-off ([`Config::cpu_fault_attempts`], about 1 s by default); then the page
//!   is *poisoned* ([`page_table::PageFlags::POISONED`], counter `poisoned`, an error log line) and
//!   the touching thread gets SIGBUS at the page, like a hardware memory error. The data
//!   stays on the device, which keeps using it; a poisoned page never leaves the device
//!   (typed [`MigrateError::Poisoned`]) until its region is unmapped.

pub mod attrs;
pub mod buddy;
pub mod config;
pub mod cpu;
mod cpu_fault;
pub mod error;
pub mod events;
pub mod evict;
pub mod fault;
mod hash;
mod hint;
pub mod inject;
mod inspect;
pub mod lost;
pub mod manager;
pub mod migrate;
pub mod mmu;
pub mod nulldev;
pub mod page_table;
pub mod prefetch;
mod protect;
mod region;
mod remap;
pub mod softdev;
mod state;
pub mod thrash;
pub mod types;
mod uffd;

pub use attrs::RangeAttrs;
pub use config::{Clock, Config, CpuMode, ThrashConfig};
pub use error::{CpuError, FaultError, GmemError, MigrateError};
pub use events::CounterSnapshot;
pub use fault::{Access, DeviceFault, FaultResolution};
pub use inspect::{AttrRun, PageRun, RegionRuns};
pub use lost::{LossReport, LostRange};
pub use manager::{Gmem, PageInfo, Placement};
pub use mmu::{
    Asid, CopyOp, CopyTicket, DeviceInfo, GmMmu, Hooks, HostRegion, HostRegionId, HostRegionKind, HostWork,
    InvalidationBatch, MemAddr, MmuError, PageSize, PeerMapOp, Prepare, Prot, TlbFlush, VaRange,
};
pub use page_table::Residency;
pub use types::{DeviceId, Hint, HintReport, MapFlags, Node, SpaceId};
