/*
 * harness.c: start a real onecardd for an integration test and clean up.
 *
 * Owns the test's temporary folder, the broker child process and the client
 * commands run through /bin/sh. It talks to the broker only through
 * libonecard, as a hospital would, and never leaves a broker running or a
 * folder behind (set ONECARD_KEEP=1 to keep the folder for a post-mortem).
 * Failures are reported on stderr once, where they are detected, with the
 * broker's log when the broker is the likely cause.
 */
#define _GNU_SOURCE /* nftw */

#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "harness.h"
#include "wire.h"

#define HARNESS_START_TIMEOUT_MS 15000
#define HARNESS_STOP_TIMEOUT_MS  30000
#define HARNESS_RUN_TIMEOUT_MS   60000
#define HARNESS_MAX_ARGS         64
#define LISTEN_MARK              "listening on 127.0.0.1:"

/*
 * What every live harness started, kept apart from the caller's struct: a
 * failed cmocka assertion jumps out of a test past its harness_cleanup, and
 * the struct may be gone by then. An atexit handler cleans these up.
 */
#define HARNESS_MAX_LIVE 64
static struct harness_live {
	char dir[256];
	pid_t pid;
} harness_live[HARNESS_MAX_LIVE];
static int harness_atexit_set;

static void harness_rmdir(const char *);

/* Remember (or update) the broker pid of the harness in dir. */
static void
harness_live_set(const char *dir, pid_t pid)
{
	int i, free_slot = -1;

	for (i = 0; i < HARNESS_MAX_LIVE; i++) {
		if (harness_live[i].dir[0] == '\0') {
			if (free_slot == -1)
				free_slot = i;
		} else if (strcmp(harness_live[i].dir, dir) == 0) {
			harness_live[i].pid = pid;
			return;
		}
	}
	if (free_slot == -1)
		return;
	snprintf(
	    harness_live[free_slot].dir, sizeof harness_live[0].dir, "%s", dir);
	harness_live[free_slot].pid = pid;
}

/* Forget the harness in dir; returns the broker pid it had (0: none), or
 * -1 when dir was not known. */
static pid_t
harness_live_drop(const char *dir)
{
	pid_t pid = -1;
	int i;

	for (i = 0; i < HARNESS_MAX_LIVE; i++) {
		if (strcmp(harness_live[i].dir, dir) == 0) {
			pid = harness_live[i].pid;
			harness_live[i].dir[0] = '\0';
		}
	}
	return pid;
}

/* At exit: kill the brokers and remove the folders tests left behind. */
static void
harness_atexit(void)
{
	int i, status;

	for (i = 0; i < HARNESS_MAX_LIVE; i++) {
		if (harness_live[i].dir[0] == '\0')
			continue;
		if (harness_live[i].pid > 0) {
			kill(harness_live[i].pid, SIGKILL);
			waitpid(harness_live[i].pid, &status, 0);
		}
		harness_rmdir(harness_live[i].dir);
		harness_live[i].dir[0] = '\0';
	}
}

/* Print why the harness failed. */
static void __attribute__((format(printf, 1, 2)))
harness_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "harness: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

