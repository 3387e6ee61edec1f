/*
 * patient.c: onecardctl patient show|history, merge, unmerge and stats.
 *
 * The administrator's view of single records and of the whole registry. An
 * identifier on the command line is DOMAIN=VALUE (pid=... names a record by
 * its patient_id); the broker validates it and follows merges. Each command is
 * one blocking request.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#define PATIENT_ID_MAX 512

static void
patient_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: onecardctl patient show DOMAIN=VALUE\n"
	    "       onecardctl patient history DOMAIN=VALUE [--limit N]\n"
	    "DOMAIN is cn-id, cn-ssc, hosp:CODE or pid (the patient_id).\n");
}

/* patient show ID */
static int
patient_show(int argc, char **argv)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Lookup lookup = ONECARD__V1__LOOKUP__INIT;
	Onecard__V1__Identifier id;
	Onecard__V1__Reply *reply;
	char buf[PATIENT_ID_MAX];
	int rc;

	if (argc != 2) {
		patient_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if (ctl_id_parse("patient show", argv[1], buf, sizeof(buf), &id) == -1)
		return CTL_EXIT_USAGE;
	lookup.identifier = &id;
	req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
	req.lookup = &lookup;
	if ((rc = ctl_call("patient show", &req, &reply)) != CTL_EXIT_OK)
		return rc;
	if (reply->result_case == ONECARD__V1__REPLY__RESULT_PATIENT)
		ctl_print_patient(reply->patient);
	onecard_reply_free(reply);
	return CTL_EXIT_OK;
}

/* patient history ID [--limit N] */
static int
patient_history(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"limit", required_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__History hist = ONECARD__V1__HISTORY__INIT;
	Onecard__V1__Identifier id;
	Onecard__V1__Reply *reply;
	char buf[PATIENT_ID_MAX], *end;
	unsigned long limit;
	int ch, rc;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'l':
			limit = strtoul(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' ||
			    limit > 0xffffffffUL) {
				fprintf(stderr,
				    "onecardctl patient history: bad limit "
				    "\"%s\"\n",
				    optarg);
				return CTL_EXIT_USAGE;
			}
			hist.limit = (uint32_t)limit;
			break;
		case 'h':
			patient_usage(stdout);
			return CTL_EXIT_OK;
		default:
			patient_usage(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc) {
		patient_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if (ctl_id_parse(
		"patient history", argv[optind], buf, sizeof(buf), &id) == -1)
		return CTL_EXIT_USAGE;
	hist.identifier = &id;
	req.op_case = ONECARD__V1__REQUEST__OP_HISTORY;
	req.history = &hist;
	if ((rc = ctl_call("patient history", &req, &reply)) != CTL_EXIT_OK)
		return rc;
	if (reply->result_case == ONECARD__V1__REPLY__RESULT_HISTORY)
		ctl_print_events(
		    reply->history->events, reply->history->n_events);
	onecard_reply_free(reply);
	return CTL_EXIT_OK;
}

int
ctl_patient(int argc, char **argv)
{
	if (argc < 2) {
		patient_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if (strcmp(argv[1], "history") == 0)
		return patient_history(argc - 1, argv + 1);
	if (ctl_help_wanted(argc, argv)) {
		patient_usage(stdout);
		return CTL_EXIT_OK;
	}
	if (strcmp(argv[1], "show") == 0)
		return patient_show(argc - 1, argv + 1);
	fprintf(
	    stderr, "onecardctl patient: unknown command \"%s\"\n", argv[1]);
	patient_usage(stderr);
	return CTL_EXIT_USAGE;
}

int
ctl_merge(int argc, char **argv)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Merge merge = ONECARD__V1__MERGE__INIT;
	Onecard__V1__Identifier surv, dup;
	Onecard__V1__Reply *reply;
	char b1[PATIENT_ID_MAX], b2[PATIENT_ID_MAX];
	int rc;

	if (ctl_help_wanted(argc, argv) || argc != 3) {
		int help = ctl_help_wanted(argc, argv);

		fprintf(help ? stdout : stderr,
		    "usage: onecardctl merge SURVIVOR DUPLICATE\n"
		    "Fold DUPLICATE's identifiers into SURVIVOR (each "
		    "DOMAIN=VALUE);\n'onecardctl unmerge' undoes it.\n");
		return help ? CTL_EXIT_OK : CTL_EXIT_USAGE;
	}
	if (ctl_id_parse("merge", argv[1], b1, sizeof(b1), &surv) == -1 ||
	    ctl_id_parse("merge", argv[2], b2, sizeof(b2), &dup) == -1)
		return CTL_EXIT_USAGE;
	merge.survivor = &surv;
	merge.duplicate = &dup;
	req.op_case = ONECARD__V1__REQUEST__OP_MERGE;
	req.merge = &merge;
	if ((rc = ctl_call("merge", &req, &reply)) != CTL_EXIT_OK)
		return rc;
	if (reply->result_case == ONECARD__V1__REPLY__RESULT_PATIENT)
		ctl_print_patient(reply->patient);
	onecard_reply_free(reply);
	return CTL_EXIT_OK;
}

int
ctl_unmerge(int argc, char **argv)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Unmerge un = ONECARD__V1__UNMERGE__INIT;
	Onecard__V1__Reply *reply;
	int rc;

	if (ctl_help_wanted(argc, argv) || argc != 2) {
		int help = ctl_help_wanted(argc, argv);

		fprintf(help ? stdout : stderr,
		    "usage: onecardctl unmerge PATIENT_ID\n"
		    "Restore the merged-away patient PATIENT_ID exactly as it "
		    "was.\n");
		return help ? CTL_EXIT_OK : CTL_EXIT_USAGE;
	}
	/* Accept the pid=... spelling that patient show takes, too. */
	un.patient_id = argv[1];
	if (strncmp(un.patient_id, "pid=", 4) == 0)
		un.patient_id += 4;
	req.op_case = ONECARD__V1__REQUEST__OP_UNMERGE;
	req.unmerge = &un;
	if ((rc = ctl_call("unmerge", &req, &reply)) != CTL_EXIT_OK)
		return rc;
	if (reply->result_case == ONECARD__V1__REPLY__RESULT_PATIENT)
		ctl_print_patient(reply->patient);
	onecard_reply_free(reply);
	return CTL_EXIT_OK;
}

