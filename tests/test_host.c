/* The plugin host against plugins that misbehave on purpose (tests/plugins/fx.c, built
 * against the SDK header alone): every refusal names the file and the reason; a newer
 * minor loads and reads what the host lacks as NULL; hooks transform, refuse and fail
 * open; tool calls end exactly once whatever the plugin does (twice, late, from a
 * thread, never); loop-only calls from a thread are refused; slow hooks and dropped
 * events are counted; unloading is refused while work is in flight and removes
 * everything the plugin left registered. The engine behind stays consistent (the
 * ledger check in h_stop), and all of it runs under ASan+UBSan and TSan too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <agentgate/plugin.h>

#include "engine_int.h"
#include "harness.h"
#include "plugins/fx_state.h"
#include "mock.h"
#include "plugins.h"

#define FX FIXTURES "/fx.so"

#define RULES                                                                               \
	"{\"regex\":\"^fx (.+)$\",\"steps\":[{\"text\":\"Calling fx.\",\"tools\":[{\"name\":"   \
	"\"fx\",\"input\":{\"mode\":\"{{1}}\"}}]},{\"text\":\"fx said: {{tool_output}}\"}]},"   \
	"{\"regex\":\"^slow$\",\"steps\":[{\"text\":\"Calling fx_slow.\",\"tools\":[{\"name\":" \
	"\"fx_slow\",\"input\":{}}]},{\"text\":\"fx_slow said: {{tool_output}}\"}]},"           \
	"{\"regex\":\"^slow (.+)$\",\"steps\":[{\"text\":\"Calling fx_slow.\",\"tools\":[{\"name\":" \
	"\"fx_slow\",\"input\":{\"mode\":\"{{1}}\"}}]},{\"text\":\"fx_slow said: {{tool_output}}\"}]}," \
	"{\"regex\":\"^echo (.+)$\",\"steps\":[{\"text\":\"Calling echo.\",\"tools\":[{"        \
	"\"name\":\"echo\",\"input\":{\"text\":\"{{1}}\"}}]},"                                  \
	"{\"text\":\"echo said: {{tool_output}}\"}]},"                                          \
	"{\"steps\":[{\"text\":\"You said: {{prompt}}\"}]}"

#define CONFIG(plugins)                                                                     \
	"{\"providers\":{\"scripted\":{\"pace_ms\":1,\"rules\":[" RULES "]}},"               \
	"\"plugins\":" plugins "}"

struct t {
	struct h h;
	struct plugins *P;
	char sid[ID_MAX];
};

static void start(struct t *t, const char *plugins_section)
{
	char cfg[4096];
	snprintf(cfg, sizeof(cfg), CONFIG("%s"), plugins_section ? plugins_section
								 : "{\"slow_hook_ms\":20}");
	h_dir(&t->h, cfg);
	t->h.openai_base = mock_openai_base; /* for the tests that use mockllm */
	t->h.anthropic_base = mock_anthropic_base;
	h_start(&t->h, 1);
	t->P = plugins_create(t->h.E);
	assert_non_null(t->P);
	h_session(&t->h, t->sid);
}

static void stop(struct t *t)
{
	plugins_stop(t->P);
	engine_shutdown(t->h.E);
	plugins_destroy(t->P);
	h_stop(&t->h);
}

static void load(struct t *t, const char *path, const char *options)
{
	struct err e = {0};
	if (plugins_load(t->P, path, options, &e))
		fail_msg("plugins_load %s: %s", path, e.msg);
}

/* The fixture's record, while the host holds it loaded. */
static struct fx_state *fx(void)
{
	void *dl = dlopen(FX, RTLD_NOW | RTLD_NOLOAD);
	assert_non_null(dl);
	struct fx_state *st = dlsym(dl, "fx_state");
	dlclose(dl);
	assert_non_null(st);
	return st;
}

/* A counter of plugin id from the host's listing. */
static int64_t counter(struct t *t, const char *id, const char *name)
{
	struct jw w;
	jw_init(&w);
	plugins_json(t->P, &w);
	cJSON *arr = cJSON_Parse(w.buf), *p;
	jw_free(&w);
	int64_t v = -1;
	cJSON_ArrayForEach(p, arr) {
		const cJSON *pid = cJSON_GetObjectItem(p, "id");
		if (cJSON_IsString(pid) && !strcmp(pid->valuestring, id))
			v = (int64_t)cJSON_GetObjectItem(cJSON_GetObjectItem(p, "counters"), name)->valuedouble;
	}
	cJSON_Delete(arr);
	return v;
}

