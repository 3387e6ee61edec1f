/*
 * test_identifier.c: the DOMAIN=VALUE syntax and the ONECARD_* environment
 * (clients/lib/client_util.c), as the CLIs rely on them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "onecard.h"

/* Parse s with a roomy buffer; 0 or -1 as onecard_identifier_parse. */
static int
parse(const char *s, char *buf, Onecard__V1__Identifier *id, char *err)
{
	return onecard_identifier_parse(s, buf, 256, id, err, 256);
}

static void
cn_id_splits_into_domain_and_value(void **state)
{
	Onecard__V1__Identifier id;
	char buf[256], err[256];

	assert_int_equal(parse("cn-id=11010519491231002X", buf, &id, err), 0);
	assert_string_equal(id.domain, "cn-id");
	assert_string_equal(id.value, "11010519491231002X");
	/* The fields point into the caller's buffer, not into s. */
	assert_ptr_equal(id.domain, buf);
}

static void
hospital_domain_keeps_its_code(void **state)
{
	Onecard__V1__Identifier id;
	char buf[256], err[256];

	assert_int_equal(parse("hosp:XC001=MRN-0001", buf, &id, err), 0);
	assert_string_equal(id.domain, "hosp:XC001");
	assert_string_equal(id.value, "MRN-0001");
}

static void
value_may_contain_equals_sign(void **state)
{
	Onecard__V1__Identifier id;
	char buf[256], err[256];

	assert_int_equal(parse("pid=p=1", buf, &id, err), 0);
	assert_string_equal(id.domain, "pid");
	assert_string_equal(id.value, "p=1");
}

static void
missing_equals_sign_is_refused(void **state)
{
	Onecard__V1__Identifier id;
	char buf[256], err[256];

	assert_int_equal(parse("11010519491231002X", buf, &id, err), -1);
	assert_non_null(strstr(err, "DOMAIN=VALUE"));
}

static void
empty_domain_is_refused(void **state)
{
	Onecard__V1__Identifier id;
	char buf[256], err[256];

	assert_int_equal(parse("=123", buf, &id, err), -1);
	assert_non_null(strstr(err, "domain"));
}

static void
empty_value_is_refused(void **state)
{
	Onecard__V1__Identifier id;
	char buf[256], err[256];

	assert_int_equal(parse("cn-ssc=", buf, &id, err), -1);
	assert_non_null(strstr(err, "empty value"));
}

static void
hosp_without_code_is_refused(void **state)
{
	Onecard__V1__Identifier id;
	char buf[256], err[256];

	assert_int_equal(parse("hosp:=MRN1", buf, &id, err), -1);
	assert_non_null(strstr(err, "hospital code"));
}

static void
space_or_control_character_in_value_is_refused(void **state)
{
	Onecard__V1__Identifier id;
	char buf[256], err[256];

	assert_int_equal(parse("cn-ssc=AB 12", buf, &id, err), -1);
	assert_int_equal(parse("cn-ssc=AB\t12", buf, &id, err), -1);
	assert_int_equal(parse("cn-ssc=AB\x7f", buf, &id, err), -1);
	assert_int_equal(parse("cn-ssc= AB12", buf, &id, err), -1);
}

static void
bad_character_in_domain_is_refused(void **state)
{
	Onecard__V1__Identifier id;
	char buf[256], err[256];

	assert_int_equal(parse("cn id=1", buf, &id, err), -1);
	assert_int_equal(parse("cn/id=1", buf, &id, err), -1);
	assert_non_null(strstr(err, "bad character"));
}

static void
overlong_domain_is_refused(void **state)
{
	Onecard__V1__Identifier id;
	char buf[256], err[256], s[128];

	memset(s, 'a', 65);
	strcpy(s + 65, "=1");
	assert_int_equal(parse(s, buf, &id, err), -1);
	memset(s, 'a', 64);
	strcpy(s + 64, "=1");
	assert_int_equal(parse(s, buf, &id, err), 0);
}

static void
identifier_longer_than_buffer_is_refused(void **state)
{
	Onecard__V1__Identifier id;
	char buf[8], err[256];

	assert_int_equal(onecard_identifier_parse("cn-ssc=ABCD", buf,
			     sizeof buf, &id, err, sizeof err),
	    -1);
	assert_non_null(strstr(err, "too long"));
	/* Exactly fitting (with its NUL) is fine. */
	assert_int_equal(onecard_identifier_parse(
			     "pid=ABC", buf, sizeof buf, &id, err, sizeof err),
	    0);
}

static void
null_input_is_refused_without_crashing(void **state)
{
	Onecard__V1__Identifier id;
	char buf[32];

	assert_int_equal(
	    onecard_identifier_parse(NULL, buf, sizeof buf, &id, NULL, 0), -1);
}

static void
environment_fills_only_unset_options(void **state)
{
	struct onecard_options opt;

	setenv("ONECARD_BROKER", "broker.example:7443", 1);
	setenv("ONECARD_CERT", "/env/cert.pem", 1);
	setenv("ONECARD_KEY", "", 1); /* empty counts as unset */
	setenv("ONECARD_CA", "/env/ca.pem", 1);
	memset(&opt, 0, sizeof opt);
	opt.cert = "/flag/cert.pem";
	onecard_options_from_env(&opt);
	assert_string_equal(opt.broker, "broker.example:7443");
	assert_string_equal(opt.cert, "/flag/cert.pem");
	assert_null(opt.key);
	assert_string_equal(opt.ca, "/env/ca.pem");
	unsetenv("ONECARD_BROKER");
	unsetenv("ONECARD_CERT");
	unsetenv("ONECARD_KEY");
	unsetenv("ONECARD_CA");
}

static void
every_error_code_has_its_own_text(void **state)
{
	int codes[] = {ONECARD_OK, ONECARD_EINVAL, ONECARD_ECONNECT,
	    ONECARD_ETLS, ONECARD_ETIMEDOUT, ONECARD_ECLOSED, ONECARD_EPROTO,
	    ONECARD_ENOMEM, ONECARD_EIO};
	size_t i, j, n = sizeof codes / sizeof codes[0];

	for (i = 0; i < n; i++) {
		assert_string_not_equal(onecard_strerror(codes[i]), "");
		for (j = 0; j < i; j++)
			assert_string_not_equal(onecard_strerror(codes[i]),
			    onecard_strerror(codes[j]));
	}
	assert_string_equal(onecard_strerror(-99), "unknown error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(cn_id_splits_into_domain_and_value),
	    cmocka_unit_test(hospital_domain_keeps_its_code),
	    cmocka_unit_test(value_may_contain_equals_sign),
	    cmocka_unit_test(missing_equals_sign_is_refused),
	    cmocka_unit_test(empty_domain_is_refused),
	    cmocka_unit_test(empty_value_is_refused),
	    cmocka_unit_test(hosp_without_code_is_refused),
	    cmocka_unit_test(space_or_control_character_in_value_is_refused),
	    cmocka_unit_test(bad_character_in_domain_is_refused),
	    cmocka_unit_test(overlong_domain_is_refused),
	    cmocka_unit_test(identifier_longer_than_buffer_is_refused),
	    cmocka_unit_test(null_input_is_refused_without_crashing),
	    cmocka_unit_test(environment_fills_only_unset_options),
	    cmocka_unit_test(every_error_code_has_its_own_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
