/* The network providers against a real HTTP server on 127.0.0.1 (tests/provider/mockllm)
 * that speaks OpenAI's and Anthropic's streaming formats byte for byte and misbehaves on
 * purpose: every case asserts the parts, the events, the session's final state, and how
 * many requests the retry policy allowed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_int.h"
#include "harness.h"
#include "mock.h"
#include "llm_http.h"
#include "id.h"

/* Every transfer pauses and resumes: the loop is made to fall behind at once. */
static int setup(void **state)
{
	setenv("AGENTGATE_LLM_PENDING_MAX", "64", 1);
	return mock_start(state);
}

static int requests(const char *model)
{
	cJSON *j = mock_stats();
	const cJSON *n = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "by_model"), model);
	int v = cJSON_IsNumber(n) ? n->valueint : 0;
	cJSON_Delete(j);
	return v;
}

#define CFG "{\"stall_timeout_ms\":400,\"retry\":{\"base_ms\":20,\"max\":2,\"stall_max\":1}}"

static void start(struct h *h, const char *cfg)
{
	h_dir(h, cfg ? cfg : CFG);
	h->openai_base = mock_openai_base;
	h->anthropic_base = mock_anthropic_base;
	h_start(h, 1);
}

/* Runs one prompt on PROVIDER/MODEL until idle; returns the turn's state. */
static char *run(struct h *h, char *sid, const char *model, char *turn)
{
	h_session(h, sid);
	h_prompt_model(h, sid, "hi", model, turn);
	assert_true(h_until(h, h_idle, sid, 20000));
	engine_flush(h->E);
	return h_turn_state(h, turn);
}

/* Runs a prompt on model and fails the test, naming the turn's error, unless the turn
 * completed. Returns the turn's final text (the caller frees it). */
static char *run_completed(struct h *h, char *sid, const char *model, char *turn)
{
	char *st = run(h, sid, model, turn);
	if (!st || strcmp(st, "completed"))
		fail_msg("%s: %s (%s)", model, st ? st : "no turn", h_turn_error(h, turn));
	free(st);
	return h_reply_text(h, turn);
}

static int retries_seen(struct h *h, const char *sid)
{
	int n = 0;
	for (int i = 0; i < h->nevents; i++)
		n += !strcmp(h->types[i], "session.status") && strstr(h->events[i], sid) &&
		     strstr(h->events[i], "\"type\":\"retry\"");
	return n;
}

static void keys_never_leak(struct h *h)
{
	for (int i = 0; i < h->nevents; i++) {
		assert_null(strstr(h->events[i], "sk-test-secret"));
		assert_null(strstr(h->events[i], "ak-test-secret"));
	}
}

static void normal_streams_in_both_formats(void **state)
{
	const char *models[] = {"openai/normal", "anthropic/normal"};
	for (int i = 0; i < 2; i++) {
		struct h h;
		start(&h, NULL);
		char sid[ID_MAX], turn[ID_MAX];
		char *text = run_completed(&h, sid, models[i], turn);
		assert_string_equal(text, "Hello from mock.");
		assert_true(h_count(&h, "message.part.delta", sid) >= 1);
		assert_true(h_reply_tokens(&h, turn) > 0);
		cJSON *j = mock_stats();
		const cJSON *hd = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "last"), "headers");
		const cJSON *body = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "last"), "body");
		if (i == 0) {
			assert_string_equal(cJSON_GetObjectItem(hd, "authorization")->valuestring,
					    "Bearer sk-test-secret-0001");
			assert_true(cJSON_IsTrue(cJSON_GetObjectItem(
				cJSON_GetObjectItem(body, "stream_options"), "include_usage")));
		} else {
			assert_string_equal(cJSON_GetObjectItem(hd, "x-api-key")->valuestring,
					    "ak-test-secret-0002");
			assert_non_null(cJSON_GetObjectItem(hd, "anthropic-version"));
			assert_non_null(cJSON_GetObjectItem(body, "system"));
		}
		assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(body, "tools")) >= 2);
		cJSON_Delete(j);
		keys_never_leak(&h);
		free(text);
		h_stop(&h);
	}
}

