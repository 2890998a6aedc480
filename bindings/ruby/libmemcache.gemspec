# frozen_string_literal: true

require_relative "lib/memcache/version"

Gem::Specification.new do |s|
  s.name = "libmemcache"
  s.version = Memcache::VERSION
  s.summary = "memcached client over libmemcache.so.0 (ruby-ffi), following shared server lists"
  s.description = <<~TEXT
    Calls libmemcache.so.0, the drop-in replacement of libmemcache 1.4, through ruby-ffi: no
    compiler needed. A handle can follow a shared server list (a domain edited with mcadmin), so a
    change of servers reaches a running process on its next call. Values are stored as dalli
    stores them (flag bits documented in the README).
  TEXT
  s.authors = ["libmemcache-rs developers"]
  s.license = "BSD-3-Clause"
  s.required_ruby_version = ">= 2.7"
  s.files = Dir["lib/**/*.rb"] + ["README.md", "Rakefile", "libmemcache.gemspec"]
  s.test_files = Dir["test/**/*.rb"]
  s.require_paths = ["lib"]
  s.requirements << "libmemcache.so.0 (make install in libmemcache-rs)"
  s.add_dependency "ffi", "~> 1.9"
  s.add_development_dependency "minitest", "~> 5.0"
  s.add_development_dependency "rake", "~> 13.0"
end
