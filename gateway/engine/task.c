/* task: subagents. The `task` tool runs a prompt in a child session (parentID set, the
 * spawning call recorded) and returns the child's final text — or, in the background,
 * returns at once and wakes the parent through its turn queue when the child ends.
 * Every child ends: completion, failure, stall, abort or its time budget, and the parent
 * always gets a result. `check_task` reports a child's progress. Loop thread. */
#include "engine_int.h"
#include "jsonin.h"
#include "log.h"
#include "task.h"

#include <stdlib.h>
#include <string.h>

enum task_status { TK_RUNNING, TK_COMPLETED, TK_FAILED, TK_STALLED, TK_CANCELLED };

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
	struct tool_call *call;   /* foreground: the parent's waiting tool call */
	struct turn_waiter w;
	struct timer budget;
	int over_budget;
};

static const char *status_name(enum task_status s)
{
	static const char *n[] = {"running", "completed", "failed", "stalled", "cancelled"};
	return n[s];
}

static struct task *find(struct engine *E, const char *id)
{
	for (struct task *t = E->tasks; t && id; t = t->next)
		if (!strcmp(t->id, id))
			return t;
	return NULL;
}

int task_running_children(struct engine *E, const char *session_id)
{
	int n = 0;
	for (struct task *t = E->tasks; t; t = t->next)
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
	free(t);
}

void task_free_all(struct engine *E)
{
	while (E->tasks) {
		struct task *t = E->tasks;
		E->tasks = t->next;
		if (t->call)
			t->call->state = NULL; /* the tool's cancel must not find a freed task */
		engine_waiter_cancel(E, &t->w);
		task_free(t);
	}
}

/* ---- the child's output ---- */

struct texts {
	struct engine *E;
	struct jw all, last;
	int last_has;
};

static int text_part(void *arg, const struct store_part *r)
{
	struct texts *x = arg;
	if (strcmp(r->type, "text"))
		return 0;
	cJSON *d = cJSON_Parse(r->data);
	const char *t = jsonin_get(d, "text");
	if (t && *t) {
		if (x->all.len)
			jw_append(&x->all, "\n", 1);
		jw_append(&x->all, t, strlen(t));
		if (x->last.len)
			jw_append(&x->last, "\n", 1);
		jw_append(&x->last, t, strlen(t));
		x->last_has = 1;
	}
	cJSON_Delete(d);
	return 0;
}

static int text_msg(void *arg, const struct store_message *r)
{
	struct texts *x = arg;
	if (strcmp(r->role, "assistant"))
		return 0;
	struct jw keep = x->last;
	jw_init(&x->last);
	x->last_has = 0;
	store_part_list(x->E->S, r->id, text_part, x);
	if (!x->last_has) { /* a message without text (a tool step) keeps the previous one */
		jw_free(&x->last);
		x->last = keep;
	} else {
		jw_free(&keep);
	}
	return 0;
}

/* The child's final text (last assistant message with text) and all of its text. */
static void child_output(struct engine *E, const char *child, char **final, char **all)
{
	struct texts x = {.E = E};
	jw_init(&x.all);
	jw_init(&x.last);
	msg_flush_dirty(E);
	store_message_list(E->S, child, text_msg, &x);
	jw_append(&x.all, "", 0);
	jw_append(&x.last, "", 0);
	*final = jw_take(&x.last, NULL);
	*all = jw_take(&x.all, NULL);
}

/* ---- ending ---- */

static char *metadata(const struct task *t)
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

void task_child_interrupted(struct engine *E, struct session *child)
{
	char report[256];
	snprintf(report, sizeof(report), "subagent %s failed: interrupted (the server stopped "
		 "while it ran)", child->id);
	wake(E, child->parent_id, child->id, child->title ? child->title : "", "failed", report);
}

/* HOOK_SUBAGENT_START / END, in the child session's context. */
static void subagent_hooks(struct task *t, enum hook_point at)
{
	struct session *child = hooks_any(t->E, at) ? session_get(t->E, t->id) : NULL;
	if (!child)
		return;
	struct hook_ctx c;
	struct hook_subagent hs = {.child_id = t->id, .parent_call_id = t->call_id,
				   .agent = t->agent, .background = t->background,
				   .state = at == HOOK_SUBAGENT_END ? status_name(t->status) : NULL};
	hooks_ctx(child, NULL, &c);
	hooks_run(t->E, at, &c, &hs, NULL, 0);
}

