# frozen_string_literal: true

# set_multi/delete_multi as one bulk call (issue 16), and the TLS and login options (issue 17),
# against real servers: the plain ones of test_memcache.rb, and the memcached -Z and -Y that
# tests/ruby.rs starts (support/secure_servers.rs), named in the environment:
#
#   MEMCACHE_TEST_TLS_SERVER=tls://127.0.0.1:PORT MEMCACHE_TEST_TLS_CA=ca.pem
#   MEMCACHE_TEST_TLS_WRONG_CA=other.pem MEMCACHE_TEST_MTLS_SERVER=tls://127.0.0.1:PORT
#   MEMCACHE_TEST_TLS_CLIENT_CERT=client.pem MEMCACHE_TEST_TLS_CLIENT_KEY=client.key
#   MEMCACHE_TEST_AUTH_SERVER=127.0.0.1:PORT
#   MEMCACHE_TEST_AUTH_USER=app MEMCACHE_TEST_AUTH_PASSWORD=... MEMCACHE_TEST_AUTH_FILE=file

require "minitest/autorun"
require "socket"
require "tmpdir"
require "memcache"
require_relative "support"

module SecureEnv
  SERVER = TestEnv::SERVER_A
  TLS_SERVER = TestEnv.fetch("MEMCACHE_TEST_TLS_SERVER")
  TLS_CA = TestEnv.fetch("MEMCACHE_TEST_TLS_CA")
  TLS_WRONG_CA = TestEnv.fetch("MEMCACHE_TEST_TLS_WRONG_CA")
  MTLS_SERVER = TestEnv.fetch("MEMCACHE_TEST_MTLS_SERVER")
  CLIENT_CERT = TestEnv.fetch("MEMCACHE_TEST_TLS_CLIENT_CERT")
  CLIENT_KEY = TestEnv.fetch("MEMCACHE_TEST_TLS_CLIENT_KEY")
  AUTH_SERVER = TestEnv.fetch("MEMCACHE_TEST_AUTH_SERVER")
  AUTH_USER = TestEnv.fetch("MEMCACHE_TEST_AUTH_USER")
  AUTH_PASSWORD = TestEnv.fetch("MEMCACHE_TEST_AUTH_PASSWORD")
  AUTH_FILE = TestEnv.fetch("MEMCACHE_TEST_AUTH_FILE")
end

