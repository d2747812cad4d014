#!/usr/bin/env bash
# The RTL NPU behind a real kernel VFIO stack: `gmem serve --vfio-user` serves the
# Verilated NPU over the vfio-user protocol to QEMU (>= 10.1, `-device vfio-user-pci`),
# whose guest binds it to vfio-pci behind an emulated Intel IOMMU and runs the same
# static `gmem` the host uses: `gmem info`, `gmem demo` (malloc-style sharing c = a + b
# and oversubscription, results checked element by element) and `gmem pte dump`
# through vfio-driver -> kernel VFIO -> QEMU -> vfio-user -> RTL. The guest's PTE dump
# must equal the in-process co-simulation's (same workload, same seed).
#
# QEMU 11 comes from Debian trixie-backports inside a trixie chroot made by debootstrap
# (`scripts/setup.sh --vfio-user` installs debootstrap); the kernel and the initramfs
# logic are shared with scripts/vfio-guest-test.sh (scripts/lib/guest.sh). Everything
# is cached in scripts/.cache/vfio-user (git-ignored). Runs as root (chroot, debootstrap).
#
# Prints per-check lines and `vfio-user: N passed, M failed`; exit status 0 only if
# everything passed. Env: VFIO_USER_CACHE (cache folder), VFIO_USER_TIMEOUT (seconds for
# the guest, default 1200). Logs: $CACHE/guest.log, $CACHE/serve.log, $CACHE/host-pte.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
root_dir=$PWD
start=$(date +%s.%N)

CACHE=${VFIO_USER_CACHE:-$root_dir/scripts/.cache/vfio-user}
TIMEOUT=${VFIO_USER_TIMEOUT:-1200}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
MIN_CHECKS=6
mkdir -p "$CACHE"

say() { printf 'vfio-user: %s\n' "$*"; }
die() { printf 'vfio-user: error: %s\n' "$*" >&2; echo "vfio-user: 0 passed, 1 failed"; exit 1; }
. scripts/lib/guest.sh
[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap and chroot need it)"

