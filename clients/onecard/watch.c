/*
 * watch.c: `onecard watch`, the registry's events as they come.
 *
 * Owns the subscription loop: connect, subscribe after the last event
 * handled, hand each event on (a line on stdout, or --exec's command), keep
 * how far it got (in memory, and with --state in a file) and, when anything
 * fails, close, wait (watch_state.c's backoff) and start again from there.
 * An event is handled once its line is flushed to stdout or its command
 * exited 0; the state never runs ahead of that, so after a crash some
 * events may come again but none is missed (docs/notifications.md). Only
 * the broker's word that the events to resume from are gone, a setting
 * that cannot work (certificate files, the state file) and SIGINT or
 * SIGTERM end it.
 */
#define _GNU_SOURCE /* pipe2 */

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "wire.h"

#define WATCH_WAIT_MS    250   /* one wait for an event: signals between */
#define WATCH_QUIET_MS   30000 /* silence before a ping (or --timeout) */
#define WATCH_SAVE_EVERY 256   /* events between saves of a streaming */
#define WATCH_SAVE_MS    1000  /* backlog, or this long */

/* What a session ends with, besides an exit code (>= 0). */
#define WATCH_RETRY      -1 /* the connection failed: back off, resume */
#define WATCH_RETRY_EXEC -2 /* --exec failed on an event: back off, again */

static volatile sig_atomic_t watch_stop; /* SIGINT or SIGTERM came */
/* Set while nothing is unsaved and a wait cannot see watch_stop soon
 * (connecting, a ping, the backoff): a signal then ends us at once. */
static volatile sig_atomic_t watch_idle;

struct watch {
	struct cli *cli;
	const struct watch_opts *o;
	struct onecard_options opt;
	uint64_t seq; /* the last event handled */
	int have_seq; /* else: subscribe from now */
	int dirty;    /* seq is not in the state file yet */
	int save_failed;
	unsigned since_save;
	long long saved_at;
	int quiet_ms;
	int failed;          /* a session failed: say when it resumes */
	uint64_t failed_seq; /* the event whose --exec failed */
	struct watch_backoff conn_bo, exec_bo;
};

/* SIGINT, SIGTERM: stop after the event in hand, or now when idle. */
static void
watch_signal(int sig)
{
	(void)sig;
	watch_stop = 1;
	if (watch_idle)
		_exit(EXIT_FOUND);
}

/* Milliseconds on a monotonic clock. */
static long long
watch_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleep ms, or less when a signal asks us to stop. */
static void
watch_sleep(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	while (!watch_stop && nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Put seq in the state file, if there is one and it changed. A failure
 * is told once until a save works again: the events go on, and a restart
 * would only see some of them again. */
static void
watch_save(struct watch *w)
{
	char err[512];

	if (!w->dirty || w->o->state == NULL)
		return;
	if (watch_state_save(w->o->state, w->seq, err, sizeof err) == -1) {
		if (!w->save_failed)
			cli_warnx(w->cli, "%s", err);
		w->save_failed = 1;
		return;
	}
	w->save_failed = 0;
	w->dirty = 0;
	w->since_save = 0;
	w->saved_at = watch_now_ms();
}

/* End with an error: say it on stderr, and on stdout under --json. */
static int
watch_fail(struct watch *w, int code, const char *token, const char *msg)
{
	cli_warnx(w->cli, "%s", msg);
	if (w->cli->json) {
		cli_json_error(stdout, token, msg);
		fflush(stdout);
	}
	return code;
}

/* Run --exec's command for ev, its JSON line on stdin. 0 when it exited
 * 0, else -1 (told on stderr). */
static int
watch_exec(
    struct watch *w, const Onecard__V1__Event *ev, const char *json, size_t len)
{
	char num[32];
	int fds[2], status;
	size_t off = 0;
	ssize_t n;
	pid_t pid;

	fflush(NULL);
	if (pipe2(fds, O_CLOEXEC) == -1 || (pid = fork()) == -1) {
		cli_warnx(w->cli, "--exec: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		dup2(fds[0], STDIN_FILENO);
		signal(SIGPIPE, SIG_DFL); /* as a shell would start it */
		snprintf(num, sizeof num, "%" PRIu64, ev->seq);
		setenv("ONECARD_EVENT_SEQ", num, 1);
		setenv("ONECARD_EVENT_OP", ev->op, 1);
		setenv("ONECARD_EVENT_PATIENT_ID", ev->patient_id, 1);
		setenv(
		    "ONECARD_EVENT_OTHER_PATIENT_ID", ev->other_patient_id, 1);
		execl("/bin/sh", "sh", "-c", w->o->exec, (char *)NULL);
		_exit(127);
	}
	close(fds[0]);
	/* A command that does not read its input is its own business. */
	while (off < len &&
	    ((n = write(fds[1], json + off, len - off)) > 0 || errno == EINTR))
		if (n > 0)
			off += (size_t)n;
	close(fds[1]);
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR) {
			cli_warnx(w->cli, "--exec: %s", strerror(errno));
			return -1;
		}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status))
		cli_warnx(w->cli,
		    "--exec: event %" PRIu64 ": killed by signal %d", ev->seq,
		    WTERMSIG(status));
	else
		cli_warnx(w->cli, "--exec: event %" PRIu64 ": exit %d", ev->seq,
		    WEXITSTATUS(status));
	return -1;
}

