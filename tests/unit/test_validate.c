/*
 * test_validate.c: the syntax rules of registry/validate.c on a fixed "today"
 * (2026-11-26): cn-id check characters and embedded dates, every domain,
 * UTF-8 edge cases, and each limit at its edge.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "validate.h"

#define TODAY 20261126

static const struct validate_ctx ctx = {
    .today = TODAY, .max_name = 128, .max_address = 256};

static char err[256];

/* Validate domain=value; returns the kind or -1, the stored form in norm. */
static int
check_id(const char *domain, const char *value, char *norm)
{
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	char buf[VALIDATE_MAX_VALUE + 1];

	id.domain = (char *)domain;
	id.value = (char *)value;
	err[0] = '\0';
	return validate_identifier(&ctx, "identifiers[1]", &id,
	    norm ? norm : buf, VALIDATE_MAX_VALUE + 1, NULL, err, sizeof(err));
}

/* A string of n copies of c. */
static const char *
repeat(char c, size_t n)
{
	static char buf[1024];

	memset(buf, c, n);
	buf[n] = '\0';
	return buf;
}

static void
cn_id_known_good_is_accepted(void **state)
{
	char norm[VALIDATE_MAX_VALUE + 1];
	struct validate_cn_id_info info;

	assert_int_equal(
	    check_id("cn-id", "11010519491231002X", norm), VALIDATE_CN_ID);
	assert_string_equal(norm, "11010519491231002X");
	assert_int_equal(validate_cn_id(TODAY, "f", "11010519491231002X", NULL,
			     &info, err, sizeof(err)),
	    0);
	assert_string_equal(info.birth_date, "1949-12-31");
	assert_int_equal(info.sex, ONECARD__V1__SEX__SEX_FEMALE);
}

static void
cn_id_lower_case_x_is_stored_upper(void **state)
{
	char norm[VALIDATE_MAX_VALUE + 1];

	assert_int_equal(
	    check_id("cn-id", "11010519491231002x", norm), VALIDATE_CN_ID);
	assert_string_equal(norm, "11010519491231002X");
}

static void
cn_id_bad_check_char_names_the_right_one(void **state)
{
	assert_int_equal(check_id("cn-id", "110105194912310021", NULL), -1);
	assert_string_equal(
	    err, "identifiers[1].value: cn-id check character should be X");
	assert_int_equal(check_id("cn-id", "11010519491231002Y", NULL), -1);
	assert_non_null(strstr(err, "identifiers[1].value"));
}

static void
cn_id_leap_day_only_in_leap_years(void **state)
{
	assert_int_equal(check_id("cn-id", "110105198002290013", NULL),
	    VALIDATE_CN_ID); /* 1980 is a leap year */
	assert_int_equal(check_id("cn-id", "110105190002290017", NULL),
	    -1); /* 1900 is not */
	assert_non_null(strstr(err, "birth date"));
}

static void
cn_id_bad_dates_are_refused(void **state)
{
	/* Feb 30 and month 13, each with a correct check character. */
	assert_int_equal(check_id("cn-id", "110105198002300023", NULL), -1);
	assert_non_null(strstr(err, "day 30 does not exist"));
	assert_int_equal(check_id("cn-id", "110105198013010013", NULL), -1);
	assert_non_null(strstr(err, "month 13"));
}

static void
cn_id_future_birth_date_is_refused(void **state)
{
	assert_int_equal(check_id("cn-id", "110105209901010012", NULL), -1);
	assert_non_null(strstr(err, "future"));
}

static void
cn_id_wrong_length_or_chars_is_refused(void **state)
{
	assert_int_equal(check_id("cn-id", "11010519491231002", NULL), -1);
	assert_non_null(strstr(err, "18 characters"));
	assert_int_equal(check_id("cn-id", "11010519491231002X0", NULL), -1);
	assert_int_equal(check_id("cn-id", "1101051949123100AX", NULL), -1);
	assert_non_null(strstr(err, "should be a digit"));
	assert_int_equal(check_id("cn-id", "", NULL), -1);
}

