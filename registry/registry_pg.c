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
#include "match.h"
#include "registry_backend.h"
#include "registry_pgbatch.h"

#define PG_NUM_LEN   24    /* a decimal int64 and its NUL */
#define PG_LOCK_WAIT "10s" /* a writer's wait for another broker's batch */
#define PG_IDLE_TXN  "60s" /* an open transaction left idle that long ends */

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
    /*
     * 2: the blocking index (match.h's keys of each patient), so that an
     * enrollment's duplicate check and a ranked search read their
     * candidates in one statement. A registry of version 1 has its
     * patients filed after this runs (pg_file_all): the keys are made in
     * C, by match_key.
     */
    "CREATE TABLE patient_keys ("
    " kind integer NOT NULL, key text COLLATE \"C\" NOT NULL,"
    " patient_id text COLLATE \"C\" NOT NULL,"
    " PRIMARY KEY (kind, key, patient_id));"
    "CREATE INDEX patient_keys_patient ON patient_keys (patient_id);"
    /* A patient's identifiers in order, and its cn-id, from the index. */
    "DROP INDEX identifiers_patient;"
    "CREATE INDEX identifiers_patient ON identifiers (patient_id, domain,"
    " value);",
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
	PS_CANDIDATES,
	PS_BLOCK_COUNT,
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
	PS_COUNTER_SET,
	PS_NOTIFY,
	PS_OWNERS,
	PS_MAX
};

#define PG_PATIENT_COLS                                                        \
	"p.name, p.sex, p.birth_date, p.phone, p.address, p.version,"          \
	" p.merged_into, p.id"
/* A patient's blocking keys as a VALUES list of (kind, key), one of each
 * kind of match.h in its order, from parameters $a to $d. */
#define PG_KEYS(a, b, c, d)                                                    \
	"(VALUES (0, $" a "::text), (1, $" b "::text), (2, $" c "::text),"     \
	" (3, $" d "::text))"
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
    /* A patient's row and its blocking keys (the last four parameters,
     * one of each kind of match.h, "" for none) in one statement. */
    [PS_PATIENT_INSERT] = {"WITH p AS (INSERT INTO patients (id, name, sex,"
			   " birth_date, phone, address, version,"
			   " merged_into, created_ms) VALUES ($1, $2, $3,"
			   " $4, $5, $6, $7, $8, $9))"
			   " INSERT INTO patient_keys (kind, key, patient_id)"
			   " SELECT k, v, $1 FROM " PG_KEYS(
			       "10", "11", "12", "13") " AS k(k, v)"
						       " WHERE v <> ''",
	13},
    /* The keys that changed are filed again; the others stay. */
    [PS_PATIENT_UPDATE] =
	{"WITH u AS (UPDATE patients SET name = $2,"
	 " sex = $3, birth_date = $4, phone = $5,"
	 " address = $6, version = $7, merged_into = $8"
	 " WHERE id = $1),"
	 " k(k, v) AS " PG_KEYS("9", "10", "11",
	     "12") ","
		   " d AS (DELETE FROM patient_keys x"
		   " WHERE x.patient_id = $1 AND NOT EXISTS"
		   " (SELECT 1 FROM k WHERE k.k = x.kind"
		   " AND k.v = x.key))"
		   " INSERT INTO patient_keys (kind, key, patient_id)"
		   " SELECT k, v, $1 FROM k WHERE v <> ''"
		   " ON CONFLICT DO NOTHING",
	    12},
    /*
     * A match's candidates: the live patients filed under at least $12 of
     * the query's keys (five (kind, key) pairs, "" for none) among the
     * newest $11 of each key (patient ids sort by creation time), each
     * with its cn-id: one statement, however many there are.
     */
    [PS_CANDIDATES] = {"SELECT " PG_PATIENT_COLS ", coalesce((SELECT c.value"
		       " FROM identifiers c WHERE c.patient_id = p.id"
		       " AND c.domain = 'cn-id' LIMIT 1), '')"
		       " FROM (SELECT b.patient_id FROM (VALUES"
		       " ($1::integer, $2::text), ($3::integer, $4::text),"
		       " ($5::integer, $6::text), ($7::integer, $8::text),"
		       " ($9::integer, $10::text)) AS q(k, v)"
		       " CROSS JOIN LATERAL (SELECT x.patient_id"
		       " FROM patient_keys x WHERE x.kind = q.k"
		       " AND x.key = q.v ORDER BY x.patient_id DESC"
		       " LIMIT $11) b WHERE q.v <> ''"
		       " GROUP BY b.patient_id HAVING count(*) >= $12) g"
		       " JOIN patients p ON p.id = g.patient_id"
		       " WHERE p.merged_into = ''",
	12},
    [PS_BLOCK_COUNT] = {"SELECT count(*) FROM patient_keys"
			" WHERE kind = $1 AND key = $2",
	2},
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
     * subscriber that read 8 and resumes after it never sees 7. Here a
     * write transaction locks the counter row when it begins (pg_begin)
     * and holds it to its end: its events are numbered on from the last
     * number there, and the row is set to the batch's last at commit
     * (PS_COUNTER_SET). Another broker's transaction waits for the lock,
     * then counts on from there, so no number becomes visible before
     * every smaller one has; an op undone gives its numbers back, so
     * numbers have no gaps.
     */
    [PS_EVENT_APPEND] = {"INSERT INTO events (seq, op, patient_id, actor,"
			 " time_ms, detail, other_patient_id, notify)"
			 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
	8},
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
    [PS_COUNTER_SET] = {"UPDATE event_counter SET last = $1 WHERE id = 0", 1},
    /* Other brokers LISTEN on the channel (registry_pgfeed.c): it goes
     * out with the commit, in commit order, and carries only the last
     * event's number; they read the events themselves. */
    [PS_NOTIFY] = {"SELECT pg_notify('" REGISTRY_PG_CHANNEL "', $1)", 1},
    /* Who holds each of a batch's identifiers (two arrays, one order). */
    [PS_OWNERS] = {"SELECT q.d, q.v, i.patient_id"
		   " FROM unnest($1::text[], $2::text[]) AS q(d, v)"
		   " LEFT JOIN identifiers i ON i.domain = q.d COLLATE \"C\""
		   " AND i.value = q.v COLLATE \"C\"",
	2},
};

