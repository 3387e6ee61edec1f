/*
 * registry_read.c: the read path: registry_read, lookups (from the worker's
 * cache, in one step, or in full), search, export, history and stats, and the
 * fill of the lookup cache.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "log.h"
#include "registry_cache.h"
#include "registry_int.h"
#include "wire.h"

#define EXPORT_MAX 1000 /* patients in one export page */

/* Load patient pid and build its message. */
static int
op_load_msg(struct reg_op *o, const char *pid, Onecard__V1__Patient **out)
{
	struct registry_patient p;
	int rc;

	rc = o->reg->be->patient_get(o->reg->h, pid, &o->reg->arena, &p);
	if (rc < 0)
		return op_backend(o, rc);
	if (rc == 1) {
		log_warnx("registry: patient %s vanished", pid);
		return op_fail(o, CODE_INTERNAL, "patient vanished");
	}
	return op_patient_msg(o, &p, out);
}

/* The cache key of a normalised identifier, "domain\0value"; its length. */
static size_t
lookup_key(const char *domain, const char *norm, char *key)
{
	size_t dl = strlen(domain), vl = strlen(norm);

	if (dl > VALIDATE_MAX_DOMAIN || vl > VALIDATE_MAX_VALUE)
		return 0;
	memcpy(key, domain, dl);
	key[dl] = '\0';
	memcpy(key + dl + 1, norm, vl);
	return dl + 1 + vl;
}

/*
 * A lookup of a validated identifier (kind k, value norm): the record and
 * its identifiers in one store call; a merged-away record (a pid names it)
 * is followed to its live patient, read the same way. The reply is kept in
 * the cache (o->cacheable) only when the identifier named a live record
 * itself.
 */
static int
op_lookup_norm(struct reg_op *o, const char *domain, int k, const char *norm)
{
	struct registry *reg = o->reg;
	struct ident_vec iv = {.a = &reg->arena};
	struct registry_patient p;
	Onecard__V1__Patient *m;
	int rc, merged;

	op_target(o, domain, norm);
	if (k == VALIDATE_PID)
		rc = reg->be->patient_record(
		    reg->h, norm, &reg->arena, &p, ident_vec_add, &iv);
	else
		rc = reg->be->ident_record(
		    reg->h, domain, norm, &reg->arena, &p, ident_vec_add, &iv);
	if (rc < 0)
		return op_backend(o, rc);
	if (rc == 1)
		return op_fail(o, CODE_NOT_FOUND, "identifier: %s",
		    k == VALIDATE_PID ? "no such patient"
				      : "no patient holds this identifier");
	if ((merged = p.merged_into[0] != '\0')) {
		if ((rc = op_follow(o, &p)) != CODE_OK)
			return rc;
		iv.n = 0;
		rc = reg->be->patient_record(
		    reg->h, p.id, &reg->arena, &p, ident_vec_add, &iv);
		if (rc != 0)
			return rc < 0
			    ? op_backend(o, rc)
			    : op_fail(o, CODE_INTERNAL, "patient vanished");
	}
	op_patient_id(o, p.id);
	if ((rc = op_patient_build(o, &p, &iv, &m)) != CODE_OK)
		return rc;
	o->reply.result_case = ONECARD__V1__REPLY__RESULT_PATIENT;
	o->reply.patient = m;
	if (!merged) {
		o->keylen = lookup_key(domain, norm, o->key);
		o->cacheable = o->keylen > 0;
	}
	return CODE_OK;
}

/* Lookup: the live patient an identifier names. */
int
op_lookup(struct reg_op *o)
{
	const Onecard__V1__Lookup *l = o->req->lookup;
	char norm[VALIDATE_MAX_VALUE + 1];
	int k;

	if (l == NULL)
		return op_fail(o, CODE_INVALID, "lookup: missing");
	k = validate_identifier(&o->vc, "identifier", l->identifier, norm,
	    sizeof(norm), NULL, o->msg, sizeof(o->msg));
	if (k < 0)
		return CODE_INVALID;
	return op_lookup_norm(o, l->identifier->domain, k, norm);
}

/* Answer with the records of a list of patient ids. */
static int
op_reply_patients(struct reg_op *o, const struct pid_vec *pv)
{
	Onecard__V1__SearchResult *sr;
	int rc;

	if ((sr = arena_alloc(&o->reg->arena, sizeof(*sr))) == NULL)
		return op_nomem(o);
	onecard__v1__search_result__init(sr);
	if ((sr->patients = arena_alloc(
		 &o->reg->arena, (pv->n + 1) * sizeof(*sr->patients))) == NULL)
		return op_nomem(o);
	for (size_t i = 0; i < pv->n; i++) {
		if ((rc = op_load_msg(o, pv->v[i], &sr->patients[i])) !=
		    CODE_OK)
			return rc;
		sr->n_patients++;
	}
	o->reply.result_case = ONECARD__V1__REPLY__RESULT_SEARCH;
	o->reply.search = sr;
	return CODE_OK;
}

