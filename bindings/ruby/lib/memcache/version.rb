# frozen_string_literal: true

class Memcache
  # The gem's version: the version of libmemcache.so.0 it is written against (Cargo.toml,
  # libmemcache.pc), checked by tests/ruby.rs so the two cannot drift apart.
  VERSION = "1.4.0"
end
