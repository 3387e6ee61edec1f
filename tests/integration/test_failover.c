/*
 * test_failover.c: clients given several brokers (--broker A:P,B:P) move
 * to the next one when theirs fails. Connect skips a broker that does not
 * answer and names every one that failed; a broker answering UNAVAILABLE
 * is left for the next one, which takes the request; a write whose reply
 * was lost is "outcome unknown" (exit 8), except an enroll or a link, which
 * the CLIs send again since they converge; and a broker killed under a
 * libonecard connection leaves it on the other broker, where the next call
 * is answered. Two real brokers share the certificates; a fake broker
 * (harness_fake) gives the failures a real one rarely does.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <event2/event.h>

#include "harness.h"

static struct harness h;
static char out[65536], err[65536];
static char b_addr[64], dead_addr[64];
static int b_pid;

/* Run a command line as cn; exit status, stdout in out, stderr in err. */
static int run(const char *cn, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int
run(const char *cn, const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	return harness_run2(&h, cn, out, sizeof out, err, sizeof err, cmd);
}

/* A loopback port nothing listens on. */
static void
dead_port(char *buf, size_t len)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	snprintf(buf, len, "127.0.0.1:%d", ntohs(sin.sin_port));
	close(fd);
}

/* Start a second broker B on the same certificates, its own registry. */
static int
start_b(void)
{
	char log[320], line[512], *p;
	FILE *f;

	if (run(NULL,
		"onecardd --listen 127.0.0.1:0 --db '%s/b.db' "
		"--cert '%s/broker.pem' --key '%s/broker.key' "
		"--ca '%s/ca.pem' --admins admin --threads 1 "
		">'%s/b.log' 2>&1 </dev/null & echo $!",
		h.dir, h.certs, h.certs, h.certs, h.dir) != 0)
		return -1;
	b_pid = atoi(out);
	snprintf(log, sizeof log, "%s/b.log", h.dir);
	for (int i = 0; i < 500 && b_addr[0] == '\0'; i++) {
		usleep(20000);
		if ((f = fopen(log, "r")) == NULL)
			continue;
		while (fgets(line, sizeof line, f) != NULL)
			if ((p = strstr(line, "listening on ")) != NULL) {
				p += strlen("listening on ");
				p[strcspn(p, "\n")] = '\0';
				snprintf(b_addr, sizeof b_addr, "%s", p);
			}
		fclose(f);
	}
	if (b_addr[0] == '\0')
		return -1;
	return run("admin",
	    "onecardctl --broker %s hospital add XC001 --name 'Xicheng'",
	    b_addr);
}

static int
setup(void **state)
{
	static const char *const codes[] = {"XC001", NULL};

	(void)state;
	if (harness_start(&h, codes, NULL) == -1 || start_b() == -1)
		return -1;
	dead_port(dead_addr, sizeof dead_addr);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (b_pid > 0)
		kill(b_pid, SIGTERM);
	harness_stop(&h, SIGTERM);
	harness_cleanup(&h);
	return 0;
}

static void
connect_skips_a_broker_that_does_not_answer(void **state)
{
	(void)state;
	assert_int_equal(
	    run("XC001", "onecard --broker '%s,%s' lookup hosp:XC001=NONE",
		dead_addr, h.addr),
	    1);
	/* Spaces around the commas are allowed. */
	assert_int_equal(
	    run("XC001", "onecard --broker '%s , %s' enroll hosp:XC001=SP-1",
		dead_addr, h.addr),
	    0);
	/* None answers: exit 4, every broker named with its reason. */
	assert_int_equal(
	    run("XC001", "onecard --broker '%s,%s' lookup hosp:XC001=NONE",
		dead_addr, dead_addr),
	    4);
	assert_non_null(strstr(err, dead_addr));
	assert_non_null(strstr(err, "; "));
}

static void
a_malformed_list_is_refused(void **state)
{
	(void)state;
	assert_int_equal(
	    run("XC001", "onecard --broker '%s,' lookup hosp:XC001=X", h.addr),
	    2);
	assert_non_null(strstr(err, "HOST:PORT"));
	assert_int_equal(
	    run("XC001", "onecard --broker '%s,nocolon' ping", h.addr), 2);
}

