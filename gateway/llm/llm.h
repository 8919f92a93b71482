/* llm: the provider interface and the supervisor every model request goes through.
 * A provider streams one attempt (scripted here on the loop thread; openai/anthropic on
 * the LLM I/O thread, delivering on the loop). The supervisor owns what is common:
 * the stall watchdog (no content token for stall_ms aborts the attempt), the limits of
 * one attempt (limits.max_output_bytes of output, limits.max_attempt_ms of wall clock),
 * bounded retries with exponential backoff and jitter honouring retry-after up to
 * retry.cap_ms, and suppression of text already shown when a retry repeats it. Loop
 * thread only. */
#ifndef AG_LLM_H
#define AG_LLM_H
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "config.h"
#include "err.h"
#include "llm_types.h"
#include "loop.h"

/* What a stream reports, on the loop thread. Strings are borrowed for the call. */
struct llm_sink {
	void (*text)(void *arg, int reasoning, const char *s, size_t n);
	/* One complete tool call; args_json is the arguments object as JSON text. */
	void (*tool_call)(void *arg, const char *id, const char *name, const char *args_json);
	/* Terminal: finish is stop | tool-calls | length | ... */
	void (*done)(void *arg, const char *finish, const struct llm_usage *u);
	/* Terminal. */
	void (*error)(void *arg, const struct llm_error *e);
	/* Supervisor only: attempt `attempt` will start at next_ms (epoch ms). */
	void (*retry)(void *arg, int attempt, const char *message, int64_t next_ms);
};

/* A provider. start() begins one attempt and returns its handle; the attempt reports
 * through sink until it calls done or error, after which the provider frees it.
 * cancel() ends an attempt that has not reported its end: no callback follows. */
struct provider {
	const char *name;
	void *self;
	void *(*start)(void *self, const struct llm_request *rq, const struct llm_sink *sink,
		       void *sink_arg, struct err *e);
	void (*cancel)(void *self, void *attempt);
	/* 0 if the provider serves this model, else fills e naming the problem. */
	int (*check_model)(void *self, const char *model, struct err *e);
	void (*destroy)(void *self);
};

struct llm;
struct llm_stream;

struct llm *llm_create(struct loop *L, const struct config *C);
void llm_destroy(struct llm *M);
/* Copies p; the provider's self is destroyed with the llm. */
int llm_register(struct llm *M, const struct provider *p);
/* Loads the model catalog from the config (catalog_load): 0, or -1 with e naming the
 * bad entry. Before the first llm_catalog. */
int llm_load_catalog(struct llm *M, struct err *e);
/* The models known (catalog.h): immutable once loaded, any thread may read it. */
const struct catalog *llm_catalog(const struct llm *M);
/* Validates "PROVIDER/MODEL"; fills e with what is wrong. */
int llm_check_model(struct llm *M, const char *id, struct err *e);

/* Starts a supervised stream; rq is copied. NULL on failure (e filled). The stream frees
 * itself after calling sink->done or sink->error. */
struct llm_stream *llm_stream_start(struct llm *M, const struct llm_request *rq,
				    const struct llm_sink *sink, void *arg, struct err *e);
/* Stops a stream that has not ended; no callback follows. */
void llm_stream_cancel(struct llm_stream *st);
/* Epoch ms of the last content token or of the current attempt's start, for check_task. */
int64_t llm_stream_last_activity(const struct llm_stream *st);

/* What one provider's streams did since the start (GET /metrics). */
struct llm_stats {
	const char *provider;      /* its name */
	uint64_t requests;         /* attempts started (retries included) */
	uint64_t retries;          /* attempts scheduled again after a failure or stall */
	uint64_t stalls;           /* attempts cut by the stall watchdog */
	uint64_t too_slow;         /* attempts cut at limits.max_attempt_ms */
	uint64_t completed;        /* streams that ended with a reply */
	uint64_t failed;           /* streams that ended with an error (after any retries) */
	uint64_t tokens_input, tokens_output, tokens_reasoning, tokens_cache_read,
		tokens_cache_write;  /* as the providers reported them */
};
/* Provider i's counters (registration order): 0, or -1 past the last. */
int llm_stats(struct llm *M, int i, struct llm_stats *out);

/* The error of a reply over limits.max_output_bytes, the same from every provider. Pure. */
void llm_output_limit_message(char *buf, size_t n, int64_t limit, const char *provider,
			      const char *model);

/* Backoff before retry number `attempt` (1-based): base * 2^(attempt-1), capped, with
 * +-20% jitter, never less than retry_after_ms. Pure. */
int64_t llm_backoff_ms(int64_t base, int64_t cap, int attempt, int64_t retry_after_ms,
		       unsigned rnd);

#endif