/* Hand ev on. 0 when handled, WATCH_RETRY_EXEC, or an exit code. */
static int
watch_handle(struct watch *w, const Onecard__V1__Event *ev)
{
	char *json = NULL;
	size_t len = 0;
	FILE *m;
	int r;

	if (w->o->exec == NULL) {
		print_event(w->cli, stdout, ev);
		if (fflush(stdout) == EOF) {
			cli_warnx(w->cli, "stdout: %s", strerror(errno));
			return EXIT_BROKER;
		}
		return 0;
	}
	if ((m = open_memstream(&json, &len)) == NULL) {
		cli_warnx(w->cli, "out of memory");
		return WATCH_RETRY_EXEC;
	}
	cli_json_event(m, ev);
	fputc('\n', m);
	if (fclose(m) == EOF) {
		free(json);
		cli_warnx(w->cli, "out of memory");
		return WATCH_RETRY_EXEC;
	}
	r = watch_exec(w, ev, json, len);
	free(json);
	return r == 0 ? 0 : WATCH_RETRY_EXEC;
}

/* The broker cannot resume after w->seq: tell how to start again. */
static int
watch_resync(struct watch *w, struct onecard_conn *conn)
{
	char how[PATH_MAX + 256], msg[1024 + PATH_MAX];

	/* The broker's reason says which: retention passed the events, or
	 * the registry is older than they are (restored from a backup). */
	snprintf(how, sizeof how,
	    "events from %" PRIu64 " are no longer kept; resync with "
	    "lookups, then %s%s",
	    w->seq + 1,
	    w->o->state != NULL ? "remove the state file " : "watch from now",
	    w->o->state != NULL ? w->o->state : "");
	cli_warnx(w->cli, "%s", onecard_last_error(conn));
	cli_warnx(w->cli, "%s", how);
	if (w->cli->json) {
		snprintf(
		    msg, sizeof msg, "%s; %s", onecard_last_error(conn), how);
		cli_json_error(stdout, "OUT_OF_RANGE", msg);
		fflush(stdout);
	}
	return EXIT_RESYNC;
}

/* Wait for events on conn and hand them on until something ends it. */
static int
watch_events(struct watch *w, struct onecard_conn *conn)
{
	Onecard__V1__Reply *ev;
	long long heard = watch_now_ms();
	int r, streaming = 0;

	for (;;) {
		if (watch_stop)
			return EXIT_FOUND;
		/* While events stream, take what is there; once they pause,
		 * save, then wait. */
		r = onecard_next_event(
		    conn, streaming ? 0 : WATCH_WAIT_MS, &ev);
		if (r == ONECARD_ETIMEDOUT) {
			if (streaming) {
				streaming = 0;
				watch_save(w);
				continue;
			}
			if (watch_now_ms() - heard < w->quiet_ms)
				continue;
			watch_idle = !w->dirty;
			r = onecard_ping(conn);
			watch_idle = 0;
			if (r != ONECARD_OK) {
				cli_warnx(w->cli, "no answer to a ping: %s",
				    onecard_last_error(conn));
				return WATCH_RETRY;
			}
			heard = watch_now_ms();
			continue;
		}
		if (r != ONECARD_OK) {
			cli_warnx(w->cli, "connection lost: %s",
			    onecard_last_error(conn));
			return WATCH_RETRY;
		}
		heard = watch_now_ms();
		streaming = 1;
		if (ev->event->seq <= w->seq && w->have_seq) {
			onecard_reply_free(ev); /* never sent twice; but */
			continue;
		}
		r = watch_handle(w, ev->event);
		if (r == 0) {
			w->seq = ev->event->seq;
			w->have_seq = 1;
			w->dirty = 1;
			w->since_save++;
			watch_backoff_reset(&w->exec_bo);
		} else if (r == WATCH_RETRY_EXEC) {
			w->failed_seq = ev->event->seq;
		}
		onecard_reply_free(ev);
		if (r != 0)
			return r;
		if (w->o->exec != NULL || w->since_save >= WATCH_SAVE_EVERY ||
		    watch_now_ms() - w->saved_at >= WATCH_SAVE_MS)
			watch_save(w);
	}
}

