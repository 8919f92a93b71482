/* api_command: the config's prompt templates over the API — GET /command (Command[]) and
 * POST /session/{id}/command (WS session.command), which expands the template with the
 * command's arguments (command_expand, OpenCode's rules) and sends the result as the
 * session's next prompt, with the command's agent and model. A command that runs as a
 * subtask (its agent is a subagent and it does not say "subtask": false, or it says
 * "subtask": true) is sent as OpenCode sends it: a prompt holding one subtask part (the
 * expanded text, for the command's agent, in a child session), with the caller's agent
 * and model. Loop thread. */
#include "api_ops.h"
#include "id.h"
#include "jsonin.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int api_command_list(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	commands_write_json(engine_commands(E), w);
	return 0;
}

/* The command, or NULL with e naming it and what there is. */
static const struct command *find(struct engine *E, const char *name, struct err *e)
{
	const struct commands *K = engine_commands(E);
	const struct command *c = commands_find(K, name);
	if (c)
		return c;
	char names[300] = "";
	for (int i = 0; i < K->n; i++) {
		size_t l = strlen(names);
		snprintf(names + l, sizeof(names) - l, "%s%s", i ? ", " : "", K->v[i].name);
	}
	err_set(e, ERR_NOTFOUND, "Command not found: \"%.100s\".%s%s", name,
		*names ? " Available commands: " : " The config has no \"command\" section.",
		names);
	return NULL;
}

/* The agent the command names or the caller gave (NULL: the session's), and whether
 * the command runs as a subtask: then it needs an agent that may run as one. */
static int pick_agent(struct engine *E, const struct command *c, const char *given,
		      const struct agent **out, int *subtask, struct err *e)
{
	const char *name = c->agent ? c->agent : given;
	const struct agent *a = name ? agents_find(engine_agents(E), name) : NULL;
	if (name && !a) {
		err_set(e, ERR_INVALID, "Agent not found: \"%.100s\" (\"agent\")", name);
		return -1;
	}
	*subtask = c->subtask == 1 || (a && !strcmp(a->mode, "subagent") && c->subtask != 0);
	if (*subtask && (!a || !strcmp(a->mode, "primary"))) {
		err_set(e, ERR_INVALID, "command \"%.100s\" runs as a subtask (\"subtask\": true), "
			"which needs a subagent: %s%.100s%s", c->name, a ? "agent \"" : "",
			a ? a->name : "give the command an \"agent\" whose mode is subagent or all",
			a ? "\" is a primary agent" : "");
		return -1;
	}
	*out = a;
	return 0;
}

/* The model: the command's, else its agent's, else the caller's (NULL: the session's). */
static const char *pick_model(struct engine *E, const struct command *c, const char *given)
{
	const struct agent *a = c->agent ? agents_find(engine_agents(E), c->agent) : NULL;
	return c->model ? c->model : a && a->model ? a->model : given;
}

/* The length of OpenCode's @reference name at t (just after an '@'): an optional '.',
 * then characters other than white space, '`', ',' and '.', then '.'-joined runs of
 * them ("src/a.c", ".env", "reviewer"; a sentence's final '.' is not in it). */
static size_t ref_len(const char *t)
{
	static const char stop[] = " \t\r\n\f\v`,.";
	size_t n = t[0] == '.';
	n += strcspn(t + n, stop);
	while (t[n] == '.' && t[n + 1] && !strchr(stop, t[n + 1])) {
		n++;
		n += strcspn(t + n, stop);
	}
	return n;
}

/* Whether name stays in the directory it is relative to by its letters: not absolute,
 * no ".." segment (what a client's arguments bring in must not probe outside it). */
static int stays_inside(const char *name)
{
	if (name[0] == '/')
		return 0;
	for (const char *p = name; (p = strstr(p, "..")); p += 2)
		if ((p == name || p[-1] == '/') && (!p[2] || p[2] == '/'))
			return 0;
	return 1;
}

/* Adds to parts, for each "@name" of text (not after a word character or a backtick),
 * what OpenCode attaches: a file part for a file or folder of the session's directory
 * dir, else an agent part for an agent of that name; anything else stays text. */
static void at_references(struct engine *E, const char *dir, const char *text, cJSON *parts)
{
	for (const char *at = strchr(text, '@'); at; at = strchr(at + 1, '@')) {
		if (at > text && (isalnum((unsigned char)at[-1]) || at[-1] == '_' || at[-1] == '`'))
			continue;
		size_t n = ref_len(at + 1);
		char name[1024], path[5200];
		struct stat st;
		if (!n || n >= sizeof(name))
			continue;
		memcpy(name, at + 1, n);
		name[n] = 0;
		cJSON *part = cJSON_CreateObject();
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		if (stays_inside(name) && !stat(path, &st)) {
			cJSON_AddStringToObject(part, "type", "file");
			cJSON_AddStringToObject(part, "mime", S_ISDIR(st.st_mode)
							      ? "application/x-directory"
							      : "application/octet-stream");
			cJSON_AddStringToObject(part, "url", name);
			cJSON_AddStringToObject(part, "filename", name);
		} else if (agents_find(engine_agents(E), name)) {
			cJSON_AddStringToObject(part, "type", "agent");
			cJSON_AddStringToObject(part, "name", name);
		} else {
			cJSON_Delete(part);
			continue;
		}
		cJSON_AddItemToArray(parts, part);
	}
}

