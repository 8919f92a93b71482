/* The hook points (engine/hooks.h) on a real engine: each is called once from its place,
 * in the order a turn goes through them, with the context of the session it concerns
 * (a subagent's at depth 1); refusals stop a prompt before anything is written and fail
 * a tool call with the reason; an owner's callbacks go away, even from inside a run.
 * The changing points: a prompt's text, a provider request (system prompt, params and
 * headers as a real HTTP server receives them, tools hidden and added), a tool call's
 * input and result — each change stored, shown and seen by the model, and seen by the
 * callbacks after it at the same point. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "engine_int.h"
#include "mock.h"

#define FAST "{\"providers\":{\"scripted\":{\"pace_ms\":1}}}"

static const char *const names[HOOK_COUNT] = {
	"event", "prompt", "provider", "tool_before", "tool_after", "permission",
	"subagent_start", "subagent_end", "turn_end", "idle", "human_wait", "compact", "revert",
	"diff",
};

struct call {
	enum hook_point at;
	char session[ID_MAX], root[ID_MAX], parent[ID_MAX], turn[ID_MAX], agent[32], detail[64];
	int depth;
};

struct rec {
	struct call v[4096];
	int n;
	enum hook_point refuse_at; /* HOOK_COUNT: none */
	const char *refuse_tool;
};

static void detail_of(enum hook_point at, void *data, char *out, size_t n)
{
	const struct hook_tool *ht = data;
	const struct hook_subagent *hs = data;
	const struct hook_turn_end *he = data;
	const struct hook_prompt *hp = data;
	out[0] = 0;
	if (at == HOOK_TOOL_BEFORE || at == HOOK_TOOL_AFTER)
		snprintf(out, n, "%s%s", ht->tool, ht->output ? ":ok" : ht->error ? ":error" : "");
	else if (at == HOOK_SUBAGENT_START || at == HOOK_SUBAGENT_END)
		snprintf(out, n, "%s", hs->state ? hs->state : hs->agent);
	else if (at == HOOK_TURN_END)
		snprintf(out, n, "%s:%s", he->state, he->terminal_message_id[0] ? "terminal" : "-");
	else if (at == HOOK_PROMPT_SUBMIT)
		snprintf(out, n, "%s", hp->source);
}

/* One recorder per point (its slot says which), appending to the shared record. */
struct slot {
	struct rec *r;
	enum hook_point at;
};

static int record_at(void *arg, const struct hook_ctx *c, void *data, char *why, size_t n)
{
	struct slot *s = arg;
	struct rec *r = s->r;
	if (r->n < (int)(sizeof(r->v) / sizeof(r->v[0]))) {
		struct call *k = &r->v[r->n++];
		k->at = s->at;
		k->depth = c->depth;
		snprintf(k->session, sizeof(k->session), "%s", c->session_id);
		snprintf(k->root, sizeof(k->root), "%s", c->root_id ? c->root_id : "");
		snprintf(k->parent, sizeof(k->parent), "%s", c->parent_id ? c->parent_id : "");
		snprintf(k->turn, sizeof(k->turn), "%s", c->turn_id ? c->turn_id : "");
		snprintf(k->agent, sizeof(k->agent), "%s", c->agent ? c->agent : "");
		detail_of(s->at, data, k->detail, sizeof(k->detail));
	}
	if (s->at == r->refuse_at) {
		const struct hook_tool *ht = data;
		if (s->at != HOOK_TOOL_BEFORE || !strcmp(ht->tool, r->refuse_tool)) {
			snprintf(why, n, "no thanks from the test");
			return -1;
		}
	}
	return 0;
}

static struct slot slots[HOOK_COUNT];

static void record_everything(struct h *h, struct rec *r)
{
	memset(r, 0, sizeof(*r));
	r->refuse_at = HOOK_COUNT;
	for (int at = 0; at < HOOK_COUNT; at++) {
		slots[at] = (struct slot){r, (enum hook_point)at};
		assert_int_equal(hooks_add(h->E, (enum hook_point)at, "test", record_at, &slots[at]), 0);
	}
}

