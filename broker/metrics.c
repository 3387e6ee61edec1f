/*
 * metrics.c: the broker's counters and the HTTP endpoint (its own thread) that
 * shows them. The hot-path functions are lock-free and never allocate.
 * docs/architecture.md.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <openssl/opensslv.h>

#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "onecard.pb-c.h"
#include "ratelimit.h"
#include "registry.h"
#include "registry_cache.h"
#include "wire.h"

#define METRICS_OPS   64  /* Request op cases (field numbers) we count */
#define METRICS_CODES 17  /* Reply codes 0..16 */
#define METRICS_PEERS 256 /* CNs counted by name; the rest as "_other" */
#define METRICS_CN    64  /* bytes of a CN, NUL included (conn.c's cn) */

#ifndef ONECARD_VERSION
#define ONECARD_VERSION "unknown"
#endif

/* Request latency buckets, in microseconds and as Prometheus "le" text. */
static const uint64_t lat_bounds[] = {50, 100, 250, 500, 1000, 2500, 5000,
    10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
    10000000};
static const char *const lat_les[] = {"5e-05", "0.0001", "0.00025", "0.0005",
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
    "1", "2.5", "5", "10"};
#define LAT_BUCKETS (sizeof(lat_bounds) / sizeof(lat_bounds[0]))

/* Commit batch size buckets. */
static const uint64_t batch_bounds[] = {
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
static const char *const batch_les[] = {
    "1", "2", "4", "8", "16", "32", "64", "128", "256", "512", "1024"};
#define BATCH_BUCKETS (sizeof(batch_bounds) / sizeof(batch_bounds[0]))

struct histogram {
	atomic_uint_fast64_t bucket[LAT_BUCKETS + 1]; /* last: +Inf only */
	atomic_uint_fast64_t count;
	atomic_uint_fast64_t sum; /* microseconds, or items for batch sizes */
};

/*
 * Requests by CN (hospital code or admin), an open-addressed table filled
 * on first sight and never emptied: the CNs are the registry's hospitals and
 * --admins, so it stays small. A slot's state goes 0 (free) -> 1 (being
 * named, by the thread that won the compare-and-swap) -> 2 (named); its
 * name is read only after state 2 is seen. The last slot is "_other", for
 * CNs once the table is full.
 */
struct peer_slot {
	atomic_int state;
	char cn[METRICS_CN];
	atomic_int_fast64_t last_seen; /* Unix seconds */
	atomic_uint_fast64_t requests[METRICS_IFACES][METRICS_OPS];
	atomic_uint_fast64_t limited[RATELIMIT_KINDS]; /* refused, by kind */
};

static struct peer_slot peers[METRICS_PEERS + 1];

/* The interface label of each door (metrics.h). */
static const char *const metrics_iface_name[METRICS_IFACES] = {
    "binary", "fhir"};

static struct {
	atomic_int_fast64_t cert_not_after;
	atomic_int_fast64_t crl_next_update;
} tls_expiry;

static struct {
	atomic_uint_fast64_t requests[METRICS_IFACES][METRICS_OPS]
				     [METRICS_CODES];
	struct histogram latency[METRICS_IFACES][METRICS_OPS];
	atomic_int_fast64_t conns_open;
	atomic_uint_fast64_t conns_total;
	atomic_uint_fast64_t handshakes[2]; /* failed, ok */
	struct histogram batch;
	struct histogram commit;
	atomic_uint_fast64_t audit_lines;
	atomic_uint_fast64_t
	    fhir[6]; /* FHIR answers by status class 1xx..5xx */
} m;

/* The HTTP side: touched only by start, stop and the metrics thread. */
static struct {
	struct event_base *base;
	struct evhttp *http;
	struct event *wake;
	int pipe[2];
	pthread_t thread;
	int running;
	struct registry *reg;
	char *db_url;
	struct registry_limits lim;
	int unhealthy; /* the last /healthz failed (log transitions only) */
	time_t started;
} srv = {.pipe = {-1, -1}};

/* Count v into h using bounds (n of them). */
static inline void
histogram_observe(
    struct histogram *h, const uint64_t *bounds, size_t n, uint64_t v)
{
	size_t i = 0;

	while (i < n && v > bounds[i])
		i++;
	atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

/* Clamp an op case to the table. */
static inline int
metrics_op_index(int op_case)
{
	return op_case >= 0 && op_case < METRICS_OPS ? op_case : 0;
}

/* The slot that counts cn: found, or claimed on first sight. */
static struct peer_slot *
metrics_peer(const char *cn)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	size_t n = strlen(cn);

	if (n >= METRICS_CN)
		return &peers[METRICS_PEERS];
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)cn[i]) * 16777619u;
	for (size_t k = 0; k < METRICS_PEERS; k++) {
		struct peer_slot *p = &peers[(h + k) % METRICS_PEERS];
		int st = atomic_load_explicit(&p->state, memory_order_acquire);

		if (st == 0) {
			int zero = 0;
			if (atomic_compare_exchange_strong_explicit(&p->state,
				&zero, 1, memory_order_acquire,
				memory_order_acquire)) {
				memcpy(p->cn, cn, n + 1);
				atomic_store_explicit(
				    &p->state, 2, memory_order_release);
				return p;
			}
			st = zero;
		}
		/* Another thread is naming it (a few bytes): wait. */
		while (st == 1)
			st = atomic_load_explicit(
			    &p->state, memory_order_acquire);
		if (strcmp(p->cn, cn) == 0)
			return p;
	}
	return &peers[METRICS_PEERS];
}

