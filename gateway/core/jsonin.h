/* jsonin: parsing untrusted JSON with limits (size checked by the caller, nesting here)
 * and errors that say what is wrong and where. Pure; any thread. */
#ifndef AG_JSONIN_H
#define AG_JSONIN_H
#include <cjson/cJSON.h>
#include <stddef.h>

#include "err.h"

#define JSONIN_MAX_DEPTH 64

/* Parses buf[0..len) (need not be NUL-terminated). NULL with e (ERR_INVALID) on bad
 * JSON, nesting deeper than JSONIN_MAX_DEPTH, or trailing bytes. */
cJSON *jsonin_parse(const char *buf, size_t len, struct err *e);

/* Provider stream chunks are parsed by the thousand per second and dropped at once:
 * jsonin_parse_scratch puts their nodes in a per-thread arena instead of one malloc and
 * one free per node. jsonin_init installs the cJSON allocation hooks that make this
 * possible; call it once, before any thread uses cJSON. Without it scratch parses use
 * malloc, with the same results. */
void jsonin_init(void);
/* Like cJSON_ParseWithLength; the tree lives until the next scratch parse on this thread.
 * Release it with cJSON_Delete on the same thread (arena nodes cost nothing to free). */
cJSON *jsonin_parse_scratch(const char *buf, size_t len);

/* The string value of o[k], or NULL when absent or not a string. */
const char *jsonin_get(const cJSON *o, const char *k);

/* Typed field access; each fills e naming the field when it is there with the wrong
 * type, or missing while required. 0 when fine (also when absent and optional). */
int jsonin_str(const cJSON *o, const char *k, int required, const char **out, struct err *e);
int jsonin_int(const cJSON *o, const char *k, int required, long long *out, struct err *e);
int jsonin_bool(const cJSON *o, const char *k, int *out, struct err *e);

#endif
