#include "history.h"
#include "snap.h"

#include <stdlib.h>
#include <string.h>

#define RECORD_MAX 60000 /* a kv value is at most 64 KiB */

/* ---- the worker's side: snapshots around a call ---- */

struct rec {
	char session[64], turn[64], call[128];
	char top[PATH_MAX];
	char before[GIT_HASH_MAX], after[GIT_HASH_MAX];
	cJSON *files;
};

static void record(void *arg);

void history_begin(struct ws_job *j)
{
	char why[512];
	struct git_repo r;
	if (!j->tool->writes || !j->session[0] || !j->turn[0] || snap_repo(j->root, &r))
		return;
	if (snap_tree(&r, j->snap_before, why, sizeof(why))) {
		WS.host->log(WS.self, AG_LOG_WARN, "session %s: no snapshot of %s before %s (its "
			     "changes cannot be reverted): %s", j->session, r.top, j->tool->name, why);
		return;
	}
	if ((j->repo = malloc(sizeof(*j->repo))))
		*j->repo = r;
}

void history_end(struct ws_job *j)
{
	char why[512];
	struct git_repo *r = j->repo;
	struct rec *x = NULL;
	if (!r)
		return;
	j->repo = NULL;
	char after[GIT_HASH_MAX];
	if (snap_tree(r, after, why, sizeof(why))) {
		WS.host->log(WS.self, AG_LOG_WARN, "session %s: no snapshot of %s after %s (its "
			     "changes cannot be reverted): %s", j->session, r->top, j->tool->name, why);
	} else if (strcmp(after, j->snap_before) && (x = calloc(1, sizeof(*x)))) {
		snprintf(x->session, sizeof(x->session), "%s", j->session);
		snprintf(x->turn, sizeof(x->turn), "%s", j->turn);
		snprintf(x->call, sizeof(x->call), "%s", j->call);
		snprintf(x->top, sizeof(x->top), "%s", r->top);
		memcpy(x->before, j->snap_before, sizeof(x->before));
		memcpy(x->after, after, sizeof(x->after));
		x->files = snap_changes(r, j->snap_before, after, why, sizeof(why));
		/* before the call's end reaches the loop: its turn cannot end (and be
		 * reverted) without this record */
		if (WS.host->post(WS.self, record, x)) {
			cJSON_Delete(x->files);
			free(x);
		}
	}
	free(r);
}

/* ---- the plugin's kv ---- */

static cJSON *kv_json(const char *key)
{
	char *v = NULL;
	size_t n = 0;
	if (WS.host->kv_get(WS.self, key, &v, &n, NULL))
		return NULL;
	cJSON *j = cJSON_ParseWithLength(v, n);
	WS.host->free(v);
	return j;
}

static void kv_put(const char *key, const cJSON *j)
{
	struct ag_error err = {0};
	char *s = cJSON_PrintUnformatted(j);
	int rc = s ? WS.host->kv_set(WS.self, key, s, strlen(s), &err) : AG_E_INTERNAL;
	if (rc)
		WS.host->log(WS.self, AG_LOG_WARN, "cannot keep %s: %s", key,
			     err.message[0] ? err.message : "out of memory");
	free(s);
}

static void kv_drop(const char *key)
{
	WS.host->kv_delete(WS.self, key, NULL);
}

static void snap_key(char *key, size_t n, const char *session, const char *turn)
{
	snprintf(key, n, "snap/%s/%s", session, turn);
}

static const char *str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int has_string(const cJSON *arr, const char *s)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, arr)
		if (cJSON_IsString(it) && !strcmp(it->valuestring, s))
			return 1;
	return 0;
}

/* A turn's record grown past RECORD_MAX keeps one entry for the whole turn: from its
 * first snapshot to its last (revert then undoes the turn whole). */
