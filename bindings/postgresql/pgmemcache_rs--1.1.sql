-- pgmemcache_rs 1.1: SQL functions over libmemcache, with pgmemcache's API (the functions of
-- 1.0 stay as extras). See README.md for the settings and the error mapping.
\echo Use "CREATE EXTENSION pgmemcache_rs" to load this file. \quit

-- Fetching: NULL on a miss.
CREATE FUNCTION memcache_get(key text) RETURNS text
    AS 'MODULE_PATHNAME', 'pgmc_get_text' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION memcache_get_bytea(key text) RETURNS bytea
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

-- Empties every server of the current list: not for everyone.
CREATE FUNCTION memcache_flush_all() RETURNS bool
    AS 'MODULE_PATHNAME', 'pgmc_flush_all' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION memcache_flush_all() FROM PUBLIC;

-- Found keys only, one row each, in the order asked; NULL keys are skipped.
CREATE FUNCTION memcache_get_multi(keys text[], OUT key text, OUT value text)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'pgmc_get_multi_text' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION memcache_get_multi(keys bytea[], OUT key text, OUT value bytea)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'pgmc_get_multi_bytea' LANGUAGE C STRICT VOLATILE;

-- The expiry as a point in time (pgmemcache's other form); it must be in the future.
CREATE FUNCTION memcache_set(key text, value text, expire timestamptz) RETURNS bool
    AS 'MODULE_PATHNAME', 'pgmc_set' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION memcache_set(key text, value bytea, expire timestamptz) RETURNS bool
    AS 'MODULE_PATHNAME', 'pgmc_set' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION memcache_add(key text, value text, expire timestamptz) RETURNS bool
    AS 'MODULE_PATHNAME', 'pgmc_add' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION memcache_add(key text, value bytea, expire timestamptz) RETURNS bool
    AS 'MODULE_PATHNAME', 'pgmc_add' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION memcache_replace(key text, value text, expire timestamptz) RETURNS bool
    AS 'MODULE_PATHNAME', 'pgmc_replace' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION memcache_replace(key text, value bytea, expire timestamptz) RETURNS bool
    AS 'MODULE_PATHNAME', 'pgmc_replace' LANGUAGE C STRICT VOLATILE;

-- pgmemcache's hold time: memcached 1.4 and later have none; the library deletes at once and
-- reports the hold time it dropped (a NOTICE).
CREATE FUNCTION memcache_delete(key text, hold interval) RETURNS bool
    AS 'MODULE_PATHNAME', 'pgmc_delete' LANGUAGE C STRICT VOLATILE;

-- pgmemcache's text: "Server: HOST (PORT)" then "name: value" lines, per server.
CREATE FUNCTION memcache_stats() RETURNS text
    AS 'MODULE_PATHNAME', 'pgmc_stats_text' LANGUAGE C VOLATILE;
CREATE FUNCTION memcache_stats_rows(OUT server text, OUT name text, OUT value text)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'pgmc_stats' LANGUAGE C VOLATILE;

-- Adds servers (host[:port], or a comma-separated list) to this session's private list, used
-- instead of memcache.domain. Like memcache.servers, not for everyone.
CREATE FUNCTION memcache_server_add(servers text) RETURNS bool
    AS 'MODULE_PATHNAME', 'pgmc_server_add' LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION memcache_server_add(text) FROM PUBLIC;
