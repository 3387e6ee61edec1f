/*
 * registry_sqlite.c: the SQLite store behind registry_backend.h: schema,
 * migrations, prepared statements, and commits made durable by the redo log
 * first. Why that is safe with synchronous=NORMAL, and how checkpoints run,
 * is in docs/architecture.md.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "registry_backend.h"
#include "registry_image.h"
#include "registry_redo.h"

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
#define SQLITE_WRITER_PRAGMAS "PRAGMA cache_size=-262144;"
#define SQLITE_CKPT_FRAMES    16384 /* WAL pages that start a checkpoint */
/* The image: every fold synced; a checkpoint (a sync of the file) per
 * 4,096 pages (16 MiB) of WAL rather than SQLite's 1,000. */
#define SQLITE_IMAGE_PRAGMAS                                                   \
	"PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=4096;"
#define SQLITE_REDO_SUFFIX "-redo"

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
    /* The redo log this database goes with and its last entry here. */
    "CREATE TABLE redo_state ("
    " id INTEGER PRIMARY KEY CHECK (id = 0), seq INTEGER NOT NULL,"
    " log_id INTEGER NOT NULL);"
    "INSERT INTO redo_state VALUES (0, 0, 0);",
    /* Notifications: who hears of an event, the other half of a merge,
     * and how far retention has dropped events. */
    "ALTER TABLE events ADD COLUMN other_patient_id TEXT NOT NULL"
    " DEFAULT '';"
    "ALTER TABLE events ADD COLUMN notify TEXT NOT NULL DEFAULT '';"
    "CREATE TABLE event_floor ("
    " id INTEGER PRIMARY KEY CHECK (id = 0), seq INTEGER NOT NULL);"
    "INSERT INTO event_floor VALUES (0, 0);",
    /* The last event each hospital could see that retention dropped: a
     * hospital may resume from there, whatever else was dropped. */
    "CREATE TABLE event_floor_hospital ("
    " code TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;",
    /* The steward's worklist of duplicate candidate pairs. */
    "CREATE TABLE pairs ("
    " id INTEGER PRIMARY KEY, a TEXT NOT NULL, b TEXT NOT NULL,"
    " score REAL NOT NULL, grade INTEGER NOT NULL, reason TEXT NOT NULL,"
    " state INTEGER NOT NULL, found_ms INTEGER NOT NULL, UNIQUE (a, b));",
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
	ST_EVENT_LIST_UPTO,
	ST_EVENT_SCAN,
	ST_EVENT_FLOOR,
	ST_EVENT_PRUNE,
	ST_EVENT_KEEP_COUNT,
	ST_EVENT_KEEP_AGE,
	ST_EVENT_PRUNED_NOTIFY,
	ST_EVENT_FLOOR_HOSP,
	ST_EVENT_FLOOR_HOSP_SET,
	ST_EVENT_FLOOR_SET,
	ST_HOSPITAL_GET,
	ST_HOSPITAL_PUT,
	ST_HOSPITAL_LIST,
	ST_MERGE_INSERT,
	ST_MERGE_IDENT_INSERT,
	ST_MERGE_FIND,
	ST_MERGE_IDENTS,
	ST_MERGE_UNDO,
	ST_PAIR_INSERT,
	ST_PAIR_STATE,
	ST_COUNT_PATIENTS,
	ST_COUNT_DOMAINS,
	ST_LAST_SEQ,
	ST_REDO_GET,
	ST_REDO_SET,
	ST_REDO_PAIR,
	ST_EVENT_REPLAY,
	ST_MERGE_REPLAY,
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
#define SQLITE_EVENT_COLS                                                      \
	"seq, op, patient_id, actor, time_ms, detail, other_patient_id, "      \
	"notify"
    [ST_EVENT_APPEND] = "INSERT INTO events (op, patient_id, actor, time_ms,"
			" detail, other_patient_id, notify)"
			" VALUES (?1,?2,?3,?4,?5,?6,?7)",
    [ST_EVENT_LIST] = "SELECT " SQLITE_EVENT_COLS " FROM events"
		      " WHERE patient_id = ?1 ORDER BY seq DESC LIMIT ?2",
    [ST_EVENT_LIST_UPTO] = "SELECT " SQLITE_EVENT_COLS " FROM events"
			   " WHERE patient_id = ?1 AND seq <= ?3"
			   " ORDER BY seq DESC LIMIT ?2",
    [ST_EVENT_SCAN] = "SELECT " SQLITE_EVENT_COLS " FROM events"
		      " WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3",
    [ST_EVENT_FLOOR] = "SELECT seq FROM event_floor WHERE id = 0",
    [ST_EVENT_PRUNE] = "DELETE FROM events WHERE seq > ?1 AND seq <= ?2",
    [ST_EVENT_KEEP_COUNT] = "SELECT coalesce(max(seq), 0) FROM events",
    [ST_EVENT_PRUNED_NOTIFY] = "SELECT seq, notify FROM events"
			       " WHERE seq > ?1 AND seq <= ?2"
			       " AND notify <> '' AND notify <> '-'",
    [ST_EVENT_FLOOR_HOSP] = "SELECT seq FROM event_floor_hospital"
			    " WHERE code = ?1",
    [ST_EVENT_FLOOR_HOSP_SET] =
	"INSERT INTO event_floor_hospital VALUES (?1, ?2)"
	" ON CONFLICT (code) DO UPDATE SET seq = max(seq, ?2)",
    [ST_EVENT_KEEP_AGE] = "SELECT coalesce(max(seq), 0) FROM (SELECT seq,"
			  " time_ms FROM events WHERE seq > ?1 ORDER BY seq"
			  " LIMIT ?3) WHERE time_ms < ?2",
    [ST_EVENT_FLOOR_SET] = "UPDATE event_floor SET seq = ?1 WHERE id = 0"
			   " AND seq < ?1",
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
    [ST_PAIR_INSERT] = "INSERT INTO pairs (id, a, b, score, grade, reason,"
		       " state, found_ms) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
    [ST_PAIR_STATE] = "UPDATE pairs SET state = ?2 WHERE id = ?1",
    [ST_COUNT_PATIENTS] =
	"SELECT count(*) FILTER (WHERE merged_into = ''),"
	" count(*) FILTER (WHERE merged_into <> '') FROM patients",
    [ST_COUNT_DOMAINS] =
	"SELECT domain, count(*) FROM identifiers GROUP BY domain"
	" ORDER BY domain",
    [ST_LAST_SEQ] = "SELECT coalesce(max(seq), 0) FROM events",
    [ST_REDO_GET] = "SELECT seq, log_id FROM redo_state WHERE id = 0",
    [ST_REDO_PAIR] = "UPDATE redo_state SET log_id = ?1 WHERE id = 0",
    [ST_REDO_SET] = "UPDATE redo_state SET seq = ?1 WHERE id = 0",
    [ST_EVENT_REPLAY] = "INSERT INTO events (op, patient_id, actor, time_ms,"
			" detail, other_patient_id, notify, seq)"
			" VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
    [ST_MERGE_REPLAY] = "INSERT INTO merges (survivor, duplicate, seq, id)"
			" VALUES (?1,?2,?3,?4)",
};

