/* A prompt's options in the engine, with the ledger's invariants checked in SQL by a
 * second connection: a noReply message has no turn and no reply, and the turns accepted
 * before it never see it; a queued turn's tools and subtasks come back from its user
 * message after a restart; a prompt hook's new text replaces the text parts and leaves
 * the files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "harness.h"
#include "hooks.h"

#define FAST "{\"providers\":{\"scripted\":{\"pace_ms\":1}},\"retry\":{\"base_ms\":10}}"

static void accept(struct h *h, const struct prompt *p, struct prompt_result *r)
{
	struct err e = {0};
	if (engine_prompt(h->E, p, r, NULL, &e))
		fail_msg("prompt refused: %s", e.msg);
}

/* predicate: the session's sleep tool call is running, on disk */
static int sleeping(struct h *h, void *sid)
{
	engine_flush(h->E);
	return h_tool_calls(h, sid, "sleep", "running") == 1;
}

static void a_noreply_message_has_no_turn_and_the_running_turn_never_sees_it(void **state)
{
	struct h h;
	char sid[ID_MAX], t1[48], t2[48];
	h_dir(&h, FAST);
	h_start(&h, 1);
	h_session(&h, sid);
	h_prompt(&h, sid, "sleep 200", "http", t1);
	assert_true(h_until(&h, sleeping, sid, 10000));
	struct prompt note = {.session_id = sid, .text = "a note for later", .source = "ws",
			      .no_reply = 1};
	struct prompt_result r;
	accept(&h, &note, &r);
	assert_string_equal(r.turn_id, "");
	assert_true(id_valid(r.user_message_id, "msg"));
	h_prompt(&h, sid, "hello after the note", "http", t2);
	assert_true(h_until(&h, h_idle, sid, 10000));
	h_check_ledger(&h, sid); /* one reply per turn; the note is not owed one */
	assert_int_equal(h_turns(&h, sid, NULL), 2);
	assert_int_equal(h_messages(&h, sid, "user"), 3);
	assert_int_equal(h_messages(&h, sid, "assistant"), 3); /* sleep: two steps; hello: one */
	/* the sleeping turn's second step answered its own prompt: had the note (accepted
	 * after it) reached its history, the scripted model would have echoed the note */
	char *text = h_reply_text(&h, t1);
	assert_non_null(strstr(text, "Slept 200 ms."));
	assert_null(strstr(text, "a note"));
	free(text);
	/* the note was announced like any message, and did not make the session busy */
	assert_true(h_parts_mentioning(&h, "a note for later") == 1);
	h_stop(&h);
}

/* Refusals name what is wrong and keep nothing. */
static void a_noreply_prompt_cannot_have_a_dedupe_key_or_a_subtask(void **state)
{
	struct h h;
	char sid[ID_MAX];
	h_dir(&h, FAST);
	h_start(&h, 1);
	h_session(&h, sid);
	struct err e = {0};
	struct prompt p = {.session_id = sid, .text = "x", .no_reply = 1, .dedupe_key = "k"};
	assert_int_equal(engine_prompt(h.E, &p, NULL, NULL, &e), -1);
	assert_non_null(strstr(e.msg, "dedupeKey"));
	cJSON *parts = cJSON_Parse("[{\"type\":\"subtask\",\"prompt\":\"p\",\"description\":\"d\","
				   "\"agent\":\"general\"}]");
	struct prompt q = {.session_id = sid, .parts = parts, .no_reply = 1};
	assert_int_equal(engine_prompt(h.E, &q, NULL, NULL, &e), -1);
	assert_non_null(strstr(e.msg, "subtask"));
	cJSON_Delete(parts);
	engine_flush(h.E);
	assert_int_equal(h_messages(&h, sid, "user"), 0);
	h_stop(&h);
}

/* A queued turn's options live in its user message, so a restart that resumes the turn
 * resumes them too: echo stays off, and the subtask still runs first. */
