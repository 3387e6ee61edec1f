/*
 * fhir_feed.c: the PIXm feed (ITI-104), the FHIR door's writes. A
 * conditional PUT /fhir/Patient?identifier=SYSTEM|VALUE enrolls the Patient
 * it carries when no one holds that identifier, and otherwise updates the
 * holder's demographics and links the identifiers it does not hold yet; a
 * PUT with active=false and a replaced-by link merges (admins); a
 * conditional DELETE unlinks. Each step is the binary protocol's own write
 * (Enroll, Update, Link, Merge, Unlink), sent to the writer as a job like a
 * connection's, so every domain rule is the registry's. The answer waits
 * for the writer: its reply comes back to the door thread that took the
 * request, through an event on that thread's loop.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "audit.h"
#include "fhir.h"
#include "fhir_parse.h"
#include "log.h"
#include "metrics.h"
#include "wire.h"
#include "writer.h"

enum fhir_step {
	STEP_ENROLL,
	STEP_UPDATE,
	STEP_LINK,
	STEP_MERGE,
	STEP_UNLINK,
};

static const char *const fhir_step_op[] = {
    "fhir:enroll", "fhir:update", "fhir:link", "fhir:merge", "fhir:unlink"};

/* One PUT or DELETE on its way through the writer. */
struct fhir_feed {
	LIST_ENTRY(fhir_feed) entry; /* fhir_feeds, until answered */
	struct fhir_req r;
	struct event *back; /* on the door's thread: the writer is done */
	struct writer_job job;
	enum fhir_step step;
	struct fhir_patient_in in;
	struct fhir_ident cond; /* the conditional identifier */
	size_t next_link;       /* the next of in.ids to link */
	uint64_t expected;      /* If-Match: the version the caller saw */
};

/* The feeds in flight, of every door thread (under the lock), and how
 * many jobs the writer has. */
static LIST_HEAD(, fhir_feed) fhir_feeds = LIST_HEAD_INITIALIZER(fhir_feeds);
static pthread_mutex_t fhir_feeds_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int fhir_inflight;

/* Free a feed that is done, and what it holds. */
static void
fhir_feed_free(struct fhir_feed *f)
{
	pthread_mutex_lock(&fhir_feeds_lock);
	LIST_REMOVE(f, entry);
	pthread_mutex_unlock(&fhir_feeds_lock);
	writer_job_clear(&f->job);
	if (f->back != NULL)
		event_free(f->back);
	free(f);
}

/* The writer is done with f's job (writer's thread): send it home. */
static void
fhir_feed_done(struct writer_job *job)
{
	struct fhir_feed *f = job->arg;

	event_active(f->back, EV_READ, 0);
	atomic_fetch_sub(&fhir_inflight, 1);
}

/*
 * Send tmpl to the writer as f's next step. The writer frees what it is
 * given as a decoded message, so tmpl goes through the codec. 0, or -1
 * answered.
 */
static int
fhir_feed_submit(
    struct fhir_feed *f, enum fhir_step step, Onecard__V1__Request *tmpl)
{
	size_t n = onecard__v1__request__get_packed_size(tmpl);
	uint8_t *buf = malloc(n + 1);

	writer_job_clear(&f->job);
	memset(&f->job.res, 0, sizeof(f->job.res));
	if (buf != NULL) {
		onecard__v1__request__pack(tmpl, buf);
		f->job.req = wire_request_unpack(
		    buf, n, n * WIRE_MEM_FACTOR + 4096, NULL);
		free(buf);
	}
	if (f->job.req == NULL) {
		fhir_fail(&f->r, 500, "exception", "broker out of memory");
		return -1;
	}
	f->step = step;
	f->job.who = f->r.who;
	f->job.done = fhir_feed_done;
	f->job.arg = f;
	atomic_fetch_add(&fhir_inflight, 1);
	writer_submit(&f->job);
	return 0;
}

static void fhir_feed_back(evutil_socket_t fd, short what, void *arg);

/* A new feed for r (copied: r lives on the caller's stack), or NULL
 * answered. */
