/*
 * async.c: the libonecard connection for programs with their own libevent
 * loop (onecard-bench).
 *
 * Owns the TCP connect (its own step, so a refused or unreachable broker
 * reads as ECONNECT with the reason), then the TLS connection driven
 * directly on the socket's events, the queue of callbacks waiting for
 * replies (in the order the requests were sent) and the connect callback.
 * Every callback handed in is called exactly once: with its reply, or with
 * NULL and an error when the connection fails or is closed. The event
 * callback is the one exception: it gets each event pushed on the
 * connection's subscription, then NULL and an error once at the end. A
 * callback may call onecard_async_send or onecard_async_close; the handle
 * is then freed only once the library is back out of its callbacks.
 *
 * The I/O is plain so that it stays cheap per request: a read pass reads
 * what the socket holds (read-ahead on, so one read call fetches many
 * records, and no read that would only say EAGAIN), hands every whole reply
 * to its callback, and then writes every request queued meanwhile, the
 * callbacks' included, with one SSL_write. The socket's write event is armed
 * only while a write is blocked; requests queued outside a pass are written
 * by a deferred flush in the same loop iteration, so a burst of sends is
 * still one write. Never touched by another thread than the loop's.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>

#include "client.h"
#include "wire.h"

#define ASYNC_IN_MIN   4096  /* first input buffer */
#define ASYNC_IN_ROOM  1024  /* least free space handed to SSL_read */
#define ASYNC_BUF_KEEP 65536 /* an empty buffer larger than this is freed */

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
	struct client_tls *tls; /* shared with connections like this one */
	SSL *ssl;
	int fd;
	int tls_started; /* the handshake began on fd */
	int resumed;     /* the handshake resumed a session */
	enum async_state state;
	int failed_err;
	struct timeval call_tv;
	size_t max_frame;
	uint64_t next_id;

	onecard_connect_cb connect_cb;
	void *connect_arg;
	onecard_event_cb event_cb; /* events pushed (id 0), until the end */
	void *event_arg;

	struct async_req *q; /* ring of requests awaiting replies */
	size_t q_head, q_count, q_cap;

	uint8_t *in; /* bytes read; from in_off on not handed over yet */
	size_t in_off, in_len, in_cap;
	uint8_t *out; /* frames queued; from out_off on not written yet */
	size_t out_off, out_len, out_cap;

	struct event *rd_ev;    /* the socket is readable (persistent) */
	struct event *wr_ev;    /* writable: armed while a write is blocked */
	struct event *tmo_ev;   /* handshake deadline, then reply timeout */
	struct event *flush_ev; /* made active to write what was queued */
	struct event *start_ev;
	struct event *tcp_ev;
	int wr_armed;
	int in_pass; /* inside a read pass: it writes when it ends */

	int depth;   /* how deep we are inside user callbacks */
	int closing; /* onecard_async_close was called inside a callback */
	char err[ONECARD_ERRLEN];

	/* Until TCP is up: the addresses left to try. */
	struct addrinfo *ai, *ai_next;
	long long connect_deadline; /* ms, monotonic: TCP and TLS share it */
	char addr[300];

	/* Several brokers: the list, the next to try, and what each said. */
	struct onecard_options opt; /* resolved; strings are the caller's */
	char *brokers;
	int multi; /* more than one: a connect failure tries the next */
	size_t next_broker;
	int connect_timeout_ms;
	char tried[ONECARD_ERRLEN];
};

static void async_fail(struct onecard_async *, int);
static int async_try_broker(struct onecard_async *);
static void async_tcpcb(evutil_socket_t, short, void *);
static int async_tls_start(struct onecard_async *);
static int async_flush(struct onecard_async *);
static int async_reply(
    struct onecard_async *, const uint8_t *, size_t, uint64_t);

/* Milliseconds on a monotonic clock. */
static long long
async_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The time now, CLOCK_MONOTONIC, in nanoseconds. */
static uint64_t
async_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
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