# --- 1. QEMU >= 10.1 from trixie-backports in a cached trixie chroot -----------------
C=$CACHE/trixie
if [ ! -e "$C/.qemu-ready" ]; then
  command -v debootstrap >/dev/null || die "debootstrap is missing: run scripts/setup.sh --vfio-user"
  say "creating a Debian trixie chroot with QEMU from trixie-backports in $C (about a minute)"
  rm -rf "$C"
  debootstrap --variant=minbase trixie "$C" "$MIRROR" > "$CACHE/debootstrap.log" 2>&1 ||
    { tail -5 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
  echo "deb $MIRROR trixie-backports main" > "$C/etc/apt/sources.list.d/backports.list"
  { chroot "$C" apt-get update -qq &&
    chroot "$C" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      -t trixie-backports qemu-system-x86; } > "$CACHE/qemu-install.log" 2>&1 ||
    { tail -5 "$CACHE/qemu-install.log" >&2; die "installing QEMU in the chroot failed"; }
  touch "$C/.qemu-ready"
fi
qver=$(chroot "$C" qemu-system-x86_64 --version | awk 'NR==1 {print $4}')

# --- 2. the guest kernel (Debian 12's, as in vfio-guest-test.sh) ------------------------
[ -s "$CACHE/kernel.txt" ] || guest_kernel_pkg > "$CACHE/kernel.txt"
kpkg=$(cat "$CACHE/kernel.txt")
guest_download "$CACHE/debs" "$kpkg"
guest_unpack "$CACHE/kroot" "$CACHE/debs" "$kpkg"
kver=${kpkg#linux-image-}
[ -f "$CACHE/kroot/boot/vmlinuz-$kver" ] || die "no kernel in $kpkg"
kernel=$(guest_kernel "$CACHE/kroot/boot/vmlinuz-$kver" "$CACHE/vmlinux")

# --- 3. static binaries: gmem (host server and guest) and the guest's /init ------------
say "building gmem and vfio-guest-test (static, $TARGET)"
out=$(guest_build testbench:gmem vfio-driver:vfio-guest-test)
gmem=$out/gmem
is_elf "$gmem" && is_elf "$out/vfio-guest-test" || die "no binaries in $out"

# --- 4. initramfs: /init, /gmem and the command list -------------------------------------
PTE_ARGS="pte dump --workload stream --size 64K"
printf '%s\t%s\n' \
  "gmem info" "/gmem info --backend vfio:{bdf}" \
  "gmem demo (sharing + oversubscription)" "/gmem demo --backend vfio:{bdf}" \
  "gmem pte dump" "/gmem $PTE_ARGS --backend vfio:{bdf}" > "$CACHE/commands"
guest_initramfs "$CACHE/initrd.cpio" "$CACHE/kroot/lib/modules/$kver/kernel" "$CACHE" "$out/vfio-guest-test" \
  "gmem=$gmem" "commands=$CACHE/commands"

# --- 5. serve the RTL, boot the guest, and the in-process reference meanwhile ----------
run=$C/run/vfio-user
mkdir -p "$run"
cp "$kernel" "$run/kernel"
cp "$CACHE/initrd.cpio" "$run/initrd.cpio"
rm -f "$run/npu.sock"
"$gmem" serve --vfio-user "$run/npu.sock" > "$CACHE/serve.log" 2>&1 & serve_pid=$!
for _ in $(seq 100); do [ -S "$run/npu.sock" ] && break; sleep 0.1; done
[ -S "$run/npu.sock" ] || { kill "$serve_pid" 2>/dev/null; cat "$CACHE/serve.log" >&2; die "gmem serve did not create its socket"; }

say "booting $(basename "$kernel") ($kver) under QEMU $qver TCG with the RTL NPU on vfio-user"
boot_start=$(date +%s.%N)
set +e
timeout "$TIMEOUT" chroot "$C" qemu-system-x86_64 \
  -machine q35,accel=tcg,kernel-irqchip=split,memory-backend=mem \
  -object memory-backend-memfd,id=mem,size=1G,share=on -m 1G -cpu max -smp 1 \
  -nodefaults -nographic -no-reboot -serial stdio -monitor none \
  -device intel-iommu,intremap=on,caching-mode=on \
  -device '{"driver":"vfio-user-pci","socket":{"type":"unix","path":"/run/vfio-user/npu.sock"}}' \
  -kernel /run/vfio-user/kernel -initrd /run/vfio-user/initrd.cpio \
  -append "console=ttyS0 intel_iommu=on quiet panic=-1 rdinit=/init vfio_guest=exec" \
  </dev/null > "$CACHE/guest.log" 2>&1 & qemu_pid=$!
"$gmem" $PTE_ARGS > "$CACHE/host-pte.txt" 2>&1; host_rc=$?
wait $qemu_pid; qemu_rc=$?
boot_end=$(date +%s.%N)
# The server ends when QEMU closes the socket; a server that hangs is a failure.
for _ in $(seq 50); do kill -0 "$serve_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$serve_pid" 2>/dev/null; then kill "$serve_pid"; fi
wait $serve_pid; serve_rc=$?
set -e

# --- 6. verdicts --------------------------------------------------------------------------
pass=0 fail=0
ok() { pass=$((pass + 1)); say "PASS $*"; }
bad() { fail=$((fail + 1)); say "FAIL $*"; }
log=$CACHE/guest.log
tr -d '\r' < "$log" | grep -aE '^(PASS|FAIL|failed checks|checks took)' | sed 's/^/  guest: /' || true
result=$(tr -d '\r' < "$log" | grep -a '^RESULT:' | tail -1 || true)
if [ -z "$result" ]; then
  tail -n 40 "$log" | sed 's/^/  | /' >&2
  [ "$qemu_rc" -eq 124 ] && say "QEMU timed out after ${TIMEOUT}s"
  bad "guest: no result line (log: $log)"
else
  gp=$(sed -nE 's/^RESULT: ([0-9]+) passed, ([0-9]+) failed.*/\1/p' <<<"$result")
  gf=$(sed -nE 's/^RESULT: ([0-9]+) passed, ([0-9]+) failed.*/\2/p' <<<"$result")
  pass=$((pass + gp)); fail=$((fail + gf))
  [ "$gp" -ge "$MIN_CHECKS" ] || bad "guest: only $gp checks passed (expected $MIN_CHECKS)"
fi
# The guest's output of one command, between its markers.
# Progress bars (the serial console is a terminal) are cut off up to their last erase.
section() { tr -d '\r' < "$log" | sed 's/.*\x1b\[2K//' |
            awk -v l="$1" 'index($0, "--- begin " l ":") == 1 {on = 1; next} $0 == "--- end " l {on = 0} on'; }
section "gmem pte dump" > "$CACHE/guest-pte.txt"
if [ "$host_rc" -ne 0 ]; then
  bad "in-process gmem $PTE_ARGS failed: $(tail -1 "$CACHE/host-pte.txt")"
elif [ -s "$CACHE/guest-pte.txt" ] && cmp -s "$CACHE/host-pte.txt" "$CACHE/guest-pte.txt"; then
  ok "PTE dump through the guest equals the in-process co-simulation's ($(wc -l < "$CACHE/host-pte.txt") lines)"
else
  diff "$CACHE/host-pte.txt" "$CACHE/guest-pte.txt" | head -20 | sed 's/^/  | /' >&2 || true
  bad "PTE dump through the guest differs from the in-process one ($CACHE/guest-pte.txt vs host-pte.txt)"
fi
if [ "$serve_rc" -eq 0 ] && grep -q '^gmem serve: client disconnected' "$CACHE/serve.log"; then
  ok "gmem serve ended cleanly when QEMU disconnected"
else
  tail -5 "$CACHE/serve.log" | sed 's/^/  | /' >&2
  bad "gmem serve exited with status $serve_rc (log: $CACHE/serve.log)"
fi
section "gmem demo (sharing + oversubscription)" | grep -E '^(scenario|  (result|device faults|pages moved|DMA  |cycles))' | sed 's/^/  guest demo: /' || true
sed -n '/^gmem serve: client disconnected/,$p' "$CACHE/serve.log" | sed 's/^/  server: /'
end=$(date +%s.%N)
awk -v s="$start" -v b="$boot_start" -v e="$boot_end" -v t="$end" \
  'BEGIN {printf "vfio-user: guest %.1f s, total %.1f s\n", e - b, t - s}'
echo "vfio-user: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