class TestBulkAndSecurity < Minitest::Test
  # memcached refuses items over its 1 MiB default item size.
  TOO_LARGE = 2 * 1024 * 1024
  # "STORED\r\n": what each set of a loop of single calls is answered with.
  STORED_REPLY = 8

  include OnServerA

  # The server's own counters, over a connection of the test's: [{ name => Integer }, the bytes
  # of this stats reply] (the reply counts in the server's next bytes_written).
  def server_stats
    host, port = SecureEnv::SERVER.split(":")
    TCPSocket.open(host, Integer(port)) do |s|
      s.write("stats\r\n")
      counters = {}
      size = 0
      while (line = s.gets)
        size += line.bytesize
        break if line == "END\r\n"

        _, name, value = line.split
        counters[name] = Integer(value, exception: false)
      end
      [counters, size]
    end
  end

  # What the server did while the block ran: { "cmd_set" =>, "reply_bytes" => the bytes it
  # wrote to clients other than these stats requests }.
  def server_work
    before, stats_reply = server_stats
    yield
    after, = server_stats
    {
      "cmd_set" => after["cmd_set"] - before["cmd_set"],
      "delete_hits" => after["delete_hits"] - before["delete_hits"],
      "reply_bytes" => after["bytes_written"] - before["bytes_written"] - stats_reply
    }
  end

  def test_set_multi_of_100_keys_is_one_exchange
    pairs = (1..100).to_h { |i| [key("bulk#{i}"), "value #{i}"] }
    @mc.set("#{@ns}:warm", "1") # connected, and the server's dialect known, before counting
    @mc.set_multi({ key("warm2") => "1" })
    loop_work = server_work { pairs.each { |k, v| @mc.set(k, v) } }
    assert_equal 100, loop_work["cmd_set"]
    assert_equal 100 * STORED_REPLY, loop_work["reply_bytes"], "a loop: one reply per key"

    bulk_work = server_work { assert_equal true, @mc.set_multi(pairs) }
    assert_equal 100, bulk_work["cmd_set"], "every key stored once"
    # Quiet meta sets are answered only when they fail; the window ends with one "MN\r\n".
    assert_operator bulk_work["reply_bytes"], :<=, 4, "one bulk exchange: #{bulk_work}"
    assert_equal pairs, @mc.get_multi(pairs.keys)

    deleted = server_work { @mc.delete_multi(pairs.keys) }
    assert_equal 100, deleted["delete_hits"]
    assert_operator deleted["reply_bytes"], :<=, 4, "one bulk exchange: #{deleted}"
    assert_empty @mc.get_multi(pairs.keys)
  end

  def test_a_refused_value_fails_its_key_only
    pairs = { key("before") => "first", key("big") => "x" * TOO_LARGE, key("after") => [:a, 1] }
    err = assert_raises(Memcache::ServerError) { @mc.set_multi(pairs, ttl: 60) }
    assert_equal({ key("big") => "refused by the server" }, err.failed_keys)
    assert_match(/set_multi: 1 of 3 keys failed: "#{Regexp.escape(key('big'))}" \(refused by the server\)/, err.message)
    assert_match(/too large/, err.message, "the server's reason")
    assert_equal({ key("before") => "first", key("after") => [:a, 1] }, @mc.get_multi(pairs.keys))
  end

  def test_set_multi_stores_what_set_stores
    values = {
      "str" => "caf\u00e9", "int" => 42, "obj" => { "list" => [1, 2.5, nil] },
      "long" => "compressible " * 1000, "longobj" => ["compressible"] * 1000, "empty" => ""
    }
    [Memcache.new(servers: [SecureEnv::SERVER]),
     Memcache.new(servers: [SecureEnv::SERVER], compress: true, compression_min_size: 100)].each do |mc|
      values.each { |name, v| assert mc.set(key("one-#{name}"), v) }
      assert_equal true, mc.set_multi(values.transform_keys { |name| key("many-#{name}") })
      values.each_key do |name|
        one = stored(key("one-#{name}"))
        assert_equal one, stored(key("many-#{name}")), "#{name}: the same bytes and flags"
        assert_equal mc.get(key("one-#{name}")), mc.get(key("many-#{name}"))
      end
      mc.close
    end
    # The codec's bits did apply: the second handle compressed the long values.
    assert_equal 0x3, stored(key("many-longobj")).first, "serialized and compressed"
    assert_equal 0x2, stored(key("many-long")).first, "compressed"
    assert_equal true, @mc.set_multi({ key("raw") => "as is" }, raw: true)
    assert_equal "as is", @mc.get(key("raw"), raw: true)
  end

  def test_bad_keys_stop_set_multi_before_anything_is_sent
    pairs = { key("good") => "v", "bad key" => "v" }
    err = assert_raises(Memcache::InvalidKey) { @mc.set_multi(pairs) }
    assert_match(/invalid key "bad key"/, err.message)
    assert_nil @mc.get(key("good"))
    assert_raises(TypeError) { @mc.set_multi({ 1 => "v" }) }
    assert_equal true, @mc.set_multi({})
    assert_equal({}, @mc.delete_multi)
  end

  # [flags, bytes] of key as the server holds them (a gets over the test's own connection).
  def stored(key)
    host, port = SecureEnv::SERVER.split(":")
    TCPSocket.open(host, Integer(port)) do |s|
      s.write("gets #{key}\r\n")
      header = s.gets
      _v, _k, flags, bytes = header.split
      value = s.read(Integer(bytes))
      [Integer(flags), value]
    end
  end

  # --- TLS and login ---

  def test_tls_with_the_servers_ca
    mc = Memcache.new(servers: [SecureEnv::TLS_SERVER], tls: { ca_file: SecureEnv::TLS_CA })
    assert_equal true, mc.set(key("tls"), "over TLS")
    assert_equal "over TLS", mc.get(key("tls"))
    assert_equal true, mc.set_multi({ key("tls1") => "a", key("tls2") => "b" })
    assert_equal({ key("tls1") => "a", key("tls2") => "b" }, mc.get_multi(key("tls1"), key("tls2")))
    mc.close
    # tls: true speaks TLS to a server written without tls://.
    plain_name = SecureEnv::TLS_SERVER.delete_prefix("tls://")
    mc = Memcache.new(servers: [plain_name], tls: { ca_file: SecureEnv::TLS_CA, verify: true })
    assert_equal "over TLS", mc.get(key("tls"))
    mc.close
  end

  def test_tls_with_a_wrong_ca_is_a_clear_error
    # A handle each: after a failed connect a handle skips the server for the retry interval.
    wrong = -> { Memcache.new(servers: [SecureEnv::TLS_SERVER], tls: { ca_file: SecureEnv::TLS_WRONG_CA }) }
    [->(mc) { mc.get(key("tls")) }, ->(mc) { mc.set(key("tls"), "v") }].each do |call|
      mc = wrong.call
      err = assert_raises(Memcache::NoServer) { call.call(mc) }
      assert_match(/UnknownIssuer/, err.message)
      mc.close
    end
    mc = wrong.call
    err = assert_raises(Memcache::NoServer) { mc.set_multi({ key("tls") => "v" }) }
    assert_equal [key("tls")], err.failed_keys.keys
    assert_match(/UnknownIssuer/, err.message)
    mc.close
    # verify: false accepts it (and the library reports that it did).
    mc = Memcache.new(servers: [SecureEnv::TLS_SERVER], tls: { ca_file: SecureEnv::TLS_WRONG_CA, verify: false })
    assert_equal true, mc.set(key("insecure"), "v")
    mc.close
  end

  def test_mutual_tls_with_a_client_certificate
    with_cert = Memcache.new(servers: [SecureEnv::MTLS_SERVER],
                             tls: { ca_file: SecureEnv::TLS_CA, cert_file: SecureEnv::CLIENT_CERT,
                                    key_file: SecureEnv::CLIENT_KEY })
    assert_equal true, with_cert.set(key("mtls"), "mutual")
    assert_equal "mutual", with_cert.get(key("mtls"))
    with_cert.close
    # Without one the server ends the handshake: nothing is stored.
    without = Memcache.new(servers: [SecureEnv::MTLS_SERVER], tls: { ca_file: SecureEnv::TLS_CA })
    assert_raises(Memcache::Error) { without.set(key("mtls"), "anonymous") }
    without.close
    err = assert_raises(Memcache::ConfigError) do
      Memcache.new(servers: [SecureEnv::MTLS_SERVER], tls: { cert_file: SecureEnv::CLIENT_CERT, key_file: SecureEnv::TLS_CA })
    end
    assert_match(/mc_tls_cert/, err.message)
  end

  def test_tls_option_errors
    err = assert_raises(Memcache::ConfigError) do
      Memcache.new(servers: [SecureEnv::TLS_SERVER], tls: { ca_file: "/nonexistent/ca.pem" })
    end
    assert_match(%r{mc_tls_ca: .*/nonexistent/ca.pem}, err.message)
    assert_raises(ArgumentError) { Memcache.new(servers: [SecureEnv::TLS_SERVER], tls: { cafile: "x" }) }
    assert_raises(ArgumentError) { Memcache.new(servers: [SecureEnv::TLS_SERVER], tls: "yes") }
  end

  def test_login_with_the_right_and_a_wrong_password
    mc = Memcache.new(servers: [SecureEnv::AUTH_SERVER],
                      username: SecureEnv::AUTH_USER, password: SecureEnv::AUTH_PASSWORD)
    assert_equal true, mc.set(key("auth"), "logged in")
    assert_equal "logged in", mc.get(key("auth"))
    mc.close
    mc = Memcache.new(servers: [SecureEnv::AUTH_SERVER], auth_file: SecureEnv::AUTH_FILE)
    assert_equal "logged in", mc.get(key("auth"))
    assert_equal true, mc.set_multi({ key("auth2") => "x" })
    mc.close

    mc = Memcache.new(servers: [SecureEnv::AUTH_SERVER], username: SecureEnv::AUTH_USER, password: "wrong")
    err = assert_raises(Memcache::NoServer) { mc.get(key("auth")) }
    assert_match(/authentication as "#{SecureEnv::AUTH_USER}" refused/, err.message)
    refute_match(/wrong/, err.message, "the password is never shown")
    mc.close
    assert_raises(ArgumentError) { Memcache.new(servers: [SecureEnv::AUTH_SERVER], username: "app") }
    assert_raises(ArgumentError) do
      Memcache.new(servers: [SecureEnv::AUTH_SERVER], auth_file: SecureEnv::AUTH_FILE, username: "app", password: "x")
    end
  end

  def test_a_credentials_file_others_can_read_is_refused
    open_file = File.join(Dir.mktmpdir("rb-auth"), "open")
    File.write(open_file, "app:secret\n")
    File.chmod(0o644, open_file)
    err = assert_raises(Memcache::ConfigError) { Memcache.new(servers: [SecureEnv::AUTH_SERVER], auth_file: open_file) }
    assert_match(/lets others read/, err.message)
    refute_match(/secret/, err.message)
  end
end
