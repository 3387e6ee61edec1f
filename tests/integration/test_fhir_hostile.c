/*
 * test_fhir_hostile.c: what the FHIR door (docs/fhir.md) must survive, sent
 * over plain sockets and OpenSSL to a real onecardd as test_hostile.c does
 * for the binary port.
 *
 * Each hostile request gets a clear status, or a closed connection where
 * no HTTP can be answered (no client certificate, plain HTTP on the HTTPS
 * port), within a bounded time, and afterwards the door still serves a
 * normal request from another client: headers over the limit (400 or
 * 431), a body of more than 1 MiB (413), a request trickled a byte a second
 * (cut at --fhir-timeout, its descriptor released), 10,000 query parameters,
 * invalid UTF-8 in a query.
 * --fhir-max-conns is held at its edge: N connections served, the N+1th
 * closed at once, and a slot freed lets the next one in.
 * A $match body nested too deep, or not UTF-8, gets 400 naming why.
 */
#define _GNU_SOURCE /* strcasestr */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "harness.h"

/* The door's request deadline in these tests (--fhir-timeout). */
#define TIMEOUT_S 2
/* --fhir-max-conns of the broker that tests the cap. */
#define CAP 3
/*
 * How much the broker may grow while refusing a 2 MiB body: its 64 KiB
 * limit and the buffers around it, with room for ASan's quarantine (a
 * body buffered whole would take more than 2 MiB).
 */
#define BODY_GROWTH_KIB 1536

static struct harness h;
static int fhir_port;

/* A TLS connection to the door, made with OpenSSL directly. */
struct tconn {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
};

/* An answer: its status (0: none came) and body, NUL-terminated. */
struct answer {
	int status;
	char *body;
	char buf[1 << 16];
	size_t len;
	int closed; /* the door closed the connection */
};

/* The FHIR port the broker printed ("fhir on 127.0.0.1:PORT"), or -1. */
static int
fhir_port_of(struct harness *hh)
{
	static char log[65536];
	const char *p;

	if (harness_log(hh, log, sizeof(log)) == -1 ||
	    (p = strstr(log, "fhir on 127.0.0.1:")) == NULL)
		return -1;
	return atoi(p + strlen("fhir on 127.0.0.1:"));
}

/* Handshake on fd as cn (NULL: no client certificate). 1 done, 0 failed. */
static int
tconn_open_fd(struct tconn *c, struct harness *hh, const char *cn, int fd)
{
	struct timeval tv = {5, 0};
	char path[400];

	memset(c, 0, sizeof(*c));
	c->fd = fd;
	assert_true(c->fd >= 0);
	c->ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(c->ctx);
	snprintf(path, sizeof(path), "%s/ca.pem", hh->certs);
	assert_int_equal(SSL_CTX_load_verify_locations(c->ctx, path, NULL), 1);
	if (cn != NULL) {
		snprintf(path, sizeof(path), "%s/%s.pem", hh->certs, cn);
		assert_int_equal(
		    SSL_CTX_use_certificate_chain_file(c->ctx, path), 1);
		snprintf(path, sizeof(path), "%s/%s.key", hh->certs, cn);
		assert_int_equal(
		    SSL_CTX_use_PrivateKey_file(c->ctx, path, SSL_FILETYPE_PEM),
		    1);
	}
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	c->ssl = SSL_new(c->ctx);
	SSL_set_fd(c->ssl, c->fd);
	SSL_set_tlsext_host_name(c->ssl, "localhost");
	return SSL_connect(c->ssl) == 1;
}

/* Connect to the door and handshake as cn. 1 done, 0 failed. */
static int
tconn_open(struct tconn *c, const char *cn)
{
	return tconn_open_fd(c, &h, cn, harness_tcp_connect(fhir_port));
}

static void
tconn_close(struct tconn *c)
{
	SSL_free(c->ssl);
	close(c->fd);
	SSL_CTX_free(c->ctx);
	ERR_clear_error();
}

