/*
 * audit_report.c: the access reports, `onecardctl audit patient` (who looked
 * at or changed one patient's record, when and how) and `onecardctl audit
 * hospital` (what one hospital did, summed up). Both read the trail through
 * trail_walk (audit.c), so the chain is verified by the same code as `audit
 * verify` on the way: a broken trail gives no report unless --allow-broken
 * is given, and then the report says so. Owns deciding which lines belong
 * to a patient (its own id, and the ids the trail's merge lines folded into
 * it) and the shape of both reports; never writes to a trail and never
 * prints a full cn-id.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit.h"
#include "audit_line.h"
#include "cli_common.h"

#define TOP_PATIENTS 5 /* most requested patients a hospital report names */

/* A string → count map (open addressing), with insertion order kept. */
struct smap {
	char **key;
	uint64_t *val;
	size_t *order; /* slots in insertion order */
	size_t cap, n;
};

/* FNV-1a of s. */
static uint64_t
smap_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* The slot of key, adding it (count 0) when absent; NULL out of memory. */
static uint64_t *
smap_get(struct smap *m, const char *key)
{
	size_t i;

	if (m->n * 2 >= m->cap) {
		struct smap b = {0};
		b.cap = m->cap ? m->cap * 2 : 64;
		b.key = calloc(b.cap, sizeof(*b.key));
		b.val = calloc(b.cap, sizeof(*b.val));
		b.order = calloc(b.cap, sizeof(*b.order));
		if (b.key == NULL || b.val == NULL || b.order == NULL) {
			free(b.key);
			free(b.val);
			free(b.order);
			return NULL;
		}
		for (size_t k = 0; k < m->n; k++) {
			size_t old = m->order[k];
			i = smap_hash(m->key[old]) & (b.cap - 1);
			while (b.key[i] != NULL)
				i = (i + 1) & (b.cap - 1);
			b.key[i] = m->key[old];
			b.val[i] = m->val[old];
			b.order[b.n++] = i;
		}
		free(m->key);
		free(m->val);
		free(m->order);
		*m = b;
	}
	i = smap_hash(key) & (m->cap - 1);
	while (m->key[i] != NULL) {
		if (strcmp(m->key[i], key) == 0)
			return &m->val[i];
		i = (i + 1) & (m->cap - 1);
	}
	if ((m->key[i] = strdup(key)) == NULL)
		return NULL;
	m->val[i] = 0;
	m->order[m->n++] = i;
	return &m->val[i];
}

/* Is key in the map? Its count, or NULL. */
static const uint64_t *
smap_find(const struct smap *m, const char *key)
{
	size_t i;

	if (m->cap == 0)
		return NULL;
	i = smap_hash(key) & (m->cap - 1);
	while (m->key[i] != NULL) {
		if (strcmp(m->key[i], key) == 0)
			return &m->val[i];
		i = (i + 1) & (m->cap - 1);
	}
	return NULL;
}

/* The k-th key in insertion order, and its count. */
#define SMAP_KEY(m, k) ((m)->key[(m)->order[k]])
#define SMAP_VAL(m, k) ((m)->val[(m)->order[k]])

static void
smap_free(struct smap *m)
{
	for (size_t k = 0; k < m->n; k++)
		free(SMAP_KEY(m, k));
	free(m->key);
	free(m->val);
	free(m->order);
	memset(m, 0, sizeof(*m));
}

/* Add n to key's count. 0 or -1 (out of memory). */
static int
smap_add(struct smap *m, const char *key, uint64_t n)
{
	uint64_t *v = smap_get(m, key);

	if (v == NULL)
		return -1;
	*v += n;
	return 0;
}

/* Does text (len bytes) hold s? A cheap test before parsing a line. */
static int
has(const char *text, size_t len, const char *s)
{
	size_t sl = strlen(s);
	const char *p = text, *end = text + len;

	while (sl > 0 && (size_t)(end - p) >= sl &&
	    (p = memchr(p, s[0], (size_t)(end - p) - sl + 1)) != NULL) {
		if (memcmp(p, s, sl) == 0)
			return 1;
		p++;
	}
	return sl == 0;
}

/* Options both reports take. */
struct report_opts {
	char since[32], until[32]; /* the trail's time form, or "" */
	const char *head;          /* --head HASH */
	int allow_broken;
	int follow_merges;
	const char *subject;     /* the patient id or hospital code */
	char pid[AUDIT_REC_PID]; /* the patient id, upper-cased */
	char **files;
	int nfiles;
};

/* Print the reports' usage to fp. */
static void
report_help(FILE *fp)
{
	fprintf(fp,
	    "usage: onecardctl audit patient ID [--since TIME] [--until TIME] "
	    "[--no-merges]\n"
	    "                  [--head HASH] [--allow-broken] [--json] "
	    "FILE...\n"
	    "       onecardctl audit hospital CODE [--since TIME] [--until "
	    "TIME]\n"
	    "                  [--head HASH] [--allow-broken] [--json] "
	    "FILE...\n"
	    "Both verify the trail's chain first: 1 and no report when it is "
	    "broken\n(--allow-broken: the report anyway, with a warning; still "
	    "1).\n");
}

/*
 * Read the reports' options and operands: subject first, then files;
 * options anywhere. 0, 1 (--help printed) or 2 (usage, said on stderr).
 */
