<?php

declare(strict_types=1);

namespace Libmemcache;

/**
 * A memcached client over libmemcache.so.0 with php-memcached's method names, constants and
 * value layout, so that `use Libmemcache\Memcached;` moves most code over. What differs:
 * failures throw (Libmemcache\Exception subclasses) where php-memcached returns false; a miss,
 * an add of a present key and the like still return false, with getResultCode() saying which.
 *
 *   $mc = new Memcached();                          // $MEMCACHE_DOMAIN (else "default") until addServer()
 *   $mc = new Memcached(domain: 'myapp');           // the shared list mcadmin(8) edits
 *   $mc = new Memcached(servers: ['127.0.0.1:11211']);
 *   $mc->set('k', ['any' => 'value'], 60);
 *   $mc->get('k');                                  // the array, or false with RES_NOTFOUND
 */
final class Memcached
{
    // Options (php-memcached's values).
    public const OPT_COMPRESSION = -1001;
    public const OPT_PREFIX_KEY = -1002;
    public const OPT_SERIALIZER = -1003;
    public const OPT_COMPRESSION_TYPE = -1004;
    public const OPT_DISTRIBUTION = 9;
    public const OPT_LIBKETAMA_COMPATIBLE = 16;
    public const DISTRIBUTION_MODULA = 0;
    public const DISTRIBUTION_CONSISTENT = 1;
    public const SERIALIZER_PHP = Codec::SERIALIZER_PHP;
    public const SERIALIZER_IGBINARY = Codec::SERIALIZER_IGBINARY;
    public const SERIALIZER_JSON = Codec::SERIALIZER_JSON;
    public const SERIALIZER_JSON_ARRAY = Codec::SERIALIZER_JSON_ARRAY;
    public const SERIALIZER_MSGPACK = Codec::SERIALIZER_MSGPACK;
    public const COMPRESSION_ZLIB = 1;
    public const COMPRESSION_FASTLZ = 2;
    /** Beyond php-memcached (whose threshold is the ini setting memcached.compression_threshold). */
    public const OPT_COMPRESSION_THRESHOLD = -2001;
    /**
     * Beyond php-memcached, which has no TLS: true speaks TLS to every server (servers written
     * "tls://host:port" always are). The other TLS options apply to every TLS server.
     */
    public const OPT_TLS = -3001;
    /** A PEM file of the CAs to trust for TLS servers (default: the system's). */
    public const OPT_TLS_CA_FILE = -3002;
    /** A PEM client certificate chain for servers that ask for one (mutual TLS). */
    public const OPT_TLS_CERT_FILE = -3003;
    /** The client certificate's private key (default: OPT_TLS_CERT_FILE's file). */
    public const OPT_TLS_KEY_FILE = -3004;
    /** false accepts any server certificate, for any name (tests only; reported). Default true. */
    public const OPT_TLS_VERIFY = -3005;
    /** A file of "user:password" that only its owner can read, to log in with (memcached -Y). */
    public const OPT_AUTH_FILE = -3006;

    public const GET_PRESERVE_ORDER = 1;
    public const GET_EXTENDED = 2;

    // Result codes (php-memcached's values).
    public const RES_SUCCESS = 0;
    public const RES_FAILURE = 1;
    public const RES_HOST_LOOKUP_FAILURE = 2;
    public const RES_CONNECTION_FAILURE = 3;
    public const RES_WRITE_FAILURE = 5;
    public const RES_READ_FAILURE = 6;
    public const RES_PROTOCOL_ERROR = 8;
    public const RES_SERVER_ERROR = 10;
    public const RES_DATA_EXISTS = 12;
    public const RES_NOTSTORED = 14;
    public const RES_NOTFOUND = 16;
    public const RES_SOME_ERRORS = 19;
    public const RES_MEMORY_ALLOCATION_FAILURE = 17;
    public const RES_NO_SERVERS = 20;
    public const RES_NOT_SUPPORTED = 28;
    public const RES_TIMEOUT = 31;
    public const RES_BAD_KEY_PROVIDED = 33;
    public const RES_INVALID_ARGUMENTS = 38;
    public const RES_PAYLOAD_FAILURE = -1001;

    /** libmemcache's MC_DIST_* for OPT_DISTRIBUTION's values. */
    private const DISTRIBUTIONS = [self::DISTRIBUTION_MODULA => 0, self::DISTRIBUTION_CONSISTENT => 1];
    /** The names mclient --distribution, the Ruby gem and PostgreSQL use for them. */
    public const DISTRIBUTION_NAMES = ['crc32-modulo' => self::DISTRIBUTION_MODULA, 'ketama-md5' => self::DISTRIBUTION_CONSISTENT];

    /** mc_bulk()'s operations and per-item results (memcache.h). */
    private const MC_BULK_SET = 1;
    private const MC_BULK_DELETE = 6;
    private const MC_BULK_DONE = 0;
    private const MC_BULK_NOT_STORED = 1;
    private const MC_BULK_REFUSED = 4;
    private const MC_BULK_NOT_FOUND = 6;
    private const MC_BULK_FAILED = -1;
    /** What a key of setMulti()/deleteMulti() that was not written gets, by its MC_BULK_* result. */
    private const BULK_RESULTS = [
        self::MC_BULK_NOT_STORED => self::RES_NOTSTORED, self::MC_BULK_REFUSED => self::RES_SERVER_ERROR,
        self::MC_BULK_FAILED => self::RES_CONNECTION_FAILURE, self::MC_BULK_NOT_FOUND => self::RES_NOTFOUND,
    ];
    private const MC_EXISTS = 5;
    private const MC_NOT_FOUND = 6;
    private const MC_BAD_KEY = -9;
    private const MC_FOLLOWS_DOMAIN = -6;
    private const MC_NO_RESOLVE = -4;
    private const MCM_ERR_PROTO = 14;
    private const MESSAGE_SIZE = 512;
    private const MAX_KEY = 250;
    /** Last-error codes after which a NULL result is still a miss: none, reconnected, a connect
     * failure the call failed over from (a call that found no server ends with 7 or 9), trace. */
    private const BENIGN_CODES = [0, 5, 12, 17, 26];
    /** libmemcache's MCM_ERR_* codes as php-memcached result codes. */
    private const RESULT_OF = [
        7 => self::RES_NO_SERVERS, 9 => self::RES_NO_SERVERS, 12 => self::RES_CONNECTION_FAILURE,
        17 => self::RES_CONNECTION_FAILURE, 13 => self::RES_HOST_LOOKUP_FAILURE,
        14 => self::RES_PROTOCOL_ERROR, 19 => self::RES_READ_FAILURE, 6 => self::RES_WRITE_FAILURE,
        23 => self::RES_WRITE_FAILURE, 25 => self::RES_TIMEOUT, 10 => self::RES_MEMORY_ALLOCATION_FAILURE,
        11 => self::RES_MEMORY_ALLOCATION_FAILURE, 8 => self::RES_SERVER_ERROR,
    ];
    private const NO_SERVER_RESULTS = [self::RES_NO_SERVERS, self::RES_CONNECTION_FAILURE, self::RES_HOST_LOOKUP_FAILURE];

