/*
 * audit.h: `onecardctl audit`, offline tools for the broker's audit trail
 * (broker/audit.c writes it; docs/operations.md describes the format).
 */
#ifndef ONECARDCTL_AUDIT_H
#define ONECARDCTL_AUDIT_H

/*
 * Run `onecardctl audit ACTION ...`. argv[0] is "audit" (or the action
 * itself, when the caller already took "audit" off):
 *   audit verify [--head HASH] FILE...
 *                          recompute the hash chain across the files in
 *                          order; 0 when intact, 1 at the first broken line
 *                          (or when the last line's hash is not HASH, the
 *                          head the broker logs at close and on reopen)
 *   audit search (--patient ID | --actor CODE) [--since RFC3339] FILE...
 *                          print the matching lines; 0 (even when none)
 * Returns the exit status: 0, 1 (broken chain), 2 (usage or I/O error).
 */
int ctl_audit(int argc, char **argv);
/* --json: verify prints one object {"ok":…,"verdict":…} instead. */
extern int audit_json;

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * One pass over the trail's files in order, judging the chain as verify
 * does and handing each audit line to line(). The reports
 * (audit_report.c) read the trail through it, so every report is verified
 * on the way by the same code as `audit verify`.
 */
struct trail_walk {
	/* in */
	const char *head_want; /* --head HASH, or NULL */
	int keep_going;        /* judge on past a broken line (else stop) */
	FILE *verdicts;        /* where each verdict goes ("FILE:LINE: ...") */
	/* Called for every well-formed line read (when keep_going, broken
	 * ones too); len includes the newline. Nonzero stops the walk
	 * (it returns 2). */
	int (*line)(void *arg, const char *file, unsigned long lineno,
	    const char *text, size_t len);
	void *arg;
	/* out */
	size_t lines;       /* well-formed lines read */
	uint64_t first_seq; /* seq of the first, and of the last */
	uint64_t last_seq;
	char head[65];   /* hash of the last line read ("" if none) */
	int broken;      /* verdicts printed */
	char error[512]; /* why it returned 2 ("FILE: reason"), or "" */
};

/* Walk the files (oldest first): 0 intact, 1 broken (see verdicts), 2 a
 * file cannot be read (said on stderr; also in error). */
int trail_walk(int nfiles, char **files, struct trail_walk *w);
/* Print verify's "ok: N lines intact (seq A..B) in F file(s), head H". */
void trail_summary(FILE *fp, const struct trail_walk *w, int nfiles);
/* Turn an RFC 3339 time (or a bare date) into the trail's own form,
 * 2026-11-26T06:30:00.000Z (UTC), so times compare as strings. 0 or -1. */
int trail_since_parse(const char *s, char *out, size_t outlen);

/* audit_report.c: `audit patient` and `audit hospital`. */
int audit_report_patient(int argc, char **argv);
int audit_report_hospital(int argc, char **argv);

#endif