/* Free an event if there is one. */
static void
async_event_free(struct event **ev)
{
	if (*ev != NULL) {
		event_free(*ev);
		*ev = NULL;
	}
}

/* Drop the socket, its TLS state and its events. */
static void
async_drop_io(struct onecard_async *ac)
{
	async_event_free(&ac->tcp_ev);
	async_event_free(&ac->rd_ev);
	async_event_free(&ac->wr_ev);
	async_event_free(&ac->tmo_ev);
	async_event_free(&ac->flush_ev);
	ac->wr_armed = 0;
	SSL_free(ac->ssl);
	ac->ssl = NULL;
	if (ac->fd != -1) {
		close(ac->fd);
		ac->fd = -1;
	}
}

/* Free everything ac holds. */
static void
async_free(struct onecard_async *ac)
{
	async_drop_io(ac);
	async_event_free(&ac->start_ev);
	if (ac->ai != NULL)
		freeaddrinfo(ac->ai);
	free(ac->brokers);
	client_tls_put(ac->tls);
	free(ac->q);
	free(ac->in);
	free(ac->out);
	free(ac);
}

/* Leave the library's callbacks: free ac if it was closed inside one. */
static void
async_leave(struct onecard_async *ac)
{
	ac->depth--;
	if (ac->closing && ac->depth == 0)
		async_free(ac);
}

/* Arm the reply timeout while replies are owed, disarm it otherwise; each
 * call restarts it, so it measures silence. */
static void
async_set_timeout(struct onecard_async *ac)
{
	if (ac->state != ASYNC_READY || ac->tmo_ev == NULL)
		return;
	if (ac->q_count > 0)
		event_add(ac->tmo_ev, &ac->call_tv);
	else
		event_del(ac->tmo_ev);
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

	if (ac->state == ASYNC_FAILED)
		return;
	if (ac->state == ASYNC_CONNECTING && ac->tls_started && ac->ssl != NULL)
		client_tls_done(ac->ssl, 0);
	if (ac->state == ASYNC_CONNECTING && ac->multi) {
		/* Say this broker's reason, then try the next one. */
		size_t n = strlen(ac->tried);

		snprintf(ac->tried + n, sizeof ac->tried - n, "%s%s: %s",
		    n ? "; " : "", ac->addr, ac->err);
		if (err != ONECARD_EINVAL && err != ONECARD_ENOMEM) {
			async_drop_io(ac);
			ac->tls_started = 0;
			if (async_try_broker(ac) == 0)
				return;
		}
		snprintf(ac->err, sizeof ac->err, "%s", ac->tried);
	}
	ac->state = ASYNC_FAILED;
	ac->failed_err = err;
	async_drop_io(ac);
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
	/* Last: the subscription's end comes after every reply's. */
	if (ac->event_cb != NULL) {
		onecard_event_cb cb = ac->event_cb;

		ac->event_cb = NULL;
		cb(NULL, err, ac->event_arg);
	}
	ac->depth--;
}

/*
 * Turn an SSL call's failure into an onecard_err with its reason in ac->err
 * (what names the step), or 0 when it only has to wait: *want says for
 * what (EV_READ or EV_WRITE).
 */
static int
async_ssl_error(struct onecard_async *ac, int r, const char *what, short *want)
{
	int e = SSL_get_error(ac->ssl, r), sockerr = errno;
	size_t n;

	switch (e) {
	case SSL_ERROR_WANT_READ:
		*want = EV_READ;
		return 0;
	case SSL_ERROR_WANT_WRITE:
		*want = EV_WRITE;
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		break; /* close_notify */
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() != 0)
			goto tls;
		if (sockerr == 0 || sockerr == ECONNRESET || sockerr == EPIPE)
			break;
		snprintf(
		    ac->err, sizeof ac->err, "%s: %s", what, strerror(sockerr));
		return ONECARD_EIO;
	default:
		/* A peer that hangs up without close_notify has closed. */
		if (ERR_GET_REASON(ERR_peek_last_error()) ==
		    SSL_R_UNEXPECTED_EOF_WHILE_READING) {
			ERR_clear_error();
			break;
		}
		goto tls;
	}
	/* The broker closed. An id-0 reply may have said why already. */
	if (ac->err[0] == '\0' || ac->state == ASYNC_CONNECTING)
		snprintf(ac->err, sizeof ac->err,
		    "%s: the broker closed the connection", what);
	return ONECARD_ECLOSED;
