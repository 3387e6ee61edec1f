/*
 * fuzz_config.c: arbitrary text through onecardd's config-file parser.
 *
 * The broker reads --config FILE with inih and hands each key of the
 * [onecardd] section to config_set, the same function every flag goes
 * through. Those are static in broker/onecardd.c and config_load exits on a
 * bad file, so this harness includes onecardd.c (its main renamed) and runs
 * the input through ini_parse_string with the broker's own handler, on a
 * fresh config_defaults each time. A file the broker accepts must leave every
 * setting inside the range its flag documents, and a listen port inside
 * 0..65535; any input must leave no leak after config_free. The rest of the
 * broker is linked in only to satisfy onecardd.c's references; none of it
 * runs.
 */
#define main onecardd_main
#include "../../broker/onecardd.c"
#undef main

#include <netdb.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int __real_getaddrinfo(const char *node, const char *service,
    const struct addrinfo *hints, struct addrinfo **res);
int __wrap_getaddrinfo(const char *node, const char *service,
    const struct addrinfo *hints, struct addrinfo **res);

/*
 * The link wraps server_parse_address's getaddrinfo (-Wl,--wrap): a fuzzed
 * host name must not become a DNS query. Numeric hosts only, and localhost.
 */
int
__wrap_getaddrinfo(const char *node, const char *service,
    const struct addrinfo *hints, struct addrinfo **res)
{
	struct addrinfo h;

	if (hints != NULL)
		h = *hints;
	else
		memset(&h, 0, sizeof(h));
	h.ai_flags |= AI_NUMERICHOST;
	if (node != NULL && strcmp(node, "localhost") == 0)
		node = "127.0.0.1";
	return __real_getaddrinfo(node, service, &h, res);
}

/* Fail loudly: libFuzzer and ASan both report an abort with its stack. */
static void
fuzz_check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_config: invariant broken: %s\n", what);
		abort();
	}
}

/* Is the port of an accepted HOST:PORT a real one (0..65535)? */
static int
fuzz_port_ok(const char *addr)
{
	const char *colon;
	unsigned long long port;
	char *end;

	if (addr == NULL)
		return 1;
	if ((colon = strrchr(addr, ':')) == NULL)
		return 0;
	errno = 0;
	port = strtoull(colon + 1, &end, 10);
	return errno == 0 && *end == '\0' && end != colon + 1 && port <= 65535;
}

/* An accepted file leaves each setting where its flag allows. */
static void
fuzz_check_config(const struct config *c)
{
	fuzz_check(c->listen != NULL && c->node != NULL, "defaults kept");
	/* A port that does not fit must be refused, not wrapped: listen on
	 * 127.0.0.1:4294967297 would otherwise serve on port 1. */
	fuzz_check(fuzz_port_ok(c->listen), "listen port within 0..65535");
	fuzz_check(fuzz_port_ok(c->metrics_listen),
	    "metrics-listen port within 0..65535");
	fuzz_check(c->threads >= 1 && c->threads <= 256, "threads in range");
	fuzz_check(c->max_frame >= 64 && c->max_frame <= 64 * 1024 * 1024,
	    "max-frame in range");
	fuzz_check(c->idle_timeout >= 0 && c->idle_timeout <= 86400 * 7,
	    "idle-timeout in range");
	fuzz_check(c->handshake_timeout >= 1 && c->handshake_timeout <= 3600,
	    "handshake-timeout in range");
	fuzz_check(c->max_conns >= 1 && c->max_conns <= 10000000,
	    "max-conns in range");
	fuzz_check(c->max_pending_output >= 4096 &&
		c->max_pending_output <= (size_t)1 << 30,
	    "max-pending-output in range");
	fuzz_check(c->limits.max_ids >= 1 && c->limits.max_ids <= 4096,
	    "max-ids in range");
	fuzz_check(c->limits.max_name >= 1 && c->limits.max_name <= 65536,
	    "max-name in range");
	fuzz_check(c->limits.max_address >= 1 && c->limits.max_address <= 65536,
	    "max-address in range");
	fuzz_check(
	    c->limits.search_limit >= 1 && c->limits.search_limit <= 100000,
	    "search-limit in range");
	fuzz_check(strlen(c->node) >= 1 && strlen(c->node) <= 255,
	    "node 1..255 characters");
	fuzz_check(c->admins == NULL || strpbrk(c->admins, " \t") == NULL,
	    "admins without spaces");
	fuzz_check(c->use_syslog == 0 || c->use_syslog == 1, "syslog a bool");
	fuzz_check(c->search_max_results <= 100, "search-max-results in range");
	for (int k = 0; k < RATELIMIT_KINDS; k++)
		fuzz_check(c->rates.def[k].rate <= RATELIMIT_MAX &&
			c->rates.def[k].burst <= RATELIMIT_MAX &&
			(c->rates.def[k].rate == 0 ||
			    c->rates.def[k].burst >= 1),
		    "rate-* in range");
	fuzz_check(c->policy.dflt.ids >= 0 && c->policy.dflt.ids <= 1 &&
		c->policy.dflt.cn_id >= 0 && c->policy.dflt.cn_id <= 1,
	    "disclosure default is a profile");
	for (size_t i = 0; i < c->policy.n; i++)
		fuzz_check(c->policy.v[i].code[0] != '\0' &&
			c->policy.v[i].rule.ids <= 1 &&
			c->policy.v[i].rule.cn_id <= 1,
		    "hospital.CODE.disclosure* set for a code");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c;
	struct config_file cf = {&c, "fuzz.conf", 0, 0};
	char *text;
	int rc;

	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	config_defaults(&c);
	rc = ini_parse_string(text, config_ini_handler, &cf);
	if (rc == 0 && !cf.failed)
		fuzz_check_config(&c);
	config_free(&c);
	free(text);
	return 0;
}
