/*
 * onecardctl.c: the registry administrator's tool, main and shared helpers.
 *
 * Owns the command table, the connection flags (--broker --cert --key --ca,
 * accepted anywhere on the line, ONECARD_* in the environment otherwise),
 * --json, and the one place where a broker's refusal becomes a message for a
 * person: PERMISSION_DENIED names the certificate's CN and says an admin
 * certificate is needed. Subcommands live in hospital.c, patient.c, import.c,
 * gen.c and audit.c; none of them exits the process.
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

struct ctl_global ctl_g;

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
    {"stats", ctl_stats, "stats: patients, identifiers, merges"},
    {"import", ctl_import, "import FILE.csv: enroll patients in bulk"},
    {"export", ctl_export, "export: every live patient as CSV"},
    {"gen", ctl_gen, "gen --patients N: a synthetic population"},
#ifdef CTL_HAVE_AUDIT
    {"audit", ctl_audit, "audit: the audit trail"},
#endif
};

static void
ctl_usage(FILE *fp)
{
	size_t i;

	fprintf(fp,
	    "usage: onecardctl [--broker HOST:PORT] [--cert FILE] [--key FILE]"
	    " [--ca FILE]\n"
	    "                  [--json] COMMAND [ARGS]\n"
	    "Connection settings default to $ONECARD_BROKER, $ONECARD_CERT,\n"
	    "$ONECARD_KEY and $ONECARD_CA; the certificate must be an admin's."
	    "\n\ncommands:\n");
	for (i = 0; i < sizeof(ctl_commands) / sizeof(ctl_commands[0]); i++)
		fprintf(fp, "  %-9s %s\n", ctl_commands[i].name,
		    ctl_commands[i].summary);
	fprintf(fp, "\n'onecardctl COMMAND --help' for more.\n");
}

/* Take the connection flags and --json out of argv, wherever they are. */
static int
ctl_take_globals(int *argc, char **argv)
{
	static const struct {
		const char *flag;
		const char **dst;
	} flags[] = {{"--broker", &ctl_g.broker}, {"--cert", &ctl_g.cert},
	    {"--key", &ctl_g.key}, {"--ca", &ctl_g.ca}};
	int i, o = 1;
	size_t f, n;

	for (i = 1; i < *argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			while (i < *argc)
				argv[o++] = argv[i++];
			break;
		}
		if (strcmp(argv[i], "--json") == 0) {
			ctl_g.json = 1;
			continue;
		}
		for (f = 0; f < sizeof(flags) / sizeof(flags[0]); f++) {
			n = strlen(flags[f].flag);
			if (strncmp(argv[i], flags[f].flag, n) != 0)
				continue;
			if (argv[i][n] == '=') {
				*flags[f].dst = argv[i] + n + 1;
				break;
			}
			if (argv[i][n] == '\0') {
				if (i + 1 == *argc) {
					fprintf(stderr,
					    "onecardctl: %s needs a value\n",
					    flags[f].flag);
					return -1;
				}
				*flags[f].dst = argv[++i];
				break;
			}
		}
		if (f == sizeof(flags) / sizeof(flags[0]))
			argv[o++] = argv[i];
	}
	argv[o] = NULL;
	*argc = o;
	return 0;
}

void
ctl_options(struct onecard_options *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->broker = ctl_g.broker;
	opt->cert = ctl_g.cert;
	opt->key = ctl_g.key;
	opt->ca = ctl_g.ca;
	onecard_options_from_env(opt);
}

