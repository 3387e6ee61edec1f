/*
 * validate.h: the syntax rules of the registry's data, as pure functions.
 *
 * Every check takes the field's path (e.g. "identifiers[1].value") and, on
 * failure, writes "path: why" into err and returns -1. Nothing here does I/O,
 * reads the clock or allocates: "today" is passed in (validate_today reads
 * it once per request), so the functions can be fuzzed and tested on a fixed
 * date.
 */
#ifndef ONECARD_VALIDATE_H
#define ONECARD_VALIDATE_H

#include <stddef.h>

#include "onecard.pb-c.h"

#define VALIDATE_MAX_DOMAIN 64 /* bytes of an identifier's domain */
#define VALIDATE_MAX_VALUE  64 /* bytes of an identifier's value */
#define VALIDATE_MAX_CODE   32 /* bytes of a hospital code */
#define VALIDATE_MAX_PHONE  32
#define VALIDATE_MIN_SSC    4
#define VALIDATE_MAX_SSC    32
#define VALIDATE_MIN_YEAR   1800 /* earliest birth year taken as real */
#define VALIDATE_CN_ID_LEN  18
#define VALIDATE_PID_LEN    27 /* "P" + 26 base32 characters */

/* The kinds of identifier domain. */
enum validate_domain {
	VALIDATE_CN_ID = 0,
	VALIDATE_CN_SSC,
	VALIDATE_HOSP,
	VALIDATE_PID,
};

/* What a check needs to know besides its input. */
struct validate_ctx {
	int today;          /* YYYYMMDD; dates after it are in the future */
	size_t max_name;    /* bytes of a name */
	size_t max_address; /* bytes of an address */
};

/* What a valid cn-id says about its holder. */
struct validate_cn_id_info {
	char birth_date[11]; /* YYYY-MM-DD */
	int sex;             /* ONECARD__V1__SEX__SEX_MALE or _FEMALE */
};

/* Today's date in China Standard Time (UTC+8) as YYYYMMDD. */
int validate_today(void);

/* 0 when the len bytes at s are well-formed UTF-8 (no overlongs, no
 * surrogates, nothing above U+10FFFF), -1 otherwise. */
int validate_utf8(const char *s, size_t len);

/* A YYYY-MM-DD date that exists and is not after today. */
int validate_date(
    int today, const char *field, const char *s, char *err, size_t errlen);

/* A GB 11643-1999 number; norm (19 bytes) gets it with x upper-cased and
 * info (may be NULL) the birth date and sex it encodes. */
int validate_cn_id(int today, const char *field, const char *value, char *norm,
    struct validate_cn_id_info *info, char *err, size_t errlen);

/* A hospital code: letters, digits, - and _, 1..32 bytes. */
int validate_hospital_code(
    const char *field, const char *code, char *err, size_t errlen);

/* UTF-8 text of at most max bytes with no control characters. */
int validate_text(
    const char *field, const char *s, size_t max, char *err, size_t errlen);

/* Digits, spaces and + - ( ), at most VALIDATE_MAX_PHONE bytes. */
int validate_phone(const char *field, const char *s, char *err, size_t errlen);

/*
 * An identifier. field names the Identifier (e.g. "identifiers[1]"); the
 * message says ".domain" or ".value". On success returns the domain kind
 * and writes the stored form of value into norm (normlen >=
 * VALIDATE_MAX_VALUE + 1); cn-id info goes to info when not NULL.
 */
int validate_identifier(const struct validate_ctx *c, const char *field,
    const Onecard__V1__Identifier *id, char *norm, size_t normlen,
    struct validate_cn_id_info *info, char *err, size_t errlen);

/* Every given field of a Demographics (field: e.g. "demographics"). */
int validate_demographics(const struct validate_ctx *c, const char *field,
    const Onecard__V1__Demographics *d, char *err, size_t errlen);

/* The birth date and sex in d (where given) agree with a cn-id's. */
int validate_agrees_cn_id(const char *field, const Onecard__V1__Demographics *d,
    const struct validate_cn_id_info *info, char *err, size_t errlen);

#endif