static void prompt_and_wait(struct t *t, const char *text)
{
	h_prompt(&t->h, t->sid, text, "http", NULL);
	assert_true(h_until(&t->h, h_idle, t->sid, 10000));
	assert_int_equal(engine_flush(t->h.E), 0); /* what SQL sees below */
}

/* ---- loading ---- */

static void expect_refusal(struct t *t, const char *path, const char *options,
			   const char *reason)
{
	struct err e = {0};
	assert_int_equal(plugins_load(t->P, path, options, &e), -1);
	if (!strstr(e.msg, path) || !strstr(e.msg, reason))
		fail_msg("refusal of %s: \"%s\" does not name the file and \"%s\"", path, e.msg,
			 reason);
}

static void every_refusal_names_the_file_and_the_reason(void **state)
{
	struct t t;
	start(&t, NULL);
	expect_refusal(&t, FIXTURES "/fx_badmagic.so", NULL, "bad magic");
	expect_refusal(&t, FIXTURES "/fx_major2.so", NULL, "built for plugin ABI 2.");
	expect_refusal(&t, FIXTURES "/fx_noentry.so", NULL, "no agentgate_plugin_entry");
	expect_refusal(&t, FIXTURES "/missing.so", NULL, "cannot load");
	expect_refusal(&t, t.h.dir, NULL, "cannot load"); /* a directory, not an object */
	/* on_load failing after it registered hooks and tools: all of it is removed */
	expect_refusal(&t, FX, "{\"fail_load\":true}", "fx was told to fail");
	assert_null(engine_tool(t.h.E, "fx"));
	assert_false(hooks_any(t.h.E, HOOK_TOOL_BEFORE));
	/* the gateway goes on, and the same plugin loads when it behaves */
	load(&t, FX, "{}");
	expect_refusal(&t, FX, "{}", "is loaded already");
	prompt_and_wait(&t, "fx now");
	char *out = h_tool_output(&t.h, t.sid, "fx");
	assert_non_null(out);
	assert_non_null(strstr(out, "fx ran in ses_"));
	free(out);
	stop(&t);
}

static void a_newer_minor_loads_and_what_the_host_lacks_reads_null(void **state)
{
	struct t t;
	start(&t, NULL);
	load(&t, FIXTURES "/fx_minor99.so", "{}");
	void *dl = dlopen(FIXTURES "/fx_minor99.so", RTLD_NOW | RTLD_NOLOAD);
	assert_non_null(dl);
	struct fx_state *st = dlsym(dl, "fx_state");
	assert_int_equal(atomic_load(&st->loaded), 1);
	assert_int_equal(atomic_load(&st->future_fn_present), 0);
	dlclose(dl);
	stop(&t);
}

static void a_required_plugin_in_the_config_that_fails_stops_start_up(void **state)
{
	struct t t;
	start(&t, "[{\"path\":\"" FIXTURES "/fx_major2.so\",\"required\":true}]");
	struct err e = {0};
	assert_int_equal(plugins_load_all(t.P, NULL, 0, &e), -1);
	assert_non_null(strstr(e.msg, "fx_major2.so"));
	stop(&t);
	/* optional: a warning, and the next entry loads */
	start(&t, "{\"load\":[{\"path\":\"" FIXTURES "/fx_major2.so\"},"
		  "{\"path\":\"" FIXTURES "/fx.so\",\"options\":{\"emit\":1}}]}");
	assert_int_equal(plugins_load_all(t.P, NULL, 0, &e), 0);
	assert_non_null(engine_tool(t.h.E, "fx"));
	stop(&t);
}

/* ---- hooks ---- */

