/*
 * cli.h: what the files of the onecard desk CLI share.
 *
 * onecard.c reads the global options, connects and maps outcomes to exit
 * codes; cmd.c holds one function per command; print.c prints a reply as
 * text for a person or as one JSON object for a script.
 */
#ifndef ONECARD_CLI_H
#define ONECARD_CLI_H

#include <stdio.h>

#include "cli_common.h"
#include "onecard.h"

/* Exit codes (the shared table, docs/cli.md). */
#define EXIT_FOUND     CLI_EXIT_OK
#define EXIT_NOTFOUND  CLI_EXIT_NO
#define EXIT_USAGE     CLI_EXIT_USAGE
#define EXIT_REFUSED   CLI_EXIT_REFUSED
#define EXIT_TRANSPORT CLI_EXIT_CONNECT
#define EXIT_BROKER    CLI_EXIT_BROKER

struct cli {
	struct cli_globals g; /* connection settings, --json */
	int json;
	const char *cmd; /* the command's name, for messages */
};

/* onecard.c */
/* Print "onecard: CMD: message" to stderr. */
void cli_warnx(struct cli *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
/* Report a usage error for the command; returns EXIT_USAGE. */
int cli_usage_error(struct cli *, const char *usage, const char *, ...)
    __attribute__((format(printf, 3, 4)));
/* Connect, send req, print the reply; the exit code. */
int cli_call(struct cli *, Onecard__V1__Request *);

/* cmd.c */
struct cli_command {
	const char *name;
	int (*fn)(struct cli *, int, char **);
	const char *usage; /* options and operands after the name */
	const char *help;  /* one line on what it does */
};
extern const struct cli_command cli_commands[];

/* print.c */
/* Print a successful reply, as text or JSON. */
void print_reply(struct cli *, FILE *, const Onecard__V1__Reply *);
/* Print s for a terminal: control characters become '?'. */
void print_text(FILE *, const char *);

#endif
