# Build, install and test entry points. `make test` is the one command that runs every test.
PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR     ?= $(PREFIX)/bin
# mcadmin edits host-wide state (the domain segments every process trusts, which must belong to
# root to be trusted by every user) and is what the systemd units run: a system administration
# command, so sbin/ and man8, as the FHS has it.
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/libmemcache
# Only the units read it (watch-DOMAIN.conf); a /usr install keeps its configuration in /etc.
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
# Under the prefix rather than pkg-config's systemdsystemunitdir (always /lib/systemd/system,
# which would put a /usr/local install outside its prefix and ignore PREFIX): systemd looks for
# units in both /usr/lib/systemd/system and /usr/local/lib/systemd/system.
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
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

.PHONY: all build install install-files uninstall test demo bench clean

all: build

build:
	$(CARGO) build --release --lib --bins

# The man3 pages' other names: "NAME PAGE" per function a page's NAME section lists.
MAN3_LINKS = tools/man-links man/man3/*.3
UNITS := memcache-restore.service memcache-watch@.service

install: build install-files

# Stripped as Debian's dh_strip does: the shared library without debug info or local symbols
# plus a .gnu_debuglink to its debug file (compressed), the static library without debug info,
# the programs without symbols. `install-files` copies what `build` made (tests call it, so
# that no cargo runs inside cargo test).
install-files:
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
	chmod 644 $(DESTDIR)$(LIBDIR)/pkgconfig/libmemcache.pc
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR)
	$(STRIP) --remove-section=.comment -o $(DESTDIR)$(BINDIR)/mclient target/release/mclient
	$(STRIP) --remove-section=.comment -o $(DESTDIR)$(SBINDIR)/mcadmin target/release/mcadmin
	chmod 755 $(DESTDIR)$(BINDIR)/mclient $(DESTDIR)$(SBINDIR)/mcadmin
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man8
	install -m 644 man/mclient.1 $(DESTDIR)$(MANDIR)/man1/mclient.1
	install -m 644 man/mcadmin.8 $(DESTDIR)$(MANDIR)/man8/mcadmin.8
	install -m 644 man/man3/*.3 $(DESTDIR)$(MANDIR)/man3/
	$(MAN3_LINKS) | while read -r name page; do \
		printf '.so man3/%s.3\n' "$$page" > $(DESTDIR)$(MANDIR)/man3/$$name.3 && \
		chmod 644 $(DESTDIR)$(MANDIR)/man3/$$name.3 || exit 1; \
	done
	install -d $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(DOCDIR)/examples
	for unit in $(UNITS); do \
		sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
			systemd/$$unit.in > $(DESTDIR)$(SYSTEMDUNITDIR)/$$unit && \
		chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$unit || exit 1; \
	done
	sed -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' systemd/watch.conf.in > $(DESTDIR)$(DOCDIR)/examples/watch.conf
	chmod 644 $(DESTDIR)$(DOCDIR)/examples/watch.conf

# Removes every file install-files wrote, and the directories that only this package uses.
uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libmemcache.so* $(DESTDIR)$(LIBDIR)/libmemcache.a \
		$(DESTDIR)$(LIBDIR)/pkgconfig/libmemcache.pc $(DESTDIR)$(INCLUDEDIR)/memcache.h \
		$(DESTDIR)$(DEBUGDIR)/$(SHLIB).debug
	rm -rf $(DESTDIR)$(INCLUDEDIR)/memcache
	rmdir $(DESTDIR)$(DEBUGDIR) 2>/dev/null || true
	rm -f $(DESTDIR)$(BINDIR)/mclient $(DESTDIR)$(SBINDIR)/mcadmin \
		$(DESTDIR)$(MANDIR)/man1/mclient.1 $(DESTDIR)$(MANDIR)/man8/mcadmin.8
	for page in man/man3/*.3; do rm -f $(DESTDIR)$(MANDIR)/man3/$${page##*/}; done
	$(MAN3_LINKS) | while read -r name page; do rm -f $(DESTDIR)$(MANDIR)/man3/$$name.3; done
	for unit in $(UNITS); do rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/$$unit; done
	rm -rf $(DESTDIR)$(DOCDIR)

demo:
	examples/demo.sh

# Writes BENCHMARKS.md (bench/run.sh); SMOKE=1: the quick run the tests do, without the domain checks.
bench: build
	bench/run.sh $(if $(SMOKE),--smoke)
	$(if $(SMOKE),,bench/domain_check.sh)
	$(if $(SMOKE),,bench/domain_check_callgrind.sh)

# Every test, then fmt and clippy; the last line sums up every cargo test binary's results. The
# suite is built with the `suite` profile (Cargo.toml); the C tests use the release library that
# `make install` put under TEST_PREFIX. --no-fail-fast: one failing binary does not hide the rest.
test: SHELL := /bin/bash
test:
	tools/check-rust
	tools/install-deps
	$(MAKE) install PREFIX=$(TEST_PREFIX)
	set -o pipefail; status=0; \
	LIBMEMCACHE_PREFIX=$(TEST_PREFIX) $(CARGO) test --profile suite --no-fail-fast 2>&1 | tee target/test.log || status=1; \
	$(CARGO) fmt --all -- --check || status=1; \
	$(CARGO) clippy --release --all-targets -- -D warnings || status=1; \
	awk '/^test result:/ { p += $$4; f += $$6 } END { printf "tests: %d passed, %d failed\n", p, f }' target/test.log; \
	exit $$status

clean:
	$(CARGO) clean
