/* command: prompt templates from the config's "command" section, in OpenCode's shape
 * {NAME: {template, description?, agent?, model?, subtask?}}, listed by GET /command
 * and run by POST /session/{id}/command, which expands a template with the command's
 * arguments as OpenCode does (command_expand) and announces the run (command.executed,
 * engine_command_executed in engine.h). Read-only after load. Loop thread for the
 * engine's set; command_expand is pure. */
#ifndef AG_COMMAND_H
#define AG_COMMAND_H
#include <cjson/cJSON.h>

#include "agent.h"
#include "err.h"
#include "jw.h"

struct command {
	char *name, *template;
	char *description, *agent, *model; /* NULL when not given */
	int subtask;                       /* -1 not given, else 0 or 1 */
};

struct commands {
	struct command *v;
	int n;
};

/* Reads section (the config's "command" object, may be NULL); an agent a command names
 * must be in A. -1 with e naming the bad entry by its config path. */
int commands_load(struct commands *K, const cJSON *section, const struct agents *A,
		  struct err *e);
void commands_free(struct commands *K);
const struct command *commands_find(const struct commands *K, const char *name);
/* Writes Command[] (GET /command): {name, template, description?, agent?, model?,
 * subtask?, source: "command", hints}. */
void commands_write_json(const struct commands *K, struct jw *w);
/* Writes the config section back, {NAME: {template, ...}} (GET /config). */
void commands_write_config(const struct commands *K, struct jw *w);
/* Writes the v2 API's CommandV2Info items, {name, template, description?, agent?, model?:
 * {id, providerID}, subtask?}, into the array the caller has open (GET /api/command). */
void commands_write_v2_json(const struct commands *K, struct jw *w);

/* The template with the arguments in it, as OpenCode does it: the arguments are split
 * into words (a "double" or 'single' quoted run is one word, without its quotes; so is
 * "[Image N]"); $1, $2, ... are replaced by the words (the highest placeholder takes
 * the rest of them, joined by spaces; a missing word is empty); then $ARGUMENTS by the
 * arguments as given; a template with neither gets the arguments after a blank line.
 * The result is trimmed. malloc'd, NULL when out of memory. */
char *command_expand(const char *template, const char *arguments);

#endif
