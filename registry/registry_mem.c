/*
 * registry_mem.c: the registry in memory, acknowledged at its redo log,
 * with the SQLite file folded in behind as its image (registry_image.h).
 * docs/architecture.md has the whole story.
 */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "match.h"
#include "registry_backend.h"
#include "registry_cache.h"
#include "registry_image.h"
#include "registry_mem.h"
#include "registry_redo.h"

#define MEM_TAB_MIN        1024
#define MEM_FOLD_MAX_BYTES (64u << 20) /* one fold transaction's payloads */
#define MEM_FOLD_MIN_BYTES (4u << 20)  /* fold at once past this much */
#define MEM_FOLD_DELAY_MS  100         /* else once the oldest is this old */
#define MEM_LOG_RESTART    (64u << 20) /* the log starts again past this */
#define MEM_IDENTS_LOCAL   64

/* The head of every object kept in a hash table. */
struct mem_key {
	uint64_t hash;
	uint32_t klen;
};

/* Open addressing, linear probing; key() gives an object's key bytes. */
struct mem_tab {
	void **slot;
	size_t mask;
	size_t n;
	const char *(*key)(const void *obj);
};

struct mem_patient;

/* The patients sharing a name, a birth date or a blocking key, for search. */
struct mem_head {
	struct mem_key k;
	size_t count;
	struct mem_patient *first;
	char key[];
};

struct mem_link {
	struct mem_patient *next, *prev;
	struct mem_head *head;
};

/*
 * The lists a patient is filed in: its exact name (the exact search), then
 * the blocking keys of match.h (BY_BIRTH is both). A list holds the newest
 * patient first.
 */
enum {
	BY_NAME,
	BY_BIRTH,
	BY_SURNAME_YEAR,
	BY_PHONE,
	BY_PINYIN,
	BY_MAX
};

/* The list of each kind of blocking key (match.h). */
static const int by_block[MATCH_KEY_KINDS] = {
    [MATCH_KEY_SURNAME_YEAR] = BY_SURNAME_YEAR,
    [MATCH_KEY_BIRTH] = BY_BIRTH,
    [MATCH_KEY_PHONE] = BY_PHONE,
    [MATCH_KEY_NAME] = BY_PINYIN,
};

/* A patient's changeable columns, replaced whole by an update. */
struct mem_fields {
	int sex;
	unsigned birth, phone, address, merged; /* offsets into s */
	char s[];                               /* name first */
};

struct mem_ident {
	struct mem_key k;
	uint64_t stamp;
	struct mem_patient *owner;
	struct mem_ident *next; /* the owner's identifiers */
	int deleted;            /* until the batch that deleted it is durable */
	char key[];             /* domain NUL value NUL */
};

struct mem_event {
	uint64_t seq, stamp;
	int64_t time_ms;
	struct mem_event *next, *prev; /* every unfolded event, oldest first */
	struct mem_event *pnext, *pprev; /* the patient's, newest first */
	struct mem_patient *p;
	const char *op, *pid, *actor, *detail, *other, *notify;
	char s[];
};

struct mem_patient {
	struct mem_key k;
	uint64_t stamp;
	uint64_t version;
	struct mem_fields *f;
	struct mem_ident *idents;
	struct mem_link by[BY_MAX];
	struct mem_event *events; /* unfolded, newest first */
	char id[];
};

struct mem_hosp {
	struct mem_hosp *next;
	uint64_t stamp;
	char *code, *name;
	int role, active;
};

struct mem_merge {
	int64_t id;
	uint64_t seq;
	int undone;
	char *survivor, *duplicate;
	char **idents; /* "domain NUL value" */
	size_t nidents, cap;
};

/* A pair of the worklist; found by id (ids are dense from 1) or by
 * (a, b) through pair_slot. */
struct mem_pair {
	int64_t id;
	int64_t found_ms;
	double score;
	int grade, state;
	char a[REGISTRY_PID_MAX], b[REGISTRY_PID_MAX];
	char reason[];
};

struct mem_domain {
	char *name;
	uint64_t live, durable;
};

/* A change of the open batch, kept to undo it. */
enum {
	J_IDENT_NEW,
	J_IDENT_SET,
	J_PATIENT_NEW,
	J_PATIENT_SET,
	J_EVENT,
	J_HOSP_NEW,
	J_HOSP_SET,
	J_MERGE_NEW,
	J_MERGE_IDENT,
	J_MERGE_UNDO,
	J_PATIENT_STAMP,
	J_PAIR_NEW,
	J_PAIR_STATE,
};

struct mem_jrec {
	int type;
	void *obj;
	void *old; /* J_PATIENT_SET: old fields; J_IDENT_SET: old owner */
	uint64_t stamp, version;
	int flag; /* J_IDENT_SET: deleted; J_HOSP_SET: active */
	int role;
};

/* A synced log entry not yet in the image. */
struct mem_fold {
	struct mem_fold *next;
	uint64_t seq, stamp;
	struct timespec at;
	size_t len;
	uint8_t p[];
};

struct mem_db {
	struct mem_db *next; /* every open registry of the process */
	char *path;
	int refs;
	int lockfd;

	pthread_rwlock_t lock; /* the index: readers vs. the writer */
	struct mem_tab idents, pids, heads[BY_MAX];
	struct mem_patient **order; /* by id, for export */
	size_t norder, order_cap;
	struct mem_hosp *hosps; /* by code */
	struct mem_merge **merges;
	struct mem_pair **pairs; /* by id - 1 */
	size_t npairs, pairs_cap;
	size_t *pair_slot; /* open addressing on (a, b): index + 1, 0 empty */
	size_t pair_mask;
	size_t nmerges, merges_cap;
	int64_t last_merge;
	uint64_t last_event, durable_event, trimmed_event;
	struct mem_event *ev_first, *ev_last;
	uint64_t patients, merged, identifiers;
	uint64_t d_patients, d_merged, d_identifiers;
	struct mem_domain *doms;
	size_t ndoms;

	/* What readers may see: batches up to durable_stamp. */
	_Atomic uint64_t durable_stamp;
	_Atomic uint64_t batch_gen;
	pthread_mutex_t vis_mu;
	pthread_cond_t vis_cv;

	/* The writer's open batch. */
	uint64_t stamp;
	int in_txn;
	int logging;
	struct redo_buf rb;
	struct mem_jrec *jr;
	size_t njr, jr_cap;
	size_t marks[REDO_MARKS_MAX];
	int nmarks;
	struct redo *redo;

	/* The fold. */
	void *img;
	pthread_t fold_thread;
	int fold_running;
	pthread_mutex_t fq_mu;
	pthread_cond_t fq_cv, room_cv;
	struct mem_fold *fq_head, *fq_tail;
	uint64_t unfolded_bytes, unfolded_entries;
	uint64_t folded_seq, folded_stamp, folded_total;
	int fold_stop, fold_failing, waiting;
	int log_wait; /* the writer waits for the fold to empty the log */
	size_t max_unfolded;
	const char *hold; /* tests: the fold waits while this file exists */
	/* Retention (the fold's): the last keep_events, or keep_ms. */
	uint64_t keep_events;
	int64_t keep_ms;
	struct timespec pruned_at;
	int prune_failing, prune_more;
	atomic_uint_fast64_t event_floor; /* events up to it are gone */
	/* The match model, newest first; an old one stays until close, as
	 * a reader may still hold it. */
	struct mem_model *_Atomic model;
};

struct mem_model {
	struct match_model m;
	struct mem_model *older;
};

struct mem_handle {
	struct mem_db *db;
	int writer;
	void *img; /* history: the events folded in, opened on first use */
};

static pthread_mutex_t mem_open_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mem_db *mem_dbs;
static struct registry_limits mem_lim = {
    .max_unfolded = REGISTRY_DEFAULT_MAX_UNFOLDED};

void
registry_mem_set_limits(const struct registry_limits *lim)
{
	mem_lim = *lim;
}

/* --- Hash tables ------------------------------------------------------ */

static const char *
ident_key(const void *o)
{
	return ((const struct mem_ident *)o)->key;
}

static const char *
patient_key(const void *o)
{
	return ((const struct mem_patient *)o)->id;
}

static const char *
head_key(const void *o)
{
	return ((const struct mem_head *)o)->key;
}

static int
tab_init(struct mem_tab *t, size_t n, const char *(*key)(const void *))
{
	size_t cap = MEM_TAB_MIN;

	while (cap < n * 2)
		cap <<= 1;
	if ((t->slot = calloc(cap, sizeof(*t->slot))) == NULL)
		return -1;
	t->mask = cap - 1;
	t->n = 0;
	t->key = key;
	return 0;
}

static void *
tab_get(const struct mem_tab *t, const char *k, size_t klen, uint64_t h)
{
	for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
		struct mem_key *o = t->slot[i];

		if (o == NULL)
			return NULL;
		if (o->hash == h && o->klen == klen &&
		    memcmp(t->key(o), k, klen) == 0)
			return o;
	}
}

static int
tab_grow(struct mem_tab *t)
{
	size_t cap = (t->mask + 1) * 2;
	void **slot = calloc(cap, sizeof(*slot));

	if (slot == NULL)
		return -1;
	for (size_t i = 0; i <= t->mask; i++) {
		struct mem_key *o = t->slot[i];
		size_t j;

		if (o == NULL)
			continue;
		for (j = o->hash & (cap - 1); slot[j] != NULL;
		     j = (j + 1) & (cap - 1))
			;
		slot[j] = o;
	}
	free(t->slot);
	t->slot = slot;
	t->mask = cap - 1;
	return 0;
}

/* Add o (its key not there yet). 0 or -1 out of memory. */
static int
tab_put(struct mem_tab *t, void *o)
{
	struct mem_key *k = o;
	size_t i;

	if ((t->n + 1) * 10 > (t->mask + 1) * 7 && tab_grow(t) == -1)
		return -1;
	for (i = k->hash & t->mask; t->slot[i] != NULL; i = (i + 1) & t->mask)
		;
	t->slot[i] = o;
	t->n++;
	return 0;
}

/* Take o out, shifting back the entries probed past it. */
static void
tab_del(struct mem_tab *t, void *o)
{
	struct mem_key *k = o;
	size_t i, j;

	for (i = k->hash & t->mask; t->slot[i] != o; i = (i + 1) & t->mask)
		if (t->slot[i] == NULL)
			return;
	t->slot[i] = NULL;
	t->n--;
	for (j = (i + 1) & t->mask; t->slot[j] != NULL; j = (j + 1) & t->mask) {
		struct mem_key *m = t->slot[j];
		size_t home = m->hash & t->mask;

		/* m may move to i when i lies between its home and j. */
		if ((j > i && (home <= i || home > j)) ||
		    (j < i && home <= i && home > j)) {
			t->slot[i] = m;
			t->slot[j] = NULL;
			i = j;
		}
	}
}

static void
tab_free(struct mem_tab *t)
{
	free(t->slot);
	t->slot = NULL;
}

/* --- Objects ---------------------------------------------------------- */

/* An identifier's key: "domain NUL value"; its length without the last. */
static size_t
ident_keybuf(const char *domain, const char *value, char *buf, size_t len)
{
	size_t d = strlen(domain), v = strlen(value);

	if (d + 1 + v + 1 > len)
		return 0;
	memcpy(buf, domain, d + 1);
	memcpy(buf + d + 1, value, v + 1);
	return d + 1 + v;
}

static struct mem_ident *
ident_find(const struct mem_db *db, const char *domain, const char *value)
{
	char key[512];
	size_t n = ident_keybuf(domain, value, key, sizeof(key));

	if (n == 0)
		return NULL;
	return tab_get(&db->idents, key, n, lcache_hash(key, n));
}

static struct mem_patient *
patient_find(const struct mem_db *db, const char *pid)
{
	size_t n = strlen(pid);

	return tab_get(&db->pids, pid, n, lcache_hash(pid, n));
}

static const char *
ident_value(const struct mem_ident *i)
{
	return i->key + strlen(i->key) + 1;
}

static const char *
f_name(const struct mem_fields *f)
{
	return f->s;
}

static const char *
f_birth(const struct mem_fields *f)
{
	return f->s + f->birth;
}

static const char *
f_phone(const struct mem_fields *f)
{
	return f->s + f->phone;
}

static const char *
f_merged(const struct mem_fields *f)
{
	return f->s + f->merged;
}

static struct mem_fields *
fields_new(const struct registry_patient *p)
{
	const char *v[5] = {p->name ? p->name : "",
	    p->birth_date ? p->birth_date : "", p->phone ? p->phone : "",
	    p->address ? p->address : "", p->merged_into};
	size_t len[5], total = 0;
	struct mem_fields *f;
	char *s;

	for (int i = 0; i < 5; i++)
		total += (len[i] = strlen(v[i])) + 1;
	if ((f = malloc(sizeof(*f) + total)) == NULL)
		return NULL;
	f->sex = p->sex;
	s = f->s;
	for (int i = 0; i < 5; i++) {
		unsigned off = (unsigned)(s - f->s);

		if (i == 1)
			f->birth = off;
		else if (i == 2)
			f->phone = off;
		else if (i == 3)
			f->address = off;
		else if (i == 4)
			f->merged = off;
		memcpy(s, v[i], len[i] + 1);
		s += len[i] + 1;
	}
	return f;
}