/* Send len bytes; 0, or -1 when the door stopped taking them. */
static int
tconn_send(struct tconn *c, const void *p, size_t len)
{
	const char *s = p;

	while (len > 0) {
		int n = SSL_write(c->ssl, s, len > 65536 ? 65536 : (int)len);

		if (n <= 0)
			return -1;
		s += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Read an answer for up to ms: until the door closes the connection, or,
 * with one_only, until one whole answer (by its Content-Length) is in.
 */
static void
tconn_answer(struct answer *a, struct tconn *c, int ms, int one_only)
{
	long long end = harness_now_ms() + ms;
	char *hdr_end, *cl;

	a->status = 0;
	a->body = NULL;
	a->len = 0;
	a->closed = 0;
	a->buf[0] = '\0';
	while (harness_now_ms() < end && a->len < sizeof(a->buf) - 1) {
		struct pollfd p = {c->fd, POLLIN, 0};
		int n;

		if (SSL_pending(c->ssl) == 0 &&
		    poll(&p, 1, (int)(end - harness_now_ms())) <= 0)
			continue;
		n = SSL_read(c->ssl, a->buf + a->len,
		    (int)(sizeof(a->buf) - 1 - a->len));
		if (n <= 0) {
			int e = SSL_get_error(c->ssl, n);

			if (e == SSL_ERROR_WANT_READ)
				continue;
			a->closed = 1;
			break;
		}
		a->len += (size_t)n;
		a->buf[a->len] = '\0';
		if (one_only && (hdr_end = strstr(a->buf, "\r\n\r\n")) &&
		    (cl = strcasestr(a->buf, "\r\nContent-Length:")) &&
		    cl < hdr_end &&
		    a->len >= (size_t)(hdr_end + 4 - a->buf) +
			    strtoul(cl + 17, NULL, 10))
			break;
	}
	ERR_clear_error();
	if (strncmp(a->buf, "HTTP/1.", 7) == 0)
		a->status = atoi(a->buf + 9);
	if ((a->body = strstr(a->buf, "\r\n\r\n")) != NULL)
		a->body += 4;
}

/*
 * One request on a new connection as cn: head (the request line and
 * headers, without the blank line; "Connection: close" is added), then
 * bodylen bytes of body. The answer goes to a.
 */
static void
request_body(struct answer *a, const char *cn, const char *head,
    const char *body, size_t bodylen)
{
	const char *end = "\r\nConnection: close\r\n\r\n";
	struct tconn c;

	assert_true(tconn_open(&c, cn));
	if (tconn_send(&c, head, strlen(head)) == 0 &&
	    tconn_send(&c, end, strlen(end)) == 0 && bodylen > 0)
		(void)tconn_send(&c, body, bodylen);
	tconn_answer(a, &c, 5000, 0);
	tconn_close(&c);
}

/* A request without a body, its head made as printf does. */
static void request(struct answer *a, const char *cn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
request(struct answer *a, const char *cn, const char *fmt, ...)
{
	static char head[1 << 16];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < sizeof(head));
	request_body(a, cn, head, NULL, 0);
}

/* The door serves another client normally: metadata answers 200. */
static void
assert_door_serves(void)
{
	struct answer *a = malloc(sizeof(*a));

	assert_non_null(a);
	request(a, "XC002", "GET /fhir/metadata HTTP/1.1\r\nHost: localhost");
	if (a->status != 200)
		fail_msg("the door no longer serves: '%.200s'", a->buf);
	assert_non_null(strstr(a->body, "CapabilityStatement"));
	free(a);
}

/* The body is an OperationOutcome whose diagnostics hold want (NULL:
 * anything; "a|b": a or b). */
static void
assert_outcome(const struct answer *a, const char *want)
{
	json_t *o = json_loads(a->body ? a->body : "", 0, NULL);
	const char *diag;

	if (o == NULL)
		fail_msg("not JSON: '%.200s'", a->buf);
	assert_string_equal(
	    json_string_value(json_object_get(o, "resourceType")),
	    "OperationOutcome");
	diag = json_string_value(json_object_get(
	    json_array_get(json_object_get(o, "issue"), 0), "diagnostics"));
	assert_non_null(diag);
	if (want != NULL) {
		char alt[64], *w, *save = NULL;
		int named = 0;

		/* want: words separated by '|', any of which will do */
		snprintf(alt, sizeof(alt), "%s", want);
		for (w = strtok_r(alt, "|", &save); w && !named;
		     w = strtok_r(NULL, "|", &save))
			named = strcasestr(diag, w) != NULL;
		if (!named)
			fail_msg(
			    "diagnostics '%s' do not name '%s'", diag, want);
	}
	json_decref(o);
}

/* The broker's resident memory in KiB, from /proc/PID/status. */
static long
rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmRSS:", 6) == 0)
			kib = atol(line + 6);
	fclose(f);
	return kib;
}

/* Wait until the broker holds at most base + slack descriptors. */
static void
assert_fds_back(int base, int slack)
{
	int now = -1;

	for (int t = 0; t < 50; t++) {
		if ((now = harness_fd_count(h.pid)) <= base + slack)
			return;
		usleep(100 * 1000);
	}
	fail_msg("onecardd holds %d descriptors, %d before", now, base);
}

/* Wait up to ms for the door to close fd: 1 closed, 0 still open. Any
 * bytes it sends first go to buf (NUL-terminated) when given. */
static int
wait_closed(int fd, int ms, char *buf, size_t buflen)
{
	long long end = harness_now_ms() + ms;
	size_t have = 0;
	char scratch[4096];

	if (buf != NULL)
		buf[0] = '\0';
	while (harness_now_ms() < end) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t n;

		if (poll(&p, 1, (int)(end - harness_now_ms())) <= 0)
			continue;
		n = recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT);
		if (n > 0 && buf != NULL && have + 1 < buflen) {
			size_t k = (size_t)n < buflen - 1 - have
			    ? (size_t)n
			    : buflen - 1 - have;
			memcpy(buf + have, scratch, k);
			buf[have += k] = '\0';
		}
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return 1;
	}
	return 0;
}

