/*
 * test_client.c: libonecard against a real onecardd over mutual TLS.
 *
 * Proves what callers rely on: the broker's certificate and name are
 * checked, blocking calls and pipelined requests get their own replies in
 * order, the async API calls every callback once, timeouts and refused
 * connections fail fast with the right code, and a reply with the wrong id
 * (from a fake broker in this file) is a protocol error. Also the lean
 * paths: raw replies, requests sent already encoded, one TLS context shared
 * per configuration and TLS sessions resumed on reconnect.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "harness.h"
#include "wire.h"

static struct harness h;

/* A valid cn-id for a birth date and sequence number (odd: male). */
static void
make_cn_id(char out[19], const char *yyyymmdd, int seq)
{
	static const int w[17] = {
	    7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
	static const char check[] = "10X98765432";
	int i, sum = 0;

	snprintf(out, 19, "110105%.8s%03d", yyyymmdd, seq % 1000);
	for (i = 0; i < 17; i++)
		sum += (out[i] - '0') * w[i];
	out[17] = check[sum % 11];
	out[18] = '\0';
}

/* Fill req as a lookup of domain=value. */
static void
set_lookup(Onecard__V1__Request *req, Onecard__V1__Lookup *lookup,
    Onecard__V1__Identifier *id, const char *domain, const char *value)
{
	onecard__v1__request__init(req);
	onecard__v1__lookup__init(lookup);
	onecard__v1__identifier__init(id);
	id->domain = (char *)domain;
	id->value = (char *)value;
	lookup->identifier = id;
	req->op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
	req->lookup = lookup;
}

/* Fill req as a ping. */
static void
set_ping(Onecard__V1__Request *req, Onecard__V1__Ping *ping)
{
	onecard__v1__request__init(req);
	onecard__v1__ping__init(ping);
	req->op_case = ONECARD__V1__REQUEST__OP_PING;
	req->ping = ping;
}

static int
group_setup(void **state)
{
	static const char *const codes[] = {"XC001", "XC002", NULL};

	if (harness_start(&h, codes, NULL) == -1)
		return -1;
	/* A CN the CA signed but the registry does not know. */
	static const char *const strangers[] = {"stranger", NULL};
	return harness_certs(&h, strangers);
}

static int
group_teardown(void **state)
{
	harness_cleanup(&h);
	return 0;
}

static void
connect_with_right_certs_answers_ping(void **state)
{
	Onecard__V1__Request req;
	Onecard__V1__Ping ping;
	Onecard__V1__Reply *reply;
	struct onecard_conn *conn;

	assert_int_equal(harness_connect(&h, "XC001", &conn), ONECARD_OK);
	set_ping(&req, &ping);
	assert_int_equal(onecard_call(conn, &req, &reply), ONECARD_OK);
	assert_int_not_equal(req.id, 0); /* the library picked one */
	assert_int_equal(reply->id, req.id);
	assert_int_equal(reply->code, ONECARD__V1__CODE__OK);
	assert_int_equal(reply->result_case, ONECARD__V1__REPLY__RESULT_PONG);
	onecard_reply_free(reply);
	assert_int_equal(onecard_pending(conn), 0);
	onecard_close(conn);
}

static void
broker_name_in_certificate_is_accepted(void **state)
{
	struct onecard_options opt;
	struct onecard_conn *conn;
	char addr[64], err[512];

	/* localhost may resolve to ::1 first, where nobody listens: the
	 * library must go on to 127.0.0.1. */
	snprintf(addr, sizeof addr, "localhost:%d", h.port);
	harness_options(&h, "XC001", &opt);
	opt.broker = addr;
	assert_int_equal(
	    onecard_connect(&opt, &conn, err, sizeof err), ONECARD_OK);
	onecard_close(conn);
}

static void
server_name_mismatch_is_refused(void **state)
{
	struct onecard_options opt;
	struct onecard_conn *conn = (void *)1;
	char err[512];

	harness_options(&h, "XC001", &opt);
	opt.server_name = "broker.elsewhere.example";
	assert_int_equal(
	    onecard_connect(&opt, &conn, err, sizeof err), ONECARD_ETLS);
	assert_null(conn);
	assert_non_null(strstr(err, "certificate"));
}

static void
broker_signed_by_another_ca_is_refused(void **state)
{
	struct onecard_options opt;
	struct onecard_conn *conn;
	char other[512], ca[600], err[512];

	/* A second PKI: its CA did not sign our broker. */
	snprintf(other, sizeof other, "%s/other-pki", h.dir);
	snprintf(ca, sizeof ca,
	    "/bin/sh %s/certs/mkcerts.sh -d %s >/dev/null 2>&1",
	    ONECARD_SOURCE_DIR, other);
	assert_int_equal(system(ca), 0);
	snprintf(ca, sizeof ca, "%s/ca.pem", other);
	harness_options(&h, "XC001", &opt);
	opt.ca = ca;
	assert_int_equal(
	    onecard_connect(&opt, &conn, err, sizeof err), ONECARD_ETLS);
	assert_non_null(strstr(err, "certificate"));
}

static void
missing_key_file_is_invalid_argument(void **state)
{
	struct onecard_options opt;
	struct onecard_conn *conn;
	char err[512];

	harness_options(&h, "XC001", &opt);
	opt.key = "/nonexistent/XC001.key";
	assert_int_equal(
	    onecard_connect(&opt, &conn, err, sizeof err), ONECARD_EINVAL);
	assert_non_null(strstr(err, "/nonexistent/XC001.key"));
}

static void
unknown_cn_gets_unauthenticated(void **state)
{
	Onecard__V1__Request req;
	Onecard__V1__Ping ping;
	Onecard__V1__Reply *reply = NULL;
	struct onecard_conn *conn;
	int r;

	assert_int_equal(harness_connect(&h, "stranger", &conn), ONECARD_OK);
	set_ping(&req, &ping);
	r = onecard_call(conn, &req, &reply);
	/* The broker answers id 0 UNAUTHENTICATED, then closes. */
	if (r == ONECARD_OK) {
		assert_int_equal(reply->id, 0);
		assert_int_equal(
		    reply->code, ONECARD__V1__CODE__UNAUTHENTICATED);
		onecard_reply_free(reply);
	} else {
		assert_int_equal(r, ONECARD_ECLOSED);
	}
	onecard_close(conn);
}

static void
blocking_enroll_then_lookup_finds_same_patient(void **state)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Enroll enroll = ONECARD__V1__ENROLL__INIT;
	Onecard__V1__Demographics demo = ONECARD__V1__DEMOGRAPHICS__INIT;
	Onecard__V1__Identifier cnid = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Identifier mrn = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Identifier *ids[] = {&cnid, &mrn};
	Onecard__V1__Lookup lookup;
	Onecard__V1__Identifier lid;
	Onecard__V1__Reply *reply;
	struct onecard_conn *conn;
	char number[19], pid[128];

	make_cn_id(number, "19800101", 11);
	cnid.domain = "cn-id";
	cnid.value = number;
	mrn.domain = "hosp:XC001";
	mrn.value = "MRN-BLOCK-1";
	demo.name = "Li Lei";
	demo.sex = ONECARD__V1__SEX__SEX_MALE;
	demo.birth_date = "1980-01-01";
	enroll.demographics = &demo;
	enroll.n_identifiers = 2;
	enroll.identifiers = ids;
	req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
	req.enroll = &enroll;

	assert_int_equal(harness_connect(&h, "XC001", &conn), ONECARD_OK);
	assert_int_equal(onecard_call(conn, &req, &reply), ONECARD_OK);
	assert_int_equal(reply->code, ONECARD__V1__CODE__OK);
	assert_int_equal(
	    reply->result_case, ONECARD__V1__REPLY__RESULT_ENROLLED);
	assert_true(reply->enrolled->created);
	snprintf(pid, sizeof pid, "%s", reply->enrolled->patient->patient_id);
	assert_true(pid[0] != '\0');
	onecard_reply_free(reply);

	/* Another hospital finds the same patient by the resident number. */
	onecard_close(conn);
	assert_int_equal(harness_connect(&h, "XC002", &conn), ONECARD_OK);
	set_lookup(&req, &lookup, &lid, "cn-id", number);
	assert_int_equal(onecard_call(conn, &req, &reply), ONECARD_OK);
	assert_int_equal(reply->code, ONECARD__V1__CODE__OK);
	assert_string_equal(reply->patient->patient_id, pid);
	assert_string_equal(reply->patient->demographics->name, "Li Lei");
	assert_int_equal(reply->patient->n_identifiers, 2);
	onecard_reply_free(reply);

	set_lookup(&req, &lookup, &lid, "cn-ssc", "NOSUCHCARD1");
	assert_int_equal(onecard_call(conn, &req, &reply), ONECARD_OK);
	assert_int_equal(reply->code, ONECARD__V1__CODE__NOT_FOUND);
	onecard_reply_free(reply);
	onecard_close(conn);
}

