/*
 * test_policy.c: the disclosure policy (broker/policy.c), compiled into
 * this test: the keys and their refusals, which rule a caller resolves to
 * (default, per hospital, admin) and again after a reload, the decision
 * for each identifier, and the frame filter -- bytes untouched when nothing
 * is hidden, a patient's identifiers left out or masked, an event's detail
 * cut, several frames in one buffer, ids kept.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "../../broker/policy.c"

#define CNID        "11010519491231002X"
#define CNID_MASKED "110105********002X"

/* A policy from the config lines "key=value" (code.key for a hospital). */
static void
apply(const char *const *lines)
{
	struct policy_config pc;
	char err[256];

	policy_config_init(&pc);
	for (; *lines != NULL; lines++) {
		char buf[128], *eq, *dot;
		const char *code = NULL, *key = buf;

		snprintf(buf, sizeof buf, "%s", *lines);
		eq = strchr(buf, '=');
		assert_non_null(eq);
		*eq = '\0';
		if ((dot = strchr(buf, '.')) != NULL) {
			*dot = '\0';
			code = buf;
			key = dot + 1;
		}
		assert_int_equal(
		    policy_config_set(&pc, code, key, eq + 1, err, sizeof err),
		    0);
	}
	assert_int_equal(policy_apply(&pc), 0);
	policy_config_free(&pc);
}

static int
teardown(void **state)
{
	(void)state;
	policy_free();
	return 0;
}

static void
bad_values_are_refused_naming_the_key(void **state)
{
	struct policy_config pc;
	char err[256];

	(void)state;
	policy_config_init(&pc);
	assert_int_equal(
	    policy_config_set(&pc, NULL, "disclosure", "most", err, sizeof err),
	    -1);
	assert_non_null(strstr(err, "--disclosure: 'most'"));
	assert_int_equal(policy_config_set(&pc, "XC001", "disclosure-cn-id",
			     "minimal", err, sizeof err),
	    -1);
	assert_non_null(strstr(err, "hospital.XC001.disclosure-cn-id"));
	assert_int_equal(policy_config_set(&pc, NULL, "disclosure", "Minimal",
			     err, sizeof err),
	    0);
	assert_int_equal(pc.dflt.ids, POLICY_IDS_MINIMAL);
	policy_config_free(&pc);
}

static void
rules_resolve_by_hospital_default_and_role(void **state)
{
	static const char *const conf[] = {"disclosure=minimal",
	    "XC002.disclosure=full", "XC003.disclosure-cn-id=masked", NULL};
	struct policy_who w;

	(void)state;
	policy_resolve(&w, "XC001", ONECARD__V1__ROLE__ROLE_HOSPITAL);
	assert_true(policy_is_full(&w)); /* nothing applied yet */
	apply(conf);
	policy_refresh(&w);
	assert_int_equal(w.rule.ids, POLICY_IDS_MINIMAL);
	assert_int_equal(w.rule.cn_id, POLICY_CNID_FULL);
	policy_resolve(&w, "XC002", ONECARD__V1__ROLE__ROLE_HOSPITAL);
	assert_true(policy_is_full(&w));
	policy_resolve(&w, "XC003", ONECARD__V1__ROLE__ROLE_HOSPITAL);
	assert_int_equal(w.rule.ids, POLICY_IDS_MINIMAL);
	assert_int_equal(w.rule.cn_id, POLICY_CNID_MASKED);
	policy_resolve(&w, "XC003", ONECARD__V1__ROLE__ROLE_ADMIN);
	assert_true(policy_is_full(&w));
}

static void
a_reload_reaches_a_resolved_caller(void **state)
{
	static const char *const minimal[] = {"disclosure=minimal", NULL};
	static const char *const full[] = {
	    "XC001.disclosure=full", "disclosure=minimal", NULL};
	struct policy_who w;

	(void)state;
	apply(minimal);
	policy_resolve(&w, "XC001", ONECARD__V1__ROLE__ROLE_HOSPITAL);
	assert_false(policy_is_full(&w));
	apply(full);
	policy_refresh(&w);
	assert_true(policy_is_full(&w));
}

