/* wire: the two provider wire formats, free of I/O. Builds the request body of an
 * OpenAI-compatible chat completion or an Anthropic message from the neutral request,
 * and turns their SSE events into text, reasoning, complete tool calls, a finish
 * reason, usage, or an error. Pure: unit tested and fuzzed alone; one state per stream. */
#ifndef AG_WIRE_H
#define AG_WIRE_H
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

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
	/* Output limit: text + reasoning + tool-call arguments; 0 = none. Set after init. */
	size_t max_output, output;
	int over_limit; /* the stream passed max_output: nothing past it was taken */
};

void wire_init(struct wire_state *w, enum wire_kind kind);
void wire_free(struct wire_state *w);

/* The JSON request body; options (may be NULL), then rq->params, are merged in at the
 * top level (options may not set messages or stream, params none of wire_param_owned). */
char *wire_request(enum wire_kind kind, const struct llm_request *rq, const cJSON *options,
		   struct err *e);
/* 1 for the body keys the wire format owns, which a request's params may not set:
 * model, messages, stream, tools, system. */
int wire_param_owned(const char *key);
/* 1 when "name: value" may go out as an extra request header: name an HTTP token and
 * none the provider owns (Content-Type, Content-Length, Host, Authorization, x-api-key,
 * Accept, Expect) or a hop-by-hop one (Connection, Keep-Alive, Proxy-*, TE, Trailer,
 * Transfer-Encoding, Upgrade); value without CR, LF or other control bytes but tab. */
int wire_header_allowed(const char *name, const char *value);

/* One SSE event (type may be empty). 0, or 1 when the stream reported an error (see
 * w->error) or passed max_output (w->over_limit: this event's output past the limit, and
 * every later event, are dropped), or -1 for memory. Text goes to out as it arrives. */
int wire_event(struct wire_state *w, const char *type, const char *data, size_t len,
	       const struct wire_out *out);

/* Number of complete tool calls, and the i-th (in index order). */
int wire_tool_count(const struct wire_state *w);
const struct wire_tool *wire_tool_at(const struct wire_state *w, int i);

/* A retry-after header value as a wait in ms. unit_ms is 1000 for `retry-after` (delta
 * seconds, an integer or a decimal, or an IMF-fixdate such as "Fri, 31 Dec 2100 23:59:59
 * GMT", read against now_ms, the epoch time) and 1 for `retry-after-ms`. -1 if the value
 * does not parse (negative numbers, other date forms, trailing junk); a date in the past
 * is 0; a wait too long for int64 is INT64_MAX. value need not be NUL-terminated. */
int64_t wire_retry_after_ms(const char *value, size_t len, int64_t unit_ms, int64_t now_ms);

/* The provider's own message from an HTTP error body, or NULL (caller frees). */
char *wire_error_message(const char *body, size_t len);

/* 1 when an error body or message (NUL-terminated) says the request is over the
 * model's context window, as the providers word it: OpenAI's code
 * "context_length_exceeded" and "maximum context length is N tokens", Anthropic's
 * "prompt is too long" and "input length and `max_tokens` exceed context limit", and
 * the common "exceeds the context window" / "context length exceeded". Any case. */
int wire_context_overflow(const char *text);

#endif