#define PIPELINE_N 500

static void
pipelined_500_requests_come_back_in_order(void **state)
{
	static Onecard__V1__Request req[PIPELINE_N];
	static Onecard__V1__Enroll enroll[PIPELINE_N];
	static Onecard__V1__Lookup lookup[PIPELINE_N];
	static Onecard__V1__Identifier id[PIPELINE_N];
	static Onecard__V1__Identifier *idp[PIPELINE_N];
	static char value[PIPELINE_N][32];
	Onecard__V1__Reply *reply;
	struct onecard_conn *conn;
	int i, half = PIPELINE_N / 2;

	assert_int_equal(harness_connect(&h, "XC001", &conn), ONECARD_OK);
	/* First half enrolls MRN-P<i>; second half looks each one up. */
	for (i = 0; i < PIPELINE_N; i++) {
		snprintf(value[i], sizeof value[i], "MRN-P%d", i % half);
		if (i < half) {
			onecard__v1__request__init(&req[i]);
			onecard__v1__enroll__init(&enroll[i]);
			onecard__v1__identifier__init(&id[i]);
			id[i].domain = "hosp:XC001";
			id[i].value = value[i];
			idp[i] = &id[i];
			enroll[i].n_identifiers = 1;
			enroll[i].identifiers = &idp[i];
			req[i].op_case = ONECARD__V1__REQUEST__OP_ENROLL;
			req[i].enroll = &enroll[i];
		} else {
			set_lookup(&req[i], &lookup[i], &id[i], "hosp:XC001",
			    value[i]);
		}
		assert_int_equal(onecard_send(conn, &req[i]), ONECARD_OK);
	}
	assert_int_equal(onecard_pending(conn), PIPELINE_N);
	assert_int_equal(onecard_flush(conn), ONECARD_OK);
	for (i = 0; i < PIPELINE_N; i++) {
		assert_int_equal(onecard_recv(conn, &reply), ONECARD_OK);
		assert_int_equal(reply->id, req[i].id);
		assert_int_equal(reply->code, ONECARD__V1__CODE__OK);
		if (i >= half) {
			assert_int_equal(reply->patient->n_identifiers, 1);
			assert_string_equal(
			    reply->patient->identifiers[0]->value, value[i]);
		}
		onecard_reply_free(reply);
	}
	assert_int_equal(onecard_pending(conn), 0);
	onecard_close(conn);
}

static void
pipelining_100000_pings_does_not_stall(void **state)
{
	Onecard__V1__Request req;
	Onecard__V1__Ping ping;
	Onecard__V1__Reply *reply;
	struct onecard_conn *conn;
	uint64_t first = 0;
	int i, n = 100000;

	/* Far more than the socket buffers hold both ways: flush must take
	 * replies in while it writes, or client and broker wait on each
	 * other. */
	assert_int_equal(harness_connect(&h, "XC002", &conn), ONECARD_OK);
	for (i = 0; i < n; i++) {
		set_ping(&req, &ping);
		assert_int_equal(onecard_send(conn, &req), ONECARD_OK);
		if (i == 0)
			first = req.id;
	}
	assert_int_equal(onecard_flush(conn), ONECARD_OK);
	for (i = 0; i < n; i++) {
		assert_int_equal(onecard_recv(conn, &reply), ONECARD_OK);
		assert_int_equal(reply->id, first + i);
		onecard_reply_free(reply);
	}
	assert_int_equal(onecard_pending(conn), 0);
	onecard_close(conn);
}

struct async_result {
	struct event_base *base;
	struct onecard_async *ac;
	int connect_err;
	int connected_calls;
	int order[8];
	int n;
	int errs[8];
	uint64_t ids[8];
	int codes[8];
};

struct async_tag {
	struct async_result *res;
	int index;
};

