#!/usr/bin/env python3
"""Logic depth of a flattened `synth_xilinx` netlist (Yosys `write_json`).

Usage:  lut_depth.py NETLIST.json [--top npu_top] [--worst N] [--trace N]
        lut_depth.py --self-test

Model (a proxy for timing when no open Xilinx timer exists):
  * LUT1..LUT6 cost 1 level; CARRY4/CARRY8 (Yosys 0.70 maps xcup adders to CARRY4),
    MUXF7/8/9, INV (absorbed into LUTs by Vivado), buffers and wiring cost 0.
  * Distributed RAM (RAM32M, RAM64M, RAM64X1D, ...) and SRLs read asynchronously: the
    read address reaches the data output through 1 level; the output is also a start
    point (the stored bit), and every input is an end point (write side).
  * Start points: outputs of flip-flops, block RAMs, DSPs (and any cell type not known
    here) and top-level inputs. End points: every input pin of those cells (D, CE,
    R/S, addresses...; clock pins are ignored) and top-level outputs.
  * A combinational path from a top-level input to a top-level output is counted per
    (input port, output port) pair: in_to_out_paths = number of such pairs.
Resource counts: luts = LUT1..6 plus the LUTs that distributed RAM and SRLs occupy
(RAM64M/RAM32M = 4, RAM64X1D/RAM32X1D = 2, ...); ffs = FD*; bram36 = RAMB36E2 +
RAMB18E2 / 2 rounded up (two BRAM18 share one BRAM36 site); dsp = DSP48E2.
Prints the worst end points (with the start point of their worst path) and ends with
    fpga: luts=N ffs=N bram36=N dsp=N max_lut_levels=N in_to_out_paths=N
"""
import json
import math
import re
import sys
from collections import defaultdict

