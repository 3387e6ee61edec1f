/*
 * match.c: the Fellegi-Sunter comparison of two records (match.h) and the
 * blocking keys a store files a record under, and the learning of m and u
 * from a registry's pairs by EM (docs/matching.md, "The model"). The
 * comparison never allocates; nothing here keeps state or knows about the
 * registry.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "match.h"
#include "unihan_text.h"

/* An address's character pairs shared (Dice) to be "similar". */
#define MATCH_ADDRESS_DICE 0.6

/*
 * m: how often a level is seen when the two records are one person; u: how
 * often when they are two people drawn from the same block. Each field's m
 * and u sum to 1 over its levels. The weight of a level is log2(m/u).
 */
struct match_mu {
	enum match_level level;
	double m, u;
};

static const struct match_mu match_name_mu[] = {
    {MATCH_L_EXACT, 0.80, 0.0008},
    {MATCH_L_PINYIN, 0.06, 0.003},
    {MATCH_L_EDIT1, 0.05, 0.003},
    {MATCH_L_PINYIN1, 0.03, 0.01},
    {MATCH_L_DIFF, 0.06, 0.9832},
};
static const struct match_mu match_birth_mu[] = {
    {MATCH_L_EXACT, 0.90, 0.0002},
    {MATCH_L_SWAP, 0.02, 0.0001},
    {MATCH_L_1DIGIT, 0.04, 0.002},
    {MATCH_L_DIFF, 0.04, 0.9977},
};
static const struct match_mu match_sex_mu[] = {
    {MATCH_L_EXACT, 0.97, 0.5},
    {MATCH_L_DIFF, 0.03, 0.5},
};
static const struct match_mu match_phone_mu[] = {
    {MATCH_L_EXACT, 0.70, 0.0001},
    {MATCH_L_1DIGIT, 0.05, 0.001},
    {MATCH_L_DIFF, 0.25, 0.9989},
};
static const struct match_mu match_address_mu[] = {
    {MATCH_L_EXACT, 0.45, 0.002},
    {MATCH_L_SIMILAR, 0.25, 0.02},
    {MATCH_L_DIFF, 0.30, 0.978},
};

static const struct {
	const char *name;
	const struct match_mu *mu;
	size_t n;
} match_fields[MATCH_FIELDS] = {
    [MATCH_F_NAME] = {"name", match_name_mu,
	sizeof(match_name_mu) / sizeof(match_name_mu[0])},
    [MATCH_F_BIRTH] = {"birth", match_birth_mu,
	sizeof(match_birth_mu) / sizeof(match_birth_mu[0])},
    [MATCH_F_SEX] = {"sex", match_sex_mu,
	sizeof(match_sex_mu) / sizeof(match_sex_mu[0])},
    [MATCH_F_PHONE] = {"phone", match_phone_mu,
	sizeof(match_phone_mu) / sizeof(match_phone_mu[0])},
    [MATCH_F_ADDRESS] = {"address", match_address_mu,
	sizeof(match_address_mu) / sizeof(match_address_mu[0])},
};

static bool match_has_level(int f, int l);

static const char *const match_level_names[MATCH_LEVELS] = {
    [MATCH_L_MISSING] = "missing",
    [MATCH_L_EXACT] = "exact",
    [MATCH_L_PINYIN] = "pinyin",
    [MATCH_L_EDIT1] = "edit1",
    [MATCH_L_PINYIN1] = "pinyin1",
    [MATCH_L_SWAP] = "swap",
    [MATCH_L_1DIGIT] = "1digit",
    [MATCH_L_SIMILAR] = "similar",
    [MATCH_L_DIFF] = "diff",
};

double
match_weight(enum match_field f, enum match_level l)
{
	if ((unsigned)f >= MATCH_FIELDS)
		return 0;
	for (size_t i = 0; i < match_fields[f].n; i++)
		if (match_fields[f].mu[i].level == l)
			return log2(
			    match_fields[f].mu[i].m / match_fields[f].mu[i].u);
	return 0;
}

