/*
 * ratelimit.h: per-hospital token buckets for lookups, searches and writes
 * (docs/operations.md, "Rate limits"). The configured rates (a default per
 * kind, and per hospital) are parsed here from flags and config keys; the
 * live buckets are found once per connection (ratelimit_peer) and taken
 * from on every request (ratelimit_take), from any thread, lock-free.
 */
#ifndef ONECARD_RATELIMIT_H
#define ONECARD_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

enum ratelimit_kind {
	RATELIMIT_LOOKUP,
	RATELIMIT_SEARCH,
	RATELIMIT_WRITE,
	RATELIMIT_KINDS
};

/* The largest rate (requests per second) and burst a key accepts. */
#define RATELIMIT_MAX 1000000

/* One configured rate: rate 0 is unlimited. */
struct ratelimit_rate {
	uint32_t rate;  /* requests per second */
	uint32_t burst; /* requests at once, after a quiet spell */
	int set;        /* given (a hospital's own; else the default holds) */
};

struct ratelimit_hospital; /* private to ratelimit.c */

/*
 * The rates as configured: a default per kind and per hospital overrides.
 * All zero is "unlimited everywhere"; free with ratelimit_conf_clear.
 */
struct ratelimit_conf {
	struct ratelimit_rate def[RATELIMIT_KINDS];
	struct ratelimit_hospital *hospitals;
};

/* "lookup", "search", "write". */
const char *ratelimit_kind_name(int kind);
/* The kind of a "rate-lookup"-style key, or -1. */
int ratelimit_kind_of_key(const char *key);
/*
 * Set the default (code NULL) or hospital code's rate of kind from
 * "RATE[/BURST]"; name is the key or flag to name in err. 0, or -1 with
 * why in err.
 */
int ratelimit_conf_set(struct ratelimit_conf *conf, const char *code, int kind,
    const char *value, const char *name, char *err, size_t errlen);
void ratelimit_conf_clear(struct ratelimit_conf *conf);

/*
 * Make conf the live rates (start-up, and SIGHUP: open connections follow
 * at once). A bucket whose rate changes starts full again. 0 or -1 (out
 * of memory; the previous rates stay).
 */
int ratelimit_apply(const struct ratelimit_conf *conf);

/*
 * The buckets of cn, made on first sight and kept until ratelimit_free:
 * the pointer stays valid, and follows reloads, so a connection looks it
 * up once. admin: not limited unless cn has rates of its own. NULL only
 * when out of memory (then the caller is not limited).
 */
struct ratelimit_peer *ratelimit_peer(const char *cn, int admin);

/*
 * Take one request of kind from p's bucket at now_ns (a monotonic clock):
 * 0 when allowed (p NULL: always), or -1 when over the limit, with the
 * wait until one would be allowed in *retry_ns and the rate and burst in
 * force in *rate and *burst.
 */
int ratelimit_take(struct ratelimit_peer *p, int kind, uint64_t now_ns,
    uint64_t *retry_ns, uint32_t *rate, uint32_t *burst);

/*
 * The refusal's message: "rate limit: hospital XC001 exceeded 100
 * lookups/s (burst 200); retry in 40 ms" (the wait rounded up, so a client
 * that waits it is let in). admin says "admin" for "hospital".
 */
void ratelimit_message(char *buf, size_t len, const char *cn, int admin,
    int kind, uint32_t rate, uint32_t burst, uint64_t retry_ns);

/* Free every peer (shutdown, when no thread takes any more). */
void ratelimit_free(void);

/*
 * The arithmetic, for the unit test: GCRA (the generic cell rate
 * algorithm, a token bucket kept as one time). tat is the bucket's
 * theoretical arrival time; interval the ns per request (1e9 / rate);
 * limit burst * interval. 0 with the new tat in *next, or -1 with the
 * wait in *retry.
 */
int ratelimit_gcra(uint64_t tat, uint64_t now, uint64_t interval,
    uint64_t limit, uint64_t *next, uint64_t *retry);

#endif
