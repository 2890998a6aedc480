<?php

declare(strict_types=1);

namespace Libmemcache;

/**
 * The FFI handle on libmemcache.so.0, made once per process. Where the library comes from,
 * first match wins:
 *   1. the scope "libmemcache" that preload.php registered at server start (opcache.preload;
 *      the only way under php-fpm with ffi.enable=preload);
 *   2. $LIBMEMCACHE_LIB, the full path of the library;
 *   3. $LIBMEMCACHE_PREFIX/lib/libmemcache.so.0 (the PREFIX given to `make install`);
 *   4. "libmemcache.so.0" through the dynamic loader (LD_LIBRARY_PATH, ld.so.conf).
 * A variable that is set but names no file is an error, not a fall-through to some other copy.
 */
final class Library
{
    public const SCOPE = 'libmemcache';
    public const SONAME = 'libmemcache.so.0';
    /** MCM_ERR_LVL_INFO | NOTICE | WARN | ERR | FATAL */
    private const ALL_LEVELS = 0x1f;

    private static ?\FFI $ffi = null;

    /** The declarations FFI reads: ffi/libmemcache.h, shared with FFI::load() in preload.php. */
    public static function header(): string
    {
        return dirname(__DIR__) . '/ffi/libmemcache.h';
    }

    public static function ffi(): \FFI
    {
        if (self::$ffi === null) {
            if (!extension_loaded('FFI')) {
                throw new ConfigException('the PHP FFI extension is not loaded (Debian: php-cli has it)');
            }
            $ffi = self::preloaded() ?? self::load(self::path());
            // The library's default handler prints every report on stderr; each failure becomes
            // an exception here instead (mc_last_error still sees the reports).
            $ffi->mc_err_filter_add(self::ALL_LEVELS);
            self::$ffi = $ffi;
        }
        return self::$ffi;
    }

    /** Turns the library's stderr reports back on (true) or off (false, the default). Process-wide. */
    public static function stderrReports(bool $on): void
    {
        $on ? self::ffi()->mc_err_filter_del(self::ALL_LEVELS) : self::ffi()->mc_err_filter_add(self::ALL_LEVELS);
    }

    /** @param array<string, string|false> $env the environment, getenv() by default */
    public static function path(?array $env = null): string
    {
        $get = fn (string $name): string => (string) ($env === null ? getenv($name) : ($env[$name] ?? ''));
        $lib = $get('LIBMEMCACHE_LIB');
        if ($lib !== '') {
            return self::existing($lib, 'LIBMEMCACHE_LIB');
        }
        $prefix = $get('LIBMEMCACHE_PREFIX');
        if ($prefix !== '') {
            return self::existing(rtrim($prefix, '/') . '/lib/' . self::SONAME, 'LIBMEMCACHE_PREFIX');
        }
        return self::SONAME;
    }

    private static function existing(string $path, string $variable): string
    {
        if (!is_file($path)) {
            throw new ConfigException("$variable names $path, which is not a file");
        }
        return $path;
    }

    private static function preloaded(): ?\FFI
    {
        try {
            return \FFI::scope(self::SCOPE);
        } catch (\FFI\Exception) {
            return null;
        }
    }

    private static function load(string $path): \FFI
    {
        $text = file_get_contents(self::header());
        if ($text === false) {
            throw new ConfigException('cannot read ' . self::header());
        }
        // FFI::cdef() takes declarations only: the FFI_SCOPE/FFI_LIB lines are for FFI::load().
        $declarations = preg_replace('/^#define FFI_\w+ .*$/m', '', $text);
        try {
            return \FFI::cdef((string) $declarations, $path);
        } catch (\FFI\Exception $e) {
            $message = "cannot load $path: " . $e->getMessage();
            if (ini_get('ffi.enable') === 'preload' && PHP_SAPI !== 'cli') {
                // Outside the CLI, ffi.enable=preload lets only preloaded code call FFI.
                $message .= '; with ffi.enable=preload set ffi.preload=' . self::header()
                    . ' and opcache.preload=' . dirname(__DIR__) . '/preload.php (see README.md), or ffi.enable=true';
            }
            throw new ConfigException($message, Memcached::RES_FAILURE, 0, $e);
        }
    }
}
