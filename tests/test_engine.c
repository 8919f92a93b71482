/* The turn ledger and the store, tried against a real engine, loop and SQLite: prompts
 * from several sources at once and during a tool round-trip, interrupt / reject /
 * dedupe, a queued turn cancelled, abort, provider errors, stalls, step limits, streamed text visible in the
 * database while it streams, and a SIGKILL in the middle of a turn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdint.h>
#include "subscriber.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api.h"
#include "harness.h"
#include "engine_int.h"
#include "id.h"
#include "store.h"

#define FAST "{\"providers\":{\"scripted\":{\"pace_ms\":1}},\"retry\":{\"base_ms\":10}}"

static int saw_running_tool(struct h *h, void *arg)
{
	for (int i = 0; i < h->nevents; i++)
		if (!strcmp(h->types[i], "message.part.updated") &&
		    strstr(h->events[i], "\"status\":\"running\""))
			return 1;
	return 0;
}

static void prompts_from_many_sources_run_fifo_one_at_a_time(void **state)
{
	struct h h;
	h_dir(&h, FAST);
	h_start(&h, 1);
	char sid[ID_MAX], first[ID_MAX], during[ID_MAX];
	h_session(&h, sid);
	const char *sources[] = {"web", "ws", "http", "plugin", "task"};
	h_prompt(&h, sid, "sleep 150", "web", first);
	for (int i = 0; i < 5; i++) {
		char text[64];
		snprintf(text, sizeof(text), "echo burst %d", i);
		h_prompt(&h, sid, text, sources[i], NULL);
	}
	assert_true(h_until(&h, saw_running_tool, NULL, 5000));
	h_prompt(&h, sid, "echo during the tool round-trip", "plugin", during);
	assert_true(h_until(&h, h_idle, sid, 20000));
	h_check_ledger(&h, sid);
	assert_int_equal(h_turns(&h, sid, "completed"), 7);
	/* the prompt sent during the tool waited for the whole first turn */
	assert_int_equal(h_turn_after(&h, during, first), 1);
	/* the first turn's continuation after the tool answers the first user message */
	char *text = h_last_text(&h, first);
	assert_string_equal(text, "Slept 150 ms.");
	free(text);
	assert_int_equal(h_count(&h, "session.idle", sid), 1);
	/* every turn answered its own prompt, not a newer one that was waiting (raw SQL: one
	 * join pairs each turn's prompt with its final reply, a question only this test asks) */
	const char *answers =
		"FROM turn t JOIN part up ON up.message_id=t.user_message_id JOIN message a ON "
		"a.turn_id=t.id AND a.role='assistant' AND a.finish='stop' JOIN part ap ON "
		"ap.message_id=a.id AND ap.type='text' WHERE t.session_id='%s' AND "
		"json_extract(up.data,'$.text') LIKE 'echo %%' AND json_extract(ap.data,'$.text') ";
	char q[1024];
	snprintf(q, sizeof(q), "SELECT COUNT(*) %s = 'The echo tool returned: ' || "
		 "substr(json_extract(up.data,'$.text'), 6)", answers);
	assert_int_equal(h_sql_int(&h, q, sid), 6);
	h_stop(&h);
}

static void interrupt_cancels_the_running_turn_and_keeps_the_queue(void **state)
{
	struct h h;
	h_dir(&h, FAST);
	h_start(&h, 1);
	char sid[ID_MAX], t1[ID_MAX];
	h_session(&h, sid);
	h_prompt(&h, sid, "sleep 60000", "web", t1);
	h_prompt(&h, sid, "echo queued before", "web", NULL);
	assert_true(h_until(&h, saw_running_tool, NULL, 5000));
	struct err e = {0};
	struct prompt p = {.session_id = sid, .text = "echo now", .source = "ws",
			   .policy = TURN_POLICY_INTERRUPT};
	struct prompt_result r;
	assert_int_equal(engine_prompt(h.E, &p, &r, NULL, &e), 0);
	assert_true(h_until(&h, h_idle, sid, 10000));
	h_check_ledger(&h, sid);
	char *st = h_turn_state(&h, t1);
	assert_string_equal(st, "cancelled");
	free(st);
	/* the sleeping tool call ended as an error, and the turn got a terminal message */
	assert_int_equal(h_tool_calls(&h, t1, NULL, "error"), 1);
	assert_int_equal(h_replies(&h, t1, "aborted"), 1);
	char *name = h_reply_error_name(&h, t1, "aborted");
	assert_string_equal(name, "MessageAbortedError");
	free(name);
	/* FIFO is kept: the earlier queued prompt ran before the interrupting one */
	assert_int_equal(h_turns(&h, sid, "completed"), 2);
	h_stop(&h);
}

