/*
 * registry_events.c: notifications read the event log. A subscription is a
 * cursor over it: each call reads a chunk of events after the cursor, keeps
 * those the subscriber may see, and frames each as a pushed reply with the
 * patient's record. The events wait in the log, never in a subscriber's
 * queue; the caller decides when to read the next chunk.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "log.h"
#include "registry_int.h"
#include "wire.h"

/*
 * The frames of recent events, by seq, for this read handle: every
 * subscriber on a worker is sent the same bytes for an event, so each is
 * read and encoded once, not once per subscriber.
 */
#define EV_CACHE_SLOTS 1024

struct ev_frame {
	uint64_t seq; /* 0: empty */
	uint8_t *buf;
	size_t len, cap;
};

struct ev_cache {
	struct ev_frame f[EV_CACHE_SLOTS];
};

void
registry_events_free(struct registry *reg)
{
	if (reg->evcache == NULL)
		return;
	for (size_t i = 0; i < EV_CACHE_SLOTS; i++)
		free(reg->evcache->f[i].buf);
	free(reg->evcache);
	reg->evcache = NULL;
}

/* The cached frame of seq, or NULL. */
static const struct ev_frame *
ev_cached(const struct registry *reg, uint64_t seq)
{
	const struct ev_frame *f = &reg->evcache->f[seq % EV_CACHE_SLOTS];

	return f->seq == seq && f->len > 0 ? f : NULL;
}

/* One chunk's scan: the events read, those sent from the cache at once,
 * and, from the first that is not cached on, copies to encode after. */
struct ev_scan {
	struct registry *reg;
	const struct actor *who;
	struct evbuffer *out;
	struct registry_event *v; /* deferred, in the arena */
	unsigned n, cap;
	unsigned read, pushed;
	uint64_t last;
	int deferring;
	int failed;
};

/* May who hear of ev? Admins hear everything but a history-only half. */
static int
event_visible(const struct registry_event *ev, const struct actor *who)
{
	const char *notify = ev->notify ? ev->notify : "";
	char key[80]; /* " CODE ": a code is at most 64 bytes */

	if (strcmp(notify, "-") == 0)
		return 0;
	if (who->role == ONECARD__V1__ROLE__ROLE_ADMIN)
		return 1;
	snprintf(key, sizeof(key), " %s ", who->cn);
	return strstr(notify, key) != NULL;
}

/* The store's callback, under its read lock: nothing here may read the
 * store again. */
static int
ev_scan_cb(void *arg, const struct registry_event *ev)
{
	struct ev_scan *sc = arg;
	struct registry_arena *a = &sc->reg->arena;
	const struct ev_frame *f;
	struct registry_event *e;

	sc->read++;
	sc->last = ev->seq;
	if (!event_visible(ev, sc->who))
		return 0;
	if (!sc->deferring && (f = ev_cached(sc->reg, ev->seq)) != NULL) {
		if (evbuffer_add(sc->out, f->buf, f->len) == -1) {
			sc->failed = 1;
			return -1;
		}
		sc->pushed++;
		return 0;
	}
	/* Sent in order: from the first to encode on, all wait. */
	sc->deferring = 1;
	if (sc->n == sc->cap) {
		sc->failed = 1;
		return -1;
	}
	e = &sc->v[sc->n];
	*e = *ev;
	if ((e->op = arena_strdup(a, ev->op)) == NULL ||
	    (e->patient_id = arena_strdup(a, ev->patient_id)) == NULL ||
	    (e->actor = arena_strdup(a, ev->actor)) == NULL ||
	    (e->detail = arena_strdup(a, ev->detail)) == NULL ||
	    (e->other_patient_id = arena_strdup(a,
		 ev->other_patient_id ? ev->other_patient_id : "")) == NULL) {
		sc->failed = 1;
		return -1;
	}
	e->notify = NULL;
	sc->n++;
	return 0;
}

/* Encode ev as Reply{id 0, OK, event} with its patient's record into its
 * cache slot. The frame, or NULL. */
