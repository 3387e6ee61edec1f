/*
 * audit.c: the audit trail: the --audit-log file, the SHA-256 chain that
 * links its lines and the thread that syncs it. Never syncs on an event loop;
 * never writes a full cn-id (masks every string again). Line format, batching
 * and ordering: docs/architecture.md.
 */
/*
 * SHA256_Init/Update/Final: deprecated in OpenSSL 3, but EVP_DigestInit
 * frees and allocates the provider's context on every line, a third of the
 * hash's cost (bench: ONECARD_AUDIT_BENCH=1 unit_audit). EVP is used where
 * the old calls are compiled out.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/opensslconf.h>
#include <openssl/sha.h>

#include "audit.h"
#include "log.h"
#include "metrics.h"
#include "onecard.pb-c.h"
#include "wire.h"

#define AUDIT_LINE_MAX  4096 /* longest line written; fields are cut to fit */
#define AUDIT_FIELD_MAX 256  /* bytes of one string field before escaping */
#define AUDIT_HASH_HEX  (SHA256_DIGEST_LENGTH * 2)
#define AUDIT_TAIL_READ 8192  /* bytes read back to find the last line */
#define AUDIT_PEND_MAX  65536 /* chained lines written with one write(2) */
#define AUDIT_BODY_MAX  (AUDIT_LINE_MAX - 128) /* a line less seq and prev */
#define AUDIT_BATCH_MAX 16384 /* bytes of bodies a thread holds in a batch */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int fd;
	int retired_fd; /* left by audit_reopen for the syncer to close */
	int dirty;      /* lines written since the last sync */
	int stop;
	uint64_t seq; /* seq of the last line made (written or pending) */
	char prev[AUDIT_HASH_HEX + 1];
	/* The chain as of the last line in the file, for a failed write. */
	uint64_t written_seq;
	char written_prev[AUDIT_HASH_HEX + 1];
	int failing; /* the last write failed (log transitions only) */
	/* Lines chained but not yet written, in seq order; under mu. */
	char pend[AUDIT_PEND_MAX];
	size_t pend_len;
	unsigned pend_lines;
	char *path;
	char node[256];
	char node_json[6 * 256 + 3]; /* node quoted and escaped, once */
	size_t node_json_len;
	EVP_MD *md;      /* SHA-256, fetched once */
	EVP_MD_CTX *ctx; /* used under mu */
	pthread_t syncer;
	int syncer_running;
	atomic_int on;
} audit = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cv = PTHREAD_COND_INITIALIZER,
    .fd = -1,
    .retired_fd = -1,
};

/*
 * This thread's lines not yet chained: bodies, each after its length in two
 * bytes. Only this thread touches it.
 */
static _Thread_local struct {
	int batching;        /* inside audit_batch_begin/end */
	int held;            /* lines wait for audit_pass_end */
	void (*arm)(void *); /* see audit_pass_hook */
	void *arm_arg;
	size_t len;
	char buf[AUDIT_BATCH_MAX];
} audit_tb;

static const char audit_hex[] = "0123456789abcdef";

/*
 * Hex of a SHA-256 over buf into out (AUDIT_HASH_HEX + 1 bytes). Under the
 * mutex (or before the trail is shared): the EVP path uses the one context,
 * with the digest fetched once, since SHA256() looks it up on every call.
 */
static void
audit_hash(const char *buf, size_t len, char *out)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
#ifndef OPENSSL_NO_DEPRECATED_3_0
	SHA256_CTX sc;

	SHA256_Init(&sc);
	SHA256_Update(&sc, buf, len);
	SHA256_Final(md, &sc);
#else
	unsigned int mdlen;

	if (EVP_DigestInit_ex(audit.ctx, audit.md, NULL) != 1 ||
	    EVP_DigestUpdate(audit.ctx, buf, len) != 1 ||
	    EVP_DigestFinal_ex(audit.ctx, md, &mdlen) != 1)
		SHA256((const unsigned char *)buf, len, md);
#endif
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
		out[2 * i] = audit_hex[md[i] >> 4];
		out[2 * i + 1] = audit_hex[md[i] & 0xf];
	}
	out[AUDIT_HASH_HEX] = '\0';
}

/*
 * Copy src into dst (n bytes) masking every run that looks like a full cn-id
 * (17 digits then a digit or X, not inside a longer alphanumeric run) to
 * 410102********123X. Returns the bytes copied.
 */
