/*
 * registry_cache.c: a worker's cache of encoded lookup replies, kept in one
 * region written like a log and freshened by the writer's published patient
 * hashes (registry_cache.h; the layout is in docs/architecture.md).
 */
#include <sys/mman.h>
#include <sys/queue.h>

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "registry_cache.h"

#define LCACHE_MIN_BUCKETS 1024
#define LCACHE_ALIGN       64         /* entries start on a cache line */
#define LCACHE_HUGE        (2u << 20) /* a huge page */

struct lc_entry {
	struct lc_entry *knext;    /* key chain */
	struct lc_entry *pnext;    /* patient chain */
	struct lc_entry **pprev;   /* where this entry is linked from */
	TAILQ_ENTRY(lc_entry) age; /* oldest first */
	uint64_t khash;
	uint64_t phash;
	size_t size; /* bytes charged to the cache */
	uint32_t keylen;
	uint32_t reply_len;
	struct lcache_hit hit;
	char pid[LCACHE_PIDLEN];
	char data[]; /* key, then reply */
};

TAILQ_HEAD(lc_queue, lc_entry);

/* A counter one thread writes and any thread may read. */
typedef _Atomic uint64_t lc_counter;

struct lcache {
	struct lc_entry **kb; /* key buckets */
	struct lc_entry **pb; /* patient buckets */
	size_t nbuckets;      /* of each table, a power of two */
	size_t n;
	size_t bytes; /* of live entries */
	size_t max_bytes;
	char *map; /* the mapping, for munmap */
	size_t maplen;
	char *region; /* max_bytes of entries, written as a log */
	size_t tail;  /* where the next entry goes */
	struct lc_queue queue;
	uint64_t seen; /* published hashes applied */
	LIST_ENTRY(lcache) all;
	lc_counter hits, misses, evictions, invalidations, flushes;
	lc_counter n_pub, bytes_pub; /* n and bytes, for lcache_stats */
};

static pthread_mutex_t lcache_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t lcache_ring[LCACHE_RING]; /* under lcache_lock */
static _Atomic uint64_t lcache_head;      /* hashes ever published */
static LIST_HEAD(, lcache) lcache_all = LIST_HEAD_INITIALIZER(lcache_all);
/* Counters of caches already freed, so totals never go backwards. */
static struct lcache_stats lcache_gone;

static void
lc_inc(lc_counter *c)
{
	atomic_store_explicit(c,
	    atomic_load_explicit(c, memory_order_relaxed) + 1,
	    memory_order_relaxed);
}

static void
lc_set(lc_counter *c, uint64_t v)
{
	atomic_store_explicit(c, v, memory_order_relaxed);
}

