/*
 * test_csv.c: the patient CSV parser and writer (clients/onecardctl/csv.c).
 *
 * RFC 4180 quoting (embedded commas, doubled quotes, line ends inside
 * quotes), records split across reads, bad records skipped without losing
 * their neighbours, line numbers, the row shape check and a write/read round
 * trip. csv.c is compiled into this test directly: it belongs to the
 * onecardctl program, not to a library.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../clients/onecardctl/csv.c"

static struct csv_record rec;
static struct csv_row row;
static char err[256];

/* Parse all of s as one whole input; the status of the first record. */
static enum csv_status
parse(const char *s, size_t *used)
{
	return csv_parse_record(s, strlen(s), 1, used, &rec, err, sizeof(err));
}

static void
plain_fields_split_on_commas(void **state)
{
	size_t used;

	assert_int_equal(parse("a,b,,d\nnext", &used), CSV_RECORD);
	assert_int_equal(used, 7);
	assert_int_equal(rec.nfields, 4);
	assert_string_equal(rec.field[0], "a");
	assert_string_equal(rec.field[1], "b");
	assert_string_equal(rec.field[2], "");
	assert_string_equal(rec.field[3], "d");
}

static void
quoted_fields_keep_commas_quotes_and_newlines(void **state)
{
	size_t used;
	const char *s =
	    "\"王, 伟\",\"say \"\"hi\"\"\",\"two\nlines\",\"\",,x\r\n";

	assert_int_equal(parse(s, &used), CSV_RECORD);
	assert_int_equal(used, strlen(s));
	assert_int_equal(rec.nfields, 6);
	assert_string_equal(rec.field[0], "王, 伟");
	assert_string_equal(rec.field[1], "say \"hi\"");
	assert_string_equal(rec.field[2], "two\nlines");
	assert_string_equal(rec.field[3], "");
}

static void
last_line_without_newline_is_a_record_at_eof(void **state)
{
	size_t used;

	assert_int_equal(
	    csv_parse_record("a,b", 3, 0, &used, &rec, err, sizeof(err)),
	    CSV_NEED_MORE);
	assert_int_equal(parse("a,b", &used), CSV_RECORD);
	assert_int_equal(used, 3);
	assert_int_equal(rec.nfields, 2);
	assert_int_equal(parse("", &used), CSV_END);
}

static void
record_split_inside_quotes_needs_more(void **state)
{
	size_t used;

	assert_int_equal(
	    csv_parse_record("\"a\nb", 4, 0, &used, &rec, err, sizeof(err)),
	    CSV_NEED_MORE);
	/* A quote at the end of the buffer may be the first of a pair. */
	assert_int_equal(
	    csv_parse_record("\"a\"", 3, 0, &used, &rec, err, sizeof(err)),
	    CSV_NEED_MORE);
}

static void
quote_inside_unquoted_field_is_bad_and_skips_its_line(void **state)
{
	size_t used;

	assert_int_equal(parse("ab\"c,d\nok,1\n", &used), CSV_BAD);
	assert_non_null(strstr(err, "quote inside an unquoted field"));
	assert_int_equal(used, 7);
}

static void
text_after_closing_quote_is_bad(void **state)
{
	size_t used;

	assert_int_equal(parse("\"a\"b,c\nx\n", &used), CSV_BAD);
	assert_non_null(strstr(err, "after the closing quote"));
	assert_int_equal(used, 7);
}

static void
unclosed_quote_at_eof_is_bad(void **state)
{
	size_t used;

	assert_int_equal(parse("a,\"never closed", &used), CSV_BAD);
	assert_non_null(strstr(err, "field 2: quoted field not closed"));
	assert_int_equal(used, strlen("a,\"never closed"));
	/* Across a line end the quote is a stray: only its line is bad. */
	assert_int_equal(parse("a,\"never closed\nmore", &used), CSV_BAD);
	assert_non_null(strstr(err, "field 2: unbalanced quote"));
	assert_int_equal(used, strlen("a,\"never closed\n"));
}

static FILE *file_of(const char *s);

/* The rows of a file: each record's status and line, in order. */
static int
read_all(const char *text, int *status, unsigned long *lines, int max)
{
	FILE *fp = file_of(text);
	struct csv_reader r;
	int n = 0, st;

	assert_int_equal(csv_reader_init(&r, fp), 0);
	while ((st = csv_reader_next(&r, &rec, &lines[n], NULL, NULL, err,
		    sizeof(err))) != CSV_END) {
		assert_true(n < max);
		status[n++] = st;
	}
	csv_reader_free(&r);
	fclose(fp);
	return n;
}

