/*
 * registry_sqlite.c: the SQLite store behind registry_backend.h.
 *
 * Owns the schema and its migrations (run by the writer handle at open),
 * the connection settings (WAL, synchronous=FULL so a COMMIT is on disk
 * when it returns, a busy timeout) and one prepared statement per query,
 * prepared on first use and reset after every use so a read handle never
 * holds a snapshot between requests. It knows nothing of the rules: it
 * stores what registry.c tells it to and logs an SQLite error once, here.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "log.h"
#include "registry_backend.h"

#define SQLITE_BUSY_MS        5000
#define SQLITE_STMTJRNL_BYTES (1024 * 1024) /* a savepoint's journal in RAM */
/*
 * Every handle: a memory map up to SQLite's 2 GiB cap and a page cache so a
 * lookup reads no page through a syscall. The writer's cache is larger (an
 * enroll touches a random page of several indexes, and a page missed is a
 * page read before it is changed), and it lets the WAL grow to 64 MiB
 * before a commit copies it back: a page changed by many batches in that
 * time is copied once.
 */
#define SQLITE_READ_PRAGMAS                                                    \
	"PRAGMA mmap_size=2147418112; PRAGMA cache_size=-32768;"
#define SQLITE_WRITER_PRAGMAS                                                  \
	"PRAGMA cache_size=-262144; PRAGMA wal_autocheckpoint=16384;"

/* Each migration takes the schema from version i to i + 1. */
static const char *const sqlite_migrations[] = {
    "CREATE TABLE patients ("
    " id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '',"
    " sex INTEGER NOT NULL DEFAULT 0, birth_date TEXT NOT NULL DEFAULT '',"
    " phone TEXT NOT NULL DEFAULT '', address TEXT NOT NULL DEFAULT '',"
    " version INTEGER NOT NULL, merged_into TEXT NOT NULL DEFAULT '',"
    " created_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX patients_name_birth ON patients(name, birth_date);"
    "CREATE INDEX patients_birth ON patients(birth_date);"
    "CREATE TABLE identifiers ("
    " domain TEXT NOT NULL, value TEXT NOT NULL, patient_id TEXT NOT NULL,"
    " PRIMARY KEY (domain, value)) WITHOUT ROWID;"
    "CREATE INDEX identifiers_patient ON identifiers(patient_id);"
    "CREATE TABLE events ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL,"
    " patient_id TEXT NOT NULL, actor TEXT NOT NULL,"
    " time_ms INTEGER NOT NULL, detail TEXT NOT NULL);"
    "CREATE INDEX events_patient ON events(patient_id, seq);"
    "CREATE TABLE hospitals ("
    " code TEXT PRIMARY KEY, name TEXT NOT NULL, role INTEGER NOT NULL,"
    " active INTEGER NOT NULL, changed_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE merges ("
    " id INTEGER PRIMARY KEY, survivor TEXT NOT NULL,"
    " duplicate TEXT NOT NULL, seq INTEGER NOT NULL,"
    " undone INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX merges_duplicate ON merges(duplicate, undone);"
    "CREATE TABLE merge_identifiers ("
    " merge_id INTEGER NOT NULL, domain TEXT NOT NULL, value TEXT NOT NULL,"
    " PRIMARY KEY (merge_id, domain, value)) WITHOUT ROWID;",
};
#define SQLITE_NMIGRATIONS                                                     \
	(sizeof(sqlite_migrations) / sizeof(sqlite_migrations[0]))

enum sqlite_stmt {
	ST_BEGIN,
	ST_BEGIN_IMMEDIATE,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SAVEPOINT,
	ST_RELEASE,
	ST_ROLLBACK_TO,
	ST_PING,
	ST_IDENT_OWNER,
	ST_IDENT_PATIENT,
	ST_IDENT_RECORD,
	ST_PATIENT_RECORD,
	ST_IDENT_INSERT,
	ST_IDENT_DELETE,
	ST_IDENT_MOVE,
	ST_PATIENT_IDENTS,
	ST_PATIENT_GET,
	ST_PATIENT_INSERT,
	ST_PATIENT_UPDATE,
	ST_PATIENT_PAGE,
	ST_SEARCH_NAME_BIRTH,
	ST_SEARCH_NAME,
	ST_SEARCH_BIRTH,
	ST_EVENT_APPEND,
	ST_EVENT_LIST,
	ST_HOSPITAL_GET,
	ST_HOSPITAL_PUT,
	ST_HOSPITAL_LIST,
	ST_MERGE_INSERT,
	ST_MERGE_IDENT_INSERT,
	ST_MERGE_FIND,
	ST_MERGE_IDENTS,
	ST_MERGE_UNDO,
	ST_COUNT_PATIENTS,
	ST_COUNT_DOMAINS,
	ST_LAST_SEQ,
	ST_MAX
};

