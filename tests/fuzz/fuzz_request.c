/*
 * fuzz_request.c: arbitrary frames through request validation and dispatch,
 * against a real SQLite registry, the way a broker worker and its writer run
 * them.
 *
 * The first byte of an input picks who asks (admin, hospital H1 or H2); the
 * rest is a byte stream of frames. Each frame the broker would pass on (it
 * unpacks under the broker's memory cap, has an op and a non-zero id) goes
 * to registry.h exactly as conn.c and writer.c send it: a run of writes is
 * one batch (registry_batch_begin, registry_write each, commit), a read goes
 * to the read handle with registry_read. Every answer must be one Reply
 * frame with the request's id, a known code that is not INTERNAL, the
 * result its operation promises on OK, and an audit target with no full
 * cn-id; a lookup must answer, byte for byte, what a read handle without a
 * lookup cache answers, first time and again (so a cached reply is never
 * stale after the input's writes). A broken invariant aborts.
 *
 * The registry lives in /dev/shm (or $TMPDIR) and is put back to the same
 * seeded state before each input, so every crash reproduces from its input
 * alone. The seed state holds hospitals H1 and H2, a few patients with
 * cn-id, cn-ssc and hosp:H1 identifiers, and one merge.
 *
 * Patient ids are random, so no input could name one. A pid the request
 * carries as "$N" (an identifier in the pid domain, unmerge.patient_id,
 * export.after_patient_id) is swapped for the N-th patient id seen so far:
 * the seed's, then those in replies of the same input.
 */
#include <sys/stat.h>

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "registry.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir[256];
static char fuzz_seed_db[320];
static char fuzz_work_db[320];
static struct registry_limits fuzz_lim;
static int fuzz_verbose; /* FUZZ_VERBOSE=1: print each op and its code */

#define FUZZ_MAX_PIDS 32
static char fuzz_pids[FUZZ_MAX_PIDS][48]; /* patient ids seen, in order */
static size_t fuzz_npids, fuzz_seed_npids;

/* Fail loudly: libFuzzer and ASan both report an abort with its stack. */
static void
fuzz_check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_request: invariant broken: %s\n", what);
		abort();
	}
}

/* Remove a registry file and its WAL companions. */
static void
fuzz_db_remove(const char *path)
{
	char p[400];

	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-journal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-redo", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-redo.orphan", path);
	unlink(p);
}

