/*
 * registry_match.c: matching inside the registry: gather the candidates of
 * a record from the store's blocking index, score each with the matcher
 * (match/match.h) and rank them. The ranked search and the duplicate
 * candidates of an enroll are built on it. It never scans the registry:
 * every candidate comes from a blocking key, at most MATCH_BLOCK_CAP of
 * each key's patients, and it never changes anything.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "match.h"
#include "registry_int.h"

/*
 * The patients looked at under one blocking key, the newest first. A
 * common surname in a common year ("wang 1985") or a common name (王伟)
 * lists thousands; the other keys (the full birth date, the phone) still
 * find a patient past the cap. With five keys a search scores at most
 * 5 * MATCH_BLOCK_CAP records.
 */
#define MATCH_BLOCK_CAP 200
/*
 * An enroll's duplicate check looks at fewer: it runs on every write, and
 * walking a key's list is a cache miss a patient. A duplicate further back
 * in every list but one is left to the whole-registry scan.
 */
#define MATCH_ENROLL_CAP 32

#define SEARCH_DEFAULT_LIMIT 10
#define SEARCH_MAX_LIMIT     100

/* What a gathering keeps: the query and the hits so far. */
struct match_gather {
	struct reg_op *o;
	const struct match_rec *q;
	int worst;        /* keep this grade (enum match_grade) or better */
	const char *skip; /* a patient id never to list, or NULL */
	struct op_match *v;
	size_t n, cap;
};

/* Score one candidate and keep it when it grades (a candidate callback). */
static int
match_gather_one(void *arg, const struct registry_patient *p, const char *cnid)
{
	struct match_gather *g = arg;
	struct match_result mr;
	struct match_rec c;

	if (p->merged_into[0] != '\0' ||
	    (g->skip != NULL && strcmp(p->id, g->skip) == 0))
		return 0;
	/* A stored name that does not normalise is only left out. */
	(void)match_rec_init(&c, p->name, p->sex, p->birth_date, p->phone,
	    p->address, cnid, NULL);
	match_compare(g->q, &c, &mr);
	if (mr.excluded || mr.grade == MATCH_GRADE_NONE ||
	    (int)mr.grade > g->worst)
		return 0;
	if (g->n == g->cap) {
		size_t nc = g->cap ? g->cap * 2 : 32;
		struct op_match *nv =
		    arena_alloc(&g->o->reg->arena, nc * sizeof(*nv));

		if (nv == NULL)
			return -1;
		if (g->n)
			memcpy(nv, g->v, g->n * sizeof(*nv));
		g->v = nv;
		g->cap = nc;
	}
	g->v[g->n].p = *p;
	g->v[g->n].score = mr.score;
	g->v[g->n].grade = (int)mr.grade;
	if ((g->v[g->n].reason = arena_strdup(&g->o->reg->arena, mr.reason)) ==
	    NULL)
		return -1;
	g->n++;
	return 0;
}

/* Best first; equal scores in patient id order, so answers are stable. */
static int
match_hit_cmp(const void *a, const void *b)
{
	const struct op_match *x = a, *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return strcmp(x->p.id, y->p.id);
}

/* Collect a patient id and score it (the fallback's pid callback). */
static int
match_gather_pid(void *arg, const char *pid)
{
	struct match_gather *g = arg;
	struct reg_op *o = g->o;
	struct registry_patient p;
	char cnid[VALIDATE_CN_ID_LEN + 1] = "";
	int has;

	if (o->reg->be->patient_get(o->reg->h, pid, &o->reg->arena, &p) != 0 ||
	    op_patient_cn_id(o, pid, &has, cnid) != CODE_OK)
		return -1;
	return match_gather_one(g, &p, cnid);
}

