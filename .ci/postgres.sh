#!/usr/bin/env bash
# Makes the PostgreSQL tests runnable on a fresh Debian or Ubuntu machine:
#   - a server answers at 127.0.0.1:5432 with trust auth for the user
#     "postgres" (the tests create and drop a database each);
#   - initdb, pg_ctl and postgres are in /usr/lib/postgresql/<version>/bin, and
#     when running as root there is a "postgres" OS user to run them as (the
#     fault-injection tests in test/harness/pg-cluster.ts make private clusters);
#   - pg_dump and pg_restore are on the PATH (backup tests).
# Installs PostgreSQL with apt when it is missing, creates and starts a cluster
# when none answers. On a machine where all of this already holds it changes
# nothing. Exits non-zero, saying why, when it cannot make it so.
set -euo pipefail

HOST=127.0.0.1
# Another port only to try this script beside a server already on 5432.
PORT="${CI_POSTGRES_PORT:-5432}"
URL="postgres://postgres@${HOST}:${PORT}/postgres"

say() { echo "[postgres] $*"; }
fail() {
  echo "[postgres] ERROR: $*" >&2
  exit 1
}

# Root's commands through sudo when not root; -n: never wait for a password.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  else
    command -v sudo >/dev/null 2>&1 || fail "not root and no sudo to run: $*"
    sudo -n true 2>/dev/null || fail "sudo wants a password to run: $* (CI needs root or passwordless sudo)"
    sudo -n "$@"
  fi
}

# The newest /usr/lib/postgresql/<version>/bin holding the server programs.
server_bin() {
  local dir best=""
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ] || continue
    best="$(printf '%s\n%s\n' "$best" "$dir" | sed '/^$/d' | sort -V | tail -n1)"
  done
  printf '%s' "$best"
}

have_everything_installed() {
  [ -n "$(server_bin)" ] &&
    command -v pg_isready >/dev/null 2>&1 &&
    command -v psql >/dev/null 2>&1 &&
    command -v pg_dump >/dev/null 2>&1 &&
    command -v pg_restore >/dev/null 2>&1 &&
    command -v pg_lsclusters >/dev/null 2>&1
}

# A query as "postgres" without a password (-w never prompts).
answers_with_trust() {
  PGCONNECT_TIMEOUT=5 psql -w -X -Atq "$URL" -c 'select 1' >/dev/null 2>&1
}

wait_ready() {
  for _ in $(seq 1 30); do
    pg_isready -h "$HOST" -p "$PORT" -q 2>/dev/null && return 0
    sleep 1
  done
  return 1
}

# --- 1. install -------------------------------------------------------------
if ! have_everything_installed; then
  command -v apt-get >/dev/null 2>&1 ||
    fail "PostgreSQL is not installed and there is no apt-get to install it"
  say "installing PostgreSQL with apt"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  # postgresql brings the newest server of the distribution, its client
  # programs (psql, pg_dump, pg_restore) and postgresql-common
  # (pg_lsclusters, pg_ctlcluster, the "postgres" OS user). Starting the
  # service may fail where there is no init system; the cluster is started
  # below either way.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
  have_everything_installed || fail "apt-get installed postgresql but its programs are not where expected"
fi
BIN="$(server_bin)"
VERSION="$(basename "$(dirname "$BIN")")"

# --- 2. a server at 127.0.0.1:5432 with trust auth --------------------------
if answers_with_trust; then
  say "a server already answers at ${HOST}:${PORT} with trust auth; nothing to change"
else
  # The cluster on port 5432, or a new one there.
  read -r cver cname cstatus < <(pg_lsclusters -h 2>/dev/null | awk -v p="$PORT" '$3 == p { print $1, $2, $4; exit }') || true
  if [ -z "${cver:-}" ]; then
    if pg_isready -h "$HOST" -p "$PORT" -q 2>/dev/null; then
      fail "something else listens on ${HOST}:${PORT} and refuses user postgres without a password; free the port or set TEST_DATABASE_URL"
    fi
    cver="$VERSION"
    cname=main
    if [ -d "/etc/postgresql/${cver}/${cname}" ]; then cname=tollgate_ci; fi
    say "creating cluster ${cver}/${cname} on port ${PORT}"
    as_root pg_createcluster --port "$PORT" "$cver" "$cname" >/dev/null
    cstatus=down
  fi
  hba="/etc/postgresql/${cver}/${cname}/pg_hba.conf"
  [ -f "$hba" ] || fail "no ${hba}"
  # pg_hba.conf is read top down and the first matching line wins: trust for
  # user postgres from loopback goes first. Only on this test machine.
  rule="host all postgres ${HOST}/32 trust"
  if ! as_root grep -qxF "$rule" "$hba"; then
    say "allowing user postgres from ${HOST} without a password (${hba})"
    as_root sed -i "1i ${rule}" "$hba"
  fi
  if [ "${cstatus:-down}" = "online" ]; then
    as_root pg_ctlcluster --skip-systemctl-redirect "$cver" "$cname" reload
  else
    say "starting cluster ${cver}/${cname}"
    as_root pg_ctlcluster --skip-systemctl-redirect "$cver" "$cname" start
  fi
  wait_ready || fail "cluster ${cver}/${cname} did not come up on ${HOST}:${PORT}"
  sleep 1
  answers_with_trust || fail "the server at ${HOST}:${PORT} still refuses user postgres without a password"
fi

# --- 3. what the fault-injection tests need ----------------------------------
if [ "$(id -u)" -eq 0 ]; then
  id -u postgres >/dev/null 2>&1 ||
    fail "running as root and there is no 'postgres' OS user to run private clusters as"
  command -v runuser >/dev/null 2>&1 || command -v su >/dev/null 2>&1 ||
    fail "running as root and neither runuser nor su is there to drop privileges"
fi
say "server: $(psql -w -X -Atq "$URL" -c 'show server_version' 2>/dev/null) at ${HOST}:${PORT}; private clusters from ${BIN}"
