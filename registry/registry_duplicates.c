/*
 * registry_duplicates.c: the steward's worklist: pairs of live patients
 * that match MATCH_PROBABLE or better, stored as they are found (by an
 * enroll, or by a scan of the whole registry page by page), listed best
 * first, shown side by side, dismissed or merged. A pair is stored once,
 * (a, b) in patient id order; a pair that is there already is kept as it
 * is, so a dismissed pair is never proposed again. Every op here is for
 * admins and runs on the writer (the pairs are the writer's).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "match.h"
#include "registry_int.h"

#define SCAN_DEFAULT_LIMIT 200
#define SCAN_MAX_LIMIT     5000
#define SCAN_HITS          5 /* pairs noted per patient scanned */
#define LIST_DEFAULT_LIMIT 50
#define LIST_MAX_LIMIT     1000

/*
 * Note that patients x and y match (hit's score, grade and reason): a new
 * open pair, unless the pair is known (then it stays as it is). *added
 * counts new pairs. A code.
 */
int
op_pair_note(struct reg_op *o, const char *x, const struct op_match *hit,
    unsigned *added)
{
	struct registry *reg = o->reg;
	struct registry_pair pr, old;
	const char *y = hit->p.id;
	int rc;

	if (reg->be->pair_find == NULL || strcmp(x, y) == 0)
		return CODE_OK;
	memset(&pr, 0, sizeof(pr));
	registry_copy(pr.a, strcmp(x, y) < 0 ? x : y, sizeof(pr.a));
	registry_copy(pr.b, strcmp(x, y) < 0 ? y : x, sizeof(pr.b));
	if ((rc = reg->be->pair_find(reg->h, pr.a, pr.b, &reg->arena, &old)) <
	    0)
		return op_backend(o, rc);
	if (rc == 0)
		return CODE_OK;
	pr.score = hit->score;
	pr.grade = hit->grade;
	pr.reason = hit->reason;
	pr.state = PAIR_OPEN;
	pr.found_ms = o->now_ms;
	if ((rc = reg->be->pair_insert(reg->h, &pr)) != 0)
		return op_backend(o, rc);
	if (added != NULL)
		(*added)++;
	return CODE_OK;
}

/* The worklist's ops need the writer's pair calls and an admin. */
static int
dup_check(struct reg_op *o, const void *msg, const char *what)
{
	int rc;

	if ((rc = op_need_admin(o, what)) != CODE_OK)
		return rc;
	if (msg == NULL)
		return op_fail(o, CODE_INVALID, "%s: missing", what);
	if (o->reg->be->pair_find == NULL || o->reg->be->pair_list == NULL)
		return op_fail(
		    o, CODE_UNIMPL, "%s: this store keeps no worklist", what);
	return CODE_OK;
}

/* Find the pairs of one live patient and note them. */
static int
scan_one(struct reg_op *o, const char *pid, unsigned *added)
{
	struct registry *reg = o->reg;
	struct registry_patient p;
	struct op_match_query mq;
	struct op_match *hits;
	char cnid[VALIDATE_CN_ID_LEN + 1] = "";
	size_t nhits;
	int rc, has;

	if ((rc = reg->be->patient_get(reg->h, pid, &reg->arena, &p)) != 0)
		return rc < 0 ? op_backend(o, rc) : CODE_OK;
	if (p.merged_into[0] != '\0')
		return CODE_OK;
	if ((rc = op_patient_cn_id(o, pid, &has, cnid)) != CODE_OK)
		return rc;
	mq = (struct op_match_query){
	    p.name, p.birth_date, p.phone, p.address, cnid, p.sex};
	if ((rc = op_match(o, &mq, MATCH_GRADE_PROBABLE, 0, pid, SCAN_HITS,
		 &hits, &nhits)) != CODE_OK)
		return rc;
	for (size_t i = 0; i < nhits; i++)
		if ((rc = op_pair_note(o, pid, &hits[i], added)) != CODE_OK)
			return rc;
	return CODE_OK;
}

/* Collect a page of patient ids in malloc'd memory (a pid callback): the
 * arena is reset between patients. */
