/*
 * async.c: the libonecard connection for programs with their own libevent
 * loop (onecard-bench).
 *
 * Owns the TCP connect (its own step, so a refused or unreachable broker
 * reads as ECONNECT with the reason), then one bufferevent_openssl, the queue
 * of callbacks waiting for replies (in the order the requests were sent) and
 * the connect callback. Every callback handed in is called exactly once:
 * with its reply, or with NULL and an error when the connection fails or is
 * closed. A callback may call onecard_async_send or onecard_async_close; the
 * handle is then freed only once the library is back out of its callbacks.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "client.h"
#include "wire.h"

struct async_req {
	uint64_t id;
	onecard_reply_cb cb;   /* wants the decoded reply, or */
	onecard_raw_cb raw_cb; /* wants its bytes */
	void *arg;
};

enum async_state {
	ASYNC_CONNECTING,
	ASYNC_READY,
	ASYNC_FAILED,
};

struct onecard_async {
	struct event_base *base;
	struct bufferevent *bev;
	struct client_tls *tls; /* shared with connections like this one */
	int resumed;            /* the handshake resumed a session */
	enum async_state state;
	int failed_err;
	struct timeval call_tv;
	size_t max_frame;
	uint64_t next_id;

	onecard_connect_cb connect_cb;
	void *connect_arg;

	struct async_req *q; /* ring of requests awaiting replies */
	size_t q_head, q_count, q_cap;

	int depth;   /* how deep we are inside user callbacks */
	int closing; /* onecard_async_close was called inside a callback */
	struct event *start_ev;
	char err[ONECARD_ERRLEN];

	/* Until TLS starts: the addresses left to try, the socket being
	 * connected, its SSL and the requests queued meanwhile. */
	struct addrinfo *ai, *ai_next;
	int fd;
	struct event *tcp_ev;
	SSL *ssl;
	struct evbuffer *early;
	long long connect_deadline; /* ms, monotonic: TCP and TLS share it */
	char addr[300];
};

static void async_fail(struct onecard_async *, int);
static void async_tcpcb(evutil_socket_t, short, void *);
static int async_tls_start(struct onecard_async *);

/* Milliseconds on a monotonic clock. */
static long long
async_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What is left of the connect timeout (at least 1 ms). */
static struct timeval
async_connect_left(struct onecard_async *ac)
{
	long long left = ac->connect_deadline - async_now_ms();
	struct timeval tv;

	if (left < 1)
		left = 1;
	tv.tv_sec = left / 1000;
	tv.tv_usec = (left % 1000) * 1000;
	return tv;
}

const char *
onecard_async_last_error(const struct onecard_async *ac)
{
	if (ac == NULL)
		return "no connection";
	return ac->err[0] != '\0' ? ac->err : "no error";
}

size_t
onecard_async_pending(const struct onecard_async *ac)
{
	return ac->q_count;
}

/* Drop the connect in progress, if any. */
static void
async_drop_tcp(struct onecard_async *ac)
{
	if (ac->tcp_ev != NULL) {
		event_free(ac->tcp_ev);
		ac->tcp_ev = NULL;
	}
	if (ac->fd != -1) {
		close(ac->fd);
		ac->fd = -1;
	}
	SSL_free(ac->ssl);
	ac->ssl = NULL;
}

/* Free everything ac holds. */
static void
async_free(struct onecard_async *ac)
{
	if (ac->bev != NULL)
		bufferevent_free(ac->bev);
	if (ac->start_ev != NULL)
		event_free(ac->start_ev);
	async_drop_tcp(ac);
	if (ac->ai != NULL)
		freeaddrinfo(ac->ai);
	if (ac->early != NULL)
		evbuffer_free(ac->early);
	client_tls_put(ac->tls);
	free(ac->q);
	free(ac);
}

/* Arm the reply timeout while replies are owed, disarm it otherwise. */
static void
async_set_timeout(struct onecard_async *ac)
{
	if (ac->bev == NULL || ac->state != ASYNC_READY)
		return;
	bufferevent_set_timeouts(
	    ac->bev, ac->q_count > 0 ? &ac->call_tv : NULL, NULL);
}

/* Call the connect callback once. */
static void
async_connected(struct onecard_async *ac, int err)
{
	onecard_connect_cb cb = ac->connect_cb;

	if (cb == NULL)
		return;
	ac->connect_cb = NULL;
	ac->depth++;
	cb(ac, err, ac->connect_arg);
	ac->depth--;
}

