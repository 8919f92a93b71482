/* Fork, revert, unrevert, deleting a message and the workspace diff on a real engine
 * (engine/revert.c): where a revert starts (OpenCode's rule), what HOOK_SESSION_REVERT
 * is shown (the hidden tool calls, the deleted turns) and what it may refuse or keep,
 * the next prompt deleting the hidden messages durably (checked in SQL on a second
 * connection), a fork leaving a turn still under way behind, deletions refused while
 * their turn runs or waits, and HOOK_SESSION_DIFF's answers checked and joined. */
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

struct seen {
	int rewinds, restores, commits;
	char point[ID_MAX], part[ID_MAX], restored[128];
	char *calls, *turns; /* the last REWIND's calls, COMMIT's turns (JSON) */
	int refuse;          /* REWIND and RESTORE refuse */
};

static int on_revert(void *arg, const struct hook_ctx *c, void *data, char *why, size_t n)
{
	struct seen *s = arg;
	struct hook_revert *hr = data;
	if (s->refuse) {
		snprintf(why, n, "the disk is on fire");
		return -1;
	}
	if (hr->action == HOOK_REVERT_REWIND) {
		s->rewinds++;
		snprintf(s->point, sizeof(s->point), "%s", hr->message_id);
		snprintf(s->part, sizeof(s->part), "%s", hr->part_id ? hr->part_id : "");
		free(s->calls);
		s->calls = cJSON_PrintUnformatted(hr->calls);
		assert_int_equal(hook_revert_set(hr, "snap-1", "--- a\n+++ b\n"), 0);
	} else if (hr->action == HOOK_REVERT_RESTORE) {
		s->restores++;
		snprintf(s->restored, sizeof(s->restored), "%s", hr->snapshot ? hr->snapshot : "");
		assert_int_equal(hook_revert_set(hr, "no", NULL), -1); /* REWIND only */
	} else {
		s->commits++;
		free(s->turns);
		s->turns = cJSON_PrintUnformatted(hr->turns);
	}
	return 0;
}

static void settle(struct h *h, const char *sid)
{
	assert_true(h_until(h, h_idle, (void *)sid, 10000));
	h_spin(h, 150); /* the commit timer */
}

/* The ids of the session's messages in conversation order (at most 16). */
static int message_ids(struct h *h, const char *sid, char ids[16][ID_MAX])
{
	struct jw w;
	struct err e = {0};
	jw_init(&w);
	assert_int_equal(engine_messages_json(h->E, sid, 0, &w, &e), 0);
	cJSON *arr = cJSON_Parse(w.buf), *m;
	int n = 0;
	cJSON_ArrayForEach(m, arr) {
		const cJSON *info = cJSON_GetObjectItem(m, "info");
		if (n < 16)
			snprintf(ids[n++], ID_MAX, "%s", cJSON_GetObjectItem(info, "id")->valuestring);
	}
	cJSON_Delete(arr);
	jw_free(&w);
	return n;
}

static char *session_json(struct h *h, const char *sid)
{
	struct jw w;
	jw_init(&w);
	assert_int_equal(engine_session_json(h->E, sid, &w, NULL), 0);
	return jw_take(&w, NULL);
}

static void start(struct h *h, char *sid, struct seen *s)
{
	memset(s, 0, sizeof(*s));
	h_dir(h, FAST);
	h_start(h, 1);
	assert_int_equal(hooks_add(h->E, HOOK_SESSION_REVERT, "t", on_revert, s), 0);
	h_session(h, sid);
}

