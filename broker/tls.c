/*
 * tls.c: every OpenSSL setting of the broker, and where a certificate becomes
 * an identity (the subject CN of a verified peer). Reloads on SIGHUP without
 * dropping open connections; does no network I/O. docs/architecture.md.
 */
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/x509_vfy.h>

#include "log.h"
#include "metrics.h"
#include "onecardd.h"

/* TLS 1.2: ECDHE with AES-GCM or ChaCha20-Poly1305 only. */
#define TLS_CIPHERS_12                                                         \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"           \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"           \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

static pthread_mutex_t tls_lock = PTHREAD_MUTEX_INITIALIZER;
static SSL_CTX *tls_ctx; /* under tls_lock */

/* Log msg with the first (innermost) OpenSSL error on one line; empty the
 * queue. */
static void
tls_log_errors(const char *msg)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	if (e == 0) {
		log_warnx("%s", msg);
		return;
	}
	ERR_error_string_n(e, buf, sizeof(buf));
	log_warnx("%s: %s", msg, buf);
	ERR_clear_error();
}

/*
 * Log why the PEM file path given as flag ("--cert") did not load, by the
 * first (innermost) OpenSSL error, the cause: a system error as such, and
 * a file with no PEM block of the kind wanted as containing no such thing.
 * Empties the queue.
 */
static void
tls_file_failed(const char *flag, const char *path, const char *kind)
{
	unsigned long e = ERR_peek_error();
	const char *reason = ERR_reason_error_string(e);

	if (e != 0 && ERR_SYSTEM_ERROR(e))
		log_warnx("tls: cannot load %s %s: %s", flag, path,
		    strerror(ERR_GET_REASON(e)));
	else if (ERR_GET_REASON(e) == PEM_R_NO_START_LINE ||
	    ERR_GET_REASON(e) == ERR_R_UNSUPPORTED ||
	    ERR_GET_REASON(e) == X509_R_NO_CERTIFICATE_OR_CRL_FOUND)
		log_warnx(
		    "tls: %s %s contains no %s (%s)", flag, path, kind, reason);
	else
		log_warnx("tls: cannot load %s %s: %s", flag, path,
		    reason != NULL ? reason : "unreadable");
	ERR_clear_error();
}