/* Tests: the next commit with records fails after its redo entry synced. */
int registry_sqlite_fail_commit;

/* How a handle is opened (sqlite_open_mode). */
enum sqlite_mode {
	MODE_READ,
	MODE_DIRECT,
	MODE_IMAGE
};

struct sqlite_handle {
	sqlite3 *db;
	int writer;
	int mode; /* enum sqlite_mode */
	sqlite3_stmt *st[ST_MAX];
	struct redo *redo;  /* the writer's; NULL on a read handle */
	struct redo_buf rb; /* this transaction's records */
	int logging;        /* record changes (writer, not replaying) */
	int wal_frames;     /* pages in the WAL after the last commit */
	int ckpt_at;        /* try a checkpoint at this many */
};

/* Record a change when the handle logs them. */
#define SQLITE_LOG(h, ...)                                                     \
	do {                                                                   \
		if ((h)->logging)                                              \
			redo_buf_put(&(h)->rb, __VA_ARGS__);                   \
	} while (0)

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
 * The indexes only reads use: SQLite answering (MODE_DIRECT) needs them;
 * an image (MODE_IMAGE) is read whole at start-up and only written behind
 * the registry in memory, so it goes without them: three B-tree inserts
 * fewer per enrollment folded. A registry opened one way after the other
 * has them made or dropped once, at open.
 */
static const char *const sqlite_read_indexes[][2] = {
    {"patients_name_birth", "patients(name, birth_date)"},
    {"patients_birth", "patients(birth_date)"},
    {"identifiers_patient", "identifiers(patient_id)"},
};

