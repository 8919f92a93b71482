/* step: the agent loop. One step = one provider request: history -> stream -> parts;
 * tool calls run, then the next step continues the same turn, bound to the same user
 * message, until the model stops, the step limit, an error or an abort. */
#include "engine_int.h"
#include "jsonin.h"
#include "log.h"
#include "turnopts.h"
#include "userparts.h"
#include "vec.h"

#include <stdlib.h>
#include <string.h>

/* ---- history: the session's messages in the provider-neutral shape ----
 * The turns before the running one have ended and their messages no longer change: they
 * are converted once and kept with the session (s->hist, up to turn s->hist_upto). Each
 * step reads from the store only what it lacks: turns that ended since, and the running
 * turn's own messages (its earlier steps' text and tool results). A prompt still queued
 * belongs to a later turn, so the model never sees, or answers, it. A compaction turn
 * (compact.c) is its instruction in its own request; once its summary is written, that
 * summary (after a question) is all a later turn sees of what came before it. */

struct hrow {
	char *id, *role, *turn_id, *finish;
};

struct hrows {
	struct hrow *v;
	int n, cap;
};

static int hist_row(void *arg, const struct store_message *r)
{
	struct hrows *l = arg;
	void *grown = vec_reserve(l->v, &l->cap, l->n, sizeof(*l->v));
	if (!grown)
		return 1;
	l->v = grown;
	l->v[l->n].id = strdup(r->id);
	l->v[l->n].role = strdup(r->role);
	l->v[l->n].turn_id = strdup(r->turn_id ? r->turn_id : "");
	l->v[l->n].finish = r->finish ? strdup(r->finish) : NULL;
	l->n++;
	return 0;
}

struct hmsg {
	struct jw text;
	cJSON *calls;   /* assistant tool_calls */
	cJSON *results; /* tool messages that follow */
	cJSON *files;   /* a user message's attachments */
	int user;       /* a user message: its text parts are joined by a blank line */
	int compaction; /* a compaction turn's request (its user message) */
};

/* What OpenCode puts in the conversation for a user's subtask part. */
#define SUBTASK_TEXT "The following tool was executed by the user"

static void hist_text(struct hmsg *h, const char *t)
{
	if (h->user && h->text.len)
		jw_append(&h->text, "\n\n", 2);
	jw_append(&h->text, t, strlen(t));
}

static void add_tool_part(struct hmsg *h, const cJSON *d)
{
	const cJSON *state = cJSON_GetObjectItemCaseSensitive(d, "state");
	const char *st = jsonin_get(state, "status");
	const char *call_id = jsonin_get(d, "callID");
	const char *tool = jsonin_get(d, "tool");
	if (!st || !call_id || !tool || (strcmp(st, "completed") && strcmp(st, "error")))
		return;
	char *args = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(state, "input"));
	cJSON *call = cJSON_CreateObject();
	cJSON_AddStringToObject(call, "id", call_id);
	cJSON_AddStringToObject(call, "name", tool);
	cJSON_AddStringToObject(call, "arguments", args ? args : "{}");
	cJSON_AddItemToArray(h->calls, call);
	free(args);
	cJSON *res = cJSON_CreateObject();
	cJSON_AddStringToObject(res, "role", "tool");
	cJSON_AddStringToObject(res, "tool_call_id", call_id);
	cJSON_AddStringToObject(res, "name", tool);
	const cJSON *time = cJSON_GetObjectItemCaseSensitive(state, "time");
	const char *out = cJSON_GetObjectItemCaseSensitive(time, "compacted")
				  ? PRUNED_OUTPUT : jsonin_get(state, "output");
	const char *er = jsonin_get(state, "error");
	char *content = NULL;
	if (!strcmp(st, "completed"))
		content = strdup(out ? out : "");
	else if (asprintf(&content, "Error: %s", er ? er : "tool failed") < 0)
		content = NULL;
	cJSON_AddStringToObject(res, "content", content ? content : "");
	free(content);
	cJSON_AddItemToArray(h->results, res);
}