    private \FFI $ffi;
    /** struct memcache *, null once closed */
    private ?\FFI\CData $mc = null;
    /** Made with a domain: addServer() is refused and the domain brings its distribution. */
    private bool $explicitDomain;
    private Codec $codec;
    private string $prefix = '';
    /** OPT_TLS_CERT_FILE and OPT_TLS_KEY_FILE, given to mc_tls_cert() together. */
    private string $tlsCert = '';
    private string $tlsKey = '';
    /** OPT_TLS, OPT_TLS_CA_FILE, OPT_TLS_VERIFY and OPT_AUTH_FILE as last set, for getOption(). */
    private array $security = [];
    private int $resultCode = self::RES_SUCCESS;
    private string $resultMessage = 'SUCCESS';

    /**
     * new Memcached()                   follows the domain in $MEMCACHE_DOMAIN, else "default",
     *                                   until addServer() gives it a list of its own
     * new Memcached(domain: 'app')      follows the shared list of domain "app" (mcadmin(8))
     * new Memcached(servers: [...])     a private list: "host:port", "host", "[::1]:11211",
     *                                   "/path/to.sock", or [host, port, weight] as addServers() takes
     * options: [Memcached::OPT_* => value, ...] as setOption() takes them.
     *
     * @param list<string|array{0: string, 1?: int, 2?: int}>|null $servers
     * @param array<int, mixed> $options
     */
    public function __construct(?string $domain = null, ?array $servers = null, array $options = [])
    {
        if ($domain !== null && $servers !== null) {
            throw new \InvalidArgumentException('give $domain or $servers, not both');
        }
        $this->ffi = Library::ffi();
        $this->codec = new Codec();
        if ($servers !== null) {
            if ($servers === []) {
                throw new \InvalidArgumentException('$servers is empty');
            }
            $this->mc = $this->checked($this->ffi->mc_new_private(), 'mc_new_private');
            $this->explicitDomain = false;
        } elseif ($domain !== null) {
            $mc = $this->ffi->mc_new2($domain);
            if (self::isNull($mc)) {
                throw new ConfigException(
                    sprintf('invalid domain name "%s": 1-64 bytes of A-Z a-z 0-9 _ . -', $domain),
                    self::RES_INVALID_ARGUMENTS
                );
            }
            $this->mc = $mc;
            $this->explicitDomain = true;
        } else {
            $mc = $this->ffi->mc_new();
            if (self::isNull($mc)) {
                throw new ConfigException(
                    sprintf('invalid domain name "%s" in $MEMCACHE_DOMAIN: 1-64 bytes of A-Z a-z 0-9 _ . -', (string) getenv('MEMCACHE_DOMAIN')),
                    self::RES_INVALID_ARGUMENTS
                );
            }
            $this->mc = $mc;
            $this->explicitDomain = false;
        }
        try {
            foreach ($options as $option => $value) {
                if (!$this->setOption($option, $value)) {
                    throw new \InvalidArgumentException("option $option: {$this->resultMessage}");
                }
            }
            foreach ($servers ?? [] as $server) {
                is_array($server) ? $this->addServer(...$server) : $this->addServerString((string) $server, 0);
            }
        } catch (\Throwable $e) {
            $this->close();
            throw $e;
        }
    }

    public function __destruct()
    {
        $this->close();
    }

    // ---- servers and options -------------------------------------------------------------

    /**
     * Adds a server (php-memcached's call; host "/path" with port 0 for a Unix socket). The
     * weight counts for the consistent distribution. A handle made without arguments leaves its
     * domain for a list of its own here; one made with a domain refuses (ConfigException).
     */
    public function addServer(string $host, int $port = 11211, int $weight = 0): bool
    {
        if ($port < 0 || $port > 65535 || $weight < 0) {
            throw new \InvalidArgumentException("port must be 0-65535 and weight >= 0, got $port and $weight");
        }
        $scheme = str_starts_with($host, 'tls://') ? 'tls://' : '';
        $host = substr($host, strlen($scheme));
        $address = match (true) {
            str_starts_with($host, '/') => $host,
            str_contains($host, ':') && !str_starts_with($host, '[') => "[$host]:$port",
            default => "$host:$port",
        };
        return $this->addServerString($scheme . $address, $weight);
    }

    /** @param list<array{0: string, 1?: int, 2?: int}> $servers [host, port, weight] each */
    public function addServers(array $servers): bool
    {
        foreach ($servers as $server) {
            $this->addServer(...array_values((array) $server));
        }
        return true;
    }

    /**
     * The handle's servers as php-memcached lists them (for a domain: the list as of now).
     *
     * @return list<array{host: string, port: int, type: string}>
     */
    public function getServerList(): array
    {
        return array_map(function (array $server): array {
            [, $host, $port] = $server;
            return ['host' => $host, 'port' => $port, 'type' => str_starts_with($host, '/') ? 'SOCKET' : 'TCP'];
        }, $this->servers());
    }

