//! Shared test fixtures.
#![allow(dead_code)]

use std::sync::Arc;

use gmem_host::softdev::{SoftConfig, SoftDevice};
use gmem_host::{Asid, Config, CpuMode, DeviceId, Gmem, SpaceId};

pub struct Rig {
    pub gm: Gmem,
    pub dev: Arc<SoftDevice>,
    pub id: DeviceId,
    pub space: SpaceId,
    pub asid: Asid,
}

pub fn rig_with(cfg: Config, soft: SoftConfig) -> Rig {
    let gm = Gmem::new(cfg).expect("manager");
    let dev = Arc::new(SoftDevice::new(soft));
    let id = gm.register_device(dev.clone()).expect("register");
    let space = gm.create_space();
    let asid = gm.attach(space, id).expect("attach");
    Rig { gm, dev, id, space, asid }
}

pub fn rig(mem_pages: u64) -> Rig {
    rig_with(Config::default(), SoftConfig { mem_bytes: mem_pages * 4096, ..Default::default() })
}

pub fn manual_rig(mem_pages: u64) -> Rig {
    rig_with(
        Config { cpu: CpuMode::Manual, ..Default::default() },
        SoftConfig { mem_bytes: mem_pages * 4096, ..Default::default() },
    )
}

/// Volatile CPU read of one byte.
pub fn cpu_read(p: *mut u8, off: usize) -> u8 {
    // SAFETY: tests only pass offsets inside a live region.
    unsafe { std::ptr::read_volatile(p.add(off)) }
}

/// Volatile CPU write of one byte.
pub fn cpu_write(p: *mut u8, off: usize, v: u8) {
    // SAFETY: tests only pass offsets inside a live region.
    unsafe { std::ptr::write_volatile(p.add(off), v) }
}
