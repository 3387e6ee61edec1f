/*
 * test_redo.c: the SQLite backend's redo log (registry_redo.c and the
 * commit and replay in registry_sqlite.c), through the backend table.
 *
 * SQLite "loses" commits the way a power loss makes it (synchronous=NORMAL
 * only syncs at checkpoints): the database and its WAL are copied at an
 * earlier point and put back after the writer closed, the redo log left as
 * it is. The writer's next open must then replay every acknowledged group
 * and make the very same rows (patient ids, versions, event seqs, merge
 * ids); never a group rolled back to a savepoint, never a torn tail, never
 * a group whose SQLite commit failed, never another registry's log.
 */
#include <sys/stat.h>

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "registry_backend.h"
#include "registry_redo.h"

static const struct registry_backend *be = &registry_sqlite;
static char dir[256];
static char path[320];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/onecard-test-redo-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/registry.db", dir);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void *
writer_open(void)
{
	char err[256] = "";
	void *h = be->open(path, 1, err, sizeof(err));

	if (h == NULL)
		fail_msg("open: %s", err);
	return h;
}

/* Copy file from to to (a missing from removes to). */
static void
copy_file(const char *from, const char *to)
{
	char buf[65536];
	ssize_t n;
	int in, out;

	unlink(to);
	if ((in = open(from, O_RDONLY)) == -1)
		return;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
}

/* Keep the database and its WAL as they are now under tag. */
static void
snapshot(const char *tag)
{
	char from[400], to[400];

	copy_file(path, (snprintf(to, sizeof(to), "%s.%s", path, tag), to));
	snprintf(from, sizeof(from), "%s-wal", path);
	snprintf(to, sizeof(to), "%s-wal.%s", path, tag);
	copy_file(from, to);
}

/* Put the database back as it was at tag, as a power loss would. */
static void
restore(const char *tag)
{
	char from[400], to[400];

	snprintf(from, sizeof(from), "%s.%s", path, tag);
	copy_file(from, path);
	snprintf(from, sizeof(from), "%s-wal.%s", path, tag);
	snprintf(to, sizeof(to), "%s-wal", path);
	copy_file(from, to);
	snprintf(to, sizeof(to), "%s-shm", path);
	unlink(to);
}

/* Every row of every table, as text (the writer closed). */
static char *
dump(void)
{
	static const char *const q[] = {
	    "SELECT id, name, sex, birth_date, phone, address, version,"
	    " merged_into, created_ms FROM patients ORDER BY id",
	    "SELECT domain, value, patient_id FROM identifiers"
	    " ORDER BY domain, value",
	    "SELECT seq, op, patient_id, actor, time_ms, detail FROM events"
	    " ORDER BY seq",
	    "SELECT code, name, role, active, changed_ms FROM hospitals"
	    " ORDER BY code",
	    "SELECT id, survivor, duplicate, seq, undone FROM merges ORDER BY "
	    "id",
	    "SELECT merge_id, domain, value FROM merge_identifiers"
	    " ORDER BY 1, 2, 3",
	};
	size_t cap = 1 << 16, len = 0;
	char *out = malloc(cap);
	sqlite3 *db;
	sqlite3_stmt *s;

	assert_non_null(out);
	assert_int_equal(
	    sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
		assert_int_equal(
		    sqlite3_prepare_v2(db, q[i], -1, &s, NULL), SQLITE_OK);
		while (sqlite3_step(s) == SQLITE_ROW) {
			for (int c = 0; c < sqlite3_column_count(s); c++) {
				const char *v =
				    (const char *)sqlite3_column_text(s, c);

				len += (size_t)snprintf(out + len, cap - len,
				    "%s|", v ? v : "NULL");
				assert_true(len < cap - 1);
			}
			out[len++] = '\n';
		}
		sqlite3_finalize(s);
		out[len++] = '#';
	}
	out[len] = '\0';
	sqlite3_close(db);
	return out;
}

