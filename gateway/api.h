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

/* Parses a prompt body ({parts|text, agent, model, messageID, policy, dedupeKey}) for
 * sessionID into p. The strings point into params; text is built into *text_out (free). */
int api_parse_prompt(const cJSON *params, const char *session_id, const char *source,
		     struct prompt *p, char **text_out, struct err *e);

/* Writes {info, parts} of a message of a session. */
int api_message_json(struct engine *E, const char *session_id, const char *message_id,
		     struct jw *w, struct err *e);

#define AGENTGATE_VERSION "0.1.0"

#endif
