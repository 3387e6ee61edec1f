/*
 * fhir.h: what the FHIR door's files share (fhir.c: the server, identity,
 * PIXm and reads; fhir_search.c: PDQm and $match; fhir_feed.c: the PIXm
 * feed's writes). Not for the rest of the broker: onecardd.h has
 * fhir_start and fhir_stop.
 */
#ifndef ONECARD_FHIR_H
#define ONECARD_FHIR_H

#include <stdint.h>

#include <jansson.h>

#include "onecardd.h"
#include "policy.h"

struct evbuffer;
struct evhttp_request;
struct evkeyvalq;

#define FHIR_JSON "application/fhir+json; charset=utf-8"

/* One request being answered: who asks, and what goes to the trail. */
struct fhir_req {
	struct evhttp_request *req;
	struct actor who;
	char cn[ONECARDD_CN_MAX + 1];
	const char *op;
	int op_case; /* the registry op it is counted as (metrics); 0: none */
	struct op_result res;
	uint64_t start_us;
	struct policy_who pol; /* what it may see (policy.h) */
	char detail[256];      /* more for the trail: a search's criteria */
};

/* This thread's read handle on the registry. */
struct registry *fhir_registry(void);

/* Send body (taken; NULL: none) with status, then count and audit. */
void fhir_send(struct fhir_req *r, int status, json_t *body);
/* An OperationOutcome with one issue, sent with status. */
void fhir_fail(struct fhir_req *r, int status, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Answer a registry code that is not OK, with its message if any. */
void fhir_fail_code(struct fhir_req *r, int code, const char *msg);

/*
 * Answer req on this thread's read handle, filtered by the caller's
 * disclosure policy for the n target domains and the domain of the card
 * presented (NULL: none), as the binary door does. The
 * reply's code; *out the decoded reply (free with wire_reply_free) whenever
 * one came, OK or not.
 */
int fhir_ask(struct fhir_req *r, const Onecard__V1__Request *req,
    char *const *targets, size_t n, const char *presented,
    Onecard__V1__Reply **out);
/* The same for a reply frame already made (the writer's), in b. */
int fhir_decode(struct fhir_req *r, struct evbuffer *b, char *const *targets,
    size_t n, const char *presented, Onecard__V1__Reply **out);
/* Take a token of kind from the caller's bucket: 0, or -1 answered 429. */
int fhir_rate(struct fhir_req *r, int kind, const char *op);

/* The absolute URL of path on this door (from the Host header). */
void fhir_url(struct fhir_req *r, const char *path, char *buf, size_t len);

/* Resources. */
json_t *fhir_identifier(const Onecard__V1__Identifier *id);
json_t *fhir_patient(const Onecard__V1__Patient *p);
/* A merged-away patient: inactive, replaced-by survivor. */
json_t *fhir_patient_stub(const char *pid, const char *survivor);

/* fhir_search.c */
void fhir_search(struct fhir_req *r, const struct evkeyvalq *q);
void fhir_match(struct fhir_req *r, const json_t *body);

/* fhir_feed.c: each answers later, from the writer's replies. */
void fhir_feed_put(
    struct fhir_req *r, const struct evkeyvalq *q, const json_t *body);
void fhir_feed_delete(struct fhir_req *r, const struct evkeyvalq *q);
/* Wait for the feed's writes in flight, then free them (fhir_stop). */
void fhir_feed_drain(void);

#endif