const char *
match_field_name(enum match_field f)
{
	return (unsigned)f < MATCH_FIELDS ? match_fields[f].name : "?";
}

const char *
match_level_name(enum match_level l)
{
	return (unsigned)l < MATCH_LEVELS ? match_level_names[l] : "?";
}

enum match_grade
match_grade_of(double score)
{
	if (score >= MATCH_CERTAIN_SCORE)
		return MATCH_GRADE_CERTAIN;
	if (score >= MATCH_PROBABLE_SCORE)
		return MATCH_GRADE_PROBABLE;
	if (score >= MATCH_POSSIBLE_SCORE)
		return MATCH_GRADE_POSSIBLE;
	return MATCH_GRADE_NONE;
}

/* Parse "YYYY-MM-DD" into eight digits; -1 when it is not that shape. */
static int
match_parse_birth(const char *s, int d[8])
{
	static const int at[8] = {0, 1, 2, 3, 5, 6, 8, 9};

	if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (int i = 0; i < 8; i++) {
		if (s[at[i]] < '0' || s[at[i]] > '9')
			return -1;
		d[i] = s[at[i]] - '0';
	}
	return 0;
}

/*
 * The digits of a phone into buf (MATCH_PHONE_MAX + 1 bytes): everything
 * but digits dropped, and a leading 0086 or 86 before an eleven-digit
 * mobile number. Returns how many.
 */
static int
match_phone_digits(const char *s, char *buf)
{
	int n = 0;

	for (; s != NULL && *s != '\0' && n < MATCH_PHONE_MAX; s++)
		if (*s >= '0' && *s <= '9')
			buf[n++] = *s;
	buf[n] = '\0';
	if (n == 15 && strncmp(buf, "0086", 4) == 0) {
		memmove(buf, buf + 4, 12);
		n = 11;
	} else if (n == 13 && strncmp(buf, "86", 2) == 0 && buf[2] == '1') {
		memmove(buf, buf + 2, 12);
		n = 11;
	}
	return n;
}

/* An address folded for comparison: characters in their simplified form,
 * Latin lower-cased, spaces and punctuation dropped. Returns how many. */
static int
match_fold_address(const char *s, uint32_t *out)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t left = s ? strlen(s) : 0;
	int n = 0;

	while (left > 0 && n < MATCH_ADDRESS_MAX) {
		uint32_t c;
		int len = utf8_decode(p, left, &c);

		if (len < 0)
			return 0;
		p += len;
		left -= (size_t)len;
		if (c >= 0xff01 && c <= 0xff5e) /* full-width ASCII */
			c -= 0xfee0;
		if (c < 0x80) {
			if (c >= 'A' && c <= 'Z')
				c += 'a' - 'A';
			else if (!((c >= 'a' && c <= 'z') ||
				     (c >= '0' && c <= '9')))
				continue;
		} else if (c == 0x3000 || c == 0x3001 || c == 0x3002 ||
		    c == 0xb7 || c == 0x30fb)
			continue; /* ideographic space, comma, stop, dots */
		out[n++] = unihan_fold(c);
	}
	return n;
}

static int
match_u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int
match_rec_init(struct match_rec *r, const char *name, int sex,
    const char *birth_date, const char *phone, const char *address,
    const char *cn_id, const char **why)
{
	int rc = 0;

	memset(r, 0, sizeof(*r));
	if (name != NULL && name[0] != '\0') {
		if (name_normalise(name, strlen(name), &r->name, why) == 0)
			r->has_name = true;
		else
			rc = -1;
	}
	if (match_parse_birth(birth_date, r->birth) == -1)
		r->birth[0] = -1;
	r->sex = sex == 1 || sex == 2 ? sex : 0;
	r->nphone = match_phone_digits(phone, r->phone);
	r->naddr = match_fold_address(address, r->addr);
	for (int i = 0; i + 1 < r->naddr; i++)
		r->abig[i] = (uint64_t)r->addr[i] << 32 | r->addr[i + 1];
	r->nbig = r->naddr > 1 ? r->naddr - 1 : 0;
	qsort(r->abig, (size_t)r->nbig, sizeof(r->abig[0]), match_u64_cmp);
	if (cn_id != NULL && strlen(cn_id) < sizeof(r->cn_id))
		strcpy(r->cn_id, cn_id);
	return rc;
}