static int
sqlite_indexes(struct sqlite_handle *h, int mode, char *err, size_t errlen)
{
	char sql[160];

	for (size_t i = 0;
	     i < sizeof(sqlite_read_indexes) / sizeof(sqlite_read_indexes[0]);
	     i++) {
		if (mode == MODE_IMAGE)
			snprintf(sql, sizeof(sql), "DROP INDEX IF EXISTS %s",
			    sqlite_read_indexes[i][0]);
		else
			snprintf(sql, sizeof(sql),
			    "CREATE INDEX IF NOT EXISTS %s ON %s",
			    sqlite_read_indexes[i][0],
			    sqlite_read_indexes[i][1]);
		if (sqlite3_exec(h->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
			snprintf(
			    err, errlen, "%s: %s", sql, sqlite3_errmsg(h->db));
			return -1;
		}
	}
	return 0;
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
	redo_close(h->redo);
	redo_buf_free(&h->rb);
	free(h);
}

static int sqlite_redo_open(
    struct sqlite_handle *, const char *, char *, size_t);

/*
 * Open path. A writer (MODE_DIRECT, or MODE_IMAGE for the in-memory
 * layer's fold) creates the file, sets WAL and migrates; only MODE_DIRECT
 * takes the redo log and answers at its sync.
 */
static void *
sqlite_open_mode(const char *path, int mode, char *err, size_t errlen)
{
	struct sqlite_handle *h;
	int writer = mode != MODE_READ;
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
	h->mode = mode;
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
		/* NORMAL: no sync per commit; the redo log is synced. A
		 * fold (MODE_IMAGE) syncs its commit: the log behind it is
		 * trimmed. */
		if (sqlite3_exec(h->db,
			"PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
			" PRAGMA journal_size_limit=67108864;"
			" PRAGMA foreign_keys=OFF;" SQLITE_WRITER_PRAGMAS,
			NULL, NULL, NULL) != SQLITE_OK ||
		    (mode == MODE_IMAGE &&
			sqlite3_exec(h->db, SQLITE_IMAGE_PRAGMAS, NULL, NULL,
			    NULL) != SQLITE_OK)) {
			snprintf(
			    err, errlen, "%s: %s", path, sqlite3_errmsg(h->db));
			goto fail;
		}
		if (sqlite_migrate(h, err, errlen) == -1 ||
		    sqlite_indexes(h, mode, err, errlen) == -1 ||
		    (mode == MODE_DIRECT &&
			sqlite_redo_open(h, path, err, errlen) == -1))
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

static void *
sqlite_open(const char *path, int writer, char *err, size_t errlen)
{
	return sqlite_open_mode(
	    path, writer ? MODE_DIRECT : MODE_READ, err, errlen);
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
sqlite_begin(void *hv, int write)
{
	struct sqlite_handle *h = hv;

	redo_buf_reset(&h->rb);
	return sqlite_simple(h, write ? ST_BEGIN_IMMEDIATE : ST_BEGIN);
}

static int
sqlite_in_txn(void *hv)
{
	struct sqlite_handle *h = hv;

	return !sqlite3_get_autocommit(h->db);
}

/* Roll back whatever transaction is open; quiet when none is. */
static int
sqlite_rollback(void *hv)
{
	struct sqlite_handle *h = hv;

	redo_buf_reset(&h->rb);
	if (sqlite3_get_autocommit(h->db))
		return 0;
	return sqlite_simple(h, ST_ROLLBACK);
}

/*
 * After a commit: a PASSIVE checkpoint once the WAL holds
 * SQLITE_CKPT_FRAMES pages, and when it copied the whole WAL (the database
 * file synced), the redo log starts again.
 */
static void
sqlite_checkpoint(struct sqlite_handle *h)
{
	int nlog = -1, nckpt = -1, rc;

	if (h->wal_frames < h->ckpt_at - SQLITE_CKPT_FRAMES / 4)
		h->ckpt_at = SQLITE_CKPT_FRAMES; /* the WAL started again */
	if (h->wal_frames < h->ckpt_at)
		return;
	rc = sqlite3_wal_checkpoint_v2(
	    h->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, &nckpt);
	if (rc != SQLITE_OK) {
		log_warnx("sqlite: checkpoint: %s", sqlite3_errmsg(h->db));
		h->ckpt_at = h->wal_frames + SQLITE_CKPT_FRAMES / 4;
		return;
	}
	if (nlog >= 0 && nckpt == nlog)
		redo_restart(h->redo);
	/* Until the WAL starts again (no reader left in it), the next try
	 * waits for a quarter more: each one syncs the WAL and the file. */
	h->ckpt_at = h->wal_frames + SQLITE_CKPT_FRAMES / 4;
}

/* SQLite's WAL hook: note the WAL's size (instead of checkpointing). */
static int
sqlite_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct sqlite_handle *h = arg;

	(void)db;
	(void)name;
	h->wal_frames = frames;
	return SQLITE_OK;
}

/*
 * Commit. With records on the writer: note the entry's sequence number in
 * the transaction, append the records to the redo log and sync them, then
 * COMMIT (no sync). If the log cannot take them nothing is committed; if
 * the COMMIT fails the entry is taken back off the log, so the writes
 * answered UNAVAILABLE never come back at a replay.
 */
static int
sqlite_commit(void *hv)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s;
	int rc;

	if (h->redo == NULL || h->rb.len == 0) {
		redo_buf_reset(&h->rb);
		return sqlite_simple(h, ST_COMMIT);
	}
	if (h->rb.nomem) {
		log_warnx("sqlite: out of memory for the redo records");
		rc = REGISTRY_EUNAVAIL;
		goto fail;
	}
	if ((s = sqlite_stmt(h, ST_REDO_SET)) == NULL) {
		rc = REGISTRY_EFAIL;
		goto fail;
	}
	sqlite3_bind_int64(s, 1, (sqlite3_int64)(redo_last_seq(h->redo) + 1));
	if ((rc = sqlite_exec_stmt(h, ST_REDO_SET, s)) != 0)
		goto fail;
	if (redo_append(h->redo, h->rb.p, h->rb.len) == -1) {
		rc = REGISTRY_EUNAVAIL;
		goto fail;
	}
	if (registry_sqlite_fail_commit) {
		registry_sqlite_fail_commit = 0;
		rc = REGISTRY_EUNAVAIL;
	} else
		rc = sqlite_simple(h, ST_COMMIT);
	if (rc != 0) {
		log_warnx("sqlite: commit failed after the redo log took it; "
			  "taking it back");
		redo_undo(h->redo);
		rc = REGISTRY_EUNAVAIL;
		goto fail;
	}
	redo_buf_reset(&h->rb);
	sqlite_checkpoint(h);
	return 0;
fail:
	sqlite_rollback(h);
	return rc;
}

static int
sqlite_savepoint(void *hv)
{
	struct sqlite_handle *h = hv;

	if (redo_buf_mark(&h->rb) == -1) {
		log_warnx("sqlite: savepoints nested too deep");
		return REGISTRY_EFAIL;
	}
	return sqlite_simple(h, ST_SAVEPOINT);
}

static int
sqlite_release(void *hv)
{
	struct sqlite_handle *h = hv;

	redo_buf_release(&h->rb);
	return sqlite_simple(h, ST_RELEASE);
}

/* Undo back to the savepoint and drop it, records too. */
static int
sqlite_rollback_to(void *hv)
{
	struct sqlite_handle *h = hv;
	int rc;

	redo_buf_rollback(&h->rb);
	if ((rc = sqlite_simple(h, ST_ROLLBACK_TO)) != 0)
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
    void *hv, const char *domain, const char *value, const char *pid)
{
	struct sqlite_handle *h = hv;
	int rc = sqlite_write3(h, ST_IDENT_INSERT, domain, value, pid);

	if (rc == 0)
		SQLITE_LOG(h, REC_IDENT_INSERT, "sss", domain, value, pid);
	return rc;
}

static int
sqlite_ident_delete(void *hv, const char *domain, const char *value)
{
	struct sqlite_handle *h = hv;
	int rc = sqlite_write3(h, ST_IDENT_DELETE, domain, value, NULL);

	if (rc == 0)
		SQLITE_LOG(h, REC_IDENT_DELETE, "ss", domain, value);
	return rc;
}

static int
sqlite_ident_move(
    void *hv, const char *domain, const char *value, const char *pid)
{
	struct sqlite_handle *h = hv;
	int rc = sqlite_write3(h, ST_IDENT_MOVE, domain, value, pid);

	if (rc == 0)
		SQLITE_LOG(h, REC_IDENT_MOVE, "sss", domain, value, pid);
	return rc;
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

	int rc;

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite_bind_patient(s, p);
	sqlite3_bind_int64(s, 9, now_ms);
	if ((rc = sqlite_exec_stmt(h, ST_PATIENT_INSERT, s)) == 0)
		SQLITE_LOG(h, REC_PATIENT_INSERT, "ssisssisi", p->id, p->name,
		    (int64_t)p->sex, p->birth_date, p->phone, p->address,
		    (int64_t)p->version, p->merged_into, (int64_t)now_ms);
	return rc;
}

static int
sqlite_patient_update(void *hv, const struct registry_patient *p)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_PATIENT_UPDATE);

	int rc;

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite_bind_patient(s, p);
	if ((rc = sqlite_exec_stmt(h, ST_PATIENT_UPDATE, s)) == 0)
		SQLITE_LOG(h, REC_PATIENT_UPDATE, "ssisssis", p->id, p->name,
		    (int64_t)p->sex, p->birth_date, p->phone, p->address,
		    (int64_t)p->version, p->merged_into);
	return rc;
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
	/* A replayed event keeps its number. */
	enum sqlite_stmt q = ev->seq != 0 ? ST_EVENT_REPLAY : ST_EVENT_APPEND;
	sqlite3_stmt *s = sqlite_stmt(h, q);
	const char *other = ev->other_patient_id ? ev->other_patient_id : "";
	const char *notify = ev->notify ? ev->notify : "";
	int rc;

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite_text(s, 1, ev->op);
	sqlite_text(s, 2, ev->patient_id);
	sqlite_text(s, 3, ev->actor);
	sqlite3_bind_int64(s, 4, ev->time_ms);
	sqlite_text(s, 5, ev->detail);
	sqlite_text(s, 6, other);
	sqlite_text(s, 7, notify);
	if (q == ST_EVENT_REPLAY)
		sqlite3_bind_int64(s, 8, (sqlite3_int64)ev->seq);
	if ((rc = sqlite_exec_stmt(h, q, s)) != 0)
		return rc;
	ev->seq = (uint64_t)sqlite3_last_insert_rowid(h->db);
	SQLITE_LOG(h, REC_EVENT_APPEND2, "isssisss", (int64_t)ev->seq, ev->op,
	    ev->patient_id, ev->actor, (int64_t)ev->time_ms, ev->detail, other,
	    notify);
	return 0;
}

