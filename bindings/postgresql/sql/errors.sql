-- Errors become ERRORs after the library call returned; the session goes on.
\set VERBOSITY default
SELECT memcache_set('ok', 'fine');

-- a key with a space
SELECT memcache_get('bad key');
SELECT memcache_get_text('ok');
SELECT memcache_set('bad key', 'v');
SELECT memcache_add('tab	key', 'v');
SELECT memcache_delete('new
line');
SELECT memcache_incr('bad key');
SELECT memcache_get('');
SELECT memcache_get(repeat('k', 251));
SELECT length(memcache_get_text(repeat('k', 250))) IS NULL AS longest_key_is_fine;

-- inside a transaction the error aborts it, as any other error
BEGIN;
SELECT memcache_set('in-tx', 'v');
SELECT memcache_set('bad key', 'v');
SELECT 1;
ROLLBACK;
SELECT memcache_get_text('in-tx');

-- the SQLSTATE of a bad key
DO $$
BEGIN
  PERFORM memcache_get('bad key');
EXCEPTION WHEN invalid_parameter_value THEN
  RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM;
END $$;

-- arguments the SQL side refuses
SELECT memcache_incr('ok', -1);
SELECT memcache_set('ok', 'v', '-1 second');
SELECT memcache_set('k', 'v', '1000 years');
-- a value over memcached's item size limit (1 MB by default): SERVER_ERROR
DO $$
BEGIN
  PERFORM memcache_set('huge', repeat('x', 2 * 1024 * 1024));
EXCEPTION WHEN program_limit_exceeded THEN
  RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM;
END $$;
SELECT memcache_get('huge') IS NULL AS not_stored;
SELECT memcache_set('not-a-number', 'abc');
SELECT memcache_incr('not-a-number');

-- invalid settings
SET memcache.domain = 'no spaces allowed';
SET memcache.domain = '';
SHOW memcache.domain;

-- a server that refuses connections (memcache.servers replaces the domain)
SET memcache.servers = '127.0.0.1:1';
SELECT memcache_get('ok');
-- every call fails; the message of a key operation depends on whether the server is still
-- skipped (for 5 s after a failed connect), so only the SQLSTATE is shown here
DO $$
DECLARE
  call text;
BEGIN
  FOREACH call IN ARRAY ARRAY['memcache_get(''ok'')', 'memcache_get_text(''ok'')',
      'memcache_set(''ok'', ''v'')', 'memcache_add(''ok'', ''v''::bytea)',
      'memcache_replace(''ok'', ''v'')', 'memcache_delete(''ok'')',
      'memcache_incr(''ok'')', 'memcache_decr(''ok'', 2)'] LOOP
    BEGIN
      EXECUTE 'SELECT ' || call;
      RAISE NOTICE '% did not fail', call;
    EXCEPTION WHEN system_error THEN
      RAISE NOTICE '% failed with %', call, SQLSTATE;
    END;
  END LOOP;
END $$;
SELECT * FROM memcache_stats();
SELECT memcache_flush_all();

-- one dead server among live ones: calls succeed on the live one, with NOTICEs (once: the
-- dead server is then skipped for 5 s)
\set both '127.0.0.1:1,' :mc1
SET memcache.servers = :'both';
SELECT bool_and(memcache_set('spread' || i, 'v' || i)) FROM generate_series(1, 64) i;
SELECT count(*) FROM generate_series(1, 64) i WHERE memcache_get_text('spread' || i) = 'v' || i;
SET memcache.servers = '127.0.0.1:notaport';
SELECT memcache_get('ok');
RESET memcache.servers;

-- back on the domain, in the same session
SELECT memcache_get_text('ok');

-- an unprivileged role may use the cache but not flush it or pick servers
CREATE ROLE pgmc_user;
SET ROLE pgmc_user;
SELECT memcache_get_text('ok');
SELECT memcache_flush_all();
SET memcache.servers = '127.0.0.1:1';
RESET ROLE;
DROP ROLE pgmc_user;