struct waited {
	struct turn_waiter w;
	char state[16], msg[ID_MAX], error[128];
	int calls;
};

static void on_turn_end(struct turn_waiter *w, const char *state, const char *msg_id,
			const char *error)
{
	struct waited *x = container_of(w, struct waited, w);
	x->calls++;
	snprintf(x->state, sizeof(x->state), "%s", state);
	snprintf(x->msg, sizeof(x->msg), "%s", msg_id);
	snprintf(x->error, sizeof(x->error), "%s", error ? error : "");
}

static void cancel_fails(struct h *h, const char *sid, const char *turn, enum err_code code,
			 const char *says)
{
	struct err e = {0};
	assert_int_equal(engine_turn_cancel(h->E, sid, turn, &e), -1);
	assert_int_equal(e.code, code);
	if (!strstr(e.msg, says))
		fail_msg("cancel %s: \"%s\" does not say \"%s\"", turn, e.msg, says);
}

/* A queued turn cancelled before it ran ends the one way turns end: its user message
 * gets its one terminal reply (aborted, naming why), its waiter hears it, the turns
 * around it run in order. A running turn is refused as busy; an unknown or ended one
 * is not found. */
static void a_queued_turn_is_cancelled_before_it_runs(void **state)
{
	struct h h;
	h_dir(&h, FAST);
	h_start(&h, 1);
	char sid[ID_MAX], t1[ID_MAX], t3[ID_MAX];
	h_session(&h, sid);
	h_prompt(&h, sid, "sleep 300", "web", t1);
	struct waited x = {.w.fn = on_turn_end};
	struct prompt p = {.session_id = sid, .text = "echo never", .source = "plugin:t"};
	struct prompt_result r2;
	struct err e = {0};
	assert_int_equal(engine_prompt(h.E, &p, &r2, &x.w, &e), 0);
	h_prompt(&h, sid, "echo third", "http", t3);
	assert_true(h_until(&h, saw_running_tool, NULL, 5000));
	cancel_fails(&h, sid, t1, ERR_BUSY, "is running; abort the session to stop it");
	assert_int_equal(engine_turn_cancel(h.E, sid, r2.turn_id, &e), 0);
	assert_int_equal(x.calls, 1);
	assert_string_equal(x.state, "cancelled");
	assert_string_equal(x.error, "cancelled before it ran");
	assert_true(x.msg[0]);
	cancel_fails(&h, sid, r2.turn_id, ERR_NOTFOUND, "no queued turn");
	cancel_fails(&h, sid, "turn_nope", ERR_NOTFOUND, "no queued turn");
	cancel_fails(&h, "ses_nope", t3, ERR_NOTFOUND, "ses_nope");
	assert_true(h_until(&h, h_idle, sid, 10000));
	h_check_ledger(&h, sid);
	char *st = h_turn_state(&h, r2.turn_id), *why = h_turn_error(&h, r2.turn_id);
	assert_string_equal(st, "cancelled");
	assert_string_equal(why, "cancelled before it ran");
	assert_int_equal(h_replies(&h, r2.turn_id, NULL), 1); /* its terminal reply alone */
	assert_int_equal(h_replies(&h, r2.turn_id, "aborted"), 1);
	char *name = h_reply_error_name(&h, r2.turn_id, "aborted");
	assert_string_equal(name, "MessageAbortedError");
	assert_int_equal(h_turns(&h, sid, "completed"), 2);
	assert_true(h_turn_after(&h, t3, t1));
	free(st);
	free(why);
	free(name);
	h_stop(&h);
}

/* A prompt accepted by an idle session makes it busy at once — before its turn starts
 * (on the next loop iteration), a client asking for statuses must not see it idle. */
