#!/usr/bin/env bash
# Starts (up) or stops (down) private PostgreSQL and Redis servers under DIR for a test run; `up`
# prints the environment the tests read.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=hack/lib.sh
source "$here/lib.sh"

[[ $# -eq 2 ]] || die "usage: $0 up|down DIR"
dir="$(realpath -m "$2")"
case "$1" in
  up)
    mkdir -p "$dir"
    chmod 0755 "$dir"
    postgres_url="$("$here/postgres.sh" start "$dir/postgres")"
    redis_url="$("$here/redis.sh" start "$dir/redis")"
    echo "export SEMANTIK_TEST_POSTGRES_URL='$postgres_url'"
    echo "export SEMANTIK_TEST_REDIS_URL='$redis_url'"
    echo "export SEMANTIK_TEST_SERVICES_DIR='$dir'"
    ;;
  down)
    "$here/postgres.sh" stop "$dir/postgres" || true
    "$here/redis.sh" stop "$dir/redis" || true
    ;;
  *) die "unknown command $1" ;;
esac
