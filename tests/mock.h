/* mockllm (tests/provider) from a cmocka suite: started once for the group, with the
 * base URLs an engine reaches it at (h->openai_base, h->anthropic_base) and its /_stats,
 * which show what each request carried (headers, body). */
#ifndef AG_TEST_MOCK_H
#define AG_TEST_MOCK_H
#include <cjson/cJSON.h>

extern char mock_openai_base[64], mock_anthropic_base[64];

/* Group setup and teardown. mock_start also sets OPENAI_API_KEY and ANTHROPIC_API_KEY
 * (sk-test-secret-0001, ak-test-secret-0002). */
int mock_start(void **state);
int mock_stop(void **state);
/* /_stats as JSON (caller frees); asserts it answered. */
cJSON *mock_stats(void);
/* What the last request for model (a scenario with its @suffix) carried: {path, headers,
 * body}; NULL when none came. Caller frees. */
cJSON *mock_last_request(const char *model);

#endif
