<?php

/*
 * For opcache.preload under php-fpm or Apache (see README.md): preloads the package's classes
 * and, unless ffi.preload did it already, registers the FFI scope "libmemcache" once at server
 * start, so requests use the library with ffi.enable=preload. Scripts still load classes
 * through Composer's autoloader.
 */

declare(strict_types=1);

try {
    // Registered already by ffi.preload (the only way when opcache.preload_user is set, as it
    // must be for a server started as root).
    \FFI::scope('libmemcache');
} catch (\FFI\Exception) {
    \FFI::load(__DIR__ . '/ffi/libmemcache.h');
}
// The base exception first: a class is preloaded only once its parent is.
require_once __DIR__ . '/src/Exception.php';
foreach (glob(__DIR__ . '/src/*.php') as $file) {
    require_once $file;
}