    /**
     * OPT_DISTRIBUTION (MODULA: libmemcache 1.4's crc32-modulo, the default; CONSISTENT:
     * libmemcached's ketama with md5) and OPT_LIBKETAMA_COMPATIBLE (true: CONSISTENT) for a list
     * of the handle's own (a domain brings its own); OPT_SERIALIZER; OPT_COMPRESSION;
     * OPT_COMPRESSION_TYPE (COMPRESSION_ZLIB only is written; FastLZ is read either way);
     * OPT_COMPRESSION_THRESHOLD; OPT_PREFIX_KEY. false (RES_NOT_SUPPORTED or
     * RES_INVALID_ARGUMENTS, with getResultMessage() saying why) for anything else.
     */
    public function setOption(int $option, mixed $value): bool
    {
        $refuse = function (int $code, string $why): bool {
            $this->result($code, $why);
            return false;
        };
        switch ($option) {
            case self::OPT_DISTRIBUTION:
            case self::OPT_LIBKETAMA_COMPATIBLE:
                $wanted = $option === self::OPT_DISTRIBUTION ? $value : ($value ? self::DISTRIBUTION_CONSISTENT : self::DISTRIBUTION_MODULA);
                if (!is_int($wanted) || !isset(self::DISTRIBUTIONS[$wanted])) {
                    return $refuse(self::RES_INVALID_ARGUMENTS, 'distribution must be DISTRIBUTION_MODULA or DISTRIBUTION_CONSISTENT');
                }
                if ($this->explicitDomain) {
                    return $refuse(self::RES_INVALID_ARGUMENTS, 'a domain brings its own distribution (mcadmin --distribution)');
                }
                $this->ffi->mc_distribution($this->handle(), self::DISTRIBUTIONS[$wanted]);
                break;
            case self::OPT_SERIALIZER:
                try {
                    Codec::checkSerializer((int) $value);
                } catch (\InvalidArgumentException $e) {
                    return $refuse(self::RES_INVALID_ARGUMENTS, $e->getMessage());
                }
                $this->codec->serializer = (int) $value;
                break;
            case self::OPT_COMPRESSION:
                $this->codec->compression = (bool) $value;
                break;
            case self::OPT_COMPRESSION_TYPE:
                if ($value !== self::COMPRESSION_ZLIB) {
                    return $refuse(self::RES_NOT_SUPPORTED, 'values are compressed with zlib only (FastLZ is read, not written)');
                }
                break;
            case self::OPT_COMPRESSION_THRESHOLD:
                if (!is_int($value) || $value < 0) {
                    return $refuse(self::RES_INVALID_ARGUMENTS, 'the compression threshold is a byte count >= 0');
                }
                $this->codec->threshold = $value;
                break;
            case self::OPT_TLS:
            case self::OPT_TLS_VERIFY:
                $on = (bool) $value;
                $rc = $option === self::OPT_TLS
                    ? $this->ffi->mc_tls($this->handle(), $on ? 1 : 0)
                    : $this->ffi->mc_tls_insecure($this->handle(), $on ? 0 : 1);
                if ($rc !== 0) {
                    return $refuse(self::RES_FAILURE, $this->lastErrorText());
                }
                $this->security[$option] = $on;
                break;
            case self::OPT_TLS_CA_FILE:
            case self::OPT_AUTH_FILE:
                $path = (string) $value;
                $fn = $option === self::OPT_TLS_CA_FILE ? 'mc_tls_ca' : 'mc_auth_file';
                if ($this->ffi->$fn($this->handle(), $path === '' ? null : $path) !== 0) {
                    return $refuse(self::RES_INVALID_ARGUMENTS, $this->lastErrorText());
                }
                $this->security[$option] = $path;
                break;
            case self::OPT_TLS_CERT_FILE:
            case self::OPT_TLS_KEY_FILE:
                $option === self::OPT_TLS_CERT_FILE ? $this->tlsCert = (string) $value : $this->tlsKey = (string) $value;
                $cert = $this->tlsCert === '' ? null : $this->tlsCert;
                $key = $this->tlsKey === '' ? null : $this->tlsKey;
                // A key given before its certificate waits for it.
                if ($cert !== null && $this->ffi->mc_tls_cert($this->handle(), $cert, $key) !== 0) {
                    return $refuse(self::RES_INVALID_ARGUMENTS, $this->lastErrorText());
                }
                break;
            case self::OPT_PREFIX_KEY:
                $prefix = (string) $value;
                if (strlen($prefix) > 128 || ($prefix !== '' && !$this->keyIsValid($prefix))) {
                    return $refuse(self::RES_BAD_KEY_PROVIDED, 'the key prefix must be at most 128 bytes without whitespace or control bytes');
                }
                $this->prefix = $prefix;
                break;
            default:
                return $refuse(self::RES_NOT_SUPPORTED, "option $option is not supported");
        }
        $this->result(self::RES_SUCCESS);
        return true;
    }

    /** @param array<int, mixed> $options */
    public function setOptions(array $options): bool
    {
        $all = true;
        foreach ($options as $option => $value) {
            $all = $this->setOption($option, $value) && $all;
        }
        return $all;
    }

    public function getOption(int $option): mixed
    {
        return match ($option) {
            self::OPT_DISTRIBUTION => array_search($this->ffi->mc_distribution_get($this->handle()), self::DISTRIBUTIONS, true),
            self::OPT_LIBKETAMA_COMPATIBLE => $this->ffi->mc_distribution_get($this->handle()) === self::DISTRIBUTIONS[self::DISTRIBUTION_CONSISTENT],
            self::OPT_SERIALIZER => $this->codec->serializer,
            self::OPT_COMPRESSION => $this->codec->compression,
            self::OPT_COMPRESSION_TYPE => self::COMPRESSION_ZLIB,
            self::OPT_COMPRESSION_THRESHOLD => $this->codec->threshold,
            self::OPT_PREFIX_KEY => $this->prefix,
            self::OPT_TLS => $this->security[self::OPT_TLS] ?? false,
            self::OPT_TLS_VERIFY => $this->security[self::OPT_TLS_VERIFY] ?? true,
            self::OPT_TLS_CA_FILE, self::OPT_AUTH_FILE => $this->security[$option] ?? '',
            self::OPT_TLS_CERT_FILE => $this->tlsCert,
            self::OPT_TLS_KEY_FILE => $this->tlsKey,
            default => false,
        };
    }