static int hist_part(void *arg, const struct store_part *r)
{
	struct hmsg *h = arg;
	cJSON *d = cJSON_Parse(r->data);
	if (!strcmp(r->type, "text")) {
		const char *t = jsonin_get(d, "text");
		if (t && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "ignored")))
			hist_text(h, t);
	} else if (!strcmp(r->type, "tool")) {
		add_tool_part(h, d);
	} else if (!strcmp(r->type, "compaction")) {
		h->compaction = 1;
	} else if (!strcmp(r->type, "file")) {
		uparts_history_file(h->files, d);
	} else if (!strcmp(r->type, "subtask")) {
		hist_text(h, SUBTASK_TEXT);
	}
	cJSON_Delete(d);
	return 0;
}

static void add_text_message(cJSON *out, const char *role, const char *text)
{
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "role", role);
	cJSON_AddStringToObject(m, "content", text);
	cJSON_AddItemToArray(out, m);
}

/* Adds message r to out; 1 when it is a compaction turn's request, which stands for
 * the compaction's instruction in its own turn (own) and for nothing by itself in a
 * later one (the summary that follows it does: hist_pivot). */
static int hist_add(struct engine *E, cJSON *out, const struct hrow *r, int own)
{
	int is_user = !strcmp(r->role, "user");
	struct hmsg h = {.calls = cJSON_CreateArray(), .results = cJSON_CreateArray(),
			 .files = cJSON_CreateArray(), .user = is_user};
	jw_init(&h.text);
	jw_append(&h.text, "", 0);
	store_part_list(E->S, r->id, hist_part, &h);
	int ncalls = cJSON_GetArraySize(h.calls);
	if (h.compaction && own)
		add_text_message(out, "user", compact_instruction());
	if (!h.compaction && (is_user || h.text.len || ncalls)) {
		cJSON *m = cJSON_CreateObject();
		cJSON_AddStringToObject(m, "role", is_user ? "user" : "assistant");
		cJSON_AddStringToObject(m, "content", h.text.buf ? h.text.buf : "");
		if (ncalls) {
			cJSON_AddItemToObject(m, "tool_calls", h.calls);
			h.calls = NULL;
		}
		if (cJSON_GetArraySize(h.files)) {
			cJSON_AddItemToObject(m, "files", h.files);
			h.files = NULL;
		}
		cJSON_AddItemToArray(out, m);
		cJSON *res;
		while ((res = cJSON_DetachItemFromArray(h.results, 0)))
			cJSON_AddItemToArray(out, res);
	}
	cJSON_Delete(h.calls);
	cJSON_Delete(h.results);
	cJSON_Delete(h.files);
	jw_free(&h.text);
	return h.compaction;
}

/* A compaction turn's reply in a later turn's history: when it is the finished summary,
 * everything before it is replaced by the question and the summary. */
static void hist_pivot(struct engine *E, cJSON *hist, const struct hrow *r)
{
	if (strcmp(r->role, "assistant") || !msg_finished_ok(r->finish))
		return; /* a compaction that failed changes nothing */
	cJSON *m;
	while ((m = cJSON_DetachItemFromArray(hist, 0)))
		cJSON_Delete(m);
	add_text_message(hist, "user", compact_question());
	hist_add(E, hist, r, 0);
}

void session_forget_history(struct session *s)
{
	cJSON_Delete(s->hist);
	s->hist = NULL;
	s->hist_upto[0] = 0;
}

