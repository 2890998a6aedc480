<?php

declare(strict_types=1);

namespace Libmemcache;

/**
 * How PHP values become stored bytes and flags, laid out as the php-memcached extension lays
 * them out (its 3.x flag layout), so one process at a time can move between the two:
 *
 *   bits 0-3   the type: 0 string (the bytes as they are), 1 int (decimal text), 2 float
 *              (floatText(); "Infinity", "-Infinity", "NaN"), 3 bool ("1" or
 *              ""), 4 serialize(), 5 igbinary, 6 JSON, 7 msgpack
 *   bit 4      0x10 compressed; with it bit 5 (0x20) zlib or bit 6 (0x40) FastLZ. The payload
 *              is the uncompressed length as 4 bytes little-endian, then the zlib stream
 *              (RFC 1950, as gzcompress() writes it) or the FastLZ block
 *   bits 16-31 php-memcached's user flags: libmemcache's flags are 16 bits, so they are not kept
 *
 * Values are written with zlib compression; FastLZ (php-memcached's default) is read too, and
 * so is the older layout of a bare zlib stream with only bit 4 set.
 */
final class Codec
{
    public const TYPE_MASK = 0xf;
    public const TYPE_STRING = 0;
    public const TYPE_LONG = 1;
    public const TYPE_DOUBLE = 2;
    public const TYPE_BOOL = 3;
    public const TYPE_SERIALIZED = 4;
    public const TYPE_IGBINARY = 5;
    public const TYPE_JSON = 6;
    public const TYPE_MSGPACK = 7;

    public const COMPRESSED = 0x10;
    public const COMPRESSION_ZLIB = 0x20;
    public const COMPRESSION_FASTLZ = 0x40;

    /** php-memcached's SERIALIZER_* values. */
    public const SERIALIZER_PHP = 1;
    public const SERIALIZER_IGBINARY = 2;
    public const SERIALIZER_JSON = 3;
    public const SERIALIZER_JSON_ARRAY = 4;
    public const SERIALIZER_MSGPACK = 5;

    /**
     * @param int $serializer       how arrays and objects are stored (SERIALIZER_*)
     * @param bool $compression     compress payloads of at least $threshold bytes
     * @param int $threshold        php-memcached's memcached.compression_threshold default
     * @param float $factor         keep the compressed form only when it is at least this many
     *                              times smaller (memcached.compression_factor)
     * @param int $maxInflated      a compressed value that claims or inflates to more bytes than
     *                              this is refused instead of filling memory
     */
    public function __construct(
        public int $serializer = self::SERIALIZER_PHP,
        public bool $compression = true,
        public int $threshold = 2000,
        public float $factor = 1.3,
        public int $maxInflated = 64 * 1024 * 1024
    ) {
        self::checkSerializer($serializer);
    }

    public static function checkSerializer(int $serializer): void
    {
        $available = match ($serializer) {
            self::SERIALIZER_PHP, self::SERIALIZER_JSON, self::SERIALIZER_JSON_ARRAY => true,
            self::SERIALIZER_IGBINARY => function_exists('igbinary_serialize'),
            self::SERIALIZER_MSGPACK => function_exists('msgpack_pack'),
            default => throw new \InvalidArgumentException("unknown serializer $serializer"),
        };
        if (!$available) {
            throw new \InvalidArgumentException("serializer $serializer needs its PHP extension (igbinary or msgpack)");
        }
    }

    /** @return array{string, int} the payload and its flags */
    public function encode(mixed $value): array
    {
        [$bytes, $flags] = match (true) {
            is_string($value) => [$value, self::TYPE_STRING],
            is_int($value) => [(string) $value, self::TYPE_LONG],
            is_float($value) => [self::floatText($value), self::TYPE_DOUBLE],
            is_bool($value) => [$value ? '1' : '', self::TYPE_BOOL],
            default => $this->serialize($value),
        };
        if ($this->compression && strlen($bytes) >= $this->threshold) {
            $packed = gzcompress($bytes);
            if ($packed !== false && strlen($bytes) >= (4 + strlen($packed)) * $this->factor) {
                return [pack('V', strlen($bytes)) . $packed, $flags | self::COMPRESSED | self::COMPRESSION_ZLIB];
            }
        }
        return [$bytes, $flags];
    }

