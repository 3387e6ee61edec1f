/*
 * load.c: the worker threads of onecard-bench and the load they make.
 *
 * Each thread owns an event_base, its share of the connections (libonecard
 * async handles) and its statistics; nothing of a thread is touched by
 * another while it runs. The main thread steers through the atomics in
 * struct bench (phase, deadline, shared key counters); a 10 ms tick on each
 * loop notices a new phase and publishes a copy of the statistics under the
 * thread's lock for the progress line. A connection keeps --depth requests
 * outstanding: each reply is timed against the send time kept in a ring
 * (replies come back in the order sent) and a new request goes out in its
 * place until the run's budget (deadline or request count) is spent. When a
 * thread has nothing left in flight it says so through threads_idle.
 *
 * The hot path is kept lean, as the bench shares the machine's cores with the
 * broker it measures: pings and lookups are encoded once and sent as bytes
 * (a lookup patches in its cn-id), replies come back raw with only their id
 * and code decoded (an enrollment's is decoded further, to count new
 * patients), nothing is allocated per request, and the clock is read once
 * per pass over a connection's replies: libonecard's recv_ns stamps the
 * replies of the pass and the requests sent from it. A request sent in a
 * pass is written when the pass ends, a few microseconds at most after its
 * stamp, so the latencies, kept to 1% (hist.c), stay honest.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "bench.h"

#define LOAD_TICK_US      10000
#define LOAD_PUBLISH_TICK 20 /* publish every 200 ms */
#define LOAD_ERRORS_TOLD  5

enum conn_state {
	BC_NEW,
	BC_CONNECTING,
	BC_UP,
	BC_DEAD,
};

struct inflight {
	uint64_t start;
	enum bench_op op;
	uint64_t k; /* an enrollment's write key */
};

struct bench_conn {
	struct bench_thread *t;
	struct onecard_async *ac;
	enum conn_state state;
	int active; /* counted in t->active: may still issue or owes replies */
	int pinged; /* OP_IDLE: its one ping went out */
	uint64_t rng;
	int waiting; /* for --rate to let it send */
	struct inflight *ring;
	unsigned head, count, cap;
	uint64_t lost_ns; /* --failover: when it was lost; 0 when up */
};

struct bench_thread {
	struct bench *b;
	int idx;
	pthread_t tid;
	int started;
	struct event_base *base;
	struct event *tick;
	unsigned ticks;
	struct event *pace; /* --rate: lets waiting connections send */
	double tokens;      /* requests this thread may send now */
	uint64_t tokens_ns; /* when tokens was last topped up */
	int nwaiting, pace_next;

	struct bench_conn *c;
	int n;
	int next_connect, connecting;
	int active;     /* connections still busy in this phase */
	int seen_phase; /* the phase this thread is working in */
	int phase_done; /* told threads_idle for seen_phase */
	int finishing;  /* closing everything: no new work */

	int reconnecting; /* --failover: lost, to be connected again */
	uint64_t *acked;  /* --acked: write keys answered OK */
	size_t nacked, acked_cap;

	struct bench_stats live; /* touched by this thread only */
	uint64_t start_ns, end_ns;

	pthread_mutex_t lock; /* guards snap */
	struct bench_stats snap;
	uint64_t snap_start, snap_end;
};

#define LOAD_PACE_US 100 /* --rate: how often waiting requests may go */

static void load_reply_cb(const struct onecard_raw_reply *, int, void *);
static void load_connect_next(struct bench_thread *);

uint64_t
load_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

const char *
load_op_name(enum bench_op op)
{
	switch (op) {
	case OP_LOOKUP:
		return "lookup";
	case OP_ENROLL:
		return "enroll";
	case OP_LINK:
		return "link";
	case OP_PING:
		return "ping";
	case OP_IDLE:
		return "idle";
	case OP_SEARCH:
		return "search";
	case OP_MIXED:
		return "mixed";
	}
	return "?";
}

