/*
 * import.c: onecardctl import, bulk enrollment from CSV.
 *
 * Owns the pipeline that makes a million rows go in within a minute: several
 * connections, one thread each, every one keeping a window of Enroll requests
 * outstanding (replies come back in the order sent, so a ring of slots pairs
 * each reply with its row). The threads share one csv_reader under a lock.
 * Rows that share an identifier take effect in file order, as if the file
 * were imported on one connection: each identifier in flight is in a table
 * with its row's place in the file, and a row waits until the earlier rows on
 * other connections that name one of its identifiers are answered (on its
 * own connection the broker keeps the order).
 * Enroll is idempotent, so importing a file twice changes nothing: the second
 * run counts every row as "already there". A bad row, whether the CSV says so
 * or the broker does, is reported once here with its line number and copied
 * to the reject file; every other row still goes in.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "csv.h"
#include "ctl.h"

#define IMPORT_CONNECTIONS   4
#define IMPORT_DEPTH         128
#define IMPORT_MAX_CONNS     64
#define IMPORT_MAX_DEPTH     4096
#define IMPORT_MAX_INFLIGHT  32768 /* connections x depth; ~12 KiB a row */
#define IMPORT_REPORT_LIMIT  20    /* bad rows told on stderr; all go to file */
#define IMPORT_PROGRESS_NSEC 250000000L

/* An identifier of a row in flight, in the table of in-flight identifiers. */
struct import_node {
	uint64_t hash;
	unsigned long seq; /* the row's place in the file */
	int owner;         /* the worker sending it */
	struct import_node *next, **pprev;
};

/* One row on its way to the broker: kept until its reply is in. */
struct import_slot {
	unsigned long line;
	unsigned long seq;
	int registered; /* its nodes are in the in-flight table */
	struct import_node nodes[CSV_MAX_IDS];
	char *raw;
	size_t rawcap;
	struct csv_record rec;
	struct csv_row row;
	Onecard__V1__Request req;
	Onecard__V1__Enroll enroll;
	Onecard__V1__Demographics demo;
	Onecard__V1__Identifier ids[CSV_MAX_IDS];
	Onecard__V1__Identifier *idp[CSV_MAX_IDS];
};

struct import {
	const char *path;
	const char *reject_path;
	char reject_default[4096];
	int depth;

	pthread_mutex_t lock; /* reader, in-flight table, reject file, stderr */
	pthread_cond_t released; /* a row left the in-flight table */
	struct import_node **inflight;
	size_t inflight_mask;
	unsigned long seq;
	struct csv_reader rd;
	FILE *rejfp;
	unsigned long reported;

	atomic_ulong rows, created, existing, rejected;
	atomic_ullong offset;
	atomic_int failed; /* a connection broke: everyone stops */
	atomic_int running;
	off_t size;
};

struct import_worker {
	pthread_t tid;
	int index;
	struct import *im;
	struct onecard_conn *conn; /* connected before the thread starts */
	int rc;
};

static void
import_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: onecardctl import FILE.csv [--reject FILE] "
	    "[--connections C]\n"
	    "                         [--depth D]\n"
	    "Enroll every row of FILE.csv (docs/csv.md). Bad rows are reported "
	    "with\ntheir line numbers and written to the reject file "
	    "(default\nFILE.rejects.csv) with a reason column; the others go "
	    "in. "
	    "Running the\nsame file again changes nothing. C connections "
	    "(default %d) each keep\nD requests outstanding (default %d). "
	    "Exit 0 when every row went in,\n6 when some were rejected.\n",
	    IMPORT_CONNECTIONS, IMPORT_DEPTH);
}

