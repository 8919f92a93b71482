/* termask: the terminal side of permission asks, shared by `agentgate run` (engine
 * events, answers through the engine) and `agentgate attach` (events and answers over
 * WebSocket): permission.asked queues a question, permission.replied drops one answered
 * some other way, one question at a time is shown — "Allow <title>? [y]es / [n]o /
 * [a]lways" — and each line the user types answers the one shown through the caller's
 * reply function. It reads nothing itself: the caller watches the terminal while
 * termask_wants_input says so and hands over what it read. One thread (the caller's). */
#ifndef AG_TERMASK_H
#define AG_TERMASK_H
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>

struct termask;

/* reply answers request id with "once", "always" or "reject" (message: NULL, or why). */
typedef void (*termask_reply_fn)(void *arg, const char *id, const char *reply,
				 const char *message);

/* Questions go to out. NULL when out of memory. */
struct termask *termask_create(FILE *out, termask_reply_fn reply, void *arg);
/* An event: permission.asked / permission.replied with their properties; others are
 * ignored. */
void termask_event(struct termask *t, const char *type, const cJSON *properties);
/* What the user typed (any amount): each whole line answers the question shown. */
void termask_input(struct termask *t, const char *buf, size_t len);
/* The terminal went away: every question waiting is rejected, and later ones too. */
void termask_closed(struct termask *t);
/* 1 while a question is shown and its answer is to be read. */
int termask_wants_input(const struct termask *t);
void termask_destroy(struct termask *t);

#endif
