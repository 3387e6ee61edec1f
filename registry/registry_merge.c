/*
 * registry_merge.c: merge folds a duplicate patient into a survivor and
 * remembers what moved; unmerge gives the merged-away patient that back.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "registry_int.h"

/* Merge: fold duplicate into survivor, remembering what moved. */
int
op_merge(struct reg_op *o)
{
	struct registry *reg = o->reg;
	const Onecard__V1__Merge *m = o->req->merge;
	struct registry_patient s, d;
	struct ident_vec iv;
	char snorm[VALIDATE_MAX_VALUE + 1], dnorm[VALIDATE_MAX_VALUE + 1];
	char detail[DETAIL_MAX];
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
	    (rc = op_patient_cn_id(o, d.id, &d_has, NULL)) != CODE_OK)
		return rc;
	if (s_has && d_has)
		return op_fail(o, CODE_CONFLICT,
		    "duplicate: both patients hold a cn-id (two residents are "
		    "two people)");
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
	snprintf(d.merged_into, sizeof(d.merged_into), "%s", s.id);
	if ((rc = op_patient_save(o, &d)) != CODE_OK ||
	    (rc = op_patient_save(o, &s)) != CODE_OK)
		return rc;
	snprintf(
	    detail, sizeof(detail), "duplicate=%s identifiers=%zu", d.id, iv.n);
	if ((rc = op_event(o, "merge", s.id, detail)) != CODE_OK)
		return rc;
	snprintf(detail, sizeof(detail), "survivor=%s", s.id);
	if ((rc = op_event(o, "merge", d.id, detail)) != CODE_OK)
		return rc;
	op_patient_id(o, s.id);
	return op_reply_patient(o, &s);
}

/* Unmerge: give a merged-away patient back what its merge moved. */
int
op_unmerge(struct reg_op *o)
{
	struct registry *reg = o->reg;
	const Onecard__V1__Unmerge *u = o->req->unmerge;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	struct registry_patient d, s, live;
	struct ident_vec moved = {.a = &reg->arena};
	char norm[VALIDATE_MAX_VALUE + 1], survivor[REGISTRY_PID_MAX];
	char pid[REGISTRY_PID_MAX], detail[DETAIL_MAX];
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
	if ((rc = reg->be->merge_undo(reg->h, merge_id)) < 0)
		return op_backend(o, rc);
	d.merged_into[0] = '\0';
	if ((rc = op_patient_save(o, &d)) != CODE_OK ||
	    (rc = op_patient_save(o, &live)) != CODE_OK)
		return rc;
	snprintf(detail, sizeof(detail), "survivor=%s identifiers=%zu", live.id,
	    back);
	if ((rc = op_event(o, "unmerge", d.id, detail)) != CODE_OK)
		return rc;
	snprintf(detail, sizeof(detail), "duplicate=%s", d.id);
	if ((rc = op_event(o, "unmerge", live.id, detail)) != CODE_OK)
		return rc;
	op_patient_id(o, d.id);
	return op_reply_patient(o, &d);
}
