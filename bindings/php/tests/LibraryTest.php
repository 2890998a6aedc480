<?php

declare(strict_types=1);

use Libmemcache\ConfigException;
use Libmemcache\Library;
use PHPUnit\Framework\TestCase;

/** Where the library is found, and the preloaded scope production uses. */
final class LibraryTest extends TestCase
{
    public function testPathFromTheEnvironment(): void
    {
        $this->assertSame('libmemcache.so.0', Library::path([]));
        $lib = (string) getenv('LIBMEMCACHE_PREFIX') . '/lib/libmemcache.so.0';
        $this->assertFileExists($lib, 'the tests run with LIBMEMCACHE_PREFIX set');
        $this->assertSame($lib, Library::path(['LIBMEMCACHE_PREFIX' => getenv('LIBMEMCACHE_PREFIX')]));
        $this->assertSame($lib, Library::path(['LIBMEMCACHE_LIB' => $lib, 'LIBMEMCACHE_PREFIX' => '/nowhere']));
    }

    public function testAVariableNamingNoFileIsAnError(): void
    {
        $this->expectException(ConfigException::class);
        $this->expectExceptionMessage('LIBMEMCACHE_LIB names /no/such/libmemcache.so.0, which is not a file');
        Library::path(['LIBMEMCACHE_LIB' => '/no/such/libmemcache.so.0']);
    }

    /**
     * As a php-fpm started as root runs it: ffi.enable=preload, ffi.preload registers the scope
     * from ffi/libmemcache.h, opcache.preload=preload.php preloads the classes (with a
     * preload_user, as root needs); the request script calls the library with no FFI::cdef().
     */
    public function testPreloadedScopeUnderFfiEnablePreload(): void
    {
        $root = dirname(__DIR__);
        $script = <<<'PHP'
            require getenv('AUTOLOAD');
            $mc = new Libmemcache\Memcached(servers: [getenv('MEMCACHE_TEST_SERVER_A')]);
            $mc->set('preload-check', ['ok' => true]);
            echo json_encode([FFI::scope('libmemcache') instanceof FFI, $mc->get('preload-check')]);
            PHP;
        $cmd = [
            PHP_BINARY, '-n', '-d', 'extension=ffi', '-d', 'zend_extension=opcache',
            '-d', 'ffi.enable=preload', '-d', "ffi.preload=$root/ffi/libmemcache.h", '-d', 'opcache.enable_cli=1',
            '-d', "opcache.preload=$root/preload.php", '-d', 'opcache.preload_user=' . (posix_getpwuid(posix_geteuid())['name'] ?? 'root'),
            '-r', $script,
        ];
        $vendor = getenv('COMPOSER_VENDOR_DIR') ?: "$root/vendor";
        $env = [
            'AUTOLOAD' => "$vendor/autoload.php",
            'MEMCACHE_TEST_SERVER_A' => TestEnv::$serverA,
            'MEMCACHE_SHM_PREFIX' => TestEnv::$shmPrefix,
            // FFI_LIB names the soname: the dynamic loader finds it, as after `make install && ldconfig`.
            'LD_LIBRARY_PATH' => getenv('LIBMEMCACHE_PREFIX') . '/lib',
            'PATH' => (string) getenv('PATH'),
        ];
        $proc = proc_open($cmd, [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, null, $env);
        $this->assertIsResource($proc);
        $out = stream_get_contents($pipes[1]);
        $err = stream_get_contents($pipes[2]);
        $status = proc_close($proc);
        $this->assertSame(0, $status, "php with preload: $out $err");
        $this->assertSame('[true,{"ok":true}]', $out, $err);
    }
}
