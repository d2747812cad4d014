//! `vfio_guest=exec`: the guest of `scripts/vfio-user-test.sh`, where the NPU itself —
//! the Verilated RTL served over vfio-user by `gmem serve` — sits on the guest's PCI bus.
//!
//! Loads the VFIO modules, finds the NPU (10ee:9038), binds it to vfio-pci, then runs
//! each line of `/commands` (`label<TAB>[NAME=value…] program args…`, `{bdf}` replaced
//! by the NPU's address, leading `NAME=value` words set in the command's environment)
//! with its output between `--- begin label` and `--- end label` lines, one check per
//! command (exit status 0 passes).

use crate::{Checks, finish, guest};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// The board's IDs (docs/board.md), which `gmem serve` presents too.
const NPU_IDS: (u16, u16) = (0x10ee, 0x9038);

/// Runs the command list and powers off.
pub fn guest(mut c: Checks) -> ! {
    match guest::load_modules(Path::new("/modules")) {
        Ok(m) => c.pass("load VFIO modules", m.join(" ")),
        Err(e) => {
            c.fail("load VFIO modules", e.to_string());
            finish(c);
        }
    }
    for line in guest::pci_inventory() {
        println!("  pci {line}");
    }
    let Some(bdf) = guest::find_pci(NPU_IDS.0, NPU_IDS.1) else {
        c.fail("find the NPU (10ee:9038)", "not on the PCI bus");
        finish(c);
    };
    c.pass("find the NPU (10ee:9038)", &bdf);
    if let Err(e) = guest::bind_vfio(&bdf) {
        c.fail("bind the NPU to vfio-pci", e.to_string());
        finish(c);
    }
    c.pass("bind the NPU to vfio-pci", &bdf);
    let list = std::fs::read_to_string("/commands").unwrap_or_default();
    for line in list.lines().filter(|l| !l.trim().is_empty()) {
        let Some((label, cmd)) = line.split_once('\t') else {
            c.fail(line, "malformed /commands line (want label<TAB>command)");
            continue;
        };
        let args: Vec<String> = cmd.split_whitespace().map(|a| a.replace("{bdf}", &bdf)).collect();
        let env_words = args.iter().take_while(|a| !a.starts_with('/') && a.contains('=')).count();
        let (env, argv) = args.split_at(env_words);
        let Some((prog, rest)) = argv.split_first() else {
            c.fail(label, "empty command");
            continue;
        };
        println!("--- begin {label}: {}", args.join(" "));
        let t = Instant::now();
        let vars = env.iter().filter_map(|w| w.split_once('='));
        let status = Command::new(prog).args(rest).envs(vars).status();
        let secs = t.elapsed().as_secs_f64();
        println!("--- end {label}");
        match status {
            Ok(s) if s.success() => c.pass(label, format!("{secs:.1} s")),
            Ok(s) => c.fail(label, format!("{s} after {secs:.1} s")),
            Err(e) => c.fail(label, format!("cannot run {prog}: {e}")),
        }
    }
    finish(c);
}
