/*
 * writer.h: the group-commit writer's interface. A write goes in as a job
 * and comes back through the job's own callback; the writer knows nothing of
 * who submitted it (workers, connections). More: docs/architecture.md.
 */
#ifndef WRITER_H
#define WRITER_H

#include <sys/queue.h>

#include "registry.h"

struct evbuffer;

/*
 * A write on its way to the writer and its answer on the way back. The
 * submitter allocates it (usually inside a struct of its own, reached again
 * through arg), fills req, who and done, and frees it after done.
 */
struct writer_job {
	TAILQ_ENTRY(writer_job) entry; /* the writer's, until done */
	Onecard__V1__Request *req; /* the write; freed by writer_job_clear */
	struct actor who;          /* who asked; cn outlives the job */
	struct evbuffer *out;      /* the reply frame, made by the writer; NULL:
				      none could be made, the write not applied */
	struct op_result res; /* res.code is OK only for a committed write */
	/*
	 * Called on the writer's thread once the job's batch is committed or
	 * has failed (every reply then UNAVAILABLE). The job is the
	 * submitter's again from this call on; it must not block.
	 */
	void (*done)(struct writer_job *job);
	void *arg; /* the submitter's */
};
TAILQ_HEAD(writer_jobq, writer_job);

/* writer.c */
int writer_start(const char *db, const struct registry_limits *lim);
void writer_submit(struct writer_job *job);
void writer_stop(void);
void writer_job_clear(struct writer_job *job);

#endif