static void tool_calls_in_fragments_run_and_continue(void **state)
{
	const char *models[] = {"openai/tools", "anthropic/tools", "openai/tools2", "anthropic/tools2"};
	const char *expect[] = {"tool said: from mock", "tool said: from mock", "got both", "got both"};
	for (int i = 0; i < 4; i++) {
		struct h h;
		start(&h, NULL);
		char sid[ID_MAX], turn[ID_MAX];
		char *text = run_completed(&h, sid, models[i], turn);
		assert_non_null(strstr(text, expect[i]));
		assert_int_equal(h_tool_calls(&h, sid, "echo", "completed"), i < 2 ? 1 : 2);
		char *out = h_tool_output(&h, sid, NULL);
		assert_string_equal(out, i < 2 ? "from mock" : "a");
		free(out);
		free(text);
		h_stop(&h);
	}
}

static void every_byte_split_and_malformed_lines_still_parse(void **state)
{
	const char *models[] = {"openai/bytewise", "anthropic/bytewise", "openai/malformed",
				"anthropic/reasoning"};
	for (int i = 0; i < 4; i++) {
		struct h h;
		/* one byte per write, 1 ms apart: tokens are hundreds of ms apart */
		start(&h, "{\"stall_timeout_ms\":10000}");
		char sid[ID_MAX], turn[ID_MAX];
		char *text = run_completed(&h, sid, models[i], turn);
		assert_non_null(text);
		if (i < 2)
			assert_string_equal(text, "Hello from mock.");
		if (i == 3)
			assert_int_equal(h_parts(&h, sid, "reasoning"), 1);
		free(text);
		h_stop(&h);
	}
}

static void stalls_fail_after_their_retry_and_keep_partial_text(void **state)
{
	const char *models[] = {"openai/stall-first@a", "openai/stall-mid@a",
				"openai/stall-keepalive@a", "anthropic/stall-keepalive@b"};
	for (int i = 0; i < 4; i++) {
		struct h h;
		start(&h, NULL);
		char sid[ID_MAX], turn[ID_MAX];
		char *st = run(&h, sid, models[i], turn);
		assert_string_equal(st, "failed");
		char *err = h_turn_error(&h, turn);
		assert_non_null(strstr(err, "LLM stream stalled"));
		assert_non_null(strstr(err, "400 ms"));
		assert_int_equal(requests(strchr(models[i], '/') + 1), 2); /* stall_max 1 */
		assert_int_equal(retries_seen(&h, sid), 1);
		assert_int_equal(h_count(&h, "session.error", sid), 1);
		if (i > 0) {
			char *text = h_reply_text(&h, turn);
			assert_string_equal(text, "Partial answer");
			free(text);
		}
		assert_false(engine_tree_busy(h.E, sid));
		free(st);
		free(err);
		h_stop(&h);
	}
}

static void retryable_errors_are_retried_without_duplicate_text(void **state)
{
	/* each model name has its own counter at the mock: fresh names per case */
	const char *models[] = {"openai/rate-limit-ms@c1", "anthropic/rate-limit@c2", "openai/flaky@c3",
				"anthropic/overloaded@c4", "openai/drop-mid@c5", "anthropic/drop-mid@c6"};
	const int want[] = {2, 2, 2, 3, 2, 2};
	for (int i = 0; i < 6; i++) {
		struct h h;
		start(&h, NULL);
		char sid[ID_MAX], turn[ID_MAX];
		char *text = run_completed(&h, sid, models[i], turn);
		assert_string_equal(text, "Hello from mock.");
		if (requests(strchr(models[i], '/') + 1) != want[i] || retries_seen(&h, sid) != want[i] - 1)
			fail_msg("%s: %d requests, %d retries shown; want %d", models[i],
				 requests(strchr(models[i], '/') + 1), retries_seen(&h, sid), want[i]);
		free(text);
		h_stop(&h);
	}
}

