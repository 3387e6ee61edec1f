/*
 * bench.c: onecard-bench, the load generator for onecardd.
 *
 * Owns the command line, the run's phases as the main thread drives them
 * (connect every connection, optionally enroll a synthetic population, then
 * the measured run), the progress line on stderr once a second and the final
 * report (text, or --json with flat keys for scripts; tls_contexts,
 * tls_handshakes and tls_resumed say how libonecard's shared TLS context
 * and session resumption served the connections). The load itself is made
 * by the threads of load.c. It prints no patient data, only counts,
 * rates and latencies.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "bench.h"
#include "cli_common.h"
#include "wire.h"

#ifndef ONECARD_VERSION
#define ONECARD_VERSION "dev"
#endif

#define BENCH_POLL_NS 10000000ULL /* the main thread looks every 10 ms */
#define BENCH_SEC     1000000000ULL

static volatile sig_atomic_t bench_interrupted;
static int bench_stopping; /* interrupted: finish what is in flight, stop */

static void
bench_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: onecard-bench [--broker HOST:PORT] [--cert FILE] [--key "
	    "FILE] [--ca FILE]\n"
	    "         [-c CONNS] [-P DEPTH] [-d SECONDS | -n REQUESTS] "
	    "[--threads N]\n"
	    "         [--op lookup|enroll|link|search|ping|idle|mixed] [--mix "
	    "lookup=90,enroll=8,link=2]\n"
	    "         [--keys N] [--dist uniform|zipf] [--populate | "
	    "--assume-populated]\n"
	    "         [--seed S] [--keys-from FILE] [--hospital CODE] "
	    "[--connect-window N]\n"
	    "         [--rate R] [--timeout SECONDS] [--failover] [--acked "
	    "FILE]\n"
	    "         [--json] [--quiet]\n"
	    "       onecard-bench --help | --version\n"
	    "\n"
	    "Keep CONNS connections (default 50) over N threads (default 1), "
	    "each with\n"
	    "DEPTH requests outstanding (default 1), for SECONDS (default 10) "
	    "or until\n"
	    "REQUESTS replies. lookup and link pick among N keys (default "
	    "10000) of a\n"
	    "population that --populate enrolls first (seed S, default 1) or "
	    "that an\n"
	    "earlier --populate made (--assume-populated --seed S), or among "
	    "the cn-ids\n"
	    "of --keys-from FILE (onecardctl gen CSV). enroll makes new "
	    "patients (a\n"
	    "cn-id and a hosp:CODE visit card each, CODE from --hospital or "
	    "the\n"
	    "certificate's CN). search is a ranked search by a picked "
	    "patient's name\n"
	    "and birth date (from the --keys-from CSV's columns). idle holds "
	    "the\n"
	    "connections open, one ping each, for SECONDS. --rate caps the "
	    "run at R\n"
	    "requests a second (a request waits for its turn before it is "
	    "sent; its\n"
	    "latency starts when it is sent), to compare latencies at the "
	    "same load.\n"
	    "--failover connects a lost connection again (--broker A,B "
	    "gives the\n"
	    "brokers to try) and reports how long clients were without "
	    "answers;\n"
	    "--acked FILE writes the cn-id of every enrollment answered OK, "
	    "to check\n"
	    "afterwards that none was lost.\n"
	    "A progress line goes to stderr each second; the report to "
	    "stdout.\n");
}

/* Parse a whole unsigned number in [min, max]; -1 if s is not one. */
static int
bench_number(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;

	errno = 0;
	if (*s < '0' || *s > '9')
		return -1;
	*out = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || *out < min || *out > max)
		return -1;
	return 0;
}

/* The op a name means; -1 if none. */
static int
bench_op_parse(const char *s)
{
	for (int op = OP_LOOKUP; op <= OP_MIXED; op++)
		if (strcmp(s, load_op_name(op)) == 0)
			return op;
	return -1;
}

