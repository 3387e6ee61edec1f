/*
 * fhir.c: the FHIR door (docs/fhir.md): FHIR R4 JSON over HTTPS on its own
 * threads and event loops, with the broker's TLS context, client-certificate
 * rule and CN identity. Each request becomes a protobuf Request answered by
 * registry_read on the serving thread's own read handle (or, for the
 * feed's writes, by the writer: fhir_feed.c), exactly as the binary door
 * answers it; these files only translate. They never implement a rule of
 * their own. This one: the server, identity, routing, PIXm, reads,
 * metadata.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <jansson.h>
#include <openssl/ssl.h>

#include "audit.h"
#include "fhir.h"
#include "fhir_parse.h"
#include "log.h"
#include "metrics.h"
#include "name_norm.h"
#include "onecardd.h"
#include "ratelimit.h"
#include "wire.h"

/* Named limits of the FHIR door (and fhir_parse.h's). */
#define FHIR_MAX_HEADERS 8192  /* bytes of request line and headers */
#define FHIR_MAX_BODY    65536 /* bytes of a request body */
#define FHIR_TIMEOUT     10    /* seconds to send a request (--fhir-timeout) */
#define FHIR_MAX_CONNS   1024  /* connections at once (--fhir-max-conns) */
#define FHIR_MAX_PARAMS  16    /* query parameters in one request */
#define FHIR_COALESCE    16384 /* answers up to this are sent as one record */

/*
 * One connection's deadline: a whole request within the timeout of the
 * connection's start or of its last answer, however slowly its bytes come
 * (evhttp's own timeout restarts at every byte read). Made by fhir_bevcb,
 * hung on the connection's SSL, freed with it by fhir_conn_free, the one
 * place a connection leaves the count.
 */
struct fhir_conn {
	struct event *deadline;
	struct bufferevent *bev;
	struct timeval timeout;
	int counted; /* holds one of --fhir-max-conns' slots */
};

static atomic_int fhir_conns;            /* open, counted connections */
static atomic_ullong fhir_conns_refused; /* over --fhir-max-conns */
static int fhir_conn_index = -1;         /* SSL ex_data: struct fhir_conn */
static int fhir_max_conns = FHIR_MAX_CONNS;
static int fhir_timeout = FHIR_TIMEOUT;

/* The deadline passed: end the connection (evhttp frees it on the EOF). */
static void
fhir_conn_expire(evutil_socket_t fd, short what, void *arg)
{
	struct fhir_conn *fc = arg;
	evutil_socket_t s = bufferevent_getfd(fc->bev);

	(void)fd;
	(void)what;
	if (s != -1)
		shutdown(s, SHUT_RDWR);
}

/*
 * An answer was queued: the next request has a full timeout again. evhttp
 * queues its headers and its body apart, and the openssl bufferevent writes
 * each chain of the buffer as a record and a write(2) of its own: a small
 * answer is made one chain, so it leaves as one record in one write.
 */
static void
fhir_conn_wrote(
    struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	struct fhir_conn *fc = arg;

	if (info->n_added == 0)
		return;
	if (fc->counted)
		evtimer_add(fc->deadline, &fc->timeout);
	if (evbuffer_get_length(b) <= FHIR_COALESCE)
		evbuffer_pullup(b, -1);
}

/* SSL_free of a connection's SSL: its slot and deadline go with it. */
static void
fhir_conn_free(
    void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct fhir_conn *fc = ptr;

	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (fc == NULL)
		return;
	if (fc->counted)
		atomic_fetch_sub(&fhir_conns, 1);
	if (fc->deadline != NULL)
		event_free(fc->deadline);
	free(fc);
}

/* One serving thread: its loop, its evhttp on the shared listening socket,
 * its registry read handle. */
struct fhir_thread {
	struct event_base *base;
	struct evhttp *http;
	struct event *wake;
	int pipe[2];
	pthread_t thread;
	int started;
	struct registry *reg; /* this thread's read handle */
};

static struct {
	struct fhir_thread *t; /* n of them */
	int n;
	SSL_CTX *refuse; /* when tls_new fails: a handshake that fails */
} fs;

/* The thread this code runs on, and its request ids. */
static _Thread_local struct fhir_thread *fhir_self;
static _Thread_local uint64_t fhir_next_id;

struct registry *
fhir_registry(void)
{
	return fhir_self->reg;
}

void
fhir_send(struct fhir_req *r, int status, json_t *body)
{
	struct evbuffer *b = evbuffer_new();
	char *text = body
	    ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(6))
	    : NULL;
	char detail[320];

	json_decref(body);
	if (text != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(r->req),
		    "Content-Type", FHIR_JSON);
	if (b == NULL || (body != NULL && text == NULL) ||
	    (text != NULL && evbuffer_add(b, text, strlen(text)) == -1))
		evhttp_send_error(r->req, HTTP_INTERNAL, NULL);
	else
		evhttp_send_reply(r->req, status, NULL, b);
	free(text);
	if (b != NULL)
		evbuffer_free(b);
	metrics_fhir_request(status);
	if (r->op_case != 0)
		metrics_request_on(METRICS_FHIR, r->cn, r->op_case, r->res.code,
		    onecardd_now_us() - r->start_us);
	if (audit_enabled()) {
		struct audit_entry e = {
		    .actor = r->cn,
		    .role = r->who.role,
		    .op = r->op,
		    .target = r->res.target,
		    .patient_id = r->res.patient_id,
		    .code = r->res.code,
		    .latency_us = onecardd_now_us() - r->start_us,
		    .detail = detail,
		};
		snprintf(detail, sizeof(detail), "http=%d%s%s", status,
		    r->detail[0] ? " " : "", r->detail);
		audit_log(&e);
	}
}

