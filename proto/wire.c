/*
 * wire.c: the frame codec.
 *
 * Owns the byte layout of a frame (4-byte big-endian length, then one
 * protobuf message) and the memory an unpacked message may take. A length is
 * judged from the 4 header bytes alone, so a zero or oversize frame is refused
 * before a single byte of its body is buffered or allocated. Unpacking goes
 * through a counting allocator: protobuf-c sizes repeated fields from the
 * input, so a small frame of empty sub-messages could otherwise make it
 * allocate many times the frame's size. This file never logs, never does I/O
 * and keeps no state between calls; the caller decides what a refusal means.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "wire.h"

/* The size of a block sits in front of it, padded to keep the alignment. */
#define WIRE_BLOCK_HDR sizeof(max_align_t)

/*
 * A cap below this is raised to it. A message of empty sub-messages takes
 * far more than WIRE_MEM_FACTOR times its few bytes once unpacked (an
 * 8-byte Update{identifier{}, demographics{}} takes about 260), and such a
 * message must reach validation to get its INVALID_ARGUMENT rather than look
 * like an attack. A floor this small bounds nothing an attacker could use.
 */
#define WIRE_MEM_FLOOR 4096

/* What one unpack has taken so far, and what it may take. */
struct wire_mem {
	size_t used;
	size_t cap;
	int over;
};

/* Read a big-endian 32-bit length. */
static uint32_t
wire_get_len(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	    ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* Write a big-endian 32-bit length. */
static void
wire_put_len(uint8_t *p, uint32_t len)
{
	p[0] = (uint8_t)(len >> 24);
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
}

/* Judge a frame from its header and the bytes buffered behind it. */
static enum wire_status
wire_judge(const uint8_t *hdr, size_t n, size_t max_frame, size_t *body_len)
{
	size_t len;

	len = wire_get_len(hdr);
	if (body_len != NULL)
		*body_len = len;
	if (len == 0)
		return WIRE_EMPTY;
	if (len > max_frame)
		return WIRE_OVERSIZE;
	if (n - WIRE_HEADER_LEN < len)
		return WIRE_NEED_MORE;
	return WIRE_FRAME;
}

enum wire_status
wire_peek(const uint8_t *buf, size_t n, size_t max_frame, size_t *body_len)
{
	if (body_len != NULL)
		*body_len = 0;
	if (n < WIRE_HEADER_LEN)
		return WIRE_NEED_MORE;
	return wire_judge(buf, n, max_frame, body_len);
}

/* Copies out only the 4 header bytes: the buffer is never made contiguous. */
enum wire_status
wire_peek_evbuffer(struct evbuffer *in, size_t max_frame, size_t *body_len)
{
	uint8_t hdr[WIRE_HEADER_LEN];
	size_t n;

	if (body_len != NULL)
		*body_len = 0;
	n = evbuffer_get_length(in);
	if (n < WIRE_HEADER_LEN)
		return WIRE_NEED_MORE;
	if (evbuffer_copyout(in, hdr, sizeof(hdr)) != (ev_ssize_t)sizeof(hdr))
		return WIRE_NEED_MORE;
	return wire_judge(hdr, n, max_frame, body_len);
}

/* Allocate for protobuf-c, refusing once the message passes its cap. */
static void *
wire_mem_alloc(void *data, size_t size)
{
	struct wire_mem *mem = data;
	size_t need;
	uint8_t *p;

	if (size > SIZE_MAX - WIRE_BLOCK_HDR) {
		mem->over = 1;
		return NULL;
	}
	need = size + WIRE_BLOCK_HDR;
	if (need > mem->cap || mem->used > mem->cap - need) {
		mem->over = 1;
		return NULL;
	}
	if ((p = malloc(need)) == NULL)
		return NULL;
	memcpy(p, &need, sizeof(need));
	mem->used += need;
	return p + WIRE_BLOCK_HDR;
}

/* Free a block from wire_mem_alloc; data is NULL once the unpack is over. */
static void
wire_mem_free(void *data, void *ptr)
{
	struct wire_mem *mem = data;
	uint8_t *p;
	size_t need;

	if (ptr == NULL)
		return;
	p = (uint8_t *)ptr - WIRE_BLOCK_HDR;
	if (mem != NULL) {
		memcpy(&need, p, sizeof(need));
		mem->used -= need;
	}
	free(p);
}

/* The allocator that frees what a finished unpack handed out. */
static ProtobufCAllocator wire_free_allocator = {
    .alloc = wire_mem_alloc,
    .free = wire_mem_free,
    .allocator_data = NULL,
};

/* Unpack one message under a memory cap. */
static ProtobufCMessage *
wire_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *body,
    size_t len, size_t mem_cap, int *over_cap)
{
	struct wire_mem mem = {.used = 0,
	    .cap = mem_cap < WIRE_MEM_FLOOR ? WIRE_MEM_FLOOR : mem_cap,
	    .over = 0};
	ProtobufCAllocator a = {
	    .alloc = wire_mem_alloc,
	    .free = wire_mem_free,
	    .allocator_data = &mem,
	};
	ProtobufCMessage *msg;

	if (over_cap != NULL)
		*over_cap = 0;
	msg = protobuf_c_message_unpack(desc, &a, len, body);
	if (msg == NULL && mem.over && over_cap != NULL)
		*over_cap = 1;
	return msg;
}

