<?php

declare(strict_types=1);

use Libmemcache\Memcached as Ours;
use PHPUnit\Framework\TestCase;

/**
 * Values cross between this package and the php-memcached extension (Debian's php-memcached)
 * through the same real memcached, both ways, for every type and both compressions; each item
 * is also read raw from the server, so the two clients are seen to write the same bytes and
 * flags. The extension is required: without it this test fails, it does not skip.
 */
final class PhpMemcachedInteropTest extends TestCase
{
    private Ours $ours;
    private \Memcached $theirs;
    private string $ns;

    protected function setUp(): void
    {
        $this->assertTrue(extension_loaded('memcached'), 'the php-memcached extension is needed (Debian package php-memcached)');
        $this->ours = new Ours(servers: [TestEnv::$serverA]);
        $this->theirs = new \Memcached();
        $this->theirs->addServer(...TestEnv::split(TestEnv::$serverA));
        // Its own defaults otherwise (PHP serializer, FastLZ above 2000 bytes) except where a
        // test says: the values a site running it already has.
        $this->ns = 'x' . bin2hex(random_bytes(4));
    }

    protected function tearDown(): void
    {
        $this->ours->close();
        $this->theirs->quit();
    }

    /** @return array<string, mixed> */
    private static function values(): array
    {
        $object = new stdClass();
        $object->name = 'thing';
        $object->list = [1, 2, 3];
        return [
            'string' => 'plain',
            'binary' => "\0\x01\xff\r\n",
            'empty' => '',
            'int' => 1234567890123,
            'negative' => -5,
            'float' => 3.14159,
            'tiny-float' => 1.0e-300,
            'small-float' => -2.5e-5,
            'round-float' => 1e6,
            'fraction' => 0.1 + 0.2,
            'infinity' => INF,
            'true' => true,
            'false' => false,
            'array' => ['a' => 1, 'b' => [true, null, 2.5]],
            'object' => $object,
            'null' => null,
            'big-string' => str_repeat('a fairly compressible sentence. ', 400),
            'big-array' => array_fill(0, 500, 'repeated'),
            'huge-string' => str_repeat('level two of FastLZ starts at 64 KiB. ', 3000),
        ];
    }

    public function testTheyWriteWeRead(): void
    {
        foreach (self::values() as $name => $value) {
            $k = "{$this->ns}:theirs:$name";
            $this->assertTrue($this->theirs->set($k, $value), "php-memcached set $name");
            $this->assertEquals($value, $this->ours->get($k), $name);
            $this->assertSame(get_debug_type($value), get_debug_type($this->ours->get($k)), $name);
        }
        // Its default compression is FastLZ: those items really are FastLZ, and were read above.
        [$flags] = TestEnv::rawGet(TestEnv::$serverA, "{$this->ns}:theirs:huge-string");
        $this->assertSame(0x50, $flags & 0xff, 'string | compressed | FastLZ');
        [$flags] = TestEnv::rawGet(TestEnv::$serverA, "{$this->ns}:theirs:big-array");
        $this->assertSame(0x54, $flags & 0xff, 'serialized | compressed | FastLZ');
        $multi = $this->ours->getMulti(["{$this->ns}:theirs:int", "{$this->ns}:theirs:array"]);
        $this->assertSame([1234567890123, ['a' => 1, 'b' => [true, null, 2.5]]], array_values($multi));
    }

    public function testWeWriteTheyRead(): void
    {
        foreach (self::values() as $name => $value) {
            $k = "{$this->ns}:ours:$name";
            $this->assertTrue($this->ours->set($k, $value), "our set $name");
            $this->assertEquals($value, $this->theirs->get($k), $name);
            $this->assertSame(\Memcached::RES_SUCCESS, $this->theirs->getResultCode(), $name);
            $this->assertSame(get_debug_type($value), get_debug_type($this->theirs->get($k)), $name);
        }
    }

    /** With zlib chosen in php-memcached, both clients write identical bytes and flags. */
    public function testSameBytesAndFlagsAsTheExtensionWithZlib(): void
    {
        $this->theirs->setOption(\Memcached::OPT_COMPRESSION_TYPE, \Memcached::COMPRESSION_ZLIB);
        foreach (self::values() as $name => $value) {
            $this->theirs->set("{$this->ns}:t:$name", $value);
            $this->ours->set("{$this->ns}:o:$name", $value);
            $this->assertSame(
                TestEnv::rawGet(TestEnv::$serverA, "{$this->ns}:t:$name"),
                TestEnv::rawGet(TestEnv::$serverA, "{$this->ns}:o:$name"),
                $name
            );
        }
        [$flags] = TestEnv::rawGet(TestEnv::$serverA, "{$this->ns}:o:big-string");
        $this->assertSame(0x30, $flags, 'string | compressed | zlib');
    }

