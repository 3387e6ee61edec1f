/*
 * audit.c: `onecardctl audit verify` and `onecardctl audit search`, offline
 * tools over the broker's audit trail files. Owns reading the line format
 * broker/audit.c writes (seq first, prev last) and judging the chain: each
 * line's prev must be the SHA-256 of the line before it (newline included)
 * and its seq one more. When a link breaks, the seq numbers say how: a seq
 * that follows on means a line was edited, a gap whose numbers appear
 * nowhere means lines are missing, a seq out of order means lines were
 * moved. It never writes to a trail and needs no broker.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "audit.h"

#define HASH_HEX   (SHA256_DIGEST_LENGTH * 2)
#define SEQ_PREFIX "{\"seq\":"
#define PREV_KEY   ",\"prev\":\""
/* The fixed tail of a line: ,"prev":"<64 hex>"}\n */
#define TAIL_LEN (sizeof(PREV_KEY) - 1 + HASH_HEX + 3)
#define TIME_LEN 24 /* 2026-11-26T14:30:00.123Z */

/* Where the chain stands after the last good line. */
struct chain {
	int have;
	char hash[HASH_HEX + 1];
	uint64_t seq;
	const char *file;
	unsigned long line;
};

/* Where verify's verdicts go: stdout, or a buffer for --json. */
static FILE *trail_out;

int audit_json;

/* Write s as a JSON string (the shape of clients/common/cli_out.c; this
 * file stands alone so the unit test can compile it with the broker's). */
static void
trail_json_string(FILE *fp, const char *s)
{
	const unsigned char *p;

	putc('"', fp);
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(fp, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", fp);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(fp, "\\u%04x", *p);
		else
			putc(*p, fp);
	}
	putc('"', fp);
}

/* Print usage to fp. */
static void
trail_help(FILE *fp)
{
	fprintf(fp,
	    "usage: onecardctl audit verify [--head HASH] [--json] FILE...\n"
	    "       onecardctl audit search (--patient ID | --actor CODE) "
	    "[--since RFC3339] FILE...\n"
	    "       onecardctl audit patient ID [--since T] [--until T] "
	    "[--no-merges] [--allow-broken] FILE...\n"
	    "       onecardctl audit hospital CODE [--since T] [--until T] "
	    "[--allow-broken] FILE...\n"
	    "verify: 0 when the chain is intact, 1 at the first broken "
	    "line; with --json\none object. search prints the matching "
	    "lines (JSON already).\npatient, hospital: access reports, "
	    "verified on the way (1 and no report when\nthe chain is "
	    "broken); `onecardctl audit patient --help` says more.\n");
}

/* Print usage to stderr; returns 2. */
static int
trail_usage(void)
{
	trail_help(stderr);
	return 2;
}

/*
 * Hex SHA-256 of buf into out. The digest is fetched once: SHA256() looks
 * it up again on every call, which doubles the time to verify a big trail.
 */
static void
trail_hash(const char *buf, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	static EVP_MD *md;
	static EVP_MD_CTX *ctx;
	unsigned char dg[SHA256_DIGEST_LENGTH];
	unsigned int dglen;

	if (md == NULL)
		md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (ctx == NULL)
		ctx = EVP_MD_CTX_new();
	if (md == NULL || ctx == NULL ||
	    EVP_DigestInit_ex(ctx, md, NULL) != 1 ||
	    EVP_DigestUpdate(ctx, buf, len) != 1 ||
	    EVP_DigestFinal_ex(ctx, dg, &dglen) != 1)
		SHA256((const unsigned char *)buf, len, dg);
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
		out[2 * i] = hex[dg[i] >> 4];
		out[2 * i + 1] = hex[dg[i] & 0xf];
	}
	out[HASH_HEX] = '\0';
}

/*
 * Take seq and prev out of one line (len bytes, newline included). 0, or -1
 * when the line is not in the trail's shape.
 */