static const char *const sqlite_sql[ST_MAX] = {
    [ST_BEGIN] = "BEGIN",
    [ST_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT w",
    [ST_RELEASE] = "RELEASE w",
    [ST_ROLLBACK_TO] = "ROLLBACK TO w",
    [ST_PING] = "SELECT 1",
    [ST_IDENT_OWNER] =
	"SELECT patient_id FROM identifiers WHERE domain = ?1 AND value = ?2",
    [ST_IDENT_PATIENT] =
	"SELECT p.name, p.sex, p.birth_date, p.phone, p.address, p.version,"
	" p.merged_into, p.id FROM identifiers i JOIN patients p"
	" ON p.id = i.patient_id WHERE i.domain = ?1 AND i.value = ?2",
    [ST_IDENT_RECORD] =
	"SELECT p.name, p.sex, p.birth_date, p.phone, p.address, p.version,"
	" p.merged_into, p.id, j.domain, j.value FROM identifiers i"
	" JOIN patients p ON p.id = i.patient_id"
	" JOIN identifiers j ON j.patient_id = p.id"
	" WHERE i.domain = ?1 AND i.value = ?2 ORDER BY j.domain, j.value",
    [ST_PATIENT_RECORD] =
	"SELECT p.name, p.sex, p.birth_date, p.phone, p.address, p.version,"
	" p.merged_into, p.id, j.domain, j.value FROM patients p"
	" LEFT JOIN identifiers j ON j.patient_id = p.id"
	" WHERE p.id = ?1 ORDER BY j.domain, j.value",
    [ST_IDENT_INSERT] =
	"INSERT INTO identifiers (domain, value, patient_id) VALUES (?1,?2,?3)",
    [ST_IDENT_DELETE] =
	"DELETE FROM identifiers WHERE domain = ?1 AND value = ?2",
    [ST_IDENT_MOVE] = "UPDATE identifiers SET patient_id = ?3"
		      " WHERE domain = ?1 AND value = ?2",
    [ST_PATIENT_IDENTS] = "SELECT domain, value FROM identifiers"
			  " WHERE patient_id = ?1 ORDER BY domain, value",
    [ST_PATIENT_GET] = "SELECT name, sex, birth_date, phone, address,"
		       " version, merged_into FROM patients WHERE id = ?1",
    [ST_PATIENT_INSERT] =
	"INSERT INTO patients (id, name, sex, birth_date, phone, address,"
	" version, merged_into, created_ms) VALUES "
	"(?1,?2,?3,?4,?5,?6,?7,?8,?9)",
    [ST_PATIENT_UPDATE] =
	"UPDATE patients SET name = ?2, sex = ?3, birth_date = ?4,"
	" phone = ?5, address = ?6, version = ?7, merged_into = ?8"
	" WHERE id = ?1",
    [ST_PATIENT_PAGE] = "SELECT id FROM patients WHERE id > ?1"
			" AND merged_into = '' ORDER BY id LIMIT ?2",
    [ST_SEARCH_NAME_BIRTH] =
	"SELECT id FROM patients WHERE name = ?1 AND birth_date = ?2"
	" AND merged_into = '' AND (?3 = 0 OR sex = ?3) ORDER BY id LIMIT ?4",
    [ST_SEARCH_NAME] = "SELECT id FROM patients WHERE name = ?1"
		       " AND merged_into = '' AND (?3 = 0 OR sex = ?3)"
		       " ORDER BY id LIMIT ?4",
    [ST_SEARCH_BIRTH] = "SELECT id FROM patients WHERE birth_date = ?2"
			" AND merged_into = '' AND (?3 = 0 OR sex = ?3)"
			" ORDER BY id LIMIT ?4",
    [ST_EVENT_APPEND] =
	"INSERT INTO events (op, patient_id, actor, time_ms, detail)"
	" VALUES (?1,?2,?3,?4,?5)",
    [ST_EVENT_LIST] = "SELECT seq, op, patient_id, actor, time_ms, detail"
		      " FROM events WHERE patient_id = ?1"
		      " ORDER BY seq DESC LIMIT ?2",
    [ST_HOSPITAL_GET] =
	"SELECT name, role, active FROM hospitals WHERE code = ?1",
    [ST_HOSPITAL_PUT] =
	"INSERT INTO hospitals (code, name, role, active, changed_ms)"
	" VALUES (?1,?2,?3,?4,?5) ON CONFLICT (code) DO UPDATE SET"
	" name = ?2, role = ?3, active = ?4, changed_ms = ?5",
    [ST_HOSPITAL_LIST] = "SELECT code, name, role, active FROM hospitals"
			 " ORDER BY code",
    [ST_MERGE_INSERT] = "INSERT INTO merges (survivor, duplicate, seq)"
			" VALUES (?1,?2,?3)",
    [ST_MERGE_IDENT_INSERT] =
	"INSERT INTO merge_identifiers (merge_id, domain, value)"
	" VALUES (?1,?2,?3)",
    [ST_MERGE_FIND] = "SELECT id, survivor FROM merges WHERE duplicate = ?1"
		      " AND undone = 0 ORDER BY id DESC LIMIT 1",
    [ST_MERGE_IDENTS] = "SELECT domain, value FROM merge_identifiers"
			" WHERE merge_id = ?1 ORDER BY domain, value",
    [ST_MERGE_UNDO] = "UPDATE merges SET undone = 1 WHERE id = ?1",
    [ST_COUNT_PATIENTS] =
	"SELECT count(*) FILTER (WHERE merged_into = ''),"
	" count(*) FILTER (WHERE merged_into <> '') FROM patients",
    [ST_COUNT_DOMAINS] =
	"SELECT domain, count(*) FROM identifiers GROUP BY domain"
	" ORDER BY domain",
    [ST_LAST_SEQ] = "SELECT coalesce(max(seq), 0) FROM events",
};

struct sqlite_handle {
	sqlite3 *db;
	int writer;
	sqlite3_stmt *st[ST_MAX];
};

static int sqlite_patient_row(sqlite3_stmt *, const char *,
    struct registry_arena *, struct registry_patient *);

/* The statement for q, prepared on first use. NULL (logged) on error. */
static sqlite3_stmt *
sqlite_stmt(struct sqlite_handle *h, enum sqlite_stmt q)
{
	if (h->st[q] != NULL)
		return h->st[q];
	if (sqlite3_prepare_v3(h->db, sqlite_sql[q], -1,
		SQLITE_PREPARE_PERSISTENT, &h->st[q], NULL) != SQLITE_OK) {
		log_warnx("sqlite: prepare \"%s\": %s", sqlite_sql[q],
		    sqlite3_errmsg(h->db));
		return NULL;
	}
	return h->st[q];
}

/* Map an SQLite result code to a backend error, logging it once. */
static int
sqlite_error(struct sqlite_handle *h, enum sqlite_stmt q, int rc)
{
	int prim = rc & 0xff;

	log_warnx(
	    "sqlite: \"%.40s\": %s", sqlite_sql[q], sqlite3_errmsg(h->db));
	if (prim == SQLITE_FULL || prim == SQLITE_IOERR ||
	    prim == SQLITE_BUSY || prim == SQLITE_LOCKED ||
	    prim == SQLITE_READONLY || prim == SQLITE_CANTOPEN)
		return REGISTRY_EUNAVAIL;
	return REGISTRY_EFAIL;
}

/* Bind a text parameter (NULL as ""). */
static void
sqlite_text(sqlite3_stmt *s, int i, const char *v)
{
	sqlite3_bind_text(s, i, v ? v : "", -1, SQLITE_STATIC);
}

/* Run a statement that returns no rows; 0 or an error. */
static int
sqlite_exec_stmt(struct sqlite_handle *h, enum sqlite_stmt q, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return sqlite_error(h, q, rc);
	return 0;
}

/* Run a statement with no parameters. */
static int
sqlite_simple(void *hv, enum sqlite_stmt q)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, q);

	if (s == NULL)
		return REGISTRY_EFAIL;
	return sqlite_exec_stmt(h, q, s);
}

