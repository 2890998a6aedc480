# frozen_string_literal: true

class Memcache
  # Where libmemcache.so.0 is loaded from, first match wins:
  #   1. $LIBMEMCACHE_LIB, the full path of the library;
  #   2. $LIBMEMCACHE_PREFIX/lib/libmemcache.so.0 (the PREFIX given to `make install`);
  #   3. the libdir pkg-config reports for libmemcache (PKG_CONFIG_PATH is honoured);
  #   4. "libmemcache.so.0" through the dynamic loader (LD_LIBRARY_PATH, ld.so.conf).
  # A variable that is set but names no file is an error, not a silent fall-through, so a typo
  # does not load some other copy of the library.
  module LibraryPath
    SONAME = "libmemcache.so.0"

    def self.find(env = ENV)
      lib = env.fetch("LIBMEMCACHE_LIB", "")
      return existing(lib, "LIBMEMCACHE_LIB") unless lib.empty?

      prefix = env.fetch("LIBMEMCACHE_PREFIX", "")
      return existing(File.join(prefix, "lib", SONAME), "LIBMEMCACHE_PREFIX") unless prefix.empty?

      from_pkg_config(env) || SONAME
    end

    def self.existing(path, var)
      return path if File.file?(path)

      raise LoadError, "#{var} names #{path}, which is not a file"
    end

    # nil when pkg-config is missing or does not know libmemcache.
    def self.from_pkg_config(env)
      search = { "PKG_CONFIG_PATH" => env.fetch("PKG_CONFIG_PATH", nil) }
      out = IO.popen(search, %w[pkg-config --variable=libdir libmemcache], err: File::NULL, &:read)
      return nil unless $?.success?

      path = File.join(out.strip, SONAME)
      File.file?(path) ? path : nil
    rescue SystemCallError
      nil
    end
  end
end