/* Start counting afresh. */
static void
load_stats_reset(struct bench_stats *s)
{
	memset(s, 0, offsetof(struct bench_stats, hist));
	hist_reset(&s->hist);
}

/* Add one thread's counts to sum. */
static void
load_stats_add(struct bench_stats *sum, const struct bench_stats *s)
{
	sum->done += s->done;
	sum->errors += s->errors;
	sum->not_ok += s->not_ok;
	sum->created += s->created;
	for (int i = 0; i < BENCH_NCODES; i++)
		sum->codes[i] += s->codes[i];
	for (int i = 0; i < OP_MIXED; i++)
		sum->by_op[i] += s->by_op[i];
	hist_merge(&sum->hist, &s->hist);
}

/* Copy the live statistics where the main thread may read them. */
static void
load_publish(struct bench_thread *t)
{
	pthread_mutex_lock(&t->lock);
	t->snap = t->live;
	t->snap_start = t->start_ns;
	t->snap_end = t->end_ns;
	pthread_mutex_unlock(&t->lock);
}

/* Say a connection failure on stderr, a few times at most. */
static void
load_tell(struct bench *b, const char *what, const char *why)
{
	if (atomic_fetch_add(&b->errors_told, 1) < LOAD_ERRORS_TOLD)
		fprintf(stderr, "onecard-bench: %s: %s\n", what, why);
}

/* Pick a population key: an index into --keys-from or a key number. */
static uint64_t
load_pick(struct bench_conn *c)
{
	struct bench *b = c->t->b;
	uint64_t n = b->keyfile.n > 0 ? b->keyfile.n : b->keys;

	if (b->zipf)
		return zipf_next(&b->zipf_dist, &c->rng);
	return keys_rand(&c->rng) % n;
}

/* The cn-id of population key k. */
static void
load_key(struct bench *b, uint64_t k, char *out)
{
	if (b->keyfile.n > 0)
		memcpy(out, b->keyfile.value[k], KEYS_CNID_LEN + 1);
	else
		keys_cnid(KEYS_POPULATION, b->seed, k, out);
}

/* The kind of request to send next in the run. */
static enum bench_op
load_choose(struct bench_conn *c)
{
	struct bench *b = c->t->b;
	unsigned r;

	if (b->op != OP_MIXED)
		return b->op;
	r = (unsigned)(keys_rand(&c->rng) % b->mix_total);
	for (int i = 0; i < OP_MIXED; i++) {
		if (r < b->mix[i])
			return (enum bench_op)i;
		r -= b->mix[i];
	}
	return OP_LOOKUP;
}

/* May the run issue one more request at time now? Counts it when so. */
static int
load_budget(struct bench *b, uint64_t now)
{
	if (b->requests > 0)
		return atomic_fetch_add(&b->issued, 1) < b->requests;
	return now <
	    atomic_load_explicit(&b->deadline_ns, memory_order_relaxed);
}

/* Send a ping or a lookup from its encoded template. */
static int
load_send_encoded(struct bench_conn *c, enum bench_op op)
{
	struct bench *b = c->t->b;
	uint8_t buf[sizeof b->lookup_req];
	char cnid[KEYS_CNID_LEN + 1];

	if (op != OP_LOOKUP)
		return onecard_async_send_encoded(
		    c->ac, b->ping_req, b->ping_len, NULL, load_reply_cb, c);
	load_key(b, load_pick(c), cnid);
	memcpy(buf, b->lookup_req, b->lookup_len);
	memcpy(buf + b->lookup_key_at, cnid, KEYS_CNID_LEN);
	return onecard_async_send_encoded(
	    c->ac, buf, b->lookup_len, NULL, load_reply_cb, c);
}

/* Build and send the next request on c at time now; 1 sent, 0 nothing left
 * to send, -1 the connection failed. */
