/* ndjson: turns bus events into the lines of `agentgate run`: OpenCode's run shape
 * (step_start, text, reasoning, tool_use, step_finish, error) for the root session and
 * subtask_event / subtask_delta for every descendant, live, each with the tree
 * envelope, and custom events (engine_emit), permission.asked and permission.replied
 * under their own type; or, in the default format, the reply as plain text with an
 * indented line per child step. Loop thread (the client's main thread in attach). The
 * text it writes is under log.h's lock, shared with log records from other threads. */
#ifndef AG_NDJSON_H
#define AG_NDJSON_H
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>

#include "bus.h"

struct ndjson {
	FILE *out;
	const char *root;  /* the session `run` prompted */
	int json;          /* 1: NDJSON, 0: text */
	int errors;        /* session.error events seen for the root */
	int at_line_start; /* text mode: the cursor is at the start of a line */
};

void ndjson_init(struct ndjson *n, FILE *out, const char *root, int json);
/* shared: out and stderr reach the same terminal or pipe (2>&1). Then, in the text
 * format, a log record (log.h, from any thread) first ends the reply's current line, so
 * logs never land mid-line. Errors end it in any case. Call ndjson_end before n goes. */
void ndjson_share_screen(struct ndjson *n, int shared);
/* Ends the reply's last line (text) and detaches from the log. */
void ndjson_end(struct ndjson *n);
/* One event of the root's tree, as its JSON object ({type, properties, sessionID, ...
 * the envelope}), stamped with time (ms since 1970): `agentgate attach` feeds what it
 * receives over WebSocket, filtered to the tree by its subscription. */
void ndjson_feed(struct ndjson *n, const cJSON *ev, int64_t time);
/* A bus subscriber callback (arg = struct ndjson *): the events of the root's tree,
 * parsed and fed. */
void ndjson_on_event(void *arg, struct event *ev);

#endif
