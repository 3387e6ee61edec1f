/*
 * print.c: how the onecard desk CLI shows a reply.
 *
 * Text for a person: one "field: value" line each, control characters from
 * the registry replaced so a name can never drive the desk's terminal. JSON
 * for a script: exactly one object per run, every string escaped (quotes,
 * backslashes, control characters), UTF-8 passed through as is.
 */
#include <inttypes.h>
#include <stdio.h>

#include "cli.h"

void
print_text(FILE *f, const char *s)
{
	const unsigned char *p;

	for (p = (const unsigned char *)s; p != NULL && *p != '\0'; p++)
		fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, f);
}

/* Print "label: value" when value is not empty. */
static void
print_field(FILE *f, const char *indent, const char *label, const char *value)
{
	if (value == NULL || value[0] == '\0')
		return;
	fprintf(f, "%s%-12s ", indent, label);
	print_text(f, value);
	fputc('\n', f);
}

/* Print a patient as text, each line starting with indent. */
static void
print_patient_text(FILE *f, const char *indent, const Onecard__V1__Patient *p)
{
	const Onecard__V1__Demographics *d = p->demographics;
	char version[32];
	size_t i;

	print_field(f, indent, "patient:", p->patient_id);
	if (d != NULL) {
		print_field(f, indent, "name:", d->name);
		if (d->sex != ONECARD__V1__SEX__SEX_UNKNOWN)
			print_field(f, indent, "sex:", cli_sex_name(d->sex));
		print_field(f, indent, "birth date:", d->birth_date);
		print_field(f, indent, "phone:", d->phone);
		print_field(f, indent, "address:", d->address);
	}
	snprintf(version, sizeof version, "%" PRIu64, p->version);
	print_field(f, indent, "version:", version);
	print_field(f, indent, "merged into:", p->merged_into);
	for (i = 0; i < p->n_identifiers; i++) {
		fprintf(f, "%s%-12s ", indent, "identifier:");
		print_text(f, p->identifiers[i]->domain);
		fputc('=', f);
		print_text(f, p->identifiers[i]->value);
		fputc('\n', f);
	}
}

/* A match grade as the CLIs spell it. */
static const char *
print_grade(int grade)
{
	switch (grade) {
	case ONECARD__V1__MATCH_GRADE__MATCH_CERTAIN:
		return "certain";
	case ONECARD__V1__MATCH_GRADE__MATCH_PROBABLE:
		return "probable";
	case ONECARD__V1__MATCH_GRADE__MATCH_POSSIBLE:
		return "possible";
	default:
		return "unspecified";
	}
}

/* Print an enroll result. */
static void
print_enrolled(struct cli *cli, FILE *f, const Onecard__V1__EnrollResult *e)
{
	size_t i;

	if (cli->json) {
		fprintf(f, "{\"created\":%s,\"patient\":",
		    e->created ? "true" : "false");
		if (e->patient != NULL)
			cli_json_patient(f, e->patient);
		else
			fputs("null", f);
		fputs(",\"possible_duplicates\":[", f);
		for (i = 0; i < e->n_possible_duplicates; i++) {
			fputs(i > 0 ? ",{\"patient_id\":" : "{\"patient_id\":",
			    f);
			cli_json_string(
			    f, e->possible_duplicates[i]->patient_id);
			fputs(",\"reason\":", f);
			cli_json_string(f, e->possible_duplicates[i]->reason);
			fprintf(f, ",\"score\":%.4f,\"grade\":\"%s\"}",
			    e->possible_duplicates[i]->score,
			    print_grade(e->possible_duplicates[i]->grade));
		}
		fputs("]}\n", f);
		return;
	}
	fprintf(f, "%-12s %s\n", "created:", e->created ? "yes" : "no");
	if (e->patient != NULL)
		print_patient_text(f, "", e->patient);
	for (i = 0; i < e->n_possible_duplicates; i++) {
		fprintf(f, "%-12s ", "duplicate?");
		print_text(f, e->possible_duplicates[i]->patient_id);
		fprintf(f, " %s %.3f (",
		    print_grade(e->possible_duplicates[i]->grade),
		    e->possible_duplicates[i]->score);
		print_text(f, e->possible_duplicates[i]->reason);
		fputs(")\n", f);
	}
}

