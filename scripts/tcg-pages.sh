#!/usr/bin/env bash
# Whose are the pages a TCG guest loses in a live migration? VMDriver beside plain virsh, the
# same guest, load, bandwidth cap and steps, side by side (RELIABILITY.md, "TCG page loss").
#
#   scripts/tcg-pages.sh [--runs N] [--modes MODE,MODE...] [--bandwidth MIB_PER_S]
#
# Each run boots the Linux fixture guest (256 MiB, TCG, disk on the testbed's shared storage)
# on hosta with its page-pattern workload (vmdriver.dirty=128: it rewrites 128 MiB flat out and
# checks every word of its previous pass), waits for its second pass, moves it to hostb, then
# watches it there for 25 s: a pass line with CORRUPT is a lost or stale page, fewer than four
# pass lines or five heartbeats is a guest gone quiet, a second VMDRIVER-INIT is a reboot.
# Modes (interleaved, run after run, in the order given):
#   virsh-hot     virsh migrate --live --p2p --persistent --undefinesource --unsafe
#                 --auto-converge --bandwidth B --timeout 20 --timeout-suspend, and
#                 virsh migrate-setmaxdowntime 2000 five seconds in: the converge policy's steps
#                 (auto-converge, downtime raised to its bound, pause to finish) done by hand
#   virsh-precopy the same flags without auto-converge or a pause, against a guest that dirties
#                 32 MiB at 8 MiB/s (vmdriver.dirty=32 vmdriver.dirtyrate=8), so plain pre-copy
#                 converges by itself
#   virsh-postcopy virsh migrate --live --p2p --persistent --undefinesource --unsafe --postcopy
#                 --bandwidth B --timeout 10 --timeout-postcopy: post-copy after ten seconds of
#                 pre-copy (vm.unprivileged_userfaultfd set to 1 for it, put back after)
#   vmctl-hot     vmctl migrate --type hot --bandwidth B (the converge policy)
#   virsh-warm    virsh migrate --p2p --persistent --undefinesource --unsafe --bandwidth B
#                 (not live: libvirt pauses the guest while its memory moves)
#   vmctl-warm    vmctl migrate --type warm --bandwidth B
#   vmctl-auto    vmctl migrate --bandwidth B (what VMDriver picks by itself)
# Prints one line per run and a table of counts per mode. Needs the testbed (brings it up if it
# is down, and down again at the end) and the fixtures (Fixtures/build.sh). Builds vmctl;
# VMCTL=PATH runs another build instead (vmctl-hot needs one from before VMDriver refused live
# moves of TCG guests on QEMU < 9.0, e.g. commit 2e39ab6: this one answers code 1).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "$0")/.."
log_prefix=tcg-pages

runs=5
modes=virsh-hot,vmctl-auto,virsh-precopy,virsh-warm,vmctl-warm
bandwidth=32
while (($#)); do
  case "$1" in
    --runs) runs=$2; shift ;;
    --modes) modes=$2; shift ;;
    --bandwidth) bandwidth=$2; shift ;;
    -h | --help) sed -n '2,33p' "$0"; exit 0 ;;
    *) log "unknown argument: $1"; exit 4 ;;
  esac
  shift
done
IFS=, read -r -a mode_list <<<"$modes"

bash scripts/setup-host.sh >&2
fixtures=$(bash Fixtures/build.sh)
testbed_started=no
bash scripts/testbed.sh status >/dev/null 2>&1 || testbed_started=yes
bash scripts/testbed.sh up >/dev/null
a=qemu+tcp://10.77.0.1/system
b=qemu+tcp://10.77.0.2/system
shared=${VMDRIVER_TESTBED:-/var/lib/vmdriver-testbed}/shared
if [ -n "${VMCTL:-}" ]; then
  vmctl=$VMCTL
else
  swift build --product vmctl >&2
  vmctl=$(swift build --product vmctl --show-bin-path)/vmctl
fi

current=
cleanup() {
  local status=$?
  if [ -n "$current" ]; then
    remove_domains "$a" -- "$current"
    remove_domains "$b" -- "$current"
    rm -f "$shared/$current.qcow2" "$shared/$current.serial.log"
  fi
  [ "$testbed_started" = yes ] && bash scripts/testbed.sh down >/dev/null 2>&1
  exit "$status"
}
trap cleanup EXIT

# count PATTERN FILE FROM: lines matching PATTERN after line FROM.
count() { tail -n "+$(($3 + 1))" "$2" | grep -c -- "$1" || true; }

