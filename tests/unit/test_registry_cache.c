/*
 * test_registry_cache.c: the lookup reply cache on its own: probes,
 * replacement, the byte budget at its edge, oldest-first eviction, the log
 * wrapping round and reusing holes, dropping
 * a published patient's entries (and only those), and a worker that fell
 * more than the ring behind dropping everything.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "registry_cache.h"

/* Charged size of an entry with this key and reply, measured by the cache
 * itself: the bytes it reports after one put into an empty cache. */
static size_t
entry_size(size_t keylen, size_t reply_len)
{
	struct lcache *lc = lcache_new(1 << 20);
	struct lcache_stats a, b;
	char key[64] = {0};
	uint8_t reply[256] = {0};
	size_t size;

	assert_non_null(lc);
	lcache_stats(&a);
	assert_int_equal(
	    lcache_put(lc, key, keylen, "P1", reply, reply_len), 0);
	lcache_stats(&b);
	size = b.bytes - a.bytes;
	lcache_free(lc);
	return size;
}

static void
put(struct lcache *lc, const char *key, const char *pid, const char *reply)
{
	assert_int_equal(lcache_put(lc, key, strlen(key), pid,
			     (const uint8_t *)reply, strlen(reply)),
	    0);
}

/* The reply cached under key, or NULL. */
static const char *
get(struct lcache *lc, const char *key)
{
	static char buf[256];
	const struct lcache_hit *hit;

	lcache_sync(lc);
	if ((hit = lcache_get(lc, key, strlen(key))) == NULL)
		return NULL;
	snprintf(buf, sizeof(buf), "%.*s", (int)hit->reply_len,
	    (const char *)hit->reply);
	return buf;
}

static void
put_get_and_replace(void **state)
{
	struct lcache *lc = lcache_new(1 << 20);
	const struct lcache_hit *hit;

	(void)state;
	assert_non_null(lc);
	assert_null(get(lc, "cn-id=1"));
	put(lc, "a", "P1", "reply-a");
	put(lc, "b", "P2", "reply-b");
	assert_string_equal(get(lc, "a"), "reply-a");
	assert_string_equal(get(lc, "b"), "reply-b");
	/* A newer answer for the same key replaces the old one. */
	put(lc, "a", "P3", "reply-a2");
	assert_string_equal(get(lc, "a"), "reply-a2");
	hit = lcache_get(lc, "a", 1);
	assert_non_null(hit);
	assert_string_equal(hit->pid, "P3");
	/* Keys are compared by length too: "a" is not "ab". */
	assert_null(get(lc, "ab"));
	/* A pid too long to keep is refused, not cut. */
	assert_int_equal(
	    lcache_put(lc, "c", 1,
		"P0123456789012345678901234567890123456789012345678",
		(const uint8_t *)"x", 1),
	    -1);
	lcache_free(lc);
}

static void
budget_is_kept_at_its_edge_oldest_first(void **state)
{
	size_t one = entry_size(1, 7);
	struct lcache *lc;
	struct lcache_stats before, after;

	(void)state;
	/* Room for exactly three entries. */
	lc = lcache_new(3 * one);
	assert_non_null(lc);
	lcache_stats(&before);
	put(lc, "a", "P1", "reply-a");
	put(lc, "b", "P2", "reply-b");
	put(lc, "c", "P3", "reply-c");
	assert_non_null(get(lc, "a"));
	assert_non_null(get(lc, "b"));
	assert_non_null(get(lc, "c"));
	/* A fourth pushes out the oldest, and only it. */
	put(lc, "d", "P4", "reply-d");
	assert_null(get(lc, "a"));
	assert_non_null(get(lc, "b"));
	assert_non_null(get(lc, "d"));
	lcache_stats(&after);
	assert_int_equal(after.evictions - before.evictions, 1);
	assert_int_equal(after.bytes - before.bytes, 3 * one);
	lcache_free(lc);

	/* An entry bigger than the whole budget is not kept. */
	lc = lcache_new(one - 1);
	assert_non_null(lc);
	assert_int_equal(
	    lcache_put(lc, "a", 1, "P1", (const uint8_t *)"reply-a", 7), -1);
	assert_null(get(lc, "a"));
	lcache_free(lc);
}

/* The log wraps: a hole left by a dropped entry is reused when the tail
 * comes round to it, and until then the oldest entry is what goes. */
static void
log_wraps_and_reuses_holes_in_order(void **state)
{
	size_t one = entry_size(1, 7);
	struct lcache *lc = lcache_new(3 * one);
	uint64_t b = lcache_hash("PB", 2);
	struct lcache_stats s0, s1;

	(void)state;
	assert_non_null(lc);
	put(lc, "a", "PA", "reply-a");
	put(lc, "b", "PB", "reply-b");
	put(lc, "c", "PC", "reply-c");
	lcache_publish(&b, 1);
	assert_null(get(lc, "b")); /* a hole in the middle */
	lcache_stats(&s0);
	put(lc, "d", "PD", "reply-d"); /* the tail wraps onto a */
	assert_null(get(lc, "a"));
	assert_string_equal(get(lc, "c"), "reply-c");
	put(lc, "e", "PE", "reply-e"); /* fills b's hole: nothing goes */
	assert_string_equal(get(lc, "c"), "reply-c");
	assert_string_equal(get(lc, "d"), "reply-d");
	assert_string_equal(get(lc, "e"), "reply-e");
	lcache_stats(&s1);
	assert_int_equal(s1.evictions - s0.evictions, 1);
	put(lc, "f", "PF", "reply-f"); /* now c, the oldest, goes */
	assert_null(get(lc, "c"));
	assert_string_equal(get(lc, "d"), "reply-d");
	assert_string_equal(get(lc, "e"), "reply-e");
	assert_string_equal(get(lc, "f"), "reply-f");
	lcache_free(lc);
}