/* Statements a writer's batch sends ahead at most before it reads their
 * results: bounds what either side buffers. */
#define PG_AHEAD_MAX 64

struct pg_handle {
	PGconn *conn;
	char *url;
	int writer;
	int txn;     /* begun and not yet ended by commit or rollback */
	int writing; /* a write transaction is open: reads lock rows */
	/*
	 * A write transaction runs in libpq's pipeline mode (pg_ahead):
	 * statements whose rows do not matter are sent ahead, and their
	 * results read with the next one whose rows do, or at the op's
	 * release; an op is then a round trip per read, not per statement.
	 */
	int pipe;
	int aborted;     /* a statement sent failed: the server skips
			    the rest until a sync (pg_sync) */
	int abort_rc;    /* its code */
	unsigned ahead;  /* sent, results not read yet */
	unsigned unread; /* of them, the op's own (not savepoints) */
	const char *what[PG_AHEAD_MAX]; /* their SQL, for the log */
	uint64_t seq_base;  /* the event counter when the batch began */
	uint64_t seq;       /* the batch's last event number */
	uint64_t seq_saved; /* seq at the savepoint */
	struct pgb *known;  /* the batch's identifiers (a writer's) */
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
static int pg_prepare_all(struct pg_handle *);
static int pg_drain(struct pg_handle *, PGresult **);

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
	if (PQpipelineStatus(h->conn) != PQ_PIPELINE_OFF)
		(void)PQexitPipelineMode(h->conn);
	h->pipe = h->aborted = 0;
	h->ahead = h->unread = 0;
	if (PQstatus(h->conn) != CONNECTION_OK) {
		log_warnx("pg: cannot reconnect: %.*s",
		    (int)strcspn(PQerrorMessage(h->conn), "\n"),
		    PQerrorMessage(h->conn));
		return REGISTRY_EUNAVAIL;
	}
	if (pg_session(h) != 0 || (h->writer && pg_prepare_all(h) != 0))
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

/* Prepare statement q on this connection; 0 or a code. */
static int
pg_prepare(struct pg_handle *h, enum pg_stmt q)
{
	char name[16];
	PGresult *r;
	int rc = 0;

	snprintf(name, sizeof(name), "s%d", (int)q);
	r = PQprepare(h->conn, name, pg_sql[q].sql, pg_sql[q].nparams, NULL);
	if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK)
		rc = pg_error(h, pg_sql[q].sql, r);
	else
		h->prepared[q] = 1;
	PQclear(r);
	return rc;
}