void
match_rec_init_for(const struct match_rec *q, struct match_rec *r,
    const char *name, int sex, const char *birth_date, const char *phone,
    const char *address, const char *cn_id)
{
	(void)match_rec_init(r, q->has_name ? name : NULL, sex,
	    q->birth[0] >= 0 ? birth_date : NULL, q->nphone > 0 ? phone : NULL,
	    q->naddr > 0 ? address : NULL, cn_id, NULL);
}

static enum match_level
match_name(const struct match_rec *q, const struct match_rec *c)
{
	const struct name_norm *a = &q->name, *b = &c->name;

	if (!q->has_name || !c->has_name)
		return MATCH_L_MISSING;
	/* Both in characters (or both typed): compare the folded text. */
	if (a->pinyin_input == b->pinyin_input) {
		if (a->nchars == b->nchars &&
		    memcmp(a->chars, b->chars,
			(size_t)a->nchars * sizeof(a->chars[0])) == 0)
			return MATCH_L_EXACT;
	}
	if (name_pinyin_equal(a, b))
		return MATCH_L_PINYIN;
	if (a->pinyin_input == b->pinyin_input &&
	    name_char_distance(a, b, 1) <= 1)
		return MATCH_L_EDIT1;
	if (name_syl_distance(a, b, 1) <= 1)
		return MATCH_L_PINYIN1;
	return MATCH_L_DIFF;
}

static enum match_level
match_birth(const struct match_rec *q, const struct match_rec *c)
{
	const int *a = q->birth, *b = c->birth;
	int diff = 0;

	if (a[0] < 0 || b[0] < 0)
		return MATCH_L_MISSING;
	for (int i = 0; i < 8; i++)
		diff += a[i] != b[i];
	if (diff == 0)
		return MATCH_L_EXACT;
	/* Same year, month and day crossed over (and not the same). */
	if (memcmp(a, b, 4 * sizeof(int)) == 0 && a[4] == b[6] &&
	    a[5] == b[7] && a[6] == b[4] && a[7] == b[5])
		return MATCH_L_SWAP;
	if (diff == 1)
		return MATCH_L_1DIGIT;
	return MATCH_L_DIFF;
}

/* One digit wrong, missing or extra, or two neighbours swapped. */
static int
match_edit1(const char *a, int la, const char *b, int lb)
{
	int i = 0;

	if (la == lb) {
		int d = 0, first = -1;

		for (int k = 0; k < la; k++)
			if (a[k] != b[k]) {
				if (first < 0)
					first = k;
				d++;
			}
		if (d <= 1)
			return 1;
		return d == 2 && first + 1 < la && a[first] == b[first + 1] &&
		    a[first + 1] == b[first] &&
		    memcmp(a + first + 2, b + first + 2,
			(size_t)(la - first - 2)) == 0;
	}
	if (la - lb != 1 && lb - la != 1)
		return 0;
	if (la < lb) {
		const char *t = a;
		int tl = la;

		a = b;
		la = lb;
		b = t;
		lb = tl;
	}
	/* a is one longer: skip one character of it. */
	while (i < lb && a[i] == b[i])
		i++;
	return memcmp(a + i + 1, b + i, (size_t)(lb - i)) == 0;
}

static enum match_level
match_phone(const struct match_rec *q, const struct match_rec *c)
{
	if (q->nphone == 0 || c->nphone == 0)
		return MATCH_L_MISSING;
	if (q->nphone == c->nphone && strcmp(q->phone, c->phone) == 0)
		return MATCH_L_EXACT;
	if (q->nphone >= 7 && c->nphone >= 7 &&
	    match_edit1(q->phone, q->nphone, c->phone, c->nphone))
		return MATCH_L_1DIGIT;
	return MATCH_L_DIFF;
}

