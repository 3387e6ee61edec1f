/*
 * notify-bench.c: the notification benchmark's client (bench/notify.sh).
 *
 * Opens --subscribers connections that each subscribe, and --writers
 * connections that enroll new patients at --rate in all (0: as fast as
 * they go), for --duration seconds; prints one JSON object. Each writer
 * notes when each enrollment was acknowledged, each subscriber when each
 * event reached it; the latency of an event is from its acknowledgement to
 * its arrival at the last subscriber. With --backlog one subscriber reads
 * every event from seq 0 and the rate it catches up at is reported; with
 * --idle the subscribers only hold their subscriptions open (to weigh
 * them).
 *
 * The broker, certificate, key and CA come from ONECARD_BROKER,
 * ONECARD_CERT, ONECARD_KEY and ONECARD_CA, as for the CLIs.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "onecard.h"
#include "wire.h"

#define PID_MAX 48

static struct {
	int subscribers, writers, backlog, idle, raw;
	double rate, duration;
	struct onecard_options opt;
	atomic_int stop, quit, subscribed; /* writers stop; subscribers quit */
	/* The last event when the first subscriber joined. */
	atomic_uint_fast64_t base, base_set;
	/* Per event (seq - base): who it was for, when it last arrived. */
	size_t cap;
	char (*pid)[PID_MAX];
	atomic_int *got;
	atomic_uint_fast64_t *last_ns;
	atomic_uint_fast64_t events, subscriber_errors;
} nb;

/* What one writer had acknowledged, and when. */
struct ack {
	char pid[PID_MAX];
	uint64_t ns;
};

struct writer {
	pthread_t th;
	int t;
	struct ack *acks;
	size_t n, cap;
	uint64_t errors;
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct onecard_conn *
nb_connect(void)
{
	struct onecard_conn *c = NULL;
	char err[512];

	if (onecard_connect(&nb.opt, &c, err, sizeof(err)) != ONECARD_OK) {
		fprintf(stderr, "notify-bench: %s\n", err);
		exit(4);
	}
	return c;
}

/* Subscribe on c from seq (from_now when seq is UINT64_MAX); the last
 * event then. */
static uint64_t
nb_subscribe(struct onecard_conn *c, uint64_t seq)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Subscribe s = ONECARD__V1__SUBSCRIBE__INIT;
	Onecard__V1__Reply *r = NULL;
	uint64_t last;

	s.from_now = seq == UINT64_MAX;
	s.from_seq = seq == UINT64_MAX ? 0 : seq;
	req.id = 1;
	req.op_case = ONECARD__V1__REQUEST__OP_SUBSCRIBE;
	req.subscribe = &s;
	if (onecard_call(c, &req, &r) != ONECARD_OK || r->code != 0 ||
	    r->event == NULL) {
		fprintf(stderr, "notify-bench: subscribe: %s\n",
		    r && r->message ? r->message : onecard_last_error(c));
		exit(5);
	}
	last = r->event->seq;
	onecard_reply_free(r);
	return last;
}