static void hooks_rewrite_prompts_requests_inputs_and_outputs(void **state)
{
	struct t t;
	start(&t, NULL);
	load(&t, FX, "{\"rewrite\":1,\"emit\":1}");
	prompt_and_wait(&t, "shout hello");
	char *turn = h_last_turn(&t.h, t.sid, "http", "completed");
	char *text = h_turn_prompt(&t.h, turn);
	assert_string_equal(text, "SHOUTED hello"); /* stored as the hook made it */
	free(text);
	free(turn);
	prompt_and_wait(&t, "echo original");
	char *out = h_tool_output(&t.h, t.sid, "echo");
	assert_string_equal(out, "after: rewritten input");
	free(out);
	assert_true(h_count(&t.h, "plugin.fx.turn", t.sid) >= 2); /* emitted, with the envelope */
	assert_int_equal(counter(&t, "fx", "hookErrors"), 0);
	stop(&t);
}

static const char *field(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItem(o, k);
	return cJSON_IsString(v) ? v->valuestring : "";
}

/* The provider receives what the plugin's request hook set: the system prompt appended
 * to, a body param, a header, a tool hidden (mockllm records each request). */
static void a_request_hook_changes_what_the_provider_receives(void **state)
{
	struct t t;
	start(&t, NULL);
	load(&t, FX, "{\"request\":1}");
	char turn[ID_MAX];
	h_prompt_model(&t.h, t.sid, "hi", "openai/normal@host", turn);
	assert_true(h_until(&t.h, h_idle, t.sid, 10000));
	cJSON *last = mock_last_request("normal@host");
	assert_non_null(last);
	const cJSON *body = cJSON_GetObjectItem(last, "body");
	assert_string_equal(field(cJSON_GetObjectItem(last, "headers"), "x-fx"), "from the plugin");
	assert_int_equal(cJSON_GetObjectItem(body, "temperature")->valuedouble * 10, 3);
	const char *system = field(cJSON_GetArrayItem(cJSON_GetObjectItem(body, "messages"), 0),
				   "content");
	assert_non_null(strstr(system, "\n\nfx was here"));
	char *tools = cJSON_PrintUnformatted(cJSON_GetObjectItem(body, "tools"));
	assert_non_null(strstr(tools, "\"echo\""));
	assert_null(strstr(tools, "\"sleep\""));
	free(tools);
	cJSON_Delete(last);
	stop(&t);
}

static void a_refusing_hook_stops_the_prompt_and_tells_the_model_why_a_tool_was_blocked(void **state)
{
	struct t t;
	start(&t, NULL);
	load(&t, FX, "{\"refuse\":1}");
	struct err e = {0};
	struct prompt p = {.session_id = t.sid, .text = "a forbidden prompt", .source = "ws"};
	assert_int_equal(engine_prompt(t.h.E, &p, NULL, NULL, &e), -1);
	assert_non_null(strstr(e.msg, "fx refuses forbidden prompts (plugin fx)"));
	assert_int_equal(h_turns(&t.h, t.sid, NULL), 0);
	prompt_and_wait(&t, "echo my secret");
	char *err = h_tool_error(&t.h, t.sid);
	assert_non_null(err);
	assert_non_null(strstr(err, "fx says no to secrets"));
	free(err);
	assert_int_equal(counter(&t, "fx", "hookRefusals"), 2);
	stop(&t);
}

static void hook_errors_and_malformed_out_values_fail_open(void **state)
{
	struct t t;
	start(&t, NULL);
	load(&t, FX, "{\"hook_error\":1}");
	prompt_and_wait(&t, "echo still runs");
	char *out = h_tool_output(&t.h, t.sid, "echo");
	assert_string_equal(out, "still runs");
	free(out);
	assert_int_equal(counter(&t, "fx", "hookErrors"), 1);
	stop(&t);

	start(&t, NULL);
	load(&t, FX, "{\"malformed\":1}");
	prompt_and_wait(&t, "echo untouched");
	out = h_tool_output(&t.h, t.sid, "echo");
	assert_string_equal(out, "untouched"); /* input_out was not JSON, error_out misplaced */
	free(out);
	char *turn = h_last_turn(&t.h, t.sid, "http", "completed");
	char *text = h_turn_prompt(&t.h, turn);
	assert_string_equal(text, "echo untouched"); /* parts_out did not parse */
	free(text);
	free(turn);
	/* prompt, params, hide-tools (per request), input, error_out */
	assert_true(counter(&t, "fx", "hookErrors") >= 5);
	stop(&t);
}

/* A compaction hook writes the summary: the model is not asked for it, and the next
 * request carries it in place of the history (mockllm's recall shows what it got). */
