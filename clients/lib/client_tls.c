/*
 * client_tls.c: the TLS settings every libonecard connection uses.
 *
 * Owns the client SSL_CTX (TLS 1.2 or newer, the CA that must sign the
 * broker's certificate, our certificate and key) and the per-connection SSL
 * that checks the broker's name or IP address and sends SNI for names, and
 * the socket BIO both connection kinds use: a plain socket BIO, except that
 * it writes with MSG_NOSIGNAL so a broker that hangs up gives an error code
 * instead of killing the caller with SIGPIPE. It never does I/O itself:
 * conn.c and async.c drive the handshake.
 *
 * Building an SSL_CTX reads and parses three PEM files (milliseconds of
 * CPU), so connections share one per configuration: the same CA,
 * certificate and key paths, with the files unchanged on disk (device,
 * inode, size and modification time; a renewed certificate makes a fresh
 * context). Each shared context keeps the broker's latest session per peer
 * (broker address and checked name), captured as it arrives (TLS 1.3 sends
 * tickets after the handshake), and offers it to the next connection to that
 * peer: a resumed handshake skips the certificate exchange and its public-key
 * work on both sides. A session offered and refused is forgotten. Contexts
 * nobody uses stay cached, at most TLS_CACHE_MAX of them, so a program that
 * reconnects also resumes; one mutex guards the cache, as the bench's threads
 * share it.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "client.h"

#define TLS_CACHE_MAX 8 /* contexts kept, in use or not */
#define TLS_PEERS     8 /* sessions kept per context, one per peer */
#define TLS_PEER_LEN  300