/* Parse "lookup=90,enroll=8,link=2" into b->mix. 0 or -1. */
static int
bench_mix_parse(struct bench *b, const char *s)
{
	char buf[256], *tok, *save = NULL, *eq;
	uint64_t w;
	int op;

	snprintf(buf, sizeof buf, "%s", s);
	memset(b->mix, 0, sizeof b->mix);
	b->mix_total = 0;
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		if ((eq = strchr(tok, '=')) == NULL)
			return -1;
		*eq = '\0';
		op = bench_op_parse(tok);
		if (op < 0 || op == OP_MIXED || op == OP_IDLE ||
		    bench_number(eq + 1, 0, 1000000, &w) == -1)
			return -1;
		b->mix[op] = (unsigned)w;
		b->mix_total += (unsigned)w;
	}
	return b->mix_total > 0 ? 0 : -1;
}

/* The subject CN of the certificate in path into out. 0 or -1. */
static int
bench_cert_cn(const char *path, char *out, size_t len)
{
	FILE *fp;
	X509 *x;
	int n = -1;

	if (path == NULL || (fp = fopen(path, "r")) == NULL)
		return -1;
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	if (x == NULL)
		return -1;
	n = X509_NAME_get_text_by_NID(
	    X509_get_subject_name(x), NID_commonName, out, (int)len);
	X509_free(x);
	return n > 0 ? 0 : -1;
}

/* A number that tags this run's new identifiers. */
static uint64_t
bench_nonce(void)
{
	uint64_t v = 0;
	int fd;

	if ((fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)) != -1) {
		if (read(fd, &v, sizeof v) != (ssize_t)sizeof v)
			v = 0;
		close(fd);
	}
	if (v == 0)
		v = (uint64_t)time(NULL) * 1000003ULL ^ (uint64_t)getpid();
	return v;
}

static void
bench_sigint(int sig)
{
	bench_interrupted = 1;
}

/* Sleep the poll interval. */
static void
bench_nap(void)
{
	struct timespec ts = {0, (long)BENCH_POLL_NS};

	nanosleep(&ts, NULL);
}

/* Nanoseconds as milliseconds. */
static double
bench_ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

/* Wait until every thread is done with the phase, with a progress line each
 * second (run and populate) on stderr. */
static void
bench_wait(struct bench *b, const char *what)
{
	struct bench_stats *s;
	uint64_t last = load_now(), prev_done = 0, ns, now;
	int told_open = 0;

	if ((s = malloc(sizeof *s)) == NULL)
		return;
	while (atomic_load(&b->threads_idle) < b->threads) {
		bench_nap();
		if (bench_interrupted) {
			bench_interrupted = 0;
			bench_stopping = 1;
			/* Stop issuing; what is in flight still comes back. */
			atomic_store(&b->deadline_ns, load_now());
			atomic_store(&b->issued, UINT64_MAX / 2);
			atomic_store(&b->pop_next, UINT64_MAX / 2);
			if (atomic_load(&b->phase) == PHASE_CONNECT)
				break; /* load_join closes what is connecting */
		}
		now = load_now();
		if (now - last < BENCH_SEC)
			continue;
		if (b->quiet)
			continue;
		if (atomic_load(&b->phase) == PHASE_CONNECT) {
			fprintf(stderr,
			    "onecard-bench: connecting: %d of %d up, %d "
			    "failed\n",
			    atomic_load(&b->connected), b->conns,
			    atomic_load(&b->connect_failed));
			last = now;
			continue;
		}
		if (b->op == OP_IDLE && atomic_load(&b->phase) == PHASE_RUN) {
			if (!told_open)
				fprintf(stderr,
				    "onecard-bench: holding %d connections "
				    "open\n",
				    atomic_load(&b->connected) -
					atomic_load(&b->conns_lost));
			told_open = 1;
			last = now;
			continue;
		}
		load_snapshot(b, s, &ns);
		fprintf(stderr,
		    "onecard-bench: %s %5.0fs %10.0f req/s  p99 %8.3f ms  "
		    "errors %" PRIu64 "  total %" PRIu64 "\n",
		    what, (double)ns / 1e9,
		    (double)(s->done - prev_done) * 1e9 / (double)(now - last),
		    bench_ms(hist_quantile(&s->hist, 0.99)),
		    s->errors + s->not_ok, s->done);
		prev_done = s->done;
		last = now;
	}
	free(s);
}

