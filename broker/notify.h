/*
 * notify.h: subscriptions (the contract's Notifications). A subscription is
 * a cursor over the registry's event log held by one connection: its
 * worker reads the events after the cursor in chunks while the
 * connection's output is under --max-pending-output, so the events wait in
 * the log, never in memory. The backlog and live events take the same
 * path; the change feed only says that there is more to read.
 */
#ifndef ONECARD_NOTIFY_H
#define ONECARD_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "onecard.pb-c.h"
#include "registry.h"

struct conn;
struct sub;
struct worker;
struct evbuffer;

/* Start-up, before the workers: the table --max-subscribers sizes. */
int notify_init(int max_subscribers);
void notify_free(void);
/* A worker's part (its thread's event, the last event its handle sees). */
int notify_worker_init(struct worker *w);
void notify_worker_free(struct worker *w);
/* The change feed (the writer's thread): the last event moves on (c NULL:
 * changes were lost, the workers ask the store). Then notify_wake each
 * worker: any thread. */
void notify_feed(const struct registry_change *c, size_t n);
void notify_wake(struct worker *w);

/* Answer a Subscribe on c (its worker's thread): the reply goes to out. */
void notify_subscribe(
    struct conn *c, const Onecard__V1__Request *req, struct op_result *res);
/* c's output drained to half its bound: read on. */
void notify_wrote(struct sub *s);
/* c is being freed: end its subscription (audited). */
void notify_end(struct sub *s, const char *reason);

/* The metrics: subscribers, events pushed, each subscriber's lag. */
void notify_render(struct evbuffer *b);

#endif