/* A writer prepares every statement once a session: in pipeline mode a
 * statement is sent without waiting to learn that it was prepared. */
static int
pg_prepare_all(struct pg_handle *h)
{
	for (int q = 0; q < PS_MAX; q++)
		if (!h->prepared[q] && pg_prepare(h, (enum pg_stmt)q) != 0)
			return -1;
	return 0;
}

/* The batch's connection failed under the pipeline: nothing more can be
 * read or sent on it, and the batch is lost. */
static int
pg_pipe_lost(struct pg_handle *h, const char *what)
{
	log_warnx("pg: \"%.40s\": %.*s", what,
	    (int)strcspn(PQerrorMessage(h->conn), "\n"),
	    PQerrorMessage(h->conn));
	h->aborted = 1;
	h->abort_rc = REGISTRY_EUNAVAIL;
	h->ahead = h->unread = 0;
	return REGISTRY_EUNAVAIL;
}

/*
 * Send statement q (or sql, when not NULL: no parameters) ahead in the
 * batch's pipeline, its result unread; own: the op's own statement (not
 * a savepoint's), which its release must see succeed. 0 or a code: that
 * of an earlier statement's failure while the pipeline is aborted.
 */
static int
pg_ahead(struct pg_handle *h, enum pg_stmt q, const char *sql,
    const char *const *params, int own)
{
	char name[16];
	int ok, rc;

	if (h->aborted)
		return h->abort_rc;
	if (h->ahead == PG_AHEAD_MAX && (rc = pg_drain(h, NULL)) != 0)
		return rc;
	if (sql != NULL)
		ok = PQsendQueryParams(
		    h->conn, sql, 0, NULL, NULL, NULL, NULL, 0);
	else if (!h->prepared[q]) {
		log_warnx("pg: statement %d not prepared", (int)q);
		return REGISTRY_EFAIL;
	} else {
		snprintf(name, sizeof(name), "s%d", (int)q);
		sql = pg_sql[q].sql;
		ok = PQsendQueryPrepared(
		    h->conn, name, pg_sql[q].nparams, params, NULL, NULL, 0);
	}
	if (!ok)
		return pg_pipe_lost(h, sql);
	h->what[h->ahead++] = sql;
	h->unread += own != 0;
	return 0;
}

/*
 * Read the results of everything sent ahead, in order. With sync, a sync
 * point follows them: the server stops skipping after a failure, and the
 * pipeline is usable again. With last, the final result is handed back
 * (the caller's to PQclear; NULL after a failure). 0, or the code of the
 * first statement that failed: the pipeline stays aborted until a sync.
 */
static int
pg_drain_sync(struct pg_handle *h, PGresult **last, int sync)
{
	unsigned n = h->ahead;
	PGresult *r;

	if (last != NULL)
		*last = NULL;
	if (n == 0 && !sync)
		return h->aborted ? h->abort_rc : 0;
	if ((sync ? PQpipelineSync(h->conn)
		  : PQsendFlushRequest(h->conn) && PQflush(h->conn) == 0) != 1)
		return pg_pipe_lost(h, "flush");
	for (unsigned i = 0; i < n; i++) {
		if ((r = PQgetResult(h->conn)) == NULL)
			return pg_pipe_lost(h, h->what[i]);
		switch (PQresultStatus(r)) {
		case PGRES_COMMAND_OK:
		case PGRES_TUPLES_OK:
		case PGRES_PIPELINE_ABORTED: /* after one that failed */
			break;
		default:
			if (!h->aborted) {
				h->abort_rc = pg_error(h, h->what[i], r);
				h->aborted = 1;
			}
		}
		if (last != NULL && i == n - 1 && !h->aborted)
			*last = r;
		else
			PQclear(r);
		/* Each statement's results end with a NULL. */
		if ((r = PQgetResult(h->conn)) != NULL) {
			PQclear(r);
			return pg_pipe_lost(h, h->what[i]);
		}
	}
	h->ahead = h->unread = 0;
	if (sync) {
		r = PQgetResult(h->conn);
		if (r == NULL || PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
			PQclear(r);
			return pg_pipe_lost(h, "sync");
		}
		PQclear(r);
		if (h->aborted) {
			h->aborted = 0;
			return h->abort_rc;
		}
	}
	return h->aborted ? h->abort_rc : 0;
}

