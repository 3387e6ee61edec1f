/*
 * test_client_events.c: libonecard's event API against a real onecardd.
 * onecard_subscribe and onecard_next_event give the backlog then live
 * events in seq order; a wait for an event that times out leaves the
 * connection usable; replies and events on one connection each reach only
 * the call that waits for their kind; the broker's refusals and its notice
 * before a close come back as its code; onecard_watch keeps the seq to
 * resume from; the async client hands events to its event callback.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "harness.h"
#include "onecard.h"

#define CODE(c) ONECARD__V1__CODE__##c

/* Run a CLI command as cn; assert it exits 0. */
static void __attribute__((format(printf, 3, 4)))
run_ok(struct harness *h, const char *cn, const char *fmt, ...)
{
	char cmd[1024], out[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (harness_run(h, cn, out, sizeof(out), cmd) != 0)
		fail_msg("%s: failed", cmd);
}

/* Connect as cn with a call timeout of timeout_ms. */
static struct onecard_conn *
connect_as(struct harness *h, const char *cn, int timeout_ms)
{
	struct onecard_options opt;
	struct onecard_conn *conn = NULL;

	harness_options(h, cn, &opt);
	opt.call_timeout_ms = timeout_ms;
	assert_int_equal(onecard_connect(&opt, &conn, NULL, 0), ONECARD_OK);
	return conn;
}

/* Ping on conn with request id; assert the pong keeps that id. */
static void
ping_keeps_its_id(struct onecard_conn *conn, uint64_t id)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Ping ping = ONECARD__V1__PING__INIT;
	Onecard__V1__Reply *r = NULL;

	req.id = id;
	req.op_case = ONECARD__V1__REQUEST__OP_PING;
	req.ping = &ping;
	assert_int_equal(onecard_call(conn, &req, &r), ONECARD_OK);
	assert_int_equal(r->id, id);
	assert_int_equal(r->result_case, ONECARD__V1__REPLY__RESULT_PONG);
	onecard_reply_free(r);
}

/* The next event's seq, waiting at most timeout_ms. */
#define next_seq(conn, ms) next_seq_at(conn, ms, __LINE__)
static uint64_t
next_seq_at(struct onecard_conn *conn, int timeout_ms, int line)
{
	Onecard__V1__Reply *ev = NULL;
	uint64_t seq;
	int rc;

	if ((rc = onecard_next_event(conn, timeout_ms, &ev)) != ONECARD_OK)
		fail_msg("line %d: no event: %s: %s", line,
		    onecard_strerror(rc), onecard_last_error(conn));
	assert_int_equal(ev->id, 0);
	assert_int_equal(ev->code, CODE(OK));
	assert_non_null(ev->event);
	seq = ev->event->seq;
	onecard_reply_free(ev);
	return seq;
}

static void
subscribe_gives_backlog_then_live_and_a_timeout_breaks_nothing(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	struct onecard_conn *conn;
	Onecard__V1__Reply *ev = NULL;
	uint64_t last = 0, seq;

	(void)state;
	assert_int_equal(harness_start(&h, codes, NULL), 0);
	for (int i = 0; i < 3; i++)
		run_ok(&h, "H1", "onecard enroll hosp:H1=B%d", i);
	conn = connect_as(&h, "admin", 5000);
	assert_int_equal(onecard_subscribe(conn, 0, 0, &last), ONECARD_OK);
	assert_true(last >= 4); /* the hospital's addition, 3 enrollments */
	for (seq = 1; seq <= last; seq++)
		assert_int_equal(next_seq(conn, 5000), seq);
	/* Nothing more: a timeout, at once with 0 and after a wait. */
	assert_int_equal(onecard_next_event(conn, 0, &ev), ONECARD_ETIMEDOUT);
	assert_null(ev);
	assert_int_equal(onecard_next_event(conn, 200, &ev), ONECARD_ETIMEDOUT);
	/* ... and the connection goes on: a call, then a live event. */
	ping_keeps_its_id(conn, 500);
	run_ok(&h, "H1", "onecard enroll --name Live hosp:H1=LIVE");
	assert_int_equal(onecard_next_event(conn, 5000, &ev), ONECARD_OK);
	assert_int_equal(ev->event->seq, last + 1);
	assert_string_equal(ev->event->op, "enroll");
	assert_string_equal(ev->event->patient->demographics->name, "Live");
	onecard_reply_free(ev);
	onecard_close(conn);

	/* from_now: the last seq is where to resume; only later events. */
	conn = connect_as(&h, "admin", 5000);
	assert_int_equal(onecard_subscribe(conn, 0, 1, &seq), ONECARD_OK);
	assert_int_equal(seq, last + 1);
	assert_int_equal(onecard_next_event(conn, 100, &ev), ONECARD_ETIMEDOUT);
	run_ok(&h, "H1", "onecard enroll hosp:H1=LATER");
	assert_int_equal(next_seq(conn, 5000), last + 2);
	onecard_close(conn);
	harness_cleanup(&h);
}