/* Who a file is on disk: a change means the context must be rebuilt. */
struct tls_file_id {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

struct tls_peer {
	char name[TLS_PEER_LEN]; /* "server_name@broker"; "" when free */
	uint64_t tag;            /* changes each time the slot is reassigned */
	SSL_SESSION *sess;
};

struct client_tls {
	SSL_CTX *ctx;
	char *ca, *cert, *key;
	struct tls_file_id id[3];
	int refs;
	int stale;     /* a file changed: never handed out again */
	uint64_t used; /* LRU clock */
	struct tls_peer peer[TLS_PEERS];
	struct client_tls *next;
};

static pthread_mutex_t tls_lock = PTHREAD_MUTEX_INITIALIZER;
static struct client_tls *tls_cache;
static uint64_t tls_clock, tls_tag;
static _Atomic uint64_t tls_contexts, tls_handshakes, tls_resumed;
static int tls_ex_ctx = -1, tls_ex_ssl = -1;
static pthread_once_t tls_ex_once = PTHREAD_ONCE_INIT;

/* Reserve the ex_data slots that lead from an SSL_CTX to its client_tls and
 * from an SSL to the peer slot it may fill. */
static void
tls_ex_init(void)
{
	tls_ex_ctx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	tls_ex_ssl = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static int tls_new_session(SSL *, SSL_SESSION *);

/*
 * Say in err why the PEM file path (what: "CA file") did not load, by the
 * first (innermost) OpenSSL error, the cause: a system error as such, and a
 * file with no PEM block of the kind wanted as containing no such thing.
 */
static void
tls_file_failed(char *err, size_t errlen, const char *what, const char *path,
    const char *kind)
{
	unsigned long e = ERR_peek_error();
	const char *reason = ERR_reason_error_string(e);

	if (e != 0 && ERR_SYSTEM_ERROR(e))
		client_errf(err, errlen, "%s %s: %s", what, path,
		    strerror(ERR_GET_REASON(e)));
	else if (ERR_GET_REASON(e) == PEM_R_NO_START_LINE ||
	    ERR_GET_REASON(e) == ERR_R_UNSUPPORTED ||
	    ERR_GET_REASON(e) == X509_R_NO_CERTIFICATE_OR_CRL_FOUND)
		client_errf(err, errlen, "%s %s contains no %s (%s)", what,
		    path, kind, reason);
	else
		client_errf(err, errlen, "%s %s: %s", what, path,
		    reason != NULL ? reason : "unreadable");
}

/* A fresh client SSL_CTX for opt (TLS 1.2+, CA, certificate, key). */
static SSL_CTX *
tls_ctx_build(const struct onecard_options *opt, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	X509 *cert;

	ERR_clear_error();
	if (opt->ca == NULL || opt->cert == NULL || opt->key == NULL) {
		client_errf(err, errlen,
		    "no %s given (set ONECARD_%s or pass it)",
		    opt->ca == NULL         ? "CA file"
			: opt->cert == NULL ? "certificate"
					    : "key",
		    opt->ca == NULL         ? "CA"
			: opt->cert == NULL ? "CERT"
					    : "KEY");
		return NULL;
	}
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		client_errf(err, errlen, "SSL_CTX_new");
		client_err_append_ssl(err, errlen);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx,
	    SSL_MODE_ENABLE_PARTIAL_WRITE |
		SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* We keep the sessions ourselves (per peer), not OpenSSL's cache. */
	SSL_CTX_set_session_cache_mode(
	    ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, tls_new_session);
	if (SSL_CTX_load_verify_locations(ctx, opt->ca, NULL) != 1) {
		tls_file_failed(err, errlen, "CA file", opt->ca, "certificate");
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, opt->cert) != 1) {
		tls_file_failed(
		    err, errlen, "certificate file", opt->cert, "certificate");
		goto fail;
	}
	if ((cert = SSL_CTX_get0_certificate(ctx)) != NULL &&
	    X509_check_ca(cert) == 1) { /* basicConstraints CA:TRUE */
		client_errf(err, errlen,
		    "certificate file %s is a CA certificate, not a client "
		    "certificate; check --cert",
		    opt->cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, opt->key, SSL_FILETYPE_PEM) != 1) {
		if (ERR_GET_REASON(ERR_peek_last_error()) ==
		    X509_R_KEY_VALUES_MISMATCH)
			client_errf(err, errlen,
			    "key file %s does not match certificate file %s",
			    opt->key, opt->cert);
		else
			tls_file_failed(
			    err, errlen, "key file", opt->key, "private key");
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		client_errf(err, errlen,
		    "key file %s does not match certificate file %s", opt->key,
		    opt->cert);
		goto fail;
	}
	return ctx;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

/* Identify path on disk into id; -1 when it cannot be read. */
static int
tls_file_id(const char *path, struct tls_file_id *id)
{
	struct stat st;

	if (stat(path, &st) == -1)
		return -1;
	memset(id, 0, sizeof *id);
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->size = st.st_size;
	id->mtime = st.st_mtim;
	return 0;
}

/* Free a context nobody uses any more. */
static void
tls_free(struct client_tls *t)
{
	for (int i = 0; i < TLS_PEERS; i++)
		SSL_SESSION_free(t->peer[i].sess);
	SSL_CTX_free(t->ctx);
	free(t->ca);
	free(t->cert);
	free(t->key);
	free(t);
}

/* Drop unused contexts that are stale, then the least recently used unused
 * ones while more than TLS_CACHE_MAX are kept. Under tls_lock. */
static void
tls_trim(void)
{
	struct client_tls **pp, **lru;
	int n = 0;

	for (pp = &tls_cache; *pp != NULL;) {
		if ((*pp)->refs == 0 && (*pp)->stale) {
			struct client_tls *t = *pp;

			*pp = t->next;
			tls_free(t);
			continue;
		}
		n++;
		pp = &(*pp)->next;
	}
	while (n > TLS_CACHE_MAX) {
		lru = NULL;
		for (pp = &tls_cache; *pp != NULL; pp = &(*pp)->next)
			if ((*pp)->refs == 0 &&
			    (lru == NULL || (*pp)->used < (*lru)->used))
				lru = pp;
		if (lru == NULL)
			break; /* every one is in use */
		struct client_tls *t = *lru;
		*lru = t->next;
		tls_free(t);
		n--;
	}
}

struct client_tls *
client_tls_get(const struct onecard_options *opt, char *err, size_t errlen)
{
	struct tls_file_id id[3];
	struct client_tls *t;
	SSL_CTX *ctx;

	pthread_once(&tls_ex_once, tls_ex_init);
	/* Under the lock throughout, building included: threads connecting
	 * at once with one configuration wait for one context, not build one
	 * each. Builds are rare; the lock is otherwise held briefly. */
	pthread_mutex_lock(&tls_lock);
	if (opt->ca != NULL && opt->cert != NULL && opt->key != NULL &&
	    tls_file_id(opt->ca, &id[0]) == 0 &&
	    tls_file_id(opt->cert, &id[1]) == 0 &&
	    tls_file_id(opt->key, &id[2]) == 0) {
		for (t = tls_cache; t != NULL; t = t->next) {
			if (t->stale || strcmp(t->ca, opt->ca) != 0 ||
			    strcmp(t->cert, opt->cert) != 0 ||
			    strcmp(t->key, opt->key) != 0)
				continue;
			if (memcmp(t->id, id, sizeof id) != 0) {
				t->stale = 1; /* renewed on disk */
				continue;
			}
			t->refs++;
			t->used = ++tls_clock;
			pthread_mutex_unlock(&tls_lock);
			return t;
		}
	} else
		memset(id, 0, sizeof id); /* tls_ctx_build says why */

	if ((ctx = tls_ctx_build(opt, err, errlen)) == NULL) {
		pthread_mutex_unlock(&tls_lock);
		return NULL;
	}
	if ((t = calloc(1, sizeof *t)) == NULL ||
	    (t->ca = strdup(opt->ca)) == NULL ||
	    (t->cert = strdup(opt->cert)) == NULL ||
	    (t->key = strdup(opt->key)) == NULL) {
		pthread_mutex_unlock(&tls_lock);
		client_errf(err, errlen, "out of memory");
		if (t != NULL) {
			free(t->ca);
			free(t->cert);
			free(t);
		}
		SSL_CTX_free(ctx);
		return NULL;
	}
	t->ctx = ctx;
	memcpy(t->id, id, sizeof id);
	t->refs = 1;
	SSL_CTX_set_ex_data(ctx, tls_ex_ctx, t);
	atomic_fetch_add(&tls_contexts, 1);
	t->used = ++tls_clock;
	t->next = tls_cache;
	tls_cache = t;
	tls_trim();
	pthread_mutex_unlock(&tls_lock);
	return t;
}

void
client_tls_put(struct client_tls *t)
{
	if (t == NULL)
		return;
	pthread_mutex_lock(&tls_lock);
	t->refs--;
	tls_trim();
	pthread_mutex_unlock(&tls_lock);
}

/* The slot for peer in t, claimed (and emptied) when none is; under
 * tls_lock. */
static struct tls_peer *
tls_peer_slot(struct client_tls *t, const char *peer)
{
	struct tls_peer *p, *victim = &t->peer[0];

	for (int i = 0; i < TLS_PEERS; i++) {
		p = &t->peer[i];
		if (strcmp(p->name, peer) == 0)
			return p;
		if (p->tag < victim->tag)
			victim = p; /* the longest unclaimed */
	}
	SSL_SESSION_free(victim->sess);
	victim->sess = NULL;
	snprintf(victim->name, sizeof victim->name, "%s", peer);
	victim->tag = ++tls_tag;
	return victim;
}

/* OpenSSL has a new session for ssl (after a full handshake, or a TLS 1.3
 * ticket): keep it for the next connection to the same peer. Returns 1: we
 * took the reference. */
static int
tls_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct client_tls *t =
	    SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_ex_ctx);
	uint64_t tag = (uint64_t)(uintptr_t)SSL_get_ex_data(ssl, tls_ex_ssl);