void
metrics_request(const char *cn, int op_case, int code, uint64_t latency_us)
{
	metrics_request_on(METRICS_BINARY, cn, op_case, code, latency_us);
}

void
metrics_request_on(
    int iface, const char *cn, int op_case, int code, uint64_t latency_us)
{
	int op = metrics_op_index(op_case);

	if (iface < 0 || iface >= METRICS_IFACES)
		iface = METRICS_BINARY;
	if (cn != NULL && cn[0] != '\0') {
		struct peer_slot *p = metrics_peer(cn);

		atomic_fetch_add_explicit(
		    &p->requests[iface][op], 1, memory_order_relaxed);
		atomic_store_explicit(
		    &p->last_seen, (int64_t)time(NULL), memory_order_relaxed);
	}

	if (code < 0 || code >= METRICS_CODES)
		code = ONECARD__V1__CODE__INTERNAL;
	atomic_fetch_add_explicit(
	    &m.requests[iface][op][code], 1, memory_order_relaxed);
	histogram_observe(
	    &m.latency[iface][op], lat_bounds, LAT_BUCKETS, latency_us);
}

void
metrics_connection(int delta)
{
	atomic_fetch_add_explicit(&m.conns_open, delta, memory_order_relaxed);
	if (delta > 0)
		atomic_fetch_add_explicit(
		    &m.conns_total, (uint64_t)delta, memory_order_relaxed);
}

void
metrics_handshake(int ok)
{
	atomic_fetch_add_explicit(
	    &m.handshakes[ok ? 1 : 0], 1, memory_order_relaxed);
}

void
metrics_commit(size_t n, uint64_t latency_us)
{
	histogram_observe(&m.batch, batch_bounds, BATCH_BUCKETS, n);
	histogram_observe(&m.commit, lat_bounds, LAT_BUCKETS, latency_us);
}

void
metrics_audit_line(void)
{
	atomic_fetch_add_explicit(&m.audit_lines, 1, memory_order_relaxed);
}

void
metrics_rate_limited(const char *cn, int kind)
{
	if (cn == NULL || cn[0] == '\0' || kind < 0 || kind >= RATELIMIT_KINDS)
		return;
	atomic_fetch_add_explicit(
	    &metrics_peer(cn)->limited[kind], 1, memory_order_relaxed);
}

void
metrics_fhir_request(int status)
{
	int k = status / 100;

	if (k < 1 || k > 5)
		k = 5;
	atomic_fetch_add_explicit(&m.fhir[k], 1, memory_order_relaxed);
}

void
metrics_tls_expiry(int64_t cert_not_after, int64_t crl_next_update)
{
	atomic_store_explicit(
	    &tls_expiry.cert_not_after, cert_not_after, memory_order_relaxed);
	atomic_store_explicit(
	    &tls_expiry.crl_next_update, crl_next_update, memory_order_relaxed);
}

/* Load a counter. */
static inline uint64_t
ld(atomic_uint_fast64_t *a)
{
	return atomic_load_explicit(a, memory_order_relaxed);
}