static char *
mem_dup(struct registry_arena *a, const char *s)
{
	return registry_arena_strndup(a, s, strlen(s));
}

/* Fill p from a patient; strings in a. -1 when out of memory. */
static int
patient_fill(const struct mem_patient *mp, struct registry_arena *a,
    struct registry_patient *p)
{
	const struct mem_fields *f = mp->f;

	registry_copy(p->id, mp->id, sizeof(p->id));
	p->sex = f->sex;
	p->version = mp->version;
	registry_copy(p->merged_into, f_merged(f), sizeof(p->merged_into));
	if ((p->name = mem_dup(a, f->s)) == NULL ||
	    (p->birth_date = mem_dup(a, f->s + f->birth)) == NULL ||
	    (p->phone = mem_dup(a, f->s + f->phone)) == NULL ||
	    (p->address = mem_dup(a, f->s + f->address)) == NULL)
		return -1;
	return 0;
}

static struct mem_domain *
domain_get(struct mem_db *db, const char *name, int add)
{
	struct mem_domain *d;

	for (size_t i = 0; i < db->ndoms; i++)
		if (strcmp(db->doms[i].name, name) == 0)
			return &db->doms[i];
	if (!add)
		return NULL;
	if ((d = realloc(db->doms, (db->ndoms + 1) * sizeof(*d))) == NULL)
		return NULL;
	db->doms = d;
	d = &db->doms[db->ndoms];
	if ((d->name = strdup(name)) == NULL)
		return NULL;
	d->live = d->durable = 0;
	db->ndoms++;
	return d;
}

static void
domain_count(struct mem_db *db, const struct mem_ident *i, int delta)
{
	struct mem_domain *d = domain_get(db, i->key, delta > 0);

	if (d != NULL)
		d->live += (uint64_t)(int64_t)delta;
	db->identifiers += (uint64_t)(int64_t)delta;
}

static void
patient_count(struct mem_db *db, const struct mem_fields *f, int delta)
{
	if (f_merged(f)[0] == '\0')
		db->patients += (uint64_t)(int64_t)delta;
	else
		db->merged += (uint64_t)(int64_t)delta;
}

/* The key f is filed under in list which, "" for none: a field of f, or
 * made in buf (MATCH_KEY_MAX bytes). */
static const char *
by_key(const struct mem_fields *f, int which, char *buf)
{
	switch (which) {
	case BY_NAME:
		return f_name(f);
	case BY_BIRTH:
		return f_birth(f);
	case BY_SURNAME_YEAR:
		match_key(
		    MATCH_KEY_SURNAME_YEAR, f_name(f), f_birth(f), NULL, buf);
		return buf;
	case BY_PHONE:
		match_key(MATCH_KEY_PHONE, NULL, NULL, f_phone(f), buf);
		return buf;
	default:
		match_key(MATCH_KEY_NAME, f_name(f), NULL, NULL, buf);
		return buf;
	}
}

/* Link p into list which under its key there (none when it has none). */
static int
by_link(struct mem_db *db, struct mem_patient *p, int which)
{
	char buf[MATCH_KEY_MAX];
	const char *key = by_key(p->f, which, buf);
	size_t n = strlen(key);
	uint64_t h = lcache_hash(key, n);
	struct mem_link *l = &p->by[which];
	struct mem_head *hd;

	l->head = NULL;
	if (n == 0)
		return 0;
	if ((hd = tab_get(&db->heads[which], key, n, h)) == NULL) {
		if ((hd = calloc(1, sizeof(*hd) + n + 1)) == NULL)
			return -1;
		hd->k.hash = h;
		hd->k.klen = (uint32_t)n;
		memcpy(hd->key, key, n + 1);
		if (tab_put(&db->heads[which], hd) == -1) {
			free(hd);
			return -1;
		}
	}
	l->prev = NULL;
	l->next = hd->first;
	if (hd->first != NULL)
		hd->first->by[which].prev = p;
	hd->first = p;
	hd->count++;
	l->head = hd;
	return 0;
}

static void
by_unlink(struct mem_patient *p, int which)
{
	struct mem_link *l = &p->by[which];

	if (l->head == NULL)
		return;
	if (l->prev != NULL)
		l->prev->by[which].next = l->next;
	else
		l->head->first = l->next;
	if (l->next != NULL)
		l->next->by[which].prev = l->prev;
	l->head->count--;
	l->head = NULL;
}

static void
owner_link(struct mem_ident *i, struct mem_patient *p)
{
	i->owner = p;
	i->next = p->idents;
	p->idents = i;
}

static void
owner_unlink(struct mem_ident *i)
{
	struct mem_ident **pp;

	for (pp = &i->owner->idents; *pp != NULL; pp = &(*pp)->next)
		if (*pp == i) {
			*pp = i->next;
			break;
		}
	i->next = NULL;
}