/* Read an events row (SQLITE_EVENT_COLS) into ev. */
static void
sqlite_event_row(sqlite3_stmt *s, struct registry_event *ev)
{
	ev->seq = (uint64_t)sqlite3_column_int64(s, 0);
	ev->op = sqlite_col(s, 1);
	ev->patient_id = sqlite_col(s, 2);
	ev->actor = sqlite_col(s, 3);
	ev->time_ms = sqlite3_column_int64(s, 4);
	ev->detail = sqlite_col(s, 5);
	ev->other_patient_id = sqlite_col(s, 6);
	ev->notify = sqlite_col(s, 7);
}

/* The newest limit events of pid, with seq <= upto when upto is set. */
static int
sqlite_events(struct sqlite_handle *h, const char *pid, uint64_t upto,
    unsigned limit, registry_event_cb cb, void *arg)
{
	enum sqlite_stmt q = upto > 0 ? ST_EVENT_LIST_UPTO : ST_EVENT_LIST;
	sqlite3_stmt *s = sqlite_stmt(h, q);
	struct registry_event ev;
	int rc;

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite_text(s, 1, pid);
	sqlite3_bind_int(s, 2, (int)limit);
	if (upto > 0)
		sqlite3_bind_int64(s, 3, (sqlite3_int64)upto);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		sqlite_event_row(s, &ev);
		if (cb(arg, &ev) == -1)
			return sqlite_done(
			    h, q, s, SQLITE_DONE, REGISTRY_EFAIL);
	}
	return sqlite_done(h, q, s, rc, 0);
}

/* Events with after < seq <= upto, oldest first, at most limit. */
static int
sqlite_events_after(struct sqlite_handle *h, uint64_t after, uint64_t upto,
    unsigned limit, registry_event_cb cb, void *arg)
{
	sqlite3_stmt *s = sqlite_stmt(h, ST_EVENT_SCAN);
	struct registry_event ev;
	int rc;

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)after);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)upto);
	sqlite3_bind_int(s, 3, (int)limit);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		sqlite_event_row(s, &ev);
		if (cb(arg, &ev) == -1)
			return sqlite_done(
			    h, ST_EVENT_SCAN, s, SQLITE_DONE, REGISTRY_EFAIL);
	}
	return sqlite_done(h, ST_EVENT_SCAN, s, rc, 0);
}

static int
sqlite_event_scan(
    void *hv, uint64_t after, unsigned limit, registry_event_cb cb, void *arg)
{
	return sqlite_events_after(hv, after, INT64_MAX, limit, cb, arg);
}

static int
sqlite_event_floor(void *hv, uint64_t *floor)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_EVENT_FLOOR);
	int rc;

	*floor = 0;
	if (s == NULL)
		return REGISTRY_EFAIL;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		*floor = (uint64_t)sqlite3_column_int64(s, 0);
	return sqlite_done(h, ST_EVENT_FLOOR, s, rc, 0);
}

/* The last event hospital code could see that retention dropped. */
static int
sqlite_event_floor_hospital(void *hv, const char *code, uint64_t *floor)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_EVENT_FLOOR_HOSP);
	int rc;

	*floor = 0;
	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite_text(s, 1, code);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		*floor = (uint64_t)sqlite3_column_int64(s, 0);
	return sqlite_done(h, ST_EVENT_FLOOR_HOSP, s, rc, 0);
}

static int
sqlite_event_floor_of(void *hv, const char *code, uint64_t *floor)
{
	return code == NULL ? sqlite_event_floor(hv, floor)
			    : sqlite_event_floor_hospital(hv, code, floor);
}

/* The hospitals named in the events old < seq <= want, each with the last
 * such event: what a hospital could see among the events to drop. */
struct prune_hosp {
	char code[72];
	int64_t seq;
};

static int
sqlite_prune_hospitals(struct sqlite_handle *h, uint64_t old, int64_t want)
{
	sqlite3_stmt *s = sqlite_stmt(h, ST_EVENT_PRUNED_NOTIFY), *u;
	struct prune_hosp *v = NULL;
	size_t n = 0, cap = 0;
	int rc, ret = 0;

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)old);
	sqlite3_bind_int64(s, 2, want);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(s, 0);
		const char *p = sqlite_col(s, 1), *e;

		for (; *p != '\0'; p = e) {
			size_t len, i;

			while (*p == ' ')
				p++;
			for (e = p; *e != '\0' && *e != ' '; e++)
				;
			if ((len = (size_t)(e - p)) == 0 ||
			    len >= sizeof(v->code))
				continue;
			for (i = 0; i < n; i++)
				if (strncmp(v[i].code, p, len) == 0 &&
				    v[i].code[len] == '\0')
					break;
			if (i == n) {
				if (n == cap) {
					size_t nc = cap ? cap * 2 : 16;
					struct prune_hosp *nv =
					    realloc(v, nc * sizeof(*nv));

					if (nv == NULL) {
						ret = REGISTRY_EFAIL;
						goto out;
					}
					v = nv;
					cap = nc;
				}
				memcpy(v[n].code, p, len);
				v[n].code[len] = '\0';
				v[n++].seq = 0;
			}
			if (seq > v[i].seq)
				v[i].seq = seq;
		}
	}
	ret = sqlite_done(h, ST_EVENT_PRUNED_NOTIFY, s, rc, 0);
	s = NULL;
	for (size_t i = 0; ret == 0 && i < n; i++) {
		if ((u = sqlite_stmt(h, ST_EVENT_FLOOR_HOSP_SET)) == NULL) {
			ret = REGISTRY_EFAIL;
			break;
		}
		sqlite_text(u, 1, v[i].code);
		sqlite3_bind_int64(u, 2, v[i].seq);
		ret = sqlite_exec_stmt(h, ST_EVENT_FLOOR_HOSP_SET, u);
	}
