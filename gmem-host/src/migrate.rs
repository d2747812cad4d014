//! Migration of pages between the CPU and the devices, in named phases.
//!
//! * `to_host`: device → host (eviction, CPU faults, `DONTNEED`, prefetch to the CPU),
//!   through the DMA staging pool into the CPU mapping (`UFFDIO_COPY`);
//! * `to_device`: host → device, for a plan the device fault path ([`crate::fault`])
//!   made;
//! * `reclaim`: the eviction entry points (victims from the [`crate::evict`] policy);
//! * `teardown`: munmap's release of every mapping and frame of a region;
//! * `resize`: splitting (partial munmap), growing and moving (mremap) a region;
//! * `early`: which faults of a batch a pipelined migration has resolved part-way;
//! * `mapping`: what they share: releasing, narrowing and splitting device mappings,
//!   flushing invalidations, freeing frames, coalescing copies.
//!
//! Every migration drops the lock while the device copies and re-checks each page's
//! sequence number at commit (see [`crate::manager`]'s locking rules); a failed step
//! rolls the page back with its data in its last good place.
//!
//! The CPU fault path that drives device → host migrations lives in `crate::cpu_fault`.

pub use crate::error::MigrateError;

pub(crate) mod early;
pub(crate) mod mapping;
pub(crate) mod reclaim;
pub(crate) mod resize;
pub(crate) mod teardown;
pub(crate) mod to_device;
pub(crate) mod to_host;