static size_t
audit_mask_copy(const char *src, char *dst, size_t n)
{
	size_t len = strnlen(src, n);

	memcpy(dst, src, len);
	for (size_t i = 0; i + 18 <= len; i++) {
		if (i > 0 &&
		    ((dst[i - 1] >= '0' && dst[i - 1] <= '9') ||
			dst[i - 1] == 'X' || dst[i - 1] == 'x'))
			continue;
		size_t j = i;
		while (j < len && j - i < 17 && dst[j] >= '0' && dst[j] <= '9')
			j++;
		if (j - i != 17)
			continue;
		char c = dst[j];
		if (!((c >= '0' && c <= '9') || c == 'X' || c == 'x'))
			continue;
		if (j + 1 < len &&
		    ((dst[j + 1] >= '0' && dst[j + 1] <= '9') ||
			dst[j + 1] == 'X' || dst[j + 1] == 'x'))
			continue;
		memset(dst + i + 6, '*', 8);
		i = j;
	}
	return len;
}

/*
 * Tests on 8 bytes at once: nonzero if some byte is below n (n <= 128), is
 * v, or is not a digit.
 */
#define AUDIT_ONES        0x0101010101010101ULL
#define AUDIT_HIGHS       0x8080808080808080ULL
#define AUDIT_BELOW(x, n) (((x)-AUDIT_ONES * (n)) & ~(x)&AUDIT_HIGHS)
#define AUDIT_EQUAL(x, v) AUDIT_BELOW((x) ^ (AUDIT_ONES * (v)), 1)
#define AUDIT_DIGITS(x)   ((x) ^ (AUDIT_ONES * '0')) /* digits to 0..9 */
#define AUDIT_NOT_DIGIT(x)                                                     \
	(((AUDIT_DIGITS(x) + AUDIT_ONES * 0x76) | AUDIT_DIGITS(x)) &           \
	    AUDIT_HIGHS)

/*
 * The fast path of audit_put_str: copy s (len bytes, q has room for len +
 * 10) quoted, 8 bytes at a time, if no byte needs escaping and no aligned 8
 * bytes are all digits (a run of 17, as in every cn-id, holds 8 such).
 * Returns the end, or NULL if s needs the slow path.
 */
static char *
audit_put_plain(char *q, const char *s, size_t len)
{
	uint64_t w, bad = 0;
	int digits = 0;
	size_t i;

	*q++ = '"';
	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&w, s + i, 8);
		memcpy(q + i, &w, 8);
		bad |= AUDIT_BELOW(w, 0x20) | AUDIT_EQUAL(w, '"') |
		    AUDIT_EQUAL(w, '\\') | AUDIT_EQUAL(w, 0x7f);
		digits |= AUDIT_NOT_DIGIT(w) == 0;
	}
	for (; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		q[i] = (char)c;
		bad |= (c < 0x20) | (c == '"') | (c == '\\') | (c == 0x7f);
	}
	if (bad || digits)
		return NULL;
	q[len] = '"';
	return q + len + 1;
}

/*
 * Append s as a JSON string (quoted, escaped, masked) at *p, not past end.
 * Strings longer than AUDIT_FIELD_MAX - 1 bytes are cut there.
 */
static int
audit_put_str(char **p, char *end, const char *s)
{
	char tmp[AUDIT_FIELD_MAX];
	size_t len;
	char *q = *p;

	if (s == NULL)
		s = "";
	len = strnlen(s, sizeof(tmp) - 1);
	if ((size_t)(end - q) >= len + 10 &&
	    (q = audit_put_plain(q, s, len)) != NULL) {
		*p = q;
		return 0;
	}
	q = *p;
	/* Masking needs 18 characters; shorter strings skip the copy. */
	if (len >= 18) {
		audit_mask_copy(s, tmp, len);
		s = tmp;
	}
	if ((size_t)(end - q) < 6 * len + 2)
		return -1;
	*q++ = '"';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f) {
			*q++ = (char)c;
		} else if (c == '"' || c == '\\') {
			*q++ = '\\';
			*q++ = (char)c;
		} else {
			memcpy(q, "\\u00", 4);
			q[4] = audit_hex[c >> 4];
			q[5] = audit_hex[c & 0xf];
			q += 6;
		}
	}
	*q++ = '"';
	*p = q;
	return 0;
}