static int
trail_line_parse(const char *line, size_t len, uint64_t *seq, char *prev)
{
	const char *p, *tail;
	uint64_t v = 0;

	if (len < sizeof(SEQ_PREFIX) + TAIL_LEN ||
	    strncmp(line, SEQ_PREFIX, sizeof(SEQ_PREFIX) - 1) != 0)
		return -1;
	p = line + sizeof(SEQ_PREFIX) - 1;
	if (*p < '0' || *p > '9')
		return -1;
	while (*p >= '0' && *p <= '9') {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p++ - '0');
	}
	if (*p != ',')
		return -1;
	tail = line + len - TAIL_LEN;
	if (strncmp(tail, PREV_KEY, sizeof(PREV_KEY) - 1) != 0 ||
	    strcmp(line + len - 3, "\"}\n") != 0)
		return -1;
	tail += sizeof(PREV_KEY) - 1;
	for (int i = 0; i < HASH_HEX; i++)
		if (!((tail[i] >= '0' && tail[i] <= '9') ||
			(tail[i] >= 'a' && tail[i] <= 'f')))
			return -1;
	memcpy(prev, tail, HASH_HEX);
	prev[HASH_HEX] = '\0';
	*seq = v;
	return 0;
}

/* Is any line with lo < seq < hi anywhere in the files? */
static int
trail_seq_present(char **files, int nfiles, uint64_t lo, uint64_t hi)
{
	char *line = NULL, prev[HASH_HEX + 1];
	size_t cap = 0;
	ssize_t n;
	uint64_t seq;
	int found = 0;

	for (int i = 0; i < nfiles && !found; i++) {
		FILE *f = fopen(files[i], "r");
		if (f == NULL)
			continue;
		while (!found && (n = getline(&line, &cap, f)) > 0)
			if (trail_line_parse(line, (size_t)n, &seq, prev) ==
				0 &&
			    seq > lo && seq < hi)
				found = 1;
		fclose(f);
	}
	free(line);
	return found;
}

/*
 * Judge one line against the chain. Returns 0 when it links on, or 1 after
 * printing what is wrong and where.
 */
static int
trail_check(struct chain *c, char **files, int nfiles, const char *file,
    unsigned long lineno, const char *line, size_t len)
{
	char prev[HASH_HEX + 1];
	uint64_t seq;

	if (len == 0 || line[len - 1] != '\n') {
		fprintf(trail_out,
		    "%s:%lu: truncated: the last line has no newline\n", file,
		    lineno);
		return 1;
	}
	if (trail_line_parse(line, len, &seq, prev) == -1) {
		fprintf(trail_out,
		    "%s:%lu: edited: not a well-formed audit line\n", file,
		    lineno);
		return 1;
	}
	if (!c->have) {
		/* The very first line chains to 64 zeros; later ones are
		 * taken on trust when the files given start mid-trail. */
		if (seq == 1 && strspn(prev, "0") != HASH_HEX) {
			fprintf(trail_out,
			    "%s:%lu: edited: seq 1 does not start the chain "
			    "(its prev is not zeros)\n",
			    file, lineno);
			return 1;
		}
		return 0;
	}
	int link = strcmp(prev, c->hash) == 0;
	if (link && seq == c->seq + 1)
		return 0;
	if (link) {
		fprintf(trail_out,
		    "%s:%lu: edited: seq %llu does not follow seq %llu\n", file,
		    lineno, (unsigned long long)seq,
		    (unsigned long long)c->seq);
		return 1;
	}
	if (seq == c->seq + 1) {
		fprintf(trail_out,
		    "%s:%lu: edited: its hash is not the prev of the next "
		    "line (%s:%lu), so one of the two was changed\n",
		    c->file, c->line, file, lineno);
		return 1;
	}
	if (seq == c->seq) {
		fprintf(trail_out,
		    "%s:%lu: reordered: seq %llu appears twice\n", file, lineno,
		    (unsigned long long)seq);
		return 1;
	}
	if (seq < c->seq) {
		fprintf(trail_out,
		    "%s:%lu: reordered: seq %llu comes after seq %llu\n", file,
		    lineno, (unsigned long long)seq,
		    (unsigned long long)c->seq);
		return 1;
	}
	if (trail_seq_present(files, nfiles, c->seq, seq)) {
		fprintf(trail_out,
		    "%s:%lu: reordered: seq %llu follows seq %llu, and the "
		    "lines between are elsewhere\n",
		    file, lineno, (unsigned long long)seq,
		    (unsigned long long)c->seq);
		return 1;
	}
	fprintf(trail_out,
	    "%s:%lu: missing: %llu line(s) (seq %llu..%llu) before this "
	    "line\n",
	    file, lineno, (unsigned long long)(seq - c->seq - 1),
	    (unsigned long long)c->seq + 1, (unsigned long long)seq - 1);
	return 1;
}

