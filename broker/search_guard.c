/*
 * search_guard.c: the search guards (docs/protocol.md, "search"): a
 * hospital's search names someone, it does not list a birth date's or a
 * surname's patients; its results are capped; and its criteria go to the
 * audit trail masked. It never runs a search and never writes a criterion
 * unmasked. Admins, the registry's stewards, are exempt from the guard and
 * the cap (they review duplicates and export anyway); their searches are
 * audited the same way.
 */
#include <stdio.h>
#include <string.h>

#include "registry.h"
#include "search_guard.h"

#define SEARCH_GUARD_RANKED_DEFAULT 10 /* registry_match.c's limit 0 */
#define SEARCH_GUARD_RANKED_MAX     100

/* Is s set and not empty? */
static int
search_guard_given(const char *s)
{
	return s != NULL && s[0] != '\0';
}

int
search_guard_check(int role, const Onecard__V1__Search *s, unsigned max_results,
    unsigned exact_default, Onecard__V1__Search *copy,
    const Onecard__V1__Search **run, char *err, size_t errlen)
{
	const Onecard__V1__Identifier *id = s->identifier;
	int name = search_guard_given(s->name);
	int birth = search_guard_given(s->birth_date);
	int phone = search_guard_given(s->phone);
	int has_id = id != NULL &&
	    (search_guard_given(id->domain) || search_guard_given(id->value));
	unsigned limit;

	*run = s;
	if (role == ONECARD__V1__ROLE__ROLE_ADMIN)
		return 0;
	*copy = *s;
	if (s->exact) {
		/* Exact search reads no phone and no identifier. */
		if (!name || !birth) {
			snprintf(err, errlen,
			    "search: a hospital's exact search needs a name "
			    "and a birth_date; %s missing",
			    !name && !birth ? "name and birth_date"
				: !name     ? "name"
					    : "birth_date");
			return -1;
		}
		limit = s->limit != 0 && s->limit < exact_default
		    ? s->limit
		    : exact_default;
	} else {
		if (!(name && (birth || phone))) {
			if (!has_id) {
				snprintf(err, errlen,
				    "search: a hospital's search needs an "
				    "identifier, or a name together with a "
				    "birth_date or a phone; %s missing",
				    name ? "birth_date or phone"
					: birth || phone
					? "name"
					: "identifier, or name and "
					  "birth_date or phone");
				return -1;
			}
			/* The identifier alone names its holder: the rest
			 * would list others (everyone born that day). */
			copy->name = (char *)"";
			copy->birth_date = (char *)"";
			copy->phone = (char *)"";
		}
		limit = s->limit == 0 ? SEARCH_GUARD_RANKED_DEFAULT : s->limit;
		if (limit > SEARCH_GUARD_RANKED_MAX)
			limit = SEARCH_GUARD_RANKED_MAX;
	}
	copy->limit =
	    max_results != 0 && limit > max_results ? max_results : limit;
	*run = copy;
	return 0;
}

/* Where search_guard_describe writes. */
struct search_guard_out {
	char *buf, *p, *end;
};

/* Append " key=" (no space first) and n bytes of v, or nothing if full. */
static void
search_guard_put(
    struct search_guard_out *o, const char *key, const char *v, size_t n)
{
	size_t k = strlen(key), sp = o->p != o->buf;

	if ((size_t)(o->end - o->p) <= sp + k + 1 + n)
		return;
	if (sp)
		*o->p++ = ' ';
	memcpy(o->p, key, k);
	o->p[k] = '=';
	memcpy(o->p + k + 1, v, n);
	o->p += k + 1 + n;
	*o->p = '\0';
}

/*
 * name: its first character if that is one whole UTF-8 character (else
 * '?'), then a '*' for each other character, at most 32. dst holds 40.
 */
static size_t
search_guard_mask_name(const char *name, char *dst)
{
	const unsigned char *s = (const unsigned char *)name;
	size_t want = s[0] < 0x80         ? 1
	    : s[0] >= 0xc2 && s[0] < 0xe0 ? 2
	    : s[0] >= 0xe0 && s[0] < 0xf0 ? 3
	    : s[0] >= 0xf0 && s[0] < 0xf5 ? 4
					  : 0;
	size_t len = 1, n = 0, stars = 0;

	while (want > 1 && len < want && (s[len] & 0xc0) == 0x80)
		len++;
	if (want == 0 || len != want || s[0] < 0x20 || s[0] == 0x7f)
		dst[n++] = '?';
	else {
		memcpy(dst, s, len);
		n = len;
	}
	for (const unsigned char *q = s + len; *q != '\0'; q++)
		if ((*q & 0xc0) != 0x80 && stars < 32) {
			dst[n++] = '*';
			stars++;
		}
	dst[n] = '\0';
	return n;
}

void
search_guard_describe(const Onecard__V1__Search *s, char *buf, size_t buflen)
{
	struct search_guard_out o = {buf, buf, buf + buflen};
	const Onecard__V1__Identifier *id = s->identifier;
	char tmp[128], val[80];
	size_t n, digits = 0, seen = 0;
	const char *q;

	if (buflen == 0)
		return;
	buf[0] = '\0';
	if (search_guard_given(s->name)) {
		n = search_guard_mask_name(s->name, tmp);
		search_guard_put(&o, "name", tmp, n);
	}
	if (search_guard_given(s->birth_date)) {
		int year = strlen(s->birth_date) >= 4;

		for (int i = 0; i < 4 && year; i++)
			year =
			    s->birth_date[i] >= '0' && s->birth_date[i] <= '9';
		search_guard_put(
		    &o, "birth", year ? s->birth_date : "?", year ? 4 : 1);
	}
	if (search_guard_given(s->phone)) {
		for (q = s->phone; *q; q++)
			digits += *q >= '0' && *q <= '9';
		n = 0;
		for (q = s->phone; *q != '\0' && n < 32; q++) {
			if (*q < '0' || *q > '9')
				continue;
			/* The last four, and only when there are more. */
			seen++;
			tmp[n++] = digits > 4 && digits - seen < 4 ? *q : '*';
		}
		search_guard_put(&o, "phone", tmp, n);
	}
	if (s->sex == ONECARD__V1__SEX__SEX_MALE)
		search_guard_put(&o, "sex", "male", 4);
	else if (s->sex == ONECARD__V1__SEX__SEX_FEMALE)
		search_guard_put(&o, "sex", "female", 6);
	if (id != NULL &&
	    (search_guard_given(id->domain) || search_guard_given(id->value))) {
		registry_mask_id(id->domain ? id->domain : "",
		    id->value ? id->value : "", val, sizeof(val));
		n = (size_t)snprintf(tmp, sizeof(tmp), "%.40s=%s",
		    id->domain ? id->domain : "", val);
		search_guard_put(&o, "identifier", tmp,
		    n < sizeof(tmp) ? n : sizeof(tmp) - 1);
	}
	if (s->exact)
		search_guard_put(&o, "exact", "1", 1);
	n = (size_t)snprintf(tmp, sizeof(tmp), "%u", (unsigned)s->limit);
	search_guard_put(&o, "limit", tmp, n);
}
