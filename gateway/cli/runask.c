/* runask: permission asks in `agentgate run` (runask.h). */
#include "runask.h"
#include "hooks.h"
#include "termask.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct runask {
	struct engine *E;
	struct loop *L;
	int yes, tty, fd, flags; /* flags: the terminal's before we made it non-blocking */
	FILE *out;
	struct termask *t;       /* the questions on the terminal */
	int closed;              /* the terminal went away: nobody answers any more */
	struct loop_watch w;
};

/* HOOK_PERMISSION_ASK: --yes allows; without a terminal nobody can answer. */
static int decide(void *arg, const struct hook_ctx *c, void *data, char *why, size_t n)
{
	struct runask *ra = arg;
	struct hook_permission *hp = data;
	if (hp->decision != HOOK_PERMISSION_UNDECIDED || (ra->tty && !ra->closed && !ra->yes))
		return 0;
	hp->decision = ra->yes ? HOOK_PERMISSION_ALLOWED : HOOK_PERMISSION_DENIED;
	if (ra->yes)
		snprintf(hp->reason, sizeof(hp->reason), "allowed by --yes");
	else
		snprintf(hp->reason, sizeof(hp->reason), "rejected: agentgate run has no terminal to "
			 "ask on (stdin %s); run it with --yes to allow this (%.60s) and every other "
			 "ask", ra->tty ? "closed" : "is not a TTY", hp->permission);
	return 0;
}

static void on_input(struct loop_watch *w, int ev);

/* Reads the terminal once a question is on it (and from then on). */
static void watch_terminal(struct runask *ra)
{
	if (ra->w.on || !termask_wants_input(ra->t))
		return;
	ra->flags = fcntl(ra->fd, F_GETFL);
	if (ra->flags >= 0)
		fcntl(ra->fd, F_SETFL, ra->flags | O_NONBLOCK);
	if (loop_watch(ra->L, &ra->w, ra->fd, LOOP_IN, on_input))
		fprintf(ra->out, "(cannot read the terminal: %s)\n", strerror(errno));
}

/* termask's answer goes to the engine. */
static void reply(void *arg, const char *id, const char *answer, const char *message)
{
	struct runask *ra = arg;
	struct err e = {0};
	if (engine_permission_reply(ra->E, id, answer, message, NULL, &e))
		fprintf(ra->out, "(%s)\n", e.msg);
}

static void stop_reading(struct runask *ra)
{
	loop_unwatch(ra->L, &ra->w);
	if (ra->flags >= 0)
		fcntl(ra->fd, F_SETFL, ra->flags);
	ra->flags = -1;
}

static void on_input(struct loop_watch *w, int ev)
{
	struct runask *ra = container_of(w, struct runask, w);
	int hup = ev & LOOP_HUP;
	char buf[256];
	for (;;) {
		ssize_t n = read(ra->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && !hup)
			return;
		if (n <= 0)
			break; /* the terminal went away: nobody answers now */
		termask_input(ra->t, buf, (size_t)n);
	}
	stop_reading(ra);
	ra->closed = 1;
	termask_closed(ra->t);
}

void runask_on_event(struct runask *ra, const struct event *ev)
{
	if (!ra || !ra->tty || ra->yes || strncmp(ev->type, "permission.", 11))
		return;
	cJSON *j = cJSON_ParseWithLength(ev->json, ev->len);
	termask_event(ra->t, ev->type, cJSON_GetObjectItemCaseSensitive(j, "properties"));
	cJSON_Delete(j);
	watch_terminal(ra);
}

struct runask *runask_start(struct engine *E, struct loop *L, int yes, int fd, FILE *out)
{
	struct runask *ra = calloc(1, sizeof(*ra));
	if (!ra)
		return NULL;
	*ra = (struct runask){.E = E, .L = L, .yes = yes, .tty = isatty(fd), .fd = fd,
			      .flags = -1, .out = out};
	if (!(ra->t = termask_create(out, reply, ra)) ||
	    hooks_add(E, HOOK_PERMISSION_ASK, "cli", decide, ra)) {
		termask_destroy(ra->t);
		free(ra);
		return NULL;
	}
	return ra;
}

void runask_stop(struct runask *ra)
{
	if (!ra)
		return;
	hooks_remove_owner(ra->E, "cli");
	stop_reading(ra);
	termask_destroy(ra->t);
	free(ra);
}
