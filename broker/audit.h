/*
 * audit.h: the audit trail, one JSON line per request (who, what, whose
 * record, result), hash-chained so an edited, dropped or reordered line is
 * found. Called by the connection code for every request, before its reply
 * is sent; safe from any thread. Never given a full cn-id: target is masked.
 */
#ifndef ONECARD_AUDIT_H
#define ONECARD_AUDIT_H

#include <stdint.h>

struct audit_entry {
	const char *actor;      /* certificate CN */
	int role;               /* ONECARD__V1__ROLE__* */
	const char *op;         /* wire_op_name() */
	const char *target;     /* op_result.target (masked), may be "" */
	const char *patient_id; /* op_result.patient_id, may be "" */
	int code;               /* reply code */
	uint64_t latency_us;    /* from frame decoded to reply queued */
	const char *detail;     /* op_result.detail, may be NULL or "" */

	/* op_result.other_patient_id, may be NULL or "": written only when
	 * set (merge and unmerge lines). */
	const char *other_patient_id;
};

/* Start the trail at path (NULL: off). 0 or -1 (logged). Start-up only. */
int audit_open(const char *path, const char *node);
/* Is the trail on? Callers skip building entries when not. */
int audit_enabled(void);
/* Append one entry. */
void audit_log(const struct audit_entry *e);
/*
 * Optional, for speed: between begin and end, this thread's lines wait in a
 * buffer and end writes them all with one write(2). Bracket a callback that
 * answers a burst of requests; its replies must not reach the socket before
 * end (conn.c sends them at the end of the loop's pass, after
 * audit_pass_end). Without a batch, audit_log writes each line before it
 * returns.
 */
void audit_batch_begin(void);
void audit_batch_end(void);
/*
 * Optional, for more speed: end a batch but let its lines wait until the
 * end of this thread's event-loop pass, to share one write(2) with the
 * other callbacks of the pass. Only for a caller that knows none of the
 * batch's replies can reach the socket before then (conn.c: every send
 * calls audit_pass_end first, and replies wait for the pass's end). The
 * loop's owner registers
 * arm (run on the first hold of a pass) and must then run audit_pass_end
 * before it polls again; on a thread without a hook this is
 * audit_batch_end.
 */
void audit_batch_hold(void);
void audit_pass_hook(void (*arm)(void *), void *arg);
void audit_pass_end(void);
/* Reopen the file (SIGHUP, for rotation); the chain carries over. */
int audit_reopen(void);
/* Sync and close at shutdown. */
void audit_close(void);

#endif