void
fhir_fail(
    struct fhir_req *r, int status, const char *code, const char *fmt, ...)
{
	char diag[512];
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	vsnprintf(diag, sizeof(diag), fmt, ap);
	va_end(ap);
	o = json_pack("{s:s, s:[{s:s, s:s, s:s}]}", "resourceType",
	    "OperationOutcome", "issue", "severity", "error", "code", code,
	    "diagnostics", diag);

	if (r->res.code == 0 && status >= 400)
		r->res.code = status == 404 ? ONECARD__V1__CODE__NOT_FOUND
		    : status == 403 ? ONECARD__V1__CODE__PERMISSION_DENIED
		    : status == 401 ? ONECARD__V1__CODE__UNAUTHENTICATED
		    : status == 409 ? ONECARD__V1__CODE__CONFLICT
		    : status == 412 ? ONECARD__V1__CODE__VERSION_MISMATCH
		    : status >= 500 ? ONECARD__V1__CODE__INTERNAL
				    : ONECARD__V1__CODE__INVALID_ARGUMENT;
	fhir_send(r, status, o);
}

int
fhir_decode(struct fhir_req *r, struct evbuffer *b, char *const *targets,
    size_t n, const char *presented, Onecard__V1__Reply **out)
{
	Onecard__V1__Reply *reply = NULL;
	uint8_t *frame;
	size_t len, body;

	*out = NULL;
	policy_refresh(&r->pol);
	if (!policy_is_full(&r->pol)) {
		struct evbuffer *f = evbuffer_new();

		if (f == NULL)
			return r->res.code = ONECARD__V1__CODE__INTERNAL;
		policy_filter_named(&r->pol, targets, n, presented, b, f);
		evbuffer_add_buffer(b, f);
		evbuffer_free(f);
	}
	len = evbuffer_get_length(b);
	if (wire_peek_evbuffer(b, len, &body) == WIRE_FRAME &&
	    (frame = evbuffer_pullup(b, -1)) != NULL)
		reply = wire_reply_unpack(frame + WIRE_HEADER_LEN, body,
		    body * WIRE_MEM_FACTOR + 4096, NULL);
	if (reply == NULL)
		return r->res.code = ONECARD__V1__CODE__INTERNAL;
	*out = reply;
	return r->res.code = reply->code;
}

int
fhir_ask(struct fhir_req *r, const Onecard__V1__Request *req,
    char *const *targets, size_t n, const char *presented,
    Onecard__V1__Reply **out)
{
	struct evbuffer *b = evbuffer_new();
	int code;

	*out = NULL;
	if (b == NULL)
		return r->res.code = ONECARD__V1__CODE__INTERNAL;
	registry_read(fhir_registry(), &r->who, req, b, &r->res);
	code = fhir_decode(r, b, targets, n, presented, out);
	evbuffer_free(b);
	return code;
}

/*
 * Ask the registry for the live patient holding domain|value, the same
 * Lookup the binary door sends, with its target domains (n of them; PIXm's
 * targetSystem). The reply's code; *out is the decoded reply when OK
 * (free with wire_reply_free).
 */
static int
fhir_lookup(struct fhir_req *r, const char *domain, const char *value,
    char *const *targets, size_t n, Onecard__V1__Reply **out)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Lookup lk = ONECARD__V1__LOOKUP__INIT;
	Onecard__V1__Identifier id = ONECARD__V1__IDENTIFIER__INIT;
	Onecard__V1__Reply *reply;
	int code;

	*out = NULL;
	id.domain = (char *)domain;
	id.value = (char *)value;
	lk.identifier = &id;
	req.id = ++fhir_next_id;
	req.op_case = ONECARD__V1__REQUEST__OP_LOOKUP;
	req.lookup = &lk;
	lk.target_domains = (char **)targets;
	lk.n_target_domains = n;
	/* The identifier presented is the caller's to see. */
	code = fhir_ask(r, &req, targets, n, domain, &reply);
	if (code == ONECARD__V1__CODE__OK &&
	    reply->result_case == ONECARD__V1__REPLY__RESULT_PATIENT) {
		*out = reply;
		return ONECARD__V1__CODE__OK;
	}
	if (reply != NULL)
		wire_reply_free(reply);
	return code == ONECARD__V1__CODE__OK ? ONECARD__V1__CODE__INTERNAL
					     : code;
}

/* Is domain one the registry knows (a cn-id, a cn-ssc, a hospital's)? */
static int
fhir_domain_known(const char *domain)
{
	int role;

	if (strcmp(domain, "cn-id") == 0 || strcmp(domain, "cn-ssc") == 0)
		return 1;
	if (strncmp(domain, "hosp:", 5) == 0)
		return registry_hospital_role(
			   fhir_registry(), domain + 5, &role) == 0;
	return 0;
}

/* Does p hold an identifier in domain? */
static int
fhir_holds_domain(const Onecard__V1__Patient *p, const char *domain)
{
	for (size_t i = 0; i < p->n_identifiers; i++)
		if (strcmp(p->identifiers[i]->domain, domain) == 0)
			return 1;
	return 0;
}