    /**
     * Logs every connection in as $username (memcached -Y's text-protocol authentication;
     * php-memcached's name for its SASL login). Sent as given: use TLS where the path is not
     * trusted. false (RES_INVALID_ARGUMENTS) for a name or password with a space or control byte.
     */
    public function setSaslAuthData(string $username, string $password): bool
    {
        if ($this->ffi->mc_auth($this->handle(), $username, $password) !== 0) {
            $this->result(self::RES_INVALID_ARGUMENTS, $this->lastErrorText());
            return false;
        }
        $this->result(self::RES_SUCCESS);
        return true;
    }

    public function getResultCode(): int
    {
        return $this->resultCode;
    }

    public function getResultMessage(): string
    {
        return $this->resultMessage;
    }

    // ---- reads -----------------------------------------------------------------------------

    /**
     * The value, or false on a miss (RES_NOTFOUND). With GET_EXTENDED:
     * ['value' => ..., 'cas' => int, 'flags' => 0] (php-memcached's user flags are not kept).
     */
    public function get(string $key, ?callable $cacheCallback = null, int $flags = 0): mixed
    {
        if ($cacheCallback !== null) {
            throw new \InvalidArgumentException('read-through cache callbacks are not supported');
        }
        $k = $this->key($key);
        $mc = $this->handle();
        $len = $this->ffi->new('size_t');
        $stored = $this->ffi->new('uint16_t');
        $cas = $this->ffi->new('uint64_t');
        $val = $this->ffi->mc_agets($mc, $k, strlen($k), \FFI::addr($len), \FFI::addr($stored), \FFI::addr($cas));
        if (self::isNull($val)) {
            // NULL is a miss or a failure: a plain miss leaves the last error at 0.
            $this->throwLastError('get');
            $this->result(self::RES_NOTFOUND);
            return false;
        }
        try {
            $bytes = $len->cdata === 0 ? '' : \FFI::string($val, $len->cdata);
        } finally {
            $this->ffi->free($val);
        }
        $value = $this->decode($bytes, $stored->cdata);
        $this->result(self::RES_SUCCESS);
        if ($flags & self::GET_EXTENDED) {
            return ['value' => $value, 'cas' => self::unsigned($cas->cdata), 'flags' => 0];
        }
        return $value;
    }

    /**
     * The values of the keys found, [key => value], in one round trip per server. With
     * GET_PRESERVE_ORDER every key is there, in the order given, null for a miss.
     *
     * @param list<string> $keys
     * @return array<string|int, mixed>
     */
    public function getMulti(array $keys, int $flags = 0): array
    {
        if ($flags & self::GET_EXTENDED) {
            throw new \InvalidArgumentException('getMulti() with GET_EXTENDED is not supported: use get() for the cas');
        }
        $mc = $this->handle();
        $given = array_values(array_unique(array_map('strval', $keys)));
        $wanted = [];
        foreach ($given as $key) {
            $wanted[$key] = $this->key($key);
        }
        $found = [];
        if ($wanted !== []) {
            $req = $this->ffi->mc_req_new();
            if (self::isNull($req)) {
                throw new Exception('mc_req_new failed (out of memory)', self::RES_MEMORY_ALLOCATION_FAILURE);
            }
            try {
                $results = [];
                foreach ($wanted as $key => $k) {
                    $res = $this->ffi->mc_req_add($req, $k, strlen($k));
                    if (self::isNull($res)) {
                        throw new Exception('mc_req_add failed (out of memory)', self::RES_MEMORY_ALLOCATION_FAILURE);
                    }
                    $results[$key] = $res;
                }
                $this->ffi->mc_get($mc, $req);
                foreach ($results as $key => $res) {
                    if ($this->ffi->mc_res_found($res) !== 0) {
                        $bytes = $res->bytes === 0 ? '' : \FFI::string($res->val, $res->bytes);
                        $found[$key] = $this->decode($bytes, $res->flags);
                    }
                }
            } finally {
                $this->ffi->mc_req_free($req);
            }
            if ($found === []) {
                $this->throwLastError('getMulti');
            }
        }
        $this->result(count($found) === count($wanted) ? self::RES_SUCCESS : self::RES_NOTFOUND);
        if ($flags & self::GET_PRESERVE_ORDER) {
            $ordered = [];
            foreach ($given as $key) {
                $ordered[$key] = $found[$key] ?? null;
            }
            return $ordered;
        }
        return $found;
    }

    // ---- writes ----------------------------------------------------------------------------

    /** Stores the value; true (a failure throws). */
    public function set(string $key, mixed $value, int $expiration = 0): bool
    {
        return $this->store('mc_set', $key, $value, $expiration);
    }

    /** Stores only if the key is absent: false (RES_NOTSTORED) when it exists. */
    public function add(string $key, mixed $value, int $expiration = 0): bool
    {
        return $this->store('mc_add', $key, $value, $expiration);
    }

    /** Stores only if the key exists: false (RES_NOTSTORED) when it is absent. */
    public function replace(string $key, mixed $value, int $expiration = 0): bool
    {
        return $this->store('mc_replace', $key, $value, $expiration);
    }

