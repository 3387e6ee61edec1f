/*
 * test_hostile.c: bytes a broker must survive on its TLS port, against the
 * real daemon through the harness.
 *
 * A connection closed before a byte of TLS is logged as the peer going, not
 * as a TLS error. Plaintext HTTP and random bytes instead of a ClientHello,
 * and garbage records after a finished handshake, end only the connection
 * that sent them: it is closed within the handshake deadline, the broker
 * keeps serving, and no descriptor is left behind. A client-initiated
 * renegotiation is refused with a no_renegotiation alert; TLS 1.3 key
 * updates, asked for or not, are taken (the broker answers each one asked
 * for) and the session goes on. A frame built to explode when decoded
 * (tens of thousands of empty identifiers) is refused under the decoder's
 * memory cap and the connection goes on. A frame that stops half-way is
 * closed at the stall deadline (which stays on when the idle timeout is
 * off), and so is one trickled a byte at a time. Silent sockets that take
 * every --max-conns slot lose them at the handshake deadline, so hospitals
 * get back in.
 *
 * Random bytes come from a fixed seed, so a failure replays the same way.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
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
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "harness.h"
#include "onecard.h"
#include "wire.h"

/* The broker of the running test, for hostile_teardown. */
static struct harness *live_h;

/* After each test, even a failed one: no broker or folder left behind. */
static int
hostile_teardown(void **state)
{
	if (live_h != NULL) {
		harness_cleanup(live_h);
		live_h = NULL;
	}
	return 0;
}

/* Wait until the broker holds at most base + slack descriptors. */
static void
assert_fds_back(struct harness *h, int base, int slack)
{
	int now = -1;

	for (int t = 0; t < 50; t++) {
		if ((now = harness_fd_count(h->pid)) <= base + slack)
			return;
		usleep(100 * 1000);
	}
	fail_msg("onecardd holds %d descriptors, %d before", now, base);
}

/*
 * Wait up to ms for the peer to close fd, reading whatever it sends first
 * (an alert, say) into buf if given: 1 closed, 0 still open.
 */
static int
wait_closed(int fd, int ms, char *buf, size_t buflen, size_t *got)
{
	long long end = harness_now_ms() + ms;
	char scratch[4096];
	size_t have = 0;

	while (harness_now_ms() < end) {
		struct pollfd p = {fd, POLLIN, 0};
		int left = (int)(end - harness_now_ms());
		ssize_t n;

		if (poll(&p, 1, left > 0 ? left : 0) <= 0)
			continue;
		n = recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT);
		if (n > 0 && buf != NULL && have < buflen) {
			size_t k = (size_t)n < buflen - have ? (size_t)n
							     : buflen - have;
			memcpy(buf + have, scratch, k);
			have += k;
		}
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			if (got != NULL)
				*got = have;
			return 1;
		}
	}
	if (got != NULL)
		*got = have;
	return 0;
}

/* A TLS client connection made with OpenSSL directly. */
struct raw {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
};

/* Handshake as cn on connected fd, at most TLS version maxver (0: any). */
static void
raw_open_fd(
    struct raw *r, struct harness *h, const char *cn, int maxver, int fd)
{
	struct timeval tv = {10, 0};
	char path[400];

	r->ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(r->ctx);
	if (maxver != 0)
		SSL_CTX_set_max_proto_version(r->ctx, maxver);
	snprintf(path, sizeof(path), "%s/ca.pem", h->certs);
	assert_int_equal(SSL_CTX_load_verify_locations(r->ctx, path, NULL), 1);
	snprintf(path, sizeof(path), "%s/%s.pem", h->certs, cn);
	assert_int_equal(SSL_CTX_use_certificate_chain_file(r->ctx, path), 1);
	snprintf(path, sizeof(path), "%s/%s.key", h->certs, cn);
	assert_int_equal(
	    SSL_CTX_use_PrivateKey_file(r->ctx, path, SSL_FILETYPE_PEM), 1);
	SSL_CTX_set_verify(r->ctx, SSL_VERIFY_PEER, NULL);
	r->fd = fd;
	assert_true(r->fd >= 0);
	setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	r->ssl = SSL_new(r->ctx);
	SSL_set_fd(r->ssl, r->fd);
	SSL_set_tlsext_host_name(r->ssl, "localhost");
	assert_int_equal(SSL_connect(r->ssl), 1);
}