int
op_match(struct reg_op *o, const struct op_match_query *mq, int worst,
    const char *skip, size_t max, struct op_match **hits, size_t *nhits)
{
	struct registry *reg = o->reg;
	struct match_rec q;
	struct match_gather g = {.o = o, .q = &q, .worst = worst, .skip = skip};
	char buf[MATCH_KEY_KINDS + 1][MATCH_KEY_MAX];
	struct registry_block_key keys[MATCH_KEY_KINDS + 1];
	size_t nkeys = 0;
	int rc;

	*hits = NULL;
	*nhits = 0;
	(void)match_rec_init(&q, mq->name, mq->sex, mq->birth_date, mq->phone,
	    mq->address, mq->cn_id, NULL);
	for (int k = 0; k < MATCH_KEY_KINDS; k++)
		if (match_key(k, mq->name, mq->birth_date, mq->phone,
			buf[nkeys]) > 0) {
			keys[nkeys].kind = k;
			keys[nkeys].key = buf[nkeys];
			nkeys++;
		}
	/* A swapped day and month is looked for under its own date. */
	if (match_birth_swapped(mq->birth_date, buf[nkeys])) {
		keys[nkeys].kind = MATCH_KEY_BIRTH;
		keys[nkeys].key = buf[nkeys];
		nkeys++;
	}
	/*
	 * An enroll's duplicate check (PROBABLE or better) scores only the
	 * patients under two keys or more: one that shares a single key
	 * (the same surname and year, say, and nothing else) cannot grade
	 * PROBABLE, and scoring the many such ones would cost every write.
	 * A search, which lists POSSIBLE ones too, scores them all.
	 */
	if (reg->be->patient_candidates != NULL)
		rc = reg->be->patient_candidates(reg->h, keys, nkeys,
		    worst <= MATCH_GRADE_PROBABLE ? MATCH_ENROLL_CAP
						  : MATCH_BLOCK_CAP,
		    worst <= MATCH_GRADE_PROBABLE ? 2 : 1, &reg->arena,
		    match_gather_one, &g);
	else {
		/* A store without a blocking index: the exact name's and
		 * the exact birth date's patients. */
		rc = 0;
		if (mq->name != NULL && mq->name[0] != '\0')
			rc = reg->be->patient_search(reg->h, mq->name, "", 0,
			    MATCH_BLOCK_CAP, match_gather_pid, &g);
		if (rc == 0 && mq->birth_date != NULL &&
		    mq->birth_date[0] != '\0')
			rc = reg->be->patient_search(reg->h, "", mq->birth_date,
			    0, MATCH_BLOCK_CAP, match_gather_pid, &g);
		/* Both lists may hold one patient: keep it once. */
		if (rc == 0 && g.n > 1) {
			size_t k = 0;

			qsort(g.v, g.n, sizeof(*g.v), match_hit_cmp);
			for (size_t i = 0; i < g.n; i++)
				if (k == 0 ||
				    strcmp(g.v[k - 1].p.id, g.v[i].p.id) != 0)
					g.v[k++] = g.v[i];
			g.n = k;
		}
	}
	if (rc < 0)
		return op_backend(o, rc);
	if (g.n > 1)
		qsort(g.v, g.n, sizeof(*g.v), match_hit_cmp);
	*hits = g.v;
	*nhits = g.n < max ? g.n : max;
	return CODE_OK;
}

/* The holder of a search's identifier, followed to its live patient, and
 * its cn-id; 1 when nobody holds it. */
static int
search_holder(struct reg_op *o, const Onecard__V1__Identifier *id, int k,
    const char *norm, struct registry_patient *p, char *cnid)
{
	struct registry *reg = o->reg;
	char pid[REGISTRY_PID_MAX];
	int rc, has;

	if (k == VALIDATE_PID)
		registry_copy(pid, norm, sizeof(pid));
	else if ((rc = reg->be->ident_owner(reg->h, id->domain, norm, pid)) !=
	    0)
		return rc < 0 ? op_backend(o, rc) : 1;
	if ((rc = reg->be->patient_get(reg->h, pid, &reg->arena, p)) != 0)
		return rc < 0 ? op_backend(o, rc) : 1;
	if ((rc = op_follow(o, p)) != CODE_OK)
		return rc;
	return op_patient_cn_id(o, p->id, &has, cnid);
}

/* One ranked result into the reply. */
static int
search_add(struct reg_op *o, Onecard__V1__SearchResult *sr,
    const struct registry_patient *p, double score, int grade,
    const char *reason)
{
	Onecard__V1__Match *m;
	Onecard__V1__Patient *pm;
	int rc;

	if ((m = arena_alloc(&o->reg->arena, sizeof(*m))) == NULL)
		return op_nomem(o);
	onecard__v1__match__init(m);
	if ((rc = op_patient_msg(o, p, &pm)) != CODE_OK)
		return rc;
	m->patient = pm;
	m->score = score;
	m->grade = (Onecard__V1__MatchGrade)grade;
	m->reason = (char *)reason;
	sr->patients[sr->n_patients++] = pm;
	sr->matches[sr->n_matches++] = m;
	return CODE_OK;
}

