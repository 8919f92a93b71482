/* The tools' input fields as models send them (numbers sometimes as strings), read
 * with errors that name the field; and the small JSON objects of tool metadata. */
#include "ws.h"

#include <stdarg.h>

int ws_in_str(const cJSON *in, const char *name, int required, const char **out, char *why,
	      size_t wn)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, name);
	*out = NULL;
	if (!v || cJSON_IsNull(v)) {
		if (required)
			snprintf(why, wn, "the parameter \"%s\" is required", name);
		return required ? -1 : 0;
	}
	if (!cJSON_IsString(v)) {
		snprintf(why, wn, "the parameter \"%s\" must be a string", name);
		return -1;
	}
	*out = v->valuestring;
	return 0;
}

int ws_in_int(const cJSON *in, const char *name, int64_t def, int64_t min, int64_t *out,
	      char *why, size_t wn)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, name);
	double d;
	char *end = NULL;
	*out = def;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (cJSON_IsNumber(v))
		d = v->valuedouble;
	else if (cJSON_IsString(v) && *v->valuestring)
		d = strtod(v->valuestring, &end);
	else
		d = 0.5; /* not a whole number: refused below */
	if ((end && *end) || !(d >= (double)min && d <= 9e15) || d != (double)(int64_t)d) {
		snprintf(why, wn, "the parameter \"%s\" must be a whole number of at least %lld",
			 name, (long long)min);
		return -1;
	}
	*out = (int64_t)d;
	return 0;
}

int ws_in_bool(const cJSON *in, const char *name, int *out, char *why, size_t wn)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, name);
	*out = 0;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (cJSON_IsBool(v)) {
		*out = cJSON_IsTrue(v);
		return 0;
	}
	if (cJSON_IsString(v) && (!strcmp(v->valuestring, "true") ||
				  !strcmp(v->valuestring, "false"))) {
		*out = v->valuestring[0] == 't';
		return 0;
	}
	snprintf(why, wn, "the parameter \"%s\" must be true or false", name);
	return -1;
}

char *ws_meta(const char *type, ...)
{
	cJSON *o = cJSON_CreateObject();
	va_list ap;
	va_start(ap, type);
	for (const char *t = type; o && t; t = va_arg(ap, const char *)) {
		const char *key = va_arg(ap, const char *);
		if (*t == 's') {
			const char *s = va_arg(ap, const char *);
			if (s)
				cJSON_AddStringToObject(o, key, s);
		} else if (*t == 'i') {
			cJSON_AddNumberToObject(o, key, (double)va_arg(ap, int64_t));
		} else {
			cJSON_AddBoolToObject(o, key, va_arg(ap, int));
		}
	}
	va_end(ap);
	char *text = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	return text;
}

void ws_ask_fill(struct ws_ask *a, const char *permission, const char *pattern,
		 char *metadata, const char *title_fmt, ...)
{
	va_list ap;
	va_start(ap, title_fmt);
	vsnprintf(a->title, sizeof(a->title), title_fmt, ap);
	va_end(ap);
	a->permission = permission;
	a->pattern = pattern;
	a->metadata = metadata;
}
