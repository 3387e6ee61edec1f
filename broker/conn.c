/*
 * conn.c: one client connection, from the accepted socket to its close: a
 * state machine over a non-blocking socket and its SSL (handshake, identify,
 * frames, replies, drain) with one teardown path, conn_free. Only its worker's
 * thread touches it. Order, I/O and limits: docs/architecture.md.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "audit.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "onecardd.h"
#include "ratelimit.h"
#include "search_guard.h"
#include "wire.h"
#include "writer.h"

/* Parked plus outstanding requests on one connection before reads pause. */
#define CONN_MAX_INFLIGHT 4096

/* States of a connection; conn_set_state logs each transition at debug. */
enum conn_state {
	CONN_HANDSHAKE, /* TLS handshake under its deadline */
	CONN_OPEN,      /* identified; reading and answering frames */
	CONN_DRAINING,  /* no more reads; finish in-flight, then close */
	CONN_CLOSING,   /* last reply queued; close once output is flushed */
};

/* A request waiting its turn on a connection (order: docs/architecture.md). */
struct conn_item {
	TAILQ_ENTRY(conn_item) entry;
	Onecard__V1__Request *req; /* NULL: answer with code/message, id 0 */
	int code;
	const char *message;
	uint64_t start_us;
	size_t bytes; /* frame size, counted in conn.inflight_bytes */
	int limited;  /* over its rate limit: a kind + 1, answered with it */
	uint32_t rate, burst;
	uint64_t retry_ns;
};
TAILQ_HEAD(conn_itemq, conn_item);

/* One client connection; private to this file and its worker's thread. */
struct conn {
	LIST_ENTRY(conn) entry;
	/* On w->handshaking while handshaking (deadline: --handshake-timeout
	 * from accept), then on w->partial while part of a frame is in
	 * (deadline: --stall-timeout from its first byte). */
	TAILQ_ENTRY(conn) deadline_entry;
	TAILQ_ENTRY(conn) flush_entry; /* on w->flushq */
	uint64_t deadline_ms;
	/* On w->stalled from when its output goes over --max-pending-output
	 * until the client has read it down to half: deadline --stall-timeout
	 * from going over, which reading a little at a time does not move. */
	TAILQ_ENTRY(conn) stall_entry;
	uint64_t stall_deadline_ms;
	uint64_t id;
	struct worker *w;
	int fd;
	SSL *ssl;
	struct event *rev;    /* readable, or idle for --idle-timeout */
	struct event *wev;    /* writable again, or stuck for the timeout */
	struct evbuffer *in;  /* received, not yet taken as frames */
	struct evbuffer *out; /* replies not yet taken by SSL_write */
	enum conn_state state;
	int role;
	unsigned outstanding; /* writes at the writer */
	unsigned nparked;
	size_t inflight_bytes;    /* frames parked or at the writer */
	unsigned read_paused : 1; /* pending output over the bound */
	unsigned inflight_paused : 1;
	unsigned on_partial : 1;    /* on w->partial */
	unsigned on_stalled : 1;    /* on w->stalled */
	unsigned on_flushq : 1;     /* on w->flushq */
	unsigned reading : 1;       /* rev is added */
	unsigned read_on_write : 1; /* SSL_read waits for writability */
	unsigned write_on_read : 1; /* SSL_write waits for readability */
	struct conn_itemq parked;
	struct sub *sub;           /* its subscription (notify.c), or NULL */
	struct ratelimit_peer *rl; /* its buckets, from identify on */
	struct policy_who pol; /* what it may see (policy.h), once identified */
	char peer[INET6_ADDRSTRLEN + 8]; /* "addr:port" */
	char cn[ONECARDD_CN_MAX + 1];
};

/*
 * A write of a connection at the writer: the job, and how its answer finds
 * the connection again (by id on its worker: it may be gone by then).
 */
struct conn_write {
	struct writer_job job; /* job.arg points back here */
	struct worker *w;      /* the worker that owns the connection */
	uint64_t conn_id;
	uint64_t start_us;
	size_t bytes;          /* frame size, for the connection's bound */
	struct worker_msg msg; /* how the answer travels home */
	char cn[ONECARDD_CN_MAX + 1]; /* job.who.cn */
};

static atomic_uint_fast64_t conn_next_id = 1;

static const char *const conn_state_names[] = {
    "handshake", "open", "draining", "closing"};

#define CONN_READ_CHUNK 16384  /* one TLS record's worth per SSL_read */
#define CONN_READ_PASS  262144 /* read at most this much in one pass */
#define CONN_WRITE_MAX  16384  /* one TLS record per SSL_write */

static void conn_readcb(evutil_socket_t, short, void *);
static void conn_writecb(evutil_socket_t, short, void *);
static int conn_read(struct conn *c);
static void conn_identify(struct conn *c);
static void conn_unpark(struct conn *c);
static void conn_on_readable(struct conn *c);
static int conn_flush(struct conn *c);

/* Bucket of a connection id in its worker's table. */
static struct conn_list *
conn_bucket(struct worker *w, uint64_t id)
{
	return &w->conns[id & (WORKER_CONN_BUCKETS - 1)];
}

/* The connection with this id on w, or NULL if it has gone. */
static struct conn *
conn_find(struct worker *w, uint64_t id)
{
	struct conn *c;

	LIST_FOREACH(c, conn_bucket(w, id), entry)
		if (c->id == id)
			return c;
	return NULL;
}

/* Move to state s. */
static void
conn_set_state(struct conn *c, enum conn_state s)
{
	if (c->state == s)
		return;
	log_debug("conn state id=%llu %s->%s", (unsigned long long)c->id,
	    conn_state_names[c->state], conn_state_names[s]);
	if (c->state == CONN_HANDSHAKE)
		TAILQ_REMOVE(&c->w->handshaking, c, deadline_entry);
	c->state = s;
}

/* Add ev with a timeout of secs (0: none). */
static void
conn_event_add(struct event *ev, int secs)
{
	struct timeval tv = {secs, 0};

	event_add(ev, secs > 0 ? &tv : NULL);
}

/* Start reading (under --idle-timeout once open). */
static void
conn_read_on(struct conn *c)
{
	if (c->reading)
		return;
	c->reading = 1;
	conn_event_add(
	    c->rev, c->state == CONN_HANDSHAKE ? 0 : cfg->idle_timeout);
	/* Bytes SSL already holds raise no event: take them this pass. */
	if (c->state != CONN_HANDSHAKE && SSL_has_pending(c->ssl))
		event_active(c->rev, EV_READ, 0);
}

/* Stop reading (the write side may still wait for readability). */
static void
conn_read_off(struct conn *c)
{
	if (!c->reading)
		return;
	c->reading = 0;
	if (!c->write_on_read)
		event_del(c->rev);
}

/* Send what is in the output at the end of this pass. */
static void
conn_queue_flush(struct conn *c)
{
	if (c->on_flushq || evbuffer_get_length(c->out) == 0 ||
	    event_pending(c->wev, EV_WRITE, NULL))
		return;
	TAILQ_INSERT_TAIL(&c->w->flushq, c, flush_entry);
	c->on_flushq = 1;
	server_pass_arm(c->w);
}

