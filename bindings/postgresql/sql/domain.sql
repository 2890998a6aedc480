-- A handle on a shared domain follows an mcadmin change without reconnecting. The domain
-- 'pgmove' starts with the first memcached ($MC1); mcadmin moves it to the second ($MC2).
SELECT pg_backend_pid() AS pid_before \gset
SET memcache.domain = 'pgmove';
SELECT memcache_set('where', 'on the first server');
\! printf 'first: '; "$MCLIENT" --servers "$MC1" get where; echo " (exit $?)"
\! printf 'second: '; "$MCLIENT" --servers "$MC2" get where; echo " (exit $?)"

-- the administrator moves the domain to the second server
\! "$MCADMIN" --domain pgmove set "$MC2" >/dev/null 2>&1

-- same session, same handle: the next call uses the new list
SELECT pg_backend_pid() = :pid_before AS same_backend;
SELECT memcache_get_text('where') IS NULL AS not_on_the_new_server;
SELECT memcache_set('where', 'on the second server');
SELECT memcache_get_text('where');
\! printf 'first: '; "$MCLIENT" --servers "$MC1" get where; echo " (exit $?)"
\! printf 'second: '; "$MCLIENT" --servers "$MC2" get where; echo " (exit $?)"

-- the same check from SQL, with private handles on each server (memcache.servers)
SET memcache.servers = :'mc2';
SELECT memcache_get_text('where');
SET memcache.servers = :'mc1';
SELECT memcache_get_text('where');
RESET memcache.servers;

-- statistics follow the list too: one server, the second
SELECT count(DISTINCT server) AS servers FROM memcache_stats();
SELECT server = :'mc2' AS is_second FROM memcache_stats() WHERE name = 'pid';

-- both servers in the domain
\! "$MCADMIN" --domain pgmove set "$MC1" "$MC2" >/dev/null 2>&1
SELECT count(DISTINCT server) AS servers FROM memcache_stats();
SELECT bool_and(memcache_set('spread' || i, 'v')) FROM generate_series(1, 50) i;
SELECT count(*) AS found FROM generate_series(1, 50) i WHERE memcache_get_text('spread' || i) = 'v';

-- a domain that does not exist yet gives a clear error, then works once created
SET memcache.domain = 'pglater';
SELECT memcache_get('where');
\! "$MCADMIN" --domain pglater set "$MC2" >/dev/null 2>&1
SELECT pg_sleep(1.2);
SELECT memcache_get_text('where');

-- switching back to the first domain rebuilds the handle
RESET memcache.domain;
SHOW memcache.domain;
SELECT memcache_get_text('greeting');
SELECT pg_backend_pid() = :pid_before AS same_backend;

-- an explicit list places keys as every front end does (mclient here): crc32-modulo, 1.4's
-- rule, unless memcache.distribution chooses ketama-md5 (the names of mclient --distribution)
SELECT :'mc1' || ',' || :'mc2' AS both \gset
SET memcache.servers = :'both';
SHOW memcache.distribution;
SELECT bool_and(memcache_set('placed' || i, 'v')) FROM generate_series(1, 20) i;
\! "$MCLIENT" --servers "$MC1,$MC2" exists $(seq -f placed%g 1 20); echo "crc32-modulo: exit $?"
SET memcache.distribution = 'ketama-md5';
SELECT bool_and(memcache_set('ring' || i, 'v')) FROM generate_series(1, 20) i;
SELECT count(*) AS found FROM generate_series(1, 20) i WHERE memcache_get_text('ring' || i) = 'v';
\! "$MCLIENT" --servers "$MC1,$MC2" --distribution ketama-md5 exists $(seq -f ring%g 1 20); echo "ketama-md5: exit $?"
SET memcache.distribution = 'modulo';
RESET memcache.distribution;
RESET memcache.servers;
