-- The shipped 1.0 updated with ALTER EXTENSION ... UPDATE ends up with exactly the functions
-- (names, arguments, results, privileges) of a fresh 1.1, in databases of their own.
CREATE DATABASE fresh;
CREATE DATABASE upgraded;
\c upgraded
CREATE EXTENSION pgmemcache_rs VERSION '1.0';
SELECT extversion FROM pg_extension WHERE extname = 'pgmemcache_rs';
SELECT pg_typeof(memcache_get('upgrade:none')) AS get_before;
ALTER EXTENSION pgmemcache_rs UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'pgmemcache_rs';
SELECT pg_typeof(memcache_get('upgrade:none')) AS get_after;
-- the functions of the extension, as a sorted list of signatures, results and grants
CREATE TEMP VIEW api AS
SELECT p.oid::regprocedure::text AS signature, pg_get_function_result(p.oid) AS result,
       p.prosrc AS symbol, coalesce(p.proacl::text, 'default') AS acl
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pgmemcache_rs' AND d.deptype = 'e';
SELECT string_agg(format('%s -> %s (%s) %s', signature, result, symbol, acl), E'\n' ORDER BY signature) AS upgraded_api FROM api \gset
SELECT count(*) AS functions FROM api;
\c fresh
CREATE EXTENSION pgmemcache_rs;
SELECT extversion FROM pg_extension WHERE extname = 'pgmemcache_rs';
CREATE TEMP VIEW api AS
SELECT p.oid::regprocedure::text AS signature, pg_get_function_result(p.oid) AS result,
       p.prosrc AS symbol, coalesce(p.proacl::text, 'default') AS acl
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pgmemcache_rs' AND d.deptype = 'e';
SELECT * FROM api ORDER BY 1;
SELECT string_agg(format('%s -> %s (%s) %s', signature, result, symbol, acl), E'\n' ORDER BY signature) = :'upgraded_api' AS same_api_as_upgraded FROM api;
\c postgres
DROP DATABASE fresh;
DROP DATABASE upgraded;
