//! `gmem manpage`: the man pages (clap_mangen) — `gmem.1` and one page per subcommand,
//! named git-style (`gmem-run.1`, `gmem-pte-dump.1`). They carry the crate version
//! only: a commit in them would make the committed pages stale at every commit.

use crate::cli::Cli;
use clap::CommandFactory;
use std::path::Path;

/// Every page as (file name, roff).
pub fn pages() -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut top = Cli::command().version(env!("CARGO_PKG_VERSION"));
    top.build();
    let mut out = Vec::new();
    render(&top, "gmem", &mut out)?;
    Ok(out)
}

fn render(cmd: &clap::Command, name: &str, out: &mut Vec<(String, Vec<u8>)>) -> Result<(), String> {
    let mut roff = Vec::new();
    let page = cmd.clone().name(name.to_string()).bin_name(name.replace("-", " ")).version(env!("CARGO_PKG_VERSION"));
    clap_mangen::Man::new(page).render(&mut roff).map_err(|e| format!("cannot render {name}.1: {e}"))?;
    out.push((format!("{name}.1"), roff));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        render(sub, &format!("{name}-{}", sub.get_name()), out)?;
    }
    Ok(())
}

/// Writes every page into `dir`, or `gmem.1` on stdout.
pub fn write(dir: Option<&Path>) -> Result<(), String> {
    let pages = pages()?;
    let Some(dir) = dir else {
        use std::io::Write;
        return std::io::stdout().write_all(&pages[0].1).map_err(|e| e.to_string());
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, roff) in &pages {
        let path = dir.join(name);
        std::fs::write(&path, roff).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    println!("wrote {} man pages to {}", pages.len(), dir.display());
    Ok(())
}