/* Copy a whole file; 0 or -1. */
static int
fuzz_copy(const char *from, const char *to)
{
	char buf[65536];
	ssize_t n;
	int in, out, rc = 0;

	if ((in = open(from, O_RDONLY)) == -1)
		return -1;
	if ((out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1) {
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			rc = -1;
			break;
		}
	if (n < 0)
		rc = -1;
	close(in);
	close(out);
	return rc;
}

/* Remember a patient id for "$N" placeholders. */
static void
fuzz_pid_seen(const char *pid)
{
	if (pid == NULL || pid[0] == '\0' || fuzz_npids == FUZZ_MAX_PIDS)
		return;
	for (size_t i = 0; i < fuzz_npids; i++)
		if (strcmp(fuzz_pids[i], pid) == 0)
			return;
	snprintf(fuzz_pids[fuzz_npids++], sizeof(fuzz_pids[0]), "%s", pid);
}

/* Remember the patient ids a reply names. */
static void
fuzz_reply_pids(const Onecard__V1__Reply *reply)
{
	if (reply->result_case == ONECARD__V1__REPLY__RESULT_PATIENT &&
	    reply->patient != NULL) {
		fuzz_pid_seen(reply->patient->patient_id);
		fuzz_pid_seen(reply->patient->merged_into);
	} else if (reply->result_case == ONECARD__V1__REPLY__RESULT_ENROLLED &&
	    reply->enrolled != NULL && reply->enrolled->patient != NULL)
		fuzz_pid_seen(reply->enrolled->patient->patient_id);
	else if (reply->result_case == ONECARD__V1__REPLY__RESULT_SEARCH &&
	    reply->search != NULL)
		for (size_t i = 0; i < reply->search->n_patients; i++)
			fuzz_pid_seen(reply->search->patients[i]->patient_id);
}

/* Apply one write outside the fuzzed path, for the seed state. */
static void
fuzz_seed_write(
    struct registry *reg, const char *cn, int role, Onecard__V1__Request *req)
{
	struct actor who = {cn, role};
	struct op_result res;
	struct evbuffer *out = evbuffer_new();

	fuzz_check(out != NULL, "evbuffer_new");
	fuzz_check(registry_batch_begin(reg) == 0, "seed: batch_begin");
	registry_write(reg, &who, req, out, &res);
	fuzz_check(res.code == ONECARD__V1__CODE__OK, "seed: write not OK");
	fuzz_check(registry_batch_commit(reg) == 0, "seed: commit");
	fuzz_pid_seen(res.patient_id);
	evbuffer_free(out);
}

/* Enroll one patient as H1 with up to three identifiers (NULL: none). */
static void
fuzz_seed_patient(struct registry *reg, const char *name, const char *birth,
    int sex, const char *cnid, const char *ssc, const char *mrn)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Enroll en = ONECARD__V1__ENROLL__INIT;
	Onecard__V1__Demographics demo = ONECARD__V1__DEMOGRAPHICS__INIT;
	Onecard__V1__Identifier ids[3], *idp[3];
	const char *dom[3] = {"cn-id", "cn-ssc", "hosp:H1"};
	const char *val[3] = {cnid, ssc, mrn};
	size_t n = 0;

	for (int i = 0; i < 3; i++) {
		if (val[i] == NULL)
			continue;
		onecard__v1__identifier__init(&ids[n]);
		ids[n].domain = (char *)dom[i];
		ids[n].value = (char *)val[i];
		idp[n] = &ids[n];
		n++;
	}
	demo.name = (char *)name;
	demo.birth_date = (char *)birth;
	demo.sex = sex;
	en.demographics = &demo;
	en.identifiers = idp;
	en.n_identifiers = n;
	req.id = 1;
	req.op_case = ONECARD__V1__REQUEST__OP_ENROLL;
	req.enroll = &en;
	fuzz_seed_write(reg, "H1", ONECARD__V1__ROLE__ROLE_HOSPITAL, &req);
}

