/*
 * metrics.h: counters the broker keeps and the HTTP endpoint (evhttp, on its
 * own thread) that serves them as Prometheus text at GET /metrics, and
 * GET /healthz (200 when the registry answers, 503 when not). The counting
 * functions are lock-free and safe from any thread; they are on the hot path.
 */
#ifndef ONECARD_METRICS_H
#define ONECARD_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct registry_limits;

/* The doors a request comes through: the series' interface label. */
enum {
	METRICS_BINARY, /* "binary": the protocol of docs/protocol.md */
	METRICS_FHIR,   /* "fhir": the FHIR door */
	METRICS_IFACES
};

/* One request answered to cn (the certificate CN; "" or NULL before one is
 * known): op (Request op case), reply code, latency. metrics_request is
 * the binary door's. */
void metrics_request(
    const char *cn, int op_case, int code, uint64_t latency_us);
void metrics_request_on(
    int iface, const char *cn, int op_case, int code, uint64_t latency_us);
/* A connection opened (+1) or closed (-1). */
void metrics_connection(int delta);
/* A TLS handshake finished: ok or failed; failed with a reason word. */
void metrics_handshake(int ok);
/* The writer committed a batch of n writes in latency_us. */
void metrics_commit(size_t n, uint64_t latency_us);
/* A request of cn was refused by a rate limit of kind (ratelimit.h). */
void metrics_rate_limited(const char *cn, int kind);
/* The FHIR interface answered a request with HTTP status. */
void metrics_fhir_request(int status);
/* An audit line was written. */
void metrics_audit_line(void);
/* The certificate in use expires at cert_not_after, and the CRL's next
 * update is due at crl_next_update (Unix seconds; 0: no CRL). Any thread. */
void metrics_tls_expiry(int64_t cert_not_after, int64_t crl_next_update);

/*
 * Serve /metrics and /healthz on hostport ("127.0.0.1:0" picks a port and
 * prints "metrics on 127.0.0.1:PORT" to stderr). Opens its own read handle on
 * db_url for /healthz and registry size. 0 or -1. Start-up only.
 */
int metrics_start(const char *hostport, const char *db_url,
    const struct registry_limits *lim);
void metrics_stop(void);
/* Print "onecardd: WHAT on HOST:PORT" for a bound listener's fd. */
void metrics_print_listening(const char *what, int fd);

#endif
