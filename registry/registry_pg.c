/*
 * registry_pg.c: the PostgreSQL store behind registry_backend.h, so that
 * several brokers can share one registry: schema, versioned migrations,
 * prepared statements, and the mapping of libpq's errors onto the backend's
 * codes. It keeps no rule and no copy of the data: every answer comes from
 * the server, and PostgreSQL's own WAL is where a commit is durable (there
 * is no redo log of ours here). Races between brokers are the server's to
 * settle: unique keys, row locks taken by the writer's reads, and a counter
 * row that puts event numbers in commit order (pg_event_append).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "log.h"
#include "registry_backend.h"

#define PG_PARAMS_MAX 9
#define PG_NUM_LEN    24    /* a decimal int64 and its NUL */
#define PG_LOCK_WAIT  "10s" /* a writer's wait for another broker's batch */
#define PG_IDLE_TXN   "60s" /* an open transaction left idle that long ends */

/*
 * Each migration takes the schema from version i to i + 1; they run in one
 * transaction under an advisory lock, so brokers starting together apply
 * each once. Text keys sort as bytes (COLLATE "C"), as in SQLite, whatever
 * the database's locale: export pages and lists come in the same order.
 */
static const char *const pg_migrations[] = {
    "CREATE TABLE patients ("
    " id text COLLATE \"C\" PRIMARY KEY, name text NOT NULL DEFAULT '',"
    " sex integer NOT NULL DEFAULT 0,"
    " birth_date text NOT NULL DEFAULT '',"
    " phone text NOT NULL DEFAULT '', address text NOT NULL DEFAULT '',"
    " version bigint NOT NULL,"
    " merged_into text COLLATE \"C\" NOT NULL DEFAULT '',"
    " created_ms bigint NOT NULL);"
    "CREATE INDEX patients_name_birth ON patients (name, birth_date);"
    "CREATE INDEX patients_birth ON patients (birth_date);"
    /* One owner per identifier: the key two brokers race on. */
    "CREATE TABLE identifiers ("
    " domain text COLLATE \"C\" NOT NULL, value text COLLATE \"C\" NOT NULL,"
    " patient_id text COLLATE \"C\" NOT NULL,"
    " PRIMARY KEY (domain, value));"
    "CREATE INDEX identifiers_patient ON identifiers (patient_id);"
    "CREATE TABLE events ("
    " seq bigint PRIMARY KEY, op text NOT NULL,"
    " patient_id text COLLATE \"C\" NOT NULL, actor text NOT NULL,"
    " time_ms bigint NOT NULL, detail text NOT NULL,"
    " other_patient_id text NOT NULL DEFAULT '',"
    " notify text NOT NULL DEFAULT '');"
    "CREATE INDEX events_patient ON events (patient_id, seq);"
    "CREATE TABLE event_counter ("
    " id integer PRIMARY KEY CHECK (id = 0), last bigint NOT NULL);"
    "INSERT INTO event_counter VALUES (0, 0);"
    "CREATE TABLE event_floor ("
    " id integer PRIMARY KEY CHECK (id = 0), seq bigint NOT NULL);"
    "INSERT INTO event_floor VALUES (0, 0);"
    "CREATE TABLE event_floor_hospital ("
    " code text COLLATE \"C\" PRIMARY KEY, seq bigint NOT NULL);"
    "CREATE TABLE hospitals ("
    " code text COLLATE \"C\" PRIMARY KEY, name text NOT NULL,"
    " role integer NOT NULL, active integer NOT NULL,"
    " changed_ms bigint NOT NULL);"
    "CREATE TABLE merges ("
    " id bigserial PRIMARY KEY, survivor text COLLATE \"C\" NOT NULL,"
    " duplicate text COLLATE \"C\" NOT NULL, seq bigint NOT NULL,"
    " undone integer NOT NULL DEFAULT 0);"
    "CREATE INDEX merges_duplicate ON merges (duplicate, undone);"
    "CREATE TABLE merge_identifiers ("
    " merge_id bigint NOT NULL, domain text COLLATE \"C\" NOT NULL,"
    " value text COLLATE \"C\" NOT NULL,"
    " PRIMARY KEY (merge_id, domain, value));"
    "CREATE TABLE pairs ("
    " id bigserial PRIMARY KEY, a text COLLATE \"C\" NOT NULL,"
    " b text COLLATE \"C\" NOT NULL, score double precision NOT NULL,"
    " grade integer NOT NULL, reason text NOT NULL,"
    " state integer NOT NULL, found_ms bigint NOT NULL, UNIQUE (a, b));",
};
#define PG_NMIGRATIONS (sizeof(pg_migrations) / sizeof(pg_migrations[0]))
/* The advisory lock migrations take: "onecard" in ASCII. */
#define PG_MIGRATE_LOCK "31365104152965732"

enum pg_stmt {
	PS_IDENT_OWNER,
	PS_IDENT_PATIENT,
	PS_IDENT_PATIENT_LOCK,
	PS_IDENT_RECORD,
	PS_PATIENT_RECORD,
	PS_IDENT_INSERT,
	PS_IDENT_DELETE,
	PS_IDENT_MOVE,
	PS_PATIENT_IDENTS,
	PS_PATIENT_GET,
	PS_PATIENT_GET_LOCK,
	PS_PATIENT_INSERT,
	PS_PATIENT_UPDATE,
	PS_PATIENT_PAGE,
	PS_SEARCH,
	PS_EVENT_APPEND,
	PS_EVENT_LIST,
	PS_EVENT_SCAN,
	PS_EVENT_FLOOR,
	PS_EVENT_FLOOR_HOSP,
	PS_HOSPITAL_GET,
	PS_HOSPITAL_PUT,
	PS_HOSPITAL_LIST,
	PS_MERGE_INSERT,
	PS_MERGE_IDENT_INSERT,
	PS_MERGE_FIND,
	PS_MERGE_IDENTS,
	PS_MERGE_UNDO,
	PS_PAIR_INSERT,
	PS_PAIR_STATE,
	PS_PAIR_FIND,
	PS_PAIR_GET,
	PS_PAIR_LIST,
	PS_COUNT_PATIENTS,
	PS_COUNT_DOMAINS,
	PS_PING,
	PS_MAX
};

#define PG_PATIENT_COLS                                                        \
	"p.name, p.sex, p.birth_date, p.phone, p.address, p.version,"          \
	" p.merged_into, p.id"
