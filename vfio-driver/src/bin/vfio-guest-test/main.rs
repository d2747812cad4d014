//! `vfio-guest-test`: exercises `vfio-driver` on a real kernel VFIO stack, inside the
//! QEMU guest that `scripts/vfio-guest-test.sh` boots (q35, emulated Intel IOMMU with
//! interrupt remapping, QEMU's `edu` PCI device).
//!
//! The binary is statically linked and runs as the guest's `/init`: it mounts the
//! kernel file systems, checks the error paths that need the host in a particular
//! state (VFIO not loaded, device unbound, group node missing, unprivileged caller),
//! loads the VFIO modules, binds `edu` to vfio-pci, runs the device checks of `edu.rs`
//! (then MSI-X with QEMU's NVMe controller, `nvme.rs`, and IOMMU group viability with two
//! more edu devices behind one bridge, `viable.rs`, and the NPU layer on an NPU-shaped RAM
//! BAR, `npu_ram.rs`),
//! prints one line per check and a `RESULT: N passed, M failed` line, and powers off.
//!
//! Booted with `vfio_guest=nointremap` on the kernel command line (an IOMMU without
//! interrupt remapping), it runs the checks of `intremap.rs` instead; with
//! `vfio_guest=exec` it runs the command list of `scripts/vfio-user-test.sh` against
//! the NPU served over vfio-user (`exec.rs`).
//!
//! Other modes: `--probe-open BDF` and `--probe-unprivileged BDF` (the unprivileged
//! children of the permission and memlock checks) and
//! `--mkcpio OUT NAME=SRC...` (writes the initramfs; a directory is `NAME=`).

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod edu;
mod exec;
mod guest;
mod intremap;
mod npu_ram;
mod nvme;
mod remote;
mod unpriv;
mod viable;

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Instant;

use std::os::unix::process::CommandExt;
use vfio_driver::{OpenOptions, VfioError, VfioPci};

/// Records check outcomes and prints them as they happen.
pub struct Checks {
    passed: u32,
    failed: Vec<String>,
    start: Instant,
}

impl Checks {
    fn new() -> Self {
        Self { passed: 0, failed: Vec::new(), start: Instant::now() }
    }

    /// Records a passed check.
    pub fn pass(&mut self, name: &str, detail: impl AsRef<str>) {
        self.passed += 1;
        println!("PASS [{:6.2}s] {name}: {}", self.start.elapsed().as_secs_f64(), detail.as_ref());
    }

    /// Records a failed check.
    pub fn fail(&mut self, name: &str, why: impl AsRef<str>) {
        self.failed.push(name.to_owned());
        println!("FAIL [{:6.2}s] {name}: {}", self.start.elapsed().as_secs_f64(), why.as_ref());
    }

    /// Records `r` under `name`.
    pub fn check(&mut self, name: &str, r: Result<String, String>) {
        match r {
            Ok(d) => self.pass(name, d),
            Err(e) => self.fail(name, e),
        }
    }
}

/// uid/gid of the unprivileged checks.
pub const NOBODY: u32 = 65534;

fn expect_err(r: Result<VfioPci, VfioError>, want: impl Fn(&VfioError) -> bool) -> Result<String, String> {
    match r {
        Err(e) if want(&e) => Ok(e.to_string().lines().next().unwrap_or_default().to_owned()),
        Err(e) => Err(format!("wrong error: {e}")),
        Ok(_) => Err("opened, but should have failed".into()),
    }
}

