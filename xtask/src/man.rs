//! `cargo run -p xtask -- man`: writes `gmem`'s man page (clap_mangen, rendered by
//! `gmem manpage`) to `testbench/man/gmem.1`; a testbench test fails when it is stale.

use std::path::Path;
use std::process::Command;

/// Builds and runs `gmem manpage`, writes its output under `root`.
pub fn write(root: &Path) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["run", "--quiet", "-p", "testbench", "--bin", "gmem", "--", "manpage"])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!("gmem manpage failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let path = root.join("testbench/man/gmem.1");
    std::fs::create_dir_all(path.parent().unwrap_or(root)).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(&path, &out.stdout).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("wrote {} ({} bytes)", path.display(), out.stdout.len());
    Ok(())
}
