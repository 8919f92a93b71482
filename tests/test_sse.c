/* Unit tests for gateway/llm/sse.c: WHATWG EventSource parsing, chunk-split invariance,
 * limits, and OpenAI / Anthropic shaped streams. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sse.h"

#define MAX_EVENTS 64
#define MAX_COMMENTS 16

struct got {
	char *type;
	char *data;
	size_t data_len;
	char *id;
	int64_t retry_ms;
};

/* Records what the parser reports; abort_at > 0 makes the abort_at-th event return
 * abort_rc. */
struct rec {
	struct got ev[MAX_EVENTS];
	size_t n;
	char *comment[MAX_COMMENTS];
	size_t ncomments;
	size_t abort_at;
	int abort_rc;
};

static char *dup_mem(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	assert_non_null(d);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

static int on_event(void *arg, const struct sse_event *ev)
{
	struct rec *r = arg;

	assert_true(r->n < MAX_EVENTS);
	assert_int_equal(ev->data[ev->data_len], '\0');
	assert_int_equal(ev->type[ev->type_len], '\0');
	struct got *g = &r->ev[r->n++];
	g->type = dup_mem(ev->type, ev->type_len);
	g->data = dup_mem(ev->data, ev->data_len);
	g->data_len = ev->data_len;
	g->id = dup_mem(ev->id, strlen(ev->id));
	g->retry_ms = ev->retry_ms;
	return r->abort_at && r->n == r->abort_at ? r->abort_rc : 0;
}

static int on_comment(void *arg, const char *text, size_t len)
{
	struct rec *r = arg;

	assert_true(r->ncomments < MAX_COMMENTS);
	r->comment[r->ncomments++] = dup_mem(text, len);
	return 0;
}

static void rec_clear(struct rec *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->ev[i].type);
		free(r->ev[i].data);
		free(r->ev[i].id);
	}
	for (size_t i = 0; i < r->ncomments; i++)
		free(r->comment[i]);
	r->n = 0;
	r->ncomments = 0;
}

static void start(struct sse_parser *p, struct rec *r, size_t max_line)
{
	memset(r, 0, sizeof(*r));
	sse_init(p, max_line, on_event, r);
	sse_set_comment_cb(p, on_comment);
}

static void stop(struct sse_parser *p, struct rec *r)
{
	sse_free(p);
	rec_clear(r);
}

static int feed_str(struct sse_parser *p, const char *s)
{
	return sse_feed(p, s, strlen(s));
}

/* Feeds s in pieces of at most step bytes; returns the first non-zero result. */
static int feed_steps(struct sse_parser *p, const char *s, size_t len, size_t step)
{
	for (size_t off = 0; off < len; off += step) {
		size_t n = len - off < step ? len - off : step;
		int rc = sse_feed(p, s + off, n);
		if (rc)
			return rc;
	}
	return 0;
}

static void assert_same(const struct rec *a, const struct rec *b)
{
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		assert_string_equal(a->ev[i].type, b->ev[i].type);
		assert_int_equal(a->ev[i].data_len, b->ev[i].data_len);
		assert_memory_equal(a->ev[i].data, b->ev[i].data, a->ev[i].data_len);
		assert_string_equal(a->ev[i].id, b->ev[i].id);
		assert_int_equal(a->ev[i].retry_ms, b->ev[i].retry_ms);
	}
	assert_int_equal(a->ncomments, b->ncomments);
	for (size_t i = 0; i < a->ncomments; i++)
		assert_string_equal(a->comment[i], b->comment[i]);
}

/* ---- basic fields ------------------------------------------------------------------ */

static void test_single_event_dispatched_on_blank_line(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	assert_int_equal(feed_str(&p, "data: hello\n"), 0);
	assert_int_equal(r.n, 0);
	assert_int_equal(feed_str(&p, "\n"), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.ev[0].data, "hello");
	assert_int_equal(r.ev[0].data_len, 5);
	assert_string_equal(r.ev[0].type, "");
	assert_string_equal(r.ev[0].id, "");
	assert_int_equal(r.ev[0].retry_ms, -1);
	assert_int_equal(sse_finish(&p), 0);
	stop(&p, &r);
}

