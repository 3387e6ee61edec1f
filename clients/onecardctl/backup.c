/*
 * backup.c: onecardctl backup, a consistent copy of a running broker's
 * registry, taken on the broker's machine from its files (the SQLite image
 * and the redo log beside it; see registry_backup in registry/registry.h).
 * It needs no connection to the broker and never writes to the registry.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "registry.h"

#define BACKUP_DEFAULT_DB "/var/lib/onecard/registry.db"

static void
backup_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: onecardctl backup [--db PATH] FILE\n"
	    "Copy the registry at PATH (default %s, or $ONECARD_DB) into the "
	    "new\nfile FILE while its broker runs: one consistent state "
	    "holding every\nwrite answered before the command started. Run it "
	    "on the broker's\nmachine as a user that may read the registry. "
	    "Restore: docs/operations.md.\n",
	    BACKUP_DEFAULT_DB);
}

int
ctl_backup(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	const char *db = getenv("ONECARD_DB"), *dst;
	struct timespec t0, t1;
	char err[1024] = "";
	struct stat st;
	int ch;

	if (db == NULL || db[0] == '\0')
		db = BACKUP_DEFAULT_DB;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			db = optarg;
			break;
		case 'h':
			backup_usage(stdout);
			return CTL_EXIT_OK;
		default:
			backup_usage(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		backup_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	dst = argv[optind];
	if (lstat(dst, &st) == 0) {
		fprintf(stderr,
		    "onecardctl backup: %s: already there; a backup goes into "
		    "a new file\n",
		    dst);
		return CTL_EXIT_USAGE;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (registry_backup(db, dst, err, sizeof(err)) == -1) {
		fprintf(stderr, "onecardctl backup: %s\n", err);
		if (ctl_g.json)
			cli_json_error(stdout, "backup_failed", err);
		return CTL_EXIT_BROKER;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (stat(dst, &st) == -1)
		st.st_size = 0;
	if (ctl_g.json) {
		printf("{\"backup\":");
		ctl_json_str(stdout, dst);
		printf(",\"bytes\":%lld,\"seconds\":%.3f}\n",
		    (long long)st.st_size,
		    (double)(t1.tv_sec - t0.tv_sec) +
			(double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	} else
		printf("backup %s: %lld bytes in %.2f s\n", dst,
		    (long long)st.st_size,
		    (double)(t1.tv_sec - t0.tv_sec) +
			(double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return CTL_EXIT_OK;
}
