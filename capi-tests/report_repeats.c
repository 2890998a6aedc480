/*
 * A dead or stopped server does not flood stderr (issue 13, point 4). The default handler prints
 * a server's change of state once (it failed; it is back) and the same report again at most once
 * per MEMCACHE_REPORT_INTERVAL, which the harness sets to 600 s so that nothing here repeats
 * by the clock. stderr is captured in a file while the library reports, then counted.
 *  A. 200 sets on a server whose port refuses connections, retried at every operation: each
 *     distinct line once (1.4 printed three lines per set);
 *  B. a SIGSTOPped server: the timeout once, then "no live server" once for the four sets
 *     while it is down; back after SIGCONT, "connection re-established" once; stopped again, the
 *     timeout and "no live server" are news again; back again within the interval, a repeat.
 *
 * Environment: MC_HOST, MC_PORT, MC_PID (the server this program stops and continues),
 * MC_DEAD_PORT (nothing listens there).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <memcache.h>

#include "check.h"
#include "resilience.h"

/*
 * Where a summary report quotes the failure it sums up ("no server could be reached (last
 * failure: ...)", "no live server ... (...; it failed: ...)"), or NULL. What follows is an earlier
 * report's text, not a report of its own.
 */
static const char *quote_in(const char *line, size_t len)
{
	static const char *const markers[] = {"(last failure: ", "; it failed: "};
	const char *first = NULL;
	size_t i;

	for (i = 0; i < sizeof markers / sizeof markers[0]; i++) {
		const char *at = strstr(line, markers[i]);

		if (at != NULL && at < line + len && (first == NULL || at < first))
			first = at;
	}
	return first;
}

/* Lines of `text` that contain `needle`: before the quote (`quoted` 0) or in it (1). */
static int lines_with_where(const char *text, const char *needle, int quoted)
{
	int n = 0;
	const char *line = text;

	while (*line != '\0') {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		const char *quote = quote_in(line, len);
		const char *at = strstr(quoted && quote ? quote : line, needle);

		if (at != NULL && at < line + len && (quoted ? quote != NULL : quote == NULL || at < quote))
			n++;
		line += len + (end ? 1 : 0);
	}
	return n;
}

/* Reports (lines of `text`) that contain `needle` in their own words. */
static int lines_with(const char *text, const char *needle)
{
	return lines_with_where(text, needle, 0);
}

/* Summary reports that quote a failure containing `needle`. */
static int quotes_of(const char *text, const char *needle)
{
	return lines_with_where(text, needle, 1);
}

static struct memcache *handle(const char *host, const char *port, int retry_s)
{
	struct memcache *mc = mc_new();

	mc_timeout(mc, 0, 500000);
	mc_retry_interval(mc, retry_s, 0);
	CHECK(mc_server_add(mc, host, port) == 0, "add %s:%s", host, port);
	return mc;
}

int main(void)
{
	const char *host = need_env("MC_HOST");
	const char *port = need_env("MC_PORT");
	const char *dead = need_env("MC_DEAD_PORT");
	pid_t pid = (pid_t)atoi(need_env("MC_PID"));
	char dead_name[64], live_name[64];
	static char text[1 << 16];
	struct memcache *mc;
	FILE *log = tmpfile();
	int saved = dup(2), i, rc[4];
	size_t got;

	CHECK(log != NULL && saved >= 0, "%s", "a file for stderr");
	if (log == NULL || saved < 0)
		return check_done(__FILE__);
	snprintf(dead_name, sizeof dead_name, "%s:%s", host, dead);
	snprintf(live_name, sizeof live_name, "%s:%s", host, port);
	fflush(stderr);
	dup2(fileno(log), 2);

	/* A. */
	mc = handle(host, dead, 0);
	for (i = 0; i < 200; i++)
		mc_set(mc, K("k"), "v", 1, 0, 0);
	mc_free(mc);

	/* B. */
	mc = handle(host, port, 600);
	rc[0] = mc_set(mc, K("k"), "v", 1, 0, 0);
	kill(pid, SIGSTOP);
	wait_stopped(pid);
	for (i = 0; i < 5; i++)
		mc_set(mc, K("k"), "v", 1, 0, 0);
	kill(pid, SIGCONT);
	mc_retry_interval(mc, 0, 0);
	rc[1] = mc_set(mc, K("k"), "v", 1, 0, 0);
	rc[2] = mc_set(mc, K("k"), "v", 1, 0, 0);
	mc_retry_interval(mc, 600, 0);
	kill(pid, SIGSTOP);
	wait_stopped(pid);
	for (i = 0; i < 3; i++)
		mc_set(mc, K("k"), "v", 1, 0, 0);
	kill(pid, SIGCONT);
	mc_retry_interval(mc, 0, 0);
	rc[3] = mc_set(mc, K("k"), "v", 1, 0, 0);
	mc_free(mc);

	fflush(stderr);
	dup2(saved, 2);
	rewind(log);
	got = fread(text, 1, sizeof text - 1, log);
	text[got] = '\0';
	fclose(log);

	CHECK(rc[0] == 0 && rc[1] == 0 && rc[2] == 0 && rc[3] == 0, "sets on the live server: %d %d %d %d",
	      rc[0], rc[1], rc[2], rc[3]);
	CHECK(lines_with(text, dead_name) == 2, "A: %d lines name the dead server, expected 2 (connect(2), connect)",
	      lines_with(text, dead_name));
	CHECK(lines_with(text, "no server could be reached") == 1, "A: \"no server could be reached\" %d times",
	      lines_with(text, "no server could be reached"));
	/* The summary says why, for a program that keeps only the last report (mc_last_error). */
	CHECK(quotes_of(text, dead_name) == 1, "A: %d summaries quote the dead server's failure, expected 1",
	      quotes_of(text, dead_name));
	CHECK(lines_with(text, "no reply within the timeout") == 2, "B: %d timeout lines, expected 2",
	      lines_with(text, "no reply within the timeout"));
	CHECK(lines_with(text, "no live server") == 2, "B: %d \"no live server\" lines, expected 2",
	      lines_with(text, "no live server"));
	CHECK(quotes_of(text, "no reply within the timeout") == 2,
	      "B: %d \"no live server\" lines say the server timed out, expected 2",
	      quotes_of(text, "no reply within the timeout"));
	CHECK(lines_with(text, "connection re-established") == 1, "B: %d reconnect lines, expected 1",
	      lines_with(text, "connection re-established"));
	if (check_failed)
		fprintf(stderr, "--- what the library printed ---\n%s---\n", text);
	return check_done(__FILE__);
}