static int
pg_drain(struct pg_handle *h, PGresult **last)
{
	return pg_drain_sync(h, last, 0);
}

/*
 * Run prepared statement q (preparing it on this connection first) with
 * text parameters; the result, or NULL with *rc set (logged). A result
 * with rows or none is the caller's to PQclear. In a batch's pipeline it
 * goes out behind what was sent ahead, in the same round trip.
 */
static PGresult *
pg_run(struct pg_handle *h, enum pg_stmt q, const char *const *params, int *rc)
{
	char name[16];
	PGresult *r;

	*rc = 0;
	if (h->pipe) {
		if ((*rc = pg_ahead(h, q, NULL, params, 1)) != 0 ||
		    (*rc = pg_drain(h, &r)) != 0)
			return NULL;
		return r;
	}
	/* Never in a transaction that was lost with the connection: the
	 * statements would run on their own, outside it. */
	if (!h->txn && (*rc = pg_ready(h)) != 0)
		return NULL;
	if (!h->prepared[q] && (*rc = pg_prepare(h, q)) != 0)
		return NULL;
	snprintf(name, sizeof(name), "s%d", (int)q);
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

/* Run a statement whose rows do not matter; 0 or a code. In a batch's
 * pipeline it is only sent: a failure shows at the op's release. */
static int
pg_write(struct pg_handle *h, enum pg_stmt q, const char *const *params)
{
	int rc;
	PGresult *r;

	if (h->pipe)
		return pg_ahead(h, q, NULL, params, 1);
	r = pg_run(h, q, params, &rc);
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

/* A patient's blocking keys, one of each kind of match.h ("" for none):
 * the parameters PG_KEYS reads. */
struct pg_keys {
	char k[MATCH_KEY_KINDS][MATCH_KEY_MAX];
};
_Static_assert(MATCH_KEY_KINDS == 4, "PG_KEYS lists four kinds of key");

static void
pg_keys(const struct registry_patient *p, struct pg_keys *k)
{
	for (int i = 0; i < MATCH_KEY_KINDS; i++)
		if (match_key(i, p->name ? p->name : "",
			p->birth_date ? p->birth_date : "",
			p->phone ? p->phone : "", k->k[i]) == 0)
			k->k[i][0] = '\0';
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

/*
 * File every patient under its blocking keys: migration 2 on a registry
 * made before it. One statement a patient, in the migration's transaction.
 */
static int
pg_file_all(struct pg_handle *h)
{
	static const char sql[] =
	    "INSERT INTO patient_keys (kind, key,"
	    " patient_id) SELECT k, v, $1 FROM " PG_KEYS(
		"2", "3", "4", "5") " AS k(k, v) WHERE v <> ''";
	struct registry_patient p = {.name = NULL};
	struct pg_keys k;
	const char *pv[5];
	PGresult *r, *w;
	int rc = 0;

	r = PQexec(h->conn, "SELECT id, name, birth_date, phone FROM patients");
	if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
		PQclear(r);
		return -1;
	}
	for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
		p.name = PQgetvalue(r, i, 1);
		p.birth_date = PQgetvalue(r, i, 2);
		p.phone = PQgetvalue(r, i, 3);
		pg_keys(&p, &k);
		pv[0] = PQgetvalue(r, i, 0);
		for (int j = 0; j < MATCH_KEY_KINDS; j++)
			pv[j + 1] = k.k[j];
		w = PQexecParams(h->conn, sql, 5, NULL, pv, NULL, NULL, 0);
		if (w == NULL || PQresultStatus(w) != PGRES_COMMAND_OK)
			rc = -1;
		PQclear(w);
	}
	if (rc == 0 && PQntuples(r) > 0)
		log_info(
		    "registry: %d patients filed under their blocking keys",
		    PQntuples(r));
	PQclear(r);
	return rc;
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
		    pg_command(h, sql) != 0 || (v == 1 && pg_file_all(h) != 0))
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
	pgb_free(h->known);
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
		if (pg_prepare_all(h) != 0) {
			snprintf(
			    err, errlen, "--db: cannot prepare statements");
			goto fail;
		}
		h->known = pgb_new(); /* NULL: every read goes to the server */
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
	PGresult *r;
	int rc;

	if ((rc = pg_ready(h)) != 0)
		return rc;
	h->writing = write;
	h->txn = 1;
	if (!write) {
		rc = pg_command(
		    h, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
		if (rc != 0)
			pg_rollback(h);
		return rc;
	}
	r = PQexec(h->conn,
	    "BEGIN ISOLATION LEVEL READ COMMITTED;"
	    " SELECT last FROM event_counter WHERE id = 0"
	    " FOR UPDATE");
	if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK ||
	    PQntuples(r) != 1) {
		rc = r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK
		    ? REGISTRY_EFAIL
		    : pg_error(h, "BEGIN", r);
		if (rc == REGISTRY_EFAIL)
			log_warnx("pg: the event counter row is missing");
		PQclear(r);
		pg_rollback(h);
		return rc;
	}
	h->seq_base = h->seq = h->seq_saved = (uint64_t)pg_int(r, 0, 0);
	PQclear(r);
	if (PQenterPipelineMode(h->conn) != 1) {
		pg_rollback(h);
		return pg_pipe_lost(h, "pipeline mode");
	}
	h->pipe = 1;
	h->aborted = 0;
	h->ahead = h->unread = 0;
	pgb_clear(h->known);
	return 0;
}

