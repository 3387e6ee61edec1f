/*
 * onecardd.h: the daemon's internal map: the structures the network core
 * shares between its files and the prototypes grouped by the file that defines
 * them. Nothing outside broker/ includes it. Threads: docs/architecture.md.
 */
#ifndef ONECARDD_H
#define ONECARDD_H

#include <sys/queue.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "ratelimit.h"
#include "policy.h"
#include "registry.h"

struct evbuffer;
struct sockaddr;
struct sockaddr_storage;
struct event;
struct event_base;
struct evconnlistener;

#define ONECARDD_CN_MAX 64
/* Buckets of a worker's connection table (a power of two). */
#define WORKER_CONN_BUCKETS 4096
/* Seconds the shutdown waits for connections to finish. */
#define SERVER_GRACE_SECONDS 5

/* Everything a flag or a config key can set. Read-only once threads start. */
struct config {
	char *listen;
	char *db;
	char *cert;
	char *key;
	char *ca;
	char *crl;
	char *admins; /* comma-separated CNs */
	char *audit_log;
	char *metrics_listen;
	char *fhir_listen;
	char **fhir_systems; /* --fhir-system DOMAIN=URI, each as given */
	size_t n_fhir_systems;
	int fhir_max_conns; /* FHIR connections at once; 0: fhir.c's default */
	int fhir_timeout;   /* seconds to send a FHIR request; 0: the same */
	int fhir_threads;   /* 0: as many as threads */
	char *user;
	char *node;
	int threads;
	size_t max_frame;
	int idle_timeout;      /* seconds */
	int stall_timeout;     /* seconds: half-sent frame, unread replies */
	int handshake_timeout; /* seconds */
	int max_conns;
	int max_subscribers;
	size_t max_pending_output;
	int use_syslog;
	int check_only; /* --check-config: load the TLS files, then exit */
	int log_level;
	size_t lookup_cache_mb; /* all workers' lookup caches together */
	struct registry_limits limits;
	/* Rate limits (ratelimit.c): defaults and hospital.CODE.rate-* keys. */
	struct ratelimit_conf rates;
	unsigned search_max_results; /* a hospital's search, at most; 0: the
					protocol's caps only */
	struct policy_config policy; /* disclosure, hospital.CODE.disclosure* */
};

/* What a worker is told by another thread. */
enum worker_msg_type {
	WORKER_MSG_REPLY,  /* a writer job came back */
	WORKER_MSG_REVOKE, /* close connections of a revoked hospital */
	WORKER_MSG_STOP,   /* shut down gracefully */
};

struct writer_job;

/* A REPLY message lives beside its writer_job, in conn.c's struct
 * conn_write (no allocation per write); the others are allocated by the
 * poster and freed by the worker. */
struct worker_msg {
	TAILQ_ENTRY(worker_msg) entry;
	enum worker_msg_type type;
	struct writer_job *job;         /* REPLY */
	char code[ONECARDD_CN_MAX + 1]; /* REVOKE */
};
TAILQ_HEAD(worker_msgq, worker_msg);

struct conn; /* private to conn.c */
struct sub;  /* private to notify.c */
TAILQ_HEAD(sub_q, sub);
LIST_HEAD(conn_list, conn);
TAILQ_HEAD(conn_hsq, conn);

struct worker {
	int idx;
	pthread_t thread;
	struct event_base *base;
	struct evconnlistener *listener;
	struct registry *reg; /* read handle, this thread only */
	struct event *notify; /* activated by other threads */
	struct event *grace;  /* shutdown deadline */
	struct event *tick;   /* enforces handshake deadlines */
	struct event *resume; /* re-enables accepting after EMFILE */
	struct event *pass;   /* the pass's end: audit lines, flushq */
	pthread_mutex_t lock;
	struct worker_msgq msgs; /* under lock */
	/* conn.c's (conn_worker_init); server.c reads only nconns. */
	struct conn_hsq handshaking; /* in accept order, so by deadline */
	struct conn_hsq partial;     /* holding part of a frame, by deadline */
	struct conn_hsq stalled;     /* output over its bound, by deadline */
	struct conn_hsq flushq;      /* replies to send at the pass's end */
	struct conn_list conns[WORKER_CONN_BUCKETS]; /* by connection id */
	size_t nconns;
	int stopping;
	uint8_t *scratch; /* one frame body, max_frame bytes */
	/* notify.c's: the subscriptions on this worker. */
	struct sub_q subs;
	atomic_int nsubs;        /* read by the writer's thread */
	struct event *notify_ev; /* their turn to read on */
	atomic_int notify_armed; /* notify_ev's timer is set */
	unsigned notify_gen;
	/* conn.c's and notify.c's: replies to filter for a caller whose
	 * disclosure policy is not full (policy.h), made on first use. */
	struct evbuffer *policy_in;
};

/* onecardd.c */
extern struct config *cfg;
extern const char *onecardd_version;
int onecardd_is_admin(const char *cn);
/* SIGHUP: read the flags and config file again and apply what a reload
 * changes (the rate limits, the disclosure policy). 0, or -1 (logged; the
 * old ones stay). */
int onecardd_reload_config(void);
uint64_t onecardd_now_us(void);
void onecardd_notify(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
#define WORKER_TICK_MS 250 /* how often handshake deadlines are checked */

/* tls.c */
int tls_init(const struct config *c);
int tls_reload(const struct config *c);
SSL *tls_new(void);
int tls_peer_cn(SSL *ssl, char *cn, size_t cnlen);
void tls_close_notify(SSL *ssl);
void tls_clear_errors(void);
void tls_shutdown(void);

/* fhir.c */
/* Serve FHIR on c->fhir_listen on its own thread. 0 or -1. Start-up only. */
int fhir_start(const struct config *c);
void fhir_stop(void);

/* server.c */
int server_parse_address(const char *s, struct sockaddr_storage *ss, int *len);
void server_pass_arm(void *w);
int server_check_listen(const struct config *c);
int server_init(const struct config *c);
int server_start(void);
void server_run(void);
void server_stop(void);
void server_free(void);
int server_reload(void);
void worker_post(struct worker *w, struct worker_msg *m);
/* Read the registry's change feed (before the writer starts). 0 or -1. */
int server_subscribe(void);
void server_conn_closed(void);
void server_worker_check_done(struct worker *w);

/* conn.c */
void conn_worker_init(struct worker *w);
void conn_accept(struct worker *w, int fd, const struct sockaddr *sa, int slen);
void conn_writer_done(struct worker *w, struct writer_job *job);
void conn_revoke(struct worker *w, const char *code);
void conn_drain_all(struct worker *w);
void conn_free_all(struct worker *w, const char *reason);
void conn_expire_deadlines(struct worker *w);
void conn_flush_queued(struct worker *w);
/* What notify.c needs of a connection. */
const char *conn_cn(const struct conn *c);
int conn_role(const struct conn *c);
uint64_t conn_id(const struct conn *c);
struct worker *conn_worker(const struct conn *c);
struct evbuffer *conn_output(struct conn *c);
struct sub *conn_sub(const struct conn *c);
void conn_set_sub(struct conn *c, struct sub *s);
int conn_may_push(const struct conn *c);
void conn_pushed(struct conn *c);
void conn_close_with(struct conn *c, int code, const char *message);
/* c's disclosure policy, resolved again if a reload changed it. */
const struct policy_who *conn_policy(struct conn *c);
/* w's buffer for replies to filter (policy_filter_frames), or NULL when
 * out of memory. Empty between uses; its worker's thread only. */
struct evbuffer *conn_policy_in(struct worker *w);

#endif
