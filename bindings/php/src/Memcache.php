<?php

declare(strict_types=1);

/*
 * PHP binding of libmemcache (the Rust drop-in replacement of libmemcache 1.4) over PHP's FFI
 * extension.
 *
 *   $mc = new LibMemcache\Memcache(domain: 'default');             // shared list (mcadmin(8))
 *   $mc = new LibMemcache\Memcache(servers: ['127.0.0.1:11211']);  // private list, as in 1.4
 *   $mc->set('k', "v\0binary", ttl: 60);                            // true
 *   $mc->get('k');                                                  // "v\0binary" or null
 *
 * The library is loaded from the constructor's $library, else $LIBMEMCACHE_LIB, else
 * "libmemcache.so.0" through the dynamic loader's search path (LD_LIBRARY_PATH, ld.so.conf).
 */

namespace LibMemcache;

/** Every error this binding throws; getCode() is the library's MCM_ERR_* code when it gave one. */
class Exception extends \RuntimeException
{
}

/** The key is empty, longer than 250 bytes, or holds whitespace or a control byte. */
class InvalidKeyException extends Exception
{
}

/** No server could be chosen or connected to (empty list, all servers down, bad address). */
class NoServerException extends Exception
{
}

/** A server answered with an error, the connection failed mid-command, or it timed out. */
class ServerErrorException extends Exception
{
}

/** The handle could not be created: a bad domain name or an address that does not resolve. */
class ConfigException extends Exception
{
}

/** The handle was closed with close(). */
class ClosedException extends Exception
{
}

final class Memcache
{
    /** The declarations this binding uses (memcache.h; x86-64 layouts of the 1.4 spec, §3). */
    private const CDEF = <<<'C'
        typedef long time_t;
        struct timeval { long tv_sec; long tv_usec; };
        struct memcache_server {
            void *misc; char *hostname; char *port; int fd; struct timeval tv; char active;
            void *hostinfo; uint32_t num_addrs; uint8_t fds[128]; void *rbuf; void *wbuf;
            uint32_t _last_hash; size_t soff; size_t startoff; void *tqe_next; void *tqe_prev;
        };
        struct memcache {
            void *misc; struct timeval tv; uint32_t num_servers; struct memcache_server **servers;
            void *tqh_first; void *tqh_last;
        };
        struct memcache_res {
            void *misc; char *key; size_t len; uint32_t hash; size_t bytes; void *val; size_t size;
            void *tqe_next; void *tqe_prev; uint16_t flags; char _flags;
        };
        struct memcache_req;
        struct memcache_server_stats {
            int pid; time_t uptime; time_t time; char *version;
            struct timeval rusage_user; struct timeval rusage_system;
            uint32_t curr_items; uint64_t total_items; uint64_t bytes; uint32_t curr_connections;
            uint64_t total_connections; uint32_t connection_structures; uint64_t cmd_get;
            uint64_t cmd_set; uint64_t get_hits; uint64_t get_misses; uint64_t bytes_read;
            uint64_t bytes_written; uint64_t limit_maxbytes;
        };
        struct memcache_ctxt {
            void *mcFree; void *mcMalloc; void *mcMallocAtomic; void *mcRealloc; void *mcErr;
            int32_t (*mcKeyValid)(const void *ctxt, const char *key, size_t len);
        };
        struct memcache_ctxt *mc_global_ctxt(void);
        int32_t mc_err_filter_add(uint32_t mask);
        int32_t mc_err_filter_del(uint32_t mask);
        struct memcache *mc_new2(const char *domain);
        struct memcache *mc_new_private(void);
        void mc_free(struct memcache *mc);
        int mc_server_add4(struct memcache *mc, const char *hostport);
        int mc_distribution(struct memcache *mc, int distribution);
        struct memcache_server *mc_server_find(struct memcache *mc, uint32_t hash);
        int mc_last_error(const struct memcache *mc, char *buf, size_t buflen);
        void *mc_aget2(struct memcache *mc, const char *key, size_t len, size_t *retlen);
        int mc_set(struct memcache *mc, const char *key, size_t key_len, const char *val,
                   size_t bytes, time_t expire, uint16_t flags);
        int mc_add(struct memcache *mc, const char *key, size_t key_len, const char *val,
                   size_t bytes, time_t expire, uint16_t flags);
        int mc_replace(struct memcache *mc, const char *key, size_t key_len, const char *val,
                       size_t bytes, time_t expire, uint16_t flags);
        int mc_delete(struct memcache *mc, const char *key, size_t key_len, time_t hold);
        int mc_incr64(struct memcache *mc, const char *key, size_t key_len, uint64_t delta,
                      uint64_t *value);
        int mc_decr64(struct memcache *mc, const char *key, size_t key_len, uint64_t delta,
                      uint64_t *value);
        struct memcache_req *mc_req_new(void);
        struct memcache_res *mc_req_add(struct memcache_req *req, const char *key, size_t len);
        void mc_req_free(struct memcache_req *req);
        int mc_res_found(const struct memcache_res *res);
        void mc_get(struct memcache *mc, struct memcache_req *req);
        struct memcache_server_stats *mc_server_stats(struct memcache *mc,
                                                      struct memcache_server *ms);
        void mc_server_stats_free(struct memcache_server_stats *s);
        C;

