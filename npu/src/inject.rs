//! Fault injection for the NPU stack: a [`DeviceIo`] wrapper that fails transport
//! operations and arms the device's own error-injection registers, both driven by a
//! [`gmem_host::inject::Injector`] (the one interface, documented there). The NPU's
//! sites, which [`FaultyIo::new`] and [`injector`] register:
//!
//! | layer | sites | address passed to `Trigger::Range` |
//! |---|---|---|
//! | `io:` (any [`DeviceIo`], through [`FaultyIo`]) | [`IO_SITES`] | CSR offset, host address for `dma_map`, IOVA for `dma_unmap`/`dma_hold`/`dma_release` |
//! | `rtl:` (the device's error-injection registers) | [`RTL_SITES`] | none (consulted once per work submission) |
//!
//! - `io:*` sites fail the operation *before* it reaches the device, with
//!   [`IoError::Device`] (the device never saw it).
//! - `rtl:*` sites are consulted at each work submission that can meet them (a
//!   doorbell write: DMA descriptor tail, kernel-queue tail). When one fires, the wrapper
//!   first writes the matching ERRINJ register (device.md §12) so the hardware itself
//!   fails the next burst, walk, or hangs the unit; the doorbell then goes through.
//!   `rtl:hang_*` sets ERRINJ_HANG, which only a soft reset clears: the driver must
//!   detect the hang by its time budget and recover.

use gmem_host::inject::Injector;

use crate::regs;
use crate::{Clock, DeviceIo, DmaBuffer, IoError};

/// Transport sites (consulted by [`FaultyIo`] before the operation reaches the device).
pub const IO_SITES: &[&str] = &[
    "io:read32",
    "io:write32",
    "io:dma_map",
    "io:dma_unmap",
    "io:dma_hold",
    "io:dma_release",
    "io:wait_irq",
    "io:wait_host",
    "io:advance",
    "io:reset",
];

/// Device error-injection sites (armed by [`FaultyIo`] at work submissions).
pub const RTL_SITES: &[&str] = &[
    "rtl:host_rd",
    "rtl:host_wr",
    "rtl:dev_rd",
    "rtl:dev_wr",
    "rtl:walk",
    "rtl:poison",
    "rtl:hang_dma",
    "rtl:hang_cu",
];

/// An injector that knows every site of the NPU stack: the manager's `hook:` sites and
/// the NPU's [`IO_SITES`] and [`RTL_SITES`] (for checking rules before a stack exists).
pub fn injector(seed: u64) -> Injector {
    let inj = Injector::new(seed);
    inj.register(IO_SITES);
    inj.register(RTL_SITES);
    inj
}

/// A transport whose operations fail when the injector says so (see the module docs).
pub struct FaultyIo<T> {
    io: T,
    inj: Injector,
}

impl<T: DeviceIo> FaultyIo<T> {
    /// Wraps `io`; registers [`IO_SITES`] and [`RTL_SITES`] with `inj`.
    pub fn new(io: T, inj: Injector) -> Self {
        inj.register(IO_SITES);
        inj.register(RTL_SITES);
        FaultyIo { io, inj }
    }

    /// The wrapped transport (for backdoors and counters in tests).
    pub fn inner(&mut self) -> &mut T {
        &mut self.io
    }

    /// The injector.
    pub fn injector(&self) -> &Injector {
        &self.inj
    }

    fn fail(&self, site: &'static str, addr: Option<u64>) -> Result<(), IoError> {
        debug_assert!(IO_SITES.contains(&site), "{site} missing from IO_SITES");
        if self.inj.fire(site, addr) { Err(IoError::Device(format!("injected failure at {site}"))) } else { Ok(()) }
    }