static int64_t retry_wait(struct h *h, const char *sid)
{
	for (int i = 0; i < h->nevents; i++) {
		if (strcmp(h->types[i], "session.status") || !strstr(h->events[i], "\"retry\""))
			continue;
		cJSON *j = cJSON_Parse(h->events[i]);
		const cJSON *st = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "properties"), "status");
		int64_t next = (int64_t)cJSON_GetObjectItem(st, "next")->valuedouble;
		assert_int_equal(cJSON_GetObjectItem(st, "attempt")->valueint, 2);
		assert_non_null(cJSON_GetObjectItem(st, "message"));
		cJSON_Delete(j);
		return next;
	}
	return -1;
}

static void retry_after_is_honoured(void **state)
{
	struct h h;
	start(&h, NULL);
	char sid[ID_MAX], turn[ID_MAX];
	int64_t before = now_ms();
	char *st = run(&h, sid, "openai/rate-limit@d", turn);
	assert_string_equal(st, "completed");
	/* retry-after: 1 s, while the configured backoff is 20 ms */
	assert_true(retry_wait(&h, sid) - before >= 950);
	free(st);
	h_stop(&h);
}

/* A wait longer than retry.cap_ms (an hour, a value that overflows 64 bits in seconds or
 * in ms, a date in 2100) fails the attempt at once, naming the value and the cap, instead
 * of leaving the session "retrying" for as long as the provider likes. */
static void retry_after_over_the_cap_fails_at_once_naming_both(void **state)
{
	const char *models[] = {"openai/rate-limit-hour@e1", "anthropic/rate-limit-hour@e2",
				"openai/rate-limit-huge@e3", "anthropic/rate-limit-huge@e4",
				"openai/rate-limit-ms-huge@e5", "anthropic/rate-limit-date@e6"};
	const char *want[] = {"after 3600000 ms,", "after 3600000 ms,",
			      "after more than 9223372036854775807 ms,",
			      "after more than 9223372036854775807 ms,",
			      "after more than 9223372036854775807 ms,", " ms, over"};
	for (int i = 0; i < 6; i++) {
		struct h h;
		start(&h, "{\"stall_timeout_ms\":400,\"retry\":{\"base_ms\":20,\"max\":2,"
		      "\"cap_ms\":5000}}");
		char sid[ID_MAX], turn[ID_MAX];
		char *st = run(&h, sid, models[i], turn);
		char *err = h_turn_error(&h, turn);
		if (strcmp(st, "failed") || !strstr(err, "provider asked to retry after") ||
		    !strstr(err, want[i]) || !strstr(err, "over retry.cap_ms 5000") ||
		    !strstr(err, "Rate limit reached"))
			fail_msg("%s: %s: %s", models[i], st, err);
		assert_int_equal(requests(strchr(models[i], '/') + 1), 1);
		assert_int_equal(retries_seen(&h, sid), 0);
		assert_int_equal(h_count(&h, "session.error", sid), 1);
		char *msg = h_reply_error(&h, turn);
		assert_string_equal(msg, err);
		assert_false(engine_tree_busy(h.E, sid));
		free(msg);
		free(err);
		free(st);
		h_stop(&h);
	}
}

/* Within the cap a retry-after is honoured in its other forms too: a decimal number of
 * seconds, and an HTTP-date in the past (retry now, after the usual backoff). */
static void retry_after_decimal_and_past_date_are_honoured(void **state)
{
	const char *models[] = {"openai/rate-limit-decimal@f1", "anthropic/rate-limit-past@f2"};
	for (int i = 0; i < 2; i++) {
		struct h h;
		start(&h, NULL);
		char sid[ID_MAX], turn[ID_MAX];
		int64_t before = now_ms();
		char *text = run_completed(&h, sid, models[i], turn);
		assert_string_equal(text, "Hello from mock.");
		assert_int_equal(requests(strchr(models[i], '/') + 1), 2);
		if (i == 0) /* retry-after: 0.25 while the configured backoff is 20 ms */
			assert_true(retry_wait(&h, sid) - before >= 240);
		free(text);
		h_stop(&h);
	}
}

