/* Compaction on a real engine (engine/compact.c): a session whose context nears its
 * model's window gets a compaction turn in front of its next turn, and that turn's
 * request carries the summary instead of the older history; a summary asked for runs in
 * the queue like a prompt; a provider's context-overflow error (mockllm speaking OpenAI's
 * and Anthropic's wire formats, and the scripted provider's error steps) compacts and
 * runs the request once more, and a second overflow fails the turn naming the cause;
 * prompts queued around a compaction keep the ledger's invariants (h_stop checks them);
 * a kill -9 during a compaction turn recovers like any interrupted turn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine_int.h"
#include "harness.h"
#include "mock.h"

#define SUMMARY "SUMMARY: three long prompts, each noted."
#define RULE_LIST(summary_pace)                                                              \
	"{\"regex\":\"^Summarize the conversation\",\"steps\":[{\"text\":\"" SUMMARY             \
	"\",\"pace_ms\":" summary_pace "}]},"                                                    \
	"{\"regex\":\"^toolong\",\"steps\":[{\"error\":{\"status\":400,\"message\":"             \
	"\"prompt is too long: 300000 tokens > 200000 maximum\"}}]},"                            \
	"{\"steps\":[{\"text\":\"Noted.\"}]}"
#define RULES(summary_pace) "\"rules\":[" RULE_LIST(summary_pace) "]"
/* scripted/tiny: a 2000-token window with 200 for the reply; the scripted provider
 * counts a request's characters / 4 as its input tokens */
#define CONFIG_PACED(summary_pace)                                                           \
	"{\"model\":\"scripted/tiny\",\"providers\":{\"scripted\":{\"pace_ms\":1,\"models\":"   \
	"{\"tiny\":{\"limit\":{\"context\":2000,\"output\":200}}}," RULES(summary_pace) "}}}"
#define CONFIG CONFIG_PACED("1")
#define PRUNED_OUTPUT_12 "[Old tool re" /* PRUNED_OUTPUT as tool_results cuts it */

/* What each provider request carried, from a HOOK_PROVIDER_REQUEST callback. */
struct reqs {
	cJSON *msgs[64];
	char *system[64];
	int ntools[64];
	int n;
};

static int on_request(void *arg, const struct hook_ctx *c, void *data, char *why, size_t n)
{
	struct reqs *r = arg;
	const struct hook_request *hr = data;
	if (r->n < 64) {
		r->msgs[r->n] = cJSON_Duplicate(hr->rq->messages, 1);
		r->system[r->n] = strdup(hr->rq->system ? hr->rq->system : "");
		r->ntools[r->n] = cJSON_GetArraySize(hr->rq->tools);
		r->n++;
	}
	return 0;
}

static void reqs_free(struct reqs *r)
{
	for (int i = 0; i < r->n; i++) {
		cJSON_Delete(r->msgs[i]);
		free(r->system[i]);
	}
	r->n = 0;
}

static const char *role_at(const struct reqs *r, int req, int i)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(r->msgs[req], i), "role"));
}

static const char *content_at(const struct reqs *r, int req, int i)
{
	return cJSON_GetStringValue(
		cJSON_GetObjectItem(cJSON_GetArrayItem(r->msgs[req], i), "content"));
}

/* 1 when any message of request req holds text. */
static int request_mentions(const struct reqs *r, int req, const char *text)
{
	char *s = cJSON_PrintUnformatted(r->msgs[req]);
	int yes = s && strstr(s, text) != NULL;
	free(s);
	return yes;
}

struct t {
	struct h h;
	struct reqs r;
	char sid[ID_MAX];
};

static void start(struct t *t, const char *config)
{
	memset(t, 0, sizeof(*t));
	h_dir(&t->h, config);
	t->h.openai_base = mock_openai_base;
	t->h.anthropic_base = mock_anthropic_base;
	h_start(&t->h, 1);
	assert_int_equal(hooks_add(t->h.E, HOOK_PROVIDER_REQUEST, "test", on_request, &t->r), 0);
	h_session(&t->h, t->sid);
}

static void stop(struct t *t)
{
	hooks_remove_owner(t->h.E, "test");
	h_stop(&t->h);
	reqs_free(&t->r);
}

/* The gateway stops and a new process starts on the same data directory. */
static void restart(struct t *t)
{
	hooks_remove_owner(t->h.E, "test");
	h_stop(&t->h);
	reqs_free(&t->r);
	h_start(&t->h, 1);
	assert_int_equal(hooks_add(t->h.E, HOOK_PROVIDER_REQUEST, "test", on_request, &t->r), 0);
}

/* "TAG lorem lorem ...": about chars characters. */
static char *filler(const char *tag, int chars)
{
	char *s = malloc((size_t)chars + 16);
	int n = snprintf(s, (size_t)chars + 16, "%s", tag);
	while (n < chars)
		n += snprintf(s + n, (size_t)chars + 16 - (size_t)n, " lorem");
	return s;
}

