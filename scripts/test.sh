#!/usr/bin/env bash
# The test command: sets up this machine as a libvirt host, builds the fixture guests, and runs
# every test (unit tests on test:///default, integration tests with real guests on
# qemu:///system, CLI tests). Stops the daemons it started and removes what tests left.
#
#   scripts/test.sh [--long] [extra swift test arguments, e.g. --filter GuestTests]
#
# --long: the reliability suite (RELIABILITY.md) runs each fault case ten times instead of three.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "$0")/.."

if [ "${1:-}" = --long ]; then
  export VMDRIVER_RELIABILITY_REPEAT=10
  shift
fi

log_prefix=test.sh

# Which daemons run before we start: those we start, we stop at the end.
# This host's daemons, by their pidfiles in /run (alive, pid_of: lib.sh): the testbed's daemons
# (scripts/testbed.sh) run in namespaces of their own and are not ours to stop.
was_running() { alive "$1"; }
started=()
was_running virtlogd || started+=(virtlogd)
was_running libvirtd || started+=(libvirtd)
testbed_started=no
testnet_started=no
# The main run's output, kept so that a failure is summed up last, where CI's tail shows it.
test_log=$(mktemp /tmp/vmdriver-test.XXXXXX)

cleanup() {
  local status=$?
  bash scripts/sweep.sh || true
  if [ "$testnet_started" = yes ]; then
    log "removing the isolated test network (this script made it)"
    bash scripts/testnet.sh down || true
  fi
  if [ "$testbed_started" = yes ]; then
    log "taking the testbed down (this script brought it up)"
    bash scripts/testbed.sh down || true
  fi
  for daemon in libvirtd virtlogd; do
    if [[ " ${started[*]-} " == *" $daemon "* ]]; then
      log "stopping $daemon (this script started it)"
      kill -TERM "$(pid_of "$daemon")" 2>/dev/null || true
      for _ in $(seq 1 50); do
        alive "$daemon" || break
        sleep 0.1
      done
    fi
  done
  if [ "$status" != 0 ] && [ -s "$test_log" ]; then
    log "what failed (from the test output above):"
    grep -E -A3 '✘|recorded an issue' "$test_log" | grep -v 'known issue' | cut -c1-400 | tail -60 || true
  fi
  rm -f "$test_log"
  [ -z "${c_api_prefix:-}" ] || rm -rf "$c_api_prefix"
  [ -z "${vmctl_prefix:-}" ] || rm -rf "$vmctl_prefix"
  exit "$status"
}
trap cleanup EXIT

bash scripts/setup-host.sh
fixtures=$(bash Fixtures/build.sh)
export VMDRIVER_FIXTURES="$fixtures" VMDRIVER_INTEGRATION=1

# The two-host testbed for the migration tests: up (if it is not), and where its hosts are.
bash scripts/testbed.sh status >/dev/null 2>&1 || testbed_started=yes
while read -r host uri addr; do
  upper=$(printf '%s' "$host" | tr '[:lower:]' '[:upper:]')
  export "VMDRIVER_TESTBED_${upper}_URI=${uri#uri=}" "VMDRIVER_TESTBED_${upper}_ADDR=${addr#addr=}"
done < <(bash scripts/testbed.sh up)
[ -n "${VMDRIVER_TESTBED_HOSTB_URI:-}" ] || {
  log "the testbed did not come up"
  exit 1
}

# The isolated network the guests' NICs go on (vmctl addresses, start --wait ip).
bash scripts/testnet.sh status || testnet_started=yes
bash scripts/testnet.sh up >&2
export VMDRIVER_TEST_NETWORK=vmdriver-isolated

build_flags=()
# CI treats warnings in our own code as errors.
if [ "${CI:-}" = true ] || [ "${VMDRIVER_WERROR:-}" = 1 ]; then
  build_flags+=(-Xswiftc -warnings-as-errors)
