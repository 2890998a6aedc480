# frozen_string_literal: true

# What the tests against real servers share: the environment they are given (see the comments
# at the top of test_memcache.rb and test_bulk_and_security.rb) and a handle on server A with
# keys unique to the test.

require "securerandom"
require "memcache"

module TestEnv
  # The variable's value; a missing one stops the run, it does not skip.
  def self.fetch(name)
    value = ENV.fetch(name, "")
    abort "set #{name} (see the comments at the top of test/test_*.rb)" if value.empty?
    value
  end

  SERVER_A = fetch("MEMCACHE_TEST_SERVER_A")
end

# setup/teardown of a test class whose tests use @mc, a handle on server A, and key(name).
module OnServerA
  def setup
    @mc = Memcache.new(servers: [TestEnv::SERVER_A])
    @ns = "t#{SecureRandom.hex(4)}"
  end

  def teardown
    @mc.close
  end

  # A key unique to this test run.
  def key(name)
    "#{@ns}:#{name}"
  end
end