/* Finish a query statement: reset and unbind; returns ret unless rc failed. */
static int
sqlite_done(struct sqlite_handle *h, enum sqlite_stmt q, sqlite3_stmt *s,
    int rc, int ret)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return sqlite_error(h, q, rc);
	return ret;
}

/* Column i as a string, "" for NULL. */
static const char *
sqlite_col(sqlite3_stmt *s, int i)
{
	const unsigned char *v = sqlite3_column_text(s, i);

	return v ? (const char *)v : "";
}

/* Read the schema version, creating the table when missing. */
static int
sqlite_schema_version(struct sqlite_handle *h, int *version)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_exec(h->db,
		"CREATE TABLE IF NOT EXISTS schema_version (version INTEGER "
		"NOT NULL)",
		NULL, NULL, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_prepare_v2(h->db, "SELECT max(version) FROM schema_version",
		-1, &s, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(s);
	*version = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : 0;
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* Bring the schema up to date in one transaction. */
static int
sqlite_migrate(struct sqlite_handle *h, char *err, size_t errlen)
{
	int version;
	char sql[64];

	if (sqlite3_exec(h->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
		SQLITE_OK ||
	    sqlite_schema_version(h, &version) == -1)
		goto fail;
	if (version > (int)SQLITE_NMIGRATIONS) {
		snprintf(err, errlen,
		    "schema version %d is newer than this broker knows (%zu)",
		    version, SQLITE_NMIGRATIONS);
		sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	for (int v = version; v < (int)SQLITE_NMIGRATIONS; v++) {
		if (sqlite3_exec(h->db, sqlite_migrations[v], NULL, NULL,
			NULL) != SQLITE_OK)
			goto fail;
		snprintf(sql, sizeof(sql),
		    "INSERT INTO schema_version VALUES (%d)", v + 1);
		if (sqlite3_exec(h->db, sql, NULL, NULL, NULL) != SQLITE_OK)
			goto fail;
		if (v >= version)
			log_info(
			    "registry schema migrated to version %d", v + 1);
	}
	if (sqlite3_exec(h->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "schema migration: %s", sqlite3_errmsg(h->db));
	sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/*
 * Once per process: no allocation statistics (they take a global mutex on
 * every malloc); a savepoint's statement journal in memory up to 1 MiB, in
 * one block (the default spills it to a file in /var/tmp past 64 KiB, and
 * temp_store=MEMORY keeps it in 1 KiB blocks, a malloc and free per
 * quarter page journalled); then start SQLite.
 */
static void
sqlite_init_once(void)
{
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, SQLITE_STMTJRNL_BYTES);
	sqlite3_initialize();
}

static void
sqlite_close(void *hv)
{
	struct sqlite_handle *h = hv;

	if (h == NULL)
		return;
	for (int i = 0; i < ST_MAX; i++)
		sqlite3_finalize(h->st[i]);
	sqlite3_close(h->db);
	free(h);
}

/* Open path; the writer creates the file, sets WAL and migrates. */
static void *
sqlite_open(const char *path, int writer, char *err, size_t errlen)
{
	struct sqlite_handle *h;
	int flags = writer ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
			   : SQLITE_OPEN_READONLY;
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	int version;

	pthread_once(&once, sqlite_init_once);
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->writer = writer;
	flags |= SQLITE_OPEN_NOMUTEX;
	if (sqlite3_open_v2(path, &h->db, flags, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path,
		    h->db ? sqlite3_errmsg(h->db) : "cannot open");
		goto fail;
	}
	sqlite3_busy_timeout(h->db, SQLITE_BUSY_MS);
	sqlite3_extended_result_codes(h->db, 1);
	/* Lookups read pages through a memory map and keep a large page cache
	 * instead of a pread per page per request. */
	sqlite3_exec(h->db, SQLITE_READ_PRAGMAS, NULL, NULL, NULL);
	if (writer) {
		/* SQLite quietly falls back to read-only when it may not write
		 * the file (read-only filesystem, immutable file, mode bits);
		 * the writer must not start on a registry it cannot change. */
		if (sqlite3_db_readonly(h->db, "main") != 0) {
			snprintf(err, errlen,
			    "%s: the registry is read-only (file, folder or "
			    "filesystem); the writer needs to write it",
			    path);
			goto fail;
		}
		if (sqlite3_exec(h->db,
			"PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
			" PRAGMA journal_size_limit=67108864;"
			" PRAGMA foreign_keys=OFF;" SQLITE_WRITER_PRAGMAS,
			NULL, NULL, NULL) != SQLITE_OK) {
			snprintf(
			    err, errlen, "%s: %s", path, sqlite3_errmsg(h->db));
			goto fail;
		}
		if (sqlite_migrate(h, err, errlen) == -1)
			goto fail;
	} else {
		sqlite3_stmt *s;
		int rc;

		/* A read handle needs the writer's schema in place. */
		if (sqlite3_prepare_v2(h->db,
			"SELECT max(version) FROM schema_version", -1, &s,
			NULL) != SQLITE_OK) {
			snprintf(err, errlen, "%s: no registry schema (%s)",
			    path, sqlite3_errmsg(h->db));
			goto fail;
		}
		rc = sqlite3_step(s);
		version = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
		sqlite3_finalize(s);
		if (version != (int)SQLITE_NMIGRATIONS) {
			snprintf(err, errlen, "%s: schema version %d, want %zu",
			    path, version, SQLITE_NMIGRATIONS);
			goto fail;
		}
	}
	return h;
fail:
	sqlite_close(h);
	return NULL;
}

static int
sqlite_ping(void *hv)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_PING);
	int rc;

	if (s == NULL)
		return REGISTRY_EFAIL;
	rc = sqlite3_step(s);
	return sqlite_done(h, ST_PING, s, rc, 0);
}

static int
sqlite_begin(void *h, int write)
{
	return sqlite_simple(h, write ? ST_BEGIN_IMMEDIATE : ST_BEGIN);
}

static int
sqlite_in_txn(void *hv)
{
	struct sqlite_handle *h = hv;

	return !sqlite3_get_autocommit(h->db);
}

static int
sqlite_commit(void *h)
{
	return sqlite_simple(h, ST_COMMIT);
}

/* Roll back whatever transaction is open; quiet when none is. */
static int
sqlite_rollback(void *hv)
{
	struct sqlite_handle *h = hv;

	if (sqlite3_get_autocommit(h->db))
		return 0;
	return sqlite_simple(h, ST_ROLLBACK);
}

static int
sqlite_savepoint(void *h)
{
	return sqlite_simple(h, ST_SAVEPOINT);
}

static int
sqlite_release(void *h)
{
	return sqlite_simple(h, ST_RELEASE);
}

/* Undo back to the savepoint and drop it. */
static int
sqlite_rollback_to(void *h)
{
	int rc = sqlite_simple(h, ST_ROLLBACK_TO);

	if (rc != 0)
		return rc;
	return sqlite_simple(h, ST_RELEASE);
}

static int
sqlite_ident_owner(void *hv, const char *domain, const char *value, char *pid)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_IDENT_OWNER);
	int rc, ret = 1;

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite_text(s, 1, domain);
	sqlite_text(s, 2, value);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		snprintf(pid, REGISTRY_PID_MAX, "%s", sqlite_col(s, 0));
		ret = 0;
	}
	return sqlite_done(h, ST_IDENT_OWNER, s, rc, ret);
}