/* A fresh engine and session with a recorder at every point. */
static void start_recording(struct h *h, char *sid, struct rec *r)
{
	h_dir(h, FAST);
	h_start(h, 1);
	h_session(h, sid);
	record_everything(h, r);
}

static int count(struct rec *r, enum hook_point at, const char *session, int depth)
{
	int n = 0;
	for (int i = 0; i < r->n; i++)
		if (r->v[i].at == at && (!session || !strcmp(r->v[i].session, session)) &&
		    (depth < 0 || r->v[i].depth == depth))
			n++;
	return n;
}

static int first(struct rec *r, enum hook_point at, int depth)
{
	for (int i = 0; i < r->n; i++)
		if (r->v[i].at == at && (depth < 0 || r->v[i].depth == depth))
			return i;
	return -1;
}

static int last(struct rec *r, enum hook_point at, int depth)
{
	for (int i = r->n - 1; i >= 0; i--)
		if (r->v[i].at == at && (depth < 0 || r->v[i].depth == depth))
			return i;
	return -1;
}

static void every_point_is_called_from_its_place_with_its_context(void **state)
{
	static struct rec r;
	struct h h;
	char sid[ID_MAX];
	start_recording(&h, sid, &r);
	h_prompt(&h, sid, "task echo hi", "http", NULL);
	assert_true(h_until(&h, h_idle, sid, 10000));
	h_check_ledger(&h, sid);
	char *child = h_child(&h, sid);
	assert_non_null(child);
	/* the parent: one prompt, two model calls around the task tool, one turn end */
	assert_int_equal(count(&r, HOOK_PROMPT_SUBMIT, sid, 0), 1);
	assert_int_equal(count(&r, HOOK_PROVIDER_REQUEST, sid, 0), 2);
	assert_int_equal(count(&r, HOOK_TOOL_BEFORE, sid, 0), 1);
	assert_int_equal(count(&r, HOOK_TOOL_AFTER, sid, 0), 1);
	assert_int_equal(count(&r, HOOK_TURN_END, sid, 0), 1);
	assert_int_equal(count(&r, HOOK_SESSION_IDLE, sid, 0), 1);
	/* the child, at depth 1 under the parent: its own prompt (source task), the echo
	 * tool, its turn end; the subagent points in its context */
	assert_int_equal(count(&r, HOOK_PROMPT_SUBMIT, child, 1), 1);
	assert_string_equal(r.v[first(&r, HOOK_PROMPT_SUBMIT, 1)].detail, "task");
	assert_string_equal(r.v[first(&r, HOOK_PROMPT_SUBMIT, 1)].root, sid);
	assert_string_equal(r.v[first(&r, HOOK_PROMPT_SUBMIT, 1)].parent, sid);
	assert_string_equal(r.v[first(&r, HOOK_PROMPT_SUBMIT, 1)].agent, "general");
	assert_int_equal(count(&r, HOOK_PROVIDER_REQUEST, child, 1), 2);
	assert_int_equal(count(&r, HOOK_TOOL_AFTER, child, 1), 1);
	assert_string_equal(r.v[first(&r, HOOK_TOOL_AFTER, 1)].detail, "echo:ok");
	assert_int_equal(count(&r, HOOK_SUBAGENT_START, child, 1), 1);
	assert_int_equal(count(&r, HOOK_SUBAGENT_END, child, 1), 1);
	assert_string_equal(r.v[first(&r, HOOK_SUBAGENT_END, 1)].detail, "completed");
	assert_int_equal(count(&r, HOOK_TURN_END, child, 1), 1);
	assert_string_equal(r.v[first(&r, HOOK_TURN_END, 0)].detail, "completed:terminal");
	/* the order a turn goes through them */
	int order[] = {
		first(&r, HOOK_PROMPT_SUBMIT, 0), first(&r, HOOK_PROVIDER_REQUEST, 0),
		first(&r, HOOK_TOOL_BEFORE, 0), first(&r, HOOK_SUBAGENT_START, 1),
		first(&r, HOOK_TURN_END, 1), first(&r, HOOK_SUBAGENT_END, 1),
		first(&r, HOOK_TOOL_AFTER, 0), last(&r, HOOK_PROVIDER_REQUEST, 0),
		first(&r, HOOK_TURN_END, 0), last(&r, HOOK_SESSION_IDLE, 0),
	};
	for (size_t i = 1; i < sizeof(order) / sizeof(order[0]); i++) {
		if (order[i - 1] < 0 || order[i] <= order[i - 1])
			fail_msg("hook %zu (%s) came out of order", i, names[r.v[order[i]].at]);
	}
	/* turn ids where a turn applies; none for the idle transition */
	assert_true(r.v[first(&r, HOOK_PROVIDER_REQUEST, 0)].turn[0]);
	assert_string_equal(r.v[first(&r, HOOK_PROVIDER_REQUEST, 0)].turn,
			    r.v[first(&r, HOOK_TURN_END, 0)].turn);
	assert_false(r.v[last(&r, HOOK_SESSION_IDLE, 0)].turn[0]);
	/* every event, with the child's placed under its root */
	assert_true(count(&r, HOOK_EVENT, NULL, -1) > 20);
	assert_true(count(&r, HOOK_EVENT, child, 1) > 3);
	assert_string_equal(r.v[first(&r, HOOK_EVENT, 1)].root, sid);
	assert_int_equal(count(&r, HOOK_PERMISSION_ASK, NULL, -1), 0);
	free(child);
	h_stop(&h);
}

