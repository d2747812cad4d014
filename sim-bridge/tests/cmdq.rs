//! The RTL command queue: ordered execution, FENCE completion writes, interrupts and
//! device errors.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use npu::cmdq::{CmdQueue, Command, InvalScope};
use npu::{DeviceIo, DmaBuffer, regs};
use sim_bridge::{SimConfig, SimDevice};

const BUDGET_NS: u64 = 10_000_000;

fn device() -> SimDevice {
    SimDevice::new(SimConfig::default()).expect("model builds")
}

#[test]
fn fence_completes_after_earlier_commands_with_its_data_and_interrupt() {
    let mut dev = device();
    let mut q = CmdQueue::init(&mut dev, 4).unwrap();
    // From the ring: four commands in one fetched beat (pushed ones: cmdq_push.rs).
    q.set_push(false);
    dev.write32(regs::INT_MASK.offset, 1 << regs::int_cause::CMD).unwrap();
    let word = DmaBuffer::new(4096).unwrap();
    let iova = dev.dma_map(&word).unwrap();
    word.write(0, &[0xEE; 16]).unwrap();
    q.submit(
        &mut dev,
        &[
            Command::Inval(InvalScope::All),
            Command::Inval(InvalScope::Range { asid: 3, va: 0x1000, pages: 4 }),
            Command::Replay { reqid: 0x100, abort: false },
            Command::Fence { data: 0x1234_5678, addr: iova + 4, irq: true },
        ],
    )
    .unwrap();
    let fired = dev.wait_irq(1 << regs::int_cause::CMD, BUDGET_NS).unwrap();
    assert_eq!(fired, 1 << regs::int_cause::CMD, "the FENCE raised interrupt CMD");
    let mut got = [0u8; 16];
    word.read(0, &mut got).unwrap();
    assert_eq!(&got[4..8], &0x1234_5678u32.to_le_bytes(), "fence data written");
    assert!(got[..4].iter().chain(&got[8..]).all(|&b| b == 0xEE), "only the 4 fence bytes written");
    assert_eq!(dev.read32(regs::CMDQ_HEAD.offset).unwrap(), 4);
    assert_eq!(dev.perf_counter(regs::perf_ctr::CMDS as u32).unwrap(), 4);
    dev.write32(regs::INT_ACK.offset, 1 << regs::int_cause::CMD).unwrap();
    assert_eq!(dev.read32(regs::INT_STATUS.offset).unwrap(), 0, "acknowledged");
}

#[test]
fn fences_keep_working_across_ring_wrap() {
    let mut dev = device();
    let mut q = CmdQueue::init(&mut dev, 2).unwrap();
    for i in 0..20u32 {
        let seq = q.run_fenced(&mut dev, &[Command::Inval(InvalScope::Asid(i as u16))], BUDGET_NS).unwrap();
        assert_eq!(seq, i + 1);
    }
    assert_eq!(dev.read32(regs::CMDQ_HEAD.offset).unwrap(), 40 % 4);
    let err = q.submit(&mut dev, &[Command::Inval(InvalScope::All); 4]).unwrap_err();
    assert!(matches!(err, npu::cmdq::CmdqError::Full { needed: 4, free: 3 }), "{err}");
}

fn expect_device_error(dev: &mut SimDevice, code: u64) {
    for _ in 0..100 {
        if regs::status::ERROR.get32(dev.read32(regs::STATUS.offset).unwrap()) == 1 {
            break;
        }
        dev.advance(1_000).unwrap();
    }
    let info = dev.read32(regs::ERR_INFO.offset).unwrap();
    assert_eq!(regs::err_info::CODE.get32(info), code as u32, "ERR_INFO {info:#x}");
    assert_eq!(regs::err_info::UNIT.get32(info), 0, "unit 0 = command queue");
    let pending = dev.read32(regs::INT_STATUS.offset).unwrap();
    assert_ne!(pending & (1 << regs::int_cause::ERROR), 0, "interrupt cause ERROR set");
}