static void
stray_quote_spoils_only_its_own_line(void **state)
{
	static int status[1100];
	static unsigned long lines[1100];
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	int i, n;

	/* A quote opens field 2 of line 3 and is never closed; a thousand
	 * good rows follow, some with quoted fields of their own. */
	fputs("name,sex,birth_date,phone,address,identifiers\n"
	      "a,,,,,cn-ssc=A1\n"
	      "b,\"F,,,,cn-ssc=A2\n",
	    mem);
	for (i = 0; i < 1000; i++)
		fprintf(mem, "%s,,,,\"x, %d\",cn-ssc=B%d\n",
		    i % 7 == 0 ? "\"c\"" : "c", i, i);
	fclose(mem);
	n = read_all(text, status, lines, 1100);
	assert_int_equal(n, 1003);
	assert_int_equal(status[0], CSV_RECORD);
	assert_int_equal(status[1], CSV_RECORD);
	assert_int_equal(status[2], CSV_BAD);
	assert_int_equal(lines[2], 3);
	for (i = 3; i < n; i++) {
		assert_int_equal(status[i], CSV_RECORD);
		assert_int_equal(lines[i], (unsigned long)i + 1);
	}
	free(text);
}

static void
stray_quote_reason_names_the_field(void **state)
{
	size_t used;

	/* Closed by the next line's quoted field: text follows the quote. */
	assert_int_equal(
	    parse("a,\"b,c,d,e,f\n\"g\",h,i,j,k,l\n", &used), CSV_BAD);
	assert_string_equal(err,
	    "field 2: unbalanced quote: the quoted field it opens is not "
	    "closed on this line");
	assert_int_equal(used, strlen("a,\"b,c,d,e,f\n"));
	/* Closed cleanly, but the record is not a whole row. */
	assert_int_equal(parse("a,\"b\nc\",d\n", &used), CSV_BAD);
	assert_non_null(strstr(err, "field 2: unbalanced quote"));
	assert_int_equal(used, strlen("a,\"b\n"));
	/* Past the record limit, still only the first line. */
	{
		size_t n = 2 * CSV_MAX_RECORD;
		char *big = malloc(n + 1);

		assert_non_null(big);
		memset(big, 'z', n);
		memcpy(big, "\"q\n", 3);
		big[n] = '\0';
		assert_int_equal(parse(big, &used), CSV_BAD);
		assert_non_null(strstr(err, "field 1: unbalanced quote"));
		assert_int_equal(used, 3);
		free(big);
	}
}

static void
too_many_fields_is_bad(void **state)
{
	char line[128] = "";
	size_t used;
	int i;

	for (i = 0; i < CSV_MAX_FIELDS + 2; i++)
		strcat(line, "x,");
	strcat(line, "\n");
	assert_int_equal(parse(line, &used), CSV_BAD);
	assert_non_null(strstr(err, "more than"));
}

/* A FILE holding s. */
static FILE *
file_of(const char *s)
{
	FILE *fp = tmpfile();

	assert_non_null(fp);
	fputs(s, fp);
	rewind(fp);
	return fp;
}

static void
reader_counts_lines_across_quoted_newlines_and_bad_rows(void **state)
{
	FILE *fp = file_of("h1,h2\n"
			   "\"multi\nline\",x,,,,\n"
			   "\n"
			   "bad\"row,y\n"
			   "last,z");
	struct csv_reader r;
	unsigned long line;
	const char *raw;
	size_t rawlen;

	assert_int_equal(csv_reader_init(&r, fp), 0);
	assert_int_equal(
	    csv_reader_next(&r, &rec, &line, &raw, &rawlen, err, sizeof(err)),
	    CSV_RECORD);
	assert_int_equal(line, 1);
	assert_int_equal(
	    csv_reader_next(&r, &rec, &line, &raw, &rawlen, err, sizeof(err)),
	    CSV_RECORD);
	assert_int_equal(line, 2);
	assert_string_equal(rec.field[0], "multi\nline");
	/* The blank line 4 is skipped; the bad row is on line 5. */
	assert_int_equal(
	    csv_reader_next(&r, &rec, &line, &raw, &rawlen, err, sizeof(err)),
	    CSV_BAD);
	assert_int_equal(line, 5);
	assert_int_equal(rawlen, strlen("bad\"row,y"));
	assert_memory_equal(raw, "bad\"row,y", rawlen);
	assert_int_equal(
	    csv_reader_next(&r, &rec, &line, &raw, &rawlen, err, sizeof(err)),
	    CSV_RECORD);
	assert_int_equal(line, 6);
	assert_string_equal(rec.field[1], "z");
	assert_int_equal(
	    csv_reader_next(&r, &rec, &line, &raw, &rawlen, err, sizeof(err)),
	    CSV_END);
	csv_reader_free(&r);
	fclose(fp);
}

