/*
 * fhir_parse.c: FHIR requests read into what the registry takes
 * (fhir_parse.h). Pure: tests/fuzz/fuzz_fhir.c drives every function here.
 * JSON is jansson's (docs/fhir.md says why); this file checks what jansson
 * does not: how deep a body nests, and which elements a Patient may carry.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "fhir_parse.h"

static void fhir_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
fhir_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Copy s into dst (FHIR_TEXT_MAX bytes): 0, or -1 when it does not fit. */
static int
fhir_copy(char *dst, size_t dstlen, const char *s)
{
	size_t n = strlen(s);

	if (n >= dstlen)
		return -1;
	memcpy(dst, s, n + 1);
	return 0;
}

/* Systems the configuration names for domains (--fhir-system), set at
 * start before the door's thread runs, read-only after. */
static struct {
	char domain[FHIR_TEXT_MAX];
	char uri[FHIR_TEXT_MAX];
} fhir_systems[FHIR_MAX_SYSTEMS];
static size_t fhir_nsystems;

int
fhir_system_check(const char *spec, char *domain, size_t domlen, char *uri,
    size_t urilen, char *err, size_t errlen)
{
	const char *eq = strchr(spec, '=');
	size_t n = eq ? (size_t)(eq - spec) : 0, k;

	if (eq == NULL || n == 0 || n >= domlen) {
		fhir_err(err, errlen, "'%.64s' is not DOMAIN=URI", spec);
		return -1;
	}
	memcpy(domain, spec, n);
	domain[n] = '\0';
	k = strlen(domain + 5);
	if (strcmp(domain, "cn-id") != 0 && strcmp(domain, "cn-ssc") != 0 &&
	    (strncmp(domain, "hosp:", 5) != 0 || k == 0 || k > 16 ||
		domain[5 +
		    strspn(domain + 5,
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			"0123456789_-")] != '\0')) {
		fhir_err(err, errlen,
		    "'%.64s': the domain is cn-id, cn-ssc or hosp:CODE",
		    domain);
		return -1;
	}
	eq++;
	if (fhir_copy(uri, urilen, eq) == -1 ||
	    (strncmp(eq, "urn:oid:", 8) == 0 ? eq[8] == '\0' || eq[8] == '.' ||
			eq[8 + strspn(eq + 8, "0123456789.")] != '\0'
					     : strncmp(eq, "urn:", 4) != 0 &&
			strncmp(eq, "http://", 7) != 0 &&
			strncmp(eq, "https://", 8) != 0) ||
	    strncmp(eq, FHIR_SYSTEM_URN, strlen(FHIR_SYSTEM_URN)) == 0 ||
	    eq[strcspn(eq, " |,\t")] != '\0') {
		fhir_err(err, errlen,
		    "'%.64s': the system is urn:oid:DIGITS.DIGITS, another "
		    "urn: or an http(s) URL (not urn:onecard:, no space, "
		    "'|' or ',')",
		    eq);
		return -1;
	}
	return 0;
}

int
fhir_system_add(const char *spec, char *err, size_t errlen)
{
	char dom[FHIR_TEXT_MAX], uri[FHIR_TEXT_MAX];

	if (fhir_system_check(
		spec, dom, sizeof(dom), uri, sizeof(uri), err, errlen) == -1)
		return -1;
	for (size_t i = 0; i < fhir_nsystems; i++)
		if (strcmp(fhir_systems[i].domain, dom) == 0 ||
		    strcmp(fhir_systems[i].uri, uri) == 0) {
			fhir_err(err, errlen, "'%.64s': %s named twice", spec,
			    strcmp(fhir_systems[i].domain, dom) == 0
				? "domain"
				: "system");
			return -1;
		}
	if (fhir_nsystems == FHIR_MAX_SYSTEMS) {
		fhir_err(err, errlen, "more than %d systems", FHIR_MAX_SYSTEMS);
		return -1;
	}
	memcpy(fhir_systems[fhir_nsystems].domain, dom, sizeof(dom));
	memcpy(fhir_systems[fhir_nsystems].uri, uri, sizeof(uri));
	fhir_nsystems++;
	return 0;
}

