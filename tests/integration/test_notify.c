/*
 * test_notify.c: subscriptions on a real onecardd. The backlog and then
 * live events, in seq order with none missed; requests beside a
 * subscription on one connection; what each hospital hears; the defined
 * answers to a from_seq out of range, a second subscription and one over
 * --max-subscribers; a subscriber that never reads is paused at its bound
 * and closed past --stall-timeout while others carry on; ordering under
 * writes from 8 connections; many subscribers at once.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

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

/* Send Subscribe as request id 1; the reply (the caller frees it). */
static Onecard__V1__Reply *
subscribe(struct onecard_conn *conn, uint64_t from_seq, int from_now)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Subscribe s = ONECARD__V1__SUBSCRIBE__INIT;
	Onecard__V1__Reply *r = NULL;

	s.from_seq = from_seq;
	s.from_now = from_now;
	req.id = 1;
	req.op_case = ONECARD__V1__REQUEST__OP_SUBSCRIBE;
	req.subscribe = &s;
	assert_int_equal(onecard_send(conn, &req), ONECARD_OK);
	assert_int_equal(onecard_flush(conn), ONECARD_OK);
	assert_int_equal(onecard_recv(conn, &r), ONECARD_OK);
	assert_int_equal(r->id, 1);
	return r;
}

/* The next pushed event (id 0); the caller frees it. */
#define next_event(conn) next_event_at(conn, __LINE__)
static Onecard__V1__Reply *
next_event_at(struct onecard_conn *conn, int line)
{
	Onecard__V1__Reply *r = NULL;
	int rc;

	if ((rc = onecard_recv(conn, &r)) != ONECARD_OK)
		fail_msg("line %d: no event: %s", line, onecard_strerror(rc));
	assert_int_equal(r->id, 0);
	assert_int_equal(r->code, CODE(OK));
	assert_non_null(r->event);
	return r;
}

/* Connect as cn with a short receive timeout. */
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

/* Nothing was pushed: 200 ms on, a ping's pong is the next frame. */
static void
assert_quiet(struct onecard_conn *conn)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Ping ping = ONECARD__V1__PING__INIT;
	Onecard__V1__Reply *r = NULL;

	usleep(200000);
	req.id = 77;
	req.op_case = ONECARD__V1__REQUEST__OP_PING;
	req.ping = &ping;
	assert_int_equal(onecard_send(conn, &req), ONECARD_OK);
	assert_int_equal(onecard_recv(conn, &r), ONECARD_OK);
	if (r->id != 77)
		fail_msg("pushed when nothing should be: %s seq %llu",
		    r->event ? r->event->op : "?",
		    r->event ? (unsigned long long)r->event->seq : 0ULL);
	onecard_reply_free(r);
}

static uint64_t last_event(struct harness *h);

static void
backlog_then_live_in_order_beside_requests(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	struct onecard_conn *conn;
	Onecard__V1__Reply *r;
	uint64_t last;

	(void)state;
	assert_int_equal(harness_start(&h, codes, NULL), 0);
	for (int i = 0; i < 3; i++)
		run_ok(&h, "H1", "onecard enroll hosp:H1=N%d", i);
	conn = connect_as(&h, "admin", 10000);
	r = subscribe(conn, 0, 0);
	assert_int_equal(r->code, CODE(OK));
	assert_non_null(r->event);
	last = r->event->seq;
	assert_true(last >= 4); /* the hospital's addition, 3 enrollments */
	onecard_reply_free(r);
	/* the backlog: every event up to last, in order */
	for (uint64_t seq = 1; seq <= last; seq++) {
		r = next_event(conn);
		assert_int_equal(r->event->seq, seq);
		onecard_reply_free(r);
	}
	/* live: a new enrollment, with the record after it */
	run_ok(&h, "H1", "onecard enroll --name Live hosp:H1=LIVE1");
	r = next_event(conn);
	assert_int_equal(r->event->seq, last + 1);
	assert_string_equal(r->event->op, "enroll");
	assert_string_equal(r->event->actor, "H1");
	assert_non_null(r->event->patient);
	assert_string_equal(r->event->patient->demographics->name, "Live");
	assert_string_equal(
	    r->event->patient->patient_id, r->event->patient_id);
	onecard_reply_free(r);
	/* a request on the same connection keeps its id */
	assert_int_equal(harness_ping(conn), CODE(OK));
	/* a second subscription on it: CONFLICT, the first goes on */
	r = subscribe(conn, 0, 1);
	assert_int_equal(r->code, CODE(CONFLICT));
	assert_non_null(strstr(r->message, "already has a subscription"));
	onecard_reply_free(r);
	run_ok(&h, "H1", "onecard enroll hosp:H1=LIVE2");
	r = next_event(conn);
	assert_int_equal(r->event->seq, last + 2);
	onecard_reply_free(r);
	onecard_close(conn);

	/* from_now: only what comes after */
	conn = connect_as(&h, "admin", 500);
	r = subscribe(conn, 0, 1);
	assert_int_equal(r->code, CODE(OK));
	assert_int_equal(r->event->seq, last + 2);
	onecard_reply_free(r);
	assert_quiet(conn);
	onecard_close(conn);
	harness_cleanup(&h);
}

