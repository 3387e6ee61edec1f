/*
 * test_wire.c: the frame codec (proto/wire.c).
 *
 * Proves that frames are found only when whole, whatever the chain layout of
 * the evbuffer; that zero and oversize lengths are refused from the header
 * alone and without allocating; that the unpack allocator refuses a message
 * whose decoded size passes the cap; that garbage never crashes; and that
 * encode, append and decode agree byte for byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "wire.h"

/* libevent allocations, counted so a test can prove none happened. */
static size_t ev_allocs;

static void *
count_malloc(size_t n)
{
	ev_allocs++;
	return malloc(n);
}

static void *
count_realloc(void *p, size_t n)
{
	ev_allocs++;
	return realloc(p, n);
}

static void
count_free(void *p)
{
	free(p);
}

/* An enroll with demographics and two identifiers: every kind of field. */
struct sample {
	Onecard__V1__Request req;
	Onecard__V1__Enroll enroll;
	Onecard__V1__Demographics demo;
	Onecard__V1__Identifier ids[2];
	Onecard__V1__Identifier *idp[2];
};

static void
sample_init(struct sample *s, uint64_t id)
{
	Onecard__V1__Request r = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Enroll e = ONECARD__V1__ENROLL__INIT;
	Onecard__V1__Demographics d = ONECARD__V1__DEMOGRAPHICS__INIT;
	Onecard__V1__Identifier i = ONECARD__V1__IDENTIFIER__INIT;

	s->req = r;
	s->enroll = e;
	s->demo = d;
	s->ids[0] = i;
	s->ids[1] = i;
	s->demo.name = "Zhang San";
	s->demo.sex = ONECARD__V1__SEX__SEX_MALE;
	s->demo.birth_date = "1949-12-31";
	s->demo.phone = "+86 10 1234 5678";
	s->ids[0].domain = "cn-id";
	s->ids[0].value = "11010519491231002X";
	s->ids[1].domain = "hosp:XC001";
	s->ids[1].value = "MRN-0001";
	s->idp[0] = &s->ids[0];
	s->idp[1] = &s->ids[1];
	s->enroll.demographics = &s->demo;
	s->enroll.n_identifiers = 2;
	s->enroll.identifiers = s->idp;
	s->req.id = id;
	s->req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
	s->req.enroll = &s->enroll;
}

/* Encode msg as a frame into a fresh heap buffer of exactly its size. */
static uint8_t *
frame_of(const ProtobufCMessage *msg, size_t *len)
{
	uint8_t *buf;

	*len = wire_frame_size(msg);
	buf = malloc(*len);
	assert_non_null(buf);
	assert_int_equal(wire_encode(msg, buf, *len), *len);
	return buf;
}

/* A 4-byte header declaring len, with no body behind it. */
static void
header_of(uint8_t hdr[4], uint32_t len)
{
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
}

/* Pack a message's body (no header) into a fresh heap buffer. */
static uint8_t *
body_of(const ProtobufCMessage *msg, size_t *len)
{
	uint8_t *buf;

	*len = protobuf_c_message_get_packed_size(msg);
	buf = malloc(*len ? *len : 1);
	assert_non_null(buf);
	assert_int_equal(protobuf_c_message_pack(msg, buf), *len);
	return buf;
}

static void
split_frame_is_found_only_when_whole_and_decodes_identically(void **state)
{
	struct sample s;
	uint8_t *frame, *flat;
	size_t len, k, body_len, plen;
	Onecard__V1__Request *req;
	uint8_t *repacked;
	int over;

	sample_init(&s, 42);
	frame = frame_of(&s.req.base, &len);
	for (k = 0; k <= len; k++) {
		struct evbuffer *in = evbuffer_new();

		/* Two chains that meet at byte k, inside the header or body. */
		if (k > 0)
			evbuffer_add_reference(in, frame, k, NULL, NULL);
		if (k < len)
			assert_int_equal(wire_peek_evbuffer(in,
					     WIRE_MAX_FRAME_DEFAULT, &body_len),
			    WIRE_NEED_MORE);
		if (k < len)
			evbuffer_add_reference(
			    in, frame + k, len - k, NULL, NULL);
		assert_int_equal(
		    wire_peek_evbuffer(in, WIRE_MAX_FRAME_DEFAULT, &body_len),
		    WIRE_FRAME);
		assert_int_equal(body_len, len - WIRE_HEADER_LEN);

		/* The flat view of the same prefix agrees. */
		assert_int_equal(
		    wire_peek(frame, k, WIRE_MAX_FRAME_DEFAULT, &body_len),
		    k == len ? WIRE_FRAME : WIRE_NEED_MORE);

		flat = evbuffer_pullup(in, -1);
		req = wire_request_unpack(flat + WIRE_HEADER_LEN,
		    len - WIRE_HEADER_LEN, 16 * len, &over);
		assert_non_null(req);
		assert_int_equal(over, 0);
		assert_int_equal(req->id, 42);
		assert_int_equal(req->op_case, ONECARD__V1__REQUEST__OP_ENROLL);
		assert_int_equal(req->enroll->n_identifiers, 2);
		assert_string_equal(
		    req->enroll->identifiers[1]->domain, "hosp:XC001");
		assert_string_equal(
		    req->enroll->demographics->name, "Zhang San");
		repacked = body_of(&req->base, &plen);
		assert_int_equal(plen, len - WIRE_HEADER_LEN);
		assert_memory_equal(repacked, frame + WIRE_HEADER_LEN, plen);
		free(repacked);
		wire_request_free(req);
		evbuffer_free(in);
	}
	free(frame);
}

