/*
 * registry.c: the rules of the master patient index.
 *
 * Owns what every operation means: validation of its fields (validate.c),
 * who may do it (role and hospital domain), the enroll / link / unlink /
 * update / merge / unmerge semantics of DESIGN.md, version bumps, events,
 * and the Reply frame it answers with. Storage goes through a backend table
 * (registry_backend.h) chosen by the --db URL, so a new store implements
 * primitives only and never a rule. Each write runs under its own savepoint
 * inside the writer's batch transaction: a failed write rolls back to it and
 * leaves its neighbours alone. A handle keeps a scratch arena that holds one
 * reply at a time, so answering a request allocates little.
 *
 * Decisions not spelled out in DESIGN.md:
 *  - unlinking a patient's last identifier is CONFLICT ("a patient keeps at
 *    least one identifier"): a record nobody can name is lost;
 *  - hospital_add of a code that exists sets its name and role and makes it
 *    active (a revoked code is reactivated); it is OK either way, and an
 *    event is written only when something changed;
 *  - hospital_revoke of a revoked code is OK and changes nothing;
 *  - an update whose fields change nothing is OK with no version bump;
 *  - an update that contradicts the patient's cn-id (birth date, sex) is
 *    CONFLICT; linking a cn-id to a patient whose stored birth date or sex
 *    disagrees with it is CONFLICT too;
 *  - when a new patient is enrolled with a cn-id and no birth date or sex,
 *    the registry fills them from the number;
 *  - history of a pid names that very patient (merged away or not); any
 *    other identifier names its live holder;
 *  - stats is open to every role; hospital_list, history and export are
 *    admin-only.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <event2/buffer.h>

#include "log.h"
#include "registry_cache.h"
#include "registry.h"
#include "registry_backend.h"
#include "registry_mem.h"
#include "validate.h"
#include "wire.h"

#define ARENA_CHUNK     (64 * 1024)
#define MERGE_MAX_HOPS  64   /* merged_into links followed before giving up */
#define EXPORT_MAX      1000 /* patients in one export page */
#define DUPLICATES_MAX  10   /* possible duplicates named on enroll */
#define DETAIL_MAX      512  /* bytes of an event's detail */
#define REGISTRY_MSGLEN 256

#define CODE_OK        ONECARD__V1__CODE__OK
#define CODE_INVALID   ONECARD__V1__CODE__INVALID_ARGUMENT
#define CODE_NOT_FOUND ONECARD__V1__CODE__NOT_FOUND
#define CODE_CONFLICT  ONECARD__V1__CODE__CONFLICT
#define CODE_DENIED    ONECARD__V1__CODE__PERMISSION_DENIED
#define CODE_VERSION   ONECARD__V1__CODE__VERSION_MISMATCH
#define CODE_UNIMPL    ONECARD__V1__CODE__UNIMPLEMENTED
#define CODE_INTERNAL  ONECARD__V1__CODE__INTERNAL
#define CODE_UNAVAIL   ONECARD__V1__CODE__UNAVAILABLE

struct arena_chunk {
	struct arena_chunk *next;
	size_t len;
	size_t cap;
	char data[];
};

/* Scratch memory for one request; reset before the next. */
struct registry_arena {
	struct arena_chunk *head;  /* chunk being filled */
	struct arena_chunk *first; /* kept across resets */
};

struct registry {
	const struct registry_backend *be;
	void *h;
	int writer;
	int in_batch;
	int broken; /* a savepoint could not be undone: fail the batch */
	struct registry_limits lim;
	struct registry_arena arena;
	struct lcache *cache; /* read handle: encoded lookup replies */
	int cache_off;        /* no cache: off, or it could not be made */
	time_t today_at;      /* the second today was worked out in */
	int today;            /* YYYYMMDD, for validating a cached lookup */
	uint64_t *touched;    /* writer: patients changed in this batch */
	size_t ntouched, touched_cap;
	int touched_all; /* out of memory noting them: say everything changed */
};

/* One operation in flight. */
struct reg_op {
	struct registry *reg;
	const struct actor *who;
	const Onecard__V1__Request *req;
	struct op_result *res;
	struct validate_ctx vc;
	int64_t now_ms;
	Onecard__V1__Reply reply;
	char msg[REGISTRY_MSGLEN];
	/* A lookup answered in one step with a live record: cache it. */
	int cacheable;
	size_t keylen;
	char key[VALIDATE_MAX_DOMAIN + 1 + VALIDATE_MAX_VALUE + 1];
};

/* A growing array of identifiers in the arena. */
struct ident_vec {
	struct registry_arena *a;
	Onecard__V1__Identifier **v;
	size_t n;
	size_t cap;
};

/* A growing array of patient ids in the arena. */
struct pid_vec {
	struct registry_arena *a;
	char **v;
	size_t n;
	size_t cap;
};

/* Allocate size zeroed bytes from the arena; NULL when out of memory. */
static void *
arena_alloc(struct registry_arena *a, size_t size)
{
	struct arena_chunk *c = a->head;
	size_t need = (size + 15) & ~(size_t)15;
	void *p;

	if (c == NULL || c->cap - c->len < need) {
		size_t cap = need > ARENA_CHUNK ? need : ARENA_CHUNK;

		if ((c = malloc(sizeof(*c) + cap)) == NULL)
			return NULL;
		c->next = a->head;
		c->len = 0;
		c->cap = cap;
		a->head = c;
		if (a->first == NULL)
			a->first = c;
	}
	p = c->data + c->len;
	c->len += need;
	memset(p, 0, size);
	return p;
}

/* Forget everything allocated; keep the first chunk for the next request. */
static void
arena_reset(struct registry_arena *a)
{
	struct arena_chunk *c = a->head, *next;

	while (c != NULL && c != a->first) {
		next = c->next;
		free(c);
		c = next;
	}
	a->head = a->first;
	if (a->first != NULL)
		a->first->len = 0;
}

