#!/usr/bin/env bash
# The benchmark suite: VMDriver beside virsh, qemu-img, cp, virt-clone, python-libvirt
# and a C loop on libvirt's API, measured in the same run on this machine, interleaved, medians
# of several runs and ratios taken pair by pair. See BENCHMARKS.md.
#
#   scripts/bench.sh [--quick] [--no-migration] [--cases ID,ID] [--out DIR]
#
# Writes DIR/results.json, DIR/results.md (the table, also printed) and DIR/*.png (default
# DIR: bench/). --quick: fewer runs (about 5 minutes once built); the full run stays under 30.
# Installs what it needs with apt-get (like setup-host.sh), starts the daemons, brings the
# two-host testbed up for the migration cases (and down again if it was down), builds
# vmctl and vmbench in release mode in .build-bench, and the C anchor with gcc.
# Everything it makes is named vmdriver-bench-* and removed at the end, even on failure.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "$0")/.."
root=$(pwd)

log_prefix=bench.sh

quick=()
migration=()
cases=()
out=bench
while (($#)); do
  case "$1" in
    --quick) quick=(--quick) ;;
    --no-migration) migration=(--no-migration) ;;
    --cases) cases=(--cases "$2"); shift ;;
    --out) out=$2; shift ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    *) log "unknown argument: $1"; exit 4 ;;
  esac
  shift
done

bash scripts/setup-host.sh

# The anchors and the plotting tool, from Debian's packages. Debian's /usr/bin/python3 is used
# throughout: python3-libvirt and python3-matplotlib live in its dist-packages.
packages=(virtinst python3-libvirt python3-matplotlib xfsprogs time gcc libvirt-dev pkg-config qemu-utils)
bash "$(dirname "${BASH_SOURCE[0]}")/apt-ensure.sh" "${packages[@]}"
python=/usr/bin/python3

fixtures=$(bash Fixtures/build.sh)
export VMDRIVER_FIXTURES="$fixtures"

# Built as README tells users to install vmctl: release, with the Swift runtime linked in
# statically (it starts in two thirds of the time of a dynamically linked build here).
log "building vmctl and vmbench (release, static Swift runtime, .build-bench)"
release=(-c release --static-swift-stdlib --scratch-path .build-bench)
swift build "${release[@]}" --product vmctl >&2
swift build "${release[@]}" --product vmbench >&2
bin=$(swift build "${release[@]}" --show-bin-path)

# The migration cases bring the testbed up; it goes down at the end if it was not up before.
testbed_was_up=no
bash scripts/testbed.sh status >/dev/null 2>&1 && testbed_was_up=yes
tmp=$(mktemp -d /tmp/vmdriver-bench.XXXXXX)
cleanup() {
  local status=$?
  "$python" "$root/bench/py/bench.py" --cleanup || true
  if [ "$testbed_was_up" = no ] && bash "$root/scripts/testbed.sh" status >/dev/null 2>&1; then
    log "taking the testbed down (this run brought it up)"
    bash "$root/scripts/testbed.sh" down || true
  fi
  rm -rf -- "$tmp"
  exit "$status"
}
trap cleanup EXIT INT TERM
# shellcheck disable=SC2046 # pkg-config prints separate flags
gcc -O2 -o "$tmp/lookup" bench/c/lookup.c $(pkg-config --cflags --libs libvirt)

# Leftovers of an earlier, killed run.
"$python" bench/py/bench.py --cleanup

command=(scripts/bench.sh "${quick[@]}" "${migration[@]}" "${cases[@]}")
"$python" bench/py/bench.py "${quick[@]}" "${migration[@]}" "${cases[@]}" --out "$out" \
  --vmctl "$bin/vmctl" --vmbench "$bin/vmbench" --lookup "$tmp/lookup" --command "${command[*]}"
