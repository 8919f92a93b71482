/* Fuzz target for the front door's rules (gateway/net/doorcheck.c). The first byte picks
 * what the rest is: a request head, or a WebSocket client's stream after the upgrade.
 * Each is checked whole, cut in two where the input says, and (when short) a byte at a
 * time, and the three must agree; a head that passes must also be one that libwebsockets
 * can take without a silent close or a wait: no NUL, no folded line, no bare CR, within
 * the limits. Built with libFuzzer under clang (fuzz_door) and, for CI with gcc, driven
 * by test_fuzz_door with seeded random inputs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doorcheck.h"

#define BYTEWISE_MAX 2048

/* What the inputs reached (the smoke test checks its mutations reach every outcome). */
unsigned long fuzz_heads_done, fuzz_heads_refused, fuzz_heads_more, fuzz_frames_refused;

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_door: %s\n", what);
		abort();
	}
}

struct verdict {
	int rc;
	size_t skip, len;
	int status;
	char message[sizeof(((struct doorcheck_refusal *)0)->message)];
};

static struct verdict head_in_pieces(const char *s, size_t n, size_t cut, int bytewise)
{
	struct doorcheck_head h;
	struct doorcheck_refusal r;
	struct verdict v = {0};
	doorcheck_head_init(&h);
	if (bytewise) {
		v.rc = DOORCHECK_MORE;
		for (size_t end = 1; end <= n && v.rc == DOORCHECK_MORE; end++)
			v.rc = doorcheck_head_feed(&h, s, end, &r);
	} else {
		v.rc = doorcheck_head_feed(&h, s, cut, &r);
		if (v.rc == DOORCHECK_MORE)
			v.rc = doorcheck_head_feed(&h, s, n, &r);
	}
	if (v.rc == DOORCHECK_DONE) {
		v.skip = h.skip;
		v.len = h.len;
	} else if (v.rc == DOORCHECK_REFUSED) {
		v.status = r.status;
		memcpy(v.message, r.message, sizeof(v.message));
	}
	return v;
}

static int same(const struct verdict *a, const struct verdict *b)
{
	return a->rc == b->rc && a->skip == b->skip && a->len == b->len && a->status == b->status &&
	       !strcmp(a->message, b->message);
}

static void head(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct verdict whole = head_in_pieces(s, size, size, 0);
	struct verdict cut = head_in_pieces(s, size, size ? data[0] % (size + 1) : 0, 0);
	check(same(&whole, &cut), "a head cut in two got another verdict");
	if (size <= BYTEWISE_MAX) {
		struct verdict each = head_in_pieces(s, size, 0, 1);
		check(same(&whole, &each), "a head fed a byte at a time got another verdict");
	}
	if (whole.rc == DOORCHECK_MORE) {
		fuzz_heads_more++;
		check(size <= DOORCHECK_HEAD_MAX, "more than the limit without an end or a refusal");
		return;
	}
	if (whole.rc == DOORCHECK_REFUSED) {
		fuzz_heads_refused++;
		check(whole.status >= 400 && whole.status < 600 && whole.message[0], "a refusal without a status or a message");
		return;
	}
	fuzz_heads_done++;
	/* what passes is what lws can take */
	const char *h = s + whole.skip;
	size_t n = whole.len;
	check(whole.skip + n <= size && whole.skip + n <= DOORCHECK_HEAD_MAX, "a head past the input or the limit");
	check(n >= 4 && h[n - 1] == '\n' && (h[n - 2] == '\n' || (h[n - 2] == '\r' && h[n - 3] == '\n')),
	      "a head that does not end with an empty line");
	check(!memchr(h, 0, n), "a NUL byte passed");
	int lines = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		if (h[i] == '\r')
			check(h[i + 1] == '\n', "a bare CR passed");
		if (h[i] == '\n') {
			check(h[i + 1] != ' ' && h[i + 1] != '\t', "a folded line passed");
			lines++;
		}
	}
	check(lines - 1 <= DOORCHECK_FIELDS_MAX, "more header lines than the limit passed");
	const char *sp = memchr(h, ' ', n), *end = sp ? memchr(sp + 1, ' ', n - (size_t)(sp + 1 - h)) : NULL;
	check(sp && end, "a request line without two spaces passed");
	for (const char *p = sp + 1; p + 2 < end; p++)
		check(!(p[0] == '%' && p[1] == '0' && p[2] == '0'), "%00 in the target passed");
}

static size_t ws_in_pieces(const uint8_t *b, size_t n, size_t cut, int *refused)
{
	struct doorcheck_ws w = {0};
	struct doorcheck_refusal r;
	size_t passed = doorcheck_ws_feed(&w, b, cut, refused, &r);
	if (!*refused)
		passed += doorcheck_ws_feed(&w, b + passed, n - passed, refused, &r);
	if (*refused)
		check(r.status == 1002 && strlen(r.message) <= DOORCHECK_REASON_MAX, "a frame refusal without 1002 or too long a reason");
	return passed;
}

static void frames(const uint8_t *data, size_t size)
{
	int rw, rc;
	size_t whole = ws_in_pieces(data, size, size, &rw);
	size_t cut = ws_in_pieces(data, size, size ? data[0] % (size + 1) : 0, &rc);
	check(whole == cut && rw == rc, "frames cut in two got another verdict");
	check(whole <= size, "passed more than was given");
	fuzz_frames_refused += rw;
	/* walking the frames that passed: every header whole and masked */
	size_t i = 0;
	while (i + 2 <= whole) {
		check(data[i + 1] & 0x80, "an unmasked frame passed");
		unsigned l7 = data[i + 1] & 0x7f;
		size_t hl = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + 4;
		check(i + hl <= whole, "part of a frame header passed");
		uint64_t plen = l7;
		if (l7 == 126)
			plen = (uint64_t)data[i + 2] << 8 | data[i + 3];
		if (l7 == 127)
			for (int k = 2; k < 10; k++)
				plen = (k == 2 ? 0 : plen << 8) | data[i + k];
		if (plen > whole - i - hl)
			break; /* the rest of whole is this frame's payload */
		i += hl + (size_t)plen;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] % 2)
		frames(data + 1, size - 1);
	else
		head(data + 1, size - 1);
	return 0;
}