static void
hospitals_hear_of_their_patients_and_of_a_merge_that_moves_their_card(
    void **state)
{
	struct harness h;
	const char *codes[] = {"H1", "H2", NULL};
	struct onecard_conn *c1, *c2;
	Onecard__V1__Reply *r;

	(void)state;
	assert_int_equal(harness_start(&h, codes, NULL), 0);
	c1 = connect_as(&h, "H1", 1000);
	c2 = connect_as(&h, "H2", 1000);
	r = subscribe(c1, 0, 1);
	assert_int_equal(r->code, CODE(OK));
	onecard_reply_free(r);
	r = subscribe(c2, 0, 1);
	assert_int_equal(r->code, CODE(OK));
	onecard_reply_free(r);

	run_ok(&h, "H1", "onecard enroll --name A hosp:H1=A1");
	run_ok(&h, "H2", "onecard enroll --name B hosp:H2=B1");
	r = next_event(c1);
	assert_string_equal(r->event->op, "enroll");
	assert_string_equal(r->event->patient->demographics->name, "A");
	onecard_reply_free(r);
	r = next_event(c2);
	assert_string_equal(r->event->op, "enroll");
	assert_string_equal(r->event->patient->demographics->name, "B");
	onecard_reply_free(r);
	/* each heard only of its own */
	assert_quiet(c1);
	assert_quiet(c2);

	/* H2's record merged into H1's: both hear of it, as one event */
	run_ok(&h, "admin", "onecardctl merge hosp:H1=A1 hosp:H2=B1");
	r = next_event(c2);
	assert_string_equal(r->event->op, "merge");
	assert_string_equal(r->event->patient->demographics->name, "A");
	assert_int_equal(r->event->patient->n_identifiers, 2);
	assert_true(r->event->other_patient_id[0] != '\0');
	onecard_reply_free(r);
	r = next_event(c1);
	assert_string_equal(r->event->op, "merge");
	onecard_reply_free(r);
	assert_quiet(c1);
	assert_quiet(c2);
	/* its card unlinked, H2 hears of that, then no more of the patient */
	run_ok(&h, "H2", "onecard unlink hosp:H2=B1");
	r = next_event(c2);
	assert_string_equal(r->event->op, "unlink");
	onecard_reply_free(r);
	run_ok(&h, "H1", "onecard update --name A2 hosp:H1=A1");
	r = next_event(c1); /* unlink */
	onecard_reply_free(r);
	r = next_event(c1);
	assert_string_equal(r->event->op, "update");
	onecard_reply_free(r);
	assert_quiet(c2);
	onecard_close(c1);
	onecard_close(c2);
	harness_cleanup(&h);
}

