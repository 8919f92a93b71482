/* Subagents: every child ends and its parent always gets a result — on success, child
 * provider error, stall, abort, time budget, depth limit, and through a grandchild; a
 * root abort ends the whole tree; background tasks wake the parent once, as its own
 * turn; check_task reports progress; the sweeper fails a turn that is busy with nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "engine_int.h"
#include "llm.h"
#include "harness.h"
#include "task.h"

#define CFG(extra) "{\"providers\":{\"scripted\":{\"pace_ms\":1}},\"retry\":{\"base_ms\":10}" extra "}"

/* Runs prompt in a new session until the whole tree is idle; returns the parent's final
 * text (malloc'd). */
static char *run_tree(struct h *h, char *sid, const char *prompt)
{
	h_session(h, sid);
	h_prompt(h, sid, prompt, "http", NULL);
	assert_true(h_until(h, h_idle, sid, 20000));
	engine_flush(h->E);
	return h_last_text(h, sid);
}

/* Nothing in the database is left busy or unfinished. */
static void check_all_ended(struct h *h)
{
	engine_flush(h->E);
	assert_int_equal(h_turns(h, NULL, "queued"), 0);
	assert_int_equal(h_turns(h, NULL, "running"), 0);
	assert_int_equal(h_unfinished(h, NULL), 0);
	assert_int_equal(h_tool_calls(h, NULL, NULL, "pending"), 0);
	assert_int_equal(h_tool_calls(h, NULL, NULL, "running"), 0);
	assert_int_equal(engine_running(h->E), 0);
}

/* The result of the parent's task call (its only tool call): output, or error. */
static char *task_output(struct h *h, const char *sid)
{
	engine_flush(h->E);
	char *out = h_tool_output(h, sid, "task");
	return out ? out : h_tool_error(h, sid);
}

static void child_result_comes_back_to_the_parent(void **state)
{
	struct h h;
	h_dir(&h, CFG(""));
	h_start(&h, 1);
	char sid[ID_MAX];
	char *final = run_tree(&h, sid, "task echo from the child");
	assert_string_equal(final, "The subagent reported: The echo tool returned: from the child");
	free(final);
	/* the child is a real session with parentID and the spawning call recorded */
	assert_int_equal(h_children(&h, sid), 1);
	char *child = h_child(&h, sid), *call = h_spawned_by(&h, child);
	assert_int_equal(h_depth(&h, child), 1);
	assert_non_null(call);
	free(call);
	free(child);
	char *meta = h_task_session(&h, sid);
	assert_non_null(meta);
	char *parent = h_parent(&h, meta);
	assert_string_equal(parent, sid);
	free(parent);
	/* child events carry the tree envelope */
	char needle[128];
	snprintf(needle, sizeof(needle), "\"rootID\":\"%s\",\"parentID\":\"%s\"", sid, sid);
	int enveloped = 0;
	for (int i = 0; i < h.nevents; i++)
		enveloped += strstr(h.events[i], needle) && strstr(h.events[i], "\"parentToolCallID\"") &&
			     strstr(h.events[i], "\"depth\":1");
	assert_true(enveloped > 5);
	free(meta);
	check_all_ended(&h);
	h_stop(&h);
}

