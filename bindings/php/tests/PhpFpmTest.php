<?php

declare(strict_types=1);

use PHPUnit\Framework\TestCase;

/**
 * The package under a real php-fpm with Debian's ffi.enable=preload, as the README sets it up:
 * ffi.preload registers the scope, opcache.preload=preload.php preloads the classes (outside the
 * CLI only preloaded code may call FFI). A request through a FastCGI client (cgi-fcgi, Debian's
 * libfcgi-bin) on a Unix socket stores and reads a value; without the class preload the request
 * gets an error that says what to set.
 */
final class PhpFpmTest extends TestCase
{
    private const WAIT_SECONDS = 20;

    private string $dir;

    protected function setUp(): void
    {
        $this->dir = sys_get_temp_dir() . '/libmemcache-fpm-' . bin2hex(random_bytes(4));
        mkdir($this->dir);
    }

    protected function tearDown(): void
    {
        foreach (glob("{$this->dir}/*") ?: [] as $file) {
            unlink($file);
        }
        rmdir($this->dir);
    }

    public function testRequestUsesThePreloadedPackage(): void
    {
        $out = $this->request(true);
        $this->assertStringContainsString('{"stored":true,"read":{"sapi":"fpm-fcgi"},"version":true,"stats":true,"multi":1}', $out);
    }

    public function testWithoutTheClassPreloadTheErrorSaysWhatToSet(): void
    {
        $out = $this->request(false);
        $this->assertStringContainsString('Libmemcache\ConfigException', $out);
        $this->assertStringContainsString('opcache.preload=', $out);
    }

    /** Starts php-fpm, sends one request, stops it; the response body. */
    private function request(bool $preloadClasses): string
    {
        $fpm = getenv('PHP_FPM') ?: (glob('/usr/sbin/php-fpm*')[0] ?? '');
        $this->assertFileExists($fpm, 'php-fpm is needed (Debian package php-fpm)');
        $client = trim((string) shell_exec('command -v cgi-fcgi'));
        $this->assertNotSame('', $client, 'cgi-fcgi is needed (Debian package libfcgi-bin)');
        $root = dirname(__DIR__);
        $vendor = getenv('COMPOSER_VENDOR_DIR') ?: "$root/vendor";
        $socket = "{$this->dir}/fpm.sock";
        file_put_contents("{$this->dir}/fpm.conf", implode("\n", [
            '[global]',
            "error_log = {$this->dir}/fpm.log",
            'daemonize = no',
            '[www]',
            "listen = $socket",
            'pm = static',
            'pm.max_children = 1',
            '',
        ]));
        $server = var_export(TestEnv::$serverA, true);
        file_put_contents("{$this->dir}/request.php", <<<PHP
            <?php
            require '$vendor/autoload.php';
            try {
                \$mc = new Libmemcache\\Memcached(servers: [$server]);
                \$key = 'fpm-' . bin2hex(random_bytes(4));
                echo json_encode(['stored' => \$mc->set(\$key, ['sapi' => PHP_SAPI]), 'read' => \$mc->get(\$key), 'version' => is_string(current(\$mc->getVersion())), 'stats' => is_array(current(\$mc->getStats())), 'multi' => count(\$mc->getMulti([\$key]))]);
            } catch (Throwable \$e) {
                echo get_class(\$e), ': ', \$e->getMessage();
            }
            PHP);
        $user = posix_getpwuid(posix_geteuid())['name'] ?? 'root';
        $cmd = [
            $fpm, '-n', '-F', '-R', '-y', "{$this->dir}/fpm.conf",
            '-d', 'extension=ffi', '-d', 'zend_extension=opcache', '-d', 'opcache.enable=1',
            '-d', 'ffi.enable=preload', '-d', "ffi.preload=$root/ffi/libmemcache.h",
        ];
        if ($preloadClasses) {
            array_push($cmd, '-d', "opcache.preload=$root/preload.php", '-d', "opcache.preload_user=$user");
        }
        $env = [
            'LD_LIBRARY_PATH' => getenv('LIBMEMCACHE_PREFIX') . '/lib',
            'PATH' => (string) getenv('PATH'),
        ];
        $proc = proc_open($cmd, [0 => ['file', '/dev/null', 'r'], 1 => ['file', "{$this->dir}/fpm.out", 'w'], 2 => ['file', "{$this->dir}/fpm.out", 'a']], $pipes, null, $env);
        $this->assertIsResource($proc);
        try {
            $deadline = microtime(true) + self::WAIT_SECONDS;
            while (!file_exists($socket) && proc_get_status($proc)['running'] && microtime(true) < $deadline) {
                usleep(20000);
            }
            $this->assertFileExists($socket, 'php-fpm did not listen: ' . @file_get_contents("{$this->dir}/fpm.out") . @file_get_contents("{$this->dir}/fpm.log"));
            $request = proc_open(['timeout', (string) self::WAIT_SECONDS, $client, '-bind', '-connect', $socket], [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $io, null, [
                'SCRIPT_FILENAME' => "{$this->dir}/request.php",
                'REQUEST_METHOD' => 'GET',
                'PATH' => (string) getenv('PATH'),
            ]);
            $this->assertIsResource($request);
            $response = (string) stream_get_contents($io[1]);
            $err = (string) stream_get_contents($io[2]);
            $this->assertSame(0, proc_close($request), "cgi-fcgi: $err");
            return $response;
        } finally {
            proc_terminate($proc);
            proc_close($proc);
        }
    }
}
