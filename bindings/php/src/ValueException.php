<?php

declare(strict_types=1);

namespace Libmemcache;

/**
 * A value cannot be stored (it does not serialize) or a stored value cannot be read back: a
 * payload that does not inflate, unserialize or decode, or an unknown type (RES_PAYLOAD_FAILURE).
 */
class ValueException extends Exception
{
}
