/* Permissions on a real engine (engine.h's engine_permission_*): a test tool `ask` asks
 * for what the scripted model tells it to, and ends with the answer (allowed: its
 * output; not allowed: its error, which the model reads). The rules decide at once
 * (last match wins, the agent's over the config's), a hook may decide, "always" is
 * remembered for the session tree only, a rejection's message reaches the model, an
 * abort, a deletion or the timeout ends a waiting ask, and waiting on a human is
 * neither a stall, nor a subagent's budget, nor swept as silently busy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "engine_int.h"
#include "jsonin.h"

#define RULES                                                                                   \
	"[{\"regex\":\"^ask ([^ ]+) (.+)$\",\"steps\":[{\"text\":\"Asking.\",\"tools\":[{\"name\":" \
	"\"ask\",\"input\":{\"permission\":\"{{1}}\",\"pattern\":\"{{2}}\"}}]},"                    \
	"{\"text\":\"result: {{tool_output}}\"}]},"                                               \
	"{\"regex\":\"^two asks$\",\"steps\":[{\"text\":\"Asking twice.\",\"tools\":["             \
	"{\"name\":\"ask\",\"input\":{\"permission\":\"bash\",\"pattern\":\"make a\"}},"           \
	"{\"name\":\"ask\",\"input\":{\"permission\":\"bash\",\"pattern\":\"make b\"}}]},"         \
	"{\"text\":\"done: {{tool_output}}\"}]},"                                                 \
	"{\"regex\":\"^task (.+)$\",\"steps\":[{\"text\":\"Delegating.\",\"tools\":[{\"name\":"    \
	"\"task\",\"input\":{\"description\":\"sub\",\"prompt\":\"{{1}}\",\"subagent_type\":"     \
	"\"general\"}}]},{\"text\":\"sub: {{tool_output}}\"}]},"                                  \
	"{\"regex\":\"^sleep ([0-9]+)$\",\"steps\":[{\"text\":\"Sleeping.\",\"tools\":[{\"name\":" \
	"\"sleep\",\"input\":{\"ms\":\"{{1}}\"}}]},{\"text\":\"Slept.\"}]},"                      \
	"{\"steps\":[{\"text\":\"You said: {{prompt}}\"}]}]"

#define SCRIPTED "\"providers\":{\"scripted\":{\"pace_ms\":1,\"rules\":" RULES "}}"

/* ---- the test tool ---- */

static int dones;
static char last_answer[1200];

struct asked {
	struct engine *E;
	uint64_t id;
};

static void ask_done(void *arg, int allowed, const char *message)
{
	struct asked *a = arg;
	char out[1200];
	dones++;
	snprintf(last_answer, sizeof(last_answer), "%s", message);
	snprintf(out, sizeof(out), "allowed: %s", message);
	if (allowed)
		tool_done(a->E, a->id, out, NULL, NULL);
	else
		tool_fail(a->E, a->id, message, NULL);
	free(a);
}

static void ask_run(struct tool_call *c, void *arg)
{
	const char *perm = jsonin_get(c->input, "permission"), *pat = jsonin_get(c->input, "pattern");
	cJSON *pats = cJSON_CreateArray();
	cJSON_AddItemToArray(pats, cJSON_CreateString(pat ? pat : ""));
	struct asked *a = malloc(sizeof(*a));
	*a = (struct asked){c->E, c->id};
	struct err e = {0};
	if (engine_permission_ask(c->E, c->id, perm, pats, NULL, NULL, NULL, ask_done, a, &e)) {
		free(a);
		tool_call_fail(c, e.msg, NULL);
	}
	cJSON_Delete(pats);
}

static void start(struct h *h, const char *config)
{
	static const struct tool_def ask = {
		"ask", "Asks for a permission.", "{\"type\":\"object\"}", ask_run, NULL, NULL, NULL,
	};
	memset(h, 0, sizeof(*h));
	h_dir(h, config);
	h_start(h, 1);
	assert_int_equal(engine_tool_register(h->E, &ask, "test"), 0);
	dones = 0;
	last_answer[0] = 0;
}

/* ---- helpers ---- */

static int n_asked(struct h *h, void *n)
{
	return h_count(h, "permission.asked", NULL) >= *(int *)n;
}

static void wait_asked(struct h *h, int n)
{
	if (!h_until(h, n_asked, &n, 5000))
		fail_msg("%d permission asks expected, %d came", n, h_count(h, "permission.asked", NULL));
}

