/* status: the servers' state as one JSON object, written to the plugin's kv store under
 * "status" on every change (the gateway serves it as GET /mcp and WS mcp.status). The
 * shape is OpenCode's GET /mcp — {NAME: {"status": ...}} — with agentgate's fields:
 *   {"NAME": {"status": "connecting"|"connected"|"failed"|"disabled",
 *             "type": "local"|"remote", "error": "..." (only when there is one),
 *             "tools": ["NAME_tool", ...], "restarts": N, "pid": N (a running local)}}
 * Pure (cJSON only). */
#ifndef MCP_STATUS_H
#define MCP_STATUS_H

#include "tools.h"

enum srv_state { ST_CONNECTING, ST_CONNECTED, ST_FAILED, ST_DISABLED };

struct srv_view {
	const char *name;
	int remote;
	enum srv_state state;
	char *error;          /* NULL when none */
	int restarts, pid;
	struct tooldef *tools; /* the registered ones */
	int ntools;
};

const char *status_state_name(int state);
/* The status object for n servers, malloc'd (NULL out of memory). */
char *status_json(const struct srv_view *v, int n);

#endif
