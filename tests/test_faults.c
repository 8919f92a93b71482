/* A store whose disk fails under a running engine: full, failing mid-turn, the database
 * file deleted or replaced. Real SQLite on a real loop; the failures come from the
 * fault-injecting VFS (store_faults.h), switched by writing its control file. What
 * must hold: a write the engine acknowledged is on disk once the disk recovers, a
 * write it refused is never made later, nothing runs twice, and the refusals name why. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "api.h"
#include "engine_int.h"

static char control[256];

static void disk(const char *mode)
{
	if (!mode) {
		unlink(control);
		return;
	}
	FILE *f = fopen(control, "w");
	assert_non_null(f);
	fputs(mode, f);
	fclose(f);
}

static int store_writes(struct h *h, void *arg)
{
	(void)arg;
	return engine_store_failure(h->E) == NULL;
}

static int store_fails(struct h *h, void *arg)
{
	(void)arg;
	return engine_store_failure(h->E) != NULL;
}

static int64_t stored_text_len(struct h *h, const char *sid)
{
	return h_longest_text(h, sid);
}

static int text_stored(struct h *h, void *arg)
{
	return stored_text_len(h, arg) > 40;
}

static int none_running(struct h *h, void *arg)
{
	(void)arg;
	return engine_running(h->E) == 0;
}

/* A fresh engine streaming a long reply (one token per pace_ms, turn id to turn_out if
 * given) whose text has reached the disk. */
static void start_streaming(struct h *h, char *sid, int pace_ms, char *turn_out)
{
	char cfg[96];
	snprintf(cfg, sizeof(cfg), "{\"providers\":{\"scripted\":{\"pace_ms\":%d}}}", pace_ms);
	h_dir(h, cfg);
	h_start(h, 1);
	h_session(h, sid);
	h_prompt(h, sid, "long", "web", turn_out);
	assert_true(h_until(h, text_stored, sid, 5000));
}

/* Makes the disk fail (or slow) and waits until the engine has noticed. */
static void fail_disk(struct h *h, const char *mode)
{
	disk(mode);
	assert_true(h_until(h, store_fails, NULL, 5000));
}

static void refused_as_unavailable(struct err *e, const char *what)
{
	assert_int_equal(e->code, ERR_UNAVAILABLE);
	assert_non_null(strstr(e->msg, "the store cannot write"));
	assert_non_null(strstr(e->msg, "full"));
	assert_non_null(strstr(e->msg, what));
	memset(e, 0, sizeof(*e));
}

/* The disk fills while a reply streams and a second prompt waits behind it: the reply
 * finishes in memory, new work is refused with 503's reason, and once the disk has
 * room everything acknowledged is stored, each turn having run exactly once. */