static void a_refusing_prompt_hook_stops_the_prompt_before_anything_is_written(void **state)
{
	static struct rec r;
	struct h h;
	char sid[ID_MAX];
	start_recording(&h, sid, &r);
	r.refuse_at = HOOK_PROMPT_SUBMIT;
	struct err e = {0};
	struct prompt p = {.session_id = sid, .text = "hello", .source = "http"};
	assert_int_equal(engine_prompt(h.E, &p, NULL, NULL, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "no thanks from the test"));
	h_spin(&h, 150);
	assert_int_equal(h_messages(&h, NULL, NULL), 0);
	assert_int_equal(h_turns(&h, NULL, NULL), 0);
	assert_int_equal(count(&r, HOOK_PROVIDER_REQUEST, NULL, -1), 0);
	h_stop(&h);
}

static void a_refusing_tool_hook_fails_the_call_with_its_reason(void **state)
{
	static struct rec r;
	struct h h;
	char sid[ID_MAX];
	start_recording(&h, sid, &r);
	r.refuse_at = HOOK_TOOL_BEFORE;
	r.refuse_tool = "echo";
	h_prompt(&h, sid, "echo hi", "http", NULL);
	assert_true(h_until(&h, h_idle, sid, 5000));
	h_check_ledger(&h, sid);
	char *err = h_tool_error(&h, sid); /* of its one tool call */
	assert_non_null(err);
	assert_non_null(strstr(err, "no thanks from the test"));
	free(err);
	assert_string_equal(r.v[first(&r, HOOK_TOOL_AFTER, 0)].detail, "echo:error");
	h_stop(&h);
}

/* A callback that removes its owner while it runs: later points find nothing, and
 * nothing freed is touched (ASan). */
static int remove_self(void *arg, const struct hook_ctx *c, void *data, char *why, size_t n)
{
	struct engine *E = arg;
	static int calls;
	calls++;
	hooks_remove_owner(E, "once");
	return calls;
}

static int count_calls(void *arg, const struct hook_ctx *c, void *data, char *why, size_t n)
{
	(*(int *)arg)++;
	return 0;
}

static void an_owner_removed_from_inside_a_run_is_gone_everywhere(void **state)
{
	struct h h;
	h_dir(&h, FAST);
	h_start(&h, 1);
	char sid[ID_MAX];
	h_session(&h, sid);
	int others = 0, events = 0;
	assert_int_equal(hooks_add(h.E, HOOK_PROVIDER_REQUEST, "once", remove_self, h.E), 0);
	assert_int_equal(hooks_add(h.E, HOOK_PROVIDER_REQUEST, "once", count_calls, &others), 0);
	assert_int_equal(hooks_add(h.E, HOOK_EVENT, "once", count_calls, &events), 0);
	h_prompt(&h, sid, "echo hi", "http", NULL);
	assert_true(h_until(&h, h_idle, sid, 5000));
	assert_int_equal(others, 0); /* removed by the first callback of the same run */
	int seen = events;
	h_prompt(&h, sid, "hello", "http", NULL);
	assert_true(h_until(&h, h_idle, sid, 5000));
	assert_int_equal(events, seen); /* the event observer went with its owner */
	h_stop(&h);
}