static cJSON *history(struct engine *E, struct session *s, const struct turn *t)
{
	msg_flush_session(E, s->id);
	if (!s->hist && !(s->hist = cJSON_CreateArray()))
		return NULL;
	struct hrows rows = {0};
	cJSON *out = cJSON_CreateArray(), *tail = cJSON_CreateArray();
	char compaction[ID_MAX] = ""; /* the compaction turn the rows now read belong to */
	store_message_list_turns(E->S, s->id, s->hist_upto, t->id, hist_row, &rows);
	for (int i = 0; i < rows.n; i++) {
		struct hrow *r = &rows.v[i];
		int ended = strcmp(r->turn_id, t->id) < 0;
		if (!strcmp(r->turn_id, compaction)) {
			if (ended)
				hist_pivot(E, s->hist, r);
		} else if (hist_add(E, ended ? s->hist : tail, r, !ended)) {
			snprintf(compaction, sizeof(compaction), "%s", r->turn_id);
		}
		if (ended)
			snprintf(s->hist_upto, sizeof(s->hist_upto), "%s", r->turn_id);
		free(r->id);
		free(r->role);
		free(r->turn_id);
		free(r->finish);
	}
	free(rows.v);
	/* the kept messages by reference (the request is encoded before out is freed) */
	for (cJSON *m = s->hist->child; m && out; m = m->next)
		cJSON_AddItemReferenceToArray(out, m);
	cJSON *m;
	while (out && (m = cJSON_DetachItemFromArray(tail, 0)))
		cJSON_AddItemToArray(out, m);
	cJSON_Delete(tail);
	return out;
}

struct schemas {
	const struct agent *a;
	const cJSON *tools; /* the prompt's tools on and off */
	cJSON *arr;
};

static void add_schema(void *arg, const struct tool_def *d)
{
	struct schemas *x = arg;
	if (topts_tool_usable(x->a, x->tools, d->name))
		cJSON_AddItemToArray(x->arr, tools_schema(d));
}

/* The tools a step offers: the agent's, with the prompt's turned on and off. */
static cJSON *tool_schemas(struct engine *E, const struct agent *a, const struct turn *t)
{
	struct schemas x = {a, t->tools_map, cJSON_CreateArray()};
	tools_each(&E->T, add_schema, &x);
	return x.arr;
}

/* ---- stream callbacks ---- */

static void on_text(void *arg, int reasoning, const char *s, size_t n)
{
	struct turn *t = arg;
	struct engine *E = t->s->E;
	struct msg *m = t->am;
	if (t->s->status == ST_RETRY)
		session_set_status(E, t->s, ST_BUSY);
	struct part *p = m->open[reasoning];
	if (!p) {
		p = m->open[reasoning] = part_add(E, m, reasoning ? P_REASONING : P_TEXT);
		if (!p)
			return;
		part_save(E, p);
	}
	part_append(E, p, s, n);
}

static void on_tool_call(void *arg, const char *id, const char *name, const char *args)
{
	struct turn *t = arg;
	struct engine *E = t->s->E;
	msg_close_open_parts(E, t->am);
	struct part *p = part_add(E, t->am, P_TOOL);
	if (!p)
		return;
	p->call_id = strdup(id && *id ? id : p->id);
	p->tool = strdup(name ? name : "");
	cJSON *in = cJSON_Parse(args && *args ? args : "{}");
	if (cJSON_IsObject(in)) {
		p->input = cJSON_PrintUnformatted(in);
	} else {
		p->input = strdup("{}");
		if (asprintf(&p->error, "the model sent arguments that are not a JSON object: %.200s",
			     args ? args : "") < 0)
			p->error = NULL;
	}
	cJSON_Delete(in);
	p->ts = TS_PENDING;
	part_save(E, p);
}

void step_finish_message(struct engine *E, struct turn *t, const char *finish,
			 const struct llm_usage *u)
{
	struct msg *m = t->am;
	msg_close_open_parts(E, m);
	struct part *sf = part_add(E, m, P_STEP_FINISH);
	if (sf) {
		sf->reason = strdup(finish);
		if (u)
			sf->tokens = *u;
		part_save(E, sf);
	}
	if (u)
		m->tokens = *u;
	free(m->finish);
	m->finish = strdup(finish);
	m->completed = now_ms();
	msg_save(E, m);
}

static int count_tools(const struct msg *m)
{
	int n = 0;
	for (struct part *p = m->parts; p; p = p->next)
		n += p->type == P_TOOL;
	return n;
}

static void run_tools(struct turn *t);
static void refuse_tools(struct turn *t, const char *why);