json_t *
fhir_identifier(const Onecard__V1__Identifier *id)
{
	char system[FHIR_TEXT_MAX];

	fhir_system_name(id->domain, system, sizeof(system));
	return json_pack("{s:s, s:s}", "system", system, "value", id->value);
}

/* How a registry code is answered, and what to say when it says nothing. */
static const struct {
	int code, status;
	const char *issue, *say;
} fhir_codes[] = {
    {ONECARD__V1__CODE__NOT_FOUND, 404, "not-found",
	"no patient holds this identifier"},
    {ONECARD__V1__CODE__INVALID_ARGUMENT, 400, "invalid",
	"the identifier is malformed"},
    {ONECARD__V1__CODE__PERMISSION_DENIED, 403, "forbidden",
	"not allowed for this CN"},
    {ONECARD__V1__CODE__CONFLICT, 409, "conflict",
	"the change contradicts the registry"},
    {ONECARD__V1__CODE__VERSION_MISMATCH, 412, "conflict",
	"the record has moved on"},
    {ONECARD__V1__CODE__RESOURCE_EXHAUSTED, 429, "throttled",
	"a limit was passed"},
    {ONECARD__V1__CODE__UNAVAILABLE, 503, "transient", "registry unavailable"},
};

void
fhir_fail_code(struct fhir_req *r, int code, const char *msg)
{
	r->res.code = code;
	for (size_t i = 0; i < sizeof(fhir_codes) / sizeof(fhir_codes[0]); i++)
		if (fhir_codes[i].code == code) {
			/* UNAVAILABLE's own message may name the store. */
			fhir_fail(r, fhir_codes[i].status, fhir_codes[i].issue,
			    "%s",
			    msg != NULL && msg[0] != '\0' &&
				    code != ONECARD__V1__CODE__UNAVAILABLE
				? msg
				: fhir_codes[i].say);
			return;
		}
	fhir_fail(r, 500, "exception", "registry error");
}

/* PIXm ITI-83: GET /fhir/Patient/$ihe-pix. */
static void
fhir_pix(struct fhir_req *r, struct evkeyvalq *q)
{
	const char *src = evhttp_find_header(q, "sourceIdentifier");
	const char *target = evhttp_find_header(q, "targetSystem");
	char domain[FHIR_TEXT_MAX], tbuf[FHIR_TEXT_MAX], *tdomain = NULL;
	Onecard__V1__Reply *reply;
	Onecard__V1__Patient *p;
	char sys[256], ref[80], *bar;
	json_t *params;
	int code;

	r->op = "fhir:pix";
	if (src == NULL || (bar = strchr(src, '|')) == NULL ||
	    (size_t)(bar - src) >= sizeof(sys)) {
		fhir_fail(r, 400, "required",
		    "sourceIdentifier=SYSTEM|VALUE is required");
		return;
	}
	memcpy(sys, src, bar - src);
	sys[bar - src] = '\0';
	/* A revoked hospital's domain is no longer "known", but the
	 * identifiers it issued still are: ask before calling it unknown. */
	if (fhir_system_domain(sys, domain, sizeof(domain)) == -1 ||
	    (!fhir_domain_known(domain) && strncmp(domain, "hosp:", 5) != 0)) {
		fhir_fail(r, 400, "code-invalid",
		    "sourceIdentifier: unknown identifier domain");
		return;
	}
	if (target != NULL &&
	    (fhir_system_domain(target, tdomain = tbuf, sizeof(tbuf)) == -1 ||
		(!fhir_domain_known(tdomain) &&
		    strncmp(tdomain, "hosp:", 5) != 0))) {
		fhir_fail(
		    r, 403, "code-invalid", "targetSystem: unknown domain");
		return;
	}
	/* targetSystem is PIXm's name for the domains the caller needs. */
	if ((code = fhir_lookup(r, domain, bar + 1, (char *const *)&tdomain,
		 tdomain != NULL, &reply)) != 0) {
		if (code == ONECARD__V1__CODE__NOT_FOUND &&
		    !fhir_domain_known(domain))
			fhir_fail(r, 400, "code-invalid",
			    "sourceIdentifier: unknown identifier domain");
		else
			fhir_fail_code(r, code, NULL);
		return;
	}
	if (tdomain != NULL && !fhir_domain_known(tdomain) &&
	    !fhir_holds_domain(reply->patient, tdomain)) {
		wire_reply_free(reply);
		fhir_fail(
		    r, 403, "code-invalid", "targetSystem: unknown domain");
		return;
	}
	p = reply->patient;
	params =
	    json_pack("{s:s, s:[]}", "resourceType", "Parameters", "parameter");
	for (size_t i = 0; i < p->n_identifiers; i++) {
		if (tdomain != NULL &&
		    strcmp(p->identifiers[i]->domain, tdomain) != 0)
			continue;
		json_array_append_new(json_object_get(params, "parameter"),
		    json_pack("{s:s, s:o}", "name", "targetIdentifier",
			"valueIdentifier", fhir_identifier(p->identifiers[i])));
	}
	snprintf(ref, sizeof(ref), "Patient/%s", p->patient_id);
	json_array_append_new(json_object_get(params, "parameter"),
	    json_pack("{s:s, s:{s:s}}", "name", "targetId", "valueReference",
		"reference", ref));
	wire_reply_free(reply);
	fhir_send(r, 200, params);
}

/*
 * A HumanName for name: text always; for a name in Chinese characters,
 * family and given split after the surname (one character, or two for a
 * compound surname such as 欧阳), as matching reads it.
 */