static void a_queued_turn_keeps_its_tools_and_subtasks_across_a_restart(void **state)
{
	struct h h;
	char sid[ID_MAX], t1[48];
	h_dir(&h, FAST);
	h_start(&h, 1);
	h_session(&h, sid);
	h_prompt(&h, sid, "sleep 60000", "http", t1);
	assert_true(h_until(&h, sleeping, sid, 10000));
	cJSON *tools = cJSON_Parse("{\"echo\":false}");
	cJSON *parts = cJSON_Parse("[{\"type\":\"text\",\"text\":\"echo hidden\"}]");
	struct prompt p = {.session_id = sid, .parts = parts, .source = "http", .tools = tools,
			   .system = "be terse"};
	struct prompt_result r2, r3;
	accept(&h, &p, &r2);
	cJSON *sub = cJSON_Parse("[{\"type\":\"subtask\",\"prompt\":\"echo from-child\","
				 "\"description\":\"child\",\"agent\":\"general\"}]");
	struct prompt q = {.session_id = sid, .parts = sub, .source = "http"};
	accept(&h, &q, &r3);
	cJSON_Delete(tools);
	cJSON_Delete(parts);
	cJSON_Delete(sub);
	h_stop(&h); /* mid-turn: the store has the sleep running and two turns queued */
	h_start(&h, 1);
	assert_true(h_until(&h, h_idle, sid, 20000));
	h_check_ledger(&h, sid);
	assert_int_equal(h_tool_calls(&h, r2.turn_id, "echo", "error"), 1);
	assert_int_equal(h_tool_calls(&h, r2.turn_id, "echo", "completed"), 0);
	char *why = h_tool_error(&h, r2.turn_id);
	assert_non_null(strstr(why, "\"echo\" is turned off for this prompt"));
	free(why);
	assert_int_equal(h_tool_calls(&h, r3.turn_id, "task", "completed"), 1);
	char *child = h_child(&h, sid);
	assert_non_null(child);
	char *out = h_tool_output(&h, child, "echo");
	assert_string_equal(out, "from-child");
	free(out);
	free(child);
	h_stop(&h);
}

/* A prompt hook that rewrites the text: the client's text parts give way to its text,
 * the file stays, in its place. */
static int rewrite(void *arg, const struct hook_ctx *c, void *data, char *why, size_t n)
{
	assert_int_equal(hook_prompt_set_text(data, "rewritten by the hook"), 0);
	return 0;
}

static void a_hooks_text_replaces_the_text_parts_and_keeps_the_files(void **state)
{
	struct h h;
	char sid[ID_MAX];
	h_dir(&h, FAST);
	h_start(&h, 1);
	h_session(&h, sid);
	assert_int_equal(hooks_add(h.E, HOOK_PROMPT_SUBMIT, "test", rewrite, NULL), 0);
	cJSON *parts = cJSON_Parse(
		"[{\"type\":\"text\",\"text\":\"first\"},"
		"{\"type\":\"file\",\"mime\":\"text/plain\",\"filename\":\"n.txt\","
		"\"url\":\"data:text/plain,hello\"},{\"type\":\"text\",\"text\":\"second\"}]");
	struct prompt p = {.session_id = sid, .parts = parts, .source = "http"};
	struct prompt_result r;
	accept(&h, &p, &r);
	cJSON_Delete(parts);
	assert_true(h_until(&h, h_idle, sid, 10000));
	h_check_ledger(&h, sid);
	assert_int_equal(h_parts(&h, r.turn_id, "file"), 0); /* the turn's replies have none */
	assert_int_equal(h_parts_mentioning(&h, "rewritten by the hook"), 1);
	char *reply = h_reply_text(&h, r.turn_id);
	assert_string_equal(reply, "I received n.txt (text/plain, 5 bytes).");
	free(reply);
	assert_int_equal(h_parts_mentioning(&h, "\"first\""), 0);
	assert_int_equal(h_parts_mentioning(&h, "second"), 0);
	char *order = h_sql_str(&h, "SELECT group_concat(type, ',') FROM (SELECT type FROM part "
				"WHERE message_id='%s' ORDER BY id)", r.user_message_id);
	assert_string_equal(order, "text,file");
	free(order);
	h_stop(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_noreply_message_has_no_turn_and_the_running_turn_never_sees_it),
		cmocka_unit_test(a_noreply_prompt_cannot_have_a_dedupe_key_or_a_subtask),
		cmocka_unit_test(a_queued_turn_keeps_its_tools_and_subtasks_across_a_restart),
		cmocka_unit_test(a_hooks_text_replaces_the_text_parts_and_keeps_the_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
