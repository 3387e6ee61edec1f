/*
 * registry_redo.c: the redo log's encoding, file format and I/O (see
 * registry_redo.h). It owns one file and never touches SQLite; an entry is
 * durable when redo_append returns 0 (docs/architecture.md says how).
 */
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "registry_redo.h"

#define REDO_MAGIC      "ONECARD-REDO"
#define REDO_VERSION    1
#define REDO_HDR        32                 /* file header */
#define REDO_ENTRY_HDR  16                 /* length, CRC, seq */
#define REDO_CHUNK      (2 * 1024 * 1024)  /* zeros written ahead */
#define REDO_RECORD_MAX (64 * 1024 * 1024) /* one record's strings */

struct redo {
	char *path;
	int fd;
	uint64_t id;
	int created;
	uint64_t end;      /* where the next entry goes */
	uint64_t size;     /* bytes of the file written (entries or zeros) */
	uint64_t last_seq; /* of the last valid entry */
	uint64_t undo_off; /* the last append's offset, for redo_undo */
	int undo_pending;  /* an entry to take back could not be yet */
};

static uint32_t crc32c_table[8][256];

/* Build the slice-by-8 tables once. */
static void
redo_crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
		crc32c_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc32c_table[t][i] = (crc32c_table[t - 1][i] >> 8) ^
			    crc32c_table[0][crc32c_table[t - 1][i] & 0xff];
}

