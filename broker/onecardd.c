/*
 * onecardd.c: the broker's start and end: config and flags (a bad value is
 * refused naming its flag), TLS, audit, registry, listeners, metrics, dropping
 * privileges, then an orderly teardown. Order of each: docs/architecture.md.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/thread.h>
#include <ini.h>

#include "audit.h"
#include "fhir_parse.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "onecardd.h"
#include "wire.h"
#include "validate.h"
#include "writer.h"

#ifndef ONECARD_VERSION
#define ONECARD_VERSION "0.0.0"
#endif

static struct config config;
struct config *cfg = &config;
const char *onecardd_version = ONECARD_VERSION;

static const struct option onecardd_longopts[] = {
    {"listen", required_argument, NULL, 'l'},
    {"db", required_argument, NULL, 'd'},
    {"cert", required_argument, NULL, 'c'},
    {"key", required_argument, NULL, 'k'},
    {"ca", required_argument, NULL, 'A'},
    {"crl", required_argument, NULL, 'R'},
    {"admins", required_argument, NULL, 'a'},
    {"audit-log", required_argument, NULL, 'L'},
    {"metrics-listen", required_argument, NULL, 'm'},
    {"fhir-listen", required_argument, NULL, 'x'},
    {"fhir-threads", required_argument, NULL, 'y'},
    {"threads", required_argument, NULL, 't'},
    {"max-frame", required_argument, NULL, 'F'},
    {"idle-timeout", required_argument, NULL, 'i'},
    {"stall-timeout", required_argument, NULL, 'T'},
    {"config", required_argument, NULL, 'f'},
    {"max-conns", required_argument, NULL, 'C'},
    {"max-subscribers", required_argument, NULL, 'B'},
    {"event-retention", required_argument, NULL, 'E'},
    {"max-pending-output", required_argument, NULL, 'P'},
    {"handshake-timeout", required_argument, NULL, 'H'},
    {"max-ids", required_argument, NULL, 'I'},
    {"max-name", required_argument, NULL, 'N'},
    {"max-address", required_argument, NULL, 'D'},
    {"search-limit", required_argument, NULL, 'S'},
    {"duplicate-check", required_argument, NULL, 'Z'},
    {"lookup-cache", required_argument, NULL, 'Q'},
    {"max-unfolded", required_argument, NULL, 'U'},
    {"rate-lookup", required_argument, NULL, 'r'},
    {"rate-search", required_argument, NULL, 'e'},
    {"rate-write", required_argument, NULL, 'w'},
    {"search-max-results", required_argument, NULL, 'M'},
    {"node", required_argument, NULL, 'n'},
    {"user", required_argument, NULL, 'u'},
    {"syslog", no_argument, NULL, 's'},
    {"check-config", no_argument, NULL, 'K'},
    {"log-level", required_argument, NULL, 'v'},
    /* Values past a char: no short flag, and no clash with another's. */
    {"disclosure", required_argument, NULL, 1001},
    {"disclosure-cn-id", required_argument, NULL, 1002},
    {"fhir-system", required_argument, NULL, 1010},
    {"fhir-max-conns", required_argument, NULL, 1003},
    {"fhir-timeout", required_argument, NULL, 1004},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: onecardd --db PATH --cert FILE --key FILE --ca FILE "
	    "[options]\n"
	    "  --listen HOST:PORT         address to serve (127.0.0.1:7443)\n"
	    "  --db PATH|URL              the registry (SQLite file, or "
	    "postgresql://...)\n"
	    "  --cert FILE, --key FILE    the broker's certificate and key\n"
	    "  --ca FILE                  CA that client certificates chain "
	    "to\n"
	    "  --crl FILE                 revoked client certificates (PEM)\n"
	    "  --admins CN,CN             certificate CNs with the admin role\n"
	    "  --audit-log PATH           the audit trail (off if not given)\n"
	    "  --metrics-listen HOST:PORT /metrics and /healthz (off if not "
	    "given)\n"
	    "  --fhir-listen HOST:PORT    FHIR R4 JSON over HTTPS (off if not "
	    "given)\n"
	    "  --fhir-system DOMAIN=URI   the FHIR system of a domain, e.g. "
	    "cn-id=urn:oid:...\n"
	    "                             (urn:onecard:DOMAIN; repeatable; "
	    "read "
	    "at start)\n"
	    "  --fhir-max-conns N         FHIR connections at once; more are "
	    "closed (1024)\n"
	    "  --fhir-timeout SECONDS     time to send a whole FHIR request "
	    "(10)\n"
	    "  --fhir-threads N           threads serving it (as many as "
	    "--threads)\n"
	    "  --threads N                worker threads (online CPUs)\n"
	    "  --max-frame BYTES          largest request frame (65536)\n"
	    "  --idle-timeout SECONDS     close idle clients (300; 0: never)\n"
	    "  --stall-timeout SECONDS    close a client whose frame stays "
	    "half-sent\n"
	    "                             or whose replies stay unread "
	    "(the idle\n"
	    "                             timeout; 300 when that is 0)\n"
	    "  --handshake-timeout SECONDS  TLS handshake deadline (10)\n"
	    "  --max-conns N              open connections at most (10000)\n"
	    "  --max-subscribers N        subscriptions at most (4096)\n"
	    "  --event-retention N|AGE    events kept for subscribers: the "
	    "last N,\n"
	    "                             or those younger than AGE (30d, "
	    "12h);\n"
	    "                             0 keeps every event (0)\n"
	    "  --max-pending-output BYTES stop reading a client past this "
	    "(1048576)\n"
	    "  --max-ids N, --max-name BYTES, --max-address BYTES, "
	    "--search-limit N\n"
	    "                             input limits (16, 128, 256, 50)\n"
	    "  --duplicate-check on|off   an enroll lists possible "
	    "duplicates (on;\n"
	    "                             off for a bulk load a scan "
	    "follows)\n"
	    "  --lookup-cache MB          memory for cached lookup replies, "
	    "all\n"
	    "                             workers together (512; 0: off)\n"
	    "  --max-unfolded MB          log entries synced but not yet in "
	    "the\n"
	    "                             SQLite image before writes wait "
	    "(512)\n"
	    "  --rate-lookup RATE[/BURST] each hospital's lookups per second "
	    "(0:\n"
	    "                             unlimited, the default); BURST at "
	    "once\n"
	    "                             (RATE); hospital.CODE.rate-lookup in "
	    "the\n"
	    "                             config file sets one hospital's\n"
	    "  --rate-search RATE[/BURST], --rate-write RATE[/BURST]\n"
	    "                             the same for searches and writes\n"
	    "  --search-max-results N     a hospital's search returns at most "
	    "N\n"
	    "                             (1..100; 0: the protocol's caps, "
	    "the default)\n"
	    "  --disclosure full|minimal  what a hospital sees of a patient's "
	    "identifiers:\n"
	    "                             every one, or other hospitals' "
	    "numbers only\n"
	    "                             when a lookup names their domain "
	    "(full)\n"
	    "  --disclosure-cn-id full|masked  a cn-id in full or as "
	    "410102********123X\n"
	    "                             (full); per hospital: "
	    "hospital.CODE.disclosure,\n"
	    "                             hospital.CODE.disclosure-cn-id in "
	    "--config\n"
	    "  --node NAME                node name in pong (hostname)\n"
	    "  --user USER                drop privileges to USER after "
	    "start-up\n"
	    "  --syslog                   log to syslog instead of stderr\n"
	    "  --log-level LEVEL          error, warn, info or debug (info)\n"
	    "  --config FILE              INI file, [onecardd] section; flags "
	    "win\n"
	    "  --check-config             check the flags, config file and "
	    "TLS files\n"
	    "                             (--cert, --key, --ca, --crl), then "
	    "exit\n"
	    "  --help, --version\n");
}