int
ctl_connect(struct onecard_conn **out)
{
	struct onecard_options opt;
	char err[256] = "";
	int rc;

	ctl_options(&opt);
	if ((rc = onecard_connect(&opt, out, err, sizeof(err))) != ONECARD_OK) {
		fprintf(stderr, "onecardctl: cannot connect to %s: %s\n",
		    opt.broker != NULL ? opt.broker : "the broker",
		    err[0] != '\0' ? err : onecard_strerror(rc));
		return -1;
	}
	return 0;
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
	ctl_options(&opt);
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
void
ctl_refused(const char *what, int code, const char *message)
{
	char cn[128];

	if (message == NULL || *message == '\0')
		message = ctl_code_name(code);
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
}

int
ctl_call(
    const char *what, Onecard__V1__Request *req, Onecard__V1__Reply **reply)
{
	struct onecard_conn *conn;
	Onecard__V1__Reply *r = NULL;
	int rc;

	*reply = NULL;
	if (ctl_connect(&conn) == -1)
		return CTL_EXIT_CONNECT;
	rc = onecard_call(conn, req, &r);
	if (rc != ONECARD_OK) {
		fprintf(stderr, "onecardctl: %s: %s\n", what,
		    onecard_last_error(conn) != NULL ? onecard_last_error(conn)
						     : onecard_strerror(rc));
		onecard_close(conn);
		return CTL_EXIT_CONNECT;
	}
	onecard_close(conn);
	if (r->code != ONECARD__V1__CODE__OK) {
		ctl_refused(what, r->code, r->message);
		onecard_reply_free(r);
		return CTL_EXIT_REFUSED;
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
	const unsigned char *p;

	putc('"', fp);
	for (p = (const unsigned char *)(s != NULL ? s : ""); *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(fp, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", fp);
		else if (*p < 0x20)
			fprintf(fp, "\\u%04x", *p);
		else
			putc(*p, fp);
	}
	putc('"', fp);
}

static const char *
ctl_sex_name(int sex)
{
	switch (sex) {
	case ONECARD__V1__SEX__SEX_MALE:
		return "M";
	case ONECARD__V1__SEX__SEX_FEMALE:
		return "F";
	}
	return "";
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
		printf("{\"patient_id\":");
		ctl_json_str(stdout, p->patient_id);
		printf(",\"version\":%llu", (unsigned long long)p->version);
		if (p->merged_into != NULL && *p->merged_into != '\0') {
			printf(",\"merged_into\":");
			ctl_json_str(stdout, p->merged_into);
		}
		printf(",\"name\":");
		ctl_json_str(stdout, d->name);
		printf(",\"sex\":");
		ctl_json_str(stdout, ctl_sex_name(d->sex));
		printf(",\"birth_date\":");
		ctl_json_str(stdout, d->birth_date);
		printf(",\"phone\":");
		ctl_json_str(stdout, d->phone);
		printf(",\"address\":");
		ctl_json_str(stdout, d->address);
		printf(",\"identifiers\":[");
		for (i = 0; i < p->n_identifiers; i++) {
			printf("%s{\"domain\":", i > 0 ? "," : "");
			ctl_json_str(stdout, p->identifiers[i]->domain);
			printf(",\"value\":");
			ctl_json_str(stdout, p->identifiers[i]->value);
			printf("}");
		}
		printf("]}\n");
		return;
	}
	printf("patient_id   %s\n", p->patient_id);
	printf("version      %llu\n", (unsigned long long)p->version);
	if (p->merged_into != NULL && *p->merged_into != '\0')
		printf("merged_into  %s\n", p->merged_into);
	printf("name         %s\n", d->name);
	printf("sex          %s\n", ctl_sex_name(d->sex));
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

	if (ctl_take_globals(&argc, argv) == -1)
		return CTL_EXIT_USAGE;
	if (argc < 2) {
		ctl_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		ctl_usage(stdout);
		return CTL_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("onecardctl %s\n", ONECARD_VERSION);
		return CTL_EXIT_OK;
	}
	for (i = 0; i < sizeof(ctl_commands) / sizeof(ctl_commands[0]); i++)
		if (strcmp(argv[1], ctl_commands[i].name) == 0)
			return ctl_commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "onecardctl: unknown command \"%s\"\n", argv[1]);
	ctl_usage(stderr);
	return CTL_EXIT_USAGE;
}
