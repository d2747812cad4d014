#!/usr/bin/env bash
# VFIO without a board: runs vfio-driver against a real kernel VFIO stack in a QEMU guest.
#
# Boots Debian 12's kernel twice under QEMU (TCG; KVM does not work on these hosts), the
# two guests side by side:
#  - main: q35 with an emulated Intel IOMMU that remaps interrupts
#    (intel-iommu,intremap=on,caching-mode=on + kernel-irqchip=split), QEMU's `edu` PCI
#    device, an NVMe controller (for MSI-X), a watchdog with a 16-byte BAR0, a VGA whose
#    RAM BAR0 is made to look like an NPU (for the NPU layer's success path), and two
#    more edu devices behind one PCIe-to-PCI bridge (sharing an IOMMU group);
#  - nointremap: the same IOMMU without interrupt remapping.
# The initramfs holds only the VFIO modules (+ uio_pci_generic) and one statically linked
# test binary (vfio-driver's `vfio-guest-test`) that runs as /init: it checks the error
# paths (VFIO not loaded, device unbound, group node missing, unprivileged caller, busy
# group, group not viable, no interrupt remapping, BAR0 too small, wrong ID register),
# binds devices to vfio-pci, drives them through vfio-driver's generic layer (BAR MMIO
# 32/64-bit, MSI, MSI-X and INTx through eventfds, DMA both ways through IOMMU mappings
# with data and guard bytes verified, DMA to an unmapped IOVA blocked, function reset)
# and powers off.
#
# Everything it needs is downloaded with `apt-get download` and unpacked with
# `dpkg-deb -x` into scripts/.cache/vfio-guest (git-ignored, reused between runs):
# installed packages are never replaced (`apt-get install qemu-system-x86` would remove
# the preinstalled backports qemu-utils).
#
# Exit status 0 only if every check in the guest passed. Env: VFIO_GUEST_CACHE (cache
# folder), VFIO_GUEST_TIMEOUT (seconds per guest, default 300). Serial logs:
# $CACHE/guest-main.log and $CACHE/guest-nointremap.log.
set -euo pipefail
cd "$(dirname "$0")/.."
root_dir=$PWD
start=$(date +%s.%N)

CACHE=${VFIO_GUEST_CACHE:-$root_dir/scripts/.cache/vfio-guest}
TIMEOUT=${VFIO_GUEST_TIMEOUT:-300}
# Each guest runs at least this many checks; fewer means it stopped early.
MIN_CHECKS=51
MIN_CHECKS_NOIR=6
mkdir -p "$CACHE/debs"

say() { printf 'vfio-guest: %s\n' "$*"; }
die() { printf 'vfio-guest: error: %s\n' "$*" >&2; echo "vfio-guest: 0 passed, 1 failed"; exit 1; }
. scripts/lib/guest.sh

# --- 1. packages (resolved once, then cached) -------------------------------------------
installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]; }

