#!/usr/bin/env python3
"""Fail when the modules of one crate import each other in a cycle.

Usage: check-module-cycles.py [--graph] <crate-src-dir>     (e.g. gmem-host/src)
       --graph also prints every module with the modules it imports.

Reads every .rs file under the directory (the crate root is lib.rs or main.rs), with
comments, string and char literals blanked first, and collects the paths that name
another module of the crate:
  * `use` declarations (nested groups expanded; `crate::`, `super::`, `self::` and paths
    that start at a child module),
  * `crate::x::…`, `super::…` and `self::…` paths anywhere in code.

Granularity: one node per source file, named by its module path (`migrate`,
`migrate::to_host` for `migrate/to_host.rs` or `migrate/to_host/mod.rs`). Inline modules
(`mod tests { … }`) belong to their file's node; `super::` inside them is resolved
through the inline nesting. A reference names the module that *defines* the item: an
item re-exported with `pub use` (at the crate root or in any module, globs included) is
followed to its origin, so a path through a re-export never hides a dependency.

Edges from a module to its own descendants are not counted (a module may declare,
re-export and call its children); everything else is: child to parent, sibling to
sibling, and any module to any other.

Not seen (no path in the source): method calls on a type of another module and trait
impls. Keep cross-module entry points free functions or inherent methods of the
module's own types, so that a dependency shows up as a path.

Prints every cycle (with the first reference behind each edge) and exits 1; otherwise
prints one summary line and exits 0.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections import defaultdict

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(src: str) -> str:
    """Blank comments and string/char literals, keeping newlines (for line numbers)."""
    out = []
    i, n = 0, len(src)

    def blank(s: str) -> str:
        return "".join("\n" if c == "\n" else " " for c in s)

    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(src[i:j]))
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(src[i:j]))
            i = j
        elif (m := re.match(r'b?r(#*)"', src[i:])) and (i == 0 or not re.match(r"\w", src[i - 1])):
            end = '"' + m.group(1)
            j = src.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append('""' + blank(src[i + 2 : j]))
            i = j
        elif c == '"' or (c == "b" and src.startswith('b"', i) and (i == 0 or not re.match(r"\w", src[i - 1]))):
            j = i + (2 if c == "b" else 1)
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            j += 1
            out.append('""' + blank(src[i + 2 : j]))
            i = j
        elif c == "'":
            # Char literal ('x', '\n', '\u{1F600}') or a lifetime ('a).
            m = re.match(r"'(\\(u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'])'", src[i:])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand_use_tree(tree: str) -> list[tuple[list[str], str | None]]:
    """`a::{b, c::{d as e}}` -> [(['a','b'], None), (['a','c','d'], 'e')]; '*' kept."""
    tree = re.sub(r"\s+", " ", tree).strip()
    tree = re.sub(r"\s*(::|\{|\}|,)\s*", r"\1", tree)

    def parse(s: str, prefix: list[str]) -> list[tuple[list[str], str | None]]:
        items, depth, start = [], 0, 0
        for k, ch in enumerate(s + ","):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                part = s[start:k].strip()
                start = k + 1
                if not part:
                    continue
                if "{" in part:
                    head, _, rest = part.partition("{")
                    segs = [x for x in head.split("::") if x]
                    items += parse(rest[: rest.rfind("}")], prefix + segs)
                else:
                    alias = None
                    m = re.match(rf"^(.*\S)\s+as\s+({IDENT})$", part)
                    if m:
                        part, alias = m.group(1), m.group(2)
                    items.append((prefix + [x for x in part.split("::") if x], alias))
        return items

    return parse(tree, [])


class Module:
    def __init__(self, path: tuple[str, ...], file: str):
        self.path = path
        self.file = file
        self.text = ""
        self.defs: set[str] = set()
        # name -> absolute path it re-exports
        self.reexports: dict[str, tuple[str, ...]] = {}
        self.globs: list[tuple[str, ...]] = []
        # (absolute path, line, snippet)
        self.refs: list[tuple[tuple[str, ...], int, str]] = []


def module_files(src: str) -> dict[tuple[str, ...], str]:
    root = next((f for f in ("lib.rs", "main.rs") if os.path.exists(os.path.join(src, f))), None)
    if root is None:
        sys.exit(f"check-module-cycles: no lib.rs or main.rs in {src}")
    mods: dict[tuple[str, ...], str] = {(): os.path.join(src, root)}
    for dirpath, _, files in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        parts = () if rel == "." else tuple(rel.split(os.sep))
        for f in files:
            if not f.endswith(".rs"):
                continue
            if parts == () and f in ("lib.rs", "main.rs"):
                continue
            if f == "mod.rs":
                mods[parts] = os.path.join(dirpath, f)
            else:
                mods[parts + (f[:-3],)] = os.path.join(dirpath, f)
    # Keep only files reachable through `mod` declarations (a stray file is not a module).
    declared: dict[tuple[str, ...], str] = {}
    pending = [()]
    while pending:
        p = pending.pop()
        declared[p] = mods[p]
        text = strip(open(mods[p], encoding="utf-8").read())
        for name in re.findall(rf"(?<![\w:])mod\s+({IDENT})\s*;", text):
            child = p + (name,)
            if child in mods and child not in declared:
                pending.append(child)
    return declared


def inline_scopes(text: str) -> list[tuple[int, int, tuple[str, ...]]]:
    """(start, end, inline path) of every inline `mod name { … }` in the text."""
    scopes = []
    stack: list[tuple[str, int, int]] = []  # (name, open brace depth, start)
    depth = 0
    mod_re = re.compile(rf"(?<![\w:])mod\s+({IDENT})\s*\{{")
    i = 0
    while i < len(text):
        m = mod_re.match(text, i)
        if m and (i == 0 or not re.match(r"\w", text[i - 1])):
            depth += 1
            stack.append((m.group(1), depth, m.start()))
            i = m.end()
            continue
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            if stack and stack[-1][1] == depth:
                name, _, start = stack.pop()
                scopes.append((start, i + 1, tuple(s[0] for s in stack) + (name,)))
            depth -= 1
        i += 1
    return scopes


def scope_at(scopes, pos: int) -> tuple[str, ...]:
    best: tuple[str, ...] = ()
    for s, e, p in scopes:
        if s <= pos < e and len(p) > len(best):
            best = p
    return best


def resolve(segs: list[str], here: tuple[str, ...], children: set[str], in_use: bool) -> tuple[str, ...] | None:
    """Absolute path of `segs` written in module `here` (file path + inline path)."""
    if not segs:
        return None
    if segs[0] == "crate":
        return tuple(segs[1:])
    if segs[0] in ("self", "super"):
        cur = list(here)
        k = 0
        if segs[0] == "self":
            k = 1
        while k < len(segs) and segs[k] == "super":
            if not cur:
                return None
            cur.pop()
            k += 1
        return tuple(cur) + tuple(segs[k:])
    if in_use and segs[0] in children:
        return tuple(here) + tuple(segs)
    return None


def main() -> int:
    args = sys.argv[1:]
    graph = "--graph" in args
    args = [a for a in args if a != "--graph"]
    if len(args) != 1:
        print("\n".join(__doc__.strip().splitlines()[2:4]), file=sys.stderr)
        return 2
    src = args[0].rstrip("/")
    files = module_files(src)
    mods = {p: Module(p, f) for p, f in files.items()}
    children: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for p in mods:
        if p:
            children[p[:-1]].add(p[-1])

    use_re = re.compile(r"(?<![\w:])(pub(?:\s*\([^)]*\))?\s+)?use\s+([^;]+);")
    path_re = re.compile(rf"(?<![\w$:])((?:crate|self|super)(?:\s*::\s*{IDENT})+)")
    def_re = re.compile(rf"(?<![\w:])(?:fn|struct|enum|union|trait|type|const|static|mod|macro_rules!)\s+({IDENT})")

    for m in mods.values():
        raw = open(m.file, encoding="utf-8").read()
        text = strip(raw)
        # Visibility restrictions `pub(in crate::x)` are not references.
        text = re.sub(r"pub\s*\(\s*in\s+[^)]*\)", lambda x: " " * len(x.group(0)), text)
        m.text = text
        scopes = inline_scopes(text)
        m.defs = set(def_re.findall(text))
        lines = raw.splitlines()

        def line_of(pos: int) -> tuple[int, str]:
            ln = text.count("\n", 0, pos) + 1
            return ln, lines[ln - 1].strip() if ln - 1 < len(lines) else ""

        used_spans = []
        for u in use_re.finditer(text):
            used_spans.append((u.start(), u.end()))
            here = m.path + scope_at(scopes, u.start())
            ln, snippet = line_of(u.start())
            kids = children.get(here, set())
            for segs, alias in expand_use_tree(u.group(2)):
                glob = segs[-1] == "*"
                base = segs[:-1] if glob else segs
                if base and base[-1] == "self":
                    base = base[:-1]
                absp = resolve(base, here, kids, in_use=True)
                if absp is None:
                    continue
                m.refs.append((absp, ln, snippet))
                if u.group(1) and scope_at(scopes, u.start()) == ():
                    if glob:
                        m.globs.append(absp)
                    else:
                        m.reexports[alias or absp[-1]] = absp
        for pm in path_re.finditer(text):
            if any(s <= pm.start() < e for s, e in used_spans):
                continue
            here = m.path + scope_at(scopes, pm.start())
            segs = [s for s in re.split(r"\s*::\s*", pm.group(1))]
            absp = resolve(segs, here, set(), in_use=False)
            if absp is None:
                continue
            ln, snippet = line_of(pm.start())
            m.refs.append((absp, ln, snippet))

    def origin(absp: tuple[str, ...], seen=None) -> tuple[str, ...]:
        """The file module that defines what `absp` names."""
        seen = seen or set()
        # Longest prefix that is a file module.
        k = len(absp)
        while k > 0 and absp[:k] not in mods:
            k -= 1
        owner = absp[:k]
        if k == len(absp):
            return owner
        name = absp[k]
        mod = mods[owner]
        key = (owner, name)
        if key in seen:
            return owner
        seen.add(key)
        if name in mod.reexports and name not in mod.defs:
            return origin(mod.reexports[name] + absp[k + 1 :], seen)
        if name not in mod.defs:
            for g in mod.globs:
                target = g + (name,)
                o = origin(target, seen)
                if o != g or (g in mods and name in mods[g].defs):
                    return origin(target + absp[k + 1 :], seen)
        return owner

    edges: dict[tuple[str, ...], dict[tuple[str, ...], tuple[int, str]]] = defaultdict(dict)
    for m in mods.values():
        for absp, ln, snippet in m.refs:
            to = origin(absp)
            if to == m.path or to[: len(m.path)] == m.path:
                continue  # itself or a descendant
            edges[m.path].setdefault(to, (ln, snippet))

    def name(p: tuple[str, ...]) -> str:
        return "::".join(p) if p else "crate"

    if graph:
        for m in sorted(mods):
            print(f"{name(m)} -> " + " ".join(name(t) for t in sorted(edges.get(m, {}))))

    # Tarjan's strongly connected components.
    index: dict = {}
    low: dict = {}
    on: set = set()
    stack: list = []
    sccs: list = []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, {})):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            sccs.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(mods):
        if v not in index:
            strong(v)

    cyclic = [sorted(c) for c in sccs if len(c) > 1]
    n_edges = sum(len(t) for t in edges.values())
    if not cyclic:
        print(f"check-module-cycles: {src}: {len(mods)} modules, {n_edges} edges, no cycle")
        return 0
    for comp in cyclic:
        members = set(comp)
        print(f"check-module-cycles: {src}: import cycle among {len(comp)} modules: "
              + ", ".join(name(p) for p in comp))
        # One shortest cycle through the component's first module, as evidence.
        startv = comp[0]
        prev = {startv: None}
        queue = [startv]
        found = None
        while queue and found is None:
            v = queue.pop(0)
            for w in sorted(edges.get(v, {})):
                if w not in members:
                    continue
                if w == startv:
                    found = v
                    break
                if w not in prev:
                    prev[w] = v
                    queue.append(w)
        path = [startv]
        v = found
        while v is not None and v != startv:
            path.append(v)
            v = prev[v]
        path = [startv] + list(reversed(path[1:])) + [startv]
        print("  cycle: " + " -> ".join(name(p) for p in path))
        for a, b in zip(path, path[1:]):
            ln, snippet = edges[a][b]
            print(f"    {name(a)} -> {name(b)}: {os.path.relpath(mods[a].file)}:{ln}: {snippet}")
        print("  edges inside the cycle:")
        for a in comp:
            for b in sorted(edges.get(a, {})):
                if b in members:
                    ln, snippet = edges[a][b]
                    print(f"    {name(a)} -> {name(b)}  ({os.path.relpath(mods[a].file)}:{ln})")
    return 1


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet when piped into `head`
    sys.exit(main())
