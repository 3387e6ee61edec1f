/*
 * test_operator.c: what an operator meets on the first day, at the broker's
 * edges: a port another broker already serves, the modes of the files the
 * broker creates, the warning when nobody can administer it, what a revoked
 * hospital is told, what a merge fills and says, the systemd readiness
 * protocol, and what a TLS file that does not load is called. Each test
 * starts its own onecardd through the harness.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "onecard.h"

/* The broker's log so far (malloc'd). */
static char *
broker_log(struct harness *h)
{
	char *buf = malloc(1 << 16);

	assert_non_null(buf);
	assert_int_equal(harness_log(h, buf, 1 << 16), 0);
	return buf;
}

/* Connect as cn and read the broker's unsolicited refusal: its code, and its
 * message into msg. */
static int
refusal(struct harness *h, const char *cn, char *msg, size_t msglen)
{
	Onecard__V1__Reply *reply = NULL;
	struct onecard_conn *conn;
	int code;

	assert_int_equal(harness_connect(h, cn, &conn), ONECARD_OK);
	assert_int_equal(onecard_recv(conn, &reply), ONECARD_OK);
	assert_int_equal(reply->id, 0);
	code = reply->code;
	snprintf(msg, msglen, "%s", reply->message ? reply->message : "");
	onecard_reply_free(reply);
	onecard_close(conn);
	return code;
}

/* st's permission bits, or -1 when path does not exist. */
static int
mode_of(const char *dir, const char *name)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (stat(path, &st) == -1)
		return -1;
	return (int)(st.st_mode & 07777);
}

/* A second onecardd on the first one's port exits at once, saying so, and
 * the first goes on answering every request. */