static void
replies_and_events_on_one_connection_reach_their_own_calls(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	Onecard__V1__Request req[3];
	Onecard__V1__Ping ping[3];
	Onecard__V1__Reply *r = NULL;
	struct onecard_conn *w, *conn;
	uint64_t last = 0, seq = 0;

	(void)state;
	assert_int_equal(harness_start(&h, codes, NULL), 0);
	/* A backlog longer than one of the broker's chunks (256). */
	assert_int_equal(harness_connect(&h, "H1", &w), ONECARD_OK);
	for (int i = 0; i < 600; i++) {
		struct harness_enroll e;

		harness_enroll_init(&e, 0, "hosp:H1", "R%d", i);
		assert_int_equal(onecard_send(w, &e.req), ONECARD_OK);
	}
	for (int i = 0; i < 600; i++) {
		assert_int_equal(onecard_recv(w, &r), ONECARD_OK);
		assert_int_equal(r->code, CODE(OK));
		onecard_reply_free(r);
	}
	onecard_close(w);

	conn = connect_as(&h, "admin", 10000);
	assert_int_equal(onecard_subscribe(conn, 0, 0, &last), ONECARD_OK);
	assert_true(last >= 601);
	/* A call while the backlog streams: its reply, events set aside. */
	ping_keeps_its_id(conn, 9001);
	/* Three pipelined pings, then events: the pongs wait for recv. */
	for (int i = 0; i < 3; i++) {
		memset(&req[i], 0, sizeof(req[i]));
		onecard__v1__request__init(&req[i]);
		onecard__v1__ping__init(&ping[i]);
		req[i].id = 9100 + (uint64_t)i;
		req[i].op_case = ONECARD__V1__REQUEST__OP_PING;
		req[i].ping = &ping[i];
		assert_int_equal(onecard_send(conn, &req[i]), ONECARD_OK);
	}
	/* Subscribing (as calling) waits until their replies are taken. */
	assert_int_equal(onecard_subscribe(conn, 0, 0, NULL), ONECARD_EINVAL);
	for (uint64_t want = 1; want <= last; want++) {
		seq = next_seq(conn, 10000);
		assert_int_equal(seq, want);
	}
	assert_int_equal(onecard_pending(conn), 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(onecard_recv(conn, &r), ONECARD_OK);
		assert_int_equal(r->id, 9100 + (uint64_t)i);
		onecard_reply_free(r);
	}
	assert_int_equal(onecard_pending(conn), 0);
	onecard_close(conn);
	harness_cleanup(&h);
}

