#!/usr/bin/env bash
# A two-host libvirt testbed on this machine: hosta and hostb, each in its own network, mount
# and UTS namespace with its own virtlogd and libvirtd (listening on TCP and TLS), linked by a
# bridge on private test addresses that exist only inside namespaces this script makes.
#
#   scripts/testbed.sh up       start it (idempotent) and print, one line per host:
#                               hosta uri=qemu+tcp://10.77.0.1/system addr=10.77.0.1
#   scripts/testbed.sh status   print the same lines if it is up (exit 1 if not)
#   scripts/testbed.sh down     destroy its guests, stop its daemons, remove its namespaces
#                               and links; leaves nothing behind, even after a failed run
#   scripts/testbed.sh daemon-pid HOST       the PID of HOST's libvirtd (exit 1 if none runs)
#   scripts/testbed.sh restart-daemon HOST   start HOST's libvirtd again if it is not running
#                               (the fault tests kill it) and wait until it answers
#   scripts/testbed.sh link HOST up|down     HOST's link to the bridge (the fault tests cut it)
#
# Per-host state lives in $VMDRIVER_TESTBED (default /var/lib/vmdriver-testbed/HOST): the
# host's /etc/libvirt, /var/lib/libvirt (its unshared images go in images/), /var/log/libvirt,
# /var/cache/libvirt (kept between runs: QEMU's capability cache makes start ~20x faster) and
# /etc/pki (a CA made for the testbed, per-host server and client certificates with IP SANs).
# Storage both hosts see at the same path: $VMDRIVER_TESTBED/shared (pool "shared" on each
# host); each host's own images: /var/lib/libvirt/images (pool "images"). A client in the root
# namespace uses $VMDRIVER_TESTBED/client as pkipath for qemu+tls://ADDR/system?pkipath=…
set -euo pipefail

root=${VMDRIVER_TESTBED:-/var/lib/vmdriver-testbed}
bridge=vmdtb0
bridge_addr=10.77.0.254
hosts=(hosta hostb)
declare -A addr=([hosta]=10.77.0.1 [hostb]=10.77.0.2)
declare -A uuid=([hosta]=7f000001-0000-4000-8000-00000000000a [hostb]=7f000001-0000-4000-8000-00000000000b)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

log_prefix=testbed
line() { printf '%s uri=qemu+tcp://%s/system addr=%s\n' "$1" "${addr[$1]}" "${addr[$1]}"; }
answers() { timeout 5 virsh -q -c "qemu+tcp://${addr[$1]}/system" version >/dev/null 2>&1; }

status() {
  local host ok=0
  for host in "${hosts[@]}"; do
    if ip netns list 2>/dev/null | grep -qw "$host" && answers "$host"; then line "$host"; else ok=1; fi
  done
  return $ok
}

make_pki() {
  local pki=$root/pki-build host
  [ -s "$pki/ca-cert.pem" ] && [ -s "$root/client/cacert.pem" ] && return 0
  log "making a CA and per-host certificates"
  rm -rf "$pki"
  mkdir -p "$pki"
  (
    cd "$pki"
    certtool --generate-privkey --outfile ca-key.pem 2>/dev/null
    printf 'cn = VMDriver testbed CA\nca\ncert_signing_key\nexpiration_days = 3650\n' >ca.info
    certtool --generate-self-signed --load-privkey ca-key.pem --template ca.info --outfile ca-cert.pem 2>/dev/null
    for host in "${hosts[@]}" client; do
      certtool --generate-privkey --outfile "$host-key.pem" 2>/dev/null
    done
    for host in "${hosts[@]}"; do
      printf 'organization = VMDriver testbed\ncn = %s\ndns_name = %s\nip_address = %s\ntls_www_server\ntls_www_client\nencryption_key\nsigning_key\nexpiration_days = 3650\n' \
        "$host" "$host" "${addr[$host]}" >"$host.info"
      certtool --generate-certificate --load-privkey "$host-key.pem" --load-ca-certificate ca-cert.pem \
        --load-ca-privkey ca-key.pem --template "$host.info" --outfile "$host-cert.pem" 2>/dev/null
    done
    printf 'organization = VMDriver testbed\ncn = client\ntls_www_client\nencryption_key\nsigning_key\nexpiration_days = 3650\n' >client.info
    certtool --generate-certificate --load-privkey client-key.pem --load-ca-certificate ca-cert.pem \
      --load-ca-privkey ca-key.pem --template client.info --outfile client-cert.pem 2>/dev/null
  )
  # The root namespace's client (tests, vmctl): pkipath layout.
  mkdir -p "$root/client"
  cp "$pki/ca-cert.pem" "$root/client/cacert.pem"
  cp "$pki/client-cert.pem" "$root/client/clientcert.pem"
  install -m 0600 "$pki/client-key.pem" "$root/client/clientkey.pem"
}

