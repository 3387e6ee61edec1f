/*
 * conn.c: the blocking libonecard connection.
 *
 * Owns one TCP socket (non-blocking underneath, driven with poll so every
 * wait has a deadline), its SSL, an output buffer of encoded request frames
 * and an input buffer of reply bytes, and the queue of ids sent but not yet
 * answered. Replies come back in the order sent: each one must carry the id
 * of the oldest pending request (or 0 for a reply that answers no request).
 * On a subscription, events pushed with id 0 come between the replies: a
 * wait for a reply sets the events it meets aside for onecard_next_event,
 * and a wait for an event sets replies aside for onecard_recv, each in a
 * FIFO of its own. A transport failure breaks the connection for good;
 * every later call returns the same error and the caller reconnects.
 * Waiting for an event and finding none in time is not a failure.
 *
 * Several brokers (--broker A:P,B:P): connect takes the first that
 * answers, and onecard_call, when its broker fails under it (or answers
 * UNAVAILABLE), moves to the next one in place. A read is then sent again;
 * a write whose reply was lost is ONECARD_EUNKNOWN, since the broker may
 * have applied it (docs/cli.md, "Several brokers").
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#define CONN_FOREVER     LLONG_MAX /* a deadline that never passes */
#define CONN_ADDR_MAX    272       /* one "HOST:PORT" of the broker list */

/* Frames read while waiting for another kind, oldest first. */
struct conn_held {
	struct conn_held *next;
	Onecard__V1__Reply *reply;
};
struct conn_fifo {
	struct conn_held *head, **tail;
	size_t n;
};

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

	int subscribed;           /* onecard_subscribe was answered OK */
	struct conn_fifo events;  /* events met while waiting for a reply */
	struct conn_fifo replies; /* replies met while waiting for an event */

	int broken; /* an onecard_err once the connection failed */
	char err[ONECARD_ERRLEN];

	/* What connect was given, kept to connect again (failover). */
	struct onecard_options opt; /* strings point at the copies below */
	char *brokers, *ca, *cert, *key, *server_name;
	size_t nbrokers, cur;     /* how many; which one is in use */
	char addr[CONN_ADDR_MAX]; /* the one in use */
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

/* Wait until fd is ready for events or the deadline (CONN_FOREVER: none)
 * passes. 1, 0 or -1. */
static int
conn_poll(int fd, short events, long long deadline)
{
	struct pollfd pfd;
	int r;

	pfd.fd = fd;
	pfd.events = events;
	for (;;) {
		r = poll(&pfd, 1,
		    deadline == CONN_FOREVER ? -1 : conn_left(deadline));
		if (r == -1 && errno == EINTR)
			continue;
		/* conn_left caps one wait at an hour; a later deadline
		 * waits again. */
		if (r == 0 && conn_left(deadline) > 0)
			continue;
		return r;
	}
}

/* Keep reply at the end of f. 0 or -1 (out of memory). */
static int
conn_fifo_put(struct conn_fifo *f, Onecard__V1__Reply *reply)
{
	struct conn_held *h;

	if ((h = malloc(sizeof *h)) == NULL)
		return -1;
	h->next = NULL;
	h->reply = reply;
	if (f->head == NULL)
		f->tail = &f->head;
	*f->tail = h;
	f->tail = &h->next;
	f->n++;
	return 0;
}

/* Take the oldest reply out of f; NULL when it is empty. */
static Onecard__V1__Reply *
conn_fifo_take(struct conn_fifo *f)
{
	struct conn_held *h = f->head;
	Onecard__V1__Reply *reply;

	if (h == NULL)
		return NULL;
	f->head = h->next;
	f->n--;
	reply = h->reply;
	free(h);
	return reply;
}