static void a_disk_that_fills_mid_turn_loses_nothing_acknowledged(void **state)
{
	struct h h;
	char sid[ID_MAX], t1[48], t2[48];
	start_streaming(&h, sid, 3, t1);
	h_prompt(&h, sid, "echo queued before the failure", "ws", t2);
	fail_disk(&h, "full");
	struct err e = {0};
	struct prompt p = {.session_id = sid, .text = "echo refused", .source = "http"};
	assert_int_equal(engine_prompt(h.E, &p, NULL, NULL, &e), -1);
	refused_as_unavailable(&e, "the prompt");
	char other[ID_MAX];
	struct session_params sp = {.title = "refused"};
	assert_int_equal(engine_session_create(h.E, &sp, other, &e), -1);
	refused_as_unavailable(&e, "the session");
	assert_int_equal(engine_session_update(h.E, sid, "refused title", &e), -1);
	refused_as_unavailable(&e, "the change");
	/* the streaming reply goes on in memory and ends; the queued turn waits for the
	 * store instead of piling up more unwritten work */
	int seen_before = h_count(&h, "message.part.delta", sid);
	h_spin(&h, 300);
	assert_true(h_count(&h, "message.part.delta", sid) > seen_before);
	assert_true(h_until(&h, none_running, NULL, 10000));
	h_spin(&h, 2 * STORE_WAIT_MS);
	assert_int_equal(engine_running(h.E), 0);
	assert_true(engine_tree_busy(h.E, sid));
	assert_non_null(engine_store_failure(h.E));

	disk(NULL);
	assert_true(h_until(&h, store_writes, NULL, 10000));
	assert_true(h_until(&h, h_idle, sid, 20000));
	h_check_ledger(&h, sid);
	assert_int_equal(h_turns(&h, sid, "completed"), 2);
	/* each turn ran once: one step's assistant message for the text reply, two for the
	 * tool round-trip; nothing refused was stored */
	assert_int_equal(h_replies(&h, t1, NULL), 1);
	assert_int_equal(h_replies(&h, t2, NULL), 2);
	assert_int_equal(h_parts_mentioning(&h, "refused"), 0);
	assert_int_equal(h_sessions(&h, NULL), 1);
	char *title = h_session_title(&h, sid);
	assert_string_equal(title, "test");
	free(title);
	/* the whole reply that streamed while the disk was full is stored */
	int64_t full = stored_text_len(&h, sid);
	h_stop(&h);
	h_start(&h, 1); /* and survives a restart, with nothing to recover */
	assert_int_equal(engine_running(h.E), 0);
	assert_int_equal(stored_text_len(&h, sid), full);
	assert_true(full > 1000);
	h_stop(&h);
}

/* A prompt whose own commit fails was answered "not accepted": it must not appear, or
 * run, when the disk recovers and the rest of the batch is written. */
static void a_prompt_refused_at_its_commit_is_never_run_later(void **state)
{
	struct h h;
	h_dir(&h, "{\"providers\":{\"scripted\":{\"pace_ms\":1}}}");
	h_start(&h, 1);
	char sid[ID_MAX];
	h_session(&h, sid);
	disk("full"); /* the engine learns it at the prompt's commit */
	struct err e = {0};
	struct prompt p = {.session_id = sid, .text = "echo never", .source = "http"};
	assert_int_equal(engine_prompt(h.E, &p, NULL, NULL, &e), -1);
	assert_int_equal(e.code, ERR_UNAVAILABLE);
	assert_non_null(strstr(e.msg, "could not save the prompt"));
	disk(NULL);
	assert_true(h_until(&h, store_writes, NULL, 10000));
	h_spin(&h, 300);
	assert_int_equal(h_messages(&h, sid, NULL), 0);
	assert_int_equal(h_turns(&h, NULL, NULL), 0);
	assert_int_equal(h_count(&h, "session.status", sid), 0);
	/* and the store takes prompts again */
	h_prompt(&h, sid, "hello", "http", NULL);
	assert_true(h_until(&h, h_idle, sid, 5000));
	h_check_ledger(&h, sid);
	h_stop(&h);
}

#define KV "plugin:kv"

static int store_fails_fast(struct h *h, void *arg)
{
	return engine_store_failure(h->E) && !engine_store_slow(h->E);
}

static void kv_is(struct h *h, const char *key, const char *want)
{
	struct err e = {0};
	char *v = NULL;
	int rc = engine_kv_get(h->E, KV, key, &v, NULL, &e);
	if (want && rc)
		fail_msg("kv get %s: %s", key, e.msg);
	if (want)
		assert_string_equal(v, want);
	else
		assert_int_equal(e.code, ERR_NOTFOUND);
	free(v);
}

static int kv_set(struct h *h, const char *key, const char *value, struct err *e)
{
	memset(e, 0, sizeof(*e));
	return engine_kv_set(h->E, KV, key, value, strlen(value), e);
}

/* A kv value refused at its own commit is forgotten (no read sees it, the recovered disk
 * never gets it); while the store fails, sets are refused naming why; one a slow disk
 * keeps (not yet on disk) is read back at once, and is on disk once the disk answers. */