static struct fhir_feed *
fhir_feed_new(struct fhir_req *r)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(r->req);
	struct fhir_feed *f = calloc(1, sizeof(*f));

	if (f == NULL || evcon == NULL ||
	    (f->back = event_new(evhttp_connection_get_base(evcon), -1, 0,
		 fhir_feed_back, f)) == NULL) {
		free(f);
		fhir_fail(r, 500, "exception", "broker out of memory");
		return NULL;
	}
	f->r = *r;
	f->r.who.cn = f->r.cn;
	pthread_mutex_lock(&fhir_feeds_lock);
	LIST_INSERT_HEAD(&fhir_feeds, f, entry);
	pthread_mutex_unlock(&fhir_feeds_lock);
	return f;
}

/* The conditional identifier of q: 0, or -1 answered. */
static int
fhir_feed_cond(struct fhir_req *r, const struct evkeyvalq *q,
    struct fhir_ident *cond, const char *what)
{
	const char *v = evhttp_find_header(q, "identifier");
	char err[256];

	if (v == NULL) {
		fhir_fail(r, 400, "required",
		    "identifier=SYSTEM|VALUE is required: a %s is "
		    "conditional",
		    what);
		return -1;
	}
	if (fhir_parse_token("identifier", v, cond, err, sizeof(err)) == -1) {
		fhir_fail(r, 400, "invalid", "%s", err);
		return -1;
	}
	return 0;
}

/* Write one step's line to the trail: each write is the registry's. */
static void
fhir_feed_audit(struct fhir_feed *f)
{
	struct audit_entry e = {
	    .actor = f->r.cn,
	    .role = f->r.who.role,
	    .op = fhir_step_op[f->step],
	    .target = f->job.res.target,
	    .patient_id = f->job.res.patient_id,
	    .other_patient_id = f->job.res.other_patient_id,
	    .code = f->job.res.code,
	    .latency_us = onecardd_now_us() - f->r.start_us,
	    .detail = f->job.res.detail,
	};

	if (audit_enabled())
		audit_log(&e);
	metrics_request_on(METRICS_FHIR, f->r.cn, f->job.req->op_case,
	    f->job.res.code, e.latency_us);
}

/* The identifier as the registry's message names it. */
static void
fhir_feed_ident(Onecard__V1__Identifier *id, const struct fhir_ident *from)
{
	onecard__v1__identifier__init(id);
	id->domain = (char *)from->domain;
	id->value = (char *)from->value;
}

/* The Patient's demographics for the registry. */
static void
fhir_feed_demo(Onecard__V1__Demographics *d, const struct fhir_patient_in *in)
{
	onecard__v1__demographics__init(d);
	d->name = (char *)in->name;
	d->sex = in->sex;
	d->birth_date = (char *)in->birth_date;
	d->phone = (char *)in->phone;
	d->address = (char *)in->address;
}

/* The next link step, or the answer when none is left. */
static void fhir_feed_next(struct fhir_feed *f);

/* Answer with the record as it now is: 200 (or 201 when created). */
static void
fhir_feed_answer(struct fhir_feed *f, const Onecard__V1__Patient *p, int status)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(f->r.req);
	char path[96], url[384], etag[32];

	snprintf(path, sizeof(path), "/fhir/Patient/%s", p->patient_id);
	fhir_url(&f->r, path, url, sizeof(url));
	snprintf(
	    etag, sizeof(etag), "W/\"%llu\"", (unsigned long long)p->version);
	evhttp_add_header(h, "Location", url);
	evhttp_add_header(h, "ETag", etag);
	fhir_send(&f->r, status, fhir_patient(p));
}

