/*
 * onecardctl.c: the registry administrator's tool, main and shared helpers.
 *
 * Owns the command table, the connection (settings from clients/common:
 * flags anywhere on the line, a profile, ONECARD_* in the environment),
 * and the one place where a broker's refusal becomes a message for a
 * person: PERMISSION_DENIED names the certificate's CN and says an admin
 * certificate is needed. Subcommands live in hospital.c, patient.c, import.c,
 * gen.c, audit.c and duplicates.c; none of them exits the process.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ctl.h"
#include "gen.h"
#if __has_include("audit.h")
#include "audit.h"
#define CTL_HAVE_AUDIT 1
#endif

struct cli_globals ctl_g = {.prog = "onecardctl"};

struct ctl_command {
	const char *name;
	int (*fn)(int, char **);
	const char *summary;
};

static const struct ctl_command ctl_commands[] = {
    {"hospital", ctl_hospital, "hospital add|list|revoke: the hospitals"},
    {"patient", ctl_patient, "patient show|history ID: one patient"},
    {"merge", ctl_merge, "merge SURVIVOR DUPLICATE: fold two records"},
    {"unmerge", ctl_unmerge, "unmerge PATIENT_ID: undo a merge"},
    {"duplicates", ctl_duplicates,
	"duplicates scan|list|show|merge|dismiss: the worklist"},
    {"stats", ctl_stats, "stats: patients, identifiers, merges"},
    {"import", ctl_import, "import FILE.csv: enroll patients in bulk"},
    {"export", ctl_export, "export: every live patient as CSV"},
    {"backup", ctl_backup, "backup FILE: copy the running registry"},
    {"gen", ctl_gen, "gen --patients N: a synthetic population"},
#ifdef CTL_HAVE_AUDIT
    {"audit", ctl_audit, "audit: the audit trail; access reports"},
#endif
};

static void
ctl_usage(FILE *fp)
{
	size_t i;

	fprintf(fp,
	    "usage: onecardctl [--profile NAME] [--broker HOST:PORT] "
	    "[--cert FILE]\n"
	    "                  [--key FILE] [--ca FILE] [--json] "
	    "[--timeout SECONDS]\n"
	    "                  COMMAND [ARGS]\n"
	    "       onecardctl --help | --version\n"
	    "The options may stand anywhere on the line. Connection settings "
	    "not given\ncome from the profile --profile or $ONECARD_PROFILE "
	    "names, then\n$ONECARD_BROKER, $ONECARD_CERT, $ONECARD_KEY and "
	    "$ONECARD_CA, then the\n[default] profile "
	    "(~/.config/onecard/profiles); the certificate must be an\n"
	    "admin's.\n\ncommands:\n");
	for (i = 0; i < sizeof(ctl_commands) / sizeof(ctl_commands[0]); i++)
		fprintf(fp, "  %-10s %s\n", ctl_commands[i].name,
		    ctl_commands[i].summary);
	fprintf(fp,
	    "\nExit: 0 ok, 1 not found (or audit: the trail is "
	    "broken), 2 invalid\ninput, 3 refused, 4 cannot reach the "
	    "broker, 5 other broker error, 6 import\nrejected some rows. "
	    "'onecardctl COMMAND --help' for more; docs/cli.md.\n");
}

int
ctl_options(struct onecard_options *opt)
{
	char err[PATH_MAX + 256];

	if (cli_options(&ctl_g, opt, err, sizeof(err)) == -1) {
		fprintf(stderr, "onecardctl: %s\n", err);
		if (ctl_g.json)
			cli_json_error(stdout, "CLIENT_INVALID", err);
		return -1;
	}
	return 0;
}

int
ctl_connect(struct onecard_conn **out)
{
	struct onecard_options opt;
	char err[256] = "";
	int rc;

	*out = NULL;
	if (ctl_options(&opt) == -1)
		return CTL_EXIT_USAGE;
	if ((rc = onecard_connect(&opt, out, err, sizeof(err))) != ONECARD_OK) {
		if (err[0] == '\0')
			snprintf(err, sizeof(err), "%s", onecard_strerror(rc));
		fprintf(stderr, "onecardctl: cannot connect to %s: %s\n",
		    opt.broker != NULL ? opt.broker : "the broker", err);
		if (ctl_g.json)
			cli_json_error(stdout, cli_err_token(rc), err);
		return cli_exit_for_err(rc);
	}
	return CTL_EXIT_OK;
}

const char *
ctl_code_name(int code)
{
	switch (code) {
	case ONECARD__V1__CODE__OK:
		return "ok";
	case ONECARD__V1__CODE__INVALID_ARGUMENT:
		return "invalid argument";
	case ONECARD__V1__CODE__NOT_FOUND:
		return "not found";
	case ONECARD__V1__CODE__CONFLICT:
		return "conflict";
	case ONECARD__V1__CODE__PERMISSION_DENIED:
		return "permission denied";
	case ONECARD__V1__CODE__RESOURCE_EXHAUSTED:
		return "resource exhausted";
	case ONECARD__V1__CODE__VERSION_MISMATCH:
		return "version mismatch";
	case ONECARD__V1__CODE__UNIMPLEMENTED:
		return "unimplemented";
	case ONECARD__V1__CODE__INTERNAL:
		return "internal error";
	case ONECARD__V1__CODE__UNAVAILABLE:
		return "unavailable";
	case ONECARD__V1__CODE__UNAUTHENTICATED:
		return "unauthenticated";
	}
	return "unknown code";
}

/* The subject CN of our certificate, for messages; "" when unknown. */
static void
ctl_cert_cn(char *cn, size_t len)
{
	struct onecard_options opt;
	X509 *x = NULL;
	FILE *fp;

	cn[0] = '\0';
	if (cli_options(&ctl_g, &opt, cn, len) == -1) {
		cn[0] = '\0';
		return;
	}
	if (opt.cert == NULL || (fp = fopen(opt.cert, "r")) == NULL)
		return;
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	if (x == NULL)
		return;
	if (X509_NAME_get_text_by_NID(
		X509_get_subject_name(x), NID_commonName, cn, (int)len) < 0)
		cn[0] = '\0';
	X509_free(x);
}

