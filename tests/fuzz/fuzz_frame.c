/*
 * fuzz_frame.c: arbitrary bytes through the frame codec, as the broker reads
 * them from a connection.
 *
 * The input is a byte stream that may hold any number of frames. Each frame
 * the flat and evbuffer peeks agree on is unpacked as a Request (and as a
 * Reply, which libonecard reads) under the broker's memory cap; whatever
 * unpacks is re-encoded and must come back the same, and what the broker's
 * allocation-free lookup decoder accepts must unpack to the same lookup. A
 * broken invariant aborts, so libFuzzer (or the corpus driver in
 * fuzz_main.c) reports it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Fail loudly: libFuzzer and ASan both report an abort with its stack. */
static void
fuzz_check(int ok)
{
	if (!ok)
		abort();
}

/*
 * Whether msg or a message inside it kept an unknown field numbered 0.
 * protobuf-c refuses tag 0 only in its one-byte form: a padded varint (0x82
 * 0x00) is kept as an unknown field, packed back as 0x02 and then refused.
 * Such a message cannot round-trip; that is protobuf-c's quirk, not ours.
 */
static int
fuzz_has_tag0(const ProtobufCMessage *msg)
{
	const ProtobufCMessageDescriptor *d;
	const ProtobufCFieldDescriptor *f;
	const char *base = (const char *)msg;
	ProtobufCMessage *const *arr;
	size_t i, j, n;

	if (msg == NULL)
		return 0;
	for (i = 0; i < msg->n_unknown_fields; i++)
		if (msg->unknown_fields[i].tag == 0)
			return 1;
	d = msg->descriptor;
	for (i = 0; i < d->n_fields; i++) {
		f = &d->fields[i];
		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			memcpy(&n, base + f->quantifier_offset, sizeof(n));
			memcpy(&arr, base + f->offset, sizeof(arr));
			for (j = 0; j < n; j++)
				if (fuzz_has_tag0(arr[j]))
					return 1;
			continue;
		}
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			uint32_t which;

			memcpy(
			    &which, base + f->quantifier_offset, sizeof(which));
			if (which != f->id)
				continue;
		}
		if (fuzz_has_tag0(
			*(ProtobufCMessage *const *)(base + f->offset)))
			return 1;
	}
	return 0;
}

/* Re-encode msg, check encode and append agree, return the frame. */
static uint8_t *
fuzz_reencode(const ProtobufCMessage *msg, size_t *len)
{
	struct evbuffer *out;
	uint8_t *frame;
	size_t body_len;

	*len = wire_frame_size(msg);
	fuzz_check(*len >= WIRE_HEADER_LEN);
	frame = malloc(*len);
	fuzz_check(frame != NULL);
	fuzz_check(wire_encode(msg, frame, *len) == *len);
	fuzz_check(wire_encode(msg, frame, *len - 1) == 0);
	/* An all-default message packs to nothing: an empty frame. */
	fuzz_check(wire_peek(frame, *len, SIZE_MAX, &body_len) ==
	    (*len == WIRE_HEADER_LEN ? WIRE_EMPTY : WIRE_FRAME));
	fuzz_check(body_len == *len - WIRE_HEADER_LEN);

	out = evbuffer_new();
	fuzz_check(out != NULL);
	fuzz_check(wire_append(out, msg) == 0);
	fuzz_check(evbuffer_get_length(out) == *len);
	fuzz_check(memcmp(evbuffer_pullup(out, -1), frame, *len) == 0);
	evbuffer_free(out);
	return frame;
}

/*
 * A decoded message, packed again, decodes to the same bytes. And the
 * broker's allocation-free lookup decoder agrees with protobuf-c on every
 * frame it accepts: same id, same domain, same value.
 */
