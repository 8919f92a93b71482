/* plugins: the host of `.so` plugins built against sdk/include/agentgate/plugin.h. It
 * loads them (dlopen, the descriptor's checks, on_load with the host table), bridges
 * their hooks to the engine's hook points (engine/hooks.h), runs their tools through
 * the tool registry, their prompts through engine_prompt, and unloads them at the end,
 * removing what each left registered. Loop thread, except where a plugin's any-thread
 * host functions say otherwise (sdk/ABI.md). */
#ifndef AG_PLUGINS_H
#define AG_PLUGINS_H
#include "engine.h"
#include "jw.h"

struct plugins;

#define PLUGINS_SLOW_HOOK_MS 50
#define PLUGINS_EVENT_QUEUE 4096

/* The host for engine E. Settings come from the config's "plugins" section. */
struct plugins *plugins_create(struct engine *E);
/* Loads one plugin. options_json: its options ("{}" when NULL). 0, or -1 with e naming
 * path and reason (the plugin is then closed, anything it registered removed). */
int plugins_load(struct plugins *H, const char *path, const char *options_json,
		 struct err *e);
/* Loads the config's "plugins" list, then each of paths (the command line's, all
 * required). A refused optional plugin is a warning; a refused required one stops:
 * -1 with e naming it. */
int plugins_load_all(struct plugins *H, const char *const *paths, int npaths, struct err *e);
/* The gateway is stopping: from now on plugins' any-thread calls are refused, and
 * those already handed to the loop are answered now. Call before engine_shutdown. */
void plugins_stop(struct plugins *H);
/* Unloads plugin id: ERR_BUSY while its work is in flight, ERR_NOTFOUND if unknown. */
int plugins_unload(struct plugins *H, const char *id, struct err *e);
/* Unloads every plugin (reverse load order; one with work in flight stays mapped,
 * logged) and frees the host. Call after engine_shutdown, before engine_destroy. */
void plugins_destroy(struct plugins *H);
/* Writes [{id, version, path, abi, hooks, tools, counters}] in load order. */
void plugins_json(struct plugins *H, struct jw *w);

#endif
