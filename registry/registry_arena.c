/*
 * registry_arena.c: the scratch arena a registry handle keeps for one request
 * at a time: replies, patient rows and identifier lists are carved from it and
 * forgotten together when the next request starts.
 */
#include <stdlib.h>
#include <string.h>

#include "registry_int.h"

#define ARENA_CHUNK (64 * 1024)

struct arena_chunk {
	struct arena_chunk *next;
	size_t len;
	size_t cap;
	char data[];
};

/* Allocate size zeroed bytes from the arena; NULL when out of memory. */
void *
arena_alloc(struct registry_arena *a, size_t size)
{
	struct arena_chunk *c = a->head;
	size_t need = (size + 15) & ~(size_t)15;
	void *p;

	if (c == NULL || c->cap - c->len < need) {
		size_t cap = need > ARENA_CHUNK ? need : ARENA_CHUNK;

		if ((c = malloc(sizeof(*c) + cap)) == NULL)
			return NULL;
		c->next = a->head;
		c->len = 0;
		c->cap = cap;
		a->head = c;
		if (a->first == NULL)
			a->first = c;
	}
	p = c->data + c->len;
	c->len += need;
	memset(p, 0, size);
	return p;
}

/* Forget everything allocated; keep the first chunk for the next request. */
void
arena_reset(struct registry_arena *a)
{
	struct arena_chunk *c = a->head, *next;

	while (c != NULL && c != a->first) {
		next = c->next;
		free(c);
		c = next;
	}
	a->head = a->first;
	if (a->first != NULL)
		a->first->len = 0;
}

/* Free every chunk. */
void
arena_free(struct registry_arena *a)
{
	struct arena_chunk *c = a->head, *next;

	for (; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	a->head = a->first = NULL;
}

char *
registry_arena_strndup(struct registry_arena *a, const char *s, size_t len)
{
	char *p = arena_alloc(a, len + 1);

	if (p != NULL)
		memcpy(p, s, len);
	return p;
}

/* Copy a string into the arena. */
char *
arena_strdup(struct registry_arena *a, const char *s)
{
	return registry_arena_strndup(a, s, strlen(s));
}