/* Fail the connection: every waiting callback gets err, once. */
static void
async_fail(struct onecard_async *ac, int err)
{
	struct async_req r;
	SSL *ssl;

	if (ac->state == ASYNC_FAILED)
		return;
	if (ac->state == ASYNC_CONNECTING && ac->bev != NULL &&
	    (ssl = bufferevent_openssl_get_ssl(ac->bev)) != NULL)
		client_tls_done(ssl, 0);
	ac->state = ASYNC_FAILED;
	ac->failed_err = err;
	if (ac->bev != NULL) {
		bufferevent_free(ac->bev);
		ac->bev = NULL;
	}
	async_drop_tcp(ac);
	ac->depth++;
	async_connected(ac, err);
	while (ac->q_count > 0) {
		r = ac->q[ac->q_head];
		ac->q_head = (ac->q_head + 1) % ac->q_cap;
		ac->q_count--;
		if (r.raw_cb != NULL)
			r.raw_cb(NULL, err, r.arg);
		else
			r.cb(NULL, err, r.arg);
	}
	ac->depth--;
}

/* Collect the reasons for a bufferevent error into ac->err; returns how
 * many came from OpenSSL. */
static int
async_error_text(struct onecard_async *ac, const char *what, int sockerr)
{
	unsigned long e;
	int nssl = 0;
	size_t n;
	SSL *ssl;

	snprintf(ac->err, sizeof ac->err, "%s", what);
	while (ac->bev != NULL &&
	    (e = bufferevent_get_openssl_error(ac->bev)) != 0) {
		if (ERR_GET_LIB(e) == 0)
			continue; /* libevent's copy of SSL_get_error() */
		if (ERR_SYSTEM_ERROR(e)) {
			/* A socket error OpenSSL saw: the TCP layer's. */
			if (sockerr == 0)
				sockerr = ERR_GET_REASON(e);
			continue;
		}
		nssl++;
		n = strlen(ac->err);
		if (n + 3 < sizeof ac->err)
			snprintf(ac->err + n, sizeof ac->err - n, ": %s",
			    ERR_reason_error_string(e) != NULL
				? ERR_reason_error_string(e)
				: "OpenSSL error");
	}
	client_err_append_ssl(ac->err, sizeof ac->err);
	if (ac->bev != NULL &&
	    (ssl = bufferevent_openssl_get_ssl(ac->bev)) != NULL &&
	    SSL_get_verify_result(ssl) != X509_V_OK) {
		nssl++;
		client_tls_verify_reason(ssl, ac->err, sizeof ac->err);
	}
	if (sockerr != 0 && nssl == 0) {
		n = strlen(ac->err);
		snprintf(
		    ac->err + n, sizeof ac->err - n, ": %s", strerror(sockerr));
	}
	return nssl;
}

/* The time now, CLOCK_MONOTONIC, in nanoseconds. */
static uint64_t
async_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Fail the connection for a reply that could not be read. */
static void
async_bad_reply(struct onecard_async *ac, const char *why, uint64_t id)
{
	if (id != 0)
		snprintf(ac->err, sizeof ac->err,
		    "reply id %llu does not match the oldest request",
		    (unsigned long long)id);
	else
		snprintf(ac->err, sizeof ac->err, "%s", why);
	async_fail(ac, ONECARD_EPROTO);
}

/* Hand one reply body to the oldest request's callback: as bytes when it
 * asked for them (only id and code decoded), else decoded. 0, or -1 when
 * the connection failed. */
static int
async_reply(
    struct onecard_async *ac, const uint8_t *body, size_t len, uint64_t now)
{
	struct onecard_raw_reply raw;
	Onecard__V1__Reply *reply;
	struct async_req r;
	int over_cap = 0;