/*
 * Search: ranked and error-tolerant (registry_match.c) unless exact is set;
 * exact: live patients by exact name, birth date and sex, in id order.
 */
int
op_search(struct reg_op *o)
{
	struct registry *reg = o->reg;
	const Onecard__V1__Search *s = o->req->search;
	struct pid_vec pv = {.a = &reg->arena};
	const char *name, *bd;
	unsigned limit;
	int rc;

	if (s == NULL)
		return op_fail(o, CODE_INVALID, "search: missing");
	if (!s->exact)
		return op_search_ranked(o);
	name = s->name ? s->name : "";
	bd = s->birth_date ? s->birth_date : "";
	if (name[0] == '\0' && bd[0] == '\0')
		return op_fail(
		    o, CODE_INVALID, "search: give a name or a birth_date");
	if (validate_text(
		"name", name, reg->lim.max_name, o->msg, sizeof(o->msg)) == -1)
		return CODE_INVALID;
	if (bd[0] != '\0' &&
	    validate_date(
		o->vc.today, "birth_date", bd, o->msg, sizeof(o->msg)) == -1)
		return CODE_INVALID;
	if (s->sex != ONECARD__V1__SEX__SEX_UNKNOWN &&
	    s->sex != ONECARD__V1__SEX__SEX_MALE &&
	    s->sex != ONECARD__V1__SEX__SEX_FEMALE)
		return op_fail(
		    o, CODE_INVALID, "sex: unknown value %d", (int)s->sex);
	limit = reg->lim.search_limit;
	if (s->limit != 0 && s->limit < limit)
		limit = s->limit;
	rc = reg->be->patient_search(
	    reg->h, name, bd, s->sex, limit, pid_vec_add, &pv);
	if (rc < 0)
		return op_backend(o, rc);
	return op_reply_patients(o, &pv);
}

/* Export: a page of live patients in id order (admin). */
int
op_export(struct reg_op *o)
{
	struct registry *reg = o->reg;
	const Onecard__V1__Export *x = o->req->export;
	struct pid_vec pv = {.a = &reg->arena};
	unsigned limit;
	int rc;

	if ((rc = op_need_admin(o, "export")) != CODE_OK)
		return rc;
	if (x == NULL)
		return op_fail(o, CODE_INVALID, "export: missing");
	limit = x->limit ? x->limit : reg->lim.search_limit;
	if (limit > EXPORT_MAX)
		limit = EXPORT_MAX;
	rc = reg->be->patient_page(reg->h,
	    x->after_patient_id ? x->after_patient_id : "", limit, pid_vec_add,
	    &pv);
	if (rc < 0)
		return op_backend(o, rc);
	return op_reply_patients(o, &pv);
}

/* Collect events into a HistoryResult (a backend callback). */
static int
history_add(void *arg, const struct registry_event *ev)
{
	struct reg_op *o = arg;
	struct registry_arena *a = &o->reg->arena;
	Onecard__V1__HistoryResult *hr = o->reply.history;
	Onecard__V1__Event *e;

	if ((e = arena_alloc(a, sizeof(*e))) == NULL)
		return -1;
	onecard__v1__event__init(e);
	e->seq = ev->seq;
	e->time_ms = ev->time_ms;
	if ((e->op = arena_strdup(a, ev->op)) == NULL ||
	    (e->patient_id = arena_strdup(a, ev->patient_id)) == NULL ||
	    (e->actor = arena_strdup(a, ev->actor)) == NULL ||
	    (e->detail = arena_strdup(a, ev->detail)) == NULL)
		return -1;
	hr->events[hr->n_events++] = e;
	return 0;
}