struct scan_page {
	char (*v)[REGISTRY_PID_MAX];
	size_t n, cap;
};

static int
scan_page_add(void *arg, const char *pid)
{
	struct scan_page *pg = arg;

	if (pg->n == pg->cap)
		return -1;
	registry_copy(pg->v[pg->n++], pid, REGISTRY_PID_MAX);
	return 0;
}

/* DuplicateScan: one page of the whole-registry scan. */
int
op_duplicate_scan(struct reg_op *o)
{
	struct registry *reg = o->reg;
	const Onecard__V1__DuplicateScan *s = o->req->duplicate_scan;
	Onecard__V1__DuplicateScanResult *sr = NULL;
	struct registry_counts c;
	struct scan_page pg = {0};
	unsigned limit, added = 0;
	int rc;

	if ((rc = dup_check(o, s, "duplicate_scan")) != CODE_OK)
		return rc;
	limit = s->limit ? s->limit : SCAN_DEFAULT_LIMIT;
	if (limit > SCAN_MAX_LIMIT)
		limit = SCAN_MAX_LIMIT;
	/* A whole scan starts by learning the model again from today's
	 * registry: its pairs are graded with what the registry is now. A
	 * store that keeps no model (PostgreSQL, so far) grades with the
	 * defaults. */
	if ((s->after_patient_id == NULL || s->after_patient_id[0] == '\0') &&
	    reg->be->model_set != NULL && registry_match_learn(reg, NULL) == -1)
		return op_fail(o, CODE_INTERNAL,
		    "duplicate_scan: cannot learn the match model");
	if ((pg.v = malloc(limit * sizeof(*pg.v))) == NULL)
		return op_nomem(o);
	pg.cap = limit;
	rc = reg->be->patient_page(reg->h,
	    s->after_patient_id ? s->after_patient_id : "", limit,
	    scan_page_add, &pg);
	if (rc < 0) {
		free(pg.v);
		return op_backend(o, rc);
	}
	for (size_t i = 0; i < pg.n; i++) {
		arena_reset(&reg->arena);
		if ((rc = scan_one(o, pg.v[i], &added)) != CODE_OK) {
			free(pg.v);
			return rc;
		}
	}
	arena_reset(&reg->arena);
	rc = reg->be->counts(reg->h, &c, NULL, NULL);
	if (rc == 0 && (sr = arena_alloc(&reg->arena, sizeof(*sr))) != NULL) {
		onecard__v1__duplicate_scan_result__init(sr);
		sr->next_patient_id = arena_strdup(
		    &reg->arena, pg.n == limit ? pg.v[pg.n - 1] : "");
	}
	free(pg.v);
	if (rc != 0)
		return op_backend(o, rc);
	if (sr == NULL || sr->next_patient_id == NULL)
		return op_nomem(o);
	sr->scanned = (uint32_t)pg.n;
	sr->found = added;
	sr->patients = c.patients;
	snprintf(o->res->detail, sizeof(o->res->detail), "scanned=%zu found=%u",
	    pg.n, added);
	o->reply.result_case = ONECARD__V1__REPLY__RESULT_DUPLICATE_SCAN;
	o->reply.duplicate_scan = sr;
	return CODE_OK;
}