static void test_multi_line_data_joined_with_newline(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	assert_int_equal(feed_str(&p, "data: one\ndata: two\ndata: three\n\n"), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.ev[0].data, "one\ntwo\nthree");
	stop(&p, &r);
}

static void test_event_type_reported_then_reset_after_dispatch(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	assert_int_equal(feed_str(&p, "event: update\ndata: a\n\ndata: b\n\n"), 0);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.ev[0].type, "update");
	assert_string_equal(r.ev[1].type, ""); /* back to the default "message" */
	stop(&p, &r);
}

static void test_last_event_type_field_wins(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	assert_int_equal(feed_str(&p, "event: a\nevent: b\ndata: x\n\n"), 0);
	assert_string_equal(r.ev[0].type, "b");
	stop(&p, &r);
}

static void test_id_persists_across_events(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	assert_int_equal(feed_str(&p, "id: 41\ndata: a\n\ndata: b\n\nid: 42\ndata: c\n\n"), 0);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.ev[0].id, "41");
	assert_string_equal(r.ev[1].id, "41");
	assert_string_equal(r.ev[2].id, "42");
	assert_string_equal(sse_last_event_id(&p), "42");
	stop(&p, &r);
}

static void test_id_with_nul_is_ignored(void **state)
{
	(void)state;
	static const char s[] = "id: 7\n\nid: x\0y\ndata: q\n\n";
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	assert_int_equal(sse_feed(&p, s, sizeof(s) - 1), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.ev[0].id, "7");
	stop(&p, &r);
}

static void test_empty_id_clears_last_event_id(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	assert_int_equal(feed_str(&p, "id: 5\ndata: a\n\nid\ndata: b\n\n"), 0);
	assert_string_equal(r.ev[0].id, "5");
	assert_string_equal(r.ev[1].id, "");
	stop(&p, &r);
}

static void test_retry_digits_reported_and_persist(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	assert_int_equal(sse_retry_ms(&p), -1);
	assert_int_equal(feed_str(&p, "retry: 3000\n\n"), 0); /* no data: nothing dispatched */
	assert_int_equal(r.n, 0);
	assert_int_equal(sse_retry_ms(&p), 3000);
	assert_int_equal(feed_str(&p, "data: a\n\nretry: 12a\ndata: b\n\n"), 0);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.ev[0].retry_ms, 3000);
	assert_int_equal(r.ev[1].retry_ms, 3000); /* "12a" is not all digits */
	assert_int_equal(feed_str(&p, "retry:\nretry: -5\nretry: 99999999999999999999\n"), 0);
	assert_int_equal(sse_retry_ms(&p), 3000);
	assert_int_equal(feed_str(&p, "retry:250\n"), 0);
	assert_int_equal(sse_retry_ms(&p), 250);
	stop(&p, &r);
}

static void test_comments_reported_not_dispatched(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	assert_int_equal(feed_str(&p, ": ping\n:\n\n:x:y\ndata: a\n\n"), 0);
	assert_int_equal(r.ncomments, 3);
	assert_string_equal(r.comment[0], " ping");
	assert_string_equal(r.comment[1], "");
	assert_string_equal(r.comment[2], "x:y");
	assert_int_equal(r.n, 1);
	assert_string_equal(r.ev[0].data, "a");
	stop(&p, &r);
}

static void test_comments_ignored_without_comment_cb(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	memset(&r, 0, sizeof(r));
	sse_init(&p, 0, on_event, &r);
	assert_int_equal(feed_str(&p, ": keep-alive\n\ndata: a\n\n"), 0);
	assert_int_equal(r.ncomments, 0);
	assert_int_equal(r.n, 1);
	stop(&p, &r);
}

static void test_crlf_lf_and_cr_line_endings_equivalent(void **state)
{
	(void)state;
	static const char *const streams[] = {
		"event: t\ndata: a\ndata: b\n\n",
		"event: t\r\ndata: a\r\ndata: b\r\n\r\n",
		"event: t\rdata: a\rdata: b\r\r",
		"event: t\r\ndata: a\rdata: b\n\r",
	};
	for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
		struct sse_parser p;
		struct rec r;

		start(&p, &r, 0);
		assert_int_equal(feed_str(&p, streams[i]), 0);
		assert_int_equal(r.n, 1);
		assert_string_equal(r.ev[0].type, "t");
		assert_string_equal(r.ev[0].data, "a\nb");
		stop(&p, &r);
	}
}