static void a_session_is_busy_from_the_moment_a_prompt_is_accepted(void **state)
{
	struct h h;
	h_dir(&h, NULL);
	h_start(&h, 1);
	char sid[ID_MAX];
	h_session(&h, sid);
	h_prompt(&h, sid, "hello", "http", NULL); /* accepted; the loop has not run since */
	struct jw w;
	jw_init(&w);
	engine_status_json(h.E, &w);
	assert_non_null(strstr(w.buf, sid));
	assert_non_null(strstr(w.buf, "\"busy\""));
	jw_free(&w);
	assert_true(h_until(&h, h_idle, sid, 5000));
	h_stop(&h);
}

static void reject_when_busy_leaves_nothing_behind(void **state)
{
	struct h h;
	h_dir(&h, FAST);
	h_start(&h, 1);
	char sid[ID_MAX];
	h_session(&h, sid);
	h_prompt(&h, sid, "sleep 200", "web", NULL);
	struct err e = {0};
	struct prompt p = {.session_id = sid, .text = "echo no", .source = "http",
			   .policy = TURN_POLICY_REJECT};
	assert_int_equal(engine_prompt(h.E, &p, NULL, NULL, &e), -1);
	assert_int_equal(e.code, ERR_BUSY);
	assert_non_null(strstr(e.msg, "busy"));
	assert_true(h_until(&h, h_idle, sid, 10000));
	assert_int_equal(h_messages(&h, NULL, "user"), 1);
	/* idle again: reject accepts */
	memset(&e, 0, sizeof(e));
	assert_int_equal(engine_prompt(h.E, &p, NULL, NULL, &e), 0);
	assert_true(h_until(&h, h_idle, sid, 10000));
	h_check_ledger(&h, sid);
	h_stop(&h);
}

static void repeated_wakes_with_one_dedupe_key_coalesce(void **state)
{
	struct h h;
	h_dir(&h, FAST);
	h_start(&h, 1);
	char sid[ID_MAX];
	h_session(&h, sid);
	h_prompt(&h, sid, "sleep 100", "web", NULL);
	struct prompt p = {.session_id = sid, .text = "echo wake", .source = "plugin",
			   .dedupe_key = "todo-continue"};
	struct prompt_result r1, r2, r3;
	struct err e = {0};
	assert_int_equal(engine_prompt(h.E, &p, &r1, NULL, &e), 0);
	assert_int_equal(engine_prompt(h.E, &p, &r2, NULL, &e), 0);
	assert_int_equal(engine_prompt(h.E, &p, &r3, NULL, &e), 0);
	assert_false(r1.coalesced);
	assert_true(r2.coalesced && r3.coalesced);
	assert_string_equal(r1.turn_id, r3.turn_id);
	assert_true(h_until(&h, h_idle, sid, 10000));
	h_check_ledger(&h, sid);
	assert_int_equal(h_turns_keyed(&h, "todo-continue"), 1);
	h_stop(&h);
}