/* Record one reply callback. */
static void
async_reply(const Onecard__V1__Reply *reply, int err, void *arg)
{
	struct async_tag *tag = arg;
	struct async_result *res = tag->res;

	res->order[res->n] = tag->index;
	res->errs[res->n] = err;
	res->ids[res->n] = reply != NULL ? reply->id : 0;
	res->codes[res->n] = reply != NULL ? (int)reply->code : -1;
	res->n++;
	if (res->n == 3)
		event_base_loopexit(res->base, NULL);
}

/* Record the connect callback; stop the loop on failure. */
static void
async_connected(struct onecard_async *ac, int err, void *arg)
{
	struct async_result *res = arg;

	res->connect_err = err;
	res->connected_calls++;
	if (err != ONECARD_OK)
		event_base_loopexit(res->base, NULL);
}

static void
async_round_trip_calls_back_in_order(void **state)
{
	struct async_result res;
	struct async_tag tags[3];
	struct onecard_options opt;
	Onecard__V1__Request req[3];
	Onecard__V1__Ping ping[2];
	Onecard__V1__Lookup lookup;
	Onecard__V1__Identifier id;
	struct timeval limit = {10, 0};
	int i;

	memset(&res, 0, sizeof res);
	res.base = event_base_new();
	res.connect_err = 99;
	harness_options(&h, "XC002", &opt);
	res.ac = onecard_async_connect(res.base, &opt, async_connected, &res);
	assert_non_null(res.ac);
	/* Requests may be queued before the handshake is done. */
	set_ping(&req[0], &ping[0]);
	set_lookup(&req[1], &lookup, &id, "hosp:XC001", "MRN-BLOCK-1");
	set_ping(&req[2], &ping[1]);
	for (i = 0; i < 3; i++) {
		tags[i].res = &res;
		tags[i].index = i;
		assert_int_equal(
		    onecard_async_send(res.ac, &req[i], async_reply, &tags[i]),
		    ONECARD_OK);
	}
	assert_int_equal(onecard_async_pending(res.ac), 3);
	event_base_loopexit(res.base, &limit);
	event_base_dispatch(res.base);

	assert_int_equal(res.connected_calls, 1);
	assert_int_equal(res.connect_err, ONECARD_OK);
	assert_int_equal(res.n, 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(res.order[i], i);
		assert_int_equal(res.errs[i], ONECARD_OK);
		assert_int_equal(res.ids[i], req[i].id);
		assert_int_equal(res.codes[i], ONECARD__V1__CODE__OK);
	}
	assert_int_equal(onecard_async_pending(res.ac), 0);
	onecard_async_close(res.ac);
	event_base_free(res.base);
}

/* A port nothing listens on. */
static int
closed_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	int fd, port;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)&sin, sizeof sin);
	getsockname(fd, (struct sockaddr *)&sin, &len);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static void
async_failure_calls_every_callback_once(void **state)
{
	struct async_result res;
	struct async_tag tags[3];
	struct onecard_options opt;
	Onecard__V1__Request req[3];
	Onecard__V1__Ping ping[3];
	struct timeval limit = {10, 0};
	char addr[64];
	int i;

	memset(&res, 0, sizeof res);
	res.base = event_base_new();
	snprintf(addr, sizeof addr, "127.0.0.1:%d", closed_port());
	harness_options(&h, "XC002", &opt);
	opt.broker = addr;
	res.ac = onecard_async_connect(res.base, &opt, async_connected, &res);
	assert_non_null(res.ac);
	for (i = 0; i < 3; i++) {
		tags[i].res = &res;
		tags[i].index = i;
		set_ping(&req[i], &ping[i]);
		assert_int_equal(
		    onecard_async_send(res.ac, &req[i], async_reply, &tags[i]),
		    ONECARD_OK);
	}
	event_base_loopexit(res.base, &limit);
	event_base_dispatch(res.base);

	assert_int_equal(res.connected_calls, 1);
	assert_int_equal(res.connect_err, ONECARD_ECONNECT);
	assert_non_null(strstr(onecard_async_last_error(res.ac), "refused"));
	assert_int_equal(res.n, 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(res.order[i], i);
		assert_int_equal(res.errs[i], ONECARD_ECONNECT);
	}
	onecard_async_close(res.ac);
	/* Nothing is called again after close. */
	event_base_loop(res.base, EVLOOP_NONBLOCK);
	assert_int_equal(res.n, 3);
	assert_int_equal(res.connected_calls, 1);
	event_base_free(res.base);
}

static void
async_server_name_mismatch_is_etls(void **state)
{
	struct async_result res;
	struct async_tag tag;
	struct onecard_options opt;
	Onecard__V1__Request req;
	Onecard__V1__Ping ping;
	struct timeval limit = {10, 0};

	memset(&res, 0, sizeof res);
	res.base = event_base_new();
	harness_options(&h, "XC002", &opt);
	opt.server_name = "broker.elsewhere.example";
	res.ac = onecard_async_connect(res.base, &opt, async_connected, &res);
	tag.res = &res;
	tag.index = 0;
	set_ping(&req, &ping);
	assert_int_equal(
	    onecard_async_send(res.ac, &req, async_reply, &tag), ONECARD_OK);
	event_base_loopexit(res.base, &limit);
	event_base_dispatch(res.base);
	assert_int_equal(res.connected_calls, 1);
	assert_int_equal(res.connect_err, ONECARD_ETLS);
	assert_non_null(
	    strstr(onecard_async_last_error(res.ac), "certificate"));
	assert_int_equal(res.n, 1);
	assert_int_equal(res.errs[0], ONECARD_ETLS);
	onecard_async_close(res.ac);
	event_base_free(res.base);
}

static void
async_close_fails_outstanding_callbacks(void **state)
{
	struct async_result res;
	struct async_tag tag;
	struct onecard_options opt;
	Onecard__V1__Request req;
	Onecard__V1__Ping ping;

	memset(&res, 0, sizeof res);
	res.base = event_base_new();
	harness_options(&h, "XC002", &opt);
	res.ac = onecard_async_connect(res.base, &opt, async_connected, &res);
	tag.res = &res;
	tag.index = 0;
	set_ping(&req, &ping);
	assert_int_equal(
	    onecard_async_send(res.ac, &req, async_reply, &tag), ONECARD_OK);
	onecard_async_close(res.ac);
	assert_int_equal(res.connected_calls, 1);
	assert_int_equal(res.connect_err, ONECARD_ECLOSED);
	assert_int_equal(res.n, 1);
	assert_int_equal(res.errs[0], ONECARD_ECLOSED);
	event_base_loop(res.base, EVLOOP_NONBLOCK);
	assert_int_equal(res.n, 1);
	event_base_free(res.base);
}