static int
report_args(int argc, char **argv, int patient, struct report_opts *o)
{
	int i, nops = 0, dashdash = 0;

	memset(o, 0, sizeof(*o));
	o->follow_merges = 1;
	if ((o->files = calloc((size_t)argc + 1, sizeof(char *))) == NULL)
		return 2;
	for (i = 0; i < argc; i++) {
		const char *a = argv[i];
		char *slot = NULL;

		if (dashdash || a[0] != '-' || a[1] == '\0') {
			if (nops++ == 0)
				o->subject = a;
			else
				o->files[o->nfiles++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0)
			dashdash = 1;
		else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			report_help(stdout);
			return 1;
		} else if (strcmp(a, "--allow-broken") == 0)
			o->allow_broken = 1;
		else if (patient && strcmp(a, "--no-merges") == 0)
			o->follow_merges = 0;
		else if (strcmp(a, "--since") == 0)
			slot = o->since;
		else if (strcmp(a, "--until") == 0)
			slot = o->until;
		else if (strcmp(a, "--head") == 0) {
			if (i + 1 >= argc || strlen(argv[i + 1]) != 64) {
				fprintf(stderr,
				    "onecardctl: --head needs the "
				    "64-hex-digit hash the broker "
				    "logged\n");
				return 2;
			}
			o->head = argv[++i];
		} else {
			fprintf(stderr,
			    "onecardctl: audit %s: unknown option %s\n",
			    patient ? "patient" : "hospital", a);
			report_help(stderr);
			return 2;
		}
		if (slot != NULL) {
			if (i + 1 >= argc ||
			    trail_since_parse(argv[i + 1], slot, 32) == -1) {
				fprintf(stderr,
				    "onecardctl: %s %s: not an RFC 3339 time "
				    "(2026-11-26T14:30:00Z or 2026-11-26)\n",
				    a, i + 1 < argc ? argv[i + 1] : "");
				return 2;
			}
			i++;
		}
	}
	if (o->subject == NULL || o->subject[0] == '\0' || o->nfiles == 0) {
		fprintf(stderr,
		    "onecardctl: audit %s: give the %s and the "
		    "trail's files, oldest first\n",
		    patient ? "patient" : "hospital",
		    patient ? "patient id" : "hospital code");
		report_help(stderr);
		return 2;
	}
	/* A patient given as an identifier "pid=P..." means its id; the
	 * registry's ids are upper case (it upper-cases a pid it is given). */
	if (patient) {
		size_t k;

		if (strncasecmp(o->subject, "pid=", 4) == 0)
			o->subject += 4;
		for (k = 0; o->subject[k] != '\0' && k + 1 < sizeof(o->pid);
		     k++)
			o->pid[k] = (char)toupper((unsigned char)o->subject[k]);
		o->pid[k] = '\0';
		o->subject = o->pid;
	}
	return 0;
}

/* Is the line inside --since/--until? */
static int
report_in_time(const struct report_opts *o, const struct audit_rec *r)
{
	if (o->since[0] != '\0' && strcmp(r->time, o->since) < 0)
		return 0;
	if (o->until[0] != '\0' && strcmp(r->time, o->until) >= 0)
		return 0;
	return 1;
}

/* The chain's verdicts and what the walk read. */
struct report_trail {
	struct trail_walk w;
	char *verdicts;
	size_t verdicts_len;
	int rc;
};

/*
 * Walk the trail with fn. A broken chain stops the report (1, said on
 * stderr and, with --json, as {"error":"TRAIL_BROKEN",...}) unless
 * --allow-broken, when it warns and goes on. 0 to report, else the exit
 * status.
 */
static int
report_walk(const struct report_opts *o, struct report_trail *t,
    int (*fn)(void *, const char *, unsigned long, const char *, size_t),
    void *arg)
{
	FILE *v;

	memset(t, 0, sizeof(*t));
	if ((v = open_memstream(&t->verdicts, &t->verdicts_len)) == NULL) {
		fprintf(stderr, "onecardctl: out of memory\n");
		return CLI_EXIT_USAGE;
	}
	t->w.head_want = o->head;
	t->w.keep_going = o->allow_broken;
	t->w.verdicts = v;
	t->w.line = fn;
	t->w.arg = arg;
	t->rc = trail_walk(o->nfiles, o->files, &t->w);
	fclose(v);
	if (t->rc == 2) {
		if (audit_json)
			cli_json_error(stdout, "CLIENT_INVALID",
			    t->w.error[0] ? t->w.error
					  : "cannot read the trail");
		return CLI_EXIT_USAGE;
	}
	if (t->rc == 0)
		return 0;
	/* The first verdict, without its newline. */
	char *nl = strchr(t->verdicts, '\n');
	if (nl != NULL)
		*nl = '\0';
	if (!o->allow_broken) {
		fprintf(stderr,
		    "onecardctl: the audit trail is broken, so there is no "
		    "report: %s\n(onecardctl audit verify says more; "
		    "--allow-broken reports anyway)\n",
		    t->verdicts);
		if (audit_json)
			cli_json_error(stdout, "TRAIL_BROKEN", t->verdicts);
		return CLI_EXIT_NO;
	}
	fprintf(stderr,
	    "onecardctl: warning: the audit trail is broken (%d fault(s); "
	    "the first: %s): lines may have been changed, removed or moved, "
	    "and this report cannot show what they said\n",
	    t->w.broken, t->verdicts);
	return 0;
}