/* Run a three-text-parameter write. */
static int
sqlite_write3(
    void *hv, enum sqlite_stmt q, const char *a, const char *b, const char *c)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, q);

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite_text(s, 1, a);
	sqlite_text(s, 2, b);
	if (c != NULL)
		sqlite_text(s, 3, c);
	return sqlite_exec_stmt(h, q, s);
}

/* Step a record query (patient columns 0..7, identifier 8..9; the
 * identifier NULL when the patient holds none). */
static int
sqlite_record(struct sqlite_handle *h, enum sqlite_stmt q, sqlite3_stmt *s,
    struct registry_arena *a, struct registry_patient *p, registry_ident_cb cb,
    void *arg)
{
	int rc, ret = 1;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (ret == 1 &&
		    (ret = sqlite_patient_row(s, sqlite_col(s, 7), a, p)) != 0)
			break;
		if (sqlite3_column_type(s, 8) == SQLITE_NULL)
			continue;
		if (cb(arg, sqlite_col(s, 8), sqlite_col(s, 9)) == -1) {
			ret = REGISTRY_EFAIL;
			break;
		}
	}
	if (rc == SQLITE_ROW)
		rc = SQLITE_DONE;
	return sqlite_done(h, q, s, rc, ret);
}

static int
sqlite_ident_record(void *hv, const char *domain, const char *value,
    struct registry_arena *a, struct registry_patient *p, registry_ident_cb cb,
    void *arg)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_IDENT_RECORD);

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite_text(s, 1, domain);
	sqlite_text(s, 2, value);
	return sqlite_record(h, ST_IDENT_RECORD, s, a, p, cb, arg);
}

