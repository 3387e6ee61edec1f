/*
 * policy.h: the disclosure policy: what each caller may see of a patient's
 * identifiers (docs/operations.md, "Disclosure"). A rule per hospital, from
 * the configuration, with a default; admins see everything. Every door --
 * replies, pushed events, FHIR -- asks the one decision here,
 * policy_identifier, through policy_filter_frames (or, for a decoded
 * Patient, policy_filter_patient). Under the default, full, callers skip
 * the filter altogether: nothing is decoded or copied.
 */
#ifndef ONECARD_POLICY_H
#define ONECARD_POLICY_H

#include <stddef.h>

#include "onecard.pb-c.h"

struct evbuffer;

/* Which identifiers: every one, or the minimum (docs/operations.md). */
#define POLICY_IDS_FULL    0
#define POLICY_IDS_MINIMAL 1
/* How a cn-id is shown: in full, or masked (410102********123X). */
#define POLICY_CNID_FULL   0
#define POLICY_CNID_MASKED 1

struct policy_rule {
	signed char ids;   /* POLICY_IDS_*; -1 in a hospital's entry: default */
	signed char cn_id; /* POLICY_CNID_*; -1 likewise */
};

/* One hospital's settings from the configuration (hospital.CODE.KEY). */
struct policy_hospital {
	char code[33];
	struct policy_rule rule;
};

/* The policy part of the configuration, as parsed; applied by policy_apply. */
struct policy_config {
	struct policy_rule dflt;
	struct policy_hospital *v;
	size_t n, cap;
};

/* Who asks, as the policy sees them; refreshed when the policy changes. */
struct policy_who {
	const char *cn; /* the certificate's CN: hosp:CN is its own domain */
	int role;       /* ONECARD__V1__ROLE__* */
	unsigned gen;   /* the policy it was resolved under */
	struct policy_rule rule;
};

/* What a caller sees of one identifier. */
enum policy_show {
	POLICY_SHOW = 0,
	POLICY_HIDE,
	POLICY_MASK,
};

/* Configuration: the defaults (full, cn-id in full). */
void policy_config_init(struct policy_config *pc);
void policy_config_free(struct policy_config *pc);
/*
 * Set the default key ("disclosure", "disclosure-cn-id") to value, or,
 * with code not NULL, that hospital's key. -1 with a message naming the key
 * and the values it takes in err.
 */
int policy_config_set(struct policy_config *pc, const char *code,
    const char *key, const char *value, char *err, size_t errlen);

/* Make pc the policy in force (start-up, SIGHUP). 0 or -1 (out of memory;
 * the policy in force stays). Any thread may be resolving meanwhile. */
int policy_apply(const struct policy_config *pc);
/* Free every policy applied; at exit, once no thread resolves any more. */
void policy_free(void);

/* Resolve the rule for cn (role) under the policy in force. */
void policy_resolve(struct policy_who *w, const char *cn, int role);
/* Resolve w again if the policy changed since (a SIGHUP): one load. */
void policy_refresh(struct policy_who *w);
/* Does w see everything as stored (no filter to run)? */
static inline int
policy_is_full(const struct policy_who *w)
{
	return w->rule.ids == POLICY_IDS_FULL &&
	    w->rule.cn_id == POLICY_CNID_FULL;
}

/*
 * Lookup.target_domains: each a domain (cn-id, cn-ssc, pid, hosp:CODE), at
 * most max of them. 0, or -1 with "target_domains[i]: why" in err.
 */
int policy_check_targets(
    const Onecard__V1__Lookup *l, size_t max, char *err, size_t errlen);

/* The one decision: what w sees of an identifier in domain, when the
 * request named targets (n of them; the other hospitals' domains it needs). */
enum policy_show policy_identifier(const struct policy_who *w,
    const char *domain, char *const *targets, size_t n);

/*
 * Filter a decoded Patient in place: hidden identifiers are taken out of
 * the array (the memory stays where it was: for a message whose free is a
 * no-op, as policy_filter_frames decodes), a masked cn-id is masked in its
 * own string (the mask keeps the length). Returns how many were changed.
 */
size_t policy_filter_patient(const struct policy_who *w, char *const *targets,
    size_t n, Onecard__V1__Patient *p);

/*
 * Move the whole frames in `in` (Reply frames: answers or pushed events) to
 * out, each filtered for w and the request's targets: every Patient it
 * carries and a pushed event's detail. A frame that needs no change is
 * moved as it is. `in` is left empty. 0, or -1 when memory ran out (a
 * frame that could not be filtered is answered INTERNAL, never sent).
 */
int policy_filter_frames(const struct policy_who *w, char *const *targets,
    size_t n, struct evbuffer *in, struct evbuffer *out);
/*
 * The same for a lookup's answer: the domain of the card presented (NULL:
 * none) counts as named, with the n targets, since the desk already holds
 * that card.
 */
int policy_filter_named(const struct policy_who *w, char *const *targets,
    size_t n, const char *presented, struct evbuffer *in, struct evbuffer *out);

#endif
