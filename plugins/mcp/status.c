/* status: the servers' state as JSON (status.h). */
#include "status.h"

const char *status_state_name(int state)
{
	switch (state) {
	case ST_CONNECTING: return "connecting";
	case ST_CONNECTED: return "connected";
	case ST_DISABLED: return "disabled";
	default: return "failed";
	}
}

static cJSON *one(const struct srv_view *v)
{
	cJSON *o = cJSON_CreateObject(), *tools;
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "status", status_state_name(v->state));
	cJSON_AddStringToObject(o, "type", v->remote ? "remote" : "local");
	if (v->error)
		cJSON_AddStringToObject(o, "error", v->error);
	tools = cJSON_AddArrayToObject(o, "tools");
	for (int i = 0; tools && i < v->ntools; i++)
		cJSON_AddItemToArray(tools, cJSON_CreateString(v->tools[i].name));
	cJSON_AddNumberToObject(o, "restarts", v->restarts);
	if (v->pid > 0)
		cJSON_AddNumberToObject(o, "pid", v->pid);
	return o;
}

char *status_json(const struct srv_view *v, int n)
{
	cJSON *all = cJSON_CreateObject();
	for (int i = 0; all && i < n; i++) {
		cJSON *o = one(&v[i]);
		if (!o) {
			cJSON_Delete(all);
			return NULL;
		}
		cJSON_AddItemToObject(all, v[i].name, o);
	}
	char *s = all ? cJSON_PrintUnformatted(all) : NULL;
	cJSON_Delete(all);
	return s;
}
