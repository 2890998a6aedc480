<?php

declare(strict_types=1);

/*
 * Tests of the PHP binding against real memcached servers; exits non-zero on any failure. Run by
 * tests/php.rs (`make test`), or by hand:
 *
 *   MEMCACHE_TEST_SERVER_A=127.0.0.1:11211 MEMCACHE_TEST_SERVER_B=127.0.0.1:11212 \
 *   MCADMIN=/path/to/mcadmin MEMCACHE_SHM_PREFIX=phptest \
 *   LD_LIBRARY_PATH=/prefix/lib php -d ffi.enable=1 tests/run.php
 *
 * MEMCACHE_SHM_PREFIX keeps the test's domains apart from the host's real ones; this process and
 * the mcadmin it runs both inherit it.
 */

require __DIR__ . '/../src/Memcache.php';

use LibMemcache\ClosedException;
use LibMemcache\ConfigException;
use LibMemcache\InvalidKeyException;
use LibMemcache\Memcache;
use LibMemcache\NoServerException;
use LibMemcache\ServerErrorException;

function env(string $name): string
{
    $value = getenv($name);
    if ($value === false || $value === '') {
        fwrite(STDERR, "run.php: set $name (see the comment at the top of this file)\n");
        exit(2);
    }
    return $value;
}

$A = env('MEMCACHE_TEST_SERVER_A');
$B = env('MEMCACHE_TEST_SERVER_B');
$MCADMIN = env('MCADMIN');
env('MEMCACHE_SHM_PREFIX');

final class Failed extends \Exception
{
}

function check(bool $ok, string $what): void
{
    if (!$ok) {
        throw new Failed($what);
    }
}

function same(mixed $expected, mixed $actual, string $what = ''): void
{
    if ($expected !== $actual) {
        throw new Failed(sprintf(
            "%sexpected %s, got %s",
            $what === '' ? '' : "$what: ",
            var_export($expected, true),
            var_export($actual, true)
        ));
    }
}

/** Runs $fn and returns the exception of class $class it throws; fails otherwise. */
function throws(string $class, callable $fn): \Throwable
{
    try {
        $fn();
    } catch (\Throwable $e) {
        if ($e instanceof $class) {
            return $e;
        }
        throw new Failed("expected $class, got " . get_class($e) . ': ' . $e->getMessage());
    }
    throw new Failed("expected $class, nothing was thrown");
}

function mcadmin(string ...$args): void
{
    global $MCADMIN;
    $cmd = escapeshellarg($MCADMIN) . ' ' . implode(' ', array_map('escapeshellarg', $args)) . ' 2>&1';
    exec($cmd, $out, $rc);
    if ($rc !== 0) {
        throw new Failed("mcadmin " . implode(' ', $args) . " failed ($rc): " . implode("\n", $out));
    }
}

function rss_kib(): int
{
    preg_match('/^VmRSS:\s+(\d+)/m', (string) file_get_contents('/proc/self/status'), $m);
    return (int) $m[1];
}

$ns = 't' . bin2hex(random_bytes(4));
$key = fn (string $name): string => "$ns:$name";
$tests = [];

$tests['binary value with NUL bytes round trips'] = function () use ($A, $key) {
    $mc = new Memcache(servers: [$A]);
    $value = "\0head\0\xff\xfe middle \r\n\0tail\0";
    same(true, $mc->set($key('bin'), $value));
    $got = $mc->get($key('bin'));
    same(bin2hex($value), bin2hex((string) $got));
    same(24, strlen((string) $got));
};

$tests['large and empty values'] = function () use ($A, $key) {
    $mc = new Memcache(servers: [$A]);
    mt_srand(7);
    $big = '';
    for ($i = 0; $i < 512 * 1024; $i++) {
        $big .= chr(mt_rand(0, 255));
    }
    check($mc->set($key('big'), $big), 'big set');
    same(md5($big), md5((string) $mc->get($key('big'))));
    check($mc->set($key('empty'), ''), 'empty set');
    same('', $mc->get($key('empty')));
};

$tests['miss is null'] = function () use ($A, $key) {
    $mc = new Memcache(servers: [$A]);
    same(null, $mc->get($key('never-set')));
};