static enum match_level
match_address(const struct match_rec *q, const struct match_rec *c)
{
	int i = 0, j = 0, shared = 0;

	if (q->naddr == 0 || c->naddr == 0)
		return MATCH_L_MISSING;
	if (q->naddr == c->naddr &&
	    memcmp(q->addr, c->addr, (size_t)q->naddr * sizeof(q->addr[0])) ==
		0)
		return MATCH_L_EXACT;
	while (i < q->nbig && j < c->nbig) {
		if (q->abig[i] == c->abig[j]) {
			shared++;
			i++;
			j++;
		} else if (q->abig[i] < c->abig[j])
			i++;
		else
			j++;
	}
	if (q->nbig + c->nbig > 0 &&
	    2.0 * shared / (q->nbig + c->nbig) >= MATCH_ADDRESS_DICE)
		return MATCH_L_SIMILAR;
	return MATCH_L_DIFF;
}

void
match_levels(const struct match_rec *q, const struct match_rec *c,
    enum match_level level[MATCH_FIELDS])
{
	level[MATCH_F_NAME] = match_name(q, c);
	level[MATCH_F_BIRTH] = match_birth(q, c);
	level[MATCH_F_SEX] = q->sex == 0 || c->sex == 0 ? MATCH_L_MISSING
	    : q->sex == c->sex                          ? MATCH_L_EXACT
							: MATCH_L_DIFF;
	level[MATCH_F_PHONE] = match_phone(q, c);
	level[MATCH_F_ADDRESS] = match_address(q, c);
}

void
match_compare(const struct match_rec *q, const struct match_rec *c,
    struct match_result *out)
{
	match_compare_model(NULL, 0, q, c, out);
}

void
match_compare_model(const struct match_model *mm, double name_share,
    const struct match_rec *q, const struct match_rec *c,
    struct match_result *out)
{
	struct match_model def;
	double prior;
	size_t len = 0;

	memset(out, 0, sizeof(*out));
	if (q->cn_id[0] != '\0' && c->cn_id[0] != '\0' &&
	    strcmp(q->cn_id, c->cn_id) != 0) {
		out->excluded = true;
		snprintf(out->reason, sizeof(out->reason), "cn-id=diff");
		return;
	}
	if (mm == NULL) {
		match_model_default(&def);
		mm = &def;
	}
	match_levels(q, c, out->level);
	for (int f = 0; f < MATCH_FIELDS; f++) {
		enum match_level l = out->level[f];
		double w = mm->w[f][l];

		if (l == MATCH_L_MISSING)
			continue;
		/*
		 * Term frequency: the same name is as likely by chance as
		 * the name is common. Only a learnt model's u is the
		 * random pairs' that this replaces.
		 */
		if (f == MATCH_F_NAME && l == MATCH_L_EXACT && mm->learnt &&
		    name_share > 0 && mm->population > 0) {
			double floor = 1.0 / (double)mm->population;

			w = log2(mm->m[f][l] /
			    (name_share > floor ? name_share : floor));
		}
		out->weight += w;
		if (len < sizeof(out->reason))
			len += (size_t)snprintf(out->reason + len,
			    sizeof(out->reason) - len, "%s%s=%s",
			    len ? " " : "", match_field_name(f),
			    match_level_name(l));
	}
	prior = match_prior(mm, q);
	out->score = 1.0 / (1.0 + exp2(prior - out->weight));
	out->grade = match_grade_of(out->score);
}

/* Whether q gives field f. */
static bool
match_has(const struct match_rec *q, int f)
{
	return f == MATCH_F_NAME ? q->has_name
	    : f == MATCH_F_BIRTH ? q->birth[0] >= 0
	    : f == MATCH_F_SEX   ? q->sex != 0
	    : f == MATCH_F_PHONE ? q->nphone > 0
				 : q->naddr > 0;
}

