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

#include "cli_common.h"
#include "onecard.h"

/* The shared exit codes (docs/cli.md). */
#define CTL_EXIT_OK      CLI_EXIT_OK
#define CTL_EXIT_USAGE   CLI_EXIT_USAGE   /* bad command line or file */
#define CTL_EXIT_CONNECT CLI_EXIT_CONNECT /* broker not reached or lost */
#define CTL_EXIT_BROKER  CLI_EXIT_BROKER  /* the broker answered oddly */
#define CTL_EXIT_PARTIAL CLI_EXIT_PARTIAL /* import: some rows rejected */

/* The global options (--json, the connection settings). */
extern struct cli_globals ctl_g;

/* onecardctl.c */
/* Connection options: flags, profile, ONECARD_*; -1 after telling why. */
int ctl_options(struct onecard_options *opt);
/* Connect as the settings say: CTL_EXIT_OK, else the exit code, told. */
int ctl_connect(struct onecard_conn **out);
/* A Reply.code in words ("permission denied"). */
const char *ctl_code_name(int code);
/* Tell a person why the broker refused `what` (names our CN when it
 * matters; with --json also the error object on stdout); the exit code. */
int ctl_refused(const char *what, int code, const char *message);
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

/* duplicates.c */
int ctl_duplicates(int argc, char **argv);

/* import.c */
int ctl_import(int argc, char **argv);

/* export.c */
int ctl_export(int argc, char **argv);

/* backup.c */
int ctl_backup(int argc, char **argv);

#endif
