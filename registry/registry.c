/*
 * registry.c: the rules of the master patient index: the handle, the store
 * chosen by the --db scheme, the op_* helpers every operation shares,
 * dispatch, the write path and batches. The operations live in
 * registry_*.c; docs/architecture.md has the long form and the decisions.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "registry_cache.h"
#include "registry_int.h"
#include "registry_mem.h"
#include "wire.h"

#define MERGE_MAX_HOPS   64 /* merged_into links followed before giving up */
#define REGISTRY_RETRIES 8  /* runs again of an op that lost a race */

/* Unix time in milliseconds. */
int64_t
registry_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
registry_limits_default(struct registry_limits *lim)
{
	lim->max_ids = REGISTRY_DEFAULT_MAX_IDS;
	lim->max_name = REGISTRY_DEFAULT_MAX_NAME;
	lim->max_address = REGISTRY_DEFAULT_MAX_ADDRESS;
	lim->search_limit = REGISTRY_DEFAULT_SEARCH_LIMIT;
	lim->lookup_cache = REGISTRY_DEFAULT_LOOKUP_CACHE;
	lim->max_unfolded = REGISTRY_DEFAULT_MAX_UNFOLDED;
}

void
registry_mask_id(
    const char *domain, const char *value, char *dst, size_t dstlen)
{
	size_t len = strlen(value), i;

	if (dstlen == 0)
		return;
	if (domain == NULL || strcmp(domain, "cn-id") != 0) {
		registry_copy(dst, value, dstlen);
		return;
	}
	/* Keep the region code and the last four; star everything else. */
	for (i = 0; i < len && i + 1 < dstlen; i++)
		dst[i] =
		    (len >= 10 && (i < 6 || i >= len - 4)) ? value[i] : '*';
	dst[i] = '\0';
}

void
registry_url_safe(const char *url, char *dst, size_t dstlen)
{
	const char *auth = strstr(url, "://"), *end, *colon, *at, *p;
	size_t n = 0;

	if (dstlen == 0)
		return;
		/* Copy url, skipping each secret and writing *** in its place.
		 */
#define URL_PUT(s, len)                                                        \
	do {                                                                   \
		size_t l_ = (len);                                             \
		if (n + l_ >= dstlen)                                          \
			l_ = dstlen - 1 - n;                                   \
		memcpy(dst + n, (s), l_);                                      \
		n += l_;                                                       \
	} while (0)
	p = url;
	if (auth != NULL) {
		auth += 3;
		end = auth + strcspn(auth, "/?");
		at = memchr(auth, '@', (size_t)(end - auth));
		colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
		if (colon != NULL) {
			URL_PUT(url, (size_t)(colon + 1 - url));
			URL_PUT("***", 3);
			p = at;
		}
	}
	while (*p != '\0') {
		const char *kw = strstr(p, "password=");

		if (kw == NULL ||
		    (kw != url && kw[-1] != '?' && kw[-1] != '&' &&
			kw[-1] != ' ')) {
			if (kw == NULL) {
				URL_PUT(p, strlen(p));
				break;
			}
			URL_PUT(p, (size_t)(kw + 9 - p));
			p = kw + 9;
			continue;
		}
		URL_PUT(p, (size_t)(kw + 9 - p));
		URL_PUT("***", 3);
		p = kw + 9 + strcspn(kw + 9, "& ");
	}
#undef URL_PUT
	dst[n] = '\0';
}

/* "domain=value" with a cn-id masked. */
void
registry_ident_text(
    const char *domain, const char *value, char *dst, size_t dstlen)
{
	size_t n;

	registry_copy(dst, domain, dstlen);
	n = strlen(dst);
	if (n + 1 >= dstlen)
		return;
	dst[n++] = '=';
	registry_mask_id(domain, value, dst + n, dstlen - n);
}

/*
 * The stores, by the --db scheme. A plain path is "sqlite:": the registry
 * in memory, acknowledged at its redo log, with the SQLite file as its
 * image (registry_mem.c). "sqlite-direct:" answers from SQLite itself and
 * commits every batch into it (registry_sqlite.c), as the broker did
 * before; it is kept for comparison. "postgresql://" (or "postgres://")
 * puts the registry in PostgreSQL, shared by several brokers
 * (registry_pg.c); the whole URL goes to libpq, which reads it.
 */
