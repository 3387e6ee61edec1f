/*
 * test_search_guard.c: broker/search_guard.c on its own: what a hospital's
 * search must give (ranked and exact), the narrowing of an identifier
 * search, the result cap, admins' exemption, and the masked criteria the
 * audit trail gets (a name's first character, a birth year, a phone's last
 * four digits, a masked cn-id; nothing whole, even from malformed input).
 * The source is compiled into the test (the broker is not a library).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../broker/search_guard.c"

#define HOSPITAL ONECARD__V1__ROLE__ROLE_HOSPITAL
#define ADMIN    ONECARD__V1__ROLE__ROLE_ADMIN

/* Check s as role with a cap of max: the verdict; err and *run set. */
static int
check(int role, const Onecard__V1__Search *s, unsigned max,
    Onecard__V1__Search *copy, const Onecard__V1__Search **run, char *err)
{
	err[0] = '\0';
	return search_guard_check(role, s, max, 50, copy, run, err, 256);
}

static void
a_hospital_must_name_someone(void **state)
{
	Onecard__V1__Search s = ONECARD__V1__SEARCH__INIT, copy;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	const Onecard__V1__Search *run;
	char err[256];

	(void)state;
	s.birth_date = "1980-01-01";
	assert_int_equal(check(HOSPITAL, &s, 0, &copy, &run, err), -1);
	assert_non_null(strstr(err, "; name missing"));
	s.birth_date = "";
	s.phone = "13812345678";
	assert_int_equal(check(HOSPITAL, &s, 0, &copy, &run, err), -1);
	assert_non_null(strstr(err, "; name missing"));
	s.phone = "";
	s.name = "王芳";
	assert_int_equal(check(HOSPITAL, &s, 0, &copy, &run, err), -1);
	assert_non_null(strstr(err, "; birth_date or phone missing"));
	s.name = "";
	s.sex = ONECARD__V1__SEX__SEX_MALE;
	assert_int_equal(check(HOSPITAL, &s, 0, &copy, &run, err), -1);
	assert_non_null(strstr(
	    err, "; identifier, or name and birth_date or phone missing"));
	/* Each accepted form. */
	s.name = "王芳";
	s.phone = "13812345678";
	assert_int_equal(check(HOSPITAL, &s, 0, &copy, &run, err), 0);
	assert_string_equal(run->phone, "13812345678");
	s.phone = "";
	s.birth_date = "1980-01-01";
	assert_int_equal(check(HOSPITAL, &s, 0, &copy, &run, err), 0);
	/* Exact reads neither phone nor identifier: name and birth date. */
	s.exact = 1;
	assert_int_equal(check(HOSPITAL, &s, 0, &copy, &run, err), 0);
	s.birth_date = "";
	s.phone = "13812345678";
	assert_int_equal(check(HOSPITAL, &s, 0, &copy, &run, err), -1);
	assert_non_null(strstr(err,
	    "exact search needs a name and a "
	    "birth_date; birth_date missing"));
	s.name = "";
	s.birth_date = "1980-01-01";
	id.domain = "hosp:XC001";
	id.value = "MRN-1";
	s.identifier = &id;
	assert_int_equal(check(HOSPITAL, &s, 0, &copy, &run, err), -1);
	assert_non_null(strstr(err, "; name missing"));
	/* Admins are exempt, and get the search as it came. */
	assert_int_equal(check(ADMIN, &s, 3, &copy, &run, err), 0);
	assert_ptr_equal(run, &s);
}

static void
an_identifier_alone_finds_its_holder_only(void **state)
{
	Onecard__V1__Search s = ONECARD__V1__SEARCH__INIT, copy;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	const Onecard__V1__Search *run;
	char err[256];

	(void)state;
	id.domain = "hosp:XC001";
	id.value = "MRN-1";
	s.identifier = &id;
	s.birth_date = "1980-01-01";
	s.phone = "1234";
	assert_int_equal(check(HOSPITAL, &s, 0, &copy, &run, err), 0);
	assert_ptr_equal(run, &copy);
	assert_ptr_equal(run->identifier, &id);
	assert_string_equal(run->birth_date, "");
	assert_string_equal(run->phone, "");
	assert_string_equal(run->name, "");
	/* With a name and a birth date, the demographics stay. */
	s.name = "王芳";
	assert_int_equal(check(HOSPITAL, &s, 0, &copy, &run, err), 0);
	assert_string_equal(run->birth_date, "1980-01-01");
}