static void on_done(void *arg, const char *finish, const struct llm_usage *u)
{
	struct turn *t = arg;
	struct engine *E = t->s->E;
	t->stream = NULL;
	if (t->s->status == ST_RETRY)
		session_set_status(E, t->s, ST_BUSY);
	int ntools = count_tools(t->am);
	step_finish_message(E, t, ntools ? "tool-calls" : finish, u);
	compact_note_usage(t->s, u);
	if (!ntools) {
		turn_end(t, T_COMPLETED, NULL, NULL);
		return;
	}
	const struct agent *a = agents_find(&E->A, t->agent);
	if (a && t->steps >= a->max_steps) {
		char why[160];
		snprintf(why, sizeof(why), "step limit reached: agent %s allows %d steps per turn",
			 a->name, a->max_steps);
		refuse_tools(t, why);
		turn_end(t, T_FAILED, "UnknownError", why);
		return;
	}
	run_tools(t);
}

static void on_error(void *arg, const struct llm_error *le)
{
	struct turn *t = arg;
	t->stream = NULL;
	if (le->overflow && compact_on_overflow(t, le))
		return;
	step_fail(t, le->name ? le->name : "APIError", le->message, le->status, le->retryable);
}

void step_fail(struct turn *t, const char *name, const char *message, int status,
	       int retryable)
{
	struct engine *E = t->s->E;
	msg_close_open_parts(E, t->am);
	msg_set_error(t->am, name, message ? message : "error", status, retryable);
	free(t->am->finish);
	t->am->finish = strdup("error");
	t->am->completed = now_ms();
	msg_save(E, t->am);
	turn_end(t, T_FAILED, name, message);
}

static void on_retry(void *arg, int attempt, const char *message, int64_t next)
{
	struct turn *t = arg;
	struct session *s = t->s;
	s->retry_attempt = attempt;
	free(s->retry_msg);
	s->retry_msg = strdup(message ? message : "retrying");
	s->retry_next = next;
	s->last_activity = now_ms(); /* a retry is the child at work, for check_task */
	session_set_status(s->E, s, ST_RETRY);
}

const struct llm_sink step_sink = {
	.text = on_text, .tool_call = on_tool_call, .done = on_done, .error = on_error,
	.retry = on_retry,
};

/* ---- tools ---- */

static void toolruns_free(struct turn *t)
{
	struct engine *E = t->s->E;
	while (t->tools) {
		struct toolrun *r = t->tools;
		t->tools = r->next;
		toolrun_forget(E, r); /* a completion from now on is dropped */
		if (r->def)
			tools_release(&E->T, r->def);
		cJSON_Delete(r->input);
		free(r);
	}
}

static struct toolrun *toolrun_new(struct turn *t, struct part *p)
{
	struct engine *E = t->s->E;
	struct toolrun *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->t = t;
	r->p = p;
	r->input = cJSON_Parse(p->input);
	r->pub = (struct tool_call){
		.E = E, .session_id = t->s->id, .call_id = p->call_id, .tool = p->tool,
		.input = r->input, .turn_id = t->id, .agent = t->agent,
	};
	toolrun_track(E, r);
	struct toolrun **tail = &t->tools;
	while (*tail)
		tail = &(*tail)->next;
	*tail = r; /* calls run in the order the model made them */
	return r;
}

static int offered(const cJSON *names, const char *tool)
{
	const cJSON *n;
	cJSON_ArrayForEach(n, names)
		if (!strcmp(n->valuestring, tool))
			return 1;
	return 0;
}

/* Why a call cannot run, or NULL: its arguments, an unknown tool, or one its step did
 * not offer (the agent's tools, or those a provider request hook left). */
static const char *refusal(struct engine *E, struct turn *t, struct toolrun *r, char *buf,
			   size_t n)
{
	const struct agent *a = agents_find(&E->A, t->agent);
	if (r->p->error)
		return r->p->error; /* bad arguments, noted when the call arrived */
	if (!tools_find(&E->T, r->p->tool)) {
		snprintf(buf, n, "unknown tool \"%s\"", r->p->tool);
		return buf;
	}
	int state = topts_tool_state(t->tools_map, r->p->tool);
	if (state == 0) {
		snprintf(buf, n, "tool \"%s\" is turned off for this prompt (its \"tools\" say "
			 "false)", r->p->tool);
		return buf;
	}
	if (t->offered && !offered(t->offered, r->p->tool)) {
		snprintf(buf, n, "tool \"%s\" was not offered to the model in this step", r->p->tool);
		return buf;
	}
	if (!t->offered && a && state < 0 && !agent_allows(a, r->p->tool)) {
		snprintf(buf, n, "tool \"%s\" is not available to agent %s", r->p->tool, a->name);
		return buf;
	}
	return NULL;
}

