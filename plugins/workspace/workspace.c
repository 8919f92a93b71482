/* workspace: the file and shell tools a model needs for real work — read, write,
 * edit, list, glob, grep and bash, with OpenCode's names and parameters. Every path is
 * resolved inside the session's directory (paths.c); write, edit and bash ask the
 * host's permission system first (the others ask too: the default rules allow them);
 * everything that touches the disk or waits for a command runs on the plugin's worker
 * threads (pool.c), never on the gateway's loop. This file is the plumbing every call
 * goes through (ws.h); the tools are in tools_*.c. */
#include "ws.h"
#include "history.h"
#include "paths.h"
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/eventfd.h>
#include <unistd.h>

extern char **environ;

#define FILE_TIMEOUT_MS 300000 /* the host's bound on a call of the other tools */

struct ws_config WS;

static struct pool *pool;

int ws_background(void (*fn)(void *arg), void *arg)
{
	return pool ? pool_submit(pool, fn, arg) : -1;
}
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ws_job *registry;

static const struct ws_tool *const tools[] = {&ws_read, &ws_write, &ws_edit, &ws_list,
					       &ws_glob, &ws_grep, &ws_bash};

/* ---- jobs ---------------------------------------------------------------------------- */

static void job_free(struct ws_job *j)
{
	free(j->repo);
	if (j->cancel_fd >= 0)
		close(j->cancel_fd);
	if (j->has_glob)
		glob_free(&j->glob);
	if (j->has_re)
		regfree(&j->re);
	free(j->arg);
	free(j->arg2);
	free(j->before);
	free(j->after);
	free(j->diff);
	free(j->answer);
	free(j);
}