static int
pg_in_txn(void *hv)
{
	struct pg_handle *h = hv;
	PGTransactionStatusType s;

	if (h->pipe)
		return !h->aborted && PQstatus(h->conn) == CONNECTION_OK;
	s = PQtransactionStatus(h->conn);
	return s == PQTRANS_INTRANS || s == PQTRANS_ACTIVE;
}

/* Leave pipeline mode, reading whatever is still in flight. */
static void
pg_pipe_end(struct pg_handle *h)
{
	if (!h->pipe)
		return;
	if (PQstatus(h->conn) == CONNECTION_OK && (h->ahead > 0 || h->aborted))
		(void)pg_drain_sync(h, NULL, 1);
	if (PQexitPipelineMode(h->conn) != 1)
		log_debug("pg: pipeline mode not left: %.*s",
		    (int)strcspn(PQerrorMessage(h->conn), "\n"),
		    PQerrorMessage(h->conn));
	h->pipe = h->aborted = 0;
	h->ahead = h->unread = 0;
	pgb_clear(h->known);
}

/* Roll back whatever transaction is open; quiet when none is. */
static int
pg_rollback(void *hv)
{
	struct pg_handle *h = hv;
	PGTransactionStatusType s;

	pg_pipe_end(h);
	h->writing = h->txn = 0;
	s = PQtransactionStatus(h->conn);
	if (s != PQTRANS_INTRANS && s != PQTRANS_INERROR)
		return 0;
	return pg_command(h, "ROLLBACK");
}

/*
 * Commit: the batch's last event number goes to the counter row and to
 * the other brokers (PS_NOTIFY), then COMMIT, behind whatever was sent
 * ahead: one round trip. The server answers COMMIT with ROLLBACK when the
 * transaction had failed; and a connection lost during COMMIT leaves its
 * outcome unknown: both are UNAVAILABLE, and the client's retry finds
 * what is there.
 */
static int
pg_commit(void *hv)
{
	struct pg_handle *h = hv;
	char last[PG_NUM_LEN];
	const char *pv[] = {pg_num(last, (int64_t)h->seq)};
	PGresult *r = NULL;
	int rc;

	if (!h->pipe) {
		log_warnx("pg: commit outside a write transaction");
		pg_rollback(h);
		return REGISTRY_EUNAVAIL;
	}
	if ((h->seq == h->seq_base ||
		((rc = pg_ahead(h, PS_COUNTER_SET, NULL, pv, 1)) == 0 &&
		    (rc = pg_ahead(h, PS_NOTIFY, NULL, pv, 1)) == 0)) &&
	    (rc = pg_ahead(h, 0, "COMMIT", NULL, 1)) == 0)
		rc = pg_drain_sync(h, &r, 1);
	if (rc == 0 && (r == NULL || strcmp(PQcmdStatus(r), "COMMIT") != 0)) {
		log_warnx("pg: the transaction had failed; rolled back");
		rc = REGISTRY_EUNAVAIL;
	}
	PQclear(r);
	pg_rollback(h); /* leaves the pipeline; rolls back a failed one */
	if (rc != 0)
		return REGISTRY_EUNAVAIL;
	if (h->seq > h->seq_base)
		registry_pgfeed_own(h->seq_base + 1, h->seq);
	return 0;
}

