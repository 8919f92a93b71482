/* Unit tests for gateway/net/doorcheck.c, the front door's rules: every request head
 * and frame stream is checked whole, cut in two at every point and fed a byte at a
 * time, and all three must give the same verdict at the same place. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "doorcheck.h"

struct verdict {
	int rc;
	struct doorcheck_head h;
	struct doorcheck_refusal r;
};

/* Feeds s[0, n) as the pieces ending at cuts (ascending, the last n). */
static void feed_pieces(const char *s, const size_t *cuts, size_t ncuts, struct verdict *v)
{
	memset(v, 0, sizeof(*v));
	doorcheck_head_init(&v->h);
	for (size_t i = 0; i < ncuts; i++) {
		v->rc = doorcheck_head_feed(&v->h, s, cuts[i], &v->r);
		if (v->rc != DOORCHECK_MORE)
			return;
	}
}

static void same(const struct verdict *a, const struct verdict *b, const char *how, size_t at)
{
	if (a->rc != b->rc || (a->rc == DOORCHECK_DONE && (a->h.len != b->h.len ||
							  a->h.skip != b->h.skip)) ||
	    (a->rc == DOORCHECK_REFUSED && (a->r.status != b->r.status ||
					    strcmp(a->r.message, b->r.message))))
		fail_msg("%s at %zu: rc %d/%d, status %d/%d, '%s' / '%s'", how, at, a->rc, b->rc,
			 a->r.status, b->r.status, a->r.message, b->r.message);
}

/* The verdict on s, the same however its bytes arrive. */
static struct verdict check(const char *s, size_t n)
{
	struct verdict whole, v;
	size_t cuts[2] = {0, n};
	feed_pieces(s, cuts + 1, 1, &whole);
	/* every cut of a short head; a sample of a long one's (each cut costs a whole pass) */
	for (size_t cut = 0; cut <= n; cut += n > 2048 ? 61 : 1) {
		cuts[0] = cut;
		feed_pieces(s, cuts, 2, &v);
		same(&whole, &v, "cut", cut);
	}
	size_t *each = malloc((n + 1) * sizeof(*each));
	assert_non_null(each);
	for (size_t i = 0; i < n; i++)
		each[i] = i + 1;
	feed_pieces(s, each, n, &v);
	same(&whole, &v, "bytewise", n);
	free(each);
	return whole;
}

static struct verdict check_str(const char *s)
{
	return check(s, strlen(s));
}

static void refused(const char *s, size_t n, int status, const char *name, const char *needle)
{
	struct verdict v = check(s, n);
	if (v.rc != DOORCHECK_REFUSED)
		fail_msg("not refused (rc %d): %.60s", v.rc, s);
	assert_int_equal(v.r.status, status);
	assert_string_equal(v.r.name, name);
	if (!strstr(v.r.message, needle))
		fail_msg("message '%s' lacks '%s'", v.r.message, needle);
}

static void refused_str(const char *s, int status, const char *name, const char *needle)
{
	refused(s, strlen(s), status, name, needle);
}

static void a_plain_get_is_done_at_its_empty_line(void **state)
{
	const char *s = "GET /session?roots=true HTTP/1.1\r\nHost: 127.0.0.1:4096\r\n"
			"Accept: */*\r\n\r\n";
	struct verdict v = check_str(s);
	assert_int_equal(v.rc, DOORCHECK_DONE);
	assert_int_equal(v.h.skip, 0);
	assert_int_equal(v.h.len, strlen(s));
	assert_string_equal(v.h.method, "GET");
	assert_int_equal(v.h.content_length, -1);
	assert_false(v.h.websocket);
}

static void a_body_and_a_pipelined_request_are_not_part_of_the_head(void **state)
{
	const char *head = "POST /session HTTP/1.1\r\nContent-Type: application/json\r\n"
			   "Content-Length:  2 \r\n\r\n";
	char s[512];
	snprintf(s, sizeof(s), "%s{}GET / HTTP/1.1\r\n\r\n", head);
	struct verdict v = check_str(s);
	assert_int_equal(v.rc, DOORCHECK_DONE);
	assert_int_equal(v.h.len, strlen(head));
	assert_int_equal(v.h.content_length, 2);
	assert_string_equal(v.h.method, "POST");
}

