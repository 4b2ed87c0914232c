#!/usr/bin/env bash
# Installs vmctl with its manual page and shell completions:
#
#   PREFIX/bin/vmctl                                 the tool (Swift runtime linked in)
#   PREFIX/share/man/man1/vmctl.1                    swift-argument-parser's generate-manual plugin
#   PREFIX/share/bash-completion/completions/vmctl   vmctl --generate-completion-script bash
#   PREFIX/share/zsh/site-functions/_vmctl           ... zsh
#   PREFIX/share/fish/vendor_completions.d/vmctl.fish ... fish
#
#   scripts/install-vmctl.sh PREFIX                  builds the release vmctl (static Swift
#                                                    runtime) and installs it, e.g. /usr/local
#   scripts/install-vmctl.sh --debug PREFIX          the debug build, as tests use it
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
log_prefix=install-vmctl

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
configuration=release
if [ "${1:-}" = --debug ]; then
  configuration=debug
  shift
fi
prefix=${1:?usage: install-vmctl.sh [--debug] PREFIX}

cd "$root"
if [ "$configuration" = release ]; then
  log "building vmctl (release, static Swift runtime)"
  swift build -c release --static-swift-stdlib --product vmctl >&2
  bin=$(swift build -c release --static-swift-stdlib --show-bin-path)
else
  swift build --product vmctl >&2
  bin=$(swift build --show-bin-path)
fi
tool="$bin/vmctl"

# The manual page from vmctl's own command tree (the plugin builds the package in this
# configuration first: nothing new when it is built already).
log "generating the manual page"
swift package generate-manual --configuration "$configuration" >&2
page="$root/.build/plugins/GenerateManual/outputs/vmctl/vmctl.1"
[ -s "$page" ] || { log "the manual plugin wrote no $page"; exit 1; }

mkdir -p "$prefix/bin" "$prefix/share/man/man1" "$prefix/share/bash-completion/completions" \
  "$prefix/share/zsh/site-functions" "$prefix/share/fish/vendor_completions.d"
install -m 0755 "$tool" "$prefix/bin/vmctl"
install -m 0644 "$page" "$prefix/share/man/man1/vmctl.1"
"$tool" --generate-completion-script bash >"$prefix/share/bash-completion/completions/vmctl"
"$tool" --generate-completion-script zsh >"$prefix/share/zsh/site-functions/_vmctl"
"$tool" --generate-completion-script fish >"$prefix/share/fish/vendor_completions.d/vmctl.fish"
log "installed vmctl $("$tool" --version), its manual page and bash, zsh and fish completions under $prefix"