static void
second_broker_on_a_busy_port_fails_with_address_in_use(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	char out[256], err[4096], cmd[2400];
	long long t0;
	int rc;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	snprintf(cmd, sizeof(cmd),
	    "onecardd --listen 127.0.0.1:%d --db '%s/other.db' "
	    "--cert '%s/broker.pem' --key '%s/broker.key' --ca '%s/ca.pem' "
	    "--admins admin",
	    h.port, h.dir, h.certs, h.certs, h.certs);
	t0 = harness_now_ms();
	rc = harness_run2(&h, NULL, out, sizeof(out), err, sizeof(err), cmd);
	assert_int_equal(rc, 1);
	assert_true(harness_now_ms() - t0 < 10000);
	assert_non_null(strstr(err, "address in use"));
	assert_non_null(strstr(err, "--listen 127.0.0.1:"));
	/* Refused before it opened (or created) a registry. */
	snprintf(cmd, sizeof(cmd), "%s/other.db", h.dir);
	assert_int_equal(access(cmd, F_OK), -1);
	for (int i = 0; i < 12; i++)
		assert_int_equal(
		    harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	harness_cleanup(&h);
}

/* Started under umask 000, the broker still makes its registry, redo log
 * and audit trail readable by its own user only, and the cert script its
 * keys and their folder. */
static void
files_the_broker_creates_are_owner_only_whatever_the_umask(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	char audit[400], out[512];
	const char *extra[] = {"--audit-log", audit, NULL};
	const char *files[] = {"audit.log", "registry.db", "registry.db-redo"};
	/* On PostgreSQL the registry is no file of the broker's. */
	const size_t nfiles = harness_on_pg() ? 1 : 3;
	mode_t old;
	int rc, m;

	old = umask(0);
	rc = harness_start(&h, codes, NULL);
	umask(old);
	assert_int_equal(rc, 0);
	/* Again with an audit trail, which needs the harness folder's name. */
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	snprintf(audit, sizeof(audit), "%s/audit.log", h.dir);
	old = umask(0);
	rc = harness_restart(&h, extra);
	umask(old);
	assert_int_equal(rc, 0);
	assert_int_equal(harness_run(&h, "H1", out, sizeof(out),
			     "onecard enroll --name Mode cn-ssc=MODE0600"),
	    0);
	for (size_t i = 0; i < nfiles; i++) {
		m = mode_of(h.dir, files[i]);
		if (m == -1)
			fail_msg("%s was not created", files[i]);
		if ((m & 077) != 0)
			fail_msg(
			    "%s is mode %04o, not owner-only", files[i], m);
	}
	/* certs/mkcerts.sh, which made h.certs under the same umask 000:
	 * the folder 0700, the keys 0600. */
	assert_int_equal(mode_of(h.dir, "certs") & 077, 0);
	assert_int_equal(mode_of(h.certs, "broker.key"), 0600);
	assert_int_equal(mode_of(h.certs, "H1.key"), 0600);
	assert_int_equal(mode_of(h.certs, "ca.key"), 0600);
	/* SQLite's own side files, when present, follow the database. */
	if ((m = mode_of(h.dir, "registry.db-wal")) != -1 && (m & 077) != 0)
		fail_msg("registry.db-wal is mode %04o", m);
	harness_cleanup(&h);
}

/* A broker started without --admins says nobody can administer it; one
 * with --admins does not. */
static void
no_admins_is_warned_at_start(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	char out[256], err[4096], cmd[2400], *log;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	log = broker_log(&h);
	assert_null(strstr(log, "no --admins"));
	free(log);
	/* Without --admins; the busy port then ends it, after the warning. */
	snprintf(cmd, sizeof(cmd),
	    "onecardd --listen 127.0.0.1:%d --db '%s/other.db' "
	    "--cert '%s/broker.pem' --key '%s/broker.key' --ca '%s/ca.pem'",
	    h.port, h.dir, h.certs, h.certs, h.certs);
	assert_int_equal(
	    harness_run2(&h, NULL, out, sizeof(out), err, sizeof(err), cmd), 1);
	assert_non_null(strstr(err, "no --admins: nobody can administer"));
	harness_cleanup(&h);
}

/* A revoked hospital is told it is revoked (UNAUTHENTICATED, as the
 * contract says), not that it was never registered; a stranger still is. */
static void
revoked_hospital_is_told_it_is_revoked(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", "H2", NULL};
	const char *stranger[] = {"H9", NULL};
	char out[512], msg[256], *log;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	assert_int_equal(harness_certs(&h, stranger), 0);
	assert_int_equal(harness_ping_as(&h, "H2"), ONECARD__V1__CODE__OK);
	assert_int_equal(harness_run(&h, "admin", out, sizeof(out),
			     "onecardctl hospital revoke H2"),
	    0);
	assert_int_equal(refusal(&h, "H2", msg, sizeof(msg)),
	    ONECARD__V1__CODE__UNAUTHENTICATED);
	assert_non_null(strstr(msg, "hospital H2 is revoked"));
	assert_int_equal(refusal(&h, "H9", msg, sizeof(msg)),
	    ONECARD__V1__CODE__UNAUTHENTICATED);
	assert_non_null(strstr(msg, "H9 is not a registered hospital"));
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	log = broker_log(&h);
	assert_non_null(strstr(log, "cn=H2 reason=\"hospital revoked\""));
	free(log);
	harness_cleanup(&h);
}

/*
 * Merging the cn-id holder into a sparse record keeps the survivor's own
 * fields and fills its blanks (sex, birth date, phone) from the duplicate;
 * the patient's history and the audit trail name the fields filled, and
 * unmerge blanks them again.
 */
static void
merge_fills_the_survivors_blanks_and_says_so(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", "H2", NULL};
	char audit[400], out[4096], cmd[600], *trail;
	const char *extra[] = {"--audit-log", audit, NULL};
	FILE *f;
	size_t n;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	snprintf(audit, sizeof(audit), "%s/audit.log", h.dir);
	assert_int_equal(harness_restart(&h, extra), 0);
	assert_int_equal(harness_run(&h, "H1", out, sizeof(out),
			     "onecard enroll --name 张三 hosp:H1=SPARSE1"),
	    0);
	assert_int_equal(harness_run(&h, "H2", out, sizeof(out),
			     "onecard enroll --name 张三 --phone 13800138000 "
			     "cn-id=11010519491231002X hosp:H2=FULL1"),
	    0);
	assert_int_equal(harness_run(&h, "admin", out, sizeof(out),
			     "onecardctl --json merge hosp:H1=SPARSE1 "
			     "cn-id=11010519491231002X"),
	    0);
	assert_non_null(strstr(out, "\"sex\":\"female\""));
	assert_non_null(strstr(out, "\"birth_date\":\"1949-12-31\""));
	assert_non_null(strstr(out, "\"phone\":\"13800138000\""));
	assert_int_equal(harness_run(&h, "admin", out, sizeof(out),
			     "onecardctl patient history hosp:H1=SPARSE1"),
	    0);
	assert_non_null(strstr(out, "filled=sex,birth_date,phone"));

	assert_non_null(f = fopen(audit, "r"));
	assert_non_null(trail = calloc(1, 1 << 16));
	n = fread(trail, 1, (1 << 16) - 1, f);
	fclose(f);
	trail[n] = '\0';
	assert_non_null(strstr(trail, "\"op\":\"merge\""));
	assert_non_null(
	    strstr(trail, "\"detail\":\"filled=sex,birth_date,phone\""));
	free(trail);
	/* the trail with its new field still verifies */
	snprintf(cmd, sizeof(cmd), "onecardctl audit verify '%s'", audit);
	assert_int_equal(harness_run(&h, NULL, out, sizeof(out), cmd), 0);
	harness_cleanup(&h);
}

/*
 * Revoking a hospital closes its connections that are open now, on every
 * worker (the registry's change feed says so once the revocation is
 * durable); another hospital's stay open.
 */
static void
revocation_closes_the_hospitals_open_connections(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", "H2", NULL};
	struct onecard_conn *h1[4], *h2[6];
	char out[512];
	int closed = 0;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(harness_connect(&h, "H2", &h2[i]), ONECARD_OK);
		assert_int_equal(harness_ping(h2[i]), ONECARD__V1__CODE__OK);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(harness_connect(&h, "H1", &h1[i]), ONECARD_OK);
		assert_int_equal(harness_ping(h1[i]), ONECARD__V1__CODE__OK);
	}
	assert_int_equal(harness_run(&h, "admin", out, sizeof(out),
			     "onecardctl hospital revoke H2"),
	    0);
	/* Each H2 connection is closed (its next call fails or is refused). */
	for (int i = 0; i < 6; i++) {
		int code = -1;

		for (int t = 0; t < 50 && code == -1; t++) {
			code = harness_ping(h2[i]);
			if (code == ONECARD__V1__CODE__OK) {
				code =
				    -1; /* not yet: the close is on its way */
				usleep(20 * 1000);
			}
		}
		closed += code != ONECARD__V1__CODE__OK;
		onecard_close(h2[i]);
	}
	assert_int_equal(closed, 6);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(harness_ping(h1[i]), ONECARD__V1__CODE__OK);
		onecard_close(h1[i]);
	}
	harness_cleanup(&h);
}