    /**
     * Stores only if the item is unchanged since the get(..., GET_EXTENDED) that gave $casToken:
     * false with RES_DATA_EXISTS when it changed since, RES_NOTFOUND when it is gone.
     */
    public function cas(int|float|string $casToken, string $key, mixed $value, int $expiration = 0): bool
    {
        $token = is_float($casToken) ? sprintf('%.0f', $casToken) : (string) $casToken;
        $token = ltrim($token, '0') ?: '0';
        if (preg_match('/\A[0-9]{1,20}\z/', $token) !== 1 || (strlen($token) === 20 && strcmp($token, '18446744073709551615') > 0)) {
            throw new \InvalidArgumentException("cas token must be 0..2**64-1, got $token");
        }
        return $this->store('mc_cas', $key, $value, $expiration, $token);
    }

    /**
     * Stores every key => value as set() would (the same bytes and flags) in one call: each
     * server's keys go out together (memcached 1.6's quiet meta commands), so 100 keys cost about
     * one round trip. Every key and value is checked before anything is sent. true when all were
     * stored; false with RES_SOME_ERRORS when some were not (getResultMessage() names them; the
     * others are stored). When no key could be written at all it throws, as set() does.
     */
    public function setMulti(array $items, int $expiration = 0): bool
    {
        self::checkExpiration($expiration);
        $batch = [];
        foreach ($items as $key => $value) {
            $key = (string) $key;
            try {
                [$bytes, $flags] = $this->codec->encode($value);
            } catch (ValueException $e) {
                $this->result(self::RES_PAYLOAD_FAILURE, $e->getMessage());
                throw $e;
            }
            $batch[] = [$key, $this->key($key), $bytes, $flags];
        }
        $failed = array_filter($this->bulk('setMulti', self::MC_BULK_SET, $batch, $expiration), fn (int $r) => $r !== self::RES_SUCCESS);
        if ($failed === []) {
            $this->result(self::RES_SUCCESS);
            return true;
        }
        $this->result(self::RES_SOME_ERRORS, $this->bulkMessage('setMulti', $failed, count($batch)));
        return false;
    }

    /**
     * Appends bytes to the stored value: false (RES_NOTSTORED) when the key is absent. As in
     * php-memcached, refused while compression is on (a compressed item would be spoiled).
     */
    public function append(string $key, string $value): bool
    {
        return $this->concat('mc_append', $key, $value);
    }

    /** Prepends bytes to the stored value, as append() does. */
    public function prepend(string $key, string $value): bool
    {
        return $this->concat('mc_prepend', $key, $value);
    }

    /** Gives the item a new expiry: false (RES_NOTFOUND) when the key is absent. */
    public function touch(string $key, int $expiration = 0): bool
    {
        self::checkExpiration($expiration);
        $k = $this->key($key);
        return $this->verdict('touch', $key, $this->ffi->mc_touch($this->handle(), $k, strlen($k), $expiration), [self::MC_NOT_FOUND => self::RES_NOTFOUND]);
    }

    /** Deletes the key: false (RES_NOTFOUND) when it does not exist. $time must be 0 (memcached 1.4+ refuses a hold time). */
    public function delete(string $key, int $time = 0): bool
    {
        if ($time !== 0) {
            throw new \InvalidArgumentException('delete with a hold time is not supported by memcached 1.4 and later');
        }
        $k = $this->key($key);
        return $this->verdict('delete', $key, $this->ffi->mc_delete($this->handle(), $k, strlen($k), 0), [1 => self::RES_NOTFOUND]);
    }

    /**
     * Deletes each key: [key => true, or RES_NOTFOUND] as php-memcached gives it.
     *
     * @param list<string> $keys
     * @return array<string|int, true|int>
     */
    public function deleteMulti(array $keys, int $time = 0): array
    {
        if ($time !== 0) {
            throw new \InvalidArgumentException('delete with a hold time is not supported by memcached 1.4 and later');
        }
        $batch = [];
        foreach ($keys as $key) {
            $key = (string) $key;
            $batch[] = [$key, $this->key($key), '', 0];
        }
        $out = array_map(fn (int $r) => $r === self::RES_SUCCESS ? true : $r, $this->bulk('deleteMulti', self::MC_BULK_DELETE, $batch, 0));
        $failed = array_filter($out, fn ($r) => $r !== true && $r !== self::RES_NOTFOUND);
        if ($failed !== []) {
            $this->result(self::RES_SOME_ERRORS, $this->bulkMessage('deleteMulti', $failed, count($batch)));
        } else {
            $this->result(in_array(self::RES_NOTFOUND, $out, true) ? self::RES_NOTFOUND : self::RES_SUCCESS);
        }
        return $out;
    }

    /**
     * Adds $offset to the counter (memcached's 64 bits): the new value, or false (RES_NOTFOUND)
     * when the key is absent. With $initialValue an absent key is created with it (and
     * $expiry) and that value is returned, as php-memcached's binary protocol does; here it is
     * an add, and an add that loses a race to another writer counts again.
     */
    public function increment(string $key, int $offset = 1, ?int $initialValue = null, int $expiry = 0): int|string|false
    {
        return $this->counter('mc_incr64', $key, $offset, $initialValue, $expiry);
    }

    /** Subtracts $offset (memcached stops at 0); as increment(). */
    public function decrement(string $key, int $offset = 1, ?int $initialValue = null, int $expiry = 0): int|string|false
    {
        return $this->counter('mc_decr64', $key, $offset, $initialValue, $expiry);
    }

    /** Empties every server's cache; true (a failure throws). $delay must be 0. */
    public function flush(int $delay = 0): bool
    {
        if ($delay !== 0) {
            throw new \InvalidArgumentException('flush with a delay is not supported');
        }
        $rc = $this->ffi->mc_flush_all($this->handle());
        if ($rc !== 0) {
            $this->throwFailure('flush', $rc);
        }
        $this->result(self::RES_SUCCESS);
        return true;
    }

    // ---- servers' own answers -------------------------------------------------------------

    /**
     * Each server's version: ['host:port' => '1.6.18'], false for a server that did not answer.
     *
     * @return array<string, string|false>
     */
    public function getVersion(): array
    {
        return $this->perServer('mc_server_version', fn (\FFI\CData $v) => $this->ffi->free($v), fn (\FFI\CData $v) => \FFI::string($v));
    }