fi
log "lint (swift-format, .swift-format)"
bash scripts/lint.sh --strict
log "building"
swift build --build-tests "${build_flags[@]}"
# The C API's library (CAPITests build C programs against it); --build-tests leaves it out.
swift build --product vmdriver "${build_flags[@]}"
# What a user installs (README, "Using VMDriver from C"): the release library, its headers and
# vmdriver.pc, for the test that checks what a release build exports. Built here, not by the
# test: `swift test` holds .build's lock, so a build it started would wait for ever.
c_api_prefix=$(mktemp -d /tmp/vmdriver-c-api.XXXXXX)
log "installing the C API (release) under $c_api_prefix"
bash scripts/install-c-api.sh "$c_api_prefix"
export VMDRIVER_C_API_PREFIX="$c_api_prefix"
# vmctl as the README installs it, with its manual page and completions, from this build (the
# CLI tests read them; zsh and fish check their scripts' syntax).
bash scripts/apt-ensure.sh zsh fish man-db groff-base
vmctl_prefix=$(mktemp -d /tmp/vmdriver-vmctl.XXXXXX)
log "installing vmctl, its manual page and completions under $vmctl_prefix"
bash scripts/install-vmctl.sh --debug "$vmctl_prefix"
export VMDRIVER_VMCTL_PREFIX="$vmctl_prefix"
# The library's documentation (Sources/VMDriver/VMDriver.docc and the doc comments), built
# with swift-docc-plugin: a broken symbol link or a malformed comment fails the run.
log "documentation (DocC, warnings as errors)"
swift package generate-documentation --target VMDriver --warnings-as-errors >/dev/null
log "running tests"
# One test at a time: the integration tests boot TCG guests on 2 cores, and a guest listed by
# one test must not be a guest another test is booting.
swift test --skip-build --no-parallel "$@" 2>&1 | tee "$test_log"
# ThreadSanitizer over the tests that need no guest: the job core's race tests, the Libvirt
# layer on test:///default, bad input, fuzzing properties. A reported race fails the run.
# Its own build folder (about 2 minutes to build, 1 to run); VMDRIVER_TSAN=0 skips it.
if [ "${VMDRIVER_TSAN:-1}" != 0 ]; then
  log "ThreadSanitizer (LibvirtTests, VMDriverTests, ReliabilityTests without guests)"
  # -DVMDRIVER_TSAN: VMDriver's locks on pthread mutexes, which ThreadSanitizer sees
  # (Sources/VMDriver/Internal/TSanMutex.swift says why).
  swift build --build-tests --sanitize=thread --scratch-path .build-tsan -Xswiftc -DVMDRIVER_TSAN "${build_flags[@]}"
  # One test at a time, as the main run: suites on the shared test:///default driver compare
  # its domain list before and after. The bad-XML case bounds how long a refusal may take (10 s): a bound for the real build,
  # not for one that ThreadSanitizer slows several times over (23 s seen), so it is skipped here.
  env -u VMDRIVER_INTEGRATION -u VMDRIVER_TESTBED_HOSTA_URI -u VMDRIVER_TESTBED_HOSTB_URI \
    swift test --skip-build --no-parallel --sanitize=thread --scratch-path .build-tsan -Xswiftc -DVMDRIVER_TSAN --filter 'LibvirtTests|VMDriverTests|ReliabilityTests' \
    --skip 'badXMLFilesAreCode4AndDefineNothing'
fi
# libFuzzer over the destination parser, the XML rewrites and VM names, from the committed
# corpus (Fuzz/corpus): VMDRIVER_FUZZ_SECONDS per target (default 35, about 2.5 minutes with
# the build; 0 skips). A broken property fails the run and leaves its reproducer.
fuzz_seconds=${VMDRIVER_FUZZ_SECONDS:-35}
if [ "$fuzz_seconds" != 0 ]; then
  log "fuzzing (${fuzz_seconds}s per target)"
  bash scripts/fuzz.sh --seconds "$fuzz_seconds"
fi