/* Write certs/crl.pem, an empty CRL of the dev CA due for replacement in
 * days days. */
static void
make_crl(struct harness *h, int days)
{
	char cmd[1200], out[256];

	snprintf(cmd, sizeof(cmd),
	    "cd '%s' && mkdir -p cadb && : > cadb/index.txt && "
	    "{ [ -f cadb/crlnumber ] || echo 1000 > cadb/crlnumber; } && "
	    "printf '%%s\\n' '[ca]' 'default_ca = dev' '[dev]' "
	    "'database = cadb/index.txt' 'crlnumber = cadb/crlnumber' "
	    "'certificate = ca.pem' 'private_key = ca.key' "
	    "'default_md = sha256' > crl.cnf && "
	    "openssl ca -config crl.cnf -gencrl -crldays %d -out crl.pem "
	    "2>/dev/null",
	    h->certs, days);
	assert_int_equal(harness_run(h, NULL, out, sizeof(out), cmd), 0);
}

/* Scrape the broker's /metrics (malloc'd). */
static char *
scrape(struct harness *h)
{
	char *body = malloc(1 << 20);
	int port = harness_metrics_port(h);

	assert_non_null(body);
	assert_true(port > 0);
	assert_int_equal(
	    harness_http_get(port, "/metrics", body, 1 << 20, NULL, 0), 200);
	return body;
}

/* /metrics counts requests per hospital (and admin), says when each was
 * last seen and which build this is, how big the registry's files are and
 * how much disk is left, and how long until the certificate expires and the
 * CRL is due (both followed across a SIGHUP reload). */