static void prompt_wait(struct t *t, const char *text, const char *model, char *turn)
{
	if (model)
		h_prompt_model(&t->h, t->sid, text, model, turn);
	else
		h_prompt(&t->h, t->sid, text, "http", turn);
	assert_true(h_until(&t->h, h_idle, t->sid, 20000));
	assert_int_equal(engine_flush(t->h.E), 0); /* what SQL sees below */
}

static void long_prompt_wait(struct t *t, const char *tag)
{
	char *p = filler(tag, 2400);
	prompt_wait(t, p, NULL, NULL);
	free(p);
}

/* The newest compaction turn's id (malloc'd) and its user message's compaction part. */
static char *last_compaction(struct t *t, const char *source)
{
	return h_last_turn(&t->h, t->sid, source, NULL);
}

static char *part_json(struct t *t, const char *turn, const char *type)
{
	return h_sql_str(&t->h, "SELECT p.data FROM part p JOIN message m ON m.id=p.message_id "
			 "WHERE m.turn_id='%s' AND p.type='%s'", turn, type);
}

static char *reply_info(struct t *t, const char *turn)
{
	return h_sql_str(&t->h, "SELECT data FROM message WHERE turn_id='%s' AND role='assistant'",
			 turn);
}

/* turns of the session in conversation order, "source:state,..." */
static char *turn_list(struct t *t)
{
	return h_sql_str(&t->h, "SELECT group_concat(source || ':' || state, ',') FROM (SELECT "
			 "source, state FROM turn WHERE session_id='%s' ORDER BY id)", t->sid);
}

static void a_context_near_the_limit_is_compacted_before_the_next_turn(void **state)
{
	struct t t;
	start(&t, CONFIG);
	long_prompt_wait(&t, "FIRST");
	long_prompt_wait(&t, "SECOND");
	long_prompt_wait(&t, "THIRD");
	assert_int_equal(h_count(&t.h, "session.compacted", t.sid), 0);
	char turn[ID_MAX];
	prompt_wait(&t, "fourth, short", NULL, turn);

	/* a compaction turn ran in front of the fourth, in conversation order too */
	char *list = turn_list(&t);
	assert_string_equal(list, "http:completed,http:completed,http:completed,"
			    "compaction:completed,http:completed");
	free(list);
	char *c = last_compaction(&t, "compaction");
	assert_true(strcmp(c, turn) < 0);
	char *part = part_json(&t, c, "compaction");
	assert_non_null(strstr(part, "\"type\":\"compaction\",\"auto\":true"));
	char *info = reply_info(&t, c);
	assert_non_null(strstr(info, "\"summary\":true"));
	assert_non_null(strstr(info, "\"mode\":\"compaction\""));
	assert_non_null(strstr(info, "\"finish\":\"stop\""));
	char *text = h_reply_text(&t.h, c);
	assert_string_equal(text, SUMMARY);
	assert_int_equal(h_count(&t.h, "session.compacted", t.sid), 1);

	/* the compaction's request: all of the history, the instruction last, no tools */
	assert_int_equal(t.r.n, 5);
	assert_int_equal(cJSON_GetArraySize(t.r.msgs[3]), 7);
	assert_true(request_mentions(&t.r, 3, "FIRST"));
	assert_non_null(strstr(content_at(&t.r, 3, 6), "Summarize the conversation so far"));
	assert_non_null(strstr(t.r.system[3], "summarize"));
	assert_int_equal(t.r.ntools[3], 0);
	/* the fourth turn's: the summary instead of the history */
	assert_int_equal(cJSON_GetArraySize(t.r.msgs[4]), 3);
	assert_string_equal(role_at(&t.r, 4, 0), "user");
	assert_string_equal(content_at(&t.r, 4, 0), "What have we done so far?");
	assert_string_equal(role_at(&t.r, 4, 1), "assistant");
	assert_string_equal(content_at(&t.r, 4, 1), SUMMARY);
	assert_string_equal(content_at(&t.r, 4, 2), "fourth, short");
	assert_false(request_mentions(&t.r, 4, "FIRST"));
	/* the stored messages stay, and are listed */
	assert_int_equal(h_messages(&t.h, t.sid, "user"), 5);
	assert_int_equal(h_parts_mentioning(&t.h, "FIRST lorem"), 1);
	free(text);
	free(info);
	free(part);
	free(c);
	stop(&t);
}

static void the_summary_is_kept_across_a_restart(void **state)
{
	struct t t;
	start(&t, CONFIG);
	long_prompt_wait(&t, "FIRST");
	long_prompt_wait(&t, "SECOND");
	long_prompt_wait(&t, "THIRD");
	prompt_wait(&t, "fourth", NULL, NULL);
	assert_int_equal(h_turns_from(&t.h, t.sid, "compaction", "completed"), 1);
	/* a new process reads the history back from the store: the summary, not the past */
	restart(&t);
	prompt_wait(&t, "fifth", NULL, NULL);
	assert_int_equal(t.r.n, 1);
	assert_int_equal(cJSON_GetArraySize(t.r.msgs[0]), 5);
	assert_string_equal(content_at(&t.r, 0, 1), SUMMARY);
	assert_string_equal(content_at(&t.r, 0, 2), "fourth");
	assert_false(request_mentions(&t.r, 0, "FIRST"));
	/* a small context after the summary: no second compaction */
	assert_int_equal(h_turns_from(&t.h, t.sid, "compaction", NULL), 1);
	stop(&t);
}