static void
call_timeout_gives_etimedout(void **state)
{
	struct onecard_options opt;
	struct onecard_conn *conn;
	Onecard__V1__Request req;
	Onecard__V1__Ping ping;
	Onecard__V1__Reply *reply;
	char err[512];
	long long t0, elapsed;
	int r;

	harness_options(&h, "XC001", &opt);
	opt.call_timeout_ms = 300;
	assert_int_equal(
	    onecard_connect(&opt, &conn, err, sizeof err), ONECARD_OK);
	/* A broker that stops answering. */
	assert_int_equal(harness_freeze(&h), 0);
	set_ping(&req, &ping);
	t0 = harness_now_ms();
	r = onecard_call(conn, &req, &reply);
	elapsed = harness_now_ms() - t0;
	harness_thaw(&h);
	assert_int_equal(r, ONECARD_ETIMEDOUT);
	assert_true(elapsed >= 250 && elapsed < 2000);
	assert_non_null(strstr(onecard_last_error(conn), "no reply"));
	/* The connection is spent: later calls say so at once. */
	assert_int_equal(onecard_call(conn, &req, &reply), ONECARD_ETIMEDOUT);
	onecard_close(conn);
}

static void
async_reply_timeout_fails_waiting_callbacks(void **state)
{
	struct async_result res;
	struct async_tag tag;
	struct onecard_options opt;
	Onecard__V1__Request req;
	Onecard__V1__Ping ping;
	struct timeval limit = {10, 0};
	long long t0;

	memset(&res, 0, sizeof res);
	res.base = event_base_new();
	harness_options(&h, "XC002", &opt);
	opt.call_timeout_ms = 300;
	res.ac = onecard_async_connect(res.base, &opt, async_connected, &res);
	/* Connect first, then freeze the broker and ask. */
	while (res.connected_calls == 0)
		event_base_loop(res.base, EVLOOP_ONCE);
	assert_int_equal(res.connect_err, ONECARD_OK);
	assert_int_equal(harness_freeze(&h), 0);
	tag.res = &res;
	tag.index = 0;
	set_ping(&req, &ping);
	assert_int_equal(
	    onecard_async_send(res.ac, &req, async_reply, &tag), ONECARD_OK);
	t0 = harness_now_ms();
	event_base_loopexit(res.base, &limit);
	while (res.n == 0 && event_base_loop(res.base, EVLOOP_ONCE) == 0)
		;
	harness_thaw(&h);
	assert_int_equal(res.n, 1);
	assert_int_equal(res.errs[0], ONECARD_ETIMEDOUT);
	assert_true(harness_now_ms() - t0 < 2000);
	onecard_async_close(res.ac);
	event_base_free(res.base);
}

static void
broker_restart_keeps_enrolled_patients(void **state)
{
	Onecard__V1__Request req;
	Onecard__V1__Lookup lookup;
	Onecard__V1__Identifier id;
	Onecard__V1__Reply *reply;
	struct onecard_conn *conn;

	/* A graceful stop exits 0; the registry survives a restart. */
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	assert_int_equal(h.pid, 0);
	assert_int_equal(harness_restart(&h, NULL), 0);
	assert_true(h.port > 0);
	assert_int_equal(harness_connect(&h, "XC002", &conn), ONECARD_OK);
	set_lookup(&req, &lookup, &id, "hosp:XC001", "MRN-BLOCK-1");
	assert_int_equal(onecard_call(conn, &req, &reply), ONECARD_OK);
	assert_int_equal(reply->code, ONECARD__V1__CODE__OK);
	assert_string_equal(reply->patient->demographics->name, "Li Lei");
	onecard_reply_free(reply);
	onecard_close(conn);
}

static void
closed_port_gives_econnect_quickly(void **state)
{
	struct onecard_options opt;
	struct onecard_conn *conn;
	char addr[64], err[512];
	long long t0;

	snprintf(addr, sizeof addr, "127.0.0.1:%d", closed_port());
	harness_options(&h, "XC001", &opt);
	opt.broker = addr;
	t0 = harness_now_ms();
	assert_int_equal(
	    onecard_connect(&opt, &conn, err, sizeof err), ONECARD_ECONNECT);
	assert_true(harness_now_ms() - t0 < 1000);
	assert_non_null(strstr(err, "refused"));
}

/* A TCP listener nobody accepts on: connects succeed, TLS never answers.
 * Returns the listening fd; *port is set. */
static int
silent_listener(int *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(listen(fd, 8), 0);
	getsockname(fd, (struct sockaddr *)&sin, &len);
	*port = ntohs(sin.sin_port);
	return fd;
}

static void
silent_server_gives_handshake_timeout(void **state)
{
	struct onecard_options opt;
	struct onecard_conn *conn;
	char addr[64], err[512];
	long long t0, elapsed;
	int lfd, port, r;

	lfd = silent_listener(&port);
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	harness_options(&h, "XC001", &opt);
	opt.broker = addr;
	opt.connect_timeout_ms = 300;
	t0 = harness_now_ms();
	r = onecard_connect(&opt, &conn, err, sizeof err);
	elapsed = harness_now_ms() - t0;
	close(lfd);
	assert_int_equal(r, ONECARD_ETIMEDOUT);
	assert_true(elapsed >= 250 && elapsed < 2000);
	assert_non_null(strstr(err, "timed out"));
}

static void
async_silent_server_gives_handshake_timeout(void **state)
{
	struct async_result res;
	struct onecard_options opt;
	struct timeval limit = {10, 0};
	char addr[64];
	long long t0;
	int lfd, port;

	lfd = silent_listener(&port);
	memset(&res, 0, sizeof res);
	res.base = event_base_new();
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	harness_options(&h, "XC001", &opt);
	opt.broker = addr;
	opt.connect_timeout_ms = 300;
	t0 = harness_now_ms();
	res.ac = onecard_async_connect(res.base, &opt, async_connected, &res);
	event_base_loopexit(res.base, &limit);
	event_base_dispatch(res.base);
	close(lfd);
	assert_int_equal(res.connected_calls, 1);
	assert_int_equal(res.connect_err, ONECARD_ETIMEDOUT);
	assert_true(harness_now_ms() - t0 < 2000);
	onecard_async_close(res.ac);
	event_base_free(res.base);
}

