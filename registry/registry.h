/*
 * registry.h: the registry as the broker core sees it: the data model and
 * every identity rule of docs/design.md behind one handle per thread.
 * docs/architecture.md says how workers and the writer use it.
 */
#ifndef ONECARD_REGISTRY_H
#define ONECARD_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "onecard.pb-c.h"

struct evbuffer;
struct registry;

/* Input limits; every one is a flag and a config key of onecardd. */
struct registry_limits {
	size_t max_ids;     /* identifiers in one request (default 16) */
	size_t max_name;    /* bytes of a name (default 128) */
	size_t max_address; /* bytes of an address (default 256) */
	unsigned
	    search_limit; /* most results of a search or history (default 50) */
	size_t lookup_cache; /* bytes of encoded lookup replies a read handle
				keeps (registry_cache.h); 0: none */
	size_t max_unfolded; /* bytes synced in the log but not yet folded
				into the image before writes wait */
	/* Events kept for subscribers (0, 0: every one): the last
	 * keep_events, or those younger than keep_ms. Older ones are
	 * dropped from the image as it is folded. */
	uint64_t keep_events;
	int64_t keep_ms;
	/* An enroll that creates a patient lists no possible duplicates
	 * (a bulk load, which a whole-registry scan follows). */
	int no_duplicate_check;
};

#define REGISTRY_DEFAULT_MAX_IDS      16
#define REGISTRY_DEFAULT_MAX_NAME     128
#define REGISTRY_DEFAULT_MAX_ADDRESS  256
#define REGISTRY_DEFAULT_SEARCH_LIMIT 50
#define REGISTRY_DEFAULT_LOOKUP_CACHE (256u << 20)
#define REGISTRY_DEFAULT_MAX_UNFOLDED (512u << 20)

/* Who is asking: the certificate's CN and the role it was given. */
struct actor {
	const char *cn;
	int role; /* ONECARD__V1__ROLE__ROLE_HOSPITAL or ..._ROLE_ADMIN */
};

/* What an operation did, for the audit trail, metrics and the broker core. */
struct op_result {
	int code;            /* ONECARD__V1__CODE__* sent in the reply */
	char patient_id[48]; /* the patient it touched, "" if none */
	char target[112];    /* the identifier or code it named, cn-id masked */
	char detail[64];     /* what else the trail should say ("filled=sex"),
				or "" */

	/* merge: the patient merged away; unmerge: the survivor it was
	 * restored from; else "" */
	char other_patient_id[48];
};

/* Set every limit to its default. */
void registry_limits_default(struct registry_limits *lim);

/*
 * Open a handle on the registry at url (a file path, "sqlite:PATH", or later
 * "postgresql://..."). writer != 0 for the writer thread's handle: it creates
 * the schema and runs migrations. NULL on failure with a reason in err.
 */
struct registry *registry_open(const char *url, int writer,
    const struct registry_limits *lim, char *err, size_t errlen);
void registry_close(struct registry *reg);

/* Does this op change the registry (and so go to the writer)? */
int registry_op_is_write(int op_case);

/*
 * Role of an active hospital (or admin) registered under code: 0 and *role
 * set when it is active, 1 when it is unknown or revoked, -1 on error.
 */
int registry_hospital_role(struct registry *reg, const char *code, int *role);

/*
 * Learn the match model from the registry's own pairs (docs/matching.md,
 * "Learning the model") and have every handle of the registry use it.
 * Reads only; takes about a second at any size (a sample). 0 when learnt,
 * 1 when the registry is too small or its pairs too few to learn from (the
 * defaults stay), -1 on failure. out (may be NULL) gets the model used.
 */
struct match_model;
int registry_match_learn(struct registry *reg, struct match_model *out);

/*
 * Learn the model again when the registry has doubled since it was last
 * learnt (and has LEARN_MIN_PATIENTS): a registry being loaded gets a
 * model early and keeps it current at a cost that stays a few seconds in
 * all. For the writer, between batches. As registry_match_learn; 1 when
 * nothing was due.
 */
int registry_match_relearn(struct registry *reg);

/* 0 when the registry answers a trivial query (for /healthz), -1 otherwise. */
int registry_ping(struct registry *reg);

/* Answer a read op (lookup, search, history, hospital_list, stats). */
void registry_read(struct registry *reg, const struct actor *who,
    const Onecard__V1__Request *req, struct evbuffer *out,
    struct op_result *res);

/*
 * A hint that lookups of these n identifiers (domain[i], value[i], as sent)
 * come next: the lookup cache's memory for them is fetched meanwhile.
 * Changes nothing; for a read handle with a cache, else a no-op.
 */