static void
bad_subscriptions_get_defined_answers(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	const char *extra[] = {"--max-subscribers", "2", NULL};
	struct onecard_conn *a, *b, *c;
	Onecard__V1__Reply *r;

	(void)state;
	assert_int_equal(harness_start(&h, codes, extra), 0);
	a = connect_as(&h, "H1", 2000);
	/* a from_seq after the last event */
	r = subscribe(a, 1000000, 0);
	assert_int_equal(r->code, CODE(OUT_OF_RANGE));
	assert_non_null(
	    strstr(r->message, "subscribe.from_seq: 1000000 is after"));
	onecard_reply_free(r);
	/* the connection stays usable, and may subscribe properly */
	assert_int_equal(harness_ping(a), CODE(OK));
	r = subscribe(a, 0, 0);
	assert_int_equal(r->code, CODE(OK));
	onecard_reply_free(r);
	b = connect_as(&h, "admin", 2000);
	r = subscribe(b, 0, 1);
	assert_int_equal(r->code, CODE(OK));
	onecard_reply_free(r);
	/* the third is one over --max-subscribers 2 */
	c = connect_as(&h, "admin", 2000);
	r = subscribe(c, 0, 1);
	assert_int_equal(r->code, CODE(RESOURCE_EXHAUSTED));
	assert_non_null(strstr(r->message, "--max-subscribers"));
	onecard_reply_free(r);
	/* one ends: the slot is free again */
	onecard_close(b);
	for (int i = 0; i < 50; i++) {
		r = subscribe(c, 0, 1);
		if (r->code == CODE(OK))
			break;
		onecard_reply_free(r);
		r = NULL;
		usleep(20000);
	}
	assert_non_null(r);
	assert_int_equal(r->code, CODE(OK));
	onecard_reply_free(r);
	onecard_close(a);
	onecard_close(c);
	harness_cleanup(&h);
}

/* --event-retention 5: once the log is folded, the older events are gone
 * and a subscription from before them is OUT_OF_RANGE; one from within
 * the kept ones gets them; seq goes on rising across a restart. */
static void
retention_drops_old_events_and_says_so(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", "H2", NULL};
	const char *extra[] = {"--event-retention", "5", NULL};
	struct onecard_conn *conn;
	Onecard__V1__Reply *r = NULL;
	uint64_t last = 0, quiet;
	int i;

	/* PostgreSQL keeps every event: no retention there yet. */
	if (harness_on_pg())
		skip();
	(void)state;
	assert_int_equal(harness_start(&h, codes, extra), 0);
	/* H2's one event, then a stream H2 cannot see */
	run_ok(&h, "H2", "onecard enroll hosp:H2=Q1");
	quiet = last_event(&h);
	for (i = 0; i < 20; i++)
		run_ok(&h, "H1", "onecard enroll hosp:H1=R%d", i);
	conn = connect_as(&h, "admin", 5000);
	/* the fold prunes at most once a second: wait for it */
	for (i = 0; i < 100; i++) {
		r = subscribe(conn, 0, 0);
		if (r->code == CODE(OUT_OF_RANGE))
			break;
		onecard_reply_free(r);
		r = NULL;
		onecard_close(conn);
		conn = connect_as(&h, "admin", 5000);
		usleep(100000);
	}
	assert_non_null(r);
	assert_int_equal(r->code, CODE(OUT_OF_RANGE));
	assert_non_null(strstr(r->message, "no longer kept"));
	onecard_reply_free(r);
	r = subscribe(conn, 0, 1);
	assert_int_equal(r->code, CODE(OK));
	last = r->event->seq;
	onecard_reply_free(r);
	onecard_close(conn);
	/* the last three are still there */
	conn = connect_as(&h, "admin", 5000);
	r = subscribe(conn, last - 3, 0);
	assert_int_equal(r->code, CODE(OK));
	onecard_reply_free(r);
	for (uint64_t seq = last - 2; seq <= last; seq++) {
		r = next_event(conn);
		assert_int_equal(r->event->seq, seq);
		onecard_reply_free(r);
	}
	onecard_close(conn);
	/* H2, quiet all along, resumes after the last event it saw: nothing
	 * it could see was dropped, though events after it were; H1 cannot */
	conn = connect_as(&h, "H2", 5000);
	r = subscribe(conn, quiet, 0);
	assert_int_equal(r->code, CODE(OK));
	onecard_reply_free(r);
	assert_quiet(conn);
	onecard_close(conn);
	conn = connect_as(&h, "H1", 5000);
	r = subscribe(conn, quiet, 0);
	assert_int_equal(r->code, CODE(OUT_OF_RANGE));
	onecard_reply_free(r);
	onecard_close(conn);
	conn = connect_as(&h, "H2", 5000);
	r = subscribe(conn, quiet - 1, 0);
	assert_int_equal(r->code, CODE(OUT_OF_RANGE));
	onecard_reply_free(r);
	onecard_close(conn);
	/* a restart keeps counting from where it was */
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	assert_int_equal(harness_restart(&h, extra), 0);
	run_ok(&h, "H1", "onecard enroll hosp:H1=AFTER");
	conn = connect_as(&h, "admin", 5000);
	r = subscribe(conn, last, 0);
	assert_int_equal(r->code, CODE(OK));
	onecard_reply_free(r);
	r = next_event(conn);
	assert_int_equal(r->event->seq, last + 1);
	onecard_reply_free(r);
	onecard_close(conn);
	harness_cleanup(&h);
}

