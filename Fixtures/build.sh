#!/usr/bin/env bash
# Builds VMDriver's test guests into a cache outside git and prints the cache path.
#
#   Fixtures/build.sh            -> stdout: the cache directory (logs go to stderr)
#
# Cache: ${VMDRIVER_FIXTURES:-/var/cache/vmdriver/fixtures}, see Fixtures/README.md.
# Idempotent: when VERSION in the cache matches the hash of Fixtures/ and every output
# is there, it does nothing (a few ms). Otherwise it builds everything in a temp dir
# inside the cache and moves the results into place, VERSION last, so an interrupted
# build never leaves a cache that looks complete.
set -euo pipefail
umask 022

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${VMDRIVER_FIXTURES:-/var/cache/vmdriver/fixtures}
outputs=(bootsector.img probe.img vmlinuz initrd.img initrd-agent.img data.qcow2
  linux-domain.xml.in bootsector-domain.xml.in)
# Order matters: each module needs the ones before it (PLATFORM.md). evdev + button give
# busybox acpid the ACPI power button (virsh shutdown).
modules=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk
  evdev button
  # the NoCloud seed on the IDE CD-ROM (clone --hostname)
  scsi_common scsi_mod libata ata_piix cdrom sr_mod isofs
  # a NIC on the isolated test network (udhcpc)
  failover net_failover virtio_net)
kernel_meta=linux-image-cloud-amd64

log() { printf 'fixtures: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# Hash of every file under Fixtures/ except the README: a changed source rebuilds.
source_hash() {
  (cd "$here" && find . -type f ! -name README.md ! -name '*~' -print0 | LC_ALL=C sort -z |
    xargs -0 sha256sum) | sha256sum | cut -d' ' -f1
}

complete() {
  local f line
  [ -f "$cache/VERSION" ] || return 1
  IFS= read -r line <"$cache/VERSION" || return 1
  [ "$line" = "sources=$hash" ] || return 1
  for f in "${outputs[@]}"; do
    [ -s "$cache/$f" ] || return 1
  done
}

hash=$(source_hash)
if complete; then
  printf '%s\n' "$cache"
  exit 0
fi

# --- slow path -------------------------------------------------------------------------
need() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 || die "missing tool '$t' (apt-get install $(pkg_of "$t"))"
  done
}
pkg_of() {
  case "$1" in
    as | ld | readelf) echo binutils ;;
    busybox) echo busybox-static ;;
    mkfs.ext4) echo e2fsprogs ;;
    qemu-img) echo qemu-utils ;;
    flock) echo util-linux ;;
    *) echo "$1" ;;
  esac
}
need as ld readelf gcc busybox cpio gzip mkfs.ext4 qemu-img apt-get apt-cache dpkg-deb \
  flock sha256sum truncate

busybox=$(command -v busybox)
if readelf -l "$busybox" 2>/dev/null | grep -q 'Requesting program interpreter'; then
  die "$busybox is dynamically linked: install busybox-static (it replaces busybox)"
fi

mkdir -p "$cache"
chmod 0755 "$cache"
exec 9>"$cache/.lock"
flock 9
# Another run may have finished the job while we waited for the lock.
if complete; then
  printf '%s\n' "$cache"
  exit 0
fi
rm -rf "$cache"/.build.*
tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log "building into $cache (sources $hash)"

# 1. Boot sectors: flat 512-byte binaries (0x55AA at 510), padded to 1 MiB raw disks.
for s in boot probe; do
  as --32 -o "$tmp/$s.o" "$here/bootsector/$s.S"
  ld -m elf_i386 -Ttext=0x7c00 -e _start --oformat binary -o "$tmp/$s.bin" "$tmp/$s.o"
  size=$(stat -c %s "$tmp/$s.bin")
  [ "$size" = 512 ] || die "$s.bin is $size bytes, expected 512"
  [ "$(od -An -tx1 -j510 -N2 "$tmp/$s.bin" | tr -d ' \n')" = 55aa ] || die "$s.bin: no 0x55AA"
done
mv "$tmp/boot.bin" "$tmp/bootsector.img"
mv "$tmp/probe.bin" "$tmp/probe.img"
truncate -s 1M "$tmp/bootsector.img" "$tmp/probe.img"

# 2. Kernel: the package linux-image-cloud-amd64 depends on names.
kpkg=$(apt-cache depends "$kernel_meta" 2>/dev/null |
  awk '$1 == "Depends:" && $2 ~ /^linux-image-.*-cloud-amd64$/ { print $2; exit }')
[ -n "$kpkg" ] || die "cannot resolve $kernel_meta to a linux-image-*-cloud-amd64 package (run apt-get update?)"
mkdir "$tmp/deb" "$tmp/kernel"
log "downloading $kpkg"
(cd "$tmp/deb" && apt-get download -q -o APT::Sandbox::User=root "$kpkg") >&2 ||
  die "apt-get download $kpkg failed"
