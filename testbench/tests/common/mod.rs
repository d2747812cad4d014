//! Running the `gmem` binary from the CLI tests.

#![allow(dead_code)] // each test file uses its own part

use std::process::Command;

/// Runs `gmem args`: (success, stdout, stderr).
pub fn gmem(args: &[&str]) -> (bool, String, String) {
    let (code, out, err) = gmem_code(args);
    (code == Some(0), out, err)
}

/// Runs `gmem args`: (exit code, stdout, stderr); `None` when a signal ended it.
pub fn gmem_code(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gmem")).args(args).output().expect("gmem runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `gmem` with `base` then `extra`, which must succeed and print one JSON object.
pub fn gmem_json(base: &[&str], extra: &[&str]) -> serde_json::Value {
    let args: Vec<&str> = base.iter().chain(extra).copied().collect();
    let (ok, out, err) = gmem(&args);
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{args:?}: not one JSON object ({e}): {out}"))
}

/// Parses every stdout line as one JSON object.
pub fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}
