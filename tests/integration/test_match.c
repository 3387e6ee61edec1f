/*
 * test_match.c: matching through the real broker: a search typed with a
 * desk's errors finds the patient first, an enroll of the same person under
 * a near-identical name lists the existing record as a candidate (and is
 * still created), and a restarted broker rebuilds its blocking index from
 * the registry it loads.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static struct harness h;
static struct onecard_conn *conn;

static int
group_setup(void **state)
{
	static const char *const codes[] = {"XC001", "XC002", NULL};

	if (harness_start(&h, codes, NULL) == -1)
		return -1;
	return harness_connect(&h, "XC001", &conn) == ONECARD_OK ? 0 : -1;
}

static int
group_teardown(void **state)
{
	onecard_close(conn);
	harness_cleanup(&h);
	return 0;
}

/* Enroll name, birth, sex, phone with hosp:XC001=card; the reply. */
static Onecard__V1__Reply *
enroll(const char *name, const char *birth, int sex, const char *phone,
    const char *card)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Enroll e = ONECARD__V1__ENROLL__INIT;
	Onecard__V1__Demographics d = ONECARD__V1__DEMOGRAPHICS__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT, *ids[1];
	Onecard__V1__Reply *r;

	d.name = (char *)name;
	d.birth_date = (char *)birth;
	d.sex = sex;
	d.phone = (char *)phone;
	id.domain = "hosp:XC001";
	id.value = (char *)card;
	ids[0] = &id;
	e.demographics = &d;
	e.identifiers = ids;
	e.n_identifiers = 1;
	req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
	req.enroll = &e;
	assert_int_equal(onecard_call(conn, &req, &r), ONECARD_OK);
	assert_int_equal(r->code, ONECARD__V1__CODE__OK);
	return r;
}

/* A ranked search; the reply. */
static Onecard__V1__Reply *
search(const char *name, const char *birth, const char *phone)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Search s = ONECARD__V1__SEARCH__INIT;
	Onecard__V1__Reply *r;

	s.name = (char *)name;
	s.birth_date = (char *)birth;
	s.phone = (char *)phone;
	req.op_case = ONECARD__V1__REQUEST__OP_SEARCH;
	req.search = &s;
	assert_int_equal(onecard_call(conn, &req, &r), ONECARD_OK);
	return r;
}

static char zhang[48]; /* 张三's patient id */

/* Fill the registry: 张三 and people that look a little like him. */
static void
populate(void)
{
	static const struct {
		const char *name, *birth, *phone;
	} others[] = {
	    {"张伟", "1980-05-07", "13900000001"},
	    {"李三", "1980-05-07", "13900000002"},
	    {"张山", "1975-02-01", "13900000003"},
	    {"章珊", "1980-05-17", "13900000004"},
	    {"王芳", "1980-05-07", "13812345670"},
	};
	Onecard__V1__Reply *r;
	char card[16];

	r = enroll("张三", "1980-05-07", 1, "13812345678", "M1");
	snprintf(zhang, sizeof(zhang), "%s", r->enrolled->patient->patient_id);
	onecard_reply_free(r);
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		snprintf(card, sizeof(card), "O%zu", i);
		onecard_reply_free(enroll(
		    others[i].name, others[i].birth, 0, others[i].phone, card));
	}
}

static void
typo_search_finds_the_patient_first(void **state)
{
	static const struct {
		const char *name, *birth, *phone, *why;
	} typos[] = {
	    {"章三", "1980-05-07", "", "name=pinyin"},
	    {"張三", "1980-05-07", "", "name=exact"},
	    {"Zhang San", "1980-05-07", "", "name=pinyin"},
	    {"张三", "1980-07-05", "", "birth=swap"},
	    {"张三", "1980-05-08", "", "birth=1digit"},
	    {"张三", "", "13812345679", "phone=1digit"},
	};
	Onecard__V1__Reply *r;

	populate();
	for (size_t i = 0; i < sizeof(typos) / sizeof(typos[0]); i++) {
		r = search(typos[i].name, typos[i].birth, typos[i].phone);
		assert_int_equal(r->code, ONECARD__V1__CODE__OK);
		assert_true(r->search->n_matches >= 1);
		assert_int_equal(r->search->n_patients, r->search->n_matches);
		assert_string_equal(
		    r->search->matches[0]->patient->patient_id, zhang);
		assert_string_equal(r->search->patients[0]->patient_id, zhang);
		assert_non_null(
		    strstr(r->search->matches[0]->reason, typos[i].why));
		assert_true(r->search->matches[0]->grade >=
			ONECARD__V1__MATCH_GRADE__MATCH_CERTAIN &&
		    r->search->matches[0]->grade <=
			ONECARD__V1__MATCH_GRADE__MATCH_POSSIBLE);
		onecard_reply_free(r);
	}
	/* Nothing to match on is refused, naming what to give. */
	r = search("", "", "");
	assert_int_equal(r->code, ONECARD__V1__CODE__INVALID_ARGUMENT);
	assert_non_null(strstr(r->message, "name"));
	onecard_reply_free(r);
}

