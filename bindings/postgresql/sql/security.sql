-- TLS and login (issue 17): the memcache.tls* and memcache.auth_file settings, against the
-- memcached -Z (:tls, with certificates test.sh made: :ca signed it, :wrongca did not) and the
-- memcached -Y (:auth, logged in to with :authfile) that test.sh starts.
-- Server addresses in messages are shown as HOST:PORT, since their ports change from run to run.
CREATE FUNCTION pg_temp.outcome(statement text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE statement;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN regexp_replace(regexp_replace(SQLERRM, '127\.0\.0\.1:[0-9]+', 'HOST:PORT', 'g'),
						  '/[^ :]*/', '.../', 'g');
END $$;
-- the server's CA: stored and read over TLS
SET memcache.servers = :'tls';
SET memcache.tls_ca = :'ca';
SELECT memcache_set('sec_tls', 'over TLS');
SELECT memcache_get('sec_tls');
-- memcache.tls speaks TLS to a server written without tls://
SET memcache.servers = :'tlsplain';
SET memcache.tls = on;
SELECT memcache_get('sec_tls');
RESET memcache.tls;
-- a CA that did not sign the server's certificate: an ERROR that says so, no hang
SET memcache.servers = :'tls';
SET memcache.tls_ca = :'wrongca';
SELECT pg_temp.outcome($$SELECT memcache_get('sec_tls')$$);
SELECT pg_temp.outcome($$SELECT memcache_set('sec_tls', 'x')$$);
-- memcache.tls_insecure accepts it
SET memcache.tls_insecure = on;
SELECT memcache_get('sec_tls');
RESET memcache.tls_insecure;
-- a server that asks for a client certificate (:mtls): served with memcache.tls_cert and
-- memcache.tls_key, refused without them
SET memcache.servers = :'mtls';
SET memcache.tls_ca = :'ca';
SET memcache.tls_cert = :'clientcert';
SET memcache.tls_key = :'clientkey';
SELECT memcache_set('sec_mtls', 'mutual');
SELECT memcache_get('sec_mtls');
RESET memcache.tls_cert;
RESET memcache.tls_key;
-- (the server ends the connection after the handshake: a read error or a reset, by timing)
SELECT pg_temp.outcome($$SELECT memcache_set('sec_mtls', 'anonymous')$$) LIKE 'memcache: %' AS refused;
-- a key that is not the certificate's: the setting is named
SET memcache.tls_cert = :'clientcert';
SET memcache.tls_key = :'ca';
SELECT pg_temp.outcome($$SELECT memcache_get('sec_mtls')$$);
RESET memcache.tls_cert;
RESET memcache.tls_key;
SET memcache.servers = :'tls';
-- a CA file that does not exist: the setting is named
SET memcache.tls_ca = '/nonexistent/ca.pem';
SELECT pg_temp.outcome($$SELECT memcache_get('sec_tls')$$);
RESET memcache.tls_ca;
-- login with a credentials file
SET memcache.servers = :'auth';
SET memcache.auth_file = :'authfile';
SELECT memcache_set('sec_auth', 'logged in');
SELECT memcache_get('sec_auth');
-- without it the server refuses every command
RESET memcache.auth_file;
SELECT pg_temp.outcome($$SELECT memcache_get('sec_auth')$$);
-- a wrong password
SET memcache.auth_file = :'wrongauthfile';
SELECT pg_temp.outcome($$SELECT memcache_get('sec_auth')$$);
-- a credentials file others can read is refused, and its secret never shown
SET memcache.auth_file = :'openauthfile';
SELECT pg_temp.outcome($$SELECT memcache_get('sec_auth')$$);
RESET memcache.auth_file;
-- settings that name files are the superuser's
CREATE ROLE sec_user;
SET ROLE sec_user;
SET memcache.tls_ca = '/tmp/ca.pem';
SET memcache.auth_file = '/tmp/credentials';
SET memcache.tls_insecure = on;
SET memcache.tls_cert = '/tmp/client.pem';
SET memcache.tls = on;
RESET ROLE;
DROP ROLE sec_user;
RESET memcache.servers;
