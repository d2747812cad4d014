//! `readme`: the example outputs in `README.md` are produced by running the commands they
//! show, so they cannot drift from the code unnoticed.
//!
//! An example is a marker comment followed by a fenced block:
//!
//! ````text
//! <!-- output: gmem run --workload oversubscribe --device-mem 2M --size 8M -->
//! ```text
//! …what the command prints…
//! ```
//! ````
//!
//! Marker options, between `output` and the colon, separated by spaces:
//! - `check` — `readme --check` re-runs this example and compares (the default test run
//!   checks these; keep them to the quick ones);
//! - `volatile=A|B` — lines containing `A` or `B` carry host wall-clock figures: their
//!   digits are ignored when comparing;
//! - `from=TEXT` — keep the output from its first line containing `TEXT` (abridging a long
//!   report; the header lines above it are dropped).
//!
//! The command's leading `gmem` is the workspace's `gmem` binary (built by this task, in
//! the release profile when regenerating and the dev profile when checking). Outputs are
//! deterministic for the same command (the co-simulation is); only `volatile` lines differ
//! between runs.

use std::path::Path;
use std::process::Command;

/// One example: where its block sits in the README and how to produce it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// Arguments after `gmem`.
    pub args: Vec<String>,
    /// Re-run by `readme --check`.
    pub check: bool,
    /// Substrings marking lines whose digits are host wall-clock figures.
    pub volatile: Vec<String>,
    /// Keep output from the first line containing this.
    pub from: Option<String>,
    /// Line index of the first line inside the fenced block.
    pub body_start: usize,
    /// Line index of the closing fence.
    pub body_end: usize,
}

/// Errors a malformed README gives, with the line they are on (1-based).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadmeError {
    #[error("README.md:{line}: marker `{text}` is not of the form `<!-- output[ options]: gmem ARGS -->`")]
    BadMarker { line: usize, text: String },
    #[error("README.md:{line}: unknown marker option `{option}` (known: check, volatile=A|B, from=TEXT)")]
    BadOption { line: usize, option: String },
    #[error("README.md:{line}: an output marker must be followed by a fenced block (```)")]
    NoBlock { line: usize },
    #[error("README.md:{line}: the fenced block is never closed")]
    Unclosed { line: usize },
}

const MARKER: &str = "<!-- output";

/// Every example of `text`, in order.
pub fn parse(text: &str) -> Result<Vec<Example>, ReadmeError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        if !line.starts_with(MARKER) {
            continue;
        }
        let bad = || ReadmeError::BadMarker { line: i + 1, text: line.to_string() };
        let inner = line.strip_prefix(MARKER).and_then(|s| s.strip_suffix("-->")).ok_or_else(bad)?;
        let (options, command) = inner.split_once(':').ok_or_else(bad)?;
        let mut words = command.split_whitespace();
        if words.next() != Some("gmem") {
            return Err(bad());
        }
        let args: Vec<String> = words.map(str::to_string).collect();
        let mut ex = Example { args, check: false, volatile: Vec::new(), from: None, body_start: 0, body_end: 0 };
        for option in split_options(options) {
            match option.split_once('=') {
                None if option == "check" => ex.check = true,
                Some(("volatile", v)) => ex.volatile = v.split('|').map(str::to_string).collect(),
                Some(("from", v)) => ex.from = Some(v.to_string()),
                _ => return Err(ReadmeError::BadOption { line: i + 1, option: option.to_string() }),
            }
        }
        if !lines.get(i + 1).is_some_and(|l| l.starts_with("```")) {
            return Err(ReadmeError::NoBlock { line: i + 1 });
        }
        ex.body_start = i + 2;
        ex.body_end = (ex.body_start..lines.len())
            .find(|&j| lines[j].starts_with("```"))
            .ok_or(ReadmeError::Unclosed { line: i + 2 })?;
        out.push(ex);
    }
    Ok(out)
}

