/*
 * Helpers shared by the shared-domain programs (domain_loop.c, domain_driver.c) that
 * tests/domains.rs runs: describing a handle's server list the way the test parses it, and hex
 * for binary values on a line-based channel.
 */
#ifndef CAPI_DOMAIN_COMMON_H
#define CAPI_DOMAIN_COMMON_H

#include <stdio.h>
#include <string.h>

#include <memcache.h>

/*
 * Writes "host:port,host:port" (in servers[] order) into buf and returns 1 when servers[],
 * num_servers and the server_list TAILQ agree (same servers, same order, servers[] NULL-terminated),
 * else 0. A truncated description ends in "...".
 */
static int domain_describe_servers(const struct memcache *mc, char *buf, size_t len)
{
	const struct memcache_server *ms;
	size_t used = 0;
	u_int32_t i;
	int n, consistent = 1;

	buf[0] = '\0';
	for (i = 0; i < mc->num_servers; i++) {
		if (mc->servers == NULL || mc->servers[i] == NULL) {
			consistent = 0;
			break;
		}
		ms = mc->servers[i];
		n = snprintf(buf + used, len - used, "%s%s:%s", i == 0 ? "" : ",",
			     ms->hostname != NULL ? ms->hostname : "(null)", ms->port != NULL ? ms->port : "(null)");
		if (n < 0 || (size_t)n >= len - used) {
			if (len > 4)
				memcpy(buf + len - 4, "...", 4);
			break;
		}
		used += (size_t)n;
	}
	if (mc->num_servers > 0 && mc->servers != NULL && consistent && mc->servers[mc->num_servers] != NULL)
		consistent = 0;
	i = 0;
	for (ms = mc->server_list.tqh_first; ms != NULL && consistent; ms = ms->entries.tqe_next) {
		if (i >= mc->num_servers || mc->servers[i] != ms)
			consistent = 0;
		i++;
	}
	if (i != mc->num_servers)
		consistent = 0;
	return consistent;
}

/* Lower-case hex of `len` bytes into out (2 * len + 1 bytes). */
static void domain_hex(const unsigned char *data, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[data[i] >> 4];
		out[2 * i + 1] = digits[data[i] & 15];
	}
	out[2 * len] = '\0';
}

static int domain_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes lower-case hex into out (strlen(hex) / 2 bytes); returns the length, or -1. */
static long domain_unhex(const char *hex, unsigned char *out)
{
	size_t i, n = strlen(hex);
	int hi, lo;

	if (n % 2 != 0)
		return -1;
	for (i = 0; i < n / 2; i++) {
		hi = domain_hex_digit(hex[2 * i]);
		lo = domain_hex_digit(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return (long)(n / 2);
}

static void domain_unused_helpers(void) __attribute__((unused));
static void domain_unused_helpers(void)
{
	(void)domain_describe_servers;
	(void)domain_hex;
	(void)domain_unhex;
}

#endif /* CAPI_DOMAIN_COMMON_H */