    /**
     * Each server's statistics: ['host:port' => ['pid' => ..., 'version' => ..., ...]], false
     * for a server that did not answer. rusage_user and rusage_system are float seconds.
     *
     * @return array<string, array<string, int|float|string|null>|false>
     */
    public function getStats(): array
    {
        return $this->perServer('mc_server_stats', fn (\FFI\CData $s) => $this->ffi->mc_server_stats_free($s), self::statsArray(...));
    }

    /** Closes the connections; the next call opens them again. */
    public function quit(): bool
    {
        $this->ffi->mc_server_disconnect_all($this->handle());
        return true;
    }

    /** Frees the handle (the destructor does it too); every later call throws ClosedException. */
    public function close(): void
    {
        if ($this->mc !== null) {
            $this->ffi->mc_free($this->mc);
            $this->mc = null;
        }
    }

    public function isClosed(): bool
    {
        return $this->mc === null;
    }

    // ---- the rest --------------------------------------------------------------------------

    private function addServerString(string $address, int $weight): bool
    {
        if ($this->explicitDomain) {
            throw new ConfigException(
                "cannot add $address: this handle follows a domain, whose list mcadmin(8) edits",
                self::RES_INVALID_ARGUMENTS
            );
        }
        $rc = $this->ffi->mc_server_add_weighted($this->handle(), $address, $weight);
        if ($rc !== 0) {
            [$code, $msg] = $this->lastError();
            $detail = $code === 0 ? "mc_server_add_weighted returned $rc" : $this->describe($code, $msg);
            $result = $rc === self::MC_NO_RESOLVE ? self::RES_HOST_LOOKUP_FAILURE : self::RES_INVALID_ARGUMENTS;
            $this->result($result, $detail);
            throw new ConfigException(sprintf('cannot add server "%s": %s', $address, $detail), $result, $code);
        }
        $this->result(self::RES_SUCCESS);
        return true;
    }

    private function checked(?\FFI\CData $mc, string $what): \FFI\CData
    {
        if (self::isNull($mc)) {
            throw new Exception("$what failed (out of memory)", self::RES_MEMORY_ALLOCATION_FAILURE);
        }
        return $mc;
    }

    private function handle(): \FFI\CData
    {
        if ($this->mc === null) {
            $this->result(self::RES_FAILURE, 'the handle is closed');
            throw new ClosedException('memcached handle is closed', self::RES_FAILURE);
        }
        return $this->mc;
    }

    /** NULL pointers come back from calls as PHP null, and from fields as a null CData. */
    private static function isNull(?\FFI\CData $ptr): bool
    {
        return $ptr === null || \FFI::isNull($ptr);
    }

    private function result(int $code, ?string $message = null): void
    {
        $this->resultCode = $code;
        $this->resultMessage = $message ?? match ($code) {
            self::RES_SUCCESS => 'SUCCESS',
            self::RES_NOTFOUND => 'NOT FOUND',
            self::RES_NOTSTORED => 'NOT STORED',
            self::RES_DATA_EXISTS => 'CONNECTION DATA EXISTS',
            self::RES_SOME_ERRORS => 'SOME ERRORS WERE REPORTED',
            default => "result $code",
        };
    }

    /** The key as sent (with OPT_PREFIX_KEY's prefix), checked by the library's own rule. */
    private function key(string $key): string
    {
        $k = $this->prefix . $key;
        if (!$this->keyIsValid($k)) {
            $reason = match (true) {
                $key === '' => 'empty',
                strlen($k) > self::MAX_KEY => 'longer than ' . self::MAX_KEY . ' bytes' . ($this->prefix === '' ? '' : ' with the prefix'),
                default => self::badByte($k),
            };
            $message = 'invalid key ' . self::shown($key) . ": $reason";
            $this->result(self::RES_BAD_KEY_PROVIDED, $message);
            throw new InvalidKeyException($message, self::RES_BAD_KEY_PROVIDED, self::MCM_ERR_PROTO);
        }
        return $k;
    }

    /** The library's own key check: the default mcKeyValid hook of the global context. */
    private function keyIsValid(string $key): bool
    {
        $check = $this->ffi->mc_global_ctxt()->mcKeyValid;
        if (self::isNull($check)) {
            return $key !== '' && strlen($key) <= self::MAX_KEY;
        }
        return $check(null, $key, strlen($key)) === 0;
    }

    private static function badByte(string $key): string
    {
        for ($i = 0; $i < strlen($key); $i++) {
            $b = ord($key[$i]);
            if ($b <= 0x20 || $b === 0x7f) {
                return sprintf('byte %d (0x%02x) is whitespace or a control byte', $i + 1, $b);
            }
        }
        return 'refused by the key check';
    }

    private static function shown(string $key): string
    {
        $s = strlen($key) > 48 ? substr($key, 0, 40) . '...(' . strlen($key) . ' bytes)' : $key;
        return '"' . addcslashes($s, "\0..\37\"\\\177") . '"';
    }

    private static function checkExpiration(int $expiration): void
    {
        if ($expiration < 0) {
            throw new \InvalidArgumentException("expiration must be >= 0, got $expiration");
        }
    }

    private function decode(string $bytes, int $flags): mixed
    {
        try {
            return $this->codec->decode($bytes, $flags);
        } catch (ValueException $e) {
            $this->result(self::RES_PAYLOAD_FAILURE, $e->getMessage());
            throw $e;
        }
    }