/* Make the seed registry once: hospitals, patients, a merge. */
static void
fuzz_seed(void)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__HospitalAdd ha = ONECARD__V1__HOSPITAL_ADD__INIT;
	Onecard__V1__Merge mg = ONECARD__V1__MERGE__INIT;
	Onecard__V1__Identifier a = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Identifier b = ONECARD__V1__IDENTIFIER__INIT;
	struct registry *reg;
	const char *base = getenv("TMPDIR");
	char err[256];

	if (access("/dev/shm", W_OK) == 0)
		base = "/dev/shm";
	else if (base == NULL)
		base = "/tmp";
	snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/onecard-fuzz-request-%ld",
	    base, (long)getpid());
	mkdir(fuzz_dir, 0700);
	snprintf(fuzz_seed_db, sizeof(fuzz_seed_db), "%s/seed.db", fuzz_dir);
	snprintf(fuzz_work_db, sizeof(fuzz_work_db), "%s/work.db", fuzz_dir);
	fuzz_db_remove(fuzz_seed_db);
	registry_limits_default(&fuzz_lim);
	/* A small lookup cache, so inputs reach its eviction too. */
	fuzz_lim.lookup_cache = 1 << 16;

	reg = registry_open(fuzz_seed_db, 1, &fuzz_lim, err, sizeof(err));
	if (reg == NULL) {
		fprintf(stderr, "fuzz_request: %s\n", err);
		abort();
	}
	req.id = 1;
	req.op_case = ONECARD__V1__REQUEST__OP_HOSPITAL_ADD;
	req.hospital_add = &ha;
	ha.code = "H1";
	ha.name = "First Hospital";
	fuzz_seed_write(reg, "admin", ONECARD__V1__ROLE__ROLE_ADMIN, &req);
	ha.code = "H2";
	ha.name = "Second Hospital";
	fuzz_seed_write(reg, "admin", ONECARD__V1__ROLE__ROLE_ADMIN, &req);

	fuzz_seed_patient(reg, "Zhang Wei", "1990-03-07",
	    ONECARD__V1__SEX__SEX_MALE, "110101199003070011", "SSC001",
	    "MRN-1");
	fuzz_seed_patient(reg, "Li Na", "1985-12-31",
	    ONECARD__V1__SEX__SEX_FEMALE, "44030419851231002X", NULL, "MRN-2");
	fuzz_seed_patient(reg, "Wang Fang", "2001-01-01",
	    ONECARD__V1__SEX__SEX_FEMALE, NULL, "SSC003", "MRN-3");
	fuzz_seed_patient(
	    reg, "Wang Fang", "2001-01-01", 0, NULL, NULL, "MRN-3B");

	/* MRN-3B was the same woman: merge it into MRN-3. */
	a.domain = "hosp:H1";
	a.value = "MRN-3";
	b.domain = "hosp:H1";
	b.value = "MRN-3B";
	mg.survivor = &a;
	mg.duplicate = &b;
	req.op_case = ONECARD__V1__REQUEST__OP_MERGE;
	req.merge = &mg;
	fuzz_seed_write(reg, "admin", ONECARD__V1__ROLE__ROLE_ADMIN, &req);
	/* Fold the WAL into the file so a plain copy is the whole state. */
	registry_close(reg);
	fuzz_seed_npids = fuzz_npids;
}

/* The bytes of req's reply on handle h (malloc'd, *len long). */
static uint8_t *
fuzz_read_bytes(struct registry *h, const struct actor *who,
    const Onecard__V1__Request *req, size_t *len)
{
	struct evbuffer *b = evbuffer_new();
	struct op_result res;
	uint8_t *bytes;

	fuzz_check(b != NULL, "evbuffer_new");
	registry_read(h, who, req, b, &res);
	*len = evbuffer_get_length(b);
	bytes = malloc(*len ? *len : 1);
	fuzz_check(bytes != NULL, "malloc");
	evbuffer_remove(b, bytes, *len);
	evbuffer_free(b);
	return bytes;
}

/*
 * A lookup answered by the read handle (from its cache, or filling it) must
 * be the very bytes a handle without a cache answers, before and after the
 * writes the input ran: a cached reply is never stale. Asked twice, so the
 * second answer is a cache hit whenever the first was cached.
 */
static void
fuzz_lookup_agrees(struct registry *rd, struct registry *plain,
    const struct actor *who, const Onecard__V1__Request *req,
    struct evbuffer *out)
{
	uint8_t *want, *again;
	size_t wlen, alen;

	want = fuzz_read_bytes(plain, who, req, &wlen);
	fuzz_check(evbuffer_get_length(out) == wlen &&
		memcmp(evbuffer_pullup(out, -1), want, wlen) == 0,
	    "a lookup through the cache answers what the registry does");
	again = fuzz_read_bytes(rd, who, req, &alen);
	fuzz_check(alen == wlen && memcmp(again, want, wlen) == 0,
	    "a repeated lookup answers what the registry does");
	free(again);
	free(want);
}

/* Remove the fuzzer's folder at exit. */
static void
fuzz_cleanup(void)
{
	fuzz_db_remove(fuzz_work_db);
	fuzz_db_remove(fuzz_seed_db);
	rmdir(fuzz_dir);
}