/* One connection: connect, subscribe, follow. An exit code, WATCH_RETRY
 * or WATCH_RETRY_EXEC. */
static int
watch_session(struct watch *w)
{
	struct onecard_conn *conn = NULL;
	char err[512];
	uint64_t last = 0;
	int r;

	watch_save(w);
	watch_idle = !w->dirty;
	if (watch_stop) {
		watch_idle = 0;
		return EXIT_FOUND;
	}
	r = onecard_connect(&w->opt, &conn, err, sizeof err);
	if (r != ONECARD_OK) {
		watch_idle = 0;
		if (r == ONECARD_EINVAL)
			return watch_fail(w, EXIT_USAGE, cli_err_token(r), err);
		cli_warnx(w->cli, "%s", err);
		return WATCH_RETRY;
	}
	r = onecard_subscribe(conn, w->seq, !w->have_seq, &last);
	watch_idle = 0;
	if (r == ONECARD__V1__CODE__OUT_OF_RANGE) {
		r = watch_resync(w, conn);
		onecard_close(conn);
		return r;
	}
	if (r != ONECARD_OK) {
		cli_warnx(w->cli, "subscribe: %s", onecard_last_error(conn));
		onecard_close(conn);
		return WATCH_RETRY;
	}
	watch_backoff_reset(&w->conn_bo);
	if (w->failed)
		cli_warnx(w->cli, "resumed after event %" PRIu64, w->seq);
	w->failed = 0;
	if (!w->have_seq) {
		/* From now: the registry's last event is where to resume
		 * until one comes. */
		w->seq = last;
		w->have_seq = 1;
		w->dirty = 1;
		watch_save(w);
	}
	r = watch_events(w, conn);
	watch_save(w);
	onecard_close(conn);
	return r;
}

int
watch_run(struct cli *cli, const struct watch_opts *o)
{
	struct sigaction sa;
	struct watch w;
	char err[512];
	int r, ms;

	memset(&w, 0, sizeof w);
	w.cli = cli;
	w.o = o;
	watch_backoff_reset(&w.conn_bo);
	watch_backoff_reset(&w.exec_bo);
	if (cli_options(&cli->g, &w.opt, err, sizeof err) == -1)
		return watch_fail(&w, EXIT_USAGE, "CLIENT_INVALID", err);
	w.quiet_ms =
	    w.opt.call_timeout_ms > 0 && w.opt.call_timeout_ms < WATCH_QUIET_MS
	    ? w.opt.call_timeout_ms
	    : WATCH_QUIET_MS;
	if (o->state != NULL) {
		r = watch_state_load(o->state, &w.seq, err, sizeof err);
		if (r == -1 ||
		    (r == 0 &&
			watch_state_check(o->state, err, sizeof err) == -1))
			return watch_fail(
			    &w, EXIT_USAGE, "CLIENT_INVALID", err);
		w.have_seq = r == 1;
	} else if (o->have_from) {
		w.seq = o->from;
		w.have_seq = 1;
	}
	w.saved_at = watch_now_ms();
	srandom((unsigned)getpid() ^ (unsigned)time(NULL));

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = watch_signal;
	sa.sa_flags = SA_RESTART; /* a write to stdout is not cut short */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	for (;;) {
		r = watch_session(&w);
		if (r >= 0)
			break;
		w.failed = 1;
		ms = watch_backoff_next(
		    r == WATCH_RETRY_EXEC ? &w.exec_bo : &w.conn_bo);
		if (r == WATCH_RETRY_EXEC)
			cli_warnx(cli,
			    "trying event %" PRIu64 " again in %.1f s",
			    w.failed_seq, ms / 1000.0);
		else if (w.have_seq)
			cli_warnx(cli,
			    "resuming after event %" PRIu64 " in %.1f s", w.seq,
			    ms / 1000.0);
		else
			cli_warnx(cli, "trying again in %.1f s", ms / 1000.0);
		watch_idle = !w.dirty;
		watch_sleep(ms);
		watch_idle = 0;
	}
	watch_save(&w);
	if (fflush(stdout) == EOF && r == EXIT_FOUND) {
		cli_warnx(cli, "stdout: %s", strerror(errno));
		return EXIT_BROKER;
	}
	return r;
}
