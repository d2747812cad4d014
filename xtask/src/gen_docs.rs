//! Markdown tables spliced into `docs/device.md` between GENERATED markers.

use crate::regdesc::{Access, Desc, DescError};
use std::fmt::Write;

fn esc(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn registers(d: &Desc) -> Result<String, DescError> {
    let mut s = String::from("| offset | name | access | reset | description |\n|---|---|---|---|---|\n");
    let mut regs: Vec<_> = d.registers.iter().collect();
    regs.sort_by_key(|r| r.offset);
    for r in regs {
        let off = if r.count > 1 {
            format!("{:#05x} + i×{:#x} (i < {})", r.offset, r.stride, r.count)
        } else {
            format!("{:#05x}", r.offset)
        };
        let reset = match r.access {
            Access::Const => format!("{:#010x}", r.value.unwrap_or(0)),
            Access::Rw => format!("{:#010x}", r.reset),
            _ => "—".to_string(),
        };
        let mut desc = esc(&r.doc);
        if r.access == Access::Rw {
            write!(desc, " Writable bits {:#010x}.", r.mask.unwrap_or(0)).ok();
            if r.soft_reset {
                desc += " Cleared by RESET.SOFT.";
            }
        }
        for f in &r.fields {
            write!(desc, "<br>`[{}]` **{}**: {}", f.bits, f.name, esc(&f.doc)).ok();
        }
        writeln!(s, "| `{off}` | `{}` | {} | {reset} | {desc} |", r.name, r.access.as_str()).ok();
    }
    Ok(s)
}

fn constants(d: &Desc) -> String {
    let mut s = String::new();
    for g in &d.constants {
        writeln!(s, "**{}** — {}\n\n| name | value | meaning |\n|---|---|---|", g.name, esc(&g.doc)).ok();
        for v in &g.values {
            writeln!(s, "| `{}_{}` | {:#x} | {} |", g.name, v.name, v.value, esc(&v.doc)).ok();
        }
        s += "\n";
    }
    s.trim_end().to_string() + "\n"
}

fn records(d: &Desc) -> Result<String, DescError> {
    let mut s = String::new();
    for rec in &d.records {
        writeln!(
            s,
            "**{}** ({} bytes) — {}\n\n| bits | field | meaning |\n|---|---|---|",
            rec.name,
            rec.bytes,
            esc(&rec.doc)
        )
        .ok();
        for f in &rec.fields {
            let (msb, lsb) = f.range()?;
            let word = if msb / 64 == lsb / 64 {
                format!(" (dword {}, bits {}:{})", lsb / 64, msb % 64, lsb % 64)
            } else {
                String::new()
            };
            writeln!(s, "| {}{word} | `{}` | {} |", f.bits, f.name, esc(&f.doc)).ok();
        }
        writeln!(s, "\nBits not listed are reserved: written as 0, ignored when read.\n").ok();
    }
    Ok(s.trim_end().to_string() + "\n")
}

/// Replaces the body of every `<!-- BEGIN GENERATED: x -->` … `<!-- END GENERATED: x -->`
/// pair in `doc`; every section must be present exactly once.
pub fn splice(doc: &str, d: &Desc) -> Result<String, DescError> {
    let sections = [("registers", registers(d)?), ("constants", constants(d)), ("records", records(d)?)];
    let mut out = doc.to_string();
    for (name, body) in sections {
        let begin = format!("<!-- BEGIN GENERATED: {name} -->");
        let end = format!("<!-- END GENERATED: {name} -->");
        let (Some(b), Some(e)) = (out.find(&begin), out.find(&end)) else {
            return Err(DescError::Invalid(format!("docs/device.md lacks the marker pair for `{name}`")));
        };
        if e < b || out.matches(&begin).count() != 1 {
            return Err(DescError::Invalid(format!("docs/device.md has misplaced markers for `{name}`")));
        }
        out = format!("{}{begin}\n{body}{}", &out[..b], &out[e..]);
    }
    Ok(out)
}
