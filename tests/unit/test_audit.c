/*
 * test_audit.c: the audit trail (broker/audit.c) and its offline checker
 * (clients/onecardctl/audit.c) together: lines written by the one are
 * verified by the other, and every kind of tampering is caught and named.
 * Both sources are compiled into this test (they are not in a library);
 * metrics_audit_line is stubbed to count lines.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../broker/audit.c"
#include "../../clients/onecardctl/audit.c"
#include "../../clients/onecardctl/audit_line.c"
#include "../../clients/onecardctl/audit_report.c"

static int metric_lines;

/* Stub: the real one is in broker/metrics.c (onecardd only). */
void
metrics_audit_line(void)
{
	__atomic_add_fetch(&metric_lines, 1, __ATOMIC_RELAXED);
}

struct fixture {
	char dir[64];
	char path[128];
	char out[16384]; /* what the last ctl_audit printed */
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/test_audit.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/audit.log", fx->dir);
	metric_lines = 0;
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[128];

	audit_close();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

/* Write n entries for actor XC001 with patient P<i>. */
static void
log_entries(int n, int from)
{
	for (int i = from; i < from + n; i++) {
		char pid[32], target[64];
		snprintf(pid, sizeof(pid), "P%d", i);
		snprintf(target, sizeof(target), "hosp:XC001=MRN-%d", i);
		struct audit_entry e = {
		    .actor = "XC001",
		    .role = ONECARD__V1__ROLE__ROLE_HOSPITAL,
		    .op = "lookup",
		    .target = target,
		    .patient_id = pid,
		    .code = ONECARD__V1__CODE__OK,
		    .latency_us = (uint64_t)i * 10,
		};
		audit_log(&e);
	}
}

/* Run ctl_audit with a NULL-terminated argument list; capture stdout. */
static int
run_ctl(struct fixture *fx, ...)
{
	char *argv[32];
	int argc = 0, rc, saved, fd;
	char cap[160];
	va_list ap;
	ssize_t n;

	va_start(ap, fx);
	while ((argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	snprintf(cap, sizeof(cap), "%s/ctl.out", fx->dir);
	fflush(stdout);
	saved = dup(1);
	fd = open(cap, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0 && saved >= 0);
	dup2(fd, 1);
	close(fd);
	rc = ctl_audit(argc, argv);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	fd = open(cap, O_RDONLY);
	n = read(fd, fx->out, sizeof(fx->out) - 1);
	close(fd);
	fx->out[n > 0 ? n : 0] = '\0';
	return rc;
}

/* Read a whole file into a malloc'd string. */
static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	if (len != NULL)
		*len = (size_t)n;
	return buf;
}

static void
spit(const char *path, const char *buf, size_t len)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	fclose(f);
}

/* Start of line k (1-based) in buf. */
static char *
line_at(char *buf, int k)
{
	while (--k > 0) {
		buf = strchr(buf, '\n');
		assert_non_null(buf);
		buf++;
	}
	return buf;
}

/* Lines in buf. */
static int
count_lines(const char *buf)
{
	int n = 0;

	for (; (buf = strchr(buf, '\n')) != NULL; buf++)
		n++;
	return n;
}

static size_t
line_len(const char *l)
{
	return (size_t)(strchr(l, '\n') - l) + 1;
}

static void
written_lines_verify_intact(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(audit_open(fx->path, "node-a"), 0);
	assert_true(audit_enabled());
	log_entries(5, 1);
	audit_close();
	assert_false(audit_enabled());
	assert_int_equal(metric_lines, 5);

	assert_int_equal(run_ctl(fx, "audit", "verify", fx->path, NULL), 0);
	assert_non_null(strstr(fx->out, "ok: 5 lines intact (seq 1..5)"));

	char *buf = slurp(fx->path, NULL);
	char *l3 = line_at(buf, 3);
	assert_memory_equal(l3, "{\"seq\":3,\"time\":\"", 17);
	/* 2026-11-26T14:30:00.123Z */
	assert_int_equal(l3[17 + 23], 'Z');
	assert_int_equal(l3[17 + 19], '.');
	assert_non_null(strstr(buf,
	    "\"node\":\"node-a\",\"actor\":\"XC001\","
	    "\"role\":\"hospital\",\"op\":\"lookup\","
	    "\"target\":\"hosp:XC001=MRN-3\","
	    "\"patient_id\":\"P3\",\"code\":\"OK\","
	    "\"latency_us\":30,\"prev\":\""));
	/* The first line of a new trail chains to zeros. */
	char zeros[80];
	memset(zeros, '0', 64);
	zeros[64] = '\0';
	assert_non_null(strstr(line_at(buf, 1), zeros));
	free(buf);
}

/* A merge line names the record merged away right after patient_id; other
 * lines do not carry the field; verify reads both. */
static void
merge_line_names_the_other_record(void **state)
{
	struct fixture *fx = *state;
	struct audit_entry e = {
	    .actor = "admin",
	    .role = ONECARD__V1__ROLE__ROLE_ADMIN,
	    .op = "merge",
	    .target = "pid=PS",
	    .patient_id = "PS",
	    .code = ONECARD__V1__CODE__OK,
	    .detail = "filled=phone",
	    .other_patient_id = "PD",
	};

	assert_int_equal(audit_open(fx->path, "n"), 0);
	log_entries(1, 1);
	audit_log(&e);
	audit_close();
	assert_int_equal(run_ctl(fx, "audit", "verify", fx->path, NULL), 0);

	char *buf = slurp(fx->path, NULL);
	/* line_at gives the rest of the file from that line on */
	assert_true(strstr(buf, "other_patient_id") > line_at(buf, 2));
	assert_non_null(strstr(line_at(buf, 2),
	    "\"patient_id\":\"PS\",\"other_patient_id\":\"PD\",\"code\":"
	    "\"OK\""));
	assert_non_null(
	    strstr(line_at(buf, 2), ",\"detail\":\"filled=phone\""));
	free(buf);
}

/* The reports' cheap test before parsing a line stays inside its bytes. */
static void
report_prefilter_finds_only_what_is_in_the_line(void **state)
{
	(void)state;
	assert_true(has("{\"actor\":\"H1\"}", 14, "\"actor\":\"H1\""));
	assert_false(has("{\"actor\":\"H1\"}", 12, "\"actor\":\"H1\""));
	assert_true(has("aab", 3, "ab"));
	assert_false(has("", 0, "a"));
	assert_false(has("abc", 3, "abcd"));
}

/* A report over an edited trail refuses, naming the line; asked to, it
 * reports anyway and still says the trail is broken. */
static void
reports_refuse_a_broken_trail_unless_asked(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(audit_open(fx->path, "n"), 0);
	log_entries(4, 1);
	audit_close();
	assert_int_equal(
	    run_ctl(fx, "audit", "patient", "P2", fx->path, NULL), 0);
	assert_non_null(strstr(fx->out, "accesses: 1 by 1 actor(s)"));
	assert_int_equal(
	    run_ctl(fx, "audit", "hospital", "XC001", fx->path, NULL), 0);
	assert_non_null(strstr(fx->out, "requests: 4,"));

	char *buf = slurp(fx->path, NULL);
	char *l2 = line_at(buf, 2);
	char *t = strstr(l2, "MRN-2");
	assert_non_null(t);
	t[4] = '9';
	FILE *f = fopen(fx->path, "w");
	fputs(buf, f);
	fclose(f);
	free(buf);

	assert_int_equal(
	    run_ctl(fx, "audit", "patient", "P2", fx->path, NULL), 1);
	assert_null(strstr(fx->out, "accesses:"));
	assert_int_equal(run_ctl(fx, "audit", "hospital", "XC001",
			     "--allow-broken", fx->path, NULL),
	    1);
	assert_non_null(strstr(fx->out, "BROKEN"));
	assert_non_null(strstr(fx->out, "audit.log:2: edited"));
	assert_non_null(strstr(fx->out, "requests: 4,"));
}

static void
edited_byte_is_found_and_named(void **state)
{
	struct fixture *fx = *state;
	size_t len;

	assert_int_equal(audit_open(fx->path, "n"), 0);
	log_entries(5, 1);
	audit_close();
	char *buf = slurp(fx->path, &len);
	char *l3 = line_at(buf, 3);
	char *p = strstr(l3, "MRN-3");
	p[4] = '4'; /* MRN-3 -> MRN-4 */
	spit(fx->path, buf, len);
	free(buf);

	assert_int_equal(run_ctl(fx, "audit", "verify", fx->path, NULL), 1);
	assert_non_null(strstr(fx->out, "audit.log:3: edited"));
}

static void
edited_seq_is_found_and_named(void **state)
{
	struct fixture *fx = *state;
	size_t len;

	assert_int_equal(audit_open(fx->path, "n"), 0);
	log_entries(5, 1);
	audit_close();
	char *buf = slurp(fx->path, &len);
	line_at(buf, 5)[7] = '9'; /* seq 5 -> 9, the last line */
	spit(fx->path, buf, len);
	free(buf);

	assert_int_equal(run_ctl(fx, "audit", "verify", fx->path, NULL), 1);
	assert_non_null(strstr(fx->out, "audit.log:5: edited"));
}

static void
edited_first_line_is_found_and_named(void **state)
{
	struct fixture *fx = *state;
	size_t len;

	assert_int_equal(audit_open(fx->path, "n"), 0);
	log_entries(3, 1);
	audit_close();
	char *buf = slurp(fx->path, &len);
	char *prev = strstr(buf, "\"prev\":\"") + 8;
	prev[10] = '1'; /* the first line no longer chains to zeros */
	spit(fx->path, buf, len);
	free(buf);

	assert_int_equal(run_ctl(fx, "audit", "verify", fx->path, NULL), 1);
	assert_non_null(strstr(fx->out, "audit.log:1: edited"));
	/* An edit anywhere else in the first line breaks the second. */
	buf = slurp(fx->path, &len);
	prev = strstr(buf, "\"prev\":\"") + 8;
	prev[10] = '0';
	strstr(buf, "MRN-1")[4] = '7';
	spit(fx->path, buf, len);
	free(buf);
	assert_int_equal(run_ctl(fx, "audit", "verify", fx->path, NULL), 1);
	assert_non_null(strstr(fx->out, "audit.log:1: edited"));
}

static void
deleted_line_is_found_and_named_missing(void **state)
{
	struct fixture *fx = *state;
	size_t len;

	assert_int_equal(audit_open(fx->path, "n"), 0);
	log_entries(5, 1);
	audit_close();
	char *buf = slurp(fx->path, &len);
	char *l3 = line_at(buf, 3);
	size_t l3len = line_len(l3);
	memmove(l3, l3 + l3len, len - (size_t)(l3 - buf) - l3len);
	spit(fx->path, buf, len - l3len);
	free(buf);

	assert_int_equal(run_ctl(fx, "verify", fx->path, NULL), 1);
	assert_non_null(strstr(fx->out,
	    "audit.log:3: missing: 1 line(s) "
	    "(seq 3..3)"));
}

static void
swapped_lines_are_found_and_named_reordered(void **state)
{
	struct fixture *fx = *state;
	size_t len;

	assert_int_equal(audit_open(fx->path, "n"), 0);
	log_entries(5, 1);
	audit_close();
	char *buf = slurp(fx->path, &len);
	char *l2 = line_at(buf, 2), *l3 = line_at(buf, 3);
	size_t a = line_len(l2), b = line_len(l3);
	char *tmp = malloc(a + b);
	memcpy(tmp, l3, b);
	memcpy(tmp + b, l2, a);
	memcpy(l2, tmp, a + b);
	free(tmp);
	spit(fx->path, buf, len);
	free(buf);

	assert_int_equal(run_ctl(fx, "audit", "verify", fx->path, NULL), 1);
	assert_non_null(strstr(fx->out, "audit.log:2: reordered"));
}

static void
lines_cut_off_the_end_are_found_with_head(void **state)
{
	struct fixture *fx = *state;
	char head[65], *h;
	size_t len;

	assert_int_equal(audit_open(fx->path, "n"), 0);
	log_entries(4, 1);
	audit_close();
	assert_int_equal(run_ctl(fx, "audit", "verify", fx->path, NULL), 0);
	assert_non_null(h = strstr(fx->out, "head "));
	memcpy(head, h + 5, 64);
	head[64] = '\0';
	/* The head the broker logged at close. */
	assert_string_equal(head, audit.prev);
	assert_int_equal(
	    run_ctl(fx, "audit", "verify", "--head", head, fx->path, NULL), 0);

	/* Without its last line the chain alone still holds... */
	char *buf = slurp(fx->path, &len);
	char *l4 = line_at(buf, 4);
	spit(fx->path, buf, (size_t)(l4 - buf));
	free(buf);
	assert_int_equal(run_ctl(fx, "audit", "verify", fx->path, NULL), 0);
	/* ...but not against the head. */
	assert_int_equal(
	    run_ctl(fx, "audit", "verify", "--head", head, fx->path, NULL), 1);
	assert_non_null(strstr(fx->out,
	    "audit.log:3: missing: the trail ends "
	    "at seq 3"));
}

static void
chain_carries_across_rotation(void **state)
{
	struct fixture *fx = *state;
	char old[160];

	snprintf(old, sizeof(old), "%s.1", fx->path);
	assert_int_equal(audit_open(fx->path, "n"), 0);
	log_entries(3, 1);
	assert_int_equal(rename(fx->path, old), 0);
	assert_int_equal(audit_reopen(), 0);
	log_entries(3, 4);
	audit_close();

	assert_int_equal(
	    run_ctl(fx, "audit", "verify", old, fx->path, NULL), 0);
	assert_non_null(strstr(fx->out, "ok: 6 lines intact (seq 1..6) in 2"));
	/* The new file alone verifies, as a chain that starts mid-trail. */
	assert_int_equal(run_ctl(fx, "audit", "verify", fx->path, NULL), 0);
	assert_non_null(strstr(fx->out, "seq 4..6"));
	/* Files in the wrong order do not. */
	assert_int_equal(
	    run_ctl(fx, "audit", "verify", fx->path, old, NULL), 1);
	assert_non_null(strstr(fx->out, "audit.log.1:1: reordered"));
	/* Dropping the first file in the middle of a set is a gap. */
	char *buf = slurp(old, NULL);
	char *l3 = line_at(buf, 3);
	spit(old, buf, (size_t)(l3 - buf));
	free(buf);
	assert_int_equal(
	    run_ctl(fx, "audit", "verify", old, fx->path, NULL), 1);
	assert_non_null(strstr(fx->out, "audit.log:1: missing"));
}

static void
chain_carries_across_restart(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(audit_open(fx->path, "n"), 0);
	log_entries(2, 1);
	audit_close();
	assert_int_equal(audit_open(fx->path, "n"), 0);
	log_entries(2, 3);
	audit_close();

	assert_int_equal(run_ctl(fx, "audit", "verify", fx->path, NULL), 0);
	assert_non_null(strstr(fx->out, "ok: 4 lines intact (seq 1..4)"));
}

static void
full_cn_id_is_never_written(void **state)
{
	struct fixture *fx = *state;
	struct audit_entry e = {
	    .actor = "110105194912310029",
	    .role = ONECARD__V1__ROLE__ROLE_ADMIN,
	    .op = "lookup",
	    /* A caller that forgot to mask. */
	    .target = "cn-id=11010519491231002X",
	    .patient_id = "",
	    .code = ONECARD__V1__CODE__NOT_FOUND,
	};
	struct audit_entry lower = e;
	lower.target = "link cn-id=11010519491231002x,hosp:A=1";

	assert_int_equal(audit_open(fx->path, "n"), 0);
	audit_log(&e);
	audit_log(&lower);
	/* Longer digit runs are not cn-ids and are kept. */
	struct audit_entry mrn = e;
	mrn.actor = "XC001";
	mrn.target = "hosp:XC001=1234567890123456789";
	audit_log(&mrn);
	audit_close();

	char *buf = slurp(fx->path, NULL);
	assert_null(strstr(buf, "11010519491231002X"));
	assert_null(strstr(buf, "11010519491231002x"));
	assert_null(strstr(buf, "110105194912310029"));
	assert_null(strstr(buf, "19491231"));
	assert_non_null(strstr(buf, "\"target\":\"cn-id=110105********002X\""));
	assert_non_null(strstr(buf, "\"actor\":\"110105********0029\""));
	assert_non_null(strstr(buf, "cn-id=110105********002x,hosp:A=1"));
	assert_non_null(strstr(buf, "hosp:XC001=1234567890123456789"));
	assert_non_null(strstr(buf, "\"role\":\"admin\""));
	assert_non_null(strstr(buf, "\"code\":\"NOT_FOUND\""));
	free(buf);
}

/*
 * Strings are checked 8 bytes at a time: a cn-id is masked, and a quote
 * escaped, wherever it sits against those 8 bytes and the string's end.
 */
static void
cn_id_and_quote_are_caught_at_every_offset(void **state)
{
	struct fixture *fx = *state;
	char target[64], actor[64], want[80];

	assert_int_equal(audit_open(fx->path, "n"), 0);
	for (int off = 0; off < 16; off++) {
		snprintf(target, sizeof(target), "%.*s11010519491231002X%.*s",
		    off, "abcdefghijklmnop", off % 3, ";yz");
		snprintf(actor, sizeof(actor), "%.*s\"%.*s", off,
		    "abcdefghijklmnop", off % 9, "qrstuvwxy");
		struct audit_entry e = {
		    .actor = actor,
		    .op = "lookup",
		    .target = target,
		    .code = ONECARD__V1__CODE__OK,
		};
		audit_log(&e);
	}
	audit_close();
	char *buf = slurp(fx->path, NULL);
	assert_null(strstr(buf, "19491231"));
	for (int off = 0; off < 16; off++) {
		char *l = line_at(buf, off + 1);
		snprintf(want, sizeof(want),
		    "\"target\":\"%.*s110105********002X%.*s\"", off,
		    "abcdefghijklmnop", off % 3, ";yz");
		assert_non_null(strstr(l, want));
		snprintf(want, sizeof(want), "\"actor\":\"%.*s\\\"%.*s\"", off,
		    "abcdefghijklmnop", off % 9, "qrstuvwxy");
		assert_non_null(strstr(l, want));
	}
	free(buf);
}

static void
quotes_and_control_bytes_are_escaped(void **state)
{
	struct fixture *fx = *state;
	struct audit_entry e = {
	    .actor = "evil\",\"actor\":\"XC002",
	    .op = "link",
	    .target = "hosp:X=a\\b\nc",
	    .patient_id = "P1",
	};

	assert_int_equal(audit_open(fx->path, "n"), 0);
	audit_log(&e);
	log_entries(1, 2);
	audit_close();

	char *buf = slurp(fx->path, NULL);
	assert_non_null(
	    strstr(buf, "\"actor\":\"evil\\\",\\\"actor\\\":\\\"XC002\""));
	assert_non_null(strstr(buf, "\"target\":\"hosp:X=a\\\\b\\u000ac\""));
	free(buf);
	assert_int_equal(run_ctl(fx, "audit", "verify", fx->path, NULL), 0);
	/* The forged actor does not match a search for the real one. */
	assert_int_equal(
	    run_ctl(fx, "audit", "search", "--actor", "XC002", fx->path, NULL),
	    0);
	assert_string_equal(fx->out, "");
	assert_int_equal(run_ctl(fx, "audit", "search", "--actor",
			     "evil\",\"actor\":\"XC002", fx->path, NULL),
	    0);
	assert_non_null(strstr(fx->out, "\"seq\":1,"));
}

struct writer_arg {
	int n;
	char actor[16];
};

static void *
writer_thread(void *p)
{
	struct writer_arg *w = p;
	struct audit_entry e = {.actor = w->actor, .op = "lookup"};

	for (int i = 0; i < w->n; i++)
		audit_log(&e);
	return NULL;
}

static void
concurrent_writers_keep_the_chain(void **state)
{
	struct fixture *fx = *state;
	pthread_t t[4];
	struct writer_arg w[4];

	assert_int_equal(audit_open(fx->path, "n"), 0);
	for (int i = 0; i < 4; i++) {
		w[i].n = 2000;
		snprintf(w[i].actor, sizeof(w[i].actor), "H%d", i);
		assert_int_equal(
		    pthread_create(&t[i], NULL, writer_thread, &w[i]), 0);
	}
	/* A rotation in the middle of it. */
	char old[160];
	snprintf(old, sizeof(old), "%s.1", fx->path);
	usleep(2000);
	assert_int_equal(rename(fx->path, old), 0);
	assert_int_equal(audit_reopen(), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	audit_close();

	assert_int_equal(
	    run_ctl(fx, "audit", "verify", old, fx->path, NULL), 0);
	assert_non_null(strstr(fx->out, "ok: 8000 lines intact (seq 1..8000)"));
	assert_int_equal(metric_lines, 8000);
}

static void
search_matches_patient_actor_and_since(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(audit_open(fx->path, "n"), 0);
	log_entries(3, 1);
	struct audit_entry e = {
	    .actor = "XC002", .op = "enroll", .patient_id = "P2"};
	audit_log(&e);
	e.patient_id = "P21";
	audit_log(&e);
	audit_close();

	assert_int_equal(
	    run_ctl(fx, "audit", "search", "--patient", "P2", fx->path, NULL),
	    0);
	assert_non_null(strstr(fx->out, "\"seq\":2,"));
	assert_non_null(strstr(fx->out, "\"seq\":4,"));
	assert_null(strstr(fx->out, "\"seq\":1,"));
	/* P2 does not match P21. */
	assert_null(strstr(fx->out, "\"seq\":3,"));
	assert_null(strstr(fx->out, "\"seq\":5,"));

	assert_int_equal(run_ctl(fx, "audit", "search", "--patient", "P2",
			     "--actor", "XC002", fx->path, NULL),
	    0);
	assert_null(strstr(fx->out, "\"seq\":2,"));
	assert_non_null(strstr(fx->out, "\"seq\":4,"));

	/* Every line is after 2000, and none is after 2999 (+08:00 form). */
	assert_int_equal(run_ctl(fx, "audit", "search", "--actor", "XC001",
			     "--since", "2000-01-01", fx->path, NULL),
	    0);
	assert_non_null(strstr(fx->out, "\"seq\":3,"));
	assert_int_equal(
	    run_ctl(fx, "audit", "search", "--actor", "XC001", "--since",
		"2999-01-01T08:00:00.5+08:00", fx->path, NULL),
	    0);
	assert_string_equal(fx->out, "");

	assert_int_equal(run_ctl(fx, "audit", "search", "--since", "yesterday",
			     "--actor", "X", fx->path, NULL),
	    2);
	assert_int_equal(run_ctl(fx, "audit", "search", fx->path, NULL), 2);
}

static void
since_is_normalised_to_utc(void **state)
{
	char out[32];

	(void)state;
	assert_int_equal(
	    trail_since_parse("2026-11-26T14:30:00.123Z", out, sizeof(out)), 0);
	assert_string_equal(out, "2026-11-26T14:30:00.123Z");
	assert_int_equal(
	    trail_since_parse("2026-11-27T00:30:00+08:00", out, sizeof(out)),
	    0);
	assert_string_equal(out, "2026-11-26T16:30:00.000Z");
	assert_int_equal(trail_since_parse("2026-11-26", out, sizeof(out)), 0);
	assert_string_equal(out, "2026-11-26T00:00:00.000Z");
	assert_int_equal(
	    trail_since_parse("2026-11-26T14:30", out, sizeof(out)), -1);
	assert_int_equal(trail_since_parse("2026-13-01", out, sizeof(out)), -1);
}

static void
reopen_keeps_appending_when_not_rotated(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(audit_open(fx->path, "n"), 0);
	log_entries(2, 1);
	assert_int_equal(audit_reopen(), 0);
	log_entries(2, 3);
	audit_close();
	assert_int_equal(run_ctl(fx, "verify", fx->path, NULL), 0);
	assert_non_null(strstr(fx->out, "ok: 4 lines"));
}

static void
truncated_last_line_is_reported(void **state)
{
	struct fixture *fx = *state;
	size_t len;

	assert_int_equal(audit_open(fx->path, "n"), 0);
	log_entries(3, 1);
	audit_close();
	char *buf = slurp(fx->path, &len);
	spit(fx->path, buf, len - 10);
	free(buf);
	assert_int_equal(run_ctl(fx, "verify", fx->path, NULL), 1);
	assert_non_null(strstr(fx->out, "audit.log:3: truncated"));
}

static void
unreadable_file_and_bad_usage_exit_2(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(run_ctl(fx, "verify", "/nonexistent/x", NULL), 2);
	assert_int_equal(run_ctl(fx, "verify", NULL), 2);
	assert_int_equal(run_ctl(fx, "frobnicate", NULL), 2);
	assert_int_equal(audit_open("/nonexistent/dir/audit.log", "n"), -1);
	assert_false(audit_enabled());
}

/* Size of a file, -1 if missing. */
static long
file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void
batched_lines_wait_for_batch_end(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(audit_open(fx->path, "n"), 0);
	audit_batch_begin();
	log_entries(3, 1);
	assert_int_equal(file_size(fx->path), 0);
	assert_int_equal(metric_lines, 0);
	audit_batch_end();
	assert_true(file_size(fx->path) > 0);
	assert_int_equal(metric_lines, 3);
	/* Outside a batch each line is written before audit_log returns. */
	long before = file_size(fx->path);
	log_entries(1, 4);
	assert_true(file_size(fx->path) > before);
	audit_close();
	assert_int_equal(run_ctl(fx, "audit", "verify", fx->path, NULL), 0);
	assert_non_null(strstr(fx->out, "ok: 4 lines"));
}

static void *
unbatched_writer(void *arg)
{
	log_entries(1, 100);
	return NULL;
}

static void
another_threads_line_goes_ahead_of_a_waiting_batch(void **state)
{
	struct fixture *fx = *state;
	pthread_t t;

	assert_int_equal(audit_open(fx->path, "n"), 0);
	audit_batch_begin();
	log_entries(2, 1);
	assert_int_equal(pthread_create(&t, NULL, unbatched_writer, NULL), 0);
	pthread_join(t, NULL);
	/* The other thread's line is written at once, chained first; this
	 * thread's batch is not written until it ends. */
	char *buf = slurp(fx->path, NULL);
	assert_int_equal(count_lines(buf), 1);
	assert_non_null(strstr(line_at(buf, 1), "\"seq\":1,"));
	assert_non_null(strstr(line_at(buf, 1), "\"patient_id\":\"P100\""));
	free(buf);
	audit_batch_end();
	buf = slurp(fx->path, NULL);
	assert_non_null(strstr(line_at(buf, 2), "\"seq\":2,"));
	assert_non_null(strstr(line_at(buf, 2), "\"patient_id\":\"P1\""));
	assert_non_null(strstr(line_at(buf, 3), "\"patient_id\":\"P2\""));
	free(buf);
	audit_close();
	assert_int_equal(run_ctl(fx, "verify", fx->path, NULL), 0);
	assert_non_null(strstr(fx->out, "ok: 3 lines"));
}

static int arms;

/* Stands in for a worker loop's arming of its pass-end event. */
static void
count_arm(void *arg)
{
	(void)arg;
	arms++;
}

static void
held_lines_wait_for_the_end_of_the_pass(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(audit_open(fx->path, "n"), 0);
	/* Without a loop to end the pass, holding is ending. */
	audit_batch_begin();
	log_entries(1, 1);
	audit_batch_hold();
	assert_int_equal(metric_lines, 1);

	arms = 0;
	audit_pass_hook(count_arm, NULL);
	audit_batch_begin();
	log_entries(2, 2);
	audit_batch_hold();
	audit_batch_begin();
	log_entries(1, 4);
	audit_batch_hold();
	/* Nothing is written in the pass; the loop is asked once. */
	assert_int_equal(metric_lines, 1);
	assert_int_equal(arms, 1);
	/* A batch with no lines does not ask. */
	audit_pass_end();
	assert_int_equal(metric_lines, 4);
	audit_batch_begin();
	audit_batch_hold();
	assert_int_equal(arms, 1);
	/* An unbatched line takes the held ones along, in order. */
	audit_batch_begin();
	log_entries(1, 5);
	audit_batch_hold();
	assert_int_equal(arms, 2);
	log_entries(1, 6);
	assert_int_equal(metric_lines, 6);
	audit_pass_hook(NULL, NULL);
	audit_close();

	char *buf = slurp(fx->path, NULL);
	for (int i = 1; i <= 6; i++) {
		char want[32];
		snprintf(want, sizeof(want), "\"patient_id\":\"P%d\"", i);
		assert_non_null(strstr(line_at(buf, i), want));
	}
	free(buf);
	assert_int_equal(run_ctl(fx, "verify", fx->path, NULL), 0);
	assert_non_null(strstr(fx->out, "ok: 6 lines"));
}

static void
a_long_batch_is_written_as_the_buffer_fills(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(audit_open(fx->path, "n"), 0);
	audit_batch_begin();
	log_entries(1000, 1);
	/* 1000 lines of ~300 bytes do not fit the 64 KiB buffer. */
	assert_true(file_size(fx->path) > 0);
	audit_batch_end();
	audit_close();
	assert_int_equal(metric_lines, 1000);
	assert_int_equal(run_ctl(fx, "verify", fx->path, NULL), 0);
	assert_non_null(strstr(fx->out, "ok: 1000 lines"));
}

static void
failed_writes_leave_the_chain_at_the_last_written_line(void **state)
{
	(void)state;
	/* Every write to /dev/full fails with ENOSPC. */
	assert_int_equal(audit_open("/dev/full", "n"), 0);
	log_entries(3, 1);
	audit_batch_begin();
	log_entries(3, 4);
	audit_batch_end();
	assert_int_equal(metric_lines, 0);
	assert_int_equal(audit.seq, 0);
	assert_int_equal(audit.pend_len, 0);
	audit_close();
}

static void
a_line_cut_by_a_crash_is_ended_and_chained_on(void **state)
{
	struct fixture *fx = *state;
	size_t len;

	assert_int_equal(audit_open(fx->path, "n"), 0);
	log_entries(3, 1);
	audit_close();
	char *buf = slurp(fx->path, &len);
	spit(fx->path, buf, len - 40);
	free(buf);

	/* The broker starts again: the cut line is ended, the chain goes on. */
	assert_int_equal(audit_open(fx->path, "n"), 0);
	log_entries(2, 4);
	audit_close();
	buf = slurp(fx->path, NULL);
	assert_non_null(strstr(line_at(buf, 4), "{\"seq\":4,"));
	free(buf);
	/* verify names the damaged line, and nothing else is wrong. */
	assert_int_equal(run_ctl(fx, "verify", fx->path, NULL), 1);
	assert_non_null(strstr(fx->out,
	    "audit.log:3: edited: not a "
	    "well-formed audit line"));
}

/*
 * Opt-in micro-benchmark (ONECARD_AUDIT_BENCH=1): prints what one audit
 * line costs, in wall and CPU nanoseconds, by stage and end to end; it
 * asserts nothing about speed. The entry is what a lookup by cn-id makes.
 */
#define BENCH_LINES 200000

static const struct audit_entry bench_entry = {
    .actor = "XC001",
    .role = ONECARD__V1__ROLE__ROLE_HOSPITAL,
    .op = "lookup",
    .target = "cn-id=410102********123X",
    .patient_id = "0193a1b2c3d4e5f6a7b8c9d0e1",
    .code = ONECARD__V1__CODE__OK,
    .latency_us = 1234,
};

/* Nanoseconds on clock id. */
static double
bench_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

struct bench_run {
	int batch; /* lines per audit_batch_begin/end, 0: none */
	int lines;
};

/* Log r->lines entries in batches of r->batch. */
static void *
bench_logger(void *arg)
{
	struct bench_run *r = arg;

	for (int i = 0; i < r->lines;) {
		if (r->batch > 0) {
			audit_batch_begin();
			for (int j = 0; j < r->batch && i < r->lines; j++, i++)
				audit_log(&bench_entry);
			audit_batch_end();
		} else {
			audit_log(&bench_entry);
			i++;
		}
	}
	return NULL;
}

/* Run nthreads loggers of lines each in batches of batch; print the cost. */
static void
bench_log(struct fixture *fx, const char *name, int nthreads, int batch)
{
	struct bench_run r = {batch, BENCH_LINES / nthreads};
	pthread_t t[4];
	double w0, c0, w, c;

	unlink(fx->path);
	assert_int_equal(audit_open(fx->path, "node-1"), 0);
	w0 = bench_ns(CLOCK_MONOTONIC);
	c0 = bench_ns(CLOCK_PROCESS_CPUTIME_ID);
	for (int i = 0; i < nthreads; i++)
		assert_int_equal(
		    pthread_create(&t[i], NULL, bench_logger, &r), 0);
	for (int i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	w = bench_ns(CLOCK_MONOTONIC) - w0;
	c = bench_ns(CLOCK_PROCESS_CPUTIME_ID) - c0;
	audit_close();
	printf("%-34s %8.0f ns wall %8.0f ns CPU per line\n", name,
	    w / (r.lines * nthreads), c / (r.lines * nthreads));
}

static void
bench_audit_line(void **state)
{
	struct fixture *fx = *state;
	char body[AUDIT_LINE_MAX], hex[AUDIT_HASH_HEX + 1];
	double c0;
	size_t len = 0;

	/* The stages alone (the trail open, so the digest is fetched). */
	assert_int_equal(audit_open(fx->path, "node-1"), 0);
	c0 = bench_ns(CLOCK_THREAD_CPUTIME_ID);
	for (int i = 0; i < BENCH_LINES; i++) {
		char *e =
		    audit_format_body(&bench_entry, body, body + sizeof(body));
		len = (size_t)(e - body);
	}
	printf("%-34s %8.0f ns CPU per line (%zu bytes)\n", "format the body",
	    (bench_ns(CLOCK_THREAD_CPUTIME_ID) - c0) / BENCH_LINES, len);
	len += 7 + 8 + 9 + AUDIT_HASH_HEX + 3; /* seq, prev and the end */
	memset(body, 'a', len);
	c0 = bench_ns(CLOCK_THREAD_CPUTIME_ID);
	for (int i = 0; i < BENCH_LINES; i++)
		audit_hash(body, len, hex);
	printf("%-34s %8.0f ns CPU per line (%zu bytes)\n", "hash a line",
	    (bench_ns(CLOCK_THREAD_CPUTIME_ID) - c0) / BENCH_LINES, len);
	audit_close();

	bench_log(fx, "audit_log, no batch", 1, 0);
	bench_log(fx, "audit_log, batches of 4", 1, 4);
	bench_log(fx, "audit_log, batches of 16", 1, 16);
	bench_log(fx, "audit_log, batches of 64", 1, 64);
	bench_log(fx, "audit_log, 2 threads, no batch", 2, 0);
	bench_log(fx, "audit_log, 2 threads, batches of 16", 2, 16);
}

int
main(void)
{
	const struct CMUnitTest bench[] = {
	    cmocka_unit_test_setup_teardown(bench_audit_line, setup, teardown),
	};
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		written_lines_verify_intact, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		merge_line_names_the_other_record, setup, teardown),
	    cmocka_unit_test(report_prefilter_finds_only_what_is_in_the_line),
	    cmocka_unit_test_setup_teardown(
		reports_refuse_a_broken_trail_unless_asked, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		edited_byte_is_found_and_named, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		edited_seq_is_found_and_named, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		edited_first_line_is_found_and_named, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		deleted_line_is_found_and_named_missing, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		swapped_lines_are_found_and_named_reordered, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		lines_cut_off_the_end_are_found_with_head, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		chain_carries_across_rotation, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		chain_carries_across_restart, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		full_cn_id_is_never_written, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		cn_id_and_quote_are_caught_at_every_offset, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		quotes_and_control_bytes_are_escaped, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		concurrent_writers_keep_the_chain, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		search_matches_patient_actor_and_since, setup, teardown),
	    cmocka_unit_test(since_is_normalised_to_utc),
	    cmocka_unit_test_setup_teardown(
		reopen_keeps_appending_when_not_rotated, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		truncated_last_line_is_reported, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		unreadable_file_and_bad_usage_exit_2, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		batched_lines_wait_for_batch_end, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		another_threads_line_goes_ahead_of_a_waiting_batch, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		held_lines_wait_for_the_end_of_the_pass, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		a_long_batch_is_written_as_the_buffer_fills, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		failed_writes_leave_the_chain_at_the_last_written_line, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		a_line_cut_by_a_crash_is_ended_and_chained_on, setup, teardown),
	};

	if (getenv("ONECARD_AUDIT_BENCH") != NULL)
		return cmocka_run_group_tests(bench, NULL, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