static json_t *
fhir_human_name(const char *name)
{
	json_t *hn = json_pack("{s:s}", "text", name);
	struct name_norm nn;
	const unsigned char *s = (const unsigned char *)name;
	size_t i = 0;
	int k;

	if (name_normalise(name, strlen(name), &nn, NULL) == -1 ||
	    nn.pinyin_input || nn.surname_len <= 0 || strchr(name, ' ') ||
	    nn.surname_len >= nn.nchars)
		return hn;
	for (k = 0; k < nn.surname_len && s[i] != '\0'; k++) {
		i++; /* past the lead byte, then its continuation bytes */
		while ((s[i] & 0xc0) == 0x80)
			i++;
	}
	if (s[i] == '\0')
		return hn;
	json_object_set_new(hn, "family", json_stringn(name, i));
	json_object_set_new(hn, "given", json_pack("[s]", name + i));
	return hn;
}

json_t *
fhir_patient_stub(const char *pid, const char *survivor)
{
	char ref[80];

	snprintf(ref, sizeof(ref), "Patient/%s", survivor);
	return json_pack("{s:s, s:s, s:b, s:[{s:{s:s}, s:s}]}", "resourceType",
	    "Patient", "id", pid, "active", 0, "link", "other", "reference",
	    ref, "type", "replaced-by");
}

json_t *
fhir_patient(const Onecard__V1__Patient *p)
{
	const Onecard__V1__Demographics *d = p->demographics;
	char ver[24];
	json_t *o, *ids;

	snprintf(ver, sizeof(ver), "%llu", (unsigned long long)p->version);
	o = json_pack("{s:s, s:s, s:{s:s}, s:b}", "resourceType", "Patient",
	    "id", p->patient_id, "meta", "versionId", ver, "active", 1);
	ids = json_array();
	for (size_t i = 0; i < p->n_identifiers; i++)
		json_array_append_new(ids, fhir_identifier(p->identifiers[i]));
	json_object_set_new(o, "identifier", ids);
	if (d == NULL)
		return o;
	if (d->name != NULL && d->name[0] != '\0')
		json_object_set_new(
		    o, "name", json_pack("[o]", fhir_human_name(d->name)));
	if (d->sex != ONECARD__V1__SEX__SEX_UNKNOWN)
		json_object_set_new(o, "gender",
		    json_string(d->sex == ONECARD__V1__SEX__SEX_MALE
			    ? "male"
			    : "female"));
	if (d->birth_date != NULL && d->birth_date[0] != '\0')
		json_object_set_new(o, "birthDate", json_string(d->birth_date));
	if (d->phone != NULL && d->phone[0] != '\0')
		json_object_set_new(o, "telecom",
		    json_pack(
			"[{s:s, s:s}]", "system", "phone", "value", d->phone));
	if (d->address != NULL && d->address[0] != '\0')
		json_object_set_new(
		    o, "address", json_pack("[{s:s}]", "text", d->address));
	return o;
}

/* GET /fhir/Patient/ID: the record, or a merged-away one's stub. */
static void
fhir_read(struct fhir_req *r, const char *pid)
{
	Onecard__V1__Reply *reply;
	Onecard__V1__Patient *p;
	char etag[32];
	json_t *o;
	int code;

	r->op = "fhir:read";
	if (strlen(pid) >= 48) {
		fhir_fail(r, 404, "not-found", "no such patient");
		return;
	}
	if ((code = fhir_lookup(r, "pid", pid, NULL, 0, &reply)) != 0) {
		if (code == ONECARD__V1__CODE__INVALID_ARGUMENT)
			code = ONECARD__V1__CODE__NOT_FOUND;
		fhir_fail_code(r, code, NULL);
		return;
	}
	p = reply->patient;
	if (strcasecmp(p->patient_id, pid) != 0) {
		/* The lookup followed a merge: pid was merged into p (the
		 * registry may have upper-cased the id it was given). */
		o = fhir_patient_stub(pid, p->patient_id);
		wire_reply_free(reply);
		fhir_send(r, 200, o);
		return;
	}
	snprintf(
	    etag, sizeof(etag), "W/\"%llu\"", (unsigned long long)p->version);
	evhttp_add_header(
	    evhttp_request_get_output_headers(r->req), "ETag", etag);
	o = fhir_patient(p);
	wire_reply_free(reply);
	fhir_send(r, 200, o);
}

/* A search parameter of the CapabilityStatement. */
static json_t *
fhir_cap_param(const char *name, const char *type)
{
	char def[96];

	if (name[0] == '_')
		snprintf(def, sizeof(def),
		    "http://hl7.org/fhir/SearchParameter/Resource-id");
	else
		snprintf(def, sizeof(def),
		    "http://hl7.org/fhir/SearchParameter/individual-%s", name);
	return json_pack(
	    "{s:s, s:s, s:s}", "name", name, "type", type, "definition", def);
}

