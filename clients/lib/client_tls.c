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
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "client.h"

SSL_CTX *
client_tls_ctx(const struct onecard_options *opt, char *err, size_t errlen)
{
	SSL_CTX *ctx;

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
	if (SSL_CTX_load_verify_locations(ctx, opt->ca, NULL) != 1) {
		client_errf(err, errlen, "CA file %s", opt->ca);
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, opt->cert) != 1) {
		client_errf(err, errlen, "certificate file %s", opt->cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, opt->key, SSL_FILETYPE_PEM) != 1) {
		client_errf(err, errlen, "key file %s", opt->key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		client_errf(err, errlen, "key %s does not match certificate %s",
		    opt->key, opt->cert);
		goto fail;
	}
	return ctx;
fail:
	client_err_append_ssl(err, errlen);
	SSL_CTX_free(ctx);
	return NULL;
}

SSL *
client_tls_new(SSL_CTX *ctx, const char *host, char *err, size_t errlen)
{
	unsigned char addr[16];
	X509_VERIFY_PARAM *param;
	int is_ip;
	SSL *ssl;

	ERR_clear_error();
	if ((ssl = SSL_new(ctx)) == NULL) {
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
	return ssl;
fail:
	client_errf(err, errlen, "cannot check the broker's name %s", host);
	client_err_append_ssl(err, errlen);
	SSL_free(ssl);
	return NULL;
}

void
client_tls_verify_reason(SSL *ssl, char *buf, size_t len)
{
	long v = SSL_get_verify_result(ssl);
	size_t n;

	if (v == X509_V_OK)
		return;
	n = strlen(buf);
	if (n + 3 < len)
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
