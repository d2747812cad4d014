//! Verilates the NPU RTL and links the model through the `extern "C"` shim.
//!
//! Steps: find Verilator (clear error pointing at `scripts/setup.sh` if missing) →
//! `verilator --cc` of every `rtl/*.sv` and `rtl/prim/*.sv` (include path `rtl/prim` for
//! `prim_assert.svh`) into `$OUT_DIR/obj_dir` → `make` of the model
//! archive and of the Verilator runtime objects (make keeps them, so an RTL edit only
//! recompiles the model) → archive the runtime as `libverilated_rt.a` → compile
//! `csrc/shim.cpp` with `cc` → link shim, model, runtime, libstdc++ and zlib in that
//! order.
//!
//! With the `plain-model` feature a second build of the same RTL is linked next to it
//! (`--prefix Vnpu_plain`, shim functions `npu_plain_*`): the plain reference that
//! `gmem profile cosim` measures the shipped build against. It costs a second model
//! compile (minutes), so CI does not build it.
//!
//! Options of the shipped build, each measured with `gmem profile cosim` and the bare
//! harness (figures, commands and machine load in docs/testing.md, "Co-simulation
//! speed"; CPU-time medians of alternating runs):
//! - Verilator `-O3 --x-assign fast --x-initial fast --trace-fst --assert`. Assertions
//!   stay on. FST trace support stays compiled in (`--waves` without a rebuild) although
//!   it costs about 5 % with the trace off.
//! - Generated C++ at `-O2 -march=native` (+10 % over `-O2`): the model is built on the
//!   machine that runs it. `GMEM_MODEL_MARCH` overrides the `-march` value
//!   (`GMEM_MODEL_MARCH=x86-64-v2` or any GCC `-march`), `GMEM_MODEL_MARCH=portable`
//!   leaves it out; a static (`crt-static`, the vfio-user guest's `gmem`, run under
//!   QEMU's `-cpu max`) or cross build leaves it out by default. `-Os` was 43 % slower;
//!   `-O3` gained 3–9 %, within the noise of the loaded machine, so not adopted.
//! - `GMEM_MODEL_OPT` replaces the C++ optimisation level (default `-O2`).
//! - `GMEM_MODEL_THREADS=N` verilates with `--threads N` (default: single-threaded;
//!   `--threads 2` was 5–40× slower on a busy 2-CPU machine).
//! - `GMEM_MODEL_PGO=1`: GCC profile-guided optimisation of the generated C++, trained
//!   on the bare harness's DMA workload (`csrc/pgo_train.cpp`); the model is compiled
//!   twice, so it is off by default (CI). +17 % over `-march=native` alone on the bare
//!   harness; on the demo workload speedup_vs_plain_cpu 1.11 instead of 0.91. The
//!   profiles stay in `$OUT_DIR/obj_dir`: a rebuild without an RTL or option change
//!   does not train again.

use std::path::{Path, PathBuf};
use std::process::Command;

const TOP: &str = "npu_top";

/// Verilator options of the shipped build.
const SHIPPED_VERILATOR: &[&str] = &["-O3", "--x-assign", "fast", "--x-initial", "fast", "--trace-fst", "--assert"];
/// C++ optimisation of the shipped build's hot code unless `GMEM_MODEL_OPT` says otherwise.
const SHIPPED_OPT: &str = "-O2";
/// The Verilator runtime objects the shipped build links (the plain build shares them).
const RUNTIME: [&str; 3] = ["verilated.o", "verilated_threads.o", "verilated_fst_c.o"];

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

fn env(name: &str) -> Option<String> {
    println!("cargo:rerun-if-env-changed={name}");
    std::env::var(name).ok()
}

fn verilator() -> (String, PathBuf) {
    let bin = env("VERILATOR").unwrap_or_else(|| "verilator".into());
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

/// The C++ flags of the shipped build's hot code: optimisation level and `-march`.
fn shipped_cxx_flags() -> Vec<String> {
    let mut flags: Vec<String> =
        env("GMEM_MODEL_OPT").unwrap_or_else(|| SHIPPED_OPT.into()).split_whitespace().map(String::from).collect();
    let native_ok = !crt_static() && std::env::var("TARGET").ok() == std::env::var("HOST").ok();
    let march = env("GMEM_MODEL_MARCH").unwrap_or_else(|| if native_ok { "native".into() } else { "portable".into() });
    if !march.is_empty() && march != "portable" {
        flags.push(format!("-march={march}"));
    }
    flags
}

fn crt_static() -> bool {
    std::env::var("CARGO_CFG_TARGET_FEATURE").is_ok_and(|f| f.split(',').any(|x| x == "crt-static"))
}

/// One Verilated build of the RTL: its class prefix, its folder and its options.
struct ModelBuild<'a> {
    prefix: &'a str,
    obj: PathBuf,
    verilator: Vec<String>,
    cxx: Vec<String>,
}

