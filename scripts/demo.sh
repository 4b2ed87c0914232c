#!/usr/bin/env bash
# The demo: sets up this machine as a libvirt host, builds the fixture Linux guest and vmctl,
# then shows VMDriver at work: what the host can do, opening (registering) a VM from its XML
# file, starting it, watching it boot, a clean ACPI shutdown, a linked clone that boots with
# the VM's data, and (on the two-host testbed, scripts/testbed.sh) a running linked clone
# migrated to the other host and back while it runs (hot; warm for a TCG guest on QEMU < 9.0,
# which cannot move live without losing writes): only its overlay travels.
#
#   scripts/demo.sh          runs the demo and removes the demo VM at the end
#   scripts/demo.sh --keep   leaves the demo VM defined and running
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
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
clone=vmdriver-demo-clone
dir=/var/lib/libvirt/images/$name
cleanup() {
  $keep && return
  remove_domains qemu:///system --snapshots-metadata -- "$clone" "$name"
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

fill_template "$fixtures/linux-domain.xml.in" NAME="$name" DISK="$dir/data.qcow2" SERIAL="$dir/serial.log" \
  KERNEL="$fixtures/vmlinuz" INITRD="$fixtures/initrd.img" TAG=demo DOMAIN_TYPE="$type" >"$dir/$name.xml"

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

say "Make a linked clone while it runs: the VM's disk is frozen, it goes on writing to a new overlay"
run "$vmctl" clone "$name" "$clone" --linked

say "Boot the clone: it sees the data the VM had written (its boot marker) and adds its own"
run "$vmctl" start "$clone"
for _ in $(seq 1 120); do
  grep -q 'VMDRIVER-MARKERS-END' "$dir/$clone-serial0.log" 2>/dev/null && break
  sleep 0.5
done
tr -d '\r' <"$dir/$clone-serial0.log" | sed -n '/MARKERS-BEGIN/,/MARKERS-END/p'
run "$vmctl" clones "$name"

if $keep; then
  say "Left running: $name and $clone (vmctl shutdown NAME; vmctl delete NAME --with-storage)"
  exit 0
fi

say "Shut both down cleanly (ACPI power button, 60 s deadline)"
run "$vmctl" shutdown "$clone" --timeout 60
run "$vmctl" shutdown "$name" --timeout 60

say "The parent is protected while the clone rests on it"
"$vmctl" delete "$name" || echo "(exit $?: refused, as it should be)"

# --- Migration: a second host -------------------------------------------------------------
say "Two libvirt hosts on this machine, each in its own namespaces (scripts/testbed.sh)"
testbed_started=false
bash scripts/testbed.sh status >/dev/null 2>&1 || testbed_started=true
run bash scripts/testbed.sh up
a=qemu+tcp://10.77.0.1/system
b=qemu+tcp://10.77.0.2/system
shared=/var/lib/vmdriver-testbed/shared
golden=vmdriver-demo-golden
moved=vmdriver-demo-web
testbed_cleanup() {
  for uri in "$a" "$b"; do
    remove_domains "$uri" --snapshots-metadata -- "$moved" "$golden"
  done
  rm -f -- "$shared/$golden".* "$shared/$golden"-* "$shared/$moved"* \
    /var/lib/vmdriver-testbed/host{a,b}/lib/images/"$moved"*
  if $testbed_started; then bash scripts/testbed.sh down || true; fi
}
trap 'cleanup; testbed_cleanup' EXIT
testbed_cleanup >/dev/null 2>&1 || true
$testbed_started && bash scripts/testbed.sh up >/dev/null

cp "$fixtures/data.qcow2" "$shared/$golden.qcow2"
fill_template "$fixtures/linux-domain.xml.in" NAME="$golden" DISK="$shared/$golden.qcow2" \
  SERIAL="$shared/$golden.serial.log" KERNEL="$fixtures/vmlinuz" INITRD="$fixtures/initrd.img" TAG=golden \
  DOMAIN_TYPE="$type" >"$shared/$golden.xml"
say "On hosta: a golden VM on storage both hosts share, and a linked clone of it on hosta's own disk"
run "$vmctl" -c "$a" open "$shared/$golden.xml"
run "$vmctl" -c "$a" clone "$golden" "$moved" --linked --dest /var/lib/libvirt/images
run "$vmctl" -c "$a" start "$moved"
serial=$(virsh -q -c "$a" dumpxml "$moved" | sed -n "s|.*<source path='\([^']*\)'.*|\1|p" | head -1)
for _ in $(seq 1 120); do
  grep -q 'VMDRIVER-HEARTBEAT 2' "/var/lib/vmdriver-testbed/hosta/lib/images/${serial##*/}" 2>/dev/null && break
  sleep 0.5
done

say "Could it move to hostb? (changes nothing)"
run "$vmctl" -c "$a" migrate "$moved" 10.77.0.2 --check

say "Live to hostb: its base is on shared storage, so only the clone's overlay is copied"
run "$vmctl" -c "$a" migrate "$moved" 10.77.0.2
run virsh -c "$b" list

say "And back to hosta with every byte encrypted (TLS for control and data, certificates checked)"
run env VMDRIVER_PKIPATH=/var/lib/vmdriver-testbed/client "$vmctl" -c "$b" migrate "$moved" 10.77.0.1 --security high
run virsh -c "$a" list
log=/var/lib/vmdriver-testbed/hosta/lib/images/${serial##*/}
echo "The guest never restarted: $(tr -d '\r' <"$log" | grep -c VMDRIVER-INIT) boot, heartbeat at $(tr -d '\r' <"$log" | grep HEARTBEAT | tail -1)"