/* The scripted provider's error.retry_after_ms goes through the same rule. */
static void scripted_retry_after_over_the_cap_fails_too(void **state)
{
	struct h h;
	start(&h, "{\"retry\":{\"base_ms\":20,\"cap_ms\":5000},\"providers\":{\"scripted\":"
	      "{\"pace_ms\":1,\"rules\":[{\"match\":\"hour\",\"steps\":[{\"error\":{\"status\":"
	      "429,\"message\":\"slow down\",\"retry_after_ms\":3600000}}]},{\"match\":\"huge\","
	      "\"steps\":[{\"error\":{\"status\":429,\"message\":\"slow down\","
	      "\"retry_after_ms\":1e300}}]}]}}}");
	const char *prompts[] = {"hour", "huge"};
	const char *want[] = {"provider asked to retry after 3600000 ms, over retry.cap_ms 5000: "
			      "slow down", "provider asked to retry after more than "
			      "9223372036854775807 ms, over retry.cap_ms 5000: slow down"};
	for (int i = 0; i < 2; i++) {
		char sid[ID_MAX], turn[ID_MAX];
		h_session(&h, sid);
		h_prompt_model(&h, sid, prompts[i], "scripted/demo", turn);
		assert_true(h_until(&h, h_idle, sid, 20000));
		engine_flush(h.E);
		char *err = h_turn_error(&h, turn);
		assert_string_equal(err, want[i]);
		assert_int_equal(retries_seen(&h, sid), 0);
		free(err);
	}
	h_stop(&h);
}

static int mock_idle(struct h *h, void *arg);

/* The failed turn's terminal assistant message carries the turn's error, session.error
 * went out once, and nothing is busy any more. */
static void failed_visibly(struct h *h, const char *sid, const char *turn, const char *model,
			   const char *want)
{
	char *st = h_turn_state(h, turn);
	char *err = h_turn_error(h, turn);
	if (!st || strcmp(st, "failed") || !err || !strstr(err, want))
		fail_msg("%s: turn %s: %s (want an error with \"%s\")", model, st ? st : "?",
			 err ? err : "no error", want);
	char *msg = h_reply_error(h, turn);
	assert_non_null(msg);
	assert_string_equal(msg, err);
	assert_int_equal(h_count(h, "session.error", sid), 1);
	assert_false(engine_tree_busy(h->E, sid));
	free(msg);
	free(err);
	free(st);
}

/* A provider that streams without end, text or tool-call arguments, is cut at
 * limits.max_output_bytes: the turn fails naming the limit, not retried, with at most
 * that much text kept, and the connection is closed. */
static void endless_stream_ends_at_max_output_bytes(void **state)
{
	const char *models[] = {"openai/endless@g1", "anthropic/endless@g2",
				"openai/endless-args@g3", "anthropic/endless-args@g4"};
	for (int i = 0; i < 4; i++) {
		struct h h;
		start(&h, "{\"stall_timeout_ms\":5000,\"retry\":{\"base_ms\":20,\"max\":2},"
		      "\"limits\":{\"max_output_bytes\":65536}}");
		char sid[ID_MAX], turn[ID_MAX];
		h_session(&h, sid);
		h_prompt_model(&h, sid, "hi", models[i], turn);
		assert_true(h_until(&h, h_idle, sid, 60000));
		engine_flush(h.E);
		failed_visibly(&h, sid, turn, models[i], "over limits.max_output_bytes 65536");
		assert_int_equal(requests(strchr(models[i], '/') + 1), 1);
		assert_int_equal(retries_seen(&h, sid), 0);
		int64_t kept = h_reply_len(&h, turn);
		if (i < 2 && (kept <= 0 || kept > 65536))
			fail_msg("%s: %lld bytes of text kept", models[i], (long long)kept);
		assert_int_equal(h_parts(&h, turn, "tool"), 0);
		assert_true(h_until(&h, mock_idle, NULL, 5000));
		h_stop(&h);
	}
}