impl ModelBuild<'_> {
    /// The options as one line (also shown by `gmem profile cosim`).
    fn describe(&self) -> String {
        self.options(&self.cxx)
    }

    /// Verilates `sources` into this build's folder.
    fn verilate(&self, bin: &str, prim: &Path, sources: &[PathBuf]) {
        let mut cmd = Command::new(bin);
        cmd.arg("--cc")
            .args(&self.verilator)
            .args(["--top-module", TOP, "--prefix", self.prefix])
            .arg(format!("-I{}", prim.display()))
            .arg("-Mdir")
            .arg(&self.obj)
            .args(sources);
        run(&mut cmd, "verilator");
    }

    fn make_cmd(&self, jobs: &str, cxx: &[String], extra: &[&str]) -> Command {
        let mut make = Command::new("make");
        make.arg("-C").arg(&self.obj).args(["-f", &format!("{}.mk", self.prefix), "-j", jobs]);
        make.arg(format!("OPT_FAST={}", cxx.join(" ")));
        make.arg(format!("{}__ALL.a", self.prefix)).args(extra);
        make
    }

    /// True if the model archive was made with `cxx` and is newer than its sources.
    fn up_to_date(&self, cxx: &[String], extra: &[&str]) -> bool {
        let stamp = std::fs::read_to_string(self.obj.join("gmem-build-options.txt")).ok();
        let question = self.make_cmd("1", cxx, extra).arg("-q").status();
        stamp.as_deref() == Some(self.options(cxx).as_str()) && question.is_ok_and(|s| s.success())
    }

    fn options(&self, cxx: &[String]) -> String {
        let verilator: String = self.verilator.iter().map(|f| format!(" {f}")).collect();
        format!("verilator --cc{verilator}; C++ {}", cxx.join(" "))
    }

    /// Makes the model archive plus `extra` targets (runtime objects) with the C++
    /// options `cxx`. Objects of a build with other options are removed first: make
    /// only compares timestamps.
    fn compile(&self, jobs: &str, cxx: &[String], extra: &[&str]) {
        let stamp = self.obj.join("gmem-build-options.txt");
        let options = self.options(cxx);
        if std::fs::read_to_string(&stamp).ok().as_deref() != Some(options.as_str()) {
            self.remove(&["o", "a"]);
        }
        run(&mut self.make_cmd(jobs, cxx, extra), "make (Verilated model)");
        std::fs::write(&stamp, options).unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", stamp.display())));
    }

    fn remove(&self, extensions: &[&str]) {
        if let Ok(dir) = std::fs::read_dir(&self.obj) {
            for p in dir.filter_map(|e| e.ok().map(|e| e.path())) {
                if p.extension().is_some_and(|x| extensions.iter().any(|e| x == *e)) {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
    }

    /// GCC profile-guided optimisation: build with -fprofile-generate, run the bare
    /// harness's DMA workload (`csrc/pgo_train.cpp`), leave the profiles (`*.gcda`)
    /// next to the objects for the -fprofile-use build. Skipped when that build is
    /// up to date (an RTL edit or other options redo it).
    fn train(&self, manifest: &Path, vroot: &Path, jobs: &str, final_cxx: &[String]) {
        if self.up_to_date(final_cxx, &RUNTIME) {
            return;
        }
        self.remove(&["gcda"]);
        let mut gen_cxx = self.cxx.clone();
        gen_cxx.extend(["-fprofile-generate".into(), "-fprofile-update=single".into()]);
        self.compile(jobs, &gen_cxx, &RUNTIME);
        let include = vroot.join("include");
        let exe = self.obj.join("pgo_train");
        let mut cxx = Command::new("g++");
        cxx.arg("-std=c++17")
            .args(&gen_cxx)
            .arg(format!("-I{}", self.obj.display()))
            .arg(format!("-I{}", include.display()))
            .arg(format!("-I{}", include.join("vltstd").display()))
            .arg(manifest.join("csrc/pgo_train.cpp"))
            .arg(manifest.join("csrc/bare_harness.cpp"))
            .arg(self.obj.join(format!("{}__ALL.a", self.prefix)))
            .args(RUNTIME.iter().map(|o| self.obj.join(o)))
            .args(["-lz", "-lpthread", "-o"])
            .arg(&exe);
        run(&mut cxx, "g++ (PGO training harness)");
        run(Command::new(&exe).current_dir(&self.obj), "PGO training run");
    }

    /// Compiles `csrc/shim.cpp` (and `more` sources) against this build as `lib`.
    fn shim(&self, manifest: &Path, vroot: &Path, lib: &str, defines: &[(&str, &str)], more: &[&str]) {
        let include = vroot.join("include");
        let mut cc = cc::Build::new();
        cc.cpp(true)
            .file(manifest.join("csrc/shim.cpp"))
            .include(&self.obj)
            .include(&include)
            .include(include.join("vltstd"))
            .flag("-std=c++17")
            .flag_if_supported("-Wno-unused-parameter");
        for f in more {
            cc.file(manifest.join(f));
        }
        for f in &self.cxx {
            cc.flag(f);
        }
        for (k, v) in defines {
            cc.define(k, Some(*v));
        }
        cc.compile(lib);
        println!("cargo:rustc-link-search=native={}", self.obj.display());
        println!("cargo:rustc-link-lib=static:+verbatim={}__ALL.a", self.prefix);
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let rtl = manifest.join("../rtl");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
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
    let mut verilator_flags: Vec<String> = SHIPPED_VERILATOR.iter().map(|s| s.to_string()).collect();
    if let Some(n) = env("GMEM_MODEL_THREADS").filter(|n| n != "1" && !n.is_empty()) {
        verilator_flags.extend(["--threads".to_string(), n]);
    }
    let mut shipped = ModelBuild {
        prefix: "Vnpu_top",
        obj: out.join("obj_dir"),
        verilator: verilator_flags,
        cxx: shipped_cxx_flags(),
    };
    shipped.verilate(&bin, &prim, &sources);
    if env("GMEM_MODEL_PGO").is_some_and(|v| v == "1") {
        let mut used = shipped.cxx.clone();
        used.extend(["-fprofile-use", "-fprofile-partial-training", "-Wno-missing-profile"].map(String::from));
        shipped.train(&manifest, &vroot, &jobs, &used);
        shipped.cxx = used;
    }
    shipped.compile(&jobs, &shipped.cxx, &RUNTIME);
    println!("cargo:rustc-env=GMEM_MODEL_FLAGS={}", shipped.describe());

    let obj = &shipped.obj;
    let archive = obj.join("libverilated_rt.a");
    let newest_obj =
        RUNTIME.iter().filter_map(|o| std::fs::metadata(obj.join(o)).and_then(|m| m.modified()).ok()).max();
    let archive_time = std::fs::metadata(&archive).and_then(|m| m.modified()).ok();
    if archive_time.is_none() || newest_obj > archive_time {
        let _ = std::fs::remove_file(&archive);
        run(
            Command::new("ar").arg("rcs").arg(&archive).args(RUNTIME.iter().map(|o| obj.join(o))),
            "ar (Verilator runtime)",
        );
    }
    shipped.shim(&manifest, &vroot, "npu_shim", &[], &["csrc/bare_harness.cpp"]);

    // The plain reference: `verilator --cc` with nothing but what it needs to compile,
    // generated C++ at -O2 (no -march, no PGO), no trace support.
    let plain =
        ModelBuild { prefix: "Vnpu_plain", obj: out.join("obj_plain"), verilator: vec![], cxx: vec!["-O2".into()] };
    println!("cargo:rustc-env=GMEM_PLAIN_MODEL_FLAGS={}", plain.describe());
    if std::env::var_os("CARGO_FEATURE_PLAIN_MODEL").is_some() {
        plain.verilate(&bin, &prim, &sources);
        plain.compile(&jobs, &plain.cxx, &[]);
        let defines = [
            ("NPU_MODEL", "Vnpu_plain"),
            ("NPU_HEADER", "\"Vnpu_plain.h\""),
            ("NPU_API", "npu_plain_"),
            ("NPU_TRACE", "0"),
            ("NPU_FIXED_POINT", "0"),
        ];
        plain.shim(&manifest, &vroot, "npu_shim_plain", &defines, &[]);
    }

    println!("cargo:rustc-link-search=native={}", obj.display());
    println!("cargo:rustc-link-lib=static=verilated_rt");
    // A static glibc build (`-C target-feature=+crt-static`, the gmem that runs inside
    // the vfio-user guest) must take libstdc++ and zlib as archives too: a dylib there
    // gives a half-static binary that crashes at start-up.
    let crt_static = crt_static();
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
