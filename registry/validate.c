/*
 * validate.c: syntax of identifiers, dates, text and demographics.
 *
 * Pure functions over their arguments: no I/O, no allocation, no globals.
 * Each failure names the field and says why in the caller's buffer; the
 * caller turns it into INVALID_ARGUMENT. The identity rules that need the
 * registry's state (who holds what) live in registry.c, not here.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "validate.h"

/* Write "field: why" into err and return -1. */
static int __attribute__((format(printf, 4, 5)))
validate_fail(char *err, size_t errlen, const char *field, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (err == NULL || errlen == 0)
		return -1;
	n = snprintf(err, errlen, "%s: ", field);
	if (n >= 0 && (size_t)n < errlen) {
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Write "field.suffix: why" into err and return -1. */
static int __attribute__((format(printf, 5, 6))) validate_fail2(char *err,
    size_t errlen, const char *field, const char *suffix, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (err == NULL || errlen == 0)
		return -1;
	n = snprintf(err, errlen, "%s.%s: ", field, suffix);
	if (n >= 0 && (size_t)n < errlen) {
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

int
validate_today(void)
{
	time_t t = time(NULL) + 8 * 3600;
	struct tm tm;

	gmtime_r(&t, &tm);
	return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

int
validate_utf8(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		unsigned char c = p[i];
		unsigned int cp;
		size_t n;

		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else
			return -1; /* continuation byte, C0/C1 overlong, > F4 */
		if (len - i <= n)
			return -1;
		for (size_t k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return -1;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000))
			return -1; /* overlong */
		if (cp >= 0xd800 && cp <= 0xdfff)
			return -1; /* surrogate */
		if (cp > 0x10ffff)
			return -1;
		i += n + 1;
	}
	return 0;
}

/* Days in month m of year y. */
static int
validate_month_days(int y, int m)
{
	static const int days[] = {
	    31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

/* Is y-m-d a real date no earlier than VALIDATE_MIN_YEAR and not after
 * today? Says why not in err. */
static int
validate_ymd(
    int today, const char *field, int y, int m, int d, char *err, size_t errlen)
{
	if (m < 1 || m > 12)
		return validate_fail(
		    err, errlen, field, "month %02d does not exist", m);
	if (d < 1 || d > validate_month_days(y, m))
		return validate_fail(err, errlen, field,
		    "day %02d does not exist in %04d-%02d", d, y, m);
	if (y < VALIDATE_MIN_YEAR)
		return validate_fail(err, errlen, field,
		    "year %04d is before %d", y, VALIDATE_MIN_YEAR);
	if (y * 10000 + m * 100 + d > today)
		return validate_fail(
		    err, errlen, field, "birth date lies in the future");
	return 0;
}

/* Parse n decimal digits at s; -1 if any is not a digit. */
static int
validate_digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int
validate_date(
    int today, const char *field, const char *s, char *err, size_t errlen)
{
	int y, m, d;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-' ||
	    (y = validate_digits(s, 4)) < 0 ||
	    (m = validate_digits(s + 5, 2)) < 0 ||
	    (d = validate_digits(s + 8, 2)) < 0)
		return validate_fail(
		    err, errlen, field, "should be a date as YYYY-MM-DD");
	return validate_ymd(today, field, y, m, d, err, errlen);
}

int
validate_cn_id(int today, const char *field, const char *value, char *norm,
    struct validate_cn_id_info *info, char *err, size_t errlen)
{
	static const int weights[17] = {
	    7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
	static const char check[] = "10X98765432";
	size_t len = strlen(value);
	int sum = 0, y, m, d;
	char want, got;

	if (len != VALIDATE_CN_ID_LEN)
		return validate_fail(err, errlen, field,
		    "cn-id should be 18 characters, not %zu", len);
	for (int i = 0; i < 17; i++) {
		if (value[i] < '0' || value[i] > '9')
			return validate_fail(err, errlen, field,
			    "cn-id character %d should be a digit", i + 1);
		sum += (value[i] - '0') * weights[i];
	}
	got = value[17] == 'x' ? 'X' : value[17];
	if ((got < '0' || got > '9') && got != 'X')
		return validate_fail(err, errlen, field,
		    "cn-id check character should be a digit or X");
	want = check[sum % 11];
	if (got != want)
		return validate_fail(err, errlen, field,
		    "cn-id check character should be %c", want);
	y = validate_digits(value + 6, 4);
	m = validate_digits(value + 10, 2);
	d = validate_digits(value + 12, 2);
	if (validate_ymd(today, field, y, m, d, err, errlen) == -1) {
		/* Say that it is the embedded date that is wrong. */
		char why[128];
		const char *p = err ? strstr(err, ": ") : NULL;

		snprintf(why, sizeof(why), "%s", p ? p + 2 : "bad date");
		return validate_fail(
		    err, errlen, field, "cn-id birth date: %s", why);
	}
	if (norm != NULL) {
		memcpy(norm, value, 17);
		norm[17] = got;
		norm[18] = '\0';
	}
	if (info != NULL) {
		char *b = info->birth_date;

		memcpy(b, value + 6, 4);
		b[4] = '-';
		memcpy(b + 5, value + 10, 2);
		b[7] = '-';
		memcpy(b + 8, value + 12, 2);
		b[10] = '\0';
		info->sex = (value[16] - '0') % 2
		    ? ONECARD__V1__SEX__SEX_MALE
		    : ONECARD__V1__SEX__SEX_FEMALE;
	}
	return 0;
}

int
validate_hospital_code(
    const char *field, const char *code, char *err, size_t errlen)
{
	size_t len = strlen(code);

	if (len == 0)
		return validate_fail(
		    err, errlen, field, "hospital code is empty");
	if (len > VALIDATE_MAX_CODE)
		return validate_fail(err, errlen, field,
		    "hospital code is over %d bytes", VALIDATE_MAX_CODE);
	for (size_t i = 0; i < len; i++) {
		char c = code[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '_'))
			return validate_fail(err, errlen, field,
			    "hospital code may hold only letters, digits, - "
			    "and _");
	}
	return 0;
}

int
validate_text(
    const char *field, const char *s, size_t max, char *err, size_t errlen)
{
	size_t len = strlen(s);

	if (len > max)
		return validate_fail(err, errlen, field,
		    "is %zu bytes, over the limit of %zu", len, max);
	if (validate_utf8(s, len) == -1)
		return validate_fail(err, errlen, field, "is not valid UTF-8");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return validate_fail(
			    err, errlen, field, "holds a control character");
	}
	return 0;
}

int
validate_phone(const char *field, const char *s, char *err, size_t errlen)
{
	size_t len = strlen(s);

	if (len > VALIDATE_MAX_PHONE)
		return validate_fail(err, errlen, field,
		    "is %zu bytes, over the limit of %d", len,
		    VALIDATE_MAX_PHONE);
	for (size_t i = 0; i < len; i++)
		if (strchr("0123456789 +-()", s[i]) == NULL)
			return validate_fail(err, errlen, field,
			    "may hold only digits, spaces and + - ( )");
	return 0;
}

/* A pid: "P" and 26 characters of the base32 alphabet A-Z 2-7. */
static int
validate_pid(const char *field, const char *v, char *err, size_t errlen)
{
	size_t len = strlen(v);

	if (len != VALIDATE_PID_LEN || v[0] != 'P')
		return validate_fail(err, errlen, field,
		    "is not a patient id this registry issued");
	for (size_t i = 1; i < len; i++)
		if (!((v[i] >= 'A' && v[i] <= 'Z') ||
			(v[i] >= '2' && v[i] <= '7')))
			return validate_fail(err, errlen, field,
			    "is not a patient id this registry issued");
	return 0;
}

/* A sub-check wrote ": why" (it was given an empty field name); make it
 * "field.suffix: why". Returns -1. */
static int
validate_rename(char *err, size_t errlen, const char *field, const char *suffix)
{
	char why[192];

	if (err == NULL || errlen == 0)
		return -1;
	snprintf(why, sizeof(why), "%s", strncmp(err, ": ", 2) ? err : err + 2);
	snprintf(err, errlen, "%s.%s: %s", field, suffix, why);
	return -1;
}

int
validate_identifier(const struct validate_ctx *c, const char *field,
    const Onecard__V1__Identifier *id, char *norm, size_t normlen,
    struct validate_cn_id_info *info, char *err, size_t errlen)
{
	const char *dom, *val;
	size_t len;

	/* Field paths are composed only when a check fails: this runs on
	 * every lookup. */
	if (id == NULL)
		return validate_fail(err, errlen, field, "is missing");
	dom = id->domain ? id->domain : "";
	val = id->value ? id->value : "";
	len = strlen(val);
	if (normlen < VALIDATE_MAX_VALUE + 1)
		return validate_fail(err, errlen, field, "no room to store");
	if (strlen(dom) > VALIDATE_MAX_DOMAIN)
		return validate_fail2(err, errlen, field, "domain",
		    "is over %d bytes", VALIDATE_MAX_DOMAIN);
	if (len == 0)
		return validate_fail2(err, errlen, field, "value", "is empty");

	if (strcmp(dom, "cn-id") == 0) {
		if (validate_cn_id(c->today, "", val, norm, info, err, errlen))
			return validate_rename(err, errlen, field, "value");
		return VALIDATE_CN_ID;
	}
	if (strcmp(dom, "cn-ssc") == 0) {
		if (len < VALIDATE_MIN_SSC || len > VALIDATE_MAX_SSC)
			return validate_fail2(err, errlen, field, "value",
			    "cn-ssc should be %d..%d characters, not %zu",
			    VALIDATE_MIN_SSC, VALIDATE_MAX_SSC, len);
		for (size_t i = 0; i < len; i++) {
			char ch = val[i];
			if (ch >= 'a' && ch <= 'z')
				ch = ch - 'a' + 'A';
			else if (!((ch >= 'A' && ch <= 'Z') ||
				     (ch >= '0' && ch <= '9')))
				return validate_fail2(err, errlen, field,
				    "value",
				    "cn-ssc may hold only letters and digits");
			norm[i] = ch;
		}
		norm[len] = '\0';
		return VALIDATE_CN_SSC;
	}
	if (strncmp(dom, "hosp:", 5) == 0) {
		if (validate_hospital_code("", dom + 5, err, errlen) == -1)
			return validate_rename(err, errlen, field, "domain");
		if (len > VALIDATE_MAX_VALUE)
			return validate_fail2(err, errlen, field, "value",
			    "is %zu bytes, over the limit of %d", len,
			    VALIDATE_MAX_VALUE);
		for (size_t i = 0; i < len; i++)
			if (val[i] < 0x21 || val[i] > 0x7e)
				return validate_fail2(err, errlen, field,
				    "value",
				    "may hold only printable ASCII without "
				    "spaces");
		memcpy(norm, val, len + 1);
		return VALIDATE_HOSP;
	}
	if (strcmp(dom, "pid") == 0) {
		if (validate_pid("", val, err, errlen) == -1)
			return validate_rename(err, errlen, field, "value");
		memcpy(norm, val, len + 1);
		return VALIDATE_PID;
	}
	if (validate_utf8(dom, strlen(dom)) == -1)
		return validate_fail2(
		    err, errlen, field, "domain", "is not valid UTF-8");
	return validate_fail2(err, errlen, field, "domain",
	    "unknown domain (cn-id, cn-ssc, hosp:<CODE> or pid)");
}

int
validate_demographics(const struct validate_ctx *c, const char *field,
    const Onecard__V1__Demographics *d, char *err, size_t errlen)
{
	char f[96];

	if (d == NULL)
		return 0;
	if (d->name && d->name[0] != '\0') {
		snprintf(f, sizeof(f), "%s.name", field);
		if (validate_text(f, d->name, c->max_name, err, errlen) == -1)
			return -1;
	}
	if (d->sex != ONECARD__V1__SEX__SEX_UNKNOWN &&
	    d->sex != ONECARD__V1__SEX__SEX_MALE &&
	    d->sex != ONECARD__V1__SEX__SEX_FEMALE) {
		snprintf(f, sizeof(f), "%s.sex", field);
		return validate_fail(
		    err, errlen, f, "unknown value %d", (int)d->sex);
	}
	if (d->birth_date && d->birth_date[0] != '\0') {
		snprintf(f, sizeof(f), "%s.birth_date", field);
		if (validate_date(c->today, f, d->birth_date, err, errlen) ==
		    -1)
			return -1;
	}
	if (d->phone && d->phone[0] != '\0') {
		snprintf(f, sizeof(f), "%s.phone", field);
		if (validate_phone(f, d->phone, err, errlen) == -1)
			return -1;
	}
	if (d->address && d->address[0] != '\0') {
		snprintf(f, sizeof(f), "%s.address", field);
		if (validate_text(f, d->address, c->max_address, err, errlen) ==
		    -1)
			return -1;
	}
	return 0;
}

int
validate_agrees_cn_id(const char *field, const Onecard__V1__Demographics *d,
    const struct validate_cn_id_info *info, char *err, size_t errlen)
{
	char f[96];

	if (d == NULL)
		return 0;
	if (d->birth_date && d->birth_date[0] != '\0' &&
	    strcmp(d->birth_date, info->birth_date) != 0) {
		snprintf(f, sizeof(f), "%s.birth_date", field);
		return validate_fail(err, errlen, f,
		    "does not agree with the cn-id's birth date");
	}
	if (d->sex != ONECARD__V1__SEX__SEX_UNKNOWN &&
	    (int)d->sex != info->sex) {
		snprintf(f, sizeof(f), "%s.sex", field);
		return validate_fail(err, errlen, f,
		    "does not agree with the cn-id (17th digit %s)",
		    info->sex == ONECARD__V1__SEX__SEX_MALE ? "odd: male"
							    : "even: female");
	}
	return 0;
}
