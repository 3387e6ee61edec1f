/*
 * test_tls.c: who gets in. A real onecardd on port 0; clients with no
 * certificate, a certificate from another CA, an expired one, one on the
 * CRL, or a CN that is not a registered hospital are refused (and the desk
 * CLI says why); revoking a connected hospital closes it; SIGHUP picks up
 * a new CRL, or a new certificate and key, without dropping the
 * connections that are open, and refuses a certificate and key that do
 * not match, serving the old pair. Exotic certificates are made with the
 * openssl command line inside the test's folder.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "harness.h"
#include "onecard.h"
#include "wire.h"

/* Run a shell command in the harness's certificate folder; exit status. */
static int __attribute__((format(printf, 2, 3)))
sh_in_certs(struct harness *h, const char *fmt, ...)
{
	char cmd[4096];
	int n;
	va_list ap;

	n = snprintf(cmd, sizeof(cmd), "cd '%s' && (", h->certs);
	va_start(ap, fmt);
	n += vsnprintf(cmd + n, sizeof(cmd) - n, fmt, ap);
	va_end(ap);
	snprintf(cmd + n, sizeof(cmd) - n, ") >/dev/null 2>&1");
	return system(cmd);
}

/* An `openssl ca` database next to the dev CA, for odd dates and the CRL. */
static void
make_ca_db(struct harness *h)
{
	assert_int_equal(
	    sh_in_certs(h,
		"mkdir -p cadb && : > cadb/index.txt && echo 1000 > cadb/serial"
		" && echo 1000 > cadb/crlnumber && printf '%%s\\n'"
		" '[ca]' 'default_ca = dev' '[dev]' 'database = cadb/index.txt'"
		" 'new_certs_dir = cadb' 'serial = cadb/serial'"
		" 'crlnumber = cadb/crlnumber' 'certificate = ca.pem'"
		" 'private_key = ca.key' 'default_md = sha256'"
		" 'default_days = 30' 'default_crl_days = 30'"
		" 'policy = pol' 'unique_subject = no' '[pol]'"
		" 'commonName = supplied' 'organizationName = optional'"
		" '[client]' 'basicConstraints = CA:FALSE'"
		" 'keyUsage = critical,digitalSignature'"
		" 'extendedKeyUsage = clientAuth' > ca.cnf"),
	    0);
}

/* Write crl.pem from the CA database (revoking cn's certificate first). */
static void
make_crl(struct harness *h, const char *revoke_cn)
{
	if (revoke_cn != NULL)
		assert_int_equal(sh_in_certs(h,
				     "openssl ca -batch -config ca.cnf "
				     "-revoke %s.pem",
				     revoke_cn),
		    0);
	assert_int_equal(sh_in_certs(h,
			     "openssl ca -batch -config ca.cnf -gencrl "
			     "-out crl.tmp && mv crl.tmp crl.pem"),
	    0);
}

/* Wait up to 10 s for needle in the broker's log (a reload is
 * asynchronous). 0 or -1. */
static int
wait_for_log(struct harness *h, const char *needle)
{
	static char log[1 << 16];

	for (int i = 0; i < 100; i++) {
		if (harness_log(h, log, sizeof(log)) == 0 &&
		    strstr(log, needle) != NULL)
			return 0;
		usleep(100 * 1000);
	}
	return -1;
}

/* The SHA-256 of the certificate in h->certs/name. */
static void
file_fingerprint(struct harness *h, const char *name, unsigned char md[32])
{
	char path[400];
	unsigned int n = 0;
	FILE *f;
	X509 *x;

	snprintf(path, sizeof(path), "%s/%s", h->certs, name);
	assert_non_null(f = fopen(path, "r"));
	assert_non_null(x = PEM_read_X509(f, NULL, NULL, NULL));
	fclose(f);
	assert_int_equal(X509_digest(x, EVP_sha256(), md, &n), 1);
	assert_int_equal(n, 32);
	X509_free(x);
}

/* The SHA-256 of the certificate the broker presents to a new connection
 * (as cn, checked against the dev CA). */
