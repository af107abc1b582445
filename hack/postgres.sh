#!/usr/bin/env bash
# A private PostgreSQL server for tests, in DIR, on a free loopback port. Only the URL goes to stdout.
#   hack/postgres.sh start DIR     install Debian's postgresql if absent, init DIR once, start; print the URL
#   hack/postgres.sh stop DIR      stop it (no-op when not running)
#   hack/postgres.sh restart DIR   stop and start again on the same data and the same port; print the URL
#   hack/postgres.sh kill9 DIR     SIGKILL the postmaster and its children, as a crash would (fault tests)
#   hack/postgres.sh url DIR       print the URL
# The postgres user runs the server (initdb refuses root), so every parent of DIR must be searchable by
# it: a tempfile.mkdtemp() directory chmod'ed 0755 under /tmp is.
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

as_postgres() {
  if [[ $(id -un) == postgres ]]; then "$@"; else as_root runuser -u postgres -- "$@"; fi
}

postmaster_pid() { as_postgres cat "$data/postmaster.pid" 2>/dev/null | head -n 1; }

running() {
  local pid
  pid="$(postmaster_pid)" && process_is postgres "$pid"
}

url() {
  [[ -f $dir/url ]] || die "no server was started in $dir"
  cat "$dir/url"
}

init() {
  local bin="$1" port started=$EPOCHREALTIME sockets="$dir"
  port="$(free_port)"
  as_root chown postgres: "$dir"
  as_postgres test -w "$dir" || die "the postgres user cannot reach $dir: make its parents searchable (chmod o+x)"
  as_postgres "$bin/initdb" -D "$data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C.UTF-8 \
    >"$dir/initdb.log" 2>&1 || die "initdb failed; see $dir/initdb.log"
  # A Unix socket path is limited to 107 bytes; TCP on loopback is what clients use anyway.
  ((${#dir} + 20 < 107)) || sockets=""
  # Throwaway data: no fsync and no full-page images (they only guard against an OS crash). Commits
  # stay synchronous, which costs a write() and no fsync here, so a kill9 loses no acknowledged commit.
  cat >>"$data/postgresql.conf" <<CONF

# hack/postgres.sh
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sockets'
fsync = off
full_page_writes = off
synchronous_commit = on
max_connections = 200
logging_collector = off
CONF
  echo "$port" >"$dir/port"
  log "initdb took $(since "$started")"
}

start() {
  ensure_debian_packages postgresql
  local bin port started
  bin="$(bin_dir)"
  mkdir -p "$dir"
  if running; then
    url
    return
  fi
  [[ -f $data/PG_VERSION ]] || init "$bin"
  port="$(cat "$dir/port")"
  # Lock files a crash (kill9) leaves behind. Their postmaster is gone, or a zombie until init reaps
  # it (seconds on some machines), which postgres would take for a live server and refuse to start.
  as_postgres rm -f "$data/postmaster.pid" "$dir/.s.PGSQL.$port.lock"
  started=$EPOCHREALTIME
  as_postgres "$bin/pg_ctl" -D "$data" -l "$dir/log" -w -t 60 start >/dev/null ||
    die "postgres did not start; see $dir/log"
  if [[ ! -f $dir/url ]]; then
    # An ordinary role that owns its database, as in production, so a migration or query that needs more
    # fails here too. CREATEDB only because the tests make a fresh database (owned by it) per module;
    # since PostgreSQL 15 the owner of a database owns its public schema (pg_database_owner).
    as_postgres "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 \
      -c "CREATE ROLE semantik LOGIN NOSUPERUSER NOCREATEROLE CREATEDB PASSWORD 'semantik'" \
      -c "CREATE DATABASE semantik OWNER semantik" >/dev/null
    echo "postgresql+asyncpg://semantik:semantik@127.0.0.1:$port/semantik" >"$dir/url"
  fi
  log "postgres $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port started in $(since "$started")"
  url
}

stop() {
  running || return 0
  as_postgres "$(bin_dir)/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
}

# "pid ppid" of every live process; zombies hold nothing.
live_processes() {
  local stat fields pid state ppid
  for stat in /proc/[0-9]*/stat; do
    { read -r fields <"$stat"; } 2>/dev/null || continue
    fields="${fields%% *} ${fields##*) }" # the command name between them may hold spaces
    read -r pid state ppid _ <<<"$fields"
    [[ $state == Z ]] || echo "$pid $ppid"
  done
}

any_alive() {
  local pid
  for pid in "$@"; do process_is postgres "$pid" && return 0; done
  return 1
}

# A crash of the whole server: every child of the postmaster is a session leader of its own, so no
# process group holds them all. The postmaster is stopped first so it forks nothing while its
# children are listed; waiting for all to go lets a start right after find the shared memory free.
kill9() {
  running || return 0
  local postmaster pids tries=0
  postmaster="$(postmaster_pid)"
  as_root kill -STOP "$postmaster"
  mapfile -t pids < <(live_processes | awk -v pm="$postmaster" '$1 == pm || $2 == pm { print $1 }')
  as_root kill -9 "${pids[@]}" 2>/dev/null || true
  while any_alive "${pids[@]}"; do
    ((tries++ < 100)) || die "postgres processes ${pids[*]} outlived SIGKILL"
    sleep 0.05
  done
}

case "$command" in
  start) start ;;
  stop) stop ;;
  restart)
    stop
    start >/dev/null
    url
    ;;
  kill9) kill9 ;;
  url) url ;;
  *) die "unknown command $command" ;;
esac