static int
sqlite_patient_record(void *hv, const char *pid, struct registry_arena *a,
    struct registry_patient *p, registry_ident_cb cb, void *arg)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_PATIENT_RECORD);

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite_text(s, 1, pid);
	return sqlite_record(h, ST_PATIENT_RECORD, s, a, p, cb, arg);
}

static int
sqlite_ident_insert(
    void *h, const char *domain, const char *value, const char *pid)
{
	return sqlite_write3(h, ST_IDENT_INSERT, domain, value, pid);
}

static int
sqlite_ident_delete(void *h, const char *domain, const char *value)
{
	return sqlite_write3(h, ST_IDENT_DELETE, domain, value, NULL);
}

static int
sqlite_ident_move(
    void *h, const char *domain, const char *value, const char *pid)
{
	return sqlite_write3(h, ST_IDENT_MOVE, domain, value, pid);
}

/* Call cb(domain, value) for each row of an identifier query on key. */
static int
sqlite_each_ident(struct sqlite_handle *h, enum sqlite_stmt q, sqlite3_stmt *s,
    registry_ident_cb cb, void *arg)
{
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (cb(arg, sqlite_col(s, 0), sqlite_col(s, 1)) == -1) {
			rc = SQLITE_DONE;
			return sqlite_done(h, q, s, rc, REGISTRY_EFAIL);
		}
	return sqlite_done(h, q, s, rc, 0);
}