# /etc/pki as each host sees it: libvirt's server and client certificates, and QEMU's for
# native TLS of migration data (readable by libvirt-qemu).
host_pki() {
  local host=$1 pki=$root/pki-build dir=$root/$1/pki
  rm -rf "$dir"
  mkdir -p "$dir/CA" "$dir/libvirt/private" "$dir/qemu"
  cp "$pki/ca-cert.pem" "$dir/CA/cacert.pem"
  cp "$pki/$host-cert.pem" "$dir/libvirt/servercert.pem"
  cp "$pki/$host-cert.pem" "$dir/libvirt/clientcert.pem"
  install -m 0600 "$pki/$host-key.pem" "$dir/libvirt/private/serverkey.pem"
  install -m 0600 "$pki/$host-key.pem" "$dir/libvirt/private/clientkey.pem"
  cp "$pki/ca-cert.pem" "$dir/qemu/ca-cert.pem"
  cp "$pki/$host-cert.pem" "$dir/qemu/server-cert.pem"
  cp "$pki/$host-cert.pem" "$dir/qemu/client-cert.pem"
  install -m 0640 -g libvirt-qemu "$pki/$host-key.pem" "$dir/qemu/server-key.pem"
  install -m 0640 -g libvirt-qemu "$pki/$host-key.pem" "$dir/qemu/client-key.pem"
  chmod 0755 "$dir" "$dir/qemu"
}