static void a_revert_starts_at_the_prompt_and_shows_the_hidden_tool_calls(void **state)
{
	struct h h;
	struct seen s;
	char sid[ID_MAX], t1[ID_MAX], t2[ID_MAX], ids[16][ID_MAX];
	struct err e = {0};
	start(&h, sid, &s);
	h_prompt(&h, sid, "hello", "http", t1);
	settle(&h, sid);
	h_prompt(&h, sid, "echo hi", "http", t2);
	settle(&h, sid);
	/* hello: user + reply; echo: user + two steps (tool call, then text) */
	assert_int_equal(message_ids(&h, sid, ids), 5);
	/* an assistant message (the echo's second step) rewinds from its turn's prompt */
	assert_int_equal(engine_session_revert(h.E, sid, ids[4], NULL, &e), 0);
	assert_int_equal(s.rewinds, 1);
	assert_string_equal(s.point, ids[2]);
	assert_string_equal(s.part, "");
	cJSON *calls = cJSON_Parse(s.calls);
	assert_int_equal(cJSON_GetArraySize(calls), 1);
	const cJSON *c = cJSON_GetArrayItem(calls, 0);
	assert_string_equal(cJSON_GetObjectItem(c, "tool")->valuestring, "echo");
	assert_string_equal(cJSON_GetObjectItem(c, "turnID")->valuestring, t2);
	assert_string_equal(cJSON_GetObjectItem(c, "messageID")->valuestring, ids[3]);
	assert_true(strlen(cJSON_GetObjectItem(c, "callID")->valuestring) > 0);
	cJSON_Delete(calls);
	/* what the hook kept is Session.revert's */
	char *js = session_json(&h, sid);
	assert_non_null(strstr(js, "\"revert\":{\"messageID\""));
	assert_non_null(strstr(js, "\"snapshot\":\"snap-1\""));
	assert_non_null(strstr(js, "\"diff\":\"--- a\\n+++ b\\n\""));
	free(js);
	/* nothing is deleted yet: the store still has all five */
	h_spin(&h, 150);
	assert_int_equal(h_messages(&h, sid, NULL), 5);
	/* unrevert hands the kept snapshot back */
	assert_int_equal(engine_session_unrevert(h.E, sid, &e), 0);
	assert_int_equal(s.restores, 1);
	assert_string_equal(s.restored, "snap-1");
	js = session_json(&h, sid);
	assert_null(strstr(js, "\"revert\""));
	free(js);
	/* unrevert with nothing reverted: nothing to do, no hook */
	assert_int_equal(engine_session_unrevert(h.E, sid, &e), 0);
	assert_int_equal(s.restores, 1);
	free(s.calls);
	h_stop(&h);
}

/* One commit happened, and the only turn it deleted whole was turn. */
static void committed_one_turn(const struct seen *s, const char *turn)
{
	assert_int_equal(s->commits, 1);
	cJSON *turns = cJSON_Parse(s->turns);
	assert_int_equal(cJSON_GetArraySize(turns), 1);
	assert_string_equal(cJSON_GetArrayItem(turns, 0)->valuestring, turn);
	cJSON_Delete(turns);
}

static void the_next_prompt_deletes_what_was_hidden_for_good(void **state)
{
	struct h h;
	struct seen s;
	char sid[ID_MAX], t1[ID_MAX], t2[ID_MAX], t3[ID_MAX], ids[16][ID_MAX];
	struct err e = {0};
	start(&h, sid, &s);
	h_prompt(&h, sid, "hello", "http", t1);
	settle(&h, sid);
	h_prompt(&h, sid, "echo gone", "http", t2);
	settle(&h, sid);
	message_ids(&h, sid, ids);
	assert_int_equal(engine_session_revert(h.E, sid, ids[2], NULL, &e), 0);
	h_prompt(&h, sid, "hey", "http", t3);
	settle(&h, sid);
	committed_one_turn(&s, t2);
	/* on disk: hello's turn and the new one; the echo turn's messages, parts and row gone */
	assert_int_equal(h_messages(&h, sid, "user"), 2);
	assert_int_equal(h_turns(&h, sid, NULL), 2);
	assert_int_equal(h_tool_calls(&h, sid, "echo", NULL), 0);
	assert_int_equal(h_parts_mentioning(&h, "echo gone"), 0);
	assert_int_equal(h_count(&h, "message.removed", sid), 3);
	char *js = session_json(&h, sid);
	assert_null(strstr(js, "\"revert\""));
	free(js);
	h_check_ledger(&h, sid);
	/* a restart reads the same */
	h_stop(&h);
	h_start(&h, 1);
	assert_int_equal(h_messages(&h, sid, NULL), 4);
	free(s.calls);
	free(s.turns);
	h_stop(&h);
}