static int
pg_savepoint(void *hv)
{
	struct pg_handle *h = hv;

	if (!h->pipe)
		return pg_command(h, "SAVEPOINT w");
	h->seq_saved = h->seq;
	return pg_ahead(h, 0, "SAVEPOINT w", NULL, 0);
}

/*
 * The op is done: what it sent ahead must have succeeded before it is
 * let go, so a release after unread writes is a round trip (their
 * failure is the op's: REGISTRY_ERETRY runs it again); after a read,
 * which read them all, it is only sent.
 */
static int
pg_release(void *hv)
{
	struct pg_handle *h = hv;
	int rc;

	if (!h->pipe)
		return pg_command(h, "RELEASE w");
	if (h->unread > 0 && (rc = pg_drain(h, NULL)) != 0)
		return rc;
	return pg_ahead(h, 0, "RELEASE w", NULL, 0);
}

/* Undo back to the savepoint and drop it; after a failure in the
 * pipeline, a sync first. */
static int
pg_rollback_to(void *hv)
{
	struct pg_handle *h = hv;
	int rc;

	if (!h->pipe)
		return pg_command(h, "ROLLBACK TO w; RELEASE w");
	h->seq = h->seq_saved;
	pgb_clear(h->known); /* what the op wrote is undone */
	if (h->unread > 0)
		(void)pg_drain(h, NULL);
	if (h->aborted) {
		if (PQstatus(h->conn) != CONNECTION_OK)
			return h->abort_rc;
		(void)pg_drain_sync(h, NULL, 1);
		if (h->aborted)
			return h->abort_rc;
	}
	if ((rc = pg_ahead(h, 0, "ROLLBACK TO w", NULL, 0)) != 0)
		return rc;
	return pg_ahead(h, 0, "RELEASE w", NULL, 0);
}

/* --- Identifiers and patients ----------------------------------------- */

static int
pg_ident_owner(void *hv, const char *domain, const char *value, char *pid)
{
	struct pg_handle *h = hv;
	const char *pv[] = {domain, value};
	PGresult *r;
	int rc;

	if (h->pipe && (rc = pgb_owner(h->known, domain, value, pid)) >= 0)
		return rc;
	if ((r = pg_run(h, PS_IDENT_OWNER, pv, &rc)) == NULL)
		return rc;
	rc = 1;
	if (PQntuples(r) > 0) {
		registry_copy(pid, PQgetvalue(r, 0, 0), REGISTRY_PID_MAX);
		rc = 0;
	}
	if (h->pipe)
		pgb_owner_note(h->known, domain, value, rc == 0 ? pid : NULL);
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
	struct pg_handle *h = hv;
	const char *pv[] = {domain, value, pid};
	int rc;

	if ((rc = pg_write(h, PS_IDENT_INSERT, pv)) == 0 && h->pipe) {
		pgb_owner_note(h->known, domain, value, NULL); /* was free */
		pgb_ident_set(h->known, domain, value, pid);
	}
	return rc;
}

static int
pg_ident_delete(void *hv, const char *domain, const char *value)
{
	struct pg_handle *h = hv;
	const char *pv[] = {domain, value};
	int rc;

	if ((rc = pg_write(h, PS_IDENT_DELETE, pv)) == 0 && h->pipe)
		pgb_ident_set(h->known, domain, value, NULL);
	return rc;
}

static int
pg_ident_move(void *hv, const char *domain, const char *value, const char *pid)
{
	struct pg_handle *h = hv;
	const char *pv[] = {domain, value, pid};
	int rc;

	if ((rc = pg_write(h, PS_IDENT_MOVE, pv)) == 0 && h->pipe)
		pgb_ident_set(h->known, domain, value, pid);
	return rc;
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

/* s as an element of an array literal, quoted, at *p (room for 2 *
 * strlen(s) + 3 bytes). */
static void
pg_array_add(char **p, const char *s, int first)
{
	char *o = *p;

	if (!first)
		*o++ = ',';
	*o++ = '"';
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			*o++ = '\\';
		*o++ = *s;
	}
	*o++ = '"';
	*p = o;
}