/* The pending asks as the API lists them. */
static cJSON *pending(struct h *h)
{
	struct jw w;
	jw_init(&w);
	engine_permission_list_json(h->E, &w);
	cJSON *j = cJSON_Parse(w.buf);
	jw_free(&w);
	assert_true(cJSON_IsArray(j));
	return j;
}

/* The i-th pending ask's id into out. */
static void pending_id(struct h *h, int i, char *out)
{
	cJSON *j = pending(h);
	const char *id = jsonin_get(cJSON_GetArrayItem(j, i), "id");
	assert_non_null(id);
	snprintf(out, ID_MAX, "%s", id);
	cJSON_Delete(j);
}

static int n_pending(struct h *h)
{
	cJSON *j = pending(h);
	int n = cJSON_GetArraySize(j);
	cJSON_Delete(j);
	return n;
}

static void settle(struct h *h, const char *sid)
{
	assert_true(h_until(h, h_idle, (void *)sid, 10000));
	engine_flush(h->E);
}

/* Prompts and waits for the tree to be idle again. */
static void prompt_wait(struct h *h, const char *sid, const char *text)
{
	h_prompt(h, sid, text, "http", NULL);
	settle(h, sid);
}

static void reply(struct h *h, const char *id, const char *how, const char *message)
{
	struct err e = {0};
	if (engine_permission_reply(h->E, id, how, message, NULL, &e))
		fail_msg("reply %s %s: %s", id, how, e.msg);
}

/* Starts with config and a session (sid) whose prompt text leaves n asks waiting. */
static void asking(struct h *h, const char *config, char *sid, const char *text, int n)
{
	start(h, config);
	h_session(h, sid);
	h_prompt(h, sid, text, "http", NULL);
	wait_asked(h, n);
}

static void assert_contains(const char *s, const char *part)
{
	if (!s || !strstr(s, part))
		fail_msg("\"%s\" does not contain \"%s\"", s ? s : "(null)", part);
}

static void assert_text(struct h *h, const char *sid, const char *part)
{
	char *t = h_last_text(h, sid);
	assert_contains(t, part);
	free(t);
}

/* ---- the rules ---- */

static void rules_decide_at_once_last_match_wins_agent_over_config(void **state)
{
	struct h h;
	start(&h, "{" SCRIPTED ",\"permission\":{\"bash\":{\"*\":\"ask\",\"git *\":\"allow\","
		  "\"rm *\":\"deny\"}},\"agent\":{\"build\":{\"permission\":{\"bash\":{\"git push *\":"
		  "\"deny\"}}}}}");
	char sid[ID_MAX];
	h_session(&h, sid);
	prompt_wait(&h, sid, "ask bash git status");
	assert_text(&h, sid, "result: allowed: allowed by the rule \"bash\": {\"git *\": "
		    "\"allow\"} (config)");
	prompt_wait(&h, sid, "ask bash rm -rf /tmp/x");
	assert_text(&h, sid, "result: Error: The user has specified a rule which prevents you");
	assert_text(&h, sid, "\"bash\": {\"rm *\": \"deny\"} (config)");
	/* the agent's rule comes after the config's */
	prompt_wait(&h, sid, "ask bash git push origin main");
	assert_text(&h, sid, "\"git push *\": \"deny\"} (agent build)");
	/* the defaults: reading is allowed, an unknown (an MCP tool's) too */
	prompt_wait(&h, sid, "ask read src/a.c");
	assert_text(&h, sid, "(default)");
	prompt_wait(&h, sid, "ask srv_fetch https://example.com");
	assert_text(&h, sid, "result: allowed: allowed by the rule \"*\"");
	assert_int_equal(h_count(&h, "permission.asked", NULL), 0);
	assert_int_equal(dones, 5);
	/* editing and running ask */
	h_prompt(&h, sid, "ask edit src/a.c", "http", NULL);
	wait_asked(&h, 1);
	cJSON *list = pending(&h);
	const cJSON *a = cJSON_GetArrayItem(list, 0);
	assert_string_equal(jsonin_get(a, "permission"), "edit");
	assert_string_equal(jsonin_get(a, "sessionID"), sid);
	assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(a, "patterns"), 0)->valuestring,
			    "src/a.c");
	assert_string_equal(jsonin_get(cJSON_GetObjectItem(a, "tool"), "callID"),
			    jsonin_get(a, "callID"));
	assert_true(id_valid(jsonin_get(a, "id"), "per"));
	char id[ID_MAX];
	snprintf(id, sizeof(id), "%s", jsonin_get(a, "id"));
	cJSON_Delete(list);
	reply(&h, id, "once", NULL);
	settle(&h, sid);
	assert_text(&h, sid, "result: allowed: allowed once by a reply");
	assert_int_equal(h_count(&h, "permission.replied", sid), 1);
	assert_int_equal(n_pending(&h), 0);
	h_stop(&h);
}