/* Free a parked item and the request it holds. */
static void
conn_item_free(struct conn_item *it)
{
	if (it->req != NULL)
		wire_request_free(it->req);
	free(it);
}

/*
 * The one teardown path. clean: the session is healthy, say close_notify.
 */
static void
conn_free(struct conn *c, const char *reason, int clean)
{
	struct worker *w = c->w;
	struct conn_item *it;

	if (c->sub != NULL)
		notify_end(c->sub, reason);
	LIST_REMOVE(c, entry);
	if (c->state == CONN_HANDSHAKE)
		TAILQ_REMOVE(&w->handshaking, c, deadline_entry);
	else if (c->on_partial)
		TAILQ_REMOVE(&w->partial, c, deadline_entry);
	if (c->on_stalled)
		TAILQ_REMOVE(&w->stalled, c, stall_entry);
	if (c->on_flushq)
		TAILQ_REMOVE(&w->flushq, c, flush_entry);
	w->nconns--;
	while ((it = TAILQ_FIRST(&c->parked)) != NULL) {
		TAILQ_REMOVE(&c->parked, it, entry);
		conn_item_free(it);
	}
	/* Logged first: a peer may see the close before the line is out. */
	log_debug("connection closed id=%llu peer=%s cn=%s reason=\"%s\" "
		  "outstanding=%u",
	    (unsigned long long)c->id, c->peer, c->cn[0] ? c->cn : "-", reason,
	    c->outstanding);
	if (clean)
		tls_close_notify(c->ssl);
	event_free(c->rev);
	event_free(c->wev);
	evbuffer_free(c->in);
	evbuffer_free(c->out);
	SSL_free(c->ssl);
	close(c->fd);
	tls_clear_errors();
	free(c);
	metrics_connection(-1);
	server_conn_closed();
	if (w->stopping)
		server_worker_check_done(w);
}

/* Close once what is in the output has been written. */
static void
conn_close_after_flush(struct conn *c)
{
	conn_set_state(c, CONN_CLOSING);
	conn_read_off(c);
	if (evbuffer_get_length(c->out) == 0) {
		conn_free(c, "closed", 1);
		return;
	}
	/* A client that will not take its last reply is not waited on long. */
	if (event_pending(c->wev, EV_WRITE, NULL))
		conn_event_add(c->wev, cfg->handshake_timeout);
	conn_queue_flush(c);
}

/* Send Reply{id 0, code, message} and close after it is flushed. */
static void
conn_fail(struct conn *c, int code, const char *message)
{
	wire_append_error(c->out, 0, code, message);
	conn_close_after_flush(c);
}

/* The client has read its output down to half the bound: no deadline. */
static void
conn_stall_clear(struct conn *c)
{
	if (!c->on_stalled)
		return;
	TAILQ_REMOVE(&c->w->stalled, c, stall_entry);
	c->on_stalled = 0;
}

/* Read when open, not over the output bound and not over the in-flight cap. */
static int
conn_wants_read(const struct conn *c)
{
	return c->state == CONN_OPEN && !c->read_paused && !c->inflight_paused;
}

/* Turn reading on or off to match the limits; 1 if it was turned back on. */
static int
conn_update_reading(struct conn *c)
{
	size_t out = evbuffer_get_length(c->out);
	unsigned inflight = c->outstanding + c->nparked;
	size_t bytes = c->inflight_bytes;

	if (c->state != CONN_OPEN)
		return 0;
	if (!c->read_paused && out > cfg->max_pending_output) {
		c->read_paused = 1;
		log_debug("conn output over bound, pausing reads id=%llu "
			  "pending=%zu",
		    (unsigned long long)c->id, out);
		if (!c->on_stalled) {
			c->stall_deadline_ms = onecardd_now_us() / 1000 +
			    (uint64_t)cfg->stall_timeout * 1000;
			TAILQ_INSERT_TAIL(&c->w->stalled, c, stall_entry);
			c->on_stalled = 1;
		}
	} else if (c->read_paused && out <= cfg->max_pending_output / 2) {
		c->read_paused = 0;
		conn_stall_clear(c);
	}
	/* Decoded requests waiting their turn are memory too: bound them. */
	if (!c->inflight_paused &&
	    (inflight >= CONN_MAX_INFLIGHT || bytes >= cfg->max_pending_output))
		c->inflight_paused = 1;
	else if (c->inflight_paused && inflight <= CONN_MAX_INFLIGHT / 2 &&
	    bytes <= cfg->max_pending_output / 2)
		c->inflight_paused = 0;
	if (conn_wants_read(c)) {
		if (!c->reading) {
			conn_read_on(c);
			return 1;
		}
	} else
		conn_read_off(c);
	return 0;
}

/* Draining and nothing left in flight: close. 1 if c was freed or closing. */
static int
conn_check_drained(struct conn *c)
{
	if (c->state == CONN_DRAINING && c->outstanding == 0 &&
	    c->nparked == 0) {
		conn_close_after_flush(c);
		return 1;
	}
	return c->state == CONN_CLOSING;
}

/* Count and audit one request answered to cn (role); detail, when not
 * NULL, says more than res does. */
static void
conn_record_as(const char *cn, int role, int op_case, int code,
    const struct op_result *res, const char *detail, uint64_t start_us)
{
	uint64_t lat = onecardd_now_us() - start_us;

	metrics_request(cn, op_case, code, lat);
	if (audit_enabled()) {
		struct audit_entry e = {
		    .actor = cn,
		    .role = role,
		    .op = wire_op_name(op_case),
		    .target = res ? res->target : "",
		    .patient_id = res ? res->patient_id : "",
		    .other_patient_id = res ? res->other_patient_id : NULL,
		    .code = code,
		    .latency_us = lat,
		    .detail = detail ? detail
			: res        ? res->detail
				     : NULL,
		};
		audit_log(&e);
	}
}

/* Count and audit one request answered on c. */
static void
conn_record(struct conn *c, int op_case, int code, const struct op_result *res,
    uint64_t start_us)
{
	conn_record_as(c->cn, c->role, op_case, code, res, NULL, start_us);
}

/* Answer ping with this node's name and version. */
static void
conn_pong(struct conn *c, const Onecard__V1__Request *req)
{
	Onecard__V1__Reply r = ONECARD__V1__REPLY__INIT;
	Onecard__V1__Pong p = ONECARD__V1__PONG__INIT;

	p.node = cfg->node;
	p.version = (char *)onecardd_version;
	r.id = req->id;
	r.code = ONECARD__V1__CODE__OK;
	r.result_case = ONECARD__V1__REPLY__RESULT_PONG;
	r.pong = &p;
	wire_append(c->out, &r.base);
}

/* The target domains of a lookup, for the audit trail: "targets=hosp:X,...",
 * cut to fit. */
