<?php

declare(strict_types=1);

namespace Libmemcache;

/** The library cannot be loaded, a domain name is invalid, a server address does not resolve, or a server cannot be added to a handle that follows a domain. */
class ConfigException extends Exception
{
}