int
harness_log(struct harness *h, char *buf, size_t buflen)
{
	FILE *f;
	size_t n;

	if (buflen == 0)
		return -1;
	buf[0] = '\0';
	if ((f = fopen(h->log_path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, buflen - 1, f);
	buf[n] = '\0';
	fclose(f);
	return 0;
}

/* Copy the broker's log to stderr so a failing test shows why. */
static void
harness_dump_log(struct harness *h)
{
	char buf[16384];

	if (harness_log(h, buf, sizeof buf) == -1)
		return;
	fprintf(stderr, "---- onecardd log (%s) ----\n%s---- end of log ----\n",
	    h->log_path, buf);
}

/* Wait for pid with a deadline; SIGKILL it when the deadline passes. */
static int
harness_wait(pid_t pid, int timeout_ms)
{
	long long deadline = harness_now_ms() + timeout_ms;
	int status;
	pid_t r;

	for (;;) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r == -1 && errno != EINTR)
			return -1;
		if (harness_now_ms() > deadline) {
			kill(pid, SIGKILL);
			if (waitpid(pid, &status, 0) != pid)
				return -1;
			break;
		}
		usleep(5000);
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

/* Run argv with stdout to /dev/null; its exit status or -1. */
static int
harness_exec(char *const argv[])
{
	pid_t pid;
	int fd;

	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		if ((fd = open("/dev/null", O_WRONLY)) != -1)
			dup2(fd, STDOUT_FILENO);
		execv(argv[0], argv);
		_exit(127);
	}
	return harness_wait(pid, HARNESS_RUN_TIMEOUT_MS);
}

int
harness_certs(struct harness *h, const char *const *codes)
{
	char script[PATH_MAX];
	char *argv[HARNESS_MAX_ARGS];
	int argc = 0, status;

	snprintf(
	    script, sizeof script, "%s/certs/mkcerts.sh", ONECARD_SOURCE_DIR);
	argv[argc++] = (char *)"/bin/sh";
	argv[argc++] = script;
	argv[argc++] = (char *)"-d";
	argv[argc++] = h->certs;
	for (; codes != NULL && *codes != NULL; codes++) {
		if (argc >= HARNESS_MAX_ARGS - 1) {
			harness_warnx("too many certificate names");
			return -1;
		}
		argv[argc++] = (char *)*codes;
	}
	argv[argc] = NULL;
	if ((status = harness_exec(argv)) != 0) {
		harness_warnx("mkcerts.sh failed (status %d)", status);
		return -1;
	}
	return 0;
}

void
harness_options(struct harness *h, const char *cn, struct onecard_options *opt)
{
	/* Paths live as long as the harness; one slot per call would do, but
	 * tests open several connections with different CNs at once. */
	static char paths[32][3][384];
	static atomic_uint next; /* loader threads call this at once */
	unsigned slot = atomic_fetch_add(&next, 1) % 32;

	memset(opt, 0, sizeof *opt);
	snprintf(
	    paths[slot][0], sizeof paths[slot][0], "%s/%s.pem", h->certs, cn);
	snprintf(
	    paths[slot][1], sizeof paths[slot][1], "%s/%s.key", h->certs, cn);
	opt->broker = h->addr;
	opt->cert = paths[slot][0];
	opt->key = paths[slot][1];
	snprintf(paths[slot][2], sizeof paths[slot][2], "%s/ca.pem", h->certs);
	opt->ca = paths[slot][2];
	opt->connect_timeout_ms = 5000;
	opt->call_timeout_ms = 30000;
}

int
harness_connect(struct harness *h, const char *cn, struct onecard_conn **out)
{
	struct onecard_options opt;
	char err[512];
	int r;

	harness_options(h, cn, &opt);
	r = onecard_connect(&opt, out, err, sizeof err);
	if (r != ONECARD_OK)
		harness_warnx("connect to %s as %s: %s", h->addr, cn, err);
	return r;
}

/* Register each code as an active hospital, as admin. */
static int
harness_add_hospitals(struct harness *h, const char *const *codes)
{
	struct onecard_conn *conn;
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__HospitalAdd add = ONECARD__V1__HOSPITAL_ADD__INIT;
	Onecard__V1__Reply *reply;
	int r, ret = 0;

	if (codes == NULL || codes[0] == NULL)
		return 0;
	if (harness_connect(h, "admin", &conn) != ONECARD_OK)
		return -1;
	for (; *codes != NULL; codes++) {
		req.id = 0;
		req.op_case = ONECARD__V1__REQUEST__OP_HOSPITAL_ADD;
		req.hospital_add = &add;
		add.code = (char *)*codes;
		add.name = (char *)*codes;
		add.role = ONECARD__V1__ROLE__ROLE_HOSPITAL;
		if ((r = onecard_call(conn, &req, &reply)) != ONECARD_OK) {
			harness_warnx("hospital_add %s: %s", *codes,
			    onecard_last_error(conn));
			ret = -1;
			break;
		}
		if (reply->code != ONECARD__V1__CODE__OK) {
			harness_warnx("hospital_add %s: code %d: %s", *codes,
			    reply->code, reply->message);
			ret = -1;
		}
		onecard_reply_free(reply);
		if (ret == -1)
			break;
	}
	onecard_close(conn);
	return ret;
}

/* Size of the log now, so a restart looks only at what comes after. */
static off_t
harness_log_size(struct harness *h)
{
	struct stat st;

	if (stat(h->log_path, &st) == -1)
		return 0;
	return st.st_size;
}

/* Wait for the "listening on" line after offset; fill h->port and h->addr. */
static int
harness_wait_listening(struct harness *h, off_t offset)
{
	long long deadline = harness_now_ms() + HARNESS_START_TIMEOUT_MS;
	char buf[16384], *p;
	size_t n;
	FILE *f;
	int status;

	for (;;) {
		if ((f = fopen(h->log_path, "r")) != NULL) {
			fseeko(f, offset, SEEK_SET);
			n = fread(buf, 1, sizeof buf - 1, f);
			buf[n] = '\0';
			fclose(f);
			if ((p = strstr(buf, LISTEN_MARK)) != NULL &&
			    strchr(p, '\n') != NULL) {
				h->port = atoi(p + strlen(LISTEN_MARK));
				if (h->port <= 0 || h->port > 65535) {
					harness_warnx("bad port in log");
					return -1;
				}
				snprintf(h->addr, sizeof h->addr,
				    "127.0.0.1:%d", h->port);
				return 0;
			}
		}
		if (waitpid(h->pid, &status, WNOHANG) == h->pid) {
			harness_warnx("onecardd exited before listening "
				      "(status 0x%x)",
			    status);
			h->pid = 0;
			return -1;
		}
		if (harness_now_ms() > deadline) {
			harness_warnx("onecardd did not say \"%s\" in %d ms",
			    LISTEN_MARK, HARNESS_START_TIMEOUT_MS);
			return -1;
		}
		usleep(10000);
	}
}

/* Fork and exec onecardd with the standard flags plus extra_args. */
static int
harness_spawn(struct harness *h, const char *const *extra_args)
{
	char bin[PATH_MAX], cert[384], key[384], ca[384];
	char *argv[HARNESS_MAX_ARGS];
	int argc = 0, fd;
	off_t offset;
	pid_t pid, parent;

	snprintf(bin, sizeof bin, "%s/onecardd", ONECARD_BIN_DIR);
	snprintf(cert, sizeof cert, "%s/broker.pem", h->certs);
	snprintf(key, sizeof key, "%s/broker.key", h->certs);
	snprintf(ca, sizeof ca, "%s/ca.pem", h->certs);
	argv[argc++] = bin;
	argv[argc++] = (char *)"--listen";
	argv[argc++] = (char *)"127.0.0.1:0";
	argv[argc++] = (char *)"--db";
	argv[argc++] = h->db;
	argv[argc++] = (char *)"--cert";
	argv[argc++] = cert;
	argv[argc++] = (char *)"--key";
	argv[argc++] = key;
	argv[argc++] = (char *)"--ca";
	argv[argc++] = ca;
	argv[argc++] = (char *)"--admins";
	argv[argc++] = (char *)"admin";
	argv[argc++] = (char *)"--threads";
	argv[argc++] = (char *)"2";
	for (; extra_args != NULL && *extra_args != NULL; extra_args++) {
		if (argc >= HARNESS_MAX_ARGS - 1) {
			harness_warnx("too many broker arguments");
			return -1;
		}
		argv[argc++] = (char *)*extra_args;
	}
	argv[argc] = NULL;

	offset = harness_log_size(h);
	parent = getpid();
	if ((pid = fork()) == -1) {
		harness_warnx("fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		/* The broker dies with the test, however the test ends. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 ||
		    getppid() != parent)
			_exit(125);
		/* Undo the test's SIG_IGN: exec keeps ignored signals. */
		signal(SIGPIPE, SIG_DFL);
		fd = open(h->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd == -1)
			_exit(126);
		dup2(fd, STDERR_FILENO);
		close(fd);
		if ((fd = open("/dev/null", O_RDWR)) != -1) {
			dup2(fd, STDIN_FILENO);
			dup2(fd, STDOUT_FILENO);
			close(fd);
		}
		execv(bin, argv);
		fprintf(stderr, "harness: exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	h->pid = pid;
	h->port = 0;
	h->addr[0] = '\0';
	harness_live_set(h->dir, pid);
	if (harness_wait_listening(h, offset) == -1) {
		harness_dump_log(h);
		if (h->pid > 0) {
			kill(h->pid, SIGKILL);
			harness_wait(h->pid, HARNESS_STOP_TIMEOUT_MS);
			h->pid = 0;
		}
		harness_live_set(h->dir, 0);
		return -1;
	}
	return 0;
}

int
harness_start(
    struct harness *h, const char *const *codes, const char *const *extra_args)
{
	const char *tmp;

	/* A broker that closes on us must not kill the test with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	memset(h, 0, sizeof *h);
	if ((tmp = getenv("TMPDIR")) == NULL || *tmp == '\0')
		tmp = "/tmp";
	snprintf(h->dir, sizeof h->dir, "%s/onecard-it.XXXXXX", tmp);
	if (mkdtemp(h->dir) == NULL) {
		harness_warnx("mkdtemp %s: %s", h->dir, strerror(errno));
		h->dir[0] = '\0';
		return -1;
	}
	if (!harness_atexit_set) {
		atexit(harness_atexit);
		harness_atexit_set = 1;
	}
	harness_live_set(h->dir, 0);
	snprintf(h->certs, sizeof h->certs, "%s/certs", h->dir);
	snprintf(h->db, sizeof h->db, "%s/registry.db", h->dir);
	snprintf(h->log_path, sizeof h->log_path, "%s/onecardd.log", h->dir);
	if (harness_pg_db(h) == -1 || harness_certs(h, codes) == -1 ||
	    harness_spawn(h, extra_args) == -1)
		goto fail;
	if (harness_add_hospitals(h, codes) == -1) {
		harness_dump_log(h);
		goto fail;
	}
	return 0;
fail:
	/* cmocka skips the group teardown when setup fails: clean up here. */
	harness_cleanup(h);
	return -1;
}

int
harness_restart(struct harness *h, const char *const *extra_args)
{
	if (h->pid > 0) {
		harness_warnx("restart: onecardd is still running");
		return -1;
	}
	return harness_spawn(h, extra_args);
}

int
harness_stop(struct harness *h, int sig)
{
	int status;

	if (h->pid <= 0)
		return -1;
	if (kill(h->pid, sig) == -1) {
		harness_warnx("kill %d: %s", (int)h->pid, strerror(errno));
		return -1;
	}
	status = harness_wait(h->pid, HARNESS_STOP_TIMEOUT_MS);
	h->pid = 0;
	harness_live_set(h->dir, 0);
	return status;
}

/* The state letter of one /proc stat file (R, S, T, ...), or 0. */
static char
harness_proc_state(const char *path)
{
	char buf[512], *p;
	size_t n;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* "pid (comm) S ...": comm may hold spaces, so find the last ')'. */
	if ((p = strrchr(buf, ')')) == NULL || p[1] != ' ')
		return 0;
	return p[2];
}

/* Are all threads of pid stopped? */
static int
harness_all_stopped(pid_t pid)
{
	char path[PATH_MAX];
	struct dirent *de;
	int stopped = 1;
	DIR *d;

	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	if ((d = opendir(path)) == NULL)
		return 0;
	while (stopped && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/%d/task/%s/stat", (int)pid,
		    de->d_name);
		if (harness_proc_state(path) != 'T')
			stopped = 0;
	}
	closedir(d);
	return stopped;
}

int
harness_freeze(struct harness *h)
{
	long long deadline = harness_now_ms() + HARNESS_START_TIMEOUT_MS;

	if (h->pid <= 0 || kill(h->pid, SIGSTOP) == -1)
		return -1;
	/* kill() returns before the threads stop; wait for them. */
	while (!harness_all_stopped(h->pid)) {
		if (harness_now_ms() > deadline) {
			harness_warnx("onecardd did not stop");
			return -1;
		}
		usleep(1000);
	}
	return 0;
}

int
harness_thaw(struct harness *h)
{
	if (h->pid <= 0)
		return -1;
	return kill(h->pid, SIGCONT);
}

/* nftw callback: remove one entry. */
static int
harness_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

void
harness_cleanup(struct harness *h)
{
	pid_t pid = h->pid;

	/* The registry's pid wins: a test may have stopped or restarted the
	 * broker through a copy of h. */
	if (h->dir[0] != '\0') {
		pid_t live = harness_live_drop(h->dir);
		if (live != -1)
			pid = live;
	}
	if (pid > 0) {
		kill(pid, SIGKILL);
		harness_wait(pid, HARNESS_STOP_TIMEOUT_MS);
	}
	h->pid = 0;
	harness_pg_drop(h);
	if (h->dir[0] == '\0')
		return;
	harness_rmdir(h->dir);
	h->dir[0] = '\0';
}

/* rm -rf dir, unless ONECARD_KEEP asks to keep it. */
static void
harness_rmdir(const char *dir)
{
	const char *keep = getenv("ONECARD_KEEP");

	if (keep != NULL && *keep != '\0' && strcmp(keep, "0") != 0)
		fprintf(stderr, "harness: kept %s\n", dir);
	else
		nftw(dir, harness_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* Read what fd gives into buf at *len (keeping room for a NUL); drop the
 * overflow. 0 at EOF, 1 when there may be more, -1 on error. */
static int
harness_drain(int fd, char *buf, size_t buflen, size_t *len)
{
	char scratch[4096];
	ssize_t n;

	if (buf != NULL && *len + 1 < buflen)
		n = read(fd, buf + *len, buflen - 1 - *len);
	else
		n = read(fd, scratch, sizeof scratch);
	if (n == -1)
		return errno == EINTR || errno == EAGAIN ? 1 : -1;
	if (n == 0)
		return 0;
	if (buf != NULL && *len + 1 < buflen) {
		*len += n;
		buf[*len] = '\0';
	}
	return 1;
}

/* Set up the child's environment for cn and exec the command line. */
static void __attribute__((noreturn))
harness_child(struct harness *h, const char *cn, const char *cmdline)
{
	char buf[PATH_MAX + 4096];
	const char *path = getenv("PATH");

	setenv("ONECARD_BROKER", h->addr, 1);
	snprintf(buf, sizeof buf, "%s/ca.pem", h->certs);
	setenv("ONECARD_CA", buf, 1);
	if (cn != NULL) {
		snprintf(buf, sizeof buf, "%s/%s.pem", h->certs, cn);
		setenv("ONECARD_CERT", buf, 1);
		snprintf(buf, sizeof buf, "%s/%s.key", h->certs, cn);
		setenv("ONECARD_KEY", buf, 1);
	} else {
		unsetenv("ONECARD_CERT");
		unsetenv("ONECARD_KEY");
	}
	snprintf(buf, sizeof buf, "%s:%s", ONECARD_BIN_DIR,
	    path != NULL ? path : "/usr/bin:/bin");
	setenv("PATH", buf, 1);
	signal(SIGPIPE, SIG_DFL); /* as a shell would start it */
	execl("/bin/sh", "sh", "-c", cmdline, (char *)NULL);
	_exit(127);
}

int
harness_run2(struct harness *h, const char *cn, char *out, size_t outlen,
    char *err, size_t errlen, const char *cmdline)
{
	long long deadline = harness_now_ms() + HARNESS_RUN_TIMEOUT_MS;
	int opipe[2], epipe[2] = {-1, -1}, devnull;
	struct pollfd pfd[2];
	size_t olen = 0, elen = 0;
	int nfds, r, open_fds;
	pid_t pid;

	if (out != NULL && outlen > 0)
		out[0] = '\0';
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	fflush(NULL);
	if (pipe(opipe) == -1)
		return -1;
	if (err != NULL && pipe(epipe) == -1) {
		close(opipe[0]);
		close(opipe[1]);
		return -1;
	}
	if ((pid = fork()) == -1) {
		close(opipe[0]);
		close(opipe[1]);
		if (epipe[0] != -1) {
			close(epipe[0]);
			close(epipe[1]);
		}
		return -1;
	}
	if (pid == 0) {
		if ((devnull = open("/dev/null", O_RDONLY)) != -1)
			dup2(devnull, STDIN_FILENO);
		dup2(opipe[1], STDOUT_FILENO);
		if (epipe[1] != -1)
			dup2(epipe[1], STDERR_FILENO);
		close(opipe[0]);
		close(opipe[1]);
		if (epipe[0] != -1) {
			close(epipe[0]);
			close(epipe[1]);
		}
		harness_child(h, cn, cmdline);
	}
	close(opipe[1]);
	if (epipe[1] != -1)
		close(epipe[1]);

	pfd[0].fd = opipe[0];
	pfd[0].events = POLLIN;
	pfd[1].fd = epipe[0];
	pfd[1].events = POLLIN;
	nfds = epipe[0] != -1 ? 2 : 1;
	open_fds = nfds;
	while (open_fds > 0) {
		long long left = deadline - harness_now_ms();
		if (left <= 0) {
			harness_warnx("command timed out: %s", cmdline);
			kill(pid, SIGKILL);
			break;
		}
		if (poll(pfd, nfds, (int)left) == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[0].fd != -1 && pfd[0].revents != 0) {
			r = harness_drain(pfd[0].fd, out, outlen, &olen);
			if (r <= 0) {
				close(pfd[0].fd);
				pfd[0].fd = -1;
				open_fds--;
			}
		}
		if (nfds > 1 && pfd[1].fd != -1 && pfd[1].revents != 0) {
			r = harness_drain(pfd[1].fd, err, errlen, &elen);
			if (r <= 0) {
				close(pfd[1].fd);
				pfd[1].fd = -1;
				open_fds--;
			}
		}
	}
	if (pfd[0].fd != -1)
		close(pfd[0].fd);
	if (nfds > 1 && pfd[1].fd != -1)
		close(pfd[1].fd);
	return harness_wait(pid, HARNESS_RUN_TIMEOUT_MS);
}

int
harness_run(struct harness *h, const char *cn, char *out, size_t outlen,
    const char *cmdline)
{
	return harness_run2(h, cn, out, outlen, NULL, 0, cmdline);
}

/* Serve one client of the fake broker until it goes away. */
static void
harness_fake_conn(struct harness_fake *f, int fd)
{
	Onecard__V1__Reply reply = ONECARD__V1__REPLY__INIT;
	Onecard__V1__Request *req;
	uint8_t buf[65536 + WIRE_HEADER_LEN], out[4096];
	size_t n = 0, body, len;
	SSL *ssl;
	int r;

	ssl = SSL_new((SSL_CTX *)f->ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_accept(ssl) != 1 || f->hangup)
		goto done;
	for (;;) {
		while (wire_peek(buf, n, 65536, &body) == WIRE_FRAME) {
			f->requests++;
			req = wire_request_unpack(
			    buf + WIRE_HEADER_LEN, body, 1 << 20, NULL);
			reply.id = f->reply_id >= 0 ? (uint64_t)f->reply_id
			    : req != NULL           ? req->id
						    : 0;
			reply.code = f->code;
			reply.message = (char *)(f->message ? f->message : "");
			if (req != NULL)
				wire_request_free(req);
			len = wire_encode(&reply.base, out, sizeof out);
			if (len == 0 || SSL_write(ssl, out, (int)len) <= 0)
				goto done;
			n -= WIRE_HEADER_LEN + body;
			memmove(buf, buf + WIRE_HEADER_LEN + body, n);
		}
		if (n == sizeof buf)
			goto done;
		r = SSL_read(ssl, buf + n, (int)(sizeof buf - n));
		if (r <= 0) {
			if (SSL_get_error(ssl, r) == SSL_ERROR_ZERO_RETURN)
				f->close_notifies++;
			goto done;
		}
		n += r;
	}
done:
	ERR_clear_error();
	SSL_free(ssl);
	close(fd);
}

/* The fake broker's thread: accept and serve until stopped. */
static void *
harness_fake_main(void *arg)
{
	struct harness_fake *f = arg;
	struct pollfd pfd;
	int fd;

	pfd.fd = f->lfd;
	pfd.events = POLLIN;
	while (!f->stop) {
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		if ((fd = accept(f->lfd, NULL, NULL)) == -1)
			continue;
		harness_fake_conn(f, fd);
	}
	return NULL;
}

int
harness_fake_start(struct harness *h, struct harness_fake *f)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	char path[512];
	SSL_CTX *ctx;
	pthread_t t;

	f->requests = f->close_notifies = 0;
	f->stop = 0;
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		return -1;
	f->ctx = ctx;
	f->lfd = -1;
	snprintf(path, sizeof path, "%s/broker.pem", h->certs);
	if (SSL_CTX_use_certificate_chain_file(ctx, path) != 1)
		goto fail;
	snprintf(path, sizeof path, "%s/broker.key", h->certs);
	if (SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM) != 1)
		goto fail;
	snprintf(path, sizeof path, "%s/ca.pem", h->certs);
	if (SSL_CTX_load_verify_locations(ctx, path, NULL) != 1)
		goto fail;
	SSL_CTX_set_verify(
	    ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	if ((f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		goto fail;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(f->lfd, (struct sockaddr *)&sin, sizeof sin) == -1 ||
	    listen(f->lfd, 16) == -1 ||
	    getsockname(f->lfd, (struct sockaddr *)&sin, &len) == -1)
		goto fail;
	snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", ntohs(sin.sin_port));
	if (pthread_create(&t, NULL, harness_fake_main, f) != 0)
		goto fail;
	f->thread = t;
	return 0;
fail:
	harness_warnx("fake broker: cannot start");
	ERR_clear_error();
	if (f->lfd != -1)
		close(f->lfd);
	SSL_CTX_free(ctx);
	f->ctx = NULL;
	return -1;
}

void
harness_fake_stop(struct harness_fake *f)
{
	if (f->ctx == NULL)
		return;
	f->stop = 1;
	pthread_join(f->thread, NULL);
	close(f->lfd);
	SSL_CTX_free((SSL_CTX *)f->ctx);
	f->ctx = NULL;
}
