/* task: subagents. The `task` tool runs a prompt in a child session (parentID set, the
 * spawning call recorded) and returns the child's final text — or, in the background,
 * returns at once and wakes the parent through its turn queue when the child ends.
 * Every child ends: completion, failure, stall, abort or its time budget, and the parent
 * always gets a result. `check_task` reports a child's progress. Built on the public
 * engine.h, tool.h and hooks.h only, as a plugin's tools would be. Loop thread. */
#include "engine.h"
#include "hooks.h"
#include "jsonin.h"
#include "log.h"
#include "task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum task_status { TK_RUNNING, TK_COMPLETED, TK_FAILED, TK_STALLED, TK_CANCELLED };

/* A background child cut by a restart: its parent is woken from a timer, outside the
 * turn_end that reported it. */
struct orphan {
	struct orphan *next;
	char parent[ID_MAX], child[ID_MAX], title[128];
};

/* The tools' state, their arg: the tasks of this engine. */
struct tasks {
	struct engine *E;
	struct task *list;
	struct orphan *orphans;
	struct timer wake_timer;
};

struct task {
	struct task *next;
	struct engine *E;
	char id[ID_MAX];          /* = the child session id */
	char parent[ID_MAX];
	char *call_id, *description, *agent;
	int background;
	enum task_status status;
	int64_t started, ended;
	char *result, *error;
	/* as the child ended: check_task still reports them once its session is gone (a
	 * deleted parent takes its children with it) */
	char *last_tools;       /* the lastToolCalls array, as JSON */
	int64_t last_activity;
	struct tool_call *call;   /* foreground: the parent's waiting tool call */
	struct turn_waiter w;
	struct timer budget;
	int64_t budget_end_us;  /* when the budget runs out (monotonic), while it runs */
	int64_t budget_left_us; /* what is left of it while the child's tree waits on a human */
	int paused;
	int over_budget;
	int parent_ended;       /* the parent's turn ended while the child ran (task_cancel) */
};

static const char *status_name(enum task_status s)
{
	static const char *n[] = {"running", "completed", "failed", "stalled", "cancelled"};
	return n[s];
}

static struct task *find(struct tasks *T, const char *id)
{
	for (struct task *t = T->list; t && id; t = t->next)
		if (!strcmp(t->id, id))
			return t;
	return NULL;
}

static int running_children(struct tasks *T, const char *session_id)
{
	int n = 0;
	for (struct task *t = T->list; t; t = t->next)
		n += t->status == TK_RUNNING && !strcmp(t->parent, session_id);
	return n;
}

static void task_free(struct task *t)
{
	timer_cancel(&t->budget);
	free(t->call_id);
	free(t->description);
	free(t->agent);
	free(t->result);
	free(t->error);
	free(t->last_tools);
	free(t);
}

/* The task tool's release: the engine is going away. */
static void tasks_free(void *arg)
{
	struct tasks *T = arg;
	while (T->list) {
		struct task *t = T->list;
		T->list = t->next;
		if (t->call)
			t->call->state = NULL; /* the tool's cancel must not find a freed task */
		engine_waiter_cancel(T->E, &t->w);
		task_free(t);
	}
	while (T->orphans) {
		struct orphan *o = T->orphans;
		T->orphans = o->next;
		free(o);
	}
	timer_cancel(&T->wake_timer);
	free(T);
}

/* ---- the child's output, read through engine_messages_json ---- */

static cJSON *messages_of(struct engine *E, const char *session_id)
{
	struct jw w;
	struct err e = {0};
	jw_init(&w);
	cJSON *msgs = engine_messages_json(E, session_id, 0, &w, &e) ? NULL : cJSON_Parse(w.buf);
	jw_free(&w);
	return msgs;
}

static const char *role_of(const cJSON *m)
{
	return jsonin_get(cJSON_GetObjectItemCaseSensitive(m, "info"), "role");
}