/* Read who holds each identifier a batch will name, in one statement,
 * into what the batch knows (registry_pgbatch.h). */
static int
pg_ident_hint(
    void *hv, const char *const *domains, const char *const *values, size_t n)
{
	struct pg_handle *h = hv;
	size_t dlen = 3, vlen = 3;
	char *d, *v, *dp, *vp;
	const char *pv[2];
	PGresult *r;
	int rc = 0;

	if (!h->pipe || h->known == NULL || n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		dlen += 2 * strlen(domains[i]) + 3;
		vlen += 2 * strlen(values[i]) + 3;
	}
	if ((d = malloc(dlen)) == NULL || (v = malloc(vlen)) == NULL) {
		free(d);
		return 0; /* not known: each is read when asked */
	}
	dp = d, vp = v;
	*dp++ = '{', *vp++ = '{';
	for (size_t i = 0; i < n; i++) {
		pg_array_add(&dp, domains[i], i == 0);
		pg_array_add(&vp, values[i], i == 0);
	}
	*dp++ = '}', *vp++ = '}';
	*dp = *vp = '\0';
	pv[0] = d, pv[1] = v;
	/* Under a savepoint of its own: a failure here is not the batch's. */
	if ((rc = pg_savepoint(h)) == 0 &&
	    (r = pg_run(h, PS_OWNERS, pv, &rc)) != NULL) {
		for (int i = 0; i < PQntuples(r); i++)
			pgb_owner_note(h->known, PQgetvalue(r, i, 0),
			    PQgetvalue(r, i, 1),
			    PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2));
		PQclear(r);
		rc = pg_release(h);
	} else if (rc != 0)
		rc = pg_rollback_to(h);
	free(d);
	free(v);
	return rc;
}

/* A batch knows the identifiers of a patient it read or made. */
static int
pg_patient_idents(void *hv, const char *pid, registry_ident_cb cb, void *arg)
{
	struct pg_handle *h = hv;
	const char *pv[] = {pid};
	PGresult *r;
	int rc, cbrc;

	if (!h->pipe)
		return pg_each_ident(h, PS_PATIENT_IDENTS, pv, cb, arg);
	if (pgb_idents(h->known, pid, cb, arg, &cbrc) == 0)
		return cbrc == 0 ? 0 : REGISTRY_EFAIL;
	if ((r = pg_run(h, PS_PATIENT_IDENTS, pv, &rc)) == NULL)
		return rc;
	pgb_idents_begin(h->known, pid);
	for (int i = 0; i < PQntuples(r); i++)
		pgb_idents_note(
		    h->known, pid, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
	for (int i = 0; rc == 0 && i < PQntuples(r); i++)
		if (cb(arg, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1)) == -1)
			rc = REGISTRY_EFAIL;
	PQclear(r);
	return rc;
}

static int
pg_patient_insert(void *hv, const struct registry_patient *p, int64_t now_ms)
{
	char sex[PG_NUM_LEN], version[PG_NUM_LEN], now[PG_NUM_LEN];
	struct pg_keys k;
	const char *pv[] = {p->id, p->name ? p->name : "", pg_num(sex, p->sex),
	    p->birth_date ? p->birth_date : "", p->phone ? p->phone : "",
	    p->address ? p->address : "", pg_num(version, (int64_t)p->version),
	    p->merged_into, pg_num(now, now_ms), k.k[0], k.k[1], k.k[2],
	    k.k[3]};
	struct pg_handle *h = hv;
	int rc;

	pg_keys(p, &k);
	if ((rc = pg_write(h, PS_PATIENT_INSERT, pv)) == 0 && h->pipe)
		pgb_idents_begin(h->known, p->id); /* new: holds none */
	return rc;
}

