<?php

declare(strict_types=1);

use Libmemcache\ClosedException;
use Libmemcache\ConfigException;
use Libmemcache\InvalidKeyException;
use Libmemcache\Memcached;
use Libmemcache\NoServerException;
use Libmemcache\ServerErrorException;
use Libmemcache\ValueException;
use PHPUnit\Framework\TestCase;

/** The everyday calls, with php-memcached's names and results, against a real memcached. */
final class MemcachedTest extends TestCase
{
    private Memcached $mc;
    private string $ns;

    protected function setUp(): void
    {
        $this->mc = new Memcached(servers: [TestEnv::$serverA]);
        $this->ns = 't' . bin2hex(random_bytes(4));
    }

    protected function tearDown(): void
    {
        $this->mc->close();
    }

    /** A key unique to this test run. */
    private function key(string $name): string
    {
        return "{$this->ns}:$name";
    }

    public function testBinaryStringRoundTripsAsStored(): void
    {
        $value = "\0head\0\xff\xfe middle \r\n\0tail\0";
        $this->assertTrue($this->mc->set($this->key('bin'), $value));
        $this->assertSame(Memcached::RES_SUCCESS, $this->mc->getResultCode());
        $this->assertSame($value, $this->mc->get($this->key('bin')));
        $this->assertSame([0, $value], TestEnv::rawGet(TestEnv::$serverA, $this->key('bin')));
    }

    public function testScalarsComeBackWithTheirTypes(): void
    {
        foreach (['int' => -42, 'float' => 0.1, 'true' => true, 'false' => false, 'empty' => '', 'array' => ['a' => [1, 2.5, null]]] as $name => $value) {
            $this->assertTrue($this->mc->set($this->key($name), $value));
            $this->assertSame($value, $this->mc->get($this->key($name)), $name);
        }
        $object = new ArrayObject(['x' => 1]);
        $this->mc->set($this->key('object'), $object);
        $this->assertEquals($object, $this->mc->get($this->key('object')));
    }

    public function testMissIsFalseWithNotFound(): void
    {
        $this->assertFalse($this->mc->get($this->key('never-set')));
        $this->assertSame(Memcached::RES_NOTFOUND, $this->mc->getResultCode());
    }

    public function testAddAndReplaceSayNotStored(): void
    {
        $k = $this->key('ar');
        $this->assertFalse($this->mc->replace($k, 'x'));
        $this->assertSame(Memcached::RES_NOTSTORED, $this->mc->getResultCode());
        $this->assertTrue($this->mc->add($k, 'first'));
        $this->assertFalse($this->mc->add($k, 'second'));
        $this->assertSame(Memcached::RES_NOTSTORED, $this->mc->getResultCode());
        $this->assertTrue($this->mc->replace($k, 'third'));
        $this->assertSame('third', $this->mc->get($k));
    }

    public function testSetMultiAndGetMulti(): void
    {
        $items = [$this->key('m1') => 'one', $this->key('m2') => 2, $this->key('m3') => ['three']];
        $this->assertTrue($this->mc->setMulti($items, 60));
        $keys = [$this->key('m3'), $this->key('nope'), $this->key('m1'), $this->key('m2')];
        $found = $this->mc->getMulti($keys);
        ksort($found);
        ksort($items);
        $this->assertSame($items, $found);
        $this->assertSame(Memcached::RES_NOTFOUND, $this->mc->getResultCode(), 'one key was missing');
        $ordered = $this->mc->getMulti($keys, Memcached::GET_PRESERVE_ORDER);
        $this->assertSame($keys, array_keys($ordered));
        $this->assertNull($ordered[$this->key('nope')]);
        $this->assertSame([], $this->mc->getMulti([]));
    }

    public function testDeleteAndDeleteMulti(): void
    {
        $this->mc->set($this->key('d1'), 'a');
        $this->mc->set($this->key('d2'), 'b');
        $this->assertTrue($this->mc->delete($this->key('d1')));
        $this->assertFalse($this->mc->delete($this->key('d1')));
        $this->assertSame(Memcached::RES_NOTFOUND, $this->mc->getResultCode());
        $this->assertSame(
            [$this->key('d1') => Memcached::RES_NOTFOUND, $this->key('d2') => true],
            $this->mc->deleteMulti([$this->key('d1'), $this->key('d2')])
        );
        $this->assertFalse($this->mc->get($this->key('d2')));
    }

