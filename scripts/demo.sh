#!/usr/bin/env bash
# The demo: sets up this machine as a libvirt host, builds the fixture Linux guest and vmctl,
# then shows VMDriver at work: what the host can do, opening (registering) a VM from its XML
# file, starting it, watching it boot, and a clean ACPI shutdown.
#
#   scripts/demo.sh          runs the demo and removes the demo VM at the end
#   scripts/demo.sh --keep   leaves the demo VM defined and running
set -euo pipefail
cd "$(dirname "$0")/.."
keep=false
[ "${1:-}" = --keep ] && keep=true

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

bash scripts/setup-host.sh
fixtures=$(bash Fixtures/build.sh)
swift build --product vmctl >&2
vmctl=$(swift build --show-bin-path)/vmctl

name=vmdriver-demo
dir=/var/lib/libvirt/images/$name
cleanup() {
  $keep && return
  virsh -q -c qemu:///system destroy "$name" >/dev/null 2>&1 || true
  virsh -q -c qemu:///system undefine "$name" >/dev/null 2>&1 || true
  rm -rf -- "$dir"
}
trap cleanup EXIT
cleanup
mkdir -p "$dir"
cp "$fixtures/data.qcow2" "$dir/data.qcow2"

say "What this host can do (the accelerator probe boots a 512-byte guest under each one)"
run "$vmctl" caps
type=$("$vmctl" caps --json | sed -n 's/.*"linuxDomainType" : "\([a-z]*\)".*/\1/p')
[ -n "$type" ] || { echo "no accelerator runs Linux guests here" >&2; exit 1; }
echo "-> Linux guests get <domain type='$type'>"

sed -e "s|@NAME@|$name|; s|@DISK@|$dir/data.qcow2|; s|@SERIAL@|$dir/serial.log|" \
  -e "s|@KERNEL@|$fixtures/vmlinuz|; s|@INITRD@|$fixtures/initrd.img|; s|@TAG@|demo|; s|@DOMAIN_TYPE@|$type|" \
  "$fixtures/linux-domain.xml.in" >"$dir/$name.xml"

say "Open a VM from its domain XML file: not registered yet, so VMDriver registers it"
run "$vmctl" open "$dir/$name.xml"

say "Start it and watch the serial console"
run "$vmctl" start "$name"
for _ in $(seq 1 120); do
  grep -q 'VMDRIVER-HEARTBEAT 3' "$dir/serial.log" 2>/dev/null && break
  sleep 0.5
done
tr -d '\r' <"$dir/serial.log" | grep VMDRIVER- | head -8

say "Open it again, by name, as JSON"
run "$vmctl" open "$name" --json

say "List the host's VMs"
run "$vmctl" list --all

if $keep; then
  say "Left running: $name (vmctl shutdown $name; virsh undefine $name)"
  exit 0
fi

say "Shut it down cleanly (ACPI power button, 60 s deadline)"
run "$vmctl" shutdown "$name" --timeout 60
