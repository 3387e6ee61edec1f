/*
 * ratelimit.c: per-hospital rate limits (docs/operations.md, "Rate
 * limits"). It owns the configured rates and one bucket per client CN and
 * kind (lookup, search, write). It never blocks or allocates on the request
 * path, and knows nothing of connections: conn.c and fhir.c ask it.
 *
 * How a bucket is kept, and why. A bucket is one 64-bit atomic, its
 * "theoretical arrival time" (GCRA, the generic cell rate algorithm: the
 * time at which the bucket would be full again), taken from with one
 * compare-and-swap; the rate and burst beside it are read-mostly. One
 * bucket per hospital, shared by every worker thread and the FHIR thread,
 * rather than per-worker buckets with the rate split across threads: a
 * split is wrong whenever a hospital's connections are not spread evenly
 * over the workers (one desk connection would get rate/threads, and the
 * burst would not be the burst), and the FHIR door would need a share of
 * its own. Measured (bench/ratelimit-bench.c, this project's 2-core
 * machine, shared): a take costs about 5-7 ns alone, 10-12 ns with two
 * threads on two hospitals, and 15-20 ns when two threads do nothing but
 * hammer one hospital's bucket (the cache line bouncing); an unlimited
 * kind, the default, about 1.5 ns (one load). A lookup answered from the
 * cache costs the broker about 2.6 us of CPU (docs/operations.md), so even
 * the worst case is under 1% of it: well inside the 3% for policy
 * and limits together, with nothing to gain from per-thread buckets.
 *
 * A connection looks its peer up once, when it is identified, and keeps the
 * pointer: peers are never freed before shutdown, and a reload changes
 * their rates in place (atomically, so no generation counter is needed to
 * notice), so open connections follow a SIGHUP at once.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimit.h"

#define RATELIMIT_CODE_MAX 32 /* a hospital code's bytes */
#define RATELIMIT_CN_MAX   64 /* a CN's bytes (onecardd.h's) */
#define RATELIMIT_TABLE    256
#define NS_PER_S           1000000000ULL

/* A hospital's own rates, as configured. */
struct ratelimit_hospital {
	struct ratelimit_hospital *next;
	struct ratelimit_rate r[RATELIMIT_KINDS];
	char code[RATELIMIT_CODE_MAX + 1];
};

/* One bucket. interval 0: unlimited. */
struct ratelimit_bucket {
	atomic_uint_fast64_t tat;      /* ns; 0: full */
	atomic_uint_fast64_t interval; /* ns per request */
	atomic_uint_fast64_t limit;    /* burst * interval */
	atomic_uint_fast32_t rate;     /* for the refusal's message */
	atomic_uint_fast32_t burst;
};

/* The buckets of one CN; on its own cache lines, so two hospitals' takes
 * do not contend. */
struct ratelimit_peer {
	struct ratelimit_bucket b[RATELIMIT_KINDS];
	struct ratelimit_peer *next;
	int admin;
	char cn[RATELIMIT_CN_MAX + 1];
} __attribute__((aligned(64)));

static const char *const kind_names[RATELIMIT_KINDS] = {
    "lookup", "search", "write"};

static struct {
	pthread_mutex_t lock; /* the table, conf and every peer's rates */
	struct ratelimit_peer *table[RATELIMIT_TABLE];
	struct ratelimit_conf conf; /* the live rates (a deep copy) */
} rl = {.lock = PTHREAD_MUTEX_INITIALIZER};

const char *
ratelimit_kind_name(int kind)
{
	return kind >= 0 && kind < RATELIMIT_KINDS ? kind_names[kind] : "?";
}

int
ratelimit_kind_of_key(const char *key)
{
	if (strncmp(key, "rate-", 5) != 0)
		return -1;
	for (int k = 0; k < RATELIMIT_KINDS; k++)
		if (strcmp(key + 5, kind_names[k]) == 0)
			return k;
	return -1;
}

/* A number 1..RATELIMIT_MAX (0 too when zero_ok) of digits only. */
static int
ratelimit_number(const char *s, size_t n, int zero_ok, uint32_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 7)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > RATELIMIT_MAX || (v == 0 && !zero_ok))
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* "RATE[/BURST]" into r. 0 or -1 with why in err. */
static int
ratelimit_parse(const char *value, const char *name, struct ratelimit_rate *r,
    char *err, size_t errlen)
{
	const char *slash = strchr(value, '/');
	size_t n = slash ? (size_t)(slash - value) : strlen(value);

	if (ratelimit_number(value, n, 1, &r->rate) == -1) {
		snprintf(err, errlen,
		    "%s: '%s' is not RATE[/BURST]: RATE is requests per "
		    "second, 0 (unlimited) to %d",
		    name, value, RATELIMIT_MAX);
		return -1;
	}
	r->burst = r->rate;
	if (slash != NULL &&
	    ratelimit_number(slash + 1, strlen(slash + 1), 0, &r->burst) ==
		-1) {
		snprintf(err, errlen,
		    "%s: '%s' is not RATE[/BURST]: BURST is requests at once, "
		    "1 to %d",
		    name, value, RATELIMIT_MAX);
		return -1;
	}
	if (r->rate == 0 && slash != NULL) {
		snprintf(err, errlen,
		    "%s: '%s': a rate of 0 is unlimited and takes no burst",
		    name, value);
		return -1;
	}
	r->set = 1;
	return 0;
}