/* Free what f holds. */
static void
conn_fifo_clear(struct conn_fifo *f)
{
	Onecard__V1__Reply *reply;

	while ((reply = conn_fifo_take(f)) != NULL)
		wire_reply_free(reply);
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

/* Drop the transport and everything owed on it: conn can connect again. */
static void
conn_drop(struct onecard_conn *conn)
{
	SSL_free(conn->ssl);
	conn->ssl = NULL;
	if (conn->fd != -1)
		close(conn->fd);
	conn->fd = -1;
	conn->out_len = 0;
	conn->in_off = conn->in_len = 0;
	conn->p_head = conn->p_count = 0;
	conn_fifo_clear(&conn->events);
	conn_fifo_clear(&conn->replies);
	conn->subscribed = 0;
	conn->broken = 0;
}

/* Free everything conn holds (no close_notify). */
static void
conn_free(struct onecard_conn *conn)
{
	if (conn == NULL)
		return;
	conn_drop(conn);
	client_tls_put(conn->tls);
	free(conn->out);
	free(conn->in);
	free(conn->pending);
	free(conn->brokers);
	free(conn->ca);
	free(conn->cert);
	free(conn->key);
	free(conn->server_name);
	free(conn);
}

/* Connect conn (dropped) to addr and shake hands. ONECARD_OK or an
 * error, with conn->err saying why. */
static int
conn_open(struct onecard_conn *conn, const char *addr)
{
	char host[256], port[16];
	long long deadline = conn_now_ms() + conn->opt.connect_timeout_ms;
	int r;

	snprintf(conn->addr, sizeof conn->addr, "%s", addr);
	conn->err[0] = '\0';
	if (client_split_addr(addr, host, sizeof host, port, sizeof port) ==
	    -1) {
		snprintf(conn->err, sizeof conn->err,
		    "broker address \"%s\" is not HOST:PORT", addr);
		return ONECARD_EINVAL;
	}
	conn->ssl = client_tls_new(conn->tls,
	    conn->opt.server_name != NULL ? conn->opt.server_name : host, addr,
	    conn->err, sizeof conn->err);
	if (conn->ssl == NULL)
		return ONECARD_EINVAL;
	if ((r = conn_tcp(conn, host, port, deadline)) != ONECARD_OK)
		return r;
	if (client_tls_set_socket(conn->ssl, conn->fd) == -1)
		return conn_fail(conn, ONECARD_ENOMEM, "socket BIO");
	r = conn_handshake(conn, deadline);
	client_tls_done(conn->ssl, r == ONECARD_OK);
	return r;
}

/* Copy s (may be NULL) into *dst: 0, or -1 out of memory. */
static int
conn_keep(char **dst, const char *s)
{
	*dst = NULL;
	return s != NULL && (*dst = strdup(s)) == NULL ? -1 : 0;
}

int
onecard_connect(const struct onecard_options *optin, struct onecard_conn **out,
    char *errbuf, size_t errlen)
{
	struct onecard_options opt;
	struct onecard_conn *conn;
	char addr[CONN_ADDR_MAX], why[ONECARD_ERRLEN] = "";
	size_t n;
	int r = ONECARD_ECONNECT;

	*out = NULL;
	if (errbuf != NULL && errlen > 0)
		errbuf[0] = '\0';
	if (optin == NULL) {
		client_errf(errbuf, errlen, "no options given");
		return ONECARD_EINVAL;
	}
	client_options_resolve(optin, &opt);
	for (n = 0; client_nth_broker(opt.broker, n, addr, sizeof addr) == 0;
	     n++) {
		char host[256], port[16];

		if (client_split_addr(
			addr, host, sizeof host, port, sizeof port) == -1)
			break;
	}
	if (n != client_count_brokers(opt.broker)) {
		client_errf(errbuf, errlen,
		    "broker address \"%s\" is not HOST:PORT (or a list "
		    "HOST:PORT,HOST:PORT)",
		    opt.broker);
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
	conn->nbrokers = n;
	conn->opt = opt;
	if (conn_keep(&conn->brokers, opt.broker) == -1 ||
	    conn_keep(&conn->ca, opt.ca) == -1 ||
	    conn_keep(&conn->cert, opt.cert) == -1 ||
	    conn_keep(&conn->key, opt.key) == -1 ||
	    conn_keep(&conn->server_name, opt.server_name) == -1) {
		client_errf(errbuf, errlen, "out of memory");
		conn_free(conn);
		return ONECARD_ENOMEM;
	}
	conn->opt.broker = conn->brokers;
	conn->opt.ca = conn->ca;
	conn->opt.cert = conn->cert;
	conn->opt.key = conn->key;
	conn->opt.server_name = conn->server_name;
	if ((conn->tls = client_tls_get(
		 &conn->opt, conn->err, sizeof conn->err)) == NULL) {
		client_errf(errbuf, errlen, "%s", conn->err);
		conn_free(conn);
		return ONECARD_EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		(void)client_nth_broker(conn->brokers, i, addr, sizeof addr);
		conn_drop(conn);
		if ((r = conn_open(conn, addr)) == ONECARD_OK) {
			conn->cur = i;
			*out = conn;
			return ONECARD_OK;
		}
		/* With one broker its reason is the whole message. */
		if (n == 1)
			snprintf(why, sizeof why, "%s", conn->err);
		else
			client_errf(why + strlen(why), sizeof why - strlen(why),
			    "%s%s: %s", i ? "; " : "", addr, conn->err);
		if (r == ONECARD_EINVAL || r == ONECARD_ENOMEM)
			break;
	}
	client_errf(errbuf, errlen, "%s", why);
	conn_free(conn);
	return r;
}

const char *
onecard_broker(const struct onecard_conn *conn)
{
	return conn != NULL ? conn->addr : "";
}

/*
 * The broker in use failed (its reason in conn->err): connect to the next
 * one that answers, in list order after it. ONECARD_OK, or the last error
 * with every broker's reason in conn->err and the connection broken.
 */
static int
conn_failover(struct onecard_conn *conn, int why)
{
	char addr[CONN_ADDR_MAX], failed[ONECARD_ERRLEN], tried[ONECARD_ERRLEN];
	int r = why;

	client_errf(failed, sizeof failed, "%s: %s", conn->addr, conn->err);
	tried[0] = '\0';
	for (size_t k = 1; k < conn->nbrokers; k++) {
		size_t i = (conn->cur + k) % conn->nbrokers;

		(void)client_nth_broker(conn->brokers, i, addr, sizeof addr);
		conn_drop(conn);
		if ((r = conn_open(conn, addr)) == ONECARD_OK) {
			conn->cur = i;
			client_errf(conn->err, sizeof conn->err,
			    "%s; moved to %s", failed, addr);
			return ONECARD_OK;
		}
		client_errf(tried + strlen(tried), sizeof tried - strlen(tried),
		    "; %s: %s", addr, conn->err);
	}
	client_errf(conn->err, sizeof conn->err, "%s%s", failed, tried);
	conn->broken = r;
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
	return conn->p_count + conn->replies.n;
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

/* What a wait is for. */
enum conn_want {
	CONN_WANT_REPLY, /* a reply to a request, or one with id 0 */
	CONN_WANT_EVENT, /* a frame with id 0: an event, or the broker's notice
			  */
};

/* Keep reply in f for a later call. 0, or ENOMEM (the connection failed). */
static int
conn_hold(
    struct onecard_conn *conn, struct conn_fifo *f, Onecard__V1__Reply *reply)
{
	if (conn_fifo_put(f, reply) == 0)
		return 0;
	wire_reply_free(reply);
	return conn_fail(conn, ONECARD_ENOMEM, "out of memory");
}

/*
 * Wait until deadline for the next frame of the kind wanted, keeping those
 * of the other kind aside: replies while waiting for an event, events while
 * waiting for a reply when hold_events is set (a reply with id 0 that is no
 * event is returned to either). ONECARD_OK with *reply set, ONECARD_ETIMEDOUT
 * (the connection is not marked failed: the caller decides), or an error.
 */
static int
conn_wait(struct onecard_conn *conn, enum conn_want want, int hold_events,
    Onecard__V1__Reply **reply, long long deadline)
{
	Onecard__V1__Reply *r = NULL;
	short events;
	int rc;

	for (;;) {
		if ((rc = conn_take_reply(conn, &r)) < 0)
			return rc;
		if (rc == 1) {
			if (want == CONN_WANT_EVENT && r->id != 0)
				rc = conn_hold(conn, &conn->replies, r);
			else if (want == CONN_WANT_REPLY && hold_events &&
			    client_reply_kind(r) == CLIENT_REPLY_EVENT)
				rc = conn_hold(conn, &conn->events, r);
			else {
				*reply = r;
				return ONECARD_OK;
			}
			if (rc != 0)
				return rc;
			continue;
		}
		/* SSL may hold decrypted bytes the socket no longer shows. */
		events = 0;
		if ((rc = conn_read_some(conn, &events)) < 0)
			return rc;
		if (rc == 1)
			continue;
		rc = conn_poll(conn->fd, events, deadline);
		if (rc == 0)
			return ONECARD_ETIMEDOUT;
		if (rc == -1)
			return conn_fail(
			    conn, ONECARD_EIO, "poll: %s", strerror(errno));
	}
}

/* Wait for the reply to the oldest request until deadline; a timeout
 * breaks the connection (the reply may still come, out of step). */
static int
conn_recv_until(
    struct onecard_conn *conn, Onecard__V1__Reply **reply, long long deadline)
{
	int r;

	if ((*reply = conn_fifo_take(&conn->replies)) != NULL)
		return ONECARD_OK;
	r = conn_wait(conn, CONN_WANT_REPLY, conn->subscribed, reply, deadline);
	if (r == ONECARD_ETIMEDOUT) {
		snprintf(conn->err, sizeof conn->err, "no reply in %d ms",
		    conn->call_timeout_ms);
		conn->broken = ONECARD_ETIMEDOUT;
	}
	return r;
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

/* 0 when no reply is owed to the caller, else ONECARD_EINVAL with why. */
static int
conn_check_idle(struct onecard_conn *conn, const char *what)
{
	size_t n = conn->p_count + conn->replies.n;

	if (n == 0)
		return 0;
	snprintf(conn->err, sizeof conn->err,
	    "%s with %zu replies pending; use onecard_recv", what, n);
	return ONECARD_EINVAL;
}

/* One call on the broker in use. */
static int
conn_call_once(struct onecard_conn *conn, Onecard__V1__Request *req,
    Onecard__V1__Reply **reply)
{
	int r;

	if ((r = onecard_send(conn, req)) != ONECARD_OK)
		return r;
	return onecard_recv(conn, reply);
}

/* May a request of this kind be sent again after its reply was lost? A
 * read may; a write may have been applied. */
static int
conn_resend_safe(int op_case)
{
	switch (op_case) {
	case ONECARD__V1__REQUEST__OP_PING:
	case ONECARD__V1__REQUEST__OP_LOOKUP:
	case ONECARD__V1__REQUEST__OP_SEARCH:
	case ONECARD__V1__REQUEST__OP_HISTORY:
	case ONECARD__V1__REQUEST__OP_EXPORT:
	case ONECARD__V1__REQUEST__OP_HOSPITAL_LIST:
	case ONECARD__V1__REQUEST__OP_STATS:
	case ONECARD__V1__REQUEST__OP_DUPLICATE_LIST:
	case ONECARD__V1__REQUEST__OP_DUPLICATE_SHOW:
		return 1;
	default:
		return 0;
	}
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
	if ((r = conn_check_idle(conn, "onecard_call")) != 0)
		return r;
	r = conn_call_once(conn, req, reply);
	/* One broker, or a subscription (whose place in the stream another
	 * broker does not know): nowhere to move. */
	if (conn->nbrokers < 2 || conn->subscribed)
		return r;
	if (r == ONECARD_OK &&
	    (*reply)->code == ONECARD__V1__CODE__UNAVAILABLE) {
		/* Nothing was changed: the next broker may take it. */
		snprintf(conn->err, sizeof conn->err, "UNAVAILABLE: %s",
		    (*reply)->message);
		if (conn_failover(conn, ONECARD_ECLOSED) != ONECARD_OK)
			return r;
		onecard_reply_free(*reply);
		*reply = NULL;
		return conn_call_once(conn, req, reply);
	}
	if (r != ONECARD_ECLOSED && r != ONECARD_EIO &&
	    r != ONECARD_ETIMEDOUT && r != ONECARD_EPROTO)
		return r;
	if (conn_failover(conn, r) != ONECARD_OK)
		return r;
	if (!conn_resend_safe(req->op_case)) {
		char why[ONECARD_ERRLEN];

		snprintf(why, sizeof why, "%s", conn->err);
		client_errf(conn->err, sizeof conn->err,
		    "outcome unknown: the write was sent but its reply was "
		    "lost (%s); check before sending it again",
		    why);
		return ONECARD_EUNKNOWN;
	}
	return conn_call_once(conn, req, reply);
}

/* A broker's answer other than OK: its code, with its reason kept. */
static int
conn_refused(struct onecard_conn *conn, Onecard__V1__Reply *r)
{
	int code = r->code;

	snprintf(conn->err, sizeof conn->err, "%s: %s", wire_code_name(code),
	    r->message);
	wire_reply_free(r);
	return code;
}

int
onecard_subscribe(struct onecard_conn *conn, uint64_t from_seq, int from_now,
    uint64_t *last_seq)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Subscribe sub = ONECARD__V1__SUBSCRIBE__INIT;
	Onecard__V1__Reply *r = NULL;
	long long deadline;
	int rc;

	if (conn == NULL)
		return ONECARD_EINVAL;
	if (conn->broken != 0)
		return conn->broken;
	if ((rc = conn_check_idle(conn, "onecard_subscribe")) != 0)
		return rc;
	sub.from_seq = from_seq;
	sub.from_now = from_now != 0;
	req.op_case = ONECARD__V1__REQUEST__OP_SUBSCRIBE;
	req.subscribe = &sub;
	if ((rc = onecard_send(conn, &req)) != ONECARD_OK)
		return rc;
	deadline = conn_now_ms() + conn->call_timeout_ms;
	if ((rc = conn_flush_until(conn, deadline)) != ONECARD_OK)
		return rc;
	/* Events of a subscription made before wait for onecard_next_event. */
	rc = conn_wait(conn, CONN_WANT_REPLY, 1, &r, deadline);
	if (rc == ONECARD_ETIMEDOUT) {
		snprintf(conn->err, sizeof conn->err,
		    "no answer to subscribe in %d ms", conn->call_timeout_ms);
		conn->broken = ONECARD_ETIMEDOUT;
	}
	if (rc != ONECARD_OK)
		return rc;
	if (r->code != ONECARD__V1__CODE__OK)
		return conn_refused(conn, r);
	if (r->id == 0 || r->result_case != ONECARD__V1__REPLY__RESULT_EVENT) {
		wire_reply_free(r);
		return conn_fail(conn, ONECARD_EPROTO,
		    "subscribe was answered OK without the last event's seq");
	}
	conn->subscribed = 1;
	if (last_seq != NULL)
		*last_seq = r->event->seq;
	wire_reply_free(r);
	return ONECARD_OK;
}

int
onecard_next_event(
    struct onecard_conn *conn, int timeout_ms, Onecard__V1__Reply **event)
{
	Onecard__V1__Reply *r = NULL;
	long long deadline;
	int rc;

	if (conn == NULL || event == NULL)
		return ONECARD_EINVAL;
	*event = NULL;
	if (conn->broken != 0)
		return conn->broken;
	if ((*event = conn_fifo_take(&conn->events)) != NULL)
		return ONECARD_OK;
	if (conn->out_len > 0 &&
	    (rc = conn_flush_until(
		 conn, conn_now_ms() + conn->call_timeout_ms)) != ONECARD_OK)
		return rc;
	deadline = timeout_ms < 0 ? CONN_FOREVER : conn_now_ms() + timeout_ms;
	rc = conn_wait(conn, CONN_WANT_EVENT, 1, &r, deadline);
	if (rc == ONECARD_ETIMEDOUT) {
		/* Silence, not a failure: what was read of a frame stays. */
		snprintf(conn->err, sizeof conn->err, "no event in %d ms",
		    timeout_ms);
		return rc;
	}
	if (rc != ONECARD_OK)
		return rc;
	if (client_reply_kind(r) == CLIENT_REPLY_EVENT) {
		*event = r;
		return ONECARD_OK;
	}
	/* The broker's word that answers no request: it closes after it. */
	if (r->code != ONECARD__V1__CODE__OK)
		return conn_refused(conn, r);
	wire_reply_free(r);
	return conn_fail(conn, ONECARD_EPROTO,
	    "a reply with id 0 held neither error nor event");
}

int
onecard_ping(struct onecard_conn *conn)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Ping ping = ONECARD__V1__PING__INIT;
	Onecard__V1__Reply *r = NULL;
	int rc;

	req.op_case = ONECARD__V1__REQUEST__OP_PING;
	req.ping = &ping;
	if ((rc = onecard_call(conn, &req, &r)) != ONECARD_OK)
		return rc;
	if (r->code != ONECARD__V1__CODE__OK)
		return conn_refused(conn, r);
	wire_reply_free(r);
	return ONECARD_OK;
}

int
onecard_lookup(struct onecard_conn *conn, const Onecard__V1__Identifier *id,
    const char *const *targets, size_t n, Onecard__V1__Reply **reply)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Lookup lookup = ONECARD__V1__LOOKUP__INIT;

	if (conn == NULL || id == NULL || reply == NULL ||
	    (n > 0 && targets == NULL))
		return ONECARD_EINVAL;
	*reply = NULL;
	lookup.identifier = (Onecard__V1__Identifier *)id;
	lookup.target_domains = (char **)targets;
	lookup.n_target_domains = n;
	req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
	req.lookup = &lookup;
	return onecard_call(conn, &req, reply);
}

int
onecard_watch(
    struct onecard_conn *conn, uint64_t *seq, onecard_watch_cb cb, void *arg)
{
	Onecard__V1__Reply *ev;
	uint64_t last;
	int rc, stop, now;

	if (conn == NULL || seq == NULL || cb == NULL)
		return ONECARD_EINVAL;
	now = *seq == ONECARD_SEQ_NOW;
	if ((rc = onecard_subscribe(conn, now ? 0 : *seq, now, &last)) !=
	    ONECARD_OK)
		return rc;
	if (now)
		*seq = last;
	for (;;) {
		rc = onecard_next_event(conn, conn->call_timeout_ms, &ev);
		if (rc == ONECARD_ETIMEDOUT) {
			/* Quiet for a call timeout: the broker must still
			 * answer, and a ping keeps its idle timer off us. */
			if ((rc = onecard_ping(conn)) != ONECARD_OK)
				return rc;
			continue;
		}
		if (rc != ONECARD_OK)
			return rc;
		stop = cb(ev->event, arg);
		if (stop >= 0)
			*seq = ev->event->seq;
		wire_reply_free(ev);
		if (stop != 0)
			return ONECARD_OK;
	}
}

void
onecard_reply_free(Onecard__V1__Reply *reply)
{
	if (reply != NULL)
		wire_reply_free(reply);
}