/* Print the trail's state as the report's header line. */
static void
report_trail_text(const struct report_opts *o, const struct report_trail *t)
{
	if (t->rc == 0) {
		fputs("trail:    ", stdout);
		trail_summary(stdout, &t->w, o->nfiles);
	} else
		printf("trail:    BROKEN (%d fault(s); the first: %s); read "
		       "anyway: %zu lines (seq %llu..%llu)\n",
		    t->w.broken, t->verdicts, t->w.lines,
		    (unsigned long long)t->w.first_seq,
		    (unsigned long long)t->w.last_seq);
}

/* The trail's state as JSON: "trail":{...}. */
static void
report_trail_json(const struct report_opts *o, const struct report_trail *t)
{
	printf("\"trail\":{\"ok\":%s,\"lines\":%zu,\"first_seq\":%llu,"
	       "\"last_seq\":%llu,\"files\":%d,\"head\":",
	    t->rc == 0 ? "true" : "false", t->w.lines,
	    (unsigned long long)t->w.first_seq,
	    (unsigned long long)t->w.last_seq, o->nfiles);
	cli_json_string(stdout, t->w.head);
	printf(",\"faults\":%d,\"first_fault\":", t->w.broken);
	if (t->rc == 0)
		fputs("null", stdout);
	else
		cli_json_string(stdout, t->verdicts);
	putchar('}');
}

/* A time bound as JSON: the string, or null. */
static void
json_time_or_null(const char *s)
{
	if (s[0] == '\0')
		fputs("null", stdout);
	else
		cli_json_string(stdout, s);
}

/* ---- audit patient ---- */

/* One line of the patient's report. */
struct access {
	uint64_t seq;
	char time[32], actor[AUDIT_REC_FIELD], role[16], op[64],
	    target[AUDIT_REC_FIELD], patient_id[AUDIT_REC_PID],
	    other_patient_id[AUDIT_REC_PID], code[32], detail[AUDIT_REC_DETAIL];
};

struct patient_report {
	const struct report_opts *o;
	/* pass 1: merged-away id → survivor, as the trail's merge and
	 * unmerge lines leave it (an unmerge takes its pair out). */
	struct smap merged; /* key "DUP\tSURVIVOR", val: seq of the merge */
	/* the ids that are this patient: the subject and what merged in */
	struct smap ids;
	struct access *acc;
	size_t nacc, capacc;
	/* lines that disclose patients the trail does not name (a search by
	 * demographics, an export): actor\top → count */
	struct smap bulk;
	int oom;
};

/* Does op fold one record into another? */
static int
op_is_merge(const char *op)
{
	return strcmp(op, "merge") == 0 || strcmp(op, "duplicate_merge") == 0 ||
	    strcmp(op, "fhir:merge") == 0;
}

/* Does op disclose records without naming them in the trail? */
static int
op_is_bulk(const char *op)
{
	return strcmp(op, "search") == 0 || strcmp(op, "export") == 0 ||
	    strcmp(op, "fhir:search") == 0 || strcmp(op, "fhir:match") == 0;
}

/* Pass 1: note every merge and unmerge the trail records. */
static int
patient_pass_merges(void *arg, const char *file, unsigned long lineno,
    const char *text, size_t len)
{
	struct patient_report *pr = arg;
	struct audit_rec r;
	char key[2 * AUDIT_REC_PID + 2];

	(void)file;
	(void)lineno;
	if (!has(text, len, "\"other_patient_id\":") ||
	    audit_rec_parse(text, len, &r) == -1 || strcmp(r.code, "OK") != 0 ||
	    r.other_patient_id[0] == '\0' || r.patient_id[0] == '\0')
		return 0;
	if (op_is_merge(r.op)) {
		/* patient_id survives, other_patient_id was merged away */
		snprintf(key, sizeof(key), "%s\t%s", r.other_patient_id,
		    r.patient_id);
		uint64_t *v = smap_get(&pr->merged, key);
		if (v == NULL)
			return -1;
		*v = r.seq;
	} else if (strcmp(r.op, "unmerge") == 0) {
		/* patient_id is restored from other_patient_id (the live
		 * survivor), or from the one it first merged into: take out
		 * every pair that has it merged away. */
		size_t n = strlen(r.patient_id);
		for (size_t k = 0; k < pr->merged.n; k++) {
			const char *mk = SMAP_KEY(&pr->merged, k);
			if (strncmp(mk, r.patient_id, n) == 0 && mk[n] == '\t')
				SMAP_VAL(&pr->merged, k) = 0;
		}
	}
	return 0;
}

/* The ids that are the subject: itself and, transitively, what the merge
 * pairs still standing folded into it. */
static int
patient_ids(struct patient_report *pr)
{
	int grew = 1;

	if (smap_add(&pr->ids, pr->o->subject, 1) == -1)
		return -1;
	if (!pr->o->follow_merges)
		return 0;
	while (grew) {
		grew = 0;
		for (size_t k = 0; k < pr->merged.n; k++) {
			char dup[AUDIT_REC_PID + 1];
			const char *mk = SMAP_KEY(&pr->merged, k), *tab;

			if (SMAP_VAL(&pr->merged, k) == 0 ||
			    (tab = strchr(mk, '\t')) == NULL)
				continue;
			snprintf(dup, sizeof(dup), "%.*s", (int)(tab - mk), mk);
			if (smap_find(&pr->ids, tab + 1) == NULL ||
			    smap_find(&pr->ids, dup) != NULL)
				continue;
			if (smap_add(&pr->ids, dup, SMAP_VAL(&pr->merged, k)) ==
			    -1)
				return -1;
			grew = 1;
		}
	}
	return 0;
}

