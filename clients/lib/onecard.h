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
 *    onecard_async_* call back when each reply arrives.
 * Every function returns ONECARD_OK (0) or a negative ONECARD_E* code;
 * onecard_strerror turns one into text. The protocol is in docs/protocol.md.
 * The library never raises SIGPIPE (a broker that hangs up is ECLOSED), and
 * a blocking connection that failed (timeout included) stays failed: every
 * later call returns the same code; reconnect.
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
};

/* Where the broker is and who we are. */
struct onecard_options {
	const char
	    *broker; /* "HOST:PORT"; NULL: $ONECARD_BROKER or 127.0.0.1:7443 */
	const char *ca;          /* PEM file; NULL: $ONECARD_CA */
	const char *cert;        /* PEM file; NULL: $ONECARD_CERT */
	const char *key;         /* PEM file; NULL: $ONECARD_KEY */
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

/*
 * Send req and wait for its reply. When req->id is 0 the library picks one.
 * *reply is freed with onecard_reply_free. A reply with id 0 (an error that
 * answers no request, such as UNAUTHENTICATED) is returned as it is; req then
 * stays pending. ONECARD_EINVAL when replies to onecard_send are pending.
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

/* Requests sent whose replies have not been received yet. */
size_t onecard_pending(const struct onecard_conn *conn);

/* 1 when conn's handshake resumed an earlier connection's TLS session. */
int onecard_session_reused(const struct onecard_conn *conn);

void onecard_reply_free(Onecard__V1__Reply *reply);

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
 * or memory ran out; close the handle with onecard_async_close either way. */
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