/* Position of the first patient with an id above after (or at, eq). */
static size_t
order_find(const struct mem_db *db, const char *id, int eq)
{
	size_t lo = 0, hi = db->norder;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(db->order[mid]->id, id);

		if (c < 0 || (c == 0 && !eq))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int
order_add(struct mem_db *db, struct mem_patient *p)
{
	size_t at;

	if (db->norder == db->order_cap) {
		size_t cap = db->order_cap ? db->order_cap * 2 : 4096;
		struct mem_patient **o = realloc(db->order, cap * sizeof(*o));

		if (o == NULL)
			return -1;
		db->order = o;
		db->order_cap = cap;
	}
	/* New ids start with the time: nearly always the end. */
	if (db->norder == 0 || strcmp(db->order[db->norder - 1]->id, p->id) < 0)
		at = db->norder;
	else
		at = order_find(db, p->id, 1);
	memmove(db->order + at + 1, db->order + at,
	    (db->norder - at) * sizeof(*db->order));
	db->order[at] = p;
	db->norder++;
	return 0;
}

static void
order_del(struct mem_db *db, struct mem_patient *p)
{
	size_t at = order_find(db, p->id, 1);

	if (at < db->norder && db->order[at] == p) {
		memmove(db->order + at, db->order + at + 1,
		    (db->norder - at - 1) * sizeof(*db->order));
		db->norder--;
	}
}

/* Make a patient from a row and index it. NULL when out of memory. */
static struct mem_patient *
patient_add(struct mem_db *db, const struct registry_patient *row)
{
	size_t n = strlen(row->id);
	struct mem_patient *p = calloc(1, sizeof(*p) + n + 1);

	if (p == NULL || (p->f = fields_new(row)) == NULL)
		goto fail;
	memcpy(p->id, row->id, n + 1);
	p->k.hash = lcache_hash(p->id, n);
	p->k.klen = (uint32_t)n;
	p->version = row->version;
	p->stamp = db->stamp;
	if (tab_put(&db->pids, p) == -1)
		goto fail;
	if (order_add(db, p) == -1) {
		tab_del(&db->pids, p);
		goto fail;
	}
	for (int w = 0; w < BY_MAX; w++)
		if (by_link(db, p, w) == -1) {
			while (w-- > 0)
				by_unlink(p, w);
			order_del(db, p);
			tab_del(&db->pids, p);
			goto fail;
		}
	patient_count(db, p->f, 1);
	return p;
fail:
	if (p != NULL)
		free(p->f);
	free(p);
	return NULL;
}

static void
patient_remove(struct mem_db *db, struct mem_patient *p)
{
	patient_count(db, p->f, -1);
	for (int w = 0; w < BY_MAX; w++)
		by_unlink(p, w);
	order_del(db, p);
	tab_del(&db->pids, p);
	free(p->f);
	free(p);
}

/* Give p other fields, keeping its lists right. */
static int
patient_set(struct mem_db *db, struct mem_patient *p, struct mem_fields *f)
{
	struct mem_fields *old = p->f;
	int rename = strcmp(f_name(old), f_name(f)) != 0,
	    rebirth = strcmp(f_birth(old), f_birth(f)) != 0,
	    rephone = strcmp(f_phone(old), f_phone(f)) != 0;
	int moved[BY_MAX] = {
	    [BY_NAME] = rename,
	    [BY_BIRTH] = rebirth,
	    [BY_SURNAME_YEAR] = rename || rebirth,
	    [BY_PHONE] = rephone,
	    [BY_PINYIN] = rename,
	};
	int rc = 0;

	for (int w = 0; w < BY_MAX; w++)
		if (moved[w])
			by_unlink(p, w);
	patient_count(db, old, -1);
	p->f = f;
	patient_count(db, f, 1);
	for (int w = 0; w < BY_MAX; w++)
		if (moved[w] && by_link(db, p, w) == -1)
			rc = -1;
	return rc;
}

static struct mem_ident *
ident_add(struct mem_db *db, const char *domain, const char *value,
    struct mem_patient *owner)
{
	size_t d = strlen(domain), v = strlen(value);
	struct mem_ident *i = calloc(1, sizeof(*i) + d + v + 2);

	if (i == NULL)
		return NULL;
	ident_keybuf(domain, value, i->key, d + v + 2);
	i->k.klen = (uint32_t)(d + 1 + v);
	i->k.hash = lcache_hash(i->key, i->k.klen);
	i->stamp = db->stamp;
	if (tab_put(&db->idents, i) == -1) {
		free(i);
		return NULL;
	}
	owner_link(i, owner);
	domain_count(db, i, 1);
	return i;
}

static void
ident_remove(struct mem_db *db, struct mem_ident *i)
{
	if (!i->deleted) {
		owner_unlink(i);
		domain_count(db, i, -1);
	}
	tab_del(&db->idents, i);
	free(i);
}

static struct mem_event *
event_add(struct mem_db *db, const struct registry_event *ev)
{
	const char *v[6] = {ev->op, ev->patient_id, ev->actor, ev->detail,
	    ev->other_patient_id, ev->notify};
	const char **to[6];
	size_t len[6], total = 0;
	struct mem_event *e;
	char *s;

	for (int i = 0; i < 6; i++)
		total += (len[i] = strlen(v[i] ? v[i] : "")) + 1;
	if ((e = calloc(1, sizeof(*e) + total)) == NULL)
		return NULL;
	to[0] = &e->op;
	to[1] = &e->pid;
	to[2] = &e->actor;
	to[3] = &e->detail;
	to[4] = &e->other;
	to[5] = &e->notify;
	s = e->s;
	for (int i = 0; i < 6; i++) {
		memcpy(s, v[i] ? v[i] : "", len[i] + 1);
		*to[i] = s;
		s += len[i] + 1;
	}
	e->seq = ev->seq;
	e->stamp = db->stamp;
	e->time_ms = ev->time_ms;
	e->prev = db->ev_last;
	if (db->ev_last != NULL)
		db->ev_last->next = e;
	else
		db->ev_first = e;
	db->ev_last = e;
	if ((e->p = patient_find(db, e->pid)) != NULL) {
		e->pnext = e->p->events;
		if (e->pnext != NULL)
			e->pnext->pprev = e;
		e->p->events = e;
	}
	if (ev->seq > db->last_event)
		db->last_event = ev->seq;
	return e;
}

static void
event_remove(struct mem_db *db, struct mem_event *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		db->ev_first = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		db->ev_last = e->prev;
	if (e->p != NULL) {
		if (e->pprev != NULL)
			e->pprev->pnext = e->pnext;
		else
			e->p->events = e->pnext;
		if (e->pnext != NULL)
			e->pnext->pprev = e->pprev;
	}
	free(e);
}

static struct mem_hosp *
hosp_find(const struct mem_db *db, const char *code)
{
	struct mem_hosp *h;

	for (h = db->hosps; h != NULL; h = h->next)
		if (strcmp(h->code, code) == 0)
			return h;
	return NULL;
}

static struct mem_hosp *
hosp_add(struct mem_db *db, const struct registry_hospital *src)
{
	struct mem_hosp *h = calloc(1, sizeof(*h)), **pp;

	if (h == NULL || (h->code = strdup(src->code)) == NULL ||
	    (h->name = strdup(src->name ? src->name : "")) == NULL) {
		if (h != NULL)
			free(h->code);
		free(h);
		return NULL;
	}
	h->role = src->role;
	h->active = src->active;
	h->stamp = db->stamp;
	for (pp = &db->hosps; *pp != NULL && strcmp((*pp)->code, h->code) < 0;
	     pp = &(*pp)->next)
		;
	h->next = *pp;
	*pp = h;
	return h;
}

static void
hosp_free(struct mem_hosp *h)
{
	free(h->code);
	free(h->name);
	free(h);
}

static void
hosp_remove(struct mem_db *db, struct mem_hosp *h)
{
	struct mem_hosp **pp;

	for (pp = &db->hosps; *pp != NULL; pp = &(*pp)->next)
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	hosp_free(h);
}

static struct mem_merge *
merge_add(struct mem_db *db, int64_t id, const char *survivor,
    const char *duplicate, uint64_t seq, int undone)
{
	struct mem_merge *m;

	if (db->nmerges == db->merges_cap) {
		size_t cap = db->merges_cap ? db->merges_cap * 2 : 64;
		struct mem_merge **v = realloc(db->merges, cap * sizeof(*v));

		if (v == NULL)
			return NULL;
		db->merges = v;
		db->merges_cap = cap;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL ||
	    (m->survivor = strdup(survivor)) == NULL ||
	    (m->duplicate = strdup(duplicate)) == NULL) {
		if (m != NULL)
			free(m->survivor);
		free(m);
		return NULL;
	}
	m->id = id;
	m->seq = seq;
	m->undone = undone;
	db->merges[db->nmerges++] = m;
	if (id > db->last_merge)
		db->last_merge = id;
	return m;
}

static void
merge_free(struct mem_merge *m)
{
	for (size_t i = 0; i < m->nidents; i++)
		free(m->idents[i]);
	free(m->idents);
	free(m->survivor);
	free(m->duplicate);
	free(m);
}

static struct mem_merge *
merge_by_id(const struct mem_db *db, int64_t id)
{
	for (size_t i = db->nmerges; i-- > 0;)
		if (db->merges[i]->id == id)
			return db->merges[i];
	return NULL;
}

static int
merge_ident_add(struct mem_merge *m, const char *domain, const char *value)
{
	size_t d = strlen(domain), v = strlen(value);
	char *s;

	if (m->nidents == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 8;
		char **n = realloc(m->idents, cap * sizeof(*n));

		if (n == NULL)
			return -1;
		m->idents = n;
		m->cap = cap;
	}
	if ((s = malloc(d + v + 2)) == NULL)
		return -1;
	ident_keybuf(domain, value, s, d + v + 2);
	m->idents[m->nidents++] = s;
	return 0;
}

/* --- The worklist's pairs -------------------------------------------- */

static uint64_t
pair_hash(const char *a, const char *b)
{
	uint64_t h = 1469598103934665603ull;

	for (; *a; a++)
		h = (h ^ (unsigned char)*a) * 1099511628211ull;
	h = (h ^ 0xff) * 1099511628211ull;
	for (; *b; b++)
		h = (h ^ (unsigned char)*b) * 1099511628211ull;
	return h;
}

/* File pair index i under its (a, b); the table has room. */
static void
pair_slot_put(struct mem_db *db, size_t i)
{
	size_t k = pair_hash(db->pairs[i]->a, db->pairs[i]->b) & db->pair_mask;

	while (db->pair_slot[k] != 0)
		k = (k + 1) & db->pair_mask;
	db->pair_slot[k] = i + 1;
}

/* Build the (a, b) table again for npairs, at most half full. -1: no
 * memory (the old table stays). */
static int
pair_rehash(struct mem_db *db, size_t want)
{
	size_t cap = 64, *v;

	while (cap < want * 2)
		cap *= 2;
	if (db->pair_slot != NULL && cap <= db->pair_mask + 1) {
		memset(db->pair_slot, 0, (db->pair_mask + 1) * sizeof(size_t));
	} else {
		if ((v = calloc(cap, sizeof(*v))) == NULL)
			return -1;
		free(db->pair_slot);
		db->pair_slot = v;
		db->pair_mask = cap - 1;
	}
	for (size_t i = 0; i < db->npairs; i++)
		pair_slot_put(db, i);
	return 0;
}

static struct mem_pair *
pair_by_ab(const struct mem_db *db, const char *a, const char *b)
{
	size_t k;

	if (db->pair_slot == NULL)
		return NULL;
	for (k = pair_hash(a, b) & db->pair_mask; db->pair_slot[k] != 0;
	     k = (k + 1) & db->pair_mask) {
		struct mem_pair *p = db->pairs[db->pair_slot[k] - 1];

		if (strcmp(p->a, a) == 0 && strcmp(p->b, b) == 0)
			return p;
	}
	return NULL;
}

static struct mem_pair *
pair_by_id(const struct mem_db *db, int64_t id)
{
	if (id >= 1 && (size_t)id <= db->npairs && db->pairs[id - 1]->id == id)
		return db->pairs[id - 1];
	for (size_t i = 0; i < db->npairs; i++)
		if (db->pairs[i]->id == id)
			return db->pairs[i];
	return NULL;
}

/* Add a pair (its id set); NULL when out of memory. */
static struct mem_pair *
pair_add(struct mem_db *db, const struct registry_pair *pr)
{
	const char *why = pr->reason ? pr->reason : "";
	struct mem_pair *p;

	if (db->npairs == db->pairs_cap) {
		size_t cap = db->pairs_cap ? db->pairs_cap * 2 : 64;
		struct mem_pair **v = realloc(db->pairs, cap * sizeof(*v));

		if (v == NULL)
			return NULL;
		db->pairs = v;
		db->pairs_cap = cap;
	}
	if ((db->npairs + 1) * 2 > (db->pair_slot ? db->pair_mask + 1 : 0) &&
	    pair_rehash(db, db->npairs + 1) == -1)
		return NULL;
	if ((p = malloc(sizeof(*p) + strlen(why) + 1)) == NULL)
		return NULL;
	p->id = pr->id;
	p->found_ms = pr->found_ms;
	p->score = pr->score;
	p->grade = pr->grade;
	p->state = pr->state;
	registry_copy(p->a, pr->a, sizeof(p->a));
	registry_copy(p->b, pr->b, sizeof(p->b));
	strcpy(p->reason, why);
	db->pairs[db->npairs++] = p;
	pair_slot_put(db, db->npairs - 1);
	return p;
}

/* A pair as a row (strings point into the pair). */
static void
pair_row(const struct mem_pair *p, struct registry_pair *out)
{
	out->id = p->id;
	registry_copy(out->a, p->a, sizeof(out->a));
	registry_copy(out->b, p->b, sizeof(out->b));
	out->score = p->score;
	out->grade = p->grade;
	out->reason = p->reason;
	out->state = p->state;
	out->found_ms = p->found_ms;
}

/* --- The writer's journal --------------------------------------------- */

static struct mem_jrec *
journal(struct mem_db *db, int type, void *obj)
{
	struct mem_jrec *j;

	if (!db->in_txn)
		return NULL; /* loading or replaying: nothing to undo */
	if (db->njr == db->jr_cap) {
		size_t cap = db->jr_cap ? db->jr_cap * 2 : 256;
		struct mem_jrec *n = realloc(db->jr, cap * sizeof(*n));

		if (n == NULL)
			return NULL;
		db->jr = n;
		db->jr_cap = cap;
	}
	j = &db->jr[db->njr++];
	memset(j, 0, sizeof(*j));
	j->type = type;
	j->obj = obj;
	return j;
}

/* Undo one change (under the write lock). */
static void
journal_undo(struct mem_db *db, struct mem_jrec *j)
{
	struct mem_ident *i;
	struct mem_patient *p;
	struct mem_fields *cur;
	struct mem_hosp *h;
	struct mem_merge *m;

	switch (j->type) {
	case J_IDENT_NEW:
		ident_remove(db, j->obj);
		break;
	case J_IDENT_SET:
		i = j->obj;
		if (!i->deleted) {
			owner_unlink(i);
			domain_count(db, i, -1);
		}
		i->deleted = j->flag;
		i->stamp = j->stamp;
		if (!i->deleted) {
			owner_link(i, j->old);
			domain_count(db, i, 1);
		} else
			i->owner = j->old;
		break;
	case J_PATIENT_NEW:
		patient_remove(db, j->obj);
		break;
	case J_PATIENT_SET:
		p = j->obj;
		/* Later changes are undone first: p->f is this one's. */
		cur = p->f;
		(void)patient_set(db, p, j->old);
		free(cur);
		p->version = j->version;
		p->stamp = j->stamp;
		break;
	case J_EVENT:
		db->last_event = ((struct mem_event *)j->obj)->seq - 1;
		event_remove(db, j->obj);
		break;
	case J_HOSP_NEW:
		hosp_remove(db, j->obj);
		break;
	case J_HOSP_SET:
		h = j->obj;
		free(h->name);
		h->name = j->old;
		h->role = j->role;
		h->active = j->flag;
		h->stamp = j->stamp;
		break;
	case J_MERGE_NEW:
		m = j->obj;
		db->nmerges--;
		db->last_merge = m->id - 1;
		merge_free(m);
		break;
	case J_MERGE_IDENT:
		m = j->obj;
		free(m->idents[--m->nidents]);
		break;
	case J_PATIENT_STAMP:
		((struct mem_patient *)j->obj)->stamp = j->stamp;
		break;
	case J_MERGE_UNDO:
		((struct mem_merge *)j->obj)->undone = 0;
		break;
	case J_PAIR_NEW:
		free(db->pairs[--db->npairs]);
		(void)pair_rehash(db, db->npairs);
		break;
	case J_PAIR_STATE:
		((struct mem_pair *)j->obj)->state = j->flag;
		break;
	}
}

static void
wrlock(struct mem_db *db)
{
	pthread_rwlock_wrlock(&db->lock);
}

static void
unlock(struct mem_db *db)
{
	pthread_rwlock_unlock(&db->lock);
}

/* Undo the journal back to entry at. */
static void
journal_rollback(struct mem_db *db, size_t at)
{
	wrlock(db);
	while (db->njr > at)
		journal_undo(db, &db->jr[--db->njr]);
	unlock(db);
}

/* What the writer counts becomes what readers may see. */
static void
counts_durable(struct mem_db *db)
{
	db->d_patients = db->patients;
	db->d_merged = db->merged;
	db->d_identifiers = db->identifiers;
	db->durable_event = db->last_event;
	for (size_t k = 0; k < db->ndoms; k++)
		db->doms[k].durable = db->doms[k].live;
}

/* The batch is durable: free what only an undo needed, drop the deleted
 * identifiers and note the counts readers may now see. */
static void
journal_settle(struct mem_db *db)
{
	struct mem_ident *gone = NULL, *i;

	wrlock(db);
	for (size_t k = 0; k < db->njr; k++) {
		struct mem_jrec *j = &db->jr[k];

		if (j->type == J_PATIENT_SET || j->type == J_HOSP_SET)
			free(j->old);
		else if (j->type == J_IDENT_SET && (i = j->obj)->deleted == 1) {
			/* Out of the table, freed once below (a batch may
			 * have more than one record of it). */
			tab_del(&db->idents, i);
			i->deleted = 2;
			i->next = gone;
			gone = i;
		}
	}
	counts_durable(db);
	unlock(db);
	while ((i = gone) != NULL) {
		gone = i->next;
		free(i);
	}
	db->njr = 0;
	db->nmarks = 0;
}

/* Room for n more journal records, so a change is never left unnoted. */
static int
journal_reserve_n(struct mem_db *db, size_t n)
{
	while (db->in_txn && db->njr + n > db->jr_cap) {
		size_t cap = db->jr_cap ? db->jr_cap * 2 : 256;
		struct mem_jrec *v = realloc(db->jr, cap * sizeof(*v));

		if (v == NULL)
			return -1;
		db->jr = v;
		db->jr_cap = cap;
	}
	return 0;
}

static int
journal_reserve(struct mem_db *db)
{
	return journal_reserve_n(db, 1);
}

/*
 * Mark a patient changed by the open batch (its identifiers are about to
 * change): a reader of its record waits for the batch from now on, not only
 * once its row is saved. Under the write lock.
 */
static void
patient_stamp(struct mem_db *db, struct mem_patient *p)
{
	struct mem_jrec *j;

	if (p->stamp == db->stamp)
		return;
	if ((j = journal(db, J_PATIENT_STAMP, p)) != NULL)
		j->stamp = p->stamp;
	p->stamp = db->stamp;
}

#define MEM_LOG(db, ...)                                                       \
	do {                                                                   \
		if ((db)->logging)                                             \
			redo_buf_put(&(db)->rb, __VA_ARGS__);                  \
	} while (0)

/* --- Reading: what readers may see ------------------------------------ */

struct mem_read {
	uint64_t durable, need, gen;
	int writer;
};

static void
read_begin(struct mem_handle *h, struct mem_read *r)
{
	r->need = 0;
	r->writer = h->writer;
	/* The writer too: the fold trims events under the write lock. */
	pthread_rwlock_rdlock(&h->db->lock);
	r->durable =
	    atomic_load_explicit(&h->db->durable_stamp, memory_order_acquire);
	r->gen = atomic_load_explicit(&h->db->batch_gen, memory_order_acquire);
}

/* Is a change with this stamp durable (else note it to wait for)? */
static int
seen(struct mem_read *r, uint64_t stamp)
{
	if (r->writer || stamp <= r->durable)
		return 1;
	if (stamp > r->need)
		r->need = stamp;
	return 0;
}

/* Unlock; 1 when the read met a batch not yet durable: it waited for the
 * batch to end and must be done again. */
static int
read_end(struct mem_handle *h, struct mem_read *r)
{
	struct mem_db *db = h->db;

	pthread_rwlock_unlock(&db->lock);
	if (r->writer || r->need == 0)
		return 0;
	pthread_mutex_lock(&db->vis_mu);
	while (atomic_load(&db->durable_stamp) < r->need &&
	    atomic_load(&db->batch_gen) == r->gen)
		pthread_cond_wait(&db->vis_cv, &db->vis_mu);
	pthread_mutex_unlock(&db->vis_mu);
	return 1;
}

/* A batch ended (durable, or undone): wake the readers waiting on it. */
static void
batch_end(struct mem_db *db, int durable)
{
	pthread_mutex_lock(&db->vis_mu);
	if (durable)
		atomic_store_explicit(
		    &db->durable_stamp, db->stamp, memory_order_release);
	atomic_fetch_add(&db->batch_gen, 1);
	pthread_cond_broadcast(&db->vis_cv);
	pthread_mutex_unlock(&db->vis_mu);
}

static int
ident_cmp(const void *a, const void *b)
{
	const struct mem_ident *x = *(const struct mem_ident *const *)a,
			       *y = *(const struct mem_ident *const *)b;
	int c = strcmp(x->key, y->key);

	return c != 0 ? c : strcmp(ident_value(x), ident_value(y));
}

/* Are p and every identifier it holds durable? */
static int
patient_seen(struct mem_read *r, const struct mem_patient *p)
{
	int ok = seen(r, p->stamp);

	for (const struct mem_ident *i = p->idents; i != NULL; i = i->next)
		ok &= seen(r, i->stamp);
	return ok;
}

/* cb for each of p's identifiers, in domain and value order. */
static int
patient_emit(const struct mem_patient *p, registry_ident_cb cb, void *arg)
{
	const struct mem_ident *local[MEM_IDENTS_LOCAL], **v = local;
	size_t n = 0, cap = MEM_IDENTS_LOCAL;
	int rc = 0;

	for (const struct mem_ident *i = p->idents; i != NULL; i = i->next) {
		if (n == cap) {
			const struct mem_ident **nv =
			    malloc(cap * 2 * sizeof(*nv));

			if (nv == NULL) {
				rc = REGISTRY_EFAIL;
				goto done;
			}
			memcpy(nv, v, n * sizeof(*nv));
			if (v != local)
				free(v);
			v = nv;
			cap *= 2;
		}
		v[n++] = i;
	}
	qsort(v, n, sizeof(*v), ident_cmp);
	for (size_t k = 0; k < n && rc == 0; k++)
		if (cb(arg, v[k]->key, ident_value(v[k])) == -1)
			rc = REGISTRY_EFAIL;
done:
	if (v != local)
		free(v);
	return rc;
}

#define MEM_READ(h, r, rc, expr)                                               \
	do {                                                                   \
		read_begin((h), (r));                                          \
		(rc) = (expr);                                                 \
	} while (read_end((h), (r)))

static int
ident_owner_locked(struct mem_db *db, struct mem_read *r, const char *domain,
    const char *value, char *pid)
{
	struct mem_ident *i = ident_find(db, domain, value);

	if (i == NULL || !seen(r, i->stamp) || i->deleted)
		return 1;
	registry_copy(pid, i->owner->id, REGISTRY_PID_MAX);
	return 0;
}

static int
mem_ident_owner(void *hv, const char *domain, const char *value, char *pid)
{
	struct mem_read r;
	int rc;

	MEM_READ(hv, &r, rc,
	    ident_owner_locked(
		((struct mem_handle *)hv)->db, &r, domain, value, pid));
	return rc;
}

/* The patient behind an identifier and, with cb, its identifiers. */
static int
ident_record_locked(struct mem_db *db, struct mem_read *r, const char *domain,
    const char *value, struct registry_arena *a, struct registry_patient *p,
    registry_ident_cb cb, void *arg)
{
	struct mem_ident *i = ident_find(db, domain, value);

	if (i == NULL || !seen(r, i->stamp) || i->deleted)
		return 1;
	if (!(cb != NULL ? patient_seen(r, i->owner)
			 : seen(r, i->owner->stamp)))
		return 1;
	if (patient_fill(i->owner, a, p) == -1)
		return REGISTRY_EFAIL;
	return cb != NULL ? patient_emit(i->owner, cb, arg) : 0;
}

static int
mem_ident_patient(void *hv, const char *domain, const char *value,
    struct registry_arena *a, struct registry_patient *p)
{
	struct mem_read r;
	int rc;

	MEM_READ(hv, &r, rc,
	    ident_record_locked(((struct mem_handle *)hv)->db, &r, domain,
		value, a, p, NULL, NULL));
	return rc;
}

static int
mem_ident_record(void *hv, const char *domain, const char *value,
    struct registry_arena *a, struct registry_patient *p, registry_ident_cb cb,
    void *arg)
{
	struct mem_read r;
	int rc;

	MEM_READ(hv, &r, rc,
	    ident_record_locked(((struct mem_handle *)hv)->db, &r, domain,
		value, a, p, cb, arg));
	return rc;
}

/* A patient's row (a != NULL) and identifiers (cb != NULL). */
static int
patient_record_locked(struct mem_db *db, struct mem_read *r, const char *pid,
    struct registry_arena *a, struct registry_patient *p, registry_ident_cb cb,
    void *arg)
{
	struct mem_patient *mp = patient_find(db, pid);

	if (mp == NULL)
		return 1;
	if (!(cb != NULL ? patient_seen(r, mp) : seen(r, mp->stamp)))
		return 1;
	if (a != NULL && patient_fill(mp, a, p) == -1)
		return REGISTRY_EFAIL;
	return cb != NULL ? patient_emit(mp, cb, arg) : 0;
}

static int
mem_patient_record(void *hv, const char *pid, struct registry_arena *a,
    struct registry_patient *p, registry_ident_cb cb, void *arg)
{
	struct mem_read r;
	int rc;

	MEM_READ(hv, &r, rc,
	    patient_record_locked(
		((struct mem_handle *)hv)->db, &r, pid, a, p, cb, arg));
	return rc;
}

static int
mem_patient_get(void *hv, const char *pid, struct registry_arena *a,
    struct registry_patient *p)
{
	struct mem_read r;
	int rc;

	MEM_READ(hv, &r, rc,
	    patient_record_locked(
		((struct mem_handle *)hv)->db, &r, pid, a, p, NULL, NULL));
	return rc;
}

static int
mem_patient_idents(void *hv, const char *pid, registry_ident_cb cb, void *arg)
{
	struct mem_read r;
	int rc;

	MEM_READ(hv, &r, rc,
	    patient_record_locked(
		((struct mem_handle *)hv)->db, &r, pid, NULL, NULL, cb, arg));
	/* No such patient holds no identifiers. */
	return rc == 1 ? 0 : rc;
}

static int
live(const struct mem_patient *p)
{
	return f_merged(p->f)[0] == '\0';
}

static int
page_locked(struct mem_db *db, struct mem_read *r, const char *after,
    unsigned limit, registry_pid_cb cb, void *arg)
{
	size_t at = order_find(db, after, 0), end, n = 0;

	for (end = at; end < db->norder && n < limit; end++) {
		if (!seen(r, db->order[end]->stamp))
			return 0;
		n += live(db->order[end]);
	}
	for (; at < end; at++)
		if (live(db->order[at]) && cb(arg, db->order[at]->id) == -1)
			return REGISTRY_EFAIL;
	return 0;
}

static int
mem_patient_page(
    void *hv, const char *after, unsigned limit, registry_pid_cb cb, void *arg)
{
	struct mem_read r;
	int rc;

	MEM_READ(hv, &r, rc,
	    page_locked(
		((struct mem_handle *)hv)->db, &r, after, limit, cb, arg));
	return rc;
}

static int
patient_id_cmp(const void *a, const void *b)
{
	return strcmp((*(const struct mem_patient *const *)a)->id,
	    (*(const struct mem_patient *const *)b)->id);
}

static int
search_locked(struct mem_db *db, struct mem_read *r, const char *name,
    const char *birth, int sex, unsigned limit, registry_pid_cb cb, void *arg)
{
	struct mem_head *hn = NULL, *hb = NULL, *hd;
	struct mem_patient **v = NULL, *p;
	size_t n = 0, cap = 0;
	int which, rc = 0;

	if (name[0] != '\0' &&
	    (hn = tab_get(&db->heads[BY_NAME], name, strlen(name),
		 lcache_hash(name, strlen(name)))) == NULL)
		return 0;
	if (birth[0] != '\0' &&
	    (hb = tab_get(&db->heads[BY_BIRTH], birth, strlen(birth),
		 lcache_hash(birth, strlen(birth)))) == NULL)
		return 0;
	if (hn == NULL && hb == NULL)
		return 0;
	/* Walk the shorter list; the other field is a filter. */
	which = hb != NULL && (hn == NULL || hb->count < hn->count) ? BY_BIRTH
								    : BY_NAME;
	hd = which == BY_BIRTH ? hb : hn;
	for (p = hd->first; p != NULL; p = p->by[which].next) {
		if (!seen(r, p->stamp))
			goto out;
		if (!live(p) || (sex != 0 && p->f->sex != sex) ||
		    (hn != NULL && strcmp(f_name(p->f), name) != 0) ||
		    (hb != NULL && strcmp(f_birth(p->f), birth) != 0))
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			struct mem_patient **nv = realloc(v, nc * sizeof(*nv));

			if (nv == NULL) {
				rc = REGISTRY_EFAIL;
				goto out;
			}
			v = nv;
			cap = nc;
		}
		v[n++] = p;
	}
	if (n > 0)
		qsort(v, n, sizeof(*v), patient_id_cmp);
	for (size_t k = 0; k < n && k < limit; k++)
		if (cb(arg, v[k]->id) == -1) {
			rc = REGISTRY_EFAIL;
			break;
		}
out:
	free(v);
	return rc;
}

