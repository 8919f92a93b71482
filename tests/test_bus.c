/* Replay and back-pressure of the event bus, as SSE and WebSocket clients use it:
 * resuming from a sequence number pages through the store and the ring without gaps,
 * a sequence number older than what is kept yields an explicit resync, a burst does
 * not cut off a reader that keeps up, and a live subscriber that is not drained is
 * bounded by bytes and time behind and marked for disconnection. Custom
 * events (engine_emit) travel like the engine's own. */
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
#include "hooks.h"
#include "id.h"
#include "ndjson.h"
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

/* A burst far past any event count a client would hold (30 000 events at once) does
 * not cut off a reader that drains after it: the bound is bytes and time behind. */
static void a_burst_does_not_cut_off_a_reader_that_keeps_up(void **state)
{
	struct h h;
	h_dir(&h, NULL);
	h_start(&h, 1);
	struct bus *B = engine_bus(h.E);
	struct subscriber s;
	assert_int_equal(subscriber_start(&s, B, NULL, 0, -1, nop_wake), 0);
	int64_t start = bus_last_seq(B);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 30000; i++)
			assert_true(publish_note(B, i) > 0);
		assert_false(s.overflow);
		start = drain(&s, start, 1);
		assert_int_equal(start, bus_last_seq(B));
	}
	assert_int_equal(bus_dropped(B), 0);
	subscriber_stop(&s);
	h_stop(&h);
}

static int64_t spin_until_ms;
static int ms_passed(struct h *h, void *arg)
{
	(void)h;
	(void)arg;
	return now_ms() >= spin_until_ms;
}

/* A reader that does not drain is cut off past the byte bound, and one whose oldest
 * unsent event is too far behind the newest past the time bound; the others are not. */