static void coarsen(cJSON *doc)
{
	cJSON *calls = cJSON_GetObjectItemCaseSensitive(doc, "calls");
	cJSON *first = cJSON_GetArrayItem(calls, 0);
	cJSON *last = cJSON_GetArrayItem(calls, cJSON_GetArraySize(calls) - 1);
	cJSON *one = cJSON_CreateObject();
	cJSON_AddStringToObject(one, "call", "*");
	cJSON_AddStringToObject(one, "before", str(first, "before") ? str(first, "before") : "");
	cJSON_AddStringToObject(one, "after", str(last, "after") ? str(last, "after") : "");
	cJSON *arr = cJSON_CreateArray();
	cJSON_AddItemToArray(arr, one);
	cJSON_ReplaceItemInObjectCaseSensitive(doc, "calls", arr);
}

/* Loop: appends a call's change to its turn's record, and the turn to the session's. */
static void record(void *arg)
{
	struct rec *x = arg;
	char key[256];
	snap_key(key, sizeof(key), x->session, x->turn);
	cJSON *doc = kv_json(key);
	if (!cJSON_IsObject(doc)) {
		cJSON_Delete(doc);
		doc = cJSON_CreateObject();
		cJSON_AddStringToObject(doc, "top", x->top);
		cJSON_AddItemToObject(doc, "calls", cJSON_CreateArray());
	}
	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "call", x->call);
	cJSON_AddStringToObject(e, "before", x->before);
	cJSON_AddStringToObject(e, "after", x->after);
	if (x->files)
		cJSON_AddItemToObject(e, "files", x->files);
	cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(doc, "calls"), e);
	char *text = cJSON_PrintUnformatted(doc);
	if (!text || strlen(text) > RECORD_MAX)
		coarsen(doc);
	free(text);
	kv_put(key, doc);
	cJSON_Delete(doc);
	snprintf(key, sizeof(key), "snaps/%s", x->session);
	cJSON *index = kv_json(key);
	if (!cJSON_IsArray(index)) {
		cJSON_Delete(index);
		index = cJSON_CreateArray();
	}
	if (!has_string(index, x->turn)) {
		cJSON_AddItemToArray(index, cJSON_CreateString(x->turn));
		char *t;
		while ((t = cJSON_PrintUnformatted(index)) && strlen(t) > RECORD_MAX) {
			free(t);
			cJSON_DeleteItemFromArray(index, 0); /* the oldest turn leaks its record */
		}
		free(t);
		kv_put(key, index);
	}
	cJSON_Delete(index);
	free(x);
}

/* ---- the recorded changes of some turns ---- */

/* The entries (copies, in order) of the turns' records that calls names, or — calls
 * NULL — all of them; each gets the record's "top" and its "files" (computed when a
 * coarse record has none). */
static cJSON *entries(const char *session, const cJSON *turns, const cJSON *calls)
{
	cJSON *out = cJSON_CreateArray();
	const cJSON *t;
	cJSON_ArrayForEach(t, turns) {
		char key[256];
		if (!cJSON_IsString(t))
			continue;
		snap_key(key, sizeof(key), session, t->valuestring);
		cJSON *doc = kv_json(key), *e;
		const char *top = str(doc, "top");
		cJSON *recorded = top ? cJSON_GetObjectItemCaseSensitive(doc, "calls") : NULL;
		cJSON_ArrayForEach(e, recorded) {
			const char *call = str(e, "call");
			int wanted = !calls || (call && !strcmp(call, "*"));
			const cJSON *c, *among = wanted ? NULL : calls;
			cJSON_ArrayForEach(c, among)
				wanted |= call && !strcmp(str(c, "turnID") ? str(c, "turnID") : "",
							  t->valuestring) &&
					  !strcmp(str(c, "callID") ? str(c, "callID") : "", call);
			if (!wanted || !str(e, "before") || !str(e, "after"))
				continue;
			cJSON *copy = cJSON_Duplicate(e, 1);
			cJSON_AddStringToObject(copy, "top", top);
			cJSON_AddItemToArray(out, copy);
		}
		cJSON_Delete(doc);
	}
	return out;
}

