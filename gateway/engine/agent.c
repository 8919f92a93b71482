#include "agent.h"

#include <stdlib.h>
#include <string.h>

static const struct {
	const char *name, *description, *mode, *prompt;
	int max_steps;
} builtins[] = {
	{"build", "The default agent: answers and uses every tool it is given.", "primary",
	 "You are agentgate's build agent. Work step by step, call tools when they help, "
	 "and finish with a short answer.",
	 25},
	{"general", "General-purpose subagent for delegated multi-step tasks.", "subagent",
	 "You are a subagent. Do the task you were given and reply with the result only.",
	 25},
};

static void agent_clear(struct agent *a)
{
	free(a->name);
	free(a->description);
	free(a->mode);
	free(a->prompt);
	free(a->model);
	for (int i = 0; i < a->ntools; i++)
		free(a->tools[i]);
	free(a->tools);
	perm_rules_free(&a->perm);
	memset(a, 0, sizeof(*a));
}

static struct agent *slot(struct agents *A, const char *name)
{
	for (int i = 0; i < A->n; i++)
		if (!strcmp(A->v[i].name, name))
			return &A->v[i];
	struct agent *v = realloc(A->v, (size_t)(A->n + 1) * sizeof(*v));
	if (!v)
		return NULL;
	A->v = v;
	struct agent *a = &A->v[A->n++];
	memset(a, 0, sizeof(*a));
	a->name = strdup(name);
	a->mode = strdup("all");
	a->max_steps = 25;
	snprintf(a->perm.origin, sizeof(a->perm.origin), "agent %.50s", name);
	return a;
}

static int set_str(char **dst, const cJSON *o, const char *k, const char *agent, struct err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!v)
		return 0;
	if (!cJSON_IsString(v)) {
		err_set(e, ERR_INVALID, "agent %s: \"%s\" must be a string", agent, k);
		return -1;
	}
	free(*dst);
	*dst = strdup(v->valuestring);
	return 0;
}

/* "tools": ["a","b"] or {"a": true, "b": false}; both list the allowed names. */
static int set_tools(struct agent *a, const cJSON *o, struct err *e)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "tools");
	if (!t)
		return 0;
	if (!cJSON_IsArray(t) && !cJSON_IsObject(t)) {
		err_set(e, ERR_INVALID, "agent %s: \"tools\" must be an array or an object",
			a->name);
		return -1;
	}
	for (int i = 0; i < a->ntools; i++)
		free(a->tools[i]);
	free(a->tools);
	a->ntools = 0;
	a->tools = calloc((size_t)cJSON_GetArraySize(t) + 1, sizeof(char *));
	const cJSON *it;
	cJSON_ArrayForEach(it, t) {
		const char *name = cJSON_IsArray(t) ? cJSON_GetStringValue(it) : it->string;
		if (!name || (cJSON_IsObject(t) && !cJSON_IsTrue(it)))
			continue;
		a->tools[a->ntools++] = strdup(name);
	}
	return 0;
}

static int set_int(int64_t *dst, const cJSON *o, const char *k, const char *agent, struct err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!v)
		return 0;
	if (!cJSON_IsNumber(v) || v->valuedouble < 1) {
		err_set(e, ERR_INVALID, "agent %s: \"%s\" must be a positive number", agent, k);
		return -1;
	}
	*dst = (int64_t)v->valuedouble;
	return 0;
}