static int
load_issue(struct bench_conn *c, int phase, uint64_t now)
{
	struct bench *b = c->t->b;
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Ping ping = ONECARD__V1__PING__INIT;
	Onecard__V1__Lookup lookup = ONECARD__V1__LOOKUP__INIT;
	Onecard__V1__Enroll enroll = ONECARD__V1__ENROLL__INIT;
	Onecard__V1__Link link = ONECARD__V1__LINK__INIT;
	Onecard__V1__Search search = ONECARD__V1__SEARCH__INIT;
	Onecard__V1__Demographics demo = ONECARD__V1__DEMOGRAPHICS__INIT;
	Onecard__V1__Identifier id[2] = {
	    ONECARD__V1__IDENTIFIER__INIT, ONECARD__V1__IDENTIFIER__INIT};
	Onecard__V1__Identifier *idp[2] = {&id[0], &id[1]};
	char cnid[KEYS_CNID_LEN + 1], name[64], birth[11], visit[64];
	char domain[80];
	enum bench_op op;
	uint64_t k;
	int sex, r;

	if (phase == PHASE_POPULATE) {
		if ((k = atomic_fetch_add(&b->pop_next, 1)) >= b->keys)
			return 0;
		op = OP_ENROLL;
		keys_cnid(KEYS_POPULATION, b->seed, k, cnid);
	} else {
		op = load_choose(c);
		if (op == OP_IDLE) {
			/* One ping proves the connection is in; then quiet. */
			if (c->pinged)
				return 0;
			c->pinged = 1;
		} else if (!load_budget(b, now))
			return 0;
		k = 0;
		if (op == OP_PING || op == OP_IDLE || op == OP_LOOKUP) {
			r = load_send_encoded(c, op);
			goto sent;
		}
	}

	snprintf(domain, sizeof domain, "hosp:%s", b->hospital);
	switch (op) {
	case OP_PING:
	case OP_IDLE:
		req.op_case = ONECARD__V1__REQUEST__OP_PING;
		req.ping = &ping;
		break;
	case OP_LOOKUP:
		load_key(b, load_pick(c), cnid);
		id[0].domain = "cn-id";
		id[0].value = cnid;
		lookup.identifier = &id[0];
		req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
		req.lookup = &lookup;
		break;
	case OP_SEARCH:
		/* A ranked search by a patient's name and birth date: from
		 * --keys-from's demographics, else the population's. */
		k = load_pick(c);
		if (b->keyfile.name != NULL) {
			search.name = b->keyfile.name[k];
			search.birth_date = b->keyfile.birth[k];
		} else {
			keys_name(k, name, sizeof name);
			keys_birth(k, birth, &sex);
			search.name = name;
			search.birth_date = birth;
		}
		req.op_case = ONECARD__V1__REQUEST__OP_SEARCH;
		req.search = &search;
		break;
	case OP_LINK:
		load_key(b, load_pick(c), cnid);
		k = atomic_fetch_add(&b->write_next, 1);
		snprintf(
		    visit, sizeof visit, "L%" PRIx64 "-%" PRIu64, b->nonce, k);
		id[0].domain = "cn-id";
		id[0].value = cnid;
		id[1].domain = domain;
		id[1].value = visit;
		link.known = &id[0];
		link.added = &id[1];
		req.op_case = ONECARD__V1__REQUEST__OP_LINK;
		req.link = &link;
		break;
	case OP_ENROLL:
	case OP_MIXED:
		if (phase != PHASE_POPULATE) {
			k = atomic_fetch_add(&b->write_next, 1);
			keys_cnid(KEYS_WRITES, b->nonce, k, cnid);
		}
		keys_name(k, name, sizeof name);
		keys_birth(k, birth, &sex);
		demo.name = name;
		demo.birth_date = birth;
		demo.sex = sex == 1 ? ONECARD__V1__SEX__SEX_MALE
				    : ONECARD__V1__SEX__SEX_FEMALE;
		id[0].domain = "cn-id";
		id[0].value = cnid;
		enroll.demographics = &demo;
		enroll.identifiers = idp;
		enroll.n_identifiers = 1;
		if (phase != PHASE_POPULATE && b->hospital[0] != '\0') {
			/* A visit card too: a patient row and two
			 * identifier rows, as the PostgreSQL side writes. */
			snprintf(visit, sizeof visit, "W%" PRIx64 "-%" PRIu64,
			    b->nonce, k);
			id[1].domain = domain;
			id[1].value = visit;
			enroll.n_identifiers = 2;
		}
		req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
		req.enroll = &enroll;
		break;
	}

	r = onecard_async_send_raw(c->ac, &req, load_reply_cb, c);
sent:
	if (r != ONECARD_OK) {
		load_tell(b, "send", onecard_async_last_error(c->ac));
		return -1;
	}
	c->ring[(c->head + c->count) % c->cap] = (struct inflight){now, op, k};
	c->count++;
	return 1;
}