static void test_cr_then_lf_in_next_chunk_is_one_line_end(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	assert_int_equal(feed_str(&p, "data: a\r"), 0);
	assert_int_equal(feed_str(&p, "\ndata: b\r"), 0);
	assert_int_equal(feed_str(&p, "\n\r"), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.ev[0].data, "a\nb");
	/* CR at a chunk end followed by CR: two line ends, so a blank line. */
	assert_int_equal(feed_str(&p, "data: c\r"), 0);
	assert_int_equal(feed_str(&p, "\r"), 0);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.ev[1].data, "c");
	stop(&p, &r);
}

static void test_leading_bom_skipped(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	assert_int_equal(feed_str(&p, "\xEF\xBB\xBF" "data: a\n\n"), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.ev[0].data, "a");
	stop(&p, &r);
}

static void test_bom_split_across_chunks_skipped(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	assert_int_equal(feed_str(&p, "\xEF"), 0);
	assert_int_equal(feed_str(&p, "\xBB"), 0);
	assert_int_equal(feed_str(&p, "\xBF" "data"), 0);
	assert_int_equal(feed_str(&p, ": a\n\n"), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.ev[0].data, "a");
	stop(&p, &r);
}

static void test_bom_only_skipped_at_stream_start(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	/* A second BOM makes the field name "\xEF\xBB\xBF" "data": unknown, ignored. */
	assert_int_equal(feed_str(&p, "\xEF\xBB\xBF\xEF\xBB\xBF" "data: a\n\ndata: b\n\n"), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.ev[0].data, "b");
	stop(&p, &r);
}

static void test_partial_bom_bytes_kept_as_stream_bytes(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	assert_int_equal(feed_str(&p, "\xEF\xBB"), 0);
	assert_int_equal(feed_str(&p, ":x\ndata: a\n\n"), 0);
	assert_int_equal(r.ncomments, 0); /* the line is field "\xEF\xBB", not a comment */
	assert_int_equal(r.n, 1);
	assert_string_equal(r.ev[0].data, "a");
	stop(&p, &r);
}

static void test_field_without_colon_has_empty_value(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	assert_int_equal(feed_str(&p, "data\n\ndata\ndata\n\nevent\ndata: x\n\n"), 0);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.ev[0].data, "");
	assert_int_equal(r.ev[0].data_len, 0);
	assert_string_equal(r.ev[1].data, "\n");
	assert_string_equal(r.ev[2].type, "");
	stop(&p, &r);
}

static void test_only_one_leading_space_stripped(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	assert_int_equal(feed_str(&p, "data:  two\ndata:none\ndata: \ndata:\tt \n\n"), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.ev[0].data, " two\nnone\n\n\tt ");
	stop(&p, &r);
}

static void test_empty_data_not_dispatched_and_type_reset(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	assert_int_equal(feed_str(&p, "event: lonely\n\n\n\ndata: x\n\n"), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.ev[0].type, "");
	assert_string_equal(r.ev[0].data, "x");
	stop(&p, &r);
}

static void test_unknown_fields_and_case_ignored(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	assert_int_equal(feed_str(&p, "foo: bar\nDATA: no\nData: no\n data: no\ndata: yes\n\n"), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.ev[0].data, "yes");
	stop(&p, &r);
}

static void test_data_with_nul_bytes_kept(void **state)
{
	(void)state;
	static const char s[] = "data: a\0b\n\n";
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	assert_int_equal(sse_feed(&p, s, sizeof(s) - 1), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.ev[0].data_len, 3);
	assert_memory_equal(r.ev[0].data, "a\0b", 4);
	stop(&p, &r);
}

/* ---- stream lifecycle ---------------------------------------------------------------- */