static void kv_values_on_a_failing_disk_are_refused_whole_or_kept_and_read(void **state)
{
	struct h h;
	h_dir(&h, NULL);
	h_start(&h, 1);
	struct err e;
	assert_int_equal(kv_set(&h, "a", "1", &e), 0);
	disk("full"); /* the engine learns it at the next commit */
	assert_int_equal(kv_set(&h, "a", "2", &e), -1);
	assert_int_equal(e.code, ERR_UNAVAILABLE);
	assert_non_null(strstr(e.msg, "could not save the value of kv key \"a\""));
	kv_is(&h, "a", "1");
	assert_int_equal(kv_set(&h, "b", "x", &e), -1);
	refused_as_unavailable(&e, "kv key \"b\"");
	kv_is(&h, "b", NULL);
	disk(NULL);
	assert_true(h_until(&h, store_writes, NULL, 10000));
	h_spin(&h, 300);
	char *on_disk = h_kv_value(&h, KV, "a");
	assert_string_equal(on_disk, "1");
	free(on_disk);
	assert_null(h_kv_value(&h, KV, "b"));
	disk("slow 600"); /* the commit outlasts what a set waits for */
	assert_int_equal(kv_set(&h, "c", "late", &e), -1);
	assert_int_equal(e.code, ERR_UNAVAILABLE);
	assert_non_null(strstr(e.msg, "not on disk yet"));
	assert_true(engine_store_slow(h.E)); /* the disk cannot be read now: the log answers */
	kv_is(&h, "c", "late");
	disk("full"); /* the rest of that commit fails: c waits in the log, the disk reads */
	assert_true(h_until(&h, store_fails_fast, NULL, 5000));
	kv_is(&h, "c", "late");
	char *all = h_kv_list(&h, KV, "");
	assert_string_equal(all, "a=1,c=late"); /* the disk's a and the log's c, in order */
	free(all);
	disk(NULL);
	assert_true(h_until(&h, store_writes, NULL, 10000));
	on_disk = h_kv_value(&h, KV, "c");
	assert_string_equal(on_disk, "late");
	free(on_disk);
	h_stop(&h);
}

/* An I/O error that comes and goes is retried the same way as a full disk. */
static void an_io_error_is_retried_until_it_clears(void **state)
{
	struct h h;
	char sid[ID_MAX];
	start_streaming(&h, sid, 2, NULL);
	fail_disk(&h, "ioerr");
	assert_non_null(strstr(engine_store_failure(h.E), "I/O error"));
	h_spin(&h, 400); /* several retries fail */
	disk(NULL);
	assert_true(h_until(&h, h_idle, sid, 20000));
	assert_true(h_until(&h, store_writes, NULL, 10000));
	h_check_ledger(&h, sid);
	h_stop(&h);
}

/* A disk that stops answering (a frozen filesystem): the commit in flight waits on the
 * committer thread, and the loop goes on streaming; requests that need the disk are
 * refused with the reason instead of waiting for it; once the disk answers, everything
 * is stored. */
static void a_frozen_disk_delays_commits_not_the_loop(void **state)
{
	struct h h;
	char sid[ID_MAX];
	start_streaming(&h, sid, 3, NULL);
	fail_disk(&h, "slow 400"); /* every write of the database or WAL waits 0.4 s */
	assert_non_null(strstr(engine_store_failure(h.E), "the disk is slow"));
	int before = h_count(&h, "message.part.delta", sid);
	h_spin(&h, 500);
	assert_true(h_count(&h, "message.part.delta", sid) > before + 20);
	/* a prompt is refused at once: the commit it would wait behind is still running */
	struct err e = {0};
	struct prompt p = {.session_id = sid, .text = "echo frozen", .source = "http"};
	assert_int_equal(engine_prompt(h.E, &p, NULL, NULL, &e), -1);
	assert_int_equal(e.code, ERR_UNAVAILABLE);
	assert_non_null(strstr(e.msg, "the disk is slow"));
	assert_true(engine_store_slow(h.E));
	/* the health check answers, unhealthy, and reads are refused rather than waited for */
	struct jw w;
	jw_init(&w);
	int unknown;
	memset(&e, 0, sizeof(e));
	assert_int_equal(api_call(h.E, "global.health", NULL, &w, &unknown, &e), -1);
	assert_non_null(strstr(e.msg, "the disk is slow"));
	cJSON *params = cJSON_CreateObject();
	cJSON_AddStringToObject(params, "sessionID", sid);
	memset(&e, 0, sizeof(e));
	assert_int_equal(api_call(h.E, "session.messages", params, &w, &unknown, &e), -1);
	assert_int_equal(e.code, ERR_UNAVAILABLE);
	cJSON_Delete(params);
	jw_free(&w);
	assert_true(engine_store_slow(h.E));

	disk(NULL);
	assert_true(h_until(&h, store_writes, NULL, 20000));
	assert_true(h_until(&h, h_idle, sid, 20000));
	h_check_ledger(&h, sid);
	assert_true(stored_text_len(&h, sid) > 1000);
	assert_int_equal(h_parts_mentioning(&h, "frozen"), 0);
	h_stop(&h);
}