static void failing_children_still_answer_their_parent(void **state)
{
	struct h h;
	h_dir(&h, CFG(",\"stall_timeout_ms\":150,\"task\":{\"budget_ms\":1000}"));
	h_start(&h, 1);
	struct {
		const char *prompt, *expect;
	} cases[] = {
		{"task fail", "subagent"},            /* provider error */
		{"task fail", "scripted failure"},
		{"task stall", "stalled: LLM stream stalled"},
		{"task sleep 60000", "exceeded its time budget of 1000 ms"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char sid[ID_MAX];
		char *final = run_tree(&h, sid, cases[i].prompt);
		char *out = task_output(&h, sid);
		if (!out || !strstr(out, cases[i].expect))
			fail_msg("%s: tool result \"%s\" lacks \"%s\"", cases[i].prompt, out, cases[i].expect);
		/* the parent's turn went on and answered with the child's failure */
		assert_non_null(strstr(final, "The subagent reported: "));
		assert_int_equal(h_turns(&h, sid, "completed"), 1);
		free(final);
		free(out);
	}
	/* the stalled child kept its partial output and says so */
	assert_int_equal(h_tool_errors_like(&h, "%Partial output:%I will stop%"), 1);
	check_all_ended(&h);
	h_stop(&h);
}

static int child_tool_running(struct h *h, void *parent)
{
	char *child = h_child(h, parent); /* the only one */
	int n = child ? h_tool_calls(h, child, NULL, "running") : 0;
	free(child);
	return n == 1;
}

/* A new session sid whose child runs its sleep tool; returns the child's id (free it). */
static char *child_sleeping(struct h *h, char *sid)
{
	h_session(h, sid);
	h_prompt(h, sid, "task sleep 60000", "http", NULL);
	engine_flush(h->E);
	assert_true(h_until(h, child_tool_running, sid, 5000));
	return h_child(h, sid);
}

static void aborting_a_child_gives_the_parent_an_error_result(void **state)
{
	struct h h;
	h_dir(&h, CFG(""));
	h_start(&h, 1);
	char sid[ID_MAX];
	char *child = child_sleeping(&h, sid);
	/* check_task while it runs */
	struct jw w;
	struct err e = {0};
	jw_init(&w);
	assert_int_equal(task_json(h.E, child, &w, &e), 0);
	assert_non_null(strstr(w.buf, "\"status\":\"running\""));
	assert_non_null(strstr(w.buf, "\"lastToolCalls\":[{\"tool\":\"sleep\",\"status\":\"running\""));
	assert_non_null(strstr(w.buf, "\"stallDetected\":false"));
	jw_free(&w);
	assert_int_equal(engine_abort(h.E, child, &e), 0);
	assert_true(h_until(&h, h_idle, sid, 5000));
	char *out = task_output(&h, sid);
	assert_non_null(strstr(out, "cancelled"));
	jw_init(&w);
	assert_int_equal(task_json(h.E, child, &w, &e), 0);
	assert_non_null(strstr(w.buf, "\"status\":\"cancelled\""));
	assert_non_null(strstr(w.buf, "\"endedAt\""));
	jw_free(&w);
	assert_int_equal(h_turns(&h, sid, "completed"), 1);
	free(out);
	free(child);
	check_all_ended(&h);
	h_stop(&h);
}

/* check_task of a child as JSON (asserts it is known). */
static cJSON *check_task(struct h *h, const char *child)
{
	struct jw w;
	struct err e = {0};
	jw_init(&w);
	assert_int_equal(task_json(h->E, child, &w, &e), 0);
	cJSON *j = cJSON_Parse(w.buf);
	jw_free(&w);
	assert_non_null(j);
	return j;
}

static int64_t num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	assert_true(cJSON_IsNumber(v));
	return (int64_t)v->valuedouble;
}

static void check_task_keeps_its_report_after_the_parent_is_deleted(void **state)
{
	struct h h;
	h_dir(&h, CFG(""));
	h_start(&h, 1);
	char sid[ID_MAX];
	char *child = child_sleeping(&h, sid);
	cJSON *before = check_task(&h, child);
	int64_t active = num(before, "lastActivity");
	cJSON_Delete(before);
	struct err e = {0};
	assert_int_equal(engine_session_delete(h.E, sid, &e), 0); /* the child goes with it */
	assert_int_not_equal(engine_session_exists(h.E, child, &e), 0);
	cJSON *j = check_task(&h, child);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "status")), "cancelled");
	const cJSON *calls = cJSON_GetObjectItem(j, "lastToolCalls");
	assert_int_equal(cJSON_GetArraySize(calls), 1);
	const cJSON *sleep = cJSON_GetArrayItem(calls, 0);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(sleep, "tool")), "sleep");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(sleep, "status")), "error");
	assert_true(num(j, "lastActivity") >= active); /* its own, not the start's */
	assert_true(num(j, "lastActivity") >= num(j, "startedAt"));
	assert_true(num(j, "endedAt") >= num(j, "lastActivity"));
	cJSON_Delete(j);
	free(child);
	h_stop(&h);
}