static void an_undrained_subscriber_is_cut_off_by_bytes_or_time_behind(void **state)
{
	struct h h;
	h_dir(&h, NULL);
	h_start(&h, 1);
	struct bus *B = engine_bus(h.E);
	bus_set_sub_limits(B, &(struct bus_sub_limits){.max_bytes = 65536, .max_behind_ms = 300});
	struct subscriber slow, fast;
	assert_int_equal(subscriber_start(&slow, B, NULL, 0, -1, nop_wake), 0);
	assert_int_equal(subscriber_start(&fast, B, NULL, 0, -1, nop_wake), 0);
	int64_t seen = bus_last_seq(B);
	int i = 0;
	while (!slow.overflow && i < 100000) {
		publish_note(B, i++);
		seen = drain(&fast, seen, 1);
	}
	assert_int_equal(slow.overflow, 1);
	assert_true(slow.bytes <= 65536 && slow.bytes > 60000);
	assert_int_equal(bus_dropped(B), 1);
	char why[96];
	subscriber_why(&slow, why, sizeof(why));
	assert_non_null(strstr(why, "65536 bytes"));
	subscriber_stop(&slow);
	/* time: one event, then another 300+ ms later */
	assert_int_equal(subscriber_start(&slow, B, NULL, 0, -1, nop_wake), 0);
	publish_note(B, 0);
	seen = drain(&fast, seen, 1); /* the reader keeping up has nothing old queued */
	spin_until_ms = now_ms() + 350;
	assert_true(h_until(&h, ms_passed, NULL, 5000));
	assert_false(slow.overflow);
	publish_note(B, 1);
	assert_int_equal(slow.overflow, 2);
	subscriber_why(&slow, why, sizeof(why));
	assert_non_null(strstr(why, "300 ms behind"));
	seen = drain(&fast, seen, 1);
	assert_false(fast.overflow);
	assert_int_equal(seen, bus_last_seq(B));
	subscriber_stop(&slow);
	subscriber_stop(&fast);
	h_stop(&h);
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

/* Events published faster than commits come are stored in rows of at most 8192, and a
 * resume from before them, once the ring is gone (a restart), pages through them all. */
static void a_burst_is_stored_in_bounded_batches_and_replays_whole(void **state)
{
	struct h h;
	h_dir(&h, NULL);
	h_start(&h, 1);
	struct bus *B = engine_bus(h.E);
	int64_t first = bus_last_seq(B) + 1, last = 0;
	for (int i = 0; i < 20000; i++)
		last = publish_note(B, i);
	assert_true(h_until(&h, stored_upto, &last, 5000));
	/* raw SQL: the bound is on the store's own batch format, not on anything it serves */
	assert_true(h_sql_int(&h, "SELECT MAX(last_seq - first_seq + 1) FROM event_batch") <= 8192);
	assert_true(h_sql_int(&h, "SELECT count(*) FROM event_batch") >= 3);
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

struct copies {
	char **json;
	int64_t *seq;
	int n, cap;
};

static void keep_copy(void *arg, struct event *ev)
{
	struct copies *c = arg;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 256;
		c->json = realloc(c->json, (size_t)c->cap * sizeof(*c->json));
		c->seq = realloc(c->seq, (size_t)c->cap * sizeof(*c->seq));
		assert_non_null(c->json);
		assert_non_null(c->seq);
	}
	c->json[c->n] = strndup(ev->json, ev->len);
	c->seq[c->n++] = ev->seq;
}

static void put_le(unsigned char **q, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		*(*q)++ = (unsigned char)(v >> (8 * i));
}

/* A whole stored record, its path its session id; the format evlog.c writes. */
static void put_rec(unsigned char **p, int64_t seq, const char *sid, const char *json)
{
	size_t sl = strlen(sid), jl = strlen(json);
	put_le(p, (uint64_t)seq, 8);
	put_le(p, jl, 4);
	put_le(p, sl, 2);
	put_le(p, sl, 2);
	memcpy(*p, sid, sl);
	memcpy(*p + sl, sid, sl);
	memcpy(*p + 2 * sl, json, jl);
	*p += 2 * sl + jl;
}

/* A stored record told as a change to the batch's record number base: it keeps pre
 * bytes of that one's start and suf of its end, with mid between. */
static void put_diff(unsigned char **p, int64_t seq, uint32_t base, uint32_t pre,
		     uint32_t suf, const char *mid)
{
	size_t ml = strlen(mid);
	put_le(p, (uint64_t)seq, 8);
	put_le(p, ml | 0x80000000u, 4);
	put_le(p, base, 4);
	put_le(p, pre, 4);
	put_le(p, suf, 4);
	memcpy(*p, mid, ml);
	*p += ml;
}

static void collect_json(void *arg, struct event *ev)
{
	keep_copy(arg, ev);
}

static void copies_free(struct copies *c)
{
	for (int i = 0; i < c->n; i++)
		free(c->json[i]);
	free(c->json);
	free(c->seq);
}

/* A stopped server's database with one event stored; its seq. */
static int64_t one_stored_event(struct h *h)
{
	h_dir(h, NULL);
	h_start(h, 1);
	int64_t b = publish_note(engine_bus(h->E), 1);
	assert_true(h_until(h, stored_upto, &b, 2000));
	h_stop(h);
	return b;
}

/* Writes raw batch rows into the stopped server's database, as a damaged one might be. */
struct raw_rows {
	sqlite3 *db;
	sqlite3_stmt *q;
};

static void raw_rows_open(struct raw_rows *r, const struct h *h)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/agentgate.db", h->dir);
	assert_int_equal(sqlite3_open(path, &r->db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(r->db, "INSERT INTO event_batch VALUES(?, ?, ?)", -1,
					    &r->q, NULL), SQLITE_OK);
}

static void raw_row(struct raw_rows *r, int64_t first, int64_t last, const void *p, size_t n)
{
	sqlite3_bind_int64(r->q, 1, first);
	sqlite3_bind_int64(r->q, 2, last);
	sqlite3_bind_blob(r->q, 3, p, (int)n, SQLITE_TRANSIENT);
	assert_int_equal(sqlite3_step(r->q), SQLITE_DONE);
	sqlite3_reset(r->q);
}

static void raw_rows_close(struct raw_rows *r)
{
	sqlite3_finalize(r->q);
	sqlite3_close(r->db);
}

/* A record stored as a change to an earlier one comes back whole; one that claims more
 * of that record than there is (a damaged database) ends its batch there: no read
 * outside it, the records before it still replay. */
static void a_stored_diff_record_is_rebuilt_and_a_damaged_one_ends_its_batch(void **state)
{
	struct h h;
	int64_t b = one_stored_event(&h);
	const char *j1 = "{\"type\":\"test.note\",\"properties\":{\"i\":10},\"seq\":1}";
	unsigned char buf[512], *p = buf;
	put_rec(&p, b + 1, "ses_x", j1);
	put_diff(&p, b + 2, 0, 38, 1, "22},\"seq\":2"); /* i:22, seq 2 */
	put_diff(&p, b + 3, 1, 38, 500, "3");           /* more than there is */
	put_rec(&p, b + 4, "ses_x", j1);                /* behind it: not read */
	struct raw_rows r;
	raw_rows_open(&r, &h);
	raw_row(&r, b + 1, b + 4, buf, (size_t)(p - buf));
	raw_rows_close(&r);
	h_start(&h, 1);
	struct copies got = {0};
	int64_t upto;
	bus_replay(engine_bus(h.E), b, "ses_x", 0, collect_json, &got, 100, &upto);
	assert_int_equal(got.n >= 2 ? got.seq[1] : 0, b + 2);
	assert_string_equal(got.json[0], j1);
	assert_string_equal(got.json[1], "{\"type\":\"test.note\",\"properties\":{\"i\":22},"
					 "\"seq\":2}");
	for (int i = 0; i < got.n; i++)
		assert_true(got.seq[i] <= b + 2);
	copies_free(&got);
	h_stop(&h);
}

/* Stored batches with a few bytes flipped (seeded, so a failure replays): replay skips
 * or ends what is damaged and never reads outside a batch (ASan runs this too). */
static void damaged_diff_records_never_read_outside_their_batch(void **state)
{
	struct h h;
	int64_t b = one_stored_event(&h);
	struct raw_rows r;
	raw_rows_open(&r, &h);
	const char *j = "{\"type\":\"test.note\",\"properties\":{\"i\":10},\"seq\":1}";
	unsigned int seed = 7;
	for (int k = 0; k < 300; k++) {
		unsigned char buf[512], *p = buf;
		int64_t first = b + 1 + k * 4;
		put_rec(&p, first, "ses_x", j);
		put_diff(&p, first + 1, 0, 38, 1, "22},\"seq\":2");
		put_diff(&p, first + 2, 1, 39, 10, "3");
		put_diff(&p, first + 3, 2, 2, 2, "x");
		size_t n = (size_t)(p - buf);
		for (int f = 0; f < 1 + k % 3; f++)
			buf[rand_r(&seed) % n] ^= (unsigned char)(1 + rand_r(&seed) % 255);
		raw_row(&r, first, first + 3, buf, n);
	}
	raw_rows_close(&r);
	h_start(&h, 1);
	struct copies got = {0};
	int64_t upto;
	int n = bus_replay(engine_bus(h.E), b, NULL, 0, collect_json, &got, 100000, &upto);
	assert_true(n >= 0 && n <= 1200);
	for (int i = 0; i < got.n; i++) {
		assert_true(got.seq[i] > b && got.seq[i] <= b + 1200);
		assert_true(strlen(got.json[i]) < 512);
	}
	copies_free(&got);
	h_stop(&h);
}

static int64_t db_int(const char *dir, const char *sql)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/agentgate.db", dir);
	sqlite3 *db;
	sqlite3_stmt *q;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	sqlite3_close(db);
	return v;
}

