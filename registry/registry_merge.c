/*
 * registry_merge.c: merge folds a duplicate patient into a survivor and
 * remembers what moved; unmerge gives the merged-away patient that back.
 *
 * What moved is kept as (domain, value) rows of the merge record: each
 * identifier moved, and each demographic field of the survivor that was
 * blank and filled from the duplicate, as (MERGE_FIELD_DOMAIN, field name).
 * That domain is no identifier's: validate.c admits only cn-id, cn-ssc,
 * hosp:<CODE> and pid.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "registry_int.h"
#include "validate.h"

/* The merge record's domain for a field filled from the duplicate. */
#define MERGE_FIELD_DOMAIN "=field"

/* The demographic fields a merge fills, by the names events give them. */
enum merge_field {
	MF_NAME,
	MF_SEX,
	MF_BIRTH_DATE,
	MF_PHONE,
	MF_ADDRESS,
	MF_N
};
static const char *const merge_field_names[MF_N] = {
    "name", "sex", "birth_date", "phone", "address"};

/* Field f of p, for a string field; NULL for sex. */
static char **
merge_field_str(struct registry_patient *p, int f)
{
	switch (f) {
	case MF_NAME:
		return &p->name;
	case MF_BIRTH_DATE:
		return &p->birth_date;
	case MF_PHONE:
		return &p->phone;
	case MF_ADDRESS:
		return &p->address;
	}
	return NULL;
}

static int
merge_field_blank(struct registry_patient *p, int f)
{
	char **s = merge_field_str(p, f);

	if (s == NULL)
		return p->sex == ONECARD__V1__SEX__SEX_UNKNOWN;
	return *s == NULL || **s == '\0';
}

static int
merge_field_same(struct registry_patient *a, struct registry_patient *b, int f)
{
	char **x = merge_field_str(a, f), **y = merge_field_str(b, f);

	if (x == NULL)
		return a->sex == b->sex;
	return strcmp(*x ? *x : "", *y ? *y : "") == 0;
}

/* Set field f of dst to src's (strings stay in the op's arena). */
static void
merge_field_set(
    struct registry_patient *dst, struct registry_patient *src, int f)
{
	char **s = merge_field_str(src, f);

	if (s == NULL)
		dst->sex = src->sex;
	else
		*merge_field_str(dst, f) = *s;
}

static int
merge_field_of(const char *name)
{
	for (int f = 0; f < MF_N; f++)
		if (strcmp(name, merge_field_names[f]) == 0)
			return f;
	return -1;
}

/* Append name to a comma-separated list in buf. */
static void
merge_list_add(char *buf, size_t cap, const char *name)
{
	size_t len = strlen(buf);

	snprintf(buf + len, cap - len, "%s%s", len ? "," : "", name);
}

/*
 * The survivor will hold the duplicate's cn-id: its own birth date and sex,
 * where set, must agree with it, as they must on every record.
 */
static int
merge_check_cn_id(
    struct reg_op *o, const struct registry_patient *s, const char *cnid)
{
	struct validate_cn_id_info info;

	if (validate_cn_id(99991231, "cn-id", cnid, NULL, &info, o->msg,
		sizeof(o->msg)) == -1) {
		log_warnx("registry: stored cn-id of a duplicate is invalid");
		return op_fail(o, CODE_INTERNAL, "stored cn-id invalid");
	}
	if (s->birth_date[0] != '\0' &&
	    strcmp(s->birth_date, info.birth_date) != 0)
		return op_fail(o, CODE_CONFLICT,
		    "survivor: its birth date is not the duplicate's cn-id's; "
		    "correct it first, or keep the cn-id holder as survivor");
	if (s->sex != ONECARD__V1__SEX__SEX_UNKNOWN && s->sex != info.sex)
		return op_fail(o, CODE_CONFLICT,
		    "survivor: its sex is not the duplicate's cn-id's; correct "
		    "it first, or keep the cn-id holder as survivor");
	return CODE_OK;
}

