/*
 * wire.h: the frame codec shared by the broker and every client.
 *
 * A frame is a 4-byte big-endian length N, then N bytes of protobuf. This
 * module finds whole frames in a byte stream, refuses a zero or oversize
 * length before anything is allocated, unpacks with an allocator that caps
 * the memory one message may take, and encodes messages as frames. It never
 * does I/O and never blocks.
 */
#ifndef ONECARD_WIRE_H
#define ONECARD_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "onecard.pb-c.h"

struct evbuffer;

#define WIRE_HEADER_LEN        4
#define WIRE_MAX_FRAME_DEFAULT 65536
/* Memory one unpacked message may take, as a multiple of its frame size. */
#define WIRE_MEM_FACTOR 16

/* What is at the head of a buffer. */
enum wire_status {
	WIRE_FRAME = 0, /* a whole frame is there; *body_len says how long */
	WIRE_NEED_MORE, /* not yet a whole frame */
	WIRE_EMPTY,     /* length 0: a protocol error */
	WIRE_OVERSIZE,  /* length over the maximum: a protocol error */
};

/* Look at a flat buffer of n bytes; never reads past n. */
enum wire_status wire_peek(
    const uint8_t *buf, size_t n, size_t max_frame, size_t *body_len);

/* Look at an evbuffer without draining it. */
enum wire_status wire_peek_evbuffer(
    struct evbuffer *in, size_t max_frame, size_t *body_len);

/*
 * Unpack a Request or Reply body (no length prefix) with an allocator that
 * fails once the message would take more than mem_cap bytes. NULL when the
 * bytes are not a valid message or the cap was passed (*over_cap set then,
 * if over_cap is not NULL). Free with the matching wire_*_free.
 */
Onecard__V1__Request *wire_request_unpack(
    const uint8_t *body, size_t len, size_t mem_cap, int *over_cap);
void wire_request_free(Onecard__V1__Request *req);
Onecard__V1__Reply *wire_reply_unpack(
    const uint8_t *body, size_t len, size_t mem_cap, int *over_cap);
void wire_reply_free(Onecard__V1__Reply *reply);

/*
 * A Request{id, lookup{identifier{domain, value}}} read straight from a
 * frame body, with no allocation: the broker's hot path. wire_lookup_decode
 * takes only that shape -- id (not 0) then lookup, domain then value, each
 * once, nothing else, strings shorter than WIRE_LOOKUP_STR and free of NUL
 * -- and returns 0; anything else, valid or not, is -1 and belongs to
 * wire_request_unpack. What it accepts, wire_request_unpack reads the same
 * way (tests/fuzz/fuzz_frame.c checks that on every input).
 */
#define WIRE_LOOKUP_STR 128

struct wire_lookup {
	uint64_t id;
	char domain[WIRE_LOOKUP_STR];
	char value[WIRE_LOOKUP_STR];
};

int wire_lookup_decode(
    const uint8_t *body, size_t len, struct wire_lookup *out);

/* Read a varint at *p (before end), moving *p past it; -1 if it is cut or
 * longer than 10 bytes. */
int wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v);

/*
 * The head of a frame whose body is field 1 (an id, a varint; left out when
 * 0) followed by rest_len bytes packed elsewhere with id 0: a Request or
 * Reply encoded once and sent many times. protobuf-c packs field 1 first,
 * so head and rest are the very bytes packing the whole message would give.
 * Written into head (WIRE_ID_HEAD_MAX bytes); returns its length, or 0 when
 * the body would not fit a frame's 32-bit length.
 */
#define WIRE_ID_HEAD_MAX (WIRE_HEADER_LEN + 1 + 10)
size_t wire_id_head(uint64_t id, size_t rest_len, uint8_t *head);

/* Bytes a message takes as a frame, header included. */
size_t wire_frame_size(const ProtobufCMessage *msg);

/* Write msg as a frame into dst (cap bytes); returns the bytes written, 0 if it
 * does not fit. */
size_t wire_encode(const ProtobufCMessage *msg, uint8_t *dst, size_t cap);

/* Append msg as a frame to an evbuffer; 0 on success, -1 on allocation failure.
 */
int wire_append(struct evbuffer *out, const ProtobufCMessage *msg);

/* Append a Reply{id, code, message} with no result; 0 or -1 as wire_append. */
int wire_append_error(
    struct evbuffer *out, uint64_t id, int code, const char *message);

/* Name of a Code value ("OK", "NOT_FOUND", ...); "UNKNOWN" for others. */
const char *wire_code_name(int code);

/* Name of a request op ("lookup", "hospital_add", ...); "none" when unset. */
const char *wire_op_name(int op_case);

#endif
