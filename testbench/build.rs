//! Stamps `gmem --version` with the git commit it was built from: `0.0.0 (commit
//! 1a2b3c4d5e6f)`, or `0.0.0 (commit unknown)` when there is no git or no repository
//! (a source tarball). A packager can set `GMEM_GIT_COMMIT` itself.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok().filter(|o| o.status.success())?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=GMEM_GIT_COMMIT");
    let commit = std::env::var("GMEM_GIT_COMMIT").ok().or_else(|| git(&["rev-parse", "--short=12", "HEAD"]));
    // A new commit appends to this worktree's HEAD log; a checkout rewrites HEAD.
    for path in ["logs/HEAD", "HEAD"] {
        if let Some(p) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    println!("cargo:rustc-env=GMEM_COMMIT={}", commit.as_deref().unwrap_or("unknown"));
}