#define PG_EVENT_COLS                                                          \
	"seq, op, patient_id, actor, time_ms, detail, other_patient_id, "      \
	"notify"

static const struct {
	const char *sql;
	int nparams;
} pg_sql[PS_MAX] = {
    [PS_IDENT_OWNER] = {"SELECT patient_id FROM identifiers"
			" WHERE domain = $1 AND value = $2",
	2},
    [PS_IDENT_PATIENT] = {"SELECT " PG_PATIENT_COLS " FROM identifiers i"
			  " JOIN patients p ON p.id = i.patient_id"
			  " WHERE i.domain = $1 AND i.value = $2",
	2},
    /* The writer's reads lock the patient they read until the commit: a
     * broker changing the same patient waits, then reads what was
     * committed (no two cn-ids added to one patient at once). */
    [PS_IDENT_PATIENT_LOCK] = {"SELECT " PG_PATIENT_COLS " FROM identifiers i"
			       " JOIN patients p ON p.id = i.patient_id"
			       " WHERE i.domain = $1 AND i.value = $2"
			       " FOR UPDATE OF p",
	2},
    [PS_IDENT_RECORD] = {"SELECT " PG_PATIENT_COLS ", j.domain, j.value"
			 " FROM identifiers i"
			 " JOIN patients p ON p.id = i.patient_id"
			 " JOIN identifiers j ON j.patient_id = p.id"
			 " WHERE i.domain = $1 AND i.value = $2"
			 " ORDER BY j.domain, j.value",
	2},
    [PS_PATIENT_RECORD] = {"SELECT " PG_PATIENT_COLS ", j.domain, j.value"
			   " FROM patients p"
			   " LEFT JOIN identifiers j ON j.patient_id = p.id"
			   " WHERE p.id = $1 ORDER BY j.domain, j.value",
	1},
    [PS_IDENT_INSERT] = {"INSERT INTO identifiers (domain, value, patient_id)"
			 " VALUES ($1, $2, $3)",
	3},
    [PS_IDENT_DELETE] = {"DELETE FROM identifiers"
			 " WHERE domain = $1 AND value = $2",
	2},
    [PS_IDENT_MOVE] = {"UPDATE identifiers SET patient_id = $3"
		       " WHERE domain = $1 AND value = $2",
	3},
    [PS_PATIENT_IDENTS] = {"SELECT domain, value FROM identifiers"
			   " WHERE patient_id = $1 ORDER BY domain, value",
	1},
    [PS_PATIENT_GET] = {"SELECT " PG_PATIENT_COLS
			" FROM patients p WHERE p.id = $1",
	1},
    [PS_PATIENT_GET_LOCK] = {"SELECT " PG_PATIENT_COLS
			     " FROM patients p WHERE p.id = $1 FOR UPDATE",
	1},
    [PS_PATIENT_INSERT] = {"INSERT INTO patients (id, name, sex, birth_date,"
			   " phone, address, version, merged_into,"
			   " created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7,"
			   " $8, $9)",
	9},
    [PS_PATIENT_UPDATE] = {"UPDATE patients SET name = $2, sex = $3,"
			   " birth_date = $4, phone = $5, address = $6,"
			   " version = $7, merged_into = $8 WHERE id = $1",
	8},
    [PS_PATIENT_PAGE] = {"SELECT id FROM patients WHERE id > $1"
			 " AND merged_into = '' ORDER BY id LIMIT $2",
	2},
    [PS_SEARCH] = {"SELECT id FROM patients"
		   " WHERE ($1 = '' OR name = $1)"
		   " AND ($2 = '' OR birth_date = $2)"
		   " AND merged_into = '' AND ($3 = 0 OR sex = $3)"
		   " ORDER BY id LIMIT $4",
	4},
    /*
     * Event numbers follow commit order across brokers. A sequence would
     * not: broker A may take 7, broker B take 8 and commit first, and a
     * subscriber that read 8 and resumes after it never sees 7. Here each
     * event takes its number from the counter row, which the write
     * transaction locked when it began (pg_begin) and holds to its end:
     * another broker's transaction waits for this one to commit (or roll
     * back) and then counts on from its last number, so no number becomes
     * visible before every smaller one has. The update and the insert are
     * one statement, so they stand or fall together under a savepoint: an
     * op undone gives its number back, and numbers have no gaps.
     */
    [PS_EVENT_APPEND] = {"WITH c AS (UPDATE event_counter SET last = last + 1"
			 " WHERE id = 0 RETURNING last)"
			 " INSERT INTO events (seq, op, patient_id, actor,"
			 " time_ms, detail, other_patient_id, notify)"
			 " SELECT c.last, $1, $2, $3, $4, $5, $6, $7 FROM c"
			 " RETURNING seq",
	7},
    [PS_EVENT_LIST] = {"SELECT " PG_EVENT_COLS " FROM events"
		       " WHERE patient_id = $1 ORDER BY seq DESC LIMIT $2",
	2},
    [PS_EVENT_SCAN] = {"SELECT " PG_EVENT_COLS " FROM events"
		       " WHERE seq > $1 ORDER BY seq LIMIT $2",
	2},
    [PS_EVENT_FLOOR] = {"SELECT seq FROM event_floor WHERE id = 0", 0},
    [PS_EVENT_FLOOR_HOSP] = {"SELECT seq FROM event_floor_hospital"
			     " WHERE code = $1",
	1},
    [PS_HOSPITAL_GET] = {"SELECT name, role, active FROM hospitals"
			 " WHERE code = $1",
	1},
    [PS_HOSPITAL_PUT] = {"INSERT INTO hospitals (code, name, role, active,"
			 " changed_ms) VALUES ($1, $2, $3, $4, $5)"
			 " ON CONFLICT (code) DO UPDATE SET name = $2,"
			 " role = $3, active = $4, changed_ms = $5",
	5},
    [PS_HOSPITAL_LIST] = {"SELECT code, name, role, active FROM hospitals"
			  " ORDER BY code",
	0},
    [PS_MERGE_INSERT] = {"INSERT INTO merges (survivor, duplicate, seq)"
			 " VALUES ($1, $2, $3) RETURNING id",
	3},
    [PS_MERGE_IDENT_INSERT] = {"INSERT INTO merge_identifiers (merge_id,"
			       " domain, value) VALUES ($1, $2, $3)",
	3},
    [PS_MERGE_FIND] = {"SELECT id, survivor FROM merges WHERE duplicate = $1"
		       " AND undone = 0 ORDER BY id DESC LIMIT 1",
	1},
    [PS_MERGE_IDENTS] = {"SELECT domain, value FROM merge_identifiers"
			 " WHERE merge_id = $1 ORDER BY domain, value",
	1},
    [PS_MERGE_UNDO] = {"UPDATE merges SET undone = 1 WHERE id = $1", 1},
    [PS_PAIR_INSERT] = {"INSERT INTO pairs (a, b, score, grade, reason,"
			" state, found_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)"
			" RETURNING id",
	7},
    [PS_PAIR_STATE] = {"UPDATE pairs SET state = $2 WHERE id = $1", 2},
#define PG_PAIR_COLS "id, a, b, score, grade, reason, state, found_ms"
    [PS_PAIR_FIND] = {"SELECT " PG_PAIR_COLS " FROM pairs"
		      " WHERE a = $1 AND b = $2",
	2},
    [PS_PAIR_GET] = {"SELECT " PG_PAIR_COLS " FROM pairs WHERE id = $1", 1},
    [PS_PAIR_LIST] = {"SELECT " PG_PAIR_COLS " FROM pairs ORDER BY id", 0},
    [PS_COUNT_PATIENTS] = {"SELECT count(*) FILTER (WHERE merged_into = ''),"
			   " count(*) FILTER (WHERE merged_into <> ''),"
			   " (SELECT last FROM event_counter WHERE id = 0)"
			   " FROM patients",
	0},
    [PS_COUNT_DOMAINS] = {"SELECT domain, count(*) FROM identifiers"
			  " GROUP BY domain ORDER BY domain",
	0},
    [PS_PING] = {"SELECT 1", 0},
};