/* GET /fhir/metadata: what this door serves, and nothing more. */
static void
fhir_metadata(struct fhir_req *r)
{
	static const char *const params[][2] = {{"_id", "token"},
	    {"identifier", "token"}, {"family", "string"}, {"given", "string"},
	    {"birthdate", "date"}, {"gender", "token"}, {"telecom", "token"},
	    {"address", "string"}};
	json_t *sp = json_array();
	json_t *patient;
	char date[16];
	time_t now = time(NULL);
	struct tm tm;
	json_t *o;

	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++)
		json_array_append_new(
		    sp, fhir_cap_param(params[i][0], params[i][1]));
	patient = json_pack("{s:s, s:[{s:s}, {s:s}, {s:s}, {s:s}], s:b, s:b, "
			    "s:s, s:o, s:[{s:s, s:s}, {s:s, s:s}]}",
	    "type", "Patient", "interaction", "code", "read", "code",
	    "search-type", "code", "update", "code", "delete", "updateCreate",
	    1, "conditionalUpdate", 1, "conditionalDelete", "single",
	    "searchParam", sp, "operation", "name", "ihe-pix", "definition",
	    "https://profiles.ihe.net/ITI/PIXm/OperationDefinition/"
	    "IHE.PIXm.pix",
	    "name", "match", "definition",
	    "http://hl7.org/fhir/OperationDefinition/Patient-match");

	/* The statement describes this running instance: today's date. */
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%Y-%m-%d", &tm);
	o = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:s, s:[s], "
		      "s:[{s:s, s:[o]}]}",
	    "resourceType", "CapabilityStatement", "status", "active", "kind",
	    "instance", "date", date, "software", "name", "onecardd", "version",
	    onecardd_version, "fhirVersion", "4.0.1", "format", "json", "rest",
	    "mode", "server", "resource", patient);

	r->op = "fhir:metadata";
	fhir_send(r, 200, o);
}

/* Does the client accept JSON? No: it asked for XML (406). */
static int
fhir_wants_json(struct evhttp_request *req, struct evkeyvalq *q)
{
	const char *f = evhttp_find_header(q, "_format");
	const char *a =
	    evhttp_find_header(evhttp_request_get_input_headers(req), "Accept");

	if (f != NULL)
		return strstr(f, "json") != NULL;
	if (a == NULL || a[0] == '\0')
		return 1;
	return strstr(a, "json") != NULL || strstr(a, "*/*") != NULL;
}

/* Who is asking: 0 with r->who set, or -1 with the refusal sent. */
static int
fhir_identify(struct fhir_req *r)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(r->req);
	struct bufferevent *bev =
	    evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	int rc, role;

	if (ssl == NULL || tls_peer_cn(ssl, r->cn, sizeof(r->cn)) == -1) {
		r->cn[0] = '\0';
		fhir_fail(r, 401, "login", "certificate has no usable CN");
		return -1;
	}
	if (onecardd_is_admin(r->cn)) {
		r->who.role = ONECARD__V1__ROLE__ROLE_ADMIN;
		policy_resolve(&r->pol, r->cn, r->who.role);
		return 0;
	}
	rc = registry_hospital_role(fhir_registry(), r->cn, &role);
	if (rc == 0) {
		r->who.role = role;
		policy_resolve(&r->pol, r->cn, r->who.role);
		return 0;
	}
	if (rc == 1) {
		log_info("fhir refused cn=%s reason=\"not an active hospital\"",
		    r->cn);
		fhir_fail(r, 403, "forbidden",
		    "certificate CN is not an active hospital");
	} else
		fhir_fail(r, 503, "transient", "registry unavailable");
	return -1;
}

int
fhir_rate(struct fhir_req *r, int kind, const char *op)
{
	int admin = r->who.role == ONECARD__V1__ROLE__ROLE_ADMIN;
	struct ratelimit_peer *p = ratelimit_peer(r->cn, admin);
	uint64_t retry_ns;
	uint32_t rate, burst;
	char msg[192], secs[24];

	r->op = op;
	/* Counted as the binary door counts them; the feed's writes are
	 * counted step by step (fhir_feed.c). */
	r->op_case = kind == RATELIMIT_LOOKUP ? ONECARD__V1__REQUEST__OP_LOOKUP
	    : kind == RATELIMIT_SEARCH        ? ONECARD__V1__REQUEST__OP_SEARCH
					      : 0;
	if (ratelimit_take(p, kind, onecardd_now_us() * 1000, &retry_ns, &rate,
		&burst) == 0)
		return 0;
	r->res.code = ONECARD__V1__CODE__RESOURCE_EXHAUSTED;
	ratelimit_message(
	    msg, sizeof(msg), r->cn, admin, kind, rate, burst, retry_ns);
	/* Retry-After counts whole seconds: rounded up, so never early. */
	snprintf(secs, sizeof(secs), "%llu",
	    (unsigned long long)((retry_ns + 999999999) / 1000000000));
	evhttp_add_header(
	    evhttp_request_get_output_headers(r->req), "Retry-After", secs);
	metrics_rate_limited(r->cn, kind);
	fhir_fail(r, 429, "throttled", "%s", msg);
	return -1;
}

void
fhir_url(struct fhir_req *r, const char *path, char *buf, size_t len)
{
	const char *host = evhttp_find_header(
	    evhttp_request_get_input_headers(r->req), "Host");

	/* A Host that is not a plain host[:port] is not echoed back. */
	if (host == NULL || host[0] == '\0' || strlen(host) > 255 ||
	    host[strspn(host,
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		"0123456789.-:[]")] != '\0')
		host = "localhost";
	snprintf(buf, len, "https://%s%s", host, path);
}

/* The request's body as a string (NUL added), or NULL when empty. */
static char *
fhir_body(struct evhttp_request *req, size_t *len)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	char *s;

	*len = evbuffer_get_length(in);
	if (*len == 0 || (s = malloc(*len + 1)) == NULL)
		return NULL;
	evbuffer_copyout(in, s, *len);
	s[*len] = '\0';
	return s;
}

