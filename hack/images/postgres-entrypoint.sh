#!/bin/sh
# The official postgres image's start, in short: on an empty PGDATA, initdb with POSTGRES_USER as the
# superuser and POSTGRES_PASSWORD as its password (scram-sha-256 for every TCP client, trust on the
# local socket), then create POSTGRES_DB; then run the server on *:5432. Runs as the postgres user
# (uid 999); started as root it drops to that user first.
set -eu

if [ "${1:-}" != postgres ]; then
  exec "$@"
fi
: "${PGDATA:=/var/lib/postgresql/data}"
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

mkdir -p "$PGDATA"
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "docker-entrypoint.sh: POSTGRES_PASSWORD must be set to initialise an empty database" >&2
    exit 1
  fi
  user="${POSTGRES_USER:-postgres}"
  database="${POSTGRES_DB:-$user}"
  password_file="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" >"$password_file"
  initdb --username="$user" --pwfile="$password_file" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$password_file"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  if [ "$database" != postgres ]; then
    # A server on the socket only while the database is created: no client can reach it half-made.
    pg_ctl --pgdata="$PGDATA" --silent --wait --options="-c listen_addresses=''" start
    echo 'CREATE DATABASE :"database";' | psql --quiet --no-psqlrc --set=ON_ERROR_STOP=1 --username="$user" \
      --dbname=postgres --set=database="$database" >/dev/null
    pg_ctl --pgdata="$PGDATA" --silent --wait --mode=fast stop
  fi
  echo "docker-entrypoint.sh: initialised $PGDATA (user $user, database $database)" >&2
fi
exec "$@"
