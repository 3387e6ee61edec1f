/*
 * registry_pgbatch.h: what a PostgreSQL writer's batch knows of the
 * identifiers table, so that it reads each row once. A batch holds the
 * counter lock every broker's write transaction takes first
 * (registry_pg.c): no one else changes a row until it commits, and every
 * change it makes goes through here. So what it read or wrote stays true
 * to its end, and an op's reads of it cost no round trip. Anything not
 * known is read from the server; on any doubt (an op undone, memory) the
 * store forgets, and reads again.
 */
#ifndef ONECARD_REGISTRY_PGBATCH_H
#define ONECARD_REGISTRY_PGBATCH_H

#include "registry_backend.h"

struct pgb;

struct pgb *pgb_new(void);
void pgb_free(struct pgb *b);
/* Forget everything: at the end of a batch, and when an op is undone. */
void pgb_clear(struct pgb *b);

/* Who holds domain:value: 0 (pid set), 1 nobody, -1 not known. */
int pgb_owner(struct pgb *b, const char *domain, const char *value, char *pid);
/* Note what the server answered: pid NULL when nobody holds it. */
void pgb_owner_note(
    struct pgb *b, const char *domain, const char *value, const char *pid);

/* The identifiers pid holds, in domain and value order, to cb: 0 known
 * (*cbrc: -1 if cb failed), -1 not known. */
int pgb_idents(
    struct pgb *b, const char *pid, registry_ident_cb cb, void *arg, int *cbrc);
/* Start pid's known list, empty (a new patient, or a read to follow with
 * pgb_idents_note). */
void pgb_idents_begin(struct pgb *b, const char *pid);
/* Add a row read from the server to pid's list begun just before. */
void pgb_idents_note(
    struct pgb *b, const char *pid, const char *domain, const char *value);

/* The batch's writes: domain:value now held by pid, or (pid NULL) by
 * nobody. */
void pgb_ident_set(
    struct pgb *b, const char *domain, const char *value, const char *pid);

#endif
