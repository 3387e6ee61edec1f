/*
 * server.c: the daemon's threads and their lifetimes: one worker (event_base,
 * listener, registry read handle, queue) per --threads, and the main thread's
 * signal loop. Never touches a connection's socket or TLS session (conn.c).
 * More: docs/architecture.md.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <event2/util.h>

#include "audit.h"
#include "log.h"
#include "notify.h"
#include "onecardd.h"

static struct worker *workers;
static int nworkers;
static struct event_base *main_base;
static struct event *sig_term, *sig_int, *sig_hup;
static atomic_int conn_count;
static atomic_int stopping;
static _Atomic time_t last_full_log; /* rate-limits two warnings */

/* Route libevent's own messages into our log. */
static void
server_libevent_log(int severity, const char *msg)
{
	if (severity >= EVENT_LOG_WARN)
		log_warnx("libevent: %s", msg);
	else
		log_debug("libevent: %s", msg);
}

/* A connection was accepted on w's listener. */
static void
server_acceptcb(struct evconnlistener *lis, evutil_socket_t fd,
    struct sockaddr *sa, int slen, void *arg)
{
	struct worker *w = arg;
	int one = 1;
	time_t now;

	if (atomic_fetch_add(&conn_count, 1) >= cfg->max_conns) {
		atomic_fetch_sub(&conn_count, 1);
		evutil_closesocket(fd);
		now = time(NULL);
		if (atomic_exchange(&last_full_log, now) != now) {
			/* once a second at most */
			log_warnx("connection refused: --max-conns %d reached",
			    cfg->max_conns);
		}
		return;
	}
	if (w->stopping) {
		atomic_fetch_sub(&conn_count, 1);
		evutil_closesocket(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	conn_accept(w, fd, sa, slen);
}

/* A second after running out of descriptors: accept again. */
static void
worker_resumecb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	if (w->listener != NULL && !w->stopping)
		evconnlistener_enable(w->listener);
}

/*
 * accept() failed: say so (once a second at most). Out of descriptors, the
 * listener would spin on the pending connection, so it pauses for a second.
 */
static void
server_accept_errorcb(struct evconnlistener *lis, void *arg)
{
	struct worker *w = arg;
	int err = EVUTIL_SOCKET_ERROR();
	time_t now = time(NULL);
	struct timeval tv = {1, 0};

	if (atomic_exchange(&last_full_log, now) != now)
		log_warnx("accept: %s", evutil_socket_error_to_string(err));
	if ((err == EMFILE || err == ENFILE || err == ENOBUFS ||
		err == ENOMEM) &&
	    w->resume != NULL) {
		evconnlistener_disable(lis);
		evtimer_add(w->resume, &tv);
	}
}

/* A connection is gone (or was never taken): release its slot. */
void
server_conn_closed(void)
{
	atomic_fetch_sub(&conn_count, 1);
}

/* Shutdown grace ran out on w: close what is left. */
static void
worker_gracecb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	if (w->nconns > 0)
		log_warnx(
		    "shutdown grace over, closing %zu connections", w->nconns);
	conn_free_all(w, "shutdown grace over");
	server_worker_check_done(w);
}

/* Every WORKER_TICK_MS: enforce handshake and frame deadlines. */
static void
worker_tickcb(evutil_socket_t fd, short what, void *arg)
{
	conn_expire_deadlines(arg);
}

/* Stop w: no more accepting, drain connections, leave when none is left. */
static void
worker_stop(struct worker *w)
{
	struct timeval tv = {SERVER_GRACE_SECONDS, 0};

	if (w->stopping)
		return;
	w->stopping = 1;
	if (w->listener != NULL) {
		evconnlistener_free(w->listener);
		w->listener = NULL;
	}
	conn_drain_all(w);
	w->grace = evtimer_new(w->base, worker_gracecb, w);
	if (w->grace != NULL)
		evtimer_add(w->grace, &tv);
	server_worker_check_done(w);
}

/* End w's loop once it is stopping and holds no connection. */
void
server_worker_check_done(struct worker *w)
{
	if (w->stopping && w->nconns == 0)
		event_base_loopexit(w->base, NULL);
}

/*
 * The loop's pass is over: write the audit lines held in it, then send the
 * replies of every connection that has some, so that no reply leaves
 * before its line and each connection's replies of the pass leave in one
 * SSL_write.
 */
static void
worker_passcb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	audit_pass_end();
	conn_flush_queued(arg);
}

/*
 * Run worker_passcb in this pass. An event made active from its own loop
 * runs after the callbacks already active, before the loop polls again.
 */
void
server_pass_arm(void *arg)
{
	struct worker *w = arg;

	event_active(w->pass, EV_TIMEOUT, 0);
}