/* Print the registry-wide domains (hosp == 0) or the per-hospital ones. */
static void
stats_print_domains(const Onecard__V1__StatsResult *s, int hosp)
{
	const char *d;
	size_t i;
	int first = 1;

	for (i = 0; i < s->n_by_domain; i++) {
		d = s->by_domain[i]->domain;
		if ((strncmp(d, "hosp:", 5) == 0) != hosp)
			continue;
		if (first)
			printf("%s\n",
			    hosp ? "visit cards per hospital:"
				 : "identifiers by domain:");
		first = 0;
		printf("  %-16s %llu\n", hosp ? d + 5 : d,
		    (unsigned long long)s->by_domain[i]->count);
	}
}

int
ctl_stats(int argc, char **argv)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Stats stats = ONECARD__V1__STATS__INIT;
	Onecard__V1__Reply *reply;
	Onecard__V1__StatsResult *s;
	size_t i;
	int rc;

	if (ctl_help_wanted(argc, argv) || argc != 1) {
		int help = ctl_help_wanted(argc, argv);

		fprintf(help ? stdout : stderr,
		    "usage: onecardctl stats\nPatients, identifiers by domain "
		    "(hosp:CODE per hospital), merges and events.\n");
		return help ? CTL_EXIT_OK : CTL_EXIT_USAGE;
	}
	req.op_case = ONECARD__V1__REQUEST__OP_STATS;
	req.stats = &stats;
	if ((rc = ctl_call("stats", &req, &reply)) != CTL_EXIT_OK)
		return rc;
	if (reply->result_case != ONECARD__V1__REPLY__RESULT_STATS) {
		fprintf(
		    stderr, "onecardctl: stats: the broker sent no stats\n");
		onecard_reply_free(reply);
		return CTL_EXIT_BROKER;
	}
	s = reply->stats;
	if (ctl_g.json) {
		printf(
		    "{\"patients\":%llu,\"identifiers\":%llu,\"merges\":%llu,"
		    "\"events\":%llu,\"by_domain\":{",
		    (unsigned long long)s->patients,
		    (unsigned long long)s->identifiers,
		    (unsigned long long)s->merges,
		    (unsigned long long)s->events);
		for (i = 0; i < s->n_by_domain; i++) {
			printf("%s", i > 0 ? "," : "");
			ctl_json_str(stdout, s->by_domain[i]->domain);
			printf(":%llu",
			    (unsigned long long)s->by_domain[i]->count);
		}
		printf("}}\n");
	} else {
		printf("patients     %llu\n", (unsigned long long)s->patients);
		printf(
		    "identifiers  %llu\n", (unsigned long long)s->identifiers);
		printf("merges       %llu\n", (unsigned long long)s->merges);
		printf("events       %llu\n", (unsigned long long)s->events);
		stats_print_domains(s, 0);
		stats_print_domains(s, 1);
	}
	onecard_reply_free(reply);
	return CTL_EXIT_OK;
}
