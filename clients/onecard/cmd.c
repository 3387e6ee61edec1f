/*
 * cmd.c: the commands of the onecard desk CLI, one function each.
 *
 * Each command reads its own options and operands, checks what can be
 * checked without the broker (DOMAIN=VALUE syntax, sex, date shape, numbers)
 * and builds one Request for cli_call. Whether a value is valid in its
 * domain is the broker's decision, not this file's.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

#define IDENT_BUFLEN 512

/* Long options every command takes, and the demographic ones. */
#define OPT_HELP                                                               \
	{                                                                      \
		"help", no_argument, NULL, 'h'                                 \
	}
#define OPT_DEMOGRAPHICS                                                       \
	{"name", required_argument, NULL, 'n'},                                \
	    {"sex", required_argument, NULL, 's'},                             \
	    {"birth", required_argument, NULL, 'b'},                           \
	    {"phone", required_argument, NULL, 'p'},                           \
	{                                                                      \
		"address", required_argument, NULL, 'a'                        \
	}

static const char *demographics_help =
    "  --name NAME            the patient's name (UTF-8)\n"
    "  --sex male|female\n"
    "  --birth YYYY-MM-DD     date of birth\n"
    "  --phone PHONE\n"
    "  --address ADDRESS\n";

/* Print a command's --help to stdout; returns EXIT_FOUND. */
static int
cmd_help(struct cli *cli, const char *options)
{
	const struct cli_command *c;

	for (c = cli_commands; c->name != NULL; c++) {
		if (strcmp(c->name, cli->cmd) != 0)
			continue;
		printf(
		    "usage: onecard %s %s\n\n%s\n", c->name, c->usage, c->help);
		if (options != NULL)
			printf("\noptions:\n%s", options);
		printf("\nGlobal options (--profile, --broker, --cert, --key, "
		       "--ca, --json, --timeout,\n--version) may stand "
		       "anywhere on the line; see onecard --help.\n");
	}
	return EXIT_FOUND;
}

/* The usage line of the running command. */
static const char *
cmd_usage(struct cli *cli)
{
	const struct cli_command *c;

	for (c = cli_commands; c->name != NULL; c++)
		if (strcmp(c->name, cli->cmd) == 0)
			return c->usage;
	return "";
}

/* Parse "male" or "female". 0 or -1. */
static int
cmd_parse_sex(const char *s, Onecard__V1__Sex *sex)
{
	if (strcasecmp(s, "male") == 0 || strcasecmp(s, "m") == 0)
		*sex = ONECARD__V1__SEX__SEX_MALE;
	else if (strcasecmp(s, "female") == 0 || strcasecmp(s, "f") == 0)
		*sex = ONECARD__V1__SEX__SEX_FEMALE;
	else
		return -1;
	return 0;
}

/* Is s shaped like YYYY-MM-DD? (The broker checks it is a real date.) */
static int
cmd_date_shape(const char *s)
{
	int i;

	if (strlen(s) != 10)
		return 0;
	for (i = 0; i < 10; i++) {
		if (i == 4 || i == 7) {
			if (s[i] != '-')
				return 0;
		} else if (!isdigit((unsigned char)s[i])) {
			return 0;
		}
	}
	return 1;
}

/* Parse an unsigned decimal number up to max. 0 or -1. */
static int
cmd_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

/*
 * Take one demographic option into d. 1 when ch was one, 0 when it was not,
 * or EXIT_USAGE after reporting a bad value (as a negative number).
 */
static int
cmd_demographic(
    struct cli *cli, int ch, const char *arg, Onecard__V1__Demographics *d)
{
	switch (ch) {
	case 'n':
		d->name = (char *)arg;
		return 1;
	case 's':
		if (cmd_parse_sex(arg, &d->sex) == -1)
			return -cli_usage_error(cli, cmd_usage(cli),
			    "--sex: \"%s\" is not male or female", arg);
		return 1;
	case 'b':
		if (!cmd_date_shape(arg))
			return -cli_usage_error(cli, cmd_usage(cli),
			    "--birth: \"%s\" is not YYYY-MM-DD", arg);
		d->birth_date = (char *)arg;
		return 1;
	case 'p':
		d->phone = (char *)arg;
		return 1;
	case 'a':
		d->address = (char *)arg;
		return 1;
	}
	return 0;
}

