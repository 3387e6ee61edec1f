/*
 * policy.c: the disclosure policy (policy.h). It owns the rules in force --
 * immutable snapshots published with one atomic store, so a SIGHUP never
 * stops a worker -- and the filter every door runs for a caller whose rule
 * is not full. It never decides who may ask (conn.c, the registry) and never
 * changes what is stored: it only leaves out or masks what is sent.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "policy.h"
#include "registry.h"
#include "validate.h"
#include "wire.h"

/* A policy in force, and the ones it replaced (freed at exit: a worker may
 * still be reading one; reloads are rare, so they are few). */
struct policy_snapshot {
	unsigned gen;
	struct policy_rule dflt;
	struct policy_hospital *v; /* by code */
	size_t n;
	struct policy_snapshot *older;
};

static _Atomic(struct policy_snapshot *) policy_current;
static atomic_uint policy_gen = 1;

void
policy_config_init(struct policy_config *pc)
{
	memset(pc, 0, sizeof(*pc));
	pc->dflt.ids = POLICY_IDS_FULL;
	pc->dflt.cn_id = POLICY_CNID_FULL;
}

void
policy_config_free(struct policy_config *pc)
{
	free(pc->v);
	pc->v = NULL;
	pc->n = pc->cap = 0;
}

/* The entry of code in pc, made when absent; NULL when out of memory. */
static struct policy_hospital *
policy_config_entry(struct policy_config *pc, const char *code)
{
	struct policy_hospital *v;

	for (size_t i = 0; i < pc->n; i++)
		if (strcmp(pc->v[i].code, code) == 0)
			return &pc->v[i];
	if (pc->n == pc->cap) {
		size_t cap = pc->cap ? pc->cap * 2 : 8;

		if ((v = realloc(pc->v, cap * sizeof(*v))) == NULL)
			return NULL;
		pc->v = v;
		pc->cap = cap;
	}
	v = &pc->v[pc->n++];
	memset(v, 0, sizeof(*v));
	snprintf(v->code, sizeof(v->code), "%s", code);
	v->rule.ids = v->rule.cn_id = -1;
	return v;
}

int
policy_config_set(struct policy_config *pc, const char *code, const char *key,
    const char *value, char *err, size_t errlen)
{
	struct policy_rule *r = &pc->dflt;
	struct policy_hospital *h;
	char name[80];
	int ids = strcmp(key, "disclosure") == 0;

	if (code != NULL)
		snprintf(name, sizeof(name), "hospital.%s.%s", code, key);
	else
		snprintf(name, sizeof(name), "--%s", key);
	if (!ids && strcmp(key, "disclosure-cn-id") != 0) {
		snprintf(err, errlen, "%s: not a disclosure key", name);
		return -1;
	}
	if (ids && strcasecmp(value, "full") != 0 &&
	    strcasecmp(value, "minimal") != 0) {
		snprintf(err, errlen,
		    "%s: '%s' is neither full (every identifier) nor minimal "
		    "(other hospitals' numbers only when the request names "
		    "their domain)",
		    name, value);
		return -1;
	}
	if (!ids && strcasecmp(value, "full") != 0 &&
	    strcasecmp(value, "masked") != 0) {
		snprintf(err, errlen,
		    "%s: '%s' is neither full nor masked (a cn-id shown as "
		    "410102********123X)",
		    name, value);
		return -1;
	}
	if (code != NULL) {
		if ((h = policy_config_entry(pc, code)) == NULL) {
			snprintf(err, errlen, "%s: out of memory", name);
			return -1;
		}
		r = &h->rule;
	}
	if (ids)
		r->ids = strcasecmp(value, "minimal") == 0 ? POLICY_IDS_MINIMAL
							   : POLICY_IDS_FULL;
	else
		r->cn_id = strcasecmp(value, "masked") == 0 ? POLICY_CNID_MASKED
							    : POLICY_CNID_FULL;
	return 0;
}

static int
policy_hospital_cmp(const void *a, const void *b)
{
	const struct policy_hospital *x = a, *y = b;

	return strcmp(x->code, y->code);
}