static int
sqlite_patient_idents(
    void *hv, const char *pid, registry_ident_cb cb, void *arg)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_PATIENT_IDENTS);

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite_text(s, 1, pid);
	return sqlite_each_ident(h, ST_PATIENT_IDENTS, s, cb, arg);
}

/* Copy column i into the arena. */
static char *
sqlite_dup(struct registry_arena *a, sqlite3_stmt *s, int i)
{
	const char *v = sqlite_col(s, i);

	return registry_arena_strndup(a, v, (size_t)sqlite3_column_bytes(s, i));
}

/* Read a patient row (name .. merged_into in columns 0..6) into p. */
static int
sqlite_patient_row(sqlite3_stmt *s, const char *pid, struct registry_arena *a,
    struct registry_patient *p)
{
	registry_copy(p->id, pid, sizeof(p->id));
	p->name = sqlite_dup(a, s, 0);
	p->sex = sqlite3_column_int(s, 1);
	p->birth_date = sqlite_dup(a, s, 2);
	p->phone = sqlite_dup(a, s, 3);
	p->address = sqlite_dup(a, s, 4);
	p->version = (uint64_t)sqlite3_column_int64(s, 5);
	snprintf(
	    p->merged_into, sizeof(p->merged_into), "%s", sqlite_col(s, 6));
	if (!p->name || !p->birth_date || !p->phone || !p->address) {
		log_warnx("registry: out of scratch memory");
		return REGISTRY_EFAIL;
	}
	return 0;
}

static int
sqlite_patient_get(void *hv, const char *pid, struct registry_arena *a,
    struct registry_patient *p)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_PATIENT_GET);
	int rc, ret = 1;

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite_text(s, 1, pid);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		ret = sqlite_patient_row(s, pid, a, p);
	return sqlite_done(h, ST_PATIENT_GET, s, rc, ret);
}

static int
sqlite_ident_patient(void *hv, const char *domain, const char *value,
    struct registry_arena *a, struct registry_patient *p)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_IDENT_PATIENT);
	int rc, ret = 1;

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite_text(s, 1, domain);
	sqlite_text(s, 2, value);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		ret = sqlite_patient_row(s, sqlite_col(s, 7), a, p);
	return sqlite_done(h, ST_IDENT_PATIENT, s, rc, ret);
}

/* Bind the columns of a patient row as ?1..?8. */
static void
sqlite_bind_patient(sqlite3_stmt *s, const struct registry_patient *p)
{
	sqlite_text(s, 1, p->id);
	sqlite_text(s, 2, p->name);
	sqlite3_bind_int(s, 3, p->sex);
	sqlite_text(s, 4, p->birth_date);
	sqlite_text(s, 5, p->phone);
	sqlite_text(s, 6, p->address);
	sqlite3_bind_int64(s, 7, (sqlite3_int64)p->version);
	sqlite_text(s, 8, p->merged_into);
}

static int
sqlite_patient_insert(
    void *hv, const struct registry_patient *p, int64_t now_ms)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_PATIENT_INSERT);

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite_bind_patient(s, p);
	sqlite3_bind_int64(s, 9, now_ms);
	return sqlite_exec_stmt(h, ST_PATIENT_INSERT, s);
}

static int
sqlite_patient_update(void *hv, const struct registry_patient *p)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_PATIENT_UPDATE);

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite_bind_patient(s, p);
	return sqlite_exec_stmt(h, ST_PATIENT_UPDATE, s);
}

static int
sqlite_patient_search(void *hv, const char *name, const char *birth_date,
    int sex, unsigned limit, registry_pid_cb cb, void *arg)
{
	struct sqlite_handle *h = hv;
	enum sqlite_stmt q;
	sqlite3_stmt *s;
	int rc;

	if (name[0] != '\0' && birth_date[0] != '\0')
		q = ST_SEARCH_NAME_BIRTH;
	else if (name[0] != '\0')
		q = ST_SEARCH_NAME;
	else
		q = ST_SEARCH_BIRTH;
	if ((s = sqlite_stmt(h, q)) == NULL)
		return REGISTRY_EFAIL;
	sqlite_text(s, 1, name);
	sqlite_text(s, 2, birth_date);
	sqlite3_bind_int(s, 3, sex);
	sqlite3_bind_int(s, 4, (int)limit);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (cb(arg, sqlite_col(s, 0)) == -1)
			return sqlite_done(
			    h, q, s, SQLITE_DONE, REGISTRY_EFAIL);
	return sqlite_done(h, q, s, rc, 0);
}