static void child_ended(struct turn_waiter *w, const char *state, const char *msg_id,
			const char *error)
{
	struct task *t = container_of(w, struct task, w);
	struct engine *E = t->E;
	timer_cancel(&t->budget);
	char *all = NULL;
	child_output(E, t->id, &t->result, &all);
	if (!t->over_budget && error) {
		free(t->error);
		t->error = strdup(error);
	}
	t->status = status_of(t, state, t->error);
	t->ended = now_ms();
	char *report = report_text(t, all ? all : "");
	char *meta = metadata(t);
	log_info("task %s: %s (parent %s)", t->id, status_name(t->status), t->parent);
	subagent_hooks(t, HOOK_SUBAGENT_END);
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

static void budget_fired(struct timer *tm)
{
	struct task *t = container_of(tm, struct task, budget);
	char msg[128];
	snprintf(msg, sizeof(msg), "exceeded its time budget of %lld ms",
		 (long long)t->E->C.task_budget_ms);
	log_warn("task %s: %s; aborting it", t->id, msg);
	t->over_budget = 1;
	free(t->error);
	t->error = strdup(msg);
	engine_abort(t->E, t->id, NULL);
}

/* Finished tasks are kept for check_task, the newest TASKS_KEPT of them. */
#define TASKS_KEPT 1000

static void prune_finished(struct engine *E)
{
	int finished = 0;
	for (struct task **pp = &E->tasks; *pp;) {
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
	const struct agent *a = agents_find(&E->A, ti->agent);
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

static int check_limits(struct engine *E, struct session *parent, char *why, size_t n)
{
	if (parent->depth + 1 > E->C.task_max_depth) {
		snprintf(why, n, "task: subagent depth limit reached (session %s is at depth %d; "
			 "task.max_depth is %d)", parent->id, parent->depth, E->C.task_max_depth);
		return -1;
	}
	if (task_running_children(E, parent->id) >= E->C.task_max_running) {
		snprintf(why, n, "task: session %s already runs %d subagents (task.max_running)",
			 parent->id, E->C.task_max_running);
		return -1;
	}
	return 0;
}

static struct task *spawn(struct engine *E, struct tool_call *c, struct session *parent,
			  const struct task_input *ti, char *why, size_t n)
{
	const struct agent *a = agents_find(&E->A, ti->agent);
	const char *model = a->model ? a->model : parent->cur ? parent->cur->model : E->C.model;
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
	timer_init(&t->budget, E->L, budget_fired);
	t->next = E->tasks;
	E->tasks = t;
	prune_finished(E);
	struct prompt p = {.session_id = t->id, .text = ti->prompt, .source = "task",
			   .agent = ti->agent, .model = model};
	if (engine_prompt(E, &p, NULL, &t->w, &e)) {
		snprintf(why, n, "task: cannot start the subagent: %.400s", e.msg);
		t->status = TK_FAILED;
		t->error = strdup(why);
		return NULL;
	}
	timer_arm(&t->budget, E->C.task_budget_ms);
	subagent_hooks(t, HOOK_SUBAGENT_START);
	return t;
}

static void task_run(struct tool_call *c, void *arg)
{
	struct engine *E = arg;
	struct task_input ti;
	char why[512];
	struct session *parent = session_get(E, c->session_id);
	if (!parent || parse_input(E, c->input, &ti, why, sizeof(why)) ||
	    check_limits(E, parent, why, sizeof(why))) {
		tool_call_fail(c, parent ? why : "task: the parent session is gone", NULL);
		return;
	}
	struct task *t = spawn(E, c, parent, &ti, why, sizeof(why));
	if (!t) {
		tool_call_fail(c, why, NULL);
		return;
	}
	char *meta = metadata(t);
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

/* The parent's turn ended while the child ran: the child goes too. */
static void task_cancel(struct tool_call *c, void *arg)
{
	struct engine *E = arg;
	struct task *t = c->state;
	if (!t)
		return;
	t->call = NULL;
	c->state = NULL;
	engine_abort(E, t->id, NULL);
}

/* ---- reports ---- */

static int tool_row(void *arg, const struct store_part *r)
{
	struct jw *w = arg;
	cJSON *d = cJSON_Parse(r->data);
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(d, "state");
	const cJSON *tm = cJSON_GetObjectItemCaseSensitive(st, "time");
	jw_obj(w);
	jw_kstr(w, "tool", jsonin_get(d, "tool"));
	jw_kstr(w, "status", jsonin_get(st, "status"));
	const cJSON *start = cJSON_GetObjectItemCaseSensitive(tm, "start");
	const cJSON *end = cJSON_GetObjectItemCaseSensitive(tm, "end");
	if (cJSON_IsNumber(start))
		jw_kint(w, "start", (int64_t)start->valuedouble);
	if (cJSON_IsNumber(end))
		jw_kint(w, "end", (int64_t)end->valuedouble);
	jw_obj_end(w);
	cJSON_Delete(d);
	return 0;
}

/* How long the child's live provider stream has gone without content (0 when none). */
static int64_t stalled_for(struct engine *E, const struct task *t)
{
	struct session *s = session_get(E, t->id);
	if (t->status == TK_STALLED)
		return E->C.stall_ms;
	if (t->status != TK_RUNNING || !s || !s->cur || !s->cur->stream)
		return 0;
	return now_ms() - llm_stream_last_activity(s->cur->stream);
}

static void write_task(struct engine *E, const struct task *t, struct jw *w)
{
	struct session *s = session_get(E, t->id);
	int64_t stalled = stalled_for(E, t);
	int64_t warn = E->C.stall_ms < 30000 ? E->C.stall_ms : 30000;
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
	jw_kint(w, "lastActivity", s && s->last_activity ? s->last_activity : t->started);
	jw_key(w, "lastToolCalls");
	jw_arr(w);
	msg_flush_dirty(E);
	store_part_last_tools(E->S, t->id, 5, tool_row, w);
	jw_arr_end(w);
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
	struct task *t = find(E, task_id);
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
	struct engine *E = arg;
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
	const struct tool_def task = {
		"task",
		"Runs a subagent in a child session on a self-contained task and returns its "
		"final answer. With background=true it returns at once; the result arrives later "
		"as a new message.",
		"{\"type\":\"object\",\"properties\":{\"description\":{\"type\":\"string\"},"
		"\"prompt\":{\"type\":\"string\"},\"subagent_type\":{\"type\":\"string\"},"
		"\"background\":{\"type\":\"boolean\"}},\"required\":[\"prompt\"]}",
		task_run, task_cancel, E,
	};
	const struct tool_def check = {
		"check_task",
		"Reports a subagent task's status, last activity, recent tool calls, whether it "
		"looks stalled, and its result when done.",
		"{\"type\":\"object\",\"properties\":{\"task_id\":{\"type\":\"string\"}},"
		"\"required\":[\"task_id\"]}",
		check_run, NULL, E,
	};
	return tools_register(&E->T, &task, "builtin") || tools_register(&E->T, &check, "builtin")
		       ? -1
		       : 0;
}