double
match_prior(const struct match_model *mm, const struct match_rec *q)
{
	double wmax = 0;

	/*
	 * What the best agreement on the query's own fields would weigh: a
	 * query with little in it cannot reach the prior. (The fields the
	 * stored record lacks lower its score, not the prior: a record
	 * that near-agrees on a field ranks above one that lacks it.)
	 */
	for (int f = 0; f < MATCH_FIELDS; f++) {
		double best = 0;

		for (int l = 1; match_has(q, f) && l < MATCH_LEVELS; l++)
			if (mm->w[f][l] > best)
				best = mm->w[f][l];
		wmax += best;
	}
	return wmax - MATCH_MARGIN_BITS < mm->prior ? wmax - MATCH_MARGIN_BITS
						    : mm->prior;
}

double
match_best_without(const struct match_model *mm, const struct match_rec *q,
    const bool agrees[MATCH_FIELDS])
{
	double w = 0;

	for (int f = 0; f < MATCH_FIELDS; f++) {
		double best = -1e9;

		if (!match_has(q, f))
			continue;
		for (int l = 1; l < MATCH_LEVELS; l++)
			if (match_has_level(f, l) &&
			    !(!agrees[f] &&
				(l == MATCH_L_EXACT || l == MATCH_L_PINYIN ||
				    l == MATCH_L_SWAP)) &&
			    mm->w[f][l] > best)
				best = mm->w[f][l];
		w += best;
	}
	return 1.0 / (1.0 + exp2(match_prior(mm, q) - w));
}

double
match_bound(const struct match_model *mm, const struct match_rec *q,
    const struct match_rec *c, double prior)
{
	enum match_level lv[MATCH_FIELDS];
	double w = 0;

	lv[MATCH_F_BIRTH] = match_birth(q, c);
	lv[MATCH_F_SEX] = q->sex == 0 || c->sex == 0 ? MATCH_L_MISSING
	    : q->sex == c->sex                       ? MATCH_L_EXACT
						     : MATCH_L_DIFF;
	lv[MATCH_F_PHONE] = match_phone(q, c);
	for (int f = 0; f < MATCH_FIELDS; f++) {
		double best = 0;

		if (f == MATCH_F_NAME || f == MATCH_F_ADDRESS) {
			for (int l = 1; match_has(q, f) && l < MATCH_LEVELS;
			     l++)
				if (mm->w[f][l] > best)
					best = mm->w[f][l];
			/* A rare name weighs more than its level. */
			if (f == MATCH_F_NAME && mm->learnt &&
			    mm->population > 0) {
				double top = log2(mm->m[f][MATCH_L_EXACT] *
				    (double)mm->population);

				if (match_has(q, f) && top > best)
					best = top;
			}
		} else if (lv[f] != MATCH_L_MISSING)
			best = mm->w[f][lv[f]];
		w += best;
	}
	return 1.0 / (1.0 + exp2(prior - w));
}

void
match_model_default(struct match_model *mm)
{
	memset(mm, 0, sizeof(*mm));
	for (int f = 0; f < MATCH_FIELDS; f++)
		for (size_t i = 0; i < match_fields[f].n; i++) {
			const struct match_mu *mu = &match_fields[f].mu[i];

			mm->m[f][mu->level] = mu->m;
			mm->u[f][mu->level] = mu->u;
			mm->w[f][mu->level] = log2(mu->m / mu->u);
		}
	mm->prior = MATCH_PRIOR_BITS;
}

unsigned
match_pattern(const enum match_level level[MATCH_FIELDS])
{
	unsigned p = 0;

	for (int f = MATCH_FIELDS - 1; f >= 0; f--)
		p = p * MATCH_LEVELS + (unsigned)level[f];
	return p;
}

static void
match_unpattern(unsigned p, enum match_level level[MATCH_FIELDS])
{
	for (int f = 0; f < MATCH_FIELDS; f++) {
		level[f] = (enum match_level)(p % MATCH_LEVELS);
		p /= MATCH_LEVELS;
	}
}