/* The writer answered f's step: on the door's thread. */
static void
fhir_feed_back(evutil_socket_t fd, short what, void *arg)
{
	struct fhir_feed *f = arg;
	Onecard__V1__Reply *reply = NULL;
	int code;

	(void)fd;
	(void)what;
	fhir_feed_audit(f);
	f->r.res = f->job.res;
	if (f->job.out == NULL)
		code = ONECARD__V1__CODE__UNAVAILABLE;
	else
		code = fhir_decode(&f->r, f->job.out, NULL, 0, NULL, &reply);
	if (code != ONECARD__V1__CODE__OK) {
		fhir_fail_code(&f->r, code, reply ? reply->message : NULL);
		goto done;
	}
	switch (f->step) {
	case STEP_ENROLL:
		if (reply->result_case != ONECARD__V1__REPLY__RESULT_ENROLLED ||
		    reply->enrolled->patient == NULL)
			break;
		fhir_feed_answer(f, reply->enrolled->patient,
		    reply->enrolled->created ? 201 : 200);
		goto done;
	case STEP_UPDATE:
	case STEP_LINK:
		wire_reply_free(reply);
		fhir_feed_next(f);
		return;
	case STEP_MERGE:
		if (reply->result_case != ONECARD__V1__REPLY__RESULT_PATIENT)
			break;
		fhir_send(&f->r, 200,
		    fhir_patient_stub(f->job.res.other_patient_id,
			reply->patient->patient_id));
		goto done;
	case STEP_UNLINK:
		fhir_send(&f->r, 200,
		    json_pack("{s:s, s:[{s:s, s:s, s:s}]}", "resourceType",
			"OperationOutcome", "issue", "severity", "information",
			"code", "informational", "diagnostics",
			"the identifier was unlinked"));
		goto done;
	}
	fhir_fail_code(&f->r, ONECARD__V1__CODE__INTERNAL, NULL);
done:
	if (reply != NULL)
		wire_reply_free(reply);
	fhir_feed_free(f);
}

/* Link the next identifier the holder lacks, or answer with the record. */
static void
fhir_feed_next(struct fhir_feed *f)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Link lk = ONECARD__V1__LINK__INIT;
	Onecard__V1__Identifier known, added;
	Onecard__V1__Reply *reply;
	Onecard__V1__Request lq = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Lookup l = ONECARD__V1__LOOKUP__INIT;
	int code;

	while (f->next_link < f->in.n_ids) {
		const struct fhir_ident *id = &f->in.ids[f->next_link++];

		if (strcmp(id->domain, f->cond.domain) == 0 &&
		    strcmp(id->value, f->cond.value) == 0)
			continue;
		fhir_feed_ident(&known, &f->cond);
		fhir_feed_ident(&added, id);
		lk.known = &known;
		lk.added = &added;
		req.op_case = ONECARD__V1__REQUEST__OP_LINK;
		req.link = &lk;
		if (fhir_feed_submit(f, STEP_LINK, &req) == -1)
			fhir_feed_free(f);
		return;
	}
	/* Every step is done: answer with the record as it now is. */
	fhir_feed_ident(&known, &f->cond);
	l.identifier = &known;
	lq.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
	lq.lookup = &l;
	code = fhir_ask(&f->r, &lq, NULL, 0, NULL, &reply);
	if (code == ONECARD__V1__CODE__OK &&
	    reply->result_case == ONECARD__V1__REPLY__RESULT_PATIENT)
		fhir_feed_answer(f, reply->patient, 200);
	else
		fhir_fail_code(&f->r,
		    code == ONECARD__V1__CODE__OK ? ONECARD__V1__CODE__INTERNAL
						  : code,
		    reply ? reply->message : NULL);
	if (reply != NULL)
		wire_reply_free(reply);
	fhir_feed_free(f);
}

/* If-Match: W/"N" or "N" is version N; 0 when absent; -1 malformed. */
static int
fhir_if_match(struct fhir_req *r, uint64_t *version)
{
	const char *v = evhttp_find_header(
	    evhttp_request_get_input_headers(r->req), "If-Match");
	char *end;

	*version = 0;
	if (v == NULL)
		return 0;
	if (strncmp(v, "W/", 2) == 0)
		v += 2;
	if (v[0] != '"' || v[1] < '1' || v[1] > '9')
		return -1;
	*version = strtoull(v + 1, &end, 10);
	return strcmp(end, "\"") == 0 ? 0 : -1;
}

