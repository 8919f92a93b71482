/* wire: the two provider wire formats, free of I/O. Builds the request body of an
 * OpenAI-compatible chat completion or an Anthropic message from the neutral request,
 * and turns their SSE events into text, reasoning, complete tool calls, a finish
 * reason, usage, or an error. Pure: unit tested and fuzzed alone; one state per stream. */
#ifndef AG_WIRE_H
#define AG_WIRE_H
#include <cjson/cJSON.h>
#include <stddef.h>

#include "err.h"
#include "llm_types.h"

enum wire_kind { WIRE_OPENAI, WIRE_ANTHROPIC };

#define WIRE_MAX_TOOLS 64

struct wire_tool {
	char *id, *name;
	char *args;
	size_t args_len, args_cap;
	int used;
};

/* What a stream produces; called on the thread that feeds the state. */
struct wire_out {
	void (*text)(void *arg, int reasoning, const char *s, size_t n);
	void *arg;
};

struct wire_state {
	enum wire_kind kind;
	struct wire_tool tools[WIRE_MAX_TOOLS];
	int block_tool[WIRE_MAX_TOOLS]; /* anthropic: content block index -> tool slot + 1 */
	char finish[32];
	struct llm_usage usage;
	int finished;   /* [DONE] / message_stop seen */
	int malformed;  /* lines that were not JSON (skipped) */
	char error[512]; /* a stream-level error event */
	int error_retryable;
	int error_status;
};

void wire_init(struct wire_state *w, enum wire_kind kind);
void wire_free(struct wire_state *w);

/* The JSON request body; options (may be NULL) are merged in at the top level. */
char *wire_request(enum wire_kind kind, const struct llm_request *rq, const cJSON *options,
		   struct err *e);

/* One SSE event (type may be empty). 0, or 1 when the stream reported an error (see
 * w->error), or -1 for memory. Text goes to out as it arrives. */
int wire_event(struct wire_state *w, const char *type, const char *data, size_t len,
	       const struct wire_out *out);

/* Number of complete tool calls, and the i-th (in index order). */
int wire_tool_count(const struct wire_state *w);
const struct wire_tool *wire_tool_at(const struct wire_state *w, int i);

/* The provider's own message from an HTTP error body, or NULL (caller frees). */
char *wire_error_message(const char *body, size_t len);

#endif