void
fhir_system_clear(void)
{
	fhir_nsystems = 0;
}

void
fhir_system_name(const char *domain, char *buf, size_t len)
{
	for (size_t i = 0; i < fhir_nsystems; i++)
		if (strcmp(fhir_systems[i].domain, domain) == 0) {
			snprintf(buf, len, "%s", fhir_systems[i].uri);
			return;
		}
	snprintf(buf, len, FHIR_SYSTEM_URN "%s", domain);
}

int
fhir_system_domain(const char *system, char *dom, size_t domlen)
{
	size_t n = strlen(FHIR_SYSTEM_URN);

	for (size_t i = 0; i < fhir_nsystems; i++)
		if (strcmp(fhir_systems[i].uri, system) == 0)
			return fhir_copy(dom, domlen, fhir_systems[i].domain);
	if (strncmp(system, FHIR_SYSTEM_URN, n) != 0 || system[n] == '\0' ||
	    strcmp(system + n, "pid") == 0)
		return -1;
	return fhir_copy(dom, domlen, system + n);
}

int
fhir_parse_token(const char *what, const char *tok, struct fhir_ident *id,
    char *err, size_t errlen)
{
	const char *bar = strchr(tok, '|'), *comma = strchr(tok, ',');
	char sys[FHIR_TEXT_MAX];

	if (bar == NULL || bar == tok || bar[1] == '\0') {
		fhir_err(err, errlen, "%s: give SYSTEM|VALUE", what);
		return -1;
	}
	if (comma != NULL) {
		fhir_err(err, errlen, "%s: one value only (no ',')", what);
		return -1;
	}
	if ((size_t)(bar - tok) >= sizeof(sys)) {
		fhir_err(err, errlen, "%s: system too long", what);
		return -1;
	}
	memcpy(sys, tok, bar - tok);
	sys[bar - tok] = '\0';
	if (fhir_system_domain(sys, id->domain, sizeof(id->domain)) == -1) {
		fhir_err(err, errlen,
		    "%s: system %.64s is not one of this registry's "
		    "(" FHIR_SYSTEM_URN "DOMAIN)",
		    what, sys);
		return -1;
	}
	if (fhir_copy(id->value, sizeof(id->value), bar + 1) == -1) {
		fhir_err(err, errlen, "%s: value too long", what);
		return -1;
	}
	return 0;
}

/*
 * Check what jansson would take without a bound: how deep the body nests,
 * and that it is UTF-8 (so the error says so, not "unable to decode").
 */
static int
fhir_json_scan(const unsigned char *s, size_t len, char *err, size_t errlen)
{
	int depth = 0, in_str = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = s[i];
		size_t need;

		if (c >= 0x80) {
			need = c >= 0xf0 && c <= 0xf4 ? 3
			    : c >= 0xe0               ? 2
			    : c >= 0xc2 && c < 0xe0   ? 1
						      : 0;
			if (need == 0 || i + need >= len)
				goto bad;
			for (size_t k = 1; k <= need; k++)
				if ((s[i + k] & 0xc0) != 0x80)
					goto bad;
			/* Overlong, surrogate or past U+10FFFF. */
			if ((c == 0xe0 && s[i + 1] < 0xa0) ||
			    (c == 0xed && s[i + 1] > 0x9f) ||
			    (c == 0xf0 && s[i + 1] < 0x90) ||
			    (c == 0xf4 && s[i + 1] > 0x8f))
				goto bad;
			i += need;
			continue;
		}
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
		} else if (c == '"')
			in_str = 1;
		else if (c == '{' || c == '[') {
			if (++depth > FHIR_MAX_DEPTH) {
				fhir_err(err, errlen,
				    "body: nested deeper than %d levels",
				    FHIR_MAX_DEPTH);
				return -1;
			}
		} else if (c == '}' || c == ']')
			depth--;
		continue;
	bad:
		fhir_err(err, errlen, "body: invalid UTF-8 at byte %zu", i);
		return -1;
	}
	return 0;
}

