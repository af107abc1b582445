#!/usr/bin/env bash
# A private Redis server for tests, in DIR, on a free loopback port, with an append-only file so a
# restart on the same DIR keeps queued jobs.
#   hack/redis.sh start|stop|restart|kill9|url DIR
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 2 ]] || die "usage: $0 start|stop|restart|kill9|url DIR"
command="$1"
dir="$(realpath -m "$2")"

pid() { [[ -f $dir/redis.pid ]] && cat "$dir/redis.pid"; }
running() { local p; p="$(pid)" && [[ -n $p ]] && kill -0 "$p" 2>/dev/null; }
url() { cat "$dir/url"; }

start() {
  ensure_debian_packages redis-server
  mkdir -p "$dir"
  if running; then
    url
    return
  fi
  [[ -f $dir/port ]] || free_port >"$dir/port"
  local port
  port="$(cat "$dir/port")"
  cat >"$dir/redis.conf" <<CONF
bind 127.0.0.1
port $port
dir $dir
daemonize yes
pidfile $dir/redis.pid
logfile $dir/log
appendonly yes
appendfsync everysec
save ""
protected-mode no
CONF
  redis-server "$dir/redis.conf"
  local tries=0
  until redis-cli -p "$port" ping >/dev/null 2>&1; do
    ((tries++ < 100)) || die "redis did not start; see $dir/log"
    sleep 0.1
  done
  echo "redis://127.0.0.1:$port/0" >"$dir/url"
  url
}

stop() {
  running || return 0
  local p tries=0
  p="$(pid)"
  redis-cli -p "$(cat "$dir/port")" shutdown >/dev/null 2>&1 || kill "$p" 2>/dev/null || true
  while kill -0 "$p" 2>/dev/null; do
    ((tries++ < 100)) || { kill -9 "$p" 2>/dev/null || true; break; }
    sleep 0.1
  done
}

kill9() { running && kill -9 "$(pid)" 2>/dev/null || true; }

case "$command" in
  start) start ;;
  stop) stop ;;
  restart) stop && start >/dev/null && url ;;
  kill9) kill9 ;;
  url) url ;;
  *) die "unknown command $command" ;;
esac