static int
sqlite_patient_page(
    void *hv, const char *after, unsigned limit, registry_pid_cb cb, void *arg)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_PATIENT_PAGE);
	int rc;

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite_text(s, 1, after);
	sqlite3_bind_int(s, 2, (int)limit);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (cb(arg, sqlite_col(s, 0)) == -1)
			return sqlite_done(
			    h, ST_PATIENT_PAGE, s, SQLITE_DONE, REGISTRY_EFAIL);
	return sqlite_done(h, ST_PATIENT_PAGE, s, rc, 0);
}

static int
sqlite_event_append(void *hv, struct registry_event *ev)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_EVENT_APPEND);
	int rc;

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite_text(s, 1, ev->op);
	sqlite_text(s, 2, ev->patient_id);
	sqlite_text(s, 3, ev->actor);
	sqlite3_bind_int64(s, 4, ev->time_ms);
	sqlite_text(s, 5, ev->detail);
	if ((rc = sqlite_exec_stmt(h, ST_EVENT_APPEND, s)) != 0)
		return rc;
	ev->seq = (uint64_t)sqlite3_last_insert_rowid(h->db);
	return 0;
}

static int
sqlite_event_list(
    void *hv, const char *pid, unsigned limit, registry_event_cb cb, void *arg)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_EVENT_LIST);
	struct registry_event ev;
	int rc;

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite_text(s, 1, pid);
	sqlite3_bind_int(s, 2, (int)limit);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		ev.seq = (uint64_t)sqlite3_column_int64(s, 0);
		ev.op = sqlite_col(s, 1);
		ev.patient_id = sqlite_col(s, 2);
		ev.actor = sqlite_col(s, 3);
		ev.time_ms = sqlite3_column_int64(s, 4);
		ev.detail = sqlite_col(s, 5);
		if (cb(arg, &ev) == -1)
			return sqlite_done(
			    h, ST_EVENT_LIST, s, SQLITE_DONE, REGISTRY_EFAIL);
	}
	return sqlite_done(h, ST_EVENT_LIST, s, rc, 0);
}

static int
sqlite_hospital_get(void *hv, const char *code, struct registry_arena *a,
    struct registry_hospital *out)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_HOSPITAL_GET);
	int rc, ret = 1;

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite_text(s, 1, code);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		out->code = code;
		out->name = a ? sqlite_dup(a, s, 0) : NULL;
		out->role = sqlite3_column_int(s, 1);
		out->active = sqlite3_column_int(s, 2);
		ret = 0;
	}
	return sqlite_done(h, ST_HOSPITAL_GET, s, rc, ret);
}

static int
sqlite_hospital_put(
    void *hv, const struct registry_hospital *hosp, int64_t now_ms)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_HOSPITAL_PUT);

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite_text(s, 1, hosp->code);
	sqlite_text(s, 2, hosp->name);
	sqlite3_bind_int(s, 3, hosp->role);
	sqlite3_bind_int(s, 4, hosp->active);
	sqlite3_bind_int64(s, 5, now_ms);
	return sqlite_exec_stmt(h, ST_HOSPITAL_PUT, s);
}

static int
sqlite_hospital_list(void *hv, registry_hospital_cb cb, void *arg)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_HOSPITAL_LIST);
	struct registry_hospital hosp;
	int rc;

	if (s == NULL)
		return REGISTRY_EFAIL;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		hosp.code = sqlite_col(s, 0);
		hosp.name = sqlite_col(s, 1);
		hosp.role = sqlite3_column_int(s, 2);
		hosp.active = sqlite3_column_int(s, 3);
		if (cb(arg, &hosp) == -1)
			return sqlite_done(h, ST_HOSPITAL_LIST, s, SQLITE_DONE,
			    REGISTRY_EFAIL);
	}
	return sqlite_done(h, ST_HOSPITAL_LIST, s, rc, 0);
}

static int
sqlite_merge_insert(void *hv, const char *survivor, const char *duplicate,
    uint64_t seq, int64_t *merge_id)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_MERGE_INSERT);
	int rc;

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite_text(s, 1, survivor);
	sqlite_text(s, 2, duplicate);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)seq);
	if ((rc = sqlite_exec_stmt(h, ST_MERGE_INSERT, s)) != 0)
		return rc;
	*merge_id = sqlite3_last_insert_rowid(h->db);
	return 0;
}