/* Connect and handshake as cn, at most TLS version maxver (0: any). */
static void
raw_open(struct raw *r, struct harness *h, const char *cn, int maxver)
{
	raw_open_fd(r, h, cn, maxver, harness_tcp_connect(h->port));
}

static void
raw_close(struct raw *r)
{
	SSL_free(r->ssl);
	close(r->fd);
	SSL_CTX_free(r->ctx);
	ERR_clear_error();
}

/* Ping {id} over a raw connection; the reply code, or -1. */
static int
raw_ping(struct raw *r, uint64_t id)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Ping ping = ONECARD__V1__PING__INIT;
	uint8_t frame[64];
	size_t n;

	req.id = id;
	req.op_case = ONECARD__V1__REQUEST__OP_PING;
	req.ping = &ping;
	n = wire_encode(&req.base, frame, sizeof(frame));
	assert_true(n > 0);
	if (SSL_write(r->ssl, frame, (int)n) != (int)n)
		return -1;
	for (;;) {
		Onecard__V1__Reply *reply;
		uint8_t hdr[4], body[65536];
		size_t len;
		int code;

		if (SSL_read(r->ssl, hdr, 4) != 4)
			return -1;
		len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 |
		    (size_t)hdr[2] << 8 | hdr[3];
		if (len > sizeof(body))
			return -1;
		for (size_t got = 0; got < len;) {
			int k = SSL_read(r->ssl, body + got, (int)(len - got));
			if (k <= 0)
				return -1;
			got += (size_t)k;
		}
		reply = wire_reply_unpack(body, len, 1 << 24, NULL);
		if (reply == NULL)
			return -1;
		code = reply->id == id ? (int)reply->code : -2;
		wire_reply_free(reply);
		if (code != -2)
			return code;
		/* An id-0 answer to something earlier; keep reading. */
	}
}

/* Read one reply frame; its code and id, or -1 if the connection ended. */
static int
raw_reply(struct raw *r, uint64_t *id)
{
	Onecard__V1__Reply *reply;
	static uint8_t body[1 << 20];
	uint8_t hdr[4];
	size_t len;
	int code;

	if (SSL_read(r->ssl, hdr, 4) != 4)
		return -1;
	len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 |
	    (size_t)hdr[2] << 8 | hdr[3];
	if (len > sizeof(body))
		return -1;
	for (size_t got = 0; got < len;) {
		int k = SSL_read(r->ssl, body + got, (int)(len - got));
		if (k <= 0)
			return -1;
		got += (size_t)k;
	}
	reply = wire_reply_unpack(body, len, 1 << 24, NULL);
	if (reply == NULL)
		return -1;
	code = reply->code;
	*id = reply->id;
	wire_reply_free(reply);
	return code;
}

static void
test_plaintext_http_is_closed_and_the_broker_serves_on(void **state)
{
	static struct harness h;
	const char *codes[] = {"H1", NULL};
	const char *extra[] = {"--handshake-timeout", "3", NULL};
	const char *get = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n"
			  "User-Agent: curl/8\r\n\r\n";
	const char *post = "POST / HTTP/1.0\r\nContent-Length: 100000\r\n\r\n";
	char buf[4096];
	size_t got;
	int fd, base;

	assert_int_equal(harness_start(&h, codes, extra), 0);
	live_h = &h;
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	usleep(200 * 1000);
	base = harness_fd_count(h.pid);
	for (int i = 0; i < 20; i++) {
		const char *req = i % 2 ? post : get;

		fd = harness_tcp_connect(h.port);
		assert_true(fd >= 0);
		assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL),
		    (ssize_t)strlen(req));
		assert_true(wait_closed(fd, 5000, buf, sizeof(buf), &got));
		/* Whatever came back, it was not an HTTP answer. */
		assert_true(got < 5 || memcmp(buf, "HTTP/", 5) != 0);
		close(fd);
	}
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	assert_fds_back(&h, base, 2);
	harness_cleanup(&h);
	live_h = NULL;
}

/*
 * A load balancer's health check (connect, then close without a byte) is
 * the peer going away, not a TLS error: the log says "peer closed" for it,
 * and keeps "tls error" for bytes that are not TLS.
 */