/* Build a DuplicatePair of pr; full: both records, compared again now. */
static int
dup_pair_msg(struct reg_op *o, const struct registry_pair *pr, int full,
    Onecard__V1__DuplicatePair **out)
{
	struct registry *reg = o->reg;
	Onecard__V1__DuplicatePair *m;
	struct registry_patient pa, pb;
	int rc;

	if ((m = arena_alloc(&reg->arena, sizeof(*m))) == NULL)
		return op_nomem(o);
	onecard__v1__duplicate_pair__init(m);
	m->pair_id = (uint64_t)pr->id;
	m->score = pr->score;
	m->grade = (Onecard__V1__MatchGrade)pr->grade;
	m->state = (Onecard__V1__DuplicateState)pr->state;
	m->found_ms = pr->found_ms;
	if ((m->reason = arena_strdup(&reg->arena, pr->reason)) == NULL)
		return op_nomem(o);
	if ((rc = reg->be->patient_get(reg->h, pr->a, &reg->arena, &pa)) < 0 ||
	    (rc == 0 &&
		(rc = reg->be->patient_get(reg->h, pr->b, &reg->arena, &pb)) <
		    0))
		return op_backend(o, rc);
	if (rc != 0)
		return op_fail(o, CODE_INTERNAL, "pair %lld: a patient is gone",
		    (long long)pr->id);
	if (full) {
		if ((rc = op_patient_msg(o, &pa, &m->a)) != CODE_OK ||
		    (rc = op_patient_msg(o, &pb, &m->b)) != CODE_OK)
			return rc;
		/* Both live: how they compare now. */
		if (pa.merged_into[0] == '\0' && pb.merged_into[0] == '\0') {
			struct match_rec qa, qb;
			struct match_result mr;
			const struct match_model *mm;
			double share;
			char ca[VALIDATE_CN_ID_LEN + 1] = "";
			char cb[VALIDATE_CN_ID_LEN + 1] = "";
			int has;

			if ((rc = op_patient_cn_id(o, pa.id, &has, ca)) !=
				CODE_OK ||
			    (rc = op_patient_cn_id(o, pb.id, &has, cb)) !=
				CODE_OK)
				return rc;
			(void)match_rec_init(&qa, pa.name, pa.sex,
			    pa.birth_date, pa.phone, pa.address, ca, NULL);
			(void)match_rec_init(&qb, pb.name, pb.sex,
			    pb.birth_date, pb.phone, pb.address, cb, NULL);
			mm = op_match_model(o->reg, pa.name, &share);
			match_compare_model(mm, share, &qa, &qb, &mr);
			m->score = mr.score;
			m->grade = (Onecard__V1__MatchGrade)mr.grade;
			if ((m->reason = arena_strdup(&reg->arena,
				 mr.excluded ? "cn-id=different"
					     : mr.reason)) == NULL)
				return op_nomem(o);
		}
	} else {
		/* The list names the two: ids, demographics, no identifiers. */
		if ((m->a = arena_alloc(&reg->arena, sizeof(*m->a))) == NULL ||
		    (m->b = arena_alloc(&reg->arena, sizeof(*m->b))) == NULL)
			return op_nomem(o);
		onecard__v1__patient__init(m->a);
		onecard__v1__patient__init(m->b);
		m->a->patient_id = arena_strdup(&reg->arena, pa.id);
		m->b->patient_id = arena_strdup(&reg->arena, pb.id);
		if (m->a->patient_id == NULL || m->b->patient_id == NULL)
			return op_nomem(o);
	}
	*out = m;
	return CODE_OK;
}

/* A reply of the pairs v[0..n) (full records when full). */
static int
dup_reply(struct reg_op *o, const struct registry_pair *v, size_t n, int full,
    uint64_t open)
{
	Onecard__V1__DuplicateListResult *lr;
	int rc;

	if ((lr = arena_alloc(&o->reg->arena, sizeof(*lr))) == NULL)
		return op_nomem(o);
	onecard__v1__duplicate_list_result__init(lr);
	if ((lr->pairs = arena_alloc(
		 &o->reg->arena, (n + 1) * sizeof(*lr->pairs))) == NULL)
		return op_nomem(o);
	for (size_t i = 0; i < n; i++) {
		if ((rc = dup_pair_msg(
			 o, &v[i], full, &lr->pairs[lr->n_pairs])) != CODE_OK)
			return rc;
		lr->n_pairs++;
	}
	lr->open = open;
	o->reply.result_case = ONECARD__V1__REPLY__RESULT_DUPLICATES;
	o->reply.duplicates = lr;
	return CODE_OK;
}

/* The pairs a list keeps (a pair callback). */
struct dup_list {
	struct registry_arena *a;
	int all;
	struct registry_pair *v;
	size_t n, cap;
	uint64_t open;
};