/* Write the HELP and TYPE lines of a family. */
static void
expo_header(
    struct evbuffer *b, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(
	    b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/*
 * Write the series of one histogram: labels is "" or `op="lookup",`; scale
 * turns the sum into the unit of the buckets (1e-6 for microseconds).
 */
static void
expo_histogram(struct evbuffer *b, const char *name, const char *labels,
    struct histogram *h, const char *const *les, size_t n, double scale)
{
	uint64_t cum = 0, count;

	for (size_t i = 0; i < n; i++) {
		cum += ld(&h->bucket[i]);
		evbuffer_add_printf(b, "%s_bucket{%sle=\"%s\"} %llu\n", name,
		    labels, les[i], (unsigned long long)cum);
	}
	cum += ld(&h->bucket[n]);
	count = ld(&h->count);
	/* A scrape can land between the bucket and the count increment. */
	if (count < cum)
		count = cum;
	evbuffer_add_printf(b, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels,
	    (unsigned long long)count);
	size_t ll = strlen(labels);
	/* Strip the trailing comma for the _sum/_count label set. */
	if (ll > 0)
		evbuffer_add_printf(b,
		    "%s_sum{%.*s} %.6f\n%s_count{%.*s} %llu\n", name,
		    (int)(ll - 1), labels, (double)ld(&h->sum) * scale, name,
		    (int)(ll - 1), labels, (unsigned long long)count);
	else
		evbuffer_add_printf(b, "%s_sum %.6f\n%s_count %llu\n", name,
		    (double)ld(&h->sum) * scale, name,
		    (unsigned long long)count);
}

/*
 * Name of an op for a label; "none" for frames without one. NULL for a
 * number that is no op (never counted; skipped so no series is doubled).
 */
static const char *
metrics_op_name(int op)
{
	const char *name = wire_op_name(op);

	return op != 0 && strcmp(name, "none") == 0 ? NULL : name;
}

/* Resident memory in bytes from /proc/self/statm, -1 if unknown. */
static long long
proc_rss(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long long size, rss;
	int ok;

	if (f == NULL)
		return -1;
	ok = fscanf(f, "%lld %lld", &size, &rss) == 2;
	fclose(f);
	return ok ? rss * sysconf(_SC_PAGESIZE) : -1;
}

/* Open file descriptors, from /proc/self/fd; -1 if unknown. */
static long long
proc_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	long long n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

/* Open the metrics thread's read handle if it is not open. 0 or -1. */
static int
metrics_registry(void)
{
	char err[256];

	if (srv.reg != NULL)
		return 0;
	/* Not logged: /healthz says when the registry is down. */
	srv.reg = registry_open(srv.db_url, 0, &srv.lim, err, sizeof(err));
	if (srv.reg == NULL) {
		log_debug("metrics: registry: %s", err);
		return -1;
	}
	return 0;
}

/* Ask the registry for its Stats; 0 and *patients, *ids set, or -1. */
static int
metrics_registry_size(uint64_t *patients, uint64_t *ids)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Stats stats = ONECARD__V1__STATS__INIT;
	struct actor who = {"metrics", ONECARD__V1__ROLE__ROLE_ADMIN};
	struct op_result res;
	struct evbuffer *out;
	Onecard__V1__Reply *reply = NULL;
	size_t len;
	int rc = -1;

	if (metrics_registry() == -1)
		return -1;
	req.id = 1;
	req.op_case = ONECARD__V1__REQUEST__OP_STATS;
	req.stats = &stats;
	if ((out = evbuffer_new()) == NULL)
		return -1;
	memset(&res, 0, sizeof(res));
	registry_read(srv.reg, &who, &req, out, &res);
	if (wire_peek_evbuffer(out, SIZE_MAX, &len) == WIRE_FRAME) {
		uint8_t *p = evbuffer_pullup(out, (ssize_t)(len + 4));
		if (p != NULL)
			reply = wire_reply_unpack(
			    p + 4, len, 64 * len + 4096, NULL);
	}
	if (reply != NULL && reply->code == ONECARD__V1__CODE__OK &&
	    reply->result_case == ONECARD__V1__REPLY__RESULT_STATS) {
		*patients = reply->stats->patients;
		*ids = reply->stats->identifiers;
		rc = 0;
	} else {
		/* A handle that failed is dropped; the next scrape reopens. */
		registry_close(srv.reg);
		srv.reg = NULL;
	}
	if (reply != NULL)
		wire_reply_free(reply);
	evbuffer_free(out);
	return rc;
}

/* Write s as a Prometheus label value (backslash and quote escaped). */
static void
expo_label(struct evbuffer *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			evbuffer_add(b, "\\", 1);
		evbuffer_add(b, s, 1);
	}
}

