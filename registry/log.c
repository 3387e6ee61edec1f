/*
 * log.c: leveled log lines to stderr or syslog. One fprintf per line so lines
 * from several threads never interleave. It formats what it is given and
 * must never be handed patient data.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

static const char *log_prog = "onecardd";
static int log_lvl = LOG_LEVEL_INFO;
static int log_to_syslog;

static const char *const log_names[] = {"error", "warn", "info", "debug"};

/* Set the program name, level and destination. */
void
log_init(const char *progname, int level, int use_syslog)
{
	log_prog = progname;
	log_lvl = level;
	log_to_syslog = use_syslog;
	if (use_syslog)
		openlog(progname, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_set_level(int level)
{
	log_lvl = level;
}

/* Level by name ("error".."debug"), -1 if unknown. */
int
log_level_parse(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (strcasecmp(name, log_names[i]) == 0)
			return i;
	return -1;
}

/* Write one line at level, with strerror(err) appended when err != 0. */
static void __attribute__((format(printf, 3, 0)))
log_vemit(int level, int err, const char *fmt, va_list ap)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	char msg[1024];
	int n;

	if (level > log_lvl)
		return;
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	if (err != 0 && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(err));
	if (log_to_syslog) {
		syslog(prio[level], "%s", msg);
		return;
	}
	struct timespec ts;
	struct tm tm;
	char when[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ %s[%s] %s\n", when, ts.tv_nsec / 1000000,
	    log_prog, log_names[level], msg);
}

#define LOG_BODY(level, err)                                                   \
	do {                                                                   \
		va_list ap;                                                    \
		va_start(ap, fmt);                                             \
		log_vemit(level, err, fmt, ap);                                \
		va_end(ap);                                                    \
	} while (0)

void
log_warn(const char *fmt, ...)
{
	int e = errno;
	LOG_BODY(LOG_LEVEL_WARN, e);
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_WARN, 0);
}

void
log_info(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_INFO, 0);
}

void
log_debug(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_DEBUG, 0);
}

void
log_error(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_ERROR, 0);
}

/* Log with errno and exit: start-up only. */
void
fatal(const char *fmt, ...)
{
	int e = errno;
	LOG_BODY(LOG_LEVEL_ERROR, e);
	exit(1);
}

/* Log and exit: start-up only. */
void
fatalx(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_ERROR, 0);
	exit(1);
}