    public function decode(string $bytes, int $flags): mixed
    {
        if ($flags & self::COMPRESSED) {
            $bytes = $this->inflate($bytes, $flags);
        }
        $type = $flags & self::TYPE_MASK;
        return match ($type) {
            self::TYPE_STRING => $bytes,
            self::TYPE_LONG => self::longValue($bytes),
            self::TYPE_DOUBLE => self::floatValue($bytes),
            self::TYPE_BOOL => $bytes !== '' && $bytes[0] === '1',
            self::TYPE_SERIALIZED => $this->unserialize($bytes),
            self::TYPE_JSON => $this->jsonValue($bytes),
            self::TYPE_IGBINARY => self::extensionValue('igbinary_unserialize', 'igbinary', $bytes),
            self::TYPE_MSGPACK => self::extensionValue('msgpack_unpack', 'msgpack', $bytes),
            default => throw self::payloadError("unknown value type $type (flags 0x" . dechex($flags) . ')'),
        };
    }

    /**
     * The float as php-memcached writes it (its g_fmt): the fewest digits that read back as the
     * same float; fixed notation without a leading 0 or a trailing .0 (".1", "100") unless the
     * decimal point would sit more than 3 places before the first digit or more than 5 after the
     * last, then "1.5e+300", "2.5e-05" (a signed exponent of at least two digits).
     */
    public static function floatText(float $value): string
    {
        if (is_nan($value)) {
            return 'NaN';
        }
        if (is_infinite($value)) {
            return $value > 0 ? 'Infinity' : '-Infinity';
        }
        $sign = ($value < 0 || ($value == 0 && fdiv(1, $value) < 0)) ? '-' : '';
        if ($value == 0) {
            return "{$sign}0";
        }
        $abs = abs($value);
        for ($precision = 0; $precision < 17; $precision++) {
            $text = sprintf("%.{$precision}e", $abs);
            if ((float) $text === $abs) {
                break;
            }
        }
        preg_match('/^(\d)(?:\.(\d+))?e([-+]\d+)$/', $text, $m);
        $digits = rtrim($m[1] . ($m[2] ?? ''), '0');
        $n = strlen($digits);
        $point = (int) $m[3] + 1; // digits before the decimal point
        if ($point <= -4 || $point > $n + 5) {
            $exponent = $point - 1;
            $mantissa = $n > 1 ? $digits[0] . '.' . substr($digits, 1) : $digits;
            return sprintf('%s%se%s%02d', $sign, $mantissa, $exponent < 0 ? '-' : '+', abs($exponent));
        }
        if ($point <= 0) {
            return $sign . '.' . str_repeat('0', -$point) . $digits;
        }
        if ($point >= $n) {
            return $sign . $digits . str_repeat('0', $point - $n);
        }
        return $sign . substr($digits, 0, $point) . '.' . substr($digits, $point);
    }

    /** @return array{string, int} */
    private function serialize(mixed $value): array
    {
        try {
            return match ($this->serializer) {
                self::SERIALIZER_JSON, self::SERIALIZER_JSON_ARRAY => [json_encode($value, JSON_THROW_ON_ERROR), self::TYPE_JSON],
                self::SERIALIZER_IGBINARY => [(string) igbinary_serialize($value), self::TYPE_IGBINARY],
                self::SERIALIZER_MSGPACK => [(string) msgpack_pack($value), self::TYPE_MSGPACK],
                default => [serialize($value), self::TYPE_SERIALIZED],
            };
        } catch (\Throwable $e) {
            // Closures, resources in JSON and the like.
            throw new ValueException(
                'cannot serialize a ' . get_debug_type($value) . ': ' . $e->getMessage(),
                Memcached::RES_PAYLOAD_FAILURE,
                0,
                $e
            );
        }
    }