/* ---- the changing points ---- */

/* o[k], which must be a string. */
static const char *field(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItem(o, k);
	if (!cJSON_IsString(v))
		fail_msg("\"%s\" is missing or not a string", k);
	return v->valuestring;
}

/* Waits until the session's tree is idle and what it did is on disk. */
static void settle(struct h *h, const char *sid)
{
	assert_true(h_until(h, h_idle, (void *)sid, 20000));
	assert_int_equal(engine_flush(h->E), 0);
}

/* Two prompt callbacks: the first replaces the text (an empty one is refused), the
 * second sees the first's text and builds on it. */
static int rewrite_prompt(void *arg, const struct hook_ctx *c, void *data, char *why, size_t n)
{
	struct hook_prompt *hp = data;
	assert_int_equal(hook_prompt_set_text(hp, ""), -1);
	assert_int_equal(hook_prompt_set_text(hp, NULL), -1);
	return hook_prompt_set_text(hp, "echo first");
}

static int extend_prompt(void *arg, const struct hook_ctx *c, void *data, char *why, size_t n)
{
	struct hook_prompt *hp = data;
	char text[128];
	snprintf(text, sizeof(text), "%s and second", hp->text);
	return hook_prompt_set_text(hp, text);
}

static void a_prompt_hook_rewrites_what_is_stored_and_what_the_model_sees(void **state)
{
	struct h h;
	h_dir(&h, FAST);
	h_start(&h, 1);
	char sid[ID_MAX], turn[ID_MAX];
	h_session(&h, sid);
	assert_int_equal(hooks_add(h.E, HOOK_PROMPT_SUBMIT, "t", rewrite_prompt, NULL), 0);
	assert_int_equal(hooks_add(h.E, HOOK_PROMPT_SUBMIT, "t", extend_prompt, NULL), 0);
	h_prompt(&h, sid, "hello", "http", turn);
	settle(&h, sid);
	char *prompt = h_turn_prompt(&h, turn);
	assert_string_equal(prompt, "echo first and second");
	/* the model answered the new text: the scripted echo rule called the tool with it */
	char *out = h_tool_output(&h, turn, "echo");
	assert_string_equal(out, "first and second");
	free(prompt);
	free(out);
	h_stop(&h);
}

/* A provider request changed by two callbacks, as mockllm receives it. */
struct req_seen {
	int calls;
	char system[512];
	int refusals; /* the changes that must be refused, and were */
};

static int change_request(void *arg, const struct hook_ctx *c, void *data, char *why, size_t n)
{
	struct req_seen *r = arg;
	struct hook_request *hr = data;
	int refused = (hook_request_set_param(hr, "model", cJSON_CreateString("other")) == -1) +
		      (hook_request_set_param(hr, "stream", cJSON_CreateFalse()) == -1) +
		      (hook_request_set_param(hr, "system", cJSON_CreateString("x")) == -1) +
		      (hook_request_set_header(hr, "Authorization", "Bearer stolen") == -1) +
		      (hook_request_set_header(hr, "X-Bad\r\nInjected", "v") == -1) +
		      (hook_request_set_header(hr, "X-Ok", "a\r\nInjected: 1") == -1) +
		      (hook_request_set_header(hr, "Host", "evil") == -1) +
		      (hook_request_hide_tool(hr, "no_such_tool") == -1) +
		      (hook_request_add_tool(hr, "no_such_tool") == -1) +
		      (hook_request_append_system(hr, "") == -1);
	r->refusals += refused == 10;
	assert_int_equal(hook_request_append_system(hr, "Plugin rules."), 0);
	assert_int_equal(hook_request_set_param(hr, "temperature", cJSON_CreateNumber(0.25)), 0);
	assert_int_equal(hook_request_set_param(hr, "user", cJSON_CreateString("plugin-user")), 0);
	assert_int_equal(hook_request_set_header(hr, "X-Plugin-Trace", "t1"), 0);
	assert_int_equal(hook_request_set_header(hr, "X-Configured", "from the hook"), 0);
	assert_int_equal(hook_request_hide_tool(hr, "sleep"), 0);
	return 0;
}

