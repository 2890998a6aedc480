#!/bin/sh
# Runs bench/domain_check.c against a throwaway memcached and a throwaway domain.
set -e
cd "$(dirname "$0")/.."
prefix="$PWD/target/bench-prefix"
make -s install PREFIX="$prefix"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig" LD_LIBRARY_PATH="$prefix/lib"
export MEMCACHE_SHM_PREFIX="bench$$"
cc -O2 -Wall -Wextra -o target/domain_check bench/domain_check.c $(pkg-config --cflags --libs libmemcache)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
memcached -u "$(id -un)" -l 127.0.0.1 -p "$port" -U 0 -m 64 -t 1 &
mcpid=$!
trap 'kill $mcpid 2>/dev/null; target/release/mcadmin --domain bench destroy 2>/dev/null' EXIT
sleep 0.3
target/release/mcadmin --domain bench set "127.0.0.1:$port"
./target/domain_check "127.0.0.1:$port" bench "$@"