struct pg_handle {
	PGconn *conn;
	char *url;
	int writer;
	int txn;             /* begun and not yet ended by commit or rollback */
	int writing;         /* a write transaction is open: reads lock rows */
	uint64_t notify_seq; /* the transaction's last event: told at COMMIT */
	unsigned char prepared[PS_MAX]; /* on this connection */
};

/* Notices (a savepoint released twice, ...) go to our log at debug. */
static void
pg_notice(void *arg, const char *msg)
{
	(void)arg;
	log_debug("pg: %.*s", (int)strcspn(msg, "\n"), msg);
}

/* Is SQLSTATE state one of a lost or refusing server? */
static int
pg_state_unavail(const char *state)
{
	return strncmp(state, "08", 2) == 0 || strncmp(state, "53", 2) == 0 ||
	    strncmp(state, "57", 2) == 0 || strcmp(state, "25006") == 0 ||
	    strcmp(state, "55P03") == 0;
}

/*
 * Map a failed result (or none) to a backend code, logging it once: the
 * SQLSTATE and the primary message only (the detail of a key violation
 * holds the key, which may be a resident ID number). A unique violation,
 * a serialization failure or a deadlock is another broker's write getting
 * there first: REGISTRY_ERETRY, and the op runs again on what it committed.
 */
static int
pg_error(struct pg_handle *h, const char *what, PGresult *r)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *msg =
	    r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	if (msg == NULL)
		msg = PQerrorMessage(h->conn);
	if (state == NULL)
		state = "";
	if (strcmp(state, "23505") == 0 || strcmp(state, "40001") == 0 ||
	    strcmp(state, "40P01") == 0) {
		log_debug("pg: \"%.40s\": %s: %s; the op runs again", what,
		    state, msg);
		return REGISTRY_ERETRY;
	}
	log_warnx("pg: \"%.40s\": %s%s%.*s", what, state, state[0] ? ": " : "",
	    (int)strcspn(msg, "\n"), msg);
	if (PQstatus(h->conn) != CONNECTION_OK || state[0] == '\0' ||
	    pg_state_unavail(state))
		return REGISTRY_EUNAVAIL;
	return REGISTRY_EFAIL;
}

static int pg_command(struct pg_handle *, const char *);

/*
 * Set up a new session: text in UTF-8 (the registry's, whatever
 * PGCLIENTENCODING says), warnings only in the log; a writer waits for another
 * broker's batch at most PG_LOCK_WAIT, then answers UNAVAILABLE; a broker
 * stopped in the middle of a batch has it rolled back after PG_IDLE_TXN,
 * releasing the others.
 */
static int
pg_session(struct pg_handle *h)
{
	return pg_command(h,
	    "SET client_encoding = 'UTF8'; SET client_min_messages = warning;"
	    " SET lock_timeout = '" PG_LOCK_WAIT "';"
	    " SET idle_in_transaction_session_timeout = '" PG_IDLE_TXN "'");
}

/*
 * Connect again if the connection was lost, outside a transaction only (a
 * transaction lost with it is over: in_txn says so). 0 or EUNAVAIL.
 */
static int
pg_ready(struct pg_handle *h)
{
	if (PQstatus(h->conn) == CONNECTION_OK)
		return 0;
	PQreset(h->conn);
	memset(h->prepared, 0, sizeof(h->prepared));
	if (PQstatus(h->conn) != CONNECTION_OK) {
		log_warnx("pg: cannot reconnect: %.*s",
		    (int)strcspn(PQerrorMessage(h->conn), "\n"),
		    PQerrorMessage(h->conn));
		return REGISTRY_EUNAVAIL;
	}
	if (pg_session(h) != 0)
		return REGISTRY_EUNAVAIL;
	log_info("pg: reconnected");
	return 0;
}

/* Run a statement of transaction control (not preparable); 0 or a code. */
static int
pg_command(struct pg_handle *h, const char *sql)
{
	PGresult *r;
	int rc = 0;

	if ((r = PQexec(h->conn, sql)) == NULL ||
	    (PQresultStatus(r) != PGRES_COMMAND_OK &&
		PQresultStatus(r) != PGRES_TUPLES_OK))
		rc = pg_error(h, sql, r);
	PQclear(r);
	return rc;
}

/*
 * Run prepared statement q (preparing it on this connection first) with
 * text parameters; the result, or NULL with *rc set (logged). A result
 * with rows or none is the caller's to PQclear.
 */