/* The child's final text (the last assistant message with text) and all of its text. */
static void child_output(struct engine *E, const char *child, char **final, char **all)
{
	struct jw every, last;
	jw_init(&every);
	jw_init(&last);
	cJSON *msgs = messages_of(E, child), *m, *p;
	cJSON_ArrayForEach(m, msgs) {
		const char *role = role_of(m);
		if (!role || strcmp(role, "assistant"))
			continue;
		struct jw mine;
		jw_init(&mine);
		cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(m, "parts")) {
			const char *type = jsonin_get(p, "type"), *t = jsonin_get(p, "text");
			if (!type || strcmp(type, "text") || !t || !*t)
				continue;
			jw_append(&every, "\n", every.len ? 1 : 0);
			jw_append(&every, t, strlen(t));
			jw_append(&mine, "\n", mine.len ? 1 : 0);
			jw_append(&mine, t, strlen(t));
		}
		if (mine.len) { /* a message without text (a tool step) keeps the previous one */
			jw_free(&last);
			last = mine;
		} else {
			jw_free(&mine);
		}
	}
	cJSON_Delete(msgs);
	jw_append(&every, "", 0);
	jw_append(&last, "", 0);
	*final = jw_take(&last, NULL);
	*all = jw_take(&every, NULL);
}

/* ---- ending ---- */

/* The task call's metadata. A child that ended without completing adds why (reason,
 * = t->error) and the text it had written (partialOutput): one shape whatever ended it. */
static char *metadata(const struct task *t, const char *partial)
{
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_kstr(&w, "sessionId", t->id);
	jw_kstr(&w, "sessionID", t->id);
	jw_kstr(&w, "taskID", t->id);
	jw_kstr(&w, "agent", t->agent);
	jw_kbool(&w, "background", t->background);
	jw_kstr(&w, "status", status_name(t->status));
	if (t->status != TK_RUNNING && t->status != TK_COMPLETED) {
		jw_kstr(&w, "reason", t->error ? t->error : "no reason recorded");
		jw_kstr(&w, "partialOutput", partial ? partial : "");
	}
	jw_obj_end(&w);
	return jw_take(&w, NULL);
}

static enum task_status status_of(const struct task *t, const char *state, const char *err)
{
	if (!strcmp(state, "completed"))
		return TK_COMPLETED;
	if (t->over_budget)
		return TK_FAILED;
	if (!strcmp(state, "cancelled"))
		return TK_CANCELLED;
	return err && strstr(err, "LLM stream stalled") ? TK_STALLED : TK_FAILED;
}

/* Why a cancelled child ended: the abort that reached it (its own session's, or an
 * ancestor's taking its tree), or its parent's turn ending under it. */
static void cancel_reason(struct task *t, const char *error, char *out, size_t n)
{
	const char *origin = engine_abort_origin(t->E, t->id);
	if (origin && strcmp(origin, t->id))
		snprintf(out, n, "aborted with %s session %s", strcmp(origin, t->parent)
			 ? "its ancestor" : "its parent", origin);
	else if (t->parent_ended)
		snprintf(out, n, "its parent's turn (session %s) ended while it ran", t->parent);
	else if (origin)
		snprintf(out, n, "aborted (its session %s was aborted)", t->id);
	else
		snprintf(out, n, "%s", error ? error : "cancelled");
}

static char *report_text(const struct task *t, const char *all)
{
	char *s = NULL;
	if (t->status == TK_COMPLETED)
		return strdup(t->result ? t->result : "");
	if (asprintf(&s, "subagent %s (%s) %s: %s\n\nPartial output:\n%s", t->id, t->agent,
		     status_name(t->status), t->error ? t->error : "no reason recorded",
		     *all ? all : "(none)") < 0)
		return NULL;
	return s;
}

/* The parent learns a background child's outcome as a prompt of its own, through its
 * turn queue (deduplicated by task id); engine_prompt refuses it when the parent itself
 * is being aborted. */
static void wake(struct engine *E, const char *parent, const char *child,
		 const char *description, const char *status, const char *report)
{
	char *text = NULL, key[ID_MAX + 8];
	snprintf(key, sizeof(key), "task:%s", child);
	if (asprintf(&text, "[background task %s \"%s\" %s]\n\n%s", child, description, status,
		     report) < 0)
		return;
	struct prompt p = {.session_id = parent, .text = text, .source = "task", .dedupe_key = key};
	struct err e = {0};
	if (engine_prompt(E, &p, NULL, NULL, &e))
		log_warn("task %s: cannot wake parent %s: %s", child, parent, e.msg);
	free(text);
}