static void
conn_targets_detail(const Onecard__V1__Lookup *l, struct op_result *res)
{
	size_t len;

	if (l == NULL || l->n_target_domains == 0 || res->detail[0] != '\0')
		return;
	len = (size_t)snprintf(res->detail, sizeof(res->detail), "targets=");
	for (size_t i = 0; i < l->n_target_domains && len < sizeof(res->detail);
	     i++)
		len += (size_t)snprintf(res->detail + len,
		    sizeof(res->detail) - len, "%s%s", i ? "," : "",
		    l->target_domains[i]);
}

/*
 * A read for a caller whose disclosure policy is not full: the registry
 * answers into the worker's filter buffer (its lookup cache shared by every
 * caller), and the reply goes out filtered.
 */
static void
conn_read_filtered(struct conn *c, const struct actor *who,
    const Onecard__V1__Request *req, struct op_result *res)
{
	const Onecard__V1__Lookup *l =
	    req->op_case == ONECARD__V1__REQUEST__OP_LOOKUP ? req->lookup
							    : NULL;
	struct evbuffer *in = conn_policy_in(c->w);

	if (in == NULL) {
		res->code = ONECARD__V1__CODE__UNAVAILABLE;
		wire_append_error(
		    c->out, req->id, res->code, "broker out of memory");
		return;
	}
	registry_read(c->w->reg, who, req, in, res);
	policy_filter_named(&c->pol, l ? l->target_domains : NULL,
	    l ? l->n_target_domains : 0,
	    l && l->identifier ? l->identifier->domain : NULL, in, c->out);
}

/*
 * A search: the guard first (search_guard.c), then the registry;
 * audited with its criteria, masked.
 */
static void
conn_search(struct conn *c, const struct conn_item *it, struct op_result *res)
{
	const Onecard__V1__Request *req = it->req;
	Onecard__V1__Request copy = *req;
	Onecard__V1__Search narrowed;
	const Onecard__V1__Search *run;
	struct actor who = {c->cn, c->role};
	char err[256], detail[256];

	if (req->search == NULL) {
		registry_read(c->w->reg, &who, req, c->out, res);
		conn_record(c, req->op_case, res->code, res, it->start_us);
		return;
	}
	search_guard_describe(req->search, detail, sizeof(detail));
	if (search_guard_check(c->role, req->search, cfg->search_max_results,
		cfg->limits.search_limit, &narrowed, &run, err,
		sizeof(err)) == -1) {
		wire_append_error(
		    c->out, req->id, ONECARD__V1__CODE__INVALID_ARGUMENT, err);
		res->code = ONECARD__V1__CODE__INVALID_ARGUMENT;
	} else {
		copy.search = (Onecard__V1__Search *)run;
		policy_refresh(&c->pol);
		if (policy_is_full(&c->pol))
			registry_read(c->w->reg, &who, &copy, c->out, res);
		else
			conn_read_filtered(c, &who, &copy, res);
	}
	conn_record_as(
	    c->cn, c->role, req->op_case, res->code, res, detail, it->start_us);
}

/* The rate-limit kind of an operation, or -1 for one not limited. */
static int
conn_rate_kind(int op_case)
{
	if (op_case == ONECARD__V1__REQUEST__OP_LOOKUP)
		return RATELIMIT_LOOKUP;
	if (op_case == ONECARD__V1__REQUEST__OP_SEARCH)
		return RATELIMIT_SEARCH;
	return registry_op_is_write(op_case) ? RATELIMIT_WRITE : -1;
}

/*
 * Take its request from c's bucket as it arrives; over the limit, mark
 * it to be refused in its turn (the reply order holds, and a refused
 * write never reaches the writer).
 */
static void
conn_rate_take(struct conn *c, struct conn_item *it)
{
	int kind;

	if (c->rl == NULL || it->req == NULL ||
	    (kind = conn_rate_kind(it->req->op_case)) == -1)
		return;
	if (ratelimit_take(c->rl, kind, it->start_us * 1000, &it->retry_ns,
		&it->rate, &it->burst) == -1)
		it->limited = kind + 1;
}

/* Refuse a request over its rate limit; the connection goes on. */
static void
conn_refuse_rate(struct conn *c, const struct conn_item *it)
{
	int kind = it->limited - 1, op = it->req->op_case;
	struct op_result res;
	char msg[192], detail[256] = "";

	memset(&res, 0, sizeof(res));
	res.code = ONECARD__V1__CODE__RESOURCE_EXHAUSTED;
	ratelimit_message(msg, sizeof(msg), c->cn,
	    c->role == ONECARD__V1__ROLE__ROLE_ADMIN, kind, it->rate, it->burst,
	    it->retry_ns);
	wire_append_error(c->out, it->req->id, res.code, msg);
	metrics_rate_limited(c->cn, kind);
	if (op == ONECARD__V1__REQUEST__OP_SEARCH && it->req->search != NULL)
		search_guard_describe(it->req->search, detail, sizeof(detail));
	if (op == ONECARD__V1__REQUEST__OP_LOOKUP && it->req->lookup != NULL &&
	    it->req->lookup->identifier != NULL) {
		/* What it asked, as a served lookup's line names it. */
		const Onecard__V1__Identifier *id = it->req->lookup->identifier;
		char val[80];

		registry_mask_id(
		    id->domain, id->value ? id->value : "", val, sizeof(val));
		snprintf(res.target, sizeof(res.target), "%.40s=%.64s",
		    id->domain ? id->domain : "", val);
	}
	conn_record_as(c->cn, c->role, op, res.code, &res,
	    detail[0] ? detail : "rate-limited", it->start_us);
}

/* Answer an item on this thread (a read, ping, subscribe or an error).
 */
static void
conn_answer(struct conn *c, struct conn_item *it)
{
	struct evbuffer *out = c->out;
	struct op_result res;
	struct actor who = {c->cn, c->role};
	int op;

	memset(&res, 0, sizeof(res));
	c->inflight_bytes -= it->bytes;
	if (it->req == NULL) {
		wire_append_error(out, 0, it->code, it->message);
		conn_record(c, 0, it->code, NULL, it->start_us);
		if (it->code == ONECARD__V1__CODE__RESOURCE_EXHAUSTED)
			conn_set_state(c, CONN_DRAINING);
		return;
	}
	if (it->limited) {
		conn_refuse_rate(c, it);
		return;
	}
	op = it->req->op_case;
	switch (op) {
	case ONECARD__V1__REQUEST__OP_SEARCH:
		conn_search(c, it, &res);
		return;
	case ONECARD__V1__REQUEST__OP_PING:
		conn_pong(c, it->req);
		res.code = ONECARD__V1__CODE__OK;
		break;
	case ONECARD__V1__REQUEST__OP_SUBSCRIBE:
		notify_subscribe(c, it->req, &res);
		break;
	default:
		policy_refresh(&c->pol);
		if (op == ONECARD__V1__REQUEST__OP_LOOKUP &&
		    it->req->lookup != NULL &&
		    it->req->lookup->n_target_domains > 0) {
			char err[160];

			if (policy_check_targets(it->req->lookup,
				cfg->limits.max_ids, err, sizeof(err)) == -1) {
				res.code = ONECARD__V1__CODE__INVALID_ARGUMENT;
				wire_append_error(
				    out, it->req->id, res.code, err);
				break;
			}
		}
		/* The default, full: the registry's bytes as they are.
		 */
		if (policy_is_full(&c->pol))
			registry_read(c->w->reg, &who, it->req, out, &res);
		else
			conn_read_filtered(c, &who, it->req, &res);
		if (op == ONECARD__V1__REQUEST__OP_LOOKUP)
			conn_targets_detail(it->req->lookup, &res);
		break;
	}
	conn_record(c, op, res.code, &res, it->start_us);
}

