//! `gmem soak --merge FILE...`: the JSON reports of a run's shards (`--shard I/N
//! --json`, one per CI runner) merged into the report of the whole run.
//!
//! Every report must come from the same run — same seed, `--ops`, `--segment-ops`,
//! injection, rules, link, sizes, backend and `gmem` version — and together they must
//! hold every shard `0/N … N-1/N` exactly once; anything else is refused, naming the
//! file and the field, before anything is printed.

use crate::soak_shard::{PartReport, Shard, merge_counts};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why shard reports cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A file is not a `gmem soak --json` report.
    #[error("{}: not a `gmem soak --json` report: {reason}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A report is of another run than the first.
    #[error("{}: {field} is {got}, but {} has {want}: reports of different runs", path.display(), first.display())]
    Mismatch {
        /// The file that differs.
        path: PathBuf,
        /// The first file.
        first: PathBuf,
        /// The JSON field.
        field: &'static str,
        /// Its value in the first file.
        want: String,
        /// Its value here.
        got: String,
    },
    /// One shard is in two files.
    #[error("shard {shard} is in both {} and {}", a.display(), b.display())]
    Duplicate {
        /// The shard.
        shard: Shard,
        /// One file.
        a: PathBuf,
        /// The other.
        b: PathBuf,
    },
    /// Shards are missing.
    #[error("shard {missing} of the run is missing (have: {have})")]
    Missing {
        /// The first missing shard.
        missing: Shard,
        /// The shards given.
        have: String,
    },
}

/// The fields that name a run: every report merged must agree on all of them.
fn run_fields(v: &Value) -> [(&'static str, String); 12] {
    let f = |k: &str| v.get(k).map_or_else(|| "absent".to_string(), Value::to_string);
    let count = v.get("shard").and_then(|s| s.get("count")).map_or_else(|| "absent".into(), Value::to_string);
    [
        ("seed", f("seed")),
        ("run_ops", f("run_ops")),
        ("segment_ops", f("segment_ops")),
        ("inject_ppm", f("inject_ppm")),
        ("rules", f("rules")),
        ("link", f("link")),
        ("device_mem_bytes", f("device_mem_bytes")),
        ("size_bytes", f("size_bytes")),
        ("shard.count", count),
        ("backend", f("backend")),
        ("model", f("model")),
        ("gmem_version", f("gmem_version")),
    ]
}

fn read(path: &Path) -> Result<(Value, PartReport), MergeError> {
    let text = std::fs::read_to_string(path).map_err(|source| MergeError::Read { path: path.into(), source })?;
    let parse = |reason: String| MergeError::Parse { path: path.into(), reason };
    let v: Value = serde_json::from_str(text.trim()).map_err(|e| parse(e.to_string()))?;
    if v.get("command").and_then(Value::as_str) != Some("soak") {
        return Err(parse("its \"command\" is not \"soak\"".into()));
    }
    let part = PartReport::deserialize(&v).map_err(|e| parse(e.to_string()))?;
    Ok((v, part))
}

/// Merges the shard reports in `paths`; returns the whole run's report and the first
/// file's JSON (for its provenance fields).
pub fn merge_files(paths: &[PathBuf]) -> Result<(PartReport, Value), MergeError> {
    let mut parts: BTreeMap<u64, (PathBuf, PartReport)> = BTreeMap::new();
    let mut first: Option<(PathBuf, Value)> = None;
    for path in paths {
        let (v, part) = read(path)?;
        if let Some((first_path, first_v)) = &first {
            let (want, got) = (run_fields(first_v), run_fields(&v));
            if let Some(((field, want), (_, got))) = want.into_iter().zip(got).find(|(a, b)| a != b) {
                return Err(MergeError::Mismatch { path: path.clone(), first: first_path.clone(), field, want, got });
            }
        } else {
            first = Some((path.clone(), v));
        }
        if let Some((a, _)) = parts.get(&part.shard.index) {
            return Err(MergeError::Duplicate { shard: part.shard, a: a.clone(), b: path.clone() });
        }
        parts.insert(part.shard.index, (path.clone(), part));
    }
    let count = parts.values().next().map_or(1, |(_, p)| p.shard.count);
    if let Some(index) = (0..count).find(|i| !parts.contains_key(i)) {
        let have = parts.values().map(|(_, p)| p.shard.to_string()).collect::<Vec<_>>().join(", ");
        return Err(MergeError::Missing { missing: Shard { index, count }, have });
    }
    let reports: Vec<_> = parts.values().map(|(_, p)| p.report.clone()).collect();
    let (_, head) = parts.values().next().cloned().unwrap_or_default();
    let mut report = merge_counts(&reports);
    report.timing = head.link.describe();
    let merged =
        PartReport { report, segments: parts.values().map(|(_, p)| p.segments).sum(), shard: Shard::default(), ..head };
    Ok((merged, first.map(|(_, v)| v).unwrap_or_default()))
}