/* Is id one of the subject's ids? */
static int
patient_is_ours(struct patient_report *pr, const char *id)
{
	return id[0] != '\0' && smap_find(&pr->ids, id) != NULL;
}

/* Pass 2: keep the lines that touched the subject. */
static int
patient_pass_lines(void *arg, const char *file, unsigned long lineno,
    const char *text, size_t len)
{
	struct patient_report *pr = arg;
	struct audit_rec r;
	struct access *a;
	int named = 0;

	(void)file;
	(void)lineno;
	/* Most lines name neither this patient nor no one: skip them before
	 * parsing. */
	for (size_t k = 0; k < pr->ids.n && !named; k++)
		named = has(text, len, SMAP_KEY(&pr->ids, k));
	if (!named && !has(text, len, "\"patient_id\":\"\""))
		return 0;
	if (audit_rec_parse(text, len, &r) == -1 || !report_in_time(pr->o, &r))
		return 0;
	if (!patient_is_ours(pr, r.patient_id) &&
	    !patient_is_ours(pr, r.other_patient_id)) {
		if (r.patient_id[0] == '\0' && strcmp(r.code, "OK") == 0 &&
		    op_is_bulk(r.op)) {
			char key[AUDIT_REC_FIELD + 80];
			snprintf(key, sizeof(key), "%s\t%s", r.actor, r.op);
			if (smap_add(&pr->bulk, key, 1) == -1)
				return -1;
		}
		return 0;
	}
	if (pr->nacc == pr->capacc) {
		size_t cap = pr->capacc ? pr->capacc * 2 : 64;
		struct access *n = realloc(pr->acc, cap * sizeof(*n));
		if (n == NULL)
			return -1;
		pr->acc = n;
		pr->capacc = cap;
	}
	a = &pr->acc[pr->nacc++];
	a->seq = r.seq;
#define KEEP(f) memcpy(a->f, r.f, sizeof(a->f))
	KEEP(time);
	KEEP(actor);
	KEEP(role);
	KEEP(op);
	KEEP(target);
	KEEP(patient_id);
	KEEP(other_patient_id);
	KEEP(code);
	KEEP(detail);
#undef KEEP
	audit_mask(a->target);
	audit_mask(a->detail);
	audit_mask(a->actor);
	return 0;
}

/* The survivor the subject itself was merged into (still standing), or
 * NULL. */
static const char *
patient_merged_into(struct patient_report *pr, char *buf, size_t len)
{
	size_t n = strlen(pr->o->subject);

	for (size_t k = 0; k < pr->merged.n; k++) {
		const char *mk = SMAP_KEY(&pr->merged, k);
		if (SMAP_VAL(&pr->merged, k) != 0 &&
		    strncmp(mk, pr->o->subject, n) == 0 && mk[n] == '\t') {
			snprintf(buf, len, "%s", mk + n + 1);
			return buf;
		}
	}
	return NULL;
}

/* Per actor: how many lines, and per op. Fills actors (actor → lines) and
 * ops ("actor\top" → lines). */
static int
patient_by_actor(
    struct patient_report *pr, struct smap *actors, struct smap *ops)
{
	for (size_t i = 0; i < pr->nacc; i++) {
		char key[AUDIT_REC_FIELD + 80];
		snprintf(key, sizeof(key), "%s\t%s", pr->acc[i].actor,
		    pr->acc[i].op);
		if (smap_add(actors, pr->acc[i].actor, 1) == -1 ||
		    smap_add(ops, key, 1) == -1)
			return -1;
	}
	return 0;
}

/* The ops of actor, "enroll 1, lookup 3", into buf. */
static void
patient_actor_ops(
    const struct smap *ops, const char *actor, char *buf, size_t len)
{
	size_t al = strlen(actor), o = 0;

	buf[0] = '\0';
	for (size_t k = 0; k < ops->n && o < len; k++) {
		const char *key = SMAP_KEY(ops, k);
		if (strncmp(key, actor, al) != 0 || key[al] != '\t')
			continue;
		o += (size_t)snprintf(buf + o, len - o, "%s%s %llu",
		    o ? ", " : "", key + al + 1,
		    (unsigned long long)SMAP_VAL(ops, k));
	}
}