static double
import_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Write a rejected row (as it was in the file) and why; caller holds lock. */
static void
import_reject_locked(struct import *im, unsigned long line, const char *raw,
    size_t rawlen, const char *reason)
{
	char why[512];

	atomic_fetch_add(&im->rejected, 1);
	if (im->reported < IMPORT_REPORT_LIMIT)
		fprintf(stderr, "%s%s:%lu: %s\n", isatty(2) ? "\r\033[K" : "",
		    im->path, line, reason);
	else if (im->reported == IMPORT_REPORT_LIMIT)
		fprintf(stderr, "%s%s: more bad rows; see %s\n",
		    isatty(2) ? "\r\033[K" : "", im->path, im->reject_path);
	im->reported++;
	if (im->rejfp == NULL) {
		if ((im->rejfp = fopen(im->reject_path, "w")) == NULL) {
			fprintf(stderr, "onecardctl import: %s: %s\n",
			    im->reject_path, strerror(errno));
			return;
		}
		fputs(CSV_HEADER ",reason\n", im->rejfp);
	}
	fwrite(raw, 1, rawlen, im->rejfp);
	putc(',', im->rejfp);
	snprintf(why, sizeof(why), "line %lu: %s", line, reason);
	csv_write_field(im->rejfp, why);
	putc('\n', im->rejfp);
}

static void
import_reject(struct import *im, struct import_slot *s, const char *reason)
{
	pthread_mutex_lock(&im->lock);
	import_reject_locked(im, s->line, s->raw, strlen(s->raw), reason);
	pthread_mutex_unlock(&im->lock);
}

/* Hash of an identifier; case is ignored (a false match only waits). */
static uint64_t
import_id_hash(const char *domain, const char *value)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	const char *p;

	for (p = domain; *p != '\0'; p++)
		h = (h ^ (unsigned char)tolower((unsigned char)*p)) *
		    0x100000001b3ULL;
	h = (h ^ '=') * 0x100000001b3ULL;
	for (p = value; *p != '\0'; p++)
		h = (h ^ (unsigned char)tolower((unsigned char)*p)) *
		    0x100000001b3ULL;
	return h ^ (h >> 29);
}

/* Put the identifiers of the row in s in the in-flight table; lock held. */
static void
import_register_locked(struct import *im, struct import_slot *s, int owner)
{
	struct import_node *n, **b;
	size_t i;

	s->seq = ++im->seq;
	for (i = 0; i < s->row.nids; i++) {
		n = &s->nodes[i];
		n->hash =
		    import_id_hash(s->row.ids[i].domain, s->row.ids[i].value);
		n->seq = s->seq;
		n->owner = owner;
		b = &im->inflight[n->hash & im->inflight_mask];
		n->next = *b;
		n->pprev = b;
		if (*b != NULL)
			(*b)->pprev = &n->next;
		*b = n;
	}
	s->registered = 1;
}

/* Does an earlier row on another connection share an identifier with s? */
static int
import_blocked_locked(struct import *im, struct import_slot *s, int owner)
{
	struct import_node *n;
	size_t i;

	for (i = 0; i < s->row.nids; i++)
		for (n = im->inflight[s->nodes[i].hash & im->inflight_mask];
		     n != NULL; n = n->next)
			if (n->hash == s->nodes[i].hash && n->owner != owner &&
			    n->seq < s->seq)
				return 1;
	return 0;
}

/* Take the row in s out of the in-flight table and wake the waiters. */
static void
import_release(struct import *im, struct import_slot *s)
{
	struct import_node *n;
	size_t i;

	if (!s->registered)
		return;
	pthread_mutex_lock(&im->lock);
	for (i = 0; i < s->row.nids; i++) {
		n = &s->nodes[i];
		*n->pprev = n->next;
		if (n->next != NULL)
			n->next->pprev = n->pprev;
	}
	s->registered = 0;
	pthread_cond_broadcast(&im->released);
	pthread_mutex_unlock(&im->lock);
}

/*
 * Read the next row into s. 1: s holds a row to send; 0: no more rows;
 * -1: a read error. Bad rows are rejected here and skipped.
 */