static void bad_prompts_get_errors_that_name_the_problem(void **state)
{
	struct h h;
	h_dir(&h, FAST);
	h_start(&h, 1);
	char sid[ID_MAX];
	h_session(&h, sid);
	struct err e = {0};
	struct prompt p = {.session_id = "ses_nope", .text = "hi"};
	assert_int_equal(engine_prompt(h.E, &p, NULL, NULL, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_non_null(strstr(e.msg, "ses_nope"));
	p.session_id = sid;
	p.model = "nosuch/model";
	assert_int_equal(engine_prompt(h.E, &p, NULL, NULL, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "nosuch"));
	p.model = "scripted/other";
	assert_int_equal(engine_prompt(h.E, &p, NULL, NULL, &e), -1);
	assert_non_null(strstr(e.msg, "scripted/other"));
	p.model = NULL;
	p.agent = "ghost";
	assert_int_equal(engine_prompt(h.E, &p, NULL, NULL, &e), -1);
	assert_non_null(strstr(e.msg, "ghost"));
	p.agent = NULL;
	p.text = "";
	assert_int_equal(engine_prompt(h.E, &p, NULL, NULL, &e), -1);
	assert_int_equal(h_messages(&h, NULL, NULL), 0);
	/* a client-chosen message id may not take over an existing message */
	struct prompt_result r;
	p.text = "hello";
	assert_int_equal(engine_prompt(h.E, &p, &r, NULL, &e), 0);
	char other[ID_MAX];
	h_session(&h, other);
	struct prompt steal = {.session_id = other, .text = "mine", .message_id = r.user_message_id};
	assert_int_equal(engine_prompt(h.E, &steal, NULL, NULL, &e), -1);
	assert_non_null(strstr(e.msg, "already used"));
	assert_true(h_until(&h, h_idle, sid, 5000));
	engine_flush(h.E);
	assert_int_equal(h_messages(&h, other, NULL), 0);
	h_stop(&h);
}

static void provider_error_fails_the_turn_visibly(void **state)
{
	struct h h;
	h_dir(&h, FAST);
	h_start(&h, 1);
	char sid[ID_MAX], t[ID_MAX];
	h_session(&h, sid);
	h_prompt(&h, sid, "fail now", "web", t);
	assert_true(h_until(&h, h_idle, sid, 10000));
	h_check_ledger(&h, sid);
	char *err = h_reply_error(&h, t);
	assert_non_null(err);
	assert_non_null(strstr(err, "scripted failure"));
	free(err);
	assert_int_equal(h_count(&h, "session.error", sid), 1);
	/* the partial text before the error is kept */
	char *text = h_reply_text(&h, t);
	assert_string_equal(text, "About to fail.");
	free(text);
	h_stop(&h);
}

static void stalled_stream_fails_after_its_retry_without_duplicate_text(void **state)
{
	struct h h;
	h_dir(&h, "{\"stall_timeout_ms\":150,\"providers\":{\"scripted\":{\"pace_ms\":1}},"
		  "\"retry\":{\"base_ms\":10,\"stall_max\":1}}");
	h_start(&h, 1);
	char sid[ID_MAX], t[ID_MAX];
	h_session(&h, sid);
	h_prompt(&h, sid, "stall please", "web", t);
	assert_true(h_until(&h, h_idle, sid, 10000));
	h_check_ledger(&h, sid);
	char *st = h_turn_error(&h, t);
	assert_non_null(st);
	assert_non_null(strstr(st, "LLM stream stalled"));
	assert_non_null(strstr(st, "150 ms"));
	free(st);
	/* one retry, shown as session.status retry */
	int retries = 0;
	for (int i = 0; i < h.nevents; i++)
		retries += !strcmp(h.types[i], "session.status") &&
			   strstr(h.events[i], "\"type\":\"retry\"") != NULL;
	assert_int_equal(retries, 1);
	char *text = h_reply_text(&h, t);
	assert_string_equal(text, "I will stop");
	free(text);
	h_stop(&h);
}

static void step_limit_ends_the_turn_with_a_terminal_message(void **state)
{
	struct h h;
	h_dir(&h, "{\"providers\":{\"scripted\":{\"pace_ms\":1}},"
		  "\"agent\":{\"build\":{\"maxSteps\":1}}}");
	h_start(&h, 1);
	char sid[ID_MAX], t[ID_MAX];
	h_session(&h, sid);
	h_prompt(&h, sid, "echo once", "web", t);
	assert_true(h_until(&h, h_idle, sid, 10000));
	h_check_ledger(&h, sid);
	char *err = h_turn_error(&h, t);
	assert_non_null(strstr(err, "step limit"));
	free(err);
	h_stop(&h);
}

static int text_has_deltas(struct h *h, void *arg)
{
	return h_count(h, "message.part.delta", NULL) >= *(int *)arg;
}

/* Length of a turn's streamed text as another connection reads it from the database. */
static int64_t stored_len(struct h *h, const char *turn)
{
	return h_reply_len(h, turn);
}

struct stored {
	const char *turn;
	int64_t min_len;
};

static int text_stored(struct h *h, void *arg)
{
	struct stored *st = arg;
	return stored_len(h, st->turn) > st->min_len;
}

static void streamed_text_is_in_the_database_while_it_streams(void **state)
{
	struct h h;
	h_dir(&h, "{\"providers\":{\"scripted\":{\"pace_ms\":5}}}");
	h_start(&h, 1);
	char sid[ID_MAX], t[ID_MAX];
	h_session(&h, sid);
	h_prompt(&h, sid, "long", "web", t);
	int want = 40;
	assert_true(h_until(&h, text_has_deltas, &want, 10000));
	/* within PART_STORE_MS + the commit interval, while the turn still streams */
	struct stored st = {t, 100};
	assert_true(h_until(&h, text_stored, &st, PART_STORE_MS + STORE_COMMIT_MS + 400));
	int64_t len = stored_len(&h, t);
	char *state_now = h_turn_state(&h, t);
	assert_string_equal(state_now, "running");
	free(state_now);
	assert_true(len > 100);
	struct err e = {0};
	assert_int_equal(engine_abort(h.E, sid, &e), 0);
	assert_true(h_until(&h, h_idle, sid, 5000));
	h_check_ledger(&h, sid);
	int64_t final = stored_len(&h, t);
	assert_true(final >= len);
	h_stop(&h);
}

/* Runs child(dir, write end) in a forked process (it never returns); the parent gets
 * the pid and keeps the read end of the pipe in *rfd. */
static pid_t fork_engine(const char *dir, void (*child)(const char *dir, int fd), int *rfd)
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	if (pid == 0)
		child(dir, fds[1]);
	close(fds[1]);
	*rfd = fds[0];
	return pid;
}

/* The child runs an engine with a streaming turn and two queued ones, and is killed
 * with SIGKILL while the first streams. */
static void child_engine(const char *dir, int fd)
{
	struct h h;
	memset(&h, 0, sizeof(h));
	snprintf(h.dir, sizeof(h.dir), "%s", dir);
	h_start(&h, 1);
	char sid[ID_MAX];
	h_session(&h, sid);
	h_prompt(&h, sid, "long", "web", NULL);
	h_prompt(&h, sid, "echo second", "ws", NULL);
	h_prompt(&h, sid, "echo third", "plugin", NULL);
	if (write(fd, sid, strlen(sid) + 1) < 0)
		_exit(3);
	h_spin(&h, 60000);
	_exit(4);
}

static void kill_mid_turn_then_restart_loses_nothing(void **state)
{
	struct h h;
	h_dir(&h, "{\"providers\":{\"scripted\":{\"pace_ms\":5}}}");
	int rfd;
	pid_t pid = fork_engine(h.dir, child_engine, &rfd);
	char sid[ID_MAX] = "";
	assert_true(read(rfd, sid, sizeof(sid)) > 0);
	close(rfd);
	/* wait until the first reply's partial text is durable, then kill */
	int64_t len = 0;
	for (int i = 0; i < 500 && len < 50; i++) {
		usleep(10000);
		len = h_longest_text(&h, sid);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	assert_true(len >= 50);
	assert_int_equal(h_turns(&h, NULL, "running"), 1);
	assert_int_equal(h_turns(&h, NULL, "queued"), 2);

	h_start(&h, 1); /* restart: recovery */
	assert_true(h_until(&h, h_idle, sid, 20000));
	h_check_ledger(&h, sid);
	/* the child made the only session: its failed turn is the store's */
	char *failed = h_last_turn(&h, sid, NULL, "failed");
	char *err = h_turn_error(&h, failed);
	assert_string_equal(err, "interrupted");
	free(err);
	assert_int_equal(h_turns(&h, NULL, "completed"), 2);
	/* the interrupted reply keeps its partial text and says why it ended */
	assert_true(h_reply_len(&h, failed) >= len);
	err = h_reply_error(&h, failed); /* its one terminal reply: the ledger holds */
	assert_string_equal(err, "interrupted");
	free(err);
	free(failed);
	h_stop(&h);
}

static void a_restart_keeps_the_event_sequence_increasing(void **state)
{
	struct h h;
	h_dir(&h, FAST);
	h_start(&h, 1);
	char sid[ID_MAX];
	h_session(&h, sid);
	h_prompt(&h, sid, "hello", "web", NULL);
	assert_true(h_until(&h, h_idle, sid, 5000));
	int64_t last = bus_last_seq(engine_bus(h.E));
	h_stop(&h);
	h_start(&h, 1);
	assert_true(bus_last_seq(engine_bus(h.E)) >= last);
	h_session(&h, sid);
	assert_true(bus_last_seq(engine_bus(h.E)) > last);
	h_stop(&h);
}

/* The child streams a reply, sends every event's seq down the pipe as a subscriber
 * would see it, and freezes (never commits again) inside the 40th delta's delivery:
 * the events since its last commit reached the subscriber and never the store. */
struct seq_pipe {
	int fd, deltas;
};

static void send_seq(void *arg, struct event *ev)
{
	struct seq_pipe *p = arg;
	if (write(p->fd, &ev->seq, sizeof(ev->seq)) < 0)
		_exit(3);
	if (!strcmp(ev->type, "message.part.delta") && ++p->deltas == 40) {
		int64_t frozen = -1;
		if (write(p->fd, &frozen, sizeof(frozen)) < 0)
			_exit(3);
		for (;;)
			pause();
	}
}

static void child_streams_then_freezes(const char *dir, int fd)
{
	struct h h;
	memset(&h, 0, sizeof(h));
	snprintf(h.dir, sizeof(h.dir), "%s", dir);
	h_start(&h, 1);
	char sid[ID_MAX];
	h_session(&h, sid);
	struct seq_pipe p = {fd, 0};
	struct bus_sub sub;
	bus_subscribe(engine_bus(h.E), &sub, send_seq, &p);
	h_prompt(&h, sid, "long", "web", NULL);
	h_spin(&h, 60000);
	_exit(4);
}

static int64_t seq_of(const char *json)
{
	const char *p = strstr(json, "\"seq\":");
	return p ? strtoll(p + 6, NULL, 10) : -1;
}

static void nop_wake(struct subscriber *s)
{
}

/* What a subscriber replaying the session from since gets, as "type type ...". */
static void replay_types(struct h *h, const char *sid, int64_t since, int64_t *min_seq,
			 char *out, size_t n)
{
	struct subscriber s;
	assert_int_equal(subscriber_start(&s, engine_bus(h->E), sid, 1, since, nop_wake), 0);
	*out = 0;
	*min_seq = INT64_MAX;
	struct event *ev;
	while ((ev = subscriber_next(&s))) {
		if (ev->seq < *min_seq)
			*min_seq = ev->seq;
		if (strcmp(ev->type, "message.part.delta"))
			snprintf(out + strlen(out), n - strlen(out), "%s%s", *out ? " " : "",
				 strstr(ev->json, "\"type\":\"idle\"") ? "status.idle" : ev->type);
		event_unref(ev);
	}
	subscriber_stop(&s);
}

static void kill_mid_stream_never_reuses_a_seq_and_publishes_recovery(void **state)
{
	struct h h;
	h_dir(&h, "{\"providers\":{\"scripted\":{\"pace_ms\":2}}}");
	int rfd;
	pid_t pid = fork_engine(h.dir, child_streams_then_freezes, &rfd);
	int64_t seq, seen = 0;
	/* seqs in the order the subscriber saw them, until the child says it froze */
	while (read(rfd, &seq, sizeof(seq)) == sizeof(seq) && seq > 0)
		seen = seq;
	assert_int_equal(seq, -1);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(rfd);
	char *sid = h_session_at(&h, 0); /* the child's one session */
	/* the test means something only if some seen events never reached the store */
	assert_true(seen > h_durable_seq(&h));

	h_start(&h, 1); /* restart: recovery */
	assert_true(h_until(&h, h_idle, sid, 20000));
	for (int i = 0; i < h.nevents; i++)
		assert_true(seq_of(h.events[i]) > seen);
	/* a client resuming from the last seq it saw gets what recovery published */
	char types[4096];
	int64_t first;
	replay_types(&h, sid, seen, &first, types, sizeof(types));
	assert_true(first > seen);
	assert_non_null(strstr(types, "message.updated"));
	assert_non_null(strstr(types, "session.error"));
	assert_non_null(strstr(types, "status.idle session.idle"));
	/* and the whole stored log of the session ends idle, not busy */
	engine_flush(h.E);
	replay_types(&h, sid, 0, &first, types, sizeof(types));
	size_t tl = strlen(types);
	assert_true(tl > 24 && !strcmp(types + tl - 24, "status.idle session.idle"));
	free(sid);
	h_stop(&h);
}

static void a_queued_turn_whose_agent_was_removed_fails_cleanly(void **state)
{
	struct h h;
	h_dir(&h, "{\"providers\":{\"scripted\":{\"pace_ms\":1}},\"agent\":{\"helper\":{}}}");
	h_start(&h, 1);
	char sid[ID_MAX];
	h_session(&h, sid);
	h_prompt(&h, sid, "sleep 60000", "web", NULL);
	struct err e = {0};
	struct prompt p = {.session_id = sid, .text = "echo later", .agent = "helper"};
	assert_int_equal(engine_prompt(h.E, &p, NULL, NULL, &e), 0);
	h_spin(&h, 50);
	h_stop(&h); /* like a crash: the running turn stays "running" in the store */
	/* the operator removes the agent, then restarts */
	char cfg[300];
	snprintf(cfg, sizeof(cfg), "%s/config.json", h.dir);
	FILE *f = fopen(cfg, "w");
	fputs("{\"providers\":{\"scripted\":{\"pace_ms\":1}}}", f);
	fclose(f);
	h_start(&h, 1);
	assert_true(h_until(&h, h_idle, sid, 5000));
	h_check_ledger(&h, sid);
	char *last = h_last_turn(&h, sid, NULL, NULL);
	char *err = h_turn_error(&h, last);
	assert_non_null(strstr(err, "\"helper\" is no longer configured"));
	free(err);
	free(last);
	h_stop(&h);
}

static void a_second_engine_on_one_data_directory_is_refused(void **state)
{
	struct h h;
	h_dir(&h, FAST);
	h_start(&h, 1);
	struct loop_config lc = {.port = -1};
	struct loop *L = loop_create(&lc);
	struct err e = {0};
	struct engine_opts o = {.data_dir = h.dir, .owner = "a second engine"};
	assert_null(engine_create(L, &o, &e));
	assert_int_equal(e.code, ERR_BUSY);
	assert_non_null(strstr(e.msg, h.dir));
	assert_non_null(strstr(e.msg, "in use by"));
	h_stop(&h);
	/* the first owner is gone: the directory is free again */
	memset(&e, 0, sizeof(e));
	struct engine *E = engine_create(L, &o, &e);
	assert_non_null(E);
	engine_destroy(E);
	loop_destroy(L);
}

/* The prompt's source is set by the transport, whatever the body claims: "task" is let
 * in while the server shuts down, so a client must not be able to say it. */
static void a_client_cannot_claim_a_prompt_source(void **state)
{
	struct h h;
	h_dir(&h, FAST);
	h_start(&h, 1);
	char sid[ID_MAX];
	h_session(&h, sid);
	struct err e = {0};
	cJSON *body = cJSON_Parse("{\"source\":\"task\",\"parts\":[{\"type\":\"text\","
				  "\"text\":\"hello\"}]}");
	struct api_prompt ap;
	assert_int_equal(api_parse_prompt(body, sid, "http", &ap, &e), 0);
	assert_string_equal(ap.p.source, "http");
	engine_shutdown(h.E); /* closing: only a task's result would still be taken */
	assert_int_equal(engine_prompt(h.E, &ap.p, NULL, NULL, &e), -1);
	assert_int_equal(e.code, ERR_BUSY);
	api_prompt_free(&ap);
	cJSON_Delete(body);
	assert_int_equal(h_turns(&h, NULL, NULL), 0);
	h_stop(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(prompts_from_many_sources_run_fifo_one_at_a_time),
		cmocka_unit_test(interrupt_cancels_the_running_turn_and_keeps_the_queue),
		cmocka_unit_test(a_queued_turn_is_cancelled_before_it_runs),
		cmocka_unit_test(a_session_is_busy_from_the_moment_a_prompt_is_accepted),
		cmocka_unit_test(reject_when_busy_leaves_nothing_behind),
		cmocka_unit_test(repeated_wakes_with_one_dedupe_key_coalesce),
		cmocka_unit_test(bad_prompts_get_errors_that_name_the_problem),
		cmocka_unit_test(provider_error_fails_the_turn_visibly),
		cmocka_unit_test(stalled_stream_fails_after_its_retry_without_duplicate_text),
		cmocka_unit_test(step_limit_ends_the_turn_with_a_terminal_message),
		cmocka_unit_test(streamed_text_is_in_the_database_while_it_streams),
		cmocka_unit_test(kill_mid_turn_then_restart_loses_nothing),
		cmocka_unit_test(a_restart_keeps_the_event_sequence_increasing),
		cmocka_unit_test(kill_mid_stream_never_reuses_a_seq_and_publishes_recovery),
		cmocka_unit_test(a_queued_turn_whose_agent_was_removed_fails_cleanly),
		cmocka_unit_test(a_second_engine_on_one_data_directory_is_refused),
		cmocka_unit_test(a_client_cannot_claim_a_prompt_source),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