	if (t == NULL || tag == 0 || !SSL_SESSION_is_resumable(sess))
		return 0;
	pthread_mutex_lock(&tls_lock);
	for (int i = 0; i < TLS_PEERS; i++) {
		if (t->peer[i].tag != tag)
			continue; /* slot reassigned since: drop the session */
		SSL_SESSION_free(t->peer[i].sess);
		t->peer[i].sess = sess;
		pthread_mutex_unlock(&tls_lock);
		return 1;
	}
	pthread_mutex_unlock(&tls_lock);
	return 0;
}

void
client_tls_done(SSL *ssl, int ok)
{
	struct client_tls *t;
	uint64_t tag;

	if (ok) {
		atomic_fetch_add(&tls_handshakes, 1);
		if (SSL_session_reused(ssl))
			atomic_fetch_add(&tls_resumed, 1);
		return;
	}
	/* Refused: do not offer the same session again. */
	if (SSL_get0_session(ssl) == NULL ||
	    (t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_ex_ctx)) == NULL)
		return;
	tag = (uint64_t)(uintptr_t)SSL_get_ex_data(ssl, tls_ex_ssl);
	pthread_mutex_lock(&tls_lock);
	for (int i = 0; i < TLS_PEERS; i++) {
		if (t->peer[i].tag == tag && t->peer[i].sess != NULL) {
			SSL_SESSION_free(t->peer[i].sess);
			t->peer[i].sess = NULL;
		}
	}
	pthread_mutex_unlock(&tls_lock);
}