static int
import_next(struct import *im, struct import_slot *s, int owner)
{
	char err[256];
	const char *raw;
	size_t rawlen;
	int st;

	for (;;) {
		pthread_mutex_lock(&im->lock);
		st = csv_reader_next(&im->rd, &s->rec, &s->line, &raw, &rawlen,
		    err, sizeof(err));
		atomic_store(&im->offset, im->rd.off);
		if (st == CSV_RECORD || st == CSV_BAD) {
			atomic_fetch_add(&im->rows, 1);
			if (st == CSV_BAD)
				import_reject_locked(
				    im, s->line, raw, rawlen, err);
			else if (rawlen + 1 > s->rawcap) {
				free(s->raw);
				s->rawcap = rawlen + 1 < 256 ? 256 : rawlen + 1;
				if ((s->raw = malloc(s->rawcap)) == NULL)
					s->rawcap = 0;
			}
			if (st == CSV_RECORD && s->raw != NULL) {
				memcpy(s->raw, raw, rawlen);
				s->raw[rawlen] = '\0';
				if (csv_row_parse(&s->rec, &s->row, err,
					sizeof(err)) == -1) {
					import_reject_locked(
					    im, s->line, s->raw, rawlen, err);
					st = CSV_BAD;
				} else
					import_register_locked(im, s, owner);
			}
		}
		pthread_mutex_unlock(&im->lock);
		if (st == -1) {
			fprintf(stderr, "onecardctl import: %s: read error\n",
			    im->path);
			return -1;
		}
		if (st == CSV_END)
			return 0;
		if (st == CSV_BAD)
			continue;
		if (s->raw == NULL) {
			fprintf(stderr, "onecardctl import: out of memory\n");
			return -1;
		}
		return 1;
	}
}

/* Build the Enroll request for the row in s. */
static void
import_build(struct import_slot *s)
{
	struct csv_row *row = &s->row;
	size_t i;

	onecard__v1__request__init(&s->req);
	onecard__v1__enroll__init(&s->enroll);
	onecard__v1__demographics__init(&s->demo);
	s->demo.name = (char *)row->name;
	s->demo.birth_date = (char *)row->birth_date;
	s->demo.phone = (char *)row->phone;
	s->demo.address = (char *)row->address;
	if (row->sex[0] == 'M' || row->sex[0] == 'm')
		s->demo.sex = ONECARD__V1__SEX__SEX_MALE;
	else if (row->sex[0] == 'F' || row->sex[0] == 'f')
		s->demo.sex = ONECARD__V1__SEX__SEX_FEMALE;
	for (i = 0; i < row->nids; i++) {
		onecard__v1__identifier__init(&s->ids[i]);
		s->ids[i].domain = (char *)row->ids[i].domain;
		s->ids[i].value = (char *)row->ids[i].value;
		s->idp[i] = &s->ids[i];
	}
	s->enroll.demographics = &s->demo;
	s->enroll.n_identifiers = row->nids;
	s->enroll.identifiers = s->idp;
	s->req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
	s->req.enroll = &s->enroll;
}

/* Count the broker's answer for the row in s, or reject the row. */
static void
import_answer(
    struct import *im, struct import_slot *s, const Onecard__V1__Reply *r)
{
	char reason[512];

	if (r->code == ONECARD__V1__CODE__OK) {
		if (r->result_case == ONECARD__V1__REPLY__RESULT_ENROLLED &&
		    r->enrolled->created)
			atomic_fetch_add(&im->created, 1);
		else
			atomic_fetch_add(&im->existing, 1);
		return;
	}
	snprintf(reason, sizeof(reason), "%s: %s", ctl_code_name(r->code),
	    r->message != NULL && *r->message != '\0' ? r->message
						      : ctl_code_name(r->code));
	import_reject(im, s, reason);
}

/* A worker's ring of rows in flight on its connection. */
struct import_ring {
	struct import_slot *slots;
	size_t depth, head, count;
};

/* Receive the reply for the oldest row in flight; -1 (told) when the
 * connection broke or the broker refuses us. */
static int
import_receive(struct import_worker *w, struct import_ring *r)
{
	struct import_slot *s = &r->slots[r->head];
	Onecard__V1__Reply *reply;

	if (onecard_recv(w->conn, &reply) != ONECARD_OK) {
		fprintf(stderr, "onecardctl import: %s\n",
		    onecard_last_error(w->conn));
		return -1;
	}
	if (reply->id == 0 && reply->code != ONECARD__V1__CODE__OK) {
		/* Not an answer to a row: the broker refuses us. */
		w->rc = ctl_refused("import", reply->code, reply->message);
		onecard_reply_free(reply);
		return -1;
	}
	import_answer(w->im, s, reply);
	onecard_reply_free(reply);
	import_release(w->im, s);
	r->head = (r->head + 1) % r->depth;
	r->count--;
	return 0;
}

/*
 * Wait until no earlier row on another connection shares an identifier with
 * s, taking this connection's replies meanwhile. -1 when that failed or the
 * import is being given up.
 */