/* Does the request's Content-Type start with one of types (|-separated)? */
static int
fhir_content_is(struct evhttp_request *req, const char *types)
{
	const char *ct = evhttp_find_header(
	    evhttp_request_get_input_headers(req), "Content-Type");
	const char *t = types;

	if (ct == NULL)
		return 0;
	while (*t != '\0') {
		size_t n = strcspn(t, "|");

		if (strncasecmp(ct, t, n) == 0 &&
		    (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' '))
			return 1;
		t += n + (t[n] == '|');
	}
	return 0;
}

#define FHIR_JSON_TYPES "application/fhir+json|application/json"

/* The request's JSON body, or NULL when it was answered 415 or 400. */
static json_t *
fhir_json_body(struct fhir_req *r, const char *op)
{
	char *body, err[256];
	size_t len;
	json_t *o;

	r->op = op;
	if (!fhir_content_is(r->req, FHIR_JSON_TYPES)) {
		fhir_fail(r, 415, "not-supported",
		    "Content-Type: give application/fhir+json");
		return NULL;
	}
	body = fhir_body(r->req, &len);
	o = fhir_parse_json(body ? body : "", len, err, sizeof(err));
	free(body);
	if (o == NULL)
		fhir_fail(r, 400, "structure", "%s", err);
	return o;
}

/* POST /fhir/Patient/$match: a JSON body, then the matcher. */
static void
fhir_post_match(struct fhir_req *r)
{
	json_t *o = fhir_json_body(r, "fhir:match");

	if (o != NULL && fhir_rate(r, RATELIMIT_SEARCH, "fhir:match") == 0)
		fhir_match(r, o);
	json_decref(o);
}

/* PUT /fhir/Patient?identifier=...: the feed's create or update. */
static void
fhir_put(struct fhir_req *r, struct evkeyvalq *q)
{
	json_t *o = fhir_json_body(r, "fhir:put");

	if (o != NULL && fhir_rate(r, RATELIMIT_WRITE, "fhir:put") == 0)
		fhir_feed_put(r, q, o);
	json_decref(o);
}

/*
 * The query: the URI's, and for a POST _search the form body's too. 0, or
 * -1 answered.
 */
static int
fhir_query(struct fhir_req *r, const char *query, int form, struct evkeyvalq *q)
{
	char *body = NULL, *all = NULL;
	size_t len = 0;
	int nparams = 0, rc;

	if (form) {
		if (!fhir_content_is(
			r->req, "application/x-www-form-urlencoded")) {
			fhir_fail(r, 415, "not-supported",
			    "Content-Type: give "
			    "application/x-www-form-urlencoded");
			return -1;
		}
		body = fhir_body(r->req, &len);
		if (body != NULL && strlen(body) != len) {
			free(body);
			fhir_fail(r, 400, "invalid", "body: holds a NUL byte");
			return -1;
		}
	}
	if (body != NULL && query != NULL && query[0] != '\0') {
		size_t n = strlen(query) + len + 2;

		if ((all = malloc(n)) != NULL)
			snprintf(all, n, "%s&%s", query, body);
	}
	rc = all    ? evhttp_parse_query_str(all, q)
	    : body  ? evhttp_parse_query_str(body, q)
	    : query ? evhttp_parse_query_str(query, q)
		    : 0;
	if (body != NULL && query != NULL && query[0] != '\0' && all == NULL)
		rc = -1;
	free(all);
	free(body);
	if (rc == -1) {
		fhir_fail(r, 400, "invalid", "malformed query string");
		return -1;
	}
	for (struct evkeyval *kv = q->tqh_first; kv; kv = kv->next.tqe_next)
		nparams++;
	if (nparams > FHIR_MAX_PARAMS) {
		fhir_fail(r, 400, "too-costly",
		    "too many query parameters (at most %d)", FHIR_MAX_PARAMS);
		return -1;
	}
	return 0;
}

/* Every request: identify, then route by method and path. */
static void
fhir_serve(struct evhttp_request *req, void *arg)
{
	struct fhir_req r = {.req = req, .op = "fhir:other"};
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
	const char *rawpath = uri ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	int get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
	struct evkeyvalq q;
	char *path = NULL;

	(void)arg;
	r.start_us = onecardd_now_us();
	r.who.cn = r.cn;
	TAILQ_INIT(&q);
	if (fhir_identify(&r) == -1)
		return;
	if (rawpath == NULL ||
	    (path = evhttp_uridecode(rawpath, 0, NULL)) == NULL) {
		fhir_fail(&r, 400, "invalid", "malformed request URI");
		goto out;
	}
	if (fhir_query(&r, query,
		cmd == EVHTTP_REQ_POST &&
		    strcmp(path, "/fhir/Patient/_search") == 0,
		&q) == -1)
		goto out;
	if (!fhir_wants_json(req, &q)) {
		fhir_fail(&r, 406, "not-supported", "only JSON is served");
		goto out;
	}
	if (strcmp(path, "/fhir/metadata") == 0 && get)
		fhir_metadata(&r);
	else if (strcmp(path, "/fhir/Patient/$ihe-pix") == 0 && get) {
		if (fhir_rate(&r, RATELIMIT_LOOKUP, "fhir:pix") == 0)
			fhir_pix(&r, &q);
	} else if (strcmp(path, "/fhir/Patient/$match") == 0 &&
	    cmd == EVHTTP_REQ_POST)
		fhir_post_match(&r);
	else if ((strcmp(path, "/fhir/Patient") == 0 && get) ||
	    (strcmp(path, "/fhir/Patient/_search") == 0 &&
		cmd == EVHTTP_REQ_POST)) {
		if (fhir_rate(&r, RATELIMIT_SEARCH, "fhir:search") == 0)
			fhir_search(&r, &q);
	} else if (strcmp(path, "/fhir/Patient") == 0 && cmd == EVHTTP_REQ_PUT)
		fhir_put(&r, &q);
	else if (strcmp(path, "/fhir/Patient") == 0 &&
	    cmd == EVHTTP_REQ_DELETE) {
		if (fhir_rate(&r, RATELIMIT_WRITE, "fhir:delete") == 0)
			fhir_feed_delete(&r, &q);
	} else if (strncmp(path, "/fhir/Patient/", 14) == 0 &&
	    path[14] != '\0' && strchr(path + 14, '/') == NULL &&
	    path[14] != '$' && path[14] != '_' && get) {
		if (fhir_rate(&r, RATELIMIT_LOOKUP, "fhir:read") == 0)
			fhir_read(&r, path + 14);
	} else if (strncmp(path, "/fhir/", 6) == 0 &&
	    (strcmp(path, "/fhir/metadata") == 0 ||
		strncmp(path, "/fhir/Patient", 13) == 0))
		fhir_fail(&r, 405, "not-supported",
		    "method not allowed on %.64s", path);
	else
		fhir_fail(&r, 404, "not-supported", "not served");
out:
	evhttp_clear_headers(&q);
	free(path);
}