/* The report as text. */
static void
bench_report_text(struct bench *b, const struct bench_stats *s, uint64_t ns,
    const struct bench_stats *pop, uint64_t pop_ns)
{
	double secs = (double)ns / 1e9;

	if (pop != NULL)
		printf("populate: %" PRIu64 " enrollments (%" PRIu64
		       " new) in %.2f s, %.0f/s, %" PRIu64 " failed\n",
		    pop->done, pop->created, (double)pop_ns / 1e9,
		    pop_ns > 0 ? (double)pop->done * 1e9 / (double)pop_ns : 0,
		    pop->not_ok + pop->errors);
	printf("op %s, %d connections (%d up), depth %d, %d threads, "
	       "%.2f s\n",
	    load_op_name(b->op), b->conns, atomic_load(&b->connected), b->depth,
	    b->threads, secs);
	printf("requests  %" PRIu64 " answered, %" PRIu64
	       " lost with their connection\n",
	    s->done, s->errors);
	printf("codes    ");
	for (int i = 0; i < BENCH_NCODES; i++)
		if (s->codes[i] > 0)
			printf(" %s %" PRIu64, wire_code_name(i), s->codes[i]);
	printf("\n");
	if (s->created > 0)
		printf("created   %" PRIu64 " new patients\n", s->created);
	printf(
	    "throughput %.1f req/s\n", secs > 0 ? (double)s->done / secs : 0.0);
	printf("latency ms p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max "
	       "%.3f\n",
	    bench_ms(hist_quantile(&s->hist, 0.50)),
	    bench_ms(hist_quantile(&s->hist, 0.90)),
	    bench_ms(hist_quantile(&s->hist, 0.99)),
	    bench_ms(hist_quantile(&s->hist, 0.999)), bench_ms(s->hist.max));
	if (b->failover) {
		int n = atomic_load(&b->reconnected);

		printf("failover  %d connections lost, %d connected again "
		       "(%.1f ms at most); without answers %.1f ms on average, "
		       "%.1f ms at most\n",
		    atomic_load(&b->conns_lost), n,
		    (double)atomic_load(&b->reconnect_max_ns) / 1e6,
		    n > 0 ? (double)atomic_load(&b->gap_sum_ns) / n / 1e6 : 0,
		    (double)atomic_load(&b->gap_max_ns) / 1e6);
	}
	if (b->acked != NULL)
		printf("acked     %zu enrollments answered OK (in %s)\n",
		    b->n_acked, b->acked);
}