static int
setup(void **state)
{
	static const char *const codes[] = {"XC001", "XC002", NULL};
	char deadline[16];
	const char *extra[] = {
	    "--fhir-listen", "127.0.0.1:0", "--fhir-timeout", deadline, NULL};

	(void)state;
	snprintf(deadline, sizeof(deadline), "%d", TIMEOUT_S);
	if (harness_start(&h, codes, extra) == -1 ||
	    (fhir_port = fhir_port_of(&h)) <= 0)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	int status;

	(void)state;
	status = harness_stop(&h, SIGTERM);
	harness_cleanup(&h);
	return status == 0 ? 0 : -1;
}

/*
 * Without a client certificate the handshake fails (under TLS 1.3 the
 * client learns it at its first read): no HTTP answer comes.
 */
static void
no_client_certificate_gets_no_http_answer(void **state)
{
	const char *get =
	    "GET /fhir/metadata HTTP/1.1\r\nHost: localhost\r\n\r\n";
	struct answer *a = malloc(sizeof(*a));
	struct tconn c;
	long long t0 = harness_now_ms();

	(void)state;
	assert_non_null(a);
	if (tconn_open(&c, NULL)) {
		(void)tconn_send(&c, get, strlen(get));
		tconn_answer(a, &c, 5000, 0);
		assert_int_equal(a->status, 0);
		assert_true(a->closed);
	}
	tconn_close(&c);
	assert_true(harness_now_ms() - t0 < 2000);
	free(a);
	assert_door_serves();
}