    private const ALL_LEVELS = 0x1f; // MCM_ERR_LVL_INFO | NOTICE | WARN | ERR | FATAL
    private const MC_NOT_FOUND = 6;
    private const MCM_ERR_PROTO = 14;
    private const MESSAGE_SIZE = 512;
    /** Codes that mean "no server could be used" rather than "the server failed". */
    private const NO_SERVER_CODES = [7, 9, 12, 13, 17];
    /**
     * Last-error codes after which a NULL result is still a miss: none, reconnected, a connect
     * failure the call failed over from (a call that found no server ends with 7 or 9), trace.
     */
    private const BENIGN_CODES = [0, 5, 12, 17, 26];
    /** Descriptions of the MCM_ERR_* codes; mc_last_error() gives only the code and the site's message. */
    private const ERROR_TEXT = [
        1 => 'internal assertion', 2 => 'snprintf failed', 3 => 'strtol failed',
        4 => 'strtoll failed', 5 => 'connection re-established with server',
        6 => 'failed to send command to the memcache server',
        7 => 'no available servers in server list', 8 => 'unable to store value',
        9 => 'unable to find a server to connect to', 10 => 'malloc failed',
        11 => 'realloc failed', 12 => 'unable to connect to a server',
        13 => 'unable to lookup/resolve host', 14 => 'protocol error', 16 => 'close failed',
        17 => 'connect failed', 18 => 'fcntl failed', 19 => 'read failed', 20 => 'select failed',
        21 => 'setsockopt failed', 22 => 'socket failed', 23 => 'writev failed',
        24 => 'test message', 25 => 'timeout', 26 => 'trace', 27 => 'unknown stat variable',
    ];

    /** @var array<string, \FFI> one FFI scope per library path */
    private static array $scopes = [];
    private static ?\FFI $libc = null;

    private \FFI $ffi;
    /** @var \FFI\CData|null struct memcache * */
    private ?\FFI\CData $mc;

    /**
     * How an explicit server list places keys: the names mclient --distribution, the Ruby
     * binding and the PostgreSQL setting memcache.distribution use, for memcache.h's MC_DIST_*.
     */
    public const DISTRIBUTIONS = ['crc32-modulo' => 0, 'ketama-md5' => 1];

    /**
     * new Memcache()                        the domain named by $MEMCACHE_DOMAIN, else "default"
     * new Memcache(domain: 'app')           the shared list of domain "app" (mcadmin(8))
     * new Memcache(servers: [addr, ...])    a private list; addr is "host:port", "host",
     *                                       "[::1]:11211" or "/path/to/unix.sock"
     * distribution: (with servers: only) 'crc32-modulo', the default, places keys as libmemcache
     *   1.4 and every other front end given the same list do; 'ketama-md5' as libmemcached's
     *   ketama. A domain brings its own.
     *
     * @param list<string>|null $servers
     */
    public function __construct(
        ?string $domain = null,
        ?array $servers = null,
        ?string $library = null,
        ?string $distribution = null
    ) {
        if ($domain !== null && $servers !== null) {
            throw new \InvalidArgumentException('give $domain or $servers, not both');
        }
        $dist = null;
        if ($distribution !== null) {
            if ($servers === null) {
                throw new \InvalidArgumentException('$distribution goes with $servers; a domain brings its own');
            }
            $dist = self::DISTRIBUTIONS[strtolower($distribution)] ?? null;
            if ($dist === null) {
                throw new \InvalidArgumentException(sprintf(
                    'unknown distribution "%s": %s',
                    $distribution,
                    implode(' or ', array_keys(self::DISTRIBUTIONS))
                ));
            }
        }
        $this->ffi = self::scope($library ?? (getenv('LIBMEMCACHE_LIB') ?: 'libmemcache.so.0'));
        $this->mc = null;
        if ($servers !== null) {
            if ($servers === []) {
                throw new \InvalidArgumentException('$servers is empty');
            }
            $this->mc = $this->checkedHandle($this->ffi->mc_new_private());
            if ($dist !== null) {
                // Chosen before the first server is added, so every key is placed by it.
                $this->ffi->mc_distribution($this->mc, $dist);
            }
            foreach ($servers as $addr) {
                $rc = $this->ffi->mc_server_add4($this->mc, (string) $addr);
                if ($rc !== 0) {
                    [$code, $msg] = $this->lastError();
                    $detail = $code === 0 ? "mc_server_add4 returned $rc" : $this->describe($code, $msg);
                    $this->close();
                    throw new ConfigException(sprintf('cannot add server "%s": %s', $addr, $detail), $code);
                }
            }
        } else {
            $mc = $this->ffi->mc_new2($domain);
            if (self::isNull($mc)) {
                throw new ConfigException(sprintf(
                    'invalid domain name "%s": 1-64 bytes of A-Z a-z 0-9 _ . -',
                    (string) $domain
                ));
            }
            $this->mc = $mc;
        }
    }