static uint64_t
lc_get(lc_counter *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* FNV-1a, then a final mix so the low bits index buckets well. */
uint64_t
lcache_hash(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

struct lcache *
lcache_new(size_t max_bytes)
{
	struct lcache *lc;

	if ((lc = calloc(1, sizeof(*lc))) == NULL)
		return NULL;
	lc->nbuckets = LCACHE_MIN_BUCKETS;
	lc->kb = calloc(lc->nbuckets, sizeof(*lc->kb));
	lc->pb = calloc(lc->nbuckets, sizeof(*lc->pb));
	/* Reserve, don't commit: pages come as entries are written. One huge
	 * page more than asked, to start the region on a huge page. */
	max_bytes &= ~(size_t)(LCACHE_ALIGN - 1);
	lc->maplen = max_bytes + LCACHE_HUGE;
	lc->map = mmap(NULL, lc->maplen, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (lc->kb == NULL || lc->pb == NULL || lc->map == MAP_FAILED) {
		if (lc->map != MAP_FAILED)
			munmap(lc->map, lc->maplen);
		free(lc->kb);
		free(lc->pb);
		free(lc);
		return NULL;
	}
	lc->region = (char *)(((uintptr_t)lc->map + LCACHE_HUGE - 1) &
	    ~(uintptr_t)(LCACHE_HUGE - 1));
	(void)madvise(lc->region, max_bytes, MADV_HUGEPAGE); /* a hint */
	lc->max_bytes = max_bytes;
	TAILQ_INIT(&lc->queue);
	pthread_mutex_lock(&lcache_lock);
	lc->seen = atomic_load(&lcache_head);
	LIST_INSERT_HEAD(&lcache_all, lc, all);
	pthread_mutex_unlock(&lcache_lock);
	return lc;
}

/* Unlink e from every list and free it. */
static void
lc_remove(struct lcache *lc, struct lc_entry *e)
{
	struct lc_entry **kp = &lc->kb[e->khash & (lc->nbuckets - 1)];

	while (*kp != e)
		kp = &(*kp)->knext;
	*kp = e->knext;
	*e->pprev = e->pnext;
	if (e->pnext != NULL)
		e->pnext->pprev = e->pprev;
	TAILQ_REMOVE(&lc->queue, e, age);
	lc->n--;
	lc->bytes -= e->size; /* its space is reused when the tail comes by */
}

/* Drop every entry. */
static void
lc_clear(struct lcache *lc)
{
	struct lc_entry *e;

	while ((e = TAILQ_FIRST(&lc->queue)) != NULL)
		lc_remove(lc, e);
}

void
lcache_free(struct lcache *lc)
{
	if (lc == NULL)
		return;
	lc_clear(lc);
	pthread_mutex_lock(&lcache_lock);
	LIST_REMOVE(lc, all);
	lcache_gone.hits += lc_get(&lc->hits);
	lcache_gone.misses += lc_get(&lc->misses);
	lcache_gone.evictions += lc_get(&lc->evictions);
	lcache_gone.invalidations += lc_get(&lc->invalidations);
	lcache_gone.flushes += lc_get(&lc->flushes);
	pthread_mutex_unlock(&lcache_lock);
	munmap(lc->map, lc->maplen);
	free(lc->kb);
	free(lc->pb);
	free(lc);
}

/* Drop the entries of the patient with hash ph. */
static void
lc_drop_patient(struct lcache *lc, uint64_t ph)
{
	struct lc_entry *e = lc->pb[ph & (lc->nbuckets - 1)], *next;

	for (; e != NULL; e = next) {
		next = e->pnext;
		if (e->phash == ph) {
			lc_remove(lc, e);
			lc_inc(&lc->invalidations);
		}
	}
}

void
lcache_sync(struct lcache *lc)
{
	uint64_t head =
	    atomic_load_explicit(&lcache_head, memory_order_acquire);

	if (head == lc->seen)
		return;
	pthread_mutex_lock(&lcache_lock);
	head = atomic_load_explicit(&lcache_head, memory_order_relaxed);
	if (head - lc->seen > LCACHE_RING) {
		lc_clear(lc);
		lc_inc(&lc->flushes);
	} else
		for (uint64_t i = lc->seen; i != head; i++)
			lc_drop_patient(lc, lcache_ring[i % LCACHE_RING]);
	lc->seen = head;
	pthread_mutex_unlock(&lcache_lock);
	lc_set(&lc->n_pub, lc->n);
	lc_set(&lc->bytes_pub, lc->bytes);
}

const struct lcache_hit *
lcache_get(struct lcache *lc, const char *key, size_t keylen)
{
	uint64_t h = lcache_hash(key, keylen);
	struct lc_entry *e = lc->kb[h & (lc->nbuckets - 1)];

	for (; e != NULL; e = e->knext)
		if (e->khash == h && e->keylen == keylen &&
		    memcmp(e->data, key, keylen) == 0) {
			lc_inc(&lc->hits);
			return &e->hit;
		}
	lc_inc(&lc->misses);
	return NULL;
}

uint64_t
lcache_prefetch_bucket(struct lcache *lc, const char *key, size_t keylen)
{
	uint64_t h = lcache_hash(key, keylen);

	__builtin_prefetch(&lc->kb[h & (lc->nbuckets - 1)]);
	return h;
}

void
lcache_prefetch_entry(struct lcache *lc, uint64_t hash)
{
	const char *e = (const char *)lc->kb[hash & (lc->nbuckets - 1)];

	if (e == NULL)
		return;
	/* The header (hash, lengths) and the key; the reply follows on. */
	__builtin_prefetch(e);
	__builtin_prefetch(e + 64);
	__builtin_prefetch(e + 128);
}

/* Double both tables. -1 when out of memory (the cache stays as it was). */
static int
lc_grow(struct lcache *lc)
{
	size_t nb = lc->nbuckets * 2;
	struct lc_entry **kb, **pb, *e;

	kb = calloc(nb, sizeof(*kb));
	pb = calloc(nb, sizeof(*pb));
	if (kb == NULL || pb == NULL) {
		free(kb);
		free(pb);
		return -1;
	}
	TAILQ_FOREACH(e, &lc->queue, age) {
		struct lc_entry **pp = &pb[e->phash & (nb - 1)];

		e->knext = kb[e->khash & (nb - 1)];
		kb[e->khash & (nb - 1)] = e;
		if ((e->pnext = *pp) != NULL)
			e->pnext->pprev = &e->pnext;
		*pp = e;
		e->pprev = pp;
	}
	free(lc->kb);
	free(lc->pb);
	lc->kb = kb;
	lc->pb = pb;
	lc->nbuckets = nb;
	return 0;
}

/*
 * Room for size bytes at the tail of the log, evicting the oldest entries
 * in the way; NULL when size is more than the region.
 */
static struct lc_entry *
lc_alloc(struct lcache *lc, size_t size)
{
	struct lc_entry *first;
	size_t head;

	if (size > lc->max_bytes)
		return NULL;
	for (;;) {
		if ((first = TAILQ_FIRST(&lc->queue)) == NULL) {
			lc->tail = 0; /* empty: start over */
			break;
		}
		head = (size_t)((char *)first - lc->region);
		if (lc->tail > head) {
			/* Free from the tail to the end, then up to head. */
			if (lc->max_bytes - lc->tail >= size)
				break;
			lc->tail = 0;
			continue;
		}
		if (head - lc->tail >= size)
			break;
		lc_remove(lc, first);
		lc_inc(&lc->evictions);
	}
	first = (struct lc_entry *)(lc->region + lc->tail);
	lc->tail += size;
	return first;
}

int
lcache_put(struct lcache *lc, const char *key, size_t keylen, const char *pid,
    const uint8_t *reply, size_t reply_len)
{
	size_t pidlen = strlen(pid);
	size_t size =
	    (sizeof(struct lc_entry) + keylen + reply_len + LCACHE_ALIGN - 1) &
	    ~(size_t)(LCACHE_ALIGN - 1);
	uint64_t h = lcache_hash(key, keylen);
	struct lc_entry *e, **pp;

	if (pidlen >= LCACHE_PIDLEN || size > lc->max_bytes ||
	    keylen > UINT32_MAX || reply_len > UINT32_MAX)
		return -1;
	for (e = lc->kb[h & (lc->nbuckets - 1)]; e != NULL; e = e->knext)
		if (e->khash == h && e->keylen == keylen &&
		    memcmp(e->data, key, keylen) == 0) {
			lc_remove(lc, e); /* replaced by the newer answer */
			break;
		}
	if ((e = lc_alloc(lc, size)) == NULL)
		return -1;
	if (lc->n >= lc->nbuckets)
		(void)lc_grow(lc); /* longer chains, still correct */
	e->khash = h;
	e->phash = lcache_hash(pid, pidlen);
	e->size = size;
	e->keylen = keylen;
	e->reply_len = reply_len;
	memcpy(e->pid, pid, pidlen + 1);
	memcpy(e->data, key, keylen);
	memcpy(e->data + keylen, reply, reply_len);
	e->hit.pid = e->pid;
	e->hit.reply = (const uint8_t *)e->data + keylen;
	e->hit.reply_len = reply_len;
	e->knext = lc->kb[h & (lc->nbuckets - 1)];
	lc->kb[h & (lc->nbuckets - 1)] = e;
	pp = &lc->pb[e->phash & (lc->nbuckets - 1)];
	if ((e->pnext = *pp) != NULL)
		e->pnext->pprev = &e->pnext;
	*pp = e;
	e->pprev = pp;
	TAILQ_INSERT_TAIL(&lc->queue, e, age);
	lc->n++;
	lc->bytes += size;
	lc_set(&lc->n_pub, lc->n);
	lc_set(&lc->bytes_pub, lc->bytes);
	return 0;
}

void
lcache_publish(const uint64_t *pid_hashes, size_t n)
{
	uint64_t head;

	if (n == 0)
		return;
	pthread_mutex_lock(&lcache_lock);
	head = atomic_load_explicit(&lcache_head, memory_order_relaxed);
	if (n > LCACHE_RING) {
		/* More than a worker could catch up on: everyone drops all. */
		head += LCACHE_RING + 1;
	} else
		for (size_t i = 0; i < n; i++)
			lcache_ring[head++ % LCACHE_RING] = pid_hashes[i];
	atomic_store_explicit(&lcache_head, head, memory_order_release);
	pthread_mutex_unlock(&lcache_lock);
}

void
lcache_stats(struct lcache_stats *st)
{
	struct lcache *lc;

	pthread_mutex_lock(&lcache_lock);
	*st = lcache_gone;
	LIST_FOREACH(lc, &lcache_all, all) {
		st->hits += lc_get(&lc->hits);
		st->misses += lc_get(&lc->misses);
		st->evictions += lc_get(&lc->evictions);
		st->invalidations += lc_get(&lc->invalidations);
		st->flushes += lc_get(&lc->flushes);
		st->entries += lc_get(&lc->n_pub);
		st->bytes += lc_get(&lc->bytes_pub);
	}
	pthread_mutex_unlock(&lcache_lock);
}
