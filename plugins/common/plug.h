/* plug.h: what every first-party plugin needs beyond <agentgate/plugin.h> — filling an
 * ag_error, and reading its options object with an error that names the option. Header
 * only, on the SDK and cJSON alone (each plugin links cJSON itself). Options are read on
 * the loop in on_load; nothing here keeps state. */
#ifndef AG_PLUG_H
#define AG_PLUG_H

#include <agentgate/plugin.h>
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fills err (may be NULL) and returns code. */
static inline int plug_fail(struct ag_error *err, int code, const char *fmt, ...)
	AG_PRINTF(3, 4);
static inline int plug_fail(struct ag_error *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		err->code = code;
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
	}
	return code;
}

/* Parses the options text into an object (NULL text or "null": an empty object).
 * known: NULL-terminated names; any other key is refused, naming it. The caller
 * deletes *out. */
static inline int plug_options(const char *json, const char *const *known, cJSON **out,
			       struct ag_error *err)
{
	cJSON *o = cJSON_Parse(json && *json ? json : "{}");
	if (cJSON_IsNull(o)) {
		cJSON_Delete(o);
		o = cJSON_CreateObject();
	}
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return plug_fail(err, AG_E_INVALID, "options must be a JSON object");
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, o) {
		int ok = 0;
		for (const char *const *k = known; *k && !ok; k++)
			ok = !strcmp(*k, it->string);
		if (!ok) {
			int rc = plug_fail(err, AG_E_INVALID, "unknown option \"%s\"", it->string);
			cJSON_Delete(o);
			return rc;
		}
	}
	*out = o;
	return AG_OK;
}

/* o[name] as an integer in [min, max], def when absent. */
static inline int plug_opt_int(const cJSON *o, const char *name, long long def, long long min,
			       long long max, long long *out, struct ag_error *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (!v) {
		*out = def;
		return AG_OK;
	}
	double d = cJSON_IsNumber(v) ? v->valuedouble : 0.5;
	/* the range first: casting a double out of long long's range is undefined */
	if (!(d >= (double)min && d <= (double)max) || d != (double)(long long)d)
		return plug_fail(err, AG_E_INVALID, "option \"%s\" must be an integer from %lld "
				 "to %lld", name, min, max);
	*out = (long long)d;
	return AG_OK;
}

/* o[name] as true or false (1 or 0), def when absent. */
static inline int plug_opt_bool(const cJSON *o, const char *name, int def, int *out,
				struct ag_error *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (!v) {
		*out = def;
		return AG_OK;
	}
	if (!cJSON_IsBool(v))
		return plug_fail(err, AG_E_INVALID, "option \"%s\" must be true or false", name);
	*out = cJSON_IsTrue(v);
	return AG_OK;
}

/* o[name] as a non-empty string (borrowed from o), def (may be NULL) when absent. */
static inline int plug_opt_str(const cJSON *o, const char *name, const char *def,
			       const char **out, struct ag_error *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (!v) {
		*out = def;
		return AG_OK;
	}
	if (!cJSON_IsString(v) || !*v->valuestring)
		return plug_fail(err, AG_E_INVALID, "option \"%s\" must be a non-empty string",
				 name);
	*out = v->valuestring;
	return AG_OK;
}

/* A NULL-terminated array of strings, one allocation (free() it). */
static inline char **plug_strv(const char *const *src, int n)
{
	size_t bytes = (size_t)(n + 1) * sizeof(char *);
	for (int i = 0; i < n; i++)
		bytes += strlen(src[i]) + 1;
	char **v = malloc(bytes);
	if (!v)
		return NULL;
	char *p = (char *)(v + n + 1);
	for (int i = 0; i < n; i++) {
		size_t l = strlen(src[i]) + 1;
		v[i] = memcpy(p, src[i], l);
		p += l;
	}
	v[n] = NULL;
	return v;
}

/* o[name] as an array of non-empty strings, def (NULL-terminated) when absent: *out is
 * one allocation (free() it), NULL-terminated. */
static inline int plug_opt_strv(const cJSON *o, const char *name, const char *const *def,
				char ***out, struct ag_error *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	const char *items[256];
	int n = 0;
	if (!v) {
		while (def[n] && n < 256)
			n++;
		memcpy(items, def, (size_t)n * sizeof(*items));
	} else {
		const cJSON *it;
		if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > 256)
			return plug_fail(err, AG_E_INVALID, "option \"%s\" must be an array of at "
					 "most 256 strings", name);
		cJSON_ArrayForEach(it, v) {
			if (!cJSON_IsString(it) || !*it->valuestring)
				return plug_fail(err, AG_E_INVALID, "option \"%s\": item %d must be "
						 "a non-empty string", name, n);
			items[n++] = it->valuestring;
		}
	}
	if (!(*out = plug_strv(items, n)))
		return plug_fail(err, AG_E_INTERNAL, "out of memory");
	return AG_OK;
}

/* Is s one of the NULL-terminated v? */
static inline int plug_strv_has(char *const *v, const char *s)
{
	for (; v && *v; v++)
		if (!strcmp(*v, s))
			return 1;
	return 0;
}

#endif
