#!/usr/bin/env bash
# Private PostgreSQL and Redis servers under DIR for a whole test run.
#   hack/test-services.sh up DIR     install what is absent, start both, print the environment the tests read
#   hack/test-services.sh down DIR   stop both
# `eval "$(hack/test-services.sh up DIR)"` makes the tests' postgres_url and redis_url fixtures use them.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=hack/lib.sh
source "$here/lib.sh"

[[ $# -eq 2 ]] || die "usage: $0 up|down DIR"
dir="$(realpath -m "$2")"
case "$1" in
  up)
    ensure_debian_packages postgresql redis-server # one apt-get update for both
    mkdir -p "$dir"
    chmod 0755 "$dir"
    postgres_url="$("$here/postgres.sh" start "$dir/postgres")"
    redis_url="$("$here/redis.sh" start "$dir/redis")"
    echo "export SEMANTIK_TEST_POSTGRES_URL='$postgres_url'"
    echo "export SEMANTIK_TEST_REDIS_URL='$redis_url'"
    echo "export SEMANTIK_TEST_SERVICES_DIR='$dir'"
    ;;
  down)
    status=0
    "$here/postgres.sh" stop "$dir/postgres" || status=1
    "$here/redis.sh" stop "$dir/redis" || status=1
    exit "$status"
    ;;
  *) die "unknown command $1" ;;
esac