    public function testJsonSerializerBothWays(): void
    {
        $this->theirs->setOption(\Memcached::OPT_SERIALIZER, \Memcached::SERIALIZER_JSON_ARRAY);
        $this->ours->setOption(Ours::OPT_SERIALIZER, Ours::SERIALIZER_JSON_ARRAY);
        $value = ['list' => [1, 2], 'map' => ['k' => 'v']];
        $this->theirs->set("{$this->ns}:json-theirs", $value);
        $this->ours->set("{$this->ns}:json-ours", $value);
        $this->assertSame($value, $this->ours->get("{$this->ns}:json-theirs"));
        $this->assertSame($value, $this->theirs->get("{$this->ns}:json-ours"));
        $this->assertSame([6, json_encode($value)], TestEnv::rawGet(TestEnv::$serverA, "{$this->ns}:json-ours"));
    }

    /** Its user flags live in bits 16-31, which libmemcache's 16-bit flags drop: the value still reads. */
    public function testValuesWithItsUserFlagsRead(): void
    {
        $this->theirs->setOption(\Memcached::OPT_USER_FLAGS, 7);
        $this->theirs->set("{$this->ns}:udf", ['with' => 'user flags']);
        [$flags] = TestEnv::rawGet(TestEnv::$serverA, "{$this->ns}:udf");
        $this->assertSame((7 << 16) | 4, $flags, 'user flags 7 above serialized');
        $this->assertSame(['with' => 'user flags'], $this->ours->get("{$this->ns}:udf"));
    }

    public function testCountersCross(): void
    {
        $k = "{$this->ns}:counter";
        $this->theirs->set($k, 10);
        $this->assertSame(11, $this->ours->increment($k));
        $this->assertSame(16, $this->theirs->increment($k, 5));
        $this->assertSame(16, $this->ours->get($k));
        $this->ours->set("$k-2", 100);
        $this->assertSame(99, $this->theirs->decrement("$k-2"));
        $this->assertSame(99, $this->ours->get("$k-2"));
    }

    public function testCasTokenFromEitherClient(): void
    {
        $k = "{$this->ns}:cas";
        $this->theirs->set($k, 'v1');
        $theirs = $this->theirs->get($k, null, \Memcached::GET_EXTENDED);
        $ours = $this->ours->get($k, null, Ours::GET_EXTENDED);
        $this->assertSame($theirs['cas'], $ours['cas'], 'the same token from the server');
        $this->assertTrue($this->ours->cas($theirs['cas'], $k, 'v2'));
        $this->assertFalse($this->theirs->cas($theirs['cas'], $k, 'v3'));
        $this->assertSame('v2', $this->theirs->get($k));
    }

    /**
     * With ketama chosen on both sides (php-memcached's OPT_LIBKETAMA_COMPATIBLE, our
     * DISTRIBUTION_CONSISTENT), a key goes to the same one of two servers.
     */
    public function testKetamaPlacesKeysWhereTheExtensionDoes(): void
    {
        $servers = [TestEnv::split(TestEnv::$serverA), TestEnv::split(TestEnv::$serverB)];
        $theirs = new \Memcached();
        $theirs->setOption(\Memcached::OPT_LIBKETAMA_COMPATIBLE, true);
        $theirs->addServers($servers);
        $ours = new Ours(servers: [TestEnv::$serverA, TestEnv::$serverB], options: [Ours::OPT_DISTRIBUTION => Ours::DISTRIBUTION_CONSISTENT]);
        $onB = 0;
        for ($i = 0; $i < 40; $i++) {
            $k = "{$this->ns}:placed:$i";
            $this->assertTrue($theirs->set($k, "v$i"));
            $this->assertSame("v$i", $ours->get($k), $k);
            $onA = TestEnv::rawGet(TestEnv::$serverA, $k) !== null;
            $onB += $onA ? 0 : 1;
            $ours->set("$k:ours", "w$i");
            $this->assertSame("w$i", $theirs->get("$k:ours"), "$k:ours");
        }
        $this->assertGreaterThan(0, $onB, 'some keys on each server');
        $this->assertLessThan(40, $onB, 'some keys on each server');
        $ours->close();
    }
}
