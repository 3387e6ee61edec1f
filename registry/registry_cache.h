/*
 * registry_cache.h: a worker's cache of encoded lookup replies, so a
 * repeated lookup costs a hash probe and a copy. Only lcache_publish may be
 * called from another thread (the writer); docs/architecture.md says why a
 * lookup after an acknowledged write never sees the record as it was.
 */
#ifndef ONECARD_REGISTRY_CACHE_H
#define ONECARD_REGISTRY_CACHE_H

#include <stddef.h>
#include <stdint.h>

#define LCACHE_RING   65536 /* published hashes kept for workers to catch up */
#define LCACHE_PIDLEN 48

struct lcache;

/* What a probe found; valid until the next call on this cache. */
struct lcache_hit {
	const char *pid;      /* the live patient id it answered */
	const uint8_t *reply; /* an encoded Reply without its id */
	size_t reply_len;
};

/* Counters, summed over every cache, for /metrics. */
struct lcache_stats {
	uint64_t hits;
	uint64_t misses;
	uint64_t evictions;
	uint64_t
	    invalidations; /* entries dropped because their patient changed */
	uint64_t flushes;  /* whole caches dropped (a worker fell behind) */
	uint64_t entries;
	uint64_t bytes;
};

uint64_t lcache_hash(const void *p, size_t n);

struct lcache *lcache_new(size_t max_bytes);
void lcache_free(struct lcache *lc);

/* Drop the entries of every patient published since the last call. */
void lcache_sync(struct lcache *lc);
/* The entry for key, or NULL (a miss is counted). Call lcache_sync first. */
const struct lcache_hit *lcache_get(
    struct lcache *lc, const char *key, size_t keylen);
/*
 * Hints, for a burst of probes to come: fetch key's bucket (its hash is
 * returned), then, once every bucket of the burst is asked for, the first
 * entry in each. They change nothing, so a key that turns out otherwise
 * normalised costs only the wasted fetch.
 */
uint64_t lcache_prefetch_bucket(
    struct lcache *lc, const char *key, size_t keylen);
void lcache_prefetch_entry(struct lcache *lc, uint64_t hash);
/* Keep reply under key, tagged with pid. 0, or -1 when it is not kept. */
int lcache_put(struct lcache *lc, const char *key, size_t keylen,
    const char *pid, const uint8_t *reply, size_t reply_len);

/* Writer: these patients changed in a commit that is now durable. */
void lcache_publish(const uint64_t *pid_hashes, size_t n);

void lcache_stats(struct lcache_stats *st);

#endif
