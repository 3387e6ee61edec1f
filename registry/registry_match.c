/*
 * registry_match.c: matching inside the registry: gather the candidates of
 * a record from the store's blocking index, score each with the matcher
 * (match/match.h) and rank them. The ranked search and the duplicate
 * candidates of an enroll are built on it. It never scans the registry:
 * every candidate comes from a blocking key, at most MATCH_BLOCK_CAP of
 * each key's patients, and it never changes anything.
 */
#include <inttypes.h>
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
	const struct match_model *mm; /* NULL: the defaults */
	double share;                 /* of patients, with q's name */
	double need;                  /* the score of the worst grade kept */
	double prior;                 /* match_prior of q */
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
	match_rec_init_for(g->q, &c, p->name, p->sex, p->birth_date, p->phone,
	    p->address, cnid);
	match_compare_model(g->mm, g->share, g->q, &c, &mr);
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

/*
 * The cheap fields first (a pre callback, before the row is copied): a
 * candidate that cannot grade even with its name and address at their best
 * is not copied or parsed further.
 */
static int
match_gather_pre(void *arg, int sex, const char *birth_date, const char *phone)
{
	struct match_gather *g = arg;
	struct match_rec c;

	match_rec_init_for(g->q, &c, NULL, sex, birth_date, phone, NULL, NULL);
	return match_bound(g->mm, g->q, &c, g->prior) >= g->need;
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

/*
 * A patient found under the surname-and-year key alone shares neither the
 * name's reading (the name key), nor the birth date or its swap (the birth
 * keys), nor the phone (the phone key). When even the best such patient
 * could not reach the worst grade asked, that key's list, the longest and
 * least telling (every 王 born in 1985), is not walked: on a large registry
 * it is most of a search's candidates and none of its answers. The keys
 * left; a search only (an enroll's quick check counts keys per patient).
 */
static size_t
match_prune_keys(const struct match_model *mm, const struct match_rec *q,
    double need, struct registry_block_key *keys, size_t nkeys)
{
	bool agrees[MATCH_FIELDS] = {false, false, true, false, true};
	size_t k = 0;

	if (match_best_without(mm, q, agrees) >= need)
		return nkeys;
	for (size_t i = 0; i < nkeys; i++)
		if (keys[i].kind != MATCH_KEY_SURNAME_YEAR)
			keys[k++] = keys[i];
	return k;
}

const struct match_model *
op_match_model(struct registry *reg, const char *name, double *share)
{
	const struct match_model *mm;
	char key[MATCH_KEY_MAX];
	uint64_t n;

	*share = 0;
	mm = reg->be->model_get != NULL ? reg->be->model_get(reg->h) : NULL;
	if (mm != NULL && mm->learnt && reg->be->block_count != NULL &&
	    match_key(MATCH_KEY_NAME, name, NULL, NULL, key) > 0 &&
	    reg->be->block_count(reg->h, MATCH_KEY_NAME, key, &n) == 0)
		*share = (double)n / (double)mm->population;
	return mm;
}

int
op_match(struct reg_op *o, const struct op_match_query *mq, int worst,
    int quick, const char *skip, size_t max, struct op_match **hits,
    size_t *nhits)
{
	struct registry *reg = o->reg;
	struct match_rec q;
	struct match_model def;
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
	/* The defaults worked out once, not for every candidate. */
	if ((g.mm = op_match_model(reg, mq->name, &g.share)) == NULL) {
		match_model_default(&def);
		g.mm = &def;
	}
	g.need = worst == MATCH_GRADE_CERTAIN ? MATCH_CERTAIN_SCORE
	    : worst == MATCH_GRADE_PROBABLE   ? MATCH_PROBABLE_SCORE
					      : MATCH_POSSIBLE_SCORE;
	g.prior = match_prior(g.mm, &q);
	if (!quick)
		nkeys = match_prune_keys(g.mm, &q, g.need, keys, nkeys);
	/*
	 * An enroll's duplicate check (quick) scores only the patients
	 * under two keys or more, the newest MATCH_ENROLL_CAP of each: one
	 * that shares a single key (the same surname and year, say, and
	 * nothing else) seldom grades PROBABLE, and scoring the many such
	 * ones would cost every write. A search and the whole-registry scan
	 * score them all: a copy whose birth date is missing or slipped
	 * shares only its name key.
	 */
	if (reg->be->patient_candidates != NULL)
		rc = reg->be->patient_candidates(reg->h, keys, nkeys,
		    quick ? MATCH_ENROLL_CAP : MATCH_BLOCK_CAP, quick ? 2 : 1,
		    &reg->arena, match_gather_pre, match_gather_one, &g);
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
	mq.address = s->address ? s->address : "";
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
	if (validate_text("address", mq.address, reg->lim.max_address, o->msg,
		sizeof(o->msg)) == -1)
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
		if ((rc = op_match(o, &mq, MATCH_GRADE_POSSIBLE, 0,
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

/*
 * Learning the model (match_model_estimate): from a sample of the live
 * patients (every stride'th in id order, at most LEARN_SAMPLE), the
 * levels of LEARN_PARTNERS random pairs each, and of the pairs each
 * shares a birth date and a name key with (the newest LEARN_BLOCK_CAP of
 * each key). A registry under LEARN_MIN_PATIENTS keeps the defaults: EM
 * needs matches to learn from.
 */
#define LEARN_SAMPLE       10000
#define LEARN_PARTNERS     20
#define LEARN_BLOCK_CAP    100
#define LEARN_MIN_PATIENTS 1000
#define LEARN_PAGE         5000

struct learn {
	struct reg_op o;
	struct match_rec *rec; /* the sample */
	char (*pid)[REGISTRY_PID_MAX];
	size_t n, cap;
	uint64_t seen, stride;
	char last[REGISTRY_PID_MAX]; /* the page's last patient */
	uint32_t *rnd, *blk[2];
	const struct match_rec *q; /* the patient whose pairs are counted */
	const char *qpid;
	int session;
};

static int
learn_pick(void *arg, const char *pid)
{
	struct learn *l = arg;

	if (l->seen++ % l->stride == 0 && l->n < l->cap)
		registry_copy(l->pid[l->n++], pid, REGISTRY_PID_MAX);
	registry_copy(l->last, pid, sizeof(l->last));
	return 0;
}

/* Count the levels of q and one patient sharing its key (a candidate
 * callback). */
static int
learn_pair(void *arg, const struct registry_patient *p, const char *cnid)
{
	struct learn *l = arg;
	enum match_level lv[MATCH_FIELDS];
	struct match_rec c;

	if (p->merged_into[0] != '\0' || strcmp(p->id, l->qpid) == 0)
		return 0;
	(void)match_rec_init(&c, p->name, p->sex, p->birth_date, p->phone,
	    p->address, cnid, NULL);
	match_levels(l->q, &c, lv);
	l->blk[l->session][match_pattern(lv)]++;
	return 0;
}

/* Read the sampled patients' records; those gone since are dropped. */
static int
learn_records(struct learn *l)
{
	struct registry *reg = l->o.reg;
	size_t k = 0;

	for (size_t i = 0; i < l->n; i++) {
		struct registry_patient p;
		char cnid[VALIDATE_CN_ID_LEN + 1] = "";
		int has;

		arena_reset(&reg->arena);
		if (reg->be->patient_get(reg->h, l->pid[i], &reg->arena, &p) !=
			0 ||
		    p.merged_into[0] != '\0')
			continue;
		if (op_patient_cn_id(&l->o, l->pid[i], &has, cnid) != CODE_OK)
			return -1;
		(void)match_rec_init(&l->rec[k], p.name, p.sex, p.birth_date,
		    p.phone, p.address, cnid, NULL);
		if (k != i)
			memcpy(l->pid[k], l->pid[i], REGISTRY_PID_MAX);
		k++;
	}
	l->n = k;
	return 0;
}

/* The pairs of each sampled patient under its birth date and its name;
 * *mean: how many others share its birth date, on average. */
static int
learn_blocked(struct learn *l, double *mean)
{
	struct registry *reg = l->o.reg;
	double others = 0;

	for (size_t i = 0; i < l->n; i++) {
		struct registry_patient p;

		arena_reset(&reg->arena);
		if (reg->be->patient_get(reg->h, l->pid[i], &reg->arena, &p) !=
		    0)
			continue;
		for (int s = 0; s < 2; s++) {
			int kind = s == 0 ? MATCH_KEY_BIRTH : MATCH_KEY_NAME;
			char key[MATCH_KEY_MAX];
			struct registry_block_key bk = {kind, key};
			uint64_t n;

			if (match_key(
				kind, p.name, p.birth_date, p.phone, key) == 0)
				continue;
			if (s == 0 &&
			    reg->be->block_count(reg->h, kind, key, &n) == 0 &&
			    n > 0)
				others += (double)(n - 1);
			l->q = &l->rec[i];
			l->qpid = l->pid[i];
			l->session = s;
			if (reg->be->patient_candidates(reg->h, &bk, 1,
				LEARN_BLOCK_CAP, 1, &reg->arena, NULL,
				learn_pair, l) < 0)
				return -1;
		}
	}
	*mean = l->n ? others / (double)l->n : 0;
	return 0;
}

int
registry_match_learn(struct registry *reg, struct match_model *out)
{
	struct learn l = {.o = {.reg = reg}};
	struct registry_counts c;
	struct match_model mm;
	uint64_t x = 0x9e3779b97f4a7c15ULL; /* a fixed seed: the same
					       registry learns the same */
	double mean = 0;
	int64_t t0 = registry_now_ms();
	int rc = -1;

	match_model_default(&mm);
	if (out != NULL)
		*out = mm;
	if (reg->be->model_set == NULL || reg->be->block_count == NULL ||
	    reg->be->patient_candidates == NULL ||
	    reg->be->counts(reg->h, &c, NULL, NULL) != 0)
		return -1;
	reg->learnt_at = c.patients;
	if (c.patients < LEARN_MIN_PATIENTS)
		return 1;
	l.cap = LEARN_SAMPLE;
	l.stride = c.patients / LEARN_SAMPLE + 1;
	l.rec = malloc(l.cap * sizeof(*l.rec));
	l.pid = malloc(l.cap * sizeof(*l.pid));
	l.rnd = calloc(MATCH_PATTERNS, sizeof(uint32_t));
	l.blk[0] = calloc(MATCH_PATTERNS, sizeof(uint32_t));
	l.blk[1] = calloc(MATCH_PATTERNS, sizeof(uint32_t));
	if (l.rec == NULL || l.pid == NULL || l.rnd == NULL ||
	    l.blk[0] == NULL || l.blk[1] == NULL)
		goto out;
	/* The sample: every stride'th live patient, a page at a time. */
	for (;;) {
		uint64_t before = l.seen;

		arena_reset(&reg->arena);
		if (reg->be->patient_page(
			reg->h, l.last, LEARN_PAGE, learn_pick, &l) < 0)
			goto out;
		if (l.seen - before < LEARN_PAGE || l.n == l.cap)
			break;
	}
	if (learn_records(&l) == -1)
		goto out;
	/* u: random pairs of the sample (a fixed generator, xorshift). */
	for (size_t i = 0; l.n > 1 && i < l.n; i++)
		for (int k = 0; k < LEARN_PARTNERS; k++) {
			enum match_level lv[MATCH_FIELDS];
			size_t j;

			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			if ((j = x % l.n) == i)
				continue;
			match_levels(&l.rec[i], &l.rec[j], lv);
			l.rnd[match_pattern(lv)]++;
		}
	if (learn_blocked(&l, &mean) == -1)
		goto out;
	if (match_model_estimate(&mm, l.rnd,
		(const uint32_t *const[2]){l.blk[0], l.blk[1]}, mean,
		c.patients) == 0) {
		mm.sample = l.n;
		if (reg->be->model_set(reg->h, &mm) != 0)
			goto out;
		log_info("match model learnt in %lld ms from %" PRIu64
			 " patients (a sample of %" PRIu64 ", %" PRIu64
			 " + %" PRIu64 " pairs, %.4f + %.4f matches): prior "
			 "%.1f bits; exact name %+.1f, birth date %+.1f, phone "
			 "%+.1f",
		    (long long)(registry_now_ms() - t0), mm.population,
		    mm.sample, mm.blocked_pairs[0], mm.blocked_pairs[1],
		    mm.share[0], mm.share[1], mm.prior,
		    mm.w[MATCH_F_NAME][MATCH_L_EXACT],
		    mm.w[MATCH_F_BIRTH][MATCH_L_EXACT],
		    mm.w[MATCH_F_PHONE][MATCH_L_EXACT]);
		for (int f = 0; f < MATCH_FIELDS; f++)
			for (int v = 1; v < MATCH_LEVELS; v++)
				if (mm.w[f][v] != 0)
					log_debug("match model: %s=%s m %.4f "
						  "u %.6f weight %+.2f",
					    match_field_name(f),
					    match_level_name(v), mm.m[f][v],
					    mm.u[f][v], mm.w[f][v]);
		rc = 0;
	} else {
		log_info("match model: %" PRIu64 " patients are too few to "
			 "learn from; the defaults stay",
		    c.patients);
		rc = 1;
	}
	if (out != NULL)
		*out = mm;
out:
	free(l.rec);
	free(l.pid);
	free(l.rnd);
	free(l.blk[0]);
	free(l.blk[1]);
	arena_reset(&reg->arena);
	return rc;
}

int
registry_match_relearn(struct registry *reg)
{
	struct registry_counts c;

	if (reg->be->model_set == NULL ||
	    reg->be->counts(reg->h, &c, NULL, NULL) != 0 ||
	    c.patients < LEARN_MIN_PATIENTS || c.patients < 2 * reg->learnt_at)
		return 1;
	return registry_match_learn(reg, NULL);
}