/* Plain HTTP on the HTTPS port: closed without an HTTP answer. */
static void
plain_http_on_the_https_port_is_closed_unanswered(void **state)
{
	const char *get = "GET /fhir/metadata HTTP/1.1\r\nHost: localhost\r\n"
			  "Accept: application/fhir+json\r\n\r\n";
	char buf[4096];
	int fd;

	(void)state;
	fd = harness_tcp_connect(fhir_port);
	assert_true(fd >= 0);
	assert_int_equal(
	    send(fd, get, strlen(get), MSG_NOSIGNAL), (ssize_t)strlen(get));
	/* Not TLS: refused at once, well before the request deadline. */
	assert_true(wait_closed(fd, 1500, buf, sizeof(buf)));
	assert_null(strstr(buf, "HTTP/"));
	close(fd);
	assert_door_serves();
}

/* A header line and a request line over 8192 bytes: 400 or 431. */
static void
headers_over_the_limit_get_400_or_431(void **state)
{
	static char big[9001];
	struct answer *a = malloc(sizeof(*a));

	(void)state;
	assert_non_null(a);
	memset(big, 'a', sizeof(big) - 1);
	request(a, "XC001",
	    "GET /fhir/metadata HTTP/1.1\r\nHost: localhost\r\nX-Big: %s", big);
	if (a->status != 400 && a->status != 431)
		fail_msg("a 9000-byte header got '%.80s'", a->buf);
	request(a, "XC001",
	    "GET /fhir/metadata?_pad=%s HTTP/1.1\r\nHost: localhost", big);
	if (a->status != 400 && a->status != 414 && a->status != 431)
		fail_msg("a 9000-byte request line got '%.80s'", a->buf);
	free(a);
	assert_door_serves();
}

/*
 * A body of 2 MiB with its Content-Length: refused before it is read
 * (libevent answers 413 when a declared length passes the max body size),
 * and the broker does not grow by it.
 */
static void
body_over_the_limit_is_refused_unread(void **state)
{
	static char chunk[65536];
	const char *hdr = "POST /fhir/Patient/$match HTTP/1.1\r\n"
			  "Host: localhost\r\n"
			  "Content-Type: application/fhir+json\r\n"
			  "Content-Length: 2097152\r\n\r\n";
	struct answer *a = malloc(sizeof(*a));
	struct tconn c;
	long before, after;
	char got[96];
	int status;

	(void)state;
	assert_non_null(a);
	memset(chunk, ' ', sizeof(chunk));
	before = rss_kib(h.pid);
	assert_true(tconn_open(&c, "XC001"));
	assert_int_equal(tconn_send(&c, hdr, strlen(hdr)), 0);
	/* The door may stop reading (and close) at any point of the body. */
	for (int i = 0; i < 32; i++)
		if (tconn_send(&c, chunk, sizeof(chunk)) == -1)
			break;
	tconn_answer(a, &c, 5000, 1);
	tconn_close(&c);
	after = rss_kib(h.pid);
	status = a->status;
	snprintf(got, sizeof(got), "%.80s", a->buf);
	free(a);
	if (status != 413)
		fail_msg("a 2 MiB body got '%s'", got);
	if (after - before > BODY_GROWTH_KIB)
		fail_msg("onecardd grew from %ld to %ld KiB", before, after);
	assert_door_serves();
}

/* The same body sent chunked, with no length declared: 413 or closed,
 * never read whole. */
static void
chunked_body_over_the_limit_is_refused(void **state)
{
	static char chunk[65536 + 16];
	const char *hdr = "POST /fhir/Patient/$match HTTP/1.1\r\n"
			  "Host: localhost\r\n"
			  "Content-Type: application/fhir+json\r\n"
			  "Transfer-Encoding: chunked\r\n\r\n";
	struct answer *a = malloc(sizeof(*a));
	struct tconn c;
	long before, after;
	char got[96];
	int n, status;

	(void)state;
	assert_non_null(a);
	n = snprintf(chunk, sizeof(chunk), "10000\r\n");
	memset(chunk + n, ' ', 65536);
	memcpy(chunk + n + 65536, "\r\n", 2);
	before = rss_kib(h.pid);
	assert_true(tconn_open(&c, "XC001"));
	assert_int_equal(tconn_send(&c, hdr, strlen(hdr)), 0);
	for (int i = 0; i < 32; i++)
		if (tconn_send(&c, chunk, (size_t)n + 65536 + 2) == -1)
			break;
	tconn_answer(a, &c, 5000, 1);
	tconn_close(&c);
	after = rss_kib(h.pid);
	status = a->status;
	snprintf(got, sizeof(got), "%.80s", a->buf);
	free(a);
	if (status != 413 && status != 0)
		fail_msg("a 2 MiB chunked body got '%s'", got);
	if (after - before > BODY_GROWTH_KIB)
		fail_msg("onecardd grew from %ld to %ld KiB", before, after);
	assert_door_serves();
}

