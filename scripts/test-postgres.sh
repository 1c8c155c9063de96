#!/usr/bin/env bash
# Run the test suite on PostgreSQL, after `make test` has run it on SQLite.
#
# 1. With TEST_DATABASE_URL set, against that server.
# 2. Otherwise, when PostgreSQL's programs are installed, against a throwaway
#    cluster started here on a free port of 127.0.0.1 and removed afterwards.
# 3. Otherwise the run is skipped with a warning, and with CI set it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTEST=(.venv/bin/pytest "$@")

if [ -n "${TEST_DATABASE_URL:-}" ]; then
  echo "Running the suite on PostgreSQL at ${TEST_DATABASE_URL%%\?*}"
  exec "${PYTEST[@]}"
fi

bindir=""
for candidate in "$(command -v pg_config >/dev/null && pg_config --bindir || true)" \
                 $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
  if [ -n "$candidate" ] && [ -x "$candidate/initdb" ] && [ -x "$candidate/pg_ctl" ]; then
    bindir="$candidate"
    break
  fi
done

if [ -z "$bindir" ]; then
  echo "################################################################"
  echo "# PostgreSQL run SKIPPED: TEST_DATABASE_URL is not set and no"
  echo "# initdb and pg_ctl were found (looked in pg_config --bindir and"
  echo "# /usr/lib/postgresql/*/bin). Install PostgreSQL's server package"
  echo "# or set TEST_DATABASE_URL=postgres://USER@HOST:PORT/NAME."
  echo "################################################################"
  if [ -n "${CI:-}" ]; then
    echo "CI is set, so a missing PostgreSQL fails the run." >&2
    exit 1
  fi
  exit 0
fi

cluster="$(mktemp -d "${TMPDIR:-/tmp}/portal-test-pg.XXXXXX")"
port="$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# initdb refuses to run as root, so root runs the cluster as "postgres".
as_owner=()
if [ "$(id -u)" = 0 ]; then
  chown postgres "$cluster"
  as_owner=(runuser -u postgres --)
fi
stop() {
  "${as_owner[@]}" "$bindir/pg_ctl" -D "$cluster/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$cluster"
}
trap stop EXIT

echo "Starting a throwaway PostgreSQL cluster ($bindir) on 127.0.0.1:$port"
"${as_owner[@]}" "$bindir/initdb" -D "$cluster/data" -U postgres -A trust \
  --no-sync >"$cluster/initdb.log" 2>&1 || { cat "$cluster/initdb.log"; exit 1; }
"${as_owner[@]}" "$bindir/pg_ctl" -D "$cluster/data" -l "$cluster/server.log" -w \
  -o "-h 127.0.0.1 -p $port -k $cluster -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  start >/dev/null || { cat "$cluster/server.log"; exit 1; }

TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/portal_test" "${PYTEST[@]}"