static int see_request(void *arg, const struct hook_ctx *c, void *data, char *why, size_t n)
{
	struct req_seen *r = arg;
	const struct llm_request *rq = ((struct hook_request *)data)->rq;
	r->calls++;
	snprintf(r->system, sizeof(r->system), "%s", rq->system);
	assert_int_equal(cJSON_GetObjectItem(rq->params, "temperature")->valuedouble * 100, 25);
	assert_string_equal(field(rq->headers, "x-plugin-trace"), "t1");
	const cJSON *t;
	cJSON_ArrayForEach(t, rq->tools)
		assert_string_not_equal(field(t, "name"), "sleep");
	return 0;
}

static int has_tool(const cJSON *tools, const char *name, int anthropic)
{
	const cJSON *t;
	cJSON_ArrayForEach(t, tools) {
		const cJSON *o = anthropic ? t : cJSON_GetObjectItem(t, "function");
		if (!strcmp(field(o, "name"), name))
			return 1;
	}
	return 0;
}

/* What the provider got: the appended system prompt, the params over the configured
 * options, the extra and replaced headers beside the provider's own, and the tools —
 * on the retry of a failed first attempt, so on every attempt. */
static void check_received(const char *model, int anthropic, const char *system)
{
	cJSON *stats = mock_stats();
	const cJSON *n = cJSON_GetObjectItem(cJSON_GetObjectItem(stats, "by_model"), model);
	assert_int_equal(n ? n->valueint : 0, 2); /* the 500, and the retry checked here */
	cJSON_Delete(stats);
	cJSON *last = mock_last_request(model);
	assert_non_null(last);
	const cJSON *hd = cJSON_GetObjectItem(last, "headers");
	const cJSON *body = cJSON_GetObjectItem(last, "body");
	assert_string_equal(field(hd, "x-plugin-trace"), "t1");
	assert_string_equal(field(hd, "x-configured"), "from the hook");
	assert_string_equal(field(hd, anthropic ? "x-api-key" : "authorization"),
			    anthropic ? "ak-test-secret-0002" : "Bearer sk-test-secret-0001");
	assert_int_equal(cJSON_GetObjectItem(body, "temperature")->valuedouble * 100, 25);
	assert_int_equal(cJSON_GetObjectItem(body, "top_p")->valuedouble * 100, 50);
	assert_string_equal(field(body, "user"), "plugin-user");
	assert_string_equal(field(body, "model"), model);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(body, "stream")));
	const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(body, "messages"), 0);
	assert_string_equal(anthropic ? field(body, "system") : field(first, "content"), system);
	const cJSON *tools = cJSON_GetObjectItem(body, "tools");
	assert_true(has_tool(tools, "echo", anthropic));
	assert_false(has_tool(tools, "sleep", anthropic));
	cJSON_Delete(last);
}

#define MOCK_CFG(provider)                                                                  \
	"{\"retry\":{\"base_ms\":10,\"max\":2},\"providers\":{\"" provider "\":{\"options\":" \
	"{\"temperature\":0.9,\"top_p\":0.5},\"headers\":{\"X-Configured\":\"from config\"}}}}"