/*
 * The writer is done with a write (committed or not): send it home to
 * its worker. Writer's thread; once posted, the job is the worker's.
 * (What a committed write changed, a revocation say, comes through the
 * registry's change feed: server_feed.)
 */
static void
conn_write_done(struct writer_job *job)
{
	struct conn_write *cw = job->arg;

	cw->msg.type = WORKER_MSG_REPLY;
	cw->msg.job = job;
	worker_post(cw->w, &cw->msg);
}

/* Hand a write to the writer thread. The item is consumed. */
static void
conn_send_write(struct conn *c, struct conn_item *it)
{
	struct conn_write *cw;

	cw = calloc(1, sizeof(*cw));
	if (cw == NULL) {
		wire_append_error(c->out, it->req->id,
		    ONECARD__V1__CODE__UNAVAILABLE, "broker out of memory");
		conn_record(c, it->req->op_case, ONECARD__V1__CODE__UNAVAILABLE,
		    NULL, it->start_us);
		c->inflight_bytes -= it->bytes;
		conn_item_free(it);
		return;
	}
	cw->w = c->w;
	cw->conn_id = c->id;
	cw->start_us = it->start_us;
	cw->bytes = it->bytes;
	snprintf(cw->cn, sizeof(cw->cn), "%s", c->cn);
	cw->job.req = it->req;
	cw->job.who.cn = cw->cn;
	cw->job.who.role = c->role;
	cw->job.done = conn_write_done;
	cw->job.arg = cw;
	it->req = NULL;
	conn_item_free(it);
	c->outstanding++;
	writer_submit(&cw->job);
}

/* Does this item go to the writer? */
static int
conn_item_is_write(const struct conn_item *it)
{
	return it->req != NULL && !it->limited &&
	    registry_op_is_write(it->req->op_case);
}

/* Dispatch an item now, or park it behind earlier work. */
static void
conn_submit(struct conn *c, struct conn_item *it)
{
	conn_rate_take(c, it);
	c->inflight_bytes += it->bytes;
	if (TAILQ_EMPTY(&c->parked)) {
		if (conn_item_is_write(it)) {
			conn_send_write(c, it);
			return;
		}
		if (c->outstanding == 0) {
			conn_answer(c, it);
			conn_item_free(it);
			return;
		}
	}
	TAILQ_INSERT_TAIL(&c->parked, it, entry);
	c->nparked++;
}

/* Dispatch parked items whose turn has come. */
static void
conn_unpark(struct conn *c)
{
	struct conn_item *it;

	while ((it = TAILQ_FIRST(&c->parked)) != NULL) {
		if (!conn_item_is_write(it) &&
		    (c->outstanding > 0 ||
			evbuffer_get_length(c->out) > cfg->max_pending_output))
			break; /* its turn, or room for its reply, is to
				  come */
		TAILQ_REMOVE(&c->parked, it, entry);
		c->nparked--;
		if (conn_item_is_write(it))
			conn_send_write(c, it);
		else {
			conn_answer(c, it);
			conn_item_free(it);
		}
	}
}

/* Part of a frame has arrived: start its clock, unless it runs already.
 */
static void
conn_partial_start(struct conn *c)
{
	if (c->on_partial)
		return;
	c->deadline_ms =
	    onecardd_now_us() / 1000 + (uint64_t)cfg->stall_timeout * 1000;
	TAILQ_INSERT_TAIL(&c->w->partial, c, deadline_entry);
	c->on_partial = 1;
}

/* No partial frame (any more): stop its clock. */
static void
conn_partial_clear(struct conn *c)
{
	if (!c->on_partial)
		return;
	TAILQ_REMOVE(&c->w->partial, c, deadline_entry);
	c->on_partial = 0;
}

/* A new item answering with id 0 and code. */
static struct conn_item *
conn_item_error(int code, const char *message, uint64_t start_us)
{
	struct conn_item *it = calloc(1, sizeof(*it));

	if (it == NULL)
		return NULL;
	it->code = code;
	it->message = message;
	it->start_us = start_us;
	return it;
}

/*
 * Decode a lookup that can be answered now (nothing parked or
 * outstanding before it) without allocating, and answer it as any
 * request is answered (conn_answer, then the registry's one lookup
 * path): 0. -1 when the frame is decoded the general way. This saves
 * the decoder's allocations only.
 */
static int
conn_decode_lookup(
    struct conn *c, const uint8_t *body, size_t len, uint64_t now)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Lookup l = ONECARD__V1__LOOKUP__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	struct wire_lookup wl;
	struct conn_item it = {.req = &req, .start_us = now, .bytes = len};

	if (!TAILQ_EMPTY(&c->parked) || c->outstanding > 0 ||
	    wire_lookup_decode(body, len, &wl) == -1)
		return -1;
	id.domain = wl.domain;
	id.value = wl.value;
	l.identifier = &id;
	req.id = wl.id;
	req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
	req.lookup = &l;
	c->inflight_bytes += len;
	conn_rate_take(c, &it);
	conn_answer(c, &it);
	return 0;
}

/*
 * Take one frame off the input: 1 if one was taken (and submitted), 0
 * if there is not a whole frame, -1 when the connection must stop
 * reading, -2 when it was freed.
 */