static void *
subscriber_main(void *arg)
{
	struct onecard_conn *c = nb_connect();
	Onecard__V1__Reply *r;
	uint64_t last;

	(void)arg;
	last = nb_subscribe(c, UINT64_MAX);
	/* The first to join sets the base; the writers wait for them all. */
	{
		uint_fast64_t zero = 0;
		if (atomic_compare_exchange_strong(&nb.base_set, &zero, 1))
			atomic_store(&nb.base, last);
	}
	atomic_fetch_add(&nb.subscribed, 1);
	while (!atomic_load(&nb.quit)) {
		r = NULL;
		if (onecard_recv(c, &r) != ONECARD_OK) {
			if (!atomic_load(&nb.quit))
				atomic_fetch_add(&nb.subscriber_errors, 1);
			break;
		}
		uint64_t base = atomic_load(&nb.base);

		if (r->id == 0 && r->event != NULL && r->event->seq > base &&
		    r->event->seq - base <= nb.cap) {
			size_t i = r->event->seq - base - 1;
			uint64_t t = now_ns(), cur;

			if (atomic_fetch_add(&nb.got[i], 1) == 0)
				snprintf(nb.pid[i], PID_MAX, "%s",
				    r->event->patient_id);
			cur = atomic_load(&nb.last_ns[i]);
			while (cur < t &&
			    !atomic_compare_exchange_weak(
				&nb.last_ns[i], &cur, t))
				;
			atomic_fetch_add(&nb.events, 1);
		}
		onecard_reply_free(r);
	}
	onecard_close(c);
	return NULL;
}

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	struct onecard_conn *c = nb_connect();
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Enroll e = ONECARD__V1__ENROLL__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT, *ids[1];
	Onecard__V1__Reply *r;
	char value[64];
	double gap = nb.rate > 0 ? nb.writers * 1e9 / nb.rate : 0;
	uint64_t next = now_ns();

	id.domain = "hosp:BENCH";
	id.value = value;
	ids[0] = &id;
	e.identifiers = ids;
	e.n_identifiers = 1;
	req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
	req.enroll = &e;
	for (uint64_t i = 0; !atomic_load(&nb.stop); i++) {
		if (gap > 0) {
			uint64_t t = now_ns();

			if (t < next) {
				struct timespec ts = {0, (long)(next - t)};
				nanosleep(&ts, NULL);
			}
			next += (uint64_t)gap;
		}
		snprintf(value, sizeof(value), "nb%d-%d-%" PRIu64, getpid(),
		    w->t, i);
		req.id = i + 1;
		r = NULL;
		if (onecard_call(c, &req, &r) != ONECARD_OK || r->code != 0 ||
		    r->enrolled == NULL || r->enrolled->patient == NULL) {
			w->errors++;
			onecard_reply_free(r);
			if (onecard_last_error(c)[0] != '\0')
				break;
			continue;
		}
		if (w->n == w->cap) {
			w->cap = w->cap ? w->cap * 2 : 4096;
			if ((w->acks = realloc(
				 w->acks, w->cap * sizeof(*w->acks))) == NULL)
				abort();
		}
		snprintf(w->acks[w->n].pid, PID_MAX, "%s",
		    r->enrolled->patient->patient_id);
		w->acks[w->n++].ns = now_ns();
		onecard_reply_free(r);
	}
	onecard_close(c);
	return NULL;
}

/*
 * --raw: a subscriber that decrypts what it is sent and counts the bytes,
 * decoding nothing, so the benchmark's own CPU goes on the broker's side
 * (a hospital's integration engine runs on its own machine).
 */
static void *
raw_subscriber_main(void *arg)
{
	const char *broker = getenv("ONECARD_BROKER");
	char host[256], *port, buf[65536];
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Subscribe sub = ONECARD__V1__SUBSCRIBE__INIT;
	uint8_t frame[64];
	size_t len;
	SSL_CTX *ctx = arg;
	SSL *ssl;
	int fd, n;

	snprintf(host, sizeof(host), "%s", broker ? broker : "127.0.0.1:7443");
	if ((port = strrchr(host, ':')) == NULL)
		exit(2);
	*port++ = '\0';
	if (getaddrinfo(host, port, &hints, &ai) != 0 ||
	    (fd = socket(ai->ai_family, SOCK_STREAM, 0)) == -1 ||
	    connect(fd, ai->ai_addr, ai->ai_addrlen) == -1) {
		perror("notify-bench: connect");
		exit(4);
	}
	freeaddrinfo(ai);
	if ((ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, fd) != 1 ||
	    SSL_connect(ssl) != 1) {
		ERR_print_errors_fp(stderr);
		exit(4);
	}
	sub.from_now = 1;
	req.id = 1;
	req.op_case = ONECARD__V1__REQUEST__OP_SUBSCRIBE;
	req.subscribe = &sub;
	len = wire_encode(&req.base, frame, sizeof(frame));
	if (len == 0 || SSL_write(ssl, frame, (int)len) != (int)len)
		exit(4);
	atomic_fetch_add(&nb.subscribed, 1);
	while (
	    !atomic_load(&nb.quit) && (n = SSL_read(ssl, buf, sizeof(buf))) > 0)
		atomic_fetch_add(&nb.events, (uint64_t)n); /* bytes, here */
	return NULL;
}