static int
import_wait(
    struct import_worker *w, struct import_ring *r, struct import_slot *s)
{
	struct import *im = w->im;
	int blocked;

	for (;;) {
		pthread_mutex_lock(&im->lock);
		while ((blocked = import_blocked_locked(im, s, w->index)) &&
		    r->count == 0 && !atomic_load(&im->failed))
			pthread_cond_wait(&im->released, &im->lock);
		pthread_mutex_unlock(&im->lock);
		if (!blocked)
			return 0;
		if (atomic_load(&im->failed) && r->count == 0)
			return -1;
		if (import_receive(w, r) == -1)
			return -1;
	}
}

/* One connection: keep depth requests outstanding until the file is done. */
static void *
import_worker_run(void *arg)
{
	struct import_worker *w = arg;
	struct import *im = w->im;
	struct import_ring r = {.depth = (size_t)im->depth};
	struct import_slot *s = NULL;
	size_t i;
	int done = 0, rc;

	w->rc = CTL_EXIT_CONNECT;
	if ((r.slots = calloc(r.depth, sizeof(*r.slots))) == NULL) {
		fprintf(stderr, "onecardctl import: out of memory\n");
		goto out;
	}
	for (;;) {
		while (
		    !done && r.count < r.depth && !atomic_load(&im->failed)) {
			s = &r.slots[(r.head + r.count) % r.depth];
			if ((rc = import_next(im, s, w->index)) == -1) {
				w->rc = CTL_EXIT_USAGE; /* the file, not the
							   broker */
				goto out;
			}
			if (rc == 0) {
				done = 1;
				break;
			}
			if (import_wait(w, &r, s) == -1)
				goto out;
			import_build(s);
			if (onecard_send(w->conn, &s->req) != ONECARD_OK) {
				fprintf(stderr, "onecardctl import: send: %s\n",
				    onecard_last_error(w->conn));
				goto out;
			}
			r.count++;
		}
		if (r.count == 0)
			break;
		if (import_receive(w, &r) == -1)
			goto out;
	}
	w->rc = CTL_EXIT_OK;
out:
	if (w->rc != CTL_EXIT_OK) {
		if (r.count > 0)
			fprintf(stderr,
			    "onecardctl import: %zu rows in flight are "
			    "unconfirmed; importing the file again is safe\n",
			    r.count);
		pthread_mutex_lock(&im->lock);
		atomic_store(&im->failed, 1);
		pthread_cond_broadcast(&im->released);
		pthread_mutex_unlock(&im->lock);
	}
	onecard_close(w->conn);
	w->conn = NULL;
	if (r.slots != NULL)
		for (i = 0; i < r.depth; i++) {
			import_release(im, &r.slots[i]);
			free(r.slots[i].raw);
		}
	free(r.slots);
	atomic_fetch_sub(&im->running, 1);
	return NULL;
}

/* Connect and ping, so a certificate the broker does not know is refused
 * before any row is read. */
static int
import_connect(struct onecard_conn **out)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Ping ping = ONECARD__V1__PING__INIT;
	Onecard__V1__Reply *reply = NULL;
	int rc;

	if ((rc = ctl_connect(out)) != CTL_EXIT_OK)
		return rc;
	req.op_case = ONECARD__V1__REQUEST__OP_PING;
	req.ping = &ping;
	if ((rc = onecard_call(*out, &req, &reply)) != ONECARD_OK) {
		fprintf(stderr, "onecardctl import: %s\n",
		    onecard_last_error(*out));
		rc = CTL_EXIT_CONNECT;
	} else if (reply->code != ONECARD__V1__CODE__OK) {
		rc = ctl_refused("import", reply->code, reply->message);
	} else
		rc = CTL_EXIT_OK;
	if (reply != NULL)
		onecard_reply_free(reply);
	if (rc != CTL_EXIT_OK) {
		onecard_close(*out);
		*out = NULL;
	}
	return rc;
}

