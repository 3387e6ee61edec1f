/*
 * cli_common.h: what the onecard and onecardctl command lines share.
 *
 * One table of exit codes, one reading of the global options (accepted
 * anywhere on the line), one order in which a connection setting is found
 * (flag, named profile, environment, default profile), and one JSON shape
 * for a patient, an event and an error. docs/cli.md is the reference; a change
 * here is a change there. Nothing here exits the process or talks to the
 * broker.
 */
#ifndef ONECARD_CLI_COMMON_H
#define ONECARD_CLI_COMMON_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include "onecard.h"

/* Exit codes of both CLIs (docs/cli.md, "Exit codes"). */
#define CLI_EXIT_OK      0 /* done */
#define CLI_EXIT_NO      1 /* not found; a check found a fault (audit) */
#define CLI_EXIT_USAGE   2 /* usage error or invalid input */
#define CLI_EXIT_REFUSED 3 /* conflict, version, permission, auth */
#define CLI_EXIT_CONNECT 4 /* cannot connect, TLS, timeout, closed */
#define CLI_EXIT_BROKER  5 /* any other broker error */
#define CLI_EXIT_PARTIAL 6 /* import done, but some rows were rejected */
#define CLI_EXIT_RESYNC  7 /* watch: the events to resume from are gone */
#define CLI_EXIT_UNKNOWN 8 /* a write's broker failed before answering */

/* One section of the profile file; paths made absolute. */
struct cli_profile {
	char broker[256], cert[PATH_MAX], key[PATH_MAX], ca[PATH_MAX];
	int timeout_ms;
};

/* The global options and where the connection settings came from. */
struct cli_globals {
	const char *prog; /* "onecard" or "onecardctl", for messages */
	/* As given on the command line (NULL: not given). */
	const char *broker, *cert, *key, *ca, *profile;
	int timeout_ms; /* --timeout; 0: not given */
	int json;
	int version;
	/* The named profile's settings, and [default]'s. */
	struct cli_profile named, dflt;
};

/* cli_args.c */
/*
 * Take the global options (--broker --cert --key --ca --profile --timeout,
 * as "--opt VALUE" or "--opt=VALUE", and --json, --version) out of argv
 * wherever they stand before a "--"; argv[0] stays. 0, or -1 after telling
 * why on stderr.
 */
int cli_globals_take(struct cli_globals *g, int *argc, char **argv);
/*
 * The connection settings: each from its flag, else the profile named by
 * --profile or ONECARD_PROFILE, else ONECARD_BROKER/CERT/KEY/CA, else the
 * [default] profile. 0, or -1 with the reason (naming the file) in err.
 */
int cli_options(struct cli_globals *g, struct onecard_options *opt, char *err,
    size_t errlen);
/* The profile file: $ONECARD_PROFILE_FILE, else
 * $XDG_CONFIG_HOME/onecard/profiles, else ~/.config/onecard/profiles. */
const char *cli_profile_path(char *buf, size_t len);

/* cli_out.c */
/* The exit code for a broker's Reply.code. */
int cli_exit_for_code(int code);
/* The exit code for a libonecard error. */
int cli_exit_for_err(int err);
/*
 * onecard_call, and when a write's reply was lost to a broker's failure
 * (ONECARD_EUNKNOWN: the connection moved to the next broker), the same
 * write once more there if that is safe: an enroll or a link (they
 * converge on the same record) or an update with expected_version (a
 * second one is refused, not applied twice). prog and what name it in the
 * note on stderr.
 */
int cli_call_failover(struct onecard_conn *conn, Onecard__V1__Request *req,
    Onecard__V1__Reply **reply, const char *prog, const char *what);
/* A stable token for a libonecard error, for JSON ("CLIENT_CONNECT"). */
const char *cli_err_token(int err);
/* The name of a Reply.code as JSON carries it ("NOT_FOUND"). */
const char *cli_code_token(int code);
/* "male", "female" or "unknown". */
const char *cli_sex_name(Onecard__V1__Sex sex);
/* Write s as a JSON string, quotes included. */
void cli_json_string(FILE *f, const char *s);
/* Write a patient as one JSON object (no newline). */
void cli_json_patient(FILE *f, const Onecard__V1__Patient *p);
/* Write time_ms (milliseconds since the epoch) as RFC 3339 in UTC,
 * "2026-12-03T08:45:36.120Z", into buf (at least 32 bytes). */
void cli_time_rfc3339(int64_t time_ms, char *buf, size_t len);
/* Write an event as one JSON object (no newline): seq, op, patient_id,
 * other_patient_id, actor, time, time_ms, detail, and patient (the
 * patient object, or null). */
void cli_json_event(FILE *f, const Onecard__V1__Event *ev);
/* Write {"error":CODE,"message":MESSAGE} and a newline. */
void cli_json_error(FILE *f, const char *code, const char *message);

#endif