static void
unavailable_moves_the_request_to_the_next_broker(void **state)
{
	struct harness_fake f = {.reply_id = -1,
	    .code = ONECARD__V1__CODE__UNAVAILABLE,
	    .message = "registry unavailable"};

	(void)state;
	assert_int_equal(harness_fake_start(&h, &f), 0);
	/* A write answered UNAVAILABLE was not applied: the next broker
	 * takes it, and it is there. */
	assert_int_equal(
	    run("XC001", "onecard --broker '%s,%s' enroll hosp:XC001=U-1",
		f.addr, h.addr),
	    0);
	assert_int_equal(run("XC001", "onecard lookup hosp:XC001=U-1"), 0);
	assert_int_equal(
	    run("XC001", "onecard --broker '%s,%s' lookup hosp:XC001=U-1",
		f.addr, h.addr),
	    0);
	harness_fake_stop(&f);
	assert_true(f.requests >= 2);
}

static void
a_lost_write_reply_is_outcome_unknown(void **state)
{
	struct harness_fake f = {.reply_id = -1, .hangup = 1};

	(void)state;
	assert_int_equal(run("XC001", "onecard enroll hosp:XC001=L-1"), 0);
	assert_int_equal(harness_fake_start(&h, &f), 0);
	/* An unlink is not sent again: exit 8, and it was not applied. */
	assert_int_equal(run("XC001",
			     "onecard --json --broker '%s,%s' unlink "
			     "hosp:XC001=L-1",
			     f.addr, h.addr),
	    8);
	assert_non_null(strstr(err, "outcome unknown"));
	assert_non_null(strstr(out, "CLIENT_OUTCOME_UNKNOWN"));
	assert_int_equal(run("XC001", "onecard lookup hosp:XC001=L-1"), 0);
	/* An enroll is: it converges on one record. */
	assert_int_equal(
	    run("XC001", "onecard --broker '%s,%s' enroll hosp:XC001=L-2",
		f.addr, h.addr),
	    0);
	assert_non_null(strstr(err, "sent again to"));
	assert_non_null(strstr(err, h.addr));
	assert_int_equal(run("XC001", "onecard lookup hosp:XC001=L-2"), 0);
	/* So is a link; and onecardctl does the same. */
	assert_int_equal(run("XC001",
			     "onecard --broker '%s,%s' link hosp:XC001=L-2 "
			     "hosp:XC001=L-3",
			     f.addr, h.addr),
	    0);
	assert_int_equal(run("XC001", "onecard lookup hosp:XC001=L-3"), 0);
	assert_int_equal(run("admin",
			     "onecardctl --broker '%s,%s' hospital add XC002 "
			     "--name 'Two'",
			     f.addr, h.addr),
	    8);
	harness_fake_stop(&f);
}

/* The libevent API's connect callback: its error, and the error text. */
static int async_err = 1;
static char async_why[512];

static void
async_connected(struct onecard_async *ac, int e, void *arg)
{
	(void)arg;
	async_err = e;
	snprintf(
	    async_why, sizeof async_why, "%s", onecard_async_last_error(ac));
}

/* onecard_async_connect to list as XC001; the callback's error. */
static int
async_connect_to(const char *list)
{
	struct onecard_options opt;
	struct event_base *base = event_base_new();
	struct onecard_async *ac;

	assert_non_null(base);
	harness_options(&h, "XC001", &opt);
	opt.broker = list;
	async_err = 1;
	async_why[0] = '\0';
	assert_non_null(
	    ac = onecard_async_connect(base, &opt, async_connected, NULL));
	while (async_err == 1)
		event_base_loop(base, EVLOOP_ONCE);
	onecard_async_close(ac);
	event_base_free(base);
	return async_err;
}

static void
the_async_connect_takes_the_first_broker_that_answers(void **state)
{
	char list[160];

	(void)state;
	snprintf(list, sizeof list, "%s,%s", dead_addr, h.addr);
	assert_int_equal(async_connect_to(list), ONECARD_OK);
	snprintf(list, sizeof list, "%s, %s", dead_addr, dead_addr);
	assert_int_equal(async_connect_to(list), ONECARD_ECONNECT);
	/* Both are named, each with its reason. */
	assert_non_null(strstr(async_why, "; "));
	assert_non_null(strstr(async_why, dead_addr));
}

