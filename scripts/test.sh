#!/usr/bin/env bash
# The project's test command (README "Quick start", run by CI through .ci/run):
#   1. scripts/setup.sh            install what the project needs (idempotent)
#   2. scripts/lint-rtl.sh         Verilator -Wall lint of every RTL module + Yosys synthesis
#   3. cargo test --workspace      unit, co-simulation and cross-crate tests, including the
#                                  freshness test of the generated register files
#   4. scripts/vfio-guest-test.sh  vfio-driver against a real kernel VFIO stack in QEMU
# Ends with one summary line "tests: N passed, N failed" over steps 3 and 4.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/lint-rtl.sh

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
scripts/vfio-guest-test.sh 2>&1 | tee -a "$log"
vrc=${PIPESTATUS[0]}
set -e
summary=$(awk '/^test result:/ {p += $4; f += $6}
               /^vfio-guest: [0-9]+ passed, [0-9]+ failed/ {p += $2; f += $4}
               END {printf "%d passed, %d failed", p, f}' "$log")
echo "tests: $summary"
[ "$rc" -eq 0 ] && [ "$vrc" -eq 0 ]
