# shellcheck shell=bash
# What the scripts share. Sourced, never run, before a script changes directory:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Defines functions only; sets no shell options and runs nothing.

# log MESSAGE...: one line on stderr, "PREFIX: MESSAGE", PREFIX from the script's $log_prefix.
log() { printf '%s: %s\n' "${log_prefix:?set log_prefix before calling log}" "$*" >&2; }

# pid_running PID: the process exists and is not a zombie (PID 1 here reaps orphans late, so a
# killed process can linger as one; PLATFORM.md).
pid_running() { ps -p "$1" -o stat= 2>/dev/null | grep -qv '^Z'; }

# pid_of DAEMON: the PID in this host's pidfile, /run/DAEMON.pid (fails if there is none). By
# pidfile, because the testbed's daemons (scripts/testbed.sh) run under the same names in
# namespaces of their own and are not this host's.
pid_of() { cat "/run/$1.pid" 2>/dev/null; }

# alive DAEMON: this host's DAEMON (by its pidfile) is running.
alive() {
  local pid
  pid=$(pid_of "$1") || return 1
  [ -n "$pid" ] && pid_running "$pid"
}

# remove_domains URI [UNDEFINE OPTION...] -- NAME...: for each NAME on URI, destroys it if it
# runs, then undefines it with the options given (e.g. --snapshots-metadata). Quiet, and never
# fails: a domain that is not there is already removed.
remove_domains() {
  local uri=$1 name
  local -a options=()
  shift
  while (($#)) && [ "$1" != -- ]; do
    options+=("$1")
    shift
  done
  (($#)) && shift
  for name in "$@"; do
    virsh -q -c "$uri" destroy "$name" >/dev/null 2>&1 || true
    virsh -q -c "$uri" undefine "${options[@]}" "$name" >/dev/null 2>&1 || true
  done
}

# fill_template FILE KEY=VALUE...: FILE on stdout with every @KEY@ replaced by VALUE, taken
# literally whatever characters it holds (\ & | and newlines are escaped for sed). KEY:
# capitals, digits and _.
fill_template() {
  local file=$1 pair key value
  local -a script=(-e '')
  shift
  for pair in "$@"; do
    key=${pair%%=*}
    if [ "$key" = "$pair" ] || [[ ! $key =~ ^[A-Z_][A-Z0-9_]*$ ]]; then
      printf 'fill_template: not KEY=VALUE with KEY in [A-Z0-9_]: %s\n' "$pair" >&2
      return 2
    fi
    value=${pair#*=}
    value=${value//"\\"/"\\\\"}
    value=${value//"&"/"\\&"}
    value=${value//"|"/"\\|"}
    value=${value//$'\n'/"\\"$'\n'}
    script+=(-e "s|@$key@|$value|g")
  done
  sed "${script[@]}" -- "$file"
}