static int
mem_patient_search(void *hv, const char *name, const char *birth_date, int sex,
    unsigned limit, registry_pid_cb cb, void *arg)
{
	struct mem_read r;
	int rc;

	MEM_READ(hv, &r, rc,
	    search_locked(((struct mem_handle *)hv)->db, &r, name, birth_date,
		sex, limit, cb, arg));
	return rc;
}

/* A patient gathered by its blocking keys, copied out under the lock. */
struct mem_cand {
	struct registry_patient row;
	char cn_id[19]; /* 18 characters */
};

static int
patient_ptr_cmp(const void *a, const void *b)
{
	const struct mem_patient *x = *(const struct mem_patient *const *)a,
				 *y = *(const struct mem_patient *const *)b;

	return x < y ? -1 : x > y;
}

/*
 * The live patients under any of the keys, each once, at most cap of each
 * list (the newest): *out (the caller frees it) and *nout, strings in a.
 * A patient not yet
 * durable ends the walk (the read waits for its batch and is done again).
 */
static int
candidates_locked(struct mem_db *db, struct mem_read *r,
    const struct registry_block_key *keys, size_t nkeys, unsigned cap,
    unsigned min_keys, struct registry_arena *a, registry_candidate_pre_cb pre,
    void *arg, struct mem_cand **out, size_t *nout)
{
	struct mem_patient **v = NULL, *p;
	struct mem_cand *c;
	size_t n = 0, vcap = 0, k = 0;
	int rc = 0;

	struct mem_patient *cur[MATCH_KEY_KINDS + 1];
	int which[MATCH_KEY_KINDS + 1];
	unsigned walked = 0;
	size_t nw = 0;

	*out = NULL;
	*nout = 0;
	for (size_t i = 0; i < nkeys && nw < MATCH_KEY_KINDS + 1; i++) {
		const char *key = keys[i].key;
		size_t klen = strlen(key);
		struct mem_head *hd;

		if (klen == 0 || keys[i].kind < 0 ||
		    keys[i].kind >= MATCH_KEY_KINDS)
			continue;
		which[nw] = by_block[keys[i].kind];
		if ((hd = tab_get(&db->heads[which[nw]], key, klen,
			 lcache_hash(key, klen))) == NULL)
			continue;
		cur[nw++] = hd->first;
	}
	/*
	 * The lists are walked side by side, a step of each in turn, each
	 * next patient fetched a step ahead: the walk is one cache miss a
	 * patient, and the misses of the lists overlap instead of adding up.
	 */
	for (int more = 1; more && walked < cap; walked++) {
		more = 0;
		for (size_t i = 0; i < nw; i++) {
			if ((p = cur[i]) == NULL)
				continue;
			cur[i] = p->by[which[i]].next;
			if (cur[i] != NULL) {
				__builtin_prefetch(cur[i]);
				more = 1;
			}
			/* The writer sees everything (no walk of each
			 * patient's identifiers per candidate). */
			if (!r->writer && !patient_seen(r, p))
				goto out;
			if (!live(p))
				continue;
			if (n == vcap) {
				size_t nc = vcap ? vcap * 2 : 64;
				struct mem_patient **nv =
				    realloc(v, nc * sizeof(*nv));

				if (nv == NULL) {
					rc = REGISTRY_EFAIL;
					goto out;
				}
				v = nv;
				vcap = nc;
			}
			v[n++] = p;
		}
	}
	if (n == 0)
		goto out;
	qsort(v, n, sizeof(*v), patient_ptr_cmp);
	if ((c = malloc(n * sizeof(*c))) == NULL) {
		rc = REGISTRY_EFAIL;
		goto out;
	}
	*out = c;
	for (size_t i = 0, j; i < n; i = j) {
		/* v[i] .. v[j - 1] are one patient, under j - i keys. */
		for (j = i + 1; j < n && v[j] == v[i]; j++)
			;
		if (j - i < min_keys)
			continue;
		if (pre != NULL &&
		    pre(arg, v[i]->f->sex, v[i]->f->s + v[i]->f->birth,
			v[i]->f->s + v[i]->f->phone) == 0)
			continue;
		if (patient_fill(v[i], a, &c[k].row) == -1) {
			rc = REGISTRY_EFAIL;
			break;
		}
		c[k].cn_id[0] = '\0';
		for (const struct mem_ident *id = v[i]->idents; id != NULL;
		     id = id->next)
			if (!id->deleted && strcmp(id->key, "cn-id") == 0)
				registry_copy(c[k].cn_id, ident_value(id),
				    sizeof(c[k].cn_id));
		k++;
	}
	*nout = k;
out:
	free(v);
	return rc;
}