static int
dup_list_add(void *arg, const struct registry_pair *pr)
{
	struct dup_list *l = arg;

	if (pr->state == PAIR_OPEN)
		l->open++;
	else if (!l->all)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct registry_pair *v = arena_alloc(l->a, cap * sizeof(*v));

		if (v == NULL)
			return -1;
		if (l->n)
			memcpy(v, l->v, l->n * sizeof(*v));
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n] = *pr;
	if ((l->v[l->n].reason = arena_strdup(l->a, pr->reason)) == NULL)
		return -1;
	l->n++;
	return 0;
}

/* Is patient pid live? 1 yes, 0 no (merged away or gone), or a code < 0. */
static int
dup_live(struct reg_op *o, const char *pid)
{
	struct registry_patient p;
	int rc = o->reg->be->patient_get(o->reg->h, pid, &o->reg->arena, &p);

	if (rc < 0)
		return rc;
	return rc == 0 && p.merged_into[0] == '\0';
}

/*
 * An open pair whose patient was merged away by another route is stale:
 * the question is now about the survivor, which a scan asks again. Left
 * out of the list and of the open count (kept in the store as it is).
 */
static int
dup_drop_stale(struct reg_op *o, struct dup_list *l)
{
	size_t k = 0;
	int a, b;

	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i].state == PAIR_OPEN) {
			if ((a = dup_live(o, l->v[i].a)) < 0 ||
			    (b = dup_live(o, l->v[i].b)) < 0)
				return op_backend(o, a < 0 ? a : b);
			if (!a || !b) {
				l->open--;
				if (!l->all)
					continue;
			}
		}
		l->v[k++] = l->v[i];
	}
	l->n = k;
	return CODE_OK;
}