/* The child's second provider attempt (after the first stalled and its backoff) runs. */
static int second_attempt_started(struct h *h, void *arg)
{
	struct llm_stats st;
	for (int i = 0; llm_stats(h->E->M, i, &st) == 0; i++)
		if (!strcmp(st.provider, "scripted"))
			return st.requests >= 3; /* the parent's step, the child's two attempts */
	return 0;
}

/* A retry was announced (only the child's model stalls here). */
static int retry_announced(struct h *h, void *arg)
{
	for (int i = 0; i < h->nevents; i++)
		if (!strcmp(h->types[i], "session.status") && strstr(h->events[i], "\"type\":\"retry\""))
			return 1;
	return 0;
}

/* The time a retry announced its attempt would start (session.status retry's next). */
static int64_t retry_next(struct h *h, const char *sid)
{
	for (int i = h->nevents - 1; i >= 0; i--) {
		if (strcmp(h->types[i], "session.status") || !strstr(h->events[i], sid) ||
		    !strstr(h->events[i], "\"retry\""))
			continue;
		cJSON *ev = cJSON_Parse(h->events[i]);
		const cJSON *st = cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "properties"), "status");
		int64_t next = num(st, "next");
		cJSON_Delete(ev);
		return next;
	}
	fail_msg("no retry announced for %s", sid);
	return 0;
}

static void check_task_last_activity_moves_when_a_retry_attempt_starts(void **state)
{
	struct h h;
	/* the child's model says nothing: its first attempt stalls, the retry waits 400 ms */
	h_dir(&h, "{\"stall_timeout_ms\":300,\"retry\":{\"base_ms\":400,\"stall_max\":1},"
		  "\"providers\":{\"scripted\":{\"pace_ms\":1,\"rules\":["
		  "{\"match\":\"quiet\",\"steps\":[{\"stall_after\":0}]},"
		  "{\"match\":\"spawn\",\"steps\":[{\"tools\":[{\"name\":\"task\",\"input\":"
		  "{\"prompt\":\"quiet\"}}]},{\"text\":\"done\"}]}]}}}");
	h_start(&h, 1);
	char sid[ID_MAX];
	h_session(&h, sid);
	h_prompt(&h, sid, "spawn", "http", NULL);
	assert_true(h_until(&h, retry_announced, sid, 10000));
	char *child = h_child(&h, sid);
	/* the retry is announced when the first attempt stalls, 300 ms after it began */
	cJSON *j = check_task(&h, child);
	if (num(j, "lastActivity") < num(j, "startedAt") + 250)
		fail_msg("lastActivity %lld did not move with the retry (started %lld)",
			 (long long)num(j, "lastActivity"), (long long)num(j, "startedAt"));
	cJSON_Delete(j);
	assert_true(h_until(&h, second_attempt_started, NULL, 10000));
	int64_t next = retry_next(&h, child);
	j = check_task(&h, child);
	/* the announcement came a backoff (400 ms +-20%) before the attempt: lastActivity is
	 * the attempt's start, and the new attempt has not been quiet for long */
	if (num(j, "lastActivity") < next - 50)
		fail_msg("lastActivity %lld is before the retry's attempt (due at %lld)",
			 (long long)num(j, "lastActivity"), (long long)next);
	assert_true(num(j, "stalledForMs") < 300);
	cJSON_Delete(j);
	free(child);
	assert_true(h_until(&h, h_idle, sid, 10000));
	check_all_ended(&h);
	h_stop(&h);
}

/* The state of sid's task tool part (its only one), as the API shows it. */
static cJSON *task_state(struct h *h, const char *sid)
{
	struct jw w;
	struct err e = {0};
	jw_init(&w);
	assert_int_equal(engine_messages_json(h->E, sid, 0, &w, &e), 0);
	cJSON *msgs = cJSON_Parse(w.buf), *m, *p, *found = NULL;
	jw_free(&w);
	cJSON_ArrayForEach(m, msgs) {
		cJSON_ArrayForEach(p, cJSON_GetObjectItem(m, "parts")) {
			const char *tool = cJSON_GetStringValue(cJSON_GetObjectItem(p, "tool"));
			if (tool && !strcmp(tool, "task") && !found)
				found = cJSON_Duplicate(cJSON_GetObjectItem(p, "state"), 1);
		}
	}
	cJSON_Delete(msgs);
	assert_non_null(found);
	return found;
}

