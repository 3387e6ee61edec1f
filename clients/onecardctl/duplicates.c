/*
 * duplicates.c: onecardctl duplicates scan|list|show|merge|dismiss, the
 * steward's worklist of duplicate candidate pairs (docs/matching.md).
 *
 * scan walks the registry a page at a time (one DuplicateScan request a
 * page) and shows its progress on stderr; the others are one request each.
 * Every pair is named by its number (PAIR) as list prints it.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

#define DUP_SCAN_PAGE 200

static void
dup_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: onecardctl duplicates scan\n"
	    "       onecardctl duplicates list [--limit N] [--all] [--after "
	    "PAIR]\n"
	    "       onecardctl duplicates show PAIR\n"
	    "       onecardctl duplicates merge PAIR [--keep-b]\n"
	    "       onecardctl duplicates dismiss PAIR\n"
	    "The worklist of patients that look like one person: scan finds "
	    "the pairs\nof the whole registry (enroll adds them too), list "
	    "shows them best first,\nshow puts the two records side by side, "
	    "merge folds b into a (--keep-b:\na into b) and dismiss never "
	    "proposes the pair again.\n");
}

/* Text without control characters (registry data on a terminal). */
static void
dup_text(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)(s ? s : "");
	     *p != '\0'; p++)
		putchar(*p < 0x20 || *p == 0x7f ? '?' : *p);
}

static const char *
dup_grade(int grade)
{
	switch (grade) {
	case ONECARD__V1__MATCH_GRADE__MATCH_CERTAIN:
		return "certain";
	case ONECARD__V1__MATCH_GRADE__MATCH_PROBABLE:
		return "probable";
	case ONECARD__V1__MATCH_GRADE__MATCH_POSSIBLE:
		return "possible";
	}
	return "none";
}

static const char *
dup_state(int state)
{
	switch (state) {
	case ONECARD__V1__DUPLICATE_STATE__DUPLICATE_OPEN:
		return "open";
	case ONECARD__V1__DUPLICATE_STATE__DUPLICATE_DISMISSED:
		return "dismissed";
	case ONECARD__V1__DUPLICATE_STATE__DUPLICATE_MERGED:
		return "merged";
	}
	return "unknown";
}

/* PAIR as a number; 0 after telling why. */
static uint64_t
dup_pair_arg(const char *what, const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v == 0 || s[0] == '-') {
		fprintf(stderr, "onecardctl duplicates %s: bad PAIR \"%s\"\n",
		    what, s);
		return 0;
	}
	return (uint64_t)v;
}

/* The pair's fields but a and b, for JSON. */
static void
dup_json_fields(const Onecard__V1__DuplicatePair *p)
{
	printf("\"pair_id\":%" PRIu64 ",\"score\":%.4f,\"grade\":\"%s\","
	       "\"state\":\"%s\",\"reason\":",
	    p->pair_id, p->score, dup_grade(p->grade), dup_state(p->state));
	ctl_json_str(stdout, p->reason);
	printf(",\"found_ms\":%" PRId64, p->found_ms);
}

/* How field (the reason's name for it) compared, from the reason. */
static void
dup_reason_of(const char *reason, const char *field, char *out, size_t len)
{
	size_t n = strlen(field);
	const char *p = reason ? reason : "";

	out[0] = '\0';
	while ((p = strstr(p, field)) != NULL) {
		if ((p == reason || p[-1] == ' ') && p[n] == '=') {
			size_t k = strcspn(p + n + 1, " ");

			if (k >= len)
				k = len - 1;
			memcpy(out, p + n + 1, k);
			out[k] = '\0';
			return;
		}
		p += n;
	}
}

/* One row of the side-by-side view. */
static void
dup_row(const char *label, const char *a, const char *b, const char *how)
{
	int wa = 0;

	printf("%-12s ", label);
	dup_text(a);
	/* pad by bytes; CJK text takes fewer columns than bytes */
	for (const char *p = a ? a : ""; *p; p++)
		if (((unsigned char)*p & 0xc0) != 0x80)
			wa += ((unsigned char)*p >= 0xe0) ? 2 : 1;
	printf("%*s ", wa < 28 ? 28 - wa : 0, "");
	dup_text(b);
	wa = 0;
	for (const char *p = b ? b : ""; *p; p++)
		if (((unsigned char)*p & 0xc0) != 0x80)
			wa += ((unsigned char)*p >= 0xe0) ? 2 : 1;
	if (how != NULL && how[0] != '\0')
		printf("%*s %s", wa < 28 ? 28 - wa : 0, "", how);
	putchar('\n');
}