static int compaction_running(struct h *h, void *sid)
{
	return h_turns_from(h, sid, "compaction", "running") == 1;
}

static void prompts_queued_during_a_compaction_run_after_it_in_order(void **state)
{
	struct t t;
	start(&t, CONFIG_PACED("150"));
	long_prompt_wait(&t, "FIRST");
	long_prompt_wait(&t, "SECOND");
	long_prompt_wait(&t, "THIRD");
	char turns[4][ID_MAX];
	h_prompt(&t.h, t.sid, "fourth", "http", turns[0]);
	assert_true(h_until(&t.h, compaction_running, t.sid, 10000));
	h_prompt(&t.h, t.sid, "fifth", "ws", turns[1]);
	h_prompt(&t.h, t.sid, "sixth", "plugin:x", turns[2]);
	struct prompt ask = {.session_id = t.sid, .source = "http", .compact = 1};
	struct err e = {0};
	struct prompt_result r;
	assert_int_equal(engine_prompt(t.h.E, &ask, &r, NULL, &e), 0); /* a summary, queued */
	h_prompt(&t.h, t.sid, "seventh", "http", turns[3]);
	assert_true(h_until(&t.h, h_idle, t.sid, 20000));
	assert_int_equal(engine_flush(t.h.E), 0);
	char *list = turn_list(&t);
	assert_string_equal(list, "http:completed,http:completed,http:completed,"
			    "compaction:completed,http:completed,ws:completed,plugin:x:completed,"
			    "http:completed,http:completed");
	free(list);
	for (int i = 1; i < 4; i++)
		assert_true(h_turn_after(&t.h, turns[i], turns[i - 1]));
	assert_true(h_turn_after(&t.h, r.turn_id, turns[2]));
	assert_true(h_turn_after(&t.h, turns[3], r.turn_id));
	/* the summary asked for: auto false; the turn after it sees only that summary */
	char *part = part_json(&t, r.turn_id, "compaction");
	assert_non_null(strstr(part, "\"auto\":false"));
	free(part);
	assert_int_equal(h_count(&t.h, "session.compacted", t.sid), 2);
	const int last = t.r.n - 1;
	assert_int_equal(cJSON_GetArraySize(t.r.msgs[last]), 3);
	assert_string_equal(content_at(&t.r, last, 2), "seventh");
	assert_false(request_mentions(&t.r, last, "fourth"));
	h_check_ledger(&t.h, t.sid);
	stop(&t);
}

