/* agent: named agent definitions (system prompt, model, allowed tools, step limit),
 * built-in `build` and `general` plus those in the config's "agent" object, which may
 * also override a built-in. Read-only after load. Loop thread. */
#ifndef AG_AGENT_H
#define AG_AGENT_H
#include <cjson/cJSON.h>
#include <stdint.h>

#include "err.h"
#include "jw.h"
#include "permrule.h"

struct agent {
	char *name;
	char *description;
	char *mode;      /* primary | subagent | all */
	char *prompt;    /* system prompt */
	char *model;     /* PROVIDER/MODEL or NULL = session/default */
	char **tools;    /* allowed tool names; NULL = every tool */
	int ntools;
	int max_steps;
	int64_t stall_ms; /* 0 = the global stall timeout */
	struct perm_rules perm; /* its "permission" rules, over the config's */
	int builtin;
};

struct agents {
	struct agent *v;
	int n;
};

#define DEFAULT_AGENT "build"

/* Built-ins, then section (the config's "agent" object, may be NULL). */
int agents_load(struct agents *A, const cJSON *section, struct err *e);
void agents_free(struct agents *A);
const struct agent *agents_find(const struct agents *A, const char *name);
int agent_allows(const struct agent *a, const char *tool);
/* Writes "key": {"providerID": P, id_key: M} for model "P/M". */
void model_write_json(struct jw *w, const char *key, const char *model, const char *id_key);
/* Writes the Agent[] array of GET /agent. */
void agents_write_json(const struct agents *A, struct jw *w);

#endif
