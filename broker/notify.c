/*
 * notify.c: subscriptions. Each lives on its connection's worker; the
 * worker reads the events after its cursor from the registry, a chunk at a
 * time, while the connection's output is under --max-pending-output. A
 * subscriber that does not read is thus paused with its events left in the
 * log; past --stall-timeout the connection's own deadline closes it (conn.c)
 * and the client resumes from its last seq. The writer's change feed only
 * moves the last event on and wakes the workers that hold subscribers.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "audit.h"
#include "log.h"
#include "notify.h"
#include "onecardd.h"
#include "wire.h"

/* Events read per turn: a backlog is caught up a chunk per loop pass, so
 * one subscriber never holds its worker for long. */
#define NOTIFY_CHUNK 256

struct sub {
	TAILQ_ENTRY(sub) entry; /* on w->subs */
	struct conn *c;
	struct worker *w;
	uint64_t cursor; /* the last event read (pushed or not for us) */
	uint64_t pushed;
	int slot;
};

/* What the metrics thread may read of a subscription. */
struct sub_slot {
	int used;
	char cn[ONECARDD_CN_MAX + 1];
	uint64_t conn_id;
	atomic_uint_fast64_t cursor;
	atomic_int_fast64_t behind_ms; /* since when behind; 0: caught up */
};

static struct {
	pthread_mutex_t lock; /* slots: claiming, releasing, rendering */
	struct sub_slot *slots;
	int max, used;
	atomic_uint_fast64_t last;   /* the last durable event */
	atomic_uint_fast64_t pushed; /* events pushed, every subscriber */
	atomic_uint_fast64_t total;  /* subscriptions ever */
	atomic_uint refresh;         /* the feed lost changes: ask the store */
} nt = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void notify_run(evutil_socket_t, short, void *);

static uint64_t
notify_now_ms(void)
{
	return onecardd_now_us() / 1000;
}

/* Raise the last event to seq (it only moves on). */
static void
notify_last_at_least(uint64_t seq)
{
	uint64_t cur = atomic_load(&nt.last);

	while (cur < seq && !atomic_compare_exchange_weak(&nt.last, &cur, seq))
		;
}

int
notify_init(int max_subscribers)
{
	nt.max = max_subscribers;
	if ((nt.slots = calloc((size_t)nt.max, sizeof(*nt.slots))) == NULL)
		return -1;
	return 0;
}

void
notify_free(void)
{
	free(nt.slots);
	nt.slots = NULL;
}

int
notify_worker_init(struct worker *w)
{
	uint64_t last, floor;

	TAILQ_INIT(&w->subs);
	atomic_store(&w->nsubs, 0);
	w->notify_gen = atomic_load(&nt.refresh);
	if ((w->notify_ev = event_new(w->base, -1, 0, notify_run, w)) == NULL)
		return -1;
	if (registry_events_range(w->reg, NULL, 0, &last, &floor) == -1)
		return -1;
	notify_last_at_least(last);
	return 0;
}

void
notify_worker_free(struct worker *w)
{
	if (w->notify_ev != NULL)
		event_free(w->notify_ev);
	w->notify_ev = NULL;
}

void
notify_feed(const struct registry_change *c, size_t n)
{
	if (c == NULL) {
		atomic_fetch_add(&nt.refresh, 1);
		return;
	}
	for (size_t i = 0; i < n; i++)
		notify_last_at_least(c[i].seq);
}

/*
 * Read on for w's subscribers, NOTIFY_COALESCE_US from now. Any thread.
 * The batches a busy writer commits every millisecond or so then go out
 * together: one write per subscriber for several of them, and so far
 * fewer system calls and wake-ups on both sides, for a delay well inside
 * the latency budget.
 */
#define NOTIFY_COALESCE_US 2000

void
notify_wake(struct worker *w)
{
	static const struct timeval tv = {0, NOTIFY_COALESCE_US};

	if (atomic_load_explicit(&w->nsubs, memory_order_relaxed) > 0 &&
	    !atomic_exchange(&w->notify_armed, 1))
		event_add(w->notify_ev, &tv);
}

/* Publish s's position for the metrics. */
static void
notify_publish(struct sub *s, uint64_t last)
{
	struct sub_slot *sl = &nt.slots[s->slot];

	atomic_store(&sl->cursor, s->cursor);
	if (s->cursor >= last)
		atomic_store(&sl->behind_ms, 0);
	else if (atomic_load(&sl->behind_ms) == 0)
		atomic_store(&sl->behind_ms, (int64_t)notify_now_ms());
}

