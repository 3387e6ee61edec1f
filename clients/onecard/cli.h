/*
 * cli.h: what the files of the onecard desk CLI share.
 *
 * onecard.c reads the global options, connects and maps outcomes to exit
 * codes; cmd.c holds one function per command; print.c prints a reply as
 * text for a person or as one JSON object for a script. watch.c follows the
 * registry's events (`onecard watch`), watch_state.c keeps its place.
 */
#ifndef ONECARD_CLI_H
#define ONECARD_CLI_H

#include <stdint.h>
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
#define EXIT_RESYNC    CLI_EXIT_RESYNC

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
/* Print an event on one line: as JSON, or as text for a person. */
void print_event(struct cli *, FILE *, const Onecard__V1__Event *);

/* watch.c */
struct watch_opts {
	uint64_t from;     /* --from: the events after it */
	int have_from;     /* else from now, or from the state file */
	const char *state; /* --state FILE, or NULL */
	const char *exec;  /* --exec CMD, or NULL */
};
/* Follow the events until SIGINT or SIGTERM; the exit code. */
int watch_run(struct cli *, const struct watch_opts *);

/* watch_state.c */
#define WATCH_BACKOFF_MIN_MS 200
#define WATCH_BACKOFF_MAX_MS 30000
/* The seq in state file path: 1 with *seq set, 0 when there is no file,
 * -1 with the reason in err. */
int watch_state_load(const char *path, uint64_t *seq, char *err, size_t);
/* 0 when a state file may be made at path (its folder is writable), -1
 * with the reason in err. */
int watch_state_check(const char *path, char *err, size_t);
/* Replace the state file with seq, durably. 0 or -1 with err. */
int watch_state_save(const char *path, uint64_t seq, char *err, size_t);
/* The wait before the next try after a failure, in ms. */
struct watch_backoff {
	int ms; /* the next wait, before its random part */
};
void watch_backoff_reset(struct watch_backoff *);
/* The wait now (ms .. ms + ms/4); the next one doubles, up to the cap. */
int watch_backoff_next(struct watch_backoff *);

#endif