/* Other threads posted to w: handle every message queued. */
static void
worker_notifycb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct worker_msgq q;
	struct worker_msg *m;

	TAILQ_INIT(&q);
	pthread_mutex_lock(&w->lock);
	TAILQ_CONCAT(&q, &w->msgs, entry);
	pthread_mutex_unlock(&w->lock);
	audit_batch_begin();
	while ((m = TAILQ_FIRST(&q)) != NULL) {
		TAILQ_REMOVE(&q, m, entry);
		switch (m->type) {
		case WORKER_MSG_REPLY:
			conn_writer_done(w, m->job); /* frees m with its job */
			continue;
		case WORKER_MSG_REVOKE:
			conn_revoke(w, m->code);
			break;
		case WORKER_MSG_STOP:
			worker_stop(w);
			break;
		}
		free(m);
	}
	audit_batch_end();
}

/* Queue m for w and wake its loop; m is w's to free. Any thread. */
void
worker_post(struct worker *w, struct worker_msg *m)
{
	pthread_mutex_lock(&w->lock);
	TAILQ_INSERT_TAIL(&w->msgs, m, entry);
	pthread_mutex_unlock(&w->lock);
	event_active(w->notify, EV_READ, 0);
}

/* Tell every worker to close the connections of a revoked hospital. */
static void
server_post_revoke(const char *code)
{
	struct worker_msg *m;

	for (int i = 0; i < nworkers; i++) {
		if ((m = calloc(1, sizeof(*m))) == NULL) {
			log_warnx("revoke of %s: out of memory", code);
			continue;
		}
		m->type = WORKER_MSG_REVOKE;
		snprintf(m->code, sizeof(m->code), "%s", code);
		worker_post(&workers[i], m);
	}
}

/*
 * The registry's change feed: subscribers read on, and a committed
 * revocation closes that hospital's open connections on every worker. The
 * writer's thread, once the batch is durable.
 */
static void
server_feed(void *arg, const struct registry_change *c, size_t n)
{
	(void)arg;
	/* Subscribers read on from the log, whatever else happens. */
	notify_feed(c, n);
	for (int i = 0; i < nworkers; i++)
		notify_wake(&workers[i]);
	if (c == NULL) {
		log_warnx(
		    "change feed: changes lost (out of memory); a revoked "
		    "hospital's open connections stay until they end");
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (strcmp(c[i].op, "hospital_revoke") == 0)
			server_post_revoke(c[i].hospital);
}

int
server_subscribe(void)
{
	return registry_feed_subscribe(server_feed, NULL);
}

/* SIGTERM or SIGINT: stop every worker, then leave the signal loop. */
static void
server_sigterm(evutil_socket_t sig, short what, void *arg)
{
	struct worker_msg *m;

	if (atomic_exchange(&stopping, 1))
		return;
	log_info("signal %d: shutting down", (int)sig);
	onecardd_notify("STOPPING=1\nSTATUS=draining connections");
	for (int i = 0; i < nworkers; i++) {
		if ((m = calloc(1, sizeof(*m))) == NULL)
			fatalx("out of memory");
		m->type = WORKER_MSG_STOP;
		worker_post(&workers[i], m);
	}
	event_base_loopbreak(main_base);
}

/* SIGHUP: new certificates and CRL for new connections, the disclosure
 * policy and rate limits for every connection, reopen the audit. */
static void
server_sighup(evutil_socket_t sig, short what, void *arg)
{
	log_info("signal %d: reloading", (int)sig);
	/* systemd (Type=notify) holds the unit in "reloading" until READY=1;
	 * MONOTONIC_USEC tells a newer systemd which reload this is. */
	onecardd_notify("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
	    (unsigned long long)onecardd_now_us());
	if (server_reload() == 0)
		onecardd_notify("READY=1\nSTATUS=serving; reloaded");
	else
		onecardd_notify("READY=1\nSTATUS=serving; reload failed, "
				"what failed stays as it was (see the log)");
}

/* Reload what SIGHUP reloads. 0, or -1 when something failed (logged; what
 * failed keeps its previous state). */
int
server_reload(void)
{
	int rc = 0;

	if (tls_reload(cfg) == -1)
		rc = -1;
	if (onecardd_reload_config() == -1)
		rc = -1;
	if (audit_enabled() && audit_reopen() == -1) {
		log_warnx("audit log reopen failed");
		rc = -1;
	}
	return rc;
}

/*
 * Parse HOST:PORT ([V6]:PORT too; PORT may be 0) into ss. 0 or -1.
 */
int
server_parse_address(const char *s, struct sockaddr_storage *ss, int *len)
{
	struct addrinfo hints, *res;
	char host[256];
	const char *colon = strrchr(s, ':');
	size_t hlen;
	int rc;

	if (colon == NULL || colon == s || colon[1] == '\0')
		return -1;
	hlen = colon - s;
	if (s[0] == '[' && hlen >= 2 && s[hlen - 1] == ']') {
		s++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return -1;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	/* At most 5 digits before converting: a longer port must be refused,
	 * not wrapped (127.0.0.1:4294967297 is not port 1). */
	if (strlen(colon + 1) > 5)
		return -1;
	for (const char *p = colon + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return -1;
	if (atoi(colon + 1) > 65535)
		return -1;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, colon + 1, &hints, &res)) != 0)
		return -1;
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* Print "listening on HOST:PORT" for the address fd is bound to. */
static void
server_print_address(evutil_socket_t fd, struct sockaddr_storage *ss)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (ss->ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		port = ntohs(sin->sin_port);
		fprintf(stderr, "onecardd: listening on %s:%d\n", host, port);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		port = ntohs(sin6->sin6_port);
		fprintf(stderr, "onecardd: listening on [%s]:%d\n", host, port);
	}
	fflush(stderr);
	(void)fd;
}

