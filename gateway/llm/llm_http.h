/* llm_http: the network providers — `openai` (any OpenAI-compatible chat-completions
 * server) and `anthropic` (Messages API) — on the LLM I/O thread. That thread owns a curl
 * multi handle driven by curl_multi_socket_action over its own epoll set; the loop
 * thread hands it starts, cancels and resumes through an inbox and an eventfd. It parses
 * SSE there and hands coalesced deltas back with loop_post; a loop that falls behind
 * pauses the transfer instead of letting a buffer grow. (Why a thread and not the loop:
 * docs/ARCHITECTURE.md, Threads.) */
#ifndef AG_LLM_HTTP_H
#define AG_LLM_HTTP_H
#include "config.h"
#include "llm.h"

struct llmio;

/* Starts the I/O thread. NULL on failure. */
struct llmio *llmio_start(struct loop *L);
/* Stops the thread after cancelling what runs. Loop thread. */
void llmio_stop(struct llmio *io);
/* How many times a transfer was paused because the loop fell behind. Any thread. */
unsigned llmio_pauses(struct llmio *io);

/* Fills p with provider `name` ("openai" or "anthropic") on io, configured from C
 * (base URL, key from the environment, extra headers and options from the config). */
int llm_http_provider(struct provider *p, struct llmio *io, const char *name,
		      const struct config *C, struct err *e);

#endif