/*
 * Slowloris: a request trickled a byte a second never lets the read go
 * idle, yet it is cut at --fhir-timeout from the connection's start, and
 * its descriptor is released.
 */
static void
request_trickled_a_byte_a_second_is_cut_at_the_deadline(void **state)
{
	const char *head = "GET /fhir/metadata HTTP/1.1\r\nHost: localhost\r\n"
			   "X-Slow: ";
	struct tconn c;
	long long t0, cut = -1;
	int base, flags;

	(void)state;
	base = harness_fd_count(h.pid);
	t0 = harness_now_ms();
	assert_true(tconn_open(&c, "XC001"));
	assert_int_equal(tconn_send(&c, head, strlen(head)), 0);
	flags = fcntl(c.fd, F_GETFL);
	fcntl(c.fd, F_SETFL, flags | O_NONBLOCK);
	/* A header that never ends, a byte a second for up to 15 s: the
	 * read never goes idle for the timeout. */
	for (int i = 0; i < 15; i++) {
		if (SSL_write(c.ssl, "x", 1) != 1 ||
		    wait_closed(c.fd, 1000, NULL, 0)) {
			cut = harness_now_ms() - t0;
			break;
		}
	}
	fcntl(c.fd, F_SETFL, flags);
	tconn_close(&c);
	if (cut == -1)
		fail_msg("a request trickled a byte a second was still read "
			 "after %lld ms; --fhir-timeout is %d s",
		    harness_now_ms() - t0, TIMEOUT_S);
	assert_true(cut >= TIMEOUT_S * 1000 - 200);
	assert_true(cut < TIMEOUT_S * 1000 + 1500);
	assert_fds_back(base, 0);
	assert_door_serves();
}

/* Query parameters past FHIR_MAX_PARAMS (16): 400, at once. */
static void
too_many_query_parameters_get_400(void **state)
{
	char q[512] = "";
	struct answer *a = malloc(sizeof(*a));

	(void)state;
	assert_non_null(a);
	for (int i = 0; i < 17; i++)
		snprintf(q + strlen(q), sizeof(q) - strlen(q), "%sp%d=1",
		    i ? "&" : "", i);
	request(a, "XC001", "GET /fhir/metadata?%s HTTP/1.1\r\nHost: x", q);
	assert_int_equal(a->status, 400);
	assert_outcome(a, "too many query parameters");
	free(a);
}

/*
 * 10,000 query parameters cannot fit the 8192-byte request line: the door
 * answers 400 (or 414/431) or closes, within a second, and serves on.
 */
static void
ten_thousand_query_parameters_are_refused_in_bounded_time(void **state)
{
	static char q[10000 * 2 + 1];
	struct answer *a = malloc(sizeof(*a));
	long long t0;

	(void)state;
	assert_non_null(a);
	for (int i = 0; i < 10000; i++)
		memcpy(q + 2 * i, i ? "&a" : "a=", 2);
	q[sizeof(q) - 1] = '\0';
	t0 = harness_now_ms();
	request(a, "XC001", "GET /fhir/metadata?%s HTTP/1.1\r\nHost: x", q);
	if (a->status != 400 && a->status != 414 && a->status != 431 &&
	    !(a->status == 0 && a->closed))
		fail_msg("10,000 query parameters got '%.80s'", a->buf);
	assert_true(harness_now_ms() - t0 < 1000);
	free(a);
	assert_door_serves();
}

