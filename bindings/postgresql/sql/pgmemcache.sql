-- pgmemcache's SQL API (1.1), every function and both settings, against real memcached, in a
-- database of its own: the SQL of a site moving from pgmemcache runs unchanged.
CREATE DATABASE pgmc;
\c pgmc
CREATE EXTENSION pgmemcache_rs;

-- memcache_server_add: a private list of this session instead of memcache.domain
SELECT memcache_server_add(:'mc1');
SELECT memcache_flush_all();
-- a server the library refuses is an ERROR and leaves the list as it was
SELECT memcache_server_add('127.0.0.1:notaport');
SELECT memcache_set('pg:still', 'works'), memcache_get('pg:still');
\! printf 'on the first server: '; "$MCLIENT" --servers "$MC1" get pg:still; echo

-- set, add, replace: no expiry, an interval, a timestamptz
SELECT memcache_set('pg:a', 'alpha');
SELECT memcache_set('pg:b', 'beta', '1 hour'::interval);
SELECT memcache_set('pg:c', 'gamma', now() + interval '1 hour');
SELECT memcache_set('pg:far', 'far', now() + interval '45 days');
SELECT memcache_set('pg:past', 'never', now() - interval '1 hour');
SELECT memcache_add('pg:a', 'again'), memcache_add('pg:d', 'delta');
SELECT memcache_add('pg:e', 'epsilon', '1 hour'::interval), memcache_add('pg:f', 'phi', now() + interval '1 minute');
SELECT memcache_replace('pg:none', 'x'), memcache_replace('pg:a', 'ALPHA');
SELECT memcache_replace('pg:b', 'BETA', '1 hour'::interval), memcache_replace('pg:c', 'GAMMA', now() + interval '1 hour');
-- bytea values, as pgmemcache takes them
SELECT memcache_set('pg:bin', '\x00ff'::bytea), memcache_set('pg:bin2', '\x01'::bytea, now() + interval '1 hour');

-- memcache_get returns text; a miss is NULL
SELECT memcache_get('pg:a'), pg_typeof(memcache_get('pg:a'));
SELECT memcache_get('pg:b'), memcache_get('pg:c'), memcache_get('pg:d'), memcache_get('pg:e'), memcache_get('pg:f'), memcache_get('pg:far');
SELECT memcache_get('pg:none') IS NULL AS miss;

-- memcache_get_multi: (key, value) of the keys found, text[] and bytea[]
SELECT * FROM memcache_get_multi(ARRAY['pg:a', 'pg:none', 'pg:b', NULL, 'pg:c']);
SELECT key, value, pg_typeof(value) FROM memcache_get_multi(ARRAY['pg:bin', 'pg:none', 'pg:bin2']::bytea[]);
SELECT count(*) AS none_found FROM memcache_get_multi(ARRAY[]::text[]);
SELECT * FROM memcache_get_multi(ARRAY['pg:c', 'pg:c']);
SELECT bool_and(memcache_set('pg:m' || i, repeat('m', i))) FROM generate_series(1, 300) i;
SELECT count(*) AS found, sum(length(value)) AS bytes FROM memcache_get_multi(ARRAY(SELECT 'pg:m' || i FROM generate_series(0, 301) i));
SELECT * FROM memcache_get_multi(ARRAY['bad key']);

-- memcache_delete, with and without a hold time: memcached 1.4+ have none, so the library
-- deletes at once and says so in a NOTICE
SELECT memcache_delete('pg:a'), memcache_delete('pg:a');
SELECT memcache_delete('pg:b', '0'::interval);
SELECT memcache_delete('pg:c', '10 seconds'::interval);
SELECT memcache_get('pg:a') IS NULL AS a_gone, memcache_get('pg:b') IS NULL AS b_gone, memcache_get('pg:c') IS NULL AS c_gone;

-- memcache_incr/memcache_decr, by one or by an int8
SELECT memcache_set('pg:n', '10');
SELECT memcache_incr('pg:n'), memcache_incr('pg:n', 5::int8), memcache_decr('pg:n'), memcache_decr('pg:n', 4::int8);
SELECT pg_typeof(memcache_incr('pg:n'));
SELECT memcache_incr('pg:no-counter') IS NULL AS missing;

-- memcache_stats: pgmemcache's text, a header per server then one line per statistic
SELECT split_part(memcache_stats(), E'\n', 1) = format('Server: %s (%s)', split_part(:'mc1', ':', 1), split_part(:'mc1', ':', 2)) AS header;
SELECT count(*) AS lines FROM regexp_split_to_table(rtrim(memcache_stats(), E'\n'), E'\n') l WHERE l ~ '^[a-z_]+: ';
SELECT substring(memcache_stats() FROM E'\npid: ([0-9]+)\n')::int > 0 AS has_pid;

-- memcache_flush_all
SELECT memcache_flush_all();
SELECT memcache_get('pg:d') IS NULL AS flushed;

-- pgmemcache.default_behavior: the placement flags, the others accepted; the rest refused
SET pgmemcache.default_behavior = 'DISTRIBUTION:CONSISTENT, HASH:MD5, BINARY_PROTOCOL:1';
SET pgmemcache.default_behavior = 'MEMCACHED_BEHAVIOR_DISTRIBUTION:MEMCACHED_DISTRIBUTION_MODULA';
SET pgmemcache.default_behavior = 'DISTRIBUTION:RANDOM';
SET pgmemcache.default_behavior = 'HASH:FNV1A_32';
SET pgmemcache.default_behavior = 'DISTRIBUTION:CONSISTENT, HASH:CRC';
SET pgmemcache.default_behavior = 'NO_SUCH_FLAG:1';
SET pgmemcache.default_behavior = 'DISTRIBUTION';
SHOW pgmemcache.default_behavior;

-- pgmemcache.default_servers with DISTRIBUTION:CONSISTENT puts keys where every ketama-md5
-- front end looks for them (a new session: memcache_server_add's list is gone)
\c pgmc
\set both :mc1,:mc2
SET pgmemcache.default_servers = :'both';
SELECT current_setting('pgmemcache.default_servers') = :'both' AS both_servers;
SET pgmemcache.default_behavior = 'DISTRIBUTION:CONSISTENT';
SELECT memcache_flush_all();
SELECT bool_and(memcache_set('pg:place:' || i, 'v' || i)) FROM generate_series(1, 20) i;
SELECT count(*) AS on_both FROM memcache_stats_rows() WHERE name = 'curr_items' AND value::int > 0;
\! for i in $(seq 1 20); do "$MCLIENT" --servers "$MC1,$MC2" --distribution ketama-md5 get "pg:place:$i" >/dev/null || echo "ketama-md5 misses pg:place:$i"; done; echo "mclient ketama-md5 checked"
-- the same keys are not where crc32-modulo would look for all of them
SET pgmemcache.default_behavior = 'DISTRIBUTION:MODULA';
SELECT count(*) < 20 AS placement_differs FROM generate_series(1, 20) i WHERE memcache_get('pg:place:' || i) IS NOT NULL;
\c postgres
DROP DATABASE pgmc;
