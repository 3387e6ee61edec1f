/*
 * registry_pgfeed.c: what other brokers commit to a shared PostgreSQL
 * registry, brought into this broker's change feed. A writer NOTIFYs
 * REGISTRY_PG_CHANNEL with its batch's last event number as it commits
 * (registry_pg.c); here a thread of its own LISTENs on a connection of its
 * own, and on each notification (and once a second, in case one was
 * missed while reconnecting) reads the events after the last it has seen,
 * in number order, and publishes them as changes: subscribers read on,
 * caches drop the patients changed, a revocation closes that hospital's
 * connections. The notification carries only a number; the events table
 * is the one source. This broker's own events come back too; those its
 * writer already published (registry_pgfeed_own) are passed over, so a
 * lookup cached just after a write is not dropped again for nothing. One
 * read before the writer noted them is published twice, without harm. While the
 * connection is down, each retry publishes "anything may have changed" (the
 * lookup caches empty themselves), so a cached lookup is never older than a
 * retry interval.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "log.h"
#include "registry.h"
#include "registry_backend.h"
#include "registry_int.h"

#define PGFEED_PAGE    1000 /* events read at once (the SQL says it too) */
#define PGFEED_POLL_MS 1000 /* read anyway this often */
#define PGFEED_RETRY_S 1    /* wait before connecting again */

/* The event ranges this broker's writer committed, not yet read back. */
#define PGFEED_OWN 64

static struct {
	pthread_mutex_t mu;
	uint64_t first[PGFEED_OWN], last[PGFEED_OWN];
	unsigned n;
} own = {.mu = PTHREAD_MUTEX_INITIALIZER};

void
registry_pgfeed_own(uint64_t first, uint64_t last)
{
	pthread_mutex_lock(&own.mu);
	if (own.n == PGFEED_OWN) { /* the feed is behind: forget the oldest */
		memmove(own.first, own.first + 1,
		    (PGFEED_OWN - 1) * sizeof(own.first[0]));
		memmove(own.last, own.last + 1,
		    (PGFEED_OWN - 1) * sizeof(own.last[0]));
		own.n--;
	}
	own.first[own.n] = first;
	own.last[own.n] = last;
	own.n++;
	pthread_mutex_unlock(&own.mu);
}

/* Is seq one of this broker's own, already published? Ranges before it
 * are done with (seq only grows). */
static int
pgfeed_is_own(uint64_t seq)
{
	unsigned i, k = 0;
	int mine = 0;

	pthread_mutex_lock(&own.mu);
	for (i = 0; i < own.n; i++) {
		if (own.last[i] < seq)
			continue; /* read past: dropped */
		if (own.first[i] <= seq)
			mine = 1;
		own.first[k] = own.first[i];
		own.last[k] = own.last[i];
		k++;
	}
	own.n = k;
	pthread_mutex_unlock(&own.mu);
	return mine;
}

static struct {
	pthread_t thread;
	int running;
	int pipe[2]; /* stop writes a byte */
	char *url;
	uint64_t seen; /* the last event published */
	int have_seen;
} pf = {.pipe = {-1, -1}};

/* The hospital code of a hospital_* event's detail ("code=XC001 ..."). */
static void
pgfeed_code(const char *detail, char *code, size_t len)
{
	const char *p = strstr(detail, "code=");
	size_t n;

	code[0] = '\0';
	if (p == NULL)
		return;
	p += 5;
	n = strcspn(p, " ");
	if (n >= len)
		n = len - 1;
	memcpy(code, p, n);
	code[n] = '\0';
}

/* The change feed's name for an event's op: one that outlives the row. */
static const char *
pgfeed_op(const char *op)
{
	static const char *const ops[] = {"enroll", "link", "unlink", "update",
	    "merge", "unmerge", "hospital_add", "hospital_revoke"};

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strcmp(op, ops[i]) == 0)
			return ops[i];
	return "change";
}

/*
 * Publish the events after pf.seen, a page at a time, until none is left.
 * 0, or -1 when the connection failed.
 */
/* The events after $1: prepared once a connection (pgfeed_connect), so
 * that each read is planned once, not at every batch of every broker. */
static const char pgfeed_sql[] =
    "SELECT seq, op, patient_id, other_patient_id, detail FROM events"
    " WHERE seq > $1 ORDER BY seq LIMIT 1000";

