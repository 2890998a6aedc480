#!/bin/sh
# `make bench`: this library (C API and Rust core), libmemcached and the raw-socket floor on the
# same workloads and servers; writes BENCHMARKS.md. `bench/run.sh --smoke` is the quick check
# the tests run (tiny counts, writes target/bench/smoke.md unless told --out).
# Options: --smoke, --rounds N, --slice SECONDS, --placement split|shared|free, --out FILE.
# With LIBMEMCACHE_PREFIX set (as `make test` does), the library installed there is used as is;
# otherwise it is installed into target/bench-prefix first.
set -e
cd "$(dirname "$0")/.."
if [ -n "$LIBMEMCACHE_PREFIX" ]; then
	prefix=$LIBMEMCACHE_PREFIX
else
	prefix=$PWD/target/bench-prefix
	make -s install PREFIX="$prefix" >/dev/null
fi
# A smoke run works in a directory of its own (tests may run it while `make bench` runs).
work=target/bench
case " $* " in *" --smoke "*)
	work=target/bench/smoke.$$
	trap 'rm -rf "$work"' EXIT
	;;
esac
mkdir -p "$work"
cc -O2 -Wall -Wextra -Werror -o "$work/clients" bench/clients.c \
	$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs libmemcache libmemcached) \
	-Wl,-rpath,"$prefix/lib"
# The harness is a bench target; ask cargo where it put the executable (target/release/deps/
# bench-HASH). Building it also builds the package's programs: mcadmin is among them.
# BENCH_PROFILE: the smoke test builds it with the profile the test suite was built with.
harness=$(cargo build -q --profile "${BENCH_PROFILE:-release}" --bench bench --message-format=json |
	sed -n 's|.*"executable":"\([^"]*/deps/bench-[^"/]*\)".*|\1|p' | tail -n 1)
[ -n "$harness" ] || { echo "bench/run.sh: cannot build the harness" >&2; exit 2; }
"$harness" --work "$work" --clients "$work/clients" --mcadmin target/release/mcadmin "$@"
