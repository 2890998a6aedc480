/*
 * Minimal checking helpers shared by the C API test programs.
 *
 * CHECK(cond, fmt, ...) records one check; on failure it prints file:line, the failed expression
 * and the formatted detail to stderr. CHECK_DONE() prints the summary and yields the exit status
 * (non-zero when any check failed). Nothing here writes to stdout: the harness requires stdout to
 * stay empty (spec D10). Only ISO C is used, so the header also works under -std=c99 -pedantic.
 */
#ifndef CAPI_CHECK_H
#define CAPI_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Updated with atomic builtins: threads.c calls CHECK from several threads. */
static int check_total;
static int check_failed;

static void check_report(int ok, const char *file, int line, const char *expr, const char *fmt, ...)
{
	va_list ap;

	__sync_fetch_and_add(&check_total, 1);
	if (ok)
		return;
	__sync_fetch_and_add(&check_failed, 1);
	/* One fprintf per line part; stderr is unbuffered, so keep a failure on one line where we can. */
	fprintf(stderr, "%s:%d: CHECK(%s) failed: ", file, line, expr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int check_done(const char *file)
{
	fprintf(stderr, "%s: %d checks, %d failed\n", file, check_total, check_failed);
	return check_failed == 0 ? 0 : 1;
}

/* The detail format is mandatory (ISO C99 needs at least one argument in __VA_ARGS__). */
#define CHECK(cond, ...) check_report((cond) ? 1 : 0, __FILE__, __LINE__, #cond, __VA_ARGS__)
#define CHECK_DONE() check_done(__FILE__)

/* Aborts the program (status 2) when the harness did not pass a required variable. */
static const char *need_env(const char *name)
{
	const char *v = getenv(name);

	if (v == NULL || *v == '\0') {
		fprintf(stderr, "missing environment variable %s\n", name);
		exit(2);
	}
	return v;
}

/* Keeps -Wunused-function quiet in programs that use only part of the helpers. */
static void check_unused_helpers(void) __attribute__((unused));
static void check_unused_helpers(void)
{
	(void)need_env;
	(void)check_done;
	(void)check_report;
}

#endif /* CAPI_CHECK_H */
