<?php

declare(strict_types=1);

namespace Libmemcache;

/** A server answered with an error (incr of a non-number, a value too large), a connection broke mid-command, or a call timed out. */
class ServerErrorException extends Exception
{
}