	if (client_reply_scan(body, len, &raw.id, &raw.code) == -1) {
		async_bad_reply(ac, "reply is not a valid message", 0);
		return -1;
	}
	if (raw.id == 0) {
		/* Answers no request: keep its reason for the close that
		 * usually follows. */
		reply = wire_reply_unpack(
		    body, len, len * WIRE_MEM_FACTOR + 65536, &over_cap);
		if (reply == NULL) {
			async_bad_reply(ac, "reply is not a valid message", 0);
			return -1;
		}
		snprintf(ac->err, sizeof ac->err, "broker: %s: %s",
		    wire_code_name(reply->code), reply->message);
		wire_reply_free(reply);
		return 0;
	}
	if (ac->q_count == 0 || ac->q[ac->q_head].id != raw.id) {
		async_bad_reply(ac, NULL, raw.id);
		return -1;
	}
	r = ac->q[ac->q_head];
	if (r.raw_cb != NULL) {
		ac->q_head = (ac->q_head + 1) % ac->q_cap;
		ac->q_count--;
		if (ac->q_count == 0)
			async_set_timeout(ac);
		raw.body = body;
		raw.len = len;
		raw.recv_ns = now;
		r.raw_cb(&raw, ONECARD_OK, r.arg);
		return 0;
	}
	reply = wire_reply_unpack(
	    body, len, len * WIRE_MEM_FACTOR + 65536, &over_cap);
	if (reply == NULL) {
		async_bad_reply(ac, "reply is not a valid message", 0);
		return -1;
	}
	ac->q_head = (ac->q_head + 1) % ac->q_cap;
	ac->q_count--;
	if (ac->q_count == 0)
		async_set_timeout(ac);
	r.cb(reply, ONECARD_OK, r.arg);
	wire_reply_free(reply);
	return 0;
}

/* Hand each whole reply frame in the input to its callback. One clock
 * reading stamps every reply of the pass (recv_ns). */
static void
async_readcb(struct bufferevent *bev, void *arg)
{
	struct onecard_async *ac = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	uint64_t now = async_now_ns();
	size_t body_len;
	uint8_t *p;
	int r;

	ac->depth++;
	while (ac->state == ASYNC_READY && !ac->closing) {
		switch (wire_peek_evbuffer(in, ac->max_frame, &body_len)) {
		case WIRE_NEED_MORE:
			goto out;
		case WIRE_EMPTY:
		case WIRE_OVERSIZE:
			snprintf(ac->err, sizeof ac->err,
			    "reply frame empty or over %zu bytes",
			    ac->max_frame);
			async_fail(ac, ONECARD_EPROTO);
			goto out;
		case WIRE_FRAME:
			break;
		}
		p = evbuffer_pullup(in, WIRE_HEADER_LEN + body_len);
		if (p == NULL) {
			snprintf(ac->err, sizeof ac->err, "out of memory");
			async_fail(ac, ONECARD_ENOMEM);
			goto out;
		}
		r = async_reply(ac, p + WIRE_HEADER_LEN, body_len, now);
		/* A failure freed the bufferevent and its input with it. */
		if (r == -1 || ac->state != ASYNC_READY)
			goto out;
		evbuffer_drain(in, WIRE_HEADER_LEN + body_len);
	}
out:
	ac->depth--;
	if (ac->closing && ac->depth == 0)
		async_free(ac);
}

/* Connected (TLS done), closed, timed out or failed. */
static void
async_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct onecard_async *ac = arg;
	int sockerr = EVUTIL_SOCKET_ERROR(), nssl, err;
	SSL *ssl;

	ac->depth++;
	if (what & BEV_EVENT_CONNECTED) {
		ssl = bufferevent_openssl_get_ssl(ac->bev);
		client_tls_done(ssl, 1);
		ac->resumed = SSL_session_reused(ssl) == 1;
		ac->state = ASYNC_READY;
		ac->err[0] = '\0';
		bufferevent_set_timeouts(ac->bev, NULL, NULL);
		async_set_timeout(ac);
		async_connected(ac, ONECARD_OK);
	} else if (what & BEV_EVENT_TIMEOUT) {
		snprintf(ac->err, sizeof ac->err, "%s timed out",
		    ac->state == ASYNC_CONNECTING ? "TLS handshake" : "reply");
		async_fail(ac, ONECARD_ETIMEDOUT);
	} else if (ac->state == ASYNC_CONNECTING) {
		/* TCP is up (async_tcpcb): a failure now is TLS refusing us,
		 * a hang-up included (say, our certificate was refused). */
		async_error_text(
		    ac, "TLS handshake", (what & BEV_EVENT_EOF) ? 0 : sockerr);
		async_fail(ac, ONECARD_ETLS);
	} else if (what & BEV_EVENT_EOF) {
		if (ac->err[0] == '\0')
			snprintf(ac->err, sizeof ac->err,
			    "the broker closed the connection");
		async_fail(ac, ONECARD_ECLOSED);
	} else if (what & BEV_EVENT_ERROR) {
		nssl = async_error_text(ac, "connection", sockerr);
		err = nssl > 0 ? ONECARD_ETLS
		    : sockerr == ECONNRESET || sockerr == EPIPE
		    ? ONECARD_ECLOSED
		    : ONECARD_EIO;
		async_fail(ac, err);
	}
	ac->depth--;
	if (ac->closing && ac->depth == 0)
		async_free(ac);
}