int
policy_apply(const struct policy_config *pc)
{
	struct policy_snapshot *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -1;
	if (pc->n > 0 && (s->v = calloc(pc->n, sizeof(*s->v))) == NULL) {
		free(s);
		return -1;
	}
	if (pc->n > 0) {
		memcpy(s->v, pc->v, pc->n * sizeof(*s->v));
		qsort(s->v, pc->n, sizeof(*s->v), policy_hospital_cmp);
	}
	s->n = pc->n;
	s->dflt = pc->dflt;
	s->gen = atomic_load(&policy_gen) + 1;
	s->older = atomic_load(&policy_current);
	atomic_store(&policy_current, s);
	/* After the snapshot: whoever sees the new generation sees it. */
	atomic_store(&policy_gen, s->gen);
	return 0;
}

void
policy_free(void)
{
	struct policy_snapshot *s = atomic_exchange(&policy_current, NULL);

	while (s != NULL) {
		struct policy_snapshot *older = s->older;

		free(s->v);
		free(s);
		s = older;
	}
}

void
policy_resolve(struct policy_who *w, const char *cn, int role)
{
	unsigned gen = atomic_load(&policy_gen);
	struct policy_snapshot *s = atomic_load(&policy_current);
	const struct policy_hospital *h = NULL;
	struct policy_hospital key;

	w->cn = cn;
	w->role = role;
	w->gen = gen;
	w->rule.ids = POLICY_IDS_FULL;
	w->rule.cn_id = POLICY_CNID_FULL;
	/* Administrators see every record as it is stored. */
	if (s == NULL || role == ONECARD__V1__ROLE__ROLE_ADMIN)
		return;
	w->rule = s->dflt;
	/* A CN longer than any code is no hospital's: the default. */
	if (strlen(cn) >= sizeof(key.code))
		return;
	snprintf(key.code, sizeof(key.code), "%s", cn);
	if (s->n > 0)
		h = bsearch(
		    &key, s->v, s->n, sizeof(*s->v), policy_hospital_cmp);
	if (h == NULL)
		return;
	if (h->rule.ids >= 0)
		w->rule.ids = h->rule.ids;
	if (h->rule.cn_id >= 0)
		w->rule.cn_id = h->rule.cn_id;
}

void
policy_refresh(struct policy_who *w)
{
	if (atomic_load_explicit(&policy_gen, memory_order_acquire) != w->gen)
		policy_resolve(w, w->cn, w->role);
}

/* A domain's syntax: cn-id, cn-ssc, pid, or hosp:CODE. */
static int
policy_domain_ok(const char *d)
{
	char err[8];

	if (strcmp(d, "cn-id") == 0 || strcmp(d, "cn-ssc") == 0 ||
	    strcmp(d, "pid") == 0)
		return 1;
	return strncmp(d, "hosp:", 5) == 0 &&
	    validate_hospital_code("", d + 5, err, sizeof(err)) == 0;
}

int
policy_check_targets(
    const Onecard__V1__Lookup *l, size_t max, char *err, size_t errlen)
{
	if (l->n_target_domains > max) {
		snprintf(err, errlen,
		    "target_domains: %zu domains, at most %zu (--max-ids)",
		    l->n_target_domains, max);
		return -1;
	}
	for (size_t i = 0; i < l->n_target_domains; i++) {
		const char *d = l->target_domains[i];

		if (d == NULL || !policy_domain_ok(d)) {
			snprintf(err, errlen,
			    "target_domains[%zu]: '%.64s' is not a domain "
			    "(cn-id, cn-ssc, pid or hosp:CODE)",
			    i, d ? d : "");
			return -1;
		}
	}
	return 0;
}

enum policy_show
policy_identifier(const struct policy_who *w, const char *domain,
    char *const *targets, size_t n)
{
	if (strcmp(domain, "cn-id") == 0)
		return w->rule.cn_id == POLICY_CNID_MASKED ? POLICY_MASK
							   : POLICY_SHOW;
	if (w->rule.ids == POLICY_IDS_FULL || strncmp(domain, "hosp:", 5) != 0)
		return POLICY_SHOW;
	/* Minimal: its own numbers, and the other hospitals' it named. */
	if (strcmp(domain + 5, w->cn) == 0)
		return POLICY_SHOW;
	for (size_t i = 0; i < n; i++)
		if (targets[i] != NULL && strcmp(targets[i], domain) == 0)
			return POLICY_SHOW;
	return POLICY_HIDE;
}

/* Mask a cn-id in its own string (the audit trail's mask keeps the
 * length). 1 if it changed. */