/* Does the registry hold patient pid? */
static int
has_patient(const char *pid)
{
	char *d = dump();
	char want[64];
	int found;

	snprintf(want, sizeof(want), "\n%s|", pid);
	found = strstr(d, want) != NULL ||
	    strncmp(d, want + 1, strlen(want + 1)) == 0;
	free(d);
	return found;
}

/* A new patient n with two identifiers and its event, in the open txn. */
static void
put_patient(void *h, int n, int64_t now)
{
	struct registry_patient p;
	struct registry_event ev = {0};
	char mrn[32], ssc[32];

	memset(&p, 0, sizeof(p));
	snprintf(p.id, sizeof(p.id), "P%04d", n);
	p.name = "Zhang Wei";
	p.sex = 1;
	p.birth_date = "1990-03-07";
	p.phone = "";
	p.address = "Beijing";
	p.version = 1;
	snprintf(mrn, sizeof(mrn), "M-%d", n);
	snprintf(ssc, sizeof(ssc), "S-%d", n);
	assert_int_equal(be->patient_insert(h, &p, now), 0);
	assert_int_equal(be->ident_insert(h, "hosp:H1", mrn, p.id), 0);
	assert_int_equal(be->ident_insert(h, "ssc", ssc, p.id), 0);
	ev.op = "enroll";
	ev.patient_id = p.id;
	ev.actor = "H1";
	ev.time_ms = now;
	ev.detail = mrn;
	assert_int_equal(be->event_append(h, &ev), 0);
}

/* One group: patient n under its own savepoint, committed. */
static void
group_patient(void *h, int n)
{
	assert_int_equal(be->begin(h, 1), 0);
	assert_int_equal(be->savepoint(h), 0);
	put_patient(h, n, 1000 + n);
	assert_int_equal(be->release(h), 0);
	assert_int_equal(be->commit(h), 0);
}

/* A group of everything else: update, merge, move, undo, delete. */
static void
group_the_rest(void *h)
{
	struct registry_patient p;
	struct registry_hospital hosp = {"H2", "Second", 1, 1};
	struct registry_event ev = {0};
	int64_t merge_id = 0;

	assert_int_equal(be->begin(h, 1), 0);
	assert_int_equal(be->savepoint(h), 0);
	assert_int_equal(be->hospital_put(h, &hosp, 5000), 0);
	memset(&p, 0, sizeof(p));
	snprintf(p.id, sizeof(p.id), "P0002");
	p.name = "Zhang Wei";
	p.sex = 1;
	p.birth_date = "1990-03-07";
	p.phone = "555";
	p.address = "Shanghai";
	p.version = 2;
	snprintf(p.merged_into, sizeof(p.merged_into), "P0001");
	assert_int_equal(be->patient_update(h, &p), 0);
	assert_int_equal(
	    be->merge_insert(h, "P0001", "P0002", 7, &merge_id), 0);
	assert_true(merge_id > 0);
	assert_int_equal(
	    be->merge_ident_insert(h, merge_id, "hosp:H1", "M-2"), 0);
	assert_int_equal(be->ident_move(h, "hosp:H1", "M-2", "P0001"), 0);
	assert_int_equal(be->merge_undo(h, merge_id), 0);
	assert_int_equal(be->ident_delete(h, "ssc", "S-2"), 0);
	ev.op = "merge";
	ev.patient_id = "P0001";
	ev.actor = "admin";
	ev.time_ms = 5001;
	ev.detail = "duplicate=P0002";
	assert_int_equal(be->event_append(h, &ev), 0);
	assert_int_equal(be->release(h), 0);
	assert_int_equal(be->commit(h), 0);
}