/* The human form of the patient report. */
static void
patient_print_text(struct patient_report *pr, const struct report_trail *t,
    const struct smap *actors, const struct smap *ops, const char *into)
{
	const struct report_opts *o = pr->o;
	int wt = 4, wa = 5, wo = 2, wc = 6, wr = 6, wg = 6;

	printf("patient:  %s\n", o->subject);
	if (pr->ids.n > 1) {
		fputs("records:  ", stdout);
		for (size_t k = 0; k < pr->ids.n; k++)
			printf("%s%s%s", k ? ", " : "", SMAP_KEY(&pr->ids, k),
			    k ? " (merged in)" : "");
		putchar('\n');
	}
	if (into != NULL)
		printf("note:     this record was merged into %s; accesses "
		       "after that are in that patient's report\n",
		    into);
	report_trail_text(o, t);
	if (o->since[0] != '\0' || o->until[0] != '\0')
		printf("period:   %s .. %s\n", o->since[0] ? o->since : "start",
		    o->until[0] ? o->until : "end");
	if (pr->nacc == 0) {
		printf("accesses: none in the trail\n");
	} else {
		printf("accesses: %zu by %zu actor(s), %s .. %s\n\n", pr->nacc,
		    actors->n, pr->acc[0].time, pr->acc[pr->nacc - 1].time);
		for (size_t i = 0; i < pr->nacc; i++) {
			const struct access *a = &pr->acc[i];
#define W(w, s)                                                                \
	if ((int)strlen(s) > w)                                                \
	w = (int)strlen(s)
			W(wt, a->time);
			W(wa, a->actor);
			W(wo, a->op);
			W(wc, a->code);
			W(wr, a->patient_id);
			W(wg, a->target);
#undef W
		}
		printf("%-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %s\n", wt, "TIME",
		    wa, "ACTOR", wo, "OP", wc, "RESULT", wr, "RECORD", wg,
		    "TARGET", "DETAIL");
		for (size_t i = 0; i < pr->nacc; i++) {
			const struct access *a = &pr->acc[i];
			char detail[AUDIT_REC_DETAIL + AUDIT_REC_PID + 16];

			if (a->other_patient_id[0] != '\0')
				snprintf(detail, sizeof(detail), "%s%swith %s",
				    a->detail, a->detail[0] ? " " : "",
				    a->other_patient_id);
			else
				snprintf(
				    detail, sizeof(detail), "%s", a->detail);
			printf("%-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %s\n", wt,
			    a->time, wa, a->actor, wo, a->op, wc, a->code, wr,
			    a->patient_id, wg, a->target, detail);
		}
		printf("\nby actor:\n");
		for (size_t k = 0; k < actors->n; k++) {
			char list[1024];
			patient_actor_ops(
			    ops, SMAP_KEY(actors, k), list, sizeof(list));
			printf("  %-*s  %llu  (%s)\n", wa, SMAP_KEY(actors, k),
			    (unsigned long long)SMAP_VAL(actors, k), list);
		}
	}
	if (pr->bulk.n > 0) {
		printf("\nnot attributable: in the same period these requests "
		       "disclosed records\nthe trail does not name (searches "
		       "by demographics, exports):\n");
		for (size_t k = 0; k < pr->bulk.n; k++) {
			const char *key = SMAP_KEY(&pr->bulk, k);
			const char *tab = strchr(key, '\t');
			printf("  %.*s  %s %llu\n", (int)(tab - key), key,
			    tab + 1,
			    (unsigned long long)SMAP_VAL(&pr->bulk, k));
		}
	}
}

/* The JSON form of the patient report: one object. */
static void
patient_print_json(struct patient_report *pr, const struct report_trail *t,
    const struct smap *actors, const struct smap *ops, const char *into)
{
	const struct report_opts *o = pr->o;

	fputs("{\"patient_id\":", stdout);
	cli_json_string(stdout, o->subject);
	fputs(",\"records\":[", stdout);
	for (size_t k = 0; k < pr->ids.n; k++) {
		if (k)
			putchar(',');
		cli_json_string(stdout, SMAP_KEY(&pr->ids, k));
	}
	fputs("],\"merged_into\":", stdout);
	if (into != NULL)
		cli_json_string(stdout, into);
	else
		fputs("null", stdout);
	fputs(",\"since\":", stdout);
	json_time_or_null(o->since);
	fputs(",\"until\":", stdout);
	json_time_or_null(o->until);
	putchar(',');
	report_trail_json(o, t);
	fputs(",\"accesses\":[", stdout);
	for (size_t i = 0; i < pr->nacc; i++) {
		const struct access *a = &pr->acc[i];
		printf("%s{\"seq\":%llu,\"time\":", i ? "," : "",
		    (unsigned long long)a->seq);
		cli_json_string(stdout, a->time);
		fputs(",\"actor\":", stdout);
		cli_json_string(stdout, a->actor);
		fputs(",\"role\":", stdout);
		cli_json_string(stdout, a->role);
		fputs(",\"op\":", stdout);
		cli_json_string(stdout, a->op);
		fputs(",\"target\":", stdout);
		cli_json_string(stdout, a->target);
		fputs(",\"record\":", stdout);
		cli_json_string(stdout, a->patient_id);
		fputs(",\"other_record\":", stdout);
		cli_json_string(stdout, a->other_patient_id);
		fputs(",\"code\":", stdout);
		cli_json_string(stdout, a->code);
		fputs(",\"detail\":", stdout);
		cli_json_string(stdout, a->detail);
		putchar('}');
	}
	fputs("],\"by_actor\":[", stdout);
	for (size_t k = 0; k < actors->n; k++) {
		const char *actor = SMAP_KEY(actors, k);
		size_t al = strlen(actor);
		int first = 1;

		printf("%s{\"actor\":", k ? "," : "");
		cli_json_string(stdout, actor);
		printf(",\"accesses\":%llu,\"ops\":{",
		    (unsigned long long)SMAP_VAL(actors, k));
		for (size_t j = 0; j < ops->n; j++) {
			const char *key = SMAP_KEY(ops, j);
			if (strncmp(key, actor, al) != 0 || key[al] != '\t')
				continue;
			if (!first)
				putchar(',');
			first = 0;
			cli_json_string(stdout, key + al + 1);
			printf(":%llu", (unsigned long long)SMAP_VAL(ops, j));
		}
		fputs("}}", stdout);
	}
	fputs("],\"not_attributable\":[", stdout);
	for (size_t k = 0; k < pr->bulk.n; k++) {
		const char *key = SMAP_KEY(&pr->bulk, k);
		const char *tab = strchr(key, '\t');
		char actor[AUDIT_REC_FIELD];

		snprintf(actor, sizeof(actor), "%.*s", (int)(tab - key), key);
		printf("%s{\"actor\":", k ? "," : "");
		cli_json_string(stdout, actor);
		fputs(",\"op\":", stdout);
		cli_json_string(stdout, tab + 1);
		printf(",\"requests\":%llu}",
		    (unsigned long long)SMAP_VAL(&pr->bulk, k));
	}
	fputs("]}\n", stdout);
}

