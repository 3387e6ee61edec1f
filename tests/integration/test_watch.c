/*
 * test_watch.c: `onecard watch` against a real onecardd, run in the
 * background as a desk would run it. With --state it covers every event
 * exactly once across a kill -9 of the broker under write load, a clean
 * stop and restart, and its own kill -9 and restart; a hospital's watch
 * rides out its revocation and hears, once re-added, of what happened to
 * its patients meanwhile (a merge as one event); an --exec command that
 * fails holds the state before its event and has it tried again; the text
 * line and the pings of a quiet watch; the defined answers to bad options
 * and to a seq the broker no longer keeps.
 */
#define _GNU_SOURCE
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define WAIT_MS 30000 /* the longest a condition is waited for */

/* A watch running in the background. */
struct watcher {
	pid_t pid;
	char out[PATH_MAX]; /* its stdout */
	char err[PATH_MAX]; /* its stderr */
};

/* Run a command line as cn; assert it exits 0; its stdout in out. */
static void run_ok(struct harness *h, const char *cn, char *out, size_t outlen,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void
run_ok(struct harness *h, const char *cn, char *out, size_t outlen,
    const char *fmt, ...)
{
	char cmd[2048], buf[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (out == NULL) {
		out = buf;
		outlen = sizeof(buf);
	}
	if (harness_run(h, cn, out, outlen, cmd) != 0)
		fail_msg("%s: failed", cmd);
}

/* Start `onecard watch ARGS` as cn in the background: stdout and stderr
 * to files named after tag in the test's folder. */
static void
watcher_start(struct harness *h, struct watcher *w, const char *cn,
    const char *tag, const char *args)
{
	char buf[PATH_MAX + 64], cmd[2048];
	const char *path = getenv("PATH");
	pid_t parent = getpid();
	int fd;

	snprintf(w->out, sizeof(w->out), "%s/%s.out", h->dir, tag);
	snprintf(w->err, sizeof(w->err), "%s/%s.err", h->dir, tag);
	snprintf(cmd, sizeof(cmd), "exec onecard watch %s", args);
	fflush(NULL);
	w->pid = fork();
	assert_true(w->pid != -1);
	if (w->pid > 0)
		return;
	/* The watch dies with the test, however the test ends. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
		_exit(125);
	setenv("ONECARD_BROKER", h->addr, 1);
	snprintf(buf, sizeof(buf), "%s/ca.pem", h->certs);
	setenv("ONECARD_CA", buf, 1);
	snprintf(buf, sizeof(buf), "%s/%s.pem", h->certs, cn);
	setenv("ONECARD_CERT", buf, 1);
	snprintf(buf, sizeof(buf), "%s/%s.key", h->certs, cn);
	setenv("ONECARD_KEY", buf, 1);
	snprintf(buf, sizeof(buf), "%s:%s", ONECARD_BIN_DIR,
	    path != NULL ? path : "/usr/bin:/bin");
	setenv("PATH", buf, 1);
	signal(SIGPIPE, SIG_DFL);
	if ((fd = open("/dev/null", O_RDONLY)) != -1)
		dup2(fd, STDIN_FILENO);
	if ((fd = open(w->out, O_WRONLY | O_CREAT | O_APPEND, 0644)) != -1)
		dup2(fd, STDOUT_FILENO);
	if ((fd = open(w->err, O_WRONLY | O_CREAT | O_APPEND, 0644)) != -1)
		dup2(fd, STDERR_FILENO);
	execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
	_exit(127);
}

/* Send sig to the watch and reap it: its exit status (128+N if killed by
 * signal N). */
static int
watcher_stop(struct watcher *w, int sig)
{
	int status;

	assert_int_equal(kill(w->pid, sig), 0);
	assert_int_equal(waitpid(w->pid, &status, 0), w->pid);
	w->pid = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The whole of a file, NUL-terminated (the caller frees); "" if none. */
static char *
slurp(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f, *m;
	int c;

	assert_non_null(m = open_memstream(&buf, &len));
	if ((f = fopen(path, "r")) != NULL) {
		while ((c = getc(f)) != EOF)
			putc(c, m);
		fclose(f);
	}
	fclose(m);
	return buf;
}

/* The seq a state file holds, or -1 when it is missing or empty. */
static long long
state_seq(const char *path)
{
	char *s = slurp(path);
	long long v = s[0] >= '0' && s[0] <= '9' ? atoll(s) : -1;

	free(s);
	return v;
}

/* Wait until the state file holds at least seq; fail after WAIT_MS. */
static void
wait_state(const char *path, long long seq, const struct watcher *w)
{
	long long deadline = harness_now_ms() + WAIT_MS;

	while (state_seq(path) < seq) {
		if (harness_now_ms() > deadline) {
			char *e = slurp(w->err);

			fail_msg(
			    "state %s is at %lld, not %lld; watch said:\n%s",
			    path, state_seq(path), seq, e);
		}
		usleep(20000);
	}
}

/* Wait until file has at least n lines; fail after WAIT_MS. */
static void
wait_lines(const char *file, int n, const struct watcher *w)
{
	long long deadline = harness_now_ms() + WAIT_MS;

	for (;;) {
		char *s = slurp(file);
		int lines = 0;

		for (char *p = s; *p != '\0'; p++)
			lines += *p == '\n';
		free(s);
		if (lines >= n)
			return;
		if (harness_now_ms() > deadline) {
			char *e = slurp(w->err);

			fail_msg("%s has %d lines, not %d; watch said:\n%s",
			    file, lines, n, e);
		}
		usleep(20000);
	}
}

/* Wait until file holds text; fail after WAIT_MS. */
static void
wait_text(const char *file, const char *text)
{
	long long deadline = harness_now_ms() + WAIT_MS;
	char *s;

	while (strstr(s = slurp(file), text) == NULL) {
		free(s);
		if (harness_now_ms() > deadline)
			fail_msg("%s never said \"%s\"", file, text);
		usleep(20000);
	}
	free(s);
}

/* The seq of each JSON line of file, in order, into seqs (at most max);
 * how many. Every line must be an event. */
static size_t
json_seqs(const char *file, uint64_t *seqs, size_t max)
{
	char *s = slurp(file), *line = s, *nl;
	size_t n = 0;

	for (; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
		*nl = '\0';
		if (strncmp(line, "{\"seq\":", 7) != 0)
			fail_msg("not an event line: %s", line);
		assert_true(n < max);
		seqs[n++] = strtoull(line + 7, NULL, 10);
	}
	free(s);
	return n;
}

/* The registry's last event, as an admin sees it in stats. */
static uint64_t
last_seq(struct harness *h)
{
	char out[4096], *p;

	run_ok(h, "admin", out, sizeof(out), "onecardctl --json stats");
	assert_non_null(p = strstr(out, "\"events\":"));
	return strtoull(p + 9, NULL, 10);
}

/*
 * Stop the broker with sig and start it again on the same port, so the
 * watch's ONECARD_BROKER still names it. The load's threads end with their
 * connections: they are waited for before the restart rewrites h, which
 * they read.
 */
static void
restart_same_port(struct harness *h, int sig, struct harness_load *load)
{
	char addr[64];
	const char *extra[] = {"--listen", addr, NULL};
	int status;

	snprintf(addr, sizeof(addr), "%s", h->addr);
	status = harness_stop(h, sig);
	assert_int_equal(status, sig == SIGKILL ? 128 + SIGKILL : 0);
	assert_true(harness_load_wait(load) > 0);
	harness_load_free(load);
	assert_int_equal(harness_restart(h, extra), 0);
	assert_string_equal(h->addr, addr);
}

/* Assert seqs[0..n) is exactly from..to, in order, each once. */
static void
assert_each_once(const uint64_t *seqs, size_t n, uint64_t from, uint64_t to)
{
	for (size_t i = 0; i < n; i++)
		if (seqs[i] != from + i)
			fail_msg("line %zu has seq %llu, not %llu", i + 1,
			    (unsigned long long)seqs[i],
			    (unsigned long long)(from + i));
	assert_int_equal(n, to - from + 1);
}

static void
state_covers_every_event_once_across_broker_kill_stop_and_own_restart(
    void **state)
{
	static uint64_t seqs[200000];
	struct harness h;
	const char *codes[] = {"H1", NULL};
	struct harness_load *load;
	struct watcher w;
	char sf[PATH_MAX], args[PATH_MAX + 64];
	long long s0;
	uint64_t last, last2;
	size_t n;

	(void)state;
	assert_int_equal(harness_start(&h, codes, NULL), 0);
	snprintf(sf, sizeof(sf), "%s/watch.state", h.dir);
	snprintf(args, sizeof(args), "--json --state %s", sf);
	/* No state file: from now, and the file made at once. */
	watcher_start(&h, &w, "admin", "a1", args);
	wait_state(sf, 1, &w);
	s0 = state_seq(sf);

	/* Writes while the broker is killed, then while it stops. */
	assert_non_null(load = harness_load_start(&h, "H1", "K", 2));
	usleep(300 * 1000);
	restart_same_port(&h, SIGKILL, load);
	assert_non_null(load = harness_load_start(&h, "H1", "T", 2));
	usleep(300 * 1000);
	restart_same_port(&h, SIGTERM, load);
	run_ok(&h, "H1", NULL, 0, "onecard enroll hosp:H1=AFTER1");
	last = last_seq(&h);
	wait_state(sf, (long long)last, &w);
	/* Every event after the start, once, in order. */
	n = json_seqs(w.out, seqs, sizeof(seqs) / sizeof(seqs[0]));
	print_message("%zu events through a kill -9 and a stop\n", n);
	assert_each_once(seqs, n, (uint64_t)s0 + 1, last);

	/* The watch itself killed: another resumes from its state. */
	assert_int_equal(watcher_stop(&w, SIGKILL), 128 + SIGKILL);
	run_ok(&h, "H1", NULL, 0, "onecard enroll hosp:H1=AFTER2");
	run_ok(&h, "H1", NULL, 0, "onecard enroll hosp:H1=AFTER3");
	last2 = last_seq(&h);
	watcher_start(&h, &w, "admin", "a2", args);
	wait_state(sf, (long long)last2, &w);
	assert_int_equal(watcher_stop(&w, SIGTERM), 0);
	n = json_seqs(w.out, seqs, sizeof(seqs) / sizeof(seqs[0]));
	assert_each_once(seqs, n, last + 1, last2);
	assert_int_equal(state_seq(sf), last2);
	harness_cleanup(&h);
}

/* The patient id in an enroll's JSON, into pid. */
static void
enrolled_pid(const char *json, char *pid, size_t len)
{
	const char *p = strstr(json, "\"patient_id\":\"");

	assert_non_null(p);
	p += 14;
	snprintf(pid, len, "%.*s", (int)strcspn(p, "\""), p);
}

static void
hospital_watch_rides_out_revocation_and_hears_what_happened_meanwhile(
    void **state)
{
	struct harness h;
	const char *codes[] = {"H1", "H2", NULL};
	struct watcher w;
	char sf[PATH_MAX], args[PATH_MAX + 64], out[4096], a[64], b[64],
	    want[256];
	char *lines, *merge, *link;

	(void)state;
	assert_int_equal(harness_start(&h, codes, NULL), 0);
	run_ok(&h, "H1", out, sizeof(out),
	    "onecard --json enroll --name A hosp:H1=A1");
	enrolled_pid(out, a, sizeof(a));
	run_ok(&h, "H1", out, sizeof(out),
	    "onecard --json enroll --name B hosp:H1=B1");
	enrolled_pid(out, b, sizeof(b));
	snprintf(sf, sizeof(sf), "%s/h1.state", h.dir);
	snprintf(args, sizeof(args), "--json --state %s", sf);
	watcher_start(&h, &w, "H1", "h1", args);
	wait_state(sf, 1, &w);
	run_ok(&h, "H1", NULL, 0, "onecard enroll hosp:H1=C1");
	wait_lines(w.out, 1, &w);

	/* Revoked: the watch is closed and refused, and keeps trying. */
	run_ok(&h, "admin", NULL, 0, "onecardctl hospital revoke H1");
	wait_text(w.err, "revoked");
	run_ok(&h, "admin", NULL, 0, "onecardctl merge hosp:H1=A1 hosp:H1=B1");
	run_ok(&h, "H2", NULL, 0, "onecard link hosp:H1=C1 hosp:H2=X1");
	/* Still revoked when it tries again: refused, and it goes on. */
	wait_text(w.err, "is revoked");
	run_ok(&h, "admin", NULL, 0, "onecardctl hospital add H1 --name H1");
	wait_lines(w.out, 3, &w);
	assert_int_equal(watcher_stop(&w, SIGTERM), 0);

	lines = slurp(w.out);
	/* The merge as one event: the survivor, and the one merged away. */
	assert_non_null(merge = strstr(lines, "\"op\":\"merge\""));
	snprintf(want, sizeof(want),
	    "\"op\":\"merge\",\"patient_id\":\"%s\",\"other_patient_id\":"
	    "\"%s\"",
	    a, b);
	assert_non_null(strstr(lines, want));
	assert_null(strstr(merge + 1, "\"op\":\"merge\""));
	assert_non_null(link = strstr(lines, "\"op\":\"link\""));
	assert_true(link > merge);
	assert_non_null(strstr(link, "\"value\":\"X1\""));
	free(lines);
	harness_cleanup(&h);
}

static void
failing_exec_holds_the_state_before_its_event_and_tries_it_again(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	struct watcher w;
	char sf[PATH_MAX], hook[PATH_MAX], block[PATH_MAX], args[3 * PATH_MAX],
	    want[PATH_MAX];
	char *done, *failed;
	long long s0;
	FILE *f;

	(void)state;
	assert_int_equal(harness_start(&h, codes, NULL), 0);
	snprintf(sf, sizeof(sf), "%s/exec.state", h.dir);
	snprintf(block, sizeof(block), "%s/block", h.dir);
	snprintf(hook, sizeof(hook), "%s/hook.sh", h.dir);
	assert_non_null(f = fopen(hook, "w"));
	fprintf(f,
	    "ev=$(cat)\n"
	    "case $ev in *'\"value\":\"BLOCK\"'*)\n"
	    "  if [ -e %s ]; then echo $ONECARD_EVENT_SEQ >> %s/failed; "
	    "exit 3; fi;;\n"
	    "esac\n"
	    "case $ev in '{\"seq\":'$ONECARD_EVENT_SEQ,*) ;; *) exit 9;; esac\n"
	    "echo $ONECARD_EVENT_SEQ >> %s/done\n",
	    block, h.dir, h.dir);
	fclose(f);
	fclose(fopen(block, "w"));
	snprintf(args, sizeof(args), "--state %s --exec 'sh %s'", sf, hook);
	watcher_start(&h, &w, "admin", "x", args);
	wait_state(sf, 1, &w);
	s0 = state_seq(sf);
	run_ok(&h, "H1", NULL, 0, "onecard enroll hosp:H1=OK1");
	run_ok(&h, "H1", NULL, 0, "onecard enroll hosp:H1=BLOCK");
	run_ok(&h, "H1", NULL, 0, "onecard enroll hosp:H1=OK2");
	/* The blocked event fails, is tried again, and holds the state. */
	snprintf(want, sizeof(want), "%s/failed", h.dir);
	wait_lines(want, 2, &w);
	assert_int_equal(state_seq(sf), s0 + 1);
	snprintf(want, sizeof(want), "%s/done", h.dir);
	done = slurp(want);
	snprintf(want, sizeof(want), "%lld\n", s0 + 1);
	assert_string_equal(done, want);
	free(done);
	/* Unblocked: it passes, then the next one, in order. */
	unlink(block);
	wait_state(sf, s0 + 3, &w);
	assert_int_equal(watcher_stop(&w, SIGTERM), 0);
	snprintf(want, sizeof(want), "%s/done", h.dir);
	done = slurp(want);
	snprintf(
	    want, sizeof(want), "%lld\n%lld\n%lld\n", s0 + 1, s0 + 2, s0 + 3);
	assert_string_equal(done, want);
	snprintf(want, sizeof(want), "%s/failed", h.dir);
	failed = slurp(want);
	for (char *p = failed; *p != '\0'; p = strchr(p, '\n') + 1)
		assert_int_equal(atoll(p), s0 + 2);
	free(done);
	free(failed);
	harness_cleanup(&h);
}

static void
text_lines_and_a_quiet_watch_stays_connected_with_pings(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	const char *extra[] = {"--idle-timeout", "1", NULL};
	struct watcher w;
	char *text, *err;

	(void)state;
	assert_int_equal(harness_start(&h, codes, extra), 0);
	/* Pings every 0.4 s of silence keep the 1 s idle timeout off. */
	watcher_start(&h, &w, "admin", "t", "--from 0 --timeout 0.4");
	wait_text(w.out, "hospital_add");
	usleep(2500 * 1000);
	run_ok(&h, "H1", NULL, 0, "onecard enroll --name Q hosp:H1=Q1");
	wait_text(w.out, "  enroll  ");
	assert_int_equal(watcher_stop(&w, SIGINT), 0);
	text = slurp(w.out);
	/* seq, time, op, patient, other patient, actor */
	assert_non_null(strstr(text, "1  "));
	assert_non_null(strstr(text, "Z  hospital_add  -  -  admin"));
	assert_non_null(strstr(text, "  -  H1"));
	/* Nothing went wrong: nothing on stderr. */
	err = slurp(w.err);
	assert_string_equal(err, "");
	free(text);
	free(err);
	harness_cleanup(&h);
}

static void
bad_options_and_a_seq_no_longer_kept_have_defined_exits(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	char out[4096], err[4096], sf[PATH_MAX], cmd[PATH_MAX + 64];
	FILE *f;

	(void)state;
	assert_int_equal(harness_start(&h, codes, NULL), 0);
	assert_int_equal(harness_run2(&h, "H1", out, sizeof(out), err,
			     sizeof(err), "onecard watch --help"),
	    0);
	assert_non_null(strstr(out, "--state FILE"));
	assert_int_equal(harness_run2(&h, "H1", out, sizeof(out), err,
			     sizeof(err), "onecard watch --from abc"),
	    2);
	assert_non_null(strstr(err, "--from: \"abc\""));
	assert_int_equal(harness_run2(&h, "H1", out, sizeof(out), err,
			     sizeof(err), "onecard watch --from 1 --state f"),
	    2);
	assert_non_null(strstr(err, "--from and --state"));
	assert_int_equal(harness_run2(&h, "H1", out, sizeof(out), err,
			     sizeof(err), "onecard watch extra"),
	    2);
	assert_int_equal(
	    harness_run2(&h, "H1", out, sizeof(out), err, sizeof(err),
		"onecard watch --state /nonexistent/folder/state"),
	    2);
	assert_non_null(strstr(err, "/nonexistent/folder"));
	snprintf(sf, sizeof(sf), "%s/bad.state", h.dir);
	assert_non_null(f = fopen(sf, "w"));
	fputs("twelve\n", f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "onecard watch --state %s", sf);
	assert_int_equal(
	    harness_run2(&h, "H1", out, sizeof(out), err, sizeof(err), cmd), 2);
	assert_non_null(strstr(err, "does not hold an event seq"));

	/* After the last event: the broker's reason, how to resync, 7. */
	assert_int_equal(harness_run2(&h, "H1", out, sizeof(out), err,
			     sizeof(err), "onecard watch --from 1000000"),
	    7);
	assert_non_null(strstr(err, "OUT_OF_RANGE"));
	assert_non_null(strstr(err, "resync with lookups"));
	assert_non_null(f = fopen(sf, "w"));
	fputs("1000000\n", f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "onecard watch --json --state %s", sf);
	assert_int_equal(
	    harness_run2(&h, "H1", out, sizeof(out), err, sizeof(err), cmd), 7);
	assert_non_null(strstr(err, "then remove the state file"));
	assert_true(strncmp(out, "{\"error\":\"OUT_OF_RANGE\"", 22) == 0);
	/* The state file is left as it was. */
	assert_int_equal(state_seq(sf), 1000000);
	harness_cleanup(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		state_covers_every_event_once_across_broker_kill_stop_and_own_restart),
	    cmocka_unit_test(
		hospital_watch_rides_out_revocation_and_hears_what_happened_meanwhile),
	    cmocka_unit_test(
		failing_exec_holds_the_state_before_its_event_and_tries_it_again),
	    cmocka_unit_test(
		text_lines_and_a_quiet_watch_stays_connected_with_pings),
	    cmocka_unit_test(
		bad_options_and_a_seq_no_longer_kept_have_defined_exits),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
