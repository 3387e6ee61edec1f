/*
 * match.h: are two patient records the same person? A Fellegi-Sunter
 * comparison: each field (name, birth date, sex, phone, address) is put at
 * one level of agreement, each level has a weight log2(m/u), and the sum
 * becomes a score in [0, 1] and a grade. Also the blocking keys a store
 * files a record under, so that a search gathers candidates by key instead
 * of scanning. docs/matching.md ("The model") gives the levels, the m and
 * u values, the thresholds and the keys.
 *
 * No global state and no registry: safe from any thread. Only learning a
 * model allocates (its scratch).
 */
#ifndef ONECARD_MATCH_H
#define ONECARD_MATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "name_norm.h"

/* The fields compared, in the order the reason names them. */
enum match_field {
	MATCH_F_NAME,
	MATCH_F_BIRTH,
	MATCH_F_SEX,
	MATCH_F_PHONE,
	MATCH_F_ADDRESS,
	MATCH_FIELDS
};

/* How one field compared; which levels a field has is in match.c. */
enum match_level {
	MATCH_L_MISSING, /* absent on either side: no evidence */
	MATCH_L_EXACT,   /* the same after folding */
	MATCH_L_PINYIN,  /* name: other characters, the same pinyin */
	MATCH_L_EDIT1,   /* name: one character missing, extra or wrong */
	MATCH_L_PINYIN1, /* name: one pinyin syllable missing, extra, wrong */
	MATCH_L_SWAP,    /* birth date: day and month swapped */
	MATCH_L_1DIGIT,  /* birth date, phone: one digit wrong (phone: or
			    missing or extra) */
	MATCH_L_SIMILAR, /* address: most character pairs shared */
	MATCH_L_DIFF,    /* disagrees */
	MATCH_LEVELS
};

/* The grades; the same numbers as onecard.v1.MatchGrade. */
enum match_grade {
	MATCH_GRADE_NONE = 0, /* below MATCH_POSSIBLE, or certainly not */
	MATCH_GRADE_CERTAIN = 1,
	MATCH_GRADE_PROBABLE = 2,
	MATCH_GRADE_POSSIBLE = 3,
};

/* Score thresholds of the grades (score >= threshold). */
#define MATCH_CERTAIN_SCORE  0.99
#define MATCH_PROBABLE_SCORE 0.90
#define MATCH_POSSIBLE_SCORE 0.50

/*
 * The prior, in bits: a pair that shares a blocking key is one person at
 * odds of 2^-MATCH_PRIOR_BITS before its fields are compared. A query that
 * gives few fields (a name alone) cannot reach that much weight, so its
 * prior is lowered to what full agreement on the given fields minus
 * MATCH_MARGIN_BITS is: full agreement on a weak query scores 0.985,
 * below MATCH_CERTAIN.
 */
#define MATCH_PRIOR_BITS  12.0
#define MATCH_MARGIN_BITS 6.0

#define MATCH_PHONE_MAX   32 /* digits kept of a phone */
#define MATCH_ADDRESS_MAX 96 /* code points of an address compared */
#define MATCH_REASON_MAX  96 /* bytes of a reason, with its NUL */

/* A record as the matcher compares it: each field parsed once. */
struct match_rec {
	bool has_name;
	struct name_norm name;
	int birth[8]; /* YYYYMMDD as digits; birth[0] < 0 when absent */
	int sex;      /* 0 unknown, 1 male, 2 female */
	int nphone;   /* digits in phone; 0 when absent */
	char phone[MATCH_PHONE_MAX + 1];
	int naddr; /* code points of the folded address; 0 when absent */
	uint32_t addr[MATCH_ADDRESS_MAX];
	int nbig; /* the address's neighbouring pairs, sorted */
	uint64_t abig[MATCH_ADDRESS_MAX];
	char cn_id[19]; /* the holder's cn-id, "" when none */
};

/*
 * Parse a record's fields (each may be NULL or ""). A name that does not
 * normalise (invalid UTF-8, control characters, too long) is treated as
 * absent; returns -1 then with *why naming the problem, else 0. A search
 * checks its input with it; a stored record's bad name only loses weight.
 */
int match_rec_init(struct match_rec *r, const char *name, int sex,
    const char *birth_date, const char *phone, const char *address,
    const char *cn_id, const char **why);

/*
 * match_rec_init for a candidate compared with query q only: a field q
 * lacks compares as missing whatever the candidate holds, so it is not
 * parsed (folding an address and sorting its pairs is most of the cost of
 * a candidate when the query gives none).
 */
void match_rec_init_for(const struct match_rec *q, struct match_rec *r,
    const char *name, int sex, const char *birth_date, const char *phone,
    const char *address, const char *cn_id);

/* What a comparison found. */
struct match_result {
	bool excluded; /* two different cn-ids: certainly not one person */
	double weight; /* the sum of the field weights, in bits */
	double score;  /* 0..1 */
	enum match_grade grade;
	enum match_level level[MATCH_FIELDS];
	char reason[MATCH_REASON_MAX]; /* "name=pinyin birth=swap ..." */
};

/*
 * Compare candidate c with query q. The prior comes from q's fields
 * (MATCH_PRIOR_BITS, lowered for a weak query), so compare an enrolled
 * record as q against the stored ones as c.
 */
void match_compare(const struct match_rec *q, const struct match_rec *c,
    struct match_result *out);

