#!/bin/sh
# The demo (`make demo`): builds and installs the library and the tools into target/demo-prefix,
# starts two throwaway memcached servers on loopback, runs examples/demo.c against the first,
# then shows the headline: examples/follow.c keeps running while mcadmin moves its domain to
# the second server, and mclient reads what the C program wrote there.
# Needs only what `tools/install-deps demo` installs (memcached, gcc, pkg-config) and Rust.
set -e
cd "$(dirname "$0")/.."
tools/check-rust
tools/install-deps demo
prefix="$PWD/target/demo-prefix"
echo "== building and installing into $prefix"
make -s install PREFIX="$prefix"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig" LD_LIBRARY_PATH="$prefix/lib"
mcadmin="$prefix/sbin/mcadmin"
mclient="$prefix/bin/mclient"
for prog in demo follow; do
	cc -Wall -Wextra -o "target/$prog" "examples/$prog.c" $(pkg-config --cflags --libs libmemcache)
done

# The domain lives in a private namespace (/dev/shm/demo<pid>.demo), never the host's own.
export MEMCACHE_SHM_PREFIX="demo$$" MEMCACHE_DOMAIN=demo
pids=""
cleanup() {
	for pid in $pids; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -f /dev/shm/"$MEMCACHE_SHM_PREFIX".*
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts memcached on a free loopback port: tries up to 20 ports, each until memcached exits
# (the port was taken) or answers with its own pid. Sets $port and appends the pid to $pids.
start_memcached() {
	try=0
	while [ "$try" -lt 20 ]; do
		try=$((try + 1))
		port=$((20000 + ($$ * 31 + try * 977 + $1 * 7919) % 30000))
		memcached -u "$(id -un)" -l 127.0.0.1 -p "$port" -U 0 -m 16 -t 1 >/dev/null 2>&1 &
		pid=$!
		pids="$pids $pid"
		wait_round=0
		while [ "$wait_round" -lt 50 ] && kill -0 "$pid" 2>/dev/null; do
			answer=$("$mclient" --servers "127.0.0.1:$port" --timeout-ms 500 stats 2>/dev/null |
				awk -F '\t' '$2 == "pid" { print $3 }')
			[ "$answer" = "$pid" ] && return 0
			[ -n "$answer" ] && break # someone else's memcached holds the port
			sleep 0.1
			wait_round=$((wait_round + 1))
		done
		kill "$pid" 2>/dev/null || true
	done
	echo "demo: no free loopback port for memcached after 20 tries" >&2
	return 1
}
start_memcached 1
a="127.0.0.1:$port"
start_memcached 2
b="127.0.0.1:$port"
echo "== memcached A on $a, memcached B on $b"

echo "== examples/demo.c: the 1.4 API against A"
./target/demo "$a"

echo "== mcadmin --domain demo set $a"
"$mcadmin" --domain demo set "$a"
"$mclient" --servers "$a" set motd "hello from memcached A ($a)"
"$mclient" --servers "$b" set motd "hello from memcached B ($b)"

echo "== examples/follow.c: mc_new(), no server named, following domain demo"
./target/follow &
follow=$!
pids="$pids $follow"
# Proof that it runs against A: what it writes arrives there. Three ticks on A, then the switch
# (bounded wait: 10 s).
n=0
while :; do
	case $("$mclient" --servers "$a" get follow:last 2>/dev/null) in
	*"tick "[3-9] | *"tick "[1-9][0-9]*) break ;;
	esac
	n=$((n + 1))
	[ "$n" -le 100 ] || { echo "demo: follow.c wrote nothing to A" >&2; exit 1; }
	sleep 0.1
done
echo "== mcadmin --domain demo set $b    (follow.c keeps running)"
"$mcadmin" --domain demo set "$b"
wait "$follow" || { echo "demo: follow.c did not see the new list" >&2; exit 1; }

echo "== mclient --domain demo get follow:last    (what follow.c wrote, now on B)"
"$mclient" --domain demo get follow:last
echo
"$mcadmin" --domain demo list
