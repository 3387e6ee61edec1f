/*
 * harness.h: the integration test harness.
 *
 * Each test gets a fresh temporary folder with its own development PKI
 * (certs/mkcerts.sh), starts the real onecardd from ONECARD_BIN_DIR on
 * 127.0.0.1:0, learns the port from the broker's "listening on" line and
 * registers the hospitals it needs through an admin connection. Everything
 * the harness makes lives in h->dir and is removed by harness_cleanup, or at
 * exit when a failed assertion skipped it; the broker is killed when the
 * thread that started it exits (start it from the test's main thread). The
 * harness never reads the broker's database itself: tests see only what a
 * client sees.
 */
#ifndef ONECARD_HARNESS_H
#define ONECARD_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <pthread.h>
#include <stdatomic.h>

#include "onecard.h"

struct harness {
	char dir[256];      /* the temporary folder */
	char certs[320];    /* dir/certs: ca.pem, broker.*, admin.*, CODE.* */
	char db[320];       /* dir/registry.db, or a PostgreSQL URL */
	char pg_schema[32]; /* its schema there (harness_pg.c); "" for none */
	char addr[64];      /* "127.0.0.1:PORT" */
	int port;           /* the port onecardd got */
	pid_t pid;          /* onecardd, or 0 when not running */
	char log_path[320]; /* onecardd's stderr */
};

/*
 * Fresh temp dir; certs for "admin" and codes (NULL-terminated, may be NULL);
 * start onecardd --listen 127.0.0.1:0 --db <dir>/registry.db --cert/--key
 * broker --ca ca --admins admin --threads 2 plus extra_args (NULL-terminated,
 * may be NULL), stderr to log_path; wait for "listening on 127.0.0.1:PORT";
 * then register each code as an active hospital (HospitalAdd as admin).
 * 0 or -1 (the reason and the broker's log go to stderr).
 */
int harness_start(
    struct harness *h, const char *const *codes, const char *const *extra_args);

/* ONECARD_TEST_STORE=postgresql: point h->db at a new schema of the pg
 * fixture's cluster (harness_start does). 0 (also when not asked) or -1. */
int harness_pg_db(struct harness *h);
/* Drop that schema, if any (harness_cleanup does). */
void harness_pg_drop(struct harness *h);
/* Is the suite running on PostgreSQL (ONECARD_TEST_STORE=postgresql)? A
 * test of what only the SQLite store has (its files, its log, retention,
 * the learnt model) says so and skips there. */
int harness_on_pg(void);

/* Start onecardd again on the same dir, db and certs; it gets a new port. */
int harness_restart(struct harness *h, const char *const *extra_args);

/* kill(sig) and waitpid; returns the exit status (128+N if killed by signal
 * N), or -1. */
int harness_stop(struct harness *h, int sig);

/* SIGKILL onecardd if still running, rm -rf the folder. */
void harness_cleanup(struct harness *h);

/* Fill opt to connect to the broker as cn (h->certs/cn.pem, cn.key). The
 * paths live in a ring of 32 slots: use opt before 32 more calls. */
void harness_options(
    struct harness *h, const char *cn, struct onecard_options *opt);

/* Connect as cn; ONECARD_OK or an onecard_err (the reason goes to stderr). */
int harness_connect(
    struct harness *h, const char *cn, struct onecard_conn **out);

/* Make certificates for more CNs (NULL-terminated) in h->certs. 0 or -1. */
int harness_certs(struct harness *h, const char *const *codes);

/*
 * Run a shell command line (/bin/sh -c) with ONECARD_BROKER/CERT/KEY/CA set
 * for cn (cn NULL: only ONECARD_BROKER and ONECARD_CA) and PATH starting with
 * ONECARD_BIN_DIR; stdout goes to out (may be NULL; NUL-terminated, truncated
 * to outlen), stderr to the test's stderr. A command still running after 60 s
 * is killed. Returns the exit status (128+N if killed by signal N), or -1.
 */
int harness_run(struct harness *h, const char *cn, char *out, size_t outlen,
    const char *cmdline);

/* harness_run with stderr captured too, into err (may be NULL). */
int harness_run2(struct harness *h, const char *cn, char *out, size_t outlen,
    char *err, size_t errlen, const char *cmdline);