/* Parse an identifier operand into id (buf keeps its text). 0 or
 * EXIT_USAGE after reporting. */
static int
cmd_identifier(
    struct cli *cli, const char *s, char *buf, Onecard__V1__Identifier *id)
{
	char err[256];

	if (onecard_identifier_parse(
		s, buf, IDENT_BUFLEN, id, err, sizeof err) == -1)
		return cli_usage_error(cli, cmd_usage(cli), "%s", err);
	return 0;
}

/* Check the operand count; EXIT_USAGE after reporting, or 0. */
static int
cmd_operands(struct cli *cli, int have, int want)
{
	if (have < want)
		return cli_usage_error(cli, cmd_usage(cli), "missing operand");
	if (have > want)
		return cli_usage_error(
		    cli, cmd_usage(cli), "too many operands");
	return 0;
}

/* Read the options of a command that takes none besides --help: 0 to go
 * on, -1 to exit with *code. */
static int
cmd_no_options(struct cli *cli, int argc, char **argv, int *code)
{
	static const struct option longopts[] = {OPT_HELP, {NULL, 0, NULL, 0}};
	int ch;

	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (ch == 'h')
			*code = cmd_help(cli, NULL);
		else
			*code =
			    cli_usage_error(cli, cmd_usage(cli), "bad option");
		return -1;
	}
	return 0;
}

/* ping: ask the broker who it is. */
static int
cmd_ping(struct cli *cli, int argc, char **argv)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Ping ping = ONECARD__V1__PING__INIT;
	int r;

	if (cmd_no_options(cli, argc, argv, &r) == -1)
		return r;
	if ((r = cmd_operands(cli, argc - optind, 0)) != 0)
		return r;
	req.op_case = ONECARD__V1__REQUEST__OP_PING;
	req.ping = &ping;
	return cli_call(cli, &req);
}

/* Most --target options of one lookup (the broker's --max-ids bounds it
 * again). */
#define CMD_MAX_TARGETS 16

/* lookup [--target DOMAIN]... ID: the patient who holds ID. */
static int
cmd_lookup(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"target", required_argument, NULL, 't'}, OPT_HELP,
	    {NULL, 0, NULL, 0}};
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Lookup lookup = ONECARD__V1__LOOKUP__INIT;
	Onecard__V1__Identifier id;
	char buf[IDENT_BUFLEN], *targets[CMD_MAX_TARGETS];
	size_t n = 0;
	int ch, r;

	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 't':
			if (n == CMD_MAX_TARGETS)
				return cli_usage_error(cli, cmd_usage(cli),
				    "--target: at most %d", CMD_MAX_TARGETS);
			if (optarg[0] == '\0' || strchr(optarg, '=') != NULL)
				return cli_usage_error(cli, cmd_usage(cli),
				    "--target: \"%s\" is not a domain (such as "
				    "hosp:XC002)",
				    optarg);
			targets[n++] = optarg;
			break;
		case 'h':
			return cmd_help(cli,
			    "  --target DOMAIN        another hospital's "
			    "domain "
			    "whose numbers you need\n"
			    "                         (hosp:XC002); repeat for "
			    "more. A broker with the\n"
			    "                         minimal disclosure "
			    "profile "
			    "shows other hospitals'\n"
			    "                         numbers only when named "
			    "here\n");
		default:
			return cli_usage_error(
			    cli, cmd_usage(cli), "bad option");
		}
	}
	if ((r = cmd_operands(cli, argc - optind, 1)) != 0 ||
	    (r = cmd_identifier(cli, argv[optind], buf, &id)) != 0)
		return r;
	lookup.identifier = &id;
	lookup.target_domains = targets;
	lookup.n_target_domains = n;
	req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
	req.lookup = &lookup;
	return cli_call(cli, &req);
}

