/*
 * registry_backend.h: the primitives a registry store provides (rows,
 * transactions, savepoints, errors) and never a rule. Only registry*.c
 * include it. Returns 0 done, 1 not found, REGISTRY_EFAIL, REGISTRY_EUNAVAIL
 * or REGISTRY_ERETRY; strings handed to a callback live only during the
 * call.
 */
#ifndef ONECARD_REGISTRY_BACKEND_H
#define ONECARD_REGISTRY_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct match_model;

#define REGISTRY_EFAIL    (-1)
#define REGISTRY_EUNAVAIL (-2)
/* Another writer on the same store (another broker) got there first: a
 * key it committed, a serialization failure, a deadlock. The op is undone
 * to its savepoint and run again on what is there now. */
#define REGISTRY_ERETRY (-3)

#define REGISTRY_PID_MAX 48

struct registry_arena;

/* Copy src into dst (dstlen bytes), cut short and always terminated: the
 * hot path's snprintf("%s"). */
static inline void
registry_copy(char *dst, const char *src, size_t dstlen)
{
	size_t n = strlen(src);

	if (dstlen == 0)
		return;
	if (n >= dstlen)
		n = dstlen - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Unix time in milliseconds (registry.c). */
int64_t registry_now_ms(void);

/* Copy len bytes of s (plus a NUL) into the arena; NULL if out of memory. */
char *registry_arena_strndup(
    struct registry_arena *a, const char *s, size_t len);

/* A row of patients; strings are in the caller's arena. */
struct registry_patient {
	char id[REGISTRY_PID_MAX];
	char *name;
	int sex;
	char *birth_date;
	char *phone;
	char *address;
	uint64_t version;
	char merged_into[REGISTRY_PID_MAX]; /* "" when live */
};

/* A row of events. */
struct registry_event {
	uint64_t seq;
	const char *op;
	const char *patient_id;
	const char *actor;
	int64_t time_ms;
	const char *detail;
	/* merge: the patient merged away; unmerge: the one restored. */
	const char *other_patient_id;
	/*
	 * Who hears of it (notifications): " A B " names the hospitals, each
	 * between spaces, that held a card of the patient before or after the
	 * change; admins hear every event but one marked "-", which is for
	 * a patient's history only (the merged-away half of a merge). NULL
	 * reads as "": admins only.
	 */
	const char *notify;
};

/* A row of hospitals. */
struct registry_hospital {
	const char *code;
	const char *name;
	int role;
	int active;
};

/* A row of pairs: the steward's worklist (registry_duplicates.c). a < b
 * in strcmp order, so (a, b) names a pair once. */
enum registry_pair_state {
	PAIR_OPEN = 1,
	PAIR_DISMISSED,
	PAIR_MERGED
};
struct registry_pair {
	int64_t id;
	char a[REGISTRY_PID_MAX], b[REGISTRY_PID_MAX];
	double score;
	int grade; /* enum match_grade */
	const char *reason;
	int state; /* enum registry_pair_state */
	int64_t found_ms;
};

/* Counts for stats. */
struct registry_counts {
	uint64_t patients;    /* live */
	uint64_t identifiers; /* all */
	uint64_t merged;      /* merged away */
	uint64_t last_seq;
};

typedef int (*registry_ident_cb)(
    void *arg, const char *domain, const char *value);
typedef int (*registry_pid_cb)(void *arg, const char *pid);
typedef int (*registry_event_cb)(void *arg, const struct registry_event *ev);
typedef int (*registry_hospital_cb)(
    void *arg, const struct registry_hospital *h);
typedef int (*registry_pair_cb)(void *arg, const struct registry_pair *pr);
typedef int (*registry_count_cb)(void *arg, const char *key, uint64_t n);
/* A candidate for matching: its row and its cn-id ("" when none). */
/* A candidate's cheap columns, before its row is copied: 0 skips it. */
typedef int (*registry_candidate_pre_cb)(
    void *arg, int sex, const char *birth_date, const char *phone);
typedef int (*registry_candidate_cb)(
    void *arg, const struct registry_patient *p, const char *cn_id);

/* One blocking key of a query: its kind (enum match_key_kind of
 * match/match.h) and the key itself. */
struct registry_block_key {
	int kind;
	const char *key;
};

struct registry_backend {
	const char *name;
	/* path is what follows the scheme; writer creates and migrates. */
	void *(*open)(const char *path, int writer, char *err, size_t errlen);
	void (*close)(void *h);
	int (*ping)(void *h);

	int (*begin)(void *h, int write);
	/* 1 while a transaction is open (a store may end one on an error). */
	int (*in_txn)(void *h);
	int (*commit)(void *h);
	int (*rollback)(void *h);
	int (*savepoint)(void *h);
	int (*release)(void *h);
	int (*rollback_to)(void *h);

	/* Identifier -> owning patient id (pidlen >= REGISTRY_PID_MAX). */
	int (*ident_owner)(
	    void *h, const char *domain, const char *value, char *pid);
	/* Identifier -> its patient's row, in one step. */
	int (*ident_patient)(void *h, const char *domain, const char *value,
	    struct registry_arena *a, struct registry_patient *p);
	/* Identifier -> its patient's row and every identifier the patient
	 * holds (cb, in domain and value order), in one statement: one
	 * consistent snapshot with no explicit transaction. */
	int (*ident_record)(void *h, const char *domain, const char *value,
	    struct registry_arena *a, struct registry_patient *p,
	    registry_ident_cb cb, void *arg);
	/* The same for a patient id: its row and identifiers, one statement. */
	int (*patient_record)(void *h, const char *pid,
	    struct registry_arena *a, struct registry_patient *p,
	    registry_ident_cb cb, void *arg);
	int (*ident_insert)(
	    void *h, const char *domain, const char *value, const char *pid);
	int (*ident_delete)(void *h, const char *domain, const char *value);
	int (*ident_move)(
	    void *h, const char *domain, const char *value, const char *pid);
	/* A batch is about to name these identifiers: a store that keeps
	 * what its batch read (PostgreSQL) reads who holds each, at once.
	 * NULL in a store where a read costs no round trip. */
	int (*ident_hint)(void *h, const char *const *domains,
	    const char *const *values, size_t n);
	/* The identifiers of a patient, ordered by domain and value. */
	int (*patient_idents)(
	    void *h, const char *pid, registry_ident_cb cb, void *arg);

	int (*patient_get)(void *h, const char *pid, struct registry_arena *a,
	    struct registry_patient *p);
	int (*patient_insert)(
	    void *h, const struct registry_patient *p, int64_t now_ms);
	/* Rewrite every column but the id. */
	int (*patient_update)(void *h, const struct registry_patient *p);
	/* Live patients after the id after (""
	 * for the start), in id order. */
	int (*patient_page)(void *h, const char *after, unsigned limit,
	    registry_pid_cb cb, void *arg);
	/* Live patients matching every non-empty field, at most limit. */
	int (*patient_search)(void *h, const char *name, const char *birth_date,
	    int sex, unsigned limit, registry_pid_cb cb, void *arg);
	/* Live durable patients filed under at least min_keys of the
	 * blocking keys (among the newest cap of each key's list), each once,
	 * with rows in a. pre (may be NULL) sees each one's cheap columns
	 * first, under the store's lock, and skips it by returning 0: its row
	 * is then not copied. NULL in a store that keeps no blocking index. */
	int (*patient_candidates)(void *h,
	    const struct registry_block_key *keys, size_t nkeys, unsigned cap,
	    unsigned min_keys, struct registry_arena *a,
	    registry_candidate_pre_cb pre, registry_candidate_cb cb, void *arg);

	/* How many records are filed under one blocking key (0 when
	 * none). NULL in a store that keeps no blocking index. */
	int (*block_count)(void *h, int kind, const char *key, uint64_t *count);
	/* The match model learnt from the registry (NULL: the defaults),
	 * shared by every handle of it; model_set publishes a new one. NULL
	 * in a store that keeps none. */
	const struct match_model *(*model_get)(void *h);
	int (*model_set)(void *h, const struct match_model *mm);

	int (*event_append)(void *h, struct registry_event *ev);
	/* The newest limit events of a patient, newest first. */
	int (*event_list)(void *h, const char *pid, unsigned limit,
	    registry_event_cb cb, void *arg);
	/* Every event after seq after, oldest first, at most limit; a read
	 * handle sees only durable ones and never waits for more. */
	int (*event_scan)(void *h, uint64_t after, unsigned limit,
	    registry_event_cb cb, void *arg);
	/* Events up to this seq were dropped by retention (0: none); with
	 * a hospital code (not NULL), the last event that hospital could see
	 * among those dropped. */
	int (*event_floor)(void *h, const char *code, uint64_t *floor);

	int (*hospital_get)(void *h, const char *code, struct registry_arena *a,
	    struct registry_hospital *out);
	int (*hospital_put)(
	    void *h, const struct registry_hospital *hosp, int64_t now_ms);
	int (*hospital_list)(void *h, registry_hospital_cb cb, void *arg);

	int (*merge_insert)(void *h, const char *survivor,
	    const char *duplicate, uint64_t seq, int64_t *merge_id);
	int (*merge_ident_insert)(
	    void *h, int64_t merge_id, const char *domain, const char *value);
	/* The latest merge of duplicate not yet undone. */
	int (*merge_find)(
	    void *h, const char *duplicate, int64_t *merge_id, char *survivor);
	int (*merge_idents)(
	    void *h, int64_t merge_id, registry_ident_cb cb, void *arg);
	int (*merge_undo)(void *h, int64_t merge_id);

	/* The worklist. pair_insert gives a new pair the next id (or keeps
	 * the one set, when replayed); pair_state changes only the state.
	 * pair_find, pair_get and pair_list are the writer's (NULL in a
	 * store that only folds them in). */
	int (*pair_insert)(void *h, struct registry_pair *pr);
	int (*pair_state)(void *h, int64_t id, int state);
	int (*pair_find)(void *h, const char *a, const char *b,
	    struct registry_arena *ar, struct registry_pair *out);
	int (*pair_get)(void *h, int64_t id, struct registry_arena *ar,
	    struct registry_pair *out);
	int (*pair_list)(void *h, registry_pair_cb cb, void *arg);

	/* Totals, then cb once per domain with its identifier count (cb
	 * NULL: the totals only). */
	int (*counts)(void *h, struct registry_counts *c, registry_count_cb cb,
	    void *arg);
};

extern const struct registry_backend registry_sqlite;
extern const struct registry_backend registry_pg;
/* A PostgreSQL writer committed events first..last and its own feed has
 * them: the cross-broker feed need not hand them on again
 * (registry_pgfeed.c). */
void registry_pgfeed_own(uint64_t first, uint64_t last);
/* The channel a PostgreSQL writer NOTIFYs at commit (registry_pgfeed.c). */
#define REGISTRY_PG_CHANNEL "onecard_events"

#endif