/*
 * Read one chunk for s into its output. The number of events read
 * (NOTIFY_CHUNK: there may be more), or -1 when s's connection was closed.
 */
static int
notify_pump(struct sub *s)
{
	struct actor who = {conn_cn(s->c), conn_role(s->c)};
	const struct policy_who *pol = conn_policy(s->c);
	struct evbuffer *out = conn_output(s->c), *in = out;
	unsigned pushed = 0;
	int rc;

	/*
	 * The frames come from the read handle's event cache, encoded once
	 * for every subscriber on the worker with the whole record. A
	 * subscriber whose disclosure policy is not full gets them decoded,
	 * filtered and encoded again for it alone (policy_filter_frames);
	 * the cache keeps the shared bytes, and a full subscriber (the
	 * default, and every admin) is sent them untouched.
	 */
	if (!policy_is_full(pol) && (in = conn_policy_in(s->w)) == NULL) {
		conn_close_with(s->c, ONECARD__V1__CODE__UNAVAILABLE,
		    "subscribe: broker out of memory; subscribe again from "
		    "the last seq you handled");
		return -1;
	}
	rc = registry_events_push(
	    s->w->reg, &who, &s->cursor, NOTIFY_CHUNK, in, &pushed);
	if (in != out)
		policy_filter_frames(pol, NULL, 0, in, out);
	if (rc == REGISTRY_EVENTS_GONE) {
		conn_close_with(s->c, ONECARD__V1__CODE__OUT_OF_RANGE,
		    "subscribe: the events after the last one sent are no "
		    "longer kept (--event-retention); resync with lookups, "
		    "then subscribe from_now");
		return -1;
	}
	if (rc < 0) {
		conn_close_with(s->c, ONECARD__V1__CODE__UNAVAILABLE,
		    "subscribe: the event log cannot be read now; subscribe "
		    "again from the last seq you handled");
		return -1;
	}
	if (pushed > 0) {
		s->pushed += pushed;
		atomic_fetch_add(&nt.pushed, pushed);
		conn_pushed(s->c);
	}
	notify_publish(s, atomic_load(&nt.last));
	return rc;
}

/* The worker's turn for its subscribers: a chunk each that is behind. */
static void
notify_run(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct sub *s, *next;
	uint64_t last, floor;
	unsigned gen = atomic_load(&nt.refresh);
	int again = 0;

	(void)fd;
	(void)what;
	atomic_store(&w->notify_armed, 0);
	/* The feed lost changes (out of memory): how far is the log now? */
	if (gen != w->notify_gen &&
	    registry_events_range(w->reg, NULL, 0, &last, &floor) == 0) {
		notify_last_at_least(last);
		w->notify_gen = gen;
	}
	last = atomic_load(&nt.last);
	for (s = TAILQ_FIRST(&w->subs); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (s->cursor >= last) {
			notify_publish(s, last);
			continue;
		}
		if (!conn_may_push(s->c)) {
			notify_publish(s, last);
			continue; /* paused: notify_wrote wakes it */
		}
		if (notify_pump(s) == NOTIFY_CHUNK && conn_may_push(s->c))
			again = 1;
	}
	if (again)
		event_active(w->notify_ev, 0, 0);
}

void
notify_wrote(struct sub *s)
{
	if (s->cursor < atomic_load(&nt.last))
		event_active(s->w->notify_ev, 0, 0);
}

/* Claim a metrics slot for c; -1 when --max-subscribers are in use. */
static int
notify_slot_claim(struct conn *c)
{
	int i = -1;

	pthread_mutex_lock(&nt.lock);
	if (nt.used < nt.max)
		for (i = 0; i < nt.max && nt.slots[i].used; i++)
			;
	if (i >= 0 && i < nt.max) {
		struct sub_slot *sl = &nt.slots[i];

		sl->used = 1;
		snprintf(sl->cn, sizeof(sl->cn), "%s", conn_cn(c));
		sl->conn_id = conn_id(c);
		atomic_store(&sl->cursor, 0);
		atomic_store(&sl->behind_ms, 0);
		nt.used++;
	} else
		i = -1;
	pthread_mutex_unlock(&nt.lock);
	return i;
}