tls:
	snprintf(ac->err, sizeof ac->err, "%s", what);
	client_tls_explain(ac->ssl, ac->err, sizeof ac->err);
	if (e == SSL_ERROR_SYSCALL && sockerr != 0) {
		n = strlen(ac->err);
		snprintf(
		    ac->err + n, sizeof ac->err - n, ": %s", strerror(sockerr));
	}
	return ONECARD_ETLS;
}

/* Arm or disarm the write event. */
static void
async_want_write(struct onecard_async *ac, int on)
{
	if (on == ac->wr_armed || ac->wr_ev == NULL)
		return;
	if (on)
		event_add(ac->wr_ev, NULL);
	else
		event_del(ac->wr_ev);
	ac->wr_armed = on;
}

/* Drive the handshake one step: done, waiting, or failed. */
static void
async_handshake(struct onecard_async *ac)
{
	short want = 0;
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_do_handshake(ac->ssl);
	if (r != 1) {
		if ((r = async_ssl_error(ac, r, "TLS handshake", &want)) == 0) {
			async_want_write(ac, want == EV_WRITE);
			return;
		}
		/* A hang-up during the handshake is TLS refusing us (say,
		 * our certificate was refused); an ETLS has its reasons. */
		if (r != ONECARD_ETLS)
			client_tls_explain(ac->ssl, ac->err, sizeof ac->err);
		async_fail(ac, ONECARD_ETLS);
		return;
	}
	client_tls_done(ac->ssl, 1);
	ac->resumed = SSL_session_reused(ac->ssl) == 1;
	ac->state = ASYNC_READY;
	ac->err[0] = '\0';
	async_want_write(ac, 0);
	event_del(ac->tmo_ev);
	async_connected(ac, ONECARD_OK);
	if (ac->state == ASYNC_READY && !ac->closing) {
		async_set_timeout(ac);
		async_flush(ac);
	}
}

/* Make room for at least ASYNC_IN_ROOM more bytes of input. 0 or -1. */
static int
async_in_room(struct onecard_async *ac)
{
	size_t used = ac->in_len - ac->in_off, cap;
	uint8_t *p;

	if (used == 0)
		ac->in_off = ac->in_len = 0;
	if (ac->in_cap - ac->in_len >= ASYNC_IN_ROOM)
		return 0;
	if (ac->in_off > 0) {
		memmove(ac->in, ac->in + ac->in_off, used);
		ac->in_off = 0;
		ac->in_len = used;
		if (ac->in_cap - ac->in_len >= ASYNC_IN_ROOM)
			return 0;
	}
	cap = ac->in_cap == 0 ? ASYNC_IN_MIN : ac->in_cap * 2;
	if ((p = realloc(ac->in, cap)) == NULL)
		return -1;
	ac->in = p;
	ac->in_cap = cap;
	return 0;
}

/* Hand every whole reply in the input to its callback. 0, or -1 when the
 * connection failed. */
