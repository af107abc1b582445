#!/usr/bin/env bash
# A private PostgreSQL server for tests, in DIR, on a free loopback port.
#   hack/postgres.sh start DIR     install Debian's postgresql if absent, init DIR, start; print the URL
#   hack/postgres.sh stop DIR      stop it (no-op when not running)
#   hack/postgres.sh restart DIR   stop and start again on the same data and the same port
#   hack/postgres.sh kill9 DIR     kill -9 the postmaster (fault-injection tests)
#   hack/postgres.sh url DIR       print the URL
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 2 ]] || die "usage: $0 start|stop|restart|kill9|url DIR"
command="$1"
dir="$(realpath -m "$2")"
data="$dir/data"

bin_dir() {
  local found
  found="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)"
  [[ -n $found ]] || die "no PostgreSQL binaries under /usr/lib/postgresql"
  echo "$found"
}

# initdb and postgres refuse to run as root: run them as the postgres user the package creates.
as_postgres() {
  if [[ $(id -un) == postgres ]]; then "$@"; else as_root runuser -u postgres -- "$@"; fi
}

running() { [[ -f $data/postmaster.pid ]] && as_postgres "$(bin_dir)/pg_ctl" -D "$data" status >/dev/null 2>&1; }

url() { cat "$dir/url"; }

start() {
  ensure_debian_packages postgresql
  local bin port
  bin="$(bin_dir)"
  mkdir -p "$dir"
  if running; then
    url
    return
  fi
  if [[ ! -f $data/PG_VERSION ]]; then
    port="$(free_port)"
    as_root chown postgres: "$dir"
    as_postgres "$bin/initdb" -D "$data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
    cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
logging_collector = off
CONF
    echo "$port" >"$dir/port"
  fi
  port="$(cat "$dir/port")"
  as_postgres "$bin/pg_ctl" -D "$data" -l "$dir/log" -w -t 60 start >/dev/null
  if [[ ! -f $dir/url ]]; then
    as_postgres "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -qAt \
      -c "CREATE ROLE semantik LOGIN SUPERUSER PASSWORD 'semantik'" \
      -c "CREATE DATABASE semantik OWNER semantik" >/dev/null
    echo "postgresql+asyncpg://semantik:semantik@127.0.0.1:$port/semantik" >"$dir/url"
  fi
  url
}

stop() {
  running || return 0
  as_postgres "$(bin_dir)/pg_ctl" -D "$data" -m fast -w stop >/dev/null
}

kill9() {
  [[ -f $data/postmaster.pid ]] || return 0
  kill -9 "$(head -n 1 "$data/postmaster.pid")" 2>/dev/null || true
}

case "$command" in
  start) start ;;
  stop) stop ;;
  restart) stop && start >/dev/null && url ;;
  kill9) kill9 ;;
  url) url ;;
  *) die "unknown command $command" ;;
esac
