#!/usr/bin/env bash
# Installs VMDriver's C API: libvmdriver.so (with its SONAME link), the headers (vix.h,
# PrlApi.h and the Parallels SDK's headers, cim_migration.h) and vmdriver.pc, so that
#
#   cc prog.c $(PKG_CONFIG_PATH=PREFIX/lib/pkgconfig pkg-config --cflags --libs vmdriver)
#
# builds a program written against VIX, the Parallels SDK or CIM.
#
#   scripts/install-c-api.sh PREFIX                 builds the release library, then installs
#   scripts/install-c-api.sh --build-dir DIR PREFIX installs DIR/libvmdriver.so as it is built
#
# The library finds the Swift runtime through its RUNPATH (the toolchain's lib/swift/linux);
# vmdriver.pc adds an rpath to PREFIX/lib, so a program needs nothing but pkg-config's flags.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
log_prefix=install-c-api

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=
if [ "${1:-}" = --build-dir ]; then
  build_dir=${2:?--build-dir needs a directory}
  shift 2
fi
prefix=${1:?usage: install-c-api.sh [--build-dir DIR] PREFIX}
# One version for vmctl and the library: VMDriverVersion.current.
version=$(sed -n 's/.*static let current = "\([0-9.]*\)".*/\1/p' "$root/Sources/VMDriver/Version.swift")
[ -n "$version" ] || { log "cannot read the version from Sources/VMDriver/Version.swift"; exit 1; }

if [ -z "$build_dir" ]; then
  log "building libvmdriver.so (release)"
  (cd "$root" && swift build -c release --product vmdriver >&2)
  build_dir=$(cd "$root" && swift build -c release --show-bin-path)
fi
library="$build_dir/libvmdriver.so"
[ -f "$library" ] || {
  log "no $library: build it first (swift build --product vmdriver)"
  exit 1
}

mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
install -m 0755 "$library" "$prefix/lib/libvmdriver.so.$version"
ln -sf "libvmdriver.so.$version" "$prefix/lib/libvmdriver.so.1"
ln -sf "libvmdriver.so.1" "$prefix/lib/libvmdriver.so"
cp -R "$root/Sources/CVMDriverAPI/include/." "$prefix/include/"
# The module map is for Swift's build only.
rm -f "$prefix/include/module.modulemap"

prefix_abs=$(cd "$prefix" && pwd)
cat >"$prefix/lib/pkgconfig/vmdriver.pc" <<PC
prefix=$prefix_abs
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: vmdriver
Description: VMware VIX, Parallels SDK and CIM migration C APIs on KVM/QEMU through libvirt
Version: $version
Requires.private: libvirt
Cflags: -I\${includedir} -I\${includedir}/ParallelsVirtualizationSDK
Libs: -L\${libdir} -Wl,-rpath,\${libdir} -lvmdriver
PC
log "installed libvmdriver.so.$version, headers and vmdriver.pc under $prefix_abs"