deb=$(ls "$tmp"/deb/*.deb)
kpkg_version=$(dpkg-deb -f "$deb" Version)
dpkg-deb -x "$deb" "$tmp/kernel"
kver=$(ls "$tmp/kernel/lib/modules")
[ -f "$tmp/kernel/boot/vmlinuz-$kver" ] || die "no boot/vmlinuz-$kver in $kpkg"
cp "$tmp/kernel/boot/vmlinuz-$kver" "$tmp/vmlinuz"

# 3. Initramfs: busybox-static, the modules, /init, the power-button handler, dirty, seqwrite.
root=$tmp/initramfs
mkdir -p "$root"/{bin,dev,proc,sys,data,tmp,root,lib/modules,etc/acpi/PWRF}
cp "$busybox" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
for m in "${modules[@]}"; do
  ko=$(find "$tmp/kernel/lib/modules/$kver" -name "$m.ko" -print -quit)
  [ -n "$ko" ] || die "module $m.ko not in $kpkg"
  cp "$ko" "$root/lib/modules/$m.ko"
done
install -m 0755 "$here/linux/init" "$root/init"
install -m 0755 "$here/linux/poweroff" "$root/etc/acpi/PWRF/00000080"
install -m 0755 "$here/linux/udhcpc.script" "$root/etc/udhcpc.script"
gcc -static -O2 -s -o "$root/bin/dirty" "$here/linux/dirty.c" ||
  die "gcc -static failed (is libc6-dev installed?)"
gcc -static -O2 -s -o "$root/bin/seqwrite" "$here/linux/seqwrite.c" ||
  die "gcc -static failed (is libc6-dev installed?)"
pack() { (cd "$1" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) | gzip -6 -n; }
pack "$root" >"$tmp/initrd.img"

# 3b. The same with Debian's qemu-guest-agent (its binary from the package, its shared libraries
# from this machine's Debian) and virtio_console: /init starts it on the guest agent's port.
# A separate image, so the guests without it boot as fast as before.
mkdir "$tmp/qga"
log "downloading qemu-guest-agent"
(cd "$tmp/qga" && apt-get download -q -o APT::Sandbox::User=root qemu-guest-agent) >&2 ||
  die "apt-get download qemu-guest-agent failed"
dpkg-deb -x "$tmp"/qga/qemu-guest-agent_*.deb "$tmp/qga/x"
install -D -m 0755 "$tmp/qga/x/usr/sbin/qemu-ga" "$root/usr/sbin/qemu-ga"
ldd "$tmp/qga/x/usr/sbin/qemu-ga" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
  while read -r lib; do
    [ -f "$lib" ] || die "qemu-ga needs $lib, which this machine lacks (apt-get install the package that has it)"
    install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
  done
ko=$(find "$tmp/kernel/lib/modules/$kver" -name virtio_console.ko -print -quit)
[ -n "$ko" ] || die "module virtio_console.ko not in $kpkg"
cp "$ko" "$root/lib/modules/virtio_console.ko"
pack "$root" >"$tmp/initrd-agent.img"

# 4. Data disk template: 64 MiB ext4 labelled "data" with /seed and an empty /markers.
mkdir "$tmp/datafs"
printf 'vmdriver fixture seed\n' >"$tmp/datafs/seed"
: >"$tmp/datafs/markers"
# (mkfs.ext4 -d says "Creating regular file" on stdout even with -q)
mkfs.ext4 -q -F -d "$tmp/datafs" -L data -E root_owner=0:0 "$tmp/data.ext4" 64M >&2
qemu-img convert -O qcow2 "$tmp/data.ext4" "$tmp/data.qcow2"

# 5. Domain XML templates.
cp "$here/templates/linux-domain.xml.in" "$here/templates/bootsector-domain.xml.in" "$tmp/"

# Install: VERSION goes first (out) and last (in).
rm -f "$cache/VERSION"
for f in "${outputs[@]}"; do
  chmod 0644 "$tmp/$f"
  mv -f "$tmp/$f" "$cache/$f"
done
{
  printf 'sources=%s\n' "$hash"
  printf 'kernel=%s %s (%s)\n' "$kpkg" "$kpkg_version" "$kver"
  printf 'busybox=%s\n' "$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo unknown)"
  printf 'built=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$tmp/VERSION"
chmod 0644 "$tmp/VERSION"
mv -f "$tmp/VERSION" "$cache/VERSION"
rm -rf "$tmp"
log "done: $(du -sh --exclude='.build.*' "$cache" | cut -f1)"
printf '%s\n' "$cache"
