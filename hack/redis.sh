#!/usr/bin/env bash
# A private Redis server for tests, in DIR, on a free loopback port, with an append-only file so a
# restart on the same DIR keeps queued jobs. Only the URL goes to stdout. The server requires a password
# (made once per DIR, in DIR/password) and runs in protected mode, as the chart's does, so every test
# that uses Redis authenticates; the URL carries the password: redis://:PASSWORD@127.0.0.1:PORT/0.
#   hack/redis.sh start DIR     install Debian's redis-server if absent, start; print the URL
#   hack/redis.sh stop DIR      stop it (no-op when not running)
#   hack/redis.sh restart DIR   stop and start again on the same data and the same port; print the URL
#   hack/redis.sh kill9 DIR     SIGKILL the server, as a crash would (fault tests)
#   hack/redis.sh url DIR       print the URL
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 2 ]] || die "usage: $0 start|stop|restart|kill9|url DIR"
command="$1"
dir="$(realpath -m "$2")"

pid() { cat "$dir/redis.pid" 2>/dev/null; }

running() {
  local p
  p="$(pid)" && process_is redis-server "$p"
}

url() {
  [[ -f $dir/url ]] || die "no server was started in $dir"
  cat "$dir/url"
}

# redis-cli reads the password from REDISCLI_AUTH, so it never shows in `ps`.
cli() { REDISCLI_AUTH="$(cat "$dir/password")" redis-cli -h 127.0.0.1 -p "$(cat "$dir/port")" "$@"; }

ping() { [[ $(cli ping 2>/dev/null) == PONG ]]; }

start() {
  ensure_debian_packages redis-server
  mkdir -p "$dir"
  if running; then
    url
    return
  fi
  [[ -f $dir/port ]] || free_port >"$dir/port"
  # Hex, so the password needs no escaping in the URL or the config file.
  [[ -f $dir/password ]] || (umask 077 && od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$dir/password")
  local port started=$EPOCHREALTIME tries=0
  port="$(cat "$dir/port")"
  # No RDB snapshots: the append-only file alone carries the data across a restart.
  (umask 077 && cat >"$dir/redis.conf") <<CONF
bind 127.0.0.1
port $port
protected-mode yes
requirepass $(cat "$dir/password")
dir $dir
daemonize yes
pidfile $dir/redis.pid
logfile $dir/log
appendonly yes
appendfsync everysec
save ""
CONF
  redis-server "$dir/redis.conf" || die "redis-server failed; see $dir/log"
  # PING answers -LOADING until the append-only file is replayed.
  until ping; do
    ((tries++ < 200)) || die "redis did not start; see $dir/log"
    sleep 0.05
  done
  (umask 077 && echo "redis://:$(cat "$dir/password")@127.0.0.1:$port/0" >"$dir/url")
  log "redis $(redis-server --version | grep -o 'v=[0-9.]*' | cut -c3-) on 127.0.0.1:$port started in $(since "$started")"
  url
}

wait_gone() {
  local p="$1" tries=0
  while process_is redis-server "$p"; do
    ((tries++ < 200)) || return 1
    sleep 0.05
  done
}

stop() {
  running || return 0
  local p
  p="$(pid)"
  # SHUTDOWN flushes the append-only file; a TERM does the same should the command not get through.
  cli shutdown >/dev/null 2>&1 || kill "$p" 2>/dev/null || true
  wait_gone "$p" || {
    log "redis $p ignored SHUTDOWN for 10s; killing it"
    kill -9 "$p" 2>/dev/null || true
    wait_gone "$p"
  }
}

kill9() {
  running || return 0
  local p
  p="$(pid)"
  kill -9 "$p"
  wait_gone "$p" || die "redis $p outlived SIGKILL"
  # The process is gone once its listening socket is: wait for that too, so a caller that connects
  # right after kill9 is refused rather than accepted and then reset.
  local tries=0
  while cli ping >/dev/null 2>&1; do
    ((tries++ < 200)) || die "redis port still answers after SIGKILL"
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