$tests['bad key throws InvalidKeyException with a clear message'] = function () use ($A, $key) {
    $mc = new Memcache(servers: [$A]);
    $e = throws(InvalidKeyException::class, fn () => $mc->get('has space'));
    check(
        (bool) preg_match('/invalid key "has space": .*whitespace or a control byte/', $e->getMessage()),
        'message: ' . $e->getMessage()
    );
    same(14, $e->getCode(), 'MCM_ERR_PROTO');
    $e = throws(InvalidKeyException::class, fn () => $mc->set("a\nb", 'v'));
    check(str_contains($e->getMessage(), 'whitespace or a control byte'), $e->getMessage());
    $e = throws(InvalidKeyException::class, fn () => $mc->get(''));
    check(str_contains($e->getMessage(), 'empty'), $e->getMessage());
    $e = throws(InvalidKeyException::class, fn () => $mc->delete(str_repeat('k', 251)));
    check(str_contains($e->getMessage(), 'longer than 250 bytes'), $e->getMessage());
    throws(InvalidKeyException::class, fn () => $mc->incr("tab\tkey"));
    throws(InvalidKeyException::class, fn () => $mc->getMulti([$key('ok'), 'bad key']));
    check($e instanceof \LibMemcache\Exception, 'InvalidKeyException is a LibMemcache\Exception');
    check($mc->set($key('after'), '1'), 'the handle works afterwards');
    same('1', $mc->get($key('after')));
};

$tests['key is checked before a stale error is looked at'] = function () {
    $dead = new Memcache(servers: ['127.0.0.1:1']);
    throws(NoServerException::class, fn () => $dead->get('k'));
    throws(InvalidKeyException::class, fn () => $dead->get('bad key'));
};

$tests['add, replace, delete'] = function () use ($A, $key) {
    $mc = new Memcache(servers: [$A]);
    $k = $key('ard');
    same(false, $mc->replace($k, 'r0'), 'replace of an absent key');
    same(null, $mc->get($k));
    same(true, $mc->add($k, 'a1'));
    same(false, $mc->add($k, 'a2'), 'add of an existing key');
    same('a1', $mc->get($k));
    same(true, $mc->replace($k, 'r1'));
    same('r1', $mc->get($k));
    same(true, $mc->delete($k));
    same(false, $mc->delete($k));
    same(null, $mc->get($k));
};

$tests['set takes integers, ttl and flags'] = function () use ($A, $key) {
    $mc = new Memcache(servers: [$A]);
    check($mc->set($key('n'), 42, ttl: 300, flags: 0xffff), 'set');
    same('42', $mc->get($key('n')));
    throws(\InvalidArgumentException::class, fn () => $mc->set($key('f'), 'v', flags: 0x10000));
    throws(\InvalidArgumentException::class, fn () => $mc->set($key('f'), 'v', ttl: -1));
};

$tests['incr and decr'] = function () use ($A, $key) {
    $mc = new Memcache(servers: [$A]);
    $k = $key('counter');
    same(null, $mc->incr($k), 'incr of an absent key');
    same(null, $mc->decr($k), 'decr of an absent key');
    check($mc->set($k, '10'), 'set');
    same(11, $mc->incr($k));
    same(16, $mc->incr($k, 5));
    same(13, $mc->decr($k, 3));
    same(0, $mc->decr($k, 100), 'memcached stops at 0');
    check($mc->set($k, (string) (2 ** 32)), 'set 2^32');
    same(2 ** 32 + 1, $mc->incr($k), '64-bit counters');
    // memcached 1.6.18 may refuse to parse a stored counter of 2^63 or more (its check for a
    // minus sign reads past the value), so the test only goes up to 2^63.
    check($mc->set($k, (string) PHP_INT_MAX), 'set 2^63-1');
    same('9223372036854775808', $mc->incr($k), 'above PHP_INT_MAX: a decimal string');
    check($mc->set($k, 'not a number'), 'set text');
    $e = throws(ServerErrorException::class, fn () => $mc->incr($k));
    check(str_contains($e->getMessage(), 'non-numeric'), $e->getMessage());
    throws(\InvalidArgumentException::class, fn () => $mc->incr($k, -1));
};

$tests['getMulti'] = function () use ($A, $key) {
    $mc = new Memcache(servers: [$A]);
    check($mc->set($key('m1'), 'one'), 'set m1');
    check($mc->set($key('m2'), "t\0wo"), 'set m2');
    check($mc->set($key('m3'), ''), 'set m3');
    $got = $mc->getMulti([$key('m1'), $key('m2'), $key('missing'), $key('m3'), $key('m1')]);
    ksort($got);
    same([$key('m1') => 'one', $key('m2') => "t\0wo", $key('m3') => ''], $got);
    same([], $mc->getMulti([$key('missing')]));
    same([], $mc->getMulti([]));
};