static void
refusals_and_the_notice_before_a_close_come_back_as_codes(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	struct onecard_conn *conn;
	Onecard__V1__Reply *ev = NULL;
	uint64_t last = 0;
	int rc;

	(void)state;
	assert_int_equal(harness_start(&h, codes, NULL), 0);
	conn = connect_as(&h, "H1", 5000);
	rc = onecard_subscribe(conn, 1000000, 0, &last);
	assert_int_equal(rc, CODE(OUT_OF_RANGE));
	assert_string_equal(onecard_strerror(rc), "OUT_OF_RANGE");
	assert_non_null(strstr(onecard_last_error(conn), "is after"));
	/* A refusal leaves the connection as it was. */
	ping_keeps_its_id(conn, 7);
	assert_int_equal(onecard_subscribe(conn, 0, 1, &last), ONECARD_OK);
	rc = onecard_subscribe(conn, 0, 1, &last);
	assert_int_equal(rc, CODE(CONFLICT));
	/* H1 revoked: the broker's notice, then the close. */
	run_ok(&h, "admin", "onecardctl hospital revoke H1");
	rc = onecard_next_event(conn, 5000, &ev);
	assert_int_equal(rc, CODE(UNAUTHENTICATED));
	assert_null(ev);
	assert_non_null(strstr(onecard_last_error(conn), "was revoked"));
	rc = onecard_next_event(conn, 5000, &ev);
	assert_int_equal(rc, ONECARD_ECLOSED);
	onecard_close(conn);
	harness_cleanup(&h);
}

struct watch_seen {
	uint64_t seqs[64];
	int n;
	uint64_t stop_at;
	int refuse; /* leave the event at stop_at unhandled */
};

/* onecard_watch's callback: note the seq; stop at stop_at. */
static int
watch_note(const Onecard__V1__Event *ev, void *arg)
{
	struct watch_seen *s = arg;

	if (s->n < 64)
		s->seqs[s->n++] = ev->seq;
	if (ev->seq < s->stop_at)
		return 0;
	return s->refuse ? -1 : 1;
}

static void
watch_keeps_the_seq_to_resume_from(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	struct watch_seen seen;
	struct onecard_conn *conn;
	uint64_t seq = 0, last = 0;

	(void)state;
	assert_int_equal(harness_start(&h, codes, NULL), 0);
	for (int i = 0; i < 3; i++)
		run_ok(&h, "H1", "onecard enroll hosp:H1=W%d", i);
	conn = connect_as(&h, "admin", 5000);
	assert_int_equal(onecard_subscribe(conn, 0, 1, &last), ONECARD_OK);
	onecard_close(conn);

	/* From 0 up to last, handled: seq is last. */
	memset(&seen, 0, sizeof(seen));
	seen.stop_at = last;
	conn = connect_as(&h, "admin", 5000);
	assert_int_equal(
	    onecard_watch(conn, &seq, watch_note, &seen), ONECARD_OK);
	assert_int_equal(seen.n, (int)last);
	assert_int_equal(seq, last);
	onecard_close(conn);

	/* The next one refused by the callback: seq stays before it, and
	 * a new connection from seq gets it again. */
	run_ok(&h, "H1", "onecard enroll hosp:H1=W9");
	memset(&seen, 0, sizeof(seen));
	seen.stop_at = last + 1;
	seen.refuse = 1;
	conn = connect_as(&h, "admin", 5000);
	assert_int_equal(
	    onecard_watch(conn, &seq, watch_note, &seen), ONECARD_OK);
	assert_int_equal(seq, last);
	onecard_close(conn);
	memset(&seen, 0, sizeof(seen));
	seen.stop_at = last + 1;
	conn = connect_as(&h, "admin", 5000);
	assert_int_equal(
	    onecard_watch(conn, &seq, watch_note, &seen), ONECARD_OK);
	assert_int_equal(seen.n, 1);
	assert_int_equal(seen.seqs[0], last + 1);
	assert_int_equal(seq, last + 1);
	onecard_close(conn);

	/* From now, and quiet for longer than the call timeout: a ping, not
	 * a failure; the write a second later is the first event. */
	memset(&seen, 0, sizeof(seen));
	seen.stop_at = last + 2;
	seq = ONECARD_SEQ_NOW;
	conn = connect_as(&h, "admin", 300);
	{
		pid_t pid = fork();

		assert_true(pid != -1);
		if (pid == 0) {
			char out[256];

			usleep(1000000);
			_exit(harness_run(&h, "H1", out, sizeof(out),
				  "onecard enroll hosp:H1=W10") == 0
				? 0
				: 1);
		}
		assert_int_equal(
		    onecard_watch(conn, &seq, watch_note, &seen), ONECARD_OK);
		assert_int_equal(seen.n, 1);
		assert_int_equal(seq, last + 2);
		assert_int_equal(waitpid(pid, NULL, 0), pid);
	}
	onecard_close(conn);
	harness_cleanup(&h);
}

