/*
 * test_client_util.c: the part of clients/lib/client_util.c that reads a
 * reply without decoding it (client_reply_scan, behind libonecard's raw
 * replies): it finds Reply.id and Reply.code wherever they are and refuses
 * a body whose top level is not well formed, never reading past its end;
 * how a reply frame is told apart (client_reply_kind): an answer, a pushed
 * event, or the broker's notice; and onecard_strerror of a broker's code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "client.h"

/* A full reply packed by protobuf-c into buf; its length. */
static size_t
pack_reply(uint8_t *buf, uint64_t id, Onecard__V1__Code code)
{
	Onecard__V1__Reply reply = ONECARD__V1__REPLY__INIT;
	Onecard__V1__Patient patient = ONECARD__V1__PATIENT__INIT;

	reply.id = id;
	reply.code = code;
	reply.message = "some words";
	patient.patient_id = "P123";
	patient.version = 7;
	reply.result_case = ONECARD__V1__REPLY__RESULT_PATIENT;
	reply.patient = &patient;
	return protobuf_c_message_pack(&reply.base, buf);
}

static void
scan_finds_id_and_code_of_a_full_reply(void **state)
{
	uint8_t buf[256];
	size_t n = pack_reply(buf, 300000, ONECARD__V1__CODE__NOT_FOUND);
	uint64_t id;
	int code;

	assert_int_equal(client_reply_scan(buf, n, &id, &code), 0);
	assert_int_equal(id, 300000);
	assert_int_equal(code, ONECARD__V1__CODE__NOT_FOUND);
}

static void
scan_of_ok_reply_without_fields_gives_zeroes(void **state)
{
	uint64_t id = 9;
	int code = 9;

	/* An empty message is valid protobuf: id 0, code OK. */
	assert_int_equal(
	    client_reply_scan((const uint8_t *)"", 0, &id, &code), 0);
	assert_int_equal(id, 0);
	assert_int_equal(code, 0);
}

static void
scan_takes_fields_in_any_order(void **state)
{
	/* code 5 (field 2), a string (field 3), then id 2 (field 1). */
	static const uint8_t buf[] = {
	    0x10, 0x05, 0x1a, 0x02, 'h', 'i', 0x08, 0x02};
	uint64_t id;
	int code;

	assert_int_equal(client_reply_scan(buf, sizeof buf, &id, &code), 0);
	assert_int_equal(id, 2);
	assert_int_equal(code, 5);
}

static void
scan_refuses_every_truncation_of_a_reply(void **state)
{
	uint8_t buf[256];
	size_t n = pack_reply(buf, 1, ONECARD__V1__CODE__OK);
	uint64_t id;
	int code;
	int refused = 0;

	/* Cut inside the id, the message or the patient: refused. A cut
	 * between two fields is a shorter valid message, so not every prefix
	 * fails; none may read past its end (ASan watches). */
	for (size_t cut = 1; cut < n; cut++) {
		uint8_t *p = test_malloc(cut);

		memcpy(p, buf, cut);
		if (client_reply_scan(p, cut, &id, &code) == -1)
			refused++;
		test_free(p);
	}
	assert_true(refused > 0);
	assert_int_equal(client_reply_scan(buf, n - 1, &id, &code), -1);
}

static void
scan_refuses_groups_field_zero_and_long_varints(void **state)
{
	static const uint8_t group[] = {0x0b, 0x0c}; /* field 1, group */
	static const uint8_t zero[] = {0x00, 0x01};  /* field number 0 */
	static const uint8_t toolong[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
	    0xff, 0xff, 0xff, 0xff, 0xff, 0x01}; /* an 11-byte varint */
	static const uint8_t overlen[] = {0x1a, 0x7f, 'x'}; /* 127 of 1 */
	uint64_t id;
	int code;

	assert_int_equal(
	    client_reply_scan(group, sizeof group, &id, &code), -1);
	assert_int_equal(client_reply_scan(zero, sizeof zero, &id, &code), -1);
	assert_int_equal(
	    client_reply_scan(toolong, sizeof toolong, &id, &code), -1);
	assert_int_equal(
	    client_reply_scan(overlen, sizeof overlen, &id, &code), -1);
}

static void
kind_tells_answer_event_and_notice_apart(void **state)
{
	Onecard__V1__Reply r = ONECARD__V1__REPLY__INIT;
	Onecard__V1__Event ev = ONECARD__V1__EVENT__INIT;

	/* Any reply with an id answers a request, an event in it or not. */
	r.id = 3;
	assert_int_equal(client_reply_kind(&r), CLIENT_REPLY_ANSWER);
	r.result_case = ONECARD__V1__REPLY__RESULT_EVENT;
	r.event = &ev;
	assert_int_equal(client_reply_kind(&r), CLIENT_REPLY_ANSWER);
	/* id 0, OK, an event: pushed. */
	r.id = 0;
	assert_int_equal(client_reply_kind(&r), CLIENT_REPLY_EVENT);
	/* id 0 with an error code, even with an event: the broker's notice. */
	r.code = ONECARD__V1__CODE__UNAVAILABLE;
	assert_int_equal(client_reply_kind(&r), CLIENT_REPLY_NOTICE);
	/* id 0, OK, no event (an undecodable request's answer is not OK,
	 * but a reply without a result must not pass for an event). */
	r.code = ONECARD__V1__CODE__OK;
	r.result_case = ONECARD__V1__REPLY__RESULT__NOT_SET;
	r.event = NULL;
	assert_int_equal(client_reply_kind(&r), CLIENT_REPLY_NOTICE);
}

static void
strerror_names_a_brokers_code(void **state)
{
	assert_string_equal(
	    onecard_strerror(ONECARD__V1__CODE__OUT_OF_RANGE), "OUT_OF_RANGE");
	assert_string_equal(onecard_strerror(ONECARD_ETIMEDOUT), "timed out");
	assert_string_equal(onecard_strerror(-99), "unknown error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(scan_finds_id_and_code_of_a_full_reply),
	    cmocka_unit_test(scan_of_ok_reply_without_fields_gives_zeroes),
	    cmocka_unit_test(scan_takes_fields_in_any_order),
	    cmocka_unit_test(scan_refuses_every_truncation_of_a_reply),
	    cmocka_unit_test(scan_refuses_groups_field_zero_and_long_varints),
	    cmocka_unit_test(kind_tells_answer_event_and_notice_apart),
	    cmocka_unit_test(strerror_names_a_brokers_code),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
