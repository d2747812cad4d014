//! First light: CSR transactions through the Verilated RTL's AXI4-Lite slave.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use npu::regs;
use sim_bridge::{SimConfig, SimDevice, SimError};

fn device() -> SimDevice {
    SimDevice::new(SimConfig::default()).expect("the Verilated model builds and resets")
}

#[test]
fn identification_registers_read_back() {
    let mut dev = device();
    assert_eq!(dev.csr_read32(regs::ID.offset).unwrap(), regs::NPU_ID);
    assert_eq!(dev.csr_read32(regs::VERSION.offset).unwrap(), regs::NPU_VERSION);
    let caps0 = dev.csr_read32(regs::CAPS0.offset).unwrap();
    assert_eq!(regs::caps0::DMA_CHANNELS.get32(caps0), 3);
    assert_eq!(regs::caps0::ASIDS.get32(caps0), 16);
    assert_eq!(regs::caps0::TLB_ENTRIES.get32(caps0), 32);
    assert_eq!(regs::caps0::DATA_BYTES_LOG2.get32(caps0), 6, "512-bit data paths");
    let caps1 = dev.csr_read32(regs::CAPS1.offset).unwrap();
    assert_eq!(regs::caps1::DEV_MEM_MIB.get32(caps1), 256);
    assert_eq!(regs::caps1::HOST_WINDOW_SHIFT.get32(caps1), 40);
}

#[test]
fn scratch_write_reads_back() {
    let mut dev = device();
    assert_eq!(dev.csr_read32(regs::SCRATCH.offset).unwrap(), 0, "reset value");
    for v in [0xDEAD_BEEF, 0, 0x1234_5678, u32::MAX] {
        dev.csr_write32(regs::SCRATCH.offset, v).unwrap();
        assert_eq!(dev.csr_read32(regs::SCRATCH.offset).unwrap(), v);
    }
}

#[test]
fn rw_registers_keep_only_writable_bits() {
    let mut dev = device();
    dev.csr_write32(regs::CTRL.offset, u32::MAX).unwrap();
    assert_eq!(dev.csr_read32(regs::CTRL.offset).unwrap(), regs::CTRL.mask);
    let ch2 = regs::DMA_DESC_BASE_LO.at(2).unwrap();
    dev.csr_write32(ch2, 0xFFFF_FFFF).unwrap();
    assert_eq!(dev.csr_read32(ch2).unwrap(), 0xFFFF_FFE0, "descriptor rings are 32-byte aligned");
    assert_eq!(dev.csr_read32(regs::DMA_DESC_BASE_LO.at(1).unwrap()).unwrap(), 0, "other channels untouched");
}

#[test]
fn every_rw_register_resets_and_reads_back_its_mask() {
    let mut dev = device();
    for reg in regs::ALL_REGS.iter().filter(|r| r.access == npu::Access::ReadWrite) {
        for i in 0..reg.count {
            let off = reg.at(i).unwrap();
            assert_eq!(dev.csr_read32(off).unwrap(), reg.reset, "{} [{i}] reset value", reg.name);
            dev.csr_write32(off, 0xA5A5_A5A5).unwrap();
            assert_eq!(dev.csr_read32(off).unwrap(), 0xA5A5_A5A5 & reg.mask, "{} [{i}]", reg.name);
        }
    }
}

#[test]
fn unmapped_and_unaligned_accesses_answer_slverr() {
    let mut dev = device();
    let err = dev.csr_read32(0xFFC).unwrap_err();
    assert!(matches!(err, SimError::CsrError { kind: "read", offset: 0xFFC, resp: 0b10 }), "{err}");
    let err = dev.csr_write32(0x0FC, 1).unwrap_err();
    assert!(matches!(err, SimError::CsrError { kind: "write", offset: 0x0FC, resp: 0b10 }), "{err}");
    let err = dev.csr_write32(regs::SCRATCH.offset + 1, 7).unwrap_err();
    assert!(matches!(err, SimError::CsrError { kind: "write", resp: 0b10, .. }), "{err}");
    assert_eq!(dev.csr_read32(regs::SCRATCH.offset).unwrap(), 0, "an unaligned write changes nothing");
    let err = dev.csr_read32(0x1000).unwrap_err();
    assert!(matches!(err, SimError::CsrOutOfRange { offset: 0x1000, .. }), "{err}");
    assert_eq!(dev.csr_read32(regs::ID.offset).unwrap(), regs::NPU_ID, "the slave still works afterwards");
}