/* Invalid UTF-8 in a query or a path: 400 or 404 with an OperationOutcome,
 * never a crash or a 500. */
static void
invalid_utf8_in_the_query_gets_400_or_404(void **state)
{
	static const char *const paths[] = {
	    "/fhir/Patient/"
	    "$ihe-pix?sourceIdentifier=urn:onecard:cn-id%7C%FF%FE",
	    "/fhir/Patient/$ihe-pix?sourceIdentifier=urn:onecard:hosp:%C0%AF"
	    "%7Cx",
	    "/fhir/Patient/$ihe-pix?sourceIdentifier=urn:onecard:cn-id%7Cx&"
	    "targetSystem=urn:onecard:hosp:%ED%A0%80",
	    "/fhir/Patient/%FF%FE",
	    "/fhir/Patient/$ihe-pix?sourceIdentifier=urn:onecard:cn-id%7C"
	    "110105199001010011%00%FF",
	};
	struct answer *a = malloc(sizeof(*a));

	(void)state;
	assert_non_null(a);
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		request(a, "XC001", "GET %s HTTP/1.1\r\nHost: x", paths[i]);
		if (a->status != 400 && a->status != 404)
			fail_msg("%s got '%.80s'", paths[i], a->buf);
		assert_outcome(a, NULL);
	}
	free(a);
	assert_door_serves();
}

/*
 * --fhir-max-conns at its edge (a broker of its own with CAP): CAP
 * connections are served and stay, the next is closed at once without an
 * answer, and once one of the CAP goes the next one is served.
 */
static void
connections_past_the_cap_are_closed_until_one_goes(void **state)
{
	static struct harness hc;
	static const char *const codes[] = {"XC001", NULL};
	char cap[16];
	const char *extra[] = {
	    "--fhir-listen", "127.0.0.1:0", "--fhir-max-conns", cap, NULL};
	const char *get = "GET /fhir/metadata HTTP/1.1\r\nHost: localhost\r\n"
			  "Accept: application/fhir+json\r\n\r\n";
	static char log[65536];
	struct answer *a = malloc(sizeof(*a));
	struct tconn held[CAP], over;
	long long t0;
	int port, served = 0;

	(void)state;
	assert_non_null(a);
	snprintf(cap, sizeof(cap), "%d", CAP);
	assert_int_equal(harness_start(&hc, codes, extra), 0);
	port = fhir_port_of(&hc);
	assert_true(port > 0);
	for (int i = 0; i < CAP; i++) {
		assert_true(tconn_open_fd(
		    &held[i], &hc, "XC001", harness_tcp_connect(port)));
		assert_int_equal(tconn_send(&held[i], get, strlen(get)), 0);
		tconn_answer(a, &held[i], 5000, 1);
		assert_int_equal(a->status, 200);
	}
	/* The one past the cap: closed at once, no handshake, no HTTP. */
	t0 = harness_now_ms();
	if (tconn_open_fd(&over, &hc, "XC001", harness_tcp_connect(port))) {
		(void)tconn_send(&over, get, strlen(get));
		tconn_answer(a, &over, 3000, 1);
		assert_int_equal(a->status, 0);
	}
	tconn_close(&over);
	assert_true(harness_now_ms() - t0 < 1000);
	assert_int_equal(harness_log(&hc, log, sizeof(log)), 0);
	assert_non_null(strstr(log, "--fhir-max-conns 3 reached"));
	/* The held ones were not disturbed. */
	for (int i = 0; i < CAP; i++) {
		assert_int_equal(tconn_send(&held[i], get, strlen(get)), 0);
		tconn_answer(a, &held[i], 5000, 1);
		assert_int_equal(a->status, 200);
	}
	/* One goes; its slot comes back as soon as the door sees it go. */
	tconn_close(&held[0]);
	t0 = harness_now_ms();
	while (!served && harness_now_ms() - t0 < 3000) {
		if (tconn_open_fd(
			&over, &hc, "XC001", harness_tcp_connect(port)) &&
		    tconn_send(&over, get, strlen(get)) == 0) {
			tconn_answer(a, &over, 3000, 1);
			served = a->status == 200;
		}
		tconn_close(&over);
		if (!served)
			usleep(100 * 1000);
	}
	assert_true(served);
	for (int i = 1; i < CAP; i++)
		tconn_close(&held[i]);
	free(a);
	assert_int_equal(harness_stop(&hc, SIGTERM), 0);
	harness_cleanup(&hc);
}

