/* api: the one door between the transports and the engine. It owns the route table
 * (each operation's HTTP route and JSON-RPC name), runs operations by name with params
 * as JSON, submits prompts (answering now, or when the turn ends), and starts event
 * subscriptions. http.c and ws.c only frame requests onto these and errors onto their
 * codes. Loop thread. */
#ifndef AG_API_H
#define AG_API_H
#include <cjson/cJSON.h>

#include "engine.h"
#include "err.h"
#include "jw.h"
#include "subscriber.h"

/* ---- the route table ---- */

enum api_kind {
	API_CALL,   /* api_call(rpc, params) */
	API_PROMPT, /* api_prompt: held until the turn ends when wait is set */
	API_EVENTS, /* an event stream (api_subscribe) */
	API_TEXT,   /* GET /metrics: text the server writes itself (metrics.c) */
	API_NOTIMPL, /* a route of OpenCode's that agentgate does not implement: 501, naming
		      * why (api_not_implemented_why); its pattern is OpenCode's template */
};

struct api_route {
	const char *http_method;
	const char *pattern;      /* path segments; '*' is one id segment */
	const char *rpc;          /* the operation's JSON-RPC method name */
	const char *ids[2];       /* the params the '*' segments fill, in order */
	enum api_kind kind;
	int wait;
};

/* The route of an HTTP request, its '*' segments in ids; NULL when there is none, and
 * then allowed lists the methods the path does take ("" for an unknown path). */
const struct api_route *api_route(const char *method, const char *path, char ids[2][64],
				  char *allowed, size_t allowed_len);
/* The route pattern a path matches (any method), or NULL. */
const char *api_path_pattern(const char *path);
/* Whether path matches pattern: a '*' or "{NAME}" segment is any one non-empty segment
 * (with ids, the first two are copied there, 63 bytes at most); a trailing slash is
 * allowed. */
int api_match(const char *pattern, const char *path, char ids[2][64]);
/* Its '*' and "{NAME}" segments: of two patterns that match a path, the one with fewer
 * wins (/session/status over /session/{id}). */
int api_wildcards(const char *pattern);
/* The 501 routes (api_notimpl.c): method on path's entry, or NULL; the methods the
 * path's entries take are appended to allowed. */
const struct api_route *api_not_implemented(const char *method, const char *path,
					    char *allowed, size_t allowed_len);
/* Why an API_NOTIMPL route is not implemented (one clause). */
const char *api_not_implemented_why(const struct api_route *r);
/* Calls fn with each of them, in the table's order. */
void api_not_implemented_list(void (*fn)(void *arg, const struct api_route *r), void *arg);

/* Runs method with params (an object or NULL). 0 and the result in w, or -1 and e.
 * ERR_NOTFOUND with code -32601 semantics when the method does not exist: *unknown = 1. */
int api_call(struct engine *E, const char *method, const cJSON *params, struct jw *w,
	     int *unknown, struct err *e);

/* A prompt parsed from a request: p's strings point into the request's JSON, into
 * text (built from the parts) and into model. */
struct api_prompt {
	struct prompt p;
	char *text;
	char model[256];
};

/* Parses a prompt body ({parts|text, agent, model, messageID, policy, dedupeKey}) for
 * sessionID. Release it with api_prompt_free, whatever the result. */
int api_parse_prompt(const cJSON *params, const char *session_id, const char *source,
		     struct api_prompt *ap, struct err *e);
void api_prompt_free(struct api_prompt *ap);

/* A transport waiting for a turn to end, embedded in its connection or request. fn runs
 * once on the loop thread with the terminal message ({info, parts}) in result, or with
 * e set (ERR_UNAVAILABLE when the server stops with the prompt still queued). */
struct api_wait {
	void (*fn)(struct api_wait *aw, struct jw *result, const struct err *e);
	struct turn_waiter tw;
	struct engine *E;
	char session[64];
	int summary; /* a compaction (api_summarize): the result is true */
};

/* Submits a prompt: params {sessionID, parts|text, agent, model, messageID, policy,
 * dedupeKey}; source is the transport's (http, ws), never the client's. Without aw it
 * is answered now: {sessionID, turnID, messageID, coalesced} in w. With aw, aw->fn
 * answers when the turn ends. -1 and e when the prompt was not accepted. */
int api_prompt(struct engine *E, const cJSON *params, const char *source, struct api_wait *aw,
	       struct jw *w, struct err *e);
/* Submits a compaction (POST /session/{id}/summarize, WS session.summarize): params
 * {sessionID, providerID?, modelID?, auto?} — the model that writes the summary (both
 * or neither; default: the session's), and auto marks it as OpenCode's automatic ones.
 * It queues like a prompt; aw->fn answers true when it completed, or an error naming
 * how it ended. -1 and e when it was not accepted. */
int api_summarize(struct engine *E, const cJSON *params, const char *source,
		  struct api_wait *aw, struct err *e);
/* A route of kind API_PROMPT by its rpc: api_summarize or api_prompt. */
int api_submit(struct engine *E, const char *rpc, const cJSON *params, const char *source,
	       struct api_wait *aw, struct jw *w, struct err *e);
/* Detaches a waiter whose client went away (idempotent). */
void api_wait_cancel(struct api_wait *aw);
/* 1 while aw waits for a turn. */
int api_waiting(const struct api_wait *aw);

/* POST /session/{id}/command (api_command.c): params {sessionID, command, arguments,
 * agent?, model?, messageID?, parts?} become the prompt params of the command's
 * template expanded with its arguments (params, for api_prompt). Release with
 * api_command_free whatever the result. ERR_NOTFOUND for an unknown command or session,
 * ERR_INVALID naming a bad field or a command that would be a subtask. */
struct api_command {
	cJSON *params;
	char session_id[64], name[256], message_id[64];
	char *arguments;
};
int api_command_prepare(struct engine *E, const cJSON *params, struct api_command *ac,
			struct err *e);
/* Announces a command whose prompt api_prompt accepted (command.executed). */
void api_command_executed(struct engine *E, const struct api_command *ac);
void api_command_free(struct api_command *ac);

/* Starts s on params {sessionID?, descendants?, since?}: a session must exist; since
 * replays what came after it. wake is the transport's "write now". The newest seq now
 * goes to *seq when given. */
int api_subscribe(struct engine *E, struct subscriber *s, const cJSON *params,
		  void (*wake)(struct subscriber *s), int64_t *seq, struct err *e);

#ifndef AGENTGATE_VERSION /* CMake's project version */
#define AGENTGATE_VERSION "0.1.0"
#endif

#endif