    public function testIncrementAndDecrement(): void
    {
        $k = $this->key('counter');
        $this->assertFalse($this->mc->increment($k));
        $this->assertSame(Memcached::RES_NOTFOUND, $this->mc->getResultCode());
        $this->mc->set($k, 10);
        $this->assertSame(15, $this->mc->increment($k, 5));
        $this->assertSame(12, $this->mc->decrement($k, 3));
        $this->assertSame(0, $this->mc->decrement($k, 100), 'memcached stops at 0');
        $this->assertSame(0, $this->mc->get($k), 'an int read back as an int');
        // Past PHP_INT_MAX the 64-bit counter stays exact, as a decimal string.
        $this->mc->set($k, PHP_INT_MAX);
        $this->assertSame('9223372036854775810', $this->mc->increment($k, 3));
        $this->assertSame('9223372036854775810', $this->mc->get($k));
    }

    public function testIncrementWithInitialValueCreatesTheCounter(): void
    {
        $k = $this->key('initial');
        $this->assertSame(7, $this->mc->increment($k, 1, 7, 60), 'absent: created with the initial value');
        $this->assertSame(8, $this->mc->increment($k, 1, 7, 60), 'present: counted');
        $d = $this->key('initial-down');
        $this->assertSame(3, $this->mc->decrement($d, 1, 3));
        $this->assertSame(2, $this->mc->decrement($d, 1, 3));
    }

    public function testIncrementOfTextIsAServerError(): void
    {
        $this->mc->set($this->key('text'), 'abc');
        try {
            $this->mc->increment($this->key('text'));
            $this->fail('incr of text must throw');
        } catch (ServerErrorException $e) {
            $this->assertStringContainsString('incr', $e->getMessage());
            $this->assertSame($e->getCode(), $this->mc->getResultCode());
            $this->assertNotSame(Memcached::RES_SUCCESS, $e->getCode());
        }
        $this->assertSame('abc', $this->mc->get($this->key('text')), 'the value is untouched');
    }

    public function testAppendAndPrependNeedCompressionOff(): void
    {
        $k = $this->key('cat');
        try {
            $this->mc->append($k, 'x');
            $this->fail('append with compression on must throw');
        } catch (ValueException $e) {
            $this->assertSame(Memcached::RES_INVALID_ARGUMENTS, $e->getCode());
        }
        $this->assertTrue($this->mc->setOption(Memcached::OPT_COMPRESSION, false));
        $this->assertFalse($this->mc->append($k, 'x'));
        $this->assertSame(Memcached::RES_NOTSTORED, $this->mc->getResultCode());
        $this->mc->set($k, 'middle');
        $this->assertTrue($this->mc->append($k, '>'));
        $this->assertTrue($this->mc->prepend($k, '<'));
        $this->assertSame('<middle>', $this->mc->get($k));
    }

    public function testTouch(): void
    {
        $k = $this->key('touch');
        $this->assertFalse($this->mc->touch($k, 60));
        $this->assertSame(Memcached::RES_NOTFOUND, $this->mc->getResultCode());
        $this->mc->set($k, 'v', 60);
        $this->assertTrue($this->mc->touch($k, 120));
        $this->assertSame('v', $this->mc->get($k));
    }

    public function testGetExtendedAndCas(): void
    {
        $k = $this->key('cas');
        $this->mc->set($k, ['n' => 1]);
        $got = $this->mc->get($k, null, Memcached::GET_EXTENDED);
        $this->assertSame(['n' => 1], $got['value']);
        $this->assertIsInt($got['cas']);
        $this->assertGreaterThan(0, $got['cas']);
        $this->assertTrue($this->mc->cas($got['cas'], $k, ['n' => 2]));
        $this->assertFalse($this->mc->cas($got['cas'], $k, ['n' => 3]), 'the token is stale now');
        $this->assertSame(Memcached::RES_DATA_EXISTS, $this->mc->getResultCode());
        $this->assertSame(['n' => 2], $this->mc->get($k));
        $this->mc->delete($k);
        $this->assertFalse($this->mc->cas($got['cas'], $k, 'x'));
        $this->assertSame(Memcached::RES_NOTFOUND, $this->mc->getResultCode());
        $this->assertFalse($this->mc->get($this->key('none'), null, Memcached::GET_EXTENDED));
    }

