/*
 * registry_replay.c: apply one redo-log entry through a store's primitives.
 * The one reader of the record format registry_redo.h defines; the SQLite
 * store folds entries with it, the in-memory one replays them at start-up.
 */
#include <string.h>

#include "log.h"
#include "registry_backend.h"
#include "registry_redo.h"

int
registry_redo_apply(
    const struct registry_backend *be, void *h, const uint8_t *p, size_t len)
{
	struct redo_reader r = {p, p + len, 0};
	struct registry_patient pt;
	struct registry_hospital hosp;
	struct registry_event ev;
	struct registry_pair pr;
	const char *a, *b, *c;
	int64_t id, n;
	int type, rc = 0;

	while (rc == 0 && (type = redo_get_type(&r)) != -1) {
		switch (type) {
		case REC_IDENT_INSERT:
		case REC_IDENT_MOVE:
			a = redo_get_str(&r);
			b = redo_get_str(&r);
			c = redo_get_str(&r);
			if (!r.bad)
				rc = type == REC_IDENT_INSERT
				    ? be->ident_insert(h, a, b, c)
				    : be->ident_move(h, a, b, c);
			break;
		case REC_IDENT_DELETE:
			a = redo_get_str(&r);
			b = redo_get_str(&r);
			if (!r.bad)
				rc = be->ident_delete(h, a, b);
			break;
		case REC_PATIENT_INSERT:
		case REC_PATIENT_UPDATE:
			memset(&pt, 0, sizeof(pt));
			registry_copy(pt.id, redo_get_str(&r), sizeof(pt.id));
			pt.name = (char *)redo_get_str(&r);
			pt.sex = (int)redo_get_int(&r);
			pt.birth_date = (char *)redo_get_str(&r);
			pt.phone = (char *)redo_get_str(&r);
			pt.address = (char *)redo_get_str(&r);
			pt.version = (uint64_t)redo_get_int(&r);
			registry_copy(pt.merged_into, redo_get_str(&r),
			    sizeof(pt.merged_into));
			if (type == REC_PATIENT_UPDATE) {
				if (!r.bad)
					rc = be->patient_update(h, &pt);
				break;
			}
			n = redo_get_int(&r);
			if (!r.bad)
				rc = be->patient_insert(h, &pt, n);
			break;
		case REC_EVENT_APPEND:
		case REC_EVENT_APPEND2:
			/* seq set: the store keeps this very number. */
			ev.seq = (uint64_t)redo_get_int(&r);
			ev.op = redo_get_str(&r);
			ev.patient_id = redo_get_str(&r);
			ev.actor = redo_get_str(&r);
			ev.time_ms = redo_get_int(&r);
			ev.detail = redo_get_str(&r);
			ev.other_patient_id = ev.notify = "";
			if (type == REC_EVENT_APPEND2) {
				ev.other_patient_id = redo_get_str(&r);
				ev.notify = redo_get_str(&r);
			}
			if (!r.bad)
				rc = be->event_append(h, &ev);
			break;
		case REC_HOSPITAL_PUT:
			hosp.code = redo_get_str(&r);
			hosp.name = redo_get_str(&r);
			hosp.role = (int)redo_get_int(&r);
			hosp.active = (int)redo_get_int(&r);
			n = redo_get_int(&r);
			if (!r.bad)
				rc = be->hospital_put(h, &hosp, n);
			break;
		case REC_MERGE_INSERT:
			/* id set: the store keeps this very id. */
			id = redo_get_int(&r);
			a = redo_get_str(&r);
			b = redo_get_str(&r);
			n = redo_get_int(&r);
			if (!r.bad)
				rc =
				    be->merge_insert(h, a, b, (uint64_t)n, &id);
			break;
		case REC_MERGE_IDENT_INSERT:
			id = redo_get_int(&r);
			a = redo_get_str(&r);
			b = redo_get_str(&r);
			if (!r.bad)
				rc = be->merge_ident_insert(h, id, a, b);
			break;
		case REC_MERGE_UNDO:
			id = redo_get_int(&r);
			if (!r.bad)
				rc = be->merge_undo(h, id);
			break;
		case REC_PAIR_INSERT:
			memset(&pr, 0, sizeof(pr));
			pr.id = redo_get_int(&r);
			registry_copy(pr.a, redo_get_str(&r), sizeof(pr.a));
			registry_copy(pr.b, redo_get_str(&r), sizeof(pr.b));
			n = redo_get_int(&r);
			memcpy(&pr.score, &n, sizeof(pr.score));
			pr.grade = (int)redo_get_int(&r);
			pr.reason = redo_get_str(&r);
			pr.state = (int)redo_get_int(&r);
			pr.found_ms = redo_get_int(&r);
			if (!r.bad)
				rc = be->pair_insert(h, &pr);
			break;
		case REC_PAIR_STATE:
			id = redo_get_int(&r);
			n = redo_get_int(&r);
			if (!r.bad)
				rc = be->pair_state(h, id, (int)n);
			break;
		default:
			r.bad = 1;
			break;
		}
	}
	if (rc == 0 && r.bad) {
		log_warnx("registry: malformed redo record");
		rc = REGISTRY_EFAIL;
	}
	return rc;
}