static void
frame_fed_one_byte_at_a_time_appears_with_its_last_byte(void **state)
{
	struct sample s;
	uint8_t *frame;
	size_t len, k, body_len;
	struct evbuffer *in = evbuffer_new();

	sample_init(&s, 7);
	frame = frame_of(&s.req.base, &len);
	for (k = 0; k < len; k++) {
		assert_int_equal(
		    wire_peek_evbuffer(in, WIRE_MAX_FRAME_DEFAULT, &body_len),
		    WIRE_NEED_MORE);
		evbuffer_add(in, frame + k, 1);
	}
	assert_int_equal(
	    wire_peek_evbuffer(in, WIRE_MAX_FRAME_DEFAULT, &body_len),
	    WIRE_FRAME);
	assert_int_equal(body_len, len - WIRE_HEADER_LEN);
	/* Peeking never drains. */
	assert_int_equal(evbuffer_get_length(in), len);
	evbuffer_free(in);
	free(frame);
}

static void
several_frames_in_one_buffer_come_out_one_at_a_time_in_order(void **state)
{
	struct evbuffer *in = evbuffer_new();
	Onecard__V1__Request ping = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Ping p = ONECARD__V1__PING__INIT;
	Onecard__V1__Request stats = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Stats st = ONECARD__V1__STATS__INIT;
	struct sample s;
	const int want_op[] = {ONECARD__V1__REQUEST__OP_PING,
	    ONECARD__V1__REQUEST__OP_ENROLL, ONECARD__V1__REQUEST__OP_STATS,
	    ONECARD__V1__REQUEST__OP_PING};
	uint8_t body[1024];
	size_t body_len;
	int i, over;

	ping.id = 1;
	ping.op_case = ONECARD__V1__REQUEST__OP_PING;
	ping.ping = &p;
	sample_init(&s, 2);
	stats.id = 3;
	stats.op_case = ONECARD__V1__REQUEST__OP_STATS;
	stats.stats = &st;
	assert_int_equal(wire_append(in, &ping.base), 0);
	assert_int_equal(wire_append(in, &s.req.base), 0);
	assert_int_equal(wire_append(in, &stats.base), 0);
	ping.id = 4;
	assert_int_equal(wire_append(in, &ping.base), 0);
	/* Half of a fifth frame trails behind. */
	evbuffer_add(in, "\x00\x00\x00\x10\x08", 5);

	for (i = 0; i < 4; i++) {
		Onecard__V1__Request *req;

		assert_int_equal(
		    wire_peek_evbuffer(in, WIRE_MAX_FRAME_DEFAULT, &body_len),
		    WIRE_FRAME);
		assert_true(body_len <= sizeof(body));
		evbuffer_drain(in, WIRE_HEADER_LEN);
		assert_int_equal(
		    evbuffer_remove(in, body, body_len), (int)body_len);
		req = wire_request_unpack(body, body_len, 16 * body_len, &over);
		assert_non_null(req);
		assert_int_equal(req->id, (uint64_t)i + 1);
		assert_int_equal(req->op_case, want_op[i]);
		wire_request_free(req);
	}
	assert_int_equal(
	    wire_peek_evbuffer(in, WIRE_MAX_FRAME_DEFAULT, &body_len),
	    WIRE_NEED_MORE);
	assert_int_equal(body_len, 16);
	evbuffer_free(in);
}

static void
zero_length_is_empty(void **state)
{
	uint8_t hdr[5] = {0, 0, 0, 0, 0x08};
	struct evbuffer *in = evbuffer_new();
	size_t body_len = 99;

	assert_int_equal(
	    wire_peek(hdr, 4, WIRE_MAX_FRAME_DEFAULT, &body_len), WIRE_EMPTY);
	assert_int_equal(body_len, 0);
	assert_int_equal(
	    wire_peek(hdr, 5, WIRE_MAX_FRAME_DEFAULT, NULL), WIRE_EMPTY);
	evbuffer_add(in, hdr, 4);
	assert_int_equal(
	    wire_peek_evbuffer(in, WIRE_MAX_FRAME_DEFAULT, &body_len),
	    WIRE_EMPTY);
	evbuffer_free(in);
}