static PGresult *
pg_run(struct pg_handle *h, enum pg_stmt q, const char *const *params, int *rc)
{
	char name[16];
	PGresult *r;

	*rc = 0;
	/* Never in a transaction that was lost with the connection: the
	 * statements would run on their own, outside it. */
	if (!h->txn && (*rc = pg_ready(h)) != 0)
		return NULL;
	snprintf(name, sizeof(name), "s%d", (int)q);
	if (!h->prepared[q]) {
		r = PQprepare(
		    h->conn, name, pg_sql[q].sql, pg_sql[q].nparams, NULL);
		if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
			*rc = pg_error(h, pg_sql[q].sql, r);
			PQclear(r);
			return NULL;
		}
		PQclear(r);
		h->prepared[q] = 1;
	}
	r = PQexecPrepared(
	    h->conn, name, pg_sql[q].nparams, params, NULL, NULL, 0);
	if (r == NULL ||
	    (PQresultStatus(r) != PGRES_TUPLES_OK &&
		PQresultStatus(r) != PGRES_COMMAND_OK)) {
		*rc = pg_error(h, pg_sql[q].sql, r);
		PQclear(r);
		return NULL;
	}
	return r;
}

/* Run a statement whose rows do not matter; 0 or a code. */
static int
pg_write(struct pg_handle *h, enum pg_stmt q, const char *const *params)
{
	int rc;
	PGresult *r = pg_run(h, q, params, &rc);

	PQclear(r);
	return rc;
}

/* An integer as a parameter, in buf. */
static const char *
pg_num(char *buf, int64_t v)
{
	snprintf(buf, PG_NUM_LEN, "%" PRId64, v);
	return buf;
}

/* Column c of row i as an integer. */
static int64_t
pg_int(const PGresult *r, int i, int c)
{
	return strtoll(PQgetvalue(r, i, c), NULL, 10);
}

/* Column c of row i copied into the arena. */
static char *
pg_dup(struct registry_arena *a, const PGresult *r, int i, int c)
{
	return registry_arena_strndup(
	    a, PQgetvalue(r, i, c), (size_t)PQgetlength(r, i, c));
}

/* --- Schema ----------------------------------------------------------- */

/* The schema's version (0: none yet); -1 on error (err set). */
static int
pg_schema_version(struct pg_handle *h, char *err, size_t errlen)
{
	PGresult *r;
	int v = -1;

	r = PQexec(h->conn,
	    "SELECT CASE WHEN to_regclass('schema_version') IS NULL THEN 0"
	    " ELSE (SELECT coalesce(max(version), 0) FROM schema_version)"
	    " END");
	if (r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK &&
	    PQntuples(r) == 1)
		v = (int)pg_int(r, 0, 0);
	else
		snprintf(err, errlen, "schema version: %.*s",
		    (int)strcspn(PQerrorMessage(h->conn), "\n"),
		    PQerrorMessage(h->conn));
	PQclear(r);
	return v;
}

/* Bring the schema up to date in one transaction, one broker at a time. */
static int
pg_migrate(struct pg_handle *h, char *err, size_t errlen)
{
	char sql[80];
	int version;

	if (pg_command(h, "BEGIN") != 0 ||
	    pg_command(
		h, "SELECT pg_advisory_xact_lock(" PG_MIGRATE_LOCK ")") != 0 ||
	    pg_command(h,
		"CREATE TABLE IF NOT EXISTS schema_version ("
		" version integer NOT NULL)") != 0)
		goto fail;
	if ((version = pg_schema_version(h, err, errlen)) < 0) {
		pg_command(h, "ROLLBACK");
		return -1;
	}
	if (version > (int)PG_NMIGRATIONS) {
		snprintf(err, errlen,
		    "schema version %d is newer than this broker knows (%zu)",
		    version, PG_NMIGRATIONS);
		pg_command(h, "ROLLBACK");
		return -1;
	}
	for (int v = version; v < (int)PG_NMIGRATIONS; v++) {
		snprintf(sql, sizeof(sql),
		    "INSERT INTO schema_version VALUES (%d)", v + 1);
		if (pg_command(h, pg_migrations[v]) != 0 ||
		    pg_command(h, sql) != 0)
			goto fail;
		log_info("registry schema migrated to version %d", v + 1);
	}
	if (pg_command(h, "COMMIT") != 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "schema migration: %.*s",
	    (int)strcspn(PQerrorMessage(h->conn), "\n"),
	    PQerrorMessage(h->conn));
	pg_command(h, "ROLLBACK");
	return -1;
}

static void
pg_close(void *hv)
{
	struct pg_handle *h = hv;

	if (h == NULL)
		return;
	PQfinish(h->conn);
	free(h->url);
	free(h);
}

/*
 * Open: url is the whole libpq URI (postgresql://..., several hosts
 * allowed). A writer creates and migrates the schema; a read handle only
 * checks that it is this broker's version.
 */