LUT_TYPES = {f"LUT{i}" for i in range(1, 7)}
ZERO_TYPES = {"CARRY8", "CARRY4", "MUXF7", "MUXF8", "MUXF9", "IBUF", "OBUF", "BUFG", "BUFGCE", "INV", "BUF"}
CONST_TYPES = {"GND", "VCC", "$scopeinfo"}
# distributed RAM / SRL: LUTs occupied
LUTRAM = {"RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "RAM512X1S": 8,
          "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8,
          "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "SRL16E": 1, "SRLC32E": 1}
CLOCK_PINS = {"C", "CLK", "WCLK", "CLKARDCLK", "CLKBWRCLK", "CLKA", "CLKB"}


def is_addr_pin(pin):
    """Read-address pins of distributed RAM / SRL (they reach the data output)."""
    return pin.startswith(("ADDR", "DPRA", "A")) and not pin.startswith("ACIN")


def analyse(netlist, top=None, worst=5, out=print, trace=0):
    mods = netlist["modules"]
    if top is None:
        tops = [m for m, v in mods.items() if v.get("attributes", {}).get("top")]
        top = tops[0] if tops else next(iter(mods))
    mod = mods[top]

    # ---- names for bits (prefer public names, then short ones)
    name = {}
    for n, v in sorted(mod["netnames"].items(), key=lambda kv: (kv[1].get("hide_name", 0), len(kv[0]))):
        for i, b in enumerate(v["bits"]):
            if isinstance(b, int) and b not in name:
                name[b] = n if len(v["bits"]) == 1 else f"{n}[{i}]"

    def reg_name(c):
        """A register is best known by the public net its output drives (e.g. perf_lo[3]),
        else by its source line (flattened FF cells have generated names)."""
        for p, bs in c["connections"].items():
            if c.get("port_directions", {}).get(p) == "output":
                for b in bs:
                    if isinstance(b, int) and b in name and not name[b].startswith("$"):
                        return f"{name[b]} ({c['type']})"
        src = c.get("attributes", {}).get("src", "?").split("|")[0]
        return f"{c['type']} at {src}"

    # ---- graph: comb edges bit -> [(bit, weight, cell)], start bits, end pins
    edges = defaultdict(list)
    start = {}          # bit -> description of the start point
    ends = []           # (bit, description)
    counts = defaultdict(int)
    unknown = set()
    for cname, c in mod["cells"].items():
        t = c["type"]
        counts[t] += 1
        dirs = c.get("port_directions", {})
        conn = c["connections"]
        ins = [(p, b) for p, bs in conn.items() if dirs.get(p) == "input" for b in bs if isinstance(b, int)]
        outs = [(p, b) for p, bs in conn.items() if dirs.get(p) == "output" for b in bs if isinstance(b, int)]
        if not dirs and conn:
            raise SystemExit(f"lut_depth: cell {cname} ({t}) has no port directions")
        if t in CONST_TYPES:
            continue
        if t in LUT_TYPES or t in ZERO_TYPES:
            w = 1 if t in LUT_TYPES else 0
            for _, ib in ins:
                for _, ob in outs:
                    edges[ib].append((ob, w, cname))
            continue
        # sequential (or unknown): outputs start, inputs end
        if t not in LUTRAM and not t.startswith(("FD", "RAMB", "DSP48")):
            unknown.add(t)
        rname = reg_name(c)
        for p, ob in outs:
            start[ob] = f"{p} of {rname}"
        for p, ib in ins:
            if p not in CLOCK_PINS:
                ends.append((ib, f"{p} of {rname}"))
        if t in LUTRAM:
            for p, ib in ins:
                if is_addr_pin(p):
                    for _, ob in outs:
                        edges[ib].append((ob, 1, cname))

    in_ports = [(p, v["bits"]) for p, v in mod["ports"].items() if v["direction"] == "input"]
    out_ports = [(p, v["bits"]) for p, v in mod["ports"].items() if v["direction"] == "output"]
    inmask = defaultdict(int)  # bit -> bitset of input ports reaching it combinationally
    for k, (p, bits) in enumerate(in_ports):
        for i, b in enumerate(bits):
            if isinstance(b, int):
                start.setdefault(b, f"input {p}[{i}]")
                inmask[b] |= 1 << k
    for p, bits in out_ports:
        for i, b in enumerate(bits):
            if isinstance(b, int):
                ends.append((b, f"output {p}[{i}]"))

    # ---- longest path over the DAG (Kahn's algorithm on bits)
    indeg = defaultdict(int)
    for b, es in edges.items():
        for ob, _, _ in es:
            indeg[ob] += 1
    level = {b: 0 for b in start}
    pred = {}
    pred_cell = {}
    ready = [b for b in set(edges) | set(start) if indeg[b] == 0]
    seen = 0
    while ready:
        b = ready.pop()
        seen += 1
        lb = level.get(b, 0)
        mb = inmask.get(b, 0)
        for ob, w, cname in edges.get(b, ()):
            if ob not in level or lb + w > level[ob]:
                level[ob] = lb + w
                pred[ob] = b
                pred_cell[ob] = cname
            if mb:
                inmask[ob] |= mb
            indeg[ob] -= 1
            if indeg[ob] == 0:
                ready.append(ob)
    loops = [b for b, d in indeg.items() if d > 0]
    if loops:
        out(f"lut_depth: WARNING: {len(loops)} bits on combinational loops, e.g. {name.get(loops[0], loops[0])}")

    def origin(b):
        while b in pred:
            b = pred[b]
        return start.get(b, name.get(b, str(b)))

    def path_of(b):
        """The named nets along the worst path into bit `b` (generated names skipped),
        each with its level."""
        chain = []
        while b in pred:
            n = name.get(b, "")
            if n and not n.startswith("$"):
                chain.append(f"level {level.get(b, 0):2d}: {n}")
            b = pred[b]
        return reversed(chain)

    # ---- report
    end_levels = sorted(((level.get(b, 0), d, b) for b, d in ends), key=lambda x: -x[0])
    max_lvl = end_levels[0][0] if end_levels else 0
    hist = defaultdict(int)
    for lv, _, _ in end_levels:
        hist[lv] += 1
    over8 = sum(n for lv, n in hist.items() if lv > 8)
    out(f"lut_depth: {len(end_levels)} end points; levels histogram: "
        + " ".join(f"{lv}:{hist[lv]}" for lv in sorted(hist)))
    out(f"lut_depth: end points over 8 levels: {over8}")
    out(f"lut_depth: worst {worst} paths (levels: end <- start; bits of one bus shown once):")
    shown = set()
    for lv, d, b in end_levels:
        if len(shown) >= worst:
            break
        o = origin(b)
        key = (re.sub(r"\[\d+\]", "[]", d), re.sub(r"\[\d+\]", "[]", o))
        if key not in shown:
            shown.add(key)
            out(f"  {lv:3d}: {d}  <-  {o}")
            if len(shown) <= trace:
                for line in path_of(b):
                    out(f"         {line}")
    pairs = set()
    for p, bits in out_ports:
        m = 0
        for b in bits:
            if isinstance(b, int):
                m |= inmask.get(b, 0)
        for k, (ip, _) in enumerate(in_ports):
            if m >> k & 1:
                pairs.add((ip, p))
    for ip, op in sorted(pairs)[:worst]:
        out(f"lut_depth: input-to-output path: {ip} -> {op}")
    if unknown:
        out(f"lut_depth: cell types treated as registers: {' '.join(sorted(unknown))}")
    dsp_comb = sum(1 for c in mod["cells"].values() if c["type"] == "DSP48E2"
                   and int(str(c.get("parameters", {}).get("PREG", "1")), 2 if set(str(c.get("parameters", {}).get("PREG", "1"))) <= {"0", "1"} else 10) == 0)

    luts = sum(n for t, n in counts.items() if t in LUT_TYPES)
    lutram = sum(n * LUTRAM[t] for t, n in counts.items() if t in LUTRAM)
    ffs = sum(n for t, n in counts.items() if t.startswith("FD"))
    b36, b18 = counts.get("RAMB36E2", 0), counts.get("RAMB18E2", 0)
    dsp = counts.get("DSP48E2", 0)
    out(f"lut_depth: LUT1-6={luts} LUTs-as-RAM/SRL={lutram} RAMB36E2={b36} RAMB18E2={b18} "
        f"DSP48E2={dsp} (without PREG: {dsp_comb}) CARRY4={counts.get('CARRY4', 0)} "
        f"CARRY8={counts.get('CARRY8', 0)} INV={counts.get('INV', 0)} (inverters: 0 levels, not counted)")
    summary = dict(luts=luts + lutram, ffs=ffs, bram36=b36 + math.ceil(b18 / 2), dsp=dsp,
                   max_lut_levels=max_lvl, in_to_out_paths=len(pairs))
    out("fpga: " + " ".join(f"{k}={v}" for k, v in summary.items()))
    return summary


def self_test():
    """Hand-made netlist: in a -> LUT -> LUT -> FF -> CARRY8 -> LUT -> out y; b -> LUT -> z."""
    def lut(n, i, o):
        return {"type": "LUT2", "port_directions": {"I0": "input", "I1": "input", "O": "output"},
                "connections": {"I0": [i], "I1": ["0"], "O": [o]}}
    cells = {
        "l1": lut(1, 2, 10), "l2": lut(2, 10, 11),
        "ff": {"type": "FDRE", "port_directions": {"C": "input", "D": "input", "CE": "input", "R": "input",
                                                    "Q": "output"},
               "connections": {"C": [5], "D": [11], "CE": ["1"], "R": ["0"], "Q": [12]}},
        "c8": {"type": "CARRY8", "port_directions": {"S": "input", "O": "output"},
               "connections": {"S": [12], "O": [13]}},
        "l3": lut(3, 13, 4), "l4": lut(4, 3, 6),
        "ram": {"type": "RAMB18E2", "port_directions": {"CLKARDCLK": "input", "ADDRARDADDR": "input",
                                                        "DOUTADOUT": "output"},
                "connections": {"CLKARDCLK": [5], "ADDRARDADDR": [2], "DOUTADOUT": [20]}},
    }
    net = {"modules": {"t": {"attributes": {"top": 1}, "ports": {
        "a": {"direction": "input", "bits": [2]}, "b": {"direction": "input", "bits": [3]},
        "clk": {"direction": "input", "bits": [5]},
        "y": {"direction": "output", "bits": [4]}, "z": {"direction": "output", "bits": [6]}},
        "cells": cells, "netnames": {}}}}
    got = analyse(net, out=lambda *_: None)
    want = dict(luts=4, ffs=1, bram36=1, dsp=0, max_lut_levels=2, in_to_out_paths=1)
    assert got == want, (got, want)
    print("lut_depth: self-test passed")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args == ["--self-test"]:
        self_test()
        sys.exit(0)
    if not args:
        sys.exit(__doc__)
    top = args[args.index("--top") + 1] if "--top" in args else None
    worst = int(args[args.index("--worst") + 1]) if "--worst" in args else 8
    trace = int(args[args.index("--trace") + 1]) if "--trace" in args else 0
    with open(args[0]) as f:
        analyse(json.load(f), top=top, worst=worst, trace=trace)