static void
a_hospitals_results_are_capped(void **state)
{
	Onecard__V1__Search s = ONECARD__V1__SEARCH__INIT, copy;
	const Onecard__V1__Search *run;
	char err[256];

	(void)state;
	s.name = "王芳";
	s.birth_date = "1980-01-01";
	/* No cap: the protocol's (ranked 0 -> 10, at most 100). */
	assert_int_equal(check(HOSPITAL, &s, 0, &copy, &run, err), 0);
	assert_int_equal(run->limit, 10);
	s.limit = 500;
	assert_int_equal(check(HOSPITAL, &s, 0, &copy, &run, err), 0);
	assert_int_equal(run->limit, 100);
	assert_int_equal(check(HOSPITAL, &s, 7, &copy, &run, err), 0);
	assert_int_equal(run->limit, 7);
	s.limit = 3;
	assert_int_equal(check(HOSPITAL, &s, 7, &copy, &run, err), 0);
	assert_int_equal(run->limit, 3);
	/* Exact: 0 is the broker's --search-limit (50 here). */
	s.exact = 1;
	s.limit = 0;
	assert_int_equal(check(HOSPITAL, &s, 0, &copy, &run, err), 0);
	assert_int_equal(run->limit, 50);
	assert_int_equal(check(HOSPITAL, &s, 20, &copy, &run, err), 0);
	assert_int_equal(run->limit, 20);
	/* The request itself is never changed. */
	assert_int_equal(s.limit, 0);
}

/* The detail for s. */
static const char *
describe(const Onecard__V1__Search *s)
{
	static char buf[256];

	search_guard_describe(s, buf, sizeof buf);
	return buf;
}

static void
criteria_are_masked(void **state)
{
	Onecard__V1__Search s = ONECARD__V1__SEARCH__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	char small[8];

	(void)state;
	s.name = "张三丰";
	s.birth_date = "1949-12-31";
	s.phone = "+86 138-1234-5678";
	s.sex = ONECARD__V1__SEX__SEX_FEMALE;
	id.domain = "cn-id";
	id.value = "11010519491231002X";
	s.identifier = &id;
	s.limit = 5;
	assert_string_equal(describe(&s),
	    "name=张** birth=1949 phone=*********5678 sex=female "
	    "identifier=cn-id=110105********002X limit=5");
	/* Pinyin, a short phone (all stars), a bad date, exact. */
	memset(&s, 0, sizeof s);
	onecard__v1__search__init(&s);
	s.name = "Li Hua";
	s.phone = "5678";
	s.birth_date = "19x9-01-01";
	s.exact = 1;
	assert_string_equal(
	    describe(&s), "name=L***** birth=? phone=**** exact=1 limit=0");
	/* A name that starts with a broken or control character. */
	s.name = "\xe5\xbc";
	assert_non_null(strstr(describe(&s), "name=? "));
	s.name = "\x01secret";
	assert_non_null(strstr(describe(&s), "name=?****** "));
	s.name = "\xbc\xa0张";
	assert_non_null(strstr(describe(&s), "name=?* "));
	/* A buffer too small takes what fits, and never half a field. */
	onecard__v1__search__init(&s);
	s.name = "张三丰";
	search_guard_describe(&s, small, sizeof small);
	assert_true(strlen(small) < sizeof small);
	assert_null(strstr(small, "三"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_hospital_must_name_someone),
	    cmocka_unit_test(an_identifier_alone_finds_its_holder_only),
	    cmocka_unit_test(a_hospitals_results_are_capped),
	    cmocka_unit_test(criteria_are_masked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
