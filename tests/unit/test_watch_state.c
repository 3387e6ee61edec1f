/*
 * test_watch_state.c: clients/onecard/watch_state.c, where `onecard watch`
 * keeps its place. A state file round-trips its seq and is replaced whole,
 * leaving no temporary file; a missing file is "start from now", a file
 * that holds anything but one number is refused with its name, and a
 * folder that cannot be written is found before the watch starts. The
 * backoff starts at 0.2 s, doubles to 30 s with at most a quarter more at
 * random, and starts over when reset.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli.h"

static char dir[PATH_MAX];

static int
setup(void **state)
{
	const char *tmp = getenv("TMPDIR");

	(void)state;
	snprintf(dir, sizeof(dir), "%s/watch-state.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char path[PATH_MAX + 256];
	struct dirent *e;
	DIR *d;

	(void)state;
	if ((d = opendir(dir)) != NULL) {
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(dir);
	return 0;
}

/* Files in dir. */
static int
files_in_dir(void)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Write text to dir/name; its path in path. */
static void
write_file(const char *name, const char *text, char *path, size_t len)
{
	FILE *f;

	snprintf(path, len, "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
}

static void
saved_seq_loads_back_and_replaces_the_old(void **state)
{
	char path[PATH_MAX + 16], err[512], text[64];
	uint64_t seq = 0;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/state", dir);
	assert_int_equal(watch_state_load(path, &seq, err, sizeof(err)), 0);
	assert_int_equal(watch_state_check(path, err, sizeof(err)), 0);
	assert_int_equal(watch_state_save(path, 42, err, sizeof(err)), 0);
	assert_int_equal(watch_state_load(path, &seq, err, sizeof(err)), 1);
	assert_int_equal(seq, 42);
	assert_int_equal(
	    watch_state_save(path, UINT64_MAX, err, sizeof(err)), 0);
	assert_int_equal(watch_state_load(path, &seq, err, sizeof(err)), 1);
	assert_int_equal(seq, UINT64_MAX);
	/* One number and a newline, readable by a script; no temp left. */
	assert_int_equal(watch_state_save(path, 7, err, sizeof(err)), 0);
	assert_non_null(f = fopen(path, "r"));
	assert_non_null(fgets(text, sizeof(text), f));
	fclose(f);
	assert_string_equal(text, "7\n");
	assert_int_equal(files_in_dir(), 1);
}

static void
a_file_that_is_not_one_number_is_refused_with_its_name(void **state)
{
	static const char *const bad[] = {"", "\n", "twelve\n", "12 \n", "-1\n",
	    "1\n2\n", "99999999999999999999999\n", " 5\n"};
	char path[PATH_MAX + 16], err[512];
	uint64_t seq = 5;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file("bad", bad[i], path, sizeof(path));
		err[0] = '\0';
		if (watch_state_load(path, &seq, err, sizeof(err)) != -1)
			fail_msg("\"%s\" was taken for seq %llu", bad[i],
			    (unsigned long long)seq);
		assert_non_null(strstr(err, path));
	}
	/* A number without a newline is fine (a hand-written file). */
	write_file("ok", "12", path, sizeof(path));
	assert_int_equal(watch_state_load(path, &seq, err, sizeof(err)), 1);
	assert_int_equal(seq, 12);
	/* A folder is not a state file. */
	assert_int_equal(watch_state_load(dir, &seq, err, sizeof(err)), -1);
}

static void
a_folder_that_cannot_be_written_is_found_first(void **state)
{
	char path[PATH_MAX + 32], err[512];

	(void)state;
	snprintf(path, sizeof(path), "%s/missing/state", dir);
	assert_int_equal(watch_state_check(path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "missing"));
	assert_int_equal(watch_state_save(path, 1, err, sizeof(err)), -1);
	/* A bare name is in the current folder. */
	assert_int_equal(watch_state_check("state", err, sizeof(err)),
	    access(".", W_OK | X_OK) == 0 ? 0 : -1);
}

static void
backoff_doubles_to_its_cap_with_a_bounded_random_part(void **state)
{
	struct watch_backoff b;
	int nominal = WATCH_BACKOFF_MIN_MS, ms;

	(void)state;
	watch_backoff_reset(&b);
	for (int i = 0; i < 20; i++) {
		ms = watch_backoff_next(&b);
		assert_true(ms >= nominal);
		assert_true(ms <= nominal + nominal / 4);
		nominal = nominal * 2 > WATCH_BACKOFF_MAX_MS
		    ? WATCH_BACKOFF_MAX_MS
		    : nominal * 2;
	}
	assert_int_equal(b.ms, WATCH_BACKOFF_MAX_MS);
	watch_backoff_reset(&b);
	ms = watch_backoff_next(&b);
	assert_true(ms >= WATCH_BACKOFF_MIN_MS &&
	    ms <= WATCH_BACKOFF_MIN_MS + WATCH_BACKOFF_MIN_MS / 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		saved_seq_loads_back_and_replaces_the_old, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		a_file_that_is_not_one_number_is_refused_with_its_name, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		a_folder_that_cannot_be_written_is_found_first, setup,
		teardown),
	    cmocka_unit_test(
		backoff_doubles_to_its_cap_with_a_bounded_random_part),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
