<?php

declare(strict_types=1);

use Libmemcache\InvalidKeyException;
use Libmemcache\Memcached;
use Libmemcache\NoServerException;
use PHPUnit\Framework\TestCase;

/**
 * setMulti()/deleteMulti() as one bulk call (issue 16), and the TLS and login options (issue
 * 17), against the real memcached, memcached -Z and memcached -Y that tests/php.rs starts.
 */
final class BulkAndSecurityTest extends TestCase
{
    /** memcached refuses items over its 1 MiB default item size. */
    private const TOO_LARGE = 2 * 1024 * 1024;
    /** "STORED\r\n": the answer to each set of a loop of single calls. */
    private const STORED_REPLY = 8;

    private Memcached $mc;
    private string $ns;

    protected function setUp(): void
    {
        $this->mc = new Memcached(servers: [TestEnv::$serverA]);
        $this->ns = 'b' . bin2hex(random_bytes(4));
    }

    protected function tearDown(): void
    {
        $this->mc->close();
    }

    private function key(string $name): string
    {
        return "{$this->ns}:$name";
    }

    /** What server A did while $run ran: cmd_set, delete_hits and the bytes it wrote to other clients. */
    private function serverWork(callable $run): array
    {
        [$before, $statsReply] = TestEnv::rawStats(TestEnv::$serverA);
        $run();
        [$after] = TestEnv::rawStats(TestEnv::$serverA);
        return [
            'cmd_set' => $after['cmd_set'] - $before['cmd_set'],
            'delete_hits' => $after['delete_hits'] - $before['delete_hits'],
            'reply_bytes' => $after['bytes_written'] - $before['bytes_written'] - $statsReply,
        ];
    }

    public function testSetMultiOf100KeysIsOneExchange(): void
    {
        $items = [];
        for ($i = 1; $i <= 100; $i++) {
            $items[$this->key("bulk$i")] = "value $i";
        }
        // Connected, and the server's dialect known, before counting.
        $this->mc->set($this->key('warm'), '1');
        $this->mc->setMulti([$this->key('warm2') => '1']);
        $loop = $this->serverWork(function () use ($items): void {
            foreach ($items as $k => $v) {
                $this->mc->set($k, $v);
            }
        });
        $this->assertSame(100, $loop['cmd_set']);
        $this->assertSame(100 * self::STORED_REPLY, $loop['reply_bytes'], 'a loop: one reply per key');

        $bulk = $this->serverWork(fn () => $this->assertTrue($this->mc->setMulti($items)));
        $this->assertSame(Memcached::RES_SUCCESS, $this->mc->getResultCode());
        $this->assertSame(100, $bulk['cmd_set'], 'every key stored once');
        // Quiet meta sets are answered only when they fail; the window ends with one "MN\r\n".
        $this->assertLessThanOrEqual(4, $bulk['reply_bytes'], 'one bulk exchange: ' . json_encode($bulk));
        $this->assertEquals($items, $this->mc->getMulti(array_keys($items)));

        $deleted = $this->serverWork(function () use ($items): void {
            $this->assertSame(array_fill_keys(array_keys($items), true), $this->mc->deleteMulti(array_keys($items)));
        });
        $this->assertSame(100, $deleted['delete_hits']);
        $this->assertLessThanOrEqual(4, $deleted['reply_bytes'], 'one bulk exchange: ' . json_encode($deleted));
    }

    public function testARefusedValueFailsItsKeyOnly(): void
    {
        // Random bytes: compression (on by default) cannot bring them under the item size.
        $items = [$this->key('before') => 'first', $this->key('big') => random_bytes(self::TOO_LARGE), $this->key('after') => ['a' => 1]];
        $this->assertFalse($this->mc->setMulti($items, 60));
        $this->assertSame(Memcached::RES_SOME_ERRORS, $this->mc->getResultCode());
        $message = $this->mc->getResultMessage();
        $this->assertStringContainsString('setMulti: 1 of 3 keys failed: "' . $this->key('big') . '" (result ' . Memcached::RES_SERVER_ERROR . ')', $message);
        $this->assertStringContainsString('too large', $message, "the server's reason");
        $found = $this->mc->getMulti(array_keys($items));
        ksort($found);
        $this->assertSame([$this->key('after') => ['a' => 1], $this->key('before') => 'first'], $found);
    }