    public function testCasTokenOutOfRangeIsRefused(): void
    {
        $this->expectException(InvalidArgumentException::class);
        $this->mc->cas('18446744073709551616', $this->key('x'), 'v');
    }

    public function testFlushEmptiesTheServer(): void
    {
        $mc = new Memcached(servers: [TestEnv::$serverB]);
        $mc->set($this->key('flush'), 'v');
        $this->assertTrue($mc->flush());
        $this->assertFalse($mc->get($this->key('flush')));
        $mc->close();
    }

    public function testStatsVersionAndServerList(): void
    {
        $mc = new Memcached(servers: [TestEnv::$serverA, TestEnv::$serverB]);
        $stats = $mc->getStats();
        $this->assertSame([TestEnv::$serverA, TestEnv::$serverB], array_keys($stats));
        foreach ($stats as $s) {
            $this->assertGreaterThan(0, $s['pid']);
            $this->assertMatchesRegularExpression('/^\d+\.\d+/', $s['version']);
        }
        $versions = $mc->getVersion();
        $this->assertSame(array_column($stats, 'version'), array_values($versions));
        [$hostA, $portA] = TestEnv::split(TestEnv::$serverA);
        $this->assertSame(['host' => $hostA, 'port' => $portA, 'type' => 'TCP'], $mc->getServerList()[0]);
        $mc->close();
    }

    public function testAddServerTurnsADefaultHandlePrivate(): void
    {
        // No arguments: the handle follows $MEMCACHE_DOMAIN (else "default"; empty in the
        // tests' namespace) until a server is added, as php-memcached code does it.
        $mc = new Memcached();
        [$host, $port] = TestEnv::split(TestEnv::$serverA);
        [$hostB, $portB] = TestEnv::split(TestEnv::$serverB);
        $this->assertTrue($mc->addServer($host, $port));
        $this->assertTrue($mc->addServers([[$hostB, $portB, 2]]));
        $this->assertSame([TestEnv::$serverA, TestEnv::$serverB], array_map(fn ($s) => "{$s['host']}:{$s['port']}", $mc->getServerList()));
        $this->assertTrue($mc->set($this->key('added'), 'v'));
        $this->assertSame('v', $mc->get($this->key('added')));
        $mc->close();
    }

    public function testConstructorOptionsAndServerArrays(): void
    {
        [$host, $port] = TestEnv::split(TestEnv::$serverA);
        $mc = new Memcached(servers: [[$host, $port, 1]], options: [
            Memcached::OPT_LIBKETAMA_COMPATIBLE => true,
            Memcached::OPT_SERIALIZER => Memcached::SERIALIZER_JSON_ARRAY,
        ]);
        $this->assertSame(Memcached::DISTRIBUTION_CONSISTENT, $mc->getOption(Memcached::OPT_DISTRIBUTION));
        $this->assertTrue($mc->getOption(Memcached::OPT_LIBKETAMA_COMPATIBLE));
        $mc->set($this->key('json'), ['a' => 1]);
        $this->assertSame([6, '{"a":1}'], TestEnv::rawGet(TestEnv::$serverA, $this->key('json')));
        $this->assertSame(['a' => 1], $mc->get($this->key('json')));
        $mc->close();
        $this->expectException(InvalidArgumentException::class);
        new Memcached(servers: [TestEnv::$serverA], options: [Memcached::OPT_SERIALIZER => 99]);
    }

    public function testUnsupportedOptionIsFalseWithAReason(): void
    {
        $this->assertFalse($this->mc->setOption(18 /* OPT_BINARY_PROTOCOL */, true));
        $this->assertSame(Memcached::RES_NOT_SUPPORTED, $this->mc->getResultCode());
        $this->assertStringContainsString('18', $this->mc->getResultMessage());
        $this->assertFalse($this->mc->setOption(Memcached::OPT_COMPRESSION_TYPE, Memcached::COMPRESSION_FASTLZ));
        $this->assertTrue($this->mc->setOption(Memcached::OPT_COMPRESSION_TYPE, Memcached::COMPRESSION_ZLIB));
    }