void
onecard_tls_stats(struct onecard_tls_stats *st)
{
	st->contexts = atomic_load(&tls_contexts);
	st->handshakes = atomic_load(&tls_handshakes);
	st->resumed = atomic_load(&tls_resumed);
}

SSL *
client_tls_new(struct client_tls *t, const char *host, const char *broker,
    char *err, size_t errlen)
{
	char peer[TLS_PEER_LEN];
	unsigned char addr[16];
	X509_VERIFY_PARAM *param;
	struct tls_peer *p;
	int is_ip;
	SSL *ssl;

	ERR_clear_error();
	if ((ssl = SSL_new(t->ctx)) == NULL) {
		client_errf(err, errlen, "SSL_new");
		client_err_append_ssl(err, errlen);
		return NULL;
	}
	is_ip = inet_pton(AF_INET, host, addr) == 1 ||
	    inet_pton(AF_INET6, host, addr) == 1;
	param = SSL_get0_param(ssl);
	if (is_ip) {
		if (X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1)
			goto fail;
	} else {
		/* SNI carries names only, never addresses (RFC 6066). */
		X509_VERIFY_PARAM_set_hostflags(
		    param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(ssl, host) != 1 ||
		    SSL_set_tlsext_host_name(ssl, host) != 1)
			goto fail;
	}
	/* The session is the peer's whose name we check: never offer one
	 * that was verified for another name. */
	snprintf(peer, sizeof peer, "%s@%s", host, broker);
	pthread_mutex_lock(&tls_lock);
	p = tls_peer_slot(t, peer);
	SSL_set_ex_data(ssl, tls_ex_ssl, (void *)(uintptr_t)p->tag);
	if (p->sess != NULL)
		SSL_set_session(ssl, p->sess);
	pthread_mutex_unlock(&tls_lock);
	return ssl;
fail:
	client_errf(err, errlen, "cannot check the broker's name %s", host);
	client_err_append_ssl(err, errlen);
	SSL_free(ssl);
	return NULL;
}

/* Why the broker refused our certificate, by the alert it sent (the
 * broker's certificate check, as OpenSSL maps it to an alert). */
static const struct {
	int reason;
	const char *why, *hint;
} tls_alerts[] = {
    {SSL_R_TLSV1_ALERT_UNKNOWN_CA,
	"it was not issued by a CA the broker trusts", "check --cert"},
    {SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED, "it has been revoked",
	"ask the registry for a new one"},
    {SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED, "it has expired", "renew it"},
    {SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE,
	"it is not for client use: its extendedKeyUsage lacks clientAuth",
	"check --cert"},
};

/*
 * Why we refused the broker's certificate, by our check's result v: NULL
 * when it is not a reason a user can mend, else the reason with the advice
 * in *hint; *in_ca is set when the reason ends by naming our CA file.
 */
