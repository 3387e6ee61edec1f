/*
 * test_audit_line.c: reading an audit trail line back into its fields
 * (clients/onecardctl/audit_line.c), as the access reports do: every field
 * the broker writes, escapes, fields a later broker may add, lines that are
 * not audit lines, and the cn-id mask the reports put over what they print.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "audit_line.h"

/* Parse a NUL-terminated line. */
static int
parse(const char *line, struct audit_rec *r)
{
	return audit_rec_parse(line, strlen(line), r);
}

static void
every_field_the_broker_writes_is_read(void **state)
{
	struct audit_rec r;

	(void)state;
	assert_int_equal(
	    parse("{\"seq\":42,\"time\":\"2026-11-26T14:30:00.123Z\","
		  "\"node\":\"mpi-1\",\"actor\":\"XC001\",\"role\":"
		  "\"hospital\",\"op\":\"lookup\",\"target\":\"cn-id="
		  "110105********002X\",\"patient_id\":\"P7Q2\",\"code\":"
		  "\"OK\",\"latency_us\":85,\"prev\":\"9f86d0\"}\n",
		&r),
	    0);
	assert_int_equal(r.seq, 42);
	assert_string_equal(r.time, "2026-11-26T14:30:00.123Z");
	assert_string_equal(r.actor, "XC001");
	assert_string_equal(r.role, "hospital");
	assert_string_equal(r.op, "lookup");
	assert_string_equal(r.target, "cn-id=110105********002X");
	assert_string_equal(r.patient_id, "P7Q2");
	assert_string_equal(r.other_patient_id, "");
	assert_string_equal(r.code, "OK");
	assert_string_equal(r.detail, "");
}

static void
merge_lines_name_both_records_and_detail(void **state)
{
	struct audit_rec r;

	(void)state;
	assert_int_equal(
	    parse("{\"seq\":7,\"time\":\"2026-11-26T14:30:00.123Z\","
		  "\"actor\":\"admin\",\"op\":\"merge\",\"patient_id\":\"PS\","
		  "\"other_patient_id\":\"PD\",\"code\":\"OK\",\"detail\":"
		  "\"filled=sex,phone\",\"prev\":\"00\"}",
		&r),
	    0);
	assert_string_equal(r.patient_id, "PS");
	assert_string_equal(r.other_patient_id, "PD");
	assert_string_equal(r.detail, "filled=sex,phone");
}

static void
escapes_are_decoded(void **state)
{
	struct audit_rec r;

	(void)state;
	assert_int_equal(parse("{\"seq\":1,\"target\":\"a\\\"b\\\\c\\u0001d"
			       "\\u00e9\\n\",\"actor\":\"\xe5\xbc\xa0\"}",
			     &r),
	    0);
	assert_string_equal(r.target, "a\"b\\c\001d\xc3\xa9\n");
	assert_string_equal(r.actor, "\xe5\xbc\xa0");
}

static void
fields_a_later_broker_adds_are_skipped(void **state)
{
	struct audit_rec r;

	(void)state;
	assert_int_equal(
	    parse("{\"seq\":3,\"criteria\":{\"name\":\"\xe5\xbc\xa0*\","
		  "\"n\":[1,2,{\"x\":\"}\"}]},\"results\":[\"P1\",\"P2\"],"
		  "\"flag\":true,\"none\":null,\"ratio\":-1.5e3,"
		  "\"op\":\"search\",\"code\":\"OK\"}",
		&r),
	    0);
	assert_int_equal(r.seq, 3);
	assert_string_equal(r.op, "search");
	assert_string_equal(r.code, "OK");
	/* A known field given as another type is skipped, not misread. */
	assert_int_equal(parse("{\"seq\":4,\"op\":17,\"code\":\"OK\"}", &r), 0);
	assert_string_equal(r.op, "");
}

static void
what_is_not_an_audit_line_is_refused(void **state)
{
	struct audit_rec r;
	const char *bad[] = {
	    "", "not an audit line", "{}", "{\"op\":\"lookup\"}", /* no seq */
	    "{\"seq\":\"1\"}",                   /* seq not a number */
	    "{\"seq\":1,\"op\":\"lookup\"",      /* cut short */
	    "{\"seq\":1,\"op\":\"look",          /* inside a string */
	    "{\"seq\":1,\"op\":\"a\\qb\"}",      /* bad escape */
	    "{\"seq\":1,\"op\":\"a\\u12\"}",     /* short \u */
	    "{\"seq\":1}{\"seq\":2}",            /* two objects */
	    "{\"seq\":1,\"x\":[1,2}",            /* unbalanced */
	    "{\"seq\":1 \"op\":\"x\"}",          /* no comma */
	    "{\"seq\":1,\"op\":\"a\tb\"}",       /* raw control byte */
	    "{\"seq\":99999999999999999999999}", /* seq overflows */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(bad[i], &r) != -1)
			fail_msg("accepted: %s", bad[i]);
	}
}

static void
a_long_field_is_cut_on_a_character_boundary(void **state)
{
	char line[2048], want[AUDIT_REC_FIELD];
	struct audit_rec r;
	size_t o;

	(void)state;
	/* 200 three-byte characters: 600 bytes, more than the field holds. */
	o = (size_t)snprintf(line, sizeof(line), "{\"seq\":1,\"actor\":\"");
	for (int i = 0; i < 200; i++)
		o += (size_t)snprintf(
		    line + o, sizeof(line) - o, "\xe5\xbc\xa0");
	snprintf(line + o, sizeof(line) - o, "\"}");
	assert_int_equal(parse(line, &r), 0);
	want[0] = '\0';
	for (int i = 0; i < (AUDIT_REC_FIELD - 1) / 3; i++)
		strcat(want, "\xe5\xbc\xa0");
	assert_string_equal(r.actor, want);
}

static void
a_full_cn_id_is_masked_and_nothing_else(void **state)
{
	char s[256];

	(void)state;
	strcpy(s, "cn-id=11010519491231002X");
	audit_mask(s);
	assert_string_equal(s, "cn-id=110105********002X");
	strcpy(s, "a 110105194912310011, b 11010519491231001x.");
	audit_mask(s);
	assert_string_equal(s, "a 110105********0011, b 110105********001x.");
	/* Already masked, too short, too long: left alone. */
	strcpy(s, "110105********002X 12345678901234567 1234567890123456789");
	audit_mask(s);
	assert_string_equal(
	    s, "110105********002X 12345678901234567 1234567890123456789");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_field_the_broker_writes_is_read),
	    cmocka_unit_test(merge_lines_name_both_records_and_detail),
	    cmocka_unit_test(escapes_are_decoded),
	    cmocka_unit_test(fields_a_later_broker_adds_are_skipped),
	    cmocka_unit_test(what_is_not_an_audit_line_is_refused),
	    cmocka_unit_test(a_long_field_is_cut_on_a_character_boundary),
	    cmocka_unit_test(a_full_cn_id_is_masked_and_nothing_else),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