static void a_provider_request_hook_changes_what_the_provider_receives(void **state)
{
	static const char *const models[] = {"openai/flaky@hooks-o", "anthropic/flaky@hooks-a"};
	static const char *const cfgs[] = {MOCK_CFG("openai"), MOCK_CFG("anthropic")};
	for (int i = 0; i < 2; i++) {
		struct h h;
		struct req_seen r = {0};
		h_dir(&h, cfgs[i]);
		h.openai_base = mock_openai_base;
		h.anthropic_base = mock_anthropic_base;
		h_start(&h, 1);
		assert_int_equal(hooks_add(h.E, HOOK_PROVIDER_REQUEST, "t", change_request, &r), 0);
		assert_int_equal(hooks_add(h.E, HOOK_PROVIDER_REQUEST, "t", see_request, &r), 0);
		char sid[ID_MAX], turn[ID_MAX];
		h_session(&h, sid);
		h_prompt_model(&h, sid, "hi", models[i], turn);
		settle(&h, sid);
		char *st = h_turn_state(&h, turn);
		assert_string_equal(st, "completed");
		free(st);
		assert_int_equal(r.calls, 1);
		assert_int_equal(r.refusals, 1);
		const struct agent *a = agents_find(engine_agents(h.E), DEFAULT_AGENT);
		char want[512];
		snprintf(want, sizeof(want), "%s\n\nPlugin rules.", a->prompt);
		assert_string_equal(r.system, want);
		check_received(strchr(models[i], '/') + 1, i, want);
		h_stop(&h);
	}
}

/* A tool the agent does not list runs when a request offered it; one a request hid
 * fails, naming why, although the agent lists it. */
struct tool_offer {
	const char *add, *hide;
};

static int offer_tools(void *arg, const struct hook_ctx *c, void *data, char *why, size_t n)
{
	struct tool_offer *o = arg;
	if (o->add)
		assert_int_equal(hook_request_add_tool(data, o->add), 0);
	if (o->add) /* twice: still offered once */
		assert_int_equal(hook_request_add_tool(data, o->add), 0);
	if (o->hide)
		assert_int_equal(hook_request_hide_tool(data, o->hide), 0);
	return 0;
}

static void narrow_prompt(struct h *h, const char *sid, const char *text, char *turn)
{
	struct err e = {0};
	struct prompt_result res;
	struct prompt p = {.session_id = sid, .text = text, .source = "http", .agent = "narrow"};
	if (engine_prompt(h->E, &p, &res, NULL, &e))
		fail_msg("prompt: %s", e.msg);
	strcpy(turn, res.turn_id);
	settle(h, sid);
}

static void a_tool_offered_by_a_request_hook_runs_and_a_hidden_one_does_not(void **state)
{
	struct h h;
	h_dir(&h, "{\"providers\":{\"scripted\":{\"pace_ms\":1}},"
		  "\"agent\":{\"narrow\":{\"tools\":[\"echo\"]}}}");
	h_start(&h, 1);
	struct tool_offer o = {0};
	assert_int_equal(hooks_add(h.E, HOOK_PROVIDER_REQUEST, "t", offer_tools, &o), 0);
	char sid[ID_MAX], t1[ID_MAX], t2[ID_MAX], t3[ID_MAX];
	h_session(&h, sid);
	narrow_prompt(&h, sid, "sleep 5", t1); /* the agent does not list sleep */
	char *err = h_tool_error(&h, t1);
	assert_non_null(strstr(err, "not available to agent narrow"));
	free(err);
	o.add = "sleep";
	narrow_prompt(&h, sid, "sleep 5", t2);
	assert_int_equal(h_tool_calls(&h, t2, "sleep", "completed"), 1);
	o = (struct tool_offer){.hide = "echo"};
	narrow_prompt(&h, sid, "echo hi", t3);
	assert_int_equal(h_tool_calls(&h, t3, "echo", "error"), 1);
	err = h_tool_error(&h, t3);
	assert_non_null(strstr(err, "tool \"echo\" was not offered"));
	free(err);
	h_stop(&h);
}

/* Tool callbacks: the input rewritten before the tool runs, the result after it ran,
 * each seen by the next callback; a change at the wrong point is refused. */
static int rewrite_input(void *arg, const struct hook_ctx *c, void *data, char *why, size_t n)
{
	struct hook_tool *ht = data;
	assert_int_equal(hook_tool_set_output(ht, "too early"), -1);
	assert_int_equal(hook_tool_set_input(ht, cJSON_CreateString("not an object")), -1);
	const char *text = field(ht->input, "text");
	if (!strcmp(text, "secret"))
		return 0; /* this one keeps its input, and its result is rewritten below */
	cJSON *in = cJSON_CreateObject();
	cJSON_AddStringToObject(in, "text", "rewritten");
	return hook_tool_set_input(ht, in);
}

