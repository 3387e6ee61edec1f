/*
 * fhir_search.c: PDQm (ITI-78, GET /fhir/Patient and POST
 * /fhir/Patient/_search) and $match (ITI-119, POST /fhir/Patient/$match).
 * Both become the binary protocol's Search, through the same search guard
 * (search_guard.c) and the same registry_read, and come back as a
 * searchset Bundle; docs/fhir.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "fhir.h"
#include "fhir_parse.h"
#include "search_guard.h"
#include "wire.h"

/* A match grade's code in FHIR's match-grade extension. */
static const char *
fhir_grade_code(int grade)
{
	switch (grade) {
	case ONECARD__V1__MATCH_GRADE__MATCH_CERTAIN:
		return "certain";
	case ONECARD__V1__MATCH_GRADE__MATCH_PROBABLE:
		return "probable";
	default:
		return "possible";
	}
}

/* A Bundle entry for patient p: its URL, the resource, and how it
 * matched (m NULL: an exact search's, no score). */
static json_t *
fhir_entry(struct fhir_req *r, const Onecard__V1__Patient *p,
    const Onecard__V1__Match *m)
{
	char path[96], url[384];
	json_t *e, *search;

	snprintf(path, sizeof(path), "/fhir/Patient/%s", p->patient_id);
	fhir_url(r, path, url, sizeof(url));
	search = json_pack("{s:s}", "mode", "match");
	if (m != NULL) {
		/* Four places are plenty, and keep the JSON short. */
		json_object_set_new(search, "score",
		    json_real((double)(long)(m->score * 10000 + 0.5) / 10000));
		json_object_set_new(search, "extension",
		    json_pack("[{s:s, s:s}]", "url", FHIR_GRADE_URL,
			"valueCode", fhir_grade_code(m->grade)));
	}
	e = json_pack("{s:s, s:o, s:o}", "fullUrl", url, "resource",
	    fhir_patient(p), "search", search);
	return e;
}

/* An empty searchset Bundle with its self link. */
static json_t *
fhir_bundle(const char *self)
{
	return json_pack("{s:s, s:s, s:i, s:[{s:s, s:s}], s:[]}",
	    "resourceType", "Bundle", "type", "searchset", "total", 0, "link",
	    "relation", "self", "url", self, "entry");
}

/* The link to a page of the same search. */
static void
fhir_page_url(struct fhir_req *r, const struct fhir_search_in *in,
    unsigned offset, char *buf, size_t len)
{
	char path[sizeof(in->used) + 80];

	snprintf(path, sizeof(path), "/fhir/Patient?%s%s_count=%u&_offset=%u",
	    in->used, in->used[0] ? "&" : "", in->count, offset);
	fhir_url(r, path, buf, len);
}

/*
 * Run s (a hospital's through the search guard) and hand back the reply:
 * 0, or -1 answered. Its criteria, masked, go to the trail.
 */
static int
fhir_run_search(
    struct fhir_req *r, const Onecard__V1__Search *s, Onecard__V1__Reply **out)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Search narrowed;
	const Onecard__V1__Search *run;
	Onecard__V1__Reply *reply;
	char err[256];
	int code;

	search_guard_describe(s, r->detail, sizeof(r->detail));
	if (search_guard_check(r->who.role, s, cfg->search_max_results,
		cfg->limits.search_limit, &narrowed, &run, err,
		sizeof(err)) == -1) {
		fhir_fail(r, 400, "too-costly", "%s", err);
		return -1;
	}
	req.op_case = ONECARD__V1__REQUEST__OP_SEARCH;
	req.search = (Onecard__V1__Search *)run;
	if ((code = fhir_ask(r, &req, NULL, 0, NULL, &reply)) !=
	    ONECARD__V1__CODE__OK) {
		fhir_fail_code(r, code, reply ? reply->message : NULL);
		if (reply != NULL)
			wire_reply_free(reply);
		return -1;
	}
	if (reply->result_case != ONECARD__V1__REPLY__RESULT_SEARCH) {
		wire_reply_free(reply);
		fhir_fail_code(r, ONECARD__V1__CODE__INTERNAL, NULL);
		return -1;
	}
	*out = reply;
	return 0;
}