/* Print one pair with both records, side by side (or one JSON object). */
static void
dup_print_pair(const Onecard__V1__DuplicatePair *p)
{
	static const Onecard__V1__Demographics none =
	    ONECARD__V1__DEMOGRAPHICS__INIT;
	const Onecard__V1__Demographics *da, *db;
	static const char *const fields[][2] = {{"name", "name"},
	    {"sex", "sex"}, {"birth_date", "birth"}, {"phone", "phone"},
	    {"address", "address"}};
	char how[32], ids[2][1024];
	char when[32];
	struct tm tm;
	time_t t;

	if (ctl_g.json) {
		putchar('{');
		dup_json_fields(p);
		printf(",\"a\":");
		cli_json_patient(stdout, p->a);
		printf(",\"b\":");
		cli_json_patient(stdout, p->b);
		printf("}\n");
		return;
	}
	da = p->a->demographics ? p->a->demographics : &none;
	db = p->b->demographics ? p->b->demographics : &none;
	t = (time_t)(p->found_ms / 1000);
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("pair %" PRIu64 "  %s  score %.4f  %s  found %s\n", p->pair_id,
	    dup_state(p->state), p->score, dup_grade(p->grade), when);
	printf("reason       ");
	dup_text(p->reason);
	printf("\n\n");
	dup_row("", "a", "b", "compares");
	dup_row("patient_id", p->a->patient_id, p->b->patient_id, NULL);
	if (p->a->merged_into[0] != '\0' || p->b->merged_into[0] != '\0')
		dup_row(
		    "merged_into", p->a->merged_into, p->b->merged_into, NULL);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const char *va, *vb;

		dup_reason_of(p->reason, fields[i][1], how, sizeof(how));
		switch (i) {
		case 0:
			va = da->name, vb = db->name;
			break;
		case 1:
			va = da->sex ? cli_sex_name(da->sex) : "";
			vb = db->sex ? cli_sex_name(db->sex) : "";
			break;
		case 2:
			va = da->birth_date, vb = db->birth_date;
			break;
		case 3:
			va = da->phone, vb = db->phone;
			break;
		default:
			va = da->address, vb = db->address;
			break;
		}
		dup_row(fields[i][0], va, vb, how);
	}
	for (int k = 0; k < 2; k++) {
		const Onecard__V1__Patient *pt = k ? p->b : p->a;
		size_t off = 0;

		ids[k][0] = '\0';
		for (size_t i = 0; i < pt->n_identifiers && off < 1000; i++)
			off += (size_t)snprintf(ids[k] + off,
			    sizeof(ids[k]) - off, "%s%s=%s", i ? " " : "",
			    pt->identifiers[i]->domain,
			    pt->identifiers[i]->value);
	}
	dup_row("identifiers", ids[0], ids[1], NULL);
}

