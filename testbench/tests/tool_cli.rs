//! `gmem` as a tool: self-describing JSON on every command, page-table dumps of every
//! workload, checks before any output, plots, completions, man page and version.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

mod common;
use common::{gmem, gmem_code, json_lines};

const WORKLOADS: [&str; 7] = ["stream", "add", "gather", "oversubscribe", "pingpong", "prefetch", "thrash"];

/// The provenance every JSON object carries (docs/cli.md).
fn assert_provenance(v: &serde_json::Value, command: &str, backend: &str) {
    assert_eq!(v["command"], command, "{v}");
    assert_eq!(v["backend"], backend, "{v}");
    assert!(v["gmem_version"].as_str().unwrap().starts_with("0.0.0 (commit "), "{v}");
    assert!(["simulated", "virtual", "wall"].contains(&v["clock_domain"].as_str().unwrap()), "{v}");
    assert_eq!(v["clock_hz"], 250_000_000, "{v}");
    assert!(v.get("model").is_some(), "{v}");
}

#[test]
fn pte_dump_works_on_every_workload_with_a_header_and_folded_runs() {
    for w in WORKLOADS {
        let (ok, out, err) = gmem(&["pte", "dump", "--backend", "model", "--workload", w, "--size", "96K"]);
        assert!(ok, "{w}: {err}");
        let mut lines = out.lines();
        assert!(lines.next().unwrap().starts_with(&format!("gmem pte dump: {w} over 96 KiB")), "{w}: {out}");
        let head = lines.next().unwrap();
        assert!(head.starts_with("ASID 1, root table at device 0x") && head.contains(" mapping"), "{w}: {out}");
        let body: Vec<&str> = lines.collect();
        assert!(!body.is_empty(), "{w} says what is mapped or that nothing is: {out}");
    }
    // 1 MiB of stream: one folded line instead of 128.
    let (ok, out, err) = gmem(&["pte", "dump", "--backend", "model", "--size", "1M"]);
    assert!(ok, "{err}");
    assert!(out.contains("L0 4K VRW---AD -> device frame  × 128 pages"), "{out}");
    assert_eq!(out.lines().count(), 3, "{out}");
}

#[test]
fn pte_dump_prints_the_managers_view_next_to_the_ptes() {
    let (ok, out, err) =
        gmem(&["pte", "dump", "--backend", "model", "--workload", "prefetch", "--size", "64K", "--manager"]);
    assert!(ok, "{err}");
    let (ptes, view) = out.split_once("manager's logical page table").expect("the manager's view follows the PTEs");
    assert!(ptes.contains("-> device frame  × 16 pages"), "{out}");
    assert!(view.contains("region 0: 0x10000 bytes") && view.contains("16 x dev0 map=rw"), "{out}");
    let (ok, out, err) = gmem(&["pte", "dump", "--backend", "model", "--size", "64K", "--manager", "--json"]);
    assert!(ok, "{err}");
    let v = &json_lines(&out)[0];
    // Structured: per region its length and runs of pages, 32 KiB in each of two.
    let regions = v["manager"].as_array().expect("manager is an array of regions");
    assert_eq!(regions.len(), 2, "{v}");
    let first = &regions[0]["runs"][0];
    assert_eq!(regions[0]["len"], 32768, "{v}");
    assert_eq!((first["residency"].as_str(), first["pages"].as_u64()), (Some("device"), Some(8)), "{v}");
    assert_eq!((first["device"].as_u64(), first["map"].as_str()), (Some(0), Some("rwx")), "{v}");
    assert_eq!(regions[1]["runs"][0]["residency"], "cpu", "{v}");
    assert!(regions[1]["runs"][0]["frame_pa"].is_null(), "{v}");
    let (ok, out, _) = gmem(&["pte", "dump", "--backend", "model", "--size", "64K"]);
    assert!(ok && !out.contains("manager's logical page table"), "only with --manager: {out}");
}

