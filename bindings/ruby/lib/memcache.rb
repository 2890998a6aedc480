# frozen_string_literal: true

# Ruby binding of libmemcache (the Rust drop-in replacement of libmemcache 1.4) over ruby-ffi.
#
#   mc = Memcache.new(domain: "default")             # follows the shared list edited by mcadmin(8)
#   mc = Memcache.new(servers: ["127.0.0.1:11211"])  # a private list, as libmemcache 1.4 had
#   mc.set("k", "v\0binary", ttl: 60)                 # => true
#   mc.get("k")                                       # => "v\x00binary" (ASCII-8BIT) or nil
#
# The shared library is found as Memcache::LibraryPath says: $LIBMEMCACHE_LIB, then
# $LIBMEMCACHE_PREFIX, then pkg-config, then the dynamic loader's search path.

require "ffi"
require "memcache/version"
require "memcache/library_path"
require "memcache/codec"

class Memcache
  # Every error this binding raises. #code is the library's MCM_ERR_* code when it reported one.
  class Error < StandardError
    attr_reader :code, :failed_keys

    # failed_keys: for set_multi and delete_multi, { key => reason } of the keys that failed
    # (the others were written); nil for a call on one key.
    def initialize(message = nil, code: nil, failed_keys: nil)
      super(message)
      @code = code
      @failed_keys = failed_keys
    end
  end

  # The key is empty, longer than 250 bytes, or holds whitespace or a control byte.
  class InvalidKey < Error; end

  # No server could be chosen or connected to (empty list, all servers down, bad address).
  class NoServer < Error; end

  # A server answered with an error, the connection failed mid-command, or it timed out.
  class ServerError < Error; end

  # The handle could not be created: a bad domain name or a server address that does not resolve.
  class ConfigError < Error; end

  # The handle was closed with #close.
  class ClosedError < Error; end

  # A value could not be serialized, or a stored value could not be inflated or loaded (dalli's
  # MarshalError and UnmarshalError).
  class ValueError < Error; end

  # The C declarations this binding uses (memcache.h, x86-64 layouts of spec §3).
  module Native
    extend FFI::Library
    ffi_lib LibraryPath.find

    MCM_ERR_LVL_ALL = 0x1f # INFO | NOTICE | WARN | ERR | FATAL
    MC_EXISTS = 5
    MC_NOT_FOUND = 6

    class Timeval < FFI::Struct
      layout :tv_sec, :long,
             :tv_usec, :long
    end

    # struct memcache_server (256 bytes; fds always present).
    class Server < FFI::Struct
      layout :misc, :pointer,      #   0
             :hostname, :string,   #   8
             :port, :string,       #  16
             :fd, :int,            #  24
             :tv, Timeval,         #  32
             :active, :char,       #  48
             :hostinfo, :pointer,  #  56
             :num_addrs, :uint32,  #  64
             :fds, [:uint8, 128],  #  72
             :rbuf, :pointer,      # 200
             :wbuf, :pointer,      # 208
             :_last_hash, :uint32, # 216
             :soff, :size_t,       # 224
             :startoff, :size_t,   # 232
             :tqe_next, :pointer,  # 240
             :tqe_prev, :pointer   # 248
    end

    # struct memcache (56 bytes).
    class Handle < FFI::Struct
      layout :misc, :pointer,        #  0
             :tv, Timeval,           #  8
             :num_servers, :uint32,  # 24
             :servers, :pointer,     # 32 struct memcache_server **, NULL-terminated
             :tqh_first, :pointer,   # 40
             :tqh_last, :pointer     # 48
    end

    # struct memcache_res (80 bytes).
    class Res < FFI::Struct
      layout :misc, :pointer,   #  0
             :key, :pointer,    #  8
             :len, :size_t,     # 16
             :hash, :uint32,    # 24
             :bytes, :size_t,   # 32
             :val, :pointer,    # 40
             :size, :size_t,    # 48
             :tqe_next, :pointer, # 56
             :tqe_prev, :pointer, # 64
             :flags, :uint16,   # 72
             :_flags, :char     # 74
    end

    # struct memcache_server_stats (168 bytes).
    class ServerStats < FFI::Struct
      layout :pid, :int,                      #   0
             :uptime, :long,                  #   8
             :time, :long,                    #  16
             :version, :string,               #  24
             :rusage_user, Timeval,           #  32
             :rusage_system, Timeval,         #  48
             :curr_items, :uint32,            #  64
             :total_items, :uint64,           #  72
             :bytes, :uint64,                 #  80
             :curr_connections, :uint32,      #  88
             :total_connections, :uint64,     #  96
             :connection_structures, :uint32, # 104
             :cmd_get, :uint64,               # 112
             :cmd_set, :uint64,               # 120
             :get_hits, :uint64,              # 128
             :get_misses, :uint64,            # 136
             :bytes_read, :uint64,            # 144
             :bytes_written, :uint64,         # 152
             :limit_maxbytes, :uint64         # 160
    end

    attach_function :mc_new2, [:string], :pointer
    attach_function :mc_new_private, [], :pointer
    attach_function :mc_free, [:pointer], :void
    attach_function :mc_server_add4, [:pointer, :string], :int, blocking: true
    attach_function :mc_distribution, [:pointer, :int], :int
    attach_function :mc_server_find, [:pointer, :uint32], :pointer
    attach_function :mc_last_error, [:pointer, :pointer, :size_t], :int
    attach_function :mc_err_filter_add, [:uint32], :int32
    attach_function :mc_err_filter_del, [:uint32], :int32
    attach_function :mc_global_ctxt, [], :pointer

    # The library's key check, as the default mcKeyValid hook of the global context: 0 for a good
    # key, else 1 (empty), 251 (too long) or the 1-based position of the offending byte.
    MC_KEY_VALID_OFFSET = 40 # struct memcache_ctxt.mcKeyValid

    def self.key_check(key_ptr, len)
      fn = mc_global_ctxt.get_pointer(MC_KEY_VALID_OFFSET)
      return 0 if fn.null?

      unless @key_valid&.address == fn.address
        @key_valid = FFI::Function.new(:int32, [:pointer, :pointer, :size_t], fn)
      end
      @key_valid.call(nil, key_ptr, len)
    end

    # Keys and values are passed as native copies (never Ruby string memory) because these
    # calls release the GVL while they wait for the network.
    STORE_ARGS = [:pointer, :pointer, :size_t, :pointer, :size_t, :long, :uint16].freeze
    attach_function :mc_set, STORE_ARGS, :int, blocking: true
    attach_function :mc_add, STORE_ARGS, :int, blocking: true
    attach_function :mc_replace, STORE_ARGS, :int, blocking: true
    attach_function :mc_append, STORE_ARGS, :int, blocking: true
    attach_function :mc_prepend, STORE_ARGS, :int, blocking: true
    attach_function :mc_cas, STORE_ARGS + [:uint64], :int, blocking: true
    attach_function :mc_delete, [:pointer, :pointer, :size_t, :long], :int, blocking: true
    attach_function :mc_touch, [:pointer, :pointer, :size_t, :long], :int, blocking: true
    attach_function :mc_incr64, [:pointer, :pointer, :size_t, :uint64, :pointer], :int, blocking: true
    attach_function :mc_decr64, [:pointer, :pointer, :size_t, :uint64, :pointer], :int, blocking: true
    attach_function :mc_aget2, [:pointer, :pointer, :size_t, :pointer], :pointer, blocking: true
    attach_function :mc_agets, [:pointer, :pointer, :size_t, :pointer, :pointer, :pointer], :pointer,
                    blocking: true
    attach_function :mc_flush_all, [:pointer], :int, blocking: true
    attach_function :mc_server_version, [:pointer, :pointer], :pointer, blocking: true

    attach_function :mc_req_new, [], :pointer
    attach_function :mc_req_add, [:pointer, :pointer, :size_t], :pointer
    attach_function :mc_req_free, [:pointer], :void
    attach_function :mc_res_found, [:pointer], :int
    attach_function :mc_get, [:pointer, :pointer], :void, blocking: true

    attach_function :mc_server_stats, [:pointer, :pointer], :pointer, blocking: true
    attach_function :mc_server_stats_free, [:pointer], :void

    # struct memcache_bulk (56 bytes): one key of mc_bulk(), whose result the call sets.
    class Bulk < FFI::Struct
      layout :key, :pointer,     #  0
             :key_len, :size_t,  #  8
             :val, :pointer,     # 16
             :val_len, :size_t,  # 24
             :flags, :uint32,    # 32
             :exptime, :long,    # 40
             :result, :int       # 48
    end

    MC_BULK_SET = 1
    MC_BULK_DELETE = 6
    MC_BULK_DONE = 0
    MC_BULK_NOT_STORED = 1
    MC_BULK_REFUSED = 4
    MC_BULK_NOT_FOUND = 6
    MC_BULK_FAILED = -1
    MC_BULK_BAD_KEY = -9
    attach_function :mc_bulk, [:pointer, :int, :pointer, :size_t], :int, blocking: true

    # TLS and memcached's text-protocol login (mc_tls(3)): each applies from the next connect.
    attach_function :mc_tls, [:pointer, :int], :int
    attach_function :mc_tls_ca, [:pointer, :string], :int
    attach_function :mc_tls_cert, [:pointer, :string, :string], :int
    attach_function :mc_tls_insecure, [:pointer, :int], :int
    attach_function :mc_auth, [:pointer, :string, :string], :int
    attach_function :mc_auth_file, [:pointer, :string], :int
  end

  # free(3) for the buffers the library allocates with the global context's malloc.
  module LibC
    extend FFI::Library
    ffi_lib FFI::Library::LIBC
    attach_function :free, [:pointer], :void
  end

  # Descriptions of the MCM_ERR_* codes (memcache.h): mc_last_error() gives only the code and
  # the site's message, e.g. "127.0.0.1:11311" for a refused connection.
  ERROR_TEXT = {
    1 => "internal assertion", 2 => "snprintf failed", 3 => "strtol failed",
    4 => "strtoll failed", 5 => "connection re-established with server",
    6 => "failed to send command to the memcache server",
    7 => "no available servers in server list", 8 => "unable to store value",
    9 => "unable to find a server to connect to", 10 => "malloc failed",
    11 => "realloc failed", 12 => "unable to connect to a server",
    13 => "unable to lookup/resolve host", 14 => "protocol error", 16 => "close failed",
    17 => "connect failed", 18 => "fcntl failed", 19 => "read failed", 20 => "select failed",
    21 => "setsockopt failed", 22 => "socket failed", 23 => "writev failed",
    24 => "test message", 25 => "timeout", 26 => "trace", 27 => "unknown stat variable"
  }.freeze

  # Codes that mean "no server could be used" rather than "the server failed".
  NO_SERVER_CODES = [7, 9, 12, 13, 17].freeze
  # Last-error codes after which a NULL result is still a miss: none, reconnected, a connect
  # failure the call failed over from (a call that found no server ends with 7 or 9), trace.
  BENIGN_CODES = [0, 5, 12, 17, 26].freeze
  MCM_ERR_PROTO = 14
  MESSAGE_SIZE = 512

  # The library's default handler writes every report to stderr. Exceptions carry the same
  # information, so the binding filters all levels out on load (mc_last_error still sees them).
  Native.mc_err_filter_add(Native::MCM_ERR_LVL_ALL)

  # Turns the library's stderr reports back on (true) or off (false, the default). Process-wide:
  # it changes the filter of the library's global context.
  def self.stderr_reports=(on)
    if on
      Native.mc_err_filter_del(Native::MCM_ERR_LVL_ALL)
    else
      Native.mc_err_filter_add(Native::MCM_ERR_LVL_ALL)
    end
  end

  # How an explicit server list places keys: the names mclient --distribution, the PHP binding
  # and the PostgreSQL setting memcache.distribution use, for memcache.h's MC_DIST_* values.
  DISTRIBUTIONS = { "crc32-modulo" => 0, "ketama-md5" => 1 }.freeze

  # Memcache.new                       the domain named by $MEMCACHE_DOMAIN, else "default"
  # Memcache.new(domain: "app")        the shared list of domain "app" (mcadmin(8))
  # Memcache.new(servers: [addr, ...]) a private list; addr is "host:port", "host",
  #                                    "[::1]:11211" or "/path/to/unix.sock"
  # distribution: (with servers: only) "crc32-modulo", the default, places keys as libmemcache
  #   1.4 and every other front end given the same list do; "ketama-md5" as libmemcached's
  #   ketama. A domain brings its own.
  # serializer:, compress:, compression_min_size:, decompressed_max_bytes: say how values other
  #   than Strings and Integers are stored (Memcache::Codec; dalli's flag bits).
  # tls: true, or a Hash of { ca_file:, cert_file:, key_file:, verify: }, speaks TLS to every
  #   server (servers written "tls://host:port" always are): ca_file: a PEM file of the CAs to
  #   trust (default: the system's), cert_file:/key_file: a client certificate for servers that
  #   ask for one (key_file: defaults to cert_file:), verify: false accepts any certificate
  #   (tests only). The options also apply to tls:// servers when tls: is a Hash.
  # username:, password: log every connection in (memcached -Y); or auth_file: a file of
  #   "user:password" that only its owner can read (memcached's own -Y format).
  def initialize(domain: nil, servers: nil, distribution: nil, tls: nil, username: nil,
                 password: nil, auth_file: nil, **codec)
    raise ArgumentError, "give domain: or servers:, not both" if domain && servers

    @codec = Codec.new(**codec)
    tls_options = tls_options(tls)
    login = login_options(username, password, auth_file)

    dist = nil
    if distribution
      raise ArgumentError, "distribution: goes with servers:; a domain brings its own" unless servers

      dist = DISTRIBUTIONS[distribution.to_s.downcase]
      unless dist
        raise ArgumentError,
              "unknown distribution #{distribution.inspect}: #{DISTRIBUTIONS.keys.join(' or ')}"
      end
    end
    @lock = Mutex.new
    if servers
      list = Array(servers)
      raise ArgumentError, "servers: is empty" if list.empty?

      @handle = wrap(Native.mc_new_private, "mc_new_private")
      secure(tls_options, login)
      # Chosen before the first server is added, so every key is placed by it.
      Native.mc_distribution(@handle, dist) if dist
      list.each do |addr|
        rc = Native.mc_server_add4(@handle, addr.to_s)
        next if rc.zero?

        code, msg = last_error(@handle)
        detail = code.zero? ? "mc_server_add4 returned #{rc}" : describe(code, msg)
        close
        raise ConfigError.new("cannot add server #{addr.to_s.inspect}: #{detail}", code: code)
      end
    else
      ptr = Native.mc_new2(domain&.to_s)
      if ptr.null?
        raise ConfigError, "invalid domain name #{domain.inspect}: 1-64 bytes of A-Z a-z 0-9 _ . -"
      end

      @handle = wrap(ptr, "mc_new2")
      secure(tls_options, login)
    end
  end

  # The value of key, or nil on a miss: a binary String as stored, or the object a serializer
  # stored (flag bits, see Memcache::Codec). raw: true returns the stored bytes as they are.
  def get(key, raw: false)
    found = gets(key, raw: raw)
    found && found.first
  end

  # [value, cas] of key (dalli's get_cas), or nil on a miss; cas is for #set_cas.
  def gets(key, raw: false)
    k = key_bytes(key)
    with_handle do |mc|
      with_native(k) do |kp|
        len = FFI::MemoryPointer.new(:size_t)
        flags = FFI::MemoryPointer.new(:uint16)
        cas = FFI::MemoryPointer.new(:uint64)
        val = Native.mc_agets(mc, kp, k.bytesize, len, flags, cas)
        if val.null?
          # NULL is a miss, a bad key or a failure: the key check settles the second before the
          # last error (which a bad key may leave stale) is looked at.
          raise_key_error(mc, key, kp) unless Native.key_check(kp, k.bytesize).zero?
          raise_last_error(mc)
          return nil
        end
        begin
          bytes = val.read_bytes(len.read(:size_t))
        ensure
          LibC.free(val)
        end
        [raw ? bytes : @codec.decode(bytes, flags.read(:uint16)), cas.read(:uint64)]
      end
    end
  end

  # Stores value: a String as it is, an Integer as its decimal text, any other object through
  # the serializer (flag bit 0x1), deflated when compress: is on and it is large (bit 0x2).
  # flags: are the caller's own bits, stored as given with raw: true (which takes Strings only);
  # without raw: they must leave bits 0x1 and 0x2 to the codec. true when stored.
  def set(key, value, ttl: 0, flags: 0, raw: false)
    store(:mc_set, key, value, ttl, flags, raw)
  end

  # Stores only if the key is absent: true when stored, false when it already existed.
  def add(key, value, ttl: 0, flags: 0, raw: false)
    store(:mc_add, key, value, ttl, flags, raw)
  end

  # Stores only if the key exists: true when stored, false when it was absent.
  def replace(key, value, ttl: 0, flags: 0, raw: false)
    store(:mc_replace, key, value, ttl, flags, raw)
  end

  # Stores only if the item is unchanged since the #gets that returned cas: true when stored,
  # false when it changed since, nil when it is gone (dalli's set_cas).
  def set_cas(key, value, cas, ttl: 0, flags: 0, raw: false)
    cas = Integer(cas)
    raise ArgumentError, "cas must be 0..2**64-1, got #{cas}" unless (0..0xffff_ffff_ffff_ffff).cover?(cas)

    store(:mc_cas, key, value, ttl, flags, raw, cas)
  end

  # Read-modify-write (dalli's cas): yields the current value and stores what the block returns
  # if nothing changed in between. nil when the key is absent (the block is not called), else
  # true stored or false changed since.
  def cas(key, ttl: 0)
    value, token = gets(key)
    return nil if token.nil?

    set_cas(key, yield(value), token, ttl: ttl)
  end

  # Appends bytes to the stored value (a String; memcached keeps the item's flags): true when
  # stored, false when the key is absent.
  def append(key, value)
    store(:mc_append, key, raw_string(value), 0, 0, true)
  end

  # Prepends bytes to the stored value: true when stored, false when the key is absent.
  def prepend(key, value)
    store(:mc_prepend, key, raw_string(value), 0, 0, true)
  end

  # Stores every key => value of hash as #set would (the same bytes and flags), in one call:
  # each server's keys go out together (memcached 1.6's quiet meta commands), so 100 keys cost
  # about one round trip, not 100. Every key and value is checked before anything is sent. true,
  # or raises for the keys that were not stored (the others are): the error's #failed_keys is
  # { key => reason }.
  def set_multi(hash, ttl: 0, raw: false)
    ttl = ttl_seconds(ttl)
    items = hash.map { |k, v| [k, key_bytes(k), *encode(v, 0, raw)] }
    bulk("set_multi", Native::MC_BULK_SET, items, ttl)
    true
  end

  # Gives the item a new expiry: true when touched, false when the key is absent.
  def touch(key, ttl)
    key_and_time(:mc_touch, key, ttl_seconds(ttl), Native::MC_NOT_FOUND)
  end

  # Empties every server's cache (dalli's flush without a delay); true, or raises.
  def flush
    with_handle do |mc|
      rc = Native.mc_flush_all(mc)
      raise_failure(mc, "flush", rc) unless rc.zero?
      true
    end
  end

  # Each server's version: { "host:port" => "1.6.18" }, nil for a server that did not answer.
  def version
    per_server(:mc_server_version, LibC.method(:free), &:read_string)
  end

  # true when the key was deleted, false when it did not exist.
  def delete(key)
    key_and_time(:mc_delete, key, 0, 1)
  end

  # true when the key was deleted, false when it did not exist, for each key: { key => bool },
  # in one call as #set_multi does. Raises, with #failed_keys, for the keys whose server failed.
  def delete_multi(*keys)
    items = keys.flatten.map { |k| [k, key_bytes(k), "".b, 0] }
    bulk("delete_multi", Native::MC_BULK_DELETE, items, 0).transform_values do |result|
      result == Native::MC_BULK_DONE
    end
  end

  # Adds by to the counter (64-bit, as memcached keeps it); the new value, or nil if the key is
  # absent. initial: (dalli's default) stores that value with ttl: when the key is absent and
  # returns it, as dalli does.
  def incr(key, by = 1, initial: nil, ttl: 0)
    counter(:mc_incr64, key, by, initial, ttl)
  end

  # Subtracts by from the counter (memcached stops at 0); the new value, or nil if absent.
  # initial: and ttl: as for #incr.
  def decr(key, by = 1, initial: nil, ttl: 0)
    counter(:mc_decr64, key, by, initial, ttl)
  end

  # The values of the keys that were found, as { key => value } (values as #get gives them), in
  # one round trip per server. Keys are returned as given (Symbols become Strings).
  def get_multi(*keys, raw: false)
    keys = keys.flatten.map { |k| [k.is_a?(Symbol) ? k.to_s : k, key_bytes(k)] }.uniq(&:last)
    return {} if keys.empty?

    with_handle do |mc|
      req = Native.mc_req_new
      raise Error, "mc_req_new failed" if req.null?

      begin
        results = keys.map do |given, k|
          res = with_native(k) do |kp|
            # mc_req_add() reports a bad key to the global context only, not to the handle.
            raise_key_error(nil, given, kp) unless Native.key_check(kp, k.bytesize).zero?
            Native.mc_req_add(req, kp, k.bytesize)
          end
          raise Error, "mc_req_add failed (out of memory)" if res.null?

          [given, res]
        end
        Native.mc_get(mc, req)
        found = {}
        results.each do |k, res|
          next if Native.mc_res_found(res).zero?

          r = Native::Res.new(res)
          bytes = r[:bytes].zero? ? "".b : r[:val].read_bytes(r[:bytes])
          found[k] = raw ? bytes : @codec.decode(bytes, r[:flags])
        end
        raise_last_error(mc) if found.empty?
        found
      ensure
        Native.mc_req_free(req)
      end
    end
  end

  # Statistics of every server: { "host:port" => { "pid" => 123, "version" => "1.6.18", ... } },
  # nil for a server that did not answer. rusage_user and rusage_system are Float seconds.
  def stats
    per_server(:mc_server_stats, Native.method(:mc_server_stats_free)) do |s|
      stats_hash(Native::ServerStats.new(s))
    end
  end

  # The handle's current servers as "host:port" (for a domain: the list as of now).
  def servers
    with_handle { |mc| each_server(mc).map(&:first) }
  end

  # Closes the connections and frees the handle (also done by the garbage collector).
  def close
    @lock.synchronize do
      @handle&.free
      @handle = nil
    end
    nil
  end

  def closed?
    @handle.nil?
  end

  private

  TLS_KEYS = %i[ca_file cert_file key_file verify].freeze

  # tls: as a Hash of TLS_KEYS (nil when TLS is not asked for).
  def tls_options(tls)
    case tls
    when nil, false then nil
    when true then {}
    when Hash
      unknown = tls.keys.map(&:to_sym) - TLS_KEYS
      raise ArgumentError, "unknown tls: option #{unknown.first.inspect}: #{TLS_KEYS.join(', ')}" if unknown.any?

      tls.transform_keys(&:to_sym)
    else raise ArgumentError, "tls: is true or a Hash of #{TLS_KEYS.join(', ')}, not #{tls.class}"
    end
  end

  # [call, args] of the login asked for, nil for none.
  def login_options(username, password, auth_file)
    if auth_file
      raise ArgumentError, "give auth_file: or username:/password:, not both" if username || password

      return [:mc_auth_file, [auth_file.to_s]]
    end
    return nil unless username || password
    raise ArgumentError, "username: and password: go together" unless username && password

    [:mc_auth, [username.to_s, password.to_s]]
  end

  # Applies the TLS and login options to the new handle; a refused one (an unreadable CA file,
  # a credentials file others can read) closes it and raises ConfigError with the library's
  # reason.
  def secure(tls, login)
    calls = []
    if tls
      calls << [:mc_tls, [1]]
      calls << [:mc_tls_ca, [tls[:ca_file].to_s]] if tls[:ca_file]
      calls << [:mc_tls_cert, [tls[:cert_file].to_s, (tls[:key_file] || tls[:cert_file]).to_s]] if tls[:cert_file]
      calls << [:mc_tls_insecure, [1]] if tls.key?(:verify) && !tls[:verify]
    end
    calls << login if login
    calls.each do |fn, args|
      next if Native.public_send(fn, @handle, *args).zero?

      code, msg = last_error(@handle)
      close
      raise ConfigError.new("#{fn}: #{describe(code, msg)}", code: code)
    end
  end

  def wrap(ptr, what)
    raise Error, "#{what} failed (out of memory)" if ptr.null?

    FFI::AutoPointer.new(ptr, Native.method(:mc_free))
  end

  def with_handle
    @lock.synchronize do
      raise ClosedError, "memcache handle is closed" unless @handle

      yield @handle
    end
  end

  # Copies bytes into native memory for the duration of the block.
  def with_native(bytes)
    ptr = FFI::MemoryPointer.new(:char, [bytes.bytesize, 1].max, false)
    ptr.put_bytes(0, bytes)
    yield ptr
  ensure
    ptr&.free
  end

  def key_bytes(key)
    case key
    when String then key.b
    when Symbol then key.to_s.b
    else raise TypeError, "key must be a String or Symbol, not #{key.class}"
    end
  end

  def raw_string(value)
    case value
    when String then value
    when Integer then value.to_s
    else raise TypeError, "value must be a String or Integer, not #{value.class}"
    end
  end

  def ttl_seconds(ttl)
    ttl = Integer(ttl)
    raise ArgumentError, "ttl must be >= 0, got #{ttl}" if ttl.negative?

    ttl
  end

  # [bytes, flags] to store: raw Strings (and Integers) with the caller's flags as they are,
  # else through the codec, whose bits the caller's flags must not claim.
  def encode(value, flags, raw)
    flags = Integer(flags)
    raise ArgumentError, "flags must be 0..65535, got #{flags}" unless (0..0xffff).cover?(flags)
    return [raw_string(value).b, flags] if raw

    if flags.anybits?(Codec::FLAG_SERIALIZED | Codec::FLAG_COMPRESSED)
      raise ArgumentError, format("flags 0x%<f>x use bits 0x1/0x2 (serialized, compressed); " \
                                  "pass raw: true to store them as given", f: flags)
    end
    @codec.encode(value, flags)
  end

  def store(fn, key, value, ttl, flags, raw, *extra)
    k = key_bytes(key)
    v, flags = encode(value, flags, raw)
    ttl = ttl_seconds(ttl)

    with_handle do |mc|
      with_native(k) do |kp|
        with_native(v) do |vp|
          rc = Native.public_send(fn, mc, kp, k.bytesize, vp, v.bytesize, ttl, flags, *extra)
          verdict(mc, fn, key, kp, rc, fn == :mc_cas ? CAS_MISSES : STORE_MISSES)
        end
      end
    end
  end

  # The counter call, then for an absent key with initial: an add of that value; an add that
  # loses a race to another writer counts again on what the other one stored.
  def counter(fn, key, by, initial, ttl)
    value = counter_once(fn, key, by)
    return value if value || initial.nil?

    initial = Integer(initial)
    raise ArgumentError, "initial must be >= 0, got #{initial}" if initial.negative?
    return initial if add(key, initial, ttl: ttl)

    counter_once(fn, key, by)
  end

  def counter_once(fn, key, by)
    k = key_bytes(key)
    by = Integer(by)
    raise ArgumentError, "by must be 0..2**64-1, got #{by}" unless (0..0xffff_ffff_ffff_ffff).cover?(by)

    with_handle do |mc|
      with_native(k) do |kp|
        out = FFI::MemoryPointer.new(:uint64)
        rc = Native.public_send(fn, mc, kp, k.bytesize, by, out)
        case rc
        when 0 then out.read(:uint64)
        when Native::MC_NOT_FOUND then nil
        when -9 then raise_key_error(mc, key, kp)
        else raise_failure(mc, fn.to_s.delete_prefix("mc_").delete_suffix("64"), rc)
        end
      end
    end
  end

  # What a failed key of a bulk call says, by its MC_BULK_* result.
  BULK_REASONS = {
    Native::MC_BULK_NOT_STORED => "not stored",
    Native::MC_BULK_REFUSED => "refused by the server",
    Native::MC_BULK_FAILED => "its server failed (it may or may not have been written)"
  }.freeze

  # One mc_bulk() of items ([given key, key bytes, value bytes, flags] each) with expiry ttl:
  # { key => MC_BULK_* result } (keys as given, Symbols as Strings, a repeated key's last
  # result). Bad keys raise InvalidKey before anything is sent. Results other than done and
  # not found raise, naming every such key and the library's report of the call.
  def bulk(op_name, op, items, ttl)
    return {} if items.empty?

    size = Native::Bulk.size
    structs = FFI::MemoryPointer.new(size, items.size, true)
    # One native copy of every key and value (the call runs without the GVL).
    data = FFI::MemoryPointer.new(:char, [items.sum { |_, k, v, _| k.bytesize + v.bytesize }, 1].max, false)
    offset = 0
    items.each_with_index do |(given, k, v, flags), i|
      item = Native::Bulk.new(structs + i * size)
      [[:key, :key_len, k], [:val, :val_len, v]].each do |ptr_field, len_field, bytes|
        data.put_bytes(offset, bytes)
        item[ptr_field] = data + offset
        item[len_field] = bytes.bytesize
        offset += bytes.bytesize
      end
      raise_key_error(nil, given, item[:key]) unless Native.key_check(item[:key], k.bytesize).zero?

      item[:flags] = flags
      item[:exptime] = ttl
    end
    with_handle do |mc|
      Native.mc_bulk(mc, op, structs, items.size)
      results = items.each_with_index.to_h do |(given, _), i|
        [given.is_a?(Symbol) ? given.to_s : given, Native::Bulk.new(structs + i * size)[:result]]
      end
      failed = results.reject { |_, r| [Native::MC_BULK_DONE, Native::MC_BULK_NOT_FOUND].include?(r) }
      raise_bulk_failure(mc, op_name, failed, items.size) unless failed.empty?
      results
    end
  end

  def raise_bulk_failure(mc, op_name, failed, total)
    code, msg = last_error(mc)
    reasons = failed.transform_values { |r| BULK_REASONS.fetch(r, "result #{r}") }
    listed = reasons.first(5).map { |k, why| "#{shown(k)} (#{why})" }.join(", ")
    listed += ", ..." if reasons.size > 5
    detail = code.zero? ? "" : ": #{describe(code, msg)}"
    klass = failed.values.all?(Native::MC_BULK_FAILED) ? error_class(code) : ServerError
    raise klass.new("#{op_name}: #{failed.size} of #{total} keys failed: #{listed}#{detail}",
                    code: code, failed_keys: reasons)
  end

  # [code, message] of the handle's last call.
  def last_error(mc)
    buf = FFI::MemoryPointer.new(:char, MESSAGE_SIZE)
    code = Native.mc_last_error(mc, buf, MESSAGE_SIZE)
    [code, buf.read_string]
  end

  def describe(code, msg)
    text = ERROR_TEXT.fetch(code, "error #{code}")
    return text if msg.empty?

    # mc_last_error()'s message already opens with the description.
    msg.start_with?(text) ? msg : "#{text}: #{msg}"
  end

  def shown(key)
    s = key.to_s
    s = "#{s[0, 40]}...(#{s.bytesize} bytes)" if s.bytesize > 48
    s.inspect
  end

  # Raises InvalidKey with the library's message when the handle recorded one, else with the
  # reason the library's key check gives.
  def raise_key_error(mc, key, key_ptr)
    code, msg = mc ? last_error(mc) : [0, ""]
    reason = msg.delete_prefix("invalid key").delete_prefix(":").strip
    if code != MCM_ERR_PROTO || !msg.start_with?("invalid key") || reason.empty?
      code = MCM_ERR_PROTO
      reason = key_reason(key, Native.key_check(key_ptr, key_bytes(key).bytesize))
    end
    raise InvalidKey.new("invalid key #{shown(key)}: #{reason}", code: code)
  end

  def key_reason(key, pos)
    bytes = key_bytes(key)
    if bytes.empty? then "empty"
    elsif bytes.bytesize > 250 then "longer than 250 bytes"
    elsif pos.positive? && pos <= bytes.bytesize
      format("byte %<at>d (0x%<b>02x) is whitespace or a control byte",
             at: pos, b: bytes.getbyte(pos - 1))
    else "refused by the key check"
    end
  end

  # After a call whose result cannot tell a miss from a failure: raise if the library reported
  # a failure. A plain miss leaves the last error at 0; a call that failed over from a dead
  # server to a live one ends with the (informational) connect report of the dead one.
  def raise_last_error(mc)
    code, msg = last_error(mc)
    return if BENIGN_CODES.include?(code)

    raise error_class(code).new(describe(code, msg), code: code)
  end

  # After a call that returned the failure rc: raise with what the library recorded.
  def raise_failure(mc, op, rc)
    code, msg = last_error(mc)
    detail = if !code.zero? then describe(code, msg)
             elsif rc == -1 then "no server available"
             else "returned #{rc}"
             end
    klass = rc == -1 && code.zero? ? NoServer : error_class(code)
    raise klass.new("#{op}: #{detail}", code: code)
  end

  def error_class(code)
    NO_SERVER_CODES.include?(code) ? NoServer : ServerError
  end

  # What a storage call's "not stored" results mean: 1 not stored (add of a present key, replace
  # or append of an absent one); for cas also changed since (false) and gone (nil).
  STORE_MISSES = { 1 => false }.freeze
  CAS_MISSES = { 1 => false, Native::MC_EXISTS => false, Native::MC_NOT_FOUND => nil }.freeze

  # The answer of a call on one key: true for 0, misses[rc] for the codes that mean "not done",
  # else raises (InvalidKey for -9, else what the library recorded).
  def verdict(mc, fn, key, key_ptr, rc, misses)
    return true if rc.zero?
    return misses[rc] if misses.key?(rc)

    raise_key_error(mc, key, key_ptr) if rc == -9
    raise_failure(mc, fn.to_s.delete_prefix("mc_"), rc)
  end

  # A call on a key and a time (delete's hold, touch's expiry): true when done, false when it
  # returned absent (its code for a missing key), else raises.
  def key_and_time(fn, key, time, absent)
    k = key_bytes(key)
    with_handle do |mc|
      with_native(k) do |kp|
        verdict(mc, fn, key, kp, Native.public_send(fn, mc, kp, k.bytesize, time), { absent => false })
      end
    end
  end

  # { "host:port" => yield(buffer) } from a call made per server that returns a buffer the
  # library allocated (NULL, giving nil, when the server did not answer), released afterwards.
  def per_server(fetch, release)
    with_handle do |mc|
      each_server(mc).to_h do |name, ms|
        ptr = Native.public_send(fetch, mc, ms)
        next [name, nil] if ptr.null?

        begin
          [name, yield(ptr)]
        ensure
          release.call(ptr)
        end
      end
    end
  end

  # [["host:port", struct memcache_server *], ...] in the handle's order.
  def each_server(mc)
    # mc_server_find() brings a domain handle's array up to date with the shared list (the
    # library does so at the start of every operation); it does no I/O.
    Native.mc_server_find(mc, 0)
    h = Native::Handle.new(mc)
    n = h[:num_servers]
    return [] if n.zero? || h[:servers].null?

    h[:servers].read_array_of_pointer(n).map do |ms|
      s = Native::Server.new(ms)
      host = s[:hostname].to_s
      host = "[#{host}]" if host.include?(":")
      name = host.start_with?("/") ? host : "#{host}:#{s[:port]}"
      [name, ms]
    end
  end

  def stats_hash(s)
    {
      "pid" => s[:pid],
      "uptime" => s[:uptime],
      "time" => s[:time],
      "version" => s[:version],
      "rusage_user" => seconds(s[:rusage_user]),
      "rusage_system" => seconds(s[:rusage_system]),
      "curr_items" => s[:curr_items],
      "total_items" => s[:total_items],
      "bytes" => s[:bytes],
      "curr_connections" => s[:curr_connections],
      "total_connections" => s[:total_connections],
      "connection_structures" => s[:connection_structures],
      "cmd_get" => s[:cmd_get],
      "cmd_set" => s[:cmd_set],
      "get_hits" => s[:get_hits],
      "get_misses" => s[:get_misses],
      "bytes_read" => s[:bytes_read],
      "bytes_written" => s[:bytes_written],
      "limit_maxbytes" => s[:limit_maxbytes]
    }
  end

  def seconds(tv)
    tv[:tv_sec] + tv[:tv_usec] / 1_000_000.0
  end
end