/* SIGSTOP onecardd and wait until it is stopped (a broker that answers
 * nothing); harness_thaw sends SIGCONT. 0 or -1. */
int harness_freeze(struct harness *h);
int harness_thaw(struct harness *h);

/* Read the broker's log so far into buf (NUL-terminated). 0 or -1. */
int harness_log(struct harness *h, char *buf, size_t buflen);

/*
 * A fake broker for the answers a real one rarely gives. It serves TLS with
 * h's broker certificate (client certificates must chain to h's CA), one
 * connection at a time, and answers every request with Reply{id, code,
 * message}: id is the request's when reply_id is -1, else reply_id (or,
 * with hangup set, closes each connection right after the handshake). Set
 * the fields before harness_fake_start; read the counters after
 * harness_fake_stop.
 */
struct harness_fake {
	int64_t reply_id;    /* -1: echo the request's id */
	int code;            /* Reply.code to send */
	const char *message; /* Reply.message (may be NULL) */
	int hangup;          /* close right after the handshake, reading
				nothing */
	char addr[64];       /* "127.0.0.1:PORT", set by start */
	int requests;        /* frames received */
	int close_notifies;  /* connections that ended with close_notify */
	/* private */
	int lfd;
	void *ctx;
	pthread_t thread;
	atomic_int stop; /* set by stop, read by the fake's thread */
};

int harness_fake_start(struct harness *h, struct harness_fake *f);
void harness_fake_stop(struct harness_fake *f);

/* Storage for a one-identifier Enroll request. */
struct harness_enroll {
	Onecard__V1__Request req;
	Onecard__V1__Enroll enroll;
	Onecard__V1__Identifier id, *ids[1];
	char value[48];
};
/* Fill e as request id enrolling domain=<printf(fmt, ...)>. */
void harness_enroll_init(struct harness_enroll *e, uint64_t id,
    const char *domain, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Write load (harness_load.c): conns client threads (at most 16) connect as
 * cn and enroll hosp:<cn>=<tag><t>-<i> in pipelined windows until their
 * connection ends, remembering the patient id of each enrollment answered
 * OK. wait joins them and returns how many were acknowledged; verify (on a
 * running broker) looks each of them up and returns how many are missing
 * or have another patient id (0: none lost), or -1 if it cannot ask.
 */
struct harness_load;
struct harness_load *harness_load_start(
    struct harness *h, const char *cn, const char *tag, int conns);
size_t harness_load_wait(struct harness_load *load);
int harness_load_verify(struct harness_load *load);
void harness_load_free(struct harness_load *load);

/* Helpers (harness_util.c). Milliseconds on a monotonic clock. */
long long harness_now_ms(void);
/* Ping on conn: the reply's code, or -1 if no reply came. */
int harness_ping(struct onecard_conn *conn);
/* Connect as cn (5 s timeouts) and ping: the reply's code, or -1. */
int harness_ping_as(struct harness *h, const char *cn);
/* A plain TCP connection to 127.0.0.1:port; the fd or -1. */
int harness_tcp_connect(int port);
/* The same with SO_RCVBUF and TCP_MAXSEG set first (0: left as they are):
 * a peer whose small window and segments keep the broker's socket buffer
 * toward it small, as across a network rather than loopback. */
int harness_tcp_connect_narrow(int port, int rcvbuf, int mss);
/* Open descriptors of process pid (its /proc/PID/fd entries), or -1. */
int harness_fd_count(pid_t pid);
/* The port of the latest "metrics on 127.0.0.1:PORT" in the broker's log,
 * or -1. */
int harness_metrics_port(struct harness *h);
/* GET path over plain HTTP on 127.0.0.1:port: the status, or -1. body and
 * ctype (each may be NULL) get the body and the Content-Type header,
 * NUL-terminated and cut to their lengths. */
int harness_http_get(int port, const char *path, char *body, size_t bodylen,
    char *ctype, size_t ctypelen);
/* The value of one series ("name{labels}" exactly) in a Prometheus
 * exposition; 0 when it is absent. */
double harness_metric(const char *expo, const char *series);

#endif