static void test_callback_abort_returns_value_and_sticks(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	r.abort_at = 1;
	r.abort_rc = 42;
	assert_int_equal(feed_str(&p, "data: a\n\ndata: b\n\n"), 42);
	assert_int_equal(r.n, 1);
	assert_int_equal(feed_str(&p, "data: c\n\n"), 42);
	assert_int_equal(sse_finish(&p), 42);
	assert_int_equal(r.n, 1);
	assert_string_equal(sse_strerror(42), "stopped by callback");
	sse_reset(&p);
	r.abort_at = 0;
	assert_int_equal(feed_str(&p, "data: d\n\n"), 0);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.ev[1].data, "d");
	stop(&p, &r);
}

static int abort_on_comment(void *arg, const char *text, size_t len)
{
	(void)arg;
	(void)text;
	(void)len;
	return 7;
}

static void test_comment_callback_abort_stops_parsing(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	sse_set_comment_cb(&p, abort_on_comment);
	assert_int_equal(feed_str(&p, ":stop\ndata: a\n\n"), 7);
	assert_int_equal(r.n, 0);
	stop(&p, &r);
}

static void test_finish_discards_unterminated_event(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	assert_int_equal(feed_str(&p, "data: a\n\ndata: b\n"), 0);
	assert_int_equal(sse_finish(&p), 0);
	assert_int_equal(r.n, 1);
	/* After finish, pending data of the old stream does not leak into the next. */
	assert_int_equal(feed_str(&p, "data: partial"), 0);
	assert_int_equal(sse_finish(&p), 0);
	assert_int_equal(feed_str(&p, "\n\ndata: c\n\n"), 0);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.ev[1].data, "c");
	stop(&p, &r);
}

static void test_finish_starts_new_stream_keeping_id_and_retry(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	assert_int_equal(feed_str(&p, "\xEF\xBB\xBFid: 9\nretry: 100\ndata: a\n\n"), 0);
	assert_int_equal(sse_finish(&p), 0);
	assert_int_equal(feed_str(&p, "\xEF\xBB\xBF" "data: b\n\n"), 0);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.ev[1].data, "b");
	assert_string_equal(r.ev[1].id, "9");
	assert_int_equal(r.ev[1].retry_ms, 100);
	stop(&p, &r);
}

static void test_reset_forgets_everything(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	assert_int_equal(feed_str(&p, "id: 9\nretry: 100\nevent: t\ndata: a\n"), 0);
	sse_reset(&p);
	assert_string_equal(sse_last_event_id(&p), "");
	assert_int_equal(sse_retry_ms(&p), -1);
	assert_int_equal(feed_str(&p, "\xEF\xBB\xBF\ndata: b\n\n"), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.ev[0].data, "b");
	assert_string_equal(r.ev[0].type, "");
	assert_string_equal(r.ev[0].id, "");
	stop(&p, &r);
}

static void test_free_twice_and_reuse_is_safe(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	assert_int_equal(feed_str(&p, "data: partial"), 0);
	sse_free(&p);
	sse_free(&p);
	assert_int_equal(feed_str(&p, "data: a\n\n"), 0);
	assert_int_equal(r.n, 1);
	stop(&p, &r);
}

static void test_invalid_arguments_rejected(void **state)
{
	(void)state;
	struct sse_parser p;

	sse_init(&p, 0, NULL, NULL);
	assert_int_equal(sse_feed(NULL, "x", 1), SSE_ERR_INVAL);
	assert_int_equal(sse_feed(&p, NULL, 1), SSE_ERR_INVAL);
	assert_int_equal(sse_feed(&p, NULL, 0), 0);
	assert_int_equal(sse_finish(NULL), SSE_ERR_INVAL);
	assert_int_equal(feed_str(&p, "data: dropped without callback\n\n"), 0);
	sse_free(&p);
}

/* ---- split invariance -------------------------------------------------------------- */

static const char SAMPLE[] =
	"\xEF\xBB\xBF: hello\r\n"
	"retry: 1500\r\n"
	"event: first\r\n"
	"id: 1\r\n"
	"data: alpha\r\n"
	"data:beta\r\n"
	"\r\n"
	"data\r"
	"\r"
	"event: skipped\n"
	"\n"
	"id: 2\n"
	"data: gamma\n"
	"foo: bar\n"
	"data:  delta\n"
	"\n"
	":keepalive\r"
	"event: third\r"
	"data: {\"x\":1}\r"
	"\r\n"
	"data: trailing, never dispatched\n";

