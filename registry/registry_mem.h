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

/* The bound on synced bytes not yet folded into the image, for registries
 * opened after the call (registry_open passes the limit). */
void registry_mem_set_max_unfolded(size_t bytes);

#endif
