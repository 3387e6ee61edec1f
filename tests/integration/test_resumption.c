/*
 * test_resumption.c: a hospital that reconnects resumes its TLS session
 * instead of paying for a full handshake, on TLS 1.3 (tickets) and TLS 1.2,
 * and a resumed session still carries the client's identity.
 *
 * It drives OpenSSL directly rather than through libonecard so it can keep
 * the session between connections and ask whether it was reused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "harness.h"
#include "wire.h"

static struct harness h;

static int
setup(void **state)
{
	static const char *const codes[] = {"XC001", NULL};

	return harness_start(&h, codes, NULL);
}

static int
teardown(void **state)
{
	harness_cleanup(&h);
	return 0;
}

/* A client context with XC001's certificate, capped at max_version. */
static SSL_CTX *
client_ctx(int max_version)
{
	char path[400];
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	assert_non_null(ctx);
	SSL_CTX_set_max_proto_version(ctx, max_version);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
	snprintf(path, sizeof path, "%s/ca.pem", h.certs);
	assert_int_equal(SSL_CTX_load_verify_locations(ctx, path, NULL), 1);
	snprintf(path, sizeof path, "%s/XC001.pem", h.certs);
	assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, path), 1);
	snprintf(path, sizeof path, "%s/XC001.key", h.certs);
	assert_int_equal(
	    SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
}

/*
 * Connect (offering sess when not NULL), ping, and return the session to
 * keep. *reused says whether the broker resumed the offered session.
 */
static SSL_SESSION *
connect_and_ping(SSL_CTX *ctx, SSL_SESSION *sess, int *reused)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Ping ping = ONECARD__V1__PING__INIT;
	Onecard__V1__Reply *reply;
	uint8_t buf[256], in[4096];
	size_t n, got = 0, body;
	SSL_SESSION *out;
	SSL *ssl;
	int fd;

	sin.sin_port = htons(h.port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	ssl = SSL_new(ctx);
	assert_non_null(ssl);
	SSL_set_fd(ssl, fd);
	SSL_set1_host(ssl, "localhost");
	SSL_set_tlsext_host_name(ssl, "localhost");
	if (sess != NULL)
		SSL_set_session(ssl, sess);
	assert_int_equal(SSL_connect(ssl), 1);

	/* A round trip also delivers TLS 1.3's tickets, sent after the
	 * handshake, and proves the broker knows who we are. */
	req.id = 7;
	req.op_case = ONECARD__V1__REQUEST__OP_PING;
	req.ping = &ping;
	n = wire_encode(&req.base, buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(SSL_write(ssl, buf, (int)n), (int)n);
	for (;;) {
		int r = SSL_read(ssl, in + got, (int)(sizeof in - got));
		assert_true(r > 0);
		got += (size_t)r;
		if (wire_peek(in, got, sizeof in, &body) == WIRE_FRAME)
			break;
	}
	reply = wire_reply_unpack(in + WIRE_HEADER_LEN, body, 1 << 16, NULL);
	assert_non_null(reply);
	assert_int_equal(reply->id, 7);
	assert_int_equal(reply->code, ONECARD__V1__CODE__OK);
	wire_reply_free(reply);

	*reused = SSL_session_reused(ssl);
	out = SSL_get1_session(ssl);
	SSL_shutdown(ssl);
	SSL_free(ssl);
	close(fd);
	return out;
}

/* Full handshake first, then a resumed one, at the given version. */
static void
check_resumes(int version)
{
	SSL_CTX *ctx = client_ctx(version);
	SSL_SESSION *first, *second;
	int reused;

	first = connect_and_ping(ctx, NULL, &reused);
	assert_false(reused);
	assert_non_null(first);
	assert_true(SSL_SESSION_is_resumable(first));
	second = connect_and_ping(ctx, first, &reused);
	assert_true(reused);
	SSL_SESSION_free(first);
	SSL_SESSION_free(second);
	SSL_CTX_free(ctx);
}

static void
reconnect_resumes_tls13_session(void **state)
{
	check_resumes(TLS1_3_VERSION);
}

static void
reconnect_resumes_tls12_session(void **state)
{
	check_resumes(TLS1_2_VERSION);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(reconnect_resumes_tls13_session),
	    cmocka_unit_test(reconnect_resumes_tls12_session),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