static int has_text(struct h *h, void *sid)
{
	return h_count(h, "message.part.delta", sid) >= 2;
}

/* A token every 50 ms never trips a 5 s stall timeout, yet the attempt is cut at
 * limits.max_attempt_ms, retried once like a stall (retry.stall_max), then failed
 * naming the limit. */
static void slow_drip_ends_at_max_attempt_ms(void **state)
{
	const char *models[] = {"openai/drip@h1", "anthropic/drip@h2"};
	for (int i = 0; i < 2; i++) {
		struct h h;
		start(&h, "{\"stall_timeout_ms\":5000,\"retry\":{\"base_ms\":20,\"stall_max\":1},"
		      "\"limits\":{\"max_attempt_ms\":600}}");
		char sid[ID_MAX], turn[ID_MAX];
		h_session(&h, sid);
		h_prompt_model(&h, sid, "50", models[i], turn);
		assert_true(h_until(&h, has_text, sid, 10000));
		assert_true(h_until(&h, h_idle, sid, 30000));
		engine_flush(h.E);
		failed_visibly(&h, sid, turn, models[i], "over limits.max_attempt_ms 600 ms");
		char *err = h_turn_error(&h, turn);
		assert_null(strstr(err, "stalled"));
		free(err);
		assert_int_equal(requests(strchr(models[i], '/') + 1), 2);
		assert_int_equal(retries_seen(&h, sid), 1);
		char *text = h_reply_text(&h, turn);
		assert_non_null(text);
		assert_int_equal(strncmp(text, "drip drip ", 10), 0);
		free(text);
		assert_true(h_until(&h, mock_idle, NULL, 5000));
		h_stop(&h);
	}
}

/* scripted/demo cannot bypass the limits: a rule with a huge text, one whose tool-call
 * arguments are too long, and one paced slower than max_attempt_ms allows. */
static void scripted_rules_are_held_to_the_same_limits(void **state)
{
	char word[1001];
	memset(word, 'w', 1000);
	word[1000] = 0;
	char cfg[4096];
	snprintf(cfg, sizeof(cfg),
		 "{\"stall_timeout_ms\":5000,\"retry\":{\"base_ms\":10,\"stall_max\":1},"
		 "\"limits\":{\"max_output_bytes\":8192,\"max_attempt_ms\":1500},"
		 "\"providers\":{\"scripted\":{\"pace_ms\":1,\"rules\":["
		 "{\"match\":\"huge\",\"steps\":[{\"text\":\" %s\",\"repeat\":100000000}]},"
		 "{\"match\":\"bigargs\",\"steps\":[{\"text\":\"calling\",\"tools\":[{\"name\":"
		 "\"echo\",\"input\":{\"text\":\"{{prompt}}\"}}]}]},"
		 "{\"match\":\"drip\",\"steps\":[{\"text\":\"drip \",\"repeat\":100000,"
		 "\"pace_ms\":20}]}]}}}", word);
	struct h h;
	start(&h, cfg);
	char *bigargs = malloc(9001);
	memset(bigargs, 'a', 9000);
	memcpy(bigargs, "bigargs ", 8);
	bigargs[9000] = 0;
	const char *prompts[] = {"huge", bigargs, "drip"};
	const char *want[] = {"over limits.max_output_bytes 8192", "over limits.max_output_bytes 8192",
			      "over limits.max_attempt_ms 1500 ms"};
	for (int i = 0; i < 3; i++) {
		char sid[ID_MAX], turn[ID_MAX];
		h_session(&h, sid);
		h_prompt_model(&h, sid, prompts[i], "scripted/demo", turn);
		assert_true(h_until(&h, h_idle, sid, 30000));
		engine_flush(h.E);
		failed_visibly(&h, sid, turn, prompts[i], want[i]);
		assert_int_equal(retries_seen(&h, sid), i == 2 ? 1 : 0);
		int64_t kept = h_reply_len(&h, turn);
		if (kept <= 0 || kept > 8192)
			fail_msg("%.20s: %lld bytes of text kept", prompts[i], (long long)kept);
		assert_int_equal(h_parts(&h, turn, "tool"), 0);
	}
	free(bigargs);
	h_stop(&h);
}

