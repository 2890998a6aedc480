#!/bin/bash
# Tests the pgmemcache_rs extension end to end: builds it with PGXS against the installed
# libmemcache, starts a throwaway PostgreSQL server (initdb into a temporary directory, run as a
# non-root user) and two real memcached servers, runs the psql scripts of sql/ and compares
# their output with expected/.
#
#   LIBMEMCACHE_PREFIX=/path/to/prefix bindings/postgresql/test.sh
#
# LIBMEMCACHE_PREFIX is where `make install PREFIX=...` put the library (`make test` sets it to
# target/test-prefix; that is also the default). The system stays clean: the extension is
# installed with DESTDIR into the temporary directory, and the server runs from a copy of the
# postgres binary there, which finds its share/ and lib/ directories relative to itself (their
# other entries are links to the system's). Shared-memory domains live under a prefix of their
# own (MEMCACHE_SHM_PREFIX) and are removed at the end.
#
# Environment: PG_CONFIG (default pg_config), PGMC_KEEP_TMP=1 keeps the temporary directory,
# PGMC_ACCEPT=1 copies the results over expected/ (after reviewing them!).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tests=(basic errors domain memory readme upgrade pgmemcache security)

source "$here/server.sh"

# --- memcached ------------------------------------------------------------------------------
# Starts memcached on a free loopback port; sets $started to "127.0.0.1:PORT". Arguments:
# memcached's further options, then "--", then the mclient options that reach it (TLS, login).
start_memcached() {
	local attempt port pid i
	local extra=() reach=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do extra+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	reach=("$@")
	for attempt in $(seq 1 20); do
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		memcached -l 127.0.0.1 -p "$port" -U 0 -m 16 -t 1 "${memcached_user[@]}" "${extra[@]}" \
			</dev/null >/dev/null 2>&1 &
		pid=$!
		for i in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			# Ours only if the server on the port reports our pid.
			if "$mclient" --servers "127.0.0.1:$port" "${reach[@]}" --timeout-ms 500 stats 2>/dev/null |
				grep -q "	pid	$pid\$"; then
				memcached_pids+=("$pid")
				started=127.0.0.1:$port
				return 0
			fi
			sleep 0.05
		done
		kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	done
	echo "test.sh: cannot start memcached" >&2
	return 1
}
step "starting two memcached servers"
start_memcached
mc1=$started
start_memcached
mc2=$started

# A fake memcached for the out-of-memory test: every get is answered with one value of
# $big_value bytes, sent in full, so that the library's allocation for it is the only thing
# that can fail. It binds a free loopback port itself and writes it to a file.
big_value=$((256 * 1024 * 1024))
step "starting a fake server with values of $big_value bytes"
perl -MIO::Socket::INET -e '
	my ($portfile, $bytes) = @ARGV;
	$SIG{PIPE} = "IGNORE";
	my $l = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0, Listen => 5,
		ReuseAddr => 1) or die "listen: $!\n";
	open(my $f, ">", "$portfile.new") or die "$portfile: $!\n";
	print $f $l->sockport, "\n";
	close $f;
	rename("$portfile.new", $portfile) or die "$portfile: $!\n";
	my $chunk = "v" x (1024 * 1024);
	while (my $c = $l->accept) {
		while (defined(my $line = <$c>)) {
			if ($line =~ /^gets? (\S+)/) {
				print $c "VALUE $1 0 $bytes\r\n";
				print $c $chunk for 1 .. $bytes / length($chunk);
				print $c "\r\nEND\r\n";
			} else {
				print $c "ERROR\r\n";
			}
		}
		close $c;
	}' "$tmp/fake.port" "$big_value" </dev/null >/dev/null 2>"$tmp/fake.log" &
memcached_pids+=("$!")
for i in $(seq 1 100); do
	[ -s "$tmp/fake.port" ] && break
	kill -0 "${memcached_pids[-1]}" 2>/dev/null || break
	sleep 0.05
done
if [ ! -s "$tmp/fake.port" ]; then
	echo "test.sh: cannot start the fake server" >&2
	cat "$tmp/fake.log" >&2
	exit 1
fi
mcbig=127.0.0.1:$(cat "$tmp/fake.port")

