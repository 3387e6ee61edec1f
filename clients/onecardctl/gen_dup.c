/*
 * gen_dup.c: the error model of onecardctl gen --duplicates: how a
 * registration desk turns one person into a second record. A copy gets one
 * to three errors, each from the table below, in the spirit of the FEBRL
 * and GeCo corruptors but for Chinese registration data: a same-sound
 * character, a traditional form, a character lost, added or mistyped, the
 * name typed in pinyin, day and month swapped, one digit of the birth date
 * or the phone wrong, a field left blank. Characters come from Unihan
 * (registry/match/unihan.h), never from a hand-written table. The copy
 * holds no cn-id or cn-ssc (else the registry would know it is the same
 * person): only the visit card the caller gives it.
 *
 * Its own PRNG stream, so the population's originals are the same rows
 * with or without duplicates. Never talks to the broker.
 */
#include <stdio.h>
#include <string.h>

#include "gen.h"
#include "unihan.h"

#define DUP_CJK_FIRST 0x4e00
#define DUP_CJK_LAST  0x9fff
#define DUP_CHARS_MAX 8

/* The errors a copy may get, with their weights (per 100). */
enum dup_error {
	DUP_NAME_SOUND,   /* 章 for 张: another character, the same pinyin */
	DUP_NAME_VARIANT, /* 張 for 张: the traditional form */
	DUP_NAME_DELETE,  /* a character lost */
	DUP_NAME_INSERT,  /* a character doubled */
	DUP_NAME_SUBST,   /* a character of another name typed */
	DUP_NAME_PINYIN,  /* "Zhang Wei" for 张伟 */
	DUP_BIRTH_SWAP,   /* 1980-04-03 for 1980-03-04 */
	DUP_BIRTH_SLIP,   /* one digit of the date wrong */
	DUP_BIRTH_NONE,   /* not given */
	DUP_PHONE_SLIP,   /* one digit wrong */
	DUP_PHONE_NONE,   /* not given */
	DUP_SEX_NONE,     /* not given */
	DUP_ADDRESS_NONE, /* not given */
	DUP_ERRORS
};

static const struct {
	const char *name; /* as the truth file says it */
	unsigned weight;
} dup_errors[DUP_ERRORS] = {
    [DUP_NAME_SOUND] = {"name=sound", 18},
    [DUP_NAME_VARIANT] = {"name=variant", 8},
    [DUP_NAME_DELETE] = {"name=delete", 6},
    [DUP_NAME_INSERT] = {"name=insert", 4},
    [DUP_NAME_SUBST] = {"name=substitute", 6},
    [DUP_NAME_PINYIN] = {"name=pinyin", 6},
    [DUP_BIRTH_SWAP] = {"birth=swap", 8},
    [DUP_BIRTH_SLIP] = {"birth=slip", 10},
    [DUP_BIRTH_NONE] = {"birth=missing", 3},
    [DUP_PHONE_SLIP] = {"phone=slip", 10},
    [DUP_PHONE_NONE] = {"phone=missing", 6},
    [DUP_SEX_NONE] = {"sex=missing", 4},
    [DUP_ADDRESS_NONE] = {"address=missing", 11},
};

/* Characters a mistyped name may take (common given-name characters). */
static const char *const dup_subst[] = {"伟", "芳", "娜", "敏", "静", "丽",
    "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀",
    "霞", "平", "刚", "桂", "英", "华", "玉", "文", "红", "辉", "建", "国"};

static uint64_t
dup_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256**, as gen.c, on the duplicates' own state. */
uint64_t
gen_dup_rand(struct gen_dup_rng *r)
{
	uint64_t *s = r->s, v = dup_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = dup_rotl(s[3], 45);
	return v;
}

static uint64_t
dup_rand(struct gen_dup_rng *r)
{
	return gen_dup_rand(r);
}

static uint64_t
dup_below(struct gen_dup_rng *r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)dup_rand(r) * n) >> 64);
}

/* Decode a name's code points (at most DUP_CHARS_MAX); how many. */
static size_t
dup_decode(const char *s, uint32_t *cp)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;

	while (*p != '\0' && n < DUP_CHARS_MAX) {
		if (*p < 0x80)
			cp[n++] = *p++;
		else if ((*p & 0xe0) == 0xc0 && p[1]) {
			cp[n++] =
			    ((uint32_t)(p[0] & 0x1f) << 6) | (p[1] & 0x3f);
			p += 2;
		} else if ((*p & 0xf0) == 0xe0 && p[1] && p[2]) {
			cp[n++] = ((uint32_t)(p[0] & 0x0f) << 12) |
			    ((uint32_t)(p[1] & 0x3f) << 6) | (p[2] & 0x3f);
			p += 3;
		} else
			return 0; /* 4-byte and broken text: not ours */
	}
	return n;
}