static void feed_whole(struct sse_parser *p, struct rec *r)
{
	start(p, r, 0);
	assert_int_equal(sse_feed(p, SAMPLE, sizeof(SAMPLE) - 1), 0);
	assert_int_equal(sse_finish(p), 0);
}

static void test_sample_stream_parsed_as_spec_says(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	feed_whole(&p, &r);
	assert_int_equal(r.n, 4);
	assert_string_equal(r.ev[0].type, "first");
	assert_string_equal(r.ev[0].data, "alpha\nbeta");
	assert_string_equal(r.ev[0].id, "1");
	assert_int_equal(r.ev[0].retry_ms, 1500);
	assert_string_equal(r.ev[1].type, "");
	assert_string_equal(r.ev[1].data, "");
	assert_string_equal(r.ev[2].type, "");
	assert_string_equal(r.ev[2].data, "gamma\n delta");
	assert_string_equal(r.ev[2].id, "2");
	assert_string_equal(r.ev[3].type, "third");
	assert_string_equal(r.ev[3].data, "{\"x\":1}");
	assert_int_equal(r.ncomments, 2);
	assert_string_equal(r.comment[0], " hello");
	assert_string_equal(r.comment[1], "keepalive");
	stop(&p, &r);
}

static void test_every_two_piece_split_matches_whole_feed(void **state)
{
	(void)state;
	struct sse_parser wp, p;
	struct rec whole, r;
	const size_t len = sizeof(SAMPLE) - 1;

	feed_whole(&wp, &whole);
	for (size_t cut = 0; cut <= len; cut++) {
		start(&p, &r, 0);
		assert_int_equal(sse_feed(&p, SAMPLE, cut), 0);
		assert_int_equal(sse_feed(&p, SAMPLE + cut, len - cut), 0);
		assert_int_equal(sse_finish(&p), 0);
		assert_same(&whole, &r);
		stop(&p, &r);
	}
	stop(&wp, &whole);
}

static void test_every_chunk_size_matches_whole_feed(void **state)
{
	(void)state;
	struct sse_parser wp, p;
	struct rec whole, r;
	const size_t len = sizeof(SAMPLE) - 1;

	feed_whole(&wp, &whole);
	for (size_t step = 1; step <= 17; step++) { /* step 1 is byte by byte */
		start(&p, &r, 0);
		assert_int_equal(feed_steps(&p, SAMPLE, len, step), 0);
		assert_int_equal(sse_finish(&p), 0);
		assert_same(&whole, &r);
		stop(&p, &r);
	}
	stop(&wp, &whole);
}

/* ---- limits -------------------------------------------------------------------------- */

static void test_line_of_max_line_bytes_accepted(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 10);
	assert_int_equal(feed_str(&p, "data: 1234\r\n\n"), 0); /* exactly 10 bytes */
	assert_int_equal(r.n, 1);
	assert_string_equal(r.ev[0].data, "1234");
	stop(&p, &r);
}

static void test_line_too_long_error_sticks(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 10);
	assert_int_equal(feed_str(&p, "data: a\n\ndata: 12345\n\n"), SSE_ERR_LINE_TOO_LONG);
	assert_int_equal(r.n, 1);
	assert_int_equal(feed_str(&p, "data: b\n\n"), SSE_ERR_LINE_TOO_LONG);
	assert_int_equal(sse_finish(&p), SSE_ERR_LINE_TOO_LONG);
	assert_int_equal(r.n, 1);
	assert_string_equal(sse_strerror(SSE_ERR_LINE_TOO_LONG), "SSE line too long");
	stop(&p, &r);
}

static void test_line_too_long_detected_before_its_end(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 10);
	assert_int_equal(feed_str(&p, "data:"), 0);
	assert_int_equal(feed_str(&p, " 12345"), SSE_ERR_LINE_TOO_LONG);
	stop(&p, &r);

	start(&p, &r, 10);
	assert_int_equal(feed_str(&p, "xxxxxxxxxxx"), SSE_ERR_LINE_TOO_LONG);
	stop(&p, &r);
}

