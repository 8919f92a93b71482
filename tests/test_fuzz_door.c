/* Runs the front door's fuzz target (fuzz/fuzz_door.c) over seeded random mutations of
 * realistic request heads and WebSocket streams, so every CI run (gcc, ASan+UBSan)
 * exercises doorcheck.c with malformed input, deterministically. The coverage-guided
 * fuzzer is fuzz_door (clang). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/mutate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern unsigned long fuzz_heads_done, fuzz_heads_refused, fuzz_heads_more, fuzz_frames_refused;

/* the first byte picks the target: even a head, odd a WebSocket stream */
static const struct {
	const char *s;
	size_t n;
} seeds[] = {
#define SEED(lit) {lit, sizeof(lit) - 1}
	SEED("\x00GET /session?roots=true&limit=5 HTTP/1.1\r\nHost: 127.0.0.1:4096\r\n"
	     "Accept: */*\r\nX-Long: a b\tc\r\n\r\n"),
	SEED("\x00POST /session/ses_1/message HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
	     "application/json\r\nContent-Length: 2\r\n\r\n{}GET / HTTP/1.1\r\n\r\n"),
	SEED("\x00\r\nGET /ws HTTP/1.1\nHost: a\nUpgrade: websocket\nConnection: keep-alive, "
	     "Upgrade\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n\n"),
	SEED("\x00PATCH /session/ses_1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n"),
	SEED("\x00GET /index.html%2e%00.txt HTTP/1.1\r\nX: a\r\n folded\r\nTransfer-Encoding: "
	     "chunked\r\n\r\n"),
	SEED("\x01\x81\x85\x11\x22\x33\x44\x79\x47\x5f\x28\x7e\x89\xfe\x01\x00\x01\x02\x03\x04"
	     "\x88\x82\x00\x00\x00\x00\x03\xe8\x01\x05hello\x82\xff\x00\x00\x00\x00\x00\x00\x00\x01"),
#undef SEED
};

static const uint8_t interesting[] = {'\r', '\n', ' ', '\t', ':', '%', '0', 0, '?', '&', 0x7f,
				      0x80, 0xff, 0x7e, 0x7d};

/* Every mutated input must leave the rules consistent (fuzz_door.c checks) and the
 * sanitizers quiet, and the mutations must reach every outcome, or the run proves
 * nothing. */
static void door_rules_survive_mutated_inputs(void **state)
{
	enum { CAP = 4096, ROUNDS = 20000 };
	uint8_t *buf = malloc(CAP);
	assert_non_null(buf);
	for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
		for (int r = 0; r < ROUNDS; r++) {
			memcpy(buf, seeds[s].s, seeds[s].n);
			size_t n = seeds[s].n;
			int k = 1 + (int)(mutate_next() % 6);
			for (int i = 0; i < k; i++)
				n = mutate(buf, n, CAP, interesting, sizeof(interesting));
			buf[0] = (uint8_t)seeds[s].s[0]; /* keep the target */
			LLVMFuzzerTestOneInput(buf, n);
		}
	}
	free(buf);
	print_message("heads passed %lu, refused %lu, unfinished %lu; frame streams refused %lu\n",
		      fuzz_heads_done, fuzz_heads_refused, fuzz_heads_more, fuzz_frames_refused);
	assert_true(fuzz_heads_done > 1000);
	assert_true(fuzz_heads_refused > 10000);
	assert_true(fuzz_heads_more > 1000);
	assert_true(fuzz_frames_refused > 1000);
}

/* A head as long as the limit allows, mutated: the limit's edge is reached. */
static void door_rules_survive_long_heads(void **state)
{
	enum { CAP = 17000 };
	uint8_t *buf = malloc(CAP);
	assert_non_null(buf);
	unsigned long refused = fuzz_heads_refused;
	for (int r = 0; r < 200; r++) {
		size_t n = (size_t)snprintf((char *)buf, CAP, "%cGET / HTTP/1.1\r\nX: ", 0);
		size_t fill = 16300 + mutate_next() % 200;
		memset(buf + n, 'y', fill);
		n += fill;
		memcpy(buf + n, "\r\n\r\n", 4);
		n += 4;
		for (int i = 0; i < 3; i++)
			n = mutate(buf, n, CAP, interesting, sizeof(interesting));
		buf[0] = 0;
		LLVMFuzzerTestOneInput(buf, n);
	}
	free(buf);
	assert_true(fuzz_heads_refused > refused);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(door_rules_survive_mutated_inputs),
		cmocka_unit_test(door_rules_survive_long_heads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
