/* Runs the input fuzz target (fuzz/fuzz_inputs.c) over seeded random mutations of
 * realistic inputs, so every CI run (gcc, ASan+UBSan) exercises the parsers with
 * malformed data, deterministically. The coverage-guided fuzzer is fuzz_inputs (clang). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "fuzz/mutate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *seeds[] = {
	"\x00{\"sessionID\":\"ses_1\",\"parts\":[{\"type\":\"text\",\"text\":\"hi\"}],\"limit\":5,\"wait\":true}",
	"\x00{\"error\":{\"message\":\"bad\"},\"type\":\"error\"}",
	"\x00[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
	"\x01" "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\",\"tool_calls\":[{\"index\":0,"
	"\"id\":\"c\",\"function\":{\"name\":\"echo\",\"arguments\":\"{\\\"a\\\"\"}}]},"
	"\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":3}}\n\ndata: [DONE]\n\n",
	"\x02" "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,"
	"\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"echo\"}}\n\n"
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":"
	"{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"x\\\":1}\"}}\n\n"
	"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"}}\n\n"
	"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}\n\n",
	"\x03{\"bash\":{\"git *\":\"allow\",\"rm *\":\"deny\",\"[a-c]?x\\\\*\":\"ask\"},"
	"\"edit\":{\"~/src/*\":\"deny\"},\"*\":\"ask\",\"timeout_ms\":5}\ngit *\ngit status\n"
	"rm -rf /\n[!b]*.c\nsrc/main.c\n~/src/a.c\n",
	"\x04\x02" "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQ",
	"\x04\x06" "data:text/plain;charset=utf-8,caf%C3%A9%20au%20lait%0Aline%202",
	"\x04\x0d" "data:application/pdf;base64,JVBERi0xLjQKJeLjz9MK",
};

static const uint8_t interesting[] = {'"', '\\', '{', '}', '[', ']', ':', ',', '\n', '\r',
				      0, 0xff, 0xc3, 0x80, 'u', '0'};

extern unsigned long fuzz_bodies_parsed, fuzz_bodies_refused, fuzz_stream_events;
extern unsigned long fuzz_rules_parsed, fuzz_rules_matched;
extern unsigned long fuzz_urls_parsed, fuzz_urls_refused;

/* Every mutated input must leave the parsers whole (the sanitizers watch), and the
 * mutations must reach both sides: bodies that parse and bodies refused, stream events
 * decoded, permission rules parsed and wildcards matching, data: URLs decoded and
 * refused, or the run proves nothing. */
static void parsers_survive_mutated_inputs(void **state)
{
	enum { CAP = 8192, ROUNDS = 20000 };
	uint8_t *buf = malloc(CAP);
	for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
		size_t len0 = s < 3 ? strlen(seeds[s] + 1) + 1 : strlen(seeds[s]);
		for (int r = 0; r < ROUNDS; r++) {
			memcpy(buf, seeds[s], len0);
			size_t n = len0;
			int k = 1 + (int)(mutate_next() % 8);
			for (int i = 0; i < k; i++)
				n = mutate(buf, n, CAP, interesting, sizeof(interesting));
			buf[0] = (uint8_t)seeds[s][0]; /* keep the target */
			LLVMFuzzerTestOneInput(buf, n);
		}
	}
	free(buf);
	assert_true(fuzz_bodies_parsed > 1000);
	assert_true(fuzz_bodies_refused > 1000);
	assert_true(fuzz_stream_events > 10000);
	assert_true(fuzz_rules_parsed > 1000);
	assert_true(fuzz_rules_matched > 1000);
	assert_true(fuzz_urls_parsed > 1000);
	assert_true(fuzz_urls_refused > 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parsers_survive_mutated_inputs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
