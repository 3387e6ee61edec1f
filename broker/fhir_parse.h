/*
 * fhir_parse.h: what a FHIR request asks, read from its query string or its
 * JSON body into the protobuf messages the registry takes. Pure: no
 * registry, no network, so tests/fuzz/fuzz_fhir.c can drive it. Every
 * refusal names the parameter or the element and why.
 */
#ifndef ONECARD_FHIR_PARSE_H
#define ONECARD_FHIR_PARSE_H

#include <stddef.h>

#include <jansson.h>

#include "onecard.pb-c.h"

struct evkeyvalq;

/* Named limits of what a request may carry. */
#define FHIR_MAX_DEPTH   32  /* nesting of a JSON body */
#define FHIR_MAX_IDS     16  /* identifiers of one Patient */
#define FHIR_MAX_COUNT   100 /* _count and $match's count */
#define FHIR_TEXT_MAX    256 /* bytes of one string the door keeps */
#define FHIR_MAX_SYSTEMS 32  /* --fhir-system mappings */
#define FHIR_SYSTEM_URN  "urn:onecard:"
#define FHIR_GRADE_URL   "http://hl7.org/fhir/StructureDefinition/match-grade"

/* An identifier as the registry takes it: domain, value. */
struct fhir_ident {
	char domain[FHIR_TEXT_MAX];
	char value[FHIR_TEXT_MAX];
};

/* A Patient resource (ITI-104's body, $match's input) as the registry
 * takes it. */
struct fhir_patient_in {
	char name[FHIR_TEXT_MAX];
	char birth_date[16];
	char phone[FHIR_TEXT_MAX];
	char address[FHIR_TEXT_MAX];
	int sex; /* ONECARD__V1__SEX__* */
	struct fhir_ident ids[FHIR_MAX_IDS];
	size_t n_ids;
	int active; /* 1 unless "active": false */
	/* A replaced-by link: a patient id, or an identifier. */
	int has_link;
	char link_pid[FHIR_TEXT_MAX];
	struct fhir_ident link_ident;
};

/* A PDQm search (ITI-78): the registry's Search and the paging. */
struct fhir_search_in {
	char id[FHIR_TEXT_MAX]; /* _id: a read, not a search */
	char name[FHIR_TEXT_MAX];
	char birth_date[16];
	char phone[FHIR_TEXT_MAX];
	char address[FHIR_TEXT_MAX];
	int sex;
	int exact; /* family or given :exact */
	int has_ident;
	struct fhir_ident ident;
	unsigned count, offset;
	/* The parameters used, canonical, for the Bundle's self link. */
	char used[4 * FHIR_TEXT_MAX];
};

/*
 * Identifier systems. A domain D is the system urn:onecard:D unless
 * --fhir-system D=URI (an OID as urn:oid:..., another urn: or a URL) names
 * it otherwise; urn:onecard:D is still understood then. Set at start,
 * before the door serves: fhir_system_check reads "D=URI" (0, or -1 with
 * why in err), fhir_system_add keeps one, fhir_system_clear drops them.
 */
int fhir_system_check(const char *spec, char *domain, size_t domlen, char *uri,
    size_t urilen, char *err, size_t errlen);
int fhir_system_add(const char *spec, char *err, size_t errlen);
void fhir_system_clear(void);
/* The system that names domain. */
void fhir_system_name(const char *domain, char *buf, size_t len);
/*
 * The domain a FHIR identifier system names. 0 with the domain in dom
 * (domlen bytes), -1 for a system this registry does not name.
 */
int fhir_system_domain(const char *system, char *dom, size_t domlen);

/* "SYSTEM|VALUE" (a token): 0, or -1 with why in err. */
int fhir_parse_token(const char *what, const char *tok, struct fhir_ident *id,
    char *err, size_t errlen);

/*
 * A request body as JSON: an object, nested at most FHIR_MAX_DEPTH deep,
 * valid UTF-8, no key twice. NULL with why in err.
 */
json_t *fhir_parse_json(const char *buf, size_t len, char *err, size_t errlen);

/* A Patient resource: 0, or -1 with the element and why in err. */
int fhir_parse_patient(
    const json_t *res, struct fhir_patient_in *out, char *err, size_t errlen);

/*
 * $match's Parameters (ITI-119): the Patient, onlyCertainMatches and
 * count (0 when not given). 0, or -1 with why in err.
 */
int fhir_parse_match(const json_t *params, struct fhir_patient_in *out,
    int *only_certain, unsigned *count, char *err, size_t errlen);

/*
 * A PDQm query. strict (Prefer: handling=strict): an unknown parameter is
 * an error; else it is ignored and left out of the self link. 0, or -1
 * with the parameter and why in err.
 */
int fhir_parse_search(const struct evkeyvalq *q, int strict,
    struct fhir_search_in *out, char *err, size_t errlen);

/* Fill a Search for the registry from in (strings borrowed from in). */
void fhir_search_request(const struct fhir_search_in *in,
    Onecard__V1__Search *s, Onecard__V1__Identifier *id);

#endif