/// Options are space-separated; a `from=` or `volatile=` value may hold spaces when quoted.
fn split_options(options: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in options.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The block text an example shows for a command's full output.
pub fn shown(ex: &Example, output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    let start = ex.from.as_ref().and_then(|f| lines.iter().position(|l| l.contains(f.as_str()))).unwrap_or(0);
    let mut text = lines[start..].iter().map(|l| l.trim_end()).collect::<Vec<_>>().join("\n");
    text.push('\n');
    text
}

/// `text` with the digits of volatile lines masked, for comparison.
pub fn masked(ex: &Example, text: &str) -> String {
    text.lines()
        .map(|l| {
            if ex.volatile.iter().any(|v| l.contains(v.as_str())) {
                l.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `readme` with the block bodies replaced by `bodies` (one per example, in order).
pub fn splice(text: &str, examples: &[Example], bodies: &[String]) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut next = 0;
    for (ex, body) in examples.iter().zip(bodies) {
        for l in &lines[next..ex.body_start] {
            out.push_str(l);
            out.push('\n');
        }
        out.push_str(body);
        next = ex.body_end;
    }
    for l in &lines[next..] {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// Builds `gmem` and returns its path.
fn build_gmem(root: &Path, release: bool) -> Result<std::path::PathBuf, String> {
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.current_dir(root).args(["build", "--locked", "-q", "-p", "testbench", "--bin", "gmem"]);
    if release {
        cargo.arg("--release");
    }
    let status = cargo.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("cargo build -p testbench --bin gmem failed".into());
    }
    let target = std::env::var("CARGO_TARGET_DIR").map(Into::into).unwrap_or_else(|_| root.join("target"));
    Ok(target.join(if release { "release" } else { "debug" }).join("gmem"))
}

fn run_example(gmem: &Path, root: &Path, ex: &Example) -> Result<String, String> {
    let shown_cmd = format!("gmem {}", ex.args.join(" "));
    eprintln!("readme: running `{shown_cmd}`");
    let out = Command::new(gmem)
        .current_dir(root)
        .args(&ex.args)
        .env("NO_COLOR", "1")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", gmem.display()))?;
    if !out.status.success() {
        return Err(format!("`{shown_cmd}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(shown(ex, &String::from_utf8_lossy(&out.stdout)))
}

/// Regenerates every example (`check == false`), or re-runs the `check` examples and
/// fails when one differs from the README (`check == true`).
pub fn readme(root: &Path, check: bool) -> Result<(), String> {
    let path = root.join("README.md");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let examples = parse(&text).map_err(|e| e.to_string())?;
    let gmem = build_gmem(root, !check)?;
    let lines: Vec<&str> = text.lines().collect();
    let current = |ex: &Example| {
        let mut s = lines[ex.body_start..ex.body_end].join("\n");
        s.push('\n');
        s
    };
    if check {
        let mut drifted = Vec::new();
        let checked: Vec<&Example> = examples.iter().filter(|e| e.check).collect();
        for ex in &checked {
            let now = run_example(&gmem, root, ex)?;
            if masked(ex, &now) != masked(ex, &current(ex)) {
                eprintln!("readme: `gmem {}` now prints:\n{now}", ex.args.join(" "));
                drifted.push(format!("line {}: gmem {}", ex.body_start, ex.args.join(" ")));
            }
        }
        if drifted.is_empty() {
            println!("readme: {} of {} examples re-run, all match", checked.len(), examples.len());
            return Ok(());
        }
        return Err(format!("README examples drifted (run `cargo run -p xtask -- readme`): {}", drifted.join("; ")));
    }
    let mut bodies = Vec::new();
    for ex in &examples {
        bodies.push(run_example(&gmem, root, ex)?);
    }
    let new = splice(&text, &examples, &bodies);
    let changed = examples.iter().zip(&bodies).filter(|(ex, b)| current(ex) != **b).count();
    std::fs::write(&path, new).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("readme: {} examples, {changed} changed", examples.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "intro\n<!-- output check volatile=wall|ops/s: gmem run --seed 1 -->\n```text\nold 1\nwall 3.5 s\n```\nmid\n<!-- output from=\"figure  \": gmem profile faults -->\n```\nx\n```\nend\n";

    #[test]
    fn parses_markers_and_options() {
        let ex = parse(DOC).expect("parses");
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[0].args, ["run", "--seed", "1"]);
        assert!(ex[0].check && !ex[1].check);
        assert_eq!(ex[0].volatile, ["wall", "ops/s"]);
        assert_eq!(ex[1].from.as_deref(), Some("figure  "));
        assert_eq!((ex[0].body_start, ex[0].body_end), (3, 5));
    }

    #[test]
    fn splice_replaces_only_block_bodies() {
        let ex = parse(DOC).expect("parses");
        let out = splice(DOC, &ex, &["new\n".into(), "y\nz\n".into()]);
        assert_eq!(out, DOC.replace("old 1\nwall 3.5 s\n", "new\n").replace("```\nx\n```", "```\ny\nz\n```"));
    }

    #[test]
    fn masking_ignores_digits_of_volatile_lines_only() {
        let ex = &parse(DOC).expect("parses")[0];
        assert_eq!(masked(ex, "wall 3.5 s\ncycles 12"), masked(ex, "wall 9.1 s\ncycles 12"));
        assert_ne!(masked(ex, "wall 3.5 s\ncycles 12"), masked(ex, "wall 3.5 s\ncycles 13"));
    }

    #[test]
    fn from_abridges_the_header() {
        let ex = &parse(DOC).expect("parses")[1];
        assert_eq!(shown(ex, "head\nfigure   value\nrow  \n"), "figure   value\nrow\n");
    }

    #[test]
    fn malformed_markers_are_errors_with_lines() {
        assert_eq!(
            parse("<!-- output: cargo run -->\n```\n```\n"),
            Err(ReadmeError::BadMarker { line: 1, text: "<!-- output: cargo run -->".into() })
        );
        assert!(matches!(
            parse("<!-- output bogus: gmem x -->\n```\n```\n"),
            Err(ReadmeError::BadOption { line: 1, .. })
        ));
        assert_eq!(parse("<!-- output: gmem x -->\ntext\n"), Err(ReadmeError::NoBlock { line: 1 }));
        assert_eq!(parse("<!-- output: gmem x -->\n```\nbody\n"), Err(ReadmeError::Unclosed { line: 2 }));
    }

    #[test]
    fn the_readme_parses() {
        let text = std::fs::read_to_string(crate::root().join("README.md")).expect("README readable");
        let ex = parse(&text).expect("README markers are well formed");
        assert!(ex.iter().any(|e| e.check), "at least one example is checked by the default test run");
    }
}