Onecard__V1__Request *
wire_request_unpack(
    const uint8_t *body, size_t len, size_t mem_cap, int *over_cap)
{
	return (Onecard__V1__Request *)wire_unpack(
	    &onecard__v1__request__descriptor, body, len, mem_cap, over_cap);
}

void
wire_request_free(Onecard__V1__Request *req)
{
	if (req != NULL)
		protobuf_c_message_free_unpacked(
		    &req->base, &wire_free_allocator);
}

Onecard__V1__Reply *
wire_reply_unpack(
    const uint8_t *body, size_t len, size_t mem_cap, int *over_cap)
{
	return (Onecard__V1__Reply *)wire_unpack(
	    &onecard__v1__reply__descriptor, body, len, mem_cap, over_cap);
}

void
wire_reply_free(Onecard__V1__Reply *reply)
{
	if (reply != NULL)
		protobuf_c_message_free_unpacked(
		    &reply->base, &wire_free_allocator);
}

size_t
wire_frame_size(const ProtobufCMessage *msg)
{
	return WIRE_HEADER_LEN + protobuf_c_message_get_packed_size(msg);
}

size_t
wire_encode(const ProtobufCMessage *msg, uint8_t *dst, size_t cap)
{
	size_t body;

	body = protobuf_c_message_get_packed_size(msg);
	if (body > UINT32_MAX || cap < WIRE_HEADER_LEN ||
	    cap - WIRE_HEADER_LEN < body)
		return 0;
	wire_put_len(dst, (uint32_t)body);
	if (protobuf_c_message_pack(msg, dst + WIRE_HEADER_LEN) != body)
		return 0;
	return WIRE_HEADER_LEN + body;
}

/* Packs straight into the evbuffer's free space; a heap copy only when the
 * buffer cannot give one contiguous extent. */
int
wire_append(struct evbuffer *out, const ProtobufCMessage *msg)
{
	struct evbuffer_iovec vec;
	size_t size;
	uint8_t *tmp;
	int rc;

	size = wire_frame_size(msg);
	if (size - WIRE_HEADER_LEN > UINT32_MAX)
		return -1;
	if (evbuffer_reserve_space(out, (ev_ssize_t)size, &vec, 1) == 1 &&
	    vec.iov_len >= size) {
		if (wire_encode(msg, vec.iov_base, size) != size)
			return -1;
		vec.iov_len = size;
		return evbuffer_commit_space(out, &vec, 1);
	}
	if ((tmp = malloc(size)) == NULL)
		return -1;
	rc = -1;
	if (wire_encode(msg, tmp, size) == size)
		rc = evbuffer_add(out, tmp, size);
	free(tmp);
	return rc;
}