/* duplicates scan: page after page, progress on stderr. */
static int
dup_scan(void)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__DuplicateScan s = ONECARD__V1__DUPLICATE_SCAN__INIT;
	Onecard__V1__Reply *r = NULL;
	struct onecard_conn *conn;
	char after[64] = "";
	uint64_t scanned = 0, found = 0, total = 0;
	int tty = isatty(STDERR_FILENO), rc;

	if ((rc = ctl_connect(&conn)) != CTL_EXIT_OK)
		return rc;
	req.op_case = ONECARD__V1__REQUEST__OP_DUPLICATE_SCAN;
	req.duplicate_scan = &s;
	s.limit = DUP_SCAN_PAGE;
	for (;;) {
		s.after_patient_id = after;
		if ((rc = onecard_call(conn, &req, &r)) != ONECARD_OK) {
			const char *e = onecard_last_error(conn) != NULL
			    ? onecard_last_error(conn)
			    : onecard_strerror(rc);

			fprintf(stderr, "onecardctl: duplicates scan: %s\n", e);
			if (ctl_g.json)
				cli_json_error(stdout, cli_err_token(rc), e);
			onecard_close(conn);
			return cli_exit_for_err(rc);
		}
		if (r->code != ONECARD__V1__CODE__OK ||
		    r->result_case !=
			ONECARD__V1__REPLY__RESULT_DUPLICATE_SCAN) {
			rc = r->code != ONECARD__V1__CODE__OK
			    ? ctl_refused(
				  "duplicates scan", r->code, r->message)
			    : CTL_EXIT_BROKER;
			if (rc == CTL_EXIT_BROKER)
				fprintf(stderr,
				    "onecardctl: duplicates scan: "
				    "an odd answer\n");
			onecard_reply_free(r);
			onecard_close(conn);
			return rc;
		}
		scanned += r->duplicate_scan->scanned;
		found += r->duplicate_scan->found;
		total = r->duplicate_scan->patients;
		snprintf(after, sizeof(after), "%s",
		    r->duplicate_scan->next_patient_id);
		onecard_reply_free(r);
		fprintf(stderr,
		    "%sduplicates scan: %" PRIu64 "/%" PRIu64
		    " patients, %" PRIu64 " new pairs%s",
		    tty ? "\r" : "", scanned, total, found, tty ? "" : "\n");
		if (after[0] == '\0')
			break;
	}
	if (tty)
		fputc('\n', stderr);
	onecard_close(conn);
	if (ctl_g.json)
		printf("{\"scanned\":%" PRIu64 ",\"found\":%" PRIu64
		       ",\"patients\":%" PRIu64 "}\n",
		    scanned, found, total);
	else
		printf("scanned %" PRIu64 " patients, %" PRIu64
		       " new pairs; 'onecardctl duplicates list' shows them\n",
		    scanned, found);
	return CTL_EXIT_OK;
}

/* duplicates list [--limit N] [--all] [--after PAIR] */
static int
dup_list(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"limit", required_argument, NULL, 'l'},
	    {"all", no_argument, NULL, 'a'},
	    {"after", required_argument, NULL, 'A'}, {NULL, 0, NULL, 0}};
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__DuplicateList l = ONECARD__V1__DUPLICATE_LIST__INIT;
	Onecard__V1__DuplicateListResult *lr;
	Onecard__V1__Reply *r;
	unsigned long v;
	char *end;
	int ch, rc;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'l':
			v = strtoul(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' ||
			    optarg[0] == '-' || v > 0xffffffffUL) {
				fprintf(stderr,
				    "onecardctl duplicates list: bad limit "
				    "\"%s\"\n",
				    optarg);
				return CTL_EXIT_USAGE;
			}
			l.limit = (uint32_t)v;
			break;
		case 'a':
			l.all = 1;
			break;
		case 'A':
			if ((l.after_pair_id = dup_pair_arg("list", optarg)) ==
			    0)
				return CTL_EXIT_USAGE;
			break;
		default:
			dup_usage(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		dup_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	req.op_case = ONECARD__V1__REQUEST__OP_DUPLICATE_LIST;
	req.duplicate_list = &l;
	if ((rc = ctl_call("duplicates list", &req, &r)) != CTL_EXIT_OK)
		return rc;
	if (r->result_case != ONECARD__V1__REPLY__RESULT_DUPLICATES) {
		fprintf(stderr, "onecardctl: duplicates list: an odd answer\n");
		onecard_reply_free(r);
		return CTL_EXIT_BROKER;
	}
	lr = r->duplicates;
	if (ctl_g.json) {
		printf("{\"open\":%" PRIu64 ",\"pairs\":[", lr->open);
		for (size_t i = 0; i < lr->n_pairs; i++) {
			printf(i ? ",{" : "{");
			dup_json_fields(lr->pairs[i]);
			printf(",\"a\":");
			ctl_json_str(stdout, lr->pairs[i]->a->patient_id);
			printf(",\"b\":");
			ctl_json_str(stdout, lr->pairs[i]->b->patient_id);
			putchar('}');
		}
		printf("]}\n");
	} else {
		printf("%-6s %-6s %-9s %-9s %-27s %-27s %s\n", "PAIR", "SCORE",
		    "GRADE", "STATE", "A", "B", "REASON");
		for (size_t i = 0; i < lr->n_pairs; i++) {
			const Onecard__V1__DuplicatePair *p = lr->pairs[i];

			printf("%-6" PRIu64 " %.4f %-9s %-9s %-27s %-27s ",
			    p->pair_id, p->score, dup_grade(p->grade),
			    dup_state(p->state), p->a->patient_id,
			    p->b->patient_id);
			dup_text(p->reason);
			putchar('\n');
		}
		printf("%" PRIu64 " open pair%s\n", lr->open,
		    lr->open == 1 ? "" : "s");
	}
	onecard_reply_free(r);
	return CTL_EXIT_OK;
}