static void *
pg_open(const char *url, int writer, char *err, size_t errlen)
{
	struct pg_handle *h;
	int version;

	if ((h = calloc(1, sizeof(*h))) == NULL ||
	    (h->url = strdup(url)) == NULL) {
		free(h);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->writer = writer;
	h->conn = PQconnectdb(url);
	if (h->conn == NULL || PQstatus(h->conn) != CONNECTION_OK) {
		/* libpq's message names the host, never the password. */
		snprintf(err, errlen,
		    "--db: cannot connect to PostgreSQL: %.*s",
		    h->conn ? (int)strcspn(PQerrorMessage(h->conn), "\n") : 13,
		    h->conn ? PQerrorMessage(h->conn) : "out of memory");
		goto fail;
	}
	PQsetNoticeProcessor(h->conn, pg_notice, NULL);
	if (pg_session(h) != 0) {
		snprintf(err, errlen, "--db: cannot set up the session");
		goto fail;
	}
	if (writer) {
		if (pg_migrate(h, err, errlen) == -1)
			goto fail;
	} else if ((version = pg_schema_version(h, err, errlen)) !=
	    (int)PG_NMIGRATIONS) {
		if (version >= 0)
			snprintf(err, errlen,
			    "--db: schema version %d, want %zu", version,
			    PG_NMIGRATIONS);
		goto fail;
	}
	return h;
fail:
	pg_close(h);
	return NULL;
}

static int
pg_ping(void *hv)
{
	return pg_write(hv, PS_PING, NULL) == 0 ? 0 : REGISTRY_EUNAVAIL;
}

/* --- Transactions ----------------------------------------------------- */

static int pg_rollback(void *);

/*
 * A write transaction (a writer's batch) is READ COMMITTED and first locks
 * the event counter row, in the same round trip: the brokers' batches run
 * one at a time, each seeing every batch committed before it, and event
 * numbers follow commit order. Taking that lock first, before any other,
 * means two batches never wait for each other in a cycle: without it,
 * batches enrolling the same cn-ids in another order deadlock, and the
 * server takes a second (deadlock_timeout) to break each. The row locks
 * of the writer's reads (FOR UPDATE) and the retry of an op that hits
 * another broker's key still hold should this lock be narrowed one day.
 * Group commit keeps the cost: one wait per batch, not per write. A read
 * transaction (a subscriber's chunk) is one snapshot: events and records
 * agree.
 */
static int
pg_begin(void *hv, int write)
{
	struct pg_handle *h = hv;
	int rc;

	if ((rc = pg_ready(h)) != 0)
		return rc;
	h->writing = write;
	h->txn = 1;
	h->notify_seq = 0;
	rc = pg_command(h,
	    write ? "BEGIN ISOLATION LEVEL READ COMMITTED;"
		    " SELECT last FROM event_counter WHERE id = 0 FOR UPDATE"
		  : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	if (rc != 0)
		pg_rollback(h);
	return rc;
}

static int
pg_in_txn(void *hv)
{
	struct pg_handle *h = hv;
	PGTransactionStatusType s = PQtransactionStatus(h->conn);

	return s == PQTRANS_INTRANS || s == PQTRANS_ACTIVE;
}

/* Roll back whatever transaction is open; quiet when none is. */
static int
pg_rollback(void *hv)
{
	struct pg_handle *h = hv;
	PGTransactionStatusType s = PQtransactionStatus(h->conn);

	h->writing = h->txn = 0;
	if (s != PQTRANS_INTRANS && s != PQTRANS_INERROR)
		return 0;
	return pg_command(h, "ROLLBACK");
}

/*
 * Commit. The server answers COMMIT with ROLLBACK when the transaction had
 * failed; and a connection lost during COMMIT leaves its outcome unknown:
 * both are UNAVAILABLE, and the client's retry finds what is there.
 */
static int
pg_commit(void *hv)
{
	struct pg_handle *h = hv;
	char sql[96];
	PGresult *r;
	int rc = 0;

	/*
	 * Other brokers LISTEN on this channel (registry_pgfeed.c): the
	 * notification goes out with the commit, in commit order, and carries
	 * only the last event's number; they read the events themselves.
	 */
	if (h->notify_seq > 0)
		snprintf(sql, sizeof(sql),
		    "SELECT pg_notify('" REGISTRY_PG_CHANNEL "', '%" PRIu64
		    "'); COMMIT",
		    h->notify_seq);
	else
		snprintf(sql, sizeof(sql), "COMMIT");
	r = PQexec(h->conn, sql);
	h->writing = h->txn = 0;
	if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK)
		rc = pg_error(h, "COMMIT", r);
	else if (strcmp(PQcmdStatus(r), "COMMIT") != 0) {
		log_warnx("pg: the transaction had failed; rolled back");
		rc = REGISTRY_EUNAVAIL;
	}
	PQclear(r);
	if (rc == REGISTRY_EFAIL || rc == REGISTRY_ERETRY)
		rc = REGISTRY_EUNAVAIL;
	return rc;
}

static int
pg_savepoint(void *hv)
{
	return pg_command(hv, "SAVEPOINT w");
}

static int
pg_release(void *hv)
{
	return pg_command(hv, "RELEASE w");
}

/* Undo back to the savepoint and drop it: one round trip. */
static int
pg_rollback_to(void *hv)
{
	return pg_command(hv, "ROLLBACK TO w; RELEASE w");
}

/* --- Identifiers and patients ----------------------------------------- */

static int
pg_ident_owner(void *hv, const char *domain, const char *value, char *pid)
{
	const char *pv[] = {domain, value};
	PGresult *r;
	int rc;

	if ((r = pg_run(hv, PS_IDENT_OWNER, pv, &rc)) == NULL)
		return rc;
	rc = 1;
	if (PQntuples(r) > 0) {
		registry_copy(pid, PQgetvalue(r, 0, 0), REGISTRY_PID_MAX);
		rc = 0;
	}
	PQclear(r);
	return rc;
}

/* Read row i's patient columns (PG_PATIENT_COLS) into p. */
static int
pg_patient_row(const PGresult *r, int i, struct registry_arena *a,
    struct registry_patient *p)
{
	registry_copy(p->id, PQgetvalue(r, i, 7), sizeof(p->id));
	p->name = pg_dup(a, r, i, 0);
	p->sex = (int)pg_int(r, i, 1);
	p->birth_date = pg_dup(a, r, i, 2);
	p->phone = pg_dup(a, r, i, 3);
	p->address = pg_dup(a, r, i, 4);
	p->version = (uint64_t)pg_int(r, i, 5);
	registry_copy(
	    p->merged_into, PQgetvalue(r, i, 6), sizeof(p->merged_into));
	if (!p->name || !p->birth_date || !p->phone || !p->address) {
		log_warnx("registry: out of scratch memory");
		return REGISTRY_EFAIL;
	}
	return 0;
}

/* One patient row from q: 0, 1 when none, or a code. */
static int
pg_patient_one(struct pg_handle *h, enum pg_stmt q, const char *const *pv,
    struct registry_arena *a, struct registry_patient *p)
{
	PGresult *r;
	int rc;

	if ((r = pg_run(h, q, pv, &rc)) == NULL)
		return rc;
	rc = PQntuples(r) > 0 ? pg_patient_row(r, 0, a, p) : 1;
	PQclear(r);
	return rc;
}

static int
pg_ident_patient(void *hv, const char *domain, const char *value,
    struct registry_arena *a, struct registry_patient *p)
{
	struct pg_handle *h = hv;
	const char *pv[] = {domain, value};

	return pg_patient_one(h,
	    h->writing && pg_in_txn(h) ? PS_IDENT_PATIENT_LOCK
				       : PS_IDENT_PATIENT,
	    pv, a, p);
}

static int
pg_patient_get(void *hv, const char *pid, struct registry_arena *a,
    struct registry_patient *p)
{
	struct pg_handle *h = hv;
	const char *pv[] = {pid};

	return pg_patient_one(h,
	    h->writing && pg_in_txn(h) ? PS_PATIENT_GET_LOCK : PS_PATIENT_GET,
	    pv, a, p);
}

/* A record query's rows: the patient from the first, identifiers (columns
 * 8, 9; NULL when the patient holds none) to cb. */
static int
pg_record(struct pg_handle *h, enum pg_stmt q, const char *const *pv,
    struct registry_arena *a, struct registry_patient *p, registry_ident_cb cb,
    void *arg)
{
	PGresult *r;
	int rc, n;

	if ((r = pg_run(h, q, pv, &rc)) == NULL)
		return rc;
	if ((n = PQntuples(r)) == 0)
		rc = 1;
	else
		rc = pg_patient_row(r, 0, a, p);
	for (int i = 0; rc == 0 && i < n; i++) {
		if (PQgetisnull(r, i, 8))
			continue;
		if (cb(arg, PQgetvalue(r, i, 8), PQgetvalue(r, i, 9)) == -1)
			rc = REGISTRY_EFAIL;
	}
	PQclear(r);
	return rc;
}

static int
pg_ident_record(void *hv, const char *domain, const char *value,
    struct registry_arena *a, struct registry_patient *p, registry_ident_cb cb,
    void *arg)
{
	const char *pv[] = {domain, value};

	return pg_record(hv, PS_IDENT_RECORD, pv, a, p, cb, arg);
}

static int
pg_patient_record(void *hv, const char *pid, struct registry_arena *a,
    struct registry_patient *p, registry_ident_cb cb, void *arg)
{
	const char *pv[] = {pid};

	return pg_record(hv, PS_PATIENT_RECORD, pv, a, p, cb, arg);
}

static int
pg_ident_insert(
    void *hv, const char *domain, const char *value, const char *pid)
{
	const char *pv[] = {domain, value, pid};

	return pg_write(hv, PS_IDENT_INSERT, pv);
}

static int
pg_ident_delete(void *hv, const char *domain, const char *value)
{
	const char *pv[] = {domain, value};

	return pg_write(hv, PS_IDENT_DELETE, pv);
}

static int
pg_ident_move(void *hv, const char *domain, const char *value, const char *pid)
{
	const char *pv[] = {domain, value, pid};

	return pg_write(hv, PS_IDENT_MOVE, pv);
}

/* cb(domain, value) for each row of q (columns 0, 1). */
static int
pg_each_ident(struct pg_handle *h, enum pg_stmt q, const char *const *pv,
    registry_ident_cb cb, void *arg)
{
	PGresult *r;
	int rc;

	if ((r = pg_run(h, q, pv, &rc)) == NULL)
		return rc;
	for (int i = 0; rc == 0 && i < PQntuples(r); i++)
		if (cb(arg, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1)) == -1)
			rc = REGISTRY_EFAIL;
	PQclear(r);
	return rc;
}

