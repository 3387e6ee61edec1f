/*
 * registry_events.c: notifications read the event log. A subscription is a
 * cursor over it: each call reads a chunk of events after the cursor, keeps
 * those the subscriber may see, and frames each as a pushed reply with the
 * patient's record. The events wait in the log, never in a subscriber's
 * queue; the caller decides when to read the next chunk.
 */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "log.h"
#include "registry_int.h"
#include "wire.h"

/* The events of one chunk, copied out of the store into the arena. */
struct ev_vec {
	struct registry_arena *a;
	struct registry_event *v;
	unsigned n, cap;
};

static int
ev_vec_add(void *arg, const struct registry_event *ev)
{
	struct ev_vec *vv = arg;
	struct registry_event *e = &vv->v[vv->n];

	if (vv->n == vv->cap)
		return -1;
	*e = *ev;
	if ((e->op = arena_strdup(vv->a, ev->op)) == NULL ||
	    (e->patient_id = arena_strdup(vv->a, ev->patient_id)) == NULL ||
	    (e->actor = arena_strdup(vv->a, ev->actor)) == NULL ||
	    (e->detail = arena_strdup(vv->a, ev->detail)) == NULL ||
	    (e->other_patient_id = arena_strdup(vv->a,
		 ev->other_patient_id ? ev->other_patient_id : "")) == NULL ||
	    (e->notify = arena_strdup(vv->a, ev->notify ? ev->notify : "")) ==
		NULL)
		return -1;
	vv->n++;
	return 0;
}

/* May who hear of ev? Admins hear everything but a history-only half. */
static int
event_visible(const struct registry_event *ev, const struct actor *who)
{
	char key[80]; /* " CODE ": a code is at most 64 bytes */

	if (strcmp(ev->notify, "-") == 0)
		return 0;
	if (who->role == ONECARD__V1__ROLE__ROLE_ADMIN)
		return 1;
	snprintf(key, sizeof(key), " %s ", who->cn);
	return strstr(ev->notify, key) != NULL;
}

/* Frame ev as Reply{id 0, OK, event} with its patient's record. */
static int
event_append(
    struct reg_op *o, const struct registry_event *ev, struct evbuffer *out)
{
	struct registry *reg = o->reg;
	Onecard__V1__Reply r = ONECARD__V1__REPLY__INIT;
	Onecard__V1__Event e = ONECARD__V1__EVENT__INIT;
	struct ident_vec iv = {.a = &reg->arena};
	struct registry_patient p;
	const char *pid;
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
			return -1;
		if (rc == 0 &&
		    op_patient_build(o, &p, &iv, &e.patient) != CODE_OK)
			return -1;
	}
	r.code = ONECARD__V1__CODE__OK;
	r.result_case = ONECARD__V1__REPLY__RESULT_EVENT;
	r.event = &e;
	return wire_append(out, &r.base);
}

int
registry_events_push(struct registry *reg, const struct actor *who,
    uint64_t *cursor, unsigned max, struct evbuffer *out, unsigned *pushed)
{
	struct ev_vec vv = {.a = &reg->arena};
	struct reg_op o;
	uint64_t floor;
	int rc, own_txn = !reg->in_batch;

	*pushed = 0;
	memset(&o, 0, sizeof(o));
	o.reg = reg;
	o.who = who;
	arena_reset(&reg->arena);
	if ((vv.v = arena_alloc(&reg->arena, max * sizeof(*vv.v))) == NULL)
		return -1;
	vv.cap = max;
	/* One read transaction: the events and the records agree. */
	if (own_txn && reg->be->begin(reg->h, 0) < 0)
		return -1;
	/* Events after the cursor dropped by retention, before or while it
	 * read: the subscriber cannot have them all. */
	if ((rc = reg->be->event_floor(reg->h, &floor)) < 0)
		goto done;
	if (*cursor < floor) {
		rc = REGISTRY_EVENTS_GONE;
		goto done;
	}
	rc = reg->be->event_scan(reg->h, *cursor, max, ev_vec_add, &vv);
	if (rc < 0) {
		log_warnx("registry: cannot read events after %llu",
		    (unsigned long long)*cursor);
		goto done;
	}
	if ((rc = reg->be->event_floor(reg->h, &floor)) < 0)
		goto done;
	if (*cursor < floor) {
		rc = REGISTRY_EVENTS_GONE;
		goto done;
	}
	for (unsigned i = 0; i < vv.n; i++) {
		if (event_visible(&vv.v[i], who)) {
			if (event_append(&o, &vv.v[i], out) == -1) {
				log_warnx("registry: cannot send event %llu",
				    (unsigned long long)vv.v[i].seq);
				rc = -1;
				goto done;
			}
			(*pushed)++;
		}
		*cursor = vv.v[i].seq;
	}
	rc = (int)vv.n;
done:
	if (own_txn)
		reg->be->rollback(reg->h);
	arena_reset(&reg->arena);
	return rc == REGISTRY_EVENTS_GONE ? rc : rc < 0 ? -1 : rc;
}

static int
events_count_none(void *arg, const char *key, uint64_t n)
{
	(void)arg;
	(void)key;
	(void)n;
	return 0;
}

int
registry_events_range(struct registry *reg, uint64_t *last, uint64_t *floor)
{
	struct registry_counts c;
	int rc;

	*last = *floor = 0;
	memset(&c, 0, sizeof(c));
	if ((rc = reg->be->counts(reg->h, &c, events_count_none, NULL)) < 0 ||
	    (rc = reg->be->event_floor(reg->h, floor)) < 0)
		return -1;
	*last = c.last_seq;
	return 0;
}
