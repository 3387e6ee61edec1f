/*
 * fuzz_fhir.c: what a FHIR client sends, through the door's parser
 * (broker/fhir_parse.c): the first byte picks what the rest is.
 *
 *   0  a query string, as PDQm's GET or POST _search carries it
 *   1  a JSON body, as a Patient (the feed's PUT)
 *   2  a JSON body, as $match's Parameters
 *   3  a token, SYSTEM|VALUE
 *
 * A refusal must say why. An accepted search asks for something, its
 * strings fit, and its Search request can be built; an accepted body is
 * an object whose Patient holds at most FHIR_MAX_IDS identifiers, each in
 * a domain of this registry. Parsing the same input twice gives the same
 * answer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "fhir_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Fail loudly: libFuzzer and ASan both report an abort with its stack. */
static void
fuzz_check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_fhir: invariant broken: %s\n", what);
		abort();
	}
}

static void
fuzz_search(const char *s)
{
	struct fhir_search_in in, again;
	Onecard__V1__Search sr;
	Onecard__V1__Identifier id;
	struct evkeyvalq q;
	char err[256] = "";
	int rc;

	TAILQ_INIT(&q);
	if (evhttp_parse_query_str(s, &q) == -1) {
		evhttp_clear_headers(&q);
		return;
	}
	for (int strict = 0; strict < 2; strict++) {
		rc = fhir_parse_search(&q, strict, &in, err, sizeof(err));
		fuzz_check(rc == 0 || err[0] != '\0', "a refusal says why");
		fuzz_check(fhir_parse_search(
			       &q, strict, &again, err, sizeof(err)) == rc,
		    "the same query, the same answer");
		if (rc != 0)
			continue;
		fuzz_check(memcmp(&in, &again, sizeof(in)) == 0,
		    "the same query, the same search");
		fuzz_check(in.id[0] || in.name[0] || in.birth_date[0] ||
			in.phone[0] || in.address[0] || in.has_ident ||
			in.sex != 0,
		    "an accepted search asks for something");
		fuzz_check(
		    in.count <= FHIR_MAX_COUNT && in.offset < FHIR_MAX_COUNT,
		    "paging within its limits");
		fuzz_check(strlen(in.name) < sizeof(in.name) &&
			strlen(in.used) < sizeof(in.used),
		    "strings fit");
		fhir_search_request(&in, &sr, &id);
		fuzz_check(sr.limit == FHIR_MAX_COUNT, "the search's limit");
	}
	evhttp_clear_headers(&q);
}

static void
fuzz_body(const char *s, size_t len, int match)
{
	struct fhir_patient_in p;
	char err[256] = "";
	unsigned count;
	int only, rc;
	json_t *o;

	if ((o = fhir_parse_json(s, len, err, sizeof(err))) == NULL) {
		fuzz_check(err[0] != '\0', "a refused body says why");
		return;
	}
	fuzz_check(json_is_object(o), "an accepted body is an object");
	err[0] = '\0';
	rc = match ? fhir_parse_match(o, &p, &only, &count, err, sizeof(err))
		   : fhir_parse_patient(o, &p, err, sizeof(err));
	fuzz_check(rc == 0 || err[0] != '\0', "a refused resource says why");
	if (rc == 0) {
		char dom[FHIR_TEXT_MAX], sys[2 * FHIR_TEXT_MAX];

		fuzz_check(p.n_ids <= FHIR_MAX_IDS, "identifiers bounded");
		for (size_t i = 0; i < p.n_ids; i++) {
			snprintf(sys, sizeof(sys), FHIR_SYSTEM_URN "%s",
			    p.ids[i].domain);
			fuzz_check(
			    fhir_system_domain(sys, dom, sizeof(dom)) == 0 &&
				strcmp(dom, p.ids[i].domain) == 0,
			    "an identifier's domain maps back to its system");
		}
		fuzz_check(!match || count <= FHIR_MAX_COUNT, "count bounded");
	}
	json_decref(o);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fhir_ident id;
	char err[256] = "";
	char *s;

	if (size < 1)
		return 0;
	if ((s = malloc(size)) == NULL)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0] % 4) {
	case 0:
		if (strlen(s) == size - 1)
			fuzz_search(s);
		break;
	case 1:
	case 2:
		fuzz_body(s, size - 1, data[0] % 4 == 2);
		break;
	case 3:
		if (strlen(s) == size - 1 &&
		    fhir_parse_token("t", s, &id, err, sizeof(err)) == -1)
			fuzz_check(err[0] != '\0', "a refused token says why");
		break;
	}
	free(s);
	return 0;
}