/*
 * Tell systemd (Type=notify) how the broker stands: "READY=1",
 * "RELOADING=1", "STOPPING=1", "STATUS=...". One datagram to the unix
 * socket named by $NOTIFY_SOCKET (a path, or "@name" in the abstract
 * namespace), as sd_notify(3) does; nothing when it is not set. Best
 * effort: a failure is logged at debug level and otherwise ignored.
 */
void
onecardd_notify(const char *fmt, ...)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t len;
	char msg[512];
	va_list ap;
	int fd, n;

	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    strlen(path) >= sizeof(sun.sun_path))
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	len =
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1) {
		log_debug("notify: socket: %s", strerror(errno));
		return;
	}
	if (sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&sun,
		len) != n)
		log_debug("notify %s: %s", path, strerror(errno));
	close(fd);
}

/* Monotonic microseconds, for latencies. */
uint64_t
onecardd_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Is cn one of --admins? */
int
onecardd_is_admin(const char *cn)
{
	const char *p = cfg->admins;
	size_t n = strlen(cn);

	while (p != NULL && *p != '\0') {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len == n && strncmp(p, cn, n) == 0)
			return 1;
		p = end ? end + 1 : NULL;
	}
	return 0;
}

/* Parse an integer in [lo, hi] into *out; -1 if it is not one. */
static int
config_number(const char *s, long long lo, long long hi, long long *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/*
 * --event-retention: a count of events ("1000000"), or an age with a unit
 * ("30d", "12h", "90m"); "0" keeps every event.
 */
static int
config_retention(
    const char *value, struct registry_limits *lim, char *err, size_t errlen)
{
	static const struct {
		char unit;
		int64_t ms;
	} units[] = {{'d', 86400000}, {'h', 3600000}, {'m', 60000}};
	size_t len = strlen(value);
	char num[32];
	long long v;

	lim->keep_events = 0;
	lim->keep_ms = 0;
	if (config_number(value, 0, 1LL << 50, &v) == 0) {
		lim->keep_events = (uint64_t)v;
		return 0;
	}
	for (size_t i = 0; len > 1 && len < sizeof(num) &&
	     i < sizeof(units) / sizeof(units[0]);
	     i++) {
		if (value[len - 1] != units[i].unit)
			continue;
		memcpy(num, value, len - 1);
		num[len - 1] = '\0';
		if (config_number(
			num, 1, 36500LL * 86400000 / units[i].ms, &v) == 0) {
			lim->keep_ms = (int64_t)v * units[i].ms;
			return 0;
		}
	}
	snprintf(err, errlen,
	    "--event-retention: '%s' is neither a count of events nor an "
	    "age such as 30d, 12h or 90m",
	    value);
	return -1;
}

/* Replace a string setting. */
static void
config_string(char **dst, const char *value)
{
	free(*dst);
	if ((*dst = strdup(value)) == NULL)
		fatalx("out of memory");
}

/* A yes/no value: 1, 0, or -1. */
static int
config_bool(const char *s)
{
	if (strcasecmp(s, "yes") == 0 || strcasecmp(s, "true") == 0 ||
	    strcasecmp(s, "on") == 0 || strcmp(s, "1") == 0)
		return 1;
	if (strcasecmp(s, "no") == 0 || strcasecmp(s, "false") == 0 ||
	    strcasecmp(s, "off") == 0 || strcmp(s, "0") == 0)
		return 0;
	return -1;
}

/* hospital.CODE.rate-lookup, -search, -write: one hospital's rate. */
static int
config_hospital_rate(struct config *c, const char *code, const char *key,
    const char *name, const char *value, char *err, size_t errlen)
{
	return ratelimit_conf_set(&c->rates, code, ratelimit_kind_of_key(key),
	    value, name, err, errlen);
}

/* hospital.CODE.disclosure and hospital.CODE.disclosure-cn-id. */
static int
config_hospital_policy(struct config *c, const char *code, const char *key,
    const char *name, const char *value, char *err, size_t errlen)
{
	(void)name;
	return policy_config_set(&c->policy, code, key, value, err, errlen);
}

/*
 * The per-hospital keys of the config file, hospital.CODE.KEY: one line per
 * key, naming the function that takes it (after the code is checked; name
 * is the whole key, to name in err).
 */
static const struct config_hospital_key {
	const char *key;
	int (*set)(struct config *c, const char *code, const char *key,
	    const char *name, const char *value, char *err, size_t errlen);
} config_hospital_keys[] = {
    {"rate-lookup", config_hospital_rate},
    {"rate-search", config_hospital_rate},
    {"rate-write", config_hospital_rate},
    {"disclosure", config_hospital_policy},
    {"disclosure-cn-id", config_hospital_policy},
};

/* A hospital.CODE.KEY setting (config file only). 0, or -1 with err. */
static int
config_hospital(struct config *c, const char *name, const char *value,
    char *err, size_t errlen)
{
	const char *code = name + 9, *dot = strrchr(code, '.');
	char cbuf[VALIDATE_MAX_CODE + 1], why[128];
	size_t len = dot ? (size_t)(dot - code) : 0;

	if (dot == NULL || len == 0 || len > VALIDATE_MAX_CODE) {
		snprintf(err, errlen,
		    "%s: expected hospital.CODE.KEY (CODE: 1 to %d letters, "
		    "digits, - or _)",
		    name, VALIDATE_MAX_CODE);
		return -1;
	}
	memcpy(cbuf, code, len);
	cbuf[len] = '\0';
	if (validate_hospital_code("CODE", cbuf, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "%s: %s", name, why);
		return -1;
	}
	for (size_t i = 0;
	     i < sizeof(config_hospital_keys) / sizeof(config_hospital_keys[0]);
	     i++)
		if (strcmp(dot + 1, config_hospital_keys[i].key) == 0)
			return config_hospital_keys[i].set(
			    c, cbuf, dot + 1, name, value, err, errlen);
	snprintf(
	    err, errlen, "%s: unknown per-hospital key '%s'", name, dot + 1);
	return -1;
}

/*
 * Set the flag called name (without dashes) to value. -1 with a message
 * naming the flag in err when the value is refused or the name unknown.
 */
static int
config_set(struct config *c, const char *name, const char *value, char *err,
    size_t errlen)
{
	struct sockaddr_storage ss;
	long long v;
	int len = sizeof(ss), b;

#define RANGE(lo, hi)                                                          \
	do {                                                                   \
		if (config_number(value, lo, hi, &v) == -1) {                  \
			snprintf(err, errlen,                                  \
			    "--%s: '%s' is not a number from %lld to %lld",    \
			    name, value, (long long)(lo), (long long)(hi));    \
			return -1;                                             \
		}                                                              \
	} while (0)

	if (value == NULL) {
		snprintf(err, errlen, "--%s: needs a value", name);
		return -1;
	}
	if (strncmp(name, "hospital.", 9) == 0)
		return config_hospital(c, name, value, err, errlen);
	if (strcmp(name, "listen") == 0 ||
	    strcmp(name, "metrics-listen") == 0 ||
	    strcmp(name, "fhir-listen") == 0) {
		if (server_parse_address(value, &ss, &len) == -1) {
			snprintf(err, errlen, "--%s: '%s' is not HOST:PORT",
			    name, value);
			return -1;
		}
		config_string(name[0] == 'l' ? &c->listen
			: name[0] == 'f'     ? &c->fhir_listen
					     : &c->metrics_listen,
		    value);
	} else if (strcmp(name, "fhir-system") == 0) {
		char dom[256], uri[256], why[200], **sys;

		if (fhir_system_check(value, dom, sizeof(dom), uri, sizeof(uri),
			why, sizeof(why)) == -1) {
			snprintf(err, errlen, "--%s: %s", name, why);
			return -1;
		}
		for (size_t i = 0; i < c->n_fhir_systems; i++) {
			char d2[256], u2[256];

			if (fhir_system_check(c->fhir_systems[i], d2,
				sizeof(d2), u2, sizeof(u2), why,
				sizeof(why)) == 0 &&
			    (strcmp(d2, dom) == 0 || strcmp(u2, uri) == 0)) {
				snprintf(err, errlen,
				    "--%s: '%s' names a %s named already", name,
				    value,
				    strcmp(d2, dom) == 0 ? "domain" : "system");
				return -1;
			}
		}
		if ((sys = realloc(c->fhir_systems,
			 (c->n_fhir_systems + 1) * sizeof(*sys))) == NULL) {
			snprintf(err, errlen, "--%s: out of memory", name);
			return -1;
		}
		c->fhir_systems = sys;
		if ((sys[c->n_fhir_systems] = strdup(value)) == NULL) {
			snprintf(err, errlen, "--%s: out of memory", name);
			return -1;
		}
		c->n_fhir_systems++;
	} else if (strcmp(name, "db") == 0)
		config_string(&c->db, value);
	else if (strcmp(name, "cert") == 0)
		config_string(&c->cert, value);
	else if (strcmp(name, "key") == 0)
		config_string(&c->key, value);
	else if (strcmp(name, "ca") == 0)
		config_string(&c->ca, value);
	else if (strcmp(name, "crl") == 0)
		config_string(&c->crl, value);
	else if (strcmp(name, "admins") == 0) {
		for (const char *p = value; *p; p++)
			if (*p == ' ' || *p == '\t') {
				snprintf(err, errlen,
				    "--admins: CNs are separated by commas "
				    "only, no spaces");
				return -1;
			}
		config_string(&c->admins, value);
	} else if (strcmp(name, "audit-log") == 0)
		config_string(&c->audit_log, value);
	else if (strcmp(name, "user") == 0)
		config_string(&c->user, value);
	else if (strcmp(name, "node") == 0) {
		if (*value == '\0' || strlen(value) > 255) {
			snprintf(err, errlen, "--node: 1 to 255 characters");
			return -1;
		}
		config_string(&c->node, value);
	} else if (strcmp(name, "threads") == 0) {
		RANGE(1, 256);
		c->threads = v;
	} else if (strcmp(name, "fhir-threads") == 0) {
		RANGE(1, 256);
		c->fhir_threads = (int)v;
	} else if (strcmp(name, "max-frame") == 0) {
		RANGE(64, 64 * 1024 * 1024);
		c->max_frame = v;
	} else if (strcmp(name, "idle-timeout") == 0) {
		RANGE(0, 86400 * 7);
		c->idle_timeout = v;
	} else if (strcmp(name, "stall-timeout") == 0) {
		RANGE(1, 86400 * 7);
		c->stall_timeout = v;
	} else if (strcmp(name, "handshake-timeout") == 0) {
		RANGE(1, 3600);
		c->handshake_timeout = v;
	} else if (strcmp(name, "max-conns") == 0) {
		RANGE(1, 10000000);
		c->max_conns = v;
	} else if (strcmp(name, "fhir-max-conns") == 0) {
		RANGE(1, 1000000);
		c->fhir_max_conns = v;
	} else if (strcmp(name, "fhir-timeout") == 0) {
		RANGE(1, 3600);
		c->fhir_timeout = v;
	} else if (strcmp(name, "max-subscribers") == 0) {
		RANGE(1, 1000000);
		c->max_subscribers = v;
	} else if (strcmp(name, "event-retention") == 0) {
		if (config_retention(value, &c->limits, err, errlen) == -1)
			return -1;
	} else if (strcmp(name, "max-pending-output") == 0) {
		RANGE(4096, 1LL << 30);
		c->max_pending_output = v;
	} else if (strcmp(name, "max-ids") == 0) {
		RANGE(1, 4096);
		c->limits.max_ids = v;
	} else if (strcmp(name, "max-name") == 0) {
		RANGE(1, 65536);
		c->limits.max_name = v;
	} else if (strcmp(name, "max-address") == 0) {
		RANGE(1, 65536);
		c->limits.max_address = v;
	} else if (strcmp(name, "search-limit") == 0) {
		RANGE(1, 100000);
		c->limits.search_limit = v;
	} else if (strcmp(name, "duplicate-check") == 0) {
		if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0) {
			snprintf(err, errlen,
			    "--duplicate-check: '%s' is neither on nor off",
			    value);
			return -1;
		}
		c->limits.no_duplicate_check = strcmp(value, "off") == 0;
	} else if (strcmp(name, "lookup-cache") == 0) {
		RANGE(0, 1024 * 1024);
		c->lookup_cache_mb = v;
	} else if (strcmp(name, "max-unfolded") == 0) {
		RANGE(1, 1024 * 1024);
		c->limits.max_unfolded = (size_t)v << 20;
	} else if (ratelimit_kind_of_key(name) != -1) {
		char flag[64];

		snprintf(flag, sizeof(flag), "--%s", name);
		if (ratelimit_conf_set(&c->rates, NULL,
			ratelimit_kind_of_key(name), value, flag, err,
			errlen) == -1)
			return -1;
	} else if (strcmp(name, "search-max-results") == 0) {
		RANGE(0, 100);
		c->search_max_results = v;
	} else if (strcmp(name, "syslog") == 0) {
		if ((b = config_bool(value)) == -1) {
			snprintf(err, errlen, "--syslog: '%s' is not yes or no",
			    value);
			return -1;
		}
		c->use_syslog = b;
	} else if (strcmp(name, "disclosure") == 0 ||
	    strcmp(name, "disclosure-cn-id") == 0) {
		if (policy_config_set(
			&c->policy, NULL, name, value, err, errlen) == -1)
			return -1;
	} else if (strncmp(name, "hospital.", 9) == 0) {
		if (config_hospital(c, name, value, err, errlen) == -1)
			return -1;
	} else if (strcmp(name, "log-level") == 0) {
		if ((b = log_level_parse(value)) == -1) {
			snprintf(err, errlen,
			    "--log-level: '%s' is not error, warn, info or "
			    "debug",
			    value);
			return -1;
		}
		c->log_level = b;
	} else {
		snprintf(err, errlen, "unknown setting '%s'", name);
		return -1;
	}
	return 0;
#undef RANGE
}