$tests['distribution of an explicit list'] = function () use ($A, $B, $key) {
    $list = [$A, $B];
    $ring = new Memcache(servers: $list, distribution: 'ketama-md5');
    $same = new Memcache(servers: $list, distribution: 'KETAMA-MD5');
    $modulo = new Memcache(servers: $list);
    $keys = [];
    for ($i = 1; $i <= 40; $i++) {
        $keys[] = $key("ring$i");
    }
    foreach ($keys as $k) {
        check($ring->set($k, 'r'), "set $k");
    }
    same(count($keys), count($same->getMulti($keys)), 'ketama-md5 finds its own keys');
    // The default is 1.4's crc32-modulo, which puts some of these keys elsewhere.
    check(count($modulo->getMulti($keys)) < count($keys), 'ketama-md5 was not applied');
    $explicit = new Memcache(servers: $list, distribution: 'crc32-modulo');
    foreach ($keys as $k) {
        check($modulo->set($k, 'm'), "set $k");
    }
    same(count($keys), count($explicit->getMulti($keys)), 'crc32-modulo is the default');
    throws(\InvalidArgumentException::class, fn () => new Memcache(servers: [$A], distribution: 'modulo'));
    throws(\InvalidArgumentException::class, fn () => new Memcache(domain: 'd', distribution: 'ketama-md5'));
};

$tests['getMulti across two servers'] = function () use ($A, $B, $key) {
    $both = new Memcache(servers: [$A, $B]);
    $keys = [];
    for ($i = 1; $i <= 40; $i++) {
        $keys[] = $key("spread$i");
    }
    foreach ($keys as $k) {
        check($both->set($k, "v-$k"), "set $k");
    }
    $want = [];
    foreach ($keys as $k) {
        $want[$k] = "v-$k";
    }
    $got = $both->getMulti($keys);
    ksort($got);
    ksort($want);
    same($want, $got);
    $onA = count((new Memcache(servers: [$A]))->getMulti($keys));
    check($onA > 0 && $onA < count($keys), "40 keys spread over both servers ($onA on A)");
};

$tests['stats'] = function () use ($A, $key) {
    $mc = new Memcache(servers: [$A]);
    check($mc->set($key('s'), 'x'), 'set');
    $mc->get($key('s'));
    $stats = $mc->stats();
    same([$A], array_keys($stats));
    $s = $stats[$A];
    check(is_int($s['pid']) && $s['pid'] > 0, 'pid');
    check((bool) preg_match('/^\d+\.\d+/', (string) $s['version']), 'version ' . $s['version']);
    check($s['cmd_set'] >= 1, 'cmd_set');
    check($s['get_hits'] >= 1, 'get_hits');
    check($s['limit_maxbytes'] > 0, 'limit_maxbytes');
    check(is_float($s['rusage_user']), 'rusage_user is a float');
    same([$A], $mc->servers());
};

$tests['stats of a dead server is null'] = function () use ($A) {
    $mixed = new Memcache(servers: [$A, '127.0.0.1:1']);
    $stats = $mixed->stats();
    same(null, $stats['127.0.0.1:1']);
    check(is_array($stats[$A]), 'live server has stats');
};

$tests['no server'] = function () {
    $dead = new Memcache(servers: ['127.0.0.1:1']);
    $e = throws(NoServerException::class, fn () => $dead->set('k', 'v'));
    check(str_contains($e->getMessage(), 'server'), $e->getMessage());
    throws(NoServerException::class, fn () => $dead->get('k'));
    throws(NoServerException::class, fn () => $dead->incr('k'));
    throws(NoServerException::class, fn () => $dead->delete('k'));
    throws(NoServerException::class, fn () => $dead->getMulti(['k', 'l']));
};

$tests['miss after failing over from a dead server is null'] = function () use ($A, $key) {
    // The first key that maps to the dead server fails over to the live one within the call;
    // the library then still reports the refused connect, which must not turn the miss into an
    // error.
    $mixed = new Memcache(servers: ['127.0.0.1:1', $A]);
    for ($i = 0; $i < 10; $i++) {
        same(null, $mixed->get($key("failover$i")));
    }
    check($mixed->set($key('failover'), 'v'), 'set');
    same('v', $mixed->get($key('failover')));
};