#[test]
fn const_and_readonly_registers_ignore_writes() {
    let mut dev = device();
    dev.csr_write32(regs::ID.offset, 0).unwrap();
    dev.csr_write32(regs::CAPS0.offset, 0).unwrap();
    assert_eq!(dev.csr_read32(regs::ID.offset).unwrap(), regs::NPU_ID);
    assert_ne!(dev.csr_read32(regs::CAPS0.offset).unwrap(), 0);
}

#[test]
fn cycle_counter_matches_the_bridge_clock_and_clears() {
    let mut dev = device();
    dev.step(1000);
    let before = dev.cycles();
    let counted = dev.perf_counter(regs::perf_ctr::CYCLES as u32).unwrap();
    // The LO read is sampled one cycle into the read transaction.
    assert!(counted >= before && counted <= dev.cycles(), "counter {counted}, bridge {before}..{}", dev.cycles());
    let accesses = dev.perf_counter(regs::perf_ctr::CSR_ACCESSES as u32).unwrap();
    // LO+HI of CYCLES counted; the LO read of CSR_ACCESSES samples before its own access.
    assert_eq!(accesses, 2);
    dev.csr_write32(regs::PERF_CTRL.offset, 1).unwrap();
    let after = dev.perf_counter(regs::perf_ctr::CYCLES as u32).unwrap();
    assert!(after < 10, "cleared, then counted only a few cycles: {after}");
}

#[test]
fn advance_skips_an_idle_stretch_yet_counts_every_cycle() {
    let mut dev = device();
    let counted = |d: &mut SimDevice| d.perf_counter(regs::perf_ctr::CYCLES as u32).unwrap();
    // The same stretch stepped cycle by cycle, then advanced: the RTL's own cycle
    // counter and the bridge's clock move alike, but only the second is skipped.
    let mut moved = Vec::new();
    for advance in [false, true] {
        let (c0, n0) = (dev.cycles(), counted(&mut dev));
        if advance {
            dev.advance(20_000).unwrap();
        } else {
            dev.step(20_000);
        }
        let skipped = dev.fast_forward_stats().skipped_cycles;
        moved.push((dev.cycles() - c0, counted(&mut dev) - n0, skipped));
    }
    let [(stepped, stepped_count, none), (advanced, advanced_count, skipped)] = moved[..] else { unreachable!() };
    assert_eq!((stepped, advanced), (stepped_count, advanced_count), "CSR reads take the same cycles either way");
    assert_eq!(stepped, advanced);
    assert_eq!(none, 0, "step evaluates every cycle");
    assert!(dev.fast_forward_on() && skipped >= 19_000, "{skipped} of 20 000 cycles skipped");
}

#[test]
fn error_injection_counts_are_readable_storage() {
    let mut dev = device();
    for reg in [
        regs::ERRINJ_HOST_RD,
        regs::ERRINJ_HOST_WR,
        regs::ERRINJ_DEV_RD,
        regs::ERRINJ_DEV_WR,
        regs::ERRINJ_PTW,
        regs::ERRINJ_POISON,
    ] {
        dev.csr_write32(reg.offset, 5).unwrap();
        assert_eq!(dev.csr_read32(reg.offset).unwrap(), 5, "{}", reg.name);
    }
}

