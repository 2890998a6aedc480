# frozen_string_literal: true

# Tests of the Ruby binding against real memcached servers. Run by tests/ruby.rs (`make test`),
# or by hand:
#
#   MEMCACHE_TEST_SERVER_A=127.0.0.1:11211 MEMCACHE_TEST_SERVER_B=127.0.0.1:11212 \
#   MCADMIN=/path/to/mcadmin MCLIENT=/path/to/mclient MEMCACHE_SHM_PREFIX=rubytest \
#   LIBMEMCACHE_PREFIX=/prefix rake test
#
# MEMCACHE_SHM_PREFIX keeps the test's domains apart from the host's real ones; this process and
# the mcadmin it runs both inherit it.

require "minitest/autorun"
require "securerandom"
require "json"
require "zlib"
require "open3"
require "memcache"
require_relative "support"

module TestEnv
  SERVER_B = fetch("MEMCACHE_TEST_SERVER_B")
  MCADMIN = fetch("MCADMIN")
  MCLIENT = fetch("MCLIENT")
  fetch("MEMCACHE_SHM_PREFIX")
end

class TestMemcache < Minitest::Test
  include OnServerA

  def test_binary_value_with_nul_bytes_round_trips
    value = "\x00head\x00\xff\xfe middle \r\n\x00tail\x00".b
    assert_equal true, @mc.set(key("bin"), value)
    got = @mc.get(key("bin"))
    assert_equal value, got
    assert_equal Encoding::ASCII_8BIT, got.encoding
    assert_equal 24, got.bytesize
  end

  def test_large_and_empty_values
    big = Random.new(7).bytes(512 * 1024)
    assert @mc.set(key("big"), big)
    assert_equal big, @mc.get(key("big"))
    assert @mc.set(key("empty"), "")
    assert_equal "".b, @mc.get(key("empty"))
  end

  def test_utf8_value_comes_back_as_bytes
    assert @mc.set(key("utf8"), "h\u00e9llo")
    assert_equal "h\u00e9llo".b, @mc.get(key("utf8"))
  end

  def test_miss_is_nil
    assert_nil @mc.get(key("never-set"))
  end

  def test_bad_key_raises_invalid_key_with_a_clear_message
    err = assert_raises(Memcache::InvalidKey) { @mc.get("has space") }
    assert_match(/invalid key "has space": .*whitespace or a control byte/, err.message)
    assert_equal 14, err.code # MCM_ERR_PROTO

    err = assert_raises(Memcache::InvalidKey) { @mc.set("a\nb", "v") }
    assert_match(/invalid key .*whitespace or a control byte/, err.message)
    err = assert_raises(Memcache::InvalidKey) { @mc.get("") }
    assert_match(/empty/, err.message)
    err = assert_raises(Memcache::InvalidKey) { @mc.delete("k" * 251) }
    assert_match(/longer than 250 bytes/, err.message)
    assert_raises(Memcache::InvalidKey) { @mc.incr("tab\tkey") }
    assert_raises(Memcache::InvalidKey) { @mc.get_multi(key("ok"), "bad key") }
    assert_kind_of Memcache::Error, err
    # The handle is still fine afterwards.
    assert @mc.set(key("after"), "1")
    assert_equal "1", @mc.get(key("after"))
  end

  def test_key_is_checked_before_a_stale_error_is_looked_at
    dead = Memcache.new(servers: ["127.0.0.1:1"])
    assert_raises(Memcache::NoServer) { dead.get("k") }
    assert_raises(Memcache::InvalidKey) { dead.get("bad key") }
  ensure
    dead&.close
  end

  def test_add_replace_delete
    k = key("ard")
    assert_equal false, @mc.replace(k, "r0"), "replace of an absent key"
    assert_nil @mc.get(k)
    assert_equal true, @mc.add(k, "a1")
    assert_equal false, @mc.add(k, "a2"), "add of an existing key"
    assert_equal "a1", @mc.get(k)
    assert_equal true, @mc.replace(k, "r1")
    assert_equal "r1", @mc.get(k)
    assert_equal true, @mc.delete(k)
    assert_equal false, @mc.delete(k)
    assert_nil @mc.get(k)
  end

  def test_set_accepts_symbols_integers_ttl_and_flags
    # The caller's own flags are stored as given with raw: true; without it, dalli's two bits
    # belong to the codec, so flags claiming them are refused rather than misread later.
    assert @mc.set(key("n").to_sym, 42, ttl: 300, flags: 0xffff, raw: true)
    assert_equal "42", @mc.get(key("n"), raw: true)
    err = assert_raises(ArgumentError) { @mc.set(key("n"), 42, flags: 0xffff) }
    assert_match(/raw: true/, err.message)
    assert @mc.set(key("n"), 42, flags: 0xfff0)
    assert_equal "42", @mc.get(key("n"))
    assert_raises(ArgumentError) { @mc.set(key("f"), "v", flags: 0x10000) }
    assert_raises(ArgumentError) { @mc.set(key("f"), "v", ttl: -1) }
    assert_raises(TypeError) { @mc.set(key("f"), 1.5, raw: true) }
    assert_raises(TypeError) { @mc.get(nil) }
  end

  def test_incr_decr
    k = key("counter")
    assert_nil @mc.incr(k), "incr of an absent key"
    assert_nil @mc.decr(k), "decr of an absent key"
    assert @mc.set(k, "10")
    assert_equal 11, @mc.incr(k)
    assert_equal 16, @mc.incr(k, 5)
    assert_equal 13, @mc.decr(k, 3)
    assert_equal 0, @mc.decr(k, 100), "memcached stops at 0"
    assert @mc.set(k, (2**32).to_s)
    assert_equal 2**32 + 1, @mc.incr(k), "64-bit counters"
    # memcached 1.6.18 may refuse to parse a stored counter of 2**63 or more (its check for a
    # minus sign reads past the value), so the test only goes up to 2**63.
    assert @mc.set(k, (2**63 - 1).to_s)
    assert_equal 2**63, @mc.incr(k), "unsigned 64-bit result"
    assert @mc.set(k, "not a number")
    err = assert_raises(Memcache::ServerError) { @mc.incr(k) }
    assert_match(/non-numeric/, err.message)
    assert_raises(ArgumentError) { @mc.incr(k, -1) }
  end

  def test_get_multi
    assert @mc.set(key("m1"), "one")
    assert @mc.set(key("m2"), "t\x00wo".b)
    assert @mc.set(key("m3"), "")
    got = @mc.get_multi(key("m1"), key("m2"), key("missing"), key("m3"), key("m1"))
    assert_equal({ key("m1") => "one", key("m2") => "t\x00wo".b, key("m3") => "" }, got)
    assert_equal({ key("m1") => "one" }, @mc.get_multi([key("m1")]))
    assert_equal({}, @mc.get_multi(key("missing")))
    assert_equal({}, @mc.get_multi)
    assert @mc.set(key("caf\u00e9"), "utf-8 key")
    assert_equal({ key("caf\u00e9") => "utf-8 key", key("m1") => "one" },
                 @mc.get_multi(key("caf\u00e9"), key("m1").to_sym))
  end

  def test_get_multi_across_two_servers
    both = Memcache.new(servers: [TestEnv::SERVER_A, TestEnv::SERVER_B])
    keys = (1..40).map { |i| key("spread#{i}") }
    keys.each { |k| assert both.set(k, "v-#{k}") }
    assert_equal keys.to_h { |k| [k, "v-#{k}"] }, both.get_multi(keys)
    a = Memcache.new(servers: [TestEnv::SERVER_A])
    on_a = a.get_multi(keys).size
    assert on_a.positive? && on_a < keys.size, "40 keys spread over both servers (#{on_a} on A)"
  ensure
    both&.close
    a&.close
  end

  def test_distribution_of_an_explicit_list
    list = [TestEnv::SERVER_A, TestEnv::SERVER_B]
    ring = Memcache.new(servers: list, distribution: "ketama-md5")
    same = Memcache.new(servers: list, distribution: "KETAMA-MD5")
    modulo = Memcache.new(servers: list)
    keys = (1..40).map { |i| key("ring#{i}") }
    keys.each { |k| assert ring.set(k, "r") }
    assert_equal keys.size, same.get_multi(keys).size
    # The default is 1.4's crc32-modulo, which puts some of these keys elsewhere.
    assert modulo.get_multi(keys).size < keys.size, "ketama-md5 was not applied"
    explicit = Memcache.new(servers: list, distribution: "crc32-modulo")
    keys.each { |k| assert modulo.set(k, "m") }
    assert_equal keys.to_h { |k| [k, "m"] }, explicit.get_multi(keys)
  ensure
    [ring, same, modulo, explicit].each { |mc| mc&.close }
  end

  def test_stats
    assert @mc.set(key("s"), "x")
    @mc.get(key("s"))
    stats = @mc.stats
    assert_equal [TestEnv::SERVER_A], stats.keys
    s = stats.fetch(TestEnv::SERVER_A)
    assert_kind_of Integer, s["pid"]
    assert s["pid"].positive?
    assert_match(/\A\d+\.\d+/, s["version"])
    assert s["cmd_set"] >= 1
    assert s["get_hits"] >= 1
    assert s["limit_maxbytes"].positive?
    assert_kind_of Float, s["rusage_user"]
    assert_equal [TestEnv::SERVER_A], @mc.servers
  end

  def test_stats_of_a_dead_server_is_nil
    mixed = Memcache.new(servers: [TestEnv::SERVER_A, "127.0.0.1:1"])
    stats = mixed.stats
    assert_nil stats.fetch("127.0.0.1:1")
    assert_kind_of Hash, stats.fetch(TestEnv::SERVER_A)
  ensure
    mixed&.close
  end

  def test_no_server
    dead = Memcache.new(servers: ["127.0.0.1:1"])
    err = assert_raises(Memcache::NoServer) { dead.set("k", "v") }
    assert_match(/server/, err.message)
    assert_raises(Memcache::NoServer) { dead.get("k") }
    assert_raises(Memcache::NoServer) { dead.incr("k") }
    assert_raises(Memcache::NoServer) { dead.delete("k") }
    assert_raises(Memcache::NoServer) { dead.get_multi("k", "l") }
  ensure
    dead&.close
  end

  def test_miss_after_failing_over_from_a_dead_server_is_nil
    # The first key that maps to the dead server fails over to the live one within the call; the
    # library then still reports the refused connect, which must not turn the miss into an error.
    mixed = Memcache.new(servers: ["127.0.0.1:1", TestEnv::SERVER_A])
    10.times { |i| assert_nil mixed.get(key("failover#{i}")) }
    assert mixed.set(key("failover"), "v")
    assert_equal "v", mixed.get(key("failover"))
  ensure
    mixed&.close
  end

  def test_constructor_errors
    assert_raises(Memcache::ConfigError) { Memcache.new(domain: "no spaces allowed") }
    assert_raises(Memcache::ConfigError) { Memcache.new(servers: ["host.invalid:11211"]) }
    assert_raises(ArgumentError) { Memcache.new(domain: "d", servers: [TestEnv::SERVER_A]) }
    assert_raises(ArgumentError) { Memcache.new(servers: []) }
    assert_raises(ArgumentError) { Memcache.new(servers: [TestEnv::SERVER_A], distribution: "modulo") }
    assert_raises(ArgumentError) { Memcache.new(domain: "d", distribution: "ketama-md5") }
  end

  def test_close
    mc = Memcache.new(servers: [TestEnv::SERVER_A])
    refute mc.closed?
    mc.close
    assert mc.closed?
    mc.close
    assert_raises(Memcache::ClosedError) { mc.get("k") }
  end

  def test_library_buffers_are_released
    value = "v" * (64 * 1024)
    assert @mc.set(key("mem"), value)
    round = lambda do |n|
      n.times do |i|
        @mc.get(key("mem"))
        @mc.get_multi(key("mem"), key("nothing"))
        GC.start if (i % 100).zero? # keep Ruby's own garbage out of the measure
      end
    end
    round.call(300) # warm-up: Ruby's heap and malloc's arenas reach their working size
    GC.start
    rss_before = rss_kib
    round.call(3000)
    200.times { @mc.stats }
    200.times { Memcache.new(servers: [TestEnv::SERVER_A]).close }
    GC.start
    grown = rss_kib - rss_before
    # A leak of the values alone would be 3000 * 2 * 64 KiB = 375 MiB.
    assert grown < 64 * 1024, "RSS grew by #{grown} KiB"
  end

  def rss_kib
    File.read("/proc/self/status")[/^VmRSS:\s+(\d+)/, 1].to_i
  end

  def mcadmin(*args)
    out = IO.popen([TestEnv::MCADMIN, *args], err: %i[child out], &:read)
    assert $?.success?, "mcadmin #{args.join(' ')} failed: #{out}"
    out
  end

  def test_domain_handle_follows_mcadmin_without_reconnecting
    domain = "ruby#{SecureRandom.hex(4)}"
    mcadmin("--domain", domain, "set", TestEnv::SERVER_A)
    shared = Memcache.new(domain: domain)
    a = Memcache.new(servers: [TestEnv::SERVER_A])
    b = Memcache.new(servers: [TestEnv::SERVER_B])
    k = key("domain")

    assert shared.set(k, "first")
    assert_equal "first", a.get(k)
    assert_nil b.get(k)
    assert_equal [TestEnv::SERVER_A], shared.servers

    mcadmin("--domain", domain, "set", TestEnv::SERVER_B)
    # The same Ruby object, no reconnect or reopen: its next operation uses the new list.
    assert shared.set(k, "second")
    assert_equal "second", b.get(k)
    assert_equal "first", a.get(k), "the old server was not written"
    assert_equal "second", shared.get(k)
    assert_equal [TestEnv::SERVER_B], shared.servers
    assert_equal [TestEnv::SERVER_B], shared.stats.keys
  ensure
    [shared, a, b].each { |m| m&.close }
    mcadmin("--domain", domain, "destroy") if domain
  end

  def test_default_handle_follows_memcache_domain
    domain = "ruby#{SecureRandom.hex(4)}"
    mcadmin("--domain", domain, "set", TestEnv::SERVER_B)
    saved = ENV.fetch("MEMCACHE_DOMAIN", nil)
    ENV["MEMCACHE_DOMAIN"] = domain
    mc = Memcache.new
    assert_equal [TestEnv::SERVER_B], mc.servers
    assert mc.set(key("default-domain"), "b")
    assert_equal "b", Memcache.new(servers: [TestEnv::SERVER_B]).get(key("default-domain"))
  ensure
    ENV["MEMCACHE_DOMAIN"] = saved
    mc&.close
    mcadmin("--domain", domain, "destroy") if domain
  end

  def test_one_handle_shared_by_threads
    threads = 4.times.map do |t|
      Thread.new do
        100.times.map do |i|
          k = key("thread#{t}-#{i}")
          @mc.set(k, "#{t}:#{i}") && @mc.get(k) == "#{t}:#{i}"
        end
      end
    end
    assert threads.flat_map(&:value).all?
  end

  def test_domain_without_servers_raises_no_server
    empty = Memcache.new(domain: "ruby#{SecureRandom.hex(4)}")
    assert_equal [], empty.servers
    assert_raises(Memcache::NoServer) { empty.get("k") }
    assert_raises(Memcache::NoServer) { empty.set("k", "v") }
  ensure
    empty&.close
  end

  # --- The everyday calls dalli has (issue 15, step 2) ---

  def test_set_multi_and_delete_multi
    pairs = { key("sm1") => "one", key("sm2") => "two", key("sm3").to_sym => 3 }
    assert_equal true, @mc.set_multi(pairs, ttl: 300)
    want = { key("sm1") => "one", key("sm2") => "two", key("sm3") => "3" }
    assert_equal want, @mc.get_multi(want.keys)
    got = @mc.delete_multi(key("sm1"), [key("sm2"), key("absent")])
    assert_equal({ key("sm1") => true, key("sm2") => true, key("absent") => false }, got)
    assert_equal({ key("sm3") => "3" }, @mc.get_multi(want.keys))
    assert_raises(Memcache::InvalidKey) { @mc.delete_multi(key("ok"), "bad key") }
  end

  def test_incr_decr_with_an_initial_value
    k = key("initial")
    assert_equal 10, @mc.incr(k, 1, initial: 10, ttl: 300), "absent: the initial value is stored"
    assert_equal "10", @mc.get(k)
    assert_equal 11, @mc.incr(k, 1, initial: 10), "present: counted as usual"
    assert_equal 6, @mc.decr(k, 5, initial: 100)
    d = key("initial-decr")
    assert_equal 7, @mc.decr(d, 2, initial: 7)
    assert_equal 5, @mc.decr(d, 2, initial: 7)
    assert_nil @mc.incr(key("no-initial")), "without initial: still nil"
    assert_raises(ArgumentError) { @mc.incr(key("neg"), 1, initial: -1) }
  end

  def test_append_prepend
    k = key("ap")
    assert_equal false, @mc.append(k, "x"), "append to an absent key"
    assert_equal false, @mc.prepend(k, "x"), "prepend to an absent key"
    assert_nil @mc.get(k)
    assert @mc.set(k, "middle")
    assert_equal true, @mc.append(k, "-end\0".b)
    assert_equal true, @mc.prepend(k, "start-")
    assert_equal "start-middle-end\0".b, @mc.get(k)
    assert_raises(TypeError) { @mc.append(k, [1]) }
    assert_raises(Memcache::InvalidKey) { @mc.append("bad key", "x") }
  end

  def test_touch
    k = key("touch")
    assert_equal false, @mc.touch(k, 60), "touch of an absent key"
    assert @mc.set(k, "v", ttl: 1000)
    assert_equal true, @mc.touch(k, 60)
    assert_equal "v", @mc.get(k)
    # Over 30 days is a Unix time, here one in 1970: the item expires at once, so the touch
    # really reached it.
    assert_equal true, @mc.touch(k, 3_000_000)
    assert_nil @mc.get(k)
    assert_raises(ArgumentError) { @mc.touch(k, -1) }
    assert_raises(Memcache::InvalidKey) { @mc.touch("bad key", 1) }
  end

  def test_gets_and_set_cas
    k = key("cas")
    assert_nil @mc.gets(k)
    assert_nil @mc.set_cas(k, "x", 1), "set_cas of an absent key"
    assert @mc.set(k, "v1")
    value, token = @mc.gets(k)
    assert_equal "v1", value
    assert token.positive?
    assert @mc.set(k, "v2")
    assert_equal false, @mc.set_cas(k, "stale", token), "changed since the gets"
    assert_equal "v2", @mc.get(k)
    value, token = @mc.gets(k)
    assert_equal "v2", value
    assert_equal true, @mc.set_cas(k, { "n" => 1 }, token)
    assert_equal({ "n" => 1 }, @mc.get(k))
  end

  def test_cas_block
    k = key("casblock")
    called = false
    assert_nil(@mc.cas(k) { called = true })
    refute called, "no block call for an absent key"
    assert @mc.set(k, 41)
    assert_equal true, @mc.cas(k) { |v| Integer(v) + 1 }
    assert_equal "42", @mc.get(k)
    other = Memcache.new(servers: [TestEnv::SERVER_A])
    assert_equal false, @mc.cas(k) { |_v| other.set(k, "meanwhile") && "late" }
    assert_equal "meanwhile", @mc.get(k)
  ensure
    other&.close
  end

  def test_version_and_flush
    assert_match(/\A\d+\.\d+/, @mc.version.fetch(TestEnv::SERVER_A))
    mixed = Memcache.new(servers: [TestEnv::SERVER_A, "127.0.0.1:1"])
    versions = mixed.version
    assert_nil versions.fetch("127.0.0.1:1")
    assert_equal @mc.version.fetch(TestEnv::SERVER_A), versions.fetch(TestEnv::SERVER_A)

    b = Memcache.new(servers: [TestEnv::SERVER_B])
    assert b.set(key("flushed"), "v")
    assert_equal true, b.flush
    assert_nil b.get(key("flushed"))
    dead = Memcache.new(servers: ["127.0.0.1:1"])
    assert_raises(Memcache::Error) { dead.flush }
  ensure
    [mixed, b, dead].each { |m| m&.close }
  end

  def test_error_classes_share_one_base
    [Memcache::InvalidKey, Memcache::NoServer, Memcache::ServerError, Memcache::ConfigError,
     Memcache::ClosedError, Memcache::ValueError].each do |klass|
      assert_operator klass, :<, Memcache::Error
    end
    assert_operator Memcache::Error, :<, StandardError
  end

  # --- Values as dalli stores them (issue 15, step 3) ---

  # Runs mclient against servers (server A by default) with stdin; its stdout.
  def mclient(*args, stdin: "", servers: [TestEnv::SERVER_A])
    out, err, st = Open3.capture3(TestEnv::MCLIENT, "--servers", servers.join(","), *args,
                                  stdin_data: stdin, binmode: true)
    assert st.success?, "mclient #{args.join(' ')}: #{err}"
    out
  end

  # [flags, bytes] of key as mclient's gets prints them ("KEY FLAGS BYTES CAS\nvalue\n").
  def stored(key)
    out = mclient("gets", key)
    header, rest = out.split("\n", 2)
    _k, flags, bytes, _cas = header.split(" ")
    [Integer(flags), rest.byteslice(0, Integer(bytes))]
  end

  def test_objects_are_stored_with_dallis_bits
    obj = { "list" => [1, 2.5, nil], :sym => "caf\u00e9", "nested" => { "t" => true } }
    assert @mc.set(key("obj"), obj)
    assert_equal [0x1, Marshal.dump(obj).b], stored(key("obj")), "Marshal, flag 0x1"
    assert_equal obj, @mc.get(key("obj"))
    assert @mc.set(key("str"), "caf\u00e9")
    assert_equal [0, "caf\u00e9".b], stored(key("str")), "a String as it is, flag 0"
    assert @mc.set(key("int"), 12)
    assert_equal [0, "12"], stored(key("int")), "an Integer as its text, so incr works"
    assert_equal 13, @mc.incr(key("int"))
    assert @mc.set(key("float"), 1.5)
    assert_equal 1.5, @mc.get(key("float"))
    assert_equal({ key("obj") => obj, key("float") => 1.5 }, @mc.get_multi(key("obj"), key("float")))
  end

  def test_values_written_as_dalli_writes_them_read_back
    obj = { "a" => [1, 2, 3], "b" => "x" * 5000 }
    big = "y" * 10_000
    # dalli's default client (Marshal for everything, zlib over 4 KiB), laid out by hand.
    mclient("--flags", "1", "set", key("d-marshal"), stdin: Marshal.dump([1, "two"]))
    mclient("--flags", "1", "set", key("d-mstring"), stdin: Marshal.dump("marshalled string"))
    mclient("--flags", "3", "set", key("d-zmarshal"), stdin: Zlib::Deflate.deflate(Marshal.dump(obj)))
    mclient("--flags", "2", "set", key("d-zraw"), stdin: Zlib::Deflate.deflate(big))
    mclient("--flags", "0", "set", key("d-raw"), stdin: "raw \xff bytes".b)
    assert_equal [1, "two"], @mc.get(key("d-marshal"))
    assert_equal "marshalled string", @mc.get(key("d-mstring"))
    assert_equal obj, @mc.get(key("d-zmarshal"))
    assert_equal big, @mc.get(key("d-zraw"))
    assert_equal "raw \xff bytes".b, @mc.get(key("d-raw"))
    assert_equal Zlib::Deflate.deflate(big), @mc.get(key("d-zraw"), raw: true)

    # dalli with serializer: JSON.
    json = Memcache.new(servers: [TestEnv::SERVER_A], serializer: JSON)
    mclient("--flags", "1", "set", key("d-json"), stdin: JSON.dump({ "k" => [1, "v"] }))
    assert_equal({ "k" => [1, "v"] }, json.get(key("d-json")))
  ensure
    json&.close
  end

  def test_values_written_here_are_laid_out_as_dalli_reads_them
    obj = { "a" => [1, 2, 3], "b" => "x" * 5000 }
    z = Memcache.new(servers: [TestEnv::SERVER_A], compress: true)
    assert z.set(key("h-zobj"), obj)
    flags, bytes = stored(key("h-zobj"))
    assert_equal 0x3, flags, "serialized and compressed"
    assert_equal obj, Marshal.load(Zlib::Inflate.inflate(bytes)), "dalli's order: dump, then deflate"
    assert z.set(key("h-zstr"), "s" * 5000)
    flags, bytes = stored(key("h-zstr"))
    assert_equal 0x2, flags
    assert_equal "s" * 5000, Zlib::Inflate.inflate(bytes)
    assert z.set(key("h-small"), [1])
    assert_equal [0x1, Marshal.dump([1]).b], stored(key("h-small")), "under 4 KiB: not compressed"
    assert_equal obj, @mc.get(key("h-zobj")), "any handle reads what the flags say"

    json = Memcache.new(servers: [TestEnv::SERVER_A], serializer: :json)
    assert json.set(key("h-json"), { "k" => [1, nil] })
    assert_equal [0x1, '{"k":[1,null]}'], stored(key("h-json"))
  ensure
    [z, json].each { |m| m&.close }
  end

  def test_bad_stored_values_raise_value_error
    mclient("--flags", "1", "set", key("bad-marshal"), stdin: "not marshal data")
    err = assert_raises(Memcache::ValueError) { @mc.get(key("bad-marshal")) }
    assert_match(/cannot load/, err.message)
    mclient("--flags", "2", "set", key("bad-zlib"), stdin: "not zlib")
    assert_raises(Memcache::ValueError) { @mc.get(key("bad-zlib")) }
    mclient("--flags", "2", "set", key("cut-zlib"), stdin: Zlib::Deflate.deflate("z" * 1000)[0, 6])
    assert_raises(Memcache::ValueError) { @mc.get(key("cut-zlib")) }
    # A small value that would inflate past the limit is refused, not expanded.
    bomb = Zlib::Deflate.deflate("\0" * 2_000_000)
    mclient("--flags", "2", "set", key("bomb"), stdin: bomb)
    small = Memcache.new(servers: [TestEnv::SERVER_A], decompressed_max_bytes: 1_000_000)
    err = assert_raises(Memcache::ValueError) { small.get(key("bomb")) }
    assert_match(/decompressed_max_bytes/, err.message)
    assert_equal 2_000_000, @mc.get(key("bomb")).bytesize, "the default limit (128 MiB) lets it through"
    # Without a serializer, objects are refused and serialized values are an error, not bytes.
    plain = Memcache.new(servers: [TestEnv::SERVER_A], serializer: nil)
    assert_raises(TypeError) { plain.set(key("plain"), [1]) }
    assert_raises(Memcache::ValueError) { plain.get(key("bad-marshal")) }
    assert_raises(Memcache::ValueError) { @mc.set(key("proc"), proc {}) }
    assert_raises(ArgumentError) { Memcache.new(servers: [TestEnv::SERVER_A], serializer: 42) }
    assert_equal "still fine", (@mc.set(key("after"), "still fine") && @mc.get(key("after")))
  ensure
    [small, plain].each { |m| m&.close }
  end

  # Issue 15: a key written from Ruby is found by every other front end given the same list
  # and distribution, here mclient, and the other way round.
  def test_same_placement_as_mclient
    list = [TestEnv::SERVER_A, TestEnv::SERVER_B]
    %w[crc32-modulo ketama-md5].each do |dist|
      mc = Memcache.new(servers: list, distribution: dist)
      keys = (1..20).map { |i| key("place-#{dist}-#{i}") }
      keys.each { |k| assert mc.set(k, "ruby-#{k}") }
      out = mclient("--distribution", dist, "get", "--print-keys", *keys, servers: list)
      found = out.scan(/^(\S+) \d+ \d+\n(.*)\n/).to_h
      assert_equal keys.to_h { |k| [k, "ruby-#{k}"] }, found, "mclient --distribution #{dist}"
      keys.each { |k| mclient("--distribution", dist, "set", k, stdin: "mclient-#{k}", servers: list) }
      assert_equal keys.to_h { |k| [k, "mclient-#{k}"] }, mc.get_multi(keys), "Ruby, #{dist}"
      mc.close
    end
  end
end