static void
cn_id_sex_parity_must_agree_with_demographics(void **state)
{
	Onecard__V1__Demographics d = ONECARD__V1__DEMOGRAPHICS__INIT;
	struct validate_cn_id_info info;

	/* 17th digit 3: male. */
	assert_int_equal(validate_cn_id(TODAY, "f", "320102198506150030", NULL,
			     &info, err, sizeof(err)),
	    0);
	assert_int_equal(info.sex, ONECARD__V1__SEX__SEX_MALE);
	d.sex = ONECARD__V1__SEX__SEX_FEMALE;
	assert_int_equal(
	    validate_agrees_cn_id("demographics", &d, &info, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "demographics.sex"));
	d.sex = ONECARD__V1__SEX__SEX_MALE;
	assert_int_equal(
	    validate_agrees_cn_id("demographics", &d, &info, err, sizeof(err)),
	    0);
	d.sex = ONECARD__V1__SEX__SEX_UNKNOWN;
	assert_int_equal(
	    validate_agrees_cn_id("demographics", &d, &info, err, sizeof(err)),
	    0);
}

static void
cn_id_birth_date_must_agree_with_demographics(void **state)
{
	Onecard__V1__Demographics d = ONECARD__V1__DEMOGRAPHICS__INIT;
	struct validate_cn_id_info info;

	assert_int_equal(validate_cn_id(TODAY, "f", "320102198506150022", NULL,
			     &info, err, sizeof(err)),
	    0);
	d.birth_date = "1985-06-16";
	assert_int_equal(
	    validate_agrees_cn_id("demographics", &d, &info, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "demographics.birth_date"));
	d.birth_date = "1985-06-15";
	assert_int_equal(
	    validate_agrees_cn_id("demographics", &d, &info, err, sizeof(err)),
	    0);
}

static void
cn_ssc_is_upper_cased_and_bounded(void **state)
{
	char norm[VALIDATE_MAX_VALUE + 1];

	assert_int_equal(check_id("cn-ssc", "ab12", norm), VALIDATE_CN_SSC);
	assert_string_equal(norm, "AB12");
	assert_int_equal(check_id("cn-ssc", "ab1", NULL), -1);
	assert_int_equal(
	    check_id("cn-ssc", repeat('A', 32), norm), VALIDATE_CN_SSC);
	assert_int_equal(check_id("cn-ssc", repeat('A', 33), NULL), -1);
	assert_int_equal(check_id("cn-ssc", "AB-12", NULL), -1);
	assert_non_null(strstr(err, "letters and digits"));
}

static void
hosp_domain_code_and_value_syntax(void **state)
{
	char norm[VALIDATE_MAX_VALUE + 1], dom[64], code[40];

	assert_int_equal(
	    check_id("hosp:XC-001_a", "MRN-1/2", norm), VALIDATE_HOSP);
	assert_string_equal(norm, "MRN-1/2");
	assert_int_equal(check_id("hosp:", "1", NULL), -1);
	assert_non_null(strstr(err, "identifiers[1].domain"));
	assert_int_equal(check_id("hosp:X.1", "1", NULL), -1);
	memcpy(code, repeat('C', 32), 33);
	snprintf(dom, sizeof(dom), "hosp:%s", code);
	assert_int_equal(check_id(dom, "1", NULL), VALIDATE_HOSP);
	memcpy(code, repeat('C', 33), 34);
	snprintf(dom, sizeof(dom), "hosp:%s", code);
	assert_int_equal(check_id(dom, "1", NULL), -1);
	assert_int_equal(
	    check_id("hosp:A", repeat('v', 64), NULL), VALIDATE_HOSP);
	assert_int_equal(check_id("hosp:A", repeat('v', 65), NULL), -1);
	assert_int_equal(check_id("hosp:A", "MRN 1", NULL), -1);
	assert_non_null(strstr(err, "no spaces") ?: strstr(err, "without"));
	assert_int_equal(check_id("hosp:A", "", NULL), -1);
	assert_int_equal(check_id("hosp:A", "caf\xc3\xa9", NULL), -1);
}