static int
pg_patient_idents(void *hv, const char *pid, registry_ident_cb cb, void *arg)
{
	const char *pv[] = {pid};

	return pg_each_ident(hv, PS_PATIENT_IDENTS, pv, cb, arg);
}

static int
pg_patient_insert(void *hv, const struct registry_patient *p, int64_t now_ms)
{
	char sex[PG_NUM_LEN], version[PG_NUM_LEN], now[PG_NUM_LEN];
	const char *pv[] = {p->id, p->name ? p->name : "", pg_num(sex, p->sex),
	    p->birth_date ? p->birth_date : "", p->phone ? p->phone : "",
	    p->address ? p->address : "", pg_num(version, (int64_t)p->version),
	    p->merged_into, pg_num(now, now_ms)};

	return pg_write(hv, PS_PATIENT_INSERT, pv);
}

static int
pg_patient_update(void *hv, const struct registry_patient *p)
{
	char sex[PG_NUM_LEN], version[PG_NUM_LEN];
	const char *pv[] = {p->id, p->name ? p->name : "", pg_num(sex, p->sex),
	    p->birth_date ? p->birth_date : "", p->phone ? p->phone : "",
	    p->address ? p->address : "", pg_num(version, (int64_t)p->version),
	    p->merged_into};

	return pg_write(hv, PS_PATIENT_UPDATE, pv);
}

/* cb(pid) for each row of q (column 0). */
static int
pg_each_pid(struct pg_handle *h, enum pg_stmt q, const char *const *pv,
    registry_pid_cb cb, void *arg)
{
	PGresult *r;
	int rc;

	if ((r = pg_run(h, q, pv, &rc)) == NULL)
		return rc;
	for (int i = 0; rc == 0 && i < PQntuples(r); i++)
		if (cb(arg, PQgetvalue(r, i, 0)) == -1)
			rc = REGISTRY_EFAIL;
	PQclear(r);
	return rc;
}

static int
pg_patient_page(
    void *hv, const char *after, unsigned limit, registry_pid_cb cb, void *arg)
{
	char lim[PG_NUM_LEN];
	const char *pv[] = {after, pg_num(lim, limit)};

	return pg_each_pid(hv, PS_PATIENT_PAGE, pv, cb, arg);
}

static int
pg_patient_search(void *hv, const char *name, const char *birth_date, int sex,
    unsigned limit, registry_pid_cb cb, void *arg)
{
	char s[PG_NUM_LEN], lim[PG_NUM_LEN];
	const char *pv[] = {
	    name, birth_date, pg_num(s, sex), pg_num(lim, limit)};

	return pg_each_pid(hv, PS_SEARCH, pv, cb, arg);
}

/* --- Events ----------------------------------------------------------- */

static int
pg_event_append(void *hv, struct registry_event *ev)
{
	char t[PG_NUM_LEN];
	const char *pv[] = {ev->op, ev->patient_id, ev->actor,
	    pg_num(t, ev->time_ms), ev->detail ? ev->detail : "",
	    ev->other_patient_id ? ev->other_patient_id : "",
	    ev->notify ? ev->notify : ""};
	PGresult *r;
	int rc;

	if ((r = pg_run(hv, PS_EVENT_APPEND, pv, &rc)) == NULL)
		return rc;
	if (PQntuples(r) != 1) {
		log_warnx("pg: the event counter row is missing");
		rc = REGISTRY_EFAIL;
	} else {
		ev->seq = (uint64_t)pg_int(r, 0, 0);
		((struct pg_handle *)hv)->notify_seq = ev->seq;
	}
	PQclear(r);
	return rc;
}