static const char *
tls_verify_why(long v, const char **hint, int *in_ca)
{
	*in_ca = 0;
	switch (v) {
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE: /* a namesake CA signed it */
		*in_ca = 1;
		*hint = "check --ca";
		return "it was not issued by the CA in";
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		*hint = "check --broker";
		return "it is not for the name or address we connected to";
	case X509_V_ERR_CERT_HAS_EXPIRED:
		*hint = "the registry must renew it";
		return "it has expired";
	case X509_V_ERR_CERT_NOT_YET_VALID:
		*hint = "check this computer's clock";
		return "it is not valid yet";
	}
	return NULL;
}

void
client_tls_explain(SSL *ssl, char *buf, size_t len)
{
	struct client_tls *t =
	    SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_ex_ctx);
	unsigned long e = ERR_peek_error();
	long v = SSL_get_verify_result(ssl);
	const char *rs, *why, *hint;
	size_t n;
	int reason, in_ca;

	reason =
	    e != 0 && ERR_GET_LIB(e) == ERR_LIB_SSL ? ERR_GET_REASON(e) : 0;
	rs = e != 0 ? ERR_reason_error_string(e) : NULL;
	for (size_t i = 0; i < sizeof tls_alerts / sizeof tls_alerts[0]; i++) {
		if (reason != tls_alerts[i].reason)
			continue;
		client_errf(buf, len,
		    "the broker refused our certificate %s: %s (%s); %s",
		    t != NULL ? t->cert : "", tls_alerts[i].why,
		    rs != NULL ? rs : "alert", tls_alerts[i].hint);
		ERR_clear_error();
		return;
	}
	if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED &&
	    (why = tls_verify_why(v, &hint, &in_ca)) != NULL) {
		client_errf(buf, len,
		    "the broker's certificate is not trusted: %s%s%s "
		    "(certificate verify failed: %s); %s",
		    why, in_ca ? " " : "", in_ca && t != NULL ? t->ca : "",
		    X509_verify_cert_error_string(v), hint);
		ERR_clear_error();
		return;
	}
	client_err_append_ssl(buf, len);
	n = strlen(buf);
	if (v != X509_V_OK && n + 3 < len)
		snprintf(buf + n, len - n, ": broker certificate: %s",
		    X509_verify_cert_error_string(v));
}

static BIO_METHOD *tls_bio_method;
static pthread_once_t tls_bio_once = PTHREAD_ONCE_INIT;

/* Write to the BIO's socket without raising SIGPIPE. */
static int
tls_bio_write(BIO *b, const char *buf, int len)
{
	int fd = (int)BIO_get_fd(b, NULL), r;

	r = (int)send(fd, buf, (size_t)len, MSG_NOSIGNAL);
	BIO_clear_retry_flags(b);
	if (r <= 0 && BIO_sock_should_retry(r))
		BIO_set_retry_write(b);
	return r;
}

/* Make the BIO method once: OpenSSL's socket BIO with our write. */
static void
tls_bio_init(void)
{
	const BIO_METHOD *sock = BIO_s_socket();
	BIO_METHOD *m;

	m = BIO_meth_new(
	    BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
	    "onecard socket");
	if (m == NULL)
		return;
	if (BIO_meth_set_write(m, tls_bio_write) != 1 ||
	    BIO_meth_set_read(m, BIO_meth_get_read(sock)) != 1 ||
	    BIO_meth_set_puts(m, BIO_meth_get_puts(sock)) != 1 ||
	    BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(sock)) != 1 ||
	    BIO_meth_set_create(m, BIO_meth_get_create(sock)) != 1 ||
	    BIO_meth_set_destroy(m, BIO_meth_get_destroy(sock)) != 1) {
		BIO_meth_free(m);
		return;
	}
	tls_bio_method = m;
}

int
client_tls_set_socket(SSL *ssl, int fd)
{
	BIO *bio;

	pthread_once(&tls_bio_once, tls_bio_init);
	if (tls_bio_method == NULL || (bio = BIO_new(tls_bio_method)) == NULL)
		return -1;
	BIO_set_fd(bio, fd, BIO_NOCLOSE);
	SSL_set_bio(ssl, bio, bio);
	return 0;
}