/* Whether field f has level l (match.c's tables). */
static bool
match_has_level(int f, int l)
{
	for (size_t i = 0; i < match_fields[f].n; i++)
		if ((int)match_fields[f].mu[i].level == l)
			return true;
	return false;
}

/* Learning: what EM needs to trust its answer. */
#define EM_MIN_RANDOM  10000 /* random pairs compared */
#define EM_MIN_MATCHES 20.0  /* expected matches in a session */
#define EM_MAX_STEPS   1000
#define EM_EPSILON     1e-6
#define EM_FLOOR       1e-3 /* m: no level of a match is impossible */
#define EM_START_SHARE 0.01

/* A field's probabilities made to sum to 1 with none below floor. */
static void
match_normalise(double *p, int f, double floor)
{
	double sum = 0;

	for (int l = 1; l < MATCH_LEVELS; l++)
		if (match_has_level(f, l)) {
			if (p[l] < floor)
				p[l] = floor;
			sum += p[l];
		}
	for (int l = 1; l < MATCH_LEVELS; l++)
		if (match_has_level(f, l))
			p[l] /= sum;
}

/*
 * One EM session over the patterns of pairs that share a key on field
 * fixed (that field tells nothing there and is left out). u stays as the
 * random pairs gave it; m and the share of matches are estimated. The
 * expected number of matches, or -1 on no memory.
 */
static double
match_em(const uint32_t *cnt, int fixed, const double u[][MATCH_LEVELS],
    double m[][MATCH_LEVELS], double *share, int *steps)
{
	unsigned *pat = NULL;
	size_t np = 0;
	double total = 0, lambda = EM_START_SHARE, matches = 0;
	int step;

	for (unsigned p = 0; p < MATCH_PATTERNS; p++)
		if (cnt[p] > 0)
			np++;
	if (np == 0 || (pat = malloc(np * sizeof(*pat))) == NULL)
		return -1;
	np = 0;
	for (unsigned p = 0; p < MATCH_PATTERNS; p++)
		if (cnt[p] > 0) {
			pat[np++] = p;
			total += cnt[p];
		}
	for (step = 1; step <= EM_MAX_STEPS; step++) {
		double acc[MATCH_FIELDS][MATCH_LEVELS] = {{0}};
		double seen[MATCH_FIELDS] = {0}, rsum = 0, delta, nl;

		for (size_t i = 0; i < np; i++) {
			enum match_level lv[MATCH_FIELDS];
			double lm = lambda, lu = 1 - lambda, r;

			match_unpattern(pat[i], lv);
			for (int f = 0; f < MATCH_FIELDS; f++)
				if (f != fixed && lv[f] != MATCH_L_MISSING) {
					lm *= m[f][lv[f]];
					lu *= u[f][lv[f]];
				}
			r = lm / (lm + lu) * cnt[pat[i]];
			rsum += r;
			for (int f = 0; f < MATCH_FIELDS; f++)
				if (f != fixed && lv[f] != MATCH_L_MISSING) {
					acc[f][lv[f]] += r;
					seen[f] += r;
				}
		}
		nl = rsum / total;
		delta = fabs(nl - lambda);
		lambda = nl;
		matches = rsum;
		for (int f = 0; f < MATCH_FIELDS; f++) {
			if (f == fixed || seen[f] <= 0)
				continue;
			for (int l = 1; l < MATCH_LEVELS; l++)
				if (match_has_level(f, l)) {
					double v = acc[f][l] / seen[f];

					if (fabs(v - m[f][l]) > delta)
						delta = fabs(v - m[f][l]);
					m[f][l] = v;
				}
			match_normalise(m[f], f, EM_FLOOR);
		}
		if (delta < EM_EPSILON)
			break;
	}
	free(pat);
	/* Not settled within EM_MAX_STEPS: the last step is close. */
	*share = lambda;
	*steps = step > EM_MAX_STEPS ? EM_MAX_STEPS : step;
	return matches;
}

/* A field's m is believable when agreeing is evidence for and
 * disagreeing evidence against. */
