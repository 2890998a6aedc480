<?php

declare(strict_types=1);

namespace Libmemcache;

/**
 * Every error the package throws. getCode() is the php-memcached result code
 * (Memcached::RES_*, also what getResultCode() says afterwards); getLibraryCode() is
 * libmemcache's MCM_ERR_* code when the library reported one, else 0.
 */
class Exception extends \RuntimeException
{
    public function __construct(string $message, int $resultCode = Memcached::RES_FAILURE, private int $libraryCode = 0, ?\Throwable $previous = null)
    {
        parent::__construct($message, $resultCode, $previous);
    }

    public function getLibraryCode(): int
    {
        return $this->libraryCode;
    }
}