/* The files of entry e: [[status, path]] (computed and kept in e when it has none). */
static const cJSON *files_of(const struct git_repo *r, cJSON *e)
{
	char why[512];
	cJSON *f = cJSON_GetObjectItemCaseSensitive(e, "files");
	if (cJSON_IsArray(f))
		return f;
	f = snap_changes(r, str(e, "before"), str(e, "after"), why, sizeof(why));
	if (!f)
		WS.host->log(WS.self, AG_LOG_WARN, "cannot compare %s with %s: %s", str(e, "before"),
			     str(e, "after"), why);
	cJSON_DeleteItemFromObjectCaseSensitive(e, "files");
	cJSON_AddItemToObject(e, "files", f ? f : cJSON_CreateArray());
	return cJSON_GetObjectItemCaseSensitive(e, "files");
}

/* The turns of the hidden calls, each once. */
static cJSON *turns_of(const cJSON *calls)
{
	cJSON *turns = cJSON_CreateArray();
	const cJSON *c;
	cJSON_ArrayForEach(c, calls)
		if (str(c, "turnID") && !has_string(turns, str(c, "turnID")))
			cJSON_AddItemToArray(turns, cJSON_CreateString(str(c, "turnID")));
	return turns;
}

static int refuse(struct ag_session_revert *d, const char *what, const char *top,
		  const char *why)
{
	char msg[1024];
	snprintf(msg, sizeof(msg), "%s %.400s: %.500s", what, top, why);
	d->reason = WS.host->strdup(msg);
	return AG_HOOK_REFUSE;
}

/* ---- revert ---- */

/* path -> [tree, status] of the oldest entry that changed it: the state to go back to. */
static cJSON *targets_of(const struct git_repo *r, cJSON *picked)
{
	cJSON *targets = cJSON_CreateObject(), *e;
	cJSON_ArrayForEach(e, picked) {
		const cJSON *f;
		cJSON_ArrayForEach(f, files_of(r, e)) {
			const char *st = cJSON_GetArrayItem(f, 0)->valuestring;
			const char *path = cJSON_GetArrayItem(f, 1)->valuestring;
			if (cJSON_HasObjectItem(targets, path))
				continue;
			cJSON *t = cJSON_CreateArray();
			cJSON_AddItemToArray(t, cJSON_CreateString(str(e, "before")));
			cJSON_AddItemToArray(t, cJSON_CreateString(st));
			cJSON_AddItemToObject(targets, path, t);
		}
	}
	return targets;
}

/* AG_HOOK_REFUSE (naming it) when a snapshot a target comes back from was pruned:
 * hiding the messages without putting their files back would lie. */
static int pruned_refusal(const struct git_repo *r, const cJSON *targets,
			  struct ag_session_revert *d)
{
	const cJSON *t;
	cJSON *seen = cJSON_CreateObject(); /* each tree is asked of git once */
	int rc = AG_HOOK_CONTINUE;
	cJSON_ArrayForEach(t, targets) {
		const char *tree = cJSON_GetArrayItem(t, 0)->valuestring;
		if (!strcmp(cJSON_GetArrayItem(t, 1)->valuestring, "A") ||
		    cJSON_HasObjectItem(seen, tree))
			continue;
		cJSON_AddItemToObject(seen, tree, cJSON_CreateTrue());
		if (snap_has(r, tree)) {
			char why[512];
			snprintf(why, sizeof(why), "the snapshot %.64s that %.100s comes back from was "
				 "pruned (snapshots are kept %d days: option snapshot_days)", tree,
				 t->string, WS.snapshot_days);
			rc = refuse(d, "cannot put back the files in", r->top, why);
			break;
		}
	}
	cJSON_Delete(seen);
	return rc;
}

/* Puts each target back: checked out of its tree, or deleted where it was created. */
static void put_back(const struct git_repo *r, const cJSON *targets)
{
	char why[512];
	cJSON *by_tree = cJSON_CreateObject(), *g;
	const cJSON *t;
	cJSON_ArrayForEach(t, targets) {
		const char *tree = cJSON_GetArrayItem(t, 0)->valuestring;
		if (!strcmp(cJSON_GetArrayItem(t, 1)->valuestring, "A")) {
			snap_remove(r, t->string);
			continue;
		}
		if (!cJSON_HasObjectItem(by_tree, tree))
			cJSON_AddItemToObject(by_tree, tree, cJSON_CreateArray());
		cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(by_tree, tree),
				     cJSON_CreateString(t->string));
	}
	cJSON_ArrayForEach(g, by_tree)
		if (snap_checkout(r, g->string, g, why, sizeof(why)))
			WS.host->log(WS.self, AG_LOG_WARN, "revert: cannot put back files of %s: %s",
				     r->top, why);
	cJSON_Delete(by_tree);
}