static const char *sget(const cJSON *o, const char *k)
{
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
	if (!v)
		fail_msg("no string \"%s\" in %s", k, cJSON_PrintUnformatted(o));
	return v;
}

/* The one shape of an aborted child's result: the tool part ended in error; its error
 * reads "subagent ID (AGENT) STATE: REASON\n\nPartial output:\nTEXT"; its metadata has
 * the same status (STATE), reason and partialOutput, and names the child. */
static void aborted_shape(struct h *h, const char *sid, const char *status, const char *reason)
{
	char *child = h_child(h, sid);
	cJSON *st = task_state(h, sid);
	const cJSON *meta = cJSON_GetObjectItem(st, "metadata");
	assert_string_equal(sget(st, "status"), "error");
	assert_string_equal(sget(meta, "sessionId"), child);
	assert_string_equal(sget(meta, "status"), status);
	if (!strstr(sget(meta, "reason"), reason))
		fail_msg("reason \"%s\" lacks \"%s\"", sget(meta, "reason"), reason);
	const char *partial = sget(meta, "partialOutput");
	if (!strstr(partial, "Streaming a long answer."))
		fail_msg("partialOutput \"%s\"; error \"%s\"", partial, sget(st, "error"));
	char *want = NULL;
	assert_true(asprintf(&want, "subagent %s (general) %s: %s\n\nPartial output:\n%s", child,
			     status, sget(meta, "reason"), partial) > 0);
	assert_string_equal(sget(st, "error"), want);
	/* check_task says the same */
	cJSON *j = check_task(h, child);
	assert_string_equal(sget(j, "status"), status);
	assert_string_equal(sget(j, "error"), sget(meta, "reason"));
	cJSON_Delete(j);
	free(want);
	cJSON_Delete(st);
	free(child);
}

/* Deltas of session sid seen so far. */
static int deltas_of(struct h *h, const char *sid)
{
	int n = 0;
	for (int i = 0; sid && i < h->nevents; i++)
		n += !strcmp(h->types[i], "message.part.delta") && strstr(h->events[i], sid);
	return n;
}

static int child_has_said(struct h *h, void *parent)
{
	char *child = h_child(h, parent);
	int n = deltas_of(h, child);
	free(child);
	return n > 5;
}

static int grandchild_has_said(struct h *h, void *root)
{
	char *child = h_child(h, root);
	int n = child ? child_has_said(h, child) : 0;
	free(child);
	return n;
}

/* Starts "task long" (or prompt) in a new session and waits until the child has streamed. */
static void child_streams(struct h *h, char *sid, const char *prompt)
{
	h_session(h, sid);
	h_prompt(h, sid, prompt, "http", NULL);
	engine_flush(h->E);
	assert_true(h_until(h, child_has_said, sid, 10000));
}

