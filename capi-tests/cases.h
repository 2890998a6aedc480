/*
 * Runs each case of a program in a child process of its own, all at once, so a case that hangs
 * or crashes inside the library is reported by name while the others still run. A case makes
 * its CHECKs; the child's exit status is CHECK_DONE(). alarm(cap) turns a hang into SIGALRM,
 * reported with `hang`, which says what a hang means for this program. Needs check.h first.
 */
#ifndef CAPI_CASES_H
#define CAPI_CASES_H

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

struct child_case {
	const char *name;
	void (*run)(void);
	pid_t pid;
};

/* Forks every case, waits for all of them; the number that failed (each one reported). */
static int run_cases(struct child_case *cases, size_t n, unsigned cap, const char *hang)
{
	int failed = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		cases[i].pid = fork();
		if (cases[i].pid == 0) {
			alarm(cap);
			cases[i].run();
			_exit(CHECK_DONE());
		}
		if (cases[i].pid < 0) {
			CHECK(0, "fork for case %s", cases[i].name);
			failed++;
		}
	}
	for (i = 0; i < n; i++) {
		int status = 0;

		if (cases[i].pid <= 0)
			continue;
		if (waitpid(cases[i].pid, &status, 0) != cases[i].pid) {
			CHECK(0, "waitpid for case %s", cases[i].name);
			failed++;
		} else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
			CHECK(0, "case %s: still running after %u s: %s", cases[i].name, cap, hang);
			failed++;
		} else if (WIFSIGNALED(status)) {
			CHECK(0, "case %s: killed by signal %d", cases[i].name, WTERMSIG(status));
			failed++;
		} else if (WEXITSTATUS(status) != 0) {
			CHECK(0, "case %s: its checks failed (above)", cases[i].name);
			failed++;
		}
	}
	CHECK(failed == 0, "%d of %lu cases failed", failed, (unsigned long)n);
	return failed;
}

#endif