    private function inflate(string $bytes, int $flags): string
    {
        if (!($flags & (self::COMPRESSION_ZLIB | self::COMPRESSION_FASTLZ))) {
            // Before php-memcached 2.0: a bare zlib stream, no length in front.
            return $this->gzuncompress($bytes, $this->maxInflated, $flags);
        }
        if (strlen($bytes) < 4) {
            throw self::payloadError('compressed value shorter than its 4-byte length');
        }
        $length = unpack('V', $bytes)[1];
        if ($length > $this->maxInflated) {
            throw self::payloadError("compressed value claims $length bytes, more than the limit of {$this->maxInflated}");
        }
        $body = substr($bytes, 4);
        $out = ($flags & self::COMPRESSION_FASTLZ)
            ? FastLz::decompress($body, $length)
            : $this->gzuncompress($body, $length, $flags);
        if (strlen($out) !== $length) {
            throw self::payloadError('compressed value inflates to ' . strlen($out) . " bytes, not the $length it claims");
        }
        return $out;
    }

    private function gzuncompress(string $bytes, int $max, int $flags): string
    {
        // gzuncompress() warns as well as failing; the exception says it.
        $out = @gzuncompress($bytes, max($max, 1));
        if ($out === false) {
            throw self::payloadError(sprintf('cannot inflate a zlib value (flags 0x%x) within %d bytes', $flags, $max));
        }
        return $out;
    }

    private static function longValue(string $bytes): int|string
    {
        // memcached's incr and decr keep the digits only; older servers pad with spaces.
        $text = rtrim($bytes, ' ');
        if (preg_match('/\A-?[0-9]{1,20}\z/', $text) !== 1) {
            throw self::payloadError('an int value that is not decimal digits: ' . self::shown($bytes));
        }
        $int = filter_var($text, FILTER_VALIDATE_INT);
        // A counter past PHP_INT_MAX (memcached counts to 2**64-1) stays a decimal string.
        return $int === false ? ltrim($text, '0') : $int;
    }

    private static function floatValue(string $bytes): float
    {
        return match ($bytes) {
            'Infinity' => INF,
            '-Infinity' => -INF,
            'NaN' => NAN,
            default => is_numeric($bytes) ? (float) $bytes : throw self::payloadError('a float value that is not a number: ' . self::shown($bytes)),
        };
    }

    private function unserialize(string $bytes): mixed
    {
        if ($bytes === serialize(false)) {
            return false;
        }
        $value = @unserialize($bytes);
        if ($value === false) {
            throw self::payloadError('cannot unserialize a value: ' . self::shown($bytes));
        }
        return $value;
    }

    private function jsonValue(string $bytes): mixed
    {
        try {
            return json_decode($bytes, $this->serializer === self::SERIALIZER_JSON_ARRAY, 512, JSON_THROW_ON_ERROR);
        } catch (\JsonException $e) {
            throw self::payloadError('cannot decode a JSON value: ' . $e->getMessage());
        }
    }

    private static function extensionValue(string $function, string $extension, string $bytes): mixed
    {
        if (!function_exists($function)) {
            throw self::payloadError("the value is stored with $extension, and the $extension extension is not loaded");
        }
        return $function($bytes);
    }

    private static function shown(string $bytes): string
    {
        $s = strlen($bytes) > 40 ? substr($bytes, 0, 32) . '...(' . strlen($bytes) . ' bytes)' : $bytes;
        return '"' . addcslashes($s, "\0..\37\"\\\177..\377") . '"';
    }

    private static function payloadError(string $message): ValueException
    {
        return new ValueException($message, Memcached::RES_PAYLOAD_FAILURE);
    }
}