static bool
match_sane(const struct match_model *mm, const double m[], int f)
{
	return m[MATCH_L_EXACT] > mm->u[f][MATCH_L_EXACT] &&
	    m[MATCH_L_DIFF] < mm->u[f][MATCH_L_DIFF];
}

int
match_model_estimate(struct match_model *mm, const uint32_t *rnd,
    const uint32_t *const blk[2], double mean_birth_pairs, uint64_t population)
{
	struct match_model def;
	double m[2][MATCH_FIELDS][MATCH_LEVELS], got[2], lambda;

	match_model_default(&def);
	*mm = def;
	if (population < 2)
		return -1;
	for (unsigned p = 0; p < MATCH_PATTERNS; p++)
		mm->random_pairs += rnd[p];
	/* u: how often each level holds between two random patients. */
	for (int f = 0; f < MATCH_FIELDS; f++) {
		double n[MATCH_LEVELS] = {0}, tot = 0;

		for (unsigned p = 0; p < MATCH_PATTERNS; p++) {
			enum match_level lv[MATCH_FIELDS];

			if (rnd[p] == 0)
				continue;
			match_unpattern(p, lv);
			if (lv[f] != MATCH_L_MISSING) {
				n[lv[f]] += rnd[p];
				tot += rnd[p];
			}
		}
		if (tot < EM_MIN_RANDOM)
			continue; /* too few have it: the default u */
		for (int l = 1; l < MATCH_LEVELS; l++)
			if (match_has_level(f, l)) /* never seen: half a pair */
				mm->u[f][l] = (n[l] > 0 ? n[l] : 0.5) / tot;
		match_normalise(mm->u[f], f, 0);
	}
	/* m and the share of matches, one session per blocking field. */
	for (int s = 0; s < 2; s++) {
		uint64_t pairs = 0;

		memcpy(m[s], def.m, sizeof(m[s]));
		for (unsigned p = 0; p < MATCH_PATTERNS; p++)
			pairs += blk[s][p];
		mm->blocked_pairs[s] = pairs;
		got[s] = pairs
		    ? match_em(blk[s], s == 0 ? MATCH_F_BIRTH : MATCH_F_NAME,
			  mm->u, m[s], &mm->share[s], &mm->iterations[s])
		    : -1;
	}
	/* The birth date's m from the name session, the name's from the
	 * birth date's, the rest from both, weighed by their matches. */
	for (int f = 0; f < MATCH_FIELDS; f++) {
		double w0 =
		    f == MATCH_F_BIRTH || got[0] < EM_MIN_MATCHES ? 0 : got[0];
		double w1 =
		    f == MATCH_F_NAME || got[1] < EM_MIN_MATCHES ? 0 : got[1];
		double v[MATCH_LEVELS];

		if (w0 + w1 <= 0)
			continue; /* the default m */
		for (int l = 0; l < MATCH_LEVELS; l++)
			v[l] = (w0 * m[0][f][l] + w1 * m[1][f][l]) / (w0 + w1);
		if (match_sane(mm, v, f))
			memcpy(mm->m[f], v, sizeof(v));
	}
	for (int f = 0; f < MATCH_FIELDS; f++)
		for (int l = 1; l < MATCH_LEVELS; l++)
			mm->w[f][l] = match_has_level(f, l)
			    ? log2(mm->m[f][l] / mm->u[f][l])
			    : 0;
	/*
	 * The prior: of all pairs, the share that is one person. The
	 * matches among pairs sharing a birth date are m(birth exact) of
	 * all matches, and a patient shares its birth date with
	 * mean_birth_pairs others of population - 1.
	 */
	if (got[0] < EM_MIN_MATCHES || mean_birth_pairs <= 0) {
		*mm = def;
		return -1;
	}
	lambda = mm->share[0] * mean_birth_pairs /
	    (mm->m[MATCH_F_BIRTH][MATCH_L_EXACT] * (double)(population - 1));
	if (!(lambda > 0 && lambda < 0.5)) {
		*mm = def;
		return -1;
	}
	mm->prior = log2((1 - lambda) / lambda);
	mm->population = population;
	mm->learnt = true;
	return 0;
}

