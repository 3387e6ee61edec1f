/*
 * registry_redo.h: the redo log: the encoding, the file format (<db>-redo)
 * and its I/O. Only registry_*.c and the unit tests include it; the format is
 * in docs/architecture.md.
 */
#ifndef ONECARD_REGISTRY_REDO_H
#define ONECARD_REGISTRY_REDO_H

#include <stddef.h>
#include <stdint.h>

/* A redo record's type: one per change primitive. */
enum redo_rec {
	REC_IDENT_INSERT = 1,
	REC_IDENT_DELETE,
	REC_IDENT_MOVE,
	REC_PATIENT_INSERT,
	REC_PATIENT_UPDATE,
	REC_EVENT_APPEND,
	REC_HOSPITAL_PUT,
	REC_MERGE_INSERT,
	REC_MERGE_IDENT_INSERT,
	REC_MERGE_UNDO,
	/* REC_EVENT_APPEND and then other_patient_id and notify; what is
	 * written now (the first is still read from older logs). */
	REC_EVENT_APPEND2,
	/* The worklist: a new pair (the score's IEEE bits as an int), and a
	 * pair's new state. */
	REC_PAIR_INSERT,
	REC_PAIR_STATE,
};

#define REDO_MARKS_MAX 16 /* nested savepoints in one transaction */

/* One transaction's records, with a mark per open savepoint. */
struct redo_buf {
	uint8_t *p;
	size_t len, cap;
	size_t marks[REDO_MARKS_MAX];
	int nmarks;
	int nomem; /* a record did not fit in memory: the group must fail */
};

/* Reads a payload back, record by record. */
struct redo_reader {
	const uint8_t *p, *end;
	int bad; /* ran past the end or met a malformed field */
};

struct redo;

/* A valid entry above the caller's sequence number, in order. */
typedef int (*redo_entry_cb)(
    void *arg, uint64_t seq, const uint8_t *payload, size_t len);

/*
 * Apply one entry's records through a store's primitives (registry_replay.c),
 * with the ids, sequence numbers and times they carry; the store must not log
 * them again. 0 or a backend error; a malformed record is REGISTRY_EFAIL.
 */
struct registry_backend;
int registry_redo_apply(const struct registry_backend *be, void *h,
    const uint8_t *payload, size_t len);

/* CRC32C (Castagnoli) of n bytes, continuing from crc (0 to start). */
uint32_t redo_crc32c(uint32_t crc, const void *p, size_t n);

void redo_buf_reset(struct redo_buf *b);
void redo_buf_free(struct redo_buf *b);
/* Savepoints: mark pushes the length, release pops it, rollback pops it
 * and drops what was put after it. -1 when nested too deep. */
int redo_buf_mark(struct redo_buf *b);
void redo_buf_release(struct redo_buf *b);
void redo_buf_rollback(struct redo_buf *b);
/*
 * Append one record: type, then one field per character of fmt: 's' a
 * NUL-terminated string (const char *), 'i' an int64_t. A record that does
 * not fit in memory sets b->nomem.
 */
void redo_buf_put(struct redo_buf *b, int type, const char *fmt, ...);

/* Next record's type, -1 at the end of the payload (or if malformed). */
int redo_get_type(struct redo_reader *r);
/* Next field; strings point into the payload and are NUL-terminated. */
const char *redo_get_str(struct redo_reader *r);
int64_t redo_get_int(struct redo_reader *r);

/*
 * Open (creating with a new random id and its header, synced) the log at
 * path. NULL with a reason naming the file in err.
 */
struct redo *redo_open(const char *path, char *err, size_t errlen);
/* The log's id (never 0) and whether redo_open just made the file. */
uint64_t redo_id(const struct redo *r);
int redo_created(const struct redo *r);
void redo_close(struct redo *r);
/*
 * Read the log from the start: skip entries at or below applied, call cb
 * for each one above it, stop at the first torn or stale entry (logged
 * when it is not just the end). 0, or -1 if cb failed or an entry above
 * applied does not follow it (a gap: err says so). On return the next
 * append goes after the last valid entry.
 */
int redo_replay(struct redo *r, uint64_t applied, redo_entry_cb cb, void *arg,
    char *err, size_t errlen);
/*
 * Read the log at path (id: the one its image is paired with) without
 * opening it for writing, as a backup does while the broker runs: cb for
 * each valid entry above applied. 0; -1 with err set; REDO_SCAN_AGAIN
 * when the log was replaced or started again meanwhile, or does not reach
 * back to applied (take a newer image and scan again). No file: 0.
 */
#define REDO_SCAN_AGAIN (-2)
int redo_scan(const char *path, uint64_t id, uint64_t applied, redo_entry_cb cb,
    void *arg, char *err, size_t errlen);
/* The last sequence number replay met or append wrote (0 for none). */
uint64_t redo_last_seq(const struct redo *r);
/*
 * Append an entry with the next sequence number and fdatasync it. 0, or -1
 * (logged) when it could not be made durable: nothing of it will be
 * replayed.
 */
int redo_append(struct redo *r, const void *payload, size_t len);
/*
 * Take back the entry the last redo_append wrote (its SQLite commit failed,
 * so it was answered UNAVAILABLE): zero its header and sync. 0 or -1; after
 * -1 every append retries it first and fails while it cannot.
 */
int redo_undo(struct redo *r);
/* Tests (registry_sqlite.c): when set, the next commit with records fails
 * after its entry was synced, as a failed SQLite COMMIT would. */
extern int registry_sqlite_fail_commit;

/* Everything appended is safe in the store: start again at the front. */
void redo_restart(struct redo *r);
/* Bytes of entries since the last restart. */
uint64_t redo_used(const struct redo *r);

#endif
