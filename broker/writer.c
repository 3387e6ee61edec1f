/*
 * writer.c: the group-commit writer, where a write is made durable. One
 * thread owns the registry's write handle. Submitters queue writes (a decoded
 * request and who asked); the writer takes everything queued at once,
 * applies it in one transaction (each write under its own savepoint, inside
 * the registry), syncs once, and hands each job back through its own done
 * callback. A write is thus answered OK only after it is on disk, and a
 * burst of writes costs one sync, not one each. If the commit fails, every
 * write of the batch is answered UNAVAILABLE. It knows nothing of workers or
 * connections, and never touches one. More: docs/architecture.md.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "log.h"
#include "metrics.h"
#include "wire.h"
#include "writer.h"

static pthread_t writer_thread;
static pthread_mutex_t writer_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t writer_cond = PTHREAD_COND_INITIALIZER;
static struct writer_jobq writer_queue = TAILQ_HEAD_INITIALIZER(writer_queue);
static int writer_stopping; /* under writer_lock */
static int writer_running;
static struct registry *writer_reg;

/* Free what a job holds (its request and reply), not the job itself. */
void
writer_job_clear(struct writer_job *job)
{
	if (job->req != NULL)
		wire_request_free(job->req);
	if (job->out != NULL)
		evbuffer_free(job->out);
	job->req = NULL;
	job->out = NULL;
}

/* Microseconds on the monotonic clock. */
static uint64_t
writer_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Queue a write; the job is the writer's until it is done. Any thread. */
void
writer_submit(struct writer_job *job)
{
	pthread_mutex_lock(&writer_lock);
	TAILQ_INSERT_TAIL(&writer_queue, job, entry);
	pthread_cond_signal(&writer_cond);
	pthread_mutex_unlock(&writer_lock);
}

/* Replace every reply of the batch with UNAVAILABLE: nothing was kept. */
static void
writer_fail_batch(struct writer_jobq *batch)
{
	struct writer_job *job;

	TAILQ_FOREACH(job, batch, entry) {
		if (job->out == NULL)
			continue; /* answered UNAVAILABLE by the worker */
		evbuffer_drain(job->out, evbuffer_get_length(job->out));
		memset(&job->res, 0, sizeof(job->res));
		job->res.code = ONECARD__V1__CODE__UNAVAILABLE;
		wire_append_error(job->out, job->req->id, job->res.code,
		    "registry: write not committed; retry");
	}
}

/* Let the registry read at once what the batch's writes will ask. */
static void
writer_hint(struct writer_jobq *batch)
{
	const Onecard__V1__Request **reqs;
	struct writer_job *job;
	size_t n = 0;

	TAILQ_FOREACH(job, batch, entry)
		n++;
	if ((reqs = malloc(n * sizeof(*reqs))) == NULL)
		return;
	n = 0;
	TAILQ_FOREACH(job, batch, entry)
		reqs[n++] = job->req;
	registry_batch_hint(writer_reg, reqs, n);
	free(reqs);
}

/* Apply a batch in one transaction, then hand each job back. */
static void
writer_apply(struct writer_jobq *batch)
{
	struct writer_job *job;
	uint64_t t0 = writer_now_us();
	size_t n = 0;
	int ok;

	ok = registry_batch_begin(writer_reg) == 0;
	if (ok)
		writer_hint(batch);
	TAILQ_FOREACH(job, batch, entry) {
		n++;
		if ((job->out = evbuffer_new()) == NULL) {
			/* Not applied; the worker answers UNAVAILABLE. */
			job->res.code = ONECARD__V1__CODE__UNAVAILABLE;
			continue;
		}
		if (ok)
			registry_write(writer_reg, &job->who, job->req,
			    job->out, &job->res);
	}
	if (ok && registry_batch_commit(writer_reg) == -1) {
		registry_batch_rollback(writer_reg);
		ok = 0;
	}
	if (!ok) {
		log_warnx("writer: batch of %zu not committed, answering "
			  "UNAVAILABLE",
		    n);
		writer_fail_batch(batch);
	}
	metrics_commit(n, writer_now_us() - t0);
	log_debug("writer: batch=%zu committed=%d us=%llu", n, ok,
	    (unsigned long long)(writer_now_us() - t0));
	while ((job = TAILQ_FIRST(batch)) != NULL) {
		TAILQ_REMOVE(batch, job, entry);
		job->done(job);
	}
	/* After the replies: a registry that doubled learns its model
	 * again (rarely: log2 of its growth times). */
	if (ok)
		(void)registry_match_relearn(writer_reg);
}

/* The writer thread: wait for writes, apply them in batches. */
static void *
writer_main(void *arg)
{
	struct writer_jobq batch;

	for (;;) {
		TAILQ_INIT(&batch);
		pthread_mutex_lock(&writer_lock);
		while (TAILQ_EMPTY(&writer_queue) && !writer_stopping)
			pthread_cond_wait(&writer_cond, &writer_lock);
		if (TAILQ_EMPTY(&writer_queue)) {
			pthread_mutex_unlock(&writer_lock);
			break;
		}
		TAILQ_CONCAT(&batch, &writer_queue, entry);
		pthread_mutex_unlock(&writer_lock);
		writer_apply(&batch);
	}
	return NULL;
}

/* Open the write handle (creating the schema) and start the thread. */
int
writer_start(const char *db, const struct registry_limits *lim)
{
	char err[256], safe[512];
	sigset_t all, old;
	int rc;

	writer_reg = registry_open(db, 1, lim, err, sizeof(err));
	if (writer_reg == NULL) {
		registry_url_safe(db, safe, sizeof(safe));
		log_warnx("registry %s: %s", safe, err);
		return -1;
	}
	/* The match model, before the first write (a second at most). */
	(void)registry_match_learn(writer_reg, NULL);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&writer_thread, NULL, writer_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		log_warnx("cannot start the writer thread");
		return -1;
	}
	writer_running = 1;
	return 0;
}

/* Commit and answer everything still queued, then stop the thread. */
void
writer_stop(void)
{
	if (writer_running) {
		pthread_mutex_lock(&writer_lock);
		writer_stopping = 1;
		pthread_cond_signal(&writer_cond);
		pthread_mutex_unlock(&writer_lock);
		pthread_join(writer_thread, NULL);
		writer_running = 0;
	}
	if (writer_reg != NULL) {
		registry_close(writer_reg);
		writer_reg = NULL;
	}
}
