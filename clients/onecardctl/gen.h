/*
 * gen.h: a synthetic patient population for tests, demos and benchmarks.
 *
 * Deterministic by seed: the same options give the same rows, byte for byte,
 * on every machine (own PRNG, xoshiro256** seeded by splitmix64; never
 * rand()). Names follow the real frequency of Chinese surnames, resident ID
 * numbers are valid (Henan regions, birth date and sex encoded, MOD 11-2
 * check character) and unique, as are cn-ssc and hosp:<CODE> numbers.
 */
#ifndef ONECARD_GEN_H
#define ONECARD_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "csv.h"

#define GEN_MAX_VISITS 3

struct gen_options {
	unsigned long patients;
	unsigned hospitals;       /* codes H001..Hnnn, unless codes given */
	const char *const *codes; /* hospital codes, or NULL */
	size_t ncodes;
	uint64_t seed;
	/* The share of rows that are corrupted copies of the row before
	 * them (0 .. GEN_MAX_DUPLICATES; gen_dup.c has the error model). */
	double duplicates;
};

#define GEN_MAX_DUPLICATES 0.5

/* One generated patient; row's strings point into the other fields. */
struct gen_patient {
	char name[32];
	char sex[2];
	char birth_date[11];
	char phone[16];
	char address[160];
	char cnid[19];
	char ssc[24];
	char visit_domain[GEN_MAX_VISITS][48];
	char visit_value[GEN_MAX_VISITS][24];
	struct csv_row row;
	/* The ground truth: every row's cluster (its original's ordinal, from
	 * 1); dup is set on a corrupted copy, errors says what was done to it
	 * ("name=sound;birth=swap"). */
	unsigned long cluster;
	int dup;
	char errors[96];
};

struct gen;

/* A generator for opt (codes are copied); NULL when out of memory. */
struct gen *gen_new(const struct gen_options *opt);
void gen_free(struct gen *g);

/* The next patient, or -1 once opt.patients were made. */
int gen_next(struct gen *g, struct gen_patient *p);

/* The MOD 11-2 check character of the first 17 digits of a cn-id. */
char gen_cnid_check(const char *id17);

/* 1 when id is 17 digits and the right check character, else 0. */
int gen_cnid_valid(const char *id);

/*
 * Make p a corrupted copy of the original o (gen_dup.c): one to three
 * errors of the documented model, no cn-id or cn-ssc, and one new visit
 * card at hospital code (value made unique by the caller).
 */
struct gen_dup_rng {
	uint64_t s[4];
};
void gen_dup_make(
    struct gen_dup_rng *r, const struct gen_patient *o, struct gen_patient *p);
/* The next 64 bits of the copies' stream. */
uint64_t gen_dup_rand(struct gen_dup_rng *r);

/* onecardctl gen: write a population as CSV. */
int ctl_gen(int argc, char **argv);

#endif
