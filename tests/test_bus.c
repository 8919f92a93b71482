/* Replay and back-pressure of the event bus, as SSE and WebSocket clients use it:
 * resuming from a sequence number pages through the store and the ring without gaps,
 * a sequence number older than what is kept yields an explicit resync, and a live
 * subscriber that is not drained is bounded and marked for disconnection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "id.h"
#include "subscriber.h"

static void nop_wake(struct subscriber *s)
{
}

static int has_events(struct h *h, void *arg)
{
	return bus_last_seq(engine_bus(h->E)) >= *(int64_t *)arg;
}

static void make_history(struct h *h, char *sid, int64_t n)
{
	h_session(h, sid);
	h_prompt(h, sid, "long", "web", NULL);
	assert_true(h_until(h, has_events, &n, 20000));
}

/* Drains s; checks every seq is one more than the last for an unfiltered subscriber. */
static int64_t drain(struct subscriber *s, int64_t from, int contiguous)
{
	int64_t last = from;
	struct event *ev;
	while ((ev = subscriber_next(s))) {
		assert_string_not_equal(ev->type ? ev->type : "", "resync");
		if (contiguous)
			assert_int_equal(ev->seq, last + 1);
		else
			assert_true(ev->seq > last);
		last = ev->seq;
		event_unref(ev);
	}
	return last;
}

static void resume_pages_through_store_and_ring_without_gaps(void **state)
{
	struct h h;
	h_dir(&h, "{\"event_keep\":400,\"event_ring\":64,\"providers\":{\"scripted\":{\"pace_ms\":0.2}}}");
	h_start(&h, 1);
	char sid[ID_MAX];
	make_history(&h, sid, 300);
	struct bus *B = engine_bus(h.E);
	int64_t last = bus_last_seq(B), since = last - 250; /* older than the ring, kept in the store */
	assert_true(since + 1 >= bus_oldest_seq(B));
	struct subscriber s;
	assert_int_equal(subscriber_start(&s, B, NULL, 0, since, nop_wake), 0);
	assert_int_equal(drain(&s, since, 1), last);
	/* live events continue the sequence after the catch-up */
	assert_true(h_until(&h, h_idle, sid, 20000));
	assert_int_equal(drain(&s, last, 1), bus_last_seq(B));
	subscriber_stop(&s);
	/* a filtered resume only sees that session, in order */
	char other[ID_MAX];
	h_session(&h, other);
	since = bus_last_seq(B) - 100;
	assert_int_equal(subscriber_start(&s, B, sid, 0, since, nop_wake), 0);
	assert_true(drain(&s, since, 0) > since);
	subscriber_stop(&s);
	h_stop(&h);
}

static void too_old_a_sequence_number_gets_a_resync(void **state)
{
	struct h h;
	h_dir(&h, "{\"event_keep\":100,\"event_ring\":64,\"providers\":{\"scripted\":{\"pace_ms\":0.2}}}");
	h_start(&h, 1);
	char sid[ID_MAX];
	make_history(&h, sid, 400);
	struct bus *B = engine_bus(h.E);
	engine_flush(h.E);
	assert_true(bus_oldest_seq(B) > 2);
	struct subscriber s;
	assert_int_equal(subscriber_start(&s, B, NULL, 0, 1, nop_wake), 0);
	struct event *ev = subscriber_next(&s);
	assert_non_null(ev);
	assert_non_null(strstr(ev->json, "\"type\":\"resync\""));
	assert_non_null(strstr(ev->json, "\"since\":1"));
	event_unref(ev);
	subscriber_stop(&s);
	h_stop(&h);
}

static int stored_upto(struct h *h, void *arg)
{
	return h_durable_seq(h) >= *(int64_t *)arg;
}

static void an_undrained_live_subscriber_is_bounded_and_marked(void **state)
{
	struct h h;
	h_dir(&h, "{\"providers\":{\"scripted\":{\"pace_ms\":0.2}}}");
	h_start(&h, 1);
	struct subscriber slow, fast;
	struct bus *B = engine_bus(h.E);
	assert_int_equal(subscriber_start(&slow, B, NULL, 0, -1, nop_wake), 0);
	assert_int_equal(subscriber_start(&fast, B, NULL, 0, -1, nop_wake), 0);
	char sid[ID_MAX];
	h_session(&h, sid);
	int64_t start = bus_last_seq(B);
	for (int i = 0; i < 8; i++)
		h_prompt(&h, sid, "long", "web", NULL);
	int64_t seen = start - 1; /* session.created was queued before `start` */
	while (!h_idle(&h, sid)) {
		h_spin(&h, 20);
		seen = drain(&fast, seen, 1);
	}
	seen = drain(&fast, seen, 1);
	assert_int_equal(seen, bus_last_seq(B));
	print_message("events: %lld\n", (long long)(bus_last_seq(B) - start));
	assert_true(bus_last_seq(B) - start > SUB_QUEUE_MAX);
	assert_true(slow.overflow);
	assert_int_equal((int)slow.n, SUB_QUEUE_MAX);
	subscriber_stop(&slow);
	subscriber_stop(&fast);
	h_stop(&h);
}

static int64_t publish_note(struct bus *B, int i)
{
	struct jw w;
	jw_init(&w);
	bus_begin(B, &w, "test.note");
	jw_obj(&w);
	jw_kint(&w, "i", i);
	jw_obj_end(&w);
	struct bus_env env = {.session_id = "ses_x", .path = "ses_root/ses_x", .depth = 1};
	int64_t seq = bus_publish(B, &w, "test.note", &env);
	jw_free(&w);
	return seq;
}