static int
conn_read_frame(struct conn *c, struct evbuffer *in)
{
	Onecard__V1__Request *req;
	struct conn_item *it;
	uint64_t now = onecardd_now_us();
	size_t len = 0;
	int over = 0;

	switch (wire_peek_evbuffer(in, cfg->max_frame, &len)) {
	case WIRE_NEED_MORE:
		return 0;
	case WIRE_OVERSIZE:
		log_info("frame over --max-frame, closing id=%llu cn=%s",
		    (unsigned long long)c->id, c->cn);
		it = conn_item_error(ONECARD__V1__CODE__RESOURCE_EXHAUSTED,
		    "frame: length over the broker's --max-frame", now);
		evbuffer_drain(in, evbuffer_get_length(in));
		if (it == NULL) {
			conn_free(c, "out of memory", 0);
			return -2;
		}
		conn_set_state(c, CONN_DRAINING);
		conn_read_off(c);
		conn_submit(c, it);
		return -1;
	case WIRE_EMPTY:
		evbuffer_drain(in, WIRE_HEADER_LEN);
		it = conn_item_error(ONECARD__V1__CODE__INVALID_ARGUMENT,
		    "frame: length must be at least 1", now);
		break;
	case WIRE_FRAME:
	default:
		conn_partial_clear(c);
		evbuffer_drain(in, WIRE_HEADER_LEN);
		evbuffer_remove(in, c->w->scratch, len);
		if (conn_decode_lookup(c, c->w->scratch, len, now) == 0)
			return 1;
		req = wire_request_unpack(
		    c->w->scratch, len, len * WIRE_MEM_FACTOR + 4096, &over);
		if (req == NULL)
			it =
			    conn_item_error(ONECARD__V1__CODE__INVALID_ARGUMENT,
				over ? "frame: message too large to decode"
				     : "frame: not a valid "
				       "onecard.v1.Request",
				now);
		else if (req->op_case == ONECARD__V1__REQUEST__OP__NOT_SET) {
			wire_request_free(req);
			it =
			    conn_item_error(ONECARD__V1__CODE__INVALID_ARGUMENT,
				"op: not set", now);
		} else if (req->id == 0) {
			wire_request_free(req);
			it =
			    conn_item_error(ONECARD__V1__CODE__INVALID_ARGUMENT,
				"id: must be non-zero", now);
		} else {
			it = calloc(1, sizeof(*it));
			if (it == NULL)
				wire_request_free(req);
			else {
				it->req = req;
				it->start_us = now;
				it->bytes = len;
			}
		}
		break;
	}
	if (it == NULL) {
		conn_free(c, "out of memory", 0);
		return -2;
	}
	conn_submit(c, it);
	return 1;
}

/*
 * Is c's CN a hospital the registry holds as revoked (not merely
 * unknown)? registry_hospital_role says only "not active", so ask for
 * the hospital list as an admin would. Only on the refusal path, so its
 * cost is moot.
 */
static int
conn_hospital_revoked(struct conn *c)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__HospitalList list = ONECARD__V1__HOSPITAL_LIST__INIT;
	struct actor who = {"onecardd", ONECARD__V1__ROLE__ROLE_ADMIN};
	Onecard__V1__Reply *reply = NULL;
	struct op_result res;
	struct evbuffer *out;
	uint8_t *frame;
	size_t len;
	int revoked = 0;

	if ((out = evbuffer_new()) == NULL)
		return 0;
	req.id = 1;
	req.op_case = ONECARD__V1__REQUEST__OP_HOSPITAL_LIST;
	req.hospital_list = &list;
	memset(&res, 0, sizeof(res));
	registry_read(c->w->reg, &who, &req, out, &res);
	len = evbuffer_get_length(out);
	if (res.code == ONECARD__V1__CODE__OK && len > WIRE_HEADER_LEN &&
	    (frame = evbuffer_pullup(out, -1)) != NULL)
		reply = onecard__v1__reply__unpack(
		    NULL, len - WIRE_HEADER_LEN, frame + WIRE_HEADER_LEN);
	if (reply != NULL &&
	    reply->result_case == ONECARD__V1__REPLY__RESULT_HOSPITALS) {
		for (size_t i = 0; i < reply->hospitals->n_hospitals; i++) {
			Onecard__V1__Hospital *hp =
			    reply->hospitals->hospitals[i];

			if (strcmp(hp->code, c->cn) == 0 && !hp->active)
				revoked = 1;
		}
	}
	if (reply != NULL)
		onecard__v1__reply__free_unpacked(reply, NULL);
	evbuffer_free(out);
	return revoked;
}

/* The handshake is done: turn the certificate into an identity. */
static void
conn_identify(struct conn *c)
{
	char msg[160];
	int rc, role;

	if (tls_peer_cn(c->ssl, c->cn, sizeof(c->cn)) == -1) {
		c->cn[0] = '\0';
		log_info("connection refused peer=%s reason=\"no "
			 "usable CN\"",
		    c->peer);
		conn_fail(c, ONECARD__V1__CODE__UNAUTHENTICATED,
		    "certificate has no usable subject CN");
		return;
	}
	if (onecardd_is_admin(c->cn)) {
		c->role = ONECARD__V1__ROLE__ROLE_ADMIN;
	} else {
		rc = registry_hospital_role(c->w->reg, c->cn, &role);
		if (rc == 1 && conn_hospital_revoked(c)) {
			log_info("connection refused peer=%s cn=%s "
				 "reason=\"hospital revoked\"",
			    c->peer, c->cn);
			snprintf(msg, sizeof(msg),
			    "hospital %s is revoked: ask the "
			    "registry's "
			    "administrators",
			    c->cn);
			conn_fail(c, ONECARD__V1__CODE__UNAUTHENTICATED, msg);
			return;
		}
		if (rc == 1) {
			log_info("connection refused peer=%s cn=%s "
				 "reason=\"not a registered hospital\"",
			    c->peer, c->cn);
			snprintf(msg, sizeof(msg),
			    "certificate CN %s is not a registered "
			    "hospital",
			    c->cn);
			conn_fail(c, ONECARD__V1__CODE__UNAUTHENTICATED, msg);
			return;
		}
		if (rc != 0) {
			log_warnx("connection refused peer=%s cn=%s "
				  "reason=\"registry error\"",
			    c->peer, c->cn);
			conn_fail(c, ONECARD__V1__CODE__UNAVAILABLE,
			    "registry unavailable");
			return;
		}
		c->role = role;
	}
	/* Once per connection: the pointer follows reloads
	 * (ratelimit.c). */
	c->rl = ratelimit_peer(c->cn, c->role == ONECARD__V1__ROLE__ROLE_ADMIN);
	policy_resolve(&c->pol, c->cn, c->role);
	log_debug("connection identified id=%llu peer=%s cn=%s role=%s",
	    (unsigned long long)c->id, c->peer, c->cn,
	    c->role == ONECARD__V1__ROLE__ROLE_ADMIN ? "admin" : "hospital");
	/* From the handshake's read event to the open one's (its
	 * timeout). */
	conn_read_off(c);
	conn_set_state(c, CONN_OPEN);
	if (c->w->stopping) {
		conn_set_state(c, CONN_DRAINING);
		conn_check_drained(c);
		return;
	}
	conn_read_on(c);
}

/*
 * Take whole frames off the input while reading is allowed. -1 when c
 * must not be touched any more (freed, or closing).
 */
static int
conn_read(struct conn *c)
{
	int r;

	while (conn_wants_read(c)) {
		if ((r = conn_read_frame(c, c->in)) == -2)
			return -1;
		if (r <= 0)
			break;
		if (c->state != CONN_OPEN)
			break;
		conn_update_reading(c);
	}
	if (c->state == CONN_OPEN) {
		conn_update_reading(c);
		/* Whatever is left is part of a frame: it has a
		 * deadline. */
		if (conn_wants_read(c) && evbuffer_get_length(c->in) > 0)
			conn_partial_start(c);
		else
			conn_partial_clear(c);
	} else {
		conn_partial_clear(c);
		if (conn_check_drained(c))
			return -1;
	}
	conn_queue_flush(c);
	return 0;
}

