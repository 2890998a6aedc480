# Sourced by test.sh and serve.sh: builds the pgmemcache_rs extension with PGXS against the
# installed libmemcache and prepares a throwaway PostgreSQL installation in a temporary directory
# (see test.sh for the whole story); start_postgres then runs initdb and starts the server on a
# unix socket in that directory. Everything is stopped and removed when the sourcing script
# exits. Expects `here` (this directory) and `root` (the repository) to be set.

"$root/tools/install-deps"

PG_CONFIG=${PG_CONFIG:-pg_config}
prefix=${LIBMEMCACHE_PREFIX:-$root/target/test-prefix}
libdir=$prefix/lib
if [ ! -f "$libdir/pkgconfig/libmemcache.pc" ]; then
	echo "${0##*/}: no libmemcache.pc under $libdir; run 'make install PREFIX=$prefix' first" >&2
	exit 2
fi
for tool in mcadmin mclient; do
	if [ ! -x "$root/target/release/$tool" ]; then
		echo "${0##*/}: $root/target/release/$tool is missing; run 'make build' first" >&2
		exit 2
	fi
done

pg_bindir=$("$PG_CONFIG" --bindir)
pg_pkglibdir=$("$PG_CONFIG" --pkglibdir)
pg_sharedir=$("$PG_CONFIG" --sharedir)

# The server refuses to run as root: as root, use (and if needed create) the user pgtest.
if [ "$(id -u)" -eq 0 ]; then
	pg_user=pgtest
	if ! id -u "$pg_user" >/dev/null 2>&1; then
		useradd --system --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin "$pg_user" 2>/dev/null || id -u "$pg_user" >/dev/null
	fi
	as_pg() { runuser -u "$pg_user" -- env "$@"; }
	memcached_user=(-u root)
else
	pg_user=$(id -un)
	as_pg() { env "$@"; }
	memcached_user=()
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pgmemcache_rs.XXXXXX")
chmod 755 "$tmp"
# Segments of this run: a namespace of its own, removed at exit, unless the caller passes one
# (PGMC_SHM_PREFIX), which it then cleans up itself.
shm_prefix=${PGMC_SHM_PREFIX:-pgmc$$}
# Processes this run started (memcached, fake servers), stopped at exit.
memcached_pids=()
server_started=

cleanup() {
	local status=$?
	set +e
	if [ -n "$server_started" ]; then
		as_pg PATH="$PATH" "$pg_bindir/pg_ctl" -D "$tmp/pg/data" -m immediate -w stop >/dev/null 2>&1
	fi
	for pid in "${memcached_pids[@]}"; do
		kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	[ -n "${PGMC_SHM_PREFIX:-}" ] || rm -f /dev/shm/"$shm_prefix".*
	if [ "${PGMC_KEEP_TMP:-}" = 1 ]; then
		echo "${0##*/}: kept $tmp" >&2
	else
		rm -rf "$tmp"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '== %s\n' "$*"; }

# --- Tools and library where the server user can reach them ---------------------------------
mkdir -p "$tmp/bin" "$tmp/pg" "$tmp/results"
# The server user owns $tmp/pg: its data directory, its log and its socket.
[ "$(id -u)" -ne 0 ] || chown "$pg_user" "$tmp/pg"
cp "$root/target/release/mcadmin" "$root/target/release/mclient" "$tmp/bin/"
server_libdir=$libdir
if ! as_pg test -r "$libdir/libmemcache.so.0"; then
	# A prefix under a private home directory: give the server a copy it can read.
	mkdir -p "$tmp/lib"
	cp -L "$libdir/libmemcache.so.0" "$tmp/lib/"
	server_libdir=$tmp/lib
fi
mcadmin=$tmp/bin/mcadmin
mclient=$tmp/bin/mclient

# --- Build and install the extension into $tmp/inst -------------------------------------------
step "building the extension with PGXS against $prefix"
mkdir -p "$tmp/build"
cp "$here/Makefile" "$here"/*.c "$here"/*.control "$here"/*--*.sql "$tmp/build/"
if ! PKG_CONFIG_PATH="$libdir/pkgconfig" make -C "$tmp/build" PG_CONFIG="$PG_CONFIG" \
	COPT="-Werror" >"$tmp/build.log" 2>&1 ||
	! PKG_CONFIG_PATH="$libdir/pkgconfig" make -C "$tmp/build" PG_CONFIG="$PG_CONFIG" \
		install DESTDIR="$tmp/inst" >>"$tmp/build.log" 2>&1; then
	cat "$tmp/build.log"
	exit 1
fi

# A server installation of our own: a copy of postgres (it locates share/ and lib/ relative to
# its own path), the extension's files, and links to everything else of the system's.
link_missing() { # link_missing SYSTEM_DIR OUR_DIR
	local entry
	mkdir -p "$2"
	for entry in "$1"/* "$1"/.[!.]*; do
		[ -e "$entry" ] || continue
		[ -e "$2/${entry##*/}" ] || ln -s "$entry" "$2/${entry##*/}"
	done
}
inst=$tmp/inst
mkdir -p "$inst$pg_bindir"
cp "$pg_bindir/postgres" "$inst$pg_bindir/postgres"
link_missing "$pg_sharedir/extension" "$inst$pg_sharedir/extension"
link_missing "$pg_sharedir" "$inst$pg_sharedir"
link_missing "$pg_pkglibdir" "$inst$pg_pkglibdir"

# --- PostgreSQL -----------------------------------------------------------------------------
# start_postgres [CONFIG_LINE...]: initdb as the server user, the lines appended to
# postgresql.conf, then the server started with the library and the run's MEMCACHE_SHM_PREFIX
# in its environment, listening only on the unix socket $tmp/pg/.s.PGSQL.5432.
start_postgres() {
	local line
	step "initdb and start PostgreSQL as $pg_user"
	as_pg PATH="$PATH" "$pg_bindir/initdb" -D "$tmp/pg/data" --username=postgres --auth=trust \
		--encoding=UTF8 --locale=C --no-sync >"$tmp/initdb.log" 2>&1 || {
		cat "$tmp/initdb.log"
		exit 1
	}
	cat >>"$tmp/pg/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$tmp/pg'
port = 5432
fsync = off
jit = off
lc_messages = 'C'
EOF
	for line in "$@"; do
		printf '%s\n' "$line" >>"$tmp/pg/data/postgresql.conf"
	done
	server_env=(PATH="$PATH" LD_LIBRARY_PATH="$server_libdir" MEMCACHE_SHM_PREFIX="$shm_prefix")
	if ! as_pg "${server_env[@]}" "$pg_bindir/pg_ctl" -D "$tmp/pg/data" -p "$inst$pg_bindir/postgres" \
		-l "$tmp/pg/server.log" -w -t 30 start >/dev/null; then
		cat "$tmp/pg/server.log"
		exit 1
	fi
	server_started=1
}