static void
enroll_of_a_near_duplicate_lists_the_candidate(void **state)
{
	Onecard__V1__Reply *r;

	/* The same man at another desk: traditional form, swapped date. */
	r = enroll("張三", "1980-07-05", 1, "", "M2");
	assert_true(r->enrolled->created);
	assert_int_equal(r->enrolled->n_possible_duplicates, 1);
	assert_string_equal(
	    r->enrolled->possible_duplicates[0]->patient_id, zhang);
	assert_true(r->enrolled->possible_duplicates[0]->grade ==
		ONECARD__V1__MATCH_GRADE__MATCH_PROBABLE ||
	    r->enrolled->possible_duplicates[0]->grade ==
		ONECARD__V1__MATCH_GRADE__MATCH_CERTAIN);
	assert_true(r->enrolled->possible_duplicates[0]->score >= 0.9);
	assert_string_equal(r->enrolled->possible_duplicates[0]->reason,
	    "name=exact birth=swap sex=exact");
	onecard_reply_free(r);
}

static void
restarted_broker_finds_by_blocking_keys_again(void **state)
{
	Onecard__V1__Reply *r;

	onecard_close(conn);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	assert_int_equal(harness_restart(&h, NULL), 0);
	/* A phone alone (the phone's blocking key only): an admin's search,
	 * since a hospital's needs a name beside it. */
	assert_int_equal(harness_connect(&h, "admin", &conn), ONECARD_OK);
	r = search("", "", "13812345678");
	assert_int_equal(r->code, ONECARD__V1__CODE__OK);
	assert_true(r->search->n_matches >= 1);
	assert_string_equal(r->search->matches[0]->patient->patient_id, zhang);
	onecard_reply_free(r);
}

/* --duplicate-check off (a bulk load): the same near duplicate is
 * enrolled without candidates; a bad value is refused by name. */
static void
duplicate_check_off_skips_the_candidates(void **state)
{
	static const char *const off[] = {"--duplicate-check", "off", NULL};
	char cmd[2048], out[512];
	Onecard__V1__Reply *r;

	onecard_close(conn);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	assert_int_equal(harness_restart(&h, off), 0);
	assert_int_equal(harness_connect(&h, "XC001", &conn), ONECARD_OK);
	r = enroll("張三", "1980-07-05", 1, "", "M3");
	assert_true(r->enrolled->created);
	assert_int_equal(r->enrolled->n_possible_duplicates, 0);
	onecard_reply_free(r);
	onecard_close(conn);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	assert_int_equal(harness_restart(&h, NULL), 0);
	assert_int_equal(harness_connect(&h, "XC001", &conn), ONECARD_OK);
	r = enroll("張三", "1980-07-05", 1, "", "M4");
	assert_true(r->enrolled->n_possible_duplicates >= 1);
	onecard_reply_free(r);
	snprintf(cmd, sizeof(cmd),
	    "onecardd --duplicate-check maybe --check-config --db '%s' "
	    "--cert '%s/broker.pem' --key '%s/broker.key' --ca '%s/ca.pem' "
	    "2>&1",
	    h.db, h.certs, h.certs, h.certs);
	assert_int_not_equal(harness_run(&h, NULL, out, sizeof(out), cmd), 0);
	assert_non_null(
	    strstr(out, "--duplicate-check: 'maybe' is neither on nor off"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(typo_search_finds_the_patient_first),
	    cmocka_unit_test(enroll_of_a_near_duplicate_lists_the_candidate),
	    cmocka_unit_test(restarted_broker_finds_by_blocking_keys_again),
	    cmocka_unit_test(duplicate_check_off_skips_the_candidates),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