host_config() {
  local host=$1 dir=$root/$1
  mkdir -p "$dir/etc" "$dir/lib/images" "$dir/log" "$dir/cache" "$dir/run"
  if [ ! -e "$dir/etc/qemu.conf" ]; then
    # The daemons' configuration only: no domain, network or pool definitions of this host.
    cp -a /etc/libvirt/*.conf "$dir/etc/"
    mkdir -p "$dir/etc/qemu"
  fi
  cat >"$dir/etc/libvirtd.conf" <<CONF
# written by scripts/testbed.sh for $host
listen_tls = 1
listen_tcp = 1
listen_addr = "${addr[$host]}"
auth_tcp = "none"
auth_tls = "none"
host_uuid = "${uuid[$host]}"
CONF
  chmod 0755 "$dir/lib/images"
  host_pki "$host"
}

start_host() {
  local host=$1 dir=$root/$1
  ip netns add "$host"
  ip link add "vmd-$host" type veth peer name eth0 netns "$host"
  ip link set "vmd-$host" master "$bridge" up
  ip -n "$host" addr add "${addr[$host]}/24" dev eth0
  ip -n "$host" link set eth0 up
  ip -n "$host" link set lo up
  # The anchor keeps the namespaces alive; the daemons are started inside its mount namespace.
  ip netns exec "$host" unshare -m -u --propagation private sh -c '
    set -e
    host=$1 dir=$2
    mount -t tmpfs -o mode=0755 tmpfs /run
    mkdir -p /run/libvirt /run/lock
    mount --bind "$dir/etc" /etc/libvirt
    mount --bind "$dir/lib" /var/lib/libvirt
    mount --bind "$dir/log" /var/log/libvirt
    mount --bind "$dir/cache" /var/cache/libvirt
    mount --bind "$dir/pki" /etc/pki
    hostname "$host"
    virtlogd -d
    libvirtd -d --listen
    echo $$ >"$dir/anchor.pid"
    exec sleep infinity
  ' sh "$host" "$dir" </dev/null >"$dir/anchor.log" 2>&1 &
  local i
  for i in $(seq 1 100); do
    if answers "$host"; then
      # Storage pools, so VMDriver can verify which storage is shared and create copies:
      # "shared" (the same folder on both hosts) and "images" (this host's own).
      local uri="qemu+tcp://${addr[$host]}/system"
      virsh -q -c "$uri" pool-create-as shared dir --target "$root/shared" >/dev/null
      virsh -q -c "$uri" pool-create-as images dir --target /var/lib/libvirt/images >/dev/null
      return 0
    fi
    sleep 0.2
  done
  log "$host: libvirtd did not answer on ${addr[$host]} within 20 s"
  cat "$dir/anchor.log" >&2 || true
  return 1
}

up() {
  if status >/dev/null 2>&1; then
    status
    return 0
  fi
  down >/dev/null 2>&1 || true
  bash "$here/setup-host.sh" >&2
  mkdir -p "$root/shared"
  chmod 0755 "$root" "$root/shared"
  # Each host mounts its own tree over /etc/pki: the mount point must exist.
  mkdir -p /etc/pki
  make_pki
  ip link add "$bridge" type bridge
  ip addr add "$bridge_addr/24" dev "$bridge"
  ip link set "$bridge" up
  local host
  for host in "${hosts[@]}"; do
    host_config "$host"
    start_host "$host"
  done
  status
}

down() {
  local host pid pids
  for host in "${hosts[@]}"; do
    ip netns list 2>/dev/null | grep -qw "$host" || continue
    # Guests first, through libvirt, so their disks are closed cleanly.
    if answers "$host"; then
      for vm in $(timeout 10 virsh -q -c "qemu+tcp://${addr[$host]}/system" list --name 2>/dev/null); do
        timeout 10 virsh -q -c "qemu+tcp://${addr[$host]}/system" destroy "$vm" >/dev/null 2>&1 || true
      done
    fi
    # Then every process in the namespace, by PID: QEMU, libvirtd, virtlogd, the anchor.
    pids=$(ip netns pids "$host" 2>/dev/null || true)
    [ -n "$pids" ] && kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 1 50); do
      pids=$(ip netns pids "$host" 2>/dev/null | while read -r pid; do
        pid_running "$pid" && echo "$pid"; done || true)
      [ -z "$pids" ] && break
      sleep 0.1
    done
    [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
    ip netns del "$host" 2>/dev/null || true
    ip link del "vmd-$host" 2>/dev/null || true
    rm -f "$root/$host/anchor.pid"
  done
  ip link del "$bridge" 2>/dev/null || true
  log "down"
}

# libvirtd's PID in a host's namespaces (not a zombie: pid_running, lib.sh).
daemon_pid() {
  local pid
  for pid in $(ip netns pids "$1" 2>/dev/null); do
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = libvirtd ] || continue
    pid_running "$pid" || continue
    echo "$pid"
    return 0
  done
  return 1
}

restart_daemon() {
  local host=$1 anchor i
  check_host "$host"
  daemon_pid "$host" >/dev/null && answers "$host" && return 0
  anchor=$(cat "$root/$host/anchor.pid")
  # Inside the anchor's namespaces: its /run, its bind mounts, its network. The daemon must not
  # inherit our caller's descriptors: a caller waiting for its child to close one (Foundation's
  # Process does) would wait for as long as the daemon lives.
  (
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec nsenter -t "$anchor" -m -u -n libvirtd -d --listen </dev/null >>"$root/$host/anchor.log" 2>&1
  )
  for i in $(seq 1 100); do
    if answers "$host"; then
      local uri="qemu+tcp://${addr[$host]}/system" pool
      # The transient pools, if the restarted daemon did not keep them.
      for pool in shared images; do
        virsh -q -c "$uri" pool-info "$pool" >/dev/null 2>&1 && continue
        if [ "$pool" = shared ]; then
          virsh -q -c "$uri" pool-create-as shared dir --target "$root/shared" >/dev/null
        else
          virsh -q -c "$uri" pool-create-as images dir --target /var/lib/libvirt/images >/dev/null
        fi
      done
      return 0
    fi
    sleep 0.2
  done
  log "$host: libvirtd did not answer after a restart"
  return 1
}

check_host() {
  case "${1:-}" in
    hosta | hostb) ;;
    *)
      echo "usage: $0 daemon-pid|restart-daemon HOST, link HOST up|down (HOST: hosta or hostb)" >&2
      exit 2
      ;;
  esac
}

case "${1:-}" in
  up) up ;;
  daemon-pid)
    check_host "${2:-}"
    daemon_pid "$2"
    ;;
  restart-daemon) restart_daemon "${2:-}" ;;
  link)
    check_host "${2:-}"
    case "${3:-}" in
      up | down) ip link set "vmd-$2" "$3" ;;
      *)
        echo "usage: $0 link HOST up|down" >&2
        exit 2
        ;;
    esac
    ;;
  down) down ;;
  status) status ;;
  *)
    echo "usage: $0 up|down|status|daemon-pid HOST|restart-daemon HOST|link HOST up|down" >&2
    exit 2
    ;;
esac