static void
short_header_needs_more_and_is_never_read_past(void **state)
{
	size_t n, body_len;

	/* Exact-size heap blocks: ASan catches a read past n. */
	for (n = 0; n < WIRE_HEADER_LEN; n++) {
		uint8_t *p = malloc(n ? n : 1);

		memset(p, 0xff, n);
		assert_int_equal(
		    wire_peek(p, n, 16, &body_len), WIRE_NEED_MORE);
		free(p);
	}
}

static void
max_plus_one_is_oversize_and_exactly_max_is_a_frame(void **state)
{
	const size_t max = WIRE_MAX_FRAME_DEFAULT;
	uint8_t *buf = calloc(1, WIRE_HEADER_LEN + max);
	struct evbuffer *in = evbuffer_new();
	size_t body_len;

	header_of(buf, (uint32_t)max);
	assert_int_equal(
	    wire_peek(buf, WIRE_HEADER_LEN + max, max, &body_len), WIRE_FRAME);
	assert_int_equal(body_len, max);
	assert_int_equal(wire_peek(buf, WIRE_HEADER_LEN + max - 1, max, NULL),
	    WIRE_NEED_MORE);
	evbuffer_add(in, buf, WIRE_HEADER_LEN + max);
	assert_int_equal(wire_peek_evbuffer(in, max, &body_len), WIRE_FRAME);
	evbuffer_free(in);

	/* One more is refused from the header alone, body or no body. */
	header_of(buf, (uint32_t)max + 1);
	assert_int_equal(
	    wire_peek(buf, WIRE_HEADER_LEN, max, &body_len), WIRE_OVERSIZE);
	assert_int_equal(body_len, max + 1);
	in = evbuffer_new();
	evbuffer_add(in, buf, WIRE_HEADER_LEN);
	assert_int_equal(wire_peek_evbuffer(in, max, &body_len), WIRE_OVERSIZE);
	evbuffer_free(in);

	/* The limit is the caller's, not a constant. */
	header_of(buf, 100);
	assert_int_equal(
	    wire_peek(buf, WIRE_HEADER_LEN, 99, NULL), WIRE_OVERSIZE);
	assert_int_equal(
	    wire_peek(buf, WIRE_HEADER_LEN, 100, NULL), WIRE_NEED_MORE);
	free(buf);
}

static void
huge_declared_length_is_refused_without_allocating(void **state)
{
	struct evbuffer *in;
	uint8_t hdr[WIRE_HEADER_LEN];
	size_t before, body_len;

	/* The counter is live: making a buffer is seen. */
	before = ev_allocs;
	in = evbuffer_new();
	assert_true(ev_allocs > before);
	header_of(hdr, UINT32_MAX);
	evbuffer_add(in, hdr, sizeof(hdr));
	before = ev_allocs;
	assert_int_equal(
	    wire_peek_evbuffer(in, WIRE_MAX_FRAME_DEFAULT, &body_len),
	    WIRE_OVERSIZE);
	assert_int_equal(body_len, UINT32_MAX);
	assert_int_equal(ev_allocs, before);
	assert_int_equal(evbuffer_get_length(in), WIRE_HEADER_LEN);
	evbuffer_free(in);
}

static void
peek_reads_only_the_header_of_a_chained_buffer(void **state)
{
	struct sample s;
	uint8_t *frame;
	size_t len, k, before, body_len;
	struct evbuffer *in = evbuffer_new();

	sample_init(&s, 9);
	frame = frame_of(&s.req.base, &len);
	/* One chain per byte: a pullup would have to allocate. */
	for (k = 0; k < len; k++)
		evbuffer_add_reference(in, frame + k, 1, NULL, NULL);
	before = ev_allocs;
	assert_int_equal(
	    wire_peek_evbuffer(in, WIRE_MAX_FRAME_DEFAULT, &body_len),
	    WIRE_FRAME);
	assert_int_equal(ev_allocs, before);
	evbuffer_free(in);
	free(frame);
}

/* The least cap under which body unpacks, found by bisection. */
static size_t
least_cap(const uint8_t *body, size_t len)
{
	size_t lo = 0, hi = (size_t)1 << 24;
	Onecard__V1__Request *req;
	int over;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		req = wire_request_unpack(body, len, mid, &over);
		if (req != NULL) {
			wire_request_free(req);
			hi = mid;
		} else {
			assert_int_equal(over, 1);
			lo = mid + 1;
		}
	}
	return lo;
}

