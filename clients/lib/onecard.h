/*
 * onecard.h: libonecard, the client library for the onecard broker.
 *
 * Connect over mutual TLS (CA, client certificate, key; the broker's name is
 * checked against its certificate), send onecard.v1.Request messages and
 * receive onecard.v1.Reply messages. Three ways to talk:
 *  - blocking: onecard_call sends one request and waits for its reply;
 *  - pipelined: onecard_send queues many requests, onecard_recv returns the
 *    replies in the order sent;
 *  - async: for programs that run their own libevent loop (onecard-bench),
 *    onecard_async_* call back when each reply arrives;
 *  - events: onecard_subscribe, then onecard_next_event (or onecard_watch,
 *    or onecard_async_subscribe and onecard_async_on_event) hand over the
 *    registry's changes as the broker pushes them (docs/notifications.md).
 * Every function returns ONECARD_OK (0) or a negative ONECARD_E* code;
 * those that wait for an event also return the broker's refusal, a
 * positive Reply.code. onecard_strerror turns either into text. The
 * protocol is in docs/protocol.md.
 * The library never raises SIGPIPE (a broker that hangs up is ECLOSED), and
 * a blocking connection that failed (timeout included, but for the wait for
 * an event) stays failed: every later call returns the same code; reconnect.
 */
#ifndef ONECARD_H
#define ONECARD_H

#include <stddef.h>
#include <stdint.h>

#include "onecard.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;

/* Library errors (transport level; a broker's answer is Reply.code). */
enum onecard_err {
	ONECARD_OK = 0,
	ONECARD_EINVAL = -1, /* a bad argument (message names it) */
	ONECARD_ECONNECT =
	    -2,            /* TCP connect failed or the name did not resolve */
	ONECARD_ETLS = -3, /* TLS handshake or certificate check failed */
	ONECARD_ETIMEDOUT = -4, /* connect or call timeout passed */
	ONECARD_ECLOSED = -5,   /* the broker closed the connection */
	ONECARD_EPROTO =
	    -6, /* the broker sent something that is not a valid frame */
	ONECARD_ENOMEM = -7,
	ONECARD_EIO = -8, /* a read or write failed */
	/* A write was sent, the broker failed before its reply came, and
	 * the connection moved to the next broker: the write may or may not
	 * have been applied. Sending it again is safe for enroll and link
	 * (they converge), and for update with expected_version. */
	ONECARD_EUNKNOWN = -9,
};

/* Where the broker is and who we are. */
struct onecard_options {
	const char
	    *broker;      /* "HOST:PORT", or several: "HOST:PORT,HOST:PORT" (the
			   first that answers is used; onecard_call moves on when
			   it fails); NULL: $ONECARD_BROKER or 127.0.0.1:7443 */
	const char *ca;   /* PEM file; NULL: $ONECARD_CA */
	const char *cert; /* PEM file; NULL: $ONECARD_CERT */
	const char *key;  /* PEM file; NULL: $ONECARD_KEY */
	const char *server_name; /* name checked in the broker's certificate;
				    NULL: HOST */
	int connect_timeout_ms;  /* 0: 10000 */
	int call_timeout_ms;     /* 0: 30000; applies to onecard_call and
				    onecard_recv */
	size_t max_frame;        /* largest reply accepted; 0: 16 MiB */
};

struct onecard_conn;

/* Text for an onecard_err code. */
const char *onecard_strerror(int err);

/* Text of the last error on conn (with OpenSSL's reason when there is one). */
const char *onecard_last_error(const struct onecard_conn *conn);

/*
 * Connect and complete the TLS handshake. On failure returns an error code,
 * *out is NULL and errbuf (if given) says why.
 */
int onecard_connect(const struct onecard_options *opt,
    struct onecard_conn **out, char *errbuf, size_t errlen);

/* Send close_notify and free everything. */
void onecard_close(struct onecard_conn *conn);

/* The broker conn is connected to now: one "HOST:PORT" of the list. */
const char *onecard_broker(const struct onecard_conn *conn);

/*
 * Send req and wait for its reply. When req->id is 0 the library picks one.
 * *reply is freed with onecard_reply_free. A reply with id 0 (an error that
 * answers no request, such as UNAUTHENTICATED) is returned as it is; req then
 * stays pending. ONECARD_EINVAL when replies to onecard_send are pending.
 *
 * With several brokers, when the one in use fails under the call (closed,
 * I/O error, no reply in time) or answers UNAVAILABLE, the connection
 * moves to the next that answers: a read or an UNAVAILABLE request is sent
 * again there; a write whose reply was lost is ONECARD_EUNKNOWN (the
 * connection is on the next broker, ready). Not on a subscription.
 */
int onecard_call(struct onecard_conn *conn, Onecard__V1__Request *req,
    Onecard__V1__Reply **reply);

/* Queue req for sending (assigns an id when 0); written out by flush or recv.
 */
int onecard_send(struct onecard_conn *conn, Onecard__V1__Request *req);

