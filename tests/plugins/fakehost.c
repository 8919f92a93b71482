#include "fakehost.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct fakehost FH;

struct fh_post {
	void (*fn)(void *user);
	void *user;
};

static struct {
	void *dl;
	const struct ag_plugin_info *info;
	pthread_t loop;
	struct { int id; ag_hook_fn fn; void *user; } hooks[FH_MAX];
	int nhooks;
	struct ag_tool tools[FH_MAX];
	int ntools;
	struct { char *key, *value; size_t len; } kv[FH_MAX];
	int nkv;
	uint64_t next_call;
	pthread_mutex_t mu; /* the log: any thread */
	char *log;
	size_t log_len;
	/* tool endings, progress, asks and posts: any thread */
	pthread_mutex_t end_mu;
	pthread_cond_t end_cv;
	uint64_t live_call; /* the last call, until it ends or is cancelled */
	struct ag_tool_call last_call;
	struct ag_ctx last_ctx;
	char *last_input;
	int last_tool;
	struct fh_post posts[FH_MAX * 4];
	int nposts;
	char *workspace;
} H = {.mu = PTHREAD_MUTEX_INITIALIZER, .end_mu = PTHREAD_MUTEX_INITIALIZER,
       .end_cv = PTHREAD_COND_INITIALIZER};

static int on_loop(ag_plugin *self)
{
	return pthread_equal(pthread_self(), H.loop);
}

static void fh_log(ag_plugin *self, int level, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	n = n < (int)sizeof(line) - 1 ? n : (int)sizeof(line) - 2;
	line[n++] = '\n';
	pthread_mutex_lock(&H.mu);
	H.log = realloc(H.log, H.log_len + (size_t)n + 1);
	memcpy(H.log + H.log_len, line, (size_t)n);
	H.log_len += (size_t)n;
	H.log[H.log_len] = 0;
	pthread_mutex_unlock(&H.mu);
	if (getenv("FAKEHOST_VERBOSE"))
		fprintf(stderr, "[%s] %s", H.info ? H.info->id : "?", line);
}

int fh_logged(const char *s)
{
	pthread_mutex_lock(&H.mu);
	int r = H.log && strstr(H.log, s);
	pthread_mutex_unlock(&H.mu);
	return r;
}

static int hook(ag_plugin *self, int id, ag_hook_fn fn, void *user)
{
	if (!on_loop(self))
		return AG_E_THREAD;
	if (id < 1 || id > AG_HOOK_MAX || H.nhooks == FH_MAX)
		return AG_E_INVALID;
	H.hooks[H.nhooks].id = id;
	H.hooks[H.nhooks].fn = fn;
	H.hooks[H.nhooks++].user = user;
	return AG_OK;
}

int fh_hook(int id, const struct ag_ctx *ctx, void *data)
{
	for (int i = 0; i < H.nhooks; i++) {
		if (H.hooks[i].id != id)
			continue;
		int rc = H.hooks[i].fn(H.hooks[i].user, ctx, data);
		if (rc != AG_HOOK_CONTINUE)
			return rc;
	}
	return AG_HOOK_CONTINUE;
}

static int fail(struct ag_error *err, int code, const char *msg)
{
	if (err) {
		err->code = code;
		snprintf(err->message, sizeof(err->message), "%s", msg);
	}
	return code;
}

static int tool_register(ag_plugin *self, const struct ag_tool *t, struct ag_error *err)
{
	if (!on_loop(self))
		return fail(err, AG_E_THREAD, "not on the loop");
	for (int i = 0; i < H.ntools; i++)
		if (!strcmp(H.tools[i].name, t->name))
			return fail(err, AG_E_INVALID, "tool name taken");
	struct ag_tool *c = &H.tools[H.ntools++];
	*c = *t;
	c->name = strdup(t->name);
	c->description = strdup(t->description);
	c->parameters_json = strdup(t->parameters_json);
	return AG_OK;
}

int fh_tool(const char *name, const struct ag_ctx *ctx, const char *input_json)
{
	for (int i = 0; i < H.ntools; i++) {
		if (strcmp(H.tools[i].name, name))
			continue;
		free(H.last_input);
		H.last_input = strdup(input_json);
		H.last_ctx = *ctx;
		H.last_tool = i;
		pthread_mutex_lock(&H.end_mu);
		H.last_call = (struct ag_tool_call){.size = sizeof(H.last_call), .id = ++H.next_call,
						    .ctx = &H.last_ctx, .tool = H.tools[i].name,
						    .call_id = "call_1", .input_json = H.last_input};
		H.live_call = H.last_call.id;
		FH.done = FH.failed = 0;
		FH.output[0] = FH.title[0] = FH.error[0] = FH.metadata[0] = 0;
		pthread_mutex_unlock(&H.end_mu);
		H.tools[i].run(H.tools[i].user, &H.last_call);
		return 0;
	}
	return -1;
}