static void a_compaction_hook_supplies_the_summary(void **state)
{
	struct t t;
	start(&t, NULL);
	load(&t, FX, "{\"compact\":1}");
	h_prompt_model(&t.h, t.sid, "the first question", "openai/recall@fxc", NULL);
	assert_true(h_until(&t.h, h_idle, t.sid, 10000));
	struct prompt ask = {.session_id = t.sid, .source = "http", .compact = 1,
			     .model = "openai/recall@fxc"};
	struct err e = {0};
	struct prompt_result r;
	assert_int_equal(engine_prompt(t.h.E, &ask, &r, NULL, &e), 0);
	assert_true(h_until(&t.h, h_idle, t.sid, 10000));
	assert_int_equal(engine_flush(t.h.E), 0);
	struct fx_state *st = fx();
	assert_int_equal(st->compacts, 1);
	assert_int_equal(st->compact_auto, 0);
	assert_int_equal(st->compact_overflow, 0);
	assert_int_equal(st->compact_msgs, 3); /* question, answer, the instruction */
	assert_string_equal(st->compact_model, "openai/recall@fxc");
	char *summary = h_reply_text(&t.h, r.turn_id);
	assert_string_equal(summary, "fx summary of 3 messages");
	free(summary);
	cJSON *stats = mock_stats();
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(stats, "by_model"),
					     "recall@fxc")->valueint, 1);
	cJSON_Delete(stats);
	h_prompt_model(&t.h, t.sid, "go on", "openai/recall@fxc", NULL);
	assert_true(h_until(&t.h, h_idle, t.sid, 10000));
	cJSON *last = mock_last_request("recall@fxc");
	const cJSON *msgs = cJSON_GetObjectItem(cJSON_GetObjectItem(last, "body"), "messages");
	assert_int_equal(cJSON_GetArraySize(msgs), 4); /* the system prompt, then three */
	assert_string_equal(field(cJSON_GetArrayItem(msgs, 2), "content"),
			    "fx summary of 3 messages");
	assert_string_equal(field(cJSON_GetArrayItem(msgs, 3), "content"), "go on");
	cJSON_Delete(last);
	assert_int_equal(counter(&t, "fx", "hookErrors"), 0);
	stop(&t);
}

static void a_slow_hook_is_counted(void **state)
{
	struct t t;
	start(&t, NULL); /* slow_hook_ms 20; the hook sleeps 60 ms */
	load(&t, FX, "{\"slow_hook\":1}");
	prompt_and_wait(&t, "echo slowly");
	assert_int_equal(counter(&t, "fx", "slowHooks"), 1);
	stop(&t);
}

/* ---- tools ---- */

static void a_tool_call_ends_once_whatever_the_plugin_does(void **state)
{
	struct t t;
	start(&t, NULL);
	load(&t, FX, "{}");
	struct fx_state *st = fx();
	prompt_and_wait(&t, "fx twice");
	assert_int_equal(atomic_load(&st->second_done_rc), AG_E_GONE);
	char *out = h_tool_output(&t.h, t.sid, "fx");
	assert_string_equal(out, "first");
	free(out);

	prompt_and_wait(&t, "fx thread"); /* completed from a thread, 30 ms later */
	assert_int_equal(atomic_load(&st->thread_done_rc), AG_OK);
	assert_int_equal(atomic_load(&st->thread_loop_rc), AG_E_THREAD);
	assert_int_equal(counter(&t, "fx", "threadErrors"), 1);
	assert_int_equal(h_tool_calls(&t.h, t.sid, "fx", "completed"), 2);

	prompt_and_wait(&t, "slow"); /* never completes: its 200 ms timeout ends it */
	char *err = h_tool_error(&t.h, t.sid);
	assert_non_null(strstr(err, "tool fx_slow timed out after 200 ms"));
	free(err);
	assert_int_equal(atomic_load(&st->cancels), 1);
	assert_int_equal(atomic_load(&st->late_done_rc), AG_E_GONE);

	prompt_and_wait(&t, "fx fail");
	err = h_tool_error(&t.h, t.sid);
	assert_string_equal(err, "fx failed on purpose");
	free(err);
	assert_int_equal(counter(&t, "fx", "toolDropped"), 2);
	assert_int_equal(counter(&t, "fx", "toolCalls"), 4);
	stop(&t);
}

static int tool_running(struct h *h, void *arg)
{
	return h_tool_calls(h, arg, "fx", "running") == 1;
}