/* Load every CRL in a PEM file into store and turn on CRL checking. */
static int
tls_load_crl(X509_STORE *store, const char *path)
{
	X509_LOOKUP *lookup;
	int n;

	lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
	if (lookup == NULL)
		return -1;
	n = X509_load_crl_file(lookup, path, X509_FILETYPE_PEM);
	if (n <= 0)
		return -1;
	X509_STORE_set_flags(
	    store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
	return 0;
}

/* Build a server context from the files in c; NULL (logged) on failure. */
static SSL_CTX *
tls_ctx_build(const struct config *c)
{
	static const unsigned char sid_ctx[] = "onecardd";
	X509 *cert;
	SSL_CTX *ctx;
	STACK_OF(X509_NAME) * names;

	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		tls_log_errors("SSL_CTX_new");
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12) != 1) {
		tls_log_errors("tls: protocol settings");
		goto fail;
	}
	SSL_CTX_set_options(ctx,
	    SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
		SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_SINGLE_ECDH_USE);
	/*
	 * A connection keeps its read and write buffers (~40 KiB; 10,000 idle
	 * connections take ~430 MiB): releasing them after each use cost a
	 * malloc and free of each per request. Read ahead: one read(2) takes
	 * a record's header and body, and any records behind it.
	 */
	SSL_CTX_set_mode(ctx,
	    SSL_MODE_ENABLE_PARTIAL_WRITE |
		SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_read_ahead(ctx, 1);
	if (SSL_CTX_use_certificate_chain_file(ctx, c->cert) != 1) {
		tls_file_failed("--cert", c->cert, "certificate");
		goto fail;
	}
	if ((cert = SSL_CTX_get0_certificate(ctx)) != NULL &&
	    X509_check_ca(cert) == 1) { /* basicConstraints CA:TRUE */
		log_warnx("tls: --cert %s is a CA certificate, not the "
			  "broker's own",
		    c->cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM) != 1) {
		if (ERR_GET_REASON(ERR_peek_last_error()) ==
		    X509_R_KEY_VALUES_MISMATCH) {
			log_warnx("tls: --key %s does not match --cert %s",
			    c->key, c->cert);
			ERR_clear_error();
		} else
			tls_file_failed("--key", c->key, "private key");
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		log_warnx(
		    "tls: --key %s does not match --cert %s", c->key, c->cert);
		ERR_clear_error();
		goto fail;
	}
	if (SSL_CTX_load_verify_locations(ctx, c->ca, NULL) != 1) {
		tls_file_failed("--ca", c->ca, "certificate");
		goto fail;
	}
	if ((names = SSL_load_client_CA_file(c->ca)) != NULL)
		SSL_CTX_set_client_CA_list(ctx, names);
	if (c->crl != NULL &&
	    tls_load_crl(SSL_CTX_get_cert_store(ctx), c->crl) == -1) {
		tls_file_failed("--crl", c->crl, "CRL");
		goto fail;
	}
	SSL_CTX_set_verify(
	    ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_verify_depth(ctx, 4);
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_sess_set_cache_size(ctx, 20000);
	SSL_CTX_set_timeout(ctx, 3600);
	ERR_clear_error();
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* An ASN1_TIME as Unix seconds; 0 if it cannot be read. */
static int64_t
tls_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

/*
 * Tell the metrics when ctx's certificate expires and when the earliest of
 * its CRLs is due for replacement, so an operator is warned before clients
 * are refused.
 */
static void
tls_publish_expiry(SSL_CTX *ctx)
{
	STACK_OF(X509_OBJECT) * objs;
	X509 *cert = SSL_CTX_get0_certificate(ctx);
	int64_t not_after = 0, next = 0, t;

	if (cert != NULL)
		not_after = tls_time(X509_get0_notAfter(cert));
	objs = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
	for (int i = 0; objs != NULL && i < sk_X509_OBJECT_num(objs); i++) {
		X509_OBJECT *o = sk_X509_OBJECT_value(objs, i);
		X509_CRL *crl;

		if (X509_OBJECT_get_type(o) != X509_LU_CRL ||
		    (crl = X509_OBJECT_get0_X509_CRL(o)) == NULL)
			continue;
		t = tls_time(X509_CRL_get0_nextUpdate(crl));
		if (t != 0 && (next == 0 || t < next))
			next = t;
	}
	metrics_tls_expiry(not_after, next);
	ERR_clear_error();
}

/* Build the first context at start-up. 0 or -1 (logged). */
int
tls_init(const struct config *c)
{
	SSL_CTX *ctx;

	if ((ctx = tls_ctx_build(c)) == NULL)
		return -1;
	pthread_mutex_lock(&tls_lock);
	tls_ctx = ctx;
	pthread_mutex_unlock(&tls_lock);
	tls_publish_expiry(ctx);
	return 0;
}

/*
 * Rebuild the context from the files (SIGHUP) and use it for new
 * connections; on failure keep the old one. 0 or -1 (logged).
 */
int
tls_reload(const struct config *c)
{
	SSL_CTX *ctx, *old;

	if ((ctx = tls_ctx_build(c)) == NULL) {
		log_warnx(
		    "tls reload failed, keeping the current certificates");
		return -1;
	}
	pthread_mutex_lock(&tls_lock);
	old = tls_ctx;
	tls_ctx = ctx;
	pthread_mutex_unlock(&tls_lock);
	SSL_CTX_free(old); /* live SSLs hold their own reference */
	tls_publish_expiry(ctx);
	log_info("tls reloaded certificates%s", c->crl ? " and crl" : "");
	return 0;
}

/* A new server-side SSL on the current context; NULL on failure. */
SSL *
tls_new(void)
{
	SSL *ssl;

	pthread_mutex_lock(&tls_lock);
	ssl = tls_ctx ? SSL_new(tls_ctx) : NULL;
	pthread_mutex_unlock(&tls_lock);
	if (ssl == NULL)
		ERR_clear_error();
	return ssl;
}

/*
 * The subject CN of the verified peer certificate into cn. -1 when there is
 * no verified certificate, no CN, several CNs, or a CN that is not plain
 * printable text of at most cnlen - 1 bytes.
 */
int
tls_peer_cn(SSL *ssl, char *cn, size_t cnlen)
{
	X509 *peer;
	X509_NAME *name;
	X509_NAME_ENTRY *ent;
	unsigned char *utf8 = NULL;
	int idx, len, rc = -1;

	if (SSL_get_verify_result(ssl) != X509_V_OK)
		return -1;
	if ((peer = SSL_get1_peer_certificate(ssl)) == NULL)
		return -1;
	name = X509_get_subject_name(peer);
	idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	if (idx < 0 ||
	    X509_NAME_get_index_by_NID(name, NID_commonName, idx) >= 0)
		goto out;
	ent = X509_NAME_get_entry(name, idx);
	len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(ent));
	if (len <= 0 || (size_t)len >= cnlen)
		goto out;
	for (int i = 0; i < len; i++)
		if (utf8[i] < 0x21 || utf8[i] > 0x7e)
			goto out;
	memcpy(cn, utf8, len);
	cn[len] = '\0';
	rc = 0;
out:
	OPENSSL_free(utf8);
	X509_free(peer);
	ERR_clear_error();
	return rc;
}

/* Send close_notify without waiting for the peer's; never blocks. */
void
tls_close_notify(SSL *ssl)
{
	if (ssl == NULL)
		return;
	if (SSL_is_init_finished(ssl) &&
	    (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN) == 0)
		(void)SSL_shutdown(ssl);
	ERR_clear_error();
}

/* Empty this thread's OpenSSL error queue. */
void
tls_clear_errors(void)
{
	ERR_clear_error();
}

/* Drop the current context at exit. */
void
tls_shutdown(void)
{
	pthread_mutex_lock(&tls_lock);
	SSL_CTX_free(tls_ctx);
	tls_ctx = NULL;
	pthread_mutex_unlock(&tls_lock);
}
