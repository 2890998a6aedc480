<?php

/*
 * PHPUnit's bootstrap for the package's tests, which run against real memcached servers. Run by
 * tests/php.rs (`make test`), or by hand in bindings/php:
 *
 *   COMPOSER_VENDOR_DIR=/tmp/vendor composer dump-autoload
 *   MEMCACHE_TEST_SERVER_A=127.0.0.1:11211 MEMCACHE_TEST_SERVER_B=127.0.0.1:11212 \
 *   MCADMIN=/path/to/mcadmin MEMCACHE_SHM_PREFIX=phptest LIBMEMCACHE_PREFIX=/prefix \
 *   MEMCACHE_TEST_TLS_SERVER=tls://127.0.0.1:11213 MEMCACHE_TEST_TLS_CA=ca.pem \
 *   MEMCACHE_TEST_TLS_WRONG_CA=other.pem MEMCACHE_TEST_MTLS_SERVER=tls://127.0.0.1:11215 \
 *   MEMCACHE_TEST_TLS_CLIENT_CERT=client.pem MEMCACHE_TEST_TLS_CLIENT_KEY=client.key \
 *   MEMCACHE_TEST_AUTH_SERVER=127.0.0.1:11214 \
 *   MEMCACHE_TEST_AUTH_USER=app MEMCACHE_TEST_AUTH_PASSWORD=... MEMCACHE_TEST_AUTH_FILE=file \
 *   COMPOSER_VENDOR_DIR=/tmp/vendor phpunit
 *
 * MEMCACHE_SHM_PREFIX keeps the tests' domains apart from the host's real ones; this process and
 * the mcadmin it runs both inherit it. The classes come through Composer's PSR-4 autoloader.
 */

declare(strict_types=1);

$vendor = getenv('COMPOSER_VENDOR_DIR') ?: dirname(__DIR__) . '/vendor';
$autoload = (str_starts_with($vendor, '/') ? $vendor : dirname(__DIR__) . "/$vendor") . '/autoload.php';
if (!is_file($autoload)) {
    fwrite(STDERR, "bootstrap.php: no $autoload: run `composer dump-autoload` first\n");
    exit(2);
}
require $autoload;

/** The environment the tests need, checked once: a missing variable stops the run, it does not skip. */
final class TestEnv
{
    public static string $serverA;
    public static string $serverB;
    public static string $mcadmin;
    public static string $shmPrefix;
    /** The memcached -Z and -Y of support/secure_servers.rs (MEMCACHE_TEST_TLS_* and _AUTH_*). */
    public static array $secure = [];

    public static function load(): void
    {
        self::$serverA = self::fetch('MEMCACHE_TEST_SERVER_A');
        self::$serverB = self::fetch('MEMCACHE_TEST_SERVER_B');
        self::$mcadmin = self::fetch('MCADMIN');
        self::$shmPrefix = self::fetch('MEMCACHE_SHM_PREFIX');
        foreach (['TLS_SERVER', 'TLS_CA', 'TLS_WRONG_CA', 'MTLS_SERVER', 'TLS_CLIENT_CERT', 'TLS_CLIENT_KEY', 'AUTH_SERVER', 'AUTH_USER', 'AUTH_PASSWORD', 'AUTH_FILE'] as $name) {
            self::$secure[$name] = self::fetch("MEMCACHE_TEST_$name");
        }
    }

    /**
     * The server's counters over a socket of its own: [name => int, the bytes of this reply]
     * (the reply counts in the server's next bytes_written).
     *
     * @return array{array<string, int>, int}
     */
    public static function rawStats(string $server): array
    {
        $sock = self::connect($server);
        try {
            fwrite($sock, "stats\r\n");
            $stats = [];
            $size = 0;
            while (($line = fgets($sock)) !== false) {
                $size += strlen($line);
                if ($line === "END\r\n") {
                    break;
                }
                $words = explode(' ', trim($line));
                $stats[$words[1]] = (int) ($words[2] ?? 0);
            }
            return [$stats, $size];
        } finally {
            fclose($sock);
        }
    }

    private static function fetch(string $name): string
    {
        $value = (string) getenv($name);
        if ($value === '') {
            fwrite(STDERR, "bootstrap.php: set $name (see the comment at the top of this file)\n");
            exit(2);
        }
        return $value;
    }

    /** [host, port] of "host:port". */
    public static function split(string $server): array
    {
        $at = strrpos($server, ':');
        return [substr($server, 0, $at), (int) substr($server, $at + 1)];
    }

    /**
     * The item as the server holds it, asked over a socket of its own: [flags, bytes], or null
     * when absent. Shows the exact layout a client wrote.
     *
     * @return array{int, string}|null
     */
    public static function rawGet(string $server, string $key): ?array
    {
        $sock = self::connect($server);
        try {
            fwrite($sock, "get $key\r\n");
            $head = (string) fgets($sock);
            if ($head === "END\r\n") {
                return null;
            }
            if (preg_match('/^VALUE \S+ (\d+) (\d+)\r\n$/', $head, $m) !== 1) {
                throw new RuntimeException("unexpected reply from $server: " . json_encode($head));
            }
            $bytes = '';
            $want = (int) $m[2] + 2;
            while (strlen($bytes) < $want && !feof($sock)) {
                $bytes .= (string) fread($sock, $want - strlen($bytes));
            }
            fgets($sock); // END
            return [(int) $m[1], substr($bytes, 0, (int) $m[2])];
        } finally {
            fclose($sock);
        }
    }

    /** A socket of the test's own to $server, with 5 s timeouts. @return resource */
    private static function connect(string $server)
    {
        $sock = stream_socket_client("tcp://$server", $errno, $error, 5);
        if ($sock === false) {
            throw new RuntimeException("connect $server: $error");
        }
        stream_set_timeout($sock, 5);
        return $sock;
    }

    /** Runs mcadmin with the tests' private shared-memory prefix; its output, or the test fails. */
    public static function mcadmin(string ...$args): string
    {
        $cmd = array_merge([self::$mcadmin], $args);
        $proc = proc_open($cmd, [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes);
        if ($proc === false) {
            throw new RuntimeException('cannot run ' . self::$mcadmin);
        }
        $out = stream_get_contents($pipes[1]);
        $err = stream_get_contents($pipes[2]);
        $status = proc_close($proc);
        if ($status !== 0) {
            throw new RuntimeException('mcadmin ' . implode(' ', $args) . " exited $status: $err");
        }
        return (string) $out;
    }
}

TestEnv::load();