/* Search, ranked and error-tolerant: the contract's default. */
int
op_search_ranked(struct reg_op *o)
{
	struct registry *reg = o->reg;
	const Onecard__V1__Search *s = o->req->search;
	const Onecard__V1__Identifier *id = s->identifier;
	struct op_match_query mq = {0};
	struct registry_patient holder;
	Onecard__V1__SearchResult *sr;
	struct op_match *hits;
	struct match_rec probe;
	char norm[VALIDATE_MAX_VALUE + 1], cnid[VALIDATE_CN_ID_LEN + 1] = "";
	const char *why = NULL;
	size_t nhits, limit;
	int has_id, held = 0, k = -1, rc;

	mq.name = s->name ? s->name : "";
	mq.birth_date = s->birth_date ? s->birth_date : "";
	mq.phone = s->phone ? s->phone : "";
	mq.sex = s->sex;
	has_id = id != NULL &&
	    ((id->domain && id->domain[0] != '\0') ||
		(id->value && id->value[0] != '\0'));
	if (mq.name[0] == '\0' && mq.birth_date[0] == '\0' &&
	    mq.phone[0] == '\0' && !has_id)
		return op_fail(o, CODE_INVALID,
		    "search: give a name, birth_date, phone or identifier");
	if (validate_text("name", mq.name, reg->lim.max_name, o->msg,
		sizeof(o->msg)) == -1)
		return CODE_INVALID;
	if (mq.name[0] != '\0' &&
	    match_rec_init(&probe, mq.name, 0, NULL, NULL, NULL, NULL, &why) ==
		-1)
		return op_fail(o, CODE_INVALID, "name: %s", why);
	if (mq.birth_date[0] != '\0' &&
	    validate_date(o->vc.today, "birth_date", mq.birth_date, o->msg,
		sizeof(o->msg)) == -1)
		return CODE_INVALID;
	if (mq.phone[0] != '\0' &&
	    validate_phone("phone", mq.phone, o->msg, sizeof(o->msg)) == -1)
		return CODE_INVALID;
	if (has_id &&
	    (k = validate_identifier(&o->vc, "identifier", id, norm,
		 sizeof(norm), NULL, o->msg, sizeof(o->msg))) < 0)
		return CODE_INVALID;
	limit = s->limit == 0 ? SEARCH_DEFAULT_LIMIT : s->limit;
	if (limit > SEARCH_MAX_LIMIT)
		limit = SEARCH_MAX_LIMIT;

	if (has_id) {
		op_target(o, id->domain, norm);
		rc = search_holder(o, id, k, norm, &holder, cnid);
		if (rc != CODE_OK && rc != 1)
			return rc;
		held = rc == CODE_OK;
		if (held)
			op_patient_id(o, holder.id);
		else if (k == VALIDATE_CN_ID)
			registry_copy(cnid, norm, sizeof(cnid));
	}
	/* Anyone with another cn-id than the one asked for is not them. */
	mq.cn_id = cnid;
	if (mq.name[0] != '\0' || mq.birth_date[0] != '\0' ||
	    mq.phone[0] != '\0') {
		if ((rc = op_match(o, &mq, MATCH_GRADE_POSSIBLE,
			 held ? holder.id : NULL, limit, &hits, &nhits)) !=
		    CODE_OK)
			return rc;
	} else {
		hits = NULL;
		nhits = 0;
	}
	if (held && nhits == limit)
		nhits--;

	if ((sr = arena_alloc(&reg->arena, sizeof(*sr))) == NULL)
		return op_nomem(o);
	onecard__v1__search_result__init(sr);
	if ((sr->patients = arena_alloc(
		 &reg->arena, (nhits + 2) * sizeof(*sr->patients))) == NULL ||
	    (sr->matches = arena_alloc(
		 &reg->arena, (nhits + 2) * sizeof(*sr->matches))) == NULL)
		return op_nomem(o);
	if (held &&
	    (rc = search_add(o, sr, &holder, 1.0, MATCH_GRADE_CERTAIN,
		 "identifier=exact")) != CODE_OK)
		return rc;
	for (size_t i = 0; i < nhits; i++)
		if ((rc = search_add(o, sr, &hits[i].p, hits[i].score,
			 hits[i].grade, hits[i].reason)) != CODE_OK)
			return rc;
	o->reply.result_case = ONECARD__V1__REPLY__RESULT_SEARCH;
	o->reply.search = sr;
	return CODE_OK;
}