#[test]
fn malformed_commands_and_failed_fence_writes_are_device_errors_cleared_by_soft_reset() {
    let mut dev = device();
    let mut q = CmdQueue::init(&mut dev, 4).unwrap();
    // A fence to an IOVA nothing is mapped at: the write fails.
    q.submit(&mut dev, &[Command::Fence { data: 1, addr: 0x7_0000_0000, irq: false }]).unwrap();
    expect_device_error(&mut dev, regs::dma_error::CPL_WRITE);
    // Soft reset clears the error and the ring indices; the queue works again.
    dev.write32(regs::RESET.offset, 1).unwrap();
    dev.advance(1_000).unwrap();
    assert_eq!(dev.read32(regs::STATUS.offset).unwrap() & (1 << regs::status::ERROR.lsb), 0);
    let mut q = CmdQueue::init(&mut dev, 4).unwrap();
    q.run_fenced(&mut dev, &[], BUDGET_NS).unwrap();
    // A misaligned fence address is a malformed command.
    q.submit(&mut dev, &[Command::Fence { data: 1, addr: q.fence_iova() + 2, irq: false }]).unwrap();
    expect_device_error(&mut dev, regs::dma_error::BAD_DESC);
    let err = q.run_fenced(&mut dev, &[], 100_000).unwrap_err();
    assert!(matches!(err, npu::cmdq::CmdqError::DeviceError { .. } | npu::cmdq::CmdqError::Full { .. }), "{err}");
}

#[test]
fn a_soft_reset_at_any_cycle_of_a_command_fetch_drains_and_the_queue_works_again() {
    // The soft reset lands in every cycle of a submission's life (its AR shown, its beat
    // awaited over the link's 250-cycle read latency, the beat's arrival, its commands
    // decoded and executed), from HEAD 0 (the reset TAIL then equals the fetch's HEAD)
    // and from HEAD 2 (the drain zeroes HEAD right after a fetch moved it).
    // The drain discards what the fetch brings; no assertion fires, both ring indices end
    // at 0, and the queue runs a fenced submission afterwards. The same again with the
    // submission pushed (CMDQ_PUSH): the reset lands while the engine chooses the push,
    // takes it and executes its commands.
    let cmds = [Command::Inval(InvalScope::Asid(1)), Command::Replay { reqid: 0x7, abort: false }];
    for (warm, pushed) in [(false, false), (true, false), (false, true), (true, true)] {
        let cycles = if pushed { 80 } else { 300 };
        for at in 0..cycles {
            let mut dev = device();
            let mut q = CmdQueue::init(&mut dev, 4).unwrap();
            q.set_push(pushed);
            if warm {
                q.run_fenced(&mut dev, &cmds[..1], BUDGET_NS).unwrap();
            }
            q.submit(&mut dev, &cmds).unwrap();
            dev.step(at);
            dev.write32(regs::RESET.offset, 1 << regs::reset::SOFT.lsb).unwrap();
            let case = format!("warm {warm}, pushed {pushed}, reset {at} cycles after the doorbell");
            // The drain waits for the fetch's beat (the link's read latency).
            let drained = (0..40).any(|_| {
                dev.advance(100).unwrap_or_else(|e| panic!("{case}: {e}"));
                regs::status::CMDQ_BUSY.get32(dev.read32(regs::STATUS.offset).unwrap()) == 0
            });
            assert!(drained, "{case}: drained");
            let ends = (dev.read32(regs::CMDQ_HEAD.offset).unwrap(), dev.read32(regs::CMDQ_TAIL.offset).unwrap());
            assert_eq!(ends, (0, 0), "{case}: ring indices reset");
            let mut q = CmdQueue::init(&mut dev, 4).unwrap();
            q.run_fenced(&mut dev, &cmds[..1], BUDGET_NS).unwrap_or_else(|e| panic!("{case}: {e}"));
        }
    }
}