static void unloading_waits_for_work_in_flight_and_removes_everything_left(void **state)
{
	struct t t;
	start(&t, NULL);
	load(&t, FX, "{\"observer\":1}");
	struct fx_state *st = fx();
	h_prompt(&t.h, t.sid, "fx hang", "http", NULL);
	assert_true(h_until(&t.h, tool_running, t.sid, 5000));
	struct err e = {0};
	assert_int_equal(plugins_unload(t.P, "fx", &e), -1);
	assert_int_equal(e.code, ERR_BUSY);
	assert_non_null(strstr(e.msg, "in flight"));
	assert_int_equal(atomic_load(&st->unloaded), 0);
	assert_int_equal(engine_abort(t.h.E, t.sid, NULL), 0); /* cancels the call */
	assert_true(h_until(&t.h, h_idle, t.sid, 5000));
	assert_int_equal(atomic_load(&st->cancels), 1);
	assert_int_equal(plugins_unload(t.P, "fx", &e), 0);
	/* everything it never unregistered went with it */
	assert_null(engine_tool(t.h.E, "fx"));
	assert_null(engine_tool(t.h.E, "fx_slow"));
	for (int at = 0; at < HOOK_COUNT; at++) /* turn end, human wait: the task tool's own */
		assert_true(at == HOOK_TURN_END || at == HOOK_HUMAN_WAIT ||
			    !hooks_any(t.h.E, (enum hook_point)at));
	assert_null(dlopen(FX, RTLD_NOW | RTLD_NOLOAD)); /* closed */
	prompt_and_wait(&t, "fx now"); /* the model calls a tool that is gone: a clean error */
	char *err = h_tool_error(&t.h, t.sid);
	assert_non_null(strstr(err, "unknown tool \"fx\""));
	free(err);
	stop(&t);
}

static void the_observer_sees_every_event_in_order_or_counts_what_it_missed(void **state)
{
	struct t t;
	start(&t, "{\"event_queue\":4}");
	load(&t, FX, "{\"observer\":1,\"observer_slow\":1}"); /* 20 ms per event */
	struct fx_state *st = fx();
	prompt_and_wait(&t, "echo a burst of events");
	int64_t dropped = counter(&t, "fx", "eventsDropped");
	assert_true(dropped > 0); /* a queue of 4 cannot keep up with 20 ms per event */
	plugins_unload(t.P, "fx", NULL); /* delivers what is queued first */
	stop(&t);

	start(&t, NULL);
	load(&t, FX, "{\"observer\":1}");
	st = fx();
	prompt_and_wait(&t, "echo every event");
	plugins_stop(t.P);
	int64_t delivered = counter(&t, "fx", "eventsDelivered");
	assert_int_equal(counter(&t, "fx", "eventsDropped"), 0);
	assert_true(delivered > 5);
	plugins_unload(t.P, "fx", NULL);
	stop(&t);
	(void)st;
}

static void kv_and_session_calls_work_from_a_tool(void **state)
{
	struct t t;
	start(&t, NULL);
	load(&t, FX, "{}");
	struct fx_state *st = fx();
	prompt_and_wait(&t, "fx kv");
	assert_int_equal(atomic_load(&st->kv_rc), AG_OK);
	assert_string_equal(st->kv_value, "kept value");
	char *v = NULL;
	size_t n = 0;
	assert_int_equal(engine_kv_get(t.h.E, "plugin:fx", "greeting", &v, &n, NULL), 0);
	assert_int_equal(n, 10);
	free(v);
	stop(&t);
}

/* ---- prompts from plugins ---- */

/* The race's end: the plugin's threads are done, every prompt they got accepted has
 * had its done callback, and the session is at rest. */
static struct fx_state *race;
static const char *race_sid;

static int race_over(struct h *h, void *arg)
{
	return atomic_load(&race->threads_done) == *(int *)arg &&
	       atomic_load(&race->dones) == atomic_load(&race->prompts_ok) &&
	       !engine_tree_busy(h->E, race_sid);
}

/* Seed 003: a tool round-trip in flight while HTTP and WS prompts arrive and plugin
 * threads fire bursts of prompt_async (half with a dedupe key). Every user message
 * ends with one terminal reply bound to it (h_check_ledger), nothing is lost, and
 * the keyed wakes coalesce. */
