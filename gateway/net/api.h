/* api: the operations every transport offers (HTTP routes, WebSocket JSON-RPC), by
 * JSON-RPC method name, with params as JSON and the result written as JSON. Transports
 * only map their requests onto these and their errors onto status codes. Loop thread. */
#ifndef AG_API_H
#define AG_API_H
#include <cjson/cJSON.h>

#include "engine.h"
#include "err.h"
#include "jw.h"

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

#define AGENTGATE_VERSION "0.1.0"

#endif
