<?php

declare(strict_types=1);

use Libmemcache\Codec;
use Libmemcache\FastLz;
use Libmemcache\ValueException;
use PHPUnit\Framework\TestCase;

/**
 * The exact bytes and flags of php-memcached's layout (its php_memcached.c: the type in bits
 * 0-3, compression in bits 4-6, a compressed payload led by its length as 4 bytes
 * little-endian), and refusal of hostile payloads. No server needed.
 */
final class CodecTest extends TestCase
{
    public function testScalarLayouts(): void
    {
        $c = new Codec();
        $this->assertSame(['abc', 0], $c->encode('abc'));
        $this->assertSame(['-42', 1], $c->encode(-42));
        $this->assertSame(['1.5', 2], $c->encode(1.5));
        $this->assertSame(['.1', 2], $c->encode(0.1));
        $this->assertSame(['Infinity', 2], $c->encode(INF));
        $this->assertSame(['-Infinity', 2], $c->encode(-INF));
        $this->assertSame(['NaN', 2], $c->encode(NAN));
        $this->assertSame(['1', 3], $c->encode(true));
        $this->assertSame(['', 3], $c->encode(false));
        $this->assertSame([serialize(['a' => 1]), 4], $c->encode(['a' => 1]));
        $this->assertSame([serialize(null), 4], $c->encode(null));
    }

    /** The text php-memcached 3.2 writes for each (read back raw from a server it wrote to). */
    public function testFloatTextAsPhpMemcachedWritesIt(): void
    {
        $cases = [
            '3.14159' => 3.14159, '1e-300' => 1e-300, '.1' => 0.1, '1' => 1.0, '1e+25' => 1e25,
            '1e+06' => 1e6, '100000' => 1e5, '123456' => 123456.0, '.001' => 0.001, '.0001' => 0.0001,
            '-2.5e-05' => -2.5e-5, '1.5e+300' => 1.5e300, '1e+21' => 1e21, '100' => 100.0,
            '12345678901234567000' => 12345678901234567890.0, '-0' => -0.0, '0' => 0.0,
            '5e-324' => 5e-324, '1.7976931348623157e+308' => 1.7976931348623157e308, '-1.5' => -1.5,
            '2.5e-07' => 2.5e-7, '1234567' => 1234567.0,
        ];
        foreach ($cases as $text => $float) {
            $this->assertSame((string) $text, Codec::floatText($float)); // "1" and the like are int keys
        }
    }

    public function testFloatsReadBackExactly(): void
    {
        $c = new Codec();
        foreach ([0.1 + 0.2, 1e300, -2.5e-310, 123456789.123456789, 1.0, -0.0, 1e-5, 98765.4321e10] as $f) {
            [$bytes, $flags] = $c->encode($f);
            $this->assertSame($f, $c->decode($bytes, $flags), $bytes);
        }
        $this->assertNan($c->decode('NaN', 2));
        $this->assertSame(INF, $c->decode('Infinity', 2));
    }

    public function testJsonLayout(): void
    {
        $c = new Codec(serializer: Codec::SERIALIZER_JSON);
        $this->assertSame(['{"a":[1,2]}', 6], $c->encode(['a' => [1, 2]]));
        $this->assertEquals((object) ['a' => [1, 2]], $c->decode('{"a":[1,2]}', 6));
        $arrays = new Codec(serializer: Codec::SERIALIZER_JSON_ARRAY);
        $this->assertSame(['a' => [1, 2]], $arrays->decode('{"a":[1,2]}', 6));
    }

    public function testZlibLayout(): void
    {
        $c = new Codec();
        $text = str_repeat('compressible text ', 200);
        [$bytes, $flags] = $c->encode($text);
        $this->assertSame(0x30, $flags, 'string | compressed | zlib');
        $this->assertSame(pack('V', strlen($text)) . gzcompress($text), $bytes);
        $this->assertSame($text, $c->decode($bytes, $flags));
        [, $flags] = $c->encode(str_repeat('x', 1999));
        $this->assertSame(0, $flags, 'below the 2000-byte threshold: not compressed');
        [, $flags] = $c->encode(random_bytes(5000));
        $this->assertSame(0, $flags, 'what does not shrink is stored as it is');
        [, $flags] = (new Codec(compression: false))->encode($text);
        $this->assertSame(0, $flags);
        $array = array_fill(0, 300, 'same');
        [$bytes, $flags] = $c->encode($array);
        $this->assertSame(0x34, $flags, 'serialized | compressed | zlib');
        $this->assertSame($array, $c->decode($bytes, $flags));
    }

    public function testOldStyleZlibWithoutLength(): void
    {
        $this->assertSame('old', (new Codec())->decode(gzcompress('old'), 0x10));
    }

    public function testFastLzBlocks(): void
    {
        // Level 1: a literal run of 3, then a match of length 7 at distance 3 (ctrl 0xa0 = length
        // code 5, distance high bits 0; next byte: distance - 1 = 2).
        $this->assertSame('abcabcabca', FastLz::decompress("\x02abc\xa0\x02", 10));
        // Level 2 (top bits 001): the same with an extended length: code 7, then 255, 3.
        $level2 = "\x22abc\xe0\xff\x03\x02";
        $this->assertSame('abc' . substr(str_repeat('abc', 200), 0, 6 + 255 + 3 + 3), FastLz::decompress($level2, 3 + 267));
        $this->assertSame("\x2a", (new Codec())->decode(pack('V', 1) . "\x00\x2a", 0x50));
    }

    /** Hostile or broken payloads: an exception naming the problem, never a wrong value. */
    public function testBrokenPayloadsAreValueErrors(): void
    {
        $c = new Codec();
        $zlib = pack('V', 100) . gzcompress(str_repeat('a', 100));
        $cases = [
            'unknown type' => ['x', 9],
            'int of text' => ['12ab', 1],
            'float of text' => ['one', 2],
            'bad serialize' => ['a:1:{', 4],
            'bad JSON' => ['{', 6],
            'short header' => ["\x01\x00", 0x30],
            'truncated zlib' => [substr($zlib, 0, 10), 0x30],
            'wrong length' => [pack('V', 50) . substr($zlib, 4), 0x30],
            'huge claim' => [pack('V', 0xffffffff) . substr($zlib, 4), 0x30],
            'fastlz match before start' => [pack('V', 10) . "\x00a\xe0\x05", 0x50],
            'fastlz run past end' => [pack('V', 10) . "\x09ab", 0x50],
            'fastlz longer than claimed' => [pack('V', 2) . "\x02abc", 0x50],
        ];
        foreach ($cases as $what => [$bytes, $flags]) {
            try {
                $c->decode($bytes, $flags);
                $this->fail("$what: no exception");
            } catch (ValueException $e) {
                $this->assertSame(-1001, $e->getCode(), $what);
            }
        }
        $this->assertSame(false, $c->decode(serialize(false), 4), 'a stored false is not an error');
    }

    public function testUnserializableValueIsAValueError(): void
    {
        $this->expectException(ValueException::class);
        (new Codec())->encode(fn () => 1);
    }
}
