/*
 * test_operator.c: what an operator meets on the first day, at the broker's
 * edges: a port another broker already serves, the modes of the files the
 * broker creates, the warning when nobody can administer it, what a revoked
 * hospital is told, and the systemd readiness protocol. Each test starts
 * its own onecardd through the harness.
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "onecard.h"

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		second_broker_on_a_busy_port_fails_with_address_in_use),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
