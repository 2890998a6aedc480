#!/bin/sh
# Instructions per get on a private vs a domain handle, with callgrind: deterministic, unlike
# time. The difference of two runs (2000 and 6000 gets) cancels start-up costs.
set -e
cd "$(dirname "$0")/.."
prefix=$PWD/target/bench-prefix
make -s install PREFIX=$prefix >/dev/null 2>&1
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig LD_LIBRARY_PATH=$prefix/lib MEMCACHE_SHM_PREFIX=cg$$
cc -O2 -o target/domain_check bench/domain_check.c $(pkg-config --cflags --libs libmemcache)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
memcached -u "$(id -un)" -l 127.0.0.1 -p "$port" -U 0 -t 1 & mpid=$!; sleep 0.3
target/release/mcadmin --domain bench set 127.0.0.1:$port 2>/dev/null
for mode in private domain; do for n in 2000 6000; do
  valgrind --tool=callgrind --callgrind-out-file=target/cg.out target/domain_check 127.0.0.1:$port bench 1 $n $mode >/dev/null 2>target/cg.err
  echo "$mode $n $(grep -o 'Collected : [0-9]*' target/cg.err | awk '{print $3}')"
done; done | awk '{c[$1" "$2]=$3} END {p=(c["private 6000"]-c["private 2000"])/4000; d=(c["domain 6000"]-c["domain 2000"])/4000; printf "instructions per get: private %.1f  domain %.1f  ratio %.4f\n", p, d, d/p}'
kill $mpid; target/release/mcadmin --domain bench destroy 2>/dev/null