#define REGISTRY_PREFETCH_MAX 16
void registry_prefetch_lookups(struct registry *reg, const char *const *domain,
    const char *const *value, size_t n);

/*
 * Notifications, for a read handle. Frame into out a pushed
 * Reply{id 0, OK, event} for each event after *cursor that who may see,
 * reading at most max events, and move *cursor past each one read. Returns
 * how many were read (fewer than max: none are left for now), with how many
 * were pushed in *pushed; REGISTRY_EVENTS_GONE when retention dropped
 * events after *cursor; or -1 (logged).
 */
#define REGISTRY_EVENTS_GONE (-2)
int registry_events_push(struct registry *reg, const struct actor *who,
    uint64_t *cursor, unsigned max, struct evbuffer *out, unsigned *pushed);
/*
 * The last durable event's seq, and retention's floor for who resuming
 * after from: the events up to it that who could see are gone (for an
 * admin, or who NULL, every event up to it). 0 or -1.
 */
int registry_events_range(struct registry *reg, const struct actor *who,
    uint64_t from, uint64_t *last, uint64_t *floor);

/* Writer thread only. 0 or -1. */
int registry_batch_begin(struct registry *reg);
void registry_write(struct registry *reg, const struct actor *who,
    const Onecard__V1__Request *req, struct evbuffer *out,
    struct op_result *res);
/* Before the batch's writes: who holds the identifiers they name, read at
 * once where a read is a round trip (PostgreSQL). Changes nothing. */
void registry_batch_hint(
    struct registry *reg, const Onecard__V1__Request *const *reqs, size_t n);
int registry_batch_commit(struct registry *reg);
void registry_batch_rollback(struct registry *reg);

/*
 * The change feed: every committed change, with its event's sequence
 * number, in commit order, from one place. The lookup cache reads it to
 * drop what changed; the broker reads it to close a revoked hospital's
 * connections; notifications and PostgreSQL NOTIFY are to read it later.
 */
struct registry_change {
	uint64_t seq;        /* its event's sequence number */
	const char *op;      /* enroll, link, unlink, update, merge, unmerge,
				hospital_add, hospital_revoke */
	char patient_id[48]; /* the patient it changed; "" for a hospital */
	char hospital[65];   /* the hospital code, for hospital_*; else "" */
};

/*
 * Called on the writer's thread once a batch is durable and before any of
 * its replies can leave, with the batch's changes in order (n > 0); or with
 * changes NULL and n 0 when the registry could not keep the list (out of
 * memory): then anything may have changed. It must be quick and must not
 * call into the registry.
 */
typedef void (*registry_feed_cb)(
    void *arg, const struct registry_change *changes, size_t n);

/* Add a subscriber, before the writer starts. 0, or -1 when full. */
#define REGISTRY_FEED_MAX 8
int registry_feed_subscribe(registry_feed_cb cb, void *arg);

/*
 * Several brokers on one PostgreSQL registry: follow the changes the
 * others commit (LISTEN, then read their events) and hand them to the
 * change feed's subscribers, on a thread of its own, so their subscribers
 * hear of them, their caches drop what changed and a revocation closes
 * connections here too. url is --db; any other store: nothing to do. 0 or
 * -1 with err set. Start-up only; stop before the subscribers go.
 */
int registry_remote_feed_start(const char *url, char *err, size_t errlen);
void registry_remote_feed_stop(void);

/* The fold of the log into the image, for /metrics. */
struct registry_store_stats {
	uint64_t unfolded_entries; /* synced log entries not in the image */
	uint64_t unfolded_bytes;
	uint64_t max_unfolded; /* the bound: past it writes wait */
	uint64_t folded_total; /* entries folded since start */
	double fold_lag_s;     /* age of the oldest entry not folded */
	int fold_failing;      /* the last fold failed (disk full, I/O) */
	int writes_waiting;    /* writes wait for the fold */
};

/* The figures of the registry open for writing in this process (zeros
 * when there is none). */
void registry_store_stats(struct registry_store_stats *st);

/*
 * Copy the registry at url into the new file dst while its broker runs:
 * one consistent state holding every write answered before the call
 * (registry_backup.c). 0, or -1 with the reason (naming the file) in err;
 * a failed copy leaves nothing behind.
 */
int registry_backup(const char *url, const char *dst, char *err, size_t errlen);

/* The --db URL for logs: a password in it (user:PASSWORD@, password=...)
 * replaced by ***. */
void registry_url_safe(const char *url, char *dst, size_t dstlen);

/* Mask a cn-id for logs and the audit trail: 410102********123X. */
void registry_mask_id(
    const char *domain, const char *value, char *dst, size_t dstlen);

#endif
