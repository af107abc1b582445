#!/usr/bin/env bash
# A real browser for the browser test tier (tests/browser, tests/support/browser.py).
#   hack/browser.sh ensure   install what is absent; print the environment the tests read
# Debian's chromium and chromium-driver come from apt (one version, matched to each other, no driver
# download at test time); axe-core comes from the npm registry at the version hack/browser/package-lock.json
# pins, installed once per lock file into the cache outside the clone, so a fresh clone reuses it.
# Only the `export` lines go to stdout: `eval "$(hack/browser.sh ensure)"`.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=hack/lib.sh
source "$here/lib.sh"

[[ $# -eq 1 ]] || die "usage: $0 ensure"
chromium=/usr/bin/chromium
chromedriver=/usr/bin/chromedriver
cache="${SEMANTIK_CACHE_DIR:-$HOME/.cache/semantik}"

ensure_chromium() {
  local started=$EPOCHREALTIME
  ensure_debian_packages chromium chromium-driver
  [[ -x $chromium ]] || die "$chromium is missing after installing Debian's chromium"
  [[ -x $chromedriver ]] || die "$chromedriver is missing after installing Debian's chromium-driver"
  log "$("$chromedriver" --version | awk '{print $1, $2}') checked in $(since "$started")"
}

# Prints the absolute path of axe.min.js. The directory is named after the lock file's hash, so a new
# pin installs beside the old one instead of over it; `npm ci` builds in a temporary directory renamed
# into place when complete, so an interrupted install is never mistaken for a finished one.
ensure_axe() {
  local started=$EPOCHREALTIME lock="$here/browser/package-lock.json" hash dest tmp
  hash="$(sha256sum "$lock" | cut -c1-16)"
  dest="$cache/npm/axe-$hash"
  if [[ ! -d $dest ]]; then
    # Debian's npm conflicts with a nodejs that bundles its own (NodeSource's): install it only when no
    # npm is on the PATH at all.
    command -v npm >/dev/null || ensure_debian_packages npm
    mkdir -p "$cache/npm"
    tmp="$(mktemp -d "$cache/npm/.axe-$hash.XXXXXX")"
    cp "$here/browser/package.json" "$lock" "$tmp/"
    # --ignore-scripts: axe-core needs no install script, and none from the registry should run here.
    (cd "$tmp" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >&2 || {
      rm -rf "$tmp"
      die "npm ci of $lock failed"
    }
    # Another run may have renamed its own copy into place meanwhile; either copy is the same.
    if mv -T "$tmp" "$dest" 2>/dev/null; then
      log "axe-core installed into $dest in $(since "$started")"
    else
      rm -rf "$tmp"
      log "axe-core was installed into $dest by another run meanwhile"
    fi
  fi
  [[ -f $dest/node_modules/axe-core/axe.min.js ]] || die "no axe.min.js in $dest: remove the directory to reinstall"
  echo "$dest/node_modules/axe-core/axe.min.js"
}

case "$1" in
  ensure)
    ensure_chromium
    axe="$(ensure_axe)"
    echo "export SEMANTIK_TEST_CHROMIUM='$chromium'"
    echo "export SEMANTIK_TEST_CHROMEDRIVER='$chromedriver'"
    echo "export SEMANTIK_TEST_AXE='$axe'"
    ;;
  *) die "unknown command $1" ;;
esac
