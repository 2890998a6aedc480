-- The library allocates with PostgreSQL's allocator, from the backend's memory context
-- "pgmemcache_rs" (a child of TopMemoryContext). It frees what it allocates and the extension
-- frees the values and statistics it is handed, so thousands of calls, failed ones included,
-- leave the context's used bytes where they were.

-- the context appears with the first call of the session
SELECT count(*) AS contexts FROM pg_backend_memory_contexts WHERE name = 'pgmemcache_rs';
SELECT memcache_set('mem:warm', repeat('w', 1000));
SELECT name, parent, level, used_bytes > 0 AS in_use
FROM pg_backend_memory_contexts WHERE name = 'pgmemcache_rs';

-- one of every call first, so that whatever the handle keeps (connections, buffers) is counted
-- before the measurement starts
SELECT memcache_set('mem:big', repeat('b', 900 * 1024));
SELECT length(memcache_get('mem:big')) AS big_length;
SELECT memcache_get_text('mem:warm') = repeat('w', 1000) AS same, memcache_get('mem:none') IS NULL AS miss;
SELECT memcache_add('mem:warm', 'x'), memcache_replace('mem:none', 'x'), memcache_delete('mem:none');
SELECT memcache_set('mem:n', '0'), memcache_incr('mem:n'), memcache_decr('mem:n');
SELECT count(*) > 0 AS stats FROM memcache_stats();
SELECT memcache_get('bad key');
SELECT used_bytes AS used_before FROM pg_backend_memory_contexts WHERE name = 'pgmemcache_rs' \gset

-- 2000 keys of 1000 bytes: stored, read back as bytea and as text, missed, counted, deleted
SELECT count(*) AS stored FROM generate_series(1, 2000) i WHERE memcache_set('mem:' || i, repeat('v', 1000));
SELECT count(*) AS fetched FROM generate_series(1, 2000) i WHERE length(memcache_get('mem:' || i)) = 1000;
SELECT count(*) AS fetched_text FROM generate_series(1, 2000) i WHERE memcache_get_text('mem:' || i) = repeat('v', 1000);
SELECT count(*) AS missed FROM generate_series(1, 2000) i WHERE memcache_get('mem:none:' || i) IS NULL;
SELECT count(*) AS not_added FROM generate_series(1, 2000) i WHERE NOT memcache_add('mem:' || i, 'x');
SELECT sum(memcache_incr('mem:n')) AS incremented FROM generate_series(1, 2000) i;
SELECT count(*) AS deleted FROM generate_series(1, 2000) i WHERE memcache_delete('mem:' || i);
-- large values: buffers of 900 kB, 20 times
SELECT count(*) AS big_fetched FROM generate_series(1, 20) i WHERE length(memcache_get('mem:big')) = 900 * 1024;
-- statistics
SELECT count(*) AS stats_rows FROM generate_series(1, 200) i, memcache_stats();
-- errors: refused keys, a value the server refuses, a bytea that is not text
DO $$
DECLARE
  failed int := 0;
BEGIN
  PERFORM memcache_set('mem:blob', '\xff00'::bytea);
  FOR i IN 1 .. 500 LOOP
    BEGIN
      PERFORM memcache_get('bad key ' || i);
    EXCEPTION WHEN invalid_parameter_value THEN
      failed := failed + 1;
    END;
    BEGIN
      PERFORM memcache_get_text('mem:blob');
    EXCEPTION WHEN character_not_in_repertoire THEN
      failed := failed + 1;
    END;
  END LOOP;
  FOR i IN 1 .. 20 LOOP
    BEGIN
      PERFORM memcache_set('mem:huge', repeat('h', 2 * 1024 * 1024));
    EXCEPTION WHEN program_limit_exceeded THEN
      failed := failed + 1;
    END;
  END LOOP;
  RAISE NOTICE '% calls failed', failed;
END $$;

SELECT CASE WHEN used_bytes - :used_before <= 1024 THEN 'flat'
            ELSE format('grew by %s bytes', used_bytes - :used_before) END AS used_bytes
FROM pg_backend_memory_contexts WHERE name = 'pgmemcache_rs';

-- a handle rebuilt 100 times (another server list and back) gives all its memory back too
\set both :mc1 ',' :mc2
SET pgmc_test.servers = :'both';
DO $$
BEGIN
  FOR i IN 1 .. 100 LOOP
    PERFORM set_config('memcache.servers', current_setting('pgmc_test.servers'), false);
    PERFORM memcache_get('mem:warm');
    PERFORM set_config('memcache.servers', '', false);
    PERFORM memcache_get('mem:warm');
  END LOOP;
END $$;
SELECT CASE WHEN used_bytes - :used_before <= 1024 THEN 'flat'
            ELSE format('grew by %s bytes', used_bytes - :used_before) END AS used_bytes
FROM pg_backend_memory_contexts WHERE name = 'pgmemcache_rs';

-- An allocation that fails inside the library is an out-of-memory ERROR after the call has
-- returned, never a longjmp through the library: the allocator gives the library NULL. The
-- backend's address space is limited to what it uses plus 64 MB, and a fake server answers
-- every get with a value of 256 MB, which the library then reads and drops.
SELECT pg_backend_pid() AS backend_pid \gset
\setenv BACKEND_PID :backend_pid
\! prlimit --pid "$BACKEND_PID" --as=$(( ($(awk '/^VmSize:/ {print $2}' "/proc/$BACKEND_PID/status") + 65536) * 1024 ))
SET memcache.servers = :'mcbig';
\set VERBOSITY terse
SELECT memcache_get('mem:any');
DO $$
BEGIN
  PERFORM memcache_get_text('mem:any');
EXCEPTION WHEN out_of_memory THEN
  RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM;
END $$;
\set VERBOSITY default
-- (the second call found the connection in step: the first one read the value to its end)
-- the session goes on, and the failed calls left nothing behind
RESET memcache.servers;
SELECT memcache_get_text('mem:warm') = repeat('w', 1000) AS same;
SELECT CASE WHEN used_bytes - :used_before <= 1024 THEN 'flat'
            ELSE format('grew by %s bytes', used_bytes - :used_before) END AS used_bytes
FROM pg_backend_memory_contexts WHERE name = 'pgmemcache_rs';