static void wake_parent(struct task *t, const char *report)
{
	wake(t->E, t->parent, t->id, t->description ? t->description : "",
	     status_name(t->status), report);
}

static void wake_orphans(struct timer *tm)
{
	struct tasks *T = container_of(tm, struct tasks, wake_timer);
	while (T->orphans) {
		struct orphan *o = T->orphans;
		T->orphans = o->next;
		char report[256];
		snprintf(report, sizeof(report), "subagent %s failed: interrupted (the server "
			 "stopped while it ran)", o->child);
		wake(T->E, o->parent, o->child, o->title, "failed", report);
		free(o);
	}
}

/* HOOK_TURN_END: a background child whose task this process does not know (a restart
 * cut it; recovery fails its turn as interrupted) still reports to its parent. */
static int orphan_ended(void *arg, const struct hook_ctx *c, void *data, char *why, size_t n)
{
	struct tasks *T = arg;
	const struct hook_turn_end *te = data;
	struct session_info si;
	if (!te->error || strcmp(te->error, "interrupted") || !c->parent_id ||
	    find(T, c->session_id) || engine_session_info(T->E, c->session_id, &si, NULL) ||
	    !si.background)
		return 0;
	struct orphan *o = calloc(1, sizeof(*o));
	if (!o)
		return 0;
	snprintf(o->parent, sizeof(o->parent), "%s", c->parent_id);
	snprintf(o->child, sizeof(o->child), "%s", c->session_id);
	snprintf(o->title, sizeof(o->title), "%s", si.title);
	o->next = T->orphans;
	T->orphans = o;
	timer_arm(&T->wake_timer, 0); /* after the turn_end that told us */
	return 0;
}

static void snapshot(struct task *t);

static void child_ended(struct turn_waiter *w, const char *state, const char *msg_id,
			const char *error)
{
	struct task *t = container_of(w, struct task, w);
	struct engine *E = t->E;
	timer_cancel(&t->budget);
	snapshot(t);
	char *all = NULL;
	child_output(E, t->id, &t->result, &all);
	if (!t->over_budget && !strcmp(state, "cancelled")) {
		char why[300];
		cancel_reason(t, error, why, sizeof(why));
		free(t->error);
		t->error = strdup(why);
	} else if (!t->over_budget && error) {
		free(t->error);
		t->error = strdup(error);
	}
	t->status = status_of(t, state, t->error);
	t->ended = now_ms();
	char *report = report_text(t, all ? all : "");
	char *meta = metadata(t, all);
	log_info("task %s: %s (parent %s)", t->id, status_name(t->status), t->parent);
	if (t->call) {
		struct tool_call *c = t->call;
		t->call = NULL;
		c->state = NULL;
		if (t->status == TK_COMPLETED)
			tool_call_done(c, report ? report : "", t->description, meta);
		else
			tool_call_fail(c, report ? report : "subagent failed", meta);
	} else if (t->background && report) {
		wake_parent(t, report);
	}
	free(report);
	free(meta);
	free(all);
}

/* HOOK_HUMAN_WAIT: a human asked in the child's tree is not the child working, so its
 * budget stops while the tree waits and goes on with what was left after. */
static int human_wait(void *arg, const struct hook_ctx *c, void *data, char *why, size_t n)
{
	struct task *t = find(arg, c->session_id);
	const struct hook_wait *hw = data;
	if (!t || t->status != TK_RUNNING)
		return 0;
	if (hw->waiting && timer_armed(&t->budget)) {
		int64_t left = t->budget_end_us - mono_us();
		t->budget_left_us = left > 0 ? left : 0;
		timer_cancel(&t->budget);
		t->paused = 1;
	} else if (!hw->waiting && t->paused) {
		t->paused = 0;
		t->budget_end_us = mono_us() + t->budget_left_us;
		timer_arm_us(&t->budget, t->budget_left_us);
	}
	return 0;
}

static void budget_fired(struct timer *tm)
{
	struct task *t = container_of(tm, struct task, budget);
	char msg[128];
	snprintf(msg, sizeof(msg), "exceeded its time budget of %lld ms",
		 (long long)engine_config(t->E)->task_budget_ms);
	log_warn("task %s: %s; aborting it", t->id, msg);
	t->over_budget = 1;
	free(t->error);
	t->error = strdup(msg);
	engine_abort(t->E, t->id, NULL);
}

