<?php

declare(strict_types=1);

namespace Libmemcache;

/** The handle was closed with close(). */
class ClosedException extends Exception
{
}
