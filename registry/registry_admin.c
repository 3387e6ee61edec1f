/*
 * registry_admin.c: the administration operations (hospital add, revoke and
 * list) and the role a hospital's code carries.
 */
#include <stdio.h>
#include <string.h>

#include "registry_int.h"

int
registry_hospital_role(struct registry *reg, const char *code, int *role)
{
	struct registry_hospital hosp;
	int rc;

	rc = reg->be->hospital_get(reg->h, code, NULL, &hosp);
	if (rc < 0)
		return -1;
	if (rc == 1 || !hosp.active)
		return 1;
	*role = hosp.role;
	return 0;
}

/* hospital_add: register (or reactivate) a hospital or admin by CN. */
int
op_hospital_add(struct reg_op *o)
{
	struct registry *reg = o->reg;
	const Onecard__V1__HospitalAdd *ha = o->req->hospital_add;
	struct registry_hospital cur, want;
	char detail[DETAIL_MAX];
	int rc, existed;

	if ((rc = op_need_admin(o, "hospital_add")) != CODE_OK)
		return rc;
	if (ha == NULL)
		return op_fail(o, CODE_INVALID, "hospital_add: missing");
	if (validate_hospital_code(
		"code", ha->code ? ha->code : "", o->msg, sizeof(o->msg)) == -1)
		return CODE_INVALID;
	op_target(o, NULL, ha->code);
	if (validate_text("name", ha->name ? ha->name : "",
		REGISTRY_DEFAULT_MAX_NAME, o->msg, sizeof(o->msg)) == -1)
		return CODE_INVALID;
	if (ha->role != ONECARD__V1__ROLE__ROLE_HOSPITAL &&
	    ha->role != ONECARD__V1__ROLE__ROLE_ADMIN)
		return op_fail(
		    o, CODE_INVALID, "role: unknown value %d", (int)ha->role);
	want.code = ha->code;
	want.name = ha->name ? ha->name : "";
	want.role = ha->role;
	want.active = 1;
	rc = reg->be->hospital_get(reg->h, ha->code, &reg->arena, &cur);
	if (rc < 0)
		return op_backend(o, rc);
	existed = rc == 0;
	if (existed && cur.active && cur.role == want.role &&
	    strcmp(cur.name, want.name) == 0)
		return CODE_OK;
	if ((rc = reg->be->hospital_put(reg->h, &want, o->now_ms)) < 0)
		return op_backend(o, rc);
	snprintf(detail, sizeof(detail), "code=%s role=%s%s", ha->code,
	    want.role == ONECARD__V1__ROLE__ROLE_ADMIN ? "admin" : "hospital",
	    existed && !cur.active ? " reactivated" : "");
	return op_event_hospital(o, "hospital_add", ha->code, detail);
}

/* hospital_revoke: mark a hospital revoked. */
int
op_hospital_revoke(struct reg_op *o)
{
	struct registry *reg = o->reg;
	const Onecard__V1__HospitalRevoke *hr = o->req->hospital_revoke;
	struct registry_hospital cur;
	char detail[DETAIL_MAX];
	int rc;

	if ((rc = op_need_admin(o, "hospital_revoke")) != CODE_OK)
		return rc;
	if (hr == NULL)
		return op_fail(o, CODE_INVALID, "hospital_revoke: missing");
	if (validate_hospital_code(
		"code", hr->code ? hr->code : "", o->msg, sizeof(o->msg)) == -1)
		return CODE_INVALID;
	op_target(o, NULL, hr->code);
	rc = reg->be->hospital_get(reg->h, hr->code, &reg->arena, &cur);
	if (rc < 0)
		return op_backend(o, rc);
	if (rc == 1)
		return op_fail(
		    o, CODE_NOT_FOUND, "code: no hospital %s", hr->code);
	if (!cur.active)
		return CODE_OK;
	cur.active = 0;
	if ((rc = reg->be->hospital_put(reg->h, &cur, o->now_ms)) < 0)
		return op_backend(o, rc);
	snprintf(detail, sizeof(detail), "code=%s", hr->code);
	return op_event_hospital(o, "hospital_revoke", hr->code, detail);
}

/* Collect hospitals (a backend callback). */
static int
hospital_add_cb(void *arg, const struct registry_hospital *h)
{
	struct reg_op *o = arg;
	struct registry_arena *a = &o->reg->arena;
	Onecard__V1__HospitalListResult *hl = o->reply.hospitals;
	Onecard__V1__Hospital *m, **v;

	if ((hl->n_hospitals & (hl->n_hospitals - 1)) == 0) {
		/* Grow at 0, 1, 2, 4, ...: double the array. */
		size_t cap = hl->n_hospitals ? hl->n_hospitals * 2 : 1;

		if ((v = arena_alloc(a, cap * sizeof(*v))) == NULL)
			return -1;
		if (hl->n_hospitals)
			memcpy(v, hl->hospitals, hl->n_hospitals * sizeof(*v));
		hl->hospitals = v;
	}
	if ((m = arena_alloc(a, sizeof(*m))) == NULL)
		return -1;
	onecard__v1__hospital__init(m);
	if ((m->code = arena_strdup(a, h->code)) == NULL ||
	    (m->name = arena_strdup(a, h->name)) == NULL)
		return -1;
	m->role = h->role;
	m->active = h->active;
	hl->hospitals[hl->n_hospitals++] = m;
	return 0;
}

/* hospital_list: every hospital, active or revoked (admin). */
int
op_hospital_list(struct reg_op *o)
{
	Onecard__V1__HospitalListResult *hl;
	int rc;

	if ((rc = op_need_admin(o, "hospital_list")) != CODE_OK)
		return rc;
	if ((hl = arena_alloc(&o->reg->arena, sizeof(*hl))) == NULL)
		return op_nomem(o);
	onecard__v1__hospital_list_result__init(hl);
	o->reply.result_case = ONECARD__V1__REPLY__RESULT_HOSPITALS;
	o->reply.hospitals = hl;
	rc = o->reg->be->hospital_list(o->reg->h, hospital_add_cb, o);
	if (rc < 0) {
		o->reply.result_case = ONECARD__V1__REPLY__RESULT__NOT_SET;
		return op_backend(o, rc);
	}
	return CODE_OK;
}