/* Append cp to buf as UTF-8; the bytes written. */
static size_t
match_utf8(uint32_t cp, char *buf)
{
	if (cp < 0x80) {
		buf[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		buf[0] = (char)(0xc0 | cp >> 6);
		buf[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		buf[0] = (char)(0xe0 | cp >> 12);
		buf[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		buf[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	buf[0] = (char)(0xf0 | cp >> 18);
	buf[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	buf[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	buf[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Spell syllables ids[0..n) joined by spaces; the length. */
static size_t
match_spell(const uint16_t *ids, int n, char *buf)
{
	size_t len = 0;

	for (int i = 0; i < n; i++) {
		const char *s = unihan_syllable(ids[i]);
		size_t sl = s ? strlen(s) : 0;

		if (i > 0)
			buf[len++] = ' ';
		memcpy(buf + len, s ? s : "", sl);
		len += sl;
	}
	buf[len] = '\0';
	return len;
}

static int
match_u16_cmp(const void *a, const void *b)
{
	return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

size_t
match_key(enum match_key_kind kind, const char *name, const char *birth_date,
    const char *phone, char *buf)
{
	struct name_norm n;
	uint16_t ids[NAME_NORM_MAX];
	char digits[MATCH_PHONE_MAX + 1];
	int d[8], nd;
	size_t len = 0;

	buf[0] = '\0';
	switch (kind) {
	case MATCH_KEY_BIRTH:
		if (match_parse_birth(birth_date, d) == -1)
			return 0;
		memcpy(buf, birth_date, 11);
		return 10;
	case MATCH_KEY_PHONE:
		if ((nd = match_phone_digits(phone, digits)) < 7)
			return 0;
		memcpy(buf, digits, (size_t)nd + 1);
		return (size_t)nd;
	case MATCH_KEY_SURNAME_YEAR:
		if (match_parse_birth(birth_date, d) == -1 || name == NULL ||
		    name_normalise(name, strlen(name), &n, NULL) == -1)
			return 0;
		if (n.nsyl > 0 && n.surname_len > 0)
			len = match_spell(n.syl, n.surname_len, buf);
		else
			len = match_utf8(n.chars[0], buf);
		buf[len++] = ' ';
		memcpy(buf + len, birth_date, 4);
		len += 4;
		buf[len] = '\0';
		return len;
	case MATCH_KEY_NAME:
		if (name == NULL ||
		    name_normalise(name, strlen(name), &n, NULL) == -1)
			return 0;
		if (n.nsyl > 0) {
			memcpy(ids, n.syl, (size_t)n.nsyl * sizeof(ids[0]));
			qsort(
			    ids, (size_t)n.nsyl, sizeof(ids[0]), match_u16_cmp);
			return match_spell(ids, n.nsyl, buf);
		}
		/* No reading: the folded characters, marked apart. */
		buf[len++] = '=';
		for (int i = 0; i < n.nchars; i++)
			len += match_utf8(n.chars[i], buf + len);
		buf[len] = '\0';
		return len;
	default:
		return 0;
	}
}

int
match_birth_swapped(const char *birth_date, char *buf)
{
	static const int mdays[] = {
	    31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int d[8], y, m, day;

	if (match_parse_birth(birth_date, d) == -1)
		return 0;
	y = d[0] * 1000 + d[1] * 100 + d[2] * 10 + d[3];
	m = d[6] * 10 + d[7]; /* the day read as a month */
	day = d[4] * 10 + d[5];
	if (m == day || m < 1 || m > 12 || day < 1 || day > mdays[m - 1])
		return 0;
	if (m == 2 && day == 29 &&
	    !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 0;
	memcpy(buf, birth_date, 5);
	buf[5] = (char)('0' + m / 10);
	buf[6] = (char)('0' + m % 10);
	buf[7] = '-';
	buf[8] = (char)('0' + day / 10);
	buf[9] = (char)('0' + day % 10);
	buf[10] = '\0';
	return 1;
}
