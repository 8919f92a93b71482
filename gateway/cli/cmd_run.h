/* cmd_run: `agentgate run` — one prompt, in-process, on the same loop and engine as the
 * server, printing the event log as it happens. Exits when the turn and every subagent
 * it started are done. */
#ifndef AG_CMD_RUN_H
#define AG_CMD_RUN_H
#include "cli.h"

/* Returns the process exit status: 0 success, 1 the turn failed, 2 usage error. */
int cmd_run(const struct cli *c);

#endif
