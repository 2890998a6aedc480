-- The everyday calls against the shared domain 'pgtest' (memcache.domain in postgresql.conf).
-- Version 1.0's API (memcache_get returns bytea, memcache_stats rows): pgmemcache.sql tests 1.1.
CREATE EXTENSION pgmemcache_rs VERSION '1.0';
SHOW memcache.domain;
SELECT memcache_flush_all();

-- text in, text out
SELECT memcache_set('greeting', 'hello, world');
SELECT memcache_get_text('greeting');
SELECT memcache_get('greeting');

-- bytea with NUL bytes survives byte for byte
SELECT memcache_set('blob', '\x00ff00'::bytea);
SELECT memcache_get('blob'), length(memcache_get('blob'));
SELECT memcache_get('blob') = '\x00ff00'::bytea AS same;
-- ... but is not text
SELECT memcache_get_text('blob');

-- an empty value is not a miss
SELECT memcache_set('empty', '');
SELECT memcache_get_text('empty') IS NULL AS is_null, memcache_get_text('empty') = '' AS is_empty;

-- a miss is NULL
SELECT memcache_get('no-such-key') IS NULL AS miss, memcache_get_text('no-such-key') IS NULL AS miss_text;

-- add only when absent, replace only when present
SELECT memcache_add('greeting', 'again');
SELECT memcache_add('fresh', 'new');
SELECT memcache_get_text('greeting'), memcache_get_text('fresh');
SELECT memcache_replace('not-there', 'x');
SELECT memcache_replace('fresh', 'replaced'::bytea);
SELECT memcache_get_text('fresh');
SELECT memcache_get('not-there') IS NULL AS still_missing;

-- delete
SELECT memcache_delete('fresh');
SELECT memcache_delete('fresh');
SELECT memcache_get('fresh') IS NULL AS gone;

-- 64-bit counters
SELECT memcache_set('counter', '10');
SELECT memcache_incr('counter');
SELECT memcache_incr('counter', 5);
SELECT memcache_decr('counter', 3);
SELECT memcache_decr('counter', 100);
SELECT memcache_incr('counter', 4294967296);
SELECT memcache_incr('no-counter') IS NULL AS incr_missing, memcache_decr('no-counter') IS NULL AS decr_missing;
SELECT memcache_set('big', '9223372036854775807');
SELECT memcache_incr('big', 0);
SELECT memcache_incr('big', 1);

-- expiry: an interval; beyond 30 days memcached needs an absolute time, which is sent
SELECT memcache_set('long-lived', 'v', '45 days');
SELECT memcache_get_text('long-lived');
SELECT memcache_set('short-lived', 'v', '1 hour'), memcache_get_text('short-lived');

-- many keys in one statement
SELECT bool_and(memcache_set('k' || i, repeat('x', i))) FROM generate_series(1, 200) i;
SELECT sum(length(memcache_get_text('k' || i))) FROM generate_series(1, 200) i;

-- statistics: one row per statistic of every server of the domain
SELECT count(DISTINCT server) AS servers, count(*) AS rows FROM memcache_stats();
SELECT name FROM memcache_stats() ORDER BY name;
SELECT value::bigint > 0 AS has_pid FROM memcache_stats() WHERE name = 'pid';
SELECT value::bigint >= 200 AS sets_counted FROM memcache_stats() WHERE name = 'cmd_set';

-- the server loaded libmemcache.so.0 from the library's prefix
SELECT pg_backend_pid() AS backend_pid \gset
\setenv BACKEND_PID :backend_pid
\! grep -q " $LIBMEMCACHE_DIR/libmemcache.so" /proc/$BACKEND_PID/maps && echo "libmemcache loaded from the prefix"
