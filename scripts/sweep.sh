#!/usr/bin/env bash
# Removes what VMDriver's tests and demo may have left on qemu:///system after a crash:
# domains named vmdriver-test-* / vmdriver-demo-* / vmdriver-probe-*, and their directories.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
uri=qemu:///system
virsh -q -c "$uri" version >/dev/null 2>&1 || exit 0
virsh -q -c "$uri" list --all --name 2>/dev/null | while read -r name; do
  case "$name" in
    vmdriver-test-* | vmdriver-demo-* | vmdriver-probe-*)
      echo "sweep: removing leftover domain $name" >&2
      remove_domains "$uri" --managed-save --snapshots-metadata -- "$name"
      ;;
  esac
done
for dir in /var/lib/libvirt/images/vmdriver-test-* /var/lib/libvirt/images/vmdriver-demo-*; do
  [ -d "$dir" ] && rm -rf -- "$dir"
done
exit 0