/* Ends the live call id (any thread): AG_E_GONE when it ended or was cancelled. */
static int end_call(uint64_t id, int ok, const char *text, const char *title, const char *meta)
{
	pthread_mutex_lock(&H.end_mu);
	if (id != H.live_call) {
		pthread_mutex_unlock(&H.end_mu);
		return AG_E_GONE;
	}
	H.live_call = 0;
	if (ok) {
		FH.done = 1;
		snprintf(FH.output, sizeof(FH.output), "%s", text);
		snprintf(FH.title, sizeof(FH.title), "%s", title ? title : "");
	} else {
		FH.failed = 1;
		snprintf(FH.error, sizeof(FH.error), "%s", text);
	}
	snprintf(FH.metadata, sizeof(FH.metadata), "%s", meta ? meta : "");
	pthread_cond_broadcast(&H.end_cv);
	pthread_mutex_unlock(&H.end_mu);
	return AG_OK;
}

static int tool_done(ag_plugin *self, uint64_t id, const char *output, const char *title,
		     const char *metadata_json)
{
	return end_call(id, 1, output, title, metadata_json);
}

static int tool_fail(ag_plugin *self, uint64_t id, const char *error, const char *metadata)
{
	return end_call(id, 0, error, NULL, metadata);
}

static int tool_progress(ag_plugin *self, uint64_t id, const char *title, const char *meta)
{
	pthread_mutex_lock(&H.end_mu);
	int live = id == H.live_call;
	if (live) {
		FH.nprogress++;
		snprintf(FH.progress, sizeof(FH.progress), "%s", meta ? meta : "");
	}
	pthread_mutex_unlock(&H.end_mu);
	return live ? AG_OK : AG_E_GONE;
}

static int post(ag_plugin *self, void (*fn)(void *user), void *user)
{
	pthread_mutex_lock(&H.end_mu);
	int full = H.nposts == (int)(sizeof(H.posts) / sizeof(H.posts[0]));
	if (!full)
		H.posts[H.nposts++] = (struct fh_post){fn, user};
	pthread_cond_broadcast(&H.end_cv);
	pthread_mutex_unlock(&H.end_mu);
	return full ? AG_E_LIMIT : AG_OK;
}

static int ended(void)
{
	return FH.done || FH.failed;
}

static int progressed(void)
{
	return FH.nprogress > 0;
}

/* Until pred() (under end_mu) or ms pass, running posted callbacks meanwhile. */
static int wait_for(int (*pred)(void), int ms)
{
	struct timespec end;
	clock_gettime(CLOCK_REALTIME, &end);
	end.tv_sec += ms / 1000;
	end.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (end.tv_nsec >= 1000000000L)
		end.tv_sec++, end.tv_nsec -= 1000000000L;
	pthread_mutex_lock(&H.end_mu);
	for (;;) {
		if (pred()) {
			pthread_mutex_unlock(&H.end_mu);
			return 1;
		}
		if (H.nposts) { /* as the loop would: posted callbacks run here, unlocked */
			struct fh_post p = H.posts[0];
			memmove(H.posts, H.posts + 1, (size_t)--H.nposts * sizeof(H.posts[0]));
			pthread_mutex_unlock(&H.end_mu);
			p.fn(p.user);
			pthread_mutex_lock(&H.end_mu);
			continue;
		}
		if (pthread_cond_timedwait(&H.end_cv, &H.end_mu, &end)) {
			int ok = pred();
			pthread_mutex_unlock(&H.end_mu);
			return ok;
		}
	}
}

int fh_wait(int ms)
{
	return wait_for(ended, ms);
}

int fh_wait_progress(int ms)
{
	return wait_for(progressed, ms);
}

void fh_cancel(void)
{
	pthread_mutex_lock(&H.end_mu);
	uint64_t id = H.live_call;
	H.live_call = 0;
	pthread_mutex_unlock(&H.end_mu);
	if (id && H.tools[H.last_tool].cancel)
		H.tools[H.last_tool].cancel(H.tools[H.last_tool].user, &H.last_call);
}