/* Collect the cn-id values a request names (at most 16). */
static void
fuzz_cn_ids(const Onecard__V1__Request *req, const char **ids, size_t *n)
{
	const Onecard__V1__Identifier *cand[4] = {NULL, NULL, NULL, NULL};
	size_t k = 0;

	switch (req->op_case) {
	case ONECARD__V1__REQUEST__OP_LOOKUP:
		cand[0] = req->lookup->identifier;
		break;
	case ONECARD__V1__REQUEST__OP_LINK:
		cand[0] = req->link->known;
		cand[1] = req->link->added;
		break;
	case ONECARD__V1__REQUEST__OP_UNLINK:
		cand[0] = req->unlink->identifier;
		break;
	case ONECARD__V1__REQUEST__OP_UPDATE:
		cand[0] = req->update->identifier;
		break;
	case ONECARD__V1__REQUEST__OP_MERGE:
		cand[0] = req->merge->survivor;
		cand[1] = req->merge->duplicate;
		break;
	case ONECARD__V1__REQUEST__OP_HISTORY:
		cand[0] = req->history->identifier;
		break;
	case ONECARD__V1__REQUEST__OP_ENROLL:
		for (size_t i = 0; i < req->enroll->n_identifiers && *n < 16;
		     i++) {
			const Onecard__V1__Identifier *id =
			    req->enroll->identifiers[i];
			if (id->domain != NULL &&
			    strcmp(id->domain, "cn-id") == 0 &&
			    id->value != NULL)
				ids[(*n)++] = id->value;
		}
		return;
	default:
		return;
	}
	for (k = 0; k < 4; k++)
		if (cand[k] != NULL && cand[k]->domain != NULL &&
		    strcmp(cand[k]->domain, "cn-id") == 0 &&
		    cand[k]->value != NULL && *n < 16)
			ids[(*n)++] = cand[k]->value;
}

/* The result an OK reply to this op must carry. */
static int
fuzz_expected_result(int op)
{
	switch (op) {
	case ONECARD__V1__REQUEST__OP_LOOKUP:
	case ONECARD__V1__REQUEST__OP_LINK:
	case ONECARD__V1__REQUEST__OP_UNLINK:
	case ONECARD__V1__REQUEST__OP_UPDATE:
	case ONECARD__V1__REQUEST__OP_MERGE:
	case ONECARD__V1__REQUEST__OP_UNMERGE:
		return ONECARD__V1__REPLY__RESULT_PATIENT;
	case ONECARD__V1__REQUEST__OP_ENROLL:
		return ONECARD__V1__REPLY__RESULT_ENROLLED;
	case ONECARD__V1__REQUEST__OP_SEARCH:
	case ONECARD__V1__REQUEST__OP_EXPORT:
		return ONECARD__V1__REPLY__RESULT_SEARCH;
	case ONECARD__V1__REQUEST__OP_HISTORY:
		return ONECARD__V1__REPLY__RESULT_HISTORY;
	case ONECARD__V1__REQUEST__OP_HOSPITAL_LIST:
		return ONECARD__V1__REPLY__RESULT_HOSPITALS;
	case ONECARD__V1__REQUEST__OP_STATS:
		return ONECARD__V1__REPLY__RESULT_STATS;
	default:
		return -1; /* hospital_add/revoke: no result promised */
	}
}

/* Is code one of the Code values the contract names? */
static int
fuzz_known_code(int code)
{
	switch (code) {
	case ONECARD__V1__CODE__OK:
	case ONECARD__V1__CODE__INVALID_ARGUMENT:
	case ONECARD__V1__CODE__NOT_FOUND:
	case ONECARD__V1__CODE__CONFLICT:
	case ONECARD__V1__CODE__PERMISSION_DENIED:
	case ONECARD__V1__CODE__RESOURCE_EXHAUSTED:
	case ONECARD__V1__CODE__VERSION_MISMATCH:
	case ONECARD__V1__CODE__UNIMPLEMENTED:
	case ONECARD__V1__CODE__UNAVAILABLE:
		return 1;
	default:
		return 0; /* INTERNAL included: a bug by the contract */
	}
}

