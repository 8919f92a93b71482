/* turnopts: what a prompt asks of its own turn — an extra system prompt, tools turned
 * on or off ({"name": false}, wildcards allowed, the last key that matches wins), and
 * subtasks to run before the model is asked. Checked when the prompt is accepted, kept
 * in its user message (OpenCode's UserMessage.system and .tools, its SubtaskParts) and
 * loaded when the turn starts, so a queued turn resumed after a restart has them too.
 * Loop thread. */
#ifndef AG_TURNOPTS_H
#define AG_TURNOPTS_H
#include "engine_int.h"

/* A prompt's tools object: booleans, each key a registered tool or a wildcard. 0, or
 * -1 with e naming the key. */
int topts_check_tools(struct engine *E, const cJSON *tools, struct err *e);
/* What tools says of name: 1 on, 0 off, -1 not named (the agent decides). */
int topts_tool_state(const cJSON *tools, const char *name);
/* 1 when a turn of agent a with these tools may call name. */
int topts_tool_usable(const struct agent *a, const cJSON *tools, const char *name);
/* Reads the turn's options from its user message (t->system, t->tools_map, t->subtasks). */
void topts_load(struct turn *t);
void topts_free(struct turn *t);

#endif
