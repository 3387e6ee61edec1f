/*
 * stale-bench.c: cross-broker staleness of cached lookups (bench/pg-store.sh).
 *
 * Two brokers on one PostgreSQL registry: --writer A and --reader B. A
 * patient is enrolled through A. Then, --samples times: it is looked up
 * through B twice (the second answer comes from B's cache), its phone is
 * changed through A, and from the moment A acknowledges the change B is
 * asked again and again until it answers with the new phone. The time from
 * the acknowledgement to that answer is how stale B's cache was; B learns
 * of A's commit only through the cross-broker feed (LISTEN/NOTIFY). Prints
 * one JSON object: samples, p50_ms, p99_ms, max_ms.
 *
 * Certificate, key and CA come from ONECARD_CERT, ONECARD_KEY and
 * ONECARD_CA, as for the CLIs.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "onecard.h"

#define CARD_DOMAIN "hosp:BENCH"

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void
die(const char *what, struct onecard_conn *c)
{
	fprintf(stderr, "stale-bench: %s: %s\n", what,
	    c != NULL ? onecard_last_error(c) : "failed");
	exit(1);
}

static struct onecard_conn *
connect_to(const char *broker)
{
	struct onecard_options opt = {.broker = broker};
	struct onecard_conn *c = NULL;
	char err[256];

	if (onecard_connect(&opt, &c, err, sizeof(err)) != ONECARD_OK) {
		fprintf(stderr, "stale-bench: %s: %s\n", broker, err);
		exit(1);
	}
	return c;
}

/* The phone the card's holder has now, as conn answers. */
static void
phone_of(struct onecard_conn *conn, const char *card, char *phone, size_t len)
{
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Reply *r = NULL;

	id.domain = (char *)CARD_DOMAIN;
	id.value = (char *)card;
	if (onecard_lookup(conn, &id, NULL, 0, &r) != ONECARD_OK ||
	    r->code != ONECARD__V1__CODE__OK || r->patient == NULL ||
	    r->patient->demographics == NULL)
		die("lookup", conn);
	snprintf(phone, len, "%s", r->patient->demographics->phone);
	onecard_reply_free(r);
}

/* Enroll the card (op ENROLL) or set its holder's phone (op UPDATE). */
static void
write_card(
    struct onecard_conn *conn, const char *card, const char *phone, int enroll)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Enroll e = ONECARD__V1__ENROLL__INIT;
	Onecard__V1__Update u = ONECARD__V1__UPDATE__INIT;
	Onecard__V1__Demographics d = ONECARD__V1__DEMOGRAPHICS__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Identifier *idp[1] = {&id};
	Onecard__V1__Reply *r = NULL;

	id.domain = (char *)CARD_DOMAIN;
	id.value = (char *)card;
	d.phone = (char *)phone;
	if (enroll) {
		e.identifiers = idp;
		e.n_identifiers = 1;
		e.demographics = &d;
		req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
		req.enroll = &e;
	} else {
		u.identifier = &id;
		u.demographics = &d;
		req.op_case = ONECARD__V1__REQUEST__OP_UPDATE;
		req.update = &u;
	}
	if (onecard_call(conn, &req, &r) != ONECARD_OK ||
	    r->code != ONECARD__V1__CODE__OK)
		die(r != NULL && r->message ? r->message : "write", conn);
	onecard_reply_free(r);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double
pct(const uint64_t *v, size_t n, double p)
{
	size_t i = (size_t)(p * (double)n);

	if (i >= n)
		i = n - 1;
	return (double)v[i] / 1e6;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"writer", required_argument, NULL, 'w'},
	    {"reader", required_argument, NULL, 'r'},
	    {"samples", required_argument, NULL, 'n'}, {NULL, 0, NULL, 0}};
	const char *writer = NULL, *reader = NULL;
	struct onecard_conn *a, *b;
	char card[32], phone[32], seen[32];
	uint64_t *lag, t0, polls = 0;
	int n = 200, ch;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1)
		switch (ch) {
		case 'w':
			writer = optarg;
			break;
		case 'r':
			reader = optarg;
			break;
		case 'n':
			n = atoi(optarg);
			break;
		default:
			goto usage;
		}
	if (writer == NULL || reader == NULL || n < 1)
		goto usage;
	if ((lag = calloc((size_t)n, sizeof(*lag))) == NULL)
		return 1;
	a = connect_to(writer);
	b = connect_to(reader);
	snprintf(card, sizeof(card), "STALE%ld", (long)getpid());
	write_card(a, card, "13800000000", 1);
	srand((unsigned)getpid());
	for (int i = 0; i < n; i++) {
		phone_of(b, card, seen, sizeof(seen));
		phone_of(b, card, seen, sizeof(seen)); /* now from B's cache */
		snprintf(phone, sizeof(phone), "1380%07d", i + 1);
		write_card(a, card, phone, 0);
		t0 = now_ns();
		do {
			phone_of(b, card, seen, sizeof(seen));
			polls++;
		} while (strcmp(seen, phone) != 0);
		lag[i] = now_ns() - t0;
		usleep(5000 + (useconds_t)(rand() % 20000));
	}
	qsort(lag, (size_t)n, sizeof(*lag), cmp_u64);
	printf("{\"samples\":%d,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
	       "\"max_ms\":%.3f,\"polls\":%llu}\n",
	    n, pct(lag, (size_t)n, 0.50), pct(lag, (size_t)n, 0.99),
	    (double)lag[n - 1] / 1e6, (unsigned long long)polls);
	onecard_close(a);
	onecard_close(b);
	free(lag);
	return 0;
usage:
	fprintf(stderr,
	    "usage: stale-bench --writer HOST:PORT --reader "
	    "HOST:PORT [--samples N]\n");
	return 2;
}