/* The per-CN series: requests by operation, and when each was last seen. */
static void
metrics_render_peers(struct evbuffer *b)
{
	expo_header(b, "onecard_hospital_requests_total", "counter",
	    "Requests answered, by client certificate CN (hospital code or "
	    "admin) and operation.");
	for (size_t i = 0; i <= METRICS_PEERS; i++) {
		struct peer_slot *p = &peers[i];
		const char *cn = i == METRICS_PEERS ? "_other" : p->cn;

		if (i < METRICS_PEERS &&
		    atomic_load_explicit(&p->state, memory_order_acquire) != 2)
			continue;
		for (int k = 0; k < METRICS_IFACES; k++)
			for (int op = 0; op < METRICS_OPS; op++) {
				uint64_t n = ld(&p->requests[k][op]);
				if (n == 0 || metrics_op_name(op) == NULL)
					continue;
				evbuffer_add_printf(b,
				    "onecard_hospital_requests_total{"
				    "interface=\"%s\",hospital=\"",
				    metrics_iface_name[k]);
				expo_label(b, cn);
				evbuffer_add_printf(b, "\",op=\"%s\"} %llu\n",
				    metrics_op_name(op), (unsigned long long)n);
			}
	}
	expo_header(b, "onecard_rate_limited_total", "counter",
	    "Requests refused RESOURCE_EXHAUSTED (FHIR: 429) by a rate "
	    "limit, by client certificate CN and kind.");
	for (size_t i = 0; i <= METRICS_PEERS; i++) {
		struct peer_slot *p = &peers[i];

		if (i < METRICS_PEERS &&
		    atomic_load_explicit(&p->state, memory_order_acquire) != 2)
			continue;
		for (int k = 0; k < RATELIMIT_KINDS; k++) {
			uint64_t n = ld(&p->limited[k]);
			if (n == 0)
				continue;
			evbuffer_add_printf(
			    b, "onecard_rate_limited_total{hospital=\"");
			expo_label(b, i == METRICS_PEERS ? "_other" : p->cn);
			evbuffer_add_printf(b, "\",kind=\"%s\"} %llu\n",
			    ratelimit_kind_name(k), (unsigned long long)n);
		}
	}
	expo_header(b, "onecard_hospital_last_request_timestamp_seconds",
	    "gauge",
	    "When each client certificate CN was last answered, seconds since "
	    "the Unix epoch.");
	for (size_t i = 0; i <= METRICS_PEERS; i++) {
		struct peer_slot *p = &peers[i];
		int64_t t =
		    atomic_load_explicit(&p->last_seen, memory_order_relaxed);

		if (t == 0 ||
		    (i < METRICS_PEERS &&
			atomic_load_explicit(&p->state, memory_order_acquire) !=
			    2))
			continue;
		evbuffer_add_printf(b,
		    "onecard_hospital_last_request_timestamp_seconds{"
		    "hospital=\"");
		expo_label(b, i == METRICS_PEERS ? "_other" : p->cn);
		evbuffer_add_printf(b, "\"} %lld\n", (long long)t);
	}
}

/* Build, certificate and CRL: what an operator checks before an outage. */
static void
metrics_render_build_tls(struct evbuffer *b)
{
	int64_t now = (int64_t)time(NULL), t;

	expo_header(b, "onecard_build_info", "gauge",
	    "Always 1; the labels say which onecardd this is.");
	evbuffer_add_printf(b,
	    "onecard_build_info{version=\"%s\",openssl=\"%s\"} 1\n",
	    ONECARD_VERSION, OPENSSL_VERSION_STR);
	t = atomic_load_explicit(
	    &tls_expiry.cert_not_after, memory_order_relaxed);
	if (t != 0) {
		expo_header(b, "onecard_tls_certificate_expiry_seconds",
		    "gauge",
		    "Seconds until the broker's certificate (--cert) expires "
		    "(notAfter); negative once it has.");
		evbuffer_add_printf(b,
		    "onecard_tls_certificate_expiry_seconds %lld\n",
		    (long long)(t - now));
	}
	t = atomic_load_explicit(
	    &tls_expiry.crl_next_update, memory_order_relaxed);
	if (t != 0) {
		expo_header(b, "onecard_tls_crl_next_update_seconds", "gauge",
		    "Seconds until the CRL (--crl) is due to be replaced "
		    "(nextUpdate); negative once it is overdue.");
		evbuffer_add_printf(b,
		    "onecard_tls_crl_next_update_seconds %lld\n",
		    (long long)(t - now));
	}
}

/*
 * Bytes on disk of the registry file and its redo log, and the space left
 * on the filesystem that holds them: a full disk stops every write
 * (UNAVAILABLE), so it is alerted on before. Only for a file path --db.
 */