/* Write every queued request. */
int onecard_flush(struct onecard_conn *conn);

/* Flush, then wait for the next reply (in the order requests were sent). */
int onecard_recv(struct onecard_conn *conn, Onecard__V1__Reply **reply);

/* Requests sent whose replies onecard_recv has not returned yet. */
size_t onecard_pending(const struct onecard_conn *conn);

/* 1 when conn's handshake resumed an earlier connection's TLS session. */
int onecard_session_reused(const struct onecard_conn *conn);

void onecard_reply_free(Onecard__V1__Reply *reply);

/*
 * Events (docs/notifications.md). A subscription asks the broker for every
 * event after from_seq that this certificate may see, the backlog first,
 * then live, in seq order (seqs increase; gaps are events for others). The
 * broker pushes each as Reply{id 0, code OK, event}; a reply with id 0 and
 * another code is the broker's notice before it closes the connection
 * (stall, shutdown, log unreadable). Requests may be sent on the same
 * connection: once onecard_subscribe succeeded, onecard_call and
 * onecard_recv set the events they meet aside for onecard_next_event, and
 * onecard_next_event sets replies aside for onecard_recv, so each gets only
 * its own kind. (A Subscribe sent with onecard_send leaves onecard_recv as
 * it was: it returns every frame, events included.)
 *
 * A connection that drops loses nothing: subscribe again, on a new one,
 * from the seq of the last event handled. Delivery is thus at least once.
 */

/*
 * Ping the broker: it answers, and a quiet subscription is seen to be alive
 * (the broker's --idle-timeout leaves a subscription open). Returns
 * ONECARD_OK, an
 * onecard_err, or the broker's refusal as a positive Reply.code.
 */
int onecard_ping(struct onecard_conn *conn);

/*
 * Look up the patient who holds id, naming the other hospitals' domains
 * ("hosp:XC002") whose numbers the caller needs in targets (n of them; may
 * be NULL and 0). A broker with the minimal disclosure profile shows
 * another hospital's numbers only when their domain is named; under full
 * every identifier is shown anyway (docs/protocol.md, "Disclosure").
 * ONECARD_OK with *reply the broker's answer, whatever its code (freed with
 * onecard_reply_free), or an onecard_err.
 */
int onecard_lookup(struct onecard_conn *conn, const Onecard__V1__Identifier *id,
    const char *const *targets, size_t n, Onecard__V1__Reply **reply);

/*
 * Subscribe to the events after from_seq, or with from_now set after the
 * registry's last event now; *last_seq (may be NULL) gets that last event's
 * seq (with from_now, the place to resume from until an event comes).
 * Returns ONECARD_OK, an onecard_err, or the broker's refusal as a positive
 * Reply.code with its reason in onecard_last_error: OUT_OF_RANGE (from_seq
 * is older than the events kept, or after the last one: resync),
 * RESOURCE_EXHAUSTED (the broker's --max-subscribers), CONFLICT (conn has a
 * subscription). ONECARD_EINVAL when replies to onecard_send are pending.
 */
int onecard_subscribe(struct onecard_conn *conn, uint64_t from_seq,
    int from_now, uint64_t *last_seq);

/*
 * The next event pushed on conn, waiting at most timeout_ms (-1: no limit;
 * 0: only what has come already). *event is a Reply with id 0, code OK and
 * event set, freed with onecard_reply_free. ONECARD_ETIMEDOUT when none
 * came in time; unlike other timeouts this does not fail the connection
 * (bytes of a frame read so far are kept for the next call). The broker's
 * notice (id 0, an error code) is returned as that code, positive, with
 * its reason in onecard_last_error; the close that follows it is
 * ONECARD_ECLOSED on the next call. Requests queued with onecard_send are
 * written first.
 */
int onecard_next_event(
    struct onecard_conn *conn, int timeout_ms, Onecard__V1__Reply **event);

/*
 * Subscribe after *seq and hand each event to cb until cb stops or the
 * connection fails. *seq ONECARD_SEQ_NOW subscribes from now and is
 * replaced by the registry's last seq once the broker answers. cb returns
 * 0 to go on; a positive value stops after the event, handled; a negative
 * one stops with the event not handled. *seq is kept at the last event
 * handled, so on any return it is where a new connection resumes (still
 * ONECARD_SEQ_NOW if the subscription was never answered). After the call
 * timeout without an event a ping checks that the broker still answers.
 * Returns ONECARD_OK when
 * cb stopped it, otherwise as onecard_subscribe and onecard_next_event do.
 */
#define ONECARD_SEQ_NOW UINT64_MAX
typedef int (*onecard_watch_cb)(const Onecard__V1__Event *event, void *arg);
int onecard_watch(
    struct onecard_conn *conn, uint64_t *seq, onecard_watch_cb cb, void *arg);

/*
 * Async API on a caller's event_base. The callback gets the reply (owned by
 * the library, valid during the call only) or NULL and an error code when
 * the connection failed; every outstanding callback is called once.
 */