struct config_file {
	struct config *c;
	const char *path;
	int failed;
	int reload; /* SIGHUP: errors go to the log */
};

/* Say what is wrong with the configuration: on stderr at start-up (and
 * --check-config), in the log on a reload. */
static void config_complain(int reload, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
config_complain(int reload, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (reload)
		log_warnx("reload: %s", msg);
	else
		fprintf(stderr, "onecardd: %s\n", msg);
}

/* inih callback: one key of the [onecardd] section. */
static int
config_ini_handler(
    void *arg, const char *section, const char *key, const char *value)
{
	struct config_file *cf = arg;
	char name[128], err[256], *p;

	if (strcmp(section, "onecardd") != 0) {
		config_complain(
		    cf->reload, "%s: unknown section [%s]", cf->path, section);
		cf->failed = 1;
		return 0;
	}
	snprintf(name, sizeof(name), "%s", key);
	/* key_name is key-name; in hospital.CODE.KEY only KEY is (a code may
	 * hold an underscore). */
	p = strncmp(name, "hospital.", 9) == 0 && strrchr(name, '.') != NULL
	    ? strrchr(name, '.')
	    : name;
	for (; *p; p++)
		if (*p == '_')
			*p = '-';
	if (strcmp(name, "config") == 0 ||
	    config_set(cf->c, name, value, err, sizeof(err)) == -1) {
		config_complain(cf->reload, "%s: key %s: %s", cf->path, key,
		    strcmp(name, "config") == 0 ? "not allowed here" : err);
		cf->failed = 1;
		return 0;
	}
	return 1;
}

/* Fill c with the defaults. */
static void
config_defaults(struct config *c)
{
	char host[256];
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	memset(c, 0, sizeof(*c));
	config_string(&c->listen, "127.0.0.1:7443");
	if (gethostname(host, sizeof(host)) == -1 || host[0] == '\0')
		snprintf(host, sizeof(host), "onecardd");
	host[sizeof(host) - 1] = '\0';
	config_string(&c->node, host);
	c->threads = n > 0 ? (n > 256 ? 256 : (int)n) : 1;
	c->max_frame = WIRE_MAX_FRAME_DEFAULT;
	c->idle_timeout = 300;
	c->stall_timeout = 0; /* unset: follows the idle timeout */
	c->handshake_timeout = 10;
	c->max_conns = 10000;
	c->max_subscribers = 4096;
	c->max_pending_output = 1024 * 1024;
	c->log_level = LOG_LEVEL_INFO;
	c->lookup_cache_mb = 512;
	c->search_max_results = 0; /* the protocol's caps only */
	registry_limits_default(&c->limits);
	policy_config_init(&c->policy);
}

/* The command line, kept for a reload. */
static int config_argc;
static char **config_argv;

/*
 * Read flags and the config file into c (from its defaults). 0, or -1 after
 * saying why (config_complain). A reload reads the same flags again, so a
 * flag still wins over the file.
 */
static int
config_parse(struct config *c, int argc, char **argv, int reload)
{
	const char *path = NULL;
	char err[256];
	int ch, rc;

	config_defaults(c);
	/* The file first, wherever --config is: flags override it. */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			path = argv[i + 1];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			path = argv[i] + 9;
	}
	if (path != NULL) {
		struct config_file cf = {c, path, 0, reload};

		rc = ini_parse(path, config_ini_handler, &cf);
		if (rc == -1) {
			config_complain(
			    reload, "--config %s: %s", path, strerror(errno));
			return -1;
		}
		if (rc != 0 || cf.failed) {
			if (!cf.failed)
				config_complain(reload,
				    "--config %s: line %d: syntax error", path,
				    rc);
			return -1;
		}
	}
	optind = 0; /* glibc: start afresh (a reload parses argv again) */
	while ((ch = getopt_long(argc, argv, "h", onecardd_longopts, NULL)) !=
	    -1) {
		const char *name = NULL;

		switch (ch) {
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("onecardd %s\n", onecardd_version);
			exit(0);
		case 'f':
			continue;
		case 's':
			c->use_syslog = 1;
			continue;
		case 'K':
			c->check_only = 1;
			continue;
		case '?':
			if (!reload)
				usage(stderr);
			return -1;
		}
		for (const struct option *o = onecardd_longopts; o->name; o++)
			if (o->val == ch)
				name = o->name;
		if (name == NULL ||
		    config_set(c, name, optarg, err, sizeof(err)) == -1) {
			config_complain(
			    reload, "%s", name ? err : "unknown flag");
			return -1;
		}
	}
	if (optind < argc) {
		config_complain(
		    reload, "unexpected argument '%s'", argv[optind]);
		return -1;
	}
	if (c->db == NULL || c->cert == NULL || c->key == NULL ||
	    c->ca == NULL) {
		config_complain(reload, "%s is required",
		    c->db == NULL         ? "--db"
			: c->cert == NULL ? "--cert"
			: c->key == NULL  ? "--key"
					  : "--ca");
		return -1;
	}
	/* Refused rather than not done: the registry on PostgreSQL keeps
	 * every event (retention is the SQLite store's). */
	if ((strncmp(c->db, "postgresql:", 11) == 0 ||
		strncmp(c->db, "postgres:", 9) == 0) &&
	    (c->limits.keep_events > 0 || c->limits.keep_ms > 0)) {
		config_complain(reload,
		    "--event-retention: the registry on PostgreSQL keeps "
		    "every event; retention runs on the SQLite store only");
		return -1;
	}
	/* Never off: a client that stops mid-frame or stops reading holds
	 * buffers, even where idle clients may stay for ever. */
	if (c->stall_timeout == 0)
		c->stall_timeout = c->idle_timeout > 0 ? c->idle_timeout : 300;
	/* Each worker keeps its own cache: split the budget between them. */
	c->limits.lookup_cache =
	    (c->lookup_cache_mb << 20) / (size_t)c->threads;
	return 0;
}