/* Encode n code points (BMP) into dst (len bytes). */
static void
dup_encode(const uint32_t *cp, size_t n, char *dst, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 4 < len; i++) {
		if (cp[i] < 0x80)
			dst[o++] = (char)cp[i];
		else if (cp[i] < 0x800) {
			dst[o++] = (char)(0xc0 | (cp[i] >> 6));
			dst[o++] = (char)(0x80 | (cp[i] & 0x3f));
		} else {
			dst[o++] = (char)(0xe0 | (cp[i] >> 12));
			dst[o++] = (char)(0x80 | ((cp[i] >> 6) & 0x3f));
			dst[o++] = (char)(0x80 | (cp[i] & 0x3f));
		}
	}
	dst[o] = '\0';
}

/*
 * Another character like c: same reading and itself simplified (sound),
 * or a traditional form that folds to c (variant). The k-th of them for
 * a random k; 0 when there is none.
 */
static uint32_t
dup_like(struct gen_dup_rng *r, uint32_t c, int variant)
{
	uint16_t reading = unihan_reading(c);
	unsigned n = 0, k = 0;

	if (!variant && reading == UNIHAN_NO_SYLLABLE)
		return 0;
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			if (n == 0)
				return 0;
			k = (unsigned)dup_below(r, n);
			n = 0;
		}
		for (uint32_t cp = DUP_CJK_FIRST; cp <= DUP_CJK_LAST; cp++) {
			int like = cp != c &&
			    (variant ? unihan_fold(cp) == c
				     : unihan_fold(cp) == cp &&
					unihan_reading(cp) == reading);

			if (!like)
				continue;
			if (pass == 1 && n == k)
				return cp;
			n++;
		}
	}
	return 0;
}

/* The name in pinyin: "Zhang Wei", the surname's syllable first. */
static int
dup_pinyin(const uint32_t *cp, size_t n, char *dst, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		const char *syl = unihan_syllable(unihan_reading(cp[i]));
		int w;

		if (syl == NULL)
			return -1;
		w = snprintf(dst + o, len - o, "%s%c%s", i == 1 ? " " : "",
		    i <= 1 ? syl[0] - 'a' + 'A' : syl[0], syl + 1);
		if (w < 0 || (size_t)w >= len - o)
			return -1;
		o += (size_t)w;
	}
	return 0;
}

/* A digit of s (the k-th digit) changed to another; -1 when s has none. */
static int
dup_digit_slip(struct gen_dup_rng *r, char *s)
{
	size_t idx[40], n = 0;

	for (size_t i = 0; s[i] != '\0' && n < 40; i++)
		if (s[i] >= '0' && s[i] <= '9')
			idx[n++] = i;
	if (n == 0)
		return -1;
	char *d = &s[idx[dup_below(r, n)]];
	*d = (char)('0' + (*d - '0' + 1 + (int)dup_below(r, 9)) % 10);
	return 0;
}