/* Best first; then the oldest pair first. */
static int
dup_pair_cmp(const void *x, const void *y)
{
	const struct registry_pair *a = x, *b = y;

	if (a->score != b->score)
		return a->score > b->score ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

/* DuplicateList: the open pairs (or all), best first. */
int
op_duplicate_list(struct reg_op *o)
{
	const Onecard__V1__DuplicateList *l = o->req->duplicate_list;
	struct dup_list dl = {.a = &o->reg->arena};
	unsigned limit;
	int rc;

	if ((rc = dup_check(o, l, "duplicate_list")) != CODE_OK)
		return rc;
	dl.all = l->all;
	limit = l->limit ? l->limit : LIST_DEFAULT_LIMIT;
	if (limit > LIST_MAX_LIMIT)
		limit = LIST_MAX_LIMIT;
	if ((rc = o->reg->be->pair_list(o->reg->h, dup_list_add, &dl)) != 0)
		return op_backend(o, rc);
	if ((rc = dup_drop_stale(o, &dl)) != CODE_OK)
		return rc;
	if (dl.n > 1)
		qsort(dl.v, dl.n, sizeof(*dl.v), dup_pair_cmp);
	/* A page after a pair: what follows it in the same order. */
	if (l->after_pair_id != 0) {
		size_t i;

		for (i = 0;
		     i < dl.n && (uint64_t)dl.v[i].id != l->after_pair_id; i++)
			;
		if (i == dl.n)
			return op_fail(o, CODE_NOT_FOUND,
			    "after_pair_id: pair %llu is not on the list",
			    (unsigned long long)l->after_pair_id);
		dl.v += i + 1;
		dl.n -= i + 1;
	}
	return dup_reply(o, dl.v, dl.n < limit ? dl.n : limit, 0, dl.open);
}

/* The pair a request names, or NOT_FOUND. */
static int
dup_get(struct reg_op *o, uint64_t id, struct registry_pair *pr)
{
	int rc;

	if (id == 0 || id > INT64_MAX)
		return op_fail(o, CODE_INVALID, "pair_id: missing");
	rc = o->reg->be->pair_get(o->reg->h, (int64_t)id, &o->reg->arena, pr);
	if (rc < 0)
		return op_backend(o, rc);
	if (rc == 1)
		return op_fail(o, CODE_NOT_FOUND, "pair_id: no pair %llu",
		    (unsigned long long)id);
	if ((pr->reason = arena_strdup(&o->reg->arena, pr->reason)) == NULL)
		return op_nomem(o);
	snprintf(o->res->target, sizeof(o->res->target), "pair:%llu",
	    (unsigned long long)id);
	return CODE_OK;
}

/* DuplicateShow: one pair, both records, compared field by field. */
int
op_duplicate_show(struct reg_op *o)
{
	const Onecard__V1__DuplicateShow *s = o->req->duplicate_show;
	struct registry_pair pr;
	int rc;

	if ((rc = dup_check(o, s, "duplicate_show")) != CODE_OK ||
	    (rc = dup_get(o, s->pair_id, &pr)) != CODE_OK)
		return rc;
	return dup_reply(o, &pr, 1, 1, 0);
}

/* DuplicateDismiss: never propose the pair again (a merged pair stays
 * merged). */
int
op_duplicate_dismiss(struct reg_op *o)
{
	const Onecard__V1__DuplicateDismiss *d = o->req->duplicate_dismiss;
	struct registry_pair pr;
	int rc;

	if ((rc = dup_check(o, d, "duplicate_dismiss")) != CODE_OK ||
	    (rc = dup_get(o, d->pair_id, &pr)) != CODE_OK)
		return rc;
	if (pr.state == PAIR_MERGED)
		return op_fail(o, CODE_CONFLICT, "pair_id: the pair is merged");
	if (pr.state != PAIR_DISMISSED) {
		if ((rc = o->reg->be->pair_state(
			 o->reg->h, pr.id, PAIR_DISMISSED)) != 0)
			return op_backend(o, rc < 0 ? rc : REGISTRY_EFAIL);
		pr.state = PAIR_DISMISSED;
	}
	return dup_reply(o, &pr, 1, 1, 0);
}

/* DuplicateMerge: merge the pair as Merge would (b into a, or a into b)
 * and close it, in one step. */
int
op_duplicate_merge(struct reg_op *o)
{
	const Onecard__V1__DuplicateMerge *d = o->req->duplicate_merge;
	const Onecard__V1__Request *req = o->req;
	Onecard__V1__Request mreq = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Merge m = ONECARD__V1__MERGE__INIT;
	Onecard__V1__Identifier s = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Identifier dup = ONECARD__V1__IDENTIFIER__INIT;
	struct registry_pair pr;
	char sid[REGISTRY_PID_MAX], did[REGISTRY_PID_MAX];
	int rc;

	if ((rc = dup_check(o, d, "duplicate_merge")) != CODE_OK ||
	    (rc = dup_get(o, d->pair_id, &pr)) != CODE_OK)
		return rc;
	if (pr.state != PAIR_OPEN)
		return op_fail(o, CODE_CONFLICT, "pair_id: the pair is %s",
		    pr.state == PAIR_MERGED ? "merged" : "dismissed");
	/* A merge would follow a merged-away patient to its survivor: a
	 * pair the steward did not look at. */
	for (int i = 0; i < 2; i++) {
		int live = dup_live(o, i ? pr.b : pr.a);

		if (live < 0)
			return op_backend(o, live);
		if (!live)
			return op_fail(o, CODE_CONFLICT,
			    "pair_id: %s was merged away; scan again",
			    i ? pr.b : pr.a);
	}
	registry_copy(sid, d->survivor_b ? pr.b : pr.a, sizeof(sid));
	registry_copy(did, d->survivor_b ? pr.a : pr.b, sizeof(did));
	s.domain = dup.domain = "pid";
	s.value = sid;
	dup.value = did;
	m.survivor = &s;
	m.duplicate = &dup;
	mreq.id = req->id;
	mreq.op_case = ONECARD__V1__REQUEST__OP_MERGE;
	mreq.merge = &m;
	o->req = &mreq;
	rc = op_merge(o);
	o->req = req;
	if (rc != CODE_OK)
		return rc;
	if ((rc = o->reg->be->pair_state(o->reg->h, pr.id, PAIR_MERGED)) != 0)
		return op_backend(o, rc < 0 ? rc : REGISTRY_EFAIL);
	pr.state = PAIR_MERGED;
	snprintf(o->res->target, sizeof(o->res->target), "pair:%lld",
	    (long long)pr.id);
	return dup_reply(o, &pr, 1, 1, 0);
}