/* Session.revert.diff travels with every Session: past REVERT_DIFF_MAX it is cut at a
 * line's end, and says so. */
#define REVERT_DIFF_MAX (64 * 1024)
static char *cut_patch(char *patch)
{
	static const char note[] = "\n[the diff goes on: cut at 64 KiB]\n";
	size_t n = strlen(patch);
	if (n <= REVERT_DIFF_MAX)
		return patch;
	n = REVERT_DIFF_MAX - sizeof(note);
	while (n && patch[n - 1] != '\n')
		n--;
	memcpy(patch + n, note + 1, sizeof(note) - 1);
	return patch;
}

static int revert(const struct ag_ctx *ctx, struct ag_session_revert *d)
{
	char why[512], redo[GIT_HASH_MAX], after[GIT_HASH_MAX], key[256];
	struct git_repo r;
	cJSON *calls = cJSON_Parse(d->calls_json), *turns = turns_of(calls);
	cJSON *picked = entries(ctx->session_id, turns, calls);
	cJSON_Delete(turns);
	cJSON_Delete(calls);
	const char *top = str(cJSON_GetArrayItem(picked, 0), "top");
	if (!top || snap_repo(top, &r)) {
		if (top)
			WS.host->log(WS.self, AG_LOG_WARN, "revert: the worktree %s is gone: its files "
				     "stay as they are", top);
		cJSON_Delete(picked);
		return AG_HOOK_CONTINUE;
	}
	cJSON *targets = targets_of(&r, picked);
	cJSON_Delete(picked);
	snprintf(key, sizeof(key), "revert/%s", ctx->session_id);
	cJSON *state = d->snapshot ? kv_json(key) : NULL;
	if (!str(state, "redo") || strcmp(str(state, "redo"), d->snapshot)) {
		cJSON_Delete(state);
		state = NULL; /* not ours, or stale */
	}
	cJSON *all = state ? cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(state, "files"), 1)
			   : cJSON_CreateArray();
	cJSON *fresh = cJSON_CreateArray();
	const cJSON *t;
	cJSON_ArrayForEach(t, targets)
		if (!has_string(all, t->string))
			cJSON_AddItemToArray(fresh, cJSON_CreateString(t->string));
	int rc = pruned_refusal(&r, targets, d);
	if (rc == AG_HOOK_CONTINUE && state && !cJSON_GetArraySize(fresh))
		snprintf(redo, sizeof(redo), "%s", str(state, "redo"));
	else if (rc == AG_HOOK_CONTINUE &&
		 snap_partial(&r, state ? str(state, "redo") : NULL, fresh, redo, why, sizeof(why)))
		rc = refuse(d, "cannot keep for unrevert the state of the files in", r.top, why);
	if (rc == AG_HOOK_CONTINUE) {
		put_back(&r, targets);
		cJSON_ArrayForEach(t, fresh)
			cJSON_AddItemToArray(all, cJSON_CreateString(t->valuestring));
		char *patch = snap_partial(&r, NULL, all, after, why, sizeof(why)) ? NULL
			      : snap_patch(&r, redo, after, why, sizeof(why));
		cJSON *keep = cJSON_CreateObject();
		cJSON_AddStringToObject(keep, "top", r.top);
		cJSON_AddStringToObject(keep, "redo", redo);
		cJSON_AddItemToObject(keep, "files", all);
		all = NULL;
		kv_put(key, keep);
		cJSON_Delete(keep);
		d->snapshot_out = WS.host->strdup(redo);
		d->diff_out = patch ? WS.host->strdup(cut_patch(patch)) : NULL;
		free(patch);
	}
	cJSON_Delete(all);
	cJSON_Delete(fresh);
	cJSON_Delete(state);
	cJSON_Delete(targets);
	return rc;
}