/* ---- what a human says ---- */

static void always_is_remembered_for_the_tree_only(void **state)
{
	struct h h;
	start(&h, "{" SCRIPTED "}");
	char sid[ID_MAX], other[ID_MAX], id[ID_MAX];
	h_session(&h, sid);
	h_prompt(&h, sid, "ask bash make all", "http", NULL);
	wait_asked(&h, 1);
	pending_id(&h, 0, id);
	reply(&h, id, "always", NULL);
	settle(&h, sid);
	assert_text(&h, sid, "result: allowed:");
	/* the same again, here and in a subagent: no one is asked */
	prompt_wait(&h, sid, "ask bash make all");
	assert_text(&h, sid, "an earlier \"always\" reply");
	prompt_wait(&h, sid, "task ask bash make all");
	assert_text(&h, sid, "sub: result: allowed: allowed by an earlier \"always\" reply");
	assert_int_equal(h_count(&h, "permission.asked", NULL), 1);
	/* something else in the tree, and the same in another tree, are asked */
	h_prompt(&h, sid, "ask bash make install", "http", NULL);
	wait_asked(&h, 2);
	pending_id(&h, 0, id);
	reply(&h, id, "once", NULL);
	settle(&h, sid);
	h_session(&h, other);
	h_prompt(&h, other, "ask bash make all", "http", NULL);
	wait_asked(&h, 3);
	pending_id(&h, 0, id);
	reply(&h, id, "reject", NULL);
	settle(&h, other);
	assert_text(&h, other, "The user rejected permission to use this specific tool call.");
	/* deleting the tree forgets its replies */
	struct err e = {0};
	assert_int_equal(engine_session_delete(h.E, sid, &e), 0);
	assert_null(h.E->perm.approved);
	h_stop(&h);
}

static void always_answers_the_trees_other_waiting_asks_it_covers(void **state)
{
	struct h h;
	char sid[ID_MAX], id[ID_MAX];
	asking(&h, "{" SCRIPTED ",\"permission\":{\"bash\":{\"make *\":\"ask\"}}}", sid,
	       "two asks", 2);
	pending_id(&h, 0, id);
	/* "always" for "make a" leaves "make b" waiting */
	reply(&h, id, "always", NULL);
	assert_int_equal(n_pending(&h), 1);
	pending_id(&h, 0, id);
	reply(&h, id, "always", NULL);
	settle(&h, sid);
	assert_int_equal(dones, 2);
	assert_int_equal(h_tool_calls(&h, sid, "ask", "completed"), 2);
	h_stop(&h);
}

static void reject_message_reaches_the_model_and_ends_the_sessions_other_asks(void **state)
{
	struct h h;
	char sid[ID_MAX], id[ID_MAX];
	asking(&h, "{" SCRIPTED "}", sid, "two asks", 2);
	pending_id(&h, 0, id);
	reply(&h, id, "reject", "use make -n first");
	settle(&h, sid);
	assert_int_equal(n_pending(&h), 0);
	assert_int_equal(h_tool_calls(&h, sid, "ask", "error"), 2);
	assert_int_equal(h_tool_errors_like(&h, "%with the following feedback: use make -n first"), 1);
	assert_int_equal(h_tool_errors_like(&h, "The user rejected permission to use this specific "
					    "tool call."), 1);
	/* the model's next step read the tool result */
	assert_int_equal(h_parts_mentioning(&h, "done: Error: The user rejected"), 1);
	assert_int_equal(h_count(&h, "permission.replied", sid), 2);
	h_stop(&h);
}