static void empty_lines_before_a_request_and_bare_lf_endings_are_accepted(void **state)
{
	struct verdict v = check_str("\r\n\n\r\nDELETE /session/x HTTP/1.0\nHost: a\n\n");
	assert_int_equal(v.rc, DOORCHECK_DONE);
	assert_int_equal(v.h.skip, 5);
	assert_int_equal(v.h.len, strlen("DELETE /session/x HTTP/1.0\nHost: a\n\n"));
	assert_string_equal(v.h.method, "DELETE");
}

static void an_incomplete_head_asks_for_more(void **state)
{
	assert_int_equal(check_str("GET / HTTP/1.1\r\nHost: a\r\n").rc, DOORCHECK_MORE);
	assert_int_equal(check_str("").rc, DOORCHECK_MORE);
	assert_int_equal(check_str("\r\n\r\n").rc, DOORCHECK_MORE);
}

/* A head of exactly the limit passes; one byte more is refused at that byte, without
 * waiting for an end that may never come. */
static void a_head_over_16_kib_is_431_at_the_byte_past_the_limit(void **state)
{
	size_t n = DOORCHECK_HEAD_MAX;
	char *s = malloc(n + 64);
	assert_non_null(s);
	const char *pre = "GET / HTTP/1.1\r\nX-Filler: ";
	size_t pl = strlen(pre);
	memcpy(s, pre, pl);
	memset(s + pl, 'y', n - pl - 4);
	memcpy(s + n - 4, "\r\n\r\n", 4);
	struct verdict v = check(s, n);
	assert_int_equal(v.rc, DOORCHECK_DONE);
	assert_int_equal(v.h.len, n);
	/* one more filler byte: the head ends at byte 16385 */
	memset(s + pl, 'y', n - pl - 3);
	memcpy(s + n - 3, "\r\n\r\n", 4);
	refused(s, n + 1, 431, "RequestHeaderFieldsTooLarge", "16384");
	/* and with no end at all, the refusal comes at byte 16385 */
	memset(s + pl, 'y', n + 10 - pl);
	refused(s, n + 1, 431, "RequestHeaderFieldsTooLarge", "16384");
	struct verdict upto = check(s, n);
	assert_int_equal(upto.rc, DOORCHECK_MORE);
	free(s);
}

static void a_nul_byte_anywhere_in_the_target_is_400_naming_it(void **state)
{
	refused_str("GET /index.html%00.txt HTTP/1.1\r\n\r\n", 400, "BadRequest", "NUL");
	refused_str("GET /session/%00 HTTP/1.1\r\n\r\n", 400, "BadRequest", "NUL");
	refused_str("GET /event?sessionID=a%00b HTTP/1.1\r\n\r\n", 400, "BadRequest", "NUL");
	refused("GET /a\0b HTTP/1.1\r\n\r\n", 20, 400, "BadRequest", "NUL");
	refused("GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n", 27, 400, "BadRequest", "NUL");
	/* refused at the escape, before the rest of the head arrives */
	refused_str("GET /a%00", 400, "BadRequest", "NUL");
	/* other escapes are fine */
	assert_int_equal(check_str("GET /a%20b%2F%ff HTTP/1.1\r\n\r\n").rc, DOORCHECK_DONE);
}

