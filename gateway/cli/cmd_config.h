/* cmd_config: `agentgate config check FILE` — validates a config file and names each
 * problem: unknown keys by their path, values of the wrong type, then whatever the
 * gateway's own readers refuse (the engine's: numbers and limits, agents, permission
 * rules, workspace, providers, the model; the server's). Exit 0 when it is good, 1 when
 * not. The table of keys is also `agentgate config keys`. Main thread. */
#ifndef AG_CMD_CONFIG_H
#define AG_CMD_CONFIG_H
#include <cjson/cJSON.h>

#include "cli.h"

int cmd_config(const struct cli *c);

typedef void (*config_problem_fn)(void *arg, const char *problem);
/* Reports root's unknown keys and values of the wrong type through fn; returns how many
 * values had the wrong type. */
int config_check_keys(const cJSON *root, config_problem_fn fn, void *arg);
/* serve and run at start-up: a warning line (log_warn) on stderr for each unknown key
 * of the config file at path, naming its path. Nothing when path is NULL or the file
 * cannot be read or parsed: the engine's own reading refuses that. Main thread. */
void config_warn_unknown_keys(const char *path);
/* Does the option pattern ("agent.*.mode": '*' is any one member) name path
 * ("agent.build.mode")? */
int config_key_matches(const char *pattern, const char *path);
/* Calls fn with every option's path ("retry.max", "agent.*.mode", "plugins[].path"). */
void config_keys(void (*fn)(void *arg, const char *path), void *arg);

#endif