out:
	if (s != NULL)
		sqlite_done(h, ST_EVENT_PRUNED_NOTIFY, s, SQLITE_DONE, 0);
	free(v);
	return ret;
}

static int
sqlite_event_list(
    void *hv, const char *pid, unsigned limit, registry_event_cb cb, void *arg)
{
	return sqlite_events(hv, pid, 0, limit, cb, arg);
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
	int rc;

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite_text(s, 1, hosp->code);
	sqlite_text(s, 2, hosp->name);
	sqlite3_bind_int(s, 3, hosp->role);
	sqlite3_bind_int(s, 4, hosp->active);
	sqlite3_bind_int64(s, 5, now_ms);
	if ((rc = sqlite_exec_stmt(h, ST_HOSPITAL_PUT, s)) == 0)
		SQLITE_LOG(h, REC_HOSPITAL_PUT, "ssiii", hosp->code, hosp->name,
		    (int64_t)hosp->role, (int64_t)hosp->active,
		    (int64_t)now_ms);
	return rc;
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
	/* A replayed merge keeps its id. */
	enum sqlite_stmt q = *merge_id > 0 ? ST_MERGE_REPLAY : ST_MERGE_INSERT;
	sqlite3_stmt *s = sqlite_stmt(h, q);
	int rc;

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite_text(s, 1, survivor);
	sqlite_text(s, 2, duplicate);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)seq);
	if (q == ST_MERGE_REPLAY)
		sqlite3_bind_int64(s, 4, (sqlite3_int64)*merge_id);
	if ((rc = sqlite_exec_stmt(h, q, s)) != 0)
		return rc;
	*merge_id = sqlite3_last_insert_rowid(h->db);
	SQLITE_LOG(h, REC_MERGE_INSERT, "issi", (int64_t)*merge_id, survivor,
	    duplicate, (int64_t)seq);
	return 0;
}

static int
sqlite_merge_ident_insert(
    void *hv, int64_t merge_id, const char *domain, const char *value)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_MERGE_IDENT_INSERT);
	int rc;

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite3_bind_int64(s, 1, merge_id);
	sqlite_text(s, 2, domain);
	sqlite_text(s, 3, value);
	if ((rc = sqlite_exec_stmt(h, ST_MERGE_IDENT_INSERT, s)) == 0)
		SQLITE_LOG(h, REC_MERGE_IDENT_INSERT, "iss", (int64_t)merge_id,
		    domain, value);
	return rc;
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
	int rc;

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite3_bind_int64(s, 1, merge_id);
	if ((rc = sqlite_exec_stmt(h, ST_MERGE_UNDO, s)) == 0)
		SQLITE_LOG(h, REC_MERGE_UNDO, "i", (int64_t)merge_id);
	return rc;
}

static int
sqlite_pair_insert(void *hv, struct registry_pair *pr)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_PAIR_INSERT);
	int64_t bits;
	int rc;

	if (s == NULL)
		return REGISTRY_EFAIL;
	if (pr->id > 0) /* a replayed pair keeps its id */
		sqlite3_bind_int64(s, 1, pr->id);
	else
		sqlite3_bind_null(s, 1);
	sqlite_text(s, 2, pr->a);
	sqlite_text(s, 3, pr->b);
	sqlite3_bind_double(s, 4, pr->score);
	sqlite3_bind_int(s, 5, pr->grade);
	sqlite_text(s, 6, pr->reason ? pr->reason : "");
	sqlite3_bind_int(s, 7, pr->state);
	sqlite3_bind_int64(s, 8, pr->found_ms);
	if ((rc = sqlite_exec_stmt(h, ST_PAIR_INSERT, s)) != 0)
		return rc;
	pr->id = sqlite3_last_insert_rowid(h->db);
	memcpy(&bits, &pr->score, sizeof(bits));
	SQLITE_LOG(h, REC_PAIR_INSERT, "issiisii", pr->id, pr->a, pr->b, bits,
	    (int64_t)pr->grade, pr->reason ? pr->reason : "",
	    (int64_t)pr->state, pr->found_ms);
	return 0;
}

static int
sqlite_pair_state(void *hv, int64_t id, int state)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_PAIR_STATE);
	int rc;

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int(s, 2, state);
	if ((rc = sqlite_exec_stmt(h, ST_PAIR_STATE, s)) == 0)
		SQLITE_LOG(h, REC_PAIR_STATE, "ii", id, (int64_t)state);
	return rc;
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
		if (cb != NULL && cb(arg, sqlite_col(s, 0), n) == -1)
			return sqlite_done(h, ST_COUNT_DOMAINS, s, SQLITE_DONE,
			    REGISTRY_EFAIL);
	}
	return sqlite_done(h, ST_COUNT_DOMAINS, s, rc, 0);
}

/* Apply one redo entry's records (logging off); 0 or an error. */
static int
sqlite_redo_apply(struct sqlite_handle *h, const uint8_t *p, size_t len)
{
	return registry_redo_apply(&registry_sqlite, h, p, len);
}

/* Replay one entry in its own transaction, with its sequence number. */
static int
sqlite_redo_entry(void *arg, uint64_t seq, const uint8_t *p, size_t len)
{
	struct sqlite_handle *h = arg;
	sqlite3_stmt *s;

	if (sqlite_simple(h, ST_BEGIN_IMMEDIATE) != 0)
		return -1;
	if (sqlite_redo_apply(h, p, len) != 0 ||
	    (s = sqlite_stmt(h, ST_REDO_SET)) == NULL)
		goto fail;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
	if (sqlite_exec_stmt(h, ST_REDO_SET, s) != 0 ||
	    sqlite_simple(h, ST_COMMIT) != 0)
		goto fail;
	return 0;
fail:
	sqlite_rollback(h);
	return -1;
}