static void a_folded_header_line_is_400_at_its_first_byte(void **state)
{
	refused_str("GET / HTTP/1.1\r\nX-Long: first\r\n second\r\n\r\n", 400, "BadRequest",
		    "folding");
	refused_str("GET / HTTP/1.1\r\nX-Long: first\r\n\tsecond\r\n\r\n", 400, "BadRequest",
		    "line 3");
	/* nothing after the folding space has arrived: still refused at once */
	refused_str("GET / HTTP/1.1\r\nX-Long: first\r\n ", 400, "BadRequest", "folding");
	/* the first header line cannot continue the request line either */
	refused_str("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, "BadRequest", "folding");
}

static void unknown_methods_are_501_naming_them(void **state)
{
	refused_str("BREW /pot HTTP/1.1\r\n\r\n", 501, "NotImplemented", "BREW");
	refused_str("get / HTTP/1.1\r\n\r\n", 501, "NotImplemented", "get");
	refused_str("CONNECT a:443 HTTP/1.1\r\n\r\n", 501, "NotImplemented", "CONNECT");
	refused_str("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 501, "NotImplemented", "PRI");
	/* a method longer than any known one is refused before its end */
	char m[64];
	memset(m, 'X', sizeof(m));
	refused(m, sizeof(m), 501, "NotImplemented", "XXXXXXXX...");
	for (const char *const *k = (const char *const[]){"GET", "HEAD", "POST", "PUT", "PATCH",
						     "DELETE", "OPTIONS", NULL}; *k; k++) {
		char s[64];
		snprintf(s, sizeof(s), "%s / HTTP/1.1\r\n\r\n", *k);
		struct verdict v = check_str(s);
		assert_int_equal(v.rc, DOORCHECK_DONE);
		assert_string_equal(v.h.method, *k);
	}
}

static void malformed_request_lines_are_400_and_other_versions_505(void **state)
{
	refused_str("GET  / HTTP/1.1\r\n\r\n", 400, "BadRequest", "METHOD PATH");
	refused_str("GET / HTTP/1.1 \r\n\r\n", 400, "BadRequest", "METHOD PATH");
	refused_str("GET /\r\n\r\n", 400, "BadRequest", "METHOD PATH");
	refused_str("GET / HTTP/1.1x\r\n\r\n", 400, "BadRequest", "METHOD PATH");
	refused_str("GET / HTTX/1.1\r\n\r\n", 400, "BadRequest", "METHOD PATH");
	refused_str("GET / HTTP/2.0\r\n\r\n", 505, "HTTPVersionNotSupported", "HTTP/2.0");
	refused_str("GET http://a/b HTTP/1.1\r\n\r\n", 400, "BadRequest", "starting with /");
	refused_str("GET * HTTP/1.1\r\n\r\n", 400, "BadRequest", "OPTIONS");
	refused_str("OPTIONS *x HTTP/1.1\r\n\r\n", 400, "BadRequest", "alone");
	assert_int_equal(check_str("OPTIONS * HTTP/1.1\r\n\r\n").rc, DOORCHECK_DONE);
	refused_str("GET /a%2 HTTP/1.1\r\n\r\n", 400, "BadRequest", "hex");
	refused_str("GET /a%zz HTTP/1.1\r\n\r\n", 400, "BadRequest", "hex");
	refused_str("GET /a\x7f HTTP/1.1\r\n\r\n", 400, "BadRequest", "0x7f");
	refused_str("GET /a\tb HTTP/1.1\r\n\r\n", 400, "BadRequest", "0x09");
	refused_str("GET / HTTP/1.1\rX: a\r\n\r\n", 400, "BadRequest", "CR");
}

static void malformed_header_lines_are_400(void **state)
{
	refused_str("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "BadRequest", "between");
	refused_str("GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400, "BadRequest", "between");
	refused_str("GET / HTTP/1.1\r\nNocolon\r\n\r\n", 400, "BadRequest", "no colon");
	refused_str("GET / HTTP/1.1\r\n: empty\r\n\r\n", 400, "BadRequest", "header name");
	refused_str("GET / HTTP/1.1\r\nX(y): a\r\n\r\n", 400, "BadRequest", "header name");
	refused_str("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400, "BadRequest", "CR");
	refused_str("GET / HTTP/1.1\r\nX: a\x01\r\n\r\n", 400, "BadRequest", "0x01");
	refused_str("GET / HTTP/1.1\r\nX: a\r\n\rx", 400, "BadRequest", "CR");
	/* tabs and bytes past ASCII are field content */
	assert_int_equal(check_str("GET / HTTP/1.1\r\nX: a\tb \xc3\xa9\r\n\r\n").rc, DOORCHECK_DONE);
}

static void content_length_must_be_one_plain_number_and_bodies_need_one(void **state)
{
	refused_str("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400,
		    "BadRequest", "more than one");
	refused_str("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "BadRequest", "number");
	refused_str("POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", 400, "BadRequest", "number");
	refused_str("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400, "BadRequest", "number");
	refused_str("POST / HTTP/1.1\r\nContent-Length: 9999999999999999\r\n\r\n", 400,
		    "BadRequest", "number");
	refused_str("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411, "LengthRequired",
		    "Content-Length");
	struct verdict v = check_str("POST / HTTP/1.1\r\ncontent-length:\t999999999999999\r\n\r\n");
	assert_int_equal(v.rc, DOORCHECK_DONE);
	assert_int_equal(v.h.content_length, 999999999999999LL);
}

static void a_websocket_upgrade_needs_what_libwebsockets_needs(void **state)
{
	const char *ok = "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
			 "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			 "Sec-WebSocket-Version: 13\r\n\r\n";
	struct verdict v = check_str(ok);
	assert_int_equal(v.rc, DOORCHECK_DONE);
	assert_true(v.h.websocket);
	refused_str("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n"
		    "Sec-WebSocket-Version: 13\r\n\r\n", 400, "BadRequest", "Connection: Upgrade");
	refused_str("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
		    "Sec-WebSocket-Version: 13\r\n\r\n", 400, "BadRequest", "Sec-WebSocket-Key");
	refused_str("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
		    "Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 8\r\n\r\n", 400, "BadRequest",
		    "Version: 13");
	refused_str("POST /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
		    "Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n", 400, "BadRequest", "GET");
	/* libwebsockets would switch to HTTP/2 or answer a non-JSON 403 */
	refused_str("GET / HTTP/1.1\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
		    400, "BadRequest", "Upgrade: websocket");
	refused_str("GET / HTTP/1.1\r\nUpgrade: websocket \r\n\r\n", 400, "BadRequest", "Upgrade");
	refused_str("GET / HTTP/1.1\r\nUpgrade: websocket\r\nUpgrade: websocket\r\n\r\n", 400,
		    "BadRequest", "only one");
}

static void header_lines_and_query_arguments_are_counted_against_one_limit(void **state)
{
	char s[8192];
	size_t n = (size_t)snprintf(s, sizeof(s), "GET /?a=1&b=2;c HTTP/1.1\r\n");
	for (int i = 0; i < DOORCHECK_FIELDS_MAX - 3; i++)
		n += (size_t)snprintf(s + n, sizeof(s) - n, "X-%d: v\r\n", i);
	memcpy(s + n, "\r\n", 3);
	assert_int_equal(check_str(s).rc, DOORCHECK_DONE);
	n += (size_t)snprintf(s + n, sizeof(s) - n, "X-last: v\r\n\r\n");
	refused_str(s, 431, "RequestHeaderFieldsTooLarge", "80");
	n = (size_t)snprintf(s, sizeof(s), "GET /?");
	for (int i = 0; i < DOORCHECK_FIELDS_MAX; i++)
		n += (size_t)snprintf(s + n, sizeof(s) - n, "a&");
	refused_str(s, 431, "RequestHeaderFieldsTooLarge", "query arguments");
}

/* ---- WebSocket frames ---- */

/* A masked client frame with an n-byte payload (n < 65536 or a 64-bit length). */
static size_t frame(unsigned char *out, int op, uint64_t n, int masked)
{
	size_t i = 0;
	out[i++] = (unsigned char)(0x80 | op);
	unsigned char m = masked ? 0x80 : 0;
	if (n < 126) {
		out[i++] = (unsigned char)(m | n);
	} else if (n < 65536) {
		out[i++] = m | 126;
		out[i++] = (unsigned char)(n >> 8);
		out[i++] = (unsigned char)n;
	} else {
		out[i++] = m | 127;
		for (int k = 7; k >= 0; k--)
			out[i++] = (unsigned char)(n >> (8 * k));
	}
	if (masked) {
		memcpy(out + i, "\x11\x22\x33\x44", 4);
		i += 4;
	}
	return i;
}

struct wsv {
	size_t passed;
	int refused;
	struct doorcheck_refusal r;
};

/* Feeds buf as the relay does: what was passed is dropped, the rest offered again with
 * the next bytes. */
static struct wsv ws_pieces(const unsigned char *buf, const size_t *cuts, size_t ncuts)
{
	struct wsv v = {0};
	struct doorcheck_ws w = {0};
	for (size_t i = 0; i < ncuts && !v.refused; i++)
		v.passed += doorcheck_ws_feed(&w, buf + v.passed, cuts[i] - v.passed, &v.refused, &v.r);
	return v;
}

static struct wsv ws_check(const unsigned char *buf, size_t n)
{
	size_t cuts[2] = {0, n};
	struct wsv whole = ws_pieces(buf, cuts + 1, 1), v;
	for (size_t cut = 0; cut <= n; cut++) {
		cuts[0] = cut;
		v = ws_pieces(buf, cuts, 2);
		if (v.passed != whole.passed || v.refused != whole.refused)
			fail_msg("cut at %zu: passed %zu/%zu refused %d/%d", cut, v.passed, whole.passed,
				 v.refused, whole.refused);
	}
	return whole;
}

static void masked_frames_pass_whole_and_a_partial_header_waits(void **state)
{
	unsigned char buf[70000];
	size_t n = frame(buf, 1, 5, 1);
	memcpy(buf + n, "hello", 5);
	n += 5;
	size_t f2 = n;
	n += frame(buf + n, 2, 300, 1);
	memset(buf + n, 'x', 300);
	n += 300;
	n += frame(buf + n, 9, 0, 1); /* a ping */
	size_t f4 = n;
	n += frame(buf + n, 2, 66000, 1);
	size_t whole = n + 66000;
	memset(buf + n, 'y', 66000);
	struct wsv v = ws_check(buf, whole);
	assert_false(v.refused);
	assert_int_equal(v.passed, whole);
	/* a header cut short is held back until it is whole */
	v = ws_check(buf, f2 + 3);
	assert_int_equal(v.passed, f2);
	v = ws_check(buf, f4 + 13);
	assert_int_equal(v.passed, f4);
	v = ws_check(buf, f4 + 14);
	assert_int_equal(v.passed, f4 + 14);
}

static void an_unmasked_frame_is_refused_with_1002_where_it_starts(void **state)
{
	unsigned char buf[256];
	size_t n = frame(buf, 1, 2, 1);
	memcpy(buf + n, "ok", 2);
	n += 2;
	size_t bad_at = n;
	n += frame(buf + n, 1, 4, 0);
	memcpy(buf + n, "evil", 4);
	n += 4;
	struct wsv v = ws_check(buf, n);
	assert_true(v.refused);
	assert_int_equal(v.passed, bad_at);
	assert_int_equal(v.r.status, 1002);
	assert_non_null(strstr(v.r.message, "masked"));
}

static void a_length_with_its_top_bit_set_is_refused(void **state)
{
	unsigned char buf[32];
	size_t n = frame(buf, 2, 1, 1);
	buf[1] = 0x80 | 127;
	memset(buf + 2, 0, 8);
	buf[2] = 0x80;
	memcpy(buf + 10, "\1\2\3\4", 4);
	struct wsv v = ws_check(buf, 14);
	(void)n;
	assert_true(v.refused);
	assert_int_equal(v.passed, 0);
	assert_int_equal(v.r.status, 1002);
}

static void the_close_frame_is_what_a_client_sends(void **state)
{
	unsigned char out[131];
	char reason[200];
	memset(reason, 'r', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = 0;
	size_t n = doorcheck_ws_close_frame(out, 1002, reason);
	assert_int_equal(n, 8 + DOORCHECK_REASON_MAX);
	assert_int_equal(out[0], 0x88);
	assert_int_equal(out[1], 0x80 | 125);
	assert_int_equal(out[6] << 8 | out[7], 1002);
	/* and the checker passes it */
	struct doorcheck_ws w = {0};
	int refused;
	struct doorcheck_refusal r;
	assert_int_equal(doorcheck_ws_feed(&w, out, n, &refused, &r), n);
	assert_false(refused);
	n = doorcheck_ws_close_frame(out, 1002, "why");
	assert_int_equal(n, 11);
	assert_memory_equal(out + 8, "why", 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_plain_get_is_done_at_its_empty_line),
		cmocka_unit_test(a_body_and_a_pipelined_request_are_not_part_of_the_head),
		cmocka_unit_test(empty_lines_before_a_request_and_bare_lf_endings_are_accepted),
		cmocka_unit_test(an_incomplete_head_asks_for_more),
		cmocka_unit_test(a_head_over_16_kib_is_431_at_the_byte_past_the_limit),
		cmocka_unit_test(a_nul_byte_anywhere_in_the_target_is_400_naming_it),
		cmocka_unit_test(a_folded_header_line_is_400_at_its_first_byte),
		cmocka_unit_test(unknown_methods_are_501_naming_them),
		cmocka_unit_test(malformed_request_lines_are_400_and_other_versions_505),
		cmocka_unit_test(malformed_header_lines_are_400),
		cmocka_unit_test(content_length_must_be_one_plain_number_and_bodies_need_one),
		cmocka_unit_test(a_websocket_upgrade_needs_what_libwebsockets_needs),
		cmocka_unit_test(header_lines_and_query_arguments_are_counted_against_one_limit),
		cmocka_unit_test(masked_frames_pass_whole_and_a_partial_header_waits),
		cmocka_unit_test(an_unmasked_frame_is_refused_with_1002_where_it_starts),
		cmocka_unit_test(a_length_with_its_top_bit_set_is_refused),
		cmocka_unit_test(the_close_frame_is_what_a_client_sends),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