/* Walk the files, judging the chain (audit.h). */
int
trail_walk(int nfiles, char **files, struct trail_walk *w)
{
	struct chain c = {0};
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0, stop = 0;
	FILE *saved = trail_out;

	trail_out = w->verdicts;
	w->lines = 0;
	w->first_seq = w->last_seq = 0;
	w->broken = 0;
	w->head[0] = '\0';
	for (int i = 0; i < nfiles && !stop; i++) {
		FILE *f = fopen(files[i], "r");
		unsigned long lineno = 0;
		if (f == NULL) {
			fprintf(stderr, "onecardctl: %s: %s\n", files[i],
			    strerror(errno));
			snprintf(w->error, sizeof(w->error), "%s: %s", files[i],
			    strerror(errno));
			rc = 2;
			break;
		}
		while (!stop && (n = getline(&line, &cap, f)) > 0) {
			char prev[HASH_HEX + 1];
			uint64_t seq = 0;

			lineno++;
			if (trail_check(&c, files, nfiles, files[i], lineno,
				line, (size_t)n) != 0) {
				rc = 1;
				w->broken++;
				if (!w->keep_going) {
					stop = 1;
					break;
				}
			}
			/* A line that is no audit line at all (or is cut
			 * short) is never taken for one, even when going on. */
			if (trail_line_parse(line, (size_t)n, &seq, prev) == -1)
				continue;
			if (!c.have)
				w->first_seq = seq;
			trail_hash(line, (size_t)n, c.hash);
			c.seq = seq;
			c.have = 1;
			c.file = files[i];
			c.line = lineno;
			w->lines++;
			if (w->line != NULL &&
			    w->line(w->arg, files[i], lineno, line,
				(size_t)n) != 0) {
				snprintf(w->error, sizeof(w->error),
				    "%s:%lu: out of memory", files[i], lineno);
				fprintf(stderr, "onecardctl: %s\n", w->error);
				rc = 2;
				stop = 1;
			}
		}
		if (rc != 2 && ferror(f)) {
			fprintf(
			    stderr, "onecardctl: %s: read error\n", files[i]);
			snprintf(w->error, sizeof(w->error), "%s: read error",
			    files[i]);
			rc = 2;
			stop = 1;
		}
		fclose(f);
	}
	free(line);
	if (rc == 0 && w->head_want != NULL &&
	    (!c.have || strcmp(w->head_want, c.hash) != 0)) {
		fprintf(trail_out,
		    "%s:%lu: missing: the trail ends at seq %llu, not at head "
		    "%s (lines cut off the end?)\n",
		    c.have ? c.file : files[nfiles - 1], c.line,
		    (unsigned long long)c.seq, w->head_want);
		w->broken++;
		rc = 1;
	}
	if (c.have) {
		memcpy(w->head, c.hash, sizeof(w->head));
		w->last_seq = c.seq;
	}
	trail_out = saved;
	return rc;
}

/* onecardctl audit verify FILE...: the verdicts as text. */
static int
trail_verify_text(int nfiles, char **files)
{
	struct trail_walk w = {0};
	int rc;

	if (nfiles >= 2 && strcmp(files[0], "--head") == 0) {
		w.head_want = files[1];
		nfiles -= 2;
		files += 2;
		if (strlen(w.head_want) != HASH_HEX)
			return trail_usage();
	}
	if (nfiles < 1)
		return trail_usage();
	w.verdicts = trail_out;
	rc = trail_walk(nfiles, files, &w);
	if (rc == 2 && audit_json && w.error[0] != '\0' && w.broken == 0) {
		fputs("{\"error\":\"CLIENT_INVALID\",\"message\":", stdout);
		trail_json_string(stdout, w.error);
		fputs("}\n", stdout);
	}
	if (rc == 0)
		trail_summary(trail_out, &w, nfiles);
	return rc;
}