static void
bad_broker_address_is_invalid_argument(void **state)
{
	struct onecard_options opt;
	struct onecard_conn *conn;
	char err[512];

	static const char *const bad[] = {"127.0.0.1", "127.0.0.1:", ":7443",
	    "::1:7443", "[::1]7443", "127.0.0.1:99999", "127.0.0.1:0",
	    "127.0.0.1:7443x", "127.0.0.1:4294967297", "127.0.0.1:000007443",
	    NULL};
	const char *const *b;

	harness_options(&h, "XC001", &opt);
	for (b = bad; *b != NULL; b++) {
		opt.broker = *b;
		assert_int_equal(onecard_connect(&opt, &conn, err, sizeof err),
		    ONECARD_EINVAL);
		assert_non_null(strstr(err, "HOST:PORT"));
	}
}

/* Connect to the fake broker f as XC001. */
static struct onecard_conn *
fake_connect(struct harness_fake *f)
{
	struct onecard_options opt;
	struct onecard_conn *conn;
	char err[512];

	harness_options(&h, "XC001", &opt);
	opt.broker = f->addr;
	assert_int_equal(
	    onecard_connect(&opt, &conn, err, sizeof err), ONECARD_OK);
	return conn;
}

static void
reply_with_wrong_id_is_protocol_error(void **state)
{
	struct harness_fake f = {.reply_id = 777};
	struct onecard_conn *conn;
	Onecard__V1__Request req;
	Onecard__V1__Ping ping;
	Onecard__V1__Reply *reply;

	assert_int_equal(harness_fake_start(&h, &f), 0);
	conn = fake_connect(&f);
	set_ping(&req, &ping);
	req.id = 5;
	assert_int_equal(onecard_call(conn, &req, &reply), ONECARD_EPROTO);
	assert_null(reply);
	assert_non_null(strstr(onecard_last_error(conn), "777"));
	/* Broken for good: the next call fails the same way at once. */
	assert_int_equal(onecard_call(conn, &req, &reply), ONECARD_EPROTO);
	onecard_close(conn);
	harness_fake_stop(&f);
	assert_int_equal(f.requests, 1);
}

static void
reply_with_id_zero_reaches_the_caller(void **state)
{
	struct harness_fake f = {.reply_id = 0,
	    .code = ONECARD__V1__CODE__UNAUTHENTICATED,
	    .message = "who are you?"};
	struct onecard_conn *conn;
	Onecard__V1__Request req;
	Onecard__V1__Ping ping;
	Onecard__V1__Reply *reply;

	assert_int_equal(harness_fake_start(&h, &f), 0);
	conn = fake_connect(&f);
	set_ping(&req, &ping);
	assert_int_equal(onecard_call(conn, &req, &reply), ONECARD_OK);
	assert_int_equal(reply->id, 0);
	assert_int_equal(reply->code, ONECARD__V1__CODE__UNAUTHENTICATED);
	assert_string_equal(reply->message, "who are you?");
	onecard_reply_free(reply);
	/* The request itself is still owed a reply. */
	assert_int_equal(onecard_pending(conn), 1);
	onecard_close(conn);
	harness_fake_stop(&f);
}

static void
close_sends_close_notify(void **state)
{
	struct harness_fake f = {.reply_id = -1};
	struct onecard_conn *conn;
	Onecard__V1__Request req;
	Onecard__V1__Ping ping;
	Onecard__V1__Reply *reply;

	assert_int_equal(harness_fake_start(&h, &f), 0);
	conn = fake_connect(&f);
	set_ping(&req, &ping);
	assert_int_equal(onecard_call(conn, &req, &reply), ONECARD_OK);
	assert_int_equal(reply->id, req.id);
	onecard_reply_free(reply);
	onecard_close(conn);
	harness_fake_stop(&f);
	assert_int_equal(f.close_notifies, 1);
}

static void
writing_to_hung_up_broker_is_an_error_not_sigpipe(void **state)
{
	struct harness_fake f = {.hangup = 1};
	Onecard__V1__Request req;
	Onecard__V1__Ping ping;
	struct onecard_conn *conn;
	int i, j, r = ONECARD_OK;

	/* The default SIGPIPE action would kill this test. */
	signal(SIGPIPE, SIG_DFL);
	assert_int_equal(harness_fake_start(&h, &f), 0);
	conn = fake_connect(&f);
	for (i = 0; i < 50 && r == ONECARD_OK; i++) {
		for (j = 0; j < 100; j++) {
			set_ping(&req, &ping);
			assert_int_equal(onecard_send(conn, &req), ONECARD_OK);
		}
		r = onecard_flush(conn);
		usleep(20000);
	}
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(r, ONECARD_ECLOSED);
	onecard_close(conn);
	harness_fake_stop(&f);
}

/* What the async pipelining test counts. */
struct burst {
	struct event_base *base;
	struct onecard_async *ac;
	uint64_t next_id; /* the id the next reply must carry */
	int got, bad, want, refill;
	Onecard__V1__Request req;
	Onecard__V1__Ping ping;
};

/* Check a reply's place in the order; send one more while refill lasts. */
static void
burst_reply(const struct onecard_raw_reply *reply, int err, void *arg)
{
	struct burst *b = arg;

	if (err != ONECARD_OK || reply->id != b->next_id ||
	    reply->code != ONECARD__V1__CODE__OK)
		b->bad++;
	b->next_id++;
	b->got++;
	if (b->refill > 0) {
		b->refill--;
		b->req.id = 0;
		if (onecard_async_send_raw(b->ac, &b->req, burst_reply, b) !=
		    ONECARD_OK)
			b->bad++;
	}
	if (b->got == b->want)
		event_base_loopexit(b->base, NULL);
}

static void
async_pipelining_100000_pings_comes_back_in_order(void **state)
{
	struct onecard_options opt;
	struct timeval limit = {120, 0};
	struct burst b;

	/* 100,000 queued at once (about 1 MB: the socket blocks the writes
	 * on the way), then 10,000 more sent from the reply callbacks. */
	memset(&b, 0, sizeof b);
	b.base = event_base_new();
	harness_options(&h, "XC001", &opt);
	b.ac = onecard_async_connect(b.base, &opt, NULL, NULL);
	assert_non_null(b.ac);
	set_ping(&b.req, &b.ping);
	b.next_id = 1;
	b.want = 110000;
	for (int i = 0; i < 100000; i++) {
		b.req.id = 0;
		assert_int_equal(
		    onecard_async_send_raw(b.ac, &b.req, burst_reply, &b),
		    ONECARD_OK);
	}
	b.refill = 10000;
	event_base_loopexit(b.base, &limit);
	event_base_dispatch(b.base);
	assert_int_equal(b.got, b.want);
	assert_int_equal(b.bad, 0);
	assert_int_equal(onecard_async_pending(b.ac), 0);
	onecard_async_close(b.ac);
	event_base_free(b.base);
}