    public function testPrefixKey(): void
    {
        $this->assertTrue($this->mc->setOption(Memcached::OPT_PREFIX_KEY, 'app1:'));
        $this->mc->set($this->key('p'), 'v');
        $this->assertSame([0, 'v'], TestEnv::rawGet(TestEnv::$serverA, 'app1:' . $this->key('p')));
        $this->assertSame([$this->key('p') => 'v'], $this->mc->getMulti([$this->key('p')]));
        $this->assertFalse($this->mc->setOption(Memcached::OPT_PREFIX_KEY, 'has space'));
        $this->assertSame(Memcached::RES_BAD_KEY_PROVIDED, $this->mc->getResultCode());
    }

    public function testBadKeysThrowWithTheReason(): void
    {
        $cases = ['has space' => 'byte 4 (0x20)', "a\nb" => 'byte 2 (0x0a)', '' => 'empty', str_repeat('k', 251) => 'longer than 250 bytes'];
        foreach ($cases as $key => $reason) {
            foreach (['get' => fn () => $this->mc->get($key), 'set' => fn () => $this->mc->set($key, 'v'), 'getMulti' => fn () => $this->mc->getMulti(['ok', $key])] as $call => $f) {
                try {
                    $f();
                    $this->fail("$call of a bad key must throw");
                } catch (InvalidKeyException $e) {
                    $this->assertStringContainsString($reason, $e->getMessage(), $call);
                    $this->assertSame(Memcached::RES_BAD_KEY_PROVIDED, $e->getCode());
                    $this->assertSame(Memcached::RES_BAD_KEY_PROVIDED, $this->mc->getResultCode());
                }
            }
        }
        $this->assertSame(250, strlen(str_repeat('k', 250)));
        $this->assertFalse($this->mc->get(str_repeat('k', 250)), 'a 250-byte key is fine');
    }

    public function testDeadServerThrowsNoServerPromptly(): void
    {
        // A port nothing listens on: bind one, note it, close it.
        $probe = stream_socket_server('tcp://127.0.0.1:0');
        $addr = stream_socket_get_name($probe, false);
        fclose($probe);
        $mc = new Memcached(servers: [$addr]);
        $start = microtime(true);
        foreach (['get' => fn () => $mc->get('k'), 'set' => fn () => $mc->set('k', 'v'), 'increment' => fn () => $mc->increment('k')] as $call => $f) {
            try {
                $f();
                $this->fail("$call on a dead server must throw");
            } catch (NoServerException $e) {
                $this->assertContains($e->getCode(), [Memcached::RES_NO_SERVERS, Memcached::RES_CONNECTION_FAILURE], $call);
                $this->assertSame($e->getCode(), $mc->getResultCode());
            }
        }
        $this->assertLessThan(30, microtime(true) - $start, 'a refused connection fails fast, not at a timeout');
        $this->assertSame([$addr => false], $mc->getVersion());
        $this->assertSame(Memcached::RES_SOME_ERRORS, $mc->getResultCode());
        $mc->close();
    }

    public function testConfigErrors(): void
    {
        try {
            new Memcached(domain: 'bad domain!');
            $this->fail('a bad domain name must throw');
        } catch (ConfigException $e) {
            $this->assertStringContainsString('invalid domain name', $e->getMessage());
        }
        try {
            new Memcached(servers: ['no-such-host.invalid:11211']);
            $this->fail('an unresolvable host must throw');
        } catch (ConfigException $e) {
            $this->assertStringContainsString('no-such-host.invalid', $e->getMessage());
        }
        $this->expectException(InvalidArgumentException::class);
        new Memcached(domain: 'x', servers: [TestEnv::$serverA]);
    }

    public function testClosedHandleThrows(): void
    {
        $mc = new Memcached(servers: [TestEnv::$serverA]);
        $mc->close();
        $this->assertTrue($mc->isClosed());
        $this->expectException(ClosedException::class);
        $mc->get('k');
    }

    public function testQuitReconnectsOnTheNextCall(): void
    {
        $this->mc->set($this->key('q'), 'v');
        $this->assertTrue($this->mc->quit());
        $this->assertSame('v', $this->mc->get($this->key('q')));
    }

    public function testExpirationAndArgumentsAreChecked(): void
    {
        $this->expectException(InvalidArgumentException::class);
        $this->mc->set($this->key('x'), 'v', -1);
    }
}
