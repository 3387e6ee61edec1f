/*
 * client.h: what the files of libonecard share and callers never see.
 *
 * The grouping follows the files: client_tls.c builds the TLS context and
 * names the peer, client_util.c parses addresses and identifiers, conn.c is
 * the blocking connection and async.c the libevent one.
 */
#ifndef ONECARD_CLIENT_H
#define ONECARD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "onecard.h"

#define ONECARD_DEFAULT_BROKER          "127.0.0.1:7443"
#define ONECARD_DEFAULT_CONNECT_TIMEOUT 10000
#define ONECARD_DEFAULT_CALL_TIMEOUT    30000
#define ONECARD_DEFAULT_MAX_FRAME       (16u * 1024 * 1024)
#define ONECARD_ERRLEN                  512

/* client_util.c */
/* Split "HOST:PORT" or "[V6]:PORT" into host and port. 0 or -1. */
int client_split_addr(
    const char *addr, char *host, size_t hostlen, char *port, size_t portlen);
/* The i-th "HOST:PORT" of a comma-separated broker list into buf, spaces
 * trimmed. 0, or -1 when there is none, it is empty or it does not fit. */
int client_nth_broker(const char *list, size_t i, char *buf, size_t len);
/* How many entries the list has (its commas, plus one). */
size_t client_count_brokers(const char *list);
/* Options with every default applied (env, then built-in). */
void client_options_resolve(
    const struct onecard_options *in, struct onecard_options *out);
/* Print into buf; a NULL buf or zero len is allowed. */
void client_errf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Append OpenSSL's queued reasons to buf; clears the queue. */
void client_err_append_ssl(char *buf, size_t len);
/* Read Reply.id and Reply.code out of a Reply body, checking only that its
 * top-level fields are well formed. 0 or -1. */
int client_reply_scan(const uint8_t *body, size_t len, uint64_t *id, int *code);
/* What a reply frame is: the answer to a request (its id), an event pushed
 * on a subscription (id 0, OK, an event), or the broker's notice that
 * answers no request (id 0, anything else: an error before a close). */
enum client_reply_kind {
	CLIENT_REPLY_ANSWER,
	CLIENT_REPLY_EVENT,
	CLIENT_REPLY_NOTICE,
};
enum client_reply_kind client_reply_kind(const Onecard__V1__Reply *reply);

/* client_tls.c */
/* A shared client TLS context and its sessions, one per configuration. */
struct client_tls;
/* The context for opt (TLS 1.2+, CA, certificate, key), shared with every
 * connection of the same configuration; NULL with err set. */
struct client_tls *client_tls_get(
    const struct onecard_options *opt, char *err, size_t errlen);
/* Let go of a context client_tls_get gave. */
void client_tls_put(struct client_tls *t);
/* An SSL that checks the broker's certificate names host (name or IP) and
 * offers the session kept for host at broker, if any. */
SSL *client_tls_new(struct client_tls *t, const char *host, const char *broker,
    char *err, size_t errlen);
/* The handshake ended: ok counts it (and whether it resumed); a failure
 * forgets the session it offered. */
void client_tls_done(SSL *ssl, int ok);
/* Attach fd to ssl through a socket BIO that never raises SIGPIPE; the
 * caller keeps owning fd. 0 or -1. */
int client_tls_set_socket(SSL *ssl, int fd);
/* buf names what failed on ssl ("TLS handshake"): replace it with one
 * sentence when OpenSSL's reason is one a user can mend (the broker refused
 * our certificate, or we refused the broker's), else append OpenSSL's
 * reasons and our certificate check's. Empties the error queue. */
void client_tls_explain(SSL *ssl, char *buf, size_t len);

#endif