/* The holder of id, when it is not pid: 1 (with its message), 0 if none
 * or pid itself, -1 on a registry error. */
static int
fhir_feed_held_elsewhere(
    struct fhir_feed *f, const struct fhir_ident *id, const char *pid)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Lookup l = ONECARD__V1__LOOKUP__INIT;
	Onecard__V1__Identifier x;
	Onecard__V1__Reply *reply;
	int code, rc;

	fhir_feed_ident(&x, id);
	l.identifier = &x;
	req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
	req.lookup = &l;
	code = fhir_ask(&f->r, &req, NULL, 0, NULL, &reply);
	rc = code == ONECARD__V1__CODE__NOT_FOUND ? 0
	    : code != ONECARD__V1__CODE__OK       ? -1
	    : reply->result_case == ONECARD__V1__REPLY__RESULT_PATIENT &&
		strcmp(reply->patient->patient_id, pid) != 0
	    ? 1
	    : 0;
	if (reply != NULL)
		wire_reply_free(reply);
	return rc;
}

/* A merge: the conditional identifier's patient into the link's. */
static void
fhir_feed_merge(struct fhir_feed *f)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Merge m = ONECARD__V1__MERGE__INIT;
	Onecard__V1__Identifier surv, dup;
	struct fhir_ident pid;

	if (f->in.link_pid[0] != '\0') {
		snprintf(pid.domain, sizeof(pid.domain), "pid");
		snprintf(pid.value, sizeof(pid.value), "%s", f->in.link_pid);
		fhir_feed_ident(&surv, &pid);
	} else
		fhir_feed_ident(&surv, &f->in.link_ident);
	fhir_feed_ident(&dup, &f->cond);
	m.survivor = &surv;
	m.duplicate = &dup;
	req.op_case = ONECARD__V1__REQUEST__OP_MERGE;
	req.merge = &m;
	if (fhir_feed_submit(f, STEP_MERGE, &req) == -1)
		fhir_feed_free(f);
}

/* Enroll the Patient: no one holds the conditional identifier. */
static void
fhir_feed_enroll(struct fhir_feed *f)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Enroll en = ONECARD__V1__ENROLL__INIT;
	Onecard__V1__Demographics d;
	Onecard__V1__Identifier ids[FHIR_MAX_IDS], *idp[FHIR_MAX_IDS];

	fhir_feed_demo(&d, &f->in);
	for (size_t i = 0; i < f->in.n_ids; i++) {
		fhir_feed_ident(&ids[i], &f->in.ids[i]);
		idp[i] = &ids[i];
	}
	en.demographics = &d;
	en.identifiers = idp;
	en.n_identifiers = f->in.n_ids;
	req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
	req.enroll = &en;
	if (fhir_feed_submit(f, STEP_ENROLL, &req) == -1)
		fhir_feed_free(f);
}

/* Update the holder (pid): first check that no identifier to link is
 * another patient's, so a refused PUT changes nothing. */
static void
fhir_feed_update(struct fhir_feed *f, const char *pid)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Update u = ONECARD__V1__UPDATE__INIT;
	Onecard__V1__Demographics d;
	Onecard__V1__Identifier id;

	for (size_t i = 0; i < f->in.n_ids; i++) {
		int rc = fhir_feed_held_elsewhere(f, &f->in.ids[i], pid);

		if (rc == 1) {
			fhir_fail(&f->r, 409, "conflict",
			    "identifier[%zu]: another patient holds it (merge "
			    "them first)",
			    i);
			fhir_feed_free(f);
			return;
		}
		if (rc == -1) {
			fhir_fail_code(&f->r, f->r.res.code, NULL);
			fhir_feed_free(f);
			return;
		}
	}
	fhir_feed_demo(&d, &f->in);
	fhir_feed_ident(&id, &f->cond);
	u.identifier = &id;
	u.demographics = &d;
	u.expected_version = f->expected;
	req.op_case = ONECARD__V1__REQUEST__OP_UPDATE;
	req.update = &u;
	if (fhir_feed_submit(f, STEP_UPDATE, &req) == -1)
		fhir_feed_free(f);
}