/* The registry's last event, as an admin's stats says. */
static uint64_t
last_event(struct harness *h)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Stats st = ONECARD__V1__STATS__INIT;
	Onecard__V1__Reply *r = NULL;
	struct onecard_conn *conn = connect_as(h, "admin", 10000);
	uint64_t n;

	req.id = 5;
	req.op_case = ONECARD__V1__REQUEST__OP_STATS;
	req.stats = &st;
	assert_int_equal(onecard_call(conn, &req, &r), ONECARD_OK);
	assert_int_equal(r->code, CODE(OK));
	n = r->stats->events;
	onecard_reply_free(r);
	onecard_close(conn);
	return n;
}

#define WRITERS     8
#define WRITES_EACH 150

struct writer_arg {
	struct harness *h;
	int t;
	atomic_int *done;
};

/* One connection's enrollments, one at a time. */
static void *
writer_main(void *arg)
{
	struct writer_arg *wa = arg;
	struct onecard_options opt;
	struct onecard_conn *conn = NULL;
	struct harness_enroll e;
	Onecard__V1__Reply *r;

	harness_options(wa->h, "H1", &opt);
	if (onecard_connect(&opt, &conn, NULL, 0) != ONECARD_OK)
		return NULL;
	for (int i = 0; i < WRITES_EACH; i++) {
		harness_enroll_init(
		    &e, (uint64_t)i + 1, "hosp:H1", "W%d-%d", wa->t, i);
		r = NULL;
		if (onecard_call(conn, &e.req, &r) == ONECARD_OK &&
		    r->code == CODE(OK))
			atomic_fetch_add(wa->done, 1);
		onecard_reply_free(r);
	}
	onecard_close(conn);
	return NULL;
}

/* Read events on conn until seq reaches upto: each one the next seq. */
static void
drain_contiguous(struct onecard_conn *conn, uint64_t after, uint64_t upto)
{
	Onecard__V1__Reply *r;

	for (uint64_t seq = after + 1; seq <= upto; seq++) {
		r = next_event(conn);
		if (r->event->seq != seq)
			fail_msg("event %llu where %llu was due",
			    (unsigned long long)r->event->seq,
			    (unsigned long long)seq);
		onecard_reply_free(r);
	}
}

/* Writes from 8 connections while one subscriber follows from the start
 * and another joins halfway from an older seq (its backlog and the live
 * events interleave): both see every seq once, in order, with no gap up
 * to the registry's own last event. */
static void
order_holds_under_writes_from_8_connections(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	struct writer_arg wa[WRITERS];
	pthread_t th[WRITERS];
	struct onecard_conn *a, *b;
	Onecard__V1__Reply *r;
	atomic_int done = 0;
	uint64_t start, mid, last;

	(void)state;
	assert_int_equal(harness_start(&h, codes, NULL), 0);
	a = connect_as(&h, "admin", 10000);
	r = subscribe(a, 0, 0);
	assert_int_equal(r->code, CODE(OK));
	start = r->event->seq;
	onecard_reply_free(r);
	for (int t = 0; t < WRITERS; t++) {
		wa[t] = (struct writer_arg){&h, t, &done};
		assert_int_equal(
		    pthread_create(&th[t], NULL, writer_main, &wa[t]), 0);
	}
	while (atomic_load(&done) < WRITERS * WRITES_EACH / 2)
		usleep(10000);
	mid = last_event(&h);
	b = connect_as(&h, "admin", 10000);
	r = subscribe(b, mid / 2, 0);
	assert_int_equal(r->code, CODE(OK));
	onecard_reply_free(r);
	for (int t = 0; t < WRITERS; t++)
		pthread_join(th[t], NULL);
	assert_int_equal(atomic_load(&done), WRITERS * WRITES_EACH);
	last = last_event(&h);
	assert_true(last >= start + WRITERS * WRITES_EACH);
	drain_contiguous(a, 0, last);
	drain_contiguous(b, mid / 2, last);
	assert_quiet(a);
	assert_quiet(b);
	onecard_close(a);
	onecard_close(b);
	harness_cleanup(&h);
}