struct later {
	ag_permission_done_fn done;
	void *user;
};

static void allow_later(void *arg)
{
	struct later *l = arg;
	l->done(l->user, AG_PERMISSION_ALLOW, "");
	free(l);
}

static int permission_ask(ag_plugin *self, const struct ag_permission_request *rq,
			  ag_permission_done_fn done, void *user, struct ag_error *err)
{
	pthread_mutex_lock(&H.end_mu);
	if (FH.nasks < FH_MAX) {
		struct fh_ask *a = &FH.asks[FH.nasks++];
		snprintf(a->permission, sizeof(a->permission), "%s", rq->permission);
		snprintf(a->patterns, sizeof(a->patterns), "%s", rq->patterns_json);
		snprintf(a->title, sizeof(a->title), "%s", rq->title ? rq->title : "");
		snprintf(a->metadata, sizeof(a->metadata), "%s", rq->metadata_json ? rq->metadata_json : "");
	}
	int live = rq->call == H.live_call;
	pthread_mutex_unlock(&H.end_mu);
	if (!live || FH.perm == FH_PERM_NOTFOUND)
		return fail(err, AG_E_NOTFOUND, "the call is not running");
	if (FH.perm == FH_PERM_LATER) {
		struct later *l = malloc(sizeof(*l));
		*l = (struct later){done, user};
		return post(self, allow_later, l);
	}
	done(user, FH.perm == FH_PERM_DENY ? AG_PERMISSION_DENY : AG_PERMISSION_ALLOW,
	     FH.perm == FH_PERM_DENY ? FH.perm_message : "");
	return AG_OK;
}

static char *setting(ag_plugin *self, const char *name)
{
	char *v = NULL;
	if (!strcmp(name, "secrets"))
		v = strdup("[\"FH_SECRET\"]");
	else if (!strcmp(name, "workspace") && H.workspace && asprintf(&v, "\"%s\"", H.workspace) < 0)
		v = NULL;
	return v;
}

void fh_set_workspace(const char *dir)
{
	free(H.workspace);
	H.workspace = dir ? strdup(dir) : NULL;
}

static int kv_find(const char *key)
{
	for (int i = 0; i < H.nkv; i++)
		if (!strcmp(H.kv[i].key, key))
			return i;
	return -1;
}

static int kv_get(ag_plugin *self, const char *key, char **value, size_t *len,
		  struct ag_error *err)
{
	int i = kv_find(key);
	if (!on_loop(self))
		return fail(err, AG_E_THREAD, "not on the loop");
	if (i < 0)
		return fail(err, AG_E_NOTFOUND, "no such key");
	*value = malloc(H.kv[i].len + 1);
	memcpy(*value, H.kv[i].value, H.kv[i].len + 1);
	*len = H.kv[i].len;
	return AG_OK;
}

static int kv_delete(ag_plugin *self, const char *key, struct ag_error *err)
{
	int i = kv_find(key);
	if (!on_loop(self))
		return fail(err, AG_E_THREAD, "not on the loop");
	if (i < 0)
		return fail(err, AG_E_NOTFOUND, "no such key");
	free(H.kv[i].key);
	free(H.kv[i].value);
	H.kv[i] = H.kv[--H.nkv];
	return AG_OK;
}

static int kv_set(ag_plugin *self, const char *key, const void *value, size_t len,
		  struct ag_error *err)
{
	if (!on_loop(self))
		return fail(err, AG_E_THREAD, "not on the loop");
	if (strlen(key) > 256 || len > 65536)
		return fail(err, AG_E_LIMIT, "kv: key over 256 bytes or value over 64 KiB");
	kv_delete(self, key, NULL);
	if (H.nkv == FH_MAX)
		return fail(err, AG_E_LIMIT, "fakehost: kv full");
	H.kv[H.nkv].key = strdup(key);
	H.kv[H.nkv].value = malloc(len + 1);
	memcpy(H.kv[H.nkv].value, value, len);
	H.kv[H.nkv].value[len] = 0;
	H.kv[H.nkv++].len = len;
	return AG_OK;
}

const char *fh_kv(const char *key)
{
	int i = kv_find(key);
	return i < 0 ? NULL : H.kv[i].value;
}