/* Merge: fold duplicate into survivor, remembering what moved. */
int
op_merge(struct reg_op *o)
{
	struct registry *reg = o->reg;
	const Onecard__V1__Merge *m = o->req->merge;
	struct registry_patient s, d;
	struct ident_vec iv;
	char snorm[VALIDATE_MAX_VALUE + 1], dnorm[VALIDATE_MAX_VALUE + 1];
	char cnid[VALIDATE_CN_ID_LEN + 1], detail[DETAIL_MAX], filled[48] = "";
	int rc, s_has, d_has;
	int64_t merge_id = 0;

	if ((rc = op_need_admin(o, "merge")) != CODE_OK)
		return rc;
	if (m == NULL)
		return op_fail(o, CODE_INVALID, "merge: missing");
	if ((rc = op_resolve(o, "duplicate", m->duplicate, 1, &d, dnorm,
		 NULL)) != CODE_OK ||
	    (rc = op_resolve(o, "survivor", m->survivor, 1, &s, snorm, NULL)) !=
		CODE_OK)
		return rc;
	if (strcmp(s.id, d.id) == 0)
		return op_fail(o, CODE_CONFLICT,
		    "duplicate: names the same patient as survivor");
	if ((rc = op_patient_cn_id(o, s.id, &s_has, NULL)) != CODE_OK ||
	    (rc = op_patient_cn_id(o, d.id, &d_has, cnid)) != CODE_OK)
		return rc;
	if (s_has && d_has)
		return op_fail(o, CODE_CONFLICT,
		    "duplicate: both patients hold a cn-id (two residents are "
		    "two people)");
	if (d_has && (rc = merge_check_cn_id(o, &s, cnid)) != CODE_OK)
		return rc;
	if ((rc = op_idents(o, d.id, &iv)) != CODE_OK)
		return rc;
	if ((rc = reg->be->merge_insert(reg->h, s.id, d.id, 0, &merge_id)) < 0)
		return op_backend(o, rc);
	for (size_t i = 0; i < iv.n; i++) {
		const char *dom = iv.v[i]->domain, *val = iv.v[i]->value;

		if ((rc = reg->be->merge_ident_insert(
			 reg->h, merge_id, dom, val)) < 0 ||
		    (rc = reg->be->ident_move(reg->h, dom, val, s.id)) < 0)
			return op_backend(o, rc);
	}
	/* The survivor keeps its own fields and fills its blanks. */
	for (int f = 0; f < MF_N; f++) {
		if (!merge_field_blank(&s, f) || merge_field_blank(&d, f))
			continue;
		merge_field_set(&s, &d, f);
		if ((rc = reg->be->merge_ident_insert(reg->h, merge_id,
			 MERGE_FIELD_DOMAIN, merge_field_names[f])) < 0)
			return op_backend(o, rc);
		merge_list_add(filled, sizeof(filled), merge_field_names[f]);
	}
	snprintf(d.merged_into, sizeof(d.merged_into), "%s", s.id);
	if ((rc = op_patient_save(o, &d)) != CODE_OK ||
	    (rc = op_patient_save(o, &s)) != CODE_OK)
		return rc;
	snprintf(detail, sizeof(detail), "duplicate=%s identifiers=%zu%s%s",
	    d.id, iv.n, filled[0] ? " filled=" : "", filled);
	if ((rc = op_event_pair(o, "merge", s.id, d.id, 0, detail)) != CODE_OK)
		return rc;
	snprintf(detail, sizeof(detail), "survivor=%s", s.id);
	if ((rc = op_event_pair(o, "merge", d.id, s.id, 1, detail)) != CODE_OK)
		return rc;
	op_patient_id(o, s.id);
	registry_copy(
	    o->res->other_patient_id, d.id, sizeof(o->res->other_patient_id));
	if (filled[0] != '\0')
		snprintf(o->res->detail, sizeof(o->res->detail), "filled=%s",
		    filled);
	return op_reply_patient(o, &s);
}