/*
 * Pair the database with log id: stored with a synced commit before any
 * entry goes into that log, so a power loss cannot leave the database
 * naming an older log while the new one holds acknowledged entries.
 */
static int
sqlite_redo_pair(struct sqlite_handle *h, uint64_t id)
{
	sqlite3_stmt *s = sqlite_stmt(h, ST_REDO_PAIR);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_exec(h->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
	sqlite3_bind_int64(s, 1, (sqlite3_int64)id);
	rc = sqlite_exec_stmt(h, ST_REDO_PAIR, s);
	if (h->mode == MODE_DIRECT)
		sqlite3_exec(
		    h->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
	return rc == 0 ? 0 : -1;
}

/*
 * The redo log of the database at path: <path>-redo, made when missing. A
 * log that is not the one the database was paired with (the database was
 * copied or re-created beside an old log) holds nothing for it: it is set
 * aside as <path>-redo.orphan, never replayed.
 */
static struct redo *
sqlite_redo_file(const char *path, uint64_t log_id, char *err, size_t errlen)
{
	size_t n = strlen(path);
	char *rpath, *orphan;
	struct redo *r = NULL;

	if ((rpath = malloc(n + sizeof(SQLITE_REDO_SUFFIX) + 7)) == NULL ||
	    (orphan = malloc(n + sizeof(SQLITE_REDO_SUFFIX) + 7)) == NULL) {
		free(rpath);
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	snprintf(rpath, n + sizeof(SQLITE_REDO_SUFFIX), "%s%s", path,
	    SQLITE_REDO_SUFFIX);
	snprintf(
	    orphan, n + sizeof(SQLITE_REDO_SUFFIX) + 7, "%s.orphan", rpath);
	if ((r = redo_open(rpath, err, errlen)) != NULL && !redo_created(r) &&
	    redo_id(r) != log_id) {
		log_warnx("redo %s: not this registry's log (%016llx, want "
			  "%016llx); set aside as %s",
		    rpath, (unsigned long long)redo_id(r),
		    (unsigned long long)log_id, orphan);
		redo_close(r);
		r = NULL;
		if (rename(rpath, orphan) == -1)
			snprintf(err, errlen, "%s: cannot set it aside as %s",
			    rpath, orphan);
		else
			r = redo_open(rpath, err, errlen);
	}
	free(rpath);
	free(orphan);
	return r;
}

/*
 * The writer's open: open <db>-redo, replay every entry above the one the
 * database holds, checkpoint it all into the file and start the log again.
 * A crash during this replays the rest next time: each entry commits with
 * its sequence number.
 */
static int
sqlite_redo_open(
    struct sqlite_handle *h, const char *path, char *err, size_t errlen)
{
	sqlite3_stmt *s;
	uint64_t applied = 0, log_id = 0;
	int rc, nlog = -1, nckpt = -1;

	if ((s = sqlite_stmt(h, ST_REDO_GET)) == NULL) {
		snprintf(err, errlen, "%s: no redo_state table", path);
		return -1;
	}
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		applied = (uint64_t)sqlite3_column_int64(s, 0);
		log_id = (uint64_t)sqlite3_column_int64(s, 1);
	}
	if (sqlite_done(h, ST_REDO_GET, s, rc, 0) != 0) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(h->db));
		return -1;
	}
	if ((h->redo = sqlite_redo_file(path, log_id, err, errlen)) == NULL)
		return -1;
	if (redo_id(h->redo) != log_id &&
	    sqlite_redo_pair(h, redo_id(h->redo)) == -1) {
		snprintf(err, errlen, "%s: cannot note its redo log: %s", path,
		    sqlite3_errmsg(h->db));
		return -1;
	}
	if (redo_replay(h->redo, applied, sqlite_redo_entry, h, err, errlen) ==
	    -1)
		return -1;
	rc = sqlite3_wal_checkpoint_v2(
	    h->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, &nckpt);
	if (rc == SQLITE_OK && nlog >= 0 && nckpt == nlog)
		redo_restart(h->redo);
	sqlite3_wal_hook(h->db, sqlite_wal_hook, h);
	h->ckpt_at = SQLITE_CKPT_FRAMES;
	h->logging = 1;
	return 0;
}

/* --- The image of the in-memory registry (registry_image.h) ------------ */

void *
registry_image_open(const char *path, char *err, size_t errlen)
{
	return sqlite_open_mode(path, MODE_IMAGE, err, errlen);
}

void *
registry_image_reader(const char *path, char *err, size_t errlen)
{
	return sqlite_open_mode(path, MODE_READ, err, errlen);
}

void
registry_image_close(void *h)
{
	sqlite_close(h);
}

void
registry_image_release(void *hv)
{
	struct sqlite_handle *h = hv;

	sqlite3_db_release_memory(h->db);
}

int
registry_image_state(void *hv, uint64_t *applied, uint64_t *log_id)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_REDO_GET);
	int rc;

	*applied = *log_id = 0;
	if (s == NULL)
		return -1;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*applied = (uint64_t)sqlite3_column_int64(s, 0);
		*log_id = (uint64_t)sqlite3_column_int64(s, 1);
	}
	return sqlite_done(h, ST_REDO_GET, s, rc, 0) == 0 ? 0 : -1;
}

int
registry_image_pair(void *h, uint64_t log_id)
{
	return sqlite_redo_pair(h, log_id);
}

struct redo *
registry_image_log(const char *path, uint64_t log_id, char *err, size_t errlen)
{
	return sqlite_redo_file(path, log_id, err, errlen);
}