static void run_tools(struct turn *t)
{
	struct engine *E = t->s->E;
	for (struct part *p = t->am->parts; p; p = p->next)
		if (p->type == P_TOOL && toolrun_new(t, p))
			t->tools_pending++;
	for (struct toolrun *r = t->tools, *next; r; r = next) {
		next = r->next; /* a synchronous failure below must not lose our place */
		char buf[256];
		const char *why = refusal(E, t, r, buf, sizeof(buf));
		if (!why && toolrun_hooks(r, HOOK_TOOL_BEFORE, buf, sizeof(buf)))
			why = buf;
		r->p->start = now_ms();
		if (why) {
			r->p->ts = TS_ERROR;
			if (r->p->error != why) {
				free(r->p->error);
				r->p->error = strdup(why);
			}
			toolrun_finish(r);
			continue;
		}
		r->def = tools_find(&E->T, r->p->tool);
		tools_hold(r->def); /* an unregister now leaves it in place until we let go */
		r->p->ts = TS_RUNNING;
		part_save(E, r->p);
		r->def->run(&r->pub, r->def->arg);
	}
}

static void refuse_tools(struct turn *t, const char *why)
{
	struct engine *E = t->s->E;
	for (struct part *p = t->am->parts; p; p = p->next) {
		if (p->type != P_TOOL)
			continue;
		p->ts = TS_ERROR;
		free(p->error);
		p->error = strdup(why);
		p->end = now_ms();
		part_save(E, p);
	}
}

void step_cancel(struct turn *t, const char *why)
{
	struct engine *E = t->s->E;
	if (t->stream) {
		llm_stream_cancel(t->stream);
		t->stream = NULL;
	}
	for (struct toolrun *r = t->tools; r; r = r->next) {
		if (r->finished)
			continue;
		if (r->def && r->def->cancel)
			r->def->cancel(&r->pub, r->def->arg);
		if (r->finished) /* its cancel ended the call with a result of its own */
			continue;
		r->finished = 1;
		r->p->ts = TS_ERROR;
		free(r->p->error);
		r->p->error = strdup(why);
		r->p->end = now_ms();
		/* after: an answer's completion of the call finds it ended */
		permission_call_ended(E, r->pub.id, why);
		part_save(E, r->p);
	}
	timer_cancel(&t->cont); /* after: a call a cancel ended armed it */
	toolruns_free(t);
	t->tools_pending = 0;
}

/* ---- the step ---- */

static cJSON *tool_names(const cJSON *tools)
{
	cJSON *names = cJSON_CreateArray();
	const cJSON *t;
	cJSON_ArrayForEach(t, tools)
		cJSON_AddItemToArray(names, cJSON_CreateString(jsonin_get(t, "name")));
	return names;
}

/* HOOK_PROVIDER_REQUEST: the callbacks change hr for this request. The tools it offers,
 * when they changed, are what this step's tool calls may use. */
static void request_hooks(struct turn *t, struct hook_request_run *hr)
{
	struct engine *E = t->s->E;
	cJSON_Delete(t->offered);
	t->offered = NULL;
	if (!hooks_any(E, HOOK_PROVIDER_REQUEST))
		return;
	struct hook_ctx c;
	hooks_ctx(t->s, t, &c);
	hooks_run(E, HOOK_PROVIDER_REQUEST, &c, &hr->pub, NULL, 0);
	if (hr->tools_changed)
		t->offered = tool_names(hr->tools);
}

/* The attachment kinds the turn's model does not take (the catalog): the history's
 * files of those kinds go to it as notes. */