/* cb for each events row (PG_EVENT_COLS) of q. */
static int
pg_each_event(struct pg_handle *h, enum pg_stmt q, const char *const *pv,
    registry_event_cb cb, void *arg)
{
	struct registry_event ev;
	PGresult *r;
	int rc;

	if ((r = pg_run(h, q, pv, &rc)) == NULL)
		return rc;
	for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
		ev.seq = (uint64_t)pg_int(r, i, 0);
		ev.op = PQgetvalue(r, i, 1);
		ev.patient_id = PQgetvalue(r, i, 2);
		ev.actor = PQgetvalue(r, i, 3);
		ev.time_ms = pg_int(r, i, 4);
		ev.detail = PQgetvalue(r, i, 5);
		ev.other_patient_id = PQgetvalue(r, i, 6);
		ev.notify = PQgetvalue(r, i, 7);
		if (cb(arg, &ev) == -1)
			rc = REGISTRY_EFAIL;
	}
	PQclear(r);
	return rc;
}

static int
pg_event_list(
    void *hv, const char *pid, unsigned limit, registry_event_cb cb, void *arg)
{
	char lim[PG_NUM_LEN];
	const char *pv[] = {pid, pg_num(lim, limit)};

	return pg_each_event(hv, PS_EVENT_LIST, pv, cb, arg);
}

static int
pg_event_scan(
    void *hv, uint64_t after, unsigned limit, registry_event_cb cb, void *arg)
{
	char a[PG_NUM_LEN], lim[PG_NUM_LEN];
	const char *pv[] = {pg_num(a, (int64_t)after), pg_num(lim, limit)};

	return pg_each_event(hv, PS_EVENT_SCAN, pv, cb, arg);
}

/* Retention does not run on this store yet: the floors stay as stored. */
static int
pg_event_floor(void *hv, const char *code, uint64_t *floor)
{
	const char *pv[] = {code};
	PGresult *r;
	int rc;

	*floor = 0;
	r = pg_run(hv, code == NULL ? PS_EVENT_FLOOR : PS_EVENT_FLOOR_HOSP,
	    code == NULL ? NULL : pv, &rc);
	if (r == NULL)
		return rc;
	if (PQntuples(r) > 0)
		*floor = (uint64_t)pg_int(r, 0, 0);
	PQclear(r);
	return 0;
}

/* --- Hospitals, merges, the worklist, counts -------------------------- */

static int
pg_hospital_get(void *hv, const char *code, struct registry_arena *a,
    struct registry_hospital *out)
{
	const char *pv[] = {code};
	PGresult *r;
	int rc;

	if ((r = pg_run(hv, PS_HOSPITAL_GET, pv, &rc)) == NULL)
		return rc;
	rc = 1;
	if (PQntuples(r) > 0) {
		out->code = code;
		out->name = a ? pg_dup(a, r, 0, 0) : NULL;
		out->role = (int)pg_int(r, 0, 1);
		out->active = (int)pg_int(r, 0, 2);
		rc = a && out->name == NULL ? REGISTRY_EFAIL : 0;
	}
	PQclear(r);
	return rc;
}

static int
pg_hospital_put(void *hv, const struct registry_hospital *hosp, int64_t now_ms)
{
	char role[PG_NUM_LEN], active[PG_NUM_LEN], now[PG_NUM_LEN];
	const char *pv[] = {hosp->code, hosp->name ? hosp->name : "",
	    pg_num(role, hosp->role), pg_num(active, hosp->active),
	    pg_num(now, now_ms)};

	return pg_write(hv, PS_HOSPITAL_PUT, pv);
}

static int
pg_hospital_list(void *hv, registry_hospital_cb cb, void *arg)
{
	struct registry_hospital hosp;
	PGresult *r;
	int rc;

	if ((r = pg_run(hv, PS_HOSPITAL_LIST, NULL, &rc)) == NULL)
		return rc;
	for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
		hosp.code = PQgetvalue(r, i, 0);
		hosp.name = PQgetvalue(r, i, 1);
		hosp.role = (int)pg_int(r, i, 2);
		hosp.active = (int)pg_int(r, i, 3);
		if (cb(arg, &hosp) == -1)
			rc = REGISTRY_EFAIL;
	}
	PQclear(r);
	return rc;
}

/* A statement that returns one number (an id) into *v. */
static int
pg_returning(
    struct pg_handle *h, enum pg_stmt q, const char *const *pv, int64_t *v)
{
	PGresult *r;
	int rc;

	if ((r = pg_run(h, q, pv, &rc)) == NULL)
		return rc;
	if (PQntuples(r) == 1)
		*v = pg_int(r, 0, 0);
	else
		rc = REGISTRY_EFAIL;
	PQclear(r);
	return rc;
}

static int
pg_merge_insert(void *hv, const char *survivor, const char *duplicate,
    uint64_t seq, int64_t *merge_id)
{
	char s[PG_NUM_LEN];
	const char *pv[] = {survivor, duplicate, pg_num(s, (int64_t)seq)};

	return pg_returning(hv, PS_MERGE_INSERT, pv, merge_id);
}

static int
pg_merge_ident_insert(
    void *hv, int64_t merge_id, const char *domain, const char *value)
{
	char id[PG_NUM_LEN];
	const char *pv[] = {pg_num(id, merge_id), domain, value};

	return pg_write(hv, PS_MERGE_IDENT_INSERT, pv);
}

static int
pg_merge_find(
    void *hv, const char *duplicate, int64_t *merge_id, char *survivor)
{
	const char *pv[] = {duplicate};
	PGresult *r;
	int rc;

	if ((r = pg_run(hv, PS_MERGE_FIND, pv, &rc)) == NULL)
		return rc;
	rc = 1;
	if (PQntuples(r) > 0) {
		*merge_id = pg_int(r, 0, 0);
		registry_copy(survivor, PQgetvalue(r, 0, 1), REGISTRY_PID_MAX);
		rc = 0;
	}
	PQclear(r);
	return rc;
}

static int
pg_merge_idents(void *hv, int64_t merge_id, registry_ident_cb cb, void *arg)
{
	char id[PG_NUM_LEN];
	const char *pv[] = {pg_num(id, merge_id)};

	return pg_each_ident(hv, PS_MERGE_IDENTS, pv, cb, arg);
}

