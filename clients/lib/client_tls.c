/*
 * client_tls.c: the TLS settings every libonecard connection uses.
 *
 * Owns the client SSL_CTX (TLS 1.2 or newer, the CA that must sign the
 * broker's certificate, our certificate and key) and the per-connection SSL
 * that checks the broker's name or IP address and sends SNI for names. It
 * never does I/O: conn.c and async.c drive the handshake.
 */
#include <arpa/inet.h>
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
