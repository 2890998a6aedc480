<?php

declare(strict_types=1);

namespace Libmemcache;

/**
 * Reads FastLZ blocks, php-memcached's default compression (memcached.compression_type=fastlz),
 * so values it stored compressed read back here. Only decompression: values are written with
 * zlib, which php-memcached reads whatever its own setting.
 *
 * A block is a series of instructions; the top 3 bits of the first byte give the level (0 for
 * level 1, 1 for level 2) and are otherwise ignored. An instruction byte below 32 is a literal
 * run of (byte + 1) bytes; above, its top 3 bits give the match length - 2 (7 means more length
 * bytes follow: one at level 1, a run ended by a byte below 255 at level 2), its low 5 bits and
 * the next byte the distance - 1; at level 2 a distance of 31 * 256 + 255 is followed by two
 * bytes of a further distance past 8191.
 */
final class FastLz
{
    private const FAR_DISTANCE = 8191;

    public static function decompress(string $in, int $length): string
    {
        $n = strlen($in);
        if ($n === 0) {
            return '';
        }
        $level = (ord($in[0]) >> 5) + 1;
        if ($level !== 1 && $level !== 2) {
            throw self::error("unknown FastLZ level $level");
        }
        $out = '';
        $ip = 0;
        $ctrl = ord($in[$ip++]) & 31;
        while (true) {
            if ($ctrl < 32) {
                $run = $ctrl + 1;
                if ($ip + $run > $n) {
                    throw self::error('literal run past the end of the block');
                }
                $out .= substr($in, $ip, $run);
                $ip += $run;
            } else {
                $len = ($ctrl >> 5) - 1;
                $high = ($ctrl & 31) << 8;
                if ($len === 6) {
                    do {
                        $code = self::byte($in, $ip++);
                        $len += $code;
                    } while ($level === 2 && $code === 255);
                }
                $code = self::byte($in, $ip++);
                $distance = $high + $code + 1;
                if ($level === 2 && $code === 255 && $high === 31 << 8) {
                    $distance = (self::byte($in, $ip) << 8) + self::byte($in, $ip + 1) + self::FAR_DISTANCE + 1;
                    $ip += 2;
                }
                $len += 3;
                $start = strlen($out) - $distance;
                if ($start < 0) {
                    throw self::error('match before the start of the output');
                }
                // A match may overlap what it writes: it repeats the last $distance bytes.
                $piece = substr($out, $start, min($distance, $len));
                $out .= $distance >= $len ? $piece : substr(str_repeat($piece, intdiv($len, $distance) + 1), 0, $len);
            }
            if (strlen($out) > $length) {
                throw self::error("block inflates past the $length bytes it claims");
            }
            if ($ip >= $n) {
                return $out;
            }
            $ctrl = ord($in[$ip++]);
        }
    }

    private static function byte(string $in, int $at): int
    {
        if ($at >= strlen($in)) {
            throw self::error('match past the end of the block');
        }
        return ord($in[$at]);
    }

    private static function error(string $what): ValueException
    {
        return new ValueException("cannot inflate a FastLZ value: $what", Memcached::RES_PAYLOAD_FAILURE);
    }
}