/* ---- unrevert, commit ---- */

static int unrevert(const struct ag_ctx *ctx, struct ag_session_revert *d)
{
	char why[512], key[256];
	struct git_repo r;
	snprintf(key, sizeof(key), "revert/%s", ctx->session_id);
	cJSON *state = kv_json(key);
	const char *top = str(state, "top"), *redo = str(state, "redo");
	const cJSON *files = cJSON_GetObjectItemCaseSensitive(state, "files");
	if (!top || !redo || snap_repo(top, &r)) {
		if (top)
			WS.host->log(WS.self, AG_LOG_WARN, "unrevert: the worktree %s is gone", top);
		cJSON_Delete(state);
		kv_drop(key);
		return AG_HOOK_CONTINUE;
	}
	cJSON *present = snap_present(&r, redo, files, why, sizeof(why));
	int rc = !present || snap_checkout(&r, redo, present, why, sizeof(why))
			 ? refuse(d, "cannot put back the files in", r.top, why)
			 : AG_HOOK_CONTINUE;
	const cJSON *f, *gone = rc == AG_HOOK_CONTINUE ? files : NULL;
	cJSON_ArrayForEach(f, gone)
		if (cJSON_IsString(f) && !has_string(present, f->valuestring))
			snap_remove(&r, f->valuestring);
	if (rc == AG_HOOK_CONTINUE)
		kv_drop(key);
	cJSON_Delete(present);
	cJSON_Delete(state);
	return rc;
}

/* Forgets the records of turns (a JSON array; NULL: all the session's). */
static void forget(const char *session, const cJSON *turns)
{
	char key[256];
	snprintf(key, sizeof(key), "snaps/%s", session);
	cJSON *index = kv_json(key);
	const cJSON *t, *which = turns ? turns : index;
	cJSON_ArrayForEach(t, which) {
		if (!cJSON_IsString(t))
			continue;
		char k[256];
		snap_key(k, sizeof(k), session, t->valuestring);
		kv_drop(k);
		for (int i = cJSON_GetArraySize(index) - 1; turns && i >= 0; i--)
			if (!strcmp(cJSON_GetArrayItem(index, i)->valuestring, t->valuestring))
				cJSON_DeleteItemFromArray(index, i);
	}
	if (!turns || !cJSON_GetArraySize(index))
		kv_drop(key);
	else if (index)
		kv_put(key, index);
	cJSON_Delete(index);
	if (!turns) {
		snprintf(key, sizeof(key), "revert/%s", session);
		kv_drop(key);
	}
}

static int on_revert(void *user, const struct ag_ctx *ctx, void *data)
{
	struct ag_session_revert *d = data;
	char key[256];
	(void)user;
	if (!ctx->session_id)
		return AG_HOOK_CONTINUE;
	if (!strcmp(d->action, "revert"))
		return revert(ctx, d);
	if (!strcmp(d->action, "unrevert"))
		return unrevert(ctx, d);
	if (!strcmp(d->action, "commit")) {
		cJSON *turns = cJSON_Parse(d->turns_json);
		snprintf(key, sizeof(key), "revert/%s", ctx->session_id);
		kv_drop(key);
		if (cJSON_GetArraySize(turns))
			forget(ctx->session_id, turns);
		cJSON_Delete(turns);
	}
	return AG_HOOK_CONTINUE;
}

/* ---- diff ---- */