/* Finished tasks are kept for check_task, the newest TASKS_KEPT of them. */
#define TASKS_KEPT 1000

static void prune_finished(struct tasks *T)
{
	int finished = 0;
	for (struct task **pp = &T->list; *pp;) {
		struct task *t = *pp;
		if (t->status != TK_RUNNING && ++finished > TASKS_KEPT) {
			*pp = t->next;
			task_free(t);
		} else {
			pp = &t->next;
		}
	}
}

/* ---- the task tool ---- */

struct task_input {
	const char *description, *prompt, *agent;
	int background;
};

static int parse_input(struct engine *E, const cJSON *in, struct task_input *ti, char *why,
		       size_t n)
{
	struct err e = {0};
	memset(ti, 0, sizeof(*ti));
	if (jsonin_str(in, "prompt", 1, &ti->prompt, &e) ||
	    jsonin_str(in, "description", 0, &ti->description, &e) ||
	    jsonin_str(in, "subagent_type", 0, &ti->agent, &e) ||
	    jsonin_bool(in, "background", &ti->background, &e)) {
		snprintf(why, n, "task: %.480s", e.msg);
		return -1;
	}
	if (!ti->agent)
		ti->agent = "general";
	const struct agent *a = agents_find(engine_agents(E), ti->agent);
	if (!a) {
		snprintf(why, n, "task: unknown subagent_type \"%s\"", ti->agent);
		return -1;
	}
	if (!strcmp(a->mode, "primary")) {
		snprintf(why, n, "task: agent \"%s\" is a primary agent, not a subagent", ti->agent);
		return -1;
	}
	return 0;
}

static int check_limits(struct tasks *T, const struct session_info *parent, char *why,
			size_t n)
{
	const struct config *C = engine_config(T->E);
	if (parent->depth + 1 > C->task_max_depth) {
		snprintf(why, n, "task: subagent depth limit reached (session %s is at depth %d; "
			 "task.max_depth is %d)", parent->id, parent->depth, C->task_max_depth);
		return -1;
	}
	if (running_children(T, parent->id) >= C->task_max_running) {
		snprintf(why, n, "task: session %s already runs %d subagents (task.max_running)",
			 parent->id, C->task_max_running);
		return -1;
	}
	return 0;
}

static struct task *spawn(struct tasks *T, struct tool_call *c,
			  const struct session_info *parent, const struct task_input *ti, char *why,
			  size_t n)
{
	struct engine *E = T->E;
	const struct agent *a = agents_find(engine_agents(E), ti->agent);
	const char *model = a->model	     ? a->model
			    : *parent->model ? parent->model
					     : engine_config(E)->model;
	struct session_params sp = {.parent_id = parent->id, .parent_tool_call_id = c->call_id,
				    .title = ti->description, .agent = ti->agent, .model = model,
				    .background = ti->background};
	struct err e = {0};
	struct task *t = calloc(1, sizeof(*t));
	if (!t || engine_session_create(E, &sp, t ? t->id : NULL, &e)) {
		snprintf(why, n, "task: cannot create the child session: %.400s", e.msg);
		free(t);
		return NULL;
	}
	t->E = E;
	snprintf(t->parent, sizeof(t->parent), "%s", parent->id);
	t->call_id = strdup(c->call_id);
	t->description = strdup(ti->description ? ti->description : "subagent task");
	t->agent = strdup(ti->agent);
	t->background = ti->background;
	t->started = now_ms();
	t->w.fn = child_ended;
	timer_init(&t->budget, engine_loop(E), budget_fired);
	t->next = T->list;
	T->list = t;
	prune_finished(T);
	struct prompt p = {.session_id = t->id, .text = ti->prompt, .source = "task",
			   .agent = ti->agent, .model = model};
	if (engine_prompt(E, &p, NULL, &t->w, &e)) {
		snprintf(why, n, "task: cannot start the subagent: %.400s", e.msg);
		t->status = TK_FAILED;
		t->error = strdup(why);
		return NULL;
	}
	t->budget_end_us = mono_us() + engine_config(E)->task_budget_ms * 1000;
	timer_arm(&t->budget, engine_config(E)->task_budget_ms);
	return t;
}