/* Append a literal of known length. */
static int
audit_put_raw(char **p, char *end, const char *s, size_t len)
{
	if ((size_t)(end - *p) < len)
		return -1;
	memcpy(*p, s, len);
	*p += len;
	return 0;
}

#define AUDIT_PUT_LIT(p, end, lit) audit_put_raw(p, end, lit, sizeof(lit) - 1)

/* Append an unsigned decimal. */
static int
audit_put_u64(char **p, char *end, uint64_t v)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	if (end - *p < n)
		return -1;
	while (n > 0)
		*(*p)++ = tmp[--n];
	return 0;
}

/* Append the current time as "2026-11-26T14:30:00.123Z" (quoted). */
static int
audit_put_time(char **p, char *end)
{
	/* The text is made again only when the millisecond changes. */
	static _Thread_local time_t cached_sec = -1;
	static _Thread_local long cached_ms = -1;
	static _Thread_local char cached[26]; /* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
	struct timespec ts;
	struct tm tm;
	long ms;

	if (end - *p < (ptrdiff_t)sizeof(cached))
		return -1;
	clock_gettime(CLOCK_REALTIME, &ts);
	ms = ts.tv_nsec / 1000000;
	if (ts.tv_sec != cached_sec) {
		gmtime_r(&ts.tv_sec, &tm);
		strftime(cached, sizeof(cached), "\"%Y-%m-%dT%H:%M:%S", &tm);
		cached[20] = '.';
		cached[24] = 'Z';
		cached[25] = '"';
		cached_sec = ts.tv_sec;
		cached_ms = -1;
	}
	if (ms != cached_ms) {
		cached[21] = (char)('0' + ms / 100);
		cached[22] = (char)('0' + ms / 10 % 10);
		cached[23] = (char)('0' + ms % 10);
		cached_ms = ms;
	}
	memcpy(*p, cached, sizeof(cached));
	*p += sizeof(cached);
	return 0;
}

/* Name of a role for the trail. */
static const char *
audit_role_name(int role)
{
	return role == ONECARD__V1__ROLE__ROLE_ADMIN ? "admin" : "hospital";
}

/*
 * Read the last line of the file at fd: its hash into prev and its seq into
 * *seq. An empty file leaves both alone. A last line cut short by a crash is
 * ended with a newline and chained to as it is (verify then names it).
 */
static int
audit_read_tail(int fd, char *prev, uint64_t *seq)
{
	char buf[AUDIT_TAIL_READ + 2]; /* room for an added newline and NUL */
	struct stat st;
	off_t off;
	ssize_t n;
	char *line, *nl;

	if (fstat(fd, &st) == -1) {
		log_warn("audit: fstat");
		return -1;
	}
	if (st.st_size == 0)
		return 0;
	off = st.st_size > AUDIT_TAIL_READ ? st.st_size - AUDIT_TAIL_READ : 0;
	n = pread(fd, buf, (size_t)(st.st_size - off), off);
	if (n <= 0) {
		log_warn("audit: read");
		return -1;
	}
	buf[n] = '\0';
	if (buf[n - 1] != '\n') {
		log_warnx("audit: last line of the trail is incomplete; ending "
			  "it and chaining on");
		if (write(fd, "\n", 1) != 1) {
			log_warn("audit: write");
			return -1;
		}
		buf[n++] = '\n';
		buf[n] = '\0';
	}
	buf[n - 1] = '\0';
	nl = strrchr(buf, '\n');
	if (nl == NULL && off > 0) {
		log_warnx("audit: last line of the trail is too long");
		return -1;
	}
	line = nl != NULL ? nl + 1 : buf;
	buf[n - 1] = '\n';
	audit_hash(line, (size_t)(buf + n - line), prev);
	if (strncmp(line, "{\"seq\":", 7) == 0)
		*seq = strtoull(line + 7, NULL, 10);
	return 0;
}

/* Open path for appending. -1 (logged) on failure. */
static int
audit_open_file(const char *path)
{
	int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

	if (fd == -1)
		log_warn("audit: %s", path);
	return fd;
}

/* Sync the trail once a second while lines are being written. */
static void *
audit_syncer(void *arg)
{
	struct timespec deadline;

	pthread_mutex_lock(&audit.mu);
	while (!audit.stop) {
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += 1;
		pthread_cond_timedwait(&audit.cv, &audit.mu, &deadline);
		int retired = audit.retired_fd;
		int fd = -1;
		audit.retired_fd = -1;
		if (audit.dirty && audit.fd != -1) {
			fd = dup(audit.fd);
			audit.dirty = 0;
		}
		pthread_mutex_unlock(&audit.mu);
		if (retired != -1) {
			if (fdatasync(retired) == -1)
				log_warn("audit: fdatasync");
			close(retired);
		}
		if (fd != -1) {
			if (fdatasync(fd) == -1)
				log_warn("audit: fdatasync");
			close(fd);
		}
		pthread_mutex_lock(&audit.mu);
	}
	pthread_mutex_unlock(&audit.mu);
	return NULL;
}

/* Start the trail at path; the chain continues from its last line. */
int
audit_open(const char *path, const char *node)
{
	sigset_t all, old;
	char *p;
	int fd, rc;

	if (path == NULL)
		return 0;
	if (audit.md == NULL &&
	    (audit.md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL) {
		log_warnx("audit: no SHA-256 in OpenSSL");
		return -1;
	}
	if (audit.ctx == NULL && (audit.ctx = EVP_MD_CTX_new()) == NULL) {
		log_warnx("audit: out of memory");
		return -1;
	}
	if ((fd = audit_open_file(path)) == -1)
		return -1;
	memset(audit.prev, '0', AUDIT_HASH_HEX);
	audit.prev[AUDIT_HASH_HEX] = '\0';
	audit.seq = 0;
	if (audit_read_tail(fd, audit.prev, &audit.seq) == -1) {
		close(fd);
		return -1;
	}
	if ((audit.path = strdup(path)) == NULL) {
		log_warn("audit: strdup");
		close(fd);
		return -1;
	}
	snprintf(audit.node, sizeof(audit.node), "%s", node ? node : "");
	p = audit.node_json;
	audit_put_str(
	    &p, audit.node_json + sizeof(audit.node_json), audit.node);
	audit.node_json_len = (size_t)(p - audit.node_json);
	memcpy(audit.written_prev, audit.prev, sizeof(audit.prev));
	audit.written_seq = audit.seq;
	audit.pend_len = 0;
	audit.pend_lines = 0;
	audit.failing = 0;
	audit.fd = fd;
	audit.stop = 0;
	audit.dirty = 0;
	/* The syncer takes no signals: they belong to the main thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&audit.syncer, NULL, audit_syncer, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		log_warnx("audit: cannot start the sync thread");
		close(fd);
		audit.fd = -1;
		free(audit.path);
		audit.path = NULL;
		return -1;
	}
	audit.syncer_running = 1;
	atomic_store(&audit.on, 1);
	log_info("audit trail %s from seq %llu", path,
	    (unsigned long long)audit.seq + 1);
	return 0;
}

int
audit_enabled(void)
{
	return atomic_load_explicit(&audit.on, memory_order_relaxed);
}

/* Format everything of e but seq and prev into buf. Returns the end. */
static char *
audit_format_body(const struct audit_entry *e, char *p, char *end)
{
	int ok = 0;

	ok |= AUDIT_PUT_LIT(&p, end, ",\"time\":");
	ok |= audit_put_time(&p, end);
	ok |= AUDIT_PUT_LIT(&p, end, ",\"node\":");
	ok |= audit_put_raw(&p, end, audit.node_json, audit.node_json_len);
	ok |= AUDIT_PUT_LIT(&p, end, ",\"actor\":");
	ok |= audit_put_str(&p, end, e->actor);
	ok |= AUDIT_PUT_LIT(&p, end, ",\"role\":\"");
	const char *role = audit_role_name(e->role);
	ok |= audit_put_raw(&p, end, role, strlen(role));
	ok |= AUDIT_PUT_LIT(&p, end, "\",\"op\":");
	ok |= audit_put_str(&p, end, e->op);
	ok |= AUDIT_PUT_LIT(&p, end, ",\"target\":");
	ok |= audit_put_str(&p, end, e->target);
	ok |= AUDIT_PUT_LIT(&p, end, ",\"patient_id\":");
	ok |= audit_put_str(&p, end, e->patient_id);
	if (e->other_patient_id != NULL && e->other_patient_id[0] != '\0') {
		ok |= AUDIT_PUT_LIT(&p, end, ",\"other_patient_id\":");
		ok |= audit_put_str(&p, end, e->other_patient_id);
	}
	ok |= AUDIT_PUT_LIT(&p, end, ",\"code\":");
	ok |= audit_put_str(&p, end, wire_code_name(e->code));
	ok |= AUDIT_PUT_LIT(&p, end, ",\"latency_us\":");
	ok |= audit_put_u64(&p, end, e->latency_us);
	if (e->detail != NULL && e->detail[0] != '\0') {
		ok |= AUDIT_PUT_LIT(&p, end, ",\"detail\":");
		ok |= audit_put_str(&p, end, e->detail);
	}
	return ok == 0 ? p : NULL;
}

/*
 * Write the pending lines with one write(2). Under the mutex. On failure the
 * lines are dropped and the chain goes back to the last line in the file,
 * so the trail stays verifiable; the failure is logged when it starts.
 */
static void
audit_flush_locked(void)
{
	size_t off = 0;
	ssize_t n;

	while (off < audit.pend_len) {
		n = write(audit.fd, audit.pend + off, audit.pend_len - off);
		if (n <= 0) {
			if (n == -1 && errno == EINTR)
				continue;
			break;
		}
		off += (size_t)n;
	}
	if (off == audit.pend_len) {
		for (unsigned i = 0; i < audit.pend_lines; i++)
			metrics_audit_line();
		if (audit.failing)
			log_info("audit: writing again at seq %llu",
			    (unsigned long long)audit.seq);
		audit.failing = 0;
		audit.dirty = 1;
	} else {
		if (!audit.failing)
			log_warn("audit: write: %u line(s) lost from seq %llu",
			    audit.pend_lines,
			    (unsigned long long)audit.written_seq + 1);
		audit.failing = 1;
		memcpy(audit.prev, audit.written_prev, sizeof(audit.prev));
		audit.seq = audit.written_seq;
	}
	memcpy(audit.written_prev, audit.prev, sizeof(audit.prev));
	audit.written_seq = audit.seq;
	audit.pend_len = 0;
	audit.pend_lines = 0;
}

/*
 * Chain this thread's bodies and write them: under the mutex each gets its
 * seq and prev and is hashed, then the lines go out with one write(2) (more
 * only if they pass AUDIT_PEND_MAX). With the trail closed they are dropped.
 */
static void
audit_flush_thread(void)
{
	const char *b = audit_tb.buf, *bend = audit_tb.buf + audit_tb.len;
	char *p, *line, *end = audit.pend + sizeof(audit.pend);
	uint16_t blen;

	if (audit_tb.len == 0)
		return;
	pthread_mutex_lock(&audit.mu);
	for (; audit.fd != -1 && b < bend; b += sizeof(blen) + blen) {
		memcpy(&blen, b, sizeof(blen));
		if (sizeof(audit.pend) - audit.pend_len < AUDIT_LINE_MAX)
			audit_flush_locked();
		line = p = audit.pend + audit.pend_len;
		AUDIT_PUT_LIT(&p, end, "{\"seq\":");
		audit_put_u64(&p, end, audit.seq + 1);
		audit_put_raw(&p, end, b + sizeof(blen), blen);
		AUDIT_PUT_LIT(&p, end, ",\"prev\":\"");
		audit_put_raw(&p, end, audit.prev, AUDIT_HASH_HEX);
		AUDIT_PUT_LIT(&p, end, "\"}\n");
		audit_hash(line, (size_t)(p - line), audit.prev);
		audit.seq++;
		audit.pend_len += (size_t)(p - line);
		audit.pend_lines++;
	}
	if (audit.pend_len > 0)
		audit_flush_locked();
	pthread_mutex_unlock(&audit.mu);
	audit_tb.len = 0;
	audit_tb.held = 0;
}

/*
 * Append one entry. Its body is formatted into this thread's buffer with no
 * lock; the line is chained and written before this returns, unless this
 * thread is in a batch: then it waits for audit_batch_end, or for the
 * buffer to fill.
 */
void
audit_log(const struct audit_entry *e)
{
	char *body, *bend;
	uint16_t blen;

	if (!audit_enabled())
		return;
	if (sizeof(audit_tb.buf) - audit_tb.len < sizeof(blen) + AUDIT_BODY_MAX)
		audit_flush_thread();
	body = audit_tb.buf + audit_tb.len + sizeof(blen);
	bend = audit_format_body(e, body, body + AUDIT_BODY_MAX);
	if (bend == NULL) {
		struct audit_entry cut = *e;
		cut.target = "(too long)";
		cut.actor = "(too long)";
		if ((bend = audit_format_body(
			 &cut, body, body + AUDIT_BODY_MAX)) == NULL)
			return;
	}
	blen = (uint16_t)(bend - body);
	memcpy(audit_tb.buf + audit_tb.len, &blen, sizeof(blen));
	audit_tb.len += sizeof(blen) + blen;
	if (!audit_tb.batching)
		audit_flush_thread();
}

/* Hold this thread's lines until audit_batch_end. */
void
audit_batch_begin(void)
{
	audit_tb.batching = 1;
}

/* Write this thread's pending lines. */
void
audit_batch_end(void)
{
	audit_tb.batching = 0;
	audit_flush_thread();
}

/* End the batch; its lines wait for audit_pass_end if a loop runs it. */
void
audit_batch_hold(void)
{
	audit_tb.batching = 0;
	if (audit_tb.arm == NULL) {
		audit_flush_thread();
		return;
	}
	if (audit_tb.len > 0 && !audit_tb.held) {
		audit_tb.held = 1;
		audit_tb.arm(audit_tb.arm_arg);
	}
}

/* This thread's loop runs audit_pass_end after arm(arg); NULL: none. */
void
audit_pass_hook(void (*arm)(void *), void *arg)
{
	audit_tb.arm = arm;
	audit_tb.arm_arg = arg;
}

/* The loop's pass is over: write the lines held in it. */
void
audit_pass_end(void)
{
	audit_flush_thread();
}

/* Reopen the file at the same path (after rotation); the chain carries on. */
int
audit_reopen(void)
{
	char head[AUDIT_HASH_HEX + 1];
	uint64_t seq;
	int fd;

	if (!audit_enabled())
		return 0;
	if ((fd = audit_open_file(audit.path)) == -1)
		return -1;
	pthread_mutex_lock(&audit.mu);
	if (audit.pend_len > 0)
		audit_flush_locked();
	if (audit.retired_fd != -1)
		close(audit.retired_fd);
	audit.retired_fd = audit.fd;
	audit.fd = fd;
	audit.dirty = 1;
	seq = audit.seq;
	memcpy(head, audit.prev, sizeof(head));
	pthread_cond_signal(&audit.cv);
	pthread_mutex_unlock(&audit.mu);
	/* The head lets `audit verify --head` see lines cut off the end. */
	log_info("audit trail reopened; the previous file ends at seq %llu, "
		 "head %s",
	    (unsigned long long)seq, head);
	return 0;
}

/* Stop the syncer, sync and close. */
void
audit_close(void)
{
	if (!audit_enabled())
		return;
	audit_flush_thread(); /* this thread's batch, if it is in one */
	atomic_store(&audit.on, 0);
	pthread_mutex_lock(&audit.mu);
	audit.stop = 1;
	pthread_cond_signal(&audit.cv);
	pthread_mutex_unlock(&audit.mu);
	if (audit.syncer_running) {
		pthread_join(audit.syncer, NULL);
		audit.syncer_running = 0;
	}
	pthread_mutex_lock(&audit.mu);
	if (audit.retired_fd != -1) {
		fdatasync(audit.retired_fd);
		close(audit.retired_fd);
		audit.retired_fd = -1;
	}
	if (audit.fd != -1) {
		if (audit.pend_len > 0)
			audit_flush_locked();
		if (fdatasync(audit.fd) == -1)
			log_warn("audit: fdatasync");
		close(audit.fd);
		audit.fd = -1;
		log_info("audit trail closed at seq %llu, head %s",
		    (unsigned long long)audit.seq, audit.prev);
	}
	pthread_mutex_unlock(&audit.mu);
	free(audit.path);
	audit.path = NULL;
	EVP_MD_CTX_free(audit.ctx);
	audit.ctx = NULL;
	EVP_MD_free(audit.md);
	audit.md = NULL;
}