/* Check the one reply frame in out against its request, then empty out. */
static void
fuzz_check_reply(const Onecard__V1__Request *req, const struct op_result *res,
    struct evbuffer *out, int committed)
{
	Onecard__V1__Reply *reply;
	const char *ids[16];
	size_t len, n = 0;
	uint8_t *p;
	int expect;

	fuzz_check(wire_peek_evbuffer(out, SIZE_MAX, &len) == WIRE_FRAME,
	    "reply is one frame");
	fuzz_check(evbuffer_get_length(out) == WIRE_HEADER_LEN + len,
	    "exactly one reply frame per request");
	p = evbuffer_pullup(out, -1);
	reply = wire_reply_unpack(p + WIRE_HEADER_LEN, len, SIZE_MAX, NULL);
	fuzz_check(reply != NULL, "reply decodes");
	fuzz_check(reply->id == req->id, "reply id echoes the request");
	fuzz_check(committed || reply->code == ONECARD__V1__CODE__UNAVAILABLE,
	    "a batch that did not commit answers UNAVAILABLE");
	if (!committed) {
		wire_reply_free(reply);
		evbuffer_drain(out, evbuffer_get_length(out));
		return;
	}
	fuzz_check(
	    (int)reply->code == res->code, "op_result code matches reply");
	if (fuzz_verbose)
		fprintf(stderr, "fuzz_request: id=%llu %s -> %s %s\n",
		    (unsigned long long)req->id, wire_op_name(req->op_case),
		    wire_code_name(reply->code),
		    reply->message ? reply->message : "");
	if (!fuzz_known_code(reply->code)) {
		fprintf(stderr, "fuzz_request: %s answered %d (%s): %s\n",
		    wire_op_name(req->op_case), reply->code,
		    wire_code_name(reply->code),
		    reply->message ? reply->message : "");
		fuzz_check(0, "a known code other than INTERNAL");
	}
	fuzz_reply_pids(reply);
	expect = fuzz_expected_result(req->op_case);
	if (reply->code == ONECARD__V1__CODE__OK && expect != -1)
		fuzz_check((int)reply->result_case == expect,
		    "OK carries its op's result");
	if (reply->code != ONECARD__V1__CODE__OK)
		fuzz_check(
		    reply->result_case == ONECARD__V1__REPLY__RESULT__NOT_SET &&
			reply->message != NULL && reply->message[0] != '\0',
		    "an error has a message and no result");
	/* The audit trail's target never holds a full cn-id. */
	fuzz_cn_ids(req, ids, &n);
	for (size_t i = 0; i < n; i++)
		if (strlen(ids[i]) >= 11)
			fuzz_check(strstr(res->target, ids[i]) == NULL,
			    "target masks the cn-id");
	fuzz_check(memchr(res->target, '\0', sizeof(res->target)) != NULL,
	    "target is NUL-terminated");
	fuzz_check(
	    memchr(res->patient_id, '\0', sizeof(res->patient_id)) != NULL,
	    "patient_id is NUL-terminated");
	wire_reply_free(reply);
	evbuffer_drain(out, evbuffer_get_length(out));
}

/* String slots a request had swapped, to put back before it is freed. */
struct fuzz_swaps {
	char **slot[24];
	char *orig[24];
	size_t n;
};

/* Swap *slot for the N-th known patient id if it reads "$N". */
static void
fuzz_swap(struct fuzz_swaps *sw, char **slot)
{
	const char *v = *slot;

	if (v == NULL || v[0] != '$' || v[1] < '0' || v[1] > '9' ||
	    fuzz_npids == 0 || sw->n == 24)
		return;
	sw->slot[sw->n] = slot;
	sw->orig[sw->n] = *slot;
	sw->n++;
	*slot = fuzz_pids[(size_t)(v[1] - '0') % fuzz_npids];
}