/* Log why a handshake failed (the first real OpenSSL error, the verify
 * result).
 */
static void
conn_log_handshake_error(struct conn *c, const char *what)
{
	unsigned long e;
	char buf[256] = "";
	long v;

	while ((e = ERR_get_error()) != 0)
		if (buf[0] == '\0' && ERR_GET_LIB(e) != 0)
			ERR_error_string_n(e, buf, sizeof(buf));
	v = SSL_get_verify_result(c->ssl);
	log_info("tls handshake failed peer=%s reason=\"%s%s%s\" "
		 "verify=\"%s\"",
	    c->peer, what, buf[0] ? ": " : "", buf,
	    v == X509_V_OK ? "-" : X509_verify_cert_error_string(v));
}

/*
 * No more requests will be read on open c (shutdown, or the client sent
 * close_notify): answer the whole frames already received, send every
 * reply, then close. A partial frame can no longer complete and is
 * dropped. c may be freed on return.
 */
static void
conn_drain(struct conn *c)
{
	int r;

	c->read_paused = c->inflight_paused = 0;
	do
		r = conn_read_frame(c, c->in);
	while (r > 0 && c->state == CONN_OPEN);
	if (r == -2)
		return;
	if (c->state == CONN_OPEN)
		conn_set_state(c, CONN_DRAINING);
	conn_read_off(c);
	conn_partial_clear(c);
	if (!conn_check_drained(c))
		conn_queue_flush(c);
}

/*
 * Did an SSL call stop (err from SSL_get_error, e the error queue's
 * first entry) because the peer went: close_notify, or end of stream or
 * a reset without one? OpenSSL 3 reports the latter as an error of its
 * own.
 */
static int
conn_peer_gone(int err, unsigned long e)
{
	return err == SSL_ERROR_ZERO_RETURN ||
	    (err == SSL_ERROR_SYSCALL && e == 0) ||
	    (err == SSL_ERROR_SSL && ERR_GET_LIB(e) == ERR_LIB_SSL &&
		ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING);
}

/*
 * SSL_read or SSL_write stopped with err (SSL_get_error; e the error
 * queue's first entry then): 0 when it waits for the socket (and c
 * waits for the right event), -1 when c was freed.
 */
static int
conn_ssl_wait(struct conn *c, int err, unsigned long e, int writing)
{
	switch (err) {
	case SSL_ERROR_WANT_READ:
		if (writing && !c->write_on_read) {
			c->write_on_read = 1;
			if (!c->reading)
				event_add(c->rev, NULL);
		}
		return 0;
	case SSL_ERROR_WANT_WRITE:
		if (!writing)
			c->read_on_write = 1;
		conn_event_add(c->wev,
		    c->state == CONN_CLOSING ? cfg->handshake_timeout
					     : cfg->stall_timeout);
		return 0;
	default:
		/* close_notify: the client has sent all it will (a TLS
		 * half-close), but may still read its replies. */
		if (err == SSL_ERROR_ZERO_RETURN && !writing &&
		    c->state == CONN_OPEN) {
			conn_drain(c);
			return -1;
		}
		if (conn_peer_gone(err, e)) {
			conn_free(c, "peer closed", 0);
			return -1;
		}
		log_debug("connection error id=%llu: %s",
		    (unsigned long long)c->id,
		    e ? ERR_reason_error_string(e) : "-");
		conn_free(c, "error", 0);
		return -1;
	}
}

/*
 * Fill the input from SSL while reading is allowed: 1 if bytes came in,
 * 0 if none, -1 when c was freed (end of stream or an error; the frames
 * already in are answered first, though their replies cannot leave).
 */
static int
conn_fill(struct conn *c)
{
	struct evbuffer_iovec v;
	size_t got = 0, want;
	int r;

	c->read_on_write = 0;
	while (got < CONN_READ_PASS) {
		if (evbuffer_reserve_space(c->in, CONN_READ_CHUNK, &v, 1) < 1) {
			conn_free(c, "out of memory", 0);
			return -1;
		}
		ERR_clear_error();
		want =
		    v.iov_len < CONN_READ_CHUNK ? v.iov_len : CONN_READ_CHUNK;
		r = SSL_read(c->ssl, v.iov_base, (int)want);
		if (r <= 0) {
			int err = SSL_get_error(c->ssl, r);
			unsigned long e = ERR_peek_error();

			v.iov_len = 0;
			evbuffer_commit_space(c->in, &v, 1);
			if (err == SSL_ERROR_WANT_READ)
				break;
			/* The frames before the end are answered all
			 * the same.
			 */
			if (got > 0 && conn_read(c) == -1)
				return -1;
			return conn_ssl_wait(c, err, e, 0) == -1 ? -1 : got > 0;
		}
		v.iov_len = (size_t)r;
		evbuffer_commit_space(c->in, &v, 1);
		got += (size_t)r;
		/*
		 * Less than asked and nothing left in SSL: the socket
		 * is most likely empty, and if not, the
		 * (level-triggered) poll says so. One read(2) instead
		 * of another that finds nothing.
		 */
		if ((size_t)r < want && !SSL_has_pending(c->ssl))
			break;
	}
	/* A pass's share is read; the rest (socket or SSL) waits its
	 * turn. */
	if (got >= CONN_READ_PASS)
		event_active(c->rev, EV_READ, 0);
	return got > 0;
}

/* The TLS handshake can go on. */
static void
conn_handshake(struct conn *c)
{
	int r, err;

	ERR_clear_error();
	if ((r = SSL_do_handshake(c->ssl)) == 1) {
		event_del(c->wev);
		metrics_handshake(1);
		conn_identify(c);
		return;
	}
	err = SSL_get_error(c->ssl, r);
	if (err == SSL_ERROR_WANT_READ) {
		event_del(c->wev);
		return;
	}
	if (err == SSL_ERROR_WANT_WRITE) {
		event_add(c->wev, NULL);
		return;
	}
	metrics_handshake(0);
	conn_log_handshake_error(c,
	    conn_peer_gone(err, ERR_peek_error()) ? "peer closed"
						  : "tls error");
	conn_free(c, "handshake failed", 0);
}

/*
 * A burst of whole lookup frames at the head of the input (pipelined
 * requests): ask the registry to fetch their cache entries while the
 * first ones are answered, instead of waiting on memory for each in
 * turn.
 */