static int
mem_patient_candidates(void *hv, const struct registry_block_key *keys,
    size_t nkeys, unsigned cap, unsigned min_keys, struct registry_arena *a,
    registry_candidate_pre_cb pre, registry_candidate_cb cb, void *arg)
{
	struct mem_read r;
	struct mem_cand *c = NULL;
	size_t n;
	int rc;

	do {
		free(c); /* a walk that met a batch not yet durable */
		read_begin(hv, &r);
		rc = candidates_locked(((struct mem_handle *)hv)->db, &r, keys,
		    nkeys, cap, min_keys, a, pre, arg, &c, &n);
	} while (read_end(hv, &r));
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (cb(arg, &c[i].row, c[i].cn_id) == -1)
			rc = REGISTRY_EFAIL;
	free(c);
	return rc;
}

/*
 * The blocking index's memory: each patient's links in the lists of
 * matching's keys, the heads (with their keys) and their tables' slots.
 * The heap's own overhead per allocation is left out.
 */
static double
match_index_bytes(const struct mem_db *db)
{
	double bytes = (double)(db->patients + db->merged) * MATCH_KEY_KINDS *
	    sizeof(struct mem_link);

	for (int k = 0; k < MATCH_KEY_KINDS; k++) {
		const struct mem_tab *t = &db->heads[by_block[k]];

		bytes += (double)(t->mask + 1) * sizeof(void *);
		for (size_t i = 0; t->slot != NULL && i <= t->mask; i++)
			if (t->slot[i] != NULL)
				bytes += sizeof(struct mem_head) +
				    strlen(
					((struct mem_head *)t->slot[i])->key) +
				    1;
	}
	return bytes;
}

static int
mem_block_count(void *hv, int kind, const char *key, uint64_t *count)
{
	struct mem_handle *h = hv;
	struct mem_read r;
	struct mem_head *hd;
	size_t klen = strlen(key);

	*count = 0;
	if (kind < 0 || kind >= MATCH_KEY_KINDS || klen == 0)
		return 0;
	read_begin(h, &r);
	hd = tab_get(
	    &h->db->heads[by_block[kind]], key, klen, lcache_hash(key, klen));
	*count = hd != NULL ? hd->count : 0;
	(void)read_end(h, &r); /* a count needs no durable view */
	return 0;
}

static const struct match_model *
mem_model_get(void *hv)
{
	struct mem_model *mm = atomic_load_explicit(
	    &((struct mem_handle *)hv)->db->model, memory_order_acquire);

	return mm != NULL ? &mm->m : NULL;
}

static int
mem_model_set(void *hv, const struct match_model *m)
{
	struct mem_db *db = ((struct mem_handle *)hv)->db;
	struct mem_model *mm = malloc(sizeof(*mm));

	if (mm == NULL)
		return REGISTRY_EFAIL;
	mm->m = *m;
	/* One writer sets it: no other store can race this exchange. */
	mm->older = atomic_load(&db->model);
	atomic_store_explicit(&db->model, mm, memory_order_release);
	return 0;
}

/* History: the unfolded events in memory, then the image's. */
struct mem_hist {
	registry_event_cb cb;
	void *arg;
	unsigned n;
};

static void
event_of(const struct mem_event *e, struct registry_event *ev)
{
	ev->seq = e->seq;
	ev->op = e->op;
	ev->patient_id = e->pid;
	ev->actor = e->actor;
	ev->time_ms = e->time_ms;
	ev->detail = e->detail;
	ev->other_patient_id = e->other;
	ev->notify = e->notify;
}

static int
events_locked(struct mem_db *db, struct mem_read *r, const char *pid,
    unsigned limit, struct mem_hist *hi, uint64_t *upto)
{
	struct mem_patient *p = patient_find(db, pid);
	struct registry_event ev;

	hi->n = 0;
	*upto = db->trimmed_event;
	if (p == NULL)
		return 0;
	for (struct mem_event *e = p->events; e != NULL && hi->n < limit;
	     e = e->pnext) {
		if (!r->writer && e->stamp > r->durable)
			continue; /* not answered yet: not history yet */
		event_of(e, &ev);
		if (hi->cb(hi->arg, &ev) == -1)
			return REGISTRY_EFAIL;
		hi->n++;
	}
	return 0;
}

/*
 * Notifications: the events after a seq, oldest first. Those folded into
 * the image are read there; the rest from memory, up to the last durable
 * one (a read handle never waits for a batch).
 */
struct mem_scan {
	registry_event_cb cb;
	void *arg;
	unsigned n, limit;
	uint64_t last; /* the last seq given to cb */
	int rc;
};

static int
mem_scan_cb(void *arg, const struct registry_event *ev)
{
	struct mem_scan *sc = arg;

	sc->n++;
	sc->last = ev->seq;
	return sc->cb(sc->arg, ev);
}

/* Under the lock: from memory, or how far the image must be read first. */
static int
scan_locked(struct mem_db *db, struct mem_read *r, uint64_t after,
    struct mem_scan *sc, uint64_t *image_upto)
{
	struct mem_event *e;
	struct registry_event ev;

	*image_upto = 0;
	if (after < db->trimmed_event) {
		*image_upto = db->trimmed_event;
		return 0;
	}
	/* Start from the nearer end: subscribers are mostly near the last. */
	if (db->ev_last == NULL || db->ev_last->seq <= after)
		return 0;
	if (db->ev_last->seq - after < after - db->ev_first->seq) {
		e = db->ev_last;
		while (e->prev != NULL && e->prev->seq > after)
			e = e->prev;
	} else
		for (e = db->ev_first; e != NULL && e->seq <= after;)
			e = e->next;
	for (; e != NULL && sc->n < sc->limit; e = e->next) {
		if (!r->writer && e->stamp > r->durable)
			break; /* not answered yet: not an event yet */
		event_of(e, &ev);
		if (mem_scan_cb(sc, &ev) == -1)
			return REGISTRY_EFAIL;
	}
	return 0;
}

/* The image, opened for reading on first use (history, notifications). */
static void *
mem_image(struct mem_handle *h, const char *what)
{
	char err[256];

	if (h->img == NULL &&
	    (h->img = registry_image_reader(h->db->path, err, sizeof(err))) ==
		NULL)
		log_warnx("registry %s: %s: %s", h->db->path, what, err);
	return h->img;
}

static int
mem_event_scan(
    void *hv, uint64_t after, unsigned limit, registry_event_cb cb, void *arg)
{
	struct mem_handle *h = hv;
	struct mem_scan sc = {cb, arg, 0, limit, after, 0};
	struct mem_read r;
	uint64_t upto;
	int rc;

	for (;;) {
		MEM_READ(
		    h, &r, rc, scan_locked(h->db, &r, sc.last, &sc, &upto));
		if (rc != 0 || upto == 0 || sc.n >= limit)
			return rc;
		/* Events up to upto are in the image and stay there. */
		if (mem_image(h, "events") == NULL)
			return REGISTRY_EUNAVAIL;
		rc = registry_image_events_after(
		    h->img, sc.last, upto, limit - sc.n, mem_scan_cb, &sc);
		if (rc != 0 || sc.n >= limit)
			return rc;
		sc.last = upto;
	}
}

static int
mem_event_floor(void *hv, const char *code, uint64_t *floor)
{
	struct mem_handle *h = hv;

	*floor = atomic_load(&h->db->event_floor);
	/* Nothing dropped: no hospital lost anything either. */
	if (code == NULL || *floor == 0)
		return 0;
	if (mem_image(h, "events") == NULL)
		return REGISTRY_EUNAVAIL;
	return registry_image_event_floor(h->img, code, floor);
}

static int
mem_event_list(
    void *hv, const char *pid, unsigned limit, registry_event_cb cb, void *arg)
{
	struct mem_handle *h = hv;
	struct mem_hist hi = {cb, arg, 0};
	struct mem_read r;
	uint64_t upto;
	int rc;

	MEM_READ(h, &r, rc, events_locked(h->db, &r, pid, limit, &hi, &upto));
	if (rc != 0 || hi.n >= limit || upto == 0)
		return rc;
	if (mem_image(h, "history") == NULL)
		return REGISTRY_EUNAVAIL;
	return registry_image_events(h->img, pid, upto, limit - hi.n, cb, arg);
}

static int
hospital_locked(struct mem_db *db, struct mem_read *r, const char *code,
    struct registry_arena *a, struct registry_hospital *out)
{
	struct mem_hosp *h = hosp_find(db, code);

	if (h == NULL || !seen(r, h->stamp))
		return 1;
	out->code = code;
	out->name = NULL;
	if (a != NULL && (out->name = mem_dup(a, h->name)) == NULL)
		return REGISTRY_EFAIL;
	out->role = h->role;
	out->active = h->active;
	return 0;
}

static int
mem_hospital_get(void *hv, const char *code, struct registry_arena *a,
    struct registry_hospital *out)
{
	struct mem_read r;
	int rc;

	MEM_READ(hv, &r, rc,
	    hospital_locked(((struct mem_handle *)hv)->db, &r, code, a, out));
	return rc;
}

static int
hospital_list_locked(
    struct mem_db *db, struct mem_read *r, registry_hospital_cb cb, void *arg)
{
	struct registry_hospital out;

	for (struct mem_hosp *h = db->hosps; h != NULL; h = h->next)
		if (!seen(r, h->stamp))
			return 0;
	for (struct mem_hosp *h = db->hosps; h != NULL; h = h->next) {
		out.code = h->code;
		out.name = h->name;
		out.role = h->role;
		out.active = h->active;
		if (cb(arg, &out) == -1)
			return REGISTRY_EFAIL;
	}
	return 0;
}

static int
mem_hospital_list(void *hv, registry_hospital_cb cb, void *arg)
{
	struct mem_read r;
	int rc;

	MEM_READ(hv, &r, rc,
	    hospital_list_locked(((struct mem_handle *)hv)->db, &r, cb, arg));
	return rc;
}

static int
domain_cmp(const void *a, const void *b)
{
	return strcmp(((const struct mem_domain *)a)->name,
	    ((const struct mem_domain *)b)->name);
}

static int
mem_counts(void *hv, struct registry_counts *c, registry_count_cb cb, void *arg)
{
	struct mem_handle *h = hv;
	struct mem_db *db = h->db;
	struct mem_domain *d;
	size_t n;
	int rc = 0;

	pthread_rwlock_rdlock(&db->lock);
	c->patients = h->writer ? db->patients : db->d_patients;
	c->merged = h->writer ? db->merged : db->d_merged;
	c->identifiers = h->writer ? db->identifiers : db->d_identifiers;
	c->last_seq = h->writer ? db->last_event : db->durable_event;
	if (cb == NULL) {
		/* The totals only: no copy of the domains (the writer asks
		 * after every batch whether to learn the model again). */
		pthread_rwlock_unlock(&db->lock);
		return 0;
	}
	n = db->ndoms;
	if ((d = malloc((n ? n : 1) * sizeof(*d))) != NULL && n > 0)
		memcpy(d, db->doms, n * sizeof(*d));
	pthread_rwlock_unlock(&db->lock);
	if (d == NULL)
		return REGISTRY_EFAIL;
	/* The names are never freed while the registry is open. */
	if (n > 0)
		qsort(d, n, sizeof(*d), domain_cmp);
	for (size_t i = 0; i < n && rc == 0; i++) {
		uint64_t k = h->writer ? d[i].live : d[i].durable;

		if (k > 0 && cb(arg, d[i].name, k) == -1)
			rc = REGISTRY_EFAIL;
	}
	free(d);
	return rc;
}

/* --- Writing (the writer thread) -------------------------------------- */

static int
mem_ident_insert(
    void *hv, const char *domain, const char *value, const char *pid)
{
	struct mem_db *db = ((struct mem_handle *)hv)->db;
	struct mem_patient *owner = patient_find(db, pid);
	struct mem_ident *i = ident_find(db, domain, value);
	struct mem_jrec *j;
	int rc = 0;

	if (owner == NULL || (i != NULL && !i->deleted)) {
		log_warnx("registry: identifier insert: %s",
		    owner == NULL ? "no such patient" : "already there");
		return REGISTRY_EFAIL;
	}
	if (journal_reserve_n(db, 2) == -1)
		return REGISTRY_EFAIL;
	wrlock(db);
	patient_stamp(db, owner);
	if (i != NULL) {
		/* Deleted earlier in this batch: it comes back. */
		if ((j = journal(db, J_IDENT_SET, i)) != NULL) {
			j->old = i->owner;
			j->stamp = i->stamp;
			j->flag = 1;
		}
		i->deleted = 0;
		owner_link(i, owner);
		domain_count(db, i, 1);
		i->stamp = db->stamp;
	} else if ((i = ident_add(db, domain, value, owner)) == NULL)
		rc = REGISTRY_EFAIL;
	else
		journal(db, J_IDENT_NEW, i);
	unlock(db);
	if (rc == 0)
		MEM_LOG(db, REC_IDENT_INSERT, "sss", domain, value, pid);
	return rc;
}