int
wire_append_error(
    struct evbuffer *out, uint64_t id, int code, const char *message)
{
	Onecard__V1__Reply reply = ONECARD__V1__REPLY__INIT;

	reply.id = id;
	reply.code = (Onecard__V1__Code)code;
	if (message != NULL)
		reply.message = (char *)message;
	return wire_append(out, &reply.base);
}

/* Names come from the generated descriptors, so they follow the .proto. */
const char *
wire_code_name(int code)
{
	const ProtobufCEnumValue *v;

	v = protobuf_c_enum_descriptor_get_value(
	    &onecard__v1__code__descriptor, code);
	return v != NULL ? v->name : "UNKNOWN";
}

const char *
wire_op_name(int op_case)
{
	const ProtobufCFieldDescriptor *f;

	if (op_case <= 0)
		return "none";
	f = protobuf_c_message_descriptor_get_field(
	    &onecard__v1__request__descriptor, (unsigned)op_case);
	if (f == NULL || (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) == 0)
		return "none";
	return f->name;
}

int
wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t x = 0;

	for (int shift = 0; shift < 70 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;

		if (shift < 64)
			x |= (uint64_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0) {
			*v = x;
			return 0;
		}
	}
	return -1;
}

/*
 * The one length-delimited field `field` that makes up all of [p, end): its
 * bytes in *body and *len; -1 for anything else (another field, a repeat, a
 * length that does not end exactly at end).
 */
static int
wire_only_field(const uint8_t *p, const uint8_t *end, unsigned field,
    const uint8_t **body, size_t *len)
{
	uint64_t key, n;

	if (wire_varint(&p, end, &key) == -1 || key != (field << 3 | 2) ||
	    wire_varint(&p, end, &n) == -1 || n != (uint64_t)(end - p))
		return -1;
	*body = p;
	*len = (size_t)n;
	return 0;
}

int
wire_lookup_decode(const uint8_t *p, size_t n, struct wire_lookup *out)
{
	const uint8_t *end = p + n, *body;
	char *dst[2] = {out->domain, out->value};
	uint64_t key, v;
	size_t len;

	/* Request: id (1, a varint, not 0), then lookup (11), nothing else. */
	if (wire_varint(&p, end, &key) == -1 || key != (1 << 3 | 0) ||
	    wire_varint(&p, end, &out->id) == -1 || out->id == 0 ||
	    wire_only_field(
		p, end, ONECARD__V1__REQUEST__OP_LOOKUP, &body, &len) == -1)
		return -1;
	/* Lookup: identifier (1) and nothing else. */
	if (wire_only_field(body, body + len, 1, &body, &len) == -1)
		return -1;
	/* Identifier: domain (1) then value (2). */
	p = body;
	end = body + len;
	for (unsigned f = 1; f <= 2; f++) {
		if (wire_varint(&p, end, &key) == -1 || key != (f << 3 | 2) ||
		    wire_varint(&p, end, &v) == -1 || v >= WIRE_LOOKUP_STR ||
		    v > (uint64_t)(end - p) ||
		    memchr(p, '\0', (size_t)v) != NULL)
			return -1;
		memcpy(dst[f - 1], p, (size_t)v);
		dst[f - 1][v] = '\0';
		p += v;
	}
	return p == end ? 0 : -1;
}

size_t
wire_id_head(uint64_t id, size_t rest_len, uint8_t *head)
{
	size_t n = WIRE_HEADER_LEN, body;

	if (id != 0) {
		head[n++] = 0x08; /* field 1, varint */
		for (; id >= 0x80; id >>= 7)
			head[n++] = (uint8_t)(id | 0x80);
		head[n++] = (uint8_t)id;
	}
	body = n - WIRE_HEADER_LEN + rest_len;
	if (rest_len > UINT32_MAX || body > UINT32_MAX)
		return 0;
	wire_put_len(head, (uint32_t)body);
	return n;
}
