#!/usr/bin/env bash
# `postgres.sh DIR`: start a throwaway PostgreSQL on loopback, its files in the new empty folder DIR, for the
# team-mode tests, and print its base URL. `postgres.sh stop DIR`: stop it and delete DIR.
# Installs Debian's postgresql when absent. Needs root (it runs the server as the `postgres` user).
# The password is random per run: no default or empty password exists anywhere.
set -euo pipefail
port=${SCORELOOP_PG_PORT:-55432}
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
if [ "${1:-}" = stop ]; then
  runuser -u postgres -- "$bin/pg_ctl" -D "$2/db" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$2"
  exit 0
fi
data=${1:?usage: postgres.sh DIR | postgres.sh stop DIR}
password=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$password" > "$data.pw"
chown -R postgres "$data" "$data.pw"
runuser -u postgres -- "$bin/initdb" -D "$data/db" -U scoreloop --pwfile="$data.pw" -A scram-sha-256 >/dev/null
rm -f "$data.pw"
runuser -u postgres -- "$bin/pg_ctl" -D "$data/db" -l "$data/log" -w \
  -o "-h 127.0.0.1 -p $port -k $data -c max_connections=200" start >/dev/null
for db in mlflow optuna records; do
  PGPASSWORD=$password psql -q -h 127.0.0.1 -p "$port" -U scoreloop -d postgres -c "CREATE DATABASE $db" >/dev/null
done
echo "postgresql://scoreloop:$password@127.0.0.1:$port"