/* Close the connection from inside the first reply's callback. */
static void
raw_reply_then_close(const struct onecard_raw_reply *reply, int err, void *arg)
{
	struct burst *b = arg;

	b->got++;
	if (b->got == 1) {
		if (err != ONECARD_OK || reply->code != ONECARD__V1__CODE__OK)
			b->bad++;
		onecard_async_close(b->ac); /* freed once we return */
		event_base_loopexit(b->base, NULL);
	} else if (err != ONECARD_ECLOSED)
		b->bad++; /* the rest are failed by the close */
}

static void
async_close_inside_reply_callback_fails_the_rest(void **state)
{
	struct onecard_options opt;
	struct timeval limit = {10, 0};
	struct burst b;

	memset(&b, 0, sizeof b);
	b.base = event_base_new();
	harness_options(&h, "XC001", &opt);
	b.ac = onecard_async_connect(b.base, &opt, NULL, NULL);
	assert_non_null(b.ac);
	set_ping(&b.req, &b.ping);
	for (int i = 0; i < 50; i++) {
		b.req.id = 0;
		assert_int_equal(onecard_async_send_raw(
				     b.ac, &b.req, raw_reply_then_close, &b),
		    ONECARD_OK);
	}
	event_base_loopexit(b.base, &limit);
	event_base_dispatch(b.base);
	assert_int_equal(b.got, 50);
	assert_int_equal(b.bad, 0);
	event_base_free(b.base);
}

/* What the raw-reply tests record. */
struct raw_result {
	struct event_base *base;
	int n, want;
	int errs[8];
	uint64_t ids[8];
	int codes[8];
	uint64_t recv_ns[8];
	Onecard__V1__Reply *decoded[8]; /* each body, decoded by the test */
};

/* Record one raw reply and decode its body as a vendor would. */
static void
raw_reply(const struct onecard_raw_reply *reply, int err, void *arg)
{
	struct raw_result *res = arg;
	int i = res->n++;

	res->errs[i] = err;
	if (reply != NULL) {
		res->ids[i] = reply->id;
		res->codes[i] = reply->code;
		res->recv_ns[i] = reply->recv_ns;
		res->decoded[i] =
		    onecard__v1__reply__unpack(NULL, reply->len, reply->body);
	}
	if (res->n == res->want)
		event_base_loopexit(res->base, NULL);
}

/* CLOCK_MONOTONIC now, in nanoseconds. */
static uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Connect as cn on a fresh base; the handle, or a failed test. */
static struct onecard_async *
raw_connect(struct raw_result *res, const char *cn)
{
	struct onecard_options opt;
	struct onecard_async *ac;

	memset(res, 0, sizeof *res);
	res->base = event_base_new();
	assert_non_null(res->base);
	harness_options(&h, cn, &opt);
	ac = onecard_async_connect(res->base, &opt, NULL, NULL);
	assert_non_null(ac);
	return ac;
}

/* Run the loop until every awaited reply came (10 s at most). */
static void
raw_wait(struct raw_result *res, int want)
{
	struct timeval limit = {10, 0};

	res->want = want;
	event_base_loopexit(res->base, &limit);
	event_base_dispatch(res->base);
	assert_int_equal(res->n, want);
}

static void
raw_done(struct raw_result *res, struct onecard_async *ac)
{
	for (int i = 0; i < res->n; i++)
		if (res->decoded[i] != NULL)
			onecard__v1__reply__free_unpacked(
			    res->decoded[i], NULL);
	onecard_async_close(ac);
	event_base_free(res->base);
}

static void
async_raw_reply_gives_id_code_and_whole_body(void **state)
{
	struct raw_result res;
	struct onecard_async *ac = raw_connect(&res, "XC001");
	Onecard__V1__Request req[2];
	Onecard__V1__Ping ping;
	Onecard__V1__Lookup lookup;
	Onecard__V1__Identifier id;
	char cnid[19];
	uint64_t before = mono_ns();

	make_cn_id(cnid, "19700101", 998);
	set_ping(&req[0], &ping);
	set_lookup(&req[1], &lookup, &id, "cn-id", cnid);
	for (int i = 0; i < 2; i++)
		assert_int_equal(
		    onecard_async_send_raw(ac, &req[i], raw_reply, &res),
		    ONECARD_OK);
	raw_wait(&res, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(res.errs[i], ONECARD_OK);
		assert_int_equal(res.ids[i], req[i].id);
		assert_true(res.recv_ns[i] >= before);
		assert_true(res.recv_ns[i] <= mono_ns());
		/* The body is the whole reply. */
		assert_non_null(res.decoded[i]);
		assert_int_equal(res.decoded[i]->id, req[i].id);
		assert_int_equal(res.decoded[i]->code, res.codes[i]);
	}
	assert_int_equal(res.codes[0], ONECARD__V1__CODE__OK);
	assert_int_equal(
	    res.decoded[0]->result_case, ONECARD__V1__REPLY__RESULT_PONG);
	assert_int_equal(res.codes[1], ONECARD__V1__CODE__NOT_FOUND);
	raw_done(&res, ac);
}