/* duplicates show|dismiss|merge PAIR: one request, the pair printed. */
static int
dup_act(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"keep-b", no_argument, NULL, 'b'}, {NULL, 0, NULL, 0}};
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__DuplicateShow sh = ONECARD__V1__DUPLICATE_SHOW__INIT;
	Onecard__V1__DuplicateDismiss di = ONECARD__V1__DUPLICATE_DISMISS__INIT;
	Onecard__V1__DuplicateMerge me = ONECARD__V1__DUPLICATE_MERGE__INIT;
	const char *what = argv[0];
	char label[64];
	Onecard__V1__Reply *r;
	uint64_t id;
	int ch, rc, keep_b = 0;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (ch != 'b' || strcmp(what, "merge") != 0) {
			dup_usage(stderr);
			return CTL_EXIT_USAGE;
		}
		keep_b = 1;
	}
	if (optind != argc - 1) {
		dup_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if ((id = dup_pair_arg(what, argv[optind])) == 0)
		return CTL_EXIT_USAGE;
	if (strcmp(what, "show") == 0) {
		sh.pair_id = id;
		req.op_case = ONECARD__V1__REQUEST__OP_DUPLICATE_SHOW;
		req.duplicate_show = &sh;
	} else if (strcmp(what, "dismiss") == 0) {
		di.pair_id = id;
		req.op_case = ONECARD__V1__REQUEST__OP_DUPLICATE_DISMISS;
		req.duplicate_dismiss = &di;
	} else {
		me.pair_id = id;
		me.survivor_b = keep_b;
		req.op_case = ONECARD__V1__REQUEST__OP_DUPLICATE_MERGE;
		req.duplicate_merge = &me;
	}
	snprintf(label, sizeof(label), "duplicates %s", what);
	if ((rc = ctl_call(label, &req, &r)) != CTL_EXIT_OK)
		return rc;
	if (r->result_case != ONECARD__V1__REPLY__RESULT_DUPLICATES ||
	    r->duplicates->n_pairs != 1) {
		fprintf(stderr, "onecardctl: %s: an odd answer\n", label);
		onecard_reply_free(r);
		return CTL_EXIT_BROKER;
	}
	dup_print_pair(r->duplicates->pairs[0]);
	onecard_reply_free(r);
	return CTL_EXIT_OK;
}

int
ctl_duplicates(int argc, char **argv)
{
	if (argc < 2 || ctl_help_wanted(argc, argv)) {
		int help = ctl_help_wanted(argc, argv);

		dup_usage(help ? stdout : stderr);
		return help ? CTL_EXIT_OK : CTL_EXIT_USAGE;
	}
	if (strcmp(argv[1], "scan") == 0) {
		if (argc != 2) {
			dup_usage(stderr);
			return CTL_EXIT_USAGE;
		}
		return dup_scan();
	}
	if (strcmp(argv[1], "list") == 0)
		return dup_list(argc - 1, argv + 1);
	if (strcmp(argv[1], "show") == 0 || strcmp(argv[1], "merge") == 0 ||
	    strcmp(argv[1], "dismiss") == 0)
		return dup_act(argc - 1, argv + 1);
	fprintf(
	    stderr, "onecardctl duplicates: unknown command \"%s\"\n", argv[1]);
	dup_usage(stderr);
	return CTL_EXIT_USAGE;
}