/* An enroll with n hospital identifiers, packed as a body. */
static uint8_t *
many_ids_body(size_t n, size_t *len)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Enroll enroll = ONECARD__V1__ENROLL__INIT;
	Onecard__V1__Identifier *ids = calloc(n, sizeof(*ids));
	Onecard__V1__Identifier **idp = calloc(n, sizeof(*idp));
	char(*values)[32] = calloc(n, 32);
	uint8_t *body;
	size_t i;

	for (i = 0; i < n; i++) {
		Onecard__V1__Identifier init = ONECARD__V1__IDENTIFIER__INIT;

		ids[i] = init;
		ids[i].domain = "hosp:XC001";
		snprintf(values[i], 32, "MRN-%06zu", i);
		ids[i].value = values[i];
		idp[i] = &ids[i];
	}
	enroll.n_identifiers = n;
	enroll.identifiers = idp;
	req.id = 5;
	req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
	req.enroll = &enroll;
	body = body_of(&req.base, len);
	free(values);
	free(idp);
	free(ids);
	return body;
}

static void
message_over_the_cap_is_refused_and_one_under_it_unpacks(void **state)
{
	uint8_t *body;
	size_t len, need;
	Onecard__V1__Request *req;
	int over;

	body = many_ids_body(64, &len);
	need = least_cap(body, len);
	assert_true(need > 4096); /* above the floor: the cap itself counts */

	over = 7;
	req = wire_request_unpack(body, len, need, &over);
	assert_non_null(req);
	assert_int_equal(over, 0);
	assert_int_equal(req->enroll->n_identifiers, 64);
	assert_string_equal(req->enroll->identifiers[63]->value, "MRN-000063");
	wire_request_free(req);

	over = 0;
	req = wire_request_unpack(body, len, need - 1, &over);
	assert_null(req);
	assert_int_equal(over, 1);

	/* over_cap is optional. */
	assert_null(wire_request_unpack(body, len, need - 1, NULL));
	free(body);
}

static void
small_message_of_empty_submessages_unpacks_under_the_floor(void **state)
{
	/* Update{identifier{}, demographics{}}: 8 bytes that take hundreds
	 * once unpacked; it must reach validation, not trip the cap. */
	static const uint8_t body[] = {
	    0x08, 0x01, 0x7a, 0x04, 0x0a, 0x00, 0x12, 0x00};
	Onecard__V1__Request *req;
	int over = 7;

	req = wire_request_unpack(body, sizeof(body),
	    WIRE_MEM_FACTOR * (WIRE_HEADER_LEN + sizeof(body)), &over);
	assert_non_null(req);
	assert_int_equal(over, 0);
	assert_int_equal(req->op_case, ONECARD__V1__REQUEST__OP_UPDATE);
	assert_non_null(req->update->identifier);
	assert_non_null(req->update->demographics);
	wire_request_free(req);

	req = wire_request_unpack(body, sizeof(body), 0, &over);
	assert_non_null(req);
	wire_request_free(req);
}

static void
flood_of_empty_identifiers_passes_the_cap_and_is_refused(void **state)
{
	/* Request{enroll: Enroll{identifiers: {} x n}}: 2 bytes per
	 * identifier on the wire, dozens of bytes each once unpacked. */
	const size_t n = 32000;
	size_t inner = 2 * n, len, i;
	uint8_t *body = malloc(8 + inner), *p = body;
	Onecard__V1__Request *req;
	int over;

	*p++ = (12 << 3) | 2; /* field 12 (enroll), length-delimited */
	for (i = inner; i >= 0x80; i >>= 7)
		*p++ = (uint8_t)(i | 0x80);
	*p++ = (uint8_t)i;
	for (i = 0; i < n; i++) {
		*p++ = (2 << 3) | 2; /* field 2 (identifiers), empty */
		*p++ = 0;
	}
	len = (size_t)(p - body);
	assert_true(len <= WIRE_MAX_FRAME_DEFAULT);

	req = wire_request_unpack(body, len, WIRE_MEM_FACTOR * len, &over);
	assert_null(req);
	assert_int_equal(over, 1);

	/* The same bytes are a valid message: only the cap refused them. */
	req = wire_request_unpack(body, len, (size_t)1 << 30, &over);
	assert_non_null(req);
	assert_int_equal(over, 0);
	assert_int_equal(req->enroll->n_identifiers, n);
	wire_request_free(req);
	free(body);
}