static void
fuzz_request(const uint8_t *body, size_t len)
{
	Onecard__V1__Request *req, *again;
	struct wire_lookup wl;
	uint8_t *frame, *frame2;
	size_t flen, flen2;
	int over, fast;

	fast = wire_lookup_decode(body, len, &wl) == 0;
	req = wire_request_unpack(
	    body, len, WIRE_MEM_FACTOR * (WIRE_HEADER_LEN + len), &over);
	fuzz_check(!fast || req != NULL);
	if (req == NULL)
		return;
	if (fast) {
		fuzz_check(req->op_case == ONECARD__V1__REQUEST__OP_LOOKUP);
		fuzz_check(req->id == wl.id);
		fuzz_check(
		    req->lookup != NULL && req->lookup->identifier != NULL);
		fuzz_check(
		    strcmp(req->lookup->identifier->domain, wl.domain) == 0);
		fuzz_check(
		    strcmp(req->lookup->identifier->value, wl.value) == 0);
	}
	fuzz_check(over == 0);
	fuzz_check(wire_op_name(req->op_case) != NULL);
	frame = fuzz_reencode(&req->base, &flen);
	if (fuzz_has_tag0(&req->base)) {
		free(frame);
		wire_request_free(req);
		return;
	}
	again = wire_request_unpack(frame + WIRE_HEADER_LEN,
	    flen - WIRE_HEADER_LEN, (size_t)1 << 26, &over);
	fuzz_check(again != NULL);
	fuzz_check(again->id == req->id && again->op_case == req->op_case);
	frame2 = fuzz_reencode(&again->base, &flen2);
	fuzz_check(flen2 == flen && memcmp(frame, frame2, flen) == 0);
	free(frame2);
	free(frame);
	wire_request_free(again);
	wire_request_free(req);
}

/* The same for a Reply, the message libonecard decodes. */
static void
fuzz_reply(const uint8_t *body, size_t len)
{
	Onecard__V1__Reply *reply, *again;
	uint8_t *frame, *frame2;
	size_t flen, flen2;
	int over;

	reply = wire_reply_unpack(
	    body, len, WIRE_MEM_FACTOR * (WIRE_HEADER_LEN + len), &over);
	if (reply == NULL)
		return;
	fuzz_check(over == 0);
	fuzz_check(wire_code_name(reply->code) != NULL);
	frame = fuzz_reencode(&reply->base, &flen);
	if (fuzz_has_tag0(&reply->base)) {
		free(frame);
		wire_reply_free(reply);
		return;
	}
	again = wire_reply_unpack(frame + WIRE_HEADER_LEN,
	    flen - WIRE_HEADER_LEN, (size_t)1 << 26, &over);
	fuzz_check(again != NULL);
	fuzz_check(again->id == reply->id && again->code == reply->code);
	frame2 = fuzz_reencode(&again->base, &flen2);
	fuzz_check(flen2 == flen && memcmp(frame, frame2, flen) == 0);
	free(frame2);
	free(frame);
	wire_reply_free(again);
	wire_reply_free(reply);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evbuffer *in;
	enum wire_status st, est;
	size_t off = 0, len, elen, split;

	/* The stream arrives in two reads that meet at a point the input
	 * chooses, so frames straddle evbuffer chains. */
	in = evbuffer_new();
	fuzz_check(in != NULL);
	split = size ? data[size - 1] % (size + 1) : 0;
	evbuffer_add(in, data, split);
	evbuffer_add_reference(in, data + split, size - split, NULL, NULL);

	for (;;) {
		st = wire_peek(
		    data + off, size - off, WIRE_MAX_FRAME_DEFAULT, &len);
		est = wire_peek_evbuffer(in, WIRE_MAX_FRAME_DEFAULT, &elen);
		fuzz_check(st == est && len == elen);
		if (st != WIRE_FRAME) {
			fuzz_check(st != WIRE_OVERSIZE ||
			    len > WIRE_MAX_FRAME_DEFAULT);
			fuzz_check(st != WIRE_EMPTY || len == 0);
			break;
		}
		fuzz_check(len >= 1 && len <= WIRE_MAX_FRAME_DEFAULT);
		fuzz_check(size - off >= WIRE_HEADER_LEN + len);
		fuzz_request(data + off + WIRE_HEADER_LEN, len);
		fuzz_reply(data + off + WIRE_HEADER_LEN, len);
		off += WIRE_HEADER_LEN + len;
		fuzz_check(evbuffer_drain(in, WIRE_HEADER_LEN + len) == 0);
	}
	evbuffer_free(in);
	return 0;
}
