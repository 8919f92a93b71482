/* task: the subagent tools (`task`, `check_task`) and task reports for clients. */
#ifndef AG_TASK_H
#define AG_TASK_H
#include "engine.h"

/* Writes check_task's report for task_id (a child session id). ERR_NOTFOUND if none. */
int task_json(struct engine *E, const char *task_id, struct jw *w, struct err *e);

#endif