static void
metrics_render_disk(struct evbuffer *b)
{
	const char *path = srv.db_url;
	char redo[PATH_MAX], dir[PATH_MAX], *slash;
	struct statvfs vfs;
	struct stat st;

	if (strncmp(path, "sqlite:", 7) == 0)
		path += 7;
	if (strstr(path, "://") != NULL || strlen(path) >= sizeof(dir) - 8)
		return;
	expo_header(b, "onecard_registry_file_bytes", "gauge",
	    "Bytes on disk of the registry's files, by file.");
	if (stat(path, &st) == 0)
		evbuffer_add_printf(b,
		    "onecard_registry_file_bytes{file=\"db\"} %lld\n",
		    (long long)st.st_size);
	snprintf(redo, sizeof(redo), "%s-redo", path);
	if (stat(redo, &st) == 0)
		evbuffer_add_printf(b,
		    "onecard_registry_file_bytes{file=\"redo\"} %lld\n",
		    (long long)st.st_size);
	snprintf(redo, sizeof(redo), "%s-wal", path);
	if (stat(redo, &st) == 0)
		evbuffer_add_printf(b,
		    "onecard_registry_file_bytes{file=\"wal\"} %lld\n",
		    (long long)st.st_size);
	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if (statvfs(dir, &vfs) == 0) {
		expo_header(b, "onecard_registry_filesystem_avail_bytes",
		    "gauge",
		    "Bytes an unprivileged writer may still use on the "
		    "registry's filesystem.");
		evbuffer_add_printf(b,
		    "onecard_registry_filesystem_avail_bytes %llu\n",
		    (unsigned long long)vfs.f_bavail * vfs.f_frsize);
		expo_header(b, "onecard_registry_filesystem_size_bytes",
		    "gauge", "Size of the registry's filesystem.");
		evbuffer_add_printf(b,
		    "onecard_registry_filesystem_size_bytes %llu\n",
		    (unsigned long long)vfs.f_blocks * vfs.f_frsize);
	}
}