uint32_t
redo_crc32c(uint32_t crc, const void *buf, size_t n)
{
	const uint8_t *p = buf;

	if (crc32c_table[0][1] == 0)
		redo_crc_init();
	crc = ~crc;
	while (n >= 8) {
		uint32_t lo = crc ^
		    ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
			(uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);

		crc = crc32c_table[7][lo & 0xff] ^
		    crc32c_table[6][(lo >> 8) & 0xff] ^
		    crc32c_table[5][(lo >> 16) & 0xff] ^
		    crc32c_table[4][lo >> 24] ^ crc32c_table[3][p[4]] ^
		    crc32c_table[2][p[5]] ^ crc32c_table[1][p[6]] ^
		    crc32c_table[0][p[7]];
		p += 8;
		n -= 8;
	}
	while (n-- > 0)
		crc = (crc >> 8) ^ crc32c_table[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

static void
put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static uint64_t
get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

void
redo_buf_reset(struct redo_buf *b)
{
	b->len = 0;
	b->nmarks = 0;
	b->nomem = 0;
}

void
redo_buf_free(struct redo_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

int
redo_buf_mark(struct redo_buf *b)
{
	if (b->nmarks == REDO_MARKS_MAX)
		return -1;
	b->marks[b->nmarks++] = b->len;
	return 0;
}

void
redo_buf_release(struct redo_buf *b)
{
	if (b->nmarks > 0)
		b->nmarks--;
}

void
redo_buf_rollback(struct redo_buf *b)
{
	if (b->nmarks > 0)
		b->len = b->marks[--b->nmarks];
}

/* Room for n more bytes; 0 or -1. */
static int
redo_buf_grow(struct redo_buf *b, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (b->len + n <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + n)
		cap *= 2;
	if ((p = realloc(b->p, cap)) == NULL)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

void
redo_buf_put(struct redo_buf *b, int type, const char *fmt, ...)
{
	va_list ap;
	size_t need = 1;

	/* Size it first, so a record goes in whole or not at all. */
	va_start(ap, fmt);
	for (const char *f = fmt; *f != '\0'; f++) {
		if (*f == 's') {
			const char *s = va_arg(ap, const char *);
			need += 4 + strlen(s ? s : "") + 1;
		} else {
			(void)va_arg(ap, int64_t);
			need += 8;
		}
	}
	va_end(ap);
	if (b->nomem || need > REDO_RECORD_MAX ||
	    redo_buf_grow(b, need) == -1) {
		b->nomem = 1;
		return;
	}
	b->p[b->len++] = (uint8_t)type;
	va_start(ap, fmt);
	for (const char *f = fmt; *f != '\0'; f++) {
		if (*f == 's') {
			const char *s = va_arg(ap, const char *);
			size_t n;

			s = s ? s : "";
			n = strlen(s);
			put32(b->p + b->len, (uint32_t)n);
			memcpy(b->p + b->len + 4, s, n + 1);
			b->len += 4 + n + 1;
		} else {
			put64(b->p + b->len, (uint64_t)va_arg(ap, int64_t));
			b->len += 8;
		}
	}
	va_end(ap);
}

int
redo_get_type(struct redo_reader *r)
{
	if (r->bad || r->p >= r->end)
		return -1;
	return *r->p++;
}

const char *
redo_get_str(struct redo_reader *r)
{
	const char *s;
	uint32_t n;

	if (r->bad || r->end - r->p < 5)
		goto bad;
	n = get32(r->p);
	if ((size_t)(r->end - r->p) - 4 < (size_t)n + 1 || r->p[4 + n] != '\0')
		goto bad;
	s = (const char *)r->p + 4;
	r->p += 4 + (size_t)n + 1;
	return s;
bad:
	r->bad = 1;
	return "";
}

int64_t
redo_get_int(struct redo_reader *r)
{
	uint64_t v;

	if (r->bad || r->end - r->p < 8) {
		r->bad = 1;
		return 0;
	}
	v = get64(r->p);
	r->p += 8;
	return (int64_t)v;
}

/* The file header of log id. */
static void
redo_header(uint8_t *h, uint64_t id)
{
	memset(h, 0, REDO_HDR);
	memcpy(h, REDO_MAGIC, sizeof(REDO_MAGIC) - 1);
	put32(h + 12, REDO_VERSION);
	put64(h + 16, id);
	put32(h + 28, redo_crc32c(0, h, 28));
}

/* Write all of buf at off; 0 or -1 with errno. */
static int
redo_pwrite(int fd, const void *buf, size_t n, uint64_t off)
{
	const uint8_t *p = buf;

	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);

		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* Sync the folder holding path (a new file's name). */
static int
redo_sync_dir(const char *path)
{
	char *copy = strdup(path);
	int fd, rc = -1;

	if (copy == NULL)
		return -1;
	if ((fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >=
	    0) {
		rc = fsync(fd);
		close(fd);
	}
	free(copy);
	return rc;
}

struct redo *
redo_open(const char *path, char *err, size_t errlen)
{
	struct redo *r;
	uint8_t hdr[REDO_HDR], want[REDO_HDR];
	struct stat st;
	ssize_t n;

	memset(want, 0, sizeof(want));
	if ((r = calloc(1, sizeof(*r))) != NULL)
		r->fd = -1;
	if (r == NULL || (r->path = strdup(path)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	r->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (r->fd == -1 || fstat(r->fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (st.st_size == 0) {
		/* New: the header, synced, and the name in its folder. */
		if (getrandom(&r->id, sizeof(r->id), 0) != sizeof(r->id)) {
			snprintf(
			    err, errlen, "%s: no randomness for an id", path);
			goto fail;
		}
		r->id |= 1; /* never 0: a registry not paired yet */
		r->created = 1;
		redo_header(want, r->id);
		if (redo_pwrite(r->fd, want, REDO_HDR, 0) == -1 ||
		    fdatasync(r->fd) == -1 || redo_sync_dir(path) == -1) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		st.st_size = REDO_HDR;
	} else {
		n = pread(r->fd, hdr, REDO_HDR, 0);
		if (n == REDO_HDR)
			redo_header(want, r->id = get64(hdr + 16));
		if (n != REDO_HDR || r->id == 0 ||
		    memcmp(hdr, want, REDO_HDR) != 0) {
			snprintf(err, errlen,
			    "%s: not a redo log of this broker (bad header)",
			    path);
			goto fail;
		}
	}
	r->size = (uint64_t)st.st_size;
	r->end = REDO_HDR;
	return r;
fail:
	redo_close(r);
	return NULL;
}

void
redo_close(struct redo *r)
{
	if (r == NULL)
		return;
	if (r->fd != -1)
		close(r->fd);
	free(r->path);
	free(r);
}

uint64_t
redo_id(const struct redo *r)
{
	return r->id;
}

int
redo_created(const struct redo *r)
{
	return r->created;
}

uint64_t
redo_last_seq(const struct redo *r)
{
	return r->last_seq;
}

uint64_t
redo_used(const struct redo *r)
{
	return r->end - REDO_HDR;
}

/* The CRC an entry header carries. */
static uint32_t
redo_entry_crc(uint64_t seq, uint32_t len, const uint8_t *payload)
{
	uint8_t b[12];

	put64(b, seq);
	put32(b + 8, len);
	return redo_crc32c(redo_crc32c(0, b, sizeof(b)), payload, len);
}

/*
 * Walk the entries of a mapped log from its header on: skip those at or
 * below applied, cb for each above it, stop at the first torn or stale
 * one. *last and *end are the last sequence number and the offset after
 * the last valid entry; 0, or -1 (err set) on a gap or a failed cb.
 */
static int
redo_walk(const char *path, const uint8_t *map, uint64_t size, uint64_t applied,
    redo_entry_cb cb, void *arg, uint64_t *last, uint64_t *end,
    uint64_t *replayed, char *err, size_t errlen)
{
	uint64_t off = REDO_HDR, prev = 0;

	*end = REDO_HDR;
	*last = applied;
	while (map != NULL && size - off >= REDO_ENTRY_HDR) {
		const uint8_t *e = map + off;
		uint32_t len = get32(e);
		uint64_t seq = get64(e + 8);

		if (len == 0)
			break; /* zeros: the end */
		if (len > size - off - REDO_ENTRY_HDR ||
		    get32(e + 4) != redo_entry_crc(seq, len, e + 16)) {
			log_warnx("redo %s: torn entry at offset %llu "
				  "discarded (never acknowledged)",
			    path, (unsigned long long)off);
			break;
		}
		if (prev != 0 && seq != prev + 1)
			break; /* an older generation's entry: the end */
		if (seq > applied) {
			if (seq != *last + 1) {
				snprintf(err, errlen,
				    "%s: entry %llu does not follow the "
				    "registry's %llu (a gap: was the registry "
				    "restored without its redo log?)",
				    path, (unsigned long long)seq,
				    (unsigned long long)*last);
				return -1;
			}
			if (cb(arg, seq, e + 16, len) == -1) {
				snprintf(err, errlen,
				    "%s: entry %llu could not be applied", path,
				    (unsigned long long)seq);
				return -1;
			}
			*last = seq;
			(*replayed)++;
		}
		prev = seq;
		off += REDO_ENTRY_HDR + len;
		*end = off;
	}
	return 0;
}

int
redo_replay(struct redo *r, uint64_t applied, redo_entry_cb cb, void *arg,
    char *err, size_t errlen)
{
	const uint8_t *map = NULL;
	uint64_t replayed = 0;
	int rc;

	if (r->size > REDO_HDR) {
		map = mmap(
		    NULL, (size_t)r->size, PROT_READ, MAP_SHARED, r->fd, 0);
		if (map == MAP_FAILED) {
			snprintf(err, errlen, "%s: mmap: %s", r->path,
			    strerror(errno));
			return -1;
		}
	}
	rc = redo_walk(r->path, map, r->size, applied, cb, arg, &r->last_seq,
	    &r->end, &replayed, err, errlen);
	if (map != NULL)
		munmap((void *)map, (size_t)r->size);
	if (replayed > 0)
		log_info("redo %s: replayed %llu groups up to %llu", r->path,
		    (unsigned long long)replayed,
		    (unsigned long long)r->last_seq);
	return rc;
}

/* The sequence number of the first entry of a mapped log, 0 if none. */
static uint64_t
redo_first_seq(const uint8_t *map, uint64_t size)
{
	if (map == NULL || size < REDO_HDR + REDO_ENTRY_HDR ||
	    get32(map + REDO_HDR) == 0)
		return 0;
	return get64(map + REDO_HDR + 8);
}

int
redo_scan(const char *path, uint64_t id, uint64_t applied, redo_entry_cb cb,
    void *arg, char *err, size_t errlen)
{
	uint8_t hdr[REDO_HDR], want[REDO_HDR];
	const uint8_t *map = NULL;
	uint64_t last, end, n = 0, first;
	struct stat st;
	int fd, rc = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			return 0; /* no log: nothing above the image */
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	redo_header(want, id);
	if (fstat(fd, &st) == -1 || pread(fd, hdr, REDO_HDR, 0) != REDO_HDR ||
	    memcmp(hdr, want, REDO_HDR) != 0) {
		snprintf(err, errlen,
		    "%s: not the registry's log (it was "
		    "replaced meanwhile)",
		    path);
		rc = REDO_SCAN_AGAIN;
		goto done;
	}
	if ((uint64_t)st.st_size > REDO_HDR) {
		map = mmap(
		    NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED) {
			map = NULL;
			snprintf(
			    err, errlen, "%s: mmap: %s", path, strerror(errno));
			goto done;
		}
	}
	first = redo_first_seq(map, (uint64_t)st.st_size);
	rc = redo_walk(path, map, (uint64_t)st.st_size, applied, cb, arg, &last,
	    &end, &n, err, errlen);
	/* The log started again meanwhile (its first entry was written
	 * over), or it does not reach back to applied: not a whole copy. */
	if (rc == 0 &&
	    (redo_first_seq(map, (uint64_t)st.st_size) != first ||
		(first > applied + 1 && n == 0 && first != 0))) {
		snprintf(
		    err, errlen, "%s: the log started again meanwhile", path);
		rc = REDO_SCAN_AGAIN;
	} else if (rc == -1 && strstr(err, "a gap") != NULL)
		rc = REDO_SCAN_AGAIN;
done:
	if (map != NULL)
		munmap((void *)map, (size_t)st.st_size);
	close(fd);
	return rc;
}

/* Zero the entry header at off and sync; 0 or -1. */
static int
redo_zero_at(struct redo *r, uint64_t off)
{
	static const uint8_t zero[REDO_ENTRY_HDR];

	if (redo_pwrite(r->fd, zero, sizeof(zero), off) == -1 ||
	    fdatasync(r->fd) == -1) {
		log_warn("redo %s: cannot take back entry at %llu", r->path,
		    (unsigned long long)off);
		return -1;
	}
	return 0;
}

/* Write zeros ahead so the file holds at least want bytes, synced. */
static int
redo_extend(struct redo *r, uint64_t want)
{
	static const uint8_t zero[65536];
	uint64_t to = r->size;

	while (to < want)
		to += REDO_CHUNK;
	for (uint64_t off = r->size; off < to; off += sizeof(zero)) {
		size_t n =
		    to - off < sizeof(zero) ? (size_t)(to - off) : sizeof(zero);
		if (redo_pwrite(r->fd, zero, n, off) == -1)
			goto fail;
	}
	if (fdatasync(r->fd) == -1)
		goto fail;
	r->size = to;
	return 0;
fail:
	log_warn("redo %s: cannot grow to %llu bytes", r->path,
	    (unsigned long long)to);
	/* Whatever got written is zeros; keep the size we know is synced. */
	return -1;
}

int
redo_append(struct redo *r, const void *payload, size_t len)
{
	uint8_t hdr[REDO_ENTRY_HDR];
	uint64_t seq = r->last_seq + 1;

	if (len == 0 || len > UINT32_MAX - REDO_ENTRY_HDR)
		return -1;
	if (r->undo_pending) {
		if (redo_zero_at(r, r->undo_off) == -1)
			return -1;
		r->undo_pending = 0;
	}
	if (r->end + REDO_ENTRY_HDR + len > r->size &&
	    redo_extend(r, r->end + REDO_ENTRY_HDR + len) == -1)
		return -1;
	put32(hdr, (uint32_t)len);
	put32(hdr + 4, redo_entry_crc(seq, (uint32_t)len, payload));
	put64(hdr + 8, seq);
	if (redo_pwrite(r->fd, hdr, sizeof(hdr), r->end) == -1 ||
	    redo_pwrite(r->fd, payload, len, r->end + REDO_ENTRY_HDR) == -1 ||
	    fdatasync(r->fd) == -1) {
		log_warn("redo %s: cannot write entry %llu", r->path,
		    (unsigned long long)seq);
		/* Some of it may reach the disk later: take it back. */
		r->undo_off = r->end;
		r->undo_pending = redo_zero_at(r, r->end) == -1;
		return -1;
	}
	r->undo_off = r->end;
	r->end += REDO_ENTRY_HDR + len;
	r->last_seq = seq;
	return 0;
}

int
redo_undo(struct redo *r)
{
	r->end = r->undo_off;
	r->last_seq--;
	if (redo_zero_at(r, r->undo_off) == -1) {
		r->undo_pending = 1;
		return -1;
	}
	return 0;
}

void
redo_restart(struct redo *r)
{
	/* Not while a failed entry may still be there: after a restart it
	 * would read as the next group. */
	if (!r->undo_pending)
		r->end = REDO_HDR;
}