/* Start a non-blocking TCP connect to the next address; 0 or -1 with
 * ac->err set. */
static int
async_tcp_next(struct onecard_async *ac)
{
	const struct addrinfo *ai;
	struct timeval tv;
	int fd, one = 1;

	while ((ai = ac->ai_next) != NULL) {
		ac->ai_next = ai->ai_next;
		fd = socket(ai->ai_family,
		    ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    ai->ai_protocol);
		if (fd == -1) {
			snprintf(ac->err, sizeof ac->err, "socket: %s",
			    strerror(errno));
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == -1 &&
		    errno != EINPROGRESS) {
			snprintf(ac->err, sizeof ac->err, "connect to %s: %s",
			    ac->addr, strerror(errno));
			close(fd);
			continue;
		}
		ac->fd = fd;
		tv = async_connect_left(ac);
		ac->tcp_ev = event_new(ac->base, fd, EV_WRITE, async_tcpcb, ac);
		if (ac->tcp_ev == NULL || event_add(ac->tcp_ev, &tv) == -1) {
			snprintf(ac->err, sizeof ac->err, "event_new");
			return -1;
		}
		return 0;
	}
	return -1;
}

/* The TCP connect finished or timed out: start TLS, or try the next
 * address. */
static void
async_tcpcb(evutil_socket_t fd, short what, void *arg)
{
	struct onecard_async *ac = arg;
	socklen_t len = sizeof(int);
	int e = 0, err = ONECARD_ECONNECT;

	event_free(ac->tcp_ev);
	ac->tcp_ev = NULL;
	if (what & EV_TIMEOUT) {
		snprintf(ac->err, sizeof ac->err, "connect to %s: timed out",
		    ac->addr);
		err = ONECARD_ETIMEDOUT;
	} else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == -1 ||
	    e != 0) {
		snprintf(ac->err, sizeof ac->err, "connect to %s: %s", ac->addr,
		    strerror(e != 0 ? e : errno));
	} else {
		if (async_tls_start(ac) == -1) {
			err = ONECARD_ENOMEM;
			goto fail;
		}
		return;
	}
	close(ac->fd);
	ac->fd = -1;
	if (err == ONECARD_ECONNECT && async_tcp_next(ac) == 0)
		return;
fail:
	ac->depth++;
	async_fail(ac, err);
	ac->depth--;
	if (ac->closing && ac->depth == 0)
		async_free(ac);
}

