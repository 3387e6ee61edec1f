/*
 * ratelimit-bench.c: what a rate-limit take costs (broker/ratelimit.c),
 * the figure behind its choice of one shared atomic bucket per hospital.
 *
 *   cc -O2 -pthread -Ibroker bench/ratelimit-bench.c -o /tmp/rl-bench
 *   /tmp/rl-bench [THREADS]
 *
 * Each of THREADS threads (default 2) takes 10 million times from a bucket
 * whose rate never refuses, the way a worker takes on every lookup: first
 * one unlimited kind (the default: one load), then each thread its own
 * hospital's bucket (no sharing), then all threads the same hospital's
 * (the worst case: one hospital's connections on every worker). Prints ns
 * per take for each.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ratelimit.c"

#define TAKES 10000000

static struct ratelimit_peer *peer[64], *shared;
static int mode; /* 0 unlimited, 1 own bucket, 2 shared bucket */

/* Monotonic ns. */
static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* One thread's takes. */
static void *
run(void *arg)
{
	int i = (int)(intptr_t)arg;
	struct ratelimit_peer *p = mode == 2 ? shared : peer[i];
	int kind = mode == 0 ? RATELIMIT_SEARCH : RATELIMIT_LOOKUP;
	uint64_t retry, t = now_ns();
	uint32_t rate, burst;
	long refused = 0;

	for (long n = 0; n < TAKES; n++)
		refused += ratelimit_take(p, kind, t + (uint64_t)n * 64000,
			       &retry, &rate, &burst) != 0;
	if (refused != 0)
		fprintf(stderr, "refused %ld\n", refused);
	return NULL;
}

int
main(int argc, char **argv)
{
	static const char *const names[] = {"unlimited", "own", "shared"};
	int threads = argc > 1 ? atoi(argv[1]) : 2;
	struct ratelimit_conf c = {0};
	pthread_t th[64];
	char cn[16], err[128];

	if (threads < 1 || threads > 64)
		return 2;
	/* A limited kind, so takes go through the compare-and-swap. */
	ratelimit_conf_set(&c, NULL, RATELIMIT_LOOKUP, "1000000/1000000", "x",
	    err, sizeof err);
	ratelimit_apply(&c);
	for (int i = 0; i < threads; i++) {
		snprintf(cn, sizeof cn, "H%d", i);
		peer[i] = ratelimit_peer(cn, 0);
	}
	shared = ratelimit_peer("SHARED", 0);
	/* Past what a key may set: 1e9/s and a burst of 2^40 s, so threads
	 * whose clocks drift apart are never refused either. */
	for (int i = 0; i < threads; i++) {
		peer[i]->b[RATELIMIT_LOOKUP].interval = 1;
		peer[i]->b[RATELIMIT_LOOKUP].limit = 1ULL << 60;
	}
	shared->b[RATELIMIT_LOOKUP].interval = 1;
	shared->b[RATELIMIT_LOOKUP].limit = 1ULL << 60;
	for (mode = 0; mode < 3; mode++) {
		uint64_t t0 = now_ns();

		for (int i = 0; i < threads; i++)
			pthread_create(&th[i], NULL, run, (void *)(intptr_t)i);
		for (int i = 0; i < threads; i++)
			pthread_join(th[i], NULL);
		printf("%-9s %d thread(s): %.1f ns per take (wall)\n",
		    names[mode], threads, (double)(now_ns() - t0) / TAKES);
	}
	ratelimit_conf_clear(&c);
	ratelimit_free();
	return 0;
}