/* The "ok: ..." line of an intact walk. */
void
trail_summary(FILE *fp, const struct trail_walk *w, int nfiles)
{
	if (w->lines == 0)
		fprintf(fp, "ok: 0 lines\n");
	else
		fprintf(fp,
		    "ok: %zu lines intact (seq %llu..%llu) in %d file(s), head "
		    "%s%s\n",
		    w->lines, (unsigned long long)w->first_seq,
		    (unsigned long long)w->last_seq, nfiles, w->head,
		    w->first_seq > 1 ? "; the chain starts mid-trail, earlier "
				       "files were not given"
				     : "");
}

/*
 * onecardctl audit verify: with --json one object, {"ok":true|false,
 * "verdict":TEXT} (TEXT what the text output would say); else text.
 */
static int
trail_verify(int nfiles, char **files)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (!audit_json) {
		trail_out = stdout;
		return trail_verify_text(nfiles, files);
	}
	if ((trail_out = open_memstream(&text, &len)) == NULL) {
		fprintf(stderr, "onecardctl: audit verify: out of memory\n");
		return 2;
	}
	rc = trail_verify_text(nfiles, files);
	fclose(trail_out);
	trail_out = NULL;
	while (len > 0 && text[len - 1] == '\n')
		text[--len] = '\0';
	if (rc == 0) {
		fputs("{\"ok\":true,\"verdict\":", stdout);
		trail_json_string(stdout, text);
		fputs("}\n", stdout);
	} else if (rc == 1) {
		fputs("{\"ok\":false,\"verdict\":", stdout);
		trail_json_string(stdout, text);
		fputs("}\n", stdout);
	}
	free(text);
	return rc;
}

/*
 * Turn an RFC 3339 time (or a bare date) into the trail's own form,
 * 2026-11-26T06:30:00.000Z, so lines compare as strings. 0 or -1.
 */
int
trail_since_parse(const char *s, char *out, size_t outlen)
{
	struct tm tm;
	int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, n = 0, off = 0;
	const char *p;

	memset(&tm, 0, sizeof(tm));
	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
		return -1;
	p = s + n;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		if (sscanf(p + 1, "%2d:%2d%n", &h, &mi, &n) != 2 || n != 5)
			return -1;
		p += 1 + n;
		if (*p == ':') {
			if (sscanf(p + 1, "%2d%n", &sec, &n) != 1 || n != 2)
				return -1;
			p += 1 + n;
			if (*p == '.') {
				int digits = 0;
				p++;
				while (*p >= '0' && *p <= '9') {
					if (digits < 3)
						ms = ms * 10 + (*p - '0');
					digits++;
					p++;
				}
				if (digits == 0)
					return -1;
				for (; digits < 3; digits++)
					ms *= 10;
			}
		}
		if (*p == 'Z' || *p == 'z')
			p++;
		else if (*p == '+' || *p == '-') {
			int oh, om, sign = *p == '-' ? -1 : 1;
			if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &n) != 2 ||
			    n != 5)
				return -1;
			off = sign * (oh * 3600 + om * 60);
			p += 1 + n;
		} else
			return -1;
	}
	if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || sec > 60)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	time_t t = timegm(&tm) - off;
	if (gmtime_r(&t, &tm) == NULL)
		return -1;
	n = (int)strftime(out, outlen, "%Y-%m-%dT%H:%M:%S", &tm);
	if (n == 0 || (size_t)n + 6 > outlen)
		return -1;
	snprintf(out + n, outlen - (size_t)n, ".%03dZ", ms);
	return 0;
}