static void
served_fingerprint(struct harness *h, const char *cn, unsigned char md[32])
{
	char path[400];
	unsigned int n = 0;
	SSL_CTX *ctx;
	SSL *ssl;
	X509 *peer;
	int fd;

	assert_non_null(ctx = SSL_CTX_new(TLS_client_method()));
	snprintf(path, sizeof(path), "%s/ca.pem", h->certs);
	assert_int_equal(SSL_CTX_load_verify_locations(ctx, path, NULL), 1);
	snprintf(path, sizeof(path), "%s/%s.pem", h->certs, cn);
	assert_int_equal(
	    SSL_CTX_use_certificate_file(ctx, path, SSL_FILETYPE_PEM), 1);
	snprintf(path, sizeof(path), "%s/%s.key", h->certs, cn);
	assert_int_equal(
	    SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	assert_true((fd = harness_tcp_connect(h->port)) >= 0);
	assert_non_null(ssl = SSL_new(ctx));
	SSL_set_fd(ssl, fd);
	assert_int_equal(SSL_connect(ssl), 1);
	assert_non_null(peer = SSL_get1_peer_certificate(ssl));
	assert_int_equal(X509_digest(peer, EVP_sha256(), md, &n), 1);
	assert_int_equal(n, 32);
	X509_free(peer);
	SSL_shutdown(ssl);
	SSL_free(ssl);
	close(fd);
	SSL_CTX_free(ctx);
	ERR_clear_error();
}

/* A new broker key and certificate from the dev CA, in h->certs/next/. */
static void
make_next_broker_pair(struct harness *h)
{
	char cmd[1200];

	snprintf(cmd, sizeof(cmd),
	    "mkdir -p next && cp ca.pem ca.key next/ && "
	    "/bin/sh '%s/certs/mkcerts.sh' -d next",
	    ONECARD_SOURCE_DIR);
	assert_int_equal(sh_in_certs(h, "%s", cmd), 0);
}

/* Run `onecard ping` as cn: its exit status; stderr in err. */
static int
cli_ping(struct harness *h, const char *cn, char *err, size_t errlen)
{
	char out[1024];

	return harness_run2(
	    h, cn, out, sizeof(out), err, errlen, "onecard ping");
}

static void
test_registered_hospital_is_served(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	assert_int_equal(harness_ping_as(&h, "admin"), ONECARD__V1__CODE__OK);
	harness_cleanup(&h);
}

static void
test_client_without_certificate_is_refused(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	struct sockaddr_in sin;
	char path[400];
	uint8_t frame[] = {0, 0, 0, 4, 0x08, 0x01, 0x52, 0x00}; /* id 1, ping */
	uint8_t buf[64];
	SSL_CTX *ctx;
	SSL *ssl;
	int fd, ok = 0;
	struct timeval tv = {5, 0};

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	ctx = SSL_CTX_new(TLS_client_method());
	snprintf(path, sizeof(path), "%s/ca.pem", h.certs);
	assert_int_equal(SSL_CTX_load_verify_locations(ctx, path, NULL), 1);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(h.port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	/* TLS 1.3 finishes the client side first; the refusal shows on read. */
	if (SSL_connect(ssl) == 1 &&
	    SSL_write(ssl, frame, sizeof(frame)) == (int)sizeof(frame) &&
	    SSL_read(ssl, buf, sizeof(buf)) > 0)
		ok = 1;
	assert_int_equal(ok, 0);
	SSL_free(ssl);
	close(fd);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	harness_cleanup(&h);
}

static void
test_certificate_from_another_ca_is_refused(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	/* A second CA issues a certificate with the registered CN "H1". */
	assert_int_equal(
	    sh_in_certs(&h,
		"mkdir -p other && cd other && "
		"openssl genpkey -algorithm EC -pkeyopt "
		"ec_paramgen_curve:P-256 -out ca.key && "
		"openssl req -x509 -new -key ca.key -days 30 -subj /CN=rogue "
		"-out ca.pem && "
		"openssl genpkey -algorithm EC -pkeyopt "
		"ec_paramgen_curve:P-256 -out ../ROGUE.key && "
		"openssl req -new -key ../ROGUE.key -subj /CN=H1 -out r.csr && "
		"openssl x509 -req -in r.csr -CA ca.pem -CAkey ca.key "
		"-CAcreateserial -days 30 -out ../ROGUE.pem"),
	    0);
	assert_int_equal(harness_ping_as(&h, "ROGUE"), -1);
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	harness_cleanup(&h);
}

static void
test_expired_certificate_is_refused(void **state)
{
	struct harness h;
	const char *codes[] = {"OLD", "H1", NULL};
	char err[4096];

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	make_ca_db(&h);
	/* Replace OLD's certificate with one that expired in 2020. */
	assert_int_equal(
	    sh_in_certs(&h,
		"openssl req -new -key OLD.key -subj /CN=OLD -out old.csr && "
		"openssl ca -batch -config ca.cnf -extensions client "
		"-startdate 20200101000000Z -enddate 20200201000000Z "
		"-in old.csr -out OLD.pem"),
	    0);
	assert_int_equal(harness_ping_as(&h, "OLD"), -1);
	/* The desk is told why (sslv3 alert certificate expired), exit 4. */
	assert_int_equal(cli_ping(&h, "OLD", err, sizeof(err)), 4);
	assert_non_null(strstr(err, "the broker refused our certificate "));
	assert_non_null(strstr(err,
	    "/OLD.pem: it has expired (sslv3 alert "
	    "certificate expired); renew it\n"));
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	harness_cleanup(&h);
}

static void
test_certificate_on_the_crl_is_refused(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", "H2", NULL};
	char crl[400], err[4096];
	const char *extra[] = {"--crl", crl, NULL};

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	make_ca_db(&h);
	make_crl(&h, "H2");
	snprintf(crl, sizeof(crl), "%s/crl.pem", h.certs);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	assert_int_equal(harness_restart(&h, extra), 0);
	assert_int_equal(harness_ping_as(&h, "H2"), -1);
	/* The desk is told why (sslv3 alert certificate revoked), exit 4. */
	assert_int_equal(cli_ping(&h, "H2", err, sizeof(err)), 4);
	assert_non_null(strstr(err, "the broker refused our certificate "));
	assert_non_null(strstr(err,
	    "/H2.pem: it has been revoked (sslv3 alert "
	    "certificate revoked); ask the registry "
	    "for a new one\n"));
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	harness_cleanup(&h);
}

static void
test_unregistered_cn_gets_unauthenticated(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	const char *more[] = {"STRANGER", NULL};
	struct onecard_conn *conn;
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Ping ping = ONECARD__V1__PING__INIT;
	Onecard__V1__Reply *reply = NULL;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	assert_int_equal(harness_certs(&h, more), 0);
	assert_int_equal(harness_connect(&h, "STRANGER", &conn), ONECARD_OK);
	req.op_case = ONECARD__V1__REQUEST__OP_PING;
	req.ping = &ping;
	assert_int_equal(onecard_send(conn, &req), ONECARD_OK);
	assert_int_equal(onecard_recv(conn, &reply), ONECARD_OK);
	assert_int_equal(reply->id, 0);
	assert_int_equal(reply->code, ONECARD__V1__CODE__UNAUTHENTICATED);
	assert_non_null(strstr(reply->message, "STRANGER"));
	onecard_reply_free(reply);
	reply = NULL;
	/* ... and then the broker closes the connection. */
	assert_int_not_equal(onecard_recv(conn, &reply), ONECARD_OK);
	onecard_close(conn);
	harness_cleanup(&h);
}

static void
test_revoking_a_connected_hospital_closes_it(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", "H2", NULL};
	struct onecard_conn *h1, *h2, *admin;
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__HospitalRevoke rv = ONECARD__V1__HOSPITAL_REVOKE__INIT;
	Onecard__V1__Reply *reply = NULL;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	assert_int_equal(harness_connect(&h, "H1", &h1), ONECARD_OK);
	assert_int_equal(harness_connect(&h, "H2", &h2), ONECARD_OK);
	assert_int_equal(harness_connect(&h, "admin", &admin), ONECARD_OK);
	assert_int_equal(harness_ping(h1), ONECARD__V1__CODE__OK);
	assert_int_equal(harness_ping(h2), ONECARD__V1__CODE__OK);

	rv.code = "H1";
	req.op_case = ONECARD__V1__REQUEST__OP_HOSPITAL_REVOKE;
	req.hospital_revoke = &rv;
	assert_int_equal(onecard_call(admin, &req, &reply), ONECARD_OK);
	assert_int_equal(reply->code, ONECARD__V1__CODE__OK);
	onecard_reply_free(reply);
	reply = NULL;

	/* H1's open connection is told, then closed. */
	assert_int_equal(onecard_recv(h1, &reply), ONECARD_OK);
	assert_int_equal(reply->id, 0);
	assert_int_equal(reply->code, ONECARD__V1__CODE__UNAUTHENTICATED);
	onecard_reply_free(reply);
	reply = NULL;
	assert_int_not_equal(onecard_recv(h1, &reply), ONECARD_OK);
	onecard_close(h1);

	/* New connections as H1 are refused; H2 is untouched. */
	assert_int_equal(
	    harness_ping_as(&h, "H1"), ONECARD__V1__CODE__UNAUTHENTICATED);
	assert_int_equal(harness_ping(h2), ONECARD__V1__CODE__OK);
	onecard_close(h2);
	onecard_close(admin);
	harness_cleanup(&h);
}

static void
test_sighup_picks_up_new_crl_without_dropping_connections(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", "H2", NULL};
	char crl[400];
	const char *extra[] = {"--crl", crl, NULL};
	struct onecard_conn *h1, *h2;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	make_ca_db(&h);
	make_crl(&h, NULL);
	snprintf(crl, sizeof(crl), "%s/crl.pem", h.certs);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	assert_int_equal(harness_restart(&h, extra), 0);
	assert_int_equal(harness_connect(&h, "H1", &h1), ONECARD_OK);
	assert_int_equal(harness_connect(&h, "H2", &h2), ONECARD_OK);
	assert_int_equal(harness_ping(h2), ONECARD__V1__CODE__OK);

	make_crl(&h, "H2");
	assert_int_equal(kill(h.pid, SIGHUP), 0);
	for (int i = 0; i < 50; i++) { /* the reload is asynchronous */
		char log[65536];
		if (harness_log(&h, log, sizeof(log)) == 0 &&
		    strstr(log, "tls reloaded") != NULL)
			break;
		usleep(100 * 1000);
	}
	/* Open connections keep going, H2's too; a new H2 is refused. */
	assert_int_equal(harness_ping(h1), ONECARD__V1__CODE__OK);
	assert_int_equal(harness_ping(h2), ONECARD__V1__CODE__OK);
	assert_int_equal(harness_ping_as(&h, "H2"), -1);
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	onecard_close(h1);
	onecard_close(h2);
	harness_cleanup(&h);
}

/*
 * Rotation as certs/README.md says: replace the broker's certificate and
 * key files, SIGHUP; a new connection gets the new certificate, one opened
 * before goes on with its session.
 */
static void
test_sighup_rotates_the_broker_certificate(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	unsigned char before[32], after[32], want[32];
	struct onecard_conn *old;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	served_fingerprint(&h, "H1", before);
	file_fingerprint(&h, "broker.pem", want);
	assert_memory_equal(before, want, 32);
	assert_int_equal(harness_connect(&h, "H1", &old), ONECARD_OK);
	assert_int_equal(harness_ping(old), ONECARD__V1__CODE__OK);

	make_next_broker_pair(&h);
	assert_int_equal(sh_in_certs(&h,
			     "mv next/broker.key broker.key && "
			     "mv next/broker.pem broker.pem"),
	    0);
	file_fingerprint(&h, "broker.pem", want);
	assert_memory_not_equal(before, want, 32);
	assert_int_equal(kill(h.pid, SIGHUP), 0);
	assert_int_equal(wait_for_log(&h, "tls reloaded"), 0);

	served_fingerprint(&h, "H1", after);
	assert_memory_equal(after, want, 32);
	assert_int_equal(harness_ping(old), ONECARD__V1__CODE__OK);
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	onecard_close(old);
	harness_cleanup(&h);
}

/*
 * A rotation half done (the new certificate, the old key) is refused on
 * SIGHUP: the broker says why and goes on serving the old pair, to old and
 * new connections; the matching key and another SIGHUP finish it.
 */
static void
test_sighup_with_a_mismatched_pair_keeps_the_old_one(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	unsigned char before[32], now[32], want[32];
	struct onecard_conn *old;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	served_fingerprint(&h, "H1", before);
	assert_int_equal(harness_connect(&h, "H1", &old), ONECARD_OK);

	make_next_broker_pair(&h);
	assert_int_equal(sh_in_certs(&h, "cp next/broker.pem broker.pem"), 0);
	assert_int_equal(kill(h.pid, SIGHUP), 0);
	assert_int_equal(wait_for_log(&h, "tls reload failed"), 0);
	assert_int_equal(
	    wait_for_log(&h, "broker.key does not match --cert"), 0);
	served_fingerprint(&h, "H1", now);
	assert_memory_equal(now, before, 32);
	assert_int_equal(harness_ping(old), ONECARD__V1__CODE__OK);
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);

	assert_int_equal(sh_in_certs(&h, "cp next/broker.key broker.key"), 0);
	assert_int_equal(kill(h.pid, SIGHUP), 0);
	assert_int_equal(wait_for_log(&h, "tls reloaded"), 0);
	served_fingerprint(&h, "H1", now);
	file_fingerprint(&h, "broker.pem", want);
	assert_memory_equal(now, want, 32);
	assert_int_equal(harness_ping(old), ONECARD__V1__CODE__OK);
	onecard_close(old);
	harness_cleanup(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_registered_hospital_is_served),
	    cmocka_unit_test(test_client_without_certificate_is_refused),
	    cmocka_unit_test(test_certificate_from_another_ca_is_refused),
	    cmocka_unit_test(test_expired_certificate_is_refused),
	    cmocka_unit_test(test_certificate_on_the_crl_is_refused),
	    cmocka_unit_test(test_unregistered_cn_gets_unauthenticated),
	    cmocka_unit_test(test_revoking_a_connected_hospital_closes_it),
	    cmocka_unit_test(
		test_sighup_picks_up_new_crl_without_dropping_connections),
	    cmocka_unit_test(test_sighup_rotates_the_broker_certificate),
	    cmocka_unit_test(
		test_sighup_with_a_mismatched_pair_keeps_the_old_one),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