static void
test_connect_and_close_is_logged_as_peer_closed(void **state)
{
	static struct harness h;
	const char *codes[] = {"H1", NULL};
	static char log[65536];
	const char *get = "GET / HTTP/1.0\r\n\r\n";
	int fd, found = 0;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	live_h = &h;
	fd = harness_tcp_connect(h.port);
	assert_true(fd >= 0);
	close(fd);
	for (int i = 0; i < 50 && !found; i++) {
		usleep(100 * 1000);
		assert_int_equal(harness_log(&h, log, sizeof(log)), 0);
		found = strstr(log, "tls handshake failed") != NULL;
	}
	assert_non_null(strstr(log, "reason=\"peer closed"));
	assert_null(strstr(log, "reason=\"tls error"));
	fd = harness_tcp_connect(h.port);
	assert_true(fd >= 0);
	assert_int_equal(
	    send(fd, get, strlen(get), MSG_NOSIGNAL), (ssize_t)strlen(get));
	assert_true(wait_closed(fd, 5000, NULL, 0, NULL));
	close(fd);
	found = 0;
	for (int i = 0; i < 50 && !found; i++) {
		usleep(100 * 1000);
		assert_int_equal(harness_log(&h, log, sizeof(log)), 0);
		found = strstr(log, "reason=\"tls error") != NULL;
	}
	assert_true(found);
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	harness_cleanup(&h);
	live_h = NULL;
}

#define RANDOM_CONNS   200
#define STALL_SEARCHES 2000

static void
test_random_bytes_are_closed_and_the_broker_serves_on(void **state)
{
	static struct harness h;
	const char *codes[] = {"H1", NULL};
	const char *extra[] = {"--handshake-timeout", "2", NULL};
	static int fds[RANDOM_CONNS];
	uint8_t junk[4096];
	unsigned seed = 20261126;
	int base, open_left = 0;

	assert_int_equal(harness_start(&h, codes, extra), 0);
	live_h = &h;
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	usleep(200 * 1000);
	base = harness_fd_count(h.pid);
	for (int i = 0; i < RANDOM_CONNS; i++) {
		size_t n = 1 + (size_t)rand_r(&seed) % sizeof(junk);

		for (size_t k = 0; k < n; k++)
			junk[k] = (uint8_t)rand_r(&seed);
		/* A third start like a TLS handshake record, so the junk
		 * reaches past the record layer's first check. */
		if (i % 3 == 0 && n > 5) {
			junk[0] = 0x16;
			junk[1] = 0x03;
			junk[2] = 0x01;
		}
		fds[i] = harness_tcp_connect(h.port);
		assert_true(fds[i] >= 0);
		send(fds[i], junk, n, MSG_NOSIGNAL);
	}
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	/* Every one is closed by the broker within the deadline (2 s). */
	for (int i = 0; i < RANDOM_CONNS; i++) {
		if (!wait_closed(fds[i], 6000, NULL, 0, NULL))
			open_left++;
		close(fds[i]);
	}
	if (open_left > 0)
		fail_msg("%d of %d junk connections still open after the "
			 "handshake deadline",
		    open_left, RANDOM_CONNS);
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	assert_fds_back(&h, base, 2);
	harness_cleanup(&h);
	live_h = NULL;
}

static void
test_garbage_records_after_handshake_end_only_that_connection(void **state)
{
	static struct harness h;
	const char *codes[] = {"H1", NULL};
	struct raw victim, bystander;
	uint8_t junk[512];
	unsigned seed = 7;
	/* A record header announcing more than TLS allows (2^14 + 2048). */
	const uint8_t huge[] = {0x17, 0x03, 0x03, 0x48, 0x01};

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	live_h = &h;
	raw_open(&bystander, &h, "H1", 0);
	assert_int_equal(raw_ping(&bystander, 1), ONECARD__V1__CODE__OK);
	for (int round = 0; round < 2; round++) {
		raw_open(&victim, &h, "H1", 0);
		assert_int_equal(raw_ping(&victim, 1), ONECARD__V1__CODE__OK);
		if (round == 0) {
			/* An application-data record whose bytes are noise:
			 * it cannot authenticate. */
			for (size_t k = 0; k < sizeof(junk); k++)
				junk[k] = (uint8_t)rand_r(&seed);
			junk[0] = 0x17;
			junk[1] = 0x03;
			junk[2] = 0x03;
			junk[3] = 0x01;
			junk[4] = 0xfb;
			send(victim.fd, junk, sizeof(junk), MSG_NOSIGNAL);
		} else
			send(victim.fd, huge, sizeof(huge), MSG_NOSIGNAL);
		assert_true(wait_closed(victim.fd, 5000, NULL, 0, NULL));
		raw_close(&victim);
	}
	/* The connection beside it never noticed. */
	assert_int_equal(raw_ping(&bystander, 2), ONECARD__V1__CODE__OK);
	raw_close(&bystander);
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	harness_cleanup(&h);
	live_h = NULL;
}

