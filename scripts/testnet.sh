#!/usr/bin/env bash
# The isolated libvirt network the guest tests put NICs on (vmctl addresses, start --wait ip):
# no <forward>, so nothing leaves this machine; libvirt's dnsmasq (dnsmasq-base) hands out
# addresses and keeps the leases libvirt reports. The host's NAT network "default" is never
# started.
#
#   scripts/testnet.sh up      define and start it (idempotent); prints its name, bridge and subnet
#   scripts/testnet.sh down    stop and undefine it (its leases go with it)
#   scripts/testnet.sh status  exit 0 if it is up
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
log_prefix=testnet

name=${VMDRIVER_TEST_NETWORK:-vmdriver-isolated}
bridge=vmdisol0
address=192.168.213.1
netmask=255.255.255.0
first=192.168.213.10
last=192.168.213.250
uri=qemu:///system

active() { [ "$(virsh -q -c "$uri" net-info "$name" 2>/dev/null | awk '$1 == "Active:" { print $2 }')" = yes ]; }

case "${1:-}" in
  up)
    command -v dnsmasq >/dev/null 2>&1 || bash "$(dirname "${BASH_SOURCE[0]}")/apt-ensure.sh" dnsmasq-base
    if ! virsh -q -c "$uri" net-info "$name" >/dev/null 2>&1; then
      # Another interface already on the subnet would make the guests' addresses ambiguous.
      if ip -4 -o addr show | awk '{ print $4 }' | grep -q '^192\.168\.213\.'; then
        log "192.168.213.0/24 is already on an interface of this machine: not defining $name"
        exit 1
      fi
      xml=$(mktemp)
      trap 'rm -f "$xml"' EXIT
      cat >"$xml" <<XML
<network>
  <name>$name</name>
  <bridge name='$bridge' stp='off'/>
  <ip address='$address' netmask='$netmask'>
    <dhcp><range start='$first' end='$last'/></dhcp>
  </ip>
</network>
XML
      virsh -q -c "$uri" net-define "$xml" >/dev/null
    fi
    active || virsh -q -c "$uri" net-start "$name" >/dev/null
    printf 'network=%s bridge=%s subnet=%s/24\n' "$name" "$bridge" "${address%.1}.0"
    ;;
  down)
    virsh -q -c "$uri" net-destroy "$name" >/dev/null 2>&1 || true
    virsh -q -c "$uri" net-undefine "$name" >/dev/null 2>&1 || true
    ;;
  status) active ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 4
    ;;
esac