/* Stored batches are packed as events come, a delta stored as a change to its session's
 * previous record: two interleaved streamed replies cost a few dozen bytes an event on
 * disk, and replay after a restart (from the store alone) gives back every event exactly
 * as it was sent live, in seq order; a damaged packed batch is skipped, not misread. */
static void stored_batches_are_packed_and_replay_byte_for_byte(void **state)
{
	struct h h;
	h_dir(&h, "{\"providers\":{\"scripted\":{\"pace_ms\":5}}}");
	h_start(&h, 1);
	struct bus *B = engine_bus(h.E);
	struct bus_sub live;
	struct copies sent = {0};
	bus_subscribe(B, &live, keep_copy, &sent);
	int64_t start = bus_last_seq(B);
	char sid[ID_MAX], other[ID_MAX];
	h_session(&h, sid);
	h_session(&h, other);
	h_prompt(&h, sid, "long", "web", NULL);
	h_prompt(&h, other, "long", "web", NULL); /* two streams interleave in each batch */
	assert_true(h_until(&h, h_idle, sid, 60000));
	assert_true(h_until(&h, h_idle, other, 60000));
	bus_unsubscribe(B, &live);
	int64_t last = bus_last_seq(B);
	assert_true(h_until(&h, stored_upto, &last, 5000));
	h_stop(&h);
	int64_t bytes = db_int(h.dir, "SELECT sum(length(data)) FROM event_batch");
	int64_t events = db_int(h.dir, "SELECT sum(last_seq - first_seq + 1) FROM event_batch");
	int64_t raw = 0;
	for (int i = 0; i < sent.n; i++)
		raw += (int64_t)strlen(sent.json[i]);
	print_message("%lld events, %lld bytes stored (%.1f an event; %.1f as JSON)\n",
		      (long long)events, (long long)bytes, (double)bytes / (double)events,
		      (double)raw / sent.n);
	assert_true(events >= 100);
	assert_true(bytes < events * 64);

	h_start(&h, 1); /* the ring is gone: replay comes from the store */
	struct subscriber s;
	assert_int_equal(subscriber_start(&s, engine_bus(h.E), NULL, 0, start, nop_wake), 0);
	struct event *ev;
	int i = 0;
	while ((ev = subscriber_next(&s)) && ev->seq <= last) {
		assert_true(i < sent.n);
		assert_int_equal(ev->seq, sent.seq[i]);
		assert_int_equal(ev->len, strlen(sent.json[i]));
		assert_memory_equal(ev->json, sent.json[i], ev->len);
		i++;
		event_unref(ev);
	}
	event_unref(ev);
	assert_int_equal(i, sent.n);
	subscriber_stop(&s);
	h_stop(&h);

	/* flip a byte inside the first packed batch: it is skipped, the others replay */
	char path[300], sql[300];
	snprintf(path, sizeof(path), "%s/agentgate.db", h.dir);
	snprintf(sql, sizeof(sql), "UPDATE event_batch SET data = substr(data, 1, 20) || "
		 "X'0000000000' || substr(data, 26) WHERE first_seq = (SELECT min(first_seq) "
		 "FROM event_batch)");
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	h_start(&h, 1);
	assert_int_equal(subscriber_start(&s, engine_bus(h.E), NULL, 0, start, nop_wake), 0);
	int got = 0;
	while ((ev = subscriber_next(&s))) {
		got += ev->seq <= last;
		event_unref(ev);
	}
	assert_true(got > 0 && got < sent.n);
	subscriber_stop(&s);
	h_stop(&h);
	copies_free(&sent);
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


/* The next event s has, which must be of type; its JSON parsed (caller frees). */
static cJSON *next_of(struct subscriber *s, const char *type, int64_t *seq)
{
	struct event *ev = subscriber_next(s);
	assert_non_null(ev);
	assert_string_equal(ev->type, type);
	cJSON *j = cJSON_ParseWithLength(ev->json, ev->len);
	if (seq)
		*seq = ev->seq;
	event_unref(ev);
	assert_non_null(j);
	return j;
}

static void has_envelope(const cJSON *j, const char *sid, const char *root, int depth)
{
	assert_string_equal(cJSON_GetObjectItem(j, "sessionID")->valuestring, sid);
	assert_string_equal(cJSON_GetObjectItem(j, "rootID")->valuestring, root);
	assert_string_equal(cJSON_GetObjectItem(j, "parentID")->valuestring, root);
	assert_int_equal(cJSON_GetObjectItem(j, "depth")->valueint, depth);
	assert_true(cJSON_GetObjectItem(j, "seq")->valuedouble > 0);
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "properties"), "n")->valueint, 1);
}