/* The same for an identifier in the pid domain. */
static void
fuzz_swap_id(struct fuzz_swaps *sw, Onecard__V1__Identifier *id)
{
	if (id != NULL && id->domain != NULL && strcmp(id->domain, "pid") == 0)
		fuzz_swap(sw, &id->value);
}

/* Fill "$N" placeholders in req with known patient ids. */
static void
fuzz_swap_req(struct fuzz_swaps *sw, Onecard__V1__Request *req)
{
	sw->n = 0;
	switch (req->op_case) {
	case ONECARD__V1__REQUEST__OP_LOOKUP:
		fuzz_swap_id(sw, req->lookup->identifier);
		break;
	case ONECARD__V1__REQUEST__OP_ENROLL:
		for (size_t i = 0; i < req->enroll->n_identifiers && i < 8; i++)
			fuzz_swap_id(sw, req->enroll->identifiers[i]);
		break;
	case ONECARD__V1__REQUEST__OP_LINK:
		fuzz_swap_id(sw, req->link->known);
		fuzz_swap_id(sw, req->link->added);
		break;
	case ONECARD__V1__REQUEST__OP_UNLINK:
		fuzz_swap_id(sw, req->unlink->identifier);
		break;
	case ONECARD__V1__REQUEST__OP_UPDATE:
		fuzz_swap_id(sw, req->update->identifier);
		break;
	case ONECARD__V1__REQUEST__OP_MERGE:
		fuzz_swap_id(sw, req->merge->survivor);
		fuzz_swap_id(sw, req->merge->duplicate);
		break;
	case ONECARD__V1__REQUEST__OP_UNMERGE:
		fuzz_swap(sw, &req->unmerge->patient_id);
		break;
	case ONECARD__V1__REQUEST__OP_HISTORY:
		fuzz_swap_id(sw, req->history->identifier);
		break;
	case ONECARD__V1__REQUEST__OP_EXPORT:
		fuzz_swap(sw, &req->export->after_patient_id);
		break;
	default:
		break;
	}
}

/* Put back what fuzz_swap_req replaced. */
static void
fuzz_unswap(struct fuzz_swaps *sw)
{
	while (sw->n > 0) {
		sw->n--;
		*sw->slot[sw->n] = sw->orig[sw->n];
	}
}

/* Requests of one input, as the broker would pass them on. */
struct fuzz_req {
	Onecard__V1__Request *req;
	int write;
};

