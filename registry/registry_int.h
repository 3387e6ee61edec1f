/*
 * registry_int.h: what the registry*.c files share and no other file sees:
 * the handle, an operation in flight, the reply codes and the op_* helpers
 * every operation uses. Only registry*.c include it.
 */
#ifndef ONECARD_REGISTRY_INT_H
#define ONECARD_REGISTRY_INT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "registry.h"
#include "registry_backend.h"
#include "validate.h"

#define DETAIL_MAX      512 /* bytes of an event's detail */
#define REGISTRY_MSGLEN 256

#define CODE_OK        ONECARD__V1__CODE__OK
#define CODE_INVALID   ONECARD__V1__CODE__INVALID_ARGUMENT
#define CODE_NOT_FOUND ONECARD__V1__CODE__NOT_FOUND
#define CODE_CONFLICT  ONECARD__V1__CODE__CONFLICT
#define CODE_DENIED    ONECARD__V1__CODE__PERMISSION_DENIED
#define CODE_VERSION   ONECARD__V1__CODE__VERSION_MISMATCH
#define CODE_UNIMPL    ONECARD__V1__CODE__UNIMPLEMENTED
#define CODE_INTERNAL  ONECARD__V1__CODE__INTERNAL
#define CODE_UNAVAIL   ONECARD__V1__CODE__UNAVAILABLE

struct arena_chunk;
struct ev_cache;

/* Scratch memory for one request; reset before the next. */
struct registry_arena {
	struct arena_chunk *head;  /* chunk being filled */
	struct arena_chunk *first; /* kept across resets */
};

struct registry {
	const struct registry_backend *be;
	void *h;
	int writer;
	int in_batch;
	int broken; /* a savepoint could not be undone: fail the batch */
	struct registry_limits lim;
	struct registry_arena arena;
	struct lcache *cache;     /* read handle: encoded lookup replies */
	struct ev_cache *evcache; /* read handle: encoded events */
	int cache_off;            /* no cache: off, or it could not be made */
	time_t today_at;          /* the second today was worked out in */
	int today;                /* YYYYMMDD, for validating a cached lookup */
	/* Writer: the batch's changes, for the change feed. */
	struct registry_change *feed;
	size_t nfeed, feed_cap;
	int feed_lost;      /* out of memory noting them: anything changed */
	uint64_t learnt_at; /* patients when the match model was learnt */
};

/* One operation in flight. */
struct reg_op {
	struct registry *reg;
	const struct actor *who;
	const Onecard__V1__Request *req;
	struct op_result *res;
	struct validate_ctx vc;
	int64_t now_ms;
	Onecard__V1__Reply reply;
	char msg[REGISTRY_MSGLEN];
	/* A lookup answered in one step with a live record: cache it. */
	int cacheable;
	/* A backend answered REGISTRY_ERETRY: undo the op and run it again. */
	int retry;
	size_t keylen;
	char key[VALIDATE_MAX_DOMAIN + 1 + VALIDATE_MAX_VALUE + 1];
};

/* A growing array of identifiers in the arena. */
struct ident_vec {
	struct registry_arena *a;
	Onecard__V1__Identifier **v;
	size_t n;
	size_t cap;
};

/* A growing array of patient ids in the arena. */
struct pid_vec {
	struct registry_arena *a;
	char **v;
	size_t n;
	size_t cap;
};

/* Today (YYYYMMDD in China), worked out again when the second changes. */
static inline int
registry_today(struct registry *reg)
{
	time_t now = time(NULL);

	if (now != reg->today_at) {
		reg->today = validate_today();
		reg->today_at = now;
	}
	return reg->today;
}

/* registry.c */
void registry_ident_text(
    const char *domain, const char *value, char *dst, size_t dstlen);
