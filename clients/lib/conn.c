/*
 * conn.c: the blocking libonecard connection.
 *
 * Owns one TCP socket (non-blocking underneath, driven with poll so every
 * wait has a deadline), its SSL, an output buffer of encoded request frames
 * and an input buffer of reply bytes, and the queue of ids sent but not yet
 * answered. Replies come back in the order sent: each one must carry the id
 * of the oldest pending request (or 0 for a reply that answers no request).
 * A transport failure breaks the connection for good; every later call
 * returns the same error and the caller reconnects.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "client.h"
#include "wire.h"

#define CONN_FLUSH_CHUNK (256 * 1024) /* bytes handed to one SSL_write */
#define CONN_READ_CHUNK  (64 * 1024)

struct onecard_conn {
	int fd;
	struct client_tls *tls; /* shared with connections like this one */
	SSL *ssl;
	int call_timeout_ms;
	size_t max_frame;
	uint64_t next_id;

	uint8_t *out; /* encoded frames not yet written */
	size_t out_len, out_cap;
	uint8_t *in; /* reply bytes read, from in_off on unused */
	size_t in_off, in_len, in_cap;

	uint64_t *pending; /* ring of ids sent, oldest at head */
	size_t p_head, p_count, p_cap;

	int broken; /* an onecard_err once the connection failed */
	char err[ONECARD_ERRLEN];
};

/* Milliseconds on a monotonic clock. */
static long long
conn_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left before deadline, at least 0. */
static int
conn_left(long long deadline)
{
	long long left = deadline - conn_now_ms();

	return left < 0 ? 0 : (int)(left > 3600000 ? 3600000 : left);
}

