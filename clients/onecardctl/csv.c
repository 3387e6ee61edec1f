/*
 * csv.c: parse and write the patient CSV (docs/csv.md).
 *
 * Owns RFC 4180 record splitting (quotes, doubled quotes, commas and line
 * ends inside quotes, LF or CRLF), the row shape check that import does
 * before anything goes to the broker, and the writer that gen and export
 * share. A malformed record is skipped up to the end of its line, so one bad
 * row never takes its neighbours with it; a quote that opens a field across
 * lines and does not make a whole row of it is a stray, and only its line is
 * lost. Nothing here talks to the broker or
 * exits; every error comes back as a reason string.
 */
#include <stdlib.h>
#include <string.h>

#include "csv.h"

#define CSV_NO_NL ((size_t)-1)

/* Where the text after a bad spot ends: just past the next newline. */
static enum csv_status
csv_skip(const char *buf, size_t len, size_t from, int eof, size_t *consumed)
{
	const char *nl = memchr(buf + from, '\n', len - from);

	if (nl != NULL) {
		*consumed = (size_t)(nl - buf) + 1;
		return CSV_BAD;
	}
	if (!eof && len <= CSV_MAX_RECORD)
		return CSV_NEED_MORE;
	*consumed = len;
	return CSV_BAD;
}

/*
 * A record that went wrong after a quoted field crossed a line end (the
 * first at first_nl, in field nl_field) was opened by a stray quote: only
 * that first line is bad, and reading goes on at the next line, so one quote
 * never swallows the rows after it.
 */
static enum csv_status
csv_stray_quote(size_t first_nl, size_t nl_field, size_t *consumed, char *err,
    size_t errlen)
{
	snprintf(err, errlen,
	    "field %zu: unbalanced quote: the quoted field it opens is not "
	    "closed on this line",
	    nl_field);
	*consumed = first_nl + 1;
	return CSV_BAD;
}

enum csv_status
csv_parse_record(const char *buf, size_t len, int eof, size_t *consumed,
    struct csv_record *rec, char *err, size_t errlen)
{
	size_t i = 0, o = 0, first_nl = CSV_NO_NL, nl_field = 0;
	char c;

	*consumed = 0;
	rec->nfields = 0;
	if (len == 0)
		return eof ? CSV_END : CSV_NEED_MORE;
	for (;;) {
		if (rec->nfields == CSV_MAX_FIELDS) {
			if (first_nl != CSV_NO_NL)
				return csv_stray_quote(
				    first_nl, nl_field, consumed, err, errlen);
			snprintf(
			    err, errlen, "more than %d fields", CSV_MAX_FIELDS);
			return csv_skip(buf, len, i, eof, consumed);
		}
		rec->field[rec->nfields] = rec->buf + o;
		if (i < len && buf[i] == '"') {
			/* A quoted field runs to the closing quote. */
			for (i++;; i++) {
				if (i >= CSV_MAX_RECORD) {
					if (first_nl != CSV_NO_NL)
						return csv_stray_quote(first_nl,
						    nl_field, consumed, err,
						    errlen);
					snprintf(err, errlen,
					    "record longer than %d bytes",
					    CSV_MAX_RECORD);
					return csv_skip(
					    buf, len, i, eof, consumed);
				}
				if (i == len) {
					if (!eof)
						return CSV_NEED_MORE;
					if (first_nl != CSV_NO_NL)
						return csv_stray_quote(first_nl,
						    nl_field, consumed, err,
						    errlen);
					snprintf(err, errlen,
					    "field %zu: quoted field not "
					    "closed",
					    rec->nfields + 1);
					*consumed = len;
					return CSV_BAD;
				}
				if (buf[i] != '"') {
					if (buf[i] == '\n' &&
					    first_nl == CSV_NO_NL) {
						first_nl = i;
						nl_field = rec->nfields + 1;
					}
					rec->buf[o++] = buf[i];
					continue;
				}
				if (i + 1 == len && !eof)
					return CSV_NEED_MORE;
				if (i + 1 < len && buf[i + 1] == '"') {
					rec->buf[o++] = '"';
					i++;
					continue;
				}
				i++;
				break;
			}
			if (i < len && buf[i] != ',' && buf[i] != '\n' &&
			    buf[i] != '\r') {
				if (first_nl != CSV_NO_NL)
					return csv_stray_quote(first_nl,
					    nl_field, consumed, err, errlen);
				snprintf(err, errlen,
				    "field %zu: text after the closing quote",
				    rec->nfields + 1);
				return csv_skip(buf, len, i, eof, consumed);
			}
		} else {
			for (; i < len; i++) {
				c = buf[i];
				if (c == ',' || c == '\n' || c == '\r')
					break;
				if (c == '"') {
					if (first_nl != CSV_NO_NL)
						return csv_stray_quote(first_nl,
						    nl_field, consumed, err,
						    errlen);
					snprintf(err, errlen,
					    "field %zu: quote inside an "
					    "unquoted field",
					    rec->nfields + 1);
					return csv_skip(
					    buf, len, i, eof, consumed);
				}
				if (i >= CSV_MAX_RECORD) {
					if (first_nl != CSV_NO_NL)
						return csv_stray_quote(first_nl,
						    nl_field, consumed, err,
						    errlen);
					snprintf(err, errlen,
					    "record longer than %d bytes",
					    CSV_MAX_RECORD);
					return csv_skip(
					    buf, len, i, eof, consumed);
				}
				rec->buf[o++] = c;
			}
			if (i == len && !eof)
				return CSV_NEED_MORE;
		}
		rec->buf[o++] = '\0';
		rec->nfields++;
		if (i == len)
			break;
		c = buf[i];
		if (c == ',') {
			i++;
			continue;
		}
		if (c == '\r') {
			if (i + 1 == len && !eof)
				return CSV_NEED_MORE;
			i++;
			if (i < len && buf[i] == '\n')
				i++;
			break;
		}
		i++; /* '\n' */
		break;
	}
	/* A quote may carry a record across lines only into a whole row. */
	if (first_nl != CSV_NO_NL && rec->nfields != CSV_NFIELDS)
		return csv_stray_quote(
		    first_nl, nl_field, consumed, err, errlen);
	*consumed = i;
	return CSV_RECORD;
}