static void
garbage_bytes_return_null_without_crash(void **state)
{
	struct sample s;
	uint8_t *body, buf[256];
	size_t len, k, i;
	unsigned seed = 12345;
	int over;

	/* Every truncation of a valid body. */
	sample_init(&s, 77);
	body = body_of(&s.req.base, &len);
	for (k = 0; k < len; k++) {
		uint8_t *cut = malloc(k ? k : 1);
		Onecard__V1__Request *req;

		memcpy(cut, body, k);
		req = wire_request_unpack(cut, k, 1 << 20, &over);
		assert_int_equal(over, 0);
		wire_request_free(req);
		free(cut);
	}
	free(body);

	/* Fixed-seed noise, as requests and as replies. */
	for (i = 0; i < 20000; i++) {
		Onecard__V1__Request *req;
		Onecard__V1__Reply *reply;

		len = (size_t)(rand_r(&seed) % sizeof(buf));
		for (k = 0; k < len; k++)
			buf[k] = (uint8_t)rand_r(&seed);
		req = wire_request_unpack(buf, len, 1 << 20, &over);
		wire_request_free(req);
		reply = wire_reply_unpack(buf, len, 1 << 20, &over);
		wire_reply_free(reply);
	}

	/* Known-bad shapes: a truncated varint, a length past the end, an
	 * invalid wire type, a sub-message whose own bytes are garbage. */
	assert_null(
	    wire_request_unpack((const uint8_t *)"\x08\xff", 2, 4096, &over));
	assert_int_equal(over, 0);
	assert_null(wire_request_unpack(
	    (const uint8_t *)"\x5a\x10\x0a", 3, 4096, &over));
	assert_null(
	    wire_request_unpack((const uint8_t *)"\x0f", 1, 4096, &over));
	assert_null(wire_request_unpack((const uint8_t *)"\x5a\x04\x0a\x02\xff"
							 "\xfe",
	    6, 4096, &over));
	wire_request_free(NULL);
	wire_reply_free(NULL);
}

static void
encode_and_append_agree_and_round_trip(void **state)
{
	struct sample s;
	uint8_t *frame, *small;
	const uint8_t *got;
	size_t len, body_len;
	struct evbuffer *out = evbuffer_new();
	Onecard__V1__Request *req;

	sample_init(&s, 1234567890123ULL);
	frame = frame_of(&s.req.base, &len);
	assert_int_equal(len, wire_frame_size(&s.req.base));
	assert_int_equal(wire_peek(frame, len, len, &body_len), WIRE_FRAME);
	assert_int_equal(body_len + WIRE_HEADER_LEN, len);

	/* One byte short of room: nothing is written. */
	small = malloc(len - 1);
	assert_int_equal(wire_encode(&s.req.base, small, len - 1), 0);
	assert_int_equal(wire_encode(&s.req.base, small, 3), 0);
	free(small);

	/* Appending behind other data gives the same bytes. */
	evbuffer_add(out, "abc", 3);
	assert_int_equal(wire_append(out, &s.req.base), 0);
	assert_int_equal(evbuffer_get_length(out), 3 + len);
	got = evbuffer_pullup(out, -1);
	assert_memory_equal(got + 3, frame, len);

	req = wire_request_unpack(got + 3 + WIRE_HEADER_LEN, body_len,
	    WIRE_MEM_FACTOR * body_len, NULL);
	assert_non_null(req);
	assert_int_equal(req->id, 1234567890123ULL);
	assert_string_equal(
	    req->enroll->demographics->birth_date, "1949-12-31");
	assert_int_equal(
	    req->enroll->demographics->sex, ONECARD__V1__SEX__SEX_MALE);
	wire_request_free(req);
	evbuffer_free(out);
	free(frame);
}

static void
append_to_a_buffer_that_refuses_data_fails_and_adds_nothing(void **state)
{
	struct evbuffer *out = evbuffer_new();
	struct sample s;

	sample_init(&s, 3);
	evbuffer_add(out, "x", 1);
	/* A frozen end takes no reservation and no add: both paths fail. */
	evbuffer_freeze(out, 0);
	assert_int_equal(wire_append(out, &s.req.base), -1);
	assert_int_equal(wire_append_error(out, 3, 13, "x"), -1);
	assert_int_equal(evbuffer_get_length(out), 1);
	evbuffer_unfreeze(out, 0);
	assert_int_equal(wire_append(out, &s.req.base), 0);
	assert_int_equal(
	    evbuffer_get_length(out), 1 + wire_frame_size(&s.req.base));
	evbuffer_free(out);
}