static void
conn_prefetch(struct conn *c)
{
	struct wire_lookup wl[REGISTRY_PREFETCH_MAX];
	const char *dom[REGISTRY_PREFETCH_MAX], *val[REGISTRY_PREFETCH_MAX];
	const uint8_t *at[REGISTRY_PREFETCH_MAX], *p, *end;
	size_t len[REGISTRY_PREFETCH_MAX], nf = 0, n = 0;
	struct evbuffer_iovec v;

	if (evbuffer_peek(c->in, -1, NULL, &v, 1) < 1)
		return;
	p = v.iov_base;
	end = p + v.iov_len;
	/* Headers first: a single frame (depth 1) is decoded only once.
	 */
	while (nf < REGISTRY_PREFETCH_MAX &&
	    wire_peek(p, (size_t)(end - p), cfg->max_frame, &len[nf]) ==
		WIRE_FRAME) {
		at[nf] = p + WIRE_HEADER_LEN;
		p = at[nf] + len[nf];
		nf++;
	}
	if (nf < 2)
		return;
	for (size_t i = 0; i < nf; i++)
		if (wire_lookup_decode(at[i], len[i], &wl[n]) == 0) {
			dom[n] = wl[n].domain;
			val[n] = wl[n].value;
			n++;
		}
	if (n > 1)
		registry_prefetch_lookups(c->w->reg, dom, val, n);
}

/* Input arrived, or SSL holds some. */
static void
conn_on_readable(struct conn *c)
{
	if (c->write_on_read) {
		/* SSL_write waited for this (a renegotiation-like
		 * exchange). */
		c->write_on_read = 0;
		if (!c->reading)
			event_del(c->rev);
		if (conn_flush(c) == -1)
			return;
	}
	if (!c->reading || c->state != CONN_OPEN)
		return;
	/* The pass's audit lines wait for its end, and so do the
	 * replies. */
	audit_batch_begin();
	if (conn_fill(c) != -1) {
		conn_prefetch(c);
		conn_read(c);
	}
	audit_batch_hold();
}

/*
 * Output drained to half its bound (or all of it): parked reads may go
 * on, then new frames. -1 when c must not be touched any more.
 */
static int
conn_wrote(struct conn *c)
{
	if (c->state == CONN_CLOSING) {
		if (evbuffer_get_length(c->out) == 0) {
			conn_free(c, "closed", 1);
			return -1;
		}
		return 0;
	}
	if (evbuffer_get_length(c->out) > cfg->max_pending_output / 2)
		return 0;
	if (c->sub != NULL)
		notify_wrote(c->sub);
	conn_unpark(c);
	if (conn_check_drained(c))
		return -1;
	if (c->state == CONN_OPEN && conn_update_reading(c))
		return conn_read(c);
	conn_queue_flush(c);
	return 0;
}

/*
 * Send the output: until it is empty, or the socket would block (the
 * write event then waits, under the timeout for stuck output). -1 when
 * c must not be touched any more.
 */
static int
conn_flush(struct conn *c)
{
	size_t len;
	int r;

	if (c->write_on_read)
		return 0;
	/* No reply leaves before its audit line: write the held ones.
	 */
	audit_pass_end();
	while ((len = evbuffer_get_length(c->out)) > 0) {
		if (len > CONN_WRITE_MAX)
			len = CONN_WRITE_MAX;
		ERR_clear_error();
		r = SSL_write(
		    c->ssl, evbuffer_pullup(c->out, (ssize_t)len), (int)len);
		if (r <= 0)
			return conn_ssl_wait(
			    c, SSL_get_error(c->ssl, r), ERR_peek_error(), 1);
		evbuffer_drain(c->out, (size_t)r);
		/* Also while draining, when reading no longer resumes.
		 */
		if (c->on_stalled &&
		    evbuffer_get_length(c->out) <= cfg->max_pending_output / 2)
			conn_stall_clear(c);
	}
	if (!c->read_on_write)
		event_del(c->wev);
	return conn_wrote(c);
}

/* Send the output of every connection queued in this pass. */
void
conn_flush_queued(struct worker *w)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&w->flushq)) != NULL) {
		TAILQ_REMOVE(&w->flushq, c, flush_entry);
		c->on_flushq = 0;
		/* Frames a drained output lets in: their lines are
		 * held. */
		audit_batch_begin();
		conn_flush(c);
		audit_batch_hold();
	}
}

/* Readable, or --idle-timeout passed without input. */
static void
conn_readcb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	if (c->state == CONN_HANDSHAKE) {
		conn_handshake(c);
		return;
	}
	if (what & EV_TIMEOUT) {
		/* Busy, not idle, while requests are in flight; nor is
		 * a subscriber waiting for events (its stall deadline
		 * bounds one that does not read them). */
		if (c->state == CONN_OPEN && c->outstanding == 0 &&
		    c->nparked == 0 && c->sub == NULL)
			conn_free(c, "idle timeout", 1);
		return;
	}
	conn_on_readable(c);
}

/* Writable again, or the output stayed stuck for its timeout. */
static void
conn_writecb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	if (c->state == CONN_HANDSHAKE) {
		conn_handshake(c);
		return;
	}
	if (what & EV_TIMEOUT) {
		conn_free(c, "output stuck", 1);
		return;
	}
	if (c->read_on_write) {
		/* SSL_read waited for this. */
		c->read_on_write = 0;
		if (evbuffer_get_length(c->out) == 0)
			event_del(c->wev);
		conn_on_readable(c);
		return;
	}
	audit_batch_begin();
	conn_flush(c);
	audit_batch_hold();
}

const char *
conn_cn(const struct conn *c)
{
	return c->cn;
}

int
conn_role(const struct conn *c)
{
	return c->role;
}

uint64_t
conn_id(const struct conn *c)
{
	return c->id;
}

struct worker *
conn_worker(const struct conn *c)
{
	return c->w;
}

struct evbuffer *
conn_output(struct conn *c)
{
	return c->out;
}

struct sub *
conn_sub(const struct conn *c)
{
	return c->sub;
}

void
conn_set_sub(struct conn *c, struct sub *s)
{
	c->sub = s;
}

/* May more be pushed: open, and its output not over the bound (nor back
 * from over it by less than half). */
int
conn_may_push(const struct conn *c)
{
	return c->state == CONN_OPEN && !c->read_paused &&
	    evbuffer_get_length(c->out) <= cfg->max_pending_output;
}

/* Something was pushed into c's output: bound it, and send it. */
void
conn_pushed(struct conn *c)
{
	conn_update_reading(c);
	conn_queue_flush(c);
}

void
conn_close_with(struct conn *c, int code, const char *message)
{
	conn_fail(c, code, message);
}

const struct policy_who *
conn_policy(struct conn *c)
{
	policy_refresh(&c->pol);
	return &c->pol;
}

struct evbuffer *
conn_policy_in(struct worker *w)
{
	if (w->policy_in == NULL)
		w->policy_in = evbuffer_new();
	return w->policy_in;
}

/* Set up w's connection table and its deadline and flush queues. */
void
conn_worker_init(struct worker *w)
{
	TAILQ_INIT(&w->handshaking);
	TAILQ_INIT(&w->partial);
	TAILQ_INIT(&w->stalled);
	TAILQ_INIT(&w->flushq);
	for (size_t b = 0; b < WORKER_CONN_BUCKETS; b++)
		LIST_INIT(&w->conns[b]);
}