    private function store(string $fn, string $key, mixed $value, int $expiration, ?string $cas = null): bool
    {
        self::checkExpiration($expiration);
        $k = $this->key($key);
        try {
            [$bytes, $flags] = $this->codec->encode($value);
        } catch (ValueException $e) {
            $this->result(self::RES_PAYLOAD_FAILURE, $e->getMessage());
            throw $e;
        }
        $args = [$this->handle(), $k, strlen($k), $bytes, strlen($bytes), $expiration, $flags];
        if ($cas !== null) {
            // uint64_t: a token past PHP_INT_MAX goes through as its two's-complement int.
            $args[] = self::signed($cas);
        }
        $rc = $this->ffi->$fn(...$args);
        $misses = $cas === null
            ? [1 => self::RES_NOTSTORED]
            : [1 => self::RES_NOTSTORED, self::MC_EXISTS => self::RES_DATA_EXISTS, self::MC_NOT_FOUND => self::RES_NOTFOUND];
        return $this->verdict(substr($fn, 3), $key, $rc, $misses);
    }

    private function concat(string $fn, string $key, string $value): bool
    {
        if ($this->codec->compression) {
            $message = substr($fn, 3) . ' needs OPT_COMPRESSION off: it would spoil a compressed item';
            $this->result(self::RES_INVALID_ARGUMENTS, $message);
            throw new ValueException($message, self::RES_INVALID_ARGUMENTS);
        }
        $k = $this->key($key);
        $rc = $this->ffi->$fn($this->handle(), $k, strlen($k), $value, strlen($value), 0, 0);
        return $this->verdict(substr($fn, 3), $key, $rc, [1 => self::RES_NOTSTORED]);
    }

    private function counter(string $fn, string $key, int $offset, ?int $initial, int $expiry): int|string|false
    {
        if ($offset < 0) {
            throw new \InvalidArgumentException("offset must be >= 0, got $offset");
        }
        $value = $this->counterOnce($fn, $key, $offset);
        if ($value !== false || $initial === null) {
            return $value;
        }
        if ($initial < 0) {
            throw new \InvalidArgumentException("initial value must be >= 0, got $initial");
        }
        if ($this->add($key, $initial, $expiry)) {
            return $initial;
        }
        return $this->counterOnce($fn, $key, $offset);
    }

    private function counterOnce(string $fn, string $key, int $offset): int|string|false
    {
        $k = $this->key($key);
        $out = $this->ffi->new('uint64_t');
        $rc = $this->ffi->$fn($this->handle(), $k, strlen($k), $offset, \FFI::addr($out));
        if ($rc === 0) {
            $this->result(self::RES_SUCCESS);
            return self::unsigned($out->cdata);
        }
        return $this->verdict(substr($fn, 3, -2), $key, $rc, [self::MC_NOT_FOUND => self::RES_NOTFOUND]);
    }

    /** true for 0; false with the result code of $misses[$rc]; else throws. */
    private function verdict(string $op, string $key, int $rc, array $misses): bool
    {
        if ($rc === 0) {
            $this->result(self::RES_SUCCESS);
            return true;
        }
        if (isset($misses[$rc])) {
            $this->result($misses[$rc]);
            return false;
        }
        if ($rc === self::MC_BAD_KEY) {
            // The library's check refused what ours let through: say the library's reason.
            [$code, $msg] = $this->lastError();
            $message = 'invalid key ' . self::shown($key) . ($msg === '' ? '' : ": $msg");
            $this->result(self::RES_BAD_KEY_PROVIDED, $message);
            throw new InvalidKeyException($message, self::RES_BAD_KEY_PROVIDED, $code);
        }
        $this->throwFailure($op, $rc);
    }

    /**
     * One mc_bulk() of $batch ([key as given, key as sent, value bytes, flags] each): [key as
     * given => RES_SUCCESS or the key's result code] (a repeated key: its last result). Throws,
     * as the single call would, when no key could be written because no server could be used.
     *
     * @param list<array{string, string, string, int}> $batch
     * @return array<string, int>
     */
    private function bulk(string $op, int $bulkOp, array $batch, int $expiration): array
    {
        $n = count($batch);
        if ($n === 0) {
            return [];
        }
        $items = $this->ffi->new("struct memcache_bulk[$n]");
        // One C copy of every key and value, which the items point into.
        $all = '';
        foreach ($batch as [, $k, $bytes]) {
            $all .= $k . $bytes;
        }
        $data = $this->ffi->new('char[' . max(1, strlen($all)) . ']');
        \FFI::memcpy($data, $all, strlen($all));
        $at = 0;
        foreach ($batch as $i => [, $k, $bytes, $flags]) {
            $item = $items[$i];
            $item->key = \FFI::addr($data[$at]);
            $item->key_len = strlen($k);
            $at += strlen($k);
            $item->val = strlen($bytes) === 0 ? null : \FFI::addr($data[$at]);
            $item->val_len = strlen($bytes);
            $at += strlen($bytes);
            // The single calls take 1.4's 16-bit flags; the same bits here.
            $item->flags = $flags & 0xffff;
            $item->exptime = $expiration;
        }
        $this->ffi->mc_bulk($this->handle(), $bulkOp, $items, $n);
        $out = [];
        $failed = 0;
        foreach ($batch as $i => [$given]) {
            $r = $items[$i]->result;
            $out[$given] = $r === self::MC_BULK_DONE ? self::RES_SUCCESS : (self::BULK_RESULTS[$r] ?? self::RES_FAILURE);
            $failed += $r === self::MC_BULK_FAILED ? 1 : 0;
        }
        if ($failed === $n) {
            // Nothing could be written: the failure set() and delete() would throw.
            [$code, $msg] = $this->lastError();
            $result = self::RESULT_OF[$code] ?? self::RES_FAILURE;
            $this->raise($op, $result, $code, $code === 0 ? 'no server available' : $this->describe($code, $msg));
        }
        return $out;
    }

    /** What getResultMessage() says of the keys of a bulk call that were not written. */
    private function bulkMessage(string $op, array $failed, int $total): string
    {
        [$code, $msg] = $this->lastError();
        $named = [];
        foreach (array_slice($failed, 0, 5, true) as $key => $result) {
            $named[] = self::shown((string) $key) . " (result $result)";
        }
        $more = count($failed) > 5 ? ', ...' : '';
        $why = $code === 0 ? '' : ': ' . $this->describe($code, $msg);
        return sprintf('%s: %d of %d keys failed: %s%s%s', $op, count($failed), $total, implode(', ', $named), $more, $why);
    }