/* Delete (to == NULL) or move an identifier. */
static int
ident_change(struct mem_db *db, const char *domain, const char *value,
    struct mem_patient *to)
{
	struct mem_ident *i = ident_find(db, domain, value);
	struct mem_jrec *j;

	if (i == NULL || i->deleted)
		return 1;
	if (journal_reserve_n(db, 3) == -1)
		return REGISTRY_EFAIL;
	wrlock(db);
	/* Both records change: the one it leaves and the one it joins. */
	patient_stamp(db, i->owner);
	if (to != NULL)
		patient_stamp(db, to);
	if ((j = journal(db, J_IDENT_SET, i)) != NULL) {
		j->old = i->owner;
		j->stamp = i->stamp;
		j->flag = 0;
	}
	owner_unlink(i);
	i->stamp = db->stamp;
	if (to != NULL)
		owner_link(i, to);
	else if (!db->in_txn) {
		/* Replaying: no reader to keep it for. */
		domain_count(db, i, -1);
		tab_del(&db->idents, i);
		free(i);
	} else {
		domain_count(db, i, -1);
		i->deleted = 1;
	}
	unlock(db);
	return 0;
}

static int
mem_ident_delete(void *hv, const char *domain, const char *value)
{
	struct mem_db *db = ((struct mem_handle *)hv)->db;
	int rc = ident_change(db, domain, value, NULL);

	if (rc == 0)
		MEM_LOG(db, REC_IDENT_DELETE, "ss", domain, value);
	return rc < 0 ? rc : 0;
}

static int
mem_ident_move(void *hv, const char *domain, const char *value, const char *pid)
{
	struct mem_db *db = ((struct mem_handle *)hv)->db;
	struct mem_patient *to = patient_find(db, pid);
	int rc;

	if (to == NULL) {
		log_warnx("registry: identifier move: no such patient");
		return REGISTRY_EFAIL;
	}
	if ((rc = ident_change(db, domain, value, to)) == 0)
		MEM_LOG(db, REC_IDENT_MOVE, "sss", domain, value, pid);
	return rc < 0 ? rc : 0;
}

static int
mem_patient_insert(void *hv, const struct registry_patient *p, int64_t now_ms)
{
	struct mem_db *db = ((struct mem_handle *)hv)->db;
	struct mem_patient *mp;

	if (patient_find(db, p->id) != NULL) {
		log_warnx("registry: patient insert: already there");
		return REGISTRY_EFAIL;
	}
	if (journal_reserve(db) == -1)
		return REGISTRY_EFAIL;
	wrlock(db);
	if ((mp = patient_add(db, p)) != NULL)
		journal(db, J_PATIENT_NEW, mp);
	unlock(db);
	if (mp == NULL)
		return REGISTRY_EFAIL;
	MEM_LOG(db, REC_PATIENT_INSERT, "ssisssisi", p->id, p->name,
	    (int64_t)p->sex, p->birth_date, p->phone, p->address,
	    (int64_t)p->version, p->merged_into, (int64_t)now_ms);
	return 0;
}

static int
mem_patient_update(void *hv, const struct registry_patient *p)
{
	struct mem_db *db = ((struct mem_handle *)hv)->db;
	struct mem_patient *mp = patient_find(db, p->id);
	struct mem_fields *f, *old;
	struct mem_jrec *j;
	int rc;

	if (mp == NULL)
		return 0;
	if (journal_reserve(db) == -1 || (f = fields_new(p)) == NULL)
		return REGISTRY_EFAIL;
	wrlock(db);
	old = mp->f;
	if ((j = journal(db, J_PATIENT_SET, mp)) != NULL) {
		j->old = old;
		j->version = mp->version;
		j->stamp = mp->stamp;
	}
	rc = patient_set(db, mp, f);
	if (j == NULL)
		free(old); /* replaying: nothing to undo */
	mp->version = p->version;
	mp->stamp = db->stamp;
	unlock(db);
	if (rc == -1)
		return REGISTRY_EFAIL;
	MEM_LOG(db, REC_PATIENT_UPDATE, "ssisssis", p->id, p->name,
	    (int64_t)p->sex, p->birth_date, p->phone, p->address,
	    (int64_t)p->version, p->merged_into);
	return 0;
}

static int
mem_event_append(void *hv, struct registry_event *ev)
{
	struct mem_db *db = ((struct mem_handle *)hv)->db;
	struct mem_event *e;

	if (journal_reserve(db) == -1)
		return REGISTRY_EFAIL;
	if (ev->seq == 0)
		ev->seq = db->last_event + 1;
	wrlock(db);
	if ((e = event_add(db, ev)) != NULL)
		journal(db, J_EVENT, e);
	unlock(db);
	if (e == NULL)
		return REGISTRY_EFAIL;
	MEM_LOG(db, REC_EVENT_APPEND2, "isssisss", (int64_t)ev->seq, ev->op,
	    ev->patient_id, ev->actor, (int64_t)ev->time_ms, ev->detail,
	    e->other, e->notify);
	return 0;
}

static int
mem_hospital_put(void *hv, const struct registry_hospital *hosp, int64_t now_ms)
{
	struct mem_db *db = ((struct mem_handle *)hv)->db;
	struct mem_hosp *h = hosp_find(db, hosp->code);
	struct mem_jrec *j;
	char *name;
	int rc = 0;

	if (journal_reserve(db) == -1)
		return REGISTRY_EFAIL;
	wrlock(db);
	if (h == NULL) {
		if ((h = hosp_add(db, hosp)) == NULL)
			rc = REGISTRY_EFAIL;
		else
			journal(db, J_HOSP_NEW, h);
	} else if ((name = strdup(hosp->name ? hosp->name : "")) == NULL)
		rc = REGISTRY_EFAIL;
	else {
		if ((j = journal(db, J_HOSP_SET, h)) != NULL) {
			j->old = h->name;
			j->role = h->role;
			j->flag = h->active;
			j->stamp = h->stamp;
		} else
			free(h->name);
		h->name = name;
		h->role = hosp->role;
		h->active = hosp->active;
		h->stamp = db->stamp;
	}
	unlock(db);
	if (rc == 0)
		MEM_LOG(db, REC_HOSPITAL_PUT, "ssiii", hosp->code, hosp->name,
		    (int64_t)hosp->role, (int64_t)hosp->active,
		    (int64_t)now_ms);
	return rc;
}

static int
mem_merge_insert(void *hv, const char *survivor, const char *duplicate,
    uint64_t seq, int64_t *merge_id)
{
	struct mem_db *db = ((struct mem_handle *)hv)->db;
	struct mem_merge *m;

	if (journal_reserve(db) == -1)
		return REGISTRY_EFAIL;
	if (*merge_id <= 0) /* else a replayed merge keeps its id */
		*merge_id = db->last_merge + 1;
	if ((m = merge_add(db, *merge_id, survivor, duplicate, seq, 0)) == NULL)
		return REGISTRY_EFAIL;
	journal(db, J_MERGE_NEW, m);
	MEM_LOG(db, REC_MERGE_INSERT, "issi", (int64_t)*merge_id, survivor,
	    duplicate, (int64_t)seq);
	return 0;
}

static int
mem_merge_ident_insert(
    void *hv, int64_t merge_id, const char *domain, const char *value)
{
	struct mem_db *db = ((struct mem_handle *)hv)->db;
	struct mem_merge *m = merge_by_id(db, merge_id);

	if (m == NULL || journal_reserve(db) == -1 ||
	    merge_ident_add(m, domain, value) == -1)
		return REGISTRY_EFAIL;
	journal(db, J_MERGE_IDENT, m);
	MEM_LOG(db, REC_MERGE_IDENT_INSERT, "iss", (int64_t)merge_id, domain,
	    value);
	return 0;
}

static int
mem_merge_find(
    void *hv, const char *duplicate, int64_t *merge_id, char *survivor)
{
	struct mem_db *db = ((struct mem_handle *)hv)->db;

	for (size_t i = db->nmerges; i-- > 0;) {
		struct mem_merge *m = db->merges[i];

		if (!m->undone && strcmp(m->duplicate, duplicate) == 0) {
			*merge_id = m->id;
			registry_copy(survivor, m->survivor, REGISTRY_PID_MAX);
			return 0;
		}
	}
	return 1;
}

static int
key_cmp(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	int c = strcmp(x, y);

	return c != 0 ? c : strcmp(x + strlen(x) + 1, y + strlen(y) + 1);
}

static int
mem_merge_idents(void *hv, int64_t merge_id, registry_ident_cb cb, void *arg)
{
	struct mem_db *db = ((struct mem_handle *)hv)->db;
	struct mem_merge *m = merge_by_id(db, merge_id);

	if (m == NULL || m->nidents == 0)
		return 0;
	qsort(m->idents, m->nidents, sizeof(*m->idents), key_cmp);
	for (size_t i = 0; i < m->nidents; i++)
		if (cb(arg, m->idents[i],
			m->idents[i] + strlen(m->idents[i]) + 1) == -1)
			return REGISTRY_EFAIL;
	return 0;
}

static int
mem_pair_insert(void *hv, struct registry_pair *pr)
{
	struct mem_db *db = ((struct mem_handle *)hv)->db;
	struct mem_pair *p;
	int64_t bits;

	if (journal_reserve(db) == -1)
		return REGISTRY_EFAIL;
	if (pr->id <= 0) /* else a replayed pair keeps its id */
		pr->id = (int64_t)db->npairs + 1;
	if ((p = pair_add(db, pr)) == NULL)
		return REGISTRY_EFAIL;
	journal(db, J_PAIR_NEW, p);
	memcpy(&bits, &pr->score, sizeof(bits));
	MEM_LOG(db, REC_PAIR_INSERT, "issiisii", pr->id, pr->a, pr->b, bits,
	    (int64_t)pr->grade, pr->reason ? pr->reason : "",
	    (int64_t)pr->state, pr->found_ms);
	return 0;
}

static int
mem_pair_state(void *hv, int64_t id, int state)
{
	struct mem_db *db = ((struct mem_handle *)hv)->db;
	struct mem_pair *p = pair_by_id(db, id);
	struct mem_jrec *j;

	if (p == NULL)
		return 1;
	if (journal_reserve(db) == -1)
		return REGISTRY_EFAIL;
	if ((j = journal(db, J_PAIR_STATE, p)) != NULL)
		j->flag = p->state;
	p->state = state;
	MEM_LOG(db, REC_PAIR_STATE, "ii", id, (int64_t)state);
	return 0;
}

static int
mem_pair_find(void *hv, const char *a, const char *b, struct registry_arena *ar,
    struct registry_pair *out)
{
	struct mem_pair *p = pair_by_ab(((struct mem_handle *)hv)->db, a, b);

	(void)ar;
	if (p == NULL)
		return 1;
	pair_row(p, out);
	return 0;
}

static int
mem_pair_get(
    void *hv, int64_t id, struct registry_arena *ar, struct registry_pair *out)
{
	struct mem_pair *p = pair_by_id(((struct mem_handle *)hv)->db, id);

	(void)ar;
	if (p == NULL)
		return 1;
	pair_row(p, out);
	return 0;
}

static int
mem_pair_list(void *hv, registry_pair_cb cb, void *arg)
{
	struct mem_db *db = ((struct mem_handle *)hv)->db;
	struct registry_pair row;

	for (size_t i = 0; i < db->npairs; i++) {
		pair_row(db->pairs[i], &row);
		if (cb(arg, &row) == -1)
			return REGISTRY_EFAIL;
	}
	return 0;
}

static int
mem_merge_undo(void *hv, int64_t merge_id)
{
	struct mem_db *db = ((struct mem_handle *)hv)->db;
	struct mem_merge *m = merge_by_id(db, merge_id);

	if (m == NULL || m->undone)
		return 0;
	if (journal_reserve(db) == -1)
		return REGISTRY_EFAIL;
	journal(db, J_MERGE_UNDO, m);
	m->undone = 1;
	MEM_LOG(db, REC_MERGE_UNDO, "i", (int64_t)merge_id);
	return 0;
}

/* --- Transactions ----------------------------------------------------- */

static int
mem_begin(void *hv, int write)
{
	struct mem_handle *h = hv;
	struct mem_db *db = h->db;

	if (!write || !h->writer)
		return 0; /* a read sees what is durable, call by call */
	if (db->in_txn)
		return REGISTRY_EFAIL;
	db->stamp = atomic_load(&db->durable_stamp) + 1;
	redo_buf_reset(&db->rb);
	db->njr = 0;
	db->nmarks = 0;
	db->in_txn = 1;
	return 0;
}

static int
mem_in_txn(void *hv)
{
	struct mem_handle *h = hv;

	return h->writer && h->db->in_txn;
}