static int
pgfeed_read(PGconn *conn)
{
	struct registry_change *c;
	char after[24];
	const char *pv[1] = {after};
	PGresult *r;
	int n;

	if ((c = calloc(2 * PGFEED_PAGE, sizeof(*c))) == NULL) {
		registry_feed_publish(NULL, 0);
		return 0;
	}
	do {
		size_t k = 0;

		snprintf(after, sizeof(after), "%" PRIu64, pf.seen);
		r = PQexecPrepared(conn, "events", 1, pv, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			log_warnx("pg feed: %s",
			    PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
				? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
				: PQerrorMessage(conn));
			PQclear(r);
			free(c);
			return -1;
		}
		n = PQntuples(r);
		for (int i = 0; i < n; i++) {
			struct registry_change *x = &c[k];
			const char *op = PQgetvalue(r, i, 1);

			x->seq = strtoull(PQgetvalue(r, i, 0), NULL, 10);
			pf.seen = x->seq;
			if (pgfeed_is_own(x->seq))
				continue;
			k++;
			x->op = pgfeed_op(op);
			registry_copy(x->patient_id, PQgetvalue(r, i, 2),
			    sizeof(x->patient_id));
			if (strncmp(op, "hospital_", 9) == 0)
				pgfeed_code(PQgetvalue(r, i, 4), x->hospital,
				    sizeof(x->hospital));
			/* A merge changed the other patient too. */
			if (PQgetvalue(r, i, 3)[0] != '\0') {
				struct registry_change *y = &c[k++];

				*y = *x;
				registry_copy(y->patient_id,
				    PQgetvalue(r, i, 3), sizeof(y->patient_id));
			}
		}
		PQclear(r);
		if (k > 0)
			registry_feed_publish(c, k);
	} while (n == PGFEED_PAGE);
	free(c);
	return 0;
}

/* Connect and LISTEN; the first time, start from the last event now. */
static PGconn *
pgfeed_connect(void)
{
	PGconn *conn = PQconnectdb(pf.url);
	PGresult *r;

	if (PQstatus(conn) != CONNECTION_OK) {
		log_warnx("pg feed: %s", PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	r = PQexec(conn, "LISTEN " REGISTRY_PG_CHANNEL);
	if (PQresultStatus(r) == PGRES_COMMAND_OK) {
		PQclear(r);
		r = PQprepare(conn, "events", pgfeed_sql, 1, NULL);
	}
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		log_warnx("pg feed: LISTEN: %s", PQerrorMessage(conn));
		PQclear(r);
		PQfinish(conn);
		return NULL;
	}
	PQclear(r);
	if (!pf.have_seen) {
		r = PQexec(conn, "SELECT last FROM event_counter WHERE id = 0");
		if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
			log_warnx("pg feed: the event counter: %s",
			    PQerrorMessage(conn));
			PQclear(r);
			PQfinish(conn);
			return NULL;
		}
		pf.seen = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
		pf.have_seen = 1;
		PQclear(r);
	}
	return conn;
}

/* Wait for a notification, the poll interval or stop: 1 to read, 0 to
 * stop, -1 when the connection failed. */
static int
pgfeed_wait(PGconn *conn, int ms)
{
	struct pollfd pfd[2] = {
	    {PQsocket(conn), POLLIN, 0}, {pf.pipe[0], POLLIN, 0}};
	PGnotify *nt;
	int r = poll(pfd, 2, ms);

	if (r == -1 && errno != EINTR)
		return -1;
	if (pfd[1].revents != 0)
		return 0;
	if (pfd[0].revents != 0 && PQconsumeInput(conn) == 0) {
		log_warnx("pg feed: %s", PQerrorMessage(conn));
		return -1;
	}
	while ((nt = PQnotifies(conn)) != NULL)
		PQfreemem(nt);
	return 1;
}

static void *
pgfeed_thread(void *arg)
{
	PGconn *conn = NULL;
	int r;

	(void)arg;
	for (;;) {
		if (conn == NULL) {
			if ((conn = pgfeed_connect()) == NULL) {
				struct pollfd p = {pf.pipe[0], POLLIN, 0};

				/* Deaf to other brokers: every cached
				 * lookup goes, each retry, so none is
				 * older than that. */
				registry_feed_publish(NULL, 0);
				if (poll(&p, 1, PGFEED_RETRY_S * 1000) > 0)
					break;
				continue;
			}
			/* Whatever was committed while we were away. */
			if (pgfeed_read(conn) == -1)
				goto lost;
		}
		if ((r = pgfeed_wait(conn, PGFEED_POLL_MS)) == 0)
			break;
		if (r == 1 && pgfeed_read(conn) == 0)
			continue;
	lost:
		PQfinish(conn);
		conn = NULL;
	}
	PQfinish(conn);
	return NULL;
}

int
registry_remote_feed_start(const char *url, char *err, size_t errlen)
{
	sigset_t all, old;
	int rc;

	if (strncmp(url, "postgresql://", 13) != 0 &&
	    strncmp(url, "postgres://", 11) != 0)
		return 0;
	if ((pf.url = strdup(url)) == NULL || pipe(pf.pipe) == -1) {
		snprintf(err, errlen, "pg feed: %s", strerror(errno));
		return -1;
	}
	for (int i = 0; i < 2; i++)
		(void)fcntl(pf.pipe[i], F_SETFD, FD_CLOEXEC);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&pf.thread, NULL, pgfeed_thread, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "pg feed: %s", strerror(rc));
		return -1;
	}
	pf.running = 1;
	return 0;
}

void
registry_remote_feed_stop(void)
{
	if (pf.running) {
		if (write(pf.pipe[1], "x", 1) != 1)
			log_warn("pg feed: stop");
		pthread_join(pf.thread, NULL);
		pf.running = 0;
	}
	for (int i = 0; i < 2; i++)
		if (pf.pipe[i] != -1)
			close(pf.pipe[i]);
	pf.pipe[0] = pf.pipe[1] = -1;
	free(pf.url);
	pf.url = NULL;
	pf.have_seen = 0;
}