static void client_errors_are_not_retried_and_show_the_providers_message(void **state)
{
	const char *models[] = {"openai/bad-request", "anthropic/bad-request", "openai/auth"};
	const char *name[] = {"APIError", "APIError", "ProviderAuthError"};
	for (int i = 0; i < 3; i++) {
		struct h h;
		start(&h, NULL);
		char sid[ID_MAX], turn[ID_MAX];
		int before = requests(strchr(models[i], '/') + 1);
		char *st = run(&h, sid, models[i], turn);
		assert_string_equal(st, "failed");
		assert_int_equal(requests(strchr(models[i], '/') + 1) - before, 1);
		char *msg = h_reply_error(&h, turn);
		assert_non_null(strstr(msg, i == 2 ? "Incorrect API key" : "does not exist"));
		char *nm = h_reply_error_name(&h, turn, "error");
		assert_string_equal(nm, name[i]);
		assert_int_equal(h_count(&h, "session.error", sid), 1);
		assert_int_equal(retries_seen(&h, sid), 0);
		keys_never_leak(&h);
		free(nm);
		free(msg);
		free(st);
		h_stop(&h);
	}
}

/* Without a key a request still goes out (a local OpenAI-compatible server may take it);
 * a provider that refuses it gets the missing variable named in the session's error. */
static void a_refusal_without_a_key_names_the_missing_variable(void **state)
{
	const char *models[] = {"openai/auth", "anthropic/auth"};
	const char *says[] = {"no OPENAI_API_KEY set (nor providers.openai.api_key): ",
			      "no ANTHROPIC_API_KEY set (nor providers.anthropic.api_key): "};
	unsetenv("OPENAI_API_KEY");
	unsetenv("ANTHROPIC_API_KEY");
	for (int i = 0; i < 2; i++) {
		struct h h;
		start(&h, NULL);
		char sid[ID_MAX], turn[ID_MAX];
		char *st = run(&h, sid, models[i], turn);
		assert_string_equal(st, "failed");
		char *msg = h_reply_error(&h, turn);
		if (!strstr(msg, says[i]) || !strstr(msg, "Incorrect API key"))
			fail_msg("%s without a key: \"%s\"", models[i], msg);
		int named = 0; /* in the session.error event too */
		for (int k = 0; k < h.nevents; k++)
			named += !strcmp(h.types[k], "session.error") && strstr(h.events[k], says[i]);
		assert_int_equal(named, 1);
		free(msg);
		free(st);
		/* keyless is no refusal: a server that takes requests without a key answers */
		char *text = run_completed(&h, sid, i ? "anthropic/normal" : "openai/normal", turn);
		assert_string_equal(text, "Hello from mock.");
		free(text);
		h_stop(&h);
	}
	/* with a key, a refusal is the provider's word alone */
	setenv("OPENAI_API_KEY", "sk-test-secret-0001", 1); /* as mock_start set them */
	setenv("ANTHROPIC_API_KEY", "ak-test-secret-0002", 1);
	struct h h;
	start(&h, NULL);
	char sid[ID_MAX], turn[ID_MAX];
	free(run(&h, sid, "openai/auth", turn));
	char *msg = h_reply_error(&h, turn);
	assert_non_null(strstr(msg, "Incorrect API key"));
	assert_null(strstr(msg, "OPENAI_API_KEY"));
	free(msg);
	h_stop(&h);
}