static void test_held_back_bom_bytes_count_toward_line_limit(void **state)
{
	struct sse_parser p;
	struct rec r;

	(void)state;
	start(&p, &r, 1);
	assert_int_equal(feed_str(&p, "\xEF\xBB"), 0); /* could still be a BOM */
	assert_int_equal(sse_finish(&p), SSE_ERR_LINE_TOO_LONG);
	stop(&p, &r);

	start(&p, &r, 1);
	assert_int_equal(feed_str(&p, "\xEF\xBB\xBF"), 0); /* it was one: nothing held */
	assert_int_equal(sse_finish(&p), 0);
	stop(&p, &r);
}

/* max_line 8 allows 4 * 8 = 32 bytes of data: eight "abc" lines joined plus an empty
 * ninth line make exactly 32. */
static void feed_data_lines(struct sse_parser *p, int last_rc, const char *last)
{
	for (int i = 0; i < 8; i++)
		assert_int_equal(feed_str(p, "data:abc\n"), 0);
	assert_int_equal(feed_str(p, last), last_rc);
}

static void test_event_of_limit_size_accepted(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 8);
	feed_data_lines(&p, 0, "data:\n\n");
	assert_int_equal(r.n, 1);
	assert_int_equal(r.ev[0].data_len, 32);
	stop(&p, &r);
}

static void test_event_too_big_error_sticks(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 8);
	feed_data_lines(&p, SSE_ERR_EVENT_TOO_BIG, "data:x\n\n");
	assert_int_equal(r.n, 0);
	assert_int_equal(feed_str(&p, "\n"), SSE_ERR_EVENT_TOO_BIG);
	assert_int_equal(sse_finish(&p), SSE_ERR_EVENT_TOO_BIG);
	assert_int_equal(r.n, 0);
	assert_string_equal(sse_strerror(SSE_ERR_EVENT_TOO_BIG), "SSE event too big");
	stop(&p, &r);
}

static void test_large_event_grows_buffers(void **state)
{
	(void)state;
	struct sse_parser p;
	struct rec r;
	char line[1001];

	start(&p, &r, 1000);
	memcpy(line, "data:", 5);
	memset(line + 5, 'z', 994);
	line[999] = '\n';
	line[1000] = '\0';
	for (int i = 0; i < 4; i++)
		assert_int_equal(feed_steps(&p, line, 1000, 333), 0);
	assert_int_equal(feed_str(&p, "\n"), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.ev[0].data_len, 4 * 994 + 3);
	stop(&p, &r);
}

/* ---- provider-shaped streams ------------------------------------------------------------ */

static void test_openai_style_stream(void **state)
{
	(void)state;
	static const char s[] =
		"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","
		"\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"
		": OPENROUTER PROCESSING\n\n"
		"data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n"
		"data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},"
		"\"finish_reason\":\"stop\"}]}\n\n"
		"data: [DONE]\n\n";
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	assert_int_equal(feed_steps(&p, s, sizeof(s) - 1, 7), 0);
	assert_int_equal(sse_finish(&p), 0);
	assert_int_equal(r.n, 4);
	for (size_t i = 0; i < r.n; i++)
		assert_string_equal(r.ev[i].type, "");
	assert_non_null(strstr(r.ev[1].data, "\"content\":\"Hel\""));
	assert_int_equal(r.ev[1].data[0], '{');
	assert_string_equal(r.ev[3].data, "[DONE]");
	assert_int_equal(r.ncomments, 1);
	assert_string_equal(r.comment[0], " OPENROUTER PROCESSING");
	stop(&p, &r);
}