static const struct ev_frame *
ev_encode(struct reg_op *o, const struct registry_event *ev)
{
	struct registry *reg = o->reg;
	Onecard__V1__Reply r = ONECARD__V1__REPLY__INIT;
	Onecard__V1__Event e = ONECARD__V1__EVENT__INIT;
	struct ident_vec iv = {.a = &reg->arena};
	struct ev_frame *f = &reg->evcache->f[ev->seq % EV_CACHE_SLOTS];
	struct registry_patient p;
	const char *pid;
	size_t size;
	int rc;

	e.seq = ev->seq;
	e.op = (char *)ev->op;
	e.patient_id = (char *)ev->patient_id;
	e.actor = (char *)ev->actor;
	e.time_ms = ev->time_ms;
	e.detail = (char *)ev->detail;
	e.other_patient_id = (char *)ev->other_patient_id;
	/* The record after the change: for unmerge the one restored. */
	pid = strcmp(ev->op, "unmerge") == 0 ? ev->other_patient_id
					     : ev->patient_id;
	if (pid[0] != '\0') {
		rc = reg->be->patient_record(
		    reg->h, pid, &reg->arena, &p, ident_vec_add, &iv);
		if (rc < 0)
			return NULL;
		if (rc == 0 &&
		    op_patient_build(o, &p, &iv, &e.patient) != CODE_OK)
			return NULL;
	}
	r.code = ONECARD__V1__CODE__OK;
	r.result_case = ONECARD__V1__REPLY__RESULT_EVENT;
	r.event = &e;
	size = wire_frame_size(&r.base);
	f->seq = 0;
	if (size > f->cap) {
		uint8_t *nb = realloc(f->buf, size);

		if (nb == NULL)
			return NULL;
		f->buf = nb;
		f->cap = size;
	}
	if ((f->len = wire_encode(&r.base, f->buf, f->cap)) != size)
		return NULL;
	f->seq = ev->seq;
	return f;
}

/*
 * How far retention dropped what who could see: the floor of every event
 * for an admin; for a hospital, the last event it could see among those
 * dropped (asked only when the cursor is under the floor: the cheap case
 * is the common one).
 */
static int
events_floor(struct registry *reg, const struct actor *who, uint64_t cursor,
    uint64_t *floor)
{
	int rc;

	if ((rc = reg->be->event_floor(reg->h, NULL, floor)) < 0 ||
	    cursor >= *floor || who == NULL ||
	    who->role == ONECARD__V1__ROLE__ROLE_ADMIN)
		return rc;
	return reg->be->event_floor(reg->h, who->cn, floor);
}

int
registry_events_push(struct registry *reg, const struct actor *who,
    uint64_t *cursor, unsigned max, struct evbuffer *out, unsigned *pushed)
{
	struct ev_scan sc = {.reg = reg, .who = who, .out = out, .cap = max};
	const struct ev_frame *f;
	struct reg_op o;
	uint64_t floor;
	int rc, own_txn = !reg->in_batch;

	*pushed = 0;
	memset(&o, 0, sizeof(o));
	o.reg = reg;
	o.who = who;
	if (reg->evcache == NULL &&
	    (reg->evcache = calloc(1, sizeof(*reg->evcache))) == NULL)
		return -1;
	arena_reset(&reg->arena);
	if ((sc.v = arena_alloc(&reg->arena, max * sizeof(*sc.v))) == NULL)
		return -1;
	/* One read transaction: the events and the records agree. */
	if (own_txn && reg->be->begin(reg->h, 0) < 0)
		return -1;
	/* Events after the cursor dropped by retention, before or while it
	 * read: the subscriber cannot have them all. */
	if ((rc = events_floor(reg, who, *cursor, &floor)) < 0)
		goto done;
	if (*cursor < floor) {
		rc = REGISTRY_EVENTS_GONE;
		goto done;
	}
	rc = reg->be->event_scan(reg->h, *cursor, max, ev_scan_cb, &sc);
	if (rc < 0 || sc.failed) {
		log_warnx("registry: cannot read events after %llu",
		    (unsigned long long)*cursor);
		rc = -1;
		goto done;
	}
	if ((rc = events_floor(reg, who, *cursor, &floor)) < 0)
		goto done;
	if (*cursor < floor) {
		rc = REGISTRY_EVENTS_GONE;
		goto done;
	}
	for (unsigned i = 0; i < sc.n; i++) {
		if ((f = ev_cached(reg, sc.v[i].seq)) == NULL &&
		    (f = ev_encode(&o, &sc.v[i])) == NULL) {
			log_warnx("registry: cannot send event %llu",
			    (unsigned long long)sc.v[i].seq);
			rc = -1;
			goto done;
		}
		if (evbuffer_add(out, f->buf, f->len) == -1) {
			rc = -1;
			goto done;
		}
		sc.pushed++;
	}
	if (sc.read > 0)
		*cursor = sc.last;
	*pushed = sc.pushed;
	rc = (int)sc.read;
done:
	if (own_txn)
		reg->be->rollback(reg->h);
	arena_reset(&reg->arena);
	return rc == REGISTRY_EVENTS_GONE ? rc : rc < 0 ? -1 : rc;
}

int
registry_events_range(struct registry *reg, const struct actor *who,
    uint64_t from, uint64_t *last, uint64_t *floor)
{
	struct registry_counts c;
	int rc;

	*last = *floor = 0;
	memset(&c, 0, sizeof(c));
	if ((rc = reg->be->counts(reg->h, &c, NULL, NULL)) < 0 ||
	    (rc = events_floor(reg, who, from, floor)) < 0)
		return -1;
	*last = c.last_seq;
	return 0;
}
