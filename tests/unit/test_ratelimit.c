/*
 * test_ratelimit.c: the token bucket arithmetic of broker/ratelimit.c
 * (GCRA: a bucket kept as its theoretical arrival time), its parser of
 * RATE[/BURST], and its peers across a reload: exactly a burst at once,
 * refill at the rate and never past the burst, the retry time, a clock
 * that reads earlier than the bucket's last take (another thread's), the
 * first take at time 0, admins unlimited unless configured, a reload that
 * changes a rate under a held pointer. The source is compiled into the
 * test (the broker is not a library).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../broker/ratelimit.c"

#define S  1000000000ULL
#define MS 1000000ULL

/* Take n at now from a bucket of rate r and burst b; how many passed. */
static int
take_n(uint64_t *tat, uint64_t now, uint64_t r, uint64_t b, int n)
{
	uint64_t iv = S / r, next, retry;
	int ok = 0;

	for (int i = 0; i < n; i++)
		if (ratelimit_gcra(*tat, now, iv, iv * b, &next, &retry) == 0) {
			*tat = next;
			ok++;
		}
	return ok;
}

static void
exactly_the_burst_passes_at_once(void **state)
{
	uint64_t tat = 0, next, retry;

	(void)state;
	assert_int_equal(take_n(&tat, 100 * S, 1, 5, 5), 5);
	/* The sixth waits one interval: 1 s at 1/s. */
	assert_int_equal(
	    ratelimit_gcra(tat, 100 * S, S, 5 * S, &next, &retry), -1);
	assert_int_equal(retry, S);
	/* A burst of 1 is one at a time. */
	tat = 0;
	assert_int_equal(take_n(&tat, 100 * S, 10, 1, 3), 1);
}

static void
the_bucket_refills_at_the_rate_and_never_past_the_burst(void **state)
{
	uint64_t tat = 0, next, retry;

	(void)state;
	assert_int_equal(take_n(&tat, 10 * S, 1, 5, 5), 5);
	/* 1.5 s later: one back (and half of the next). */
	assert_int_equal(take_n(&tat, 10 * S + 1500 * MS, 1, 5, 5), 1);
	assert_int_equal(
	    ratelimit_gcra(tat, 10 * S + 1500 * MS, S, 5 * S, &next, &retry),
	    -1);
	assert_int_equal(retry, 500 * MS);
	/* An hour of quiet fills it to the burst, not to 3600. */
	assert_int_equal(take_n(&tat, 3600 * S, 1, 5, 100), 5);
	/* At 100/s, 10 ms is one. */
	tat = 0;
	assert_int_equal(take_n(&tat, S, 100, 2, 3), 2);
	assert_int_equal(take_n(&tat, S + 10 * MS, 100, 2, 3), 1);
}

static void
a_clock_behind_the_bucket_neither_wraps_nor_frees_tokens(void **state)
{
	uint64_t tat = 0, next, retry;

	(void)state;
	/* Another thread took at 5 s; this one read the clock at 4.999 s:
	 * the bucket's last token is 1 ms ahead of it (no wrap to a huge
	 * free count), and at 5 s it is there. */
	assert_int_equal(take_n(&tat, 5 * S, 1, 2, 1), 1);
	assert_int_equal(take_n(&tat, 5 * S - MS, 1, 2, 5), 0);
	assert_int_equal(
	    ratelimit_gcra(tat, 5 * S - MS, S, 2 * S, &next, &retry), -1);
	assert_int_equal(retry, MS);
	assert_int_equal(take_n(&tat, 5 * S, 1, 2, 5), 1);
	/* Far behind (a stale reading): refused, never let through. */
	assert_int_equal(take_n(&tat, 1 * S, 1, 2, 5), 0);
	/* A clock at 0 (the first take of all, a clock that started at 0)
	 * and at the top of the range. */
	tat = 0;
	assert_int_equal(take_n(&tat, 0, 1, 3, 4), 3);
	tat = 0;
	assert_int_equal(
	    take_n(&tat, UINT64_MAX / 2, 1000000, 1000000, 1000001), 1000000);
}

