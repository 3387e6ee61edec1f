/*
 * cli_out.c: exit codes and JSON shared by onecard and onecardctl.
 *
 * Every outcome, whether the broker's answer or the library's error, maps to
 * one exit code here, so the two CLIs cannot drift apart again. JSON strings
 * are escaped (quotes, backslashes, control characters); UTF-8 passes
 * through as is.
 */
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "cli_common.h"
#include "wire.h"

int
cli_exit_for_code(int code)
{
	switch (code) {
	case ONECARD__V1__CODE__OK:
		return CLI_EXIT_OK;
	case ONECARD__V1__CODE__NOT_FOUND:
		return CLI_EXIT_NO;
	case ONECARD__V1__CODE__INVALID_ARGUMENT:
		return CLI_EXIT_USAGE;
	case ONECARD__V1__CODE__CONFLICT:
	case ONECARD__V1__CODE__VERSION_MISMATCH:
	case ONECARD__V1__CODE__PERMISSION_DENIED:
	case ONECARD__V1__CODE__UNAUTHENTICATED:
		return CLI_EXIT_REFUSED;
	default:
		return CLI_EXIT_BROKER;
	}
}

int
cli_exit_for_err(int err)
{
	return err == ONECARD_EINVAL  ? CLI_EXIT_USAGE
	    : err == ONECARD_EUNKNOWN ? CLI_EXIT_UNKNOWN
				      : CLI_EXIT_CONNECT;
}

int
cli_call_failover(struct onecard_conn *conn, Onecard__V1__Request *req,
    Onecard__V1__Reply **reply, const char *prog, const char *what)
{
	int r = onecard_call(conn, req, reply);

	if (r != ONECARD_EUNKNOWN ||
	    (req->op_case != ONECARD__V1__REQUEST__OP_ENROLL &&
		req->op_case != ONECARD__V1__REQUEST__OP_LINK &&
		(req->op_case != ONECARD__V1__REQUEST__OP_UPDATE ||
		    req->update == NULL || req->update->expected_version == 0)))
		return r;
	fprintf(stderr, "%s: %s: %s; sent again to %s (safe to repeat)\n", prog,
	    what, onecard_last_error(conn), onecard_broker(conn));
	return onecard_call(conn, req, reply);
}

const char *
cli_err_token(int err)
{
	switch (err) {
	case ONECARD_EINVAL:
		return "CLIENT_INVALID";
	case ONECARD_ECONNECT:
		return "CLIENT_CONNECT";
	case ONECARD_ETLS:
		return "CLIENT_TLS";
	case ONECARD_ETIMEDOUT:
		return "CLIENT_TIMEOUT";
	case ONECARD_ECLOSED:
		return "CLIENT_CLOSED";
	case ONECARD_EPROTO:
		return "CLIENT_PROTOCOL";
	case ONECARD_EUNKNOWN:
		return "CLIENT_OUTCOME_UNKNOWN";
	default:
		return "CLIENT_ERROR";
	}
}

const char *
cli_code_token(int code)
{
	return wire_code_name(code);
}

const char *
cli_sex_name(Onecard__V1__Sex sex)
{
	switch (sex) {
	case ONECARD__V1__SEX__SEX_MALE:
		return "male";
	case ONECARD__V1__SEX__SEX_FEMALE:
		return "female";
	default:
		return "unknown";
	}
}

void
cli_json_string(FILE *f, const char *s)
{
	const unsigned char *p;

	fputc('"', f);
	for (p = (const unsigned char *)(s != NULL ? s : ""); *p != '\0'; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		case '\b':
			fputs("\\b", f);
			break;
		case '\f':
			fputs("\\f", f);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}

void
cli_json_patient(FILE *f, const Onecard__V1__Patient *p)
{
	const Onecard__V1__Demographics *d = p->demographics;
	size_t i;

	fputs("{\"patient_id\":", f);
	cli_json_string(f, p->patient_id);
	fputs(",\"name\":", f);
	cli_json_string(f, d != NULL ? d->name : "");
	fputs(",\"sex\":", f);
	cli_json_string(f,
	    cli_sex_name(d != NULL ? d->sex : ONECARD__V1__SEX__SEX_UNKNOWN));
	fputs(",\"birth_date\":", f);
	cli_json_string(f, d != NULL ? d->birth_date : "");
	fputs(",\"phone\":", f);
	cli_json_string(f, d != NULL ? d->phone : "");
	fputs(",\"address\":", f);
	cli_json_string(f, d != NULL ? d->address : "");
	fprintf(f, ",\"version\":%" PRIu64 ",\"merged_into\":", p->version);
	cli_json_string(f, p->merged_into);
	fputs(",\"identifiers\":[", f);
	for (i = 0; i < p->n_identifiers; i++) {
		fputs(i > 0 ? ",{\"domain\":" : "{\"domain\":", f);
		cli_json_string(f, p->identifiers[i]->domain);
		fputs(",\"value\":", f);
		cli_json_string(f, p->identifiers[i]->value);
		fputc('}', f);
	}
	fputs("]}", f);
}

void
cli_time_rfc3339(int64_t time_ms, char *buf, size_t len)
{
	int64_t ms = time_ms % 1000, s = time_ms / 1000;
	struct tm tm;
	time_t t;
	size_t n;

	if (ms < 0) { /* before 1970: round the seconds down */
		ms += 1000;
		s--;
	}
	t = (time_t)s;
	if (gmtime_r(&t, &tm) == NULL ||
	    (n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm)) == 0) {
		if (len > 0)
			buf[0] = '\0';
		return;
	}
	snprintf(buf + n, len - n, ".%03dZ", (int)ms);
}

void
cli_json_event(FILE *f, const Onecard__V1__Event *ev)
{
	char when[40];

	cli_time_rfc3339(ev->time_ms, when, sizeof when);
	fprintf(f, "{\"seq\":%" PRIu64 ",\"op\":", ev->seq);
	cli_json_string(f, ev->op);
	fputs(",\"patient_id\":", f);
	cli_json_string(f, ev->patient_id);
	fputs(",\"other_patient_id\":", f);
	cli_json_string(f, ev->other_patient_id);
	fputs(",\"actor\":", f);
	cli_json_string(f, ev->actor);
	fputs(",\"time\":", f);
	cli_json_string(f, when);
	fprintf(f, ",\"time_ms\":%" PRId64 ",\"detail\":", ev->time_ms);
	cli_json_string(f, ev->detail);
	fputs(",\"patient\":", f);
	if (ev->patient != NULL)
		cli_json_patient(f, ev->patient);
	else
		fputs("null", f);
	fputc('}', f);
}

void
cli_json_error(FILE *f, const char *code, const char *message)
{
	fputs("{\"error\":", f);
	cli_json_string(f, code);
	fputs(",\"message\":", f);
	cli_json_string(f, message);
	fputs("}\n", f);
}