    /// Arms the ERRINJ registers whose `rtl:` site fires for a submission to `unit`.
    fn arm(&mut self, unit: Unit) -> Result<(), IoError> {
        let sites: &[(&str, u32, u32)] = match unit {
            Unit::Dma => &[
                ("rtl:host_rd", regs::ERRINJ_HOST_RD.offset, 1),
                ("rtl:host_wr", regs::ERRINJ_HOST_WR.offset, 1),
                ("rtl:dev_rd", regs::ERRINJ_DEV_RD.offset, 1),
                ("rtl:dev_wr", regs::ERRINJ_DEV_WR.offset, 1),
                ("rtl:poison", regs::ERRINJ_POISON.offset, 1),
                ("rtl:hang_dma", regs::ERRINJ_HANG.offset, 1 << regs::errinj_hang::DMA.lsb),
            ],
            Unit::Kernel => &[
                ("rtl:walk", regs::ERRINJ_PTW.offset, 1),
                ("rtl:hang_cu", regs::ERRINJ_HANG.offset, 1 << regs::errinj_hang::CU.lsb),
            ],
        };
        for &(site, offset, value) in sites {
            if self.inj.fire(site, None) {
                self.io.write32(offset, value)?;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Unit {
    Dma,
    Kernel,
}

fn doorbell(offset: u32) -> Option<Unit> {
    let dma =
        (0..regs::DMA_DESC_TAIL.count).any(|i| offset == regs::DMA_DESC_TAIL.offset + i * regs::DMA_DESC_TAIL.stride);
    if dma {
        Some(Unit::Dma)
    } else if offset == regs::KQ_TAIL.offset {
        Some(Unit::Kernel)
    } else {
        None
    }
}

impl<T: DeviceIo> DeviceIo for FaultyIo<T> {
    fn name(&self) -> String {
        format!("{} (fault injection)", self.io.name())
    }
    fn read32(&mut self, offset: u32) -> Result<u32, IoError> {
        self.fail("io:read32", Some(u64::from(offset)))?;
        self.io.read32(offset)
    }
    fn write32(&mut self, offset: u32, value: u32) -> Result<(), IoError> {
        self.fail("io:write32", Some(u64::from(offset)))?;
        if let Some(unit) = doorbell(offset) {
            self.arm(unit)?;
        }
        self.io.write32(offset, value)
    }
    unsafe fn dma_map_raw(&mut self, host: *mut u8, len: usize) -> Result<u64, IoError> {
        self.fail("io:dma_map", Some(host as u64))?;
        // SAFETY: the caller's contract is forwarded unchanged.
        unsafe { self.io.dma_map_raw(host, len) }
    }
    unsafe fn dma_map_lazy(&mut self, host: *mut u8, len: usize) -> Result<u64, IoError> {
        self.fail("io:dma_map", Some(host as u64))?;
        // SAFETY: the caller's contract is forwarded unchanged.
        unsafe { self.io.dma_map_lazy(host, len) }
    }
    fn dma_hold(&mut self, iova: u64, len: u64, write: bool) -> Result<(), IoError> {
        self.fail("io:dma_hold", Some(iova))?;
        self.io.dma_hold(iova, len, write)
    }
    fn dma_release(&mut self, iova: u64, len: u64) -> Result<(), IoError> {
        self.fail("io:dma_release", Some(iova))?;
        self.io.dma_release(iova, len)
    }
    fn dma_keep(&mut self, iova: u64, owner: DmaBuffer) {
        self.io.dma_keep(iova, owner)
    }
    fn dma_unmap(&mut self, iova: u64) -> Result<(), IoError> {
        self.fail("io:dma_unmap", Some(iova))?;
        self.io.dma_unmap(iova)
    }
    fn wait_irq(&mut self, mask: u32, budget_ns: u64) -> Result<u32, IoError> {
        self.fail("io:wait_irq", None)?;
        self.io.wait_irq(mask, budget_ns)
    }
    fn wait_host(&mut self, budget_ns: u64, ready: &mut dyn FnMut() -> bool) -> Result<bool, IoError> {
        self.fail("io:wait_host", None)?;
        self.io.wait_host(budget_ns, ready)
    }
    fn now_ns(&self) -> u64 {
        self.io.now_ns()
    }
    fn advance(&mut self, ns: u64) -> Result<(), IoError> {
        self.fail("io:advance", None)?;
        self.io.advance(ns)
    }
    fn clock(&self) -> Clock {
        self.io.clock()
    }
    fn reset(&mut self) -> Result<(), IoError> {
        self.fail("io:reset", None)?;
        self.io.reset()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_io::FakeIo;

    /// Calls the transport operation behind `site` once.
    fn call(io: &mut FaultyIo<FakeIo>, site: &str, buf: &DmaBuffer) -> Result<(), IoError> {
        match site {
            "io:read32" => io.read32(0x10).map(drop),
            "io:write32" => io.write32(0x10, 1),
            "io:dma_map" => io.dma_map(buf).map(drop),
            "io:dma_unmap" => io.dma_unmap(0x1000),
            "io:dma_hold" => io.dma_hold(0x1000, 4096, true),
            "io:dma_release" => io.dma_release(0x1000, 4096),
            "io:wait_irq" => io.wait_irq(1, 10).map(drop),
            "io:wait_host" => io.wait_host(10, &mut || false).map(drop),
            "io:advance" => io.advance(10),
            "io:reset" => io.reset(),
            other => panic!("no transport operation for {other}"),
        }
    }

    #[test]
    fn every_transport_site_fails_exactly_when_its_rule_says() {
        let buf = DmaBuffer::new(4096).expect("buffer");
        for &site in IO_SITES {
            let inj = injector(1);
            inj.add_text(&format!("{site}=count:1:1")).expect("rule");
            let mut io = FaultyIo::new(FakeIo::new(), inj.clone());
            // The first call passes (skip 1), the second fails, the third passes again.
            let r: Vec<bool> =
                (0..3).map(|_| call(&mut io, site, &buf).is_err_and(|e| e.to_string().contains(site))).collect();
            assert_eq!(r, [false, true, false], "{site}");
            assert_eq!(inj.counts().get(site).copied(), Some(1), "{site}");
        }
    }

    #[test]
    fn the_npu_sites_are_known_once_a_faulty_transport_exists() {
        let inj = Injector::new(1);
        assert!(inj.add_text("rtl:walk=count:0:1").is_err(), "the manager alone does not know the NPU's sites");
        let _io = FaultyIo::new(FakeIo::new(), inj.clone());
        for site in IO_SITES.iter().chain(RTL_SITES) {
            inj.add_text(&format!("{site}=count:0:1")).expect(site);
        }
        injector(2).add_text("rtl:hang_cu=rate:10").expect("injector() knows them up front");
    }
}