static int
pg_patient_update(void *hv, const struct registry_patient *p)
{
	char sex[PG_NUM_LEN], version[PG_NUM_LEN];
	struct pg_keys k;
	const char *pv[] = {p->id, p->name ? p->name : "", pg_num(sex, p->sex),
	    p->birth_date ? p->birth_date : "", p->phone ? p->phone : "",
	    p->address ? p->address : "", pg_num(version, (int64_t)p->version),
	    p->merged_into, k.k[0], k.k[1], k.k[2], k.k[3]};

	pg_keys(p, &k);
	return pg_write(hv, PS_PATIENT_UPDATE, pv);
}

/*
 * Candidates for matching (registry_backend.h): one statement gives the
 * rows; pre sees each one's cheap columns before its row is copied.
 */
static int
pg_patient_candidates(void *hv, const struct registry_block_key *keys,
    size_t nkeys, unsigned cap, unsigned min_keys, struct registry_arena *a,
    registry_candidate_pre_cb pre, registry_candidate_cb cb, void *arg)
{
	char kind[5][PG_NUM_LEN], c[PG_NUM_LEN], m[PG_NUM_LEN];
	const char *pv[12];
	struct registry_patient p;
	PGresult *r;
	size_t n = 0;
	int rc;

	for (size_t i = 0; i < nkeys && n < 5; i++) {
		if (keys[i].key[0] == '\0' || keys[i].kind < 0 ||
		    keys[i].kind >= MATCH_KEY_KINDS)
			continue;
		pv[2 * n] = pg_num(kind[n], keys[i].kind);
		pv[2 * n + 1] = keys[i].key;
		n++;
	}
	if (n == 0)
		return 0;
	for (size_t i = n; i < 5; i++) {
		pv[2 * i] = "-1";
		pv[2 * i + 1] = "";
	}
	pv[10] = pg_num(c, cap);
	pv[11] = pg_num(m, min_keys);
	if ((r = pg_run(hv, PS_CANDIDATES, pv, &rc)) == NULL)
		return rc;
	for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
		if (pre != NULL &&
		    pre(arg, (int)pg_int(r, i, 1), PQgetvalue(r, i, 2),
			PQgetvalue(r, i, 3)) == 0)
			continue;
		if ((rc = pg_patient_row(r, i, a, &p)) == 0 &&
		    cb(arg, &p, PQgetvalue(r, i, 8)) == -1)
			rc = REGISTRY_EFAIL;
	}
	PQclear(r);
	return rc;
}

static int
pg_block_count(void *hv, int kind, const char *key, uint64_t *count)
{
	char k[PG_NUM_LEN];
	const char *pv[] = {pg_num(k, kind), key};
	PGresult *r;
	int rc;

	*count = 0;
	if ((r = pg_run(hv, PS_BLOCK_COUNT, pv, &rc)) == NULL)
		return rc;
	if (PQntuples(r) == 1)
		*count = (uint64_t)pg_int(r, 0, 0);
	PQclear(r);
	return 0;
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

/* Number the event on from the batch's last (pg_begin) and send it. */
static int
pg_event_append(void *hv, struct registry_event *ev)
{
	struct pg_handle *h = hv;
	char seq[PG_NUM_LEN], t[PG_NUM_LEN];
	const char *pv[] = {pg_num(seq, (int64_t)(h->seq + 1)), ev->op,
	    ev->patient_id, ev->actor, pg_num(t, ev->time_ms),
	    ev->detail ? ev->detail : "",
	    ev->other_patient_id ? ev->other_patient_id : "",
	    ev->notify ? ev->notify : ""};
	int rc;

	if (!h->pipe) {
		log_warnx("pg: an event outside a write transaction");
		return REGISTRY_EFAIL;
	}
	if ((rc = pg_write(h, PS_EVENT_APPEND, pv)) == 0)
		ev->seq = ++h->seq;
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
 * No learnt match model (model_get NULL): matching weighs with match.h's
 * defaults. Learning samples 10,000 patients, several statements each; over
 * a connection that is seconds of the writer's time at each doubling.
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
    .ident_hint = pg_ident_hint,
    .patient_idents = pg_patient_idents,
    .patient_get = pg_patient_get,
    .patient_insert = pg_patient_insert,
    .patient_update = pg_patient_update,
    .patient_page = pg_patient_page,
    .patient_search = pg_patient_search,
    .patient_candidates = pg_patient_candidates,
    .block_count = pg_block_count,
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