/* The connection has nothing more to do in this phase. */
static void
load_conn_quiet(struct bench_conn *c)
{
	struct bench_thread *t = c->t;

	if (!c->active)
		return;
	c->active = 0;
	if (--t->active == 0)
		t->end_ns = load_now();
}

/* The connection failed: its handle goes, its requests are lost. With
 * --failover, the tick connects it again while the run lasts. */
static void
load_conn_dead(struct bench_conn *c)
{
	struct bench_thread *t = c->t;

	if (c->state == BC_DEAD)
		return;
	c->state = BC_DEAD;
	atomic_fetch_add(&t->b->conns_lost, 1);
	onecard_async_close(c->ac);
	c->ac = NULL;
	if (t->b->failover && t->seen_phase == PHASE_RUN && !t->finishing) {
		if (c->lost_ns == 0)
			c->lost_ns = load_now();
		t->reconnecting++;
	}
	load_conn_quiet(c);
}

/*
 * --rate: may this thread send one more request at now? A token bucket
 * filled at the thread's share of the rate, holding at most one pace
 * tick's worth (LOAD_PACE_US) so no burst builds.
 */
static int
load_token(struct bench_thread *t, uint64_t now)
{
	double per = t->b->rate / t->b->threads,
	       cap = per * LOAD_PACE_US / 1000000;

	if (cap < 1)
		cap = 1;
	if (t->tokens_ns == 0)
		t->tokens = 1;
	else if (now > t->tokens_ns)
		t->tokens += (double)(now - t->tokens_ns) * per / 1e9;
	t->tokens_ns = now;
	if (t->tokens > cap)
		t->tokens = cap;
	if (t->tokens < 1)
		return 0;
	t->tokens -= 1;
	return 1;
}

/* Keep depth requests outstanding while the phase (and --rate) allow it. */
static void
load_fill(struct bench_conn *c, int phase, uint64_t now)
{
	struct bench_thread *t = c->t;
	struct bench *b = t->b;
	struct timeval tv = {0, LOAD_PACE_US};
	int r = 1;

	while (c->state == BC_UP && c->count < (unsigned)b->depth) {
		if (b->rate > 0 && phase == PHASE_RUN &&
		    now < atomic_load_explicit(
			      &b->deadline_ns, memory_order_relaxed) &&
		    !load_token(t, now)) {
			/* Its turn comes with the pace timer. */
			if (!c->waiting) {
				c->waiting = 1;
				t->nwaiting++;
			}
			if (!evtimer_pending(t->pace, NULL))
				evtimer_add(t->pace, &tv);
			return;
		}
		if ((r = load_issue(c, phase, now)) != 1)
			break;
	}
	if (r == -1)
		load_conn_dead(c);
	else if (c->count == 0 && !(b->op == OP_IDLE && phase == PHASE_RUN))
		load_conn_quiet(c);
}