/* Free every chunk. */
static void
arena_free(struct registry_arena *a)
{
	struct arena_chunk *c = a->head, *next;

	for (; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	a->head = a->first = NULL;
}

char *
registry_arena_strndup(struct registry_arena *a, const char *s, size_t len)
{
	char *p = arena_alloc(a, len + 1);

	if (p != NULL)
		memcpy(p, s, len);
	return p;
}

/* Copy a string into the arena. */
static char *
arena_strdup(struct registry_arena *a, const char *s)
{
	return registry_arena_strndup(a, s, strlen(s));
}

/* Unix time in milliseconds. */
static int64_t
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

/* "domain=value" with a cn-id masked. */
static void
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
 * before; it is kept for comparison.
 */
static const struct {
	const char *scheme;
	const struct registry_backend *be;
} registry_stores[] = {
    {"sqlite", &registry_mem},
    {"sqlite-direct", &registry_sqlite},
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
			*path = colon + 1;
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

	if (strncmp(url, "postgresql://", 13) == 0 ||
	    strncmp(url, "postgres://", 11) == 0) {
		snprintf(err, errlen,
		    "%s: the PostgreSQL backend is not built into this broker",
		    "--db");
		return NULL;
	}
	if ((be = registry_store(url, &path)) == NULL) {
		snprintf(err, errlen,
		    "--db %s: unknown store (sqlite:PATH, sqlite-direct:PATH "
		    "or a path)",
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
		registry_mem_set_max_unfolded(reg->lim.max_unfolded);
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
	free(reg->touched);
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
		return 1;
	default:
		return 0;
	}
}

int
registry_hospital_role(struct registry *reg, const char *code, int *role)
{
	struct registry_hospital hosp;
	int rc;

	rc = reg->be->hospital_get(reg->h, code, NULL, &hosp);
	if (rc < 0)
		return -1;
	if (rc == 1 || !hosp.active)
		return 1;
	*role = hosp.role;
	return 0;
}

int
registry_ping(struct registry *reg)
{
	return reg->be->ping(reg->h) == 0 ? 0 : -1;
}

/* Set the reply's message and return code. */
static int __attribute__((format(printf, 3, 4)))
op_fail(struct reg_op *o, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(o->msg, sizeof(o->msg), fmt, ap);
	va_end(ap);
	return code;
}

/* Turn a backend failure into a code; the backend has logged it. */
static int
op_backend(struct reg_op *o, int rc)
{
	if (rc == REGISTRY_EUNAVAIL)
		return op_fail(o, CODE_UNAVAIL,
		    "the registry cannot take this now; retry");
	return op_fail(o, CODE_INTERNAL, "registry error");
}

/* Out of scratch memory. */
static int
op_nomem(struct reg_op *o)
{
	log_warnx("registry: out of memory building a reply");
	return op_fail(o, CODE_INTERNAL, "out of memory");
}

/* Is the caller an admin? */
static int
op_is_admin(const struct reg_op *o)
{
	return o->who != NULL && o->who->role == ONECARD__V1__ROLE__ROLE_ADMIN;
}

/* PERMISSION_DENIED unless the caller is an admin. */
static int
op_need_admin(struct reg_op *o, const char *what)
{
	if (op_is_admin(o))
		return CODE_OK;
	return op_fail(o, CODE_DENIED, "%s is for admins only", what);
}

/* May the caller add or remove identifiers in domain? Hospitals write only
 * cn-id and cn-ssc (when adding) and their own hosp:<CN>. */
static int
op_may_write_domain(
    struct reg_op *o, const char *field, const char *domain, int adding)
{
	const char *cn = o->who && o->who->cn ? o->who->cn : "";

	if (op_is_admin(o))
		return CODE_OK;
	if (strncmp(domain, "hosp:", 5) == 0 && strcmp(domain + 5, cn) == 0)
		return CODE_OK;
	if (adding &&
	    (strcmp(domain, "cn-id") == 0 || strcmp(domain, "cn-ssc") == 0))
		return CODE_OK;
	return op_fail(o, CODE_DENIED, "%s: hospital %s may not %s %s", field,
	    cn, adding ? "add identifiers in" : "remove identifiers of",
	    domain);
}

/* Remember what the operation named, for the audit trail. */
static void
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
static void
op_patient_id(struct reg_op *o, const char *pid)
{
	registry_copy(o->res->patient_id, pid, sizeof(o->res->patient_id));
}

/* Follow merged_into from p to the live patient, reloading p. */
static int
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
static int
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
static int
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
static int
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
static int
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
static int
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
static int
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
static int
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

/* Append an event for patient pid. */
static int
op_event(struct reg_op *o, const char *op, const char *pid, const char *detail)
{
	struct registry_event ev = {
	    .op = op,
	    .patient_id = pid,
	    .actor = o->who && o->who->cn ? o->who->cn : "",
	    .time_ms = o->now_ms,
	    .detail = detail,
	};
	int rc;

	if ((rc = o->reg->be->event_append(o->reg->h, &ev)) < 0)
		return op_backend(o, rc);
	return CODE_OK;
}

/*
 * Note that patient pid changed in the batch being written: once it commits,
 * every worker's cached lookups answered with this patient are dropped.
 * Every change to a live record (its row or the identifiers it holds) saves
 * the row through op_patient_save, which calls this.
 */
static void
registry_touch(struct registry *reg, const char *pid)
{
	if (reg->touched_all)
		return;
	if (reg->ntouched == reg->touched_cap) {
		size_t cap = reg->touched_cap ? reg->touched_cap * 2 : 64;
		uint64_t *t = realloc(reg->touched, cap * sizeof(*t));

		if (t == NULL) {
			/* Cannot say which: every cache drops everything. */
			reg->touched_all = 1;
			return;
		}
		reg->touched = t;
		reg->touched_cap = cap;
	}
	reg->touched[reg->ntouched++] = lcache_hash(pid, strlen(pid));
}

/* The batch's changes are durable: publish them to every worker's cache. */
static void
registry_publish(struct registry *reg)
{
	if (reg->touched_all) {
		/* More than a worker can catch up on: each drops its all. */
		static const uint64_t all[LCACHE_RING + 1];

		lcache_publish(all, LCACHE_RING + 1);
	} else
		lcache_publish(reg->touched, reg->ntouched);
	reg->ntouched = 0;
	reg->touched_all = 0;
}

/* Write back a changed patient row with its version bumped. */
static int
op_patient_save(struct reg_op *o, struct registry_patient *p)
{
	int rc;

	p->version++;
	if ((rc = o->reg->be->patient_update(o->reg->h, p)) < 0)
		return op_backend(o, rc);
	registry_touch(o->reg, p->id);
	return CODE_OK;
}

/*
 * A new unguessable patient id: "P" and 16 bytes in base32, the first 6 the
 * time in milliseconds and the other 10 (80 bits) random. The digits are
 * "2-7A-Z", in ASCII order, so ids sort by creation time: a new patient's
 * rows land at the right edge of every B-tree keyed by patient id (patients,
 * identifiers_patient, events_patient) instead of on a random page each, and
 * an enroll dirties a handful of pages rather than one per index.
 */
static int
registry_new_pid(char *pid, int64_t now_ms)
{
	static const char b32[] = "234567ABCDEFGHIJKLMNOPQRSTUVWXYZ";
	unsigned char r[16];
	size_t got = 6;
	unsigned int acc = 0;
	int bits = 0, n = 1;

	for (int i = 0; i < 6; i++)
		r[i] = (unsigned char)((uint64_t)now_ms >> (40 - 8 * i));
	while (got < sizeof(r)) {
		ssize_t k = getrandom(r + got, sizeof(r) - got, 0);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			log_warn("registry: getrandom");
			return -1;
		}
		got += (size_t)k;
	}
	pid[0] = 'P';
	for (size_t i = 0; i < sizeof(r); i++) {
		acc = (acc << 8) | r[i];
		bits += 8;
		while (bits >= 5) {
			pid[n++] = b32[(acc >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	pid[n++] = b32[(acc << (5 - bits)) & 31];
	pid[n] = '\0';
	return 0;
}

/* Does a stored patient's birth date and sex agree with a cn-id? */
static int
op_patient_agrees(struct reg_op *o, const char *field,
    const struct registry_patient *p, const struct validate_cn_id_info *info)
{
	if (p->birth_date[0] != '\0' &&
	    strcmp(p->birth_date, info->birth_date) != 0)
		return op_fail(o, CODE_CONFLICT,
		    "%s: the cn-id's birth date is not the patient's", field);
	if (p->sex != ONECARD__V1__SEX__SEX_UNKNOWN && p->sex != info->sex)
		return op_fail(o, CODE_CONFLICT,
		    "%s: the cn-id's sex is not the patient's", field);
	return CODE_OK;
}

/* Collect a patient id (a backend callback). */
static int
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

/* Answer enroll with the record of pid; duplicates of a new record. */
static int
op_reply_enrolled(struct reg_op *o, const struct registry_patient *p,
    int created, int find_dups)
{
	struct registry *reg = o->reg;
	Onecard__V1__EnrollResult *er;
	struct pid_vec pv = {.a = &reg->arena};
	int rc;

	if ((er = arena_alloc(&reg->arena, sizeof(*er))) == NULL)
		return op_nomem(o);
	onecard__v1__enroll_result__init(er);
	if ((rc = op_patient_msg(o, p, &er->patient)) != CODE_OK)
		return rc;
	er->created = created;
	if (find_dups) {
		rc = reg->be->patient_search(reg->h, p->name, p->birth_date, 0,
		    DUPLICATES_MAX + 1, pid_vec_add, &pv);
		if (rc < 0)
			return op_backend(o, rc);
		er->possible_duplicates = arena_alloc(
		    &reg->arena, (pv.n + 1) * sizeof(*er->possible_duplicates));
		if (er->possible_duplicates == NULL)
			return op_nomem(o);
		for (size_t i = 0; i < pv.n; i++) {
			Onecard__V1__Candidate *c;

			if (strcmp(pv.v[i], p->id) == 0 ||
			    er->n_possible_duplicates == DUPLICATES_MAX)
				continue;
			if ((c = arena_alloc(&reg->arena, sizeof(*c))) == NULL)
				return op_nomem(o);
			onecard__v1__candidate__init(c);
			c->patient_id = pv.v[i];
			c->reason = "same name and birth date";
			er->possible_duplicates[er->n_possible_duplicates++] =
			    c;
		}
	}
	o->reply.result_case = ONECARD__V1__REPLY__RESULT_ENROLLED;
	o->reply.enrolled = er;
	return CODE_OK;
}

/* Append "domain=value" (cn-id masked) to a comma-separated detail. */
static void
detail_add(char *detail, const char *domain, const char *value)
{
	size_t len = strlen(detail);
	char one[160];

	registry_ident_text(domain, value, one, sizeof(one));
	snprintf(detail + len, DETAIL_MAX - len, "%s%s", len ? "," : "", one);
}

/* Enroll: create a patient, or link the rest to the one that holds some. */
static int
op_enroll(struct reg_op *o)
{
	struct registry *reg = o->reg;
	const Onecard__V1__Enroll *e = o->req->enroll;
	const Onecard__V1__Demographics *d;
	struct validate_cn_id_info info;
	struct registry_patient p;
	char field[48], owner[REGISTRY_PID_MAX] = "", pid[REGISTRY_PID_MAX];
	char(*norm)[VALIDATE_MAX_VALUE + 1];
	char detail[DETAIL_MAX] = "";
	int cn = -1, rc, owner_of = -1, added = 0;
	size_t n;

	if (e == NULL)
		return op_fail(o, CODE_INVALID, "enroll: missing");
	d = e->demographics;
	n = e->n_identifiers;
	if (n == 0)
		return op_fail(o, CODE_INVALID,
		    "identifiers: at least one identifier is needed");
	if (n > reg->lim.max_ids)
		return op_fail(o, CODE_INVALID,
		    "identifiers: %zu identifiers, over the limit of %zu", n,
		    reg->lim.max_ids);
	if (validate_demographics(
		&o->vc, "demographics", d, o->msg, sizeof(o->msg)) == -1)
		return CODE_INVALID;
	if ((norm = arena_alloc(&reg->arena, n * sizeof(*norm))) == NULL)
		return op_nomem(o);
	for (size_t i = 0; i < n; i++) {
		struct validate_cn_id_info one;
		int k;

		snprintf(field, sizeof(field), "identifiers[%zu]", i);
		k = validate_identifier(&o->vc, field, e->identifiers[i],
		    norm[i], sizeof(norm[i]), &one, o->msg, sizeof(o->msg));
		if (k < 0)
			return CODE_INVALID;
		op_target(o, e->identifiers[i]->domain, norm[i]);
		if (k == VALIDATE_PID)
			return op_fail(o, CODE_INVALID,
			    "%s.domain: pid is assigned by the registry, "
			    "never enrolled",
			    field);
		if (k == VALIDATE_CN_ID) {
			if (cn >= 0 && strcmp(norm[cn], norm[i]) != 0)
				return op_fail(o, CODE_CONFLICT,
				    "%s: a patient has at most one cn-id",
				    field);
			cn = (int)i;
			info = one;
		}
	}
	if (cn >= 0 &&
	    validate_agrees_cn_id(
		"demographics", d, &info, o->msg, sizeof(o->msg)) == -1)
		return CODE_INVALID;

	/* Who holds what is already there? All of it must be one patient. */
	for (size_t i = 0; i < n; i++) {
		rc = reg->be->ident_owner(
		    reg->h, e->identifiers[i]->domain, norm[i], pid);
		if (rc < 0)
			return op_backend(o, rc);
		if (rc == 1) {
			/* New to the registry: may the caller add it? */
			snprintf(field, sizeof(field), "identifiers[%zu]", i);
			rc = op_may_write_domain(
			    o, field, e->identifiers[i]->domain, 1);
			if (rc != CODE_OK)
				return rc;
			continue;
		}
		if ((rc = reg->be->patient_get(reg->h, pid, &reg->arena, &p)) !=
		    0)
			return rc < 0 ? op_backend(o, rc)
				      : op_fail(o, CODE_INTERNAL,
					    "identifier without patient");
		if ((rc = op_follow(o, &p)) != CODE_OK)
			return rc;
		if (owner[0] == '\0') {
			snprintf(owner, sizeof(owner), "%s", p.id);
			owner_of = (int)i;
		} else if (strcmp(owner, p.id) != 0)
			return op_fail(o, CODE_CONFLICT,
			    "identifiers[%zu]: belongs to another patient than "
			    "identifiers[%d]",
			    i, owner_of);
	}

	if (owner[0] != '\0') {
		/* Link the rest to the one patient that holds some. */
		rc = reg->be->patient_get(reg->h, owner, &reg->arena, &p);
		if (rc != 0)
			return rc < 0 ? op_backend(o, rc)
				      : op_fail(o, CODE_INTERNAL, "no patient");
		op_patient_id(o, p.id);
		if (cn >= 0) {
			char held[VALIDATE_CN_ID_LEN + 1] = "";
			int has;

			if ((rc = op_patient_cn_id(o, p.id, &has, held)) !=
			    CODE_OK)
				return rc;
			if (has && strcmp(held, norm[cn]) != 0)
				return op_fail(o, CODE_CONFLICT,
				    "identifiers[%d]: the patient already "
				    "holds another cn-id",
				    cn);
			if (!has) {
				snprintf(field, sizeof(field),
				    "identifiers[%d]", cn);
				rc = op_patient_agrees(o, field, &p, &info);
				if (rc != CODE_OK)
					return rc;
			}
		}
		for (size_t i = 0; i < n; i++) {
			const char *dom = e->identifiers[i]->domain;

			rc = reg->be->ident_owner(reg->h, dom, norm[i], pid);
			if (rc < 0)
				return op_backend(o, rc);
			if (rc == 0)
				continue;
			rc = reg->be->ident_insert(reg->h, dom, norm[i], p.id);
			if (rc < 0)
				return op_backend(o, rc);
			detail_add(detail, dom, norm[i]);
			added++;
		}
		if (added > 0) {
			if ((rc = op_patient_save(o, &p)) != CODE_OK ||
			    (rc = op_event(o, "link", p.id, detail)) != CODE_OK)
				return rc;
		}
		return op_reply_enrolled(o, &p, 0, 0);
	}

	/* None is known: a new patient. */
	memset(&p, 0, sizeof(p));
	if (registry_new_pid(p.id, o->now_ms) == -1)
		return op_fail(o, CODE_INTERNAL, "no randomness for an id");
	p.name = d && d->name ? d->name : "";
	p.sex = d ? d->sex : 0;
	p.birth_date = d && d->birth_date ? d->birth_date : "";
	p.phone = d && d->phone ? d->phone : "";
	p.address = d && d->address ? d->address : "";
	if (cn >= 0) {
		if (p.birth_date[0] == '\0' &&
		    (p.birth_date =
			    arena_strdup(&reg->arena, info.birth_date)) == NULL)
			return op_nomem(o);
		if (p.sex == ONECARD__V1__SEX__SEX_UNKNOWN)
			p.sex = info.sex;
	}
	p.version = 1;
	op_patient_id(o, p.id);
	if ((rc = reg->be->patient_insert(reg->h, &p, o->now_ms)) < 0)
		return op_backend(o, rc);
	for (size_t i = 0; i < n; i++) {
		const char *dom = e->identifiers[i]->domain;
		int dup = 0;

		for (size_t j = 0; j < i; j++)
			if (strcmp(e->identifiers[j]->domain, dom) == 0 &&
			    strcmp(norm[j], norm[i]) == 0)
				dup = 1;
		if (dup)
			continue;
		if ((rc = reg->be->ident_insert(reg->h, dom, norm[i], p.id)) <
		    0)
			return op_backend(o, rc);
		detail_add(detail, dom, norm[i]);
	}
	if ((rc = op_event(o, "enroll", p.id, detail)) != CODE_OK)
		return rc;
	return op_reply_enrolled(
	    o, &p, 1, cn < 0 && p.name[0] != '\0' && p.birth_date[0] != '\0');
}

/* Link: add an identifier to the patient another one names. */
static int
op_link(struct reg_op *o)
{
	struct registry *reg = o->reg;
	const Onecard__V1__Link *l = o->req->link;
	struct validate_cn_id_info info;
	struct registry_patient p, q;
	char knorm[VALIDATE_MAX_VALUE + 1], anorm[VALIDATE_MAX_VALUE + 1];
	char pid[REGISTRY_PID_MAX], detail[DETAIL_MAX] = "";
	int k, rc;

	if (l == NULL)
		return op_fail(o, CODE_INVALID, "link: missing");
	k = validate_identifier(&o->vc, "added", l->added, anorm, sizeof(anorm),
	    &info, o->msg, sizeof(o->msg));
	if (k < 0)
		return CODE_INVALID;
	op_target(o, l->added->domain, anorm);
	if (k == VALIDATE_PID)
		return op_fail(o, CODE_INVALID,
		    "added.domain: pid is assigned by the registry, never "
		    "linked");
	if ((rc = op_may_write_domain(o, "added", l->added->domain, 1)) !=
	    CODE_OK)
		return rc;
	if ((rc = op_resolve(o, "known", l->known, 1, &p, knorm, NULL)) !=
	    CODE_OK)
		return rc;
	rc = reg->be->ident_owner(reg->h, l->added->domain, anorm, pid);
	if (rc < 0)
		return op_backend(o, rc);
	if (rc == 0) {
		rc = reg->be->patient_get(reg->h, pid, &reg->arena, &q);
		if (rc != 0)
			return rc < 0 ? op_backend(o, rc)
				      : op_fail(o, CODE_INTERNAL, "no patient");
		if ((rc = op_follow(o, &q)) != CODE_OK)
			return rc;
		if (strcmp(q.id, p.id) != 0)
			return op_fail(o, CODE_CONFLICT,
			    "added: belongs to another patient");
		return op_reply_patient(o, &p); /* already there */
	}
	if (k == VALIDATE_CN_ID) {
		int has;

		if ((rc = op_patient_cn_id(o, p.id, &has, NULL)) != CODE_OK)
			return rc;
		if (has)
			return op_fail(o, CODE_CONFLICT,
			    "added: the patient already holds a cn-id");
		if ((rc = op_patient_agrees(o, "added", &p, &info)) != CODE_OK)
			return rc;
	}
	if ((rc = reg->be->ident_insert(
		 reg->h, l->added->domain, anorm, p.id)) < 0)
		return op_backend(o, rc);
	detail_add(detail, l->added->domain, anorm);
	if ((rc = op_patient_save(o, &p)) != CODE_OK ||
	    (rc = op_event(o, "link", p.id, detail)) != CODE_OK)
		return rc;
	return op_reply_patient(o, &p);
}

/* Unlink: remove an identifier from its patient. */
static int
op_unlink(struct reg_op *o)
{
	struct registry *reg = o->reg;
	const Onecard__V1__Unlink *u = o->req->unlink;
	struct registry_patient p;
	struct ident_vec iv;
	char norm[VALIDATE_MAX_VALUE + 1], detail[DETAIL_MAX] = "";
	int k, rc;

	if (u == NULL)
		return op_fail(o, CODE_INVALID, "unlink: missing");
	k = validate_identifier(&o->vc, "identifier", u->identifier, norm,
	    sizeof(norm), NULL, o->msg, sizeof(o->msg));
	if (k < 0)
		return CODE_INVALID;
	op_target(o, u->identifier->domain, norm);
	if (k == VALIDATE_PID)
		return op_fail(o, CODE_INVALID,
		    "identifier.domain: a pid is never removed");
	if ((rc = op_may_write_domain(
		 o, "identifier", u->identifier->domain, 0)) != CODE_OK)
		return rc;
	if ((rc = op_resolve(
		 o, "identifier", u->identifier, 1, &p, norm, NULL)) != CODE_OK)
		return rc;
	if ((rc = op_idents(o, p.id, &iv)) != CODE_OK)
		return rc;
	if (iv.n <= 1)
		return op_fail(o, CODE_CONFLICT,
		    "identifier: a patient keeps at least one identifier");
	if ((rc = reg->be->ident_delete(reg->h, u->identifier->domain, norm)) <
	    0)
		return op_backend(o, rc);
	detail_add(detail, u->identifier->domain, norm);
	if ((rc = op_patient_save(o, &p)) != CODE_OK ||
	    (rc = op_event(o, "unlink", p.id, detail)) != CODE_OK)
		return rc;
	return op_reply_patient(o, &p);
}

/* Set *dst to src when src is non-empty and differs; note the field. */
static void
update_field(
    char **dst, const char *src, const char *name, char *detail, int *changed)
{
	size_t len;

	if (src == NULL || src[0] == '\0' || strcmp(*dst, src) == 0)
		return;
	*dst = (char *)src;
	len = strlen(detail);
	snprintf(detail + len, DETAIL_MAX - len, "%s%s", len ? "," : "", name);
	(*changed)++;
}

/* Update: change the demographics of the patient an identifier names. */
static int
op_update(struct reg_op *o)
{
	const Onecard__V1__Update *u = o->req->update;
	const Onecard__V1__Demographics *d;
	struct registry_patient p;
	char norm[VALIDATE_MAX_VALUE + 1], cnid[VALIDATE_CN_ID_LEN + 1];
	char detail[DETAIL_MAX] = "";
	int rc, has, changed = 0;

	if (u == NULL)
		return op_fail(o, CODE_INVALID, "update: missing");
	d = u->demographics;
	if (validate_demographics(
		&o->vc, "demographics", d, o->msg, sizeof(o->msg)) == -1)
		return CODE_INVALID;
	if ((rc = op_resolve(
		 o, "identifier", u->identifier, 1, &p, norm, NULL)) != CODE_OK)
		return rc;
	if (u->expected_version != 0 && u->expected_version != p.version)
		return op_fail(o, CODE_VERSION,
		    "expected_version: the record is at version %llu",
		    (unsigned long long)p.version);
	if (d == NULL)
		return op_reply_patient(o, &p);
	if ((rc = op_patient_cn_id(o, p.id, &has, cnid)) != CODE_OK)
		return rc;
	if (has) {
		struct validate_cn_id_info info;

		if (validate_cn_id(99991231, "cn-id", cnid, NULL, &info, o->msg,
			sizeof(o->msg)) == -1) {
			log_warnx(
			    "registry: stored cn-id of %s is invalid", p.id);
			return op_fail(
			    o, CODE_INTERNAL, "stored cn-id invalid");
		}
		if (validate_agrees_cn_id(
			"demographics", d, &info, o->msg, sizeof(o->msg)) == -1)
			return CODE_CONFLICT;
	}
	update_field(&p.name, d->name, "name", detail, &changed);
	if (d->sex != ONECARD__V1__SEX__SEX_UNKNOWN && (int)d->sex != p.sex) {
		size_t len = strlen(detail);

		p.sex = d->sex;
		snprintf(
		    detail + len, DETAIL_MAX - len, "%ssex", len ? "," : "");
		changed++;
	}
	update_field(
	    &p.birth_date, d->birth_date, "birth_date", detail, &changed);
	update_field(&p.phone, d->phone, "phone", detail, &changed);
	update_field(&p.address, d->address, "address", detail, &changed);
	if (changed == 0)
		return op_reply_patient(o, &p);
	if ((rc = op_patient_save(o, &p)) != CODE_OK ||
	    (rc = op_event(o, "update", p.id, detail)) != CODE_OK)
		return rc;
	return op_reply_patient(o, &p);
}

/* Merge: fold duplicate into survivor, remembering what moved. */
static int
op_merge(struct reg_op *o)
{
	struct registry *reg = o->reg;
	const Onecard__V1__Merge *m = o->req->merge;
	struct registry_patient s, d;
	struct ident_vec iv;
	char snorm[VALIDATE_MAX_VALUE + 1], dnorm[VALIDATE_MAX_VALUE + 1];
	char detail[DETAIL_MAX];
	int rc, s_has, d_has;
	int64_t merge_id;

	if ((rc = op_need_admin(o, "merge")) != CODE_OK)
		return rc;
	if (m == NULL)
		return op_fail(o, CODE_INVALID, "merge: missing");
	if ((rc = op_resolve(o, "duplicate", m->duplicate, 1, &d, dnorm,
		 NULL)) != CODE_OK ||
	    (rc = op_resolve(o, "survivor", m->survivor, 1, &s, snorm, NULL)) !=
		CODE_OK)
		return rc;
	if (strcmp(s.id, d.id) == 0)
		return op_fail(o, CODE_CONFLICT,
		    "duplicate: names the same patient as survivor");
	if ((rc = op_patient_cn_id(o, s.id, &s_has, NULL)) != CODE_OK ||
	    (rc = op_patient_cn_id(o, d.id, &d_has, NULL)) != CODE_OK)
		return rc;
	if (s_has && d_has)
		return op_fail(o, CODE_CONFLICT,
		    "duplicate: both patients hold a cn-id (two residents are "
		    "two people)");
	if ((rc = op_idents(o, d.id, &iv)) != CODE_OK)
		return rc;
	if ((rc = reg->be->merge_insert(reg->h, s.id, d.id, 0, &merge_id)) < 0)
		return op_backend(o, rc);
	for (size_t i = 0; i < iv.n; i++) {
		const char *dom = iv.v[i]->domain, *val = iv.v[i]->value;

		if ((rc = reg->be->merge_ident_insert(
			 reg->h, merge_id, dom, val)) < 0 ||
		    (rc = reg->be->ident_move(reg->h, dom, val, s.id)) < 0)
			return op_backend(o, rc);
	}
	snprintf(d.merged_into, sizeof(d.merged_into), "%s", s.id);
	if ((rc = op_patient_save(o, &d)) != CODE_OK ||
	    (rc = op_patient_save(o, &s)) != CODE_OK)
		return rc;
	snprintf(
	    detail, sizeof(detail), "duplicate=%s identifiers=%zu", d.id, iv.n);
	if ((rc = op_event(o, "merge", s.id, detail)) != CODE_OK)
		return rc;
	snprintf(detail, sizeof(detail), "survivor=%s", s.id);
	if ((rc = op_event(o, "merge", d.id, detail)) != CODE_OK)
		return rc;
	op_patient_id(o, s.id);
	return op_reply_patient(o, &s);
}

/* Unmerge: give a merged-away patient back what its merge moved. */
static int
op_unmerge(struct reg_op *o)
{
	struct registry *reg = o->reg;
	const Onecard__V1__Unmerge *u = o->req->unmerge;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	struct registry_patient d, s, live;
	struct ident_vec moved = {.a = &reg->arena};
	char norm[VALIDATE_MAX_VALUE + 1], survivor[REGISTRY_PID_MAX];
	char pid[REGISTRY_PID_MAX], detail[DETAIL_MAX];
	int64_t merge_id;
	size_t back = 0;
	int rc;

	if ((rc = op_need_admin(o, "unmerge")) != CODE_OK)
		return rc;
	if (u == NULL)
		return op_fail(o, CODE_INVALID, "unmerge: missing");
	id.domain = "pid";
	id.value = u->patient_id;
	if ((rc = op_resolve(o, "patient_id", &id, 0, &d, norm, NULL)) !=
	    CODE_OK)
		return rc;
	if (d.merged_into[0] == '\0')
		return op_fail(o, CODE_CONFLICT,
		    "patient_id: the patient is not merged away");
	rc = reg->be->merge_find(reg->h, d.id, &merge_id, survivor);
	if (rc < 0)
		return op_backend(o, rc);
	if (rc == 1) {
		log_warnx("registry: %s merged with no merge record", d.id);
		return op_fail(o, CODE_INTERNAL, "no merge record");
	}
	rc = reg->be->patient_get(reg->h, survivor, &reg->arena, &s);
	if (rc != 0)
		return rc < 0 ? op_backend(o, rc)
			      : op_fail(o, CODE_INTERNAL, "no survivor");
	live = s;
	if ((rc = op_follow(o, &live)) != CODE_OK)
		return rc;
	rc = reg->be->merge_idents(reg->h, merge_id, ident_vec_add, &moved);
	if (rc < 0)
		return op_backend(o, rc);
	/* Move back what is still with the survivor (or whom it merged into);
	 * what was unlinked since stays gone. */
	for (size_t i = 0; i < moved.n; i++) {
		const char *dom = moved.v[i]->domain, *val = moved.v[i]->value;

		rc = reg->be->ident_owner(reg->h, dom, val, pid);
		if (rc < 0)
			return op_backend(o, rc);
		if (rc == 1 ||
		    (strcmp(pid, s.id) != 0 && strcmp(pid, live.id) != 0))
			continue;
		if ((rc = reg->be->ident_move(reg->h, dom, val, d.id)) < 0)
			return op_backend(o, rc);
		back++;
	}
	if ((rc = reg->be->merge_undo(reg->h, merge_id)) < 0)
		return op_backend(o, rc);
	d.merged_into[0] = '\0';
	if ((rc = op_patient_save(o, &d)) != CODE_OK ||
	    (rc = op_patient_save(o, &live)) != CODE_OK)
		return rc;
	snprintf(detail, sizeof(detail), "survivor=%s identifiers=%zu", live.id,
	    back);
	if ((rc = op_event(o, "unmerge", d.id, detail)) != CODE_OK)
		return rc;
	snprintf(detail, sizeof(detail), "duplicate=%s", d.id);
	if ((rc = op_event(o, "unmerge", live.id, detail)) != CODE_OK)
		return rc;
	op_patient_id(o, d.id);
	return op_reply_patient(o, &d);
}

/* hospital_add: register (or reactivate) a hospital or admin by CN. */
static int
op_hospital_add(struct reg_op *o)
{
	struct registry *reg = o->reg;
	const Onecard__V1__HospitalAdd *ha = o->req->hospital_add;
	struct registry_hospital cur, want;
	char detail[DETAIL_MAX];
	int rc, existed;

	if ((rc = op_need_admin(o, "hospital_add")) != CODE_OK)
		return rc;
	if (ha == NULL)
		return op_fail(o, CODE_INVALID, "hospital_add: missing");
	if (validate_hospital_code(
		"code", ha->code ? ha->code : "", o->msg, sizeof(o->msg)) == -1)
		return CODE_INVALID;
	op_target(o, NULL, ha->code);
	if (validate_text("name", ha->name ? ha->name : "",
		REGISTRY_DEFAULT_MAX_NAME, o->msg, sizeof(o->msg)) == -1)
		return CODE_INVALID;
	if (ha->role != ONECARD__V1__ROLE__ROLE_HOSPITAL &&
	    ha->role != ONECARD__V1__ROLE__ROLE_ADMIN)
		return op_fail(
		    o, CODE_INVALID, "role: unknown value %d", (int)ha->role);
	want.code = ha->code;
	want.name = ha->name ? ha->name : "";
	want.role = ha->role;
	want.active = 1;
	rc = reg->be->hospital_get(reg->h, ha->code, &reg->arena, &cur);
	if (rc < 0)
		return op_backend(o, rc);
	existed = rc == 0;
	if (existed && cur.active && cur.role == want.role &&
	    strcmp(cur.name, want.name) == 0)
		return CODE_OK;
	if ((rc = reg->be->hospital_put(reg->h, &want, o->now_ms)) < 0)
		return op_backend(o, rc);
	snprintf(detail, sizeof(detail), "code=%s role=%s%s", ha->code,
	    want.role == ONECARD__V1__ROLE__ROLE_ADMIN ? "admin" : "hospital",
	    existed && !cur.active ? " reactivated" : "");
	return op_event(o, "hospital_add", "", detail);
}

/* hospital_revoke: mark a hospital revoked. */
static int
op_hospital_revoke(struct reg_op *o)
{
	struct registry *reg = o->reg;
	const Onecard__V1__HospitalRevoke *hr = o->req->hospital_revoke;
	struct registry_hospital cur;
	char detail[DETAIL_MAX];
	int rc;

	if ((rc = op_need_admin(o, "hospital_revoke")) != CODE_OK)
		return rc;
	if (hr == NULL)
		return op_fail(o, CODE_INVALID, "hospital_revoke: missing");
	if (validate_hospital_code(
		"code", hr->code ? hr->code : "", o->msg, sizeof(o->msg)) == -1)
		return CODE_INVALID;
	op_target(o, NULL, hr->code);
	rc = reg->be->hospital_get(reg->h, hr->code, &reg->arena, &cur);
	if (rc < 0)
		return op_backend(o, rc);
	if (rc == 1)
		return op_fail(
		    o, CODE_NOT_FOUND, "code: no hospital %s", hr->code);
	if (!cur.active)
		return CODE_OK;
	cur.active = 0;
	if ((rc = reg->be->hospital_put(reg->h, &cur, o->now_ms)) < 0)
		return op_backend(o, rc);
	snprintf(detail, sizeof(detail), "code=%s", hr->code);
	return op_event(o, "hospital_revoke", "", detail);
}

/* Lookup: the live patient an identifier names. */
static int
op_lookup(struct reg_op *o)
{
	const Onecard__V1__Lookup *l = o->req->lookup;
	struct registry_patient p;
	char norm[VALIDATE_MAX_VALUE + 1];
	int rc;

	if (l == NULL)
		return op_fail(o, CODE_INVALID, "lookup: missing");
	if ((rc = op_resolve(
		 o, "identifier", l->identifier, 1, &p, norm, NULL)) != CODE_OK)
		return rc;
	return op_reply_patient(o, &p);
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
 * Lookup by an identifier or pid in one statement and no explicit transaction:
 * the hot path. 1 when the general path must answer instead (a record
 * merged away: its survivor is another query); 0 with *code set
 * otherwise.
 */
static int
op_lookup_fast(struct reg_op *o, int *code)
{
	struct registry *reg = o->reg;
	const Onecard__V1__Lookup *l = o->req->lookup;
	struct ident_vec iv = {.a = &reg->arena};
	struct registry_patient p;
	Onecard__V1__Patient *m;
	char norm[VALIDATE_MAX_VALUE + 1];
	int k, rc;

	if (l == NULL)
		return 1;
	k = validate_identifier(&o->vc, "identifier", l->identifier, norm,
	    sizeof(norm), NULL, o->msg, sizeof(o->msg));
	if (k < 0) {
		*code = CODE_INVALID;
		return 0;
	}
	op_target(o, l->identifier->domain, norm);
	if (k == VALIDATE_PID)
		rc = reg->be->patient_record(
		    reg->h, norm, &reg->arena, &p, ident_vec_add, &iv);
	else
		rc = reg->be->ident_record(reg->h, l->identifier->domain, norm,
		    &reg->arena, &p, ident_vec_add, &iv);
	if (rc < 0) {
		*code = op_backend(o, rc);
		return 0;
	}
	if (rc == 1) {
		*code = op_fail(o, CODE_NOT_FOUND, "identifier: %s",
		    k == VALIDATE_PID ? "no such patient"
				      : "no patient holds this identifier");
		return 0;
	}
	if (p.merged_into[0] != '\0')
		return 1;
	op_patient_id(o, p.id);
	if ((*code = op_patient_build(o, &p, &iv, &m)) == CODE_OK) {
		o->reply.result_case = ONECARD__V1__REPLY__RESULT_PATIENT;
		o->reply.patient = m;
		o->keylen = lookup_key(l->identifier->domain, norm, o->key);
		o->cacheable = o->keylen > 0;
	}
	return 0;
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

/* Search: live patients by exact name, birth date and sex. */
static int
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
static int
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
static int
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

/* Collect hospitals (a backend callback). */
static int
hospital_add_cb(void *arg, const struct registry_hospital *h)
{
	struct reg_op *o = arg;
	struct registry_arena *a = &o->reg->arena;
	Onecard__V1__HospitalListResult *hl = o->reply.hospitals;
	Onecard__V1__Hospital *m, **v;

	if ((hl->n_hospitals & (hl->n_hospitals - 1)) == 0) {
		/* Grow at 0, 1, 2, 4, ...: double the array. */
		size_t cap = hl->n_hospitals ? hl->n_hospitals * 2 : 1;

		if ((v = arena_alloc(a, cap * sizeof(*v))) == NULL)
			return -1;
		if (hl->n_hospitals)
			memcpy(v, hl->hospitals, hl->n_hospitals * sizeof(*v));
		hl->hospitals = v;
	}
	if ((m = arena_alloc(a, sizeof(*m))) == NULL)
		return -1;
	onecard__v1__hospital__init(m);
	if ((m->code = arena_strdup(a, h->code)) == NULL ||
	    (m->name = arena_strdup(a, h->name)) == NULL)
		return -1;
	m->role = h->role;
	m->active = h->active;
	hl->hospitals[hl->n_hospitals++] = m;
	return 0;
}

/* hospital_list: every hospital, active or revoked (admin). */
static int
op_hospital_list(struct reg_op *o)
{
	Onecard__V1__HospitalListResult *hl;
	int rc;

	if ((rc = op_need_admin(o, "hospital_list")) != CODE_OK)
		return rc;
	if ((hl = arena_alloc(&o->reg->arena, sizeof(*hl))) == NULL)
		return op_nomem(o);
	onecard__v1__hospital_list_result__init(hl);
	o->reply.result_case = ONECARD__V1__REPLY__RESULT_HOSPITALS;
	o->reply.hospitals = hl;
	rc = o->reg->be->hospital_list(o->reg->h, hospital_add_cb, o);
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
static int
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
static int
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
	case ONECARD__V1__REQUEST__OP__NOT_SET:
		return op_fail(o, CODE_INVALID, "op: missing");
	default:
		return op_fail(o, CODE_UNIMPL, "%s: not served by the registry",
		    wire_op_name(o->req->op_case));
	}
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

/* Today (YYYYMMDD in China), worked out again when the second changes. */
static int
registry_today(struct registry *reg)
{
	time_t now = time(NULL);

	if (now != reg->today_at) {
		reg->today = validate_today();
		reg->today_at = now;
	}
	return reg->today;
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
 * A lookup answered from this worker's cache: 0 when it was (reply appended,
 * res filled as the registry would), 1 when the registry must answer it (a
 * miss, or input the full path must refuse with its own message).
 */
static int
registry_lookup_cached(struct registry *reg, struct lcache *lc,
    const Onecard__V1__Request *req, struct evbuffer *out,
    struct op_result *res)
{
	const Onecard__V1__Lookup *l = req->lookup;
	struct validate_ctx vc = {
	    registry_today(reg), reg->lim.max_name, reg->lim.max_address};
	const struct lcache_hit *hit;
	char norm[VALIDATE_MAX_VALUE + 1], err[REGISTRY_MSGLEN];
	char key[VALIDATE_MAX_DOMAIN + 1 + VALIDATE_MAX_VALUE + 1];
	size_t keylen;

	if (l == NULL || l->identifier == NULL ||
	    validate_identifier(&vc, "identifier", l->identifier, norm,
		sizeof(norm), NULL, err, sizeof(err)) < 0 ||
	    (keylen = lookup_key(l->identifier->domain, norm, key)) == 0)
		return 1;
	lcache_sync(lc);
	if ((hit = lcache_get(lc, key, keylen)) == NULL ||
	    registry_append_cached(out, req->id, hit->reply, hit->reply_len) ==
		-1)
		return 1;
	memset(res, 0, sizeof(*res));
	res->code = CODE_OK;
	registry_copy(res->patient_id, hit->pid, sizeof(res->patient_id));
	registry_ident_text(
	    l->identifier->domain, norm, res->target, sizeof(res->target));
	return 0;
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

/* Keep the reply of a lookup just answered in one step. */
static void
registry_cache_fill(struct reg_op *o, struct lcache *lc)
{
	Onecard__V1__Reply r = o->reply;
	uint8_t stackbuf[2048], *buf = stackbuf;
	size_t len;

	r.id = 0;
	r.code = CODE_OK;
	len = protobuf_c_message_get_packed_size(&r.base);
	if (len > sizeof(stackbuf) && (buf = malloc(len)) == NULL)
		return;
	protobuf_c_message_pack(&r.base, buf);
	(void)lcache_put(lc, o->key, o->keylen, o->res->patient_id, buf, len);
	if (buf != stackbuf)
		free(buf);
}

/* Set up an operation. */
static void
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
static void
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
registry_read(struct registry *reg, const struct actor *who,
    const Onecard__V1__Request *req, struct evbuffer *out,
    struct op_result *res)
{
	struct reg_op o;
	struct lcache *lc = NULL;
	int code, rc, own_txn = !reg->in_batch;

	if (req->op_case == ONECARD__V1__REQUEST__OP_LOOKUP &&
	    (lc = registry_cache(reg)) != NULL &&
	    registry_lookup_cached(reg, lc, req, out, res) == 0)
		return;
	op_init(&o, reg, who, req, res);
	if (registry_op_is_write(req->op_case)) {
		log_warnx("registry: %s sent to the read path",
		    wire_op_name(req->op_case));
		code = op_fail(&o, CODE_INTERNAL, "write on the read path");
		goto done;
	}
	if (req->op_case == ONECARD__V1__REQUEST__OP_LOOKUP &&
	    op_lookup_fast(&o, &code) == 0) {
		if (lc != NULL && o.cacheable && code == CODE_OK)
			registry_cache_fill(&o, lc);
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

void
registry_write(struct registry *reg, const struct actor *who,
    const Onecard__V1__Request *req, struct evbuffer *out,
    struct op_result *res)
{
	struct reg_op o;
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
	if ((rc = reg->be->savepoint(reg->h)) < 0) {
		code = op_backend(&o, rc);
		goto end;
	}
	code = op_dispatch(&o);
	if (code == CODE_OK)
		rc = reg->be->release(reg->h);
	else
		rc = reg->be->rollback_to(reg->h);
	if (rc < 0) {
		reg->broken = 1;
		code = op_backend(&o, rc);
	}
end:
	if (own_txn) {
		if (code == CODE_OK && reg->be->commit(reg->h) < 0) {
			reg->be->rollback(reg->h);
			code = op_fail(&o, CODE_UNAVAIL,
			    "the write could not be made durable; retry");
		} else if (code != CODE_OK)
			reg->be->rollback(reg->h);
		reg->broken = 0;
		registry_publish(reg);
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
	 * failed batch changed nothing; dropping its entries is harmless. */
	registry_publish(reg);
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
	reg->ntouched = 0;
	reg->touched_all = 0;
}