static void
async_encoded_request_gets_an_id_and_its_reply(void **state)
{
	struct raw_result res;
	struct onecard_async *ac = raw_connect(&res, "XC001");
	Onecard__V1__Request req, full;
	Onecard__V1__Ping ping;
	Onecard__V1__Lookup lookup;
	Onecard__V1__Identifier id;
	struct async_result ares;
	struct async_tag tag;
	uint8_t buf[128];
	uint64_t got[3] = {0, 0, 0};
	size_t n;

	/* One encoded lookup of hosp:XC001=MRN-BLOCK-1, sent three times. */
	set_lookup(&req, &lookup, &id, "hosp:XC001", "MRN-BLOCK-1");
	assert_int_equal(req.id, 0);
	n = protobuf_c_message_pack(&req.base, buf);
	assert_true(n > 0 && n < sizeof buf);
	assert_int_equal(
	    onecard_async_send_encoded(ac, buf, n, &got[0], raw_reply, &res),
	    ONECARD_OK);
	/* A decoded request in between keeps its place in the order. */
	memset(&ares, 0, sizeof ares);
	ares.base = res.base;
	tag.res = &ares;
	tag.index = 0;
	set_ping(&full, &ping);
	assert_int_equal(
	    onecard_async_send(ac, &full, async_reply, &tag), ONECARD_OK);
	assert_int_equal(
	    onecard_async_send_encoded(ac, buf, n, &got[1], raw_reply, &res),
	    ONECARD_OK);
	assert_int_equal(
	    onecard_async_send_encoded(ac, buf, n, &got[2], raw_reply, &res),
	    ONECARD_OK);
	assert_int_equal(onecard_async_pending(ac), 4);
	assert_true(got[0] != 0 && got[0] < full.id && full.id < got[1] &&
	    got[1] < got[2]);
	raw_wait(&res, 3);
	assert_int_equal(ares.n, 1);
	assert_int_equal(ares.codes[0], ONECARD__V1__CODE__OK);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(res.errs[i], ONECARD_OK);
		assert_int_equal(res.ids[i], got[i]);
		assert_non_null(res.decoded[i]);
		/* The broker saw the lookup: an answer, not a decode error. */
		assert_int_not_equal(
		    res.codes[i], ONECARD__V1__CODE__INVALID_ARGUMENT);
	}
	/* Nothing to send is refused, and so is a frame over max_frame. */
	assert_int_equal(
	    onecard_async_send_encoded(ac, buf, 0, NULL, raw_reply, &res),
	    ONECARD_EINVAL);
	assert_int_equal(onecard_async_pending(ac), 0);
	raw_done(&res, ac);
}

static void
async_encoded_request_over_max_frame_is_refused(void **state)
{
	struct onecard_options opt;
	struct event_base *base = event_base_new();
	struct onecard_async *ac;
	struct raw_result res;
	uint8_t buf[64];

	memset(buf, 0, sizeof buf);
	memset(&res, 0, sizeof res);
	harness_options(&h, "XC001", &opt);
	opt.max_frame = 32;
	ac = onecard_async_connect(base, &opt, NULL, NULL);
	assert_non_null(ac);
	/* 31 bytes and an id of 1 (2 bytes) make 33: one over. */
	assert_int_equal(
	    onecard_async_send_encoded(ac, buf, 31, NULL, raw_reply, &res),
	    ONECARD_EINVAL);
	assert_non_null(strstr(onecard_async_last_error(ac), "too large"));
	assert_int_equal(onecard_async_pending(ac), 0);
	assert_int_equal(
	    onecard_async_send_encoded(ac, buf, 30, NULL, raw_reply, &res),
	    ONECARD_OK);
	onecard_async_close(ac);
	assert_int_equal(res.n, 1);
	assert_int_equal(res.errs[0], ONECARD_ECLOSED);
	event_base_free(base);
}

/* Connect as cn with opt, ping, and say whether the session was resumed. */
static int
async_ping_resumed(struct onecard_options *opt)
{
	struct raw_result res;
	struct onecard_async *ac;
	Onecard__V1__Request req;
	Onecard__V1__Ping ping;
	int reused;

	memset(&res, 0, sizeof res);
	res.base = event_base_new();
	ac = onecard_async_connect(res.base, opt, NULL, NULL);
	assert_non_null(ac);
	set_ping(&req, &ping);
	assert_int_equal(
	    onecard_async_send_raw(ac, &req, raw_reply, &res), ONECARD_OK);
	raw_wait(&res, 1);
	assert_int_equal(res.errs[0], ONECARD_OK);
	assert_int_equal(res.codes[0], ONECARD__V1__CODE__OK);
	reused = onecard_async_session_reused(ac);
	raw_done(&res, ac);
	return reused;
}

static void
async_connections_share_one_tls_context(void **state)
{
	struct onecard_tls_stats st0, st1, st2;
	struct onecard_options opt;
	struct raw_result res;
	struct onecard_async *ac[6];
	Onecard__V1__Request req[6];
	Onecard__V1__Ping ping[6];

	onecard_tls_stats(&st0);
	memset(&res, 0, sizeof res);
	res.base = event_base_new();
	harness_options(&h, "XC002", &opt);
	for (int i = 0; i < 6; i++) {
		ac[i] = onecard_async_connect(res.base, &opt, NULL, NULL);
		assert_non_null(ac[i]);
		set_ping(&req[i], &ping[i]);
		assert_int_equal(
		    onecard_async_send_raw(ac[i], &req[i], raw_reply, &res),
		    ONECARD_OK);
	}
	raw_wait(&res, 6);
	onecard_tls_stats(&st1);
	/* At most one context built for six connections (none when an
	 * earlier test left one for these files). */
	assert_true(st1.contexts - st0.contexts <= 1);
	assert_true(st1.handshakes - st0.handshakes >= 6);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(res.errs[i], ONECARD_OK);
		onecard_async_close(ac[i]);
	}
	for (int i = 0; i < res.n; i++)
		onecard__v1__reply__free_unpacked(res.decoded[i], NULL);
	event_base_free(res.base);

	/* Another configuration (here the same files under another path) is
	 * another context. */
	{
		char cert[512], key[512], ca[512];

		snprintf(cert, sizeof cert, "%s/./XC002.pem", h.certs);
		snprintf(key, sizeof key, "%s/./XC002.key", h.certs);
		snprintf(ca, sizeof ca, "%s/./ca.pem", h.certs);
		opt.cert = cert;
		opt.key = key;
		opt.ca = ca;
		onecard_tls_stats(&st1);
		async_ping_resumed(&opt);
		onecard_tls_stats(&st2);
		assert_int_equal(st2.contexts - st1.contexts, 1);
	}
}

static void
async_reconnect_resumes_tls_session(void **state)
{
	struct onecard_tls_stats st0, st1;
	struct onecard_options opt;

	harness_options(&h, "XC001", &opt);
	/* The first may resume what an earlier test left; it leaves a
	 * session for the second either way. */
	async_ping_resumed(&opt);
	onecard_tls_stats(&st0);
	assert_int_equal(async_ping_resumed(&opt), 1);
	onecard_tls_stats(&st1);
	assert_int_equal(st1.resumed - st0.resumed, 1);
}