# run MODE INDEX: one move; prints "MODE INDEX OUTCOME DETAIL".
run() {
  local mode=$1 index=$2 name xml log mib=128 rate=0 moved status=0 detail
  name=vmdriver-tcgpages-$mode-$index-$$
  current=$name
  log=$shared/$name.serial.log
  [ "$mode" = virsh-precopy ] && mib=32 rate=8
  cp "$fixtures/data.qcow2" "$shared/$name.qcow2"
  xml=$(mktemp)
  sed -e "s|@NAME@|$name|" -e "s|@DISK@|$shared/$name.qcow2|" -e "s|@SERIAL@|$log|g" \
    -e "s|@KERNEL@|$fixtures/vmlinuz|" -e "s|@INITRD@|$fixtures/initrd.img|" -e "s|@DOMAIN_TYPE@|qemu|" \
    -e "s|@TAG@|pages vmdriver.dirty=$mib vmdriver.dirtyrate=$rate|" "$fixtures/linux-domain.xml.in" >"$xml"
  virsh -q -c "$a" define "$xml" >/dev/null
  rm -f "$xml"
  virsh -q -c "$a" start "$name" >/dev/null
  for _ in $(seq 1 600); do
    grep -q 'VMDRIVER-DIRTY pass=2' "$log" 2>/dev/null && break
    sleep 0.1
  done
  local started=$SECONDS errors
  errors=$(mktemp)
  case "$mode" in
    virsh-hot)
      (sleep 5 && virsh -q -c "$a" migrate-setmaxdowntime "$name" 2000 >/dev/null 2>&1) &
      virsh -q -c "$a" migrate --live --p2p --persistent --undefinesource --unsafe --auto-converge \
        --bandwidth "$bandwidth" --timeout 20 --timeout-suspend "$name" "$b" tcp://10.77.0.2 >/dev/null 2>"$errors" || status=$?
      wait
      ;;
    virsh-postcopy)
      local uffd
      uffd=$(cat /proc/sys/vm/unprivileged_userfaultfd)
      echo 1 >/proc/sys/vm/unprivileged_userfaultfd
      virsh -q -c "$a" migrate --live --p2p --persistent --undefinesource --unsafe --postcopy \
        --bandwidth "$bandwidth" --timeout 10 --timeout-postcopy "$name" "$b" tcp://10.77.0.2 >/dev/null 2>"$errors" || status=$?
      echo "$uffd" >/proc/sys/vm/unprivileged_userfaultfd
      ;;
    virsh-precopy)
      virsh -q -c "$a" migrate --live --p2p --persistent --undefinesource --unsafe \
        --bandwidth "$bandwidth" "$name" "$b" tcp://10.77.0.2 >/dev/null 2>"$errors" || status=$?
      ;;
    virsh-warm)
      virsh -q -c "$a" migrate --p2p --persistent --undefinesource --unsafe \
        --bandwidth "$bandwidth" "$name" "$b" tcp://10.77.0.2 >/dev/null 2>"$errors" || status=$?
      ;;
    vmctl-hot | vmctl-warm | vmctl-auto)
      local type=${mode#vmctl-}
      "$vmctl" -c "$a" migrate "$name" 10.77.0.2 --type "$type" --bandwidth "$bandwidth" --timeout 120 \
        >/dev/null 2>"$errors" || status=$?
      ;;
  esac
  local seconds=$((SECONDS - started))
  moved=$(wc -l <"$log")
  if [ "$status" != 0 ]; then
    detail="exit $status after ${seconds}s: $(tr '\n' ' ' <"$errors" | cut -c1-200)"
    echo "$mode $index not-moved $detail"
  elif [ "$(virsh -q -c "$b" domstate "$name" 2>/dev/null)" != running ]; then
    echo "$mode $index not-running-on-target after ${seconds}s"
  else
    # Resumed on the target if the move left it paused (virsh --timeout-suspend does).
    virsh -q -c "$b" resume "$name" >/dev/null 2>&1 || true
    sleep 25
    local corrupt passes beats inits
    corrupt=$(count 'CORRUPT' "$log" "$moved")
    passes=$(count 'VMDRIVER-DIRTY pass=' "$log" "$moved")
    beats=$(count 'VMDRIVER-HEARTBEAT' "$log" "$moved")
    inits=$(grep -c 'VMDRIVER-INIT' "$log" || true)
    detail="${seconds}s, after it: $passes page checks ($corrupt CORRUPT), $beats heartbeats, $inits boots"
    if [ "$inits" != 1 ]; then
      echo "$mode $index rebooted $detail"
    elif [ "$corrupt" != 0 ]; then
      echo "$mode $index lost-pages $detail"
    elif [ "$passes" -lt 4 ] || [ "$beats" -lt 5 ]; then
      echo "$mode $index quiet $detail"
    else
      echo "$mode $index whole $detail"
    fi
  fi
  remove_domains "$a" -- "$name"
  remove_domains "$b" -- "$name"
  rm -f "$shared/$name.qcow2" "$log" "$errors"
  current=
}

results=$(mktemp)
for index in $(seq 1 "$runs"); do
  for mode in "${mode_list[@]}"; do
    line=$(run "$mode" "$index")
    echo "$line"
    echo "$line" >>"$results"
  done
done

echo
printf '%-14s %5s %6s %10s %6s %9s %10s\n' mode runs whole lost-pages quiet rebooted not-moved
for mode in "${mode_list[@]}"; do
  n() { awk -v m="$mode" -v o="$1" '$1 == m && $3 ~ o' "$results" | wc -l; }
  printf '%-14s %5s %6s %10s %6s %9s %10s\n' "$mode" "$(n .)" "$(n '^whole$')" "$(n '^lost-pages$')" \
    "$(n '^quiet$')" "$(n '^rebooted$')" "$(n '^not-')"
done
rm -f "$results"
