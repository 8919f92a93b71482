#include "turnopts.h"
#include "jsonin.h"
#include "permrule.h"

#include <stdlib.h>
#include <string.h>

static int wildcard(const char *s)
{
	return strpbrk(s, "*?[\\") != NULL;
}

int topts_check_tools(struct engine *E, const cJSON *tools, struct err *e)
{
	const cJSON *it;
	if (!tools || cJSON_IsNull(tools))
		return 0;
	if (!cJSON_IsObject(tools)) {
		err_set(e, ERR_INVALID, "\"tools\" must be an object of tool names and true or "
			"false ({\"echo\": false})");
		return -1;
	}
	cJSON_ArrayForEach(it, tools) {
		if (!cJSON_IsBool(it)) {
			err_set(e, ERR_INVALID, "tools.%.200s must be true or false", it->string);
			return -1;
		}
		if (!wildcard(it->string) && !tools_find(&E->T, it->string)) {
			err_set(e, ERR_INVALID, "tools.%.200s: no tool has that name", it->string);
			return -1;
		}
	}
	return 0;
}

int topts_tool_state(const cJSON *tools, const char *name)
{
	int state = -1;
	const cJSON *it;
	cJSON_ArrayForEach(it, tools)
		if (it->string && perm_match(it->string, name))
			state = cJSON_IsTrue(it);
	return state;
}

int topts_tool_usable(const struct agent *a, const cJSON *tools, const char *name)
{
	int st = topts_tool_state(tools, name);
	return st == 1 || (st < 0 && agent_allows(a, name));
}

static int user_row(void *arg, const struct store_message *r)
{
	struct turn *t = arg;
	cJSON *d = cJSON_Parse(r->data);
	const char *sys = jsonin_get(d, "system");
	cJSON *tools = cJSON_DetachItemFromObjectCaseSensitive(d, "tools");
	if (sys && *sys)
		t->system = strdup(sys);
	if (cJSON_IsObject(tools) && tools->child)
		t->tools_map = tools;
	else
		cJSON_Delete(tools);
	cJSON_Delete(d);
	return 1;
}

static int subtask_row(void *arg, const struct store_part *r)
{
	struct turn *t = arg;
	if (strcmp(r->type, "subtask"))
		return 0;
	cJSON *d = cJSON_Parse(r->data);
	if (d && (t->subtasks || (t->subtasks = cJSON_CreateArray())))
		cJSON_AddItemToArray(t->subtasks, d);
	else
		cJSON_Delete(d);
	return 0;
}

void topts_load(struct turn *t)
{
	struct store *S = t->s->E->S;
	topts_free(t);
	store_message_get(S, t->user_msg, user_row, t);
	store_part_list(S, t->user_msg, subtask_row, t);
}

void topts_free(struct turn *t)
{
	free(t->system);
	cJSON_Delete(t->tools_map);
	cJSON_Delete(t->subtasks);
	t->system = NULL;
	t->tools_map = t->subtasks = NULL;
}