static void job_end(struct ws_job *j)
{
	pthread_mutex_lock(&reg_lock);
	for (struct ws_job **pp = &registry; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	pthread_mutex_unlock(&reg_lock);
	job_free(j);
}

int ws_cancelled(struct ws_job *j)
{
	return atomic_load(&j->cancelled);
}

void ws_done(struct ws_job *j, const char *output, const char *title, const char *metadata)
{
	history_end(j);
	WS.host->tool_done(WS.self, j->id, output, title, metadata);
	job_end(j);
}

void ws_fail(struct ws_job *j, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	history_end(j);
	WS.host->tool_fail(WS.self, j->id, msg, NULL);
	job_end(j);
}

int ws_resolve(struct ws_job *j, const char *path, char *why, size_t wn)
{
	if (paths_resolve(j->root, path, j->path, sizeof(j->path), why, wn))
		return -1;
	j->rel = paths_rel(j->root, j->path);
	return 0;
}

/* ---- the stages ---------------------------------------------------------------------- */

static void act_work(void *arg)
{
	struct ws_job *j = arg;
	if (ws_cancelled(j)) {
		job_end(j); /* the call ended with the cancel */
		return;
	}
	history_begin(j);
	j->tool->act(j);
}

static void permitted(struct ws_job *j, int decision, const char *message)
{
	if (ws_cancelled(j))
		job_end(j);
	else if (decision != AG_PERMISSION_ALLOW)
		ws_fail(j, "permission denied: %s", message && *message ? message
						   : "the request was rejected");
	else if (pool_submit(pool, act_work, j))
		ws_fail(j, "cannot start the work: out of memory");
}

static void answered(void *user, int decision, const char *message)
{
	struct ws_job *j = user;
	if (!j->asking) {
		permitted(j, decision, message);
		return;
	}
	j->answered = 1; /* inside permission_ask: it goes on when that returns */
	j->decision = decision;
	j->answer = message ? strdup(message) : NULL;
}

/* Loop. Asks the host (when it has a permission system) whether j may act. */
static void ask(void *arg)
{
	struct ws_job *j = arg;
	struct ws_ask a = {0};
	struct ag_error err = {0};
	int (*pa)(ag_plugin *, const struct ag_permission_request *, ag_permission_done_fn,
		  void *, struct ag_error *) = AG_HOST_FN(WS.host, permission_ask);
	if (ws_cancelled(j)) {
		job_end(j);
		return;
	}
	if (!pa) { /* no permission system: everything is allowed */
		permitted(j, AG_PERMISSION_ALLOW, NULL);
		return;
	}
	j->tool->ask(j, &a);
	cJSON *pats = cJSON_CreateStringArray(&a.pattern, 1);
	char *pj = pats ? cJSON_PrintUnformatted(pats) : NULL;
	struct ag_permission_request rq = {.size = sizeof(rq), .call = j->id,
					   .permission = a.permission, .patterns_json = pj,
					   .title = a.title, .metadata_json = a.metadata};
	j->asking = 1;
	int rc = pj ? pa(WS.self, &rq, answered, j, &err) : AG_E_INTERNAL;
	j->asking = 0;
	cJSON_Delete(pats);
	free(pj);
	free(a.metadata);
	if (j->answered)
		permitted(j, j->decision, j->answer);
	else if (rc)
		ws_fail(j, "cannot ask for permission to %s: %s", a.title,
			rc == AG_E_INTERNAL && !err.message[0] ? "out of memory" : err.message);
}

static void prepare_work(void *arg)
{
	struct ws_job *j = arg;
	char why[1024] = "";
	if (ws_cancelled(j))
		job_end(j);
	else if (j->tool->prepare(j, why, sizeof(why)))
		ws_fail(j, "%s", why);
	else if (WS.host->post(WS.self, ask, j))
		ws_fail(j, "the plugin is stopping");
}

/* ---- the host's side ------------------------------------------------------------------- */

/* The gateway's "workspace" setting (malloc'd), for a call without ctx->directory. */
static char *fallback_root(void)
{
	char *ws = WS.host->setting(WS.self, "workspace"), *dir = NULL;
	cJSON *v = ws ? cJSON_Parse(ws) : NULL;
	if (cJSON_IsString(v))
		dir = strdup(v->valuestring);
	cJSON_Delete(v);
	WS.host->free(ws);
	return dir;
}

static struct ws_job *job_new(const struct ws_tool *t, const struct ag_tool_call *call,
			      char *why, size_t wn)
{
	struct ws_job *j = calloc(1, sizeof(*j));
	int has = AG_HAS(call->ctx, struct ag_ctx, directory) && call->ctx->directory;
	char *fallback = has ? NULL : fallback_root();
	const char *dir = has ? call->ctx->directory : fallback;
	if (!j || !dir || !realpath(dir, j->root)) {
		if (j)
			snprintf(why, wn, "the session's directory %s cannot be used: %s",
				 dir ? dir : "(none)", dir ? strerror(errno) : "the gateway sets none");
		else
			snprintf(why, wn, "out of memory");
		free(fallback);
		free(j);
		return NULL;
	}
	free(fallback);
	j->tool = t;
	j->id = call->id;
	const struct ag_ctx *c = call->ctx;
	snprintf(j->session, sizeof(j->session), "%s", c && c->session_id ? c->session_id : "");
	snprintf(j->turn, sizeof(j->turn), "%s", c && c->turn_id ? c->turn_id : "");
	snprintf(j->call, sizeof(j->call), "%s", call->call_id ? call->call_id : "");
	j->cancel_fd = -1;
	atomic_init(&j->cancelled, 0);
	return j;
}

static void tool_run(void *user, const struct ag_tool_call *call)
{
	const struct ws_tool *t = user;
	char why[1024] = "";
	cJSON *in = cJSON_Parse(call->input_json ? call->input_json : "{}");
	struct ws_job *j = cJSON_IsObject(in) ? job_new(t, call, why, sizeof(why)) : NULL;
	if (!j || t->parse(j, in, why, sizeof(why))) {
		WS.host->tool_fail(WS.self, call->id, j || why[0] ? why
					  : "the input is not a JSON object", NULL);
		if (j)
			job_free(j);
		cJSON_Delete(in);
		return;
	}
	cJSON_Delete(in);
	pthread_mutex_lock(&reg_lock);
	j->next = registry;
	registry = j;
	pthread_mutex_unlock(&reg_lock);
	if (!t->prepare)
		ask(j);
	else if (pool_submit(pool, prepare_work, j))
		ws_fail(j, "cannot start the work: out of memory");
}

/* Loop: an abort or the host's timeout. The job stops at its next check; a command's
 * process group is killed by the worker that runs it (woken through cancel_fd). */
static void tool_cancel(void *user, const struct ag_tool_call *call)
{
	pthread_mutex_lock(&reg_lock);
	for (struct ws_job *j = registry; j; j = j->next)
		if (j->id == call->id) {
			atomic_store(&j->cancelled, 1);
			if (j->cancel_fd >= 0 && eventfd_write(j->cancel_fd, 1))
				WS.host->log(WS.self, AG_LOG_WARN, "cannot wake the command of call "
					     "%llu", (unsigned long long)j->id);
		}
	pthread_mutex_unlock(&reg_lock);
}

/* ---- settings ------------------------------------------------------------------------- */

static const char *const known_options[] = {"workers", "timeout_ms", "max_timeout_ms",
					    "max_output_bytes", "shell", "ignore", "gitignore",
					    "env_deny", "list_limit", "search_limit",
					    "snapshot_days", NULL};

static const char *const default_ignore[] = {
	".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".cache",
	".idea", ".vscode", "dist", "build", "target", "coverage", ".next", ".zig-cache",
	"zig-out", NULL};

/* Does environment entry e name one of the NULL-terminated names? */
static int denied(const char *e, char *const *names)
{
	for (; names && *names; names++) {
		size_t n = strlen(*names);
		if (!strncmp(e, *names, n) && e[n] == '=')
			return 1;
	}
	return 0;
}

/* The gateway's environment without the host's secrets and the option's env_deny. */
static int make_env(const cJSON *o, struct ag_error *err)
{
	static const char *const none[] = {NULL};
	char **extra = NULL, *secrets = WS.host->setting(WS.self, "secrets");
	cJSON *names = secrets ? cJSON_Parse(secrets) : NULL;
	const char *list[256];
	int n = 0, rc = plug_opt_strv(o, "env_deny", none, &extra, err);
	const cJSON *it;
	WS.host->free(secrets);
	cJSON_ArrayForEach(it, names) {
		if (cJSON_IsString(it) && n < 255)
			list[n++] = it->valuestring;
	}
	for (char **e = extra; e && *e && n < 255; e++)
		list[n++] = *e;
	list[n] = NULL;
	char **deny = rc ? NULL : plug_strv(list, n);
	int count = 0, k = 0;
	for (char **e = environ; e && *e; e++)
		count++;
	const char **keep = deny ? calloc((size_t)count + 1, sizeof(char *)) : NULL;
	for (char **e = environ; keep && e && *e; e++)
		if (!denied(*e, deny))
			keep[k++] = *e;
	WS.envp = keep ? plug_strv(keep, k) : NULL;
	free(keep);
	free(deny);
	free(extra);
	cJSON_Delete(names);
	return rc ? rc : WS.envp ? AG_OK : plug_fail(err, AG_E_INTERNAL, "out of memory");
}

static int read_options(const cJSON *o, long long *workers, struct ag_error *err)
{
	long long t = 0, mt = 0;
	const char *shell = NULL;
	int rc = plug_opt_int(o, "workers", 16, 1, 256, workers, err);
	if (!rc)
		rc = plug_opt_int(o, "timeout_ms", 120000, 1, 86400000, &t, err);
	if (!rc)
		rc = plug_opt_int(o, "max_timeout_ms", 600000, 1, 86400000, &mt, err);
	if (!rc)
		rc = plug_opt_int(o, "max_output_bytes", 30 * 1024, 1024, 64 << 20,
				  &WS.max_output, err);
	if (!rc)
		rc = plug_opt_int(o, "list_limit", 100, 1, 100000, &WS.list_limit, err);
	if (!rc)
		rc = plug_opt_int(o, "search_limit", 100, 1, 100000, &WS.search_limit, err);
	if (!rc)
		rc = plug_opt_str(o, "shell", "/bin/sh", &shell, err);
	if (!rc && shell[0] != '/')
		rc = plug_fail(err, AG_E_INVALID, "option \"shell\" must be an absolute path");
	if (!rc && t > mt)
		rc = plug_fail(err, AG_E_INVALID, "option \"timeout_ms\" (%lld) is over "
			       "\"max_timeout_ms\" (%lld)", t, mt);
	if (!rc && !(WS.shell = strdup(shell)))
		rc = plug_fail(err, AG_E_INTERNAL, "out of memory");
	if (!rc)
		rc = plug_opt_strv(o, "ignore", default_ignore, &WS.ignore, err);
	if (!rc)
		rc = plug_opt_bool(o, "gitignore", 1, &WS.gitignore, err);
	long long days = 0;
	if (!rc)
		rc = plug_opt_int(o, "snapshot_days", 7, 0, 36500, &days, err);
	WS.snapshot_days = (int)days;
	WS.timeout_ms = t;
	WS.max_timeout_ms = mt;
	WS.grace_ms = 2000;
	return rc;
}

/* ---- load ---------------------------------------------------------------------------- */

static void release(void)
{
	free(WS.ignore);
	free(WS.envp);
	free(WS.shell);
	WS.ignore = WS.envp = NULL;
	WS.shell = NULL;
}

static int register_tools(struct ag_error *err)
{
	for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++) {
		/* the host's timeout is a safety net behind each tool's own bounds (bash's
		 * timeout, the walks' size): a worker stuck on a hung disk ends its call, not
		 * the session. The host pauses it while a permission ask waits. */
		int64_t limit = tools[i] == &ws_bash ? WS.max_timeout_ms + WS.grace_ms + 30000
						     : FILE_TIMEOUT_MS;
		struct ag_tool t = {.size = sizeof(t), .name = tools[i]->name,
				    .description = tools[i]->description,
				    .parameters_json = tools[i]->parameters, .run = tool_run,
				    .cancel = tool_cancel, .user = (void *)tools[i],
				    .timeout_ms = limit};
		int rc = WS.host->tool_register(WS.self, &t, err);
		if (rc)
			return rc;
	}
	return AG_OK;
}