/* --rate: let the waiting connections send, in turn, as tokens allow. */
static void
load_pacecb(evutil_socket_t fd, short what, void *arg)
{
	struct bench_thread *t = arg;
	uint64_t now = load_now();

	(void)fd;
	(void)what;
	for (int k = 0; k < t->n && t->nwaiting > 0; k++) {
		struct bench_conn *c = &t->c[(t->pace_next + k) % t->n];

		if (!c->waiting)
			continue;
		c->waiting = 0;
		t->nwaiting--;
		load_fill(c, t->seen_phase, now);
		if (c->waiting) {
			/* Out of tokens: the next pass starts here. */
			t->pace_next = (int)(c - t->c);
			return;
		}
	}
}

/* Did an enrollment's reply make a new patient? */
static int
load_created(const struct onecard_raw_reply *raw)
{
	Onecard__V1__Reply *reply;
	int created;

	reply = onecard__v1__reply__unpack(NULL, raw->len, raw->body);
	if (reply == NULL)
		return 0;
	created = reply->result_case == ONECARD__V1__REPLY__RESULT_ENROLLED &&
	    reply->enrolled != NULL && reply->enrolled->created;
	onecard__v1__reply__free_unpacked(reply, NULL);
	return created;
}

/* A reply (or the loss of a request): time it, count it, send the next. */
static void
load_reply_cb(const struct onecard_raw_reply *reply, int err, void *arg)
{
	struct bench_conn *c = arg;
	struct bench_thread *t = c->t;
	struct bench_stats *s = &t->live;
	struct inflight in;
	uint64_t now;

	if (c->count == 0)
		return; /* cannot happen: every callback had a send */
	in = c->ring[c->head];
	c->head = (c->head + 1) % c->cap;
	c->count--;
	if (err != ONECARD_OK) {
		s->errors++;
		if (c->state != BC_DEAD && !t->finishing) {
			load_tell(t->b, "connection",
			    c->ac != NULL ? onecard_async_last_error(c->ac)
					  : onecard_strerror(err));
			load_conn_dead(c);
		}
		return;
	}
	now = reply->recv_ns;
	if (c->lost_ns != 0) {
		/* The first answer since it was lost: how long it took. */
		uint64_t gap = now > c->lost_ns ? now - c->lost_ns : 0,
			 max = atomic_load(&t->b->gap_max_ns);

		atomic_fetch_add(&t->b->gap_sum_ns, gap);
		while (gap > max &&
		    !atomic_compare_exchange_weak(&t->b->gap_max_ns, &max, gap))
			;
		c->lost_ns = 0;
	}
	if (t->b->acked != NULL && in.op == OP_ENROLL &&
	    t->seen_phase == PHASE_RUN &&
	    reply->code == ONECARD__V1__CODE__OK) {
		if (t->nacked == t->acked_cap) {
			size_t cap = t->acked_cap ? t->acked_cap * 2 : 4096;
			uint64_t *a = realloc(t->acked, cap * sizeof *a);

			if (a != NULL) {
				t->acked = a;
				t->acked_cap = cap;
			}
		}
		if (t->nacked < t->acked_cap)
			t->acked[t->nacked++] = in.k;
	}
	s->done++;
	if (reply->code >= 0 && reply->code < BENCH_NCODES)
		s->codes[reply->code]++;
	if (reply->code != ONECARD__V1__CODE__OK)
		s->not_ok++;
	else if (in.op == OP_ENROLL && load_created(reply))
		s->created++;
	if (in.op < OP_MIXED)
		s->by_op[in.op]++;
	hist_record(&s->hist, now > in.start ? now - in.start : 0);
	if (!t->finishing)
		load_fill(c, t->seen_phase, now);
}

/* Put every connection that is up to work in the new phase. */
static void
load_phase_start(struct bench_thread *t, int phase)
{
	struct bench_conn *c;

	t->seen_phase = phase;
	t->phase_done = 0;
	if (phase == PHASE_RUN || phase == PHASE_POPULATE) {
		load_stats_reset(&t->live);
		t->start_ns = load_now();
		t->end_ns = 0;
	}
	t->active = 0;
	for (int i = 0; i < t->n; i++) {
		c = &t->c[i];
		if (c->state != BC_UP)
			continue;
		c->active = 1;
		t->active++;
	}
	if (t->active == 0)
		t->end_ns = load_now();
	for (int i = 0; i < t->n; i++)
		if (t->c[i].active)
			load_fill(&t->c[i], phase, load_now());
}