json_t *
fhir_parse_json(const char *buf, size_t len, char *err, size_t errlen)
{
	json_error_t je;
	json_t *o;

	if (len == 0) {
		fhir_err(
		    err, errlen, "body: empty (a JSON resource is needed)");
		return NULL;
	}
	if (fhir_json_scan((const unsigned char *)buf, len, err, errlen) == -1)
		return NULL;
	if ((o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je)) == NULL) {
		fhir_err(err, errlen,
		    "body: invalid JSON at line %d column %d: %s", je.line,
		    je.column, je.text);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		fhir_err(err, errlen, "body: not a JSON object");
		return NULL;
	}
	return o;
}

/* The string member key of o: 0 with *s (NULL when absent), -1 if not a
 * string. */
static int
fhir_member_str(const json_t *o, const char *key, const char **s)
{
	const json_t *v = json_object_get(o, key);

	*s = NULL;
	if (v == NULL)
		return 0;
	if (!json_is_string(v))
		return -1;
	*s = json_string_value(v);
	return 0;
}

/* Does a name start with a character outside ASCII (Chinese)? Then its
 * parts join without a space. */
static int
fhir_name_wide(const char *s)
{
	return (unsigned char)s[0] >= 0x80;
}

/* One Identifier element (where names it) into id. */
static int
fhir_parse_ident(const json_t *e, const char *where, struct fhir_ident *id,
    char *err, size_t errlen)
{
	const char *sys, *val;

	if (!json_is_object(e) || fhir_member_str(e, "system", &sys) == -1 ||
	    fhir_member_str(e, "value", &val) == -1 || sys == NULL ||
	    val == NULL) {
		fhir_err(
		    err, errlen, "%s: needs a string system and value", where);
		return -1;
	}
	if (fhir_system_domain(sys, id->domain, sizeof(id->domain)) == -1) {
		fhir_err(err, errlen,
		    "%s.system: %.64s is not one of this registry's "
		    "(" FHIR_SYSTEM_URN "DOMAIN)",
		    where, sys);
		return -1;
	}
	if (fhir_copy(id->value, sizeof(id->value), val) == -1) {
		fhir_err(err, errlen, "%s.value: too long", where);
		return -1;
	}
	return 0;
}

/* The first HumanName: its text, or family and given joined. */
static int
fhir_parse_name(
    const json_t *names, char *out, size_t outlen, char *err, size_t errlen)
{
	const json_t *hn = json_array_get(names, 0), *given;
	const char *text, *family;
	size_t n = 0;

	if (!json_is_array(names) || !json_is_object(hn) ||
	    fhir_member_str(hn, "text", &text) == -1 ||
	    fhir_member_str(hn, "family", &family) == -1) {
		fhir_err(err, errlen, "name: must be a list of HumanName");
		return -1;
	}
	given = json_object_get(hn, "given");
	if (given != NULL && !json_is_array(given)) {
		fhir_err(err, errlen, "name[0].given: must be a list");
		return -1;
	}
	if (family == NULL && given == NULL) {
		if (text == NULL) {
			fhir_err(err, errlen,
			    "name[0]: give text, or family and given");
			return -1;
		}
		if (fhir_copy(out, outlen, text) == -1)
			goto long_name;
		return 0;
	}
	out[0] = '\0';
	if (family != NULL && fhir_copy(out, outlen, family) == -1)
		goto long_name;
	n = strlen(out);
	for (size_t i = 0; given != NULL && i < json_array_size(given); i++) {
		const char *g = json_string_value(json_array_get(given, i));
		int sep = n > 0 && !(fhir_name_wide(out) && fhir_name_wide(g));

		if (g == NULL) {
			fhir_err(
			    err, errlen, "name[0].given[%zu]: not a string", i);
			return -1;
		}
		if (n + sep + strlen(g) >= outlen)
			goto long_name;
		if (sep)
			out[n++] = ' ';
		memcpy(out + n, g, strlen(g) + 1);
		n += strlen(g);
	}
	return 0;
long_name:
	fhir_err(err, errlen, "name: longer than %d bytes", FHIR_TEXT_MAX - 1);
	return -1;
}