/* Write the whole exposition into b. */
static void
metrics_render(struct evbuffer *b)
{
	struct lcache_stats lc;
	uint64_t patients, ids;
	struct registry_store_stats fold;
	long long v;

	notify_render(b);
	expo_header(b, "onecard_requests_total", "counter",
	    "Requests answered, by operation and reply code.");
	for (int k = 0; k < METRICS_IFACES; k++)
		for (int op = 0; op < METRICS_OPS; op++)
			for (int c = 0; c < METRICS_CODES; c++) {
				uint64_t n = ld(&m.requests[k][op][c]);
				if (n != 0 && metrics_op_name(op) != NULL)
					evbuffer_add_printf(b,
					    "onecard_requests_total{interface="
					    "\"%s\",op=\"%s\",code=\"%s\"} "
					    "%llu\n",
					    metrics_iface_name[k],
					    metrics_op_name(op),
					    wire_code_name(c),
					    (unsigned long long)n);
			}

	metrics_render_peers(b);
	metrics_render_build_tls(b);

	expo_header(b, "onecard_request_duration_seconds", "histogram",
	    "Time from a request decoded to its reply queued, by operation.");
	for (int k = 0; k < METRICS_IFACES; k++)
		for (int op = 0; op < METRICS_OPS; op++) {
			char labels[96];
			if (ld(&m.latency[k][op].count) == 0 ||
			    metrics_op_name(op) == NULL)
				continue;
			snprintf(labels, sizeof(labels),
			    "interface=\"%s\",op=\"%s\",",
			    metrics_iface_name[k], metrics_op_name(op));
			expo_histogram(b, "onecard_request_duration_seconds",
			    labels, &m.latency[k][op], lat_les, LAT_BUCKETS,
			    1e-6);
		}

	expo_header(b, "onecard_connections_open", "gauge",
	    "Client connections open now.");
	evbuffer_add_printf(b, "onecard_connections_open %lld\n",
	    (long long)atomic_load_explicit(
		&m.conns_open, memory_order_relaxed));
	expo_header(b, "onecard_connections_total", "counter",
	    "Client connections accepted since start.");
	evbuffer_add_printf(b, "onecard_connections_total %llu\n",
	    (unsigned long long)ld(&m.conns_total));

	expo_header(b, "onecard_tls_handshakes_total", "counter",
	    "TLS handshakes finished, by result.");
	evbuffer_add_printf(b,
	    "onecard_tls_handshakes_total{result=\"ok\"} %llu\n"
	    "onecard_tls_handshakes_total{result=\"failed\"} %llu\n",
	    (unsigned long long)ld(&m.handshakes[1]),
	    (unsigned long long)ld(&m.handshakes[0]));

	expo_header(b, "onecard_commit_batch_size", "histogram",
	    "Writes committed in one transaction.");
	expo_histogram(b, "onecard_commit_batch_size", "", &m.batch, batch_les,
	    BATCH_BUCKETS, 1);
	expo_header(b, "onecard_commit_duration_seconds", "histogram",
	    "Time to apply and sync one batch of writes.");
	expo_histogram(b, "onecard_commit_duration_seconds", "", &m.commit,
	    lat_les, LAT_BUCKETS, 1e-6);

	expo_header(b, "onecard_audit_lines_total", "counter",
	    "Lines written to the audit trail.");
	evbuffer_add_printf(b, "onecard_audit_lines_total %llu\n",
	    (unsigned long long)ld(&m.audit_lines));

	expo_header(b, "onecard_fhir_requests_total", "counter",
	    "Requests answered on the FHIR interface, by HTTP status class.");
	for (int k = 2; k <= 5; k++)
		evbuffer_add_printf(b,
		    "onecard_fhir_requests_total{interface=\"fhir\","
		    "status=\"%dxx\"} %llu\n",
		    k, (unsigned long long)ld(&m.fhir[k]));

	lcache_stats(&lc);
	expo_header(b, "onecard_lookup_cache_requests_total", "counter",
	    "Lookups probed in the workers' reply caches, by result.");
	evbuffer_add_printf(b,
	    "onecard_lookup_cache_requests_total{result=\"hit\"} %llu\n"
	    "onecard_lookup_cache_requests_total{result=\"miss\"} %llu\n",
	    (unsigned long long)lc.hits, (unsigned long long)lc.misses);
	expo_header(b, "onecard_lookup_cache_dropped_total", "counter",
	    "Cached lookup replies dropped, by reason.");
	evbuffer_add_printf(b,
	    "onecard_lookup_cache_dropped_total{reason=\"evicted\"} %llu\n"
	    "onecard_lookup_cache_dropped_total{reason=\"changed\"} %llu\n",
	    (unsigned long long)lc.evictions,
	    (unsigned long long)lc.invalidations);
	expo_header(b, "onecard_lookup_cache_flushes_total", "counter",
	    "Whole caches dropped because a worker fell behind the writer.");
	evbuffer_add_printf(b, "onecard_lookup_cache_flushes_total %llu\n",
	    (unsigned long long)lc.flushes);
	expo_header(b, "onecard_lookup_cache_entries", "gauge",
	    "Lookup replies cached, all workers.");
	evbuffer_add_printf(b, "onecard_lookup_cache_entries %llu\n",
	    (unsigned long long)lc.entries);
	expo_header(b, "onecard_lookup_cache_bytes", "gauge",
	    "Memory the cached lookup replies take, all workers.");
	evbuffer_add_printf(b, "onecard_lookup_cache_bytes %llu\n",
	    (unsigned long long)lc.bytes);

	registry_store_stats(&fold);
	expo_header(b, "onecard_registry_unfolded_entries", "gauge",
	    "Redo log entries synced (answered) but not yet folded into the "
	    "SQLite image.");
	evbuffer_add_printf(b, "onecard_registry_unfolded_entries %llu\n",
	    (unsigned long long)fold.unfolded_entries);
	expo_header(b, "onecard_registry_unfolded_bytes", "gauge",
	    "Bytes of those entries; past the bound writes wait.");
	evbuffer_add_printf(b, "onecard_registry_unfolded_bytes %llu\n",
	    (unsigned long long)fold.unfolded_bytes);
	expo_header(b, "onecard_registry_unfolded_bound_bytes", "gauge",
	    "The bound on unfolded bytes (--max-unfolded).");
	evbuffer_add_printf(b, "onecard_registry_unfolded_bound_bytes %llu\n",
	    (unsigned long long)fold.max_unfolded);
	expo_header(b, "onecard_registry_folded_entries_total", "counter",
	    "Redo log entries folded into the image since start (its rate is "
	    "the fold rate).");
	evbuffer_add_printf(b, "onecard_registry_folded_entries_total %llu\n",
	    (unsigned long long)fold.folded_total);
	expo_header(b, "onecard_registry_fold_lag_seconds", "gauge",
	    "Age of the oldest entry not yet folded (0 when caught up).");
	evbuffer_add_printf(
	    b, "onecard_registry_fold_lag_seconds %.3f\n", fold.fold_lag_s);
	expo_header(b, "onecard_registry_fold_failing", "gauge",
	    "1 while folding into the image fails (disk full, I/O); the log "
	    "holds everything meanwhile.");
	evbuffer_add_printf(
	    b, "onecard_registry_fold_failing %d\n", fold.fold_failing);
	expo_header(b, "onecard_registry_writes_waiting", "gauge",
	    "1 while writes wait for the fold (the bound is reached).");
	evbuffer_add_printf(
	    b, "onecard_registry_writes_waiting %d\n", fold.writes_waiting);

	if (metrics_registry_size(&patients, &ids) == 0) {
		expo_header(b, "onecard_registry_patients", "gauge",
		    "Live (not merged-away) patients in the registry.");
		evbuffer_add_printf(b, "onecard_registry_patients %llu\n",
		    (unsigned long long)patients);
		expo_header(b, "onecard_registry_identifiers", "gauge",
		    "Identifiers in the registry.");
		evbuffer_add_printf(b, "onecard_registry_identifiers %llu\n",
		    (unsigned long long)ids);
	}

	metrics_render_disk(b);
	if ((v = proc_rss()) >= 0) {
		expo_header(b, "onecard_process_resident_memory_bytes", "gauge",
		    "Resident memory of the broker.");
		evbuffer_add_printf(
		    b, "onecard_process_resident_memory_bytes %lld\n", v);
	}
	if ((v = proc_open_fds()) >= 0) {
		expo_header(b, "onecard_process_open_fds", "gauge",
		    "Open file descriptors of the broker.");
		evbuffer_add_printf(b, "onecard_process_open_fds %lld\n", v);
	}
	expo_header(b, "onecard_process_start_time_seconds", "gauge",
	    "Start time of the broker, seconds since the Unix epoch.");
	evbuffer_add_printf(b, "onecard_process_start_time_seconds %lld\n",
	    (long long)srv.started);
}