/* Close every connection and leave the loop. */
static void
load_finish(struct bench_thread *t)
{
	t->finishing = 1;
	for (int i = 0; i < t->n; i++) {
		if (t->c[i].ac != NULL) {
			onecard_async_close(t->c[i].ac);
			t->c[i].ac = NULL;
		}
	}
	event_base_loopexit(t->base, NULL);
}

/* --failover: a lost connection is up again (or not: the tick retries). */
static void
load_reconnect_cb(struct onecard_async *ac, int err, void *arg)
{
	struct bench_conn *c = arg;
	struct bench_thread *t = c->t;

	t->connecting--;
	if (err != ONECARD_OK || t->finishing) {
		load_tell(t->b, "connect again", onecard_async_last_error(ac));
		c->ac = NULL;
		onecard_async_close(ac);
		c->state = BC_DEAD;
		t->reconnecting++;
		return;
	}
	c->state = BC_UP;
	atomic_fetch_add(&t->b->reconnected, 1);
	if (c->lost_ns != 0) {
		uint64_t gap = load_now() - c->lost_ns,
			 max = atomic_load(&t->b->reconnect_max_ns);

		while (gap > max &&
		    !atomic_compare_exchange_weak(
			&t->b->reconnect_max_ns, &max, gap))
			;
	}
	if (t->seen_phase == PHASE_RUN) {
		c->active = 1;
		t->active++;
		load_fill(c, t->seen_phase, load_now());
	}
}

/* --failover: connect the lost connections again while the run lasts. */
static void
load_reconnect(struct bench_thread *t)
{
	struct bench_conn *c;

	if (load_now() >= atomic_load(&t->b->deadline_ns)) {
		t->reconnecting = 0;
		return;
	}
	for (int i = 0; i < t->n && t->reconnecting > 0; i++) {
		c = &t->c[i];
		if (c->state != BC_DEAD || c->lost_ns == 0)
			continue;
		t->reconnecting--;
		c->state = BC_CONNECTING;
		t->connecting++;
		c->ac = onecard_async_connect(
		    t->base, &t->b->opt, load_reconnect_cb, c);
		if (c->ac == NULL) {
			t->connecting--;
			c->state = BC_DEAD;
			t->reconnecting++;
		}
	}
}

/* Every 10 ms: follow the main thread's phase, publish statistics, say
 * when this thread is done with its phase. */
static void
load_tickcb(evutil_socket_t fd, short what, void *arg)
{
	struct bench_thread *t = arg;
	struct bench *b = t->b;
	int phase = atomic_load(&b->phase);

	if (phase == PHASE_STOP) {
		load_publish(t);
		load_finish(t);
		return;
	}
	if (phase != t->seen_phase && phase != PHASE_PAUSE)
		load_phase_start(t, phase);
	if (t->seen_phase == PHASE_RUN && b->op == OP_IDLE &&
	    load_now() >= atomic_load(&b->deadline_ns)) {
		for (int i = 0; i < t->n; i++)
			load_conn_quiet(&t->c[i]);
	}
	if (t->reconnecting > 0 && t->seen_phase == PHASE_RUN && !t->finishing)
		load_reconnect(t);
	if (++t->ticks % LOAD_PUBLISH_TICK == 0)
		load_publish(t);
	if (!t->phase_done && t->active == 0 && t->connecting == 0 &&
	    t->reconnecting == 0 && t->next_connect == t->n) {
		t->phase_done = 1;
		load_publish(t);
		atomic_fetch_add(&b->threads_idle, 1);
		if (t->seen_phase == PHASE_RUN)
			load_finish(t);
	}
}