/* Stopping while the store fails makes a last attempt (the bus and the engine still
 * hand it their writes) and frees everything, whatever the attempt's outcome. */
static void stopping_while_the_store_fails_frees_cleanly(void **state)
{
	struct h h;
	char sid[ID_MAX];
	start_streaming(&h, sid, 2, NULL);
	fail_disk(&h, "full");
	h_spin(&h, 200);
	h_stop(&h); /* the last attempt fails too: the writes are reported lost */
	disk(NULL);
	h_start(&h, 1); /* what was on disk before the failure is intact */
	assert_true(h_until(&h, h_idle, sid, 5000));
	assert_true(stored_text_len(&h, sid) > 40);
	h_stop(&h);
}

/* The database file deleted (or replaced) under the server: noticed at the next commit,
 * and from then on every write is refused with that reason; no retry writes into a file
 * nobody will open again. */
static void a_deleted_database_file_stops_all_writes_loudly(void **state)
{
	for (int replace = 0; replace < 2; replace++) {
		struct h h;
		h_dir(&h, "{\"providers\":{\"scripted\":{\"pace_ms\":1}}}");
		h_start(&h, 1);
		char sid[ID_MAX], db[300];
		h_session(&h, sid);
		snprintf(db, sizeof(db), "%s/agentgate.db", h.dir);
		assert_int_equal(unlink(db), 0);
		if (replace) {
			FILE *f = fopen(db, "w");
			fclose(f);
		}
		struct err e = {0};
		struct prompt p = {.session_id = sid, .text = "echo lost", .source = "http"};
		assert_int_equal(engine_prompt(h.E, &p, NULL, NULL, &e), -1);
		assert_int_equal(e.code, ERR_UNAVAILABLE);
		assert_non_null(strstr(e.msg, "deleted or replaced"));
		memset(&e, 0, sizeof(e));
		assert_int_equal(engine_prompt(h.E, &p, NULL, NULL, &e), -1);
		assert_non_null(strstr(e.msg, "deleted or replaced"));
		assert_non_null(strstr(engine_store_failure(h.E), "restart"));
		h_spin(&h, 300);
		assert_non_null(engine_store_failure(h.E)); /* for good */
		h_stop(&h);
	}
}

int main(void)
{
	snprintf(control, sizeof(control), "/tmp/agentgate-faults-%d", (int)getpid());
	setenv("AGENTGATE_STORE_FAULTS", control, 1);
	unlink(control);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_disk_that_fills_mid_turn_loses_nothing_acknowledged),
		cmocka_unit_test(a_prompt_refused_at_its_commit_is_never_run_later),
		cmocka_unit_test(kv_values_on_a_failing_disk_are_refused_whole_or_kept_and_read),
		cmocka_unit_test(an_io_error_is_retried_until_it_clears),
		cmocka_unit_test(a_frozen_disk_delays_commits_not_the_loop),
		cmocka_unit_test(stopping_while_the_store_fails_frees_cleanly),
		cmocka_unit_test(a_deleted_database_file_stops_all_writes_loudly),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(control);
	return rc;
}