/* Is s a hospital code: letters, digits, - and _, 1..32? */
static int
ratelimit_code_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > RATELIMIT_CODE_MAX)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
			(*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
			return 0;
	return 1;
}

/* conf's entry for code, or NULL. */
static struct ratelimit_hospital *
ratelimit_conf_find(const struct ratelimit_conf *conf, const char *code)
{
	struct ratelimit_hospital *h;

	for (h = conf->hospitals; h != NULL; h = h->next)
		if (strcmp(h->code, code) == 0)
			return h;
	return NULL;
}

int
ratelimit_conf_set(struct ratelimit_conf *conf, const char *code, int kind,
    const char *value, const char *name, char *err, size_t errlen)
{
	struct ratelimit_hospital *h;
	struct ratelimit_rate r;

	if (kind < 0 || kind >= RATELIMIT_KINDS) {
		snprintf(err, errlen, "%s: unknown rate kind", name);
		return -1;
	}
	if (ratelimit_parse(value, name, &r, err, errlen) == -1)
		return -1;
	if (code == NULL) {
		conf->def[kind] = r;
		return 0;
	}
	if (!ratelimit_code_ok(code)) {
		snprintf(err, errlen,
		    "%s: '%s' is not a hospital code (letters, digits, - and "
		    "_, 1 to %d)",
		    name, code, RATELIMIT_CODE_MAX);
		return -1;
	}
	if ((h = ratelimit_conf_find(conf, code)) == NULL) {
		if ((h = calloc(1, sizeof(*h))) == NULL) {
			snprintf(err, errlen, "%s: out of memory", name);
			return -1;
		}
		memcpy(h->code, code, strlen(code) + 1);
		h->next = conf->hospitals;
		conf->hospitals = h;
	}
	h->r[kind] = r;
	return 0;
}

void
ratelimit_conf_clear(struct ratelimit_conf *conf)
{
	struct ratelimit_hospital *h, *next;

	for (h = conf->hospitals; h != NULL; h = next) {
		next = h->next;
		free(h);
	}
	memset(conf, 0, sizeof(*conf));
}

/* A deep copy of src into dst (cleared). 0 or -1. */
static int
ratelimit_conf_copy(
    struct ratelimit_conf *dst, const struct ratelimit_conf *src)
{
	const struct ratelimit_hospital *h;
	struct ratelimit_hospital *c;

	memset(dst, 0, sizeof(*dst));
	memcpy(dst->def, src->def, sizeof(dst->def));
	for (h = src->hospitals; h != NULL; h = h->next) {
		if ((c = malloc(sizeof(*c))) == NULL) {
			ratelimit_conf_clear(dst);
			return -1;
		}
		*c = *h;
		c->next = dst->hospitals;
		dst->hospitals = c;
	}
	return 0;
}

/* The rate that holds for p's kind under the live conf. Under the lock. */
static struct ratelimit_rate
ratelimit_effective(const struct ratelimit_peer *p, int kind)
{
	const struct ratelimit_hospital *h =
	    ratelimit_conf_find(&rl.conf, p->cn);
	struct ratelimit_rate none = {0, 0, 0};

	if (h != NULL && h->r[kind].set)
		return h->r[kind];
	/* Admins are limited only by rates of their own. */
	return p->admin ? none : rl.conf.def[kind];
}

/* Set p's buckets to the live conf; a changed bucket starts full. Under
 * the lock. */
static void
ratelimit_peer_update(struct ratelimit_peer *p)
{
	for (int k = 0; k < RATELIMIT_KINDS; k++) {
		struct ratelimit_bucket *b = &p->b[k];
		struct ratelimit_rate r = ratelimit_effective(p, k);
		uint64_t iv = r.rate ? NS_PER_S / r.rate : 0;
		uint64_t limit = iv * r.burst;

		if (atomic_load_explicit(&b->interval, memory_order_relaxed) ==
			iv &&
		    atomic_load_explicit(&b->limit, memory_order_relaxed) ==
			limit)
			continue;
		/* Unlimited first, so no take sees a half-made rate. */
		atomic_store_explicit(&b->interval, 0, memory_order_release);
		atomic_store_explicit(&b->tat, 0, memory_order_relaxed);
		atomic_store_explicit(&b->rate, r.rate, memory_order_relaxed);
		atomic_store_explicit(&b->burst, r.burst, memory_order_relaxed);
		atomic_store_explicit(&b->limit, limit, memory_order_relaxed);
		atomic_store_explicit(&b->interval, iv, memory_order_release);
	}
}

