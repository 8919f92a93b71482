/* runask: permission asks in `agentgate run` (runask.h). */
#include "runask.h"
#include "hooks.h"
#include "jsonin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* An ask waiting for the user, oldest first; the head is the one on screen. */
struct question {
	struct question *next;
	char id[ID_MAX];
	char *title;
};

struct runask {
	struct engine *E;
	struct loop *L;
	int yes, tty, fd, flags; /* flags: the terminal's before we made it non-blocking */
	FILE *out;
	struct question *q;
	int shown;               /* the head has been asked */
	int closed;              /* the terminal went away: nobody answers any more */
	struct loop_watch w;
	char line[256];
	size_t len;
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

static void question_free(struct question *q)
{
	free(q->title);
	free(q);
}

static void on_input(struct loop_watch *w, int hup);

static void show_next(struct runask *ra)
{
	if (!ra->q || ra->shown || ra->closed)
		return;
	fprintf(ra->out, "\nAllow %s? [y]es / [n]o / [a]lways: ", ra->q->title);
	fflush(ra->out);
	ra->shown = 1;
	if (ra->w.on)
		return;
	ra->flags = fcntl(ra->fd, F_GETFL);
	if (ra->flags >= 0)
		fcntl(ra->fd, F_SETFL, ra->flags | O_NONBLOCK);
	if (loop_watch(ra->L, &ra->w, ra->fd, on_input))
		fprintf(ra->out, "(cannot read the terminal: %s)\n", strerror(errno));
}

/* Takes the head off the queue and answers it. */
static void answer(struct runask *ra, const char *reply, const char *message)
{
	struct question *q = ra->q;
	struct err e = {0};
	ra->q = q->next;
	ra->shown = 0;
	if (engine_permission_reply(ra->E, q->id, reply, message, NULL, &e))
		fprintf(ra->out, "(%s)\n", e.msg);
	question_free(q);
}

static void on_line(struct runask *ra, char *line)
{
	static const struct {
		const char *a, *b, *reply;
	} words[] = {{"y", "yes", "once"}, {"n", "no", "reject"}, {"a", "always", "always"}};
	line[strcspn(line, " \t\r")] = 0;
	for (size_t i = 0; ra->q && i < sizeof(words) / sizeof(words[0]); i++)
		if (!strcasecmp(line, words[i].a) || !strcasecmp(line, words[i].b)) {
			answer(ra, words[i].reply, NULL);
			show_next(ra);
			return;
		}
	if (ra->q) {
		fprintf(ra->out, "Please answer y, n or a: ");
		fflush(ra->out);
	}
}

static void stop_reading(struct runask *ra)
{
	loop_unwatch(ra->L, &ra->w);
	if (ra->flags >= 0)
		fcntl(ra->fd, F_SETFL, ra->flags);
	ra->flags = -1;
}

static void on_input(struct loop_watch *w, int hup)
{
	struct runask *ra = container_of(w, struct runask, w);
	for (;;) {
		ssize_t n = read(ra->fd, ra->line + ra->len, sizeof(ra->line) - 1 - ra->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && !hup)
			return;
		if (n <= 0)
			break; /* the terminal went away: nobody answers now */
		ra->len += (size_t)n;
		ra->line[ra->len] = 0;
		char *nl;
		while ((nl = strchr(ra->line, '\n'))) {
			*nl = 0;
			on_line(ra, ra->line);
			ra->len -= (size_t)(nl + 1 - ra->line);
			memmove(ra->line, nl + 1, ra->len + 1);
		}
		if (ra->len == sizeof(ra->line) - 1)
			ra->len = 0; /* a line too long to be an answer */
	}
	stop_reading(ra);
	ra->closed = 1;
	while (ra->q)
		answer(ra, "reject", "nobody can answer: the terminal closed");
}

void runask_on_event(struct runask *ra, const struct event *ev)
{
	int asked = !strcmp(ev->type, "permission.asked");
	if (!ra || !ra->tty || ra->yes || (!asked && strcmp(ev->type, "permission.replied")))
		return;
	cJSON *j = cJSON_ParseWithLength(ev->json, ev->len);
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "properties");
	const char *id = jsonin_get(p, asked ? "id" : "requestID");
	struct question **pp = &ra->q;
	while (id && *pp && strcmp((*pp)->id, id))
		pp = &(*pp)->next;
	if (asked && id && !*pp && (*pp = calloc(1, sizeof(**pp)))) {
		snprintf((*pp)->id, sizeof((*pp)->id), "%s", id);
		(*pp)->title = strdup(jsonin_get(p, "title") ? jsonin_get(p, "title") : id);
	} else if (!asked && id && *pp) { /* answered elsewhere (a client, an abort, a timeout) */
		struct question *q = *pp;
		if (q == ra->q && ra->shown) {
			fprintf(ra->out, "(answered: %s)\n", jsonin_get(p, "reply"));
			ra->shown = 0;
		}
		*pp = q->next;
		question_free(q);
	}
	cJSON_Delete(j);
	show_next(ra);
}

struct runask *runask_start(struct engine *E, struct loop *L, int yes, int fd, FILE *out)
{
	struct runask *ra = calloc(1, sizeof(*ra));
	if (!ra)
		return NULL;
	*ra = (struct runask){.E = E, .L = L, .yes = yes, .tty = isatty(fd), .fd = fd,
			      .flags = -1, .out = out};
	if (hooks_add(E, HOOK_PERMISSION_ASK, "cli", decide, ra)) {
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
	while (ra->q) {
		struct question *q = ra->q;
		ra->q = q->next;
		question_free(q);
	}
	free(ra);
}
