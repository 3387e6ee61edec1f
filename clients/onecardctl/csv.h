/*
 * csv.h: the patient CSV format of onecardctl import, export and gen.
 *
 * One header line "name,sex,birth_date,phone,address,identifiers", then one
 * patient a record; RFC 4180 quoting, UTF-8, LF or CRLF line ends. The
 * identifiers field is a ';'-separated list of DOMAIN=VALUE. docs/csv.md is
 * the reference. The parser works on a buffer and never does I/O, so a fuzzer
 * can call csv_parse_record directly; csv_reader adds a FILE and line numbers.
 */
#ifndef ONECARD_CSV_H
#define ONECARD_CSV_H

#include <stddef.h>
#include <stdio.h>

#define CSV_HEADER     "name,sex,birth_date,phone,address,identifiers"
#define CSV_NFIELDS    6
#define CSV_MAX_FIELDS 16
#define CSV_MAX_RECORD 65536 /* bytes of one record, quotes included */
#define CSV_MAX_IDS    16    /* identifiers in one row (the broker's default) */

/* One parsed record: unquoted fields, NUL-terminated, in buf. */
struct csv_record {
	char buf[CSV_MAX_RECORD + CSV_MAX_FIELDS];
	const char *field[CSV_MAX_FIELDS];
	size_t nfields;
};

/* Result of csv_parse_record. */
enum csv_status {
	CSV_RECORD = 0, /* a record was parsed */
	CSV_NEED_MORE,  /* no whole record yet: read more, or pass eof */
	CSV_END,        /* nothing left (eof and an empty buffer) */
	CSV_BAD,        /* a malformed record was skipped; err says why */
};

/*
 * Parse one record from buf[0..len). eof != 0 says no more bytes follow, so
 * a last line without a newline is whole. *consumed is how many bytes the
 * record (or the skipped bad record) took, line end included.
 */
enum csv_status csv_parse_record(const char *buf, size_t len, int eof,
    size_t *consumed, struct csv_record *rec, char *err, size_t errlen);

/* A patient row as its fields; strings point into the record or the caller's
 * buffers. */
struct csv_id {
	const char *domain;
	const char *value;
};
struct csv_row {
	const char *name;
	const char *sex; /* "M", "F" or "" */
	const char *birth_date;
	const char *phone;
	const char *address;
	size_t nids;
	struct csv_id ids[CSV_MAX_IDS];
	char idbuf[CSV_MAX_RECORD]; /* the identifiers field, split in place */
};

/* Check a record's shape and split it into row; -1 with a reason in err. */
int csv_row_parse(const struct csv_record *rec, struct csv_row *row, char *err,
    size_t errlen);

/* Write one field, quoted when it must be. */
void csv_write_field(FILE *fp, const char *s);

/* Write a row as one record (no quoting of identifiers' inner ';'). */
void csv_write_row(FILE *fp, const struct csv_row *row);

/* Reads records from a FILE with line numbers. */
struct csv_reader {
	FILE *fp;
	char *buf;
	size_t cap, start, end;
	int eof;
	int skip; /* the rest of an overlong bad line is still to come */
	unsigned long line;     /* the line the next record starts on */
	unsigned long long off; /* bytes consumed so far */
};

/* Set up r on fp; -1 when out of memory. */
int csv_reader_init(struct csv_reader *r, FILE *fp);
void csv_reader_free(struct csv_reader *r);

/*
 * Next record: CSV_RECORD, CSV_END or CSV_BAD (err says why). *line is the
 * line it started on; raw/rawlen (if given) point at its text, line end
 * stripped, valid until the next call. -1 on a read error.
 */
int csv_reader_next(struct csv_reader *r, struct csv_record *rec,
    unsigned long *line, const char **raw, size_t *rawlen, char *err,
    size_t errlen);

#endif
