#!/usr/bin/env bash
# Prepares this machine to be a libvirt host for VMDriver: installs what is missing,
# starts virtlogd and libvirtd (there is no systemd here), and waits for qemu:///system.
# Idempotent: running it again changes nothing on a ready host.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

log_prefix=setup-host

packages=(
  libvirt-daemon-system libvirt-dev libvirt-clients
  qemu-system-x86 qemu-utils
  # fixtures: kernel extraction, initramfs, data disk, boot sector
  busybox-static cpio e2fsprogs binutils
  # the two-host testbed and TLS
  iproute2 gnutls-bin
  # clone --hostname: the NoCloud seed ISO; the isolated test network's DHCP (dnsmasq)
  genisoimage dnsmasq-base
  # full clones by reflink (an XFS loop image in the tests)
  xfsprogs
  pkg-config
)

bash "$(dirname "${BASH_SOURCE[0]}")/apt-ensure.sh" "${packages[@]}"

# Backing files keep libvirt's ownership after a guest stops; with remember_owner on,
# libvirt leaves stale trusted.libvirt.security xattrs behind (PLATFORM.md).
conf=/etc/libvirt/qemu.conf
if ! grep -q '^remember_owner *= *0' "$conf"; then
  printf '\n# set by VMDriver scripts/setup-host.sh\nremember_owner = 0\n' >>"$conf"
fi

# What udev does on a normal Debian host (qemu-system-x86's rule): /dev/kvm for group kvm,
# which libvirt-qemu is in. Without udev here, /dev/kvm stays root-only and QEMU cannot use it.
if [ -c /dev/kvm ] && getent group kvm >/dev/null; then
  chgrp kvm /dev/kvm
  chmod 0660 /dev/kvm
fi

# Running = the process in this host's pidfile is alive (alive: lib.sh) and its socket is there.
running() { alive "$1" && [ -S "$2" ]; }

# Only start daemons of the root namespace: a testbed's daemons live in their own mount
# namespaces and do not own the sockets under this /run.
if ! running virtlogd /run/libvirt/virtlogd-sock; then
  log "starting virtlogd"
  mkdir -p /run/libvirt
  virtlogd -d
fi
if ! running libvirtd /run/libvirt/libvirt-sock; then
  log "starting libvirtd"
  libvirtd -d
fi

for _ in $(seq 1 60); do
  if virsh -q -c qemu:///system version >/dev/null 2>&1; then
    log "qemu:///system answers"
    exit 0
  fi
  sleep 0.5
done
log "qemu:///system did not answer within 30 s"
exit 1