/* Say once, for a person, why the broker refused. */
int
ctl_refused(const char *what, int code, const char *message)
{
	char cn[128];

	if (message == NULL || *message == '\0')
		message = ctl_code_name(code);
	if (ctl_g.json)
		cli_json_error(stdout, cli_code_token(code), message);
	switch (code) {
	case ONECARD__V1__CODE__PERMISSION_DENIED:
		ctl_cert_cn(cn, sizeof(cn));
		fprintf(stderr,
		    "onecardctl: %s: permission denied: this needs an admin "
		    "certificate, and \"%s\" is not an admin (%s)\n",
		    what, cn[0] != '\0' ? cn : "this certificate", message);
		break;
	case ONECARD__V1__CODE__UNAUTHENTICATED:
		ctl_cert_cn(cn, sizeof(cn));
		fprintf(stderr,
		    "onecardctl: %s: unauthenticated: \"%s\" is neither an "
		    "admin nor an active hospital (%s)\n",
		    what, cn, message);
		break;
	default:
		fprintf(stderr, "onecardctl: %s: %s: %s\n", what,
		    ctl_code_name(code), message);
	}
	return cli_exit_for_code(code);
}

int
ctl_call(
    const char *what, Onecard__V1__Request *req, Onecard__V1__Reply **reply)
{
	struct onecard_conn *conn;
	Onecard__V1__Reply *r = NULL;
	int rc;

	*reply = NULL;
	if ((rc = ctl_connect(&conn)) != CTL_EXIT_OK)
		return rc;
	rc = cli_call_failover(conn, req, &r, "onecardctl", what);
	if (rc != ONECARD_OK) {
		const char *e = onecard_last_error(conn) != NULL
		    ? onecard_last_error(conn)
		    : onecard_strerror(rc);

		fprintf(stderr, "onecardctl: %s: %s\n", what, e);
		if (ctl_g.json)
			cli_json_error(stdout, cli_err_token(rc), e);
		onecard_close(conn);
		return cli_exit_for_err(rc);
	}
	onecard_close(conn);
	if (r->code != ONECARD__V1__CODE__OK) {
		rc = ctl_refused(what, r->code, r->message);
		onecard_reply_free(r);
		return rc;
	}
	*reply = r;
	return CTL_EXIT_OK;
}