/* Bodies the JSON parser must refuse, on POST /fhir/Patient/$match. */

/* JSON nested 10,000 deep (20 kB): 400 naming the depth, no stack
 * blown. */
static void
match_with_json_nested_too_deep_gets_400(void **state)
{
	enum {
		DEPTH = 10000
	};
	static char body[2 * DEPTH + 64];
	struct answer *a = malloc(sizeof(*a));
	char head[256];
	size_t n = 0;

	(void)state;
	assert_non_null(a);
	n += (size_t)sprintf(body,
	    "{\"resourceType\":\"Parameters\","
	    "\"parameter\":");
	for (int i = 0; i < DEPTH; i++)
		body[n++] = '[';
	for (int i = 0; i < DEPTH; i++)
		body[n++] = ']';
	body[n++] = '}';
	body[n] = '\0';
	snprintf(head, sizeof(head),
	    "POST /fhir/Patient/$match HTTP/1.1\r\nHost: x\r\n"
	    "Content-Type: application/fhir+json\r\nContent-Length: %zu",
	    n);
	request_body(a, "XC001", head, body, n);
	assert_int_equal(a->status, 400);
	assert_outcome(a, "depth|nest");
	free(a);
	assert_door_serves();
}

/* A body with invalid UTF-8 in a string: 400 naming UTF-8. */
static void
match_with_invalid_utf8_gets_400(void **state)
{
	const char *body =
	    "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":"
	    "\"resource\",\"resource\":{\"resourceType\":\"Patient\","
	    "\"name\":[{\"text\":\"\xff\xfe\xc0\xaf\"}]}}]}";
	struct answer *a = malloc(sizeof(*a));
	char head[256];

	(void)state;
	assert_non_null(a);
	snprintf(head, sizeof(head),
	    "POST /fhir/Patient/$match HTTP/1.1\r\nHost: x\r\n"
	    "Content-Type: application/fhir+json\r\nContent-Length: %zu",
	    strlen(body));
	request_body(a, "XC001", head, body, strlen(body));
	assert_int_equal(a->status, 400);
	assert_outcome(a, "UTF-8");
	free(a);
	assert_door_serves();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(no_client_certificate_gets_no_http_answer),
	    cmocka_unit_test(plain_http_on_the_https_port_is_closed_unanswered),
	    cmocka_unit_test(headers_over_the_limit_get_400_or_431),
	    cmocka_unit_test(body_over_the_limit_is_refused_unread),
	    cmocka_unit_test(chunked_body_over_the_limit_is_refused),
	    cmocka_unit_test(
		request_trickled_a_byte_a_second_is_cut_at_the_deadline),
	    cmocka_unit_test(too_many_query_parameters_get_400),
	    cmocka_unit_test(
		ten_thousand_query_parameters_are_refused_in_bounded_time),
	    cmocka_unit_test(invalid_utf8_in_the_query_gets_400_or_404),
	    cmocka_unit_test(match_with_json_nested_too_deep_gets_400),
	    cmocka_unit_test(match_with_invalid_utf8_gets_400),
	    cmocka_unit_test(
		connections_past_the_cap_are_closed_until_one_goes),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name(
	    "fhir_hostile", tests, setup, teardown);
}
