#include "jsonin.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SCRATCH_SIZE 32768

/* The arena is static thread-local storage: nothing to free when a thread ends. */
static _Thread_local _Alignas(16) unsigned char scratch[SCRATCH_SIZE];
static _Thread_local size_t scratch_used;
static _Thread_local int scratch_on;

static void *hook_malloc(size_t n)
{
	if (scratch_on) {
		size_t need = (n + 15) & ~(size_t)15;
		if (need <= SCRATCH_SIZE - scratch_used) {
			void *p = scratch + scratch_used;
			scratch_used += need;
			return p;
		}
	}
	return malloc(n); /* too big for what is left: the heap, freed normally */
}

static void hook_free(void *p)
{
	unsigned char *c = p;
	if (c >= scratch && c < scratch + SCRATCH_SIZE)
		return;
	free(p);
}

void jsonin_init(void)
{
	cJSON_Hooks h = {hook_malloc, hook_free};
	cJSON_InitHooks(&h);
}

cJSON *jsonin_parse_scratch(const char *buf, size_t len)
{
	scratch_used = 0;
	scratch_on = 1;
	cJSON *j = cJSON_ParseWithLength(buf, len);
	scratch_on = 0;
	return j;
}

/* Depth of the deepest [ or { outside strings, or -1 at the first byte over the limit. */
static long too_deep_at(const char *b, size_t n)
{
	int depth = 0, in_str = 0;
	for (size_t i = 0; i < n; i++) {
		char c = b[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
		} else if (c == '"') {
			in_str = 1;
		} else if (c == '[' || c == '{') {
			if (++depth > JSONIN_MAX_DEPTH)
				return (long)i;
		} else if (c == ']' || c == '}') {
			depth--;
		}
	}
	return -1;
}

cJSON *jsonin_parse(const char *buf, size_t len, struct err *e)
{
	if (!buf || !len) {
		err_set(e, ERR_INVALID, "empty body: expected JSON");
		return NULL;
	}
	long deep = too_deep_at(buf, len);
	if (deep >= 0) {
		err_set(e, ERR_INVALID, "JSON nested deeper than %d levels (at byte %ld)",
			JSONIN_MAX_DEPTH, deep);
		return NULL;
	}
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
	if (!j) {
		long at = end ? (long)(end - buf) : 0;
		const char *ep = cJSON_GetErrorPtr();
		if (ep && ep >= buf && ep <= buf + len)
			at = (long)(ep - buf);
		err_set(e, ERR_INVALID, "malformed JSON at byte %ld", at);
		return NULL;
	}
	while (end && end < buf + len && strchr(" \t\r\n", *end))
		end++;
	if (end && end < buf + len && *end) {
		err_set(e, ERR_INVALID, "unexpected data after the JSON value at byte %ld",
			(long)(end - buf));
		cJSON_Delete(j);
		return NULL;
	}
	return j;
}

const char *jsonin_get(const cJSON *o, const char *k)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

int jsonin_str(const cJSON *o, const char *k, int required, const char **out, struct err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!v || cJSON_IsNull(v)) {
		if (required) {
			err_set(e, ERR_INVALID, "missing \"%s\" (a string)", k);
			return -1;
		}
		return 0;
	}
	if (!cJSON_IsString(v)) {
		err_set(e, ERR_INVALID, "\"%s\" must be a string", k);
		return -1;
	}
	*out = v->valuestring;
	return 0;
}

int jsonin_int(const cJSON *o, const char *k, int required, long long *out, struct err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!v || cJSON_IsNull(v)) {
		if (required) {
			err_set(e, ERR_INVALID, "missing \"%s\" (an integer)", k);
			return -1;
		}
		return 0;
	}
	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
	    fabs(v->valuedouble) > 9e15) {
		err_set(e, ERR_INVALID, "\"%s\" must be an integer", k);
		return -1;
	}
	*out = (long long)v->valuedouble;
	return 0;
}

int jsonin_bool(const cJSON *o, const char *k, int *out, struct err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsBool(v)) {
		err_set(e, ERR_INVALID, "\"%s\" must be true or false", k);
		return -1;
	}
	*out = cJSON_IsTrue(v);
	return 0;
}