/* Read flags and the config file into c; exits on a bad one. */
static void
config_load(struct config *c, int argc, char **argv)
{
	config_argc = argc;
	config_argv = argv;
	if (config_parse(c, argc, argv, 0) == -1)
		exit(1);
}

/* Let the process hold as many descriptors as the hard limit allows. */
static void
onecardd_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			log_warn("setrlimit RLIMIT_NOFILE");
	}
	if (rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)cfg->max_conns + 64)
		log_warnx("descriptor limit %llu is below --max-conns %d",
		    (unsigned long long)rl.rlim_cur, cfg->max_conns);
}

/* Become --user: groups, gid, uid, in that order; fatal if it fails. */
static void
onecardd_drop_privileges(const char *user)
{
	struct passwd *pw;

	if ((pw = getpwnam(user)) == NULL)
		fatalx("--user %s: no such user", user);
	if (setgroups(1, &pw->pw_gid) == -1 || setgid(pw->pw_gid) == -1 ||
	    setuid(pw->pw_uid) == -1)
		fatal("--user %s: cannot drop privileges", user);
	if (pw->pw_uid != 0 && setuid(0) != -1)
		fatalx("--user %s: privileges were not dropped", user);
	log_info("running as user=%s uid=%u", user, (unsigned)pw->pw_uid);
}