    public function __destruct()
    {
        $this->close();
    }

    /** The library's default handler writes every report to stderr; the binding turns that off
     * on load (exceptions carry the same information). Process-wide. */
    public static function stderrReports(bool $on, ?string $library = null): void
    {
        $ffi = self::scope($library ?? (getenv('LIBMEMCACHE_LIB') ?: 'libmemcache.so.0'));
        if ($on) {
            $ffi->mc_err_filter_del(self::ALL_LEVELS);
        } else {
            $ffi->mc_err_filter_add(self::ALL_LEVELS);
        }
    }

    /** The value (a binary string), or null on a miss. */
    public function get(string $key): ?string
    {
        $mc = $this->handle();
        $len = $this->ffi->new('size_t');
        $val = $this->ffi->mc_aget2($mc, $key, strlen($key), \FFI::addr($len));
        if (self::isNull($val)) {
            // NULL is a miss, a bad key or a failure: the key check settles the second before the
            // last error (which a bad key may leave stale) is looked at.
            if (!$this->keyIsValid($key)) {
                $this->throwKeyError($key);
            }
            $this->throwLastError();
            return null;
        }
        try {
            return $len->cdata === 0 ? '' : \FFI::string($val, $len->cdata);
        } finally {
            self::libc()->free($val);
        }
    }

    /** Stores the value unconditionally; true when stored. */
    public function set(string $key, string|int $value, int $ttl = 0, int $flags = 0): bool
    {
        return $this->store('mc_set', $key, $value, $ttl, $flags);
    }

    /** Stores only if the key is absent: true when stored, false when it already existed. */
    public function add(string $key, string|int $value, int $ttl = 0, int $flags = 0): bool
    {
        return $this->store('mc_add', $key, $value, $ttl, $flags);
    }

    /** Stores only if the key exists: true when stored, false when it was absent. */
    public function replace(string $key, string|int $value, int $ttl = 0, int $flags = 0): bool
    {
        return $this->store('mc_replace', $key, $value, $ttl, $flags);
    }

    /** True when the key was deleted, false when it did not exist. */
    public function delete(string $key): bool
    {
        $rc = $this->ffi->mc_delete($this->handle(), $key, strlen($key), 0);
        return match ($rc) {
            0 => true,
            1 => false,
            -9 => $this->throwKeyError($key),
            default => $this->throwFailure('delete', $rc),
        };
    }

    /**
     * Adds $by to the 64-bit counter; the new value, or null if the key is absent. A value above
     * PHP_INT_MAX comes back as a decimal string.
     */
    public function incr(string $key, int $by = 1): int|string|null
    {
        return $this->counter('mc_incr64', $key, $by);
    }

    /** Subtracts $by from the counter (memcached stops at 0); the new value, or null if absent. */
    public function decr(string $key, int $by = 1): int|string|null
    {
        return $this->counter('mc_decr64', $key, $by);
    }

