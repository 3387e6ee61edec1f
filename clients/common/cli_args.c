/*
 * cli_args.c: the global options and the client profile file.
 *
 * Owns the options every command of both CLIs takes (--broker, --cert,
 * --key, --ca, --profile, --timeout, --json, --version), accepted anywhere
 * on the line, and the profile file: an INI file of named sections, like
 * psql's pg_service.conf, so a desk does not retype its broker and files.
 *
 *   [default]
 *   broker = mpi.example.org:7443
 *   cert = XC001.pem         ; relative paths are from the file's folder
 *   key = XC001.key
 *   ca = ca.pem
 *   timeout = 5
 *
 * A setting comes from its flag, else the profile named by --profile or
 * ONECARD_PROFILE, else the ONECARD_* environment, else [default]. An
 * error names the file and the line. The strings live in struct
 * cli_globals, so the options stay valid as long as it does.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "cli_common.h"

#define CLI_MAX_TIMEOUT_S 86400

/* Parse SECONDS (may be fractional) into milliseconds; -1 if malformed. */
static int
cli_parse_timeout(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v > 0) ||
	    v > CLI_MAX_TIMEOUT_S)
		return -1;
	return v * 1000 < 1 ? 1 : (int)(v * 1000);
}

int
cli_globals_take(struct cli_globals *g, int *argc, char **argv)
{
	static const char *const valued[] = {
	    "--broker", "--cert", "--key", "--ca", "--profile", "--timeout"};
	const char **dst[] = {
	    &g->broker, &g->cert, &g->key, &g->ca, &g->profile, NULL};
	const char *timeout = NULL, *v;
	int i, o = 1;
	size_t f, n, nv = sizeof(valued) / sizeof(valued[0]);

	for (i = 1; i < *argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			while (i < *argc)
				argv[o++] = argv[i++];
			break;
		}
		if (strcmp(argv[i], "--json") == 0) {
			g->json = 1;
			continue;
		}
		if (strcmp(argv[i], "--version") == 0) {
			g->version = 1;
			continue;
		}
		for (f = 0; f < nv; f++) {
			n = strlen(valued[f]);
			if (strncmp(argv[i], valued[f], n) != 0 ||
			    (argv[i][n] != '=' && argv[i][n] != '\0'))
				continue;
			if (argv[i][n] == '=') {
				v = argv[i] + n + 1;
			} else if (i + 1 < *argc) {
				v = argv[++i];
			} else {
				fprintf(stderr, "%s: %s needs a value\n",
				    g->prog, valued[f]);
				return -1;
			}
			if (dst[f] != NULL)
				*dst[f] = v;
			else
				timeout = v;
			break;
		}
		if (f == nv)
			argv[o++] = argv[i];
	}
	argv[o] = NULL;
	*argc = o;
	if (timeout != NULL &&
	    (g->timeout_ms = cli_parse_timeout(timeout)) == -1) {
		fprintf(stderr,
		    "%s: --timeout: \"%s\" is not a number of seconds "
		    "(0.001 to %d)\n",
		    g->prog, timeout, CLI_MAX_TIMEOUT_S);
		return -1;
	}
	return 0;
}

const char *
cli_profile_path(char *buf, size_t len)
{
	const char *v;

	if ((v = getenv("ONECARD_PROFILE_FILE")) != NULL && *v != '\0')
		snprintf(buf, len, "%s", v);
	else if ((v = getenv("XDG_CONFIG_HOME")) != NULL && *v != '\0')
		snprintf(buf, len, "%s/onecard/profiles", v);
	else if ((v = getenv("HOME")) != NULL && *v != '\0')
		snprintf(buf, len, "%s/.config/onecard/profiles", v);
	else
		return NULL;
	return buf;
}

/* What the INI handler is looking for and what it found. */
struct cli_profile_read {
	struct cli_profile *p;
	const char *path;
	const char *want; /* the section */
	int found;        /* the section had at least one setting */
	char err[512];
};

/* Put a path from the profile in dst, relative to the file's folder. */
static int
cli_profile_file(
    struct cli_profile_read *r, const char *value, char *dst, size_t len)
{
	const char *slash = strrchr(r->path, '/');
	int n;