static void server_errors_stop_after_the_retry_budget(void **state)
{
	struct h h;
	start(&h, NULL);
	char sid[ID_MAX], turn[ID_MAX];
	int before = requests("always-500");
	char *st = run(&h, sid, "openai/always-500", turn);
	assert_string_equal(st, "failed");
	assert_int_equal(requests("always-500") - before, 3); /* 1 + retry.max 2 */
	free(st);
	h_stop(&h);
}

static int has_delta(struct h *h, void *sid)
{
	return h_count(h, "message.part.delta", sid) >= 1;
}

static int mock_idle(struct h *h, void *arg)
{
	cJSON *j = mock_stats();
	const cJSON *open = cJSON_GetObjectItem(j, "active_streams");
	const cJSON *aborts = cJSON_GetObjectItem(j, "client_aborts");
	int idle = cJSON_IsNumber(open) && open->valueint == 0 && aborts->valueint >= 1;
	cJSON_Delete(j);
	return idle;
}

static void abort_cancels_the_transfer(void **state)
{
	struct h h;
	start(&h, NULL);
	char sid[ID_MAX], turn[ID_MAX];
	h_session(&h, sid);
	h_prompt_model(&h, sid, "hi", "openai/slow", turn);
	assert_true(h_until(&h, has_delta, sid, 5000));
	struct err e = {0};
	assert_int_equal(engine_abort(h.E, sid, &e), 0);
	assert_false(engine_tree_busy(h.E, sid));
	/* the provider sees its connection closed */
	assert_true(h_until(&h, mock_idle, NULL, 5000));
	engine_flush(h.E);
	char *st = h_turn_state(&h, turn);
	assert_string_equal(st, "cancelled");
	free(st);
	h_stop(&h);
}

/* A provider that accepts the connection and never answers: the kernel completes the
 * handshake on a listening socket nobody accepts from. */
static void no_first_byte_fails_after_the_first_byte_timeout(void **state)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	char base[64];
	snprintf(base, sizeof(base), "http://127.0.0.1:%d/v1", ntohs(a.sin_port));
	struct h h;
	h_dir(&h, "{\"first_byte_timeout_ms\":300,\"retry\":{\"base_ms\":10,\"max\":1}}");
	h.openai_base = base;
	h_start(&h, 1);
	char sid[ID_MAX], turn[ID_MAX];
	char *st = run(&h, sid, "openai/anything", turn);
	assert_string_equal(st, "failed");
	char *err = h_turn_error(&h, turn);
	assert_non_null(strstr(err, "no response from the provider within 300 ms"));
	assert_int_equal(retries_seen(&h, sid), 1);
	free(err);
	free(st);
	h_stop(&h);
	close(fd);
}

/* A loop that falls behind pauses the transfer and resumes it: with a tiny threshold
 * this happens on nearly every chunk of a long stream, and nothing is lost. */
static void back_pressure_pauses_and_resumes_without_loss(void **state)
{
	struct h h;
	start(&h, "{\"stall_timeout_ms\":20000}");
	char sid[ID_MAX], turn[ID_MAX];
	h_session(&h, sid);
	h_prompt_model(&h, sid, "20000", "openai/long", turn);
	assert_true(h_until(&h, h_idle, sid, 60000));
	assert_true(llmio_pauses(h.E->io) > 0); /* the threshold was hit: pauses happened */
	engine_flush(h.E);
	assert_int_equal(h_reply_len(&h, turn), 20000 * 4);
	h_stop(&h);
}

/* The conversation a step sends, across turns: every ended turn's messages (kept in
 * memory once converted, and rebuilt from the store after a restart), the running
 * turn's own tool round-trip, and never a prompt still queued behind it. */
