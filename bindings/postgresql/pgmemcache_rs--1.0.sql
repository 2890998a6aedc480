-- pgmemcache_rs 1.0: SQL functions over libmemcache. See README.md for the settings and the
-- error mapping.
\echo Use "CREATE EXTENSION pgmemcache_rs" to load this file. \quit

-- Fetching: NULL on a miss.
CREATE FUNCTION memcache_get(key text) RETURNS bytea
    AS 'MODULE_PATHNAME', 'pgmc_get' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION memcache_get_text(key text) RETURNS text
    AS 'MODULE_PATHNAME', 'pgmc_get_text' LANGUAGE C STRICT VOLATILE;

-- Storing: true when stored, false when not (add: the key exists; replace: it does not).
-- expire: '0' never expires; up to 30 days is relative, longer becomes an absolute time.
CREATE FUNCTION memcache_set(key text, value text, expire interval DEFAULT '0') RETURNS bool
    AS 'MODULE_PATHNAME', 'pgmc_set' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION memcache_set(key text, value bytea, expire interval DEFAULT '0') RETURNS bool
    AS 'MODULE_PATHNAME', 'pgmc_set' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION memcache_add(key text, value text, expire interval DEFAULT '0') RETURNS bool
    AS 'MODULE_PATHNAME', 'pgmc_add' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION memcache_add(key text, value bytea, expire interval DEFAULT '0') RETURNS bool
    AS 'MODULE_PATHNAME', 'pgmc_add' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION memcache_replace(key text, value text, expire interval DEFAULT '0') RETURNS bool
    AS 'MODULE_PATHNAME', 'pgmc_replace' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION memcache_replace(key text, value bytea, expire interval DEFAULT '0') RETURNS bool
    AS 'MODULE_PATHNAME', 'pgmc_replace' LANGUAGE C STRICT VOLATILE;

-- true when the key was deleted, false when it did not exist.
CREATE FUNCTION memcache_delete(key text) RETURNS bool
    AS 'MODULE_PATHNAME', 'pgmc_delete' LANGUAGE C STRICT VOLATILE;

-- 64-bit counters: the new value, NULL when the key does not exist. decr stops at 0.
CREATE FUNCTION memcache_incr(key text, delta bigint DEFAULT 1) RETURNS bigint
    AS 'MODULE_PATHNAME', 'pgmc_incr' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION memcache_decr(key text, delta bigint DEFAULT 1) RETURNS bigint
    AS 'MODULE_PATHNAME', 'pgmc_decr' LANGUAGE C STRICT VOLATILE;

-- One row per statistic per server of the current list.
CREATE FUNCTION memcache_stats(OUT server text, OUT name text, OUT value text)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'pgmc_stats' LANGUAGE C VOLATILE;

-- Empties every server of the current list: not for everyone.
CREATE FUNCTION memcache_flush_all() RETURNS bool
    AS 'MODULE_PATHNAME', 'pgmc_flush_all' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION memcache_flush_all() FROM PUBLIC;