/* A connection is up, or failed to come up. */
static void
load_connect_cb(struct onecard_async *ac, int err, void *arg)
{
	struct bench_conn *c = arg;
	struct bench_thread *t = c->t;

	t->connecting--;
	if (err == ONECARD_OK) {
		c->state = BC_UP;
		atomic_fetch_add(&t->b->connected, 1);
	} else {
		load_tell(t->b, "connect", onecard_async_last_error(ac));
		c->state = BC_DEAD;
		c->ac = NULL;
		onecard_async_close(ac);
		atomic_fetch_add(&t->b->connect_failed, 1);
	}
	load_connect_next(t);
}

/* Start connects until the window is full. */
static void
load_connect_next(struct bench_thread *t)
{
	struct bench_conn *c;

	while (!t->finishing && t->connecting < t->b->connect_window &&
	    t->next_connect < t->n) {
		c = &t->c[t->next_connect++];
		c->state = BC_CONNECTING;
		t->connecting++;
		c->ac = onecard_async_connect(
		    t->base, &t->b->opt, load_connect_cb, c);
		if (c->ac == NULL) {
			t->connecting--;
			c->state = BC_DEAD;
			load_tell(t->b, "connect", "out of memory");
			atomic_fetch_add(&t->b->connect_failed, 1);
		}
	}
}

/* A worker thread: connect its share, then follow the phases. */
static void *
load_main(void *arg)
{
	struct bench_thread *t = arg;

	load_connect_next(t);
	event_base_dispatch(t->base);
	return NULL;
}