static void
published_patient_is_dropped_everywhere(void **state)
{
	struct lcache *w1 = lcache_new(1 << 20), *w2 = lcache_new(1 << 20);
	uint64_t h = lcache_hash("P1", 2);

	(void)state;
	assert_non_null(w1);
	assert_non_null(w2);
	put(w1, "cn-id=1", "P1", "p1");
	put(w1, "hosp:X=1", "P1", "p1");
	put(w1, "hosp:X=2", "P2", "p2");
	put(w2, "pid=P1", "P1", "p1");
	lcache_publish(&h, 1);
	/* Entries are compared with get(), which syncs first. */
	assert_null(get(w1, "cn-id=1"));
	assert_null(get(w1, "hosp:X=1"));
	assert_string_equal(get(w1, "hosp:X=2"), "p2");
	assert_null(get(w2, "pid=P1"));
	/* Entries put after the publish are kept. */
	put(w1, "cn-id=1", "P1", "p1-new");
	assert_string_equal(get(w1, "cn-id=1"), "p1-new");
	lcache_free(w1);
	lcache_free(w2);
}

static void
a_worker_too_far_behind_drops_everything(void **state)
{
	static uint64_t many[LCACHE_RING + 1];
	struct lcache *lc = lcache_new(1 << 20);
	struct lcache_stats before, after;

	(void)state;
	assert_non_null(lc);
	lcache_stats(&before);
	put(lc, "a", "P1", "reply-a");
	put(lc, "b", "P2", "reply-b");
	/* Exactly a ring's worth of other patients: still caught up. */
	for (size_t i = 0; i < LCACHE_RING; i++)
		many[i] = lcache_hash("other", 5) + i + 1;
	lcache_publish(many, LCACHE_RING);
	assert_non_null(get(lc, "a"));
	/* One more than the ring: everything goes. */
	lcache_publish(many, LCACHE_RING + 1);
	assert_null(get(lc, "a"));
	assert_null(get(lc, "b"));
	lcache_stats(&after);
	assert_int_equal(after.flushes - before.flushes, 1);
	lcache_free(lc);
}

static void
tables_grow_and_every_key_is_found(void **state)
{
	struct lcache *lc = lcache_new(64 << 20);
	char key[32], want[32];

	(void)state;
	assert_non_null(lc);
	for (int i = 0; i < 20000; i++) {
		snprintf(key, sizeof(key), "cn-id%c%d", 0, i);
		snprintf(want, sizeof(want), "r%d", i);
		assert_int_equal(lcache_put(lc, key, 6 + strlen(key + 6),
				     i % 2 ? "P1" : "P2", (const uint8_t *)want,
				     strlen(want)),
		    0);
	}
	for (int i = 0; i < 20000; i++) {
		const struct lcache_hit *hit;

		snprintf(key, sizeof(key), "cn-id%c%d", 0, i);
		snprintf(want, sizeof(want), "r%d", i);
		hit = lcache_get(lc, key, 6 + strlen(key + 6));
		assert_non_null(hit);
		assert_int_equal(hit->reply_len, strlen(want));
		assert_memory_equal(hit->reply, want, strlen(want));
	}
	lcache_free(lc);
}

/* Prefetch hints hash as a probe does and change nothing, hit or miss. */
static void
prefetch_hints_change_nothing(void **state)
{
	struct lcache *lc = lcache_new(1 << 20);
	struct lcache_stats a, b;
	/* "domain\0value", as the registry makes keys (split: not "\011"). */
	static const char cnid[] = "cn-id\0"
				   "110105194912310029";
	const char *keys[] = {cnid, "nobody", ""};

	(void)state;
	assert_non_null(lc);
	put(lc, "cn-id", "P1", "reply-1");
	lcache_stats(&a);
	for (size_t i = 0; i < 3; i++) {
		size_t n = i == 0 ? sizeof(cnid) - 1 : strlen(keys[i]);
		uint64_t h = lcache_prefetch_bucket(lc, keys[i], n);

		assert_true(h == lcache_hash(keys[i], n));
		lcache_prefetch_entry(lc, h);
	}
	lcache_prefetch_entry(lc, lcache_hash("cn-id", 5));
	lcache_stats(&b);
	assert_true(a.hits == b.hits && a.misses == b.misses &&
	    a.entries == b.entries && a.bytes == b.bytes);
	assert_string_equal(get(lc, "cn-id"), "reply-1");
	assert_null(get(lc, "nobody"));
	lcache_free(lc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(put_get_and_replace),
	    cmocka_unit_test(budget_is_kept_at_its_edge_oldest_first),
	    cmocka_unit_test(log_wraps_and_reuses_holes_in_order),
	    cmocka_unit_test(published_patient_is_dropped_everywhere),
	    cmocka_unit_test(a_worker_too_far_behind_drops_everything),
	    cmocka_unit_test(tables_grow_and_every_key_is_found),
	    cmocka_unit_test(prefetch_hints_change_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