static int workspace_load(ag_plugin *self, const struct ag_host *host, const char *options,
			  struct ag_error *err)
{
	cJSON *o = NULL;
	long long workers = 0;
	WS = (struct ws_config){.host = host, .self = self};
	if (!AG_HOST_FN(host, setting) || !AG_HOST_FN(host, tool_progress))
		return plug_fail(err, AG_E_INVALID, "the gateway is too old: the workspace "
				 "plugin needs setting and tool_progress (ABI 1.0 of the tools "
				 "work)");
	int rc = plug_options(options, known_options, &o, err);
	if (!rc)
		rc = read_options(o, &workers, err);
	if (!rc)
		rc = make_env(o, err);
	cJSON_Delete(o);
	if (!rc) {
		char *data = WS.host->setting(WS.self, "data"), *dir = NULL;
		cJSON *v = data ? cJSON_Parse(data) : NULL;
		if (cJSON_IsString(v))
			dir = v->valuestring;
		rc = history_load(dir, err);
		cJSON_Delete(v);
		WS.host->free(data);
	}
	if (!rc && !(pool = pool_create(2, (int)workers)))
		rc = plug_fail(err, AG_E_INTERNAL, "cannot start the worker threads");
	if (!rc)
		rc = register_tools(err);
	if (rc) {
		pool_destroy(pool);
		pool = NULL;
		release();
	}
	return rc;
}

static void workspace_unload(ag_plugin *self)
{
	pool_destroy(pool); /* a cancelled command finishes killing its group first */
	pool = NULL;
	history_unload();
	pthread_mutex_lock(&reg_lock);
	struct ws_job *j = registry; /* left only by a permission answer that never came */
	registry = NULL;
	pthread_mutex_unlock(&reg_lock);
	while (j) {
		struct ws_job *next = j->next;
		job_free(j);
		j = next;
	}
	release();
}

static const struct ag_plugin_info info = {
	.magic = AG_PLUGIN_MAGIC, .abi_major = AG_ABI_MAJOR, .abi_minor = AG_ABI_MINOR,
	.size = sizeof(info), .id = "workspace", .version = "1.0.0",
	.description = "read, write, edit, list, glob, grep and bash in the session's "
		       "directory",
	.on_load = workspace_load, .on_unload = workspace_unload,
};

AG_EXPORT const struct ag_plugin_info *AG_PLUGIN_ENTRY(void)
{
	return &info;
}