static int
policy_mask_in_place(char *value)
{
	char masked[VALIDATE_MAX_VALUE + 1];
	size_t len = strlen(value);

	if (len > VALIDATE_MAX_VALUE) {
		memset(value, '*', len);
		return 1;
	}
	registry_mask_id("cn-id", value, masked, sizeof(masked));
	if (strcmp(masked, value) == 0)
		return 0;
	memcpy(value, masked, len);
	return 1;
}

size_t
policy_filter_patient(const struct policy_who *w, char *const *targets,
    size_t n, Onecard__V1__Patient *p)
{
	size_t kept = 0, changed = 0;

	if (p == NULL)
		return 0;
	for (size_t i = 0; i < p->n_identifiers; i++) {
		Onecard__V1__Identifier *id = p->identifiers[i];

		switch (policy_identifier(
		    w, id->domain ? id->domain : "", targets, n)) {
		case POLICY_HIDE:
			changed++;
			continue;
		case POLICY_MASK:
			if (id->value != NULL)
				changed +=
				    (size_t)policy_mask_in_place(id->value);
			break;
		case POLICY_SHOW:
			break;
		}
		p->identifiers[kept++] = id;
	}
	p->n_identifiers = kept;
	return changed;
}

/*
 * An event's detail lists identifiers as "domain=value,..." (a cn-id
 * already masked): take out those w may not see. 1 if it changed.
 */
static int
policy_filter_detail(const struct policy_who *w, char *detail)
{
	char *src = detail, *dst = detail;
	int changed = 0;

	if (detail == NULL || w->rule.ids == POLICY_IDS_FULL ||
	    strstr(detail, "hosp:") == NULL)
		return 0;
	while (*src != '\0') {
		char *end = strchr(src, ',');
		size_t len = end ? (size_t)(end - src) : strlen(src);
		char domain[VALIDATE_MAX_DOMAIN + 1];
		const char *eq = memchr(src, '=', len);
		int keep = 1;

		if (eq != NULL && strncmp(src, "hosp:", 5) == 0 &&
		    (size_t)(eq - src) <= VALIDATE_MAX_DOMAIN) {
			memcpy(domain, src, (size_t)(eq - src));
			domain[eq - src] = '\0';
			keep = policy_identifier(w, domain, NULL, 0) !=
			    POLICY_HIDE;
		}
		if (keep) {
			if (dst != detail)
				*dst++ = ',';
			memmove(dst, src, len);
			dst += len;
		} else
			changed = 1;
		src += len;
		if (*src == ',')
			src++;
	}
	*dst = '\0';
	return changed;
}

/* Every Patient a reply carries, and a pushed event's detail, filtered. */
static size_t
policy_filter_reply(const struct policy_who *w, char *const *targets, size_t n,
    Onecard__V1__Reply *r)
{
	size_t changed = 0;

	switch (r->result_case) {
	case ONECARD__V1__REPLY__RESULT_PATIENT:
		changed += policy_filter_patient(w, targets, n, r->patient);
		break;
	case ONECARD__V1__REPLY__RESULT_ENROLLED:
		/* possible_duplicates carry patient ids only. */
		if (r->enrolled != NULL)
			changed += policy_filter_patient(
			    w, targets, n, r->enrolled->patient);
		break;
	case ONECARD__V1__REPLY__RESULT_SEARCH:
		if (r->search == NULL)
			break;
		for (size_t i = 0; i < r->search->n_patients; i++)
			changed += policy_filter_patient(
			    w, targets, n, r->search->patients[i]);
		for (size_t i = 0; i < r->search->n_matches; i++)
			changed += policy_filter_patient(
			    w, targets, n, r->search->matches[i]->patient);
		break;
	case ONECARD__V1__REPLY__RESULT_EVENT:
		if (r->event == NULL)
			break;
		changed +=
		    policy_filter_patient(w, targets, n, r->event->patient);
		changed += (size_t)policy_filter_detail(w, r->event->detail);
		break;
	case ONECARD__V1__REPLY__RESULT_DUPLICATES:
		if (r->duplicates == NULL)
			break;
		for (size_t i = 0; i < r->duplicates->n_pairs; i++) {
			changed += policy_filter_patient(
			    w, targets, n, r->duplicates->pairs[i]->a);
			changed += policy_filter_patient(
			    w, targets, n, r->duplicates->pairs[i]->b);
		}
		break;
	default:
		break;
	}
	return changed;
}