static void
reply_with_patient_round_trips_and_is_capped(void **state)
{
	Onecard__V1__Reply reply = ONECARD__V1__REPLY__INIT, *got;
	Onecard__V1__Patient pat = ONECARD__V1__PATIENT__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT, *idp[300];
	struct evbuffer *out = evbuffer_new();
	size_t body_len, i;
	uint8_t *flat;
	int over;

	id.domain = "cn-ssc";
	id.value = "AB1234";
	for (i = 0; i < 300; i++)
		idp[i] = &id;
	pat.patient_id = "p-00000001";
	pat.n_identifiers = 300;
	pat.identifiers = idp;
	pat.version = 3;
	reply.id = 11;
	reply.code = ONECARD__V1__CODE__OK;
	reply.result_case = ONECARD__V1__REPLY__RESULT_PATIENT;
	reply.patient = &pat;
	assert_int_equal(wire_append(out, &reply.base), 0);
	assert_int_equal(
	    wire_peek_evbuffer(out, WIRE_MAX_FRAME_DEFAULT, &body_len),
	    WIRE_FRAME);
	flat = evbuffer_pullup(out, -1);
	got = wire_reply_unpack(flat + WIRE_HEADER_LEN, body_len,
	    WIRE_MEM_FACTOR * body_len, &over);
	assert_non_null(got);
	assert_int_equal(got->id, 11);
	assert_int_equal(got->result_case, ONECARD__V1__REPLY__RESULT_PATIENT);
	assert_string_equal(got->patient->patient_id, "p-00000001");
	assert_int_equal(got->patient->version, 3);
	assert_int_equal(got->patient->n_identifiers, 300);
	assert_string_equal(got->patient->identifiers[299]->value, "AB1234");
	wire_reply_free(got);

	/* A Reply cap is enforced like a Request's. */
	assert_null(
	    wire_reply_unpack(flat + WIRE_HEADER_LEN, body_len, 4096, &over));
	assert_int_equal(over, 1);
	evbuffer_free(out);
}

static void
append_error_writes_a_reply_with_id_code_message_and_no_result(void **state)
{
	struct evbuffer *out = evbuffer_new();
	Onecard__V1__Reply *got;
	size_t body_len;
	uint8_t *flat;

	assert_int_equal(
	    wire_append_error(out, 0, ONECARD__V1__CODE__INVALID_ARGUMENT,
		"identifier.value: bad check character"),
	    0);
	assert_int_equal(wire_append_error(out, 99,
			     ONECARD__V1__CODE__RESOURCE_EXHAUSTED, NULL),
	    0);

	assert_int_equal(
	    wire_peek_evbuffer(out, WIRE_MAX_FRAME_DEFAULT, &body_len),
	    WIRE_FRAME);
	flat = evbuffer_pullup(out, WIRE_HEADER_LEN + body_len);
	got = wire_reply_unpack(flat + WIRE_HEADER_LEN, body_len, 4096, NULL);
	assert_non_null(got);
	assert_int_equal(got->id, 0);
	assert_int_equal(got->code, ONECARD__V1__CODE__INVALID_ARGUMENT);
	assert_string_equal(
	    got->message, "identifier.value: bad check character");
	assert_int_equal(got->result_case, ONECARD__V1__REPLY__RESULT__NOT_SET);
	wire_reply_free(got);
	evbuffer_drain(out, WIRE_HEADER_LEN + body_len);

	assert_int_equal(
	    wire_peek_evbuffer(out, WIRE_MAX_FRAME_DEFAULT, &body_len),
	    WIRE_FRAME);
	flat = evbuffer_pullup(out, WIRE_HEADER_LEN + body_len);
	got = wire_reply_unpack(flat + WIRE_HEADER_LEN, body_len, 4096, NULL);
	assert_non_null(got);
	assert_int_equal(got->id, 99);
	assert_int_equal(got->code, ONECARD__V1__CODE__RESOURCE_EXHAUSTED);
	assert_string_equal(got->message, "");
	wire_reply_free(got);
	evbuffer_drain(out, WIRE_HEADER_LEN + body_len);
	assert_int_equal(evbuffer_get_length(out), 0);
	evbuffer_free(out);
}