int op_fail(struct reg_op *o, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int op_backend(struct reg_op *o, int rc);
int op_nomem(struct reg_op *o);
int op_is_admin(const struct reg_op *o);
int op_need_admin(struct reg_op *o, const char *what);
void op_target(struct reg_op *o, const char *domain, const char *value);
void op_patient_id(struct reg_op *o, const char *pid);
int op_follow(struct reg_op *o, struct registry_patient *p);
int op_resolve(struct reg_op *o, const char *field,
    const Onecard__V1__Identifier *id, int follow, struct registry_patient *p,
    char *norm, int *kind);
int ident_vec_add(void *arg, const char *domain, const char *value);
int op_idents(struct reg_op *o, const char *pid, struct ident_vec *iv);
int op_patient_cn_id(struct reg_op *o, const char *pid, int *has, char *cnid);
void registry_events_free(struct registry *reg);
int op_patient_build(struct reg_op *o, const struct registry_patient *p,
    const struct ident_vec *iv, Onecard__V1__Patient **out);
int op_patient_msg(struct reg_op *o, const struct registry_patient *p,
    Onecard__V1__Patient **out);
int op_reply_patient(struct reg_op *o, const struct registry_patient *p);
int op_event(struct reg_op *o, const char *op, const char *pid,
    const char *domain, const char *detail);
int op_event_pair(struct reg_op *o, const char *op, const char *pid,
    const char *other, int quiet, const char *detail);
int op_event_hospital(
    struct reg_op *o, const char *op, const char *code, const char *detail);
int op_patient_save(struct reg_op *o, struct registry_patient *p);
int pid_vec_add(void *arg, const char *pid);
int op_dispatch(struct reg_op *o);
void op_init(struct reg_op *o, struct registry *reg, const struct actor *who,
    const Onecard__V1__Request *req, struct op_result *res);
void op_finish(struct reg_op *o, int code, struct evbuffer *out);

/* registry_arena.c */
void *arena_alloc(struct registry_arena *a, size_t size);
void arena_reset(struct registry_arena *a);
void arena_free(struct registry_arena *a);
char *arena_strdup(struct registry_arena *a, const char *s);

/* registry_patient.c */
int op_enroll(struct reg_op *o);
int op_link(struct reg_op *o);
int op_unlink(struct reg_op *o);
int op_update(struct reg_op *o);

/* registry_merge.c */
int op_merge(struct reg_op *o);
int op_unmerge(struct reg_op *o);

/* registry_admin.c */
int op_hospital_add(struct reg_op *o);
int op_hospital_revoke(struct reg_op *o);
int op_hospital_list(struct reg_op *o);

/* registry_match.c */
/* A record to find matches for; any field may be "" or NULL. */
struct op_match_query {
	const char *name, *birth_date, *phone, *address;
	const char *cn_id; /* its holder's cn-id: other cn-ids never match */
	int sex;
};
/* One ranked match; strings in the arena. */
struct op_match {
	struct registry_patient p;
	double score;
	int grade; /* enum match_grade (match/match.h) */
	const char *reason;
};
/* The registry's match model (NULL: the defaults) and, of its
 * population, the share with this name. */
const struct match_model *op_match_model(
    struct registry *reg, const char *name, double *share);
/* The live patients matching q at grade worst or better (but skip),
 * best first, at most max: *hits in the arena. quick: an enroll's check,
 * which looks at fewer candidates. A code. */
int op_match(struct reg_op *o, const struct op_match_query *q, int worst,
    int quick, const char *skip, size_t max, struct op_match **hits,
    size_t *nhits);
int op_search_ranked(struct reg_op *o);

/* registry_duplicates.c */
int op_pair_note(struct reg_op *o, const char *x, const struct op_match *hit,
    unsigned *added);
int op_duplicate_scan(struct reg_op *o);
int op_duplicate_list(struct reg_op *o);
int op_duplicate_show(struct reg_op *o);
int op_duplicate_dismiss(struct reg_op *o);
int op_duplicate_merge(struct reg_op *o);

/* registry_read.c */
int op_lookup(struct reg_op *o);
int op_search(struct reg_op *o);
int op_export(struct reg_op *o);
int op_history(struct reg_op *o);
int op_stats(struct reg_op *o);

/* Hand changes (NULL, 0: some were lost) to every subscriber of the change
 * feed: the writer's after a commit, registry_pgfeed.c's for other
 * brokers' commits. Subscribers may be called from both threads. */
void registry_feed_publish(const struct registry_change *c, size_t n);

#endif
