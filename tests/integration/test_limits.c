/*
 * test_limits.c: the broker's named limits, each at its edge, against a
 * real onecardd. A client that sends but never reads is cut off once its
 * output is stuck, while others are served; an idle client is closed after
 * --idle-timeout and a busy one is not; --max-conns admits exactly that
 * many; --max-ids and --max-name accept the limit and refuse one more.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
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

/* Enroll as conn with n identifiers hosp:H1=<tag>-i and this name. */
static int
enroll_code(
    struct onecard_conn *conn, const char *tag, size_t n, const char *name)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Enroll enroll = ONECARD__V1__ENROLL__INIT;
	Onecard__V1__Demographics demo = ONECARD__V1__DEMOGRAPHICS__INIT;
	Onecard__V1__Identifier ids[32], *idp[32];
	Onecard__V1__Reply *reply = NULL;
	char values[32][32];
	int code = -1;

	assert_true(n <= 32);
	for (size_t i = 0; i < n; i++) {
		onecard__v1__identifier__init(&ids[i]);
		snprintf(values[i], sizeof(values[i]), "%s-%zu", tag, i);
		ids[i].domain = "hosp:H1";
		ids[i].value = values[i];
		idp[i] = &ids[i];
	}
	enroll.identifiers = idp;
	enroll.n_identifiers = n;
	if (name != NULL) {
		demo.name = (char *)name;
		enroll.demographics = &demo;
	}
	req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
	req.enroll = &enroll;
	if (onecard_call(conn, &req, &reply) == ONECARD_OK) {
		code = reply->code;
		onecard_reply_free(reply);
	}
	return code;
}