/* A metric's value on the broker's /metrics. */
static double
metric(struct harness *h, const char *series)
{
	static char body[1 << 20];
	int port = harness_metrics_port(h);

	assert_true(port > 0);
	assert_int_equal(
	    harness_http_get(port, "/metrics", body, sizeof(body), NULL, 0),
	    200);
	return harness_metric(body, series);
}

/* A subscriber that never reads is paused at --max-pending-output with its
 * events left in the log, and closed past --stall-timeout; a subscriber
 * that reads gets every event meanwhile. */
static void
a_subscriber_that_never_reads_is_paused_then_closed(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	const char *extra[] = {"--max-pending-output", "65536",
	    "--stall-timeout", "20", "--metrics-listen", "127.0.0.1:0", NULL};
	struct onecard_conn *slow, *fast;
	struct harness_load *load;
	Onecard__V1__Reply *r;
	char series[128], log[1 << 16], *p;
	uint64_t last, slow_id;
	int closed = 0;

	(void)state;
	assert_int_equal(harness_start(&h, codes, extra), 0);
	slow = connect_as(&h, "admin", 10000);
	r = subscribe(slow, 0, 0);
	assert_int_equal(r->code, CODE(OK));
	onecard_reply_free(r);
	fast = connect_as(&h, "admin", 10000);
	r = subscribe(fast, 0, 0);
	assert_int_equal(r->code, CODE(OK));
	onecard_reply_free(r);
	/* Writes until well past what the socket buffers could hide: the
	 * slow one's events wait in the log (its lag grows; its output
	 * stays at its bound), long before its stall deadline. */
	load = harness_load_start(&h, "H1", "S", 4);
	assert_non_null(load);
	assert_int_equal(harness_log(&h, log, sizeof(log)), 0);
	assert_non_null(strstr(log, "subscribe id="));
	slow_id = strtoull(strstr(log, "subscribe id=") + 13, NULL, 10);
	snprintf(series, sizeof(series),
	    "onecard_subscriber_lag_events{hospital=\"admin\",conn=\"%llu\"}",
	    (unsigned long long)slow_id);
	while (metric(&h, series) < 20000)
		usleep(100000);
	run_ok(&h, "admin", "onecardctl hospital revoke H1");
	assert_true(harness_load_wait(load) > 0);
	harness_load_free(load);
	last = last_event(&h);
	drain_contiguous(fast, 0, last);
	/* ... and past --stall-timeout it is closed; the reader stays */
	for (int i = 0; i < 600 && !closed; i++) {
		usleep(100000);
		closed = metric(&h, "onecard_subscribers") == 1;
	}
	assert_true(closed);
	/* closed by its stall deadline: its output not taken in time */
	assert_int_equal(harness_log(&h, log, sizeof(log)), 0);
	snprintf(series, sizeof(series), "unsubscribe id=%llu ",
	    (unsigned long long)slow_id);
	assert_non_null(p = strstr(log, series));
	if (strstr(p, "reason=\"output stuck\"") == NULL &&
	    strstr(p, "reason=\"replies not read\"") == NULL)
		fail_msg("closed, but not for its stall: %.200s", p);
	assert_int_equal(harness_ping(fast), CODE(OK));
	onecard_close(slow);
	onecard_close(fast);
	harness_cleanup(&h);
}

#define MANY 1000

/* A thousand subscribers at once each hear of one enrollment. */
static void
a_thousand_subscribers_each_hear_of_a_write(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	const char *extra[] = {"--metrics-listen", "127.0.0.1:0", NULL};
	static struct onecard_conn *c[MANY];
	struct rlimit rl;
	Onecard__V1__Reply *r;

	(void)state;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < MANY + 200) {
		rl.rlim_cur = rl.rlim_max;
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	assert_true(rl.rlim_cur >= MANY + 200);
	assert_int_equal(harness_start(&h, codes, extra), 0);
	for (int i = 0; i < MANY; i++) {
		c[i] = connect_as(&h, i % 2 ? "admin" : "H1", 20000);
		r = subscribe(c[i], 0, 1);
		assert_int_equal(r->code, CODE(OK));
		onecard_reply_free(r);
	}
	assert_true(metric(&h, "onecard_subscribers") == MANY);
	run_ok(&h, "H1", "onecard enroll --name Many hosp:H1=MANY1");
	for (int i = 0; i < MANY; i++) {
		r = next_event(c[i]);
		assert_string_equal(r->event->op, "enroll");
		assert_string_equal(
		    r->event->patient->demographics->name, "Many");
		onecard_reply_free(r);
	}
	for (int i = 0; i < MANY; i++)
		onecard_close(c[i]);
	harness_cleanup(&h);
}

