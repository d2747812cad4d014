//! The model's MMU: the Sv39 walk of spec §6.2 over device memory, with the hardware
//! A/D update of §6.5.
//!
//! There is no TLB: every request walks. A TLB only changes results for software that
//! edits PTEs without the invalidation §6.3 requires (the RTL may then use a stale
//! translation where the model sees the new PTE), so INVAL has nothing to act on.
//! Consequences that are visible: ERRINJ_PTW events are consumed by every translation
//! here but only by TLB misses in the RTL, and PTW_WALKS and the device-port byte
//! counters count a walk per request.
//!
//! Conventions the spec leaves open: the ASID checks (step 1) come before the walk
//! starts, so an ASID_INVALID fault neither consumes an ERRINJ_PTW event nor counts in
//! PTW_WALKS; an injected walk error comes before the canonical check (step 2).

use super::csr::{Inj, NUM_ASIDS};
use super::{BEAT, ModelDevice};
use npu::regs::{self, fault_cause as fc, pte_bit as pb};

const PAGE: u64 = regs::addr_map::PAGE_SIZE;
const HUGE: u64 = regs::addr_map::HUGE_PAGE_SIZE;
const WINDOW: u64 = regs::addr_map::HOST_WINDOW_BASE;
const WINDOW_END: u64 = WINDOW + regs::addr_map::HOST_WINDOW_SIZE;
/// PTE bits 63:54 are reserved.
const PTE_RESERVED: u64 = !0 << 54;

/// Where a translated access goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phys {
    /// Device memory at this device-physical address.
    Dev(u64),
    /// Host memory at this IOVA (through the host window).
    Host(u64),
}

/// A translation fault, as the fault record reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fault {
    /// FAULT_CAUSE.
    pub(crate) cause: u64,
    /// Level where the walk stopped (2 = root).
    pub(crate) level: u8,
    /// PTE read at that level (0 if none).
    pub(crate) pte: u64,
}

fn bit(pte: u64, b: u64) -> bool {
    pte >> b & 1 == 1
}

fn target(pte: u64) -> u64 {
    regs::pte::PPN.get(&pte.to_le_bytes()).unwrap_or(0) << 12
}

fn canonical(va: u64) -> bool {
    let top = (va as i64) >> 38;
    top == 0 || top == -1
}

impl ModelDevice {
    /// ERRINJ_HANG.PTW: the walker starts nothing.
    pub(crate) fn ptw_hung(&self) -> bool {
        regs::errinj_hang::PTW.get32(self.rw.get(regs::ERRINJ_HANG, 0)) == 1
    }

    fn in_dev(&self, pa: u64, len: u64) -> bool {
        pa.checked_add(len).is_some_and(|end| end <= self.dev.size())
    }

    /// Translates one request (spec §6.2 steps 1–8); on success the leaf's A (and, for a
    /// write, D) bit is set in device memory. The caller checks [`Self::ptw_hung`].
    pub(crate) fn translate(&mut self, asid: u16, va: u64, write: bool) -> Result<Phys, Fault> {
        let (page, access) = if write { (fc::WRITE_PAGE, fc::WRITE_ACCESS) } else { (fc::READ_PAGE, fc::READ_ACCESS) };
        let fault = |cause, level, pte| Err(Fault { cause, level, pte });
        let root = if u32::from(asid) < NUM_ASIDS { self.rw.get(regs::PTROOT, u32::from(asid)) } else { 0 };
        if !self.ctrl(regs::ctrl::MMU_EN) || regs::ptroot::VALID.get32(root) == 0 {
            return fault(fc::ASID_INVALID, 2, 0);
        }
        self.perf_count(regs::perf_ctr::PTW_WALKS);
        if self.inject(Inj::Ptw) {
            return fault(access, 2, 0);
        }
        if !canonical(va) {
            return fault(page, 2, 0);
        }
        let mut table = u64::from(regs::ptroot::PPN.get32(root)) << 12;
        if !self.in_dev(table, PAGE) {
            return fault(access, 2, 0);
        }
        let mut level = 2u8;
        loop {
            let at = table + (va >> (12 + 9 * u32::from(level)) & 0x1FF) * 8;
            let pte = self.read_pte(at);
            let (v, r, w) = (bit(pte, pb::V), bit(pte, pb::R), bit(pte, pb::W));
            if !v || (w && !r) || pte & PTE_RESERVED != 0 {
                return fault(page, level, pte);
            }
            if pte & 0b1110 == 0 {
                // Pointer to the next level.
                if level == 0 {
                    return fault(page, level, pte);
                }
                if !self.in_dev(target(pte), PAGE) {
                    return fault(access, level, pte);
                }
                table = target(pte);
                level -= 1;
                continue;
            }
            if level == 2 || (level == 1 && (target(pte) >> 12) & 0x1FF != 0) || !(if write { w } else { r }) {
                return fault(page, level, pte);
            }
            let size = if level == 1 { HUGE } else { PAGE };
            let base = target(pte);
            let phys = if self.in_dev(base, size) {
                Phys::Dev(base | (va & (size - 1)))
            } else if base >= WINDOW && base + size <= WINDOW_END {
                Phys::Host((base - WINDOW) | (va & (size - 1)))
            } else {
                return fault(access, level, pte);
            };
            let updated = pte | 1 << pb::A | u64::from(write) << pb::D;
            if updated != pte {
                // §6.5: under the device-port lock, re-read, re-check (unchanged here:
                // nothing else runs meanwhile) and write back.
                self.read_pte(at);
                self.write_pte(at, updated);
            }
            return Ok(phys);
        }
    }

