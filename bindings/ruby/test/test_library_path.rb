# frozen_string_literal: true

# Where the binding looks for libmemcache.so.0, in order (Memcache::LibraryPath). Needs no server:
# the environments are built here, with files in a temporary directory.

require "minitest/autorun"
require "tmpdir"
require "fileutils"
require "memcache/library_path"

class TestLibraryPath < Minitest::Test
  SONAME = Memcache::LibraryPath::SONAME

  def setup
    @dir = Dir.mktmpdir("libmemcache-path")
    @prefix = File.join(@dir, "prefix")
    @libdir = File.join(@prefix, "lib")
    FileUtils.mkdir_p(File.join(@libdir, "pkgconfig"))
    FileUtils.touch(File.join(@libdir, SONAME))
    File.write(File.join(@libdir, "pkgconfig", "libmemcache.pc"),
               "libdir=#{@libdir}\nName: libmemcache\nDescription: t\nVersion: 1.4.0\nLibs: -L${libdir}\n")
    @no_pc = File.join(@dir, "empty")
    FileUtils.mkdir_p(@no_pc)
  end

  def teardown
    FileUtils.rm_rf(@dir)
  end

  def find(env)
    Memcache::LibraryPath.find(env)
  end

  def test_explicit_library_comes_first
    lib = File.join(@dir, "other.so")
    FileUtils.touch(lib)
    env = { "LIBMEMCACHE_LIB" => lib, "LIBMEMCACHE_PREFIX" => @prefix,
            "PKG_CONFIG_PATH" => File.join(@libdir, "pkgconfig") }
    assert_equal lib, find(env)
  end

  def test_prefix_before_pkg_config
    other = File.join(@dir, "other")
    FileUtils.mkdir_p(File.join(other, "lib"))
    FileUtils.touch(File.join(other, "lib", SONAME))
    env = { "LIBMEMCACHE_PREFIX" => other, "PKG_CONFIG_PATH" => File.join(@libdir, "pkgconfig") }
    assert_equal File.join(other, "lib", SONAME), find(env)
  end

  def test_pkg_config_before_the_loader
    skip "pkg-config is not installed" unless system("pkg-config", "--version", out: File::NULL)
    assert_equal File.join(@libdir, SONAME), find({ "PKG_CONFIG_PATH" => File.join(@libdir, "pkgconfig") })
  end

  def test_loader_search_path_last
    # An empty PKG_CONFIG_PATH still leaves the system's .pc directories, which may hold an
    # installed libmemcache; only check the fall-through when they do not.
    found = find({ "PKG_CONFIG_PATH" => @no_pc })
    installed = IO.popen(%w[pkg-config --variable=libdir libmemcache], err: File::NULL, &:read).strip
    if installed.empty?
      assert_equal SONAME, found
    else
      assert_equal File.join(installed, SONAME), found
    end
  end

  def test_a_variable_naming_no_file_is_an_error
    err = assert_raises(LoadError) { find({ "LIBMEMCACHE_LIB" => File.join(@dir, "nope.so") }) }
    assert_match(/LIBMEMCACHE_LIB names .*nope\.so/, err.message)
    err = assert_raises(LoadError) { find({ "LIBMEMCACHE_PREFIX" => @no_pc }) }
    assert_match(/LIBMEMCACHE_PREFIX/, err.message)
  end
end
