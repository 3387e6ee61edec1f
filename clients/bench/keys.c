/*
 * keys.c: the synthetic identities onecard-bench enrolls and looks up, and
 * how it picks among them.
 *
 * The k-th cn-id of a stream is made, not stored: region code from the
 * stream and its tag, birth date from k / 1000 (days after 1950-01-01),
 * sequence k % 1000 (odd for men), then the MOD 11-2 check character. So a
 * population made with --seed S can be looked up by a later run that only
 * knows S, and a write run's new patients (tagged with a fresh nonce) never
 * collide with a population's. Key choice is uniform or zipf; the random
 * numbers come from splitmix64, one state per connection.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define KEYS_DAYS  20000   /* birth dates from 1950-01-01 to 2004-10-04 */
#define KEYS_EPOCH (-7305) /* 1950-01-01 in days after 1970-01-01 */

uint64_t
keys_capacity(void)
{
	return (uint64_t)KEYS_DAYS * 1000;
}

/* Civil date of day z after 1970-01-01 (H. Hinnant's algorithm). */
static void
keys_civil(long z, int *y, int *m, int *d)
{
	long era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

/* Write v as n decimal digits at out. */
static void
keys_digits(char *out, unsigned v, int n)
{
	while (n-- > 0) {
		out[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

/* "YYYYMMDD" of key k at out (8 characters, no NUL). */
static void
keys_ymd(uint64_t k, char *out)
{
	int y, m, d;

	keys_civil(KEYS_EPOCH + (long)((k / 1000) % KEYS_DAYS), &y, &m, &d);
	keys_digits(out, (unsigned)y, 4);
	keys_digits(out + 4, (unsigned)m, 2);
	keys_digits(out + 6, (unsigned)d, 2);
}

void
keys_birth(uint64_t k, char *out, int *sex)
{
	char ymd[8];

	keys_ymd(k, ymd);
	memcpy(out, ymd, 4);
	out[4] = '-';
	memcpy(out + 5, ymd + 4, 2);
	out[7] = '-';
	memcpy(out + 8, ymd + 6, 2);
	out[10] = '\0';
	*sex = (k % 2) == 1 ? 1 : 2;
}

void
keys_cnid(enum keys_stream s, uint64_t tag, uint64_t k, char *out)
{
	static const int weights[17] = {
	    7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
	static const char check[] = "10X98765432";
	unsigned region;
	int sum = 0;

	region = (s == KEYS_POPULATION ? 400000u : 500000u) +
	    (unsigned)(tag % 100000);
	keys_digits(out, region, 6);
	keys_ymd(k, out + 6);
	keys_digits(out + 14, (unsigned)(k % 1000), 3);
	for (int i = 0; i < 17; i++)
		sum += (out[i] - '0') * weights[i];
	out[17] = check[sum % 11];
	out[18] = '\0';
}

void
keys_name(uint64_t k, char *out, size_t len)
{
	static const char *const surname[] = {"王", "李", "张", "刘", "陈",
	    "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林"};
	static const char *const given[] = {"伟", "芳", "娜", "敏", "静", "强",
	    "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超"};

	snprintf(out, len, "%s%s%s", surname[k % 16], given[(k / 16) % 16],
	    given[(k / 256) % 16]);
}

uint64_t
keys_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

double
keys_rand01(uint64_t *state)
{
	return (double)(keys_rand(state) >> 11) * 0x1.0p-53;
}

void
zipf_init(struct zipf *z, uint64_t n, double theta)
{
	double zeta2 = 1.0 + pow(0.5, theta);

	z->n = n;
	z->theta = theta;
	z->zetan = 0;
	for (uint64_t i = 1; i <= n; i++)
		z->zetan += 1.0 / pow((double)i, theta);
	z->alpha = 1.0 / (1.0 - theta);
	z->eta = (1.0 - pow(2.0 / (double)n, 1.0 - theta)) /
	    (1.0 - zeta2 / z->zetan);
	z->half_pow = 1.0 + pow(0.5, theta);
}

uint64_t
zipf_next(const struct zipf *z, uint64_t *state)
{
	double u = keys_rand01(state), uz = u * z->zetan;
	uint64_t rank, h;

	if (z->n <= 1 || uz < 1.0)
		rank = 0;
	else if (uz < z->half_pow)
		rank = 1;
	else
		rank = (uint64_t)((double)z->n *
		    pow(z->eta * u - z->eta + 1.0, z->alpha));
	if (rank >= z->n)
		rank = z->n - 1;
	/* Scramble, so the hot keys are not the first ones enrolled. */
	h = rank * 0x9e3779b97f4a7c15ULL;
	h ^= h >> 29;
	return h % z->n;
}

/* Field i (0-based) of a CSV line without quotes into out (len bytes);
 * 0, or -1 when the line has fewer fields or it does not fit. */
static int
keyfile_field(const char *line, int i, char *out, size_t len)
{
	size_t n;

	for (; i > 0; i--)
		if ((line = strchr(line, ',')) == NULL)
			return -1;
		else
			line++;
	n = strcspn(line, ",\r\n");
	if (n >= len)
		return -1;
	memcpy(out, line, n);
	out[n] = '\0';
	return 0;
}

static int
keyfile_grow(struct keyfile *kf, size_t *alloc, int demo)
{
	size_t na = *alloc == 0 ? 4096 : *alloc * 2;
	void *v;

	if ((v = realloc(kf->value, na * sizeof(*kf->value))) == NULL)
		return -1;
	kf->value = v;
	if (demo) {
		if ((v = realloc(kf->name, na * sizeof(*kf->name))) == NULL)
			return -1;
		kf->name = v;
		if ((v = realloc(kf->birth, na * sizeof(*kf->birth))) == NULL)
			return -1;
		kf->birth = v;
	}
	*alloc = na;
	return 0;
}

int
keyfile_load(const char *path, struct keyfile *kf)
{
	FILE *fp;
	char *line = NULL, *p;
	size_t cap = 0, alloc = 0;
	ssize_t n;
	int demo = 0, first = 1;

	memset(kf, 0, sizeof *kf);
	if ((fp = fopen(path, "r")) == NULL) {
		fprintf(
		    stderr, "onecard-bench: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((n = getline(&line, &cap, fp)) != -1) {
		/* onecardctl gen's header: its rows carry demographics. */
		if (first && strncmp(line, "name,sex,birth_date,", 20) == 0)
			demo = 1;
		first = 0;
		if ((p = strstr(line, "cn-id=")) == NULL)
			continue;
		p += 6;
		if (strspn(p, "0123456789Xx") < KEYS_CNID_LEN)
			continue;
		if (kf->n == alloc && keyfile_grow(kf, &alloc, demo) == -1) {
			fprintf(stderr, "onecard-bench: out of memory\n");
			free(line);
			fclose(fp);
			keyfile_free(kf);
			return -1;
		}
		memcpy(kf->value[kf->n], p, KEYS_CNID_LEN);
		kf->value[kf->n][KEYS_CNID_LEN] = '\0';
		if (demo &&
		    (keyfile_field(line, 0, kf->name[kf->n], KEYS_NAME_MAX) ==
			    -1 ||
			keyfile_field(line, 2, kf->birth[kf->n], 11) == -1))
			kf->name[kf->n][0] = kf->birth[kf->n][0] = '\0';
		kf->n++;
	}
	free(line);
	fclose(fp);
	if (kf->n == 0) {
		fprintf(stderr, "onecard-bench: %s: no cn-id found\n", path);
		return -1;
	}
	return 0;
}

void
keyfile_free(struct keyfile *kf)
{
	free(kf->value);
	free(kf->name);
	free(kf->birth);
	memset(kf, 0, sizeof *kf);
}
