/* The hook points (engine/hooks.h) on a real engine: each is called once from its place,
 * in the order a turn goes through them, with the context of the session it concerns
 * (a subagent's at depth 1); refusals stop a prompt before anything is written and fail
 * a tool call with the reason; an owner's callbacks go away, even from inside a run. */
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

#define FAST "{\"providers\":{\"scripted\":{\"pace_ms\":1}}}"

static const char *const names[HOOK_COUNT] = {
	"event", "prompt", "provider", "tool_before", "tool_after", "permission",
	"subagent_start", "subagent_end", "turn_end", "idle",
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_point_is_called_from_its_place_with_its_context),
		cmocka_unit_test(a_refusing_prompt_hook_stops_the_prompt_before_anything_is_written),
		cmocka_unit_test(a_refusing_tool_hook_fails_the_call_with_its_reason),
		cmocka_unit_test(an_owner_removed_from_inside_a_run_is_gone_everywhere),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