static void task_run(struct tool_call *c, void *arg)
{
	struct tasks *T = arg;
	struct task_input ti;
	struct session_info parent;
	char why[512];
	if (engine_session_info(T->E, c->session_id, &parent, NULL)) {
		tool_call_fail(c, "task: the parent session is gone", NULL);
		return;
	}
	if (parse_input(T->E, c->input, &ti, why, sizeof(why)) ||
	    check_limits(T, &parent, why, sizeof(why))) {
		tool_call_fail(c, why, NULL);
		return;
	}
	struct task *t = spawn(T, c, &parent, &ti, why, sizeof(why));
	if (!t) {
		tool_call_fail(c, why, NULL);
		return;
	}
	char *meta = metadata(t, NULL);
	if (t->background) {
		char out[512];
		snprintf(out, sizeof(out), "Started subagent %s in the background (task_id %s). "
			 "Its result arrives as a new message when it ends; check_task reports "
			 "its progress.", t->agent, t->id);
		tool_call_done(c, out, t->description, meta);
	} else if (t->status == TK_RUNNING) {
		t->call = c;
		c->state = t;
		tool_call_set_metadata(c, t->description, meta);
	}
	free(meta);
}

/* The parent's turn ended while the child ran: the child goes too, and its end (in
 * child_ended, from the abort) is the call's result, the same as any abort's. */
static void task_cancel(struct tool_call *c, void *arg)
{
	struct tasks *T = arg;
	struct task *t = c->state;
	if (!t)
		return;
	t->parent_ended = 1;
	engine_abort(T->E, t->id, NULL);
	if (t->call) { /* the child's turn did not end (it cannot: an abort ends it) */
		t->call = NULL;
		c->state = NULL;
	}
}

/* ---- reports ---- */

#define LAST_TOOLS 5

static void write_tool(struct jw *w, const cJSON *part)
{
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(part, "state");
	const cJSON *tm = cJSON_GetObjectItemCaseSensitive(st, "time");
	const cJSON *start = cJSON_GetObjectItemCaseSensitive(tm, "start");
	const cJSON *end = cJSON_GetObjectItemCaseSensitive(tm, "end");
	jw_obj(w);
	jw_kstr(w, "tool", jsonin_get(part, "tool"));
	jw_kstr(w, "status", jsonin_get(st, "status"));
	if (cJSON_IsNumber(start))
		jw_kint(w, "start", (int64_t)start->valuedouble);
	if (cJSON_IsNumber(end))
		jw_kint(w, "end", (int64_t)end->valuedouble);
	jw_obj_end(w);
}

/* The child's last LAST_TOOLS tool calls, oldest first. */
static void write_last_tools(struct engine *E, const char *child, struct jw *w)
{
	const cJSON *last[LAST_TOOLS];
	int n = 0;
	cJSON *msgs = messages_of(E, child), *m, *p;
	cJSON_ArrayForEach(m, msgs) {
		cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(m, "parts")) {
			const char *type = jsonin_get(p, "type");
			if (!type || strcmp(type, "tool"))
				continue;
			if (n == LAST_TOOLS)
				memmove(last, last + 1, sizeof(last) - sizeof(last[0]));
			last[n < LAST_TOOLS ? n++ : LAST_TOOLS - 1] = p;
		}
	}
	jw_arr(w);
	for (int i = 0; i < n; i++)
		write_tool(w, last[i]);
	jw_arr_end(w);
	cJSON_Delete(msgs);
}

/* What check_task reports of an ended child, kept as it ended. */
static void snapshot(struct task *t)
{
	struct session_info si;
	struct jw w;
	jw_init(&w);
	write_last_tools(t->E, t->id, &w);
	free(t->last_tools);
	t->last_tools = jw_take(&w, NULL);
	if (engine_session_info(t->E, t->id, &si, NULL) == 0)
		t->last_activity = si.last_activity;
}