    public function testSetMultiStoresWhatSetStores(): void
    {
        $values = [
            'str' => 'café', 'int' => -42, 'float' => 0.1, 'bool' => true, 'array' => ['a' => [1, 2.5, null]],
            'long' => str_repeat('compressible ', 1000), 'empty' => '',
        ];
        foreach ([false, true] as $compression) {
            $this->mc->setOption(Memcached::OPT_COMPRESSION, $compression);
            $many = [];
            foreach ($values as $name => $value) {
                $this->assertTrue($this->mc->set($this->key("one-$compression-$name"), $value));
                $many[$this->key("many-$compression-$name")] = $value;
            }
            $this->assertTrue($this->mc->setMulti($many));
            foreach ($values as $name => $value) {
                $one = TestEnv::rawGet(TestEnv::$serverA, $this->key("one-$compression-$name"));
                $this->assertSame($one, TestEnv::rawGet(TestEnv::$serverA, $this->key("many-$compression-$name")), "$name: the same bytes and flags");
                $this->assertSame($value, $this->mc->get($this->key("many-$compression-$name")), $name);
            }
        }
        // The codec's bits did apply: compressed only with compression on.
        [$plain] = TestEnv::rawGet(TestEnv::$serverA, $this->key('many--long'));
        [$packed] = TestEnv::rawGet(TestEnv::$serverA, $this->key('many-1-long'));
        $this->assertNotSame($plain, $packed);
    }

    public function testBadKeysStopSetMultiBeforeAnythingIsSent(): void
    {
        try {
            $this->mc->setMulti([$this->key('good') => 'v', 'bad key' => 'v']);
            $this->fail('a bad key was sent');
        } catch (InvalidKeyException $e) {
            $this->assertStringContainsString('invalid key "bad key"', $e->getMessage());
        }
        $this->assertFalse($this->mc->get($this->key('good')));
        $this->assertTrue($this->mc->setMulti([]));
        $this->assertSame([], $this->mc->deleteMulti([]));
    }

    // ---- TLS and login ----

    public function testTlsWithTheServersCa(): void
    {
        $mc = new Memcached(servers: [TestEnv::$secure['TLS_SERVER']], options: [Memcached::OPT_TLS_CA_FILE => TestEnv::$secure['TLS_CA']]);
        $this->assertTrue($mc->set($this->key('tls'), 'over TLS'));
        $this->assertSame('over TLS', $mc->get($this->key('tls')));
        $this->assertTrue($mc->setMulti([$this->key('tls1') => 'a']));
        $this->assertSame(TestEnv::$secure['TLS_CA'], $mc->getOption(Memcached::OPT_TLS_CA_FILE));
        // OPT_TLS speaks TLS to a server named without tls://, given with addServer().
        $plain = new Memcached(options: [Memcached::OPT_TLS => true, Memcached::OPT_TLS_CA_FILE => TestEnv::$secure['TLS_CA']]);
        [$host, $port] = TestEnv::split(substr(TestEnv::$secure['TLS_SERVER'], strlen('tls://')));
        $plain->addServer($host, $port);
        $this->assertSame('over TLS', $plain->get($this->key('tls')));
        $this->assertTrue($plain->getOption(Memcached::OPT_TLS));
        // addServer() also takes a tls:// host.
        $named = new Memcached(options: [Memcached::OPT_TLS_CA_FILE => TestEnv::$secure['TLS_CA']]);
        $named->addServer("tls://$host", $port);
        $this->assertSame('over TLS', $named->get($this->key('tls')));
    }

    public function testTlsWithAWrongCaIsAClearError(): void
    {
        $mc = new Memcached(servers: [TestEnv::$secure['TLS_SERVER']], options: [Memcached::OPT_TLS_CA_FILE => TestEnv::$secure['TLS_WRONG_CA']]);
        try {
            $mc->get($this->key('tls'));
            $this->fail('a server signed by another CA was trusted');
        } catch (NoServerException $e) {
            $this->assertStringContainsString('UnknownIssuer', $e->getMessage());
            $this->assertSame(Memcached::RES_NO_SERVERS, $mc->getResultCode());
        }
        // setMulti on a handle of its own (a failed server is skipped for the retry interval).
        $bulk = new Memcached(servers: [TestEnv::$secure['TLS_SERVER']], options: [Memcached::OPT_TLS_CA_FILE => TestEnv::$secure['TLS_WRONG_CA']]);
        try {
            $bulk->setMulti([$this->key('tls1') => 'a', $this->key('tls2') => 'b']);
            $this->fail('a server signed by another CA was trusted by setMulti');
        } catch (NoServerException $e) {
            $this->assertStringContainsString('UnknownIssuer', $e->getMessage());
        }
        $insecure = new Memcached(servers: [TestEnv::$secure['TLS_SERVER']], options: [
            Memcached::OPT_TLS_CA_FILE => TestEnv::$secure['TLS_WRONG_CA'], Memcached::OPT_TLS_VERIFY => false,
        ]);
        $this->assertTrue($insecure->set($this->key('insecure'), 'v'));
        $this->assertFalse($this->mc->setOption(Memcached::OPT_TLS_CA_FILE, '/nonexistent/ca.pem'));
        $this->assertSame(Memcached::RES_INVALID_ARGUMENTS, $this->mc->getResultCode());
        $this->assertStringContainsString('/nonexistent/ca.pem', $this->mc->getResultMessage());
    }