    /**
     * The values of the keys that were found, [key => binary string], in one round trip per
     * server.
     *
     * @param list<string> $keys
     * @return array<string, string>
     */
    public function getMulti(array $keys): array
    {
        $mc = $this->handle();
        $keys = array_values(array_unique(array_map('strval', $keys)));
        if ($keys === []) {
            return [];
        }
        foreach ($keys as $key) {
            // mc_req_add() reports a bad key to the global context only, not to the handle.
            if (!$this->keyIsValid($key)) {
                $this->throwKeyError($key, false);
            }
        }
        $req = $this->ffi->mc_req_new();
        if (self::isNull($req)) {
            throw new Exception('mc_req_new failed (out of memory)');
        }
        try {
            $results = [];
            foreach ($keys as $key) {
                $res = $this->ffi->mc_req_add($req, $key, strlen($key));
                if (self::isNull($res)) {
                    throw new Exception('mc_req_add failed (out of memory)');
                }
                $results[$key] = $res;
            }
            $this->ffi->mc_get($mc, $req);
            $found = [];
            foreach ($results as $key => $res) {
                if ($this->ffi->mc_res_found($res) === 0) {
                    continue;
                }
                $bytes = $res->bytes;
                $found[$key] = $bytes === 0 ? '' : \FFI::string($res->val, $bytes);
            }
            if ($found === []) {
                $this->throwLastError();
            }
            return $found;
        } finally {
            $this->ffi->mc_req_free($req);
        }
    }

    /**
     * Statistics of every server: ["host:port" => ["pid" => 123, "version" => "1.6.18", ...]],
     * null for a server that did not answer. rusage_user and rusage_system are float seconds.
     *
     * @return array<string, array<string, int|float|string|null>|null>
     */
    public function stats(): array
    {
        $mc = $this->handle();
        $out = [];
        foreach ($this->serverList($mc) as [$name, $ms]) {
            $s = $this->ffi->mc_server_stats($mc, $ms);
            if (self::isNull($s)) {
                $out[$name] = null;
                continue;
            }
            try {
                $out[$name] = [
                    'pid' => $s->pid,
                    'uptime' => $s->uptime,
                    'time' => $s->time,
                    'version' => self::isNull($s->version) ? null : \FFI::string($s->version),
                    'rusage_user' => $s->rusage_user->tv_sec + $s->rusage_user->tv_usec / 1e6,
                    'rusage_system' => $s->rusage_system->tv_sec + $s->rusage_system->tv_usec / 1e6,
                    'curr_items' => $s->curr_items,
                    'total_items' => $s->total_items,
                    'bytes' => $s->bytes,
                    'curr_connections' => $s->curr_connections,
                    'total_connections' => $s->total_connections,
                    'connection_structures' => $s->connection_structures,
                    'cmd_get' => $s->cmd_get,
                    'cmd_set' => $s->cmd_set,
                    'get_hits' => $s->get_hits,
                    'get_misses' => $s->get_misses,
                    'bytes_read' => $s->bytes_read,
                    'bytes_written' => $s->bytes_written,
                    'limit_maxbytes' => $s->limit_maxbytes,
                ];
            } finally {
                $this->ffi->mc_server_stats_free($s);
            }
        }
        return $out;
    }

    /**
     * The handle's current servers as "host:port" (for a domain: the list as of now).
     *
     * @return list<string>
     */
    public function servers(): array
    {
        return array_map(fn (array $pair) => $pair[0], $this->serverList($this->handle()));
    }

    /** Closes the connections and frees the handle (also done when the object is destroyed). */
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

    private static function scope(string $library): \FFI
    {
        if (!isset(self::$scopes[$library])) {
            if (!extension_loaded('FFI')) {
                throw new Exception('the PHP FFI extension is not loaded');
            }
            $ffi = \FFI::cdef(self::CDEF, $library);
            $ffi->mc_err_filter_add(self::ALL_LEVELS);
            self::$scopes[$library] = $ffi;
        }
        return self::$scopes[$library];
    }

    /** free(3), for the values the library allocates with the global context's malloc. */
    private static function libc(): \FFI
    {
        return self::$libc ??= \FFI::cdef('void free(void *ptr);', 'libc.so.6');
    }

    /** NULL pointers come back from calls as PHP null, and from fields as a null CData. */
    private static function isNull(?\FFI\CData $ptr): bool
    {
        return $ptr === null || \FFI::isNull($ptr);
    }

    private function checkedHandle(?\FFI\CData $mc): \FFI\CData
    {
        if (self::isNull($mc)) {
            throw new Exception('mc_new_private failed (out of memory)');
        }
        return $mc;
    }

    private function handle(): \FFI\CData
    {
        if ($this->mc === null) {
            throw new ClosedException('memcache handle is closed');
        }
        return $this->mc;
    }

    private function store(string $fn, string $key, string|int $value, int $ttl, int $flags): bool
    {
        if ($flags < 0 || $flags > 0xffff) {
            throw new \InvalidArgumentException("flags must be 0..65535, got $flags");
        }
        if ($ttl < 0) {
            throw new \InvalidArgumentException("ttl must be >= 0, got $ttl");
        }
        $value = (string) $value;
        $rc = $this->ffi->$fn($this->handle(), $key, strlen($key), $value, strlen($value), $ttl, $flags);
        return match ($rc) {
            0 => true,
            1 => false,
            -9 => $this->throwKeyError($key),
            default => $this->throwFailure(substr($fn, 3), $rc),
        };
    }