/* Free what a thread holds (after it has stopped). */
static void
load_thread_free(struct bench_thread *t)
{
	if (t == NULL)
		return;
	for (int i = 0; t->c != NULL && i < t->n; i++) {
		if (t->c[i].ac != NULL)
			onecard_async_close(t->c[i].ac);
		free(t->c[i].ring);
	}
	free(t->c);
	free(t->acked);
	if (t->tick != NULL)
		event_free(t->tick);
	if (t->pace != NULL)
		event_free(t->pace);
	if (t->base != NULL)
		event_base_free(t->base);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* Encode msg (a Request with id 0) into buf; its length, 0 if too big. */
static size_t
load_encode(const Onecard__V1__Request *req, uint8_t *buf, size_t cap)
{
	size_t n = protobuf_c_message_get_packed_size(&req->base);

	if (n > cap)
		return 0;
	return protobuf_c_message_pack(&req->base, buf);
}

/* Encode the ping and lookup requests once. 0 or -1. */
static int
load_templates(struct bench *b)
{
	static const char slot[KEYS_CNID_LEN + 1] = "@@@@@@@@@@@@@@@@@@";
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Ping ping = ONECARD__V1__PING__INIT;
	Onecard__V1__Lookup lookup = ONECARD__V1__LOOKUP__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	size_t at;

	req.op_case = ONECARD__V1__REQUEST__OP_PING;
	req.ping = &ping;
	b->ping_len = load_encode(&req, b->ping_req, sizeof b->ping_req);
	id.domain = "cn-id";
	id.value = (char *)slot;
	lookup.identifier = &id;
	req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
	req.lookup = &lookup;
	b->lookup_len = load_encode(&req, b->lookup_req, sizeof b->lookup_req);
	if (b->ping_len == 0 || b->lookup_len == 0)
		return -1;
	for (at = 0; at + KEYS_CNID_LEN <= b->lookup_len; at++) {
		if (memcmp(b->lookup_req + at, slot, KEYS_CNID_LEN) == 0) {
			b->lookup_key_at = at;
			return 0;
		}
	}
	return -1;
}

int
load_start(struct bench *b)
{
	struct timeval tv = {0, LOAD_TICK_US};
	struct bench_thread *t;
	struct event_config *cfg;
	int i, j, share;

	if (load_templates(b) == -1)
		return -1;
	if ((b->t = calloc(b->threads, sizeof *b->t)) == NULL)
		return -1;
	for (i = 0; i < b->threads; i++) {
		if ((t = calloc(1, sizeof *t)) == NULL)
			return -1;
		b->t[i] = t;
		pthread_mutex_init(&t->lock, NULL);
		t->b = b;
		t->idx = i;
		t->seen_phase = PHASE_CONNECT;
		load_stats_reset(&t->live);
		load_stats_reset(&t->snap);
		share = b->conns / b->threads + (i < b->conns % b->threads);
		t->n = share;
		if ((t->c = calloc(share > 0 ? share : 1, sizeof *t->c)) ==
		    NULL)
			return -1;
		for (j = 0; j < share; j++) {
			t->c[j].t = t;
			t->c[j].cap = (unsigned)b->depth;
			t->c[j].rng = b->seed * 1000003ULL + b->nonce +
			    (uint64_t)i * 65537 + (uint64_t)j;
			t->c[j].ring = calloc(b->depth, sizeof *t->c[j].ring);
			if (t->c[j].ring == NULL)
				return -1;
		}
		/* A precise timer (timerfd) paces --rate in LOAD_PACE_US steps,
		 * not in the milliseconds epoll_wait counts in. */
		if ((cfg = event_config_new()) == NULL)
			return -1;
		if (b->rate > 0)
			event_config_set_flag(
			    cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
		t->base = event_base_new_with_config(cfg);
		event_config_free(cfg);
		if (t->base == NULL ||
		    (t->tick = event_new(
			 t->base, -1, EV_PERSIST, load_tickcb, t)) == NULL ||
		    (t->pace = evtimer_new(t->base, load_pacecb, t)) == NULL ||
		    event_add(t->tick, &tv) == -1)
			return -1;
	}
	for (i = 0; i < b->threads; i++) {
		if (pthread_create(&b->t[i]->tid, NULL, load_main, b->t[i]) !=
		    0)
			return -1;
		b->t[i]->started = 1;
	}
	return 0;
}

/* Merge the threads' published statistics; elapsed run time into *ns. */
static void
load_merge(struct bench *b, struct bench_stats *sum, int live, uint64_t *ns)
{
	uint64_t start = UINT64_MAX, end = 0, now = load_now(), s, e;
	struct bench_thread *t;

	load_stats_reset(sum);
	for (int i = 0; i < b->threads; i++) {
		t = b->t[i];
		pthread_mutex_lock(&t->lock);
		load_stats_add(sum, live ? &t->live : &t->snap);
		s = live ? t->start_ns : t->snap_start;
		e = live ? t->end_ns : t->snap_end;
		pthread_mutex_unlock(&t->lock);
		if (s != 0 && s < start)
			start = s;
		if ((e != 0 ? e : now) > end)
			end = e != 0 ? e : now;
	}
	if (ns != NULL)
		*ns = start == UINT64_MAX || end < start ? 0 : end - start;
}

void
load_snapshot(struct bench *b, struct bench_stats *sum, uint64_t *elapsed_ns)
{
	load_merge(b, sum, 0, elapsed_ns);
}

void
load_join(struct bench *b, struct bench_stats *sum, uint64_t *elapsed_ns)
{
	atomic_store(&b->phase, PHASE_STOP);
	for (int i = 0; i < b->threads; i++)
		if (b->t[i] != NULL && b->t[i]->started)
			pthread_join(b->t[i]->tid, NULL);
	load_merge(b, sum, 1, elapsed_ns);
	for (int i = 0; i < b->threads; i++) {
		struct bench_thread *t = b->t[i];
		uint64_t *a;

		if (t == NULL || t->nacked == 0)
			continue;
		a = realloc(
		    b->acked_keys, (b->n_acked + t->nacked) * sizeof *a);
		if (a == NULL)
			continue;
		memcpy(a + b->n_acked, t->acked, t->nacked * sizeof *a);
		b->acked_keys = a;
		b->n_acked += t->nacked;
	}
	for (int i = 0; i < b->threads; i++)
		load_thread_free(b->t[i]);
	free(b->t);
	b->t = NULL;
}
