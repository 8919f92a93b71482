/* host: loading a plugin (dlopen and the descriptor's checks), unloading it (refused
 * while its work is in flight; everything it registered removed), the config's
 * "plugins" section, and the listing GET /plugin serves. */
#include "host_int.h"
#include "log.h"
#include "paths.h"

#include <dlfcn.h>
#include <limits.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#ifndef AG_PLUGIN_INSTALL_DIR
#define AG_PLUGIN_INSTALL_DIR "/usr/local/lib/agentgate/plugins"
#endif

/* The descriptor as ABI 1.0 defined it: anything smaller is refused. */
#define INFO_V1_SIZE (offsetof(struct ag_plugin_info, on_unload) + sizeof(void (*)(void)))

static void settings(struct plugins *H, const cJSON *sec)
{
	const cJSON *slow = cJSON_GetObjectItemCaseSensitive(sec, "slow_hook_ms");
	const cJSON *q = cJSON_GetObjectItemCaseSensitive(sec, "event_queue");
	H->slow_hook_us = (cJSON_IsNumber(slow) && slow->valuedouble >= 0
				   ? (int64_t)slow->valuedouble : PLUGINS_SLOW_HOOK_MS) * 1000;
	H->event_queue = cJSON_IsNumber(q) && q->valuedouble >= 1 && q->valuedouble <= 1 << 20
				 ? q->valueint : PLUGINS_EVENT_QUEUE;
}

struct plugins *plugins_create(struct engine *E)
{
	struct plugins *H = calloc(1, sizeof(*H));
	if (!H)
		return NULL;
	H->E = E;
	H->L = engine_loop(E);
	pthread_mutex_init(&H->gate, NULL);
	pthread_mutex_init(&H->calls_lock, NULL);
	hostapi_init(&H->api);
	const cJSON *sec = cJSON_GetObjectItemCaseSensitive(engine_config(E)->root, "plugins");
	settings(H, cJSON_IsObject(sec) ? sec : NULL);
	engine_set_host(E, H);
	return H;
}

static int valid_id(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n < 1 || n > 32)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9') ||
		      id[i] == '-' || id[i] == '_'))
			return 0;
	return 1;
}

static struct ag_plugin *find(struct plugins *H, const char *id)
{
	for (struct ag_plugin *p = H->head; p; p = p->next)
		if (!strcmp(p->id, id))
			return p;
	return NULL;
}