static void
reader_handles_records_larger_than_one_read(void **state)
{
	size_t n = 3 * CSV_MAX_RECORD / 4;
	char *big = malloc(n + 64);
	struct csv_reader r;
	unsigned long line;
	FILE *fp = tmpfile();
	int k;

	assert_non_null(big);
	memset(big, 'a', n);
	big[n] = '\0';
	/* Twelve long rows cross the reader's buffer boundary many times. */
	for (k = 0; k < 12; k++)
		fprintf(fp, "\"%s\",%d\n", big, k);
	rewind(fp);
	assert_int_equal(csv_reader_init(&r, fp), 0);
	for (k = 0; k < 12; k++) {
		assert_int_equal(csv_reader_next(&r, &rec, &line, NULL, NULL,
				     err, sizeof(err)),
		    CSV_RECORD);
		assert_int_equal(line, (unsigned long)k + 1);
		assert_int_equal(strlen(rec.field[0]), n);
		assert_int_equal(atoi(rec.field[1]), k);
	}
	assert_int_equal(
	    csv_reader_next(&r, &rec, &line, NULL, NULL, err, sizeof(err)),
	    CSV_END);
	csv_reader_free(&r);
	fclose(fp);
	free(big);
}

static void
overlong_line_is_one_bad_row_and_the_next_line_still_reads(void **state)
{
	size_t n = 5 * CSV_MAX_RECORD; /* longer than the reader's buffer */
	char *big = malloc(n + 1);
	struct csv_reader r;
	unsigned long line;
	FILE *fp = tmpfile();

	assert_non_null(big);
	memset(big, 'a', n);
	big[n] = '\0';
	fprintf(fp, "h\n%s\nok,1\n", big);
	rewind(fp);
	assert_int_equal(csv_reader_init(&r, fp), 0);
	assert_int_equal(
	    csv_reader_next(&r, &rec, &line, NULL, NULL, err, sizeof(err)),
	    CSV_RECORD);
	assert_int_equal(
	    csv_reader_next(&r, &rec, &line, NULL, NULL, err, sizeof(err)),
	    CSV_BAD);
	assert_int_equal(line, 2);
	assert_non_null(strstr(err, "longer than"));
	assert_int_equal(
	    csv_reader_next(&r, &rec, &line, NULL, NULL, err, sizeof(err)),
	    CSV_RECORD);
	assert_int_equal(line, 3);
	assert_string_equal(rec.field[0], "ok");
	assert_int_equal(
	    csv_reader_next(&r, &rec, &line, NULL, NULL, err, sizeof(err)),
	    CSV_END);
	csv_reader_free(&r);
	fclose(fp);
	free(big);
}

/* Parse one line as a record and then as a row. */
static int
row_of(const char *line)
{
	size_t used;

	assert_int_equal(parse(line, &used), CSV_RECORD);
	return csv_row_parse(&rec, &row, err, sizeof(err));
}

static void
good_row_splits_into_fields_and_identifiers(void **state)
{
	assert_int_equal(row_of("王伟,M,1990-01-02,138 0000,\"河南省, 许昌\","
				"cn-id=11010519491231002X;cn-ssc=HA1;"
				"hosp:H001=MZ-1\n"),
	    0);
	assert_string_equal(row.name, "王伟");
	assert_string_equal(row.sex, "M");
	assert_string_equal(row.address, "河南省, 许昌");
	assert_int_equal(row.nids, 3);
	assert_string_equal(row.ids[0].domain, "cn-id");
	assert_string_equal(row.ids[0].value, "11010519491231002X");
	assert_string_equal(row.ids[2].domain, "hosp:H001");
	assert_string_equal(row.ids[2].value, "MZ-1");
}