static void
replay_restores_every_acknowledged_group_with_identical_rows(void **state)
{
	void *h = writer_open();
	char *want, *lost, *got;

	(void)state;
	group_patient(h, 1);
	snapshot("old");
	group_patient(h, 2);
	group_patient(h, 3);
	group_the_rest(h);
	be->close(h);
	want = dump();

	restore("old");
	lost = dump();
	assert_string_not_equal(lost, want); /* SQLite lost groups 2..4 */
	h = writer_open();
	be->close(h);
	got = dump();
	assert_string_equal(got, want);
	free(want);
	free(lost);
	free(got);
}

static void
records_survive_a_reopen_and_the_next_groups_follow_them(void **state)
{
	void *h = writer_open();
	char *got;

	(void)state;
	group_patient(h, 1);
	be->close(h);
	h = writer_open();
	snapshot("old");
	group_patient(h, 2);
	group_the_rest(h);
	be->close(h);
	restore("old");
	h = writer_open();
	group_patient(h, 3); /* after a replay, the log goes on */
	be->close(h);
	got = dump();
	assert_true(has_patient("P0001") && has_patient("P0002") &&
	    has_patient("P0003"));
	assert_non_null(strstr(got, "H2|Second|1|1|5000|"));
	free(got);
}

static void
rolled_back_savepoint_records_are_not_replayed(void **state)
{
	void *h = writer_open();
	char *want, *got;

	(void)state;
	snapshot("old");
	assert_int_equal(be->begin(h, 1), 0);
	assert_int_equal(be->savepoint(h), 0);
	put_patient(h, 1, 1001);
	assert_int_equal(be->release(h), 0);
	assert_int_equal(be->savepoint(h), 0);
	put_patient(h, 2, 1002); /* a write that failed half-way */
	assert_int_equal(be->rollback_to(h), 0);
	assert_int_equal(be->savepoint(h), 0);
	put_patient(h, 3, 1003);
	assert_int_equal(be->release(h), 0);
	assert_int_equal(be->commit(h), 0);
	be->close(h);
	want = dump();
	assert_false(has_patient("P0002"));

	restore("old");
	assert_false(has_patient("P0001"));
	h = writer_open();
	be->close(h);
	got = dump();
	assert_string_equal(got, want);
	assert_true(has_patient("P0001") && has_patient("P0003"));
	assert_false(has_patient("P0002"));
	free(want);
	free(got);
}