static void
pid_syntax_is_the_registrys(void **state)
{
	assert_int_equal(
	    check_id("pid", "PABCDEFGHIJKLMNOPQRSTUVWXYZ", NULL), VALIDATE_PID);
	assert_int_equal(check_id("pid", "P234567ABCDEFGHIJKLMNOPQRS", NULL),
	    -1); /* 26 characters */
	assert_int_equal(
	    check_id("pid", "Pabcdefghijklmnopqrstuvwxyz", NULL), -1);
	assert_int_equal(
	    check_id("pid", "QABCDEFGHIJKLMNOPQRSTUVWXYZ", NULL), -1);
	assert_int_equal(
	    check_id("pid", "P1BCDEFGHIJKLMNOPQRSTUVWXYZ", NULL), -1);
}

static void
unknown_domain_is_refused(void **state)
{
	assert_int_equal(check_id("passport", "E1234567", NULL), -1);
	assert_non_null(strstr(err, "identifiers[1].domain: unknown domain"));
	assert_int_equal(check_id("", "1", NULL), -1);
	assert_int_equal(check_id("CN-ID", "11010519491231002X", NULL), -1);
	assert_int_equal(check_id(repeat('d', 65), "1", NULL), -1);
}

static void
utf8_edge_cases(void **state)
{
	assert_int_equal(validate_utf8("", 0), 0);
	assert_int_equal(validate_utf8("\xe5\xbc\xa0\xe4\xb8\x89", 6), 0);
	assert_int_equal(validate_utf8("\xf0\x9f\x98\x80", 4), 0); /* U+1F600 */
	assert_int_equal(validate_utf8("\xf4\x8f\xbf\xbf", 4), 0); /* max */
	assert_int_equal(validate_utf8("\xf4\x90\x80\x80", 4), -1); /* >max */
	assert_int_equal(validate_utf8("\xc0\xaf", 2), -1);     /* overlong / */
	assert_int_equal(validate_utf8("\xe0\x80\xaf", 3), -1); /* overlong */
	assert_int_equal(
	    validate_utf8("\xf0\x80\x80\xaf", 4), -1);          /* overlong */
	assert_int_equal(validate_utf8("\xed\xa0\x80", 3), -1); /* surrogate */
	assert_int_equal(validate_utf8("\xed\x9f\xbf", 3), 0);  /* U+D7FF */
	assert_int_equal(validate_utf8("\x80", 1), -1);     /* continuation */
	assert_int_equal(validate_utf8("\xe5\xbc", 2), -1); /* truncated */
	assert_int_equal(validate_utf8("\xe5\x41\xa0", 3), -1);
	assert_int_equal(validate_utf8("\xff", 1), -1);
}

static void
name_and_address_limits_at_their_edge(void **state)
{
	Onecard__V1__Demographics d = ONECARD__V1__DEMOGRAPHICS__INIT;
	char name[200], addr[300];

	memcpy(name, repeat('n', 128), 129);
	d.name = name;
	assert_int_equal(
	    validate_demographics(&ctx, "demographics", &d, err, sizeof(err)),
	    0);
	memcpy(name, repeat('n', 129), 130);
	assert_int_equal(
	    validate_demographics(&ctx, "demographics", &d, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "demographics.name"));
	assert_non_null(strstr(err, "over the limit of 128"));
	d.name = "\xe5\xbc\xa0\xc0\xaf";
	assert_int_equal(
	    validate_demographics(&ctx, "demographics", &d, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "UTF-8"));
	d.name = "a\nb";
	assert_int_equal(
	    validate_demographics(&ctx, "demographics", &d, err, sizeof(err)),
	    -1);
	d.name = "";
	memcpy(addr, repeat('a', 256), 257);
	d.address = addr;
	assert_int_equal(
	    validate_demographics(&ctx, "demographics", &d, err, sizeof(err)),
	    0);
	memcpy(addr, repeat('a', 257), 258);
	assert_int_equal(
	    validate_demographics(&ctx, "demographics", &d, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "demographics.address"));
}