/* _id: a read, as a Bundle of one entry or none. */
static void
fhir_search_id(struct fhir_req *r, const struct fhir_search_in *in)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Lookup lk = ONECARD__V1__LOOKUP__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Reply *reply;
	char self[1400];
	json_t *b;
	int code;

	fhir_page_url(r, in, in->offset, self, sizeof(self));
	b = fhir_bundle(self);
	id.domain = "pid";
	id.value = (char *)in->id;
	lk.identifier = &id;
	req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
	req.lookup = &lk;
	code = fhir_ask(r, &req, NULL, 0, NULL, &reply);
	/* Only the patient whose id it is: a merged-away id is not the
	 * survivor's (a read of it shows the link). */
	if (code == ONECARD__V1__CODE__OK &&
	    reply->result_case == ONECARD__V1__REPLY__RESULT_PATIENT &&
	    strcasecmp(reply->patient->patient_id, in->id) == 0 &&
	    in->count > 0 && in->offset == 0) {
		json_array_append_new(json_object_get(b, "entry"),
		    fhir_entry(r, reply->patient, NULL));
	}
	if (code == ONECARD__V1__CODE__OK &&
	    reply->result_case == ONECARD__V1__REPLY__RESULT_PATIENT &&
	    strcasecmp(reply->patient->patient_id, in->id) == 0)
		json_object_set_new(b, "total", json_integer(1));
	if (reply != NULL)
		wire_reply_free(reply);
	if (code != ONECARD__V1__CODE__OK &&
	    code != ONECARD__V1__CODE__NOT_FOUND &&
	    code != ONECARD__V1__CODE__INVALID_ARGUMENT) {
		json_decref(b);
		fhir_fail_code(r, code, NULL);
		return;
	}
	r->res.code = ONECARD__V1__CODE__OK;
	fhir_send(r, 200, b);
}

void
fhir_search(struct fhir_req *r, const struct evkeyvalq *q)
{
	const char *prefer = evhttp_find_header(
	    evhttp_request_get_input_headers(r->req), "Prefer");
	struct fhir_search_in in;
	Onecard__V1__Search s;
	Onecard__V1__Identifier id;
	Onecard__V1__Reply *reply;
	Onecard__V1__SearchResult *sr;
	char err[256], self[1400];
	size_t total;
	json_t *b, *entries;

	if (fhir_parse_search(q,
		prefer != NULL && strstr(prefer, "handling=strict") != NULL,
		&in, err, sizeof(err)) == -1) {
		fhir_fail(r, 400, "invalid", "%s", err);
		return;
	}
	if (in.id[0] != '\0') {
		fhir_search_id(r, &in);
		return;
	}
	fhir_search_request(&in, &s, &id);
	if (fhir_run_search(r, &s, &reply) == -1)
		return;
	sr = reply->search;
	total = sr->n_patients;
	fhir_page_url(r, &in, in.offset, self, sizeof(self));
	b = fhir_bundle(self);
	json_object_set_new(b, "total", json_integer((json_int_t)total));
	entries = json_object_get(b, "entry");
	for (size_t i = in.offset; i < total && i < in.offset + in.count; i++)
		json_array_append_new(entries,
		    fhir_entry(r, sr->patients[i],
			i < sr->n_matches ? sr->matches[i] : NULL));
	if (in.offset + in.count < total) {
		char next[1400];

		fhir_page_url(r, &in, in.offset + in.count, next, sizeof(next));
		json_array_append_new(json_object_get(b, "link"),
		    json_pack("{s:s, s:s}", "relation", "next", "url", next));
	}
	wire_reply_free(reply);
	fhir_send(r, 200, b);
}

void
fhir_match(struct fhir_req *r, const json_t *body)
{
	struct fhir_patient_in in;
	Onecard__V1__Search s = ONECARD__V1__SEARCH__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Reply *reply;
	Onecard__V1__SearchResult *sr;
	char err[256], self[512];
	unsigned count, n = 0;
	int only_certain;
	json_t *b, *entries;

	if (fhir_parse_match(
		body, &in, &only_certain, &count, err, sizeof(err)) == -1) {
		fhir_fail(r, 400, "invalid", "%s", err);
		return;
	}
	s.name = in.name;
	s.birth_date = in.birth_date;
	s.phone = in.phone;
	s.address = in.address;
	s.sex = in.sex;
	s.limit = FHIR_MAX_COUNT;
	/* The registry's search takes one identifier: the cn-id if the
	 * Patient has one, which decides a match best; else the first. */
	for (size_t i = 0; i < in.n_ids; i++)
		if (s.identifier == NULL ||
		    strcmp(in.ids[i].domain, "cn-id") == 0) {
			id.domain = in.ids[i].domain;
			id.value = in.ids[i].value;
			s.identifier = &id;
		}
	if (fhir_run_search(r, &s, &reply) == -1)
		return;
	sr = reply->search;
	fhir_url(r, "/fhir/Patient/$match", self, sizeof(self));
	b = fhir_bundle(self);
	entries = json_object_get(b, "entry");
	for (size_t i = 0; i < sr->n_matches; i++) {
		if (only_certain &&
		    sr->matches[i]->grade !=
			ONECARD__V1__MATCH_GRADE__MATCH_CERTAIN)
			continue;
		if (count > 0 && n == count)
			break;
		json_array_append_new(entries,
		    fhir_entry(r, sr->matches[i]->patient, sr->matches[i]));
		n++;
	}
	json_object_set_new(b, "total", json_integer(n));
	wire_reply_free(reply);
	fhir_send(r, 200, b);
}
