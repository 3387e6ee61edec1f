/*
 * registry_patient.c: the patient operations: enroll, link, unlink and update,
 * with the rules on who may write which identifier and on a cn-id agreeing
 * with a patient's birth date and sex.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "log.h"
#include "registry_int.h"

#define DUPLICATES_MAX 5 /* possible duplicates named on enroll */
#define DUPLICATES_GRADE                                                       \
	ONECARD__V1__MATCH_GRADE__MATCH_PROBABLE /* or better */

/* May the caller add or remove identifiers in domain? Hospitals write only
 * cn-id and cn-ssc (when adding) and their own hosp:<CN>. */
static int
op_may_write_domain(
    struct reg_op *o, const char *field, const char *domain, int adding)
{
	const char *cn = o->who && o->who->cn ? o->who->cn : "";
	struct registry_hospital h;
	int rc;

	if (op_is_admin(o)) {
		/* A visit card of a hospital the registry does not know is a
		 * typing error, not a new domain. */
		if (!adding || strncmp(domain, "hosp:", 5) != 0)
			return CODE_OK;
		rc = o->reg->be->hospital_get(o->reg->h, domain + 5, NULL, &h);
		if (rc < 0)
			return op_backend(o, rc);
		if (rc == 1)
			return op_fail(o, CODE_INVALID,
			    "%s: no hospital %s in the registry (add it "
			    "first)",
			    field, domain + 5);
		return CODE_OK;
	}
	if (strncmp(domain, "hosp:", 5) == 0 && strcmp(domain + 5, cn) == 0)
		return CODE_OK;
	if (adding &&
	    (strcmp(domain, "cn-id") == 0 || strcmp(domain, "cn-ssc") == 0))
		return CODE_OK;
	return op_fail(o, CODE_DENIED, "%s: hospital %s may not %s %s", field,
	    cn, adding ? "add identifiers in" : "remove identifiers of",
	    domain);
}

/*
 * A new unguessable patient id: "P" and 16 bytes in base32, the first 6 the
 * time in milliseconds and the other 10 (80 bits) random. The digits are
 * "2-7A-Z", in ASCII order, so ids sort by creation time: a new patient's
 * rows land at the right edge of every B-tree keyed by patient id (patients,
 * identifiers_patient, events_patient) instead of on a random page each, and
 * an enroll dirties a handful of pages rather than one per index.
 */