int
ctl_id_parse(const char *what, const char *s, char *buf, size_t len,
    Onecard__V1__Identifier *id)
{
	char err[256] = "";

	onecard__v1__identifier__init(id);
	if (onecard_identifier_parse(s, buf, len, id, err, sizeof(err)) != 0) {
		fprintf(stderr, "onecardctl: %s: \"%s\": %s\n", what, s,
		    err[0] != '\0' ? err : "expected DOMAIN=VALUE");
		return -1;
	}
	return 0;
}

int
ctl_help_wanted(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0)
			return 1;
	return 0;
}

void
ctl_json_str(FILE *fp, const char *s)
{
	cli_json_string(fp, s);
}

void
ctl_print_patient(const Onecard__V1__Patient *p)
{
	const Onecard__V1__Demographics *d = p->demographics;
	static const Onecard__V1__Demographics none =
	    ONECARD__V1__DEMOGRAPHICS__INIT;
	size_t i;

	if (d == NULL)
		d = &none;
	if (ctl_g.json) {
		cli_json_patient(stdout, p);
		putchar('\n');
		return;
	}
	printf("patient_id   %s\n", p->patient_id);
	printf("version      %llu\n", (unsigned long long)p->version);
	if (p->merged_into != NULL && *p->merged_into != '\0')
		printf("merged_into  %s\n", p->merged_into);
	printf("name         %s\n", d->name);
	printf("sex          %s\n",
	    d->sex == ONECARD__V1__SEX__SEX_UNKNOWN ? ""
						    : cli_sex_name(d->sex));
	printf("birth_date   %s\n", d->birth_date);
	printf("phone        %s\n", d->phone);
	printf("address      %s\n", d->address);
	for (i = 0; i < p->n_identifiers; i++)
		printf("%-12s %s=%s\n", i == 0 ? "identifiers" : "",
		    p->identifiers[i]->domain, p->identifiers[i]->value);
}

void
ctl_print_events(Onecard__V1__Event **ev, size_t n)
{
	char when[64];
	struct tm tm;
	time_t t;
	size_t i;

	for (i = 0; i < n; i++) {
		if (ctl_g.json) {
			printf("{\"seq\":%llu,\"time_ms\":%lld,\"op\":",
			    (unsigned long long)ev[i]->seq,
			    (long long)ev[i]->time_ms);
			ctl_json_str(stdout, ev[i]->op);
			printf(",\"patient_id\":");
			ctl_json_str(stdout, ev[i]->patient_id);
			printf(",\"actor\":");
			ctl_json_str(stdout, ev[i]->actor);
			printf(",\"detail\":");
			ctl_json_str(stdout, ev[i]->detail);
			printf("}\n");
			continue;
		}
		t = (time_t)(ev[i]->time_ms / 1000);
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("%-6llu %s %-8s %-12s %-16s %s\n",
		    (unsigned long long)ev[i]->seq, when, ev[i]->op,
		    ev[i]->actor, ev[i]->patient_id, ev[i]->detail);
	}
}

int
main(int argc, char **argv)
{
	size_t i;

	if (cli_globals_take(&ctl_g, &argc, argv) == -1)
		return CTL_EXIT_USAGE;
	if (ctl_g.version) {
		printf("onecardctl %s\n", ONECARD_VERSION);
		return CTL_EXIT_OK;
	}
	if (argc < 2) {
		ctl_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		ctl_usage(stdout);
		return CTL_EXIT_OK;
	}
#ifdef CTL_HAVE_AUDIT
	audit_json = ctl_g.json;
#endif
	for (i = 0; i < sizeof(ctl_commands) / sizeof(ctl_commands[0]); i++)
		if (strcmp(argv[1], ctl_commands[i].name) == 0)
			return ctl_commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "onecardctl: unknown command \"%s\"\n", argv[1]);
	ctl_usage(stderr);
	return CTL_EXIT_USAGE;
}