static int
async_frames(struct onecard_async *ac, uint64_t now)
{
	size_t body_len;
	const uint8_t *body;

	while (ac->state == ASYNC_READY && !ac->closing) {
		switch (wire_peek(ac->in + ac->in_off, ac->in_len - ac->in_off,
		    ac->max_frame, &body_len)) {
		case WIRE_NEED_MORE:
			return 0;
		case WIRE_EMPTY:
		case WIRE_OVERSIZE:
			snprintf(ac->err, sizeof ac->err,
			    "reply frame empty or over %zu bytes",
			    ac->max_frame);
			async_fail(ac, ONECARD_EPROTO);
			return -1;
		case WIRE_FRAME:
			break;
		}
		/* Consumed before the callback; the bytes stay put until the
		 * pass ends, as nothing reads meanwhile. */
		body = ac->in + ac->in_off + WIRE_HEADER_LEN;
		ac->in_off += WIRE_HEADER_LEN + body_len;
		if (async_reply(ac, body, body_len, now) == -1)
			return -1;
	}
	return 0;
}

/* Read what the socket holds, hand the replies over, then write what the
 * callbacks queued. */
static void
async_read_pass(struct onecard_async *ac)
{
	uint64_t now = async_now_ns();
	short want = 0;
	int r;

	ac->in_pass = 1;
	for (;;) {
		if (async_in_room(ac) == -1) {
			snprintf(ac->err, sizeof ac->err, "out of memory");
			async_fail(ac, ONECARD_ENOMEM);
			goto out;
		}
		ERR_clear_error();
		errno = 0;
		r = SSL_read(ac->ssl, ac->in + ac->in_len,
		    (int)(ac->in_cap - ac->in_len > INT_MAX
			    ? INT_MAX
			    : ac->in_cap - ac->in_len));
		if (r > 0) {
			ac->in_len += (size_t)r;
			if (async_frames(ac, now) == -1 ||
			    ac->state != ASYNC_READY || ac->closing)
				goto out;
			/* Read again only for bytes already fetched: a read
			 * that would find the socket empty is saved, and the
			 * level-triggered event says when more arrive. */
			if (!SSL_has_pending(ac->ssl))
				break;
			continue;
		}
		if ((r = async_ssl_error(ac, r, "connection", &want)) != 0) {
			async_fail(ac, r);
			goto out;
		}
		if (want == EV_WRITE)
			async_want_write(ac, 1);
		break;
	}
	if (ac->in_off == ac->in_len && ac->in_cap > ASYNC_BUF_KEEP) {
		free(ac->in);
		ac->in = NULL;
		ac->in_cap = ac->in_off = ac->in_len = 0;
	}
	async_set_timeout(ac);
	ac->in_pass = 0;
	async_flush(ac);
out:
	ac->in_pass = 0;
}

/*
 * Write every queued frame with as few SSL_writes as TLS allows (one, below
 * 16 KiB). 0, or -1 when the connection failed.
 */
static int
async_flush(struct onecard_async *ac)
{
	size_t left;
	short want = 0;
	int r;

	if (ac->state != ASYNC_READY)
		return 0;
	while ((left = ac->out_len - ac->out_off) > 0) {
		ERR_clear_error();
		errno = 0;
		r = SSL_write(ac->ssl, ac->out + ac->out_off,
		    (int)(left > INT_MAX ? INT_MAX : left));
		if (r > 0) {
			ac->out_off += (size_t)r;
			continue;
		}
		if ((r = async_ssl_error(ac, r, "connection", &want)) != 0) {
			async_fail(ac, r);
			return -1;
		}
		async_want_write(ac, want == EV_WRITE);
		return 0;
	}
	ac->out_off = ac->out_len = 0;
	if (ac->out_cap > ASYNC_BUF_KEEP) {
		free(ac->out);
		ac->out = NULL;
		ac->out_cap = 0;
	}
	async_want_write(ac, 0);
	return 0;
}

/* The socket is readable: the handshake goes on, or replies came. */
static void
async_readcb(evutil_socket_t fd, short what, void *arg)
{
	struct onecard_async *ac = arg;

	ac->depth++;
	if (ac->state == ASYNC_CONNECTING)
		async_handshake(ac);
	else if (ac->state == ASYNC_READY)
		async_read_pass(ac);
	async_leave(ac);
}