static void a_summary_asked_for_waits_its_turn_and_answers_when_it_ends(void **state)
{
	struct t t;
	start(&t, CONFIG);
	prompt_wait(&t, "hello there", NULL, NULL);
	struct prompt ask = {.session_id = t.sid, .source = "http", .compact = 1,
			     .model = "scripted/demo"};
	struct err e = {0};
	struct prompt_result r;
	assert_int_equal(engine_prompt(t.h.E, &ask, &r, NULL, &e), 0);
	assert_true(h_until(&t.h, h_idle, t.sid, 10000));
	assert_int_equal(engine_flush(t.h.E), 0);
	char *st = h_turn_state(&t.h, r.turn_id);
	assert_string_equal(st, "completed");
	free(st);
	/* the scripted rules serve every scripted model: the summary rule answered, and
	 * the next turn starts from its summary */
	prompt_wait(&t, "and now?", NULL, NULL);
	assert_int_equal(cJSON_GetArraySize(t.r.msgs[t.r.n - 1]), 3);
	assert_string_equal(content_at(&t.r, t.r.n - 1, 1), SUMMARY);
	/* an unknown session, a bad model: refused, nothing written */
	ask.session_id = "ses_nope";
	assert_int_equal(engine_prompt(t.h.E, &ask, &r, NULL, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	ask.session_id = t.sid;
	ask.model = "scripted/none";
	assert_int_equal(engine_prompt(t.h.E, &ask, &r, NULL, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_int_equal(h_turns_from(&t.h, t.sid, "http", NULL), 3);
	stop(&t);
}

static void a_compaction_that_fails_changes_nothing(void **state)
{
	struct t t;
	start(&t, "{\"model\":\"scripted/tiny\",\"providers\":{\"scripted\":{\"pace_ms\":1,"
		  "\"models\":[\"tiny\"],\"rules\":[{\"regex\":\"^Summarize\",\"steps\":[{\"error\":"
		  "{\"status\":400,\"message\":\"no summaries today\"}}]},"
		  "{\"steps\":[{\"text\":\"Noted.\"}]}]}}}");
	prompt_wait(&t, "hello", NULL, NULL);
	struct prompt ask = {.session_id = t.sid, .source = "http", .compact = 1};
	struct err e = {0};
	struct prompt_result r;
	assert_int_equal(engine_prompt(t.h.E, &ask, &r, NULL, &e), 0);
	prompt_wait(&t, "again", NULL, NULL);
	char *st = h_turn_state(&t.h, r.turn_id);
	assert_string_equal(st, "failed");
	free(st);
	assert_int_equal(h_count(&t.h, "session.compacted", t.sid), 0);
	/* the whole history, as if no compaction had been tried */
	const int last = t.r.n - 1;
	assert_int_equal(cJSON_GetArraySize(t.r.msgs[last]), 3);
	assert_string_equal(content_at(&t.r, last, 0), "hello");
	assert_string_equal(content_at(&t.r, last, 1), "Noted.");
	assert_string_equal(content_at(&t.r, last, 2), "again");
	stop(&t);
}

/* ---- attachments around a compaction ---- */

/* scripted/tiny as CONFIG, and a rule that names the files the fourth prompt carried */
#define CONFIG_FILES                                                                         \
	"{\"model\":\"scripted/tiny\",\"providers\":{\"scripted\":{\"pace_ms\":1,\"models\":"   \
	"{\"tiny\":{\"limit\":{\"context\":2000,\"output\":200}}},\"rules\":["                  \
	"{\"attachments\":true,\"regex\":\"^fourth\",\"steps\":[{\"text\":\"I received "        \
	"{{files}}.\"}]}," RULE_LIST("1") "]}}}"

/* A prompt of parts (JSON), accepted, then idle and on disk; its turn into turn. */
static void parts_wait(struct t *t, const char *parts_json, char *turn)
{
	cJSON *parts = cJSON_Parse(parts_json);
	assert_non_null(parts);
	struct prompt p = {.session_id = t->sid, .parts = parts, .source = "http"};
	struct prompt_result r;
	struct err e = {0};
	if (engine_prompt(t->h.E, &p, &r, NULL, &e))
		fail_msg("prompt refused: %s", e.msg);
	cJSON_Delete(parts);
	if (turn)
		snprintf(turn, ID_MAX, "%s", r.turn_id);
	assert_true(h_until(&t->h, h_idle, t->sid, 20000));
	assert_int_equal(engine_flush(t->h.E), 0);
}

/* The files of message i of request req (its "files" array), or NULL. */
static const cJSON *files_at(const struct reqs *r, int req, int i)
{
	return cJSON_GetObjectItem(cJSON_GetArrayItem(r->msgs[req], i), "files");
}

static const char *file_name(const cJSON *files, int k)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(files, k), "filename"));
}

/* The compaction's request shows the model the files of the history it summarises,
 * each on its own message; the turn after it sees the summary and its own file, never
 * the files from before the summary. */
static void files_reach_the_compaction_and_the_turn_after_it_carries_its_own(void **state)
{
	struct t t;
	start(&t, CONFIG_FILES);
	char *first = filler("FIRST", 2400), parts[3000], turn[ID_MAX];
	snprintf(parts, sizeof(parts), "[{\"type\":\"text\",\"text\":\"%s\"},{\"type\":\"file\","
		 "\"mime\":\"text/plain\",\"filename\":\"old.txt\",\"url\":\"data:text/plain,"
		 "OLDFILE%%20body\"}]", first);
	free(first);
	parts_wait(&t, parts, NULL);
	long_prompt_wait(&t, "SECOND");
	long_prompt_wait(&t, "THIRD");
	parts_wait(&t, "[{\"type\":\"text\",\"text\":\"fourth, with a file\"},{\"type\":\"file\","
		   "\"mime\":\"text/plain\",\"filename\":\"new.txt\",\"url\":\"data:text/plain,"
		   "NEWFILE\"}]", turn);
	assert_int_equal(h_turns_from(&t.h, t.sid, "compaction", "completed"), 1);

	/* the compaction's request (the fourth of five): the old file on the first prompt */
	assert_int_equal(t.r.n, 5);
	assert_non_null(strstr(t.r.system[3], "summarize"));
	const cJSON *old = files_at(&t.r, 3, 0);
	assert_int_equal(cJSON_GetArraySize(old), 1);
	assert_string_equal(file_name(old, 0), "old.txt");
	assert_true(request_mentions(&t.r, 3, "data:text/plain;base64,"));
	for (int i = 1; i < cJSON_GetArraySize(t.r.msgs[3]); i++)
		assert_null(files_at(&t.r, 3, i));
	assert_false(request_mentions(&t.r, 3, "new.txt"));
	/* the turn after it: question, summary, the prompt with its own file only */
	assert_int_equal(cJSON_GetArraySize(t.r.msgs[4]), 3);
	assert_string_equal(content_at(&t.r, 4, 1), SUMMARY);
	assert_null(files_at(&t.r, 4, 0));
	assert_null(files_at(&t.r, 4, 1));
	const cJSON *own = files_at(&t.r, 4, 2);
	assert_int_equal(cJSON_GetArraySize(own), 1);
	assert_string_equal(file_name(own, 0), "new.txt");
	assert_false(request_mentions(&t.r, 4, "old.txt"));
	char *reply = h_reply_text(&t.h, turn);
	assert_string_equal(reply, "I received new.txt (text/plain, 7 bytes).");
	free(reply);
	/* and a turn after that one still sends the file it is owed (its history's) */
	prompt_wait(&t, "fifth", NULL, NULL);
	assert_int_equal(cJSON_GetArraySize(t.r.msgs[5]), 5);
	assert_string_equal(file_name(files_at(&t.r, 5, 2), 0), "new.txt");
	assert_false(request_mentions(&t.r, 5, "old.txt"));
	h_check_ledger(&t.h, t.sid);
	stop(&t);
}

/* ---- a provider's context-overflow error ---- */

static cJSON *last_messages(const char *model)
{
	cJSON *rq = mock_last_request(model);
	assert_non_null(rq);
	cJSON *msgs = cJSON_DetachItemFromObject(cJSON_GetObjectItem(rq, "body"), "messages");
	cJSON_Delete(rq);
	const cJSON *first = cJSON_GetArrayItem(msgs, 0);
	if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(first, "role")), "system"))
		cJSON_DeleteItemFromArray(msgs, 0); /* OpenAI's place for the agent's prompt */
	return msgs;
}