static int
sqlite_merge_ident_insert(
    void *hv, int64_t merge_id, const char *domain, const char *value)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_MERGE_IDENT_INSERT);

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite3_bind_int64(s, 1, merge_id);
	sqlite_text(s, 2, domain);
	sqlite_text(s, 3, value);
	return sqlite_exec_stmt(h, ST_MERGE_IDENT_INSERT, s);
}

static int
sqlite_merge_find(
    void *hv, const char *duplicate, int64_t *merge_id, char *survivor)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_MERGE_FIND);
	int rc, ret = 1;

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite_text(s, 1, duplicate);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*merge_id = sqlite3_column_int64(s, 0);
		snprintf(survivor, REGISTRY_PID_MAX, "%s", sqlite_col(s, 1));
		ret = 0;
	}
	return sqlite_done(h, ST_MERGE_FIND, s, rc, ret);
}

static int
sqlite_merge_idents(void *hv, int64_t merge_id, registry_ident_cb cb, void *arg)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_MERGE_IDENTS);

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite3_bind_int64(s, 1, merge_id);
	return sqlite_each_ident(h, ST_MERGE_IDENTS, s, cb, arg);
}

static int
sqlite_merge_undo(void *hv, int64_t merge_id)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_MERGE_UNDO);

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite3_bind_int64(s, 1, merge_id);
	return sqlite_exec_stmt(h, ST_MERGE_UNDO, s);
}

static int
sqlite_counts(
    void *hv, struct registry_counts *c, registry_count_cb cb, void *arg)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s;
	int rc;

	memset(c, 0, sizeof(*c));
	if ((s = sqlite_stmt(h, ST_COUNT_PATIENTS)) == NULL)
		return REGISTRY_EFAIL;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		c->patients = (uint64_t)sqlite3_column_int64(s, 0);
		c->merged = (uint64_t)sqlite3_column_int64(s, 1);
	}
	if ((rc = sqlite_done(h, ST_COUNT_PATIENTS, s, rc, 0)) != 0)
		return rc;
	if ((s = sqlite_stmt(h, ST_LAST_SEQ)) == NULL)
		return REGISTRY_EFAIL;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		c->last_seq = (uint64_t)sqlite3_column_int64(s, 0);
	if ((rc = sqlite_done(h, ST_LAST_SEQ, s, rc, 0)) != 0)
		return rc;
	if ((s = sqlite_stmt(h, ST_COUNT_DOMAINS)) == NULL)
		return REGISTRY_EFAIL;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		uint64_t n = (uint64_t)sqlite3_column_int64(s, 1);
		c->identifiers += n;
		if (cb(arg, sqlite_col(s, 0), n) == -1)
			return sqlite_done(h, ST_COUNT_DOMAINS, s, SQLITE_DONE,
			    REGISTRY_EFAIL);
	}
	return sqlite_done(h, ST_COUNT_DOMAINS, s, rc, 0);
}

const struct registry_backend registry_sqlite = {
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .ping = sqlite_ping,
    .begin = sqlite_begin,
    .in_txn = sqlite_in_txn,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .savepoint = sqlite_savepoint,
    .release = sqlite_release,
    .rollback_to = sqlite_rollback_to,
    .ident_owner = sqlite_ident_owner,
    .ident_patient = sqlite_ident_patient,
    .ident_record = sqlite_ident_record,
    .patient_record = sqlite_patient_record,
    .ident_insert = sqlite_ident_insert,
    .ident_delete = sqlite_ident_delete,
    .ident_move = sqlite_ident_move,
    .patient_idents = sqlite_patient_idents,
    .patient_get = sqlite_patient_get,
    .patient_insert = sqlite_patient_insert,
    .patient_update = sqlite_patient_update,
    .patient_page = sqlite_patient_page,
    .patient_search = sqlite_patient_search,
    .event_append = sqlite_event_append,
    .event_list = sqlite_event_list,
    .hospital_get = sqlite_hospital_get,
    .hospital_put = sqlite_hospital_put,
    .hospital_list = sqlite_hospital_list,
    .merge_insert = sqlite_merge_insert,
    .merge_ident_insert = sqlite_merge_ident_insert,
    .merge_find = sqlite_merge_find,
    .merge_idents = sqlite_merge_idents,
    .merge_undo = sqlite_merge_undo,
    .counts = sqlite_counts,
};
