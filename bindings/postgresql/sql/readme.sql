-- The example session of README.md, line for line, in a database of its own.
CREATE DATABASE readme;
\c readme
CREATE EXTENSION pgmemcache_rs;
SELECT memcache_set('user:42', '{"name": "Ada"}', '10 minutes'::interval);
SELECT memcache_get('user:42');
SELECT memcache_set('img:1', '\x00ff00'::bytea);
SELECT memcache_get_bytea('img:1');
SELECT memcache_get('nothing-here') IS NULL AS miss;
SELECT memcache_add('user:42', 'other');
SELECT memcache_set('hits', '41');
SELECT memcache_incr('hits');
SELECT memcache_delete('user:42');
SELECT count(*) AS servers FROM memcache_stats_rows() WHERE name = 'pid';
SELECT memcache_get('bad key');