static void
txn_end(struct mem_db *db, int durable)
{
	if (!durable)
		journal_rollback(db, 0);
	else
		journal_settle(db);
	batch_end(db, durable);
	redo_buf_reset(&db->rb);
	db->njr = 0;
	db->nmarks = 0;
	db->in_txn = 0;
}

static int
mem_rollback(void *hv)
{
	struct mem_handle *h = hv;

	if (h->writer && h->db->in_txn)
		txn_end(h->db, 0);
	return 0;
}

static int
mem_savepoint(void *hv)
{
	struct mem_db *db = ((struct mem_handle *)hv)->db;

	if (db->nmarks == REDO_MARKS_MAX || redo_buf_mark(&db->rb) == -1) {
		log_warnx("registry: savepoints nested too deep");
		return REGISTRY_EFAIL;
	}
	db->marks[db->nmarks++] = db->njr;
	return 0;
}

static int
mem_release(void *hv)
{
	struct mem_db *db = ((struct mem_handle *)hv)->db;

	if (db->nmarks > 0) {
		db->nmarks--;
		redo_buf_release(&db->rb);
	}
	return 0;
}

static int
mem_rollback_to(void *hv)
{
	struct mem_db *db = ((struct mem_handle *)hv)->db;

	if (db->nmarks == 0)
		return REGISTRY_EFAIL;
	journal_rollback(db, db->marks[--db->nmarks]);
	redo_buf_rollback(&db->rb);
	return 0;
}

/* Backpressure: wait while the fold is more than the bound behind. */
static void
fold_room(struct mem_db *db, size_t len)
{
	pthread_mutex_lock(&db->fq_mu);
	if (db->unfolded_entries > 0 &&
	    db->unfolded_bytes + len > db->max_unfolded) {
		if (!db->waiting)
			log_warnx("registry %s: %llu bytes not yet folded "
				  "into the image (bound %zu): writes wait",
			    db->path, (unsigned long long)db->unfolded_bytes,
			    db->max_unfolded);
		db->waiting = 1;
		pthread_cond_signal(&db->fq_cv);
		while (db->unfolded_entries > 0 &&
		    db->unfolded_bytes + len > db->max_unfolded)
			pthread_cond_wait(&db->room_cv, &db->fq_mu);
	}
	pthread_mutex_unlock(&db->fq_mu);
}

/*
 * Start the log again once the image holds all of it. Past twice the bound
 * of unfolded bytes the writer waits for that, so the file stays bounded.
 */
static void
log_room(struct mem_db *db)
{
	uint64_t used = redo_used(db->redo), last = redo_last_seq(db->redo);
	int ok;

	if (used < MEM_LOG_RESTART)
		return;
	pthread_mutex_lock(&db->fq_mu);
	if (used >= 2 * (uint64_t)db->max_unfolded + MEM_LOG_RESTART) {
		db->log_wait = 1;
		pthread_cond_signal(&db->fq_cv);
		while (db->folded_seq < last && !db->fold_stop)
			pthread_cond_wait(&db->room_cv, &db->fq_mu);
		db->log_wait = 0;
	}
	ok = db->folded_seq >= last;
	pthread_mutex_unlock(&db->fq_mu);
	if (ok)
		redo_restart(db->redo);
}

static void
fold_push(struct mem_db *db, struct mem_fold *f)
{
	f->next = NULL;
	pthread_mutex_lock(&db->fq_mu);
	if (db->fq_tail != NULL)
		db->fq_tail->next = f;
	else
		db->fq_head = f;
	db->fq_tail = f;
	db->unfolded_bytes += f->len;
	db->unfolded_entries++;
	pthread_cond_signal(&db->fq_cv);
	pthread_mutex_unlock(&db->fq_mu);
}

static struct mem_fold *
fold_item(const uint8_t *p, size_t len)
{
	struct mem_fold *f = malloc(sizeof(*f) + len);

	if (f != NULL) {
		memcpy(f->p, p, len);
		f->len = len;
		clock_gettime(CLOCK_MONOTONIC, &f->at);
	}
	return f;
}

/*
 * Commit: wait for room, append the batch's records to the log and sync
 * them; then the batch is durable, readers see it and the fold gets it.
 */
static int
mem_commit(void *hv)
{
	struct mem_handle *h = hv;
	struct mem_db *db = h->db;
	struct mem_fold *f;

	if (!h->writer || !db->in_txn)
		return 0;
	if (db->rb.len == 0) {
		txn_end(db, 0); /* nothing changed */
		return 0;
	}
	if (db->rb.nomem || (f = fold_item(db->rb.p, db->rb.len)) == NULL) {
		log_warnx("registry: out of memory for the redo records");
		txn_end(db, 0);
		return REGISTRY_EUNAVAIL;
	}
	fold_room(db, f->len);
	log_room(db);
	if (redo_append(db->redo, db->rb.p, db->rb.len) == -1) {
		free(f);
		txn_end(db, 0);
		return REGISTRY_EUNAVAIL;
	}
	f->seq = redo_last_seq(db->redo);
	f->stamp = db->stamp;
	txn_end(db, 1);
	fold_push(db, f);
	return 0;
}

/* --- Replay and load -------------------------------------------------- */

/* Apply one log entry's records to memory (no journal, no records). */
static int
mem_apply(struct mem_db *db, const uint8_t *p, size_t len)
{
	struct mem_handle w = {db, 1, NULL};

	return registry_redo_apply(&registry_mem, &w, p, len);
}

/* Start-up: a synced entry the image does not hold yet. */
static int
replay_entry(void *arg, uint64_t seq, const uint8_t *p, size_t len)
{
	struct mem_db *db = arg;
	struct mem_fold *f;

	db->stamp = atomic_load(&db->durable_stamp) + 1;
	if ((f = fold_item(p, len)) == NULL)
		return -1;
	if (mem_apply(db, p, len) != 0) {
		free(f);
		return -1;
	}
	f->seq = seq;
	f->stamp = db->stamp;
	atomic_store(&db->durable_stamp, db->stamp);
	fold_push(db, f);
	return 0;
}

static int
load_patient(void *arg, const struct registry_patient *p)
{
	return patient_add(arg, p) != NULL ? 0 : -1;
}

static int
load_ident(void *arg, const char *domain, const char *value, const char *pid)
{
	struct mem_db *db = arg;
	struct mem_patient *owner = patient_find(db, pid);

	if (owner == NULL) {
		log_warnx("registry %s: an identifier of %s, which is not a "
			  "patient: left out",
		    db->path, pid);
		return 0;
	}
	return ident_add(db, domain, value, owner) != NULL ? 0 : -1;
}

static int
load_hospital(void *arg, const struct registry_hospital *h)
{
	return hosp_add(arg, h) != NULL ? 0 : -1;
}

static int
load_merge(void *arg, int64_t id, const char *survivor, const char *duplicate,
    uint64_t seq, int undone)
{
	return merge_add(arg, id, survivor, duplicate, seq, undone) != NULL
	    ? 0
	    : -1;
}

static int
load_merge_ident(
    void *arg, int64_t merge_id, const char *domain, const char *value)
{
	struct mem_merge *m = merge_by_id(arg, merge_id);

	return m == NULL || merge_ident_add(m, domain, value) == 0 ? 0 : -1;
}

static int
load_pair(void *arg, const struct registry_pair *pr)
{
	return pair_add(arg, pr) != NULL ? 0 : -1;
}

static const struct registry_image_sink mem_sink = {
    .patient = load_patient,
    .ident = load_ident,
    .hospital = load_hospital,
    .merge = load_merge,
    .merge_ident = load_merge_ident,
    .pair = load_pair,
};

/* --- The fold --------------------------------------------------------- */

static double
since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) +
	    (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* Tests: hold the fold while the file named by ONECARD_TEST_FOLD_HOLD is
 * there (a fold kept behind, as on a slow or full disk). */
static int
fold_held(struct mem_db *db)
{
	return db->hold != NULL && access(db->hold, F_OK) == 0;
}

static double
until(const struct timespec *t)
{
	return -since(t);
}

/*
 * Retention: at most once a second, drop the image's oldest events beyond
 * what --event-retention keeps (a batch at a time, so a fold is never held
 * up for long). Subscribers behind the new floor are told so.
 */
static int
fold_prune_due(struct mem_db *db)
{
	return (db->keep_events != 0 || db->keep_ms != 0) &&
	    (db->prune_more || db->pruned_at.tv_sec == 0 ||
		since(&db->pruned_at) >= 1.0);
}

static void
fold_prune(struct mem_db *db)
{
	uint64_t floor, old = atomic_load(&db->event_floor);
	int rc;

	if (!fold_prune_due(db))
		return;
	clock_gettime(CLOCK_MONOTONIC, &db->pruned_at);
	rc = registry_image_prune(
	    db->img, db->keep_events, db->keep_ms, registry_now_ms(), &floor);
	if (rc != 0) {
		if (!db->prune_failing)
			log_warnx("registry %s: cannot drop old events "
				  "(--event-retention); retrying",
			    db->path);
		db->prune_failing = 1;
		return;
	}
	db->prune_failing = 0;
	/* A whole batch went: there may be more to drop at once. */
	db->prune_more = floor >= old + REGISTRY_PRUNE_BATCH;
	atomic_store(&db->event_floor, floor);
}

/*
 * Fold now? When stopping; not before a failed fold's retry time nor while
 * a test holds it; else once MEM_FOLD_MIN_BYTES are queued, the oldest has
 * waited MEM_FOLD_DELAY_MS, or writes wait for it. A fold of many groups
 * writes a page they all changed once (under fq_mu).
 */
static int
fold_ready(struct mem_db *db, const struct timespec *retry_at)
{
	if (db->fq_head == NULL)
		return db->fold_stop || fold_prune_due(db);
	if (db->fold_stop)
		return 1;
	if (until(retry_at) > 0 || fold_held(db))
		return 0;
	return db->waiting || db->log_wait ||
	    db->unfolded_bytes >= MEM_FOLD_MIN_BYTES ||
	    since(&db->fq_head->at) * 1000 >= MEM_FOLD_DELAY_MS;
}

/* Wait (under fq_mu) for a push, a stop, or the next time to look. */
static void
fold_sleep(struct mem_db *db, const struct timespec *retry_at)
{
	struct timespec ts;
	double wait;

	if (db->fq_head == NULL && db->keep_events == 0 && db->keep_ms == 0) {
		pthread_cond_wait(&db->fq_cv, &db->fq_mu);
		return;
	}
	wait =
	    db->fq_head == NULL ? 1.0 - since(&db->pruned_at) : until(retry_at);
	if (wait <= 0)
		wait = fold_held(db)
		    ? 0.02
		    : MEM_FOLD_DELAY_MS / 1000.0 - since(&db->fq_head->at);
	if (wait < 0.001)
		wait = 0.001;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)wait;
	ts.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&db->fq_cv, &db->fq_mu, &ts);
}

static void *
fold_main(void *arg)
{
	struct mem_db *db = arg;
	struct timespec retry_at = {0, 0};

	for (;;) {
		struct mem_fold *first, *last, *f, *next;
		size_t bytes, n;
		int stop, rc;

		pthread_mutex_lock(&db->fq_mu);
		while (!fold_ready(db, &retry_at))
			fold_sleep(db, &retry_at);
		stop = db->fold_stop;
		if ((first = db->fq_head) == NULL && !stop) {
			/* Nothing to fold, but old events to drop. */
			pthread_mutex_unlock(&db->fq_mu);
			fold_prune(db);
			continue;
		}
		if (first == NULL || (stop && db->fold_failing)) {
			pthread_mutex_unlock(&db->fq_mu);
			break;
		}
		bytes = first->len;
		n = 1;
		for (last = first; last->next != NULL &&
		     bytes + last->next->len <= MEM_FOLD_MAX_BYTES;
		     last = last->next, n++)
			bytes += last->next->len;
		pthread_mutex_unlock(&db->fq_mu);

		rc = registry_image_fold_begin(db->img);
		for (f = first; rc == 0; f = f->next) {
			rc = registry_image_fold(db->img, f->p, f->len);
			if (f == last)
				break;
		}
		if (rc == 0)
			rc = registry_image_fold_commit(db->img, last->seq);
		if (rc != 0) {
			registry_image_fold_rollback(db->img);
			pthread_mutex_lock(&db->fq_mu);
			if (!db->fold_failing)
				log_warnx("registry %s: cannot fold the log "
					  "into the image; retrying (nothing "
					  "is lost: the log holds it)",
				    db->path);
			db->fold_failing = 1;
			pthread_mutex_unlock(&db->fq_mu);
			clock_gettime(CLOCK_MONOTONIC, &retry_at);
			retry_at.tv_sec += 1;
			continue;
		}
		pthread_mutex_lock(&db->fq_mu);
		if (db->fold_failing)
			log_info("registry %s: folding again", db->path);
		db->fold_failing = 0;
		db->fq_head = last->next;
		if (db->fq_head == NULL)
			db->fq_tail = NULL;
		db->unfolded_bytes -= bytes;
		db->unfolded_entries -= n;
		db->folded_seq = last->seq;
		db->folded_stamp = last->stamp;
		db->folded_total += n;
		if (db->waiting && db->unfolded_bytes < db->max_unfolded / 2) {
			db->waiting = 0;
			log_info("registry %s: the fold caught up; writes go "
				 "on",
			    db->path);
		}
		pthread_cond_broadcast(&db->room_cv);
		pthread_mutex_unlock(&db->fq_mu);

		/* The image holds these events now: history reads them
		 * there. */
		wrlock(db);
		while (db->ev_first != NULL &&
		    db->ev_first->stamp <= last->stamp) {
			db->trimmed_event = db->ev_first->seq;
			event_remove(db, db->ev_first);
		}
		unlock(db);
		for (f = first;; f = next) {
			next = f->next;
			free(f);
			if (f == last)
				break;
		}
		fold_prune(db);
	}
	return NULL;
}

