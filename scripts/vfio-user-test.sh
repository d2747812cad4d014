#!/usr/bin/env bash
# The RTL NPU behind a real kernel VFIO stack: `gmem serve --vfio-user` serves the
# Verilated NPU over the vfio-user protocol to QEMU (>= 10.1, `-device vfio-user-pci`),
# whose guest binds it to vfio-pci behind an emulated Intel IOMMU and runs the same
# static `gmem` the host uses through vfio-driver -> kernel VFIO -> QEMU -> vfio-user ->
# RTL: `gmem info`, `gmem demo` (malloc-style sharing c = a + b and oversubscription),
# every `gmem run` workload (stream, gather, oversubscribe, pingpong, prefetch, thrash;
# results checked element by element on the CPU, as in-process), stream again with MSI
# and with INTx forced (GMEM_VFIO_IRQ), and `gmem pte dump` of each workload that has
# one (all but oversubscribe, which needs more than the dump's 16 MiB device memory),
# and a short `gmem soak --backend vfio:BDF` (the stack under test through VFIO, the
# reference model beside it in the guest, device pages checked by DMA read-back,
# injection on host-side sites) that must end with verdict PASS.
# Each guest PTE dump must equal the in-process co-simulation's (same workload, seed).
# The report puts the guest's wall time per workload next to the in-process run's
# device cycles and wall time, and the RTL cycles the server counted for each guest
# process (vfio-pci resets the function when a process opens and closes the device);
# the soak's guest wall time next to the same soak in-process (backdoor and DMA check).
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
# Thrashing detection runs on the device's clock: simulated time in-process, wall time in
# the guest, where a fault round trip through a software CPU takes milliseconds. The
# thrash runs and dumps widen the window (and the unpin time) on both sides, so that what
# thrash pins depends on its fault sequence, not on how fast the host runs.
THRASH_ARGS="--thrash-window-us 60000000 --thrash-unpin-us 3600000000"
# One row per workload: name and its `gmem run` arguments.
WORKLOADS=(
  "stream --size 256K"
  "gather --size 256K"
  "oversubscribe --size 512K --device-mem 256K"
  "pingpong --size 64K"
  "prefetch --size 256K"
  "thrash --size 64K $THRASH_ARGS"
)
# Every workload but oversubscribe is dumped on both paths and compared byte for byte.
DUMPED="stream gather pingpong prefetch thrash"
DUMP_ARGS=$THRASH_ARGS
DUMP_SIZE=64K
# The soak through VFIO: a modest rate on host-side sites (a manager hook and CSR reads;
# a failed CSR read is recovered with a device reset). rtl: sites work through VFIO too
# (they arm the device's ERRINJ registers over MMIO), but a hang they cause is detected
# only after the 120 s wall-clock budget of a VFIO wait: too slow for this test.
SOAK="--ops 200 --seed 1 --rule hook:copy_batch=rate:20000 --rule io:read32=rate:500"
# modules + find + bind, info, demo, 6 runs, 2 interrupt modes, ACCESSED_BY, reset,
# 5 dumps, soak
MIN_CHECKS=21
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
{
  printf '%s\t%s\n' "gmem info" "/gmem info --backend vfio:{bdf}" \
    "gmem demo (sharing + oversubscription)" "/gmem demo --backend vfio:{bdf}"
  for w in "${WORKLOADS[@]}"; do
    printf '%s\t%s\n' "gmem run ${w%% *}" "/gmem run --workload $w --backend vfio:{bdf}"
  done
  for irq in msi intx; do
    printf '%s\t%s\n' "gmem run stream ($irq)" "GMEM_VFIO_IRQ=$irq /gmem run --workload stream --size 64K --backend vfio:{bdf}"
  done
  # Remote mappings through the guest's IOMMU by a hint (thrash makes them by pinning).
  printf '%s\t%s\n' "ACCESSED_BY ping-pong (remote mappings)" "/init --remote {bdf}" \
    "DeviceIo::reset (FLR)" "/init --reset {bdf}"
  for w in $DUMPED; do
    printf '%s\t%s\n' "gmem pte dump $w" "/gmem pte dump --workload $w --size $DUMP_SIZE $DUMP_ARGS --backend vfio:{bdf}"
  done
  printf '%s\t%s\n' "gmem soak" "/gmem soak $SOAK --backend vfio:{bdf}"
} > "$CACHE/commands"
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

# no_timer_check: on a loaded host the TCG guest's boot-time check that the timer
# interrupt arrives through the remapped IO-APIC can time out ("timer doesn't work
# through Interrupt-remapped IO-APIC", a panic); the timer works, the check is skipped.
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
  -append "console=ttyS0 intel_iommu=on quiet panic=-1 rdinit=/init vfio_guest=exec no_timer_check" \
  </dev/null > "$CACHE/guest.log" 2>&1 & qemu_pid=$!
# The in-process reference meanwhile: the same runs (JSON, for cycles) and dumps.
host_rc=0
: > "$CACHE/host-runs.txt"
for w in "${WORKLOADS[@]}"; do
  t0=$(date +%s.%N)
  line=$("$gmem" run --workload $w --json 2>&1) || { host_rc=1; echo "in-process run $w failed: $line" >&2; }
  t1=$(date +%s.%N)
  printf '%s\t%s\t%s\n' "${w%% *}" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')" "$line" >> "$CACHE/host-runs.txt"
done
for w in $DUMPED; do
  "$gmem" pte dump --workload "$w" --size $DUMP_SIZE $DUMP_ARGS > "$CACHE/host-pte-$w.txt" 2>&1 || host_rc=1