fn run_guest() -> ! {
    if let Err(e) = guest::mount_basics() {
        println!("FAIL mount /proc, /sys, /dev: {e}");
        println!("RESULT: 0 passed, 1 failed");
        guest::power_off();
    }
    // The firmware leaves the serial line mid-row: start our report on a fresh line.
    println!();
    let mut c = Checks::new();
    if std::fs::read_to_string("/proc/cmdline").unwrap_or_default().contains("vfio_guest=exec") {
        exec::guest(c);
    }
    let opts = OpenOptions::default();
    let Some(bdf) = guest::find_pci(edu::VENDOR, edu::DEVICE) else {
        c.fail("find the edu device (1234:11e8)", "not on the PCI bus");
        finish(c);
    };
    c.pass("find the edu device (1234:11e8)", &bdf);
    if std::fs::read_to_string("/proc/cmdline").unwrap_or_default().contains("vfio_guest=nointremap") {
        intremap::guest(&mut c);
        finish(c);
    }
    for line in guest::pci_inventory() {
        println!("  pci {line}");
    }

    c.check(
        "VFIO not loaded: VfioMissing",
        expect_err(VfioPci::open(&bdf, &opts), |e| matches!(e, VfioError::VfioMissing { .. })),
    );
    match guest::load_modules(Path::new("/modules")) {
        Ok(m) => c.pass("load VFIO modules", m.join(" ")),
        Err(e) => {
            c.fail("load VFIO modules", e.to_string());
            finish(c);
        }
    }
    c.check(
        "malformed address: Bdf error",
        expect_err(VfioPci::open("00:1e", &opts), |e| matches!(e, VfioError::Bdf(_))),
    );
    c.check(
        "absent device: NoDevice",
        expect_err(VfioPci::open("0000:00:1e.7", &opts), |e| matches!(e, VfioError::NoDevice { .. })),
    );
    c.check(
        "unbound device: NotBound with bind commands",
        expect_err(VfioPci::open(&bdf, &opts), |e| {
            matches!(e, VfioError::NotBound { driver: None, .. })
                && e.to_string().contains("echo 1234 11e8 > /sys/bus/pci/drivers/vfio-pci/new_id")
        }),
    );
    c.check(
        "bind edu to vfio-pci (driver_override)",
        (|| {
            guest::bind_vfio(&bdf).map_err(|e| e.to_string())?;
            let dir = Path::new("/sys/bus/pci/devices").join(&bdf);
            let drv = vfio_driver::sysfs::bound_driver(&dir);
            let group = vfio_driver::sysfs::iommu_group(&dir);
            match (drv.as_deref(), group) {
                (Some("vfio-pci"), Some(g)) if Path::new(&format!("/dev/vfio/{g}")).exists() => {
                    Ok(format!("IOMMU group {g}"))
                }
                other => Err(format!("driver/group after bind: {other:?}")),
            }
        })(),
    );
    let group = vfio_driver::sysfs::iommu_group(&Path::new("/sys/bus/pci/devices").join(&bdf)).unwrap_or(u32::MAX);
    let node = format!("/dev/vfio/{group}");
    let hidden = format!("/dev/vfio/.{group}.hidden");
    c.check(
        "group node missing: GroupMissing",
        match std::fs::rename(&node, &hidden) {
            Err(e) => Err(format!("cannot hide {node}: {e}")),
            Ok(()) => {
                let r = expect_err(VfioPci::open(&bdf, &opts), |e| matches!(e, VfioError::GroupMissing { .. }));
                std::fs::rename(&hidden, &node).map_err(|e| format!("cannot restore {node}: {e}")).and(r)
            }
        },
    );
    c.check(
        "unprivileged caller: PermissionDenied",
        (|| {
            let out = Command::new("/proc/self/exe")
                .args(["--probe-open", &bdf])
                .uid(NOBODY)
                .gid(NOBODY)
                .output()
                .map_err(|e| format!("spawn as uid {NOBODY}: {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if out.status.success() {
                Ok(text)
            } else {
                Err(format!("child: {text} {}", String::from_utf8_lossy(&out.stderr)))
            }
        })(),
    );
    edu::run(&mut c, &bdf);
    unpriv::run(&mut c, &bdf);
    with_bound(&mut c, "NVMe: bind to vfio-pci", (nvme::VENDOR, nvme::DEVICE), nvme::run);
    c.check(
        "NPU layer refuses a 16-byte BAR0: BarTooSmall (i6300esb watchdog)",
        (|| {
            let wdt = guest::find_pci(0x8086, 0x25ab).ok_or("no i6300esb (8086:25ab) on the bus")?;
            guest::bind_vfio(&wdt).map_err(|e| format!("bind {wdt}: {e}"))?;
            match vfio_driver::VfioDevice::open(&wdt) {
                Err(e @ VfioError::BarTooSmall { size: 16, need: 4096, .. }) => Ok(e.to_string()),
                Err(e) => Err(format!("wrong error: {e}")),
                Ok(_) => Err("accepted a 16-byte BAR0".into()),
            }
        })(),
    );
    with_bound(
        &mut c,
        "NPU-shaped RAM BAR: bind QEMU's VGA to vfio-pci",
        (npu_ram::VENDOR, npu_ram::DEVICE),
        npu_ram::run,
    );
    match guest::find_all_pci(edu::VENDOR, edu::DEVICE).as_slice() {
        [_, a, b, ..] => viable::run(&mut c, a, b),
        other => c.fail("shared group: two edu devices behind a PCIe-to-PCI bridge", format!("found {other:?}")),
    }
    finish(c);
}

/// Finds the first device with `ids`, binds it to vfio-pci (one check named `name`),
/// and on success runs `checks` on it.
fn with_bound(c: &mut Checks, name: &str, ids: (u16, u16), checks: fn(&mut Checks, &str)) {
    let bound = guest::find_pci(ids.0, ids.1)
        .ok_or_else(|| format!("no {:04x}:{:04x} device on the bus", ids.0, ids.1))
        .and_then(|bdf| {
            guest::bind_vfio(&bdf).map_err(|e| format!("bind {bdf}: {e}"))?;
            match vfio_driver::sysfs::bound_driver(&Path::new("/sys/bus/pci/devices").join(&bdf)) {
                Some(d) if d == "vfio-pci" => Ok(bdf),
                other => Err(format!("{bdf} bound to {other:?}")),
            }
        });
    let bdf = bound.clone().ok();
    c.check(name, bound);
    if let Some(bdf) = bdf {
        checks(c, &bdf);
    }
}

fn finish(c: Checks) -> ! {
    let total = c.start.elapsed().as_secs_f64();
    if !c.failed.is_empty() {
        println!("failed checks: {}", c.failed.join("; "));
    }
    println!("checks took {total:.2} s");
    println!("RESULT: {} passed, {} failed", c.passed, c.failed.len());
    guest::power_off();
}

fn probe_open(bdf: &str) -> ExitCode {
    match VfioPci::open(bdf, &OpenOptions::default()) {
        Err(e @ VfioError::PermissionDenied { .. }) => {
            println!("{}", e.to_string().split(':').next().unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("unexpected error: {e}");
            ExitCode::FAILURE
        }
        Ok(_) => {
            println!("opened as uid {NOBODY}");
            ExitCode::FAILURE
        }
    }
}

fn mkcpio(args: &[String]) -> ExitCode {
    let Some((out, rest)) = args.split_first() else {
        eprintln!("usage: --mkcpio OUT NAME=SRC...");
        return ExitCode::FAILURE;
    };
    let entries: Vec<(String, Option<String>)> = rest
        .iter()
        .map(|a| match a.split_once('=') {
            Some((n, "")) => (n.to_owned(), None),
            Some((n, s)) => (n.to_owned(), Some(s.to_owned())),
            None => (a.clone(), None),
        })
        .collect();
    match guest::write_cpio(Path::new(out), &entries) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mkcpio {out}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--probe-open") if args.len() == 2 => probe_open(&args[1]),
        Some("--probe-unprivileged") if args.len() == 2 => unpriv::child(&args[1]),
        Some("--remote") if args.len() == 2 => remote::run(&args[1]),
        Some("--reset") if args.len() == 2 => remote::reset(&args[1]),
        Some("--mkcpio") => mkcpio(&args[1..]),
        Some("--guest") => run_guest(),
        None if std::process::id() == 1 => run_guest(),
        _ => {
            eprintln!(
                "vfio-guest-test runs as /init of the guest booted by scripts/vfio-guest-test.sh \
                 (or with --guest);\n  --probe-open BDF | --remote BDF | --reset BDF | --mkcpio OUT NAME=SRC... (NAME= for a directory)"
            );
            ExitCode::from(2)
        }
    }
}
