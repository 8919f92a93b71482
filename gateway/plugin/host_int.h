/* host_int: what the plugin host's files share — one loaded plugin (struct ag_plugin,
 * opaque to plugins), its hook registrations, observer queue and counters. Loop
 * thread unless a field says otherwise. */
#ifndef AG_HOST_INT_H
#define AG_HOST_INT_H
#include <agentgate/plugin.h>
#include <pthread.h>
#include <stdatomic.h>

#include "engine.h"
#include "hooks.h"
#include "plugins.h"

struct observer; /* observer.c */
struct ptool;    /* ptools.c */
struct ptimer;   /* hostapi.c */

/* One hook a plugin registered: its engine callback is bridge.c's for that point. */
struct hookreg {
	struct hookreg *next;
	struct ag_plugin *p;
	int id;           /* AG_HOOK_* */
	ag_hook_fn fn;
	void *user;
	atomic_int removed; /* unhooked: inert until the plugin unloads (observers read it) */
	cJSON *types;       /* AG_HOOK_EVENT via hook_events: the types it takes, or NULL */
};

/* Counters reported by GET /plugin; atomics where other threads count. */
struct plugin_counters {
	atomic_uint_fast64_t hook_calls, hook_errors, hook_refusals, slow_hooks;
	atomic_uint_fast64_t hook_us; /* time spent in hooks, microseconds */
	atomic_uint_fast64_t events_delivered, events_dropped;
	atomic_uint_fast64_t prompts, tool_calls, tool_dropped, thread_errors;
};

struct ag_plugin {
	struct ag_plugin *next;
	struct plugins *H;
	void *dl;
	const struct ag_plugin_info *info;
	struct ag_plugin_info desc; /* the descriptor, read up to its size (rest zero) */
	char id[33], owner[48];     /* owner: "plugin:<id>", for the engine's registries */
	char *path, *version;
	struct hookreg *hooks;
	struct observer *obs;       /* NULL until an AG_HOOK_EVENT is registered */
	struct ptool *tools;        /* registration order */
	struct ptimer *timers;
	/* Work in flight (tool calls not ended, prompts whose done has not run): the
	 * plugin cannot unload while it is non-zero. Loop thread. */
	int inflight;
	int loaded;                 /* on_load returned AG_OK */
	atomic_int closing;         /* on_unload started: host calls return AG_E_GONE */
	struct plugin_counters n;
};

struct plugins {
	struct engine *E;
	struct loop *L;
	struct ag_plugin *head;     /* load order */
	struct ag_host api;
	int64_t slow_hook_us;
	int in_hook;                /* plugin code running inside an engine operation (a hook, a
				     * tool's run or cancel): nesting depth */
	int event_queue;
	/* Taken around the checks of stopping/closing and the post that follows, so the
	 * loop can answer every cross-thread call posted before it set them. */
	pthread_mutex_t gate;
	int stopping;               /* under gate */
	pthread_mutex_t calls_lock; /* live plugin tool calls (ptools.c) */
	struct pcall *calls;
};

/* hostapi.c: the table handed to on_load. */
void hostapi_init(struct ag_host *api);
/* The plugin a host function was called with, refusing NULL. */
void plugin_errorf(struct ag_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int plugin_err_code(const struct err *e);
/* 0 on the loop thread; else counts and logs the misuse of fn and returns AG_E_THREAD. */
int plugin_loop_only(struct ag_plugin *p, const char *fn);
/* 0 while the plugin may call the host; AG_E_GONE once it unloads. */
int plugin_gone(struct ag_plugin *p, struct ag_error *err);

/* bridge.c: registers/unregisters one hook of a plugin at its engine point. */
int bridge_hook(struct ag_plugin *p, int id, ag_hook_fn fn, void *user);
/* AG_HOOK_EVENT for the event types listed in types_json only. */
int bridge_hook_events(struct ag_plugin *p, ag_hook_fn fn, void *user, const char *types_json);
int bridge_unhook(struct ag_plugin *p, int id, ag_hook_fn fn, void *user);
void bridge_free(struct ag_plugin *p);
const char *bridge_hook_name(int id);
/* The ag_ctx of an engine hook context. */
void bridge_ctx(const struct hook_ctx *c, struct ag_ctx *out);
/* Runs a plugin's hook fn, timing it (slow hooks are counted and logged). */
int bridge_call(struct hookreg *r, const struct ag_ctx *ctx, void *data);

/* observer.c: the plugin's event thread and its bounded queue. */
int observer_start(struct ag_plugin *p);
void observer_push(struct hookreg *r, struct event *ev, const struct hook_ctx *c);
/* Delivers what is queued, then stops and joins the thread. Loop thread. */
void observer_stop(struct ag_plugin *p);

/* ptools.c: plugin tools and their calls. */
int ptools_register(struct ag_plugin *p, const struct ag_tool *t, struct ag_error *err);
int ptools_unregister(struct ag_plugin *p, const char *name);
int ptools_end(struct ag_plugin *p, uint64_t id, const char *output, const char *title,
	       const char *error, const char *metadata_json);
int ptools_progress(struct ag_plugin *p, uint64_t id, const char *title, const char *meta);
/* 1 while call id is one of p's running calls (not ended, cancelled or timed out). */
int ptools_running(struct ag_plugin *p, uint64_t id);
/* Loop. p's call id has one more (delta 1) or one less (-1) ask waiting: while any
 * waits, the tool's timeout_ms is paused, then goes on with what was left. */
void ptools_asking(struct ag_plugin *p, uint64_t id, int delta);
void ptools_remove_all(struct ag_plugin *p);
/* Writes the names of p's tools as a JSON array. */
void ptools_json(struct ag_plugin *p, struct jw *w);

/* hostapi.c: timers. */
void ptimers_cancel_all(struct ag_plugin *p);

#endif