/* Free the configuration's strings. */
static void
config_free(struct config *c)
{
	free(c->listen);
	free(c->db);
	free(c->cert);
	free(c->key);
	free(c->ca);
	free(c->crl);
	free(c->admins);
	free(c->audit_log);
	free(c->metrics_listen);
	free(c->fhir_listen);
	for (size_t i = 0; i < c->n_fhir_systems; i++)
		free(c->fhir_systems[i]);
	free(c->fhir_systems);
	free(c->user);
	free(c->node);
	ratelimit_conf_clear(&c->rates);
	policy_config_free(&c->policy);
}

/* Say which disclosure policy is in force. */
static void
onecardd_log_policy(const struct config *c)
{
	log_info("disclosure policy: default %s, cn-id %s, %zu hospital%s set",
	    c->policy.dflt.ids == POLICY_IDS_MINIMAL ? "minimal" : "full",
	    c->policy.dflt.cn_id == POLICY_CNID_MASKED ? "masked" : "full",
	    c->policy.n, c->policy.n == 1 ? "" : "s");
}

/*
 * SIGHUP: read the flags and the config file again (a flag still wins) and
 * make their rate limits and disclosure policy the live ones, for open
 * connections too. The file's other keys are checked but take effect only
 * at the next start. A refused file changes nothing.
 */
