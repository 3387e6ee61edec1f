/*
 * test_faults.c: onecardd when things go wrong around it, against the real
 * daemon through the harness.
 *
 * A full disk under the registry: writes answer UNAVAILABLE (never INTERNAL,
 * never a lie), lookups keep working, the file stays intact (PRAGMA
 * integrity_check) and writes come back once there is space again, without
 * a restart. A read-only, locked or (at start-up) full registry stops
 * start-up with a non-zero exit and a message that names the file. A thousand
 * connections dropped in the middle of their handshake leave the broker serving
 * and holding no descriptor for them. A client that sends its ClientHello a
 * byte at a time is cut off at the handshake deadline while others are served.
 * SIGHUP under write load drops no connection and loses no acknowledged write.
 *
 * Covered elsewhere and not repeated here: kill -9 under write load
 * (test_durability.c), SIGTERM under load and SIGHUP's log reopen
 * (test_signals.c), a client that never reads and an idle client
 * (test_limits.c), SIGHUP's CRL reload (test_tls.c).
 *
 * The disk tests mount a small tmpfs (and an ext4 image on a loop device for
 * an immutable file); they need root, as CI has, and skip without it.
 */
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "harness.h"
#include "onecard.h"

/*
 * Enroll hosp:H1=value alone; the reply code (or -1 without a reply) and,
 * on OK, the patient id in pid.
 */
static int
enroll_mrn(struct onecard_conn *conn, const char *value, char pid[48])
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Enroll enroll = ONECARD__V1__ENROLL__INIT;
	Onecard__V1__Demographics demo = ONECARD__V1__DEMOGRAPHICS__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT, *ids[1];
	Onecard__V1__Reply *reply = NULL;
	int code = -1;

	id.domain = "hosp:H1";
	id.value = (char *)value;
	ids[0] = &id;
	/* An address makes each row take some room on the disk. */
	demo.address = "Room 101, Building 7, Jianshe Road 12, Weidu District, "
		       "Xuchang, Henan";
	enroll.demographics = &demo;
	enroll.identifiers = ids;
	enroll.n_identifiers = 1;
	req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
	req.enroll = &enroll;
	if (onecard_call(conn, &req, &reply) != ONECARD_OK)
		return -1;
	code = reply->code;
	if (code == ONECARD__V1__CODE__OK && pid != NULL)
		snprintf(pid, 48, "%s", reply->enrolled->patient->patient_id);
	onecard_reply_free(reply);
	return code;
}

/* Look up hosp:H1=value; the code, and the patient id on OK. */
static int
lookup_mrn(struct onecard_conn *conn, const char *value, char pid[48])
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Lookup lookup = ONECARD__V1__LOOKUP__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Reply *reply = NULL;
	int code;

	id.domain = "hosp:H1";
	id.value = (char *)value;
	lookup.identifier = &id;
	req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
	req.lookup = &lookup;
	if (onecard_call(conn, &req, &reply) != ONECARD_OK)
		return -1;
	code = reply->code;
	if (code == ONECARD__V1__CODE__OK && pid != NULL)
		snprintf(pid, 48, "%s", reply->patient->patient_id);
	onecard_reply_free(reply);
	return code;
}

/* Run a shell command; its exit status, or -1. */
static int __attribute__((format(printf, 1, 2))) sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	return rc == -1 || !WIFEXITED(rc) ? -1 : WEXITSTATUS(rc);
}

/* Fail, naming the Debian package, when a command the test runs is absent.
 */
static void
need_tool(const char *cmd, const char *package)
{
	if (sh("command -v %s > /dev/null 2>&1", cmd) != 0)
		fail_msg("%s not found: apt-get install %s", cmd, package);
}

/* The bytes of a real ClientHello (as H1 would send it), into buf. */
static size_t
client_hello(struct harness *h, uint8_t *buf, size_t cap)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;
	BIO *rbio, *wbio;
	char path[400];
	int n;

	assert_non_null(ctx);
	snprintf(path, sizeof(path), "%s/H1.pem", h->certs);
	SSL_CTX_use_certificate_chain_file(ctx, path);
	snprintf(path, sizeof(path), "%s/H1.key", h->certs);
	SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM);
	ssl = SSL_new(ctx);
	rbio = BIO_new(BIO_s_mem());
	wbio = BIO_new(BIO_s_mem());
	SSL_set_bio(ssl, rbio, wbio);
	SSL_set_connect_state(ssl);
	SSL_set_tlsext_host_name(ssl, "localhost");
	assert_true(SSL_do_handshake(ssl) <= 0); /* waits for the server */
	n = BIO_read(wbio, buf, (int)cap);
	assert_true(n > 100);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return (size_t)n;
}

