/*
 * registry_image.h: the SQLite store as the in-memory registry's image.
 *
 * registry_mem.c answers every read and rule check from memory and makes a
 * write durable in the redo log; the SQLite file is its checkpoint image,
 * loaded at start-up and brought up to date behind the writes by folding
 * the log's entries into it. These are the calls it needs from
 * registry_sqlite.c. Only registry*.c and the unit tests include this file.
 */
#ifndef ONECARD_REGISTRY_IMAGE_H
#define ONECARD_REGISTRY_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "registry_backend.h"

struct redo;

/* Where registry_image_load sends the image's rows; -1 from one stops it. */
struct registry_image_sink {
	int (*patient)(void *arg, const struct registry_patient *p);
	int (*ident)(
	    void *arg, const char *domain, const char *value, const char *pid);
	int (*hospital)(void *arg, const struct registry_hospital *h);
	int (*merge)(void *arg, int64_t id, const char *survivor,
	    const char *duplicate, uint64_t seq, int undone);
	int (*merge_ident)(
	    void *arg, int64_t merge_id, const char *domain, const char *value);
	int (*pair)(void *arg, const struct registry_pair *pr);
};

/* The fold's handle: creates and migrates; commits are synced. */
void *registry_image_open(const char *path, char *err, size_t errlen);
/* A read-only handle (history reads the events folded in). */
void *registry_image_reader(const char *path, char *err, size_t errlen);
void registry_image_close(void *h);
/* Give back the memory the handle's page cache holds. */
void registry_image_release(void *h);

/* The last log entry folded in and the id of the log it belongs to. */
int registry_image_state(void *h, uint64_t *applied, uint64_t *log_id);
/* Pair the image with a new log, synced, before anything goes into it. */
int registry_image_pair(void *h, uint64_t log_id);
/* Open <path>-redo for the image (a log of another image is set aside). */
struct redo *registry_image_log(
    const char *path, uint64_t log_id, char *err, size_t errlen);

/* Every row, in id order; the largest event and merge ids in *max_*. */
int registry_image_load(void *h, const struct registry_image_sink *sink,
    void *arg, uint64_t *max_event, int64_t *max_merge, char *err,
    size_t errlen);

/* One fold: begin, the entries' payloads, commit with the last seq. */
int registry_image_fold_begin(void *h);
int registry_image_fold(void *h, const uint8_t *payload, size_t len);
int registry_image_fold_commit(void *h, uint64_t seq);
void registry_image_fold_rollback(void *h);

/* The newest limit events of pid with seq <= upto, newest first. */
int registry_image_events(void *h, const char *pid, uint64_t upto,
    unsigned limit, registry_event_cb cb, void *arg);
/* Events with after < seq <= upto, oldest first, at most limit. */
int registry_image_events_after(void *h, uint64_t after, uint64_t upto,
    unsigned limit, registry_event_cb cb, void *arg);
/* Events up to this seq were dropped by retention (0: none); with a
 * hospital code, the last that hospital could see was this one. */
int registry_image_event_floor(void *h, const char *code, uint64_t *floor);
/*
 * Retention, on the fold's handle: drop the oldest events beyond the last
 * keep_events, or older than keep_ms (0, 0: keep all), at most
 * REGISTRY_PRUNE_BATCH of them in one call, in a transaction of its own;
 * the floor after it into *floor. 0 or a REGISTRY_E* code.
 */
#define REGISTRY_PRUNE_BATCH 10000
int registry_image_prune(void *h, uint64_t keep_events, int64_t keep_ms,
    int64_t now_ms, uint64_t *floor);

/* A consistent copy of the image into the new file dst (SQLite's online
 * backup); then make a copy stand alone (rollback journal, no WAL). */
int registry_image_backup(void *h, const char *dst, char *err, size_t errlen);
int registry_image_standalone(const char *path, char *err, size_t errlen);

#endif