resolve_packages() {
  local kpkg
  kpkg=$(guest_kernel_pkg)
  # QEMU and the shared libraries it needs that are not installed on this host.
  declare -A seen
  local queue=(qemu-system-x86 qemu-system-common qemu-system-data seabios) need=() p d
  while [ ${#queue[@]} -gt 0 ]; do
    p=${queue[0]}; queue=("${queue[@]:1}")
    [ -n "${seen[$p]:-}" ] && continue
    seen[$p]=1; need+=("$p")
    # Only qemu-system-common's TCG accelerator module is used; its deps serve the rest.
    [ "$p" = qemu-system-common ] && continue
    for d in $(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
                 --no-replaces --no-enhances "$p" 2>/dev/null |
               awk '$1 ~ /Depends:$/ && $2 !~ /^</ {print $2}'); do
      installed "$d" || [ -n "${seen[$d]:-}" ] || queue+=("$d")
    done
  done
  printf '%s\n' "$kpkg" "${need[@]}" > "$CACHE/packages.txt.new"
  mv "$CACHE/packages.txt.new" "$CACHE/packages.txt"
}

[ -s "$CACHE/packages.txt" ] || resolve_packages
mapfile -t pkgs < "$CACHE/packages.txt"
kpkg=${pkgs[0]}

guest_download "$CACHE/debs" "${pkgs[@]}"

# --- 2. unpack into the work folder (never installed) ----------------------------------
guest_unpack "$CACHE/root" "$CACHE/debs" "${pkgs[@]}"
R=$CACHE/root
kver=${kpkg#linux-image-}
vmlinuz=$R/boot/vmlinuz-$kver
moddir=$R/lib/modules/$kver/kernel
[ -f "$vmlinuz" ] || die "no kernel at $vmlinuz"

kernel=$(guest_kernel "$vmlinuz" "$CACHE/vmlinux")

export LD_LIBRARY_PATH=$R/usr/lib/x86_64-linux-gnu:$R/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export QEMU_MODULE_DIR=$R/usr/lib/x86_64-linux-gnu/qemu
qemu=$R/usr/bin/qemu-system-x86_64
if ldd "$qemu" | grep -q 'not found'; then
  ldd "$qemu" | grep 'not found' >&2
  rm -f "$CACHE/packages.txt" "$R"/.unpacked-*
  die "QEMU lacks shared libraries (package list reset; run again)"
fi

# --- 3. the test binary: static glibc (pci-driver does not build for musl) ---------------
say "building vfio-guest-test (static, $TARGET)"
bin=$(guest_build vfio-driver:vfio-guest-test)/vfio-guest-test
is_elf "$bin" || die "no binary at $bin"

# --- 4. initramfs: /init + the VFIO modules in dependency order --------------------------
# Host driver for the group-viability check, loaded by the guest when it gets there.
uio=(modules-uio=)
i=70
for m in drivers/uio/uio.ko drivers/uio/uio_pci_generic.ko; do
  [ -f "$moddir/$m" ] || die "kernel module $m missing in $kpkg"
  uio+=("modules-uio/$i-$(basename "$m")=$moddir/$m")
  i=$((i + 10))
done
guest_initramfs "$CACHE/initrd.cpio" "$moddir" "$CACHE" "$bin" "${uio[@]}"

# --- 5. boot: the main guest, and one whose IOMMU cannot remap interrupts --------------
# Each boot runs the same /init; `vfio_guest=nointremap` selects the second set of checks.
# The two TCG guests are single-threaded, so they run side by side.
boot() { # name intremap(on|off) extra-append
  # QEMU's intremap defaults to auto (on under TCG): say off explicitly.
  local iommu=intel-iommu,caching-mode=on,intremap=off irqchip=
  [ "$2" = on ] && iommu=intel-iommu,caching-mode=on,intremap=on irqchip=,kernel-irqchip=split
  local extra=()
  [ "$1" = main ] && extra=(-device nvme,serial=vfio-guest -device i6300esb -device VGA,addr=6
    -device pcie-root-port,id=rp1,bus=pcie.0,chassis=1,addr=4 -device pcie-pci-bridge,id=br1,bus=rp1
    -device edu,bus=br1,addr=1 -device edu,bus=br1,addr=2)
  timeout "$TIMEOUT" "$qemu" \
    -L "$R/usr/share/seabios" -L "$R/usr/share/qemu" \
    -machine "q35,accel=tcg$irqchip" -cpu max -m 512 -smp 1 \
    -nodefaults -nographic -no-reboot -serial stdio -monitor none \
    -device "$iommu" -device edu "${extra[@]}" \
    -kernel "$kernel" -initrd "$CACHE/initrd.cpio" \
    -append "console=ttyS0 intel_iommu=on quiet panic=-1 rdinit=/init $3" \
    </dev/null > "$CACHE/guest-$1.log" 2>&1
}

say "booting $(basename "$kernel") ($kver) under QEMU $("$qemu" --version | awk 'NR==1 {print $4}') TCG, twice"
boot_start=$(date +%s.%N)
set +e
boot main on "" & pid_main=$!
boot nointremap off vfio_guest=nointremap & pid_noir=$!
wait $pid_main; rc_main=$?
wait $pid_noir; rc_noir=$?
set -e
end=$(date +%s.%N)

total_pass=0 total_fail=0
report() { # name min-checks qemu-rc
  local log=$CACHE/guest-$1.log result passed failed
  say "guest '$1' ($log):"
  tr -d '\r' < "$log" | grep -aE '^(PASS|FAIL|failed checks|checks took|  pci )' | sed 's/^/  /' || true
  result=$(tr -d '\r' < "$log" | grep -a '^RESULT:' | tail -1 || true)
  passed=$(sed -nE 's/^RESULT: ([0-9]+) passed, ([0-9]+) failed.*/\1/p' <<<"$result")
  failed=$(sed -nE 's/^RESULT: ([0-9]+) passed, ([0-9]+) failed.*/\2/p' <<<"$result")
  if [ -z "$result" ]; then
    tail -n 30 "$log" | sed 's/^/  | /' >&2
    [ "$3" -eq 124 ] && say "guest '$1': QEMU timed out after ${TIMEOUT}s"
    say "guest '$1': no result line"
    total_fail=$((total_fail + 1))
    return
  fi
  total_pass=$((total_pass + passed))
  total_fail=$((total_fail + failed))
  if [ "$passed" -lt "$2" ]; then
    say "guest '$1': only $passed checks ran (expected at least $2)"
    total_fail=$((total_fail + 1))
  fi
}
report main "$MIN_CHECKS" $rc_main
report nointremap "$MIN_CHECKS_NOIR" $rc_noir
awk -v s="$start" -v b="$boot_start" -v e="$end" \
  'BEGIN {printf "vfio-guest: guests %.1f s, total %.1f s\n", e - b, e - s}'
echo "vfio-guest: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
