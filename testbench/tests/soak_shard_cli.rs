//! `gmem soak` cut into segments: the report is the same on one thread or two, and the
//! shards of a run merged are the whole run; reports of different runs are refused.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

mod common;
use common::gmem_code;
use serde_json::Value;

/// 180 ops in 3 segments of 60, injection on so recoveries are in the counts.
const RUN: [&str; 9] = ["soak", "--ops", "180", "--segment-ops", "60", "--seed", "5", "--inject", "8000"];

/// Runs `gmem` with `RUN` and `extra`; its JSON report.
fn soak(extra: &[&str]) -> Value {
    let args: Vec<&str> = RUN.iter().chain(extra).chain(&["--json"]).copied().collect();
    let (code, out, err) = gmem_code(&args);
    assert_eq!(code, Some(0), "{args:?}: {err}{out}");
    serde_json::from_str(out.trim()).expect("one JSON object")
}

/// `v` without its wall time, the one field that may differ between equal runs.
fn timeless(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("wall_s");
    v
}

fn merge(files: &[&std::path::Path], json: bool) -> (Option<i32>, String, String) {
    let mut args = vec!["soak".to_string(), "--merge".into()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    if json {
        args.push("--json".into());
    }
    gmem_code(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn two_threads_and_two_merged_shards_give_the_one_thread_report() {
    let one = timeless(soak(&["--threads", "1"]));
    assert_eq!(
        (one["ops"].as_u64(), one["segments"].as_u64(), one["run_ops"].as_u64()),
        (Some(180), Some(3), Some(180))
    );
    assert_eq!((one["shard"]["index"].as_u64(), one["shard"]["count"].as_u64()), (Some(0), Some(1)), "{one}");
    assert!(one["injected_rtl"].as_u64().unwrap() > 0 && one["recoveries"].as_u64().unwrap() > 0, "{one}");
    assert_eq!(one["verdict"], "PASS", "{one}");
    assert_eq!(timeless(soak(&["--threads", "2"])), one, "the thread count changes nothing in the report");

    let dir = std::env::temp_dir().join(format!("gmem-soak-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (soak(&["--shard", "0/2"]), soak(&["--shard", "1/2"]));
    assert_eq!((a["ops"].as_u64(), b["ops"].as_u64()), (Some(120), Some(60)), "segments 0, 2 and 1");
    let (fa, fb) = (dir.join("0.json"), dir.join("1.json"));
    std::fs::write(&fa, a.to_string()).unwrap();
    std::fs::write(&fb, b.to_string()).unwrap();
    let (code, out, err) = merge(&[&fb, &fa], true);
    assert_eq!(code, Some(0), "{err}");
    let merged: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(timeless(merged), one, "shards 0/2 and 1/2 merged are the whole run");
    let (code, text, _) = merge(&[&fa, &fb], false);
    assert!(code == Some(0) && text.contains("verdict") && text.contains("3 of 60 ops each"), "{text}");

    // Another seed, another --ops, a shard twice or missing: refused, naming why.
    let refused = |edit: &dyn Fn(&mut Value), files: &[&std::path::Path], why: &str| {
        let mut other = b.clone();
        edit(&mut other);
        let fo = dir.join("other.json");
        std::fs::write(&fo, other.to_string()).unwrap();
        let files: Vec<&std::path::Path> =
            files.iter().map(|f| if f.ends_with("other") { fo.as_path() } else { f }).collect();
        let (code, out, err) = merge(&files, true);
        assert_eq!(code, Some(2), "{why}: {out}{err}");
        assert!(out.is_empty() && err.contains(why), "{why}: {err}");
    };
    let other = std::path::Path::new("other");
    refused(&|v| v["seed"] = 6.into(), &[&fa, other], "seed is 6, but");
    refused(&|v| v["run_ops"] = 240.into(), &[&fa, other], "run_ops is 240");
    refused(&|v| v["link"] = "nominal".into(), &[&fa, other], "link is \"nominal\"");
    refused(&|_| {}, &[&fa, &fb, other], "shard 1/2 is in both");
    refused(&|_| {}, &[&fa], "shard 1/2 of the run is missing");
    refused(&|v| v["command"] = "run".into(), &[&fa, other], "not a `gmem soak --json` report");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_threads_segments_and_shards_are_refused_before_any_work() {
    for (args, why) in [
        (&["soak", "--threads", "0"][..], "--threads"),
        (&["soak", "--segment-ops", "0"], "--segment-ops"),
        (&["soak", "--shard", "2/2"], "0 <= I < N"),
        (&["soak", "--shard", "1"], "expected I/N"),
        (&["soak", "--merge", "a.json", "--seed", "3"], "cannot be used with"),
        (&["soak", "--merge", "/nonexistent/gmem-shard.json"], "/nonexistent/gmem-shard.json"),
    ] {
        let (code, out, err) = gmem_code(args);
        assert_eq!(code, Some(2), "{args:?}: {out}{err}");
        assert!(err.contains(why), "{args:?}: {err}");
    }
}
