/*
 * test_cli.c: the onecard desk CLI against a real onecardd.
 *
 * Each command is run through /bin/sh with the ONECARD_* environment of a
 * hospital, as a desk script would run it; the tests check the text a person
 * reads, the JSON a script parses and the documented exit code of every kind
 * of outcome (docs/cli.md).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static struct harness h;
static char out[65536];
static char err[65536];

/* A valid cn-id for a birth date and sequence number (odd: male). */
static void
make_cn_id(char id[19], const char *yyyymmdd, int seq)
{
	static const int w[17] = {
	    7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
	static const char check[] = "10X98765432";
	int i, sum = 0;

	snprintf(id, 19, "110105%.8s%03d", yyyymmdd, seq % 1000);
	for (i = 0; i < 17; i++)
		sum += (id[i] - '0') * w[i];
	id[17] = check[sum % 11];
	id[18] = '\0';
}

/* Run an onecard command line as cn; stdout in out, stderr in err. */
static int run(const char *cn, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int
run(const char *cn, const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int status;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	status = harness_run2(&h, cn, out, sizeof out, err, sizeof err, cmd);
	if (getenv("ONECARD_TEST_VERBOSE") != NULL)
		fprintf(stderr, "$ %s\n[%d]\n%s%s", cmd, status, out, err);
	return status;
}

static int
group_setup(void **state)
{
	static const char *const codes[] = {"XC001", "XC002", NULL};
	static const char *const strangers[] = {"stranger", NULL};

	if (harness_start(&h, codes, NULL) == -1)
		return -1;
	return harness_certs(&h, strangers);
}

static int
group_teardown(void **state)
{
	harness_cleanup(&h);
	return 0;
}

static void
help_lists_commands_and_exits_0(void **state)
{
	assert_int_equal(run(NULL, "onecard --help"), 0);
	assert_non_null(strstr(out, "usage: onecard"));
	assert_non_null(strstr(out, "lookup"));
	assert_non_null(strstr(out, "Exit: 0 ok, 1 not found"));
	assert_int_equal(run(NULL, "onecard help"), 0);
	assert_non_null(strstr(out, "commands:"));
}

static void
every_command_has_help(void **state)
{
	static const char *const cmds[] = {"ping", "lookup", "enroll", "link",
	    "unlink", "update", "search", NULL};
	const char *const *c;
	char want[64];

	for (c = cmds; *c != NULL; c++) {
		assert_int_equal(run(NULL, "onecard %s --help", *c), 0);
		snprintf(want, sizeof want, "usage: onecard %s", *c);
		assert_non_null(strstr(out, want));
	}
	assert_int_equal(run(NULL, "onecard update --help"), 0);
	assert_non_null(strstr(out, "--expect-version"));
	assert_int_equal(run(NULL, "onecard enroll --help"), 0);
	assert_non_null(strstr(out, "--birth"));
}

static void
usage_errors_exit_2(void **state)
{
	assert_int_equal(run("XC001", "onecard"), 2);
	assert_non_null(strstr(err, "no command"));
	assert_int_equal(run("XC001", "onecard frobnicate"), 2);
	assert_non_null(strstr(err, "unknown command"));
	assert_int_equal(run("XC001", "onecard lookup"), 2);
	assert_non_null(
	    strstr(err, "usage: onecard lookup [--target DOMAIN]... ID"));
	assert_int_equal(run("XC001", "onecard lookup a=1 b=2"), 2);
	assert_int_equal(run("XC001", "onecard lookup 12345"), 2);
	assert_non_null(strstr(err, "DOMAIN=VALUE"));
	assert_int_equal(run("XC001", "onecard link cn-ssc=A1234"), 2);
	assert_int_equal(run("XC001",
			     "onecard enroll --sex other "
			     "hosp:XC001=U1"),
	    2);
	assert_int_equal(run("XC001",
			     "onecard enroll --birth 1/2/1990 "
			     "hosp:XC001=U1"),
	    2);
	assert_int_equal(run("XC001", "onecard update hosp:XC001=U1"), 2);
	assert_non_null(strstr(err, "nothing to update"));
	assert_int_equal(run("XC001",
			     "onecard update --expect-version x "
			     "--phone 1 hosp:XC001=U1"),
	    2);
	assert_int_equal(run("XC001", "onecard search"), 2);
	assert_int_equal(run("XC001", "onecard --timeout soon ping"), 2);
	assert_int_equal(run("XC001", "onecard lookup --bogus cn-ssc=A1"), 2);
}

static void
ping_prints_pong_as_text_and_json(void **state)
{
	assert_int_equal(run("XC001", "onecard ping"), 0);
	assert_non_null(strstr(out, "pong from "));
	assert_int_equal(run("XC001", "onecard --json ping"), 0);
	assert_memory_equal(out, "{\"node\":", 8);
	assert_non_null(strstr(out, "\"version\":"));
}

static void
enroll_then_lookup_shows_the_patient(void **state)
{
	char cnid[19];

	make_cn_id(cnid, "19750315", 123);
	assert_int_equal(run("XC001",
			     "onecard enroll --name 'Zhang San' --sex male "
			     "--birth 1975-03-15 --phone '+86 10 1234' "
			     "--address 'Xicheng, Beijing' cn-id=%s "
			     "hosp:XC001=MRN-100",
			     cnid),
	    0);
	assert_non_null(strstr(out, "created:     yes"));
	assert_non_null(strstr(out, "patient:"));

	/* Another hospital reads the same record by the card number. */
	assert_int_equal(run("XC002", "onecard lookup cn-id=%s", cnid), 0);
	assert_non_null(strstr(out, "name:        Zhang San"));
	assert_non_null(strstr(out, "sex:         male"));
	assert_non_null(strstr(out, "birth date:  1975-03-15"));
	assert_non_null(strstr(out, "phone:       +86 10 1234"));
	assert_non_null(strstr(out, "address:     Xicheng, Beijing"));
	assert_non_null(strstr(out, "version:"));
	assert_non_null(strstr(out, "identifier:  hosp:XC001=MRN-100"));
	assert_non_null(strstr(out, "identifier:  cn-id="));

	/* Enrolling again is harmless: the same patient, not created. */
	assert_int_equal(run("XC001", "onecard enroll hosp:XC001=MRN-100"), 0);
	assert_non_null(strstr(out, "created:     no"));
}

static void
lookup_json_is_one_object_with_every_field(void **state)
{
	char cnid[19];

	make_cn_id(cnid, "19750315", 123);
	assert_int_equal(
	    run("XC002", "onecard --json lookup hosp:XC001=MRN-100"), 0);
	assert_memory_equal(out, "{\"patient_id\":\"", 15);
	assert_non_null(strstr(out, "\"name\":\"Zhang San\""));
	assert_non_null(strstr(out, "\"sex\":\"male\""));
	assert_non_null(strstr(out, "\"birth_date\":\"1975-03-15\""));
	assert_non_null(strstr(out, "\"phone\":\"+86 10 1234\""));
	assert_non_null(strstr(out, "\"merged_into\":\"\""));
	assert_non_null(strstr(out, "\"version\":"));
	assert_non_null(
	    strstr(out, "{\"domain\":\"hosp:XC001\",\"value\":\"MRN-100\"}"));
	assert_non_null(strstr(out, cnid));
	/* One object, one line. */
	assert_string_equal(strchr(out, '\n'), "\n");
}

static void
json_escapes_quotes_and_backslashes(void **state)
{
	assert_int_equal(run("XC001",
			     "onecard --json enroll --name 'Wang \"Er\" \\ "
			     "Xiao' hosp:XC001=MRN-JSON"),
	    0);
	assert_non_null(strstr(out, "\"created\":true"));
	assert_non_null(strstr(out, "\"name\":\"Wang \\\"Er\\\" \\\\ Xiao\""));
	assert_non_null(strstr(out, "\"possible_duplicates\":["));
}

static void
unknown_identifier_exits_1(void **state)
{
	assert_int_equal(run("XC001", "onecard lookup cn-ssc=NOSUCH123"), 1);
	assert_non_null(strstr(err, "NOT_FOUND"));
	assert_string_equal(out, "");
	assert_int_equal(
	    run("XC001", "onecard --json lookup cn-ssc=NOSUCH123"), 1);
	assert_memory_equal(out, "{\"error\":\"NOT_FOUND\",\"message\":", 31);
}

static void
invalid_argument_from_broker_exits_2(void **state)
{
	/* Well-formed DOMAIN=VALUE, but the check character is wrong. */
	assert_int_equal(
	    run("XC001", "onecard lookup cn-id=110105197503151231"), 2);
	assert_non_null(strstr(err, "INVALID_ARGUMENT"));
	assert_int_equal(run("XC001", "onecard lookup nosuchdomain=1"), 2);
}

static void
link_adds_identifier_and_conflict_exits_3(void **state)
{
	assert_int_equal(
	    run("XC001", "onecard link hosp:XC001=MRN-100 cn-ssc=SSC100A"), 0);
	assert_non_null(strstr(out, "identifier:  cn-ssc=SSC100A"));
	/* The card belongs to another patient now: refused. */
	assert_int_equal(
	    run("XC001", "onecard link hosp:XC001=MRN-JSON cn-ssc=SSC100A"), 3);
	assert_non_null(strstr(err, "CONFLICT"));
	/* Unknown KNOWN is not found. */
	assert_int_equal(
	    run("XC001", "onecard link hosp:XC001=NOPE cn-ssc=SSC100B"), 1);
}

static void
unlink_of_another_hospitals_id_exits_3(void **state)
{
	assert_int_equal(run("XC001",
			     "onecard link hosp:XC001=MRN-100 "
			     "hosp:XC001=MRN-100-OLD"),
	    0);
	assert_int_equal(
	    run("XC002", "onecard unlink hosp:XC001=MRN-100-OLD"), 3);
	assert_non_null(strstr(err, "PERMISSION_DENIED"));
	assert_int_equal(
	    run("XC001", "onecard --json unlink hosp:XC001=MRN-100-OLD"), 0);
	assert_memory_equal(out, "{\"patient_id\":", 14);
	assert_null(strstr(out, "MRN-100-OLD"));
	assert_int_equal(
	    run("XC001", "onecard lookup hosp:XC001=MRN-100-OLD"), 1);
}

/* The version lookup prints for hosp:XC001=MRN-100. */
static unsigned long long
current_version(void)
{
	const char *v;

	if (run("XC001", "onecard --json lookup hosp:XC001=MRN-100") != 0)
		return 0;
	if ((v = strstr(out, "\"version\":")) == NULL)
		return 0;
	return strtoull(v + 10, NULL, 10);
}

static void
update_with_stale_version_exits_3(void **state)
{
	unsigned long long v = current_version();

	assert_true(v > 0);
	assert_int_equal(run("XC001",
			     "onecard update --phone 010-5555 "
			     "--expect-version %llu hosp:XC001=MRN-100",
			     v + 7),
	    3);
	assert_non_null(strstr(err, "VERSION_MISMATCH"));
	assert_int_equal(run("XC001",
			     "onecard update --phone 010-5555 "
			     "--expect-version %llu hosp:XC001=MRN-100",
			     v),
	    0);
	assert_non_null(strstr(out, "phone:       010-5555"));
	/* Fields not given keep their value. */
	assert_non_null(strstr(out, "name:        Zhang San"));
	assert_true(current_version() > v);
	/* --json prints the record as it now stands. */
	assert_int_equal(run("XC001",
			     "onecard --json update --address 'Dongcheng' "
			     "hosp:XC001=MRN-100"),
	    0);
	assert_memory_equal(out, "{\"patient_id\":", 14);
	assert_non_null(strstr(out, "\"address\":\"Dongcheng\""));
	assert_non_null(strstr(out, "\"phone\":\"010-5555\""));
}

static void
search_finds_by_name_and_birth(void **state)
{
	assert_int_equal(run("XC002",
			     "onecard search --name 'Zhang San' --birth "
			     "1975-03-15"),
	    0);
	assert_non_null(strstr(out, "1 patient\n"));
	assert_non_null(strstr(out, "name:        Zhang San"));
	/* A name alone: an admin's search (a hospital's needs a birth date
	 * or a phone beside it). */
	assert_int_equal(run("admin",
			     "onecard --json search --name 'Zhang San' "
			     "--limit 5"),
	    0);
	assert_memory_equal(out, "{\"patients\":[{\"patient_id\":", 27);
	assert_int_equal(
	    run("admin", "onecard --json search --name 'Nobody Here'"), 0);
	assert_string_equal(out, "{\"patients\":[],\"matches\":[]}\n");
	/* Ranked by default: a typo still finds him, with how it matched. */
	assert_int_equal(run("XC002",
			     "onecard --json search --name 'Zhang Shan' "
			     "--birth 1975-03-15"),
	    0);
	assert_non_null(strstr(out, "\"reason\":\"name=edit1 birth=exact"));
	assert_int_equal(run("XC002",
			     "onecard search --exact --name 'Zhang Shan' "
			     "--birth 1975-03-15"),
	    0);
	assert_non_null(strstr(out, "0 patients\n"));
}

static void
unknown_certificate_exits_3(void **state)
{
	assert_int_equal(run("stranger", "onecard ping"), 3);
	assert_non_null(strstr(err, "UNAUTHENTICATED"));
}

static void
unreachable_broker_exits_4(void **state)
{
	/* Port 1 on loopback: nothing listens there. */
	assert_int_equal(run("XC001", "onecard --broker 127.0.0.1:1 ping"), 4);
	assert_non_null(strstr(err, "refused"));
	assert_int_equal(
	    run("XC001", "onecard --json --broker 127.0.0.1:1 ping"), 4);
	assert_memory_equal(out, "{\"error\":\"CLIENT_CONNECT\"", 25);
}

static void
silent_broker_times_out_with_exit_4(void **state)
{
	int status;

	assert_int_equal(harness_freeze(&h), 0);
	status = run("XC001", "onecard --timeout 0.5 ping");
	harness_thaw(&h);
	assert_int_equal(status, 4);
}

static void
other_broker_errors_exit_5(void **state)
{
	struct harness_fake f = {.reply_id = -1,
	    .code = ONECARD__V1__CODE__UNAVAILABLE,
	    .message = "disk full"};

	assert_int_equal(harness_fake_start(&h, &f), 0);
	assert_int_equal(run("XC001", "onecard --broker %s ping", f.addr), 5);
	assert_non_null(strstr(err, "UNAVAILABLE: disk full"));
	assert_int_equal(
	    run("XC001", "onecard --json --broker %s ping", f.addr), 5);
	assert_string_equal(
	    out, "{\"error\":\"UNAVAILABLE\",\"message\":\"disk full\"}\n");
	harness_fake_stop(&f);
	assert_int_equal(f.requests, 2);
}

static void
broker_message_is_escaped_in_json_and_defanged_on_terminal(void **state)
{
	struct harness_fake f = {.reply_id = -1,
	    .code = ONECARD__V1__CODE__NOT_FOUND,
	    .message = "a\"b\\c\nd\te\001f\033[2J"};

	assert_int_equal(harness_fake_start(&h, &f), 0);
	assert_int_equal(
	    run("XC001", "onecard --json --broker %s ping", f.addr), 1);
	assert_string_equal(out,
	    "{\"error\":\"NOT_FOUND\",\"message\":"
	    "\"a\\\"b\\\\c\\nd\\te\\u0001f\\u001b[2J\"}\n");
	assert_int_equal(run("XC001", "onecard --broker %s ping", f.addr), 1);
	/* No escape sequence reaches the terminal. */
	assert_null(strchr(err, '\033'));
	assert_non_null(strstr(err, "NOT_FOUND: a\"b\\c?d?e?f?[2J\n"));
	harness_fake_stop(&f);
}

/* A second development PKI in the test's folder, made once: its CA (the
 * same name as the broker's, another key) signs XC001 and admin. */
static const char *
other_pki(void)
{
	static char dir[400];
	char cmd[1200];

	if (dir[0] == '\0') {
		snprintf(dir, sizeof dir, "%s/other-pki", h.dir);
		snprintf(cmd, sizeof cmd,
		    "/bin/sh '%s/certs/mkcerts.sh' -d '%s' XC001 >/dev/null",
		    ONECARD_SOURCE_DIR, dir);
		assert_int_equal(system(cmd), 0);
	}
	return dir;
}

/* A desk certificate that another CA issued is refused by the broker
 * (tlsv1 alert unknown ca); the CLIs say so in one sentence naming the
 * file, exit 4, and --json carries the same sentence as CLIENT_TLS. */
static void
certificate_from_another_ca_is_explained_exit_4(void **state)
{
	const char *pki = other_pki();
	char want[1200];

	snprintf(want, sizeof want,
	    "onecard: lookup: the broker refused our certificate "
	    "%s/XC001.pem: it was not issued by a CA the broker trusts "
	    "(tlsv1 alert unknown ca); check --cert\n",
	    pki);
	assert_int_equal(run("XC001",
			     "onecard --cert %s/XC001.pem --key %s/XC001.key "
			     "lookup cn-ssc=A1234567",
			     pki, pki),
	    4);
	assert_string_equal(err, want);
	assert_int_equal(run("XC001",
			     "onecard --json --cert %s/XC001.pem --key "
			     "%s/XC001.key lookup cn-ssc=A1234567",
			     pki, pki),
	    4);
	snprintf(want, sizeof want,
	    "{\"error\":\"CLIENT_TLS\",\"message\":\"the broker refused "
	    "our certificate %s/XC001.pem: it was not issued by a CA the "
	    "broker trusts (tlsv1 alert unknown ca); check --cert\"}\n",
	    pki);
	assert_string_equal(out, want);
	/* onecardctl, on the same library, says the same. */
	assert_int_equal(
	    run("admin",
		"onecardctl --cert %s/admin.pem --key %s/admin.key "
		"hospital list",
		pki, pki),
	    4);
	assert_non_null(strstr(err,
	    "onecardctl: hospital list: the broker "
	    "refused our certificate "));
	assert_non_null(strstr(err, "(tlsv1 alert unknown ca); check --cert"));
}

/* The other way round: the broker's certificate does not chain to our
 * --ca (certificate verify failed), said in one sentence naming --ca. */
static void
broker_from_another_ca_is_explained_exit_4(void **state)
{
	const char *pki = other_pki();
	char want[1200];

	assert_int_equal(
	    run("XC001", "onecard --ca %s/ca.pem lookup cn-ssc=A1234567", pki),
	    4);
	snprintf(want, sizeof want,
	    "onecard: lookup: the broker's certificate is not trusted: it "
	    "was not issued by the CA in %s/ca.pem (certificate verify "
	    "failed: ",
	    pki);
	assert_memory_equal(err, want, strlen(want));
	assert_non_null(strstr(err, "); check --ca\n"));
	assert_int_equal(
	    run("XC001", "onecard --json --ca %s/ca.pem ping", pki), 4);
	assert_memory_equal(out,
	    "{\"error\":\"CLIENT_TLS\",\"message\":\"the broker's "
	    "certificate is not trusted: ",
	    68);
}

/* A CA certificate, a key or a missing file given as --cert is named as
 * such (exit 2), before any connection; not a bare key mismatch. */
static void
wrong_file_as_cert_is_named_exit_2(void **state)
{
	char want[1200];

	assert_int_equal(
	    run("XC001", "onecard --cert %s/ca.pem ping", h.certs), 2);
	snprintf(want, sizeof want,
	    "onecard: ping: certificate file %s/ca.pem is a CA certificate, "
	    "not a client certificate; check --cert\n",
	    h.certs);
	assert_string_equal(err, want);
	assert_int_equal(
	    run("XC001", "onecard --cert %s/XC001.key ping", h.certs), 2);
	snprintf(want, sizeof want,
	    "certificate file %s/XC001.key contains no certificate", h.certs);
	assert_non_null(strstr(err, want));
	assert_int_equal(
	    run("XC001", "onecard --key %s/XC001.pem ping", h.certs), 2);
	snprintf(want, sizeof want,
	    "key file %s/XC001.pem contains no private key", h.certs);
	assert_non_null(strstr(err, want));
	assert_int_equal(
	    run("XC001", "onecard --cert %s/none.pem ping", h.certs), 2);
	snprintf(want, sizeof want,
	    "onecard: ping: certificate file %s/none.pem: No such file or "
	    "directory\n",
	    h.certs);
	assert_string_equal(err, want);
	assert_int_equal(
	    run("XC001", "onecard --key %s/XC002.key ping", h.certs), 2);
	snprintf(want, sizeof want,
	    "key file %s/XC002.key does not match certificate file "
	    "%s/XC001.pem",
	    h.certs, h.certs);
	assert_non_null(strstr(err, want));
}

static void
flags_override_the_environment(void **state)
{
	/* The environment names a key that does not exist; the flag wins. */
	assert_int_equal(
	    run("XC001",
		"ONECARD_KEY=/nonexistent onecard --key %s/XC001.key "
		"ping",
		h.certs),
	    0);
	assert_int_equal(
	    run("XC001", "ONECARD_KEY=/nonexistent onecard ping"), 2);
	assert_non_null(strstr(err, "/nonexistent"));
}

static void
options_are_accepted_anywhere_on_the_line(void **state)
{
	assert_int_equal(
	    run("XC001", "onecard lookup hosp:XC001=MRN-100 --json"), 0);
	assert_memory_equal(out, "{\"patient_id\":\"", 15);
	assert_int_equal(run("XC001",
			     "onecard lookup --timeout 5 hosp:XC001=MRN-100 "
			     "--json"),
	    0);
	assert_memory_equal(out, "{\"patient_id\":\"", 15);
	assert_int_equal(
	    run("XC001", "onecard ping --broker=127.0.0.1:1 --json"), 4);
	assert_memory_equal(out, "{\"error\":\"CLIENT_CONNECT\"", 25);
	assert_int_equal(run("XC001", "onecard ping --cert"), 2);
	assert_non_null(strstr(err, "--cert needs a value"));
	/* After "--" nothing is an option. */
	assert_int_equal(run("XC001", "onecard lookup -- --json"), 2);
}

static void
version_works_on_every_command(void **state)
{
	static const char *const cmds[] = {"", "ping", "lookup", "enroll",
	    "link", "unlink", "update", "search", "help", NULL};
	const char *const *c;

	for (c = cmds; *c != NULL; c++) {
		assert_int_equal(run(NULL, "onecard %s --version", *c), 0);
		assert_memory_equal(out, "onecard ", 8);
		assert_null(strchr(out + 8, ' '));
	}
}

static void
search_on_sex_alone_is_a_usage_error(void **state)
{
	assert_int_equal(run("XC001", "onecard search --sex male"), 2);
	assert_non_null(strstr(err, "give --name, --birth, --phone or --id"));
	assert_int_equal(run("XC001", "onecard search --exact --sex male"), 2);
	assert_non_null(strstr(err, "give --name or --birth"));
	assert_int_equal(run("admin",
			     "onecard search --sex male --birth 1975-03-15 "
			     "--json"),
	    0);
	assert_memory_equal(out, "{\"patients\":[{", 14);
}

/* Write text to h.dir/name (folders made as needed); its path into path. */
static void
write_profile(const char *name, const char *text, char *path, size_t len)
{
	char cmd[1024];
	FILE *fp;

	snprintf(path, len, "%s/%s", h.dir, name);
	snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", path);
	assert_int_equal(system(cmd), 0);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

/* The environment without any connection setting. */
#define NO_ENV                                                                 \
	"env -u ONECARD_BROKER -u ONECARD_CERT -u ONECARD_KEY -u "             \
	"ONECARD_CA -u ONECARD_PROFILE "

static void
profile_supplies_the_connection_settings(void **state)
{
	char path[512], text[2048];

	/* Relative paths are taken from the file's folder: the certs. */
	snprintf(text, sizeof text,
	    "; the desk's settings\n"
	    "[default]\nbroker = %s\ncert = XC001.pem\nkey = XC001.key\n"
	    "ca = ca.pem\ntimeout = 5\n\n"
	    "[dead]\nbroker = 127.0.0.1:1\n\n"
	    "[admin]\nbroker = %s\ncert = %s/admin.pem\n"
	    "key = %s/admin.key\nca = %s/ca.pem\n",
	    h.addr, h.addr, h.certs, h.certs, h.certs);
	snprintf(path, sizeof path, "%s/profiles", h.certs);
	{
		FILE *fp = fopen(path, "w");

		assert_non_null(fp);
		fputs(text, fp);
		assert_int_equal(fclose(fp), 0);
	}
	/* Nothing in the environment: [default] does it all. */
	assert_int_equal(
	    run(NULL, NO_ENV "ONECARD_PROFILE_FILE=%s onecard ping", path), 0);
	assert_non_null(strstr(out, "pong from "));
	/* Without the file there is nothing to connect with. */
	assert_int_equal(run(NULL, NO_ENV "HOME=%s onecard ping", h.dir), 2);
	/* A named profile, by flag or environment; a flag overrides it. */
	assert_int_equal(run(NULL,
			     NO_ENV "ONECARD_PROFILE_FILE=%s onecard "
				    "--profile dead ping",
			     path),
	    4);
	assert_non_null(strstr(err, "127.0.0.1:1"));
	assert_int_equal(
	    run(NULL,
		NO_ENV "ONECARD_PROFILE_FILE=%s ONECARD_PROFILE=dead "
		       "onecard ping",
		path),
	    4);
	assert_int_equal(run(NULL,
			     NO_ENV "ONECARD_PROFILE_FILE=%s onecard ping "
				    "--profile dead --broker %s",
			     path, h.addr),
	    0);
	/* A named profile wins over the environment, [default] does not. */
	assert_int_equal(run("XC001",
			     "ONECARD_PROFILE_FILE=%s onecard --profile dead "
			     "ping",
			     path),
	    4);
	assert_int_equal(
	    run("stranger", "ONECARD_PROFILE_FILE=%s onecard ping", path), 3);
	/* onecardctl reads the same file. */
	assert_int_equal(run(NULL,
			     NO_ENV "ONECARD_PROFILE_FILE=%s onecardctl "
				    "stats --profile admin --json",
			     path),
	    0);
	assert_memory_equal(out, "{\"patients\":", 12);
}

static void
profile_is_found_under_home_and_xdg(void **state)
{
	char path[512], text[2048];

	snprintf(text, sizeof text,
	    "[default]\nbroker = %s\ncert = %s/XC002.pem\n"
	    "key = %s/XC002.key\nca = %s/ca.pem\n",
	    h.addr, h.certs, h.certs, h.certs);
	write_profile("home/.config/onecard/profiles", text, path, sizeof path);
	assert_int_equal(run(NULL,
			     NO_ENV "-u XDG_CONFIG_HOME HOME=%s/home onecard "
				    "ping",
			     h.dir),
	    0);
	write_profile("xdg/onecard/profiles", text, path, sizeof path);
	assert_int_equal(run(NULL,
			     NO_ENV "HOME=/nonexistent XDG_CONFIG_HOME=%s/xdg "
				    "onecard ping",
			     h.dir),
	    0);
}

static void
bad_profile_is_an_error_naming_file_and_line(void **state)
{
	char path[512];

	write_profile("bad/profiles",
	    "[default]\nbroker = 127.0.0.1:7443\n\n[desk]\nbrokr = x:1\n", path,
	    sizeof path);
	assert_int_equal(
	    run(NULL, NO_ENV "ONECARD_PROFILE_FILE=%s onecard ping", path), 2);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, ":5: [desk] unknown setting \"brokr\""));
	assert_int_equal(run(NULL,
			     NO_ENV "ONECARD_PROFILE_FILE=%s onecard --json "
				    "ping",
			     path),
	    2);
	assert_memory_equal(out, "{\"error\":\"CLIENT_INVALID\"", 25);
	write_profile(
	    "bad/profiles", "[default]\ntimeout = soon\n", path, sizeof path);
	assert_int_equal(
	    run(NULL, NO_ENV "ONECARD_PROFILE_FILE=%s onecard ping", path), 2);
	assert_non_null(strstr(err, ":2: [default] timeout: \"soon\""));
	/* A named profile that is not there, or a file that is not. */
	write_profile(
	    "bad/profiles", "[default]\nbroker = x:1\n", path, sizeof path);
	assert_int_equal(run(NULL,
			     NO_ENV "ONECARD_PROFILE_FILE=%s onecard "
				    "--profile nosuch ping",
			     path),
	    2);
	assert_non_null(strstr(err, "profile \"nosuch\" is not in "));
	assert_int_equal(run(NULL,
			     NO_ENV "ONECARD_PROFILE_FILE=%s/none onecardctl "
				    "--profile x stats",
			     h.dir),
	    2);
	assert_non_null(strstr(err, "/none: No such file or directory"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(help_lists_commands_and_exits_0),
	    cmocka_unit_test(every_command_has_help),
	    cmocka_unit_test(usage_errors_exit_2),
	    cmocka_unit_test(ping_prints_pong_as_text_and_json),
	    cmocka_unit_test(enroll_then_lookup_shows_the_patient),
	    cmocka_unit_test(lookup_json_is_one_object_with_every_field),
	    cmocka_unit_test(json_escapes_quotes_and_backslashes),
	    cmocka_unit_test(unknown_identifier_exits_1),
	    cmocka_unit_test(invalid_argument_from_broker_exits_2),
	    cmocka_unit_test(link_adds_identifier_and_conflict_exits_3),
	    cmocka_unit_test(unlink_of_another_hospitals_id_exits_3),
	    cmocka_unit_test(update_with_stale_version_exits_3),
	    cmocka_unit_test(search_finds_by_name_and_birth),
	    cmocka_unit_test(unknown_certificate_exits_3),
	    cmocka_unit_test(unreachable_broker_exits_4),
	    cmocka_unit_test(certificate_from_another_ca_is_explained_exit_4),
	    cmocka_unit_test(broker_from_another_ca_is_explained_exit_4),
	    cmocka_unit_test(wrong_file_as_cert_is_named_exit_2),
	    cmocka_unit_test(silent_broker_times_out_with_exit_4),
	    cmocka_unit_test(other_broker_errors_exit_5),
	    cmocka_unit_test(
		broker_message_is_escaped_in_json_and_defanged_on_terminal),
	    cmocka_unit_test(flags_override_the_environment),
	    cmocka_unit_test(options_are_accepted_anywhere_on_the_line),
	    cmocka_unit_test(version_works_on_every_command),
	    cmocka_unit_test(search_on_sex_alone_is_a_usage_error),
	    cmocka_unit_test(profile_supplies_the_connection_settings),
	    cmocka_unit_test(profile_is_found_under_home_and_xdg),
	    cmocka_unit_test(bad_profile_is_an_error_naming_file_and_line),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