/* The report as one flat JSON object. */
static void
bench_report_json(struct bench *b, const struct bench_stats *s, uint64_t ns,
    const struct bench_stats *pop, uint64_t pop_ns)
{
	struct onecard_tls_stats tls;
	double secs = (double)ns / 1e9;
	int first = 1;

	printf("{\"op\":\"%s\",\"connections\":%d,\"connected\":%d,"
	       "\"connect_failed\":%d,\"depth\":%d,\"threads\":%d,"
	       "\"keys\":%" PRIu64 ",\"dist\":\"%s\",\"seconds\":%.3f,",
	    load_op_name(b->op), b->conns, atomic_load(&b->connected),
	    atomic_load(&b->connect_failed), b->depth, b->threads,
	    b->keyfile.n > 0 ? (uint64_t)b->keyfile.n : b->keys,
	    b->zipf ? "zipf" : "uniform", secs);
	printf("\"requests\":%" PRIu64 ",\"errors\":%" PRIu64
	       ",\"not_ok\":%" PRIu64 ",\"created\":%" PRIu64 ",",
	    s->done, s->errors, s->not_ok, s->created);
	printf("\"codes\":{");
	for (int i = 0; i < BENCH_NCODES; i++) {
		if (s->codes[i] == 0)
			continue;
		printf("%s\"%s\":%" PRIu64, first ? "" : ",", wire_code_name(i),
		    s->codes[i]);
		first = 0;
	}
	printf("},\"throughput\":%.1f,", secs > 0 ? (double)s->done / secs : 0);
	printf("\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
	       "\"p999_ms\":%.3f,\"max_ms\":%.3f",
	    bench_ms(hist_quantile(&s->hist, 0.50)),
	    bench_ms(hist_quantile(&s->hist, 0.90)),
	    bench_ms(hist_quantile(&s->hist, 0.99)),
	    bench_ms(hist_quantile(&s->hist, 0.999)), bench_ms(s->hist.max));
	if (b->failover)
		printf(",\"conns_lost\":%d,\"reconnected\":%d,"
		       "\"reconnect_max_ms\":%.1f,\"failover_gap_max_ms\":%.1f",
		    atomic_load(&b->conns_lost), atomic_load(&b->reconnected),
		    (double)atomic_load(&b->reconnect_max_ns) / 1e6,
		    (double)atomic_load(&b->gap_max_ns) / 1e6);
	if (b->acked != NULL)
		printf(",\"acked\":%zu", b->n_acked);
	onecard_tls_stats(&tls);
	printf(",\"tls_contexts\":%" PRIu64 ",\"tls_handshakes\":%" PRIu64
	       ",\"tls_resumed\":%" PRIu64,
	    tls.contexts, tls.handshakes, tls.resumed);
	if (pop != NULL)
		printf(",\"populate_requests\":%" PRIu64
		       ",\"populate_created\":%" PRIu64
		       ",\"populate_failed\":%" PRIu64
		       ",\"populate_seconds\":%.3f,\"populate_rate\":%.1f",
		    pop->done, pop->created, pop->not_ok + pop->errors,
		    (double)pop_ns / 1e9,
		    pop_ns > 0 ? (double)pop->done * 1e9 / (double)pop_ns : 0);
	printf("}\n");
}