/* Unmerge: give a merged-away patient back what its merge moved. */
int
op_unmerge(struct reg_op *o)
{
	struct registry *reg = o->reg;
	const Onecard__V1__Unmerge *u = o->req->unmerge;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	struct registry_patient d, s, live, *filled,
	    blank = {.name = "", .birth_date = "", .phone = "", .address = ""};
	struct ident_vec moved = {.a = &reg->arena};
	char norm[VALIDATE_MAX_VALUE + 1], survivor[REGISTRY_PID_MAX];
	char pid[REGISTRY_PID_MAX], detail[DETAIL_MAX], cleared[48] = "";
	unsigned fields = 0;
	int64_t merge_id;
	size_t back = 0;
	int rc;

	if ((rc = op_need_admin(o, "unmerge")) != CODE_OK)
		return rc;
	if (u == NULL)
		return op_fail(o, CODE_INVALID, "unmerge: missing");
	id.domain = "pid";
	id.value = u->patient_id;
	if ((rc = op_resolve(o, "patient_id", &id, 0, &d, norm, NULL)) !=
	    CODE_OK)
		return rc;
	if (d.merged_into[0] == '\0')
		return op_fail(o, CODE_CONFLICT,
		    "patient_id: the patient is not merged away");
	rc = reg->be->merge_find(reg->h, d.id, &merge_id, survivor);
	if (rc < 0)
		return op_backend(o, rc);
	if (rc == 1) {
		log_warnx("registry: %s merged with no merge record", d.id);
		return op_fail(o, CODE_INTERNAL, "no merge record");
	}
	rc = reg->be->patient_get(reg->h, survivor, &reg->arena, &s);
	if (rc != 0)
		return rc < 0 ? op_backend(o, rc)
			      : op_fail(o, CODE_INTERNAL, "no survivor");
	live = s;
	if ((rc = op_follow(o, &live)) != CODE_OK)
		return rc;
	rc = reg->be->merge_idents(reg->h, merge_id, ident_vec_add, &moved);
	if (rc < 0)
		return op_backend(o, rc);
	/* Move back what is still with the survivor (or whom it merged into);
	 * what was unlinked since stays gone. */
	for (size_t i = 0; i < moved.n; i++) {
		const char *dom = moved.v[i]->domain, *val = moved.v[i]->value;

		if (strcmp(dom, MERGE_FIELD_DOMAIN) == 0) {
			int f = merge_field_of(val);

			if (f >= 0)
				fields |= 1u << f;
			continue;
		}
		rc = reg->be->ident_owner(reg->h, dom, val, pid);
		if (rc < 0)
			return op_backend(o, rc);
		if (rc == 1 ||
		    (strcmp(pid, s.id) != 0 && strcmp(pid, live.id) != 0))
			continue;
		if ((rc = reg->be->ident_move(reg->h, dom, val, d.id)) < 0)
			return op_backend(o, rc);
		back++;
	}
	/* Blank again what the merge filled on the survivor, unless it was
	 * changed since: a later correction stands. */
	filled = strcmp(s.id, live.id) == 0 ? &live : &s;
	for (int f = 0; f < MF_N; f++) {
		if (!(fields & (1u << f)) || !merge_field_same(filled, &d, f))
			continue;
		merge_field_set(filled, &blank, f);
		merge_list_add(cleared, sizeof(cleared), merge_field_names[f]);
	}
	if ((rc = reg->be->merge_undo(reg->h, merge_id)) < 0)
		return op_backend(o, rc);
	d.merged_into[0] = '\0';
	if ((rc = op_patient_save(o, &d)) != CODE_OK ||
	    (rc = op_patient_save(o, &live)) != CODE_OK ||
	    (filled == &s && cleared[0] != '\0' &&
		(rc = op_patient_save(o, &s)) != CODE_OK))
		return rc;
	snprintf(detail, sizeof(detail), "survivor=%s identifiers=%zu", live.id,
	    back);
	if (cleared[0] != '\0')
		snprintf(o->res->detail, sizeof(o->res->detail), "cleared=%s",
		    cleared);
	if ((rc = op_event_pair(o, "unmerge", d.id, live.id, 1, detail)) !=
	    CODE_OK)
		return rc;
	snprintf(detail, sizeof(detail), "duplicate=%s%s%s", d.id,
	    cleared[0] ? " cleared=" : "", cleared);
	if ((rc = op_event_pair(o, "unmerge", live.id, d.id, 0, detail)) !=
	    CODE_OK)
		return rc;
	op_patient_id(o, d.id);
	registry_copy(o->res->other_patient_id, live.id,
	    sizeof(o->res->other_patient_id));
	return op_reply_patient(o, &d);
}
