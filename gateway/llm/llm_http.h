/* llm_http: the network providers — `openai` (any OpenAI-compatible chat-completions
 * server) and `anthropic` (Messages API) — on the loop. A curl multi handle is driven by
 * the loop itself: curl's sockets are level-triggered watches in the loop's epoll set
 * and its timeout a loop timer, so a token wakes one thread once (measured against the
 * I/O thread this replaced: docs/ARCHITECTURE.md). SSE is parsed as curl reads; what a
 * read gathered reaches the sinks after curl returns, so a sink may start, cancel or
 * end any stream. The loop reads only as fast as it handles what it reads: no buffer
 * between the two can grow. Loop thread only. */
#ifndef AG_LLM_HTTP_H
#define AG_LLM_HTTP_H
#include "config.h"
#include "llm.h"

struct llmio;

/* The transfers' curl multi handle on loop L. NULL on failure. */
struct llmio *llmio_start(struct loop *L);
/* Cancels what runs (no callback follows) and frees everything. */
void llmio_stop(struct llmio *io);

/* Fills p with provider `name` ("openai" or "anthropic") on io, configured from C
 * (base URL, key from the environment, extra headers and options from the config). */
int llm_http_provider(struct provider *p, struct llmio *io, const char *name,
		      const struct config *C, struct err *e);

#endif
