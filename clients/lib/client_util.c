/*
 * client_util.c: the small pure parts of libonecard.
 *
 * Error texts, "HOST:PORT" splitting, options from the ONECARD_* environment
 * and the DOMAIN=VALUE identifier syntax. Nothing here does I/O; the broker,
 * not this file, decides whether an identifier is valid in its domain.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "client.h"
#include "wire.h"

#define IDENT_MAX_DOMAIN 64

const char *
onecard_strerror(int err)
{
	switch (err) {
	case ONECARD_OK:
		return "ok";
	case ONECARD_EINVAL:
		return "invalid argument";
	case ONECARD_ECONNECT:
		return "cannot connect";
	case ONECARD_ETLS:
		return "TLS failure";
	case ONECARD_ETIMEDOUT:
		return "timed out";
	case ONECARD_ECLOSED:
		return "connection closed by the broker";
	case ONECARD_EPROTO:
		return "protocol error";
	case ONECARD_ENOMEM:
		return "out of memory";
	case ONECARD_EIO:
		return "I/O error";
	case ONECARD_EUNKNOWN:
		return "outcome unknown";
	}
	/* The broker's refusal, as onecard_subscribe returns it. */
	if (err > 0)
		return wire_code_name(err);
	return "unknown error";
}

enum client_reply_kind
client_reply_kind(const Onecard__V1__Reply *reply)
{
	if (reply->id != 0)
		return CLIENT_REPLY_ANSWER;
	if (reply->code == ONECARD__V1__CODE__OK &&
	    reply->result_case == ONECARD__V1__REPLY__RESULT_EVENT &&
	    reply->event != NULL)
		return CLIENT_REPLY_EVENT;
	return CLIENT_REPLY_NOTICE;
}

void
client_err_append_ssl(char *buf, size_t len)
{
	unsigned long e;
	size_t n;
	const char *reason;

	while ((e = ERR_get_error()) != 0) {
		n = strlen(buf);
		if (n + 3 >= len)
			continue; /* keep draining the queue */
		reason = ERR_reason_error_string(e);
		if (ERR_SYSTEM_ERROR(e))
			snprintf(buf + n, len - n, ": %s",
			    strerror(ERR_GET_REASON(e)));
		else if (reason != NULL)
			snprintf(buf + n, len - n, ": %s", reason);
		else
			snprintf(buf + n, len - n, ": OpenSSL error %lx", e);
	}
}