/* The socket is writable again (a write or the handshake was blocked). */
static void
async_writecb(evutil_socket_t fd, short what, void *arg)
{
	struct onecard_async *ac = arg;

	ac->depth++;
	if (ac->state == ASYNC_CONNECTING)
		async_handshake(ac);
	else
		async_flush(ac);
	async_leave(ac);
}

/* Requests were queued outside a read pass: write them. */
static void
async_flushcb(evutil_socket_t fd, short what, void *arg)
{
	struct onecard_async *ac = arg;

	ac->depth++;
	async_flush(ac);
	async_leave(ac);
}

/* The handshake's deadline passed, or no reply came in time. */
static void
async_timeoutcb(evutil_socket_t fd, short what, void *arg)
{
	struct onecard_async *ac = arg;

	ac->depth++;
	snprintf(ac->err, sizeof ac->err, "%s timed out",
	    ac->state == ASYNC_CONNECTING ? "TLS handshake" : "reply");
	async_fail(ac, ONECARD_ETIMEDOUT);
	async_leave(ac);
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
		ac->depth++;
		if (async_tls_start(ac) == -1) {
			ac->depth--;
			err = ONECARD_ENOMEM;
			goto fail;
		}
		async_leave(ac); /* the handshake may have called back */
		return;
	}
	close(ac->fd);
	ac->fd = -1;
	if (err == ONECARD_ECONNECT && async_tcp_next(ac) == 0)
		return;
fail:
	ac->depth++;
	async_fail(ac, err);
	async_leave(ac);
}

/* TCP is up: start TLS on it; what was queued meanwhile goes out once the
 * handshake is done. */