static const struct {
	const char *scheme;
	const struct registry_backend *be;
	int whole; /* the store takes the whole URL, not what follows ':' */
} registry_stores[] = {
    {"sqlite", &registry_mem, 0},
    {"sqlite-direct", &registry_sqlite, 0},
    {"postgresql", &registry_pg, 1},
    {"postgres", &registry_pg, 1},
};

/* The store a URL names and the path after its scheme; NULL if none. */
static const struct registry_backend *
registry_store(const char *url, const char **path)
{
	const char *colon = strchr(url, ':');
	size_t n = colon != NULL ? (size_t)(colon - url) : 0;

	*path = url;
	if (colon == NULL || strchr(url, '/') < colon)
		return &registry_mem; /* a path */
	for (size_t i = 0;
	     i < sizeof(registry_stores) / sizeof(registry_stores[0]); i++)
		if (strlen(registry_stores[i].scheme) == n &&
		    strncmp(url, registry_stores[i].scheme, n) == 0) {
			*path = registry_stores[i].whole ? url : colon + 1;
			return registry_stores[i].be;
		}
	return NULL;
}

struct registry *
registry_open(const char *url, int writer, const struct registry_limits *lim,
    char *err, size_t errlen)
{
	struct registry *reg;
	const struct registry_backend *be;
	const char *path;

	if ((be = registry_store(url, &path)) == NULL) {
		snprintf(err, errlen,
		    "--db %s: unknown store (sqlite:PATH, sqlite-direct:PATH, "
		    "postgresql://... or a path)",
		    url);
		return NULL;
	}
	if (path[0] == '\0') {
		snprintf(err, errlen, "--db: empty path");
		return NULL;
	}
	if ((reg = calloc(1, sizeof(*reg))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	reg->be = be;
	reg->writer = writer;
	if (lim != NULL)
		reg->lim = *lim;
	else
		registry_limits_default(&reg->lim);
	if (writer)
		registry_mem_set_limits(&reg->lim);
	if ((reg->h = be->open(path, writer, err, errlen)) == NULL) {
		free(reg);
		return NULL;
	}
	return reg;
}

void
registry_close(struct registry *reg)
{
	if (reg == NULL)
		return;
	if (reg->in_batch)
		reg->be->rollback(reg->h);
	reg->be->close(reg->h);
	arena_free(&reg->arena);
	lcache_free(reg->cache);
	registry_events_free(reg);
	free(reg->feed);
	free(reg);
}

int
registry_op_is_write(int op_case)
{
	switch (op_case) {
	case ONECARD__V1__REQUEST__OP_ENROLL:
	case ONECARD__V1__REQUEST__OP_LINK:
	case ONECARD__V1__REQUEST__OP_UNLINK:
	case ONECARD__V1__REQUEST__OP_UPDATE:
	case ONECARD__V1__REQUEST__OP_MERGE:
	case ONECARD__V1__REQUEST__OP_UNMERGE:
	case ONECARD__V1__REQUEST__OP_HOSPITAL_ADD:
	case ONECARD__V1__REQUEST__OP_HOSPITAL_REVOKE:
	/* The worklist is the writer's, read or written. */
	case ONECARD__V1__REQUEST__OP_DUPLICATE_SCAN:
	case ONECARD__V1__REQUEST__OP_DUPLICATE_LIST:
	case ONECARD__V1__REQUEST__OP_DUPLICATE_SHOW:
	case ONECARD__V1__REQUEST__OP_DUPLICATE_DISMISS:
	case ONECARD__V1__REQUEST__OP_DUPLICATE_MERGE:
		return 1;
	default:
		return 0;
	}
}

int
registry_ping(struct registry *reg)
{
	return reg->be->ping(reg->h) == 0 ? 0 : -1;
}

/* Set the reply's message and return code. */
int __attribute__((format(printf, 3, 4)))
op_fail(struct reg_op *o, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(o->msg, sizeof(o->msg), fmt, ap);
	va_end(ap);
	return code;
}

/* Turn a backend failure into a code; the backend has logged it. */
int
op_backend(struct reg_op *o, int rc)
{
	if (rc == REGISTRY_ERETRY) {
		o->retry = 1; /* registry_write runs the op again */
		return op_fail(o, CODE_UNAVAIL,
		    "another broker changed this at the same time; retry");
	}
	if (rc == REGISTRY_EUNAVAIL)
		return op_fail(o, CODE_UNAVAIL,
		    "the registry cannot take this now; retry");
	return op_fail(o, CODE_INTERNAL, "registry error");
}

/* Out of scratch memory. */
int
op_nomem(struct reg_op *o)
{
	log_warnx("registry: out of memory building a reply");
	return op_fail(o, CODE_INTERNAL, "out of memory");
}

/* Is the caller an admin? */
int
op_is_admin(const struct reg_op *o)
{
	return o->who != NULL && o->who->role == ONECARD__V1__ROLE__ROLE_ADMIN;
}

/* PERMISSION_DENIED unless the caller is an admin. */
int
op_need_admin(struct reg_op *o, const char *what)
{
	if (op_is_admin(o))
		return CODE_OK;
	return op_fail(o, CODE_DENIED, "%s is for admins only", what);
}

/* Remember what the operation named, for the audit trail. */
void
op_target(struct reg_op *o, const char *domain, const char *value)
{
	if (o->res->target[0] != '\0')
		return;
	if (domain == NULL)
		registry_copy(o->res->target, value, sizeof(o->res->target));
	else
		registry_ident_text(
		    domain, value, o->res->target, sizeof(o->res->target));
}

/* Remember which patient the operation touched. */
void
op_patient_id(struct reg_op *o, const char *pid)
{
	registry_copy(o->res->patient_id, pid, sizeof(o->res->patient_id));
}

/* Follow merged_into from p to the live patient, reloading p. */
int
op_follow(struct reg_op *o, struct registry_patient *p)
{
	struct registry *reg = o->reg;
	char next[REGISTRY_PID_MAX];
	int rc;

	for (int hops = 0; p->merged_into[0] != '\0'; hops++) {
		if (hops == MERGE_MAX_HOPS) {
			log_warnx(
			    "registry: merge chain from %s too long", p->id);
			return op_fail(
			    o, CODE_INTERNAL, "merge chain too long");
		}
		snprintf(next, sizeof(next), "%s", p->merged_into);
		rc = reg->be->patient_get(reg->h, next, &reg->arena, p);
		if (rc == 1) {
			log_warnx(
			    "registry: %s merged into missing %s", p->id, next);
			return op_fail(o, CODE_INTERNAL, "broken merge chain");
		}
		if (rc < 0)
			return op_backend(o, rc);
	}
	return CODE_OK;
}

/*
 * Validate identifier id (field names it) and find its patient into p,
 * following merges when follow is set (a pid names a merged-away record
 * itself when not). kind gets the domain kind, norm the stored value.
 */
int
op_resolve(struct reg_op *o, const char *field,
    const Onecard__V1__Identifier *id, int follow, struct registry_patient *p,
    char *norm, int *kind)
{
	struct registry *reg = o->reg;
	int k, rc;

	k = validate_identifier(&o->vc, field, id, norm, VALIDATE_MAX_VALUE + 1,
	    NULL, o->msg, sizeof(o->msg));
	if (k < 0)
		return CODE_INVALID;
	if (kind != NULL)
		*kind = k;
	op_target(o, id->domain, norm);
	if (k == VALIDATE_PID)
		rc = reg->be->patient_get(reg->h, norm, &reg->arena, p);
	else
		rc = reg->be->ident_patient(
		    reg->h, id->domain, norm, &reg->arena, p);
	if (rc < 0)
		return op_backend(o, rc);
	if (rc == 1)
		return op_fail(o, CODE_NOT_FOUND, "%s: %s", field,
		    k == VALIDATE_PID ? "no such patient"
				      : "no patient holds this identifier");
	if (follow && (rc = op_follow(o, p)) != CODE_OK)
		return rc;
	op_patient_id(o, p->id);
	return CODE_OK;
}

/* Append an identifier to a vector (a backend callback). */
int
ident_vec_add(void *arg, const char *domain, const char *value)
{
	struct ident_vec *iv = arg;
	Onecard__V1__Identifier *id;

	if (iv->n == iv->cap) {
		size_t cap = iv->cap ? iv->cap * 2 : 8;
		Onecard__V1__Identifier **v;

		if ((v = arena_alloc(iv->a, cap * sizeof(*v))) == NULL)
			return -1;
		if (iv->n > 0)
			memcpy(v, iv->v, iv->n * sizeof(*v));
		iv->v = v;
		iv->cap = cap;
	}
	if ((id = arena_alloc(iv->a, sizeof(*id))) == NULL)
		return -1;
	onecard__v1__identifier__init(id);
	if ((id->domain = arena_strdup(iv->a, domain)) == NULL ||
	    (id->value = arena_strdup(iv->a, value)) == NULL)
		return -1;
	iv->v[iv->n++] = id;
	return 0;
}

/* The identifiers a patient holds now. */
int
op_idents(struct reg_op *o, const char *pid, struct ident_vec *iv)
{
	int rc;

	memset(iv, 0, sizeof(*iv));
	iv->a = &o->reg->arena;
	rc = o->reg->be->patient_idents(o->reg->h, pid, ident_vec_add, iv);
	if (rc < 0)
		return op_backend(o, rc);
	return CODE_OK;
}

/* Does a patient hold a cn-id? Its value into cnid when so. */
int
op_patient_cn_id(struct reg_op *o, const char *pid, int *has, char *cnid)
{
	struct ident_vec iv;
	int rc;

	*has = 0;
	if ((rc = op_idents(o, pid, &iv)) != CODE_OK)
		return rc;
	for (size_t i = 0; i < iv.n; i++)
		if (strcmp(iv.v[i]->domain, "cn-id") == 0) {
			*has = 1;
			if (cnid != NULL)
				snprintf(cnid, VALIDATE_CN_ID_LEN + 1, "%s",
				    iv.v[i]->value);
		}
	return CODE_OK;
}

/* Build the wire form of a patient row and the identifiers it holds. */
int
op_patient_build(struct reg_op *o, const struct registry_patient *p,
    const struct ident_vec *iv, Onecard__V1__Patient **out)
{
	struct registry_arena *a = &o->reg->arena;
	Onecard__V1__Patient *m;
	Onecard__V1__Demographics *d;

	if ((m = arena_alloc(a, sizeof(*m))) == NULL ||
	    (d = arena_alloc(a, sizeof(*d))) == NULL)
		return op_nomem(o);
	onecard__v1__patient__init(m);
	onecard__v1__demographics__init(d);
	d->name = p->name;
	d->sex = p->sex;
	d->birth_date = p->birth_date;
	d->phone = p->phone;
	d->address = p->address;
	if ((m->patient_id = arena_strdup(a, p->id)) == NULL ||
	    (m->merged_into = arena_strdup(a, p->merged_into)) == NULL)
		return op_nomem(o);
	m->demographics = d;
	m->version = p->version;
	m->identifiers = iv->v;
	m->n_identifiers = iv->n;
	*out = m;
	return CODE_OK;
}

/* Build the wire form of a patient row with its identifiers. */
int
op_patient_msg(struct reg_op *o, const struct registry_patient *p,
    Onecard__V1__Patient **out)
{
	struct ident_vec iv;
	int rc;

	if ((rc = op_idents(o, p->id, &iv)) != CODE_OK)
		return rc;
	return op_patient_build(o, p, &iv, out);
}

/* Answer with the record of p as it now stands. */
int
op_reply_patient(struct reg_op *o, const struct registry_patient *p)
{
	Onecard__V1__Patient *m;
	int rc;

	if ((rc = op_patient_msg(o, p, &m)) != CODE_OK)
		return rc;
	o->reply.result_case = ONECARD__V1__REPLY__RESULT_PATIENT;
	o->reply.patient = m;
	return CODE_OK;
}

/* Note a change of the batch being written, for the change feed. */
static void
feed_add(struct registry *reg, uint64_t seq, const char *op, const char *pid,
    const char *hospital)
{
	struct registry_change *c;

	if (!reg->writer || reg->feed_lost)
		return;
	if (reg->nfeed == reg->feed_cap) {
		size_t cap = reg->feed_cap ? reg->feed_cap * 2 : 256;

		if ((c = realloc(reg->feed, cap * sizeof(*c))) == NULL) {
			reg->feed_lost = 1;
			return;
		}
		reg->feed = c;
		reg->feed_cap = cap;
	}
	c = &reg->feed[reg->nfeed++];
	c->seq = seq;
	c->op = op;
	registry_copy(c->patient_id, pid, sizeof(c->patient_id));
	registry_copy(c->hospital, hospital, sizeof(c->hospital));
}

/*
 * Add to *list (" A B ", in the arena) the hospital of each hosp: card of
 * pid not there yet, and that of domain when it is one. CODE_OK or a code.
 */
static int
op_notify_add(
    struct reg_op *o, char **list, const char *pid, const char *domain)
{
	struct ident_vec iv = {.a = &o->reg->arena};
	const char *doms[1] = {domain};
	size_t len = strlen(*list), need = len;
	char *p;
	int rc;

	if (pid != NULL && pid[0] != '\0') {
		rc = o->reg->be->patient_idents(
		    o->reg->h, pid, ident_vec_add, &iv);
		if (rc < 0)
			return op_backend(o, rc);
	}
	for (size_t i = 0; i <= iv.n; i++) {
		const char *d = i < iv.n ? iv.v[i]->domain : doms[0];

		if (d != NULL && strncmp(d, "hosp:", 5) == 0)
			need += strlen(d + 5) + 1;
	}
	if (need == len)
		return CODE_OK;
	if ((p = arena_alloc(&o->reg->arena, need + 2)) == NULL)
		return op_nomem(o);
	memcpy(p, *list, len + 1);
	if (len == 0)
		p[len++] = ' ', p[len] = '\0';
	for (size_t i = 0; i <= iv.n; i++) {
		const char *d = i < iv.n ? iv.v[i]->domain : doms[0];
		char key[VALIDATE_MAX_DOMAIN + 3];

		if (d == NULL || strncmp(d, "hosp:", 5) != 0)
			continue;
		snprintf(key, sizeof(key), " %s ", d + 5);
		if (strstr(p, key) != NULL)
			continue;
		len += (size_t)snprintf(p + len, need + 2 - len, "%s ", d + 5);
	}
	*list = p;
	return CODE_OK;
}

static int
op_event_of(struct reg_op *o, const char *op, const char *pid,
    const char *hospital, const char *detail, const char *other,
    const char *notify)
{
	struct registry_event ev = {
	    .op = op,
	    .patient_id = pid,
	    .actor = o->who && o->who->cn ? o->who->cn : "",
	    .time_ms = o->now_ms,
	    .detail = detail,
	    .other_patient_id = other ? other : "",
	    .notify = notify ? notify : "",
	};
	int rc;

	if ((rc = o->reg->be->event_append(o->reg->h, &ev)) < 0)
		return op_backend(o, rc);
	feed_add(o->reg, ev.seq, op, pid, hospital);
	return CODE_OK;
}

/*
 * Append an event for patient pid; it goes to the change feed too. Its
 * hospitals hear of it: those pid holds a card of now, and domain's when
 * it is a hosp: domain (a card the change took away).
 */
int
op_event(struct reg_op *o, const char *op, const char *pid, const char *domain,
    const char *detail)
{
	char *notify = "";
	int rc;

	if ((rc = op_notify_add(o, &notify, pid, domain)) != CODE_OK)
		return rc;
	return op_event_of(o, op, pid, "", detail, NULL, notify);
}

/*
 * The event of a merge or unmerge, told to the hospitals of both patients
 * (between them they hold every card either held before); quiet: the other
 * patient's record of it, for its history only.
 */
int
op_event_pair(struct reg_op *o, const char *op, const char *pid,
    const char *other, int quiet, const char *detail)
{
	char *notify = "";
	int rc;

	if (quiet)
		notify = "-";
	else if ((rc = op_notify_add(o, &notify, pid, NULL)) != CODE_OK ||
	    (rc = op_notify_add(o, &notify, other, NULL)) != CODE_OK)
		return rc;
	return op_event_of(o, op, pid, "", detail, other, notify);
}

/* The same for a change of hospital code: admins only. */
int
op_event_hospital(
    struct reg_op *o, const char *op, const char *code, const char *detail)
{
	return op_event_of(o, op, "", code, detail, NULL, "");
}

static void registry_feed_cache(void *, const struct registry_change *, size_t);

/* The change feed's subscribers; the lookup cache's is always the first. */
static struct {
	registry_feed_cb cb;
	void *arg;
} feed_subs[REGISTRY_FEED_MAX + 1] = {{registry_feed_cache, NULL}};
static int feed_nsubs = 1;

int
registry_feed_subscribe(registry_feed_cb cb, void *arg)
{
	if (feed_nsubs == REGISTRY_FEED_MAX + 1)
		return -1;
	feed_subs[feed_nsubs].cb = cb;
	feed_subs[feed_nsubs].arg = arg;
	feed_nsubs++;
	return 0;
}

/*
 * The lookup cache's subscriber: drop, on every worker, the cached lookups
 * answered with a patient that changed.
 */
static void
registry_feed_cache(void *arg, const struct registry_change *c, size_t n)
{
	uint64_t h[256];
	size_t k = 0;

	(void)arg;
	if (c == NULL) {
		/* More than a worker can catch up on: each drops its all. */
		static const uint64_t all[LCACHE_RING + 1];

		lcache_publish(all, LCACHE_RING + 1);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (c[i].patient_id[0] == '\0')
			continue;
		h[k++] = lcache_hash(c[i].patient_id, strlen(c[i].patient_id));
		if (k == sizeof(h) / sizeof(h[0])) {
			lcache_publish(h, k);
			k = 0;
		}
	}
	if (k > 0)
		lcache_publish(h, k);
}

void
registry_feed_publish(const struct registry_change *c, size_t n)
{
	for (int i = 0; i < feed_nsubs; i++)
		feed_subs[i].cb(feed_subs[i].arg, c, n);
}

/* The batch is durable: hand its changes to every subscriber. */
static void
registry_feed_deliver(struct registry *reg)
{
	if (reg->nfeed > 0 || reg->feed_lost)
		registry_feed_publish(reg->feed_lost ? NULL : reg->feed,
		    reg->feed_lost ? 0 : reg->nfeed);
	reg->nfeed = 0;
	reg->feed_lost = 0;
}

/* Write back a changed patient row with its version bumped. */
int
op_patient_save(struct reg_op *o, struct registry_patient *p)
{
	int rc;

	p->version++;
	if ((rc = o->reg->be->patient_update(o->reg->h, p)) < 0)
		return op_backend(o, rc);
	return CODE_OK;
}

/* Collect a patient id (a backend callback). */
int
pid_vec_add(void *arg, const char *pid)
{
	struct pid_vec *pv = arg;

	if (pv->n == pv->cap) {
		size_t cap = pv->cap ? pv->cap * 2 : 16;
		char **v;

		if ((v = arena_alloc(pv->a, cap * sizeof(*v))) == NULL)
			return -1;
		if (pv->n > 0)
			memcpy(v, pv->v, pv->n * sizeof(*v));
		pv->v = v;
		pv->cap = cap;
	}
	if ((pv->v[pv->n] = arena_strdup(pv->a, pid)) == NULL)
		return -1;
	pv->n++;
	return 0;
}

/* Ping: the registry side of a pong (the core fills node and version). */
static int
op_ping(struct reg_op *o)
{
	Onecard__V1__Pong *pong;

	if ((pong = arena_alloc(&o->reg->arena, sizeof(*pong))) == NULL)
		return op_nomem(o);
	onecard__v1__pong__init(pong);
	o->reply.result_case = ONECARD__V1__REPLY__RESULT_PONG;
	o->reply.pong = pong;
	return CODE_OK;
}

/* Run one operation, read or write, and return its code. */
int
op_dispatch(struct reg_op *o)
{
	switch (o->req->op_case) {
	case ONECARD__V1__REQUEST__OP_PING:
		return op_ping(o);
	case ONECARD__V1__REQUEST__OP_LOOKUP:
		return op_lookup(o);
	case ONECARD__V1__REQUEST__OP_SEARCH:
		return op_search(o);
	case ONECARD__V1__REQUEST__OP_HISTORY:
		return op_history(o);
	case ONECARD__V1__REQUEST__OP_EXPORT:
		return op_export(o);
	case ONECARD__V1__REQUEST__OP_HOSPITAL_LIST:
		return op_hospital_list(o);
	case ONECARD__V1__REQUEST__OP_STATS:
		return op_stats(o);
	case ONECARD__V1__REQUEST__OP_ENROLL:
		return op_enroll(o);
	case ONECARD__V1__REQUEST__OP_LINK:
		return op_link(o);
	case ONECARD__V1__REQUEST__OP_UNLINK:
		return op_unlink(o);
	case ONECARD__V1__REQUEST__OP_UPDATE:
		return op_update(o);
	case ONECARD__V1__REQUEST__OP_MERGE:
		return op_merge(o);
	case ONECARD__V1__REQUEST__OP_UNMERGE:
		return op_unmerge(o);
	case ONECARD__V1__REQUEST__OP_HOSPITAL_ADD:
		return op_hospital_add(o);
	case ONECARD__V1__REQUEST__OP_HOSPITAL_REVOKE:
		return op_hospital_revoke(o);
	case ONECARD__V1__REQUEST__OP_DUPLICATE_SCAN:
		return op_duplicate_scan(o);
	case ONECARD__V1__REQUEST__OP_DUPLICATE_LIST:
		return op_duplicate_list(o);
	case ONECARD__V1__REQUEST__OP_DUPLICATE_SHOW:
		return op_duplicate_show(o);
	case ONECARD__V1__REQUEST__OP_DUPLICATE_DISMISS:
		return op_duplicate_dismiss(o);
	case ONECARD__V1__REQUEST__OP_DUPLICATE_MERGE:
		return op_duplicate_merge(o);
	case ONECARD__V1__REQUEST__OP__NOT_SET:
		return op_fail(o, CODE_INVALID, "op: missing");
	default:
		return op_fail(o, CODE_UNIMPL, "%s: not served by the registry",
		    wire_op_name(o->req->op_case));
	}
}

/* Set up an operation. */
void
op_init(struct reg_op *o, struct registry *reg, const struct actor *who,
    const Onecard__V1__Request *req, struct op_result *res)
{
	static const Onecard__V1__Reply init = ONECARD__V1__REPLY__INIT;

	memset(o, 0, sizeof(*o));
	o->reg = reg;
	o->who = who;
	o->req = req;
	o->res = res;
	o->vc.today = registry_today(reg);
	o->vc.max_name = reg->lim.max_name;
	o->vc.max_address = reg->lim.max_address;
	o->now_ms = registry_now_ms();
	o->reply = init;
	o->reply.id = req->id;
	memset(res, 0, sizeof(*res));
	arena_reset(&reg->arena);
}

/* Append the reply frame for code and record the code. */
void
op_finish(struct reg_op *o, int code, struct evbuffer *out)
{
	o->res->code = code;
	o->reply.code = code;
	if (code != CODE_OK) {
		o->reply.result_case = ONECARD__V1__REPLY__RESULT__NOT_SET;
		o->reply.message = o->msg;
	}
	if (wire_append(out, &o->reply.base) == -1) {
		log_warnx("registry: cannot append a reply");
		o->res->code = CODE_INTERNAL;
		wire_append_error(
		    out, o->req->id, CODE_INTERNAL, "out of memory");
	}
	arena_reset(&o->reg->arena);
}

void
registry_write(struct registry *reg, const struct actor *who,
    const Onecard__V1__Request *req, struct evbuffer *out,
    struct op_result *res)
{
	struct reg_op o;
	size_t nfeed;
	int code, rc, own_txn;

	if (!registry_op_is_write(req->op_case)) {
		registry_read(reg, who, req, out, res);
		return;
	}
	op_init(&o, reg, who, req, res);
	if (!reg->writer) {
		log_warnx("registry: write on a read handle");
		code = op_fail(&o, CODE_INTERNAL, "write on a read handle");
		goto done;
	}
	/*
	 * A store error (disk full, I/O) may have ended the batch's
	 * transaction behind our back; a write run now would commit on its
	 * own while its batch is answered UNAVAILABLE. Refuse it instead.
	 */
	if (reg->in_batch && (reg->broken || !reg->be->in_txn(reg->h))) {
		if (!reg->broken)
			log_warnx("registry: batch transaction ended early");
		reg->broken = 1;
		code = op_fail(&o, CODE_UNAVAIL, "batch failed; retry");
		goto done;
	}
	/* Outside a batch, a write is its own transaction. */
	own_txn = !reg->in_batch;
	if (own_txn && (rc = reg->be->begin(reg->h, 1)) < 0) {
		code = op_backend(&o, rc);
		goto done;
	}
	nfeed = reg->nfeed;
	/*
	 * Each op under its own savepoint: one that fails is undone alone.
	 * One that lost a race to another broker sharing the store (a key
	 * it committed meanwhile, a deadlock) is undone and run again: it
	 * now reads what the other committed and answers as if it had come
	 * second on one broker.
	 */
	for (int tries = 0;; tries++) {
		if ((rc = reg->be->savepoint(reg->h)) < 0) {
			code = op_backend(&o, rc);
			goto end;
		}
		code = op_dispatch(&o);
		/* A store that sends writes ahead (PostgreSQL) learns at
		 * the release that one failed: the op failed, and is undone
		 * (and run again, when it lost a race). */
		if (code == CODE_OK && (rc = reg->be->release(reg->h)) < 0)
			code = op_backend(&o, rc);
		else
			rc = 0;
		if (code != CODE_OK) {
			rc = reg->be->rollback_to(reg->h);
			reg->nfeed = nfeed; /* undone: not a change */
		}
		if (rc < 0) {
			reg->broken = 1;
			code = op_backend(&o, rc);
			break;
		}
		if (code == CODE_OK || !o.retry || tries == REGISTRY_RETRIES)
			break;
		op_init(&o, reg, who, req, res);
	}
end:
	if (own_txn) {
		if (code == CODE_OK && reg->be->commit(reg->h) < 0) {
			reg->be->rollback(reg->h);
			code = op_fail(&o, CODE_UNAVAIL,
			    "the write could not be made durable; retry");
			reg->nfeed = 0;
			reg->feed_lost = 0;
		} else if (code != CODE_OK)
			reg->be->rollback(reg->h);
		reg->broken = 0;
		registry_feed_deliver(reg);
	}
done:
	op_finish(&o, code, out);
}

int
registry_batch_begin(struct registry *reg)
{
	if (!reg->writer || reg->in_batch)
		return -1;
	if (reg->be->begin(reg->h, 1) < 0)
		return -1;
	reg->in_batch = 1;
	reg->broken = 0;
	return 0;
}

/* Identifiers a batch's hint reads at most. */
#define REGISTRY_HINT_MAX 4096

/* The identifiers a write names for a batch's hint: an enrollment's, a
 * link's added one (in *one); *n of them, 0 for any other write. */
static const Onecard__V1__Identifier *const *
hint_idents(const Onecard__V1__Request *req,
    const Onecard__V1__Identifier **one, size_t *n)
{
	*n = 0;
	if (req->op_case == ONECARD__V1__REQUEST__OP_ENROLL &&
	    req->enroll != NULL) {
		*n = req->enroll->n_identifiers;
		return (const Onecard__V1__Identifier *const *)
		    req->enroll->identifiers;
	}
	if (req->op_case == ONECARD__V1__REQUEST__OP_LINK &&
	    req->link != NULL && req->link->added != NULL) {
		*one = req->link->added;
		*n = 1;
	}
	return one;
}

void
registry_batch_hint(
    struct registry *reg, const Onecard__V1__Request *const *reqs, size_t n)
{
	struct validate_ctx vc = {.today = registry_today(reg),
	    .max_name = reg->lim.max_name,
	    .max_address = reg->lim.max_address};
	const Onecard__V1__Identifier *one, *const *ids;
	const char **doms, **vals;
	char(*norm)[VALIDATE_MAX_VALUE + 1], err[8];
	size_t k = 0, nids, total = 0;

	if (!reg->in_batch || reg->be->ident_hint == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		(void)hint_idents(reqs[i], &one, &nids);
		total += nids;
	}
	if (total > REGISTRY_HINT_MAX)
		total = REGISTRY_HINT_MAX;
	if (total == 0)
		return;
	doms = malloc(total * sizeof(*doms));
	vals = malloc(total * sizeof(*vals));
	norm = malloc(total * sizeof(*norm));
	for (size_t i = 0; doms && vals && norm && i < n; i++) {
		ids = hint_idents(reqs[i], &one, &nids);
		/* Stored form, as the op will ask; one that is not valid
		 * is never asked for. */
		for (size_t j = 0; j < nids && k < total; j++)
			if (validate_identifier(&vc, "", ids[j], norm[k],
				sizeof(norm[k]), NULL, err, sizeof(err)) >= 0) {
				doms[k] = ids[j]->domain;
				vals[k] = norm[k];
				k++;
			}
	}
	if (k > 0)
		(void)reg->be->ident_hint(reg->h, doms, vals, k);
	free(doms);
	free(vals);
	free(norm);
}

int
registry_batch_commit(struct registry *reg)
{
	int rc = -1;

	if (!reg->in_batch)
		return -1;
	if (!reg->broken && reg->be->in_txn(reg->h) &&
	    reg->be->commit(reg->h) == 0)
		rc = 0;
	else
		reg->be->rollback(reg->h);
	reg->in_batch = 0;
	reg->broken = 0;
	/* Before any reply of the batch leaves (the caller sends them). A
	 * failed batch changed nothing: nothing to tell. */
	if (rc == 0)
		registry_feed_deliver(reg);
	reg->nfeed = 0;
	reg->feed_lost = 0;
	return rc;
}

void
registry_batch_rollback(struct registry *reg)
{
	if (!reg->in_batch)
		return;
	reg->be->rollback(reg->h);
	reg->in_batch = 0;
	reg->broken = 0;
	reg->nfeed = 0;
	reg->feed_lost = 0;
}