/* GET /metrics. */
static void
metrics_serve_metrics(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	metrics_render(b);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, HTTP_OK, "OK", b);
	evbuffer_free(b);
}

/*
 * GET /healthz: 200 when the registry answers, 503 when not. Each probe
 * opens a fresh read handle and pings it, then keeps it for the scrapes: a
 * handle held open would go on reading a database file that was deleted,
 * made unreadable or replaced under it, and so would say "ok" about a
 * registry that the next broker start cannot open.
 */
static void
metrics_serve_healthz(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();
	struct registry *fresh;
	char err[256] = "";
	int ok;

	if (b == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	fresh = registry_open(srv.db_url, 0, &srv.lim, err, sizeof(err));
	ok = fresh != NULL && registry_ping(fresh) == 0;
	/* The scrapes go on with the fresh handle, or none. */
	if (srv.reg != NULL)
		registry_close(srv.reg);
	srv.reg = NULL;
	if (ok)
		srv.reg = fresh;
	else if (fresh != NULL) {
		snprintf(err, sizeof(err), "ping failed");
		registry_close(fresh);
	}
	if (!ok && !srv.unhealthy)
		log_warnx("metrics: /healthz: registry unavailable: %s", err);
	else if (ok && srv.unhealthy)
		log_info("metrics: /healthz: registry answers again");
	srv.unhealthy = !ok;
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; charset=utf-8");
	evbuffer_add_printf(b, "%s\n", ok ? "ok" : "registry unavailable");
	evhttp_send_reply(
	    req, ok ? HTTP_OK : 503, ok ? "OK" : "Service Unavailable", b);
	evbuffer_free(b);
}

/* Anything else: 404. */
static void
metrics_serve_other(struct evhttp_request *req, void *arg)
{
	evhttp_send_error(req, HTTP_NOTFOUND, NULL);
}

/* metrics_stop wrote to the pipe: leave the loop. */
static void
metrics_wake(evutil_socket_t fd, short what, void *arg)
{
	char c;

	if (read(fd, &c, 1) < 0)
		log_debug("metrics: wake read");
	event_base_loopbreak(srv.base);
}

/* The metrics thread: serve until stopped. */
static void *
metrics_thread(void *arg)
{
	event_base_dispatch(srv.base);
	return NULL;
}

/* Split "host:port" or "[v6]:port"; 0 or -1. */
static int
metrics_split(const char *hostport, char *host, size_t hostlen, int *port)
{
	const char *colon = strrchr(hostport, ':');
	const char *h = hostport;
	size_t n;
	char *end;
	long p;

	if (colon == NULL)
		return -1;
	n = (size_t)(colon - hostport);
	if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
		h++;
		n -= 2;
	}
	if (n == 0 || n >= hostlen)
		return -1;
	memcpy(host, h, n);
	host[n] = '\0';
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || end == colon + 1 || p < 0 ||
	    p > 65535)
		return -1;
	*port = (int)p;
	return 0;
}