static void plugin_wakes_racing_user_prompts_never_make_sibling_replies(void **state)
{
	struct t t;
	start(&t, NULL);
	load(&t, FX, "{}");
	struct fx_state *st = fx();
	void (*fire_fn)(const char *, int, int, const char *);
	void *dl = dlopen(FX, RTLD_NOW | RTLD_NOLOAD);
	*(void **)&fire_fn = dlsym(dl, "fx_fire");
	dlclose(dl);
	assert_non_null(fire_fn);
	race = st;
	race_sid = t.sid;
	for (int round = 1; round <= 5; round++) {
		h_prompt(&t.h, t.sid, "fx thread", "http", NULL); /* a tool call in flight */
		fire_fn(t.sid, 4, 6, "wake");
		for (int i = 0; i < 4; i++)
			h_prompt(&t.h, t.sid, i % 2 ? "echo from ws" : "hello from http",
				 i % 2 ? "ws" : "http", NULL);
		int threads = 4 * round;
		assert_true(h_until(&t.h, race_over, &threads, 20000));
		assert_int_equal(engine_flush(t.h.E), 0);
		h_check_ledger(&t.h, t.sid);
	}
	int ok = atomic_load(&st->prompts_ok);
	assert_int_equal(atomic_load(&st->prompts_failed), 0);
	assert_int_equal(ok, 5 * 4 * 6);
	int coalesced = atomic_load(&st->coalesced);
	/* every accepted prompt is a turn of its own, or joined a keyed one */
	assert_int_equal(h_turns_from(&t.h, t.sid, "plugin:fx", NULL), ok - coalesced);
	assert_int_equal(h_turns_from(&t.h, t.sid, "http", NULL), 5 * 3);
	assert_int_equal(h_turns_from(&t.h, t.sid, "ws", NULL), 5 * 2);
	assert_int_equal(h_unanswered(&t.h, t.sid), 0);
	assert_int_equal(atomic_load(&st->dones), ok);
	stop(&t);
}

static void a_prompt_from_a_thread_after_the_host_stopped_is_refused(void **state)
{
	struct t t;
	start(&t, NULL);
	load(&t, FX, "{}");
	struct fx_state *st = fx();
	void (*fire_fn)(const char *, int, int, const char *);
	void *dl = dlopen(FX, RTLD_NOW | RTLD_NOLOAD);
	*(void **)&fire_fn = dlsym(dl, "fx_fire");
	dlclose(dl);
	plugins_stop(t.P);
	fire_fn(t.sid, 1, 3, NULL);
	race = st;
	race_sid = t.sid;
	int threads = 1;
	assert_true(h_until(&t.h, race_over, &threads, 5000));
	assert_int_equal(atomic_load(&st->prompts_failed), 3);
	assert_int_equal(h_turns(&t.h, t.sid, NULL), 0);
	stop(&t);
}

/* A call into the fixture made from a thread of its own (as a plugin's would be). */
struct xthread {
	const char *fn, *sid, *arg;
	char turn[48];
	int rc;
};

static void *xthread_run(void *arg)
{
	struct xthread *x = arg;
	void *dl = dlopen(FX, RTLD_NOW | RTLD_NOLOAD);
	if (!strcmp(x->fn, "fx_prompt")) {
		int (*f)(const char *, const char *, char *);
		*(void **)&f = dlsym(dl, "fx_prompt");
		x->rc = f(x->sid, x->arg, x->turn);
	} else {
		int (*f)(const char *, const char *);
		*(void **)&f = dlsym(dl, "fx_cancel");
		x->rc = f(x->sid, x->arg);
	}
	dlclose(dl);
	return NULL;
}

/* Runs it, servicing the loop until the thread ends (its call waits for the loop). */
static int on_thread(struct t *t, const char *fn, const char *arg, char *turn_out)
{
	struct xthread x = {.fn = fn, .sid = t->sid, .arg = arg};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, xthread_run, &x), 0);
	int joined = 0;
	for (int i = 0; i < 1000 && !joined; i++) {
		h_spin(&t->h, 5);
		joined = pthread_tryjoin_np(th, NULL) == 0;
	}
	assert_true(joined);
	if (turn_out)
		snprintf(turn_out, 48, "%s", x.turn);
	return x.rc;
}

