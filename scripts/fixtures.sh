#!/usr/bin/env bash
# Builds the test guests (Fixtures/build.sh) and, with "smoke", boots each of them once
# through libvirt (qemu:///system) to check the serial protocol. Leaves nothing behind.
#
#   scripts/fixtures.sh          build (or check) the cache, print its path
#   scripts/fixtures.sh smoke    build, then: Linux guest (TCG) boot -> heartbeat ->
#                                virsh shutdown -> boot again -> both markers on the disk;
#                                boot sector under TCG (and KVM when /dev/kvm exists);
#                                accelerator probe under TCG and KVM (KVM: reported only)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=$("$root/Fixtures/build.sh")
[ "${1:-}" = smoke ] || {
  printf '%s\n' "$cache"
  exit 0
}

uri=qemu:///system
v() { virsh -q -c "$uri" "$@"; }
log_prefix=smoke
fail() {
  log "FAIL: $*"
  exit 1
}
now() { printf '%s' "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

work=$(mktemp -d /var/lib/libvirt/images/vmdriver-smoke.XXXXXX)
chmod 0755 "$work"
prefix="vmdriver-smoke-$$"
domains=()
cleanup() {
  local d
  remove_domains "$uri" -- "${domains[@]}"
  for d in "${domains[@]}"; do
    rm -f "/var/log/libvirt/qemu/$d.log"
  done
  rm -rf "$work"
}
trap cleanup EXIT

# define NAME TEMPLATE DISK TAG TYPE
define() {
  fill_template "$cache/$2" NAME="$1" DISK="$3" SERIAL="$work/$1.serial" KERNEL="$cache/vmlinuz" \
    INITRD="$cache/initrd.img" TAG="$4" DOMAIN_TYPE="$5" >"$work/$1.xml"
  v define "$work/$1.xml" >/dev/null
  domains+=("$1")
}
# wait_for NAME PATTERN SECONDS: 0 when the serial log has a line matching PATTERN,
# 1 on timeout or when the domain stopped running (e.g. paused by a KVM internal error)
wait_for() {
  local deadline=$((${EPOCHREALTIME%.*} + $3))
  while ((${EPOCHREALTIME%.*} < deadline)); do
    tr -d '\r' <"$work/$1.serial" 2>/dev/null | grep -q -- "$2" && return 0
    [ "$(v domstate "$1")" = running ] || break
    sleep 0.05
  done
  tr -d '\r' <"$work/$1.serial" 2>/dev/null | grep -q -- "$2"
}
wait_off() {
  local deadline=$((${EPOCHREALTIME%.*} + $2))
  while ((${EPOCHREALTIME%.*} < deadline)); do
    [ "$(v domstate "$1")" = "shut off" ] && return 0
    sleep 0.05
  done
  return 1
}

# Linux guest, TCG
d=$prefix-linux
cp "$cache/data.qcow2" "$work/$d.qcow2"
define "$d" linux-domain.xml.in "$work/$d.qcow2" smoke qemu
t=$(now)
v start "$d" >/dev/null
wait_for "$d" '^VMDRIVER-HEARTBEAT 1$' 30 || fail "linux: no heartbeat in 30 s"
log "linux (qemu): first heartbeat $(since "$t") s after virsh start"
wait_for "$d" '^boot 1 tag=smoke$' 1 || fail "linux: no 'boot 1' marker"
t=$(now)
v shutdown "$d" >/dev/null
wait_off "$d" 20 || fail "linux: still running 20 s after virsh shutdown"
log "linux: virsh shutdown -> shut off in $(since "$t") s"
v start "$d" >/dev/null
wait_for "$d" '^boot 2 tag=smoke$' 30 || fail "linux: no 'boot 2' marker after restart"
wait_for "$d" '^VMDRIVER-HEARTBEAT 1$' 10 || fail "linux: no heartbeat after restart"
v shutdown "$d" >/dev/null
wait_off "$d" 20 || fail "linux: second shutdown"
qemu-img convert -U -O raw "$work/$d.qcow2" "$work/$d.raw"
markers=$(debugfs -R 'cat /markers' "$work/$d.raw" 2>/dev/null)
[ "$markers" = $'boot 1 tag=smoke\nboot 2 tag=smoke' ] || fail "linux: /markers on disk is: $markers"
log "linux: /markers on the disk has both boots"

# Boot sector and probe
types=(qemu)
[ -e /dev/kvm ] && types+=(kvm)
for ty in "${types[@]}"; do
  d=$prefix-boot-$ty
  cp "$cache/bootsector.img" "$work/$d.img"
  define "$d" bootsector-domain.xml.in "$work/$d.img" - "$ty"
  t=$(now)
  v start "$d" >/dev/null
  wait_for "$d" '^tick 2$' 20 || fail "bootsector ($ty): no 'tick 2' in 20 s"
  log "bootsector ($ty): 'tick 2' $(since "$t") s after virsh start"
  v destroy "$d" >/dev/null

  d=$prefix-probe-$ty
  cp "$cache/probe.img" "$work/$d.img"
  define "$d" bootsector-domain.xml.in "$work/$d.img" - "$ty"
  t=$(now)
  v start "$d" >/dev/null
  if wait_for "$d" '^VMDRIVER-PROBE-DONE$' 15; then
    log "probe ($ty): PROBE-DONE $(since "$t") s after virsh start"
  elif [ "$ty" = qemu ]; then
    fail "probe (qemu): no PROBE-DONE"
  else
    log "probe ($ty): no PROBE-DONE (after $(since "$t") s); got: $(tr -d '\r' <"$work/$d.serial" | tr '\n' ' ')" \
      "state: $(v domstate --reason "$d")"
  fi
  v destroy "$d" >/dev/null
done
log "OK"
