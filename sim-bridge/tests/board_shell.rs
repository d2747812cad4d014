//! The board shell's own logic (rtl/board): the BAR0 bridge from the PCIe bridge's
//! AXI4 master onto the CSR slave, and the interrupt-to-MSI-X handshake. Verilator
//! builds the self-checking testbench `rtl/board/tb/tb_npu_board.sv` (timing mode,
//! assertions on) and the test runs it: every check in it must pass.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use std::path::PathBuf;
use std::process::Command;

#[test]
fn board_shell_testbench_passes() {
    let rtl = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rtl");
    let obj = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("board_tb");
    let verilator = std::env::var("VERILATOR").unwrap_or_else(|_| "verilator".into());
    let build = Command::new(verilator)
        .args(["--binary", "--assert", "--timescale", "1ns/1ps", "-j", "2", "--top-module", "tb_npu_board"])
        .arg(format!("-I{}", rtl.join("prim").display()))
        .arg("-Mdir")
        .arg(&obj)
        .arg(rtl.join("prim/prim_reg_slice.sv"))
        .arg(rtl.join("board/npu_board_bar0.sv"))
        .arg(rtl.join("board/npu_board_irq.sv"))
        .arg(rtl.join("board/tb/tb_npu_board.sv"))
        .output()
        .expect("verilator runs (scripts/setup.sh installs it)");
    assert!(build.status.success(), "testbench build failed:\n{}", String::from_utf8_lossy(&build.stderr));
    let run = Command::new(obj.join("Vtb_npu_board")).output().unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success() && out.contains("PASS"), "testbench failed:\n{out}\n{err}");
}