static void emit_refused(struct h *h, const char *sid, const char *type, const char *props,
			 enum err_code code, const char *says)
{
	struct err e = {0};
	assert_int_equal(engine_emit(h->E, sid, type, props, &e), -1);
	assert_int_equal(e.code, code);
	if (!strstr(e.msg, says))
		fail_msg("emit %s %s: \"%s\" does not say \"%s\"", type, props, e.msg, says);
}

/* An emit from inside an event callback would overtake the event being delivered. */
static int emit_from_callback(void *arg, const struct hook_ctx *c, void *data, char *why,
			      size_t n)
{
	struct h *h = arg;
	struct err e = {0};
	if (engine_emit(h->E, c->session_id, "plugin.test.inner", "{}", &e) == -1 &&
	    e.code == ERR_BUSY)
		hooks_remove_owner(h->E, "inner");
	return 0;
}

/* A root and its child session; the child's id to child. */
static void tree_of_two(struct h *h, char *root, char *child)
{
	h_dir(h, NULL);
	h_start(h, 1);
	h_session(h, root);
	struct session_params p = {.parent_id = root, .title = "child"};
	struct err e = {0};
	assert_int_equal(engine_session_create(h->E, &p, child, &e), 0);
}

/* A custom event reaches a live subscriber of the root's tree and `agentgate run
 * --format json` with the session's tree envelope, and is replayed with its type after
 * a restart. */