static const char *msg_text(const cJSON *msgs, int i)
{
	const cJSON *c = cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, i), "content");
	if (cJSON_IsArray(c)) /* Anthropic's blocks */
		c = cJSON_GetObjectItem(cJSON_GetArrayItem(c, 0), "text");
	return cJSON_GetStringValue(c);
}

static void overflow_compacts_and_retries(const char *provider, const char *tag)
{
	struct t t;
	start(&t, CONFIG);
	char recall[64], overflow[64], turn[ID_MAX];
	snprintf(recall, sizeof(recall), "%s/recall@%s", provider, tag);
	snprintf(overflow, sizeof(overflow), "%s/overflow@%s", provider, tag);
	prompt_wait(&t, "OLDEST question", recall, NULL);
	prompt_wait(&t, "the big one", overflow, turn);

	char *st = h_turn_state(&t.h, turn);
	assert_string_equal(st, "completed");
	free(st);
	char *c = last_compaction(&t, "compaction");
	assert_true(strcmp(c, turn) < 0);
	char *part = part_json(&t, c, "compaction");
	assert_non_null(strstr(part, "\"auto\":true,\"overflow\":true"));
	/* the model wrote the summary from the history (recall: what it was sent) */
	char *summary = h_reply_text(&t.h, c);
	assert_non_null(strstr(summary, "OLDEST question"));
	assert_non_null(strstr(summary, "Summarize the conversation"));
	/* the retry carried the summary, not the history: question, summary, the prompt */
	cJSON *msgs = last_messages(overflow + strlen(provider) + 1);
	assert_int_equal(cJSON_GetArraySize(msgs), 3);
	assert_string_equal(msg_text(msgs, 0), "What have we done so far?");
	assert_string_equal(msg_text(msgs, 1), summary);
	assert_string_equal(msg_text(msgs, 2), "the big one");
	cJSON_Delete(msgs);
	/* three requests for the model: refused, the summary, the retry; one reply */
	char *reply = h_reply_text(&t.h, turn);
	assert_non_null(strstr(reply, "3 msgs: user:What have we done so far?"));
	assert_int_equal(h_replies(&t.h, turn, NULL), 1);
	assert_int_equal(h_count(&t.h, "message.removed", t.sid), 1);
	free(reply);
	free(summary);
	free(part);
	free(c);
	stop(&t);
}

static void openai_overflow_compacts_and_retries_the_request_once(void **state)
{
	overflow_compacts_and_retries("openai", "oa1");
}

static void anthropic_overflow_compacts_and_retries_the_request_once(void **state)
{
	overflow_compacts_and_retries("anthropic", "an1");
}

/* A noReply note between the last turn and one whose request overflows: the history
 * the refused request was built from already holds it, so the compaction must sort
 * after it (ids between the turn below and the turn are random: several rounds) — it
 * summarises the note, and the retry is sent the summary, not the history again. */
