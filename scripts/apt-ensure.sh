#!/usr/bin/env bash
# Installs the Debian packages named on the command line that are not installed yet; does
# nothing when all are. Used by setup-host.sh and bench.sh.
#
#   scripts/apt-ensure.sh PACKAGE...
set -euo pipefail

missing=()
for p in "$@"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
((${#missing[@]})) || exit 0
printf 'apt-ensure: installing: %s\n' "${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d keeps dpkg from trying to start services: there is no init system to do it.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