# memcached -Z with a certificate from a CA made here (and a second CA that did not sign it), and
# memcached -Y with one user, for sql/security.sql. The credentials files belong to the server's
# user, as the library requires; only the "open" one lets others read it.
step "starting memcached -Z and memcached -Y"
mkdir "$tmp/tls"
(
	cd "$tmp/tls"
	for ca in ca wrongca; do
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$ca.key" \
			-out "$ca.pem" -days 2 -subj "/CN=$ca" 2>/dev/null
	done
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key \
		-out server.csr -subj /CN=server 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
	openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 1 -days 2 \
		-extfile server.ext -out server.pem 2>/dev/null
	# A client certificate for the server that asks for one (mutual TLS).
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout client.key \
		-out client.csr -subj /CN=client 2>/dev/null
	printf 'subjectAltName=DNS:client\nextendedKeyUsage=clientAuth\n' >client.ext
	openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days 2 \
		-extfile client.ext -out client.pem 2>/dev/null
	chown "$pg_user" client.key
	chmod 644 client.pem
	printf 'app:s3cret\n' >users
	printf 'app:s3cret\n' >auth
	printf 'app:wrong\n' >wrongauth
	printf 'app:s3cret\n' >openauth
	# For this script's own readiness check (mclient runs as this script's user).
	printf 'app:s3cret\n' >selfauth
	chmod 600 selfauth
	chown "$pg_user" auth wrongauth openauth
	chmod 600 auth wrongauth
	chmod 644 openauth ca.pem wrongca.pem
)
start_memcached -Z -o "ssl_chain_cert=$tmp/tls/server.pem,ssl_key=$tmp/tls/server.key" \
	-- --tls --tls-ca "$tmp/tls/ca.pem"
mctls=$started
start_memcached -Z -o "ssl_chain_cert=$tmp/tls/server.pem,ssl_key=$tmp/tls/server.key,ssl_verify_mode=2,ssl_ca_cert=$tmp/tls/ca.pem" \
	-- --tls --tls-ca "$tmp/tls/ca.pem" --tls-cert "$tmp/tls/client.pem" --tls-key "$tmp/tls/client.key"
mcmtls=$started
start_memcached -Y "$tmp/tls/users" -- --auth-file "$tmp/tls/selfauth"
mcauth=$started

# Domains of this run (as the server user, who must own them or see them owned by root).
as_pg MEMCACHE_SHM_PREFIX="$shm_prefix" "$mcadmin" --domain pgtest set "$mc1" 2>/dev/null
as_pg MEMCACHE_SHM_PREFIX="$shm_prefix" "$mcadmin" --domain pgmove set "$mc1" 2>/dev/null

# --- PostgreSQL -----------------------------------------------------------------------------
start_postgres "memcache.domain = 'pgtest'"

# --- The SQL tests --------------------------------------------------------------------------
psql_env=(PATH="$PATH" PGHOST="$tmp/pg" PGPORT=5432 PGUSER=postgres PGDATABASE=postgres
	MEMCACHE_SHM_PREFIX="$shm_prefix" MCADMIN="$mcadmin" MCLIENT="$mclient" MC1="$mc1" MC2="$mc2"
	LIBMEMCACHE_DIR="$(realpath "$server_libdir")")
failed=0
for t in "${tests[@]}"; do
	as_pg "${psql_env[@]}" "$pg_bindir/psql" -X -a -q -v ON_ERROR_STOP=0 \
		-v mc1="$mc1" -v mc2="$mc2" -v mcbig="$mcbig" \
		-v tls="tls://$mctls" -v tlsplain="$mctls" -v ca="$tmp/tls/ca.pem" -v wrongca="$tmp/tls/wrongca.pem" \
		-v auth="$mcauth" -v authfile="$tmp/tls/auth" -v wrongauthfile="$tmp/tls/wrongauth" \
		-v openauthfile="$tmp/tls/openauth" -v mtls="tls://$mcmtls" \
		-v clientcert="$tmp/tls/client.pem" -v clientkey="$tmp/tls/client.key" \
		<"$here/sql/$t.sql" >"$tmp/results/$t.out" 2>&1 || true
	if diff -u "$here/expected/$t.out" "$tmp/results/$t.out" >"$tmp/results/$t.diff"; then
		step "$t: ok"
	else
		step "$t: FAILED"
		cat "$tmp/results/$t.diff"
		failed=1
	fi
	if [ "${PGMC_ACCEPT:-}" = 1 ]; then
		cp "$tmp/results/$t.out" "$here/expected/$t.out"
	fi
done

if [ "$failed" -ne 0 ]; then
	echo "--- server log (last 40 lines) ---"
	tail -n 40 "$tmp/pg/server.log"
	exit 1
fi
step "all ${#tests[@]} tests passed"