static void
test_client_renegotiation_is_refused_and_the_broker_serves_on(void **state)
{
	static struct harness h;
	const char *codes[] = {"H1", NULL};
	struct raw r, bystander;
	unsigned long e;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	live_h = &h;
	raw_open(&bystander, &h, "H1", 0);
	/* Renegotiation exists only up to TLS 1.2. */
	raw_open(&r, &h, "H1", TLS1_2_VERSION);
	assert_int_equal(SSL_version(r.ssl), TLS1_2_VERSION);
	/* RFC 5746 is spoken, so no insecure renegotiation is possible. */
	assert_int_equal(SSL_get_secure_renegotiation_support(r.ssl), 1);
	assert_int_equal(raw_ping(&r, 1), ONECARD__V1__CODE__OK);
	ERR_clear_error();
	assert_int_equal(SSL_renegotiate(r.ssl), 1);
	SSL_do_handshake(r.ssl);
	/* The broker answers the new ClientHello with a no_renegotiation
	 * alert (which OpenSSL's client takes as the end of the session); the
	 * renegotiation never completes. */
	assert_int_equal(raw_ping(&r, 2), -1);
	assert_int_equal(SSL_renegotiate_pending(r.ssl), 1);
	e = ERR_peek_error();
	if (ERR_GET_REASON(e) != SSL_R_NO_RENEGOTIATION)
		fail_msg("expected a no_renegotiation refusal, got %s",
		    ERR_error_string(e, NULL));
	raw_close(&r);
	/* Nobody else noticed. */
	assert_int_equal(raw_ping(&bystander, 1), ONECARD__V1__CODE__OK);
	raw_close(&bystander);
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	harness_cleanup(&h);
	live_h = NULL;
}

/* Count the KeyUpdate messages the broker sends (a msg callback). */
static void
count_key_updates(int write_p, int version, int content_type, const void *buf,
    size_t len, SSL *ssl, void *arg)
{
	(void)version;
	(void)ssl;
	if (!write_p && content_type == SSL3_RT_HANDSHAKE && len > 0 &&
	    ((const uint8_t *)buf)[0] == SSL3_MT_KEY_UPDATE)
		(*(int *)arg)++;
}

/*
 * TLS 1.3 key updates, the client's own and one it asks the broker for, in
 * the middle of a session: the broker's SSL_read takes them, sends its
 * answer with the next reply, and the session goes on under the new keys.
 */