/* Mark the connection failed with err and a reason; returns err. */
static int conn_fail(struct onecard_conn *conn, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int
conn_fail(struct onecard_conn *conn, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(conn->err, sizeof conn->err, fmt, ap);
	va_end(ap);
	client_err_append_ssl(conn->err, sizeof conn->err);
	conn->broken = err;
	return err;
}

/* Mark the connection failed in TLS during what, saying why; ETLS. */
static int
conn_fail_tls(struct onecard_conn *conn, const char *what)
{
	snprintf(conn->err, sizeof conn->err, "%s", what);
	client_tls_explain(conn->ssl, conn->err, sizeof conn->err);
	conn->broken = ONECARD_ETLS;
	return ONECARD_ETLS;
}

const char *
onecard_last_error(const struct onecard_conn *conn)
{
	if (conn == NULL)
		return "no connection";
	return conn->err[0] != '\0' ? conn->err : "no error";
}

/* Wait until fd is ready for events or the deadline passes. 1, 0 or -1. */
static int
conn_poll(int fd, short events, long long deadline)
{
	struct pollfd pfd;
	int r;

	pfd.fd = fd;
	pfd.events = events;
	for (;;) {
		r = poll(&pfd, 1, conn_left(deadline));
		if (r == -1 && errno == EINTR)
			continue;
		return r;
	}
}

/* Non-blocking connect to one address, finished with poll. fd or -1. */
static int
conn_tcp_one(
    const struct addrinfo *ai, long long deadline, int *timed_out, int *error)
{
	socklen_t len = sizeof *error;
	int fd, one = 1, r;

	fd = socket(ai->ai_family,
	    ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
	if (fd == -1) {
		*error = errno;
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		*error = errno;
		close(fd);
		return -1;
	}
	r = conn_poll(fd, POLLOUT, deadline);
	if (r == 0) {
		*timed_out = 1;
		close(fd);
		return -1;
	}
	if (r == -1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, error, &len) == -1)
		*error = errno;
	if (r == -1 || *error != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Resolve host and connect to the first address that answers. */
static int
conn_tcp(struct onecard_conn *conn, const char *host, const char *port,
    long long deadline)
{
	struct addrinfo hints, *res, *ai;
	int fd = -1, r, timed_out = 0, error = 0;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((r = getaddrinfo(host, port, &hints, &res)) != 0)
		return conn_fail(conn, ONECARD_ECONNECT, "resolve %s: %s", host,
		    gai_strerror(r));
	for (ai = res; ai != NULL && fd == -1; ai = ai->ai_next) {
		if (conn_left(deadline) == 0) {
			timed_out = 1;
			break;
		}
		fd = conn_tcp_one(ai, deadline, &timed_out, &error);
	}
	freeaddrinfo(res);
	if (fd != -1) {
		conn->fd = fd;
		return ONECARD_OK;
	}
	if (timed_out)
		return conn_fail(conn, ONECARD_ETIMEDOUT,
		    "connect to %s:%s: timed out", host, port);
	return conn_fail(conn, ONECARD_ECONNECT, "connect to %s:%s: %s", host,
	    port, strerror(error));
}

/*
 * What an SSL call's result means: 0 when it wants fd readable or writable
 * (*events set), otherwise an onecard_err with conn->err filled.
 */
static int
conn_ssl_result(
    struct onecard_conn *conn, int r, const char *what, short *events)
{
	int e = SSL_get_error(conn->ssl, r);

	switch (e) {
	case SSL_ERROR_WANT_READ:
		*events = POLLIN;
		return 0;
	case SSL_ERROR_WANT_WRITE:
		*events = POLLOUT;
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		return conn_fail(conn, ONECARD_ECLOSED,
		    "%s: the broker closed the connection", what);
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() != 0)
			return conn_fail_tls(conn, what);
		if (errno == 0 || errno == ECONNRESET || errno == EPIPE)
			return conn_fail(conn, ONECARD_ECLOSED,
			    "%s: the broker closed the connection", what);
		return conn_fail(
		    conn, ONECARD_EIO, "%s: %s", what, strerror(errno));
	default:
		/* A peer that hangs up without close_notify has closed. */
		if (ERR_GET_REASON(ERR_peek_last_error()) ==
		    SSL_R_UNEXPECTED_EOF_WHILE_READING) {
			ERR_clear_error();
			return conn_fail(conn, ONECARD_ECLOSED,
			    "%s: the broker closed the connection", what);
		}
		return conn_fail_tls(conn, what);
	}
}

/* Drive the TLS handshake to its end or the deadline. */
static int
conn_handshake(struct onecard_conn *conn, long long deadline)
{
	short events;
	int r;

	for (;;) {
		ERR_clear_error();
		errno = 0;
		r = SSL_connect(conn->ssl);
		if (r == 1)
			return ONECARD_OK;
		if ((r = conn_ssl_result(conn, r, "TLS handshake", &events)) !=
		    0) {
			if (r == ONECARD_ECLOSED || r == ONECARD_EIO) {
				/* A close during the handshake is a refusal. */
				conn->broken = ONECARD_ETLS;
				client_tls_explain(
				    conn->ssl, conn->err, sizeof conn->err);
				return ONECARD_ETLS;
			}
			return r;
		}
		r = conn_poll(conn->fd, events, deadline);
		if (r == 0)
			return conn_fail(conn, ONECARD_ETIMEDOUT,
			    "TLS handshake: timed out");
		if (r == -1)
			return conn_fail(
			    conn, ONECARD_EIO, "poll: %s", strerror(errno));
	}
}

/* Free everything conn holds (no close_notify). */
static void
conn_free(struct onecard_conn *conn)
{
	if (conn == NULL)
		return;
	SSL_free(conn->ssl);
	client_tls_put(conn->tls);
	if (conn->fd != -1)
		close(conn->fd);
	free(conn->out);
	free(conn->in);
	free(conn->pending);
	free(conn);
}

int
onecard_connect(const struct onecard_options *optin, struct onecard_conn **out,
    char *errbuf, size_t errlen)
{
	struct onecard_options opt;
	struct onecard_conn *conn;
	char host[256], port[16];
	long long deadline;
	int r;

	*out = NULL;
	if (errbuf != NULL && errlen > 0)
		errbuf[0] = '\0';
	if (optin == NULL) {
		client_errf(errbuf, errlen, "no options given");
		return ONECARD_EINVAL;
	}
	client_options_resolve(optin, &opt);
	if (client_split_addr(
		opt.broker, host, sizeof host, port, sizeof port) == -1) {
		client_errf(errbuf, errlen,
		    "broker address \"%s\" is not HOST:PORT", opt.broker);
		return ONECARD_EINVAL;
	}
	if ((conn = calloc(1, sizeof *conn)) == NULL) {
		client_errf(errbuf, errlen, "out of memory");
		return ONECARD_ENOMEM;
	}
	conn->fd = -1;
	conn->call_timeout_ms = opt.call_timeout_ms;
	conn->max_frame = opt.max_frame;
	conn->next_id = 1;
	deadline = conn_now_ms() + opt.connect_timeout_ms;

	if ((conn->tls = client_tls_get(&opt, conn->err, sizeof conn->err)) ==
	    NULL) {
		r = ONECARD_EINVAL;
		goto fail;
	}
	conn->ssl = client_tls_new(conn->tls,
	    opt.server_name != NULL ? opt.server_name : host, opt.broker,
	    conn->err, sizeof conn->err);
	if (conn->ssl == NULL) {
		r = ONECARD_EINVAL;
		goto fail;
	}
	if ((r = conn_tcp(conn, host, port, deadline)) != ONECARD_OK)
		goto fail;
	if (client_tls_set_socket(conn->ssl, conn->fd) == -1) {
		r = conn_fail(conn, ONECARD_ENOMEM, "socket BIO");
		goto fail;
	}
	r = conn_handshake(conn, deadline);
	client_tls_done(conn->ssl, r == ONECARD_OK);
	if (r != ONECARD_OK)
		goto fail;
	*out = conn;
	return ONECARD_OK;
fail:
	client_errf(errbuf, errlen, "%s", conn->err);
	conn_free(conn);
	return r;
}

void
onecard_close(struct onecard_conn *conn)
{
	if (conn == NULL)
		return;
	if (conn->broken == 0 && conn->ssl != NULL) {
		/* One try: close_notify goes out unless the socket is full. */
		ERR_clear_error();
		SSL_shutdown(conn->ssl);
		ERR_clear_error();
	}
	conn_free(conn);
}

int
onecard_session_reused(const struct onecard_conn *conn)
{
	return conn != NULL && conn->ssl != NULL &&
	    SSL_session_reused(conn->ssl) == 1;
}

size_t
onecard_pending(const struct onecard_conn *conn)
{
	return conn->p_count;
}

/* Remember id as the newest pending request. */
static int
conn_pending_push(struct onecard_conn *conn, uint64_t id)
{
	uint64_t *p;
	size_t i, cap;

	if (conn->p_count == conn->p_cap) {
		cap = conn->p_cap == 0 ? 64 : conn->p_cap * 2;
		if ((p = malloc(cap * sizeof *p)) == NULL)
			return -1;
		for (i = 0; i < conn->p_count; i++)
			p[i] = conn->pending[(conn->p_head + i) % conn->p_cap];
		free(conn->pending);
		conn->pending = p;
		conn->p_cap = cap;
		conn->p_head = 0;
	}
	conn->pending[(conn->p_head + conn->p_count) % conn->p_cap] = id;
	conn->p_count++;
	return 0;
}

/* Make room for n more bytes in a buffer. */
static int
conn_reserve(uint8_t **buf, size_t *cap, size_t len, size_t n)
{
	size_t want = len + n, ncap;
	uint8_t *p;

	if (want <= *cap)
		return 0;
	ncap = *cap == 0 ? 16384 : *cap;
	while (ncap < want)
		ncap *= 2;
	if ((p = realloc(*buf, ncap)) == NULL)
		return -1;
	*buf = p;
	*cap = ncap;
	return 0;
}

int
onecard_send(struct onecard_conn *conn, Onecard__V1__Request *req)
{
	size_t n;

	if (conn == NULL || req == NULL)
		return ONECARD_EINVAL;
	if (conn->broken != 0)
		return conn->broken;
	if (req->op_case == ONECARD__V1__REQUEST__OP__NOT_SET) {
		snprintf(conn->err, sizeof conn->err, "request has no op");
		return ONECARD_EINVAL;
	}
	if (req->id == 0)
		req->id = conn->next_id++;
	else if (req->id >= conn->next_id)
		conn->next_id = req->id + 1;
	n = wire_frame_size(&req->base);
	if (n - WIRE_HEADER_LEN > conn->max_frame) {
		snprintf(conn->err, sizeof conn->err,
		    "request of %zu bytes is too large", n);
		return ONECARD_EINVAL;
	}
	if (conn_reserve(&conn->out, &conn->out_cap, conn->out_len, n) == -1 ||
	    conn_pending_push(conn, req->id) == -1) {
		snprintf(conn->err, sizeof conn->err, "out of memory");
		return ONECARD_ENOMEM;
	}
	if (wire_encode(&req->base, conn->out + conn->out_len, n) != n) {
		conn->p_count--;
		snprintf(conn->err, sizeof conn->err, "cannot encode request");
		return ONECARD_EINVAL;
	}
	conn->out_len += n;
	return ONECARD_OK;
}

/* Read what the socket has into the input buffer. 1 when some bytes came,
 * 0 when the SSL wants *events, or an onecard_err. */
static int
conn_read_some(struct onecard_conn *conn, short *events)
{
	int r;

	if (conn->in_off > 0 && conn->in_off == conn->in_len) {
		conn->in_off = conn->in_len = 0;
	} else if (conn->in_off > conn->in_cap / 2) {
		memmove(conn->in, conn->in + conn->in_off,
		    conn->in_len - conn->in_off);
		conn->in_len -= conn->in_off;
		conn->in_off = 0;
	}
	if (conn_reserve(
		&conn->in, &conn->in_cap, conn->in_len, CONN_READ_CHUNK) == -1)
		return conn_fail(conn, ONECARD_ENOMEM, "out of memory");
	ERR_clear_error();
	errno = 0;
	r = SSL_read(conn->ssl, conn->in + conn->in_len,
	    (int)(conn->in_cap - conn->in_len));
	if (r > 0) {
		conn->in_len += r;
		return 1;
	}
	return conn_ssl_result(conn, r, "read", events);
}

/* Write the output buffer out, reading replies meanwhile so neither side
 * stalls on a full socket. */
static int
conn_flush_until(struct onecard_conn *conn, long long deadline)
{
	size_t off = 0, chunk;
	short wev, rev;
	int r;

	while (off < conn->out_len) {
		chunk = conn->out_len - off;
		if (chunk > CONN_FLUSH_CHUNK)
			chunk = CONN_FLUSH_CHUNK;
		ERR_clear_error();
		errno = 0;
		r = SSL_write(conn->ssl, conn->out + off, (int)chunk);
		if (r > 0) {
			off += r;
			continue;
		}
		if ((r = conn_ssl_result(conn, r, "write", &wev)) != 0)
			return r;
		/* Socket full: take in replies while waiting for room. */
		for (;;) {
			rev = 0;
			r = conn_read_some(conn, &rev);
			if (r < 0)
				return r;
			if (r == 0)
				break;
		}
		r = conn_poll(conn->fd, wev | POLLIN, deadline);
		if (r == 0)
			return conn_fail(
			    conn, ONECARD_ETIMEDOUT, "write: timed out");
		if (r == -1)
			return conn_fail(
			    conn, ONECARD_EIO, "poll: %s", strerror(errno));
	}
	conn->out_len = 0;
	return ONECARD_OK;
}

int
onecard_flush(struct onecard_conn *conn)
{
	if (conn == NULL)
		return ONECARD_EINVAL;
	if (conn->broken != 0)
		return conn->broken;
	return conn_flush_until(conn, conn_now_ms() + conn->call_timeout_ms);
}

/* Take one whole reply frame from the input buffer, if there is one.
 * 1 with *reply set, 0 when more bytes are needed, or an onecard_err. */
static int
conn_take_reply(struct onecard_conn *conn, Onecard__V1__Reply **reply)
{
	const uint8_t *p = conn->in + conn->in_off;
	size_t avail = conn->in_len - conn->in_off, body_len;
	Onecard__V1__Reply *r;
	int over_cap = 0;

	switch (wire_peek(p, avail, conn->max_frame, &body_len)) {
	case WIRE_NEED_MORE:
		return 0;
	case WIRE_EMPTY:
		return conn_fail(conn, ONECARD_EPROTO, "empty reply frame");
	case WIRE_OVERSIZE:
		return conn_fail(conn, ONECARD_EPROTO,
		    "reply frame over %zu bytes", conn->max_frame);
	case WIRE_FRAME:
		break;
	}
	r = wire_reply_unpack(p + WIRE_HEADER_LEN, body_len,
	    body_len * WIRE_MEM_FACTOR + 65536, &over_cap);
	if (r == NULL)
		return conn_fail(conn, ONECARD_EPROTO,
		    over_cap ? "reply takes too much memory"
			     : "reply is not a valid message");
	conn->in_off += WIRE_HEADER_LEN + body_len;
	if (r->id != 0) {
		if (conn->p_count == 0 ||
		    conn->pending[conn->p_head] != r->id) {
			unsigned long long id = r->id;

			wire_reply_free(r);
			return conn_fail(conn, ONECARD_EPROTO,
			    "reply id %llu does not match the oldest request",
			    id);
		}
		conn->p_head = (conn->p_head + 1) % conn->p_cap;
		conn->p_count--;
	}
	*reply = r;
	return 1;
}

/* Wait for the next reply until deadline. */
static int
conn_recv_until(
    struct onecard_conn *conn, Onecard__V1__Reply **reply, long long deadline)
{
	short events;
	int r;

	for (;;) {
		if ((r = conn_take_reply(conn, reply)) != 0)
			return r < 0 ? r : ONECARD_OK;
		/* SSL may hold decrypted bytes the socket no longer shows. */
		events = 0;
		if ((r = conn_read_some(conn, &events)) < 0)
			return r;
		if (r == 1)
			continue;
		r = conn_poll(conn->fd, events, deadline);
		if (r == 0) {
			snprintf(conn->err, sizeof conn->err,
			    "no reply in %d ms", conn->call_timeout_ms);
			conn->broken = ONECARD_ETIMEDOUT;
			return ONECARD_ETIMEDOUT;
		}
		if (r == -1)
			return conn_fail(
			    conn, ONECARD_EIO, "poll: %s", strerror(errno));
	}
}

int
onecard_recv(struct onecard_conn *conn, Onecard__V1__Reply **reply)
{
	long long deadline;
	int r;

	if (conn == NULL || reply == NULL)
		return ONECARD_EINVAL;
	*reply = NULL;
	if (conn->broken != 0)
		return conn->broken;
	deadline = conn_now_ms() + conn->call_timeout_ms;
	if ((r = conn_flush_until(conn, deadline)) != ONECARD_OK)
		return r;
	return conn_recv_until(conn, reply, deadline);
}

int
onecard_call(struct onecard_conn *conn, Onecard__V1__Request *req,
    Onecard__V1__Reply **reply)
{
	int r;

	if (conn == NULL || req == NULL || reply == NULL)
		return ONECARD_EINVAL;
	*reply = NULL;
	if (conn->broken != 0)
		return conn->broken;
	if (conn->p_count != 0) {
		snprintf(conn->err, sizeof conn->err,
		    "onecard_call with %zu replies pending; use onecard_recv",
		    conn->p_count);
		return ONECARD_EINVAL;
	}
	if ((r = onecard_send(conn, req)) != ONECARD_OK)
		return r;
	return onecard_recv(conn, reply);
}

void
onecard_reply_free(Onecard__V1__Reply *reply)
{
	if (reply != NULL)
		wire_reply_free(reply);
}