    public function testMutualTlsWithAClientCertificate(): void
    {
        $env = TestEnv::$secure;
        $withCert = new Memcached(servers: [$env['MTLS_SERVER']], options: [
            Memcached::OPT_TLS_CA_FILE => $env['TLS_CA'],
            Memcached::OPT_TLS_KEY_FILE => $env['TLS_CLIENT_KEY'],
            Memcached::OPT_TLS_CERT_FILE => $env['TLS_CLIENT_CERT'],
        ]);
        $this->assertTrue($withCert->set($this->key('mtls'), 'mutual'));
        $this->assertSame('mutual', $withCert->get($this->key('mtls')));
        $this->assertSame($env['TLS_CLIENT_CERT'], $withCert->getOption(Memcached::OPT_TLS_CERT_FILE));
        // Without one the server ends the handshake: nothing is stored.
        $without = new Memcached(servers: [$env['MTLS_SERVER']], options: [Memcached::OPT_TLS_CA_FILE => $env['TLS_CA']]);
        try {
            $without->set($this->key('mtls'), 'anonymous');
            $this->fail('stored without a client certificate');
        } catch (Libmemcache\Exception $e) {
            $this->assertNotSame(Memcached::RES_SUCCESS, $without->getResultCode());
        }
        // A key that is not the certificate's: refused once the certificate comes (a key set
        // first waits for it), with the library's reason.
        $this->assertTrue($this->mc->setOption(Memcached::OPT_TLS_KEY_FILE, $env['TLS_CA']));
        $this->assertFalse($this->mc->setOption(Memcached::OPT_TLS_CERT_FILE, $env['TLS_CLIENT_CERT']));
        $this->assertSame(Memcached::RES_INVALID_ARGUMENTS, $this->mc->getResultCode());
        $this->assertStringContainsString('cannot read a private key', $this->mc->getResultMessage());
    }

    public function testLoginWithTheRightAndAWrongPassword(): void
    {
        $mc = new Memcached(servers: [TestEnv::$secure['AUTH_SERVER']]);
        $this->assertTrue($mc->setSaslAuthData(TestEnv::$secure['AUTH_USER'], TestEnv::$secure['AUTH_PASSWORD']));
        $this->assertTrue($mc->set($this->key('auth'), 'logged in'));
        $byFile = new Memcached(servers: [TestEnv::$secure['AUTH_SERVER']], options: [Memcached::OPT_AUTH_FILE => TestEnv::$secure['AUTH_FILE']]);
        $this->assertSame('logged in', $byFile->get($this->key('auth')));
        $this->assertTrue($byFile->setMulti([$this->key('auth2') => 'x']));

        $wrong = new Memcached(servers: [TestEnv::$secure['AUTH_SERVER']]);
        $this->assertTrue($wrong->setSaslAuthData(TestEnv::$secure['AUTH_USER'], 'wrong'));
        try {
            $wrong->get($this->key('auth'));
            $this->fail('served with a wrong password');
        } catch (NoServerException $e) {
            $this->assertStringContainsString('authentication as "' . TestEnv::$secure['AUTH_USER'] . '" refused', $e->getMessage());
            $this->assertStringNotContainsString('wrong', $e->getMessage(), 'the password is never shown');
        }
        $this->assertFalse($wrong->setSaslAuthData('has space', 'x'));
        $this->assertSame(Memcached::RES_INVALID_ARGUMENTS, $wrong->getResultCode());
    }

    public function testACredentialsFileOthersCanReadIsRefused(): void
    {
        $file = tempnam(sys_get_temp_dir(), 'php-auth');
        try {
            file_put_contents($file, "app:secret\n");
            chmod($file, 0644);
            $this->assertFalse($this->mc->setOption(Memcached::OPT_AUTH_FILE, $file));
            $this->assertStringContainsString('lets others read', $this->mc->getResultMessage());
            $this->assertStringNotContainsString('secret', $this->mc->getResultMessage());
        } finally {
            unlink($file);
        }
    }
}
