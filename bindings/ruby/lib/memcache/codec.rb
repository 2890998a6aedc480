# frozen_string_literal: true

require "zlib"

class Memcache
  # How values become stored bytes and flags, laid out as dalli lays them out so a site can move
  # one process at a time between dalli and this gem:
  #
  #   flag bit 0x1  serialized: the bytes are serializer.dump(value) (Marshal by default; JSON
  #                 when configured), read back with serializer.load
  #   flag bit 0x2  compressed: the bytes (after serializing) are zlib-deflated
  #                 (Zlib::Deflate.deflate, RFC 1950), as dalli's default compressor writes them
  #
  # Strings are stored as they are (no bit), as dalli stores them with raw: true; dalli's default
  # client marshals strings too, which this gem reads back through bit 0x1. Integers are stored as
  # their decimal text so that incr/decr work on them. Every other object is serialized.
  class Codec
    FLAG_SERIALIZED = 0x1
    FLAG_COMPRESSED = 0x2

    INFLATE_SLICE = 64 * 1024

    attr_reader :serializer

    # serializer: Marshal (default), JSON, :marshal, :json, an object with dump/load, or nil for
    #   none (only Strings and Integers are stored; a serialized value read back is an error).
    # compress: deflate stored values of at least compression_min_size bytes (dalli's 4 KiB).
    # decompressed_max_bytes: a compressed value that inflates past this raises ValueError
    #   instead of filling memory (dalli's default, 128 MiB).
    def initialize(serializer: Marshal, compress: false, compression_min_size: 4096,
                   decompressed_max_bytes: 128 * 1024 * 1024)
      @serializer = resolve(serializer)
      @compress = compress ? true : false
      @min_size = Integer(compression_min_size)
      @max_bytes = Integer(decompressed_max_bytes)
    end

    # [bytes, flags] for value; user flags must leave dalli's two bits to the codec.
    def encode(value, flags)
      bytes, bits = case value
                    when String then [value.b, 0]
                    when Integer then [value.to_s.b, 0]
                    else [dump(value), FLAG_SERIALIZED]
                    end
      if @compress && bytes.bytesize >= @min_size
        bytes = Zlib::Deflate.deflate(bytes)
        bits |= FLAG_COMPRESSED
      end
      [bytes, flags | bits]
    end

    # The value stored as bytes with flags.
    def decode(bytes, flags)
      bytes = inflate(bytes) if flags.anybits?(FLAG_COMPRESSED)
      return bytes unless flags.anybits?(FLAG_SERIALIZED)
      raise ValueError, "the value is serialized (flag 0x1) and the handle has no serializer" unless @serializer

      begin
        @serializer.load(bytes)
      rescue StandardError => e
        raise ValueError, "cannot load a serialized value with #{@serializer}: #{e.message}"
      end
    end

    private

    def resolve(serializer)
      case serializer
      when nil then nil
      when :marshal, "marshal" then Marshal
      when :json, "json"
        require "json"
        JSON
      else
        return serializer if serializer.respond_to?(:dump) && serializer.respond_to?(:load)

        raise ArgumentError,
              "serializer: must be Marshal, JSON, :marshal, :json or respond to dump and load, " \
              "not #{serializer.inspect}"
      end
    end

    def dump(value)
      unless @serializer
        raise TypeError, "value must be a String or Integer without a serializer, not #{value.class}"
      end

      serialize(value)
    end

    def serialize(value)
      @serializer.dump(value).b
    rescue StandardError => e
      raise ValueError, "cannot serialize a #{value.class} with #{@serializer}: #{e.message}"
    end

    # Inflates in slices so that a small value that would expand past the limit stops early.
    def inflate(bytes)
      z = Zlib::Inflate.new
      out = String.new(encoding: Encoding::BINARY)
      0.step(bytes.bytesize - 1, INFLATE_SLICE) do |pos|
        append_bounded(out, z.inflate(bytes.byteslice(pos, INFLATE_SLICE)) { |c| append_bounded(out, c) })
      end
      append_bounded(out, z.finish)
      z.close
      out
    rescue Zlib::Error => e
      # A stream cut short is left to the garbage collector: closing it makes zlib warn.
      raise ValueError, "cannot inflate a compressed value: #{e.message}"
    end

    def append_bounded(out, chunk)
      out << chunk if chunk
      return if out.bytesize <= @max_bytes

      raise ValueError, "compressed value inflates past #{@max_bytes} bytes (decompressed_max_bytes)"
    end
  end
end