/* Wait up to ms for the peer to close fd: 1 closed, 0 still open. */
static int
wait_closed(int fd, int ms)
{
	long long end = harness_now_ms() + ms;
	char buf[4096];

	while (harness_now_ms() < end) {
		struct pollfd p = {fd, POLLIN, 0};
		int left = (int)(end - harness_now_ms());

		if (poll(&p, 1, left > 0 ? left : 0) <= 0)
			continue;
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return 1;
	}
	return 0;
}

/* What a failed test leaves for faults_teardown to clean. */
static struct harness *live_h;
static char live_mnt[64];

/* A small tmpfs of size bytes at a fresh folder; 0 or -1. */
static int
mount_small(char *dir, size_t dirlen, const char *size)
{
	char opts[64];

	snprintf(dir, dirlen, "/tmp/onecard-faults-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(opts, sizeof(opts), "size=%s,mode=0700", size);
	if (mount("tmpfs", dir, "tmpfs", 0, opts) == -1) {
		rmdir(dir);
		return -1;
	}
	snprintf(live_mnt, sizeof(live_mnt), "%s", dir);
	return 0;
}

/* Unmount and remove what mount_small made. */
static void
unmount_small(const char *dir)
{
	umount2(dir, MNT_DETACH);
	rmdir(dir);
	live_mnt[0] = '\0';
}

/* After each test, even a failed one: no broker, folder or mount left. */
static int
faults_teardown(void **state)
{
	if (live_h != NULL) {
		harness_cleanup(live_h);
		live_h = NULL;
	}
	if (live_mnt[0] != '\0')
		unmount_small(live_mnt);
	return 0;
}

/* Fill the filesystem holding path until it refuses; bytes written. */
static long long
fill_disk(const char *path)
{
	static char chunk[65536];
	long long total = 0;
	size_t sz;
	ssize_t n;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	memset(chunk, 'F', sizeof(chunk));
	/* Big chunks first, then smaller, down to single bytes. */
	for (sz = sizeof(chunk); sz >= 1; sz /= 2)
		while ((n = write(fd, chunk, sz)) > 0)
			total += n;
	close(fd);
	return total;
}

#define DISK_ACKED 40
/* The redo log writes its zeros 2 MiB ahead, and SQLite is not on the
 * acknowledgement path: writes go on into that space (the fold into the
 * image fails meanwhile) and fail once the log cannot grow. */
#define DISK_TRIES 30000

static void
test_full_disk_answers_unavailable_keeps_lookups_and_recovers(void **state)
{
	static struct harness h;
	const char *codes[] = {"H1", NULL};
	char mnt[64], db[128], filler[128], value[32], pid[48], got[48];
	const char *extra[] = {"--db", db, NULL};
	static char acked[DISK_ACKED + DISK_TRIES][48];
	struct onecard_conn *conn, *other;
	int code, unavailable = 0, nok = 0, recovered = 0;
	char out[4096];
	FILE *p;

	if (geteuid() != 0 || mount_small(mnt, sizeof(mnt), "16m") == -1) {
		fprintf(stderr, "needs root to mount a tmpfs; skipped\n");
		skip();
	}
	need_tool("sqlite3", "sqlite3");
	snprintf(db, sizeof(db), "%s/registry.db", mnt);
	snprintf(filler, sizeof(filler), "%s/filler", mnt);
	assert_int_equal(harness_start(&h, codes, extra), 0);
	live_h = &h;
	assert_int_equal(harness_connect(&h, "H1", &conn), ONECARD_OK);
	for (int i = 0; i < DISK_ACKED; i++) {
		snprintf(value, sizeof(value), "K-%d", i);
		assert_int_equal(
		    enroll_mrn(conn, value, acked[i]), ONECARD__V1__CODE__OK);
	}

	/* Full: writes fail as UNAVAILABLE, and only as that. */
	assert_true(fill_disk(filler) > 0);
	for (int i = 0; i < DISK_TRIES && unavailable < 20; i++) {
		snprintf(value, sizeof(value), "F-%d", i);
		code = enroll_mrn(conn, value, acked[DISK_ACKED + i]);
		if (code == ONECARD__V1__CODE__OK)
			nok = i + 1;
		else {
			assert_int_equal(code, ONECARD__V1__CODE__UNAVAILABLE);
			acked[DISK_ACKED + i][0] = '\0';
			unavailable++;
		}
	}
	assert_true(unavailable > 0);
	/* Lookups keep working, here and on a new connection. */
	for (int i = 0; i < DISK_ACKED; i++) {
		snprintf(value, sizeof(value), "K-%d", i);
		assert_int_equal(
		    lookup_mrn(conn, value, got), ONECARD__V1__CODE__OK);
		assert_string_equal(got, acked[i]);
	}
	assert_int_equal(harness_connect(&h, "H1", &other), ONECARD_OK);
	assert_int_equal(lookup_mrn(other, "K-0", got), ONECARD__V1__CODE__OK);
	assert_int_equal(harness_ping(other), ONECARD__V1__CODE__OK);
	onecard_close(other);

	/* Space again: writes come back without a restart. */
	assert_int_equal(unlink(filler), 0);
	for (int t = 0; t < 100 && !recovered; t++) {
		code = enroll_mrn(conn, "R-0", pid);
		if (code == ONECARD__V1__CODE__OK)
			recovered = 1;
		else {
			assert_int_equal(code, ONECARD__V1__CODE__UNAVAILABLE);
			usleep(100 * 1000);
		}
	}
	assert_true(recovered);
	onecard_close(conn);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);

	/* Nothing corrupted: SQLite's own check, then every acknowledged
	 * write after a restart, with the same patient. */
	snprintf(out, sizeof(out), "sqlite3 '%s' 'PRAGMA integrity_check'", db);
	p = popen(out, "r");
	assert_non_null(p);
	out[0] = '\0';
	assert_non_null(fgets(out, sizeof(out), p));
	assert_int_equal(pclose(p), 0);
	assert_string_equal(out, "ok\n");
	assert_int_equal(harness_restart(&h, extra), 0);
	assert_int_equal(harness_connect(&h, "H1", &conn), ONECARD_OK);
	for (int i = 0; i < DISK_ACKED + nok; i++) {
		if (acked[i][0] == '\0')
			continue;
		if (i < DISK_ACKED)
			snprintf(value, sizeof(value), "K-%d", i);
		else
			snprintf(value, sizeof(value), "F-%d", i - DISK_ACKED);
		assert_int_equal(
		    lookup_mrn(conn, value, got), ONECARD__V1__CODE__OK);
		assert_string_equal(got, acked[i]);
	}
	assert_int_equal(lookup_mrn(conn, "R-0", got), ONECARD__V1__CODE__OK);
	assert_string_equal(got, pid);
	onecard_close(conn);
	harness_cleanup(&h);
	live_h = NULL;
	unmount_small(mnt);
}