static int check_input(void *arg, const struct hook_ctx *c, void *data, char *why, size_t n)
{
	struct hook_tool *ht = data;
	const char *text = field(ht->input, "text");
	assert_true(!strcmp(text, "rewritten") || !strcmp(text, "secret"));
	return 0;
}

static int rewrite_result(void *arg, const struct hook_ctx *c, void *data, char *why, size_t n)
{
	struct hook_tool *ht = data;
	assert_int_equal(hook_tool_set_input(ht, cJSON_CreateObject()), -1);
	assert_int_equal(hook_tool_set_error(ht, ""), -1);
	if (!strcmp(ht->output, "secret"))
		return hook_tool_set_error(ht, "redacted by policy");
	char out[128];
	snprintf(out, sizeof(out), "after: %s", ht->output);
	return hook_tool_set_output(ht, out);
}

static int check_result(void *arg, const struct hook_ctx *c, void *data, char *why, size_t n)
{
	struct hook_tool *ht = data;
	assert_true(ht->output ? !strcmp(ht->output, "after: rewritten") && !ht->error
			       : !strcmp(ht->error, "redacted by policy"));
	return 0;
}

/* No event ever showed text a tool hook replaced: the hooks ran before the part was
 * saved and announced. */
static int events_mentioning(struct h *h, const char *text)
{
	int n = 0;
	for (int i = 0; i < h->nevents; i++)
		n += strstr(h->events[i], text) != NULL;
	return n;
}

static void tool_hooks_rewrite_input_and_result_before_they_are_stored(void **state)
{
	struct h h;
	h_dir(&h, FAST);
	h_start(&h, 1);
	assert_int_equal(hooks_add(h.E, HOOK_TOOL_BEFORE, "t", rewrite_input, NULL), 0);
	assert_int_equal(hooks_add(h.E, HOOK_TOOL_BEFORE, "t", check_input, NULL), 0);
	assert_int_equal(hooks_add(h.E, HOOK_TOOL_AFTER, "t", rewrite_result, NULL), 0);
	assert_int_equal(hooks_add(h.E, HOOK_TOOL_AFTER, "t", check_result, NULL), 0);
	char sid[ID_MAX], t1[ID_MAX], t2[ID_MAX];
	h_session(&h, sid);
	h_prompt(&h, sid, "echo hi", "http", t1);
	settle(&h, sid);
	char *in = h_tool_input(&h, t1, "echo"), *out = h_tool_output(&h, t1, "echo");
	assert_string_equal(in, "{\"text\":\"rewritten\"}");
	assert_string_equal(out, "after: rewritten");
	char *said = h_last_text(&h, t1);
	assert_string_equal(said, "The echo tool returned: after: rewritten");
	h_prompt(&h, sid, "echo secret", "http", t2);
	settle(&h, sid);
	assert_int_equal(h_tool_calls(&h, t2, "echo", "error"), 1);
	char *err = h_tool_error(&h, t2);
	assert_string_equal(err, "redacted by policy");
	assert_int_equal(events_mentioning(&h, "\"output\":\"rewritten\""), 0);
	assert_int_equal(events_mentioning(&h, "\"output\":\"secret\""), 0);
	free(in);
	free(out);
	free(said);
	free(err);
	h_stop(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_point_is_called_from_its_place_with_its_context),
		cmocka_unit_test(a_refusing_prompt_hook_stops_the_prompt_before_anything_is_written),
		cmocka_unit_test(a_refusing_tool_hook_fails_the_call_with_its_reason),
		cmocka_unit_test(an_owner_removed_from_inside_a_run_is_gone_everywhere),
		cmocka_unit_test(a_prompt_hook_rewrites_what_is_stored_and_what_the_model_sees),
		cmocka_unit_test(a_provider_request_hook_changes_what_the_provider_receives),
		cmocka_unit_test(a_tool_offered_by_a_request_hook_runs_and_a_hidden_one_does_not),
		cmocka_unit_test(tool_hooks_rewrite_input_and_result_before_they_are_stored),
	};
	return cmocka_run_group_tests(tests, mock_start, mock_stop);
}