struct async_events {
	struct event_base *base;
	struct onecard_async *ac;
	struct harness *h;
	uint64_t last; /* the subscription's answer */
	int answered;  /* the subscribe reply came */
	uint64_t seqs[16];
	int n;
	int end_err; /* the error the event callback ended with */
	int ended;
};

/* The subscribe reply: note the last seq. */
static void
async_subscribed(const Onecard__V1__Reply *r, int err, void *arg)
{
	struct async_events *a = arg;

	assert_int_equal(err, ONECARD_OK);
	assert_int_equal(r->code, CODE(OK));
	a->last = r->event->seq;
	a->answered = 1;
}

/* Each event: note it; at the backlog's end write one more, and close
 * after that live one. */
static void
async_event(const Onecard__V1__Event *ev, int err, void *arg)
{
	struct async_events *a = arg;

	if (ev == NULL) {
		a->end_err = err;
		a->ended++;
		event_base_loopexit(a->base, NULL);
		return;
	}
	assert_true(a->answered);
	if (a->n < 16)
		a->seqs[a->n++] = ev->seq;
	if (ev->seq == a->last)
		run_ok(a->h, "H1", "onecard enroll hosp:H1=ASYNC-LIVE");
	else if (ev->seq == a->last + 1)
		onecard_async_close(a->ac);
}

static void
async_client_hands_events_to_its_callback(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	struct onecard_options opt;
	struct async_events a;
	struct timeval limit = {20, 0};

	(void)state;
	assert_int_equal(harness_start(&h, codes, NULL), 0);
	for (int i = 0; i < 3; i++)
		run_ok(&h, "H1", "onecard enroll hosp:H1=A%d", i);
	memset(&a, 0, sizeof(a));
	a.h = &h;
	a.base = event_base_new();
	harness_options(&h, "admin", &opt);
	a.ac = onecard_async_connect(a.base, &opt, NULL, NULL);
	assert_non_null(a.ac);
	assert_int_equal(
	    onecard_async_on_event(a.ac, async_event, &a), ONECARD_OK);
	assert_int_equal(
	    onecard_async_subscribe(a.ac, 0, 0, async_subscribed, &a),
	    ONECARD_OK);
	event_base_loopexit(a.base, &limit);
	event_base_dispatch(a.base);
	assert_int_equal(a.ended, 1);
	assert_int_equal(a.end_err, ONECARD_ECLOSED);
	assert_true(a.last >= 4);
	assert_int_equal(a.n, (int)a.last + 1);
	for (int i = 0; i < a.n; i++)
		assert_int_equal(a.seqs[i], (uint64_t)i + 1);
	event_base_free(a.base);
	harness_cleanup(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		subscribe_gives_backlog_then_live_and_a_timeout_breaks_nothing),
	    cmocka_unit_test(
		replies_and_events_on_one_connection_reach_their_own_calls),
	    cmocka_unit_test(
		refusals_and_the_notice_before_a_close_come_back_as_codes),
	    cmocka_unit_test(watch_keeps_the_seq_to_resume_from),
	    cmocka_unit_test(async_client_hands_events_to_its_callback),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
