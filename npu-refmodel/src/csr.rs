//! The model's CSR block: decode, access kinds and the hardware-facing registers.
//!
//! Mirrors `rtl/npu_csr.sv` (generated from `rtl/npu_regs.toml`) and the status logic of
//! `rtl/npu_top.sv`: `const` registers read their fixed value, `ro` registers read
//! hardware state, `rw` registers store the bits of their mask (other bits read 0),
//! `wo` registers act on a write and read 0, `hwext` registers are the error-injection
//! counters. An offset with no register, or an unaligned one, is not performed and
//! answers SLVERR (reads return 0 on the bus; the transport reports an error).

use super::ModelDevice;
use super::dma::CHANNELS;
use npu::regs;
use npu::{Access, Reg};

/// RTL parameters the model reports in CAPS0/CAPS1 (defaults of `npu_top`).
pub(crate) const DATA_BYTES_LOG2: u32 = 6;
const TLB_ENTRIES: u32 = 32;
pub(crate) const NUM_ASIDS: u32 = 16;
const HOST_WINDOW_SHIFT: u32 = 40;

/// Error-injection counters, in register order (ERRINJ_HOST_RD .. ERRINJ_POISON).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Inj {
    HostRd = 0,
    HostWr = 1,
    DevRd = 2,
    DevWr = 3,
    Ptw = 4,
    Poison = 5,
}

/// Why a CSR access was not performed (the RTL answers SLVERR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlvErr;

/// The register (and array element) at `offset`, if any.
pub(crate) fn decode(offset: u32) -> Option<(Reg, u32)> {
    if offset % 4 != 0 {
        return None;
    }
    regs::ALL_REGS.iter().find_map(|r| (0..r.count).find(|&i| r.offset + i * r.stride == offset).map(|i| (*r, i)))
}

/// Storage of every `rw` register, indexed by word offset.
pub(crate) struct RwStore {
    words: Vec<u32>,
}

impl RwStore {
    /// All `rw` registers at their reset values.
    pub(crate) fn new() -> Self {
        let mut words = vec![0u32; (regs::CSR_BYTES / 4) as usize];
        for r in regs::ALL_REGS.iter().filter(|r| r.access == Access::ReadWrite) {
            for i in 0..r.count {
                words[((r.offset + i * r.stride) / 4) as usize] = r.reset & r.mask;
            }
        }
        Self { words }
    }

    /// Current value of element `i` of `r` (0 for a register that is not `rw`).
    pub(crate) fn get(&self, r: Reg, i: u32) -> u32 {
        r.at(i).map_or(0, |off| self.words[(off / 4) as usize])
    }

    fn set(&mut self, r: Reg, i: u32, value: u32) {
        if let Some(off) = r.at(i) {
            let w = &mut self.words[(off / 4) as usize];
            *w = (*w & !r.mask) | (value & r.mask);
        }
    }

    /// 64-bit value of a LO/HI register pair (element `i`).
    pub(crate) fn get64(&self, lo: Reg, hi: Reg, i: u32) -> u64 {
        u64::from(self.get(lo, i)) | (u64::from(self.get(hi, i)) << 32)
    }

    /// Soft reset: the host-owned ring indices and ERRINJ_HANG return to 0 (the
    /// registers the TOML marks `soft_reset`); everything else is kept.
    pub(crate) fn soft_reset(&mut self) {
        for r in [
            regs::CMDQ_TAIL,
            regs::FQ_HEAD,
            regs::KQ_TAIL,
            regs::KCQ_HEAD,
            regs::DMA_DESC_TAIL,
            regs::DMA_CPL_HEAD,
            regs::ERRINJ_HANG,
        ] {
            for i in 0..r.count {
                self.set(r, i, 0);
            }
        }
    }
}

impl ModelDevice {
    /// One CSR read, as the AXI4-Lite slave serves it.
    pub(crate) fn csr_read(&mut self, offset: u32) -> Result<u32, SlvErr> {
        // The counter register updates at the access's own clock edge, so a read of
        // CSR_ACCESSES sees the accesses before it.
        let value = self.csr_read_value(offset);
        self.perf_csr_access();
        value
    }

    fn csr_read_value(&mut self, offset: u32) -> Result<u32, SlvErr> {
        let (r, i) = decode(offset).ok_or(SlvErr)?;
        Ok(match r.access {
            Access::Const => r.reset,
            Access::ReadWrite => self.rw.get(r, i),
            Access::WriteOnly => 0,
            Access::ReadWriteHw => self.errinj[((r.offset - regs::ERRINJ_HOST_RD.offset) / 4) as usize],
            Access::ReadOnly => self.read_hw(r, i),
        })
    }