/* History: the newest events of one patient (admin). */
int
op_history(struct reg_op *o)
{
	struct registry *reg = o->reg;
	const Onecard__V1__History *h = o->req->history;
	Onecard__V1__HistoryResult *hr;
	struct registry_patient p;
	char norm[VALIDATE_MAX_VALUE + 1];
	unsigned limit;
	int rc;

	if ((rc = op_need_admin(o, "history")) != CODE_OK)
		return rc;
	if (h == NULL)
		return op_fail(o, CODE_INVALID, "history: missing");
	if ((rc = op_resolve(
		 o, "identifier", h->identifier, 0, &p, norm, NULL)) != CODE_OK)
		return rc;
	limit = reg->lim.search_limit;
	if (h->limit != 0 && h->limit < limit)
		limit = h->limit;
	if ((hr = arena_alloc(&reg->arena, sizeof(*hr))) == NULL)
		return op_nomem(o);
	onecard__v1__history_result__init(hr);
	if ((hr->events = arena_alloc(
		 &reg->arena, (limit + 1) * sizeof(*hr->events))) == NULL)
		return op_nomem(o);
	o->reply.result_case = ONECARD__V1__REPLY__RESULT_HISTORY;
	o->reply.history = hr;
	rc = reg->be->event_list(reg->h, p.id, limit, history_add, o);
	if (rc < 0) {
		o->reply.result_case = ONECARD__V1__REPLY__RESULT__NOT_SET;
		return op_backend(o, rc);
	}
	return CODE_OK;
}

/* Collect a per-domain count (a backend callback). */
static int
stats_add_cb(void *arg, const char *domain, uint64_t n)
{
	struct reg_op *o = arg;
	struct registry_arena *a = &o->reg->arena;
	Onecard__V1__StatsResult *st = o->reply.stats;
	Onecard__V1__DomainCount *dc, **v;

	if ((st->n_by_domain & (st->n_by_domain - 1)) == 0) {
		size_t cap = st->n_by_domain ? st->n_by_domain * 2 : 1;

		if ((v = arena_alloc(a, cap * sizeof(*v))) == NULL)
			return -1;
		if (st->n_by_domain)
			memcpy(v, st->by_domain, st->n_by_domain * sizeof(*v));
		st->by_domain = v;
	}
	if ((dc = arena_alloc(a, sizeof(*dc))) == NULL)
		return -1;
	onecard__v1__domain_count__init(dc);
	if ((dc->domain = arena_strdup(a, domain)) == NULL)
		return -1;
	dc->count = n;
	st->by_domain[st->n_by_domain++] = dc;
	return 0;
}

/* Stats: counts of patients, identifiers, merges and events. */
int
op_stats(struct reg_op *o)
{
	Onecard__V1__StatsResult *st;
	struct registry_counts c;
	int rc;

	if ((st = arena_alloc(&o->reg->arena, sizeof(*st))) == NULL)
		return op_nomem(o);
	onecard__v1__stats_result__init(st);
	o->reply.result_case = ONECARD__V1__REPLY__RESULT_STATS;
	o->reply.stats = st;
	rc = o->reg->be->counts(o->reg->h, &c, stats_add_cb, o);
	if (rc < 0) {
		o->reply.result_case = ONECARD__V1__REPLY__RESULT__NOT_SET;
		return op_backend(o, rc);
	}
	st->patients = c.patients;
	st->identifiers = c.identifiers;
	st->merges = c.merged;
	st->events = c.last_seq;
	return CODE_OK;
}

/* This handle's lookup cache, made on first use; NULL when there is none. */
static struct lcache *
registry_cache(struct registry *reg)
{
	if (reg->cache == NULL && !reg->cache_off &&
	    (reg->writer || reg->lim.lookup_cache == 0 ||
		(reg->cache = lcache_new(reg->lim.lookup_cache)) == NULL))
		reg->cache_off = 1;
	return reg->cache;
}

/* Append a cached reply (packed with id 0) as a frame with this id. */
static int
registry_append_cached(
    struct evbuffer *out, uint64_t id, const uint8_t *reply, size_t len)
{
	uint8_t head[WIRE_ID_HEAD_MAX];
	size_t n;

	if ((n = wire_id_head(id, len, head)) == 0 ||
	    evbuffer_expand(out, n + len) == -1 ||
	    evbuffer_add(out, head, n) == -1 ||
	    evbuffer_add(out, reply, len) == -1)
		return -1;
	return 0;
}

/*
 * Answer a lookup just read from the store and keep its reply: the reply
 * is packed once (with id 0), kept in the cache, and sent as a cached one
 * is. 0, or -1 when it could not be (the caller answers the usual way).
 */
static int
registry_answer_and_cache(
    struct reg_op *o, struct lcache *lc, struct evbuffer *out)
{
	Onecard__V1__Reply r = o->reply;
	uint8_t stackbuf[2048], *buf = stackbuf;
	size_t len;
	int rc;

