//! `gmem pte dump`: the NPU's page tables after a workload, as a reviewable listing.
//!
//! The driver renders one line per leaf mapping sorted by VA (`npu::NpuDevice::pte_dump`);
//! this module folds runs of identical mappings of consecutive pages into one line
//! (`VA range × N pages`), counts them, and gives the header and the JSON form.

use serde::Serialize;

/// One leaf mapping, or a run of identical ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Run {
    /// First VA.
    pub va_start: u64,
    /// VA after the last page.
    pub va_end: u64,
    /// Table level of the leaf (0: 4 KiB page, 1: 2 MiB superpage).
    pub level: u8,
    /// `4K` or `2M`.
    pub page_size: String,
    /// V R W X U G A D, `-` where clear.
    pub flags: String,
    /// `device frame`, `host page`, or with `--raw` `device 0x…` / `host iova 0x…` of
    /// the first page.
    pub target: String,
    /// Pages (of `page_size`) in the run.
    pub pages: u64,
}

/// Why a dump line could not be read.
#[derive(Debug, thiserror::Error)]
#[error("unexpected page-table dump line `{0}`")]
pub struct BadLine(String);

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

/// Parses the driver's lines `0xVA..0xEND L<level> <size> <flags> -> <target>`.
pub fn parse(text: &str) -> Result<Vec<Run>, BadLine> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let bad = || BadLine(l.to_string());
            let (head, target) = l.split_once(" -> ").ok_or_else(bad)?;
            let mut f = head.split_whitespace();
            let (range, level, size, flags) = (f.next(), f.next(), f.next(), f.next());
            let (va, end) = range.and_then(|r| r.split_once("..")).ok_or_else(bad)?;
            Ok(Run {
                va_start: hex(va).ok_or_else(bad)?,
                va_end: hex(end).ok_or_else(bad)?,
                level: level.and_then(|l| l.strip_prefix('L')?.parse().ok()).ok_or_else(bad)?,
                page_size: size.ok_or_else(bad)?.to_string(),
                flags: flags.ok_or_else(bad)?.to_string(),
                target: target.to_string(),
                pages: 1,
            })
        })
        .collect()
}

/// The target of the page after `r`'s last one, if `r` continues into it: the same
/// text when redacted, the next address with `--raw`.
fn next_target(r: &Run) -> String {
    let step = r.va_end - r.va_start;
    for prefix in ["device 0x", "host iova 0x"] {
        if let Some(addr) = r.target.strip_prefix(prefix).and_then(|a| u64::from_str_radix(a, 16).ok()) {
            return format!("{prefix}{:x}", addr + step);
        }
    }
    r.target.clone()
}

/// Folds consecutive mappings with the same level, flags and (continuing) target.
pub fn fold(lines: Vec<Run>) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    // The target the next page of the last run must have to join it.
    let mut want = String::new();
    for m in lines {
        if let Some(last) = out.last_mut()
            && last.va_end == m.va_start
            && last.level == m.level
            && last.flags == m.flags
            && want == m.target
        {
            want = next_target(&m);
            last.va_end = m.va_end;
            last.pages += 1;
            continue;
        }
        want = next_target(&m);
        out.push(m);
    }
    out
}

/// Totals of a dump.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Leaf mappings (pages and superpages).
    pub mappings: u64,
    /// 4 KiB leaves.
    pub pages_4k: u64,
    /// 2 MiB leaves.
    pub pages_2m: u64,
    /// Leaves pointing at device memory.
    pub to_device: u64,
    /// Leaves pointing at host memory through the host window (remote mappings).
    pub to_host: u64,
    /// Lines after folding.
    pub runs: u64,
}

/// Counts of folded `runs`.
pub fn counts(runs: &[Run]) -> Counts {
    let mut c = Counts { runs: runs.len() as u64, ..Counts::default() };
    for r in runs {
        c.mappings += r.pages;
        if r.page_size == "2M" {
            c.pages_2m += r.pages;
        } else {
            c.pages_4k += r.pages;
        }
        if r.target.starts_with("host") {
            c.to_host += r.pages;
        } else {
            c.to_device += r.pages;
        }
    }
    c
}

/// The listing: one line per run.
pub fn render(runs: &[Run]) -> String {
    runs.iter()
        .map(|r| {
            let n = if r.pages > 1 { format!("  × {} pages", r.pages) } else { String::new() };
            format!(
                "{:#014x}..{:#014x} L{} {} {} -> {}{n}\n",
                r.va_start, r.va_end, r.level, r.page_size, r.flags, r.target
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "\
0x7f0000000000..0x7f0000001000 L0 4K VRW---AD -> device frame
0x7f0000001000..0x7f0000002000 L0 4K VRW---AD -> device frame
0x7f0000002000..0x7f0000003000 L0 4K VRW---AD -> host page
0x7f0000004000..0x7f0000005000 L0 4K VRW---AD -> host page
0x7f0000200000..0x7f0000400000 L1 2M VRW---AD -> device frame
";

    #[test]
    fn identical_consecutive_mappings_fold_and_gaps_or_changes_split() {
        let runs = fold(parse(DUMP).unwrap());
        assert_eq!(runs.len(), 4, "{runs:?}");
        assert_eq!((runs[0].pages, runs[0].va_end), (2, 0x7f00_0000_2000));
        assert_eq!(runs[1].pages, 1, "a gap after it splits the host pages");
        let c = counts(&runs);
        assert_eq!(c, Counts { mappings: 5, pages_4k: 4, pages_2m: 1, to_device: 3, to_host: 2, runs: 4 });
        assert!(
            render(&runs).starts_with("0x7f0000000000..0x7f0000002000 L0 4K VRW---AD -> device frame  × 2 pages\n")
        );
    }

    #[test]
    fn raw_targets_fold_only_where_contiguous() {
        let raw = "\
0x1000..0x2000 L0 4K VRW---AD -> device 0x5000
0x2000..0x3000 L0 4K VRW---AD -> device 0x6000
0x3000..0x4000 L0 4K VRW---AD -> device 0x9000
";
        let runs = fold(parse(raw).unwrap());
        assert_eq!(runs.iter().map(|r| r.pages).collect::<Vec<_>>(), [2, 1]);
        assert!(parse("garbage").is_err());
    }
}