/* gender's code as a Sex: 0, or -1 for another code. */
static int
fhir_parse_gender(const char *g, int *sex)
{
	if (strcmp(g, "male") == 0)
		*sex = ONECARD__V1__SEX__SEX_MALE;
	else if (strcmp(g, "female") == 0)
		*sex = ONECARD__V1__SEX__SEX_FEMALE;
	else if (strcmp(g, "other") == 0 || strcmp(g, "unknown") == 0)
		*sex = ONECARD__V1__SEX__SEX_UNKNOWN;
	else
		return -1;
	return 0;
}

/* The first Address: its text, or its parts from the largest down. */
static int
fhir_parse_address(
    const json_t *addrs, char *out, size_t outlen, char *err, size_t errlen)
{
	static const char *const parts[] = {"state", "city", "district"};
	const json_t *a = json_array_get(addrs, 0), *lines;
	const char *s;
	size_t n = 0;

	if (!json_is_array(addrs) || !json_is_object(a) ||
	    fhir_member_str(a, "text", &s) == -1) {
		fhir_err(err, errlen, "address: must be a list of Address");
		return -1;
	}
	if (s != NULL) {
		if (fhir_copy(out, outlen, s) == -1)
			goto long_addr;
		return 0;
	}
	out[0] = '\0';
	for (size_t i = 0; i < 3; i++) {
		if (fhir_member_str(a, parts[i], &s) == -1) {
			fhir_err(err, errlen, "address[0].%s: not a string",
			    parts[i]);
			return -1;
		}
		if (s == NULL)
			continue;
		if (n + strlen(s) >= outlen)
			goto long_addr;
		memcpy(out + n, s, strlen(s) + 1);
		n += strlen(s);
	}
	lines = json_object_get(a, "line");
	for (size_t i = 0; json_is_array(lines) && i < json_array_size(lines);
	     i++) {
		if ((s = json_string_value(json_array_get(lines, i))) == NULL) {
			fhir_err(err, errlen,
			    "address[0].line[%zu]: not a string", i);
			return -1;
		}
		if (n + strlen(s) >= outlen)
			goto long_addr;
		memcpy(out + n, s, strlen(s) + 1);
		n += strlen(s);
	}
	return 0;
long_addr:
	fhir_err(
	    err, errlen, "address: longer than %d bytes", FHIR_TEXT_MAX - 1);
	return -1;
}

/* The replaced-by link of a Patient, if any. */
static int
fhir_parse_link(
    const json_t *links, struct fhir_patient_in *out, char *err, size_t errlen)
{
	if (!json_is_array(links)) {
		fhir_err(err, errlen, "link: must be a list");
		return -1;
	}
	for (size_t i = 0; i < json_array_size(links); i++) {
		const json_t *l = json_array_get(links, i), *other;
		const char *type, *ref;
		char where[48];

		if (!json_is_object(l) ||
		    fhir_member_str(l, "type", &type) == -1 ||
		    !json_is_object(other = json_object_get(l, "other")) ||
		    fhir_member_str(other, "reference", &ref) == -1) {
			fhir_err(err, errlen,
			    "link[%zu]: needs other (a Reference) and type", i);
			return -1;
		}
		if (type == NULL || strcmp(type, "replaced-by") != 0)
			continue;
		if (out->has_link) {
			fhir_err(
			    err, errlen, "link: more than one replaced-by");
			return -1;
		}
		out->has_link = 1;
		if (ref != NULL) {
			if (strncmp(ref, "Patient/", 8) != 0 ||
			    ref[8] == '\0' || strchr(ref + 8, '/') != NULL ||
			    fhir_copy(out->link_pid, sizeof(out->link_pid),
				ref + 8) == -1) {
				fhir_err(err, errlen,
				    "link[%zu].other.reference: must be "
				    "Patient/ID",
				    i);
				return -1;
			}
			continue;
		}
		snprintf(where, sizeof(where), "link[%zu].other.identifier", i);
		if (fhir_parse_ident(json_object_get(other, "identifier"),
			where, &out->link_ident, err, errlen) == -1)
			return -1;
	}
	return 0;
}

