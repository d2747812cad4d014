//! Waveforms as GTKWave/Surfer users open them: real time (1 ps timescale, 4 ns per
//! cycle at 250 MHz), one top scope `npu_top`, depth and cycle window honoured, path
//! and size printed. Read back with an FST reader.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

mod common;
use common::gmem;
use fst_reader::{FstHierarchyEntry, FstReader};
use std::path::Path;

/// (header, top-level scope names, deepest scope level, signal count).
fn read(path: &Path) -> (fst_reader::FstHeader, Vec<String>, usize, usize) {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut r = FstReader::open(file).unwrap();
    let header = r.get_header();
    let (mut tops, mut depth, mut max_depth, mut vars) = (Vec::new(), 0usize, 0usize, 0usize);
    r.read_hierarchy(|e| match e {
        FstHierarchyEntry::Scope { name, .. } => {
            if depth == 0 {
                tops.push(name);
            }
            depth += 1;
            max_depth = max_depth.max(depth);
        }
        FstHierarchyEntry::UpScope => depth -= 1,
        FstHierarchyEntry::Var { .. } => {
            assert!(depth > 0, "every signal is inside the npu_top scope");
            vars += 1;
        }
        _ => {}
    })
    .unwrap();
    (header, tops, max_depth, vars)
}

#[test]
fn the_waveform_has_real_time_one_top_scope_and_honours_depth_and_window() {
    let dir = std::env::temp_dir();
    let full = dir.join(format!("gmem-waves-full-{}.fst", std::process::id()));
    let part = dir.join(format!("gmem-waves-part-{}.fst", std::process::id()));
    let args = ["run", "--workload", "stream", "--size", "64K", "--link", "ideal", "--waves"];
    let (ok, out, err) = gmem(&[&args[..], &[full.to_str().unwrap()]].concat());
    assert!(ok, "{err}");
    let bytes = std::fs::metadata(&full).unwrap().len();
    let cycles: u64 = out
        .lines()
        .find_map(|l| {
            l.split(" cycles at 250 MHz").next().filter(|_| l.contains("cycles at"))?.rsplit('(').next()?.parse().ok()
        })
        .expect("the run prints its cycles");
    assert!(
        out.contains(&format!("waveform: {} (", full.display())) && out.contains("4 ns per cycle"),
        "path and size printed: {out}"
    );
    let (h, tops, depth, vars) = read(&full);
    assert_eq!(h.timescale_exponent, -12, "1 ps timescale");
    assert_eq!(tops, ["npu_top"], "a single top scope");
    assert!(depth >= 3 && vars > 1000, "the whole hierarchy: depth {depth}, {vars} signals");
    // 4 ns per cycle: the file spans the workload's cycles plus the session's set-up
    // (reset, queues), a few per cent more.
    let ns = h.end_time / 1000;
    assert!(ns >= cycles * 4 && ns < cycles * 4 * 11 / 10, "{ns} ns for {cycles} cycles");
    assert!(bytes > 100_000, "{bytes}");

    let (ok, out, err) = gmem(
        &[&args[..], &[part.to_str().unwrap(), "--waves-depth", "1", "--waves-from", "100", "--waves-to", "2us"]]
            .concat(),
    );
    assert!(ok, "{err}");
    assert!(out.contains("cycles 100..=500, npu_top to depth 1;"), "{out}");
    let (h, tops, depth, vars) = read(&part);
    assert_eq!((tops.as_slice(), depth), (&["npu_top".to_string()][..], 1), "depth 1: npu_top's own signals");
    assert!(vars > 10, "{vars}");
    assert_eq!((h.start_time, h.end_time), (201 * 2000, 1002 * 2000), "cycles 100 to 500 in ps");
    // With --json the waveform is a field of the one object.
    let (ok, out, err) =
        gmem(&[&args[..], &[part.to_str().unwrap(), "--waves-depth", "1", "--waves-to", "100", "--json"]].concat());
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["waves"]["path"], part.to_str().unwrap(), "{v}");
    assert_eq!((v["waves"]["depth"].as_u64(), v["waves"]["to_cycle"].as_u64()), (Some(1), Some(100)), "{v}");
    assert_eq!(v["waves"]["bytes"].as_u64(), Some(std::fs::metadata(&part).unwrap().len()), "{v}");
    for p in [full, part] {
        std::fs::remove_file(p).ok();
    }
}

#[test]
fn waveform_options_are_checked_before_the_run() {
    for (args, want) in [
        (
            &["run", "--workload", "stream", "--backend", "model", "--waves", "/tmp/x.fst"][..],
            "--waves needs --backend rtl",
        ),
        (&["run", "--workload", "stream", "--waves-depth", "2"][..], "--waves <FILE>"),
        (
            &["run", "--workload", "stream", "--waves", "/tmp/gmem-x.fst", "--waves-from", "9", "--waves-to", "3"][..],
            "--waves-from 9 is after --waves-to 3",
        ),
        (&["run", "--workload", "stream", "--waves", "/nonexistent-dir/x.fst"][..], "cannot write the waveform file"),
    ] {
        let (ok, out, err) = gmem(args);
        assert!(!ok && out.is_empty(), "{args:?}: {out}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
