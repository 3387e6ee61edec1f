/*
 * search_guard.h: what a hospital's search must give before the registry
 * runs it, how many results it may get, and how a search's criteria are
 * written to the audit trail (masked). docs/protocol.md, "search".
 */
#ifndef ONECARD_SEARCH_GUARD_H
#define ONECARD_SEARCH_GUARD_H

#include <stddef.h>

#include "onecard.pb-c.h"

/*
 * May role run search s? Admins may run any search. A hospital's ranked
 * search needs an identifier, or a name with a birth date or a phone; its
 * exact search (which reads only name, birth date and sex) a name and a
 * birth date. 0 with *run the search to run: s, or *copy, which narrows
 * it (results cut to max_results unless 0; an identifier given without enough
 * demographics finds its holder only); -1 with why in err.
 */
int search_guard_check(int role, const Onecard__V1__Search *s,
    unsigned max_results, unsigned exact_default, Onecard__V1__Search *copy,
    const Onecard__V1__Search **run, char *err, size_t errlen);

/*
 * The criteria of s for the audit trail's detail, masked: the name as its
 * first character and a '*' for each other, the birth date as its year,
 * the phone as its last 4 digits, a cn-id as the trail masks it.
 */
void search_guard_describe(
    const Onecard__V1__Search *s, char *buf, size_t buflen);

#endif