static void
metrics_show_hospitals_build_and_expiry(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", "H2", NULL};
	char crl[400];
	const char *extra[] = {
	    "--crl", crl, "--metrics-listen", "127.0.0.1:0", NULL};
	double v, now = (double)time(NULL);
	char *expo;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	snprintf(crl, sizeof(crl), "%s/crl.pem", h.certs);
	make_crl(&h, 30);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	assert_int_equal(harness_restart(&h, extra), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(
		    harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	assert_int_equal(harness_ping_as(&h, "H2"), ONECARD__V1__CODE__OK);

	expo = scrape(&h);
	assert_int_equal((int)harness_metric(expo,
			     "onecard_hospital_requests_total{interface="
			     "\"binary\",hospital=\"H1\",op=\"ping\"}"),
	    3);
	assert_int_equal((int)harness_metric(expo,
			     "onecard_hospital_requests_total{interface="
			     "\"binary\",hospital=\"H2\",op=\"ping\"}"),
	    1);
	v = harness_metric(expo,
	    "onecard_hospital_last_request_timestamp_seconds{hospital=\"H1\"}");
	assert_true(v >= now - 5 && v <= now + 120);
	assert_non_null(strstr(expo, "\nonecard_build_info{version=\""));
	assert_non_null(strstr(expo, "\"} 1\n"));
	/* mkcerts.sh signs for 825 days. */
	v = harness_metric(expo, "onecard_tls_certificate_expiry_seconds");
	assert_true(v > 824.0 * 86400 && v <= 825.0 * 86400);
	v = harness_metric(expo, "onecard_tls_crl_next_update_seconds");
	assert_true(v > 29.0 * 86400 && v <= 30.0 * 86400);
	assert_non_null(strstr(expo, "\nonecard_registry_patients "));
	assert_non_null(strstr(expo, "\nonecard_registry_identifiers "));
	if (!harness_on_pg()) { /* the SQLite store's files */
		assert_true(
		    harness_metric(
			expo, "onecard_registry_file_bytes{file=\"db\"}") > 0);
		assert_true(
		    harness_metric(expo,
			"onecard_registry_file_bytes{file=\"redo\"}") > 0);
		assert_true(harness_metric(expo,
				"onecard_registry_filesystem_avail_bytes") > 0);
		assert_true(harness_metric(expo,
				"onecard_registry_filesystem_size_bytes") >=
		    harness_metric(
			expo, "onecard_registry_filesystem_avail_bytes"));
	}
	free(expo);

	/* A new CRL, due in 10 days, then SIGHUP: the gauge follows it. */
	make_crl(&h, 10);
	assert_int_equal(kill(h.pid, SIGHUP), 0);
	for (int i = 0; i < 100; i++) {
		expo = scrape(&h);
		v = harness_metric(expo, "onecard_tls_crl_next_update_seconds");
		free(expo);
		if (v < 11.0 * 86400)
			break;
		usleep(50 * 1000);
	}
	assert_true(v > 9.0 * 86400 && v <= 10.0 * 86400);
	harness_cleanup(&h);
}

/* The next datagram on fd (NUL-terminated into buf), waiting up to 10 s;
 * -1 on timeout. */
static int
notify_next(int fd, char *buf, size_t buflen)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	ssize_t n;

	if (poll(&pfd, 1, 10000) != 1)
		return -1;
	if ((n = recv(fd, buf, buflen - 1, 0)) < 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

/* Run onecardd --check-config on the files cert, key and ca in h->certs;
 * its exit status, stderr in err. */
static int
check_files(struct harness *h, const char *cert, const char *key,
    const char *ca, char *err, size_t errlen)
{
	char cmd[1600], out[256];

	snprintf(cmd, sizeof(cmd),
	    "onecardd --check-config --db '%s' --cert '%s/%s' "
	    "--key '%s/%s' --ca '%s/%s' --admins admin",
	    h->db, h->certs, cert, h->certs, key, h->certs, ca);
	return harness_run2(h, NULL, out, sizeof(out), err, errlen, cmd);
}

/* Run onecardd --check-config on h's files; its exit status, stderr in err. */
static int
check_config(struct harness *h, char *err, size_t errlen)
{
	return check_files(
	    h, "broker.pem", "broker.key", "ca.pem", err, errlen);
}

/* A TLS file that does not load is named with what is wrong with it:
 * missing, or holding no certificate (or key) at all. */
static void
tls_file_errors_name_the_file_and_the_fault(void **state)
{
	struct harness h;
	char err[4096], want[600];

	assert_int_equal(harness_start(&h, NULL, NULL), 0);
	assert_int_equal(check_files(&h, "none.pem", "broker.key", "ca.pem",
			     err, sizeof(err)),
	    1);
	snprintf(want, sizeof(want),
	    "tls: cannot load --cert %s/none.pem: No such file or directory\n",
	    h.certs);
	assert_non_null(strstr(err, want));
	assert_int_equal(check_files(&h, "broker.key", "broker.key", "ca.pem",
			     err, sizeof(err)),
	    1);
	snprintf(want, sizeof(want),
	    "tls: --cert %s/broker.key contains no certificate", h.certs);
	assert_non_null(strstr(err, want));
	assert_int_equal(check_files(&h, "broker.pem", "broker.pem", "ca.pem",
			     err, sizeof(err)),
	    1);
	snprintf(want, sizeof(want),
	    "tls: --key %s/broker.pem contains no private key", h.certs);
	assert_non_null(strstr(err, want));
	assert_int_equal(check_files(&h, "broker.pem", "broker.key",
			     "broker.key", err, sizeof(err)),
	    1);
	snprintf(want, sizeof(want),
	    "tls: --ca %s/broker.key contains no certificate", h.certs);
	assert_non_null(strstr(err, want));
	harness_cleanup(&h);
}

/* Under systemd's Type=notify protocol (a fake NOTIFY_SOCKET the test
 * reads) the broker says READY=1 once it serves, RELOADING=1 then READY=1
 * around each SIGHUP (with a STATUS that says when a reload failed), and
 * STOPPING=1 on SIGTERM. --check-config, which the unit's ExecReload runs
 * first, fails on the files a reload would refuse. */
static void
systemd_notify_ready_reload_and_stop(void **state)
{
	struct harness h;
	const char *codes[] = {"H1", NULL};
	struct sockaddr_un sun;
	char msg[512], err[4096], cmd[1200], out[256];
	int fd;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	assert_true((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) >= 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	assert_true(strlen(h.dir) + sizeof("/notify") <= sizeof(sun.sun_path));
	memcpy(sun.sun_path, h.dir, strlen(h.dir));
	memcpy(sun.sun_path + strlen(h.dir), "/notify", sizeof("/notify"));
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	setenv("NOTIFY_SOCKET", sun.sun_path, 1);
	assert_int_equal(harness_restart(&h, NULL), 0);
	unsetenv("NOTIFY_SOCKET");

	assert_int_equal(notify_next(fd, msg, sizeof(msg)), 0);
	assert_non_null(strstr(msg, "READY=1"));
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);

	/* A good reload. */
	assert_int_equal(kill(h.pid, SIGHUP), 0);
	assert_int_equal(notify_next(fd, msg, sizeof(msg)), 0);
	assert_non_null(strstr(msg, "RELOADING=1"));
	assert_non_null(strstr(msg, "MONOTONIC_USEC="));
	assert_int_equal(notify_next(fd, msg, sizeof(msg)), 0);
	assert_non_null(strstr(msg, "READY=1"));
	assert_null(strstr(msg, "failed"));

	/* A CA certificate in place of the broker's: the reload fails, says
	 * so, and the broker goes on with the old pair. */
	assert_int_equal(check_config(&h, err, sizeof(err)), 0);
	snprintf(cmd, sizeof(cmd),
	    "cd '%s' && cp broker.pem broker.pem.good && cp ca.pem broker.pem",
	    h.certs);
	assert_int_equal(harness_run(&h, NULL, out, sizeof(out), cmd), 0);
	assert_int_equal(check_config(&h, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "broker.pem is a CA certificate"));
	assert_int_equal(kill(h.pid, SIGHUP), 0);
	assert_int_equal(notify_next(fd, msg, sizeof(msg)), 0);
	assert_non_null(strstr(msg, "RELOADING=1"));
	assert_int_equal(notify_next(fd, msg, sizeof(msg)), 0);
	assert_non_null(strstr(msg, "READY=1"));
	assert_non_null(strstr(msg, "reload failed"));
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	/* Another certificate than the key's is named as a mismatch. */
	snprintf(
	    cmd, sizeof(cmd), "cd '%s' && cp admin.pem broker.pem", h.certs);
	assert_int_equal(harness_run(&h, NULL, out, sizeof(out), cmd), 0);
	assert_int_equal(check_config(&h, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "broker.key does not match --cert"));
	snprintf(cmd, sizeof(cmd), "cd '%s' && mv broker.pem.good broker.pem",
	    h.certs);
	assert_int_equal(harness_run(&h, NULL, out, sizeof(out), cmd), 0);
	assert_int_equal(check_config(&h, err, sizeof(err)), 0);

	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	assert_int_equal(notify_next(fd, msg, sizeof(msg)), 0);
	assert_non_null(strstr(msg, "STOPPING=1"));
	close(fd);
	harness_cleanup(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		second_broker_on_a_busy_port_fails_with_address_in_use),
	    cmocka_unit_test(
		files_the_broker_creates_are_owner_only_whatever_the_umask),
	    cmocka_unit_test(no_admins_is_warned_at_start),
	    cmocka_unit_test(revoked_hospital_is_told_it_is_revoked),
	    cmocka_unit_test(merge_fills_the_survivors_blanks_and_says_so),
	    cmocka_unit_test(revocation_closes_the_hospitals_open_connections),
	    cmocka_unit_test(metrics_show_hospitals_build_and_expiry),
	    cmocka_unit_test(systemd_notify_ready_reload_and_stop),
	    cmocka_unit_test(tls_file_errors_name_the_file_and_the_fault),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