/* --acked: one cn-id a line, of each enrollment answered OK. 0 or -1. */
static int
bench_write_acked(struct bench *b)
{
	char cnid[KEYS_CNID_LEN + 1];
	FILE *f = fopen(b->acked, "w");

	if (f == NULL) {
		fprintf(stderr, "onecard-bench: --acked %s: %s\n", b->acked,
		    strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < b->n_acked; i++) {
		keys_cnid(KEYS_WRITES, b->nonce, b->acked_keys[i], cnid);
		fprintf(f, "%s\n", cnid);
	}
	if (fclose(f) == EOF) {
		fprintf(stderr, "onecard-bench: --acked %s: %s\n", b->acked,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* Parse the command line into b. 0, or the exit code. */
static int
bench_options(struct bench *b, int argc, char **argv)
{
	enum {
		O_BROKER = 256,
		O_CERT,
		O_KEY,
		O_CA,
		O_OP,
		O_MIX,
		O_KEYS,
		O_DIST,
		O_POPULATE,
		O_ASSUME,
		O_SEED,
		O_KEYS_FROM,
		O_HOSPITAL,
		O_WINDOW,
		O_TIMEOUT,
		O_JSON,
		O_QUIET,
		O_THREADS,
		O_RATE,
		O_VERSION,
		O_FAILOVER,
		O_ACKED,
	};
	static const struct option longopts[] = {
	    {"broker", required_argument, NULL, O_BROKER},
	    {"cert", required_argument, NULL, O_CERT},
	    {"key", required_argument, NULL, O_KEY},
	    {"ca", required_argument, NULL, O_CA},
	    {"connections", required_argument, NULL, 'c'},
	    {"pipeline", required_argument, NULL, 'P'},
	    {"duration", required_argument, NULL, 'd'},
	    {"requests", required_argument, NULL, 'n'},
	    {"threads", required_argument, NULL, O_THREADS},
	    {"op", required_argument, NULL, O_OP},
	    {"mix", required_argument, NULL, O_MIX},
	    {"keys", required_argument, NULL, O_KEYS},
	    {"dist", required_argument, NULL, O_DIST},
	    {"populate", no_argument, NULL, O_POPULATE},
	    {"assume-populated", no_argument, NULL, O_ASSUME},
	    {"seed", required_argument, NULL, O_SEED},
	    {"keys-from", required_argument, NULL, O_KEYS_FROM},
	    {"hospital", required_argument, NULL, O_HOSPITAL},
	    {"connect-window", required_argument, NULL, O_WINDOW},
	    {"timeout", required_argument, NULL, O_TIMEOUT},
	    {"rate", required_argument, NULL, O_RATE},
	    {"failover", no_argument, NULL, O_FAILOVER},
	    {"acked", required_argument, NULL, O_ACKED},
	    {"json", no_argument, NULL, O_JSON},
	    {"quiet", no_argument, NULL, O_QUIET},
	    {"version", no_argument, NULL, O_VERSION},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	const char *keys_from = NULL, *bad = NULL;
	uint64_t v;
	char *end;
	int ch, op;

	while (
	    (ch = getopt_long(argc, argv, "c:P:d:n:h", longopts, NULL)) != -1) {
		switch (ch) {
		case O_BROKER:
			b->opt.broker = optarg;
			break;
		case O_CERT:
			b->opt.cert = optarg;
			break;
		case O_KEY:
			b->opt.key = optarg;
			break;
		case O_CA:
			b->opt.ca = optarg;
			break;
		case 'c':
			if (bench_number(optarg, 1, 1000000, &v) == -1)
				bad = "-c";
			b->conns = (int)v;
			break;
		case 'P':
			if (bench_number(optarg, 1, 65536, &v) == -1)
				bad = "-P";
			b->depth = (int)v;
			break;
		case 'd':
			errno = 0;
			b->duration = strtod(optarg, &end);
			if (errno != 0 || *end != '\0' || !(b->duration > 0) ||
			    b->duration > 1e6)
				bad = "-d";
			b->requests = 0;
			break;
		case 'n':
			if (bench_number(optarg, 1, UINT64_MAX / 4, &v) == -1)
				bad = "-n";
			b->requests = v;
			break;
		case O_THREADS:
			if (bench_number(optarg, 1, 256, &v) == -1)
				bad = "--threads";
			b->threads = (int)v;
			break;
		case O_OP:
			if ((op = bench_op_parse(optarg)) < 0)
				bad = "--op";
			b->op = op;
			break;
		case O_MIX:
			if (bench_mix_parse(b, optarg) == -1)
				bad = "--mix";
			break;
		case O_KEYS:
			if (bench_number(optarg, 1, keys_capacity(), &v) == -1)
				bad = "--keys";
			b->keys = v;
			break;
		case O_DIST:
			if (strcmp(optarg, "zipf") == 0)
				b->zipf = 1;
			else if (strcmp(optarg, "uniform") == 0)
				b->zipf = 0;
			else
				bad = "--dist";
			break;
		case O_POPULATE:
			b->populate = 1;
			break;
		case O_ASSUME:
			b->assume_populated = 1;
			break;
		case O_SEED:
			if (bench_number(optarg, 0, UINT64_MAX, &v) == -1)
				bad = "--seed";
			b->seed = v;
			break;
		case O_KEYS_FROM:
			keys_from = optarg;
			break;
		case O_HOSPITAL:
			snprintf(b->hospital, sizeof b->hospital, "%s", optarg);
			break;
		case O_WINDOW:
			if (bench_number(optarg, 1, 100000, &v) == -1)
				bad = "--connect-window";
			b->connect_window = (int)v;
			break;
		case O_TIMEOUT:
			if (bench_number(optarg, 1, 86400, &v) == -1)
				bad = "--timeout";
			b->opt.call_timeout_ms = (int)v * 1000;
			break;
		case O_RATE:
			errno = 0;
			b->rate = strtod(optarg, &end);
			if (errno != 0 || *end != '\0' || !(b->rate >= 1) ||
			    b->rate > 1e9)
				bad = "--rate";
			break;
		case O_FAILOVER:
			b->failover = 1;
			break;
		case O_ACKED:
			b->acked = optarg;
			break;
		case O_JSON:
			b->json = 1;
			break;
		case O_QUIET:
			b->quiet = 1;
			break;
		case 'h':
			bench_usage(stdout);
			exit(CLI_EXIT_OK);
		case O_VERSION:
			printf("onecard-bench %s\n", ONECARD_VERSION);
			exit(CLI_EXIT_OK);
		default:
			bench_usage(stderr);
			return CLI_EXIT_USAGE;
		}
		if (bad != NULL) {
			fprintf(stderr, "onecard-bench: bad value for %s: %s\n",
			    bad, optarg);
			return 2;
		}
	}
	if (optind != argc) {
		bench_usage(stderr);
		return 2;
	}
	if (b->requests > 0)
		b->duration = 0;
	if (b->op == OP_MIXED && b->mix_total == 0)
		bench_mix_parse(b, "lookup=90,enroll=8,link=2");
	if (b->populate && b->assume_populated) {
		fprintf(stderr,
		    "onecard-bench: --populate or "
		    "--assume-populated, not both\n");
		return 2;
	}
	if (keys_from != NULL) {
		if (keyfile_load(keys_from, &b->keyfile) == -1)
			return CLI_EXIT_USAGE;
		if (b->populate) {
			fprintf(stderr,
			    "onecard-bench: --keys-from names an "
			    "existing population: no --populate\n");
			return 2;
		}
	}
	if ((b->op == OP_LOOKUP || b->op == OP_LINK || b->op == OP_SEARCH ||
		(b->op == OP_MIXED &&
		    (b->mix[OP_LOOKUP] > 0 || b->mix[OP_LINK] > 0 ||
			b->mix[OP_SEARCH] > 0))) &&
	    !b->populate && !b->assume_populated && b->keyfile.n == 0) {
		fprintf(stderr,
		    "onecard-bench: --op %s needs a population: --populate, "
		    "--assume-populated or --keys-from\n",
		    load_op_name(b->op));
		return 2;
	}
	onecard_options_from_env(&b->opt);
	if (b->hospital[0] == '\0' &&
	    bench_cert_cn(b->opt.cert, b->hospital, sizeof b->hospital) == -1)
		b->hospital[0] = '\0';
	if ((b->op == OP_LINK || (b->op == OP_MIXED && b->mix[OP_LINK] > 0)) &&
	    b->hospital[0] == '\0') {
		fprintf(stderr,
		    "onecard-bench: link needs --hospital CODE "
		    "(the certificate's CN was not found)\n");
		return 2;
	}
	if (b->zipf)
		zipf_init(&b->zipf_dist,
		    b->keyfile.n > 0 ? (uint64_t)b->keyfile.n : b->keys, 0.99);
	return 0;
}

int
main(int argc, char **argv)
{
	static struct bench bench;
	struct bench *b = &bench;
	struct bench_stats *pop = NULL, *run = NULL;
	uint64_t pop_ns = 0, run_ns = 0;
	struct sigaction sa;
	int rc;

	b->conns = 50;
	b->depth = 1;
	b->threads = 1;
	b->duration = 10;
	b->op = OP_LOOKUP;
	b->keys = 10000;
	b->seed = 1;
	b->connect_window = 64;
	b->nonce = bench_nonce();
	if ((rc = bench_options(b, argc, argv)) != 0)
		return rc;
	if (b->threads > b->conns)
		b->threads = b->conns;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = bench_sigint;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	if ((pop = malloc(sizeof *pop)) == NULL ||
	    (run = malloc(sizeof *run)) == NULL) {
		fprintf(stderr, "onecard-bench: out of memory\n");
		return 1;
	}
	atomic_store(&b->phase, PHASE_CONNECT);
	if (load_start(b) == -1) {
		fprintf(stderr, "onecard-bench: cannot start threads\n");
		return 1;
	}
	bench_wait(b, "connect");
	if (bench_stopping) {
		fprintf(stderr, "onecard-bench: interrupted\n");
		load_join(b, run, &run_ns);
		rc = 130;
		goto out;
	}
	if (atomic_load(&b->connected) == 0) {
		fprintf(stderr, "onecard-bench: no connection came up\n");
		load_join(b, run, &run_ns);
		rc = CLI_EXIT_CONNECT;
		goto out;
	}
	if (!b->quiet)
		fprintf(stderr, "onecard-bench: %d connections open\n",
		    atomic_load(&b->connected));

	if (b->populate) {
		atomic_store(&b->threads_idle, 0);
		atomic_store(&b->phase, PHASE_POPULATE);
		bench_wait(b, "populate");
		load_snapshot(b, pop, &pop_ns);
		atomic_store(&b->phase, PHASE_PAUSE);
		if (!b->quiet)
			fprintf(stderr,
			    "onecard-bench: populated %" PRIu64
			    " patients in %.2f s\n",
			    pop->done, (double)pop_ns / 1e9);
	}

	if (bench_stopping) {
		fprintf(stderr, "onecard-bench: interrupted\n");
		load_join(b, run, &run_ns);
		rc = 130;
		goto out;
	}
	atomic_store(&b->threads_idle, 0);
	atomic_store(&b->deadline_ns,
	    b->duration > 0 ? load_now() + (uint64_t)(b->duration * 1e9)
			    : UINT64_MAX);
	atomic_store(&b->phase, PHASE_RUN);
	bench_wait(b, b->op == OP_MIXED ? "run" : load_op_name(b->op));
	load_join(b, run, &run_ns);
	if (b->acked != NULL && bench_write_acked(b) == -1)
		rc = CLI_EXIT_USAGE;

	if (b->json)
		bench_report_json(
		    b, run, run_ns, b->populate ? pop : NULL, pop_ns);
	else
		bench_report_text(
		    b, run, run_ns, b->populate ? pop : NULL, pop_ns);
	fflush(stdout);
	/* The exit-code table of docs/cli.md: a connection that failed or
	 * was lost is a transport error (4); an error reply, a broker one. */
	if (rc == CLI_EXIT_USAGE)
		; /* --acked could not be written */
	else if (b->failover &&
	    atomic_load(&b->reconnected) >= atomic_load(&b->conns_lost) &&
	    atomic_load(&b->connect_failed) == 0)
		/* Losses were the point: every one was connected again. */
		rc = b->populate && pop->not_ok > 0 ? CLI_EXIT_BROKER
						    : CLI_EXIT_OK;
	else if (run->errors > 0 || atomic_load(&b->connect_failed) > 0 ||
	    atomic_load(&b->conns_lost) > 0 || (b->populate && pop->errors > 0))
		rc = CLI_EXIT_CONNECT;
	else if (b->populate && pop->not_ok > 0)
		rc = CLI_EXIT_BROKER;
	else
		rc = CLI_EXIT_OK;
out:
	free(b->acked_keys);
	keyfile_free(&b->keyfile);
	free(pop);
	free(run);
	return rc;
}
