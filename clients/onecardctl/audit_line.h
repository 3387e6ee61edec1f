/*
 * audit_line.h: one audit trail line read back into its fields, for the
 * access reports (audit_report.c). The line is the flat JSON object
 * broker/audit.c writes (docs/operations.md, "Line format"); fields the
 * reader does not know are skipped, so lines with more fields (a later
 * broker's) still read. Pure functions on buffers: no I/O, no allocation.
 */
#ifndef ONECARDCTL_AUDIT_LINE_H
#define ONECARDCTL_AUDIT_LINE_H

#include <stddef.h>
#include <stdint.h>

#define AUDIT_REC_PID    64
#define AUDIT_REC_FIELD  256
#define AUDIT_REC_DETAIL 512

/* The fields of one line, JSON strings decoded; "" when absent. */
struct audit_rec {
	uint64_t seq;
	char time[32]; /* 2026-11-26T14:30:00.123Z */
	char actor[AUDIT_REC_FIELD];
	char role[16];
	char op[64];
	char target[AUDIT_REC_FIELD];
	char patient_id[AUDIT_REC_PID];
	char other_patient_id[AUDIT_REC_PID]; /* merge and unmerge only */
	char code[32];
	char detail[AUDIT_REC_DETAIL];
};

/*
 * Read line (len bytes; a trailing newline is allowed) into r. A string
 * longer than its field is cut at a UTF-8 character boundary. 0, or -1 when
 * the line is not a flat JSON object with a numeric seq.
 */
int audit_rec_parse(const char *line, size_t len, struct audit_rec *r);

/*
 * Mask, in place, every run that looks like a full resident ID (17 digits
 * and a digit or X, not inside a longer run of them) as the broker does:
 * 410102********123X. The trail is masked already; the reports mask again
 * so that no full cn-id is printed even from a trail written by hand.
 */
void audit_mask(char *s);

#endif