int
fhir_parse_patient(
    const json_t *res, struct fhir_patient_in *out, char *err, size_t errlen)
{
	const json_t *ids, *v, *tel;
	const char *rt, *s;

	memset(out, 0, sizeof(*out));
	out->active = 1;
	if (!json_is_object(res) ||
	    fhir_member_str(res, "resourceType", &rt) == -1 || rt == NULL ||
	    strcmp(rt, "Patient") != 0) {
		fhir_err(err, errlen, "resourceType: must be Patient");
		return -1;
	}
	if ((ids = json_object_get(res, "identifier")) != NULL) {
		if (!json_is_array(ids)) {
			fhir_err(err, errlen, "identifier: must be a list");
			return -1;
		}
		if (json_array_size(ids) > FHIR_MAX_IDS) {
			fhir_err(err, errlen, "identifier: more than %d",
			    FHIR_MAX_IDS);
			return -1;
		}
		for (size_t i = 0; i < json_array_size(ids); i++) {
			char where[48];

			snprintf(where, sizeof(where), "identifier[%zu]", i);
			if (fhir_parse_ident(json_array_get(ids, i), where,
				&out->ids[i], err, errlen) == -1)
				return -1;
			out->n_ids++;
		}
	}
	if ((v = json_object_get(res, "name")) != NULL &&
	    fhir_parse_name(v, out->name, sizeof(out->name), err, errlen) == -1)
		return -1;
	if (fhir_member_str(res, "gender", &s) == -1 ||
	    (s != NULL && fhir_parse_gender(s, &out->sex) == -1)) {
		fhir_err(err, errlen,
		    "gender: must be male, female, other or unknown");
		return -1;
	}
	if (fhir_member_str(res, "birthDate", &s) == -1 ||
	    (s != NULL &&
		fhir_copy(out->birth_date, sizeof(out->birth_date), s) == -1)) {
		fhir_err(err, errlen, "birthDate: must be YYYY-MM-DD");
		return -1;
	}
	if ((tel = json_object_get(res, "telecom")) != NULL) {
		if (!json_is_array(tel)) {
			fhir_err(err, errlen, "telecom: must be a list");
			return -1;
		}
		for (size_t i = 0; i < json_array_size(tel); i++) {
			const json_t *t = json_array_get(tel, i);
			const char *sys, *val;

			if (!json_is_object(t) ||
			    fhir_member_str(t, "system", &sys) == -1 ||
			    fhir_member_str(t, "value", &val) == -1 ||
			    val == NULL) {
				fhir_err(err, errlen,
				    "telecom[%zu]: needs a string value", i);
				return -1;
			}
			if (sys != NULL && strcmp(sys, "phone") != 0)
				continue;
			if (fhir_copy(out->phone, sizeof(out->phone), val) ==
			    -1) {
				fhir_err(err, errlen,
				    "telecom[%zu].value: too long", i);
				return -1;
			}
			break;
		}
	}
	if ((v = json_object_get(res, "address")) != NULL &&
	    fhir_parse_address(
		v, out->address, sizeof(out->address), err, errlen) == -1)
		return -1;
	if ((v = json_object_get(res, "active")) != NULL) {
		if (!json_is_boolean(v)) {
			fhir_err(err, errlen, "active: must be true or false");
			return -1;
		}
		out->active = json_is_true(v);
	}
	if ((v = json_object_get(res, "link")) != NULL &&
	    fhir_parse_link(v, out, err, errlen) == -1)
		return -1;
	return 0;
}

