#!/usr/bin/env python3
"""Fails when the workspace declares a dependency nothing uses.

1. Every key of the root [workspace.dependencies] must be named by some member crate.
2. Every dependency a member declares ([dependencies], [dev-dependencies],
   [build-dependencies]) must appear as an identifier (`name::`, `use name`, `name!`)
   in that crate's Rust files (src/, tests/, benches/, build.rs).
A small stand-in for cargo-machete/cargo-udeps, which need a crates.io build in CI.
Prints one line per unused dependency; exits 1 if there is any.
"""
import pathlib
import re
import sys
import tomllib

root = pathlib.Path(__file__).resolve().parent.parent
ws = tomllib.loads((root / "Cargo.toml").read_text())
members = ws["workspace"]["members"]
declared = set(ws["workspace"].get("dependencies", {}))
problems = []
named = set()
for m in members:
    manifest = tomllib.loads((root / m / "Cargo.toml").read_text())
    rust = "\n".join(p.read_text(errors="replace") for p in (root / m).rglob("*.rs") if "target" not in p.parts)
    for table in ("dependencies", "dev-dependencies", "build-dependencies"):
        for dep in manifest.get(table, {}):
            named.add(dep)
            ident = dep.replace("-", "_")
            if not re.search(rf"\b{re.escape(ident)}(::|!|\s*;|\s*\{{)", rust) and not re.search(
                rf"\buse\s+{re.escape(ident)}\b", rust
            ):
                problems.append(f"{m}: [{table}] {dep} is declared but never used in {m}/")
for dep in sorted(declared - named):
    problems.append(f"Cargo.toml: [workspace.dependencies] {dep} is used by no member crate")
for p in problems:
    print(f"check-deps: {p}")
if problems:
    sys.exit(1)
print(f"check-deps: every declared dependency of {len(members)} crates is used")
