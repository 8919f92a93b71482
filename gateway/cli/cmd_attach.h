/* cmd_attach: `agentgate attach URL [--session ID] [--format default|json] [PROMPT...]`
 * — what `agentgate run` does, against a running gateway over WebSocket, on the client
 * library (<agentgate/client.h>): the same lines (ndjson.c), the same permission
 * questions (termask.c), and the same end: it returns once the turn and everything it
 * started have ended, its last line the final step. Without PROMPT it follows --session
 * until interrupted. Main thread. */
#ifndef AG_CMD_ATTACH_H
#define AG_CMD_ATTACH_H
#include "cli.h"

/* The exit status: 0 the turn completed, 1 it failed (or the gateway was lost), 2 a
 * usage error (an unknown session, a bad URL), 130 interrupted. */
int cmd_attach(const struct cli *c);

#endif