int
fhir_parse_match(const json_t *params, struct fhir_patient_in *out,
    int *only_certain, unsigned *count, char *err, size_t errlen)
{
	const json_t *list = json_object_get(params, "parameter");
	const json_t *res = NULL;
	const char *rt;

	*only_certain = 0;
	*count = 0;
	if (fhir_member_str(params, "resourceType", &rt) == -1 || rt == NULL ||
	    strcmp(rt, "Parameters") != 0) {
		fhir_err(err, errlen, "resourceType: must be Parameters");
		return -1;
	}
	if (!json_is_array(list)) {
		fhir_err(err, errlen, "parameter: must be a list");
		return -1;
	}
	for (size_t i = 0; i < json_array_size(list); i++) {
		const json_t *p = json_array_get(list, i), *v;
		const char *name;

		if (!json_is_object(p) ||
		    fhir_member_str(p, "name", &name) == -1 || name == NULL) {
			fhir_err(
			    err, errlen, "parameter[%zu]: needs a name", i);
			return -1;
		}
		if (strcmp(name, "resource") == 0) {
			if (res != NULL) {
				fhir_err(err, errlen,
				    "parameter resource: given twice");
				return -1;
			}
			res = json_object_get(p, "resource");
		} else if (strcmp(name, "onlyCertainMatches") == 0) {
			if (!json_is_boolean(
				v = json_object_get(p, "valueBoolean"))) {
				fhir_err(err, errlen,
				    "parameter onlyCertainMatches: needs "
				    "valueBoolean");
				return -1;
			}
			*only_certain = json_is_true(v);
		} else if (strcmp(name, "count") == 0) {
			v = json_object_get(p, "valueInteger");
			if (!json_is_integer(v) || json_integer_value(v) < 1 ||
			    json_integer_value(v) > FHIR_MAX_COUNT) {
				fhir_err(err, errlen,
				    "parameter count: needs valueInteger 1 to "
				    "%d",
				    FHIR_MAX_COUNT);
				return -1;
			}
			*count = (unsigned)json_integer_value(v);
		}
	}
	if (res == NULL) {
		fhir_err(err, errlen,
		    "parameter resource: a Patient to match is required");
		return -1;
	}
	return fhir_parse_patient(res, out, err, errlen);
}

/* Append key=value (value encoded) to the self link's parameters. */
static void
fhir_used(struct fhir_search_in *out, const char *key, const char *value)
{
	char *enc = evhttp_encode_uri(value);
	size_t n = strlen(out->used);

	if (enc != NULL)
		snprintf(out->used + n, sizeof(out->used) - n, "%s%s=%s",
		    n ? "&" : "", key, enc);
	free(enc);
}