static void a_custom_event_carries_the_tree_envelope_and_replays(void **state)
{
	struct h h;
	char root[ID_MAX], child[ID_MAX];
	tree_of_two(&h, root, child);
	struct subscriber live;
	assert_int_equal(subscriber_start(&live, engine_bus(h.E), root, 1, -1, nop_wake), 0);
	char *out = NULL;
	size_t outlen = 0;
	FILE *f = open_memstream(&out, &outlen);
	struct ndjson nd;
	struct bus_sub run_sub;
	ndjson_init(&nd, f, root, 1); /* agentgate run --format json */
	bus_subscribe(engine_bus(h.E), &run_sub, ndjson_on_event, &nd);
	struct err e = {0};
	assert_int_equal(engine_emit(h.E, child, "plugin.test.ping", "{ \"n\": 1 }", &e), 0);
	bus_unsubscribe(engine_bus(h.E), &run_sub);
	fclose(f);
	int64_t seq;
	cJSON *j = next_of(&live, "plugin.test.ping", &seq);
	has_envelope(j, child, root, 1);
	cJSON_Delete(j);
	subscriber_stop(&live);
	j = cJSON_Parse(out); /* one NDJSON line: the root's, naming the child */
	assert_non_null(j);
	assert_string_equal(cJSON_GetObjectItem(j, "type")->valuestring, "plugin.test.ping");
	assert_string_equal(cJSON_GetObjectItem(j, "sessionID")->valuestring, root);
	assert_string_equal(cJSON_GetObjectItem(j, "childSessionID")->valuestring, child);
	assert_int_equal(cJSON_GetObjectItem(j, "depth")->valueint, 1);
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "properties"), "n")->valueint, 1);
	cJSON_Delete(j);
	free(out);
	assert_true(h_until(&h, stored_upto, &seq, 2000));
	h_stop(&h);
	h_start(&h, 1);
	struct subscriber replay;
	assert_int_equal(subscriber_start(&replay, engine_bus(h.E), root, 1, seq - 1, nop_wake), 0);
	j = next_of(&replay, "plugin.test.ping", NULL);
	has_envelope(j, child, root, 1);
	cJSON_Delete(j);
	subscriber_stop(&replay);
	h_stop(&h);
}

