/*
 * hist.c: the latency histogram of onecard-bench.
 *
 * Log-bucketed like HdrHistogram with two significant digits: values below
 * 2 * HIST_SUB nanoseconds have a bucket each; above that every power of two
 * is cut into HIST_SUB equal sub-buckets, so a recorded value is known to
 * within 1/HIST_SUB. Recording is a shift and an increment; each thread keeps
 * its own and the main thread merges them by adding bucket counts.
 */
#include <string.h>

#include "bench.h"

void
hist_reset(struct hist *h)
{
	memset(h, 0, sizeof *h);
	h->min = UINT64_MAX;
}

/* The bucket of value v. */
static unsigned
hist_index(uint64_t v)
{
	unsigned msb, shift;

	if (v < 2 * HIST_SUB)
		return (unsigned)v;
	msb = 63 - (unsigned)__builtin_clzll(v);
	shift = msb - HIST_SUB_BITS;
	return (shift + 1) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

/* The largest value that falls in bucket i. */
static uint64_t
hist_value(unsigned i)
{
	unsigned shift;
	uint64_t sub;

	if (i < 2 * HIST_SUB)
		return i;
	shift = i / HIST_SUB - 1;
	sub = i % HIST_SUB + HIST_SUB;
	return ((sub + 1) << shift) - 1;
}

void
hist_record(struct hist *h, uint64_t ns)
{
	unsigned i = hist_index(ns);

	if (i >= HIST_BUCKETS)
		i = HIST_BUCKETS - 1;
	h->b[i]++;
	h->count++;
	if (ns > h->max)
		h->max = ns;
	if (ns < h->min)
		h->min = ns;
}

void
hist_merge(struct hist *dst, const struct hist *src)
{
	if (src->count == 0)
		return;
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->count += src->count;
	if (src->max > dst->max)
		dst->max = src->max;
	if (src->min < dst->min)
		dst->min = src->min;
}

uint64_t
hist_quantile(const struct hist *h, double q)
{
	uint64_t want, seen = 0, v;

	if (h->count == 0)
		return 0;
	if (q >= 1.0)
		return h->max;
	want = (uint64_t)(q * (double)h->count + 0.5);
	if (want == 0)
		want = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want) {
			v = hist_value(i);
			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}