static void test_anthropic_style_stream(void **state)
{
	(void)state;
	static const char s[] =
		"event: message_start\n"
		"data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"role\":\"assistant\","
		"\"content\":[],\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n"
		"event: content_block_start\n"
		"data: {\"type\":\"content_block_start\",\"index\":0,"
		"\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
		"event: ping\n"
		"data: {\"type\": \"ping\"}\n\n"
		"event: content_block_delta\n"
		"data: {\"type\":\"content_block_delta\",\"index\":0,"
		"\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n"
		"event: content_block_stop\n"
		"data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
		"event: message_delta\n"
		"data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},"
		"\"usage\":{\"output_tokens\":5}}\n\n"
		"event: message_stop\n"
		"data: {\"type\":\"message_stop\"}\n\n";
	static const char *const types[] = { "message_start", "content_block_start", "ping",
					     "content_block_delta", "content_block_stop",
					     "message_delta", "message_stop" };
	struct sse_parser p;
	struct rec r;

	start(&p, &r, 0);
	assert_int_equal(feed_steps(&p, s, sizeof(s) - 1, 13), 0);
	assert_int_equal(sse_finish(&p), 0);
	assert_int_equal(r.n, 7);
	for (size_t i = 0; i < r.n; i++)
		assert_string_equal(r.ev[i].type, types[i]);
	assert_string_equal(r.ev[2].data, "{\"type\": \"ping\"}");
	assert_non_null(strstr(r.ev[3].data, "\"text\":\"Hello\""));
	assert_string_equal(r.ev[6].data, "{\"type\":\"message_stop\"}");
	stop(&p, &r);
}

static void test_strerror_covers_all_codes(void **state)
{
	(void)state;
	assert_string_equal(sse_strerror(SSE_OK), "success");
	assert_string_equal(sse_strerror(SSE_ERR_NOMEM), "out of memory");
	assert_string_equal(sse_strerror(SSE_ERR_INVAL), "invalid argument");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_event_dispatched_on_blank_line),
		cmocka_unit_test(test_multi_line_data_joined_with_newline),
		cmocka_unit_test(test_event_type_reported_then_reset_after_dispatch),
		cmocka_unit_test(test_last_event_type_field_wins),
		cmocka_unit_test(test_id_persists_across_events),
		cmocka_unit_test(test_id_with_nul_is_ignored),
		cmocka_unit_test(test_empty_id_clears_last_event_id),
		cmocka_unit_test(test_retry_digits_reported_and_persist),
		cmocka_unit_test(test_comments_reported_not_dispatched),
		cmocka_unit_test(test_comments_ignored_without_comment_cb),
		cmocka_unit_test(test_crlf_lf_and_cr_line_endings_equivalent),
		cmocka_unit_test(test_cr_then_lf_in_next_chunk_is_one_line_end),
		cmocka_unit_test(test_leading_bom_skipped),
		cmocka_unit_test(test_bom_split_across_chunks_skipped),
		cmocka_unit_test(test_bom_only_skipped_at_stream_start),
		cmocka_unit_test(test_partial_bom_bytes_kept_as_stream_bytes),
		cmocka_unit_test(test_field_without_colon_has_empty_value),
		cmocka_unit_test(test_only_one_leading_space_stripped),
		cmocka_unit_test(test_empty_data_not_dispatched_and_type_reset),
		cmocka_unit_test(test_unknown_fields_and_case_ignored),
		cmocka_unit_test(test_data_with_nul_bytes_kept),
		cmocka_unit_test(test_callback_abort_returns_value_and_sticks),
		cmocka_unit_test(test_comment_callback_abort_stops_parsing),
		cmocka_unit_test(test_finish_discards_unterminated_event),
		cmocka_unit_test(test_finish_starts_new_stream_keeping_id_and_retry),
		cmocka_unit_test(test_reset_forgets_everything),
		cmocka_unit_test(test_free_twice_and_reuse_is_safe),
		cmocka_unit_test(test_invalid_arguments_rejected),
		cmocka_unit_test(test_sample_stream_parsed_as_spec_says),
		cmocka_unit_test(test_every_two_piece_split_matches_whole_feed),
		cmocka_unit_test(test_every_chunk_size_matches_whole_feed),
		cmocka_unit_test(test_line_of_max_line_bytes_accepted),
		cmocka_unit_test(test_line_too_long_error_sticks),
		cmocka_unit_test(test_line_too_long_detected_before_its_end),
		cmocka_unit_test(test_held_back_bom_bytes_count_toward_line_limit),
		cmocka_unit_test(test_event_of_limit_size_accepted),
		cmocka_unit_test(test_event_too_big_error_sticks),
		cmocka_unit_test(test_large_event_grows_buffers),
		cmocka_unit_test(test_openai_style_stream),
		cmocka_unit_test(test_anthropic_style_stream),
		cmocka_unit_test(test_strerror_covers_all_codes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