static void an_aborted_childs_result_has_one_shape_whatever_aborted_it(void **state)
{
	struct h h;
	h_dir(&h, "{\"providers\":{\"scripted\":{\"pace_ms\":10}},\"task\":{\"budget_ms\":1500}}");
	h_start(&h, 1);
	struct err e = {0};
	char sid[ID_MAX], reason[128];
	/* the user aborts the child: the parent's turn goes on with the result */
	child_streams(&h, sid, "task long");
	char *child = h_child(&h, sid);
	assert_int_equal(engine_abort(h.E, child, &e), 0);
	assert_true(h_until(&h, h_idle, sid, 5000));
	engine_flush(h.E);
	snprintf(reason, sizeof(reason), "aborted (its session %s was aborted)", child);
	aborted_shape(&h, sid, "cancelled", reason);
	assert_int_equal(h_turns(&h, sid, "completed"), 1);
	free(child);
	/* the parent is aborted (whichever of the two the abort reaches first) */
	for (int i = 0; i < 4; i++) {
		child_streams(&h, sid, "task long");
		assert_int_equal(engine_abort(h.E, sid, &e), 0);
		assert_true(h_until(&h, h_idle, sid, 5000));
		engine_flush(h.E);
		snprintf(reason, sizeof(reason), "aborted with its parent session %s", sid);
		aborted_shape(&h, sid, "cancelled", reason);
		assert_int_equal(h_turns(&h, sid, "cancelled"), 1);
	}
	/* an ancestor's abort, two levels up */
	char root[ID_MAX];
	h_session(&h, root);
	h_prompt(&h, root, "task task long", "http", NULL);
	engine_flush(h.E);
	assert_true(h_until(&h, grandchild_has_said, root, 10000));
	char *mid = h_child(&h, root);
	assert_int_equal(engine_abort(h.E, root, &e), 0);
	assert_true(h_until(&h, h_idle, root, 5000));
	engine_flush(h.E);
	snprintf(reason, sizeof(reason), "aborted with its ancestor session %s", root);
	aborted_shape(&h, mid, "cancelled", reason);
	free(mid);
	/* its time budget runs out */
	child_streams(&h, sid, "task long");
	assert_true(h_until(&h, h_idle, sid, 10000));
	engine_flush(h.E);
	aborted_shape(&h, sid, "failed", "exceeded its time budget of 1500 ms");
	check_all_ended(&h);
	h_stop(&h);
}

static void grandchildren_work_and_the_depth_limit_is_a_clear_error(void **state)
{
	struct h h;
	h_dir(&h, CFG(""));
	h_start(&h, 1);
	char sid[ID_MAX];
	char *final = run_tree(&h, sid, "task task echo deep");
	assert_string_equal(final, "The subagent reported: The subagent reported: The echo tool "
			    "returned: deep");
	assert_int_equal(h_deepest(&h), 2);
	free(final);
	h_stop(&h);
	h_dir(&h, CFG(",\"task\":{\"max_depth\":1}"));
	h_start(&h, 1);
	final = run_tree(&h, sid, "task task echo deep");
	char *err = h_tool_error(&h, NULL); /* the child's task call, the one that failed */
	assert_non_null(strstr(err, "depth limit"));
	free(err);
	free(final);
	check_all_ended(&h);
	h_stop(&h);
}

static int grandchild_streaming(struct h *h, void *root)
{
	char *child = h_child(h, root), *grandchild = child ? h_child(h, child) : NULL;
	int running = grandchild && h_turns(h, grandchild, "running") >= 1;
	free(child);
	free(grandchild);
	return running && h_count(h, "message.part.delta", NULL) > 20;
}

static void aborting_the_root_ends_the_whole_tree(void **state)
{
	struct h h;
	h_dir(&h, "{\"providers\":{\"scripted\":{\"pace_ms\":20}}}");
	h_start(&h, 1);
	char sid[ID_MAX], other[ID_MAX];
	h_session(&h, sid);
	h_prompt(&h, sid, "task task long", "http", NULL);
	h_prompt(&h, sid, "bg long", "http", NULL); /* waits behind: aborted before it runs */
	h_session(&h, other);
	h_prompt(&h, other, "long", "http", NULL); /* another tree, left alone */
	engine_flush(h.E);
	assert_true(h_until(&h, grandchild_streaming, sid, 10000));
	struct err e = {0};
	int64_t t0 = mono_us();
	assert_int_equal(engine_abort(h.E, sid, &e), 0);
	assert_true(h_until(&h, h_idle, sid, 1000));
	assert_true(mono_us() - t0 < 1000000);
	engine_flush(h.E);
	assert_int_equal(h_tree_turns(&h, sid, NULL), h_tree_turns(&h, sid, "cancelled"));
	assert_int_equal(h_sessions(&h, sid), 3);
	/* each session of the tree announced its end */
	assert_int_equal(h_sessions(&h, sid), h_count(&h, "session.idle", NULL) - 0);
	assert_true(engine_tree_busy(h.E, other));
	assert_int_equal(engine_abort(h.E, other, &e), 0);
	check_all_ended(&h);
	h_stop(&h);
}