static void write_task(struct engine *E, const struct task *t, struct jw *w)
{
	struct session_info si;
	int known = engine_session_info(E, t->id, &si, NULL) == 0;
	int ended = t->status != TK_RUNNING && t->last_tools;
	int64_t stall_ms = engine_config(E)->stall_ms;
	int64_t stalled = t->status == TK_STALLED ? stall_ms
			  : t->status == TK_RUNNING && known ? si.quiet_ms : 0;
	int64_t warn = stall_ms < 30000 ? stall_ms : 30000;
	jw_obj(w);
	jw_kstr(w, "taskID", t->id);
	jw_kstr(w, "sessionID", t->id);
	jw_kstr(w, "parentID", t->parent);
	jw_kstr(w, "description", t->description);
	jw_kstr(w, "agent", t->agent);
	jw_kbool(w, "background", t->background);
	jw_kstr(w, "status", status_name(t->status));
	jw_kint(w, "startedAt", t->started);
	if (t->ended)
		jw_kint(w, "endedAt", t->ended);
	int64_t active = ended ? t->last_activity : known ? si.last_activity : 0;
	jw_kint(w, "lastActivity", active ? active : t->started);
	jw_key(w, "lastToolCalls");
	if (ended)
		jw_raw(w, t->last_tools);
	else
		write_last_tools(E, t->id, w);
	jw_kbool(w, "stallDetected", t->status == TK_STALLED || stalled >= warn);
	jw_kint(w, "stalledForMs", stalled);
	if (t->status == TK_COMPLETED)
		jw_kstr(w, "result", t->result);
	if (t->error && t->status != TK_COMPLETED)
		jw_kstr(w, "error", t->error);
	jw_obj_end(w);
}

int task_json(struct engine *E, const char *task_id, struct jw *w, struct err *e)
{
	const struct tool_def *d = engine_tool(E, "check_task");
	struct task *t = d ? find(d->arg, task_id) : NULL;
	if (!t) {
		err_set(e, ERR_NOTFOUND, "task %s not found (task ids are the child session ids "
			"that task returned)", task_id ? task_id : "");
		return -1;
	}
	write_task(E, t, w);
	return 0;
}

static void check_run(struct tool_call *c, void *arg)
{
	struct engine *E = ((struct tasks *)arg)->E;
	const char *id = NULL;
	struct err e = {0};
	struct jw w;
	jw_init(&w);
	if (jsonin_str(c->input, "task_id", 1, &id, &e) || task_json(E, id, &w, &e)) {
		jw_free(&w);
		char why[600];
		snprintf(why, sizeof(why), "check_task: %s", e.msg);
		tool_call_fail(c, why, NULL);
		return;
	}
	char *out = jw_take(&w, NULL);
	tool_call_done(c, out ? out : "{}", "check_task", NULL);
	free(out);
}

int task_register_tools(struct engine *E)
{
	struct tasks *T = calloc(1, sizeof(*T));
	if (!T)
		return -1;
	T->E = E;
	timer_init(&T->wake_timer, engine_loop(E), wake_orphans);
	const struct tool_def task = {
		"task",
		"Runs a subagent in a child session on a self-contained task and returns its "
		"final answer. With background=true it returns at once; the result arrives later "
		"as a new message.",
		"{\"type\":\"object\",\"properties\":{\"description\":{\"type\":\"string\"},"
		"\"prompt\":{\"type\":\"string\"},\"subagent_type\":{\"type\":\"string\"},"
		"\"background\":{\"type\":\"boolean\"}},\"required\":[\"prompt\"]}",
		task_run, task_cancel, T, tasks_free,
	};
	const struct tool_def check = {
		"check_task",
		"Reports a subagent task's status, last activity, recent tool calls, whether it "
		"looks stalled, and its result when done.",
		"{\"type\":\"object\",\"properties\":{\"task_id\":{\"type\":\"string\"}},"
		"\"required\":[\"task_id\"]}",
		check_run, NULL, T, NULL,
	};
	if (engine_tool_register(E, &task, "builtin")) {
		tasks_free(T);
		return -1;
	}
	/* check_task shares T, which goes with the task tool */
	return engine_tool_register(E, &check, "builtin") ||
			       hooks_add(E, HOOK_TURN_END, "builtin:task", orphan_ended, T) ||
			       hooks_add(E, HOOK_HUMAN_WAIT, "builtin:task", human_wait, T)
		       ? -1
		       : 0;
}
