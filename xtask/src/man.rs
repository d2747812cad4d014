//! `cargo run -p xtask -- man`: writes `gmem`'s man pages (clap_mangen, rendered by
//! `gmem manpage`: `gmem.1` and one per subcommand) to `testbench/man/`; a testbench
//! test fails when they are stale.

use std::path::Path;
use std::process::Command;

/// Builds and runs `gmem manpage --dir <root>/testbench/man`.
pub fn write(root: &Path) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let dir = root.join("testbench/man");
    let out = Command::new(cargo)
        .args(["run", "--quiet", "-p", "testbench", "--bin", "gmem", "--", "manpage", "--dir"])
        .arg(&dir)
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!("gmem manpage failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    print!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}