/* Print a search result. */
static void
print_search(struct cli *cli, FILE *f, const Onecard__V1__SearchResult *s)
{
	size_t i;

	if (cli->json) {
		fputs("{\"patients\":[", f);
		for (i = 0; i < s->n_patients; i++) {
			if (i > 0)
				fputc(',', f);
			cli_json_patient(f, s->patients[i]);
		}
		/* Ranked: how each of the same patients matched. */
		fputs("],\"matches\":[", f);
		for (i = 0; i < s->n_matches; i++) {
			const Onecard__V1__Match *m = s->matches[i];

			fputs(i > 0 ? ",{\"patient_id\":" : "{\"patient_id\":",
			    f);
			cli_json_string(
			    f, m->patient ? m->patient->patient_id : "");
			fprintf(f,
			    ",\"score\":%.4f,\"grade\":\"%s\",\"reason\":",
			    m->score, print_grade(m->grade));
			cli_json_string(f, m->reason);
			fputc('}', f);
		}
		fputs("]}\n", f);
		return;
	}
	fprintf(
	    f, "%zu patient%s\n", s->n_patients, s->n_patients == 1 ? "" : "s");
	for (i = 0; i < s->n_patients; i++) {
		fputc('\n', f);
		if (i < s->n_matches) {
			fprintf(f, "%-12s %s %.3f (",
			    "match:", print_grade(s->matches[i]->grade),
			    s->matches[i]->score);
			print_text(f, s->matches[i]->reason);
			fputs(")\n", f);
		}
		print_patient_text(f, "", s->patients[i]);
	}
}

void
print_reply(struct cli *cli, FILE *f, const Onecard__V1__Reply *reply)
{
	switch (reply->result_case) {
	case ONECARD__V1__REPLY__RESULT_PONG:
		if (cli->json) {
			fputs("{\"node\":", f);
			cli_json_string(f, reply->pong->node);
			fputs(",\"version\":", f);
			cli_json_string(f, reply->pong->version);
			fputs("}\n", f);
		} else {
			fputs("pong from ", f);
			print_text(f, reply->pong->node);
			fputs(" (onecardd ", f);
			print_text(f, reply->pong->version);
			fputs(")\n", f);
		}
		break;
	case ONECARD__V1__REPLY__RESULT_PATIENT:
		if (cli->json) {
			cli_json_patient(f, reply->patient);
			fputc('\n', f);
		} else {
			print_patient_text(f, "", reply->patient);
		}
		break;
	case ONECARD__V1__REPLY__RESULT_ENROLLED:
		print_enrolled(cli, f, reply->enrolled);
		break;
	case ONECARD__V1__REPLY__RESULT_SEARCH:
		print_search(cli, f, reply->search);
		break;
	default:
		if (cli->json)
			fputs("{}\n", f);
		else
			fputs("ok\n", f);
		break;
	}
}

void
print_event(struct cli *cli, FILE *f, const Onecard__V1__Event *ev)
{
	char when[40];

	if (cli->json) {
		cli_json_event(f, ev);
		fputc('\n', f);
		return;
	}
	/* seq, time, op, patient, the other patient, actor, detail. */
	cli_time_rfc3339(ev->time_ms, when, sizeof when);
	fprintf(f, "%" PRIu64 "  %s  ", ev->seq, when);
	print_text(f, ev->op);
	fputs("  ", f);
	print_text(f, ev->patient_id[0] != '\0' ? ev->patient_id : "-");
	fputs("  ", f);
	print_text(
	    f, ev->other_patient_id[0] != '\0' ? ev->other_patient_id : "-");
	fputs("  ", f);
	print_text(f, ev->actor);
	if (ev->detail[0] != '\0') {
		fputs("  ", f);
		print_text(f, ev->detail);
	}
	fputc('\n', f);
}
