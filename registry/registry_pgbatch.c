/*
 * registry_pgbatch.c: a PostgreSQL writer's batch's view of the
 * identifiers table (registry_pgbatch.h). Two tables hashed by their
 * keys: domain:value to its holder (or nobody), and patient id to the
 * identifiers it holds, sorted as the server sorts them (bytes: COLLATE
 * "C"). Each entry is one malloc, freed when the batch forgets.
 */
#include <stdlib.h>
#include <string.h>

#include "registry_cache.h"
#include "registry_pgbatch.h"

#define PGB_BUCKETS 1024 /* a power of two */

struct pgb_ident {
	struct pgb_ident *next; /* in the holder's list, sorted */
	char *value;            /* after domain, in the same allocation */
	char domain[];
};

struct pgb_owner {
	struct pgb_owner *next;     /* in its bucket */
	char pid[REGISTRY_PID_MAX]; /* "" when nobody holds it */
	size_t dlen;
	char key[]; /* domain, NUL, value, NUL */
};

struct pgb_held {
	struct pgb_held *next; /* in its bucket */
	char pid[REGISTRY_PID_MAX];
	struct pgb_ident *idents;
};

struct pgb {
	struct pgb_owner *owners[PGB_BUCKETS];
	struct pgb_held *held[PGB_BUCKETS];
};

struct pgb *
pgb_new(void)
{
	return calloc(1, sizeof(struct pgb));
}

static void
held_free(struct pgb_held *h)
{
	struct pgb_ident *i, *next;

	for (i = h->idents; i != NULL; i = next) {
		next = i->next;
		free(i);
	}
	free(h);
}

/* Forget every list of identifiers (an identifier moved whose holder was
 * not known: some list may be wrong). */
static void
held_clear(struct pgb *b)
{
	struct pgb_held *h, *next;

	for (size_t i = 0; i < PGB_BUCKETS; i++) {
		for (h = b->held[i]; h != NULL; h = next) {
			next = h->next;
			held_free(h);
		}
		b->held[i] = NULL;
	}
}

void
pgb_clear(struct pgb *b)
{
	struct pgb_owner *o, *next;

	if (b == NULL)
		return;
	for (size_t i = 0; i < PGB_BUCKETS; i++) {
		for (o = b->owners[i]; o != NULL; o = next) {
			next = o->next;
			free(o);
		}
		b->owners[i] = NULL;
	}
	held_clear(b);
}

void
pgb_free(struct pgb *b)
{
	pgb_clear(b);
	free(b);
}

static size_t
owner_bucket(const char *domain, const char *value)
{
	size_t d = strlen(domain);

	return (lcache_hash(domain, d) ^ lcache_hash(value, strlen(value))) &
	    (PGB_BUCKETS - 1);
}

static struct pgb_owner *
owner_find(struct pgb *b, const char *domain, const char *value, size_t *bk)
{
	struct pgb_owner *o;

	*bk = owner_bucket(domain, value);
	for (o = b->owners[*bk]; o != NULL; o = o->next)
		if (strcmp(o->key, domain) == 0 &&
		    strcmp(o->key + o->dlen + 1, value) == 0)
			return o;
	return NULL;
}

int
pgb_owner(struct pgb *b, const char *domain, const char *value, char *pid)
{
	struct pgb_owner *o;
	size_t bk;

	if (b == NULL || (o = owner_find(b, domain, value, &bk)) == NULL)
		return -1;
	if (o->pid[0] == '\0')
		return 1;
	registry_copy(pid, o->pid, REGISTRY_PID_MAX);
	return 0;
}

void
pgb_owner_note(
    struct pgb *b, const char *domain, const char *value, const char *pid)
{
	struct pgb_owner *o;
	size_t bk, d, v;

	if (b == NULL)
		return;
	if ((o = owner_find(b, domain, value, &bk)) == NULL) {
		d = strlen(domain);
		v = strlen(value);
		if ((o = malloc(sizeof(*o) + d + v + 2)) == NULL) {
			pgb_clear(b); /* forgotten: read again */
			return;
		}
		o->dlen = d;
		memcpy(o->key, domain, d + 1);
		memcpy(o->key + d + 1, value, v + 1);
		o->next = b->owners[bk];
		b->owners[bk] = o;
	}
	registry_copy(o->pid, pid != NULL ? pid : "", sizeof(o->pid));
}