static int
registry_new_pid(char *pid, int64_t now_ms)
{
	static const char b32[] = "234567ABCDEFGHIJKLMNOPQRSTUVWXYZ";
	unsigned char r[16];
	size_t got = 6;
	unsigned int acc = 0;
	int bits = 0, n = 1;

	for (int i = 0; i < 6; i++)
		r[i] = (unsigned char)((uint64_t)now_ms >> (40 - 8 * i));
	while (got < sizeof(r)) {
		ssize_t k = getrandom(r + got, sizeof(r) - got, 0);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			log_warn("registry: getrandom");
			return -1;
		}
		got += (size_t)k;
	}
	pid[0] = 'P';
	for (size_t i = 0; i < sizeof(r); i++) {
		acc = (acc << 8) | r[i];
		bits += 8;
		while (bits >= 5) {
			pid[n++] = b32[(acc >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	pid[n++] = b32[(acc << (5 - bits)) & 31];
	pid[n] = '\0';
	return 0;
}

/* Does a stored patient's birth date and sex agree with a cn-id? */
static int
op_patient_agrees(struct reg_op *o, const char *field,
    const struct registry_patient *p, const struct validate_cn_id_info *info)
{
	if (p->birth_date[0] != '\0' &&
	    strcmp(p->birth_date, info->birth_date) != 0)
		return op_fail(o, CODE_CONFLICT,
		    "%s: the cn-id's birth date is not the patient's", field);
	if (p->sex != ONECARD__V1__SEX__SEX_UNKNOWN && p->sex != info->sex)
		return op_fail(o, CODE_CONFLICT,
		    "%s: the cn-id's sex is not the patient's", field);
	return CODE_OK;
}

/*
 * Answer enroll with the record of p; for a new record (cn_id: the cn-id it
 * holds, or NULL) the live patients that match it MATCH_PROBABLE or better,
 * best first. Never refuses the enroll and never merges.
 */
static int
op_reply_enrolled(struct reg_op *o, const struct registry_patient *p,
    int created, int find_dups, const char *cn_id)
{
	struct registry *reg = o->reg;
	Onecard__V1__EnrollResult *er;
	struct op_match_query mq = {
	    p->name, p->birth_date, p->phone, p->address, cn_id, p->sex};
	struct op_match *hits;
	size_t nhits;
	int rc;

	if ((er = arena_alloc(&reg->arena, sizeof(*er))) == NULL)
		return op_nomem(o);
	onecard__v1__enroll_result__init(er);
	if ((rc = op_patient_msg(o, p, &er->patient)) != CODE_OK)
		return rc;
	er->created = created;
	if (find_dups && !reg->lim.no_duplicate_check) {
		if ((rc = op_match(o, &mq, DUPLICATES_GRADE, 1, p->id,
			 DUPLICATES_MAX, &hits, &nhits)) != CODE_OK)
			return rc;
		er->possible_duplicates = arena_alloc(&reg->arena,
		    (nhits + 1) * sizeof(*er->possible_duplicates));
		if (er->possible_duplicates == NULL)
			return op_nomem(o);
		for (size_t i = 0; i < nhits; i++) {
			Onecard__V1__Candidate *c;

			if ((c = arena_alloc(&reg->arena, sizeof(*c))) == NULL)
				return op_nomem(o);
			onecard__v1__candidate__init(c);
			c->patient_id = hits[i].p.id;
			c->reason = (char *)hits[i].reason;
			c->score = hits[i].score;
			c->grade = (Onecard__V1__MatchGrade)hits[i].grade;
			er->possible_duplicates[er->n_possible_duplicates++] =
			    c;
			/* Onto the steward's worklist (kept as it is when
			 * known: a dismissed pair stays dismissed). */
			if ((rc = op_pair_note(o, p->id, &hits[i], NULL)) !=
			    CODE_OK)
				return rc;
		}
	}
	o->reply.result_case = ONECARD__V1__REPLY__RESULT_ENROLLED;
	o->reply.enrolled = er;
	return CODE_OK;
}

/* Append "domain=value" (cn-id masked) to a comma-separated detail. */
static void
detail_add(char *detail, const char *domain, const char *value)
{
	size_t len = strlen(detail);
	char one[160];

	registry_ident_text(domain, value, one, sizeof(one));
	snprintf(detail + len, DETAIL_MAX - len, "%s%s", len ? "," : "", one);
}

/* Enroll: create a patient, or link the rest to the one that holds some. */
int
op_enroll(struct reg_op *o)
{
	struct registry *reg = o->reg;
	const Onecard__V1__Enroll *e = o->req->enroll;
	const Onecard__V1__Demographics *d;
	struct validate_cn_id_info info;
	struct registry_patient p;
	char field[48], owner[REGISTRY_PID_MAX] = "", pid[REGISTRY_PID_MAX];
	char(*norm)[VALIDATE_MAX_VALUE + 1];
	char detail[DETAIL_MAX] = "";
	int cn = -1, rc, owner_of = -1, added = 0;
	size_t n;

	if (e == NULL)
		return op_fail(o, CODE_INVALID, "enroll: missing");
	d = e->demographics;
	n = e->n_identifiers;
	if (n == 0)
		return op_fail(o, CODE_INVALID,
		    "identifiers: at least one identifier is needed");
	if (n > reg->lim.max_ids)
		return op_fail(o, CODE_INVALID,
		    "identifiers: %zu identifiers, over the limit of %zu", n,
		    reg->lim.max_ids);
	if (validate_demographics(
		&o->vc, "demographics", d, o->msg, sizeof(o->msg)) == -1)
		return CODE_INVALID;
	if ((norm = arena_alloc(&reg->arena, n * sizeof(*norm))) == NULL)
		return op_nomem(o);
	for (size_t i = 0; i < n; i++) {
		struct validate_cn_id_info one;
		int k;

		snprintf(field, sizeof(field), "identifiers[%zu]", i);
		k = validate_identifier(&o->vc, field, e->identifiers[i],
		    norm[i], sizeof(norm[i]), &one, o->msg, sizeof(o->msg));
		if (k < 0)
			return CODE_INVALID;
		op_target(o, e->identifiers[i]->domain, norm[i]);
		if (k == VALIDATE_PID)
			return op_fail(o, CODE_INVALID,
			    "%s.domain: pid is assigned by the registry, "
			    "never enrolled",
			    field);
		if (k == VALIDATE_CN_ID) {
			if (cn >= 0 && strcmp(norm[cn], norm[i]) != 0)
				return op_fail(o, CODE_CONFLICT,
				    "%s: a patient has at most one cn-id",
				    field);
			cn = (int)i;
			info = one;
		}
	}
	if (cn >= 0 &&
	    validate_agrees_cn_id(
		"demographics", d, &info, o->msg, sizeof(o->msg)) == -1)
		return CODE_INVALID;

	/* Who holds what is already there? All of it must be one patient. */
	for (size_t i = 0; i < n; i++) {
		rc = reg->be->ident_owner(
		    reg->h, e->identifiers[i]->domain, norm[i], pid);
		if (rc < 0)
			return op_backend(o, rc);
		if (rc == 1) {
			/* New to the registry: may the caller add it? */
			snprintf(field, sizeof(field), "identifiers[%zu]", i);
			rc = op_may_write_domain(
			    o, field, e->identifiers[i]->domain, 1);
			if (rc != CODE_OK)
				return rc;
			continue;
		}
		if ((rc = reg->be->patient_get(reg->h, pid, &reg->arena, &p)) !=
		    0)
			return rc < 0 ? op_backend(o, rc)
				      : op_fail(o, CODE_INTERNAL,
					    "identifier without patient");
		if ((rc = op_follow(o, &p)) != CODE_OK)
			return rc;
		if (owner[0] == '\0') {
			snprintf(owner, sizeof(owner), "%s", p.id);
			owner_of = (int)i;
		} else if (strcmp(owner, p.id) != 0)
			return op_fail(o, CODE_CONFLICT,
			    "identifiers[%zu]: belongs to another patient than "
			    "identifiers[%d]",
			    i, owner_of);
	}

	if (owner[0] != '\0') {
		/* Link the rest to the one patient that holds some. */
		rc = reg->be->patient_get(reg->h, owner, &reg->arena, &p);
		if (rc != 0)
			return rc < 0 ? op_backend(o, rc)
				      : op_fail(o, CODE_INTERNAL, "no patient");
		op_patient_id(o, p.id);
		if (cn >= 0) {
			char held[VALIDATE_CN_ID_LEN + 1] = "";
			int has;

			if ((rc = op_patient_cn_id(o, p.id, &has, held)) !=
			    CODE_OK)
				return rc;
			if (has && strcmp(held, norm[cn]) != 0)
				return op_fail(o, CODE_CONFLICT,
				    "identifiers[%d]: the patient already "
				    "holds another cn-id",
				    cn);
			if (!has) {
				snprintf(field, sizeof(field),
				    "identifiers[%d]", cn);
				rc = op_patient_agrees(o, field, &p, &info);
				if (rc != CODE_OK)
					return rc;
			}
		}
		for (size_t i = 0; i < n; i++) {
			const char *dom = e->identifiers[i]->domain;

			rc = reg->be->ident_owner(reg->h, dom, norm[i], pid);
			if (rc < 0)
				return op_backend(o, rc);
			if (rc == 0)
				continue;
			rc = reg->be->ident_insert(reg->h, dom, norm[i], p.id);
			if (rc < 0)
				return op_backend(o, rc);
			detail_add(detail, dom, norm[i]);
			added++;
		}
		if (added > 0) {
			if ((rc = op_patient_save(o, &p)) != CODE_OK ||
			    (rc = op_event(o, "link", p.id, NULL, detail)) !=
				CODE_OK)
				return rc;
		}
		return op_reply_enrolled(o, &p, 0, 0, NULL);
	}

	/* None is known: a new patient. */
	memset(&p, 0, sizeof(p));
	if (registry_new_pid(p.id, o->now_ms) == -1)
		return op_fail(o, CODE_INTERNAL, "no randomness for an id");
	p.name = d && d->name ? d->name : "";
	p.sex = d ? d->sex : 0;
	p.birth_date = d && d->birth_date ? d->birth_date : "";
	p.phone = d && d->phone ? d->phone : "";
	p.address = d && d->address ? d->address : "";
	if (cn >= 0) {
		if (p.birth_date[0] == '\0' &&
		    (p.birth_date =
			    arena_strdup(&reg->arena, info.birth_date)) == NULL)
			return op_nomem(o);
		if (p.sex == ONECARD__V1__SEX__SEX_UNKNOWN)
			p.sex = info.sex;
	}
	p.version = 1;
	op_patient_id(o, p.id);
	if ((rc = reg->be->patient_insert(reg->h, &p, o->now_ms)) < 0)
		return op_backend(o, rc);
	for (size_t i = 0; i < n; i++) {
		const char *dom = e->identifiers[i]->domain;
		int dup = 0;

		for (size_t j = 0; j < i; j++)
			if (strcmp(e->identifiers[j]->domain, dom) == 0 &&
			    strcmp(norm[j], norm[i]) == 0)
				dup = 1;
		if (dup)
			continue;
		if ((rc = reg->be->ident_insert(reg->h, dom, norm[i], p.id)) <
		    0)
			return op_backend(o, rc);
		detail_add(detail, dom, norm[i]);
	}
	if ((rc = op_event(o, "enroll", p.id, NULL, detail)) != CODE_OK)
		return rc;
	/* Something to match on beyond a cn-id's birth date and sex. */
	return op_reply_enrolled(o, &p, 1,
	    p.name[0] != '\0' || p.phone[0] != '\0' ||
		(cn < 0 && p.birth_date[0] != '\0'),
	    cn >= 0 ? norm[cn] : NULL);
}

/* Link: add an identifier to the patient another one names. */
int
op_link(struct reg_op *o)
{
	struct registry *reg = o->reg;
	const Onecard__V1__Link *l = o->req->link;
	struct validate_cn_id_info info;
	struct registry_patient p, q;
	char knorm[VALIDATE_MAX_VALUE + 1], anorm[VALIDATE_MAX_VALUE + 1];
	char pid[REGISTRY_PID_MAX], detail[DETAIL_MAX] = "";
	int k, rc;

	if (l == NULL)
		return op_fail(o, CODE_INVALID, "link: missing");
	k = validate_identifier(&o->vc, "added", l->added, anorm, sizeof(anorm),
	    &info, o->msg, sizeof(o->msg));
	if (k < 0)
		return CODE_INVALID;
	op_target(o, l->added->domain, anorm);
	if (k == VALIDATE_PID)
		return op_fail(o, CODE_INVALID,
		    "added.domain: pid is assigned by the registry, never "
		    "linked");
	if ((rc = op_may_write_domain(o, "added", l->added->domain, 1)) !=
	    CODE_OK)
		return rc;
	if ((rc = op_resolve(o, "known", l->known, 1, &p, knorm, NULL)) !=
	    CODE_OK)
		return rc;
	rc = reg->be->ident_owner(reg->h, l->added->domain, anorm, pid);
	if (rc < 0)
		return op_backend(o, rc);
	if (rc == 0) {
		rc = reg->be->patient_get(reg->h, pid, &reg->arena, &q);
		if (rc != 0)
			return rc < 0 ? op_backend(o, rc)
				      : op_fail(o, CODE_INTERNAL, "no patient");
		if ((rc = op_follow(o, &q)) != CODE_OK)
			return rc;
		if (strcmp(q.id, p.id) != 0)
			return op_fail(o, CODE_CONFLICT,
			    "added: belongs to another patient");
		return op_reply_patient(o, &p); /* already there */
	}
	if (k == VALIDATE_CN_ID) {
		int has;

		if ((rc = op_patient_cn_id(o, p.id, &has, NULL)) != CODE_OK)
			return rc;
		if (has)
			return op_fail(o, CODE_CONFLICT,
			    "added: the patient already holds a cn-id");
		if ((rc = op_patient_agrees(o, "added", &p, &info)) != CODE_OK)
			return rc;
	}
	if ((rc = reg->be->ident_insert(
		 reg->h, l->added->domain, anorm, p.id)) < 0)
		return op_backend(o, rc);
	detail_add(detail, l->added->domain, anorm);
	if ((rc = op_patient_save(o, &p)) != CODE_OK ||
	    (rc = op_event(o, "link", p.id, NULL, detail)) != CODE_OK)
		return rc;
	return op_reply_patient(o, &p);
}

/* Unlink: remove an identifier from its patient. */
int
op_unlink(struct reg_op *o)
{
	struct registry *reg = o->reg;
	const Onecard__V1__Unlink *u = o->req->unlink;
	struct registry_patient p;
	struct ident_vec iv;
	char norm[VALIDATE_MAX_VALUE + 1], detail[DETAIL_MAX] = "";
	int k, rc;

	if (u == NULL)
		return op_fail(o, CODE_INVALID, "unlink: missing");
	k = validate_identifier(&o->vc, "identifier", u->identifier, norm,
	    sizeof(norm), NULL, o->msg, sizeof(o->msg));
	if (k < 0)
		return CODE_INVALID;
	op_target(o, u->identifier->domain, norm);
	if (k == VALIDATE_PID)
		return op_fail(o, CODE_INVALID,
		    "identifier.domain: a pid is never removed");
	if ((rc = op_may_write_domain(
		 o, "identifier", u->identifier->domain, 0)) != CODE_OK)
		return rc;
	if ((rc = op_resolve(
		 o, "identifier", u->identifier, 1, &p, norm, NULL)) != CODE_OK)
		return rc;
	if ((rc = op_idents(o, p.id, &iv)) != CODE_OK)
		return rc;
	if (iv.n <= 1)
		return op_fail(o, CODE_CONFLICT,
		    "identifier: a patient keeps at least one identifier");
	if ((rc = reg->be->ident_delete(reg->h, u->identifier->domain, norm)) <
	    0)
		return op_backend(o, rc);
	detail_add(detail, u->identifier->domain, norm);
	if ((rc = op_patient_save(o, &p)) != CODE_OK ||
	    (rc = op_event(o, "unlink", p.id, u->identifier->domain, detail)) !=
		CODE_OK)
		return rc;
	return op_reply_patient(o, &p);
}

/* Set *dst to src when src is non-empty and differs; note the field. */
static void
update_field(
    char **dst, const char *src, const char *name, char *detail, int *changed)
{
	size_t len;

	if (src == NULL || src[0] == '\0' || strcmp(*dst, src) == 0)
		return;
	*dst = (char *)src;
	len = strlen(detail);
	snprintf(detail + len, DETAIL_MAX - len, "%s%s", len ? "," : "", name);
	(*changed)++;
}

/* Update: change the demographics of the patient an identifier names. */
int
op_update(struct reg_op *o)
{
	const Onecard__V1__Update *u = o->req->update;
	const Onecard__V1__Demographics *d;
	struct registry_patient p;
	char norm[VALIDATE_MAX_VALUE + 1], cnid[VALIDATE_CN_ID_LEN + 1];
	char detail[DETAIL_MAX] = "";
	int rc, has, changed = 0;

	if (u == NULL)
		return op_fail(o, CODE_INVALID, "update: missing");
	d = u->demographics;
	if (validate_demographics(
		&o->vc, "demographics", d, o->msg, sizeof(o->msg)) == -1)
		return CODE_INVALID;
	if ((rc = op_resolve(
		 o, "identifier", u->identifier, 1, &p, norm, NULL)) != CODE_OK)
		return rc;
	if (u->expected_version != 0 && u->expected_version != p.version)
		return op_fail(o, CODE_VERSION,
		    "expected_version: the record is at version %llu",
		    (unsigned long long)p.version);
	if (d == NULL)
		return op_reply_patient(o, &p);
	if ((rc = op_patient_cn_id(o, p.id, &has, cnid)) != CODE_OK)
		return rc;
	if (has) {
		struct validate_cn_id_info info;

		if (validate_cn_id(99991231, "cn-id", cnid, NULL, &info, o->msg,
			sizeof(o->msg)) == -1) {
			log_warnx(
			    "registry: stored cn-id of %s is invalid", p.id);
			return op_fail(
			    o, CODE_INTERNAL, "stored cn-id invalid");
		}
		if (validate_agrees_cn_id(
			"demographics", d, &info, o->msg, sizeof(o->msg)) == -1)
			return CODE_CONFLICT;
	}
	update_field(&p.name, d->name, "name", detail, &changed);
	if (d->sex != ONECARD__V1__SEX__SEX_UNKNOWN && (int)d->sex != p.sex) {
		size_t len = strlen(detail);

		p.sex = d->sex;
		snprintf(
		    detail + len, DETAIL_MAX - len, "%ssex", len ? "," : "");
		changed++;
	}
	update_field(
	    &p.birth_date, d->birth_date, "birth_date", detail, &changed);
	update_field(&p.phone, d->phone, "phone", detail, &changed);
	update_field(&p.address, d->address, "address", detail, &changed);
	if (changed == 0)
		return op_reply_patient(o, &p);
	if ((rc = op_patient_save(o, &p)) != CODE_OK ||
	    (rc = op_event(o, "update", p.id, NULL, detail)) != CODE_OK)
		return rc;
	return op_reply_patient(o, &p);
}
