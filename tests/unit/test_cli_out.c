/*
 * test_cli_out.c: clients/common/cli_out.c, the JSON shapes and exit codes
 * the CLIs share. An event is one object with every field, its time in
 * RFC 3339 (UTC, milliseconds) and in milliseconds, its strings escaped,
 * and its patient as the same object lookup prints, or null.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli_common.h"

/* The JSON of ev into *out, for the caller to free. */
static void
json_of_event(const Onecard__V1__Event *ev, char **out)
{
	size_t len = 0;
	FILE *f = open_memstream(out, &len);

	assert_non_null(f);
	cli_json_event(f, ev);
	fclose(f);
}

static void
event_json_has_every_field_and_the_patient(void **state)
{
	Onecard__V1__Event ev = ONECARD__V1__EVENT__INIT;
	Onecard__V1__Patient p = ONECARD__V1__PATIENT__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT, *ids[1];
	static const char head[] =
	    "{\"seq\":12,\"op\":\"merge\",\"patient_id\":\"PA\","
	    "\"other_patient_id\":\"PB\",\"actor\":\"admin\","
	    "\"time\":\"2026-12-03T08:58:30.342Z\",\"time_ms\":1796288310342,"
	    "\"detail\":\"said \\\"x\\\"\\n\",\"patient\":";
	char *json = NULL, *pjson = NULL;
	size_t plen = 0;
	FILE *f;

	(void)state;
	ev.seq = 12;
	ev.op = "merge";
	ev.patient_id = "PA";
	ev.other_patient_id = "PB";
	ev.actor = "admin";
	ev.time_ms = 1796288310342;
	ev.detail = "said \"x\"\n";
	p.patient_id = "PA";
	p.version = 3;
	id.domain = "hosp:H1";
	id.value = "A1";
	ids[0] = &id;
	p.identifiers = ids;
	p.n_identifiers = 1;
	ev.patient = &p;
	json_of_event(&ev, &json);
	assert_non_null(f = open_memstream(&pjson, &plen));
	cli_json_patient(f, &p);
	fclose(f);
	assert_true(strncmp(json, head, strlen(head)) == 0);
	/* The patient is lookup's object, and the event ends after it. */
	assert_non_null(strstr(json, pjson));
	assert_string_equal(strstr(json, pjson) + strlen(pjson), "}");
	free(json);
	free(pjson);
}

static void
event_without_a_patient_has_null(void **state)
{
	Onecard__V1__Event ev = ONECARD__V1__EVENT__INIT;
	char *json = NULL;

	(void)state;
	ev.seq = 1;
	ev.op = "hospital_add";
	json_of_event(&ev, &json);
	assert_string_equal(json,
	    "{\"seq\":1,\"op\":\"hospital_add\",\"patient_id\":\"\","
	    "\"other_patient_id\":\"\",\"actor\":\"\","
	    "\"time\":\"1970-01-01T00:00:00.000Z\",\"time_ms\":0,"
	    "\"detail\":\"\",\"patient\":null}");
	free(json);
}

static void
rfc3339_time_is_utc_with_milliseconds(void **state)
{
	char buf[40];

	(void)state;
	cli_time_rfc3339(0, buf, sizeof(buf));
	assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
	cli_time_rfc3339(951782400005, buf, sizeof(buf));
	assert_string_equal(buf, "2000-02-29T00:00:00.005Z");
	/* Before 1970 the milliseconds still count forward. */
	cli_time_rfc3339(-1, buf, sizeof(buf));
	assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
}

static void
resync_has_its_own_exit_code(void **state)
{
	(void)state;
	assert_int_equal(CLI_EXIT_RESYNC, 7);
	/* A broker's OUT_OF_RANGE elsewhere is "any other broker error". */
	assert_int_equal(cli_exit_for_code(ONECARD__V1__CODE__OUT_OF_RANGE),
	    CLI_EXIT_BROKER);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(event_json_has_every_field_and_the_patient),
	    cmocka_unit_test(event_without_a_patient_has_null),
	    cmocka_unit_test(rfc3339_time_is_utc_with_milliseconds),
	    cmocka_unit_test(resync_has_its_own_exit_code),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