static struct pgb_held *
held_find(struct pgb *b, const char *pid, size_t *bk)
{
	struct pgb_held *h;

	*bk = lcache_hash(pid, strlen(pid)) & (PGB_BUCKETS - 1);
	for (h = b->held[*bk]; h != NULL; h = h->next)
		if (strcmp(h->pid, pid) == 0)
			return h;
	return NULL;
}

int
pgb_idents(
    struct pgb *b, const char *pid, registry_ident_cb cb, void *arg, int *cbrc)
{
	struct pgb_held *h;
	size_t bk;

	*cbrc = 0;
	if (b == NULL || (h = held_find(b, pid, &bk)) == NULL)
		return -1;
	for (const struct pgb_ident *i = h->idents; i != NULL; i = i->next)
		if (cb(arg, i->domain, i->value) == -1) {
			*cbrc = -1;
			break;
		}
	return 0;
}

/* Drop pid's list (no longer known). */
static void
held_drop(struct pgb *b, const char *pid)
{
	struct pgb_held **pp, *h;
	size_t bk = lcache_hash(pid, strlen(pid)) & (PGB_BUCKETS - 1);

	for (pp = &b->held[bk]; (h = *pp) != NULL; pp = &h->next)
		if (strcmp(h->pid, pid) == 0) {
			*pp = h->next;
			held_free(h);
			return;
		}
}

void
pgb_idents_begin(struct pgb *b, const char *pid)
{
	struct pgb_held *h;
	size_t bk;

	if (b == NULL)
		return;
	held_drop(b, pid);
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		pgb_clear(b);
		return;
	}
	(void)held_find(b, pid, &bk);
	registry_copy(h->pid, pid, sizeof(h->pid));
	h->next = b->held[bk];
	b->held[bk] = h;
}

/* Byte order of (domain, value), as the server's COLLATE "C". */
static int
ident_cmp(const struct pgb_ident *i, const char *domain, const char *value)
{
	int c = strcmp(i->domain, domain);

	return c != 0 ? c : strcmp(i->value, value);
}

/* Put domain:value in h's list, in order; 0, or -1 out of memory. */
static int
held_add(struct pgb_held *h, const char *domain, const char *value)
{
	struct pgb_ident **pp, *i;
	size_t d = strlen(domain), v = strlen(value);

	for (pp = &h->idents; *pp != NULL && ident_cmp(*pp, domain, value) < 0;
	     pp = &(*pp)->next)
		;
	if (*pp != NULL && ident_cmp(*pp, domain, value) == 0)
		return 0;
	if ((i = malloc(sizeof(*i) + d + v + 2)) == NULL)
		return -1;
	memcpy(i->domain, domain, d + 1);
	i->value = i->domain + d + 1;
	memcpy(i->value, value, v + 1);
	i->next = *pp;
	*pp = i;
	return 0;
}

/* Take domain:value out of h's list. */
static void
held_remove(struct pgb_held *h, const char *domain, const char *value)
{
	struct pgb_ident **pp, *i;

	for (pp = &h->idents; (i = *pp) != NULL; pp = &i->next)
		if (ident_cmp(i, domain, value) == 0) {
			*pp = i->next;
			free(i);
			return;
		}
}

void
pgb_idents_note(
    struct pgb *b, const char *pid, const char *domain, const char *value)
{
	struct pgb_held *h;
	size_t bk;

	if (b == NULL || (h = held_find(b, pid, &bk)) == NULL)
		return;
	if (held_add(h, domain, value) == -1)
		pgb_clear(b);
}

void
pgb_ident_set(
    struct pgb *b, const char *domain, const char *value, const char *pid)
{
	struct pgb_held *h;
	char was[REGISTRY_PID_MAX];
	size_t bk;

	if (b == NULL)
		return;
	switch (pgb_owner(b, domain, value, was)) {
	case 0: /* held: out of its holder's list */
		if ((h = held_find(b, was, &bk)) != NULL)
			held_remove(h, domain, value);
		break;
	case 1: /* nobody's */
		break;
	default: /* some list, not known which, may hold it */
		held_clear(b);
	}
	pgb_owner_note(b, domain, value, pid);
	if (pid != NULL && (h = held_find(b, pid, &bk)) != NULL &&
	    held_add(h, domain, value) == -1)
		pgb_clear(b);
}
