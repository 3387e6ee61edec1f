/*
 * watch_state.c: what `onecard watch` keeps between runs and between tries.
 *
 * The state file holds one number, the seq of the last event handled, and a
 * newline. It is replaced whole (a temporary file beside it, fsync, rename,
 * fsync of the folder), so after a crash it holds the old seq or the new
 * one, never a torn one. The backoff is the wait before trying again after
 * a failure: 0.2 s, doubled each time up to 30 s, plus up to a quarter at
 * random so that many watchers of one broker do not all come back at once.
 * Nothing here talks to the broker or prints.
 */
#define _GNU_SOURCE /* mkostemp */

#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define WATCH_STATE_MAX 64 /* bytes read of a state file */

/* The folder of path, into buf. */
static void
watch_state_dir(const char *path, char *buf, size_t len)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		snprintf(buf, len, ".");
	else if (slash == path)
		snprintf(buf, len, "/");
	else
		snprintf(buf, len, "%.*s", (int)(slash - path), path);
}

int
watch_state_load(const char *path, uint64_t *seq, char *err, size_t errlen)
{
	char buf[WATCH_STATE_MAX + 1];
	unsigned long long v = 0;
	ssize_t n;
	size_t len = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			return 0;
		snprintf(
		    err, errlen, "state file %s: %s", path, strerror(errno));
		return -1;
	}
	while (len < WATCH_STATE_MAX &&
	    (n = read(fd, buf + len, WATCH_STATE_MAX - len)) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "state file %s: %s", path,
			    strerror(errno));
			close(fd);
			return -1;
		}
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	errno = 0;
	if (len == 0 || strspn(buf, "0123456789") != len ||
	    ((v = strtoull(buf, NULL, 10)) == ULLONG_MAX && errno != 0)) {
		snprintf(err, errlen,
		    "state file %s does not hold an event seq (one number); "
		    "remove it to start from now",
		    path);
		return -1;
	}
	*seq = v;
	return 1;
}

int
watch_state_check(const char *path, char *err, size_t errlen)
{
	char dir[PATH_MAX];

	watch_state_dir(path, dir, sizeof dir);
	if (access(dir, W_OK | X_OK) == -1) {
		snprintf(err, errlen, "state file %s: cannot write in %s: %s",
		    path, dir, strerror(errno));
		return -1;
	}
	return 0;
}

int
watch_state_save(const char *path, uint64_t seq, char *err, size_t errlen)
{
	char tmp[PATH_MAX], dir[PATH_MAX], line[32];
	int fd, n, dfd;

	n = snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
	if (n < 0 || (size_t)n >= sizeof tmp) {
		snprintf(err, errlen, "state file %s: name too long", path);
		return -1;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		snprintf(
		    err, errlen, "state file %s: %s", path, strerror(errno));
		return -1;
	}
	n = snprintf(line, sizeof line, "%llu\n", (unsigned long long)seq);
	if (write(fd, line, (size_t)n) != n || fsync(fd) == -1) {
		snprintf(err, errlen, "state file %s: %s", tmp,
		    strerror(errno != 0 ? errno : EIO));
		close(fd);
		unlink(tmp);
		return -1;
	}
	if (close(fd) == -1 || rename(tmp, path) == -1) {
		snprintf(
		    err, errlen, "state file %s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	/* The rename is durable once the folder is. */
	watch_state_dir(path, dir, sizeof dir);
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fsync(dfd) == -1) {
		snprintf(err, errlen, "state file %s: sync %s: %s", path, dir,
		    strerror(errno));
		if (dfd != -1)
			close(dfd);
		return -1;
	}
	close(dfd);
	return 0;
}

void
watch_backoff_reset(struct watch_backoff *b)
{
	b->ms = WATCH_BACKOFF_MIN_MS;
}

int
watch_backoff_next(struct watch_backoff *b)
{
	int ms;

	if (b->ms < WATCH_BACKOFF_MIN_MS)
		b->ms = WATCH_BACKOFF_MIN_MS;
	ms = b->ms + (int)(random() % (b->ms / 4 + 1));
	b->ms = b->ms >= WATCH_BACKOFF_MAX_MS / 2 ? WATCH_BACKOFF_MAX_MS
						  : b->ms * 2;
	return ms;
}