int
onecardd_reload_config(void)
{
	struct config c;
	int rc = -1;

	if (config_parse(&c, config_argc, config_argv, 1) == -1)
		log_warnx("reload: the configuration is refused (above): rate "
			  "limits not changed, the disclosure policy in force "
			  "stays");
	else if (ratelimit_apply(&c.rates) == -1 ||
	    policy_apply(&c.policy) == -1)
		log_warnx("reload: out of memory: rate limits not changed, the "
			  "disclosure policy in force stays");
	else {
		log_info("rate limits reloaded");
		onecardd_log_policy(&c);
		rc = 0;
	}
	config_free(&c);
	return rc;
}

int
main(int argc, char **argv)
{
	/* Every file the broker creates (registry, redo log, audit trail)
	 * holds patient data or its trace: owner-only, whatever umask it was
	 * started with (files 0600, folders 0700). */
	umask(077);
	config_load(cfg, argc, argv);
	log_init("onecardd", cfg->log_level, cfg->use_syslog);
	if (cfg->admins == NULL || cfg->admins[0] == '\0')
		log_warnx("no --admins: nobody can administer this broker "
			  "(add hospitals, merge, revoke); give the admin "
			  "certificates' CNs with --admins CN,CN");
	signal(SIGPIPE, SIG_IGN);
	onecardd_raise_nofile();
	/* Before any thread touches libevent: bases are handed work across
	 * threads (event_active from the writer). */
	if (evthread_use_pthreads() == -1)
		fatalx("libevent has no pthreads support");

	if (!cfg->check_only && server_check_listen(cfg) == -1)
		fatalx("cannot listen on --listen %s", cfg->listen);
	if (tls_init(cfg) == -1)
		fatalx("cannot set up TLS from --cert, --key, --ca%s",
		    cfg->crl ? ", --crl" : "");
	if (policy_apply(&cfg->policy) == -1)
		fatalx("out of memory");
	onecardd_log_policy(cfg);
	if (cfg->check_only) {
		/* What a reload would load (ExecReload runs this first). */
		fprintf(stderr,
		    "onecardd: configuration and TLS files are "
		    "usable\n");
		tls_shutdown();
		policy_free();
		config_free(cfg);
		return 0;
	}
	if (ratelimit_apply(&cfg->rates) == -1)
		fatalx("out of memory");
	if (audit_open(cfg->audit_log, cfg->node) == -1)
		fatalx("--audit-log %s: cannot open", cfg->audit_log);
	if (server_subscribe() == -1)
		fatalx("cannot read the registry's change feed");
	if (writer_start(cfg->db, &cfg->limits) == -1) {
		char safe[512];

		registry_url_safe(cfg->db, safe, sizeof(safe));
		fatalx("--db %s: cannot open the registry", safe);
	}
	if (notify_init(cfg->max_subscribers) == -1)
		fatalx("out of memory");
	if (server_init(cfg) == -1)
		fatalx("cannot start the server");
	if (cfg->metrics_listen != NULL &&
	    metrics_start(cfg->metrics_listen, cfg->db, &cfg->limits) == -1)
		fatalx(
		    "--metrics-listen %s: cannot start", cfg->metrics_listen);
	if (cfg->fhir_listen != NULL && fhir_start(cfg) == -1)
		fatalx("--fhir-listen %s: cannot start", cfg->fhir_listen);
	if (cfg->user != NULL)
		onecardd_drop_privileges(cfg->user);
	if (server_start() == -1)
		fatalx("cannot start the worker threads");
	{
		char err[256];

		/* Other brokers' commits, on a shared registry. */
		if (registry_remote_feed_start(cfg->db, err, sizeof(err)) == -1)
			fatalx("%s", err);
	}
	log_info("onecardd %s started node=%s threads=%d max_conns=%d",
	    onecardd_version, cfg->node, cfg->threads, cfg->max_conns);
	onecardd_notify("READY=1\nSTATUS=serving");

	server_run();
	registry_remote_feed_stop();
	if (cfg->fhir_listen != NULL)
		fhir_stop();
	server_stop();
	writer_stop();
	server_free();
	if (cfg->metrics_listen != NULL)
		metrics_stop();
	notify_free();
	audit_close();
	ratelimit_free();
	tls_shutdown();
	policy_free();
	log_info("onecardd stopped");
	config_free(cfg);
	return 0;
}
