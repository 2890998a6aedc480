#!/bin/sh
# The demo: install what is missing, build and install the library into target/demo-prefix,
# start a throwaway memcached, compile examples/demo.c through pkg-config and run it.
set -e
cd "$(dirname "$0")/.."
tools/install-deps
prefix="$PWD/target/demo-prefix"
make -s install PREFIX="$prefix"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig" LD_LIBRARY_PATH="$prefix/lib"
cc -Wall -Wextra -o target/demo examples/demo.c $(pkg-config --cflags --libs libmemcache)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
memcached -u "$(id -un)" -l 127.0.0.1 -p "$port" -U 0 -m 16 &
mcpid=$!
trap 'kill $mcpid 2>/dev/null' EXIT
sleep 0.3
./target/demo "127.0.0.1:$port"