static int on_diff(void *user, const struct ag_ctx *ctx, void *data)
{
	struct ag_session_diff *d = data;
	char why[512];
	struct git_repo r;
	(void)user;
	cJSON *turns = cJSON_Parse(d->turns_json);
	cJSON *picked = ctx->session_id ? entries(ctx->session_id, turns, NULL) : NULL;
	cJSON_Delete(turns);
	cJSON *first = cJSON_GetArrayItem(picked, 0), *e;
	const char *top = str(first, "top");
	if (!top || snap_repo(top, &r)) {
		cJSON_Delete(picked);
		return AG_HOOK_CONTINUE;
	}
	cJSON *paths = cJSON_CreateArray();
	cJSON_ArrayForEach(e, picked) {
		const cJSON *f;
		cJSON_ArrayForEach(f, files_of(&r, e)) {
			const char *path = cJSON_GetArrayItem(f, 1)->valuestring;
			if (!has_string(paths, path))
				cJSON_AddItemToArray(paths, cJSON_CreateString(path));
		}
	}
	const char *from = str(first, "before");
	cJSON *last = cJSON_GetArrayItem(picked, cJSON_GetArraySize(picked) - 1);
	/* one turn: from its first snapshot to its last; the session: to the worktree now */
	cJSON *files = snap_diff(&r, from, d->message_id ? str(last, "after") : NULL, paths, why,
				 sizeof(why));
	if (!files)
		WS.host->log(WS.self, AG_LOG_WARN, "session %s: no diff of %s: %s", ctx->session_id,
			     r.top, why);
	char *text = files ? cJSON_PrintUnformatted(files) : NULL;
	d->files_out = text ? WS.host->strdup(text) : NULL;
	free(text);
	cJSON_Delete(files);
	cJSON_Delete(paths);
	cJSON_Delete(picked);
	return AG_HOOK_CONTINUE;
}

/* ---- a session deleted: its records go too ---- */

static void forget_session(void *arg)
{
	forget(arg, NULL);
	free(arg);
}

static int on_deleted(void *user, const struct ag_ctx *ctx, void *data)
{
	const struct ag_event *ev = data;
	(void)user;
	(void)ctx;
	char *id = ev->session_id && *ev->session_id ? strdup(ev->session_id) : NULL;
	if (id && WS.host->post(WS.self, forget_session, id))
		free(id);
	return AG_HOOK_CONTINUE;
}

/* ---- pruning old snapshots: a minute after load, then daily, on a worker ---- */

#define PRUNE_FIRST_MS (60 * 1000)
#define PRUNE_EVERY_MS (24 * 3600 * 1000LL)

static uint64_t prune_timer;

static void prune_due(void *arg);

static void prune_again(void *arg)
{
	(void)arg;
	prune_timer = WS.host->timer_add(WS.self, PRUNE_EVERY_MS, prune_due, NULL);
}

static void prune_work(void *arg)
{
	char why[600];
	if (snap_prune(WS.snapshot_days, why, sizeof(why)))
		WS.host->log(WS.self, AG_LOG_WARN, "pruning snapshots older than %d days: %s",
			     WS.snapshot_days, why);
	WS.host->post(WS.self, prune_again, NULL);
}

static void prune_due(void *arg)
{
	prune_timer = 0;
	if (ws_background(prune_work, arg))
		prune_again(NULL);
}

/* ---- load ---- */

int history_load(const char *data, struct ag_error *err)
{
	int (*events)(ag_plugin *, ag_hook_fn, void *, const char *) =
		AG_HOST_FN(WS.host, hook_events);
	(void)err;
	snap_init(data, WS.envp);
	if (!snap_enabled() || WS.host->abi_minor < 1) {
		WS.host->log(WS.self, AG_LOG_INFO, "workspace snapshots are off (%s): a revert does "
			     "not undo file changes", WS.host->abi_minor < 1 ? "the gateway is older "
			     "than ABI 1.1" : !data ? "no data directory" : "git not found");
		return AG_OK;
	}
	if (WS.snapshot_days > 0)
		prune_timer = WS.host->timer_add(WS.self, PRUNE_FIRST_MS, prune_due, NULL);
	if (WS.host->hook(WS.self, AG_HOOK_SESSION_REVERT, on_revert, NULL) ||
	    WS.host->hook(WS.self, AG_HOOK_SESSION_DIFF, on_diff, NULL) ||
	    (events && events(WS.self, on_deleted, NULL, "[\"session.deleted\"]")))
		WS.host->log(WS.self, AG_LOG_WARN, "cannot register the snapshot hooks: a revert "
			     "does not undo file changes");
	return AG_OK;
}

void history_unload(void)
{
	if (prune_timer)
		WS.host->timer_cancel(WS.self, prune_timer);
	prune_timer = 0;
	snap_shutdown();
}