/* An event is stored by the next commit even when it is the only thing written, and
 * a restart resumes from it: the store serves it once the ring is gone. */
static void an_event_alone_reaches_the_store_and_outlives_a_restart(void **state)
{
	struct h h;
	h_dir(&h, NULL);
	h_start(&h, 1);
	int64_t seq = publish_note(engine_bus(h.E), 7);
	assert_true(seq > 0);
	assert_true(h_until(&h, stored_upto, &seq, 2000));
	h_stop(&h);
	h_start(&h, 1);
	struct bus *B = engine_bus(h.E);
	assert_true(bus_last_seq(B) >= seq); /* numbering resumes above every reserved seq */
	struct subscriber s;
	assert_int_equal(subscriber_start(&s, B, "ses_root", 1, seq - 1, nop_wake), 0);
	struct event *ev = subscriber_next(&s);
	assert_non_null(ev);
	assert_int_equal(ev->seq, seq);
	assert_string_equal(ev->session_id, "ses_x");
	assert_string_equal(ev->type, "test.note"); /* read back, it keeps its type */
	assert_string_equal(ev->path, "ses_root/ses_x");
	assert_non_null(strstr(ev->json, "\"i\":7"));
	event_unref(ev);
	subscriber_stop(&s);
	h_stop(&h);
}

/* Events published faster than commits come are stored in rows of at most 1024, and a
 * resume from before them, once the ring is gone (a restart), pages through them all. */
static void a_burst_is_stored_in_bounded_batches_and_replays_whole(void **state)
{
	struct h h;
	h_dir(&h, NULL);
	h_start(&h, 1);
	struct bus *B = engine_bus(h.E);
	int64_t first = bus_last_seq(B) + 1, last = 0;
	for (int i = 0; i < 3000; i++)
		last = publish_note(B, i);
	assert_true(h_until(&h, stored_upto, &last, 2000));
	/* raw SQL: the bound is on the store's own batch format, not on anything it serves */
	assert_true(h_sql_int(&h, "SELECT MAX(last_seq - first_seq + 1) FROM event_batch") <= 1024);
	h_stop(&h);
	h_start(&h, 1);
	struct subscriber s;
	assert_int_equal(subscriber_start(&s, engine_bus(h.E), "ses_x", 0, first - 1, nop_wake), 0);
	assert_int_equal(drain(&s, first - 1, 1), last);
	subscriber_stop(&s);
	h_stop(&h);
}

/* A stored batch whose records claim more bytes than it has (a damaged database) is
 * skipped whole: no read past its end, and the events before it still replay. */
static void a_damaged_stored_batch_is_skipped_not_overread(void **state)
{
	struct h h;
	h_dir(&h, NULL);
	h_start(&h, 1);
	int64_t a = publish_note(engine_bus(h.E), 1), b = publish_note(engine_bus(h.E), 2);
	assert_true(h_until(&h, stored_upto, &b, 2000));
	h_stop(&h);
	/* seq b+1, json 1 byte, session id 5 bytes, path 4096 bytes: then 1 byte, not 4102 */
	char path[300], sql[200];
	snprintf(path, sizeof(path), "%s/agentgate.db", h.dir);
	snprintf(sql, sizeof(sql), "INSERT INTO event_batch VALUES(%lld, %lld,"
		 " X'%02x%02x000000000000010000000500001061')", (long long)b + 1, (long long)b + 5,
		 (int)((b + 1) & 0xff), (int)(((b + 1) >> 8) & 0xff));
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	h_start(&h, 1);
	assert_true(bus_last_seq(engine_bus(h.E)) >= b + 5);
	struct subscriber s;
	assert_int_equal(subscriber_start(&s, engine_bus(h.E), "ses_x", 0, a - 1, nop_wake), 0);
	assert_int_equal(drain(&s, a - 1, 1), b);
	subscriber_stop(&s);
	h_stop(&h);
}

static void *unref_half(void *arg)
{
	struct event *ev = arg;
	for (int i = 0; i < 50000; i++)
		event_unref(ev);
	return NULL;
}

struct held {
	struct event *ev;
};

static void hold(void *arg, struct event *ev)
{
	event_ref(ev);
	((struct held *)arg)->ev = ev;
}

/* An event's references may be dropped on two threads at once (a plugin's observer
 * thread, the loop): it is freed once, after the last one. */
static void an_event_is_released_safely_from_two_threads(void **state)
{
	struct bus *B = bus_create(NULL, 16, 0);
	struct bus_sub sub;
	struct held h = {0};
	bus_subscribe(B, &sub, hold, &h);
	publish_note(B, 1);
	assert_non_null(h.ev);
	for (int i = 0; i < 100000; i++)
		event_ref(h.ev);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, unref_half, h.ev), 0);
	for (int i = 0; i < 50000; i++)
		event_unref(h.ev);
	pthread_join(th, NULL);
	assert_int_equal(atomic_load(&h.ev->refs), 2); /* ours and the ring's */
	event_unref(h.ev);
	bus_unsubscribe(B, &sub);
	bus_destroy(B);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(resume_pages_through_store_and_ring_without_gaps),
		cmocka_unit_test(too_old_a_sequence_number_gets_a_resync),
		cmocka_unit_test(an_undrained_live_subscriber_is_bounded_and_marked),
		cmocka_unit_test(an_event_alone_reaches_the_store_and_outlives_a_restart),
		cmocka_unit_test(a_burst_is_stored_in_bounded_batches_and_replays_whole),
		cmocka_unit_test(a_damaged_stored_batch_is_skipped_not_overread),
		cmocka_unit_test(an_event_is_released_safely_from_two_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
