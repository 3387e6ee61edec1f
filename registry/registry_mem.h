/*
 * registry_mem.h: the in-memory registry over the SQLite image
 * (registry_mem.c), the store behind "sqlite:" and a plain path.
 */
#ifndef ONECARD_REGISTRY_MEM_H
#define ONECARD_REGISTRY_MEM_H

#include <stddef.h>

#include "registry.h"
#include "registry_backend.h"

extern const struct registry_backend registry_mem;

/* The limits (max_unfolded, keep_events, keep_ms) of registries opened
 * after the call (registry_open passes them). */
void registry_mem_set_limits(const struct registry_limits *lim);

#endif