static void replies_that_do_not_fit_are_refused_by_name(void **state)
{
	struct h h;
	char sid[ID_MAX], other[ID_MAX], id[ID_MAX];
	asking(&h, "{" SCRIPTED "}", sid, "ask bash make", 1);
	h_session(&h, other);
	pending_id(&h, 0, id);
	struct err e = {0};
	assert_int_equal(engine_permission_reply(h.E, id, "sometimes", NULL, NULL, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_contains(e.msg, "\"once\", \"always\" or \"reject\"");
	assert_int_equal(engine_permission_reply(h.E, id, "once", NULL, other, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_int_equal(engine_permission_reply(h.E, "per_nope", "once", NULL, NULL, &e), -1);
	assert_contains(e.msg, "per_nope is not pending");
	assert_int_equal(n_pending(&h), 1);
	assert_int_equal(engine_permission_reply(h.E, id, "once", NULL, sid, &e), 0);
	settle(&h, sid);
	/* answered: a second reply finds nothing; a call that is not running cannot ask */
	assert_int_equal(engine_permission_reply(h.E, id, "once", NULL, NULL, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_int_equal(engine_permission_ask(h.E, 12345, "bash", NULL, NULL, NULL, NULL,
					       ask_done, NULL, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	h_stop(&h);
}

/* ---- asks that end without a reply ---- */

static void abort_and_delete_reject_waiting_asks_with_aborted(void **state)
{
	struct h h;
	char sid[ID_MAX];
	asking(&h, "{" SCRIPTED "}", sid, "task ask bash make", 1);
	assert_int_equal(engine_abort(h.E, sid, NULL), 0);
	settle(&h, sid);
	assert_int_equal(dones, 1);
	assert_string_equal(last_answer, "aborted");
	assert_int_equal(n_pending(&h), 0);
	assert_int_equal(h_count(&h, "permission.replied", NULL), 1);
	h_prompt(&h, sid, "ask bash make", "http", NULL);
	wait_asked(&h, 2);
	struct err e = {0};
	assert_int_equal(engine_session_delete(h.E, sid, &e), 0);
	assert_int_equal(dones, 2);
	assert_string_equal(last_answer, "aborted");
	assert_int_equal(n_pending(&h), 0);
	h_stop(&h);
}

static void an_ask_nobody_answers_times_out_by_name(void **state)
{
	struct h h;
	char sid[ID_MAX];
	asking(&h, "{" SCRIPTED ",\"permission\":{\"timeout_ms\":150}}", sid, "ask bash make", 1);
	settle(&h, sid);
	assert_contains(last_answer, "timed out: nobody answered within permission.timeout_ms "
			"(150 ms)");
	assert_text(&h, sid, "result: Error: permission per_");
	assert_int_equal(n_pending(&h), 0);
	h_stop(&h);
}

/* ---- a hook decides ---- */

static int decide_hook(void *arg, const struct hook_ctx *c, void *data, char *why, size_t n)
{
	struct hook_permission *hp = data;
	const char *pat = cJSON_GetArrayItem(hp->patterns, 0)->valuestring;
	(*(int *)arg)++;
	if (strstr(pat, "hook-ok"))
		hp->decision = HOOK_PERMISSION_ALLOWED;
	else if (strstr(pat, "hook-no"))
		hp->decision = HOOK_PERMISSION_DENIED;
	snprintf(hp->reason, sizeof(hp->reason), "the test hook decided");
	return 0;
}

static void a_hook_decides_after_the_rules_before_a_human(void **state)
{
	struct h h;
	int calls = 0;
	start(&h, "{" SCRIPTED ",\"permission\":{\"bash\":{\"rm *\":\"deny\"}}}");
	assert_int_equal(hooks_add(h.E, HOOK_PERMISSION_ASK, "test", decide_hook, &calls), 0);
	char sid[ID_MAX];
	h_session(&h, sid);
	prompt_wait(&h, sid, "ask bash make hook-ok");
	assert_text(&h, sid, "result: allowed: the test hook decided");
	prompt_wait(&h, sid, "ask bash make hook-no");
	assert_text(&h, sid, "result: Error: the test hook decided");
	prompt_wait(&h, sid, "ask bash rm hook-ok"); /* the rules came first */
	assert_text(&h, sid, "\"rm *\": \"deny\"");
	assert_int_equal(calls, 2);
	h_prompt(&h, sid, "ask bash make", "http", NULL); /* undecided: a human */
	wait_asked(&h, 1);
	assert_int_equal(calls, 3);
	assert_int_equal(engine_abort(h.E, sid, NULL), 0);
	settle(&h, sid);
	h_stop(&h);
}

/* ---- waiting on a human ---- */

static int status_note(struct h *h, void *sid)
{
	struct jw w;
	jw_init(&w);
	engine_status_json(h->E, &w);
	int has = strstr(w.buf, "\"permission\":\"per_") != NULL &&
		  strstr(w.buf, "waiting for permission: bash make") != NULL;
	jw_free(&w);
	return has;
}

/* A grandchild asks; the stall timeout (200 ms) and the task budget (1 s: room for a
 * loaded machine to reach the ask) pass over and over, and so does the sweeper's round
 * (2 s), while the question waits: nothing fails. Without the budget pausing, both
 * tasks would be over it. */
static void waiting_on_a_human_is_no_stall_no_budget_and_not_swept(void **state)
{
	struct h h;
	char sid[ID_MAX], id[ID_MAX];
	asking(&h, "{" SCRIPTED ",\"stall_timeout_ms\":200,\"task\":{\"budget_ms\":1000}}", sid,
	       "task task ask bash make", 1);
	assert_true(h_until(&h, status_note, sid, 1000));
	cJSON *list = pending(&h);
	const char *asker = jsonin_get(cJSON_GetArrayItem(list, 0), "sessionID");
	assert_int_equal(h_depth(&h, asker), 2);
	cJSON_Delete(list);
	h_spin(&h, SWEEP_MS + 600);
	assert_int_equal(h_count(&h, "session.error", NULL), 0);
	assert_int_equal(n_pending(&h), 1);
	assert_true(engine_tree_busy(h.E, sid));
	pending_id(&h, 0, id);
	reply(&h, id, "once", NULL);
	settle(&h, sid);
	assert_text(&h, sid, "sub: sub: result: allowed: allowed once by a reply");
	assert_int_equal(h_count(&h, "session.error", NULL), 0);
	/* the budget still counts when no one is asked */
	h_prompt(&h, sid, "task sleep 5000", "http", NULL);
	settle(&h, sid);
	assert_int_equal(h_tool_errors_like(&h, "%exceeded its time budget of 1000 ms%"), 1);
	h_stop(&h);
}

/* ---- the workspace ---- */

static void sessions_start_in_the_workspace_and_children_inherit(void **state)
{
	struct h h;
	char ws[300], real[PATH_MAX], id[ID_MAX], kid[ID_MAX];
	memset(&h, 0, sizeof(h));
	h_dir(&h, NULL);
	snprintf(ws, sizeof(ws), "%s/ws", h.dir);
	assert_int_equal(mkdir(ws, 0700), 0);
	assert_non_null(realpath(ws, real));
	h.workspace = ws;
	h_start(&h, 1);
	assert_string_equal(engine_workspace(h.E), real);
	struct session_params sp = {0};
	struct session_info si;
	struct err e = {0};
	assert_int_equal(engine_session_create(h.E, &sp, id, &e), 0);
	assert_int_equal(engine_session_info(h.E, id, &si, NULL), 0);
	assert_string_equal(si.directory, real);
	sp = (struct session_params){.parent_id = id};
	assert_int_equal(engine_session_create(h.E, &sp, kid, &e), 0);
	assert_int_equal(engine_session_info(h.E, kid, &si, NULL), 0);
	assert_string_equal(si.directory, real);
	sp = (struct session_params){.directory = "/tmp"};
	assert_int_equal(engine_session_create(h.E, &sp, id, &e), 0);
	assert_int_equal(engine_session_info(h.E, id, &si, NULL), 0);
	assert_string_equal(si.directory, "/tmp");
	sp = (struct session_params){.directory = "relative/dir"};
	assert_int_equal(engine_session_create(h.E, &sp, id, &e), -1);
	assert_contains(e.msg, "must be an absolute path");
	h_stop(&h);
	/* a workspace that is not a directory stops the start, by name */
	struct engine_opts o = {.data_dir = h.dir, .workspace = "/nonexistent/ws"};
	struct loop_config lc = {.port = -1};
	struct loop *L = loop_create(&lc);
	assert_null(engine_create(L, &o, &e));
	assert_contains(e.msg, "--workspace /nonexistent/ws");
	loop_destroy(L);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rules_decide_at_once_last_match_wins_agent_over_config),
		cmocka_unit_test(always_is_remembered_for_the_tree_only),
		cmocka_unit_test(always_answers_the_trees_other_waiting_asks_it_covers),
		cmocka_unit_test(reject_message_reaches_the_model_and_ends_the_sessions_other_asks),
		cmocka_unit_test(replies_that_do_not_fit_are_refused_by_name),
		cmocka_unit_test(abort_and_delete_reject_waiting_asks_with_aborted),
		cmocka_unit_test(an_ask_nobody_answers_times_out_by_name),
		cmocka_unit_test(a_hook_decides_after_the_rules_before_a_human),
		cmocka_unit_test(waiting_on_a_human_is_no_stall_no_budget_and_not_swept),
		cmocka_unit_test(sessions_start_in_the_workspace_and_children_inherit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