void
client_errf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (buf == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

int
client_split_addr(
    const char *addr, char *host, size_t hostlen, char *port, size_t portlen)
{
	const char *colon, *hstart, *hend;
	size_t n;

	if (addr == NULL || *addr == '\0')
		return -1;
	if (addr[0] == '[') {
		hstart = addr + 1;
		if ((hend = strchr(hstart, ']')) == NULL || hend[1] != ':')
			return -1;
		colon = hend + 1;
	} else {
		hstart = addr;
		if ((colon = strrchr(addr, ':')) == NULL)
			return -1;
		hend = colon;
		if (memchr(addr, ':', colon - addr) != NULL)
			return -1; /* a bare IPv6 address needs brackets */
	}
	n = hend - hstart;
	if (n == 0 || n >= hostlen)
		return -1;
	memcpy(host, hstart, n);
	host[n] = '\0';
	/* At most 5 digits: atoi on a longer port would overflow and wrap
	 * (127.0.0.1:4294967297 is not port 1). */
	n = strlen(colon + 1);
	if (n == 0 || n > 5 || n >= portlen ||
	    strspn(colon + 1, "0123456789") != n)
		return -1;
	memcpy(port, colon + 1, n + 1);
	if (atoi(port) <= 0 || atoi(port) > 65535)
		return -1;
	return 0;
}

void
onecard_options_from_env(struct onecard_options *opt)
{
	const char *v;

	if (opt->broker == NULL && (v = getenv("ONECARD_BROKER")) != NULL &&
	    *v != '\0')
		opt->broker = v;
	if (opt->cert == NULL && (v = getenv("ONECARD_CERT")) != NULL &&
	    *v != '\0')
		opt->cert = v;
	if (opt->key == NULL && (v = getenv("ONECARD_KEY")) != NULL &&
	    *v != '\0')
		opt->key = v;
	if (opt->ca == NULL && (v = getenv("ONECARD_CA")) != NULL && *v != '\0')
		opt->ca = v;
}

void
client_options_resolve(
    const struct onecard_options *in, struct onecard_options *out)
{
	*out = *in;
	onecard_options_from_env(out);
	if (out->broker == NULL)
		out->broker = ONECARD_DEFAULT_BROKER;
	if (out->connect_timeout_ms <= 0)
		out->connect_timeout_ms = ONECARD_DEFAULT_CONNECT_TIMEOUT;
	if (out->call_timeout_ms <= 0)
		out->call_timeout_ms = ONECARD_DEFAULT_CALL_TIMEOUT;
	if (out->max_frame == 0)
		out->max_frame = ONECARD_DEFAULT_MAX_FRAME;
}

/* Is c allowed in a domain name ("cn-id", "hosp:XC001")? */
static int
ident_domain_char(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '_' || c == ':' || c == '.';
}

int
onecard_identifier_parse(const char *s, char *buf, size_t buflen,
    Onecard__V1__Identifier *id, char *errbuf, size_t errlen)
{
	char *eq, *p;
	size_t n;

	if (s == NULL || buf == NULL || id == NULL) {
		client_errf(errbuf, errlen, "no identifier given");
		return -1;
	}
	n = strlen(s);
	if (n + 1 > buflen) {
		client_errf(errbuf, errlen, "identifier is too long");
		return -1;
	}
	memcpy(buf, s, n + 1);
	if ((eq = strchr(buf, '=')) == NULL) {
		client_errf(
		    errbuf, errlen, "identifier \"%s\" is not DOMAIN=VALUE", s);
		return -1;
	}
	*eq = '\0';
	if (eq == buf) {
		client_errf(errbuf, errlen, "identifier has an empty domain");
		return -1;
	}
	if (eq - buf > IDENT_MAX_DOMAIN) {
		client_errf(errbuf, errlen,
		    "identifier domain is over %d bytes", IDENT_MAX_DOMAIN);
		return -1;
	}
	for (p = buf; *p != '\0'; p++) {
		if (!ident_domain_char((unsigned char)*p)) {
			client_errf(errbuf, errlen,
			    "identifier domain \"%s\" has a bad character",
			    buf);
			return -1;
		}
	}
	if (strncmp(buf, "hosp:", 5) == 0 && buf[5] == '\0') {
		client_errf(errbuf, errlen,
		    "identifier domain hosp: needs a hospital code");
		return -1;
	}
	if (eq[1] == '\0') {
		client_errf(
		    errbuf, errlen, "identifier %s= has an empty value", buf);
		return -1;
	}
	for (p = eq + 1; *p != '\0'; p++) {
		if ((unsigned char)*p <= ' ' || *p == 0x7f) {
			client_errf(errbuf, errlen,
			    "identifier %s= value has a space or control "
			    "character",
			    buf);
			return -1;
		}
	}
	onecard__v1__identifier__init(id);
	id->domain = buf;
	id->value = eq + 1;
	return 0;
}

int
client_reply_scan(const uint8_t *body, size_t len, uint64_t *id, int *code)
{
	const uint8_t *p = body, *end = body + len;
	uint64_t key, v;

	*id = 0;
	*code = 0;
	while (p < end) {
		if (wire_varint(&p, end, &key) == -1 || (key >> 3) == 0)
			return -1;
		switch (key & 7) {
		case 0: /* varint */
			if (wire_varint(&p, end, &v) == -1)
				return -1;
			if (key >> 3 == 1)
				*id = v;
			else if (key >> 3 == 2)
				*code = (int)(int32_t)v;
			break;
		case 1: /* 64-bit */
			if (end - p < 8)
				return -1;
			p += 8;
			break;
		case 2: /* length-delimited */
			if (wire_varint(&p, end, &v) == -1 ||
			    v > (uint64_t)(end - p))
				return -1;
			p += v;
			break;
		case 5: /* 32-bit */
			if (end - p < 4)
				return -1;
			p += 4;
			break;
		default: /* groups and reserved types: not in onecard.proto */
			return -1;
		}
	}
	return 0;
}

int
client_nth_broker(const char *list, size_t i, char *buf, size_t len)
{
	const char *p = list, *end;
	size_t n;

	for (; i > 0; i--)
		if ((p = strchr(p, ',')) == NULL)
			return -1;
		else
			p++;
	while (*p == ' ')
		p++;
	end = p + strcspn(p, ",");
	while (end > p && end[-1] == ' ')
		end--;
	n = (size_t)(end - p);
	if (n == 0 || n >= len)
		return -1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return 0;
}

size_t
client_count_brokers(const char *list)
{
	size_t n = 1;

	for (; *list != '\0'; list++)
		n += *list == ',';
	return n;
}