static void a_noreply_note_before_an_overflow_is_summarised(void **state)
{
	struct t t;
	start(&t, CONFIG);
	for (int round = 0; round < 4; round++) {
		char recall[64], overflow[64], turn[ID_MAX], note[64];
		snprintf(recall, sizeof(recall), "openai/recall@nr%d", round);
		snprintf(overflow, sizeof(overflow), "openai/overflow@nr%d", round);
		snprintf(note, sizeof(note), "NOTE of round %d", round);
		h_session(&t.h, t.sid);
		prompt_wait(&t, "OLDEST question", recall, NULL);
		struct prompt p = {.session_id = t.sid, .text = note, .source = "http",
				   .no_reply = 1};
		struct prompt_result r;
		struct err e = {0};
		assert_int_equal(engine_prompt(t.h.E, &p, &r, NULL, &e), 0);
		prompt_wait(&t, "the big one", overflow, turn);

		char *st = h_turn_state(&t.h, turn);
		assert_string_equal(st, "completed");
		free(st);
		char *order = h_sql_str(&t.h, "SELECT turn_id FROM message WHERE id='%s'",
					r.user_message_id);
		char *c = last_compaction(&t, "compaction");
		char *summary = h_reply_text(&t.h, c);
		assert_non_null(strstr(summary, note));
		cJSON *msgs = last_messages(overflow + strlen("openai/"));
		assert_int_equal(cJSON_GetArraySize(msgs), 3);
		assert_string_equal(msg_text(msgs, 0), "What have we done so far?");
		assert_string_equal(msg_text(msgs, 1), summary);
		cJSON_Delete(msgs);
		assert_true(strcmp(order, c) < 0 && strcmp(c, turn) < 0);
		h_check_ledger(&t.h, t.sid);
		free(summary);
		free(c);
		free(order);
	}
	stop(&t);
}

static void a_second_overflow_fails_the_turn_naming_the_cause(void **state)
{
	struct t t;
	start(&t, CONFIG);
	char turn[ID_MAX];
	prompt_wait(&t, "OLDEST question", "openai/recall@odd", NULL);
	prompt_wait(&t, "too big, twice", "openai/overflow-odd@odd", turn);
	char *st = h_turn_state(&t.h, turn);
	assert_string_equal(st, "failed");
	free(st);
	assert_int_equal(h_turns_from(&t.h, t.sid, "compaction", "completed"), 1);
	char *why = h_reply_error(&t.h, turn);
	assert_non_null(strstr(why, "still over the context window of openai/overflow-odd@odd"));
	assert_non_null(strstr(why, "maximum context length is 8192 tokens"));
	char *name = h_reply_error_name(&t.h, turn, "error");
	assert_string_equal(name, "ContextOverflowError");
	free(name);
	free(why);
	assert_int_equal(h_count(&t.h, "session.error", t.sid), 1);
	stop(&t);
}

static void an_overflow_with_nothing_older_fails_at_once(void **state)
{
	struct t t;
	start(&t, CONFIG);
	char turn[ID_MAX];
	prompt_wait(&t, "alone and too big", "anthropic/overflow-always@alone", turn);
	char *why = h_reply_error(&t.h, turn);
	assert_non_null(strstr(why, "no older turns to compact"));
	assert_non_null(strstr(why, "prompt is too long"));
	free(why);
	assert_int_equal(h_turns_from(&t.h, t.sid, "compaction", NULL), 0);
	cJSON *st = mock_stats();
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(st, "by_model"),
					     "overflow-always@alone")->valueint, 1);
	cJSON_Delete(st);
	stop(&t);
}

static void a_scripted_overflow_error_is_one_too(void **state)
{
	struct t t;
	start(&t, CONFIG);
	char turn[ID_MAX];
	prompt_wait(&t, "hello", NULL, NULL);
	prompt_wait(&t, "toolong please", NULL, turn);
	/* the retry meets the same rule: compacted once, then the cause */
	assert_int_equal(h_turns_from(&t.h, t.sid, "compaction", "completed"), 1);
	char *why = h_reply_error(&t.h, turn);
	assert_non_null(strstr(why, "still over the context window of scripted/tiny"));
	assert_non_null(strstr(why, "prompt is too long: 300000 tokens"));
	free(why);
	stop(&t);
}

/* ---- kill -9 during a compaction ---- */

static void child_compacting(const char *dir, int fd)
{
	struct t t;
	memset(&t, 0, sizeof(t));
	snprintf(t.h.dir, sizeof(t.h.dir), "%s", dir);
	h_start(&t.h, 1);
	h_session(&t.h, t.sid);
	for (int i = 0; i < 3; i++) {
		char tag[8];
		snprintf(tag, sizeof(tag), "P%d", i);
		char *p = filler(tag, 2400);
		h_prompt(&t.h, t.sid, p, "http", NULL);
		free(p);
	}
	h_prompt(&t.h, t.sid, "after the summary", "http", NULL);
	if (write(fd, t.sid, strlen(t.sid) + 1) < 0)
		_exit(3);
	h_spin(&t.h, 60000);
	_exit(4);
}