/*
 * Is something already listening on ss? SO_REUSEPORT lets any process of
 * the same user join our port, so a second broker would silently take half
 * the connections. A probe bound without SO_REUSEPORT fails with
 * EADDRINUSE while anyone listens there; it is closed before the workers
 * bind. (Two brokers started in the same instant can both pass.) 0 free,
 * -1 in use or an error (logged).
 */
static int
server_probe_address(
    const char *listen, const struct sockaddr_storage *ss, int len)
{
	int fd, one = 1, rc = 0;

	if ((fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		log_warn("--listen %s: socket", listen);
		return -1;
	}
	/* SO_REUSEADDR: a port in TIME_WAIT is free; a listener is not. */
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)ss, len) == -1) {
		if (errno == EADDRINUSE)
			log_warnx(
			    "--listen %s: address in use (another onecardd, "
			    "or another program, listens there)",
			    listen);
		else
			log_warn("--listen %s: cannot bind", listen);
		rc = -1;
	}
	close(fd);
	return rc;
}

/*
 * Refuse a --listen address that is malformed or that something already
 * listens on, before anything else is opened (the registry included). 0 or
 * -1 (logged).
 */
int
server_check_listen(const struct config *c)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	if (server_parse_address(c->listen, &ss, &len) == -1) {
		log_warnx("--listen %s: not HOST:PORT", c->listen);
		return -1;
	}
	/* sin_port and sin6_port lie at the same offset; port 0 is always
	 * free (the kernel picks one). */
	if (((struct sockaddr_in *)&ss)->sin_port == 0)
		return 0;
	return server_probe_address(c->listen, &ss, len);
}

/*
 * Make the workers: bases, read handles, and listeners (the first binds the
 * address, the others the same port with SO_REUSEPORT). 0 or -1 (logged).
 */
int
server_init(const struct config *c)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	int len = sizeof(ss);
	char err[256];

	event_set_log_callback(server_libevent_log);
	if ((main_base = event_base_new()) == NULL)
		return -1;
	memset(&ss, 0, sizeof(ss));
	if (server_parse_address(c->listen, &ss, &len) == -1) {
		log_warnx("--listen %s: not HOST:PORT", c->listen);
		return -1;
	}
	nworkers = c->threads;
	if ((workers = calloc(nworkers, sizeof(*workers))) == NULL)
		return -1;
	for (int i = 0; i < nworkers; i++) {
		struct worker *w = &workers[i];

		w->idx = i;
		pthread_mutex_init(&w->lock, NULL);
		TAILQ_INIT(&w->msgs);
		conn_worker_init(w);
		if ((w->base = event_base_new()) == NULL ||
		    (w->notify = event_new(w->base, -1, EV_PERSIST,
			 worker_notifycb, w)) == NULL ||
		    (w->tick = event_new(
			 w->base, -1, EV_PERSIST, worker_tickcb, w)) == NULL ||
		    (w->resume = evtimer_new(w->base, worker_resumecb, w)) ==
			NULL ||
		    (w->pass = event_new(w->base, -1, 0, worker_passcb, w)) ==
			NULL ||
		    (w->scratch = malloc(c->max_frame)) == NULL) {
			log_warnx("worker %d: out of memory", i);
			return -1;
		}
		struct timeval tick = {0, WORKER_TICK_MS * 1000};
		event_add(w->tick, &tick);
		w->reg = registry_open(c->db, 0, &c->limits, err, sizeof(err));
		if (w->reg == NULL) {
			char safe[512];

			registry_url_safe(c->db, safe, sizeof(safe));
			log_warnx("registry %s: %s", safe, err);
			return -1;
		}
		if (notify_worker_init(w) == -1) {
			log_warnx("worker %d: cannot read the event log", i);
			return -1;
		}
		w->listener =
		    evconnlistener_new_bind(w->base, server_acceptcb, w,
			LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
			    LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT,
			1024, (struct sockaddr *)&ss, len);
		if (w->listener == NULL) {
			log_warn("--listen %s: cannot bind", c->listen);
			return -1;
		}
		evconnlistener_set_error_cb(w->listener, server_accept_errorcb);
		if (i == 0) {
			/* Port 0 picked a port: the others bind the same. */
			sslen = sizeof(ss);
			if (getsockname(evconnlistener_get_fd(w->listener),
				(struct sockaddr *)&ss, &sslen) == -1) {
				log_warn("getsockname");
				return -1;
			}
			len = sslen;
			server_print_address(
			    evconnlistener_get_fd(w->listener), &ss);
		}
	}
	sig_term = evsignal_new(main_base, SIGTERM, server_sigterm, NULL);
	sig_int = evsignal_new(main_base, SIGINT, server_sigterm, NULL);
	sig_hup = evsignal_new(main_base, SIGHUP, server_sighup, NULL);
	if (sig_term == NULL || sig_int == NULL || sig_hup == NULL ||
	    evsignal_add(sig_term, NULL) == -1 ||
	    evsignal_add(sig_int, NULL) == -1 ||
	    evsignal_add(sig_hup, NULL) == -1) {
		log_warnx("cannot set signal handlers");
		return -1;
	}
	return 0;
}

