/* runask: what `agentgate run` does with a permission ask the rules and plugins left to
 * a human. With --yes it is allowed; without a terminal on stdin it is rejected with a
 * message naming --yes (both as a HOOK_PERMISSION_ASK callback, after the plugins');
 * on a terminal the user is asked on stderr — "Allow <title>? [y]es / [n]o / [a]lways"
 * — one ask at a time, in the order they came, and the answer is the engine's reply.
 * Loop thread. */
#ifndef AG_RUNASK_H
#define AG_RUNASK_H
#include <stdio.h>

#include "engine.h"

struct runask;

/* Starts answering asks of engine E for `run`: yes = --yes; fd is the terminal to read
 * answers from when it is one (stdin), prompts go to out. NULL when out of memory. */
struct runask *runask_start(struct engine *E, struct loop *L, int yes, int fd, FILE *out);
/* A bus event (a subscriber's callback passes them on): permission.asked queues a
 * question, permission.replied drops one that was answered some other way. */
void runask_on_event(struct runask *ra, const struct event *ev);
/* Stops reading, gives the terminal back as it was, and frees ra (NULL: nothing). */
void runask_stop(struct runask *ra);

#endif
