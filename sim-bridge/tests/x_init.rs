//! X checks that can fire in a 2-state simulator: no uninitialised state of the NPU
//! reaches an output.
//!
//! Verilator has no X, so the RTL's `$isunknown` assertions never fire. Instead this
//! test builds `npu_top` with `--x-initial unique --x-assign unique` under the
//! testbench `rtl/board/tb/tb_x_init.sv` and runs it with every register and memory
//! initialised at random (`+verilator+rand+reset+2`) under several seeds, plus once
//! with everything zero. The testbench folds everything the NPU drives (each VALID and
//! READY, each payload while its VALID is high, the interrupt lines) into a digest: the
//! digests must be equal. A second digest of unmasked payloads must differ between
//! seeds, which shows that the random initial state really reaches the datapath.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use std::path::{Path, PathBuf};
use std::process::Command;

/// (digest of the outputs under VALID, digest of raw payloads, bursts seen).
fn run(bin: &Path, seed: Option<u32>) -> (String, String, u64) {
    let mut cmd = Command::new(bin);
    if let Some(s) = seed {
        cmd.arg("+verilator+rand+reset+2").arg(format!("+verilator+seed+{s}"));
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "testbench failed (seed {seed:?}):\n{text}{}", String::from_utf8_lossy(&out.stderr));
    let line = text.lines().find(|l| l.starts_with("DIGEST ")).unwrap_or_else(|| panic!("no digest in:\n{text}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!((f[0], f[2], f[4]), ("DIGEST", "RAW", "BURSTS"), "{line}");
    (f[1].to_string(), f[3].to_string(), f[5].parse().unwrap())
}

#[test]
fn outputs_do_not_depend_on_uninitialised_state() {
    let rtl = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rtl");
    let obj = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("x_init_tb");
    let verilator = std::env::var("VERILATOR").unwrap_or_else(|_| "verilator".into());
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&rtl)
        .unwrap()
        .chain(std::fs::read_dir(rtl.join("prim")).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sv"))
        .collect();
    sources.sort();
    // Packages first, as in build.rs.
    sources.sort_by_key(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().ends_with("_pkg.sv")));
    let build = Command::new(verilator)
        .args(["--binary", "--x-assign", "unique", "--x-initial", "unique", "--timescale", "1ns/1ps"])
        .args(["-j", "2", "--top-module", "tb_x_init"])
        .arg(format!("-I{}", rtl.join("prim").display()))
        .arg("-Mdir")
        .arg(&obj)
        .args(&sources)
        .arg(rtl.join("board/tb/tb_x_init.sv"))
        .output()
        .expect("verilator runs (scripts/setup.sh installs it)");
    assert!(build.status.success(), "X-check build failed:\n{}", String::from_utf8_lossy(&build.stderr));
    let bin = obj.join("Vtb_x_init");
    let zero = run(&bin, None);
    assert!(zero.2 >= 10, "the stimulus makes the NPU use its memory ports: {zero:?}");
    let mut raws = vec![zero.1.clone()];
    for seed in [1, 2, 3] {
        let r = run(&bin, Some(seed));
        assert_eq!((&r.0, r.2), (&zero.0, zero.2), "seed {seed}: an output depends on uninitialised state");
        raws.push(r.1);
    }
    raws.sort();
    raws.dedup();
    assert_eq!(raws.len(), 4, "random initial state reaches the datapath under every seed");
}
