<?php

declare(strict_types=1);

namespace Libmemcache;

/** No server could be chosen or connected to: an empty list, every server down (RES_NO_SERVERS, RES_CONNECTION_FAILURE). */
class NoServerException extends Exception
{
}