    /** The handle's last report as one line, for an option the library refused. */
    private function lastErrorText(): string
    {
        [$code, $msg] = $this->lastError();
        return $code === 0 ? 'refused' : $this->describe($code, $msg);
    }

    /** @return array{int, string} code and message of the handle's last call */
    private function lastError(): array
    {
        $buf = $this->ffi->new('char[' . self::MESSAGE_SIZE . ']');
        $code = $this->ffi->mc_last_error($this->handle(), $buf, self::MESSAGE_SIZE);
        return [$code, \FFI::string($buf)];
    }

    /** The library's description of the MCM_ERR_* code (mc_last_error() gives the code and the site's message). */
    private function describe(int $code, string $msg): string
    {
        $text = $this->ffi->mc_strerror($code);
        // mc_last_error()'s message already opens with the description.
        return $msg === '' ? $text : (str_starts_with($msg, $text) ? $msg : "$text: $msg");
    }

    /** After a call whose result cannot tell a miss from a failure: throw if the library reported one. */
    private function throwLastError(string $op): void
    {
        [$code, $msg] = $this->lastError();
        if (!in_array($code, self::BENIGN_CODES, true)) {
            $this->raise($op, self::RESULT_OF[$code] ?? self::RES_FAILURE, $code, $this->describe($code, $msg));
        }
    }

    private function throwFailure(string $op, int $rc): never
    {
        [$code, $msg] = $this->lastError();
        if ($code === 0) {
            $result = $rc === -1 ? self::RES_NO_SERVERS : self::RES_FAILURE;
            $this->raise($op, $result, 0, $rc === -1 ? 'no server available' : "returned $rc");
        }
        $this->raise($op, self::RESULT_OF[$code] ?? self::RES_SERVER_ERROR, $code, $this->describe($code, $msg));
    }

    private function raise(string $op, int $result, int $code, string $detail): never
    {
        $message = "$op: $detail";
        $this->result($result, $message);
        $class = in_array($result, self::NO_SERVER_RESULTS, true) ? NoServerException::class : ServerErrorException::class;
        throw new $class($message, $result, $code);
    }

    /** uint64_t read by FFI as a signed int: above PHP_INT_MAX it becomes a decimal string. */
    private static function unsigned(int $value): int|string
    {
        return $value >= 0 ? $value : sprintf('%u', $value);
    }

    /** 0..2**64-1 in decimal as the int with the same 64 bits (what FFI passes as uint64_t). */
    private static function signed(string $decimal): int
    {
        // Two 32-bit halves, so that nothing passes through a float.
        $hi = $lo = 0;
        foreach (str_split($decimal) as $digit) {
            $lo = $lo * 10 + (int) $digit;
            $hi = $hi * 10 + ($lo >> 32);
            $lo &= 0xffffffff;
        }
        return ($hi << 32) | $lo;
    }

    /**
     * ['host:port' => $convert(buffer)] from $fetch called per server, which returns a buffer the
     * library allocated (NULL, giving false, when the server did not answer), released after.
     *
     * @return array<string, mixed>
     */
    private function perServer(string $fetch, callable $release, callable $convert): array
    {
        $out = [];
        foreach ($this->servers() as [$name, , , $ms]) {
            $buffer = $this->ffi->$fetch($this->handle(), $ms);
            if (self::isNull($buffer)) {
                $out[$name] = false;
                continue;
            }
            try {
                $out[$name] = $convert($buffer);
            } finally {
                $release($buffer);
            }
        }
        $this->result(in_array(false, $out, true) ? self::RES_SOME_ERRORS : self::RES_SUCCESS);
        return $out;
    }

    /**
     * [["host:port", host, port, struct memcache_server *], ...] in the handle's order.
     *
     * @return list<array{string, string, int, \FFI\CData}>
     */
    private function servers(): array
    {
        $mc = $this->handle();
        // Brings a domain handle's array up to date with the shared list (every operation does
        // so first); no I/O.
        $this->ffi->mc_server_find($mc, 0);
        $n = $mc->num_servers;
        if ($n === 0 || self::isNull($mc->servers)) {
            return [];
        }
        $list = [];
        for ($i = 0; $i < $n; $i++) {
            $ms = $mc->servers[$i];
            $host = \FFI::string($ms->hostname);
            if (str_starts_with($host, '/')) {
                $list[] = [$host, $host, 0, $ms];
                continue;
            }
            $port = (int) \FFI::string($ms->port);
            $shown = str_contains($host, ':') ? "[$host]" : $host;
            $list[] = ["$shown:$port", $host, $port, $ms];
        }
        return $list;
    }

    /** @return array<string, int|float|string|null> */
    private static function statsArray(\FFI\CData $s): array
    {
        return [
            'pid' => $s->pid,
            'uptime' => $s->uptime,
            'time' => $s->time,
            'version' => self::isNull($s->version) ? null : \FFI::string($s->version),
            'rusage_user' => $s->rusage_user->tv_sec + $s->rusage_user->tv_usec / 1e6,
            'rusage_system' => $s->rusage_system->tv_sec + $s->rusage_system->tv_usec / 1e6,
            'curr_items' => $s->curr_items,
            'total_items' => self::unsigned($s->total_items),
            'bytes' => self::unsigned($s->bytes),
            'curr_connections' => $s->curr_connections,
            'total_connections' => self::unsigned($s->total_connections),
            'connection_structures' => $s->connection_structures,
            'cmd_get' => self::unsigned($s->cmd_get),
            'cmd_set' => self::unsigned($s->cmd_set),
            'get_hits' => self::unsigned($s->get_hits),
            'get_misses' => self::unsigned($s->get_misses),
            'bytes_read' => self::unsigned($s->bytes_read),
            'bytes_written' => self::unsigned($s->bytes_written),
            'limit_maxbytes' => self::unsigned($s->limit_maxbytes),
        ];
    }
}