	if (value[0] == '/' || slash == NULL)
		n = snprintf(dst, len, "%s", value);
	else
		n = snprintf(dst, len, "%.*s/%s", (int)(slash - r->path),
		    r->path, value);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* inih's callback: check every setting, keep those of the wanted section. */
static int
cli_profile_setting(
    void *arg, const char *section, const char *name, const char *value)
{
	struct cli_profile_read *r = arg;
	struct cli_profile *g = r->p;
	int keep = strcmp(section, r->want) == 0, ms, rc = 0;
	char scratch[PATH_MAX];

	if (value[0] == '\0') {
		snprintf(r->err, sizeof r->err, "[%s] %s: empty value", section,
		    name);
		return 0;
	}
	if (strcmp(name, "broker") == 0) {
		if (strlen(value) >= sizeof g->broker)
			rc = -1;
		else if (keep)
			snprintf(g->broker, sizeof g->broker, "%s", value);
	} else if (strcmp(name, "cert") == 0) {
		rc = cli_profile_file(
		    r, value, keep ? g->cert : scratch, PATH_MAX);
	} else if (strcmp(name, "key") == 0) {
		rc = cli_profile_file(
		    r, value, keep ? g->key : scratch, PATH_MAX);
	} else if (strcmp(name, "ca") == 0) {
		rc = cli_profile_file(
		    r, value, keep ? g->ca : scratch, PATH_MAX);
	} else if (strcmp(name, "timeout") == 0) {
		if ((ms = cli_parse_timeout(value)) == -1) {
			snprintf(r->err, sizeof r->err,
			    "[%s] timeout: \"%.32s\" is not a number of "
			    "seconds",
			    section, value);
			return 0;
		}
		if (keep)
			g->timeout_ms = ms;
	} else {
		snprintf(r->err, sizeof r->err,
		    "[%s] unknown setting \"%.64s\" (broker, cert, key, ca, "
		    "timeout)",
		    section, name);
		return 0;
	}
	if (rc == -1) {
		snprintf(r->err, sizeof r->err, "[%s] %s: value too long",
		    section, name);
		return 0;
	}
	if (keep)
		r->found = 1;
	return 1;
}

/*
 * Read section want of the profile file into p. 1 when it was there, 0
 * when it was not (or there is no file and !must), -1 with the reason in
 * err.
 */
static int
cli_profile_load(
    struct cli_profile *p, const char *want, int must, char *err, size_t errlen)
{
	struct cli_profile_read r = {.p = p, .want = want};
	char path[PATH_MAX];
	int line;

	if ((r.path = cli_profile_path(path, sizeof path)) == NULL) {
		if (!must)
			return 0;
		snprintf(err, errlen,
		    "profile \"%s\": no profile file (set HOME or "
		    "ONECARD_PROFILE_FILE)",
		    want);
		return -1;
	}
	errno = 0;
	line = ini_parse(r.path, cli_profile_setting, &r);
	if (line == -1) {
		if (!must && errno == ENOENT)
			return 0;
		snprintf(err, errlen, "profile file %s: %s", r.path,
		    strerror(errno != 0 ? errno : ENOENT));
		return -1;
	}
	if (line != 0) {
		snprintf(err, errlen, "profile file %s:%d: %s", r.path, line,
		    r.err[0] != '\0' ? r.err : "not an INI line");
		return -1;
	}
	if (!r.found && must) {
		snprintf(
		    err, errlen, "profile \"%s\" is not in %s", want, r.path);
		return -1;
	}
	return r.found;
}

/* Fill the fields of opt still unset from profile g. */
static void
cli_profile_fill(const struct cli_profile *g, struct onecard_options *opt)
{
	if (opt->broker == NULL && g->broker[0] != '\0')
		opt->broker = g->broker;
	if (opt->cert == NULL && g->cert[0] != '\0')
		opt->cert = g->cert;
	if (opt->key == NULL && g->key[0] != '\0')
		opt->key = g->key;
	if (opt->ca == NULL && g->ca[0] != '\0')
		opt->ca = g->ca;
	if (opt->connect_timeout_ms == 0 && g->timeout_ms != 0) {
		opt->connect_timeout_ms = g->timeout_ms;
		opt->call_timeout_ms = g->timeout_ms;
	}
}

int
cli_options(struct cli_globals *g, struct onecard_options *opt, char *err,
    size_t errlen)
{
	const char *name = g->profile;
	int r;

	memset(opt, 0, sizeof *opt);
	opt->broker = g->broker;
	opt->cert = g->cert;
	opt->key = g->key;
	opt->ca = g->ca;
	opt->connect_timeout_ms = g->timeout_ms;
	opt->call_timeout_ms = g->timeout_ms;
	if (name == NULL && (name = getenv("ONECARD_PROFILE")) != NULL &&
	    *name == '\0')
		name = NULL;
	if (name != NULL) {
		if (cli_profile_load(&g->named, name, 1, err, errlen) == -1)
			return -1;
		cli_profile_fill(&g->named, opt);
	}
	onecard_options_from_env(opt);
	if ((r = cli_profile_load(&g->dflt, "default", 0, err, errlen)) == -1)
		return -1;
	if (r == 1)
		cli_profile_fill(&g->dflt, opt);
	return 0;
}