/*
 * A model: m and u of each field's levels, their weights and the prior.
 * match_model_default() gives the documented defaults (u among pairs that
 * share a blocking key, a fixed prior); match_model_estimate() learns one
 * from a registry's own pairs, Splink's way (docs/matching.md, "Learning
 * the model"): u from random pairs, m and the share of matches by EM over
 * pairs that share a birth date (for every field but the birth date) and
 * pairs that share a name (for the birth date), the prior from that share.
 * A learnt model also weighs a name that agrees by how common it is.
 */
struct match_model {
	double m[MATCH_FIELDS][MATCH_LEVELS];
	double u[MATCH_FIELDS][MATCH_LEVELS];
	double w[MATCH_FIELDS][MATCH_LEVELS]; /* log2(m/u); 0 if no level */
	double prior; /* bits: a pair is one person at odds 2^-prior */
	bool learnt;  /* weigh common names less (term frequency) */
	/* How it was learnt (0 for the defaults). */
	uint64_t population;       /* live patients */
	uint64_t sample;           /* of them, in the sample */
	uint64_t random_pairs;     /* compared for u */
	uint64_t blocked_pairs[2]; /* sharing a birth date; a name */
	double share[2];           /* of those, one person (EM) */
	int iterations[2];         /* EM steps to converge */
};

/* The defaults of match.c's tables. */
void match_model_default(struct match_model *mm);

/*
 * Which levels a comparison found, packed: one count per pattern of
 * levels. MATCH_PATTERNS patterns (MATCH_LEVELS ** MATCH_FIELDS).
 */
#define MATCH_PATTERNS 59049u /* 9^5 */
unsigned match_pattern(const enum match_level level[MATCH_FIELDS]);

/*
 * Learn a model. rnd: the pattern counts of random pairs of the
 * population; blk[0]: of pairs sharing a birth date, blk[1]: of pairs
 * sharing a name key (each MATCH_PATTERNS counts). mean_birth_pairs: how
 * many others share a patient's birth date, on average. Fields the data
 * cannot estimate keep the defaults. 0, or -1 when there is too little to
 * learn from (mm then holds the defaults).
 */
int match_model_estimate(struct match_model *mm, const uint32_t *rnd,
    const uint32_t *const blk[2], double mean_birth_pairs, uint64_t population);

/*
 * Compare with a model (NULL: the defaults). name_share: of the
 * population, the share that has the query's name (its pinyin key; 0 when
 * not known): a learnt model weighs an agreeing name log2(m / share)
 * instead of log2(m / u), so a common name such as 王伟 weighs less.
 */
void match_compare_model(const struct match_model *mm, double name_share,
    const struct match_rec *q, const struct match_rec *c,
    struct match_result *out);

/* The prior, in bits, a comparison with query q uses under model mm:
 * mm's, lowered for a query with little in it (MATCH_MARGIN_BITS). */
double match_prior(const struct match_model *mm, const struct match_rec *q);

/*
 * The best score a record can reach against q when, of the fields marked
 * false in agrees, it shares neither the value nor its reading (a name at
 * most edit1 or pinyin1, a birth date at most 1digit: what a record found
 * under none of those fields' blocking keys can do).
 */
double match_best_without(const struct match_model *mm,
    const struct match_rec *q, const bool agrees[MATCH_FIELDS]);

/*
 * The best score c can reach against q when only c's birth date, sex and
 * phone are parsed (match_rec_init_for with no name or address): those
 * fields as they compare, the name and the address at their best. A
 * candidate whose bound is below the grade wanted need not have its name
 * normalised or its address folded. prior: match_prior(mm, q), worked
 * out once for all of q's candidates.
 */
double match_bound(const struct match_model *mm, const struct match_rec *q,
    const struct match_rec *c, double prior);

/* The level of each field, whatever the cn-ids say. */
void match_levels(const struct match_rec *q, const struct match_rec *c,
    enum match_level level[MATCH_FIELDS]);

/* The weight, log2(m/u), of a field at a level; 0 for MATCH_L_MISSING or a
 * level the field does not have. */
double match_weight(enum match_field f, enum match_level l);

/* A field's name and a level's name, as a reason spells them. */
const char *match_field_name(enum match_field f);
const char *match_level_name(enum match_level l);

/* The grade of a score. */
enum match_grade match_grade_of(double score);

/*
 * Blocking keys: a store files each record under one key of each kind (""
 * for none), and a search or an enroll gathers its candidates from the
 * records under its own keys.
 */
enum match_key_kind {
	MATCH_KEY_SURNAME_YEAR, /* surname pinyin and birth year: "zhang 1980"
				 */
	MATCH_KEY_BIRTH,        /* the birth date as stored: "1980-05-17" */
	MATCH_KEY_PHONE,        /* the phone's digits, country code dropped */
	MATCH_KEY_NAME,         /* the name's syllables sorted: "san zhang" */
	MATCH_KEY_KINDS
};

#define MATCH_KEY_MAX (NAME_NORM_KEY_MAX + 8)

/* A record's key of one kind into buf (MATCH_KEY_MAX bytes): its length,
 * 0 when the record has none of that kind. */
size_t match_key(enum match_key_kind kind, const char *name,
    const char *birth_date, const char *phone, char *buf);

/*
 * The birth date with day and month swapped ("1980-05-07" for
 * "1980-07-05") into buf (11 bytes) when that is another real date: a
 * search also looks under it. 1 when written, else 0.
 */
int match_birth_swapped(const char *birth_date, char *buf);

#endif
