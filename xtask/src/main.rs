//! Project chores run with `cargo run -p xtask -- <task>`.
//!
//! `codegen` regenerates every file derived from the single register description
//! `rtl/npu_regs.toml`: the SystemVerilog register package and CSR block in `rtl/`,
//! the Rust register constants in `npu/src/regs.rs`, and the register tables in
//! `docs/device.md`. The generated files are committed; `codegen --check` (and the
//! test `generated_files_are_fresh`) fails when any of them is stale.
//!
//! `readme` regenerates the example outputs of `README.md` by running the commands they
//! show (see `readme.rs`); `readme --check` re-runs the quick ones and fails on drift.
//!
//! `man` writes the `gmem` man pages to `testbench/man/` (see `man.rs`).

mod gen_docs;
mod gen_rust;
mod gen_sv;
mod man;
mod readme;
mod regdesc;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// One generated file: where it goes and what it must contain.
struct Output {
    path: PathBuf,
    text: String,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Everything `codegen` would write, computed from the description on disk.
fn outputs(root: &Path) -> Result<Vec<Output>, String> {
    let desc = regdesc::parse(&read(&root.join("rtl/npu_regs.toml"))?).map_err(|e| e.to_string())?;
    let device_md = root.join("docs/device.md");
    Ok(vec![
        Output { path: root.join("rtl/npu_reg_pkg.sv"), text: gen_sv::package(&desc).map_err(|e| e.to_string())? },
        Output { path: root.join("rtl/npu_csr.sv"), text: gen_sv::csr_block(&desc) },
        Output { path: root.join("npu/src/regs.rs"), text: gen_rust::module(&desc).map_err(|e| e.to_string())? },
        Output { text: gen_docs::splice(&read(&device_md)?, &desc).map_err(|e| e.to_string())?, path: device_md },
    ])
}

/// Paths whose content differs from what generation produces.
fn stale(outputs: &[Output]) -> Vec<PathBuf> {
    outputs
        .iter()
        .filter(|o| std::fs::read_to_string(&o.path).ok().as_deref() != Some(o.text.as_str()))
        .map(|o| o.path.clone())
        .collect()
}

fn codegen(check: bool) -> Result<(), String> {
    let root = root();
    let outs = outputs(&root)?;
    let stale = stale(&outs);
    if check {
        if stale.is_empty() {
            println!("codegen: all {} generated files are fresh", outs.len());
            return Ok(());
        }
        let list: Vec<_> = stale.iter().map(|p| p.display().to_string()).collect();
        return Err(format!("stale generated files (run `cargo run -p xtask -- codegen`): {}", list.join(", ")));
    }
    for o in &outs {
        if stale.contains(&o.path) {
            std::fs::write(&o.path, &o.text).map_err(|e| format!("cannot write {}: {e}", o.path.display()))?;
            println!("codegen: wrote {}", o.path.display());
        }
    }
    println!("codegen: {} files, {} changed", outs.len(), stale.len());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["codegen"] => codegen(false),
        ["codegen", "--check"] => codegen(true),
        ["readme"] => readme::readme(&root(), false),
        ["readme", "--check"] => readme::readme(&root(), true),
        ["man"] => man::write(&root()),
        _ => Err(concat!(
            "usage: cargo run -p xtask -- codegen [--check] | readme [--check] | man\n",
            "  codegen  regenerates rtl/npu_reg_pkg.sv, rtl/npu_csr.sv, npu/src/regs.rs and the tables in\n",
            "           docs/device.md from rtl/npu_regs.toml\n",
            "  readme   re-runs the `<!-- output: gmem ... -->` examples of README.md and writes their\n",
            "           outputs; --check re-runs the ones marked `check` and fails when one drifted\n",
            "  man      writes gmem's man pages to testbench/man/"
        )
        .into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_are_fresh() {
        let outs = outputs(&root()).expect("generation succeeds");
        let stale = stale(&outs);
        assert!(stale.is_empty(), "stale generated files, run `cargo run -p xtask -- codegen`: {stale:?}");
    }

    #[test]
    fn changing_a_register_changes_both_sv_and_rust() {
        let text = read(&root().join("rtl/npu_regs.toml")).expect("description readable");
        let before = regdesc::parse(&text).expect("parses");
        let moved = text.replace("name = \"SCRATCH\"\noffset = 0x010", "name = \"SCRATCH\"\noffset = 0x030");
        assert_ne!(moved, text, "the test's edit must apply");
        let after = regdesc::parse(&moved).expect("edited description parses");
        let sv = (gen_sv::package(&before).expect("sv"), gen_sv::package(&after).expect("sv"));
        let rs = (gen_rust::module(&before).expect("rs"), gen_rust::module(&after).expect("rs"));
        assert!(sv.0.contains("REG_SCRATCH_OFFSET = 12'h010") && sv.1.contains("REG_SCRATCH_OFFSET = 12'h030"));
        assert!(rs.0.contains("name: \"SCRATCH\", offset: 0x010") && rs.1.contains("name: \"SCRATCH\", offset: 0x030"));
        let csr = gen_sv::csr_block(&after);
        assert!(csr.contains("12'h030: reg_rdata_o = scratch_q;"));
    }
}