static void
blocking_reconnect_resumes_tls_session(void **state)
{
	Onecard__V1__Request req;
	Onecard__V1__Ping ping;
	Onecard__V1__Reply *reply;
	struct onecard_conn *conn;

	for (int i = 0; i < 2; i++) {
		assert_int_equal(
		    harness_connect(&h, "XC002", &conn), ONECARD_OK);
		/* A round trip also takes in TLS 1.3's tickets. */
		set_ping(&req, &ping);
		assert_int_equal(onecard_call(conn, &req, &reply), ONECARD_OK);
		onecard_reply_free(reply);
		if (i == 1)
			assert_int_equal(onecard_session_reused(conn), 1);
		onecard_close(conn);
	}
}

static void
session_is_not_offered_to_another_broker_name(void **state)
{
	struct async_result res;
	struct async_tag tag;
	struct onecard_options opt;
	Onecard__V1__Request req;
	Onecard__V1__Ping ping;
	struct timeval limit = {10, 0};

	/* A session for this broker is kept... */
	harness_options(&h, "XC002", &opt);
	async_ping_resumed(&opt);
	/* ...and not offered when the name to check differs, or the check
	 * would be skipped: the handshake must still fail. */
	memset(&res, 0, sizeof res);
	res.base = event_base_new();
	opt.server_name = "broker.elsewhere.example";
	res.ac = onecard_async_connect(res.base, &opt, async_connected, &res);
	tag.res = &res;
	tag.index = 0;
	set_ping(&req, &ping);
	assert_int_equal(
	    onecard_async_send(res.ac, &req, async_reply, &tag), ONECARD_OK);
	event_base_loopexit(res.base, &limit);
	event_base_dispatch(res.base);
	assert_int_equal(res.connect_err, ONECARD_ETLS);
	assert_int_equal(onecard_async_session_reused(res.ac), 0);
	/* The reason is said once, in words. */
	{
		const char *e = onecard_async_last_error(res.ac),
			   *p = strstr(e, "hostname mismatch");

		assert_non_null(strstr(e,
		    "the broker's certificate is not "
		    "trusted: it is not for the name or "
		    "address we connected to"));
		assert_non_null(p);
		assert_null(strstr(p + 1, "hostname mismatch"));
	}
	onecard_async_close(res.ac);
	event_base_free(res.base);
}

static void
renewed_certificate_file_gets_a_fresh_context(void **state)
{
	struct onecard_tls_stats st0, st1;
	struct onecard_options opt;
	struct timespec times[2];
	char cert[512], key[512], cmd[4096];

	/* A copy of XC001's files that this test may touch. */
	snprintf(cert, sizeof cert, "%s/renew.pem", h.certs);
	snprintf(key, sizeof key, "%s/renew.key", h.certs);
	snprintf(cmd, sizeof cmd,
	    "cp '%s/XC001.pem' '%s' && cp '%s/XC001.key' '%s'", h.certs, cert,
	    h.certs, key);
	assert_int_equal(system(cmd), 0);
	harness_options(&h, "XC001", &opt);
	opt.cert = cert;
	opt.key = key;
	async_ping_resumed(&opt);
	onecard_tls_stats(&st0);
	async_ping_resumed(&opt);
	onecard_tls_stats(&st1);
	assert_int_equal(st1.contexts, st0.contexts); /* unchanged: shared */

	/* Renewed: a later modification time. */
	clock_gettime(CLOCK_REALTIME, &times[0]);
	times[0].tv_sec += 10;
	times[1] = times[0];
	assert_int_equal(utimensat(AT_FDCWD, cert, times, 0), 0);
	assert_int_equal(async_ping_resumed(&opt), 0);
	onecard_tls_stats(&st1);
	assert_int_equal(st1.contexts, st0.contexts + 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(connect_with_right_certs_answers_ping),
	    cmocka_unit_test(broker_name_in_certificate_is_accepted),
	    cmocka_unit_test(server_name_mismatch_is_refused),
	    cmocka_unit_test(broker_signed_by_another_ca_is_refused),
	    cmocka_unit_test(missing_key_file_is_invalid_argument),
	    cmocka_unit_test(unknown_cn_gets_unauthenticated),
	    cmocka_unit_test(blocking_enroll_then_lookup_finds_same_patient),
	    cmocka_unit_test(pipelined_500_requests_come_back_in_order),
	    cmocka_unit_test(pipelining_100000_pings_does_not_stall),
	    cmocka_unit_test(async_round_trip_calls_back_in_order),
	    cmocka_unit_test(async_failure_calls_every_callback_once),
	    cmocka_unit_test(async_server_name_mismatch_is_etls),
	    cmocka_unit_test(async_close_fails_outstanding_callbacks),
	    cmocka_unit_test(call_timeout_gives_etimedout),
	    cmocka_unit_test(async_reply_timeout_fails_waiting_callbacks),
	    cmocka_unit_test(closed_port_gives_econnect_quickly),
	    cmocka_unit_test(silent_server_gives_handshake_timeout),
	    cmocka_unit_test(async_silent_server_gives_handshake_timeout),
	    cmocka_unit_test(bad_broker_address_is_invalid_argument),
	    cmocka_unit_test(reply_with_wrong_id_is_protocol_error),
	    cmocka_unit_test(reply_with_id_zero_reaches_the_caller),
	    cmocka_unit_test(close_sends_close_notify),
	    cmocka_unit_test(writing_to_hung_up_broker_is_an_error_not_sigpipe),
	    cmocka_unit_test(broker_restart_keeps_enrolled_patients),
	    cmocka_unit_test(async_raw_reply_gives_id_code_and_whole_body),
	    cmocka_unit_test(async_pipelining_100000_pings_comes_back_in_order),
	    cmocka_unit_test(async_close_inside_reply_callback_fails_the_rest),
	    cmocka_unit_test(async_encoded_request_gets_an_id_and_its_reply),
	    cmocka_unit_test(async_encoded_request_over_max_frame_is_refused),
	    cmocka_unit_test(async_connections_share_one_tls_context),
	    cmocka_unit_test(async_reconnect_resumes_tls_session),
	    cmocka_unit_test(blocking_reconnect_resumes_tls_session),
	    cmocka_unit_test(session_is_not_offered_to_another_broker_name),
	    cmocka_unit_test(renewed_certificate_file_gets_a_fresh_context),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