/* --idle-timeout closes a quiet connection, but not a subscriber that
 * waits for events. */
static void
a_subscriber_is_not_idle(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	const char *extra[] = {"--idle-timeout", "1", NULL};
	struct onecard_conn *sub, *quiet;
	Onecard__V1__Reply *r;

	(void)state;
	assert_int_equal(harness_start(&h, codes, extra), 0);
	sub = connect_as(&h, "H1", 5000);
	quiet = connect_as(&h, "H1", 5000);
	r = subscribe(sub, 0, 1);
	assert_int_equal(r->code, CODE(OK));
	onecard_reply_free(r);
	usleep(2500000);
	assert_int_not_equal(harness_ping(quiet), CODE(OK));
	run_ok(&h, "H1", "onecard enroll hosp:H1=IDLE1");
	r = next_event(sub);
	assert_string_equal(r->event->op, "enroll");
	onecard_reply_free(r);
	onecard_close(sub);
	onecard_close(quiet);
	harness_cleanup(&h);
}

/* Subscribing and its end go into the audit trail; the metrics count
 * subscribers and the events pushed. */
static void
subscriptions_are_audited_and_counted(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	char audit[400], *trail;
	const char *extra[] = {
	    "--audit-log", audit, "--metrics-listen", "127.0.0.1:0", NULL};
	struct onecard_conn *conn;
	Onecard__V1__Reply *r;
	FILE *f;
	size_t n;
	int gone = 0;

	(void)state;
	assert_int_equal(harness_start(&h, codes, NULL), 0);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	snprintf(audit, sizeof(audit), "%s/audit.log", h.dir);
	assert_int_equal(harness_restart(&h, extra), 0);
	conn = connect_as(&h, "H1", 5000);
	r = subscribe(conn, 0, 1);
	assert_int_equal(r->code, CODE(OK));
	onecard_reply_free(r);
	assert_true(metric(&h, "onecard_subscribers") == 1);
	run_ok(&h, "H1", "onecard enroll hosp:H1=AUD1");
	r = next_event(conn);
	onecard_reply_free(r);
	assert_true(metric(&h, "onecard_events_pushed_total") >= 1);
	onecard_close(conn);
	for (int i = 0; i < 50 && !gone; i++) {
		usleep(50000);
		gone = metric(&h, "onecard_subscribers") == 0;
	}
	assert_true(gone);
	assert_non_null(f = fopen(audit, "r"));
	assert_non_null(trail = calloc(1, 1 << 16));
	n = fread(trail, 1, (1 << 16) - 1, f);
	fclose(f);
	trail[n] = '\0';
	assert_non_null(strstr(
	    trail, "\"op\":\"subscribe\",\"target\":\"from_seq=0 from_now\""));
	assert_non_null(strstr(trail, "\"op\":\"unsubscribe\""));
	assert_non_null(strstr(trail, "\"detail\":\"seq="));
	free(trail);
	harness_cleanup(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(backlog_then_live_in_order_beside_requests),
	    cmocka_unit_test(
		hospitals_hear_of_their_patients_and_of_a_merge_that_moves_their_card),
	    cmocka_unit_test(bad_subscriptions_get_defined_answers),
	    cmocka_unit_test(retention_drops_old_events_and_says_so),
	    cmocka_unit_test(order_holds_under_writes_from_8_connections),
	    cmocka_unit_test(
		a_subscriber_that_never_reads_is_paused_then_closed),
	    cmocka_unit_test(a_thousand_subscribers_each_hear_of_a_write),
	    cmocka_unit_test(a_subscriber_is_not_idle),
	    cmocka_unit_test(subscriptions_are_audited_and_counted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
