# Build, install and test entry points. `make test` is the one command that runs every test.
PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DESTDIR    ?=
CARGO      ?= cargo
OBJCOPY    ?= objcopy
STRIP      ?= strip
# The shared library's debug info, split off at install. gdb, valgrind and Rust backtraces
# follow the library's .gnu_debuglink to `.debug/` next to it under any prefix.
DEBUGDIR   ?= $(LIBDIR)/.debug
SHLIB      := libmemcache.so.0.4.0
# Where `make test` installs the library for the C tests, as a user would.
TEST_PREFIX := $(CURDIR)/target/test-prefix

.PHONY: all build install uninstall test demo bench clean

all: build

build:
	$(CARGO) build --release --lib --bins

# Stripped as Debian's dh_strip does: the shared library without debug info or local symbols
# plus a .gnu_debuglink to its debug file (compressed), the static library without debug info.
install: build
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)/memcache $(DESTDIR)$(DEBUGDIR)
	$(OBJCOPY) --only-keep-debug --compress-debug-sections=zlib target/release/libmemcache.so \
		$(DESTDIR)$(DEBUGDIR)/$(SHLIB).debug
	chmod 644 $(DESTDIR)$(DEBUGDIR)/$(SHLIB).debug
	$(STRIP) --strip-unneeded --remove-section=.comment \
		-o $(DESTDIR)$(LIBDIR)/$(SHLIB) target/release/libmemcache.so
	$(OBJCOPY) --add-gnu-debuglink=$(DESTDIR)$(DEBUGDIR)/$(SHLIB).debug $(DESTDIR)$(LIBDIR)/$(SHLIB)
	chmod 755 $(DESTDIR)$(LIBDIR)/$(SHLIB)
	ln -sf $(SHLIB) $(DESTDIR)$(LIBDIR)/libmemcache.so.0
	ln -sf libmemcache.so.0 $(DESTDIR)$(LIBDIR)/libmemcache.so
	$(STRIP) --strip-debug --remove-section=.comment --enable-deterministic-archives \
		-o $(DESTDIR)$(LIBDIR)/libmemcache.a target/release/libmemcache.a
	chmod 644 $(DESTDIR)$(LIBDIR)/libmemcache.a
	install -m 644 include/memcache.h $(DESTDIR)$(INCLUDEDIR)/memcache.h
	install -m 644 include/memcache/buffer.h include/memcache/_buffer.h $(DESTDIR)$(INCLUDEDIR)/memcache/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
		pkgconfig/libmemcache.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/libmemcache.pc

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libmemcache.so* $(DESTDIR)$(LIBDIR)/libmemcache.a \
		$(DESTDIR)$(LIBDIR)/pkgconfig/libmemcache.pc $(DESTDIR)$(INCLUDEDIR)/memcache.h \
		$(DESTDIR)$(DEBUGDIR)/$(SHLIB).debug
	rm -rf $(DESTDIR)$(INCLUDEDIR)/memcache
	rmdir $(DESTDIR)$(DEBUGDIR) 2>/dev/null || true

demo:
	examples/demo.sh

# Writes BENCHMARKS.md (bench/run.sh); SMOKE=1: the quick run the tests do, without the domain checks.
bench: build
	bench/run.sh $(if $(SMOKE),--smoke)
	$(if $(SMOKE),,bench/domain_check.sh)
	$(if $(SMOKE),,bench/domain_check_callgrind.sh)

# Every test, then fmt and clippy; the last line sums up every cargo test binary's results.
test: SHELL := /bin/bash
test:
	tools/install-deps
	$(MAKE) install PREFIX=$(TEST_PREFIX)
	set -o pipefail; status=0; \
	LIBMEMCACHE_PREFIX=$(TEST_PREFIX) $(CARGO) test --release 2>&1 | tee target/test.log || status=1; \
	$(CARGO) fmt --all -- --check || status=1; \
	$(CARGO) clippy --release --all-targets -- -D warnings || status=1; \
	awk '/^test result:/ { p += $$4; f += $$6 } END { printf "tests: %d passed, %d failed\n", p, f }' target/test.log; \
	exit $$status

clean:
	$(CARGO) clean