    private function counter(string $fn, string $key, int $by): int|string|null
    {
        if ($by < 0) {
            throw new \InvalidArgumentException("by must be >= 0, got $by");
        }
        $out = $this->ffi->new('uint64_t');
        $rc = $this->ffi->$fn($this->handle(), $key, strlen($key), $by, \FFI::addr($out));
        return match ($rc) {
            0 => $out->cdata >= 0 ? $out->cdata : sprintf('%u', $out->cdata),
            self::MC_NOT_FOUND => null,
            -9 => $this->throwKeyError($key),
            default => $this->throwFailure(substr($fn, 3, -2), $rc),
        };
    }

    /** The library's own key check: the default mcKeyValid hook of the global context. */
    private function keyPosition(string $key): int
    {
        $check = $this->ffi->mc_global_ctxt()->mcKeyValid;
        return self::isNull($check) ? 0 : $check(null, $key, strlen($key));
    }

    private function keyIsValid(string $key): bool
    {
        return $this->keyPosition($key) === 0;
    }

    /** @return array{int, string} code and message of the handle's last call */
    private function lastError(): array
    {
        $buf = $this->ffi->new('char[' . self::MESSAGE_SIZE . ']');
        $code = $this->ffi->mc_last_error($this->handle(), $buf, self::MESSAGE_SIZE);
        return [$code, \FFI::string($buf)];
    }

    private function describe(int $code, string $msg): string
    {
        $text = self::ERROR_TEXT[$code] ?? "error $code";
        return $msg === '' ? $text : "$text: $msg";
    }

    private static function shown(string $key): string
    {
        $s = strlen($key) > 48 ? substr($key, 0, 40) . '...(' . strlen($key) . ' bytes)' : $key;
        return '"' . addcslashes($s, "\0..\37\"\\\177") . '"';
    }

    /** Throws InvalidKeyException with the library's message when the handle recorded one, else
     * with the reason the library's key check gives. */
    private function throwKeyError(string $key, bool $fromHandle = true): never
    {
        [$code, $msg] = $fromHandle ? $this->lastError() : [0, ''];
        $reason = trim(ltrim(substr($msg, strlen('invalid key')), ':'));
        if ($code !== self::MCM_ERR_PROTO || !str_starts_with($msg, 'invalid key') || $reason === '') {
            $code = self::MCM_ERR_PROTO;
            $pos = $this->keyPosition($key);
            if ($key === '') {
                $reason = 'empty';
            } elseif (strlen($key) > 250) {
                $reason = 'longer than 250 bytes';
            } elseif ($pos > 0 && $pos <= strlen($key)) {
                $reason = sprintf('byte %d (0x%02x) is whitespace or a control byte', $pos, ord($key[$pos - 1]));
            } else {
                $reason = 'refused by the key check';
            }
        }
        throw new InvalidKeyException('invalid key ' . self::shown($key) . ": $reason", $code);
    }

    /** After a call whose result cannot tell a miss from a failure: throw if the library
     * reported a failure (a plain miss leaves the last error at 0). */
    private function throwLastError(): void
    {
        [$code, $msg] = $this->lastError();
        if (in_array($code, self::BENIGN_CODES, true)) {
            return;
        }
        $class = in_array($code, self::NO_SERVER_CODES, true) ? NoServerException::class : ServerErrorException::class;
        throw new $class($this->describe($code, $msg), $code);
    }

    private function throwFailure(string $op, int $rc): never
    {
        [$code, $msg] = $this->lastError();
        if (in_array($code, self::NO_SERVER_CODES, true) || ($rc === -1 && $code === 0)) {
            $class = NoServerException::class;
        } else {
            $class = ServerErrorException::class;
        }
        $detail = $code === 0 ? ($rc === -1 ? 'no server available' : "returned $rc") : $this->describe($code, $msg);
        throw new $class("$op: $detail", $code);
    }

    /**
     * [["host:port", struct memcache_server *], ...] in the handle's order.
     *
     * @return list<array{string, \FFI\CData}>
     */
    private function serverList(\FFI\CData $mc): array
    {
        // mc_server_find() brings a domain handle's array up to date with the shared list (the
        // library does so at the start of every operation); it does no I/O.
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
                $list[] = [$host, $ms];
                continue;
            }
            if (str_contains($host, ':')) {
                $host = "[$host]";
            }
            $list[] = [$host . ':' . \FFI::string($ms->port), $ms];
        }
        return $list;
    }
}