/* TCP is up: put TLS on it and send what was queued meanwhile. */
static int
async_tls_start(struct onecard_async *ac)
{
	SSL *ssl = ac->ssl;
	struct timeval tv = async_connect_left(ac);

	ac->ssl = NULL;
	if (client_tls_set_socket(ssl, ac->fd) == -1) {
		SSL_free(ssl);
		snprintf(ac->err, sizeof ac->err, "socket BIO");
		return -1;
	}
	ac->bev = bufferevent_openssl_socket_new(ac->base, ac->fd, ssl,
	    BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (ac->bev == NULL) {
		SSL_free(ssl);
		snprintf(ac->err, sizeof ac->err, "bufferevent_openssl");
		return -1;
	}
	ac->fd = -1; /* the bufferevent owns it now */
	bufferevent_openssl_set_allow_dirty_shutdown(ac->bev, 1);
	bufferevent_setcb(ac->bev, async_readcb, NULL, async_eventcb, ac);
	/* What is left of the connect timeout is the handshake's. */
	bufferevent_set_timeouts(ac->bev, &tv, &tv);
	if (bufferevent_write_buffer(ac->bev, ac->early) == -1 ||
	    bufferevent_enable(ac->bev, EV_READ | EV_WRITE) == -1) {
		snprintf(ac->err, sizeof ac->err, "bufferevent_enable");
		return -1;
	}
	return 0;
}

/* Report a failure found inside onecard_async_connect from the loop, so the
 * callback never runs before onecard_async_connect returns. */
static void
async_startcb(evutil_socket_t fd, short what, void *arg)
{
	struct onecard_async *ac = arg;

	ac->depth++;
	async_fail(ac, ac->failed_err);
	ac->depth--;
	if (ac->closing && ac->depth == 0)
		async_free(ac);
}

struct onecard_async *
onecard_async_connect(struct event_base *base,
    const struct onecard_options *optin, onecard_connect_cb cb, void *arg)
{
	struct onecard_options opt;
	struct onecard_async *ac;
	struct addrinfo hints;
	char host[256], port[16];
	int r, err = ONECARD_EINVAL;

	if (base == NULL || optin == NULL)
		return NULL;
	if ((ac = calloc(1, sizeof *ac)) == NULL)
		return NULL;
	client_options_resolve(optin, &opt);
	ac->base = base;
	ac->fd = -1;
	ac->state = ASYNC_CONNECTING;
	ac->connect_cb = cb;
	ac->connect_arg = arg;
	ac->max_frame = opt.max_frame;
	ac->next_id = 1;
	ac->call_tv.tv_sec = opt.call_timeout_ms / 1000;
	ac->call_tv.tv_usec = (opt.call_timeout_ms % 1000) * 1000;
	ac->connect_deadline = async_now_ms() + opt.connect_timeout_ms;
	snprintf(ac->addr, sizeof ac->addr, "%s", opt.broker);
	ac->start_ev = event_new(base, -1, 0, async_startcb, ac);
	ac->early = evbuffer_new();
	if (ac->start_ev == NULL || ac->early == NULL) {
		async_free(ac);
		return NULL;
	}

	if (client_split_addr(
		opt.broker, host, sizeof host, port, sizeof port) == -1) {
		snprintf(ac->err, sizeof ac->err,
		    "broker address \"%s\" is not HOST:PORT", opt.broker);
		goto fail;
	}
	if ((ac->tls = client_tls_get(&opt, ac->err, sizeof ac->err)) == NULL)
		goto fail;
	ac->ssl = client_tls_new(ac->tls,
	    opt.server_name != NULL ? opt.server_name : host, opt.broker,
	    ac->err, sizeof ac->err);
	if (ac->ssl == NULL)
		goto fail;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	err = ONECARD_ECONNECT;
	if ((r = getaddrinfo(host, port, &hints, &ac->ai)) != 0) {
		snprintf(ac->err, sizeof ac->err, "resolve %s: %s", host,
		    gai_strerror(r));
		ac->ai = NULL;
		goto fail;
	}
	ac->ai_next = ac->ai;
	if (async_tcp_next(ac) == -1)
		goto fail;
	return ac;
fail:
	ac->failed_err = err;
	event_active(ac->start_ev, 0, 1);
	return ac;
}

/* Remember a request awaiting its reply. */
static int
async_push(struct onecard_async *ac, uint64_t id, onecard_reply_cb cb,
    onecard_raw_cb raw_cb, void *arg)
{
	struct async_req *q;
	size_t i, cap;

	if (ac->q_count == ac->q_cap) {
		cap = ac->q_cap == 0 ? 64 : ac->q_cap * 2;
		if ((q = malloc(cap * sizeof *q)) == NULL)
			return -1;
		for (i = 0; i < ac->q_count; i++)
			q[i] = ac->q[(ac->q_head + i) % ac->q_cap];
		free(ac->q);
		ac->q = q;
		ac->q_cap = cap;
		ac->q_head = 0;
	}
	ac->q[(ac->q_head + ac->q_count) % ac->q_cap] =
	    (struct async_req){id, cb, raw_cb, arg};
	ac->q_count++;
	return 0;
}

/* Where requests go: the bufferevent, or the queue kept until TLS is up. */
static struct evbuffer *
async_out(struct onecard_async *ac)
{
	return ac->bev != NULL ? bufferevent_get_output(ac->bev) : ac->early;
}

/* What onecard_async_send and onecard_async_send_raw share. */
static int
async_send_msg(struct onecard_async *ac, Onecard__V1__Request *req,
    onecard_reply_cb cb, onecard_raw_cb raw_cb, void *arg)
{
	if (ac == NULL || req == NULL || (cb == NULL && raw_cb == NULL) ||
	    ac->closing)
		return ONECARD_EINVAL;
	if (ac->state == ASYNC_FAILED)
		return ac->failed_err;
	if (req->op_case == ONECARD__V1__REQUEST__OP__NOT_SET) {
		snprintf(ac->err, sizeof ac->err, "request has no op");
		return ONECARD_EINVAL;
	}
	if (req->id == 0)
		req->id = ac->next_id++;
	else if (req->id >= ac->next_id)
		ac->next_id = req->id + 1;
	if (wire_frame_size(&req->base) - WIRE_HEADER_LEN > ac->max_frame) {
		snprintf(ac->err, sizeof ac->err, "request is too large");
		return ONECARD_EINVAL;
	}
	if (async_push(ac, req->id, cb, raw_cb, arg) == -1)
		return ONECARD_ENOMEM;
	if (wire_append(async_out(ac), &req->base) == -1) {
		ac->q_count--;
		return ONECARD_ENOMEM;
	}
	if (ac->q_count == 1)
		async_set_timeout(ac);
	return ONECARD_OK;
}

int
onecard_async_send(struct onecard_async *ac, Onecard__V1__Request *req,
    onecard_reply_cb cb, void *arg)
{
	return async_send_msg(ac, req, cb, NULL, arg);
}

int
onecard_async_send_raw(struct onecard_async *ac, Onecard__V1__Request *req,
    onecard_raw_cb cb, void *arg)
{
	return async_send_msg(ac, req, NULL, cb, arg);
}

int
onecard_async_send_encoded(struct onecard_async *ac, const void *body,
    size_t len, uint64_t *idp, onecard_raw_cb cb, void *arg)
{
	uint8_t head[WIRE_HEADER_LEN + 11], *p;
	uint64_t id, v;
	size_t n;

	if (ac == NULL || (body == NULL && len > 0) || cb == NULL ||
	    ac->closing)
		return ONECARD_EINVAL;
	if (ac->state == ASYNC_FAILED)
		return ac->failed_err;
	/* The frame: length, then Request.id (field 1, varint) ahead of the
	 * caller's fields; a decoder takes fields in any order. */
	id = ac->next_id;
	p = head + WIRE_HEADER_LEN;
	*p++ = 0x08;
	for (v = id; v >= 0x80; v >>= 7)
		*p++ = (uint8_t)(v | 0x80);
	*p++ = (uint8_t)v;
	n = (size_t)(p - head - WIRE_HEADER_LEN) + len;
	if (len == 0 || n > ac->max_frame || n > UINT32_MAX) {
		snprintf(ac->err, sizeof ac->err,
		    len == 0 ? "request has no op" : "request is too large");
		return ONECARD_EINVAL;
	}
	head[0] = (uint8_t)(n >> 24);
	head[1] = (uint8_t)(n >> 16);
	head[2] = (uint8_t)(n >> 8);
	head[3] = (uint8_t)n;
	if (async_push(ac, id, NULL, cb, arg) == -1)
		return ONECARD_ENOMEM;
	if (evbuffer_add(async_out(ac), head, (size_t)(p - head)) == -1 ||
	    evbuffer_add(async_out(ac), body, len) == -1) {
		/* A header without its body would desynchronize the stream. */
		snprintf(ac->err, sizeof ac->err, "out of memory");
		ac->q_count--;
		async_fail(ac, ONECARD_ENOMEM);
		return ONECARD_ENOMEM;
	}
	ac->next_id++;
	if (idp != NULL)
		*idp = id;
	if (ac->q_count == 1)
		async_set_timeout(ac);
	return ONECARD_OK;
}

int
onecard_async_session_reused(const struct onecard_async *ac)
{
	return ac != NULL && ac->resumed;
}

void
onecard_async_close(struct onecard_async *ac)
{
	SSL *ssl;

	if (ac == NULL || ac->closing)
		return;
	if (ac->state == ASYNC_READY && ac->bev != NULL &&
	    (ssl = bufferevent_openssl_get_ssl(ac->bev)) != NULL) {
		/* One try at close_notify; the socket is non-blocking. */
		SSL_shutdown(ssl);
		ERR_clear_error();
	}
	if (ac->state != ASYNC_FAILED) {
		snprintf(ac->err, sizeof ac->err, "closed by the caller");
		async_fail(ac, ONECARD_ECLOSED);
	}
	if (ac->depth > 0) {
		ac->closing = 1;
		return;
	}
	async_free(ac);
}