static int prompt_async(ag_plugin *self, const char *session_id, const struct ag_prompt *p,
			ag_prompt_done_fn done, void *user, struct ag_prompt_ack *ack,
			struct ag_error *err)
{
	if (FH.nprompts == FH_MAX)
		return fail(err, AG_E_LIMIT, "fakehost: too many prompts");
	struct fh_prompt *r = &FH.prompts[FH.nprompts++];
	snprintf(r->session, sizeof(r->session), "%s", session_id);
	snprintf(r->text, sizeof(r->text), "%s", p->text ? p->text : "");
	snprintf(r->dedupe, sizeof(r->dedupe), "%s", p->dedupe_key ? p->dedupe_key : "");
	if (ack) {
		snprintf(ack->turn_id, sizeof(ack->turn_id), "turn_%d", FH.nprompts);
		snprintf(ack->message_id, sizeof(ack->message_id), "msg_%d", FH.nprompts);
		ack->coalesced = FH.coalesce;
	}
	return AG_OK;
}

static int emit(ag_plugin *self, const char *session_id, const char *name,
		const char *properties_json, struct ag_error *err)
{
	if (!on_loop(self))
		return fail(err, AG_E_THREAD, "not on the loop");
	if (FH.nemits == FH_MAX)
		return fail(err, AG_E_LIMIT, "fakehost: too many events");
	struct fh_emit *e = &FH.emits[FH.nemits++];
	snprintf(e->session, sizeof(e->session), "%s", session_id);
	snprintf(e->name, sizeof(e->name), "%s", name);
	snprintf(e->props, sizeof(e->props), "%s", properties_json);
	return AG_OK;
}

static const char *plugin_id(ag_plugin *self)
{
	return H.info ? H.info->id : "?";
}

static char *host_strdup(const char *s)
{
	return strdup(s);
}

static struct ag_host host = {
	.size = sizeof(struct ag_host),
	.abi_major = AG_ABI_MAJOR,
	.abi_minor = AG_ABI_MINOR,
	.version = "fakehost",
	.log = fh_log,
	.alloc = malloc,
	.free = free,
	.strdup = host_strdup,
	.hook = hook,
	.prompt_async = prompt_async,
	.tool_register = tool_register,
	.tool_done = tool_done,
	.tool_fail = tool_fail,
	.kv_get = kv_get,
	.kv_set = kv_set,
	.kv_delete = kv_delete,
	.emit = emit,
	.on_loop = on_loop,
	.id = plugin_id,
	.post = post,
	.tool_progress = tool_progress,
	.setting = setting,
};

void fh_permissions(int on)
{
	host.permission_ask = on ? permission_ask : NULL;
}

/* Forgets the plugin's hooks, tools and kv and closes it (the log stays for the test). */
static void drop(void)
{
	for (int i = 0; i < H.ntools; i++) {
		free((char *)H.tools[i].name);
		free((char *)H.tools[i].description);
		free((char *)H.tools[i].parameters_json);
	}
	while (H.nkv)
		kv_delete((ag_plugin *)&H, H.kv[0].key, NULL);
	if (H.dl)
		dlclose(H.dl);
	H.dl = NULL;
	H.nposts = 0;
	H.live_call = 0;
	free(H.last_input);
	H.last_input = NULL;
	H.info = NULL;
	H.nhooks = H.ntools = 0;
}

int fh_load(const char *path, const char *options, struct ag_error *err)
{
	memset(&FH, 0, sizeof(FH));
	free(H.log);
	H.log = NULL;
	H.log_len = 0;
	H.loop = pthread_self();
	H.dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!H.dl)
		return fail(err, AG_E_INVALID, dlerror());
	ag_plugin_entry_fn entry = (ag_plugin_entry_fn)dlsym(H.dl, AG_PLUGIN_ENTRY_NAME);
	H.info = entry ? entry() : NULL;
	if (!H.info || H.info->magic != AG_PLUGIN_MAGIC || H.info->abi_major != AG_ABI_MAJOR) {
		drop();
		return fail(err, AG_E_INVALID, "not an agentgate plugin of this ABI");
	}
	int rc = H.info->on_load((ag_plugin *)&H, &host, options ? options : "{}", err);
	if (rc)
		drop(); /* a failed load is not unloaded: it cleans up after itself */
	return rc;
}

void fh_unload(void)
{
	if (H.info && H.info->on_unload)
		H.info->on_unload((ag_plugin *)&H);
	drop();
}

struct ag_ctx fh_ctx(const char *session, int depth)
{
	struct ag_ctx c = {.size = sizeof(c), .session_id = session, .root_id = session,
			   .depth = depth, .turn_id = "turn_x"};
	return c;
}