static void
test_key_updates_mid_session_are_taken_and_the_session_goes_on(void **state)
{
	static struct harness h;
	const char *codes[] = {"H1", NULL};
	struct raw r;
	int answered = 0, asked = 1;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	live_h = &h;
	raw_open(&r, &h, "H1", 0);
	SSL_set_msg_callback(r.ssl, count_key_updates);
	SSL_set_msg_callback_arg(r.ssl, &answered);
	assert_int_equal(SSL_version(r.ssl), TLS1_3_VERSION);
	assert_int_equal(raw_ping(&r, 1), ONECARD__V1__CODE__OK);
	/* Ours only: the broker's keys for reading change. */
	assert_int_equal(
	    SSL_key_update(r.ssl, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
	assert_int_equal(raw_ping(&r, 2), ONECARD__V1__CODE__OK);
	/* Requested: the broker must send a key update of its own. */
	assert_int_equal(SSL_key_update(r.ssl, SSL_KEY_UPDATE_REQUESTED), 1);
	assert_int_equal(raw_ping(&r, 3), ONECARD__V1__CODE__OK);
	for (uint64_t id = 4; id < 20; id++) {
		asked += id % 2;
		assert_int_equal(SSL_key_update(r.ssl,
				     id % 2 ? SSL_KEY_UPDATE_REQUESTED
					    : SSL_KEY_UPDATE_NOT_REQUESTED),
		    1);
		assert_int_equal(raw_ping(&r, id), ONECARD__V1__CODE__OK);
	}
	/* Every update asked for was answered, before the reply after it. */
	assert_int_equal(answered, asked);
	raw_close(&r);
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	harness_cleanup(&h);
	live_h = NULL;
}

static void
test_decode_bomb_frame_is_refused_and_the_connection_goes_on(void **state)
{
	static struct harness h;
	const char *codes[] = {"H1", NULL};
	static uint8_t frame[65536];
	size_t k = 4, body, count = 30000;
	struct raw r;
	uint64_t id = 99;
	int code;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	live_h = &h;
	/* Request{id 5, enroll{30000 x identifiers{}}}: 60 KB on the wire,
	 * tens of MB once each empty Identifier is a struct. */
	frame[k++] = 0x08;
	frame[k++] = 0x05;
	frame[k++] = 0x62; /* field 12 (enroll), length-delimited */
	body = count * 2;
	frame[k++] = 0x80 | (body & 0x7f);
	frame[k++] = 0x80 | ((body >> 7) & 0x7f);
	frame[k++] = (uint8_t)(body >> 14);
	for (size_t i = 0; i < count; i++) {
		frame[k++] = 0x12; /* field 2 (identifiers), length 0 */
		frame[k++] = 0x00;
	}
	frame[0] = (uint8_t)((k - 4) >> 24);
	frame[1] = (uint8_t)((k - 4) >> 16);
	frame[2] = (uint8_t)((k - 4) >> 8);
	frame[3] = (uint8_t)(k - 4);
	assert_true(k <= sizeof(frame));

	raw_open(&r, &h, "H1", 0);
	assert_int_equal(SSL_write(r.ssl, frame, (int)k), (int)k);
	code = raw_reply(&r, &id);
	/* Refused, whether by the decoder's cap (id 0) or by the registry's
	 * identifier limit (id 5); never accepted. */
	assert_int_equal(code, ONECARD__V1__CODE__INVALID_ARGUMENT);
	assert_true(id == 0 || id == 5);
	assert_int_equal(raw_ping(&r, 6), ONECARD__V1__CODE__OK);
	raw_close(&r);
	harness_cleanup(&h);
	live_h = NULL;
}

/*
 * Send a header for 1000 bytes, then ten of them, then nothing: the broker
 * must close r within its 2 s deadline (checked every 250 ms, and some).
 */
static void
half_frame_is_cut_off_in_2s(struct raw *r)
{
	const uint8_t part[14] = {0, 0, 0x03, 0xe8, 0x08, 0x01};
	long long t0;

	assert_int_equal(SSL_write(r->ssl, part, sizeof(part)), sizeof(part));
	t0 = harness_now_ms();
	assert_true(wait_closed(r->fd, 8000, NULL, 0, NULL));
	assert_true(harness_now_ms() - t0 < 2000 + 2500);
}

static void
test_half_sent_frame_is_closed_at_the_idle_deadline(void **state)
{
	static struct harness h;
	const char *codes[] = {"H1", NULL};
	const char *extra[] = {"--idle-timeout", "2", NULL};
	struct raw r;

	assert_int_equal(harness_start(&h, codes, extra), 0);
	live_h = &h;
	raw_open(&r, &h, "H1", 0);
	assert_int_equal(raw_ping(&r, 1), ONECARD__V1__CODE__OK);
	half_frame_is_cut_off_in_2s(&r);
	raw_close(&r);
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	harness_cleanup(&h);
	live_h = NULL;
}

/*
 * --idle-timeout 0 keeps idle clients for ever, but not a half-sent frame:
 * that one is cut off at --stall-timeout, while an idle client connected
 * before it is still served after.
 */
static void
test_half_sent_frame_is_cut_off_with_the_idle_timeout_off(void **state)
{
	static struct harness h;
	const char *codes[] = {"H1", NULL};
	const char *extra[] = {
	    "--idle-timeout", "0", "--stall-timeout", "2", NULL};
	struct raw idle, r;

	assert_int_equal(harness_start(&h, codes, extra), 0);
	live_h = &h;
	raw_open(&idle, &h, "H1", 0);
	assert_int_equal(raw_ping(&idle, 1), ONECARD__V1__CODE__OK);
	raw_open(&r, &h, "H1", 0);
	assert_int_equal(raw_ping(&r, 1), ONECARD__V1__CODE__OK);
	half_frame_is_cut_off_in_2s(&r);
	raw_close(&r);
	/* Idle past both timeouts, and still served. */
	usleep(500 * 1000);
	assert_int_equal(raw_ping(&idle, 2), ONECARD__V1__CODE__OK);
	raw_close(&idle);
	harness_cleanup(&h);
	live_h = NULL;
}

/*
 * A client that takes its replies a little at a time keeps its output over
 * --max-pending-output: it is closed --stall-timeout after going over,
 * however often a read lets some more bytes out (each of which restarts
 * the write timeout), and others are served. The replies are searches of
 * 50 patients each, megabytes in all; the client's small window and
 * segments keep the broker's socket buffer small, so its socket becomes
 * writable every few reads while its output stays over the bound.
 */
static void
test_client_reading_slowly_is_closed_at_the_stall_deadline(void **state)
{
	static struct harness h;
	const char *codes[] = {"H1", NULL};
	const char *extra[] = {"--stall-timeout", "2", NULL};
	static char log[65536];
	static uint8_t frames[STALL_SEARCHES * 64], buf[16384];
	size_t n = 0;
	struct onecard_conn *conn;
	Onecard__V1__Reply *reply;
	struct raw r;
	long long t0, cut = -1;

	assert_int_equal(harness_start(&h, codes, extra), 0);
	live_h = &h;
	assert_int_equal(harness_connect(&h, "H1", &conn), ONECARD_OK);
	for (int i = 0; i < 50; i++) {
		struct harness_enroll e;
		Onecard__V1__Demographics d = ONECARD__V1__DEMOGRAPHICS__INIT;

		harness_enroll_init(&e, (uint64_t)i + 1, "hosp:H1", "T-%d", i);
		d.name = "张三";
		d.birth_date = "1980-01-01";
		e.enroll.demographics = &d;
		assert_int_equal(
		    onecard_call(conn, &e.req, &reply), ONECARD_OK);
		assert_int_equal(reply->code, ONECARD__V1__CODE__OK);
		onecard_reply_free(reply);
	}
	onecard_close(conn);
	raw_open_fd(
	    &r, &h, "H1", 0, harness_tcp_connect_narrow(h.port, 4096, 1400));
	for (int i = 0; i < STALL_SEARCHES; i++) {
		Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
		Onecard__V1__Search search = ONECARD__V1__SEARCH__INIT;

		search.name = "张三";
		search.birth_date = "1980-01-01";
		req.id = (uint64_t)i + 1;
		req.op_case = ONECARD__V1__REQUEST__OP_SEARCH;
		req.search = &search;
		n += wire_encode(&req.base, frames + n, sizeof(frames) - n);
	}
	assert_int_equal(SSL_write(r.ssl, frames, (int)n), (int)n);
	t0 = harness_now_ms();
	while (cut < 0 && harness_now_ms() - t0 < 8000) {
		usleep(200 * 1000);
		/* 16 KiB every 200 ms, taken off the socket undecrypted. */
		(void)recv(r.fd, buf, sizeof(buf), MSG_DONTWAIT);
		assert_int_equal(harness_log(&h, log, sizeof(log)), 0);
		if (strstr(log, "replies not read within") != NULL)
			cut = harness_now_ms() - t0;
	}
	/* At the deadline (checked every 250 ms), then the end of the
	 * stream once the bytes already in the sockets are read. */
	assert_true(cut >= 0);
	assert_true(cut < 2000 + 250 + 1000);
	assert_true(wait_closed(r.fd, 5000, NULL, 0, NULL));
	raw_close(&r);
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	harness_cleanup(&h);
	live_h = NULL;
}

static void
test_frame_trickled_a_byte_a_second_is_cut_off(void **state)
{
	static struct harness h;
	const char *codes[] = {"H1", NULL};
	const char *extra[] = {"--idle-timeout", "2", NULL};
	struct raw r;
	uint8_t frame[64];
	long long t0, cut = -1;
	int flags;

	assert_int_equal(harness_start(&h, codes, extra), 0);
	live_h = &h;
	raw_open(&r, &h, "H1", 0);
	assert_int_equal(raw_ping(&r, 1), ONECARD__V1__CODE__OK);
	/* Request{id 2, ping{}} padded with a long unknown field, so the
	 * frame takes 21 s at a byte a second. */
	memset(frame, 0, sizeof(frame));
	frame[3] = 17;
	frame[4] = 0x08;
	frame[5] = 0x02;
	frame[6] = 0x52; /* ping {} */
	frame[7] = 0x00;
	frame[8] = 0xc2; /* field 1000, length-delimited, 10 bytes */
	frame[9] = 0x3e;
	frame[10] = 0x0a;
	flags = fcntl(r.fd, F_GETFL);
	fcntl(r.fd, F_SETFL, flags | O_NONBLOCK);
	t0 = harness_now_ms();
	for (int i = 0; i < 4 + 17; i++) {
		if (SSL_write(r.ssl, frame + i, 1) != 1 ||
		    wait_closed(r.fd, 1000, NULL, 0, NULL)) {
			cut = harness_now_ms() - t0;
			break;
		}
	}
	fcntl(r.fd, F_SETFL, flags);
	raw_close(&r);
	if (cut == -1)
		fail_msg("a frame trickled a byte a second was still being "
			 "read after %lld ms; --idle-timeout is 2 s",
		    harness_now_ms() - t0);
	assert_true(cut < 2000 + 2500);
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	harness_cleanup(&h);
	live_h = NULL;
}

#define HOGS 40

static void
test_silent_sockets_filling_max_conns_are_freed_at_the_deadline(void **state)
{
	static struct harness h;
	const char *codes[] = {"H1", NULL};
	const char *extra[] = {
	    "--max-conns", "40", "--handshake-timeout", "2", NULL};
	int fds[HOGS], served = -1;
	long long t0;

	assert_int_equal(harness_start(&h, codes, extra), 0);
	live_h = &h;
	/* Anyone who can reach the port takes every slot and says nothing. */
	for (int i = 0; i < HOGS; i++) {
		fds[i] = harness_tcp_connect(h.port);
		assert_true(fds[i] >= 0);
	}
	t0 = harness_now_ms();
	usleep(300 * 1000); /* every hog accepted */
	assert_int_equal(harness_ping_as(&h, "H1"), -1);
	/* The slots come back at the handshake deadline while the hogs still
	 * hold their sockets open; a hospital is then served. */
	while (harness_now_ms() - t0 < 8000) {
		if ((served = harness_ping_as(&h, "H1")) ==
		    ONECARD__V1__CODE__OK)
			break;
		usleep(200 * 1000);
	}
	if (served != ONECARD__V1__CODE__OK)
		fail_msg(
		    "no slot came back within 8 s of %d silent sockets", HOGS);
	assert_true(harness_now_ms() - t0 < 2000 + 3000);
	for (int i = 0; i < HOGS; i++) {
		assert_true(wait_closed(fds[i], 3000, NULL, 0, NULL));
		close(fds[i]);
	}
	harness_cleanup(&h);
	live_h = NULL;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(
		test_plaintext_http_is_closed_and_the_broker_serves_on,
		hostile_teardown),
	    cmocka_unit_test_teardown(
		test_connect_and_close_is_logged_as_peer_closed,
		hostile_teardown),
	    cmocka_unit_test_teardown(
		test_random_bytes_are_closed_and_the_broker_serves_on,
		hostile_teardown),
	    cmocka_unit_test_teardown(
		test_garbage_records_after_handshake_end_only_that_connection,
		hostile_teardown),
	    cmocka_unit_test_teardown(
		test_client_renegotiation_is_refused_and_the_broker_serves_on,
		hostile_teardown),
	    cmocka_unit_test_teardown(
		test_key_updates_mid_session_are_taken_and_the_session_goes_on,
		hostile_teardown),
	    cmocka_unit_test_teardown(
		test_decode_bomb_frame_is_refused_and_the_connection_goes_on,
		hostile_teardown),
	    cmocka_unit_test_teardown(
		test_half_sent_frame_is_closed_at_the_idle_deadline,
		hostile_teardown),
	    cmocka_unit_test_teardown(
		test_half_sent_frame_is_cut_off_with_the_idle_timeout_off,
		hostile_teardown),
	    cmocka_unit_test_teardown(
		test_client_reading_slowly_is_closed_at_the_stall_deadline,
		hostile_teardown),
	    cmocka_unit_test_teardown(
		test_frame_trickled_a_byte_a_second_is_cut_off,
		hostile_teardown),
	    cmocka_unit_test_teardown(
		test_silent_sockets_filling_max_conns_are_freed_at_the_deadline,
		hostile_teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