/* Is s[0..n) valid UTF-8 (no overlongs, no surrogates, at most U+10FFFF)? */
static int
csv_utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0, k, need;
	unsigned cp, c;

	while (i < n) {
		c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else
			return 0;
		if (i + need >= n)
			return 0;
		for (k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += need + 1;
	}
	return 1;
}

static const char *const csv_names[CSV_NFIELDS] = {
    "name", "sex", "birth_date", "phone", "address", "identifiers"};

/* Split the identifiers field (already copied to row->idbuf) in place. */
static int
csv_ids_parse(struct csv_row *row, char *err, size_t errlen)
{
	char *p = row->idbuf, *item, *eq;
	const char *d;

	row->nids = 0;
	while (p != NULL) {
		item = p;
		p = strchr(p, ';');
		if (p != NULL)
			*p++ = '\0';
		if (*item == '\0')
			continue; /* "a=1;;b=2" and a trailing ';' are fine */
		if ((eq = strchr(item, '=')) == NULL) {
			/* The value is not echoed: it may be a cn-id. */
			snprintf(err, errlen,
			    "identifiers: item %zu is not DOMAIN=VALUE",
			    row->nids + 1);
			return -1;
		}
		*eq = '\0';
		d = item;
		if (*d == '\0' || eq[1] == '\0') {
			snprintf(err, errlen,
			    "identifiers: empty %s in an identifier",
			    *d == '\0' ? "domain" : "value");
			return -1;
		}
		if (strcmp(d, "cn-id") != 0 && strcmp(d, "cn-ssc") != 0 &&
		    (strncmp(d, "hosp:", 5) != 0 || d[5] == '\0')) {
			snprintf(err, errlen,
			    "identifiers: unknown domain \"%.40s\" (cn-id, "
			    "cn-ssc or hosp:CODE)",
			    d);
			return -1;
		}
		if (row->nids == CSV_MAX_IDS) {
			snprintf(err, errlen,
			    "identifiers: more than %d identifiers",
			    CSV_MAX_IDS);
			return -1;
		}
		row->ids[row->nids].domain = d;
		row->ids[row->nids].value = eq + 1;
		row->nids++;
	}
	if (row->nids == 0) {
		snprintf(err, errlen, "identifiers: none given");
		return -1;
	}
	return 0;
}

int
csv_row_parse(
    const struct csv_record *rec, struct csv_row *row, char *err, size_t errlen)
{
	const char *s;
	size_t i, n;

	if (rec->nfields != CSV_NFIELDS) {
		snprintf(err, errlen, "expected %d fields, found %zu",
		    CSV_NFIELDS, rec->nfields);
		return -1;
	}
	for (i = 0; i < CSV_NFIELDS; i++) {
		s = rec->field[i];
		if (!csv_utf8_valid((const unsigned char *)s, strlen(s))) {
			snprintf(
			    err, errlen, "%s: not valid UTF-8", csv_names[i]);
			return -1;
		}
	}
	row->name = rec->field[0];
	row->sex = rec->field[1];
	row->birth_date = rec->field[2];
	row->phone = rec->field[3];
	row->address = rec->field[4];

	s = row->sex;
	if (!(s[0] == '\0' || (s[1] == '\0' && strchr("MFmf", s[0]) != NULL))) {
		snprintf(err, errlen, "sex: \"%.8s\" is not M, F or empty", s);
		return -1;
	}
	s = row->birth_date;
	if (s[0] != '\0') {
		n = strlen(s);
		for (i = 0; i < n; i++)
			if ((i == 4 || i == 7) ? s[i] != '-'
					       : (s[i] < '0' || s[i] > '9'))
				break;
		if (n != 10 || i != n) {
			snprintf(err, errlen,
			    "birth_date: \"%.16s\" is not YYYY-MM-DD", s);
			return -1;
		}
	}
	s = row->phone;
	if (strlen(s) > 32 || strspn(s, "0123456789 +-()") != strlen(s)) {
		snprintf(err, errlen,
		    "phone: only digits, spaces and + - ( ), at most 32");
		return -1;
	}
	n = strlen(rec->field[5]);
	if (n >= sizeof(row->idbuf)) {
		snprintf(err, errlen, "identifiers: too long");
		return -1;
	}
	memcpy(row->idbuf, rec->field[5], n + 1);
	return csv_ids_parse(row, err, errlen);
}

