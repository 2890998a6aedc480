-- pgmemcache_rs 1.0 -> 1.1: pgmemcache's SQL API, so a site moving from pgmemcache keeps its
-- SQL. Two functions change their result to pgmemcache's: memcache_get(text) now returns text
-- (1.0's bytea result is memcache_get_bytea) and memcache_stats() returns pgmemcache's text
-- (1.0's rows are memcache_stats_rows). Views or functions built on the old results must be
-- dropped before the update.
\echo Use "ALTER EXTENSION pgmemcache_rs UPDATE TO '1.1'" to load this file. \quit

DROP FUNCTION memcache_get(text);
DROP FUNCTION memcache_stats();

CREATE FUNCTION memcache_get(key text) RETURNS text
    AS 'MODULE_PATHNAME', 'pgmc_get_text' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION memcache_get_bytea(key text) RETURNS bytea
    AS 'MODULE_PATHNAME', 'pgmc_get' LANGUAGE C STRICT VOLATILE;

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