static void each_step_sees_the_ended_turns_and_its_own_but_no_queued_prompt(void **state)
{
	struct h h;
	start(&h, NULL);
	char sid[ID_MAX], t1[ID_MAX], t2[ID_MAX], t3[ID_MAX], t4[ID_MAX];
	h_session(&h, sid);
	h_prompt_model(&h, sid, "one", "openai/recall", t1);
	assert_true(h_until(&h, h_idle, sid, 20000));
	h_prompt_model(&h, sid, "two", "openai/tools", t2);
	assert_true(h_until(&h, h_idle, sid, 20000));
	engine_flush(h.E);
	char *r1 = h_reply_text(&h, t1);
	assert_string_equal(r1, "1 msgs: user:one");
	/* the third and fourth are both accepted before the third runs */
	h_prompt_model(&h, sid, "three", "openai/recall", t3);
	h_prompt_model(&h, sid, "four", "openai/recall", t4);
	assert_true(h_until(&h, h_idle, sid, 20000));
	engine_flush(h.E);
	char *r3 = h_reply_text(&h, t3), *r4 = h_reply_text(&h, t4);
	/* user one, its answer, user two, the tool call, its result, the answer, user three */
	assert_int_equal(strncmp(r3, "7 msgs: user:one|assistant:1 msgs: user:one|user:two|"
			 "assistant:", 53), 0);
	assert_non_null(strstr(r3, "+calls|tool:"));
	assert_non_null(strstr(r3, "|user:three"));
	assert_null(strstr(r3, "four"));
	assert_non_null(strstr(r4, "9 msgs: "));
	assert_non_null(strstr(r4, "|user:three|assistant:7 msgs:"));
	assert_non_null(strstr(r4, "|user:four"));
	/* after a restart the kept history is rebuilt from the store: the same conversation */
	h_stop(&h);
	h.openai_base = mock_openai_base;
	h_start(&h, 1);
	char t5[ID_MAX];
	h_prompt_model(&h, sid, "five", "openai/recall", t5);
	assert_true(h_until(&h, h_idle, sid, 20000));
	engine_flush(h.E);
	char *r5 = h_reply_text(&h, t5);
	assert_int_equal(strncmp(r5, "11 msgs: ", 9), 0);
	assert_non_null(strstr(r5, r4 + strlen("9 msgs: "))); /* turn four's view, whole */
	free(r1);
	free(r3);
	free(r4);
	free(r5);
	h_stop(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(normal_streams_in_both_formats),
		cmocka_unit_test(tool_calls_in_fragments_run_and_continue),
		cmocka_unit_test(every_byte_split_and_malformed_lines_still_parse),
		cmocka_unit_test(stalls_fail_after_their_retry_and_keep_partial_text),
		cmocka_unit_test(retryable_errors_are_retried_without_duplicate_text),
		cmocka_unit_test(retry_after_is_honoured),
		cmocka_unit_test(retry_after_over_the_cap_fails_at_once_naming_both),
		cmocka_unit_test(retry_after_decimal_and_past_date_are_honoured),
		cmocka_unit_test(scripted_retry_after_over_the_cap_fails_too),
		cmocka_unit_test(client_errors_are_not_retried_and_show_the_providers_message),
		cmocka_unit_test(a_refusal_without_a_key_names_the_missing_variable),
		cmocka_unit_test(server_errors_stop_after_the_retry_budget),
		cmocka_unit_test(abort_cancels_the_transfer),
		cmocka_unit_test(no_first_byte_fails_after_the_first_byte_timeout),
		cmocka_unit_test(back_pressure_pauses_and_resumes_without_loss),
		cmocka_unit_test(each_step_sees_the_ended_turns_and_its_own_but_no_queued_prompt),
		cmocka_unit_test(endless_stream_ends_at_max_output_bytes),
		cmocka_unit_test(slow_drip_ends_at_max_attempt_ms),
		cmocka_unit_test(scripted_rules_are_held_to_the_same_limits),
	};
	return cmocka_run_group_tests(tests, setup, mock_stop);
}
