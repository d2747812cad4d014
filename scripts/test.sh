#!/usr/bin/env bash
# The project's test command (README "Quick start", run by CI through .ci/run):
#   1. scripts/setup.sh            install what the project needs (idempotent)
#   2. cargo fmt --check, cargo clippy -D warnings, scripts/check-deps.py
#                                  the Rust gate (rustfmt.toml, workspace lints, no unused
#                                  dependency)
#   3. scripts/lint-rtl.sh         Verilator -Wall lint of every RTL module + Yosys synthesis
#      scripts/formal.sh           Yosys proofs (sat -tempinduct) of the primitives, TLB and
#                                  AXI mux (~20 s)
#      scripts/fpga-report.sh --check  UltraScale+ synthesis and LUT-level gate (<= 8 levels,
#                                  no input-to-output path, beat FIFOs in block RAM; about
#                                  4 min); SKIP_FPGA=1 skips it
#   4. cargo test --workspace      unit, co-simulation and cross-crate tests, including the
#                                  freshness test of the generated register files;
#      xtask readme --check        re-runs the README examples marked `check`, fails on drift
#   5. scripts/vfio-guest-test.sh  vfio-driver against a real kernel VFIO stack in QEMU
#   6. scripts/vfio-user-test.sh   the RTL NPU behind that stack over vfio-user (QEMU 11
#                                  from a cached trixie chroot); SKIP_VFIO_USER=1 skips it
# Ends with one summary line "tests: N passed, N failed" over steps 4 to 6.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --vfio-user
# A clean build and the guest images take about 8 GB; say so before a full disk breaks a
# compiler or linker half-way with a less clear message.
avail_gb=$(( $(df --output=avail -k . | tail -1) / 1048576 ))
if [ "$avail_gb" -lt 12 ]; then
  echo "test: warning: only ${avail_gb} GB free on $(df --output=target . | tail -1); a clean run needs about 12 GB" >&2
fi
# CI builds once: incremental state would only take disk.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi
cargo fmt --all --check || { echo "test: cargo fmt --check failed: run cargo fmt --all" >&2; exit 1; }
cargo clippy --workspace --all-targets --locked -- -D warnings
python3 scripts/check-deps.py
python3 scripts/check-module-cycles.py gmem-host/src
scripts/lint-rtl.sh
scripts/formal.sh
if [ "${SKIP_FPGA:-0}" != 1 ]; then scripts/fpga-report.sh --check; fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
# README examples marked `check` re-run and compared (xtask/src/readme.rs)
cargo run -q --locked -p xtask -- readme --check || rc=1
scripts/vfio-guest-test.sh 2>&1 | tee -a "$log"
vrc=${PIPESTATUS[0]}
urc=0
if [ "${SKIP_VFIO_USER:-0}" != 1 ]; then
  scripts/vfio-user-test.sh 2>&1 | tee -a "$log"
  urc=${PIPESTATUS[0]}
fi
set -e
summary=$(awk '/^test result:/ {p += $4; f += $6}
               /^vfio-(guest|user): [0-9]+ passed, [0-9]+ failed/ {p += $2; f += $4}
               END {printf "%d passed, %d failed", p, f}' "$log")
echo "tests: $summary"
[ "$rc" -eq 0 ] && [ "$vrc" -eq 0 ] && [ "$urc" -eq 0 ]