void
fhir_feed_put(struct fhir_req *r, const struct evkeyvalq *q, const json_t *body)
{
	struct fhir_feed *f;
	char err[256];
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Lookup l = ONECARD__V1__LOOKUP__INIT;
	Onecard__V1__Identifier id;
	Onecard__V1__Reply *reply;
	struct fhir_ident cond;
	int code, has = 0;

	if (fhir_feed_cond(r, q, &cond, "PUT") == -1 ||
	    (f = fhir_feed_new(r)) == NULL)
		return;
	f->cond = cond;
	if (fhir_parse_patient(body, &f->in, err, sizeof(err)) == -1) {
		fhir_fail(&f->r, 400, "invalid", "%s", err);
		fhir_feed_free(f);
		return;
	}
	if (fhir_if_match(&f->r, &f->expected) == -1) {
		fhir_fail(&f->r, 400, "invalid",
		    "If-Match: give W/\"VERSION\" from the record's ETag");
		fhir_feed_free(f);
		return;
	}
	if (!f->in.active && f->in.has_link) {
		fhir_feed_merge(f);
		return;
	}
	if (!f->in.active || f->in.has_link) {
		fhir_fail(&f->r, 400, "invalid",
		    "active, link: a merge is active=false with one "
		    "replaced-by link");
		fhir_feed_free(f);
		return;
	}
	/* The conditional identifier is the Patient's too. */
	for (size_t i = 0; i < f->in.n_ids; i++)
		has |= strcmp(f->in.ids[i].domain, cond.domain) == 0 &&
		    strcmp(f->in.ids[i].value, cond.value) == 0;
	if (!has) {
		if (f->in.n_ids == FHIR_MAX_IDS) {
			fhir_fail(&f->r, 400, "invalid",
			    "identifier: more than %d with the conditional one",
			    FHIR_MAX_IDS);
			fhir_feed_free(f);
			return;
		}
		f->in.ids[f->in.n_ids++] = cond;
	}
	fhir_feed_ident(&id, &cond);
	l.identifier = &id;
	req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
	req.lookup = &l;
	code = fhir_ask(&f->r, &req, NULL, 0, NULL, &reply);
	if (code == ONECARD__V1__CODE__NOT_FOUND)
		fhir_feed_enroll(f);
	else if (code == ONECARD__V1__CODE__OK &&
	    reply->result_case == ONECARD__V1__REPLY__RESULT_PATIENT)
		fhir_feed_update(f, reply->patient->patient_id);
	else {
		fhir_fail_code(&f->r,
		    code == ONECARD__V1__CODE__OK ? ONECARD__V1__CODE__INTERNAL
						  : code,
		    reply ? reply->message : NULL);
		fhir_feed_free(f);
	}
	if (reply != NULL)
		wire_reply_free(reply);
}

void
fhir_feed_delete(struct fhir_req *r, const struct evkeyvalq *q)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Unlink u = ONECARD__V1__UNLINK__INIT;
	Onecard__V1__Identifier id;
	struct fhir_ident cond;
	struct fhir_feed *f;

	if (fhir_feed_cond(r, q, &cond, "DELETE") == -1 ||
	    (f = fhir_feed_new(r)) == NULL)
		return;
	f->cond = cond;
	fhir_feed_ident(&id, &f->cond);
	u.identifier = &id;
	req.op_case = ONECARD__V1__REQUEST__OP_UNLINK;
	req.unlink = &u;
	if (fhir_feed_submit(f, STEP_UNLINK, &req) == -1)
		fhir_feed_free(f);
}

void
fhir_feed_drain(void)
{
	/* The door's loop has stopped: wait for the writer to hand every
	 * job back, then free them unanswered (the connections go too). */
	while (atomic_load(&fhir_inflight) > 0)
		usleep(1000);
	while (!LIST_EMPTY(&fhir_feeds))
		fhir_feed_free(LIST_FIRST(&fhir_feeds));
}
