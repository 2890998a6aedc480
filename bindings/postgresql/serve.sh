#!/bin/bash
# Builds the pgmemcache_rs extension and starts a throwaway PostgreSQL with it, as test.sh does,
# for a test that drives the server itself (tests/placement_across_front_ends.rs). Once the
# server accepts connections it prints one line
#
#   ready PGHOST=<socket directory> PGPORT=5432 PGUSER=postgres PSQL=<path of psql>
#
# then waits for its standard input to end, stops the server and removes everything.
#
#   LIBMEMCACHE_PREFIX=/path/to/prefix PGMC_SHM_PREFIX=ns bindings/postgresql/serve.sh [CONF...]
#
# PGMC_SHM_PREFIX is the shared-memory namespace (MEMCACHE_SHM_PREFIX) of the domains the
# backends follow, the caller's to clean up; each argument is a line added to postgresql.conf.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

source "$here/server.sh"
start_postgres "$@"
printf 'ready PGHOST=%s PGPORT=5432 PGUSER=postgres PSQL=%s\n' "$tmp/pg" "$pg_bindir/psql"
cat >/dev/null