/* The prompt's parts: the expanded text, then the caller's file parts; for a subtask,
 * one subtask part (OpenCode leaves the caller's parts out of it too). */
static cJSON *prompt_parts(struct engine *E, const char *dir, const struct command *c,
			   const struct agent *sub, const char *text, const cJSON *extra,
			   struct err *e)
{
	cJSON *parts = cJSON_CreateArray(), *t = cJSON_CreateObject();
	cJSON_AddItemToArray(parts, t);
	if (sub) {
		cJSON_AddStringToObject(t, "type", "subtask");
		cJSON_AddStringToObject(t, "prompt", text);
		cJSON_AddStringToObject(t, "description", c->description ? c->description : c->name);
		cJSON_AddStringToObject(t, "agent", sub->name);
		return parts;
	}
	cJSON_AddStringToObject(t, "type", "text");
	cJSON_AddStringToObject(t, "text", text);
	at_references(E, dir, text, parts);
	if (extra && !cJSON_IsArray(extra)) {
		err_set(e, ERR_INVALID, "\"parts\" must be an array of file parts");
		cJSON_Delete(parts);
		return NULL;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, extra) {
		cJSON_AddItemToArray(parts, cJSON_Duplicate(it, 1));
	}
	return parts;
}

void api_command_free(struct api_command *ac)
{
	cJSON_Delete(ac->params);
	free(ac->arguments);
	memset(ac, 0, sizeof(*ac));
}

int api_command_prepare(struct engine *E, const cJSON *p, struct api_command *ac,
			struct err *e)
{
	const char *sid, *name, *args = NULL, *agent = NULL, *model = NULL, *mid = NULL,
		*variant = NULL;
	const struct agent *a;
	int subtask;
	struct session_info si;
	memset(ac, 0, sizeof(*ac));
	if (jsonin_str(p, "sessionID", 1, &sid, e) || jsonin_str(p, "command", 1, &name, e) ||
	    jsonin_str(p, "arguments", 0, &args, e) || jsonin_str(p, "agent", 0, &agent, e) ||
	    jsonin_str(p, "model", 0, &model, e) || jsonin_str(p, "messageID", 0, &mid, e) ||
	    jsonin_str(p, "variant", 0, &variant, e))
		return -1;
	if (variant) {
		err_set(e, ERR_INVALID, "\"variant\" (a model variant) is not supported: agentgate's "
			"models have none");
		return -1;
	}
	const struct command *c = find(E, name, e);
	if (!c || engine_session_info(E, sid, &si, e) || pick_agent(E, c, agent, &a, &subtask, e))
		return -1;
	char *text = command_expand(c->template, args ? args : "");
	cJSON *parts = text ? prompt_parts(E, si.directory, c, subtask ? a : NULL, text,
					   cJSON_GetObjectItemCaseSensitive(p, "parts"), e)
			    : NULL;
	free(text);
	if (!parts) {
		if (e && !e->code)
			err_set(e, ERR_INTERNAL, "out of memory");
		return -1;
	}
	/* an id of our own when the caller gave none: command.executed names the message */
	if (mid)
		snprintf(ac->message_id, sizeof(ac->message_id), "%s", mid);
	else
		id_new(ac->message_id, "msg");
	snprintf(ac->session_id, sizeof(ac->session_id), "%s", sid);
	snprintf(ac->name, sizeof(ac->name), "%s", c->name);
	ac->arguments = strdup(args ? args : "");
	ac->params = cJSON_CreateObject();
	cJSON_AddStringToObject(ac->params, "sessionID", sid);
	cJSON_AddItemToObject(ac->params, "parts", parts);
	cJSON_AddStringToObject(ac->params, "messageID", ac->message_id);
	/* a subtask's prompt runs with the caller's agent and model (the subagent has its own) */
	const char *use_agent = subtask ? agent : a ? a->name : NULL;
	if (use_agent)
		cJSON_AddStringToObject(ac->params, "agent", use_agent);
	if ((model = subtask ? model : pick_model(E, c, model)))
		cJSON_AddStringToObject(ac->params, "model", model);
	if (!ac->arguments) {
		api_command_free(ac);
		err_set(e, ERR_INTERNAL, "out of memory");
		return -1;
	}
	return 0;
}

void api_command_executed(struct engine *E, const struct api_command *ac)
{
	engine_command_executed(E, ac->session_id, ac->name, ac->arguments, ac->message_id);
}

/* WS session.command: accepted like session.prompt_async ({sessionID, turnID,
 * messageID, coalesced}). */
int api_session_command(struct engine *E, const cJSON *p, struct jw *w, struct err *e)
{
	struct api_command ac;
	if (api_command_prepare(E, p, &ac, e))
		return -1;
	int rc = api_prompt(E, ac.params, "ws", NULL, w, e);
	if (!rc)
		api_command_executed(E, &ac);
	api_command_free(&ac);
	return rc;
}