/* Print "onecardd: WHAT on HOST:PORT" with the port the socket got (a
 * port 0 flag is given one): the metrics and FHIR listeners. */
void
metrics_print_listening(const char *what, evutil_socket_t fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1) {
		log_warn("%s: getsockname", what);
		return;
	}
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		fprintf(stderr, "onecardd: %s on %s:%d\n", what, host,
		    ntohs(sin->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		fprintf(stderr, "onecardd: %s on [%s]:%d\n", what, host,
		    ntohs(sin6->sin6_port));
	}
	fflush(stderr);
}

/* Free whatever start made. */
static void
metrics_free(void)
{
	if (srv.http != NULL)
		evhttp_free(srv.http);
	if (srv.wake != NULL)
		event_free(srv.wake);
	if (srv.base != NULL)
		event_base_free(srv.base);
	for (int i = 0; i < 2; i++)
		if (srv.pipe[i] != -1)
			close(srv.pipe[i]);
	if (srv.reg != NULL)
		registry_close(srv.reg);
	free(srv.db_url);
	memset(&srv, 0, sizeof(srv));
	srv.pipe[0] = srv.pipe[1] = -1;
}

int
metrics_start(
    const char *hostport, const char *db_url, const struct registry_limits *lim)
{
	struct evhttp_bound_socket *bound;
	sigset_t all, old;
	char host[256];
	int port, rc;

	if (hostport == NULL)
		return 0;
	if (metrics_split(hostport, host, sizeof(host), &port) == -1) {
		log_warnx("metrics: bad address %s (want HOST:PORT)", hostport);
		return -1;
	}
	srv.started = time(NULL);
	if (lim != NULL)
		srv.lim = *lim;
	else
		registry_limits_default(&srv.lim);
	if ((srv.db_url = strdup(db_url)) == NULL)
		goto fail;
	if ((srv.base = event_base_new()) == NULL ||
	    (srv.http = evhttp_new(srv.base)) == NULL)
		goto fail;
	if (pipe(srv.pipe) == -1)
		goto fail;
	for (int i = 0; i < 2; i++)
		if (fcntl(srv.pipe[i], F_SETFD, FD_CLOEXEC) == -1 ||
		    fcntl(srv.pipe[i], F_SETFL, O_NONBLOCK) == -1)
			goto fail;
	srv.wake = event_new(
	    srv.base, srv.pipe[0], EV_READ | EV_PERSIST, metrics_wake, NULL);
	if (srv.wake == NULL || event_add(srv.wake, NULL) == -1)
		goto fail;
	evhttp_set_allowed_methods(srv.http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_timeout(srv.http, 10);
	/* Scrapers send a short GET; anything bigger is not one. */
	evhttp_set_max_headers_size(srv.http, 8192);
	evhttp_set_max_body_size(srv.http, 0);
	evhttp_set_cb(srv.http, "/metrics", metrics_serve_metrics, NULL);
	evhttp_set_cb(srv.http, "/healthz", metrics_serve_healthz, NULL);
	evhttp_set_gencb(srv.http, metrics_serve_other, NULL);
	bound = evhttp_bind_socket_with_handle(srv.http, host, (uint16_t)port);
	if (bound == NULL) {
		log_warnx("metrics: cannot listen on %s", hostport);
		metrics_free();
		return -1;
	}
	/* The registry may be down at start; /healthz says so until it is not.
	 */
	metrics_registry();
	/* The HTTP thread takes no signals: they belong to the main thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&srv.thread, NULL, metrics_thread, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		goto fail;
	srv.running = 1;
	metrics_print_listening("metrics", evhttp_bound_socket_get_fd(bound));
	return 0;
fail:
	log_warn("metrics: start");
	metrics_free();
	return -1;
}

void
metrics_stop(void)
{
	if (!srv.running)
		return;
	if (write(srv.pipe[1], "x", 1) != 1)
		log_warn("metrics: stop");
	pthread_join(srv.thread, NULL);
	metrics_free();
}