static void a_refused_revert_changes_nothing(void **state)
{
	struct h h;
	struct seen s;
	char sid[ID_MAX], ids[16][ID_MAX];
	struct err e = {0};
	start(&h, sid, &s);
	h_prompt(&h, sid, "hello", "http", NULL);
	settle(&h, sid);
	message_ids(&h, sid, ids);
	s.refuse = 1;
	assert_int_equal(engine_session_revert(h.E, sid, ids[0], NULL, &e), -1);
	assert_int_equal(e.code, ERR_INTERNAL);
	assert_non_null(strstr(e.msg, "the disk is on fire"));
	char *js = session_json(&h, sid);
	assert_null(strstr(js, "\"revert\""));
	free(js);
	/* unknown message and part: named */
	memset(&e, 0, sizeof(e));
	assert_int_equal(engine_session_revert(h.E, sid, "msg_nope", NULL, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_non_null(strstr(e.msg, "msg_nope"));
	memset(&e, 0, sizeof(e));
	assert_int_equal(engine_session_revert(h.E, sid, ids[1], "prt_nope", &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_non_null(strstr(e.msg, "part prt_nope not found in message"));
	h_stop(&h);
}

/* What the last provider request carried (HOOK_PROVIDER_REQUEST). */
static int last_request(void *arg, const struct hook_ctx *c, void *data, char *why, size_t n)
{
	char **json = arg;
	free(*json);
	*json = cJSON_PrintUnformatted(((const struct hook_request *)data)->rq->messages);
	return 0;
}

/* OpenCode commits a revert on every prompt, one without a reply too: the hidden
 * messages go (a hidden noReply note among them, which the plugins are not told about
 * as a turn: it has none), the next turn's history is read again without them, and a
 * fork copies the note that stayed. */
static void a_noreply_prompt_deletes_what_was_hidden_too(void **state)
{
	struct h h;
	struct seen s;
	char sid[ID_MAX], t2[ID_MAX], t3[ID_MAX], ids[16][ID_MAX], fork[ID_MAX];
	char *request = NULL;
	struct err e = {0};
	struct prompt_result r;
	start(&h, sid, &s);
	assert_int_equal(hooks_add(h.E, HOOK_PROVIDER_REQUEST, "t", last_request, &request), 0);
	h_prompt(&h, sid, "hello", "http", NULL);
	settle(&h, sid);
	struct prompt note = {.session_id = sid, .text = "first note", .source = "http",
			      .no_reply = 1};
	assert_int_equal(engine_prompt(h.E, &note, &r, NULL, &e), 0);
	h_prompt(&h, sid, "echo gone", "http", t2);
	settle(&h, sid);
	/* hello: user + reply; the note; echo: user + two steps */
	assert_int_equal(message_ids(&h, sid, ids), 6);
	assert_string_equal(ids[2], r.user_message_id);
	assert_int_equal(engine_session_revert(h.E, sid, ids[2], NULL, &e), 0);
	struct prompt again = {.session_id = sid, .text = "second note", .source = "http",
			       .no_reply = 1};
	assert_int_equal(engine_prompt(h.E, &again, &r, NULL, &e), 0);
	settle(&h, sid);
	committed_one_turn(&s, t2);
	char *js = session_json(&h, sid);
	assert_null(strstr(js, "\"revert\""));
	free(js);
	/* on disk: hello's turn and the second note; the first note and the echo gone */
	assert_int_equal(h_messages(&h, sid, "user"), 2);
	assert_int_equal(h_turns(&h, sid, NULL), 1);
	assert_int_equal(h_parts_mentioning(&h, "first note"), 0);
	assert_int_equal(h_parts_mentioning(&h, "echo gone"), 0);
	assert_int_equal(h_count(&h, "message.removed", sid), 4);
	/* the next turn's request: what is left, nothing that was hidden */
	h_prompt(&h, sid, "hey", "http", t3);
	settle(&h, sid);
	assert_non_null(request);
	assert_non_null(strstr(request, "second note"));
	assert_null(strstr(request, "first note"));
	assert_null(strstr(request, "echo gone"));
	h_check_ledger(&h, sid);
	/* a fork copies the note with its place in the order, and no turn for it */
	assert_int_equal(engine_session_fork(h.E, sid, NULL, fork, &e), 0);
	h_spin(&h, 150);
	assert_int_equal(h_messages(&h, fork, "user"), 3);
	assert_int_equal(h_turns(&h, fork, NULL), 2);
	assert_int_equal(message_ids(&h, fork, ids), 5);
	char *kept = h_sql_str(&h, "SELECT data FROM part WHERE message_id='%s'", ids[2]);
	assert_non_null(strstr(kept, "second note"));
	free(kept);
	h_check_ledger(&h, fork);
	free(request);
	free(s.calls);
	free(s.turns);
	h_stop(&h);
}

/* The predicate: the session's first turn is running its sleep. */
static int sleeping(struct h *h, void *sid)
{
	return h_tool_calls(h, sid, "sleep", "running") == 1;
}

static void busy_sessions_refuse_and_a_fork_leaves_live_turns_behind(void **state)
{
	struct h h;
	struct seen s;
	char sid[ID_MAX], t2[ID_MAX], t3[ID_MAX], ids[16][ID_MAX], fork[ID_MAX];
	struct err e = {0};
	start(&h, sid, &s);
	h_prompt(&h, sid, "hello", "http", NULL);
	settle(&h, sid);
	h_prompt(&h, sid, "sleep 60000", "http", t2);
	h_prompt(&h, sid, "hey", "http", t3); /* queued behind it */
	assert_true(h_until(&h, sleeping, sid, 10000));
	h_spin(&h, 150);
	int n = message_ids(&h, sid, ids);
	assert_true(n >= 4);
	assert_int_equal(engine_session_revert(h.E, sid, ids[0], NULL, &e), -1);
	assert_int_equal(e.code, ERR_BUSY);
	assert_non_null(strstr(e.msg, t2));
	assert_non_null(strstr(e.msg, "is running"));
	assert_int_equal(s.rewinds, 0);
	/* deleting the running turn's prompt, or the queued one's: refused, naming it */
	memset(&e, 0, sizeof(e));
	assert_int_equal(engine_message_delete(h.E, sid, ids[2], &e), -1);
	assert_int_equal(e.code, ERR_BUSY);
	assert_non_null(strstr(e.msg, "which is running"));
	memset(&e, 0, sizeof(e));
	assert_int_equal(engine_message_delete(h.E, sid, ids[n - 1], &e), -1);
	assert_int_equal(e.code, ERR_BUSY);
	assert_non_null(strstr(e.msg, "which is queued"));
	/* a fork while it runs copies the ended turn only */
	assert_int_equal(engine_session_fork(h.E, sid, NULL, fork, &e), 0);
	h_spin(&h, 150);
	assert_int_equal(h_messages(&h, fork, NULL), 2);
	char *title = h_session_title(&h, fork);
	assert_non_null(strstr(title, " (fork #1)"));
	free(title);
	/* an ended turn's message may go (its prompt: its reply stays) */
	int before = h_messages(&h, sid, NULL);
	assert_int_equal(engine_message_delete(h.E, sid, ids[0], &e), 0);
	h_spin(&h, 150);
	assert_int_equal(h_messages(&h, sid, NULL), before - 1);
	assert_int_equal(h_count(&h, "message.removed", sid), 1);
	assert_int_equal(engine_abort(h.E, sid, &e), 0);
	settle(&h, sid);
	h_stop(&h);
}

static int add_files(void *arg, const struct hook_ctx *c, void *data, char *why, size_t n)
{
	struct hook_diff *hd = data;
	int *calls = arg;
	(*calls)++;
	assert_int_equal(cJSON_GetArraySize(hd->turns), 1);
	assert_int_equal(hook_diff_add((struct hook_diff *)hd,
				       cJSON_Parse("[{\"file\":\"a.txt\",\"before\":\"1\\n\","
						   "\"after\":\"2\\n\",\"additions\":1,"
						   "\"deletions\":1}]")), 0);
	assert_int_equal(hook_diff_add(hd, cJSON_Parse("[{\"path\":\"no file\"}]")), -1);
	assert_int_equal(hook_diff_add(hd, cJSON_Parse("{}")), -1);
	return 0;
}

static void diff_hooks_answer_with_their_files_checked(void **state)
{
	struct h h;
	char sid[ID_MAX], ids[16][ID_MAX];
	int calls = 0;
	struct err e = {0};
	struct jw w;
	h_dir(&h, FAST);
	h_start(&h, 1);
	h_session(&h, sid);
	jw_init(&w);
	/* no turn yet: no hook, an empty answer */
	assert_int_equal(hooks_add(h.E, HOOK_SESSION_DIFF, "t", add_files, &calls), 0);
	assert_int_equal(engine_session_diff_json(h.E, sid, NULL, &w, &e), 0);
	assert_string_equal(w.buf, "[]");
	assert_int_equal(calls, 0);
	h_prompt(&h, sid, "hello", "http", NULL);
	settle(&h, sid);
	message_ids(&h, sid, ids);
	jw_reset(&w);
	assert_int_equal(engine_session_diff_json(h.E, sid, ids[1], &w, &e), 0);
	assert_int_equal(calls, 1);
	cJSON *arr = cJSON_Parse(w.buf);
	assert_int_equal(cJSON_GetArraySize(arr), 1);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "file")->valuestring,
			    "a.txt");
	cJSON_Delete(arr);
	jw_reset(&w);
	assert_int_equal(engine_session_diff_json(h.E, sid, "msg_nope", &w, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	jw_free(&w);
	h_stop(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_revert_starts_at_the_prompt_and_shows_the_hidden_tool_calls),
		cmocka_unit_test(the_next_prompt_deletes_what_was_hidden_for_good),
		cmocka_unit_test(a_refused_revert_changes_nothing),
		cmocka_unit_test(a_noreply_prompt_deletes_what_was_hidden_too),
		cmocka_unit_test(busy_sessions_refuse_and_a_fork_leaves_live_turns_behind),
		cmocka_unit_test(diff_hooks_answer_with_their_files_checked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
