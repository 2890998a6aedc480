<?php

declare(strict_types=1);

namespace Libmemcache;

/** The key is empty, longer than 250 bytes, or holds whitespace or a control byte (RES_BAD_KEY_PROVIDED). */
class InvalidKeyException extends Exception
{
}
