#!/usr/bin/env bash
# Style check with the toolchain's swift-format (.swift-format at the top). Prints findings;
# exits non-zero only with --strict.
set -euo pipefail
cd "$(dirname "$0")/.."
strict=()
[ "${1:-}" = --strict ] && strict=(--strict)
swift format lint --recursive --parallel "${strict[@]}" Package.swift Sources Tests Fuzz/Package.swift Fuzz/Sources/vmfuzz/Entry.swift