static void
each_identifier_is_decided(void **state)
{
	static char *targets[] = {"hosp:XC002"};
	struct policy_who w = {.cn = "XC001"};

	(void)state;
	w.rule.ids = POLICY_IDS_MINIMAL;
	w.rule.cn_id = POLICY_CNID_FULL;
	assert_int_equal(policy_identifier(&w, "cn-id", NULL, 0), POLICY_SHOW);
	assert_int_equal(policy_identifier(&w, "cn-ssc", NULL, 0), POLICY_SHOW);
	assert_int_equal(
	    policy_identifier(&w, "hosp:XC001", NULL, 0), POLICY_SHOW);
	assert_int_equal(
	    policy_identifier(&w, "hosp:XC002", NULL, 0), POLICY_HIDE);
	assert_int_equal(
	    policy_identifier(&w, "hosp:XC002", targets, 1), POLICY_SHOW);
	assert_int_equal(
	    policy_identifier(&w, "hosp:XC0011", NULL, 0), POLICY_HIDE);
	w.rule.cn_id = POLICY_CNID_MASKED;
	assert_int_equal(policy_identifier(&w, "cn-id", NULL, 0), POLICY_MASK);
	w.rule.ids = POLICY_IDS_FULL;
	assert_int_equal(
	    policy_identifier(&w, "hosp:XC002", NULL, 0), POLICY_SHOW);
}

static void
target_domains_are_checked(void **state)
{
	static char *good[] = {"hosp:XC002", "cn-id", "cn-ssc", "pid"};
	static char *bad[] = {"hosp:XC002", "hosp:"};
	Onecard__V1__Lookup l = ONECARD__V1__LOOKUP__INIT;
	char err[160];

	(void)state;
	l.target_domains = good;
	l.n_target_domains = 4;
	assert_int_equal(policy_check_targets(&l, 16, err, sizeof err), 0);
	assert_int_equal(policy_check_targets(&l, 3, err, sizeof err), -1);
	assert_non_null(strstr(err, "--max-ids"));
	l.target_domains = bad;
	l.n_target_domains = 2;
	assert_int_equal(policy_check_targets(&l, 16, err, sizeof err), -1);
	assert_non_null(strstr(err, "target_domains[1]"));
}

/* The test patient: a cn-id and one card of each of three hospitals. */
struct patient {
	Onecard__V1__Patient p;
	Onecard__V1__Identifier id[4], *ids[4];
	char cnid[sizeof CNID];
};

static void
patient_init(struct patient *t)
{
	static const char *const dom[] = {
	    "cn-id", "hosp:XC001", "hosp:XC002", "hosp:XC003"};
	static const char *const val[] = {CNID, "A", "B", "C"};

	onecard__v1__patient__init(&t->p);
	t->p.patient_id = "PTEST";
	t->p.version = 3;
	memcpy(t->cnid, CNID, sizeof CNID);
	for (int i = 0; i < 4; i++) {
		onecard__v1__identifier__init(&t->id[i]);
		t->id[i].domain = (char *)dom[i];
		t->id[i].value = i == 0 ? t->cnid : (char *)val[i];
		t->ids[i] = &t->id[i];
	}
	t->p.identifiers = t->ids;
	t->p.n_identifiers = 4;
}

static void
a_patient_is_filtered_in_place(void **state)
{
	static char *targets[] = {"hosp:XC003"};
	struct policy_who w = {.cn = "XC001"};
	struct patient t;

	(void)state;
	w.rule.ids = POLICY_IDS_MINIMAL;
	w.rule.cn_id = POLICY_CNID_MASKED;
	patient_init(&t);
	assert_int_equal(policy_filter_patient(&w, targets, 1, &t.p), 2);
	assert_int_equal(t.p.n_identifiers, 3);
	assert_string_equal(t.p.identifiers[0]->value, CNID_MASKED);
	assert_string_equal(t.p.identifiers[1]->domain, "hosp:XC001");
	assert_string_equal(t.p.identifiers[2]->domain, "hosp:XC003");
}