static void
bad_rows_are_refused_with_the_field_named(void **state)
{
	static const struct {
		const char *line;
		const char *why;
	} cases[] = {
	    {"a,M,,,\n", "expected 6 fields"},
	    {"a,X,,,,cn-ssc=A1\n", "sex"},
	    {"a,,1990-1-2,,,cn-ssc=A1\n", "birth_date"},
	    {"a,,,call me,,cn-ssc=A1\n", "phone"},
	    {"a,,,,,\n", "identifiers: none"},
	    {"a,,,,,cn-ssc\n", "not DOMAIN=VALUE"},
	    {"a,,,,,cn-ssc=\n", "empty value"},
	    {"a,,,,,=x\n", "empty domain"},
	    {"a,,,,,pid=P1\n", "unknown domain"},
	    {"a,,,,,hosp:=x\n", "unknown domain"},
	    {"\xff\xfe,,,,,cn-ssc=A1\n", "name: not valid UTF-8"},
	    {"\xed\xa0\x80,,,,,cn-ssc=A1\n", "not valid UTF-8"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(row_of(cases[i].line), -1);
		if (strstr(err, cases[i].why) == NULL)
			fail_msg("\"%s\": got \"%s\", want \"%s\"",
			    cases[i].line, err, cases[i].why);
	}
}

static void
too_many_identifiers_is_refused(void **state)
{
	char line[1024] = "a,,,,,";
	int i;

	for (i = 0; i <= CSV_MAX_IDS; i++)
		sprintf(line + strlen(line), "cn-ssc=A%d;", i);
	strcat(line, "\n");
	assert_int_equal(row_of(line), -1);
	assert_non_null(strstr(err, "more than"));
}

static void
written_row_reads_back_the_same(void **state)
{
	struct csv_row out = {.name = "O'Brien, \"Jr\"",
	    .sex = "F",
	    .birth_date = "1930-02-28",
	    .phone = "+86 (374) 123",
	    .address = "line one\nline two",
	    .nids = 2,
	    .ids = {{"cn-ssc", "HA1"}, {"hosp:H002", "MZ,7"}}};
	struct csv_reader r;
	unsigned long line;
	FILE *fp = tmpfile();

	csv_write_row(fp, &out);
	rewind(fp);
	assert_int_equal(csv_reader_init(&r, fp), 0);
	assert_int_equal(
	    csv_reader_next(&r, &rec, &line, NULL, NULL, err, sizeof(err)),
	    CSV_RECORD);
	assert_int_equal(csv_row_parse(&rec, &row, err, sizeof(err)), 0);
	assert_string_equal(row.name, out.name);
	assert_string_equal(row.address, out.address);
	assert_string_equal(row.phone, out.phone);
	assert_int_equal(row.nids, 2);
	assert_string_equal(row.ids[1].value, "MZ,7");
	csv_reader_free(&r);
	fclose(fp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(plain_fields_split_on_commas),
	    cmocka_unit_test(quoted_fields_keep_commas_quotes_and_newlines),
	    cmocka_unit_test(last_line_without_newline_is_a_record_at_eof),
	    cmocka_unit_test(record_split_inside_quotes_needs_more),
	    cmocka_unit_test(
		quote_inside_unquoted_field_is_bad_and_skips_its_line),
	    cmocka_unit_test(text_after_closing_quote_is_bad),
	    cmocka_unit_test(unclosed_quote_at_eof_is_bad),
	    cmocka_unit_test(stray_quote_spoils_only_its_own_line),
	    cmocka_unit_test(stray_quote_reason_names_the_field),
	    cmocka_unit_test(too_many_fields_is_bad),
	    cmocka_unit_test(
		reader_counts_lines_across_quoted_newlines_and_bad_rows),
	    cmocka_unit_test(reader_handles_records_larger_than_one_read),
	    cmocka_unit_test(
		overlong_line_is_one_bad_row_and_the_next_line_still_reads),
	    cmocka_unit_test(good_row_splits_into_fields_and_identifiers),
	    cmocka_unit_test(bad_rows_are_refused_with_the_field_named),
	    cmocka_unit_test(too_many_identifiers_is_refused),
	    cmocka_unit_test(written_row_reads_back_the_same),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
