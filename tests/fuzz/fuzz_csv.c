/*
 * fuzz_csv.c: arbitrary bytes through onecardctl's patient CSV parser
 * (clients/onecardctl/csv.c), as import reads a file.
 *
 * Three readings of the same bytes must agree: csv_parse_record over the
 * whole buffer at end of file; the same fed in two pieces that meet at a
 * point the input chooses (NEED_MORE, then more bytes); and csv_reader over
 * a FILE. Every record that passes csv_row_parse is written back with
 * csv_write_row and must parse to the same row. A parser that reads past its
 * buffer, loops, or disagrees with itself aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Fail loudly: libFuzzer and ASan both report an abort with its stack. */
static void
fuzz_check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_csv: invariant broken: %s\n", what);
		abort();
	}
}

/* What one record came to, to compare readings. */
struct fuzz_rec {
	int status;   /* CSV_RECORD or CSV_BAD */
	size_t start; /* offset of the record in the input */
	size_t used;
	size_t nfields;
	uint64_t hash; /* of the unquoted fields */
};

#define FUZZ_MAX_RECS 4096

static struct csv_record rec; /* 64 KiB: not on the stack */
static struct csv_row row, row2;

/* FNV-1a over the fields, separators included. */
static uint64_t
fuzz_hash(const struct csv_record *r)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < r->nfields; i++) {
		for (const char *p = r->field[i];; p++) {
			h = (h ^ (uint8_t)*p) * 1099511628211ULL;
			if (*p == '\0')
				break;
		}
	}
	return h;
}

/* Is this a blank line, which csv_reader skips? */
static int
fuzz_blank(const char *text, const struct fuzz_rec *r)
{
	const char *p = text + r->start;

	if (r->status != CSV_RECORD || r->nfields != 1)
		return 0;
	if (r->used == 1)
		return p[0] == '\n' || p[0] == '\r';
	return r->used == 2 && p[0] == '\r' && p[1] == '\n';
}

/* Every field pointer lies inside rec.buf and is NUL-terminated there. */
static void
fuzz_check_fields(const struct csv_record *r)
{
	fuzz_check(r->nfields <= CSV_MAX_FIELDS, "nfields within bounds");
	for (size_t i = 0; i < r->nfields; i++) {
		const char *f = r->field[i];
		size_t room;

		fuzz_check(
		    f >= r->buf && f < r->buf + sizeof(r->buf), "field in buf");
		room = sizeof(r->buf) - (size_t)(f - r->buf);
		fuzz_check(memchr(f, '\0', room) != NULL, "field terminated");
	}
}

/*
 * Parse data[0..size) into recs, giving the parser only the first `split`
 * bytes until it asks for more. Returns how many records.
 */
static size_t
fuzz_parse(const char *data, size_t size, size_t split, struct fuzz_rec *recs)
{
	size_t off = 0, avail = split, used, n = 0;
	char err[256];
	enum csv_status st;

	for (;;) {
		int eof = avail == size;

		err[0] = '\0';
		st = csv_parse_record(data + off, avail - off, eof, &used, &rec,
		    err, sizeof(err));
		if (st == CSV_END) {
			fuzz_check(off == size, "END only at the end");
			break;
		}
		if (st == CSV_NEED_MORE) {
			fuzz_check(!eof, "no NEED_MORE at end of file");
			avail = size; /* the second read brings the rest */
			continue;
		}
		fuzz_check(st == CSV_RECORD || st == CSV_BAD, "known status");
		fuzz_check(used > 0 && used <= avail - off,
		    "a record consumes bytes it was given");
		if (st == CSV_BAD)
			fuzz_check(err[0] != '\0', "a bad record says why");
		else
			fuzz_check_fields(&rec);
		fuzz_check(n < FUZZ_MAX_RECS, "record count bounded");
		recs[n].status = st;
		recs[n].start = off;
		recs[n].used = used;
		recs[n].nfields = st == CSV_RECORD ? rec.nfields : 0;
		recs[n].hash = st == CSV_RECORD ? fuzz_hash(&rec) : 0;
		n++;
		off += used;
	}
	return n;
}