static void
phone_charset_and_limit(void **state)
{
	char phone[40];

	assert_int_equal(
	    validate_phone("phone", "+86 (10) 1234-5678", err, sizeof(err)), 0);
	assert_int_equal(validate_phone("phone", "123x", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "phone:"));
	memcpy(phone, repeat('1', 32), 33);
	assert_int_equal(validate_phone("phone", phone, err, sizeof(err)), 0);
	memcpy(phone, repeat('1', 33), 34);
	assert_int_equal(validate_phone("phone", phone, err, sizeof(err)), -1);
}

static void
birth_date_must_be_real_and_not_future(void **state)
{
	assert_int_equal(
	    validate_date(TODAY, "d", "2000-02-29", err, sizeof(err)), 0);
	assert_int_equal(
	    validate_date(TODAY, "d", "2026-11-26", err, sizeof(err)), 0);
	assert_int_equal(
	    validate_date(TODAY, "d", "2026-11-27", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "future"));
	assert_int_equal(
	    validate_date(TODAY, "d", "2001-02-29", err, sizeof(err)), -1);
	assert_int_equal(
	    validate_date(TODAY, "d", "2001-13-01", err, sizeof(err)), -1);
	assert_int_equal(
	    validate_date(TODAY, "d", "2001-04-31", err, sizeof(err)), -1);
	assert_int_equal(
	    validate_date(TODAY, "d", "2001-4-30", err, sizeof(err)), -1);
	assert_int_equal(
	    validate_date(TODAY, "d", "20010430", err, sizeof(err)), -1);
	assert_int_equal(
	    validate_date(TODAY, "d", "2001-04-3a", err, sizeof(err)), -1);
	assert_int_equal(
	    validate_date(TODAY, "d", "1799-12-31", err, sizeof(err)), -1);
}

static void
demographics_sex_out_of_range_is_refused(void **state)
{
	Onecard__V1__Demographics d = ONECARD__V1__DEMOGRAPHICS__INIT;

	d.sex = 7;
	assert_int_equal(
	    validate_demographics(&ctx, "demographics", &d, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "demographics.sex"));
}

static void
hospital_code_syntax(void **state)
{
	char code[40];

	assert_int_equal(
	    validate_hospital_code("code", "XC-001_b", err, sizeof(err)), 0);
	assert_int_equal(
	    validate_hospital_code("code", "", err, sizeof(err)), -1);
	assert_int_equal(
	    validate_hospital_code("code", "XC 001", err, sizeof(err)), -1);
	memcpy(code, repeat('H', 32), 33);
	assert_int_equal(
	    validate_hospital_code("code", code, err, sizeof(err)), 0);
	memcpy(code, repeat('H', 33), 34);
	assert_int_equal(
	    validate_hospital_code("code", code, err, sizeof(err)), -1);
}

static void
today_is_a_plausible_date(void **state)
{
	int t = validate_today();

	assert_true(t >= 20240101 && t <= 29991231);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(cn_id_known_good_is_accepted),
	    cmocka_unit_test(cn_id_lower_case_x_is_stored_upper),
	    cmocka_unit_test(cn_id_bad_check_char_names_the_right_one),
	    cmocka_unit_test(cn_id_leap_day_only_in_leap_years),
	    cmocka_unit_test(cn_id_bad_dates_are_refused),
	    cmocka_unit_test(cn_id_future_birth_date_is_refused),
	    cmocka_unit_test(cn_id_wrong_length_or_chars_is_refused),
	    cmocka_unit_test(cn_id_sex_parity_must_agree_with_demographics),
	    cmocka_unit_test(cn_id_birth_date_must_agree_with_demographics),
	    cmocka_unit_test(cn_ssc_is_upper_cased_and_bounded),
	    cmocka_unit_test(hosp_domain_code_and_value_syntax),
	    cmocka_unit_test(pid_syntax_is_the_registrys),
	    cmocka_unit_test(unknown_domain_is_refused),
	    cmocka_unit_test(utf8_edge_cases),
	    cmocka_unit_test(name_and_address_limits_at_their_edge),
	    cmocka_unit_test(phone_charset_and_limit),
	    cmocka_unit_test(birth_date_must_be_real_and_not_future),
	    cmocka_unit_test(demographics_sex_out_of_range_is_refused),
	    cmocka_unit_test(hospital_code_syntax),
	    cmocka_unit_test(today_is_a_plausible_date),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