/* A count-like parameter: 0..max, else -1. */
static int
fhir_parse_uint(const char *s, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	v = strtoul(s, &end, 10);
	if (*end != '\0' || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

int
fhir_parse_search(const struct evkeyvalq *q, int strict,
    struct fhir_search_in *out, char *err, size_t errlen)
{
	const char *family = NULL, *given = NULL;
	unsigned seen = 0;
	int fam_exact = 0, giv_exact = 0;
	size_t n;

	memset(out, 0, sizeof(*out));
	out->count = 10;
	for (const struct evkeyval *kv = q->tqh_first; kv != NULL;
	     kv = kv->next.tqe_next) {
		static const char *const keys[] = {"_id", "identifier",
		    "family", "given", "birthdate", "gender", "telecom",
		    "address", "_count", "_offset"};
		const char *k = kv->key, *v = kv->value;
		char base[32];
		const char *colon = strchr(k, ':');
		int exact = 0, ki = -1;

		if (strcmp(k, "_format") == 0 || strcmp(k, "_pretty") == 0)
			continue;
		n = colon ? (size_t)(colon - k) : strlen(k);
		if (n >= sizeof(base))
			n = sizeof(base) - 1;
		memcpy(base, k, n);
		base[n] = '\0';
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (strcmp(base, keys[i]) == 0)
				ki = (int)i;
		if (ki == -1) {
			if (!strict)
				continue;
			fhir_err(
			    err, errlen, "%.64s: not a parameter served", k);
			return -1;
		}
		if (colon != NULL) {
			if (strcmp(colon, ":exact") != 0 || ki < 2 || ki > 3) {
				fhir_err(err, errlen,
				    "%.64s: modifier not served (only "
				    "family:exact and given:exact)",
				    k);
				return -1;
			}
			exact = 1;
		}
		if (seen & (1u << ki)) {
			fhir_err(err, errlen, "%s: given twice", base);
			return -1;
		}
		seen |= 1u << ki;
		if (v[0] == '\0') {
			fhir_err(err, errlen, "%s: empty", base);
			return -1;
		}
		switch (ki) {
		case 0:
			if (fhir_copy(out->id, sizeof(out->id), v) == -1) {
				fhir_err(err, errlen, "_id: too long");
				return -1;
			}
			break;
		case 1:
			if (fhir_parse_token("identifier", v, &out->ident, err,
				errlen) == -1)
				return -1;
			out->has_ident = 1;
			break;
		case 2:
			family = v;
			fam_exact = exact;
			break;
		case 3:
			given = v;
			giv_exact = exact;
			break;
		case 4:
			if (strncmp(v, "eq", 2) == 0)
				v += 2;
			if (strlen(v) != 10 || v[4] != '-' || v[7] != '-') {
				fhir_err(err, errlen,
				    "birthdate: give YYYY-MM-DD (prefix eq "
				    "only)");
				return -1;
			}
			memcpy(out->birth_date, v, 11);
			break;
		case 5:
			if (fhir_parse_gender(v, &out->sex) == -1) {
				fhir_err(err, errlen,
				    "gender: male, female, other or unknown");
				return -1;
			}
			break;
		case 6: {
			const char *bar = strchr(v, '|');

			if (bar != NULL) {
				if (bar != v &&
				    (bar - v != 5 || strncmp(v, "phone", 5))) {
					fhir_err(err, errlen,
					    "telecom: only the phone system");
					return -1;
				}
				v = bar + 1;
			}
			if (v[0] == '\0') {
				fhir_err(err, errlen, "telecom: no number");
				return -1;
			}
			if (fhir_copy(out->phone, sizeof(out->phone), v) ==
			    -1) {
				fhir_err(err, errlen, "telecom: too long");
				return -1;
			}
			break;
		}
		case 7:
			if (fhir_copy(out->address, sizeof(out->address), v) ==
			    -1) {
				fhir_err(err, errlen, "address: too long");
				return -1;
			}
			break;
		case 8:
			if (fhir_parse_uint(v, FHIR_MAX_COUNT, &out->count) ==
			    -1) {
				fhir_err(err, errlen, "_count: 0 to %d",
				    FHIR_MAX_COUNT);
				return -1;
			}
			continue; /* paging: not in the base query */
		case 9:
			if (fhir_parse_uint(
				v, FHIR_MAX_COUNT - 1, &out->offset) == -1) {
				fhir_err(err, errlen, "_offset: 0 to %d",
				    FHIR_MAX_COUNT - 1);
				return -1;
			}
			continue;
		}
		fhir_used(out, k, kv->value);
	}
	if (given != NULL && family == NULL) {
		fhir_err(err, errlen, "given: needs family");
		return -1;
	}
	if (fam_exact != giv_exact && given != NULL) {
		fhir_err(
		    err, errlen, "family, given: :exact on both or on neither");
		return -1;
	}
	out->exact = fam_exact;
	if (family != NULL) {
		int sep = given != NULL &&
		    !(fhir_name_wide(family) && fhir_name_wide(given));

		if (strlen(family) + sep + (given ? strlen(given) : 0) >=
		    sizeof(out->name)) {
			fhir_err(err, errlen, "family, given: too long");
			return -1;
		}
		snprintf(out->name, sizeof(out->name), "%s%s%s", family,
		    sep ? " " : "", given ? given : "");
	}
	if (out->id[0] != '\0' && (seen & ~1u & ~(3u << 8)) != 0) {
		fhir_err(err, errlen, "_id: give it alone");
		return -1;
	}
	if ((seen & ~(3u << 8)) == 0) {
		fhir_err(err, errlen,
		    "give _id, identifier, family, birthdate, telecom or "
		    "address");
		return -1;
	}
	if (out->exact &&
	    (out->phone[0] || out->address[0] || out->has_ident)) {
		fhir_err(err, errlen,
		    "family:exact: combines with birthdate and gender only");
		return -1;
	}
	return 0;
}

void
fhir_search_request(const struct fhir_search_in *in, Onecard__V1__Search *s,
    Onecard__V1__Identifier *id)
{
	onecard__v1__search__init(s);
	onecard__v1__identifier__init(id);
	s->name = (char *)in->name;
	s->birth_date = (char *)in->birth_date;
	s->phone = (char *)in->phone;
	s->address = (char *)in->address;
	s->sex = in->sex;
	s->exact = in->exact;
	s->limit = FHIR_MAX_COUNT;
	if (in->has_ident) {
		id->domain = (char *)in->ident.domain;
		id->value = (char *)in->ident.value;
		s->identifier = id;
	}
}