/* Why a plugin is refused: -1 with e filled. */
static int refuse(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(struct err *e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	e->code = ERR_INVALID;
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

/* The descriptor's checks; fills p->desc (read up to the plugin's size). */
static int check_info(struct plugins *H, struct ag_plugin *p, const struct ag_plugin_info *in,
		      struct err *e)
{
	if (!in)
		return refuse(e, "its entry %s returned NULL", AG_PLUGIN_ENTRY_NAME);
	if (in->magic != AG_PLUGIN_MAGIC)
		return refuse(e, "bad magic 0x%08x (expected 0x%08x): not an "
			       "agentgate plugin descriptor", in->magic, AG_PLUGIN_MAGIC);
	if (in->abi_major != AG_ABI_MAJOR)
		return refuse(e, "built for plugin ABI %u.%u; this gateway speaks "
			       "ABI %d.%d (the major must match)", in->abi_major, in->abi_minor,
			       AG_ABI_MAJOR, AG_ABI_MINOR);
	if (in->size < INFO_V1_SIZE)
		return refuse(e, "descriptor of %u bytes, smaller than ABI 1.0's %zu",
			       in->size, INFO_V1_SIZE);
	memcpy(&p->desc, in, in->size < sizeof(p->desc) ? in->size : sizeof(p->desc));
	if (!valid_id(p->desc.id))
		return refuse(e, "plugin id \"%.40s\" is not [a-z0-9_-]{1,32}",
			       p->desc.id ? p->desc.id : "(null)");
	if (find(H, p->desc.id))
		return refuse(e, "a plugin with id \"%s\" is loaded already (%s)",
			       p->desc.id, find(H, p->desc.id)->path);
	if (!p->desc.on_load)
		return refuse(e, "its descriptor has no on_load");
	if (in->abi_minor > AG_ABI_MINOR)
		log_warn("plugin %s: built for ABI %u.%u, newer than this gateway's %d.%d: "
			 "what this gateway lacks reads as NULL", p->desc.id, in->abi_major,
			 in->abi_minor, AG_ABI_MAJOR, AG_ABI_MINOR);
	return 0;
}

/* Removes everything p registered (hooks, tools, timers) and stops its observer. */
static void strip(struct ag_plugin *p)
{
	hooks_remove_owner(p->H->E, p->owner);
	observer_stop(p);
	bridge_free(p);
	ptools_remove_all(p);
	ptimers_cancel_all(p);
}

static void plugin_free(struct ag_plugin *p)
{
	if (p->dl)
		dlclose(p->dl);
	free(p->path);
	free(p->version);
	free(p);
}

static int open_plugin(struct plugins *H, struct ag_plugin *p, struct err *e)
{
	dlerror();
	p->dl = dlopen(p->path, RTLD_NOW | RTLD_LOCAL);
	if (!p->dl)
		return refuse(e, "cannot load: %s", dlerror());
	ag_plugin_entry_fn entry;
	*(void **)&entry = dlsym(p->dl, AG_PLUGIN_ENTRY_NAME);
	if (!entry)
		return refuse(e, "no %s symbol: not an agentgate plugin (build it "
			       "against <agentgate/plugin.h>)", AG_PLUGIN_ENTRY_NAME);
	if (check_info(H, p, entry(), e))
		return -1;
	snprintf(p->id, sizeof(p->id), "%s", p->desc.id);
	snprintf(p->owner, sizeof(p->owner), "plugin:%s", p->id);
	p->version = strdup(p->desc.version ? p->desc.version : "");
	return p->version ? 0 : refuse(e, "out of memory");
}

static int call_on_load(struct plugins *H, struct ag_plugin *p, const char *options,
			struct err *e)
{
	struct ag_error ae = {0};
	int64_t t0 = mono_us();
	int rc = p->desc.on_load(p, &H->api, options ? options : "{}", &ae);
	int64_t us = mono_us() - t0;
	if (us > H->slow_hook_us)
		log_warn("plugin %s: on_load took %lld ms", p->id, (long long)(us / 1000));
	if (rc == AG_OK)
		return 0;
	err_set(e, ERR_INVALID, "on_load failed (%d): %s", rc,
		ae.message[0] ? ae.message : "no reason given");
	return -1;
}

int plugins_load(struct plugins *H, const char *path, const char *options_json, struct err *e)
{
	struct ag_plugin *p = calloc(1, sizeof(*p));
	if (!p || !(p->path = strdup(path))) {
		free(p);
		err_set(e, ERR_INTERNAL, "plugin %s: out of memory", path);
		return -1;
	}
	p->H = H;
	struct err why = {0};
	if (open_plugin(H, p, &why) || call_on_load(H, p, options_json, &why)) {
		atomic_store(&p->closing, 1);
		if (p->owner[0])
			strip(p);
		err_set(e, why.code ? why.code : ERR_INVALID, "plugin %.200s: %.300s", path, why.msg);
		plugin_free(p);
		return -1;
	}
	p->loaded = 1;
	struct ag_plugin **pp = &H->head;
	while (*pp)
		pp = &(*pp)->next;
	*pp = p;
	log_info("plugin %s %s loaded from %s (ABI %u.%u)", p->id, p->version, p->path,
		 p->desc.abi_major, p->desc.abi_minor);
	return 0;
}

/* Resolves a config entry's path against the config file's directory. */
static int load_entry(struct plugins *H, const cJSON *ent, int i, struct err *e)
{
	const cJSON *path = cJSON_GetObjectItemCaseSensitive(ent, "path");
	const cJSON *opt = cJSON_GetObjectItemCaseSensitive(ent, "options");
	const cJSON *req = cJSON_GetObjectItemCaseSensitive(ent, "required");
	if (!cJSON_IsObject(ent) || !cJSON_IsString(path) || !*path->valuestring) {
		err_set(e, ERR_INVALID, "config plugins[%d]: expected {\"path\": \"FILE.so\", "
			"\"options\": ..., \"required\": true|false}", i);
		return -1;
	}
	const char *dir = engine_config(H->E)->dir;
	char full[4096];
	snprintf(full, sizeof(full), "%s%s%s", path->valuestring[0] != '/' && dir ? dir : "",
		 path->valuestring[0] != '/' && dir ? "/" : "", path->valuestring);
	char *options = opt ? cJSON_PrintUnformatted(opt) : NULL;
	int rc = plugins_load(H, full, options, e);
	free(options);
	if (rc && !cJSON_IsTrue(req)) {
		log_warn("%s (optional: starting without it)", e->msg);
		return 0;
	}
	return rc;
}

/* The directory of the first-party plugins: $AGENTGATE_PLUGIN_DIR, plugins/ beside the
 * binary (a build tree), where an installation beside the binary keeps them, then the
 * installed one. 0, or -1 when none exists. */
static int plugin_dir(char *out, size_t n)
{
	const char *env = getenv("AGENTGATE_PLUGIN_DIR");
	if (env && *env) {
		snprintf(out, n, "%s", env);
		return 0;
	}
	if (!paths_beside_exe("plugins", out, n) || !paths_beside_exe(AG_REL_PLUGINS, out, n))
		return 0;
	snprintf(out, n, "%s", AG_PLUGIN_INSTALL_DIR);
	return access(out, R_OK | X_OK) == 0 ? 0 : -1;
}

/* Is the object at path loaded already (named on the command line too)? */
static int loaded_from(struct plugins *H, const char *path)
{
	char a[PATH_MAX], b[PATH_MAX];
	if (!realpath(path, a))
		return 0;
	for (struct ag_plugin *p = H->head; p; p = p->next)
		if (realpath(p->path, b) && !strcmp(a, b))
			return 1;
	return 0;
}

/* With no list in the config, the first-party plugins that come with the gateway load
 * (optional: a build without one starts without it; one the command line named already
 * is not loaded twice). */
static int load_defaults(struct plugins *H)
{
	static const char *const names[] = {"workspace", "mcp"};
	char dir[PATH_MAX], path[PATH_MAX + 64];
	if (plugin_dir(dir, sizeof(dir)))
		return 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s.so", dir, names[i]);
		struct err e = {0};
		if (access(path, R_OK) == 0 && !loaded_from(H, path) && plugins_load(H, path, NULL, &e))
			log_warn("%s (a default plugin: starting without it)", e.msg);
	}
	return 0;
}

int plugins_load_all(struct plugins *H, const char *const *paths, int npaths, struct err *e)
{
	const cJSON *sec = cJSON_GetObjectItemCaseSensitive(engine_config(H->E)->root, "plugins");
	const cJSON *list = cJSON_IsObject(sec) ? cJSON_GetObjectItemCaseSensitive(sec, "load") : sec;
	if (list && !cJSON_IsArray(list)) {
		err_set(e, ERR_INVALID, "config plugins: expected a list of {path, options, "
			"required}, or {\"slow_hook_ms\": N, \"event_queue\": N, \"load\": [...]}");
		return -1;
	}
	int i = 0;
	const cJSON *ent;
	cJSON_ArrayForEach(ent, list)
		if (load_entry(H, ent, i++, e))
			return -1;
	for (int k = 0; k < npaths; k++)
		if (plugins_load(H, paths[k], NULL, e))
			return -1;
	if (!list)
		load_defaults(H); /* a config that lists plugins decides alone */
	return 0;
}

void plugins_stop(struct plugins *H)
{
	if (!H)
		return;
	pthread_mutex_lock(&H->gate);
	H->stopping = 1;
	pthread_mutex_unlock(&H->gate);
	loop_drain(H->L); /* answers the calls posted before stopping was set */
}

/* The unload itself: no work in flight (checked by the caller). */
static void unload(struct plugins *H, struct ag_plugin *p)
{
	pthread_mutex_lock(&H->gate);
	atomic_store(&p->closing, 1);
	pthread_mutex_unlock(&H->gate);
	loop_drain(H->L);
	observer_stop(p); /* delivers what is queued first */
	if (p->desc.on_unload)
		p->desc.on_unload(p);
	strip(p);
	for (struct ag_plugin **pp = &H->head; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	log_info("plugin %s unloaded", p->id);
	plugin_free(p);
}

int plugins_unload(struct plugins *H, const char *id, struct err *e)
{
	struct ag_plugin *p = find(H, id);
	if (!p) {
		err_set(e, ERR_NOTFOUND, "no plugin %s is loaded", id);
		return -1;
	}
	if (p->inflight) {
		err_set(e, ERR_BUSY, "plugin %s has %d calls in flight (tool calls or prompts "
			"not ended): it cannot unload now", id, p->inflight);
		return -1;
	}
	unload(H, p);
	return 0;
}

static struct ag_plugin *last(struct plugins *H, struct ag_plugin *before)
{
	struct ag_plugin *p = H->head;
	while (p && p->next != before)
		p = p->next;
	return p;
}

void plugins_destroy(struct plugins *H)
{
	if (!H)
		return;
	plugins_stop(H);
	struct ag_plugin *kept = NULL; /* the first of those left mapped, at the list's end */
	for (struct ag_plugin *p = last(H, NULL); p && p != kept; p = last(H, kept)) {
		struct err e = {0};
		if (plugins_unload(H, p->id, &e)) {
			log_error("%s; left loaded", e.msg);
			kept = p;
		}
	}
	/* a plugin left mapped keeps its code; only the host's records go */
	engine_set_host(H->E, NULL);
	pthread_mutex_destroy(&H->calls_lock);
	pthread_mutex_destroy(&H->gate);
	free(H);
}

static void counters_json(const struct plugin_counters *n, struct jw *w)
{
	jw_obj(w);
	jw_kint(w, "hookCalls", (int64_t)n->hook_calls);
	jw_kint(w, "hookErrors", (int64_t)n->hook_errors);
	jw_kint(w, "hookRefusals", (int64_t)n->hook_refusals);
	jw_kint(w, "slowHooks", (int64_t)n->slow_hooks);
	jw_kint(w, "hookTimeUs", (int64_t)n->hook_us);
	jw_kint(w, "eventsDelivered", (int64_t)n->events_delivered);
	jw_kint(w, "eventsDropped", (int64_t)n->events_dropped);
	jw_kint(w, "prompts", (int64_t)n->prompts);
	jw_kint(w, "toolCalls", (int64_t)n->tool_calls);
	jw_kint(w, "toolDropped", (int64_t)n->tool_dropped);
	jw_kint(w, "threadErrors", (int64_t)n->thread_errors);
	jw_obj_end(w);
}

static void hooks_json(const struct ag_plugin *p, struct jw *w)
{
	jw_arr(w);
	for (int id = 1; id <= AG_HOOK_MAX; id++)
		for (const struct hookreg *r = p->hooks; r; r = r->next)
			if (r->id == id && !atomic_load(&r->removed)) {
				jw_str(w, bridge_hook_name(id));
				break;
			}
	jw_arr_end(w);
}

void plugins_json(struct plugins *H, struct jw *w)
{
	jw_arr(w);
	for (struct ag_plugin *p = H ? H->head : NULL; p; p = p->next) {
		char abi[24];
		snprintf(abi, sizeof(abi), "%u.%u", p->desc.abi_major, p->desc.abi_minor);
		jw_obj(w);
		jw_kstr(w, "id", p->id);
		jw_kstr(w, "version", p->version);
		jw_kstr(w, "description", p->desc.description ? p->desc.description : "");
		jw_kstr(w, "path", p->path);
		jw_kstr(w, "abi", abi);
		jw_kint(w, "inflight", p->inflight);
		jw_key(w, "hooks");
		hooks_json(p, w);
		jw_key(w, "tools");
		ptools_json(p, w);
		jw_key(w, "counters");
		counters_json(&p->n, w);
		jw_obj_end(w);
	}
	jw_arr_end(w);
}