/* Escape s as the trail writes JSON strings, into out. 0 or -1. */
static int
trail_escape(const char *s, char *out, size_t outlen)
{
	size_t o = 0;

	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		if (o + 7 > outlen)
			return -1;
		if (ch == '"' || ch == '\\') {
			out[o++] = '\\';
			out[o++] = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f)
			o += (size_t)snprintf(
			    out + o, outlen - o, "\\u%04x", ch);
		else
			out[o++] = (char)ch;
	}
	out[o] = '\0';
	return 0;
}

/* Does the line's string field key ("actor") equal want (escaped)? */
static int
trail_field_is(const char *line, const char *key, const char *want)
{
	char pat[64];
	const char *v;
	size_t wl = strlen(want);

	snprintf(pat, sizeof(pat), ",\"%s\":\"", key);
	if ((v = strstr(line, pat)) == NULL)
		return 0;
	v += strlen(pat);
	return strncmp(v, want, wl) == 0 && v[wl] == '"';
}

/* Is the line's time at or after since (the trail's own form)? */
static int
trail_time_since(const char *line, const char *since)
{
	const char *v = strstr(line, ",\"time\":\"");

	if (v == NULL)
		return 0;
	return strncmp(v + 9, since, TIME_LEN) >= 0;
}

/* onecardctl audit search (--patient ID | --actor CODE) [--since T] FILE... */
static int
trail_search(int argc, char **argv)
{
	char patient[512] = "", actor[512] = "", since[32] = "";
	int have_patient = 0, have_actor = 0, i;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-')
			break;
		if (i + 1 >= argc)
			return trail_usage();
		if (strcmp(a, "--patient") == 0) {
			if (trail_escape(argv[++i], patient, sizeof(patient)))
				return trail_usage();
			have_patient = 1;
		} else if (strcmp(a, "--actor") == 0) {
			if (trail_escape(argv[++i], actor, sizeof(actor)))
				return trail_usage();
			have_actor = 1;
		} else if (strcmp(a, "--since") == 0) {
			if (trail_since_parse(
				argv[++i], since, sizeof(since))) {
				fprintf(stderr,
				    "onecardctl: --since %s: not an RFC 3339 "
				    "time (2026-11-26T14:30:00Z)\n",
				    argv[i]);
				return 2;
			}
		} else
			return trail_usage();
	}
	if ((!have_patient && !have_actor) || i >= argc)
		return trail_usage();
	for (; i < argc; i++) {
		FILE *f = fopen(argv[i], "r");
		if (f == NULL) {
			fprintf(stderr, "onecardctl: %s: %s\n", argv[i],
			    strerror(errno));
			rc = 2;
			continue;
		}
		while ((n = getline(&line, &cap, f)) > 0) {
			if (have_patient &&
			    !trail_field_is(line, "patient_id", patient))
				continue;
			if (have_actor && !trail_field_is(line, "actor", actor))
				continue;
			if (since[0] != '\0' && !trail_time_since(line, since))
				continue;
			fwrite(line, 1, (size_t)n, stdout);
			if (line[n - 1] != '\n')
				putchar('\n');
		}
		fclose(f);
	}
	free(line);
	if (fflush(stdout) != 0)
		rc = 2;
	return rc;
}

int
ctl_audit(int argc, char **argv)
{
	int i, a = argc > 0 && strcmp(argv[0], "audit") == 0;

	/* The reports read their own options, --help included. */
	if (argc > a && strcmp(argv[a], "patient") == 0)
		return audit_report_patient(argc - a - 1, argv + a + 1);
	if (argc > a && strcmp(argv[a], "hospital") == 0)
		return audit_report_hospital(argc - a - 1, argv + a + 1);
	for (i = 0; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			trail_help(stdout);
			return 0;
		}
	argc -= a;
	argv += a;
	if (argc < 1)
		return trail_usage();
	if (strcmp(argv[0], "verify") == 0)
		return trail_verify(argc - 1, argv + 1);
	if (strcmp(argv[0], "search") == 0)
		return trail_search(argc - 1, argv + 1);
	return trail_usage();
}