static int
pg_merge_undo(void *hv, int64_t merge_id)
{
	char id[PG_NUM_LEN];
	const char *pv[] = {pg_num(id, merge_id)};

	return pg_write(hv, PS_MERGE_UNDO, pv);
}

static int
pg_pair_insert(void *hv, struct registry_pair *pr)
{
	char score[32], grade[PG_NUM_LEN], state[PG_NUM_LEN], found[PG_NUM_LEN];
	const char *pv[] = {pr->a, pr->b, score, pg_num(grade, pr->grade),
	    pr->reason ? pr->reason : "", pg_num(state, pr->state),
	    pg_num(found, pr->found_ms)};

	snprintf(score, sizeof(score), "%.17g", pr->score);
	return pg_returning(hv, PS_PAIR_INSERT, pv, &pr->id);
}

static int
pg_pair_state(void *hv, int64_t id, int state)
{
	char i[PG_NUM_LEN], s[PG_NUM_LEN];
	const char *pv[] = {pg_num(i, id), pg_num(s, state)};

	return pg_write(hv, PS_PAIR_STATE, pv);
}

/* Row i of a pairs query (PG_PAIR_COLS) into pr; reason copied into ar
 * when ar is set, else valid while r is. */
static int
pg_pair_row(const PGresult *r, int i, struct registry_arena *ar,
    struct registry_pair *pr)
{
	pr->id = pg_int(r, i, 0);
	registry_copy(pr->a, PQgetvalue(r, i, 1), sizeof(pr->a));
	registry_copy(pr->b, PQgetvalue(r, i, 2), sizeof(pr->b));
	pr->score = strtod(PQgetvalue(r, i, 3), NULL);
	pr->grade = (int)pg_int(r, i, 4);
	pr->reason = ar ? pg_dup(ar, r, i, 5) : PQgetvalue(r, i, 5);
	pr->state = (int)pg_int(r, i, 6);
	pr->found_ms = pg_int(r, i, 7);
	return pr->reason == NULL ? REGISTRY_EFAIL : 0;
}

/* One pair from q: 0, 1 when none, or a code. */
static int
pg_pair_one(struct pg_handle *h, enum pg_stmt q, const char *const *pv,
    struct registry_arena *ar, struct registry_pair *out)
{
	PGresult *r;
	int rc;

	if ((r = pg_run(h, q, pv, &rc)) == NULL)
		return rc;
	rc = PQntuples(r) > 0 ? pg_pair_row(r, 0, ar, out) : 1;
	PQclear(r);
	return rc;
}

static int
pg_pair_find(void *hv, const char *a, const char *b, struct registry_arena *ar,
    struct registry_pair *out)
{
	const char *pv[] = {a, b};

	return pg_pair_one(hv, PS_PAIR_FIND, pv, ar, out);
}

static int
pg_pair_get(
    void *hv, int64_t id, struct registry_arena *ar, struct registry_pair *out)
{
	char i[PG_NUM_LEN];
	const char *pv[] = {pg_num(i, id)};

	return pg_pair_one(hv, PS_PAIR_GET, pv, ar, out);
}

static int
pg_pair_list(void *hv, registry_pair_cb cb, void *arg)
{
	struct registry_pair pr;
	PGresult *r;
	int rc;

	if ((r = pg_run(hv, PS_PAIR_LIST, NULL, &rc)) == NULL)
		return rc;
	for (int i = 0; rc == 0 && i < PQntuples(r); i++)
		if ((rc = pg_pair_row(r, i, NULL, &pr)) == 0 &&
		    cb(arg, &pr) == -1)
			rc = REGISTRY_EFAIL;
	PQclear(r);
	return rc;
}

static int
pg_counts(void *hv, struct registry_counts *c, registry_count_cb cb, void *arg)
{
	PGresult *r;
	int rc;

	memset(c, 0, sizeof(*c));
	if ((r = pg_run(hv, PS_COUNT_PATIENTS, NULL, &rc)) == NULL)
		return rc;
	if (PQntuples(r) == 1) {
		c->patients = (uint64_t)pg_int(r, 0, 0);
		c->merged = (uint64_t)pg_int(r, 0, 1);
		c->last_seq = (uint64_t)pg_int(r, 0, 2);
	}
	PQclear(r);
	if ((r = pg_run(hv, PS_COUNT_DOMAINS, NULL, &rc)) == NULL)
		return rc;
	for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
		uint64_t n = (uint64_t)pg_int(r, i, 1);

		c->identifiers += n;
		if (cb != NULL && cb(arg, PQgetvalue(r, i, 0), n) == -1)
			rc = REGISTRY_EFAIL;
	}
	PQclear(r);
	return rc;
}

/*
 * The blocking index and the learnt match model are not kept here yet
 * (NULL, as in sqlite-direct): ranked search, an enrollment's duplicate
 * check and the worklist's scan fall back to exact name and birth date.
 */
const struct registry_backend registry_pg = {
    .name = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .ping = pg_ping,
    .begin = pg_begin,
    .in_txn = pg_in_txn,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .savepoint = pg_savepoint,
    .release = pg_release,
    .rollback_to = pg_rollback_to,
    .ident_owner = pg_ident_owner,
    .ident_patient = pg_ident_patient,
    .ident_record = pg_ident_record,
    .patient_record = pg_patient_record,
    .ident_insert = pg_ident_insert,
    .ident_delete = pg_ident_delete,
    .ident_move = pg_ident_move,
    .patient_idents = pg_patient_idents,
    .patient_get = pg_patient_get,
    .patient_insert = pg_patient_insert,
    .patient_update = pg_patient_update,
    .patient_page = pg_patient_page,
    .patient_search = pg_patient_search,
    .event_append = pg_event_append,
    .event_list = pg_event_list,
    .event_scan = pg_event_scan,
    .event_floor = pg_event_floor,
    .hospital_get = pg_hospital_get,
    .hospital_put = pg_hospital_put,
    .hospital_list = pg_hospital_list,
    .merge_insert = pg_merge_insert,
    .merge_ident_insert = pg_merge_ident_insert,
    .merge_find = pg_merge_find,
    .merge_idents = pg_merge_idents,
    .merge_undo = pg_merge_undo,
    .pair_insert = pg_pair_insert,
    .pair_state = pg_pair_state,
    .pair_find = pg_pair_find,
    .pair_get = pg_pair_get,
    .pair_list = pg_pair_list,
    .counts = pg_counts,
};