/* Run the queued writes [from, to) as one group commit. */
static void
fuzz_batch(struct registry *wr, const struct actor *who, struct fuzz_req *q,
    size_t from, size_t to)
{
	struct evbuffer **outs;
	struct op_result *res;
	struct fuzz_swaps sw;
	int ok;

	outs = calloc(to - from, sizeof(*outs));
	res = calloc(to - from, sizeof(*res));
	fuzz_check(outs != NULL && res != NULL, "calloc");
	ok = registry_batch_begin(wr) == 0;
	fuzz_check(ok, "batch_begin on a healthy registry");
	for (size_t i = from; i < to; i++) {
		outs[i - from] = evbuffer_new();
		fuzz_check(outs[i - from] != NULL, "evbuffer_new");
		fuzz_swap_req(&sw, q[i].req);
		registry_write(
		    wr, who, q[i].req, outs[i - from], &res[i - from]);
		/* Checked below with the ids swapped back: still masked. */
		fuzz_unswap(&sw);
	}
	if (registry_batch_commit(wr) == -1) {
		registry_batch_rollback(wr);
		ok = 0;
	}
	/* The writer answers a failed batch UNAVAILABLE; the registry itself
	 * must not fail a batch on a healthy disk. */
	fuzz_check(ok, "batch commits on a healthy registry");
	for (size_t i = from; i < to; i++) {
		fuzz_check_reply(q[i].req, &res[i - from], outs[i - from], ok);
		evbuffer_free(outs[i - from]);
	}
	free(outs);
	free(res);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct actor actors[3] = {
	    {"admin", ONECARD__V1__ROLE__ROLE_ADMIN},
	    {"H1", ONECARD__V1__ROLE__ROLE_HOSPITAL},
	    {"H2", ONECARD__V1__ROLE__ROLE_HOSPITAL},
	};
	static int seeded;
	struct fuzz_req q[64];
	struct fuzz_swaps sw;
	struct registry *wr, *rd, *plain;
	struct registry_limits nocache;
	const struct actor *who;
	struct evbuffer *out;
	struct op_result res;
	size_t off = 1, len, nq = 0, i, run;
	char err[256];

	if (!seeded) {
		fuzz_verbose = getenv("FUZZ_VERBOSE") != NULL;
		fuzz_seed();
		atexit(fuzz_cleanup);
		seeded = 1;
	}
	if (size < 1)
		return 0;
	who = &actors[data[0] % 3];

	/* Frames as conn_read_frame takes them; at most 64 a run. */
	while (nq < 64) {
		Onecard__V1__Request *req;
		int over = 0;

		if (wire_peek(data + off, size - off, WIRE_MAX_FRAME_DEFAULT,
			&len) != WIRE_FRAME)
			break;
		req = wire_request_unpack(data + off + WIRE_HEADER_LEN, len,
		    len * WIRE_MEM_FACTOR + 4096, &over);
		off += WIRE_HEADER_LEN + len;
		if (req == NULL)
			continue;
		/* Answered by conn.c without the registry. */
		if (req->op_case == ONECARD__V1__REQUEST__OP__NOT_SET ||
		    req->id == 0 ||
		    req->op_case == ONECARD__V1__REQUEST__OP_PING ||
		    req->op_case == ONECARD__V1__REQUEST__OP_SUBSCRIBE) {
			wire_request_free(req);
			continue;
		}
		q[nq].req = req;
		q[nq].write = registry_op_is_write(req->op_case);
		nq++;
	}
	if (nq == 0)
		return 0;

	/* Back to the seed state, so this input alone reproduces. */
	fuzz_npids = fuzz_seed_npids;
	fuzz_db_remove(fuzz_work_db);
	fuzz_check(fuzz_copy(fuzz_seed_db, fuzz_work_db) == 0, "copy seed");
	wr = registry_open(fuzz_work_db, 1, &fuzz_lim, err, sizeof(err));
	fuzz_check(wr != NULL, "open the write handle");
	rd = registry_open(fuzz_work_db, 0, &fuzz_lim, err, sizeof(err));
	fuzz_check(rd != NULL, "open the read handle");
	nocache = fuzz_lim;
	nocache.lookup_cache = 0;
	plain = registry_open(fuzz_work_db, 0, &nocache, err, sizeof(err));
	fuzz_check(plain != NULL, "open a read handle without a cache");
	out = evbuffer_new();
	fuzz_check(out != NULL, "evbuffer_new");

	for (i = 0; i < nq; i += run) {
		if (q[i].write) {
			/* Writes queued back to back go in one batch. */
			for (run = 1; i + run < nq && q[i + run].write; run++)
				;
			fuzz_batch(wr, who, q, i, i + run);
			continue;
		}
		run = 1;
		fuzz_swap_req(&sw, q[i].req);
		registry_read(rd, who, q[i].req, out, &res);
		if (q[i].req->op_case == ONECARD__V1__REQUEST__OP_LOOKUP)
			fuzz_lookup_agrees(rd, plain, who, q[i].req, out);
		fuzz_check_reply(q[i].req, &res, out, 1);
		fuzz_unswap(&sw);
	}
	fuzz_check(registry_ping(rd) == 0 && registry_ping(wr) == 0,
	    "the registry still answers");

	evbuffer_free(out);
	registry_close(plain);
	registry_close(rd);
	registry_close(wr);
	for (i = 0; i < nq; i++)
		wire_request_free(q[i].req);
	return 0;
}