static int load_one(struct agents *A, const cJSON *o, struct err *e)
{
	if (!cJSON_IsObject(o)) {
		err_set(e, ERR_INVALID, "agent %s: definition must be an object", o->string);
		return -1;
	}
	struct agent *a = slot(A, o->string);
	if (!a)
		return -1;
	int64_t steps = a->max_steps, stall = a->stall_ms;
	if (set_str(&a->description, o, "description", a->name, e) ||
	    set_str(&a->mode, o, "mode", a->name, e) ||
	    set_str(&a->prompt, o, "prompt", a->name, e) ||
	    set_str(&a->model, o, "model", a->name, e) || set_tools(a, o, e) ||
	    set_int(&steps, o, "maxSteps", a->name, e) ||
	    set_int(&steps, o, "steps", a->name, e) ||
	    set_int(&stall, o, "stall_timeout_ms", a->name, e))
		return -1;
	a->max_steps = (int)steps;
	a->stall_ms = stall;
	char where[128];
	snprintf(where, sizeof(where), "agent %.60s: \"permission\"", a->name);
	if (perm_rules_parse(&a->perm, cJSON_GetObjectItemCaseSensitive(o, "permission"),
			     getenv("HOME"), where, e))
		return -1;
	if (a->model && !strchr(a->model, '/')) {
		err_set(e, ERR_INVALID, "agent %s: model \"%s\" must be PROVIDER/MODEL", a->name,
			a->model);
		return -1;
	}
	return 0;
}

int agents_load(struct agents *A, const cJSON *section, struct err *e)
{
	memset(A, 0, sizeof(*A));
	for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++) {
		struct agent *a = slot(A, builtins[i].name);
		if (!a)
			return -1;
		a->description = strdup(builtins[i].description);
		free(a->mode);
		a->mode = strdup(builtins[i].mode);
		a->prompt = strdup(builtins[i].prompt);
		a->max_steps = builtins[i].max_steps;
		a->builtin = 1;
	}
	if (section && !cJSON_IsObject(section)) {
		err_set(e, ERR_INVALID, "config: \"agent\" must be an object of agent definitions");
		return -1;
	}
	const cJSON *o;
	cJSON_ArrayForEach(o, section) {
		if (load_one(A, o, e))
			return -1;
	}
	return 0;
}

void agents_free(struct agents *A)
{
	for (int i = 0; i < A->n; i++)
		agent_clear(&A->v[i]);
	free(A->v);
	memset(A, 0, sizeof(*A));
}

const struct agent *agents_find(const struct agents *A, const char *name)
{
	for (int i = 0; name && i < A->n; i++)
		if (!strcmp(A->v[i].name, name))
			return &A->v[i];
	return NULL;
}

int agent_allows(const struct agent *a, const char *tool)
{
	if (!a)
		return 0;
	if (!a->tools)
		return 1;
	for (int i = 0; i < a->ntools; i++)
		if (!strcmp(a->tools[i], tool))
			return 1;
	return 0;
}

void model_write_json(struct jw *w, const char *key, const char *model, const char *id_key)
{
	const char *slash = strchr(model, '/');
	if (!slash)
		return;
	jw_key(w, key);
	jw_obj(w);
	jw_key(w, "providerID");
	jw_strn(w, model, (size_t)(slash - model));
	jw_kstr(w, id_key, slash + 1);
	jw_obj_end(w);
}

void agents_write_json(const struct agents *A, struct jw *w)
{
	jw_arr(w);
	for (int i = 0; i < A->n; i++) {
		const struct agent *a = &A->v[i];
		jw_obj(w);
		jw_kstr(w, "name", a->name);
		jw_kstr(w, "description", a->description);
		jw_kstr(w, "mode", a->mode);
		jw_kbool(w, "builtIn", a->builtin);
		jw_kbool(w, "native", a->builtin);
		jw_kstr(w, "prompt", a->prompt);
		if (a->model)
			model_write_json(w, "model", a->model, "modelID");
		jw_key(w, "tools");
		jw_obj(w);
		for (int t = 0; t < a->ntools; t++)
			jw_kbool(w, a->tools[t], 1);
		jw_obj_end(w);
		jw_kint(w, "maxSteps", a->max_steps);
		jw_kint(w, "steps", a->max_steps);
		jw_key(w, "options");
		jw_obj(w);
		jw_obj_end(w);
		jw_key(w, "permission");
		jw_obj(w);
		jw_obj_end(w);
		jw_obj_end(w);
	}
	jw_arr_end(w);
}
