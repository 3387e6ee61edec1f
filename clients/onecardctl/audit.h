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

#endif