static SSL_CTX *
raw_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL ||
	    SSL_CTX_use_certificate_chain_file(ctx, getenv("ONECARD_CERT")) !=
		1 ||
	    SSL_CTX_use_PrivateKey_file(
		ctx, getenv("ONECARD_KEY"), SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, getenv("ONECARD_CA"), NULL) !=
		1) {
		ERR_print_errors_fp(stderr);
		exit(2);
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* FNV-1a of a patient id, for the acknowledgement table. */
static size_t
pid_hash(const char *s)
{
	uint64_t h = 14695981039346656037ull;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return (size_t)h;
}

/* Catch up from seq 0 with one subscriber: events and seconds. */
static int
run_backlog(void)
{
	struct onecard_conn *c = nb_connect();
	Onecard__V1__Reply *r;
	uint64_t last, seq = 0, n = 0, t0;
	double secs;

	t0 = now_ns();
	last = nb_subscribe(c, 0);
	while (seq < last) {
		r = NULL;
		if (onecard_recv(c, &r) != ONECARD_OK) {
			fprintf(stderr, "notify-bench: %s\n",
			    onecard_last_error(c));
			return 4;
		}
		if (r->id == 0 && r->event != NULL) {
			seq = r->event->seq;
			n++;
		}
		onecard_reply_free(r);
	}
	secs = (double)(now_ns() - t0) / 1e9;
	printf("{\"backlog_events\":%" PRIu64 ",\"last_seq\":%" PRIu64
	       ",\"seconds\":%.3f,\"events_per_s\":%.0f}\n",
	    n, last, secs, (double)n / secs);
	onecard_close(c);
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: notify-bench [--subscribers N] [--writers N] "
	    "[--rate PER_S] [--duration S] [--backlog] [--idle]\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"subscribers", required_argument, NULL, 's'},
	    {"writers", required_argument, NULL, 'w'},
	    {"rate", required_argument, NULL, 'r'},
	    {"duration", required_argument, NULL, 'd'},
	    {"backlog", no_argument, NULL, 'b'},
	    {"idle", no_argument, NULL, 'i'},
	    {"raw", no_argument, NULL, 'R'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	pthread_t *subs;
	struct writer *wr;
	uint64_t *lat, acked = 0, complete = 0, missing = 0, werr = 0;
	size_t nlat = 0, tcap;
	struct ack **tab;
	int ch;

	nb.subscribers = 100;
	nb.writers = 8;
	nb.rate = 5000;
	nb.duration = 10;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			nb.subscribers = atoi(optarg);
			break;
		case 'w':
			nb.writers = atoi(optarg);
			break;
		case 'r':
			nb.rate = atof(optarg);
			break;
		case 'd':
			nb.duration = atof(optarg);
			break;
		case 'b':
			nb.backlog = 1;
			break;
		case 'i':
			nb.idle = 1;
			break;
		case 'R':
			nb.raw = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	onecard_options_from_env(&nb.opt);
	nb.opt.call_timeout_ms = 600000;
	if (nb.backlog)
		return run_backlog();
	if (nb.idle)
		nb.writers = 0;
	nb.cap = nb.rate > 0 ? (size_t)(nb.rate * (nb.duration + 5) * 2)
			     : (size_t)(200000 * (nb.duration + 5));
	if ((nb.pid = calloc(nb.cap, PID_MAX)) == NULL ||
	    (nb.got = calloc(nb.cap, sizeof(*nb.got))) == NULL ||
	    (nb.last_ns = calloc(nb.cap, sizeof(*nb.last_ns))) == NULL ||
	    (subs = calloc((size_t)nb.subscribers + 1, sizeof(*subs))) ==
		NULL ||
	    (wr = calloc((size_t)nb.writers + 1, sizeof(*wr))) == NULL)
		abort();
	if (nb.raw) {
		SSL_CTX *ctx = raw_ctx();

		for (int i = 0; i < nb.subscribers; i++)
			pthread_create(
			    &subs[i], NULL, raw_subscriber_main, ctx);
	} else
		for (int i = 0; i < nb.subscribers; i++)
			pthread_create(&subs[i], NULL, subscriber_main, NULL);
	while (atomic_load(&nb.subscribed) < nb.subscribers)
		usleep(1000);
	fprintf(stderr, "notify-bench: %d subscribers\n", nb.subscribers);
	for (int i = 0; i < nb.writers; i++) {
		wr[i].t = i;
		pthread_create(&wr[i].th, NULL, writer_main, &wr[i]);
	}
	usleep((useconds_t)(nb.duration * 1e6));
	/* Writers stop; subscribers get a moment to take the last events. */
	atomic_store(&nb.stop, 1);
	for (int i = 0; i < nb.writers; i++) {
		pthread_join(wr[i].th, NULL);
		acked += wr[i].n;
		werr += wr[i].errors;
	}
	if (nb.idle || nb.raw) {
		printf("{\"subscribers\":%d,\"bytes\":%" PRIu64 "}\n",
		    nb.subscribers, (uint64_t)atomic_load(&nb.events));
		fflush(stdout);
		_exit(0);
	}
	for (int i = 0; i < 200; i++) {
		uint64_t want = acked * (uint64_t)nb.subscribers;

		if (atomic_load(&nb.events) >= want)
			break;
		usleep(50000);
	}
	atomic_store(&nb.quit, 1);
	/* Acknowledgements by patient id; then each event's latency. */
	tcap = 1;
	while (tcap < acked * 2 + 2)
		tcap <<= 1;
	if ((tab = calloc(tcap, sizeof(*tab))) == NULL ||
	    (lat = calloc(nb.cap + 1, sizeof(*lat))) == NULL)
		abort();
	for (int i = 0; i < nb.writers; i++)
		for (size_t k = 0; k < wr[i].n; k++) {
			size_t h = pid_hash(wr[i].acks[k].pid) & (tcap - 1);
			while (tab[h] != NULL)
				h = (h + 1) & (tcap - 1);
			tab[h] = &wr[i].acks[k];
		}
	for (size_t i = 0; i < nb.cap; i++) {
		struct ack *a = NULL;
		size_t h;

		if (atomic_load(&nb.got[i]) == 0)
			continue;
		for (h = pid_hash(nb.pid[i]) & (tcap - 1); tab[h] != NULL;
		     h = (h + 1) & (tcap - 1))
			if (strcmp(tab[h]->pid, nb.pid[i]) == 0) {
				a = tab[h];
				break;
			}
		if (a == NULL)
			continue;
		if (atomic_load(&nb.got[i]) < nb.subscribers) {
			missing++;
			continue;
		}
		complete++;
		lat[nlat++] = atomic_load(&nb.last_ns[i]) > a->ns
		    ? atomic_load(&nb.last_ns[i]) - a->ns
		    : 0;
	}
	qsort(lat, nlat, sizeof(*lat), cmp_u64);
#define Q(q) (nlat ? (double)lat[(size_t)((nlat - 1) * (q))] / 1e6 : 0.0)
	printf("{\"subscribers\":%d,\"writers\":%d,\"seconds\":%.1f,"
	       "\"writes\":%" PRIu64 ",\"writes_per_s\":%.0f,"
	       "\"write_errors\":%" PRIu64 ",\"events_complete\":%" PRIu64
	       ",\"events_missing\":%" PRIu64 ",\"subscriber_errors\":%" PRIu64
	       ",\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
	    nb.subscribers, nb.writers, nb.duration, acked,
	    (double)acked / nb.duration, werr, complete, missing,
	    (uint64_t)atomic_load(&nb.subscriber_errors), Q(0.5), Q(0.99),
	    nlat ? (double)lat[nlat - 1] / 1e6 : 0.0);
	fflush(stdout);
	/* Subscribers may sit in a read: leave without joining them. */
	_exit(missing > 0 ? 1 : 0);
}