static void a_plugin_cancels_its_queued_prompt_but_not_a_running_turn(void **state)
{
	struct t t;
	start(&t, NULL);
	load(&t, FX, "{}");
	struct fx_state *st = fx();
	char running[48], queued[48];
	h_prompt(&t.h, t.sid, "fx hang", "http", running); /* a turn that will not end */
	assert_true(h_until(&t.h, tool_running, t.sid, 5000));
	assert_int_equal(on_thread(&t, "fx_prompt", "wake up", queued), AG_OK);
	assert_int_equal(on_thread(&t, "fx_cancel", running, NULL), AG_E_BUSY);
	assert_int_equal(on_thread(&t, "fx_cancel", queued, NULL), AG_OK);
	assert_string_equal(st->last_done_state, "cancelled");
	assert_int_equal(on_thread(&t, "fx_cancel", queued, NULL), AG_E_NOTFOUND);
	assert_int_equal(engine_abort(t.h.E, t.sid, NULL), 0);
	assert_true(h_until(&t.h, h_idle, t.sid, 5000));
	assert_int_equal(engine_flush(t.h.E), 0);
	assert_int_equal(h_turns_from(&t.h, t.sid, "plugin:fx", "cancelled"), 1);
	stop(&t);
}

static int timers_done(struct h *h, void *arg)
{
	struct fx_state *st = arg;
	return atomic_load(&st->posted_ran) && atomic_load(&st->timer_fired);
}

static void posts_and_timers_run_on_the_loop_and_stop_at_unload(void **state)
{
	struct t t;
	start(&t, NULL);
	load(&t, FX, "{\"timers\":1}");
	struct fx_state *st = fx();
	assert_true(h_until(&t.h, timers_done, st, 5000));
	assert_int_equal(atomic_load(&st->posted_ran), 1); /* ran on the loop */
	h_spin(&t.h, 40);
	assert_int_equal(atomic_load(&st->timer_cancelled_fired), 0);
	void *dl = dlopen(FX, RTLD_NOW | RTLD_NOLOAD); /* keeps its record readable */
	assert_int_equal(plugins_unload(t.P, "fx", NULL), 0);
	assert_int_equal(atomic_load(&st->post_at_unload_rc), AG_E_GONE);
	dlclose(dl);
	stop(&t);
}

/* ---- permissions ---- */

static int64_t inflight(struct t *t)
{
	struct jw w;
	jw_init(&w);
	plugins_json(t->P, &w);
	cJSON *arr = cJSON_Parse(w.buf);
	jw_free(&w);
	int64_t v = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0),
								       "inflight"));
	cJSON_Delete(arr);
	return v;
}

/* The oldest pending ask's id (a static buffer). */
static const char *pending_first(struct t *t)
{
	static char id[ID_MAX];
	struct jw w;
	jw_init(&w);
	engine_permission_list_json(t->h.E, &w);
	cJSON *list = cJSON_Parse(w.buf);
	jw_free(&w);
	snprintf(id, sizeof(id), "%s", cJSON_GetStringValue(cJSON_GetObjectItem(
					      cJSON_GetArrayItem(list, 0), "id")));
	cJSON_Delete(list);
	return id;
}

static int asked(struct h *h, void *n)
{
	return h_count(h, "permission.asked", NULL) == *(int *)n;
}