struct onecard_async;
typedef void (*onecard_reply_cb)(
    const Onecard__V1__Reply *reply, int err, void *arg);
typedef void (*onecard_connect_cb)(
    struct onecard_async *ac, int err, void *arg);

/* Start connecting; cb runs once with ONECARD_OK or an error, always from
 * the loop (never before this returns). NULL only when base or opt is NULL
 * or memory ran out; close the handle with onecard_async_close either way.
 * With several brokers the first that answers is taken; a connection that
 * fails later is failed (every callback gets the error): the caller
 * connects again, and the list's first broker that answers takes it. */
struct onecard_async *onecard_async_connect(struct event_base *base,
    const struct onecard_options *opt, onecard_connect_cb cb, void *arg);
/* Queue a request; cb runs once with its reply. */
int onecard_async_send(struct onecard_async *ac, Onecard__V1__Request *req,
    onecard_reply_cb cb, void *arg);

/*
 * Raw replies, for callers that need little of a reply and many of them (a
 * load generator, a gateway that forwards replies): only Reply.id and
 * Reply.code are decoded; body holds the whole Reply message (protobuf, no
 * length prefix) for the caller to decode if it wants more, for instance
 * with onecard__v1__reply__unpack. Only the top level of the message has
 * been checked. reply and body belong to the library and are valid during
 * the call only; NULL and an error code when the connection failed.
 * recv_ns is CLOCK_MONOTONIC in nanoseconds, read once per pass over the
 * bytes received: every reply handed over in one pass shares it, so it
 * serves as "now" for timing the reply without another clock reading.
 */
struct onecard_raw_reply {
	uint64_t id;
	int code; /* an ONECARD__V1__CODE__* value */
	const uint8_t *body;
	size_t len;
	uint64_t recv_ns;
};
typedef void (*onecard_raw_cb)(
    const struct onecard_raw_reply *reply, int err, void *arg);
/* As onecard_async_send, with the reply handed back raw. */
int onecard_async_send_raw(struct onecard_async *ac, Onecard__V1__Request *req,
    onecard_raw_cb cb, void *arg);
/*
 * Queue a request already encoded: body is an onecard.v1.Request packed
 * with id 0 (so it holds no id field; protobuf omits a zero), len bytes, no
 * length prefix. The library adds the frame header and the id it picks
 * (returned in *id when id is not NULL), so a caller can encode a request
 * once and send it many times, patching only its own fields. The bytes are
 * not checked: a body that is not a valid Request is answered by the broker
 * with id 0 and its callback then waits for the reply timeout.
 */
int onecard_async_send_encoded(struct onecard_async *ac, const void *body,
    size_t len, uint64_t *id, onecard_raw_cb cb, void *arg);
/* 1 when ac's handshake resumed an earlier connection's TLS session. */
int onecard_async_session_reused(const struct onecard_async *ac);

/*
 * Events on an async connection. cb gets each event pushed on ac (owned by
 * the library, valid during the call only) with ONECARD_OK, then once NULL
 * and an error when the connection fails or is closed; set it before
 * subscribing (events that come while none is set are dropped). The
 * broker's notice before a close is in onecard_async_last_error. A quiet
 * subscription has no timeout: send a ping now and then to learn that the
 * broker is gone.
 */
typedef void (*onecard_event_cb)(
    const Onecard__V1__Event *event, int err, void *arg);
int onecard_async_on_event(
    struct onecard_async *ac, onecard_event_cb cb, void *arg);
/* Send Subscribe (as onecard_subscribe); cb gets its reply: code OK with
 * event->seq the registry's last event, or the refusal. */
int onecard_async_subscribe(struct onecard_async *ac, uint64_t from_seq,
    int from_now, onecard_reply_cb cb, void *arg);

/*
 * Connections share one TLS context per configuration (the same CA,
 * certificate and key files, unchanged on disk) and resume the broker's TLS
 * session when they reconnect to it. Counts since the program started.
 */
struct onecard_tls_stats {
	uint64_t contexts;   /* TLS contexts built (files read and parsed) */
	uint64_t handshakes; /* handshakes completed */
	uint64_t resumed;    /* of which resumed a session */
};
void onecard_tls_stats(struct onecard_tls_stats *st);
size_t onecard_async_pending(const struct onecard_async *ac);
/* Text of the last error on ac (a reply with id 0 leaves its reason here). */
const char *onecard_async_last_error(const struct onecard_async *ac);
void onecard_async_close(struct onecard_async *ac);

/*
 * Parse "DOMAIN=VALUE" into id, pointing into buf (a copy of s the caller
 * keeps alive). -1 with a reason in errbuf when malformed. Only the syntax is
 * checked here; the broker validates each domain.
 */
int onecard_identifier_parse(const char *s, char *buf, size_t buflen,
    Onecard__V1__Identifier *id, char *errbuf, size_t errlen);

/* Fill opt from the ONECARD_* environment for each field left NULL. */
void onecard_options_from_env(struct onecard_options *opt);

#ifdef __cplusplus
}
#endif

#endif