int
audit_report_patient(int argc, char **argv)
{
	struct report_opts o;
	struct patient_report pr = {0};
	struct report_trail t = {0};
	struct smap actors = {0}, ops = {0};
	char into_buf[AUDIT_REC_PID];
	const char *into;
	int rc;

	if ((rc = report_args(argc, argv, 1, &o)) != 0) {
		free(o.files);
		return rc == 1 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	}
	pr.o = &o;
	/* Pass 1 verifies the chain and gathers the merges; pass 2, knowing
	 * every id that is this patient, keeps their lines. */
	if ((rc = report_walk(&o, &t, patient_pass_merges, &pr)) != 0)
		goto done;
	if (patient_ids(&pr) == -1) {
		rc = CLI_EXIT_USAGE;
		fprintf(stderr, "onecardctl: out of memory\n");
		goto done;
	}
	{
		struct trail_walk w2 = {0};
		char *sink = NULL;
		size_t sinklen = 0;
		FILE *v = open_memstream(&sink, &sinklen);

		w2.keep_going = 1;
		w2.verdicts = v;
		w2.line = patient_pass_lines;
		w2.arg = &pr;
		if (v == NULL || trail_walk(o.nfiles, o.files, &w2) == 2) {
			rc = CLI_EXIT_USAGE;
			if (v != NULL)
				fclose(v);
			free(sink);
			goto done;
		}
		fclose(v);
		free(sink);
	}
	if (patient_by_actor(&pr, &actors, &ops) == -1) {
		rc = CLI_EXIT_USAGE;
		fprintf(stderr, "onecardctl: out of memory\n");
		goto done;
	}
	into = patient_merged_into(&pr, into_buf, sizeof(into_buf));
	if (audit_json)
		patient_print_json(&pr, &t, &actors, &ops, into);
	else
		patient_print_text(&pr, &t, &actors, &ops, into);
	rc = t.rc == 0 ? CLI_EXIT_OK : CLI_EXIT_NO;
	if (fflush(stdout) != 0)
		rc = CLI_EXIT_USAGE;
done:
	smap_free(&actors);
	smap_free(&ops);
	smap_free(&pr.merged);
	smap_free(&pr.ids);
	smap_free(&pr.bulk);
	free(pr.acc);
	free(t.verdicts);
	free(o.files);
	return rc;
}

/* ---- audit hospital ---- */

struct hospital_report {
	const struct report_opts *o;
	char needle[AUDIT_REC_FIELD + 16]; /* "actor":"CODE", or "" */
	uint64_t requests, refused;
	char first[32], last[32];
	struct smap ops;      /* op → requests */
	struct smap op_codes; /* "op\tCODE" → requests */
	struct smap op_pats;  /* "op\tPID" → requests */
	struct smap codes;    /* CODE → requests */
	struct smap patients; /* PID → requests */
	struct smap minutes;  /* 2026-11-26T14:30 → requests */
	struct smap hours;    /* 2026-11-26T14 → requests */
};

/* Count one line of the hospital's. */
static int
hospital_pass(void *arg, const char *file, unsigned long lineno,
    const char *text, size_t len)
{
	struct hospital_report *hr = arg;
	struct audit_rec r;
	char key[AUDIT_REC_PID + 80];

	(void)file;
	(void)lineno;
	if ((hr->needle[0] != '\0' && !has(text, len, hr->needle)) ||
	    audit_rec_parse(text, len, &r) == -1 ||
	    strcmp(r.actor, hr->o->subject) != 0 || !report_in_time(hr->o, &r))
		return 0;
	hr->requests++;
	if (strcmp(r.code, "OK") != 0)
		hr->refused++;
	if (hr->first[0] == '\0' || strcmp(r.time, hr->first) < 0)
		memcpy(hr->first, r.time, sizeof(hr->first));
	if (strcmp(r.time, hr->last) > 0)
		memcpy(hr->last, r.time, sizeof(hr->last));
	if (smap_add(&hr->ops, r.op, 1) == -1 ||
	    smap_add(&hr->codes, r.code, 1) == -1)
		return -1;
	snprintf(key, sizeof(key), "%s\t%s", r.op, r.code);
	if (smap_add(&hr->op_codes, key, 1) == -1)
		return -1;
	if (r.patient_id[0] != '\0') {
		snprintf(key, sizeof(key), "%s\t%s", r.op, r.patient_id);
		if (smap_add(&hr->op_pats, key, 1) == -1 ||
		    smap_add(&hr->patients, r.patient_id, 1) == -1)
			return -1;
	}
	if (strlen(r.time) >= 16) {
		snprintf(key, sizeof(key), "%.16s", r.time);
		if (smap_add(&hr->minutes, key, 1) == -1)
			return -1;
		key[13] = '\0';
		if (smap_add(&hr->hours, key, 1) == -1)
			return -1;
	}
	return 0;
}