static void a_plugin_asks_through_the_host_and_its_hook_answers(void **state)
{
	struct t t;
	start(&t, NULL);
	load(&t, FX, "permission_hook");
	struct fx_state *st = fx();
	char ws[600];
	snprintf(ws, sizeof(ws), "\"%s\"", engine_workspace(t.h.E)); /* the effective one */
	assert_string_equal(st->workspace, ws);
	/* its hook decides; a call that is not the plugin's cannot ask */
	prompt_and_wait(&t, "fx ask fx-allow");
	assert_int_equal(atomic_load(&st->perm_foreign_rc), AG_E_NOTFOUND);
	assert_int_equal(atomic_load(&st->perm_rc), AG_OK);
	assert_int_equal(atomic_load(&st->perm_decision), AG_PERMISSION_ALLOW);
	assert_string_equal(st->perm_message, "allowed (plugin fx)");
	prompt_and_wait(&t, "fx ask fx-deny");
	assert_int_equal(atomic_load(&st->perm_decision), AG_PERMISSION_DENY);
	char *err = h_tool_error(&t.h, t.sid);
	assert_string_equal(err, "fx denies it (plugin fx)");
	free(err);
	assert_int_equal(h_count(&t.h, "permission.asked", NULL), 0);
	/* undecided: a human is asked, and the ask is the plugin's work in flight */
	h_prompt(&t.h, t.sid, "fx ask make", "http", NULL);
	int n = 1;
	assert_true(h_until(&t.h, asked, &n, 5000));
	assert_int_equal(inflight(&t), 2); /* the call and its ask */
	char id[ID_MAX];
	snprintf(id, sizeof(id), "%s", pending_first(&t));
	assert_int_equal(engine_permission_reply(t.h.E, id, "once", NULL, NULL, NULL), 0);
	assert_true(h_until(&t.h, h_idle, t.sid, 10000));
	assert_int_equal(atomic_load(&st->perm_decision), AG_PERMISSION_ALLOW);
	assert_int_equal(inflight(&t), 0);
	/* an abort answers the ask DENY, "aborted", once */
	h_prompt(&t.h, t.sid, "fx ask make", "http", NULL);
	n = 2;
	assert_true(h_until(&t.h, asked, &n, 5000));
	int answers = atomic_load(&st->perm_answers);
	assert_int_equal(engine_abort(t.h.E, t.sid, NULL), 0);
	assert_true(h_until(&t.h, h_idle, t.sid, 10000));
	assert_int_equal(atomic_load(&st->perm_answers), answers + 1);
	assert_int_equal(atomic_load(&st->perm_decision), AG_PERMISSION_DENY);
	assert_string_equal(st->perm_message, "aborted");
	assert_int_equal(inflight(&t), 0);
	/* fx_slow times out after 200 ms; not while its ask waits, and after with what was left */
	h_prompt(&t.h, t.sid, "slow ask make", "http", NULL);
	n = 3;
	assert_true(h_until(&t.h, asked, &n, 5000));
	assert_false(h_until(&t.h, h_idle, t.sid, 500)); /* 2.5 timeouts waiting: still asked */
	snprintf(id, sizeof(id), "%s", pending_first(&t));
	assert_int_equal(engine_permission_reply(t.h.E, id, "once", NULL, NULL, NULL), 0);
	assert_true(h_until(&t.h, h_idle, t.sid, 10000));
	assert_int_equal(engine_flush(t.h.E), 0);
	err = h_tool_output(&t.h, t.sid, "fx_slow");
	assert_string_equal(err, "allowed (allowed once by a reply)");
	free(err);
	stop(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_refusal_names_the_file_and_the_reason),
		cmocka_unit_test(a_newer_minor_loads_and_what_the_host_lacks_reads_null),
		cmocka_unit_test(a_required_plugin_in_the_config_that_fails_stops_start_up),
		cmocka_unit_test(hooks_rewrite_prompts_requests_inputs_and_outputs),
		cmocka_unit_test(a_request_hook_changes_what_the_provider_receives),
		cmocka_unit_test(a_refusing_hook_stops_the_prompt_and_tells_the_model_why_a_tool_was_blocked),
		cmocka_unit_test(hook_errors_and_malformed_out_values_fail_open),
		cmocka_unit_test(a_compaction_hook_supplies_the_summary),
		cmocka_unit_test(a_slow_hook_is_counted),
		cmocka_unit_test(a_tool_call_ends_once_whatever_the_plugin_does),
		cmocka_unit_test(unloading_waits_for_work_in_flight_and_removes_everything_left),
		cmocka_unit_test(the_observer_sees_every_event_in_order_or_counts_what_it_missed),
		cmocka_unit_test(kv_and_session_calls_work_from_a_tool),
		cmocka_unit_test(plugin_wakes_racing_user_prompts_never_make_sibling_replies),
		cmocka_unit_test(a_prompt_from_a_thread_after_the_host_stopped_is_refused),
		cmocka_unit_test(a_plugin_cancels_its_queued_prompt_but_not_a_running_turn),
		cmocka_unit_test(posts_and_timers_run_on_the_loop_and_stop_at_unload),
		cmocka_unit_test(a_plugin_asks_through_the_host_and_its_hook_answers),
	};
	return cmocka_run_group_tests(tests, mock_start, mock_stop);
}