/* Run sql and send each row to row(); 0, or -1 with err set. */
static int
sqlite_scan(struct sqlite_handle *h, const char *sql,
    int (*row)(sqlite3_stmt *, const struct registry_image_sink *, void *),
    const struct registry_image_sink *sink, void *arg, char *err, size_t errlen)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(h->db, sql, -1, &s, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(h->db));
		return -1;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (row(s, sink, arg) == -1) {
			sqlite3_finalize(s);
			snprintf(
			    err, errlen, "out of memory loading the image");
			return -1;
		}
	if (rc != SQLITE_DONE)
		snprintf(err, errlen, "%s", sqlite3_errmsg(h->db));
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int
sqlite_load_patient(
    sqlite3_stmt *s, const struct registry_image_sink *k, void *arg)
{
	struct registry_patient p;

	registry_copy(p.id, sqlite_col(s, 0), sizeof(p.id));
	p.name = (char *)sqlite_col(s, 1);
	p.sex = sqlite3_column_int(s, 2);
	p.birth_date = (char *)sqlite_col(s, 3);
	p.phone = (char *)sqlite_col(s, 4);
	p.address = (char *)sqlite_col(s, 5);
	p.version = (uint64_t)sqlite3_column_int64(s, 6);
	registry_copy(p.merged_into, sqlite_col(s, 7), sizeof(p.merged_into));
	return k->patient(arg, &p);
}

static int
sqlite_load_ident(
    sqlite3_stmt *s, const struct registry_image_sink *k, void *arg)
{
	return k->ident(
	    arg, sqlite_col(s, 0), sqlite_col(s, 1), sqlite_col(s, 2));
}

static int
sqlite_load_hospital(
    sqlite3_stmt *s, const struct registry_image_sink *k, void *arg)
{
	struct registry_hospital hosp = {
	    .code = sqlite_col(s, 0),
	    .name = sqlite_col(s, 1),
	    .role = sqlite3_column_int(s, 2),
	    .active = sqlite3_column_int(s, 3),
	};

	return k->hospital(arg, &hosp);
}

static int
sqlite_load_merge(
    sqlite3_stmt *s, const struct registry_image_sink *k, void *arg)
{
	return k->merge(arg, sqlite3_column_int64(s, 0), sqlite_col(s, 1),
	    sqlite_col(s, 2), (uint64_t)sqlite3_column_int64(s, 3),
	    sqlite3_column_int(s, 4));
}

static int
sqlite_load_merge_ident(
    sqlite3_stmt *s, const struct registry_image_sink *k, void *arg)
{
	return k->merge_ident(arg, sqlite3_column_int64(s, 0), sqlite_col(s, 1),
	    sqlite_col(s, 2));
}

static int
sqlite_load_pair(
    sqlite3_stmt *s, const struct registry_image_sink *k, void *arg)
{
	struct registry_pair pr = {
	    .id = sqlite3_column_int64(s, 0),
	    .score = sqlite3_column_double(s, 3),
	    .grade = sqlite3_column_int(s, 4),
	    .reason = sqlite_col(s, 5),
	    .state = sqlite3_column_int(s, 6),
	    .found_ms = sqlite3_column_int64(s, 7),
	};

	registry_copy(pr.a, sqlite_col(s, 1), sizeof(pr.a));
	registry_copy(pr.b, sqlite_col(s, 2), sizeof(pr.b));
	return k->pair(arg, &pr);
}

static int
sqlite_load_max(sqlite3_stmt *s, const struct registry_image_sink *k, void *arg)
{
	int64_t *v = arg;

	(void)k;
	v[0] = sqlite3_column_int64(s, 0);
	v[1] = sqlite3_column_int64(s, 1);
	return 0;
}

int
registry_image_load(void *hv, const struct registry_image_sink *sink, void *arg,
    uint64_t *max_event, int64_t *max_merge, char *err, size_t errlen)
{
	struct sqlite_handle *h = hv;
	int64_t max[2] = {0, 0};
	int rc;

	if (sqlite3_exec(h->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(h->db));
		return -1;
	}
	rc = sqlite_scan(h,
		 "SELECT id, name, sex, birth_date, phone, address, version,"
		 " merged_into FROM patients ORDER BY id",
		 sqlite_load_patient, sink, arg, err, errlen) == -1 ||
		sqlite_scan(h,
		    "SELECT domain, value, patient_id FROM identifiers"
		    " ORDER BY domain, value",
		    sqlite_load_ident, sink, arg, err, errlen) == -1 ||
		sqlite_scan(h,
		    "SELECT code, name, role, active FROM hospitals"
		    " ORDER BY code",
		    sqlite_load_hospital, sink, arg, err, errlen) == -1 ||
		sqlite_scan(h,
		    "SELECT id, survivor, duplicate, seq, undone FROM merges"
		    " ORDER BY id",
		    sqlite_load_merge, sink, arg, err, errlen) == -1 ||
		sqlite_scan(h,
		    "SELECT merge_id, domain, value FROM merge_identifiers"
		    " ORDER BY merge_id, domain, value",
		    sqlite_load_merge_ident, sink, arg, err, errlen) == -1 ||
		sqlite_scan(h,
		    "SELECT id, a, b, score, grade, reason, state, found_ms"
		    " FROM pairs ORDER BY id",
		    sqlite_load_pair, sink, arg, err, errlen) == -1 ||
		sqlite_scan(h,
		    "SELECT max((SELECT coalesce(max(seq), 0) FROM events),"
		    " (SELECT seq FROM event_floor)),"
		    " (SELECT coalesce(max(id), 0) FROM merges)",
		    sqlite_load_max, NULL, max, err, errlen) == -1
	    ? -1
	    : 0;
	sqlite3_exec(h->db, "COMMIT", NULL, NULL, NULL);
	*max_event = (uint64_t)max[0];
	*max_merge = max[1];
	return rc;
}

int
registry_image_fold_begin(void *h)
{
	return sqlite_simple(h, ST_BEGIN_IMMEDIATE);
}

int
registry_image_fold(void *h, const uint8_t *payload, size_t len)
{
	return sqlite_redo_apply(h, payload, len);
}

int
registry_image_fold_commit(void *hv, uint64_t seq)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s = sqlite_stmt(h, ST_REDO_SET);
	int rc;

	if (s == NULL)
		return REGISTRY_EFAIL;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
	if ((rc = sqlite_exec_stmt(h, ST_REDO_SET, s)) != 0)
		return rc;
	return sqlite_simple(h, ST_COMMIT);
}

void
registry_image_fold_rollback(void *h)
{
	sqlite_rollback(h);
}

