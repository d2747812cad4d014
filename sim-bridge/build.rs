//! Verilates the NPU RTL and links the model through the `extern "C"` shim.
//!
//! Steps: find Verilator (clear error pointing at `scripts/setup.sh` if missing) →
//! `verilator --cc` of every `rtl/*.sv` and `rtl/prim/*.sv` (include path `rtl/prim` for
//! `prim_assert.svh`) into `$OUT_DIR/obj_dir` → `make` of the model
//! archive and of the Verilator runtime objects (make keeps them, so an RTL edit only
//! recompiles the model) → archive the runtime as `libverilated_rt.a` → compile
//! `csrc/shim.cpp` with `cc` → link shim, model, runtime, libstdc++ and zlib in that
//! order.

use std::path::{Path, PathBuf};
use std::process::Command;

const TOP: &str = "npu_top";

fn fail(msg: &str) -> ! {
    eprintln!("\nerror: {msg}\n");
    std::process::exit(1);
}

fn run(cmd: &mut Command, what: &str) {
    let status = cmd.status().unwrap_or_else(|e| fail(&format!("{what}: cannot start: {e}")));
    if !status.success() {
        fail(&format!("{what} failed ({status}); command: {cmd:?}"));
    }
}

fn verilator() -> (String, PathBuf) {
    let bin = std::env::var("VERILATOR").unwrap_or_else(|_| "verilator".into());
    let out = Command::new(&bin).arg("--version").output().unwrap_or_else(|_| {
        fail(
            "Verilator not found (looked for `verilator` on PATH or $VERILATOR). Run `scripts/setup.sh` to install it.",
        )
    });
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let major: u32 =
        version.split_whitespace().nth(1).and_then(|v| v.split('.').next()).and_then(|m| m.parse().ok()).unwrap_or(0);
    if major < 5 {
        fail(&format!("Verilator 5 or newer is required, found `{version}`. Run `scripts/setup.sh`."));
    }
    let root =
        Command::new(&bin).arg("--getenv").arg("VERILATOR_ROOT").output().unwrap_or_else(|e| fail(&e.to_string()));
    let root = PathBuf::from(String::from_utf8_lossy(&root.stdout).trim());
    println!("cargo:rerun-if-env-changed=VERILATOR");
    (bin, root)
}

fn rtl_sources(rtl: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(rtl)
        .unwrap_or_else(|e| fail(&format!("cannot list {}: {e}", rtl.display())))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sv"))
        .collect();
    files.sort();
    // Packages first: Verilator needs them before their users.
    files.sort_by_key(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().ends_with("_pkg.sv")));
    files
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let rtl = manifest.join("../rtl");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    let obj = out.join("obj_dir");
    let jobs = std::env::var("NUM_JOBS").unwrap_or_else(|_| "2".into());
    println!("cargo:rerun-if-changed={}", rtl.display());
    println!("cargo:rerun-if-changed=csrc");
    let prim = rtl.join("prim");
    println!("cargo:rerun-if-changed={}", prim.display());
    let mut sources = rtl_sources(&rtl);
    sources.extend(rtl_sources(&prim));
    for s in &sources {
        println!("cargo:rerun-if-changed={}", s.display());
    }

    let (bin, vroot) = verilator();
    let prefix = format!("V{TOP}");
    let mut cmd = Command::new(&bin);
    cmd.args(["--cc", "-O3", "--x-assign", "fast", "--x-initial", "fast", "--trace-fst", "--assert"])
        .args(["--top-module", TOP, "--prefix", &prefix])
        .arg(format!("-I{}", prim.display()))
        .arg("-Mdir")
        .arg(&obj)
        .args(&sources);
    run(&mut cmd, "verilator");

    let runtime = ["verilated.o", "verilated_threads.o", "verilated_fst_c.o"];
    let mut make = Command::new("make");
    make.arg("-C").arg(&obj).args(["-f", &format!("{prefix}.mk"), "-j", &jobs, "OPT_FAST=-O2"]);
    make.arg(format!("{prefix}__ALL.a")).args(runtime);
    run(&mut make, "make (Verilated model)");

    let archive = obj.join("libverilated_rt.a");
    let newest_obj =
        runtime.iter().filter_map(|o| std::fs::metadata(obj.join(o)).and_then(|m| m.modified()).ok()).max();
    let archive_time = std::fs::metadata(&archive).and_then(|m| m.modified()).ok();
    if archive_time.is_none() || newest_obj > archive_time {
        let _ = std::fs::remove_file(&archive);
        run(
            Command::new("ar").arg("rcs").arg(&archive).args(runtime.iter().map(|o| obj.join(o))),
            "ar (Verilator runtime)",
        );
    }

    let include = vroot.join("include");
    cc::Build::new()
        .cpp(true)
        .file(manifest.join("csrc/shim.cpp"))
        .file(manifest.join("csrc/bare_harness.cpp"))
        .include(&obj)
        .include(&include)
        .include(include.join("vltstd"))
        .flag("-std=c++17")
        .flag("-O2")
        .flag_if_supported("-Wno-unused-parameter")
        .compile("npu_shim");

    println!("cargo:rustc-link-search=native={}", obj.display());
    println!("cargo:rustc-link-lib=static:+verbatim={prefix}__ALL.a");
    println!("cargo:rustc-link-lib=static=verilated_rt");
    // A static glibc build (`-C target-feature=+crt-static`, the gmem that runs inside
    // the vfio-user guest) must take libstdc++ and zlib as archives too: a dylib there
    // gives a half-static binary that crashes at start-up.
    let crt_static = std::env::var("CARGO_CFG_TARGET_FEATURE").is_ok_and(|f| f.split(',').any(|x| x == "crt-static"));
    if crt_static {
        for lib in ["libstdc++.a", "libz.a"] {
            let out = Command::new("g++").arg(format!("-print-file-name={lib}")).output();
            if let Some(dir) = out
                .ok()
                .and_then(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).parent().map(PathBuf::from))
            {
                println!("cargo:rustc-link-search=native={}", dir.display());
            }
        }
    }
    let kind = if crt_static { "static" } else { "dylib" };
    println!("cargo:rustc-link-lib={kind}=stdc++");
    println!("cargo:rustc-link-lib={kind}=z");
}