static void
rates_parse_with_their_key_named(void **state)
{
	struct ratelimit_conf c;
	char err[256];

	(void)state;
	memset(&c, 0, sizeof c);
	assert_int_equal(ratelimit_conf_set(&c, NULL, RATELIMIT_LOOKUP,
			     "100/250", "--rate-lookup", err, sizeof err),
	    0);
	assert_int_equal(c.def[RATELIMIT_LOOKUP].rate, 100);
	assert_int_equal(c.def[RATELIMIT_LOOKUP].burst, 250);
	/* The burst defaults to the rate. */
	assert_int_equal(ratelimit_conf_set(&c, "XC001", RATELIMIT_WRITE, "7",
			     "hospital.XC001.rate-write", err, sizeof err),
	    0);
	assert_int_equal(ratelimit_conf_find(&c, "XC001")->r[2].burst, 7);
	assert_int_equal(ratelimit_conf_set(&c, NULL, RATELIMIT_SEARCH, "0",
			     "--rate-search", err, sizeof err),
	    0);
	static const char *const bad[] = {"", "x", "1/", "/5", "1/0", "0/5",
	    "1000001", "5/1000001", "-1", "1.5", " 5", "5 ", "1/2/3",
	    "99999999999999999999"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		assert_int_equal(ratelimit_conf_set(&c, NULL, RATELIMIT_LOOKUP,
				     bad[i], "--rate-lookup", err, sizeof err),
		    -1);
		assert_non_null(strstr(err, "--rate-lookup: '"));
	}
	assert_int_equal(ratelimit_conf_set(&c, "X Y", RATELIMIT_LOOKUP, "5",
			     "hospital.X Y.rate-lookup", err, sizeof err),
	    -1);
	assert_non_null(strstr(err, "is not a hospital code"));
	assert_int_equal(ratelimit_kind_of_key("rate-write"), RATELIMIT_WRITE);
	assert_int_equal(ratelimit_kind_of_key("rate-"), -1);
	assert_int_equal(ratelimit_kind_of_key("max-frame"), -1);
	ratelimit_conf_clear(&c);
}

static void
peers_follow_a_reload_and_admins_are_free_unless_named(void **state)
{
	struct ratelimit_conf c;
	struct ratelimit_peer *h1, *h2, *adm, *adm2;
	uint64_t retry;
	uint32_t rate, burst;
	char err[256];
	int ok = 0;

	(void)state;
	memset(&c, 0, sizeof c);
	assert_int_equal(ratelimit_conf_set(&c, NULL, RATELIMIT_LOOKUP, "1/2",
			     "x", err, sizeof err),
	    0);
	assert_int_equal(ratelimit_conf_set(&c, "H2", RATELIMIT_LOOKUP, "1/4",
			     "x", err, sizeof err),
	    0);
	assert_int_equal(ratelimit_conf_set(&c, "ADM2", RATELIMIT_LOOKUP, "1/1",
			     "x", err, sizeof err),
	    0);
	assert_int_equal(ratelimit_apply(&c), 0);
	h1 = ratelimit_peer("H1", 0);
	h2 = ratelimit_peer("H2", 0);
	adm = ratelimit_peer("ADM", 1);
	adm2 = ratelimit_peer("ADM2", 1);
	assert_ptr_equal(ratelimit_peer("H1", 0), h1);
	for (int i = 0; i < 10; i++)
		ok += ratelimit_take(
			  h1, RATELIMIT_LOOKUP, S, &retry, &rate, &burst) == 0;
	assert_int_equal(ok, 2);
	assert_int_equal(rate, 1);
	assert_int_equal(burst, 2);
	ok = 0;
	for (int i = 0; i < 10; i++)
		ok += ratelimit_take(
			  h2, RATELIMIT_LOOKUP, S, &retry, &rate, &burst) == 0;
	assert_int_equal(ok, 4);
	/* Searches have no rate: unlimited. */
	for (int i = 0; i < 100; i++)
		assert_int_equal(ratelimit_take(h1, RATELIMIT_SEARCH, S, &retry,
				     &rate, &burst),
		    0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(ratelimit_take(adm, RATELIMIT_LOOKUP, S,
				     &retry, &rate, &burst),
		    0);
	assert_int_equal(
	    ratelimit_take(adm2, RATELIMIT_LOOKUP, S, &retry, &rate, &burst),
	    0);
	assert_int_equal(
	    ratelimit_take(adm2, RATELIMIT_LOOKUP, S, &retry, &rate, &burst),
	    -1);
	/* Reload: H1 gets 1/3 through the pointer it had, full again; H2's
	 * unchanged bucket stays empty. */
	assert_int_equal(ratelimit_conf_set(&c, NULL, RATELIMIT_LOOKUP, "1/3",
			     "x", err, sizeof err),
	    0);
	assert_int_equal(ratelimit_apply(&c), 0);
	ok = 0;
	for (int i = 0; i < 10; i++)
		ok += ratelimit_take(
			  h1, RATELIMIT_LOOKUP, S, &retry, &rate, &burst) == 0;
	assert_int_equal(ok, 3);
	assert_int_equal(
	    ratelimit_take(h2, RATELIMIT_LOOKUP, S, &retry, &rate, &burst), -1);
	/* NULL (no peer) is never limited. */
	assert_int_equal(
	    ratelimit_take(NULL, RATELIMIT_LOOKUP, S, &retry, &rate, &burst),
	    0);
	ratelimit_conf_clear(&c);
	ratelimit_free();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(exactly_the_burst_passes_at_once),
	    cmocka_unit_test(
		the_bucket_refills_at_the_rate_and_never_past_the_burst),
	    cmocka_unit_test(
		a_clock_behind_the_bucket_neither_wraps_nor_frees_tokens),
	    cmocka_unit_test(rates_parse_with_their_key_named),
	    cmocka_unit_test(
		peers_follow_a_reload_and_admins_are_free_unless_named),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