/* The busiest key of m (the earliest of equals) and its count. */
static const char *
smap_peak(const struct smap *m, uint64_t *count)
{
	const char *best = NULL;

	*count = 0;
	for (size_t k = 0; k < m->n; k++)
		if (SMAP_VAL(m, k) > *count ||
		    (SMAP_VAL(m, k) == *count && best != NULL &&
			strcmp(SMAP_KEY(m, k), best) < 0)) {
			*count = SMAP_VAL(m, k);
			best = SMAP_KEY(m, k);
		}
	return best;
}

/* Distinct patients op touched. */
static uint64_t
hospital_op_patients(const struct hospital_report *hr, const char *op)
{
	size_t ol = strlen(op);
	uint64_t n = 0;

	for (size_t k = 0; k < hr->op_pats.n; k++) {
		const char *key = SMAP_KEY(&hr->op_pats, k);
		n += strncmp(key, op, ol) == 0 && key[ol] == '\t';
	}
	return n;
}

/* The codes of op, "OK 5, NOT_FOUND 1" (OK first), into buf. */
static void
hospital_op_codes(
    const struct hospital_report *hr, const char *op, char *buf, size_t len)
{
	size_t ol = strlen(op), o = 0;

	buf[0] = '\0';
	for (int pass = 0; pass < 2; pass++)
		for (size_t k = 0; k < hr->op_codes.n && o < len; k++) {
			const char *key = SMAP_KEY(&hr->op_codes, k);
			if (strncmp(key, op, ol) != 0 || key[ol] != '\t' ||
			    (strcmp(key + ol + 1, "OK") == 0) != (pass == 0))
				continue;
			o += (size_t)snprintf(buf + o, len - o, "%s%s %llu",
			    o ? ", " : "", key + ol + 1,
			    (unsigned long long)SMAP_VAL(&hr->op_codes, k));
		}
}

/* Fill top[] with the indexes (insertion order) of the most requested
 * patients, most first; returns how many. */
static size_t
hospital_top(const struct hospital_report *hr, size_t *top, size_t max)
{
	size_t n = 0;

	for (size_t k = 0; k < hr->patients.n; k++) {
		uint64_t v = SMAP_VAL(&hr->patients, k);
		size_t i = n < max ? n++ : max;
		if (i == max && v <= SMAP_VAL(&hr->patients, top[max - 1]))
			continue;
		if (i == max)
			i = max - 1;
		while (i > 0 && SMAP_VAL(&hr->patients, top[i - 1]) < v) {
			top[i] = top[i - 1];
			i--;
		}
		top[i] = k;
	}
	return n;
}

/* The human form of the hospital report: one screen. */
static void
hospital_print_text(
    const struct hospital_report *hr, const struct report_trail *t)
{
	const struct report_opts *o = hr->o;
	size_t top[TOP_PATIENTS], ntop;
	uint64_t pm, ph;
	const char *minute, *hour;
	int wo = 2;

	printf("hospital: %s\n", o->subject);
	report_trail_text(o, t);
	printf("period:   %s .. %s\n", o->since[0] ? o->since : "start",
	    o->until[0] ? o->until : "end");
	if (hr->requests == 0) {
		printf("requests: none\n");
		return;
	}
	printf("requests: %llu, %s .. %s; %llu not OK\n",
	    (unsigned long long)hr->requests, hr->first, hr->last,
	    (unsigned long long)hr->refused);
	printf("patients: %zu distinct\n", hr->patients.n);
	minute = smap_peak(&hr->minutes, &pm);
	hour = smap_peak(&hr->hours, &ph);
	if (minute != NULL && hour != NULL)
		printf("busiest:  %llu in the minute %s, %llu in the hour "
		       "%s:00\n",
		    (unsigned long long)pm, minute, (unsigned long long)ph,
		    hour);
	putchar('\n');
	for (size_t k = 0; k < hr->ops.n; k++)
		if ((int)strlen(SMAP_KEY(&hr->ops, k)) > wo)
			wo = (int)strlen(SMAP_KEY(&hr->ops, k));
	printf("%-*s  %8s  %8s  %s\n", wo, "OP", "REQUESTS", "PATIENTS",
	    "RESULTS");
	for (size_t k = 0; k < hr->ops.n; k++) {
		const char *op = SMAP_KEY(&hr->ops, k);
		char codes[512];

		hospital_op_codes(hr, op, codes, sizeof(codes));
		printf("%-*s  %8llu  %8llu  %s\n", wo, op,
		    (unsigned long long)SMAP_VAL(&hr->ops, k),
		    (unsigned long long)hospital_op_patients(hr, op), codes);
	}
	ntop = hospital_top(hr, top, TOP_PATIENTS);
	if (ntop > 0) {
		printf("\nmost requested patients:");
		for (size_t i = 0; i < ntop; i++)
			printf("%s %s (%llu)", i ? "," : "",
			    SMAP_KEY(&hr->patients, top[i]),
			    (unsigned long long)SMAP_VAL(
				&hr->patients, top[i]));
		putchar('\n');
	}
}