static int has_wake(struct h *h, void *sid)
{
	return h_turns_from(h, sid, "task", "completed") >= 1;
}

static void a_background_task_wakes_its_parent_once_as_its_own_turn(void **state)
{
	struct h h;
	h_dir(&h, CFG(""));
	h_start(&h, 1);
	char sid[ID_MAX];
	h_session(&h, sid);
	h_prompt(&h, sid, "bg sleep 300", "http", NULL);
	h_prompt(&h, sid, "sleep 200", "web", NULL); /* the parent is busy when the child ends */
	assert_true(h_until(&h, has_wake, sid, 10000));
	assert_true(h_until(&h, h_idle, sid, 10000));
	engine_flush(h.E);
	/* exactly one wake, queued behind the turn that was running, answered in its turn */
	assert_int_equal(h_turns_from(&h, sid, "task", NULL), 1);
	char *wake = h_last_turn(&h, sid, "task", NULL);
	char *key = h_turn_key(&h, wake);
	assert_non_null(strstr(key, "task:ses_"));
	free(key);
	assert_int_equal(h_turns(&h, sid, "completed"), 3);
	/* the only wake, with two other turns done, is the newest: it came after them all */
	char *last = h_last_turn(&h, sid, NULL, NULL);
	assert_string_equal(wake, last);
	free(last);
	char *text = h_turn_prompt(&h, wake);
	assert_non_null(strstr(text, "completed]"));
	assert_non_null(strstr(text, "Slept 300 ms."));
	free(text);
	free(wake);
	/* one terminal reply per user message, including the wake */
	assert_int_equal(h_unanswered(&h, sid), 0);
	check_all_ended(&h);
	h_stop(&h);
}

static int turn_failed(struct h *h, void *sid)
{
	return h_turns(h, sid, "failed") == 1;
}

static void the_sweeper_fails_a_turn_busy_with_nothing(void **state)
{
	struct h h;
	h_dir(&h, CFG(",\"stall_timeout_ms\":600000"));
	h_start(&h, 1);
	char sid[ID_MAX];
	h_session(&h, sid);
	h_prompt(&h, sid, "stall", "http", NULL);
	h_spin(&h, 100);
	struct session *s = session_get(h.E, sid);
	assert_non_null(s->cur);
	assert_non_null(s->cur->stream);
	/* simulate the bug this guards against: the request vanishes without an end */
	llm_stream_cancel(s->cur->stream);
	s->cur->stream = NULL;
	assert_true(h_until(&h, turn_failed, sid, 5000));
	assert_true(h_until(&h, h_idle, sid, 1000));
	char *turn = h_last_turn(&h, sid, NULL, NULL); /* its only turn */
	char *err = h_turn_error(&h, turn);
	assert_non_null(strstr(err, "busy with nothing running"));
	free(err);
	free(turn);
	check_all_ended(&h);
	h_stop(&h);
}

static void running_children_are_limited_per_session(void **state)
{
	struct h h;
	/* one step that asks for two subagents at once, with room for one */
	h_dir(&h, "{\"providers\":{\"scripted\":{\"pace_ms\":1,\"rules\":["
		  "{\"match\":\"twice\",\"steps\":[{\"text\":\"Two.\",\"tools\":["
		  "{\"name\":\"task\",\"input\":{\"prompt\":\"sleep 100\"}},"
		  "{\"name\":\"task\",\"input\":{\"prompt\":\"sleep 100\"}}]},{\"text\":\"done\"}]},"
		  "{\"regex\":\"^sleep ([0-9]+)\",\"steps\":[{\"tools\":[{\"name\":\"sleep\","
		  "\"input\":{\"ms\":\"{{1}}\"}}]},{\"text\":\"slept\"}]}]}},"
		  "\"task\":{\"max_running\":1}}");
	h_start(&h, 1);
	char sid[ID_MAX];
	char *final = run_tree(&h, sid, "twice");
	assert_string_equal(final, "done");
	assert_int_equal(h_tool_calls(&h, sid, NULL, "completed"), 1);
	char *err = h_tool_error(&h, sid);
	assert_non_null(strstr(err, "already runs 1 subagents"));
	assert_int_equal(h_children(&h, sid), 1);
	free(err);
	free(final);
	check_all_ended(&h);
	h_stop(&h);
}

