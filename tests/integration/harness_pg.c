/*
 * harness_pg.c: the integration suite on PostgreSQL. With
 * ONECARD_TEST_STORE=postgresql (ctest's pg/ variants of the integration
 * tests set it, with ONECARD_TEST_PG_URLFILE from the pg fixture), each
 * harness's broker keeps its registry in a new schema of that cluster
 * instead of a SQLite file in its folder; harness_cleanup drops it.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "harness.h"

/* The cluster's URL, from the file the pg fixture wrote. */
static int
harness_pg_url(char *url, size_t len)
{
	const char *file = getenv("ONECARD_TEST_PG_URLFILE");
	FILE *f;

	if (file == NULL || (f = fopen(file, "r")) == NULL) {
		fprintf(stderr,
		    "harness: ONECARD_TEST_STORE=postgresql needs "
		    "ONECARD_TEST_PG_URLFILE (ctest's pg fixture)\n");
		return -1;
	}
	if (fgets(url, (int)len, f) == NULL)
		url[0] = '\0';
	fclose(f);
	url[strcspn(url, "\n")] = '\0';
	return url[0] != '\0' ? 0 : -1;
}

/* Run sql on the cluster; 0 or -1 (said why). */
static int
harness_pg_exec(const char *url, const char *sql)
{
	PGconn *c = PQconnectdb(url);
	PGresult *r;
	int rc = -1;

	if (PQstatus(c) == CONNECTION_OK) {
		r = PQexec(c, sql);
		if (PQresultStatus(r) == PGRES_COMMAND_OK)
			rc = 0;
		PQclear(r);
	}
	if (rc == -1)
		fprintf(stderr, "harness: %s: %s", sql, PQerrorMessage(c));
	PQfinish(c);
	return rc;
}

int
harness_on_pg(void)
{
	const char *store = getenv("ONECARD_TEST_STORE");

	return store != NULL && strcmp(store, "postgresql") == 0;
}

int
harness_pg_db(struct harness *h)
{
	const char *tail = strrchr(h->dir, '.');
	char url[256], sql[256];
	size_t n;

	h->pg_schema[0] = '\0';
	if (!harness_on_pg())
		return 0;
	if (harness_pg_url(url, sizeof(url)) == -1)
		return -1;
	/* "it_" and the folder's random tail, lowercased: a name that
	 * needs no quoting. */
	n = (size_t)snprintf(h->pg_schema, sizeof(h->pg_schema), "it_%s",
	    tail != NULL ? tail + 1 : "x");
	for (size_t i = 3; i < n && i < sizeof(h->pg_schema); i++)
		h->pg_schema[i] = isalnum((unsigned char)h->pg_schema[i])
		    ? (char)tolower((unsigned char)h->pg_schema[i])
		    : 'x';
	snprintf(sql, sizeof(sql),
	    "SET client_min_messages = warning;"
	    " DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s",
	    h->pg_schema, h->pg_schema);
	if (harness_pg_exec(url, sql) == -1) {
		h->pg_schema[0] = '\0';
		return -1;
	}
	snprintf(h->db, sizeof(h->db), "%s%coptions=-csearch_path%%3D%s", url,
	    strchr(url, '?') != NULL ? '&' : '?', h->pg_schema);
	return 0;
}

void
harness_pg_drop(struct harness *h)
{
	char url[256], sql[256];

	if (h->pg_schema[0] == '\0' || harness_pg_url(url, sizeof(url)) == -1)
		return;
	snprintf(sql, sizeof(sql),
	    "SET client_min_messages = warning;"
	    " DROP SCHEMA IF EXISTS %s CASCADE",
	    h->pg_schema);
	(void)harness_pg_exec(url, sql);
	h->pg_schema[0] = '\0';
}