/* unlink ID: remove ID from its patient. */
static int
cmd_unlink(struct cli *cli, int argc, char **argv)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Unlink unlink = ONECARD__V1__UNLINK__INIT;
	Onecard__V1__Identifier id;
	char buf[IDENT_BUFLEN];
	int r;

	if (cmd_no_options(cli, argc, argv, &r) == -1)
		return r;
	if ((r = cmd_operands(cli, argc - optind, 1)) != 0 ||
	    (r = cmd_identifier(cli, argv[optind], buf, &id)) != 0)
		return r;
	unlink.identifier = &id;
	req.op_case = ONECARD__V1__REQUEST__OP_UNLINK;
	req.unlink = &unlink;
	return cli_call(cli, &req);
}

/* link KNOWN ADDED: give the patient KNOWN names the identifier ADDED. */
static int
cmd_link(struct cli *cli, int argc, char **argv)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Link link = ONECARD__V1__LINK__INIT;
	Onecard__V1__Identifier known, added;
	char kbuf[IDENT_BUFLEN], abuf[IDENT_BUFLEN];
	int r;

	if (cmd_no_options(cli, argc, argv, &r) == -1)
		return r;
	if ((r = cmd_operands(cli, argc - optind, 2)) != 0 ||
	    (r = cmd_identifier(cli, argv[optind], kbuf, &known)) != 0 ||
	    (r = cmd_identifier(cli, argv[optind + 1], abuf, &added)) != 0)
		return r;
	link.known = &known;
	link.added = &added;
	req.op_case = ONECARD__V1__REQUEST__OP_LINK;
	req.link = &link;
	return cli_call(cli, &req);
}

/* enroll [demographics] ID...: create the patient or find the one who holds
 * these identifiers. */
static int
cmd_enroll(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
	    OPT_HELP, OPT_DEMOGRAPHICS, {NULL, 0, NULL, 0}};
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Enroll enroll = ONECARD__V1__ENROLL__INIT;
	Onecard__V1__Demographics demo = ONECARD__V1__DEMOGRAPHICS__INIT;
	Onecard__V1__Identifier *ids = NULL, **idp = NULL;
	char *bufs = NULL;
	int ch, r, i, n;

	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (ch == 'h')
			return cmd_help(cli, demographics_help);
		if ((r = cmd_demographic(cli, ch, optarg, &demo)) < 0)
			return -r;
		if (r == 0)
			return cli_usage_error(
			    cli, cmd_usage(cli), "bad option");
	}
	n = argc - optind;
	if (n == 0)
		return cli_usage_error(
		    cli, cmd_usage(cli), "give at least one identifier");
	ids = calloc(n, sizeof *ids);
	idp = calloc(n, sizeof *idp);
	bufs = calloc(n, IDENT_BUFLEN);
	if (ids == NULL || idp == NULL || bufs == NULL) {
		cli_warnx(cli, "out of memory");
		r = EXIT_BROKER;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((r = cmd_identifier(cli, argv[optind + i],
			 bufs + (size_t)i * IDENT_BUFLEN, &ids[i])) != 0)
			goto out;
		idp[i] = &ids[i];
	}
	enroll.demographics = &demo;
	enroll.n_identifiers = n;
	enroll.identifiers = idp;
	req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
	req.enroll = &enroll;
	r = cli_call(cli, &req);
out:
	free(ids);
	free(idp);
	free(bufs);
	return r;
}