/* Take a new socket accepted by w's listener. */
void
conn_accept(struct worker *w, int fd, const struct sockaddr *sa, int slen)
{
	struct conn *c;
	SSL *ssl;
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if ((c = calloc(1, sizeof(*c))) == NULL || (ssl = tls_new()) == NULL) {
		log_warnx("cannot take a connection: out of memory");
		free(c);
		close(fd);
		server_conn_closed();
		return;
	}
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		port = ntohs(sin->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		port = ntohs(sin6->sin6_port);
	}
	snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port);
	c->fd = fd;
	c->ssl = ssl;
	if (evutil_make_socket_nonblocking(fd) == -1 ||
	    SSL_set_fd(ssl, fd) != 1 || (c->in = evbuffer_new()) == NULL ||
	    (c->out = evbuffer_new()) == NULL ||
	    (c->rev = event_new(
		 w->base, fd, EV_READ | EV_PERSIST, conn_readcb, c)) == NULL ||
	    (c->wev = event_new(w->base, fd, EV_WRITE | EV_PERSIST,
		 conn_writecb, c)) == NULL) {
		log_warnx("cannot take a connection from %s", c->peer);
		if (c->rev != NULL)
			event_free(c->rev);
		if (c->in != NULL)
			evbuffer_free(c->in);
		if (c->out != NULL)
			evbuffer_free(c->out);
		SSL_free(ssl);
		close(fd);
		free(c);
		server_conn_closed();
		return;
	}
	SSL_set_accept_state(ssl);
	c->id = atomic_fetch_add(&conn_next_id, 1);
	c->w = w;
	c->state = CONN_HANDSHAKE;
	TAILQ_INIT(&c->parked);
	LIST_INSERT_HEAD(conn_bucket(w, c->id), c, entry);
	/* A deadline, not an idle timeout: a trickled hello does not
	 * reset it.
	 */
	c->deadline_ms =
	    onecardd_now_us() / 1000 + (uint64_t)cfg->handshake_timeout * 1000;
	TAILQ_INSERT_TAIL(&w->handshaking, c, deadline_entry);
	w->nconns++;
	metrics_connection(1);
	conn_read_on(c);
}

/* Free a write that came back, and what it holds. */
static void
conn_write_free(struct conn_write *cw)
{
	writer_job_clear(&cw->job);
	free(cw);
}

/* A write came back from the writer: send its reply and go on. */
void
conn_writer_done(struct worker *w, struct writer_job *job)
{
	struct conn_write *cw = job->arg;
	struct conn *c = conn_find(w, cw->conn_id);

	/* The write happened whether or not its asker is still here. */
	conn_record_as(cw->cn, job->who.role, job->req->op_case, job->res.code,
	    &job->res, NULL, cw->start_us);
	if (c == NULL) {
		conn_write_free(cw);
		return;
	}
	c->outstanding--;
	c->inflight_bytes -= cw->bytes;
	if (c->state != CONN_CLOSING && job->out == NULL)
		wire_append_error(c->out, job->req->id,
		    ONECARD__V1__CODE__UNAVAILABLE, "broker out of memory");
	else if (c->state != CONN_CLOSING) {
		/* Copy, not move: the bytes join the output's last
		 * chain, so a batch of replies leaves in one TLS
		 * record, not one each. */
		size_t n = evbuffer_get_length(job->out);

		policy_refresh(&c->pol);
		if (policy_is_full(&c->pol))
			evbuffer_add(c->out, evbuffer_pullup(job->out, -1), n);
		else
			policy_filter_frames(
			    &c->pol, NULL, 0, job->out, c->out);
	}
	conn_write_free(cw);
	if (c->state == CONN_CLOSING)
		return;
	conn_unpark(c);
	if (conn_check_drained(c))
		return;
	if (conn_update_reading(c) && conn_read(c) == -1)
		return;
	conn_queue_flush(c);
}

/* Close every connection of the revoked hospital code. */
void
conn_revoke(struct worker *w, const char *code)
{
	struct conn *c, *next;
	char msg[160];

	for (size_t i = 0; i < WORKER_CONN_BUCKETS; i++) {
		for (c = LIST_FIRST(&w->conns[i]); c != NULL; c = next) {
			next = LIST_NEXT(c, entry);
			if (c->state != CONN_OPEN && c->state != CONN_DRAINING)
				continue;
			if (strcmp(c->cn, code) != 0 ||
			    onecardd_is_admin(c->cn))
				continue;
			log_info("closing connection of revoked hospital "
				 "id=%llu cn=%s",
			    (unsigned long long)c->id, c->cn);
			snprintf(
			    msg, sizeof(msg), "hospital %s was revoked", code);
			conn_fail(c, ONECARD__V1__CODE__UNAUTHENTICATED, msg);
		}
	}
}

/* Shutdown: stop reading everywhere, finish what is in flight, close.
 */
void
conn_drain_all(struct worker *w)
{
	struct conn *c, *next;

	for (size_t i = 0; i < WORKER_CONN_BUCKETS; i++) {
		for (c = LIST_FIRST(&w->conns[i]); c != NULL; c = next) {
			next = LIST_NEXT(c, entry);
			if (c->state == CONN_HANDSHAKE) {
				conn_free(c, "shutdown", 0);
				continue;
			}
			if (c->state == CONN_OPEN)
				conn_drain(c);
		}
	}
}

/* Grace is over: close whatever is left. */
void
conn_free_all(struct worker *w, const char *reason)
{
	struct conn *c;

	for (size_t i = 0; i < WORKER_CONN_BUCKETS; i++)
		while ((c = LIST_FIRST(&w->conns[i])) != NULL)
			conn_free(c, reason, c->state != CONN_HANDSHAKE);
}

/*
 * Close connections whose handshake, or whose partly received frame,
 * passed its deadline (w's tick): a trickle of bytes resets no idle
 * timer.
 */
void
conn_expire_deadlines(struct worker *w)
{
	uint64_t now = onecardd_now_us() / 1000;
	struct conn *c;

	while ((c = TAILQ_FIRST(&w->handshaking)) != NULL &&
	    c->deadline_ms <= now) {
		metrics_handshake(0);
		conn_log_handshake_error(c, "handshake deadline passed");
		conn_free(c, "handshake deadline", 0);
	}
	while (
	    (c = TAILQ_FIRST(&w->partial)) != NULL && c->deadline_ms <= now) {
		log_info("frame not completed within --stall-timeout, "
			 "closing "
			 "id=%llu cn=%s",
		    (unsigned long long)c->id, c->cn);
		conn_free(c, "frame too slow", 1);
	}
	while ((c = TAILQ_FIRST(&w->stalled)) != NULL &&
	    c->stall_deadline_ms <= now) {
		log_info("replies not read within --stall-timeout, closing "
			 "id=%llu cn=%s pending=%zu",
		    (unsigned long long)c->id, c->cn,
		    evbuffer_get_length(c->out));
		conn_free(c, "replies not read", 0);
	}
}