static void kill_during_a_compaction_recovers_like_any_turn(void **state)
{
	struct h h;
	h_dir(&h, CONFIG_PACED("400"));
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	if (pid == 0)
		child_compacting(h.dir, fds[1]);
	close(fds[1]);
	char sid[ID_MAX] = "";
	assert_true(read(fds[0], sid, sizeof(sid)) > 0);
	close(fds[0]);
	/* the summary streams slowly: kill once its first words are on disk */
	int64_t len = 0;
	for (int i = 0; i < 1000 && len == 0; i++) {
		usleep(10000);
		char *c = h_last_turn(&h, sid, "compaction", "running");
		len = c ? h_reply_len(&h, c) : 0;
		free(c);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	assert_true(len > 0);

	h_start(&h, 1);
	assert_true(h_until(&h, h_idle, sid, 20000));
	h_check_ledger(&h, sid);
	/* the cut compaction failed as interrupted, its summary marked so; the queued turn
	 * got a new compaction in front of it (after the cut one) and completed */
	char *cut = h_last_turn(&h, sid, "compaction", "failed");
	char *err = h_reply_error(&h, cut);
	assert_string_equal(err, "interrupted");
	free(err);
	char *info = h_sql_str(&h, "SELECT data FROM message WHERE turn_id='%s' AND "
			       "role='assistant'", cut);
	assert_non_null(strstr(info, "\"summary\":true"));
	free(info);
	char *redo = h_last_turn(&h, sid, "compaction", "completed");
	char *last = h_last_turn(&h, sid, "http", "completed");
	assert_true(strcmp(cut, redo) < 0 && strcmp(redo, last) < 0);
	assert_true(h_turn_after(&h, redo, cut));
	assert_int_equal(h_turns(&h, sid, "completed"), 5);
	free(cut);
	free(redo);
	free(last);
	h_stop(&h);
}

/* ---- configuration ---- */

/* scripted/big never compacts; "echo TEXT" makes the model call echo with TEXT */
#define PRUNE_CONFIG(compaction)                                                             \
	"{\"model\":\"scripted/big\"" compaction ",\"providers\":{\"scripted\":{\"pace_ms\":1,"  \
	"\"models\":{\"big\":{\"limit\":{\"context\":100000000,\"output\":200}}},\"rules\":["    \
	"{\"regex\":\"^echo (.*)$\",\"steps\":[{\"tools\":[{\"name\":\"echo\",\"input\":{"       \
	"\"text\":\"{{1}}\"}}]},{\"text\":\"Echoed.\"}]},"                                   \
	"{\"regex\":\"^twice (.*)$\",\"steps\":[{\"tools\":[{\"name\":\"echo\",\"input\":{"      \
	"\"text\":\"A{{1}}\"}},{\"name\":\"echo\",\"input\":{\"text\":\"B{{1}}\"}}]},"             \
	"{\"text\":\"Echoed twice.\"}]},{\"steps\":[{\"text\":\"Noted.\"}]}]}}}"

/* "VERB TAG lorem ...": tool outputs of chars / 4 tokens each. */
static void tool_turn(struct t *t, const char *verb, const char *tag, int chars)
{
	char *f = filler(tag, chars), *p = NULL;
	assert_true(asprintf(&p, "%s %s", verb, f) > 0);
	prompt_wait(t, p, NULL, NULL);
	free(p);
	free(f);
}

/* One echo of ~25 000 tokens. */
static void echo_turn(struct t *t, const char *tag)
{
	tool_turn(t, "echo", tag, 100000);
}

/* The contents of the last request's tool results, "|"-joined, each cut to 12 bytes. */
static char *tool_results(const struct reqs *r)
{
	static char out[512];
	out[0] = 0;
	const cJSON *m;
	cJSON_ArrayForEach(m, r->msgs[r->n - 1]) {
		const char *c = cJSON_GetStringValue(cJSON_GetObjectItem(m, "content"));
		const char *role = cJSON_GetStringValue(cJSON_GetObjectItem(m, "role"));
		if (role && !strcmp(role, "tool") && c)
			snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%.12s",
				 out[0] ? "|" : "", c);
	}
	return out;
}

static void old_tool_outputs_are_cleared_from_the_history_and_stay_so(void **state)
{
	struct t t;
	start(&t, PRUNE_CONFIG(""));
	/* the two newest turns are never looked at; behind them T2 (25k) is protected and
	 * T1 would free 25k: nothing is cleared until the fourth turn has ended */
	echo_turn(&t, "T1");
	echo_turn(&t, "T2");
	echo_turn(&t, "T3");
	assert_string_equal(tool_results(&t.r), "T1 lorem lor|T2 lorem lor|T3 lorem lor");
	echo_turn(&t, "T4");
	prompt_wait(&t, "fifth", NULL, NULL);
	assert_string_equal(tool_results(&t.r),
			    PRUNED_OUTPUT_12 "|T2 lorem lor|T3 lorem lor|T4 lorem lor");
	/* the store keeps the output, marked */
	char *first = h_sql_str(&t.h, "SELECT p.data FROM part p JOIN message m ON "
			"m.id=p.message_id WHERE m.session_id='%s' AND p.type='tool' ORDER BY "
			"m.turn_id LIMIT 1", t.sid);
	cJSON *d = cJSON_Parse(first);
	const cJSON *st = cJSON_GetObjectItem(d, "state");
	assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(st, "time"), "compacted"));
	assert_non_null(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(st, "output")), "T1 lorem"));
	cJSON_Delete(d);
	free(first);
	/* a new process sends it cleared too, and the next clearing starts after it */
	restart(&t);
	echo_turn(&t, "T5");
	echo_turn(&t, "T6");
	prompt_wait(&t, "seventh", NULL, NULL);
	/* after T6: T5 and T6 protected, then T4 25k, T3 50k: T3 and T2 (50k) cleared */
	assert_string_equal(tool_results(&t.r), PRUNED_OUTPUT_12 "|" PRUNED_OUTPUT_12 "|"
			    PRUNED_OUTPUT_12 "|T4 lorem lor|T5 lorem lor|T6 lorem lor");
	stop(&t);
}