/*
 * The memory a frame is decoded into: a bump allocator over a buffer on the
 * caller's stack, with heap chunks only past it (a long search result), all
 * dropped at once. Free is a no-op: nothing decoded here is freed alone.
 */
#define POLICY_STACK_ARENA 16384

struct policy_chunk {
	struct policy_chunk *next;
	size_t used, cap;
	max_align_t data[];
};

struct policy_arena {
	uint8_t *buf;
	size_t used, cap;
	struct policy_chunk *chunks;
};

static void *
policy_arena_alloc(void *arg, size_t size)
{
	struct policy_arena *a = arg;
	size_t need = (size + 15) & ~(size_t)15;
	struct policy_chunk *c = a->chunks;
	void *p;

	if (need < size)
		return NULL;
	if (a->cap - a->used >= need) {
		p = a->buf + a->used;
		a->used += need;
		return p;
	}
	if (c == NULL || c->cap - c->used < need) {
		size_t cap = need > 65536 ? need : 65536;

		if ((c = malloc(sizeof(*c) + cap)) == NULL)
			return NULL;
		c->cap = cap;
		c->used = 0;
		c->next = a->chunks;
		a->chunks = c;
	}
	p = (uint8_t *)c->data + c->used;
	c->used += need;
	return p;
}

static void
policy_arena_free(void *arg, void *p)
{
	(void)arg;
	(void)p;
}

/* Drop what was decoded; the stack buffer is reused. */
static void
policy_arena_reset(struct policy_arena *a)
{
	while (a->chunks != NULL) {
		struct policy_chunk *next = a->chunks->next;

		free(a->chunks);
		a->chunks = next;
	}
	a->used = 0;
}

/* The id of a Reply body (its field 1 comes first), or 0. */
static uint64_t
policy_frame_id(const uint8_t *body, size_t len)
{
	const uint8_t *p = body;
	uint64_t key, id;

	if (wire_varint(&p, body + len, &key) == -1 || key != (1 << 3 | 0) ||
	    wire_varint(&p, body + len, &id) == -1)
		return 0;
	return id;
}

/* wire_varint with the one-byte case (tags, short lengths) inline. */
static inline int
policy_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	if (*p < end && **p < 0x80) {
		*v = *(*p)++;
		return 0;
	}
	return wire_varint(p, end, v);
}

/*
 * The cheap way first: a Reply{patient} (a lookup's or a write's answer)
 * whose every identifier w sees as stored needs no change, and its bytes
 * tell so without decoding. 1 when they do; 0 when something must change,
 * or the reply is of another shape (then it is decoded).
 */
static int
policy_frame_clean(const struct policy_who *w, char *const *targets, size_t n,
    const uint8_t *p, size_t len)
{
	const uint8_t *end = p + len, *pat = NULL, *pend = NULL;
	uint64_t key, v;

	while (p < end) {
		if (policy_varint(&p, end, &key) == -1)
			return 0;
		if ((key & 7) == 0) {
			if (policy_varint(&p, end, &v) == -1)
				return 0;
			continue;
		}
		if ((key & 7) != 2 || policy_varint(&p, end, &v) == -1 ||
		    v > (uint64_t)(end - p))
			return 0;
		if ((key >> 3) == ONECARD__V1__REPLY__RESULT_PATIENT) {
			pat = p;
			pend = p + v;
		} else if ((key >> 3) != 3) /* message; anything else: decode */
			return 0;
		p += v;
	}
	if (pat == NULL)
		return 0;
	/* Patient: identifiers (3), each Identifier{domain (1), value}. */
	while (pat < pend) {
		char domain[VALIDATE_MAX_DOMAIN + 1];
		const uint8_t *id, *idend;

		if (policy_varint(&pat, pend, &key) == -1)
			return 0;
		if ((key & 7) == 0) {
			if (policy_varint(&pat, pend, &v) == -1)
				return 0;
			continue;
		}
		if ((key & 7) != 2 || policy_varint(&pat, pend, &v) == -1 ||
		    v > (uint64_t)(pend - pat))
			return 0;
		id = pat;
		idend = pat + v;
		pat += v;
		if ((key >> 3) != 3)
			continue;
		if (policy_varint(&id, idend, &key) == -1 ||
		    key != (1 << 3 | 2) ||
		    policy_varint(&id, idend, &v) == -1 ||
		    v > (uint64_t)(idend - id) || v > VALIDATE_MAX_DOMAIN)
			return 0;
		memcpy(domain, id, (size_t)v);
		domain[v] = '\0';
		if (policy_identifier(w, domain, targets, n) != POLICY_SHOW)
			return 0;
	}
	return 1;
}

