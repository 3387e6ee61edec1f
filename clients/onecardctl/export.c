/*
 * export.c: onecardctl export, every live patient as import CSV.
 *
 * Pages through the registry with the Export op (patient_id order, each page
 * starting after the last patient_id of the one before) on one connection,
 * and writes each patient in the format import reads, so an export imports
 * into an empty registry as the same patients. Merged-away records are not
 * live and are not exported. With --json each patient is one line of JSON
 * in the shape every onecard client prints.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "ctl.h"

#define EXPORT_PAGE 1000

static void
export_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: onecardctl export [--out FILE] [--json]\n"
	    "Write every live patient as import CSV (docs/csv.md) to "
	    "FILE or stdout;\nwith --json, one patient object a line "
	    "instead.\n");
}

/*
 * Write one patient as CSV records; -1 when out of memory. A patient with
 * more identifiers than a row may hold (merges add up) takes several rows,
 * each after the first repeating the first identifier, so import links them
 * to the one patient again.
 */
static int
export_patient(FILE *fp, const Onecard__V1__Patient *p)
{
	static const Onecard__V1__Demographics none =
	    ONECARD__V1__DEMOGRAPHICS__INIT;
	const Onecard__V1__Demographics *d =
	    p->demographics != NULL ? p->demographics : &none;
	char *ids = NULL;
	size_t idslen = 0, i = 0, n;
	FILE *mem;

	do {
		if ((mem = open_memstream(&ids, &idslen)) == NULL)
			return -1;
		n = 0;
		if (i > 0) {
			fprintf(mem, "%s=%s", p->identifiers[0]->domain,
			    p->identifiers[0]->value);
			n++;
		}
		for (; i < p->n_identifiers && n < CSV_MAX_IDS; i++, n++)
			fprintf(mem, "%s%s=%s", n > 0 ? ";" : "",
			    p->identifiers[i]->domain,
			    p->identifiers[i]->value);
		if (fclose(mem) != 0) {
			free(ids);
			return -1;
		}
		csv_write_field(fp, d->name);
		putc(',', fp);
		fputs(d->sex == ONECARD__V1__SEX__SEX_MALE       ? "M"
			: d->sex == ONECARD__V1__SEX__SEX_FEMALE ? "F"
								 : "",
		    fp);
		putc(',', fp);
		csv_write_field(fp, d->birth_date);
		putc(',', fp);
		csv_write_field(fp, d->phone);
		putc(',', fp);
		csv_write_field(fp, d->address);
		putc(',', fp);
		csv_write_field(fp, ids);
		putc('\n', fp);
		free(ids);
		ids = NULL;
	} while (i < p->n_identifiers);
	return 0;
}

int
ctl_export(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"out", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Export ex = ONECARD__V1__EXPORT__INIT;
	Onecard__V1__Reply *reply = NULL;
	Onecard__V1__SearchResult *page;
	struct onecard_conn *conn = NULL;
	const char *out = NULL;
	char after[256] = "";
	unsigned long n = 0;
	size_t i;
	int ch, rc = CTL_EXIT_CONNECT;
	FILE *fp = stdout;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'o':
			out = optarg;
			break;
		case 'h':
			export_usage(stdout);
			return CTL_EXIT_OK;
		default:
			export_usage(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		export_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if ((rc = ctl_connect(&conn)) != CTL_EXIT_OK)
		return rc;
	if (out != NULL && (fp = fopen(out, "w")) == NULL) {
		fprintf(stderr, "onecardctl export: %s: %s\n", out,
		    strerror(errno));
		onecard_close(conn);
		return CTL_EXIT_USAGE;
	}
	setvbuf(fp, NULL, _IOFBF, 1 << 20);
	req.op_case = ONECARD__V1__REQUEST__OP_EXPORT;
	req.export = &ex;
	ex.limit = EXPORT_PAGE;
	for (;;) {
		ex.after_patient_id = after;
		req.id = 0;
		if (onecard_call(conn, &req, &reply) != ONECARD_OK) {
			fprintf(stderr, "onecardctl export: %s\n",
			    onecard_last_error(conn));
			goto done;
		}
		if (reply->code != ONECARD__V1__CODE__OK) {
			rc = ctl_refused("export", reply->code, reply->message);
			goto done;
		}
		if (n == 0 && !ctl_g.json) /* the broker said yes */
			fputs(CSV_HEADER "\n", fp);
		if (reply->result_case != ONECARD__V1__REPLY__RESULT_SEARCH ||
		    reply->search->n_patients == 0)
			break;
		page = reply->search;
		for (i = 0; i < page->n_patients; i++) {
			if (ctl_g.json) {
				cli_json_patient(fp, page->patients[i]);
				putc('\n', fp);
			} else if (export_patient(fp, page->patients[i]) ==
			    -1) {
				fprintf(stderr,
				    "onecardctl export: out of memory\n");
				goto done;
			}
			n++;
		}
		snprintf(after, sizeof(after), "%s",
		    page->patients[page->n_patients - 1]->patient_id);
		onecard_reply_free(reply);
		reply = NULL;
	}
	if (fflush(fp) != 0 || ferror(fp)) {
		fprintf(stderr, "onecardctl export: %s: %s\n",
		    out != NULL ? out : "stdout", strerror(errno));
		rc = CTL_EXIT_USAGE;
		goto done;
	}
	fprintf(stderr, "onecardctl export: %lu patients%s%s\n", n,
	    out != NULL ? " to " : "", out != NULL ? out : "");
	rc = CTL_EXIT_OK;
done:
	if (reply != NULL)
		onecard_reply_free(reply);
	onecard_close(conn);
	if (fp != stdout && fclose(fp) != 0 && rc == CTL_EXIT_OK) {
		fprintf(stderr, "onecardctl export: %s: %s\n", out,
		    strerror(errno));
		rc = CTL_EXIT_USAGE;
	}
	return rc;
}
