/*
 * onecard.c: the hospital desk CLI, `onecard [options] COMMAND ...`.
 *
 * Owns the global options (--broker, --cert, --key, --ca, --json, --timeout
 * or the ONECARD_* environment), the one connection a command makes, and the
 * mapping from every outcome to a documented exit code. It prints a person's
 * identifiers only to stdout, as asked; error messages name the command and
 * the broker's reason, never patient data beyond what the user typed.
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
    "usage: onecard [--broker HOST:PORT] [--cert FILE] [--key FILE] "
    "[--ca FILE]\n"
    "               [--json] [--timeout SECONDS] COMMAND [ARGS...]\n";

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

/* The exit code for a broker's answer. */
static int
cli_exit_code(int code)
{
	switch (code) {
	case ONECARD__V1__CODE__OK:
		return EXIT_FOUND;
	case ONECARD__V1__CODE__NOT_FOUND:
		return EXIT_NOTFOUND;
	case ONECARD__V1__CODE__INVALID_ARGUMENT:
		return EXIT_USAGE;
	case ONECARD__V1__CODE__CONFLICT:
	case ONECARD__V1__CODE__VERSION_MISMATCH:
	case ONECARD__V1__CODE__PERMISSION_DENIED:
	case ONECARD__V1__CODE__UNAUTHENTICATED:
		return EXIT_REFUSED;
	default:
		return EXIT_BROKER;
	}
}

/* A stable token for a library error, for --json. */
static const char *
cli_err_token(int err)
{
	switch (err) {
	case ONECARD_EINVAL:
		return "CLIENT_INVALID";
	case ONECARD_ECONNECT:
		return "CLIENT_CONNECT";
	case ONECARD_ETLS:
		return "CLIENT_TLS";
	case ONECARD_ETIMEDOUT:
		return "CLIENT_TIMEOUT";
	case ONECARD_ECLOSED:
		return "CLIENT_CLOSED";
	case ONECARD_EPROTO:
		return "CLIENT_PROTOCOL";
	default:
		return "CLIENT_ERROR";
	}
}

/* The exit code for a library error. */
static int
cli_transport_exit(int err)
{
	return err == ONECARD_EINVAL ? EXIT_USAGE : EXIT_TRANSPORT;
}

int
cli_call(struct cli *cli, Onecard__V1__Request *req)
{
	struct onecard_conn *conn;
	Onecard__V1__Reply *reply;
	char err[512];
	int r, code;

	r = onecard_connect(&cli->opt, &conn, err, sizeof err);
	if (r != ONECARD_OK) {
		cli_warnx(cli, "%s", err);
		if (cli->json)
			print_error_json(stdout, cli_err_token(r), err);
		return cli_transport_exit(r);
	}
	if ((r = onecard_call(conn, req, &reply)) != ONECARD_OK) {
		cli_warnx(cli, "%s", onecard_last_error(conn));
		if (cli->json)
			print_error_json(
			    stdout, cli_err_token(r), onecard_last_error(conn));
		onecard_close(conn);
		return cli_transport_exit(r);
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
			print_error_json(
			    stdout, wire_code_name(code), reply->message);
	}
	onecard_reply_free(reply);
	onecard_close(conn);
	if (fflush(stdout) == EOF) {
		cli_warnx(cli, "stdout: %s", strerror(errno));
		return EXIT_BROKER;
	}
	return cli_exit_code(code);
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
	fputs("\noptions (or the environment):\n"
	      "  --broker HOST:PORT  the broker (ONECARD_BROKER, default "
	      "127.0.0.1:7443)\n"
	      "  --cert FILE         this desk's certificate (ONECARD_CERT)\n"
	      "  --key FILE          its private key (ONECARD_KEY)\n"
	      "  --ca FILE           the CA that signed the broker "
	      "(ONECARD_CA)\n"
	      "  --json              print one JSON object instead of text\n"
	      "  --timeout SECONDS   connect and reply timeout (default 10 "
	      "and 30)\n"
	      "\nIdentifiers are DOMAIN=VALUE: cn-id=..., cn-ssc=..., "
	      "hosp:CODE=..., pid=...\n"
	      "Exit: 0 ok, 1 not found, 2 invalid input, 3 refused "
	      "(conflict, version,\n"
	      "permission, unauthenticated), 4 cannot connect or transport "
	      "error,\n"
	      "5 other broker error. `onecard COMMAND --help` for a "
	      "command.\n",
	    f);
}

/* Parse --timeout SECONDS into milliseconds; -1 when malformed. */
static int
cli_parse_timeout(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v > 0) || v > 86400)
		return -1;
	return v * 1000 < 1 ? 1 : (int)(v * 1000);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
	    {"broker", required_argument, NULL, 'b'},
	    {"cert", required_argument, NULL, 'c'},
	    {"key", required_argument, NULL, 'k'},
	    {"ca", required_argument, NULL, 'a'},
	    {"json", no_argument, NULL, 'j'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const struct cli_command *c;
	struct cli cli;
	int ch, ms;

	/* A broker that hangs up must give exit 4, not a SIGPIPE death. */
	signal(SIGPIPE, SIG_IGN);
	memset(&cli, 0, sizeof cli);
	while ((ch = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'b':
			cli.opt.broker = optarg;
			break;
		case 'c':
			cli.opt.cert = optarg;
			break;
		case 'k':
			cli.opt.key = optarg;
			break;
		case 'a':
			cli.opt.ca = optarg;
			break;
		case 'j':
			cli.json = 1;
			break;
		case 't':
			if ((ms = cli_parse_timeout(optarg)) == -1) {
				cli_warnx(NULL,
				    "--timeout: \"%s\" is not a number of "
				    "seconds",
				    optarg);
				return EXIT_USAGE;
			}
			cli.opt.connect_timeout_ms = ms;
			cli.opt.call_timeout_ms = ms;
			break;
		case 'h':
			cli_help(stdout);
			return EXIT_FOUND;
		case 'V':
			printf("onecard %s\n", ONECARD_VERSION);
			return EXIT_FOUND;
		default:
			fputs(global_usage, stderr);
			return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		cli_warnx(NULL, "no command given");
		cli_help(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[0], "help") == 0) {
		cli_help(stdout);
		return EXIT_FOUND;
	}
	for (c = cli_commands; c->name != NULL; c++) {
		if (strcmp(c->name, argv[0]) == 0) {
			cli.cmd = c->name;
			optind = 0; /* the command parses its own options */
			return c->fn(&cli, argc, argv);
		}
	}
	cli_warnx(NULL, "unknown command \"%s\" (try onecard --help)", argv[0]);
	return EXIT_USAGE;
}