/* Draw the progress bar on a terminal: share done, rate, time left. */
static void
import_progress(struct import *im, double start, int final)
{
	double el = import_now() - start, frac, rate, left;
	unsigned long rows = atomic_load(&im->rows);
	char bar[31];
	int i, n;

	frac = im->size > 0
	    ? (double)atomic_load(&im->offset) / (double)im->size
	    : 0;
	if (frac > 1)
		frac = 1;
	rate = el > 0 ? (double)rows / el : 0;
	left = frac > 0.001 ? el / frac - el : 0;
	n = (int)(frac * 30);
	for (i = 0; i < 30; i++)
		bar[i] = i < n ? '#' : '.';
	bar[30] = '\0';
	fprintf(stderr, "\r\033[K[%s] %3.0f%% %lu rows %.0f rows/s %s%02d:%02d",
	    bar, frac * 100, rows, rate, final ? "in " : "left ",
	    (int)(final ? el : left) / 60, (int)(final ? el : left) % 60);
	if (final)
		fputc('\n', stderr);
}

/* Check the header line; -1 (told) when it is not ours. */
static int
import_header(struct import *im)
{
	static const char *const names[CSV_NFIELDS] = {
	    "name", "sex", "birth_date", "phone", "address", "identifiers"};
	struct csv_record *rec;
	unsigned long line;
	char err[256];
	const char *f;
	int st, ok = 1;
	size_t i;

	if ((rec = malloc(sizeof(*rec))) == NULL)
		return -1;
	st = csv_reader_next(&im->rd, rec, &line, NULL, NULL, err, sizeof(err));
	if (st != CSV_RECORD || rec->nfields != CSV_NFIELDS)
		ok = 0;
	for (i = 0; ok && i < CSV_NFIELDS; i++) {
		f = rec->field[i];
		if (i == 0 && strncmp(f, "\xef\xbb\xbf", 3) == 0)
			f += 3; /* a byte order mark */
		if (strcasecmp(f, names[i]) != 0)
			ok = 0;
	}
	free(rec);
	if (!ok) {
		fprintf(stderr,
		    "onecardctl import: %s:1: expected the header line "
		    "\"" CSV_HEADER "\"\n",
		    im->path);
		return -1;
	}
	return 0;
}