#[test]
fn interrupt_lines_are_quiet_after_reset() {
    let mut dev = device();
    dev.csr_write32(regs::INT_MASK.offset, u32::MAX).unwrap();
    assert_eq!(dev.csr_read32(regs::INT_MASK.offset).unwrap(), 0x7F);
    assert_eq!(dev.csr_read32(regs::INT_STATUS.offset).unwrap(), 0);
    assert_eq!(dev.irq_lines(), 0);
}

#[test]
fn same_inputs_give_same_cycle_counts() {
    let run = || {
        let mut dev = device();
        for i in 0..50u32 {
            dev.csr_write32(regs::SCRATCH.offset, i).unwrap();
            dev.csr_read32(regs::SCRATCH.offset).unwrap();
        }
        (dev.cycles(), dev.perf_counter(regs::perf_ctr::CYCLES as u32).unwrap())
    };
    assert_eq!(run(), run());
}

#[test]
fn waveform_is_written_as_fst() {
    let dir = std::env::temp_dir().join(format!("gmem-fst-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("first_light.fst");
    {
        let mut dev = SimDevice::new(SimConfig { waves: Some(path.clone()), ..SimConfig::default() }).unwrap();
        dev.csr_write32(regs::SCRATCH.offset, 0x55).unwrap();
        dev.finish();
    }
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 100, "FST has content ({} bytes)", bytes.len());
    assert_eq!(bytes[0], 0, "FST files start with a header block (type 0)");
    let err =
        SimDevice::new(SimConfig { waves: Some(dir.join("no/such/dir/x.fst")), ..SimConfig::default() }).err().unwrap();
    assert!(err.to_string().contains("cannot write waveform file"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn soft_reset_clears_host_ring_indices_and_injections_but_keeps_configuration() {
    let mut dev = device();
    dev.csr_write32(regs::CMDQ_BASE_LO.offset, 0x1000).unwrap();
    dev.csr_write32(regs::CMDQ_TAIL.offset, 7).unwrap();
    dev.csr_write32(regs::DMA_DESC_TAIL.at(1).unwrap(), 3).unwrap();
    dev.csr_write32(regs::ERRINJ_PTW.offset, 9).unwrap();
    dev.csr_write32(regs::ERRINJ_HANG.offset, 1).unwrap();
    dev.csr_write32(regs::RESET.offset, 1 << regs::reset::SOFT.lsb).unwrap();
    assert_eq!(dev.csr_read32(regs::CMDQ_TAIL.offset).unwrap(), 0);
    assert_eq!(dev.csr_read32(regs::DMA_DESC_TAIL.at(1).unwrap()).unwrap(), 0);
    assert_eq!(dev.csr_read32(regs::ERRINJ_PTW.offset).unwrap(), 0);
    assert_eq!(dev.csr_read32(regs::ERRINJ_HANG.offset).unwrap(), 0);
    assert_eq!(dev.csr_read32(regs::CMDQ_BASE_LO.offset).unwrap(), 0x1000, "ring bases survive");
}

#[test]
fn soft_reset_clears_pending_interrupts() {
    let mut dev = device();
    // A device error (command fetch from an unmapped ring) raises cause ERROR.
    dev.csr_write32(regs::CMDQ_SIZE_LOG2.offset, 2).unwrap();
    dev.csr_write32(regs::CMDQ_BASE_LO.offset, 0x4000_0000).unwrap();
    dev.csr_write32(regs::CTRL.offset, 1 << regs::ctrl::CMDQ_EN.lsb).unwrap();
    dev.csr_write32(regs::CMDQ_TAIL.offset, 1).unwrap();
    dev.step(2_000);
    assert_ne!(dev.csr_read32(regs::INT_STATUS.offset).unwrap() & (1 << regs::int_cause::ERROR), 0);
    dev.csr_write32(regs::RESET.offset, 1).unwrap();
    dev.step(10);
    assert_eq!(dev.csr_read32(regs::INT_STATUS.offset).unwrap(), 0);
    assert_eq!(dev.csr_read32(regs::ERR_INFO.offset).unwrap(), 0);
}
