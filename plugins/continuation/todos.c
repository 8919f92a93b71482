#include "todos.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const statuses[] = {"pending", "in_progress", "completed", "cancelled",
				       NULL};
static const char *const priorities[] = {"high", "medium", "low", NULL};

static int one_of(const char *s, const char *const *v)
{
	for (; *v; v++)
		if (!strcmp(s, *v))
			return 1;
	return 0;
}

static cJSON *fail(cJSON *j, char *why, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
	cJSON_Delete(j);
	return NULL;
}

/* item's field as a string that is one of allowed (NULL: any non-empty), or NULL. */
static const char *field(const cJSON *item, const char *name, const char *const *allowed)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, name);
	if (!cJSON_IsString(v) || !*v->valuestring)
		return NULL;
	return !allowed || one_of(v->valuestring, allowed) ? v->valuestring : NULL;
}

static cJSON *todo_item(const cJSON *in, int i, char *why, size_t n)
{
	const char *content = field(in, "content", NULL);
	const char *status = field(in, "status", statuses);
	const char *priority = field(in, "priority", priorities);
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(in, "id");
	char num[16];
	if (!cJSON_IsObject(in))
		return fail(NULL, why, n, "todos[%d] must be an object", i);
	if (!content)
		return fail(NULL, why, n, "todos[%d].content must be a non-empty string", i);
	if (!status)
		return fail(NULL, why, n, "todos[%d].status must be one of pending, in_progress, "
			    "completed, cancelled", i);
	if (!priority)
		return fail(NULL, why, n, "todos[%d].priority must be one of high, medium, low", i);
	if (id && !cJSON_IsString(id))
		return fail(NULL, why, n, "todos[%d].id must be a string", i);
	snprintf(num, sizeof(num), "%d", i + 1);
	cJSON *o = cJSON_CreateObject();
	if (!cJSON_AddStringToObject(o, "content", content) ||
	    !cJSON_AddStringToObject(o, "status", status) ||
	    !cJSON_AddStringToObject(o, "priority", priority) ||
	    !cJSON_AddStringToObject(o, "id", id && *id->valuestring ? id->valuestring : num))
		return fail(o, why, n, "out of memory");
	return o;
}

cJSON *todos_parse(const char *input_json, char *why, size_t why_len)
{
	cJSON *in = cJSON_Parse(input_json);
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(in, "todos");
	if (!cJSON_IsArray(list))
		return fail(in, why, why_len, "todos must be an array of {content, status, "
			    "priority, id}");
	cJSON *out = cJSON_CreateArray();
	const cJSON *it;
	int i = 0;
	cJSON_ArrayForEach(it, list) {
		cJSON *item = todo_item(it, i++, why, why_len);
		if (!item) {
			cJSON_Delete(out);
			cJSON_Delete(in);
			return NULL;
		}
		cJSON_AddItemToArray(out, item);
	}
	cJSON_Delete(in);
	return out;
}

static int is_open(const cJSON *t)
{
	const char *s = field(t, "status", statuses);
	return s && (!strcmp(s, "pending") || !strcmp(s, "in_progress"));
}

int todos_open(const cJSON *todos)
{
	const cJSON *t;
	int n = 0;
	cJSON_ArrayForEach(t, todos)
		n += is_open(t);
	return n;
}

/* Appends to a growing buffer; on failure it frees it and leaves NULL. */
static void put(char **b, size_t *len, const char *fmt, ...)
{
	va_list ap, ap2;
	if (!*b)
		return;
	va_start(ap, fmt);
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *nb = n < 0 ? NULL : realloc(*b, *len + (size_t)n + 1);
	if (nb)
		vsnprintf(nb + *len, (size_t)n + 1, fmt, ap2);
	else
		free(*b);
	va_end(ap2);
	*b = nb;
	*len += nb ? (size_t)n : 0;
}

char *todos_wake_text(const cJSON *todos, int wake, int max_wakes)
{
	int open = todos_open(todos);
	size_t len = 0;
	char *b = calloc(1, 1);
	const cJSON *t;
	put(&b, &len, "You stopped with %d unfinished todo%s (continuation wake %d of %d). "
	    "Remaining:\n", open, open == 1 ? "" : "s", wake, max_wakes);
	cJSON_ArrayForEach(t, todos) {
		if (is_open(t))
			put(&b, &len, "- [%s, %s priority] %s (id %s)\n",
			    field(t, "status", NULL), field(t, "priority", NULL),
			    field(t, "content", NULL), field(t, "id", NULL));
	}
	put(&b, &len, "Continue with them. Keep the list current with todowrite: mark each "
	    "todo completed when it is done, or cancelled if it no longer applies.");
	return b;
}
