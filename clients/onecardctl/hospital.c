/*
 * hospital.c: onecardctl hospital add|list|revoke.
 *
 * A hospital is registered under the CN of its client certificate; adding one
 * lets that certificate in, revoking it closes its connections at once. The
 * broker checks codes and names; this file only builds the requests and
 * prints what comes back.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static void
hospital_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: onecardctl hospital add CODE --name NAME [--admin]\n"
	    "       onecardctl hospital list\n"
	    "       onecardctl hospital revoke CODE\n"
	    "CODE is the CN of the hospital's client certificate; "
	    "--admin registers\nan administrator instead of a "
	    "hospital.\n");
}

/* hospital add CODE --name NAME [--admin] */
static int
hospital_add(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"name", required_argument, NULL, 'n'},
	    {"admin", no_argument, NULL, 'a'}, {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__HospitalAdd add = ONECARD__V1__HOSPITAL_ADD__INIT;
	Onecard__V1__Reply *reply;
	const char *name = NULL;
	int ch, rc;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			name = optarg;
			break;
		case 'a':
			add.role = ONECARD__V1__ROLE__ROLE_ADMIN;
			break;
		case 'h':
			hospital_usage(stdout);
			return CTL_EXIT_OK;
		default:
			hospital_usage(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc || name == NULL) {
		hospital_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	add.code = argv[optind];
	add.name = (char *)name;
	req.op_case = ONECARD__V1__REQUEST__OP_HOSPITAL_ADD;
	req.hospital_add = &add;
	if ((rc = ctl_call("hospital add", &req, &reply)) != CTL_EXIT_OK)
		return rc;
	if (ctl_g.json) {
		printf("{\"code\":");
		ctl_json_str(stdout, add.code);
		printf(",\"added\":true}\n");
	} else
		printf("added %s %s\n",
		    add.role == ONECARD__V1__ROLE__ROLE_ADMIN ? "admin"
							      : "hospital",
		    add.code);
	onecard_reply_free(reply);
	return CTL_EXIT_OK;
}

/* hospital list */
static int
hospital_list(int argc, char **argv)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__HospitalList list = ONECARD__V1__HOSPITAL_LIST__INIT;
	Onecard__V1__Reply *reply;
	Onecard__V1__Hospital *h;
	size_t i, n = 0;
	int rc;

	if (argc != 1) {
		hospital_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	req.op_case = ONECARD__V1__REQUEST__OP_HOSPITAL_LIST;
	req.hospital_list = &list;
	if ((rc = ctl_call("hospital list", &req, &reply)) != CTL_EXIT_OK)
		return rc;
	if (reply->result_case == ONECARD__V1__REPLY__RESULT_HOSPITALS)
		n = reply->hospitals->n_hospitals;
	if (ctl_g.json)
		printf("[");
	else
		printf(
		    "%-16s %-8s %-8s %s\n", "CODE", "ROLE", "STATUS", "NAME");
	for (i = 0; i < n; i++) {
		h = reply->hospitals->hospitals[i];
		if (ctl_g.json) {
			printf("%s{\"code\":", i > 0 ? "," : "");
			ctl_json_str(stdout, h->code);
			printf(",\"name\":");
			ctl_json_str(stdout, h->name);
			printf(",\"role\":\"%s\",\"active\":%s}",
			    h->role == ONECARD__V1__ROLE__ROLE_ADMIN
				? "admin"
				: "hospital",
			    h->active ? "true" : "false");
			continue;
		}
		printf("%-16s %-8s %-8s %s\n", h->code,
		    h->role == ONECARD__V1__ROLE__ROLE_ADMIN ? "admin"
							     : "hospital",
		    h->active ? "active" : "revoked", h->name);
	}
	if (ctl_g.json)
		printf("]\n");
	onecard_reply_free(reply);
	return CTL_EXIT_OK;
}

/* hospital revoke CODE */
static int
hospital_revoke(int argc, char **argv)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__HospitalRevoke rev = ONECARD__V1__HOSPITAL_REVOKE__INIT;
	Onecard__V1__Reply *reply;
	int rc;

	if (argc != 2) {
		hospital_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	rev.code = argv[1];
	req.op_case = ONECARD__V1__REQUEST__OP_HOSPITAL_REVOKE;
	req.hospital_revoke = &rev;
	if ((rc = ctl_call("hospital revoke", &req, &reply)) != CTL_EXIT_OK)
		return rc;
	if (ctl_g.json) {
		printf("{\"code\":");
		ctl_json_str(stdout, rev.code);
		printf(",\"revoked\":true}\n");
	} else
		printf("revoked %s\n", rev.code);
	onecard_reply_free(reply);
	return CTL_EXIT_OK;
}

int
ctl_hospital(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		hospital_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
	}
	if (strcmp(argv[1], "add") == 0)
		return hospital_add(argc - 1, argv + 1);
	if (ctl_help_wanted(argc, argv)) {
		hospital_usage(stdout);
		return CTL_EXIT_OK;
	}
	if (strcmp(argv[1], "list") == 0)
		return hospital_list(argc - 1, argv + 1);
	if (strcmp(argv[1], "revoke") == 0)
		return hospital_revoke(argc - 1, argv + 1);
	fprintf(
	    stderr, "onecardctl hospital: unknown command \"%s\"\n", argv[1]);
	hospital_usage(stderr);
	return CTL_EXIT_USAGE;
}
