/*
 * audit_line.c: read one audit trail line back into its fields (see
 * audit_line.h). Owns the decoding of the trail's JSON strings; it judges
 * nothing about the chain (audit.c does) and never prints.
 */
#include <string.h>

#include "audit_line.h"

/* A cursor over one line. */
struct rd {
	const char *p, *end;
};

/* Skip blanks. */
static void
rd_ws(struct rd *r)
{
	while (r->p < r->end &&
	    (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

/* One hex digit's value, or -1. */
static int
rd_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Append the UTF-8 of code point cp at out[*o], if it fits whole. */
static void
put_utf8(char *out, size_t outlen, size_t *o, unsigned cp, int *full)
{
	char b[4];
	size_t n;

	if (cp < 0x80) {
		b[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | cp >> 6);
		b[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else {
		b[0] = (char)(0xe0 | cp >> 12);
		b[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	}
	if (*full || *o + n >= outlen) {
		*full = 1;
		return;
	}
	memcpy(out + *o, b, n);
	*o += n;
}

/*
 * Read a JSON string at the cursor (on its opening quote) into out (NULL:
 * skip it), cut at a character boundary when it does not fit. 0 or -1.
 */
static int
rd_string(struct rd *r, char *out, size_t outlen)
{
	size_t o = 0;
	int full = out == NULL;

	if (r->p >= r->end || *r->p != '"')
		return -1;
	r->p++;
	while (r->p < r->end && *r->p != '"') {
		unsigned char c = (unsigned char)*r->p++;
		unsigned cp;

		if (c < 0x20)
			return -1;
		if (c != '\\') {
			/* A lead byte starts a character: stop copying when
			 * the whole character would not fit. */
			if (!full && (c & 0xc0) != 0x80) {
				size_t n = c < 0x80 ? 1
				    : c >= 0xf0     ? 4
				    : c >= 0xe0     ? 3
						    : 2;
				if (o + n >= outlen)
					full = 1;
			}
			if (!full)
				out[o++] = (char)c;
			continue;
		}
		if (r->p >= r->end)
			return -1;
		c = (unsigned char)*r->p++;
		switch (c) {
		case '"':
		case '\\':
		case '/':
			cp = c;
			break;
		case 'b':
			cp = '\b';
			break;
		case 'f':
			cp = '\f';
			break;
		case 'n':
			cp = '\n';
			break;
		case 'r':
			cp = '\r';
			break;
		case 't':
			cp = '\t';
			break;
		case 'u':
			if (r->end - r->p < 4)
				return -1;
			cp = 0;
			for (int i = 0; i < 4; i++) {
				int h = rd_hex(r->p[i]);
				if (h < 0)
					return -1;
				cp = cp << 4 | (unsigned)h;
			}
			r->p += 4;
			/* A surrogate half (the trail writes none) stands
			 * for itself as U+FFFD. */
			if (cp >= 0xd800 && cp <= 0xdfff)
				cp = 0xfffd;
			break;
		default:
			return -1;
		}
		if (!full)
			put_utf8(out, outlen, &o, cp, &full);
	}
	if (r->p >= r->end)
		return -1;
	r->p++;
	if (out != NULL)
		out[o] = '\0';
	return 0;
}

/* Skip any JSON value (objects and arrays nested). 0 or -1. */
static int
rd_skip(struct rd *r)
{
	int depth = 0;

	rd_ws(r);
	do {
		if (r->p >= r->end)
			return -1;
		if (*r->p == '"') {
			if (rd_string(r, NULL, 0) == -1)
				return -1;
		} else if (*r->p == '{' || *r->p == '[') {
			depth++;
			r->p++;
		} else if (*r->p == '}' || *r->p == ']') {
			if (depth == 0)
				return -1;
			depth--;
			r->p++;
		} else if (depth == 0) {
			/* A number, true, false or null: up to a delimiter. */
			const char *s = r->p;
			while (r->p < r->end && *r->p != ',' && *r->p != '}' &&
			    *r->p != ']' && *r->p != ' ')
				r->p++;
			return r->p > s ? 0 : -1;
		} else
			r->p++;
		rd_ws(r);
	} while (depth > 0);
	return 0;
}

/* Read an unsigned decimal. 0 or -1. */
static int
rd_u64(struct rd *r, uint64_t *v)
{
	uint64_t x = 0;
	const char *s = r->p;

	while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
		if (x > (UINT64_MAX - 9) / 10)
			return -1;
		x = x * 10 + (uint64_t)(*r->p++ - '0');
	}
	if (r->p == s)
		return -1;
	*v = x;
	return 0;
}

/* Where the string field key goes in rec, and its size; NULL if unknown. */
static char *
rec_slot(struct audit_rec *rec, const char *key, size_t *len)
{
#define SLOT(name)                                                             \
	if (strcmp(key, #name) == 0) {                                         \
		*len = sizeof(rec->name);                                      \
		return rec->name;                                              \
	}
	SLOT(time)
	SLOT(actor)
	SLOT(role)
	SLOT(op)
	SLOT(target)
	SLOT(patient_id)
	SLOT(other_patient_id)
	SLOT(code)
	SLOT(detail)
#undef SLOT
	return NULL;
}

int
audit_rec_parse(const char *line, size_t len, struct audit_rec *rec)
{
	struct rd r = {line, line + len};
	char key[32];
	int have_seq = 0;

	memset(rec, 0, sizeof(*rec));
	rd_ws(&r);
	if (r.p >= r.end || *r.p++ != '{')
		return -1;
	for (;;) {
		char *slot;
		size_t slen = 0;

		rd_ws(&r);
		if (rd_string(&r, key, sizeof(key)) == -1)
			return -1;
		rd_ws(&r);
		if (r.p >= r.end || *r.p++ != ':')
			return -1;
		rd_ws(&r);
		if (strcmp(key, "seq") == 0) {
			if (rd_u64(&r, &rec->seq) == -1)
				return -1;
			have_seq = 1;
		} else if ((slot = rec_slot(rec, key, &slen)) != NULL &&
		    r.p < r.end && *r.p == '"') {
			if (rd_string(&r, slot, slen) == -1)
				return -1;
		} else if (rd_skip(&r) == -1)
			return -1;
		rd_ws(&r);
		if (r.p >= r.end)
			return -1;
		if (*r.p == '}')
			break;
		if (*r.p++ != ',')
			return -1;
	}
	r.p++;
	rd_ws(&r);
	return have_seq && r.p == r.end ? 0 : -1;
}

/* Is c a digit, or an X ending a resident ID? */
static int
id_char(char c)
{
	return (c >= '0' && c <= '9') || c == 'X' || c == 'x';
}

void
audit_mask(char *s)
{
	size_t len = strlen(s);

	for (size_t i = 0; i + 18 <= len; i++) {
		size_t j = i;

		if (i > 0 && id_char(s[i - 1]))
			continue;
		while (j < len && j - i < 17 && s[j] >= '0' && s[j] <= '9')
			j++;
		if (j - i != 17 || !id_char(s[j]) ||
		    (j + 1 < len && id_char(s[j + 1])))
			continue;
		memset(s + i + 6, '*', 8);
		i = j;
	}
}