/* update ID [demographics] [--expect-version V]: change what is given. */
static int
cmd_update(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {OPT_HELP, OPT_DEMOGRAPHICS,
	    {"expect-version", required_argument, NULL, 'v'},
	    {NULL, 0, NULL, 0}};
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Update update = ONECARD__V1__UPDATE__INIT;
	Onecard__V1__Demographics demo = ONECARD__V1__DEMOGRAPHICS__INIT;
	Onecard__V1__Identifier id;
	char buf[IDENT_BUFLEN], help[1024];
	uint64_t v;
	int ch, r;

	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (ch == 'h') {
			snprintf(help, sizeof help,
			    "%s  --expect-version V     refuse (exit 3) "
			    "unless the record is at version V\n",
			    demographics_help);
			return cmd_help(cli, help);
		}
		if (ch == 'v') {
			if (cmd_parse_uint(optarg, UINT64_MAX, &v) == -1 ||
			    v == 0)
				return cli_usage_error(cli, cmd_usage(cli),
				    "--expect-version: \"%s\" is not a "
				    "version",
				    optarg);
			update.expected_version = v;
			continue;
		}
		if ((r = cmd_demographic(cli, ch, optarg, &demo)) < 0)
			return -r;
		if (r == 0)
			return cli_usage_error(
			    cli, cmd_usage(cli), "bad option");
	}
	if ((r = cmd_operands(cli, argc - optind, 1)) != 0 ||
	    (r = cmd_identifier(cli, argv[optind], buf, &id)) != 0)
		return r;
	if (demo.name[0] == '\0' && demo.phone[0] == '\0' &&
	    demo.address[0] == '\0' && demo.birth_date[0] == '\0' &&
	    demo.sex == ONECARD__V1__SEX__SEX_UNKNOWN)
		return cli_usage_error(
		    cli, cmd_usage(cli), "nothing to update: give a field");
	update.identifier = &id;
	update.demographics = &demo;
	req.op_case = ONECARD__V1__REQUEST__OP_UPDATE;
	req.update = &update;
	return cli_call(cli, &req);
}

/*
 * search [--name] [--birth] [--sex] [--phone] [--id] [--limit] [--exact]:
 * patients by demographics, ranked by how well they match, or with --exact
 * only those that match every field as typed.
 */
static int
cmd_search(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {OPT_HELP,
	    {"name", required_argument, NULL, 'n'},
	    {"birth", required_argument, NULL, 'b'},
	    {"sex", required_argument, NULL, 's'},
	    {"phone", required_argument, NULL, 'p'},
	    {"id", required_argument, NULL, 'i'},
	    {"exact", no_argument, NULL, 'x'},
	    {"limit", required_argument, NULL, 'l'}, {NULL, 0, NULL, 0}};
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Search search = ONECARD__V1__SEARCH__INIT;
	Onecard__V1__Demographics demo = ONECARD__V1__DEMOGRAPHICS__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	char idbuf[IDENT_BUFLEN];
	uint64_t v;
	int ch, r;

	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			return cmd_help(cli,
			    "  --name NAME            name, in characters or "
			    "pinyin\n"
			    "  --birth YYYY-MM-DD     date of birth\n"
			    "  --sex male|female      evidence (--exact: a "
			    "filter)\n"
			    "  --phone PHONE          phone number\n"
			    "  --id DOMAIN=VALUE      its holder comes first\n"
			    "  --limit N              at most N patients "
			    "(default 10, at most 100)\n"
			    "  --exact                only patients matching "
			    "--name, --birth and --sex as typed\n");
		case 'l':
			if (cmd_parse_uint(optarg, UINT32_MAX, &v) == -1)
				return cli_usage_error(cli, cmd_usage(cli),
				    "--limit: \"%s\" is not a number", optarg);
			search.limit = (uint32_t)v;
			break;
		case 'n':
		case 'b':
		case 's':
		case 'p':
			if ((r = cmd_demographic(cli, ch, optarg, &demo)) < 0)
				return -r;
			break;
		case 'i':
			if ((r = cmd_identifier(cli, optarg, idbuf, &id)) != 0)
				return r;
			search.identifier = &id;
			break;
		case 'x':
			search.exact = 1;
			break;
		default:
			return cli_usage_error(
			    cli, cmd_usage(cli), "bad option");
		}
	}
	if ((r = cmd_operands(cli, argc - optind, 0)) != 0)
		return r;
	/* The broker refuses a search on sex alone: say so before asking. */
	if (search.exact && demo.name[0] == '\0' && demo.birth_date[0] == '\0')
		return cli_usage_error(cli, cmd_usage(cli),
		    "--exact: give --name or --birth (--sex only narrows "
		    "them)");
	if (demo.name[0] == '\0' && demo.birth_date[0] == '\0' &&
	    demo.phone[0] == '\0' && search.identifier == NULL)
		return cli_usage_error(cli, cmd_usage(cli),
		    "give --name, --birth, --phone or --id (--sex only "
		    "weighs them)");
	search.name = demo.name;
	search.birth_date = demo.birth_date;
	search.sex = demo.sex;
	search.phone = demo.phone;
	req.op_case = ONECARD__V1__REQUEST__OP_SEARCH;
	req.search = &search;
	return cli_call(cli, &req);
}

