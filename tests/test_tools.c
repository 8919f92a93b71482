/* The tool registry and tool calls as code the gateway did not write uses them: a
 * completion that comes twice, late (after an abort), or from another thread is
 * dropped and counted or carried to the loop, never a use-after-free; tools removed by
 * owner while a call runs leave that call alone. Run under ASan+UBSan, and the
 * foreign-thread test under ThreadSanitizer too (contrib/test.sh). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_int.h"
#include "harness.h"

/* "call NAME" calls tool NAME, then says what it returned. */
#define RULE(name) "{\"match\":\"call " name "\",\"steps\":[{\"text\":\"calling\",\"tools\":" \
	"[{\"name\":\"" name "\",\"input\":{}}]},{\"text\":\"result: {{tool_output}}\"}]}"
#define CFG "{\"providers\":{\"scripted\":{\"pace_ms\":1,\"rules\":[" RULE("twice") "," \
	RULE("hold") "," RULE("thread") "]}}}"

struct kept {
	struct engine *E;
	uint64_t id;
	int runs;
};

static struct kept kept;

static void twice_run(struct tool_call *c, void *arg)
{
	tool_call_done(c, "first", NULL, NULL);
	tool_call_done(c, "second", NULL, NULL); /* a buggy tool: dropped, counted */
}

static void hold_run(struct tool_call *c, void *arg)
{
	kept.E = c->E;
	kept.id = c->id; /* completes later, by id */
	kept.runs++;
}

static sem_t go; /* the thread completes once the test lets it */

static void *complete_later(void *arg)
{
	struct kept *k = arg;
	sem_wait(&go);
	tool_done(k->E, k->id, "from a thread", NULL, NULL);
	return NULL;
}

static pthread_t worker;

static void thread_run(struct tool_call *c, void *arg)
{
	kept.E = c->E;
	kept.id = c->id;
	kept.runs++;
	assert_int_equal(pthread_create(&worker, NULL, complete_later, &kept), 0);
}

static void add_tool(struct h *h, const char *name, void (*run)(struct tool_call *, void *),
		     const char *owner)
{
	struct tool_def d = {.name = name, .description = "a test tool", .run = run};
	assert_int_equal(tools_register(&h->E->T, &d, owner), 0);
}

static void start(struct h *h, char *sid)
{
	h_dir(h, CFG);
	h_start(h, 1);
	h_session(h, sid);
	memset(&kept, 0, sizeof(kept));
}

static char *reply(struct h *h, const char *sid)
{
	engine_flush(h->E);
	return h_last_text(h, sid);
}

static int tool_running(struct h *h, void *arg)
{
	return kept.runs > 0;
}

static void a_second_completion_is_dropped_and_counted(void **state)
{
	struct h h;
	char sid[ID_MAX];
	start(&h, sid);
	add_tool(&h, "twice", twice_run, "test");
	uint64_t dropped = tool_dropped(h.E);
	h_prompt(&h, sid, "call twice", "http", NULL);
	assert_true(h_until(&h, h_idle, sid, 5000));
	assert_int_equal(tool_dropped(h.E) - dropped, 1);
	char *r = reply(&h, sid);
	assert_string_equal(r, "result: first");
	free(r);
	h_stop(&h);
}

static void a_completion_after_an_abort_is_dropped(void **state)
{
	struct h h;
	char sid[ID_MAX];
	start(&h, sid);
	add_tool(&h, "hold", hold_run, "test");
	h_prompt(&h, sid, "call hold", "http", NULL);
	assert_true(h_until(&h, tool_running, NULL, 5000));
	struct err e = {0};
	assert_int_equal(engine_abort(h.E, sid, &e), 0);
	assert_true(h_until(&h, h_idle, sid, 5000));
	uint64_t dropped = tool_dropped(h.E);
	assert_int_equal(tool_done(kept.E, kept.id, "too late", NULL, NULL), -1);
	assert_int_equal(tool_fail(kept.E, kept.id, "later still", NULL), -1);
	assert_int_equal(tool_done(h.E, 999999, "never was", NULL, NULL), -1);
	assert_int_equal(tool_dropped(h.E) - dropped, 3);
	assert_int_equal(h_parts_mentioning(&h, "too late"), 0);
	h_stop(&h);
}

static uint64_t dropped_before;

static int one_more_dropped(struct h *h, void *arg)
{
	return tool_dropped(h->E) > dropped_before;
}

static void a_completion_from_another_thread_reaches_the_loop(void **state)
{
	struct h h;
	char sid[ID_MAX];
	start(&h, sid);
	add_tool(&h, "thread", thread_run, "test");
	sem_init(&go, 0, 1); /* the first completes as soon as its thread runs */
	h_prompt(&h, sid, "call thread", "http", NULL);
	assert_true(h_until(&h, h_idle, sid, 5000));
	pthread_join(worker, NULL);
	char *r = reply(&h, sid);
	assert_string_equal(r, "result: from a thread");
	free(r);
	/* and one that arrives from a thread after its call was aborted is dropped there */
	memset(&kept, 0, sizeof(kept));
	h_prompt(&h, sid, "call thread", "http", NULL);
	struct err e = {0};
	assert_true(h_until(&h, tool_running, NULL, 5000));
	dropped_before = tool_dropped(h.E);
	assert_int_equal(engine_abort(h.E, sid, &e), 0);
	sem_post(&go); /* only now: after the abort, whatever the machine's load */
	pthread_join(worker, NULL);
	assert_true(h_until(&h, one_more_dropped, NULL, 5000)); /* delivered, then dropped */
	assert_int_equal(tool_dropped(h.E) - dropped_before, 1);
	sem_destroy(&go);
	h_stop(&h);
}

static void tools_removed_by_owner_leave_a_running_call_alone(void **state)
{
	struct h h;
	char sid[ID_MAX];
	start(&h, sid);
	add_tool(&h, "hold", hold_run, "plugin:test");
	h_prompt(&h, sid, "call hold", "http", NULL);
	assert_true(h_until(&h, tool_running, NULL, 5000));
	tools_unregister(&h.E->T, "plugin:test");
	assert_null(tools_find(&h.E->T, "hold"));
	/* the running call still ends, with its definition still in place */
	assert_int_equal(tool_done(kept.E, kept.id, "still here", NULL, NULL), 0);
	assert_true(h_until(&h, h_idle, sid, 5000));
	char *r = reply(&h, sid);
	assert_string_equal(r, "result: still here");
	free(r);
	/* a new call finds no such tool */
	h_prompt(&h, sid, "call hold", "http", NULL);
	assert_true(h_until(&h, h_idle, sid, 5000));
	engine_flush(h.E);
	char *err = h_tool_error(&h, sid); /* the newest call: the first one completed */
	assert_non_null(strstr(err, "unknown tool \"hold\""));
	free(err);
	h_stop(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_second_completion_is_dropped_and_counted),
		cmocka_unit_test(a_completion_after_an_abort_is_dropped),
		cmocka_unit_test(a_completion_from_another_thread_reaches_the_loop),
		cmocka_unit_test(tools_removed_by_owner_leave_a_running_call_alone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