	r.id = 0;
	r.code = CODE_OK;
	len = protobuf_c_message_get_packed_size(&r.base);
	if (len > sizeof(stackbuf) && (buf = malloc(len)) == NULL)
		return -1;
	protobuf_c_message_pack(&r.base, buf);
	(void)lcache_put(lc, o->key, o->keylen, o->res->patient_id, buf, len);
	rc = registry_append_cached(out, o->req->id, buf, len);
	if (buf != stackbuf)
		free(buf);
	if (rc == 0) {
		o->res->code = CODE_OK;
		arena_reset(&o->reg->arena);
	}
	return rc;
}

/*
 * The lookup path, the one every lookup takes: validate the identifier
 * once; answer from this worker's cache when it holds the reply (no
 * operation set up, no store call); else ask the store (op_lookup_norm)
 * and keep what it answered in the cache.
 */
static void
registry_lookup(struct registry *reg, const struct actor *who,
    const Onecard__V1__Request *req, struct evbuffer *out,
    struct op_result *res)
{
	const Onecard__V1__Lookup *l = req->lookup;
	struct validate_ctx vc = {
	    registry_today(reg), reg->lim.max_name, reg->lim.max_address};
	struct lcache *lc = registry_cache(reg);
	const struct lcache_hit *hit;
	char norm[VALIDATE_MAX_VALUE + 1], err[REGISTRY_MSGLEN] = "";
	char key[VALIDATE_MAX_DOMAIN + 1 + VALIDATE_MAX_VALUE + 1];
	struct reg_op o;
	size_t keylen;
	int k = -1, code;

	if (l != NULL)
		k = validate_identifier(&vc, "identifier", l->identifier, norm,
		    sizeof(norm), NULL, err, sizeof(err));
	if (k >= 0 && lc != NULL &&
	    (keylen = lookup_key(l->identifier->domain, norm, key)) > 0) {
		lcache_sync(lc);
		if ((hit = lcache_get(lc, key, keylen)) != NULL &&
		    registry_append_cached(
			out, req->id, hit->reply, hit->reply_len) == 0) {
			memset(res, 0, sizeof(*res));
			res->code = CODE_OK;
			registry_copy(
			    res->patient_id, hit->pid, sizeof(res->patient_id));
			registry_ident_text(l->identifier->domain, norm,
			    res->target, sizeof(res->target));
			return;
		}
	}
	op_init(&o, reg, who, req, res);
	if (l == NULL)
		code = op_fail(&o, CODE_INVALID, "lookup: missing");
	else if (k < 0) {
		registry_copy(o.msg, err, sizeof(o.msg));
		code = CODE_INVALID;
	} else {
		code = op_lookup_norm(&o, l->identifier->domain, k, norm);
		if (code == CODE_OK && lc != NULL && o.cacheable &&
		    registry_answer_and_cache(&o, lc, out) == 0)
			return;
	}
	op_finish(&o, code, out);
}

void
registry_prefetch_lookups(struct registry *reg, const char *const *domain,
    const char *const *value, size_t n)
{
	char key[VALIDATE_MAX_DOMAIN + 1 + VALIDATE_MAX_VALUE + 1];
	uint64_t h[REGISTRY_PREFETCH_MAX];
	size_t keylen;

	if (reg->cache == NULL)
		return;
	if (n > REGISTRY_PREFETCH_MAX)
		n = REGISTRY_PREFETCH_MAX;
	/* Every bucket first, then every entry: the misses overlap. */
	for (size_t i = 0; i < n; i++)
		h[i] = (keylen = lookup_key(domain[i], value[i], key)) == 0
		    ? 0
		    : lcache_prefetch_bucket(reg->cache, key, keylen);
	for (size_t i = 0; i < n; i++)
		if (h[i] != 0)
			lcache_prefetch_entry(reg->cache, h[i]);
}

void
registry_read(struct registry *reg, const struct actor *who,
    const Onecard__V1__Request *req, struct evbuffer *out,
    struct op_result *res)
{
	struct reg_op o;
	int code, rc, own_txn = !reg->in_batch;

	if (req->op_case == ONECARD__V1__REQUEST__OP_LOOKUP) {
		registry_lookup(reg, who, req, out, res);
		return;
	}
	op_init(&o, reg, who, req, res);
	if (registry_op_is_write(req->op_case)) {
		log_warnx("registry: %s sent to the read path",
		    wire_op_name(req->op_case));
		code = op_fail(&o, CODE_INTERNAL, "write on the read path");
		goto done;
	}
	/* One read transaction: the record and its identifiers agree. */
	if (own_txn && (rc = reg->be->begin(reg->h, 0)) < 0) {
		code = op_backend(&o, rc);
		goto done;
	}
	code = op_dispatch(&o);
	if (own_txn)
		reg->be->rollback(reg->h);
done:
	op_finish(&o, code, out);
}
