/*
 * bench.h: what the files of onecard-bench share.
 *
 * bench.c owns the command line, the phases (connect, populate, run) seen
 * from the main thread, the progress line and the final report; load.c owns
 * the worker threads, each an event_base with its share of the connections
 * and the requests they keep outstanding; hist.c is the latency histogram;
 * keys.c makes the synthetic identities and picks keys (uniform or zipf).
 */
#ifndef ONECARD_BENCH_H
#define ONECARD_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "onecard.h"

/* hist.c */
/*
 * A log-bucketed latency histogram in nanoseconds (HdrHistogram-like): 128
 * linear sub-buckets per power of two, so any value is kept to within 1%.
 */
#define HIST_SUB_BITS 7
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_BUCKETS  ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
	uint64_t count;
	uint64_t max;
	uint64_t min;
	uint64_t b[HIST_BUCKETS];
};

void hist_reset(struct hist *h);
void hist_record(struct hist *h, uint64_t ns);
void hist_merge(struct hist *dst, const struct hist *src);
/* The value at or below which q (0..1) of the recorded values lie. */
uint64_t hist_quantile(const struct hist *h, double q);

/* keys.c */
#define KEYS_CNID_LEN 18
#define KEYS_NAME_MAX 64 /* bytes of a name kept, with its NUL */

/* Streams of cn-ids: each gets its own region code, so none overlap. */
enum keys_stream {
	KEYS_POPULATION, /* patients --populate made; tag is the seed */
	KEYS_WRITES,     /* new patients of a write run; tag is its nonce */
};

/* The k-th cn-id of a stream (valid check character, a real birth date,
 * the sex in the 17th digit's parity) into out[19]. */
void keys_cnid(enum keys_stream s, uint64_t tag, uint64_t k, char *out);
/* Birth date "YYYY-MM-DD" (out[11]) and sex (1 male, 2 female) of the k-th
 * cn-id, as the number says. */
void keys_birth(uint64_t k, char *out, int *sex);
/* A deterministic synthetic name for patient k into out. */
void keys_name(uint64_t k, char *out, size_t len);
/* The largest k a stream holds. */
uint64_t keys_capacity(void);

uint64_t keys_rand(uint64_t *state);
/* Uniform in [0, 1). */
double keys_rand01(uint64_t *state);

/* Zipf over [0, n) (Gray et al., as YCSB), ranks scrambled over the keys. */
struct zipf {
	uint64_t n;
	double theta, alpha, zetan, eta, half_pow;
};
void zipf_init(struct zipf *z, uint64_t n, double theta);
uint64_t zipf_next(const struct zipf *z, uint64_t *state);

/* cn-ids read from a file (`onecardctl gen` CSV, or one cn-id=VALUE a
 * line): the first cn-id of each line; lines without one are skipped. */
struct keyfile {
	char (*value)[KEYS_CNID_LEN + 1];
	/* From an `onecardct gen` CSV (its header names the columns): each
	 * line's name and birth date, for --op search; NULL otherwise. */
	char (*name)[KEYS_NAME_MAX];
	char (*birth)[11];
	size_t n;
};
int keyfile_load(const char *path, struct keyfile *kf);
void keyfile_free(struct keyfile *kf);

/* load.c */
enum bench_op {
	OP_LOOKUP,
	OP_ENROLL,
	OP_LINK,
	OP_PING,
	OP_IDLE,
	OP_SEARCH,
	OP_MIXED,
};

enum bench_phase {
	PHASE_CONNECT,
	PHASE_POPULATE,
	PHASE_PAUSE, /* populated; statistics are reset before the run */
	PHASE_RUN,
	PHASE_STOP,
};

#define BENCH_NCODES 17 /* Reply.code is below this */

/* What one thread counted; merged by the main thread. */
struct bench_stats {
	uint64_t done;    /* replies received */
	uint64_t errors;  /* requests lost with their connection */
	uint64_t not_ok;  /* replies other than OK */
	uint64_t created; /* enrollments that made a new patient */
	uint64_t codes[BENCH_NCODES];
	uint64_t by_op[OP_MIXED]; /* replies per kind of request */
	struct hist hist;
};

struct bench_thread;

struct bench {
	/* options */
	struct onecard_options opt;
	int conns, depth, threads;
	double duration;   /* seconds; 0 when requests is set */
	double rate;       /* requests/s of the run, all threads; 0: no cap */
	uint64_t requests; /* total; 0 when duration is set */
	enum bench_op op;
	unsigned mix[OP_MIXED]; /* weights, for OP_MIXED */
	unsigned mix_total;
	uint64_t keys;
	int zipf;
	int populate, assume_populated;
	uint64_t seed;
	uint64_t nonce; /* tags this run's new identifiers */
	char hospital[64];
	struct keyfile keyfile; /* --keys-from */
	struct zipf zipf_dist;
	int connect_window; /* connects in flight per thread */
	int json, quiet;
	int failover; /* --failover: connect a lost connection again */
	const char
	    *acked; /* --acked FILE: the cn-ids of acknowledged enrolls */

	/* shared state */
	_Atomic int phase;
	_Atomic uint64_t deadline_ns; /* of the run, monotonic */
	_Atomic uint64_t issued;      /* requests issued in the run (-n) */
	_Atomic uint64_t pop_next;    /* next population key to enroll */
	_Atomic uint64_t write_next;  /* next new-patient key */
	atomic_int connected, connect_failed, threads_idle, conns_lost;
	atomic_int errors_told;
	/* --failover: connections connected again, and the time from a
	 * connection's loss to its first answer after (sum and longest). */
	atomic_int reconnected;
	_Atomic uint64_t gap_sum_ns, gap_max_ns;
	_Atomic uint64_t reconnect_max_ns; /* loss to connected again */
	/* --acked: the write keys (keys_cnid(KEYS_WRITES, nonce, k)) of the
	 * enrollments answered OK in the run, gathered by load_join. */
	uint64_t *acked_keys;
	size_t n_acked;

	/* Requests encoded once with id 0 (load.c): libonecard adds the id,
	 * a lookup gets its cn-id copied in at lookup_key_at. */
	uint8_t ping_req[16], lookup_req[64];
	size_t ping_len, lookup_len, lookup_key_at;

	struct bench_thread **t;
};

/* Start the threads; each connects its share. 0 or -1. */
int load_start(struct bench *b);
/* Merge what the threads have published so far (each under its lock); the
 * time from the phase's first start to its last end (or now) into *ns. */
void load_snapshot(struct bench *b, struct bench_stats *sum, uint64_t *ns);
/* Stop, wait for every thread and free them; the merged final counts. */
void load_join(struct bench *b, struct bench_stats *sum, uint64_t *ns);
/* Now, CLOCK_MONOTONIC, in nanoseconds. */
uint64_t load_now(void);
/* Name of a bench_op. */
const char *load_op_name(enum bench_op op);

#endif