/*
 * Start onecardd on db with the harness's certificates (h already ran once)
 * and wait for it to exit; its status, with stderr in log. -1 if it was
 * still running after timeout_ms (it is killed then).
 */
static int
start_expecting_exit(
    struct harness *h, const char *db, char *log, size_t loglen, int timeout_ms)
{
	char bin[512], cert[400], key[400], ca[400], logpath[400];
	pid_t pid;
	int st = 0, fd;
	long long end;
	ssize_t n;

	snprintf(bin, sizeof(bin), "%s/onecardd", ONECARD_BIN_DIR);
	snprintf(cert, sizeof(cert), "%s/broker.pem", h->certs);
	snprintf(key, sizeof(key), "%s/broker.key", h->certs);
	snprintf(ca, sizeof(ca), "%s/ca.pem", h->certs);
	snprintf(logpath, sizeof(logpath), "%s/startup.log", h->dir);
	if ((pid = fork()) == 0) {
		fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, STDERR_FILENO);
		execl(bin, bin, "--listen", "127.0.0.1:0", "--db", db, "--cert",
		    cert, "--key", key, "--ca", ca, "--admins", "admin",
		    "--threads", "1", (char *)NULL);
		_exit(127);
	}
	assert_true(pid > 0);
	end = harness_now_ms() + timeout_ms;
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (harness_now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1;
		}
		usleep(50 * 1000);
	}
	log[0] = '\0';
	if ((fd = open(logpath, O_RDONLY)) >= 0) {
		n = read(fd, log, loglen - 1);
		log[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/*
 * Did onecardd refuse to start (exit non-zero, stderr naming db)? 1 if so;
 * otherwise 0, with what went wrong printed for the case named what.
 */
static int
refused_naming(const char *what, int status, const char *log, const char *db)
{
	if (status == -1)
		fprintf(stderr,
		    "%s: onecardd started and kept running on %s, a registry "
		    "it cannot write\n",
		    what, db);
	else if (status == 0)
		fprintf(stderr, "%s: onecardd exited 0\n", what);
	else if (strstr(log, db) == NULL)
		fprintf(stderr,
		    "%s: the start-up error does not name %s:\n%s\n", what, db,
		    log);
	else
		return 1;
	return 0;
}

static void
test_read_only_registry_stops_start_up_naming_the_file(void **state)
{
	static struct harness h;
	const char *codes[] = {"H1", NULL};
	char mnt[64], db[128], img[400], ext[400], log[8192];
	int rc, ok_fs, ok_file = 1;

	if (geteuid() != 0 || mount_small(mnt, sizeof(mnt), "8m") == -1) {
		fprintf(stderr, "needs root to mount a tmpfs; skipped\n");
		skip();
	}
	/* A registry made by the broker itself, then the disk made read-only.
	 */
	snprintf(db, sizeof(db), "%s/registry.db", mnt);
	{
		const char *extra[] = {"--db", db, NULL};
		assert_int_equal(harness_start(&h, codes, extra), 0);
		live_h = &h;
	}
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	assert_int_equal(
	    mount(NULL, mnt, NULL, MS_REMOUNT | MS_RDONLY, NULL), 0);
	rc = start_expecting_exit(&h, db, log, sizeof(log), 20000);
	ok_fs = refused_naming("read-only filesystem", rc, log, db);

	/* A read-only file on a writable disk: immutable, which binds root
	 * too (an ext4 image on a loop device; tmpfs has no such flag). */
	snprintf(img, sizeof(img), "%s/ext4.img", h.dir);
	snprintf(ext, sizeof(ext), "%s/ext4", h.dir);
	if (sh("truncate -s 8M '%s' && mkfs.ext4 -q '%s' && mkdir '%s' && "
	       "mount -o loop '%s' '%s' 2>/dev/null",
		img, img, ext, img, ext) == 0) {
		char edb[420];

		snprintf(edb, sizeof(edb), "%s/registry.db", ext);
		assert_int_equal(
		    sh("cp '%s' '%s' && chattr +i '%s'", db, edb, edb), 0);
		rc = start_expecting_exit(&h, edb, log, sizeof(log), 20000);
		sh("chattr -i '%s'; umount '%s'", edb, ext);
		ok_file = refused_naming("immutable file", rc, log, edb);
	} else
		fprintf(stderr,
		    "no loop device for an ext4 image; the "
		    "immutable-file case is skipped\n");
	harness_cleanup(&h);
	live_h = NULL;
	unmount_small(mnt);
	assert_true(ok_fs);
	assert_true(ok_file);
}

static void
test_full_disk_at_start_up_stops_it_naming_the_file(void **state)
{
	static struct harness h;
	const char *codes[] = {"H1", NULL};
	char mnt[64], db[128], filler[128], log[8192];
	int rc;

	if (geteuid() != 0 || mount_small(mnt, sizeof(mnt), "1m") == -1) {
		fprintf(stderr, "needs root to mount a tmpfs; skipped\n");
		skip();
	}
	/* The harness's broker only makes the certificates here. */
	assert_int_equal(harness_start(&h, codes, NULL), 0);
	live_h = &h;
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	snprintf(db, sizeof(db), "%s/registry.db", mnt);
	snprintf(filler, sizeof(filler), "%s/filler", mnt);
	assert_true(fill_disk(filler) > 0);
	rc = start_expecting_exit(&h, db, log, sizeof(log), 20000);
	harness_cleanup(&h);
	live_h = NULL;
	unmount_small(mnt);
	assert_true(refused_naming("full disk at start-up", rc, log, db));
}

static void
test_locked_registry_stops_start_up_naming_the_file(void **state)
{
	static struct harness h;
	const char *codes[] = {"H1", NULL};
	char cmd[600], log[8192];
	FILE *locker;
	int rc;

	need_tool("sqlite3", "sqlite3");
	assert_int_equal(harness_start(&h, codes, NULL), 0);
	live_h = &h;
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	/* Another process holds the file's exclusive lock while we start. */
	snprintf(cmd, sizeof(cmd), "sqlite3 '%s' > /dev/null", h.db);
	locker = popen(cmd, "w");
	assert_non_null(locker);
	fputs("PRAGMA locking_mode=EXCLUSIVE;\nBEGIN EXCLUSIVE;\n"
	      "SELECT count(*) FROM sqlite_master;\n",
	    locker);
	fflush(locker);
	usleep(500 * 1000);
	rc = start_expecting_exit(&h, h.db, log, sizeof(log), 60000);
	fputs("ROLLBACK;\n.quit\n", locker);
	pclose(locker);
	assert_true(refused_naming("locked registry", rc, log, h.db));
	/* Once the lock is gone the same registry serves again. */
	assert_int_equal(harness_restart(&h, NULL), 0);
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	harness_cleanup(&h);
	live_h = NULL;
}

/*
 * A backup onto a disk that fills up fails naming the file, leaves nothing
 * behind, and the broker never notices; with room it succeeds.
 */
static void
test_backup_onto_a_full_disk_fails_cleanly(void **state)
{
	static struct harness h;
	const char *codes[] = {"H1", NULL};
	struct harness_load *load;
	char mnt[64], cmd[1200], msg[4096], out[4096];
	DIR *d;
	struct dirent *de;
	int left = 0;

	if (geteuid() != 0 || mount_small(mnt, sizeof(mnt), "256k") == -1) {
		fprintf(stderr, "needs root to mount a tmpfs; skipped\n");
		skip();
	}
	assert_int_equal(harness_start(&h, codes, NULL), 0);
	live_h = &h;
	load = harness_load_start(&h, "H1", "D", 4);
	assert_non_null(load);
	usleep(700 * 1000);
	snprintf(cmd, sizeof(cmd), "onecardctl backup --db '%s' '%s/copy.db'",
	    h.db, mnt);
	assert_int_equal(
	    harness_run2(&h, NULL, out, sizeof(out), msg, sizeof(msg), cmd), 5);
	assert_non_null(strstr(msg, mnt));
	/* Nothing left on the full disk: no copy, no partial one. */
	assert_non_null(d = opendir(mnt));
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.') {
			fprintf(stderr, "left behind: %s\n", de->d_name);
			left++;
		}
	closedir(d);
	assert_int_equal(left, 0);
	/* The broker went on taking writes. */
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	assert_true(harness_load_wait(load) > 0);
	assert_int_equal(harness_restart(&h, NULL), 0);
	assert_int_equal(harness_load_verify(load), 0);
	/* With room, the same backup works. */
	snprintf(cmd, sizeof(cmd), "onecardctl backup --db '%s' '%s/copy.db'",
	    h.db, h.dir);
	assert_int_equal(harness_run(&h, NULL, out, sizeof(out), cmd), 0);
	harness_load_free(load);
	harness_cleanup(&h);
	live_h = NULL;
	unmount_small(mnt);
}

/*
 * One broker per registry: a second onecardd on the same --db exits at
 * once, naming the registry and the process that holds it, while the first
 * goes on serving; once the first is gone the second starts.
 */
static void
test_second_broker_on_the_registry_exits_naming_the_holder(void **state)
{
	static struct harness h;
	const char *codes[] = {"H1", NULL};
	char log[8192], holder[32];
	long long t0;
	int rc;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	live_h = &h;
	snprintf(holder, sizeof(holder), "process %ld", (long)h.pid);
	t0 = harness_now_ms();
	rc = start_expecting_exit(&h, h.db, log, sizeof(log), 20000);
	assert_true(refused_naming("second broker", rc, log, h.db));
	if (strstr(log, holder) == NULL)
		fprintf(
		    stderr, "second broker: no \"%s\" in:\n%s\n", holder, log);
	assert_non_null(strstr(log, holder));
	assert_true(harness_now_ms() - t0 < 5000);
	/* The first one never noticed. */
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	assert_int_equal(harness_restart(&h, NULL), 0);
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	harness_cleanup(&h);
	live_h = NULL;
}

#define DROPS 1000
#define WAVE  100

static void
test_thousand_connections_dropped_mid_handshake_leave_it_serving(void **state)
{
	static struct harness h;
	const char *codes[] = {"H1", NULL};
	uint8_t hello[4096];
	size_t hlen;
	int fds[WAVE], base, now = -1;

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	live_h = &h;
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	usleep(300 * 1000);
	base = harness_fd_count(h.pid);
	assert_true(base > 0);
	hlen = client_hello(&h, hello, sizeof(hello));

	for (int i = 0; i < DROPS; i += WAVE) {
		for (int k = 0; k < WAVE; k++) {
			int n = i + k;
			/* Nothing, a piece of the ClientHello, or all of it. */
			size_t part = (size_t)(n * 7919) % (hlen + 1);

			fds[k] = harness_tcp_connect(h.port);
			assert_true(fds[k] >= 0);
			if (part > 0)
				assert_int_equal(
				    send(fds[k], hello, part, MSG_NOSIGNAL),
				    (ssize_t)part);
		}
		if (i == DROPS / 2)
			/* Served while half-open handshakes are pending. */
			assert_int_equal(
			    harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
		for (int k = 0; k < WAVE; k++) {
			if ((i + k) % 2) {
				/* Every other one with a reset, not a FIN. */
				struct linger l = {1, 0};
				setsockopt(fds[k], SOL_SOCKET, SO_LINGER, &l,
				    sizeof(l));
			}
			close(fds[k]);
		}
	}
	/* Still serving, and every dropped connection's descriptor freed. */
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	for (int t = 0; t < 50; t++) {
		now = harness_fd_count(h.pid);
		if (now <= base + 2)
			break;
		usleep(100 * 1000);
	}
	if (now > base + 2)
		fail_msg("onecardd holds %d descriptors, %d before the drops",
		    now, base);
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	harness_cleanup(&h);
	live_h = NULL;
}

static void
test_slow_loris_handshake_is_cut_off_at_the_deadline(void **state)
{
	static struct harness h;
	const char *codes[] = {"H1", NULL};
	const char *extra[] = {"--handshake-timeout", "2", NULL};
	uint8_t hello[4096];
	size_t hlen, sent = 0;
	long long start, cut = -1;
	int fd;

	assert_int_equal(harness_start(&h, codes, extra), 0);
	live_h = &h;
	hlen = client_hello(&h, hello, sizeof(hello));
	fd = harness_tcp_connect(h.port);
	assert_true(fd >= 0);
	start = harness_now_ms();
	/* A byte every 500 ms: always busy, never done. 12 s at most. */
	while (sent < hlen && harness_now_ms() - start < 12000) {
		if (send(fd, hello + sent, 1, MSG_NOSIGNAL) != 1 ||
		    wait_closed(fd, 500)) {
			cut = harness_now_ms() - start;
			break;
		}
		sent++;
		/* Others are served meanwhile. */
		if (sent % 4 == 0 &&
		    harness_ping_as(&h, "H1") != ONECARD__V1__CODE__OK)
			fail_msg("another client was not served %lld ms into "
				 "the trickle (%zu bytes sent)",
			    harness_now_ms() - start, sent);
	}
	close(fd);
	if (cut == -1)
		fail_msg("a ClientHello trickled a byte every 500 ms was still "
			 "open after %lld ms (%zu bytes); --handshake-timeout "
			 "is 2 s",
		    harness_now_ms() - start, sent);
	/* The deadline counts from accept, not from the last byte. */
	assert_true(cut < 2000 + 1500);
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	harness_cleanup(&h);
	live_h = NULL;
}

/* One client enrolling hosp:H1=G<t>-<i> in pipelined windows until stop. */
#define LOADERS 4
#define WINDOW  8
#define MAX_ACK 200000

struct loader {
	struct harness *h;
	int t;
	pthread_t thread;
	atomic_int *stop;
	int dropped; /* the connection ended before stop was set */
	size_t nack;
	char (*pid)[48];
};

static void *
loader_main(void *arg)
{
	struct loader *l = arg;
	struct onecard_conn *conn;
	Onecard__V1__Reply *reply;
	size_t next = 0;

	if (harness_connect(l->h, "H1", &conn) != ONECARD_OK) {
		l->dropped = 1;
		return NULL;
	}
	while (!atomic_load(l->stop) && next + WINDOW <= MAX_ACK) {
		char values[WINDOW][32];

		for (size_t k = 0; k < WINDOW; k++) {
			Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
			Onecard__V1__Enroll en = ONECARD__V1__ENROLL__INIT;
			Onecard__V1__Identifier id =
			    ONECARD__V1__IDENTIFIER__INIT;
			Onecard__V1__Identifier *ids[1] = {&id};

			snprintf(values[k], sizeof(values[k]), "G%d-%zu", l->t,
			    next + k);
			id.domain = "hosp:H1";
			id.value = values[k];
			en.identifiers = ids;
			en.n_identifiers = 1;
			req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
			req.enroll = &en;
			req.id = next + k + 1;
			if (onecard_send(conn, &req) != ONECARD_OK)
				goto dropped;
		}
		for (size_t k = 0; k < WINDOW; k++) {
			if (onecard_recv(conn, &reply) != ONECARD_OK)
				goto dropped;
			if (reply->code != ONECARD__V1__CODE__OK ||
			    reply->result_case !=
				ONECARD__V1__REPLY__RESULT_ENROLLED) {
				onecard_reply_free(reply);
				goto dropped;
			}
			snprintf(l->pid[next + k], sizeof(l->pid[0]), "%s",
			    reply->enrolled->patient->patient_id);
			l->nack = next + k + 1;
			onecard_reply_free(reply);
		}
		next += WINDOW;
	}
	onecard_close(conn);
	return NULL;
dropped:
	l->dropped = 1;
	onecard_close(conn);
	return NULL;
}

static void
test_sighup_under_write_load_drops_nothing_and_loses_nothing(void **state)
{
	static struct harness h;
	const char *codes[] = {"H1", NULL};
	struct loader l[LOADERS];
	struct onecard_conn *conn;
	atomic_int stop = 0;
	size_t total = 0;
	char value[32], got[48];

	assert_int_equal(harness_start(&h, codes, NULL), 0);
	live_h = &h;
	for (int t = 0; t < LOADERS; t++) {
		l[t] = (struct loader){.h = &h, .t = t, .stop = &stop};
		l[t].pid = calloc(MAX_ACK, sizeof(*l[t].pid));
		assert_non_null(l[t].pid);
		assert_int_equal(
		    pthread_create(&l[t].thread, NULL, loader_main, &l[t]), 0);
	}
	usleep(300 * 1000);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(kill(h.pid, SIGHUP), 0);
		usleep(150 * 1000);
	}
	usleep(300 * 1000);
	atomic_store(&stop, 1);
	for (int t = 0; t < LOADERS; t++) {
		pthread_join(l[t].thread, NULL);
		assert_false(l[t].dropped);
		total += l[t].nack;
	}
	assert_true(total > 0);
	assert_int_equal(harness_ping_as(&h, "H1"), ONECARD__V1__CODE__OK);
	assert_int_equal(harness_stop(&h, SIGTERM), 0);
	assert_int_equal(harness_restart(&h, NULL), 0);
	assert_int_equal(harness_connect(&h, "H1", &conn), ONECARD_OK);
	for (int t = 0; t < LOADERS; t++) {
		for (size_t i = 0; i < l[t].nack; i++) {
			snprintf(value, sizeof(value), "G%d-%zu", t, i);
			assert_int_equal(lookup_mrn(conn, value, got),
			    ONECARD__V1__CODE__OK);
			assert_string_equal(got, l[t].pid[i]);
		}
		free(l[t].pid);
	}
	onecard_close(conn);
	harness_cleanup(&h);
	live_h = NULL;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(
		test_full_disk_answers_unavailable_keeps_lookups_and_recovers,
		faults_teardown),
	    cmocka_unit_test_teardown(
		test_read_only_registry_stops_start_up_naming_the_file,
		faults_teardown),
	    cmocka_unit_test_teardown(
		test_full_disk_at_start_up_stops_it_naming_the_file,
		faults_teardown),
	    cmocka_unit_test_teardown(
		test_locked_registry_stops_start_up_naming_the_file,
		faults_teardown),
	    cmocka_unit_test_teardown(
		test_backup_onto_a_full_disk_fails_cleanly, faults_teardown),
	    cmocka_unit_test_teardown(
		test_second_broker_on_the_registry_exits_naming_the_holder,
		faults_teardown),
	    cmocka_unit_test_teardown(
		test_thousand_connections_dropped_mid_handshake_leave_it_serving,
		faults_teardown),
	    cmocka_unit_test_teardown(
		test_slow_loris_handshake_is_cut_off_at_the_deadline,
		faults_teardown),
	    cmocka_unit_test_teardown(
		test_sighup_under_write_load_drops_nothing_and_loses_nothing,
		faults_teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
