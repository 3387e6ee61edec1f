/*
 * ctl.h: what the onecardctl subcommands share.
 *
 * The connection flags (--broker --cert --key --ca, ONECARD_* otherwise),
 * --json, one blocking call with the broker's answer turned into a clear
 * message, and the printers for patients and events. Exit codes are the same
 * for every subcommand (CTL_EXIT_*).
 */
#ifndef ONECARD_CTL_H
#define ONECARD_CTL_H

#include <stdio.h>

#include "onecard.h"

#define CTL_EXIT_OK      0 /* done */
#define CTL_EXIT_REFUSED 1 /* the broker said no, or rows were rejected */
#define CTL_EXIT_USAGE   2 /* bad command line or input file */
#define CTL_EXIT_CONNECT 3 /* the broker could not be reached or talked to */

struct ctl_global {
	const char *broker;
	const char *cert;
	const char *key;
	const char *ca;
	int json;
};
extern struct ctl_global ctl_g;

/* onecardctl.c */
/* Connection options from the flags, then ONECARD_* for what is unset. */
void ctl_options(struct onecard_options *opt);
/* Connect as the flags say; -1 after telling why. */
int ctl_connect(struct onecard_conn **out);
/* A Reply.code in words ("permission denied"). */
const char *ctl_code_name(int code);
/* Tell a person why the broker refused `what` (names our CN when it
 * matters). */
void ctl_refused(const char *what, int code, const char *message);
/* Connect, send req, wait for the reply; CTL_EXIT_OK with *reply set
 * (free with onecard_reply_free), else the exit code, already told. */
int ctl_call(
    const char *what, Onecard__V1__Request *req, Onecard__V1__Reply **reply);
/* Parse DOMAIN=VALUE into id (strings in buf); -1 after telling why. */
int ctl_id_parse(const char *what, const char *s, char *buf, size_t len,
    Onecard__V1__Identifier *id);
/* Is -h or --help among the arguments? */
int ctl_help_wanted(int argc, char **argv);
/* Write s as a JSON string. */
void ctl_json_str(FILE *fp, const char *s);
/* Print a patient as text or, with --json, one JSON object. */
void ctl_print_patient(const Onecard__V1__Patient *p);
/* Print events one a line, as text or JSON. */
void ctl_print_events(Onecard__V1__Event **ev, size_t n);

/* hospital.c */
int ctl_hospital(int argc, char **argv);

/* patient.c */
int ctl_patient(int argc, char **argv);
int ctl_merge(int argc, char **argv);
int ctl_unmerge(int argc, char **argv);
int ctl_stats(int argc, char **argv);

/* import.c */
int ctl_import(int argc, char **argv);

/* export.c */
int ctl_export(int argc, char **argv);

#endif