/* A real date? (y-m-d as digits) */
static int
dup_date_ok(const char *s)
{
	static const int mdays[12] = {
	    31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, m, d;

	if (sscanf(s, "%4d-%2d-%2d", &y, &m, &d) != 3 || y < 1900 || y > 2024 ||
	    m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return 0;
	if (m == 2 && d == 29)
		return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return 1;
}

/* Apply error e to p; -1 when it does not apply to this record. */
static int
dup_apply(struct gen_dup_rng *r, struct gen_patient *p, int e)
{
	uint32_t cp[DUP_CHARS_MAX + 1], c;
	size_t n = dup_decode(p->name, cp), i;
	char buf[sizeof(p->birth_date)];
	unsigned y, m, d;

	switch (e) {
	case DUP_NAME_SOUND:
	case DUP_NAME_VARIANT:
		if (n == 0)
			return -1;
		/* try each character from a random one on */
		for (size_t t = 0, at = dup_below(r, n); t < n; t++) {
			i = (at + t) % n;
			if ((c = dup_like(r, cp[i], e == DUP_NAME_VARIANT)) !=
			    0) {
				cp[i] = c;
				dup_encode(cp, n, p->name, sizeof(p->name));
				return 0;
			}
		}
		return -1;
	case DUP_NAME_DELETE:
		if (n < 3) /* a two-character name keeps both */
			return -1;
		i = 1 + dup_below(r, n - 1);
		memmove(&cp[i], &cp[i + 1], (n - i - 1) * sizeof(*cp));
		dup_encode(cp, n - 1, p->name, sizeof(p->name));
		return 0;
	case DUP_NAME_INSERT:
		if (n == 0 || n >= DUP_CHARS_MAX)
			return -1;
		i = 1 + dup_below(r, n);
		memmove(&cp[i + 1], &cp[i], (n - i) * sizeof(*cp));
		cp[i] = cp[i - 1];
		dup_encode(cp, n + 1, p->name, sizeof(p->name));
		return 0;
	case DUP_NAME_SUBST: {
		uint32_t s[2];

		if (n < 2 ||
		    dup_decode(dup_subst[dup_below(r,
				   sizeof(dup_subst) / sizeof(dup_subst[0]))],
			s) != 1)
			return -1;
		i = 1 + dup_below(r, n - 1);
		if (cp[i] == s[0])
			return -1;
		cp[i] = s[0];
		dup_encode(cp, n, p->name, sizeof(p->name));
		return 0;
	}
	case DUP_NAME_PINYIN:
		if (n == 0 || dup_pinyin(cp, n, p->name, sizeof(p->name)) == -1)
			return -1;
		return 0;
	case DUP_BIRTH_SWAP:
		if (sscanf(p->birth_date, "%4u-%2u-%2u", &y, &m, &d) != 3 ||
		    d > 12 || d == m || y > 9999 || m > 99)
			return -1;
		snprintf(buf, sizeof(buf), "%04u-%02u-%02u", y % 10000u,
		    d % 100u, m % 100u);
		memcpy(p->birth_date, buf, sizeof(buf));
		return 0;
	case DUP_BIRTH_SLIP:
		if (p->birth_date[0] == '\0')
			return -1;
		for (int t = 0; t < 8; t++) {
			memcpy(buf, p->birth_date, sizeof(buf));
			if (dup_digit_slip(r, buf) == 0 && dup_date_ok(buf)) {
				memcpy(p->birth_date, buf, sizeof(buf));
				return 0;
			}
		}
		return -1;
	case DUP_BIRTH_NONE:
		p->birth_date[0] = '\0';
		return 0;
	case DUP_PHONE_SLIP:
		return p->phone[0] == '\0' ? -1 : dup_digit_slip(r, p->phone);
	case DUP_PHONE_NONE:
		if (p->phone[0] == '\0')
			return -1;
		p->phone[0] = '\0';
		return 0;
	case DUP_SEX_NONE:
		p->sex[0] = '\0';
		return 0;
	case DUP_ADDRESS_NONE:
		if (p->address[0] == '\0')
			return -1;
		p->address[0] = '\0';
		return 0;
	}
	return -1;
}

void
gen_dup_make(
    struct gen_dup_rng *r, const struct gen_patient *o, struct gen_patient *p)
{
	unsigned total = 0, want, done = 0;
	int used[DUP_ERRORS] = {0};
	size_t el = 0;

	memcpy(p->name, o->name, sizeof(p->name));
	memcpy(p->sex, o->sex, sizeof(p->sex));
	memcpy(p->birth_date, o->birth_date, sizeof(p->birth_date));
	memcpy(p->phone, o->phone, sizeof(p->phone));
	memcpy(p->address, o->address, sizeof(p->address));
	p->cnid[0] = p->ssc[0] = '\0';
	p->errors[0] = '\0';
	for (int e = 0; e < DUP_ERRORS; e++)
		total += dup_errors[e].weight;
	/* one error (60%), two (about 30%) or three (about 10%) */
	want = 1 + (dup_below(r, 10) >= 6) + (dup_below(r, 10) == 0);
	for (int tries = 0; done < want && tries < 64; tries++) {
		uint64_t x = dup_below(r, total);
		int e = 0;

		while (x >= dup_errors[e].weight)
			x -= dup_errors[e++].weight;
		/* one error a field (an insert and a delete could undo
		 * each other) */
		const char *eq = strchr(dup_errors[e].name, '=');
		char field[16];

		snprintf(field, sizeof(field), "%.*s",
		    (int)(eq - dup_errors[e].name + 1), dup_errors[e].name);
		if (used[e] || strstr(p->errors, field) != NULL)
			continue;
		if (dup_apply(r, p, e) == -1)
			continue;
		used[e] = 1;
		el += (size_t)snprintf(p->errors + el, sizeof(p->errors) - el,
		    "%s%s", el ? ";" : "", dup_errors[e].name);
		if (el >= sizeof(p->errors))
			el = sizeof(p->errors) - 1;
		done++;
	}
	/* never an unchanged copy: a blank sex always applies */
	if (done == 0 && dup_apply(r, p, DUP_SEX_NONE) == 0)
		snprintf(p->errors, sizeof(p->errors), "%s",
		    dup_errors[DUP_SEX_NONE].name);
	p->dup = 1;
	p->cluster = o->cluster;
}