int
ratelimit_apply(const struct ratelimit_conf *conf)
{
	struct ratelimit_conf copy;

	if (ratelimit_conf_copy(&copy, conf) == -1)
		return -1;
	pthread_mutex_lock(&rl.lock);
	ratelimit_conf_clear(&rl.conf);
	rl.conf = copy;
	for (size_t i = 0; i < RATELIMIT_TABLE; i++)
		for (struct ratelimit_peer *p = rl.table[i]; p; p = p->next)
			ratelimit_peer_update(p);
	pthread_mutex_unlock(&rl.lock);
	return 0;
}

/* FNV-1a of s, for the table. */
static size_t
ratelimit_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % RATELIMIT_TABLE;
}

struct ratelimit_peer *
ratelimit_peer(const char *cn, int admin)
{
	size_t slot = ratelimit_hash(cn), n = strlen(cn);
	struct ratelimit_peer *p;

	if (n > RATELIMIT_CN_MAX)
		return NULL;
	pthread_mutex_lock(&rl.lock);
	for (p = rl.table[slot]; p != NULL; p = p->next)
		if (p->admin == !!admin && strcmp(p->cn, cn) == 0)
			goto out;
	if ((p = aligned_alloc(64, sizeof(*p))) == NULL)
		goto out;
	memset(p, 0, sizeof(*p));
	memcpy(p->cn, cn, n + 1);
	p->admin = !!admin;
	ratelimit_peer_update(p);
	p->next = rl.table[slot];
	rl.table[slot] = p;
out:
	pthread_mutex_unlock(&rl.lock);
	return p;
}

int
ratelimit_gcra(uint64_t tat, uint64_t now, uint64_t interval, uint64_t limit,
    uint64_t *next, uint64_t *retry)
{
	/* An empty bucket refills while nobody asks: never past full. */
	uint64_t t = (tat > now ? tat : now) + interval;

	if (t - now > limit) {
		*retry = t - now - limit;
		return -1;
	}
	*next = t;
	return 0;
}

int
ratelimit_take(struct ratelimit_peer *p, int kind, uint64_t now_ns,
    uint64_t *retry_ns, uint32_t *rate, uint32_t *burst)
{
	struct ratelimit_bucket *b;
	uint64_t iv, limit, tat, next;

	if (p == NULL)
		return 0;
	b = &p->b[kind];
	if ((iv = atomic_load_explicit(&b->interval, memory_order_acquire)) ==
	    0)
		return 0;
	limit = atomic_load_explicit(&b->limit, memory_order_relaxed);
	tat = atomic_load_explicit(&b->tat, memory_order_relaxed);
	do {
		if (ratelimit_gcra(tat, now_ns, iv, limit, &next, retry_ns) ==
		    -1) {
			*rate = (uint32_t)atomic_load_explicit(
			    &b->rate, memory_order_relaxed);
			*burst = (uint32_t)atomic_load_explicit(
			    &b->burst, memory_order_relaxed);
			return -1;
		}
	} while (!atomic_compare_exchange_weak_explicit(
	    &b->tat, &tat, next, memory_order_relaxed, memory_order_relaxed));
	return 0;
}

void
ratelimit_message(char *buf, size_t len, const char *cn, int admin, int kind,
    uint32_t rate, uint32_t burst, uint64_t retry_ns)
{
	snprintf(buf, len,
	    "rate limit: %s %s exceeded %u %ss/s (burst %u); retry in %llu ms",
	    admin ? "admin" : "hospital", cn, (unsigned)rate,
	    ratelimit_kind_name(kind), (unsigned)burst,
	    (unsigned long long)((retry_ns + 999999) / 1000000));
}

void
ratelimit_free(void)
{
	struct ratelimit_peer *p, *next;

	pthread_mutex_lock(&rl.lock);
	for (size_t i = 0; i < RATELIMIT_TABLE; i++) {
		for (p = rl.table[i]; p != NULL; p = next) {
			next = p->next;
			free(p);
		}
		rl.table[i] = NULL;
	}
	ratelimit_conf_clear(&rl.conf);
	pthread_mutex_unlock(&rl.lock);
}