/* watch [--from SEQ | --state FILE] [--exec CMD]: the registry's events as
 * they come (watch.c). */
static int
cmd_watch(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {OPT_HELP,
	    {"from", required_argument, NULL, 'f'},
	    {"state", required_argument, NULL, 'S'},
	    {"exec", required_argument, NULL, 'x'}, {NULL, 0, NULL, 0}};
	struct watch_opts o;
	int ch, r;

	memset(&o, 0, sizeof o);
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			return cmd_help(cli,
			    "  --from SEQ      the events after SEQ (0: all "
			    "the broker keeps);\n"
			    "                  default: those from now on\n"
			    "  --state FILE    resume after the seq FILE "
			    "holds, "
			    "and keep it there;\n"
			    "                  no FILE: start from now and "
			    "make "
			    "it\n"
			    "  --exec CMD      run CMD with /bin/sh for each "
			    "event, its JSON on stdin;\n"
			    "                  an event whose CMD fails is "
			    "tried again, not passed\n"
			    "  --json          one JSON object per line\n"
			    "\nRuns until SIGINT or SIGTERM (exit 0); "
			    "reconnects by itself, resuming\n"
			    "after the last event handled. Exit 7: the events "
			    "to resume from are no\n"
			    "longer kept (resync with lookups).\n");
		case 'f':
			if (cmd_parse_uint(optarg, UINT64_MAX, &o.from) == -1)
				return cli_usage_error(cli, cmd_usage(cli),
				    "--from: \"%s\" is not an event seq (a "
				    "number)",
				    optarg);
			o.have_from = 1;
			break;
		case 'S':
			if (optarg[0] == '\0')
				return cli_usage_error(cli, cmd_usage(cli),
				    "--state: give a file name");
			o.state = optarg;
			break;
		case 'x':
			if (optarg[0] == '\0')
				return cli_usage_error(cli, cmd_usage(cli),
				    "--exec: give a command");
			o.exec = optarg;
			break;
		default:
			return cli_usage_error(
			    cli, cmd_usage(cli), "bad option");
		}
	}
	if ((r = cmd_operands(cli, argc - optind, 0)) != 0)
		return r;
	if (o.have_from && o.state != NULL)
		return cli_usage_error(cli, cmd_usage(cli),
		    "--from and --state do not go together: the state file "
		    "says where to resume");
	return watch_run(cli, &o);
}

const struct cli_command cli_commands[] = {
    {"ping", cmd_ping, "",
	"Check the broker answers; print its node and "
	"version."},
    {"lookup", cmd_lookup, "[--target DOMAIN]... ID",
	"Print the patient who holds ID (merges are followed)."},
    {"enroll", cmd_enroll,
	"[--name N] [--sex male|female] [--birth YYYY-MM-DD] [--phone P] "
	"[--address A] ID...",
	"Register a patient, or link the identifiers to the one who holds "
	"some."},
    {"link", cmd_link, "KNOWN ADDED",
	"Add identifier ADDED to the patient identifier KNOWN names."},
    {"unlink", cmd_unlink, "ID", "Remove identifier ID from its patient."},
    {"update", cmd_update,
	"ID [--name N] [--sex male|female] [--birth YYYY-MM-DD] [--phone P] "
	"[--address A]\n       [--expect-version V]",
	"Change a patient's demographics; fields not given keep their value."},
    {"search", cmd_search,
	"[--name N] [--birth YYYY-MM-DD] [--sex male|female] [--phone P] "
	"[--id DOMAIN=VALUE] [--limit N] [--exact]",
	"Find patients ranked by how well they match, best first; with "
	"--exact, those matching every field as typed."},
    {"watch", cmd_watch, "[--from SEQ | --state FILE] [--exec CMD]",
	"Print the registry's changes as they happen, one event a line."},
    {NULL, NULL, NULL, NULL},
};
