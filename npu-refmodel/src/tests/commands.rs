//! The command queue: INVAL, FENCE, command validation and device errors.

use super::rig::Rig;
use npu::DeviceIo;
use npu::regs::{self, cmd_opcode as op, dma_error as e, inval_scope as scope};

const UNMAPPED_IOVA: u64 = 0x7700_0000_0000;

fn perf(r: &mut Rig, ctr: u64) -> u64 {
    r.dev.read64(regs::PERF_LO.at(ctr as u32).unwrap()).unwrap()
}

#[test]
fn fence_writes_its_value_after_earlier_commands_and_raises_cmd() {
    let mut r = Rig::new();
    let fence = r.fence_iova;
    r.commands(&[
        (op::INVAL, scope::ALL, 0, 0, 0),
        (op::INVAL, scope::ASID, 99, 0, 0),
        (op::INVAL, scope::RANGE, 3, 0, 0x1234_5000),
        (op::REPLAY, 0, 0, 0x105, 0),
        (op::FENCE, 0, 0, 0xAB, fence),
    ]);
    assert_eq!(r.rd(regs::STATUS), 1 << regs::status::CMDQ_BUSY.lsb, "doorbell rung, no time passed");
    r.step();
    assert_eq!((r.fence_word(), r.irqs()), (0xAB, 0), "FENCE without IRQ");
    assert_eq!(r.rd(regs::CMDQ_HEAD), 5);
    assert_eq!(r.rd(regs::STATUS), 0);
    r.commands(&[(op::FENCE, 1, 0, 0xCD, fence)]);
    r.step();
    assert_eq!((r.fence_word(), r.irqs()), (0xCD, 1 << regs::int_cause::CMD));
    assert_eq!(perf(&mut r, regs::perf_ctr::CMDS), 6);
    assert_eq!(perf(&mut r, regs::perf_ctr::REPLAYS), 1);
    // Disabled: nothing is fetched.
    r.ctrl(regs::ctrl::CMDQ_EN, false);
    r.commands(&[(op::FENCE, 0, 0, 0xEF, fence)]);
    r.step();
    assert_eq!((r.fence_word(), r.rd(regs::CMDQ_HEAD)), (0xCD, 6));
}

#[test]
fn malformed_commands_stop_the_queue_until_soft_reset() {
    let mut r = Rig::new();
    let fence = r.fence_iova;
    let bad = [
        (0, 0, 0, 0, 0),
        (5, 0, 0, 0, 0),
        (op::PTE_WRITE, 1, 0, 0, 0),
        (op::PTE_WRITE, 0, 1, 0, 0),
        (op::PTE_WRITE, 0, 0, (256 << 20) / 8, 0),
        (op::INVAL, 3, 0, 0, 0),
        (op::INVAL, 0b100, 0, 0, 0),
        (op::FENCE, 0b10, 0, 1, fence),
        (op::FENCE, 0, 0, 1, fence + 2),
        (op::REPLAY, 0b10, 0, 0x100, 0),
    ];
    for cmd in bad {
        r.soft_reset();
        r.commands(&[cmd, (op::FENCE, 1, 0, 0x99, fence)]);
        r.step();
        assert_eq!(r.rd(regs::ERR_INFO), e::BAD_DESC as u32, "unit 0 for {cmd:?}");
        assert_eq!(r.irqs(), 1 << regs::int_cause::ERROR, "{cmd:?}");
        assert_ne!(r.fence_word(), 0x99, "nothing after {cmd:?} runs");
        assert_eq!(r.rd(regs::CMDQ_HEAD), 1);
        let s = r.rd(regs::STATUS);
        assert_eq!(
            s,
            1 << regs::status::CMDQ_BUSY.lsb | 1 << regs::status::ERROR.lsb,
            "like the RTL, a stopped queue with entries reads busy"
        );
    }
    r.soft_reset();
    assert_eq!((r.rd(regs::ERR_INFO), r.rd(regs::STATUS), r.rd(regs::CMDQ_HEAD)), (0, 0, 0));
    r.commands(&[(op::FENCE, 0, 0, 0x99, fence)]);
    r.step();
    assert_eq!(r.fence_word(), 0x99, "working again after soft reset");
}

#[test]
fn fetch_and_fence_write_errors_latch_the_first_error_only() {
    let mut r = Rig::new();
    r.commands(&[(op::FENCE, 0, 0, 1, UNMAPPED_IOVA), (op::FENCE, 0, 0, 2, r.fence_iova)]);
    r.step();
    assert_eq!(r.rd(regs::ERR_INFO), e::CPL_WRITE as u32);
    assert_eq!(r.fence_word(), 0);
    r.soft_reset();
    let (cmdq, fq, _, _) = r.ring_iovas();
    r.dev.dma_unmap(cmdq).unwrap();
    r.commands(&[]);
    r.wr(regs::CMDQ_TAIL, 1);
    r.irqs();
    r.step();
    assert_eq!(r.rd(regs::ERR_INFO), e::DESC_FETCH as u32);
    assert_eq!(r.rd(regs::CMDQ_HEAD), 1);
    assert_eq!(r.irqs(), 1 << regs::int_cause::ERROR);
    // A second unit's device error neither replaces ERR_INFO nor interrupts again.
    r.dev.dma_unmap(fq).unwrap();
    r.new_root(1);
    r.submit(&[super::rig::Kd { op: regs::kernel_opcode::FILL, asid: 1, count: 1, c: 0x4000, ..Default::default() }]);
    r.step();
    assert_eq!(r.rd(regs::ERR_INFO), e::DESC_FETCH as u32);
    assert_eq!(r.irqs(), 0);
    assert_eq!(regs::status::FAULTS_PENDING.get32(r.rd(regs::STATUS)), 1);
}
