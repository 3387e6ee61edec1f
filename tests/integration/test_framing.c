/*
 * test_framing.c: frames on the wire against a real onecardd. Bytes that
 * are not a Request, an empty frame, a Request without an op or with id 0
 * are answered INVALID_ARGUMENT with id 0 and the connection goes on; a
 * length over --max-frame is answered RESOURCE_EXHAUSTED and the connection
 * is closed; a thousand pipelined requests are answered in order, and each
 * lookup sees the enrollment sent just before it; requests sent before a
 * close_notify are all answered. Raw frames go through a
 * small OpenSSL client here; well-formed traffic through libonecard.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
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
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "harness.h"
#include "onecard.h"
#include "wire.h"

/* A bare TLS connection that sends whatever bytes a test wants. */
struct raw {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
};

/* Connect to the harness's broker as cn. */
static void
raw_open(struct raw *r, struct harness *h, const char *cn)
{
	struct sockaddr_in sin;
	struct timeval tv = {10, 0};
	char path[400];

	r->ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(r->ctx);
	snprintf(path, sizeof(path), "%s/ca.pem", h->certs);
	assert_int_equal(SSL_CTX_load_verify_locations(r->ctx, path, NULL), 1);
	snprintf(path, sizeof(path), "%s/%s.pem", h->certs, cn);
	assert_int_equal(SSL_CTX_use_certificate_chain_file(r->ctx, path), 1);
	snprintf(path, sizeof(path), "%s/%s.key", h->certs, cn);
	assert_int_equal(
	    SSL_CTX_use_PrivateKey_file(r->ctx, path, SSL_FILETYPE_PEM), 1);
	r->fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(h->port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(
	    connect(r->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	r->ssl = SSL_new(r->ctx);
	SSL_set_fd(r->ssl, r->fd);
	assert_int_equal(SSL_connect(r->ssl), 1);
}

static void
raw_close(struct raw *r)
{
	SSL_free(r->ssl);
	close(r->fd);
	SSL_CTX_free(r->ctx);
	ERR_clear_error();
}

/* Send n bytes as they are. */
static void
raw_send(struct raw *r, const void *buf, size_t n)
{
	assert_int_equal(SSL_write(r->ssl, buf, n), (int)n);
}

/* Send a frame with this length header and body. */
static void
raw_send_frame(struct raw *r, uint32_t len, const void *body, size_t n)
{
	uint8_t buf[4096];

	buf[0] = len >> 24;
	buf[1] = len >> 16;
	buf[2] = len >> 8;
	buf[3] = len;
	assert_true(n + 4 <= sizeof(buf));
	if (n > 0)
		memcpy(buf + 4, body, n);
	raw_send(r, buf, n + 4);
}

/* Send a Request as a frame. */
static void
raw_send_request(struct raw *r, Onecard__V1__Request *req)
{
	uint8_t buf[4096];
	size_t n = wire_encode(&req->base, buf, sizeof(buf));

	assert_true(n > 0);
	raw_send(r, buf, n);
}

/* Read exactly n bytes; 0, or -1 at end of stream or error. */
static int
raw_read_full(struct raw *r, uint8_t *buf, size_t n)
{
	size_t got = 0;
	int k;

	while (got < n) {
		k = SSL_read(r->ssl, buf + got, n - got);
		if (k <= 0)
			return -1;
		got += k;
	}
	return 0;
}

/* The next Reply, or NULL when the broker closed the connection. */
static Onecard__V1__Reply *
raw_reply(struct raw *r)
{
	uint8_t hdr[4], body[65536];
	size_t len;

	if (raw_read_full(r, hdr, 4) == -1)
		return NULL;
	len = (size_t)hdr[0] << 24 | hdr[1] << 16 | hdr[2] << 8 | hdr[3];
	assert_true(len > 0 && len <= sizeof(body));
	assert_int_equal(raw_read_full(r, body, len), 0);
	return wire_reply_unpack(body, len, 1 << 20, NULL);
}

/* Expect a reply with this id and code. */
static void
raw_expect(struct raw *r, uint64_t id, int code)
{
	Onecard__V1__Reply *reply = raw_reply(r);

	assert_non_null(reply);
	assert_int_equal(reply->id, id);
	assert_int_equal(reply->code, code);
	wire_reply_free(reply);
}

/* Send a ping with this id. */
static void
raw_ping(struct raw *r, uint64_t id)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Ping ping = ONECARD__V1__PING__INIT;

	req.id = id;
	req.op_case = ONECARD__V1__REQUEST__OP_PING;
	req.ping = &ping;
	raw_send_request(r, &req);
}

static void
test_undecodable_frame_gets_invalid_argument_and_connection_goes_on(
    void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
	struct raw r;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	raw_open(&r, &h, "H1");
	raw_send_frame(&r, sizeof(junk), junk, sizeof(junk));
	raw_expect(&r, 0, ONECARD__V1__CODE__INVALID_ARGUMENT);
	raw_ping(&r, 7);
	raw_expect(&r, 7, ONECARD__V1__CODE__OK);
	raw_close(&r);
	harness_cleanup(&h);
}

static void
test_empty_frame_gets_invalid_argument_and_connection_goes_on(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	struct raw r;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	raw_open(&r, &h, "H1");
	raw_send_frame(&r, 0, NULL, 0);
	raw_expect(&r, 0, ONECARD__V1__CODE__INVALID_ARGUMENT);
	raw_ping(&r, 8);
	raw_expect(&r, 8, ONECARD__V1__CODE__OK);
	raw_close(&r);
	harness_cleanup(&h);
}

static void
test_request_without_op_or_id_gets_invalid_argument_with_id_0(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Ping ping = ONECARD__V1__PING__INIT;
	Onecard__V1__Reply *reply;
	struct raw r;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	raw_open(&r, &h, "H1");
	req.id = 5; /* no op */
	raw_send_request(&r, &req);
	raw_expect(&r, 0, ONECARD__V1__CODE__INVALID_ARGUMENT);

	req.id = 0; /* an op, but id 0 */
	req.op_case = ONECARD__V1__REQUEST__OP_PING;
	req.ping = &ping;
	raw_send_request(&r, &req);
	reply = raw_reply(&r);
	assert_non_null(reply);
	assert_int_equal(reply->id, 0);
	assert_int_equal(reply->code, ONECARD__V1__CODE__INVALID_ARGUMENT);
	assert_non_null(strstr(reply->message, "id"));
	wire_reply_free(reply);

	raw_ping(&r, 9);
	raw_expect(&r, 9, ONECARD__V1__CODE__OK);
	raw_close(&r);
	harness_cleanup(&h);
}

/* Append a length-delimited field (len < 128) to buf at *n. */
static void
put_bytes(uint8_t *buf, size_t *n, unsigned field, const void *p, size_t len)
{
	assert_true(len < 128);
	buf[(*n)++] = (uint8_t)(field << 3 | 2);
	buf[(*n)++] = (uint8_t)len;
	memcpy(buf + *n, p, len);
	*n += len;
}

/* Append a varint field (value < 128) to buf at *n. */
static void
put_varint(uint8_t *buf, size_t *n, unsigned field, unsigned v)
{
	assert_true(v < 128);
	buf[(*n)++] = (uint8_t)(field << 3);
	buf[(*n)++] = (uint8_t)v;
}

/* Send a lookup frame built by hand: Request fields in the order asked
 * ("i" id, "l" lookup, "u" an unknown field), Identifier value first when
 * swap is set. */
static void
raw_lookup_bytes(struct raw *r, const char *order, unsigned id, int swap,
    const char *domain, const char *value)
{
	uint8_t ident[128], lookup[160], req[256];
	size_t ni = 0, nl = 0, nr = 0;

	if (swap) {
		put_bytes(ident, &ni, 2, value, strlen(value));
		put_bytes(ident, &ni, 1, domain, strlen(domain));
	} else {
		put_bytes(ident, &ni, 1, domain, strlen(domain));
		put_bytes(ident, &ni, 2, value, strlen(value));
	}
	put_bytes(lookup, &nl, 1, ident, ni);
	for (; *order != '\0'; order++)
		if (*order == 'i')
			put_varint(req, &nr, 1, id);
		else if (*order == 'l')
			put_bytes(req, &nr, ONECARD__V1__REQUEST__OP_LOOKUP,
			    lookup, nl);
		else
			put_varint(req, &nr, 99, 1);
	raw_send_frame(r, (uint32_t)nr, req, nr);
}

/* Expect a lookup reply with this id answering patient pid. */
static void
raw_expect_patient(struct raw *r, uint64_t id, const char *pid)
{
	Onecard__V1__Reply *reply = raw_reply(r);

	assert_non_null(reply);
	assert_int_equal(reply->id, id);
	assert_int_equal(reply->code, ONECARD__V1__CODE__OK);
	assert_int_equal(
	    reply->result_case, ONECARD__V1__REPLY__RESULT_PATIENT);
	assert_string_equal(reply->patient->patient_id, pid);
	wire_reply_free(reply);
}

/*
 * Lookups are decoded on a fast path that takes only the usual shape; any
 * other encoding protobuf allows (fields out of order, an unknown field)
 * must get the same answer, and a malformed one the same error.
 */
static void
test_lookups_in_every_encoding_get_the_same_answer(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Enroll e = ONECARD__V1__ENROLL__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT,
				*ids[] = {&id};
	Onecard__V1__Reply *reply;
	char pid[64];
	struct raw r;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	raw_open(&r, &h, "H1");
	id.domain = "hosp:H1";
	id.value = "V1";
	e.identifiers = ids;
	e.n_identifiers = 1;
	req.id = 1;
	req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
	req.enroll = &e;
	raw_send_request(&r, &req);
	reply = raw_reply(&r);
	assert_non_null(reply);
	assert_int_equal(reply->code, ONECARD__V1__CODE__OK);
	snprintf(pid, sizeof(pid), "%s", reply->enrolled->patient->patient_id);
	wire_reply_free(reply);

	for (int round = 0; round < 2; round++) { /* uncached, then cached */
		raw_lookup_bytes(&r, "il", 5, 0, "hosp:H1", "V1");
		raw_expect_patient(&r, 5, pid);
		raw_lookup_bytes(&r, "li", 6, 0, "hosp:H1", "V1");
		raw_expect_patient(&r, 6, pid);
		raw_lookup_bytes(&r, "il", 7, 1, "hosp:H1", "V1");
		raw_expect_patient(&r, 7, pid);
		raw_lookup_bytes(&r, "ilu", 8, 0, "hosp:H1", "V1");
		raw_expect_patient(&r, 8, pid);
		raw_lookup_bytes(&r, "il", 9, 0, "hosp:H1", "NOPE");
		raw_expect(&r, 9, ONECARD__V1__CODE__NOT_FOUND);
		raw_lookup_bytes(&r, "il", 10, 0, "hosp:", "V1");
		raw_expect(&r, 10, ONECARD__V1__CODE__INVALID_ARGUMENT);
		/* id 0, or no id: answered with id 0. */
		raw_lookup_bytes(&r, "il", 0, 0, "hosp:H1", "V1");
		raw_expect(&r, 0, ONECARD__V1__CODE__INVALID_ARGUMENT);
		raw_lookup_bytes(&r, "l", 0, 0, "hosp:H1", "V1");
		raw_expect(&r, 0, ONECARD__V1__CODE__INVALID_ARGUMENT);
	}
	/* A lookup whose inner length overruns its message is not a Request. */
	{
		uint8_t bad[] = {
		    0x08, 0x05, 0x5a, 0x04, 0x0a, 0x09, 0x0a, 0x01};

		raw_send_frame(&r, sizeof(bad), bad, sizeof(bad));
		raw_expect(&r, 0, ONECARD__V1__CODE__INVALID_ARGUMENT);
	}
	raw_ping(&r, 11);
	raw_expect(&r, 11, ONECARD__V1__CODE__OK);
	raw_close(&r);
	harness_cleanup(&h);
}

static void
test_oversize_length_gets_resource_exhausted_then_close(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	const char *extra[] = {"--max-frame", "1024", NULL};
	uint8_t body[1025];
	struct raw r;

	assert_int_equal(harness_start(&h, codes, extra), 0);
	/* At the edge: 1024 bytes is a frame (not a Request, but a frame). */
	raw_open(&r, &h, "H1");
	memset(body, 0xff, sizeof(body));
	raw_send_frame(&r, 1024, body, 1024);
	raw_expect(&r, 0, ONECARD__V1__CODE__INVALID_ARGUMENT);
	raw_ping(&r, 3);
	raw_expect(&r, 3, ONECARD__V1__CODE__OK);
	/* One byte over: refused, and the connection ends. */
	raw_send_frame(&r, 1025, body, 16);
	raw_expect(&r, 0, ONECARD__V1__CODE__RESOURCE_EXHAUSTED);
	assert_null(raw_reply(&r));
	raw_close(&r);
	/* A huge length is refused before anything is read or allocated. */
	raw_open(&r, &h, "H1");
	raw_send_frame(&r, 0x7fffffff, body, 4);
	raw_expect(&r, 0, ONECARD__V1__CODE__RESOURCE_EXHAUSTED);
	assert_null(raw_reply(&r));
	raw_close(&r);
	harness_cleanup(&h);
}

static void
test_ping_answers_node_and_version_and_subscribe_answers_the_last_seq(
    void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	const char *extra[] = {"--node", "node-7", NULL};
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Subscribe sub = ONECARD__V1__SUBSCRIBE__INIT;
	Onecard__V1__Reply *reply;
	struct raw r;

	assert_int_equal(harness_start(&h, codes, extra), 0);
	raw_open(&r, &h, "H1");
	raw_ping(&r, 11);
	reply = raw_reply(&r);
	assert_non_null(reply);
	assert_int_equal(reply->id, 11);
	assert_int_equal(reply->result_case, ONECARD__V1__REPLY__RESULT_PONG);
	assert_string_equal(reply->pong->node, "node-7");
	assert_true(strlen(reply->pong->version) > 0);
	wire_reply_free(reply);
	req.id = 12;
	req.op_case = ONECARD__V1__REQUEST__OP_SUBSCRIBE;
	req.subscribe = &sub;
	raw_send_request(&r, &req);
	reply = raw_reply(&r);
	assert_non_null(reply);
	assert_int_equal(reply->id, 12);
	assert_int_equal(reply->code, ONECARD__V1__CODE__OK);
	assert_int_equal(reply->result_case, ONECARD__V1__REPLY__RESULT_EVENT);
	assert_true(reply->event->seq >= 1); /* H1's registration at least */
	wire_reply_free(reply);
	raw_close(&r);
	harness_cleanup(&h);
}

/* Request i of the pipelined mix and the storage it points into. */
struct mix {
	Onecard__V1__Request req;
	Onecard__V1__Identifier id, *ids[1];
	Onecard__V1__Enroll enroll;
	Onecard__V1__Lookup lookup;
	Onecard__V1__Ping ping;
	char value[32];
};

/* Build request i of the pipelined mix in m; &m->req. */
static Onecard__V1__Request *
mix_request(unsigned i, struct mix *m)
{
	onecard__v1__request__init(&m->req);
	onecard__v1__identifier__init(&m->id);
	snprintf(m->value, sizeof(m->value), "MRN-%u", i / 3);
	m->id.domain = "hosp:H1";
	m->id.value = m->value;
	m->req.id = 1000 + i;
	switch (i % 3) {
	case 0: /* enroll MRN-k ... */
		onecard__v1__enroll__init(&m->enroll);
		m->ids[0] = &m->id;
		m->enroll.n_identifiers = 1;
		m->enroll.identifiers = m->ids;
		m->req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
		m->req.enroll = &m->enroll;
		break;
	case 1: /* ... then look it up at once: it must be there */
		onecard__v1__lookup__init(&m->lookup);
		m->lookup.identifier = &m->id;
		m->req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
		m->req.lookup = &m->lookup;
		break;
	default:
		onecard__v1__ping__init(&m->ping);
		m->req.op_case = ONECARD__V1__REQUEST__OP_PING;
		m->req.ping = &m->ping;
		break;
	}
	return &m->req;
}

static void
test_pipelined_1000_mixed_requests_answered_in_order(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	struct onecard_conn *conn;
	Onecard__V1__Reply *reply;
	enum {
		N = 1000
	};

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	assert_int_equal(harness_connect(&h, "H1", &conn), ONECARD_OK);
	for (unsigned i = 0; i < N; i++) {
		struct mix m;

		assert_int_equal(
		    onecard_send(conn, mix_request(i, &m)), ONECARD_OK);
	}
	assert_int_equal(onecard_flush(conn), ONECARD_OK);
	for (unsigned i = 0; i < N; i++) {
		assert_int_equal(onecard_recv(conn, &reply), ONECARD_OK);
		assert_int_equal(reply->id, 1000 + i);
		assert_int_equal(reply->code, ONECARD__V1__CODE__OK);
		switch (i % 3) {
		case 0:
			assert_int_equal(reply->result_case,
			    ONECARD__V1__REPLY__RESULT_ENROLLED);
			assert_true(reply->enrolled->created);
			break;
		case 1:
			assert_int_equal(reply->result_case,
			    ONECARD__V1__REPLY__RESULT_PATIENT);
			break;
		default:
			assert_int_equal(reply->result_case,
			    ONECARD__V1__REPLY__RESULT_PONG);
		}
		onecard_reply_free(reply);
	}
	assert_int_equal(onecard_pending(conn), 0);
	onecard_close(conn);
	harness_cleanup(&h);
}

/*
 * A client that sends its requests and then close_notify (a TLS half-close:
 * it will send no more, but reads on) gets every reply, writes included,
 * and then the broker's own close.
 */
static void
test_requests_before_close_notify_are_all_answered(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	struct raw r;
	Onecard__V1__Reply *reply;
	enum {
		N = 300
	};

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	raw_open(&r, &h, "H1");
	for (unsigned i = 0; i < N; i++) {
		struct mix m;

		raw_send_request(&r, mix_request(i, &m));
	}
	assert_int_equal(SSL_shutdown(r.ssl), 0); /* close_notify sent */
	for (unsigned i = 0; i < N; i++)
		raw_expect(&r, 1000 + i, ONECARD__V1__CODE__OK);
	assert_null(reply = raw_reply(&r));
	raw_close(&r);
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	harness_cleanup(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		test_undecodable_frame_gets_invalid_argument_and_connection_goes_on),
	    cmocka_unit_test(
		test_empty_frame_gets_invalid_argument_and_connection_goes_on),
	    cmocka_unit_test(
		test_request_without_op_or_id_gets_invalid_argument_with_id_0),
	    cmocka_unit_test(
		test_lookups_in_every_encoding_get_the_same_answer),
	    cmocka_unit_test(
		test_oversize_length_gets_resource_exhausted_then_close),
	    cmocka_unit_test(
		test_ping_answers_node_and_version_and_subscribe_answers_the_last_seq),
	    cmocka_unit_test(
		test_pipelined_1000_mixed_requests_answered_in_order),
	    cmocka_unit_test(
		test_requests_before_close_notify_are_all_answered),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
