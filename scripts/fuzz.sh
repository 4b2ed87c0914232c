#!/usr/bin/env bash
# libFuzzer over the destination parser, the domain XML reader and rewrites, and VM names
# (Fuzz/, RELIABILITY.md). Builds Fuzz/ with -sanitize=fuzzer into .build-fuzz, runs
# each target for a bounded time from its committed corpus (Fuzz/corpus/<target>), and fails
# with the reproducer's path if a property broke. The corpus is only read: --update-corpus
# merges what the run found into it, minimised (libFuzzer's -merge=1).
#
#   scripts/fuzz.sh [--seconds N] [--update-corpus] [target ...]   (targets: destination xml name)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "$0")/.."

seconds=35
update=no
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --update-corpus) update=yes; shift ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(destination xml name)

log_prefix=fuzz.sh

# The fuzz build compiles VMDriver, which needs libvirt's headers (libFuzzer comes with Swift).
bash scripts/apt-ensure.sh libvirt-dev pkg-config
log "building Fuzz/ with -sanitize=fuzzer"
swift build --package-path Fuzz --scratch-path .build-fuzz \
  -Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library >&2
binary=.build-fuzz/debug/vmfuzz

work=$(mktemp -d /tmp/vmfuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
artifacts=.build-fuzz/artifacts
mkdir -p "$artifacts"

status=0
for target in "${targets[@]}"; do
  corpus=Fuzz/corpus/$target
  [ -d "$corpus" ] || { log "no corpus folder $corpus"; exit 2; }
  mkdir -p "$work/$target"
  cp "$corpus"/* "$work/$target"/
  log "$target: ${seconds}s from $(ls "$corpus" | wc -l) corpus files"
  set +e
  # Swift's own backtracer would take the abort before libFuzzer saves the input.
  SWIFT_BACKTRACE=enable=no VMFUZZ_TARGET=$target "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
    -print_final_stats=1 -artifact_prefix="$artifacts/$target-" "$work/$target" >"$work/$target.log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target.log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$target.log" | tail -1)
  printf '%s: %s runs, %s exec/s, exit %s\n' "$target" "${runs:-?}" "${rate:-?}" "$rc"
  if [ "$rc" -ne 0 ]; then
    status=1
    grep -E '^vmfuzz:|Fatal error|ERROR' "$work/$target.log" | head -5 >&2 || true
    log "$target: reproducer in $(ls -t "$artifacts/$target-"* 2>/dev/null | head -1)"
    log "replay: VMFUZZ_TARGET=$target $binary <file>"
    continue
  fi
  if [ "$update" = yes ]; then
    mkdir -p "$work/$target.merged"
    VMFUZZ_TARGET=$target "$binary" -merge=1 "$work/$target.merged" "$corpus" "$work/$target" >/dev/null 2>&1
    rm -f "$corpus"/*
    cp "$work/$target.merged"/* "$corpus"/
    log "$target: corpus now $(ls "$corpus" | wc -l) files"
  fi
done
exit "$status"