/* The JSON form of the hospital report: one object. */
static void
hospital_print_json(
    const struct hospital_report *hr, const struct report_trail *t)
{
	const struct report_opts *o = hr->o;
	size_t top[TOP_PATIENTS], ntop;
	uint64_t pm, ph;
	const char *minute, *hour;

	fputs("{\"hospital\":", stdout);
	cli_json_string(stdout, o->subject);
	fputs(",\"since\":", stdout);
	json_time_or_null(o->since);
	fputs(",\"until\":", stdout);
	json_time_or_null(o->until);
	putchar(',');
	report_trail_json(o, t);
	printf(",\"requests\":%llu,\"not_ok\":%llu,\"patients\":%zu,"
	       "\"first\":",
	    (unsigned long long)hr->requests, (unsigned long long)hr->refused,
	    hr->patients.n);
	json_time_or_null(hr->first);
	fputs(",\"last\":", stdout);
	json_time_or_null(hr->last);
	fputs(",\"codes\":{", stdout);
	for (size_t k = 0; k < hr->codes.n; k++) {
		if (k)
			putchar(',');
		cli_json_string(stdout, SMAP_KEY(&hr->codes, k));
		printf(":%llu", (unsigned long long)SMAP_VAL(&hr->codes, k));
	}
	fputs("},\"ops\":[", stdout);
	for (size_t k = 0; k < hr->ops.n; k++) {
		const char *op = SMAP_KEY(&hr->ops, k);
		size_t ol = strlen(op);
		int first = 1;

		printf("%s{\"op\":", k ? "," : "");
		cli_json_string(stdout, op);
		printf(",\"requests\":%llu,\"patients\":%llu,\"codes\":{",
		    (unsigned long long)SMAP_VAL(&hr->ops, k),
		    (unsigned long long)hospital_op_patients(hr, op));
		for (size_t j = 0; j < hr->op_codes.n; j++) {
			const char *key = SMAP_KEY(&hr->op_codes, j);
			if (strncmp(key, op, ol) != 0 || key[ol] != '\t')
				continue;
			if (!first)
				putchar(',');
			first = 0;
			cli_json_string(stdout, key + ol + 1);
			printf(":%llu",
			    (unsigned long long)SMAP_VAL(&hr->op_codes, j));
		}
		fputs("}}", stdout);
	}
	putchar(']');
	minute = smap_peak(&hr->minutes, &pm);
	hour = smap_peak(&hr->hours, &ph);
	fputs(",\"peak_minute\":", stdout);
	if (minute != NULL) {
		fputs("{\"minute\":", stdout);
		cli_json_string(stdout, minute);
		printf(",\"requests\":%llu}", (unsigned long long)pm);
	} else
		fputs("null", stdout);
	fputs(",\"peak_hour\":", stdout);
	if (hour != NULL) {
		fputs("{\"hour\":", stdout);
		cli_json_string(stdout, hour);
		printf(",\"requests\":%llu}", (unsigned long long)ph);
	} else
		fputs("null", stdout);
	fputs(",\"top_patients\":[", stdout);
	ntop = hospital_top(hr, top, TOP_PATIENTS);
	for (size_t i = 0; i < ntop; i++) {
		printf("%s{\"patient_id\":", i ? "," : "");
		cli_json_string(stdout, SMAP_KEY(&hr->patients, top[i]));
		printf(",\"requests\":%llu}",
		    (unsigned long long)SMAP_VAL(&hr->patients, top[i]));
	}
	fputs("]}\n", stdout);
}

int
audit_report_hospital(int argc, char **argv)
{
	struct report_opts o;
	struct hospital_report hr = {0};
	struct report_trail t = {0};
	int rc;

	if ((rc = report_args(argc, argv, 0, &o)) != 0) {
		free(o.files);
		return rc == 1 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	}
	hr.o = &o;
	/* A code needs no escaping in the trail (letters, digits, - and _);
	 * for anything else every line is parsed. */
	if (strpbrk(o.subject, "\"\\") == NULL &&
	    strlen(o.subject) < AUDIT_REC_FIELD)
		snprintf(hr.needle, sizeof(hr.needle), "\"actor\":\"%s\"",
		    o.subject);
	if ((rc = report_walk(&o, &t, hospital_pass, &hr)) != 0)
		goto done;
	if (audit_json)
		hospital_print_json(&hr, &t);
	else
		hospital_print_text(&hr, &t);
	rc = t.rc == 0 ? CLI_EXIT_OK : CLI_EXIT_NO;
	if (fflush(stdout) != 0)
		rc = CLI_EXIT_USAGE;
done:
	smap_free(&hr.ops);
	smap_free(&hr.op_codes);
	smap_free(&hr.op_pats);
	smap_free(&hr.codes);
	smap_free(&hr.patients);
	smap_free(&hr.minutes);
	smap_free(&hr.hours);
	free(t.verdicts);
	free(o.files);
	return rc;
}