/* One number from statement q (bound by the caller) into *v. */
static int
sqlite_one(
    struct sqlite_handle *h, enum sqlite_stmt q, sqlite3_stmt *s, int64_t *v)
{
	int rc = sqlite3_step(s);

	*v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	return sqlite_done(h, q, s, rc, 0);
}

int
registry_image_prune(void *hv, uint64_t keep_events, int64_t keep_ms,
    int64_t now_ms, uint64_t *floor)
{
	struct sqlite_handle *h = hv;
	sqlite3_stmt *s;
	int64_t want = 0, max = 0;
	uint64_t old;
	int rc;

	if ((rc = sqlite_event_floor(h, &old)) != 0)
		return rc;
	*floor = old;
	if (keep_events > 0) {
		if ((s = sqlite_stmt(h, ST_EVENT_KEEP_COUNT)) == NULL ||
		    (rc = sqlite_one(h, ST_EVENT_KEEP_COUNT, s, &max)) != 0)
			return s == NULL ? REGISTRY_EFAIL : rc;
		want = max - (int64_t)keep_events;
	} else if (keep_ms > 0) {
		if ((s = sqlite_stmt(h, ST_EVENT_KEEP_AGE)) == NULL)
			return REGISTRY_EFAIL;
		sqlite3_bind_int64(s, 1, (sqlite3_int64)old);
		sqlite3_bind_int64(s, 2, now_ms - keep_ms);
		sqlite3_bind_int(s, 3, REGISTRY_PRUNE_BATCH);
		if ((rc = sqlite_one(h, ST_EVENT_KEEP_AGE, s, &want)) != 0)
			return rc;
	}
	if (want > (int64_t)old + REGISTRY_PRUNE_BATCH)
		want = (int64_t)old + REGISTRY_PRUNE_BATCH;
	if (want <= (int64_t)old)
		return 0;
	if ((rc = sqlite_simple(h, ST_BEGIN_IMMEDIATE)) != 0)
		return rc;
	if ((rc = sqlite_prune_hospitals(h, old, want)) != 0) {
		sqlite_rollback(h);
		return rc;
	}
	if ((s = sqlite_stmt(h, ST_EVENT_PRUNE)) == NULL) {
		sqlite_rollback(h);
		return REGISTRY_EFAIL;
	}
	sqlite3_bind_int64(s, 1, (sqlite3_int64)old);
	sqlite3_bind_int64(s, 2, want);
	if ((rc = sqlite_exec_stmt(h, ST_EVENT_PRUNE, s)) != 0 ||
	    (s = sqlite_stmt(h, ST_EVENT_FLOOR_SET)) == NULL) {
		sqlite_rollback(h);
		return rc != 0 ? rc : REGISTRY_EFAIL;
	}
	sqlite3_bind_int64(s, 1, want);
	if ((rc = sqlite_exec_stmt(h, ST_EVENT_FLOOR_SET, s)) != 0 ||
	    (rc = sqlite_simple(h, ST_COMMIT)) != 0) {
		sqlite_rollback(h);
		return rc;
	}
	*floor = (uint64_t)want;
	return 0;
}

int
registry_image_events(void *h, const char *pid, uint64_t upto, unsigned limit,
    registry_event_cb cb, void *arg)
{
	return sqlite_events(h, pid, upto, limit, cb, arg);
}

int
registry_image_events_after(void *h, uint64_t after, uint64_t upto,
    unsigned limit, registry_event_cb cb, void *arg)
{
	return sqlite_events_after(h, after, upto, limit, cb, arg);
}

int
registry_image_event_floor(void *h, const char *code, uint64_t *floor)
{
	return sqlite_event_floor_of(h, code, floor);
}

/*
 * Copy the image into the new file dst with SQLite's online backup, in one
 * step: one read transaction, so one committed state, while the fold goes
 * on beside it (WAL: a reader does not block the writer).
 */
int
registry_image_backup(void *hv, const char *dst, char *err, size_t errlen)
{
	struct sqlite_handle *h = hv;
	sqlite3 *out = NULL;
	sqlite3_backup *b;
	int rc;

	if (sqlite3_open_v2(dst, &out,
		SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
		NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", dst,
		    out ? sqlite3_errmsg(out) : "cannot open");
		sqlite3_close(out);
		return -1;
	}
	if ((b = sqlite3_backup_init(out, "main", h->db, "main")) == NULL) {
		snprintf(err, errlen, "%s: %s", dst, sqlite3_errmsg(out));
		sqlite3_close(out);
		return -1;
	}
	while ((rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY ||
	    rc == SQLITE_LOCKED)
		sqlite3_sleep(10);
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE)
		snprintf(err, errlen, "%s: %s", dst, sqlite3_errstr(rc));
	if (sqlite3_close(out) != SQLITE_OK && rc == SQLITE_DONE) {
		snprintf(err, errlen, "%s: cannot close", dst);
		rc = SQLITE_ERROR;
	}
	return rc == SQLITE_DONE ? 0 : -1;
}

int
registry_image_standalone(const char *path, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	int rc;

	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db,
		    "PRAGMA journal_mode=DELETE; PRAGMA integrity_check;", NULL,
		    NULL, NULL);
	if (rc != SQLITE_OK)
		snprintf(err, errlen, "%s: %s", path,
		    db ? sqlite3_errmsg(db) : "cannot open");
	if (sqlite3_close(db) != SQLITE_OK && rc == SQLITE_OK) {
		snprintf(err, errlen, "%s: cannot close", path);
		rc = SQLITE_ERROR;
	}
	return rc == SQLITE_OK ? 0 : -1;
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
    .event_scan = sqlite_event_scan,
    .event_floor = sqlite_event_floor_of,
    .hospital_get = sqlite_hospital_get,
    .hospital_put = sqlite_hospital_put,
    .hospital_list = sqlite_hospital_list,
    .merge_insert = sqlite_merge_insert,
    .merge_ident_insert = sqlite_merge_ident_insert,
    .merge_find = sqlite_merge_find,
    .merge_idents = sqlite_merge_idents,
    .merge_undo = sqlite_merge_undo,
    .pair_insert = sqlite_pair_insert,
    .pair_state = sqlite_pair_state,
    .counts = sqlite_counts,
};