static int child_streaming(struct h *h, void *parent)
{
	char *child = h_child(h, parent); /* the only one */
	int n = child ? h_turns(h, child, "running") : 0;
	free(child);
	return n == 1 && h_count(h, "message.part.delta", NULL) > 30;
}

static void aborting_a_parent_does_not_restart_it_through_its_background_child(void **state)
{
	struct h h;
	h_dir(&h, "{\"providers\":{\"scripted\":{\"pace_ms\":5}}}");
	h_start(&h, 1);
	char sid[ID_MAX];
	h_session(&h, sid);
	h_prompt(&h, sid, "bg long", "http", NULL);
	engine_flush(h.E);
	assert_true(h_until(&h, child_streaming, sid, 10000));
	struct err e = {0};
	assert_int_equal(engine_abort(h.E, sid, &e), 0);
	h_spin(&h, 100);
	assert_false(engine_tree_busy(h.E, sid));
	engine_flush(h.E);
	assert_int_equal(h_turns(&h, sid, NULL), 1);
	check_all_ended(&h);
	h_stop(&h);
}

static void stopping_with_a_running_child_frees_cleanly(void **state)
{
	struct h h;
	h_dir(&h, "{\"providers\":{\"scripted\":{\"pace_ms\":5}}}");
	h_start(&h, 1);
	char sid[ID_MAX];
	h_session(&h, sid);
	h_prompt(&h, sid, "task long", "http", NULL);
	engine_flush(h.E);
	assert_true(h_until(&h, child_streaming, sid, 10000));
	h_stop(&h); /* engine_destroy with a foreground task waiting: no use after free */
}

static int parent_woken(struct h *h, void *sid)
{
	return h_turns_from(h, sid, "task", "completed") == 1;
}

static void a_background_child_cut_by_a_restart_still_reports_to_its_parent(void **state)
{
	struct h h;
	h_dir(&h, "{\"providers\":{\"scripted\":{\"pace_ms\":5}}}");
	h_start(&h, 1);
	char sid[ID_MAX];
	h_session(&h, sid);
	h_prompt(&h, sid, "bg long", "http", NULL);
	engine_flush(h.E);
	assert_true(h_until(&h, child_streaming, sid, 10000));
	h_stop(&h); /* like a crash: the child's turn is left "running" in the store */
	h_start(&h, 1);
	assert_true(h_until(&h, parent_woken, sid, 10000));
	assert_true(h_until(&h, h_idle, sid, 10000));
	char *wake = h_last_turn(&h, sid, "task", NULL);
	char *text = h_turn_prompt(&h, wake);
	assert_non_null(strstr(text, "interrupted"));
	free(text);
	free(wake);
	check_all_ended(&h);
	h_stop(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(child_result_comes_back_to_the_parent),
		cmocka_unit_test(failing_children_still_answer_their_parent),
		cmocka_unit_test(aborting_a_child_gives_the_parent_an_error_result),
		cmocka_unit_test(check_task_keeps_its_report_after_the_parent_is_deleted),
		cmocka_unit_test(check_task_last_activity_moves_when_a_retry_attempt_starts),
		cmocka_unit_test(an_aborted_childs_result_has_one_shape_whatever_aborted_it),
		cmocka_unit_test(grandchildren_work_and_the_depth_limit_is_a_clear_error),
		cmocka_unit_test(aborting_the_root_ends_the_whole_tree),
		cmocka_unit_test(a_background_task_wakes_its_parent_once_as_its_own_turn),
		cmocka_unit_test(the_sweeper_fails_a_turn_busy_with_nothing),
		cmocka_unit_test(running_children_are_limited_per_session),
		cmocka_unit_test(aborting_a_parent_does_not_restart_it_through_its_background_child),
		cmocka_unit_test(stopping_with_a_running_child_frees_cleanly),
		cmocka_unit_test(a_background_child_cut_by_a_restart_still_reports_to_its_parent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