int
ctl_import(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"reject", required_argument, NULL, 'r'},
	    {"connections", required_argument, NULL, 'c'},
	    {"depth", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	struct import im;
	struct import_worker *w = NULL;
	struct timespec tick = {0, IMPORT_PROGRESS_NSEC};
	struct stat sb;
	FILE *fp = NULL;
	double start, el;
	long v;
	char *end;
	int ch, i, conns = IMPORT_CONNECTIONS, rc = CTL_EXIT_OK, tty;

	memset(&im, 0, sizeof(im));
	im.depth = IMPORT_DEPTH;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			im.reject_path = optarg;
			break;
		case 'c':
		case 'd':
			v = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || v < 1 ||
			    v > (ch == 'c' ? IMPORT_MAX_CONNS
					   : IMPORT_MAX_DEPTH)) {
				fprintf(stderr,
				    "onecardctl import: --%s: \"%s\" is not "
				    "1..%d\n",
				    ch == 'c' ? "connections" : "depth", optarg,
				    ch == 'c' ? IMPORT_MAX_CONNS
					      : IMPORT_MAX_DEPTH);
				return CTL_EXIT_USAGE;
			}
			if (ch == 'c')
				conns = (int)v;
			else
				im.depth = (int)v;
			break;
		case 'h':
			import_usage(stdout);
			return CTL_EXIT_OK;
		default:
			import_usage(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc) {
		import_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if ((long)conns * im.depth > IMPORT_MAX_INFLIGHT) {
		fprintf(stderr,
		    "onecardctl import: --connections x --depth may be at most "
		    "%d\n",
		    IMPORT_MAX_INFLIGHT);
		return CTL_EXIT_USAGE;
	}
	im.path = argv[optind];
	if (im.reject_path == NULL) {
		snprintf(im.reject_default, sizeof(im.reject_default),
		    "%.*s.rejects.csv",
		    (int)(strlen(im.path) > 4 &&
				strcmp(im.path + strlen(im.path) - 4, ".csv") ==
				    0
			    ? strlen(im.path) - 4
			    : strlen(im.path)),
		    im.path);
		im.reject_path = im.reject_default;
	}
	if ((fp = fopen(im.path, "r")) == NULL) {
		fprintf(stderr, "onecardctl import: %s: %s\n", im.path,
		    strerror(errno));
		return CTL_EXIT_USAGE;
	}
	if (fstat(fileno(fp), &sb) == 0 && S_ISREG(sb.st_mode))
		im.size = sb.st_size;
	if (csv_reader_init(&im.rd, fp) == -1 ||
	    (w = calloc((size_t)conns, sizeof(*w))) == NULL) {
		fprintf(stderr, "onecardctl import: out of memory\n");
		rc = CTL_EXIT_USAGE;
		goto done;
	}
	if (import_header(&im) == -1) {
		rc = CTL_EXIT_USAGE;
		goto done;
	}
	/* Connect first, so a broker that refuses us is told once. */
	for (i = 0; i < conns; i++)
		if ((rc = import_connect(&w[i].conn)) != CTL_EXIT_OK) {
			while (i-- > 0)
				onecard_close(w[i].conn);
			goto done;
		}
	/* Buckets for every identifier that can be in flight at once. */
	for (im.inflight_mask = 1023;
	     im.inflight_mask < (size_t)conns * (size_t)im.depth * 4;
	     im.inflight_mask = im.inflight_mask * 2 + 1)
		;
	if ((im.inflight = calloc(
		 im.inflight_mask + 1, sizeof(*im.inflight))) == NULL) {
		fprintf(stderr, "onecardctl import: out of memory\n");
		for (i = 0; i < conns; i++)
			onecard_close(w[i].conn);
		rc = CTL_EXIT_USAGE;
		goto done;
	}
	pthread_mutex_init(&im.lock, NULL);
	pthread_cond_init(&im.released, NULL);
	tty = isatty(2);
	start = import_now();
	atomic_store(&im.running, conns);
	for (i = 0; i < conns; i++) {
		w[i].im = &im;
		w[i].index = i;
		if (pthread_create(&w[i].tid, NULL, import_worker_run, &w[i]) !=
		    0) {
			fprintf(stderr,
			    "onecardctl import: cannot start a "
			    "thread\n");
			atomic_store(&im.failed, 1);
			atomic_fetch_sub(&im.running, conns - i);
			for (ch = i; ch < conns; ch++)
				onecard_close(w[ch].conn);
			conns = i;
			rc = CTL_EXIT_CONNECT;
			break;
		}
	}
	while (atomic_load(&im.running) > 0) {
		nanosleep(&tick, NULL);
		if (tty)
			import_progress(&im, start, 0);
	}
	for (i = 0; i < conns; i++) {
		pthread_join(w[i].tid, NULL);
		if (w[i].rc > rc)
			rc = w[i].rc;
	}
	if (tty)
		import_progress(&im, start, 1);
	pthread_mutex_destroy(&im.lock);
	pthread_cond_destroy(&im.released);
	el = import_now() - start;
	if (ctl_g.json)
		printf(
		    "{\"rows\":%lu,\"created\":%lu,\"existing\":%lu,"
		    "\"rejected\":%lu,\"seconds\":%.3f,\"rows_per_s\":%.0f}\n",
		    atomic_load(&im.rows), atomic_load(&im.created),
		    atomic_load(&im.existing), atomic_load(&im.rejected), el,
		    el > 0 ? (double)atomic_load(&im.rows) / el : 0);
	else
		printf("rows %lu, created %lu, already there %lu, rejected "
		       "%lu, %.1f s, %.0f rows/s\n",
		    atomic_load(&im.rows), atomic_load(&im.created),
		    atomic_load(&im.existing), atomic_load(&im.rejected), el,
		    el > 0 ? (double)atomic_load(&im.rows) / el : 0);
	if (atomic_load(&im.rejected) > 0) {
		fprintf(stderr,
		    "onecardctl import: %lu rows rejected; see %s\n",
		    atomic_load(&im.rejected), im.reject_path);
		if (rc == CTL_EXIT_OK)
			rc = CTL_EXIT_PARTIAL;
	}
done:
	if (im.rejfp != NULL && fclose(im.rejfp) != 0) {
		fprintf(stderr, "onecardctl import: %s: %s\n", im.reject_path,
		    strerror(errno));
		if (rc == CTL_EXIT_OK || rc == CTL_EXIT_PARTIAL)
			rc = CTL_EXIT_USAGE;
	}
	csv_reader_free(&im.rd);
	free(im.inflight);
	free(w);
	fclose(fp);
	return rc;
}
