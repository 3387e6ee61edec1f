/*
 * registry_backup.c: a consistent copy of a registry while its broker runs:
 * SQLite's online backup of the image, then the log's entries above it
 * folded in (docs/architecture.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "registry.h"
#include "registry_image.h"
#include "registry_redo.h"

#define BACKUP_TRIES 50

struct backup_fold {
	void *img;
	uint64_t last;
	int failed;
};

static int
backup_entry(void *arg, uint64_t seq, const uint8_t *p, size_t len)
{
	struct backup_fold *bf = arg;

	if (registry_image_fold(bf->img, p, len) != 0) {
		bf->failed = 1;
		return -1;
	}
	bf->last = seq;
	return 0;
}

/* fsync the file at path and its folder. */
static int
sync_path(const char *path)
{
	char *copy = strdup(path);
	int fd, rc = -1;

	if (copy == NULL)
		return -1;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		rc = fsync(fd);
		close(fd);
	}
	if (rc == 0 &&
	    (fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >=
		0) {
		rc = fsync(fd);
		close(fd);
	}
	free(copy);
	return rc;
}

/* One try: 0, -1 (err set) or REDO_SCAN_AGAIN. */
static int
backup_once(const char *path, const char *redo, const char *tmp, char *err,
    size_t errlen)
{
	struct backup_fold bf = {NULL, 0, 0};
	void *live, *copy = NULL;
	uint64_t applied, log_id, now, now_id;
	int rc = -1;

	if ((live = registry_image_reader(path, err, errlen)) == NULL)
		return -1;
	if (registry_image_backup(live, tmp, err, errlen) == -1)
		goto done;
	if ((copy = registry_image_open(tmp, err, errlen)) == NULL)
		goto done;
	if (registry_image_state(copy, &applied, &log_id) == -1) {
		snprintf(err, errlen, "%s: no redo_state", tmp);
		goto done;
	}
	bf.img = copy;
	bf.last = applied;
	if (registry_image_fold_begin(copy) != 0) {
		snprintf(err, errlen, "%s: cannot write the copy", tmp);
		goto done;
	}
	rc = log_id == 0
	    ? 0
	    : redo_scan(redo, log_id, applied, backup_entry, &bf, err, errlen);
	if (rc == 0 && bf.failed) {
		snprintf(err, errlen, "%s: cannot write the copy", tmp);
		rc = -1;
	}
	/* The image went past what the log gave us (the log started again
	 * behind a fold): what lies between is in neither copy. */
	if (rc == 0 && registry_image_state(live, &now, &now_id) == 0 &&
	    (now > bf.last || now_id != log_id)) {
		snprintf(
		    err, errlen, "%s: the registry moved on meanwhile", path);
		rc = REDO_SCAN_AGAIN;
	}
	if (rc != 0) {
		registry_image_fold_rollback(copy);
		goto done;
	}
	/* Paired with no log: a broker started on it makes its own. */
	if (registry_image_fold_commit(copy, bf.last) != 0 ||
	    registry_image_pair(copy, 0) != 0) {
		snprintf(err, errlen, "%s: cannot write the copy", tmp);
		rc = -1;
	}
done:
	registry_image_close(copy);
	registry_image_close(live);
	return rc;
}

/* Remove a copy and its side files (journal, WAL, shared memory). */
static void
backup_unlink(const char *tmp)
{
	static const char *const side[] = {
	    "", "-journal", "-wal", "-shm", "-redo", "-lock"};
	char path[4096];

	for (size_t i = 0; i < sizeof(side) / sizeof(side[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", tmp, side[i]);
		unlink(path);
	}
}

int
registry_backup(const char *url, const char *dst, char *err, size_t errlen)
{
	const char *path = url;
	char redo[4096], tmp[4096];
	int rc = -1;

	if (strncmp(url, "postgresql://", 13) == 0 ||
	    strncmp(url, "postgres://", 11) == 0) {
		snprintf(err, errlen,
		    "a registry in PostgreSQL is backed up with the server's "
		    "own tools (pg_dump, pg_basebackup)");
		return -1;
	}
	if (strncmp(url, "sqlite:", 7) == 0)
		path = url + 7;
	if (access(path, F_OK) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (snprintf(redo, sizeof(redo), "%s-redo", path) >=
		(int)sizeof(redo) ||
	    snprintf(tmp, sizeof(tmp), "%s.partial", dst) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "%s: path too long", dst);
		return -1;
	}
	for (int i = 0; i < BACKUP_TRIES && rc != 0; i++) {
		backup_unlink(tmp);
		rc = backup_once(path, redo, tmp, err, errlen);
		if (rc == -1)
			break;
	}
	if (rc != 0) {
		if (rc == REDO_SCAN_AGAIN)
			snprintf(err + strlen(err), errlen - strlen(err),
			    " (%d tries)", BACKUP_TRIES);
		backup_unlink(tmp);
		return -1;
	}
	/* A copy in rollback-journal mode stands alone: one file. */
	if (registry_image_standalone(tmp, err, errlen) == -1 ||
	    sync_path(tmp) == -1 || rename(tmp, dst) == -1 ||
	    sync_path(dst) == -1) {
		if (err[0] == '\0' || strstr(err, tmp) == NULL)
			snprintf(err, errlen, "%s: %s", dst, strerror(errno));
		backup_unlink(tmp);
		return -1;
	}
	backup_unlink(tmp);
	return 0;
}