/* Split and write back a record; the written row parses to the same. */
static void
fuzz_round_trip(const char *data, size_t size)
{
	char err[256], *text = NULL;
	size_t len = 0, used;
	FILE *fp;

	if (csv_parse_record(data, size, 1, &used, &rec, err, sizeof(err)) !=
	    CSV_RECORD)
		return;
	if (csv_row_parse(&rec, &row, err, sizeof(err)) == -1)
		return;
	fuzz_check(row.nids >= 1 && row.nids <= CSV_MAX_IDS, "nids in range");
	fp = open_memstream(&text, &len);
	fuzz_check(fp != NULL, "open_memstream");
	csv_write_row(fp, &row);
	fclose(fp);

	/* row points into rec; parse the text into a second record. */
	{
		static struct csv_record rec2;

		fuzz_check(csv_parse_record(text, len, 1, &used, &rec2, err,
			       sizeof(err)) == CSV_RECORD,
		    "a written row parses");
		fuzz_check(used == len, "a written row is one record");
		fuzz_check(csv_row_parse(&rec2, &row2, err, sizeof(err)) == 0,
		    "a written row passes the shape check");
		fuzz_check(strcmp(row.name, row2.name) == 0 &&
			strcmp(row.sex, row2.sex) == 0 &&
			strcmp(row.birth_date, row2.birth_date) == 0 &&
			strcmp(row.phone, row2.phone) == 0 &&
			strcmp(row.address, row2.address) == 0,
		    "demographics survive a round trip");
		fuzz_check(row.nids == row2.nids, "identifiers survive");
		for (size_t i = 0; i < row.nids; i++)
			fuzz_check(strcmp(row.ids[i].domain,
				       row2.ids[i].domain) == 0 &&
				strcmp(row.ids[i].value, row2.ids[i].value) ==
				    0,
			    "each identifier survives");
	}
	free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fuzz_rec whole[FUZZ_MAX_RECS], pieces[FUZZ_MAX_RECS];
	const char *text = (const char *)data;
	size_t nw, np, split, k = 0;
	struct csv_reader r;
	unsigned long line;
	const char *raw;
	size_t rawlen;
	char err[256];
	FILE *fp;
	int st;

	if (size > 4 * CSV_MAX_RECORD)
		return 0;
	split = size ? data[0] % (size + 1) : 0;
	nw = fuzz_parse(text, size, size, whole);
	np = fuzz_parse(text, size, split, pieces);
	fuzz_check(nw == np, "two reads give as many records as one");
	for (size_t i = 0; i < nw; i++)
		fuzz_check(whole[i].status == pieces[i].status &&
			whole[i].used == pieces[i].used &&
			whole[i].nfields == pieces[i].nfields &&
			whole[i].hash == pieces[i].hash,
		    "two reads give the same records as one");

	/* csv_reader: the same records, blank lines skipped. */
	/* fmemopen wants a size: an empty input is one byte read away. */
	fp = fmemopen(size ? (void *)data : (void *)"\n", size ? size : 1, "r");
	fuzz_check(fp != NULL, "fmemopen");
	if (size == 0)
		fgetc(fp);
	fuzz_check(csv_reader_init(&r, fp) == 0, "csv_reader_init");
	while ((st = csv_reader_next(&r, &rec, &line, &raw, &rawlen, err,
		    sizeof(err))) != CSV_END) {
		fuzz_check(st == CSV_RECORD || st == CSV_BAD, "reader status");
		/* Skip the blank records csv_reader drops. */
		while (k < nw && fuzz_blank(text, &whole[k]))
			k++;
		fuzz_check(k < nw, "reader finds no extra record");
		fuzz_check(st == whole[k].status, "reader agrees on status");
		if (st == CSV_RECORD)
			fuzz_check(rec.nfields == whole[k].nfields &&
				fuzz_hash(&rec) == whole[k].hash,
			    "reader agrees on fields");
		fuzz_check(raw == NULL || rawlen <= whole[k].used,
		    "raw text within the record");
		fuzz_check(line >= 1 && line <= size + 1, "line in range");
		k++;
	}
	while (k < nw && fuzz_blank(text, &whole[k]))
		k++;
	fuzz_check(k == nw, "reader finds every record");
	csv_reader_free(&r);
	fclose(fp);

	/* Each record through the shape check and back. */
	for (size_t i = 0; i < nw; i++)
		if (whole[i].status == CSV_RECORD)
			fuzz_round_trip(text + whole[i].start, whole[i].used);
	return 0;
}
