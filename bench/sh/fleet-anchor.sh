#!/bin/sh
# One clone of the fleet case's anchor, the loop body an expert would hand to `xargs -P 4`:
# an overlay on the frozen base, the definition (written beforehand as DIR/NAME.xml), and the
# start when MODE is "start".
#
#   fleet-anchor.sh MODE BASE DIR NAME        (MODE: made | start)
set -eu
mode=$1 base=$2 dir=$3 name=$4
qemu-img create -q -f qcow2 -F qcow2 -b "$base" "$dir/$name-vda.qcow2"
virsh -q -c qemu:///system define "$dir/$name.xml" >/dev/null
if [ "$mode" = start ]; then
  virsh -q -c qemu:///system start "$name" >/dev/null
fi