void
registry_store_stats(struct registry_store_stats *st)
{
	struct mem_db *db;

	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&mem_open_mu);
	if ((db = mem_dbs) != NULL) {
		pthread_mutex_lock(&db->fq_mu);
		st->unfolded_entries = db->unfolded_entries;
		st->unfolded_bytes = db->unfolded_bytes;
		st->max_unfolded = db->max_unfolded;
		st->folded_total = db->folded_total;
		st->fold_failing = db->fold_failing;
		st->writes_waiting = db->waiting;
		st->fold_lag_s =
		    db->fq_head != NULL ? since(&db->fq_head->at) : 0;
		pthread_mutex_unlock(&db->fq_mu);
	}
	pthread_mutex_unlock(&mem_open_mu);
}

/* --- Open and close --------------------------------------------------- */

/* One broker per registry: an exclusive lock on <path>-lock, naming us. */
static int
lock_take(const char *path, char *err, size_t errlen)
{
	char lp[4096], buf[32] = "";
	int fd;
	ssize_t n;

	if (snprintf(lp, sizeof(lp), "%s-lock", path) >= (int)sizeof(lp)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	if ((fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1) {
		snprintf(err, errlen, "%s: %s", lp, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		n = pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		snprintf(err, errlen,
		    "%s: in use by process %s (lock %s); one broker per "
		    "registry",
		    path, buf[0] ? buf : "(unknown)", lp);
		close(fd);
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == -1 || pwrite(fd, buf, (size_t)n, 0) != n)
		log_warn("%s: cannot note this process", lp);
	return fd;
}

static void
db_free(struct mem_db *db)
{
	struct mem_fold *f;
	struct mem_model *mm, *older;

	for (mm = atomic_load(&db->model); mm != NULL; mm = older) {
		older = mm->older;
		free(mm);
	}
	for (size_t i = 0; i <= db->idents.mask && db->idents.slot; i++)
		free(db->idents.slot[i]);
	for (size_t i = 0; i <= db->pids.mask && db->pids.slot; i++) {
		struct mem_patient *p = db->pids.slot[i];

		if (p != NULL)
			free(p->f);
		free(p);
	}
	for (int w = 0; w < BY_MAX; w++) {
		for (size_t i = 0; i <= db->heads[w].mask && db->heads[w].slot;
		     i++)
			free(db->heads[w].slot[i]);
		tab_free(&db->heads[w]);
	}
	tab_free(&db->idents);
	tab_free(&db->pids);
	while (db->ev_first != NULL) {
		struct mem_event *e = db->ev_first;

		db->ev_first = e->next;
		free(e);
	}
	while (db->hosps != NULL) {
		struct mem_hosp *h = db->hosps;

		db->hosps = h->next;
		hosp_free(h);
	}
	for (size_t i = 0; i < db->nmerges; i++)
		merge_free(db->merges[i]);
	free(db->merges);
	for (size_t i = 0; i < db->npairs; i++)
		free(db->pairs[i]);
	free(db->pairs);
	free(db->pair_slot);
	for (size_t i = 0; i < db->ndoms; i++)
		free(db->doms[i].name);
	free(db->doms);
	free(db->order);
	free(db->jr);
	while ((f = db->fq_head) != NULL) {
		db->fq_head = f->next;
		free(f);
	}
	redo_buf_free(&db->rb);
	redo_close(db->redo);
	registry_image_close(db->img);
	if (db->lockfd >= 0)
		close(db->lockfd);
	pthread_rwlock_destroy(&db->lock);
	pthread_mutex_destroy(&db->vis_mu);
	pthread_cond_destroy(&db->vis_cv);
	pthread_mutex_destroy(&db->fq_mu);
	pthread_cond_destroy(&db->fq_cv);
	pthread_cond_destroy(&db->room_cv);
	free(db->path);
	free(db);
}

static struct mem_db *
db_open(const char *path, char *err, size_t errlen)
{
	struct mem_db *db = calloc(1, sizeof(*db));
	pthread_rwlockattr_t attr;
	struct timespec t0, t1;
	uint64_t applied = 0, log_id = 0, max_event = 0, floor = 0, replayed;
	struct mallinfo2 m0, m1;
	double load_s, index_bytes;
	sigset_t all, old;

	if (db == NULL || (db->path = strdup(path)) == NULL) {
		free(db);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	db->lockfd = -1;
	pthread_rwlockattr_init(&attr);
	/* A reader never holds it across calls: the writer goes first. */
	pthread_rwlockattr_setkind_np(
	    &attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&db->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&db->vis_mu, NULL);
	pthread_cond_init(&db->vis_cv, NULL);
	pthread_mutex_init(&db->fq_mu, NULL);
	pthread_cond_init(&db->fq_cv, NULL);
	pthread_cond_init(&db->room_cv, NULL);
	db->max_unfolded = mem_lim.max_unfolded;
	db->keep_events = mem_lim.keep_events;
	db->keep_ms = mem_lim.keep_ms;
	db->hold = getenv("ONECARD_TEST_FOLD_HOLD");
	if (tab_init(&db->idents, 0, ident_key) == -1 ||
	    tab_init(&db->pids, 0, patient_key) == -1) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (int w = 0; w < BY_MAX; w++)
		if (tab_init(&db->heads[w], 0, head_key) == -1) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((db->lockfd = lock_take(path, err, errlen)) == -1 ||
	    (db->img = registry_image_open(path, err, errlen)) == NULL)
		goto fail;
	if (registry_image_state(db->img, &applied, &log_id) == -1) {
		snprintf(err, errlen, "%s: cannot read redo_state", path);
		goto fail;
	}
	if ((db->redo = registry_image_log(path, log_id, err, errlen)) == NULL)
		goto fail;
	if (redo_id(db->redo) != log_id &&
	    registry_image_pair(db->img, redo_id(db->redo)) == -1) {
		snprintf(err, errlen, "%s: cannot note its redo log", path);
		goto fail;
	}
	registry_image_release(db->img);
	m0 = mallinfo2();
	if (registry_image_load(db->img, &mem_sink, db, &max_event,
		&db->last_merge, err, errlen) == -1)
		goto fail;
	db->last_event = db->trimmed_event = max_event;
	if (registry_image_event_floor(db->img, NULL, &floor) != 0) {
		snprintf(err, errlen, "%s: cannot read event_floor", path);
		goto fail;
	}
	atomic_store(&db->event_floor, floor);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	load_s = since(&t0) - since(&t1);
	db->folded_seq = applied;
	if (redo_replay(db->redo, applied, replay_entry, db, err, errlen) == -1)
		goto fail;
	replayed = db->unfolded_entries;
	/* What the index took: the heap grown by the load and the replay,
	 * less SQLite's page cache (given back first) and the replayed
	 * entries waiting for the fold. */
	registry_image_release(db->img);
	m1 = mallinfo2();
	index_bytes = (double)m1.uordblks - (double)m0.uordblks -
	    (double)db->unfolded_bytes -
	    (double)db->unfolded_entries * sizeof(struct mem_fold);
	counts_durable(db);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (pthread_create(&db->fold_thread, NULL, fold_main, db) != 0) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		snprintf(err, errlen, "cannot start the fold thread");
		goto fail;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	db->fold_running = 1;
	db->logging = 1;
	log_info("registry %s: %llu patients, %llu identifiers; image loaded "
		 "in %.2f s, %llu log entries replayed in %.2f s; index "
		 "%.0f MiB, %.0f bytes a patient, of which matching's %.0f",
	    path, (unsigned long long)(db->patients + db->merged),
	    (unsigned long long)db->identifiers, load_s,
	    (unsigned long long)replayed, since(&t1), index_bytes / 1048576,
	    db->patients + db->merged > 0
		? index_bytes / (double)(db->patients + db->merged)
		: 0.0,
	    db->patients + db->merged > 0
		? match_index_bytes(db) / (double)(db->patients + db->merged)
		: 0.0);
	return db;
fail:
	db_free(db);
	return NULL;
}

/* Stop the fold once everything synced is in the image (or it fails). */
static void
db_stop_fold(struct mem_db *db)
{
	if (!db->fold_running)
		return;
	pthread_mutex_lock(&db->fq_mu);
	db->fold_stop = 1;
	pthread_cond_broadcast(&db->fq_cv);
	pthread_cond_broadcast(&db->room_cv);
	pthread_mutex_unlock(&db->fq_mu);
	pthread_join(db->fold_thread, NULL);
	db->fold_running = 0;
	if (db->fq_head == NULL && db->folded_seq == redo_last_seq(db->redo))
		redo_restart(db->redo);
}

static void *
mem_open(const char *path, int writer, char *err, size_t errlen)
{
	struct mem_handle *h = calloc(1, sizeof(*h));
	struct mem_db *db;

	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_lock(&mem_open_mu);
	for (db = mem_dbs; db != NULL; db = db->next)
		if (strcmp(db->path, path) == 0)
			break;
	if (writer && db != NULL) {
		snprintf(err, errlen, "%s: already open for writing", path);
		goto fail;
	}
	if (!writer && db == NULL) {
		snprintf(err, errlen,
		    "%s: not open for writing in this process", path);
		goto fail;
	}
	/* As SQLite would: no reader on a registry whose file is gone. */
	if (!writer && access(path, F_OK) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (writer) {
		if ((db = db_open(path, err, errlen)) == NULL)
			goto fail;
		db->next = mem_dbs;
		mem_dbs = db;
	}
	db->refs++;
	pthread_mutex_unlock(&mem_open_mu);
	h->db = db;
	h->writer = writer;
	return h;
fail:
	pthread_mutex_unlock(&mem_open_mu);
	free(h);
	return NULL;
}

static void
mem_close(void *hv)
{
	struct mem_handle *h = hv;
	struct mem_db *db, **pp;

	if (h == NULL)
		return;
	db = h->db;
	if (h->img != NULL)
		registry_image_close(h->img);
	if (h->writer) {
		if (db->in_txn)
			txn_end(db, 0);
		db_stop_fold(db);
	}
	pthread_mutex_lock(&mem_open_mu);
	if (--db->refs == 0) {
		for (pp = &mem_dbs; *pp != NULL; pp = &(*pp)->next)
			if (*pp == db) {
				*pp = db->next;
				break;
			}
		db_free(db);
	}
	pthread_mutex_unlock(&mem_open_mu);
	free(h);
}

static int
mem_ping(void *hv)
{
	struct mem_db *db = ((struct mem_handle *)hv)->db;
	int ok;

	pthread_mutex_lock(&db->fq_mu);
	ok = db->fold_running && !db->fold_stop;
	pthread_mutex_unlock(&db->fq_mu);
	/* The image a restart would load must be there. */
	if (ok && access(db->path, F_OK) == -1)
		ok = 0;
	return ok ? 0 : REGISTRY_EUNAVAIL;
}

const struct registry_backend registry_mem = {
    .name = "sqlite",
    .open = mem_open,
    .close = mem_close,
    .ping = mem_ping,
    .begin = mem_begin,
    .in_txn = mem_in_txn,
    .commit = mem_commit,
    .rollback = mem_rollback,
    .savepoint = mem_savepoint,
    .release = mem_release,
    .rollback_to = mem_rollback_to,
    .ident_owner = mem_ident_owner,
    .ident_patient = mem_ident_patient,
    .ident_record = mem_ident_record,
    .patient_record = mem_patient_record,
    .ident_insert = mem_ident_insert,
    .ident_delete = mem_ident_delete,
    .ident_move = mem_ident_move,
    .patient_idents = mem_patient_idents,
    .patient_get = mem_patient_get,
    .patient_insert = mem_patient_insert,
    .patient_update = mem_patient_update,
    .patient_page = mem_patient_page,
    .patient_search = mem_patient_search,
    .patient_candidates = mem_patient_candidates,
    .block_count = mem_block_count,
    .model_get = mem_model_get,
    .model_set = mem_model_set,
    .event_append = mem_event_append,
    .event_list = mem_event_list,
    .event_scan = mem_event_scan,
    .event_floor = mem_event_floor,
    .hospital_get = mem_hospital_get,
    .hospital_put = mem_hospital_put,
    .hospital_list = mem_hospital_list,
    .merge_insert = mem_merge_insert,
    .merge_ident_insert = mem_merge_ident_insert,
    .merge_find = mem_merge_find,
    .merge_idents = mem_merge_idents,
    .merge_undo = mem_merge_undo,
    .pair_insert = mem_pair_insert,
    .pair_state = mem_pair_state,
    .pair_find = mem_pair_find,
    .pair_get = mem_pair_get,
    .pair_list = mem_pair_list,
    .counts = mem_counts,
};