$tests['constructor errors'] = function () use ($A) {
    throws(ConfigException::class, fn () => new Memcache(domain: 'no spaces allowed'));
    throws(ConfigException::class, fn () => new Memcache(servers: ['host.invalid:11211']));
    throws(\InvalidArgumentException::class, fn () => new Memcache(domain: 'd', servers: [$A]));
    throws(\InvalidArgumentException::class, fn () => new Memcache(servers: []));
};

$tests['close'] = function () use ($A) {
    $mc = new Memcache(servers: [$A]);
    check(!$mc->isClosed(), 'open');
    $mc->close();
    check($mc->isClosed(), 'closed');
    $mc->close();
    throws(ClosedException::class, fn () => $mc->get('k'));
};

$tests['library buffers are released'] = function () use ($A, $key) {
    $mc = new Memcache(servers: [$A]);
    check($mc->set($key('mem'), str_repeat('v', 64 * 1024)), 'set');
    $before = rss_kib();
    for ($i = 0; $i < 3000; $i++) {
        $mc->get($key('mem'));
        $mc->getMulti([$key('mem'), $key('nothing')]);
    }
    for ($i = 0; $i < 200; $i++) {
        $mc->stats();
        (new Memcache(servers: [$A]))->close();
        new Memcache(servers: [$A]); // freed by the destructor
    }
    $grown = rss_kib() - $before;
    // A leak of the values alone would be 3000 * 2 * 64 KiB = 375 MiB.
    check($grown < 64 * 1024, "RSS grew by $grown KiB");
};

$tests['domain handle follows mcadmin without reconnecting'] = function () use ($A, $B, $key) {
    $domain = 'php' . bin2hex(random_bytes(4));
    mcadmin('--domain', $domain, 'set', $A);
    try {
        $shared = new Memcache(domain: $domain);
        $a = new Memcache(servers: [$A]);
        $b = new Memcache(servers: [$B]);
        $k = $key('domain');

        check($shared->set($k, 'first'), 'set under the first list');
        same('first', $a->get($k));
        same(null, $b->get($k));
        same([$A], $shared->servers());

        mcadmin('--domain', $domain, 'set', $B);
        // The same object, no reconnect or reopen: its next operation uses the new list.
        check($shared->set($k, 'second'), 'set under the second list');
        same('second', $b->get($k));
        same('first', $a->get($k), 'the old server was not written');
        same('second', $shared->get($k));
        same([$B], $shared->servers());
        same([$B], array_keys($shared->stats()));
    } finally {
        mcadmin('--domain', $domain, 'destroy');
    }
};

$tests['default handle follows MEMCACHE_DOMAIN'] = function () use ($B, $key) {
    $domain = 'php' . bin2hex(random_bytes(4));
    mcadmin('--domain', $domain, 'set', $B);
    $saved = getenv('MEMCACHE_DOMAIN');
    putenv("MEMCACHE_DOMAIN=$domain");
    try {
        $mc = new Memcache();
        same([$B], $mc->servers());
        check($mc->set($key('default-domain'), 'b'), 'set');
        same('b', (new Memcache(servers: [$B]))->get($key('default-domain')));
    } finally {
        putenv($saved === false ? 'MEMCACHE_DOMAIN' : "MEMCACHE_DOMAIN=$saved");
        mcadmin('--domain', $domain, 'destroy');
    }
};

$tests['domain without servers throws NoServerException'] = function () {
    $empty = new Memcache(domain: 'php' . bin2hex(random_bytes(4)));
    same([], $empty->servers());
    throws(NoServerException::class, fn () => $empty->get('k'));
    throws(NoServerException::class, fn () => $empty->set('k', 'v'));
};

$passed = 0;
$failed = 0;
$started = microtime(true);
foreach ($tests as $name => $test) {
    try {
        $test();
        $passed++;
        echo "ok   $name\n";
    } catch (\Throwable $e) {
        $failed++;
        echo "FAIL $name\n";
        $where = $e instanceof Failed ? $e->getTrace()[0] ?? [] : ['file' => $e->getFile(), 'line' => $e->getLine()];
        printf("     %s (%s:%s)\n", $e->getMessage(), basename($where['file'] ?? '?'), $where['line'] ?? '?');
        if (!$e instanceof Failed) {
            echo '     ', get_class($e), "\n", preg_replace('/^/m', '     ', $e->getTraceAsString()), "\n";
        }
    }
}
printf("%.2fs\n", microtime(true) - $started);
echo "$passed passed, $failed failed\n";
exit($failed === 0 ? 0 : 1);