/* Flip a byte of the last entry's payload in the redo log. */
static void
tear_last_entry(void)
{
	char rpath[400];
	unsigned char hdr[16];
	off_t off = 32, last = -1;
	int fd;

	snprintf(rpath, sizeof(rpath), "%s-redo", path);
	fd = open(rpath, O_RDWR);
	assert_true(fd >= 0);
	for (;;) {
		uint32_t len;

		if (pread(fd, hdr, sizeof(hdr), off) != (ssize_t)sizeof(hdr))
			break;
		len = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 |
		    (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 24;
		if (len == 0)
			break;
		last = off;
		off += 16 + (off_t)len;
	}
	assert_true(last > 0);
	assert_int_equal(pread(fd, hdr, 1, last + 20), 1);
	hdr[0] ^= 0x5a;
	assert_int_equal(pwrite(fd, hdr, 1, last + 20), 1);
	close(fd);
}

static void
torn_tail_entry_is_discarded(void **state)
{
	void *h = writer_open();

	(void)state;
	snapshot("old");
	group_patient(h, 1);
	group_patient(h, 2);
	be->close(h);
	restore("old");
	tear_last_entry(); /* group 2 never fully reached the disk */
	h = writer_open();
	assert_true(has_patient("P0001"));
	assert_false(has_patient("P0002"));
	/* The log goes on over the torn entry, and replays again. */
	snapshot("mid");
	group_patient(h, 3);
	be->close(h);
	restore("mid");
	h = writer_open();
	be->close(h);
	assert_true(has_patient("P0001") && has_patient("P0003"));
	assert_false(has_patient("P0002"));
}

static void
entry_whose_sqlite_commit_failed_is_not_replayed(void **state)
{
	void *h = writer_open();

	(void)state;
	snapshot("old");
	group_patient(h, 1);
	assert_int_equal(be->begin(h, 1), 0);
	put_patient(h, 2, 1002);
	registry_sqlite_fail_commit = 1;
	assert_int_equal(be->commit(h), REGISTRY_EUNAVAIL);
	assert_int_equal(be->in_txn(h), 0);
	be->close(h);
	restore("old");
	h = writer_open();
	assert_true(has_patient("P0001"));
	assert_false(has_patient("P0002"));

	/* And when a group follows the failed one, in the same place. */
	snapshot("mid");
	assert_int_equal(be->begin(h, 1), 0);
	put_patient(h, 3, 1003);
	registry_sqlite_fail_commit = 1;
	assert_int_equal(be->commit(h), REGISTRY_EUNAVAIL);
	group_patient(h, 4);
	be->close(h);
	restore("mid");
	h = writer_open();
	be->close(h);
	assert_true(has_patient("P0001") && has_patient("P0004"));
	assert_false(has_patient("P0002") || has_patient("P0003"));
}

static void
another_registrys_log_is_set_aside_not_replayed(void **state)
{
	char rm[1024], orphan[400];
	struct stat st;
	void *h = writer_open();

	(void)state;
	group_patient(h, 1);
	be->close(h);
	/* A new registry where the old one was; its log left behind. */
	snprintf(
	    rm, sizeof(rm), "rm -f '%s' '%s-wal' '%s-shm'", path, path, path);
	assert_int_equal(system(rm), 0);
	h = writer_open();
	group_patient(h, 2);
	be->close(h);
	assert_false(has_patient("P0001"));
	assert_true(has_patient("P0002"));
	snprintf(orphan, sizeof(orphan), "%s-redo.orphan", path);
	assert_int_equal(stat(orphan, &st), 0);
}

static void
redo_buffer_marks_drop_only_what_followed_them(void **state)
{
	struct redo_buf b = {0};
	struct redo_reader r;

	(void)state;
	redo_buf_put(&b, 1, "si", "a", (int64_t)1);
	assert_int_equal(redo_buf_mark(&b), 0);
	redo_buf_put(&b, 2, "s", "b");
	assert_int_equal(redo_buf_mark(&b), 0);
	redo_buf_put(&b, 3, "s", "c");
	redo_buf_rollback(&b);
	redo_buf_release(&b);
	redo_buf_put(&b, 4, "i", (int64_t)-5);
	r = (struct redo_reader){b.p, b.p + b.len, 0};
	assert_int_equal(redo_get_type(&r), 1);
	assert_string_equal(redo_get_str(&r), "a");
	assert_int_equal(redo_get_int(&r), 1);
	assert_int_equal(redo_get_type(&r), 2);
	assert_string_equal(redo_get_str(&r), "b");
	assert_int_equal(redo_get_type(&r), 4);
	assert_int_equal(redo_get_int(&r), -5);
	assert_int_equal(redo_get_type(&r), -1);
	assert_false(r.bad);
	/* A record cut short reads as malformed, not past the end. */
	r = (struct redo_reader){b.p, b.p + 3, 0};
	assert_int_equal(redo_get_type(&r), 1);
	(void)redo_get_str(&r);
	assert_true(r.bad);
	redo_buf_free(&b);
	/* The CRC is CRC32C: the standard check value. */
	assert_int_equal(redo_crc32c(0, "123456789", 9), 0xe3069283u);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	    T(replay_restores_every_acknowledged_group_with_identical_rows),
	    T(records_survive_a_reopen_and_the_next_groups_follow_them),
	    T(rolled_back_savepoint_records_are_not_replayed),
	    T(torn_tail_entry_is_discarded),
	    T(entry_whose_sqlite_commit_failed_is_not_replayed),
	    T(another_registrys_log_is_set_aside_not_replayed),
	    cmocka_unit_test(redo_buffer_marks_drop_only_what_followed_them),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