static int files_refused(struct engine *E, const struct turn *t)
{
	return (uparts_model_takes(E, t->model, MEDIA_IMAGE) ? 0 : LLM_FILES_IMAGE) |
	       (uparts_model_takes(E, t->model, MEDIA_PDF) ? 0 : LLM_FILES_PDF);
}

/* The step's provider request (system: the agent's prompt, or a compaction's; the
 * prompt's own system prompt after it) with what the provider request hooks change. */
void step_request(struct turn *t, const char *system, cJSON *tools, const cJSON *msgs,
		  int64_t stall_ms, const struct llm_sink *sink)
{
	struct engine *E = t->s->E;
	const char *slash = strchr(t->model, '/');
	char provider[64];
	snprintf(provider, sizeof(provider), "%.*s", (int)(slash - t->model), t->model);
	struct hook_request_run hr = {.E = E, .tools = tools};
	hr.rq = (struct llm_request){
		.session_id = t->s->id, .provider = provider, .model = slash + 1,
		.system = system, .messages = msgs, .tools = hr.tools, .stall_ms = stall_ms,
		.files_refused = files_refused(E, t),
	};
	hr.pub.rq = &hr.rq;
	if (t->system)
		hook_request_append_system(&hr.pub, t->system);
	request_hooks(t, &hr);
	struct err e = {0};
	t->stream = llm_stream_start(E->M, &hr.rq, sink, t, &e);
	hook_request_free(&hr);
	if (!t->stream)
		turn_end(t, T_FAILED, "UnknownError", e.msg);
}

cJSON *step_open(struct turn *t)
{
	struct session *s = t->s;
	struct engine *E = s->E;
	msg_free(E, t->am); /* the previous step's message, saved already */
	t->steps++;
	t->am = msg_new(E, s, t, 1);
	if (!t->am) {
		turn_end(t, T_FAILED, "UnknownError", "out of memory");
		return NULL;
	}
	msg_save(E, t->am);
	struct part *p = part_add(E, t->am, P_STEP_START);
	if (p)
		part_save(E, p);
	cJSON *msgs = history(E, s, t);
	if (!msgs)
		turn_end(t, T_FAILED, "UnknownError", "out of memory building the history");
	return msgs;
}

/* The prompt's subtask parts are the first step: the task tool is called for each, as
 * if the model had asked, and the model answers once they are done. */
static void run_subtasks(struct turn *t)
{
	const cJSON *st;
	cJSON_ArrayForEach(st, t->subtasks) {
		cJSON *in = cJSON_CreateObject();
		cJSON_AddStringToObject(in, "description", jsonin_get(st, "description"));
		cJSON_AddStringToObject(in, "prompt", jsonin_get(st, "prompt"));
		cJSON_AddStringToObject(in, "subagent_type", jsonin_get(st, "agent"));
		char *args = cJSON_PrintUnformatted(in);
		char id[ID_MAX];
		id_new(id, "call");
		on_tool_call(t, id, "task", args ? args : "{}");
		free(args);
		cJSON_Delete(in);
	}	on_done(t, "tool-calls", NULL);
}

void step_begin(struct turn *t)
{
	struct session *s = t->s;
	struct engine *E = s->E;
	if (store_failure(E->S)) {
		/* the history is read from the store: while it cannot write (or is slow), what
		 * the last step wrote is not there yet. Wait; the sweeper sees the timer. */
		timer_arm(&t->cont, STORE_WAIT_MS);
		return;
	}
	if (t->compact) {
		compact_step(t);
		return;
	}
	const struct agent *a = agents_find(&E->A, t->agent);
	toolruns_free(t);
	if (!a) { /* a queued turn outlived its agent's definition (config changed) */
		char why[160];
		snprintf(why, sizeof(why), "agent \"%s\" is no longer configured", t->agent);
		turn_end(t, T_FAILED, "UnknownError", why);
		return;
	}
	cJSON *msgs = step_open(t);
	if (!msgs)
		return;
	if (t->steps == 1 && t->subtasks) {
		cJSON_Delete(msgs);
		run_subtasks(t);
		return;
	}
	step_request(t, a->prompt, tool_schemas(E, a, t), msgs, a->stall_ms, &step_sink);
	cJSON_Delete(msgs);
}
