# shellcheck shell=bash
# Shared helpers for hack/ scripts (sourced, not run): logging, timing, free ports, Debian packages.

log() { printf '%s %s: %s\n' "$(date +%H:%M:%S)" "$(basename "$0")" "$*" >&2; }

die() {
  log "error: $*"
  exit 1
}

# Seconds since a start taken from $EPOCHREALTIME, with two decimals: `since "$started"`.
since() { python3 -c 'import sys, time; print(f"{time.time() - float(sys.argv[1]):.2f}s")' "$1"; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Whether pid $2 is a live process (not a zombie) running command $1: pid files outlive a crash, and
# a killed daemon stays a zombie until init reaps it.
process_is() {
  local fields
  { read -r fields <"/proc/$2/stat"; } 2>/dev/null || return 1
  [[ $fields == "$2 ($1) "[^Z]* ]]
}

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

missing_debian_packages() {
  local package
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || echo "$package"
  done
}

# Installs the Debian packages that are missing, with one `apt-get update`, without starting the
# distribution's own services: a policy-rc.d that denies every start while apt runs (were one to
# start anyway it would be harmless, our servers use their own ports and directories). A lock keeps
# two scripts from installing at once and from saving each other's policy-rc.d as the original.
ensure_debian_packages() {
  [[ -z $(missing_debian_packages "$@") ]] && return 0
  as_root mkdir -p /var/lock
  (
    exec 9>/var/lock/semantik-apt.lock
    flock 9
    local missing started policy=/usr/sbin/policy-rc.d saved="" output
    mapfile -t missing < <(missing_debian_packages "$@")
    [[ ${#missing[@]} -eq 0 ]] && exit 0
    started=$EPOCHREALTIME
    log "installing Debian packages: ${missing[*]}"
    if [[ -e $policy ]]; then
      saved="$(mktemp)"
      as_root cp -p "$policy" "$saved"
    fi
    output="$(mktemp)"
    # shellcheck disable=SC2317  # run by the trap
    restore() {
      if [[ -n $saved ]]; then as_root mv "$saved" "$policy"; else as_root rm -f "$policy"; fi
      rm -f "$output"
    }
    trap restore EXIT
    printf '#!/bin/sh\n# Written by semantik hack/lib.sh while apt runs.\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 0755 "$policy"
    local apt=(as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)
    "${apt[@]}" update -qq >&2 || die "apt-get update failed"
    log "apt-get update took $(since "$started")"
    "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >"$output" 2>&1 || {
      cat "$output" >&2
      die "apt-get install ${missing[*]} failed"
    }
    log "installed ${missing[*]} in $(since "$started")"
  )
}