static void
a_killed_broker_leaves_the_connection_on_the_other(void **state)
{
	struct onecard_options opt;
	struct onecard_conn *conn;
	struct harness_enroll e;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Lookup lk = ONECARD__V1__LOOKUP__INIT;
	Onecard__V1__Reply *reply;
	char list[160], errbuf[512];

	(void)state;
	snprintf(list, sizeof list, "%s,%s", h.addr, b_addr);
	harness_options(&h, "XC001", &opt);
	opt.broker = list;
	assert_int_equal(
	    onecard_connect(&opt, &conn, errbuf, sizeof errbuf), ONECARD_OK);
	assert_string_equal(onecard_broker(conn), h.addr);
	harness_enroll_init(&e, 0, "hosp:XC001", "K-1");
	assert_int_equal(onecard_call(conn, &e.req, &reply), ONECARD_OK);
	assert_int_equal(reply->code, ONECARD__V1__CODE__OK);
	onecard_reply_free(reply);

	/* kill -9 the broker in use: the next read goes to B. */
	harness_stop(&h, SIGKILL);
	id.domain = "hosp:XC001";
	id.value = "K-1";
	lk.identifier = &id;
	req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
	req.lookup = &lk;
	assert_int_equal(onecard_call(conn, &req, &reply), ONECARD_OK);
	/* B keeps its own registry here: the answer is B's. */
	assert_int_equal(reply->code, ONECARD__V1__CODE__NOT_FOUND);
	onecard_reply_free(reply);
	assert_string_equal(onecard_broker(conn), b_addr);
	/* And writes go on there. */
	harness_enroll_init(&e, 0, "hosp:XC001", "K-2");
	assert_int_equal(onecard_call(conn, &e.req, &reply), ONECARD_OK);
	assert_int_equal(reply->code, ONECARD__V1__CODE__OK);
	onecard_reply_free(reply);
	onecard_close(conn);
}

/*
 * onecard-bench --failover under load: a broker killed mid-run, every
 * connection it had moves to the other, and the report says so; --acked
 * lists every enrollment answered OK. (Whether an acknowledged write
 * survives needs one registry behind both: bench/failover.sh, PostgreSQL.)
 */
static void
the_bench_carries_on_on_the_other_broker(void **state)
{
	char cmd[2048], acked[320], line[64];
	long lines = 0;
	FILE *f;
	int status;

	(void)state;
	assert_int_equal(harness_restart(&h, NULL), 0);
	snprintf(acked, sizeof acked, "%s/acked.txt", h.dir);
	snprintf(cmd, sizeof cmd,
	    "(sleep 1; kill -KILL %d) & "
	    "onecard-bench --broker '%s,%s' --op enroll -c 8 -d 3 "
	    "--failover --acked '%s' --quiet",
	    (int)h.pid, h.addr, b_addr, acked);
	status = run("XC001", "%s", cmd);
	if (status != 0)
		fprintf(stderr, "%s%s", out, err);
	assert_int_equal(status, 0);
	h.pid = 0; /* killed */
	assert_non_null(strstr(out, "connections lost"));
	assert_null(strstr(out, "failover  0 connections lost"));
	assert_non_null(strstr(out, "connected again"));
	assert_non_null(f = fopen(acked, "r"));
	while (fgets(line, sizeof line, f) != NULL)
		lines++;
	fclose(f);
	assert_true(lines > 0);
	snprintf(line, sizeof line, "acked     %ld enrollments", lines);
	assert_non_null(strstr(out, line));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(connect_skips_a_broker_that_does_not_answer),
	    cmocka_unit_test(a_malformed_list_is_refused),
	    cmocka_unit_test(unavailable_moves_the_request_to_the_next_broker),
	    cmocka_unit_test(a_lost_write_reply_is_outcome_unknown),
	    cmocka_unit_test(
		the_async_connect_takes_the_first_broker_that_answers),
	    /* Last: they kill the harness's broker. */
	    cmocka_unit_test(
		a_killed_broker_leaves_the_connection_on_the_other),
	    cmocka_unit_test(the_bench_carries_on_on_the_other_broker),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
