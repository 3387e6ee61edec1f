/*
 * onecard.c: the hospital desk CLI, `onecard [options] COMMAND ...`.
 *
 * Owns the command table's dispatch, the one connection a command makes, and
 * turning every outcome into the shared exit code (clients/common reads the
 * global options, anywhere on the line, and the profile file). It prints a
 * person's identifiers only to stdout, as asked; error messages name the
 * command and the broker's reason, never patient data beyond what the user
 * typed.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "wire.h"

#ifndef ONECARD_VERSION
#define ONECARD_VERSION "dev"
#endif

static const char *global_usage =
    "usage: onecard [--profile NAME] [--broker HOST:PORT] [--cert FILE] "
    "[--key FILE]\n"
    "               [--ca FILE] [--json] [--timeout SECONDS] COMMAND "
    "[ARGS...]\n"
    "       onecard --help | --version\n";

void
cli_warnx(struct cli *cli, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (cli != NULL && cli->cmd != NULL)
		fprintf(stderr, "onecard: %s: ", cli->cmd);
	else
		fprintf(stderr, "onecard: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

int
cli_usage_error(struct cli *cli, const char *usage, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "onecard: %s: ", cli->cmd);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nusage: onecard %s %s\n", cli->cmd, usage);
	va_end(ap);
	return EXIT_USAGE;
}

int
cli_call(struct cli *cli, Onecard__V1__Request *req)
{
	struct onecard_options opt;
	struct onecard_conn *conn;
	Onecard__V1__Reply *reply;
	char err[512];
	int r, code;

	if (cli_options(&cli->g, &opt, err, sizeof err) == -1) {
		cli_warnx(cli, "%s", err);
		if (cli->json)
			cli_json_error(stdout, "CLIENT_INVALID", err);
		return EXIT_USAGE;
	}
	r = onecard_connect(&opt, &conn, err, sizeof err);
	if (r != ONECARD_OK) {
		cli_warnx(cli, "%s", err);
		if (cli->json)
			cli_json_error(stdout, cli_err_token(r), err);
		return cli_exit_for_err(r);
	}
	if ((r = cli_call_failover(conn, req, &reply, "onecard", cli->cmd)) !=
	    ONECARD_OK) {
		cli_warnx(cli, "%s", onecard_last_error(conn));
		if (cli->json)
			cli_json_error(
			    stdout, cli_err_token(r), onecard_last_error(conn));
		onecard_close(conn);
		return cli_exit_for_err(r);
	}
	code = reply->code;
	if (code == ONECARD__V1__CODE__OK) {
		print_reply(cli, stdout, reply);
	} else {
		/* The broker's text, made safe for the desk's terminal. */
		fprintf(
		    stderr, "onecard: %s: %s", cli->cmd, wire_code_name(code));
		if (reply->message[0] != '\0') {
			fputs(": ", stderr);
			print_text(stderr, reply->message);
		}
		fputc('\n', stderr);
		if (cli->json)
			cli_json_error(
			    stdout, cli_code_token(code), reply->message);
	}
	onecard_reply_free(reply);
	onecard_close(conn);
	if (fflush(stdout) == EOF) {
		cli_warnx(cli, "stdout: %s", strerror(errno));
		return EXIT_BROKER;
	}
	return cli_exit_for_code(code);
}

/* Print the list of commands. */
static void
cli_help(FILE *f)
{
	const struct cli_command *c;

	fputs(global_usage, f);
	fputs("\ncommands:\n", f);
	for (c = cli_commands; c->name != NULL; c++)
		fprintf(f, "  %-8s %s\n", c->name, c->help);
	fputs("\noptions, anywhere on the line (or the environment, or a "
	      "profile):\n"
	      "  --profile NAME      settings from [NAME] of the profile file "
	      "(ONECARD_PROFILE;\n"
	      "                      file ~/.config/onecard/profiles or "
	      "ONECARD_PROFILE_FILE)\n"
	      "  --broker HOST:PORT  the broker (ONECARD_BROKER, default "
	      "127.0.0.1:7443)\n"
	      "  --cert FILE         this desk's certificate (ONECARD_CERT)\n"
	      "  --key FILE          its private key (ONECARD_KEY)\n"
	      "  --ca FILE           the CA that signed the broker "
	      "(ONECARD_CA)\n"
	      "  --json              print one JSON object instead of text\n"
	      "  --timeout SECONDS   connect and reply timeout (default 10 "
	      "and 30)\n"
	      "  --version           print the version\n"
	      "\nIdentifiers are DOMAIN=VALUE: cn-id=..., cn-ssc=..., "
	      "hosp:CODE=..., pid=...\n"
	      "Exit: 0 ok, 1 not found, 2 invalid input, 3 refused "
	      "(conflict, version,\n"
	      "permission, unauthenticated), 4 cannot connect or transport "
	      "error,\n"
	      "5 other broker error, 7 (watch) the events to resume from "
	      "are gone.\n`onecard COMMAND --help` for a command; docs/cli.md "
	      "or onecard(1)\nfor the rest.\n",
	    f);
}

int
main(int argc, char *argv[])
{
	const struct cli_command *c;
	struct cli cli;

	/* A broker that hangs up must give exit 4, not a SIGPIPE death. */
	signal(SIGPIPE, SIG_IGN);
	memset(&cli, 0, sizeof cli);
	cli.g.prog = "onecard";
	if (cli_globals_take(&cli.g, &argc, argv) == -1)
		return EXIT_USAGE;
	cli.json = cli.g.json;
	if (cli.g.version) {
		printf("onecard %s\n", ONECARD_VERSION);
		return EXIT_FOUND;
	}
	if (argc > 1 &&
	    (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
		strcmp(argv[1], "help") == 0)) {
		cli_help(stdout);
		return EXIT_FOUND;
	}
	if (argc > 1 && argv[1][0] == '-') {
		cli_warnx(NULL, "unknown option \"%s\" (try onecard --help)",
		    argv[1]);
		return EXIT_USAGE;
	}
	if (argc < 2) {
		cli_warnx(NULL, "no command given");
		cli_help(stderr);
		return EXIT_USAGE;
	}
	for (c = cli_commands; c->name != NULL; c++) {
		if (strcmp(c->name, argv[1]) == 0) {
			cli.cmd = c->name;
			optind = 0; /* the command parses its own options */
			return c->fn(&cli, argc - 1, argv + 1);
		}
	}
	cli_warnx(NULL, "unknown command \"%s\" (try onecard --help)", argv[1]);
	return EXIT_USAGE;
}