    fn read_hw(&mut self, r: Reg, i: u32) -> u32 {
        let ch = i as usize;
        match r.name {
            "CAPS0" => (DATA_BYTES_LOG2 << 24) | (TLB_ENTRIES << 16) | (NUM_ASIDS << 8) | CHANNELS as u32,
            "CAPS1" => {
                (HOST_WINDOW_SHIFT << 24) | (self.cfg.cu_inflight << 16) | (self.dev.size() >> 20) as u32 & 0xFFFF
            }
            "STATUS" => {
                use regs::status as s;
                let dma_busy = (0..CHANNELS).any(|c| self.channel_busy(c));
                s::CMDQ_BUSY.put32(0, u32::from(self.cmdq_busy()))
                    | s::DMA_BUSY.put32(0, u32::from(dma_busy))
                    | s::CU_BUSY.put32(0, u32::from(self.cu_busy()))
                    | s::FAULTS_PENDING.put32(0, u32::from(self.faults_pending()))
                    | s::ERROR.put32(0, u32::from(self.err_info != 0))
            }
            "INT_STATUS" => self.int_status,
            "ERR_INFO" => self.err_info,
            "DMA_DESC_HEAD" => u32::from(self.chans[ch].head),
            "DMA_CPL_TAIL" => u32::from(self.chans[ch].cpl_tail),
            "DMA_CH_STATUS" => {
                regs::dma_ch_status::BUSY.put32(0, u32::from(self.channel_busy(ch)))
                    | regs::dma_ch_status::HALTED.put32(0, u32::from(self.chans[ch].halted))
            }
            "PERF_LO" => {
                let v = self.perf_value(i);
                self.perf_hi_shadow = (v >> 32) as u32;
                v as u32
            }
            "PERF_HI" => self.perf_hi_shadow,
            "CMDQ_HEAD" => u32::from(self.cmdq.head),
            "FQ_TAIL" => u32::from(self.fq.tail),
            "KQ_HEAD" => u32::from(self.cu.head),
            "KCQ_TAIL" => u32::from(self.cu.kcq_tail),
            _ => 0,
        }
    }

    /// One CSR write (all byte lanes), as the AXI4-Lite slave serves it.
    pub(crate) fn csr_write(&mut self, offset: u32, value: u32) -> Result<(), SlvErr> {
        self.perf_csr_access();
        let (r, i) = decode(offset).ok_or(SlvErr)?;
        match r.access {
            Access::Const | Access::ReadOnly => {}
            Access::ReadWrite => {
                self.rw.set(r, i, value);
                if r.name == "CTRL" && regs::ctrl::CMDQ_EN.get32(value) == 0 {
                    self.cmdq_off();
                }
            }
            Access::ReadWriteHw => self.errinj[((r.offset - regs::ERRINJ_HOST_RD.offset) / 4) as usize] = value,
            Access::WriteOnly => match r.name {
                "RESET" if regs::reset::SOFT.get32(value) == 1 => self.soft_reset(),
                "INT_ACK" => self.int_status &= !value,
                "DMA_CH_CTRL" if regs::dma_ch_ctrl::RESUME.get32(value) == 1 => self.resume(i as usize),
                "DMA_PUSH" => self.dma_push(i as usize / 8, i as usize % 8, value),
                "CMDQ_PUSH" => self.cmdq_push_word(i as usize, value),
                "CMDQ_PUSH_COMMIT" => self.cmdq_push_commit(value),
                "PERF_CTRL" if regs::perf_ctrl::CLEAR.get32(value) == 1 => self.perf_clear(),
                _ => {}
            },
        }
        Ok(())
    }

    /// Consumes one event of injection counter `which` if it is armed.
    pub(crate) fn inject(&mut self, which: Inj) -> bool {
        let c = &mut self.errinj[which as usize];
        if *c == 0 {
            return false;
        }
        *c -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_finds_array_elements_and_refuses_holes() {
        assert_eq!(decode(0x000).map(|(r, i)| (r.name, i)), Some(("ID", 0)));
        assert_eq!(decode(0x250).map(|(r, i)| (r.name, i)), Some(("DMA_DESC_TAIL", 1)));
        assert_eq!(decode(0x8bc).map(|(r, i)| (r.name, i)), Some(("PERF_HI", 23)));
        assert_eq!(decode(0x030), None, "hole after ERR_INFO");
        assert_eq!(decode(0x002), None, "unaligned");
        assert_eq!(decode(0x2c0), None, "no fourth DMA channel");
    }

    #[test]
    fn rw_store_masks_and_soft_reset_keeps_bases() {
        let mut s = RwStore::new();
        s.set(regs::DMA_DESC_BASE_LO, 2, 0xFFFF_FFFF);
        s.set(regs::DMA_DESC_TAIL, 2, 0x1_2345);
        assert_eq!(s.get(regs::DMA_DESC_BASE_LO, 2), 0xFFFF_FFE0);
        assert_eq!(s.get(regs::DMA_DESC_TAIL, 2), 0x2345);
        s.soft_reset();
        assert_eq!(s.get(regs::DMA_DESC_TAIL, 2), 0);
        assert_eq!(s.get(regs::DMA_DESC_BASE_LO, 2), 0xFFFF_FFE0);
    }
}