/* Append Reply{id, patient} (or, with detail, a pushed event) to b. */
static void
add_frame(struct evbuffer *b, uint64_t id, const char *detail)
{
	Onecard__V1__Reply r = ONECARD__V1__REPLY__INIT;
	Onecard__V1__Event e = ONECARD__V1__EVENT__INIT;
	struct patient t;

	patient_init(&t);
	r.id = id;
	if (detail != NULL) {
		e.seq = 9;
		e.op = "link";
		e.detail = (char *)detail;
		e.patient = &t.p;
		r.result_case = ONECARD__V1__REPLY__RESULT_EVENT;
		r.event = &e;
	} else {
		r.result_case = ONECARD__V1__REPLY__RESULT_PATIENT;
		r.patient = &t.p;
	}
	assert_int_equal(wire_append(b, &r.base), 0);
}

/* Take the next frame of b, decoded. */
static Onecard__V1__Reply *
take_frame(struct evbuffer *b)
{
	Onecard__V1__Reply *r;
	size_t len;

	assert_int_equal(wire_peek_evbuffer(b, SIZE_MAX, &len), WIRE_FRAME);
	r = wire_reply_unpack(
	    evbuffer_pullup(b, -1) + WIRE_HEADER_LEN, len, 1 << 20, NULL);
	assert_non_null(r);
	evbuffer_drain(b, WIRE_HEADER_LEN + len);
	return r;
}

static void
frames_are_filtered_and_untouched_ones_kept(void **state)
{
	static char *targets[] = {"hosp:XC002", "hosp:XC003"};
	struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
	struct evbuffer *ref = evbuffer_new();
	struct policy_who w = {.cn = "XC001"};
	Onecard__V1__Reply *r;

	(void)state;
	w.rule.ids = POLICY_IDS_MINIMAL;
	/* Every domain named: nothing to hide, the very bytes go out. */
	add_frame(in, 7, NULL);
	add_frame(ref, 7, NULL);
	assert_int_equal(policy_filter_frames(&w, targets, 2, in, out), 0);
	assert_int_equal(evbuffer_get_length(in), 0);
	assert_int_equal(evbuffer_get_length(out), evbuffer_get_length(ref));
	assert_memory_equal(evbuffer_pullup(out, -1), evbuffer_pullup(ref, -1),
	    evbuffer_get_length(ref));
	evbuffer_drain(out, evbuffer_get_length(out));

	/* Two frames, nothing named: each loses the other hospitals'. */
	add_frame(in, 8, NULL);
	add_frame(in, 0,
	    "cn-id=" CNID_MASKED ",hosp:XC002=B,hosp:XC001=A,hosp:XC003=C");
	assert_int_equal(policy_filter_frames(&w, NULL, 0, in, out), 0);
	r = take_frame(out);
	assert_int_equal(r->id, 8);
	assert_int_equal(r->patient->n_identifiers, 2);
	assert_string_equal(r->patient->identifiers[0]->value, CNID);
	assert_string_equal(r->patient->identifiers[1]->domain, "hosp:XC001");
	assert_int_equal(r->patient->version, 3);
	wire_reply_free(r);
	r = take_frame(out);
	assert_int_equal(r->id, 0);
	assert_int_equal(r->event->seq, 9);
	assert_int_equal(r->event->patient->n_identifiers, 2);
	assert_string_equal(
	    r->event->detail, "cn-id=" CNID_MASKED ",hosp:XC001=A");
	wire_reply_free(r);
	assert_int_equal(evbuffer_get_length(out), 0);

	/* Every domain named but the cn-id masked: re-encoded all the same. */
	w.rule.cn_id = POLICY_CNID_MASKED;
	add_frame(in, 10, NULL);
	assert_int_equal(policy_filter_frames(&w, targets, 2, in, out), 0);
	r = take_frame(out);
	assert_int_equal(r->id, 10);
	assert_int_equal(r->patient->n_identifiers, 4);
	assert_string_equal(r->patient->identifiers[0]->value, CNID_MASKED);
	wire_reply_free(r);
	evbuffer_free(in);
	evbuffer_free(out);
	evbuffer_free(ref);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(bad_values_are_refused_naming_the_key),
	    cmocka_unit_test_teardown(
		rules_resolve_by_hospital_default_and_role, teardown),
	    cmocka_unit_test_teardown(
		a_reload_reaches_a_resolved_caller, teardown),
	    cmocka_unit_test(each_identifier_is_decided),
	    cmocka_unit_test(target_domains_are_checked),
	    cmocka_unit_test(a_patient_is_filtered_in_place),
	    cmocka_unit_test(frames_are_filtered_and_untouched_ones_kept),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