done
# The same soak in-process: the default check (backdoor) and the board's (DMA).
for check in backdoor dma; do
  "$gmem" soak $SOAK --device-check $check --json > "$CACHE/host-soak-$check.json" 2>&1 || host_rc=1
done
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
if [ "$host_rc" -ne 0 ]; then bad "an in-process reference run failed (see $CACHE/host-runs.txt, host-pte-*.txt, host-soak-*.json)"; fi
# The guest soak passed its own check (exit 0); its report must also say so.
section "gmem soak" > "$CACHE/guest-soak.txt"
if grep -qE '^  verdict +PASS$' "$CACHE/guest-soak.txt" && grep -qE '^  data mismatches +0$' "$CACHE/guest-soak.txt"; then
  ok "soak through vfio: verdict PASS, 0 data mismatches ($(sed -nE 's/^  ops +//p' "$CACHE/guest-soak.txt"))"
else
  sed 's/^/  | /' "$CACHE/guest-soak.txt" >&2
  bad "soak through vfio: no PASS verdict in its report ($CACHE/guest-soak.txt)"
fi
for w in $DUMPED; do
  section "gmem pte dump $w" > "$CACHE/guest-pte-$w.txt"
  # Ping-pong workloads end with every page on the CPU: both dumps are empty then.
  # grep reads the whole log (no -q): with pipefail, an early exit would fail tr (SIGPIPE).
  if tr -d '\r' < "$log" | grep -a "^--- end gmem pte dump $w\$" > /dev/null && cmp -s "$CACHE/host-pte-$w.txt" "$CACHE/guest-pte-$w.txt"; then
    ok "PTE dump of $w through the guest equals the in-process one ($(wc -l < "$CACHE/host-pte-$w.txt") lines)"
  else
    diff "$CACHE/host-pte-$w.txt" "$CACHE/guest-pte-$w.txt" | head -20 | sed 's/^/  | /' >&2 || true
    bad "PTE dump of $w through the guest differs from the in-process one ($CACHE/guest-pte-$w.txt)"
  fi
done
if [ "$serve_rc" -eq 0 ] && grep -q '^gmem serve: client disconnected' "$CACHE/serve.log"; then
  ok "gmem serve ended cleanly when QEMU disconnected"
else
  tail -5 "$CACHE/serve.log" | sed 's/^/  | /' >&2
  bad "gmem serve exited with status $serve_rc (log: $CACHE/serve.log)"
fi
section "gmem demo (sharing + oversubscription)" | grep -E '^(scenario|  (result|device faults|pages moved|DMA  |cycles))' | sed 's/^/  guest demo: /' || true
section "ACCESSED_BY ping-pong (remote mappings)" | sed 's/^/  guest: /' || true
section "DeviceIo::reset (FLR)" | sed 's/^/  guest: /' || true
sed -n '/^gmem serve: client disconnected/,$p' "$CACHE/serve.log" | sed 's/^/  server: /'
# Per workload: in-process device cycles and wall time next to the guest's wall time
# (its check line) and the RTL cycles of that guest process (the server's reset log:
# the function reset when the process closed the device ends its segment).
say "workload        in-process cycles  in-process s   guest s"
mapfile -t segs < <(sed -nE 's/^gmem serve: function reset after ([0-9]+) device cycles.*/\1/p' "$CACHE/serve.log")
for w in "${WORKLOADS[@]}"; do
  name=${w%% *}
  host=$(awk -F'\t' -v n="$name" '$1 == n' "$CACHE/host-runs.txt")
  hc=$(sed -nE 's/.*"cycles":([0-9]+).*/\1/p' <<<"$host")
  hs=$(cut -f2 <<<"$host")
  gs=$(tr -d '\r' < "$log" | sed -nE "s/^(PASS|FAIL) \[ *[0-9.]+s\] gmem run $name: ([0-9.]+) s.*/\2/p" | head -1)
  printf 'vfio-user:   %-14s %17s %13s %9s\n' "$name" "${hc:-?}" "${hs:-?}" "${gs:-?}"
done
[ ${#segs[@]} -gt 0 ] && say "RTL cycles per function reset (one segment per device open/close): ${segs[*]}"
# The soak: the guest's report next to the in-process runs of the same seed and rules.
say "soak $SOAK"
sed -n '/^soak:/,$p' "$CACHE/guest-soak.txt" | sed 's/^/vfio-user:   guest /'
gsoak=$(tr -d '\r' < "$log" | sed -nE 's/^(PASS|FAIL) \[ *[0-9.]+s\] gmem soak: ([0-9.]+) s.*/\2/p' | head -1)
# The soak is the guest's last process: its RTL cycles are the server's last segment.
say "  guest soak process: ${gsoak:-?} s wall, ${segs[-1]:-?} RTL cycles (the server's last reset segment)"
for check in backdoor dma; do
  j=$CACHE/host-soak-$check.json
  field() { sed -nE "s/.*\"$1\":(\"?)([^,\"]*)\1[,}].*/\2/p" "$j" | head -1; }
  say "  in-process ($check check): $(field rtl_cycles) RTL cycles, $(field wall_s) s wall, verdict $(field verdict), $(field injected_rtl) injected on the RTL, $(field injected_model) on the model"
done
end=$(date +%s.%N)
awk -v s="$start" -v b="$boot_start" -v e="$boot_end" -v t="$end" \
  'BEGIN {printf "vfio-user: guest %.1f s, total %.1f s\n", e - b, t - s}'
echo "vfio-user: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