/*
 * A worker thread: run its loop until it is stopped and empty. Audit lines
 * held in a pass, and then the replies of the pass, go out from w->pass
 * (worker_passcb), which the first of them arms (server_pass_arm).
 */
static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	audit_pass_hook(server_pass_arm, w);
	event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
	audit_pass_hook(NULL, NULL);
	audit_pass_end();
	return NULL;
}

/* Start the worker threads (with signals blocked: main takes them). */
int
server_start(void)
{
	sigset_t all, old;
	int rc = 0;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (int i = 0; i < nworkers; i++) {
		if (pthread_create(&workers[i].thread, NULL, worker_main,
			&workers[i]) != 0) {
			log_warnx("cannot start worker %d", i);
			rc = -1;
			break;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

/*
 * Run the signal loop until SIGTERM or SIGINT. Then block those signals for
 * good (the workers already block them): once the signal events are freed
 * their default action would be back, and a second SIGTERM during the drain
 * would kill the broker before it flushed the audit trail and closed cleanly.
 */
void
server_run(void)
{
	sigset_t set;

	event_base_dispatch(main_base);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* Wait for every worker to finish draining. */
void
server_stop(void)
{
	for (int i = 0; i < nworkers; i++)
		pthread_join(workers[i].thread, NULL);
}

/* Free what the workers held; after server_stop and writer_stop. */
void
server_free(void)
{
	struct worker_msg *m;

	for (int i = 0; i < nworkers; i++) {
		struct worker *w = &workers[i];

		/*
		 * Writes the writer committed after this worker stopped (its
		 * clients gone, or the grace over, while their writes were
		 * queued) still get their audit line and metrics: with the
		 * connections freed first, conn_writer_done only records each
		 * one and frees it (m travels inside the write).
		 */
		conn_free_all(w, "exit");
		while ((m = TAILQ_FIRST(&w->msgs)) != NULL) {
			TAILQ_REMOVE(&w->msgs, m, entry);
			if (m->type == WORKER_MSG_REPLY)
				conn_writer_done(w, m->job);
			else
				free(m);
		}
		if (w->listener != NULL)
			evconnlistener_free(w->listener);
		if (w->grace != NULL)
			event_free(w->grace);
		if (w->tick != NULL)
			event_free(w->tick);
		if (w->resume != NULL)
			event_free(w->resume);
		notify_worker_free(w);
		if (w->notify != NULL)
			event_free(w->notify);
		if (w->pass != NULL)
			event_free(w->pass);
		if (w->reg != NULL)
			registry_close(w->reg);
		if (w->base != NULL)
			event_base_free(w->base);
		free(w->scratch);
		if (w->policy_in != NULL)
			evbuffer_free(w->policy_in);
		pthread_mutex_destroy(&w->lock);
	}
	free(workers);
	workers = NULL;
	if (sig_term != NULL)
		event_free(sig_term);
	if (sig_int != NULL)
		event_free(sig_int);
	if (sig_hup != NULL)
		event_free(sig_hup);
	if (main_base != NULL)
		event_base_free(main_base);
}