static int
async_tls_start(struct onecard_async *ac)
{
	struct timeval tv = async_connect_left(ac);

	if (client_tls_set_socket(ac->ssl, ac->fd) == -1) {
		snprintf(ac->err, sizeof ac->err, "socket BIO");
		return -1;
	}
	SSL_set_connect_state(ac->ssl);
	SSL_set_read_ahead(ac->ssl, 1);
	ac->tls_started = 1;
	ac->rd_ev =
	    event_new(ac->base, ac->fd, EV_READ | EV_PERSIST, async_readcb, ac);
	ac->wr_ev = event_new(
	    ac->base, ac->fd, EV_WRITE | EV_PERSIST, async_writecb, ac);
	ac->tmo_ev = event_new(ac->base, -1, 0, async_timeoutcb, ac);
	ac->flush_ev = event_new(ac->base, -1, 0, async_flushcb, ac);
	if (ac->rd_ev == NULL || ac->wr_ev == NULL || ac->tmo_ev == NULL ||
	    ac->flush_ev == NULL || event_add(ac->rd_ev, NULL) == -1 ||
	    event_add(ac->tmo_ev, &tv) == -1) {
		snprintf(ac->err, sizeof ac->err, "event_new");
		return -1;
	}
	/* The time left of the connect timeout is the handshake's. */
	async_handshake(ac);
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

/*
 * Start connecting to the next broker of the list: its SSL, its addresses
 * and its first TCP connect, with a connect timeout of its own. 0, or the
 * error of the last that could not start (ac->err says why; with several,
 * ac->tried says why for each).
 */
static int
async_try_broker(struct onecard_async *ac)
{
	struct addrinfo hints;
	char host[256], port[16];
	size_t n;
	int r, err = ONECARD_ECONNECT;

	for (;;) {
		if (ac->next_broker >= client_count_brokers(ac->brokers))
			return err;
		if (client_nth_broker(ac->brokers, ac->next_broker++, ac->addr,
			sizeof ac->addr) == -1) {
			snprintf(ac->err, sizeof ac->err,
			    "broker address \"%s\" is not HOST:PORT (or a list "
			    "HOST:PORT,HOST:PORT)",
			    ac->brokers);
			return ONECARD_EINVAL;
		}
		if (ac->ai != NULL)
			freeaddrinfo(ac->ai);
		ac->ai = ac->ai_next = NULL;
		SSL_free(ac->ssl);
		ac->ssl = NULL;
		ac->connect_deadline = async_now_ms() + ac->connect_timeout_ms;
		memset(&hints, 0, sizeof hints);
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_NUMERICSERV;
		if (client_split_addr(
			ac->addr, host, sizeof host, port, sizeof port) == -1) {
			snprintf(ac->err, sizeof ac->err,
			    "broker address \"%s\" is not HOST:PORT", ac->addr);
			return ONECARD_EINVAL;
		}
		ac->ssl = client_tls_new(ac->tls,
		    ac->opt.server_name != NULL ? ac->opt.server_name : host,
		    ac->addr, ac->err, sizeof ac->err);
		if (ac->ssl == NULL)
			return ONECARD_EINVAL;
		if ((r = getaddrinfo(host, port, &hints, &ac->ai)) != 0) {
			snprintf(ac->err, sizeof ac->err, "resolve %s: %s",
			    host, gai_strerror(r));
			ac->ai = NULL;
		} else {
			ac->ai_next = ac->ai;
			if (async_tcp_next(ac) == 0)
				return 0;
		}
		if (!ac->multi)
			return err;
		/* This one cannot even start: say why, go on. */
		n = strlen(ac->tried);
		snprintf(ac->tried + n, sizeof ac->tried - n, "%s%s: %s",
		    n ? "; " : "", ac->addr, ac->err);
		snprintf(ac->err, sizeof ac->err, "%s", ac->tried);
	}
}

struct onecard_async *
onecard_async_connect(struct event_base *base,
    const struct onecard_options *optin, onecard_connect_cb cb, void *arg)
{
	struct onecard_options opt;
	struct onecard_async *ac;
	int err = ONECARD_EINVAL;

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
	ac->connect_timeout_ms = opt.connect_timeout_ms;
	ac->opt = opt;
	ac->opt.broker = NULL; /* the caller's string: ac->brokers is ours */
	ac->multi = strchr(opt.broker, ',') != NULL;
	snprintf(ac->addr, sizeof ac->addr, "%s", opt.broker);
	ac->start_ev = event_new(base, -1, 0, async_startcb, ac);
	if (ac->start_ev == NULL ||
	    (ac->brokers = strdup(opt.broker)) == NULL) {
		async_free(ac);
		return NULL;
	}
	if ((ac->tls = client_tls_get(&opt, ac->err, sizeof ac->err)) == NULL)
		goto fail;
	if ((err = async_try_broker(ac)) != 0)
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

/* Room for n more bytes of output, at the returned place; NULL when memory
 * ran out. async_commit queues them. */
static uint8_t *
async_reserve(struct onecard_async *ac, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (ac->out_cap - ac->out_len >= n)
		return ac->out + ac->out_len;
	if (ac->out_off > 0) {
		memmove(
		    ac->out, ac->out + ac->out_off, ac->out_len - ac->out_off);
		ac->out_len -= ac->out_off;
		ac->out_off = 0;
		if (ac->out_cap - ac->out_len >= n)
			return ac->out + ac->out_len;
	}
	for (cap = ac->out_cap == 0 ? 1024 : ac->out_cap * 2;
	     cap - ac->out_len < n; cap *= 2)
		;
	if ((p = realloc(ac->out, cap)) == NULL)
		return NULL;
	ac->out = p;
	ac->out_cap = cap;
	return ac->out + ac->out_len;
}

/* Queue the n bytes written at async_reserve's place. Outside a read pass
 * a flush is scheduled for later in this loop iteration, so a burst of
 * sends still goes out in one write. */
static void
async_commit(struct onecard_async *ac, size_t n)
{
	ac->out_len += n;
	if (ac->state == ASYNC_READY && !ac->in_pass && !ac->wr_armed)
		event_active(ac->flush_ev, 0, 1);
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
		reply = wire_reply_unpack(
		    body, len, len * WIRE_MEM_FACTOR + 65536, &over_cap);
		if (reply == NULL) {
			async_bad_reply(ac, "reply is not a valid message", 0);
			return -1;
		}
		if (client_reply_kind(reply) == CLIENT_REPLY_EVENT) {
			/* Pushed: to the event callback, if there is one. */
			if (ac->event_cb != NULL)
				ac->event_cb(
				    reply->event, ONECARD_OK, ac->event_arg);
		} else {
			/* Answers no request: keep its reason for the close
			 * that usually follows. */
			snprintf(ac->err, sizeof ac->err, "broker: %s: %s",
			    wire_code_name(reply->code), reply->message);
		}
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

/* What onecard_async_send and onecard_async_send_raw share. */
static int
async_send_msg(struct onecard_async *ac, Onecard__V1__Request *req,
    onecard_reply_cb cb, onecard_raw_cb raw_cb, void *arg)
{
	uint8_t *p;
	size_t n;

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
	n = wire_frame_size(&req->base);
	if ((p = async_reserve(ac, n)) == NULL ||
	    wire_encode(&req->base, p, n) != n) {
		ac->q_count--;
		return ONECARD_ENOMEM;
	}
	async_commit(ac, n);
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
	uint8_t head[WIRE_ID_HEAD_MAX], *dst;
	uint64_t id;
	size_t hlen;

	if (ac == NULL || (body == NULL && len > 0) || cb == NULL ||
	    ac->closing)
		return ONECARD_EINVAL;
	if (ac->state == ASYNC_FAILED)
		return ac->failed_err;
	/* The frame: length, then Request.id (field 1) ahead of the
	 * caller's fields. */
	id = ac->next_id;
	hlen = wire_id_head(id, len, head);
	if (len == 0 || hlen == 0 ||
	    hlen - WIRE_HEADER_LEN + len > ac->max_frame) {
		snprintf(ac->err, sizeof ac->err,
		    len == 0 ? "request has no op" : "request is too large");
		return ONECARD_EINVAL;
	}
	if (async_push(ac, id, NULL, cb, arg) == -1)
		return ONECARD_ENOMEM;
	if ((dst = async_reserve(ac, hlen + len)) == NULL) {
		ac->q_count--;
		return ONECARD_ENOMEM;
	}
	memcpy(dst, head, hlen);
	memcpy(dst + hlen, body, len);
	async_commit(ac, hlen + len);
	ac->next_id++;
	if (idp != NULL)
		*idp = id;
	if (ac->q_count == 1)
		async_set_timeout(ac);
	return ONECARD_OK;
}

int
onecard_async_on_event(struct onecard_async *ac, onecard_event_cb cb, void *arg)
{
	if (ac == NULL || ac->closing)
		return ONECARD_EINVAL;
	if (ac->state == ASYNC_FAILED)
		return ac->failed_err;
	ac->event_cb = cb;
	ac->event_arg = arg;
	return ONECARD_OK;
}

int
onecard_async_subscribe(struct onecard_async *ac, uint64_t from_seq,
    int from_now, onecard_reply_cb cb, void *arg)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Subscribe sub = ONECARD__V1__SUBSCRIBE__INIT;

	sub.from_seq = from_seq;
	sub.from_now = from_now != 0;
	req.op_case = ONECARD__V1__REQUEST__OP_SUBSCRIBE;
	req.subscribe = &sub;
	/* Encoded at once: req may live on this stack. */
	return async_send_msg(ac, &req, cb, NULL, arg);
}

int
onecard_async_session_reused(const struct onecard_async *ac)
{
	return ac != NULL && ac->resumed;
}

void
onecard_async_close(struct onecard_async *ac)
{
	if (ac == NULL || ac->closing)
		return;
	if (ac->state == ASYNC_READY && ac->ssl != NULL) {
		/* One try at close_notify; the socket is non-blocking. */
		SSL_shutdown(ac->ssl);
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