void
csv_write_field(FILE *fp, const char *s)
{
	const char *p;

	if (strpbrk(s, ",\"\r\n") == NULL) {
		fputs(s, fp);
		return;
	}
	putc('"', fp);
	for (p = s; *p != '\0'; p++) {
		if (*p == '"')
			putc('"', fp);
		putc(*p, fp);
	}
	putc('"', fp);
}

void
csv_write_row(FILE *fp, const struct csv_row *row)
{
	char ids[CSV_MAX_RECORD];
	size_t i, o = 0;
	int n;

	csv_write_field(fp, row->name);
	putc(',', fp);
	csv_write_field(fp, row->sex);
	putc(',', fp);
	csv_write_field(fp, row->birth_date);
	putc(',', fp);
	csv_write_field(fp, row->phone);
	putc(',', fp);
	csv_write_field(fp, row->address);
	putc(',', fp);
	ids[0] = '\0';
	for (i = 0; i < row->nids; i++) {
		n = snprintf(ids + o, sizeof(ids) - o, "%s%s=%s",
		    i > 0 ? ";" : "", row->ids[i].domain, row->ids[i].value);
		if (n < 0 || (size_t)n >= sizeof(ids) - o)
			break;
		o += (size_t)n;
	}
	csv_write_field(fp, ids);
	putc('\n', fp);
}

int
csv_reader_init(struct csv_reader *r, FILE *fp)
{
	memset(r, 0, sizeof(*r));
	r->fp = fp;
	r->cap = 4 * CSV_MAX_RECORD;
	r->line = 1;
	if ((r->buf = malloc(r->cap)) == NULL)
		return -1;
	return 0;
}

void
csv_reader_free(struct csv_reader *r)
{
	free(r->buf);
	r->buf = NULL;
}

/* Move what is left to the front and read more; -1 on a read error. */
static int
csv_reader_fill(struct csv_reader *r)
{
	size_t n;

	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	n = fread(r->buf + r->end, 1, r->cap - r->end, r->fp);
	r->end += n;
	if (n == 0) {
		if (ferror(r->fp))
			return -1;
		r->eof = 1;
	}
	return 0;
}

int
csv_reader_next(struct csv_reader *r, struct csv_record *rec,
    unsigned long *line, const char **raw, size_t *rawlen, char *err,
    size_t errlen)
{
	enum csv_status st;
	const char *p, *q;
	size_t used, n;

	for (;;) {
		if (r->skip) {
			/* Drop the tail of an overlong line already rejected.
			 */
			p = r->buf + r->start;
			q = memchr(p, '\n', r->end - r->start);
			used =
			    q != NULL ? (size_t)(q - p) + 1 : r->end - r->start;
			r->start += used;
			r->off += used;
			if (q != NULL) {
				r->line++;
				r->skip = 0;
			} else if (r->eof)
				r->skip = 0;
			else if (csv_reader_fill(r) == -1)
				return -1;
			continue;
		}
		st = csv_parse_record(r->buf + r->start, r->end - r->start,
		    r->eof, &used, rec, err, errlen);
		if (st == CSV_END)
			return CSV_END;
		if (st == CSV_NEED_MORE) {
			if (csv_reader_fill(r) == -1)
				return -1;
			continue;
		}
		p = r->buf + r->start;
		*line = r->line;
		for (q = p;
		     (q = memchr(q, '\n', used - (size_t)(q - p))) != NULL; q++)
			r->line++;
		r->start += used;
		r->off += used;
		if (st == CSV_BAD && !r->eof && used > 0 && p[used - 1] != '\n')
			r->skip = 1;
		n = used;
		if (n > 0 && p[n - 1] == '\n')
			n--;
		if (n > 0 && p[n - 1] == '\r')
			n--;
		/* Blank lines carry nothing; skip them. */
		if (st == CSV_RECORD && n == 0)
			continue;
		if (raw != NULL)
			*raw = p;
		if (rawlen != NULL)
			*rawlen = n;
		return st;
	}
}