/*
 * A new connection: TLS on the current context (so a reload applies), a
 * deadline, and a slot of --fhir-max-conns. Over the cap the connection
 * gets a context without a certificate and a deadline of zero: it is shut
 * on the loop's next turn, before any handshake could finish.
 */
static struct bufferevent *
fhir_bevcb(struct event_base *base, void *arg)
{
	struct bufferevent *bev;
	struct fhir_conn *fc;
	SSL *ssl = NULL;
	time_t now;
	static _Atomic time_t last_full_log;

	(void)arg;
	if ((fc = calloc(1, sizeof(*fc))) == NULL)
		return NULL;
	fc->counted = atomic_fetch_add(&fhir_conns, 1) < fhir_max_conns;
	if (fc->counted) {
		fc->timeout.tv_sec = fhir_timeout;
		ssl = tls_new();
	} else {
		atomic_fetch_sub(&fhir_conns, 1);
		atomic_fetch_add(&fhir_conns_refused, 1);
		now = time(NULL);
		if (atomic_exchange(&last_full_log, now) != now)
			log_warnx(
			    "fhir connection refused: --fhir-max-conns %d "
			    "reached (%llu refused)",
			    fhir_max_conns,
			    (unsigned long long)atomic_load(
				&fhir_conns_refused));
	}
	/* Never NULL: evhttp would then serve plain HTTP. */
	if (ssl == NULL)
		ssl = SSL_new(fs.refuse);
	if (ssl == NULL ||
	    (fc->deadline = evtimer_new(base, fhir_conn_expire, fc)) == NULL ||
	    SSL_set_ex_data(ssl, fhir_conn_index, fc) != 1) {
		if (fc->counted)
			atomic_fetch_sub(&fhir_conns, 1);
		if (fc->deadline != NULL)
			event_free(fc->deadline);
		free(fc);
		SSL_free(ssl);
		return NULL;
	}
	/* From here SSL_free frees fc (fhir_conn_free). */
	evtimer_add(fc->deadline, &fc->timeout);
	/* libevent's openssl bufferevent does not look at what read-ahead
	 * keeps inside the SSL: a request could wait there unseen. */
	SSL_set_read_ahead(ssl, 0);
	/* fhir_conn_wrote may move bytes a blocked SSL_write will retry. */
	SSL_set_mode(ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	bev = bufferevent_openssl_socket_new(
	    base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		SSL_free(ssl);
	else {
		fc->bev = bev;
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
		evbuffer_add_cb(
		    bufferevent_get_output(bev), fhir_conn_wrote, fc);
	}
	tls_clear_errors();
	return bev;
}

/* fhir_stop wrote to the thread's pipe: leave its loop. */
static void
fhir_wake(evutil_socket_t fd, short what, void *arg)
{
	struct fhir_thread *t = arg;
	char c;

	(void)what;
	if (read(fd, &c, 1) < 0)
		log_debug("fhir: wake read");
	event_base_loopbreak(t->base);
}

/* A FHIR thread: serve until stopped. */
static void *
fhir_thread(void *arg)
{
	fhir_self = arg;
	event_base_dispatch(fhir_self->base);
	return NULL;
}

/* Free whatever start made; the threads have stopped. */
static void
fhir_free(void)
{
	for (int i = 0; i < fs.n; i++) {
		struct fhir_thread *t = &fs.t[i];

		if (t->http != NULL)
			evhttp_free(t->http);
		if (t->wake != NULL)
			event_free(t->wake);
		if (t->base != NULL)
			event_base_free(t->base);
		for (int j = 0; j < 2; j++)
			if (t->pipe[j] != -1)
				close(t->pipe[j]);
		if (t->reg != NULL)
			registry_close(t->reg);
	}
	free(fs.t);
	SSL_CTX_free(fs.refuse);
	memset(&fs, 0, sizeof(fs));
}

/* Stop and join the threads that started; free everything. */
static void
fhir_join(void)
{
	for (int i = 0; i < fs.n; i++)
		if (fs.t[i].started && write(fs.t[i].pipe[1], "x", 1) != 1)
			log_warn("fhir: stop");
	for (int i = 0; i < fs.n; i++)
		if (fs.t[i].started)
			pthread_join(fs.t[i].thread, NULL);
	fhir_feed_drain();
	fhir_free();
}

/* Thread t's loop, evhttp, wake pipe and read handle. 0 or -1. */
static int
fhir_thread_init(struct fhir_thread *t, const struct config *c)
{
	struct registry_limits lim = c->limits;
	char err[256];

	/* No lookup cache: it would need the change feed to stay true. */
	lim.lookup_cache = 0;
	if ((t->reg = registry_open(c->db, 0, &lim, err, sizeof(err))) ==
	    NULL) {
		log_warnx("fhir: %s", err);
		return -1;
	}
	if ((t->base = event_base_new()) == NULL ||
	    (t->http = evhttp_new(t->base)) == NULL || pipe(t->pipe) == -1)
		return -1;
	for (int i = 0; i < 2; i++)
		if (fcntl(t->pipe[i], F_SETFD, FD_CLOEXEC) == -1 ||
		    fcntl(t->pipe[i], F_SETFL, O_NONBLOCK) == -1)
			return -1;
	t->wake =
	    event_new(t->base, t->pipe[0], EV_READ | EV_PERSIST, fhir_wake, t);
	if (t->wake == NULL || event_add(t->wake, NULL) == -1)
		return -1;
	evhttp_set_allowed_methods(t->http,
	    EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
		EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH);
	evhttp_set_timeout(t->http, fhir_timeout);
	evhttp_set_max_headers_size(t->http, FHIR_MAX_HEADERS);
	evhttp_set_max_body_size(t->http, FHIR_MAX_BODY);
	evhttp_set_bevcb(t->http, fhir_bevcb, NULL);
	evhttp_set_gencb(t->http, fhir_serve, NULL);
	return 0;
}

/*
 * Listen on --fhir-listen with --fhir-threads threads (default: one per
 * worker), each with its own loop, evhttp and registry read handle. The
 * socket is bound once (so the port a port 0 got is the one printed, and an
 * address in use fails as before); each thread accepts on its own copy of
 * it, whichever is free first taking a new connection.
 */
int
fhir_start(const struct config *c)
{
	struct evhttp_bound_socket *bound;
	struct sockaddr_storage ss;
	char host[INET6_ADDRSTRLEN], err[256];
	sigset_t all, old;
	int len, port, n, rc = 0, one = 1;
	evutil_socket_t fd;

	if (server_parse_address(c->fhir_listen, &ss, &len) == -1)
		return -1;
	fhir_system_clear();
	for (size_t i = 0; i < c->n_fhir_systems; i++)
		if (fhir_system_add(c->fhir_systems[i], err, sizeof(err)) ==
		    -1) {
			log_warnx("--fhir-system %s", err);
			return -1;
		}
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		port = ntohs(sin->sin_port);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		port = ntohs(sin6->sin6_port);
	}
	if (c->fhir_max_conns > 0)
		fhir_max_conns = c->fhir_max_conns;
	if (c->fhir_timeout > 0)
		fhir_timeout = c->fhir_timeout;
	if (fhir_conn_index == -1 &&
	    (fhir_conn_index = SSL_get_ex_new_index(
		 0, NULL, NULL, NULL, fhir_conn_free)) == -1)
		goto fail;
	n = c->fhir_threads > 0 ? c->fhir_threads : c->threads;
	if ((fs.t = calloc((size_t)n, sizeof(*fs.t))) == NULL)
		goto fail;
	fs.n = n;
	for (int i = 0; i < fs.n; i++)
		fs.t[i].pipe[0] = fs.t[i].pipe[1] = -1;
	if ((fs.refuse = SSL_CTX_new(TLS_server_method())) == NULL)
		goto fail;
	for (int i = 0; i < fs.n; i++)
		if (fhir_thread_init(&fs.t[i], c) == -1)
			goto fail;
	bound =
	    evhttp_bind_socket_with_handle(fs.t[0].http, host, (uint16_t)port);
	if (bound == NULL) {
		log_warnx("fhir: cannot listen on %s", c->fhir_listen);
		fhir_free();
		return -1;
	}
	fd = evhttp_bound_socket_get_fd(bound);
	/*
	 * evhttp sends an answer's headers and body as two writes: with Nagle
	 * the body waited for the client's delayed ACK, 40 ms a request on a
	 * keep-alive connection. Accepted sockets inherit the flag.
	 */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
		log_warn("fhir: TCP_NODELAY");
	for (int i = 1; i < fs.n; i++) {
		evutil_socket_t copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);

		if (copy == -1)
			goto fail;
		/* On failure libevent may have closed copy: leave it. */
		if (evhttp_accept_socket_with_handle(fs.t[i].http, copy) ==
		    NULL)
			goto fail;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (int i = 0; i < fs.n; i++) {
		rc = pthread_create(
		    &fs.t[i].thread, NULL, fhir_thread, &fs.t[i]);
		if (rc != 0)
			break;
		fs.t[i].started = 1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		errno = rc;
		log_warn("fhir: start");
		fhir_join();
		return -1;
	}
	metrics_print_listening("fhir", fd);
	return 0;
fail:
	log_warn("fhir: start");
	fhir_free();
	return -1;
}

void
fhir_stop(void)
{
	if (fs.n == 0)
		return;
	fhir_join();
}
