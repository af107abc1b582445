# shellcheck shell=bash
# Shared helpers for hack/ scripts: logging, free ports, Debian package installs.

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

die() {
  log "error: $*"
  exit 1
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# Installs the Debian packages that are missing, once, without starting the distribution's own
# services (a policy-rc.d that denies every start while apt runs): our servers run privately.
ensure_debian_packages() {
  local missing=() package started
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  started=$(date +%s)
  log "installing Debian packages: ${missing[*]}"
  local policy=/usr/sbin/policy-rc.d backup=""
  if [[ -e $policy ]]; then
    backup="$(mktemp)"
    as_root cp -p "$policy" "$backup"
  fi
  printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
  as_root chmod 0755 "$policy"
  local status=0
  {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  } || status=$?
  if [[ -n $backup ]]; then as_root mv "$backup" "$policy"; else as_root rm -f "$policy"; fi
  [[ $status -eq 0 ]] || die "apt-get install ${missing[*]} failed"
  log "installed ${missing[*]} in $(($(date +%s) - started))s"
}