static void
names_follow_the_proto(void **state)
{
	static const struct {
		int op;
		const char *name;
	} ops[] = {
	    {ONECARD__V1__REQUEST__OP_PING, "ping"},
	    {ONECARD__V1__REQUEST__OP_LOOKUP, "lookup"},
	    {ONECARD__V1__REQUEST__OP_ENROLL, "enroll"},
	    {ONECARD__V1__REQUEST__OP_LINK, "link"},
	    {ONECARD__V1__REQUEST__OP_UNLINK, "unlink"},
	    {ONECARD__V1__REQUEST__OP_UPDATE, "update"},
	    {ONECARD__V1__REQUEST__OP_SEARCH, "search"},
	    {ONECARD__V1__REQUEST__OP_MERGE, "merge"},
	    {ONECARD__V1__REQUEST__OP_UNMERGE, "unmerge"},
	    {ONECARD__V1__REQUEST__OP_SUBSCRIBE, "subscribe"},
	    {ONECARD__V1__REQUEST__OP_HISTORY, "history"},
	    {ONECARD__V1__REQUEST__OP_EXPORT, "export"},
	    {ONECARD__V1__REQUEST__OP_HOSPITAL_ADD, "hospital_add"},
	    {ONECARD__V1__REQUEST__OP_HOSPITAL_REVOKE, "hospital_revoke"},
	    {ONECARD__V1__REQUEST__OP_HOSPITAL_LIST, "hospital_list"},
	    {ONECARD__V1__REQUEST__OP_STATS, "stats"},
	};
	size_t i;

	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		assert_string_equal(wire_op_name(ops[i].op), ops[i].name);
	assert_string_equal(
	    wire_op_name(ONECARD__V1__REQUEST__OP__NOT_SET), "none");
	assert_string_equal(wire_op_name(1), "none"); /* the id field */
	assert_string_equal(wire_op_name(-3), "none");
	assert_string_equal(wire_op_name(1000), "none");

	assert_string_equal(wire_code_name(ONECARD__V1__CODE__OK), "OK");
	assert_string_equal(
	    wire_code_name(ONECARD__V1__CODE__NOT_FOUND), "NOT_FOUND");
	assert_string_equal(wire_code_name(ONECARD__V1__CODE__VERSION_MISMATCH),
	    "VERSION_MISMATCH");
	assert_string_equal(wire_code_name(ONECARD__V1__CODE__UNAUTHENTICATED),
	    "UNAUTHENTICATED");
	assert_string_equal(wire_code_name(1), "UNKNOWN");
	assert_string_equal(wire_code_name(-1), "UNKNOWN");
}

/* Pack Request{id, lookup{identifier{domain, value}}} with protobuf-c. */
static size_t
pack_lookup(uint64_t id, const char *domain, const char *value, uint8_t *buf,
    size_t cap)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Lookup l = ONECARD__V1__LOOKUP__INIT;
	Onecard__V1__Identifier ident = ONECARD__V1__IDENTIFIER__INIT;
	size_t n;

	ident.domain = (char *)domain;
	ident.value = (char *)value;
	l.identifier = &ident;
	req.id = id;
	req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
	req.lookup = &l;
	n = protobuf_c_message_get_packed_size(&req.base);
	assert_true(n <= cap);
	return protobuf_c_message_pack(&req.base, buf);
}

static void
lookup_fast_decode_takes_only_the_usual_shape(void **state)
{
	Onecard__V1__Request *req;
	struct wire_lookup wl;
	char value[WIRE_LOOKUP_STR + 1];
	uint8_t buf[512];
	size_t n;

	(void)state;
	/* What protobuf-c packs, with one-byte and ten-byte ids. */
	n = pack_lookup(5, "cn-id", "11010519491231002X", buf, sizeof(buf));
	assert_int_equal(wire_lookup_decode(buf, n, &wl), 0);
	assert_int_equal(wl.id, 5);
	assert_string_equal(wl.domain, "cn-id");
	assert_string_equal(wl.value, "11010519491231002X");
	n = pack_lookup(UINT64_MAX, "pid", "P1", buf, sizeof(buf));
	assert_int_equal(wire_lookup_decode(buf, n, &wl), 0);
	assert_true(wl.id == UINT64_MAX);

	/* Strings at the limit, and one over it (left to protobuf-c). */
	memset(value, 'A', WIRE_LOOKUP_STR - 1);
	value[WIRE_LOOKUP_STR - 1] = '\0';
	n = pack_lookup(9, "hosp:H1", value, buf, sizeof(buf));
	assert_int_equal(wire_lookup_decode(buf, n, &wl), 0);
	assert_int_equal(strlen(wl.value), WIRE_LOOKUP_STR - 1);
	memset(value, 'A', WIRE_LOOKUP_STR);
	value[WIRE_LOOKUP_STR] = '\0';
	n = pack_lookup(9, "hosp:H1", value, buf, sizeof(buf));
	assert_int_equal(wire_lookup_decode(buf, n, &wl), -1);

	/* Every other shape goes to the general decoder. */
	n = pack_lookup(7, "hosp:H1", "V1", buf, sizeof(buf));
	assert_int_equal(wire_lookup_decode(buf, n - 1, &wl), -1); /* cut */
	buf[n] = 0x08; /* a second id after the lookup */
	buf[n + 1] = 0x01;
	assert_int_equal(wire_lookup_decode(buf, n + 2, &wl), -1);
	{
		/* value before domain; id 0; an unknown field in Identifier;
		 * a NUL inside the value */
		static const uint8_t swapped[] = {0x08, 0x05, 0x5a, 0x0f, 0x0a,
		    0x0d, 0x12, 0x02, 'V', '1', 0x0a, 0x07, 'h', 'o', 's', 'p',
		    ':', 'H', '1'};
		static const uint8_t id0[] = {0x08, 0x00, 0x5a, 0x0f, 0x0a,
		    0x0d, 0x0a, 0x07, 'h', 'o', 's', 'p', ':', 'H', '1', 0x12,
		    0x02, 'V', '1'};
		static const uint8_t unknown[] = {0x08, 0x05, 0x5a, 0x11, 0x0a,
		    0x0f, 0x0a, 0x07, 'h', 'o', 's', 'p', ':', 'H', '1', 0x12,
		    0x02, 'V', '1', 0x18, 0x01};
		static const uint8_t nul[] = {0x08, 0x05, 0x5a, 0x10, 0x0a,
		    0x0e, 0x0a, 0x07, 'h', 'o', 's', 'p', ':', 'H', '1', 0x12,
		    0x03, 'V', 0x00, '1'};

		assert_int_equal(
		    wire_lookup_decode(swapped, sizeof(swapped), &wl), -1);
		assert_int_equal(wire_lookup_decode(id0, sizeof(id0), &wl), -1);
		assert_int_equal(
		    wire_lookup_decode(unknown, sizeof(unknown), &wl), -1);
		assert_int_equal(wire_lookup_decode(nul, sizeof(nul), &wl), -1);
		/* The general decoder reads the swapped one all the same. */
		req = wire_request_unpack(
		    swapped, sizeof(swapped), 1 << 16, NULL);
		assert_non_null(req);
		assert_int_equal(req->id, 5);
		assert_string_equal(req->lookup->identifier->value, "V1");
		wire_request_free(req);
	}
}