static void
notify_slot_release(int i)
{
	pthread_mutex_lock(&nt.lock);
	nt.slots[i].used = 0;
	nt.used--;
	pthread_mutex_unlock(&nt.lock);
}

/* Answer req with code and message, and count it. */
static void notify_refuse(struct evbuffer *out, const Onecard__V1__Request *req,
    struct op_result *res, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
notify_refuse(struct evbuffer *out, const Onecard__V1__Request *req,
    struct op_result *res, int code, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	res->code = code;
	wire_append_error(out, req->id, code, msg);
}

void
notify_subscribe(
    struct conn *c, const Onecard__V1__Request *req, struct op_result *res)
{
	const Onecard__V1__Subscribe *sr = req->subscribe;
	Onecard__V1__Reply r = ONECARD__V1__REPLY__INIT;
	Onecard__V1__Event ev = ONECARD__V1__EVENT__INIT;
	struct evbuffer *out = conn_output(c);
	struct worker *w = conn_worker(c);
	struct actor who;
	uint64_t last, floor, from;
	struct sub *s;
	int slot;

	if (sr == NULL) {
		notify_refuse(out, req, res,
		    ONECARD__V1__CODE__INVALID_ARGUMENT, "subscribe: missing");
		return;
	}
	snprintf(res->target, sizeof(res->target), "from_seq=%llu%s",
	    (unsigned long long)sr->from_seq, sr->from_now ? " from_now" : "");
	if (conn_sub(c) != NULL) {
		notify_refuse(out, req, res, ONECARD__V1__CODE__CONFLICT,
		    "subscribe: this connection already has a subscription "
		    "(one each; open another connection for a second)");
		return;
	}
	who.cn = conn_cn(c);
	who.role = conn_role(c);
	if (registry_events_range(w->reg, &who,
		sr->from_now ? UINT64_MAX : sr->from_seq, &last,
		&floor) == -1) {
		notify_refuse(out, req, res, ONECARD__V1__CODE__UNAVAILABLE,
		    "subscribe: the event log cannot be read now; retry");
		return;
	}
	notify_last_at_least(last);
	from = sr->from_now ? last : sr->from_seq;
	if (from > last) {
		notify_refuse(out, req, res, ONECARD__V1__CODE__OUT_OF_RANGE,
		    "subscribe.from_seq: %llu is after the registry's last "
		    "event, %llu (a registry restored from a backup?); resync "
		    "with lookups, then subscribe from_now",
		    (unsigned long long)from, (unsigned long long)last);
		return;
	}
	if (from < floor) {
		notify_refuse(out, req, res, ONECARD__V1__CODE__OUT_OF_RANGE,
		    "subscribe.from_seq: the events up to %llu are no longer "
		    "kept (--event-retention); resync with lookups, then "
		    "subscribe from_now",
		    (unsigned long long)floor);
		return;
	}
	if ((slot = notify_slot_claim(c)) == -1) {
		notify_refuse(out, req, res,
		    ONECARD__V1__CODE__RESOURCE_EXHAUSTED,
		    "subscribe: the broker serves %d subscriptions already "
		    "(--max-subscribers); retry later",
		    nt.max);
		return;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		notify_slot_release(slot);
		notify_refuse(out, req, res, ONECARD__V1__CODE__INTERNAL,
		    "subscribe: out of memory");
		return;
	}
	s->c = c;
	s->w = w;
	s->cursor = from;
	s->slot = slot;
	TAILQ_INSERT_TAIL(&w->subs, s, entry);
	atomic_fetch_add(&w->nsubs, 1);
	atomic_fetch_add(&nt.total, 1);
	conn_set_sub(c, s);
	notify_publish(s, atomic_load(&nt.last));
	log_info("subscribe id=%llu cn=%s from_seq=%llu last=%llu",
	    (unsigned long long)conn_id(c), conn_cn(c),
	    (unsigned long long)from, (unsigned long long)last);

	ev.seq = last;
	r.id = req->id;
	r.code = ONECARD__V1__CODE__OK;
	r.result_case = ONECARD__V1__REPLY__RESULT_EVENT;
	r.event = &ev;
	res->code = ONECARD__V1__CODE__OK;
	wire_append(out, &r.base);
	if (s->cursor < atomic_load(&nt.last))
		event_active(w->notify_ev, 0, 0);
}

void
notify_end(struct sub *s, const char *reason)
{
	struct worker *w = s->w;
	char detail[96];

	TAILQ_REMOVE(&w->subs, s, entry);
	atomic_fetch_sub(&w->nsubs, 1);
	notify_slot_release(s->slot);
	log_info("unsubscribe id=%llu cn=%s seq=%llu pushed=%llu reason=\"%s\"",
	    (unsigned long long)conn_id(s->c), conn_cn(s->c),
	    (unsigned long long)s->cursor, (unsigned long long)s->pushed,
	    reason);
	if (audit_enabled()) {
		struct audit_entry e = {
		    .actor = conn_cn(s->c),
		    .role = conn_role(s->c),
		    .op = "unsubscribe",
		    .target = "",
		    .patient_id = "",
		    .code = ONECARD__V1__CODE__OK,
		    .detail = detail,
		};

		snprintf(detail, sizeof(detail), "seq=%llu pushed=%llu",
		    (unsigned long long)s->cursor,
		    (unsigned long long)s->pushed);
		audit_log(&e);
	}
	free(s);
}

/* A CN as a label value: quotes, backslashes and line ends escaped. */
static void
notify_label(struct evbuffer *b, const char *cn, uint64_t id)
{
	evbuffer_add_printf(b, "{hospital=\"");
	for (const char *p = cn; *p; p++)
		if (*p == '"' || *p == '\\')
			evbuffer_add_printf(b, "\\%c", *p);
		else if (*p == '\n')
			evbuffer_add_printf(b, "\\n");
		else
			evbuffer_add(b, p, 1);
	evbuffer_add_printf(b, "\",conn=\"%llu\"}", (unsigned long long)id);
}

void
notify_render(struct evbuffer *b)
{
	uint64_t last = atomic_load(&nt.last), now = notify_now_ms();
	int used;

	pthread_mutex_lock(&nt.lock);
	used = nt.used;
	pthread_mutex_unlock(&nt.lock);
	evbuffer_add_printf(b,
	    "# HELP onecard_subscribers Subscriptions open now.\n"
	    "# TYPE onecard_subscribers gauge\n"
	    "onecard_subscribers %d\n"
	    "# HELP onecard_subscriptions_total Subscriptions ever opened.\n"
	    "# TYPE onecard_subscriptions_total counter\n"
	    "onecard_subscriptions_total %llu\n"
	    "# HELP onecard_events_pushed_total Events sent to subscribers.\n"
	    "# TYPE onecard_events_pushed_total counter\n"
	    "onecard_events_pushed_total %llu\n"
	    "# HELP onecard_event_last_seq The registry's last durable "
	    "event.\n"
	    "# TYPE onecard_event_last_seq gauge\n"
	    "onecard_event_last_seq %llu\n",
	    used, (unsigned long long)atomic_load(&nt.total),
	    (unsigned long long)atomic_load(&nt.pushed),
	    (unsigned long long)last);
	evbuffer_add_printf(b,
	    "# HELP onecard_subscriber_lag_events Events after a "
	    "subscriber's cursor, by hospital and connection.\n"
	    "# TYPE onecard_subscriber_lag_events gauge\n");
	pthread_mutex_lock(&nt.lock);
	for (int i = 0; i < nt.max; i++) {
		struct sub_slot *sl = &nt.slots[i];
		uint64_t cur = atomic_load(&sl->cursor);

		if (!sl->used)
			continue;
		evbuffer_add_printf(b, "onecard_subscriber_lag_events");
		notify_label(b, sl->cn, sl->conn_id);
		evbuffer_add_printf(b, " %llu\n",
		    (unsigned long long)(last > cur ? last - cur : 0));
	}
	evbuffer_add_printf(b,
	    "# HELP onecard_subscriber_lag_seconds How long a subscriber "
	    "has been behind the last event (0: caught up).\n"
	    "# TYPE onecard_subscriber_lag_seconds gauge\n");
	for (int i = 0; i < nt.max; i++) {
		struct sub_slot *sl = &nt.slots[i];
		int64_t since = atomic_load(&sl->behind_ms);

		if (!sl->used)
			continue;
		evbuffer_add_printf(b, "onecard_subscriber_lag_seconds");
		notify_label(b, sl->cn, sl->conn_id);
		evbuffer_add_printf(b, " %.3f\n",
		    since > 0 && (uint64_t)since < now
			? (double)(now - (uint64_t)since) / 1000.0
			: 0.0);
	}
	pthread_mutex_unlock(&nt.lock);
}
