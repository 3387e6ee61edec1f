/*
 * harness_load.c: write load for the durability tests. A few client
 * threads enroll hosp:<CN>=<tag><t>-<i> in pipelined windows until their
 * connection ends, remembering the patient id of every enrollment the
 * broker answered OK; after a crash or a stop and a restart, verify finds
 * each of them again with the same patient id. That holds only if the
 * broker answers a write after it is durable.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define LOAD_WINDOW  16
#define LOAD_MAX_ACK 100000
#define LOAD_MAX     16

/* One client thread and what the broker acknowledged to it. */
struct loader {
	struct harness_load *load;
	int t;
	pthread_t thread;
	size_t nack;
	char (
	    *pid)[48]; /* pid[i]: patient of enrollment i, once acknowledged */
};

struct harness_load {
	struct harness *h;
	char cn[64];
	char domain[72];
	char tag[16];
	int n;
	struct loader l[LOAD_MAX];
};

void
harness_enroll_init(struct harness_enroll *e, uint64_t id, const char *domain,
    const char *fmt, ...)
{
	va_list ap;

	onecard__v1__request__init(&e->req);
	onecard__v1__enroll__init(&e->enroll);
	onecard__v1__identifier__init(&e->id);
	va_start(ap, fmt);
	vsnprintf(e->value, sizeof(e->value), fmt, ap);
	va_end(ap);
	e->id.domain = (char *)domain;
	e->id.value = e->value;
	e->ids[0] = &e->id;
	e->enroll.identifiers = e->ids;
	e->enroll.n_identifiers = 1;
	e->req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
	e->req.enroll = &e->enroll;
	e->req.id = id;
}

/* Enroll in pipelined windows; record each OK in order; stop at an error. */
static void *
loader_main(void *arg)
{
	struct loader *l = arg;
	struct harness_load *load = l->load;
	struct onecard_conn *conn;
	Onecard__V1__Reply *reply;
	size_t next = 0;

	if (harness_connect(load->h, load->cn, &conn) != ONECARD_OK)
		return NULL;
	while (next + LOAD_WINDOW <= LOAD_MAX_ACK) {
		for (size_t k = 0; k < LOAD_WINDOW; k++) {
			struct harness_enroll e;

			harness_enroll_init(&e, next + k + 1, load->domain,
			    "%s%d-%zu", load->tag, l->t, next + k);
			if (onecard_send(conn, &e.req) != ONECARD_OK)
				goto out;
		}
		for (size_t k = 0; k < LOAD_WINDOW; k++) {
			if (onecard_recv(conn, &reply) != ONECARD_OK)
				goto out;
			if (reply->code != ONECARD__V1__CODE__OK ||
			    reply->id != next + k + 1 ||
			    reply->result_case !=
				ONECARD__V1__REPLY__RESULT_ENROLLED) {
				onecard_reply_free(reply);
				goto out;
			}
			snprintf(l->pid[next + k], sizeof(l->pid[0]), "%s",
			    reply->enrolled->patient->patient_id);
			l->nack = next + k + 1;
			onecard_reply_free(reply);
		}
		next += LOAD_WINDOW;
	}
out:
	onecard_close(conn);
	return NULL;
}

struct harness_load *
harness_load_start(
    struct harness *h, const char *cn, const char *tag, int conns)
{
	struct harness_load *load;

	if (conns < 1 || conns > LOAD_MAX ||
	    (load = calloc(1, sizeof(*load))) == NULL)
		return NULL;
	load->h = h;
	load->n = conns;
	snprintf(load->cn, sizeof(load->cn), "%s", cn);
	snprintf(load->domain, sizeof(load->domain), "hosp:%s", cn);
	snprintf(load->tag, sizeof(load->tag), "%s", tag);
	for (int t = 0; t < conns; t++) {
		struct loader *l = &load->l[t];

		l->load = load;
		l->t = t;
		if ((l->pid = calloc(LOAD_MAX_ACK, sizeof(*l->pid))) == NULL ||
		    pthread_create(&l->thread, NULL, loader_main, l) != 0) {
			fprintf(stderr, "harness: cannot start loader %d\n", t);
			abort();
		}
	}
	return load;
}

size_t
harness_load_wait(struct harness_load *load)
{
	size_t total = 0;

	for (int t = 0; t < load->n; t++) {
		pthread_join(load->l[t].thread, NULL);
		total += load->l[t].nack;
	}
	return total;
}

int
harness_load_verify(struct harness_load *load)
{
	struct onecard_conn *conn;
	Onecard__V1__Reply *reply;
	int bad = 0;

	if (harness_connect(load->h, load->cn, &conn) != ONECARD_OK)
		return -1;
	for (int t = 0; t < load->n; t++) {
		struct loader *l = &load->l[t];

		for (size_t i = 0; i < l->nack; i++) {
			Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
			Onecard__V1__Lookup lookup = ONECARD__V1__LOOKUP__INIT;
			Onecard__V1__Identifier id =
			    ONECARD__V1__IDENTIFIER__INIT;
			char value[48];

			snprintf(
			    value, sizeof(value), "%s%d-%zu", load->tag, t, i);
			id.domain = load->domain;
			id.value = value;
			lookup.identifier = &id;
			req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
			req.lookup = &lookup;
			if (onecard_call(conn, &req, &reply) != ONECARD_OK) {
				onecard_close(conn);
				return -1;
			}
			if (reply->code != ONECARD__V1__CODE__OK ||
			    reply->patient == NULL ||
			    strcmp(reply->patient->patient_id, l->pid[i]) !=
				0) {
				if (bad++ == 0)
					fprintf(stderr,
					    "harness: acknowledged %s=%s lost: "
					    "%s\n",
					    load->domain, value,
					    reply->message ? reply->message
							   : "");
			}
			onecard_reply_free(reply);
		}
	}
	onecard_close(conn);
	return bad;
}

void
harness_load_free(struct harness_load *load)
{
	if (load == NULL)
		return;
	for (int t = 0; t < load->n; t++)
		free(load->l[t].pid);
	free(load);
}