    /// One PTE read on the device port. The walk checked that the table lies in device
    /// memory, so the read cannot fail.
    fn read_pte(&mut self, at: u64) -> u64 {
        let mut b = [0u8; 8];
        self.perf_port(true, false, BEAT);
        self.dev.read(at, &mut b).map_or(0, |()| u64::from_le_bytes(b))
    }

    fn write_pte(&mut self, at: u64, pte: u64) {
        self.perf_port(false, false, BEAT);
        // In device memory, as for `read_pte`.
        let _ = self.dev.write(at, &pte.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use npu::DeviceIo;
    use npu::backdoor::BackdoorTables;
    use npu::sv39::{self, Access, TableBuilder, TableMemory};

    /// Every step of the walk against the independent software walker, on tables with
    /// 4 KiB, 2 MiB and host-window leaves and hand-made ill-formed PTEs.
    #[test]
    fn walk_agrees_with_the_sv39_oracle() {
        let mut d = ModelDevice::new(crate::ModelConfig { dev_mem_bytes: 64 << 20, ..Default::default() });
        let root = 0x10_0000;
        let mut next = root + PAGE;
        let mut alloc = || {
            next += PAGE;
            Some(next - PAGE)
        };
        let mut m = BackdoorTables(&mut d);
        let mut b = TableBuilder { mem: &mut m, root };
        b.map(0x4000_0000, 0x20_0000, PAGE, true, &mut alloc).unwrap();
        b.map(0x4000_1000, 0x20_1000, PAGE, false, &mut alloc).unwrap();
        b.map(0x4020_0000, 0x40_0000, HUGE, true, &mut alloc).unwrap();
        b.map(0x4000_2000, WINDOW + 0x7000, PAGE, true, &mut alloc).unwrap();
        b.map(0x4000_3000, 0x3FF_F000 + PAGE, PAGE, true, &mut alloc).unwrap(); // beyond device memory
        b.map(0x8000_0000, 0x60_0000, PAGE, true, &mut alloc).unwrap();
        // Ill-formed PTEs in the level-0 table of 0x4000_0000 (entries 4..).
        let l0_table = {
            let p2 = sv39::Pte(m.read_pte(root + 8).unwrap());
            let p1 = sv39::Pte(m.read_pte(p2.target()).unwrap());
            p1.target()
        };
        m.write_pte(l0_table + 4 * 8, 0b0101 | 0x30_0000 >> 2).unwrap(); // W without R
        m.write_pte(l0_table + 5 * 8, 0x43 | 1 << 60).unwrap(); // reserved bit
        m.write_pte(l0_table + 6 * 8, sv39::Pte::pointer(0x30_0000).0).unwrap(); // pointer at level 0
        m.write_pte(root + 3 * 8, 0xCF).unwrap(); // 1 GiB leaf
        let l1_table = sv39::Pte(m.read_pte(root + 8).unwrap()).target();
        m.write_pte(l1_table + 3 * 8, sv39::Pte::leaf(0x41_0000, true).0).unwrap(); // misaligned superpage
        m.write_pte(l1_table + 4 * 8, sv39::Pte::pointer(0x1_0000_0000).0).unwrap(); // table outside memory
        d.write32(regs::CTRL.offset, 1 << regs::ctrl::MMU_EN.lsb).unwrap();
        d.write32(regs::PTROOT.at(3).unwrap(), 1 << 31 | (root >> 12) as u32).unwrap();
        let vas = [
            0x4000_0000,
            0x4000_0ABC,
            0x4000_1004,
            0x4020_0000,
            0x4033_3334,
            0x4000_2010,
            0x4000_3000,
            0x4000_4000,
            0x4000_5000,
            0x4000_6000,
            0x4000_7000,
            0xC000_0000,
            0x4060_0000,
            0x4080_0000,
            0x8000_0FFC,
            0x40_0000_0000,
            0xFFFF_FFC0_0000_0000,
            0x1234_5678,
        ];
        for va in vas {
            for write in [false, true] {
                let acc = if write { Access::Write } else { Access::Read };
                let want = sv39::walk(&BackdoorTables(&mut d), root, va, acc, 64 << 20);
                let got = d.translate(3, va, write);
                match (want, got) {
                    (Ok(t), Ok(p)) => {
                        let pa = match p {
                            Phys::Dev(pa) => pa,
                            Phys::Host(iova) => iova + WINDOW,
                        };
                        assert_eq!(pa, t.pa, "{va:#x} write={write}");
                        let pte = sv39::walk(&BackdoorTables(&mut d), root, va, acc, 64 << 20).unwrap().pte;
                        assert!(pte.accessed() && (!write || pte.dirty()), "A/D set at {va:#x}");
                    }
                    (Err(f), Err(g)) => {
                        assert_eq!((f.cause, f.level, f.pte.0), (g.cause, g.level, g.pte), "{va:#x} write={write}")
                    }
                    (w, g) => panic!("{va:#x} write={write}: oracle {w:?}, model {g:?}"),
                }
            }
        }
        assert_eq!(d.translate(2, 0x4000_0000, false), Err(Fault { cause: fc::ASID_INVALID, level: 2, pte: 0 }));
        assert_eq!(d.translate(16, 0x4000_0000, false), Err(Fault { cause: fc::ASID_INVALID, level: 2, pte: 0 }));
        d.write32(regs::ERRINJ_PTW.offset, 1).unwrap();
        assert_eq!(d.translate(3, 0x4000_0000, true), Err(Fault { cause: fc::WRITE_ACCESS, level: 2, pte: 0 }));
        assert_eq!(d.translate(3, 0x4000_0000, true), Ok(Phys::Dev(0x20_0000)));
        d.write32(regs::CTRL.offset, 0).unwrap();
        assert_eq!(d.translate(3, 0x4000_0000, false), Err(Fault { cause: fc::ASID_INVALID, level: 2, pte: 0 }));
    }
}