/* A message packed with id 0, behind wire_id_head, is the frame packing it
 * whole gives, for ids of one and several varint bytes, and id 0. */
static void
id_head_plus_rest_is_the_whole_frame(void **state)
{
	static const uint64_t ids[] = {0, 1, 127, 128, 300, UINT64_MAX};
	uint8_t rest[512], whole[600], head[WIRE_ID_HEAD_MAX];
	size_t nrest, nwhole, nhead;

	(void)state;
	nrest =
	    pack_lookup(0, "cn-id", "11010519491231002X", rest, sizeof(rest));
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
		Onecard__V1__Lookup l = ONECARD__V1__LOOKUP__INIT;
		Onecard__V1__Identifier ident = ONECARD__V1__IDENTIFIER__INIT;

		ident.domain = "cn-id";
		ident.value = "11010519491231002X";
		l.identifier = &ident;
		req.id = ids[i];
		req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
		req.lookup = &l;
		nwhole = wire_encode(&req.base, whole, sizeof(whole));
		nhead = wire_id_head(ids[i], nrest, head);
		assert_true(
		    nhead >= WIRE_HEADER_LEN && nhead <= WIRE_ID_HEAD_MAX);
		assert_int_equal(nhead + nrest, nwhole);
		assert_memory_equal(head, whole, nhead);
		assert_memory_equal(rest, whole + nhead, nrest);
	}
	/* A body over a frame's 32-bit length has no head. */
	assert_int_equal(wire_id_head(1, (size_t)UINT32_MAX, head), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		split_frame_is_found_only_when_whole_and_decodes_identically),
	    cmocka_unit_test(
		frame_fed_one_byte_at_a_time_appears_with_its_last_byte),
	    cmocka_unit_test(
		several_frames_in_one_buffer_come_out_one_at_a_time_in_order),
	    cmocka_unit_test(zero_length_is_empty),
	    cmocka_unit_test(lookup_fast_decode_takes_only_the_usual_shape),
	    cmocka_unit_test(id_head_plus_rest_is_the_whole_frame),
	    cmocka_unit_test(short_header_needs_more_and_is_never_read_past),
	    cmocka_unit_test(
		max_plus_one_is_oversize_and_exactly_max_is_a_frame),
	    cmocka_unit_test(
		huge_declared_length_is_refused_without_allocating),
	    cmocka_unit_test(peek_reads_only_the_header_of_a_chained_buffer),
	    cmocka_unit_test(
		message_over_the_cap_is_refused_and_one_under_it_unpacks),
	    cmocka_unit_test(
		small_message_of_empty_submessages_unpacks_under_the_floor),
	    cmocka_unit_test(
		flood_of_empty_identifiers_passes_the_cap_and_is_refused),
	    cmocka_unit_test(garbage_bytes_return_null_without_crash),
	    cmocka_unit_test(encode_and_append_agree_and_round_trip),
	    cmocka_unit_test(
		append_to_a_buffer_that_refuses_data_fails_and_adds_nothing),
	    cmocka_unit_test(reply_with_patient_round_trips_and_is_capped),
	    cmocka_unit_test(
		append_error_writes_a_reply_with_id_code_message_and_no_result),
	    cmocka_unit_test(names_follow_the_proto),
	};

	/* Before libevent allocates anything. */
	event_set_mem_functions(count_malloc, count_realloc, count_free);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
