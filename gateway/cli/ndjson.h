/* ndjson: turns bus events into the lines of `agentgate run`: OpenCode's run shape
 * (step_start, text, reasoning, tool_use, step_finish, error) for the root session and
 * subtask_event / subtask_delta for every descendant, live, each with the tree
 * envelope, and custom events (engine_emit), permission.asked and permission.replied
 * under their own type; or, in the default format, the reply as plain text with an
 * indented line per child step. Loop thread. */
#ifndef AG_NDJSON_H
#define AG_NDJSON_H
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
/* A bus subscriber callback (arg = struct ndjson *). */
void ndjson_on_event(void *arg, struct event *ev);

#endif