static void
test_client_that_never_reads_is_cut_off_while_others_are_served(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", "H2", NULL};
	const char *extra[] = {"--max-pending-output", "65536",
	    "--idle-timeout", "2", "--log-level", "debug", NULL};
	static char log[1 << 20];
	struct sockaddr_in sin;
	uint8_t pings[8 * 1024], buf[16384];
	char path[400];
	SSL_CTX *ctx;
	SSL *ssl;
	int fd, small = 4096, k, closed = 0;
	long long start;

	assert_int_equal(harness_start(&h, codes, extra), 0);

	/* A raw client with a small receive window that never reads. */
	ctx = SSL_CTX_new(TLS_client_method());
	snprintf(path, sizeof(path), "%s/ca.pem", h.certs);
	SSL_CTX_load_verify_locations(ctx, path, NULL);
	snprintf(path, sizeof(path), "%s/H1.pem", h.certs);
	SSL_CTX_use_certificate_chain_file(ctx, path);
	snprintf(path, sizeof(path), "%s/H1.key", h.certs);
	SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(h.port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	assert_int_equal(SSL_connect(ssl), 1);
	for (size_t i = 0; i < sizeof(pings); i += 8) {
		/* Request{id 1, ping {}} */
		const uint8_t one[] = {0, 0, 0, 4, 0x08, 0x01, 0x52, 0x00};
		memcpy(pings + i, one, 8);
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

	/* Write until the broker stops taking requests, or it cuts us off. */
	start = harness_now_ms();
	while (harness_now_ms() - start < 20000) {
		k = SSL_write(ssl, pings, sizeof(pings));
		if (k > 0)
			continue;
		if (SSL_get_error(ssl, k) != SSL_ERROR_WANT_WRITE) {
			closed = 1; /* the broker reset us already */
			break;
		}
		/* Blocked: others are still served meanwhile. */
		assert_int_equal(
		    harness_ping_as(&h, "H2"), ONECARD__V1__CODE__OK);
		struct pollfd pfd = {fd, POLLOUT, 0};
		if (poll(&pfd, 1, 4000) == 0)
			break; /* stuck for longer than the idle timeout */
	}
	ERR_clear_error();
	/* Now read: whatever was queued comes out, then the end. */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	struct timeval tv = {10, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	start = harness_now_ms();
	while (!closed && harness_now_ms() - start < 30000) {
		k = SSL_read(ssl, buf, sizeof(buf));
		if (k <= 0) {
			int e = SSL_get_error(ssl, k);
			/* A timeout would be WANT_READ with EAGAIN. */
			closed = !(e == SSL_ERROR_WANT_READ ||
			    (e == SSL_ERROR_SYSCALL && errno == EAGAIN));
			break;
		}
	}
	assert_true(closed);
	/* Cut off for its stuck output, not for being idle. */
	assert_int_equal(harness_log(&h, log, sizeof(log)), 0);
	assert_non_null(strstr(log, "pausing reads"));
	assert_non_null(strstr(log, "reason=\"output stuck\""));
	assert_int_equal(harness_ping_as(&h, "H2"), ONECARD__V1__CODE__OK);
	SSL_free(ssl);
	close(fd);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	harness_cleanup(&h);
}

static void
test_idle_client_is_closed_after_idle_timeout(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	const char *extra[] = {"--idle-timeout", "1", NULL};
	struct onecard_conn *idle, *busy;

	assert_int_equal(harness_start(&h, codes, extra), 0);
	assert_int_equal(harness_connect(&h, "H1", &idle), ONECARD_OK);
	assert_int_equal(harness_connect(&h, "H1", &busy), ONECARD_OK);
	assert_int_equal(harness_ping(idle), ONECARD__V1__CODE__OK);
	for (int i = 0; i < 8; i++) { /* 2.4 s of activity, 0.3 s apart */
		assert_int_equal(harness_ping(busy), ONECARD__V1__CODE__OK);
		usleep(300 * 1000);
	}
	assert_int_equal(harness_ping(idle), -1);
	assert_int_equal(harness_ping(busy), ONECARD__V1__CODE__OK);
	onecard_close(idle);
	onecard_close(busy);
	harness_cleanup(&h);
}

static void
test_max_conns_admits_exactly_that_many(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	const char *extra[] = {"--max-conns", "3", NULL};
	struct onecard_conn *c[3];
	int code = -1;

	assert_int_equal(harness_start(&h, codes, extra), 0);
	/* The harness's own admin connection may still be closing. */
	for (int i = 0; i < 3; i++) {
		int r = -1;
		for (int t = 0; t < 50 && r != ONECARD__V1__CODE__OK; t++) {
			if (harness_connect(&h, "H1", &c[i]) != ONECARD_OK) {
				usleep(100 * 1000);
				continue;
			}
			if ((r = harness_ping(c[i])) != ONECARD__V1__CODE__OK) {
				onecard_close(c[i]);
				usleep(100 * 1000);
			}
		}
		assert_int_equal(r, ONECARD__V1__CODE__OK);
	}
	assert_int_equal(harness_ping_as(&h, "H1"), -1);
	assert_int_equal(harness_ping(c[0]), ONECARD__V1__CODE__OK);
	onecard_close(c[0]);
	/* A slot is free again once the broker has seen the close. */
	for (int t = 0; t < 50 && code != ONECARD__V1__CODE__OK; t++) {
		usleep(100 * 1000);
		code = harness_ping_as(&h, "H1");
	}
	assert_int_equal(code, ONECARD__V1__CODE__OK);
	onecard_close(c[1]);
	onecard_close(c[2]);
	harness_cleanup(&h);
}

static void
test_max_ids_and_max_name_hold_at_their_edge(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	const char *extra[] = {"--max-ids", "3", "--max-name", "8", NULL};
	struct onecard_conn *conn;

	assert_int_equal(harness_start(&h, codes, extra), 0);
	assert_int_equal(harness_connect(&h, "H1", &conn), ONECARD_OK);
	assert_int_equal(
	    enroll_code(conn, "A", 3, NULL), ONECARD__V1__CODE__OK);
	assert_int_equal(enroll_code(conn, "B", 4, NULL),
	    ONECARD__V1__CODE__INVALID_ARGUMENT);
	assert_int_equal(
	    enroll_code(conn, "C", 1, "ABCDEFGH"), ONECARD__V1__CODE__OK);
	assert_int_equal(enroll_code(conn, "D", 1, "ABCDEFGHI"),
	    ONECARD__V1__CODE__INVALID_ARGUMENT);
	/* The refusals changed nothing and the connection goes on. */
	assert_int_equal(harness_ping(conn), ONECARD__V1__CODE__OK);
	onecard_close(conn);
	harness_cleanup(&h);
}

static void
test_silent_client_is_closed_after_handshake_timeout(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	const char *extra[] = {"--handshake-timeout", "1", NULL};
	struct sockaddr_in sin;
	struct timeval tv = {10, 0};
	char byte;
	long long start;
	int fd;

	assert_int_equal(harness_start(&h, codes, extra), 0);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(h.port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	/* Say nothing: the broker hangs up after about a second. */
	start = harness_now_ms();
	assert_true(recv(fd, &byte, 1, 0) <= 0);
	assert_true(harness_now_ms() - start >= 500);
	assert_true(harness_now_ms() - start < 5000);
	close(fd);
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	harness_cleanup(&h);
}

static void
test_bad_limit_is_refused_at_start_naming_the_flag(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	char out[1024], err[4096], cmd[2400], conf[400];
	FILE *f;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	snprintf(cmd, sizeof(cmd),
	    "onecardd --listen 127.0.0.1:0 --db '%s/other.db' "
	    "--cert '%s/broker.pem' --key '%s/broker.key' --ca '%s/ca.pem' "
	    "--max-frame 12",
	    h.dir, h.certs, h.certs, h.certs);
	assert_int_equal(
	    harness_run2(&h, "admin", out, sizeof(out), err, sizeof(err), cmd),
	    1);
	assert_non_null(strstr(err, "--max-frame"));

	/* The same through the config file names its key. */
	snprintf(conf, sizeof(conf), "%s/bad.conf", h.dir);
	assert_non_null(f = fopen(conf, "w"));
	fprintf(f, "[onecardd]\nmax_conns = lots\n");
	fclose(f);
	snprintf(cmd, sizeof(cmd),
	    "onecardd --config '%s' --db '%s/other.db' --cert '%s/broker.pem' "
	    "--key '%s/broker.key' --ca '%s/ca.pem'",
	    conf, h.dir, h.certs, h.certs, h.certs);
	assert_int_equal(
	    harness_run2(&h, "admin", out, sizeof(out), err, sizeof(err), cmd),
	    1);
	assert_non_null(strstr(err, "max_conns"));
	harness_cleanup(&h);
}

static void
test_config_file_sets_limits_and_flags_override_it(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	char conf[400];
	const char *extra[] = {"--config", conf, "--max-ids", "3", NULL};
	struct onecard_conn *conn;
	FILE *f;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	snprintf(conf, sizeof(conf), "%s/onecardd.conf", h.dir);
	assert_non_null(f = fopen(conf, "w"));
	fprintf(f, "; test\n[onecardd]\nmax_ids = 1\nmax_name = 8\n");
	fclose(f);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	assert_int_equal(harness_restart(&h, extra), 0);
	assert_int_equal(harness_connect(&h, "H1", &conn), ONECARD_OK);
	/* max_ids = 1 from the file, 3 from the flag: the flag wins. */
	assert_int_equal(
	    enroll_code(conn, "E", 3, NULL), ONECARD__V1__CODE__OK);
	assert_int_equal(enroll_code(conn, "F", 4, NULL),
	    ONECARD__V1__CODE__INVALID_ARGUMENT);
	/* max_name = 8 from the file holds. */
	assert_int_equal(enroll_code(conn, "G", 1, "ABCDEFGHI"),
	    ONECARD__V1__CODE__INVALID_ARGUMENT);
	onecard_close(conn);
	harness_cleanup(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		test_client_that_never_reads_is_cut_off_while_others_are_served),
	    cmocka_unit_test(test_idle_client_is_closed_after_idle_timeout),
	    cmocka_unit_test(
		test_silent_client_is_closed_after_handshake_timeout),
	    cmocka_unit_test(test_max_conns_admits_exactly_that_many),
	    cmocka_unit_test(test_max_ids_and_max_name_hold_at_their_edge),
	    cmocka_unit_test(
		test_bad_limit_is_refused_at_start_naming_the_flag),
	    cmocka_unit_test(
		test_config_file_sets_limits_and_flags_override_it),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