/* Filter one frame of `in` (its body len bytes after the header) into
 * out, and drain it from `in`. 0 or -1 (then the frame is answered
 * INTERNAL, with its id, if that can be sent: never unfiltered). */
static int
policy_filter_frame(const struct policy_who *w, char *const *targets, size_t n,
    struct evbuffer *in, size_t len, struct evbuffer *out)
{
	uint8_t stack[POLICY_STACK_ARENA];
	struct policy_arena a = {.buf = stack, .cap = sizeof(stack)};
	ProtobufCAllocator alloc = {policy_arena_alloc, policy_arena_free, &a};
	Onecard__V1__Reply *r = NULL;
	struct evbuffer_iovec v;
	const uint8_t *frame;
	uint64_t id = 0;
	size_t size, whole = WIRE_HEADER_LEN + len;
	int rc = -1;

	/* Copied, not moved: a reply is small, and joining the output's last
	 * chain keeps a batch of them one TLS record (as conn.c does). */
	if ((frame = evbuffer_pullup(in, (ssize_t)whole)) != NULL &&
	    policy_frame_clean(w, targets, n, frame + WIRE_HEADER_LEN, len) &&
	    evbuffer_add(out, frame, whole) == 0) {
		evbuffer_drain(in, whole);
		return 0;
	}
	if (frame != NULL) {
		id = policy_frame_id(frame + WIRE_HEADER_LEN, len);
		r = onecard__v1__reply__unpack(
		    &alloc, len, frame + WIRE_HEADER_LEN);
	}
	if (r != NULL && policy_filter_reply(w, targets, n, r) == 0) {
		/* Nothing to leave out: the bytes go as they are. */
		policy_arena_reset(&a);
		if (evbuffer_add(out, frame, whole) == 0) {
			evbuffer_drain(in, whole);
			return 0;
		}
		r = NULL;
	} else if (r != NULL) {
		size = wire_frame_size(&r->base);
		if (evbuffer_reserve_space(out, (ssize_t)size, &v, 1) == 1 &&
		    v.iov_len >= size) {
			v.iov_len = wire_encode(&r->base, v.iov_base, size);
			if (evbuffer_commit_space(out, &v, 1) == 0 &&
			    v.iov_len == size)
				rc = 0;
		}
	}
	if (rc == -1)
		(void)wire_append_error(out, id, ONECARD__V1__CODE__INTERNAL,
		    "broker out of memory");
	policy_arena_reset(&a);
	evbuffer_drain(in, whole);
	return rc;
}

int
policy_filter_frames(const struct policy_who *w, char *const *targets, size_t n,
    struct evbuffer *in, struct evbuffer *out)
{
	size_t len;
	int rc = 0;

	while (wire_peek_evbuffer(in, SIZE_MAX, &len) == WIRE_FRAME)
		if (policy_filter_frame(w, targets, n, in, len, out) == -1)
			rc = -1;
	/* Never a part frame: whoever filled `in` wrote whole frames. */
	evbuffer_drain(in, evbuffer_get_length(in));
	return rc;
}

int
policy_filter_named(const struct policy_who *w, char *const *targets, size_t n,
    const char *presented, struct evbuffer *in, struct evbuffer *out)
{
	char *stack[17], **tv = stack;
	int rc;

	if (presented == NULL)
		return policy_filter_frames(w, targets, n, in, out);
	if (n + 1 > sizeof(stack) / sizeof(stack[0]) &&
	    (tv = malloc((n + 1) * sizeof(*tv))) == NULL)
		return policy_filter_frames(w, targets, n, in, out);
	if (n > 0)
		memcpy(tv, targets, n * sizeof(*tv));
	tv[n] = (char *)presented;
	rc = policy_filter_frames(w, tv, n + 1, in, out);
	if (tv != stack)
		free(tv);
	return rc;
}
