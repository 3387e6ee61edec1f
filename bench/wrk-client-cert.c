/*
 * wrk-client-cert.c: an LD_PRELOAD shim that gives wrk a client
 * certificate. wrk (and h2load) cannot present one, and the FHIR door
 * requires one (mutual TLS), so bench/fhir-vs-nginx.sh builds this and runs
 * the same wrk with it against nginx and the broker alike. Every SSL_CTX the
 * program makes loads the chain and key named by WRK_CLIENT_CERT and
 * WRK_CLIENT_KEY; without both it changes nothing. A file that does not
 * load ends the program: a benchmark without the certificate would only
 * measure refused handshakes.
 *
 *   cc -shared -fPIC -o wrk-client-cert.so wrk-client-cert.c -ldl -lssl
 *   WRK_CLIENT_CERT=c.pem WRK_CLIENT_KEY=c.key \
 *       LD_PRELOAD=./wrk-client-cert.so wrk ...
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

typedef SSL_CTX *ctx_new_fn(const SSL_METHOD *);

SSL_CTX *
SSL_CTX_new(const SSL_METHOD *method)
{
	static ctx_new_fn *real;
	const char *cert = getenv("WRK_CLIENT_CERT");
	const char *key = getenv("WRK_CLIENT_KEY");
	SSL_CTX *ctx;

	if (real == NULL &&
	    (real = (ctx_new_fn *)dlsym(RTLD_NEXT, "SSL_CTX_new")) == NULL) {
		fprintf(stderr, "wrk-client-cert: no SSL_CTX_new to wrap\n");
		exit(1);
	}
	ctx = real(method);
	if (ctx == NULL || cert == NULL || key == NULL)
		return ctx;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		fprintf(stderr, "wrk-client-cert: cannot load %s and %s: %s\n",
		    cert, key, ERR_error_string(ERR_get_error(), NULL));
		exit(1);
	}
	return ctx;
}