#[test]
fn pte_dump_json_carries_provenance_counts_and_runs() {
    let (ok, out, err) = gmem(&[
        "pte",
        "dump",
        "--backend",
        "model",
        "--workload",
        "oversubscribe",
        "--size",
        "128K",
        "--device-mem",
        "64K",
        "--seed",
        "3",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v = &json_lines(&out)[0];
    assert_provenance(v, "pte dump", "model");
    assert_eq!(
        (v["seed"].as_u64(), v["size_bytes"].as_u64(), v["device_mem_bytes"].as_u64()),
        (Some(3), Some(128 << 10), Some(64 << 10))
    );
    let runs = v["mappings"].as_array().unwrap();
    let pages: u64 = runs.iter().map(|r| r["pages"].as_u64().unwrap()).sum();
    assert_eq!(v["counts"]["mappings"].as_u64(), Some(pages), "{v}");
    assert!(pages > 0 && pages <= 16, "at most the device memory's 16 pages stay mapped: {v}");
}

#[test]
fn info_and_demo_have_json_with_provenance() {
    let (ok, out, err) = gmem(&["info", "--json"]);
    assert!(ok, "{err}");
    let v = &json_lines(&out)[0];
    assert_provenance(v, "info", "rtl");
    assert_eq!(v["id_ascii"], "NPU1", "{v}");
    assert!(v["counters"]["cycles"].as_u64().unwrap() > 0 && v["counters"]["csr_accesses"].is_u64(), "{v}");
    assert_eq!(v["model"]["link_preset"], "gen3x16", "{v}");
    let (ok, text, _) = gmem(&["info", "--backend", "model"]);
    assert!(ok && text.contains("clock         virtual time of the untimed reference model"), "{text}");
    assert!(!text.contains("Simulated {"), "no Debug output: {text}");

    let (ok, out, err) = gmem(&["demo", "--backend", "model", "--json"]);
    assert!(ok, "{err}");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3, "the identification, then one object per scenario: {out}");
    assert_provenance(&lines[0], "demo", "model");
    assert_eq!((lines[0]["scenario"].as_str(), lines[0]["scratch_ok"].as_bool()), (Some("identify"), Some(true)));
    for (v, (scenario, workload)) in lines[1..].iter().zip([("sharing", "add"), ("oversubscription", "oversubscribe")])
    {
        assert_provenance(v, "demo", "model");
        assert_eq!((v["scenario"].as_str(), v["workload"].as_str()), (Some(scenario), Some(workload)), "{v}");
        assert_eq!(v["correct"], true, "{v}");
    }
    assert!(lines[2]["evictions"].as_u64().unwrap() > 0, "{out}");
}

#[test]
fn run_text_names_its_clock_and_only_prefetch_reports_kernel_faults() {
    let (ok, out, err) = gmem(&["run", "--workload", "stream", "--backend", "model", "--size", "64K"]);
    assert!(ok, "{err}");
    assert!(out.contains("of virtual time (untimed model: not a prediction)") && !out.contains("at 250 MHz"), "{out}");
    assert!(!out.contains("faults in kernels"), "{out}");
    let (ok, out, err) = gmem(&["run", "--workload", "prefetch", "--backend", "model", "--size", "64K"]);
    assert!(ok && out.contains("faults in kernels  0 (after the PREFETCH hint"), "{err}{out}");
}

#[test]
fn bad_values_are_refused_before_any_output_naming_the_flag_and_range() {
    for (args, want) in [
        (
            &["run", "--workload", "stream", "--size", "4097"][..],
            "'--size <SIZE>': accepted: a multiple of 8K from 8K to 1G",
        ),
        (
            &["run", "--workload", "stream", "--device-mem", "1000"][..],
            "'--device-mem <DEVICE_MEM>': accepted: a multiple of 4K",
        ),
        (&["run", "--workload", "stream", "--size", "0"][..], "`0` is zero; a size is at least 1 byte"),
        (&["run", "--workload", "stream", "--size", "99999999999G"][..], "is too large"),
        (
            &["pte", "dump", "--workload", "oversubscribe", "--size", "64K", "--device-mem", "64K"][..],
            "oversubscribe needs --size",
        ),
        (&["run", "--workload", "add", "--size", "16K"][..], "accepted: a multiple of 24K"),
        (
            &["profile", "dma", "--sizes", "64K", "--plot", "/tmp/gmem-plot.png"][..],
            "PNG needs plotters' bitmap backend",
        ),
        (&["profile", "dma", "--sizes", "64K", "--plot", "/nonexistent-dir/p.svg"][..], "cannot write the plot"),
        (&["profile", "cosim", "--runs", "0"][..], "0 is not in 1..=100"),
        (&["profile", "cosim", "--runs", "101"][..], "101 is not in 1..=100"),
        (&["profile", "cosim", "--shrink", "3"][..], "accepted: 1, 2, 4, 8, 16, 32 or 64 (`3`)"),
        (&["profile", "cosim", "--rounds", "1"][..], "unexpected argument '--rounds'"),
        (&["profile", "faults", "--size", "100K"][..], "--size 102400: accepted: a multiple of 64K from 64K to 32M"),
    ] {
        let (code, out, err) = gmem_code(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: nothing printed before the check: {out}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn the_dma_plot_is_readable() {
    let path = std::env::temp_dir().join(format!("gmem-plot-{}.svg", std::process::id()));
    let (ok, _, err) = gmem(&["profile", "dma", "--sizes", "4K,64K", "--plot", path.to_str().unwrap()]);
    assert!(ok, "{err}");
    let svg = std::fs::read_to_string(&path).unwrap();
    // The text elements' contents.
    let texts: Vec<&str> =
        svg.split("<text").skip(1).filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.trim())).collect();
    for want in ["host→device", "device→host", "device→device", "4K", "64K"] {
        assert!(texts.contains(&want), "{want} in the plot: {texts:?}");
    }
    assert!(texts.iter().any(|t| t.starts_with("model: clock=250MHz")), "the model is the subtitle: {texts:?}");
    assert!(texts.iter().any(|t| t.contains("log scale")), "{texts:?}");
    let float_tick = |t: &&str| t.ends_with(".0") && t.len() > 4;
    assert!(!texts.iter().any(|t| t.contains("H2d") || float_tick(t)), "no Debug names or float ticks: {texts:?}");
    std::fs::remove_file(&path).ok();
}

#[test]
fn a_closed_pipe_ends_gmem_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    // The reader is gone before gmem prints (`gmem … | head` after head exits): SIGPIPE
    // ends it, as it ends other tools, instead of a panic on "Broken pipe". The read end
    // is closed before the spawn, so the first write always meets a pipe with no reader
    // (closing it after the spawn raced the child, which could write into the buffer first).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = Command::new(env!("CARGO_BIN_EXE_gmem"))
        .args(["completions", "bash"])
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}: {err}", out.status);
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn completions_man_page_version_and_help() {
    for shell in ["bash", "zsh", "fish"] {
        let (ok, out, err) = gmem(&["completions", shell]);
        assert!(ok, "{err}");
        assert!(out.contains("gmem") && out.contains("soak") && out.contains("waves-depth"), "{shell}: {out}");
    }
    let (ok, man, _) = gmem(&["manpage"]);
    assert!(ok && man.contains(".TH gmem 1"), "{man}");
    // The committed pages are what this gmem renders.
    let fresh = std::env::temp_dir().join(format!("gmem-man-{}", std::process::id()));
    let (ok, _, err) = gmem(&["manpage", "--dir", fresh.to_str().unwrap()]);
    assert!(ok, "{err}");
    let committed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let names = |d: &std::path::Path| {
        let mut v: Vec<String> =
            std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    };
    assert_eq!(names(&fresh), names(&committed), "run `cargo run -p xtask -- man`");
    for name in names(&fresh) {
        let (a, b) = (std::fs::read(fresh.join(&name)).unwrap(), std::fs::read(committed.join(&name)).unwrap());
        assert!(a == b, "testbench/man/{name} is stale: run `cargo run -p xtask -- man`");
    }
    assert!(names(&fresh).contains(&"gmem-pte-dump.1".to_string()));
    std::fs::remove_dir_all(&fresh).ok();
    let (ok, v, _) = gmem(&["--version"]);
    assert!(ok && v.starts_with("gmem 0.0.0 (commit "), "{v}");
    let (ok, help, _) = gmem(&["--help"]);
    assert!(ok && help.contains("Exit codes:") && help.contains("135"), "{help}");
    let (ok, help, _) = gmem(&["soak", "--help"]);
    assert!(ok && !help.contains("[`"), "no raw doc links: {help}");
}

/// `gmem serve` reuses a stale socket and removes its socket when stopped by a signal.
#[test]
fn serve_reclaims_a_stale_socket_and_removes_it_on_sigint_and_sigterm() {
    let dir = std::env::temp_dir().join(format!("gmem-serve-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("npu.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap()); // a server that died
    for (signal, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gmem"))
            .args(["serve", "--vfio-user", sock.to_str().unwrap()])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Listening once it says so on stderr.
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut said = String::new();
        while !said.contains("waiting for a client") {
            let mut line = String::new();
            assert!(std::io::BufRead::read_line(&mut err, &mut line).unwrap() > 0, "gmem serve ended: {said}");
            said.push_str(&line);
        }
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "{said}");
        assert!(!sock.exists(), "the socket is removed on signal {signal}");
        if signal == libc::SIGINT {
            assert!(said.contains("removed the stale socket"), "{said}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