/* A bad type or properties, a type of the engine's own, an unknown session, and an
 * emit from inside an event callback are refused, naming why. */
static void a_custom_event_is_refused_naming_why(void **state)
{
	struct h h;
	char root[ID_MAX], child[ID_MAX];
	tree_of_two(&h, root, child);
	char long_type[EVENT_TYPE_MAX + 2];
	memset(long_type, 'x', sizeof(long_type) - 1);
	long_type[sizeof(long_type) - 1] = 0;
	emit_refused(&h, child, long_type, "{}", ERR_INVALID, "1 to 47 bytes");
	emit_refused(&h, child, "", "{}", ERR_INVALID, "1 to 47 bytes");
	emit_refused(&h, child, "plugin.a b", "{}", ERR_INVALID, "not printable");
	emit_refused(&h, child, "plugin.\"q", "{}", ERR_INVALID, "quote");
	emit_refused(&h, child, "session.idle", "{}", ERR_INVALID, "engine's own namespace");
	emit_refused(&h, child, "plugin.test.x", "[1]", ERR_INVALID, "must be a JSON object");
	emit_refused(&h, child, "plugin.test.x", "{oops", ERR_INVALID, "must be a JSON object");
	emit_refused(&h, child, "plugin.test.x", NULL, ERR_INVALID, "must be a JSON object");
	emit_refused(&h, "ses_nope", "plugin.test.x", "{}", ERR_NOTFOUND, "ses_nope");
	assert_int_equal(hooks_add(h.E, HOOK_EVENT, "inner", emit_from_callback, &h), 0);
	struct err e = {0};
	assert_int_equal(engine_emit(h.E, root, "plugin.test.outer", "{}", &e), 0);
	assert_int_equal(h_count(&h, "plugin.test.inner", NULL), 0);
	assert_int_equal(h_count(&h, "plugin.test.outer", root), 1);
	/* the callback saw ERR_BUSY and removed itself; nothing of the refusals went out */
	assert_int_equal(engine_emit(h.E, root, "plugin.test.after", "{}", &e), 0);
	assert_int_equal(h_count(&h, "plugin.test.x", NULL), 0);
	h_stop(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(resume_pages_through_store_and_ring_without_gaps),
		cmocka_unit_test(too_old_a_sequence_number_gets_a_resync),
		cmocka_unit_test(a_burst_does_not_cut_off_a_reader_that_keeps_up),
		cmocka_unit_test(an_undrained_subscriber_is_cut_off_by_bytes_or_time_behind),
		cmocka_unit_test(an_event_alone_reaches_the_store_and_outlives_a_restart),
		cmocka_unit_test(a_burst_is_stored_in_bounded_batches_and_replays_whole),
		cmocka_unit_test(a_damaged_stored_batch_is_skipped_not_overread),
		cmocka_unit_test(a_stored_diff_record_is_rebuilt_and_a_damaged_one_ends_its_batch),
		cmocka_unit_test(damaged_diff_records_never_read_outside_their_batch),
		cmocka_unit_test(stored_batches_are_packed_and_replay_byte_for_byte),
		cmocka_unit_test(an_event_is_released_safely_from_two_threads),
		cmocka_unit_test(a_custom_event_carries_the_tree_envelope_and_replays),
		cmocka_unit_test(a_custom_event_is_refused_naming_why),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
