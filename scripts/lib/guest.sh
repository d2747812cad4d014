# Shared by the QEMU guest harnesses (scripts/vfio-guest-test.sh, scripts/vfio-user-test.sh):
# Debian's kernel unpacked from `apt-get download`ed packages (never installed), an
# uncompressed vmlinux cut out of it, the static glibc guest binaries and the initramfs
# holding the VFIO modules. Source it after defining `say` and `die`.

TARGET=x86_64-unknown-linux-gnu

is_elf() { [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; }

# The kernel package linux-image-amd64 points at today (apt-get update if lists are empty).
guest_kernel_pkg() {
  local kpkg
  kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  if [ -z "$kpkg" ]; then
    say "apt lists are empty; running apt-get update" >&2
    apt-get update -qq >/dev/null || die "apt-get update failed"
    kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  fi
  [ -n "$kpkg" ] || die "cannot find Debian's linux-image-amd64 in the apt lists"
  echo "$kpkg"
}

# guest_download DEBDIR PKG...: downloads the packages not yet in DEBDIR.
guest_download() {
  local dir=$1 p missing=()
  shift
  mkdir -p "$dir"
  for p in "$@"; do
    compgen -G "$dir/${p}_*.deb" >/dev/null || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "downloading ${#missing[@]} Debian packages: ${missing[*]}"
  # As root apt warns that its _apt user cannot write here; that is harmless.
  (cd "$dir" && apt-get download -qq "${missing[@]}" >/dev/null 2>"$dir/apt.err") ||
    { cat "$dir/apt.err" >&2; die "apt-get download failed (run 'apt-get update' first?)"; }
}

# guest_unpack ROOT DEBDIR PKG...: unpacks the packages into ROOT once (stamped by the list).
guest_unpack() {
  local root=$1 dir=$2 p deb stamp
  shift 2
  stamp="$root/.unpacked-$(printf '%s\n' "$@" | md5sum | cut -c1-12)"
  [ -e "$stamp" ] && return 0
  say "unpacking into $root"
  rm -rf "$root"
  mkdir -p "$root"
  for p in "$@"; do
    for deb in "$dir"/"${p}"_*.deb; do dpkg-deb -x "$deb" "$root"; done
  done
  touch "$stamp"
}

# guest_kernel VMLINUZ OUT: prints the kernel to boot. An uncompressed vmlinux (booted
# through its PVH entry) starts ~3 s faster than the bzImage: cut the XZ stream out.
guest_kernel() {
  local vmlinuz=$1 out=$2 off
  if ! is_elf "$out"; then
    off=$(LC_ALL=C grep -obUaP '\xFD7zXZ\x00' "$vmlinuz" | head -1 | cut -d: -f1 || true)
    # xz complains about the bytes after the stream; the kernel image before them is whole.
    [ -n "$off" ] && { tail -c +$((off + 1)) "$vmlinuz" | xz -dc > "$out.tmp" 2>/dev/null || true; }
    if is_elf "$out.tmp"; then mv "$out.tmp" "$out"; else rm -f "$out.tmp"; fi
  fi
  if is_elf "$out"; then echo "$out"; else echo "$vmlinuz"; fi
}

# guest_build BIN...: builds static glibc binaries (pci-driver does not build for musl);
# each BIN is package:binary. Prints the output folder. Not position independent: a
# static-pie gmem (C++ of the Verilated model inside) jumps to an unrelocated address
# from _init at start-up.
guest_build() {
  local args=() b
  for b in "$@"; do args+=(-p "${b%%:*}" --bin "${b#*:}"); done
  CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
    cargo build -q --release --locked "${args[@]}" --target "$TARGET" >&2 ||
    die "cargo build of ${*} failed"
  echo "${CARGO_TARGET_DIR:-$PWD/target}/$TARGET/release"
}

# guest_initramfs OUT MODDIR WORKDIR INIT [NAME=SRC...]: /init = INIT (the static
# vfio-guest-test), the VFIO modules in dependency order under /modules, plus entries.
guest_initramfs() {
  local out=$1 moddir=$2 work=$3 init=$4 m src i=10
  shift 4
  local mods=(virt/lib/irqbypass.ko drivers/vfio/vfio.ko drivers/vfio/vfio_iommu_type1.ko
              drivers/vfio/vfio_virqfd.ko drivers/vfio/pci/vfio-pci-core.ko drivers/vfio/pci/vfio-pci.ko)
  local entries=(dev= proc= sys= modules= "init=$init")
  for m in "${mods[@]}"; do
    src=$moddir/$m
    if [ ! -f "$src" ] && [ -f "$src.xz" ]; then xz -dc "$src.xz" > "$work/$(basename "$m")"; src=$work/$(basename "$m"); fi
    [ -f "$src" ] || die "kernel module $m missing in $moddir"
    entries+=("modules/$i-$(basename "$m")=$src")
    i=$((i + 10))
  done
  "$init" --mkcpio "$out" "${entries[@]}" "$@" || die "cannot write the initramfs"
}