static void clearing_cuts_inside_a_message_with_several_tool_calls(void **state)
{
	struct t t;
	start(&t, PRUNE_CONFIG(""));
	tool_turn(&t, "twice", "X", 84000); /* 21k, 21k */
	echo_turn(&t, "Y");                 /* 25k */
	/* after this one X is behind the last two prompts: back from its second output,
	 * 21k (kept), its first 42k: past PROTECT, freeing 21k */
	prompt_wait(&t, "one", NULL, NULL);
	/* a new process reads X back: its second output counts, after its cleared first */
	restart(&t);
	prompt_wait(&t, "two", NULL, NULL);
	assert_string_equal(tool_results(&t.r), PRUNED_OUTPUT_12 "|BX lorem lor|Y lorem lore");
	/* after two, Y (25k) is behind them too: X's second output is past PROTECT */
	prompt_wait(&t, "three", NULL, NULL);
	assert_string_equal(tool_results(&t.r), PRUNED_OUTPUT_12 "|" PRUNED_OUTPUT_12
			    "|Y lorem lore");
	stop(&t);
}

static void clearing_can_be_turned_off(void **state)
{
	struct t t;
	start(&t, PRUNE_CONFIG(",\"compaction\":{\"prune\":false}"));
	for (int i = 0; i < 4; i++)
		echo_turn(&t, "TX");
	prompt_wait(&t, "fifth", NULL, NULL);
	assert_string_equal(tool_results(&t.r),
			    "TX lorem lor|TX lorem lor|TX lorem lor|TX lorem lor");
	stop(&t);
}

static void compaction_can_be_turned_off_and_bad_values_are_named(void **state)
{
	struct t t;
	start(&t, "{\"model\":\"scripted/tiny\",\"compaction\":{\"auto\":false},\"providers\":"
		  "{\"scripted\":{\"pace_ms\":1,\"models\":{\"tiny\":{\"limit\":{\"context\":2000,"
		  "\"output\":200}}}," RULES("1") "}}}");
	for (int i = 0; i < 4; i++)
		long_prompt_wait(&t, "AGAIN");
	assert_int_equal(h_turns_from(&t.h, t.sid, "compaction", NULL), 0);
	stop(&t);

	struct loop_config lc = {.port = -1};
	struct loop *L = loop_create(&lc);
	static const char *const bad[] = {"{\"compaction\":[]}",
					  "{\"compaction\":{\"auto\":1}}",
					  "{\"compaction\":{\"prune\":\"yes\"}}",
					  "{\"compaction\":{\"reserve_tokens\":-5}}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		h_dir(&t.h, bad[i]);
		char path[300];
		snprintf(path, sizeof(path), "%s/config.json", t.h.dir);
		struct err e = {0};
		assert_int_equal(engine_check_config(L, path, &e), -1);
		assert_non_null(strstr(e.msg, "compaction"));
	}
	loop_destroy(L);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_context_near_the_limit_is_compacted_before_the_next_turn),
		cmocka_unit_test(the_summary_is_kept_across_a_restart),
		cmocka_unit_test(prompts_queued_during_a_compaction_run_after_it_in_order),
		cmocka_unit_test(a_summary_asked_for_waits_its_turn_and_answers_when_it_ends),
		cmocka_unit_test(a_compaction_that_fails_changes_nothing),
		cmocka_unit_test(files_reach_the_compaction_and_the_turn_after_it_carries_its_own),
		cmocka_unit_test(openai_overflow_compacts_and_retries_the_request_once),
		cmocka_unit_test(anthropic_overflow_compacts_and_retries_the_request_once),
		cmocka_unit_test(a_noreply_note_before_an_overflow_is_summarised),
		cmocka_unit_test(a_second_overflow_fails_the_turn_naming_the_cause),
		cmocka_unit_test(an_overflow_with_nothing_older_fails_at_once),
		cmocka_unit_test(a_scripted_overflow_error_is_one_too),
		cmocka_unit_test(kill_during_a_compaction_recovers_like_any_turn),
		cmocka_unit_test(old_tool_outputs_are_cleared_from_the_history_and_stay_so),
		cmocka_unit_test(clearing_cuts_inside_a_message_with_several_tool_calls),
		cmocka_unit_test(clearing_can_be_turned_off),
		cmocka_unit_test(compaction_can_be_turned_off_and_bad_values_are_named),
	};
	return cmocka_run_group_tests(tests, mock_start, mock_stop);
}
